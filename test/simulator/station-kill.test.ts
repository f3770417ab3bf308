/**
 * Crash safety of the station under `kill -9`: a spawned fleet of 32 devices (28 fresh, 4 in use
 * that must be erased), `kitting prepare --all --max-parallel 8 --per-hub 2 --json --events`
 * SIGKILLed (by PID) after a random number of step events, 20 times. After every kill the station
 * database passes `PRAGMA integrity_check`; after the last one the same command finishes every
 * job; every device shows exactly one cloud configuration (ours), one of each profile, the right
 * name and at most one pairing per host; and the store's step events show no step applied twice on
 * a device.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlClient } from '../../src/simulator/index.ts';
import { expectAppliedOnce, expectPrepared } from '../helpers/prepare-checks.ts';
import { createPrepareEnv, type PrepareEnv } from '../helpers/prepare-env.ts';
import { allAttached, spawnSim, type SimProcess } from '../helpers/sim-process.ts';
import { spawnEvents } from '../helpers/station-events.ts';

const ORG = 'Crash Test School';
const KILLS = 20;
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
  bp = env.blueprint('crash', {
    profiles: [{ kind: 'file', path: 'wifi.mobileconfig' }],
    enrollment: { method: 'staged', source: { kind: 'file', path: 'enroll.mobileconfig' } },
  });
  sim = await spawnSim(['--devices', '28', '--preset', 'fresh', '--timing', 'none']);
  control = new ControlClient(sim.control);
  activationUrl = (await control.activationEndpoint()).url;
  const inUse: string[] = [];
  for (let i = 0; i < 4; i++) {
    const plugged = await sim.ctl(['plug', '--preset', 'in-use']);
    expect(plugged.code, plugged.stderr).toBe(0);
    inUse.push(plugged.stdout.trim());
  }
  for (const udid of inUse) {
    expect((await sim.ctl(['unlock', udid])).code).toBe(0);
    expect((await sim.ctl(['trust', udid, 'accept'])).code).toBe(0);
  }
  udids = [...sim.devices, ...inUse];
  expect(udids).toHaveLength(32);
}, 60_000);
afterAll(async () => {
  await sim.stop();
  env.cleanup();
});

const ARGS = (): string[] => [
  '--data-dir',
  env.dataDir,
  '--passphrase-file',
  env.passphraseFile,
  '--json',
  'prepare',
  '--all',
  '--blueprint',
  bp,
  '--yes',
  '--events',
  '--max-parallel',
  '8',
  '--per-hub',
  '2',
  '--activation-url',
  activationUrl,
  '--return-timeout',
  '10',
];

describe('kitting prepare --all killed with SIGKILL during a 32-device batch', () => {
  it(`${KILLS} kills at random step events: integrity ok each time, then one run finishes every job, nothing applied twice`, async () => {
    const kills: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      await allAttached(control, udids);
      const after = 1 + Math.floor(Math.random() * 40);
      kills.push(after);
      let steps = 0;
      const p = spawnEvents(sim.usbmuxd, ARGS(), (e, proc) => {
        if (e.type === 'stepStarted' || e.type === 'stepFinished') steps++;
        if (steps === after) proc.signal('SIGKILL');
      });
      const exit = await p.exited;
      // A run may finish before its kill point once little work is left: then it must be a clean 0.
      if (exit.signal !== 'SIGKILL') expect(exit.code, `run ${k} (kills ${kills.join(',')}): ${p.stderr()}`).toBe(0);
      expect(env.integrity(), `after kill ${k} (kills ${kills.join(',')})`).toBe('ok');
    }
    await allAttached(control, udids);
    const final = spawnEvents(sim.usbmuxd, ARGS());
    const exit = await final.exited;
    expect(exit.code, final.stderr()).toBe(0);
    const summary = final.lines[final.lines.length - 1] as { type: string; results?: { status: string }[] };
    expect(summary.type).toBe('summary');
    expect(summary.results).toHaveLength(32);
    expect(summary.results?.every((r) => r.status === 'done')).toBe(true);
    expect(env.integrity()).toBe('ok');
    const jobs = env.jobs();
    for (const udid of udids) {
      const state = await control.state(udid);
      expectPrepared(state, { org: ORG, profiles: ['com.example.wifi'], stored: 'com.example.mdm.enroll' });
      const hosts = state.pairings.map((p) => p.hostId);
      expect(new Set(hosts).size, `${udid} pairings`).toBe(hosts.length);
      expectAppliedOnce(env, udid);
      // Unfinished jobs do not linger: the newest job of every device is done.
      const mine = jobs.filter((j) => j.udid === udid);
      expect(mine[mine.length - 1]?.status).toBe('done');
      expect(mine.filter((j) => j.status === 'running' || j.status === 'pending')).toEqual([]);
    }
  }, 240_000);
});
