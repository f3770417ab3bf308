/**
 * SQL for the kitting jobs (migration 0002): `devices`, `jobs`, `job_steps`, `step_events` and
 * `results`. No other file touches these tables.
 *
 * Every function is synchronous. Functions that change more than one row (a step and its job, a
 * job's final status and its result) run in one transaction ({@link transaction}), so a crash
 * leaves either the state before or the state after, never half of it. Times are ISO-8601 UTC
 * strings given by the caller (the runner's clock), so tests control them.
 *
 * The `results` row is written in the same transaction as the job's final status, together with
 * its MDM outbox row (src/store/outbox.ts; architecture.md, "Transactional outbox").
 *
 * SQLite failures become `store/*` codes; a job or step that does not exist is `bug` (the runner
 * only names rows it created).
 */
import { KitError } from '../errors.ts';
import { stmt, transaction, withStoreErrors, type Db } from './db.ts';
import { enqueueJobResult } from './outbox.ts';

/** Job status, as `kitting jobs --json` shows it (cli.md). */
export type JobStatus = 'pending' | 'running' | 'waiting' | 'done' | 'failed' | 'cancelled';
/** Step status (domain.md, "Machine-readable states"). */
export type StepStatus = 'pending' | 'running' | 'done' | 'skipped' | 'failed' | 'waiting';
/** Why a job waits for something outside the station. */
export type WaitingReason = 'trust-pending' | 'locked' | 'needs-internet' | 'device-gone' | 'erase-confirmation';

/** The statuses a job can be resumed from. */
export const UNFINISHED_JOB_STATUSES: readonly JobStatus[] = ['pending', 'running', 'waiting'];

/** JSON that can be stored in a `details`/`summary` column. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };

/** One step of a job. */
export interface StepRecord {
  readonly stepId: string;
  readonly position: number;
  readonly status: StepStatus;
  readonly attempts: number;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  readonly errorCode: string | null;
  readonly errorMessage: string | null;
}

/** One job with its steps in pipeline order. */
export interface JobRecord {
  readonly id: string;
  readonly udid: string;
  readonly serial: string | null;
  readonly blueprintName: string;
  /** The blueprint as it was when the job was created (JSON text). */
  readonly blueprintJson: string;
  readonly status: JobStatus;
  readonly waitingReason: WaitingReason | null;
  readonly batchId: string;
  /** The naming counter `{n}` of this device in its batch. */
  readonly seqN: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly finishedAt: string | null;
  readonly errorCode: string | null;
  readonly steps: readonly StepRecord[];
}

/** One row of the append-only event log. */
export interface StepEventRecord {
  readonly id: number;
  readonly jobId: string;
  readonly stepId: string | null;
  readonly at: string;
  readonly kind: string;
  readonly details: JsonObject;
}

/** One result row. */
export interface ResultRecord {
  readonly jobId: string;
  readonly udid: string;
  readonly serial: string | null;
  readonly outcome: 'done' | 'failed' | 'cancelled';
  readonly summary: JsonObject;
  readonly createdAt: string;
}

interface RawJob {
  id: string;
  udid: string;
  serial: string | null;
  blueprint_name: string;
  blueprint_json: string;
  status: JobStatus;
  waiting_reason: WaitingReason | null;
  batch_id: string;
  seq_n: number;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
  error_code: string | null;
}

interface RawStep {
  job_id: string;
  step_id: string;
  position: number;
  status: StepStatus;
  attempts: number;
  started_at: string | null;
  finished_at: string | null;
  error_code: string | null;
  error_message: string | null;
}

const JOB_COLUMNS =
  'id, udid, serial, blueprint_name, blueprint_json, status, waiting_reason, batch_id, seq_n, created_at, updated_at, finished_at, error_code';
const STEP_COLUMNS = 'job_id, step_id, position, status, attempts, started_at, finished_at, error_code, error_message';

function stepFromRaw(r: RawStep): StepRecord {
  return {
    stepId: r.step_id,
    position: r.position,
    status: r.status,
    attempts: r.attempts,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    errorCode: r.error_code,
    errorMessage: r.error_message,
  };
}

function jobFromRaw(r: RawJob, steps: readonly StepRecord[]): JobRecord {
  return {
    id: r.id,
    udid: r.udid,
    serial: r.serial,
    blueprintName: r.blueprint_name,
    blueprintJson: r.blueprint_json,
    status: r.status,
    waitingReason: r.waiting_reason,
    batchId: r.batch_id,
    seqN: r.seq_n,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    finishedAt: r.finished_at,
    errorCode: r.error_code,
    steps,
  };
}

