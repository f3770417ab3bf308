/**
 * The value model shared by the XML and binary codecs, plus the helpers both need: safe dict
 * construction, structural equality and located errors.
 */
import { KitError } from '../errors.ts';

/**
 * A binary-plist UID (marker `0x8N`, used by NSKeyedArchiver). Only the binary format carries UIDs
 * natively; the XML encoder writes one the way Apple does, as `<dict><key>CF$UID</key><integer>…`.
 */
export class PlistUid {
  readonly value: number;
  /** @throws KitError `plist/unsupported` when `value` is not an integer in 0 … 2^53−1. */
  constructor(value: number) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new KitError('plist/unsupported', `a UID must be a non-negative safe integer, got ${String(value)}`);
    }
    this.value = value;
  }
}

/**
 * A real that must stay a real: encoders write `<real>` (binary `0x23`) even when the value is
 * integral (a plain `number` that is an integer is written as `<integer>`). Decoders return these
 * only with `realsAsObjects: true`.
 */
export class PlistReal {
  readonly value: number;
  constructor(value: number) {
    this.value = value;
  }
}

/** A plist dictionary: own string keys only (a key `__proto__` is an ordinary own property). */
export type PlistDict = { [key: string]: PlistValue };

/**
 * Any plist value. Integers are `number` within ±(2^53−1) and `bigint` outside (the codec's integer
 * domain is signed 128-bit, which covers unsigned 64-bit). `Buffer` is `<data>`, `Date` is `<date>`.
 */
export type PlistValue =
  string | number | bigint | boolean | Date | Buffer | PlistUid | PlistReal | PlistValue[] | PlistDict;

/** Limits and shape options shared by both decoders. */
export interface DecodeOptions {
  /** Deepest allowed container nesting (default 512). Deeper input → `plist/malformed`. */
  maxDepth?: number;
  /**
   * Most values a decode may produce (default: the larger of 1,000,000 and the input length in
   * bytes). Guards against binary plists whose shared references expand exponentially.
   */
  maxObjects?: number;
  /** Return reals as {@link PlistReal} (so an integral real stays a real when re-encoded). */
  realsAsObjects?: boolean;
}

export const DEFAULT_MAX_DEPTH = 512;

/** The smallest and largest integers of the codec's domain (signed 128-bit). */
export const INT_MIN = -(1n << 127n);
export const INT_MAX = (1n << 127n) - 1n;

export function maxObjectsFor(options: DecodeOptions | undefined, inputLength: number): number {
  return options?.maxObjects ?? Math.max(1_000_000, inputLength);
}

/**
 * Sets `dict[key] = value` as an own, enumerable property even for `__proto__` (plain assignment
 * of `__proto__` would change the prototype instead).
 */
export function setKey(dict: PlistDict, key: string, value: PlistValue): void {
  if (key === '__proto__') {
    Object.defineProperty(dict, key, { value, writable: true, enumerable: true, configurable: true });
  } else {
    dict[key] = value;
  }
}

/**
 * True for a plist dictionary: a plain object (prototype `Object.prototype` or `null`), not an
 * array, Buffer, Date, {@link PlistUid} or {@link PlistReal}.
 */
export function isPlistDict(v: unknown): v is PlistDict {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function integerOf(v: PlistValue): bigint | undefined {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  return undefined;
}

/**
 * Deep structural equality of two plist values: Buffers by bytes, Dates by time, dict keys in any
 * order, a `number` equal to a `bigint` of the same integer value, a {@link PlistReal} equal to a
 * `number` of the same value (NaN equals NaN; +0 equals −0).
 */
export function plistEqual(a: PlistValue, b: PlistValue): boolean {
  if (a === b) return true;
  const ta = typeof a;
  const tb = typeof b;
  if (ta === 'string' || tb === 'string' || ta === 'boolean' || tb === 'boolean') return false;
  const na = a instanceof PlistReal ? a.value : a;
  const nb = b instanceof PlistReal ? b.value : b;
  if (typeof na === 'number' || typeof na === 'bigint' || typeof nb === 'number' || typeof nb === 'bigint') {
    if (typeof na === 'number' && typeof nb === 'number') return na === nb || (Number.isNaN(na) && Number.isNaN(nb));
    const ia = integerOf(na);
    const ib = integerOf(nb);
    return ia !== undefined && ib !== undefined && ia === ib;
  }
  if (a instanceof Date || b instanceof Date) {
    return (
      a instanceof Date &&
      b instanceof Date &&
      (a.getTime() === b.getTime() || (Number.isNaN(a.getTime()) && Number.isNaN(b.getTime())))
    );
  }
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.compare(a, b) === 0;
  }
  if (a instanceof PlistUid || b instanceof PlistUid) {
    return a instanceof PlistUid && b instanceof PlistUid && a.value === b.value;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) {
      if (!plistEqual(a[i] as PlistValue, b[i] as PlistValue)) return false;
    }
    return true;
  }
  if (isPlistDict(a) && isPlistDict(b)) {
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    for (const k of ka) {
      if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
      if (!plistEqual(a[k] as PlistValue, b[k] as PlistValue)) return false;
    }
    return true;
  }
  return false;
}

/** A `plist/malformed` error located at a byte offset (binary input). */
export function malformedAt(offset: number, message: string): KitError {
  return new KitError('plist/malformed', `binary plist: ${message} (at byte offset ${offset})`, {
    details: { offset },
  });
}

/** A `plist/unsupported` error for a value that cannot be encoded, naming its path (`$.a[3].b`). */
export function unsupportedAt(path: string, message: string): KitError {
  return new KitError('plist/unsupported', `cannot encode ${path}: ${message}`, { details: { path } });
}

/** Appends a dict key to a value path, quoting it unless it is a plain identifier. */
export function childPath(path: string, key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

/** The seconds between the Unix epoch and Apple's reference date, 2001-01-01T00:00:00Z. */
export const APPLE_EPOCH_MS = 978_307_200_000;

/** Describes a JS value for an error message. */
export function describeJs(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') {
    const ctor: unknown = (v as { constructor?: unknown }).constructor;
    return typeof ctor === 'function' && ctor.name !== '' ? `a ${ctor.name}` : 'an object';
  }
  return typeof v;
}
