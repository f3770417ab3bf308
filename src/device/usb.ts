/**
 * The USB layer (issue #8; protocols.md §8): Apple devices as the USB bus shows them, including
 * the recovery and DFU devices usbmuxd never lists, the port each one is plugged into, hotplug
 * events, and the iBoot commands that take a device out of recovery mode.
 *
 * Lifecycle: `new UsbLayer()` → {@link UsbLayer.status} / {@link UsbLayer.snapshot} /
 * {@link UsbLayer.leaveRecovery} / {@link UsbLayer.watch} → {@link UsbLayer.close}. The `usb`
 * package is loaded on first use; when it cannot load, or the OS gives no USB access, every call
 * fails with one of `usb/not-loaded`, `usb/unavailable`, `usb/permission-denied` and
 * {@link UsbLayer.status} says which, so the rest of the station keeps working without port
 * numbers and recovery detection.
 */
import { EventEmitter } from 'node:events';
import { KitError } from '../errors.ts';
import { createLogger } from '../log.ts';
import {
  loadNodeUsbBackend,
  usbError,
  usbFailureCode,
  type UsbBackend,
  type UsbBackendEvent,
  type UsbDeviceInfo,
  type UsbDeviceSession,
  type UsbOpenPlan,
  type UsbSetup,
  type UsbUnavailableReason,
} from './usb-backend.ts';
import {
  APPLE_VENDOR_ID,
  formatEcid,
  hasIbootSerial,
  parseIbootString,
  usbModeOf,
  type IbootInfo,
  type UsbMode,
} from './usb-ids.ts';
import {
  PortMap,
  locate,
  numberHubs,
  parentHubIdOf,
  portPathOf,
  usbmuxLocationId,
  type HubInfo,
  type KnownDeviceIdentity,
  type PortLocation,
} from './usb-ports.ts';
import { sanitizeUdid, type UsbmuxDevice } from './usbmux.ts';

export * from './usb-ids.ts';
export * from './usb-ports.ts';
export {
  loadNodeUsbBackend,
  usbFailureCode,
  type UsbBackend,
  type UsbBackendEvent,
  type UsbDeviceInfo,
  type UsbDeviceSession,
  type UsbOpenPlan,
  type UsbSetup,
  type UsbUnavailableReason,
} from './usb-backend.ts';

const log = createLogger('device/usb');

/** libirecovery's and pymobiledevice3's USB timeout (`USB_TIMEOUT`, §8.2). */
export const USB_TIMEOUT_MS = 10_000;

/** Setup of an iBoot command (§8.2; libirecovery `irecv_send_command_raw`): host→device, vendor, device; bRequest 0. */
export const IBOOT_COMMAND_SETUP: Readonly<UsbSetup> = { bmRequestType: 0x40, bRequest: 0, wValue: 0, wIndex: 0 };

/** The iBoot commands that leave recovery mode and boot iOS (§8.2; irecovery `-n`), in order. */
export const LEAVE_RECOVERY_COMMANDS = ['setenv auto-boot true', 'saveenv', 'reboot'] as const;

/** One Apple device on the USB bus. */
export interface AppleUsbDevice {
  /** The backend's id for this attachment. */
  handle: string;
  mode: UsbMode;
  productId: number;
  /** USB product string when the OS has it cached. */
  productName: string | undefined;
  busNumber: number;
  address: number;
  portNumbers: readonly number[];
  /** `1-2.3` (bus-port.port…). */
  portPath: string;
  /** The id of the hub it hangs off ({@link HubInfo.id}). */
  parentHubId: string;
  /** The usbmuxd `LocationID` this place has on this platform; undefined where unknown (Windows). */
  locationId: number | undefined;
  /** Hub number, port and labels; undefined when not below a numbered hub. */
  location: PortLocation | undefined;
  /** The raw iSerialNumber string (normal mode: the UDID without hyphen; recovery/DFU: `CPID:… ECID:…`). */
  usbSerial: string | undefined;
  /** Normal mode: the UDID (usbmuxd's form of the USB serial). */
  udid: string | undefined;
  /** Recovery/DFU: the parsed serial string. */
  iboot: IbootInfo | undefined;
  /** Recovery/DFU: the ECID (lockdown's `UniqueChipID`). */
  ecid: bigint | undefined;
  /** Recovery/DFU: the chip id. */
  cpid: number | undefined;
  /** Recovery/DFU: the device's serial number (`SRNM`). */
  serialNumber: string | undefined;
  /** Set when the serial string could not be read (the device is still listed). */
  error?: { code: string; message: string };
}

