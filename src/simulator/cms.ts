/**
 * CMS/PKCS#7 SignedData for the simulator, device and reference MDM server alike: verifying what a
 * host signs (the escalation challenge of MCInstall, the supervised-pairing challenge), what a device
 * signs (its MachineInfo at enrollment, attached; its check-in bodies in the `Mdm-Signature` header,
 * detached), and signing what either sends (MachineInfo, check-in bodies, enrollment profiles).
 *
 * Verification follows the device (protocols.md §4.4): the content must be ATTACHED (a detached
 * signature is refused) unless the caller supplies the detached content, in which case none may be
 * attached; the signer must be one of the certificates the SignedData carries, the `messageDigest`
 * signed attribute must match the content, and the signature over the signed attributes (or over the
 * content when there are none) must verify with the signer's key. SHA-1, SHA-256, SHA-384 and SHA-512
 * with RSA or ECDSA are accepted (go-ios signs with SHA-1, pymobiledevice3 with SHA-256). DER only:
 * every client writes DER. {@link chainsTo} then says whether that signer was issued by a given CA
 * (directly or through intermediates carried in the SignedData).
 */
import { createHash, verify as cryptoVerify, X509Certificate } from 'node:crypto';
import forge from 'node-forge';

/** One DER element: tag octet and byte ranges. */
interface Tlv {
  tag: number;
  start: number;
  cStart: number;
  end: number;
}

function tlv(buf: Buffer, at: number, limit: number): Tlv {
  if (at + 2 > limit) throw new Error('truncated DER element');
  const tag = buf[at] as number;
  const l0 = buf[at + 1] as number;
  let p = at + 2;
  let len = l0;
  if (l0 === 0x80) throw new Error('indefinite lengths are not DER');
  if (l0 & 0x80) {
    const n = l0 & 0x7f;
    if (n === 0 || n > 4 || p + n > limit) throw new Error('invalid DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[p + i] as number);
    p += n;
  }
  if (p + len > limit) throw new Error('DER element longer than its container');
  return { tag, start: at, cStart: p, end: p + len };
}

function kids(buf: Buffer, t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let p = t.cStart; p < t.end;) {
    const c = tlv(buf, p, t.end);
    out.push(c);
    p = c.end;
  }
  return out;
}

function need(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (t === undefined || t.tag !== tag) throw new Error(`expected ${what}`);
  return t;
}

function oidOf(buf: Buffer, t: Tlv): string {
  return forge.asn1.derToOid(forge.util.createBuffer(buf.subarray(t.cStart, t.end).toString('binary')));
}

const HASHES: Readonly<Record<string, string>> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};
const OID_SIGNED_DATA = '1.2.840.113549.1.7.2';
const OID_MESSAGE_DIGEST = '1.2.840.113549.1.9.4';

/** What a verified SignedData carried. */
export interface VerifiedCms {
  /** The signed content (attached, or the detached content given). */
  content: Buffer;
  /** DER of the certificate whose signature verified. */
  signerCertificate: Buffer;
  /** DER of every certificate in the SignedData, in order. */
  certificates: Buffer[];
}

/** The outcome of {@link verifyCms}: the verified parts, or why not. */
export type CmsVerdict = { ok: true; value: VerifiedCms } | { ok: false; reason: string };

/**
 * Verifies CMS SignedData; see the module comment. With `detachedContent` the SignedData must carry
 * no content and the signature covers `detachedContent`; without, the content must be attached.
 * Never throws.
 */
export function verifyCms(bytes: Buffer, detachedContent?: Buffer): CmsVerdict {
  try {
    return { ok: true, value: verifyOrThrow(bytes, detachedContent) };
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) };
  }
}

function verifyOrThrow(buf: Buffer, detached: Buffer | undefined): VerifiedCms {
  const ci = need(tlv(buf, 0, buf.length), 0x30, 'a ContentInfo sequence');
  const [type, wrapped] = kids(buf, ci);
  if (oidOf(buf, need(type, 0x06, 'a content type')) !== OID_SIGNED_DATA) throw new Error('not SignedData');
  const sd = need(kids(buf, need(wrapped, 0xa0, 'the SignedData'))[0], 0x30, 'a SignedData sequence');
  const parts = kids(buf, sd);
  const encap = kids(buf, need(parts[2], 0x30, 'the encapsulated content'));
  const eContent = encap[1];
  let content: Buffer;
  if (detached !== undefined) {
    if (eContent !== undefined) throw new Error('expected a detached signature, but content is attached');
    content = detached;
  } else {
    if (eContent === undefined) throw new Error('the signature is detached: no content is attached');
    const octets = need(kids(buf, need(eContent, 0xa0, 'the attached content'))[0], 0x04, 'an OCTET STRING');
    content = Buffer.from(buf.subarray(octets.cStart, octets.end));
  }

  const certificates: Buffer[] = [];
  let k = 3;
  if (parts[k]?.tag === 0xa0) {
    for (const c of kids(buf, parts[k] as Tlv))
      if (c.tag === 0x30) certificates.push(Buffer.from(buf.subarray(c.start, c.end)));
    k++;
  }
  if (parts[k]?.tag === 0xa1) k++;
  const signerInfos = kids(buf, need(parts[k], 0x31, 'the SignerInfos'));
  if (signerInfos.length === 0) throw new Error('no signer');
  let lastReason = 'no certificate in the signature verifies it';
  for (const si of signerInfos) {
    for (const cert of certificates) {
      try {
        verifySigner(buf, si, content, cert);
        return { content, signerCertificate: cert, certificates };
      } catch (err) {
        lastReason = err instanceof Error ? err.message : String(err);
      }
    }
  }
  throw new Error(lastReason);
}

