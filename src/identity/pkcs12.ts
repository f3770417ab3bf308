/**
 * PKCS#12 (.p12 / .pfx) for supervision identities: reading files made by Apple Configurator,
 * macOS Keychain, openssl (3.x default and `-legacy`), go-ios instructions; writing files those
 * tools read back.
 *
 * Writing (choice documented in the identity README section of the report and in cli help):
 * - `3des` (default): key bag pbeWithSHAAnd3-KeyTripleDES-CBC (PKCS#12 KDF, 2048 iterations),
 *   certificate bag unencrypted, MAC HMAC-SHA-1. Every macOS (Keychain, Apple Configurator)
 *   imports it, and so does openssl 3 without `-legacy` (no RC2 involved).
 * - `aes256`: what openssl 3 writes by default: key bag PBES2 (PBKDF2-HMAC-SHA256, 2048
 *   iterations, AES-256-CBC), MAC HMAC-SHA-256, 8-byte salts. macOS 13 and older refuse such files
 *   ("wrong password"); newer macOS reads them.
 * node-forge cannot write a SHA-256 MAC, so the PFX is assembled here from ASN.1 parts; the
 * encryption itself is node:crypto's (PBES2) or forge's PKCS#12 PBE (3DES).
 */
import crypto from 'node:crypto';
import forge from 'node-forge';
import { KitError } from '../errors.ts';

const { asn1, pki } = forge;
type Asn1 = forge.asn1.Asn1;

/** PKCS#12 encryption profiles the station writes. */
export type Pkcs12Algorithm = '3des' | 'aes256';
export const PKCS12_ALGORITHMS: readonly Pkcs12Algorithm[] = ['3des', 'aes256'];

const ITERATIONS = 2048;
const OID = {
  data: '1.2.840.113549.1.7.1',
  certBag: '1.2.840.113549.1.12.10.1.3',
  pkcs8ShroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  localKeyId: '1.2.840.113549.1.9.21',
  friendlyName: '1.2.840.113549.1.9.20',
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
};

const seq = (items: Asn1[]): Asn1 => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, items);
const set = (items: Asn1[]): Asn1 => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, items);
const oid = (id: string): Asn1 => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(id).getBytes());
const octets = (b: Buffer): Asn1 =>
  asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, b.toString('binary'));
const int = (n: number): Asn1 =>
  asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(n).getBytes());
const explicit0 = (item: Asn1): Asn1 => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [item]);
const der = (item: Asn1): Buffer => Buffer.from(asn1.toDer(item).getBytes(), 'binary');
const fromDer = (b: Buffer): Asn1 => asn1.fromDer(b.toString('binary'));
const nullValue = (): Asn1 => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, '');

/** A BMPString; forge encodes the JS string's UTF-16 code units itself. */
function bmpString(s: string): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BMPSTRING, false, s);
}

function dataContentInfo(content: Buffer): Asn1 {
  return seq([oid(OID.data), explicit0(octets(content))]);
}

/** Options of {@link buildPkcs12}. */
export interface BuildPkcs12Options {
  readonly certificateDer: Buffer;
  readonly privateKey: crypto.KeyObject;
  /** Non-empty. */
  readonly password: string;
  readonly algorithm?: Pkcs12Algorithm;
  /** Shown by Keychain Access; defaults to none. */
  readonly friendlyName?: string;
}

