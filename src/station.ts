/**
 * The station facade: the one thing the CLI, the Electron shell and the headless server call.
 *
 * This first part covers the devices themselves (list, read values, pair, unpair, restart, shut
 * down). The kitting pipeline, the store and the MDM syncer attach here later; the shape is kept
 * for that: one long-lived object per process, camelCase results, KitErrors with codes, and a
 * lazily started {@link DeviceWatcher} for live attach/detach.
 */
import { KitError, hasCode, toKitError, type ErrorCode } from './errors.ts';
import { createLogger } from './log.ts';
import { decodePlist, isPlistDict, readSignedPlist, type PlistDict, type PlistValue } from './plist/index.ts';
import {
  connectLockdown,
  findDevice,
  loadPairRecord,
  openDevice,
  type DeviceProgress,
  type DeviceSession,
} from './device/device.ts';
import { identityFromValues, type LockdownClient } from './device/lockdown.ts';
import { modelName } from './device/models.ts';
import { activateDevice, type ActivationResult } from './device/services/activation.ts';
import { DiagnosticsClient, waitForReturn } from './device/services/diagnostics.ts';
import { McInstallClient, type McProfileInfo } from './device/services/mcinstall.ts';
import type { SupervisorCredentials } from './device/pairing.ts';
import { IdentityService } from './identity/identity.ts';
import { PassphraseVault, resolvePassphrase, type Vault } from './identity/vault.ts';
import { appendAudit } from './store/audit.ts';
import { openStationDatabase } from './store/db.ts';
import { UsbmuxClient, type UsbmuxDevice, type UsbmuxdAddress } from './device/usbmux.ts';
import { DeviceWatcher } from './device/watcher.ts';
import {
  UsbLayer,
  formatEcid,
  hasIbootSerial,
  type AppleUsbDevice,
  type KnownDeviceIdentity,
  type LeaveRecoveryResult,
  type PortMap,
  type UsbStatus,
} from './device/usb.ts';
import { prepareStation, type PrepareDeviceResult, type PrepareEvent, type PrepareRequest } from './kitting/prepare.ts';
import { busHub, type BatchCounts, type BatchScheduler, type HubOf, type SchedulerEvent } from './kitting/scheduler.ts';
import type { JobEvent } from './kitting/runner.ts';
import {
  deleteStoredBlueprint,
  exportStoredBlueprint,
  listStoredBlueprints,
  storeBlueprintChecked,
  type StoredBlueprintSummary,
} from './kitting/blueprint-store.ts';
import { importPlanCsv, listStoredPlans, type PlanImportResult, type PlanSummaryRecord } from './kitting/plans.ts';
import { parseSince, reportDocument, type ReportDocument } from './kitting/report.ts';
import type { IdentitySummary } from './identity/identity.ts';
import { getJob, listJobs, type JobRecord, type ListJobsOptions } from './store/jobs.ts';
import { getSetting, setSetting } from './store/settings.ts';
import type { Db } from './store/db.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ERROR_MESSAGES, type Lang, type Words } from './i18n/messages.ts';
import { SKIP_PANES, type SkipPane } from './kitting/skip-panes.ts';
import { validateBlueprint, type BlueprintValidation } from './kitting/blueprint.ts';
import { countIdentities } from './store/identities.ts';
import {
  PlanRowsError,
  exportPlans,
  readPlanCsv,
  type BadRow,
  type PlanEncoding,
  type PlanFormat,
  type PlanRowRecord,
} from './kitting/plans.ts';
import { reportCsv } from './kitting/report.ts';
import { StationSync, type MdmDeviceView, type SyncRunResult, type SyncStatusView } from './mdm/station-sync.ts';
import type { DeleteResult, MdmDevice } from './mdm/client.ts';
import type { GroupCache } from './store/mdm-cache.ts';
import { saveGroupPassword } from './mdm/secrets.ts';
import type { CredentialsCheck } from './kitting/mdm-port.ts';
import type { ExportFormat } from './identity/identity.ts';
import type {
  DeviceState,
  DeviceStateInfo,
  NextAction,
  SettingsInput,
  StationEvent,
  StationSettings,
  WatchSetInput,
} from './contract.ts';

const log = createLogger('station');

export interface StationOptions {
  /** `--usbmuxd` text or a parsed address; default `USBMUXD_SOCKET_ADDRESS`, else the platform's. */
  usbmuxdAddress?: string | UsbmuxdAddress | undefined;
  /** The station's data folder (SQLite, vault) — used by later parts of the facade. */
  dataDir: string;
  /** How long pairing waits for the person to tap Trust (default 120 s). */
  pairTimeoutMs?: number;
  /** Per-request device timeout (default 10 s). */
  timeoutMs?: number;
  /** The vault passphrase file (`--passphrase-file`); else `KITTING_PASSPHRASE`. Needed to sign with an identity. */
  passphraseFile?: string | undefined;
  /**
   * The vault sealing private keys (default: the passphrase vault of `dataDir`, unlocked with
   * {@link passphraseFile} or `KITTING_PASSPHRASE`). The Electron app gives a `SafeStorageVault`
   * (the OS keychain).
   */
  vault?: Vault | undefined;
  /** Who acts, for the audit log: `cli`, `app`, `server` (default `cli`). */
  actor?: string;
  /** The USB layer (default: over the `usb` package, loaded on first use). Tests give one over a fake backend. */
  usb?: UsbLayer | undefined;
  /**
   * The hub of a device for per-hub caps (default: the USB port map's hub when USB is tracked and
   * the map knows the device, else the USB bus of its usbmuxd location id).
   */
  hubOf?: HubOf;
  /** Runner retry policy (tests shorten the backoff). */
  retry?: { maxAttempts?: number; baseDelayMs?: number; maxDelayMs?: number };
}

/** A batch or watch request (`batch.start`, `watch.set`, `kitting prepare`, `kitting watch`). */
export interface BatchRequest {
  /** A stored blueprint's name, else a blueprint file path. */
  readonly blueprint: string;
  /** Batch mode: the devices, or every one attached now. Not used in watch mode. */
  readonly udids?: readonly string[] | 'all';
  readonly maxParallel: number;
  readonly perHub?: number;
  readonly confirmedErase: boolean;
  /** Request a forced MDM inactivation of registered devices being erased (explicit confirmation; audited). */
  readonly forceInactivate?: boolean;
  readonly activationUrl?: string;
  /** Batch mode: how long a device that left, or one waiting for Trust/unlock, is awaited (default 5 min). */
  readonly returnTimeoutMs?: number;
  readonly eraseReturnTimeoutMs?: number;
  /** How often jobs waiting for a person are tried again (default 2 s). */
  readonly pollIntervalMs?: number;
  /** The vault passphrase file (else the station's, else `KITTING_PASSPHRASE`). */
  readonly passphraseFile?: string | undefined;
  /** Aborting it stops the batch (jobs persisted). */
  readonly signal?: AbortSignal;
}

/** What `batch.start` / `watch.set` answer. */
export interface BatchStarted {
  readonly batchId: string;
  readonly mode: 'batch' | 'watch';
}

/** The running batch or watch session (`batch.status`), or null. */
export interface BatchStatus {
  readonly active: {
    readonly batchId: string;
    readonly mode: 'batch' | 'watch';
    readonly blueprint: string;
    readonly paused: boolean;
    readonly counts: BatchCounts;
    /** The devices waiting their turn, in start order. */
    readonly queuedUdids: readonly string[];
  } | null;
}

interface ActiveBatch {
  readonly batchId: string;
  readonly mode: 'batch' | 'watch';
  readonly blueprint: string;
  readonly controller: AbortController;
  scheduler: BatchScheduler | undefined;
  /** Actions asked for before the scheduler existed (it starts after the blueprint and identity load). */
  pending: ('pause' | 'resume')[];
  readonly done: Promise<PrepareDeviceResult[]>;
}

const SETTINGS_KEY = 'station.settings';
const DEFAULT_SETTINGS: StationSettings = { maxParallel: 4, perHub: null, usbmuxdAddress: null, language: 'ja' };