function stepsOf(db: Db, jobId: string): StepRecord[] {
  const rows = stmt(db, `SELECT ${STEP_COLUMNS} FROM job_steps WHERE job_id = ? ORDER BY position`).all(
    jobId,
  ) as RawStep[];
  return rows.map(stepFromRaw);
}

function stepOf(db: Db, jobId: string, stepId: string): StepRecord | undefined {
  const row = stmt(db, `SELECT ${STEP_COLUMNS} FROM job_steps WHERE job_id = ? AND step_id = ?`).get(jobId, stepId) as
    RawStep | undefined;
  return row === undefined ? undefined : stepFromRaw(row);
}

function parseObject(text: string): JsonObject {
  const v = JSON.parse(text) as unknown;
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : {};
}

function insertEvent(
  db: Db,
  jobId: string,
  stepId: string | null,
  kind: string,
  details: JsonObject,
  at: string,
): void {
  stmt(db, 'INSERT INTO step_events (job_id, step_id, at, kind, details) VALUES (?, ?, ?, ?, ?)').run(
    jobId,
    stepId,
    at,
    kind,
    JSON.stringify(details),
  );
}

function touchJob(db: Db, jobId: string, status: JobStatus, at: string, reason: WaitingReason | null = null): void {
  const r = stmt(db, 'UPDATE jobs SET status = ?, waiting_reason = ?, updated_at = ? WHERE id = ?').run(
    status,
    reason,
    at,
    jobId,
  );
  if (r.changes !== 1) throw new KitError('bug', `no job ${jobId}`);
}

function updateStep(db: Db, jobId: string, stepId: string, sql: string, params: readonly unknown[]): void {
  const r = stmt(db, `UPDATE job_steps SET ${sql} WHERE job_id = ? AND step_id = ?`).run(...params, jobId, stepId);
  if (r.changes !== 1) throw new KitError('bug', `no step ${stepId} in job ${jobId}`);
}

// ---------------------------------------------------------------------------------------------
// Devices

/** What `identify` learnt about a device. */
export interface DeviceFactsRow {
  readonly udid: string;
  readonly serial: string | null;
  /** Decimal text (64-bit). */
  readonly ecid: string | null;
  readonly productType: string | null;
}

/** Inserts or refreshes a device (first_seen kept, last_seen moved). */
export function upsertDevice(db: Db, device: DeviceFactsRow, at: string): void {
  withStoreErrors('recording a device', () => {
    stmt(
      db,
      `INSERT INTO devices (udid, serial, ecid, product_type, first_seen, last_seen)
       VALUES (@udid, @serial, @ecid, @productType, @at, @at)
       ON CONFLICT (udid) DO UPDATE SET
         serial = COALESCE(excluded.serial, serial),
         ecid = COALESCE(excluded.ecid, ecid),
         product_type = COALESCE(excluded.product_type, product_type),
         last_seen = excluded.last_seen`,
    ).run({ ...device, at });
  });
}

/** One device row. */
export interface DeviceRecord extends DeviceFactsRow {
  readonly firstSeen: string;
  readonly lastSeen: string;
}

/** The device with this UDID, or undefined. */
export function getDevice(db: Db, udid: string): DeviceRecord | undefined {
  return withStoreErrors('reading a device', () => {
    const r = stmt(
      db,
      'SELECT udid, serial, ecid, product_type, first_seen, last_seen FROM devices WHERE udid = ?',
    ).get(udid) as
      | {
          udid: string;
          serial: string | null;
          ecid: string | null;
          product_type: string | null;
          first_seen: string;
          last_seen: string;
        }
      | undefined;
    return r === undefined
      ? undefined
      : {
          udid: r.udid,
          serial: r.serial,
          ecid: r.ecid,
          productType: r.product_type,
          firstSeen: r.first_seen,
          lastSeen: r.last_seen,
        };
  });
}

/**
 * Records a device's identity for a job in one transaction: the `devices` row, the job's serial
 * and a `deviceIdentified` event.
 */
export function recordIdentity(db: Db, jobId: string, stepId: string, device: DeviceFactsRow, at: string): void {
  transaction(db, 'recording a device identity', () => {
    upsertDevice(db, device, at);
    const r = stmt(db, 'UPDATE jobs SET serial = ?, updated_at = ? WHERE id = ?').run(device.serial, at, jobId);
    if (r.changes !== 1) throw new KitError('bug', `no job ${jobId}`);
    insertEvent(
      db,
      jobId,
      stepId,
      'deviceIdentified',
      { serial: device.serial, ecid: device.ecid, productType: device.productType },
      at,
    );
  });
}

// ---------------------------------------------------------------------------------------------
// Jobs

