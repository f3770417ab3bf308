/**
 * The Station owns the syncer (issue #6): with sync configured to a reference MDM server, the
 * results of prepared devices reach the MDM without anyone calling `sync run`; `sync.status` has
 * the cli.md shape plus `offlineSince`; `syncStateChanged` events flow; enrollment confirmations
 * are refreshed after a delivered batch. The Sync screen's lifecycle commands (`mdm.device`,
 * `mdm.inactivate`, `mdm.delete`) go through `dispatch` and leave audit rows; `sync.configure`
 * with a wrong token is `mdm/auth-required` and stores nothing.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatch, type StationEvent } from '../../src/contract.ts';
import { KitError } from '../../src/errors.ts';
import { reportRows } from '../../src/kitting/report.ts';
import { configuredUrl } from '../../src/mdm/secrets.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { startMdmServer, type MdmServer } from '../../src/simulator/mdm-server/index.ts';
import { Station } from '../../src/station.ts';
import { listAudit } from '../../src/store/audit.ts';
import { configureSync } from '../helpers/mdm-loop.ts';
import { createPrepareEnv, type PrepareEnv } from '../helpers/prepare-env.ts';

let env: PrepareEnv;
let sim: Simulator;
let mdm: MdmServer;
let station: Station;
const events: StationEvent[] = [];
const GROUP = { groupId: 'grade4', userId: 'g4-user', passwordRef: 'secret:grade4-pass', hideAuthScreen: true };

beforeAll(async () => {
  env = await createPrepareEnv('Station Sync School');
  sim = await startSimulator({ devices: 0, timing: 'none', seed: 'mdm-station' });
  mdm = await startMdmServer({ dbFile: path.join(env.dir, 'mdm.db') });
  mdm.admin.setDeviceCa(sim.deviceCaPem);
  mdm.admin.putGroup({ id: 'grade4', name: 'Grade 4', credentials: { userId: 'g4-user', password: 'g4-pass' } });
  await configureSync(env, mdm.url, mdm.token, { 'grade4-pass': 'g4-pass' });
  station = new Station({
    usbmuxdAddress: sim.usbmuxdAddress,
    dataDir: env.dataDir,
    passphraseFile: env.passphraseFile,
    pairTimeoutMs: 3_000,
    retry: { baseDelayMs: 50, maxDelayMs: 200 },
  });
  station.on((e) => events.push(e));
  expect((await station.start()).sync).toBe(true);
});
afterAll(async () => {
  await station.close();
  await mdm.stop();
  await sim.stop();
  env.cleanup();
});

/** Resolves once `check()` holds, re-checked on every station event and every 100 ms (fails after 20 s). */
function until(what: string, check: () => boolean): Promise<void> {
  if (check()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const stop = (): void => {
      clearTimeout(timer);
      clearInterval(poll);
      off();
    };
    const again = (): void => {
      if (!check()) return;
      stop();
      resolve();
    };
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`timed out waiting for ${what}`));
    }, 20_000);
    const poll = setInterval(again, 100);
    const off = station.on(again);
  });
}

function confirmed(serial: string): boolean | undefined {
  const db = env.db();
  try {
    return reportRows(db).find((r) => r.serial === serial)?.enrollment?.confirmed;
  } finally {
    db.close();
  }
}

async function prepare(udids: string[], bp: string): Promise<void> {
  const results = await station.prepare({ udids, blueprint: bp, confirmedErase: true, maxParallel: 4 });
  expect(results.map((r) => r.status)).toEqual(udids.map(() => 'done'));
}

