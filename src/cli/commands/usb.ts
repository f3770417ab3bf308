/**
 * `kitting usb …` (cli.md "Devices", issue #8): what the USB bus shows, recovery and DFU devices
 * included, with hub and port; and the recovery-mode verbs.
 *
 * - `usb list [--json]`: human table, or a JSON array of
 *   `{mode, productId, ecid, ecidHex, serial, cpid, portPath, hub, port, location, label, udid, productName, error?}`
 *   (`ecid` a decimal string like lockdown's `UniqueChipID`, `location` usbmuxd's `LocationID` for
 *   that place, `hub`/`port`/`label` null when not on a numbered hub). When USB is off (no access,
 *   no bus, module not loaded) it exits 0: human mode prints why; `--json` prints `[]` (lists stay
 *   arrays) and the reason goes to stderr; `usb status --json` gives the reason as JSON.
 * - `usb status [--json]`: `{available: true, backend}` or `{available: false, reason: {code, message}}`; exit 0.
 * - `usb recovery-exit ECID`: leave recovery mode (ECID as `0x…` hex, decimal, or bare hex).
 * - `usb recovery-enter UDID --yes`: reboot a normal-mode device into recovery mode (refused without `--yes`, exit 2).
 */
import type { Command } from 'commander';
import { KitError } from '../../errors.ts';
import { ERROR_MESSAGES, type Lang } from '../../i18n/messages.ts';
import { formatEcid, parseEcid, type AppleUsbDevice, type UsbStatus } from '../../device/usb.ts';
import { ctxOf, type CliContext } from '../context.ts';
import { progressPrinter, stationFor } from './device.ts';

const WORDS = {
  noDevices: { ja: 'USB に Apple の端末はありません', en: 'No Apple devices on USB' },
  available: { ja: 'USB: 利用できます', en: 'USB: available' },
  left: {
    ja: 'リカバリーモードを終了しました（端末は iOS を起動します）',
    en: 'left recovery mode (the device boots iOS)',
  },
  entered: {
    ja: 'リカバリーモードに入ります（端末は usbmuxd から消え、USB にリカバリーモードで現れます）',
    en: 'entering recovery mode (the device leaves usbmuxd and shows up on USB in recovery mode)',
  },
} as const;

const MODE_WORDS: Record<AppleUsbDevice['mode'], Record<Lang, string>> = {
  normal: { ja: '通常', en: 'normal' },
  recovery: { ja: 'リカバリーモード', en: 'recovery' },
  dfu: { ja: 'DFUモード', en: 'DFU' },
  'port-dfu': { ja: 'Port DFU', en: 'port DFU' },
  wtf: { ja: 'WTF', en: 'WTF' },
  kis: { ja: 'KIS', en: 'KIS' },
  'mac-restore': { ja: 'Mac 復元', en: 'Mac restore' },
  other: { ja: 'その他', en: 'other' },
};

/** One device as `usb list --json` prints it. */
export function usbDeviceJson(d: AppleUsbDevice): Record<string, unknown> {
  return {
    mode: d.mode,
    productId: d.productId,
    ecid: d.ecid === undefined ? null : d.ecid.toString(),
    ecidHex: d.ecid === undefined ? null : formatEcid(d.ecid),
    serial: d.serialNumber ?? null,
    cpid: d.cpid ?? null,
    portPath: d.portPath,
    hub: d.location?.hub ?? null,
    port: d.location?.port ?? null,
    location: d.locationId ?? null,
    label: d.location?.label ?? null,
    udid: d.udid ?? null,
    productName: d.productName ?? null,
    ...(d.error !== undefined ? { error: d.error } : {}),
  };
}

/** The human table of `usb list`. */
export function usbListLines(devices: readonly AppleUsbDevice[], lang: Lang): string[] {
  if (devices.length === 0) return [WORDS.noDevices[lang]];
  const rows = devices.map((d) => [
    MODE_WORDS[d.mode][lang],
    d.ecid !== undefined ? formatEcid(d.ecid) : '-',
    d.serialNumber ?? d.udid ?? '-',
    d.location !== undefined ? `${d.location.label[lang]} (${d.portPath})` : d.portPath,
    `0x${d.productId.toString(16).padStart(4, '0')}${d.productName !== undefined ? ` ${d.productName}` : ''}`,
    d.error !== undefined ? `[${d.error.code}]` : '',
  ]);
  const header = ['MODE', 'ECID', 'SERIAL/UDID', 'PORT', 'PRODUCT', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows].map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
}

