/**
 * Binary property lists (`bplist00`), read and written without intermediate trees.
 *
 * Layout: 8-byte magic, objects, an offset table (one big-endian offset per object) and a 32-byte
 * trailer (offset size, reference size, object count, root index, offset-table position). Every
 * length and offset read from the input is checked against the bytes actually present before it is
 * used, so a lying header costs nothing.
 */
import { KitError } from '../errors.ts';
import {
  APPLE_EPOCH_MS,
  DEFAULT_MAX_DEPTH,
  INT_MAX,
  INT_MIN,
  PlistReal,
  PlistUid,
  describeJs,
  isPlistDict,
  malformedAt,
  maxObjectsFor,
  setKey,
  unsupportedAt,
  type DecodeOptions,
  type PlistDict,
  type PlistValue,
} from './types.ts';

const TRAILER_SIZE = 32;
const MAGIC = 'bplist00';
const TWO_32 = 4294967296;
const MIN_SAFE_BIG = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);
const utf8Fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Reads an unsigned big-endian integer of `size` (1 … 8) bytes; exact below 2^53, approximate above. */
function readUint(buf: Buffer, at: number, size: number): number {
  switch (size) {
    case 1:
      return buf[at] as number;
    case 2:
      return ((buf[at] as number) << 8) | (buf[at + 1] as number);
    case 4:
      return buf.readUInt32BE(at);
    default: {
      let v = 0;
      for (let i = 0; i < size; i++) v = v * 256 + (buf[at + i] as number);
      return v;
    }
  }
}

class BinaryReader {
  readonly buf: Buffer;
  readonly offsetSize: number;
  readonly refSize: number;
  readonly numObjects: number;
  readonly tableOffset: number;
  readonly maxDepth: number;
  readonly realsAsObjects: boolean;
  budget: number;
  /** Decoded non-container objects, by index (shared when referenced more than once). */
  readonly memo: (PlistValue | undefined)[];
  /** 1 while a container is being decoded: seeing it again means a reference cycle. */
  readonly active: Uint8Array;

  constructor(buf: Buffer, options: DecodeOptions | undefined) {
    this.buf = buf;
    this.maxDepth = options?.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.realsAsObjects = options?.realsAsObjects === true;
    this.budget = maxObjectsFor(options, buf.length);
    const len = buf.length;
    if (buf.toString('latin1', 0, 6) !== 'bplist') throw malformedAt(0, 'not a binary plist (no "bplist" magic)');
    if (len < 8) throw malformedAt(len, `truncated: ${len} bytes is too short for a binary plist`);
    if (buf.toString('latin1', 0, 8) !== MAGIC) {
      throw new KitError(
        'plist/unsupported',
        `binary plist version "${buf.toString('latin1', 6, 8)}" is not supported (only bplist00)`,
        {
          details: { offset: 6 },
        },
      );
    }
    if (len < 8 + 1 + 1 + TRAILER_SIZE)
      throw malformedAt(len, `truncated: ${len} bytes is too short for a binary plist`);
    const t = len - TRAILER_SIZE;
    this.offsetSize = buf[t + 6] as number;
    this.refSize = buf[t + 7] as number;
    if (this.offsetSize < 1 || this.offsetSize > 8)
      throw malformedAt(t + 6, `invalid offset size ${this.offsetSize} in trailer`);
    if (this.refSize < 1 || this.refSize > 8)
      throw malformedAt(t + 7, `invalid reference size ${this.refSize} in trailer`);
    const bigCount = buf.readBigUInt64BE(t + 8);
    const bigRoot = buf.readBigUInt64BE(t + 16);
    const bigTable = buf.readBigUInt64BE(t + 24);
    // Each object takes at least one byte and one offset-table entry: compare before allocating.
    if (bigCount < 1n || bigCount > BigInt(len))
      throw malformedAt(t + 8, `trailer claims ${bigCount} objects in a ${len}-byte file`);
    if (bigTable < 9n || bigTable >= BigInt(t))
      throw malformedAt(t + 24, `offset table position ${bigTable} is outside the file`);
    const numObjects = Number(bigCount);
    const tableOffset = Number(bigTable);
    if (tableOffset + numObjects * this.offsetSize > t) {
      throw malformedAt(
        t + 8,
        `offset table of ${numObjects} × ${this.offsetSize} bytes at ${tableOffset} runs past the trailer`,
      );
    }
    if (bigRoot >= bigCount)
      throw malformedAt(t + 16, `root object index ${bigRoot} is not below the object count ${numObjects}`);
    const root = Number(bigRoot);
    this.numObjects = numObjects;
    this.tableOffset = tableOffset;
    this.memo = new Array<PlistValue | undefined>(numObjects);
    this.active = new Uint8Array(numObjects);
    this.rootIndex = root;
  }

