/**
 * The USB layer over the recording fake backend: modes of every §8.1 product id, iBoot serial
 * strings in their real format, the port map (labels, stable hub numbers, usbmuxd location ids
 * on Linux and macOS, the virtual fleet's devices), the exact control transfers that leave
 * recovery mode, hotplug events, and the station when USB is off.
 */
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { ERROR_MESSAGES } from '../../src/i18n/messages.ts';
import {
  APPLE_PRODUCT_MODES,
  IBOOT_COMMAND_SETUP,
  PortMap,
  UsbLayer,
  decodeStringDescriptor,
  encodeIbootCommand,
  formatEcid,
  numberHubs,
  parseEcid,
  parseIbootString,
  portLabel,
  recoveryOpenPlan,
  usbFailureCode,
  usbModeOf,
  usbmuxLocationId,
  type AppleUsbDevice,
  type UsbMode,
} from '../../src/device/usb.ts';
import { nativeSetupOf } from '../../src/device/usb-backend.ts';
import {
  decodeUsbmuxHeader,
  decodeUsbmuxPayload,
  parseDeviceList,
  UsbmuxClient,
  type UsbmuxDevice,
} from '../../src/device/usbmux.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { Station } from '../../src/station.ts';
import { FakeUsbBackend, fakeDevice, fakeHub, stringDescriptorBytes, type FakeUsbDevice } from '../helpers/usb-fake.ts';

/** Real-format serial strings (values from public reports; see each comment). */
// iPhone 6s (n71ap) in recovery mode, fields as `irecovery -q` printed them in turdus-m3rula/bugTracker#24.
const IPHONE6S_RECOVERY = 'CPID:8000 CPRV:20 CPFM:03 SCEP:01 BDID:04 ECID:000005752935F194 IBFL:1C SRNM:[FVMCL013HFLV]';
// An M1 DFU string as an emulator serves it (CPID 8103, SRTG iBoot tag).
const M1_DFU = 'CPID:8103 CPRV:01 CPFM:03 SCEP:01 BDID:22 ECID:00000001A2B3C4D5 IBFL:1C SRTG:[iBoot-20356.0.0.0.15]';
// A string with nonces and a PWND tag, the shape checkm8-era tools print.
const XR_PWND =
  'CPID:8020 CPRV:11 CPFM:03 SCEP:01 BDID:0C ECID:0011223344556677 IBFL:3C NONC:AABBCCDD SNON:11223344 SRTG:[iBoot-test] PWND:[usbliter8]';
// String descriptor 1 of an iPhone 4 (libimobiledevice/idevicerestore#6): only NONC, with a leading space.
const IPHONE4_NONCES = ' NONC:977A728CA4DEC7636470F3A78D2D8DD9A2542C95';
// A 64-bit ECID above 2^53 (JS numbers would round it).
const BIG_ECID = 0xfedcba9876543210n;
const BIG_ECID_RECOVERY = `CPID:8101 CPRV:10 CPFM:03 SCEP:01 BDID:0C ECID:${BIG_ECID.toString(16).toUpperCase()} IBFL:3C SRNM:[DMPXK0ZZZZZZ] SRTG:[iBoot-8422.141.2]`;

/** Apple usbmuxd's ListDevices reply recorded on macOS (shared fixtures, as plist-fixtures.test.ts reads them). */
const RECORDED_LIST_DEVICES = path.resolve(
  import.meta.dirname,
  '../../../shared/fixtures/recorded/usbmuxlistdevicemessage.bin',
);

const sims: Simulator[] = [];
const tmpDirs: string[] = [];
afterEach(async () => {
  for (const s of sims.splice(0)) await s.stop();
  for (const d of tmpDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-usb-'));
  tmpDirs.push(d);
  return d;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof KitError) return err.code;
    throw err;
  }
  throw new Error('expected a KitError');
}

