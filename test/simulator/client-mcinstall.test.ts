/**
 * The MCInstall client against the virtual fleet: every request, the ErrorChain table (14002 on a
 * second SetCloudConfiguration, 33003 before activation, 33004 with an ADE assignment, 4024, 4025,
 * 29000, 14001, unknown codes), escalation with the right and a wrong identity, profiles, the
 * stored profile, and erase (the device returns with the same UDID, a new DeviceID, wiped).
 */
import crypto from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { openDevice, type DeviceSession } from '../../src/device/device.ts';
import { McInstallClient, mcInstallError } from '../../src/device/services/mcinstall.ts';
import { waitForReturn } from '../../src/device/services/diagnostics.ts';
import { UsbmuxClient } from '../../src/device/usbmux.ts';
import { DeviceWatcher } from '../../src/device/watcher.ts';
import { signCms } from '../../src/identity/cms.ts';
import type { PlistDict } from '../../src/plist/index.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { makeSupervisionIdentity, profileBytes } from '../helpers/sim-process.ts';

const sims: Simulator[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  for (const s of sims.splice(0)) await s.stop();
});

interface Identity {
  certificateDer: Buffer;
  sign: (content: Buffer) => Buffer;
}

function identity(org = 'Kitting Test Org'): Identity {
  const id = makeSupervisionIdentity(org);
  const privateKey = crypto.createPrivateKey(id.keyPem);
  return {
    certificateDer: id.certDer,
    sign: (content) => signCms(content, { certificateDer: id.certDer, privateKey }),
  };
}

async function fleet(preset: string): Promise<{ sim: Simulator; mux: UsbmuxClient; udid: string }> {
  const sim = await startSimulator({ devices: 1, preset, timing: 'none' });
  sims.push(sim);
  const udid = sim.udids()[0];
  if (udid === undefined) throw new Error('no device');
  return { sim, mux: new UsbmuxClient(sim.usbmuxdAddress), udid };
}

async function mcinstall(mux: UsbmuxClient, udid: string): Promise<{ mc: McInstallClient; session: DeviceSession }> {
  const session = await openDevice(mux, udid);
  const escrow = session.record.escrowBag;
  const mc = await McInstallClient.start(session.lockdown, escrow !== undefined ? { escrowBag: escrow } : {});
  cleanups.push(async () => {
    mc.close();
    await session.close();
  });
  return { mc, session };
}

async function failure(p: Promise<unknown>): Promise<KitError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof KitError) return err;
    throw err;
  }
  throw new Error('expected a KitError');
}

function supervisedConfig(id: Identity, allowPairing = true): PlistDict {
  return {
    AllowPairing: allowPairing,
    IsSupervised: true,
    IsMultiUser: false,
    OrganizationName: 'Kitting Test Org',
    OrganizationMagic: crypto.randomUUID(),
    SkipSetup: ['Welcome', 'Siri'],
    SupervisorHostCertificates: [id.certificateDer],
  };
}

