/**
 * The station over the USB layer (issue #8: "a recovery state and action in the station"), with the
 * recording fake backend injected: recovery devices as state `recovery` with their port, ECID and
 * next action, hotplug as `deviceStateChanged` events, leaving recovery through the contract (the
 * exact control transfers), entering it on a virtual-fleet device (confirmed, audited), USB off,
 * and per-hub caps from the port map.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { dispatch, type StationEvent } from '../../src/contract.ts';
import { KitError } from '../../src/errors.ts';
import { NEXT_ACTION_WORDS } from '../../src/i18n/messages.ts';
import { IBOOT_COMMAND_SETUP, UsbLayer } from '../../src/device/usb.ts';
import { UsbmuxClient } from '../../src/device/usbmux.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { Station } from '../../src/station.ts';
import { listAudit } from '../../src/store/audit.ts';
import { openStationDatabase } from '../../src/store/db.ts';
import { FakeUsbBackend, fakeDevice, fakeHub, type FakeUsbDevice } from '../helpers/usb-fake.ts';

// iPhone 6s (n71ap) in recovery mode, as `irecovery -q` printed it (turdus-m3rula/bugTracker#24).
const RECOVERY_SERIAL = 'CPID:8000 CPRV:20 CPFM:03 SCEP:01 BDID:04 ECID:000005752935F194 IBFL:1C SRNM:[FVMCL013HFLV]';
const ECID_HEX = '0x000005752935F194';

const dirs: string[] = [];
const stations: Station[] = [];
const sims: Simulator[] = [];

afterEach(async () => {
  for (const s of stations.splice(0)) await s.close();
  for (const s of sims.splice(0)) await s.stop();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-usb-station-'));
  dirs.push(d);
  return d;
}

function recoveryDevice(ports: number[], bus = 1): FakeUsbDevice {
  return fakeDevice({
    productId: 0x1281,
    busNumber: bus,
    portNumbers: ports,
    address: 40,
    serialNumber: RECOVERY_SERIAL,
  });
}

function station(backend: FakeUsbBackend, usbmuxdAddress?: string): { station: Station; events: StationEvent[] } {
  const s = new Station({
    dataDir: tmpDir(),
    usb: new UsbLayer({ backend, platform: 'linux' }),
    ...(usbmuxdAddress !== undefined ? { usbmuxdAddress } : {}),
  });
  stations.push(s);
  const events: StationEvent[] = [];
  s.on((e) => events.push(e));
  return { station: s, events };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
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

describe('recovery devices in the station', () => {
  it('a recovery device on the bus at start appears as recovery with port, ECID, hub and next action', async () => {
    const backend = new FakeUsbBackend([fakeHub(1, [2]), recoveryDevice([2, 3])]);
    const { station: s, events } = station(backend);
    expect(await s.start()).toEqual({ sync: false, usb: true });
    const [state] = s.deviceStates();
    expect(state).toMatchObject({
      udid: `ecid:${ECID_HEX}`,
      state: 'recovery',
      nextAction: 'leave-recovery',
      ecid: ECID_HEX,
      hub: '1-2',
      port: { path: '1-2.3', label: { en: 'Hub 1 · Port 3' } },
    });
    expect(events).toEqual([expect.objectContaining({ type: 'deviceStateChanged', state: 'recovery' })]);
    expect(NEXT_ACTION_WORDS['leave-recovery']).toEqual({ ja: 'リカバリーモードを終了', en: 'Leave recovery mode' });
  });

  it('hotplug: entering and leaving recovery are deviceStateChanged events; ecid: entries go with the device', async () => {
    const backend = new FakeUsbBackend([fakeHub(1, [2])]);
    const { station: s, events } = station(backend);
    expect(await s.trackUsb()).toBe(true);
    expect(s.deviceStates()).toEqual([]);
    const dev = recoveryDevice([2, 1]);
    backend.plug(dev);
    await until(() => s.deviceStates().length === 1, 'the recovery state');
    expect(s.deviceStates()[0]).toMatchObject({ state: 'recovery', port: { path: '1-2.1' } });
    backend.unplug(dev.handle);
    await until(() => s.deviceStates().length === 0, 'the device to leave');
    expect(events.map((e) => (e.type === 'deviceStateChanged' ? e.state : e.type))).toEqual(['recovery', 'detached']);
  });

  it('devices.leaveRecovery sends the exact iBoot control transfers and the device leaves the recovery state', async () => {
    const dev = recoveryDevice([2, 3]);
    const backend = new FakeUsbBackend([fakeHub(1, [2]), dev]);
    const { station: s, events } = station(backend);
    await s.trackUsb();
    const result = await dispatch(s, 'devices.leaveRecovery', { ecid: String(0x5752935f194n) });
    expect(result.commands).toEqual(['setenv auto-boot true', 'saveenv', 'reboot']);
    expect(
      backend.transfers.map((t) => ({ handle: t.handle, dir: t.direction, setup: t.setup, data: t.data })),
    ).toEqual(
      ['setenv auto-boot true', 'saveenv', 'reboot'].map((c) => ({
        handle: dev.handle,
        dir: 'out',
        setup: IBOOT_COMMAND_SETUP,
        data: Buffer.from(`${c}\0`, 'ascii'),
      })),
    );
    expect(s.deviceStates()[0]).toMatchObject({ state: 'detached' });
    expect(s.deviceStates()[0]?.nextAction).toBeUndefined();
    backend.unplug(dev.handle);
    await until(() => s.deviceStates().length === 0, 'the device to leave');
    expect(
      events.filter((e) => e.type === 'deviceStateChanged').map((e) => e.type === 'deviceStateChanged' && e.state),
    ).toEqual(['recovery', 'detached']);
    const db = openStationDatabase(s.dataDir);
    try {
      expect(listAudit(db, { subject: ECID_HEX })[0]?.action).toBe('recovery-exit');
    } finally {
      db.close();
    }
    // 0x-hex is accepted too; an ECID that is not on the bus is usb/not-found.
    expect(await codeOf(dispatch(s, 'devices.leaveRecovery', { ecid: '0x1234' }))).toBe('usb/not-found');
  });

  it('USB off: states unchanged, usb.status and usb.devices say why', async () => {
    const backend = new FakeUsbBackend([recoveryDevice([2])]);
    backend.failList = new Error('LIBUSB_ERROR_ACCESS');
    const { station: s, events } = station(backend);
    expect(await s.start()).toEqual({ sync: false, usb: false });
    expect(s.deviceStates()).toEqual([]);
    expect(events).toEqual([]);
    expect(backend.watching).toBe(false);
    expect(await dispatch(s, 'usb.status', {})).toEqual({
      available: false,
      reason: { code: 'usb/permission-denied', message: expect.any(String) },
    });
    expect(await dispatch(s, 'usb.devices', {})).toMatchObject({ devices: [] });
  });
});

describe('the station with the virtual fleet', () => {
  it('devices.enterRecovery: refused without confirmed; with it the device enters recovery and an audit row is written', async () => {
    const sim = await startSimulator({ devices: 1, preset: 'fresh', timing: 'none' });
    sims.push(sim);
    const { station: s } = station(new FakeUsbBackend(), sim.usbmuxdAddress);
    const [udid] = sim.udids();
    if (udid === undefined) throw new Error('no simulated device');
    const refused = await dispatch(s, 'devices.enterRecovery', { udid }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(KitError);
    expect((refused as KitError).code).toBe('usage/invalid-argument');
    expect(sim.state(udid).mode).toBe('normal');
    const result = await dispatch(s, 'devices.enterRecovery', { udid, confirmed: true });
    expect(result.udid).toBe(udid);
    expect(typeof result.ecid).toBe('bigint');
    await until(() => sim.state(udid).mode === 'recovery', 'the simulated device to enter recovery');
    const db = openStationDatabase(s.dataDir);
    try {
      const [row] = listAudit(db, { subject: udid });
      expect(row?.action).toBe('recovery-enter');
      expect(row?.details.ecid).toMatch(/^0x[0-9A-F]{16}$/);
    } finally {
      db.close();
    }
  });

  it('per-hub caps: the usbmuxd devices get the port map’s hub id, not the bus', async () => {
    const sim = await startSimulator({ devices: 2, preset: 'fresh', timing: 'none' });
    sims.push(sim);
    const usbmux = await new UsbmuxClient(sim.usbmuxdAddress).listDevices();
    const bus = (usbmux[0]?.locationId ?? 0) >>> 16;
    const backend = new FakeUsbBackend([
      fakeHub(bus, [5]),
      ...usbmux.map((d, i) =>
        fakeDevice({
          productId: 0x12ab,
          busNumber: (d.locationId ?? 0) >>> 16,
          address: (d.locationId ?? 0) & 0xffff,
          portNumbers: [5, i + 1],
          cachedSerial: false,
        }),
      ),
    ]);
    const { station: s, events } = station(backend, sim.usbmuxdAddress);
    await s.trackUsb();
    await s.watcher();
    await until(() => events.filter((e) => e.type === 'deviceAttached').length === usbmux.length, 'deviceAttached');
    const hubs = events.flatMap((e) => (e.type === 'deviceAttached' ? [e.hub] : []));
    expect(hubs).toEqual(usbmux.map(() => `${bus}-5`));
    expect(hubs).not.toContain(String(bus));
    const ports = await s.portMap();
    expect(ports.hubIds()).toContain(`${bus}-5`);
  });
});