describe('the station drains results to the MDM by itself', () => {
  it('3 devices → 3 results at the MDM without sync run; status, events, confirmations', async () => {
    const bp = env.blueprint('station-sync', {
      enrollment: { method: 'url', url: mdm.enrollmentUrl, group: GROUP },
      eraseIfNeeded: false,
    });
    const first = [sim.plug('activated'), sim.plug('activated')];
    await prepare(first, bp);
    await until('2 delivered', () => station.syncStatus().delivered === 2);
    expect(mdm.admin.state().results).toHaveLength(2);

    // The first two check in; the station learns it after its next delivered batch.
    for (const udid of first) await sim.setup(udid);
    const serials = first.map((u) => sim.state(u).serial);
    for (const s of serials) expect(confirmed(s)).toBeUndefined();
    const third = sim.plug('activated');
    await prepare([third], bp);
    await until('3 delivered', () => station.syncStatus().delivered === 3);
    await until('the first two confirmed', () => serials.every((s) => confirmed(s) === true));
    expect(mdm.admin.state().results).toHaveLength(3);
    expect(new Set(mdm.admin.state().results.map((r) => r.serial))).toEqual(
      new Set([...first, third].map((u) => sim.state(u).serial)),
    );

    const status = await dispatch(station, 'sync.status', {});
    expect(Object.keys(status).sort()).toEqual(
      ['delivered', 'lastError', 'nextTryAt', 'offlineSince', 'queueLength', 'state'].sort(),
    );
    expect(status).toMatchObject({ state: 'online', queueLength: 0, delivered: 3, lastError: null });
    const changes = events.filter((e) => e.type === 'syncStateChanged');
    expect(changes.length).toBeGreaterThan(0);
    expect(changes.some((e) => e.delivered === 3 && e.state === 'online')).toBe(true);

    // sync.run drains (nothing left) and refreshes: the third, set up now, is confirmed.
    await sim.setup(third);
    const ran = await dispatch(station, 'sync.run', {});
    expect(ran).toMatchObject({ delivered: 0, confirmed: 1, status: { state: 'online', delivered: 3 } });
    expect(confirmed(sim.state(third).serial)).toBe(true);
    expect(mdm.admin.state().results).toHaveLength(3);

    const groups = await dispatch(station, 'sync.groups', {});
    expect(groups.groups.map((g) => g.id)).toContain('grade4');
    expect(groups.fetchedAt).not.toBeNull();
  }, 60_000);

  it('mdm.device, mdm.inactivate and mdm.delete through dispatch, with audit rows', async () => {
    const serial = mdm.admin.state().results[0]?.serial ?? '';
    expect(await dispatch(station, 'mdm.device', { serial })).toMatchObject({
      serial,
      registered: true,
      device: { state: 'active', groupId: 'grade4' },
    });
    await expect(dispatch(station, 'mdm.inactivate', { serial, confirmed: false })).rejects.toMatchObject({
      code: 'usage/invalid-argument',
    });
    expect(await dispatch(station, 'mdm.inactivate', { serial, confirmed: true })).toMatchObject({
      serial,
      state: 'inactive',
    });
    expect(await dispatch(station, 'mdm.delete', { serial, confirmed: true })).toMatchObject({
      deleted: serial,
      licenseFreed: true,
    });
    expect(await dispatch(station, 'mdm.device', { serial: 'NOSUCHSERIAL1' })).toEqual({
      serial: 'NOSUCHSERIAL1',
      registered: false,
      device: null,
    });
    const db = env.db();
    try {
      const audit = listAudit(db, { subject: serial }).map((a) => ({ action: a.action, details: a.details }));
      expect(audit).toEqual([
        { action: 'mdm/deleted', details: { licenseFreed: true } },
        { action: 'mdm/inactivated', details: { force: false, state: 'inactive' } },
      ]);
    } finally {
      db.close();
    }
  });

  it('sync.configure with a wrong token → mdm/auth-required and nothing stored', async () => {
    const other = mdm.url.replace('127.0.0.1', 'localhost');
    const err = await dispatch(station, 'sync.configure', { url: other, token: 'not-the-token' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KitError);
    expect((err as KitError).code).toBe('mdm/auth-required');
    expect(JSON.stringify((err as KitError).toJSON())).not.toContain('not-the-token');
    const db = env.db();
    try {
      expect(configuredUrl(db)).toBe(mdm.url);
    } finally {
      db.close();
    }
    // The stored token still works.
    expect(await dispatch(station, 'sync.run', {})).toMatchObject({ status: { state: 'online' } });
    // A right one is accepted and not echoed.
    const ok = await dispatch(station, 'sync.configure', { url: mdm.url, token: mdm.token });
    expect(ok).toEqual({ url: mdm.url, groups: expect.any(Number) as number });
    expect(JSON.stringify(ok)).not.toContain(mdm.token);
  });
});