describe('MCInstall requests', () => {
  it('stores a cloud configuration once: Hello/Flush/Get/Set, then 14002 on a second Set', async () => {
    const { sim, mux, udid } = await fleet('activated');
    const { mc } = await mcinstall(mux, udid);
    await mc.helloHostIdentifier();
    await mc.flush();
    expect(await mc.getCloudConfiguration()).toBeNull();
    const id = identity();
    await mc.setCloudConfiguration(supervisedConfig(id));
    const stored = await mc.getCloudConfiguration();
    expect(stored).toMatchObject({ IsSupervised: true, OrganizationName: 'Kitting Test Org', IsMandatory: true });
    expect(stored?.SupervisorHostCertificates).toEqual([id.certificateDer]);
    expect(sim.state(udid).supervised).toBe(true);
    const err = await failure(mc.setCloudConfiguration(supervisedConfig(id)));
    expect(err.code).toBe('mcinstall/cloud-config-present');
    expect(err.details).toMatchObject({ errorCode: 14002, request: 'SetCloudConfiguration' });
    expect(err.message).toContain('14002');
  });

  it('refuses a configuration before activation (33003) and with an ADE assignment (33004)', async () => {
    const fresh = await fleet('fresh');
    const a = await mcinstall(fresh.mux, fresh.udid);
    const e1 = await failure(a.mc.setCloudConfiguration({ AllowPairing: true }));
    expect(e1.code).toBe('mcinstall/not-activated');
    expect(e1.details).toMatchObject({ errorCode: 33003 });

    const activated = await fleet('activated');
    activated.sim.set(activated.udid, { adeAssigned: true });
    const b = await mcinstall(activated.mux, activated.udid);
    const e2 = await failure(b.mc.setCloudConfiguration({ AllowPairing: true }));
    expect(e2.code).toBe('mcinstall/ade-assigned');
    expect(e2.details).toMatchObject({ errorCode: 33004 });
    expect(activated.sim.state(activated.udid).cloudConfiguration).toBeNull();
  });

  it('escalates with the supervising identity and installs, lists and removes a profile silently', async () => {
    const { sim, mux, udid } = await fleet('activated');
    const id = identity();
    const { mc } = await mcinstall(mux, udid);
    await mc.setCloudConfiguration(supervisedConfig(id));
    const before = await failure(mc.installProfileSilent(profileBytes('org.example.wifi')));
    expect(before.code).toBe('mcinstall/not-escalated');
    expect(before.details).toMatchObject({ errorCode: 4025 });
    expect(mc.escalated).toBe(false);
    await mc.escalate(id.certificateDer, id.sign);
    expect(mc.escalated).toBe(true);
    await mc.installProfileSilent(profileBytes('org.example.wifi', 'School Wi-Fi'));
    const list = await mc.getProfileList();
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({
      identifier: 'org.example.wifi',
      displayName: 'School Wi-Fi',
      removalDisallowed: false,
      version: 1,
    });
    expect(list[0]?.uuid).toMatch(/^[0-9A-F-]{36}$/);
    await mc.removeProfile('org.example.wifi');
    expect(await mc.getProfileList()).toEqual([]);
    expect(sim.state(udid).profiles).toEqual([]);
    const missing = await failure(mc.removeProfile('org.example.nothing'));
    expect(missing.code).toBe('mcinstall/profile-not-found');
    expect(missing.exitCode).toBe(3);
  });

  it('rejects escalation with a foreign certificate (CertificateRejected) and a foreign signature (SignedRequestRejected)', async () => {
    const { mux, udid } = await fleet('activated');
    const ours = identity('Ours');
    const theirs = identity('Theirs');
    const { mc } = await mcinstall(mux, udid);
    await mc.setCloudConfiguration(supervisedConfig(ours));
    const wrongCert = await failure(mc.escalate(theirs.certificateDer, theirs.sign));
    expect(wrongCert.code).toBe('mcinstall/escalation-rejected');
    expect(wrongCert.details).toMatchObject({ status: 'CertificateRejected' });
    const wrongSignature = await failure(mc.escalate(ours.certificateDer, theirs.sign));
    expect(wrongSignature.code).toBe('mcinstall/escalation-rejected');
    expect(wrongSignature.details).toMatchObject({ status: 'SignedRequestRejected' });
    expect(mc.escalated).toBe(false);
  });

  it('silent install on an unsupervised device → mcinstall/not-supervised (29000)', async () => {
    const { mux, udid } = await fleet('activated');
    const { mc } = await mcinstall(mux, udid);
    const err = await failure(mc.installProfileSilent(profileBytes('org.example.a')));
    expect(err.code).toBe('mcinstall/not-supervised');
    expect(err.details).toMatchObject({ errorCode: 29000 });
  });

  it('installs interactively: at once in Setup Assistant, after approval once setup is complete', async () => {
    const { sim, mux, udid } = await fleet('activated');
    const { mc } = await mcinstall(mux, udid);
    await mc.installProfile(profileBytes('org.example.during-setup'));
    expect((await mc.getProfileList()).map((p) => p.identifier)).toEqual(['org.example.during-setup']);
    mc.close();
    await sim.setup(udid);
    const again = await mcinstall(mux, udid);
    await again.mc.installProfile(profileBytes('org.example.after-setup'));
    expect((await again.mc.getProfileList()).map((p) => p.identifier)).toEqual(['org.example.during-setup']);
    await sim.approve(udid, 'org.example.after-setup');
    expect((await again.mc.getProfileList()).map((p) => p.identifier).sort()).toEqual([
      'org.example.after-setup',
      'org.example.during-setup',
    ]);
    const empty = await failure(again.mc.installProfile(Buffer.alloc(0)));
    expect(empty.code).toBe('mcinstall/profile-rejected');
    const garbage = await failure(again.mc.installProfile(Buffer.from('not a profile')));
    expect(garbage.code).toBe('mcinstall/profile-rejected');
    expect(garbage.details?.errorCode).toBeGreaterThanOrEqual(1000);
  });

  it('stores a profile for after Setup Assistant and reads it back', async () => {
    const { sim, mux, udid } = await fleet('activated');
    const { mc } = await mcinstall(mux, udid);
    expect(await mc.getStoredProfile()).toBeNull();
    const bytes = profileBytes('org.example.enroll');
    await mc.storeProfile(bytes);
    expect(await mc.getStoredProfile()).toEqual(bytes);
    expect(sim.state(udid).storedProfile?.identifier).toBe('org.example.enroll');
  });

  it('maps injected ErrorChain codes and literal statuses through the table; unknown codes keep domain and number', async () => {
    const { sim, mux, udid } = await fleet('activated');
    const { mc } = await mcinstall(mux, udid);
    // One injected error at a time: a fault of the same kind replaces the previous one.
    sim.fault(udid, 'error=Flush:14001');
    expect((await failure(mc.flush())).code).toBe('mcinstall/device-locked');
    sim.fault(udid, 'error=GetProfileList:12345');
    const unknown = await failure(mc.getProfileList());
    expect(unknown.code).toBe('mcinstall/failed');
    expect(unknown.message).toContain('12345');
    expect(unknown.details).toMatchObject({ errorCode: 12345 });
    expect(typeof unknown.details?.errorDomain).toBe('string');
    sim.fault(udid, 'error=HelloHostIdentifier:CommandFormatError');
    const format = await failure(mc.helloHostIdentifier());
    expect(format.code).toBe('mcinstall/failed');
    expect(format.details).toMatchObject({ status: 'CommandFormatError' });
  });

  it('the table prefers a known ErrorChain entry and falls back to mcinstall/failed', () => {
    const reply: PlistDict = {
      Status: 'Error',
      ErrorChain: [
        { ErrorCode: 99999, ErrorDomain: 'SomethingDomain', LocalizedDescription: 'x' },
        { ErrorCode: 14002, ErrorDomain: 'MCTunnelErrorDomain', LocalizedDescription: 'present' },
      ],
    };
    expect(mcInstallError('SetCloudConfiguration', reply).code).toBe('mcinstall/cloud-config-present');
    const other = mcInstallError('X', { Status: 'Error', ErrorChain: [{ ErrorCode: 99999, ErrorDomain: 'D' }] });
    expect(other.code).toBe('mcinstall/failed');
    expect(other.message).toContain('D 99999');
    expect(mcInstallError('Escalate', { Status: 'CertificateRejected' }).code).toBe('mcinstall/escalation-rejected');
    expect(mcInstallError('X', { Status: 'Weird' }).message).toContain('Weird');
  });

  it('erases: acknowledged, the device returns with the same UDID and a new DeviceID, wiped', async () => {
    const { sim, mux, udid } = await fleet('activated');
    const id = identity();
    const watcher = new DeviceWatcher(mux);
    await watcher.start();
    cleanups.push(() => watcher.stop());
    const { mc, session } = await mcinstall(mux, udid);
    await mc.setCloudConfiguration(supervisedConfig(id));
    await mc.installProfile(profileBytes('org.example.x'));
    const before = session.device.deviceId;
    const back = waitForReturn(watcher, udid, { previousDeviceId: before, timeoutMs: 30_000 });
    await mc.eraseDevice({ preserveDataPlan: true, disallowProximitySetup: false });
    const returned = await back;
    expect(returned.udid).toBe(udid);
    expect(returned.deviceId).not.toBe(before);
    const state = sim.state(udid);
    expect(state.cloudConfiguration).toBeNull();
    expect(state.profiles).toEqual([]);
    expect(state.pairings).toEqual([]);
    expect(state.activationState).toBe('Unactivated');
    expect(state.setupComplete).toBe(false);
  });

  it('an erase whose reply is lost (the connection drops after the request) still counts as started', async () => {
    const { sim, mux, udid } = await fleet('activated');
    const watcher = new DeviceWatcher(mux);
    await watcher.start();
    cleanups.push(() => watcher.stop());
    const { mc, session } = await mcinstall(mux, udid);
    await mc.setCloudConfiguration({ AllowPairing: true });
    sim.fault(udid, 'disconnect-after=EraseDevice');
    const back = waitForReturn(watcher, udid, { previousDeviceId: session.device.deviceId, timeoutMs: 30_000 });
    await mc.eraseDevice();
    await back;
    expect(sim.state(udid).cloudConfiguration).toBeNull();
  });
});
