/**
 * Pair records and the certificates in them (protocols.md §3.1–3.2).
 *
 * The host creates three certificates: a root CA, a host certificate and a device certificate that
 * carries the device's own public key (`DevicePublicKey`). All have an empty subject and issuer,
 * serial 0 and ten years of validity, like libimobiledevice. Certificates are built with node-forge
 * and signed with node:crypto (fast native RSA); keys are written as PKCS#8 PEM.
 *
 * Records written by other tools are read too: libimobiledevice (binary plist, PKCS#8 keys),
 * go-ios (XML, PKCS#1 keys), pymobiledevice3 (XML); certificates signed with SHA-1 or SHA-256.
 */
import crypto from 'node:crypto';
import forge from 'node-forge';
import { z } from 'zod';
import { KitError } from '../errors.ts';
import type { PlistDict } from '../plist/index.ts';

/** A host pairing with one device, as stored by usbmuxd (Apple key names only in {@link pairRecordToPlist}). */
export interface PairRecord {
  /** Uppercase UUID naming this host pairing on the device. */
  hostId: string;
  /** usbmuxd's `ReadBUID` value when the record was made. */
  systemBuid: string;
  /** PEM texts (as bytes, the way they travel inside plist `<data>`). */
  hostCertificate: Buffer;
  hostPrivateKey: Buffer;
  rootCertificate: Buffer;
  rootPrivateKey: Buffer;
  deviceCertificate: Buffer;
  /** From the device's `Pair` reply; lets services start while the device is locked. */
  escrowBag: Buffer | undefined;
  /** The device's `WiFiAddress` (`aa:bb:cc:dd:ee:ff`). */
  wifiMacAddress: string | undefined;
}

/**
 * What supervised pairing (§3.4) and MCInstall escalation (§4.4) need from the organization's
 * supervision identity, without the device layer knowing where it lives: the certificate (DER, as in
 * the cloud configuration's `SupervisorHostCertificates`) and a signer making CMS SignedData over
 * the given content (content attached, signer certificate embedded). The identity service's
 * `signer(id)` plus the identity's certificate fit this shape.
 */
export interface SupervisorCredentials {
  readonly certificateDer: Buffer;
  sign(content: Buffer): Buffer | Promise<Buffer>;
}

/** The digest certificates are signed with. SHA-256 by default; SHA-1 for very old devices or tests. */
export type SignatureHash = 'sha256' | 'sha1';

const TEN_YEARS_MS = 10 * 365 * 24 * 60 * 60 * 1000;

export interface KeyPair {
  privateKey: crypto.KeyObject;
  publicKey: crypto.KeyObject;
}

/** RSA 2048 on libuv's thread pool: sixty-four devices pairing at once must not block the event loop. */
function newRsaKey(): Promise<KeyPair> {
  return new Promise((resolve, reject) => {
    crypto.generateKeyPair('rsa', { modulusLength: 2048, publicExponent: 0x10001 }, (err, publicKey, privateKey) => {
      if (err !== null) reject(err);
      else resolve({ publicKey, privateKey });
    });
  });
}

function forgePublicKey(key: crypto.KeyObject): forge.pki.rsa.PublicKey {
  const pem = key.export({ type: 'spki', format: 'pem' }).toString();
  return forge.pki.publicKeyFromPem(pem) as forge.pki.rsa.PublicKey;
}

type Extension = Record<string, unknown> & { name: string };

function makeCert(
  subjectKey: crypto.KeyObject,
  signer: crypto.KeyObject,
  extensions: Extension[],
  hash: SignatureHash,
  now: Date,
): Buffer {
  const cert = forge.pki.createCertificate();
  cert.version = 2; // X.509 v3
  cert.serialNumber = '00';
  cert.validity.notBefore = now;
  cert.validity.notAfter = new Date(now.getTime() + TEN_YEARS_MS);
  cert.setSubject([]);
  cert.setIssuer([]);
  cert.publicKey = forgePublicKey(subjectKey);
  cert.setExtensions(extensions);
  // forge lays out the TBSCertificate; node:crypto signs it (forge's pure-JS RSA is slow).
  const oid = forge.pki.oids[hash === 'sha1' ? 'sha1WithRSAEncryption' : 'sha256WithRSAEncryption'];
  if (oid === undefined) throw new KitError('bug', `no OID for ${hash}WithRSAEncryption`);
  cert.signatureOid = oid;
  (cert as unknown as { siginfo: { algorithmOid: string } }).siginfo.algorithmOid = oid;
  const tbs = (
    forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }
  ).getTBSCertificate(cert);
  const tbsDer = Buffer.from(forge.asn1.toDer(tbs).getBytes(), 'binary');
  const signature = crypto.sign(hash, tbsDer, signer);
  (cert as unknown as { tbsCertificate: forge.asn1.Asn1 }).tbsCertificate = tbs;
  cert.signature = signature.toString('binary');
  return Buffer.from(forge.pki.certificateToPem(cert), 'utf8');
}

