/**
 * Device commands of cli.md: `kitting list`, `info`, `pair`, `unpair`, `restart`, `shutdown`.
 * Each parses its arguments, calls the {@link Station}, and prints human text or one JSON document
 * (global `--json`, accepted before or after the command name). A UDID that is not attached exits 3.
 */
import type { Command } from 'commander';
import { KitError } from '../../errors.ts';
import { PlistReal, PlistUid, isPlistDict, type PlistValue } from '../../plist/index.ts';
import type { DeviceProgress } from '../../device/device.ts';
import { Station, type DeviceSummary } from '../../station.ts';
import { ctxOf, type CliContext } from '../context.ts';

/** The station for a command: usbmuxd address, data folder and vault passphrase file from the global options. */
export function stationFor(ctx: CliContext): Station {
  return new Station({
    usbmuxdAddress: ctx.usbmuxd,
    dataDir: ctx.dataDir,
    passphraseFile: ctx.passphraseFile,
    actor: 'cli',
  });
}

/** Tells the person at the device what to do while pairing (stderr, so JSON stays clean). */
export function progressPrinter(ctx: CliContext): (e: DeviceProgress) => void {
  return (e) => {
    if (e.stage === 'trust-pending') {
      process.stderr.write(
        ctx.lang === 'ja'
          ? `${e.udid}: 端末で「信頼」をタップしてください（このコンピュータを信頼しますか?）\n`
          : `${e.udid}: tap "Trust" on the device (Trust This Computer?)\n`,
      );
    }
  };
}

/** One plist value as ideviceinfo prints it (data as base64, 64-bit integers exact). */
function scalarText(v: PlistValue): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Buffer) return v.toString('base64');
  if (v instanceof PlistReal) return String(v.value);
  if (v instanceof PlistUid) return `UID ${v.value}`;
  return '';
}

/** `Key: value` lines like ideviceinfo; nested dictionaries and arrays indented. */
export function formatValues(value: PlistValue, indent = ''): string[] {
  const lines: string[] = [];
  if (isPlistDict(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (isPlistDict(v) || Array.isArray(v)) {
        lines.push(`${indent}${k}:`);
        lines.push(...formatValues(v, `${indent}  `));
      } else {
        lines.push(`${indent}${k}: ${scalarText(v)}`);
      }
    }
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => {
      if (isPlistDict(v) || Array.isArray(v)) {
        lines.push(`${indent}${i}:`);
        lines.push(...formatValues(v, `${indent}  `));
      } else {
        lines.push(`${indent}${scalarText(v)}`);
      }
    });
  } else {
    lines.push(`${indent}${scalarText(value)}`);
  }
  return lines;
}

/**
 * Keys whose integers are 64-bit identifiers: always a decimal string in JSON, whether or not this
 * device's value happens to fit a double (new-style ECIDs often do, older ones do not), so a
 * program reading `info --json` gets one type.
 */
const ID_KEYS = new Set(['UniqueChipID', 'DieID']);

/** JSON-friendly form of a plist value (reals unwrapped; bigint/Buffer are handled by printJson). */
export function jsonable(v: PlistValue, key?: string): unknown {
  if (v instanceof PlistReal) return v.value;
  if (v instanceof PlistUid) return { uid: v.value };
  if (typeof v === 'number' && key !== undefined && ID_KEYS.has(key)) return String(v);
  if (Array.isArray(v)) return v.map((x) => jsonable(x));
  if (isPlistDict(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonable(x, k)]));
  return v;
}

function listLines(devices: DeviceSummary[]): string[] {
  if (devices.length === 0) return ['(no devices attached)'];
  const rows = devices.map((d) => [
    d.udid,
    d.name ?? '-',
    d.model ?? '-',
    d.osVersion ?? '-',
    d.activationState ?? '-',
    d.supervised === null ? '-' : d.supervised ? 'supervised' : 'unsupervised',
    d.paired ? 'paired' : 'not paired',
    d.error !== undefined ? `[${d.error.code}]` : '',
  ]);
  const header = ['UDID', 'NAME', 'MODEL', 'OS', 'ACTIVATION', 'SUPERVISION', 'PAIRING', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows].map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
}