function recovery(ports: number[], serial = IPHONE6S_RECOVERY, productId = 0x1281, bus = 1): FakeUsbDevice {
  return fakeDevice({
    productId,
    busNumber: bus,
    portNumbers: ports,
    address: 40 + (ports.at(-1) ?? 0),
    serialNumber: serial,
  });
}

describe('modes from product ids (protocols.md §8.1)', () => {
  const expected: [number, UsbMode][] = [
    ...Array.from({ length: 0x20 }, (_, i): [number, UsbMode] => [0x1290 + i, 'normal']),
    [0x1280, 'recovery'],
    [0x1281, 'recovery'],
    [0x1282, 'recovery'],
    [0x1283, 'recovery'],
    [0x1222, 'wtf'],
    [0x1227, 'dfu'],
    [0xf014, 'port-dfu'],
    [0x1881, 'kis'],
    [0x1901, 'mac-restore'],
    [0x1902, 'mac-restore'],
    [0x1903, 'mac-restore'],
    [0x1904, 'mac-restore'],
    [0x1905, 'mac-restore'],
    [0x8600, 'mac-restore'],
  ];

  it('maps every product id of the table, and nothing else', () => {
    for (const [pid, mode] of expected) expect([pid.toString(16), usbModeOf(pid)]).toEqual([pid.toString(16), mode]);
    expect(APPLE_PRODUCT_MODES.size).toBe(expected.length);
    for (const pid of [0x128f, 0x1284, 0x12b0, 0x1226, 0x1228, 0x1900, 0x1906, 0x0000, 0x8601, 0xf015]) {
      expect(usbModeOf(pid)).toBe('other');
    }
  });

  it('lists each of them from the bus with its mode, and only Apple devices', async () => {
    const devices = expected.map(([productId], i) =>
      fakeDevice({ productId, busNumber: 1 + Math.floor(i / 7), portNumbers: [1, (i % 7) + 1], address: 10 + i }),
    );
    const keyboard = fakeDevice({ vendorId: 0x046d, productId: 0x1290, busNumber: 1, portNumbers: [9], address: 99 });
    const layer = new UsbLayer({ backend: new FakeUsbBackend([...devices, keyboard]), platform: 'linux' });
    const listed = await layer.devices();
    expect(listed.map((d) => [d.productId, d.mode])).toEqual(expected);
  });
});

describe('iBoot / SecureROM serial strings (§8.3)', () => {
  it('parses a recovery-mode string: hex fields, ECID as bigint, serial number without brackets', () => {
    const info = parseIbootString(IPHONE6S_RECOVERY);
    expect(info).toMatchObject({
      cpid: 0x8000,
      cprv: 0x20,
      cpfm: 3,
      scep: 1,
      bdid: 4,
      ibfl: 0x1c,
      serialNumber: 'FVMCL013HFLV',
    });
    expect(info.ecid).toBe(0x5752935f194n);
    expect(info.srtg).toBeUndefined();
    expect(info.imei).toBeUndefined();
  });

  it('parses a DFU string with the SecureROM tag', () => {
    const info = parseIbootString(M1_DFU);
    expect(info).toMatchObject({ cpid: 0x8103, cprv: 1, bdid: 0x22, ibfl: 0x1c, srtg: 'iBoot-20356.0.0.0.15' });
    expect(info.ecid).toBe(0x1a2b3c4d5n);
    expect(info.serialNumber).toBeUndefined();
  });

  it('reads nonces and PWND, and a nonce-only descriptor', () => {
    const info = parseIbootString(XR_PWND);
    expect(info.apNonce?.toString('hex')).toBe('aabbccdd');
    expect(info.sepNonce?.toString('hex')).toBe('11223344');
    expect(info.pwnd).toBe('usbliter8');
    expect(info.ecid).toBe(0x0011223344556677n);
    const nonces = parseIbootString(IPHONE4_NONCES);
    expect(nonces.apNonce?.toString('hex')).toBe('977a728ca4dec7636470f3a78d2d8dd9a2542c95');
    expect(nonces.sepNonce).toBeUndefined();
    expect(nonces.cpid).toBeUndefined();
  });

  it('keeps 64-bit ECIDs above 2^53 exact', () => {
    const info = parseIbootString(BIG_ECID_RECOVERY);
    expect(info.ecid).toBe(BIG_ECID);
    expect(info.ecid! > BigInt(Number.MAX_SAFE_INTEGER)).toBe(true);
    expect(info.ecid?.toString()).toBe('18364758544493064720');
    expect(formatEcid(BIG_ECID)).toBe('0xFEDCBA9876543210');
    expect(parseEcid('0xFEDCBA9876543210')).toBe(BIG_ECID);
    expect(parseEcid('18364758544493064720')).toBe(BIG_ECID);
    expect(parseEcid('FEDCBA9876543210')).toBe(BIG_ECID);
    expect(parseEcid('0x1FEDCBA9876543210')).toBeUndefined();
    expect(parseEcid('18446744073709551616')).toBeUndefined();
    expect(parseEcid('not-an-ecid')).toBeUndefined();
  });

  it('ignores unreadable values instead of guessing', () => {
    const info = parseIbootString(
      'CPID:8947 CPRV:00 CPFM:03 SCEP:10 BDID:00 ECID:REDACTED IBFL:00 SRTG:[iBoot-1458.2]',
    );
    expect(info.cpid).toBe(0x8947);
    expect(info.ecid).toBeUndefined();
    expect(info.srtg).toBe('iBoot-1458.2');
  });
});

