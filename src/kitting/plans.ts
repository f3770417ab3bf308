/**
 * Serial plans (domain.md "Serial plans (CSV)"): which serial gets which device name, asset tag,
 * group, blueprint and notes. Imported from CSV, exported as CSV (named columns), in mobiconnect's
 * DEP upload format, or as JSON; read by the runner through {@link createPlanLookup}.
 *
 * ## Import rules
 *
 * - **Encoding** (`auto` by default): a UTF-8 BOM means UTF-8; else bytes that are valid UTF-8 are
 *   UTF-8 (pure ASCII included); else Shift_JIS, read as Windows code page 932 (the superset Excel
 *   writes: ①, ㈱, 髙 …). `--encoding utf-8|shift_jis` forces one; bytes that are not valid in it
 *   are refused (`csv/encoding`) with the line of the first bad character, never replaced.
 * - **Format**: the first record is always a header. When one of its cells is a known serial column
 *   name (`serial`, `serial number`, `シリアル番号`, `シリアル番号(必須項目)` …; compared after NFKC,
 *   lower-casing, dropping spaces/`_`/`-` and a parenthesised suffix) the file is **named-column**:
 *   columns are found by name (`name`/端末名, `asset_tag`/資産管理番号, `group`/グループ,
 *   `blueprint`/ブループリント, `notes`/備考, with the variants in {@link HEADER_ALIASES}); unknown
 *   columns are ignored; a known column named twice is `csv/bad-header`. Otherwise the file is in
 *   **mobiconnect/ABM** format: the header is ignored and the serial is column 1 (the 12 unused
 *   columns after it, or any number of them, are ignored) — an ASM/ABM export uploads as it is.
 * - **Rows**: a record whose cells are all blank (an empty line, or `,,,,` that Excel leaves) is not
 *   a row. At most {@link MAX_PLAN_ROWS} rows: more is refused as a whole (`csv/too-many-rows`, with
 *   the count) before any row is checked. Cells are trimmed.
 * - **Serials**: Apple serial numbers are 10–12 letters and digits (10 for the randomized serials
 *   of 2021 on, 11–12 before). Lowercase is accepted and normalised to uppercase; anything else
 *   (spaces inside, punctuation, other lengths) is `malformed-serial`.
 * - **Bad rows**, each with its physical line (1-based, the header is line 1, a quoted field that
 *   spans lines counts all of them): `empty-serial`, `malformed-serial`, `too-long` (a column over
 *   its limit), `duplicate-in-file` (names both lines), `conflict-with-plan`. One bad row → nothing
 *   is stored and every bad row is reported ({@link PlanRowsError}, `csv/invalid-rows`).
 * - **Conflict rule**: a serial may appear in several plans as long as they agree. A row conflicts
 *   when another stored plan (not the one being replaced) has the same serial with a *different
 *   non-empty value* in `name`, `asset_tag`, `group` or `blueprint`. An empty cell has no opinion
 *   (so an ABM serial list can be imported next to a plan that names the same devices); `notes`
 *   are free text and never conflict. {@link createPlanLookup} merges a serial's rows newest plan
 *   first, which is unambiguous exactly because of this rule.
 * - Plans are named (`--name`, default the file's base name without extension); importing a name
 *   again replaces that plan in one transaction.
 *
 * ## Export
 *
 * UTF-8 with BOM (so Excel reads it) or Shift_JIS (CP932); a character Shift_JIS cannot hold is
 * refused (`csv/unrepresentable`, naming the line, serial, field and character), never written as
 * `?`. The few characters whose Mac and Windows Japanese encodings differ (〜 − ‖ — ¢ £ ¬) are
 * written as their Windows forms (～ － ∥ ― ￠ ￡ ￢), as every Japanese Windows program reads them.
 * Lines end with CRLF. JSON is always UTF-8 without BOM.
 */
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import iconv from 'iconv-lite';
import { z } from 'zod';
import { KitError } from '../errors.ts';
import type { Lang } from '../i18n/messages.ts';
import type { Db } from '../store/db.ts';
import {
  allPlanRows,
  listPlans,
  planExists,
  planRows,
  replacePlan,
  rowsForSerial,
  rowsInOtherPlans,
  type PlanEncoding,
  type PlanFormat,
  type PlanRowRecord,
  type PlanSummaryRecord,
} from '../store/plans.ts';
import type { PlanEntry } from './steps.ts';

