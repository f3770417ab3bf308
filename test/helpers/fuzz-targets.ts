/**
 * Fuzz targets for the station's parsers (issue #9), shared by the chaos tier
 * (`test/chaos/fuzz.test.ts`, 10,000 cases each) and `npm run bench -- fuzz` (100,000 each).
 *
 * Every case is generated from (seed, index) alone, so any failing case can be replayed from the
 * numbers a report prints. Inputs are seeds mutated (bit flips, interesting bytes and integers,
 * insertions, deletions, duplications, truncation, splices), structure-aware generations (random
 * plist trees, CSV files with random quoting and encodings) and plain random bytes. Sizes are
 * bounded (a few KiB), so a case that runs long is a parser problem, not a big input.
 *
 * The contract checked: a target either returns or throws a KitError whose code is in the
 * catalogue and is not `bug`. Anything else (TypeError, RangeError, stack overflow) is a finding.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import forge from 'node-forge';
import iconv from 'iconv-lite';
import { ERROR_CODES, KitError } from '../../src/errors.ts';
import { PlistChannel, encodeFrame } from '../../src/device/framing.ts';
import {
  USBMUX_HEADER_BYTES,
  USBMUX_MAX_PACKET_BYTES,
  decodeUsbmuxHeader,
  decodeUsbmuxPayload,
  encodeUsbmuxPacket,
  parseDeviceList,
  parseEvent,
} from '../../src/device/usbmux.ts';
import { readPlanCsv } from '../../src/kitting/plans.ts';
import { createSupervisionCertificate } from '../../src/identity/certificate.ts';
import { readIdentityFiles } from '../../src/identity/material.ts';
import { buildPkcs12, parsePkcs12 } from '../../src/identity/pkcs12.ts';
import {
  PlistReal,
  PlistUid,
  decodeBinary,
  decodePlist,
  decodeXml,
  encodeBinary,
  encodeXml,
  type PlistDict,
  type PlistValue,
} from '../../src/plist/index.ts';
import { openDatabase } from '../../src/store/db.ts';

export const FUZZ_TARGETS = ['plist-xml', 'plist-binary', 'usbmux', 'lockdown', 'csv', 'p12'] as const;
export type FuzzTargetName = (typeof FUZZ_TARGETS)[number];

/** What one case did: returned, or threw a KitError with this code. */
export type CaseOutcome = 'ok' | string;