  readonly rootIndex: number;

  /** Where object `index` starts, checked to lie inside the object area. */
  offsetOf(index: number): number {
    const at = this.tableOffset + index * this.offsetSize;
    const off = readUint(this.buf, at, this.offsetSize);
    if (off < 8 || off >= this.tableOffset)
      throw malformedAt(at, `offset-table entry ${index} points to ${off}, outside the object area`);
    return off;
  }

  /** Checks that `count` bytes from `from` lie inside the object area. */
  need(from: number, count: number, what: string, markerAt: number): void {
    if (count > this.tableOffset - from) {
      throw malformedAt(
        markerAt,
        `${what} needs ${count} bytes at ${from} but the object area ends at ${this.tableOffset}`,
      );
    }
  }

  /** Reads the length of a variable-size object: the low nibble, or an integer object after the marker. */
  lengthAt(off: number, info: number): { length: number; start: number } {
    if (info !== 0x0f) return { length: info, start: off + 1 };
    const at = off + 1;
    this.need(at, 1, 'length marker', off);
    const m = this.buf[at] as number;
    if (m >> 4 !== 0x1)
      throw malformedAt(
        at,
        `expected an integer length after marker 0x${(this.buf[off] as number).toString(16)}, found 0x${m.toString(16)}`,
      );
    const size = 1 << (m & 0x0f);
    if (size > 8) throw malformedAt(at, `length field of ${size} bytes`);
    this.need(at + 1, size, 'length field', at);
    const length = readUint(this.buf, at + 1, size);
    if (size === 8 && (this.buf[at + 1] as number) >= 0x80) throw malformedAt(at, 'negative length');
    return { length, start: at + 1 + size };
  }

  ref(at: number): number {
    const r = readUint(this.buf, at, this.refSize);
    if (r >= this.numObjects)
      throw malformedAt(at, `object reference ${r} is not below the object count ${this.numObjects}`);
    return r;
  }