/** The "USB is off" text: title [code]: reason, then what to do. */
export function unavailableLines(status: UsbStatus, lang: Lang): string[] {
  if (status.available) return [`${WORDS.available[lang]} (${status.backend})`];
  const words = ERROR_MESSAGES[status.reason.code][lang];
  return [`${words.title} [${status.reason.code}]: ${status.reason.message}`, `  → ${words.action}`];
}

function printStatusToStderr(status: UsbStatus, lang: Lang): void {
  for (const line of unavailableLines(status, lang)) process.stderr.write(`kitting: ${line.trimStart()}\n`);
}

async function list(ctx: CliContext): Promise<void> {
  const { status, devices } = await stationFor(ctx).usbDevices();
  if (ctx.json) {
    ctx.printJson(devices.map(usbDeviceJson));
    if (!status.available) printStatusToStderr(status, ctx.lang);
  } else if (!status.available) {
    for (const line of unavailableLines(status, ctx.lang)) ctx.print(line);
  } else {
    for (const line of usbListLines(devices, ctx.lang)) ctx.print(line);
  }
}

/** Registers `kitting usb list|status|recovery-exit|recovery-enter`. */
export function registerUsb(program: Command): void {
  const usb = program
    .command('usb')
    .description('the USB bus: Apple devices incl. recovery/DFU with hub and port; leave or enter recovery mode');

  usb
    .command('list')
    .usage('[--json]')
    .description(
      'Apple USB devices (normal, recovery, DFU): mode, ECID, serial, hub/port; exit 0 with the reason when USB is off',
    )
    .action(async (_opts: unknown, cmd: Command) => {
      await list(ctxOf(cmd));
    });

  usb
    .command('status')
    .usage('[--json]')
    .description('whether port numbers and recovery/DFU detection work here, and why not')
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const status = await stationFor(ctx).usbStatus();
      if (ctx.json) ctx.printJson(status);
      else for (const line of unavailableLines(status, ctx.lang)) ctx.print(line);
    });

  usb
    .command('recovery-exit')
    .argument('<ecid>', 'the ECID (0x… hex as usb list shows it, or decimal UniqueChipID)')
    .usage('ECID [--json]')
    .description('leave recovery mode: setenv auto-boot true, saveenv, reboot (the device boots iOS)')
    .action(async (text: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const ecid = parseEcid(text);
      if (ecid === undefined) throw new KitError('usage/invalid-argument', `not an ECID: ${text}`);
      const r = await stationFor(ctx).leaveRecovery(ecid);
      if (ctx.json) {
        ctx.printJson({
          ecid: r.ecid.toString(),
          ecidHex: formatEcid(r.ecid),
          commands: r.commands,
          portPath: r.location?.path ?? null,
        });
      } else {
        ctx.print(
          `${formatEcid(r.ecid)}: ${WORDS.left[ctx.lang]}${r.location !== undefined ? ` — ${r.location.label[ctx.lang]}` : ''}`,
        );
      }
    });

  usb
    .command('recovery-enter')
    .argument('<udid>', 'the device (normal mode)')
    .option('--yes', 'really reboot it into recovery mode')
    .usage('UDID --yes [--json]')
    .description('reboot a device into recovery mode (lockdown EnterRecovery); refused without --yes')
    .action(async (udid: string, opts: { yes?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (opts.yes !== true) {
        throw new KitError('usb/recovery-not-confirmed', `recovery-enter ${udid} needs --yes (it reboots the device)`, {
          udid,
        });
      }
      const r = await stationFor(ctx).enterRecovery(udid, { confirmed: true, onProgress: progressPrinter(ctx) });
      if (ctx.json)
        ctx.printJson({
          udid: r.udid,
          ecid: r.ecid?.toString() ?? null,
          ecidHex: r.ecid === null ? null : formatEcid(r.ecid),
        });
      else ctx.print(`${udid}: ${WORDS.entered[ctx.lang]}${r.ecid !== null ? ` (ECID ${formatEcid(r.ecid)})` : ''}`);
    });
}