export interface FuzzTarget {
  readonly name: FuzzTargetName;
  /** The input of case `index` (deterministic in (seed, index)). */
  input(rng: Rng): Buffer;
  /** Runs one case; throws only what the parser threw. */
  /** Runs one case; throws only what the parser threw. May name its outcome (a code it caught). */
  run(bytes: Buffer, rng: Rng): void | string | Promise<void | string>;
  close?(): void;
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness

/** A small seeded PRNG (sfc32); `Rng.forCase(seed, i)` is independent of every other case. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number, stream = 0) {
    this.a = 0x9e3779b9 ^ seed;
    this.b = 0x243f6a88 ^ stream;
    this.c = 0xb7e15162 ^ Math.imul(seed, 31);
    this.d = 1;
    for (let i = 0; i < 15; i++) this.u32();
  }

  static forCase(seed: number, index: number): Rng {
    return new Rng(seed, index);
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** 0 ≤ n < max. */
  int(max: number): number {
    return max <= 1 ? 0 : this.u32() % max;
  }

  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[this.int(items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Mutation

const INTERESTING_U8 = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x3c, 0x3e, 0x22, 0x2c, 0x0a, 0x0d, 0x26];
const INTERESTING_U32 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];
/** Inputs are capped here so a slow case means a slow parser. */
export const MAX_INPUT_BYTES = 64 * 1024;

/** Applies 1–4 random mutations to a copy of `seed` (sometimes splicing in `other`). */
export function mutate(seed: Buffer, rng: Rng, other?: Buffer): Buffer {
  let buf = Buffer.from(seed);
  const rounds = 1 + rng.int(4);
  for (let r = 0; r < rounds; r++) {
    const at = rng.int(buf.length + 1);
    switch (rng.int(9)) {
      case 0: // bit flip
        if (buf.length > 0) buf[at % buf.length]! ^= 1 << rng.int(8);
        break;
      case 1: // interesting byte
        if (buf.length > 0) buf[at % buf.length] = rng.pick(INTERESTING_U8);
        break;
      case 2: {
        // interesting 32-bit integer (length fields), either endianness
        if (buf.length >= 4) {
          const p = rng.int(buf.length - 3);
          const v = rng.pick(INTERESTING_U32);
          if (rng.chance(0.5)) buf.writeUInt32BE(v, p);
          else buf.writeUInt32LE(v, p);
        }
        break;
      }
      case 3: // insert random bytes
        buf = Buffer.concat([buf.subarray(0, at), rng.bytes(1 + rng.int(16)), buf.subarray(at)]);
        break;
      case 4: // delete a range
        buf = Buffer.concat([buf.subarray(0, at), buf.subarray(Math.min(buf.length, at + 1 + rng.int(32)))]);
        break;
      case 5: {
        // duplicate a range (repeated elements, nested tags)
        const len = 1 + rng.int(64);
        const chunk = buf.subarray(at, at + len);
        const copies = 1 + rng.int(8);
        buf = Buffer.concat([buf.subarray(0, at), ...Array.from({ length: copies }, () => chunk), buf.subarray(at)]);
        break;
      }
      case 6: // truncate
        buf = buf.subarray(0, at);
        break;
      case 7: // splice with another seed
        if (other !== undefined && other.length > 0) {
          const from = rng.int(other.length);
          buf = Buffer.concat([buf.subarray(0, at), other.subarray(from, from + 1 + rng.int(256))]);
        }
        break;
      default: // overwrite a range with random bytes
        if (buf.length > 0) rng.bytes(1 + rng.int(8)).copy(buf, at % buf.length);
        break;
    }
  }
  return buf.length > MAX_INPUT_BYTES ? buf.subarray(0, MAX_INPUT_BYTES) : buf;
}

// ---------------------------------------------------------------------------------------------
// Structure-aware generators

const STRING_PARTS = [
  'UDID',
  'ProductVersion',
  'a',
  '',
  ' ',
  '<',
  '&amp;',
  ']]>',
  'さくら',
  '😀',
  '\u0000',
  'é',
  '__proto__',
  'constructor',
  '"',
  ',',
  '\r\n',
];

function randomString(rng: Rng): string {
  let s = '';
  const n = rng.int(5);
  for (let i = 0; i < n; i++) s += rng.pick(STRING_PARTS);
  return s;
}

/** A random plist tree (depth ≤ 5, ≤ ~60 nodes). `uids` for binary only. */
export function randomPlist(rng: Rng, depth = 0, uids = false): PlistValue {
  const kind = rng.int(depth >= 4 ? 8 : 10);
  switch (kind) {
    case 0:
      return randomString(rng);
    case 1:
      return rng.pick([0, 1, -1, 255, 256, 65535, 2 ** 31, -(2 ** 31), 2 ** 53 - 1, -(2 ** 53) + 1]);
    case 2:
      return rng.pick([2n ** 63n - 1n, 2n ** 64n - 1n, -(2n ** 63n)]);
    case 3:
      return new PlistReal(rng.pick([0, 0.5, -1.25, 1e300, Number.MIN_VALUE, Number.NaN, Number.POSITIVE_INFINITY]));
    case 4:
      return rng.chance(0.5);
    case 5:
      return new Date(rng.pick([0, 978_307_200_000, Date.UTC(2026, 10, 21), -1e12]));
    case 6:
      return rng.bytes(rng.int(40));
    case 7:
      return uids ? new PlistUid(rng.int(1000)) : randomString(rng);
    case 8: {
      const n = rng.int(6);
      return Array.from({ length: n }, () => randomPlist(rng, depth + 1, uids));
    }
    default: {
      const dict: PlistDict = {};
      const n = rng.int(6);
      for (let i = 0; i < n; i++) dict[`${randomString(rng)}${i}`] = randomPlist(rng, depth + 1, uids);
      return dict;
    }
  }
}

function randomDict(rng: Rng, uids = false): PlistDict {
  const v = randomPlist(rng, 3, uids);
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date) && !Buffer.isBuffer(v)
    ? (v as PlistDict)
    : { Value: v };
}