  object(index: number, depth: number): PlistValue {
    if (--this.budget < 0)
      throw malformedAt(this.tableOffset, 'too many objects (raise maxObjects if this input is trusted)');
    const cached = this.memo[index];
    if (cached !== undefined) return cached;
    const buf = this.buf;
    const off = this.offsetOf(index);
    const marker = buf[off] as number;
    const type = marker >> 4;
    const info = marker & 0x0f;
    switch (type) {
      case 0x0: {
        let v: boolean;
        if (marker === 0x08) v = false;
        else if (marker === 0x09) v = true;
        else if (marker === 0x00) {
          throw new KitError(
            'plist/unsupported',
            `binary plist: null object is not supported (at byte offset ${off})`,
            { details: { offset: off } },
          );
        } else throw malformedAt(off, `unknown object marker 0x${marker.toString(16).padStart(2, '0')}`);
        this.memo[index] = v;
        return v;
      }
      case 0x1: {
        const v = this.integer(off, info);
        this.memo[index] = v;
        return v;
      }
      case 0x2: {
        let v: number;
        if (info === 3) {
          this.need(off + 1, 8, 'real', off);
          v = buf.readDoubleBE(off + 1);
        } else if (info === 2) {
          this.need(off + 1, 4, 'real', off);
          v = buf.readFloatBE(off + 1);
        } else throw malformedAt(off, `real of ${1 << info} bytes`);
        const out: PlistValue = this.realsAsObjects ? new PlistReal(v) : v;
        this.memo[index] = out;
        return out;
      }
      case 0x3: {
        let secs: number;
        if (info === 3) {
          this.need(off + 1, 8, 'date', off);
          secs = buf.readDoubleBE(off + 1);
        } else if (info === 2) {
          this.need(off + 1, 4, 'date', off);
          secs = buf.readFloatBE(off + 1);
        } else throw malformedAt(off, `date of ${1 << info} bytes`);
        const ms = Math.round(secs * 1000) + APPLE_EPOCH_MS;
        if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15)
          throw malformedAt(off, `date ${secs} s is outside the representable range`);
        const v = new Date(ms);
        this.memo[index] = v;
        return v;
      }
      case 0x4: {
        const { length, start } = this.lengthAt(off, info);
        this.need(start, length, 'data', off);
        const v = Buffer.allocUnsafe(length);
        buf.copy(v, 0, start, start + length);
        this.memo[index] = v;
        return v;
      }
      case 0x5: {
        const { length, start } = this.lengthAt(off, info);
        this.need(start, length, 'string', off);
        const v = this.ascii(start, length, off);
        this.memo[index] = v;
        return v;
      }
      case 0x6: {
        const { length, start } = this.lengthAt(off, info);
        this.need(start, length * 2, 'UTF-16 string', off);
        const v = this.utf16(start, length, off);
        this.memo[index] = v;
        return v;
      }
      case 0x8: {
        const size = info + 1;
        if (size > 8) throw malformedAt(off, `UID of ${size} bytes`);
        this.need(off + 1, size, 'UID', off);
        const n = readUint(buf, off + 1, size);
        if (!Number.isSafeInteger(n)) throw malformedAt(off, 'UID beyond 2^53');
        const v = new PlistUid(n);
        this.memo[index] = v;
        return v;
      }
      case 0xa: {
        const { length, start } = this.lengthAt(off, info);
        this.need(start, length * this.refSize, 'array references', off);
        if (this.active[index] === 1) throw malformedAt(off, `reference cycle: array object ${index} contains itself`);
        if (depth >= this.maxDepth) throw malformedAt(off, `nesting deeper than ${this.maxDepth}`);
        this.active[index] = 1;
        const out: PlistValue[] = new Array<PlistValue>(length);
        const rs = this.refSize;
        for (let i = 0; i < length; i++) out[i] = this.object(this.ref(start + i * rs), depth + 1);
        this.active[index] = 0;
        return out;
      }
      case 0xd: {
        const { length, start } = this.lengthAt(off, info);
        this.need(start, length * 2 * this.refSize, 'dict references', off);
        if (this.active[index] === 1) throw malformedAt(off, `reference cycle: dict object ${index} contains itself`);
        if (depth >= this.maxDepth) throw malformedAt(off, `nesting deeper than ${this.maxDepth}`);
        this.active[index] = 1;
        const out: PlistDict = {};
        const rs = this.refSize;
        const valuesAt = start + length * rs;
        for (let i = 0; i < length; i++) {
          const keyAt = start + i * rs;
          const key = this.object(this.ref(keyAt), depth + 1);
          if (typeof key !== 'string') throw malformedAt(keyAt, `dict key ${i} is ${describeJs(key)}, not a string`);
          setKey(out, key, this.object(this.ref(valuesAt + i * rs), depth + 1));
        }
        this.active[index] = 0;
        return out;
      }
      case 0xb:
      case 0xc:
        throw new KitError(
          'plist/unsupported',
          `binary plist: ${type === 0xc ? 'set' : 'ordered set'} objects are not supported (at byte offset ${off})`,
          {
            details: { offset: off },
          },
        );
      default:
        throw malformedAt(off, `unknown object marker 0x${marker.toString(16).padStart(2, '0')}`);
    }
  }

  integer(off: number, info: number): number | bigint {
    const buf = this.buf;
    const at = off + 1;
    switch (info) {
      case 0:
        this.need(at, 1, 'integer', off);
        return buf[at] as number;
      case 1:
        this.need(at, 2, 'integer', off);
        return buf.readUInt16BE(at);
      case 2:
        this.need(at, 4, 'integer', off);
        return buf.readUInt32BE(at);
      case 3: {
        this.need(at, 8, 'integer', off);
        const hi = buf.readInt32BE(at);
        const lo = buf.readUInt32BE(at + 4);
        // Safe range: |hi| below 2^21 keeps hi * 2^32 + lo exact.
        if (hi >= -0x200000 && hi < 0x200000) {
          const v = hi * TWO_32 + lo;
          if (Number.isSafeInteger(v)) return v;
        }
        return buf.readBigInt64BE(at);
      }
      case 4: {
        this.need(at, 16, 'integer', off);
        // Signed 128-bit. libplist writes unsigned 64-bit values this way with the high half zero,
        // which this reading turns into the same unsigned value.
        const v = (buf.readBigInt64BE(at) << 64n) | buf.readBigUInt64BE(at + 8);
        return v >= MIN_SAFE_BIG && v <= MAX_SAFE_BIG ? Number(v) : v;
      }
      default:
        throw malformedAt(off, `integer of ${1 << info} bytes`);
    }
  }

  ascii(start: number, length: number, off: number): string {
    const buf = this.buf;
    const end = start + length;
    if (length < 24) {
      let s = '';
      for (let i = start; i < end; i++) {
        const c = buf[i] as number;
        if (c >= 0x80) return this.utf8(start, end, off);
        s += String.fromCharCode(c);
      }
      return s;
    }
    for (let i = start; i < end; i++) {
      if ((buf[i] as number) >= 0x80) return this.utf8(start, end, off);
    }
    return buf.toString('latin1', start, end);
  }

  /** Non-ASCII bytes in an "ASCII" string: read as UTF-8 (what libplist writes), rejecting invalid UTF-8. */
  utf8(start: number, end: number, off: number): string {
    try {
      return utf8Fatal.decode(this.buf.subarray(start, end));
    } catch {
      throw malformedAt(off, 'string object holds bytes that are neither ASCII nor valid UTF-8');
    }
  }

  utf16(start: number, length: number, off: number): string {
    const buf = this.buf;
    let s = '';
    let chunk: number[] = [];
    for (let i = 0; i < length; i++) {
      const p = start + 2 * i;
      const u = ((buf[p] as number) << 8) | (buf[p + 1] as number);
      if (u >= 0xd800 && u <= 0xdfff) {
        const next = i + 1 < length ? ((buf[p + 2] as number) << 8) | (buf[p + 3] as number) : -1;
        if (u >= 0xdc00 || next < 0xdc00 || next > 0xdfff) {
          throw malformedAt(p, `invalid UTF-16: unpaired surrogate 0x${u.toString(16)} in string object at ${off}`);
        }
        chunk.push(u, next);
        i++;
      } else chunk.push(u);
      if (chunk.length >= 4096) {
        s += String.fromCharCode(...chunk);
        chunk = [];
      }
    }
    return s + String.fromCharCode(...chunk);
  }
}

