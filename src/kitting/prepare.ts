/**
 * `prepare`: runs a blueprint on a set of attached devices (cli.md "Kitting", domain.md pipeline)
 * through the job runner, at most N devices at once, and follows devices that leave and come back.
 *
 * What it adds to the runner (`runner.ts`):
 * - **a simple pool**: at most `maxParallel` devices run at once, in the order given (the full
 *   scheduler with per-hub caps comes later);
 * - **devices that leave**: a job that waits because its device is gone (`device-gone`: unplugged,
 *   rebooted, cable fault) is resumed as soon as the watcher sees the same UDID attached again, for
 *   at most `returnTimeoutMs`; after that the job stays `waiting` in the store and the same command
 *   resumes it later. An erase inside the `erase` step is followed by the port itself
 *   ({@link KitDevice.waitForReturn}).
 * - **one outcome per device**: `done`, `failed` (with the code), `waiting` (with the reason: Trust,
 *   locked, internet, erase confirmation, device gone) or `cancelled` (the signal aborted: jobs are
 *   persisted and the same command continues them).
 *
 * Lifecycle: {@link prepareDevices} resolves when every device has an outcome; it never rejects for a
 * device's failure, only for bad input (`usage/invalid-argument`, `device/not-found` when none of
 * the UDIDs is attached) and for the supervisor callback's or the store's errors.
 */
import path from 'node:path';
import { KitError, hasCode, toKitError, type ErrorCode } from '../errors.ts';
import type { UsbmuxClient } from '../device/usbmux.ts';
import type { DeviceWatcher } from '../device/watcher.ts';
import { IdentityService } from '../identity/identity.ts';
import { PassphraseVault, resolvePassphrase } from '../identity/vault.ts';
import { createLogger } from '../log.ts';
import { openStationDatabase, type Db } from '../store/db.ts';
import { countIdentities } from '../store/identities.ts';
import type { WaitingReason } from '../store/jobs.ts';
import type { Blueprint } from './blueprint.ts';
import { resolveBlueprint } from './blueprint-store.ts';
import { createDeviceAdapter, type ClosableKitDevice } from './device-adapter.ts';
import { createPlanLookup } from './plans.ts';
import type { KitDevice } from './device-port.ts';
import {
  createRunner,
  systemClock,
  type JobEvent,
  type JobOutcome,
  type RetryPolicy,
  type RunnerClock,
} from './runner.ts';
import { fileProfileLoader, type PlanEntry, type ProfileLoader, type SupervisorAccess } from './steps.ts';

const log = createLogger('kitting/prepare');

/** How one device's preparation ended in this call. */
export interface PrepareDeviceResult {
  readonly udid: string;
  /** The job, or null when none was started (the device was not attached). */
  readonly jobId: string | null;
  readonly status: 'done' | 'failed' | 'waiting' | 'cancelled';
  /** The failure's code, or the cause of the wait. */
  readonly errorCode?: ErrorCode;
  readonly errorMessage?: string;
  readonly waitingReason?: WaitingReason;
  /** The step the job failed or waits at. */
  readonly stepId?: string;
}

/** Events of a prepare run: the runner's job events plus the devices seen leaving and returning. */
export type PrepareEvent =
  | JobEvent
  | { readonly type: 'deviceLeft'; readonly udid: string; readonly at: string }
  | { readonly type: 'deviceReturned'; readonly udid: string; readonly at: string };

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
}

