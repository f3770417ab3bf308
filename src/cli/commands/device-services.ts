/**
 * Device service commands of cli.md: `kitting cloudconfig`, `profiles list|install|remove`,
 * `erase … --yes [--no-wait]`, `activate [--activation-url]`. Each calls the {@link Station} and
 * prints human text or one JSON document (global `--json`, before or after the command name).
 *
 * Exit codes: 0 ok; 1 the device or server refused (the code says why); 2 bad usage (erase without
 * `--yes`, unreadable profile file); 3 no such device, identity or profile.
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import { KitError } from '../../errors.ts';
import type { McProfileInfo } from '../../device/services/mcinstall.ts';
import { ctxOf, type CliContext } from '../context.ts';
import { formatValues, jsonable, progressPrinter, stationFor } from './device.ts';

const WORDS = {
  noCloudConfig: {
    ja: 'クラウド構成はありません（監視対象ではありません）',
    en: 'No cloud configuration (not supervised)',
  },
  noProfiles: { ja: '構成プロファイルはありません', en: 'No configuration profiles installed' },
  installedSilent: {
    ja: '構成プロファイルをインストールしました（監視対象・確認なし）',
    en: 'Profile installed silently (supervised)',
  },
  installedInteractive: {
    ja: '構成プロファイルを送信しました（設定アシスタント中でなければ、端末の「設定」で承認が必要です）',
    en: 'Profile sent (unless the device is in Setup Assistant, approve it in Settings on the device)',
  },
  removed: { ja: '構成プロファイルを削除しました', en: 'Profile removed' },
  eraseNeedsYes: {
    ja: 'すべてのコンテンツと設定を消去します。元に戻せません。実行するには --yes を付けてください',
    en: 'This erases all content and settings and cannot be undone; add --yes to do it',
  },
  erasing: { ja: '消去を開始しました', en: 'erase started' },
  erased: { ja: '消去が完了し、端末が再接続されました', en: 'erased; the device is back' },
  eraseFailed: { ja: '消去できませんでした', en: 'erase failed' },
  alreadyActivated: { ja: 'すでにアクティベーション（Apple）済みです', en: 'already activated' },
  activated: { ja: 'アクティベーション（Apple）が完了しました', en: 'activated' },
} as const;

function profileLines(ctx: CliContext, profiles: McProfileInfo[]): string[] {
  if (profiles.length === 0) return [WORDS.noProfiles[ctx.lang]];
  return profiles.map(
    (p) =>
      `${p.identifier}  ${p.displayName ?? '-'}${p.uuid !== null ? `  ${p.uuid}` : ''}${p.removalDisallowed ? '  [removal disallowed]' : ''}`,
  );
}

function readProfileFile(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new KitError('io/read-failed', `cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
      details: { file },
    });
  }
}

/** Registers `cloudconfig`, `profiles`, `erase`, `activate`. */
export function registerDeviceServices(program: Command): void {
  program
    .command('cloudconfig')
    .argument('<udid>', 'the device')
    .usage('UDID [--json]')
    .description("the device's cloud configuration (Apple's key names), or none")
    .action(async (udid: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cc = await stationFor(ctx).cloudConfiguration(udid, { onProgress: progressPrinter(ctx) });
      if (ctx.json) ctx.printJson(cc === null ? null : jsonable(cc));
      else if (cc === null) ctx.print(WORDS.noCloudConfig[ctx.lang]);
      else for (const line of formatValues(cc)) ctx.print(line);
    });

  const profiles = program
    .command('profiles')
    .usage('list|install FILE|remove IDENTIFIER UDID [--identity ID] [--json]')
    .description('configuration profiles on a device; installs silently when supervised by --identity');

  profiles
    .command('list')
    .argument('<udid>', 'the device')
    .option('--identity <id>', 'supervision identity (pairs supervised when the device demands it)')
    .usage('UDID [--identity ID] [--json]')
    .description('installed configuration profiles')
    .action(async (udid: string, opts: { identity?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const list = await stationFor(ctx).profiles(udid, {
        onProgress: progressPrinter(ctx),
        ...(opts.identity !== undefined ? { identityId: opts.identity } : {}),
      });
      if (ctx.json) ctx.printJson(list);
      else for (const line of profileLines(ctx, list)) ctx.print(line);
    });

  profiles
    .command('install')
    .argument('<file>', 'the .mobileconfig (signed or not)')
    .argument('<udid>', 'the device')
    .option('--identity <id>', 'supervision identity: silent install when the device is supervised by it')
    .usage('FILE UDID [--identity ID] [--json]')
    .description('install a configuration profile')
    .action(async (file: string, udid: string, opts: { identity?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const bytes = readProfileFile(file);
      const r = await stationFor(ctx).installProfile(udid, bytes, {
        onProgress: progressPrinter(ctx),
        ...(opts.identity !== undefined ? { identityId: opts.identity } : {}),
      });
      if (ctx.json) ctx.printJson(r);
      else
        ctx.print(
          `${udid}: ${(r.silent ? WORDS.installedSilent : WORDS.installedInteractive)[ctx.lang]}: ${r.identifier}`,
        );
    });

  profiles
    .command('remove')
    .argument('<identifier>', "the profile's PayloadIdentifier")
    .argument('<udid>', 'the device')
    .option('--identity <id>', 'supervision identity (pairs supervised when the device demands it)')
    .usage('IDENTIFIER UDID [--identity ID] [--json]')
    .description('remove an installed configuration profile')
    .action(async (identifier: string, udid: string, opts: { identity?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const r = await stationFor(ctx).removeProfile(udid, identifier, {
        onProgress: progressPrinter(ctx),
        ...(opts.identity !== undefined ? { identityId: opts.identity } : {}),
      });
      if (ctx.json) ctx.printJson(r);
      else ctx.print(`${udid}: ${WORDS.removed[ctx.lang]}: ${identifier}`);
    });

  program
    .command('erase')
    .argument('<udids...>', 'the devices')
    .option('--yes', 'really erase all content and settings')
    .option('--no-wait', 'do not wait for the devices to come back')
    .option('--wait-timeout <seconds>', 'how long to wait for each device (default 900)')
    .usage('UDID… --yes [--no-wait] [--json]')
    .description('erase all content and settings (the device returns in Setup Assistant, unactivated)')
    .action(async (udids: string[], opts: { yes?: boolean; wait: boolean; waitTimeout?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (opts.yes !== true) throw new KitError('usage/invalid-argument', WORDS.eraseNeedsYes[ctx.lang]);
      let waitTimeoutMs: number | undefined;
      if (opts.waitTimeout !== undefined) {
        const seconds = Number(opts.waitTimeout);
        if (!Number.isFinite(seconds) || seconds <= 0)
          throw new KitError('usage/invalid-argument', '--wait-timeout takes a number of seconds');
        waitTimeoutMs = seconds * 1000;
      }
      const station = stationFor(ctx);
      try {
        const results = await station.erase(udids, {
          wait: opts.wait,
          onProgress: progressPrinter(ctx),
          ...(waitTimeoutMs !== undefined ? { waitTimeoutMs } : {}),
        });
        if (ctx.json) ctx.printJson(results);
        else {
          for (const r of results) {
            ctx.print(
              r.erased
                ? `${r.udid}: ${(r.returned ? WORDS.erased : WORDS.erasing)[ctx.lang]}`
                : `${r.udid}: ${WORDS.eraseFailed[ctx.lang]} [${r.error.code}] ${r.error.message}`,
            );
          }
        }
        const failed = results.filter((r) => !r.erased);
        if (failed.length > 0) {
          // One device: its own exit code (3 when it is not attached); several: 1.
          const only = failed.length === 1 && results.length === 1 ? failed[0] : undefined;
          process.exitCode =
            only !== undefined && !only.erased ? new KitError(only.error.code, only.error.message).exitCode : 1;
        }
      } finally {
        station.close();
      }
    });

  program
    .command('activate')
    .argument('<udid>', 'the device')
    .option(
      '--activation-url <url>',
      "Apple's deviceActivation URL (default https://albert.apple.com/deviceservices/deviceActivation)",
    )
    .usage('UDID [--activation-url URL] [--json]')
    .description('activate the device with Apple (needs internet)')
    .action(async (udid: string, opts: { activationUrl?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (opts.activationUrl !== undefined) {
        if (!URL.canParse(opts.activationUrl) || !/^https?:$/.test(new URL(opts.activationUrl).protocol))
          throw new KitError('usage/invalid-argument', `--activation-url: not an http(s) URL: ${opts.activationUrl}`);
      }
      const r = await stationFor(ctx).activate(udid, {
        onProgress: progressPrinter(ctx),
        ...(opts.activationUrl !== undefined ? { activationUrl: opts.activationUrl } : {}),
      });
      if (ctx.json) ctx.printJson(r);
      else
        ctx.print(
          `${udid}: ${(r.alreadyActivated ? WORDS.alreadyActivated : WORDS.activated)[ctx.lang]} (${r.activationState})`,
        );
    });
}