export type { PlanEncoding, PlanFormat, PlanRowRecord, PlanSummaryRecord } from '../store/plans.ts';

/** At most this many data rows per file (mobiconnect's limit per upload). */
export const MAX_PLAN_ROWS = 10_000;
/** An Apple serial number after normalisation: 10–12 uppercase letters and digits. */
export const SERIAL_RE = /^[A-Z0-9]{10,12}$/;
/** Longest plan name. */
export const MAX_PLAN_NAME = 128;
/** The 12 unused columns after the serial in mobiconnect's upload format (seed). */
export const MOBICONNECT_UNUSED_COLUMNS = 12;

/** `--encoding` for import. */
export type EncodingChoice = 'auto' | PlanEncoding;

/** The optional columns, in export order. */
export const PLAN_FIELDS = ['name', 'assetTag', 'group', 'blueprint', 'notes'] as const;
/** One optional column. */
export type PlanField = (typeof PLAN_FIELDS)[number];
/** A column of the named format. */
export type PlanColumn = 'serial' | PlanField;

/** Header names accepted per column (compared with {@link normalizeHeader}). */
export const HEADER_ALIASES: Readonly<Record<PlanColumn, readonly string[]>> = {
  serial: [
    'serial',
    'serialnumber',
    'serialno',
    'シリアル番号',
    'シリアル',
    'シリアルno',
    'シリアルナンバー',
    '製造番号',
  ],
  name: ['name', 'devicename', '端末名', 'デバイス名', '名前'],
  assetTag: ['assettag', '資産管理番号', '資産番号', '管理番号'],
  group: ['group', 'groupname', 'グループ', '端末登録先グループ', '登録先グループ', 'グループ名'],
  blueprint: ['blueprint', 'ブループリント'],
  notes: ['notes', 'note', 'memo', 'comment', '備考', 'メモ'],
};

/** Column headers of the named-format export, by language (both are read back on import). */
export const EXPORT_HEADERS: Readonly<Record<Lang, Readonly<Record<PlanColumn, string>>>> = {
  en: { serial: 'serial', name: 'name', assetTag: 'asset_tag', group: 'group', blueprint: 'blueprint', notes: 'notes' },
  ja: {
    serial: 'シリアル番号',
    name: '端末名',
    assetTag: '資産管理番号',
    group: 'グループ',
    blueprint: 'ブループリント',
    notes: '備考',
  },
};

/** The header row of mobiconnect's upload format, as the seed shows it. */
export const MOBICONNECT_HEADER: readonly string[] = [
  'シリアル番号(必須項目)',
  ...Array.from({ length: MOBICONNECT_UNUSED_COLUMNS }, () => '[未使用]'),
];

/** Maximum length of each optional column (characters). */
export const FIELD_MAX: Readonly<Record<PlanField, number>> = {
  name: 255,
  assetTag: 128,
  group: 256,
  blueprint: 128,
  notes: 1024,
};

// ---------------------------------------------------------------------------------------------
// Bad rows

/** Why a row was refused. */
export type BadRowReason =
  'empty-serial' | 'malformed-serial' | 'too-long' | 'duplicate-in-file' | 'conflict-with-plan';

/** One refused row of an import. */
export interface BadRow {
  /** Physical line in the file (1-based; the header is line 1). */
  readonly line: number;
  readonly reason: BadRowReason;
  /** The column concerned (`serial`, `name` …). */
  readonly field: PlanColumn;
  /** The serial as written (normalised when it was valid). */
  readonly serial: string;
  /** `duplicate-in-file`: the line of the first occurrence; `conflict-with-plan`: the line in the other plan. */
  readonly otherLine?: number;
  /** `conflict-with-plan`: the plan that has the serial with another value. */
  readonly otherPlan?: string;
  readonly message: Readonly<Record<Lang, string>>;
}

