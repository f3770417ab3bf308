/** The jobs tables (migration 0002), their SQL in src/store/jobs.ts, and `kitting jobs --json`. */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { migrateTo, openDatabase, schemaVersion, tableColumns, type Db } from '../../src/store/db.ts';
import { getIdentity, insertIdentity } from '../../src/store/identities.ts';
import {
  appendStepEvent,
  cancelJob,
  createJob,
  failJob,
  findUnfinishedJob,
  finishJob,
  getDevice,
  getJob,
  getResult,
  latestStepEvent,
  listJobs,
  listResults,
  listStepEvents,
  markJobRunning,
  markStepFinished,
  markStepRunning,
  markStepWaiting,
  recordAttemptFailed,
  recordIdentity,
  upsertDevice,
  type NewJob,
} from '../../src/store/jobs.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const NODE = path.join(ROOT, 'node_modules/.bin/node');
const STEP_IDS = ['identify', 'check-mdm', 'pair'];

let dir: string;
const open: Db[] = [];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-jobs-'));
});
afterEach(() => {
  for (const db of open.splice(0)) if (db.open) db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function db(file = 'station.db'): Db {
  const d = openDatabase(path.join(dir, file));
  open.push(d);
  return d;
}

function newJob(over: Partial<NewJob> = {}): NewJob {
  return {
    id: `job-${Math.random().toString(36).slice(2)}`,
    udid: 'UDID-A',
    serial: null,
    blueprintName: 'Grade 3',
    blueprintJson: '{"name":"Grade 3"}',
    batchId: 'batch-1',
    counterStart: 1,
    steps: STEP_IDS,
    ...over,
  };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof KitError ? err.code : `not a KitError: ${String(err)}`;
  }
  return 'did not throw';
}

describe('migration 0002-jobs', () => {
  it('migrates 0001 → 0002 keeping the identities, and adds the five tables', () => {
    const file = path.join(dir, 'old.db');
    const old = openDatabase(file, { migrate: 1 });
    insertIdentity(old, {
      id: 'test-school',
      org: 'テスト学園',
      fingerprint: 'a'.repeat(64),
      notBefore: '2025-01-01T00:00:00.000Z',
      notAfter: '2035-01-01T00:00:00.000Z',
      certificate: Buffer.from([1, 2, 3]),
      encryptedKey: Buffer.from([4, 5, 6]),
      createdAt: '2025-01-01T00:00:00.000Z',
    });
    expect(schemaVersion(old)).toBe(1);
    expect(migrateTo(old, 2)).toBe(2);
    const kept = getIdentity(old, 'test-school');
    expect(kept?.org).toBe('テスト学園');
    expect(kept?.encryptedKey).toEqual(Buffer.from([4, 5, 6]));
    for (const t of ['devices', 'jobs', 'job_steps', 'step_events', 'results']) {
      expect(tableColumns(old, t).length).toBeGreaterThan(0);
    }
    expect(tableColumns(old, 'jobs')).toEqual(
      expect.arrayContaining([
        'id',
        'udid',
        'serial',
        'blueprint_name',
        'blueprint_json',
        'status',
        'batch_id',
        'seq_n',
      ]),
    );
    old.close();
  });

  it('refuses rows that break the status and JSON checks', () => {
    const d = db();
    const job = createJob(d, newJob(), '2025-04-01T00:00:00.000Z');
    expect(() => d.prepare("UPDATE jobs SET status = 'finished' WHERE id = ?").run(job.id)).toThrow(/CHECK/);
    expect(() => d.prepare("UPDATE job_steps SET status = 'ok' WHERE job_id = ?").run(job.id)).toThrow(/CHECK/);
    expect(() => d.prepare("UPDATE jobs SET blueprint_json = '{' WHERE id = ?").run(job.id)).toThrow(/CHECK/);
    expect(() => upsertDevice(d, { udid: 'X', serial: null, ecid: '12ab', productType: null }, 'now')).toThrow(
      KitError,
    );
  });
});

describe('devices', () => {
  it('keeps first_seen, moves last_seen and keeps a 64-bit ECID exactly', () => {
    const d = db();
    upsertDevice(d, { udid: 'U1', serial: 'S1', ecid: '18446744073709551615', productType: 'iPad13,18' }, 't1');
    upsertDevice(d, { udid: 'U1', serial: null, ecid: null, productType: null }, 't2');
    expect(getDevice(d, 'U1')).toEqual({
      udid: 'U1',
      serial: 'S1',
      ecid: '18446744073709551615',
      productType: 'iPad13,18',
      firstSeen: 't1',
      lastSeen: 't2',
    });
    expect(getDevice(d, 'nope')).toBeUndefined();
  });
});

describe('jobs', () => {
  it('creates a job with pending steps in order, and the naming counter per batch', () => {
    const d = db();
    const a = createJob(d, newJob({ udid: 'A', counterStart: 5 }), 't1');
    const b = createJob(d, newJob({ udid: 'B', counterStart: 5 }), 't2');
    const a2 = createJob(d, newJob({ udid: 'A', counterStart: 5 }), 't3');
    const other = createJob(d, newJob({ udid: 'C', batchId: 'batch-2', counterStart: 1 }), 't4');
    expect([a.seqN, b.seqN, a2.seqN, other.seqN]).toEqual([5, 6, 5, 1]);
    expect(a.status).toBe('pending');
    expect(a.steps.map((s) => [s.stepId, s.status, s.attempts])).toEqual([
      ['identify', 'pending', 0],
      ['check-mdm', 'pending', 0],
      ['pair', 'pending', 0],
    ]);
    expect(listJobs(d).map((j) => j.id)).toEqual([a.id, b.id, a2.id, other.id]);
    expect(listStepEvents(d, a.id).map((e) => e.kind)).toEqual(['jobCreated']);
  });

  it('persists each transition: running (attempts, startedAt), attempt failures, done, waiting', () => {
    const d = db();
    const job = createJob(d, newJob(), 't0');
    markJobRunning(d, job.id, false, 't1');
    const s = markStepRunning(d, job.id, 'identify', 't2');
    expect(s).toMatchObject({ status: 'running', attempts: 1, startedAt: 't2' });
    recordAttemptFailed(d, job.id, 'identify', { code: 'device/timeout', message: 'slow' }, 1000, 't3');
    expect(markStepRunning(d, job.id, 'identify', 't4').attempts).toBe(2);
    markStepFinished(d, job.id, 'identify', 'done', 't5', { serial: 'S1' });
    markStepFinished(d, job.id, 'check-mdm', 'skipped', 't6');
    markStepRunning(d, job.id, 'pair', 't7');
    markStepWaiting(d, job.id, 'pair', 'trust-pending', { code: 'lockdown/trust-pending', message: 'tap' }, 't8');
    const after = getJob(d, job.id);
    expect(after?.status).toBe('waiting');
    expect(after?.waitingReason).toBe('trust-pending');
    expect(after?.steps.map((x) => [x.stepId, x.status, x.errorCode])).toEqual([
      ['identify', 'done', null],
      ['check-mdm', 'skipped', null],
      ['pair', 'waiting', 'lockdown/trust-pending'],
    ]);
    expect(after?.steps[0]).toMatchObject({ startedAt: 't4', finishedAt: 't5', attempts: 2 });
    expect(listStepEvents(d, job.id).map((e) => e.kind)).toEqual([
      'jobCreated',
      'jobStarted',
      'stepStarted',
      'attemptFailed',
      'stepStarted',
      'stepFinished',
      'stepFinished',
      'stepStarted',
      'jobWaiting',
    ]);
    expect(findUnfinishedJob(d, 'UDID-A')?.id).toBe(job.id);
    markJobRunning(d, job.id, true, 't9');
    expect(getJob(d, job.id)).toMatchObject({ status: 'running', waitingReason: null });
  });

  it('writes the result row in the same transaction as the final status', () => {
    const d = db();
    const ok = createJob(d, newJob({ udid: 'A' }), 't0');
    recordIdentity(d, ok.id, 'identify', { udid: 'A', serial: 'SER-A', ecid: '1', productType: 'iPad13,18' }, 't1');
    finishJob(d, ok.id, { name: 'G3-001' }, 't2');
    expect(getJob(d, ok.id)).toMatchObject({ status: 'done', finishedAt: 't2', serial: 'SER-A' });
    expect(getResult(d, ok.id)).toEqual({
      jobId: ok.id,
      udid: 'A',
      serial: 'SER-A',
      outcome: 'done',
      summary: { name: 'G3-001' },
      createdAt: 't2',
    });

    const bad = createJob(d, newJob({ udid: 'B' }), 't3');
    failJob(d, bad.id, 'pair', { code: 'lockdown/trust-denied', message: 'no' }, {}, 't4');
    expect(getJob(d, bad.id)).toMatchObject({ status: 'failed', errorCode: 'lockdown/trust-denied' });
    expect(getJob(d, bad.id)?.steps[2]).toMatchObject({ status: 'failed', errorCode: 'lockdown/trust-denied' });
    expect(getResult(d, bad.id)?.outcome).toBe('failed');

    const stopped = createJob(d, newJob({ udid: 'C' }), 't5');
    markStepRunning(d, stopped.id, 'identify', 't6');
    cancelJob(d, stopped.id, 'identify', {}, 't7');
    expect(getJob(d, stopped.id)).toMatchObject({ status: 'cancelled', errorCode: 'kitting/cancelled' });
    expect(getJob(d, stopped.id)?.steps[0]?.status).toBe('pending');
    expect(listResults(d).map((r) => r.outcome)).toEqual(['done', 'failed', 'cancelled']);
    expect(findUnfinishedJob(d, 'A')).toBeUndefined();
  });

  it('rolls a failing final transition back whole: no result row without its status', () => {
    const d = db();
    const job = createJob(d, newJob(), 't0');
    // A step id that does not exist makes failJob throw after nothing else was kept.
    expect(codeOf(() => failJob(d, job.id, 'no-such-step', { code: 'bug', message: 'x' }, {}, 't1'))).toBe('bug');
    expect(getJob(d, job.id)?.status).toBe('pending');
    expect(getResult(d, job.id)).toBeUndefined();
    expect(codeOf(() => finishJob(d, 'no-such-job', {}, 't2'))).toBe('bug');
    expect(listResults(d)).toEqual([]);
  });

  it('keeps facts as events and reads the newest', () => {
    const d = db();
    const job = createJob(d, newJob(), 't0');
    appendStepEvent(d, job.id, 'identify', 'factsRecorded:identity', { serial: 'A' }, 't1');
    appendStepEvent(d, job.id, 'identify', 'factsRecorded:identity', { serial: 'B' }, 't2');
    expect(latestStepEvent(d, job.id, 'factsRecorded:identity')).toEqual({ serial: 'B' });
    expect(latestStepEvent(d, job.id, 'factsRecorded:inspection')).toBeUndefined();
    expect(listStepEvents(d, job.id, 'factsRecorded:identity')).toHaveLength(2);
  });
});

describe('kitting jobs --json', () => {
  function kitting(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(
        NODE,
        ['bin/kitting.js', ...args],
        { cwd: ROOT, env: { ...process.env, LANG: 'en_US.UTF-8' } },
        (err, stdout, stderr) => {
          resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
        },
      );
    });
  }

  it('prints the cli.md shape for jobs seeded through the store', async () => {
    const d = db();
    const done = createJob(d, newJob({ id: 'job-1', udid: 'UDID-1' }), '2025-04-01T00:00:00.000Z');
    recordIdentity(
      d,
      'job-1',
      'identify',
      { udid: 'UDID-1', serial: 'SER1', ecid: '1', productType: null },
      '2025-04-01T00:00:01.000Z',
    );
    for (const [i, id] of STEP_IDS.entries()) {
      markStepRunning(d, 'job-1', id, `2025-04-01T00:00:0${2 * i + 2}.000Z`);
      markStepFinished(d, 'job-1', id, 'done', `2025-04-01T00:00:0${2 * i + 3}.000Z`);
    }
    finishJob(d, done.id, {}, '2025-04-01T00:00:09.000Z');
    createJob(d, newJob({ id: 'job-2', udid: 'UDID-2' }), '2025-04-01T00:01:00.000Z');
    markStepRunning(d, 'job-2', 'identify', '2025-04-01T00:01:01.000Z');
    markStepWaiting(
      d,
      'job-2',
      'identify',
      'device-gone',
      { code: 'usbmux/device-gone', message: 'gone' },
      '2025-04-01T00:01:02.000Z',
    );
    d.close();

    const run = await kitting('--data-dir', dir, 'jobs', '--json');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const jobs = JSON.parse(run.stdout) as unknown;
    expect(jobs).toEqual([
      {
        id: 'job-1',
        udid: 'UDID-1',
        serial: 'SER1',
        blueprint: 'Grade 3',
        status: 'done',
        steps: [
          {
            id: 'identify',
            status: 'done',
            startedAt: '2025-04-01T00:00:02.000Z',
            finishedAt: '2025-04-01T00:00:03.000Z',
          },
          {
            id: 'check-mdm',
            status: 'done',
            startedAt: '2025-04-01T00:00:04.000Z',
            finishedAt: '2025-04-01T00:00:05.000Z',
          },
          { id: 'pair', status: 'done', startedAt: '2025-04-01T00:00:06.000Z', finishedAt: '2025-04-01T00:00:07.000Z' },
        ],
      },
      {
        id: 'job-2',
        udid: 'UDID-2',
        serial: null,
        blueprint: 'Grade 3',
        status: 'waiting',
        waitingReason: 'device-gone',
        steps: [
          { id: 'identify', status: 'waiting', errorCode: 'usbmux/device-gone', startedAt: '2025-04-01T00:01:01.000Z' },
          { id: 'check-mdm', status: 'pending' },
          { id: 'pair', status: 'pending' },
        ],
      },
    ]);

    const human = await kitting('--data-dir', dir, 'jobs');
    expect(human.code).toBe(0);
    const lines = human.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain('UDID-1  SER1  Grade 3  done');
    expect(lines[1]).toContain('waiting (device-gone usbmux/device-gone)');
    expect(lines[1]).toContain('identify:waiting check-mdm:pending pair:pending');
  });

  it('answers an empty array on a fresh data folder', async () => {
    const fresh = path.join(dir, 'fresh');
    const run = await kitting('--data-dir', fresh, 'jobs', '--json');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual([]);
  });
});