/** Input of {@link createJob}. */
export interface NewJob {
  readonly id: string;
  readonly udid: string;
  readonly serial: string | null;
  readonly blueprintName: string;
  readonly blueprintJson: string;
  readonly batchId: string;
  /** The counter's first value in a new batch (the blueprint's `naming.start`). */
  readonly counterStart: number;
  /** Step ids in pipeline order. */
  readonly steps: readonly string[];
}

/**
 * Creates a job with all its steps `pending`, in one transaction. The naming counter: a device
 * that already had a job in this batch keeps its number (a re-run names it the same); otherwise
 * it takes the batch's next number (highest so far + 1, or `counterStart`).
 */
export function createJob(db: Db, job: NewJob, at: string): JobRecord {
  return transaction(db, 'creating a job', () => {
    const own = stmt(db, 'SELECT seq_n FROM jobs WHERE batch_id = ? AND udid = ? ORDER BY created_at LIMIT 1').get(
      job.batchId,
      job.udid,
    ) as { seq_n: number } | undefined;
    let seqN = own?.seq_n;
    if (seqN === undefined) {
      const max = stmt(db, 'SELECT MAX(seq_n) AS m FROM jobs WHERE batch_id = ?').get(job.batchId) as {
        m: number | null;
      };
      seqN = max.m === null ? job.counterStart : Math.max(max.m + 1, job.counterStart);
    }
    stmt(
      db,
      `INSERT INTO jobs (id, udid, serial, blueprint_name, blueprint_json, status, waiting_reason, batch_id, seq_n,
                         created_at, updated_at, finished_at, error_code)
       VALUES (?, ?, ?, ?, ?, 'pending', NULL, ?, ?, ?, ?, NULL, NULL)`,
    ).run(job.id, job.udid, job.serial, job.blueprintName, job.blueprintJson, job.batchId, seqN, at, at);
    const insertStep = stmt(
      db,
      "INSERT INTO job_steps (job_id, step_id, position, status, attempts) VALUES (?, ?, ?, 'pending', 0)",
    );
    job.steps.forEach((stepId, i) => insertStep.run(job.id, stepId, i));
    insertEvent(db, job.id, null, 'jobCreated', { blueprint: job.blueprintName, batchId: job.batchId, seqN }, at);
    const created = getJob(db, job.id);
    if (created === undefined) throw new KitError('bug', `job ${job.id} vanished`);
    return created;
  });
}

/** The job with this id (with its steps), or undefined. */
export function getJob(db: Db, id: string): JobRecord | undefined {
  return withStoreErrors('reading a job', () => {
    const r = stmt(db, `SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ?`).get(id) as RawJob | undefined;
    return r === undefined ? undefined : jobFromRaw(r, stepsOf(db, id));
  });
}

/** Options of {@link listJobs}. */
export interface ListJobsOptions {
  /** Only this device's jobs. */
  readonly udid?: string;
  /** Only jobs in these statuses. */
  readonly statuses?: readonly JobStatus[];
}

/** Jobs, oldest first, each with its steps. */
export function listJobs(db: Db, options: ListJobsOptions = {}): JobRecord[] {
  return withStoreErrors('listing jobs', () => {
    const where: string[] = [];
    const params: unknown[] = [];
    if (options.udid !== undefined) {
      where.push('udid = ?');
      params.push(options.udid);
    }
    if (options.statuses !== undefined) {
      if (options.statuses.length === 0) return [];
      where.push(`status IN (${options.statuses.map(() => '?').join(', ')})`);
      params.push(...options.statuses);
    }
    const sql = `SELECT ${JOB_COLUMNS} FROM jobs ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
                 ORDER BY created_at, rowid`;
    const rows = stmt(db, sql).all(...params) as RawJob[];
    return rows.map((r) => jobFromRaw(r, stepsOf(db, r.id)));
  });
}

/** The newest unfinished (pending, running or waiting) job of a device, or undefined. */
export function findUnfinishedJob(db: Db, udid: string): JobRecord | undefined {
  const jobs = listJobs(db, { udid, statuses: UNFINISHED_JOB_STATUSES });
  return jobs[jobs.length - 1];
}

// ---------------------------------------------------------------------------------------------
// Transitions (each one transaction: step row, job row, event)

/** Persists "the job (re)starts": status `running`, waiting reason cleared, a `jobStarted` event. */
export function markJobRunning(db: Db, jobId: string, resumed: boolean, at: string): void {
  transaction(db, 'starting a job', () => {
    touchJob(db, jobId, 'running', at);
    insertEvent(db, jobId, null, resumed ? 'jobResumed' : 'jobStarted', {}, at);
  });
}