/** Registers the device commands. */
export function registerDevice(program: Command): void {
  program
    .command('list')
    .usage('[--json]')
    .description('attached devices: udid, serial, name, model, OS version, activation, supervision, pairing')
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const devices = await stationFor(ctx).listDevices();
      if (ctx.json) ctx.printJson(devices);
      else for (const line of listLines(devices)) ctx.print(line);
    });

  program
    .command('info')
    .argument('<udid>', 'the device')
    .option('--key <key>', 'one value (e.g. ProductVersion)')
    .option('--domain <domain>', 'a lockdown domain (e.g. com.apple.mobile.battery)')
    .usage('UDID [--key K] [--domain D] [--json]')
    .description('lockdown values of a device, like ideviceinfo (pairs first if needed)')
    .action(async (udid: string, opts: { key?: string; domain?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const query = {
        ...(opts.domain !== undefined ? { domain: opts.domain } : {}),
        ...(opts.key !== undefined ? { key: opts.key } : {}),
      };
      const value = await stationFor(ctx).info(udid, query, { onProgress: progressPrinter(ctx) });
      if (value === undefined) {
        throw new KitError(
          'lockdown/missing-value',
          `${udid} returned no value for ${opts.key ?? opts.domain ?? 'the query'}`,
          { udid },
        );
      }
      if (ctx.json) ctx.printJson(opts.key !== undefined ? { [opts.key]: jsonable(value, opts.key) } : jsonable(value));
      else for (const line of formatValues(value)) ctx.print(line);
    });

  program
    .command('pair')
    .argument('[udid]', 'the device')
    .option('--all', 'every attached device')
    .option('--identity <id>', 'supervised pairing with this supervision identity (no Trust dialog)')
    .usage('UDID|--all [--identity ID] [--json]')
    .description('pair with a device (keeps a pairing the device still accepts); the record is saved through usbmuxd')
    .action(async (udid: string | undefined, opts: { all?: boolean; identity?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if ((udid === undefined) === (opts.all !== true)) {
        throw new KitError('usage/invalid-argument', 'give either a UDID or --all');
      }
      const station = stationFor(ctx);
      const onProgress = progressPrinter(ctx);
      const identity = opts.identity !== undefined ? { identityId: opts.identity } : {};
      if (udid !== undefined) {
        const r = await station.pair(udid, { onProgress, ...identity });
        if (ctx.json) ctx.printJson(r);
        else ctx.print(`${r.udid}: ${r.pairedNow ? 'paired' : 'already paired'} (HostID ${r.hostId})`);
        return;
      }
      const results = await station.pairAll({ onProgress, ...identity });
      if (ctx.json) ctx.printJson(results);
      else {
        for (const r of results) {
          ctx.print(
            'error' in r
              ? `${r.udid}: failed [${r.error.code}] ${r.error.message}`
              : `${r.udid}: ${r.pairedNow ? 'paired' : 'already paired'}`,
          );
        }
      }
      if (results.some((r) => 'error' in r)) process.exitCode = 1;
    });

  program
    .command('unpair')
    .argument('<udid>', 'the device')
    .usage('UDID [--json]')
    .description("remove this host's pairing from the device and from usbmuxd")
    .action(async (udid: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const r = await stationFor(ctx).unpair(udid);
      if (ctx.json) ctx.printJson(r);
      else ctx.print(r.unpaired ? `${udid}: unpaired` : `${udid}: was not paired with this host`);
    });

  for (const action of ['restart', 'shutdown'] as const) {
    program
      .command(action)
      .argument('<udid>', 'the device')
      .usage('UDID [--json]')
      .description(action === 'restart' ? 'restart the device' : 'shut the device down')
      .action(async (udid: string, _opts: unknown, cmd: Command) => {
        const ctx = ctxOf(cmd);
        const station = stationFor(ctx);
        const r =
          action === 'restart'
            ? await station.restart(udid, { onProgress: progressPrinter(ctx) })
            : await station.shutdown(udid, { onProgress: progressPrinter(ctx) });
        if (ctx.json) ctx.printJson({ ...r, action });
        else ctx.print(`${udid}: ${action === 'restart' ? 'restarting' : 'shutting down'}`);
      });
  }
}
