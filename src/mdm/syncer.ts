/**
 * The syncer: drains the MDM outbox (src/store/outbox.ts) to `POST /v1/kitting-results` so every
 * kitting result reaches the MDM exactly once, online or not (domain.md "The syncer").
 *
 * Semantics:
 * - Rows are claimed in batches (default 500, and below the server's 1 MiB body cap) with a lease
 *   owned by this syncer; a claim of a dead process (`pid:<n>` not alive) is released at start,
 *   and any claim comes back once its lease runs out. The server dedupes by idempotency key, so a
 *   batch re-sent after a crash, a timeout or a dropped connection lands in `duplicates` and is
 *   marked delivered once, never counted twice.
 * - Per-key answer: `accepted` and `duplicates` → delivered; `rejected` → parked with the
 *   server's reason (the rest of the batch flows on).
 * - Whole-request failures:
 *   - `mdm/offline`, `mdm/timeout`, `mdm/server-error` (and `mdm/bad-response`, `mdm/not-found`,
 *     `mdm/conflict`, which are the server's or the URL's fault, not the records'): the claims are
 *     released, the state becomes `offline` (since, last error, next try) and the next attempt
 *     waits an exponential backoff with jitter: `min(maxMs, baseMs·2^(n−1)) · (0.5 + random/2)`.
 *   - `mdm/auth-required` (401): claims released, state `auth-required`, the syncer stops until
 *     {@link Syncer.setToken}.
 *   - `mdm/rejected` for the whole batch (400/413: the envelope was refused, e.g. one item broke
 *     it): the batch is halved and retried until a single row is refused alone, which is parked
 *     with the reason; nothing else is held back.
 * - The visible state ({@link SyncStatus}) is emitted as `syncStateChanged` and persisted in the
 *   settings (`mdm.syncState`) so `kitting sync status` in another process shows it.
 * - Groups (`GET /v1/groups`) are fetched when the syncer starts and every `groupsRefreshMs`
 *   while online, and cached in the store (src/store/mdm-cache.ts) with their fetch time.
 *
 * Events (past tense, architecture.md): `syncStateChanged` (SyncStatus), `batchDelivered`
 * ({delivered, duplicates, parked}), `syncFailed` (KitError).
 *
 * better-sqlite3 transactions never span an await here: each store call is synchronous.
 */
import { EventEmitter } from 'node:events';
import { KitError, toKitError, type ErrorCode } from '../errors.ts';
import { createLogger } from '../log.ts';
import type { Db } from '../store/db.ts';
import { replaceCachedGroups } from '../store/mdm-cache.ts';
import {
  claimBatch,
  claimOwners,
  outboxStateCounts,
  parkClaims,
  recordBatchOutcome,
  releaseClaims,
  releaseClaimsOf,
  type ClaimedRow,
} from '../store/outbox.ts';
import { getSetting, setSetting } from '../store/settings.ts';
import { MAX_REQUEST_BYTES, MAX_RESULTS_PER_BATCH, type KittingResultPayload, type MdmClient } from './client.ts';

const log = createLogger('mdm/syncer');

/** The settings key holding the last persisted {@link SyncStatus}. */
export const SYNC_STATE_SETTING = 'mdm.syncState';

/** The syncer's state names (cli.md `sync status`). */
export type SyncStateName = 'unconfigured' | 'online' | 'offline' | 'auth-required';

/** The visible state of the syncer. */
export interface SyncStatus {
  state: SyncStateName;
  /** Results not delivered yet (queued or in flight; parked ones excluded). */
  queueLength: number;
  /** Results the MDM holds (accepted or confirmed duplicates). */
  delivered: number;
  /** Results the MDM refused for good (see `parked_reason`). */
  parked: number;
  /** When the MDM stopped answering (offline only). */
  offlineSince: string | null;
  /** The last failure, or null after a success. */
  lastError: { code: ErrorCode; message: string; at: string } | null;
  /** When the next attempt is due (offline), else null. */
  nextTryAt: string | null;
  /** When a batch last went through. */
  lastSyncAt: string | null;
}

/** Backoff parameters (ms). */
export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

/** Default backoff: 1 s doubling up to 5 min. */
export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 1000, maxMs: 5 * 60_000 };

/**
 * The delay before attempt `failures + 1` after `failures` consecutive failures (≥ 1): exponential
 * with "equal jitter", so stations that went offline together do not return in lockstep.
 */
