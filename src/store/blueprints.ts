/**
 * SQL for the `blueprints` table (migration 0003): stored blueprints by unique name, their
 * validated JSON (secrets are vault references only) and the supervision identity they use. No
 * other file touches this table. The rules (validation, identity check, export without secrets)
 * live in `src/kitting/blueprint-store.ts`.
 *
 * `identity_id` references `identities(id)` with `ON DELETE RESTRICT`: an identity still used by a
 * blueprint cannot be deleted. SQLite failures become `store/*` codes (`store/constraint` for a
 * duplicate name or an unknown identity).
 */
import { stmt, withStoreErrors, type Db } from './db.ts';

/** One stored blueprint. */
export interface BlueprintRecord {
  readonly id: number;
  readonly name: string;
  /** The blueprint as JSON text (defaults filled in, no secrets). */
  readonly json: string;
  readonly identityId: string;
  /** ISO-8601 UTC. */
  readonly createdAt: string;
  /** ISO-8601 UTC. */
  readonly updatedAt: string;
}

interface RawRow {
  id: number;
  name: string;
  json: string;
  identity_id: string;
  created_at: string;
  updated_at: string;
}

const COLUMNS = 'id, name, json, identity_id, created_at, updated_at';

function fromRaw(r: RawRow): BlueprintRecord {
  return {
    id: r.id,
    name: r.name,
    json: r.json,
    identityId: r.identity_id,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** Inserts a blueprint. Throws `store/constraint` when the name is taken or the identity unknown. */
export function insertBlueprint(db: Db, bp: { name: string; json: string; identityId: string }, at: string): void {
  withStoreErrors('storing a blueprint', () => {
    stmt(db, 'INSERT INTO blueprints (name, json, identity_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)').run(
      bp.name,
      bp.json,
      bp.identityId,
      at,
      at,
    );
  });
}

/**
 * Inserts a blueprint or replaces the one with the same name (keeping its id and `created_at`).
 * Throws `store/constraint` when the identity is unknown.
 */
export function upsertBlueprint(db: Db, bp: { name: string; json: string; identityId: string }, at: string): void {
  withStoreErrors('storing a blueprint', () => {
    stmt(
      db,
      `INSERT INTO blueprints (name, json, identity_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET json = excluded.json, identity_id = excluded.identity_id,
         updated_at = excluded.updated_at`,
    ).run(bp.name, bp.json, bp.identityId, at, at);
  });
}

/** The blueprint with this name, or undefined. */
export function getBlueprintByName(db: Db, name: string): BlueprintRecord | undefined {
  return withStoreErrors('reading a blueprint', () => {
    const r = stmt(db, `SELECT ${COLUMNS} FROM blueprints WHERE name = ?`).get(name) as RawRow | undefined;
    return r === undefined ? undefined : fromRaw(r);
  });
}

/** Every stored blueprint, by name. */
export function listBlueprintRecords(db: Db): BlueprintRecord[] {
  return withStoreErrors('listing blueprints', () => {
    const rows = stmt(db, `SELECT ${COLUMNS} FROM blueprints ORDER BY name`).all() as RawRow[];
    return rows.map(fromRaw);
  });
}

/** Deletes the blueprint with this name; true when there was one. */
export function deleteBlueprintByName(db: Db, name: string): boolean {
  return withStoreErrors(
    'deleting a blueprint',
    () => stmt(db, 'DELETE FROM blueprints WHERE name = ?').run(name).changes > 0,
  );
}
