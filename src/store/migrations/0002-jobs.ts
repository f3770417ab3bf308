/**
 * Migration 0002: the kitting pipeline's jobs (domain.md "The per-device pipeline").
 *
 * - `devices`: every device the station has identified, keyed by UDID (ECID as decimal text: it is
 *   64-bit and JSON/JS numbers lose precision, protocols.md Appendix C.12).
 * - `jobs`: one run of one blueprint on one device, with a snapshot of the blueprint as it was when
 *   the job started (a later edit of the blueprint never changes a running job), the batch it
 *   belongs to and its naming counter `seq_n` (kept so a resumed job renders the same name).
 * - `job_steps`: one row per pipeline step of a job; written before and after every transition so
 *   a killed process resumes at the first step not done.
 * - `step_events`: append-only log of what happened (started, progress, facts, retries, failures).
 * - `results`: the job's final result, written in the same transaction as the job's final status.
 *   This is the seam for the MDM outbox: its row goes into that same transaction when it arrives.
 *
 * Times are ISO-8601 UTC strings, so they sort as text. No existing data changes.
 */
import type { Db } from '../db.ts';

export const version = 2;
export const name = 'jobs';

export function up(db: Db): void {
  db.exec(`
    CREATE TABLE devices (
      udid         TEXT PRIMARY KEY NOT NULL,
      serial       TEXT,
      ecid         TEXT CHECK (ecid IS NULL OR ecid NOT GLOB '*[^0-9]*'),
      product_type TEXT,
      first_seen   TEXT NOT NULL,
      last_seen    TEXT NOT NULL
    ) STRICT;

    CREATE TABLE jobs (
      id             TEXT PRIMARY KEY NOT NULL,
      udid           TEXT NOT NULL,
      serial         TEXT,
      blueprint_name TEXT NOT NULL,
      blueprint_json TEXT NOT NULL CHECK (json_valid(blueprint_json)),
      status         TEXT NOT NULL
                     CHECK (status IN ('pending', 'running', 'waiting', 'done', 'failed', 'cancelled')),
      waiting_reason TEXT,
      batch_id       TEXT NOT NULL,
      seq_n          INTEGER NOT NULL CHECK (seq_n >= 0),
      created_at     TEXT NOT NULL,
      updated_at     TEXT NOT NULL,
      finished_at    TEXT,
      error_code     TEXT
    ) STRICT;
    CREATE INDEX jobs_udid ON jobs (udid, created_at);
    CREATE INDEX jobs_batch ON jobs (batch_id, seq_n);

    CREATE TABLE job_steps (
      job_id        TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
      step_id       TEXT NOT NULL,
      position      INTEGER NOT NULL,
      status        TEXT NOT NULL
                    CHECK (status IN ('pending', 'running', 'done', 'skipped', 'failed', 'waiting')),
      attempts      INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
      started_at    TEXT,
      finished_at   TEXT,
      error_code    TEXT,
      error_message TEXT,
      PRIMARY KEY (job_id, step_id)
    ) STRICT;

    CREATE TABLE step_events (
      id      INTEGER PRIMARY KEY AUTOINCREMENT,
      job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
      step_id TEXT,
      at      TEXT NOT NULL,
      kind    TEXT NOT NULL,
      details TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details))
    ) STRICT;
    CREATE INDEX step_events_job ON step_events (job_id, id);

    CREATE TABLE results (
      job_id     TEXT NOT NULL UNIQUE REFERENCES jobs (id) ON DELETE CASCADE,
      udid       TEXT NOT NULL,
      serial     TEXT,
      outcome    TEXT NOT NULL CHECK (outcome IN ('done', 'failed', 'cancelled')),
      summary    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(summary)),
      created_at TEXT NOT NULL
    ) STRICT;
  `);
}
