/**
 * Where a device is plugged in: port paths, hub numbers people can read ("Hub 2 · Port 7",
 * ハブ2・ポート7), usbmuxd location ids, and the {@link PortMap} that joins usbmuxd's devices
 * (which say nothing about ports) with what the USB bus shows.
 *
 * usbmuxd `LocationID` per platform (protocols.md §1.8):
 * - Linux (libimobiledevice/usbmuxd `src/usb.c` `usb_get_location`): `(bus << 16) | address`.
 * - macOS (Apple's usbmuxd): the IOKit `locationID` of the USB device: the controller ("bus") in the
 *   top byte, then one 4-bit port number per tier from the root down, zero-filled. The recorded
 *   reply of Apple's usbmuxd in `fixtures/recorded/usbmuxlistdevicemessage.bin` carries
 *   339881984 = 0x14423000 (controller 0x14, ports 4 → 2 → 3). libusb's darwin backend takes
 *   `bus_number = locationID >> 24`; nusb (under node-usb 3) reports `bus_id` as that byte in hex
 *   and its port chain as those nibbles (`parse_location_id`), so the id can be rebuilt exactly.
 * - Windows (Apple Mobile Device Service): not documented; no location id is derived there and
 *   normal-mode devices are matched by their USB serial (the UDID) instead.
 */
import type { UsbmuxDevice } from './usbmux.ts';
import type { UsbDeviceInfo } from './usb-backend.ts';
import type { AppleUsbDevice } from './usb.ts';

/** A hub with its station-wide number. Number 0 is the computer itself (its root ports). */
export interface HubInfo {
  /** Stable id: the hub's own port path (`1-2`, `20-4.2`), or the bus (`1`) for the computer's root ports. */
  id: string;
  /** 1, 2, … by bus then port path; 0 for the computer's root ports. */
  number: number;
  busNumber: number;
  /** The hub's port path from the root (empty for the root). */
  portNumbers: readonly number[];
}

/** Words for a port, in both languages. */
export interface PortLabel {
  ja: string;
  en: string;
}

/** Where one device is plugged in. */
export interface PortLocation {
  /** Hub number (0 = a port of the computer itself). */
  hub: number;
  /** Port number on that hub. */
  port: number;
  /** Linux-style port path: `bus-port.port.port` (`1-2.3`). */
  path: string;
  /** The hub's id ({@link HubInfo.id}), for per-hub limits. */
  hubId: string;
  label: PortLabel;
}

/** Linux-style port path: `1-2.3` (bus 1, root port 2, port 3 of the hub there); just the bus for a root hub. */
export function portPathOf(busNumber: number, portNumbers: readonly number[]): string {
  return portNumbers.length === 0 ? String(busNumber) : `${busNumber}-${portNumbers.join('.')}`;
}

/** The id of the hub a device hangs off: its parent's port path (the bus for root ports). */
export function parentHubIdOf(busNumber: number, portNumbers: readonly number[]): string {
  return portPathOf(busNumber, portNumbers.slice(0, -1));
}

/** The label of a port (`ハブ2・ポート7` / `Hub 2 · Port 7`; hub 0 is the computer: `本体・ポート3` / `Computer · Port 3`). */
export function portLabel(hub: number, port: number): PortLabel {
  return hub === 0
    ? { ja: `本体・ポート${port}`, en: `Computer · Port ${port}` }
    : { ja: `ハブ${hub}・ポート${port}`, en: `Hub ${hub} · Port ${port}` };
}

/**
 * The `LocationID` usbmuxd reports for a device at this place on this platform (see the file
 * comment); undefined where it cannot be derived (Windows; macOS beyond 6 tiers or port > 15).
 */
