/**
 * Closing the loop offline: a 16-device cart is prepared while the configured MDM is down (the
 * reference server stopped; its port closed). check-mdm records "not checked" and every job
 * finishes; the results wait in the outbox. Then the reference server comes back on the SAME port
 * with the SAME database and token: one drain delivers exactly 16 results, a second adds none.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Syncer } from '../../src/mdm/syncer.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { startMdmServer, type MdmServer } from '../../src/simulator/mdm-server/index.ts';
import { configureSync, mdmFacts, stationClient } from '../helpers/mdm-loop.ts';
import { createPrepareEnv, prepareInProcess, type PrepareEnv } from '../helpers/prepare-env.ts';

const TOKEN = 'mdm-loop-offline-station-token';
const ADMIN = 'mdm-loop-offline-admin-token';
let env: PrepareEnv;
let sim: Simulator;
let mdm: MdmServer | undefined;

beforeAll(async () => {
  env = await createPrepareEnv('Offline Loop School');
  sim = await startSimulator({ devices: 0, timing: 'none', seed: 'mdm-loop-offline' });
});
afterAll(async () => {
  await mdm?.stop();
  await sim.stop();
  env.cleanup();
});

describe('a cart prepared with the MDM down reaches it exactly once later', () => {
  it('16 devices offline → 16 results once the MDM is back, and a second drain adds none', async () => {
    const dbFile = path.join(env.dir, 'mdm.db');
    // Learn a free port from the server itself, then take it down: the MDM is configured but off.
    const first = await startMdmServer({ dbFile, token: TOKEN, adminToken: ADMIN });
    const url = first.url;
    const port = Number(new URL(url).port);
    await first.stop();
    await configureSync(env, url, TOKEN);

    const udids = Array.from({ length: 16 }, () => sim.plug('activated'));
    const bp = env.blueprint('offline-cart', { mdmCheck: 'block', eraseIfNeeded: false });
    const { results } = await prepareInProcess(env, {
      usbmuxd: sim.usbmuxdAddress,
      udids,
      blueprint: bp,
      maxParallel: 8,
    });
    expect(results.map((r) => r.status)).toEqual(Array.from({ length: 16 }, () => 'done'));
    const jobs = env.jobs();
    expect(jobs).toHaveLength(16);
    for (const job of jobs) {
      const facts = mdmFacts(env, job.id);
      expect(facts.at(-1)).toMatchObject({ mdm: 'not-checked', reason: 'mdm/offline', policy: 'block' });
    }

    const db = env.db();
    try {
      const syncer = new Syncer({ db, client: stationClient(url, TOKEN) });
      // Still down: nothing is delivered, everything stays queued.
      const down = await syncer.drain({ maxFailures: 1 }).catch((e: unknown) => e);
      expect(syncer.status()).toMatchObject({ state: 'offline', queueLength: 16, delivered: 0 });
      expect(down).toBeDefined();

      mdm = await startMdmServer({ dbFile, port, token: TOKEN, adminToken: ADMIN });
      expect(mdm.url).toBe(url);
      const sum = await syncer.drain({ maxFailures: 3 });
      expect(sum.delivered).toBe(16);
      const held = mdm.admin.state().results;
      expect(held).toHaveLength(16);
      expect(new Set(held.map((r) => r.serial))).toEqual(new Set(udids.map((u) => sim.state(u).serial)));

      const again = await syncer.drain({ maxFailures: 3 });
      expect(again.delivered).toBe(0);
      expect(mdm.admin.state().results).toHaveLength(16);
      expect(syncer.status()).toMatchObject({ queueLength: 0, delivered: 16 });
    } finally {
      db.close();
    }
    expect(fs.existsSync(dbFile)).toBe(true);
  }, 60_000);
});
