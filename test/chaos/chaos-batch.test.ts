/**
 * Chaos (issue #9), end to end: a spawned fleet (`kitting sim`, 6 fresh + 2 in-use iPads, 2 more fresh per round), the
 * reference MDM (`kitting mdm-dev --db`), a background syncer (`kitting sync run`) and the station
 * (`kitting prepare UDID… --events`, then `--all`), all separate processes. Each round plugs in two more fresh
 * iPads, starts a batch and, at a random step event of those, does one thing to it (every kind once, in a seeded random order):
 *   - the station SIGKILLed;
 *   - the cable of the device that just reported a step pulled, plugged back in a moment later;
 *   - that device rebooted (it comes back with a new DeviceID mid-job);
 *   - the MCInstall connection cut after a request (`fault UDID disconnect-after=<Type> --once`:
 *     the request takes effect, the answer is lost);
 *   - usbmuxd restarted;
 *   - the MDM: a 5xx burst, dropped connections, slow answers, the token refused (then renewed
 *     with `kitting sync config` and a new token), the MDM SIGKILLed and restarted on the same db
 *     and port, the syncer SIGKILLed.
 * After every round the station database passes `PRAGMA integrity_check`. At the end the same
 * prepare finishes every job, `sync run --once` drains, and: every device shows one cloud
 * configuration, one of each profile, the right name, one pairing per host; no write step took
 * effect twice; the MDM holds exactly one result per finished job (per outbox row) and nothing else.
 *
 * The seed is printed; `CHAOS_SEED=<n>` replays the same choices (timings still vary).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlClient } from '../../src/simulator/index.ts';
import { jobResultKey } from '../../src/store/outbox.ts';
import { MdmProcess, alive, freePort, killAll, spawnKitting, stopChild } from '../helpers/chaos-procs.ts';
import { Rng } from '../helpers/fuzz-targets.ts';
import { expectAppliedOnce, expectPrepared } from '../helpers/prepare-checks.ts';
import { createPrepareEnv, type PrepareEnv } from '../helpers/prepare-env.ts';
import { allAttached, spawnSim, type SimProcess } from '../helpers/sim-process.ts';
import { spawnEvents, type EventProcess } from '../helpers/station-events.ts';
import type { ChildProcess } from 'node:child_process';

const SEED =
  process.env.CHAOS_SEED !== undefined ? Number(process.env.CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31);
const ORG = 'Chaos Test School';
const FRESH = 6;
const IN_USE = 2;
/** Fresh devices plugged in at the start of each round, so every interruption hits real work. */
const PER_ROUND = 2;

const ACTIONS = [
  'kill-station',
  'unplug',
  'reboot',
  'mcinstall-fault',
  'usbmuxd-restart',
  'mdm-5xx',
  'mdm-drop',
  'mdm-delay',
  'mdm-token',
  'mdm-kill',
  'syncer-kill',
] as const;
type Action = (typeof ACTIONS)[number];

const REQUEST_TYPES = [
  'GetCloudConfiguration',
  'EraseDevice',
  'SetCloudConfiguration',
  'StoreProfile',
  'GetProfileList',
  'InstallProfileSilent',
];

let env: PrepareEnv;
let sim: SimProcess;
let control: ControlClient;
let mdm: MdmProcess;
let bp: string;
let activationUrl: string;
let udids: string[];
let syncer: ChildProcess | undefined;
let syncerLog = '';
const log: string[] = [];

const cliEnv = (): NodeJS.ProcessEnv => ({ KITTING_LOG: 'error' });
const stationArgs = (...rest: string[]): string[] => [
  '--data-dir',
  env.dataDir,
  '--passphrase-file',
  env.passphraseFile,
  ...rest,
];

function note(text: string): void {
  log.push(text);
}

async function configureSync(token: string): Promise<void> {
  const tokenFile = path.join(env.dir, 'mdm-token');
  fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const r = await env.kitting(sim.usbmuxd, ['sync', 'config', '--url', mdm.url, '--token-file', tokenFile]);
  expect(r.code, r.stderr).toBe(0);
}