/** `csv/invalid-rows`: the import stored nothing; {@link badRows} lists every refused row. */
export class PlanRowsError extends KitError {
  readonly badRows: readonly BadRow[];

  constructor(file: string, badRows: readonly BadRow[]) {
    const first = badRows[0];
    super(
      'csv/invalid-rows',
      `${file}: ${badRows.length} invalid row(s), nothing imported${first === undefined ? '' : `; line ${first.line}: ${first.message.en}`}`,
      { details: { file, badRows: badRows.length, firstLine: first?.line ?? null } },
    );
    this.badRows = badRows;
  }
}

const LABELS: Readonly<Record<PlanColumn, Readonly<Record<Lang, string>>>> = {
  serial: { ja: 'シリアル番号', en: 'serial' },
  name: { ja: '端末名', en: 'name' },
  assetTag: { ja: '資産管理番号', en: 'asset_tag' },
  group: { ja: 'グループ', en: 'group' },
  blueprint: { ja: 'ブループリント', en: 'blueprint' },
  notes: { ja: '備考', en: 'notes' },
};

function badRowMessage(
  reason: BadRowReason,
  p: { serial: string; field: PlanColumn; otherLine?: number; otherPlan?: string; max?: number },
): Readonly<Record<Lang, string>> {
  const f = LABELS[p.field];
  switch (reason) {
    case 'empty-serial':
      return { ja: 'シリアル番号が空です', en: 'the serial number is empty' };
    case 'malformed-serial':
      return {
        ja: `シリアル番号「${p.serial}」の形式が正しくありません（英数字10〜12文字）`,
        en: `serial number "${p.serial}" is malformed (10–12 letters and digits)`,
      };
    case 'too-long':
      return {
        ja: `${f.ja}が長すぎます（最大${p.max ?? 0}文字）`,
        en: `${f.en} is too long (at most ${p.max ?? 0} characters)`,
      };
    case 'duplicate-in-file':
      return {
        ja: `シリアル番号 ${p.serial} が${p.otherLine ?? 0}行目と重複しています`,
        en: `serial ${p.serial} duplicates line ${p.otherLine ?? 0}`,
      };
    case 'conflict-with-plan':
      return {
        ja: `シリアル番号 ${p.serial} は端末リスト「${p.otherPlan ?? ''}」（${p.otherLine ?? 0}行目）で別の${f.ja}が指定されています`,
        en: `serial ${p.serial} has another ${f.en} in plan "${p.otherPlan ?? ''}" (line ${p.otherLine ?? 0})`,
      };
  }
}

function badRow(
  line: number,
  reason: BadRowReason,
  p: { serial: string; field: PlanColumn; otherLine?: number; otherPlan?: string; max?: number },
): BadRow {
  return {
    line,
    reason,
    field: p.field,
    serial: p.serial,
    ...(p.otherLine === undefined ? {} : { otherLine: p.otherLine }),
    ...(p.otherPlan === undefined ? {} : { otherPlan: p.otherPlan }),
    message: badRowMessage(reason, p),
  };
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** Decoded text of a CSV file. */
export interface DecodedCsv {
  /** The text as UTF-8 bytes, BOM removed (csv-parse reports byte offsets into these). */
  readonly bytes: Buffer;
  readonly encoding: PlanEncoding;
}

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

function lineOfIndex(text: string, index: number): number {
  return text.slice(0, index).split(/\r\n|\r|\n/).length;
}

function refuseReplacement(text: string, file: string, encoding: PlanEncoding): void {
  const at = text.indexOf('\uFFFD');
  if (at >= 0) {
    const line = lineOfIndex(text, at);
    throw new KitError(
      'csv/encoding',
      `${file}: line ${line} is not valid ${encoding === 'utf-8' ? 'UTF-8' : 'Shift_JIS'}`,
      {
        details: { file, line, encoding },
      },
    );
  }
}

/**
 * Decodes a CSV file's bytes (see the module comment for the rules).
 * @throws KitError `csv/encoding` (details `file`, `line`, `encoding`) when the bytes are not valid
 *   in the forced encoding, or (auto) neither UTF-8 nor Shift_JIS.
 */
export function decodeCsv(raw: Uint8Array, choice: EncodingChoice = 'auto', file = 'CSV'): DecodedCsv {
  const buf = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const hasBom = buf.subarray(0, 3).equals(UTF8_BOM);
  if (choice !== 'shift_jis') {
    const body = hasBom ? buf.subarray(3) : buf;
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(body);
      return { bytes: Buffer.from(body), encoding: 'utf-8' };
    } catch {
      if (choice === 'utf-8') refuseReplacement(new TextDecoder('utf-8').decode(body), file, 'utf-8');
    }
  }
  const text = iconv.decode(buf, 'cp932');
  refuseReplacement(text, file, 'shift_jis');
  return { bytes: Buffer.from(text, 'utf8'), encoding: 'shift_jis' };
}

