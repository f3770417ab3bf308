/** Serial plans from CSV: formats, encodings, the row limit, bad rows with lines, export round trips. */
import fc from 'fast-check';
import iconv from 'iconv-lite';
import { afterEach, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import {
  createPlanLookup,
  exportPlans,
  importPlanCsv,
  listStoredPlans,
  MAX_PLAN_ROWS,
  PlanRowsError,
  type BadRow,
  type PlanExportRow,
} from '../../src/kitting/plans.ts';
import { openDatabase, type Db } from '../../src/store/db.ts';
import { planRows } from '../../src/store/plans.ts';

const open: Db[] = [];
function db(): Db {
  const d = openDatabase(':memory:');
  open.push(d);
  return d;
}
afterEach(() => {
  for (const d of open.splice(0)) d.close();
});

const utf8 = (text: string): Buffer => Buffer.from(text, 'utf8');
const bom = (text: string): Buffer => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf8(text)]);
const sjis = (text: string): Buffer => iconv.encode(text, 'cp932');

function thrown(fn: () => unknown): KitError {
  try {
    fn();
  } catch (err) {
    if (err instanceof KitError) return err;
    throw err;
  }
  throw new Error('expected a KitError');
}

function badRowsOf(fn: () => unknown): readonly BadRow[] {
  const err = thrown(fn);
  expect(err).toBeInstanceOf(PlanRowsError);
  expect(err.code).toBe('csv/invalid-rows');
  expect(err.exitCode).toBe(2);
  return (err as PlanRowsError).badRows;
}