/** Input of {@link prepareDevices}. */
export interface PrepareInput {
  /** The devices to prepare, or `'all'` for every USB device attached now. */
  readonly udids: readonly string[] | 'all';
  readonly blueprint: Blueprint;
  /** The technician confirmed erasing (`--yes`). */
  readonly confirmedErase: boolean;
  /** At most this many devices at once (≥ 1). */
  readonly maxParallel: number;
  /** How long a device that left is awaited before its job is left waiting (default 5 minutes). */
  readonly returnTimeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** How many times one device may leave and return within one call before it is left waiting. */
const MAX_RETURNS = 50;

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

/** The attached UDIDs a prepare call works on; `device/not-found` when none of the named ones is attached. */
function targets(watcher: DeviceWatcher, udids: readonly string[] | 'all'): string[] {
  if (udids === 'all') return watcher.devices().map((d) => d.udid);
  const unique = [...new Set(udids)];
  if (unique.length > 0 && unique.every((u) => watcher.get(u) === undefined)) {
    throw new KitError(
      'device/not-found',
      unique.length === 1 ? `no attached device has UDID ${unique[0]}` : `none of ${unique.join(', ')} is attached`,
      unique.length === 1 ? { udid: unique[0] } : {},
    );
  }
  return unique;
}

function resultOf(outcome: JobOutcome): PrepareDeviceResult {
  const step = outcome.job.steps.find((s) => s.status === 'failed' || s.status === 'waiting');
  return {
    udid: outcome.udid,
    jobId: outcome.jobId,
    status: outcome.status,
    ...(outcome.error !== null && outcome.status !== 'done'
      ? { errorCode: outcome.error.code, errorMessage: outcome.error.message }
      : {}),
    ...(outcome.waitingReason !== null ? { waitingReason: outcome.waitingReason } : {}),
    ...(step !== undefined && outcome.status !== 'done' ? { stepId: step.stepId } : {}),
  };
}

/**
 * Prepares the devices (see the module doc). `onEvent` gets every job event and the leave/return
 * events, synchronously; it must not throw. Results come in the order of the devices.
 */
export async function prepareDevices(
  deps: PrepareDeps,
  input: PrepareInput,
  onEvent: (event: PrepareEvent) => void = () => undefined,
): Promise<PrepareDeviceResult[]> {
  if (!Number.isInteger(input.maxParallel) || input.maxParallel < 1) {
    throw new KitError('usage/invalid-argument', `--max-parallel must be a whole number ≥ 1, not ${input.maxParallel}`);
  }
  const clock = deps.clock ?? systemClock;
  const signal = input.signal ?? new AbortController().signal;
  const returnTimeoutMs = input.returnTimeoutMs ?? 5 * 60_000;
  const udids = targets(deps.watcher, input.udids);
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
  });
  const unsubscribe = runner.onEvent(onEvent);
  const wanted = new Set(udids);
  const iso = (): string => clock.now().toISOString();
  const onDetached = (d: { udid: string }): void => {
    if (wanted.has(d.udid)) onEvent({ type: 'deviceLeft', udid: d.udid, at: iso() });
  };
  deps.watcher.on('detached', onDetached);

  const prepareOne = async (udid: string): Promise<PrepareDeviceResult> => {
    if (deps.watcher.get(udid) === undefined) {
      return {
        udid,
        jobId: null,
        status: 'failed',
        errorCode: 'device/not-found',
        errorMessage: `no attached device has UDID ${udid}`,
      };
    }
    const device = deps.deviceFor(udid);
    let outcome = await runner.runJob({
      device,
      blueprint: input.blueprint,
      confirmedErase: input.confirmedErase,
      signal,
    });
    for (let returns = 0; returns < MAX_RETURNS; returns++) {
      if (outcome.status !== 'waiting' || outcome.waitingReason !== 'device-gone' || signal.aborted) break;
      // The failing call may have seen the device gone before the watcher did: give the Detached
      // notification a moment, then wait for the UDID to be attached (again).
      try {
        await clock.sleep(200, signal);
        await deps.watcher.waitFor(udid, { timeoutMs: returnTimeoutMs, signal });
      } catch (err) {
        if (!hasCode(err, 'device/timeout') && !signal.aborted) throw err;
        log.info('the device did not come back; its job stays waiting', { udid });
        break;
      }
      onEvent({ type: 'deviceReturned', udid, at: iso() });
      const next = await runner.resume(udid, device, { confirmedErase: input.confirmedErase, signal });
      if (next === undefined) break;
      outcome = next;
    }
    return resultOf(outcome);
  };

  const results = new Array<PrepareDeviceResult>(udids.length);
  let nextIndex = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = nextIndex++;
      if (i >= udids.length) return;
      const udid = udids[i] as string;
      try {
        results[i] = await prepareOne(udid);
      } catch (err) {
        const e = toKitError(err);
        log.warn('preparing a device failed before its job ran', { udid, code: e.code });
        results[i] = { udid, jobId: null, status: 'failed', errorCode: e.code, errorMessage: e.message };
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(input.maxParallel, udids.length) }, () => worker()));
  } finally {
    deps.watcher.off('detached', onDetached);
    unsubscribe();
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
}

/** A prepare request as the station takes it (cli.md `kitting prepare`). */
export interface PrepareRequest {
  readonly udids: readonly string[] | 'all';
  /** A stored blueprint's name, else a blueprint file path. */
  readonly blueprint: string;
  readonly confirmedErase: boolean;
  readonly maxParallel: number;
  readonly signal?: AbortSignal;
  /** The vault passphrase file (else `KITTING_PASSPHRASE`); without a passphrase the identity stays locked. */
  readonly passphraseFile?: string | undefined;
  /** Apple's activation server (else `KITTING_ACTIVATION_URL`, else Apple's). */
  readonly activationUrl?: string;
  /** How long a device that left is awaited (default 5 minutes). */
  readonly returnTimeoutMs?: number;
  /** How long the erase step waits for the device (default 15 minutes). */
  readonly eraseReturnTimeoutMs?: number;
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
): Promise<PrepareDeviceResult[]> {
  let passphrase: string | null;
  try {
    passphrase = resolvePassphrase(request.passphraseFile);
  } catch (err) {
    if (!hasCode(err, 'vault/passphrase-required') || request.passphraseFile !== undefined) throw err;
    passphrase = null;
  }
  const db = openStationDatabase(env.dataDir);
  const ports = new Map<string, ClosableKitDevice>();
  try {
    const resolved = resolveBlueprint(db, request.blueprint);
    const blueprint = resolved.blueprint;
    const baseDir = resolved.path !== undefined ? path.dirname(path.resolve(resolved.path)) : process.cwd();
    const identities = new IdentityService({
      db,
      actor: 'cli',
      vault: () =>
        PassphraseVault.open({
          dataDir: env.dataDir,
          passphrase: passphrase ?? '',
          create: countIdentities(db) === 0,
        }),
    });
    const activationUrl = request.activationUrl ?? process.env.KITTING_ACTIVATION_URL;
    return await prepareDevices(
      {
        db,
        watcher: env.watcher,
        supervisor: identitySupervisor(identities, passphrase !== null),
        profiles: fileProfileLoader({ baseDir }),
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
        udids: request.udids,
        blueprint,
        confirmedErase: request.confirmedErase,
        maxParallel: request.maxParallel,
        ...(request.returnTimeoutMs !== undefined ? { returnTimeoutMs: request.returnTimeoutMs } : {}),
        ...(request.signal !== undefined ? { signal: request.signal } : {}),
      },
      onEvent,
    );
  } finally {
    for (const port of ports.values()) port.close();
    db.close();
  }
}