// ---------------------------------------------------------------------------------------------
// Checks

/** Throws (with a description) unless `err` is a KitError with a catalogued code other than `bug`. */
export function checkThrown(err: unknown): string {
  if (err instanceof KitError && err.code in ERROR_CODES && err.code !== 'bug') return err.code;
  const what = err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err);
  const e = new Error(`not a proper KitError: ${what}`);
  (e as Error & { original?: unknown }).original = err;
  throw e;
}

// ---------------------------------------------------------------------------------------------
// Seeds

const RECORDED = path.resolve(import.meta.dirname, '../../../shared/fixtures/recorded');
function recorded(prefix: string): Buffer[] {
  if (!fs.existsSync(RECORDED)) return [];
  return fs
    .readdirSync(RECORDED)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.bin'))
    .map((f) => fs.readFileSync(path.join(RECORDED, f)));
}

function seedPlists(uids: boolean): PlistValue[] {
  const rng = new Rng(0x5eed, uids ? 1 : 0);
  const out: PlistValue[] = [
    { Request: 'GetValue', Key: 'ProductVersion', Label: 'kitting', ProtocolVersion: '2' },
    { MessageType: 'Result', Number: 0 },
    { DeviceList: [{ DeviceID: 3, MessageType: 'Attached', Properties: { SerialNumber: 'abc', DeviceID: 3 } }] },
  ];
  for (let i = 0; i < 24; i++) out.push(randomPlist(rng, 0, uids));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Targets

function pickInput(rng: Rng, seeds: readonly Buffer[], generate: () => Buffer): Buffer {
  const r = rng.int(10);
  if (r === 0) return rng.bytes(rng.int(512));
  if (r <= 2) return generate();
  return mutate(rng.pick(seeds), rng, rng.pick(seeds));
}

function plistXmlTarget(): FuzzTarget {
  const seeds = [...seedPlists(false).map((v) => encodeXml(v)), ...recorded('usbmux').map((b) => b.subarray(16))];
  return {
    name: 'plist-xml',
    input: (rng) =>
      pickInput(rng, seeds, () => {
        const xml = encodeXml(randomPlist(rng));
        return rng.chance(0.5) ? xml : mutate(xml, rng);
      }),
    run(bytes) {
      decodeXml(bytes);
      decodePlist(bytes);
    },
  };
}

function plistBinaryTarget(): FuzzTarget {
  const seeds = seedPlists(true).map((v) => encodeBinary(v));
  return {
    name: 'plist-binary',
    input: (rng) =>
      pickInput(rng, seeds, () => {
        const bin = encodeBinary(randomPlist(rng, 0, true));
        return rng.chance(0.3) ? bin : mutate(bin, rng);
      }),
    run(bytes) {
      decodeBinary(bytes);
      if (bytes.length >= 8) decodePlist(Buffer.concat([Buffer.from('bplist00'), bytes.subarray(8)]));
    },
  };
}

/**
 * What the usbmux client does with a byte stream (UsbmuxSocket.handleData): headers of 16 bytes,
 * the length bounds check, payload decoding, then the Listen-event and ListDevices parsers.
 */
function parseUsbmuxStream(bytes: Buffer): void {
  let at = 0;
  while (bytes.length - at >= USBMUX_HEADER_BYTES) {
    const header = decodeUsbmuxHeader(bytes.subarray(at, at + USBMUX_HEADER_BYTES));
    if (header.length < USBMUX_HEADER_BYTES || header.length > USBMUX_MAX_PACKET_BYTES) {
      throw new KitError('device/bad-reply', `usbmuxd announced a ${header.length}-byte packet`);
    }
    if (bytes.length - at < header.length) return; // waits for more bytes
    const dict = decodeUsbmuxPayload(header, bytes.subarray(at + USBMUX_HEADER_BYTES, at + header.length));
    if (header.tag === 0) parseEvent(dict);
    else if ('DeviceList' in dict) parseDeviceList(dict);
    at += header.length;
  }
}

function usbmuxTarget(): FuzzTarget {
  const rng0 = new Rng(0x05b, 0);
  const seeds = [
    ...recorded('usbmux'),
    ...seedPlists(false)
      .slice(0, 12)
      .map((v, i) => encodeUsbmuxPacket(encodeXml(typeof v === 'object' ? v : { v }), i % 3)),
    encodeUsbmuxPacket(Buffer.from([0, 0, 0, 0]), 1, 1, 0),
    encodeUsbmuxPacket(Buffer.from([7, 0, 0, 0]), 0, 5, 0),
    encodeUsbmuxPacket(
      encodeXml({ MessageType: 'Attached', DeviceID: 9, Properties: { SerialNumber: '0000', DeviceID: 9 } }),
      0,
    ),
  ];
  return {
    name: 'usbmux',
    input: (rng) =>
      pickInput(rng, seeds, () =>
        Buffer.concat(
          Array.from({ length: 1 + rng.int(3) }, () =>
            encodeUsbmuxPacket(encodeXml(randomDict(rng0)), rng.int(3), rng.pick([8, 8, 1, 4, 5, 6, 3]), rng.int(2)),
          ),
        ),
      ),
    run: parseUsbmuxStream,
  };
}

/**
 * The lockdown framing through the real {@link PlistChannel} over a stream: the bytes arrive in
 * random chunks, then the peer closes; every receive must resolve with a plist or reject with a
 * KitError (the channel's first failure).
 */
function lockdownTarget(): FuzzTarget {
  const rng0 = new Rng(0x10c, 0);
  const seeds = [
    ...recorded('lockdown'),
    ...recorded('usbmuxconnectandlockdown').map((b) => b.subarray(b.readUInt32LE(0))),
    ...seedPlists(false)
      .slice(0, 10)
      .map((v, i) => encodeFrame(v, i % 2 === 0 ? 'xml' : 'binary')),
  ];
  return {
    name: 'lockdown',
    input: (rng) =>
      pickInput(rng, seeds, () =>
        Buffer.concat(Array.from({ length: 1 + rng.int(3) }, () => encodeFrame(randomDict(rng0), 'xml'))),
      ),
    async run(bytes, rng) {
      const socket = new PassThrough();
      const channel = new PlistChannel(socket, { maxFrameBytes: 1024 * 1024, timeoutMs: 5_000, label: 'fuzz' });
      let at = 0;
      while (at < bytes.length) {
        const n = 1 + rng.int(Math.max(1, bytes.length));
        socket.write(bytes.subarray(at, at + n));
        at += n;
      }
      socket.end();
      for (let i = 0; i < 64; i++) {
        try {
          await channel.receive();
        } catch (err) {
          channel.close();
          return checkThrown(err);
        }
      }
      channel.close();
      return 'ok';
    },
  };
}

const CSV_HEADERS = [
  'シリアル番号,端末名,資産管理番号,グループ,ブループリント,備考',
  'serial,name,assetTag,group,blueprint,notes',
  'Serial Number,Name',
  'シリアル番号',
];

function randomCsv(rng: Rng): Buffer {
  const lines = [rng.pick(CSV_HEADERS)];
  const rows = rng.int(12);
  for (let i = 0; i < rows; i++) {
    const cells: string[] = [];
    const n = 1 + rng.int(8);
    for (let c = 0; c < n; c++) {
      let cell = c === 0 && rng.chance(0.8) ? `DMP${rng.int(1e9).toString(36).toUpperCase().padStart(8, '0')}` : '';
      if (cell === '') cell = rng.chance(0.5) ? `端末${rng.int(100)}` : randomString(rng);
      switch (rng.int(8)) {
        case 0:
          cell = `"${cell.replaceAll('"', '""')}"`;
          break;
        case 1:
          cell = `"${cell}`; // unterminated or stray quote
          break;
        case 2:
          cell = `${cell}"x"`;
          break;
        default:
          break;
      }
      cells.push(cell);
    }
    lines.push(cells.join(rng.pick([',', ',', ';', '\t'])));
  }
  const text = lines.join(rng.pick(['\r\n', '\n', '\r'])) + (rng.chance(0.5) ? '\r\n' : '');
  switch (rng.int(8)) {
    case 0:
    case 1:
      return iconv.encode(text, 'cp932');
    case 2:
      return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text, 'utf8')]);
    case 3:
      return iconv.encode(text, 'utf16le', { addBOM: true });
    case 4:
      return iconv.encode(text, 'euc-jp');
    default:
      return Buffer.from(text, 'utf8');
  }
}

