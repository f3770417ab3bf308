/**
 * SQL for the MDM outbox (migration 0004): results waiting to reach the MDM exactly once
 * (architecture.md "Transactional outbox"). No other file touches the `outbox` table.
 *
 * Row lifecycle:
 * - `queued`: written by {@link enqueueJobResult} inside the job's final-status transaction
 *   (src/store/jobs.ts), or by {@link enqueueResult} / {@link enqueueResults} (tests, tools).
 * - `in-flight`: {@link claimBatch} took it for one syncer process (`lease_owner`) until
 *   `lease_until`. A claim whose lease ran out, or whose owner is dead
 *   ({@link releaseClaimsOf}), is claimable again: a killed station loses nothing.
 * - `delivered`: the MDM answered accepted, or duplicate (a replay of a request that had already
 *   gone through: `duplicate = 1`, counted once).
 * - `parked`: the MDM will never accept it as sent (`parked_reason`); kept for people to see.
 * - back to `queued` ({@link releaseClaims}) when a request failed in a retryable way.
 *
 * Every function is synchronous; batch changes run in one transaction. Times are ISO-8601 UTC.
 */
import { KitError } from '../errors.ts';
import { tableExists, transaction, withStoreErrors, type Db } from './db.ts';

/** Row states. */
export type OutboxState = 'queued' | 'in-flight' | 'delivered' | 'parked';

/** What an outbox row carries. */
export type OutboxKind = 'kitting-result';

/** JSON object stored as a payload. */
export type OutboxPayload = { [key: string]: unknown };

/** One outbox row. */
export interface OutboxRecord {
  id: number;
  idempotencyKey: string;
  kind: OutboxKind;
  payload: OutboxPayload;
  createdAt: string;
  state: OutboxState;
  attempts: number;
  nextTryAt: string | null;
  leaseOwner: string | null;
  leaseUntil: string | null;
  parkedReason: string | null;
  deliveredAt: string | null;
  duplicate: boolean;
}

/** A claimed row, as the syncer sends it. */
export interface ClaimedRow {
  id: number;
  idempotencyKey: string;
  payload: OutboxPayload;
  attempts: number;
}

/** Counts by state ({@link outboxStateCounts}: read from the state index alone). */
export interface OutboxStateCounts {
  /** Not delivered yet and not parked (queued + in-flight). */
  queued: number;
  inFlight: number;
  delivered: number;
  parked: number;
}

/** Counts for `sync status`. */
export interface OutboxCounts extends OutboxStateCounts {
  /** Of `delivered`, how many were confirmed as duplicates (replays). */
  duplicates: number;
}

interface Row {
  id: number;
  idempotency_key: string;
  kind: OutboxKind;
  payload: string;
  created_at: string;
  state: OutboxState;
  attempts: number;
  next_try_at: string | null;
  lease_owner: string | null;
  lease_until: string | null;
  parked_reason: string | null;
  delivered_at: string | null;
  duplicate: number;
}

function parsePayload(text: string): OutboxPayload {
  const v: unknown = JSON.parse(text);
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new KitError('bug', 'outbox payload is not an object');
  return v as OutboxPayload;
}

function toRecord(r: Row): OutboxRecord {
  return {
    id: r.id,
    idempotencyKey: r.idempotency_key,
    kind: r.kind,
    payload: parsePayload(r.payload),
    createdAt: r.created_at,
    state: r.state,
    attempts: r.attempts,
    nextTryAt: r.next_try_at,
    leaseOwner: r.lease_owner,
    leaseUntil: r.lease_until,
    parkedReason: r.parked_reason,
    deliveredAt: r.delivered_at,
    duplicate: r.duplicate === 1,
  };
}

const INSERT =
  'INSERT INTO outbox (idempotency_key, kind, payload, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING';

/** An entry for {@link enqueueResults}. */
export interface NewOutboxEntry {
  idempotencyKey: string;
  payload: OutboxPayload;
  createdAt: string;
}

/**
 * Inserts rows (one transaction); a key already present is left as it is (the first write wins,
 * so a re-run cannot change what was sent). Returns how many rows were added.
 */