describe('port map', () => {
  function cart(): FakeUsbDevice[] {
    return [
      fakeHub(1, [1]),
      fakeHub(1, [1, 2]),
      fakeHub(1, [3]),
      fakeHub(2, [1]),
      recovery([1, 2, 7]),
      fakeDevice({
        productId: 0x12ab,
        busNumber: 1,
        portNumbers: [3, 4],
        address: 12,
        serialNumber: '00008020000221942EEA002E',
      }),
      recovery([4], M1_DFU, 0x1227),
    ];
  }

  it('numbers hubs by bus then port path, labels ports in ja and en, and the computer is hub 0', async () => {
    const snap = await new UsbLayer({ backend: new FakeUsbBackend(cart()), platform: 'linux' }).snapshot();
    expect(snap.hubs.map((h) => [h.id, h.number])).toEqual([
      ['1-1', 1],
      ['1-1.2', 2],
      ['1-3', 3],
      ['2-1', 4],
      ['1', 0],
    ]);
    const rec = snap.devices.find((d) => d.mode === 'recovery');
    expect(rec?.location).toEqual({
      hub: 2,
      port: 7,
      path: '1-1.2.7',
      hubId: '1-1.2',
      label: { ja: 'ハブ2・ポート7', en: 'Hub 2 · Port 7' },
    });
    const dfu = snap.devices.find((d) => d.mode === 'dfu');
    expect(dfu?.location?.label).toEqual({ ja: '本体・ポート4', en: 'Computer · Port 4' });
    expect(portLabel(12, 3)).toEqual({ ja: 'ハブ12・ポート3', en: 'Hub 12 · Port 3' });
  });

  it('keeps hub numbers when iPads come and go and whatever order the bus lists them in', async () => {
    const backend = new FakeUsbBackend(cart());
    const layer = new UsbLayer({ backend, platform: 'linux' });
    const before = (await layer.snapshot()).hubs.filter((h) => h.number > 0);
    backend.devices.reverse();
    backend.devices.splice(
      backend.devices.findIndex((d) => d.productId === 0x12ab),
      1,
    );
    backend.devices.push(recovery([3, 1], BIG_ECID_RECOVERY));
    const after = await layer.snapshot();
    expect(after.hubs.filter((h) => h.number > 0)).toEqual(before);
    expect(after.devices.find((d) => d.ecid === BIG_ECID)?.location?.label.en).toBe('Hub 3 · Port 1');
    // A hub below a port the computer does not list as a hub still gets a number from its iPad.
    expect(numberHubs([], [{ ...recovery([5, 6]), serialNumber: undefined }]).map((h) => [h.id, h.number])).toEqual([
      ['1-5', 1],
    ]);
  });

  it('answers portOf(udid) for usbmuxd devices (by location id or USB serial) and portOf(ecid), and gives hub ids', async () => {
    const backend = new FakeUsbBackend([
      ...cart(),
      fakeDevice({
        productId: 0x12a8,
        busNumber: 1,
        portNumbers: [3, 2],
        address: 9,
        cachedSerial: false,
        serialNumber: 'X',
      }),
    ]);
    const layer = new UsbLayer({ backend, platform: 'linux' });
    const usbmux: UsbmuxDevice[] = [
      // Matched by its USB serial (the UDID, hyphenated like usbmuxd does for 24-hex serials); location deliberately off.
      {
        deviceId: 1,
        udid: '00008020-000221942EEA002E',
        connectionType: 'USB',
        locationId: 0xdead,
        productId: 0x12ab,
        connectionSpeed: 480000000,
      },
      // Matched by Linux location id (bus 1 << 16 | address 9): its USB serial is not readable without opening.
      {
        deviceId: 2,
        udid: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
        connectionType: 'USB',
        locationId: (1 << 16) | 9,
        productId: 0x12a8,
        connectionSpeed: 480000000,
      },
      // Not on the bus.
      {
        deviceId: 3,
        udid: 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb',
        connectionType: 'USB',
        locationId: (7 << 16) | 7,
        productId: 0x12a8,
        connectionSpeed: 480000000,
      },
    ];
    const map = await layer.portMap(usbmux, [
      { udid: 'cccccccc-0000000000000001', ecid: 0x5752935f194n, serialNumber: 'FVMCL013HFLV' },
    ]);
    expect(map.portOf('00008020-000221942EEA002E')?.path).toBe('1-3.4');
    expect(map.portOf('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')?.label.ja).toBe('ハブ3・ポート2');
    expect(map.portOf('bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb')).toBeUndefined();
    // The recovery device, by ECID from its USB string and by the UDID it had in normal mode.
    expect(map.portOf(0x5752935f194n)?.label.en).toBe('Hub 2 · Port 7');
    expect(map.portOf('cccccccc-0000000000000001')?.path).toBe('1-1.2.7');
    expect(map.hubOf(0x5752935f194n)).toBe('1-1.2');
    expect(map.portOf(0x1a2b3c4d5n)?.hub).toBe(0);
    expect(map.hubIds()).toEqual(['1', '1-1', '1-1.2', '1-3', '2-1']);
  });

  it('rebuilds macOS location ids like Apple usbmuxd reports them (the recorded ListDevices reply)', () => {
    const bytes = fs.readFileSync(RECORDED_LIST_DEVICES);
    const [recorded] = parseDeviceList(decodeUsbmuxPayload(decodeUsbmuxHeader(bytes), bytes.subarray(16)));
    expect(recorded?.locationId).toBe(0x14423000);
    // nusb on macOS: bus id "14" (hex) → 20, port chain 4 → 2 → 3.
    expect(usbmuxLocationId({ busNumber: 0x14, address: 5, portNumbers: [4, 2, 3] }, 'darwin')).toBe(
      recorded?.locationId,
    );
    expect(usbmuxLocationId({ busNumber: 0x14, address: 5, portNumbers: [4, 2, 3] }, 'linux')).toBe((0x14 << 16) | 5);
    expect(usbmuxLocationId({ busNumber: 0x80, address: 1, portNumbers: [1] }, 'darwin')).toBe(0x80100000);
    expect(usbmuxLocationId({ busNumber: 1, address: 2, portNumbers: [16] }, 'darwin')).toBeUndefined();
    expect(usbmuxLocationId({ busNumber: 1, address: 2, portNumbers: [1] }, 'win32')).toBeUndefined();
  });

  it('maps a macOS cart through the recorded device’s location id', async () => {
    const backend = new FakeUsbBackend([
      fakeHub(0x14, [4]),
      fakeHub(0x14, [4, 2]),
      fakeDevice({
        productId: 0x12a8,
        busNumber: 0x14,
        portNumbers: [4, 2, 3],
        address: 5,
        cachedSerial: false,
        serialNumber: 'x',
      }),
    ]);
    const bytes = fs.readFileSync(RECORDED_LIST_DEVICES);
    const usbmux = parseDeviceList(decodeUsbmuxPayload(decodeUsbmuxHeader(bytes), bytes.subarray(16)));
    const map = await new UsbLayer({ backend, platform: 'darwin' }).portMap(usbmux);
    expect(map.portOf('63c3d055c4f83e960e5980fa68be0fbf7d4ba74c')).toMatchObject({ hub: 2, port: 3, path: '20-4.2.3' });
  });

  it('places every device of the virtual fleet (Linux location ids, 8 per bus) on its hub port', async () => {
    const sim = await startSimulator({ devices: 10, preset: 'fresh', timing: 'none' });
    sims.push(sim);
    const usbmux = await new UsbmuxClient(sim.usbmuxdAddress).listDevices();
    expect(usbmux).toHaveLength(10);
    const bus: FakeUsbDevice[] = [fakeHub(1, [2]), fakeHub(2, [2])];
    const slot = new Map<number, number>();
    for (const d of usbmux) {
      const busNumber = (d.locationId ?? 0) >>> 16;
      const n = (slot.get(busNumber) ?? 0) + 1;
      slot.set(busNumber, n);
      bus.push(
        fakeDevice({
          productId: d.productId ?? 0x12ab,
          busNumber,
          address: (d.locationId ?? 0) & 0xffff,
          portNumbers: [2, n],
          cachedSerial: false,
          serialNumber: 'unread',
        }),
      );
    }
    const map = await new UsbLayer({ backend: new FakeUsbBackend(bus), platform: 'linux' }).portMap(usbmux);
    const labels = usbmux.map((d) => map.portOf(d.udid)?.label.en);
    expect(labels).toEqual([
      ...Array.from({ length: 8 }, (_, i) => `Hub 1 · Port ${i + 1}`),
      'Hub 2 · Port 1',
      'Hub 2 · Port 2',
    ]);
    expect(new Set(usbmux.map((d) => map.hubOf(d.udid)))).toEqual(new Set(['1-2', '2-2']));
  });
});