function csvTarget(): FuzzTarget {
  const db = openDatabase(':memory:');
  const seedRng = new Rng(0xc5f, 0);
  const seeds = Array.from({ length: 16 }, () => randomCsv(seedRng));
  return {
    name: 'csv',
    input: (rng) => pickInput(rng, seeds, () => randomCsv(rng)),
    run(bytes, rng) {
      readPlanCsv(db, bytes, {
        name: 'fuzz',
        file: 'fuzz.csv',
        encoding: rng.chance(0.9) ? 'auto' : rng.pick(['utf-8', 'shift_jis'] as const),
      });
    },
    close: () => db.close(),
  };
}

/**
 * PKCS#12 seeds are written by forge with a low iteration count (so 10,000 cases take seconds, not
 * minutes) plus one of ours ({@link buildPkcs12}, 2048 iterations) and an AES-256 one; PEM and DER
 * seeds go through the whole file reader ({@link readIdentityFiles}, from a temporary file).
 */
function p12Target(): FuzzTarget {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const certificateDer = createSupervisionCertificate({ org: 'Fuzz School', publicKey, privateKey });
  const password = 'fuzz-p12-pass';
  const forgeKey = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString());
  const forgeCert = forge.pki.certificateFromAsn1(forge.asn1.fromDer(certificateDer.toString('binary')));
  const forgeP12 = (options: Record<string, unknown>): Buffer =>
    Buffer.from(
      forge.asn1.toDer(forge.pkcs12.toPkcs12Asn1(forgeKey, [forgeCert], password, { count: 1, ...options })).getBytes(),
      'binary',
    );
  const p12Seeds = [
    forgeP12({ algorithm: '3des' }),
    forgeP12({ algorithm: '3des', useMac: false }),
    forgeP12({ algorithm: 'aes128', generateLocalKeyId: false }),
    forgeP12({ algorithm: '3des', friendlyName: 'さくら' }),
  ];
  const slowSeeds = [buildPkcs12({ certificateDer, privateKey, password, algorithm: 'aes256' })];
  const pem = Buffer.from(
    `-----BEGIN CERTIFICATE-----\n${certificateDer.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n${privateKey
      .export({ type: 'pkcs8', format: 'pem' })
      .toString()}`,
  );
  const fileSeeds = [pem, certificateDer, privateKey.export({ type: 'pkcs1', format: 'der' })];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-fuzz-p12-'));
  const file = path.join(dir, 'input');
  let kind: 'p12' | 'file' = 'p12';
  return {
    name: 'p12',
    input(rng) {
      const r = rng.int(20);
      if (r === 0) {
        kind = 'p12';
        return rng.bytes(rng.int(512));
      }
      if (r <= 5) {
        kind = 'file';
        return mutate(rng.pick(fileSeeds), rng, rng.pick(fileSeeds));
      }
      kind = 'p12';
      const seed = r === 6 ? rng.pick(slowSeeds) : rng.pick(p12Seeds);
      return mutate(seed, rng, rng.pick(p12Seeds));
    },
    run(bytes) {
      if (kind === 'p12') {
        parsePkcs12(bytes, password, 'fuzz.p12');
        return;
      }
      fs.writeFileSync(file, bytes);
      readIdentityFiles(file, { password });
    },
    close: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

export function createTarget(name: FuzzTargetName): FuzzTarget {
  switch (name) {
    case 'plist-xml':
      return plistXmlTarget();
    case 'plist-binary':
      return plistBinaryTarget();
    case 'usbmux':
      return usbmuxTarget();
    case 'lockdown':
      return lockdownTarget();
    case 'csv':
      return csvTarget();
    case 'p12':
      return p12Target();
  }
}
