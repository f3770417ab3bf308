/**
 * Supervision identities in the prepare pipeline:
 * - the right identity pairs a supervised device that disallows pairing without any Trust prompt;
 * - a wrong identity fails the pair step with `pairing/failed`;
 * - the identity exported (`kitting identity export`) and imported into a second station
 *   (`kitting identity import`) still supervises the devices the first one prepared.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { createPrepareEnv, prepareInProcess, type PrepareEnv } from '../helpers/prepare-env.ts';
import { makeSupervisionIdentity } from '../helpers/sim-process.ts';

const ORG = 'Supervision Test School';
let env: PrepareEnv;
let sim: Simulator;
let bp: string;

beforeAll(async () => {
  env = await createPrepareEnv(ORG);
  bp = env.blueprint('locked-down', { allowPairing: false });
  sim = await startSimulator({ devices: 0, timing: 'none' });
});
afterAll(async () => {
  await sim.stop();
  env.cleanup();
});

function prepare(station: PrepareEnv, udid: string, blueprint: string) {
  return prepareInProcess(station, {
    usbmuxd: sim.usbmuxdAddress,
    udids: [udid],
    blueprint,
    activationUrl: sim.activationUrl,
  });
}

/** Prepares a fresh device with pairing disallowed; afterwards only supervised pairing reaches it. */
async function preparedLockedDown(): Promise<string> {
  const udid = sim.plug('fresh');
  const { results } = await prepare(env, udid, bp);
  expect(results).toEqual([expect.objectContaining({ status: 'done' })]);
  expect(sim.state(udid).cloudConfiguration).toMatchObject({ AllowPairing: false, IsSupervised: true });
  return udid;
}

describe('supervision identities', () => {
  it('the right identity: pairs supervised with no Trust prompt, even in trust-prompt mode', async () => {
    const udid = await preparedLockedDown();
    sim.forget(udid);
    sim.trust(udid, 'prompt');
    const { results, events } = await prepare(env, udid, bp);
    expect(results).toEqual([expect.objectContaining({ status: 'done' })]);
    expect(events.find((e) => e.type === 'stepFinished' && e.stepId === 'pair')).toMatchObject({
      status: 'done',
      details: { mode: 'supervised' },
    });
    expect(events.some((e) => e.type === 'stepProgressed' && e.kind === 'trust-pending')).toBe(false);
    expect(sim.state(udid).trustDialog).toBe('hidden');
    expect(sim.state(udid).pairings).toHaveLength(1);
  });

  it('a wrong identity: the pair step fails with pairing/failed', async () => {
    const other = makeSupervisionIdentity('Another Org');
    const foreign = await startSimulator({
      devices: 0,
      timing: 'none',
      identityP12: other.p12,
      identityPassword: other.password,
    });
    try {
      const udid = foreign.plug('supervised');
      const { results } = await prepareInProcess(env, {
        usbmuxd: foreign.usbmuxdAddress,
        udids: [udid],
        blueprint: bp,
        activationUrl: foreign.activationUrl,
      });
      expect(results).toEqual([
        expect.objectContaining({ status: 'failed', errorCode: 'pairing/failed', stepId: 'pair' }),
      ]);
      expect(foreign.state(udid).pairings).toHaveLength(0);
    } finally {
      await foreign.stop();
    }
  });

  it('exported and imported into a second station, the identity still supervises the same devices', async () => {
    const udid = await preparedLockedDown();
    const exported = path.join(env.dir, 'exported.p12');
    const passwordFile = path.join(env.dir, 'p12-password');
    fs.writeFileSync(passwordFile, 'export-password\n', { mode: 0o600 });
    const ex = await env.kitting(sim.usbmuxdAddress, [
      'identity',
      'export',
      env.identityId,
      '--out',
      exported,
      '--password-file',
      passwordFile,
    ]);
    expect(ex.code, ex.stderr).toBe(0);
    const second = await createPrepareEnv(ORG, { identity: false });
    try {
      const im = await second.kitting(sim.usbmuxdAddress, [
        '--json',
        'identity',
        'import',
        exported,
        '--password-file',
        passwordFile,
        '--id',
        'imported-org',
      ]);
      expect(im.code, im.stderr).toBe(0);
      expect(JSON.parse(im.stdout)).toMatchObject({ id: 'imported-org' });
      // The second station adds a profile: installing it silently needs escalation with the identity.
      second.profile('extra.mobileconfig', 'com.example.extra');
      const bp2 = second.blueprint('locked-down', {
        organization: { identityId: 'imported-org', displayName: ORG },
        allowPairing: false,
        profiles: [{ kind: 'file', path: 'extra.mobileconfig' }],
      });
      // Another Mac: the device does not know its pairing.
      sim.forget(udid);
      sim.trust(udid, 'prompt');
      const { results, events } = await prepare(second, udid, bp2);
      expect(results).toEqual([expect.objectContaining({ status: 'done' })]);
      expect(events.find((e) => e.type === 'stepFinished' && e.stepId === 'pair')).toMatchObject({
        details: { mode: 'supervised' },
      });
      for (const step of ['erase', 'configure']) {
        expect(events.find((e) => e.type === 'stepFinished' && e.stepId === step)).toMatchObject({ status: 'skipped' });
      }
      expect(events.find((e) => e.type === 'stepFinished' && e.stepId === 'personalize')).toMatchObject({
        status: 'done',
        details: { profiles: ['com.example.extra'] },
      });
      const s = sim.state(udid);
      expect(s.profiles.map((p) => p.identifier)).toContain('com.example.extra');
      expect(s.pendingProfiles).toEqual([]);
      expect(s.pairings).toHaveLength(1);
    } finally {
      second.cleanup();
    }
  });
});
