/**
 * SQL for the kitting loop's MDM tables (migration 0005): cached enrollment profiles and
 * group-specific enrollment URLs (offline runs), and the enrollment confirmations the report shows.
 */
import { stmt, withStoreErrors, type Db } from './db.ts';

/** A cached value with its fetch time. */
export interface Cached<T> {
  readonly value: T;
  readonly fetchedAt: string;
}

/** Stores (replaces) the group's enrollment profile fetched at `fetchedAt`. */
export function putCachedEnrollmentProfile(db: Db, groupId: string, bytes: Buffer, fetchedAt: string): void {
  withStoreErrors('caching an enrollment profile', () => {
    stmt(
      db,
      `INSERT INTO mdm_enrollment_profiles (group_id, bytes, fetched_at) VALUES (?, ?, ?)
       ON CONFLICT (group_id) DO UPDATE SET bytes = excluded.bytes, fetched_at = excluded.fetched_at`,
    ).run(groupId, bytes, fetchedAt);
  });
}

/** The group's cached enrollment profile, or undefined. */
export function cachedEnrollmentProfile(db: Db, groupId: string): Cached<Buffer> | undefined {
  return withStoreErrors('reading a cached enrollment profile', () => {
    const row = stmt(db, 'SELECT bytes, fetched_at FROM mdm_enrollment_profiles WHERE group_id = ?').get(groupId) as
      { bytes: Buffer; fetched_at: string } | undefined;
    return row === undefined ? undefined : { value: Buffer.from(row.bytes), fetchedAt: row.fetched_at };
  });
}

/** Stores (replaces) the group's enrollment URL fetched at `fetchedAt`. */
export function putCachedEnrollmentUrl(db: Db, groupId: string, url: string, fetchedAt: string): void {
  withStoreErrors('caching an enrollment URL', () => {
    stmt(
      db,
      `INSERT INTO mdm_enrollment_urls (group_id, url, fetched_at) VALUES (?, ?, ?)
       ON CONFLICT (group_id) DO UPDATE SET url = excluded.url, fetched_at = excluded.fetched_at`,
    ).run(groupId, url, fetchedAt);
  });
}

/** The group's cached enrollment URL, or undefined. */
export function cachedEnrollmentUrl(db: Db, groupId: string): Cached<string> | undefined {
  return withStoreErrors('reading a cached enrollment URL', () => {
    const row = stmt(db, 'SELECT url, fetched_at FROM mdm_enrollment_urls WHERE group_id = ?').get(groupId) as
      { url: string; fetched_at: string } | undefined;
    return row === undefined ? undefined : { value: row.url, fetchedAt: row.fetched_at };
  });
}

/** The MDM's enrollment status of a serial as the station last saw it. */
export interface EnrollmentConfirmation {
  readonly serial: string;
  /** The MDM's `enrollment.status` (`profile-issued`, `authenticated`, `enrolled`, `unenrolled`). */
  readonly status: string;
  /** When the MDM says the status was reached. */
  readonly statusAt: string;
  /** When the station asked. */
  readonly checkedAt: string;
}

/** Stores (replaces) a serial's confirmation. */
export function putConfirmation(db: Db, c: EnrollmentConfirmation): void {
  withStoreErrors('storing an enrollment confirmation', () => {
    stmt(
      db,
      `INSERT INTO mdm_confirmations (serial, status, status_at, checked_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (serial) DO UPDATE SET status = excluded.status, status_at = excluded.status_at,
         checked_at = excluded.checked_at`,
    ).run(c.serial, c.status, c.statusAt, c.checkedAt);
  });
}

/** A serial's confirmation, or undefined. */
export function getConfirmation(db: Db, serial: string): EnrollmentConfirmation | undefined {
  return withStoreErrors('reading an enrollment confirmation', () => {
    const row = stmt(db, 'SELECT serial, status, status_at, checked_at FROM mdm_confirmations WHERE serial = ?').get(
      serial,
    ) as { serial: string; status: string; status_at: string; checked_at: string } | undefined;
    return row === undefined
      ? undefined
      : { serial: row.serial, status: row.status, statusAt: row.status_at, checkedAt: row.checked_at };
  });
}

/**
 * Serials of finished (`done`) jobs whose enrollment the MDM has not confirmed yet (no row, or a
 * status other than `enrolled`), newest first, at most `limit`.
 */
export function serialsAwaitingConfirmation(db: Db, limit = 500): string[] {
  return withStoreErrors('listing serials awaiting confirmation', () => {
    const rows = stmt(
      db,
      `SELECT DISTINCT j.serial AS serial FROM jobs j
         LEFT JOIN mdm_confirmations c ON c.serial = j.serial
         WHERE j.status = 'done' AND j.serial IS NOT NULL AND (c.serial IS NULL OR c.status <> 'enrolled')
         ORDER BY j.serial LIMIT ?`,
    ).all(limit) as { serial: string }[];
    return rows.map((r) => r.serial);
  });
}
