/**
 * `prepare` and `watch`: run a blueprint on attached devices (cli.md "Kitting", domain.md pipeline)
 * through the job runner and the batch scheduler (`scheduler.ts`).
 *
 * What it adds around the scheduler:
 * - **the station's setup**: the database, the blueprint (stored name or file), the identity
 *   service and its vault, the serial plans, one device port per UDID ({@link prepareStation});
 * - **caps**: at most `maxParallel` devices at once, at most `perHub` per hub (see the scheduler);
 * - **devices that leave**: a job that waits because its device is gone (`device-gone`: unplugged,
 *   rebooted, cable fault) is resumed as soon as the watcher sees the same UDID attached again, for
 *   at most `returnTimeoutMs` in batch mode; after that the job stays `waiting` in the store and the
 *   same command resumes it later. An erase inside the `erase` step is followed by the port itself
 *   ({@link KitDevice.waitForReturn});
 * - **one outcome per device**: `done`, `failed` (with the code), `waiting` (with the reason: Trust,
 *   locked, internet, erase confirmation, device gone) or `cancelled` (the signal aborted: jobs are
 *   persisted and the same command continues them).
 *
 * Lifecycle: {@link prepareDevices} resolves when every device has an outcome (watch mode: when the
 * signal aborts); it never rejects for a device's failure, only for bad input
 * (`usage/invalid-argument`, `device/not-found` when none of the UDIDs is attached) and for the
 * supervisor callback's or the store's errors.
 */
import path from 'node:path';
import { hasCode } from '../errors.ts';
import type { UsbmuxClient } from '../device/usbmux.ts';
import type { DeviceWatcher } from '../device/watcher.ts';
import { IdentityService } from '../identity/identity.ts';
import { PassphraseVault, resolvePassphrase, type Vault } from '../identity/vault.ts';
import { createLogger } from '../log.ts';
import { openStationDatabase, type Db } from '../store/db.ts';
import { countIdentities } from '../store/identities.ts';
import type { Blueprint } from './blueprint.ts';
import { resolveBlueprint } from './blueprint-store.ts';
import { createDeviceAdapter, type ClosableKitDevice } from './device-adapter.ts';
import { createPlanLookup } from './plans.ts';
import type { KitDevice } from './device-port.ts';
import { createRunner, systemClock, type JobEvent, type RetryPolicy, type RunnerClock } from './runner.ts';
import { BatchScheduler, type DeviceOutcome, type HubOf, type SchedulerEvent } from './scheduler.ts';
import {
  createSteps,
  fileProfileLoader,
  type PlanEntry,
  type ProfileLoader,
  type StepDefinition,
  type SupervisorAccess,
} from './steps.ts';
import { appendAudit } from '../store/audit.ts';
import { mdmEnrollmentProfileSource, mdmPortOf, openMdmClient, resolveMdmEnrollmentUrl } from './mdm-port.ts';

const log = createLogger('kitting/prepare');

/** How one device's preparation ended in this call (the scheduler's {@link DeviceOutcome}). */
export type PrepareDeviceResult = DeviceOutcome;

/** Events of a prepare run: the runner's job events plus the devices seen leaving and returning. */
export type PrepareEvent =
  | JobEvent
  | { readonly type: 'deviceLeft'; readonly udid: string; readonly at: string }
  | { readonly type: 'deviceReturned'; readonly udid: string; readonly at: string };

/** True for the events `kitting prepare --json --events` has always printed (not the batch's own). */
export function isPrepareEvent(e: SchedulerEvent): e is PrepareEvent {
  return (
    e.type !== 'batchProgressed' && e.type !== 'batchPaused' && e.type !== 'batchResumed' && e.type !== 'batchStopped'
  );
}

/** What {@link prepareDevices} needs from the station. */
export interface PrepareDeps {
  /** The station database (migrated). */
  readonly db: Db;
  /** The live watcher (started). */
  readonly watcher: DeviceWatcher;
  /** The port for a UDID (one instance per device, reused across resumes). */
  readonly deviceFor: (udid: string) => KitDevice;
  /** The supervision identity of a blueprint (see {@link identitySupervisor}). */
  readonly supervisor: (blueprint: Blueprint) => Promise<SupervisorAccess>;
  readonly profiles: ProfileLoader;
  readonly planFor?: (serial: string) => PlanEntry | null;
  readonly clock?: RunnerClock;
  readonly retry?: Partial<RetryPolicy>;
  /** How long the erase step waits for the device to come back (runner default: 15 minutes). */
  readonly eraseReturnTimeoutMs?: number;
  /** The pipeline (default the steps without an MDM: check-mdm records "not checked"). */
  readonly steps?: readonly StepDefinition[];
}

