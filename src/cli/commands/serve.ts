/**
 * `kitting serve [--port P] [--simulate N] [--preset P] [--mdm-dev]` (cli.md "MDM sync and
 * servers", issue #7): the headless station. The station contract over HTTP + WebSocket on
 * 127.0.0.1 with a random access token, serving the built UI (`dist/renderer/`); see
 * `src/server/README.md` for the wire format.
 *
 * - `--simulate N [--preset P]` starts the virtual fleet in this process (N iPads, preset `fresh`
 *   by default) and points the station's usbmuxd and Apple activation at it. Without `--data-dir`
 *   (or `KITTING_DATA_DIR`) the data folder is a fresh temporary one, removed on exit, so a demo
 *   never mixes virtual iPads into a real station's records. A data folder without identities gets
 *   a demo: identity `demo` (org "Demo School") and blueprint `demo` (supervised, every pane
 *   skipped, no erase), so "start batch" on the UI prepares the virtual iPads with one click. Its
 *   vault passphrase is `--passphrase-file` / `KITTING_PASSPHRASE` when given, else a random one
 *   kept in `<data dir>/demo-passphrase` (mode 0600).
 * - `--mdm-dev` starts the reference MDM server (demo groups seeded) on another free port, logs
 *   its URL on stderr (its tokens are never printed) and configures the station's sync to it (URL
 *   and station token, sealed by the vault), so finished jobs drain to it. The station's syncer
 *   starts with the server whenever sync is configured.
 *
 * Output: exactly one line on stdout once everything listens,
 * `{"ready":true,"url":"http://127.0.0.1:PORT/?token=…"}` (the token is in it by contract, and
 * nowhere else); logs on stderr. SIGINT/SIGTERM stop everything (running jobs are persisted) and
 * exit 0. Exit 2 for bad usage, 1 when something cannot start.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { KitError } from '../../errors.ts';
import { IdentityService } from '../../identity/identity.ts';
import { PassphraseVault, resolvePassphrase } from '../../identity/vault.ts';
import { storeBlueprint } from '../../kitting/blueprint-store.ts';
import { startStationServer, type StationServer } from '../../server/server.ts';
import { PRESET_NAMES, startSimulator, type Simulator } from '../../simulator/index.ts';
import { startMdmServer, type MdmServer } from '../../simulator/mdm-server/index.ts';
import { Station } from '../../station.ts';
import { openStationDatabase } from '../../store/db.ts';
import { countIdentities } from '../../store/identities.ts';
import { listStoredBlueprints } from '../../kitting/blueprint-store.ts';
import { ctxOf, type GlobalOptions } from '../context.ts';
import { initialBlueprint } from './blueprint.ts';

interface ServeOptions {
  port: string;
  simulate?: string;
  preset: string;
  mdmDev?: boolean;
  rendererDir?: string;
}

/** The demo identity and blueprint names a fresh `--simulate` data folder gets. */
export const DEMO_NAME = 'demo';
/** The file keeping a demo vault's random passphrase inside the data folder. */
export const DEMO_PASSPHRASE_FILE = 'demo-passphrase';

function intArg(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < min || n > max) {
    throw new KitError('usage/invalid-argument', `${flag} wants an integer from ${min} to ${max}, got "${text}"`);
  }
  return n;
}

/** The built renderer: `dist/renderer` from the repo (src/cli/commands) or from the bundle (dist/cli). */
export function defaultRendererDir(here: string = import.meta.dirname): string {
  const candidates = [path.resolve(here, '../../../dist/renderer'), path.resolve(here, '../renderer')];
  return candidates.find((d) => fs.existsSync(path.join(d, 'index.html'))) ?? candidates[0] ?? 'dist/renderer';
}

/**
 * Gives a data folder without identities the demo identity and blueprint; answers the passphrase
 * file to use (the given one, else the demo's own).
 */
async function seedDemo(dataDir: string, passphraseFile: string | undefined): Promise<string | undefined> {
  let file = passphraseFile;
  if (file === undefined && (process.env.KITTING_PASSPHRASE ?? '') === '') {
    file = path.join(dataDir, DEMO_PASSPHRASE_FILE);
    if (!fs.existsSync(file)) {
      fs.mkdirSync(dataDir, { recursive: true });
      fs.writeFileSync(file, crypto.randomBytes(24).toString('base64url'), { mode: 0o600, flag: 'wx' });
    }
  }
  const db = openStationDatabase(dataDir);
  try {
    if (countIdentities(db) > 0) return file;
    const passphrase = resolvePassphrase(file);
    const identities = new IdentityService({
      db,
      actor: 'server',
      vault: () => PassphraseVault.open({ dataDir, passphrase, create: true }),
    });
    await identities.create({ org: 'Demo School', id: DEMO_NAME });
    if (!listStoredBlueprints(db).some((b) => b.name === DEMO_NAME)) {
      const bp = initialBlueprint({
        name: DEMO_NAME,
        identity: DEMO_NAME,
        orgName: 'Demo School',
        skip: 'all',
        allowPairing: true,
        store: true,
      });
      storeBlueprint(db, bp, { source: 'kitting serve demo' });
    }
    process.stderr.write(`kitting serve: demo identity and blueprint "${DEMO_NAME}" created in ${dataDir}\n`);
    return file;
  } finally {
    db.close();
  }
}

