/**
 * The prepare pipeline from every simulator preset to its end, through the station's prepare
 * (in-process simulator, `--timing none`): fresh, activated, in-use (erase refused without
 * confirmation, done with it), supervised by our identity (supervised pairing, no Trust prompt),
 * activation-locked (fails with `activation/locked`); a second run changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { createPrepareEnv, prepareInProcess, type PrepareEnv } from '../helpers/prepare-env.ts';

let env: PrepareEnv;
let sim: Simulator;
let bp: string;

beforeAll(async () => {
  env = await createPrepareEnv();
  bp = env.blueprint('cart');
  sim = await startSimulator({ devices: 0, timing: 'none', identityP12: env.p12, identityPassword: env.p12Password });
});
afterAll(async () => {
  await sim.stop();
  env.cleanup();
});

/** The state JSON without what changes by itself (clocks, timestamps). */
function stable(udid: string): unknown {
  return JSON.parse(
    JSON.stringify(sim.state(udid), (k, v: unknown) =>
      /(At|Time|time|clock|Clock)$/.test(k) || k === 'clockOffsetMs' ? undefined : v,
    ),
  );
}

function prepare(udids: string[], extra: { yes?: boolean } = {}) {
  return prepareInProcess(env, {
    usbmuxd: sim.usbmuxdAddress,
    udids,
    blueprint: bp,
    activationUrl: sim.activationUrl,
    ...extra,
  });
}

describe('prepare from every preset', () => {
  it('fresh: activated, configured, supervised, named; a second run changes nothing', async () => {
    const udid = sim.plug('fresh');
    const { results } = await prepare([udid]);
    expect(results).toEqual([expect.objectContaining({ udid, status: 'done' })]);
    const s = sim.state(udid);
    expect(s.activationState).not.toBe('Unactivated');
    expect(s.supervised).toBe(true);
    expect(s.cloudConfiguration).not.toBeNull();
    expect(s.deviceName).toBe(`CART-${s.serial}`);
    const before = stable(udid);
    const pairings = s.pairings.length;
    const again = await prepare([udid]);
    expect(again.results).toEqual([expect.objectContaining({ udid, status: 'done' })]);
    expect(stable(udid)).toEqual(before);
    expect(sim.state(udid).pairings).toHaveLength(pairings);
    const second = env.jobs().find((j) => j.id === again.results[0]?.jobId);
    const changed = second?.steps.filter((st) => !['identify', 'check-mdm', 'inspect'].includes(st.stepId));
    expect(changed?.every((st) => st.status === 'skipped')).toBe(true);
  });

  it('activated: no activation needed, configured and named', async () => {
    const udid = sim.plug('activated');
    const { results, events } = await prepare([udid]);
    expect(results).toEqual([expect.objectContaining({ udid, status: 'done' })]);
    const activate = events.find((e) => e.type === 'stepFinished' && e.stepId === 'activate');
    expect(activate).toMatchObject({ status: 'skipped' });
    const s = sim.state(udid);
    expect(s.cloudConfiguration).toMatchObject({ IsSupervised: true, OrganizationName: 'Prepare Test School' });
    expect(s.deviceName).toBe(`CART-${s.serial}`);
  });

  it('in-use: refused without confirmation (the job waits), done with it; the device returns with a new DeviceID and is paired again', async () => {
    const udid = sim.plug('in-use');
    sim.unlock(udid);
    sim.trust(udid, 'accept');
    const refused = await prepare([udid]);
    expect(refused.results).toEqual([
      expect.objectContaining({ udid, status: 'waiting', waitingReason: 'erase-confirmation', stepId: 'erase' }),
    ]);
    expect(sim.state(udid).setupComplete).toBe(true);
    expect(sim.state(udid).cloudConfiguration).toBeNull();
    const hostsBefore = sim.state(udid).pairings.map((p) => p.hostId);
    expect(hostsBefore).toHaveLength(1);
    const idBefore = sim.list().find((d) => d.udid === udid)?.deviceId;
    const { results, events } = await prepare([udid], { yes: true });
    expect(results).toEqual([expect.objectContaining({ udid, status: 'done', jobId: refused.results[0]?.jobId })]);
    expect(events.some((e) => e.type === 'stepFinished' && e.stepId === 'erase' && e.status === 'done')).toBe(true);
    const idAfter = sim.list().find((d) => d.udid === udid)?.deviceId;
    expect(idAfter).not.toBe(idBefore);
    const s = sim.state(udid);
    expect(s.setupComplete).toBe(false);
    expect(s.pairings).toHaveLength(1);
    expect(s.cloudConfiguration).toMatchObject({ IsSupervised: true });
    expect(s.deviceName).toBe(`CART-${s.serial}`);
  });

  it('supervised by our identity: supervised pairing without any Trust prompt, then erased and prepared', async () => {
    const udid = sim.plug('supervised');
    sim.trust(udid, 'prompt');
    expect(sim.state(udid).pairings).toHaveLength(0);
    const { results, events } = await prepare([udid], { yes: true });
    expect(results).toEqual([expect.objectContaining({ udid, status: 'done' })]);
    expect(events.some((e) => e.type === 'stepProgressed' && e.kind === 'trust-pending')).toBe(false);
    expect(events.find((e) => e.type === 'stepFinished' && e.stepId === 'pair')).toMatchObject({
      status: 'done',
      details: { mode: 'supervised' },
    });
    const s = sim.state(udid);
    expect(s.supervised).toBe(true);
    expect(s.cloudConfiguration).toMatchObject({ IsSupervised: true, OrganizationName: 'Prepare Test School' });
  });

  it('activation-locked: fails at activate with activation/locked, nothing configured', async () => {
    const udid = sim.plug('activation-locked');
    const { results } = await prepare([udid]);
    expect(results).toEqual([
      expect.objectContaining({ udid, status: 'failed', errorCode: 'activation/locked', stepId: 'activate' }),
    ]);
    const job = env.jobs().find((j) => j.id === results[0]?.jobId);
    expect(job?.status).toBe('failed');
    expect(sim.state(udid).cloudConfiguration).toBeNull();
    expect(sim.state(udid).activationState).toBe('Unactivated');
  });
});

describe('prepare --all with --max-parallel', () => {
  it('every attached device, never more than N jobs at once', async () => {
    const fleet = await startSimulator({ devices: 4, preset: 'fresh', timing: 'none' });
    try {
      let running = 0;
      let peak = 0;
      const { results } = await prepareInProcess(env, {
        usbmuxd: fleet.usbmuxdAddress,
        udids: 'all',
        blueprint: bp,
        maxParallel: 2,
        activationUrl: fleet.activationUrl,
        onEvent: (e) => {
          if (e.type === 'jobCreated' || e.type === 'jobResumed') peak = Math.max(peak, ++running);
          if (e.type === 'jobFinished' || e.type === 'jobFailed' || e.type === 'jobWaiting') running--;
        },
      });
      expect(results.map((r) => r.udid).sort()).toEqual(fleet.udids().sort());
      expect(results.every((r) => r.status === 'done')).toBe(true);
      expect(peak).toBe(2);
    } finally {
      await fleet.stop();
    }
  });
});