// ---------------------------------------------------------------------------------------------
// Parsing

/** One CSV record with the physical line it starts on. */
export interface CsvRecord {
  readonly cells: readonly string[];
  readonly line: number;
}

function lineStarts(bytes: Buffer): number[] {
  const starts = [0];
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x0a) starts.push(i + 1);
    else if (b === 0x0d && bytes[i + 1] !== 0x0a) starts.push(i + 1);
  }
  return starts;
}

function lineAt(starts: readonly number[], offset: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((starts[mid] ?? 0) <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo + 1;
}

const csvInfoSchema = z.object({ record: z.array(z.string()), info: z.object({ bytes: z.number() }) });

/**
 * Splits decoded CSV into records (csv-parse: RFC 4180 quotes, CRLF/LF/CR, quoted fields with
 * commas and newlines, blanks around quotes tolerated as in the seed's sample header), each with
 * the physical line where it starts. Blank records are kept (the caller decides).
 * @throws KitError `csv/malformed` (details `file`, `line`) for an unclosed quote and the like.
 */
export function parseCsvRecords(bytes: Buffer, file = 'CSV'): CsvRecord[] {
  let parsed: unknown;
  try {
    parsed = parse(bytes, { info: true, relax_column_count: true, trim: true, skip_empty_lines: false });
  } catch (err) {
    const lines = (err as { lines?: unknown }).lines;
    const line = typeof lines === 'number' ? lines : 0;
    throw new KitError('csv/malformed', `${file}: line ${line}: ${(err as Error).message}`, {
      cause: err,
      details: { file, line },
    });
  }
  const records = z.array(csvInfoSchema).parse(parsed);
  const starts = lineStarts(bytes);
  let offset = 0;
  return records.map((r) => {
    const rec = { cells: r.record, line: lineAt(starts, offset) };
    offset = r.info.bytes;
    return rec;
  });
}

/** Normalises a header cell for comparison: NFKC, lowercase, no spaces/`_`/`-`, no `(…)` suffix. */
export function normalizeHeader(cell: string): string {
  return cell
    .normalize('NFKC')
    .toLowerCase()
    .replace(/\([^)]*\)\s*$/u, '')
    .replace(/[\s_\-・.]/gu, '');
}

const ALIAS_INDEX: ReadonlyMap<string, PlanColumn> = new Map(
  (Object.entries(HEADER_ALIASES) as [PlanColumn, readonly string[]][]).flatMap(([col, names]) =>
    names.map((n) => [normalizeHeader(n), col] as const),
  ),
);

/** Where each column is, by format. */
export type ColumnMap = Readonly<Partial<Record<PlanColumn, number>>>;

/**
 * Decides the format from the header record (see the module comment) and where each column is.
 * @throws KitError `csv/bad-header` when a known column is named twice.
 */
