/**
 * The {@link KitDevice} port over the real client (`src/device/`): lockdown sessions with the pair
 * record usbmuxd holds, MCInstall, mobileactivationd, diagnostics_relay and the device watcher.
 *
 * Translation only: every decision lives in the steps. What this file decides is how a call reaches
 * the device and which code a failure carries (the port's TSDoc lists them):
 * - a session refused because the device forgot us (`InvalidHostID`, or TLS refused after an erase)
 *   is `lockdown/invalid-host-id`; no record at all is `lockdown/missing-pair-record`;
 * - supervised pairing with a certificate the device does not know is `pairing/failed`;
 * - the activation server's errors other than offline / Activation Lock are `activation/failed`.
 *
 * Connections: one lockdown session per attachment (DeviceID) serves the reads and writes that
 * follow one another (opening one costs a connection, QueryType, the pair record, StartSession and a
 * TLS handshake on both sides, eight times per device when each read opened its own); it is dropped
 * when the device re-attaches, after a failure, pairing or erase, and after
 * {@link SESSION_IDLE_MS} idle; `pairingState` always opens a new one, restart and shutdown use
 * a session of their own. MCInstall keeps one
 * connection per attachment too, because escalation lasts as long as its connection; it is dropped
 * when the device re-attaches or the connection fails. Device lookups use the watcher.
 */
import { KitError, hasCode, type ErrorCode } from '../errors.ts';
import { createLogger } from '../log.ts';
import type { PlistDict, PlistValue } from '../plist/index.ts';
import { connectLockdown, findDevice, openDevice, pairDevice, type DeviceSession } from '../device/device.ts';
import { identityFromValues } from '../device/lockdown.ts';
import { activateDevice } from '../device/services/activation.ts';
import { DiagnosticsClient, waitForReturn } from '../device/services/diagnostics.ts';
import { McInstallClient } from '../device/services/mcinstall.ts';
import type { UsbmuxClient, UsbmuxDevice } from '../device/usbmux.ts';
import type { DeviceWatcher } from '../device/watcher.ts';
import type {
  DeviceIdentification,
  DeviceInspection,
  DeviceSettings,
  DeviceSettingsUpdate,
  EraseOptions,
  InstalledProfile,
  KitDevice,
  PairOptions,
  PairingState,
  SupervisorSigner,
  WaitForReturnOptions,
} from './device-port.ts';

const log = createLogger('kitting/device-adapter');

/** Options of {@link createDeviceAdapter}. */
export interface DeviceAdapterOptions {
  readonly usbmux: UsbmuxClient;
  /** A started watcher (waiting for a device to come back after erase or restart). */
  readonly watcher: DeviceWatcher;
  /** How long normal pairing waits for Trust (default 120 s). */
  readonly pairTimeoutMs?: number;
  /** Per-request device timeout (default 10 s). */
  readonly timeoutMs?: number;
  /** Apple's activation server (deviceActivation URL); default Apple's own. */
  readonly activationUrl?: string;
  /** How long a read answers the same read again when nothing was written (default {@link READ_FRESH_MS}). */
  readonly readFreshMs?: number;
}

/**
 * How long an idle kept lockdown session is used again; after a longer pause (a job waiting for a
 * person or the network) the next call opens a new one.
 */
const SESSION_IDLE_MS = 30_000;

/** How long a read answers the same read again when nothing was written meanwhile. */
const READ_FRESH_MS = 1_000;

/** Codes that mean "this host's pairing is not accepted", as the port names them. */
const NOT_PAIRED: readonly ErrorCode[] = ['lockdown/invalid-host-id', 'lockdown/missing-pair-record'];

/** Failures after which an MCInstall connection is not used again. */
const CONNECTION_BROKEN: readonly ErrorCode[] = [
  'device/connection-lost',
  'device/timeout',
  'device/bad-reply',
  'device/tls-failed',
  'usbmux/device-gone',
  'device/not-found',
];

/** MCInstall codes the port does not name, as the port's codes. */
function portMcError(err: unknown): unknown {
  if (hasCode(err, 'mcinstall/not-supervised', 'mcinstall/profile-not-found')) {
    return new KitError('mcinstall/failed', err.message, {
      ...(err.udid !== undefined ? { udid: err.udid } : {}),
      cause: err,
      ...(err.details !== undefined ? { details: err.details } : {}),
    });
  }
  return err;
}

