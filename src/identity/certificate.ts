/**
 * Supervision certificates: creating one the way Apple Configurator does, reading the facts the
 * station needs from any X.509 certificate (names, validity, key), and fingerprints.
 *
 * Apple Configurator's own identity (protocols.md, Addendum): RSA 2048, self-signed, SHA-256,
 * subject = issuer = `CN=Apple Configurator: <org> (<UUID>), O=<org>, C=<country>`, KeyUsage
 * digitalSignature + keyEncipherment, ExtKeyUsage codeSigning, SKI. The station issues the same
 * shape with a 10-year validity (domain.md).
 */
import crypto from 'node:crypto';
import forge from 'node-forge';
import { KitError } from '../errors.ts';

const { asn1, pki } = forge;

/** SHA-256 of the DER certificate, lowercase hex (cli.md: the fingerprint everywhere). */
export function fingerprintOf(certificateDer: Buffer): string {
  return crypto.createHash('sha256').update(certificateDer).digest('hex');
}

/** The display form of a fingerprint: uppercase hex pairs joined by colons (`AB:CD:…`). */
export function displayFingerprint(fingerprint: string): string {
  return (fingerprint.toUpperCase().match(/../g) ?? []).join(':');
}

/** What the station reads from a certificate. */
export interface CertificateInfo {
  /** Subject attributes by short name (`CN`, `O`, `C`, `OU` …); the first value of each. */
  readonly subject: Readonly<Record<string, string>>;
  readonly issuer: Readonly<Record<string, string>>;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Serial number, lowercase hex. */
  readonly serial: string;
  /** `rsa`, `ec`, `ed25519` … */
  readonly keyType: string;
  /** RSA modulus length in bits (undefined for other key types). */
  readonly keyBits: number | undefined;
  readonly fingerprint: string;
}

const SHORT_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '1.2.840.113549.1.9.1': 'emailAddress',
};

function decodeString(value: forge.asn1.Asn1): string {
  const raw = typeof value.value === 'string' ? value.value : '';
  switch (value.type) {
    case asn1.Type.UTF8:
      return Buffer.from(raw, 'binary').toString('utf8');
    case asn1.Type.BMPSTRING:
      // forge has already decoded the UTF-16 code units into the JS string.
      return raw;
    default:
      return Buffer.from(raw, 'binary').toString('latin1');
  }
}

function readName(name: forge.asn1.Asn1 | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (name === undefined || !Array.isArray(name.value)) return out;
  for (const rdn of name.value) {
    if (!Array.isArray(rdn.value)) continue;
    for (const atv of rdn.value) {
      if (!Array.isArray(atv.value)) continue;
      const [oid, value] = atv.value;
      if (oid === undefined || value === undefined || typeof oid.value !== 'string') continue;
      const id = asn1.derToOid(oid.value);
      const key = SHORT_NAMES[id] ?? id;
      if (!(key in out)) out[key] = decodeString(value);
    }
  }
  return out;
}

/** The TBSCertificate fields of a DER certificate, as forge ASN.1 (no key-type restriction). */
export function tbsFields(certificateDer: Buffer): {
  serial: forge.asn1.Asn1;
  issuer: forge.asn1.Asn1;
  subject: forge.asn1.Asn1;
} {
  const cert = asn1.fromDer(certificateDer.toString('binary'));
  const tbs = Array.isArray(cert.value) ? cert.value[0] : undefined;
  if (tbs === undefined || !Array.isArray(tbs.value)) throw new Error('not a certificate');
  const first = tbs.value[0];
  const skip = first !== undefined && first.tagClass === asn1.Class.CONTEXT_SPECIFIC ? 1 : 0;
  const serial = tbs.value[skip];
  const issuer = tbs.value[skip + 2];
  const subject = tbs.value[skip + 4];
  if (serial === undefined || issuer === undefined || subject === undefined) throw new Error('short TBSCertificate');
  return { serial, issuer, subject };
}

/**
 * Reads a DER certificate. Throws `identity/corrupt-file` (with `source` as the file name) when
 * it is not a parsable X.509 certificate.
 */
