/**
 * The station facade: the one thing the CLI, the Electron shell and the headless server call.
 *
 * This first part covers the devices themselves (list, read values, pair, unpair, restart, shut
 * down). The kitting pipeline, the store and the MDM syncer attach here later; the shape is kept
 * for that: one long-lived object per process, camelCase results, KitErrors with codes, and a
 * lazily started {@link DeviceWatcher} for live attach/detach.
 */
import { hasCode, toKitError, type ErrorCode } from './errors.ts';
import { createLogger } from './log.ts';
import type { PlistDict, PlistValue } from './plist/index.ts';
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
import { DiagnosticsClient } from './device/services/diagnostics.ts';
import { UsbmuxClient, type UsbmuxDevice, type UsbmuxdAddress } from './device/usbmux.ts';
import { DeviceWatcher } from './device/watcher.ts';

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
  private watcherInstance: DeviceWatcher | undefined;

  constructor(options: StationOptions) {
    this.usbmux = new UsbmuxClient(
      options.usbmuxdAddress ?? undefined,
      options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {},
    );
    this.dataDir = options.dataDir;
    this.pairTimeoutMs = options.pairTimeoutMs;
    this.timeoutMs = options.timeoutMs;
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
  }

  private async open(udid: string, options: PairingCallOptions = {}): Promise<DeviceSession> {
    return openDevice(this.usbmux, udid, {
      ...(this.pairTimeoutMs !== undefined ? { pairTimeoutMs: this.pairTimeoutMs } : {}),
      ...(this.timeoutMs !== undefined ? { timeoutMs: this.timeoutMs } : {}),
      ...(options.onProgress !== undefined ? { onProgress: options.onProgress } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
  }

  /** Attached USB devices with their identity; never pairs. Devices are queried concurrently. */
  async listDevices(): Promise<DeviceSummary[]> {
    const devices = (await this.usbmux.listDevices()).filter((d) => d.connectionType === 'USB');
    return Promise.all(devices.map((d) => this.summarize(d)));
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

  /** Pairs with `udid` unless a pairing the device accepts already exists. */
  async pair(udid: string, options: PairingCallOptions = {}): Promise<PairResult> {
    const session = await this.open(udid, options);
    await session.close();
    return { udid, hostId: session.record.hostId, pairedNow: session.pairedNow };
  }

  /** Pairs every attached USB device concurrently; one result or error per device. */
  async pairAll(
    options: PairingCallOptions = {},
  ): Promise<(PairResult | { udid: string; error: { code: ErrorCode; message: string } })[]> {
    const devices = (await this.usbmux.listDevices()).filter((d) => d.connectionType === 'USB');
    return Promise.all(
      devices.map(async (d) => {
        try {
          return await this.pair(d.udid, options);
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
}