/**
 * The device's public key from lockdown `DevicePublicKey` (PEM, PKCS#1 `RSA PUBLIC KEY` or SPKI).
 * @throws KitError `device/bad-reply` when it is not an RSA public key.
 */
export function parseDevicePublicKey(pem: Buffer | string): crypto.KeyObject {
  try {
    const key = crypto.createPublicKey({ key: Buffer.isBuffer(pem) ? pem : Buffer.from(pem), format: 'pem' });
    if (key.asymmetricKeyType !== 'rsa') throw new Error(`a ${String(key.asymmetricKeyType)} key`);
    return key;
  } catch (err) {
    throw new KitError(
      'device/bad-reply',
      `DevicePublicKey is not an RSA public key: ${err instanceof Error ? err.message : String(err)}`,
      {
        cause: err,
      },
    );
  }
}

export interface GeneratePairRecordInput {
  /** lockdown `DevicePublicKey` (PEM). */
  devicePublicKey: Buffer | string;
  /** usbmuxd `ReadBUID`. */
  systemBuid: string;
  /** Default: a new random uppercase UUID. */
  hostId?: string;
  wifiMacAddress?: string;
  /** Default `sha256`. */
  hash?: SignatureHash;
  /** Start of validity (default now). */
  now?: Date;
  /** Root and host key pairs to use (see {@link sharedHostKeys}); default: two new ones. */
  keys?: HostKeys;
}

/** The host side's two RSA key pairs: the root CA's and the host certificate's. */
export interface HostKeys {
  root: KeyPair;
  host: KeyPair;
}

/** Two new RSA 2048 key pairs (generated in parallel off the event loop). */
export async function newHostKeys(): Promise<HostKeys> {
  const [root, host] = await Promise.all([newRsaKey(), newRsaKey()]);
  return { root, host };
}

let shared: Promise<HostKeys> | undefined;

/**
 * One root and host key pair per process, made on first use and reused by every pairing of this
 * process; each pairing still gets its own device certificate and HostID. RSA 2048 generation costs
 * 100–200 ms of CPU per key, so a cart of 64 devices would otherwise spend tens of seconds making
 * keys (pymobiledevice3 likewise keeps one HostID per host).
 */
export function sharedHostKeys(): Promise<HostKeys> {
  shared ??= newHostKeys().catch((err: unknown) => {
    shared = undefined;
    throw err;
  });
  return shared;
}

