/**
 * Migration 0004: the MDM side of the station (architecture.md "Transactional outbox", domain.md
 * "The syncer").
 *
 * - `outbox`: one row per result to deliver to the MDM, written in the same transaction as the
 *   job's final status (src/store/jobs.ts → src/store/outbox.ts). `idempotency_key` is chosen once
 *   and sent unchanged on every retry; `state` moves queued → in-flight (claimed with a lease by
 *   one syncer process, `lease_owner`/`lease_until`) → delivered | parked, or back to queued.
 * - `mdm_groups`: the MDM's groups as last fetched (offline blueprint editing), with fetch time.
 * - `secrets`: vault-sealed secrets by name (the station token, group enrollment passwords): only
 *   ciphertext is ever stored.
 *
 * Times are ISO-8601 UTC strings (`toISOString()`), so text comparison orders them. No existing
 * data changes.
 */
import type { Db } from '../db.ts';

export const version = 4;
export const name = 'outbox';

export function up(db: Db): void {
  db.exec(`
    CREATE TABLE outbox (
      id              INTEGER PRIMARY KEY AUTOINCREMENT,
      idempotency_key TEXT NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 200),
      kind            TEXT NOT NULL CHECK (kind IN ('kitting-result')),
      payload         TEXT NOT NULL CHECK (json_valid(payload)),
      created_at      TEXT NOT NULL,
      state           TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'in-flight', 'delivered', 'parked')),
      attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
      next_try_at     TEXT,
      lease_owner     TEXT,
      lease_until     TEXT,
      parked_reason   TEXT,
      delivered_at    TEXT,
      duplicate       INTEGER NOT NULL DEFAULT 0 CHECK (duplicate IN (0, 1))
    ) STRICT;
    CREATE INDEX outbox_state ON outbox (state, id);

    CREATE TABLE mdm_groups (
      id         TEXT PRIMARY KEY NOT NULL,
      position   INTEGER NOT NULL,
      json       TEXT NOT NULL CHECK (json_valid(json)),
      fetched_at TEXT NOT NULL
    ) STRICT;

    CREATE TABLE secrets (
      name       TEXT PRIMARY KEY NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
      sealed     BLOB NOT NULL,
      updated_at TEXT NOT NULL
    ) STRICT;
  `);
}
