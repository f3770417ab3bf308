/**
 * Attached devices, kept current from a usbmuxd `Listen` socket (protocols.md §1.7–1.8, §7.3).
 *
 * Devices are keyed by UDID: a device that re-attaches (reboot, erase, replug) gets a new DeviceID
 * but keeps its UDID, and is reported as `detached` then `attached`. Only USB connections are
 * reported (network pairings are not kitting targets). When usbmuxd goes away (restart, crash) the
 * watcher reconnects with backoff, lists the devices again and reports what changed meanwhile.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { KitError } from '../errors.ts';
import { createLogger } from '../log.ts';
import type { UsbmuxClient, UsbmuxDevice, UsbmuxEvent, UsbmuxListenHandle } from './usbmux.ts';

const log = createLogger('device/watcher');

/** Events of a {@link DeviceWatcher} (past tense). */
export interface DeviceWatcherEvents {
  /** A device appeared (or re-appeared with a new DeviceID). */
  attached: [device: UsbmuxDevice];
  /** A device went away; carries the last known attachment. */
  detached: [device: UsbmuxDevice];
  /** usbmuxd stored a pair record for this device. */
  paired: [device: UsbmuxDevice];
  /** The Listen socket was lost; the watcher is reconnecting. */
  disconnected: [error: KitError];
  /** Listening again after {@link DeviceWatcherEvents.disconnected}; the device set is reconciled. */
  reconnected: [];
}

export interface DeviceWatcherOptions {
  /** First reconnect delay (default 100 ms), doubled up to {@link backoffMaxMs}. */
  backoffMinMs?: number;
  /** Longest reconnect delay (default 2 s). */
  backoffMaxMs?: number;
  /** Report only `USB` connections (default true). */
  usbOnly?: boolean;
}

/**
 * Lifecycle: `new` → {@link start} (resolves once the current devices are known; rejects with
 * `usbmux/unavailable` when usbmuxd cannot be reached at all) → events → {@link stop}.
 */
export class DeviceWatcher extends EventEmitter<DeviceWatcherEvents> {
  private readonly usbmux: UsbmuxClient;
  private readonly byUdid = new Map<string, UsbmuxDevice>();
  private readonly udidById = new Map<number, string>();
  private handle: UsbmuxListenHandle | undefined;
  private stopped = false;
  private started = false;
  private readonly stopController = new AbortController();
  private readonly backoffMinMs: number;
  private readonly backoffMaxMs: number;
  private readonly usbOnly: boolean;

  constructor(usbmux: UsbmuxClient, options: DeviceWatcherOptions = {}) {
    super();
    this.usbmux = usbmux;
    this.backoffMinMs = options.backoffMinMs ?? 100;
    this.backoffMaxMs = options.backoffMaxMs ?? 2_000;
    this.usbOnly = options.usbOnly ?? true;
  }

  /** Starts listening. @throws KitError `usbmux/unavailable` and the other usbmux codes. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.connectOnce();
  }

  /** Stops listening; no more events. */
  stop(): void {
    this.stopped = true;
    this.stopController.abort();
    this.handle?.close();
    this.handle = undefined;
  }

  /** The devices attached now. */
  devices(): UsbmuxDevice[] {
    return [...this.byUdid.values()];
  }

  /** The attached device with this UDID, if any. */
  get(udid: string): UsbmuxDevice | undefined {
    return this.byUdid.get(udid);
  }

  /**
   * Resolves with the device once `udid` is attached (at once when it already is).
   * @throws KitError `device/timeout` when it does not attach within `timeoutMs` (default 60 s).
   */
  waitFor(udid: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<UsbmuxDevice> {
    const present = this.byUdid.get(udid);
    if (present !== undefined) return Promise.resolve(present);
    return this.waitUntil((d) => d.udid === udid, udid, options.timeoutMs ?? 60_000, options.signal);
  }

  /**
   * Resolves with the first `attached` device for which `match` is true.
   * @throws KitError `device/timeout` after `timeoutMs`, or when `signal` aborts.
   */
  waitUntil(
    match: (d: UsbmuxDevice) => boolean,
    udid: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<UsbmuxDevice> {
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('attached', onAttached);
        signal?.removeEventListener('abort', onAbort);
      };
      const onAttached = (d: UsbmuxDevice): void => {
        if (!match(d)) return;
        cleanup();
        resolve(d);
      };
      const onAbort = (): void => {
        cleanup();
        reject(new KitError('device/timeout', `stopped waiting for ${udid}`, { udid }));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new KitError('device/timeout', `${udid} did not attach within ${timeoutMs} ms`, {
            udid,
            details: { timeoutMs },
          }),
        );
      }, timeoutMs);
      this.on('attached', onAttached);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private add(device: UsbmuxDevice): void {
    if (this.usbOnly && device.connectionType !== 'USB') return;
    const known = this.byUdid.get(device.udid);
    if (known !== undefined && known.deviceId === device.deviceId) return;
    if (known !== undefined) this.remove(known.deviceId);
    this.byUdid.set(device.udid, device);
    this.udidById.set(device.deviceId, device.udid);
    log.debug('attached', { udid: device.udid, deviceId: device.deviceId });
    this.emit('attached', device);
  }

  private remove(deviceId: number): void {
    const udid = this.udidById.get(deviceId);
    if (udid === undefined) return;
    this.udidById.delete(deviceId);
    const device = this.byUdid.get(udid);
    if (device === undefined || device.deviceId !== deviceId) return;
    this.byUdid.delete(udid);
    log.debug('detached', { udid, deviceId });
    this.emit('detached', device);
  }

  private onEvent = (event: UsbmuxEvent): void => {
    if (this.stopped) return;
    if (event.type === 'attached') this.add(event.device);
    else if (event.type === 'detached') this.remove(event.deviceId);
    else {
      const udid = this.udidById.get(event.deviceId);
      const device = udid !== undefined ? this.byUdid.get(udid) : undefined;
      if (device !== undefined) this.emit('paired', device);
    }
  };

  /** Listen, then list and reconcile (devices gone meanwhile → detached; new ones → attached). */
  private async connectOnce(): Promise<void> {
    const handle = await this.usbmux.listen(this.onEvent);
    if (this.stopped) {
      handle.close();
      return;
    }
    this.handle = handle;
    try {
      const listed = await this.usbmux.listDevices();
      const present = new Set(listed.map((d) => d.udid));
      for (const d of [...this.byUdid.values()]) {
        if (!present.has(d.udid)) this.remove(d.deviceId);
      }
      for (const d of listed) this.add(d);
    } catch (err) {
      handle.close();
      throw err;
    }
    void handle.closed.then((err) => {
      if (err !== undefined && !this.stopped && this.handle === handle) void this.reconnect(err);
    });
  }

  private async reconnect(err: KitError): Promise<void> {
    this.handle = undefined;
    log.info('usbmuxd connection lost; reconnecting', { error: err });
    this.emit('disconnected', err);
    let delay = this.backoffMinMs;
    while (!this.stopped) {
      await sleep(delay, undefined, { signal: this.stopController.signal }).catch(() => undefined);
      if (this.stopped) return;
      try {
        await this.connectOnce();
        if (!this.stopped) this.emit('reconnected');
        return;
      } catch (e) {
        log.debug('usbmuxd still unavailable', { error: e });
        delay = Math.min(delay * 2, this.backoffMaxMs);
      }
    }
  }
}