/** Input of {@link prepareDevices}. */
export interface PrepareInput {
  /** `batch` (default): the devices given, then done. `watch`: every attached device until the signal aborts. */
  readonly mode?: 'batch' | 'watch';
  /** The devices to prepare, or `'all'` for every USB device attached now (ignored in watch mode). */
  readonly udids: readonly string[] | 'all';
  readonly blueprint: Blueprint;
  /** The technician confirmed erasing (`--yes`). */
  readonly confirmedErase: boolean;
  /** At most this many devices at once (≥ 1). */
  readonly maxParallel: number;
  /** At most this many devices at once on one hub (≥ 1); default no per-hub cap. */
  readonly perHub?: number;
  /** The hub of a device (default {@link busHub}). */
  readonly hubOf?: HubOf;
  /** How long a device that left, or a job waiting for Trust/unlock, is awaited (default 5 minutes; batch mode). */
  readonly returnTimeoutMs?: number;
  /** How often jobs waiting for a person are tried again (default 2 s). */
  readonly pollIntervalMs?: number;
  readonly signal?: AbortSignal;
}

/** Hooks of {@link prepareDevices} beyond the prepare events: the scheduler itself and all its events. */
export interface BatchHooks {
  /** Every scheduler event (job events, leave/return, `batchProgressed`, pause/resume/stop). */
  readonly onSchedulerEvent?: (event: SchedulerEvent) => void;
  /** Called once the scheduler is started, to pause, resume, stop or add devices. */
  readonly onScheduler?: (scheduler: BatchScheduler) => void;
}

/**
 * A {@link PrepareDeps.supervisor} over the identity service: the certificate always, a signer when
 * `unlock` is true (the vault passphrase is available). Signers are cached per identity id for the
 * life of the returned function. `identity/not-found` (and vault errors when unlocking) reject.
 */
export function identitySupervisor(
  identities: IdentityService,
  unlock: boolean,
): (blueprint: Blueprint) => Promise<SupervisorAccess> {
  const cache = new Map<string, Promise<SupervisorAccess>>();
  return (bp) => {
    const id = bp.organization.identityId;
    let access = cache.get(id);
    if (access === undefined) {
      access = (async (): Promise<SupervisorAccess> => {
        const { certificateDer } = identities.get(id);
        if (!unlock) return { certificateDer, signer: null };
        const sign = await identities.signer(id);
        return { certificateDer, signer: { certificateDer, sign } };
      })();
      access.catch(() => cache.delete(id));
      cache.set(id, access);
    }
    return access;
  };
}

/**
 * Prepares the devices through a {@link BatchScheduler} (see the module doc). `onEvent` gets every
 * job event and the leave/return events, synchronously; it must not throw. Results come in the
 * order of the devices (watch mode: in the order they were first seen).
 */
export async function prepareDevices(
  deps: PrepareDeps,
  input: PrepareInput,
  onEvent: (event: PrepareEvent) => void = () => undefined,
  hooks: BatchHooks = {},
): Promise<PrepareDeviceResult[]> {
  const clock = deps.clock ?? systemClock;
  // An unknown or unopenable identity is the command's failure, not each device's.
  await deps.supervisor(input.blueprint);
  const runner = createRunner({
    db: deps.db,
    supervisor: deps.supervisor,
    profiles: deps.profiles,
    clock,
    ...(deps.planFor !== undefined ? { planFor: deps.planFor } : {}),
    ...(deps.retry !== undefined ? { retry: deps.retry } : {}),
    ...(deps.eraseReturnTimeoutMs !== undefined ? { eraseReturnTimeoutMs: deps.eraseReturnTimeoutMs } : {}),
    ...(deps.steps !== undefined ? { steps: deps.steps } : {}),
  });
  const scheduler = new BatchScheduler({
    mode: input.mode ?? 'batch',
    udids: input.udids,
    blueprint: input.blueprint,
    confirmedErase: input.confirmedErase,
    maxParallel: input.maxParallel,
    perHub: input.perHub,
    runner,
    watcher: deps.watcher,
    deviceFor: deps.deviceFor,
    clock,
    ...(input.hubOf !== undefined ? { hubOf: input.hubOf } : {}),
    ...(input.returnTimeoutMs !== undefined ? { waitTimeoutMs: input.returnTimeoutMs } : {}),
    ...(input.pollIntervalMs !== undefined ? { pollIntervalMs: input.pollIntervalMs } : {}),
    ...(input.signal !== undefined ? { signal: input.signal } : {}),
  });
  scheduler.on((e) => {
    if (isPrepareEvent(e)) onEvent(e);
    hooks.onSchedulerEvent?.(e);
  });
  scheduler.start();
  hooks.onScheduler?.(scheduler);
  const results = await scheduler.done;
  for (const r of results) {
    if (r.status === 'waiting' && r.waitingReason === 'device-gone') {
      log.info('the device did not come back; its job stays waiting', { udid: r.udid });
    }
  }
  return results;
}