/** Persists "step starts an attempt": step `running` (attempts + 1, startedAt), job `running`. */
export function markStepRunning(db: Db, jobId: string, stepId: string, at: string): StepRecord {
  return transaction(db, 'starting a step', () => {
    updateStep(
      db,
      jobId,
      stepId,
      "status = 'running', attempts = attempts + 1, started_at = ?, finished_at = NULL, error_code = NULL, error_message = NULL",
      [at],
    );
    touchJob(db, jobId, 'running', at);
    const step = stepOf(db, jobId, stepId);
    if (step === undefined) throw new KitError('bug', `no step ${stepId} in job ${jobId}`);
    insertEvent(db, jobId, stepId, 'stepStarted', { attempt: step.attempts }, at);
    return step;
  });
}

/**
 * Persists a step that is complete: `done` (it ran now, or an earlier attempt of this job ran it)
 * or `skipped` (the device already was as the step wants it). The job stays `running`.
 */
export function markStepFinished(
  db: Db,
  jobId: string,
  stepId: string,
  status: 'done' | 'skipped',
  at: string,
  details: JsonObject = {},
): void {
  transaction(db, 'finishing a step', () => {
    updateStep(db, jobId, stepId, 'status = ?, finished_at = ?, error_code = NULL, error_message = NULL', [status, at]);
    touchJob(db, jobId, 'running', at);
    insertEvent(db, jobId, stepId, 'stepFinished', { status, ...details }, at);
  });
}

/** Persists a failed attempt that will be retried: the step stays `running`; an event records it. */
export function recordAttemptFailed(
  db: Db,
  jobId: string,
  stepId: string,
  error: { code: string; message: string },
  retryInMs: number,
  at: string,
): void {
  transaction(db, 'recording a failed attempt', () => {
    updateStep(db, jobId, stepId, 'error_code = ?, error_message = ?', [error.code, error.message]);
    insertEvent(db, jobId, stepId, 'attemptFailed', { code: error.code, message: error.message, retryInMs }, at);
  });
}

/** Persists "step and job wait" for something outside the station. */
export function markStepWaiting(
  db: Db,
  jobId: string,
  stepId: string,
  reason: WaitingReason,
  error: { code: string; message: string },
  at: string,
): void {
  transaction(db, 'a step waits', () => {
    updateStep(db, jobId, stepId, "status = 'waiting', error_code = ?, error_message = ?", [error.code, error.message]);
    touchJob(db, jobId, 'waiting', at, reason);
    insertEvent(db, jobId, stepId, 'jobWaiting', { reason, code: error.code, message: error.message }, at);
  });
}

/** Appends a progress event (e.g. `trust-pending`) without changing any status. */
export function appendStepEvent(
  db: Db,
  jobId: string,
  stepId: string | null,
  kind: string,
  details: JsonObject,
  at: string,
): void {
  withStoreErrors('recording a step event', () => insertEvent(db, jobId, stepId, kind, details, at));
}

/** The job's events, oldest first (optionally of one kind). */
export function listStepEvents(db: Db, jobId: string, kind?: string): StepEventRecord[] {
  return withStoreErrors('reading step events', () => {
    const rows = (
      kind === undefined
        ? stmt(db, 'SELECT id, job_id, step_id, at, kind, details FROM step_events WHERE job_id = ? ORDER BY id').all(
            jobId,
          )
        : stmt(
            db,
            'SELECT id, job_id, step_id, at, kind, details FROM step_events WHERE job_id = ? AND kind = ? ORDER BY id',
          ).all(jobId, kind)
    ) as { id: number; job_id: string; step_id: string | null; at: string; kind: string; details: string }[];
    return rows.map((r) => ({
      id: r.id,
      jobId: r.job_id,
      stepId: r.step_id,
      at: r.at,
      kind: r.kind,
      details: parseObject(r.details),
    }));
  });
}

/** The details of the newest event of `kind` for a job (e.g. the facts `inspect` recorded), or undefined. */
export function latestStepEvent(db: Db, jobId: string, kind: string): JsonObject | undefined {
  return withStoreErrors('reading step events', () => {
    const r = stmt(db, 'SELECT details FROM step_events WHERE job_id = ? AND kind = ? ORDER BY id DESC LIMIT 1').get(
      jobId,
      kind,
    ) as { details: string } | undefined;
    return r === undefined ? undefined : parseObject(r.details);
  });
}