export function detectFormat(header: readonly string[], file = 'CSV'): { format: PlanFormat; columns: ColumnMap } {
  const columns: Partial<Record<PlanColumn, number>> = {};
  header.forEach((cell, i) => {
    const col = ALIAS_INDEX.get(normalizeHeader(cell));
    if (col === undefined) return;
    if (columns[col] !== undefined) {
      throw new KitError(
        'csv/bad-header',
        `${file}: the header names the ${col} column twice (columns ${(columns[col] ?? 0) + 1} and ${i + 1})`,
        {
          details: { file, line: 1, column: col },
        },
      );
    }
    columns[col] = i;
  });
  if (columns.serial !== undefined) return { format: 'named', columns };
  return { format: 'mobiconnect', columns: { serial: 0 } };
}

// ---------------------------------------------------------------------------------------------
// Row validation (zod at the boundary)

const optCell = (max: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
    z.string().trim().max(max).optional(),
  );

/** One data row as read from the file, before the cross-row checks. */
export const planRowSchema = z.strictObject({
  serial: z.string().trim().min(1).toUpperCase().regex(SERIAL_RE),
  name: optCell(FIELD_MAX.name),
  assetTag: optCell(FIELD_MAX.assetTag),
  group: optCell(FIELD_MAX.group),
  blueprint: optCell(FIELD_MAX.blueprint),
  notes: optCell(FIELD_MAX.notes),
});

function cellsToInput(cells: readonly string[], columns: ColumnMap): Record<PlanColumn, string> {
  const at = (col: PlanColumn): string => {
    const i = columns[col];
    return i === undefined ? '' : (cells[i] ?? '');
  };
  return {
    serial: at('serial'),
    name: at('name'),
    assetTag: at('assetTag'),
    group: at('group'),
    blueprint: at('blueprint'),
    notes: at('notes'),
  };
}

function toRecord(line: number, data: z.output<typeof planRowSchema>): PlanRowRecord {
  const out: { -readonly [K in keyof PlanRowRecord]: PlanRowRecord[K] } = { serial: data.serial, line };
  for (const f of PLAN_FIELDS) {
    const v = data[f];
    if (v !== undefined) out[f] = v;
  }
  return out;
}

/** What a CSV file holds once read and checked (nothing stored yet). */
export interface ReadPlan {
  readonly format: PlanFormat;
  readonly encoding: PlanEncoding;
  readonly rows: readonly PlanRowRecord[];
}

/** Options of {@link readPlanCsv} and {@link importPlanCsv}. */
export interface PlanImportOptions {
  /** Plan name (default: the file's base name without extension). */
  readonly name?: string;
  readonly encoding?: EncodingChoice;
  /** The file path, for messages and the default name. */
  readonly file?: string;
  /** Clock for `importedAt` (tests). */
  readonly now?: () => Date;
}

/** The plan name to use: `--name`, else the file's base name. @throws `usage/invalid-argument`. */
export function planNameFor(options: PlanImportOptions): string {
  const raw = options.name ?? (options.file === undefined ? '' : path.parse(options.file).name);
  const name = raw.trim();
  if (name === '' || name.length > MAX_PLAN_NAME) {
    throw new KitError('usage/invalid-argument', `plan name must be 1–${MAX_PLAN_NAME} characters (--name)`);
  }
  return name;
}

function checkOneRow(cells: readonly string[], line: number, columns: ColumnMap): PlanRowRecord | BadRow {
  const input = cellsToInput(cells, columns);
  const r = planRowSchema.safeParse(input);
  if (r.success) return toRecord(line, r.data);
  const serial = input.serial.trim();
  const serialIssue = r.error.issues.find((i) => i.path[0] === 'serial');
  if (serialIssue !== undefined) {
    return serial === ''
      ? badRow(line, 'empty-serial', { serial, field: 'serial' })
      : badRow(line, 'malformed-serial', { serial, field: 'serial' });
  }
  const first = r.error.issues[0];
  const field = (PLAN_FIELDS as readonly string[]).includes(String(first?.path[0]))
    ? (String(first?.path[0]) as PlanField)
    : 'notes';
  return badRow(line, 'too-long', { serial: serial.toUpperCase(), field, max: FIELD_MAX[field] });
}

