/** The job runner over a real SQLite file and the in-memory device model (test/helpers/fake-kit-device.ts). */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { DEFAULT_RETRY, retryDelayMs } from '../../src/kitting/runner.ts';
import { STEPS } from '../../src/kitting/steps.ts';
import { getResult, listJobs, listStepEvents } from '../../src/store/jobs.ts';
import { FakeKitDevice, Harness, TEST_CERTIFICATE, presetState, testBlueprint } from '../helpers/fake-kit-device.ts';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(() => {
  h.cleanup();
});

function statuses(job: { steps: readonly { stepId: string; status: string }[] }): Record<string, string> {
  return Object.fromEntries(job.steps.map((s) => [s.stepId, s.status]));
}

/** The device as the blueprint wants it, whatever way it got there. */
function expectPrepared(device: FakeKitDevice, name = 'G3-001'): void {
  const s = device.state;
  expect(s.activationState).toBe('Activated');
  expect(s.cloudConfiguration?.OrganizationName).toBe('Test School');
  expect(s.cloudConfiguration?.IsSupervised).toBe(true);
  expect(s.cloudConfiguration?.ConfigurationURL).toBe('https://mdm.example.com/enroll/grade3');
  expect(s.cloudConfiguration?.SupervisorHostCertificates).toEqual([TEST_CERTIFICATE]);
  expect(s.profiles.map((p) => p.identifier).sort()).toEqual(['org.example.restrictions', 'org.example.wifi']);
  expect(s.settings).toEqual({ deviceName: name, language: 'ja', locale: 'ja_JP', timeZone: 'Asia/Tokyo' });
}