/** What the station gives {@link prepareStation}. */
export interface PrepareEnvironment {
  readonly usbmux: UsbmuxClient;
  /** A started watcher. */
  readonly watcher: DeviceWatcher;
  readonly dataDir: string;
  readonly pairTimeoutMs?: number;
  readonly timeoutMs?: number;
  /** Retry policy of the runner (tests shorten the backoff). */
  readonly retry?: Partial<RetryPolicy>;
  /** The hub of a device (default {@link busHub}: the USB bus of its location id). */
  readonly hubOf?: HubOf;
  /** The vault (the Electron app's OS keychain); default the passphrase vault of `dataDir`. */
  readonly vault?: Vault;
}

/** A prepare request as the station takes it (cli.md `kitting prepare`). */
export interface PrepareRequest {
  readonly udids: readonly string[] | 'all';
  /** A stored blueprint's name, else a blueprint file path. */
  readonly blueprint: string;
  readonly confirmedErase: boolean;
  readonly maxParallel: number;
  /** At most this many devices at once on one hub. */
  readonly perHub?: number;
  /** `batch` (default, `kitting prepare`) or `watch` (`kitting watch`: every attached device until the signal aborts). */
  readonly mode?: 'batch' | 'watch';
  /** How often jobs waiting for a person are tried again (default 2 s). */
  readonly pollIntervalMs?: number;
  readonly signal?: AbortSignal;
  /** The vault passphrase file (else `KITTING_PASSPHRASE`); without a passphrase the identity stays locked. */
  readonly passphraseFile?: string | undefined;
  /** Apple's activation server (else `KITTING_ACTIVATION_URL`, else Apple's). */
  readonly activationUrl?: string;
  /** How long a device that left is awaited (default 5 minutes). */
  readonly returnTimeoutMs?: number;
  /** How long the erase step waits for the device (default 15 minutes). */
  readonly eraseReturnTimeoutMs?: number;
  /**
   * The technician explicitly asks for a forced inactivation in the MDM of registered, active
   * devices being erased for re-kitting (`--force-inactivate`); see `createCheckMdm` in steps.ts.
   */
  readonly forceInactivate?: boolean;
  /** Who asked (audit log): `cli` (default), `app`, `server`. */
  readonly actor?: string;
  /** Per-request timeout of MDM calls in ms (default 10 s). */
  readonly mdmTimeoutMs?: number;
}

/**
 * Everything `kitting prepare` needs around {@link prepareDevices}: opens `<dataDir>/station.db`,
 * the blueprint (a stored name first, else a file; relative profile paths resolve against the
 * file's folder, or the working folder for a stored one), the serial plans (names and asset tags
 * for the naming template), the identity service (the vault passphrase from the file or `KITTING_PASSPHRASE`; none means a
 * locked identity: steps that must sign fail with `kitting/signer-required`), loads the blueprint,
 * makes one {@link createDeviceAdapter} port per device and runs the pool. The database is closed
 * before it resolves. Errors: `blueprint/not-found` (exit 3: neither a stored name nor a file),
 * `blueprint/not-json`, `blueprint/invalid`, `io/read-failed`, `identity/not-found` (exit 3),
 * vault errors, `store/*`, and those of {@link prepareDevices}.
 */
