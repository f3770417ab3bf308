/** The pipeline steps one by one, against the in-memory device model, with a hand-made context. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { createSupervisionCertificate } from '../../src/identity/certificate.ts';
import { signCms } from '../../src/identity/cms.ts';
import type { Blueprint } from '../../src/kitting/blueprint.ts';
import { buildCloudConfiguration } from '../../src/kitting/cloud-config.ts';
import {
  STEPS,
  eraseReason,
  fileProfileLoader,
  profileIdentity,
  stepById,
  type FactKind,
  type PlanEntry,
  type StepContext,
  type StepDefinition,
  type StepId,
} from '../../src/kitting/steps.ts';
import type { PlistDict } from '../../src/plist/index.ts';
import type { JsonObject } from '../../src/store/jobs.ts';
import {
  FakeKitDevice,
  Harness,
  TEST_CERTIFICATE,
  TEST_SIGNER,
  presetState,
  testBlueprint,
  testProfile,
} from '../helpers/fake-kit-device.ts';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(() => {
  h.cleanup();
});

interface TestContext extends StepContext {
  readonly progressed: string[];
  readonly facts: Map<FactKind, JsonObject>;
  readonly statuses: Map<StepId, string>;
}

function ctxFor(
  device: FakeKitDevice,
  blueprint: Blueprint,
  over: { confirmedErase?: boolean; signer?: null; plan?: PlanEntry; seqN?: number } = {},
): TestContext {
  const progressed: string[] = [];
  const facts = new Map<FactKind, JsonObject>();
  const statuses = new Map<StepId, string>();
  return {
    device,
    blueprint,
    job: { id: 'job-1', udid: device.udid, batchId: 'b', seqN: over.seqN ?? 7 },
    confirmedErase: over.confirmedErase ?? false,
    signal: new AbortController().signal,
    supervisor: { certificateDer: TEST_CERTIFICATE, signer: over.signer === null ? null : TEST_SIGNER },
    profiles: fileProfileLoader({ baseDir: h.dir }),
    planFor: () => over.plan ?? null,
    eraseReturnTimeoutMs: 1000,
    recordFacts: (kind, f) => facts.set(kind, f),
    lastFacts: (kind) => facts.get(kind),
    stepStatus: (id) => statuses.get(id),
    progress: (kind) => progressed.push(kind),
    progressed,
    facts,
    statuses,
  };
}

function step(id: StepId): StepDefinition {
  const s = stepById(id);
  if (s === undefined) throw new Error(`no step ${id}`);
  return s;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return err instanceof KitError ? err.code : `not a KitError: ${String(err)}`;
  }
  return 'did not throw';
}

/** A device that went through the steps before `configure` (paired, activated). */
function pairedActivated(overrides = {}): FakeKitDevice {
  return new FakeKitDevice(presetState('activated', { paired: true, ...overrides }));
}

describe('the step list', () => {
  it('has the ten steps of domain.md in order, each with ja/en titles', () => {
    expect(STEPS.map((s) => s.id)).toEqual([
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
    ]);
    for (const s of STEPS) {
      expect(s.title.ja.length).toBeGreaterThan(0);
      expect(s.title.en.length).toBeGreaterThan(0);
    }
    expect(STEPS.filter((s) => s.destructive === true).map((s) => s.id)).toEqual(['erase']);
  });
});