describe('the pipeline from each starting state', () => {
  it('fresh (unactivated, in Setup Assistant): activates, configures, enrolls, names, restarts', async () => {
    const device = new FakeKitDevice(presetState('fresh'));
    const { runner } = h.runner();
    const out = await runner.runJob({ device, blueprint: testBlueprint() });
    expect(out.status).toBe('done');
    expect(out.error).toBeNull();
    expect(statuses(out.job)).toEqual({
      identify: 'done',
      'check-mdm': 'done',
      pair: 'done',
      inspect: 'done',
      erase: 'skipped',
      activate: 'done',
      configure: 'done',
      enroll: 'done',
      personalize: 'done',
      finish: 'done',
    });
    expect(out.job.serial).toBe('DMPXK0ABCDEF');
    expect(out.job.seqN).toBe(1);
    expectPrepared(device);
    expect(device.applied.map((a) => a.method)).toEqual([
      'pair',
      'activate',
      'setCloudConfiguration',
      'installProfile',
      'writeSettings',
      'installProfile',
      'restart',
    ]);
    expect(getResult(h.open(), out.jobId)).toMatchObject({ outcome: 'done', serial: 'DMPXK0ABCDEF' });
  });

  it('activated (in Setup Assistant): no activation, the rest as fresh', async () => {
    const device = new FakeKitDevice(presetState('activated'));
    const out = await h.runner().runner.runJob({ device, blueprint: testBlueprint() });
    expect(out.status).toBe('done');
    expect(statuses(out.job).activate).toBe('skipped');
    expect(device.appliedCount('activate')).toBe(0);
    expectPrepared(device);
  });

  it('in use (setup complete), eraseIfNeeded and confirmed: erases, waits, pairs again, activates, prepares', async () => {
    const device = new FakeKitDevice(presetState('in-use'));
    const out = await h.runner().runner.runJob({ device, blueprint: testBlueprint(), confirmedErase: true });
    expect(out.status).toBe('done');
    expect(statuses(out.job).erase).toBe('done');
    expect(device.appliedCount('erase')).toBe(1);
    expect(device.calls).toContain('waitForReturn');
    expect(device.appliedCount('pair')).toBe(2);
    expect(device.state.profiles.map((p) => p.identifier)).not.toContain('com.example.personal');
    expectPrepared(device);
  });

  it('supervised by another organization: erases and prepares with our configuration', async () => {
    const device = new FakeKitDevice(presetState('foreign'));
    const out = await h.runner().runner.runJob({ device, blueprint: testBlueprint(), confirmedErase: true });
    expect(out.status).toBe('done');
    const facts = listStepEvents(h.open(), out.jobId, 'factsRecorded:inspection')[0]?.details;
    expect(facts).toMatchObject({ cloudConfiguration: 'different', supervisedByUs: false, setupComplete: true });
    expect(device.appliedCount('erase')).toBe(1);
    expectPrepared(device);
  });

  it('in use without eraseIfNeeded: fails with kitting/erase-not-allowed and touches nothing', async () => {
    const device = new FakeKitDevice(presetState('foreign'));
    const out = await h.runner().runner.runJob({
      device,
      blueprint: testBlueprint({ eraseIfNeeded: false }),
      confirmedErase: true,
    });
    expect(out.status).toBe('failed');
    expect(out.error?.code).toBe('kitting/erase-not-allowed');
    expect(out.error?.details?.reason).toBe('foreign-configuration');
    expect(String(out.error?.details?.differingKeys)).toContain('OrganizationName');
    expect(out.job.steps.find((s) => s.stepId === 'erase')).toMatchObject({
      status: 'failed',
      errorCode: 'kitting/erase-not-allowed',
    });
    expect(device.applied.map((a) => a.method)).toEqual(['pair']);
    expect(getResult(h.open(), out.jobId)?.outcome).toBe('failed');
  });

  it('in use with eraseIfNeeded but no confirmation: waits for it, and continues the same job once confirmed', async () => {
    const device = new FakeKitDevice(presetState('in-use'));
    const { runner } = h.runner();
    const first = await runner.runJob({ device, blueprint: testBlueprint() });
    expect(first.status).toBe('waiting');
    expect(first.waitingReason).toBe('erase-confirmation');
    expect(first.error?.code).toBe('kitting/erase-not-confirmed');
    expect(first.job.status).toBe('waiting');
    expect(device.appliedCount('erase')).toBe(0);
    const second = await runner.resume(device.udid, device, { confirmedErase: true });
    expect(second?.jobId).toBe(first.jobId);
    expect(second?.status).toBe('done');
    expect(device.appliedCount('erase')).toBe(1);
    expectPrepared(device);
  });

  it('already prepared by us and set up: reaches done without a single mutating call', async () => {
    const device = new FakeKitDevice(presetState('fresh'));
    const { runner } = h.runner();
    expect((await runner.runJob({ device, blueprint: testBlueprint() })).status).toBe('done');
    device.completeSetup();
    device.applied.length = 0;
    const out = await runner.runJob({ device, blueprint: testBlueprint() });
    expect(out.status).toBe('done');
    expect(device.applied).toEqual([]);
    expect(statuses(out.job)).toMatchObject({ erase: 'skipped', configure: 'skipped', finish: 'skipped' });
  });

  it('already prepared by us, seen by another station: only pairs (supervised when pairing is disallowed)', async () => {
    const blueprint = testBlueprint({ allowPairing: false });
    const device = new FakeKitDevice(presetState('fresh'));
    expect((await h.runner().runner.runJob({ device, blueprint })).status).toBe('done');
    device.completeSetup();
    device.applied.length = 0;
    device.state.paired = false; // the other station holds no pair record
    const other = new Harness();
    try {
      const out = await other.runner().runner.runJob({ device, blueprint });
      expect(out.status).toBe('done');
      expect(device.applied).toEqual([{ method: 'pair', detail: 'supervised' }]);
      expect(statuses(out.job)).toMatchObject({
        pair: 'done',
        erase: 'skipped',
        activate: 'skipped',
        configure: 'skipped',
        enroll: 'skipped',
        personalize: 'skipped',
        finish: 'skipped',
      });
    } finally {
      other.cleanup();
    }
  });
});

describe('idempotence', () => {
  it('a second run on a finished device changes nothing and keeps its name number', async () => {
    const device = new FakeKitDevice(presetState('fresh'));
    const { runner } = h.runner();
    const first = await runner.runJob({ device, blueprint: testBlueprint() });
    const before = device.applied.length;
    const second = await runner.runJob({ device, blueprint: testBlueprint() });
    expect(second.status).toBe('done');
    expect(second.jobId).not.toBe(first.jobId);
    expect(second.job.seqN).toBe(first.job.seqN);
    expect(device.applied.length).toBe(before);
    expect(
      second.job.steps.filter((s) => !['identify', 'check-mdm', 'inspect'].includes(s.stepId)).map((s) => s.status),
    ).toEqual(Array(7).fill('skipped'));
  });

  it('numbers devices of one batch 1, 2, … and each device keeps its number', async () => {
    const a = new FakeKitDevice(presetState('fresh', { udid: 'UDID-A', serial: 'SERA' }));
    const b = new FakeKitDevice(presetState('fresh', { udid: 'UDID-B', serial: 'SERB' }));
    const { runner } = h.runner();
    await Promise.all([
      runner.runJob({ device: a, blueprint: testBlueprint() }),
      runner.runJob({ device: b, blueprint: testBlueprint() }),
    ]);
    const names = [a.state.settings.deviceName, b.state.settings.deviceName].sort();
    expect(names).toEqual(['G3-001', 'G3-002']);
    const nameA = a.state.settings.deviceName;
    a.state.settings.deviceName = 'renamed by someone';
    await runner.runJob({ device: a, blueprint: testBlueprint() });
    expect(a.state.settings.deviceName).toBe(nameA);
  });

  it('refuses a second concurrent job for the same UDID', async () => {
    const device = new FakeKitDevice(presetState('fresh'));
    device.addFault({ method: 'identify', action: { kind: 'hang' } });
    const { runner } = h.runner();
    const controller = new AbortController();
    const first = runner.runJob({ device, blueprint: testBlueprint(), signal: controller.signal });
    await expect(runner.runJob({ device, blueprint: testBlueprint() })).rejects.toMatchObject({
      code: 'usage/invalid-argument',
    });
    controller.abort();
    expect((await first).status).toBe('cancelled');
  });
});