function str(v: PlistValue | undefined): string | null {
  return typeof v === 'string' ? v : null;
}

function num(v: PlistValue | undefined): number | null {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'bigint') return Number(v);
  return null;
}

/** The port plus what its owner must call when done with the device. */
export interface ClosableKitDevice extends KitDevice {
  /** Closes the kept MCInstall connection (if any); the port opens a new one if used again. */
  close(): void;
}

/** Creates the port for one UDID (see the module doc). Close it when done (it may keep a connection open). */
export function createDeviceAdapter(udid: string, options: DeviceAdapterOptions): ClosableKitDevice {
  return new DeviceAdapter(udid, options);
}

class DeviceAdapter implements ClosableKitDevice {
  readonly udid: string;
  private readonly o: DeviceAdapterOptions;
  /** The DeviceID of the attachment last talked to (what `waitForReturn` waits to change). */
  private lastDeviceId: number | undefined;
  /** The MCInstall connection of the current attachment (escalation lives on it). */
  private mc: { client: McInstallClient; deviceId: number } | undefined;
  /** The lockdown session of the current attachment, kept for the calls that follow. */
  private kept: { session: DeviceSession; lastUsed: number } | undefined;
  /**
   * Recent reads (inspection, settings, profile list), handed out again for {@link READ_FRESH_MS}
   * to the same read on the same attachment when nothing was written to the device since: a step's
   * `isDone` and `run` ask the same questions back to back (the erase step right after the inspect
   * step; personalize twice). Every writing method forgets them first.
   */
  private readonly reads = new Map<string, { value: unknown; deviceId: number; at: number }>();
  /** Bumped by every write: a read that overlapped a write is not remembered. */
  private writes = 0;
  /** Turns on the kept session (one lockdown connection carries one request at a time). */
  private sessionQueue: Promise<void> = Promise.resolve();

  constructor(udid: string, options: DeviceAdapterOptions) {
    this.udid = udid;
    this.o = options;
  }

  /**
   * The current attachment of the device: the watcher's (kept current from usbmuxd's Listen socket),
   * else usbmuxd's list. Asking usbmuxd for the whole list on every call costs a cart of N devices
   * N² device entries to encode and decode.
   * @throws KitError `device/not-found` when it is not attached.
   */
  private async locate(): Promise<UsbmuxDevice> {
    return this.o.watcher.get(this.udid) ?? (await findDevice(this.o.usbmux, this.udid));
  }

  /** A session with the stored pair record; never pairs. Maps a refused session to the port's codes. */
  private async session(device: UsbmuxDevice): Promise<DeviceSession> {
    try {
      return await openDevice(this.o.usbmux, this.udid, {
        device,
        pair: 'never',
        ...(this.o.timeoutMs !== undefined ? { timeoutMs: this.o.timeoutMs } : {}),
      });
    } catch (err) {
      if (hasCode(err, 'device/tls-failed')) {
        throw new KitError('lockdown/invalid-host-id', `${this.udid} refused the session (pairing forgotten)`, {
          udid: this.udid,
          cause: err,
        });
      }
      throw err;
    }
  }

  /** Waits for the kept session to be free; call the returned function to free it. */
  private async acquire(): Promise<() => void> {
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const before = this.sessionQueue;
    this.sessionQueue = before.then(() => mine);
    await before;
    return release;
  }

  /** Forgets the kept session and closes its connection (no StopSession: it may be dead already). */
  private dropSession(): void {
    const kept = this.kept;
    this.kept = undefined;
    kept?.session.lockdown.close();
  }

  /**
   * Runs `fn` on the kept lockdown session of the current attachment, opening one when there is none,
   * the device re-attached, or it sat idle longer than {@link SESSION_IDLE_MS}; `fresh` always opens
   * a new one (to learn whether the device accepts our pairing now). Calls take turns on the one
   * connection. A failure drops the session; a kept session found closed by the device
   * (`device/connection-lost`) is replaced once and `fn` run again.
   */
  private async withSession<T>(fn: (s: DeviceSession) => Promise<T>, fresh = false): Promise<T> {
    const release = await this.acquire();
    try {
      if (fresh) this.dropSession();
      for (let attempt = 0; ; attempt++) {
        const device = await this.locate();
        let kept = this.kept;
        if (
          kept !== undefined &&
          (kept.session.device.deviceId !== device.deviceId || Date.now() - kept.lastUsed > SESSION_IDLE_MS)
        ) {
          this.dropSession();
          kept = undefined;
        }
        const reused = kept !== undefined;
        if (kept === undefined) {
          kept = { session: await this.session(device), lastUsed: Date.now() };
          this.kept = kept;
        }
        this.lastDeviceId = kept.session.device.deviceId;
        try {
          const result = await fn(kept.session);
          kept.lastUsed = Date.now();
          return result;
        } catch (err) {
          if (this.kept === kept) this.dropSession();
          if (reused && attempt === 0 && hasCode(err, 'device/connection-lost')) {
            log.debug('the kept lockdown session was closed; opening a new one', { udid: this.udid });
            continue;
          }
          throw err;
        }
      }
    } finally {
      release();
    }
  }