/** Writes a PKCS#12 file (DER bytes) holding one certificate and its private key. See the file comment. */
export function buildPkcs12(options: BuildPkcs12Options): Buffer {
  const { certificateDer, privateKey, password } = options;
  const algorithm = options.algorithm ?? '3des';
  if (password.length === 0) throw new KitError('usage/invalid-argument', 'a .p12 export needs a non-empty password');
  const localKeyId = crypto.createHash('sha1').update(certificateDer).digest();
  const attrs: Asn1[] = [seq([oid(OID.localKeyId), set([octets(localKeyId)])])];
  if (options.friendlyName !== undefined)
    attrs.push(seq([oid(OID.friendlyName), set([bmpString(options.friendlyName)])]));
  const bagAttributes = set(attrs);

  const certBag = seq([
    oid(OID.certBag),
    explicit0(seq([oid(OID.x509Certificate), explicit0(octets(certificateDer))])),
    bagAttributes,
  ]);

  let encryptedKeyInfo: Asn1;
  if (algorithm === 'aes256') {
    // node:crypto writes PBES2 / PBKDF2-HMAC-SHA256 (2048 iterations) / AES-256-CBC, like openssl 3.
    const encrypted = privateKey.export({ type: 'pkcs8', format: 'der', cipher: 'aes-256-cbc', passphrase: password });
    encryptedKeyInfo = fromDer(encrypted);
  } else {
    const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
    encryptedKeyInfo = pki.encryptPrivateKeyInfo(fromDer(pkcs8), password, {
      algorithm: '3des',
      count: ITERATIONS,
      saltSize: 8,
    });
    pkcs8.fill(0);
  }
  const keyBag = seq([oid(OID.pkcs8ShroudedKeyBag), explicit0(encryptedKeyInfo), bagAttributes]);

  const authSafe = der(seq([dataContentInfo(der(seq([certBag]))), dataContentInfo(der(seq([keyBag])))]));

  const macDigest = algorithm === 'aes256' ? 'sha256' : 'sha1';
  const macSalt = crypto.randomBytes(8);
  const md = macDigest === 'sha256' ? forge.md.sha256.create() : forge.md.sha1.create();
  const macKey = Buffer.from(
    forge.pkcs12
      .generateKey(password, forge.util.createBuffer(macSalt.toString('binary')), 3, ITERATIONS, md.digestLength, md)
      .getBytes(),
    'binary',
  );
  const mac = crypto.createHmac(macDigest, macKey).update(authSafe).digest();
  const macData = seq([
    seq([seq([oid(macDigest === 'sha256' ? OID.sha256 : OID.sha1), nullValue()]), octets(mac)]),
    octets(macSalt),
    int(ITERATIONS),
  ]);
  return der(seq([int(3), dataContentInfo(authSafe), macData]));
}

/** What a PKCS#12 file held. */
export interface Pkcs12Contents {
  readonly certificates: Buffer[];
  readonly keys: crypto.KeyObject[];
}

function isPfx(obj: Asn1): boolean {
  if (!Array.isArray(obj.value) || obj.type !== asn1.Type.SEQUENCE) return false;
  const [version, authSafe] = obj.value;
  return (
    version !== undefined &&
    version.type === asn1.Type.INTEGER &&
    typeof version.value === 'string' &&
    version.value === '\u0003' &&
    authSafe !== undefined &&
    authSafe.type === asn1.Type.SEQUENCE
  );
}

/** Whether `bytes` look like a PKCS#12 PFX (an ASN.1 SEQUENCE starting with INTEGER 3). */
export function looksLikePkcs12(bytes: Buffer): boolean {
  try {
    return isPfx(asn1.fromDer(bytes.toString('binary'), false));
  } catch {
    return false;
  }
}

const WRONG_PASSWORD = /MAC could not be verified|Invalid password|wrong password|Failed to decrypt|Unable to decrypt/i;

function pfxMacVerifies(obj: Asn1, password: string): boolean {
  // PFX ::= SEQUENCE { version, authSafe ContentInfo, macData MacData }
  const items = Array.isArray(obj.value) ? obj.value : [];
  const authSafe = items[1];
  const macData = items[2];
  const content = Array.isArray(authSafe?.value) ? authSafe.value[1] : undefined;
  const octet = Array.isArray(content?.value) ? content.value[0] : undefined;
  if (macData === undefined || octet === undefined || !Array.isArray(macData.value)) return false;
  const [digestInfo, salt, iterations] = macData.value;
  if (!Array.isArray(digestInfo?.value) || typeof salt?.value !== 'string') return false;
  const [alg, digest] = digestInfo.value;
  const algOid =
    Array.isArray(alg?.value) && typeof alg.value[0]?.value === 'string' ? asn1.derToOid(alg.value[0].value) : '';
  const digestName = algOid === OID.sha256 ? 'sha256' : algOid === OID.sha1 ? 'sha1' : undefined;
  if (digestName === undefined || typeof digest?.value !== 'string') return false;
  const md = digestName === 'sha256' ? forge.md.sha256.create() : forge.md.sha1.create();
  const count = typeof iterations?.value === 'string' ? parseInt(forge.util.bytesToHex(iterations.value), 16) : 1;
  const key = Buffer.from(
    forge.pkcs12.generateKey(password, forge.util.createBuffer(salt.value), 3, count, md.digestLength, md).getBytes(),
    'binary',
  );
  const mac = crypto.createHmac(digestName, key).update(octetBytes(octet)).digest();
  const expected = Buffer.from(digest.value, 'binary');
  return expected.length === mac.length && crypto.timingSafeEqual(mac, expected);
}