export function usbmuxLocationId(
  device: Pick<UsbDeviceInfo, 'busNumber' | 'address' | 'portNumbers'>,
  platform: NodeJS.Platform,
): number | undefined {
  if (platform === 'win32') return undefined;
  if (platform === 'darwin') {
    const ports = device.portNumbers;
    if (device.busNumber > 0xff || ports.length > 6 || ports.some((p) => p < 1 || p > 15)) return undefined;
    let id = device.busNumber << 24;
    ports.forEach((p, i) => {
      id |= p << (20 - 4 * i);
    });
    return id >>> 0;
  }
  if (device.busNumber > 0xffff || device.address > 0xffff) return undefined;
  return ((device.busNumber << 16) | device.address) >>> 0;
}

function comparePaths(a: { busNumber: number; portNumbers: readonly number[] }, b: typeof a): number {
  if (a.busNumber !== b.busNumber) return a.busNumber - b.busNumber;
  const n = Math.min(a.portNumbers.length, b.portNumbers.length);
  for (let i = 0; i < n; i++) {
    const d = (a.portNumbers[i] ?? 0) - (b.portNumbers[i] ?? 0);
    if (d !== 0) return d;
  }
  return a.portNumbers.length - b.portNumbers.length;
}

/**
 * Numbers the hubs: every external hub on the bus (bDeviceClass 9 below a root port) and every
 * parent of an Apple device, sorted by bus then port path, gets 1, 2, …; the computer's root ports
 * are hub 0. Hubs, not iPads, decide the numbers, so plugging iPads in and out never renumbers.
 * A USB 3 hub shows up twice (its USB 2 and USB 3 halves on two buses); both halves get numbers.
 */
export function numberHubs(all: readonly UsbDeviceInfo[], apple: readonly UsbDeviceInfo[]): HubInfo[] {
  const found = new Map<string, { busNumber: number; portNumbers: readonly number[] }>();
  for (const d of all) {
    if (d.deviceClass === 9 && d.portNumbers.length > 0) {
      found.set(portPathOf(d.busNumber, d.portNumbers), { busNumber: d.busNumber, portNumbers: d.portNumbers });
    }
  }
  for (const d of apple) {
    const parent = d.portNumbers.slice(0, -1);
    if (parent.length > 0) found.set(portPathOf(d.busNumber, parent), { busNumber: d.busNumber, portNumbers: parent });
  }
  const external = [...found.entries()].sort(([, a], [, b]) => comparePaths(a, b));
  const hubs: HubInfo[] = external.map(([id, h], i) => ({ id, number: i + 1, ...h }));
  const roots = new Set(apple.filter((d) => d.portNumbers.length === 1).map((d) => d.busNumber));
  for (const bus of [...roots].sort((a, b) => a - b)) {
    hubs.push({ id: String(bus), number: 0, busNumber: bus, portNumbers: [] });
  }
  return hubs;
}

/** Where `device` is, given the numbered hubs; undefined for a root hub or a hub not numbered. */
export function locate(
  device: Pick<UsbDeviceInfo, 'busNumber' | 'portNumbers'>,
  hubs: readonly HubInfo[],
): PortLocation | undefined {
  const port = device.portNumbers.at(-1);
  if (port === undefined) return undefined;
  const hubId = parentHubIdOf(device.busNumber, device.portNumbers);
  const hub = hubs.find((h) => h.id === hubId);
  if (hub === undefined) return undefined;
  return {
    hub: hub.number,
    port,
    path: portPathOf(device.busNumber, device.portNumbers),
    hubId,
    label: portLabel(hub.number, port),
  };
}

/** What the station learned about a device in normal mode (lockdown), to find it again in recovery. */
export interface KnownDeviceIdentity {
  udid: string;
  /** Lockdown `UniqueChipID`. */
  ecid?: bigint | undefined;
  /** Lockdown `SerialNumber`. */
  serialNumber?: string | undefined;
}

/** One device of the port map. */
export interface PortMapEntry {
  /** UDID, when known (usbmuxd match in normal mode, or a remembered identity). */
  udid: string | undefined;
  ecid: bigint | undefined;
  device: AppleUsbDevice;
  location: PortLocation;
}