/** `n` distinct valid serials. */
function serials(n: number, prefix = 'F'): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(11, '0')}`.slice(0, 12));
}

const UNUSED = Array.from({ length: 12 }, () => '[未使用]').join(',');

describe('import: formats and encodings', () => {
  it('UTF-8, named English columns: every column stored, lowercase serials normalised, cells trimmed', () => {
    const d = db();
    const r = importPlanCsv(
      d,
      utf8(
        'serial,name,asset_tag,group,blueprint,notes\n' +
          'dmpxk0zzq1gc, iPad-01 ,A-001,3年1組,grade3,left side\n' +
          'F9FZ1234ABCD,iPad-02,,,,\n',
      ),
      { file: '/carts/cart-a.csv' },
    );
    expect(r).toEqual({ name: 'cart-a', rows: 2, encoding: 'utf-8', format: 'named' });
    expect(planRows(d, 'cart-a')).toEqual([
      {
        serial: 'DMPXK0ZZQ1GC',
        line: 2,
        name: 'iPad-01',
        assetTag: 'A-001',
        group: '3年1組',
        blueprint: 'grade3',
        notes: 'left side',
      },
      { serial: 'F9FZ1234ABCD', line: 3, name: 'iPad-02' },
    ]);
    expect(createPlanLookup(d)('dmpxk0zzq1gc')).toEqual({
      plan: 'cart-a',
      name: 'iPad-01',
      assetTag: 'A-001',
      group: '3年1組',
      blueprint: 'grade3',
      notes: 'left side',
    });
    expect(createPlanLookup(d)('XXXXXXXXXXXX')).toBeNull();
  });

  it('UTF-8 with BOM: the BOM is not part of the first header', () => {
    const d = db();
    const r = importPlanCsv(d, bom('serial,name\nDMPXK0ZZQ1GC,端末1\n'), { name: 'bom' });
    expect(r).toMatchObject({ encoding: 'utf-8', format: 'named', rows: 1 });
    expect(planRows(d, 'bom')[0]).toMatchObject({ serial: 'DMPXK0ZZQ1GC', name: '端末1' });
  });

  it('Shift_JIS with Japanese headers and names (CP932 characters included) is detected', () => {
    const d = db();
    const text =
      'シリアル番号,端末名,資産管理番号,グループ,ブループリント,備考\r\n' +
      'DMPXK0ZZQ1GC,髙橋先生の端末①,資産-001,３年１組,３年生,㈱さくら納品\r\n' +
      'F9FZ1234ABCD,ｱｲﾊﾟｯﾄ２,資産-002,,,\r\n';
    const r = importPlanCsv(d, sjis(text), { name: 'sjis' });
    expect(r).toEqual({ name: 'sjis', rows: 2, encoding: 'shift_jis', format: 'named' });
    expect(planRows(d, 'sjis')).toEqual([
      {
        serial: 'DMPXK0ZZQ1GC',
        line: 2,
        name: '髙橋先生の端末①',
        assetTag: '資産-001',
        group: '３年１組',
        blueprint: '３年生',
        notes: '㈱さくら納品',
      },
      { serial: 'F9FZ1234ABCD', line: 3, name: 'ｱｲﾊﾟｯﾄ２', assetTag: '資産-002' },
    ]);
  });

  it('--encoding forces one: Shift_JIS bytes read as UTF-8 are refused with the line, never replaced', () => {
    const d = db();
    const bytes = sjis('serial,name\nDMPXK0ZZQ1GC,ok\nF9FZ1234ABCD,端末\n');
    const err = thrown(() => importPlanCsv(d, bytes, { name: 'x', encoding: 'utf-8', file: 'x.csv' }));
    expect(err.code).toBe('csv/encoding');
    expect(err.details).toMatchObject({ line: 3, encoding: 'utf-8', file: 'x.csv' });
    expect(listStoredPlans(d)).toEqual([]);
    expect(importPlanCsv(d, bytes, { name: 'x', encoding: 'shift_jis' })).toMatchObject({ encoding: 'shift_jis' });
  });

  it('mobiconnect/ABM format: header ignored, serial in column 1, the 12 unused columns ignored', () => {
    const d = db();
    const text = `端末,${UNUSED}\r\nL31QKYDE6CGF,${UNUSED}\r\nDMPXK0ZZQ1GC,,,,,,,,,,,,\r\n`;
    const r = importPlanCsv(d, utf8(text), { name: 'abm' });
    expect(r).toEqual({ name: 'abm', rows: 2, encoding: 'utf-8', format: 'mobiconnect' });
    expect(planRows(d, 'abm')).toEqual([
      { serial: 'L31QKYDE6CGF', line: 2 },
      { serial: 'DMPXK0ZZQ1GC', line: 3 },
    ]);
  });

  it("the seed's own sample (quoted header with blanks after commas) reads the serial from column 1", () => {
    const d = db();
    const header = `"シリアル番号(必須項目)", ${Array.from({ length: 12 }, () => '"[未使用]"').join(', ')}`;
    const row =
      'L31QKYDE6CGF,[未使用],[未使用],[未使用],[未使用],[未使用],[未使用],[未使用], [未使用],[未使用],[未使用],[未使用],[未使用]';
    const r = importPlanCsv(d, sjis(`${header}\r\n${row}\r\n`), { name: 'seed' });
    expect(r).toMatchObject({ rows: 1, encoding: 'shift_jis' });
    expect(planRows(d, 'seed')).toEqual([{ serial: 'L31QKYDE6CGF', line: 2 }]);
  });

  it('named columns are found by name in any order; unknown columns are ignored', () => {
    const d = db();
    importPlanCsv(d, utf8('Asset Tag,memo,Serial Number,Device Name\nA-9,x,DMPXK0ZZQ1GC,iPad-9\n'), { name: 'order' });
    expect(planRows(d, 'order')).toEqual([
      { serial: 'DMPXK0ZZQ1GC', line: 2, name: 'iPad-9', assetTag: 'A-9', notes: 'x' },
    ]);
    const dup = thrown(() => importPlanCsv(d, utf8('serial,シリアル番号\nDMPXK0ZZQ1GC,X\n'), { name: 'dup' }));
    expect(dup.code).toBe('csv/bad-header');
  });

  it('quoted fields with commas and newlines, CRLF, blank lines: line numbers stay physical', () => {
    const d = db();
    const text =
      'serial,name,notes\r\n' + // 1
      'DMPXK0ZZQ1GC,"iPad, 1","first\r\nsecond\r\nthird"\r\n' + // 2-4
      '\r\n' + // 5
      ',,\r\n' + // 6 (all blank: not a row)
      'F9FZ1234ABCD,"say ""hi""",\r\n' + // 7
      'bad!serial,x,\r\n'; // 8
    const bad = badRowsOf(() => importPlanCsv(d, utf8(text), { name: 'q' }));
    expect(bad.map((b) => [b.line, b.reason])).toEqual([[8, 'malformed-serial']]);
    const ok = importPlanCsv(d, utf8(text.replace('bad!serial', 'G0AB1234CDEF')), { name: 'q' });
    expect(ok.rows).toBe(3);
    expect(planRows(d, 'q')).toEqual([
      { serial: 'DMPXK0ZZQ1GC', line: 2, name: 'iPad, 1', notes: 'first\r\nsecond\r\nthird' },
      { serial: 'F9FZ1234ABCD', line: 7, name: 'say "hi"' },
      { serial: 'G0AB1234CDEF', line: 8, name: 'x' },
    ]);
  });

  it('an unclosed quote is csv/malformed with its line; an empty file or a header alone is csv/empty', () => {
    const d = db();
    const err = thrown(() => importPlanCsv(d, utf8('serial,name\nDMPXK0ZZQ1GC,"open\n'), { name: 'm' }));
    expect(err.code).toBe('csv/malformed');
    expect(typeof err.details?.line).toBe('number');
    expect(thrown(() => importPlanCsv(d, utf8(''), { name: 'e' })).code).toBe('csv/empty');
    expect(thrown(() => importPlanCsv(d, utf8('serial,name\r\n\r\n'), { name: 'e' })).code).toBe('csv/empty');
  });
});

describe('import: the 10,000-row limit', () => {
  it('exactly 10,000 rows are accepted', () => {
    const d = db();
    const text = `serial\n${serials(MAX_PLAN_ROWS).join('\n')}\n`;
    expect(importPlanCsv(d, utf8(text), { name: 'max' })).toMatchObject({ rows: 10_000 });
    expect(planRows(d, 'max')).toHaveLength(10_000);
  });

  it('10,001 rows are refused as a whole, with the count, nothing stored', () => {
    const d = db();
    const text = `serial,${UNUSED}\n${serials(MAX_PLAN_ROWS + 1)
      .map((s) => `${s},${UNUSED}`)
      .join('\n')}\n`;
    const err = thrown(() => importPlanCsv(d, utf8(text), { name: 'over' }));
    expect(err.code).toBe('csv/too-many-rows');
    expect(err.exitCode).toBe(2);
    expect(err.details).toMatchObject({ rows: 10_001, max: 10_000 });
    expect(err.message).toContain('10001');
    expect(listStoredPlans(d)).toEqual([]);
  });
});

describe('import: bad rows', () => {
  it('each class is reported with its line and reason; nothing of the file is stored', () => {
    const d = db();
    importPlanCsv(d, utf8('serial,name,asset_tag\nH0AB1234CDEF,iPad-A,A-1\nJ0AB1234CDEF,iPad-J,\n'), {
      name: 'existing',
    });
    const text =
      'serial,name,asset_tag,notes\n' + // 1
      'DMPXK0ZZQ1GC,ok,,\n' + // 2
      ',no serial,,\n' + // 3 empty serial
      'ABC-123,,,\n' + // 4 malformed
      'TOOLONGSERIAL1,,,\n' + // 5 malformed (14 characters)
      'dmpxk0zzq1gc,again,,\n' + // 6 duplicate of line 2 (case-insensitive)
      'H0AB1234CDEF,iPad-B,,\n' + // 7 conflict: another name in "existing" line 2
      'J0AB1234CDEF,iPad-J,A-2,other notes\n' + // 8 agrees where both have values: fine
      `K0AB1234CDEF,${'x'.repeat(256)},,\n`; // 9 name too long
    const bad = badRowsOf(() => importPlanCsv(d, utf8(text), { name: 'new', file: 'new.csv' }));
    expect(bad.map((b) => ({ line: b.line, reason: b.reason, field: b.field }))).toEqual([
      { line: 3, reason: 'empty-serial', field: 'serial' },
      { line: 4, reason: 'malformed-serial', field: 'serial' },
      { line: 5, reason: 'malformed-serial', field: 'serial' },
      { line: 6, reason: 'duplicate-in-file', field: 'serial' },
      { line: 7, reason: 'conflict-with-plan', field: 'name' },
      { line: 9, reason: 'too-long', field: 'name' },
    ]);
    const dup = bad.find((b) => b.reason === 'duplicate-in-file');
    expect(dup).toMatchObject({ otherLine: 2, serial: 'DMPXK0ZZQ1GC' });
    expect(dup?.message.en).toContain('line 2');
    expect(dup?.message.ja).toContain('2行目');
    expect(bad.find((b) => b.reason === 'conflict-with-plan')).toMatchObject({ otherPlan: 'existing', otherLine: 2 });
    expect(listStoredPlans(d).map((p) => p.name)).toEqual(['existing']);
    expect(planRows(d, 'new')).toEqual([]);
  });

  it('one bad row in 500 imports nothing, and a failed re-import keeps the old plan as it was', () => {
    const d = db();
    const good = serials(500, 'M');
    importPlanCsv(d, utf8(`serial\n${good.slice(0, 3).join('\n')}\n`), { name: 'cart' });
    const rows = [...good];
    rows[321] = 'NOT A SERIAL';
    const bad = badRowsOf(() => importPlanCsv(d, utf8(`serial\n${rows.join('\n')}\n`), { name: 'cart' }));
    expect(bad).toHaveLength(1);
    expect(bad[0]).toMatchObject({ line: 323, reason: 'malformed-serial', serial: 'NOT A SERIAL' });
    expect(planRows(d, 'cart').map((r) => r.serial)).toEqual(good.slice(0, 3));
  });

  it('re-importing a name replaces that plan; its own old rows never conflict', () => {
    const d = db();
    importPlanCsv(d, utf8('serial,name\nDMPXK0ZZQ1GC,old\nF9FZ1234ABCD,gone\n'), { name: 'cart' });
    importPlanCsv(d, utf8('serial,name\nDMPXK0ZZQ1GC,new\n'), { name: 'cart' });
    expect(planRows(d, 'cart')).toEqual([{ serial: 'DMPXK0ZZQ1GC', line: 2, name: 'new' }]);
    expect(listStoredPlans(d)).toHaveLength(1);
  });

  it('a serial in two agreeing plans: planFor merges them, newest plan first', () => {
    const d = db();
    let t = Date.parse('2026-04-01T00:00:00Z');
    const now = (): Date => new Date((t += 1000));
    importPlanCsv(d, utf8('serial,name,group\nDMPXK0ZZQ1GC,iPad-1,\n'), { name: 'names', now });
    importPlanCsv(d, utf8(`x,${UNUSED}\nDMPXK0ZZQ1GC,${UNUSED}\n`), { name: 'abm', now });
    importPlanCsv(d, utf8('serial,group,notes\nDMPXK0ZZQ1GC,1組,late\n'), { name: 'groups', now });
    expect(createPlanLookup(d)('DMPXK0ZZQ1GC')).toEqual({
      plan: 'groups',
      name: 'iPad-1',
      group: '1組',
      notes: 'late',
    });
  });
});

describe('export', () => {
  const seeded = (): Db => {
    const d = db();
    importPlanCsv(
      d,
      utf8(
        'serial,name,asset_tag,group,blueprint,notes\n' +
          'DMPXK0ZZQ1GC,"iPad, 1",A-1,3年1組,bp,"two\nlines"\n' +
          'F9FZ1234ABCD,iPad 2,,,,\n',
      ),
      { name: 'cart' },
    );
    return d;
  };
  const expected: PlanExportRow[] = [
    { serial: 'DMPXK0ZZQ1GC', name: 'iPad, 1', assetTag: 'A-1', group: '3年1組', blueprint: 'bp', notes: 'two\nlines' },
    { serial: 'F9FZ1234ABCD', name: 'iPad 2' },
  ];

  it('mobiconnect upload format: header + serial + 12 empty columns, UTF-8 with BOM', () => {
    const bytes = exportPlans(seeded(), { format: 'mobiconnect' });
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const lines = bytes.subarray(3).toString('utf8').split('\r\n');
    expect(lines[0]?.split(',')).toHaveLength(13);
    expect(lines[0]?.startsWith('シリアル番号')).toBe(true);
    expect(lines.slice(1)).toEqual([`DMPXK0ZZQ1GC${','.repeat(12)}`, `F9FZ1234ABCD${','.repeat(12)}`, '']);
    const d2 = db();
    importPlanCsv(d2, bytes, { name: 'again' });
    expect(planRows(d2, 'again').map((r) => r.serial)).toEqual(['DMPXK0ZZQ1GC', 'F9FZ1234ABCD']);
  });

  it.each([
    ['en', 'utf-8'],
    ['ja', 'utf-8'],
    ['en', 'shift_jis'],
    ['ja', 'shift_jis'],
  ] as const)('CSV (%s headers, %s) and JSON round trip', (lang, encoding) => {
    const d = seeded();
    const bytes = exportPlans(d, { format: 'csv', lang, encoding });
    const header = encoding === 'utf-8' ? bytes.subarray(3).toString('utf8') : iconv.decode(bytes, 'cp932');
    expect(header.split('\r\n')[0]).toBe(
      lang === 'ja'
        ? 'シリアル番号,端末名,資産管理番号,グループ,ブループリント,備考'
        : 'serial,name,asset_tag,group,blueprint,notes',
    );
    const d2 = db();
    expect(importPlanCsv(d2, bytes, { name: 'back' })).toMatchObject({ rows: 2, encoding, format: 'named' });
    expect(JSON.parse(exportPlans(d2, { format: 'json' }).toString('utf8'))).toEqual(expected);
    expect(JSON.parse(exportPlans(d, { format: 'json', name: 'cart' }).toString('utf8'))).toEqual(expected);
  });

  it('Shift_JIS export of a character outside Shift_JIS is a clear error naming the row, not "?"', () => {
    const d = db();
    importPlanCsv(d, utf8('serial,name\nDMPXK0ZZQ1GC,ok\nF9FZ1234ABCD,iPad 😀\n'), { name: 'emoji' });
    const err = thrown(() => exportPlans(d, { format: 'csv', encoding: 'shift_jis' }));
    expect(err.code).toBe('csv/unrepresentable');
    expect(err.details).toMatchObject({ line: 3, key: 'F9FZ1234ABCD', character: '😀', codePoint: 'U+1F600' });
    expect(err.message).toContain('F9FZ1234ABCD');
    expect(exportPlans(d, { format: 'csv', encoding: 'utf-8' }).toString('utf8')).toContain('😀');
  });

  it('an unknown plan name is plan/not-found (exit 3)', () => {
    const err = thrown(() => exportPlans(db(), { name: 'nope' }));
    expect(err.code).toBe('plan/not-found');
    expect(err.exitCode).toBe(3);
  });
});

describe('property: any valid rows, in either format and any encoding, import back equal', () => {
  const chars = [...'aB1-_ アイ端末名資産一組ｱｲ髙①,"\n'];
  const cell = (max: number): fc.Arbitrary<string | undefined> =>
    fc.option(
      fc
        .array(fc.constantFrom(...chars), { minLength: 1, maxLength: max })
        .map((a) => a.join(''))
        .filter((s) => s.trim() === s && s !== ''),
      { nil: undefined },
    );
  const row = fc.record({
    serial: fc.stringMatching(/^[A-Z0-9]{10,12}$/),
    name: cell(20),
    assetTag: cell(10),
    group: cell(10),
    blueprint: cell(10),
    notes: cell(30),
  });
  const q = (v: string): string => (/[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v);

  it('round trips', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(row, { minLength: 1, maxLength: 30, selector: (r) => r.serial }),
        fc.constantFrom('named-en', 'named-ja', 'mobiconnect'),
        fc.constantFrom('utf-8', 'utf-8-bom', 'shift_jis'),
        fc.constantFrom('\n', '\r\n'),
        (rows, format, encoding, eol) => {
          const header =
            format === 'named-en'
              ? 'serial,name,asset_tag,group,blueprint,notes'
              : format === 'named-ja'
                ? 'シリアル番号,端末名,資産管理番号,グループ,ブループリント,備考'
                : `端末,${UNUSED}`;
          const lines = rows.map((r) =>
            format === 'mobiconnect'
              ? `${r.serial.toLowerCase()},${UNUSED}`
              : [r.serial, r.name, r.assetTag, r.group, r.blueprint, r.notes].map((v) => q(v ?? '')).join(','),
          );
          const text = [header, ...lines].join(eol) + eol;
          const bytes = encoding === 'shift_jis' ? sjis(text) : encoding === 'utf-8-bom' ? bom(text) : utf8(text);
          const d = openDatabase(':memory:');
          try {
            const r = importPlanCsv(d, bytes, { name: 'p' });
            expect(r.rows).toBe(rows.length);
            expect(r.format).toBe(format === 'mobiconnect' ? 'mobiconnect' : 'named');
            const want = rows.map((x) =>
              format === 'mobiconnect'
                ? { serial: x.serial }
                : Object.fromEntries(Object.entries(x).filter(([, v]) => v !== undefined)),
            );
            expect(JSON.parse(exportPlans(d, { format: 'json' }).toString('utf8'))).toEqual(want);
          } finally {
            d.close();
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
