/**
 * Migration 0005: what the station keeps from the MDM for the kitting loop (issue #6).
 *
 * - `mdm_enrollment_profiles`: the group's enrollment profile as last fetched from the MDM with
 *   the group's credentials (`staged` enrollment), with its fetch time, so a run without network
 *   still stages the profile.
 * - `mdm_enrollment_urls`: the group-specific enrollment URL the MDM gave (no prompt at setup),
 *   with its fetch time, for offline runs.
 * - `mdm_confirmations`: per serial, the MDM's enrollment status as last seen
 *   (`GET /v1/devices/{serial}`) and when it was seen: the report's "enrollment confirmed".
 *
 * Times are ISO-8601 UTC strings. No existing data changes.
 */
import type { Db } from '../db.ts';

export const version = 5;
export const name = 'mdm-loop';

export function up(db: Db): void {
  db.exec(`
    CREATE TABLE mdm_enrollment_profiles (
      group_id   TEXT PRIMARY KEY NOT NULL CHECK (length(group_id) BETWEEN 1 AND 256),
      bytes      BLOB NOT NULL,
      fetched_at TEXT NOT NULL
    ) STRICT;

    CREATE TABLE mdm_enrollment_urls (
      group_id   TEXT PRIMARY KEY NOT NULL CHECK (length(group_id) BETWEEN 1 AND 256),
      url        TEXT NOT NULL,
      fetched_at TEXT NOT NULL
    ) STRICT;

    CREATE TABLE mdm_confirmations (
      serial     TEXT PRIMARY KEY NOT NULL CHECK (length(serial) BETWEEN 1 AND 64),
      status     TEXT NOT NULL,
      status_at  TEXT NOT NULL,
      checked_at TEXT NOT NULL
    ) STRICT;
  `);
}
