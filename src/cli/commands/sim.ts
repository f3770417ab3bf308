/**
 * `kitting sim` (run the virtual fleet) and `kitting sim-ctl` (drive it), as cli.md specifies.
 * `sim` prints exactly one line on stdout, the ready line; its logs go to stderr.
 */
import fs from 'node:fs';
import { Option, type Command } from 'commander';
import { KitError } from '../../errors.ts';
import { ControlClient, PRESET_NAMES, startSimulator } from '../../simulator/index.ts';
import type { SimulatorOptions } from '../../simulator/index.ts';
import { ctxOf, toJsonText } from '../context.ts';

interface SimOptions {
  devices: string;
  preset: string;
  socket?: string;
  tcp?: string;
  control?: string;
  timing: 'none' | 'realistic';
  timeScale: string;
  seed?: string;
  activationUrl?: string;
  pairRecordDir?: string;
  identityP12?: string;
  identityPasswordFile?: string;
}

function readFileArg(flag: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new KitError(
      'io/read-failed',
      `${flag}: cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`,
      {
        cause: err,
      },
    );
  }
}

function parseTcp(spec: string): { host: string; port: number } {
  const m = /^(?:tcp:\/\/)?([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(spec.trim());
  if (m === null || m[1] === undefined || m[2] === undefined || Number(m[2]) > 65535) {
    throw new KitError('usage/invalid-argument', `--tcp wants HOST:PORT, got "${spec}"`);
  }
  return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

function parseNumber(name: string, text: string, integer: boolean): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) {
    throw new KitError(
      'usage/invalid-argument',
      `${name} wants a ${integer ? 'non-negative integer' : 'non-negative number'}, got "${text}"`,
    );
  }
  return n;
}

async function runSim(opts: SimOptions): Promise<void> {
  if (opts.socket !== undefined && opts.tcp !== undefined)
    throw new KitError('usage/invalid-argument', 'give --socket or --tcp, not both');
  const options: SimulatorOptions = {
    devices: parseNumber('--devices', opts.devices, true),
    preset: opts.preset,
    timing: opts.timing,
    timeScale: parseNumber('--time-scale', opts.timeScale, false),
  };
  if (opts.socket !== undefined) options.socketPath = opts.socket;
  if (opts.tcp !== undefined) options.tcp = parseTcp(opts.tcp);
  if (opts.control !== undefined) options.control = /^\d+$/.test(opts.control) ? Number(opts.control) : opts.control;
  if (opts.seed !== undefined) options.seed = opts.seed;
  if (opts.activationUrl !== undefined) options.activationUrl = opts.activationUrl;
  if (opts.pairRecordDir !== undefined) options.pairRecordDir = opts.pairRecordDir;
  if ((opts.identityP12 === undefined) !== (opts.identityPasswordFile === undefined))
    throw new KitError('usage/invalid-argument', 'give --identity-p12 and --identity-password-file together');
  if (opts.identityP12 !== undefined && opts.identityPasswordFile !== undefined) {
    options.identityP12 = readFileArg('--identity-p12', opts.identityP12);
    // The password is the file's first line (a trailing newline is not part of it).
    options.identityPassword = readFileArg('--identity-password-file', opts.identityPasswordFile)
      .toString('utf8')
      .replace(/\r?\n[\s\S]*$/, '');
  }
  const sim = await startSimulator(options);
  process.stdout.write(
    `${JSON.stringify({ ready: true, usbmuxd: sim.usbmuxdAddress, control: sim.controlAddress, devices: sim.udids() })}\n`,
  );
  await new Promise<void>((resolve) => {
    const done = (): void => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
  });
  await sim.stop();
}

function controlOf(cmd: Command): ControlClient {
  let c: Command | null = cmd;
  while (c !== null && c.name() !== 'sim-ctl') c = c.parent;
  const spec = (c?.opts<{ control?: string }>().control ?? process.env.KITTING_SIM_CONTROL)?.trim();
  if (spec === undefined || spec === '')
    throw new KitError(
      'usage/invalid-argument',
      'sim-ctl needs --control C (the "control" of the ready line) or KITTING_SIM_CONTROL',
    );
  return new ControlClient(spec);
}

function parseAssignments(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new KitError('usage/invalid-argument', `set wants KEY=VALUE, got "${p}"`);
    out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  if (Object.keys(out).length === 0) throw new KitError('usage/invalid-argument', 'set wants at least one KEY=VALUE');
  return out;
}

function ok(cmd: Command, text: string): void {
  const ctx = ctxOf(cmd);
  if (ctx.json) ctx.printJson({ ok: true });
  else ctx.print(text);
}

/** Registers `sim` and `sim-ctl`. */
export function registerSim(program: Command): void {
  program
    .command('sim')
    .description('run a virtual usbmuxd with virtual iPads until SIGINT/SIGTERM (prints one JSON ready line)')
    .option('--devices <n>', 'devices attached at start', '1')
    .addOption(new Option('--preset <p>', `device preset (${PRESET_NAMES.join(', ')})`).default('fresh'))
    .option('--socket <path>', 'usbmuxd unix socket path (default: a fresh temp folder)')
    .option('--tcp <host:port>', 'usbmuxd on TCP instead of a unix socket')
    .option(
      '--control <path|port>',
      'control API socket path or 127.0.0.1 port (default: control.sock next to the usbmuxd socket)',
    )
    .addOption(new Option('--timing <mode>', 'delays').choices(['none', 'realistic']).default('none'))
    .option('--time-scale <x>', 'multiplies every delay', '1')
    .option('--seed <s>', 'deterministic device identities')
    .option('--activation-url <url>', 'activation server the virtual devices use')
    .option('--pair-record-dir <dir>', 'keep usbmuxd pair records in this folder too')
    .option('--identity-p12 <file>', 'supervision identity (.p12) for the supervised preset')
    .option('--identity-password-file <file>', 'file holding the password of --identity-p12')
    .action(async (opts: SimOptions) => {
      await runSim(opts);
    });

  const ctl = program
    .command('sim-ctl')
    .description('drive a running `kitting sim` through its control API')
    .option('--control <c>', 'control API: socket path, PORT or HOST:PORT (the "control" of the ready line)');

  ctl
    .command('list')
    .description('every virtual device')
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const rows = await controlOf(cmd).list();
      if (ctx.json) {
        ctx.printJson(rows);
        return;
      }
      for (const r of rows) {
        ctx.print(
          `${r.udid}  ${r.attached ? `id=${r.deviceId}` : r.mode === 'normal' ? 'unplugged' : r.mode}  ${r.productType} (${r.model})  ${r.productVersion}  "${r.deviceName}"`,
        );
      }
    });

  ctl
    .command('plug')
    .description('plug in a new virtual device; prints its UDID')
    .option('--preset <p>', `device preset (${PRESET_NAMES.join(', ')})`)
    .option('--product-type <t>', 'hardware, e.g. iPad13,18 or iPhone15,2 (default: the seed picks)')
    .action(async (opts: { preset?: string; productType?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const udid = await controlOf(cmd).plug(opts.preset, opts.productType);
      if (ctx.json) ctx.printJson({ udid });
      else ctx.print(udid);
    });

  for (const [verb, what] of [
    ['unplug', 'pull the cable (the device keeps its state)'],
    ['replug', 'plug the device back in (new DeviceID); powers it on when it was shut down'],
    ['reboot', 'restart the device (Detached, then Attached with a new DeviceID)'],
    ['lock', 'lock the screen (needs a passcode)'],
    ['unlock', 'unlock the screen'],
  ] as const) {
    ctl
      .command(`${verb} <udid>`)
      .description(what)
      .action(async (udid: string, _opts: unknown, cmd: Command) => {
        await controlOf(cmd).verb(udid, verb);
        ok(cmd, `${verb}: ${udid}`);
      });
  }

  ctl
    .command('trust <udid> <mode>')
    .description('what the person does with the Trust dialog: accept, deny or prompt (leave it showing)')
    .action(async (udid: string, mode: string, _opts: unknown, cmd: Command) => {
      if (mode !== 'accept' && mode !== 'deny' && mode !== 'prompt')
        throw new KitError('usage/invalid-argument', `trust wants accept, deny or prompt, got "${mode}"`);
      await controlOf(cmd).trust(udid, mode);
      ok(cmd, `trust ${mode}: ${udid}`);
    });

  ctl
    .command('set <udid> <assignments...>')
    .description(
      'change device state: KEY=VALUE (deviceName, activationState, setupComplete, passcodeSet, locked, language, locale, timeZone, batteryLevel, productVersion, …)',
    )
    .action(async (udid: string, assignments: string[], _opts: unknown, cmd: Command) => {
      await controlOf(cmd).set(udid, parseAssignments(assignments));
      ok(cmd, `set: ${udid}`);
    });

  ctl
    .command('fault <udid> <spec>')
    .description(
      'misbehave: disconnect-after=REQ, disconnect-after-bytes=N, delay-ms=N, error=REQ:CODE, oversize-frame, garbage, clear',
    )
    .option('--once', 'fire a single time instead of until `clear`')
    .action(async (udid: string, spec: string, opts: { once?: boolean }, cmd: Command) => {
      await controlOf(cmd).fault(udid, spec, opts.once === true);
      ok(cmd, `fault ${spec}: ${udid}`);
    });

  ctl
    .command('forget <udid>')
    .description('the device forgets its host pairings (or one, with --host-id): the next session gets InvalidHostID')
    .option('--host-id <id>', 'forget only this HostID')
    .action(async (udid: string, opts: { hostId?: string }, cmd: Command) => {
      const n = await controlOf(cmd).forget(udid, opts.hostId);
      const ctx = ctxOf(cmd);
      if (ctx.json) ctx.printJson({ forgotten: n });
      else ctx.print(`forgot ${n} pairing(s): ${udid}`);
    });

  ctl
    .command('setup <udid> <action>')
    .description(
      'the person taps through Setup Assistant (action: complete); the device enrolls at its ConfigurationURL, typing --username/--password if asked',
    )
    .option('--username <u>', 'user name for the Remote Management pane')
    .option('--password <p>', 'password for the Remote Management pane')
    .action(async (udid: string, action: string, opts: { username?: string; password?: string }, cmd: Command) => {
      if (action !== 'complete')
        throw new KitError('usage/invalid-argument', `setup wants "complete", got "${action}"`);
      if ((opts.username === undefined) !== (opts.password === undefined))
        throw new KitError('usage/invalid-argument', 'give --username and --password together');
      const creds =
        opts.username !== undefined && opts.password !== undefined
          ? { username: opts.username, password: opts.password }
          : undefined;
      const result = await controlOf(cmd).setup(udid, creds);
      const ctx = ctxOf(cmd);
      if (ctx.json) ctx.printJson(result);
      else
        ctx.print(
          `setup complete: ${udid}${result.enrollment === null ? '' : ` (enrolled at ${result.enrollment.url})`}${result.installed.length > 0 ? `, installed ${result.installed.join(', ')}` : ''}`,
        );
    });

  ctl
    .command('approve <udid> <identifier>')
    .description('the person installs a profile that waits for approval in Settings')
    .action(async (udid: string, identifier: string, _opts: unknown, cmd: Command) => {
      await controlOf(cmd).approve(udid, identifier);
      ok(cmd, `approved ${identifier}: ${udid}`);
    });

  ctl
    .command('activation-server <mode>')
    .description(
      'the fake Apple activation server: fail[=STATUS] (default 500) answers every request with that HTTP status; ok answers normally',
    )
    .action(async (mode: string, _opts: unknown, cmd: Command) => {
      const m = /^(?:fail(?:=(\d{3}))?|ok)$/.exec(mode);
      if (m === null)
        throw new KitError('usage/invalid-argument', `activation-server wants fail[=STATUS] or ok, got "${mode}"`);
      const status = mode === 'ok' ? null : Number(m[1] ?? '500');
      const r = await controlOf(cmd).setActivationFailure(status);
      const ctx = ctxOf(cmd);
      if (ctx.json) ctx.printJson(r);
      else
        ctx.print(
          status === null ? `activation server: normal (${r.url})` : `activation server: HTTP ${status} (${r.url})`,
        );
    });

  ctl
    .command('state <udid>')
    .description('the whole virtual device (JSON)')
    .action(async (udid: string, _opts: unknown, cmd: Command) => {
      const state = await controlOf(cmd).state(udid);
      process.stdout.write(`${toJsonText(state)}\n`);
    });
}
