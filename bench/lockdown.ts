/**
 * Device client speed against the virtual fleet (a `kitting sim` child process, over loopback):
 *
 * - in-session `GetValue` round trip, p50 and p99 (target p50 ≤ 0.3 ms), with the simulator as a
 *   separate process and, for comparison, in this process (no scheduler hops between processes);
 * - `info` (every lockdown value, in a TLS session) for 64 devices: our client in-process and
 *   concurrent, beside libimobiledevice's `ideviceinfo` run for the same 64 devices (64 processes
 *   at once) in the same run; target: less time than ideviceinfo.
 *
 * The devices are paired once beforehand (records saved through usbmuxd, which ideviceinfo reads
 * too), so both sides measure a paired `info`, not pairing.
 *
 * `npm run bench lockdown` (via bench/run.ts) or standalone: `node_modules/.bin/node bench/lockdown.ts`.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDevice } from '../src/device/device.ts';
import { UsbmuxClient } from '../src/device/usbmux.ts';
import { startSimulator } from '../src/simulator/index.ts';
import { Station } from '../src/station.ts';
import type { BenchResult } from './types.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const NODE = path.join(ROOT, 'node_modules/.bin/node');
const KITTING = path.join(ROOT, 'bin/kitting.js');
const DEVICES = 64;

interface Sim {
  usbmuxd: string;
  devices: string[];
  stop(): Promise<void>;
}

async function startSim(devices: number): Promise<Sim> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-bench-'));
  const child = spawn(
    NODE,
    [
      KITTING,
      'sim',
      '--devices',
      String(devices),
      '--preset',
      'fresh',
      '--timing',
      'none',
      '--socket',
      path.join(dir, 'usbmuxd.sock'),
    ],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, KITTING_LOG: 'error' },
    },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = await new Promise<{ usbmuxd: string; devices: string[] }>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`kitting sim not ready within 60 s: ${stderr}`)), 60_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(JSON.parse(out.slice(0, nl)) as { usbmuxd: string; devices: string[] });
      }
    });
    child.once('exit', (code) => reject(new Error(`kitting sim exited (${String(code)}): ${stderr}`)));
  });
  return {
    ...ready,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function getValueRounds(run: () => Promise<unknown>, warmup = 300, rounds = 3000): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < warmup; i++) await run();
  for (let i = 0; i < rounds; i++) {
    const t = process.hrtime.bigint();
    await run();
    out.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return out.sort((a, b) => a - b);
}

/** The same round trip with the simulator in this process: client and device CPU only, no scheduler hops between processes. */
async function inProcessRounds(): Promise<number[]> {
  const sim = await startSimulator({ devices: 1, preset: 'fresh', timing: 'none' });
  try {
    const session = await openDevice(new UsbmuxClient(sim.usbmuxdAddress), sim.udids()[0] as string);
    try {
      return await getValueRounds(() => session.lockdown.getValue(undefined, 'ProductVersion'));
    } finally {
      await session.close();
    }
  } finally {
    await sim.stop();
  }
}

function ideviceinfo(udid: string, usbmuxd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      'ideviceinfo',
      ['-u', udid],
      { env: { ...process.env, USBMUXD_SOCKET_ADDRESS: usbmuxd }, timeout: 120_000 },
      (err, stdout) => {
        if (err !== null) reject(new Error(`ideviceinfo -u ${udid}: ${err.message}`));
        else if (!stdout.includes(`UniqueDeviceID: ${udid}`))
          reject(new Error(`ideviceinfo -u ${udid}: unexpected output`));
        else resolve();
      },
    );
  });
}

/** Runs the lockdown bench group. */
export async function run(): Promise<BenchResult[]> {
  const sim = await startSim(DEVICES);
  try {
    const usbmux = new UsbmuxClient(sim.usbmuxd);
    const station = new Station({ usbmuxdAddress: sim.usbmuxd, dataDir: os.tmpdir() });
    const paired = await station.pairAll();
    const failed = paired.filter((r) => 'error' in r);
    if (failed.length > 0) throw new Error(`pairing failed for ${failed.length} devices`);

    // 1. In-session GetValue round trip.
    const first = sim.devices[0] as string;
    const session = await openDevice(usbmux, first);
    let rounds: number[];
    try {
      rounds = await getValueRounds(() => session.lockdown.getValue(undefined, 'ProductVersion'));
    } finally {
      await session.close();
    }
    const p50 = percentile(rounds, 50);
    const p99 = percentile(rounds, 99);
    const local = await inProcessRounds();

    // 2. info for every device: ours (in-process, concurrent), then ideviceinfo (64 processes at once).
    await Promise.all(sim.devices.slice(0, 4).map((u) => station.info(u))); // warm-up
    let t = performance.now();
    const infos = await Promise.all(sim.devices.map((u) => station.info(u)));
    const oursMs = performance.now() - t;
    if (infos.some((v) => v === undefined)) throw new Error('an info came back empty');
    await ideviceinfo(first, sim.usbmuxd); // warm-up (page cache)
    t = performance.now();
    await Promise.all(sim.devices.map((u) => ideviceinfo(u, sim.usbmuxd)));
    const theirsMs = performance.now() - t;
    const ratio = theirsMs / oursMs;

    return [
      { name: 'GetValue in session: p50', value: p50, unit: 'ms', target: '≤ 0.3 ms', ok: p50 <= 0.3 },
      { name: 'GetValue in session: p99', value: p99, unit: 'ms' },
      {
        name: 'GetValue, sim in-process: p50',
        value: percentile(local, 50),
        unit: 'ms',
        target: '≤ 0.3 ms',
        ok: percentile(local, 50) <= 0.3,
      },
      { name: 'GetValue, sim in-process: p99', value: percentile(local, 99), unit: 'ms' },
      { name: `info × ${DEVICES}: ours (concurrent)`, value: oursMs, unit: 'ms' },
      { name: `info × ${DEVICES}: ideviceinfo (64 processes)`, value: theirsMs, unit: 'ms' },
      { name: 'info: ideviceinfo time / ours', value: ratio, unit: '×', target: '> 1× (ours faster)', ok: ratio > 1 },
    ];
  } finally {
    await sim.stop();
  }
}

if (process.argv[1] !== undefined && import.meta.filename === path.resolve(process.argv[1])) {
  const results = await run();
  const width = Math.max(...results.map((r) => r.name.length));
  for (const r of results) {
    const mark = r.ok === undefined ? '' : r.ok ? '  ✓' : '  ✗ (missed)';
    const target = r.target !== undefined ? `   target ${r.target}${mark}` : '';
    process.stdout.write(`${r.name.padEnd(width)}  ${r.value.toFixed(3).padStart(10)} ${r.unit}${target}\n`);
  }
}