export function backoffDelay(failures: number, o: BackoffOptions, random: () => number): number {
  const exp = Math.min(o.maxMs, o.baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.round(exp * (0.5 + random() / 2));
}

/** Options of {@link Syncer}. */
export interface SyncerOptions {
  db: Db;
  /** The MDM client; null: not configured (state `unconfigured`). */
  client: MdmClient | null;
  /** Rows per request (1…500, default 500). */
  batchSize?: number;
  backoff?: BackoffOptions;
  /** Jitter source (default Math.random). */
  random?: () => number;
  /** Clock (default Date.now). */
  now?: () => number;
  /** How long a claim holds (ms, default 120 s): after it, another syncer may send the rows. */
  leaseMs?: number;
  /** Who claims (default `pid:<process.pid>`). */
  owner?: string;
  /** Whether a claim owner is alive (default: `pid:<n>` probed with signal 0). */
  isOwnerAlive?: (owner: string) => boolean;
  /** While idle, how often to look for new rows (ms, default 2000). */
  idlePollMs?: number;
  /** How often to refresh the group cache while online (ms, default 10 min; 0: never). */
  groupsRefreshMs?: number;
}

/** What a drain did. */
export interface DrainSummary {
  delivered: number;
  duplicates: number;
  parked: number;
  batches: number;
}

type StepResult =
  | { kind: 'sent'; delivered: number; duplicates: number; parked: number }
  | { kind: 'empty' }
  | {
      kind: 'failed';
      error: KitError;
    };

/** Default liveness probe of a claim owner: `pid:<n>` on this machine. */
export function pidOwnerAlive(owner: string): boolean {
  const m = /^pid:(\d+)$/.exec(owner);
  if (m === null) return true;
  const pid = Number(m[1]);
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Drains the outbox to the MDM. Lifecycle: construct (one per station), then either
 * {@link Syncer.drain} (until the queue is empty: `sync run --once`, tests) or
 * {@link Syncer.start} / {@link Syncer.stop} (background, `sync run`, the station);
 * {@link Syncer.notify} after new results were queued, {@link Syncer.setToken} after a 401.
 */
export class Syncer extends EventEmitter {
  readonly #db: Db;
  #client: MdmClient | null;
  readonly #batchSize: number;
  readonly #backoff: BackoffOptions;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #leaseMs: number;
  readonly #owner: string;
  readonly #idlePollMs: number;
  readonly #groupsRefreshMs: number;
  #limit: number;
  #failures = 0;
  #status: SyncStatus;
  #running: Promise<void> | null = null;
  #stopped = true;
  #wake: (() => void) | null = null;
  #lastGroupsAt = 0;

  constructor(options: SyncerOptions) {
    super();
    this.#db = options.db;
    this.#client = options.client;
    this.#batchSize = Math.max(1, Math.min(MAX_RESULTS_PER_BATCH, options.batchSize ?? MAX_RESULTS_PER_BATCH));
    this.#limit = this.#batchSize;
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? Date.now;
    this.#leaseMs = options.leaseMs ?? 120_000;
    this.#owner = options.owner ?? `pid:${process.pid}`;
    this.#idlePollMs = options.idlePollMs ?? 2000;
    this.#groupsRefreshMs = options.groupsRefreshMs ?? 10 * 60_000;
    const alive = options.isOwnerAlive ?? pidOwnerAlive;
    for (const owner of claimOwners(this.#db)) {
      if (owner === this.#owner || !alive(owner)) {
        const n = releaseClaimsOf(this.#db, owner);
        if (n > 0) log.info('released claims of a stopped syncer', { owner, rows: n });
      }
    }
    const counts = outboxStateCounts(this.#db);
    const persisted = readPersistedStatus(this.#db);
    this.#status = {
      state: this.#client === null ? 'unconfigured' : persisted?.state === 'auth-required' ? 'auth-required' : 'online',
      queueLength: counts.queued,
      delivered: counts.delivered,
      parked: counts.parked,
      offlineSince: null,
      lastError: persisted?.lastError ?? null,
      nextTryAt: null,
      lastSyncAt: persisted?.lastSyncAt ?? null,
    };
  }

  /** The current visible state (a copy). */
  status(): SyncStatus {
    return { ...this.#status };
  }

  /** Configures (or replaces) the MDM client; state leaves `unconfigured`/`auth-required`. */
  setClient(client: MdmClient | null): void {
    this.#client = client;
    this.#failures = 0;
    this.#update({ state: client === null ? 'unconfigured' : 'online', nextTryAt: null, offlineSince: null });
    this.notify();
  }

  /** A new station token after `auth-required`: the syncer resumes at once. */
  setToken(token: string): void {
    if (this.#client === null) throw new KitError('mdm/unconfigured', 'no MDM is configured');
    this.#client.setToken(token);
    this.#failures = 0;
    this.#update({ state: 'online', nextTryAt: null, offlineSince: null });
    this.notify();
  }

  /** New rows were queued (or something changed): wake the background loop. */
  notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  #update(patch: Partial<SyncStatus>): void {
    const counts = outboxStateCounts(this.#db);
    const next: SyncStatus = {
      ...this.#status,
      ...patch,
      queueLength: counts.queued,
      delivered: counts.delivered,
      parked: counts.parked,
    };
    this.#status = next;
    setSetting(
      this.#db,
      SYNC_STATE_SETTING,
      JSON.stringify({
        state: next.state,
        offlineSince: next.offlineSince,
        lastError: next.lastError,
        nextTryAt: next.nextTryAt,
        lastSyncAt: next.lastSyncAt,
      }),
    );
    this.emit('syncStateChanged', this.status());
  }

  #iso(ms = this.#now()): string {
    return new Date(ms).toISOString();
  }

  /** Fetches `GET /v1/groups` and caches it. Errors are the client's. */
  async refreshGroups(): Promise<number> {
    if (this.#client === null) throw new KitError('mdm/unconfigured', 'no MDM is configured');
    const groups = await this.#client.listGroups();
    replaceCachedGroups(this.#db, groups, this.#iso());
    this.#lastGroupsAt = this.#now();
    return groups.length;
  }

  /** One batch: claim, send, record. */
  async #step(): Promise<StepResult> {
    const client = this.#client;
    if (client === null) return { kind: 'failed', error: new KitError('mdm/unconfigured', 'no MDM is configured') };
    const now = this.#now();
    const rows = claimBatch(this.#db, {
      limit: this.#limit,
      now: this.#iso(now),
      leaseUntil: this.#iso(now + this.#leaseMs),
      owner: this.#owner,
      maxBytes: MAX_REQUEST_BYTES - 64 * 1024,
    });
    if (rows.length === 0) return { kind: 'empty' };
    const ids = rows.map((r) => r.id);
    let answer;
    try {
      answer = await client.postResults(rows.map(toPayload));
    } catch (err) {
      const error = toKitError(err);
      if (error.code === 'mdm/rejected') {
        if (rows.length === 1) {
          const reason = `${error.message}`;
          parkClaims(this.#db, this.#owner, ids, reason);
          log.warn('result parked', { key: rows[0]?.idempotencyKey, reason });
          return { kind: 'sent', delivered: 0, duplicates: 0, parked: 1 };
        }
        releaseClaims(this.#db, this.#owner, ids, null);
        this.#limit = Math.max(1, Math.floor(rows.length / 2));
        return { kind: 'sent', delivered: 0, duplicates: 0, parked: 0 };
      }
      releaseClaims(this.#db, this.#owner, ids, null);
      return { kind: 'failed', error };
    }
    const parked = answer.rejected.flatMap((r) => {
      const key = r.key ?? rows[r.index]?.idempotencyKey;
      return key === undefined ? [] : [{ key, reason: r.reason }];
    });
    const delivered = recordBatchOutcome(
      this.#db,
      this.#owner,
      ids,
      { accepted: answer.accepted, duplicates: answer.duplicates, parked },
      this.#iso(),
    );
    if (parked.length > 0) log.warn('results parked', { count: parked.length, first: parked[0]?.reason });
    if (this.#limit < this.#batchSize) this.#limit = Math.min(this.#batchSize, this.#limit * 2);
    return { kind: 'sent', delivered, duplicates: answer.duplicates.length, parked: parked.length };
  }

  #onFailure(error: KitError): number {
    const at = this.#iso();
    this.emit('syncFailed', error);
    if (error.code === 'mdm/auth-required' || error.code === 'mdm/unconfigured') {
      this.#update({
        state: error.code === 'mdm/auth-required' ? 'auth-required' : 'unconfigured',
        lastError: { code: error.code, message: error.message, at },
        nextTryAt: null,
        offlineSince: null,
      });
      log.warn('sync stopped', { code: error.code });
      return -1;
    }
    this.#failures += 1;
    const delay = backoffDelay(this.#failures, this.#backoff, this.#random);
    this.#update({
      state: 'offline',
      offlineSince: this.#status.state === 'offline' ? this.#status.offlineSince : at,
      lastError: { code: error.code, message: error.message, at },
      nextTryAt: this.#iso(this.#now() + delay),
    });
    log.info('sync failed, retrying later', { code: error.code, failures: this.#failures, delayMs: delay });
    return delay;
  }

  #onSuccess(): void {
    this.#failures = 0;
    this.#update({ state: 'online', offlineSince: null, lastError: null, nextTryAt: null, lastSyncAt: this.#iso() });
  }

  /**
   * Sends batches until nothing is due, retrying retryable failures with backoff (at most
   * `maxFailures` in a row, default unlimited). Throws `mdm/auth-required` (the syncer stops),
   * `mdm/unconfigured`, or the last retryable error after `maxFailures`.
   */
  async drain(options: { maxFailures?: number; signal?: AbortSignal } = {}): Promise<DrainSummary> {
    const sum: DrainSummary = { delivered: 0, duplicates: 0, parked: 0, batches: 0 };
    if (this.#status.state === 'auth-required')
      throw new KitError('mdm/auth-required', 'the MDM refused the station token: set a new one');
    for (;;) {
      if (options.signal?.aborted === true) return sum;
      const r = await this.#step();
      if (r.kind === 'empty') {
        if (this.#status.state !== 'online') this.#onSuccess();
        else this.#update({});
        return sum;
      }
      if (r.kind === 'sent') {
        sum.delivered += r.delivered;
        sum.duplicates += r.duplicates;
        sum.parked += r.parked;
        sum.batches += 1;
        this.#onSuccess();
        this.emit('batchDelivered', { delivered: r.delivered, duplicates: r.duplicates, parked: r.parked });
        continue;
      }
      const delay = this.#onFailure(r.error);
      if (delay < 0) throw r.error;
      if (this.#failures >= (options.maxFailures ?? Infinity)) throw r.error;
      await this.#sleep(delay, options.signal);
    }
  }

  #sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        if (this.#wake === done) this.#wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
      this.#wake = done;
    });
  }

  /** Starts the background loop (idempotent). */
  start(): void {
    if (this.#running !== null) return;
    this.#stopped = false;
    this.#running = this.#loop().finally(() => {
      this.#running = null;
    });
  }

  /** Stops the background loop; resolves when the current request is done and recorded. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.notify();
    await this.#running;
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      const state = this.#status.state;
      if (state === 'auth-required' || state === 'unconfigured' || this.#client === null) {
        await this.#sleep(this.#idlePollMs);
        continue;
      }
      if (this.#groupsRefreshMs > 0 && this.#now() - this.#lastGroupsAt >= this.#groupsRefreshMs) {
        try {
          await this.refreshGroups();
        } catch (err) {
          const e = toKitError(err);
          this.#lastGroupsAt = this.#now();
          if (e.code === 'mdm/auth-required') {
            this.#onFailure(e);
            continue;
          }
          log.info('groups not refreshed', { code: e.code });
        }
      }
      let r: StepResult;
      try {
        r = await this.#step();
      } catch (err) {
        r = { kind: 'failed', error: toKitError(err) };
      }
      if (r.kind === 'sent') {
        this.#onSuccess();
        this.emit('batchDelivered', { delivered: r.delivered, duplicates: r.duplicates, parked: r.parked });
      } else if (r.kind === 'empty') {
        if (this.#status.state !== 'online') this.#onSuccess();
        await this.#sleep(this.#idlePollMs);
      } else {
        const delay = this.#onFailure(r.error);
        if (delay >= 0) await this.#sleep(delay);
      }
    }
  }
}

function toPayload(row: ClaimedRow): KittingResultPayload {
  // The stored payload is sent as it is, with the row's key (never a different one).
  return { ...(row.payload as unknown as KittingResultPayload), idempotencyKey: row.idempotencyKey };
}

function readPersistedStatus(db: Db): Partial<SyncStatus> | undefined {
  const text = getSetting(db, SYNC_STATE_SETTING);
  if (text === undefined) return undefined;
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null ? (v as Partial<SyncStatus>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The status `kitting sync status` shows without a running syncer: the persisted state and the
 * outbox counts. `configured` false → `unconfigured`.
 */
export function readSyncStatus(db: Db, configured: boolean): SyncStatus {
  const counts = outboxStateCounts(db);
  const p = readPersistedStatus(db);
  const state: SyncStateName = !configured
    ? 'unconfigured'
    : p?.state === 'offline' || p?.state === 'auth-required'
      ? p.state
      : 'online';
  return {
    state,
    queueLength: counts.queued,
    delivered: counts.delivered,
    parked: counts.parked,
    offlineSince: state === 'offline' ? (p?.offlineSince ?? null) : null,
    lastError: p?.lastError ?? null,
    nextTryAt: state === 'offline' ? (p?.nextTryAt ?? null) : null,
    lastSyncAt: p?.lastSyncAt ?? null,
  };
}

/** Options of {@link createSyncer}: the client is built from a URL and token. */
export interface CreateSyncerOptions extends Omit<SyncerOptions, 'client'> {
  client?: MdmClient | null;
}

/** A syncer for the station (the factory the Station facade owns one from). */
export function createSyncer(options: CreateSyncerOptions): Syncer {
  return new Syncer({ ...options, client: options.client ?? null });
}
