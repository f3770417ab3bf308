/**
 * "The same device cannot be registered twice" (seed) through prepare: a serial registered and
 * active in the reference MDM (it enrolled there through its group URL) blocks with `mdmCheck:
 * block` (job failed, `kitting/mdm-registered`, the guidance "inactivate in the MDM first"), is a
 * recorded warning with `warn`; a forced inactivation requested for a reachable device is refused
 * by the MDM (`mdm/force-not-allowed`); once the MDM marks it wiped the request goes through (with
 * an audit row), and deleting the inactive record frees its license.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_MESSAGES } from '../../src/i18n/messages.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { startMdmServer, type MdmServer } from '../../src/simulator/mdm-server/index.ts';
import { listAudit } from '../../src/store/audit.ts';
import { configureSync, mdmFacts, prepareWithMdm, stationClient } from '../helpers/mdm-loop.ts';
import { createPrepareEnv, prepareInProcess, type PrepareEnv } from '../helpers/prepare-env.ts';
import { TestHost } from '../helpers/sim-process.ts';

let env: PrepareEnv;
let sim: Simulator;
let mdm: MdmServer;

beforeAll(async () => {
  env = await createPrepareEnv('Registration School');
  sim = await startSimulator({ devices: 0, timing: 'none', seed: 'mdm-loop-registration' });
  mdm = await startMdmServer({ dbFile: path.join(env.dir, 'mdm.db'), licenseTotal: 10 });
  mdm.admin.setDeviceCa(sim.deviceCaPem);
  mdm.admin.putGroup({ id: 'grade2', name: 'Grade 2', credentials: { userId: 'g2-user', password: 'g2-pass' } });
  await configureSync(env, mdm.url, mdm.token);
});
afterAll(async () => {
  await mdm.stop();
  await sim.stop();
  env.cleanup();
});

/** A device that enrolled in the MDM (group URL, no prompt): registered and active there. */
async function registeredDevice(): Promise<{ udid: string; serial: string }> {
  const udid = sim.plug('activated');
  const host = await TestHost.create(sim.usbmuxdAddress, udid, sim.systemBuid);
  expect((await host.pair()).Error).toBeUndefined();
  const mc = await host.service('com.apple.mobile.MCInstall');
  const r = await mc.request({
    RequestType: 'SetCloudConfiguration',
    CloudConfiguration: {
      AllowPairing: true,
      IsSupervised: true,
      OrganizationName: 'Somebody Else',
      ConfigurationURL: mdm.admin.groupEnrollmentUrl('grade2'),
      AnchorCertificates: [],
    },
  });
  mc.close();
  expect(r.Status).toBe('Acknowledged');
  await sim.setup(udid);
  const serial = sim.state(udid).serial;
  expect(mdm.admin.state().devices.find((d) => d.serial === serial)).toMatchObject({ state: 'active' });
  return { udid, serial };
}

function prepare(udid: string, blueprint: string, extra: { yes?: boolean } = {}) {
  return prepareInProcess(env, {
    usbmuxd: sim.usbmuxdAddress,
    udids: [udid],
    blueprint,
    activationUrl: sim.activationUrl,
    ...extra,
  });
}