/** The bytes of an OCTET STRING, primitive (DER) or constructed from chunks (BER, as macOS writes). */
function octetBytes(node: Asn1): Buffer {
  if (typeof node.value === 'string') return Buffer.from(node.value, 'binary');
  return Buffer.concat(node.value.map(octetBytes));
}

/**
 * Reads a PKCS#12 file. Throws `identity/corrupt-file` (unparsable or truncated, named by
 * `source`) and `identity/wrong-password`.
 *
 * Passwords: the MAC and legacy PBE use the password as BMPString (as openssl and macOS do); PBES2
 * uses its UTF-8 bytes. node-forge only gets the first right for non-ASCII passwords, so when a
 * non-ASCII password fails, the MAC is checked here and the bags are decrypted again with the
 * UTF-8 form.
 */
export function parsePkcs12(bytes: Buffer, password: string, source: string): Pkcs12Contents {
  const corrupt = (cause: unknown, what = 'not a readable PKCS#12 file'): KitError =>
    new KitError('identity/corrupt-file', `${source}: ${what}`, { cause, details: { file: source } });
  let obj: Asn1;
  try {
    obj = asn1.fromDer(bytes.toString('binary'), false);
  } catch (err) {
    throw corrupt(err, 'truncated or not DER/BER');
  }
  if (!isPfx(obj)) throw corrupt(undefined);
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    p12 = forge.pkcs12.pkcs12FromAsn1(obj, false, password);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (!WRONG_PASSWORD.test(message)) throw corrupt(err);
    // eslint-disable-next-line no-control-regex
    const ascii = /^[\x00-\x7f]*$/.test(password);
    if (ascii || !pfxMacVerifies(obj, password)) {
      throw new KitError('identity/wrong-password', `${source}: the password does not open this file`, {
        details: { file: source },
      });
    }
    try {
      const withoutMac = asn1.create(obj.tagClass, obj.type, true, (obj.value as Asn1[]).slice(0, 2));
      p12 = forge.pkcs12.pkcs12FromAsn1(withoutMac, false, Buffer.from(password, 'utf8').toString('binary'));
    } catch (err2) {
      throw new KitError('identity/wrong-password', `${source}: the password does not decrypt the contents`, {
        cause: err2,
        details: { file: source },
      });
    }
  }
  const certificates: Buffer[] = [];
  const keys: crypto.KeyObject[] = [];
  try {
    for (const safe of p12.safeContents) {
      for (const bag of safe.safeBags) {
        const raw = bag as typeof bag & { asn1?: Asn1 };
        if (bag.type === pki.oids.certBag) {
          if (bag.cert !== undefined && bag.cert !== null) certificates.push(der(pki.certificateToAsn1(bag.cert)));
          else if (raw.asn1 !== undefined) certificates.push(der(raw.asn1));
        } else if (bag.type === pki.oids.keyBag || bag.type === pki.oids.pkcs8ShroudedKeyBag) {
          if (bag.key !== undefined && bag.key !== null) {
            keys.push(crypto.createPrivateKey(pki.privateKeyToPem(bag.key)));
          } else if (raw.asn1 !== undefined) {
            keys.push(crypto.createPrivateKey({ key: der(raw.asn1), format: 'der', type: 'pkcs8' }));
          }
        }
      }
    }
  } catch (err) {
    throw corrupt(err, 'a certificate or key inside is unreadable');
  }
  return { certificates, keys };
}