async function runServe(cmd: Command, opts: ServeOptions): Promise<void> {
  const ctx = ctxOf(cmd);
  const port = intArg('--port', opts.port, 0, 65535);
  const simulate = opts.simulate !== undefined ? intArg('--simulate', opts.simulate, 1, 256) : undefined;
  if (!(PRESET_NAMES as readonly string[]).includes(opts.preset)) {
    throw new KitError('usage/invalid-argument', `--preset must be one of ${PRESET_NAMES.join(', ')}`);
  }
  let root: Command = cmd;
  while (root.parent !== null) root = root.parent;
  const dataDirGiven = root.opts<GlobalOptions>().dataDir !== undefined || (process.env.KITTING_DATA_DIR ?? '') !== '';

  const stops: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.reverse()) {
      try {
        await stop();
      } catch (err) {
        process.stderr.write(`kitting serve: shutdown: ${err instanceof Error ? err.message : String(err)}\n`);
      }
    }
  };
  let server: StationServer;
  let devMdm: MdmServer | undefined;
  try {
    let dataDir = ctx.dataDir;
    let usbmuxd = ctx.usbmuxd;
    let passphraseFile = ctx.passphraseFile;
    if (simulate !== undefined) {
      if (!dataDirGiven) {
        const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-serve-demo-'));
        dataDir = tmp;
        stops.push(() => Promise.resolve(fs.rmSync(tmp, { recursive: true, force: true })));
      }
      const sim: Simulator = await startSimulator({ devices: simulate, preset: opts.preset });
      stops.push(() => sim.stop());
      usbmuxd = sim.usbmuxdAddress;
      // The station's activation goes to the simulator's fake Apple server (prepare reads it).
      process.env.KITTING_ACTIVATION_URL ??= sim.activationUrl;
      passphraseFile = await seedDemo(dataDir, passphraseFile);
      process.stderr.write(`kitting serve: ${simulate} virtual iPads (${opts.preset}) on ${usbmuxd}\n`);
      if (opts.mdmDev === true) {
        const mdm: MdmServer = await startMdmServer({ seedDemo: true, deviceCaPem: sim.deviceCaPem });
        stops.push(() => mdm.stop());
        devMdm = mdm;
        process.stderr.write(`kitting serve: reference MDM server at ${mdm.url}\n`);
      }
    } else if (opts.mdmDev === true) {
      const mdm: MdmServer = await startMdmServer({ seedDemo: true });
      stops.push(() => mdm.stop());
      devMdm = mdm;
      process.stderr.write(`kitting serve: reference MDM server at ${mdm.url}\n`);
    }
    const station = new Station({
      usbmuxdAddress: usbmuxd,
      dataDir,
      actor: 'server',
      ...(passphraseFile !== undefined ? { passphraseFile } : {}),
    });
    stops.push(() => station.close());
    if (devMdm !== undefined) {
      // The station's sync points at the reference MDM (this also starts its syncer).
      await station.configureSync({ url: devMdm.url, token: devMdm.token });
      process.stderr.write(`kitting serve: MDM sync configured to ${devMdm.url}\n`);
    }
    try {
      const started = await station.start();
      if (started.sync) process.stderr.write('kitting serve: MDM sync running\n');
    } catch (err) {
      process.stderr.write(
        `kitting serve: MDM sync not started (${err instanceof Error ? err.message : String(err)})\n`,
      );
    }
    try {
      await station.watcher();
    } catch (err) {
      process.stderr.write(
        `kitting serve: usbmuxd is not reachable (${err instanceof Error ? err.message : String(err)}); devices appear once it is\n`,
      );
    }
    server = await startStationServer({
      station,
      port,
      rendererDir: opts.rendererDir ?? defaultRendererDir(),
      version: process.env.npm_package_version ?? '0.1.0',
    });
    stops.push(() => server.close());
  } catch (err) {
    await stopAll();
    throw err;
  }
  process.stderr.write(`kitting serve: listening on ${server.origin}\n`);
  process.stdout.write(`${JSON.stringify({ ready: true, url: server.url })}\n`);
  await new Promise<void>((resolve) => {
    const done = (): void => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
  });
  await stopAll();
}

/** Registers `kitting serve`. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('headless station: HTTP + WebSocket API and the UI on 127.0.0.1 (prints one JSON ready line)')
    .option('--port <n>', 'TCP port on 127.0.0.1; 0 picks a free one', '0')
    .option('--simulate <n>', 'start a virtual fleet of N iPads and use it (demo data folder unless --data-dir)')
    .option('--preset <p>', `preset of the virtual iPads (${PRESET_NAMES.join(', ')})`, 'fresh')
    .option('--mdm-dev', 'also start the reference MDM server (URL logged on stderr)')
    .option('--renderer-dir <dir>', 'the built UI folder (default: dist/renderer)')
    .action(async (opts: ServeOptions, cmd: Command) => runServe(cmd, opts));
}