describe('identify, check-mdm, inspect (record facts, always re-run)', () => {
  it('identify records the pre-session values and the plan row', async () => {
    const device = new FakeKitDevice(presetState('fresh'));
    const ctx = ctxFor(device, testBlueprint(), { plan: { name: 'Room 3-1', assetTag: 'A-001' } });
    expect(await step('identify').isDone(ctx)).toBe(false);
    await step('identify').run(ctx);
    expect(ctx.facts.get('identity')).toMatchObject({
      serial: 'DMPXK0ABCDEF',
      ecid: '18446744073709551615',
      activationState: 'Unactivated',
      plan: { name: 'Room 3-1', assetTag: 'A-001', group: null },
    });
  });

  it('check-mdm records "not checked" without an MDM connection', async () => {
    const out = await step('check-mdm').run(ctxFor(new FakeKitDevice(presetState('fresh')), testBlueprint()));
    expect(out).toEqual({
      status: 'done',
      details: { mdm: 'not-checked', reason: 'mdm/unconfigured', policy: 'block', serial: expect.any(String) },
    });
  });

  it('inspect records whether the configuration is ours, different or absent', async () => {
    const bp = testBlueprint();
    const ours = buildCloudConfiguration(bp, { supervisorCertificateDer: TEST_CERTIFICATE });
    const mine = pairedActivated({ cloudConfiguration: ours });
    const ctx = ctxFor(mine, bp);
    await step('inspect').run(ctx);
    expect(ctx.facts.get('inspection')).toMatchObject({ cloudConfiguration: 'ours', supervisedByUs: true });
    const foreign = new FakeKitDevice(presetState('foreign', { paired: true }));
    const ctx2 = ctxFor(foreign, bp);
    await step('inspect').run(ctx2);
    expect(ctx2.facts.get('inspection')).toMatchObject({ cloudConfiguration: 'different', supervisedByUs: false });
    expect(ctx2.facts.get('inspection')?.differingKeys).toContain('OrganizationName');
    expect(await step('inspect').isDone(ctx2)).toBe(false);
  });

  it('inspect applies the Shared iPad quota rule to this device', async () => {
    const bp = testBlueprint({ sharedIpad: { mode: 'on', quotaMb: 10_000 } });
    const big = pairedActivated({ storage: { totalBytes: 128e9, freeBytes: 100e9 } });
    await expect(step('inspect').run(ctxFor(big, bp))).resolves.toMatchObject({ status: 'done' });
    const small = pairedActivated({ storage: { totalBytes: 32e9, freeBytes: 20e9 } });
    expect(await codeOf(step('inspect').run(ctxFor(small, bp)))).toBe('blueprint/shared-ipad-quota');
  });
});

describe('pair', () => {
  it('pairs a device in Setup Assistant normally, without Trust', async () => {
    const device = new FakeKitDevice(presetState('fresh'));
    const ctx = ctxFor(device, testBlueprint());
    expect(await step('pair').isDone(ctx)).toBe(false);
    expect(await step('pair').run(ctx)).toEqual({ status: 'done', details: { mode: 'normal' } });
    expect(await step('pair').isDone(ctx)).toBe(true);
    expect(ctx.progressed).toEqual([]);
  });

  it('reports Trust pending once and throws lockdown/trust-pending', async () => {
    const device = new FakeKitDevice(presetState('in-use', { trust: 'prompt' }));
    const ctx = ctxFor(device, testBlueprint());
    expect(await codeOf(step('pair').run(ctx))).toBe('lockdown/trust-pending');
    expect(ctx.progressed).toEqual(['trust-pending']);
  });

  it('pairs supervised when the device refuses normal pairing (AllowPairing false), or says which identity is missing', async () => {
    const bp = testBlueprint({ allowPairing: false });
    const cc = buildCloudConfiguration(bp, { supervisorCertificateDer: TEST_CERTIFICATE });
    const device = new FakeKitDevice(presetState('in-use', { cloudConfiguration: cc }));
    expect(await codeOf(step('pair').run(ctxFor(device, bp, { signer: null })))).toBe('kitting/signer-required');
    expect(await step('pair').run(ctxFor(device, bp))).toEqual({ status: 'done', details: { mode: 'supervised' } });
    expect(device.applied.map((a) => a.detail)).toEqual(['supervised']);
  });

  it('tries supervised first when this job found the device supervised by us, falling back to normal', async () => {
    const device = new FakeKitDevice(presetState('fresh'));
    const ctx = ctxFor(device, testBlueprint());
    ctx.recordFacts('inspection', { supervisedByUs: true });
    expect(await step('pair').run(ctx)).toEqual({ status: 'done', details: { mode: 'normal' } });
    expect(device.calls.filter((c) => c === 'pair')).toHaveLength(2);
  });
});