/**
 * Decodes a binary property list (`bplist00`).
 *
 * Integers come back as `number` within ±(2^53−1), else `bigint` (8-byte integers are signed,
 * 16-byte ones signed 128-bit, which covers libplist's unsigned 64-bit encoding). Reals are numbers
 * (or {@link PlistReal} with `realsAsObjects`), dates `Date`, data `Buffer` (a copy), UIDs
 * {@link PlistUid}. A non-container object referenced more than once decodes to one shared value.
 *
 * @throws KitError `plist/malformed` (with `details.offset`, a byte offset) for bytes that are not a
 *   well-formed binary plist: truncation, out-of-range offsets/references/lengths, cycles, invalid
 *   UTF-16/UTF-8, nesting beyond `maxDepth`, more than `maxObjects` values.
 * @throws KitError `plist/unsupported` for valid but unsupported objects (null, sets, other versions).
 */
export function decodeBinary(bytes: Uint8Array, options?: DecodeOptions): PlistValue {
  const reader = new BinaryReader(asBuffer(bytes), options);
  return reader.object(reader.rootIndex, 0);
}

// ---------------------------------------------------------------------------------------------
// Encoder

const T_ASCII = 1;
const T_UTF16 = 2;
const T_INT = 3; // safe-integer number
const T_BIGINT = 4;
const T_REAL = 5;
const T_FALSE = 6;
const T_TRUE = 7;
const T_DATE = 8;
const T_DATA = 9;
const T_UID = 10;
const T_ARRAY = 11;
const T_DICT = 12;

const TWO_63 = 1n << 63n;

function intSize(n: number): number {
  // Bytes after the marker for a non-negative safe integer written Apple's way.
  return n < 0x100 ? 1 : n < 0x10000 ? 2 : n < TWO_32 ? 4 : 8;
}

