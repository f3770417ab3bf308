/**
 * The reference MDM server's keys and the enrollment profiles it hands out.
 *
 * One server CA (RSA 2048, self-signed, kept in the server's database so a restart signs with the
 * same certificate) signs every profile (CMS, content attached) and issues one device identity per
 * enrollment. Each profile is a real `.mobileconfig` (Apple's MDM payload reference):
 * `PayloadType Configuration` holding a `com.apple.security.pkcs12` identity payload (the identity as
 * PKCS#12 with a random password carried in the payload's `Password`) and a `com.apple.mdm` payload
 * (`ServerURL`, `CheckInURL`, `Topic`, `IdentityCertificateUUID` naming the identity payload,
 * `AccessRights` 8191, `SignMessage` true, `CheckOutWhenRemoved` true). Every PayloadUUID is fresh.
 */
import { randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { encodeXml, type PlistDict } from '../../plist/index.ts';
import { createCertificate, createSelfSignedCa, rsaKeyPair } from '../certificates.ts';
import { signCms } from '../cms.ts';

/** A certificate and its private key, PEM. */
export interface KeyAndCert {
  certificatePem: string;
  privateKeyPem: string;
}

/** A new server CA: `CN=Kitting Reference MDM`, 10 years, CA + digitalSignature. */
export async function createServerCa(): Promise<KeyAndCert> {
  const ca = await createSelfSignedCa(
    [
      { name: 'commonName', value: 'Kitting Reference MDM' },
      { name: 'organizationName', value: 'Kitting Station' },
    ],
    { digitalSignature: true },
  );
  return { certificatePem: ca.certificatePem, privateKeyPem: ca.privateKeyPem };
}

/** A device identity issued for one enrollment, with its PKCS#12. */
export interface IssuedIdentity {
  certificatePem: string;
  /** SHA-256 fingerprint of the certificate (DER), hex lower case: how check-ins find the enrollment. */
  fingerprint: string;
  p12: Buffer;
  p12Password: string;
}

/** SHA-256 of a certificate's DER, lower-case hex. */
export function fingerprintOf(cert: Buffer | string): string {
  return new X509Certificate(cert).fingerprint256.replace(/:/g, '').toLowerCase();
}

/** Issues `CN=<enrollmentId>` (2 years, digitalSignature + keyEncipherment, clientAuth) from the CA. */
export async function issueIdentity(ca: KeyAndCert, enrollmentId: string): Promise<IssuedIdentity> {
  const pair = await rsaKeyPair();
  const caCert = forge.pki.certificateFromPem(ca.certificatePem);
  const caKey = forge.pki.privateKeyFromPem(ca.privateKeyPem);
  const cert = createCertificate({
    publicKeyPem: pair.publicKeyPem,
    subject: [
      { name: 'commonName', value: enrollmentId },
      { name: 'organizationName', value: 'Kitting Reference MDM device identity' },
    ],
    issuer: caCert.subject.attributes,
    years: 2,
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true },
    ],
    signingKey: caKey,
  });
  const p12Password = randomBytes(12).toString('base64url');
  const p12Asn1 = forge.pkcs12.toPkcs12Asn1(forge.pki.privateKeyFromPem(pair.privateKeyPem), [cert], p12Password, {
    algorithm: '3des',
    friendlyName: `MDM identity ${enrollmentId}`,
  });
  const certificatePem = forge.pki.certificateToPem(cert);
  return {
    certificatePem,
    fingerprint: fingerprintOf(certificatePem),
    p12: Buffer.from(forge.asn1.toDer(p12Asn1).getBytes(), 'binary'),
    p12Password,
  };
}

/** What goes into one enrollment profile. */
export interface ProfileSpec {
  /** The server's base URL (`http://127.0.0.1:PORT`). */
  baseUrl: string;
  enrollmentId: string;
  groupId: string;
  groupName: string;
  topic: string;
  identity: IssuedIdentity;
}

/** The profile's PayloadIdentifier. */
export const PROFILE_IDENTIFIER = 'jp.kitting-station.reference-mdm.enrollment';

/** The enrollment profile plist (unsigned); see the module comment. */
export function enrollmentProfile(spec: ProfileSpec): PlistDict {
  const identityUuid = randomUUID().toUpperCase();
  return {
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: PROFILE_IDENTIFIER,
    PayloadUUID: randomUUID().toUpperCase(),
    PayloadDisplayName: `MDM enrollment (${spec.groupName})`,
    PayloadDescription: `Enrolls this device in the Kitting reference MDM, group ${spec.groupId}.`,
    PayloadOrganization: 'Kitting Reference MDM',
    PayloadRemovalDisallowed: false,
    PayloadContent: [
      {
        PayloadType: 'com.apple.security.pkcs12',
        PayloadVersion: 1,
        PayloadIdentifier: `${PROFILE_IDENTIFIER}.identity`,
        PayloadUUID: identityUuid,
        PayloadDisplayName: 'MDM device identity',
        PayloadCertificateFileName: `mdm-identity-${spec.enrollmentId}.p12`,
        PayloadContent: spec.identity.p12,
        Password: spec.identity.p12Password,
      },
      {
        PayloadType: 'com.apple.mdm',
        PayloadVersion: 1,
        PayloadIdentifier: `${PROFILE_IDENTIFIER}.mdm`,
        PayloadUUID: randomUUID().toUpperCase(),
        PayloadDisplayName: 'Mobile Device Management',
        ServerURL: `${spec.baseUrl}/mdm/server`,
        CheckInURL: `${spec.baseUrl}/mdm/checkin`,
        Topic: spec.topic,
        IdentityCertificateUUID: identityUuid,
        AccessRights: 8191,
        SignMessage: true,
        CheckOutWhenRemoved: true,
        ServerCapabilities: ['com.apple.mdm.per-user-connections'],
      },
    ],
  };
}

/** The profile as the server sends it: XML plist, CMS-signed by the server CA. */
export function signedProfile(profile: PlistDict, ca: KeyAndCert): Buffer {
  return signCms(encodeXml(profile), ca.certificatePem, ca.privateKeyPem);
}

/** A trust profile (`trust_profile_url`): the server CA as a `com.apple.security.root` payload. */
export function trustProfile(ca: KeyAndCert): PlistDict {
  return {
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: 'jp.kitting-station.reference-mdm.trust',
    PayloadUUID: randomUUID().toUpperCase(),
    PayloadDisplayName: 'Kitting Reference MDM trust',
    PayloadContent: [
      {
        PayloadType: 'com.apple.security.root',
        PayloadVersion: 1,
        PayloadIdentifier: 'jp.kitting-station.reference-mdm.trust.root',
        PayloadUUID: randomUUID().toUpperCase(),
        PayloadDisplayName: 'Kitting Reference MDM CA',
        PayloadCertificateFileName: 'kitting-reference-mdm.cer',
        PayloadContent: new X509Certificate(ca.certificatePem).raw,
      },
    ],
  };
}
