import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  PlistReal,
  PlistUid,
  decodeBinary,
  decodePlist,
  decodeXml,
  encodeBinary,
  encodeXml,
  isPlistDict,
  plistEqual,
  type PlistDict,
  type PlistValue,
} from '../../src/plist/index.ts';

/** A dict built with own-property semantics, so a generated `__proto__` key stays a key. */
function dictOf(entries: readonly (readonly [string, PlistValue])[]): PlistDict {
  const d: PlistDict = {};
  for (const [k, v] of entries)
    Object.defineProperty(d, k, { value: v, enumerable: true, writable: true, configurable: true });
  return d;
}

const keyArb = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.constantFrom('', '__proto__', 'constructor', 'toString', 'CF$UID', 'a&b<c>', '0', '10', '鍵'),
);
const stringArb = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
  fc.constantFrom('', '😀', 'héllo', 'キッティング', '\r\n\t', ']]>', '&amp;', '<dict>', ' lead and trail '),
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
    65535,
    65536,
    2 ** 32 - 1,
    2 ** 32,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
  ),
  fc.constantFrom(2n ** 53n, -(2n ** 53n) - 1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 63n, 2n ** 64n - 1n),
);
const realArb = fc.oneof(
  fc.double(),
  fc.double().map((v) => new PlistReal(v)),
  fc.constantFrom(0.1, -2.5, 1e300, 5e-324, NaN, Infinity, -Infinity, new PlistReal(2), new PlistReal(0)),
);
const bytesArb = fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.constant(new Uint8Array(0))).map((u) => Buffer.from(u));
// Dates: binary keeps milliseconds; XML keeps whole seconds within years 0000–9999.
const binaryDateArb = fc.date({ noInvalidDate: true, min: new Date(-62135596800000), max: new Date(253402300799000) });
const xmlDateArb = fc.integer({ min: -62135596800, max: 253402300799 }).map((s) => new Date(s * 1000));

function valueArb(withUid: boolean, dateArb: fc.Arbitrary<Date>): fc.Arbitrary<PlistValue> {
  const leaf: fc.Arbitrary<PlistValue> = fc.oneof(
    stringArb,
    intArb,
    realArb,
    fc.boolean(),
    bytesArb,
    dateArb,
    ...(withUid ? [fc.nat({ max: 2 ** 32 }).map((n) => new PlistUid(n))] : []),
  );
  const { value } = fc.letrec<{ value: PlistValue }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      leaf,
      fc.array(tie('value'), { maxLength: 6 }),
      fc.array(fc.tuple(keyArb, tie('value')), { maxLength: 6 }).map(dictOf),
    ),
  }));
  return value;
}

const binaryValue = valueArb(true, binaryDateArb);
const xmlValue = valueArb(false, xmlDateArb);