const CONFLICT_FIELDS: readonly PlanField[] = ['name', 'assetTag', 'group', 'blueprint'];

/**
 * Reads and checks a CSV file against the store (conflicts), storing nothing.
 * @throws KitError `csv/encoding`, `csv/malformed`, `csv/bad-header`, `csv/empty`,
 *   `csv/too-many-rows` (details `rows`, `max`), {@link PlanRowsError} (`csv/invalid-rows`),
 *   `usage/invalid-argument` (plan name).
 */
export function readPlanCsv(db: Db, raw: Uint8Array, options: PlanImportOptions = {}): ReadPlan & { name: string } {
  const file = options.file ?? 'CSV';
  const name = planNameFor(options);
  const decoded = decodeCsv(raw, options.encoding ?? 'auto', file);
  const records = parseCsvRecords(decoded.bytes, file);
  const header = records[0];
  if (header === undefined)
    throw new KitError('csv/empty', `${file}: the file is empty`, { details: { file, rows: 0 } });
  const { format, columns } = detectFormat(header.cells, file);
  const data = records.slice(1).filter((r) => r.cells.some((c) => c.trim() !== ''));
  if (data.length === 0) {
    throw new KitError('csv/empty', `${file}: no data rows after the header`, { details: { file, rows: 0 } });
  }
  if (data.length > MAX_PLAN_ROWS) {
    throw new KitError(
      'csv/too-many-rows',
      `${file}: ${data.length} rows; at most ${MAX_PLAN_ROWS} rows can be imported at once`,
      { details: { file, rows: data.length, max: MAX_PLAN_ROWS } },
    );
  }
  const bad: BadRow[] = [];
  const good: PlanRowRecord[] = [];
  const firstLine = new Map<string, number>();
  for (const rec of data) {
    const r = checkOneRow(rec.cells, rec.line, columns);
    if ('reason' in r) {
      bad.push(r);
      continue;
    }
    const earlier = firstLine.get(r.serial);
    if (earlier !== undefined) {
      bad.push(badRow(rec.line, 'duplicate-in-file', { serial: r.serial, field: 'serial', otherLine: earlier }));
      continue;
    }
    firstLine.set(r.serial, rec.line);
    good.push(r);
  }
  const others = rowsInOtherPlans(
    db,
    good.map((r) => r.serial),
    name,
  );
  if (others.length > 0) {
    const bySerial = new Map<string, typeof others>();
    for (const o of others) bySerial.set(o.serial, [...(bySerial.get(o.serial) ?? []), o]);
    for (const r of good) {
      for (const o of bySerial.get(r.serial) ?? []) {
        const field = CONFLICT_FIELDS.find((f) => r[f] !== undefined && o[f] !== undefined && r[f] !== o[f]);
        if (field !== undefined) {
          bad.push(
            badRow(r.line, 'conflict-with-plan', { serial: r.serial, field, otherLine: o.line, otherPlan: o.planName }),
          );
          break;
        }
      }
    }
  }
  if (bad.length > 0)
    throw new PlanRowsError(
      file,
      bad.sort((a, b) => a.line - b.line),
    );
  return { name, format, encoding: decoded.encoding, rows: good };
}

/** What an import stored (cli.md: `{name, rows, encoding}`, plus the detected format). */
export interface PlanImportResult {
  readonly name: string;
  readonly rows: number;
  readonly encoding: PlanEncoding;
  readonly format: PlanFormat;
}

/**
 * Reads, checks and stores a CSV plan, all or nothing; an existing plan of the same name is
 * replaced in one transaction. Errors as {@link readPlanCsv}, plus `store/*`.
 */
export function importPlanCsv(db: Db, raw: Uint8Array, options: PlanImportOptions = {}): PlanImportResult {
  const plan = readPlanCsv(db, raw, options);
  const importedAt = (options.now ?? (() => new Date()))().toISOString();
  replacePlan(
    db,
    {
      name: plan.name,
      format: plan.format,
      encoding: plan.encoding,
      source: options.file === undefined ? null : path.basename(options.file),
      importedAt,
    },
    plan.rows,
  );
  return { name: plan.name, rows: plan.rows.length, encoding: plan.encoding, format: plan.format };
}

