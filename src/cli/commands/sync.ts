/**
 * `kitting sync config|status|run` (cli.md "MDM sync and servers"):
 *
 * - `sync config --url URL --token-file F`: checks the token with `GET /v1/groups` (a refused
 *   token exits 1 with `mdm/auth-required`), then stores the URL (settings) and the token sealed
 *   by the vault (needs the passphrase: `--passphrase-file` or `KITTING_PASSPHRASE`), and caches
 *   the groups. The token is never printed.
 * - `sync status [--json]`: `{state, queueLength, delivered, lastError, nextTryAt}` from the
 *   station database (no network, no passphrase).
 * - `sync run [--once]`: drains the outbox (and then refreshes the enrollment confirmations of
 *   finished devices); `--once` until it is empty (exit 1 with the error
 *   after `--max-failures` retryable failures in a row, or at once on `mdm/auth-required`),
 *   otherwise keeps running until SIGINT/SIGTERM.
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import { KitError } from '../../errors.ts';
import { PassphraseVault, resolvePassphrase } from '../../identity/vault.ts';
import { refreshEnrollmentConfirmations } from '../../kitting/mdm-port.ts';
import { MdmClient, normalizeBaseUrl } from '../../mdm/client.ts';
import { configuredUrl, hasStationToken, loadStationToken, saveStationToken, saveUrl } from '../../mdm/secrets.ts';
import { readSyncStatus, SYNC_STATE_SETTING, Syncer, type SyncStatus } from '../../mdm/syncer.ts';
import { openStationDatabase, type Db } from '../../store/db.ts';
import { replaceCachedGroups } from '../../store/mdm-cache.ts';
import { deleteSetting } from '../../store/settings.ts';
import { ctxOf, type CliContext } from '../context.ts';

/** `sync status --json` (cli.md): exactly these keys. */
export interface SyncStatusJson {
  state: SyncStatus['state'];
  queueLength: number;
  delivered: number;
  lastError: SyncStatus['lastError'];
  nextTryAt: string | null;
}

function statusJson(s: SyncStatus): SyncStatusJson {
  return {
    state: s.state,
    queueLength: s.queueLength,
    delivered: s.delivered,
    lastError: s.lastError,
    nextTryAt: s.nextTryAt,
  };
}

function readToken(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new KitError('io/read-failed', `--token-file: cannot read ${file}`, { cause: err });
  }
  const token = text.replace(/\r?\n$/, '');
  if (token.length === 0 || /\s/.test(token))
    throw new KitError('usage/invalid-argument', `--token-file: ${file} must hold one token without spaces`);
  return token;
}

async function openVault(ctx: CliContext): Promise<PassphraseVault> {
  return PassphraseVault.open({ dataDir: ctx.dataDir, passphrase: resolvePassphrase(ctx.passphraseFile) });
}

async function withDb<T>(ctx: CliContext, fn: (db: Db) => Promise<T>): Promise<T> {
  const db = openStationDatabase(ctx.dataDir);
  try {
    return await fn(db);
  } finally {
    db.close();
  }
}

async function runConfig(ctx: CliContext, opts: { url: string; tokenFile: string }): Promise<void> {
  const url = normalizeBaseUrl(opts.url);
  const token = readToken(opts.tokenFile);
  const client = new MdmClient({ baseUrl: url, token });
  const groups = await client.listGroups();
  await withDb(ctx, async (db) => {
    const vault = await openVault(ctx);
    await saveStationToken(db, vault, token);
    saveUrl(db, url);
    replaceCachedGroups(db, groups, new Date().toISOString());
    deleteSetting(db, SYNC_STATE_SETTING);
  });
  if (ctx.json) ctx.printJson({ url, groups: groups.length });
  else
    ctx.print(
      ctx.lang === 'ja'
        ? `MDM 同期を設定しました: ${url}（グループ ${groups.length} 件）`
        : `MDM sync configured: ${url} (${groups.length} groups)`,
    );
}

