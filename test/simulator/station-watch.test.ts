/**
 * Watch mode (`kitting watch`, `Station.watch`): devices attached at start and plugged during the
 * run are prepared; a device unplugged mid-job continues the same job when plugged back; a device
 * showing the Trust dialog finishes once the person taps Trust (`sim-ctl trust UDID accept`)
 * without restarting watch; SIGINT stops cleanly with the jobs persisted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StationEvent } from '../../src/contract.ts';
import { ControlClient, startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { Station } from '../../src/station.ts';
import { expectAppliedOnce } from '../helpers/prepare-checks.ts';
import { createPrepareEnv, type PrepareEnv } from '../helpers/prepare-env.ts';
import { spawnSim, type SimProcess } from '../helpers/sim-process.ts';
import { spawnEvents, type EventLine } from '../helpers/station-events.ts';

describe('kitting watch (spawned fleet)', () => {
  let env: PrepareEnv;
  let sim: SimProcess;
  let control: ControlClient;
  let bp: string;
  let activationUrl: string;

  beforeAll(async () => {
    env = await createPrepareEnv('Watch Test School');
    bp = env.blueprint('watch');
    sim = await spawnSim(['--devices', '2', '--preset', 'fresh', '--timing', 'none']);
    control = new ControlClient(sim.control);
    activationUrl = (await control.activationEndpoint()).url;
  });
  afterAll(async () => {
    await sim.stop();
    env.cleanup();
  });

  it('prepares devices present at start and plugged later; Trust tapped later continues the same job; SIGINT persists', async () => {
    const w = spawnEvents(sim.usbmuxd, [
      '--data-dir',
      env.dataDir,
      '--passphrase-file',
      env.passphraseFile,
      '--json',
      'watch',
      '--blueprint',
      bp,
      '--yes',
      '--events',
      '--max-parallel',
      '4',
      '--per-hub',
      '2',
      '--pair-timeout',
      '1',
      '--poll-interval',
      '200',
      '--activation-url',
      activationUrl,
    ]);
    try {
      const finished = (udid: string) => (e: EventLine) => e.type === 'jobFinished' && e.udid === udid;
      await w.waitFor((e) => e.type === 'batchStarted');
      for (const udid of sim.devices) await w.waitFor(finished(udid));

      // Plugged during the run.
      const plugged = await sim.ctl(['plug', '--preset', 'fresh']);
      expect(plugged.code, plugged.stderr).toBe(0);
      const late = plugged.stdout.trim();
      await w.waitFor(finished(late));

      // In use, Trust dialog left up: the job waits for Trust, is re-polled, and goes on once tapped.
      const inUse = (await sim.ctl(['plug', '--preset', 'in-use'])).stdout.trim();
      expect((await sim.ctl(['trust', inUse, 'prompt'])).code).toBe(0);
      expect((await sim.ctl(['unlock', inUse])).code).toBe(0);
      await w.waitFor((e) => e.type === 'jobWaiting' && e.udid === inUse && e.reason === 'trust-pending');
      await w.waitFor((e) => e.type === 'deviceStateChanged' && e.udid === inUse && e.nextAction === 'tap-trust');
      expect(w.lines.some(finished(inUse))).toBe(false);
      expect((await sim.ctl(['trust', inUse, 'accept'])).code).toBe(0);
      const done = await w.waitFor(finished(inUse));
      const created = w.lines.filter((e) => e.type === 'jobCreated' && e.udid === inUse);
      expect(created).toHaveLength(1);
      expect(done.jobId).toBe(created[0]?.jobId);
      expect(w.lines.some((e) => e.type === 'jobResumed' && e.udid === inUse)).toBe(true);

      w.signal('SIGINT');
      const exit = await w.exited;
      expect(exit.code, w.stderr()).toBe(0);
      const summary = w.lines[w.lines.length - 1] as { type: string; results?: { udid: string; status: string }[] };
      expect(summary.type).toBe('summary');
      expect(new Set(summary.results?.map((r) => r.udid))).toEqual(new Set([...sim.devices, late, inUse]));
      expect(summary.results?.every((r) => r.status === 'done')).toBe(true);
      const jobs = env.jobs();
      expect(jobs.every((j) => j.status === 'done')).toBe(true);
      for (const udid of [...sim.devices, late, inUse]) expectAppliedOnce(env, udid);
      expect((await control.state(inUse)).trust).toBe('accept');
    } finally {
      w.signal('SIGKILL');
      await w.exited;
    }
  }, 120_000);

  it('SIGINT mid-job: the job is persisted cancelled, no step left running, and the next watch finishes the device with nothing applied twice', async () => {
    const args = [
      '--data-dir',
      env.dataDir,
      '--passphrase-file',
      env.passphraseFile,
      '--json',
      'watch',
      '--blueprint',
      bp,
      '--events',
      '--activation-url',
      activationUrl,
    ];
    const udid = (await sim.ctl(['plug', '--preset', 'fresh'])).stdout.trim();
    // A slow device, so SIGINT lands mid-job.
    expect((await sim.ctl(['fault', udid, 'delay-ms=150'])).code).toBe(0);
    const first = spawnEvents(sim.usbmuxd, args);
    await first.waitFor((e) => e.type === 'stepFinished' && e.udid === udid && e.stepId === 'pair');
    first.signal('SIGINT');
    expect((await first.exited).code, first.stderr()).toBe(0);
    const mine = env.jobs().filter((j) => j.udid === udid);
    expect(mine).toHaveLength(1);
    expect(mine[0]?.status).toBe('cancelled');
    expect(mine[0]?.steps.some((s) => s.status === 'running')).toBe(false);
    expect((await sim.ctl(['fault', udid, 'clear'])).code).toBe(0);
    const second = spawnEvents(sim.usbmuxd, args);
    try {
      await second.waitFor((e) => e.type === 'jobFinished' && e.udid === udid);
      second.signal('SIGINT');
      expect((await second.exited).code, second.stderr()).toBe(0);
      expectAppliedOnce(env, udid);
    } finally {
      second.signal('SIGKILL');
      await second.exited;
    }
  }, 120_000);
});

describe('Station.watch (in-process fleet)', () => {
  let env: PrepareEnv;
  let sim: Simulator;
  let bp: string;

  beforeAll(async () => {
    env = await createPrepareEnv('Watch Unplug School');
    bp = env.blueprint('watch-unplug');
    sim = await startSimulator({ devices: 0, timing: 'none' });
  });
  afterAll(async () => {
    await sim.stop();
    env.cleanup();
  });

  it.each(['pair', 'activate', 'configure'])(
    'unplugged after %s and plugged back: the same job continues to done',
    async (step) => {
      const station = new Station({
        usbmuxdAddress: sim.usbmuxdAddress,
        dataDir: env.dataDir,
        passphraseFile: env.passphraseFile,
        pairTimeoutMs: 3_000,
        retry: { baseDelayMs: 50, maxDelayMs: 200 },
      });
      const controller = new AbortController();
      const events: StationEvent[] = [];
      let udid = '';
      let pulled = false;
      const finished = new Promise<void>((resolve) => {
        station.on((e) => {
          events.push(e);
          if (e.type === 'batchStarted') udid = sim.plug('fresh');
          if (e.type === 'stepFinished' && e.udid === udid && e.stepId === step && !pulled) {
            pulled = true;
            sim.unplug(udid);
            setTimeout(() => void sim.replug(udid), 150);
          }
          if (e.type === 'jobFinished' && e.udid === udid) resolve();
        });
      });
      const watching = station.watch({
        blueprint: bp,
        maxParallel: 2,
        confirmedErase: true,
        activationUrl: sim.activationUrl,
        pollIntervalMs: 100,
        signal: controller.signal,
      });
      try {
        await finished;
      } finally {
        controller.abort();
      }
      const results = await watching;
      await station.close();
      expect(pulled).toBe(true);
      expect(results.find((r) => r.udid === udid)?.status).toBe('done');
      const created = events.filter((e) => e.type === 'jobCreated' && e.udid === udid);
      expect(created).toHaveLength(1);
      const jobId = created[0]?.type === 'jobCreated' ? created[0].jobId : '';
      expect(
        events.filter((e) => e.type === 'jobFinished' && e.udid === udid).map((e) => 'jobId' in e && e.jobId),
      ).toEqual([jobId]);
      expect(events.some((e) => e.type === 'deviceDetached' && e.udid === udid)).toBe(true);
      expect(events.some((e) => e.type === 'jobWaiting' && e.udid === udid && e.reason === 'device-gone')).toBe(true);
      expect(env.jobs().filter((j) => j.udid === udid)).toHaveLength(1);
      expectAppliedOnce(env, udid);
    },
  );
});
