/**
 * Signed configuration profiles: CMS/PKCS#7 SignedData with the plist attached (`.mobileconfig`
 * as Apple Configurator and `security cms -S` write them, DER or BER with indefinite lengths, or
 * PEM). A small BER walker extracts the content and the signer certificates by raw bytes, so any
 * certificate algorithm (RSA, ECDSA …) passes through untouched. The signature is not verified here.
 */
import { KitError } from '../errors.ts';
import type { PlistValue } from './types.ts';

interface Tlv {
  /** The identifier octet (class, constructed bit, tag number). */
  tag: number;
  /** Where the whole element starts. */
  start: number;
  /** First content byte. */
  cStart: number;
  /** End of the content (before the end-of-contents octets of an indefinite length). */
  cEnd: number;
  /** First byte after the element. */
  end: number;
}

const MAX_BER_DEPTH = 64;
// 1.2.840.113549.1.7.2 (signedData), 1.2.840.113549.1.7.1 (data), 2.5.29.14 (subjectKeyIdentifier)
const OID_SIGNED_DATA = Buffer.from('06092a864886f70d010702', 'hex');
const OID_SKI = Buffer.from('0603551d0e', 'hex');

function cmsError(message: string, offset?: number): KitError {
  return new KitError('cms/malformed', offset === undefined ? message : `${message} (at byte offset ${offset})`, {
    details: offset === undefined ? {} : { offset },
  });
}

/** Reads one BER element at `at`, which must end by `limit`. */
function tlv(buf: Buffer, at: number, limit: number, depth = 0): Tlv {
  if (depth > MAX_BER_DEPTH) throw cmsError('ASN.1 nesting too deep', at);
  if (at + 2 > limit) throw cmsError('truncated ASN.1 element', at);
  const tag = buf[at] as number;
  if ((tag & 0x1f) === 0x1f) throw cmsError('unsupported high-tag-number ASN.1 element', at);
  const l0 = buf[at + 1] as number;
  let p = at + 2;
  if (l0 === 0x80) {
    if ((tag & 0x20) === 0) throw cmsError('indefinite length on a primitive ASN.1 element', at);
    // Indefinite: children up to the end-of-contents octets 00 00.
    for (;;) {
      if (p + 2 > limit) throw cmsError('unterminated indefinite-length ASN.1 element', at);
      if (buf[p] === 0 && buf[p + 1] === 0) return { tag, start: at, cStart: at + 2, cEnd: p, end: p + 2 };
      p = tlv(buf, p, limit, depth + 1).end;
    }
  }
  let len = l0;
  if (l0 & 0x80) {
    const n = l0 & 0x7f;
    if (n > 6 || p + n > limit) throw cmsError('invalid ASN.1 length', at);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[p + i] as number);
    p += n;
  }
  if (len > limit - p) throw cmsError(`ASN.1 element claims ${len} bytes but only ${limit - p} remain`, at);
  return { tag, start: at, cStart: p, cEnd: p + len, end: p + len };
}

function children(buf: Buffer, t: Tlv, depth = 0): Tlv[] {
  const out: Tlv[] = [];
  for (let p = t.cStart; p < t.cEnd;) {
    const c = tlv(buf, p, t.cEnd, depth + 1);
    out.push(c);
    p = c.end;
  }
  return out;
}

/** The bytes of an OCTET STRING, primitive (0x04) or constructed from chunks (0x24). */
function octets(buf: Buffer, t: Tlv, depth = 0): Buffer {
  if (t.tag === 0x04) return buf.subarray(t.cStart, t.cEnd);
  if (t.tag === 0x24 && depth < MAX_BER_DEPTH)
    return Buffer.concat(children(buf, t).map((c) => octets(buf, c, depth + 1)));
  throw cmsError('expected an OCTET STRING for the signed content', t.start);
}

function expect(t: Tlv | undefined, tag: number, what: string, near: number): Tlv {
  if (t === undefined || t.tag !== tag) throw cmsError(`expected ${what}`, t?.start ?? near);
  return t;
}

function raw(buf: Buffer, t: Tlv): Buffer {
  return buf.subarray(t.start, t.end);
}

interface CertIds {
  der: Buffer;
  issuer: Buffer;
  serial: Buffer;
  ski: Buffer | undefined;
}

function certIds(buf: Buffer, cert: Tlv): CertIds {
  const tbs = expect(children(buf, cert)[0], 0x30, 'a certificate TBS sequence', cert.start);
  const parts = children(buf, tbs);
  let i = parts[0]?.tag === 0xa0 ? 1 : 0; // optional [0] version
  const serial = expect(parts[i], 0x02, 'a certificate serial number', tbs.start);
  i += 2; // serial, signature algorithm
  const issuer = expect(parts[i], 0x30, 'a certificate issuer', tbs.start);
  let ski: Buffer | undefined;
  const ext = parts.find((p) => p.tag === 0xa3);
  if (ext !== undefined) {
    const list = children(buf, ext)[0];
    if (list !== undefined) {
      for (const e of children(buf, list)) {
        const f = children(buf, e);
        const oid = f[0];
        const value = f[f.length - 1];
        if (oid !== undefined && value !== undefined && raw(buf, oid).equals(OID_SKI) && value.tag === 0x04) {
          const inner = tlv(buf, value.cStart, value.cEnd);
          if (inner.tag === 0x04) ski = buf.subarray(inner.cStart, inner.cEnd);
        }
      }
    }
  }
  return {
    der: Buffer.from(raw(buf, cert)),
    issuer: raw(buf, issuer),
    serial: buf.subarray(serial.cStart, serial.cEnd),
    ski,
  };
}