export function enqueueResults(db: Db, entries: readonly NewOutboxEntry[]): number {
  return transaction(db, 'queuing results', () => {
    const stmt = db.prepare(INSERT);
    let added = 0;
    for (const e of entries) {
      added += stmt.run(e.idempotencyKey, 'kitting-result', JSON.stringify(e.payload), e.createdAt).changes;
    }
    return added;
  });
}

/**
 * Queues one kitting result (`payload.idempotencyKey` is the key). For tests and tools; the
 * pipeline writes its rows through {@link enqueueJobResult}. Returns false when the key existed.
 */
export function enqueueResult(db: Db, payload: OutboxPayload & { idempotencyKey: string }, at?: string): boolean {
  return (
    enqueueResults(db, [
      { idempotencyKey: payload.idempotencyKey, payload, createdAt: at ?? new Date().toISOString() },
    ]) === 1
  );
}

/** The facts of a finished job from which {@link enqueueJobResult} builds the kitting result. */
export interface JobResultFacts {
  jobId: string;
  udid: string;
  serial: string | null;
  outcome: 'done' | 'failed' | 'cancelled';
  errorCode: string | null;
  summary: { [key: string]: unknown };
  at: string;
}

/** The idempotency key of a job's final result (one per final transition). */
export function jobResultKey(f: Pick<JobResultFacts, 'jobId' | 'outcome' | 'at'>): string {
  return `job:${f.jobId}:${f.outcome}:${f.at}`;
}

/**
 * Builds the contract's `KittingResult` of a finished job and inserts its outbox row. Runs inside
 * the caller's transaction (src/store/jobs.ts, the job's final status): it opens none. A database
 * older than migration 0004 (tests that stop at an earlier schema) has no outbox: nothing is written.
 */
export function enqueueJobResult(db: Db, f: JobResultFacts): void {
  if (!tableExists(db, 'outbox')) return;
  const key = jobResultKey(f);
  const s = f.summary;
  const serial = f.serial ?? (typeof s.serial === 'string' ? s.serial : null);
  const payload: OutboxPayload = { idempotencyKey: key, serial, udid: f.udid, outcome: f.outcome, finishedAt: f.at };
  if (typeof s.blueprint === 'string' && s.blueprint !== '') payload.blueprint = s.blueprint;
  if (typeof s.deviceName === 'string' && s.deviceName !== '') payload.deviceName = s.deviceName;
  if (typeof s.groupId === 'string' && s.groupId !== '') payload.groupId = s.groupId;
  if (f.errorCode !== null && f.outcome !== 'done') payload.errorCode = f.errorCode;
  const steps = s.steps;
  if (typeof steps === 'object' && steps !== null && !Array.isArray(steps)) {
    payload.steps = Object.entries(steps)
      .filter((e): e is [string, string] => typeof e[1] === 'string')
      .slice(0, 32)
      .map(([name, status]) => ({ name: name.slice(0, 64), status }));
  }
  db.prepare(INSERT).run(key, 'kitting-result', JSON.stringify(payload), f.at);
}

/** Options of {@link claimBatch}. */
export interface ClaimOptions {
  /** Most rows to claim. */
  limit: number;
  /** Now (ISO). */
  now: string;
  /** Lease end (ISO): after it another syncer may claim the rows again. */
  leaseUntil: string;
  /** Who claims (a syncer's id, `pid:<n>` for CLI processes). */
  owner: string;
  /** Stop adding rows once their payloads reach this many bytes (the first row is always taken). */
  maxBytes?: number;
}

interface Candidate {
  id: number;
  idempotency_key: string;
  payload: string;
  attempts: number;
}

/**
 * Atomically claims up to `limit` rows, oldest first: queued rows whose `next_try_at` has come,
 * and in-flight rows whose lease ran out. They become in-flight for `owner` until `leaseUntil`,
 * with `attempts` incremented.
 *
 * Cost is one batch, whatever the queue length: each state is read in id order along the
 * `outbox_state (state, id)` index and stops after `limit` rows (at most 2 × `limit` read), then
 * the two are merged. One query with `OR` would make SQLite read every due row, payload
 * included, into a temporary b-tree to sort it — the whole queue per batch.
 */