const LEAF: readonly Extension[] = [
  { name: 'basicConstraints', cA: false, critical: true },
  { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
];

/** The host side of a pair record: root and host certificates, both private keys (PEM). */
interface HostSide {
  readonly rootCertificate: Buffer;
  readonly hostCertificate: Buffer;
  readonly rootPrivateKey: Buffer;
  readonly hostPrivateKey: Buffer;
}

function makeHostSide(keys: HostKeys, hash: SignatureHash, now: Date): HostSide {
  const pkcs8 = (k: crypto.KeyObject): Buffer =>
    Buffer.from(k.export({ type: 'pkcs8', format: 'pem' }).toString(), 'utf8');
  return {
    rootCertificate: makeCert(
      keys.root.publicKey,
      keys.root.privateKey,
      [{ name: 'basicConstraints', cA: true, critical: true }],
      hash,
      now,
    ),
    hostCertificate: makeCert(keys.host.publicKey, keys.root.privateKey, [...LEAF], hash, now),
    rootPrivateKey: pkcs8(keys.root.privateKey),
    hostPrivateKey: pkcs8(keys.host.privateKey),
  };
}

/** Host sides made for a key pair, per hash (valid ten years from their first use). */
const hostSides = new WeakMap<HostKeys, Map<SignatureHash, HostSide>>();

function hostSide(keys: HostKeys, hash: SignatureHash): HostSide {
  let byHash = hostSides.get(keys);
  if (byHash === undefined) {
    byHash = new Map();
    hostSides.set(keys, byHash);
  }
  let side = byHash.get(hash);
  if (side === undefined) {
    side = makeHostSide(keys, hash, new Date());
    byHash.set(hash, side);
  }
  return side;
}

/**
 * Creates a new pair record (without `EscrowBag`, which the device's `Pair` reply provides): RSA
 * 2048 root and host keys, root CA (BC CA:TRUE critical), host and device certificates (BC CA:FALSE
 * critical, KU digitalSignature+keyEncipherment critical), all signed by the root key.
 * @throws KitError `device/bad-reply` when `devicePublicKey` is not an RSA public key.
 */
export async function generatePairRecord(input: GeneratePairRecordInput): Promise<PairRecord> {
  const hash = input.hash ?? 'sha256';
  const now = input.now ?? new Date();
  const deviceKey = parseDevicePublicKey(input.devicePublicKey);
  const keys = input.keys ?? (await newHostKeys());
  // The root and host certificates depend only on the keys (and the hash): with the process's
  // shared keys they are made once and reused, so a pairing signs one certificate, not three.
  const host = input.now === undefined ? hostSide(keys, hash) : makeHostSide(keys, hash, now);
  const deviceCertificate = makeCert(
    deviceKey,
    keys.root.privateKey,
    [...LEAF, { name: 'subjectKeyIdentifier' }],
    hash,
    now,
  );
  return {
    hostId: input.hostId ?? crypto.randomUUID().toUpperCase(),
    systemBuid: input.systemBuid,
    hostCertificate: host.hostCertificate,
    hostPrivateKey: host.hostPrivateKey,
    rootCertificate: host.rootCertificate,
    rootPrivateKey: host.rootPrivateKey,
    deviceCertificate,
    escrowBag: undefined,
    wifiMacAddress: input.wifiMacAddress,
  };
}

const pemBytes = z
  .union([z.instanceof(Buffer), z.string()])
  .transform((v) => (typeof v === 'string' ? Buffer.from(v, 'utf8') : v));

/** The shape a stored record must have (records come from other tools: a trust boundary). */
const PairRecordSchema = z.object({
  HostID: z.string().min(1),
  SystemBUID: z.string().min(1),
  HostCertificate: pemBytes,
  HostPrivateKey: pemBytes,
  RootCertificate: pemBytes,
  RootPrivateKey: pemBytes.optional(),
  DeviceCertificate: pemBytes,
  EscrowBag: z.instanceof(Buffer).optional(),
  WiFiMACAddress: z.string().optional(),
});

/**
 * A stored record (Apple keys, any writer) as a {@link PairRecord}. Certificates and the host key
 * must parse (PEM; PKCS#1 or PKCS#8 keys; SHA-1 or SHA-256 certificates).
 * @throws KitError `pairing/invalid-record` naming the first bad field.
 */
export function pairRecordFromPlist(dict: PlistDict, udid?: string): PairRecord {
  const parsed = PairRecordSchema.safeParse(dict);
  const where = udid !== undefined ? ` for ${udid}` : '';
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') ?? '?';
    throw new KitError('pairing/invalid-record', `pair record${where}: ${field}: ${issue?.message ?? 'invalid'}`, {
      ...(udid !== undefined ? { udid } : {}),
      details: { field },
    });
  }
  const r = parsed.data;
  const check = (field: string, pem: Buffer, parse: (pem: Buffer) => unknown): void => {
    try {
      parsesOnce(field, pem, parse);
    } catch (err) {
      throw new KitError(
        'pairing/invalid-record',
        `pair record${where}: ${field} does not parse: ${err instanceof Error ? err.message : String(err)}`,
        {
          ...(udid !== undefined ? { udid } : {}),
          details: { field },
          cause: err,
        },
      );
    }
  };
  const x509 = (pem: Buffer): unknown => new crypto.X509Certificate(pem);
  check('HostCertificate', r.HostCertificate, x509);
  check('RootCertificate', r.RootCertificate, x509);
  check('DeviceCertificate', r.DeviceCertificate, x509);
  check('HostPrivateKey', r.HostPrivateKey, (pem) => crypto.createPrivateKey(pem));
  return {
    hostId: r.HostID,
    systemBuid: r.SystemBUID,
    hostCertificate: r.HostCertificate,
    hostPrivateKey: r.HostPrivateKey,
    rootCertificate: r.RootCertificate,
    rootPrivateKey: r.RootPrivateKey ?? Buffer.alloc(0),
    deviceCertificate: r.DeviceCertificate,
    escrowBag: r.EscrowBag,
    wifiMacAddress: r.WiFiMACAddress,
  };
}

