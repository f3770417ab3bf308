/**
 * `kitting prepare UDID…|--all --blueprint NAME|FILE [--yes] [--max-parallel N] [--per-hub N] [--json] [--events]`
 * (cli.md "Kitting"): runs the pipeline on the devices through {@link Station.prepare}.
 *
 * Output:
 * - human: one progress line per event, `UDID  step  status` (stdout), a `batch  progress  …` line
 *   when the batch's counts change, then one line per device;
 *   what the technician must do (tap Trust, unlock, re-run with `--yes`) also goes to stderr;
 * - `--json --events`: one JSON event per line (the runner's events, plus `deviceLeft` /
 *   `deviceReturned`), then `{"type":"summary","results":[…]}`;
 * - `--json` alone: one document, the array of `{udid, jobId, status, errorCode?}`.
 *
 * Exit codes: 0 only when every device finished (`done`); 1 when any failed, waits (Trust, locked,
 * internet, erase confirmation, device gone) or was cancelled (SIGINT: the jobs are persisted and
 * the same command continues them); 2 bad usage or an unreadable / invalid blueprint file; 3 the
 * blueprint is neither a stored name nor a file, none of the UDIDs is attached, or the blueprint's
 * identity does not exist.
 */
import type { Command } from 'commander';
import { KitError } from '../../errors.ts';
import type { Lang } from '../../i18n/messages.ts';
import type { PrepareDeviceResult, PrepareEvent } from '../../kitting/prepare.ts';
import type { BatchCounts } from '../../kitting/scheduler.ts';
import { Station } from '../../station.ts';
import { ctxOf, type CliContext } from '../context.ts';

interface PrepareCliOptions {
  all?: boolean;
  blueprint?: string;
  yes?: boolean;
  forceInactivate?: boolean;
  maxParallel: string;
  perHub?: string;
  events?: boolean;
  activationUrl?: string;
  returnTimeout?: string;
}

/** One device in the `--json` summary (cli.md). */
export interface PrepareSummaryJson {
  udid: string;
  jobId: string | null;
  status: PrepareDeviceResult['status'];
  errorCode?: string;
  waitingReason?: string;
  stepId?: string;
}

/** The summary form of a result. */
export function summaryJson(r: PrepareDeviceResult): PrepareSummaryJson {
  const out: PrepareSummaryJson = { udid: r.udid, jobId: r.jobId, status: r.status };
  if (r.errorCode !== undefined) out.errorCode = r.errorCode;
  if (r.waitingReason !== undefined) out.waitingReason = r.waitingReason;
  if (r.stepId !== undefined) out.stepId = r.stepId;
  return out;
}

/** The progress line of an event (`UDID  step  status …`), or null for events not shown. */
export function eventLine(e: PrepareEvent): string | null {
  switch (e.type) {
    case 'jobCreated':
      return `${e.udid}  job  created ${e.jobId}`;
    case 'jobResumed':
      return `${e.udid}  job  resumed ${e.jobId}`;
    case 'stepStarted':
      return `${e.udid}  ${e.stepId}  running${e.attempt > 1 ? ` (attempt ${e.attempt})` : ''}`;
    case 'stepProgressed':
      return `${e.udid}  ${e.stepId}  ${e.kind}`;
    case 'stepFinished':
      return `${e.udid}  ${e.stepId}  ${e.status}`;
    case 'stepFailed':
      return e.retryInMs !== null
        ? `${e.udid}  ${e.stepId}  retrying in ${e.retryInMs} ms [${e.code}]`
        : `${e.udid}  ${e.stepId}  failed [${e.code}] ${e.message}`;
    case 'jobWaiting':
      return `${e.udid}  ${e.stepId}  waiting ${e.reason} [${e.code}]`;
    case 'jobFinished':
      return `${e.udid}  job  done`;
    case 'jobFailed':
      return `${e.udid}  job  failed [${e.code}]`;
    case 'jobCancelled':
      return `${e.udid}  job  cancelled`;
    case 'deviceLeft':
      return `${e.udid}  device  left`;
    case 'deviceReturned':
      return `${e.udid}  device  returned`;
  }
}

