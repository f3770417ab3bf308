/**
 * The station under a full cart: `Station.prepare` on every device of a spawned virtual fleet, the
 * fleet and the station each in its own process, so the figures are the station's alone.
 *
 * - 64 devices with `--timing none` (the devices answer at once): wall time of the batch (target
 *   ≤ 3 s), station CPU per device (`process.cpuUsage` of the station process over the batch;
 *   target ≤ 25 ms), peak RSS of the station process (`resourceUsage().maxRSS`; target ≤ 150 MB).
 * - 8 devices with `--timing realistic --time-scale 0.1`: the scheduler's overhead, the time from
 *   the first job created to the last one finished divided by the slowest device's own time (its
 *   first job event to `jobFinished`; target ≤ 1.05×). The batch's start-up before its first job
 *   (data folder, vault, blueprint, watcher; once per batch) is printed beside it, with the ratio
 *   of the whole call.
 *
 * `npm run bench -- station` (via bench/run.ts) or standalone: `node_modules/.bin/node bench/station.ts`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { IdentityService } from '../src/identity/identity.ts';
import { MIN_SCRYPT, PassphraseVault } from '../src/identity/vault.ts';
import { ControlClient } from '../src/simulator/index.ts';
import { openStationDatabase } from '../src/store/db.ts';
import type { BenchResult } from './types.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const PASSPHRASE = 'bench-station-passphrase';

interface Fleet {
  usbmuxd: string;
  /** The fleet's own fake Apple activation server. */
  activationUrl: string;
  stop(): Promise<void>;
}

