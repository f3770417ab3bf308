/**
 * The USB backend seam: what the station needs from a USB stack (enumerate with bus and port path,
 * string descriptors, control transfers, hotplug), one implementation over the `usb` npm package
 * (node-usb 3.x: a napi-rs module over the Rust `nusb` crate, native code shipped in optional
 * `@node-usb/usb-<platform>` packages, no libusb), and the table that turns that stack's failures
 * into error codes.
 *
 * The package is loaded lazily, the first time USB is used: when its native part is missing or
 * cannot load, the rest of the station never notices, and {@link usbFailureCode} says `usb/not-loaded`.
 */
import { KitError, type ErrorCode } from '../errors.ts';
import { APPLE_VENDOR_ID } from './usb-ids.ts';

/** One device on the bus, as a backend enumerates it. */
export interface UsbDeviceInfo {
  /** The backend's id for this attachment; detach events name it. */
  handle: string;
  vendorId: number;
  productId: number;
  /** Bus number (Linux busnum; macOS the top byte of the IOKit locationID, like libusb). */
  busNumber: number;
  /** Device address on its bus. */
  address: number;
  /** Port numbers from the root hub down (`[2, 3]` = root port 2, then port 3 of that hub); empty for a root hub. */
  portNumbers: readonly number[];
  /** bDeviceClass (9 = hub). */
  deviceClass: number;
  /** The iSerialNumber string when the OS caches it (sysfs, IOKit), so reading it needs no open; else undefined. */
  serialNumber?: string | undefined;
  /** The product string when cached (`iPad`, `Apple Mobile Device (Recovery Mode)`), else undefined. */
  productName?: string | undefined;
}

/** A USB control transfer's setup packet, field for field as on the wire (USB 2.0 §9.3). */
export interface UsbSetup {
  bmRequestType: number;
  bRequest: number;
  wValue: number;
  wIndex: number;
}

/** How to open a device for commands: configuration, then interfaces to claim with their alternate setting. */
export interface UsbOpenPlan {
  configuration: number;
  interfaces: readonly { number: number; alternate: number }[];
}