describe('erase', () => {
  it('decides from the configuration and Setup Assistant', () => {
    const bp = testBlueprint();
    const ours = buildCloudConfiguration(bp, { supervisorCertificateDer: TEST_CERTIFICATE });
    expect(eraseReason(ours, { cloudConfiguration: null, setupComplete: false })).toBeNull();
    expect(
      eraseReason(ours, { cloudConfiguration: { ...ours, ConfigurationSource: 2 }, setupComplete: true }),
    ).toBeNull();
    expect(eraseReason(ours, { cloudConfiguration: null, setupComplete: true })?.reason).toBe('setup-complete');
    const other = eraseReason(ours, {
      cloudConfiguration: { ...ours, OrganizationName: 'Other' },
      setupComplete: false,
    });
    expect(other?.reason).toBe('foreign-configuration');
    expect(other?.differences.map((d) => d.key)).toEqual(['OrganizationName']);
  });

  it('refuses without eraseIfNeeded, waits for confirmation, and erases only when confirmed', async () => {
    const device = new FakeKitDevice(presetState('foreign', { paired: true }));
    const e = step('erase');
    expect(await e.isDone(ctxFor(device, testBlueprint()))).toBe(false);
    const notAllowed = await e.run(ctxFor(device, testBlueprint({ eraseIfNeeded: false }))).catch((x: unknown) => x);
    expect(notAllowed).toBeInstanceOf(KitError);
    expect((notAllowed as KitError).code).toBe('kitting/erase-not-allowed');
    expect((notAllowed as KitError).details?.differingKeys).toContain('SupervisorHostCertificates');
    expect(JSON.parse(String((notAllowed as KitError).details?.differences))).toContainEqual({
      key: 'OrganizationName',
      ours: 'Test School',
      theirs: 'Another School',
    });
    expect(await codeOf(e.run(ctxFor(device, testBlueprint())))).toBe('kitting/erase-not-confirmed');
    expect(device.appliedCount('erase')).toBe(0);

    const ctx = ctxFor(device, testBlueprint(), { confirmedErase: true });
    expect(await e.run(ctx)).toEqual({ status: 'done', details: { reason: 'foreign-configuration' } });
    expect(ctx.progressed).toEqual(['erasing', 'waiting-for-return']);
    expect(device.state).toMatchObject({ cloudConfiguration: null, setupComplete: false, paired: true });
    expect(device.calls).toEqual(expect.arrayContaining(['erase', 'waitForReturn', 'pair']));
    expect(await e.isDone(ctx)).toBe(true);
  });

  it('an erase request that did not take (the cable pulled as it was sent) is not done: kitting/erase-unconfirmed, retryable', async () => {
    const device = new FakeKitDevice(presetState('in-use', { paired: true }));
    // What a dropped connection after EraseDevice looks like when the device never got it.
    device.erase = () => Promise.resolve();
    const err = await step('erase')
      .run(ctxFor(device, testBlueprint(), { confirmedErase: true }))
      .catch((x: unknown) => x);
    expect(err).toBeInstanceOf(KitError);
    expect(err).toMatchObject({
      code: 'kitting/erase-unconfirmed',
      retryable: true,
      details: { reason: 'setup-complete' },
    });
    expect(device.state.setupComplete).toBe(true);
  });

  it('a device that never leaves after the erase request and still answers set up: kitting/erase-unconfirmed, not a long wait', async () => {
    const device = new FakeKitDevice(presetState('in-use', { paired: true, staysAway: true }));
    // The request was lost (the connection cut as it was sent): nothing happens on the device.
    device.erase = () => Promise.resolve();
    const err = await step('erase')
      .run(ctxFor(device, testBlueprint(), { confirmedErase: true }))
      .catch((x: unknown) => x);
    expect(err).toMatchObject({ code: 'kitting/erase-unconfirmed', retryable: true });
    expect(device.state.setupComplete).toBe(true);
  });

  it('a device that does not come back makes the job wait for it (usbmux/device-gone)', async () => {
    const device = new FakeKitDevice(presetState('in-use', { paired: true, staysAway: true }));
    expect(await codeOf(step('erase').run(ctxFor(device, testBlueprint(), { confirmedErase: true })))).toBe(
      'usbmux/device-gone',
    );
  });
});

