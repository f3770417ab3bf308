/**
 * `kitting plan import|list|export` (cli.md): serial plans from CSV (rules in
 * `src/kitting/plans.ts`).
 *
 * - `plan import FILE.csv [--encoding auto|utf-8|shift_jis] [--name N]` → JSON `{name, rows,
 *   encoding}`. Invalid rows: nothing is stored, every bad row is printed with its line (stderr; in
 *   `--json` mode also `{"error": {code, message, badRows: [{line, reason, field, serial, otherLine?,
 *   otherPlan?, message}]}}` on stdout), exit 2.
 * - `plan list [--json]` → an array of `{name, rows, encoding, importedAt}`.
 * - `plan export [--name N] [--format mobiconnect|csv|json] [--encoding utf-8|shift_jis] [--out F]`:
 *   one plan, or every plan (each serial once); stdout unless `--out` (written atomically). CSV
 *   headers follow `--lang`.
 *
 * Exit codes: 0; 1 `store/*`, `csv/unrepresentable`, `io/write-failed`; 2 `csv/*` input errors,
 * bad usage, unreadable file; 3 `plan/not-found`, `io/not-found`.
 */
import fs from 'node:fs';
import { Option, type Command } from 'commander';
import { KitError } from '../../errors.ts';
import {
  exportPlans,
  importPlanCsv,
  listStoredPlans,
  PlanRowsError,
  type EncodingChoice,
  type PlanEncoding,
  type PlanExportFormat,
} from '../../kitting/plans.ts';
import { openStationDatabase, type Db } from '../../store/db.ts';
import { ctxOf, toJsonText, type CliContext } from '../context.ts';
import { writeAtomic } from './plist.ts';

function withDb<T>(dataDir: string, fn: (db: Db) => T): T {
  const db = openStationDatabase(dataDir);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

function readInput(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new KitError(
      code === 'ENOENT' ? 'io/not-found' : 'io/read-failed',
      `cannot read ${file}: ${(err as Error).message}`,
      { cause: err, details: { file } },
    );
  }
}

function reportBadRows(ctx: CliContext, err: PlanRowsError): void {
  if (ctx.json) {
    const badRows = err.badRows.map((b) => ({ ...b, message: b.message[ctx.lang] }));
    process.stdout.write(`${toJsonText({ error: { code: err.code, message: err.message, badRows } })}\n`);
  }
  const lineWord = ctx.lang === 'ja' ? '行目' : '';
  for (const b of err.badRows) {
    process.stderr.write(
      ctx.lang === 'ja'
        ? `${b.line}${lineWord}: ${b.message.ja} [${b.reason}]\n`
        : `line ${b.line}: ${b.message.en} [${b.reason}]\n`,
    );
  }
  process.stderr.write(
    ctx.lang === 'ja'
      ? `kitting: ${err.badRows.length} 行に誤りがあるため、何も取り込んでいません [csv/invalid-rows]\n`
      : `kitting: ${err.badRows.length} invalid row(s); nothing was imported [csv/invalid-rows]\n`,
  );
  process.exitCode = 2;
}

function runImport(cmd: Command, file: string, opts: { encoding: EncodingChoice; name?: string }): void {
  const ctx = ctxOf(cmd);
  const bytes = readInput(file);
  try {
    const r = withDb(ctx.dataDir, (db) =>
      importPlanCsv(db, bytes, {
        file,
        encoding: opts.encoding,
        ...(opts.name === undefined ? {} : { name: opts.name }),
      }),
    );
    if (ctx.json) ctx.printJson({ name: r.name, rows: r.rows, encoding: r.encoding });
    else if (ctx.lang === 'ja') {
      ctx.print(
        `端末リスト「${r.name}」を取り込みました: ${r.rows} 件（${r.encoding === 'utf-8' ? 'UTF-8' : 'Shift_JIS'}、${r.format === 'named' ? '列名付き形式' : 'mobiconnect形式'}）`,
      );
    } else ctx.print(`Plan "${r.name}" imported: ${r.rows} rows (${r.encoding}, ${r.format} format)`);
  } catch (err) {
    if (err instanceof PlanRowsError) reportBadRows(ctx, err);
    else throw err;
  }
}

function runList(cmd: Command): void {
  const ctx = ctxOf(cmd);
  const plans = withDb(ctx.dataDir, (db) => listStoredPlans(db));
  if (ctx.json) {
    ctx.printJson(plans.map((p) => ({ name: p.name, rows: p.rows, encoding: p.encoding, importedAt: p.importedAt })));
    return;
  }
  if (plans.length === 0) ctx.print(ctx.lang === 'ja' ? '端末リストはありません' : 'no plans');
  for (const p of plans) ctx.print(`${p.name}  ${p.rows}  ${p.encoding}  ${p.format}  ${p.importedAt}`);
}

function runExport(
  cmd: Command,
  opts: { name?: string; format: PlanExportFormat; encoding: PlanEncoding; out?: string },
): void {
  const ctx = ctxOf(cmd);
  const bytes = withDb(ctx.dataDir, (db) =>
    exportPlans(db, {
      format: opts.format,
      encoding: opts.encoding,
      lang: ctx.lang,
      ...(opts.name === undefined ? {} : { name: opts.name }),
    }),
  );
  if (opts.out === undefined) {
    process.stdout.write(bytes);
    return;
  }
  writeAtomic(opts.out, bytes);
  if (ctx.json) ctx.printJson({ written: opts.out, format: opts.format, encoding: opts.encoding, bytes: bytes.length });
  else ctx.print(ctx.lang === 'ja' ? `書き出しました: ${opts.out}` : `Written: ${opts.out}`);
}

/** Registers `kitting plan import|list|export`. */
export function registerPlan(program: Command): void {
  const plan = program.command('plan').description('serial plans from CSV: names, asset tags, groups (端末リスト)');
  plan
    .command('import')
    .description('import a CSV (mobiconnect/ABM export or named columns); all rows or none')
    .argument('<file>', 'CSV file (UTF-8 with or without BOM, or Shift_JIS)')
    .addOption(
      new Option('--encoding <encoding>', 'text encoding').choices(['auto', 'utf-8', 'shift_jis']).default('auto'),
    )
    .option('--name <name>', "plan name (default: the file's base name); an existing plan of that name is replaced")
    .action(function (this: Command, file: string) {
      runImport(this, file, this.opts<{ encoding: EncodingChoice; name?: string }>());
    });
  plan
    .command('list')
    .description('stored plans; --json: [{name, rows, encoding, importedAt}]')
    .action(function (this: Command) {
      runList(this);
    });
  plan
    .command('export')
    .description("write a plan (default: every plan) as mobiconnect's upload CSV, named-column CSV or JSON")
    .option('--name <name>', 'only this plan')
    .addOption(new Option('--format <format>', 'file format').choices(['mobiconnect', 'csv', 'json']).default('csv'))
    .addOption(
      new Option('--encoding <encoding>', 'CSV encoding (UTF-8 is written with a BOM for Excel)')
        .choices(['utf-8', 'shift_jis'])
        .default('utf-8'),
    )
    .option('--out <file>', 'write to this file (atomically) instead of stdout')
    .action(function (this: Command) {
      runExport(this, this.opts<{ name?: string; format: PlanExportFormat; encoding: PlanEncoding; out?: string }>());
    });
}
