/**
 * SQL for serial plans (migration 0003): `plans` and `plan_rows`. No other file touches these
 * tables. The rules (CSV formats, validation, conflicts) live in `src/kitting/plans.ts`; this file
 * only stores and reads.
 *
 * All functions are synchronous. {@link replacePlan} runs in one transaction, so a plan is either
 * entirely the old one or entirely the new one. SQLite failures become `store/*` codes.
 */
import { stmt, transaction, withStoreErrors, type Db } from './db.ts';

/** Which CSV layout a plan was read from. */
export type PlanFormat = 'mobiconnect' | 'named';
/** Text encoding of the imported file. */
export type PlanEncoding = 'utf-8' | 'shift_jis';

/** One serial of a plan. Optional columns are undefined when the file left them empty. */
export interface PlanRowRecord {
  readonly serial: string;
  /** Physical line in the imported file (1-based, the header is line 1). */
  readonly line: number;
  readonly name?: string;
  readonly assetTag?: string;
  readonly group?: string;
  readonly blueprint?: string;
  readonly notes?: string;
}

/** A plan without its rows. */
export interface PlanSummaryRecord {
  readonly name: string;
  readonly format: PlanFormat;
  readonly encoding: PlanEncoding;
  /** The imported file's base name, when known. */
  readonly source: string | null;
  /** ISO-8601 UTC. */
  readonly importedAt: string;
  readonly rows: number;
}

/** A row of another plan holding a serial (for conflict checks). */
export interface OtherPlanRow extends PlanRowRecord {
  readonly planName: string;
}

interface RawRow {
  serial: string;
  line: number;
  name: string | null;
  asset_tag: string | null;
  group_name: string | null;
  blueprint: string | null;
  notes: string | null;
}

function rowFromRaw(r: RawRow): PlanRowRecord {
  return {
    serial: r.serial,
    line: r.line,
    ...(r.name === null ? {} : { name: r.name }),
    ...(r.asset_tag === null ? {} : { assetTag: r.asset_tag }),
    ...(r.group_name === null ? {} : { group: r.group_name }),
    ...(r.blueprint === null ? {} : { blueprint: r.blueprint }),
    ...(r.notes === null ? {} : { notes: r.notes }),
  };
}

const ROW_COLUMNS = 'serial, line, name, asset_tag, group_name, blueprint, notes';

/**
 * Replaces (or creates) the plan `name` with `rows`, in one transaction: the old rows go, the new
 * ones come, or nothing changes when anything fails.
 */
export function replacePlan(
  db: Db,
  plan: { name: string; format: PlanFormat; encoding: PlanEncoding; source: string | null; importedAt: string },
  rows: readonly PlanRowRecord[],
): void {
  transaction(db, 'storing a plan', () => {
    db.prepare('DELETE FROM plans WHERE name = ?').run(plan.name);
    db.prepare('INSERT INTO plans (name, format, encoding, source, imported_at) VALUES (?, ?, ?, ?, ?)').run(
      plan.name,
      plan.format,
      plan.encoding,
      plan.source,
      plan.importedAt,
    );
    const insert = db.prepare(`INSERT INTO plan_rows (plan_name, ${ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
    for (const r of rows) {
      insert.run(
        plan.name,
        r.serial,
        r.line,
        r.name ?? null,
        r.assetTag ?? null,
        r.group ?? null,
        r.blueprint ?? null,
        r.notes ?? null,
      );
    }
  });
}

/** Every plan with its row count, oldest import first. */
export function listPlans(db: Db): PlanSummaryRecord[] {
  return withStoreErrors('listing plans', () => {
    const rows = db
      .prepare(
        `SELECT p.name, p.format, p.encoding, p.source, p.imported_at,
                (SELECT count(*) FROM plan_rows r WHERE r.plan_name = p.name) AS rows
         FROM plans p ORDER BY p.imported_at, p.name`,
      )
      .all() as {
      name: string;
      format: PlanFormat;
      encoding: PlanEncoding;
      source: string | null;
      imported_at: string;
      rows: number;
    }[];
    return rows.map((r) => ({
      name: r.name,
      format: r.format,
      encoding: r.encoding,
      source: r.source,
      importedAt: r.imported_at,
      rows: r.rows,
    }));
  });
}

/** The rows of a plan in file order (empty when there is no such plan). */
export function planRows(db: Db, name: string): PlanRowRecord[] {
  return withStoreErrors('reading a plan', () => {
    const rows = db
      .prepare(`SELECT ${ROW_COLUMNS} FROM plan_rows WHERE plan_name = ? ORDER BY line`)
      .all(name) as RawRow[];
    return rows.map(rowFromRaw);
  });
}

/** Whether a plan with this name exists. */
export function planExists(db: Db, name: string): boolean {
  return withStoreErrors(
    'reading a plan',
    () => db.prepare('SELECT 1 AS x FROM plans WHERE name = ?').get(name) !== undefined,
  );
}

/** Deletes a plan and its rows; true when there was one. */
export function deletePlan(db: Db, name: string): boolean {
  return withStoreErrors('deleting a plan', () => db.prepare('DELETE FROM plans WHERE name = ?').run(name).changes > 0);
}

/**
 * The rows of plans other than `exceptPlan` holding one of `serials` (for the conflict check of
 * an import). Read in one statement through a temporary JSON list, so 10,000 serials are one query.
 */
export function rowsInOtherPlans(db: Db, serials: readonly string[], exceptPlan: string): OtherPlanRow[] {
  return withStoreErrors('checking plans', () => {
    const rows = db
      .prepare(
        `SELECT plan_name, ${ROW_COLUMNS} FROM plan_rows
         WHERE plan_name <> ? AND serial IN (SELECT value FROM json_each(?))
         ORDER BY plan_name, line`,
      )
      .all(exceptPlan, JSON.stringify(serials)) as (RawRow & { plan_name: string })[];
    return rows.map((r) => ({ planName: r.plan_name, ...rowFromRaw(r) }));
  });
}

/** Every row holding `serial`, newest plan first (for the runner's `planFor`). */
export function rowsForSerial(db: Db, serial: string): OtherPlanRow[] {
  return withStoreErrors('reading plans', () => {
    const rows = stmt(
      db,
      `SELECT r.plan_name, ${ROW_COLUMNS.split(', ')
        .map((c) => `r.${c}`)
        .join(', ')}
         FROM plan_rows r JOIN plans p ON p.name = r.plan_name
         WHERE r.serial = ? ORDER BY p.imported_at DESC, p.name`,
    ).all(serial) as (RawRow & { plan_name: string })[];
    return rows.map((r) => ({ planName: r.plan_name, ...rowFromRaw(r) }));
  });
}

/**
 * Every row of every plan, oldest import first, then file order (for exporting all plans).
 */
export function allPlanRows(db: Db): OtherPlanRow[] {
  return withStoreErrors('reading plans', () => {
    const rows = db
      .prepare(
        `SELECT r.plan_name, ${ROW_COLUMNS.split(', ')
          .map((c) => `r.${c}`)
          .join(', ')}
         FROM plan_rows r JOIN plans p ON p.name = r.plan_name
         ORDER BY p.imported_at, p.name, r.line`,
      )
      .all() as (RawRow & { plan_name: string })[];
    return rows.map((r) => ({ planName: r.plan_name, ...rowFromRaw(r) }));
  });
}
