/**
 * Every class of malformed input gets its own test: the right code, and where it is (a byte offset
 * for binary, line and column for XML). Inputs are built so that a decoder that trusted a length
 * field would allocate terabytes or loop forever; passing means it did neither.
 */
import { describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import {
  PlistUid,
  decodeBinary,
  decodePlist,
  decodeXml,
  encodeBinary,
  encodeXml,
  type PlistValue,
} from '../../src/plist/index.ts';

interface BuildOptions {
  refSize?: number;
  offsetSize?: number;
  root?: bigint;
  numObjects?: bigint;
  tableOffset?: bigint;
  /** Replaces the offset table entries. */
  offsets?: number[];
}

/** Assembles a bplist00 from raw object bytes, with any trailer field overridable. */
function bplist(objects: number[][], o: BuildOptions = {}): Buffer {
  const offsetSize = o.offsetSize ?? 1;
  const parts: number[] = [...Buffer.from('bplist00')];
  const offsets: number[] = [];
  for (const obj of objects) {
    offsets.push(parts.length);
    parts.push(...obj);
  }
  const tableAt = parts.length;
  for (const off of o.offsets ?? offsets) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(off));
    parts.push(...b.subarray(8 - offsetSize));
  }
  const trailer = Buffer.alloc(32);
  trailer[6] = offsetSize;
  trailer[7] = o.refSize ?? 1;
  trailer.writeBigUInt64BE(o.numObjects ?? BigInt(objects.length), 8);
  trailer.writeBigUInt64BE(o.root ?? 0n, 16);
  trailer.writeBigUInt64BE(o.tableOffset ?? BigInt(tableAt), 24);
  return Buffer.concat([Buffer.from(parts), trailer]);
}

function errorOf(fn: () => unknown): KitError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(KitError);
    return e as KitError;
  }
  throw new Error('expected a KitError, nothing was thrown');
}

function expectBinaryMalformed(bytes: Uint8Array, offset: number, message?: RegExp): KitError {
  const e = errorOf(() => decodeBinary(bytes));
  expect(e.code).toBe('plist/malformed');
  expect(e.details).toEqual({ offset });
  if (message !== undefined) expect(e.message).toMatch(message);
  // decodePlist routes by magic to the same checks.
  expect(errorOf(() => decodePlist(bytes)).details).toEqual({ offset });
  return e;
}

function expectXmlMalformed(xml: string | Uint8Array, line: number, column: number, message?: RegExp): KitError {
  const e = errorOf(() => decodeXml(xml));
  expect(e.code).toBe('plist/malformed');
  expect(e.details).toMatchObject({ line, column });
  if (message !== undefined) expect(e.message).toMatch(message);
  return e;
}

function expectUnsupported(value: unknown, path: string, message?: RegExp): void {
  for (const encode of [encodeBinary, encodeXml]) {
    const e = errorOf(() => encode(value as PlistValue));
    expect(e.code).toBe('plist/unsupported');
    expect(e.details).toEqual({ path });
    if (message !== undefined) expect(e.message).toMatch(message);
  }
}

const valid = encodeBinary({ name: 'iPad', list: [1, 2, 3], blob: Buffer.alloc(40, 7) });

