/**
 * The station's MDM loop (issue #6): the {@link Syncer} the Station owns, and the MDM commands of
 * the Sync screen. One per Station.
 *
 * - {@link StationSync.start}: when sync is configured (URL in the settings, token sealed by the
 *   vault), opens the client and starts the background syncer on a connection of its own. Not
 *   configured: nothing runs; {@link StationSync.status} answers `unconfigured`.
 * - {@link StationSync.notify}: a job reached its final state (its outbox row is committed).
 * - After every delivered batch and every {@link StationSync.run}, the enrollment confirmations of
 *   finished devices are refreshed (`refreshEnrollmentConfirmations`), one refresh at a time.
 * - {@link StationSync.configure}: checks the token with `GET /v1/groups` first (a refused token is
 *   `mdm/auth-required` and nothing is stored), then stores URL and sealed token and (re)starts.
 * - {@link StationSync.device} / {@link StationSync.inactivate} / {@link StationSync.remove}: the
 *   lifecycle calls, the last two audited.
 *
 * The token never leaves this module except to the client and the vault.
 */
import { KitError } from '../errors.ts';
import type { Vault } from '../identity/vault.ts';
import { openMdmClient, refreshEnrollmentConfirmations } from '../kitting/mdm-port.ts';
import { createLogger } from '../log.ts';
import { appendAudit } from '../store/audit.ts';
import { openStationDatabase, type Db } from '../store/db.ts';
import { cachedGroups, replaceCachedGroups, type GroupCache } from '../store/mdm-cache.ts';
import { deleteSetting } from '../store/settings.ts';
import { MdmClient, normalizeBaseUrl, type DeleteResult, type MdmDevice } from './client.ts';
import { configuredUrl, hasStationToken, loadStationToken, saveStationToken, saveUrl } from './secrets.ts';
import {
  createSyncer,
  readSyncStatus,
  SYNC_STATE_SETTING,
  type DrainSummary,
  type Syncer,
  type SyncStatus,
} from './syncer.ts';

const log = createLogger('mdm/station-sync');

/** `sync.status`: the cli.md shape plus `offlineSince`. */
export interface SyncStatusView {
  readonly state: SyncStatus['state'];
  readonly queueLength: number;
  readonly delivered: number;
  readonly lastError: SyncStatus['lastError'];
  readonly nextTryAt: string | null;
  readonly offlineSince: string | null;
}

/** The view of a {@link SyncStatus}. */
export function syncStatusView(s: SyncStatus): SyncStatusView {
  return {
    state: s.state,
    queueLength: s.queueLength,
    delivered: s.delivered,
    lastError: s.lastError,
    nextTryAt: s.nextTryAt,
    offlineSince: s.offlineSince,
  };
}

/** What `sync.run` answers. */
export interface SyncRunResult extends DrainSummary {
  /** Serials the MDM now confirms as enrolled (of those that were awaiting it). */
  readonly confirmed: number;
  readonly status: SyncStatusView;
}

/** What `mdm.device` answers. */
export interface MdmDeviceView {
  readonly serial: string;
  readonly registered: boolean;
  readonly device: MdmDevice | null;
}

/** Options of {@link StationSync}. */
export interface StationSyncOptions {
  readonly dataDir: string;
  /** Opens the station's vault (`create`: make one when there is none). */
  readonly vault: (create: boolean) => Promise<Vault>;
  /** Who acts, for the audit log. */
  readonly actor: string;
  /** Called with every state change (the Station emits `syncStateChanged`). */
  readonly onState: (status: SyncStatusView) => void;
  /** Per-request timeout of the client (ms). */
  readonly timeoutMs?: number;
  /** While idle, how often the syncer looks for rows (ms). */
  readonly idlePollMs?: number;
}

interface Running {
  readonly db: Db;
  readonly syncer: Syncer;
  readonly client: MdmClient;
}

/** The station's syncer and MDM commands (see the module doc). */
export class StationSync {
  readonly #o: StationSyncOptions;
  #running: Running | undefined;
  #starting: Promise<Running | undefined> | undefined;
  #refreshing: Promise<number> | undefined;
  #closed = false;

  constructor(options: StationSyncOptions) {
    this.#o = options;
  }

  #withDb<T>(fn: (db: Db) => T): T {
    const db = openStationDatabase(this.#o.dataDir);
    try {
      return fn(db);
    } finally {
      db.close();
    }
  }

  /**
   * Starts the syncer when sync is configured (idempotent); resolves with whether it runs.
   * Rejects with vault errors (`vault/passphrase-required` …) when the token cannot be opened.
   */
  async start(): Promise<boolean> {
    if (this.#closed) return false;
    this.#starting ??= this.#open().finally(() => {
      this.#starting = undefined;
    });
    return (await this.#starting) !== undefined;
  }

