/**
 * Migration 0003: serial plans (domain.md "Serial plans (CSV)") and the blueprint store
 * (domain.md "Blueprints").
 *
 * - `plans`: one named plan per imported CSV file; re-importing a name replaces the plan (its rows
 *   are deleted and inserted again in one transaction, src/store/plans.ts).
 * - `plan_rows`: one row per serial of a plan, with the physical line it came from (so a later
 *   conflict report can name it) and the optional named columns.
 * - `blueprints`: stored blueprints by unique name, the validated JSON (secrets are references
 *   only), and the supervision identity it uses: `identity_id REFERENCES identities(id) ON DELETE
 *   RESTRICT`, so an identity still used by a blueprint cannot be deleted (the identity service
 *   checks this column first and reports `identity/in-use`).
 *
 * Times are ISO-8601 UTC strings. No existing data changes.
 */
import type { Db } from '../db.ts';

export const version = 3;
export const name = 'plans-blueprints';

export function up(db: Db): void {
  db.exec(`
    CREATE TABLE plans (
      name        TEXT PRIMARY KEY NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
      format      TEXT NOT NULL CHECK (format IN ('mobiconnect', 'named')),
      encoding    TEXT NOT NULL CHECK (encoding IN ('utf-8', 'shift_jis')),
      source      TEXT,
      imported_at TEXT NOT NULL
    ) STRICT;

    CREATE TABLE plan_rows (
      plan_name  TEXT NOT NULL REFERENCES plans (name) ON DELETE CASCADE,
      serial     TEXT NOT NULL CHECK (serial NOT GLOB '*[^A-Z0-9]*' AND length(serial) BETWEEN 10 AND 12),
      line       INTEGER NOT NULL CHECK (line >= 1),
      name       TEXT,
      asset_tag  TEXT,
      group_name TEXT,
      blueprint  TEXT,
      notes      TEXT,
      PRIMARY KEY (plan_name, serial)
    ) STRICT;
    CREATE INDEX plan_rows_serial ON plan_rows (serial);
    CREATE INDEX plan_rows_line ON plan_rows (plan_name, line);

    CREATE TABLE blueprints (
      id          INTEGER PRIMARY KEY AUTOINCREMENT,
      name        TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
      json        TEXT NOT NULL CHECK (json_valid(json)),
      identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE RESTRICT,
      created_at  TEXT NOT NULL,
      updated_at  TEXT NOT NULL
    ) STRICT;
    CREATE INDEX blueprints_identity ON blueprints (identity_id);
  `);
}