describe('binary plist: malformed input', () => {
  it('sanity: the helper builds a valid plist', () => {
    expect(
      decodeBinary(
        bplist([
          [0xa2, 1, 2],
          [0x10, 5],
          [0x51, 0x61],
        ]),
      ),
    ).toEqual([5, 'a']);
  });

  it('truncated file: every prefix fails with an offset, never a crash', () => {
    for (let n = 0; n < valid.length; n++) {
      const e = errorOf(() => decodeBinary(valid.subarray(0, n)));
      expect(e.code).toBe('plist/malformed');
      expect(typeof e.details?.offset).toBe('number');
    }
    expectBinaryMalformed(valid.subarray(0, 20), 20, /truncated/);
  });

  it('non-plist bytes', () => {
    expectBinaryMalformed(Buffer.from('bplist'), 6, /truncated/);
    const e = errorOf(() => decodeBinary(Buffer.from('hello world, this is not a plist at all')));
    expect(e.code).toBe('plist/malformed');
    expect(e.details).toEqual({ offset: 0 });
    expect(errorOf(() => decodePlist(Buffer.from([0x00, 0xff, 0x13, 0x37]))).code).toBe('plist/malformed');
  });

  it('trailer: offset table position out of range', () => {
    const b = bplist([[0x10, 1]], { tableOffset: 1n << 40n });
    expectBinaryMalformed(b, b.length - 8, /offset table position/);
    const c = bplist([[0x10, 1]], { tableOffset: 3n });
    expectBinaryMalformed(c, c.length - 8, /offset table position/);
  });

  it('trailer: absurd object count (2^60) is rejected against the file size before allocating', () => {
    const b = bplist([[0x10, 1]], { numObjects: 1n << 60n });
    expectBinaryMalformed(b, b.length - 24, /claims 1152921504606846976 objects/);
    // A count that passes the file-size test but not the offset-table room.
    const c = bplist([[0x10, 1]], { numObjects: 30n });
    expectBinaryMalformed(c, c.length - 24, /runs past the trailer/);
  });

  it('trailer: bad offset/ref sizes and root index', () => {
    const b = bplist([[0x10, 1]], { root: 5n });
    expectBinaryMalformed(b, b.length - 16, /root object index 5/);
    const c = bplist([[0x10, 1]]);
    c[c.length - 26] = 0;
    expectBinaryMalformed(c, c.length - 26, /offset size 0/);
    c[c.length - 26] = 1;
    c[c.length - 25] = 9;
    expectBinaryMalformed(c, c.length - 25, /reference size 9/);
  });

  it('offset-table entry out of range', () => {
    const b = bplist(
      [
        [0xa1, 1],
        [0x10, 1],
      ],
      { offsets: [8, 200] },
    );
    expectBinaryMalformed(b, 13, /offset-table entry 1 points to 200/);
  });

  it('object reference out of range', () => {
    expectBinaryMalformed(
      bplist([
        [0xa2, 1, 9],
        [0x10, 1],
      ]),
      10,
      /object reference 9/,
    );
  });

  it('reference cycles: direct and indirect', () => {
    expectBinaryMalformed(bplist([[0xa1, 0]]), 8, /cycle/);
    // dict 0 → array 1 → dict 0
    expectBinaryMalformed(
      bplist([
        [0xd1, 2, 1],
        [0xa1, 0],
        [0x51, 0x6b],
      ]),
      8,
      /cycle/,
    );
  });

  it('lying length fields: data claiming 2^40 bytes, string claiming 2^62, array claiming 2^32 refs', () => {
    // 0x4F then an 8-byte integer length 2^40.
    expectBinaryMalformed(bplist([[0x4f, 0x13, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3]]), 8, /data needs 1099511627776 bytes/);
    expectBinaryMalformed(bplist([[0x5f, 0x13, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x61]]), 8, /string needs/);
    expectBinaryMalformed(bplist([[0x6f, 0x12, 0x40, 0, 0, 0, 0x61]]), 8, /UTF-16 string needs/);
    expectBinaryMalformed(bplist([[0xaf, 0x12, 1, 0, 0, 0, 0]]), 8, /array references needs 16777216 bytes/);
    expectBinaryMalformed(bplist([[0xdf, 0x13, 0x80, 0, 0, 0, 0, 0, 0, 0]]), 9, /negative length/);
    expectBinaryMalformed(bplist([[0x4f, 0x50]]), 9, /expected an integer length/);
  });

  it('fixed-size objects running past the object area', () => {
    expectBinaryMalformed(bplist([[0x13, 0, 0]]), 8, /integer needs 8 bytes/);
    expectBinaryMalformed(bplist([[0x23, 0, 0]]), 8, /real needs 8 bytes/);
    expectBinaryMalformed(bplist([[0x33, 0]]), 8, /date needs 8 bytes/);
  });

  it('unknown markers and sizes', () => {
    expectBinaryMalformed(bplist([[0x0f]]), 8, /unknown object marker 0x0f/);
    expectBinaryMalformed(bplist([[0x70, 0]]), 8, /unknown object marker 0x70/);
    expectBinaryMalformed(bplist([[0x15, ...new Array<number>(32).fill(0)]]), 8, /integer of 32 bytes/);
    expectBinaryMalformed(bplist([[0x21, 0, 0]]), 8, /real of 2 bytes/);
    expectBinaryMalformed(
      bplist([
        [0xd1, 1, 1],
        [0x10, 1],
      ]),
      9,
      /dict key 0 is number, not a string/,
    );
  });

  it('invalid UTF-16 (unpaired surrogates) and invalid UTF-8 in strings', () => {
    expectBinaryMalformed(bplist([[0x61, 0xd8, 0x3d]]), 9, /unpaired surrogate/);
    expectBinaryMalformed(bplist([[0x62, 0x00, 0x61, 0xdc, 0x00]]), 11, /unpaired surrogate/);
    expectBinaryMalformed(bplist([[0x52, 0xc3, 0x28]]), 8, /neither ASCII nor valid UTF-8/);
  });

  it('nesting deeper than the limit (default 512, and a custom maxDepth)', () => {
    const n = 600;
    // 600 one-element arrays, each referencing the next, 2-byte refs.
    const objs: number[][] = [];
    for (let i = 0; i < n; i++) objs.push(i < n - 1 ? [0xa1, (i + 1) >> 8, (i + 1) & 0xff] : [0x10, 1]);
    const b = bplist(objs, { refSize: 2, offsetSize: 2 });
    const e = errorOf(() => decodeBinary(b));
    expect(e.code).toBe('plist/malformed');
    expect(e.message).toMatch(/nesting deeper than 512/);
    expect(e.details).toEqual({ offset: 8 + 512 * 3 });
    expect(errorOf(() => decodeBinary(b, { maxDepth: 10 })).details).toEqual({ offset: 8 + 10 * 3 });
    expect(decodeBinary(b, { maxDepth: 1000 })).toBeDefined();
  });

  it('shared references that expand exponentially hit maxObjects', () => {
    // 40 arrays, each holding the next one twice: 2^40 values if expanded.
    const objs: number[][] = [];
    for (let i = 0; i < 40; i++) objs.push([0xa2, i + 1, i + 1]);
    objs.push([0x10, 1]);
    const b = bplist(objs);
    const e = expectBinaryMalformed(b, b.length - 32 - objs.length, /too many objects/);
    expect(e.message).toMatch(/maxObjects/);
    expect(errorOf(() => decodeBinary(b, { maxObjects: 100 })).code).toBe('plist/malformed');
  });

  it('unsupported but well-formed objects: null, sets, other versions', () => {
    expect(errorOf(() => decodeBinary(bplist([[0x00]]))).code).toBe('plist/unsupported');
    expect(
      errorOf(() =>
        decodeBinary(
          bplist([
            [0xc1, 1],
            [0x10, 1],
          ]),
        ),
      ).code,
    ).toBe('plist/unsupported');
    const v15 = Buffer.from(valid);
    v15.write('15', 6, 'latin1');
    expect(errorOf(() => decodeBinary(v15)).code).toBe('plist/unsupported');
  });

  it('a UID wider than 8 bytes', () => {
    expectBinaryMalformed(bplist([[0x8f, ...new Array<number>(16).fill(1)]]), 8, /UID of 16 bytes/);
    expect(decodeBinary(bplist([[0x81, 1, 2]]))).toEqual(new PlistUid(258));
  });
});

