/**
 * `kitting watch --blueprint NAME|FILE [--max-parallel N] [--per-hub N] [--yes] [--json] [--events]`
 * (cli.md "Kitting"): applies the blueprint to every device attached at start and to every one
 * attached later, through {@link Station.watch}, until SIGINT or SIGTERM.
 *
 * Output:
 * - human: the prepare progress lines (`UDID  step  status`), `UDID  device  attached|detached`,
 *   `batch  progress  …` when the counts change, what a person must do on stderr (tap Trust,
 *   unlock …), and one result line per device at the end;
 * - `--json --events`: every station event as one JSON line (`batchStarted` first: from then on
 *   attached devices are taken), then `{"type":"summary","results":[…]}`;
 * - `--json` alone: the summary array at the end.
 *
 * Shutdown: SIGINT/SIGTERM cancel the running jobs at the step they are in (persisted; `kitting
 * watch` or `kitting prepare` with the same blueprint continue them). Exit codes: 0 after a clean
 * stop with no device failed, 1 when a device failed, 2 bad usage or blueprint file, 3 no such
 * blueprint or identity.
 */
import type { Command } from 'commander';
import { KitError } from '../../errors.ts';
import type { StationEvent } from '../../contract.ts';
import { Station } from '../../station.ts';
import { ctxOf } from '../context.ts';
import { ADVICE, advise, eventLine, exitSoon, positiveInt, progressLine, resultLine, summaryJson } from './prepare.ts';

interface WatchCliOptions {
  blueprint?: string;
  yes?: boolean;
  maxParallel: string;
  perHub?: string;
  events?: boolean;
  activationUrl?: string;
  pairTimeout?: string;
  pollInterval?: string;
}

/** The human line of a station event, or null when it has none. */
export function watchLine(e: StationEvent): string | null {
  switch (e.type) {
    case 'deviceAttached':
      return `${e.udid}  device  attached${e.hub !== null ? ` (hub ${e.hub})` : ''}`;
    case 'deviceDetached':
      return `${e.udid}  device  detached`;
    case 'batchStarted':
      return `batch  started  ${e.blueprint}  max ${e.maxParallel}${e.perHub !== null ? `  per hub ${e.perHub}` : ''}`;
    case 'batchProgressed':
      return progressLine(e);
    case 'batchPaused':
    case 'batchResumed':
    case 'batchStopped':
    case 'batchFinished':
      return `batch  ${e.type.slice(5).toLowerCase()}`;
    case 'deviceStateChanged':
    case 'syncStateChanged':
      return null;
    default:
      return eventLine(e);
  }
}

async function runWatch(cmd: Command, opts: WatchCliOptions): Promise<void> {
  const ctx = ctxOf(cmd);
  if (opts.blueprint === undefined || opts.blueprint.trim() === '') {
    throw new KitError('usage/invalid-argument', '--blueprint NAME|FILE is required');
  }
  const maxParallel = positiveInt(opts.maxParallel, '--max-parallel');
  const perHub = opts.perHub !== undefined ? positiveInt(opts.perHub, '--per-hub') : undefined;
  const pairTimeoutMs =
    opts.pairTimeout !== undefined ? positiveInt(opts.pairTimeout, '--pair-timeout') * 1000 : undefined;
  const pollIntervalMs =
    opts.pollInterval !== undefined ? positiveInt(opts.pollInterval, '--poll-interval') : undefined;
  const events = ctx.json && opts.events === true;
  const station = new Station({
    usbmuxdAddress: ctx.usbmuxd,
    dataDir: ctx.dataDir,
    ...(ctx.passphraseFile !== undefined ? { passphraseFile: ctx.passphraseFile } : {}),
    ...(pairTimeoutMs !== undefined ? { pairTimeoutMs } : {}),
  });
  const controller = new AbortController();
  const onSignal = (): void => controller.abort(new KitError('kitting/cancelled', 'interrupted (SIGINT)'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let results;
  try {
    results = await station.watch(
      {
        blueprint: opts.blueprint,
        confirmedErase: opts.yes === true,
        maxParallel,
        signal: controller.signal,
        ...(perHub !== undefined ? { perHub } : {}),
        ...(pollIntervalMs !== undefined ? { pollIntervalMs } : {}),
        ...(opts.activationUrl !== undefined ? { activationUrl: opts.activationUrl } : {}),
      },
      (e) => {
        if (events) process.stdout.write(`${JSON.stringify(e)}\n`);
        else if (!ctx.json) {
          const line = watchLine(e);
          if (line !== null) ctx.print(line);
        }
        if (e.type === 'deviceStateChanged' && e.nextAction !== undefined) {
          const key = e.nextAction === 'tap-trust' ? 'trust-pending' : e.nextAction === 'unlock' ? 'locked' : undefined;
          const words = key !== undefined ? ADVICE[key] : undefined;
          if (words !== undefined) process.stderr.write(`kitting: ${e.udid}: ${words[ctx.lang]}\n`);
        }
      },
    );
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await station.close();
  }
  if (events) process.stdout.write(`${JSON.stringify({ type: 'summary', results: results.map(summaryJson) })}\n`);
  else if (ctx.json) ctx.printJson(results.map(summaryJson));
  else for (const r of results) ctx.print(resultLine(r));
  for (const r of results) if (r.status === 'failed') advise(ctx, r);
  if (results.some((r) => r.status === 'failed')) process.exitCode = 1;
  exitSoon();
}

/** Registers `kitting watch`. */
export function registerWatch(program: Command): void {
  program
    .command('watch')
    .option('--blueprint <name|file>', 'the blueprint: a stored name, else a file path')
    .option('--yes', 'confirm erasing devices that need it')
    .option('--max-parallel <n>', 'devices prepared at once', '4')
    .option('--per-hub <n>', 'devices prepared at once on one USB hub (default: no per-hub cap)')
    .option('--events', 'with --json: one JSON event per line, then a summary line')
    .option('--activation-url <url>', "Apple's activation server (default KITTING_ACTIVATION_URL or Apple's)")
    .option('--pair-timeout <seconds>', 'how long one pairing attempt waits for Trust (default 120)')
    .option('--poll-interval <ms>', 'how often a device waiting for Trust/unlock is tried again (default 2000)')
    .usage('--blueprint NAME|FILE [--max-parallel N] [--per-hub N] [--yes] [--json] [--events]')
    .description('prepare every device attached now and later with the blueprint, until Ctrl-C')
    .action(async (opts: WatchCliOptions, cmd: Command) => runWatch(cmd, opts));
}