/** Apple devices and the numbered hubs, from one enumeration. */
export interface UsbSnapshot {
  devices: AppleUsbDevice[];
  hubs: HubInfo[];
}

/** Whether the station can see USB, and why not. */
export type UsbStatus = { available: true; backend: string } | { available: false; reason: UsbUnavailableReason };

/** Result of {@link UsbLayer.leaveRecovery}. */
export interface LeaveRecoveryResult {
  ecid: bigint;
  /** The iBoot commands sent, in order. */
  commands: string[];
  /** Where the device was. */
  location: PortLocation | undefined;
}

/** Events of {@link UsbLayer.watch} (past tense, like the device watcher's). */
export interface UsbLayerEvents {
  usbAttached: [device: AppleUsbDevice];
  usbDetached: [device: AppleUsbDevice];
}

/** Options of {@link UsbLayer}. */
export interface UsbLayerOptions {
  /** A backend to use as is (tests, demos). */
  backend?: UsbBackend | undefined;
  /** How to load the backend when none is given (default: the `usb` package). */
  load?: () => Promise<UsbBackend>;
  /** Decides the location-id formula (default `process.platform`). */
  platform?: NodeJS.Platform;
  /** Control-transfer timeout (default {@link USB_TIMEOUT_MS}). */
  timeoutMs?: number;
}

/** NUL-terminated ASCII bytes of an iBoot command (§8.2: < 256 bytes). @throws KitError `usage/invalid-argument`. */
export function encodeIbootCommand(command: string): Buffer {
  if (!/^[\x20-\x7e]*$/.test(command) || command.length === 0 || command.length >= 0x100) {
    throw new KitError(
      'usage/invalid-argument',
      `not a valid iBoot command (printable ASCII, 1–255 bytes): ${command}`,
    );
  }
  return Buffer.from(`${command}\0`, 'ascii');
}

/** How libirecovery opens a recovery/DFU device: configuration 1, interface 0 alt 0, and for recovery ids above 0x1281 interface 1 alt 1. */
export function recoveryOpenPlan(productId: number): UsbOpenPlan {
  const interfaces = [{ number: 0, alternate: 0 }];
  if (usbModeOf(productId) === 'recovery' && productId > 0x1281) interfaces.push({ number: 1, alternate: 1 });
  return { configuration: 1, interfaces };
}

/** GET_DESCRIPTOR(string) setup (`0x80/6`, `wValue = (3 << 8) | index`, `wIndex` = language). */
export function stringDescriptorSetup(index: number, langId = 0x0409): UsbSetup {
  return { bmRequestType: 0x80, bRequest: 6, wValue: (3 << 8) | index, wIndex: langId };
}

/** Decodes a USB string descriptor (bLength, bDescriptorType 3, UTF-16LE). @throws KitError `usb/transfer-failed`. */
export function decodeStringDescriptor(bytes: Uint8Array): string {
  const length = Math.min(bytes[0] ?? 0, bytes.length);
  if (length < 2 || bytes[1] !== 3) throw new KitError('usb/transfer-failed', 'not a USB string descriptor');
  return Buffer.from(bytes.subarray(2, length - ((length - 2) % 2))).toString('utf16le');
}

/** The Apple device record for one enumerated device. */
function describe(
  info: UsbDeviceInfo,
  serial: string | undefined,
  hubs: readonly HubInfo[],
  platform: NodeJS.Platform,
): AppleUsbDevice {
  const mode = usbModeOf(info.productId);
  const iboot = serial !== undefined && hasIbootSerial(mode) ? parseIbootString(serial) : undefined;
  return {
    handle: info.handle,
    mode,
    productId: info.productId,
    productName: info.productName,
    busNumber: info.busNumber,
    address: info.address,
    portNumbers: info.portNumbers,
    portPath: portPathOf(info.busNumber, info.portNumbers),
    parentHubId: parentHubIdOf(info.busNumber, info.portNumbers),
    locationId: usbmuxLocationId(info, platform),
    location: locate(info, hubs),
    usbSerial: serial,
    udid: mode === 'normal' && serial !== undefined && serial !== '' ? sanitizeUdid(serial) : undefined,
    iboot,
    ecid: iboot?.ecid,
    cpid: iboot?.cpid,
    serialNumber: iboot?.serialNumber,
  };
}

/**
 * The USB layer. One per station; see the file comment for the lifecycle and the error codes.
 * Events (after {@link watch}): `usbAttached`, `usbDetached` with the {@link AppleUsbDevice}.
 */