describe('a serial already active in the MDM', () => {
  it('block: the job fails with kitting/mdm-registered and the guidance to inactivate in the MDM first', async () => {
    const { udid, serial } = await registeredDevice();
    const bp = env.blueprint('block', { mdmCheck: 'block', eraseIfNeeded: true });
    const { results } = await prepare(udid, bp, { yes: true });
    expect(results).toEqual([expect.objectContaining({ status: 'failed' })]);
    const job = env.jobs().find((j) => j.udid === udid);
    expect(job?.errorCode).toBe('kitting/mdm-registered');
    expect(job?.steps.find((s) => s.stepId === 'check-mdm')?.status).toBe('failed');
    expect(job?.steps.find((s) => s.stepId === 'erase')?.status).toBe('pending');
    expect(mdmFacts(env, job?.id ?? '').at(-1)).toMatchObject({ mdm: 'registered', serial, groupId: 'grade2' });
    expect(ERROR_MESSAGES['kitting/mdm-registered'].ja.action).toContain('MDMで先にインアクティベーションしてください');
    expect(ERROR_MESSAGES['kitting/mdm-registered'].en.action).toContain('Inactivate it in the MDM first');
    expect(sim.state(udid).setupComplete).toBe(true);
  }, 30_000);

  it('warn: the job goes on (erase, configure …) and the warning is recorded', async () => {
    const { udid, serial } = await registeredDevice();
    const bp = env.blueprint('warn', { mdmCheck: 'warn', eraseIfNeeded: true });
    const { results } = await prepare(udid, bp, { yes: true });
    expect(results).toEqual([expect.objectContaining({ status: 'done' })]);
    const job = env.jobs().find((j) => j.udid === udid && j.status === 'done');
    expect(mdmFacts(env, job?.id ?? '').at(-1)).toMatchObject({
      mdm: 'registered',
      policy: 'warn',
      warning: 'kitting/mdm-registered',
      serial,
    });
    expect(job?.steps.find((s) => s.stepId === 'erase')?.status).toBe('done');
    // The erase checked the device out of the MDM; it stays registered (inactivation is the MDM's).
    const record = await stationClient(mdm.url, mdm.token).getDevice(serial);
    expect(record).toMatchObject({ state: 'active', enrollment: { status: 'unenrolled' } });
  }, 30_000);

  it('forced inactivation: refused while reachable, granted (audited) once wiped; deleting frees the license', async () => {
    const { udid, serial } = await registeredDevice();
    const bp = env.blueprint('rekit', { mdmCheck: 'block', eraseIfNeeded: true });
    const client = stationClient(mdm.url, mdm.token);

    // Requested, but the MDM still reaches the device: the normal inactivation path is explained.
    const refused = await prepareWithMdm(env, {
      usbmuxd: sim.usbmuxdAddress,
      udids: [udid],
      blueprint: bp,
      yes: true,
      forceInactivate: true,
    });
    expect(refused.results).toEqual([expect.objectContaining({ status: 'failed' })]);
    expect(env.jobs().find((j) => j.udid === udid)?.errorCode).toBe('mdm/force-not-allowed');
    expect(ERROR_MESSAGES['mdm/force-not-allowed'].en.action).toContain('normal inactivation');
    expect(await client.getDevice(serial)).toMatchObject({ state: 'active' });

    // Without the confirmation nothing is forced.
    mdm.admin.markDevice(serial, { wiped: true });
    const unconfirmed = await prepare(udid, bp, { yes: true });
    expect(unconfirmed.results).toEqual([expect.objectContaining({ status: 'failed' })]);
    expect(await client.getDevice(serial)).toMatchObject({ state: 'active' });

    const before = mdm.admin.state().licenses;
    const forced = await prepareWithMdm(env, {
      usbmuxd: sim.usbmuxdAddress,
      udids: [udid],
      blueprint: bp,
      yes: true,
      forceInactivate: true,
      activationUrl: sim.activationUrl,
    });
    expect(forced.results).toEqual([expect.objectContaining({ status: 'done' })]);
    expect(await client.getDevice(serial)).toMatchObject({ state: 'inactive', inactivation: { kind: 'forced' } });
    const db = env.db();
    try {
      expect(listAudit(db, { subject: serial })).toEqual([
        expect.objectContaining({ action: 'mdm/force-inactivated', subject: serial, actor: 'cli' }),
      ]);
    } finally {
      db.close();
    }
    // Inactive still consumes the license; deleting the record frees it.
    expect(mdm.admin.state().licenses.consumed).toBe(before.consumed);
    const deleted = await client.deleteDevice(serial);
    expect(deleted.licenseFreed).toBe(true);
    expect(mdm.admin.state().licenses.consumed).toBe(before.consumed - 1);
    expect(await client.getDevice(serial)).toBeNull();
  }, 40_000);
});