export function inspectCertificate(certificateDer: Buffer, source = 'certificate'): CertificateInfo {
  let x509: crypto.X509Certificate;
  let names: ReturnType<typeof tbsFields>;
  let key: crypto.KeyObject;
  let notBefore: Date;
  let notAfter: Date;
  try {
    x509 = new crypto.X509Certificate(certificateDer);
    names = tbsFields(certificateDer);
    // A certificate whose outer DER parses can still hold an undecodable key (found by fuzzing:
    // the publicKey getter threw a bare OpenSSL "decode error") or unreadable validity dates.
    key = x509.publicKey;
    notBefore = new Date(x509.validFrom);
    notAfter = new Date(x509.validTo);
    if (Number.isNaN(notBefore.getTime()) || Number.isNaN(notAfter.getTime()))
      throw new Error('unreadable validity dates');
  } catch (err) {
    throw new KitError('identity/corrupt-file', `${source}: not a readable X.509 certificate`, {
      cause: err,
      details: { file: source },
    });
  }
  return {
    subject: readName(names.subject),
    issuer: readName(names.issuer),
    notBefore,
    notAfter,
    serial: x509.serialNumber.toLowerCase(),
    keyType: key.asymmetricKeyType ?? 'unknown',
    keyBits: key.asymmetricKeyType === 'rsa' ? key.asymmetricKeyDetails?.modulusLength : undefined,
    fingerprint: fingerprintOf(certificateDer),
  };
}

/**
 * The organization an identity belongs to: the certificate's `O`, else its `CN` without Apple
 * Configurator's `Apple Configurator: … (UUID)` wrapping, else `Unknown organization`.
 */
export function organizationOf(info: CertificateInfo): string {
  const o = info.subject.O?.trim();
  if (o !== undefined && o !== '') return o;
  const cn = info.subject.CN?.trim();
  if (cn !== undefined && cn !== '') {
    const m = /^Apple Configurator: (.*) \([0-9A-Fa-f-]{36}\)$/.exec(cn);
    return (m?.[1] ?? cn).trim() || cn;
  }
  return 'Unknown organization';
}

/** Input of {@link createSupervisionCertificate}. */
export interface SupervisionCertificateSpec {
  readonly org: string;
  /** ISO 3166 two-letter code, e.g. `JP`. */
  readonly country?: string;
  readonly publicKey: crypto.KeyObject;
  readonly privateKey: crypto.KeyObject;
  /** Defaults to now; the certificate is valid from 5 minutes before (device clocks drift). */
  readonly now?: Date;
  /** Validity in years (default 10). */
  readonly years?: number;
  /** Defaults to a random uppercase UUID. */
  readonly uuid?: string;
}

/**
 * Issues a self-signed supervision certificate shaped like Apple Configurator's (see the file
 * comment): SHA-256 with RSA, a random positive 16-byte serial, KeyUsage digitalSignature +
 * keyEncipherment (critical), ExtKeyUsage codeSigning, basicConstraints CA:FALSE (critical), SKI.
 * Returns the DER bytes. Throws `usage/invalid-argument` for a bad country code.
 */
export function createSupervisionCertificate(spec: SupervisionCertificateSpec): Buffer {
  if (spec.country !== undefined && !/^[A-Z]{2}$/.test(spec.country)) {
    throw new KitError(
      'usage/invalid-argument',
      `country must be a two-letter ISO 3166 code (JP, US …): ${spec.country}`,
    );
  }
  const now = spec.now ?? new Date();
  const uuid = (spec.uuid ?? crypto.randomUUID()).toUpperCase();
  const cert = pki.createCertificate();
  cert.publicKey = pki.publicKeyFromPem(spec.publicKey.export({ type: 'spki', format: 'pem' }).toString());
  const serial = crypto.randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f || 0x01;
  cert.serialNumber = serial.toString('hex');
  cert.validity.notBefore = new Date(now.getTime() - 5 * 60_000);
  const notAfter = new Date(cert.validity.notBefore);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + (spec.years ?? 10));
  cert.validity.notAfter = notAfter;
  // forge's typings declare valueTagClass as a Class, but it is the string type tag (UTF8String here).
  const utf8 = asn1.Type.UTF8 as unknown as forge.asn1.Class;
  const attrs: forge.pki.CertificateField[] = [
    { shortName: 'CN', value: `Apple Configurator: ${spec.org} (${uuid})`, valueTagClass: utf8 },
    { shortName: 'O', value: spec.org, valueTagClass: utf8 },
  ];
  if (spec.country !== undefined) attrs.push({ shortName: 'C', value: spec.country });
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', codeSigning: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  const forgeKey = pki.privateKeyFromPem(spec.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString());
  cert.sign(forgeKey, forge.md.sha256.create());
  return Buffer.from(asn1.toDer(pki.certificateToAsn1(cert)).getBytes(), 'binary');
}