describe('retries', () => {
  it('retries a retryable code with exponential backoff, then succeeds', async () => {
    const device = new FakeKitDevice(presetState('fresh'));
    const lost = new KitError('device/connection-lost', 'reset');
    device.addFault({ method: 'setCloudConfiguration', action: { kind: 'throw', error: lost } });
    device.addFault({ method: 'setCloudConfiguration', nth: 2, action: { kind: 'throw', error: lost } });
    const out = await h.runner().runner.runJob({ device, blueprint: testBlueprint() });
    expect(out.status).toBe('done');
    expect(h.clock.sleeps).toEqual([1000, 2000]);
    expect(out.job.steps.find((s) => s.stepId === 'configure')?.attempts).toBe(3);
    const failed = h.events.filter((e) => e.type === 'stepFailed');
    expect(failed.map((e) => (e.type === 'stepFailed' ? [e.code, e.retryInMs] : null))).toEqual([
      ['device/connection-lost', 1000],
      ['device/connection-lost', 2000],
    ]);
    expect(device.appliedCount('setCloudConfiguration')).toBe(1);
  });

  it('gives up after maxAttempts and fails with the code', async () => {
    const device = new FakeKitDevice(presetState('fresh'));
    for (let i = 0; i < 10; i++) {
      device.addFault({
        method: 'activate',
        nth: i + 1,
        action: { kind: 'throw', error: new KitError('device/timeout', 'slow') },
      });
    }
    const out = await h.runner({ retry: { maxAttempts: 3, baseDelayMs: 500 } }).runner.runJob({
      device,
      blueprint: testBlueprint(),
    });
    expect(out.status).toBe('failed');
    expect(out.error?.code).toBe('device/timeout');
    expect(h.clock.sleeps).toEqual([500, 1000]);
    expect(out.job.steps.find((s) => s.stepId === 'activate')).toMatchObject({
      status: 'failed',
      attempts: 3,
      errorCode: 'device/timeout',
    });
    expect(out.job.steps.find((s) => s.stepId === 'configure')?.status).toBe('pending');
  });

  it('never retries a non-retryable code', async () => {
    const device = new FakeKitDevice(presetState('fresh'));
    device.addFault({
      method: 'setCloudConfiguration',
      action: { kind: 'throw', error: new KitError('mcinstall/failed', 'MCCloudConfigErrorDomain 33023') },
    });
    const out = await h.runner().runner.runJob({ device, blueprint: testBlueprint() });
    expect(out.status).toBe('failed');
    expect(out.error?.code).toBe('mcinstall/failed');
    expect(h.clock.sleeps).toEqual([]);
    expect(out.job.errorCode).toBe('mcinstall/failed');
    expect(h.events.map((e) => e.type).slice(-2)).toEqual(['stepFailed', 'jobFailed']);
  });

  it('computes the backoff as base · 2^(attempt−1), capped', () => {
    expect([1, 2, 3, 4, 10].map((a) => retryDelayMs(DEFAULT_RETRY, a))).toEqual([1000, 2000, 4000, 8000, 30_000]);
  });
});