/**
 * Answers "which port is this device on?" for UDIDs (normal mode, through usbmuxd's location id or
 * the USB serial; recovery/DFU through a remembered ECID or serial number) and for ECIDs
 * (recovery/DFU devices carry it in their USB serial string). Immutable: build a new one per look.
 */
export class PortMap {
  /** Every numbered hub (hub 0 entries are the computer's root ports, one per bus). */
  readonly hubs: readonly HubInfo[];
  readonly entries: readonly PortMapEntry[];
  private readonly byUdid = new Map<string, PortMapEntry>();
  private readonly byEcid = new Map<bigint, PortMapEntry>();

  constructor(
    apple: readonly AppleUsbDevice[],
    hubs: readonly HubInfo[],
    usbmux: readonly UsbmuxDevice[] = [],
    known: readonly KnownDeviceIdentity[] = [],
  ) {
    this.hubs = hubs;
    const entries: PortMapEntry[] = [];
    for (const device of apple) {
      if (device.location === undefined) continue;
      let udid: string | undefined;
      if (device.mode === 'normal') {
        const viaSerial =
          device.udid !== undefined
            ? usbmux.find((m) => m.udid.toLowerCase() === device.udid?.toLowerCase())
            : undefined;
        const viaLocation =
          device.locationId !== undefined
            ? usbmux.find((m) => m.connectionType === 'USB' && m.locationId === device.locationId)
            : undefined;
        udid = (viaSerial ?? viaLocation)?.udid;
      }
      if (udid === undefined) {
        const k = known.find(
          (x) =>
            (device.ecid !== undefined && x.ecid === device.ecid) ||
            (device.serialNumber !== undefined &&
              x.serialNumber !== undefined &&
              x.serialNumber === device.serialNumber),
        );
        udid = k?.udid;
      }
      const ecid = device.ecid ?? known.find((x) => x.udid === udid)?.ecid;
      const entry: PortMapEntry = { udid, ecid, device, location: device.location };
      entries.push(entry);
      if (udid !== undefined) this.byUdid.set(udid, entry);
      if (ecid !== undefined) this.byEcid.set(ecid, entry);
    }
    this.entries = entries;
  }

  /** The port of a device by UDID (string) or ECID (bigint); undefined when it is not on a numbered hub port. */
  portOf(key: string | bigint): PortLocation | undefined {
    return this.entryOf(key)?.location;
  }

  /** The hub id of a device (for per-hub limits), or undefined. */
  hubOf(key: string | bigint): string | undefined {
    return this.portOf(key)?.hubId;
  }

  /** The entry of a device by UDID or ECID. */
  entryOf(key: string | bigint): PortMapEntry | undefined {
    return typeof key === 'bigint' ? this.byEcid.get(key) : this.byUdid.get(key);
  }

  /**
   * The hub id of a usbmuxd device (per-hub caps): by its UDID when the map was built with it, else
   * by the USB serial (= UDID in normal mode) or the usbmuxd location id of a device on the bus, so
   * a map built before the device reached usbmuxd still answers. Undefined when unknown.
   */
  hubOfUsbmux(device: Pick<UsbmuxDevice, 'udid' | 'locationId' | 'connectionType'>): string | undefined {
    const known = this.hubOf(device.udid);
    if (known !== undefined) return known;
    const udid = device.udid.toLowerCase();
    const entry =
      this.entries.find((e) => e.device.udid?.toLowerCase() === udid) ??
      (device.connectionType === 'USB' && device.locationId !== undefined && device.locationId !== 0
        ? this.entries.find((e) => e.device.locationId === device.locationId)
        : undefined);
    return entry?.location.hubId;
  }

  /** Ids of every numbered hub, in number order. */
  hubIds(): string[] {
    return [...this.hubs].sort((a, b) => a.number - b.number).map((h) => h.id);
  }
}
