/**
 * The station's batch scheduler against 32 virtual devices (4 USB buses of 8, `--timing none`):
 * one batch with a global cap of 8 prepares every device and never runs more than 8 jobs at once;
 * with a per-hub cap of 2 no hub ever runs more than 2. Concurrency is replayed from the order of
 * the station's events, never from wall-clock time. Pause holds the queue; resume lets it go on.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StationEvent } from '../../src/contract.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { Station } from '../../src/station.ts';
import { createPrepareEnv, type PrepareEnv } from '../helpers/prepare-env.ts';
import { hubsFrom, maxConcurrent, type EventLine } from '../helpers/station-events.ts';

const ORG = 'Batch Test School';
let env: PrepareEnv;
let sim: Simulator;
let station: Station;
let bp: string;
let events: StationEvent[];

beforeEach(async () => {
  env = await createPrepareEnv(ORG);
  bp = env.blueprint('batch');
  sim = await startSimulator({ devices: 32, timing: 'none' });
  station = new Station({
    usbmuxdAddress: sim.usbmuxdAddress,
    dataDir: env.dataDir,
    passphraseFile: env.passphraseFile,
    pairTimeoutMs: 3_000,
    retry: { baseDelayMs: 50, maxDelayMs: 200 },
  });
  events = [];
  station.on((e) => events.push(e));
});
afterEach(async () => {
  await station.close();
  await sim.stop();
  env.cleanup();
});

function request(extra: { perHub?: number } = {}) {
  return {
    udids: 'all' as const,
    blueprint: bp,
    confirmedErase: true,
    maxParallel: 8,
    activationUrl: sim.activationUrl,
    ...extra,
  };
}

function expectAllDone(results: { status: string }[]): void {
  expect(results).toHaveLength(32);
  expect(results.filter((r) => r.status !== 'done')).toEqual([]);
  const jobs = env.jobs();
  expect(jobs).toHaveLength(32);
  expect(new Set(jobs.map((j) => j.udid)).size).toBe(32);
  expect(jobs.every((j) => j.status === 'done')).toBe(true);
  for (const udid of sim.udids()) expect(sim.state(udid).deviceName).toBe(`CART-${sim.state(udid).serial}`);
}

describe('a 32-device batch', () => {
  it('global cap 8: every device done, never more than 8 jobs at once', async () => {
    const results = await station.prepare(request());
    expectAllDone(results);
    const { overall } = maxConcurrent(events as EventLine[]);
    expect(overall).toBeLessThanOrEqual(8);
    // The cap is reached: 32 queued devices fill all 8 slots.
    expect(overall).toBe(8);
    const progress = events.filter((e) => e.type === 'batchProgressed');
    expect(progress.every((e) => e.running <= 8)).toBe(true);
    expect(progress[progress.length - 1]).toMatchObject({ done: 32, running: 0, waiting: 0, failed: 0, etaSeconds: 0 });
    expect(events.filter((e) => e.type === 'deviceStateChanged' && e.state === 'done')).toHaveLength(32);
    expect(station.deviceStates().every((s) => s.state === 'done')).toBe(true);
  });

  it('a finished device unplugged and plugged back stays done (no reconnect request, no fresh tile)', async () => {
    expectAllDone(await station.prepare(request()));
    const udid = sim.udids()[3] ?? '';
    const seen = (type: 'deviceDetached' | 'deviceAttached'): Promise<void> =>
      new Promise((resolve) => {
        const off = station.on((e) => {
          if (e.type === type && e.udid === udid) {
            off();
            resolve();
          }
        });
      });
    const left = seen('deviceDetached');
    sim.unplug(udid);
    await left;
    expect(station.deviceStates().find((s) => s.udid === udid)).toMatchObject({ state: 'done' });
    expect(station.deviceStates().find((s) => s.udid === udid)?.nextAction).toBeUndefined();
    const back = seen('deviceAttached');
    await sim.replug(udid);
    await back;
    expect(station.deviceStates().find((s) => s.udid === udid)).toMatchObject({ state: 'done' });
    expect(station.deviceStates().filter((s) => s.state !== 'done')).toEqual([]);
  });

  it('per-hub cap 2 over 4 hubs of 8: never more than 2 running on one hub, 8 overall', async () => {
    const results = await station.prepare(request({ perHub: 2 }));
    expectAllDone(results);
    const hubs = hubsFrom(events);
    expect(new Set(hubs.values())).toEqual(new Set(['1', '2', '3', '4']));
    const { overall, perGroup } = maxConcurrent(events as EventLine[], (udid) => hubs.get(udid) ?? null);
    expect(overall).toBeLessThanOrEqual(8);
    expect([...perGroup.keys()].sort()).toEqual(['1', '2', '3', '4']);
    for (const [hub, n] of perGroup) expect(n, `hub ${hub}`).toBeLessThanOrEqual(2);
    expect(Math.max(...perGroup.values())).toBe(2);
  });

  it('per-hub cap 1, global cap 8: one device per hub at a time, four hubs in parallel', async () => {
    const results = await station.prepare(request({ perHub: 1 }));
    expectAllDone(results);
    const hubs = hubsFrom(events);
    const { overall, perGroup } = maxConcurrent(events as EventLine[], (udid) => hubs.get(udid) ?? null);
    expect(overall).toBeLessThanOrEqual(4);
    for (const [hub, n] of perGroup) expect(n, `hub ${hub}`).toBe(1);
  });

  it('pause holds the queue (running jobs finish), resume lets it go on', async () => {
    let paused = false;
    let resumedAfter = -1;
    const startedWhilePaused: string[] = [];
    station.on((e) => {
      if (e.type === 'jobFinished' && !paused && resumedAfter < 0) {
        paused = true;
        station.pauseBatch();
        // Resume once every job that was running has ended.
        const check = (): void => {
          const s = station.batchStatus().active;
          if (s === null) return;
          if (s.counts.running === 0) {
            resumedAfter = events.length;
            paused = false;
            station.resumeBatch();
          } else setTimeout(check, 5);
        };
        setTimeout(check, 5);
      } else if (paused && e.type === 'jobCreated') startedWhilePaused.push(e.udid);
    });
    const results = await station.prepare(request());
    expectAllDone(results);
    expect(startedWhilePaused).toEqual([]);
    expect(resumedAfter).toBeGreaterThan(0);
    expect(events.some((e) => e.type === 'batchPaused')).toBe(true);
    expect(events.some((e) => e.type === 'batchResumed')).toBe(true);
    const pausedAt = events.findIndex((e) => e.type === 'batchPaused');
    const progressWhilePaused = events
      .slice(pausedAt, resumedAfter)
      .filter((e) => e.type === 'batchProgressed')
      .map((e) => e.running);
    // Running jobs drained to 0 while paused.
    expect(progressWhilePaused[progressWhilePaused.length - 1]).toBe(0);
  });
});