/** An opened device. Close it when done. */
export interface UsbDeviceSession {
  /** Sends a host-to-device control transfer; resolves to the bytes written. */
  controlTransferOut(setup: UsbSetup, data: Uint8Array, timeoutMs: number): Promise<number>;
  /** Runs a device-to-host control transfer of at most `length` bytes. */
  controlTransferIn(setup: UsbSetup, length: number, timeoutMs: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** A hotplug event from a backend. */
export type UsbBackendEvent = { type: 'attached'; device: UsbDeviceInfo } | { type: 'detached'; handle: string };

/**
 * What the USB layer needs from a USB stack. Implementations: {@link loadNodeUsbBackend} (the
 * real `usb` package) and the recording fake of the tests (`test/helpers/usb-fake.ts`).
 * Methods reject with the stack's own errors; the layer maps them with {@link usbFailureCode}.
 */
export interface UsbBackend {
  /** A short name for status lines (`usb 3.1.0 (nusb)`, `fake`). */
  readonly name: string;
  /** Every device on every bus (hubs included: they give the port map its hub numbers). */
  list(): Promise<UsbDeviceInfo[]>;
  /** The iSerialNumber string descriptor of a listed device, reading it from the device if the OS has not cached it. */
  serialNumber(handle: string): Promise<string | null>;
  /** Opens a listed device, selects the configuration and claims the interfaces of `plan`. */
  open(handle: string, plan: UsbOpenPlan): Promise<UsbDeviceSession>;
  /** Starts hotplug notifications; resolves to a function that stops them. */
  watch(onEvent: (event: UsbBackendEvent) => void): Promise<() => Promise<void>>;
}

/** Why USB is off, in the station's words. */
export interface UsbUnavailableReason {
  code: ErrorCode;
  message: string;
}

/**
 * The failure table at the USB edge: a USB stack's error (nusb's messages through node-usb,
 * libusb names, errno names, Windows and IOKit wording) → a station code.
 * - `usb/permission-denied`: the OS refuses access (udev rules, macOS privacy, a sandbox)
 * - `usb/unavailable`: no USB bus to see (a container without `/sys/bus/usb`, no host controller)
 * - `usb/device-gone`: the device left while we talked to it
 * - `usb/transfer-failed`: anything else a transfer or an open hit
 */
export function usbFailureCode(err: unknown): ErrorCode {
  if (err instanceof KitError) return err.code;
  const text = err instanceof Error ? `${err.message} ${String((err as { code?: unknown }).code ?? '')}` : String(err);
  if (
    /LIBUSB_ERROR_ACCESS|permission denied|EACCES|EPERM|os error (1|13)\b|access (is )?denied|not privileged|kIOReturnNotPrivileged/i.test(
      text,
    )
  )
    return 'usb/permission-denied';
  if (
    /\/sys\/bus\/usb\/devices\/? not found|LIBUSB_ERROR_NOT_SUPPORTED|no usb bus|failed to open \/sys\/bus\/usb|watch devices error/i.test(
      text,
    )
  )
    return 'usb/unavailable';
  if (
    /LIBUSB_ERROR_NO_DEVICE|no such device|ENODEV|os error 19\b|disconnected|kIOReturnNoDevice|not found by registry id/i.test(
      text,
    )
  )
    return 'usb/device-gone';
  return 'usb/transfer-failed';
}

/** Wraps a USB stack error into a KitError through {@link usbFailureCode}. */
export function usbError(err: unknown, doing: string): KitError {
  if (err instanceof KitError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new KitError(usbFailureCode(err), `${doing}: ${message}`, { cause: err });
}

/** The native API of node-usb 3.x that this backend uses (a subset of `usb/index.d.ts`). */
interface NativeDevice {
  vendorId: number;
  productId: number;
  deviceClass: number;
  bus: string;
  address: number;
  ports: number[];
  readonly handle: string;
  readonly serialNumber: string | null;
  readonly productName: string | null;
  open(): Promise<void>;
  close(): Promise<void>;
  selectConfiguration(configurationValue: number): Promise<void>;
  claimInterface(interfaceNumber: number): Promise<void>;
  selectAlternateInterface(interfaceNumber: number, alternateSetting: number): Promise<void>;
  nativeControlTransferIn(setup: NativeSetup, timeout: number, length: number): Promise<Uint8Array | null>;
  nativeControlTransferOut(setup: NativeSetup, timeout: number, data?: Uint8Array | null): Promise<number>;
}
interface NativeSetup {
  requestType: 'standard' | 'class' | 'vendor';
  recipient: 'device' | 'interface' | 'endpoint' | 'other';
  request: number;
  value: number;
  index: number;
}
interface NativeEmitter {
  addAttach(callback: (device: NativeDevice) => void): Promise<void>;
  removeAttach(): Promise<void>;
  addDetach(callback: (handle: string) => void): Promise<void>;
  removeDetach(): Promise<void>;
}
interface NativeModule {
  nativeGetDevices(): Promise<NativeDevice[]>;
  Emitter: new () => NativeEmitter;
}

/**
 * node-usb's setup object from raw setup bytes: bmRequestType bits 5–6 are the type (standard,
 * class, vendor), bits 0–4 the recipient; the direction bit is implied by In/Out.
 */
export function nativeSetupOf(setup: UsbSetup): NativeSetup {
  const types = ['standard', 'class', 'vendor'] as const;
  const recipients = ['device', 'interface', 'endpoint', 'other'] as const;
  const requestType = types[(setup.bmRequestType >> 5) & 0x3];
  const recipient = recipients[setup.bmRequestType & 0x1f];
  if (requestType === undefined || recipient === undefined) {
    throw new KitError('bug', `unsupported bmRequestType 0x${setup.bmRequestType.toString(16)}`);
  }
  return { requestType, recipient, request: setup.bRequest, value: setup.wValue, index: setup.wIndex };
}

/**
 * The bus number from node-usb's `bus` string: nusb writes Linux's busnum in decimal (`001`) and
 * macOS's controller byte in hex (`14` = 0x14 = 20, as libusb's darwin backend numbers it).
 * Windows bus ids are not numbers; they get an index among the buses seen, in sorted order.
 */
export function busNumberOf(bus: string, platform: NodeJS.Platform, seen: readonly string[] = []): number {
  if (platform === 'darwin' && /^[0-9a-f]+$/i.test(bus)) return Number.parseInt(bus, 16);
  if (/^[0-9]+$/.test(bus)) return Number.parseInt(bus, 10);
  const sorted = [...new Set([...seen, bus])].sort();
  return 1000 + sorted.indexOf(bus);
}

/** Reads a getter of a native device that may throw (it opens the device when the OS has no cached copy). */
function cached(read: () => string | null): string | undefined {
  try {
    return read() ?? undefined;
  } catch {
    return undefined;
  }
}

/**
 * Loads the real backend over the `usb` package. Rejects (with the loader's error) when the
 * package or its native part for this platform cannot load: the caller reports `usb/not-loaded`.
 */
export async function loadNodeUsbBackend(platform: NodeJS.Platform = process.platform): Promise<UsbBackend> {
  const mod = (await import('usb/index.js')) as unknown as NativeModule;
  if (typeof mod.nativeGetDevices !== 'function' || typeof mod.Emitter !== 'function') {
    throw new Error('the usb package has no nativeGetDevices/Emitter: not node-usb 3.x');
  }
  const known = new Map<string, NativeDevice>();
  const buses: string[] = [];
  const infoOf = (d: NativeDevice): UsbDeviceInfo => {
    if (!buses.includes(d.bus)) buses.push(d.bus);
    known.set(d.handle, d);
    // Strings of Apple devices only, and only where the OS caches them (nusb reads Linux sysfs and
    // macOS IOKit properties without opening the device); Windows would open every device.
    const apple = d.vendorId === APPLE_VENDOR_ID && platform !== 'win32';
    return {
      handle: d.handle,
      vendorId: d.vendorId,
      productId: d.productId,
      busNumber: busNumberOf(d.bus, platform, buses),
      address: d.address,
      portNumbers: [...d.ports],
      deviceClass: d.deviceClass,
      serialNumber: apple ? cached(() => d.serialNumber) : undefined,
      productName: apple ? cached(() => d.productName) : undefined,
    };
  };
  const device = (handle: string): NativeDevice => {
    const d = known.get(handle);
    if (d === undefined) throw new KitError('usb/device-gone', `USB device ${handle} is no longer listed`);
    return d;
  };
  return {
    name: 'usb (node-usb 3, nusb)',
    async list() {
      const devices = await mod.nativeGetDevices();
      known.clear();
      return devices.map(infoOf);
    },
    async serialNumber(handle) {
      const d = device(handle);
      return d.serialNumber;
    },
    async open(handle, plan) {
      const d = device(handle);
      await d.open();
      try {
        await d.selectConfiguration(plan.configuration);
        for (const i of plan.interfaces) {
          await d.claimInterface(i.number);
          if (i.alternate !== 0) await d.selectAlternateInterface(i.number, i.alternate);
        }
      } catch (err) {
        await d.close().catch(() => undefined);
        throw err;
      }
      return {
        async controlTransferOut(setup, data, timeoutMs) {
          return d.nativeControlTransferOut(nativeSetupOf(setup), timeoutMs, data);
        },
        async controlTransferIn(setup, length, timeoutMs) {
          return (await d.nativeControlTransferIn(nativeSetupOf(setup), timeoutMs, length)) ?? new Uint8Array(0);
        },
        async close() {
          await d.close();
        },
      };
    },
    async watch(onEvent) {
      const emitter = new mod.Emitter();
      await emitter.addAttach((d) => onEvent({ type: 'attached', device: infoOf(d) }));
      await emitter.addDetach((handle) => {
        onEvent({ type: 'detached', handle });
        known.delete(handle);
      });
      return async () => {
        await emitter.removeAttach();
        await emitter.removeDetach();
      };
    },
  };
}