/** What the technician must do, per waiting reason (and `cancelled`), in ja and en. */
export const ADVICE: Readonly<Record<string, Readonly<Record<Lang, string>>>> = {
  'erase-confirmation': {
    ja: 'この端末は消去が必要です。確認のうえ --yes を付けて同じコマンドを再実行してください。',
    en: 'this device must be erased: re-run the same command with --yes to confirm.',
  },
  'trust-pending': {
    ja: '端末で「信頼」をタップしてから同じコマンドを再実行してください。',
    en: 'tap "Trust" on the device, then re-run the same command.',
  },
  locked: {
    ja: '端末のロックを解除してから同じコマンドを再実行してください。',
    en: 'unlock the device, then re-run the same command.',
  },
  'needs-internet': {
    ja: 'アクティベーションにはインターネット接続が必要です。接続後に同じコマンドを再実行してください。',
    en: 'activation needs internet: connect, then re-run the same command.',
  },
  'device-gone': {
    ja: '端末が戻りませんでした。接続し直してから同じコマンドを再実行してください。',
    en: 'the device did not come back: plug it in again and re-run the same command.',
  },
  cancelled: {
    ja: '中断しました。同じコマンドで続きから再開できます。',
    en: 'interrupted: the same command continues where it stopped.',
  },
};

/** The final line of a device (`UDID  result  status [why] job ID`). */
export function resultLine(r: PrepareDeviceResult): string {
  const why = r.waitingReason ?? r.errorCode;
  return `${r.udid}  result  ${r.status}${why !== undefined ? ` [${why}]` : ''}${r.jobId !== null ? ` job ${r.jobId}` : ''}`;
}

/** Tells the technician on stderr what a device that did not finish needs. */
export function advise(ctx: CliContext, r: PrepareDeviceResult): void {
  const key = r.status === 'cancelled' ? 'cancelled' : r.waitingReason;
  const words = key !== undefined ? ADVICE[key] : undefined;
  if (words !== undefined) process.stderr.write(`kitting: ${r.udid}: ${words[ctx.lang]}\n`);
  else if (r.status === 'failed' && r.errorCode !== undefined) {
    process.stderr.write(`kitting: ${r.udid}: failed [${r.errorCode}] ${r.errorMessage ?? ''}\n`);
  }
}

/** The progress line of a batch's counts (`batch  progress  …`). */
export function progressLine(e: BatchCounts): string {
  const eta = e.etaSeconds === null ? '' : `  eta ${e.etaSeconds} s`;
  return `batch  progress  running ${e.running}  waiting ${e.waiting}  done ${e.done}  failed ${e.failed}  ${Math.round(e.throughputPerHour)}/h${eta}`;
}

/** Parses a `--flag N` whole number ≥ 1. @throws KitError `usage/invalid-argument`. */
export function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new KitError('usage/invalid-argument', `${flag} takes a whole number ≥ 1`);
  return n;
}