/** Header bytes (marker plus optional integer length) for a variable-size object of `count`. */
function headerSize(count: number): number {
  return count < 15 ? 1 : 2 + intSize(count);
}

function uintBytes(n: number): number {
  return n < 0x100 ? 1 : n < 0x10000 ? 2 : n < 0x1000000 ? 3 : n < TWO_32 ? 4 : 8;
}

/** A string's binary form: 0 when it is ASCII, 1 when it needs UTF-16; -1 for a lone surrogate. */
function stringKind(s: string): number {
  const n = s.length;
  let i = 0;
  for (; i < n; i++) if (s.charCodeAt(i) >= 0x80) break;
  if (i === n) return 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      if (c >= 0xdc00) return -1;
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return -1;
      i++;
    }
  }
  return 1;
}

class BinaryWriter {
  readonly tags: number[] = [];
  readonly vals: unknown[] = [];
  readonly strings = new Map<string, number>();
  readonly ints = new Map<number, number>();
  readonly active = new Set<object>();
  readonly path: (string | number)[] = [];
  readonly maxDepth = DEFAULT_MAX_DEPTH;
  /** Bytes of all objects except container references. */
  fixed = 0;
  refCount = 0;
  trueIndex = -1;
  falseIndex = -1;

  pathText(): string {
    let s = '$';
    for (const p of this.path)
      s += typeof p === 'number' ? `[${p}]` : /^[A-Za-z_$][\w$]*$/.test(p) ? `.${p}` : `[${JSON.stringify(p)}]`;
    return s;
  }

  push(tag: number, val: unknown, size: number): number {
    const i = this.tags.length;
    this.tags.push(tag);
    this.vals.push(val);
    this.fixed += size;
    return i;
  }

  str(s: string): number {
    const known = this.strings.get(s);
    if (known !== undefined) return known;
    const kind = stringKind(s);
    if (kind < 0) throw unsupportedAt(this.pathText(), 'string holds an unpaired UTF-16 surrogate');
    const i =
      kind === 0
        ? this.push(T_ASCII, s, headerSize(s.length) + s.length)
        : this.push(T_UTF16, s, headerSize(s.length) + 2 * s.length);
    this.strings.set(s, i);
    return i;
  }

  bigint(v: bigint): number {
    if (v < INT_MIN || v > INT_MAX)
      throw unsupportedAt(this.pathText(), `integer ${v} is outside the signed 128-bit range`);
    return this.push(T_BIGINT, v, v >= -TWO_63 && v < TWO_63 ? 9 : 17);
  }

  add(v: unknown, depth: number): number {
    switch (typeof v) {
      case 'string':
        return this.str(v);
      case 'number': {
        if (Number.isSafeInteger(v)) {
          const known = this.ints.get(v);
          if (known !== undefined) return known;
          const i = this.push(T_INT, v, 1 + (v < 0 ? 8 : intSize(v)));
          this.ints.set(v, i);
          return i;
        }
        if (Number.isInteger(v) && v >= -9223372036854775808 && v < 18446744073709551616) return this.bigint(BigInt(v));
        return this.push(T_REAL, v, 9);
      }
      case 'bigint':
        return this.bigint(v);
      case 'boolean':
        if (v) return this.trueIndex >= 0 ? this.trueIndex : (this.trueIndex = this.push(T_TRUE, v, 1));
        return this.falseIndex >= 0 ? this.falseIndex : (this.falseIndex = this.push(T_FALSE, v, 1));
      case 'object': {
        if (v === null) throw unsupportedAt(this.pathText(), 'null has no plist form');
        if (v instanceof Uint8Array) return this.push(T_DATA, v, headerSize(v.length) + v.length);
        if (v instanceof Date) {
          if (Number.isNaN(v.getTime())) throw unsupportedAt(this.pathText(), 'invalid Date');
          return this.push(T_DATE, v, 9);
        }
        if (v instanceof PlistReal) return this.push(T_REAL, v.value, 9);
        if (v instanceof PlistUid)
          return this.push(
            T_UID,
            v.value,
            1 + (v.value < 0x100 ? 1 : v.value < 0x10000 ? 2 : v.value < TWO_32 ? 4 : 8),
          );
        if (Array.isArray(v)) {
          this.enter(v, depth);
          const n = v.length;
          const i = this.push(T_ARRAY, null, headerSize(n));
          const refs = new Array<number>(n);
          for (let k = 0; k < n; k++) {
            this.path.push(k);
            refs[k] = this.add(v[k], depth + 1);
            this.path.pop();
          }
          this.vals[i] = refs;
          this.refCount += n;
          this.active.delete(v);
          return i;
        }
        if (isPlistDict(v)) {
          this.enter(v, depth);
          const keys = Object.keys(v);
          const n = keys.length;
          const i = this.push(T_DICT, null, headerSize(n));
          const refs = new Array<number>(2 * n);
          for (let k = 0; k < n; k++) {
            const key = keys[k] as string;
            this.path.push(key);
            refs[k] = this.str(key);
            refs[n + k] = this.add(v[key], depth + 1);
            this.path.pop();
          }
          this.vals[i] = refs;
          this.refCount += 2 * n;
          this.active.delete(v);
          return i;
        }
        throw unsupportedAt(this.pathText(), `${describeJs(v)} has no plist form`);
      }
      default:
        throw unsupportedAt(this.pathText(), `${describeJs(v)} has no plist form`);
    }
  }

