/**
 * Conformance with a real third-party implementation: libplist's `plistutil` (Debian
 * libplist-utils). Over a fixed-seed corpus of 1,200 generated plists:
 *   (a) our binary → plistutil -f xml → our XML decoder → equal to the original;
 *   (b) our XML → plistutil -f bin → our binary decoder → equal to the original.
 *
 * libplist quirks found while writing this (libplist 2.2.0), each pinned by its own test below:
 *   - Strings are C strings: libplist cuts a string at U+0000 in both directions. The corpus has no
 *     U+0000; the truncation is asserted separately.
 *   - UIDs have no XML form: libplist writes them as `<dict><key>CF$UID</key><integer>n</integer>`
 *     (Apple's convention, and our XML encoder's), and reading XML it keeps that dict a dict. The
 *     comparison therefore expects a UID to come back as `{CF$UID: n}`: same information, Apple's
 *     XML shape. UIDs of 2^32 and above make libplist's XML writer emit an empty document, so the
 *     corpus keeps UIDs below 2^32 (NSKeyedArchiver's range).
 *   - XML dates have whole seconds. libplist truncates fractional seconds toward the 2001 epoch, so
 *     a pre-2001 date with a fraction comes out one second late (we floor). The corpus uses
 *     whole-second dates; the rounding is asserted separately.
 *   - Years before 1000 are written unpadded (`735-11-10T22:33:10Z`); our XML decoder accepts 1–4
 *     digit years for that reason (we write four digits).
 *   - Integers: libplist holds 64 bits (signed, or unsigned via 16-byte binary integers); our
 *     codec's signed 128-bit extension beyond that is not representable there, so the corpus stays
 *     within −2^63 … 2^64−1; the truncation is asserted separately.
 * Nothing else is relaxed: strings (astral, controls, CR, markup characters), reals (NaN, ±∞, −0,
 * subnormals, float32-exact values that libplist writes as 4-byte reals), data, dates from year 1
 * to 9999, unsigned 64-bit and nested containers compare exactly.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PlistReal,
  PlistUid,
  decodeBinary,
  decodeXml,
  encodeBinary,
  encodeXml,
  isPlistDict,
  plistEqual,
  type PlistDict,
  type PlistValue,
} from '../../src/plist/index.ts';

const run = promisify(execFile);
const CORPUS_SIZE = 1200;
const SEED = 0x6b697474; // "kitt"

function plistutilPath(): string {
  try {
    return execFileSync('which', ['plistutil'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      "plistutil is not installed: this conformance test needs libplist's plistutil (Debian/Ubuntu: apt-get install libplist-utils; macOS: brew install libplist). CI installs it; the test fails rather than skips without it.",
    );
  }
}

function dictOf(entries: readonly (readonly [string, PlistValue])[]): PlistDict {
  const d: PlistDict = {};
  for (const [k, v] of entries)
    Object.defineProperty(d, k, { value: v, enumerable: true, writable: true, configurable: true });
  return d;
}

const noNul = (s: string): string => s.replace(/\0/g, '\u2400');
const stringArb = fc.oneof(
  fc.string({ maxLength: 30 }).map(noNul),
  fc.string({ unit: 'binary', maxLength: 30 }).map(noNul),
  fc.constantFrom('', '😀𝄞', 'キッティング', 'a\r\nb', '\u0001\u001f', ']]>&<', '  spaced  ', '\uFFFE\uFFFF'),
);
const intArb = fc.oneof(
  fc.integer(),
  fc.maxSafeInteger(),
  fc.bigInt(-(1n << 63n), (1n << 64n) - 1n),
  fc.constantFrom(
    0,
    -1,
    255,
    256,
    2 ** 32,
    Number.MAX_SAFE_INTEGER,
    2n ** 63n - 1n,
    -(2n ** 63n),
    2n ** 63n,
    2n ** 64n - 1n,
  ),
);
const realArb = fc.oneof(
  fc.double(),
  fc.double().map((d) => new PlistReal(d)),
  fc.float().map((f) => new PlistReal(f)),
  fc.constantFrom(0.1, -0, 5e-324, 1.7976931348623157e308, NaN, Infinity, -Infinity, new PlistReal(1)),
);
// Whole seconds, years 0001–9999.
const dateArb = fc.integer({ min: -62135596800, max: 253402300799 }).map((s) => new Date(s * 1000));
const leafArb: fc.Arbitrary<PlistValue> = fc.oneof(
  stringArb,
  intArb,
  realArb,
  fc.boolean(),
  fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
  dateArb,
  fc.nat({ max: 2 ** 32 - 1 }).map((n) => new PlistUid(n)),
);
const keyArb = fc.oneof(
  fc.string({ maxLength: 10 }).map(noNul),
  fc.string({ unit: 'binary', maxLength: 6 }).map(noNul),
  fc.constantFrom('', '__proto__', 'CF$UID'),
);
const { value: valueArb } = fc.letrec<{ value: PlistValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    leafArb,
    fc.array(tie('value'), { maxLength: 8 }),
    fc.array(fc.tuple(keyArb, tie('value')), { maxLength: 8 }).map(dictOf),
  ),
}));

function deep(depth: number): PlistValue {
  let v: PlistValue = [1n << 63n, 'bottom', new Date(0)];
  for (let i = 0; i < depth; i++) v = i % 2 === 0 ? dictOf([[`level${i}`, v]]) : [v, i];
  return v;
}

/** The value libplist hands back: UIDs in Apple's XML form, a `{CF$UID: n}` dict. */
function uidsAsDicts(v: PlistValue): PlistValue {
  if (v instanceof PlistUid) return { CF$UID: v.value };
  if (Array.isArray(v)) return v.map(uidsAsDicts);
  if (isPlistDict(v)) return dictOf(Object.keys(v).map((k) => [k, uidsAsDicts(v[k] as PlistValue)]));
  return v;
}