  /**
   * Runs `fn` on a session of its own, ended with StopSession before this resolves (the kept one is
   * dropped first): for a call after which the device goes away (restart, shut down), so the call
   * returns once the device has answered or left, as a one-session-per-call port did.
   */
  private async withOwnSession<T>(fn: (s: DeviceSession) => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      this.dropSession();
      const s = await this.session(await this.locate());
      this.lastDeviceId = s.device.deviceId;
      try {
        return await fn(s);
      } finally {
        await s.close();
      }
    } finally {
      release();
    }
  }

  async identify(): Promise<DeviceIdentification> {
    const device = await this.locate();
    this.lastDeviceId = device.deviceId;
    const lockdown = await connectLockdown(this.o.usbmux, device, this.o.timeoutMs);
    try {
      const id = identityFromValues(await lockdown.getValues());
      const need = (v: string | undefined, key: string): string => {
        if (v === undefined) {
          throw new KitError('device/bad-reply', `${this.udid} did not give ${key} before a session`, {
            udid: this.udid,
          });
        }
        return v;
      };
      return {
        udid: need(id.udid, 'UniqueDeviceID'),
        serial: need(id.serialNumber, 'SerialNumber'),
        ecid: id.uniqueChipId?.toString() ?? '',
        productType: need(id.productType, 'ProductType'),
        productVersion: need(id.productVersion, 'ProductVersion'),
        deviceClass: id.deviceClass ?? '',
        activationState: need(id.activationState, 'ActivationState'),
        deviceName: id.deviceName ?? '',
      };
    } finally {
      lockdown.close();
    }
  }

  async pairingState(): Promise<PairingState> {
    try {
      await this.withSession(() => Promise.resolve(), true);
      return 'paired';
    } catch (err) {
      if (hasCode(err, ...NOT_PAIRED)) return 'unpaired';
      throw err;
    }
  }

  async pair(options: PairOptions): Promise<void> {
    this.forget();
    const device = await this.locate();
    this.lastDeviceId = device.deviceId;
    const lockdown = await connectLockdown(this.o.usbmux, device, this.o.timeoutMs);
    try {
      if (options.mode === 'normal') {
        const onTrustPending = options.onTrustPending;
        await pairDevice(this.o.usbmux, device, lockdown, {
          ...(this.o.pairTimeoutMs !== undefined ? { pairTimeoutMs: this.o.pairTimeoutMs } : {}),
          ...(options.signal !== undefined ? { signal: options.signal } : {}),
          onProgress: (e) => {
            if (e.stage === 'trust-pending') onTrustPending?.();
          },
        });
      } else {
        await pairDevice(this.o.usbmux, device, lockdown, {
          supervisor: options.signer,
          pairingMode: 'supervised',
          ...(options.signal !== undefined ? { signal: options.signal } : {}),
        });
      }
    } catch (err) {
      if (hasCode(err, 'lockdown/supervisor-rejected')) {
        throw new KitError('pairing/failed', `${this.udid} is not supervised by this identity: ${err.message}`, {
          udid: this.udid,
          cause: err,
        });
      }
      throw err;
    } finally {
      lockdown.close();
      // A session kept from before belongs to the pairing this call replaced.
      this.dropSession();
    }
  }

  /** `read()`, or its answer from less than {@link READ_FRESH_MS} ago (see {@link reads}). */
  private async remembered<T>(name: string, read: () => Promise<T>): Promise<T> {
    const started = Date.now();
    const writes = this.writes;
    const { deviceId } = await this.locate();
    const memo = this.reads.get(name);
    if (
      memo !== undefined &&
      memo.deviceId === deviceId &&
      started - memo.at <= (this.o.readFreshMs ?? READ_FRESH_MS)
    ) {
      return memo.value as T;
    }
    const value = await read();
    if (this.writes === writes) this.reads.set(name, { value, deviceId, at: started });
    return value;
  }

  /** Called first by every method that changes the device. */
  private forget(): void {
    this.writes++;
    this.reads.clear();
  }

  inspect(): Promise<DeviceInspection> {
    return this.remembered('inspection', () => this.readInspection());
  }

  private async readInspection(): Promise<DeviceInspection> {
    const values = await this.withSession(async (s) => {
      const get = async (domain: string | undefined, key: string): Promise<PlistValue | undefined> => {
        try {
          return await s.lockdown.getValue(domain, key);
        } catch (err) {
          if (hasCode(err, 'lockdown/missing-value', 'lockdown/get-prohibited')) return undefined;
          throw err;
        }
      };
      return {
        activationState: await get(undefined, 'ActivationState'),
        setupDone: await get('com.apple.purplebuddy', 'SetupDone'),
        chaperoned: await get('com.apple.mobile.chaperone', 'DeviceIsChaperoned'),
        fmip: await get('com.apple.fmip', 'IsAssociated'),
        battery: await get('com.apple.mobile.battery', 'BatteryCurrentCapacity'),
        total: await get('com.apple.disk_usage', 'TotalDiskCapacity'),
        free: await get('com.apple.disk_usage', 'AmountDataAvailable'),
      };
    });
    const cloudConfiguration = await this.getCloudConfiguration();
    const profiles = await this.listProfiles();
    const stored = await this.getStoredProfile();
    const total = num(values.total);
    const free = num(values.free);
    return {
      activationState: str(values.activationState) ?? 'Unactivated',
      activationLocked: values.fmip === true,
      setupComplete: values.setupDone === true,
      cloudConfiguration,
      supervised: values.chaperoned === true || cloudConfiguration?.IsSupervised === true,
      storage: total !== null ? { totalBytes: total, freeBytes: free ?? 0 } : null,
      batteryLevel: num(values.battery),
      profiles,
      storedProfilePresent: stored !== null,
    };
  }

  async activate(options: { readonly signal?: AbortSignal } = {}): Promise<void> {
    this.forget();
    try {
      await this.withSession((s) =>
        activateDevice(s.lockdown, {
          ...(this.o.activationUrl !== undefined ? { activationUrl: this.o.activationUrl } : {}),
          ...(s.record.escrowBag !== undefined ? { escrowBag: s.record.escrowBag } : {}),
          ...(options.signal !== undefined ? { signal: options.signal } : {}),
        }),
      );
    } catch (err) {
      // The port names three activation outcomes; another server answer is a failed activation.
      if (hasCode(err, 'activation/server-error')) {
        throw new KitError('activation/failed', err.message, {
          udid: this.udid,
          cause: err,
          ...(err.details !== undefined ? { details: err.details } : {}),
        });
      }
      throw err;
    }
  }

  close(): void {
    this.dropMc();
    this.dropSession();
  }

  private dropMc(): void {
    this.mc?.client.close();
    this.mc = undefined;
  }

  /**
   * Runs `fn` on the MCInstall connection of the current attachment, opening one when there is none
   * (or the device re-attached since). A transport failure closes the connection for good.
   */
  private async withMc<T>(fn: (client: McInstallClient) => Promise<T>): Promise<T> {
    const device = await this.locate();
    if (this.mc !== undefined && this.mc.deviceId !== device.deviceId) this.dropMc();
    if (this.mc === undefined) {
      const client = await this.withSession((s) =>
        McInstallClient.start(s.lockdown, s.record.escrowBag !== undefined ? { escrowBag: s.record.escrowBag } : {}),
      );
      this.mc = { client, deviceId: device.deviceId };
    }
    const { client } = this.mc;
    try {
      return await fn(client);
    } catch (err) {
      if (hasCode(err, ...CONNECTION_BROKEN)) this.dropMc();
      throw portMcError(err);
    }
  }

  getCloudConfiguration(): Promise<PlistDict | null> {
    return this.withMc((c) => c.getCloudConfiguration());
  }

  setCloudConfiguration(configuration: PlistDict): Promise<void> {
    this.forget();
    return this.withMc((c) => c.setCloudConfiguration(configuration));
  }

  async escalate(signer: SupervisorSigner): Promise<void> {
    this.forget();
    await this.withMc((c) => c.escalate(signer.certificateDer, (content) => signer.sign(content)));
  }

  async installProfile(profile: Buffer, options: { readonly silent: boolean }): Promise<void> {
    this.forget();
    await this.withMc((c) => (options.silent ? c.installProfileSilent(profile) : c.installProfile(profile)));
  }

  storeProfile(profile: Buffer): Promise<void> {
    this.forget();
    return this.withMc((c) => c.storeProfile(profile));
  }

  getStoredProfile(): Promise<Buffer | null> {
    return this.withMc((c) => c.getStoredProfile());
  }

  listProfiles(): Promise<InstalledProfile[]> {
    return this.remembered('profiles', () => this.listProfilesNow());
  }

  private async listProfilesNow(): Promise<InstalledProfile[]> {
    const list = await this.withMc((c) => c.getProfileList());
    return list.map((p) => ({
      identifier: p.identifier,
      uuid: p.uuid,
      displayName: p.displayName,
      removalDisallowed: p.removalDisallowed,
    }));
  }

  async erase(options: EraseOptions): Promise<void> {
    this.forget();
    try {
      await this.withMc(async (c) => {
        this.lastDeviceId = this.mc?.deviceId;
        await c.eraseDevice({
          preserveDataPlan: options.preserveDataPlan,
          disallowProximitySetup: options.disallowProximitySetup,
        });
      });
    } finally {
      // eraseDevice closes the connection; the device drops off and wipes itself.
      this.mc = undefined;
      this.dropSession();
    }
  }

  readSettings(): Promise<DeviceSettings> {
    return this.remembered('settings', () => this.readSettingsNow());
  }

  private async readSettingsNow(): Promise<DeviceSettings> {
    return this.withSession(async (s) => {
      const get = async (domain: string | undefined, key: string): Promise<string | null> => {
        try {
          return str(await s.lockdown.getValue(domain, key));
        } catch (err) {
          if (hasCode(err, 'lockdown/missing-value', 'lockdown/get-prohibited')) return null;
          throw err;
        }
      };
      return {
        deviceName: (await get(undefined, 'DeviceName')) ?? '',
        language: await get('com.apple.international', 'Language'),
        locale: await get('com.apple.international', 'Locale'),
        timeZone: await get(undefined, 'TimeZone'),
      };
    });
  }

  async writeSettings(update: DeviceSettingsUpdate): Promise<void> {
    this.forget();
    await this.withSession(async (s) => {
      if (update.deviceName !== undefined) await s.lockdown.setValue(undefined, 'DeviceName', update.deviceName);
      if (update.language !== undefined) {
        await s.lockdown.setValue('com.apple.international', 'Language', update.language);
      }
      if (update.locale !== undefined) await s.lockdown.setValue('com.apple.international', 'Locale', update.locale);
      if (update.timeZone !== undefined) await s.lockdown.setValue(undefined, 'TimeZone', update.timeZone);
    });
  }

  private async power(action: 'restart' | 'shutdown'): Promise<void> {
    this.dropMc();
    await this.withOwnSession(async (s) => {
      const diag = await DiagnosticsClient.start(
        s.lockdown,
        s.record.escrowBag !== undefined ? { escrowBag: s.record.escrowBag } : {},
      );
      try {
        if (action === 'restart') await diag.restart();
        else await diag.shutdown();
      } finally {
        await diag.goodbye();
      }
    });
  }

  restart(): Promise<void> {
    this.forget();
    return this.power('restart');
  }

  shutdown(): Promise<void> {
    this.forget();
    return this.power('shutdown');
  }

  async waitForReturn(options: WaitForReturnOptions): Promise<void> {
    const previousDeviceId = this.lastDeviceId;
    const device = await waitForReturn(this.o.watcher, this.udid, {
      timeoutMs: options.timeoutMs,
      ...(previousDeviceId !== undefined ? { previousDeviceId } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    }).catch((err: unknown) => {
      if (options.signal?.aborted === true) throw options.signal.reason;
      throw err;
    });
    this.lastDeviceId = device.deviceId;
    // Attached is not yet answering: wait until lockdownd takes a connection (it retries while refused).
    const lockdown = await connectLockdown(this.o.usbmux, device, this.o.timeoutMs);
    try {
      await lockdown.queryType();
    } finally {
      lockdown.close();
    }
    log.info('the device came back', { udid: this.udid, deviceId: device.deviceId });
  }
}
