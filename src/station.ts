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
import { PassphraseVault, resolvePassphrase } from './identity/vault.ts';
import { appendAudit } from './store/audit.ts';
import { openStationDatabase } from './store/db.ts';
import { UsbmuxClient, type UsbmuxDevice, type UsbmuxdAddress } from './device/usbmux.ts';
import { DeviceWatcher } from './device/watcher.ts';
import {
  UsbLayer,
  formatEcid,
  type AppleUsbDevice,
  type KnownDeviceIdentity,
  type LeaveRecoveryResult,
  type PortMap,
  type UsbStatus,
} from './device/usb.ts';
import { prepareStation, type PrepareDeviceResult, type PrepareEvent, type PrepareRequest } from './kitting/prepare.ts';

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
  /** Who acts, for the audit log: `cli`, `app`, `server` (default `cli`). */
  actor?: string;
  /** The USB layer (default: over the `usb` package, loaded on first use). Tests give one over a fake backend. */
  usb?: UsbLayer | undefined;
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
  private watcherInstance: DeviceWatcher | undefined;
  /** USB: ports, recovery/DFU devices (src/device/usb.ts). */
  readonly usb: UsbLayer;
  /** ECID and serial number per UDID, learned in normal mode, to find a device again in recovery mode. */
  private readonly knownIdentities = new Map<string, KnownDeviceIdentity>();

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
    this.usb = options.usb ?? new UsbLayer();
  }

  /** The live device watcher, started on first use. @throws KitError `usbmux/unavailable`. */
  async watcher(): Promise<DeviceWatcher> {
    if (this.watcherInstance === undefined) {
      const w = new DeviceWatcher(this.usbmux);
      await w.start();
      this.watcherInstance = w;
    }
    return this.watcherInstance;
  }

  /** Stops the watcher (if started). */
  close(): void {
    this.watcherInstance?.stop();
    this.watcherInstance = undefined;
    void this.usb.close();
  }

  /**
   * Runs a blueprint on devices (`kitting prepare`): jobs persisted in `<dataDir>/station.db`, at
   * most `maxParallel` devices at once, devices that leave (erase, reboot, unplug) followed through
   * the watcher and their jobs resumed; the vault passphrase is the request's file, else the
   * station's, else `KITTING_PASSPHRASE`. One result per device; see `src/kitting/prepare.ts` for the
   * lifecycle and the errors.
   */
  async prepare(request: PrepareRequest, onEvent?: (event: PrepareEvent) => void): Promise<PrepareDeviceResult[]> {
    const passphraseFile = request.passphraseFile ?? this.passphraseFile;
    return prepareStation(
      {
        usbmux: this.usbmux,
        watcher: await this.watcher(),
        dataDir: this.dataDir,
        ...(this.pairTimeoutMs !== undefined ? { pairTimeoutMs: this.pairTimeoutMs } : {}),
        ...(this.timeoutMs !== undefined ? { timeoutMs: this.timeoutMs } : {}),
      },
      { ...request, ...(passphraseFile !== undefined ? { passphraseFile } : {}) },
      onEvent,
    );
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
        vault: () =>
          PassphraseVault.open({
            dataDir: this.dataDir,
            passphrase: resolvePassphrase(this.passphraseFile),
            create: false,
          }),
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