async function pool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await work(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function show(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x))?.slice(0, 400) ?? String(v);
}

let plistutil: string;
let dir: string;
let corpus: PlistValue[];

beforeAll(() => {
  plistutil = plistutilPath();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plist-conf-'));
  corpus = [...fc.sample(valueArb, { seed: SEED, numRuns: CORPUS_SIZE - 4 }), deep(40), deep(100), dictOf([]), []];
});

afterAll(() => {
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
});

async function convert(input: string, output: string, format: 'xml' | 'bin'): Promise<Buffer> {
  await run(plistutil, ['-i', input, '-o', output, '-f', format]);
  return fs.readFileSync(output);
}

describe('conformance with libplist plistutil', () => {
  it(`the corpus covers every type (${CORPUS_SIZE} plists)`, () => {
    expect(corpus).toHaveLength(CORPUS_SIZE);
    const seen = new Set<string>();
    const walk = (v: PlistValue): void => {
      if (typeof v === 'bigint') seen.add(v >= 1n << 63n ? 'unsigned64' : 'bigint');
      else if (typeof v === 'number') seen.add(Number.isInteger(v) ? 'integer' : 'real');
      else if (typeof v === 'string') seen.add([...v].some((c) => c.charCodeAt(0) > 0x7f) ? 'unicode' : 'string');
      else if (typeof v === 'boolean') seen.add('boolean');
      else if (v instanceof PlistReal) seen.add('PlistReal');
      else if (v instanceof PlistUid) seen.add('uid');
      else if (v instanceof Date) seen.add('date');
      else if (Buffer.isBuffer(v)) seen.add('data');
      else if (Array.isArray(v)) {
        seen.add('array');
        v.forEach(walk);
      } else if (isPlistDict(v)) {
        seen.add('dict');
        Object.values(v).forEach(walk);
      }
    };
    corpus.forEach(walk);
    expect([...seen].sort()).toEqual(
      [
        'PlistReal',
        'array',
        'bigint',
        'boolean',
        'data',
        'date',
        'dict',
        'integer',
        'real',
        'string',
        'unicode',
        'uid',
        'unsigned64',
      ].sort(),
    );
  });

  it('(a) our binary → plistutil XML → our XML decoder, and (b) our XML → plistutil binary → our binary decoder', async () => {
    const mismatches: string[] = [];
    const indexes = corpus.map((_v, i) => i);
    await pool(indexes, Math.max(4, os.availableParallelism() * 2), async (i) => {
      const original = corpus[i] as PlistValue;
      const expected = uidsAsDicts(original);
      const ourBin = path.join(dir, `${i}.ours.bplist`);
      const ourXml = path.join(dir, `${i}.ours.plist`);
      fs.writeFileSync(ourBin, encodeBinary(original));
      fs.writeFileSync(ourXml, encodeXml(original));
      const libXml = await convert(ourBin, path.join(dir, `${i}.lib.plist`), 'xml');
      const libBin = await convert(ourXml, path.join(dir, `${i}.lib.bplist`), 'bin');
      let a: PlistValue;
      let b: PlistValue;
      try {
        a = decodeXml(libXml);
        b = decodeBinary(libBin);
      } catch (e) {
        mismatches.push(
          `#${i}: our decoder rejected plistutil output: ${(e as Error).message}; original ${show(original)}`,
        );
        return;
      }
      if (!plistEqual(a, expected)) mismatches.push(`#${i} (a) binary→xml: got ${show(a)}; expected ${show(expected)}`);
      if (!plistEqual(b, expected)) mismatches.push(`#${i} (b) xml→binary: got ${show(b)}; expected ${show(expected)}`);
    });
    expect(mismatches.slice(0, 5)).toEqual([]);
    expect(mismatches).toHaveLength(0);
  });

  it("our XML is byte-identical to plistutil's XML of the same value (reals, years before 1000 and CR aside)", async () => {
    // Three known differences in how a value is spelled, not in the value: libplist prints reals
    // with 17 significant digits (0.1 → 0.10000000000000001) where we print the shortest round-trip
    // form; it does not zero-pad years before 1000 (`735-11-10T…`) where we write ISO 8601's four
    // digits; and it writes CR raw where we write `&#13;` (XML parsers normalize a raw CR away, so
    // the reference keeps it). Values with any of these are left out here; every other byte must agree.
    const spelledDifferently = (v: PlistValue): boolean =>
      (typeof v === 'number' && !Number.isSafeInteger(v)) ||
      (typeof v === 'string' && v.includes('\r')) ||
      v instanceof PlistReal ||
      (v instanceof Date && v.getUTCFullYear() < 1000) ||
      (Array.isArray(v) && v.some(spelledDifferently)) ||
      (isPlistDict(v) && Object.entries(v).some(([k, x]) => k.includes('\r') || spelledDifferently(x)));
    const sample = corpus
      .map((v, i) => ({ v, i }))
      .filter(({ v }) => !spelledDifferently(v))
      .slice(0, 300);
    expect(sample.length).toBeGreaterThan(100);
    const differing: string[] = [];
    await pool(sample, Math.max(4, os.availableParallelism() * 2), async ({ v, i }) => {
      const ourBin = path.join(dir, `${i}.layout.bplist`);
      fs.writeFileSync(ourBin, encodeBinary(v));
      const libXml = await convert(ourBin, path.join(dir, `${i}.layout.plist`), 'xml');
      const ours = encodeXml(uidsAsDicts(v));
      if (!ours.equals(libXml))
        differing.push(`#${i}: ours ${show(ours.toString())} libplist ${show(libXml.toString())}`);
    });
    expect(differing.slice(0, 3)).toEqual([]);
  });
});