/** The device state and next action a job event implies, or undefined when it changes nothing. */
function stateOfJobEvent(e: JobEvent): { state: DeviceState; nextAction?: NextAction; code?: ErrorCode } | undefined {
  switch (e.type) {
    case 'jobCreated':
    case 'jobResumed':
    case 'stepStarted':
    case 'stepFinished':
      return { state: 'running' };
    case 'stepProgressed':
      return e.kind === 'trust-pending' ? { state: 'trust-pending', nextAction: 'tap-trust' } : { state: 'running' };
    case 'jobWaiting':
      switch (e.reason) {
        case 'trust-pending':
          return { state: 'trust-pending', nextAction: 'tap-trust', code: e.code };
        case 'locked':
          return { state: 'locked', nextAction: 'unlock', code: e.code };
        case 'needs-internet':
          return { state: 'waiting', nextAction: 'needs-internet', code: e.code };
        case 'erase-confirmation':
          return { state: 'waiting', nextAction: 'confirm-erase', code: e.code };
        case 'device-gone':
          return { state: 'waiting', nextAction: 'reconnect', code: e.code };
      }
      return { state: 'waiting', code: e.code };
    case 'jobFinished':
      return { state: 'done' };
    case 'jobFailed':
      return e.code === 'activation/locked'
        ? { state: 'failed', nextAction: 'activation-lock', code: e.code }
        : { state: 'failed', code: e.code };
    default:
      return undefined;
  }
}

/** Apple devices on the USB bus, or why USB is off ({@link Station.usbDevices}). */
export interface UsbDevicesResult {
  status: UsbStatus;
  devices: AppleUsbDevice[];
}

/** Result of {@link Station.enterRecovery}. */
export interface EnterRecoveryResult {
  udid: string;
  /** The ECID it will show on the USB bus in recovery mode (lockdown `UniqueChipID`). */
  ecid: bigint | null;
}

/** Result of {@link Station.installProfile}. */
export interface InstallProfileResult {
  udid: string;
  /** The profile's `PayloadIdentifier`. */
  identifier: string;
  /** True: installed silently (supervised by the given identity); false: waiting for approval on the device unless in Setup Assistant. */
  silent: boolean;
}

/** One device's outcome of {@link Station.erase}. */
export type EraseResult =
  | {
      udid: string;
      erased: true;
      /** The DeviceID before the erase. */
      previousDeviceId: number;
      /** The DeviceID it came back with; null when not waited for. */
      deviceId: number | null;
      returned: boolean;
    }
  | { udid: string; erased: false; error: { code: ErrorCode; message: string } };

/** Options of {@link Station.erase}. */
export interface EraseCallOptions {
  /** Wait until each device is back (same UDID, new DeviceID). Default true. */
  wait?: boolean;
  /** How long to wait per device (default 15 min). */
  waitTimeoutMs?: number;
  /** Keep the cellular data plan (default true). */
  preserveDataPlan?: boolean;
}

/** One attached device as `kitting list` shows it (cli.md). Unknown facts are null. */
export interface DeviceSummary {
  udid: string;
  serial: string | null;
  name: string | null;
  productType: string | null;
  /** Human model name (`iPad (10th generation)`), or the product type when unknown. */
  model: string | null;
  osVersion: string | null;
  activationState: string | null;
  /** Read in a session only (needs a pair record); null when unknown. */
  supervised: boolean | null;
  /** This host holds a pair record the device accepts. */
  paired: boolean;
  /** `USB` (network devices are not listed). */
  connection: string;
  /** Hub port, when known (from the USB layer; usbmuxd does not say). */
  port: string | null;
  deviceId: number;
  locationId: number | null;
  /** Set when the device could not be read (it is still listed). */
  error?: { code: ErrorCode; message: string };
}

/** Result of {@link Station.pair}. */
export interface PairResult {
  udid: string;
  hostId: string;
  /** False when an existing pairing was valid and kept. */
  pairedNow: boolean;
}

/** Result of {@link Station.unpair}. */
export interface UnpairResult {
  udid: string;
  /** False when this host had no pair record for the device. */
  unpaired: boolean;
  hostId: string | null;
}

/** Per-call options for operations that may pair. */
export interface PairingCallOptions {
  onProgress?: (event: DeviceProgress) => void;
  signal?: AbortSignal;
}

function strOrNull(v: PlistValue | undefined): string | null {
  return typeof v === 'string' ? v : null;
}

/**
 * Lifecycle: `new Station(options)` → calls → {@link close}. Every method throws KitErrors:
 * `device/not-found` (exit 3) for a UDID that is not attached, `usbmux/unavailable` when usbmuxd
 * is not there, and the pairing/lockdown codes of `src/device/`.
 */
export class Station {
  readonly usbmux: UsbmuxClient;
  readonly dataDir: string;
  private readonly pairTimeoutMs: number | undefined;
  private readonly timeoutMs: number | undefined;
  private readonly passphraseFile: string | undefined;
  private readonly actor: string;
  private readonly vault: Vault | undefined;
  private watcherInstance: DeviceWatcher | undefined;
  /** USB: ports, recovery/DFU devices (src/device/usb.ts). */
  readonly usb: UsbLayer;
  /** ECID and serial number per UDID, learned in normal mode, to find a device again in recovery mode. */
  private readonly knownIdentities = new Map<string, KnownDeviceIdentity>();
  private readonly hubOf: HubOf;
  /** The latest port map while USB is tracked ({@link trackUsb}), refreshed on every USB hotplug event. */
  private ports: PortMap | undefined;
  /** USB tracking: started (a promise of whether USB is available), and the state key per recovery/DFU attachment. */
  private usbTracking: Promise<boolean> | undefined;
  private readonly usbKeys = new Map<string, string>();
  private readonly retry: StationOptions['retry'];
  private readonly listeners = new Set<(event: StationEvent) => void>();
  private readonly states = new Map<string, DeviceStateInfo>();
  private active: ActiveBatch | undefined;
  private batchSeq = 0;
  private closed = false;
  /** The MDM syncer and the Sync screen's MDM calls (src/mdm/station-sync.ts). */
  private readonly mdmSync: StationSync;

  constructor(options: StationOptions) {
    this.usbmux = new UsbmuxClient(
      options.usbmuxdAddress ?? undefined,
      options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {},
    );
    this.dataDir = options.dataDir;
    this.pairTimeoutMs = options.pairTimeoutMs;
    this.timeoutMs = options.timeoutMs;
    this.passphraseFile = options.passphraseFile;
    this.actor = options.actor ?? 'cli';
    this.vault = options.vault;
    this.usb = options.usb ?? new UsbLayer();
    this.hubOf = options.hubOf ?? ((d) => this.ports?.hubOfUsbmux(d) ?? busHub(d));
    this.retry = options.retry;
    this.mdmSync = new StationSync({
      dataDir: this.dataDir,
      vault: (create) => this.openVault(create),
      actor: this.actor,
      onState: (s) => this.emit({ type: 'syncStateChanged', at: new Date().toISOString(), ...s }),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    });
  }

  /**
   * Starts the station's background work: the MDM syncer when sync is configured (results then
   * drain to the MDM as jobs finish), and USB tracking ({@link trackUsb}). Resolves with whether
   * each runs.
   * @throws KitError vault codes when the stored token cannot be opened.
   */
  async start(): Promise<{ sync: boolean; usb: boolean }> {
    const [sync, usb] = await Promise.all([this.mdmSync.start(), this.trackUsb()]);
    return { sync, usb };
  }

  /**
   * Tracks the USB bus (once; later calls answer the first one): enumerates, then follows hotplug.
   * Devices in recovery or DFU mode appear in {@link deviceStates} as `recovery` with next action
   * `leave-recovery` (keys: see `DeviceStateInfo` in the contract), and the port map feeds the
   * per-hub caps. Resolves false, changing nothing, when USB is off (`usb.status` says why).
   * Never throws.
   */
  trackUsb(): Promise<boolean> {
    this.usbTracking ??= (async () => {
      const status = await this.usb.status();
      if (!status.available) {
        log.info('USB is off: no port map, no recovery detection', { code: status.reason.code });
        return false;
      }
      this.usb.on('usbAttached', (d) => this.onUsbChanged(d, true));
      this.usb.on('usbDetached', (d) => this.onUsbChanged(d, false));
      try {
        await this.usb.watch();
      } catch (err) {
        log.warn('USB hotplug unavailable: the bus is read at start only', { error: err });
      }
      try {
        const devices = await this.usb.devices();
        for (const d of devices) this.onUsbChanged(d, true);
      } catch (err) {
        log.warn('USB enumeration failed', { error: err });
      }
      await this.refreshPorts();
      return true;
    })();
    return this.usbTracking;
  }

