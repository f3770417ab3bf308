/**
 * Migration 0001: organization (supervision) identities, station settings and the audit log.
 *
 * `identities.encrypted_key` holds vault ciphertext only (src/identity/vault.ts), never a plaintext
 * key. Times are ISO-8601 UTC strings (`2025-04-01T00:00:00.000Z`), so they sort as text.
 */
import type { Db } from '../db.ts';

export const version = 1;
export const name = 'identities';

export function up(db: Db): void {
  db.exec(`
    CREATE TABLE identities (
      id            TEXT PRIMARY KEY NOT NULL CHECK (id NOT GLOB '*[^a-z0-9-]*' AND length(id) BETWEEN 1 AND 64),
      org           TEXT NOT NULL,
      fingerprint   TEXT NOT NULL UNIQUE CHECK (length(fingerprint) = 64),
      not_before    TEXT NOT NULL,
      not_after     TEXT NOT NULL,
      certificate   BLOB NOT NULL,
      encrypted_key BLOB NOT NULL,
      created_at    TEXT NOT NULL
    ) STRICT;

    CREATE TABLE settings (
      key   TEXT PRIMARY KEY NOT NULL,
      value TEXT NOT NULL
    ) STRICT;

    CREATE TABLE audit_log (
      id      INTEGER PRIMARY KEY AUTOINCREMENT,
      at      TEXT NOT NULL,
      actor   TEXT NOT NULL,
      action  TEXT NOT NULL,
      subject TEXT,
      details TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details))
    ) STRICT;
    CREATE INDEX audit_log_subject ON audit_log (subject, at);
  `);
}
