/**
 * diagnostics_relay (protocols.md §7.2): restart, shut down or sleep the device; and waiting for a
 * restarted device to come back (§7.3).
 */
import { KitError } from '../../errors.ts';
import { createLogger } from '../../log.ts';
import type { PlistDict } from '../../plist/index.ts';
import type { LockdownClient } from '../lockdown.ts';
import type { ServiceConnection } from '../service.ts';
import type { UsbmuxDevice } from '../usbmux.ts';
import type { DeviceWatcher } from '../watcher.ts';

/** The lockdown service name. */
export const DIAGNOSTICS_SERVICE = 'com.apple.mobile.diagnostics_relay';

const log = createLogger('device/diagnostics');

/** Flags of Restart and Shutdown. */
export interface PowerOptions {
  /** Act only once this connection is closed (default true, like idevicediagnostics and go-ios). */
  waitForDisconnect?: boolean;
  /** Show an "OK" dialog. */
  displayPass?: boolean;
  /** Show a "FAIL" dialog. */
  displayFail?: boolean;
}

/**
 * A diagnostics_relay connection. Lifecycle: {@link DiagnosticsClient.start} → one action →
 * {@link goodbye} (which closes; with `waitForDisconnect` the device acts then).
 * Errors: `diagnostics/failed` when the device answers `Failure`/`UnknownRequest`, plus the
 * lockdown StartService and channel errors.
 */
export class DiagnosticsClient {
  private readonly conn: ServiceConnection;
  private readonly udid: string;

  constructor(conn: ServiceConnection, udid: string) {
    this.conn = conn;
    this.udid = udid;
  }

  /** Starts the service through a lockdown client that is in a session. */
  static async start(lockdown: LockdownClient, options: { escrowBag?: Buffer } = {}): Promise<DiagnosticsClient> {
    const conn = await lockdown.startService(
      DIAGNOSTICS_SERVICE,
      options.escrowBag !== undefined ? { escrowBag: options.escrowBag } : {},
    );
    return new DiagnosticsClient(conn, lockdown.udid);
  }

  private async call(request: string, extra: PlistDict = {}): Promise<PlistDict> {
    const reply = await this.conn.request({ Request: request, ...extra });
    const status = reply.Status;
    if (status !== 'Success') {
      throw new KitError(
        'diagnostics/failed',
        `diagnostics_relay ${request} answered ${typeof status === 'string' ? status : 'no Status'}`,
        {
          udid: this.udid,
          details: { request, status: typeof status === 'string' ? status : null },
        },
      );
    }
    return reply;
  }

  private power(request: 'Restart' | 'Shutdown', options: PowerOptions): Promise<PlistDict> {
    const flags: PlistDict = { WaitForDisconnect: options.waitForDisconnect ?? true };
    if (options.displayPass !== undefined) flags.DisplayPass = options.displayPass;
    if (options.displayFail !== undefined) flags.DisplayFail = options.displayFail;
    log.info(request === 'Restart' ? 'restart requested' : 'shutdown requested', { udid: this.udid });
    return this.call(request, flags);
  }

  /** Asks the device to restart. */
  async restart(options: PowerOptions = {}): Promise<void> {
    await this.power('Restart', options);
  }

  /** Asks the device to shut down. */
  async shutdown(options: PowerOptions = {}): Promise<void> {
    await this.power('Shutdown', options);
  }

  /** Puts the device to sleep. */
  async sleep(): Promise<void> {
    await this.call('Sleep');
  }

  /** Ends the conversation and closes the connection (a device that already hung up is fine). */
  async goodbye(): Promise<void> {
    try {
      await this.call('Goodbye');
    } catch (err) {
      if (!(err instanceof KitError && (err.code === 'device/connection-lost' || err.code === 'device/timeout')))
        throw err;
    } finally {
      this.conn.close();
    }
  }

  /** Closes without Goodbye. */
  close(): void {
    this.conn.close();
  }
}

/**
 * Resolves when `udid` is attached again with a DeviceID other than `previousDeviceId` (default:
 * its DeviceID when called) — i.e. it went away and came back (§7.3). Call it before triggering
 * the restart, or pass the old DeviceID; a missed `Detached` does not matter.
 * @throws KitError `device/timeout` when it does not return within `timeoutMs` (default 180 s).
 */
export function waitForReturn(
  watcher: DeviceWatcher,
  udid: string,
  options: { timeoutMs?: number; previousDeviceId?: number; signal?: AbortSignal } = {},
): Promise<UsbmuxDevice> {
  const before = options.previousDeviceId ?? watcher.get(udid)?.deviceId;
  const now = watcher.get(udid);
  if (now !== undefined && before !== undefined && now.deviceId !== before) return Promise.resolve(now);
  return watcher.waitUntil(
    (d) => d.udid === udid && d.deviceId !== before,
    udid,
    options.timeoutMs ?? 180_000,
    options.signal,
  );
}