export function claimBatch(db: Db, o: ClaimOptions): ClaimedRow[] {
  return transaction(db, 'claiming outbox rows', () => {
    const queued = db
      .prepare(
        `SELECT id, idempotency_key, payload, attempts FROM outbox
          WHERE state = 'queued' AND (next_try_at IS NULL OR next_try_at <= ?) ORDER BY id LIMIT ?`,
      )
      .all(o.now, o.limit) as Candidate[];
    const expired = db
      .prepare(
        `SELECT id, idempotency_key, payload, attempts FROM outbox
          WHERE state = 'in-flight' AND lease_until <= ? ORDER BY id LIMIT ?`,
      )
      .all(o.now, o.limit) as Candidate[];
    const candidates =
      expired.length === 0 ? queued : [...queued, ...expired].sort((a, b) => a.id - b.id).slice(0, o.limit);
    const taken: typeof candidates = [];
    let bytes = 0;
    for (const c of candidates) {
      bytes += Buffer.byteLength(c.payload) + 1;
      if (o.maxBytes !== undefined && taken.length > 0 && bytes > o.maxBytes) break;
      taken.push(c);
    }
    const update = db.prepare(
      "UPDATE outbox SET state = 'in-flight', lease_owner = ?, lease_until = ?, attempts = attempts + 1 WHERE id = ?",
    );
    for (const c of taken) update.run(o.owner, o.leaseUntil, c.id);
    return taken.map((c) => ({
      id: c.id,
      idempotencyKey: c.idempotency_key,
      payload: parsePayload(c.payload),
      attempts: c.attempts + 1,
    }));
  });
}

/** The outcome of one sent batch, per key. */
export interface BatchOutcome {
  accepted: readonly string[];
  duplicates: readonly string[];
  parked: readonly { key: string; reason: string }[];
}

/**
 * Records what the MDM answered for a claimed batch, in one transaction: accepted → delivered,
 * duplicates → delivered with `duplicate = 1`, parked → parked with the reason. Only rows still
 * in-flight for `owner` change. Claimed rows the answer did not mention go back to queued (they
 * are sent again: the server dedupes). Returns the number of rows delivered.
 */
export function recordBatchOutcome(
  db: Db,
  owner: string,
  ids: readonly number[],
  out: BatchOutcome,
  at: string,
): number {
  return transaction(db, 'recording a sync batch', () => {
    const deliver = db.prepare(
      `UPDATE outbox SET state = 'delivered', delivered_at = ?, duplicate = ?, lease_owner = NULL, lease_until = NULL,
         next_try_at = NULL WHERE idempotency_key = ? AND state = 'in-flight' AND lease_owner = ?`,
    );
    const park = db.prepare(
      `UPDATE outbox SET state = 'parked', parked_reason = ?, lease_owner = NULL, lease_until = NULL, next_try_at = NULL
         WHERE idempotency_key = ? AND state = 'in-flight' AND lease_owner = ?`,
    );
    let delivered = 0;
    for (const k of out.accepted) delivered += deliver.run(at, 0, k, owner).changes;
    for (const k of out.duplicates) delivered += deliver.run(at, 1, k, owner).changes;
    for (const p of out.parked) park.run(p.reason.slice(0, 1000), p.key, owner);
    releaseIds(db, owner, ids, null);
    return delivered;
  });
}

function releaseIds(db: Db, owner: string, ids: readonly number[], nextTryAt: string | null): number {
  const stmt = db.prepare(
    `UPDATE outbox SET state = 'queued', lease_owner = NULL, lease_until = NULL, next_try_at = ?
       WHERE id = ? AND state = 'in-flight' AND lease_owner = ?`,
  );
  let n = 0;
  for (const id of ids) n += stmt.run(nextTryAt, id, owner).changes;
  return n;
}

/** Puts claimed rows back to queued (a retryable failure), not before `nextTryAt` (null: at once). */
export function releaseClaims(db: Db, owner: string, ids: readonly number[], nextTryAt: string | null): number {
  return transaction(db, 'releasing outbox claims', () => releaseIds(db, owner, ids, nextTryAt));
}

/** Parks claimed rows with one reason (a whole-batch refusal the MDM will repeat). */
export function parkClaims(db: Db, owner: string, ids: readonly number[], reason: string): number {
  return transaction(db, 'parking outbox rows', () => {
    const stmt = db.prepare(
      `UPDATE outbox SET state = 'parked', parked_reason = ?, lease_owner = NULL, lease_until = NULL
         WHERE id = ? AND state = 'in-flight' AND lease_owner = ?`,
    );
    let n = 0;
    for (const id of ids) n += stmt.run(reason.slice(0, 1000), id, owner).changes;
    return n;
  });
}

