/**
 * RSA keys and X.509 certificates for the simulator: the simulated Apple device CA and the device
 * identities it issues (`device-ca.ts`), and the reference MDM server's CA and the enrollment
 * identities it issues (`mdm-server/profile.ts`). Every key is RSA 2048 (e 65537), every certificate
 * SHA-256 with RSA, a random positive 128-bit serial, and valid from a minute ago (clock skew).
 */
import { generateKeyPair, randomBytes } from 'node:crypto';
import forge from 'node-forge';

/** A fresh RSA key pair, PEM (SPKI public, PKCS#8 private). */
export interface RsaKeyPairPem {
  /** The public key, SPKI PEM. */
  publicKeyPem: string;
  /** The private key, PKCS#8 PEM. */
  privateKeyPem: string;
}

/** Generates an RSA 2048 key pair (e 65537). */
export function rsaKeyPair(): Promise<RsaKeyPairPem> {
  return new Promise((resolve, reject) => {
    generateKeyPair('rsa', { modulusLength: 2048, publicExponent: 0x10001 }, (err, publicKey, privateKey) => {
      if (err !== null) {
        reject(err);
        return;
      }
      resolve({
        publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
        privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      });
    });
  });
}

function certificateSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f;
  return b.toString('hex');
}

/** What {@link createCertificate} puts in a certificate. */
export interface CertificateSpec {
  /** The certified public key, PEM. */
  publicKeyPem: string;
  /** The subject name. */
  subject: forge.pki.CertificateField[];
  /** The issuer name (the subject for a self-signed certificate). */
  issuer: forge.pki.CertificateField[];
  /** Validity from a minute ago, in years of 365 days. */
  years: number;
  /** The extensions, as node-forge takes them. */
  extensions: object[];
  /** The issuer's key, which signs (SHA-256). */
  signingKey: forge.pki.rsa.PrivateKey;
}

/** Creates and signs a certificate as `spec` says; see the module comment. */
export function createCertificate(spec: CertificateSpec): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(spec.publicKeyPem);
  cert.serialNumber = certificateSerial();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + spec.years * 365 * 86_400_000);
  cert.setSubject(spec.subject);
  cert.setIssuer(spec.issuer);
  cert.setExtensions(spec.extensions);
  cert.sign(spec.signingKey, forge.md.sha256.create());
  return cert;
}

/** A new self-signed CA: its certificate and key. */
export interface CreatedCa {
  /** The CA certificate. */
  certificate: forge.pki.Certificate;
  /** The CA certificate, PEM. */
  certificatePem: string;
  /** The CA's private key. */
  privateKey: forge.pki.rsa.PrivateKey;
  /** The CA's private key, PKCS#8 PEM. */
  privateKeyPem: string;
}

/**
 * Creates a self-signed CA named `name` on a fresh key, valid 10 years: `basicConstraints` CA
 * (critical), `keyUsage` keyCertSign + cRLSign (+ digitalSignature when asked; critical), and a
 * `subjectKeyIdentifier`.
 */
export async function createSelfSignedCa(
  name: forge.pki.CertificateField[],
  options: { digitalSignature?: boolean } = {},
): Promise<CreatedCa> {
  const pair = await rsaKeyPair();
  const privateKey = forge.pki.privateKeyFromPem(pair.privateKeyPem);
  const keyUsage =
    options.digitalSignature === true
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true }
      : { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true };
  const certificate = createCertificate({
    publicKeyPem: pair.publicKeyPem,
    subject: name,
    issuer: name,
    years: 10,
    extensions: [{ name: 'basicConstraints', cA: true, critical: true }, keyUsage, { name: 'subjectKeyIdentifier' }],
    signingKey: privateKey,
  });
  return {
    certificate,
    certificatePem: forge.pki.certificateToPem(certificate),
    privateKey,
    privateKeyPem: pair.privateKeyPem,
  };
}
