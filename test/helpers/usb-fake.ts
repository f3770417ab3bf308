/**
 * A recording fake {@link UsbBackend} for tests: a bus of devices given as data, hotplug driven by
 * the test (`plug`/`unplug`), every control transfer recorded with its setup fields and bytes,
 * GET_DESCRIPTOR(string) answered from each device's string table, and failures injected per
 * operation (`failList`, `failOpen`, `failTransfer`, `failLoad`).
 */
import type {
  UsbBackend,
  UsbBackendEvent,
  UsbDeviceInfo,
  UsbDeviceSession,
  UsbOpenPlan,
  UsbSetup,
} from '../../src/device/usb-backend.ts';

/** One fake device: what a backend lists, plus its string descriptors by index. */
export interface FakeUsbDevice extends UsbDeviceInfo {
  /** String descriptors by index (1 = nonces on recovery/DFU devices; the serial's index is `serialIndex`). */
  strings?: Record<number, string>;
  /** Whether the OS "caches" the serial (listed without opening); default true. */
  cachedSerial?: boolean;
  /** Serial string (iSerialNumber) when not cached. */
  serialString?: string;
}

/** One recorded control transfer. */
export interface RecordedTransfer {
  handle: string;
  direction: 'out' | 'in';
  setup: UsbSetup;
  /** Bytes sent (out) or the requested length (in). */
  data: Buffer | number;
  timeoutMs: number;
}

/** A recorded open. */
export interface RecordedOpen {
  handle: string;
  plan: UsbOpenPlan;
}

let nextHandle = 1;

/** A device on the fake bus; handle, class and strings default sensibly. */
export function fakeDevice(
  fields: Partial<FakeUsbDevice> & Pick<UsbDeviceInfo, 'productId' | 'busNumber' | 'portNumbers'>,
): FakeUsbDevice {
  return {
    handle: `fake-${nextHandle++}`,
    vendorId: 0x05ac,
    address: 2,
    deviceClass: 0,
    ...fields,
  };
}

/** A hub at a port path. */
export function fakeHub(busNumber: number, portNumbers: number[], address = 1): FakeUsbDevice {
  return fakeDevice({ vendorId: 0x2109, productId: 0x2817, deviceClass: 9, busNumber, portNumbers, address });
}

/** USB string descriptor bytes (bLength, 3, UTF-16LE). */
export function stringDescriptorBytes(text: string): Buffer {
  const body = Buffer.from(text, 'utf16le');
  return Buffer.concat([Buffer.from([body.length + 2, 3]), body]);
}

/** The fake backend. */
export class FakeUsbBackend implements UsbBackend {
  readonly name = 'fake';
  readonly devices: FakeUsbDevice[];
  readonly transfers: RecordedTransfer[] = [];
  readonly opens: RecordedOpen[] = [];
  readonly closes: string[] = [];
  /** Thrown by `list()` when set. */
  failList: Error | undefined;
  /** Thrown by `open()` when set. */
  failOpen: Error | undefined;
  /** Thrown by `watch()` when set. */
  failWatch: Error | undefined;
  /** Thrown by a control transfer when it returns an error for that transfer. */
  failTransfer: ((t: RecordedTransfer) => Error | undefined) | undefined;
  private listener: ((e: UsbBackendEvent) => void) | undefined;
  watching = false;

  constructor(devices: FakeUsbDevice[] = []) {
    this.devices = [...devices];
  }

  async list(): Promise<UsbDeviceInfo[]> {
    if (this.failList !== undefined) throw this.failList;
    return this.devices.map((d) => this.info(d));
  }

  private info(d: FakeUsbDevice): UsbDeviceInfo {
    const { strings: _s, cachedSerial, serialString: _x, ...info } = d;
    return cachedSerial === false ? { ...info, serialNumber: undefined } : info;
  }

  private device(handle: string): FakeUsbDevice {
    const d = this.devices.find((x) => x.handle === handle);
    if (d === undefined) throw new Error('LIBUSB_ERROR_NO_DEVICE: no such device');
    return d;
  }

  async serialNumber(handle: string): Promise<string | null> {
    const d = this.device(handle);
    if (this.failOpen !== undefined) throw this.failOpen;
    return d.serialString ?? d.serialNumber ?? null;
  }

  async open(handle: string, plan: UsbOpenPlan): Promise<UsbDeviceSession> {
    const d = this.device(handle);
    if (this.failOpen !== undefined) throw this.failOpen;
    this.opens.push({ handle, plan });
    const record = (t: RecordedTransfer): void => {
      this.transfers.push(t);
      const err = this.failTransfer?.(t);
      if (err !== undefined) throw err;
    };
    return {
      controlTransferOut: async (setup, data, timeoutMs) => {
        record({ handle, direction: 'out', setup: { ...setup }, data: Buffer.from(data), timeoutMs });
        return data.length;
      },
      controlTransferIn: async (setup, length, timeoutMs) => {
        record({ handle, direction: 'in', setup: { ...setup }, data: length, timeoutMs });
        if (setup.bmRequestType === 0x80 && setup.bRequest === 6 && setup.wValue >> 8 === 3) {
          const text = d.strings?.[setup.wValue & 0xff];
          if (text === undefined) throw new Error('LIBUSB_ERROR_PIPE: stall');
          return stringDescriptorBytes(text).subarray(0, length);
        }
        return new Uint8Array(0);
      },
      close: async () => {
        this.closes.push(handle);
      },
    };
  }

  async watch(onEvent: (event: UsbBackendEvent) => void): Promise<() => Promise<void>> {
    if (this.failWatch !== undefined) throw this.failWatch;
    this.listener = onEvent;
    this.watching = true;
    return async () => {
      this.listener = undefined;
      this.watching = false;
    };
  }

  /** Puts a device on the bus and tells the watcher. */
  plug(d: FakeUsbDevice): void {
    this.devices.push(d);
    this.listener?.({ type: 'attached', device: this.info(d) });
  }

  /** Takes a device off the bus and tells the watcher. */
  unplug(handle: string): void {
    const i = this.devices.findIndex((x) => x.handle === handle);
    if (i >= 0) this.devices.splice(i, 1);
    this.listener?.({ type: 'detached', handle });
  }
}
