/**
 * "Enrollment confirmed" both ways, against the reference MDM:
 * - enrollment URL with the credential prompt: prepare writes the general URL; the person completes
 *   Setup Assistant typing the group's user ID and password (`sim-ctl setup UDID complete
 *   --username U --password P`);
 * - enrollment URL without the prompt: the group hides the authentication screen, so prepare asks
 *   the MDM for the group-specific URL (with the group's credentials from the vault) and writes it;
 * - staged profile: prepare fetches the group's profile with the credentials, stores it in the
 *   station's cache and stages it; completing setup installs it and the device checks in.
 * Each time the station then asks the MDM (`refreshEnrollmentConfirmations`) and the report shows
 * the device as confirmed. A device that never checked in stays unconfirmed.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refreshEnrollmentConfirmations } from '../../src/kitting/mdm-port.ts';
import { reportRows } from '../../src/kitting/report.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { startMdmServer, type MdmServer } from '../../src/simulator/mdm-server/index.ts';
import { cachedEnrollmentProfile } from '../../src/store/mdm-loop.ts';
import { configureSync, prepareWithMdm, stationClient } from '../helpers/mdm-loop.ts';
import { createPrepareEnv, type PrepareEnv } from '../helpers/prepare-env.ts';
import { KITTING, NODE, run } from '../helpers/sim-process.ts';

let env: PrepareEnv;
let sim: Simulator;
let mdm: MdmServer;
const GROUP = { groupId: 'grade3', userId: 'g3-user', passwordRef: 'secret:grade3-pass' };

beforeAll(async () => {
  env = await createPrepareEnv('Enrollment School');
  sim = await startSimulator({ devices: 0, timing: 'none', seed: 'mdm-loop-enrollment' });
  mdm = await startMdmServer({ dbFile: path.join(env.dir, 'mdm.db') });
  mdm.admin.setDeviceCa(sim.deviceCaPem);
  mdm.admin.putGroup({ id: 'grade3', name: 'Grade 3', credentials: { userId: 'g3-user', password: 'g3-pass' } });
  await configureSync(env, mdm.url, mdm.token, { 'grade3-pass': 'g3-pass' });
});
afterAll(async () => {
  await mdm.stop();
  await sim.stop();
  env.cleanup();
});

async function prepared(blueprint: string): Promise<{ udid: string; serial: string }> {
  const udid = sim.plug('activated');
  const { results } = await prepareWithMdm(env, { usbmuxd: sim.usbmuxdAddress, udids: [udid], blueprint });
  expect(results).toEqual([expect.objectContaining({ status: 'done' })]);
  return { udid, serial: sim.state(udid).serial };
}

async function confirmedInReport(serial: string): Promise<boolean | undefined> {
  const db = env.db();
  try {
    await refreshEnrollmentConfirmations(db, stationClient(mdm.url, mdm.token));
    return reportRows(db).find((r) => r.serial === serial)?.enrollment?.confirmed;
  } finally {
    db.close();
  }
}

describe('enrollment confirmed once the MDM saw the check-in', () => {
  it('enrollment URL with the credential prompt (sim-ctl setup … --username --password)', async () => {
    const bp = env.blueprint('url-prompt', {
      enrollment: { method: 'url', url: mdm.enrollmentUrl, group: { groupId: 'grade3', hideAuthScreen: false } },
    });
    const { udid, serial } = await prepared(bp);
    expect(sim.state(udid).cloudConfiguration).toMatchObject({ ConfigurationURL: mdm.enrollmentUrl });
    expect(await confirmedInReport(serial)).toBeUndefined();
    const setup = await run(NODE, [
      KITTING,
      'sim-ctl',
      '--control',
      sim.controlAddress,
      'setup',
      udid,
      'complete',
      '--username',
      'g3-user',
      '--password',
      'g3-pass',
    ]);
    expect(setup.code, setup.stderr).toBe(0);
    expect(await confirmedInReport(serial)).toBe(true);
    expect(mdm.admin.state().devices.find((d) => d.serial === serial)).toMatchObject({ groupId: 'grade3' });
  }, 30_000);

  it('enrollment URL without the prompt: the group-specific URL from the MDM', async () => {
    const bp = env.blueprint('url-group', {
      enrollment: { method: 'url', url: mdm.enrollmentUrl, group: { ...GROUP, hideAuthScreen: true } },
    });
    const { udid, serial } = await prepared(bp);
    const written = sim.state(udid).cloudConfiguration?.ConfigurationURL;
    expect(written).toBe(mdm.admin.groupEnrollmentUrl('grade3'));
    expect(written).not.toBe(mdm.enrollmentUrl);
    await sim.setup(udid);
    expect(sim.state(udid).enrollment).toMatchObject({ authenticated: false, checkIn: { status: 'enrolled' } });
    expect(await confirmedInReport(serial)).toBe(true);
  }, 30_000);

  it('staged profile fetched with the group credentials, cached, installed at setup, checked in', async () => {
    const bp = env.blueprint('staged-mdm', {
      enrollment: { method: 'staged', source: { kind: 'mdm' }, group: { ...GROUP, hideAuthScreen: false } },
    });
    const { udid, serial } = await prepared(bp);
    const db = env.db();
    try {
      expect(cachedEnrollmentProfile(db, 'grade3')?.value.length).toBeGreaterThan(0);
    } finally {
      db.close();
    }
    expect(sim.state(udid).storedProfile).not.toBeNull();
    // Not checked in yet: the MDM has no record of the serial, the report no confirmation.
    expect(await confirmedInReport(serial)).toBeUndefined();
    await sim.setup(udid);
    expect(sim.state(udid).enrollment).toMatchObject({ checkIn: { status: 'enrolled' } });
    expect(await confirmedInReport(serial)).toBe(true);
    expect(await stationClient(mdm.url, mdm.token).getDevice(serial)).toMatchObject({
      state: 'active',
      groupId: 'grade3',
      enrollment: { status: 'enrolled' },
    });
  }, 30_000);
});