function pemBody(text: string): Buffer | undefined {
  const m =
    /-----BEGIN (?:PKCS7|CMS|PKCS #7 SIGNED DATA)-----([\s\S]*?)-----END (?:PKCS7|CMS|PKCS #7 SIGNED DATA)-----/.exec(
      text,
    );
  if (m === null) return undefined;
  const b64 = (m[1] as string).replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw cmsError('invalid base64 in the PEM block');
  return Buffer.from(b64, 'base64');
}

/**
 * Extracts the attached content and the signer certificates (DER) of a CMS SignedData.
 *
 * @throws KitError `cms/malformed` when the bytes are not a SignedData with attached content.
 */
export function parseSignedData(bytes: Uint8Array): { content: Buffer; signerCertificatesDer: Buffer[] } {
  let buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const head = buf.subarray(0, 64).toString('latin1').trimStart();
  if (
    head.startsWith('bplist') ||
    head.startsWith('<?xml') ||
    head.startsWith('<plist') ||
    head.startsWith('<!DOCTYPE')
  ) {
    throw cmsError('this is an unsigned property list, not CMS SignedData (decode it as a plist instead)');
  }
  if (head.startsWith('-----BEGIN')) {
    const der = pemBody(buf.toString('latin1'));
    if (der === undefined) throw cmsError('PEM input without a PKCS7/CMS block');
    buf = der;
  }
  if (buf.length === 0 || buf[0] !== 0x30) throw cmsError('not CMS SignedData (no ASN.1 SEQUENCE at the start)', 0);
  const contentInfo = tlv(buf, 0, buf.length);
  const ci = children(buf, contentInfo);
  const type = expect(ci[0], 0x06, 'the ContentInfo content type', contentInfo.start);
  if (!raw(buf, type).equals(OID_SIGNED_DATA)) throw cmsError('CMS content type is not signedData', type.start);
  const explicit = expect(ci[1], 0xa0, 'the SignedData content', type.end);
  const signedData = expect(children(buf, explicit)[0], 0x30, 'the SignedData sequence', explicit.start);
  const sd = children(buf, signedData);
  const encap = expect(sd[2], 0x30, 'the encapsulated content info', signedData.start);
  const ec = children(buf, encap);
  const eContent = ec[1];
  if (eContent === undefined || eContent.tag !== 0xa0)
    throw cmsError('the signature is detached: no content is attached', encap.start);
  const contentOctets = children(buf, eContent)[0];
  if (contentOctets === undefined) throw cmsError('empty attached content', eContent.start);
  const content = Buffer.from(octets(buf, contentOctets));

  const certs: CertIds[] = [];
  let k = 3;
  if (sd[k]?.tag === 0xa0) {
    for (const c of children(buf, sd[k] as Tlv)) if (c.tag === 0x30) certs.push(certIds(buf, c));
    k++;
  }
  if (sd[k]?.tag === 0xa1) k++;
  const signerInfos = expect(sd[k], 0x31, 'the SignerInfos set', signedData.start);
  const signers: Buffer[] = [];
  for (const si of children(buf, signerInfos)) {
    const sid = children(buf, si)[1];
    if (sid === undefined) throw cmsError('SignerInfo without a signer identifier', si.start);
    let match: CertIds | undefined;
    if (sid.tag === 0x30) {
      const [issuer, serial] = children(buf, sid);
      if (issuer === undefined || serial === undefined) throw cmsError('invalid IssuerAndSerialNumber', sid.start);
      const iss = raw(buf, issuer);
      const ser = buf.subarray(serial.cStart, serial.cEnd);
      match = certs.find((c) => c.issuer.equals(iss) && c.serial.equals(ser));
    } else if (sid.tag === 0x80) {
      const keyId = buf.subarray(sid.cStart, sid.cEnd);
      match = certs.find((c) => c.ski?.equals(keyId) === true);
    } else throw cmsError('unknown signer identifier form', sid.start);
    const der = match?.der;
    if (der !== undefined && !signers.some((s) => s.equals(der))) signers.push(der);
  }
  return { content, signerCertificatesDer: signers };
}

/**
 * Reads a signed property list (a `.mobileconfig` wrapped in CMS/PKCS#7 SignedData, DER/BER or
 * PEM): returns the attached plist, decoded, and the DER certificates of its signers (those the
 * SignerInfos name and the SignedData carries). The signature itself is not verified.
 *
 * @throws KitError `cms/malformed` for input that is not SignedData with attached content (including
 *   an unsigned plist, with a message saying so).
 * @throws KitError `plist/malformed` when the attached content is not a valid plist.
 */
export function readSignedPlistWith(
  bytes: Uint8Array,
  decode: (content: Buffer) => PlistValue,
): { content: PlistValue; signerCertificatesDer: Buffer[] } {
  const { content, signerCertificatesDer } = parseSignedData(bytes);
  return { content: decode(content), signerCertificatesDer };
}