/**
 * PEM texts already seen to parse, per field. Every session reads the record from usbmuxd and
 * checks it; with the process's shared host keys (see {@link sharedHostKeys}) the host and root
 * parts are the same for every device of a cart, and parsing X.509 and a private key again and
 * again cost a 64-device batch ~3 ms of CPU per device. Bounded: emptied when it grows past 512.
 */
const parsedPems = new Set<string>();

function parsesOnce(field: string, pem: Buffer, parse: (pem: Buffer) => unknown): void {
  const key = `${field}\n${pem.toString('latin1')}`;
  if (parsedPems.has(key)) return;
  parse(pem);
  if (parsedPems.size >= 512) parsedPems.clear();
  parsedPems.add(key);
}

/** The record with Apple's key names, for `SavePairRecord` (libimobiledevice's key set). */
export function pairRecordToPlist(record: PairRecord): PlistDict {
  const out: PlistDict = {
    DeviceCertificate: record.deviceCertificate,
    HostCertificate: record.hostCertificate,
    HostID: record.hostId,
    HostPrivateKey: record.hostPrivateKey,
    RootCertificate: record.rootCertificate,
    RootPrivateKey: record.rootPrivateKey,
    SystemBUID: record.systemBuid,
  };
  if (record.escrowBag !== undefined) out.EscrowBag = record.escrowBag;
  if (record.wifiMacAddress !== undefined) out.WiFiMACAddress = record.wifiMacAddress;
  return out;
}

/** The `PairRecord` dictionary sent in `Pair`/`ValidatePair`/`Unpair` (§3.3): no private keys. */
export function pairRequestRecord(record: PairRecord): PlistDict {
  return {
    DeviceCertificate: record.deviceCertificate,
    HostCertificate: record.hostCertificate,
    HostID: record.hostId,
    RootCertificate: record.rootCertificate,
    SystemBUID: record.systemBuid,
  };
}

/** Facts about a PEM certificate, for checks and diagnostics. */
export interface CertificateFacts {
  serial: string;
  signatureHash: string;
  notBefore: Date;
  notAfter: Date;
  subjectEmpty: boolean;
  issuerEmpty: boolean;
  isCa: boolean;
  /** SPKI DER of the certificate's public key (compare keys with Buffer.equals). */
  publicKeySpki: Buffer;
}

/** Reads a certificate leniently (serial 0 and empty DNs are fine). */
export function certificateFacts(pem: Buffer | string): CertificateFacts {
  const cert = forge.pki.certificateFromPem(Buffer.isBuffer(pem) ? pem.toString('utf8') : pem);
  const oidName = forge.pki.oids[cert.siginfo.algorithmOid] ?? cert.siginfo.algorithmOid;
  const bc = cert.getExtension('basicConstraints') as { cA?: boolean } | null;
  const x509 = new crypto.X509Certificate(Buffer.isBuffer(pem) ? pem : Buffer.from(pem));
  return {
    serial: cert.serialNumber,
    signatureHash: String(oidName).replace(/WithRSAEncryption$/, ''),
    notBefore: cert.validity.notBefore,
    notAfter: cert.validity.notAfter,
    subjectEmpty: cert.subject.attributes.length === 0,
    issuerEmpty: cert.issuer.attributes.length === 0,
    isCa: bc?.cA === true,
    publicKeySpki: x509.publicKey.export({ type: 'spki', format: 'der' }),
  };
}
