/**
 * The simulator's MDM profile lifecycle outside Setup Assistant: an MDM enrollment profile
 * installed interactively after setup waits for the person; `approve` (as `sim-ctl approve` does)
 * installs it and the device checks in at the MDM (enrolled); erasing the device sends `CheckOut`
 * for it, so the MDM records it unenrolled.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MdmDevice } from '../../src/mdm/client.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { startMdmServer, type MdmServer } from '../../src/simulator/mdm-server/index.ts';
import { Station } from '../../src/station.ts';
import { stationClient } from '../helpers/mdm-loop.ts';
import { createPrepareEnv, type PrepareEnv } from '../helpers/prepare-env.ts';

let env: PrepareEnv;
let sim: Simulator;
let mdm: MdmServer;
let station: Station;

beforeAll(async () => {
  env = await createPrepareEnv('Approve School', { identity: false });
  sim = await startSimulator({ devices: 0, timing: 'none', seed: 'mdm-sim-approve' });
  mdm = await startMdmServer({ dbFile: path.join(env.dir, 'mdm.db') });
  mdm.admin.setDeviceCa(sim.deviceCaPem);
  mdm.admin.putGroup({ id: 'grade6', name: 'Grade 6', credentials: { userId: 'g6-user', password: 'g6-pass' } });
  station = new Station({ usbmuxdAddress: sim.usbmuxdAddress, dataDir: env.dataDir, pairTimeoutMs: 3_000 });
});
afterAll(async () => {
  await station.close();
  await mdm.stop();
  await sim.stop();
  env.cleanup();
});

async function mdmDeviceOnceItSays(serial: string, status: MdmDevice['enrollment']['status']): Promise<MdmDevice> {
  const client = stationClient(mdm.url, mdm.token);
  for (let i = 0; i < 200; i++) {
    const d = await client.getDevice(serial);
    if (d?.enrollment.status === status) return d;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the MDM never recorded ${serial} as ${status}`);
}

describe('approve later checks in; erase checks out', () => {
  it('an MDM profile approved after setup enrolls; erasing the device sends CheckOut', async () => {
    const udid = sim.plug('activated');
    await sim.setup(udid);
    const serial = sim.state(udid).serial;
    const profile = await stationClient(mdm.url, mdm.token).fetchEnrollmentProfile('grade6', {
      userId: 'g6-user',
      password: 'g6-pass',
    });
    const installed = await station.installProfile(udid, profile);
    expect(installed.silent).toBe(false);
    expect(await stationClient(mdm.url, mdm.token).getDevice(serial)).toBeNull();

    await sim.approve(udid, installed.identifier);
    expect(sim.state(udid).enrollment).toMatchObject({ checkIn: { status: 'enrolled' } });
    expect(await mdmDeviceOnceItSays(serial, 'enrolled')).toMatchObject({ groupId: 'grade6', state: 'active' });

    const [erased] = await station.erase([udid], { wait: true, waitTimeoutMs: 20_000 });
    expect(erased).toMatchObject({ erased: true });
    expect(await mdmDeviceOnceItSays(serial, 'unenrolled')).toMatchObject({ serial });
  }, 60_000);
});
