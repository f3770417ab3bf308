/**
 * `kitting report [--format csv|json] [--encoding utf-8|shift_jis] [--since DATE] [--out F]`
 * (cli.md): the kitting report of finished jobs (`src/kitting/report.ts`).
 *
 * CSV (the default, or JSON when the global `--json` is given without `--format`): UTF-8 with BOM
 * for Excel, or Shift_JIS; headers and outcome words follow `--lang`. JSON: `{generatedAt, since,
 * devices: [...], throughput: {bucket, since, buckets, steps}}`. Written to stdout, or atomically
 * to `--out F` (then `--json` prints `{written, format, encoding, devices}`).
 *
 * Exit codes: 0; 1 `store/*`, `csv/unrepresentable`, `io/write-failed`; 2 bad `--since` or usage.
 */
import { Option, type Command } from 'commander';
import { reportCsv, reportDocument, parseSince } from '../../kitting/report.ts';
import type { PlanEncoding } from '../../kitting/plans.ts';
import { openStationDatabase } from '../../store/db.ts';
import { ctxOf, toJsonText } from '../context.ts';
import { writeAtomic } from './plist.ts';

interface ReportOptions {
  format?: 'csv' | 'json';
  encoding: PlanEncoding;
  since?: string;
  out?: string;
}

function runReport(cmd: Command, opts: ReportOptions): void {
  const ctx = ctxOf(cmd);
  const format = opts.format ?? (ctx.json ? 'json' : 'csv');
  const since = opts.since === undefined ? undefined : parseSince(opts.since);
  const db = openStationDatabase(ctx.dataDir);
  let bytes: Buffer;
  let devices: number;
  try {
    const doc = reportDocument(db, since === undefined ? {} : { since });
    devices = doc.devices.length;
    bytes =
      format === 'json'
        ? Buffer.from(`${toJsonText(doc)}\n`, 'utf8')
        : reportCsv(doc.devices, { lang: ctx.lang, encoding: opts.encoding });
  } finally {
    db.close();
  }
  if (opts.out === undefined) {
    process.stdout.write(bytes);
    return;
  }
  writeAtomic(opts.out, bytes);
  if (ctx.json)
    ctx.printJson({ written: opts.out, format, encoding: format === 'json' ? 'utf-8' : opts.encoding, devices });
  else
    ctx.print(
      ctx.lang === 'ja'
        ? `レポートを書き出しました: ${opts.out}（${devices} 台）`
        : `Report written: ${opts.out} (${devices} devices)`,
    );
}

/** Registers `kitting report`. */
export function registerReport(program: Command): void {
  program
    .command('report')
    .description('kitting report of finished jobs: CSV (Excel-ready) or JSON with throughput data')
    .addOption(new Option('--format <format>', 'csv (default) or json').choices(['csv', 'json']))
    .addOption(
      new Option('--encoding <encoding>', 'CSV encoding (UTF-8 is written with a BOM for Excel)')
        .choices(['utf-8', 'shift_jis'])
        .default('utf-8'),
    )
    .option('--since <date>', 'only jobs finished at or after this date (YYYY-MM-DD local, or ISO-8601)')
    .option('--out <file>', 'write to this file (atomically) instead of stdout')
    .action(function (this: Command) {
      runReport(this, this.opts<ReportOptions>());
    });
}