describe('leaving recovery mode (§8.2)', () => {
  it('sends setenv auto-boot true, saveenv, reboot as 0x40/0 control transfers with NUL-terminated commands', async () => {
    const backend = new FakeUsbBackend([fakeHub(1, [1]), recovery([1, 3])]);
    const result = await new UsbLayer({ backend, platform: 'linux' }).leaveRecovery(0x5752935f194n);
    expect(result.commands).toEqual(['setenv auto-boot true', 'saveenv', 'reboot']);
    expect(result.location?.label.en).toBe('Hub 1 · Port 3');
    expect(backend.opens).toEqual([
      { handle: expect.any(String), plan: { configuration: 1, interfaces: [{ number: 0, alternate: 0 }] } },
    ]);
    expect(backend.transfers.map((t) => [t.direction, t.setup, t.data, t.timeoutMs])).toEqual([
      [
        'out',
        { bmRequestType: 0x40, bRequest: 0, wValue: 0, wIndex: 0 },
        Buffer.from('setenv auto-boot true\0', 'ascii'),
        10_000,
      ],
      ['out', { bmRequestType: 0x40, bRequest: 0, wValue: 0, wIndex: 0 }, Buffer.from('saveenv\0', 'ascii'), 10_000],
      ['out', { bmRequestType: 0x40, bRequest: 0, wValue: 0, wIndex: 0 }, Buffer.from('reboot\0', 'ascii'), 10_000],
    ]);
    expect(Buffer.from('reboot\0', 'ascii')).toEqual(Buffer.from([0x72, 0x65, 0x62, 0x6f, 0x6f, 0x74, 0x00]));
    expect(backend.closes).toHaveLength(1);
    // The same setup through node-usb: vendor request to the device (host-to-device by the call).
    expect(nativeSetupOf(IBOOT_COMMAND_SETUP)).toEqual({
      requestType: 'vendor',
      recipient: 'device',
      request: 0,
      value: 0,
      index: 0,
    });
  });

  it('claims interface 1 alt 1 too for recovery ids above 0x1281, like libirecovery', async () => {
    expect(recoveryOpenPlan(0x1280).interfaces).toEqual([{ number: 0, alternate: 0 }]);
    expect(recoveryOpenPlan(0x1281).interfaces).toEqual([{ number: 0, alternate: 0 }]);
    for (const pid of [0x1282, 0x1283]) {
      expect(recoveryOpenPlan(pid)).toEqual({
        configuration: 1,
        interfaces: [
          { number: 0, alternate: 0 },
          { number: 1, alternate: 1 },
        ],
      });
    }
    const backend = new FakeUsbBackend([recovery([2], BIG_ECID_RECOVERY, 0x1283)]);
    await new UsbLayer({ backend }).leaveRecovery(BIG_ECID);
    expect(backend.opens[0]?.plan.interfaces).toHaveLength(2);
  });

  it('ignores the error of reboot (the device leaves) but stops on an earlier failure', async () => {
    const backend = new FakeUsbBackend([recovery([2])]);
    backend.failTransfer = (t) =>
      Buffer.isBuffer(t.data) && t.data.toString().startsWith('reboot') ? new Error('LIBUSB_ERROR_PIPE') : undefined;
    expect((await new UsbLayer({ backend }).leaveRecovery(0x5752935f194n)).commands).toHaveLength(3);

    const failing = new FakeUsbBackend([recovery([2])]);
    failing.failTransfer = (t) =>
      Buffer.isBuffer(t.data) && t.data.toString().startsWith('saveenv')
        ? new Error('LIBUSB_ERROR_TIMEOUT')
        : undefined;
    expect(await codeOf(new UsbLayer({ backend: failing }).leaveRecovery(0x5752935f194n))).toBe('usb/transfer-failed');
    expect(failing.transfers).toHaveLength(2);
    expect(failing.closes).toHaveLength(1);
  });

  it('refuses DFU devices and unknown ECIDs, and commands iBoot cannot take', async () => {
    const backend = new FakeUsbBackend([recovery([1], M1_DFU, 0x1227)]);
    const layer = new UsbLayer({ backend });
    expect(await codeOf(layer.leaveRecovery(0x1a2b3c4d5n))).toBe('device/wrong-mode');
    const missing = layer.leaveRecovery(0x1234n).catch((e: unknown) => e);
    const err = await missing;
    expect(err).toBeInstanceOf(KitError);
    expect((err as KitError).code).toBe('usb/not-found');
    expect((err as KitError).exitCode).toBe(3);
    expect(backend.transfers).toEqual([]);
    expect(() => encodeIbootCommand('x'.repeat(256))).toThrow(KitError);
    expect(() => encodeIbootCommand('setenv a\nb')).toThrow(KitError);
  });

  it('reads the nonces from string descriptor 1', async () => {
    const dev = recovery([1]);
    dev.strings = { 1: IPHONE4_NONCES };
    const backend = new FakeUsbBackend([dev]);
    const nonces = await new UsbLayer({ backend }).readNonces(0x5752935f194n);
    expect(nonces.apNonce?.toString('hex')).toBe('977a728ca4dec7636470f3a78d2d8dd9a2542c95');
    expect(backend.transfers.map((t) => [t.direction, t.setup, t.data])).toEqual([
      ['in', { bmRequestType: 0x80, bRequest: 6, wValue: 0x0301, wIndex: 0x0409 }, 255],
    ]);
    expect(decodeStringDescriptor(stringDescriptorBytes('CPID:8020'))).toBe('CPID:8020');
    expect(() => decodeStringDescriptor(Uint8Array.from([4, 2, 0, 0]))).toThrow(KitError);
  });
});