function printStatus(ctx: CliContext, s: SyncStatus): void {
  if (ctx.json) {
    ctx.printJson(statusJson(s));
    return;
  }
  const ja = ctx.lang === 'ja';
  const words: Record<SyncStatus['state'], string> = ja
    ? { unconfigured: '未設定', online: 'オンライン', offline: 'オフライン', 'auth-required': 'トークンが必要' }
    : { unconfigured: 'not configured', online: 'online', offline: 'offline', 'auth-required': 'token required' };
  ctx.print(`${ja ? '同期' : 'sync'}: ${words[s.state]}`);
  ctx.print(
    `${ja ? '送信待ち' : 'queued'}: ${s.queueLength}  ${ja ? '送信済み' : 'delivered'}: ${s.delivered}  ${ja ? '保留' : 'parked'}: ${s.parked}`,
  );
  if (s.lastError !== null) ctx.print(`${ja ? '最後のエラー' : 'last error'}: ${s.lastError.code} (${s.lastError.at})`);
  if (s.nextTryAt !== null) ctx.print(`${ja ? '次の再試行' : 'next try'}: ${s.nextTryAt}`);
}

async function runSync(ctx: CliContext, opts: { once?: boolean; maxFailures: string }): Promise<void> {
  const maxFailures = Number(opts.maxFailures);
  if (!Number.isInteger(maxFailures) || maxFailures < 1)
    throw new KitError('usage/invalid-argument', `--max-failures wants a positive integer, got "${opts.maxFailures}"`);
  await withDb(ctx, async (db) => {
    const url = configuredUrl(db);
    if (url === undefined || !hasStationToken(db))
      throw new KitError(
        'mdm/unconfigured',
        'MDM sync is not configured (kitting sync config --url URL --token-file F)',
      );
    const token = await loadStationToken(db, await openVault(ctx));
    const client = new MdmClient({ baseUrl: url, token });
    const syncer = new Syncer({ db, client });
    if (opts.once === true) {
      const sum = await syncer.drain({ maxFailures });
      // After a successful drain, ask the MDM which finished devices have checked in since.
      const confirmed = await refreshEnrollmentConfirmations(db, client);
      const s = syncer.status();
      if (ctx.json) ctx.printJson({ ...sum, confirmed, queueLength: s.queueLength });
      else
        ctx.print(
          `delivered ${sum.delivered} (${sum.duplicates} duplicates), parked ${sum.parked}, queued ${s.queueLength}`,
        );
      return;
    }
    syncer.on('syncStateChanged', (s: SyncStatus) => {
      if (ctx.json) process.stdout.write(`${JSON.stringify(statusJson(s))}\n`);
    });
    syncer.start();
    await new Promise<void>((resolve) => {
      const done = (): void => {
        process.off('SIGINT', done);
        process.off('SIGTERM', done);
        resolve();
      };
      process.on('SIGINT', done);
      process.on('SIGTERM', done);
    });
    await syncer.stop();
    if (!ctx.json) printStatus(ctx, syncer.status());
  });
}

/** Registers `kitting sync`. */
export function registerSync(program: Command): void {
  const sync = program.command('sync').description('deliver kitting results to the MDM (同期)');
  sync
    .command('config')
    .description('set the MDM URL and station token (checked with GET /v1/groups, stored sealed by the vault)')
    .requiredOption('--url <url>', 'the MDM base URL')
    .requiredOption('--token-file <file>', 'file holding the station token')
    .action(async (opts: { url: string; tokenFile: string }, cmd: Command) => {
      await runConfig(ctxOf(cmd), opts);
    });
  sync
    .command('status')
    .usage('[--json]')
    .description('state, queue length, delivered count, last error and next try')
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const s = await withDb(ctx, (db) =>
        Promise.resolve(readSyncStatus(db, configuredUrl(db) !== undefined && hasStationToken(db))),
      );
      printStatus(ctx, s);
    });
  sync
    .command('run')
    .description('drain the outbox to the MDM (until SIGINT, or until empty with --once)')
    .option('--once', 'stop when the queue is empty')
    .option('--max-failures <n>', 'with --once: retryable failures in a row before giving up', '3')
    .action(async (opts: { once?: boolean; maxFailures: string }, cmd: Command) => {
      await runSync(ctxOf(cmd), opts);
    });
}
