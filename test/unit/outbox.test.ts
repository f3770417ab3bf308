/**
 * The MDM outbox (src/store/outbox.ts): claim/lease/park/deliver transitions, and the job's final
 * status, its result row and its outbox row committing (and rolling back) together.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { openDatabase, type Db } from '../../src/store/db.ts';
import { createJob, failJob, finishJob, getJob, getResult, recordIdentity } from '../../src/store/jobs.ts';
import {
  claimBatch,
  claimOwners,
  enqueueResult,
  enqueueResults,
  getOutboxRow,
  jobResultKey,
  outboxCounts,
  outboxStateCounts,
  parkClaims,
  recordBatchOutcome,
  releaseClaims,
  releaseClaimsOf,
  requeueParked,
} from '../../src/store/outbox.ts';

const open: Db[] = [];
afterEach(() => {
  for (const d of open.splice(0)) d.close();
});
function db(): Db {
  const d = openDatabase(':memory:');
  open.push(d);
  return d;
}
const T0 = '2025-01-01T00:00:00.000Z';
const T1 = '2025-01-01T00:01:00.000Z';
const T9 = '2025-01-01T01:00:00.000Z';

function seed(d: Db, n: number): void {
  enqueueResults(
    d,
    Array.from({ length: n }, (_, i) => ({
      idempotencyKey: `k${i}`,
      createdAt: T0,
      payload: { idempotencyKey: `k${i}`, serial: `S${i}`, outcome: 'done', finishedAt: T0 },
    })),
  );
}

describe('outbox transitions', () => {
  it('queues once per key, claims oldest first with a lease, and gives expired claims back', () => {
    const d = db();
    seed(d, 5);
    expect(enqueueResult(d, { idempotencyKey: 'k0', serial: 'OTHER' })).toBe(false);
    expect(getOutboxRow(d, 'k0')?.payload.serial).toBe('S0');
    const a = claimBatch(d, { limit: 3, now: T0, leaseUntil: T1, owner: 'A' });
    expect(a.map((r) => r.idempotencyKey)).toEqual(['k0', 'k1', 'k2']);
    expect(a.every((r) => r.attempts === 1)).toBe(true);
    expect(getOutboxRow(d, 'k0')).toMatchObject({ state: 'in-flight', leaseOwner: 'A', leaseUntil: T1 });
    // Another syncer sees only the unclaimed rows until the lease runs out.
    expect(claimBatch(d, { limit: 10, now: T0, leaseUntil: T1, owner: 'B' }).map((r) => r.idempotencyKey)).toEqual([
      'k3',
      'k4',
    ]);
    const late = claimBatch(d, { limit: 10, now: T9, leaseUntil: T9, owner: 'C' });
    expect(late.map((r) => r.idempotencyKey)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
    expect(late[0]?.attempts).toBe(2);
    expect(outboxCounts(d)).toMatchObject({ queued: 5, inFlight: 5, delivered: 0 });
  });

  it('records accepted, duplicate and parked per key; unmentioned rows go back to queued', () => {
    const d = db();
    seed(d, 4);
    const rows = claimBatch(d, { limit: 4, now: T0, leaseUntil: T1, owner: 'A' });
    const n = recordBatchOutcome(
      d,
      'A',
      rows.map((r) => r.id),
      { accepted: ['k0'], duplicates: ['k1'], parked: [{ key: 'k2', reason: 'serial: bad' }] },
      T1,
    );
    expect(n).toBe(2);
    expect(getOutboxRow(d, 'k0')).toMatchObject({ state: 'delivered', duplicate: false, deliveredAt: T1 });
    expect(getOutboxRow(d, 'k1')).toMatchObject({ state: 'delivered', duplicate: true });
    expect(getOutboxRow(d, 'k2')).toMatchObject({ state: 'parked', parkedReason: 'serial: bad' });
    expect(getOutboxRow(d, 'k3')).toMatchObject({ state: 'queued', leaseOwner: null });
    expect(outboxCounts(d)).toEqual({ queued: 1, inFlight: 0, delivered: 2, duplicates: 1, parked: 1 });
    expect(requeueParked(d, 'k2')).toBe(true);
    expect(getOutboxRow(d, 'k2')).toMatchObject({ state: 'queued', parkedReason: null });
  });

  it('only the owner may settle its claims; a dead owner’s claims are released', () => {
    const d = db();
    seed(d, 3);
    const rows = claimBatch(d, { limit: 3, now: T0, leaseUntil: T9, owner: 'pid:1' });
    recordBatchOutcome(d, 'other', [rows[0]?.id ?? 0], { accepted: ['k0'], duplicates: [], parked: [] }, T1);
    expect(getOutboxRow(d, 'k0')?.state).toBe('in-flight');
    expect(releaseClaims(d, 'other', [rows[0]?.id ?? 0], null)).toBe(0);
    expect(parkClaims(d, 'pid:1', [rows[0]?.id ?? 0], 'refused')).toBe(1);
    expect(claimOwners(d)).toEqual(['pid:1']);
    expect(releaseClaimsOf(d, 'pid:1')).toBe(2);
    expect(claimOwners(d)).toEqual([]);
    expect(releaseClaims(d, 'pid:1', [rows[1]?.id ?? 0], T9)).toBe(0);
    expect(claimBatch(d, { limit: 5, now: T1, leaseUntil: T9, owner: 'B' })).toHaveLength(2);
  });

  it('merges expired claims and queued rows oldest first, cut at the limit', () => {
    const d = db();
    seed(d, 8);
    const a = claimBatch(d, { limit: 5, now: T0, leaseUntil: T1, owner: 'A' });
    expect(a.map((r) => r.idempotencyKey)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
    expect(releaseClaims(d, 'A', [a[1]?.id ?? 0, a[3]?.id ?? 0], null)).toBe(2);
    // While A's lease holds (k0, k2, k4) only queued rows are due: B takes k1, k3 for long.
    const b = claimBatch(d, { limit: 2, now: T0, leaseUntil: '2099-01-01T00:00:00.000Z', owner: 'B' });
    expect(b.map((r) => r.idempotencyKey)).toEqual(['k1', 'k3']);
    // A's lease ran out: its rows and the queued ones (k5…k7) interleave by id; B's stay B's.
    const c = claimBatch(d, { limit: 4, now: T9, leaseUntil: T9, owner: 'C' });
    expect(c.map((r) => r.idempotencyKey)).toEqual(['k0', 'k2', 'k4', 'k5']);
    expect(c.map((r) => r.attempts)).toEqual([2, 2, 2, 1]);
    expect(outboxStateCounts(d)).toEqual({ queued: 8, inFlight: 6, delivered: 0, parked: 0 });
  });

  it('stops a claim at the byte budget but always takes one row', () => {
    const d = db();
    seed(d, 10);
    expect(claimBatch(d, { limit: 10, now: T0, leaseUntil: T1, owner: 'A', maxBytes: 1 })).toHaveLength(1);
  });
});

describe('the job transaction writes the outbox row', () => {
  it('a finished job commits its status, result row and outbox row together', () => {
    const d = db();
    const job = createJob(
      d,
      {
        id: 'job-1',
        udid: 'UDID-1',
        serial: null,
        blueprintName: 'G3',
        blueprintJson: '{"name":"G3"}',
        batchId: 'b',
        counterStart: 1,
        steps: ['identify', 'check-mdm'],
      },
      T0,
    );
    recordIdentity(d, job.id, 'identify', { udid: 'UDID-1', serial: 'SERA1', ecid: '1', productType: 'iPad13,18' }, T0);
    finishJob(d, job.id, { blueprint: 'G3', steps: { identify: 'done', 'check-mdm': 'done' } }, T1);
    const row = getOutboxRow(d, jobResultKey({ jobId: 'job-1', outcome: 'done', at: T1 }));
    expect(row?.payload).toEqual({
      idempotencyKey: 'job:job-1:done:2025-01-01T00:01:00.000Z',
      serial: 'SERA1',
      udid: 'UDID-1',
      outcome: 'done',
      finishedAt: T1,
      blueprint: 'G3',
      steps: [
        { name: 'identify', status: 'done' },
        { name: 'check-mdm', status: 'done' },
      ],
    });
  });

  it('rolls back together: an outbox insert that fails leaves no result row and no final status', () => {
    const d = db();
    const job = createJob(
      d,
      {
        id: 'job-2',
        udid: 'UDID-2',
        serial: null,
        blueprintName: 'G3',
        blueprintJson: '{"name":"G3"}',
        batchId: 'b',
        counterStart: 1,
        steps: ['identify'],
      },
      T0,
    );
    d.exec("CREATE TRIGGER no_outbox BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'outbox refused'); END");
    let code = 'did not throw';
    try {
      failJob(d, job.id, 'identify', { code: 'device/timeout', message: 'x' }, {}, T1);
    } catch (err) {
      code = err instanceof KitError ? err.code : 'not a KitError';
    }
    expect(code).toBe('store/constraint');
    expect(getJob(d, job.id)?.status).toBe('pending');
    expect(getResult(d, job.id)).toBeUndefined();
    expect(outboxCounts(d).queued).toBe(0);
    d.exec('DROP TRIGGER no_outbox');
    failJob(d, job.id, 'identify', { code: 'device/timeout', message: 'x' }, {}, T1);
    expect(getResult(d, job.id)?.outcome).toBe('failed');
    expect(getOutboxRow(d, jobResultKey({ jobId: 'job-2', outcome: 'failed', at: T1 }))?.payload).toMatchObject({
      outcome: 'failed',
      errorCode: 'device/timeout',
      serial: null,
    });
  });
});