  enter(v: object, depth: number): void {
    if (this.active.has(v)) throw unsupportedAt(this.pathText(), 'reference cycle (a container contains itself)');
    if (depth >= this.maxDepth) throw unsupportedAt(this.pathText(), `nesting deeper than ${this.maxDepth}`);
    this.active.add(v);
  }

  write(): Buffer {
    const n = this.tags.length;
    const refSize = uintBytes(n - 1);
    const objectsEnd = 8 + this.fixed + this.refCount * refSize;
    const offsetSize = uintBytes(objectsEnd);
    const total = objectsEnd + n * offsetSize + TRAILER_SIZE;
    const out = Buffer.allocUnsafe(total);
    out.write(MAGIC, 0, 'latin1');
    const offsets = new Array<number>(n);
    let p = 8;
    const tags = this.tags;
    const vals = this.vals;

    const header = (kind: number, count: number): void => {
      if (count < 15) {
        out[p++] = kind | count;
        return;
      }
      out[p++] = kind | 0x0f;
      p = writeSmallInt(out, p, count);
    };
    const writeRef = (r: number): void => {
      switch (refSize) {
        case 1:
          out[p++] = r;
          break;
        case 2:
          out[p++] = r >>> 8;
          out[p++] = r & 0xff;
          break;
        default:
          out.writeUIntBE(r, p, refSize);
          p += refSize;
      }
    };

    for (let i = 0; i < n; i++) {
      offsets[i] = p;
      const v = vals[i];
      switch (tags[i]) {
        case T_ASCII: {
          const s = v as string;
          header(0x50, s.length);
          if (s.length < 24) {
            for (let k = 0; k < s.length; k++) out[p++] = s.charCodeAt(k);
          } else p += out.write(s, p, 'latin1');
          break;
        }
        case T_UTF16: {
          const s = v as string;
          header(0x60, s.length);
          for (let k = 0; k < s.length; k++) {
            const c = s.charCodeAt(k);
            out[p++] = c >>> 8;
            out[p++] = c & 0xff;
          }
          break;
        }
        case T_INT: {
          const x = v as number;
          if (x < 0) {
            out[p++] = 0x13;
            const hi = Math.floor(x / TWO_32);
            out.writeInt32BE(hi, p);
            out.writeUInt32BE(x - hi * TWO_32, p + 4);
            p += 8;
          } else p = writeSmallInt(out, p, x);
          break;
        }
        case T_BIGINT: {
          const x = v as bigint;
          if (x >= -TWO_63 && x < TWO_63) {
            out[p++] = 0x13;
            out.writeBigInt64BE(x, p);
            p += 8;
          } else {
            out[p++] = 0x14;
            out.writeBigInt64BE(BigInt.asIntN(64, x >> 64n), p);
            out.writeBigUInt64BE(BigInt.asUintN(64, x), p + 8);
            p += 16;
          }
          break;
        }
        case T_REAL:
          out[p++] = 0x23;
          out.writeDoubleBE(v as number, p);
          p += 8;
          break;
        case T_FALSE:
          out[p++] = 0x08;
          break;
        case T_TRUE:
          out[p++] = 0x09;
          break;
        case T_DATE:
          out[p++] = 0x33;
          out.writeDoubleBE(((v as Date).getTime() - APPLE_EPOCH_MS) / 1000, p);
          p += 8;
          break;
        case T_DATA: {
          const d = v as Uint8Array;
          header(0x40, d.length);
          out.set(d, p);
          p += d.length;
          break;
        }
        case T_UID: {
          const x = v as number;
          const size = x < 0x100 ? 1 : x < 0x10000 ? 2 : x < TWO_32 ? 4 : 8;
          out[p++] = 0x80 | (size - 1);
          if (size === 8) {
            out.writeUInt32BE(Math.floor(x / TWO_32), p);
            out.writeUInt32BE(x % TWO_32, p + 4);
          } else out.writeUIntBE(x, p, size);
          p += size;
          break;
        }
        case T_ARRAY: {
          const refs = v as number[];
          header(0xa0, refs.length);
          for (const r of refs) writeRef(r);
          break;
        }
        case T_DICT: {
          const refs = v as number[];
          header(0xd0, refs.length / 2);
          for (const r of refs) writeRef(r);
          break;
        }
        default:
          throw new KitError('bug', `binary plist writer: unknown tag ${String(tags[i])}`);
      }
    }
    if (p !== objectsEnd) throw new KitError('bug', `binary plist writer: size mismatch (${p} ≠ ${objectsEnd})`);
    for (let i = 0; i < n; i++) {
      const o = offsets[i] as number;
      if (offsetSize === 8) {
        out.writeUInt32BE(Math.floor(o / TWO_32), p);
        out.writeUInt32BE(o % TWO_32, p + 4);
      } else out.writeUIntBE(o, p, offsetSize);
      p += offsetSize;
    }
    out.fill(0, p, p + 6);
    out[p + 6] = offsetSize;
    out[p + 7] = refSize;
    out.writeBigUInt64BE(BigInt(n), p + 8);
    out.writeBigUInt64BE(0n, p + 16);
    out.writeBigUInt64BE(BigInt(objectsEnd), p + 24);
    return out;
  }
}