describe('activate', () => {
  it('activates an unactivated device; offline and Activation Lock are their own codes', async () => {
    const device = new FakeKitDevice(presetState('fresh', { paired: true }));
    const ctx = ctxFor(device, testBlueprint());
    expect(await step('activate').isDone(ctx)).toBe(false);
    device.state.online = false;
    expect(await codeOf(step('activate').run(ctx))).toBe('activation/offline');
    device.state.online = true;
    device.state.activationLocked = true;
    expect(await codeOf(step('activate').run(ctx))).toBe('activation/locked');
    device.state.activationLocked = false;
    await step('activate').run(ctx);
    expect(await step('activate').isDone(ctx)).toBe(true);
  });
});

describe('configure', () => {
  it('writes the blueprint configuration once; isDone reads it back', async () => {
    const device = pairedActivated();
    const ctx = ctxFor(device, testBlueprint());
    expect(await step('configure').isDone(ctx)).toBe(false);
    expect(await step('configure').run(ctx)).toEqual({ status: 'done', details: { alreadyPresent: false } });
    expect(await step('configure').isDone(ctx)).toBe(true);
    expect(device.state.cloudConfiguration?.ConfigurationSource).toBe(2);
  });

  it('14002 with a configuration equal to ours counts as done', async () => {
    const bp = testBlueprint();
    const theirs: PlistDict = {
      ...buildCloudConfiguration(bp, { supervisorCertificateDer: TEST_CERTIFICATE }),
      ConfigurationSource: 2,
      OrganizationMagic: 'A-DIFFERENT-MAGIC',
    };
    const device = pairedActivated({ cloudConfiguration: theirs });
    expect(await step('configure').run(ctxFor(device, bp))).toEqual({
      status: 'done',
      details: { alreadyPresent: true },
    });
    expect(device.appliedCount('setCloudConfiguration')).toBe(0);
  });

  it('14002 with a different configuration is kitting/erase-needed with the differences', async () => {
    const device = new FakeKitDevice(presetState('foreign', { paired: true }));
    const err = await step('configure')
      .run(ctxFor(device, testBlueprint()))
      .catch((x: unknown) => x);
    expect(err).toMatchObject({ code: 'kitting/erase-needed' });
    expect((err as KitError).details?.reason).toBe('foreign-configuration');
    expect(String((err as KitError).details?.differingKeys)).toContain('OrganizationName');
  });

  it('33003 (not activated) activates first, then writes', async () => {
    const device = new FakeKitDevice(presetState('fresh', { paired: true }));
    const ctx = ctxFor(device, testBlueprint());
    await step('configure').run(ctx);
    expect(device.applied.map((a) => a.method)).toEqual(['activate', 'setCloudConfiguration']);
    expect(ctx.progressed).toEqual(['activating']);
  });

  it('33004 (ADE assignment) is kitting/ade-assigned', async () => {
    const device = pairedActivated({ adeAssigned: true });
    expect(await codeOf(step('configure').run(ctxFor(device, testBlueprint())))).toBe('kitting/ade-assigned');
  });

  it('with AllowPairing false the device forgets its pairings; configure pairs again, supervised', async () => {
    const device = pairedActivated();
    await step('configure').run(ctxFor(device, testBlueprint({ allowPairing: false })));
    expect(device.state.paired).toBe(true);
    expect(device.applied.map((a) => `${a.method}:${a.detail}`)).toEqual(['setCloudConfiguration:', 'pair:supervised']);
  });
});