  private async refreshPorts(): Promise<void> {
    try {
      this.ports = await this.usb.portMap([], [...this.knownIdentities.values()]);
    } catch (err) {
      log.warn('USB port map unavailable', { error: err });
    }
  }

  /** The state key of a recovery/DFU device: a UDID seen before with its ECID or serial number, else `ecid:`/`usb:`. */
  private recoveryKey(d: AppleUsbDevice): string {
    for (const k of this.knownIdentities.values()) {
      if (d.ecid !== undefined && k.ecid === d.ecid) return k.udid;
      if (d.serialNumber !== undefined && k.serialNumber === d.serialNumber) return k.udid;
    }
    return d.ecid !== undefined ? `ecid:${formatEcid(d.ecid)}` : `usb:${d.portPath}`;
  }

  private onUsbChanged(d: AppleUsbDevice, attached: boolean): void {
    if (this.closed) return;
    void this.refreshPorts();
    if (!hasIbootSerial(d.mode)) return;
    if (attached) {
      const key = this.usbKeys.get(d.handle) ?? this.recoveryKey(d);
      this.usbKeys.set(d.handle, key);
      this.setState(key, {
        state: 'recovery',
        ...(d.mode === 'recovery' ? { nextAction: 'leave-recovery' as const } : {}),
        hub: d.location?.hubId ?? null,
        port: d.location !== undefined ? { path: d.location.path, label: { ...d.location.label } } : null,
        ...(d.ecid !== undefined ? { ecid: formatEcid(d.ecid) } : {}),
      });
      return;
    }
    const key = this.usbKeys.get(d.handle);
    if (key === undefined) return;
    this.usbKeys.delete(d.handle);
    if (this.states.get(key)?.state === 'recovery') this.setState(key, { state: 'detached' });
    if (key.startsWith('ecid:') || key.startsWith('usb:')) this.states.delete(key);
  }

  /**
   * The live device watcher, started on first use; from then on the station tracks every device's
   * state and emits `deviceAttached` / `deviceDetached` / `deviceStateChanged`.
   * @throws KitError `usbmux/unavailable`.
   */
  async watcher(): Promise<DeviceWatcher> {
    if (this.watcherInstance === undefined) {
      const w = new DeviceWatcher(this.usbmux);
      w.on('attached', (d) => this.onAttached(d));
      w.on('detached', (d) => this.onDetached(d.udid));
      await w.start();
      if (this.watcherInstance !== undefined) {
        w.stop();
        return this.watcherInstance;
      }
      this.watcherInstance = w;
    }
    return this.watcherInstance;
  }

  /**
   * Stops the running batch or watch session (its jobs are persisted `cancelled` at the step they
   * were in; the same command resumes them), the watcher and the USB layer. The returned promise
   * resolves once the batch's jobs have returned; callers that exit right away need not await it.
   */
  close(): Promise<void> {
    this.closed = true;
    const active = this.active;
    active?.controller.abort(new KitError('kitting/cancelled', 'the station closed'));
    this.watcherInstance?.stop();
    this.watcherInstance = undefined;
    void this.usb.close();
    const jobsDone =
      active === undefined
        ? Promise.resolve()
        : active.done.then(
            () => undefined,
            () => undefined,
          );
    return jobsDone.then(() => this.mdmSync.close());
  }

  // ---- events and device states -------------------------------------------------------------------