export class UsbLayer extends EventEmitter<UsbLayerEvents> {
  private readonly platform: NodeJS.Platform;
  private readonly timeoutMs: number;
  private readonly load: () => Promise<UsbBackend>;
  private loading: Promise<UsbBackend> | undefined;
  private readonly known = new Map<string, AppleUsbDevice>();
  private stopWatching: (() => Promise<void>) | undefined;

  constructor(options: UsbLayerOptions = {}) {
    super();
    this.platform = options.platform ?? process.platform;
    this.timeoutMs = options.timeoutMs ?? USB_TIMEOUT_MS;
    const given = options.backend;
    this.load =
      given !== undefined ? () => Promise.resolve(given) : (options.load ?? (() => loadNodeUsbBackend(this.platform)));
  }

  /** The backend, loaded once. @throws KitError `usb/not-loaded` with the loader's reason. */
  async backend(): Promise<UsbBackend> {
    this.loading ??= this.load().catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      throw new KitError('usb/not-loaded', `the usb package could not load: ${message.split('\n')[0] ?? message}`, {
        cause: err,
      });
    });
    return this.loading;
  }

  /** Whether USB works here: loads the backend and enumerates once. Never throws. */
  async status(): Promise<UsbStatus> {
    try {
      const backend = await this.backend();
      await this.list(backend);
      return { available: true, backend: backend.name };
    } catch (err) {
      const e = err instanceof KitError ? err : usbError(err, 'USB enumeration');
      return { available: false, reason: { code: e.code, message: e.message } };
    }
  }

  private async list(backend: UsbBackend): Promise<UsbDeviceInfo[]> {
    try {
      return await backend.list();
    } catch (err) {
      throw usbError(err, 'USB enumeration failed');
    }
  }

  /**
   * Enumerates: every Apple device with its mode, port path, hub and port, usbmuxd location id, and
   * for recovery/DFU devices the parsed serial string (ECID, CPID, serial number …). A serial string
   * that cannot be read leaves the device listed with `error`.
   * @throws KitError `usb/not-loaded`, `usb/unavailable`, `usb/permission-denied`.
   */
  async snapshot(): Promise<UsbSnapshot> {
    const backend = await this.backend();
    const all = await this.list(backend);
    const appleInfos = all.filter((d) => d.vendorId === APPLE_VENDOR_ID);
    const hubs = numberHubs(all, appleInfos);
    const devices: AppleUsbDevice[] = [];
    for (const info of appleInfos) {
      let serial = info.serialNumber;
      let error: AppleUsbDevice['error'];
      if (serial === undefined && hasIbootSerial(usbModeOf(info.productId))) {
        try {
          serial = (await backend.serialNumber(info.handle)) ?? undefined;
        } catch (err) {
          const e = usbError(err, `reading the serial string of ${portPathOf(info.busNumber, info.portNumbers)}`);
          error = { code: e.code, message: e.message };
          log.warn('serial string unreadable', { code: e.code, path: portPathOf(info.busNumber, info.portNumbers) });
        }
      }
      const device = describe(info, serial, hubs, this.platform);
      if (error !== undefined) device.error = error;
      devices.push(device);
      this.known.set(device.handle, device);
    }
    return { devices, hubs };
  }

  /** The Apple devices of {@link snapshot}. */
  async devices(): Promise<AppleUsbDevice[]> {
    return (await this.snapshot()).devices;
  }

  /**
   * The port map for usbmuxd's devices (matched by USB serial = UDID, else by location id) and the
   * remembered identities (recovery/DFU devices matched by ECID or serial number).
   * @throws KitError like {@link snapshot}.
   */
  async portMap(usbmux: readonly UsbmuxDevice[] = [], known: readonly KnownDeviceIdentity[] = []): Promise<PortMap> {
    const snap = await this.snapshot();
    return new PortMap(snap.devices, snap.hubs, usbmux, known);
  }

  private async find(ecid: bigint): Promise<AppleUsbDevice> {
    const device = (await this.devices()).find((d) => d.ecid === ecid);
    if (device === undefined) {
      throw new KitError(
        'usb/not-found',
        `no device in recovery or DFU mode with ECID ${formatEcid(ecid)} on the USB bus`,
      );
    }
    return device;
  }

  private async openDevice(device: AppleUsbDevice): Promise<UsbDeviceSession> {
    const backend = await this.backend();
    try {
      return await backend.open(device.handle, recoveryOpenPlan(device.productId));
    } catch (err) {
      throw usbError(err, `opening ${device.portPath} (${formatEcid(device.ecid ?? 0n)})`);
    }
  }

  /** Sends one iBoot command (§8.2): a vendor control transfer carrying the NUL-terminated text. */
  private async sendIbootCommand(session: UsbDeviceSession, command: string): Promise<void> {
    const data = encodeIbootCommand(command);
    try {
      await session.controlTransferOut(IBOOT_COMMAND_SETUP, data, this.timeoutMs);
    } catch (err) {
      throw usbError(err, `iBoot command '${command}'`);
    }
  }

  /**
   * Takes a device out of recovery mode (§8.2): `setenv auto-boot true`, `saveenv`, `reboot`, each
   * a control transfer 0x40/0 with wValue 0, wIndex 0 and the NUL-terminated command. The device
   * then boots iOS and comes back through usbmuxd. An error on `reboot` is expected (the device
   * leaves the bus mid-transfer) and ignored.
   * @throws KitError `usb/not-found` (exit 3) no such ECID on the bus; `device/wrong-mode` for a DFU
   * device (SecureROM takes no iBoot commands: it needs a restore); `usb/permission-denied`,
   * `usb/transfer-failed`, `usb/device-gone`; the codes of {@link snapshot}.
   */
  async leaveRecovery(ecid: bigint): Promise<LeaveRecoveryResult> {
    const device = await this.find(ecid);
    if (device.mode !== 'recovery') {
      throw new KitError(
        'device/wrong-mode',
        `the device with ECID ${formatEcid(ecid)} is in ${device.mode} mode, not recovery mode: only iBoot takes the commands that boot iOS (a DFU device needs a restore)`,
      );
    }
    const session = await this.openDevice(device);
    const sent: string[] = [];
    try {
      for (const command of LEAVE_RECOVERY_COMMANDS) {
        try {
          await this.sendIbootCommand(session, command);
        } catch (err) {
          if (command !== 'reboot') throw err;
          log.info('reboot ended with a USB error (the device is leaving)', { code: usbFailureCode(err) });
        }
        sent.push(command);
      }
    } finally {
      await session.close().catch(() => undefined);
    }
    log.info('recovery mode left', { ecid: formatEcid(ecid), path: device.portPath });
    return { ecid, commands: sent, location: device.location };
  }

  /**
   * The ApNonce and SEP nonce of a recovery/DFU device (string descriptor 1: `NONC:… SNON:…`, §8.3).
   * @throws KitError like {@link leaveRecovery} (any recovery or DFU mode is accepted).
   */
  async readNonces(ecid: bigint): Promise<{ apNonce: Buffer | undefined; sepNonce: Buffer | undefined }> {
    const device = await this.find(ecid);
    const session = await this.openDevice(device);
    try {
      let bytes: Uint8Array;
      try {
        bytes = await session.controlTransferIn(stringDescriptorSetup(1), 255, this.timeoutMs);
      } catch (err) {
        throw usbError(err, 'reading the nonce string');
      }
      const info = parseIbootString(decodeStringDescriptor(bytes));
      return { apNonce: info.apNonce, sepNonce: info.sepNonce };
    } finally {
      await session.close().catch(() => undefined);
    }
  }

  /**
   * Starts hotplug events: `usbAttached` for each Apple device that appears (with its port, after
   * a fresh enumeration so hubs are numbered), `usbDetached` for each one that leaves.
   * @throws KitError `usb/not-loaded`, `usb/unavailable` (no hotplug source), `usb/permission-denied`.
   */
  async watch(): Promise<void> {
    if (this.stopWatching !== undefined) return;
    const backend = await this.backend();
    await this.snapshot().catch(() => undefined);
    try {
      this.stopWatching = await backend.watch((event) => {
        void this.onBackendEvent(event);
      });
    } catch (err) {
      throw usbError(err, 'USB hotplug');
    }
  }

  private async onBackendEvent(event: UsbBackendEvent): Promise<void> {
    if (event.type === 'detached') {
      const gone = this.known.get(event.handle);
      if (gone === undefined) return;
      this.known.delete(event.handle);
      this.emit('usbDetached', gone);
      return;
    }
    if (event.device.vendorId !== APPLE_VENDOR_ID) return;
    try {
      const snap = await this.snapshot();
      const device = snap.devices.find((d) => d.handle === event.device.handle);
      if (device !== undefined) this.emit('usbAttached', device);
    } catch (err) {
      log.warn('attached device could not be described', { code: usbFailureCode(err) });
    }
  }

  /** Stops hotplug events (the process can then exit). Safe to call more than once. */
  async close(): Promise<void> {
    const stop = this.stopWatching;
    this.stopWatching = undefined;
    if (stop !== undefined) await stop().catch(() => undefined);
  }
}