describe('enroll', () => {
  async function configured(bp: Blueprint, overrides = {}): Promise<FakeKitDevice> {
    const device = pairedActivated(overrides);
    await step('configure').run(ctxFor(device, bp));
    device.applied.length = 0;
    return device;
  }

  it('enrollment URL: installs the Wi-Fi profile silently after escalation; done when both are on the device', async () => {
    const bp = testBlueprint();
    const device = await configured(bp);
    const ctx = ctxFor(device, bp);
    expect(await step('enroll').isDone(ctx)).toBe(false);
    expect(await codeOf(step('enroll').run(ctxFor(device, bp, { signer: null })))).toBe('kitting/signer-required');
    await step('enroll').run(ctx);
    expect(device.calls).toContain('escalate');
    expect(device.applied).toEqual([{ method: 'installProfile', detail: 'org.example.wifi' }]);
    expect(await step('enroll').isDone(ctx)).toBe(true);
  });

  it('enrollment URL without Wi-Fi: done as soon as configure wrote the URL', async () => {
    const bp = testBlueprint({ enrollment: { method: 'url', url: 'https://mdm.example.com/enroll' } });
    const device = await configured(bp);
    expect(await step('enroll').isDone(ctxFor(device, bp))).toBe(true);
  });

  it('staged profile in Setup Assistant: StoreProfile; past Setup Assistant: silent install', async () => {
    const bp = testBlueprint({
      enrollment: { method: 'staged', source: { kind: 'file', path: 'org.example.mdm-enrollment.mobileconfig' } },
    });
    const inSetup = await configured(bp);
    const ctx = ctxFor(inSetup, bp);
    expect(await step('enroll').isDone(ctx)).toBe(false);
    expect(await step('enroll').run(ctx)).toMatchObject({ details: { how: 'stored' } });
    expect(inSetup.state.storedProfile).toEqual(testProfile('org.example.mdm-enrollment'));
    expect(await step('enroll').isDone(ctx)).toBe(true);
    inSetup.completeSetup();
    expect(await step('enroll').isDone(ctx)).toBe(true);

    const setUp = await configured(bp);
    setUp.state.setupComplete = true;
    const ctx2 = ctxFor(setUp, bp);
    expect(await step('enroll').run(ctx2)).toMatchObject({ details: { how: 'installed' } });
    expect(setUp.state.profiles.map((p) => p.identifier)).toEqual(['org.example.mdm-enrollment']);
    expect(await step('enroll').isDone(ctx2)).toBe(true);
  });

  it('none: nothing to do', async () => {
    const bp = testBlueprint({ enrollment: { method: 'none' } });
    expect(await step('enroll').isDone(ctxFor(pairedActivated(), bp))).toBe(true);
  });
});

describe('personalize', () => {
  it('names the device from the template with the job counter and the plan; writes only what differs', async () => {
    const bp = testBlueprint({ naming: { template: '{plan.name}-{n:3}-{model}', start: 1 } });
    const device = pairedActivated({
      settings: { deviceName: 'iPad', language: 'ja', locale: 'en_US', timeZone: 'Asia/Tokyo' },
    });
    await step('configure').run(ctxFor(device, bp));
    const ctx = ctxFor(device, bp, { plan: { name: 'Room3' }, seqN: 42 });
    expect(await step('personalize').isDone(ctx)).toBe(false);
    await step('personalize').run(ctx);
    expect(device.state.settings).toEqual({
      deviceName: 'Room3-042-iPad (10th generation)',
      language: 'ja',
      locale: 'ja_JP',
      timeZone: 'Asia/Tokyo',
    });
    expect(device.applied.filter((a) => a.method === 'writeSettings').map((a) => a.detail)).toEqual([
      'deviceName,locale',
    ]);
    expect(await step('personalize').isDone(ctx)).toBe(true);
  });

  it('a template that needs the plan fails with naming/missing-plan-field when the serial is not planned', async () => {
    const bp = testBlueprint({ naming: { template: '{plan.name}', start: 1 } });
    expect(await codeOf(step('personalize').isDone(ctxFor(pairedActivated(), bp)))).toBe('naming/missing-plan-field');
  });

  it('an unsupervised blueprint installs extra profiles for the person to approve (never silently)', async () => {
    const bp = testBlueprint({ supervise: false, enrollment: { method: 'none' } });
    const device = pairedActivated();
    await step('configure').run(ctxFor(device, bp));
    await step('personalize').run(ctxFor(device, bp));
    expect(device.state.pendingProfiles).toEqual(['org.example.restrictions']);
    expect(device.calls).not.toContain('escalate');
  });
});