describe('XML plist: malformed input', () => {
  const wrap = (body: string): string =>
    `<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0">\n${body}\n</plist>\n`;

  it('non-plist bytes and empty documents', () => {
    expectXmlMalformed('hello', 1, 1, /not an XML property list/);
    expectXmlMalformed('', 1, 1, /empty document/);
    expectXmlMalformed(wrap(''), 4, 1, /holds no value/);
    expectXmlMalformed('<plist/>', 1, 1, /empty <plist\/>/);
    expect(errorOf(() => decodePlist(Buffer.from([0xde, 0xad, 0xbe, 0xef]))).code).toBe('plist/malformed');
    expect(errorOf(() => decodePlist(Buffer.from([0x30, 0x82, 0x01, 0x00]))).message).toMatch(/readSignedPlist/);
  });

  it('invalid UTF-8 is located', () => {
    const bytes = Buffer.concat([
      Buffer.from('<plist>\n<string>ab'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('</string></plist>'),
    ]);
    const e = expectXmlMalformed(bytes, 2, 11, /invalid UTF-8 at byte 18/);
    expect(e.details).toMatchObject({ offset: 18 });
    // Overlong encoding and a UTF-16 surrogate encoded in UTF-8 are invalid too.
    expectXmlMalformed(Buffer.from([0x3c, 0xc0, 0xaf]), 1, 2);
    expectXmlMalformed(Buffer.from([0x3c, 0x3e, 0xed, 0xa0, 0x80]), 1, 3);
  });

  it('unknown tags', () => {
    expectXmlMalformed(wrap('<dict>\n  <key>a</key>\n  <strnig>x</strnig>\n</dict>'), 5, 3, /unknown tag <strnig>/);
  });

  it('unclosed tags', () => {
    expectXmlMalformed('<plist>\n<dict>\n<key>a</key>\n<string>abc', 4, 1, /unclosed tag <string>/);
    expectXmlMalformed('<plist>\n<array>\n<true/>', 2, 1, /unclosed tag <array>/);
    expectXmlMalformed('<plist>\n<dict>\n<key>a</key>', 2, 1, /unclosed tag <dict>/);
    expectXmlMalformed('<plist>\n  <string', 2, 3, /unclosed tag <string>/);
    expectXmlMalformed('<plist><string>x</string>', 1, 1, /unclosed tag <plist>/);
    expectXmlMalformed('<plist><!-- never closed', 1, 8, /unclosed comment/);
    expectXmlMalformed('<plist><string><![CDATA[x</string></plist>', 1, 16, /unclosed CDATA/);
  });

  it('mismatched tags', () => {
    expectXmlMalformed(
      wrap('<array>\n\t<string>a</integer>\n</array>'),
      4,
      11,
      /mismatched tag: <\/integer> closes <string>/,
    );
    expectXmlMalformed(wrap('<dict>\n</array>'), 4, 1, /mismatched tag/);
  });

  it('structure errors: stray text, key outside dict, non-key in dict, key without value, trailing content', () => {
    expectXmlMalformed(wrap('<array>\n  oops <true/>\n</array>'), 4, 3, /unexpected text/);
    expectXmlMalformed(wrap('<key>a</key>'), 3, 1, /<key> outside a <dict>/);
    expectXmlMalformed(wrap('<dict>\n<string>a</string>\n</dict>'), 4, 1, /expected <key> in <dict>, found <string>/);
    expectXmlMalformed(wrap('<dict>\n<key>a</key>\n</dict>'), 5, 1, /has no value/);
    expectXmlMalformed('<plist><true/></plist><false/>', 1, 23, /content after the root element/);
    expectXmlMalformed(wrap('<string>a<b>c</b></string>'), 3, 10, /unexpected element inside <string>/);
  });

  it('bad entities', () => {
    expectXmlMalformed(wrap('<string>a & b</string>'), 3, 11, /unterminated entity/);
    expectXmlMalformed(wrap('<string>&nbsp;</string>'), 3, 9, /unknown entity &nbsp;/);
    expectXmlMalformed(wrap('<string>&#xD800;</string>'), 3, 9, /invalid character reference/);
    expectXmlMalformed(wrap('<string>&#x110000;</string>'), 3, 9, /invalid character reference/);
  });

  it('bad base64', () => {
    expectXmlMalformed(wrap('<data>\n\tAAE*\n</data>'), 3, 7, /invalid base64/);
    expectXmlMalformed(wrap('<data>A</data>'), 3, 7, /invalid base64/);
    expectXmlMalformed(wrap('<data>AA=A</data>'), 3, 7, /invalid base64/);
  });

  it('bad integers, reals and dates', () => {
    expectXmlMalformed(wrap('<integer>12a</integer>'), 3, 10, /invalid integer "12a"/);
    expectXmlMalformed(wrap('<integer>0x10</integer>'), 3, 10, /invalid integer/);
    expectXmlMalformed(wrap('<integer></integer>'), 3, 10, /invalid integer ""/);
    expectXmlMalformed(wrap('<real>1.2.3</real>'), 3, 7, /invalid real/);
    expectXmlMalformed(wrap('<date>2024-02-30T00:00:00Z</date>'), 3, 7, /invalid date/);
    expectXmlMalformed(wrap('<date>yesterday</date>'), 3, 7, /invalid date/);
  });

  it('integers outside the signed 128-bit range', () => {
    expect(decodeXml(wrap(`<integer>${(1n << 127n) - 1n}</integer>`))).toBe((1n << 127n) - 1n);
    expect(decodeXml(wrap(`<integer>${-(1n << 127n)}</integer>`))).toBe(-(1n << 127n));
    expectXmlMalformed(wrap(`<integer>${1n << 127n}</integer>`), 3, 10, /outside the signed 128-bit range/);
    expectXmlMalformed(wrap(`<integer>-${'9'.repeat(60)}</integer>`), 3, 10, /outside the signed 128-bit range/);
  });

  it('nesting deeper than the limit', () => {
    const deep = `<plist>${'<array>'.repeat(600)}${'</array>'.repeat(600)}</plist>`;
    const e = expectXmlMalformed(deep, 1, 8 + 512 * 7, /nesting deeper than 512/);
    expect(e.code).toBe('plist/malformed');
    expect(
      errorOf(() =>
        decodeXml(`<plist>${'<dict><key>a</key>'.repeat(20)}<true/>${'</dict>'.repeat(20)}</plist>`, { maxDepth: 5 }),
      ).details,
    ).toEqual({
      line: 1,
      column: 8 + 5 * 18,
    });
  });

  it('more values than maxObjects', () => {
    const xml = `<plist><array>${'<true/>'.repeat(50)}</array></plist>`;
    const e = errorOf(() => decodeXml(xml, { maxObjects: 10 }));
    expect(e.code).toBe('plist/malformed');
    expect(e.details).toEqual({ line: 1, column: 15 + 9 * 7 });
  });
});

describe('encoders: unsupported values and shapes', () => {
  it('undefined, null, functions, symbols, Map, Set, class instances: named by path', () => {
    expectUnsupported({ a: { b: [1, undefined] } }, '$.a.b[1]', /undefined has no plist form/);
    expectUnsupported({ 'odd key': null }, '$["odd key"]', /null/);
    expectUnsupported([() => 1], '$[0]', /function/);
    expectUnsupported({ s: Symbol('x') }, '$.s', /symbol/);
    expectUnsupported({ m: new Map() }, '$.m', /a Map/);
    expectUnsupported([new Set([1])], '$[0]', /a Set/);
    expectUnsupported({ u: new URL('https://example.com') }, '$.u', /a URL/);
    expectUnsupported({ d: new Date(NaN) }, '$.d', /invalid Date/);
    expectUnsupported({ s: 'ok\uD800' }, '$.s', /unpaired UTF-16 surrogate/);
    expectUnsupported({ '\uDC00': 1 }, '$["\\udc00"]', /unpaired/);
    expectUnsupported([1n << 127n], '$[0]', /outside the signed 128-bit range/);
  });

  it('reference cycles are rejected, shared (acyclic) references are fine', () => {
    const a: PlistValue[] = [1];
    const cyclic = { x: { y: a } };
    a.push(cyclic);
    expectUnsupported(cyclic, '$.x.y[1]', /cycle/);
    const shared = [1, 'two'];
    const dag = { a: shared, b: shared };
    expect(decodeBinary(encodeBinary(dag))).toEqual({ a: [1, 'two'], b: [1, 'two'] });
    expect(decodeXml(encodeXml(dag))).toEqual({ a: [1, 'two'], b: [1, 'two'] });
  });

  it('nesting deeper than 512 is rejected', () => {
    let v: PlistValue = 1;
    for (let i = 0; i < 600; i++) v = [v];
    expectUnsupported(v, `$${'[0]'.repeat(512)}`, /nesting deeper than 512/);
  });

  it('XML dates outside years 0000–9999', () => {
    const e = errorOf(() => encodeXml({ when: new Date(Date.UTC(10000, 0, 1)) }));
    expect(e.code).toBe('plist/unsupported');
    expect(e.details).toEqual({ path: '$.when' });
    expect(decodeBinary(encodeBinary(new Date(Date.UTC(10000, 0, 1))))).toEqual(new Date(Date.UTC(10000, 0, 1)));
  });
});