describe('libplist quirks, pinned', () => {
  async function viaLib(value: PlistValue, from: 'xml' | 'bin'): Promise<PlistValue> {
    const name = `quirk-${Math.random().toString(36).slice(2)}`;
    const input = path.join(dir, `${name}.in`);
    fs.writeFileSync(input, from === 'bin' ? encodeBinary(value) : encodeXml(value));
    const out = await convert(input, path.join(dir, `${name}.out`), from === 'bin' ? 'xml' : 'bin');
    return from === 'bin' ? decodeXml(out) : decodeBinary(out);
  }

  it('libplist loses what follows U+0000 in a string (C strings), both directions', async () => {
    for (const from of ['bin', 'xml'] as const) {
      const [s] = (await viaLib(['a\u0000b'], from)) as [string];
      expect(s.startsWith('a')).toBe(true);
      expect(s).not.toContain('b');
    }
  });

  it('libplist writes years before 1000 without zero padding; we read that form too', async () => {
    const input = path.join(dir, 'year-735.bplist');
    fs.writeFileSync(input, encodeBinary([new Date('0735-11-10T22:33:10Z')]));
    const out = await convert(input, path.join(dir, 'year-735.plist'), 'xml');
    expect(out.toString()).toContain('<date>735-11-10T22:33:10Z</date>');
    expect(decodeXml(out)).toEqual([new Date('0735-11-10T22:33:10Z')]);
  });

  it('libplist keeps a CF$UID dict a dict when reading XML, and cannot write UIDs of 2^32 and above as XML', async () => {
    expect(await viaLib([new PlistUid(7)], 'bin')).toEqual([{ CF$UID: 7 }]);
    expect(await viaLib([new PlistUid(7)], 'xml')).toEqual([{ CF$UID: 7 }]);
    const input = path.join(dir, 'uid-big.bplist');
    fs.writeFileSync(input, encodeBinary([new PlistUid(2 ** 32)]));
    const out = await convert(input, path.join(dir, 'uid-big.plist'), 'xml');
    expect(() => decodeXml(out)).toThrow(/holds no value/);
  });

  it('libplist truncates fractional date seconds toward 2001 (pre-2001 dates land one second late)', async () => {
    expect(await viaLib([new Date('2020-01-01T00:00:00.900Z')], 'bin')).toEqual([new Date('2020-01-01T00:00:00Z')]);
    expect(await viaLib([new Date('1990-01-01T00:00:00.500Z')], 'bin')).toEqual([new Date('1990-01-01T00:00:01Z')]);
    // We floor: the XML we write says 00:00:00.
    expect(encodeXml(new Date('1990-01-01T00:00:00.500Z')).toString()).toContain('<date>1990-01-01T00:00:00Z</date>');
  });

  it('libplist keeps 64 bits of a 16-byte integer: our 128-bit values beyond 2^64 do not survive it', async () => {
    expect(await viaLib([2n ** 100n + 5n], 'bin')).toEqual([5]);
    expect(await viaLib([2n ** 64n - 1n], 'bin')).toEqual([2n ** 64n - 1n]);
  });
});
