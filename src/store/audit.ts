/**
 * SQL for the `audit_log` table (migration 0001): who did what to which subject, for the record
 * (identity created, imported, exported, deleted …). Details are JSON; never put a secret in them.
 */
import { stmt, withStoreErrors, type Db } from './db.ts';

/** One audit entry. */
export interface AuditEntry {
  readonly id: number;
  /** ISO-8601 UTC. */
  readonly at: string;
  /** Who: `cli`, `app`, `server` or a user name. */
  readonly actor: string;
  /** What, namespaced like error codes: `identity/created`, `identity/exported` … */
  readonly action: string;
  /** The thing acted on (an identity id, a UDID …), when there is one. */
  readonly subject: string | null;
  readonly details: Readonly<Record<string, unknown>>;
}

/** Appends an audit entry (synchronous: call it inside the transaction of the change it records). */
export function appendAudit(
  db: Db,
  entry: { at: string; actor: string; action: string; subject?: string | null; details?: Record<string, unknown> },
): void {
  withStoreErrors('writing the audit log', () => {
    stmt(db, 'INSERT INTO audit_log (at, actor, action, subject, details) VALUES (?, ?, ?, ?, ?)').run(
      entry.at,
      entry.actor,
      entry.action,
      entry.subject ?? null,
      JSON.stringify(entry.details ?? {}),
    );
  });
}

/** Audit entries, newest first, optionally for one subject. */
export function listAudit(db: Db, options: { subject?: string; limit?: number } = {}): AuditEntry[] {
  return withStoreErrors('reading the audit log', () => {
    const limit = Math.max(1, Math.min(options.limit ?? 1000, 100_000));
    const rows = (
      options.subject === undefined
        ? stmt(db, 'SELECT * FROM audit_log ORDER BY id DESC LIMIT ?').all(limit)
        : stmt(db, 'SELECT * FROM audit_log WHERE subject = ? ORDER BY id DESC LIMIT ?').all(options.subject, limit)
    ) as { id: number; at: string; actor: string; action: string; subject: string | null; details: string }[];
    return rows.map((r) => ({ ...r, details: JSON.parse(r.details) as Record<string, unknown> }));
  });
}