describe('cancellation', () => {
  it('aborting marks the job cancelled and the interrupted step pending; a new run finishes the device', async () => {
    const device = new FakeKitDevice(presetState('fresh'));
    device.addFault({ method: 'setCloudConfiguration', action: { kind: 'hang' } });
    const { runner } = h.runner();
    const controller = new AbortController();
    const started = new Promise<void>((resolve) => {
      runner.onEvent((e) => {
        if (e.type === 'stepStarted' && e.stepId === 'configure') setTimeout(resolve, 0);
      });
    });
    const run = runner.runJob({ device, blueprint: testBlueprint(), signal: controller.signal });
    await started;
    controller.abort();
    const out = await run;
    expect(out.status).toBe('cancelled');
    expect(out.job.status).toBe('cancelled');
    expect(out.job.steps.find((s) => s.stepId === 'configure')?.status).toBe('pending');
    expect(h.events.at(-1)?.type).toBe('jobCancelled');
    expect(getResult(h.open(), out.jobId)?.outcome).toBe('cancelled');

    const again = await runner.runJob({ device, blueprint: testBlueprint() });
    expect(again.status).toBe('done');
    expect(again.jobId).not.toBe(out.jobId);
    expect(device.appliedCount('setCloudConfiguration')).toBe(1);
  });

  it('an already aborted signal cancels before touching the device', async () => {
    const device = new FakeKitDevice(presetState('fresh'));
    const controller = new AbortController();
    controller.abort();
    const out = await h.runner().runner.runJob({ device, blueprint: testBlueprint(), signal: controller.signal });
    expect(out.status).toBe('cancelled');
    expect(device.calls).toEqual([]);
  });
});

describe('waiting', () => {
  it('Trust pending: reports progress, waits, and continues once the person tapped Trust', async () => {
    const device = new FakeKitDevice(presetState('in-use', { trust: 'prompt' }));
    const { runner } = h.runner();
    const out = await runner.runJob({ device, blueprint: testBlueprint(), confirmedErase: true });
    expect(out.status).toBe('waiting');
    expect(out.waitingReason).toBe('trust-pending');
    expect(h.events.some((e) => e.type === 'stepProgressed' && e.kind === 'trust-pending')).toBe(true);
    expect(out.job.steps.find((s) => s.stepId === 'pair')).toMatchObject({
      status: 'waiting',
      errorCode: 'lockdown/trust-pending',
    });
    device.state.trust = 'accept';
    const resumed = await runner.resume(device.udid, device, { confirmedErase: true });
    expect(resumed?.status).toBe('done');
    expectPrepared(device);
  });

  it('passcode locked: waits with "locked"', async () => {
    const device = new FakeKitDevice(presetState('in-use', { passcodeLocked: true }));
    const out = await h.runner().runner.runJob({ device, blueprint: testBlueprint() });
    expect(out.waitingReason).toBe('locked');
    expect(out.error?.code).toBe('lockdown/password-protected');
  });

  it('no internet: activation waits with "needs-internet" and resumes when online', async () => {
    const device = new FakeKitDevice(presetState('fresh', { online: false }));
    const { runner } = h.runner();
    const out = await runner.runJob({ device, blueprint: testBlueprint() });
    expect(out.status).toBe('waiting');
    expect(out.waitingReason).toBe('needs-internet');
    expect(h.clock.sleeps).toEqual([]);
    device.state.online = true;
    expect((await runner.resume(device.udid, device))?.status).toBe('done');
  });

  it('a device unplugged mid-step waits "device-gone" and continues its own job when the UDID returns', async () => {
    const device = new FakeKitDevice(presetState('fresh'));
    device.addFault({ method: 'installProfile', nth: 2, when: 'after', action: { kind: 'disappear' } });
    const { runner } = h.runner();
    const out = await runner.runJob({ device, blueprint: testBlueprint() });
    expect(out.status).toBe('waiting');
    expect(out.waitingReason).toBe('device-gone');
    expect(out.job.steps.find((s) => s.stepId === 'personalize')?.status).toBe('waiting');
    // Still gone: the job keeps waiting.
    const still = await runner.resume(device.udid, device);
    expect(still?.waitingReason).toBe('device-gone');
    device.reattach();
    const back = await runner.resume(device.udid, device);
    expect(back?.jobId).toBe(out.jobId);
    expect(back?.status).toBe('done');
    // The step that was cut off had taken effect: it is recorded as done by this job, not skipped.
    expect(back?.job.steps.find((s) => s.stepId === 'personalize')?.status).toBe('done');
    expect(device.appliedCount('writeSettings')).toBe(1);
    expect(device.appliedCount('installProfile')).toBe(2);
    expectPrepared(device);
    expect(h.events.some((e) => e.type === 'jobResumed')).toBe(true);
  });

  it('resume answers undefined for a UDID without an unfinished job', async () => {
    const device = new FakeKitDevice(presetState('fresh'));
    expect(await h.runner().runner.resume(device.udid, device)).toBeUndefined();
  });
});