/** The distinct owners of in-flight claims (a starting syncer checks which are dead). */
export function claimOwners(db: Db): string[] {
  return withStoreErrors('reading outbox claims', () =>
    (
      db.prepare("SELECT DISTINCT lease_owner AS o FROM outbox WHERE state = 'in-flight'").all() as {
        o: string | null;
      }[]
    ).flatMap((r) => (r.o === null ? [] : [r.o])),
  );
}

/** Releases every in-flight claim of `owner` (a process that died): back to queued at once. */
export function releaseClaimsOf(db: Db, owner: string): number {
  return withStoreErrors(
    'releasing outbox claims',
    () =>
      db
        .prepare(
          "UPDATE outbox SET state = 'queued', lease_owner = NULL, lease_until = NULL WHERE state = 'in-flight' AND lease_owner = ?",
        )
        .run(owner).changes,
  );
}

/** Puts a parked row back to queued (after the data was corrected, or to retry on purpose). */
export function requeueParked(db: Db, idempotencyKey: string): boolean {
  return withStoreErrors(
    'requeuing an outbox row',
    () =>
      db
        .prepare(
          "UPDATE outbox SET state = 'queued', parked_reason = NULL, next_try_at = NULL WHERE idempotency_key = ? AND state = 'parked'",
        )
        .run(idempotencyKey).changes === 1,
  );
}

/**
 * Counts by state, read from the `outbox_state` index alone (no row, no payload is touched), so
 * the syncer can refresh them after every batch without pulling the whole table through SQLite's
 * page cache.
 */
export function outboxStateCounts(db: Db): OutboxStateCounts {
  return withStoreErrors('counting outbox rows', () => {
    const rows = db.prepare('SELECT state, COUNT(*) AS n FROM outbox GROUP BY state').all() as {
      state: OutboxState;
      n: number;
    }[];
    const c: OutboxStateCounts = { queued: 0, inFlight: 0, delivered: 0, parked: 0 };
    for (const r of rows) {
      if (r.state === 'queued') c.queued += r.n;
      else if (r.state === 'in-flight') {
        c.inFlight += r.n;
        c.queued += r.n;
      } else if (r.state === 'delivered') c.delivered += r.n;
      else c.parked += r.n;
    }
    return c;
  });
}

/**
 * Counts by state and how many deliveries were duplicates. The duplicate count reads every
 * delivered row: for `sync status` and tests, not for every batch (see {@link outboxStateCounts}).
 */
export function outboxCounts(db: Db): OutboxCounts {
  const c = outboxStateCounts(db);
  const duplicates = withStoreErrors('counting outbox rows', () => {
    const r = db.prepare("SELECT COUNT(*) AS n FROM outbox WHERE state = 'delivered' AND duplicate = 1").get() as {
      n: number;
    };
    return r.n;
  });
  return { ...c, duplicates };
}

/** The earliest `next_try_at` of queued rows (null when none waits, or some are due at once). */
export function earliestNextTry(db: Db): string | null {
  return withStoreErrors('reading the outbox', () => {
    const r = db.prepare("SELECT MIN(COALESCE(next_try_at, '')) AS t FROM outbox WHERE state = 'queued'").get() as {
      t: string | null;
    };
    return r.t === null || r.t === '' ? null : r.t;
  });
}

/** One row by key, or undefined. */
export function getOutboxRow(db: Db, idempotencyKey: string): OutboxRecord | undefined {
  return withStoreErrors('reading an outbox row', () => {
    const r = db.prepare('SELECT * FROM outbox WHERE idempotency_key = ?').get(idempotencyKey) as Row | undefined;
    return r === undefined ? undefined : toRecord(r);
  });
}

/** Rows in a state, oldest first (at most `limit`). */
export function listOutbox(db: Db, state: OutboxState, limit = 1000): OutboxRecord[] {
  return withStoreErrors('listing outbox rows', () =>
    (db.prepare('SELECT * FROM outbox WHERE state = ? ORDER BY id LIMIT ?').all(state, limit) as Row[]).map(toRecord),
  );
}