describe('plist round trips (property based)', () => {
  it('binary: decode(encode(v)) equals v for every type', () => {
    fc.assert(
      fc.property(binaryValue, (v) => {
        const back = decodeBinary(encodeBinary(v));
        expect(plistEqual(back, v)).toBe(true);
        expect(plistEqual(decodePlist(encodeBinary(v)), v)).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('XML: decode(encode(v)) equals v for every type', () => {
    fc.assert(
      fc.property(xmlValue, (v) => {
        const back = decodeXml(encodeXml(v));
        expect(plistEqual(back, v)).toBe(true);
        expect(plistEqual(decodePlist(encodeXml(v)), v)).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('binary → XML → binary keeps the value (no UIDs, whole-second dates)', () => {
    fc.assert(
      fc.property(xmlValue, (v) => {
        const viaXml = decodeXml(encodeXml(decodeBinary(encodeBinary(v), { realsAsObjects: true })), {
          realsAsObjects: true,
        });
        expect(plistEqual(decodeBinary(encodeBinary(viaXml)), v)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('integers come back as number when safe and as exact bigint otherwise', () => {
    fc.assert(
      fc.property(fc.bigInt(-(1n << 127n), (1n << 127n) - 1n), (n) => {
        for (const back of [decodeBinary(encodeBinary(n)), decodeXml(encodeXml(n))]) {
          if (n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER))
            expect(back).toBe(Number(n));
          else expect(back).toBe(n);
        }
      }),
    );
  });

  it('realsAsObjects keeps an integral real a real through a second encode', () => {
    fc.assert(
      fc.property(fc.double(), (d) => {
        for (const bytes of [encodeBinary(new PlistReal(d)), encodeXml(new PlistReal(d))]) {
          const back = decodePlist(bytes, { realsAsObjects: true });
          expect(back).toBeInstanceOf(PlistReal);
          expect(Object.is((back as PlistReal).value, d) || (d === 0 && (back as PlistReal).value === 0)).toBe(true);
          const again = decodePlist(bytes[0] === 0x62 ? encodeBinary(back) : encodeXml(back));
          expect(typeof again).toBe('number');
          expect(plistEqual(again, d)).toBe(true);
        }
      }),
    );
  });

  it('strings: ASCII as 0x5X, anything else as UTF-16BE in binary; exact text either way', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (s) => {
        const bin = encodeBinary(s);
        const marker = bin[8] as number;
        expect(marker >> 4).toBe([...s].every((c) => c.charCodeAt(0) < 0x80) ? 0x5 : 0x6);
        expect(decodeBinary(bin)).toBe(s);
        expect(decodeXml(encodeXml(s))).toBe(s);
      }),
    );
  });
});

describe('plist round trips (fixed vectors)', () => {
  it('nesting to depth 100 in both formats', () => {
    let v: PlistValue = 'leaf';
    for (let i = 0; i < 100; i++) v = i % 2 === 0 ? [v] : dictOf([[`k${i}`, v]]);
    expect(plistEqual(decodeBinary(encodeBinary(v)), v)).toBe(true);
    expect(plistEqual(decodeXml(encodeXml(v)), v)).toBe(true);
  });

  it('empty containers, empty string and empty data', () => {
    for (const v of [[], {}, '', Buffer.alloc(0), [[], {}, '', Buffer.alloc(0)]] as PlistValue[]) {
      expect(decodeBinary(encodeBinary(v))).toEqual(v);
      expect(decodeXml(encodeXml(v))).toEqual(v);
    }
  });

  it('writes Apple-layout XML byte for byte', () => {
    const v = dictOf([
      ['Name', 'iPad & <cart>'],
      ['Count', 3],
      ['Ratio', 0.5],
      ['Whole', new PlistReal(2)],
      ['Big', 2n ** 64n - 1n],
      ['On', true],
      ['When', new Date('2024-05-06T07:08:09Z')],
      ['Blob', Buffer.from('hello')],
      ['List', [1, dictOf([])]],
      ['Empty', []],
    ]);
    expect(encodeXml(v).toString('utf8')).toBe(
      [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
        '<plist version="1.0">',
        '<dict>',
        '\t<key>Name</key>',
        '\t<string>iPad &amp; &lt;cart&gt;</string>',
        '\t<key>Count</key>',
        '\t<integer>3</integer>',
        '\t<key>Ratio</key>',
        '\t<real>0.5</real>',
        '\t<key>Whole</key>',
        '\t<real>2</real>',
        '\t<key>Big</key>',
        '\t<integer>18446744073709551615</integer>',
        '\t<key>On</key>',
        '\t<true/>',
        '\t<key>When</key>',
        '\t<date>2024-05-06T07:08:09Z</date>',
        '\t<key>Blob</key>',
        '\t<data>',
        '\taGVsbG8=',
        '\t</data>',
        '\t<key>List</key>',
        '\t<array>',
        '\t\t<integer>1</integer>',
        '\t\t<dict/>',
        '\t</array>',
        '\t<key>Empty</key>',
        '\t<array/>',
        '</dict>',
        '</plist>',
        '',
      ].join('\n'),
    );
  });

  it('writes Apple-layout binary byte for byte', () => {
    // {"a": 1, "b": [true, "a"]}: strings and ints deduplicated, 1-byte refs and offsets.
    const bytes = encodeBinary(
      dictOf([
        ['a', 1],
        ['b', [true, 'a']],
      ]),
    );
    expect(bytes.toString('hex')).toBe(
      [
        '62706c6973743030', // bplist00
        'd201030204', // 0 @8: dict of 2, key refs 1 3, value refs 2 4
        '5161', // 1 @13: "a"
        '1001', // 2 @15: 1
        '5162', // 3 @17: "b"
        'a20501', // 4 @19: array of 2: refs 5, 1 (the "a" string is shared)
        '09', // 5 @22: true
        '080d0f111316', // offset table
        '000000000000', // trailer: unused
        '0101', // offset size, ref size
        '0000000000000006', // object count
        '0000000000000000', // root
        '0000000000000017', // offset table at 23
      ].join(''),
    );
    // Decode the layout independently of our decoder: trailer fields and object markers.
    const t = bytes.length - 32;
    expect(bytes[t + 6]).toBe(1); // offset size
    expect(bytes[t + 7]).toBe(1); // ref size
    expect(bytes.readBigUInt64BE(t + 8)).toBe(6n); // dict, "a", 1, "b", array, true
    expect(bytes.readBigUInt64BE(t + 16)).toBe(0n); // root
    const offsets = [...bytes.subarray(Number(bytes.readBigUInt64BE(t + 24)), t)];
    expect(offsets.map((o) => bytes[o])).toEqual([0xd2, 0x51, 0x10, 0x51, 0xa2, 0x09]);
    expect(decodeBinary(bytes)).toEqual({ a: 1, b: [true, 'a'] });
  });

  it('writes unsigned 64-bit the libplist way and reads libplist output', () => {
    const u = encodeBinary(2n ** 64n - 1n);
    expect(u.subarray(8, 25).toString('hex')).toBe(`14${'00'.repeat(8)}${'ff'.repeat(8)}`);
    const s = encodeBinary(-(2n ** 63n));
    expect(s.subarray(8, 17).toString('hex')).toBe(`13${'80'}${'00'.repeat(7)}`);
    // Written by plistutil 2.2.0 from XML: {a: 2^64-1, b: -1, c: 2^63, d: 1.5 (float32), e: 2.0 (float32),
    // f: 2020-01-02T03:04:05Z, g: "héllo😀" (UTF-16), h: 0.1 (float64), i: -2^63, j: <00 01 02>}.
    const fromLibplist = Buffer.from(
      '62706c6973743030da01030507090b0d0f1113020406080a0c0e1012145161140000000000000000ffffffffffffffff516213ffffffffffffffff516314000000000000000080000000000000005164223fc000005165224000000051663341c1deca92800000516767006800e9006c006c006fd83dde005168233fb999999999999a5169138000000000000000516a43000102081d1f30323b3d4e5055575c5e6769787a83858e900000000000000101000000000000001500000000000000000000000000000094',
      'hex',
    );
    expect(decodeBinary(fromLibplist)).toEqual({
      a: 2n ** 64n - 1n,
      b: -1,
      c: 2n ** 63n,
      d: 1.5,
      e: 2,
      f: new Date('2020-01-02T03:04:05Z'),
      g: 'héllo😀',
      h: 0.1,
      i: -(2n ** 63n),
      j: Buffer.from([0, 1, 2]),
    });
  });

  it('UIDs round-trip in binary and become CF$UID dicts in XML', () => {
    for (const n of [0, 1, 255, 256, 65536, 2 ** 32 - 1, 2 ** 32]) {
      const back = decodeBinary(encodeBinary([new PlistUid(n)]));
      expect(back).toEqual([new PlistUid(n)]);
    }
    expect(decodeXml(encodeXml(new PlistUid(7)))).toEqual({ CF$UID: 7 });
  });

  it('numbers: integral → integer, the rest → real; beyond 64 bits → real', () => {
    expect(encodeBinary(3)[8]).toBe(0x10);
    expect(encodeBinary(3.5)[8]).toBe(0x23);
    expect(encodeBinary(NaN)[8]).toBe(0x23);
    expect(encodeBinary(new PlistReal(3))[8]).toBe(0x23);
    expect(encodeBinary(2 ** 60)[8]).toBe(0x13);
    expect(decodeBinary(encodeBinary(2 ** 60))).toBe(2n ** 60n);
    expect(encodeBinary(2 ** 70)[8]).toBe(0x23);
    expect(encodeXml(-7).toString()).toContain('<integer>-7</integer>');
    expect(encodeXml(-Infinity).toString()).toContain('<real>-infinity</real>');
    expect(decodeXml('<plist><integer>+42</integer></plist>')).toBe(42);
    expect(decodeXml('<plist><integer> -0042 </integer></plist>')).toBe(-42);
  });

  it('reads XML features: entities, CDATA, comments, PIs, DOCTYPE, attributes, empty elements', () => {
    const xml = `\uFEFF<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment -->
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>e</key><string>&amp;&lt;&gt;&quot;&apos;&#65;&#x1F600;&#X263a;</string>
  <key>c</key><string>a<![CDATA[<b>&amp;]]>c<!-- skip -->d<?pi x?></string>
  <key>k</key><string/>
  <key/><data/>
  <key>d</key><data>
    aGVs
    bG8=
  </data>
  <key>t</key><true></true>
  <key>f</key><false/>
  <key>a</key><array/>
  <key>x</key><dict/>
  <key>r</key><real>-1.5e3</real>
  <key>n</key><real>NaN</real>
  <key>dt</key><date>2001-01-01T00:00:00Z</date>
</dict>
</plist>
<!-- trailing comment -->
`;
    const v = decodeXml(xml);
    expect(v).toEqual({
      e: `&<>"'A😀☺`,
      c: 'a<b>&amp;cd',
      k: '',
      '': Buffer.alloc(0),
      d: Buffer.from('hello'),
      t: true,
      f: false,
      a: [],
      x: {},
      r: -1500,
      n: NaN,
      dt: new Date('2001-01-01T00:00:00Z'),
    });
  });

  it('__proto__ keys stay own properties and never touch the prototype', () => {
    const xml = '<plist><dict><key>__proto__</key><dict><key>polluted</key><true/></dict></dict></plist>';
    const v = decodeXml(xml) as PlistDict;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.keys(v)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(JSON.stringify(v)).toBe('{"__proto__":{"polluted":true}}');
    expect(isPlistDict(v)).toBe(true);
    const bin = decodeBinary(encodeBinary(v)) as PlistDict;
    expect(Object.getPrototypeOf(bin)).toBe(Object.prototype);
    expect(plistEqual(bin, v)).toBe(true);
  });

  it('plistEqual compares structurally and can say no', () => {
    expect(plistEqual(1, 1n)).toBe(true);
    expect(plistEqual(new PlistReal(1.5), 1.5)).toBe(true);
    expect(plistEqual(Buffer.from([1]), Buffer.from([1]))).toBe(true);
    expect(plistEqual(new Date(5), new Date(5))).toBe(true);
    expect(plistEqual({ a: [1, 'x'] }, { a: [1, 'x'] })).toBe(true);
    expect(plistEqual(1, 2)).toBe(false);
    expect(plistEqual(1, '1')).toBe(false);
    expect(plistEqual(1.5, 1n)).toBe(false);
    expect(plistEqual(Buffer.from([1]), Buffer.from([2]))).toBe(false);
    expect(plistEqual({ a: 1 }, { b: 1 })).toBe(false);
    expect(plistEqual({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(plistEqual([1], [1, 2])).toBe(false);
    expect(plistEqual(new PlistUid(1), new PlistUid(2))).toBe(false);
    expect(plistEqual(new PlistUid(1), 1)).toBe(false);
    expect(plistEqual([], {})).toBe(false);
  });
});

describe('plist decoding details', () => {
  it('reads <integer>-0</integer> as 0, not -0', () => {
    expect(Object.is(decodeXml('<plist><integer>-0</integer></plist>'), 0)).toBe(true);
  });
});