describe('stops with a reason', () => {
  it('Activation Lock fails with activation/locked', async () => {
    const device = new FakeKitDevice(presetState('fresh', { activationLocked: true }));
    const out = await h.runner().runner.runJob({ device, blueprint: testBlueprint() });
    expect(out.status).toBe('failed');
    expect(out.error?.code).toBe('activation/locked');
  });

  it('an ADE assignment fails with kitting/ade-assigned', async () => {
    const device = new FakeKitDevice(presetState('activated', { adeAssigned: true }));
    const out = await h.runner().runner.runJob({ device, blueprint: testBlueprint() });
    expect(out.error?.code).toBe('kitting/ade-assigned');
  });

  it('Trust denied fails', async () => {
    const device = new FakeKitDevice(presetState('in-use', { trust: 'deny' }));
    const out = await h.runner().runner.runJob({ device, blueprint: testBlueprint() });
    expect(out.status).toBe('failed');
    expect(out.error?.code).toBe('lockdown/trust-denied');
  });

  it('the Shared iPad quota rule is checked per device in inspect', async () => {
    const device = new FakeKitDevice(presetState('fresh', { storage: { totalBytes: 32e9, freeBytes: 20e9 } }));
    const out = await h.runner().runner.runJob({
      device,
      blueprint: testBlueprint({ sharedIpad: { mode: 'on', quotaMb: 8000 } }),
    });
    expect(out.error?.code).toBe('blueprint/shared-ipad-quota');
    expect(out.job.steps.find((s) => s.stepId === 'inspect')?.status).toBe('failed');
    expect(device.appliedCount('setCloudConfiguration')).toBe(0);
  });
});

describe('the supervision identity', () => {
  it('an unknown identity rejects the call and writes nothing', async () => {
    const device = new FakeKitDevice(presetState('fresh'));
    const { runner, db } = h.runner({
      supervisor: () => Promise.reject(new KitError('identity/not-found', 'no identity test-school')),
    });
    await expect(runner.runJob({ device, blueprint: testBlueprint() })).rejects.toMatchObject({
      code: 'identity/not-found',
    });
    expect(listJobs(db)).toEqual([]);
    expect(device.calls).toEqual([]);
  });

  it('a locked identity (no signer) fails where signing is needed, with kitting/signer-required', async () => {
    const device = new FakeKitDevice(presetState('fresh'));
    const out = await h.runner({ signer: null }).runner.runJob({ device, blueprint: testBlueprint() });
    expect(out.status).toBe('failed');
    expect(out.error?.code).toBe('kitting/signer-required');
    expect(out.job.steps.find((s) => s.stepId === 'enroll')?.status).toBe('failed');
    expect(device.appliedCount('setCloudConfiguration')).toBe(1);
  });
});

describe('jobs and events', () => {
  it('emits past-tense events in order and persists the blueprint snapshot', async () => {
    const device = new FakeKitDevice(presetState('activated'));
    const out = await h.runner().runner.runJob({ device, blueprint: testBlueprint(), batchId: 'cart-7' });
    const types = h.events.map((e) => e.type);
    expect(types[0]).toBe('jobCreated');
    expect(types.at(-1)).toBe('jobFinished');
    expect(types.filter((t) => t === 'stepFinished')).toHaveLength(STEPS.length);
    expect(new Set(types)).toEqual(
      new Set(['jobCreated', 'stepStarted', 'stepProgressed', 'stepFinished', 'jobFinished']),
    );
    const [job] = listJobs(h.open());
    expect(job?.batchId).toBe('cart-7');
    expect(JSON.parse(job?.blueprintJson ?? '{}')).toMatchObject({ name: 'Grade 3', finish: 'restart' });
    expect(out.job.steps.every((s) => s.finishedAt !== null)).toBe(true);
  });

  it('a job of another blueprint left unfinished is cancelled (superseded) and a new one runs', async () => {
    const device = new FakeKitDevice(presetState('in-use'));
    const { runner } = h.runner();
    const waiting = await runner.runJob({ device, blueprint: testBlueprint() });
    expect(waiting.status).toBe('waiting');
    const other = await runner.runJob({
      device,
      blueprint: testBlueprint({ name: 'Grade 4' }),
      confirmedErase: true,
    });
    expect(other.status).toBe('done');
    const jobs = listJobs(h.open());
    expect(jobs.map((j) => [j.blueprintName, j.status])).toEqual([
      ['Grade 3', 'cancelled'],
      ['Grade 4', 'done'],
    ]);
  });
});