describe('finish', () => {
  it('restarts or shuts down only when this job changed the device, and only once', async () => {
    const device = pairedActivated();
    const restart = ctxFor(device, testBlueprint({ finish: 'restart' }));
    expect(await step('finish').isDone(restart)).toBe(true);
    restart.statuses.set('configure', 'done');
    expect(await step('finish').isDone(restart)).toBe(false);
    await step('finish').run(restart);
    expect(device.appliedCount('restart')).toBe(1);
    restart.statuses.set('finish', 'done');
    expect(await step('finish').isDone(restart)).toBe(true);

    const off = ctxFor(device, testBlueprint({ finish: 'shutdown' }));
    off.statuses.set('configure', 'done');
    await step('finish').run(off);
    expect(device.state.poweredOff).toBe(true);

    const none = ctxFor(device, testBlueprint({ finish: 'none' }));
    none.statuses.set('configure', 'done');
    expect(await step('finish').isDone(none)).toBe(true);
  });
});

describe('profiles', () => {
  it('reads the identifier of unsigned and CMS-signed profiles', () => {
    expect(profileIdentity(testProfile('org.example.a', 'A'))).toEqual({
      identifier: 'org.example.a',
      displayName: 'A',
    });
    const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const certificateDer = createSupervisionCertificate({ org: 'Test School', publicKey, privateKey });
    const signed = signCms(testProfile('org.example.signed'), { certificateDer, privateKey });
    expect(profileIdentity(signed).identifier).toBe('org.example.signed');
    expect(() => profileIdentity(Buffer.from('<plist version="1.0"><dict/></plist>'))).toThrow(
      expect.objectContaining({ code: 'kitting/profile-unavailable' }),
    );
  });

  it('the file loader says which source is missing', async () => {
    const loader = fileProfileLoader({ baseDir: h.dir });
    expect(await codeOf(loader.load({ kind: 'file', path: 'missing.mobileconfig' }))).toBe('io/read-failed');
    expect(await codeOf(loader.load({ kind: 'stored', id: 'wifi' }))).toBe('kitting/profile-unavailable');
    const staged = testBlueprint({
      enrollment: {
        method: 'staged',
        source: { kind: 'mdm' },
        group: { groupId: 'g3', userId: 'enroll-g3', passwordRef: 'secret:g3-password' },
      },
    });
    expect(await codeOf(loader.enrollmentProfile(staged))).toBe('kitting/profile-unavailable');
    const withSources = fileProfileLoader({
      baseDir: h.dir,
      stored: (id) => Promise.resolve(id === 'wifi' ? testProfile('org.example.stored-wifi') : undefined),
      fetchEnrollmentProfile: () => Promise.resolve(testProfile('org.example.from-mdm')),
    });
    expect((await withSources.load({ kind: 'stored', id: 'wifi' })).identifier).toBe('org.example.stored-wifi');
    expect((await withSources.enrollmentProfile(staged)).identifier).toBe('org.example.from-mdm');
    fs.writeFileSync(path.join(h.dir, 'broken.mobileconfig'), 'not a plist <');
    expect(await codeOf(loader.load({ kind: 'file', path: 'broken.mobileconfig' }))).toBe('plist/malformed');
  });
});