function insertResult(db: Db, jobId: string, outcome: ResultRecord['outcome'], summary: JsonObject, at: string): void {
  const job = stmt(db, 'SELECT udid, serial, error_code FROM jobs WHERE id = ?').get(jobId) as
    { udid: string; serial: string | null; error_code: string | null } | undefined;
  if (job === undefined) throw new KitError('bug', `no job ${jobId}`);
  stmt(
    db,
    `INSERT INTO results (job_id, udid, serial, outcome, summary, created_at) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (job_id) DO UPDATE SET outcome = excluded.outcome, summary = excluded.summary,
       created_at = excluded.created_at`,
  ).run(jobId, job.udid, job.serial, outcome, JSON.stringify(summary), at);
  // The MDM outbox row joins the same transaction (architecture.md "Transactional outbox").
  enqueueJobResult(db, {
    jobId,
    udid: job.udid,
    serial: job.serial,
    outcome,
    errorCode: job.error_code,
    summary,
    at,
  });
}

/** Persists the job's success and its result row in one transaction. */
export function finishJob(db: Db, jobId: string, summary: JsonObject, at: string): void {
  transaction(db, 'finishing a job', () => {
    const r = stmt(
      db,
      "UPDATE jobs SET status = 'done', waiting_reason = NULL, error_code = NULL, updated_at = ?, finished_at = ? WHERE id = ?",
    ).run(at, at, jobId);
    if (r.changes !== 1) throw new KitError('bug', `no job ${jobId}`);
    insertResult(db, jobId, 'done', summary, at);
    insertEvent(db, jobId, null, 'jobFinished', {}, at);
  });
}

/** Persists a step's failure, the job's failure and its result row in one transaction. */
export function failJob(
  db: Db,
  jobId: string,
  stepId: string,
  error: { code: string; message: string },
  summary: JsonObject,
  at: string,
): void {
  transaction(db, 'failing a job', () => {
    updateStep(db, jobId, stepId, "status = 'failed', finished_at = ?, error_code = ?, error_message = ?", [
      at,
      error.code,
      error.message,
    ]);
    const r = stmt(
      db,
      "UPDATE jobs SET status = 'failed', waiting_reason = NULL, error_code = ?, updated_at = ?, finished_at = ? WHERE id = ?",
    ).run(error.code, at, at, jobId);
    if (r.changes !== 1) throw new KitError('bug', `no job ${jobId}`);
    insertResult(db, jobId, 'failed', summary, at);
    insertEvent(db, jobId, stepId, 'jobFailed', { code: error.code, message: error.message }, at);
  });
}

/**
 * Persists a cancellation: the interrupted step (if any) goes back to `pending` (it did not
 * finish, and its `isDone` decides next time), the job becomes `cancelled` with its result row.
 */
export function cancelJob(db: Db, jobId: string, stepId: string | null, summary: JsonObject, at: string): void {
  transaction(db, 'cancelling a job', () => {
    if (stepId !== null) {
      updateStep(db, jobId, stepId, "status = 'pending', finished_at = NULL, error_code = ?, error_message = ?", [
        'kitting/cancelled',
        'cancelled while running',
      ]);
    }
    const r = stmt(
      db,
      "UPDATE jobs SET status = 'cancelled', waiting_reason = NULL, error_code = 'kitting/cancelled', updated_at = ?, finished_at = ? WHERE id = ?",
    ).run(at, at, jobId);
    if (r.changes !== 1) throw new KitError('bug', `no job ${jobId}`);
    insertResult(db, jobId, 'cancelled', summary, at);
    insertEvent(db, jobId, stepId, 'jobCancelled', {}, at);
  });
}

/** The result row of a job, or undefined. */
export function getResult(db: Db, jobId: string): ResultRecord | undefined {
  return withStoreErrors('reading a result', () => {
    const r = stmt(db, 'SELECT job_id, udid, serial, outcome, summary, created_at FROM results WHERE job_id = ?').get(
      jobId,
    ) as
      | {
          job_id: string;
          udid: string;
          serial: string | null;
          outcome: ResultRecord['outcome'];
          summary: string;
          created_at: string;
        }
      | undefined;
    return r === undefined
      ? undefined
      : {
          jobId: r.job_id,
          udid: r.udid,
          serial: r.serial,
          outcome: r.outcome,
          summary: parseObject(r.summary),
          createdAt: r.created_at,
        };
  });
}

/** Every result row, oldest first. */
export function listResults(db: Db): ResultRecord[] {
  return withStoreErrors('listing results', () => {
    const ids = stmt(db, 'SELECT job_id FROM results ORDER BY created_at, rowid').all() as { job_id: string }[];
    return ids.flatMap((r) => {
      const result = getResult(db, r.job_id);
      return result === undefined ? [] : [result];
    });
  });
}
