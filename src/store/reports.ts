/**
 * SQL for the kitting report (read-only): finished jobs with their result row, device facts, steps
 * and the events the report needs (`src/kitting/report.ts` assembles them). Reads the tables of
 * migration 0002; writes nothing.
 */
import { withStoreErrors, type Db } from './db.ts';
import type { JsonObject, StepStatus } from './jobs.ts';

/** One finished job (it has a `results` row). */
export interface ReportJobRecord {
  readonly jobId: string;
  readonly udid: string;
  readonly serial: string | null;
  readonly blueprint: string;
  readonly outcome: 'done' | 'failed' | 'cancelled';
  readonly errorCode: string | null;
  /** When the job was created (ISO-8601 UTC). */
  readonly createdAt: string;
  /** When the result was written (ISO-8601 UTC). */
  readonly finishedAt: string;
  /** From the `devices` table, when the device was identified. */
  readonly productType: string | null;
}

/** One step of a reported job. */
export interface ReportStepRecord {
  readonly jobId: string;
  readonly stepId: string;
  readonly position: number;
  readonly status: StepStatus;
  readonly attempts: number;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  readonly errorCode: string | null;
}

/** One event of a reported job. */
export interface ReportEventRecord {
  readonly jobId: string;
  readonly stepId: string | null;
  readonly at: string;
  readonly kind: string;
  readonly details: JsonObject;
}

function parseObject(text: string): JsonObject {
  const v = JSON.parse(text) as unknown;
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : {};
}

/** Finished jobs whose result was written at or after `since` (ISO-8601 UTC; all when undefined), oldest first. */
export function reportJobs(db: Db, since?: string): ReportJobRecord[] {
  return withStoreErrors('reading the report', () => {
    const rows = db
      .prepare(
        `SELECT j.id, j.udid, COALESCE(r.serial, j.serial) AS serial, j.blueprint_name, r.outcome, j.error_code,
                j.created_at, r.created_at AS finished_at, d.product_type
         FROM results r JOIN jobs j ON j.id = r.job_id LEFT JOIN devices d ON d.udid = j.udid
         WHERE (? IS NULL OR r.created_at >= ?)
         ORDER BY r.created_at, j.id`,
      )
      .all(since ?? null, since ?? null) as {
      id: string;
      udid: string;
      serial: string | null;
      blueprint_name: string;
      outcome: ReportJobRecord['outcome'];
      error_code: string | null;
      created_at: string;
      finished_at: string;
      product_type: string | null;
    }[];
    return rows.map((r) => ({
      jobId: r.id,
      udid: r.udid,
      serial: r.serial,
      blueprint: r.blueprint_name,
      outcome: r.outcome,
      errorCode: r.error_code,
      createdAt: r.created_at,
      finishedAt: r.finished_at,
      productType: r.product_type,
    }));
  });
}

/** The steps of these jobs, in pipeline order. */
export function reportSteps(db: Db, jobIds: readonly string[]): ReportStepRecord[] {
  return withStoreErrors('reading the report', () => {
    const rows = db
      .prepare(
        `SELECT job_id, step_id, position, status, attempts, started_at, finished_at, error_code FROM job_steps
         WHERE job_id IN (SELECT value FROM json_each(?)) ORDER BY job_id, position`,
      )
      .all(JSON.stringify(jobIds)) as {
      job_id: string;
      step_id: string;
      position: number;
      status: StepStatus;
      attempts: number;
      started_at: string | null;
      finished_at: string | null;
      error_code: string | null;
    }[];
    return rows.map((r) => ({
      jobId: r.job_id,
      stepId: r.step_id,
      position: r.position,
      status: r.status,
      attempts: r.attempts,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      errorCode: r.error_code,
    }));
  });
}

/** The events of these jobs with one of `kinds`, oldest first. */
export function reportEvents(db: Db, jobIds: readonly string[], kinds: readonly string[]): ReportEventRecord[] {
  return withStoreErrors('reading the report', () => {
    const rows = db
      .prepare(
        `SELECT job_id, step_id, at, kind, details FROM step_events
         WHERE job_id IN (SELECT value FROM json_each(?)) AND kind IN (SELECT value FROM json_each(?))
         ORDER BY id`,
      )
      .all(JSON.stringify(jobIds), JSON.stringify(kinds)) as {
      job_id: string;
      step_id: string | null;
      at: string;
      kind: string;
      details: string;
    }[];
    return rows.map((r) => ({
      jobId: r.job_id,
      stepId: r.step_id,
      at: r.at,
      kind: r.kind,
      details: parseObject(r.details),
    }));
  });
}