/** Every stored plan with its row count, oldest first. */
export function listStoredPlans(db: Db): PlanSummaryRecord[] {
  return listPlans(db);
}

// ---------------------------------------------------------------------------------------------
// Lookup for the runner

/** A plan row as the runner sees it: {@link PlanEntry} plus the blueprint and notes, and the plan's name. */
export interface PlanLookupRow extends PlanEntry {
  readonly blueprint?: string;
  readonly notes?: string;
  /** The newest plan that lists the serial. */
  readonly plan: string;
}

function mergeRows(rows: readonly (PlanRowRecord & { planName: string })[]): PlanLookupRow | null {
  const first = rows[0];
  if (first === undefined) return null;
  const out: { -readonly [K in keyof PlanLookupRow]: PlanLookupRow[K] } = { plan: first.planName };
  for (const f of PLAN_FIELDS) {
    const v = rows.find((r) => r[f] !== undefined)?.[f];
    if (v !== undefined) out[f] = v;
  }
  return out;
}

/**
 * A store-backed `planFor(serial)` for `createRunner({ planFor })`: the serial's values from every
 * plan that lists it, newest plan first for each field (plans cannot disagree on a non-empty value,
 * see the conflict rule). Null when no plan lists the serial. Lowercase serials are normalised.
 */
export function createPlanLookup(db: Db): (serial: string) => PlanLookupRow | null {
  return (serial) => mergeRows(rowsForSerial(db, serial.trim().toUpperCase()));
}

// ---------------------------------------------------------------------------------------------
// Export

/** `plan export --format`. */
export type PlanExportFormat = 'mobiconnect' | 'csv' | 'json';

/** Options of {@link exportPlans}. */
export interface PlanExportOptions {
  /** One plan; default every plan (each serial once, merged as {@link createPlanLookup} does). */
  readonly name?: string;
  readonly format?: PlanExportFormat;
  /** CSV encoding (ignored for JSON, always UTF-8). Default `utf-8` (with BOM). */
  readonly encoding?: PlanEncoding;
  /** Header language of the named-column CSV. */
  readonly lang?: Lang;
}

/** One exported row (JSON form). */
export interface PlanExportRow {
  readonly serial: string;
  readonly name?: string;
  readonly assetTag?: string;
  readonly group?: string;
  readonly blueprint?: string;
  readonly notes?: string;
}

function rowsToExport(db: Db, name: string | undefined): PlanExportRow[] {
  if (name !== undefined) {
    if (!planExists(db, name)) {
      throw new KitError('plan/not-found', `no plan named ${name}`, { details: { plan: name } });
    }
    return planRows(db, name).map(({ line: _line, ...r }) => r);
  }
  const all = allPlanRows(db);
  const order: string[] = [];
  const bySerial = new Map<string, typeof all>();
  for (const r of all) {
    const list = bySerial.get(r.serial);
    if (list === undefined) {
      order.push(r.serial);
      bySerial.set(r.serial, [r]);
    } else list.unshift(r);
  }
  return order.flatMap((serial) => {
    const merged = mergeRows(bySerial.get(serial) ?? []);
    if (merged === null) return [];
    const { plan: _plan, ...rest } = merged;
    return [{ serial, ...rest }];
  });
}

/**
 * One CSV field. csv-parse has no writer and csv-stringify is not a dependency; RFC 4180 quoting is
 * four lines: quote when the field holds a comma, quote, CR or LF, doubling the quotes.
 */
function csvField(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
}

function csvLine(cells: readonly string[]): string {
  return `${cells.map(csvField).join(',')}\r\n`;
}

