/**
 * CMS (PKCS#7) SignedData for the supervision identity: the proof a device asks for in supervised
 * pairing (`ChallengeResponse`, protocols.md §3.4) and MCInstall escalation (`SignedRequest`, §4.4).
 *
 * Shape (what the device's `SecCMSVerifyCopyDataAndAttributes` needs): content **attached**
 * (eContentType id-data), the signer certificate embedded as the first and only certificate,
 * byte-for-byte the stored DER (the device compares it with the certificate it was given), digest
 * SHA-256, signed attributes contentType, signingTime, messageDigest, signature RSA PKCS#1 v1.5.
 * Built from ASN.1 parts so the certificate is never re-encoded; signing is node:crypto's.
 */
import crypto from 'node:crypto';
import forge from 'node-forge';
import { KitError } from '../errors.ts';
import { tbsFields } from './certificate.ts';

const { asn1 } = forge;
type Asn1 = forge.asn1.Asn1;

const OID = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  sha256: '2.16.840.1.101.3.4.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
};

const U = asn1.Class.UNIVERSAL;
const seq = (items: Asn1[]): Asn1 => asn1.create(U, asn1.Type.SEQUENCE, true, items);
const oid = (id: string): Asn1 => asn1.create(U, asn1.Type.OID, false, asn1.oidToDer(id).getBytes());
const octets = (b: Buffer): Asn1 => asn1.create(U, asn1.Type.OCTETSTRING, false, b.toString('binary'));
const int = (n: number): Asn1 => asn1.create(U, asn1.Type.INTEGER, false, asn1.integerToDer(n).getBytes());
const nullValue = (): Asn1 => asn1.create(U, asn1.Type.NULL, false, '');
const toDer = (item: Asn1): Buffer => Buffer.from(asn1.toDer(item).getBytes(), 'binary');
const fromDer = (b: Buffer): Asn1 => asn1.fromDer(b.toString('binary'));

/** A DER SET OF: members sorted by their encodings (X.690 §11.6), as signed attributes require. */
function setOf(items: Asn1[], tagClass = U, tag: number = asn1.Type.SET): Asn1 {
  const sorted = items.map(toDer).sort(Buffer.compare).map(fromDer);
  return asn1.create(tagClass, tag, true, sorted);
}

function attribute(type: string, value: Asn1): Asn1 {
  return seq([oid(type), asn1.create(U, asn1.Type.SET, true, [value])]);
}

/** signingTime as UTCTime for 1950–2049 (RFC 5652 §11.3), GeneralizedTime otherwise. */
function time(date: Date): Asn1 {
  const year = date.getUTCFullYear();
  return year >= 1950 && year < 2050
    ? asn1.create(U, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(U, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

/** Options of {@link signCms}. */
export interface SignCmsOptions {
  /** The signer certificate, DER; embedded as is. */
  readonly certificateDer: Buffer;
  /** The certificate's RSA private key. */
  readonly privateKey: crypto.KeyObject;
  /** The signingTime attribute (default now). */
  readonly signingTime?: Date;
}

/**
 * Signs `content` as CMS SignedData with the content attached (see the file comment); returns DER.
 * Throws `identity/unsupported-key` for a non-RSA key, `identity/corrupt-file` for an unreadable
 * certificate.
 */
export function signCms(content: Buffer, options: SignCmsOptions): Buffer {
  const { certificateDer, privateKey } = options;
  if (privateKey.asymmetricKeyType !== 'rsa') {
    throw new KitError(
      'identity/unsupported-key',
      `CMS signing needs an RSA key, not ${String(privateKey.asymmetricKeyType)}`,
    );
  }
  let certificate: Asn1;
  let names: ReturnType<typeof tbsFields>;
  try {
    certificate = fromDer(certificateDer);
    names = tbsFields(certificateDer);
  } catch (err) {
    throw new KitError('identity/corrupt-file', 'the signer certificate is unreadable', { cause: err });
  }
  const digest = crypto.createHash('sha256').update(content).digest();
  const attrs = [
    attribute(OID.contentType, oid(OID.data)),
    attribute(OID.signingTime, time(options.signingTime ?? new Date())),
    attribute(OID.messageDigest, octets(digest)),
  ];
  // The signature covers the attributes DER-encoded as a SET (tag 0x31); the SignerInfo carries
  // the same contents under the implicit [0] tag.
  const signedAttrsSet = setOf(attrs);
  const signature = crypto.sign('sha256', toDer(signedAttrsSet), {
    key: privateKey,
    padding: crypto.constants.RSA_PKCS1_PADDING,
  });
  const sha256 = seq([oid(OID.sha256), nullValue()]);
  const signerInfo = seq([
    int(1),
    seq([names.issuer, names.serial]),
    sha256,
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, signedAttrsSet.value as Asn1[]),
    seq([oid(OID.rsaEncryption), nullValue()]),
    octets(signature),
  ]);
  const signedData = seq([
    int(1),
    asn1.create(U, asn1.Type.SET, true, [seq([oid(OID.sha256), nullValue()])]),
    seq([oid(OID.data), asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [octets(content)])]),
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [certificate]),
    asn1.create(U, asn1.Type.SET, true, [signerInfo]),
  ]);
  return toDer(seq([oid(OID.signedData), asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [signedData])]));
}

/** Signs content with one identity: what {@link IdentityService.signer} hands out. */
export type CmsSigner = (content: Buffer) => Buffer;