function startSyncer(): void {
  const child = spawnKitting(stationArgs('sync', 'run'), cliEnv());
  child.stderr?.on('data', (d: Buffer) => {
    syncerLog += d.toString();
  });
  syncer = child;
}

async function ensureSyncer(): Promise<void> {
  if (syncer === undefined || !alive(syncer)) startSyncer();
  return Promise.resolve();
}

/** `prepare` of `targets` (UDIDs), or of every attached device. */
function prepareArgs(targets: readonly string[] | 'all' = 'all'): string[] {
  return stationArgs(
    '--json',
    'prepare',
    ...(targets === 'all' ? ['--all'] : targets),
    '--blueprint',
    bp,
    '--yes',
    '--events',
    '--max-parallel',
    '6',
    '--activation-url',
    activationUrl,
    '--return-timeout',
    '10',
  );
}

/** Devices whose newest job is not done (or that have none yet): the rounds work on these. */
function unfinishedUdids(): string[] {
  const jobs = env.jobs();
  return udids.filter((u) => {
    const mine = jobs.filter((j) => j.udid === u);
    return mine[mine.length - 1]?.status !== 'done';
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  process.stdout.write(`chaos seed ${SEED}\n`);
  env = await createPrepareEnv(ORG);
  env.profile('wifi.mobileconfig', 'com.example.wifi');
  env.profile('enroll.mobileconfig', 'com.example.mdm.enroll');
  bp = env.blueprint('chaos', {
    profiles: [{ kind: 'file', path: 'wifi.mobileconfig' }],
    enrollment: { method: 'staged', source: { kind: 'file', path: 'enroll.mobileconfig' } },
  });
  sim = await spawnSim(['--devices', String(FRESH), '--preset', 'fresh', '--timing', 'none']);
  control = new ControlClient(sim.control);
  activationUrl = (await control.activationEndpoint()).url;
  const inUse: string[] = [];
  for (let i = 0; i < IN_USE; i++) {
    const plugged = await sim.ctl(['plug', '--preset', 'in-use']);
    expect(plugged.code, plugged.stderr).toBe(0);
    inUse.push(plugged.stdout.trim());
  }
  for (const udid of inUse) {
    expect((await sim.ctl(['unlock', udid])).code).toBe(0);
    expect((await sim.ctl(['trust', udid, 'accept'])).code).toBe(0);
  }
  udids = [...sim.devices, ...inUse];
  mdm = new MdmProcess(
    await freePort(),
    path.join(env.dir, 'mdm.db'),
    'chaos-station-token-000000000001',
    'chaos-admin-token-0000000000001',
    { KITTING_LOG: 'error' },
  );
  await mdm.start();
  await configureSync(mdm.token);
  startSyncer();
}, 90_000);

afterAll(async () => {
  await killAll();
  await sim?.stop();
  env?.cleanup();
});

/** Does `action` to the running batch `p`, triggered by event `e`. Returns what to undo after the round. */
async function inject(
  action: Action,
  p: EventProcess,
  udid: string | undefined,
  rng: Rng,
): Promise<() => Promise<void>> {
  const none = async (): Promise<void> => undefined;
  switch (action) {
    case 'kill-station':
      p.signal('SIGKILL');
      return none;
    case 'unplug':
      if (udid !== undefined) {
        await control.verb(udid, 'unplug');
        await sleep(50 + rng.int(300));
        await control.verb(udid, 'replug');
      }
      return none;
    case 'reboot':
      if (udid !== undefined) await control.verb(udid, 'reboot');
      return none;
    case 'mcinstall-fault':
      return none; // armed before the round
    case 'usbmuxd-restart':
      await control.request('POST', '/usbmuxd/restart', {});
      return none;
    case 'mdm-5xx':
      await mdm.admin('PUT', '/admin/faults', { failNext: 5, failStatus: rng.pick([500, 502, 503, 504]) });
      return async () => void (await mdm.admin('DELETE', '/admin/faults'));
    case 'mdm-drop':
      await mdm.admin('PUT', '/admin/faults', { dropNext: 3 });
      return async () => void (await mdm.admin('DELETE', '/admin/faults'));
    case 'mdm-delay':
      await mdm.admin('PUT', '/admin/faults', { delayMs: 400 });
      return async () => void (await mdm.admin('DELETE', '/admin/faults'));
    case 'mdm-token':
      await mdm.admin('POST', '/admin/token/refuse');
      return async () => {
        mdm.token = `chaos-station-token-renewed-${String(rng.int(1e9)).padStart(9, '0')}`;
        await mdm.admin('PUT', '/admin/token', { token: mdm.token });
        await configureSync(mdm.token);
        if (syncer !== undefined) await stopChild(syncer, 'SIGTERM');
        startSyncer();
      };
    case 'mdm-kill':
      await mdm.kill();
      await sleep(100 + rng.int(400));
      await mdm.start();
      return none;
    case 'syncer-kill':
      if (syncer !== undefined) await stopChild(syncer, 'SIGKILL');
      return async () => {
        await ensureSyncer();
      };
  }
}

describe(`chaos: a growing batch (8 + 2 per round devices) with the station, fleet, syncer and MDM as processes (seed ${SEED})`, () => {
  it('every kind of interruption once; integrity each time; then every job done, nothing twice, exactly one MDM result per job', async () => {
    const rng = new Rng(SEED, 0);
    const order = [...ACTIONS];
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j] as Action, order[i] as Action];
    }
    for (const [round, action] of order.entries()) {
      // New work every round: two more fresh iPads on the cart (the rest are re-checked and skipped).
      const added: string[] = [];
      for (let i = 0; i < PER_ROUND; i++) {
        const plugged = await sim.ctl(['plug', '--preset', 'fresh']);
        expect(plugged.code, plugged.stderr).toBe(0);
        added.push(plugged.stdout.trim());
      }
      udids.push(...added);
      await allAttached(control, udids);
      await ensureSyncer();
      const after = 1 + rng.int(24);
      if (action === 'mcinstall-fault') {
        const target = rng.pick(added);
        const type = rng.pick(REQUEST_TYPES);
        const r = await sim.ctl(['fault', target, `disconnect-after=${type}`, '--once']);
        expect(r.code, r.stderr).toBe(0);
        note(`round ${round}: ${action} ${type} on ${target}`);
      } else {
        note(`round ${round}: ${action} at step event ${after}`);
      }
      let steps = 0;
      let injected: Promise<() => Promise<void>> | undefined;
      // The round prepares what is not done yet (new devices, jobs interrupted before): the devices
      // already done are left to the final `--all` run, which re-checks them all.
      const p = spawnEvents(sim.usbmuxd, prepareArgs(unfinishedUdids()), (e, proc) => {
        if (e.type !== 'stepStarted' && e.type !== 'stepFinished') return;
        if (e.udid === undefined || !added.includes(e.udid)) return;
        steps++;
        if (steps === after && injected === undefined) {
          injected = inject(action, proc, e.udid, rng);
          // Awaited (and so reported) after the round; until then a failure must not surface as an
          // unhandled rejection.
          injected.catch(() => undefined);
        }
      });
      const exit = await p.exited;
      const undo = await (injected ?? Promise.resolve(async () => undefined));
      await undo();
      const where = `seed ${SEED}, ${log.join('; ')}`;
      if (exit.signal !== 'SIGKILL') {
        // Devices that went away may fail their job (exit 1); anything else is a crash.
        expect([0, 1], `${where}: exit ${String(exit.code)}\n${p.stderr()}`).toContain(exit.code);
        expect(p.stderr(), where).not.toMatch(/TypeError|RangeError|ReferenceError|"code":"bug"/);
        const summary = p.lines[p.lines.length - 1];
        expect(summary?.type, `${where}\n${p.stderr()}`).toBe('summary');
      }
      expect(env.integrity(), `after ${where}`).toBe('ok');
    }

    // Clean up armed faults, then the same command finishes every job.
    for (const udid of udids) expect((await sim.ctl(['fault', udid, 'clear'])).code).toBe(0);
    let finalSummary: { results?: { status: string }[] } | undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      await allAttached(control, udids);
      const final = spawnEvents(sim.usbmuxd, prepareArgs());
      const exit = await final.exited;
      finalSummary = final.lines[final.lines.length - 1] as typeof finalSummary;
      if (exit.code === 0 && finalSummary?.results?.every((r) => r.status === 'done') === true) break;
      note(`final run ${attempt}: exit ${String(exit.code)}`);
    }
    expect(finalSummary?.results, `seed ${SEED}, ${log.join('; ')}`).toHaveLength(udids.length);
    expect(
      finalSummary?.results?.every((r) => r.status === 'done'),
      `seed ${SEED}, ${log.join('; ')}`,
    ).toBe(true);

    // Drain what is left, in the foreground.
    if (syncer !== undefined) await stopChild(syncer, 'SIGTERM');
    const once = await env.kitting(sim.usbmuxd, ['--json', 'sync', 'run', '--once']);
    expect(once.code, `${once.stderr}\n${syncerLog}`).toBe(0);
    expect(JSON.parse(once.stdout)).toMatchObject({ queueLength: 0 });
    expect(env.integrity()).toBe('ok');

    // The devices.
    const jobs = env.jobs();
    for (const udid of udids) {
      const state = await control.state(udid);
      expectPrepared(state, { org: ORG, profiles: ['com.example.wifi'], stored: 'com.example.mdm.enroll' });
      const hosts = state.pairings.map((x) => x.hostId);
      expect(new Set(hosts).size, `${udid} pairings`).toBe(hosts.length);
      expectAppliedOnce(env, udid);
      expect(jobs.filter((j) => j.udid === udid && (j.status === 'running' || j.status === 'pending'))).toEqual([]);
    }

    // The MDM: exactly one result per finished job, and nothing else.
    const db = env.db();
    let results: { job_id: string; outcome: 'done' | 'failed' | 'cancelled'; created_at: string }[];
    let outbox: { idempotency_key: string; state: string; payload: string }[];
    try {
      results = db.prepare('SELECT job_id, outcome, created_at FROM results').all() as typeof results;
      outbox = db.prepare('SELECT idempotency_key, state, payload FROM outbox').all() as typeof outbox;
    } finally {
      db.close();
    }
    const held = ((await mdm.admin('GET', '/admin/state')) as { results: { idempotencyKey: string }[] }).results;
    const heldKeys = held.map((r) => r.idempotencyKey);
    expect(new Set(heldKeys).size, 'no result held twice').toBe(heldKeys.length);
    const parked = outbox.filter((o) => o.state === 'parked');
    // Only a result without a serial (a job that failed before reading it) may be refused by the MDM.
    for (const o of parked) expect((JSON.parse(o.payload) as { serial: unknown }).serial).toBeNull();
    expect(outbox.filter((o) => o.state !== 'delivered' && o.state !== 'parked')).toEqual([]);
    expect(heldKeys.sort()).toEqual(
      outbox
        .filter((o) => o.state === 'delivered')
        .map((o) => o.idempotency_key)
        .sort(),
    );
    const doneJobs = results.filter((r) => r.outcome === 'done');
    expect(doneJobs.length).toBeGreaterThanOrEqual(udids.length);
    for (const r of results) {
      const key = jobResultKey({ jobId: r.job_id, outcome: r.outcome, at: r.created_at });
      const n = heldKeys.filter((k) => k === key).length;
      if (outbox.find((o) => o.idempotency_key === key)?.state === 'parked') expect(n).toBe(0);
      else expect(n, `job ${r.job_id} (${r.outcome}) at the MDM`).toBe(1);
    }
    process.stdout.write(
      `chaos seed ${SEED}: ${log.join('; ')}; ${results.length} job results, ${heldKeys.length} held by the MDM, ${parked.length} parked\n`,
    );
    await mdm.stop();
  }, 600_000);
});
