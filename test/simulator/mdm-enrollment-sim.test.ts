/**
 * Closing the loop: virtual devices enroll themselves in the reference MDM server at Setup Assistant
 * (cloud configuration with its enrollment URL written over MCInstall, `setup complete`), install the
 * signed profile and check in (Authenticate, TokenUpdate) with the identity the profile carried; the
 * server records the device and the station sees "enrolled" through GET /v1/devices/{serial}.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../src/errors.ts';
import type { PlistDict } from '../../src/plist/index.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { startMdmServer, type MdmServer } from '../../src/simulator/mdm-server/index.ts';
import { TestHost } from '../helpers/sim-process.ts';

let dir: string;
let sim: Simulator;
let mdm: MdmServer;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdm-enroll-sim-'));
  sim = await startSimulator({ socketPath: path.join(dir, 'usbmuxd.sock'), devices: 0, seed: 'mdm-enroll-sim' });
  mdm = await startMdmServer({ dbFile: path.join(dir, 'mdm.db') });
  mdm.admin.setDeviceCa(sim.deviceCaPem);
  mdm.admin.putGroup({
    id: 'grade1',
    name: 'Grade 1',
    credentials: { userId: 'grade1-user', password: 'grade1-pass' },
    servicePlan: 'Education',
  });
  mdm.admin.putGroup({ id: 'staff', name: 'Staff', credentials: { userId: 'staff-user', password: 'staff-pass' } });
});

afterAll(async () => {
  await sim.stop();
  await mdm.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function station(pathname: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${mdm.url}${pathname}`, { headers: { Authorization: `Bearer ${mdm.token}` } });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

/** An activated device in Setup Assistant whose cloud configuration points at `url`. */
async function configured(url: string, extra: PlistDict = {}): Promise<string> {
  const udid = sim.plug('activated');
  const host = await TestHost.create(sim.usbmuxdAddress, udid, sim.systemBuid);
  expect((await host.pair()).Error).toBeUndefined();
  const mc = await host.service('com.apple.mobile.MCInstall');
  const r = await mc.request({
    RequestType: 'SetCloudConfiguration',
    CloudConfiguration: {
      AllowPairing: true,
      IsSupervised: true,
      OrganizationName: 'Loop School',
      ConfigurationURL: url,
      AnchorCertificates: [],
      ...extra,
    },
  });
  mc.close();
  expect(r.Status).toBe('Acknowledged');
  return udid;
}

describe('virtual devices enroll in the reference MDM server', () => {
  it('general URL: the 401 prompt, the group credentials pick the group, profile installed, device checks in', async () => {
    const udid = await configured(mdm.enrollmentUrl);
    const serial = sim.state(udid).serial;
    const result = await sim.setup(udid, { username: 'grade1-user', password: 'grade1-pass' });
    expect(result.installed).toEqual(['jp.kitting-station.reference-mdm.enrollment']);
    const st = sim.state(udid);
    expect(st.setupComplete).toBe(true);
    expect(st.profiles).toEqual([
      expect.objectContaining({
        identifier: 'jp.kitting-station.reference-mdm.enrollment',
        signed: true,
        fromEnrollment: true,
      }),
    ]);
    expect(st.enrollment).toMatchObject({
      status: 'installed',
      attempts: 2,
      authenticated: true,
      httpStatus: 200,
      checkIn: { status: 'enrolled', messages: ['Authenticate', 'TokenUpdate'], url: `${mdm.url}/mdm/checkin` },
    });
    const d = await station(`/v1/devices/${serial}`);
    expect(d.status).toBe(200);
    expect(d.body).toMatchObject({
      serial,
      udid,
      state: 'active',
      groupId: 'grade1',
      licenseConsumed: true,
      servicePlan: 'Education',
      reachable: true,
      enrollment: { status: 'enrolled' },
    });
    expect(typeof d.body.enrolledAt).toBe('string');
    expect(mdm.admin.state().devices.find((x) => x.serial === serial)?.pushToken).toMatch(/^[0-9a-f]{64}$/);
  });

  it('general URL without credentials: setup stops at the prompt and nothing is registered', async () => {
    const udid = await configured(mdm.enrollmentUrl);
    const serial = sim.state(udid).serial;
    const err = await sim.setup(udid).catch((e: unknown) => e);
    expect(hasCode(err, 'sim/setup-needs-credentials')).toBe(true);
    expect(sim.state(udid).setupComplete).toBe(false);
    expect((await station(`/v1/devices/${serial}`)).status).toBe(404);
  });

  it('wrong credentials: asked again, refused, nothing registered', async () => {
    const udid = await configured(mdm.enrollmentUrl);
    const err = await sim.setup(udid, { username: 'grade1-user', password: 'nope' }).catch((e: unknown) => e);
    expect(hasCode(err, 'sim/setup-failed')).toBe(true);
    expect(sim.state(udid).enrollment).toMatchObject({ httpStatus: 401, attempts: 2 });
    expect((await station(`/v1/devices/${sim.state(udid).serial}`)).status).toBe(404);
  });

  it('group-specific URL: no prompt, the device lands in that group', async () => {
    const udid = await configured(mdm.admin.groupEnrollmentUrl('staff'));
    const result = await sim.setup(udid);
    expect(result.enrollment).toMatchObject({ status: 'installed', attempts: 1, authenticated: false });
    const d = await station(`/v1/devices/${sim.state(udid).serial}`);
    expect(d.body).toMatchObject({ groupId: 'staff', state: 'active', enrollment: { status: 'enrolled' } });
  });

  it('no license left: the server answers 409 and setup fails; a freed license lets the next device in', async () => {
    const { consumed } = mdm.admin.state().licenses;
    mdm.admin.setLicenseTotal(consumed);
    const udid = await configured(mdm.admin.groupEnrollmentUrl('staff'));
    const err = await sim.setup(udid).catch((e: unknown) => e);
    expect(hasCode(err, 'sim/setup-failed')).toBe(true);
    expect(sim.state(udid).enrollment).toMatchObject({ httpStatus: 409 });
    expect((err as Error).message).toContain('409');
    mdm.admin.setLicenseTotal(consumed + 1);
    const next = await configured(mdm.admin.groupEnrollmentUrl('staff'));
    await sim.setup(next);
    expect(mdm.admin.state().licenses).toEqual({ total: consumed + 1, consumed: consumed + 1 });
  });

  it('an untrusted device CA makes the server refuse the MachineInfo (403) and setup fails', async () => {
    const other = await startMdmServer({});
    try {
      other.admin.putGroup({ id: 'g', name: 'G', credentials: { userId: 'u-other', password: 'p-other' } });
      const udid = await configured(other.admin.groupEnrollmentUrl('g'));
      const err = await sim.setup(udid).catch((e: unknown) => e);
      expect(hasCode(err, 'sim/setup-failed')).toBe(true);
      expect(sim.state(udid).enrollment).toMatchObject({ httpStatus: 403 });
      expect(other.admin.state().devices).toEqual([]);
    } finally {
      await other.stop();
    }
  });
});