async function runPrepare(cmd: Command, udids: string[], opts: PrepareCliOptions): Promise<void> {
  const ctx = ctxOf(cmd);
  if (udids.length > 0 === (opts.all === true)) {
    throw new KitError('usage/invalid-argument', 'give either UDIDs or --all');
  }
  if (opts.blueprint === undefined || opts.blueprint.trim() === '') {
    throw new KitError('usage/invalid-argument', '--blueprint NAME|FILE is required');
  }
  const maxParallel = positiveInt(opts.maxParallel, '--max-parallel');
  const perHub = opts.perHub !== undefined ? positiveInt(opts.perHub, '--per-hub') : undefined;
  const returnTimeoutMs =
    opts.returnTimeout !== undefined ? positiveInt(opts.returnTimeout, '--return-timeout') * 1000 : undefined;
  const events = ctx.json && opts.events === true;
  const station = new Station({
    usbmuxdAddress: ctx.usbmuxd,
    dataDir: ctx.dataDir,
    ...(ctx.passphraseFile !== undefined ? { passphraseFile: ctx.passphraseFile } : {}),
  });
  const controller = new AbortController();
  const onSignal = (): void => controller.abort(new KitError('kitting/cancelled', 'interrupted (SIGINT)'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let results: PrepareDeviceResult[];
  try {
    results = await station.prepare(
      {
        udids: opts.all === true ? 'all' : udids,
        blueprint: opts.blueprint,
        confirmedErase: opts.yes === true,
        forceInactivate: opts.forceInactivate === true,
        maxParallel,
        ...(perHub !== undefined ? { perHub } : {}),
        signal: controller.signal,
        ...(opts.activationUrl !== undefined ? { activationUrl: opts.activationUrl } : {}),
        ...(returnTimeoutMs !== undefined ? { returnTimeoutMs } : {}),
      },
      (e) => {
        if (events) process.stdout.write(`${JSON.stringify(e)}\n`);
        else if (!ctx.json) {
          const line = eventLine(e);
          if (line !== null) ctx.print(line);
        }
        if (e.type === 'stepProgressed' && e.kind === 'trust-pending') {
          process.stderr.write(`kitting: ${e.udid}: ${ADVICE['trust-pending']?.[ctx.lang] ?? ''}\n`);
        }
      },
      (e) => {
        // The batch's counts, in the human output only (the JSON event stream keeps its shape).
        if (!ctx.json && e.type === 'batchProgressed' && (e.running > 0 || e.done + e.failed > 0)) {
          ctx.print(progressLine(e));
        }
      },
    );
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    void station.close();
  }
  if (events) process.stdout.write(`${JSON.stringify({ type: 'summary', results: results.map(summaryJson) })}\n`);
  else if (ctx.json) ctx.printJson(results.map(summaryJson));
  else for (const r of results) ctx.print(resultLine(r));
  for (const r of results) if (r.status !== 'done') advise(ctx, r);
  if (results.some((r) => r.status !== 'done')) process.exitCode = 1;
  exitSoon();
}

/**
 * Lets the process end even when a step cut short by SIGINT is still finishing a device call in
 * the background (the runner stops waiting for it; its late connection would keep Node alive). The
 * timer does not itself keep the process alive: a clean run exits at once.
 */
export function exitSoon(ms = 1000): void {
  setTimeout(() => process.exit(), ms).unref();
}

/** Registers `kitting prepare`. */
export function registerPrepare(program: Command): void {
  program
    .command('prepare')
    .argument('[udids...]', 'the devices')
    .option('--all', 'every attached device')
    .option('--blueprint <name|file>', 'the blueprint: a stored name, else a file path')
    .option('--yes', 'confirm erasing devices that need it')
    .option(
      '--force-inactivate',
      'request a forced inactivation in the MDM of registered devices being erased for re-kitting (needs --yes and a blueprint that allows erasing; audited; the MDM allows it only for devices it cannot reach)',
    )
    .option('--max-parallel <n>', 'devices prepared at once', '4')
    .option('--per-hub <n>', 'devices prepared at once on one USB hub (default: no per-hub cap)')
    .option('--events', 'with --json: one JSON event per line, then a summary line')
    .option('--activation-url <url>', "Apple's activation server (default KITTING_ACTIVATION_URL or Apple's)")
    .option('--return-timeout <seconds>', 'how long to wait for a device that left (default 300)')
    .usage('UDID…|--all --blueprint NAME|FILE [--yes] [--max-parallel N] [--per-hub N] [--json] [--events]')
    .description('run the blueprint on the devices; interrupted jobs resume with the same command')
    .action(async (udids: string[], opts: PrepareCliOptions, cmd: Command) => runPrepare(cmd, udids, opts));
}