/** Characters whose Mac (JIS X 0208) and Windows (CP932) encodings differ → the CP932 form. */
const CP932_FORMS: Readonly<Record<string, string>> = {
  '\u301C': '\uFF5E', // 〜 WAVE DASH → ～
  '\u2212': '\uFF0D', // − MINUS SIGN → －
  '\u2016': '\u2225', // ‖ DOUBLE VERTICAL LINE → ∥
  '\u2014': '\u2015', // — EM DASH → ―
  '\u00A2': '\uFFE0', // ¢ → ￠
  '\u00A3': '\uFFE1', // £ → ￡
  '\u00AC': '\uFFE2', // ¬ → ￢
};

/** The text with the Mac-only forms replaced by their CP932 equivalents. */
export function toCp932Forms(text: string): string {
  return text.replace(/[\u301C\u2212\u2016\u2014\u00A2\u00A3\u00AC]/gu, (c) => CP932_FORMS[c] ?? c);
}

/** The first character of `text` that CP932 cannot hold, or undefined. */
export function unrepresentableInShiftJis(text: string): string | undefined {
  for (const ch of text) {
    if (ch.charCodeAt(0) < 0x80) continue;
    // iconv-lite writes '?' (0x3F) for a character it cannot encode; no CP932 double-byte
    // character contains 0x3F, so a 0x3F byte means "not representable".
    if (iconv.encode(ch, 'cp932').includes(0x3f)) return ch;
  }
  return undefined;
}

/** Encodes CSV lines (one string per line; index 0 is the header). @throws `csv/unrepresentable`. */
export function encodeCsv(lines: readonly string[], encoding: PlanEncoding, keys: readonly string[] = []): Buffer {
  if (encoding === 'utf-8') return Buffer.concat([UTF8_BOM, Buffer.from(lines.join(''), 'utf8')]);
  const parts: Buffer[] = [];
  lines.forEach((raw, i) => {
    const line = toCp932Forms(raw);
    const bad = unrepresentableInShiftJis(line);
    if (bad !== undefined) {
      const code = `U+${(bad.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
      const key = keys[i];
      throw new KitError(
        'csv/unrepresentable',
        `line ${i + 1}${key === undefined || key === '' ? '' : ` (${key})`}: "${bad}" (${code}) cannot be written in Shift_JIS`,
        { details: { line: i + 1, key: key ?? null, character: bad, codePoint: code } },
      );
    }
    parts.push(iconv.encode(line, 'cp932'));
  });
  return Buffer.concat(parts);
}

/**
 * A plan (or every plan) as file bytes in the chosen format and encoding (see the module comment).
 * @throws KitError `plan/not-found`, `csv/unrepresentable` (Shift_JIS; details `line`, `key` (the
 *   serial), `character`), `csv/too-many-rows` (mobiconnect format over 10,000 serials: split with
 *   `--name`).
 */
export function exportPlans(db: Db, options: PlanExportOptions = {}): Buffer {
  const rows = rowsToExport(db, options.name);
  const format = options.format ?? 'csv';
  if (format === 'json') return Buffer.from(`${JSON.stringify(rows, null, 2)}\n`, 'utf8');
  const encoding = options.encoding ?? 'utf-8';
  if (format === 'mobiconnect') {
    if (rows.length > MAX_PLAN_ROWS) {
      throw new KitError(
        'csv/too-many-rows',
        `${rows.length} serials; mobiconnect takes at most ${MAX_PLAN_ROWS} per upload (export one plan with --name)`,
        { details: { rows: rows.length, max: MAX_PLAN_ROWS } },
      );
    }
    const empty = Array.from({ length: MOBICONNECT_UNUSED_COLUMNS }, () => '');
    const lines = [csvLine(MOBICONNECT_HEADER), ...rows.map((r) => csvLine([r.serial, ...empty]))];
    return encodeCsv(lines, encoding, ['', ...rows.map((r) => r.serial)]);
  }
  const h = EXPORT_HEADERS[options.lang ?? 'en'];
  const header = csvLine([h.serial, h.name, h.assetTag, h.group, h.blueprint, h.notes]);
  const lines = [header, ...rows.map((r) => csvLine([r.serial, ...PLAN_FIELDS.map((f) => r[f] ?? '')]))];
  return encodeCsv(lines, encoding, ['', ...rows.map((r) => r.serial)]);
}
