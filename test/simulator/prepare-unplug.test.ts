/**
 * Interruptions of the prepare pipeline against the in-process virtual fleet: the connection cut
 * after every MCInstall request type (`disconnect-after=<RequestType>`, once: the request takes
 * effect, the answer is lost), and the cable pulled after every step (driven from the runner's
 * events, plugged back in shortly after). Running the same prepare again ends done, and the device
 * shows one configuration, one of each profile, the right name; no step took effect twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { expectAppliedOnce, expectPrepared } from '../helpers/prepare-checks.ts';
import { createPrepareEnv, prepareInProcess, type PrepareEnv } from '../helpers/prepare-env.ts';
import type { PrepareEvent } from '../../src/kitting/prepare.ts';

const ORG = 'Unplug Test School';
let env: PrepareEnv;
let sim: Simulator;
let bp: string;

beforeAll(async () => {
  env = await createPrepareEnv(ORG);
  env.profile('wifi.mobileconfig', 'com.example.wifi');
  env.profile('enroll.mobileconfig', 'com.example.mdm.enroll');
  bp = env.blueprint('sweep', {
    profiles: [{ kind: 'file', path: 'wifi.mobileconfig' }],
    enrollment: { method: 'staged', source: { kind: 'file', path: 'enroll.mobileconfig' } },
    finish: 'restart',
  });
  sim = await startSimulator({ devices: 0, timing: 'none' });
});
afterAll(async () => {
  await sim.stop();
  env.cleanup();
});

const EXPECTED = { org: ORG, profiles: ['com.example.wifi'], stored: 'com.example.mdm.enroll' };

/** An in-use device the technician has unlocked and trusted us on. */
function inUse(): string {
  const udid = sim.plug('in-use');
  sim.unlock(udid);
  sim.trust(udid, 'accept');
  return udid;
}

/** Resolves once the device is attached (a restart at `finish` takes it away for a moment). */
async function attached(udid: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (sim.list().find((d) => d.udid === udid)?.attached === true) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${udid} did not come back`);
}

/** Runs prepare until the device's job is done (at most `max` runs); returns how many runs it took. */
async function prepareUntilDone(udid: string, onEvent?: (e: PrepareEvent) => void, max = 4): Promise<number> {
  for (let n = 1; n <= max; n++) {
    await attached(udid);
    const { results } = await prepareInProcess(env, {
      usbmuxd: sim.usbmuxdAddress,
      udids: [udid],
      blueprint: bp,
      yes: true,
      activationUrl: sim.activationUrl,
      returnTimeoutMs: 3_000,
      ...(onEvent !== undefined ? { onEvent } : {}),
    });
    if (results[0]?.status === 'done') return n;
    if (sim.list().find((d) => d.udid === udid)?.attached !== true) await sim.replug(udid);
  }
  throw new Error(`${udid} was not done after ${max} runs`);
}

const REQUEST_TYPES = [
  'GetCloudConfiguration',
  'EraseDevice',
  'SetCloudConfiguration',
  'GetStoredProfile',
  'StoreProfile',
  'GetProfileList',
  'Escalate',
  'EscalateResponse',
  'InstallProfileSilent',
];

describe('the MCInstall connection cut after each request type', () => {
  it.each(REQUEST_TYPES)('disconnect-after=%s (once): resumes to done, nothing applied twice', async (type) => {
    const udid = inUse();
    sim.fault(udid, `disconnect-after=${type}`, { once: true });
    await prepareUntilDone(udid);
    expect(sim.state(udid).faults, 'the fault fired').toEqual([]);
    expectPrepared(sim.state(udid), EXPECTED);
    expectAppliedOnce(env, udid);
    // And a further run is a no-op on the device.
    const before = sim.state(udid).profiles;
    await prepareUntilDone(udid);
    expect(sim.state(udid).profiles).toEqual(before);
  });
});

const STEPS = [
  'identify',
  'check-mdm',
  'pair',
  'inspect',
  'erase',
  'activate',
  'configure',
  'enroll',
  'personalize',
  'finish',
];

describe('the cable pulled after each step', () => {
  it.each(STEPS)('unplugged after %s and plugged back: resumes to done, nothing applied twice', async (step) => {
    const udid = inUse();
    let pulled = false;
    const runs = await prepareUntilDone(udid, (e) => {
      if (pulled || e.type !== 'stepFinished' || e.stepId !== step || e.udid !== udid) return;
      pulled = true;
      if (sim.list().find((d) => d.udid === udid)?.attached === true) sim.unplug(udid);
      setTimeout(() => void sim.replug(udid), 150);
    });
    expect(pulled).toBe(true);
    expect(runs).toBeLessThanOrEqual(2);
    expectPrepared(sim.state(udid), EXPECTED);
    const applied = expectAppliedOnce(env, udid);
    expect(applied.erase).toBe(1);
    expect(applied.configure).toBe(1);
  });
});