export async function prepareStation(
  env: PrepareEnvironment,
  request: PrepareRequest,
  onEvent: (event: PrepareEvent) => void = () => undefined,
  hooks: BatchHooks = {},
): Promise<PrepareDeviceResult[]> {
  let passphrase: string | null = null;
  if (env.vault === undefined) {
    try {
      passphrase = resolvePassphrase(request.passphraseFile);
    } catch (err) {
      if (!hasCode(err, 'vault/passphrase-required') || request.passphraseFile !== undefined) throw err;
    }
  }
  const injected = env.vault;
  const db = openStationDatabase(env.dataDir);
  const ports = new Map<string, ClosableKitDevice>();
  try {
    const resolved = resolveBlueprint(db, request.blueprint);
    const baseDir = resolved.path !== undefined ? path.dirname(path.resolve(resolved.path)) : process.cwd();
    const openVault =
      injected !== undefined
        ? () => Promise.resolve(injected)
        : () =>
            PassphraseVault.open({
              dataDir: env.dataDir,
              passphrase: passphrase ?? '',
              create: countIdentities(db) === 0,
            });
    const identities = new IdentityService({ db, actor: request.actor ?? 'cli', vault: injected ?? openVault });
    // The MDM (issue #6): check-mdm, the staged profile and the group URL. Without a vault (no
    // passphrase) the token stays sealed: the run is an offline one.
    const mdmVault = injected !== undefined || passphrase !== null ? openVault : null;
    const client = await openMdmClient(db, mdmVault, { timeoutMs: request.mdmTimeoutMs ?? 10_000 });
    const mdmDeps = { db, client, vault: mdmVault };
    const urlResolution = await resolveMdmEnrollmentUrl(mdmDeps, resolved.blueprint);
    const blueprint = urlResolution.blueprint;
    if (urlResolution.source !== 'as-written')
      log.info('enrollment URL from the MDM', { source: urlResolution.source });
    const actor = request.actor ?? 'cli';
    const steps = createSteps({
      mdm: client === null ? null : mdmPortOf(client),
      forceInactivate: request.forceInactivate === true,
      audit: (action, subject, details) =>
        appendAudit(db, { at: new Date().toISOString(), actor, action, subject, details }),
    });
    const activationUrl = request.activationUrl ?? process.env.KITTING_ACTIVATION_URL;
    return await prepareDevices(
      {
        db,
        watcher: env.watcher,
        supervisor: identitySupervisor(identities, injected !== undefined || passphrase !== null),
        profiles: fileProfileLoader({ baseDir, fetchEnrollmentProfile: mdmEnrollmentProfileSource(mdmDeps) }),
        steps,
        planFor: createPlanLookup(db),
        deviceFor: (udid) => {
          let port = ports.get(udid);
          if (port === undefined) {
            port = createDeviceAdapter(udid, {
              usbmux: env.usbmux,
              watcher: env.watcher,
              ...(env.pairTimeoutMs !== undefined ? { pairTimeoutMs: env.pairTimeoutMs } : {}),
              ...(env.timeoutMs !== undefined ? { timeoutMs: env.timeoutMs } : {}),
              ...(activationUrl !== undefined && activationUrl !== '' ? { activationUrl } : {}),
            });
            ports.set(udid, port);
          }
          return port;
        },
        ...(env.retry !== undefined ? { retry: env.retry } : {}),
        ...(request.eraseReturnTimeoutMs !== undefined ? { eraseReturnTimeoutMs: request.eraseReturnTimeoutMs } : {}),
      },
      {
        mode: request.mode ?? 'batch',
        udids: request.udids,
        blueprint,
        confirmedErase: request.confirmedErase,
        maxParallel: request.maxParallel,
        ...(request.perHub !== undefined ? { perHub: request.perHub } : {}),
        ...(env.hubOf !== undefined ? { hubOf: env.hubOf } : {}),
        ...(request.returnTimeoutMs !== undefined ? { returnTimeoutMs: request.returnTimeoutMs } : {}),
        ...(request.pollIntervalMs !== undefined ? { pollIntervalMs: request.pollIntervalMs } : {}),
        ...(request.signal !== undefined ? { signal: request.signal } : {}),
      },
      onEvent,
      hooks,
    );
  } finally {
    for (const port of ports.values()) port.close();
    db.close();
  }
}