  /** Subscribes to every {@link StationEvent}; returns the unsubscribe function. Listeners must not throw. */
  on(listener: (event: StationEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The events as an async iterator (for the HTTP/WebSocket binding): buffered from the call on,
   * ends when `signal` aborts or the iterator is returned.
   */
  events(signal?: AbortSignal): AsyncIterableIterator<StationEvent> {
    const queue: StationEvent[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    const end = (): void => {
      ended = true;
      unsubscribe();
      wake?.();
    };
    const unsubscribe = this.on((e) => {
      queue.push(e);
      wake?.();
    });
    signal?.addEventListener('abort', end, { once: true });
    if (signal?.aborted === true) end();
    const iterator: AsyncIterableIterator<StationEvent> = {
      async next(): Promise<IteratorResult<StationEvent>> {
        for (;;) {
          const e = queue.shift();
          if (e !== undefined) return { value: e, done: false };
          if (ended) return { value: undefined, done: true };
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      },
      return(): Promise<IteratorResult<StationEvent>> {
        end();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /** Every device the station has seen since its watcher started, with its state and next action. */
  deviceStates(): DeviceStateInfo[] {
    return [...this.states.values()];
  }

  private emit(event: StationEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        log.error('an event listener threw', { error: err, event: event.type });
      }
    }
  }

  private setState(udid: string, change: Omit<DeviceStateInfo, 'udid' | 'updatedAt'>): void {
    const before = this.states.get(udid);
    const next: DeviceStateInfo = {
      udid,
      state: change.state,
      ...(change.nextAction !== undefined ? { nextAction: change.nextAction } : {}),
      ...((change.jobId ?? before?.jobId) !== undefined ? { jobId: change.jobId ?? before?.jobId } : {}),
      ...(change.code !== undefined ? { code: change.code } : {}),
      hub: change.hub !== undefined ? change.hub : (before?.hub ?? null),
      ...(change.port !== undefined ? { port: change.port } : {}),
      ...(change.ecid !== undefined ? { ecid: change.ecid } : {}),
      updatedAt: new Date().toISOString(),
    };
    this.states.set(udid, next);
    if (before?.state === next.state && before.nextAction === next.nextAction && before.jobId === next.jobId) return;
    this.emit({ type: 'deviceStateChanged', at: next.updatedAt, ...next });
  }

  private onAttached(d: UsbmuxDevice): void {
    const hub = this.hubOf(d);
    this.emit({
      type: 'deviceAttached',
      udid: d.udid,
      deviceId: d.deviceId,
      locationId: d.locationId ?? null,
      hub,
      at: new Date().toISOString(),
    });
    // A running job keeps its device `running`; a device whose job finished stays `done` when it is
    // plugged back (a technician re-seating a finished iPad must not see it turn into a fresh one).
    const before = this.states.get(d.udid)?.state;
    const keep = before === 'running' || before === 'done';
    this.setState(d.udid, { state: keep ? before : 'attached', hub });
  }

  private onDetached(udid: string): void {
    this.emit({ type: 'deviceDetached', udid, at: new Date().toISOString() });
    const before = this.states.get(udid);
    // Unplugging a finished device is its next action: it stays `done` (`deviceDetached` says it left).
    if (before?.state === 'done') return;
    this.setState(udid, {
      state: 'detached',
      ...(before?.state === 'waiting' || before?.state === 'running' ? { nextAction: 'reconnect' as const } : {}),
    });
  }

  private onSchedulerEvent(batch: ActiveBatch, e: SchedulerEvent): void {
    const ref = { batchId: batch.batchId, mode: batch.mode };
    switch (e.type) {
      case 'deviceLeft':
      case 'deviceReturned':
        return; // the watcher's deviceDetached / deviceAttached say it
      case 'batchProgressed':
      case 'batchPaused':
      case 'batchResumed':
      case 'batchStopped':
        this.emit({ ...e, ...ref });
        return;
      default: {
        const change = stateOfJobEvent(e);
        this.emit(e);
        if (e.type === 'jobFinished' || e.type === 'jobFailed' || e.type === 'jobCancelled') this.mdmSync.notify();
        if (change !== undefined && !(change.state === 'running' && this.watcherInstance?.get(e.udid) === undefined)) {
          this.setState(e.udid, { ...change, jobId: e.jobId });
        } else if (e.type === 'jobCancelled') {
          this.setState(e.udid, { state: this.watcherInstance?.get(e.udid) !== undefined ? 'attached' : 'detached' });
        }
      }
    }
  }

  // ---- batches --------------------------------------------------------------------------------------

  /**
   * Runs a batch or watch session in the background and returns at once with its id; its events
   * come through {@link on}. One at a time.
   * @throws KitError `batch/already-running`; the session's own errors (blueprint, identity, vault)
   * end it with `batchFinished` and are logged.
   */
  startBatch(request: BatchRequest, mode: 'batch' | 'watch' = 'batch'): BatchStarted {
    const active = this.launch(request, mode);
    active.done.catch((err: unknown) =>
      log.warn('a batch ended with an error', { error: err, batchId: active.batchId }),
    );
    return { batchId: active.batchId, mode };
  }

  /** Pauses the running batch: no new job starts; running jobs finish. @throws KitError `batch/not-running`. */
  pauseBatch(): BatchStatus {
    const a = this.requireActive();
    if (a.scheduler !== undefined) a.scheduler.pause();
    else a.pending.push('pause');
    return this.batchStatus();
  }

  /** Resumes a paused batch. @throws KitError `batch/not-running`. */
  resumeBatch(): BatchStatus {
    const a = this.requireActive();
    if (a.scheduler !== undefined) a.scheduler.resume();
    else a.pending.push('resume');
    return this.batchStatus();
  }

  /**
   * Stops the running batch or watch session: running jobs are cancelled (persisted; the same
   * blueprint resumes them) and the queue is dropped. Resolves with each device's outcome.
   * @throws KitError `batch/not-running`.
   */
  async stopBatch(): Promise<PrepareDeviceResult[]> {
    const a = this.requireActive();
    a.controller.abort(new KitError('kitting/cancelled', 'the batch was stopped'));
    return a.done;
  }

  /** The running batch or watch session with its counts, or `{ active: null }`. */
  batchStatus(): BatchStatus {
    const a = this.active;
    if (a === undefined) return { active: null };
    const counts: BatchCounts = a.scheduler?.counts() ?? {
      waiting: 0,
      queued: 0,
      running: 0,
      done: 0,
      failed: 0,
      throughputPerHour: 0,
      etaSeconds: null,
    };
    return {
      active: {
        batchId: a.batchId,
        mode: a.mode,
        blueprint: a.blueprint,
        paused: a.scheduler?.paused ?? a.pending[a.pending.length - 1] === 'pause',
        counts,
        queuedUdids: a.scheduler?.queuedUdids() ?? [],
      },
    };
  }

  /**
   * `watch.set`: `enabled: true` starts auto-apply of the blueprint to every attached device (and
   * those attached later); `enabled: false` stops it (jobs persisted).
   * @throws KitError `batch/already-running` (a batch or another watch runs), `batch/not-running`.
   */
  async setWatch(input: WatchSetInput): Promise<BatchStatus> {
    if (!input.enabled) {
      const a = this.requireActive();
      if (a.mode !== 'watch') throw new KitError('batch/not-running', 'watch mode is not on (a batch runs)');
      await this.stopBatch();
      return this.batchStatus();
    }
    this.startBatch(
      {
        blueprint: input.blueprint,
        maxParallel: input.maxParallel,
        confirmedErase: input.confirmedErase,
        ...(input.perHub !== undefined ? { perHub: input.perHub } : {}),
      },
      'watch',
    );
    return this.batchStatus();
  }

  /**
   * `kitting watch`: applies the blueprint to every device attached now and later, until the
   * request's signal aborts (or {@link stopBatch}); resolves with each device's outcome then.
   * `onEvent` gets every station event meanwhile. Errors as {@link prepare}.
   */
  async watch(request: BatchRequest, onEvent?: (event: StationEvent) => void): Promise<PrepareDeviceResult[]> {
    const off = onEvent !== undefined ? this.on(onEvent) : undefined;
    try {
      return await this.launch(request, 'watch').done;
    } finally {
      off?.();
    }
  }

  private requireActive(): ActiveBatch {
    if (this.active === undefined) throw new KitError('batch/not-running', 'no batch or watch session is running');
    return this.active;
  }

  private launch(
    request: BatchRequest,
    mode: 'batch' | 'watch',
    onPrepareEvent?: (e: PrepareEvent) => void,
  ): ActiveBatch {
    if (this.closed) throw new KitError('batch/not-running', 'the station is closed');
    if (this.active !== undefined) {
      throw new KitError('batch/already-running', `batch ${this.active.batchId} (${this.active.mode}) is running`);
    }
    const controller = new AbortController();
    const signal =
      request.signal !== undefined ? AbortSignal.any([request.signal, controller.signal]) : controller.signal;
    const batchId = `${mode}-${Date.now().toString(36)}-${++this.batchSeq}`;
    const passphraseFile = request.passphraseFile ?? this.passphraseFile;
    const activationUrl = request.activationUrl;
    const active: ActiveBatch = {
      batchId,
      mode,
      blueprint: request.blueprint,
      controller,
      scheduler: undefined,
      pending: [],
      done: Promise.resolve([]),
    };
    const ref = { batchId, mode };
    const run = async (): Promise<PrepareDeviceResult[]> => {
      const watcher = await this.watcher();
      this.emit({
        type: 'batchStarted',
        ...ref,
        blueprint: request.blueprint,
        maxParallel: request.maxParallel,
        perHub: request.perHub ?? null,
        at: new Date().toISOString(),
      });
      return prepareStation(
        {
          usbmux: this.usbmux,
          watcher,
          dataDir: this.dataDir,
          hubOf: this.hubOf,
          ...(this.vault !== undefined ? { vault: this.vault } : {}),
          ...(this.pairTimeoutMs !== undefined ? { pairTimeoutMs: this.pairTimeoutMs } : {}),
          ...(this.timeoutMs !== undefined ? { timeoutMs: this.timeoutMs } : {}),
          ...(this.retry !== undefined ? { retry: this.retry } : {}),
        },
        {
          mode,
          udids: request.udids ?? 'all',
          blueprint: request.blueprint,
          confirmedErase: request.confirmedErase,
          ...(request.forceInactivate === true ? { forceInactivate: true } : {}),
          maxParallel: request.maxParallel,
          signal,
          ...(request.perHub !== undefined ? { perHub: request.perHub } : {}),
          ...(passphraseFile !== undefined ? { passphraseFile } : {}),
          ...(activationUrl !== undefined ? { activationUrl } : {}),
          ...(request.returnTimeoutMs !== undefined ? { returnTimeoutMs: request.returnTimeoutMs } : {}),
          ...(request.eraseReturnTimeoutMs !== undefined ? { eraseReturnTimeoutMs: request.eraseReturnTimeoutMs } : {}),
          ...(request.pollIntervalMs !== undefined ? { pollIntervalMs: request.pollIntervalMs } : {}),
        },
        onPrepareEvent,
        {
          onSchedulerEvent: (e) => this.onSchedulerEvent(active, e),
          onScheduler: (scheduler) => {
            active.scheduler = scheduler;
            for (const action of active.pending) {
              if (action === 'pause') scheduler.pause();
              else scheduler.resume();
            }
            active.pending = [];
          },
        },
      );
    };
    const done = run().finally(() => {
      if (this.active === active) this.active = undefined;
      this.emit({ type: 'batchFinished', ...ref, at: new Date().toISOString() });
    });
    (active as { done: Promise<PrepareDeviceResult[]> }).done = done;
    this.active = active;
    return active;
  }

  // ---- jobs, identities, blueprints, plans, reports, settings -------------------------------------

  private withDb<T>(fn: (db: Db) => T): T {
    const db = openStationDatabase(this.dataDir);
    try {
      return fn(db);
    } finally {
      db.close();
    }
  }

  /** Jobs with their steps, oldest first. Errors: `store/*`. */
  jobs(options: ListJobsOptions = {}): JobRecord[] {
    return this.withDb((db) => listJobs(db, options));
  }

  /**
   * Runs a job's blueprint on its device again: queued in the running batch or watch session (same
   * blueprint), else as a new one-device batch (default caps from the settings).
   * @throws KitError `job/not-found`, `device/not-found` (the device is not attached), `batch/already-running`
   * (a batch of another blueprint runs).
   */
  async retryJob(jobId: string): Promise<BatchStarted> {
    const job = this.withDb((db) => getJob(db, jobId));
    if (job === undefined) throw new KitError('job/not-found', `no job has id ${jobId}`);
    const watcher = await this.watcher();
    if (watcher.get(job.udid) === undefined) {
      throw new KitError('device/not-found', `no attached device has UDID ${job.udid}`, { udid: job.udid });
    }
    const a = this.active;
    if (a !== undefined) {
      if (a.blueprint !== job.blueprintName || a.scheduler === undefined) {
        throw new KitError('batch/already-running', `batch ${a.batchId} runs blueprint ${a.blueprint}`);
      }
      a.scheduler.add(job.udid);
      return { batchId: a.batchId, mode: a.mode };
    }
    const settings = this.settings();
    return this.startBatch({
      blueprint: job.blueprintName,
      udids: [job.udid],
      maxParallel: settings.maxParallel,
      confirmedErase: false,
      ...(settings.perHub !== null ? { perHub: settings.perHub } : {}),
    });
  }

  /** Organization identities (no secrets). Errors: `store/*`. */
  identities(): IdentitySummary[] {
    return this.withDb((db) =>
      new IdentityService({
        db,
        actor: this.actor,
        vault: () => this.openVault(false),
      }).list(),
    );
  }

  /** An identity service over an open database (the vault is opened on first need; created with the first identity). */
  private identityService(db: Db): IdentityService {
    return new IdentityService({
      db,
      actor: this.actor,
      vault: () => this.openVault(countIdentities(db) === 0),
    });
  }

  /** Creates an organization identity (UI). Errors: those of `IdentityService.create`, vault codes. */
  async createIdentity(input: { org: string; country?: string; keyBits?: number }): Promise<IdentitySummary> {
    const db = openStationDatabase(this.dataDir);
    try {
      return await this.identityService(db).create(input);
    } finally {
      db.close();
    }
  }

  /**
   * Imports an identity from bytes (the UI's file input): `.p12` with its password, PEM, or a DER
   * certificate with a DER/PEM key. The bytes go through a private temporary folder (mode 0700,
   * removed afterwards) so the file readers and their checks stay the same as the CLI's.
   * Errors: those of `IdentityService.importFile`.
   */
  async importIdentity(input: {
    fileName: string;
    fileBase64: string;
    keyBase64?: string;
    password?: string;
    org?: string;
  }): Promise<IdentitySummary> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-identity-'));
    const db = openStationDatabase(this.dataDir);
    try {
      const file = path.join(dir, path.basename(input.fileName) || 'identity');
      fs.writeFileSync(file, Buffer.from(input.fileBase64, 'base64'), { mode: 0o600 });
      let keyFile: string | undefined;
      if (input.keyBase64 !== undefined) {
        keyFile = path.join(dir, 'key');
        fs.writeFileSync(keyFile, Buffer.from(input.keyBase64, 'base64'), { mode: 0o600 });
      }
      return await this.identityService(db).importFile(file, {
        ...(input.password !== undefined ? { password: input.password } : {}),
        ...(keyFile !== undefined ? { keyFile } : {}),
        ...(input.org !== undefined ? { org: input.org } : {}),
      });
    } finally {
      db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /**
   * Exports an identity as files' bytes (the UI downloads them): p12 (password required), PEM
   * (key encrypted when a password is given) or DER (certificate + `.key`). Written to a private
   * temporary folder, read back and removed. Errors: those of `IdentityService.export`.
   */
  async exportIdentity(input: {
    id: string;
    format: ExportFormat;
    password?: string;
  }): Promise<{ files: { name: string; base64: string }[] }> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-export-'));
    const db = openStationDatabase(this.dataDir);
    try {
      const out = path.join(dir, `${input.id}.${input.format === 'der' ? 'cer' : input.format}`);
      const files = await this.identityService(db).export(input.id, {
        out,
        format: input.format,
        ...(input.password !== undefined ? { password: input.password } : {}),
      });
      return {
        files: files.map((f) => ({ name: path.basename(f), base64: fs.readFileSync(f).toString('base64') })),
      };
    } finally {
      db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /**
   * Reads and checks a CSV plan without storing it (the UI's preview): the detected encoding and
   * format, the row count and the first rows; or every bad row with its line and ja/en reason.
   * Errors: the `csv/*` codes other than `csv/invalid-rows` (those come back as `badRows`).
   */
  previewPlan(
    csvBase64: string,
    options: { name?: string; encoding?: 'auto' | 'utf-8' | 'shift_jis'; firstRows?: number } = {},
  ):
    | { ok: true; name: string; encoding: PlanEncoding; format: PlanFormat; rows: number; first: PlanRowRecord[] }
    | { ok: false; badRows: BadRow[] } {
    const raw = Buffer.from(csvBase64, 'base64');
    return this.withDb((db) => {
      try {
        const r = readPlanCsv(db, raw, {
          name: options.name ?? 'preview',
          ...(options.encoding !== undefined ? { encoding: options.encoding } : {}),
        });
        return {
          ok: true as const,
          name: r.name,
          encoding: r.encoding,
          format: r.format,
          rows: r.rows.length,
          first: r.rows.slice(0, options.firstRows ?? 10),
        };
      } catch (err) {
        if (err instanceof PlanRowsError) return { ok: false as const, badRows: [...err.badRows] };
        throw err;
      }
    });
  }

  /** The stored plans as one named-column CSV (base64), every serial once. */
  exportPlansCsv(encoding: PlanEncoding): { base64: string } {
    return { base64: this.withDb((db) => exportPlans(db, { encoding })).toString('base64') };
  }

  /** The kitting report as CSV bytes (base64): UTF-8 with BOM for Excel, or Shift_JIS; ja/en headers. */
  reportCsv(options: { since?: string; lang: Lang; encoding: PlanEncoding }): { base64: string } {
    const doc = this.report(options.since !== undefined ? { since: options.since } : {});
    return { base64: reportCsv(doc.devices, { lang: options.lang, encoding: options.encoding }).toString('base64') };
  }

  /** The error words (title + what to do) of every code in one language, for the UI. */
  messages(lang: Lang): Record<string, Words> {
    return Object.fromEntries(Object.entries(ERROR_MESSAGES).map(([code, words]) => [code, words[lang]]));
  }

  /** The Setup Assistant skip-pane catalogue (keys, platforms, ja/en labels), for the blueprint form. */
  skipPanes(): readonly SkipPane[] {
    return SKIP_PANES;
  }

  /** Validates a blueprint against the stored identities: every field issue with ja/en words. */
  validateBlueprint(json: unknown): BlueprintValidation {
    const ids = new Set(this.identities().map((i) => i.id));
    return validateBlueprint(json, { identityExists: (id) => ids.has(id) });
  }

  /** The station's vault: the injected one, else the passphrase vault (created when `create`). */
  private openVault(create: boolean): Promise<Vault> {
    if (this.vault !== undefined) return Promise.resolve(this.vault);
    return PassphraseVault.open({ dataDir: this.dataDir, passphrase: resolvePassphrase(this.passphraseFile), create });
  }

  /** Stored blueprints. */
  blueprints(): StoredBlueprintSummary[] {
    return this.withDb((db) => listStoredBlueprints(db));
  }

  /** A stored blueprint as JSON text, secrets left out. @throws KitError `blueprint/not-found`. */
  exportBlueprint(name: string): string {
    return this.withDb((db) => exportStoredBlueprint(db, name));
  }

  /**
   * Stores a blueprint; one enrolling into an MDM group has its credentials checked with the MDM
   * first (`credentials`: `ok`, `none`, or `not-checked` with the reason: saved with a warning).
   * @throws KitError `blueprint/invalid` (field issues), `blueprint/duplicate-name`, `identity/not-found`,
   * `mdm/wrong-credentials` / `mdm/credentials-expired` / `mdm/group-closed` (not saved).
   */
  async importBlueprint(
    json: unknown,
    options: { replace?: boolean } = {},
  ): Promise<{ name: string; replaced: boolean; credentials: CredentialsCheck }> {
    const db = openStationDatabase(this.dataDir);
    try {
      const stored = await storeBlueprintChecked(
        db,
        json,
        { openClient: () => this.mdmSync.client(), vault: () => this.openVault(false) },
        { replace: options.replace === true, source: 'station API' },
      );
      return { name: stored.blueprint.name, replaced: stored.replaced, credentials: stored.credentials };
    } finally {
      db.close();
    }
  }

  /** Deletes a stored blueprint. @throws KitError `blueprint/not-found`. */
  deleteBlueprint(name: string): { name: string; deleted: true } {
    this.withDb((db) => deleteStoredBlueprint(db, name));
    return { name, deleted: true };
  }

  /** Stored serial plans. */
  plans(): PlanSummaryRecord[] {
    return this.withDb((db) => listStoredPlans(db));
  }

  /** Imports a CSV plan (base64 bytes), all or nothing. Errors: the `csv/*` codes, `usage/invalid-argument`. */
  importPlan(
    csvBase64: string,
    options: { name?: string; encoding?: 'auto' | 'utf-8' | 'shift_jis' } = {},
  ): PlanImportResult {
    const raw = Buffer.from(csvBase64, 'base64');
    return this.withDb((db) =>
      importPlanCsv(db, raw, {
        ...(options.name !== undefined ? { name: options.name } : {}),
        ...(options.encoding !== undefined ? { encoding: options.encoding } : {}),
      }),
    );
  }

  /** The kitting report (rows per finished job, hourly throughput). @throws KitError `usage/invalid-argument` (bad `since`). */
  report(options: { since?: string } = {}): ReportDocument {
    const since = options.since !== undefined ? parseSince(options.since) : undefined;
    return this.withDb((db) => reportDocument(db, since !== undefined ? { since } : {}));
  }

  // ---- MDM sync and device lifecycle (issue #6) ---------------------------------------------------

  /** `sync.status`: state, queue length, delivered, last error, next try, offline since. */
  syncStatus(): SyncStatusView {
    return this.mdmSync.status();
  }

  /**
   * `sync.configure`: the token is checked with the MDM first (`mdm/auth-required`: nothing is
   * stored), then stored sealed by the vault with the URL; the syncer (re)starts. Never echoes the token.
   */
  configureSync(input: { url: string; token: string }): Promise<{ url: string; groups: number }> {
    return this.mdmSync.configure(input);
  }

  /**
   * `secrets.setGroupPassword`: seals and stores a group enrollment password under `id` (created
   * vault when there is none yet) and answers the blueprint reference `secret:<id>`. The password
   * is never returned or logged.
   */
  async setGroupPassword(id: string, password: string): Promise<{ ref: string }> {
    const vault = await this.openVault(true);
    const db = openStationDatabase(this.dataDir);
    try {
      await saveGroupPassword(db, vault, id, password);
    } finally {
      db.close();
    }
    return { ref: `secret:${id}` };
  }

  /** `sync.run`: drains the outbox now and refreshes enrollment confirmations. @throws KitError `mdm/unconfigured`, `mdm/*`. */
  runSync(): Promise<SyncRunResult> {
    return this.mdmSync.run();
  }

  /** `sync.groups`: the MDM groups as last fetched, with the fetch time. */
  syncGroups(): GroupCache {
    return this.mdmSync.groups();
  }

  /** `mdm.device`: whether the MDM holds a record of `serial`, and the record. */
  mdmDevice(serial: string): Promise<MdmDeviceView> {
    return this.mdmSync.device(serial);
  }

  /** `mdm.inactivate`: normal or forced inactivation (audited). @throws KitError `mdm/force-not-allowed`, `mdm/device-unreachable` … */
  mdmInactivate(serial: string, force: boolean): Promise<MdmDevice> {
    return this.mdmSync.inactivate(serial, force);
  }

  /** `mdm.delete`: deletes an inactive record, freeing its license (audited). @throws KitError `mdm/device-active`, `mdm/not-found`. */
  mdmDelete(serial: string): Promise<DeleteResult> {
    return this.mdmSync.remove(serial);
  }

  /** Station-wide settings (defaults for what was never set). */
  settings(): StationSettings {
    return this.withDb((db) => {
      const text = getSetting(db, SETTINGS_KEY);
      if (text === undefined) return DEFAULT_SETTINGS;
      try {
        return { ...DEFAULT_SETTINGS, ...(JSON.parse(text) as Partial<StationSettings>) };
      } catch {
        return DEFAULT_SETTINGS;
      }
    });
  }

  /** Changes the given settings; answers all of them. Takes effect for the next batch (and the next station for the usbmuxd address). */
  updateSettings(input: SettingsInput): StationSettings {
    const next: StationSettings = {
      ...this.settings(),
      ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)),
    };
    this.withDb((db) => setSetting(db, SETTINGS_KEY, JSON.stringify(next)));
    return next;
  }

  /**
   * Runs a blueprint on devices (`kitting prepare`): jobs persisted in `<dataDir>/station.db`, at
   * most `maxParallel` devices at once, devices that leave (erase, reboot, unplug) followed through
   * the watcher and their jobs resumed; the vault passphrase is the request's file, else the
   * station's, else `KITTING_PASSPHRASE`. One result per device; see `src/kitting/prepare.ts` for the
   * lifecycle and the errors. It is the station's batch (`batch.pause` … apply to it); `onEvent`
   * gets the prepare events, `onStationEvent` every station event.
   * @throws KitError `batch/already-running` besides those of `prepareStation`.
   */
  async prepare(
    request: PrepareRequest,
    onEvent?: (event: PrepareEvent) => void,
    onStationEvent?: (event: StationEvent) => void,
  ): Promise<PrepareDeviceResult[]> {
    const off = onStationEvent !== undefined ? this.on(onStationEvent) : undefined;
    try {
      return await this.launch(request, 'batch', onEvent).done;
    } finally {
      off?.();
    }
  }

  private async open(
    udid: string,
    options: PairingCallOptions = {},
    supervisor?: { credentials: SupervisorCredentials; mode: 'auto' | 'supervised' },
  ): Promise<DeviceSession> {
    return openDevice(this.usbmux, udid, {
      ...(this.pairTimeoutMs !== undefined ? { pairTimeoutMs: this.pairTimeoutMs } : {}),
      ...(this.timeoutMs !== undefined ? { timeoutMs: this.timeoutMs } : {}),
      ...(options.onProgress !== undefined ? { onProgress: options.onProgress } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
      ...(supervisor !== undefined ? { supervisor: supervisor.credentials, pairingMode: supervisor.mode } : {}),
    });
  }

  /**
   * The supervision identity `identityId` from the data folder, unlocked with the vault passphrase
   * (`passphraseFile` or `KITTING_PASSPHRASE`): its certificate and a CMS signer.
   * @throws KitError `identity/not-found` (exit 3), `vault/passphrase-required`, `vault/wrong-passphrase`.
   */
  async supervisor(identityId: string): Promise<SupervisorCredentials> {
    const db = openStationDatabase(this.dataDir);
    try {
      const service = new IdentityService({
        db,
        actor: this.actor,
        vault: () => this.openVault(false),
      });
      const certificateDer = service.get(identityId).certificateDer;
      const sign = await service.signer(identityId);
      return { certificateDer, sign };
    } finally {
      db.close();
    }
  }

  /** Runs `fn` with an MCInstall connection to `udid` (paired as needed), closing both afterwards. */
  private async withMcInstall<T>(
    udid: string,
    options: PairingCallOptions,
    supervisor: SupervisorCredentials | undefined,
    fn: (mc: McInstallClient, session: DeviceSession) => Promise<T>,
  ): Promise<T> {
    const session = await this.open(
      udid,
      options,
      supervisor !== undefined ? { credentials: supervisor, mode: 'auto' } : undefined,
    );
    try {
      const escrow = session.record.escrowBag;
      const mc = await McInstallClient.start(session.lockdown, escrow !== undefined ? { escrowBag: escrow } : {});
      try {
        return await fn(mc, session);
      } finally {
        mc.close();
      }
    } finally {
      await session.close();
    }
  }

  /** The device's cloud configuration (Apple's keys), or null when it has none. */
  async cloudConfiguration(udid: string, options: PairingCallOptions = {}): Promise<PlistDict | null> {
    return this.withMcInstall(udid, options, undefined, (mc) => mc.getCloudConfiguration());
  }

  /** The installed configuration profiles. */
  async profiles(udid: string, options: PairingCallOptions & { identityId?: string } = {}): Promise<McProfileInfo[]> {
    const supervisor = options.identityId !== undefined ? await this.supervisor(options.identityId) : undefined;
    return this.withMcInstall(udid, options, supervisor, (mc) => mc.getProfileList());
  }

  /**
   * Installs a configuration profile (`.mobileconfig`, signed or not): silently when `identityId`
   * is given and the device is supervised by that identity (escalation, §4.4), else interactively
   * (the person approves it in Settings; in Setup Assistant it installs at once).
   * @throws KitError `mcinstall/profile-rejected`, `mcinstall/escalation-rejected`, `plist/malformed`,
   * `cms/malformed`, `usage/invalid-argument` (no PayloadIdentifier), identity and vault codes.
   */
  async installProfile(
    udid: string,
    profile: Buffer,
    options: PairingCallOptions & { identityId?: string } = {},
  ): Promise<InstallProfileResult> {
    const identifier = profileIdentifier(profile);
    const supervisor = options.identityId !== undefined ? await this.supervisor(options.identityId) : undefined;
    return this.withMcInstall(udid, options, supervisor, async (mc) => {
      let silent = false;
      if (supervisor !== undefined && supervisedBy(await mc.getCloudConfiguration(), supervisor.certificateDer)) {
        await mc.escalate(supervisor.certificateDer, supervisor.sign);
        await mc.installProfileSilent(profile);
        silent = true;
      } else {
        await mc.installProfile(profile);
      }
      log.info('profile installed', { udid, identifier, silent });
      return { udid, identifier, silent };
    });
  }

  /**
   * Removes an installed profile by `PayloadIdentifier`.
   * @throws KitError `mcinstall/profile-not-found` (exit 3), `mcinstall/failed` …
   */
  async removeProfile(
    udid: string,
    identifier: string,
    options: PairingCallOptions & { identityId?: string } = {},
  ): Promise<{ udid: string; identifier: string; removed: true }> {
    const supervisor = options.identityId !== undefined ? await this.supervisor(options.identityId) : undefined;
    return this.withMcInstall(udid, options, supervisor, async (mc) => {
      await mc.removeProfile(identifier);
      return { udid, identifier, removed: true as const };
    });
  }

  /**
   * "Erase All Content and Settings" on each device (MCInstall `EraseDevice`), concurrently; one
   * audit-log row (`device/erased`) per device the erase was started on. With `wait` (default) it
   * resolves once each device is back (same UDID, new DeviceID). Per-device failures are results,
   * not throws.
   */
  async erase(udids: readonly string[], options: EraseCallOptions & PairingCallOptions = {}): Promise<EraseResult[]> {
    const wait = options.wait ?? true;
    const watcher = wait ? await this.watcher() : undefined;
    return Promise.all(
      udids.map(async (udid): Promise<EraseResult> => {
        try {
          let previousDeviceId = 0;
          await this.withMcInstall(udid, options, undefined, async (mc, session) => {
            previousDeviceId = session.device.deviceId;
            await mc.eraseDevice({ preserveDataPlan: options.preserveDataPlan ?? true, disallowProximitySetup: false });
          });
          this.audit('device/erased', udid, { deviceId: previousDeviceId, wait });
          if (watcher === undefined) return { udid, erased: true, previousDeviceId, deviceId: null, returned: false };
          const back = await waitForReturn(watcher, udid, {
            previousDeviceId,
            timeoutMs: options.waitTimeoutMs ?? 15 * 60_000,
            ...(options.signal !== undefined ? { signal: options.signal } : {}),
          });
          return { udid, erased: true, previousDeviceId, deviceId: back.deviceId, returned: true };
        } catch (err) {
          const e = toKitError(err);
          log.warn('erase failed', { udid, code: e.code });
          return { udid, erased: false, error: { code: e.code, message: e.message } };
        }
      }),
    );
  }

  private audit(action: string, subject: string, details: Record<string, unknown>): void {
    const db = openStationDatabase(this.dataDir);
    try {
      appendAudit(db, { at: new Date().toISOString(), actor: this.actor, action, subject, details });
    } finally {
      db.close();
    }
  }

  /**
   * Activates the device through Apple's activation server (or `activationUrl`).
   * @throws KitError `activation/offline`, `activation/locked`, `activation/server-error`, `activation/failed`.
   */
  async activate(
    udid: string,
    options: PairingCallOptions & { activationUrl?: string } = {},
  ): Promise<ActivationResult & { udid: string }> {
    const session = await this.open(udid, options);
    try {
      const escrow = session.record.escrowBag;
      const result = await activateDevice(session.lockdown, {
        ...(options.activationUrl !== undefined ? { activationUrl: options.activationUrl } : {}),
        ...(escrow !== undefined ? { escrowBag: escrow } : {}),
        ...(options.signal !== undefined ? { signal: options.signal } : {}),
      });
      return { udid, ...result };
    } finally {
      await session.close();
    }
  }

  /** Attached USB devices with their identity; never pairs. Devices are queried concurrently. */
  async listDevices(): Promise<DeviceSummary[]> {
    const devices = (await this.usbmux.listDevices()).filter((d) => d.connectionType === 'USB');
    const summaries = await Promise.all(devices.map((d) => this.summarize(d)));
    const ports = await this.usb.portMap(devices, [...this.knownIdentities.values()]).catch(() => undefined);
    for (const s of summaries) s.port = ports?.portOf(s.udid)?.path ?? null;
    return summaries;
  }

  private async summarize(device: UsbmuxDevice): Promise<DeviceSummary> {
    const summary: DeviceSummary = {
      udid: device.udid,
      serial: null,
      name: null,
      productType: null,
      model: null,
      osVersion: null,
      activationState: null,
      supervised: null,
      paired: false,
      connection: device.connectionType,
      port: null,
      deviceId: device.deviceId,
      locationId: device.locationId ?? null,
    };
    let lockdown: LockdownClient | undefined;
    try {
      lockdown = await connectLockdown(this.usbmux, device, this.timeoutMs);
      let values: PlistDict = await lockdown.getValues();
      const record = await loadPairRecord(this.usbmux, device.udid);
      if (record !== null) {
        try {
          await lockdown.startSession(record);
          summary.paired = true;
          values = { ...values, ...(await lockdown.getValues()) };
          const chaperoned = await lockdown
            .getValue('com.apple.mobile.chaperone', 'DeviceIsChaperoned')
            .catch(() => undefined);
          summary.supervised = typeof chaperoned === 'boolean' ? chaperoned : null;
        } catch (err) {
          if (!hasCode(err, 'lockdown/invalid-host-id', 'device/tls-failed')) throw err;
        }
      }
      const id = identityFromValues(values);
      this.knownIdentities.set(device.udid, {
        udid: device.udid,
        ecid: id.uniqueChipId,
        serialNumber: id.serialNumber,
      });
      summary.serial = id.serialNumber ?? null;
      summary.name = id.deviceName ?? null;
      summary.productType = id.productType ?? null;
      summary.model = id.productType !== undefined ? modelName(id.productType) : null;
      summary.osVersion = id.productVersion ?? null;
      summary.activationState = id.activationState ?? strOrNull(values.ActivationState);
    } catch (err) {
      const e = toKitError(err);
      log.warn('could not read a device', { udid: device.udid, code: e.code });
      summary.error = { code: e.code, message: e.message };
    } finally {
      if (lockdown !== undefined) {
        if (lockdown.inSession) await lockdown.stopSession().catch(() => undefined);
        lockdown.close();
      }
    }
    return summary;
  }

  /**
   * Lockdown values of `udid` in a session (pairs first if needed): one key, a domain, or all.
   * Values keep their plist types (bigint for 64-bit integers, Buffer for data).
   */
  async info(
    udid: string,
    query: { domain?: string; key?: string } = {},
    options: PairingCallOptions = {},
  ): Promise<PlistValue | undefined> {
    const session = await this.open(udid, options);
    try {
      return await session.lockdown.getValue(query.domain, query.key);
    } finally {
      await session.close();
    }
  }

  /**
   * Pairs with `udid` unless a pairing the device accepts already exists. With `identityId` the
   * pairing is supervised (§3.4: no Trust dialog; `lockdown/supervisor-rejected` when the device is
   * not supervised by that identity).
   */
  async pair(udid: string, options: PairingCallOptions & { identityId?: string } = {}): Promise<PairResult> {
    const supervisor = options.identityId !== undefined ? await this.supervisor(options.identityId) : undefined;
    return this.pairWith(udid, options, supervisor);
  }

  private async pairWith(
    udid: string,
    options: PairingCallOptions,
    supervisor: SupervisorCredentials | undefined,
  ): Promise<PairResult> {
    const session = await this.open(
      udid,
      options,
      supervisor !== undefined ? { credentials: supervisor, mode: 'supervised' } : undefined,
    );
    await session.close();
    return { udid, hostId: session.record.hostId, pairedNow: session.pairedNow };
  }

  /** Pairs every attached USB device concurrently; one result or error per device. */
  async pairAll(
    options: PairingCallOptions & { identityId?: string } = {},
  ): Promise<(PairResult | { udid: string; error: { code: ErrorCode; message: string } })[]> {
    const devices = (await this.usbmux.listDevices()).filter((d) => d.connectionType === 'USB');
    // The identity is unlocked once for the whole cart (the vault's key derivation is costly).
    const supervisor = options.identityId !== undefined ? await this.supervisor(options.identityId) : undefined;
    return Promise.all(
      devices.map(async (d) => {
        try {
          return await this.pairWith(d.udid, options, supervisor);
        } catch (err) {
          const e = toKitError(err);
          return { udid: d.udid, error: { code: e.code, message: e.message } };
        }
      }),
    );
  }

  /**
   * Removes this host's pairing: `Unpair` on the device (a device that already forgot it is fine)
   * and the record in usbmuxd.
   */
  async unpair(udid: string): Promise<UnpairResult> {
    const device = await findDevice(this.usbmux, udid);
    const record = await loadPairRecord(this.usbmux, udid);
    if (record === null) {
      await this.usbmux.deletePairRecord(udid);
      return { udid, unpaired: false, hostId: null };
    }
    const lockdown = await connectLockdown(this.usbmux, device, this.timeoutMs);
    try {
      await lockdown.unpair(record);
    } catch (err) {
      if (!hasCode(err, 'lockdown/invalid-host-id')) throw err;
    } finally {
      lockdown.close();
    }
    await this.usbmux.deletePairRecord(udid);
    return { udid, unpaired: true, hostId: record.hostId };
  }

  private async power(
    udid: string,
    action: 'restart' | 'shutdown',
    options: PairingCallOptions,
  ): Promise<{ udid: string; deviceId: number }> {
    const session = await this.open(udid, options);
    try {
      const diag = await DiagnosticsClient.start(
        session.lockdown,
        session.record.escrowBag !== undefined ? { escrowBag: session.record.escrowBag } : {},
      );
      try {
        if (action === 'restart') await diag.restart();
        else await diag.shutdown();
      } finally {
        await diag.goodbye();
      }
    } finally {
      await session.close();
    }
    return { udid, deviceId: session.device.deviceId };
  }

  /** Restarts the device (diagnostics_relay; it acts once we disconnect). */
  restart(udid: string, options: PairingCallOptions = {}): Promise<{ udid: string; deviceId: number }> {
    return this.power(udid, 'restart', options);
  }

  /** Shuts the device down. */
  shutdown(udid: string, options: PairingCallOptions = {}): Promise<{ udid: string; deviceId: number }> {
    return this.power(udid, 'shutdown', options);
  }

  /** Whether port numbers and recovery/DFU detection work here, and why not (`usb/not-loaded`, `usb/unavailable`, `usb/permission-denied`). */
  usbStatus(): Promise<UsbStatus> {
    return this.usb.status();
  }

  /** Apple devices on the USB bus (recovery and DFU included) with their ports; empty with the reason when USB is off. Never throws for USB being off. */
  async usbDevices(): Promise<UsbDevicesResult> {
    const status = await this.usb.status();
    if (!status.available) return { status, devices: [] };
    return { status, devices: await this.usb.devices() };
  }

  /**
   * The port map of the attached devices: usbmuxd's (when usbmuxd answers) matched by USB serial or
   * location id, and devices in recovery/DFU mode by ECID (and by UDID when seen before in normal mode).
   * @throws KitError `usb/not-loaded`, `usb/unavailable`, `usb/permission-denied`.
   */
  async portMap(): Promise<PortMap> {
    const usbmux = await this.usbmux.listDevices().catch(() => []);
    return this.usb.portMap(usbmux, [...this.knownIdentities.values()]);
  }

  /**
   * Takes the device with `ecid` out of recovery mode (`setenv auto-boot true`, `saveenv`, `reboot`);
   * it boots iOS and returns through usbmuxd. Audited.
   * @throws KitError `usb/not-found` (exit 3), `device/wrong-mode` (DFU), `usb/*`.
   */
  async leaveRecovery(ecid: bigint): Promise<LeaveRecoveryResult> {
    const result = await this.usb.leaveRecovery(ecid);
    this.audit('recovery-exit', formatEcid(ecid), { path: result.location?.path ?? null });
    const hex = formatEcid(ecid);
    for (const s of this.states.values()) {
      if (s.state === 'recovery' && s.ecid === hex) this.setState(s.udid, { state: 'detached' });
    }
    return result;
  }

  /**
   * Reboots `udid` into recovery mode (lockdown `EnterRecovery`, pairs first if needed). Disruptive:
   * refused unless `confirmed`. The ECID is read first so the device can be found on the USB bus.
   * @throws KitError `usb/recovery-not-confirmed` (exit 2), `device/not-found` (exit 3), pairing/lockdown codes.
   */
  async enterRecovery(
    udid: string,
    options: PairingCallOptions & { confirmed: boolean } = { confirmed: false },
  ): Promise<EnterRecoveryResult> {
    if (!options.confirmed) {
      throw new KitError('usb/recovery-not-confirmed', `entering recovery mode on ${udid} needs confirmation`, {
        udid,
      });
    }
    const session = await this.open(udid, options);
    let id: ReturnType<typeof identityFromValues>;
    try {
      id = identityFromValues(await session.lockdown.getValues());
      this.knownIdentities.set(udid, { udid, ecid: id.uniqueChipId, serialNumber: id.serialNumber });
      await session.lockdown.enterRecovery();
    } finally {
      await session.close();
    }
    const ecid = id.uniqueChipId ?? null;
    this.audit('recovery-enter', udid, { ecid: ecid === null ? null : formatEcid(ecid) });
    return { udid, ecid };
  }
}

/** The `PayloadIdentifier` of a `.mobileconfig` (signed or not). @throws KitError `usage/invalid-argument`, `plist/malformed`, `cms/malformed`. */
function profileIdentifier(bytes: Buffer): string {
  const text = bytes.subarray(0, 64).toString('latin1');
  const signed = bytes[0] === 0x30 || text.includes('-----BEGIN');
  const content = signed ? readSignedPlist(bytes).content : decodePlist(bytes);
  const id = isPlistDict(content) ? content.PayloadIdentifier : undefined;
  if (typeof id !== 'string' || id === '')
    throw new KitError('usage/invalid-argument', 'the configuration profile has no PayloadIdentifier');
  return id;
}

/** Whether a cloud configuration is supervised and names `certificateDer` in `SupervisorHostCertificates`. */
function supervisedBy(cc: PlistDict | null, certificateDer: Buffer): boolean {
  if (cc === null || cc.IsSupervised !== true) return false;
  const certs = cc.SupervisorHostCertificates;
  return Array.isArray(certs) && certs.some((c) => c instanceof Buffer && c.equals(certificateDer));
}