describe('hotplug', () => {
  it('emits usbAttached with mode, ECID and port, usbDetached when it leaves, nothing for other vendors', async () => {
    const backend = new FakeUsbBackend([fakeHub(1, [1])]);
    const layer = new UsbLayer({ backend, platform: 'linux' });
    await layer.watch();
    expect(backend.watching).toBe(true);
    const seen: string[] = [];
    layer.on('usbAttached', (d) => seen.push(`+${d.mode}`));
    layer.on('usbDetached', (d) => seen.push(`-${d.mode}`));

    backend.plug(fakeDevice({ vendorId: 0x046d, productId: 0xc52b, busNumber: 1, portNumbers: [1, 1] }));
    const dev = recovery([1, 4], BIG_ECID_RECOVERY);
    const attached = once(layer, 'usbAttached') as Promise<[AppleUsbDevice]>;
    backend.plug(dev);
    const [device] = await attached;
    expect(device.ecid).toBe(BIG_ECID);
    expect(device.serialNumber).toBe('DMPXK0ZZZZZZ');
    expect(device.location?.label.ja).toBe('ハブ1・ポート4');

    const detached = once(layer, 'usbDetached') as Promise<[AppleUsbDevice]>;
    backend.unplug(dev.handle);
    expect((await detached)[0].ecid).toBe(BIG_ECID);
    expect(seen).toEqual(['+recovery', '-recovery']);

    await layer.close();
    expect(backend.watching).toBe(false);
  });
});

