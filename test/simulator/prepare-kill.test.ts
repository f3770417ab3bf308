/**
 * `kitting prepare` killed mid-run: a spawned simulator, the CLI spawned with `--json --events`,
 * SIGKILLed (by PID) after a random step event on its stdout, several times; the same command then
 * finishes every device, the devices show one configuration, one of each profile, the right name,
 * no step took effect twice, and the station database passes `PRAGMA integrity_check`.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlClient, type DeviceStateJson } from '../../src/simulator/index.ts';
import { expectAppliedOnce, expectPrepared } from '../helpers/prepare-checks.ts';
import { createPrepareEnv, type PrepareEnv } from '../helpers/prepare-env.ts';
import { KITTING, NODE, ROOT, spawnSim, type SimProcess } from '../helpers/sim-process.ts';

const ORG = 'Kill Test School';
let env: PrepareEnv;
let sim: SimProcess;
let control: ControlClient;
let bp: string;
let activationUrl: string;
let udids: string[];

beforeAll(async () => {
  env = await createPrepareEnv(ORG);
  env.profile('wifi.mobileconfig', 'com.example.wifi');
  env.profile('enroll.mobileconfig', 'com.example.mdm.enroll');
  bp = env.blueprint('kill', {
    profiles: [{ kind: 'file', path: 'wifi.mobileconfig' }],
    enrollment: { method: 'staged', source: { kind: 'file', path: 'enroll.mobileconfig' } },
  });
  sim = await spawnSim(['--devices', '1', '--preset', 'fresh', '--timing', 'none']);
  control = new ControlClient(sim.control);
  activationUrl = (await control.activationEndpoint()).url;
  const plugged = await sim.ctl(['plug', '--preset', 'in-use']);
  expect(plugged.code, plugged.stderr).toBe(0);
  const inUse = plugged.stdout.trim();
  for (const args of [
    ['unlock', inUse],
    ['trust', inUse, 'accept'],
  ]) {
    const r = await sim.ctl(args);
    expect(r.code, r.stderr).toBe(0);
  }
  udids = [...sim.devices, inUse];
});
afterAll(async () => {
  await sim.stop();
  env.cleanup();
});

async function bothAttached(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const states = await Promise.all(udids.map((u) => control.state(u)));
    if (states.every((s) => s.attached)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the devices did not come back');
}

const ARGS = (): string[] => [
  KITTING,
  '--data-dir',
  env.dataDir,
  '--passphrase-file',
  env.passphraseFile,
  '--json',
  'prepare',
  ...udids,
  '--blueprint',
  bp,
  '--yes',
  '--events',
  '--max-parallel',
  '2',
  '--activation-url',
  activationUrl,
  '--return-timeout',
  '5',
];

/** Spawns the CLI; kills it (SIGKILL, by PID) after `killAfter` step events; resolves with its exit and stdout lines. */
function runCli(killAfter: number | null): Promise<{ code: number | null; signal: string | null; lines: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, ARGS(), {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, USBMUXD_SOCKET_ADDRESS: sim.usbmuxd, KITTING_LOG: 'error' },
    });
    const lines: string[] = [];
    let buf = '';
    let steps = 0;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (s: string) => {
      buf += s;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        const e = JSON.parse(line) as { type?: string };
        if (e.type === 'stepStarted' || e.type === 'stepFinished') steps++;
        if (killAfter !== null && steps === killAfter && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      }
    });
    child.stderr.resume();
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ code, signal, lines }));
  });
}

describe('kitting prepare killed mid-run', () => {
  it('SIGKILL after random step events, four times: the same command finishes every device', async () => {
    const kills = [3, 7, 12, 18].map((base) => base + Math.floor(Math.random() * 5));
    for (const k of kills) {
      await bothAttached();
      const r = await runCli(k);
      expect(r.signal, `killed after ${k} step events (${kills.join(', ')})`).toBe('SIGKILL');
    }
    await bothAttached();
    const final = await runCli(null);
    expect(final.code, final.lines.join('\n')).toBe(0);
    const summary = JSON.parse(final.lines[final.lines.length - 1] ?? '{}') as {
      type?: string;
      results?: { udid: string; status: string }[];
    };
    expect(summary.type).toBe('summary');
    expect(summary.results?.map((x) => x.status)).toEqual(['done', 'done']);
    for (const udid of udids) {
      const state: DeviceStateJson = await control.state(udid);
      expectPrepared(state, { org: ORG, profiles: ['com.example.wifi'], stored: 'com.example.mdm.enroll' });
      expectAppliedOnce(env, udid);
    }
    expect(env.integrity()).toBe('ok');
  });
});
