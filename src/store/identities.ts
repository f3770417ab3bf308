/**
 * SQL for the `identities` table (migration 0001): organization (supervision) identities with
 * their certificate and vault-encrypted private key. No other file touches this table.
 *
 * All functions are synchronous and may run inside {@link transaction}. SQLite failures become
 * `store/*` codes (`store/constraint` for a duplicate id or fingerprint).
 */
import { stmt, tableColumns, tableExists, withStoreErrors, type Db } from './db.ts';

/** One stored identity, as the table holds it. */
export interface IdentityRow {
  readonly id: string;
  readonly org: string;
  /** SHA-256 of the DER certificate, lowercase hex. */
  readonly fingerprint: string;
  /** ISO-8601 UTC. */
  readonly notBefore: string;
  /** ISO-8601 UTC. */
  readonly notAfter: string;
  /** The certificate, DER. */
  readonly certificate: Buffer;
  /** The private key sealed by the vault (never plaintext). */
  readonly encryptedKey: Buffer;
  /** ISO-8601 UTC. */
  readonly createdAt: string;
}

/** An identity without its key material, for lists. */
export type IdentityListRow = Omit<IdentityRow, 'encryptedKey' | 'certificate'>;

interface RawRow {
  id: string;
  org: string;
  fingerprint: string;
  not_before: string;
  not_after: string;
  certificate: Buffer;
  encrypted_key: Buffer;
  created_at: string;
}

const COLUMNS = 'id, org, fingerprint, not_before, not_after, certificate, encrypted_key, created_at';

function fromRaw(r: RawRow): IdentityRow {
  return {
    id: r.id,
    org: r.org,
    fingerprint: r.fingerprint,
    notBefore: r.not_before,
    notAfter: r.not_after,
    certificate: r.certificate,
    encryptedKey: r.encrypted_key,
    createdAt: r.created_at,
  };
}

/** Inserts an identity. Throws `store/constraint` when the id or the fingerprint is already stored. */
export function insertIdentity(db: Db, row: IdentityRow): void {
  withStoreErrors('inserting an identity', () => {
    stmt(
      db,
      `INSERT INTO identities (${COLUMNS})
       VALUES (@id, @org, @fingerprint, @notBefore, @notAfter, @certificate, @encryptedKey, @createdAt)`,
    ).run(row);
  });
}

/** The identity with this id, or undefined. */
export function getIdentity(db: Db, id: string): IdentityRow | undefined {
  return withStoreErrors('reading an identity', () => {
    const r = stmt(db, `SELECT ${COLUMNS} FROM identities WHERE id = ?`).get(id) as RawRow | undefined;
    return r === undefined ? undefined : fromRaw(r);
  });
}

/** The identity with this SHA-256 fingerprint (lowercase hex), or undefined. */
export function getIdentityByFingerprint(db: Db, fingerprint: string): IdentityRow | undefined {
  return withStoreErrors('reading an identity', () => {
    const r = stmt(db, `SELECT ${COLUMNS} FROM identities WHERE fingerprint = ?`).get(fingerprint) as
      RawRow | undefined;
    return r === undefined ? undefined : fromRaw(r);
  });
}

/** Every identity (without key material), oldest first. */
export function listIdentities(db: Db): IdentityListRow[] {
  return withStoreErrors('listing identities', () => {
    const rows = db
      .prepare('SELECT id, org, fingerprint, not_before, not_after, created_at FROM identities ORDER BY created_at, id')
      .all() as Omit<RawRow, 'certificate' | 'encrypted_key'>[];
    return rows.map((r) => ({
      id: r.id,
      org: r.org,
      fingerprint: r.fingerprint,
      notBefore: r.not_before,
      notAfter: r.not_after,
      createdAt: r.created_at,
    }));
  });
}

/** How many identities are stored. */
export function countIdentities(db: Db): number {
  return withStoreErrors('counting identities', () => {
    const r = stmt(db, 'SELECT count(*) AS n FROM identities').get() as { n: number };
    return r.n;
  });
}

/** Deletes an identity; true when a row was deleted. A blueprint's foreign key may refuse it (`store/constraint`). */
export function deleteIdentity(db: Db, id: string): boolean {
  return withStoreErrors(
    'deleting an identity',
    () => stmt(db, 'DELETE FROM identities WHERE id = ?').run(id).changes > 0,
  );
}

/**
 * How many blueprints refer to the identity, when a later migration has created a `blueprints`
 * table with an `identity_id` column; 0 when there is no such table or column yet.
 */
export function countBlueprintsUsingIdentity(db: Db, id: string): number {
  return withStoreErrors('checking blueprints', () => {
    if (!tableExists(db, 'blueprints') || !tableColumns(db, 'blueprints').includes('identity_id')) return 0;
    const r = stmt(db, 'SELECT count(*) AS n FROM blueprints WHERE identity_id = ?').get(id) as { n: number };
    return r.n;
  });
}