describe('when USB is off', () => {
  it('maps the stack’s failures to codes', () => {
    expect(usbFailureCode(new Error('LIBUSB_ERROR_ACCESS'))).toBe('usb/permission-denied');
    expect(usbFailureCode(new Error('open error: Permission denied (os error 13)'))).toBe('usb/permission-denied');
    expect(usbFailureCode(new Error('getDevices error: /sys/bus/usb/devices/ not found (errno 2)'))).toBe(
      'usb/unavailable',
    );
    expect(usbFailureCode(new Error('LIBUSB_ERROR_NOT_SUPPORTED'))).toBe('usb/unavailable');
    expect(usbFailureCode(new Error('controlTransferOut error: device disconnected'))).toBe('usb/device-gone');
    expect(usbFailureCode(new Error('LIBUSB_ERROR_TIMEOUT'))).toBe('usb/transfer-failed');
    for (const code of ['usb/not-loaded', 'usb/unavailable', 'usb/permission-denied'] as const) {
      expect(ERROR_MESSAGES[code].ja.title).toMatch(/リカバリーモード／DFUモード/);
      expect(ERROR_MESSAGES[code].en.title).toMatch(/port numbers and recovery\/DFU detection are off/);
    }
  });

  it('reports permission denied, no bus, and a module that cannot load, with the reason', async () => {
    const denied = new FakeUsbBackend();
    denied.failList = new Error('LIBUSB_ERROR_ACCESS');
    expect(await new UsbLayer({ backend: denied }).status()).toEqual({
      available: false,
      reason: { code: 'usb/permission-denied', message: 'USB enumeration failed: LIBUSB_ERROR_ACCESS' },
    });
    const noBus = new FakeUsbBackend();
    noBus.failList = new Error('getDevices error: /sys/bus/usb/devices/ not found (errno 2)');
    const layer = new UsbLayer({ backend: noBus });
    expect(await codeOf(layer.snapshot())).toBe('usb/unavailable');
    expect(await codeOf(layer.leaveRecovery(1n))).toBe('usb/unavailable');

    let loads = 0;
    const notLoaded = new UsbLayer({
      load: () => {
        loads++;
        return Promise.reject(new Error('Cannot find native binding. npm has a bug related to optional dependencies'));
      },
    });
    const status = await notLoaded.status();
    expect(status.available).toBe(false);
    expect(status.available ? '' : status.reason.code).toBe('usb/not-loaded');
    expect(status.available ? '' : status.reason.message).toMatch(/Cannot find native binding/);
    expect(await codeOf(notLoaded.watch())).toBe('usb/not-loaded');
    expect(loads).toBe(1);
    await expect(new UsbLayer({ backend: new FakeUsbBackend() }).status()).resolves.toEqual({
      available: true,
      backend: 'fake',
    });
  });

  it('keeps a recovery device listed when its serial string cannot be read', async () => {
    const dev = recovery([2]);
    dev.cachedSerial = false;
    const backend = new FakeUsbBackend([dev]);
    backend.failOpen = new Error('open error: Permission denied (os error 13)');
    const [listed] = await new UsbLayer({ backend }).devices();
    expect(listed?.mode).toBe('recovery');
    expect(listed?.ecid).toBeUndefined();
    expect(listed?.error?.code).toBe('usb/permission-denied');
  });

  it('the station keeps working: devices listed without ports, usbDevices empty with the reason', async () => {
    const sim = await startSimulator({ devices: 2, preset: 'fresh', timing: 'none' });
    sims.push(sim);
    const denied = new FakeUsbBackend();
    denied.failList = new Error('LIBUSB_ERROR_ACCESS');
    const station = new Station({
      usbmuxdAddress: sim.usbmuxdAddress,
      dataDir: tmpDir(),
      usb: new UsbLayer({ backend: denied }),
    });
    try {
      const devices = await station.listDevices();
      expect(devices.map((d) => d.udid).sort()).toEqual(sim.udids().sort());
      expect(devices.every((d) => d.port === null && d.error === undefined)).toBe(true);
      const usb = await station.usbDevices();
      expect(usb).toEqual({
        status: { available: false, reason: { code: 'usb/permission-denied', message: expect.any(String) } },
        devices: [],
      });
      expect(await codeOf(station.portMap())).toBe('usb/permission-denied');
    } finally {
      station.close();
    }
  });

  it('with USB on, the station fills each listed device’s port from the bus', async () => {
    const sim = await startSimulator({ devices: 2, preset: 'fresh', timing: 'none' });
    sims.push(sim);
    const usbmux = await new UsbmuxClient(sim.usbmuxdAddress).listDevices();
    const bus = [
      fakeHub(1, [5]),
      ...usbmux.map((d, i) =>
        fakeDevice({
          productId: 0x12ab,
          busNumber: (d.locationId ?? 0) >>> 16,
          address: (d.locationId ?? 0) & 0xffff,
          portNumbers: [5, i + 1],
          cachedSerial: false,
        }),
      ),
    ];
    const station = new Station({
      usbmuxdAddress: sim.usbmuxdAddress,
      dataDir: tmpDir(),
      usb: new UsbLayer({ backend: new FakeUsbBackend(bus), platform: 'linux' }),
    });
    try {
      const devices = await station.listDevices();
      expect(Object.fromEntries(devices.map((d) => [d.udid, d.port]))).toEqual(
        Object.fromEntries(usbmux.map((d, i) => [d.udid, `1-5.${i + 1}`])),
      );
      expect((await station.portMap()).portOf(usbmux[0]?.udid ?? '')?.label.en).toBe('Hub 1 · Port 1');
    } finally {
      station.close();
    }
  });
});

describe('PortMap without USB devices', () => {
  it('answers nothing rather than guessing', () => {
    const map = new PortMap([], []);
    expect(map.portOf('x')).toBeUndefined();
    expect(map.portOf(1n)).toBeUndefined();
    expect(map.hubIds()).toEqual([]);
  });
});