  async #open(): Promise<Running | undefined> {
    if (this.#running !== undefined) return this.#running;
    const db = openStationDatabase(this.#o.dataDir);
    try {
      const url = configuredUrl(db);
      if (url === undefined || !hasStationToken(db)) {
        db.close();
        return undefined;
      }
      const token = await loadStationToken(db, await this.#o.vault(false));
      const client = new MdmClient({
        baseUrl: url,
        token,
        ...(this.#o.timeoutMs !== undefined ? { timeoutMs: this.#o.timeoutMs } : {}),
      });
      return this.#run(db, client);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  #run(db: Db, client: MdmClient): Running {
    const syncer = createSyncer({
      db,
      client,
      ...(this.#o.idlePollMs !== undefined ? { idlePollMs: this.#o.idlePollMs } : {}),
    });
    syncer.on('syncStateChanged', (s: SyncStatus) => this.#o.onState(syncStatusView(s)));
    syncer.on('batchDelivered', () => {
      void this.refreshConfirmations().catch((err: unknown) =>
        log.warn('enrollment confirmations not refreshed', { error: err }),
      );
    });
    const running: Running = { db, syncer, client };
    this.#running = running;
    syncer.start();
    this.#o.onState(syncStatusView(syncer.status()));
    log.info('MDM sync started', { url: client.baseUrl });
    return running;
  }

  /** A job reached its final state: wake the syncer. */
  notify(): void {
    this.#running?.syncer.notify();
  }

  /** `sync.status`: the running syncer's state, else the persisted one (no network). */
  status(): SyncStatusView {
    const r = this.#running;
    if (r !== undefined) return syncStatusView(r.syncer.status());
    return syncStatusView(
      this.#withDb((db) => readSyncStatus(db, configuredUrl(db) !== undefined && hasStationToken(db))),
    );
  }

  /**
   * `sync.configure`: checks `token` against `url` (`GET /v1/groups`; refused → `mdm/auth-required`,
   * nothing stored), stores the URL and the sealed token, caches the groups and (re)starts the
   * syncer. The token is not in the answer.
   */
  async configure(input: { url: string; token: string }): Promise<{ url: string; groups: number }> {
    const url = normalizeBaseUrl(input.url);
    const client = new MdmClient({
      baseUrl: url,
      token: input.token,
      ...(this.#o.timeoutMs !== undefined ? { timeoutMs: this.#o.timeoutMs } : {}),
    });
    const groups = await client.listGroups();
    const vault = await this.#o.vault(true);
    const db = openStationDatabase(this.#o.dataDir);
    try {
      await saveStationToken(db, vault, input.token);
      saveUrl(db, url);
      replaceCachedGroups(db, groups, new Date().toISOString());
      deleteSetting(db, SYNC_STATE_SETTING);
    } finally {
      db.close();
    }
    await this.#stopRunning();
    if (!this.#closed) await this.start();
    return { url, groups: groups.length };
  }

  /** `sync.run`: drains now (one retryable failure ends it), then refreshes enrollment confirmations. */
  async run(): Promise<SyncRunResult> {
    const r = await this.#require();
    const sum = await r.syncer.drain({ maxFailures: 1 });
    const confirmed = await this.refreshConfirmations();
    return { ...sum, confirmed, status: syncStatusView(r.syncer.status()) };
  }

  /** Refreshes the enrollment confirmations (one run at a time; 0 when sync is not running). */
  refreshConfirmations(): Promise<number> {
    const r = this.#running;
    if (r === undefined) return Promise.resolve(0);
    const previous = this.#refreshing ?? Promise.resolve(0);
    const next = previous
      .catch(() => 0)
      .then(() => (this.#running === r ? refreshEnrollmentConfirmations(r.db, r.client) : 0));
    this.#refreshing = next;
    return next;
  }

  /** `sync.groups`: the cached groups and when they were fetched (for offline blueprint editing). */
  groups(): GroupCache {
    return this.#withDb((db) => cachedGroups(db));
  }

  /** The configured client (the running one, else opened now), or null when sync is not configured or the vault cannot open. */
  async client(): Promise<MdmClient | null> {
    const r = this.#running;
    if (r !== undefined) return r.client;
    // Not started: a client of its own, without starting the syncer.
    const db = openStationDatabase(this.#o.dataDir);
    try {
      return await openMdmClient(db, () => this.#o.vault(false), {
        ...(this.#o.timeoutMs !== undefined ? { timeoutMs: this.#o.timeoutMs } : {}),
      }).catch(() => null);
    } finally {
      db.close();
    }
  }

  async #require(): Promise<Running> {
    const r = this.#running ?? (await this.start().then(() => this.#running));
    if (r === undefined)
      throw new KitError('mdm/unconfigured', 'MDM sync is not configured (sync.configure / kitting sync config)');
    return r;
  }

  /** `mdm.device`: the MDM's record of `serial`. */
  async device(serial: string): Promise<MdmDeviceView> {
    const device = await (await this.#require()).client.getDevice(serial);
    return { serial, registered: device !== null, device };
  }

  /** `mdm.inactivate`: normal or forced inactivation, audited (`mdm/inactivated`). */
  async inactivate(serial: string, force: boolean): Promise<MdmDevice> {
    const r = await this.#require();
    const device = await r.client.inactivate(serial, { force });
    this.#audit('mdm/inactivated', serial, { force, state: device.state });
    return device;
  }

  /** `mdm.delete`: deletes an inactive record (its license freed), audited (`mdm/deleted`). */
  async remove(serial: string): Promise<DeleteResult> {
    const r = await this.#require();
    const result = await r.client.deleteDevice(serial);
    this.#audit('mdm/deleted', serial, { licenseFreed: result.licenseFreed });
    return result;
  }

  #audit(action: string, subject: string, details: Record<string, unknown>): void {
    this.#withDb((db) =>
      appendAudit(db, { at: new Date().toISOString(), actor: this.#o.actor, action, subject, details }),
    );
  }

  async #stopRunning(): Promise<void> {
    const r = this.#running;
    if (r === undefined) return;
    this.#running = undefined;
    await r.syncer.stop();
    await this.#refreshing?.catch(() => 0);
    r.db.close();
  }

  /** Stops the syncer (the request in flight is finished and recorded) and closes its connection. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#starting?.catch(() => undefined);
    await this.#stopRunning();
  }
}