/** Spawns `kitting sim` and waits for its ready line. */
async function spawnFleet(args: string[], dir: string): Promise<Fleet> {
  const child = spawn(
    process.execPath,
    [
      // BENCH_CPU_PROF_FLEET=DIR: a V8 CPU profile of the fleet process (its CPU shares the 2 cores).
      ...(process.env.BENCH_CPU_PROF_FLEET !== undefined
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_FLEET}`]
        : []),
      path.join(ROOT, 'src/cli/main.ts'),
      'sim',
      ...args,
      '--socket',
      path.join(dir, 'usbmuxd.sock'),
    ],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, KITTING_LOG: 'error' },
    },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = await new Promise<{ usbmuxd: string; control: string }>((resolve, reject) => {
    let out = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (s: string) => {
      out += s;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)) as { usbmuxd: string; control: string });
    });
    void exited.then(() => reject(new Error('kitting sim exited before it was ready')));
  });
  const activationUrl = (await new ControlClient(ready.control).activationEndpoint()).url;
  return {
    usbmuxd: ready.usbmuxd,
    activationUrl,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A data folder with one identity and a blueprint file; returns the blueprint path. */
async function stationDir(dir: string): Promise<{ dataDir: string; passphraseFile: string; blueprint: string }> {
  const dataDir = path.join(dir, 'data');
  const passphraseFile = path.join(dir, 'passphrase');
  fs.writeFileSync(passphraseFile, PASSPHRASE, { mode: 0o600 });
  const db = openStationDatabase(dataDir);
  try {
    const service = new IdentityService({
      db,
      vault: () => PassphraseVault.open({ dataDir, passphrase: PASSPHRASE, createWith: MIN_SCRYPT }),
    });
    await service.create({ org: 'Bench School', id: 'bench-org' });
  } finally {
    db.close();
  }
  const blueprint = path.join(dir, 'bench.json');
  fs.writeFileSync(
    blueprint,
    JSON.stringify({
      version: 1,
      name: 'bench',
      organization: { identityId: 'bench-org', displayName: 'Bench School' },
      supervise: true,
      allowPairing: true,
      skipSetup: 'all',
      enrollment: { method: 'none' },
      naming: { template: 'CART-{serial}', start: 1 },
      locale: { language: 'ja', region: 'ja_JP', timeZone: 'Asia/Tokyo' },
      profiles: [],
      eraseIfNeeded: true,
      finish: 'none',
    }),
  );
  return { dataDir, passphraseFile, blueprint };
}

/** What the station process reports of its batch (one JSON line on stdout, `bench/station-child.ts`). */
export interface BatchFigures {
  wallMs: number;
  cpuMs: number;
  peakRssMb: number;
  /** RSS of the station process before the batch (modules loaded, station created). */
  rssBeforeMb: number;
  heapUsedAfterMb: number;
  done: number;
  slowestDeviceMs: number;
  startupMs: number;
  jobsMs: number;
}

/**
 * Bundles `bench/station-child.ts` to plain JavaScript (`dist/bench/station-child.js`, the way
 * `npm run build` bundles the CLI that ships), so the station process is measured as it runs in
 * the product: without Node's TypeScript stripper, whose WebAssembly compiler alone adds ~70 MB of
 * RSS to a process that imports the station's sources.
 */
async function buildChild(): Promise<string> {
  const { build } = await import('vite');
  const outDir = path.join(ROOT, 'dist', 'bench');
  await build({
    root: ROOT,
    configFile: false,
    logLevel: 'warn',
    build: {
      ssr: path.join(ROOT, 'bench', 'station-child.ts'),
      outDir,
      emptyOutDir: true,
      target: 'node22',
      sourcemap: false,
      minify: false,
      rollupOptions: { output: { format: 'es', entryFileNames: 'station-child.js' } },
    },
  });
  return path.join(outDir, 'station-child.js');
}

let childScript: Promise<string> | undefined;

/**
 * Runs one batch: the fleet in one process, the station in another (`bench/station-child.ts`, the
 * way `kitting prepare` runs), so CPU and peak RSS are the station process's own, read by it from
 * `process.cpuUsage()` and `process.resourceUsage().maxRSS` (no sampling timer adding its own work).
 */
async function batch(devices: number, simArgs: string[], maxParallel: number): Promise<BatchFigures> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-bench-station-'));
  const fleet = await spawnFleet(['--devices', String(devices), '--preset', 'fresh', ...simArgs], dir);
  try {
    const { dataDir, passphraseFile, blueprint } = await stationDir(dir);
    const config = { usbmuxd: fleet.usbmuxd, activationUrl: fleet.activationUrl, dataDir, passphraseFile, blueprint };
    const child = spawn(
      process.execPath,
      [
        // BENCH_CPU_PROF=DIR writes a V8 CPU profile of the station process there (for perf work).
        ...(process.env.BENCH_NODE_FLAGS !== undefined ? process.env.BENCH_NODE_FLAGS.split(' ') : []),
        ...(process.env.BENCH_CPU_PROF !== undefined
          ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`]
          : []),
        await (childScript ??= buildChild()),
        JSON.stringify({ ...config, maxParallel }),
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, KITTING_LOG: 'error' } },
    );
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (s: string) => {
      out += s;
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    const line = out.split('\n').find((l) => l.startsWith('{'));
    if (code !== 0 || line === undefined) throw new Error(`the station process exited with ${String(code)}: ${out}`);
    return JSON.parse(line) as BatchFigures;
  } finally {
    await fleet.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs both batches and returns the figures. */
export async function run(): Promise<BenchResult[]> {
  const fast = await batch(64, ['--timing', 'none'], 64);
  const real = await batch(8, ['--timing', 'realistic', '--time-scale', '0.1'], 8);
  // The scheduler's overhead: its jobs (first created to last finished) against the slowest of them;
  // the batch's start-up is printed beside it, and the whole call's wall time too.
  const ratio = real.slowestDeviceMs > 0 ? real.jobsMs / real.slowestDeviceMs : Number.NaN;
  const ratioWhole = real.slowestDeviceMs > 0 ? real.wallMs / real.slowestDeviceMs : Number.NaN;
  return [
    {
      name: 'station 64 devices (timing none): devices done',
      value: fast.done,
      unit: 'devices',
      target: '64',
      ok: fast.done === 64,
    },
    {
      name: 'station 64 devices (timing none): wall time',
      value: fast.wallMs / 1000,
      unit: 's',
      target: '≤ 3 s',
      ok: fast.wallMs <= 3000,
    },
    {
      name: 'station 64 devices (timing none): CPU per device',
      value: fast.cpuMs / 64,
      unit: 'ms',
      target: '≤ 25 ms',
      ok: fast.cpuMs / 64 <= 25,
    },
    {
      name: 'station 64 devices (timing none): peak RSS',
      value: fast.peakRssMb,
      unit: 'MB',
      target: '≤ 150 MB',
      ok: fast.peakRssMb <= 150,
    },
    {
      name: 'station 64 devices (timing none): RSS before the batch (modules loaded, station opened)',
      value: fast.rssBeforeMb,
      unit: 'MB',
    },
    {
      name: 'station 64 devices (timing none): start-up before the first job',
      value: fast.startupMs / 1000,
      unit: 's',
    },
    {
      name: 'station 8 devices (realistic ×0.1): devices done',
      value: real.done,
      unit: 'devices',
      target: '8',
      ok: real.done === 8,
    },
    { name: 'station 8 devices (realistic ×0.1): batch wall time', value: real.wallMs / 1000, unit: 's' },
    {
      name: 'station 8 devices (realistic ×0.1): start-up before the first job',
      value: real.startupMs / 1000,
      unit: 's',
    },
    {
      name: 'station 8 devices (realistic ×0.1): first job created to last finished',
      value: real.jobsMs / 1000,
      unit: 's',
    },
    { name: 'station 8 devices (realistic ×0.1): slowest device', value: real.slowestDeviceMs / 1000, unit: 's' },
    {
      name: 'station overhead (jobs ÷ slowest device)',
      value: ratio,
      unit: '×',
      target: '≤ 1.05×',
      ok: ratio <= 1.05,
    },
    { name: 'station overhead with start-up (whole call ÷ slowest device)', value: ratioWhole, unit: '×' },
  ];
}

if (import.meta.filename === process.argv[1]) {
  for (const r of await run())
    process.stdout.write(
      `${r.name}: ${r.value.toFixed(2)} ${r.unit}${r.target !== undefined ? ` (target ${r.target})` : ''}\n`,
    );
}