function verifySigner(buf: Buffer, si: Tlv, content: Buffer, certDer: Buffer): void {
  const f = kids(buf, si);
  const digestAlg = HASHES[oidOf(buf, need(kids(buf, need(f[2], 0x30, 'a digest algorithm'))[0], 0x06, 'an OID'))];
  if (digestAlg === undefined) throw new Error('unsupported digest algorithm');
  let i = 3;
  let signedBytes = content;
  const attrs = f[i];
  if (attrs?.tag === 0xa0) {
    // The signature covers the attributes re-tagged as a SET OF.
    signedBytes = Buffer.concat([Buffer.from([0x31]), buf.subarray(attrs.start + 1, attrs.end)]);
    let digestSeen = false;
    for (const a of kids(buf, attrs)) {
      const [attrType, values] = kids(buf, a);
      if (attrType === undefined || values === undefined || oidOf(buf, attrType) !== OID_MESSAGE_DIGEST) continue;
      const v = need(kids(buf, values)[0], 0x04, 'a message digest');
      const expected = createHash(digestAlg).update(content).digest();
      if (!expected.equals(buf.subarray(v.cStart, v.end)))
        throw new Error('the message digest does not match the content');
      digestSeen = true;
    }
    if (!digestSeen) throw new Error('signed attributes without a message digest');
    i++;
  }
  i++; // signature algorithm
  const sig = need(f[i], 0x04, 'a signature');
  const signature = buf.subarray(sig.cStart, sig.end);
  const key = new X509Certificate(certDer).publicKey;
  if (!cryptoVerify(digestAlg, signedBytes, key, signature)) throw new Error('the signature does not verify');
}

/**
 * True when `leafDer` was issued by the CA `caPem`, directly or through intermediates among
 * `intermediates` (each link: issuer name matches and the signature verifies; validity dates hold).
 */
export function chainsTo(leafDer: Buffer, caPem: string, intermediates: readonly Buffer[] = []): boolean {
  let ca: X509Certificate;
  try {
    ca = new X509Certificate(caPem);
  } catch {
    return false;
  }
  const now = Date.now();
  const valid = (c: X509Certificate): boolean => Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
  let current: X509Certificate;
  try {
    current = new X509Certificate(leafDer);
  } catch {
    return false;
  }
  const pool = intermediates.flatMap((d) => {
    try {
      return [new X509Certificate(d)];
    } catch {
      return [];
    }
  });
  for (let depth = 0; depth < 5; depth++) {
    if (!valid(current)) return false;
    if (current.checkIssued(ca) && current.verify(ca.publicKey)) return valid(ca);
    const next = pool.find((c) => !c.raw.equals(current.raw) && current.checkIssued(c) && current.verify(c.publicKey));
    if (next === undefined || next.ca !== true) return false;
    current = next;
  }
  return false;
}

/** How {@link signCms} signs. */
export interface SignCmsOptions {
  /** Leave the content out of the SignedData (as an `Mdm-Signature` header carries it). */
  detached?: boolean;
  /** Further certificates (PEM) to carry besides the signer's. */
  extraCertificates?: readonly string[];
}

/**
 * Signs `content` as CMS SignedData, SHA-256, the signer certificate included (and any
 * `extraCertificates`), with the content attached unless `detached`: as a device signs its
 * MachineInfo (attached) and its check-in bodies (detached), and as the MDM server signs profiles.
 */
export function signCms(
  content: Buffer,
  certificatePem: string,
  privateKeyPem: string,
  options: SignCmsOptions = {},
): Buffer {
  const p7 = forge.pkcs7.createSignedData();
  p7.content = forge.util.createBuffer(content.toString('binary'));
  const cert = forge.pki.certificateFromPem(certificatePem);
  p7.addCertificate(cert);
  for (const pem of options.extraCertificates ?? []) p7.addCertificate(forge.pki.certificateFromPem(pem));
  p7.addSigner({
    key: forge.pki.privateKeyFromPem(privateKeyPem),
    certificate: cert,
    digestAlgorithm: forge.pki.oids.sha256 as string,
    authenticatedAttributes: [
      { type: forge.pki.oids.contentType as string, value: forge.pki.oids.data as string },
      { type: forge.pki.oids.messageDigest as string },
      { type: forge.pki.oids.signingTime as string, value: new Date().toISOString() },
    ],
  });
  p7.sign({ detached: options.detached === true });
  return Buffer.from(forge.asn1.toDer(p7.toAsn1()).getBytes(), 'binary');
}

/** DER of a certificate given as DER or PEM; undefined when it does not parse. */
export function toCertificateDer(cert: Buffer | string): Buffer | undefined {
  try {
    return new X509Certificate(cert).raw;
  } catch {
    return undefined;
  }
}

/** PEM text of a DER certificate. */
export function derToPem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN CERTIFICATE-----\n${b64.replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
}