/** Writes an integer object for a non-negative safe integer with Apple's size choice; returns the new position. */
function writeSmallInt(out: Buffer, p: number, x: number): number {
  if (x < 0x100) {
    out[p] = 0x10;
    out[p + 1] = x;
    return p + 2;
  }
  if (x < 0x10000) {
    out[p] = 0x11;
    out.writeUInt16BE(x, p + 1);
    return p + 3;
  }
  if (x < TWO_32) {
    out[p] = 0x12;
    out.writeUInt32BE(x, p + 1);
    return p + 5;
  }
  out[p] = 0x13;
  out.writeUInt32BE(Math.floor(x / TWO_32), p + 1);
  out.writeUInt32BE(x % TWO_32, p + 5);
  return p + 9;
}

/**
 * Encodes a value as a binary property list (`bplist00`).
 *
 * Integer numbers → integer objects (Apple's 1/2/4/8-byte sizes; negatives 8 bytes); bigints in
 * 2^63 … 2^64−1 → 16-byte integers with a zero high half (how libplist writes unsigned 64-bit);
 * other bigints of the signed 128-bit domain → 8 or 16 bytes. Non-integral numbers, NaN, ±Infinity,
 * integral numbers beyond 64 bits and {@link PlistReal} → 8-byte reals. Strings are ASCII when they
 * are, UTF-16BE otherwise; equal strings and integers are written once. Buffers and other
 * Uint8Arrays → data; Dates → 8-byte reals of seconds since 2001-01-01T00:00:00Z.
 *
 * @throws KitError `plist/unsupported` (with `details.path`) for values with no plist form
 *   (undefined, null, functions, symbols, Map, class instances, invalid Dates), strings with lone
 *   surrogates, bigints outside signed 128-bit, reference cycles and nesting deeper than 512.
 */
export function encodeBinary(value: PlistValue): Buffer {
  const w = new BinaryWriter();
  w.add(value, 0);
  return w.write();
}
