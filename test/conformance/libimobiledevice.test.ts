/**
 * The real libimobiledevice 1.3 tools from Debian against `kitting sim`: if they cannot tell the
 * virtual fleet from a Linux machine with iPads attached, neither can anything built on them.
 * A missing tool fails the run (CI installs them); nothing here is skipped.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MuxSocket,
  listDevices,
  muxRequest,
  run,
  spawnSim,
  type MuxPacket,
  type RunResult,
  type SimProcess,
} from '../helpers/sim-process.ts';

const TOOLS = ['idevice_id', 'ideviceinfo', 'idevicepair', 'idevicename', 'idevicediagnostics'] as const;

function requireTools(): void {
  const missing = TOOLS.filter((t) => {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    throw new Error(
      `libimobiledevice tools missing: ${missing.join(', ')}. Install them (Debian: apt-get install libimobiledevice-utils) — this conformance test never skips.`,
    );
  }
}

let sim: SimProcess;
let udids: string[];

function tool(name: (typeof TOOLS)[number], args: string[]): Promise<RunResult> {
  return run(name, args, { env: { USBMUXD_SOCKET_ADDRESS: sim.usbmuxd }, timeoutMs: 60_000 });
}

async function state(udid: string): Promise<Record<string, unknown>> {
  const r = await sim.ctl(['state', udid, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

beforeAll(async () => {
  requireTools();
  sim = await spawnSim(['--devices', '3', '--preset', 'in-use', '--seed', 'conformance-libimobiledevice']);
  udids = sim.devices;
});

afterAll(async () => {
  await sim?.stop();
});

describe('libimobiledevice 1.3 against kitting sim', () => {
  it('idevice_id -l lists every virtual UDID', async () => {
    const r = await tool('idevice_id', ['-l']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').sort()).toEqual([...udids].sort());
    expect(udids).toHaveLength(3);
  });

  it('ideviceinfo -s reads the pre-session values of an unpaired device', async () => {
    const udid = udids[0] ?? '';
    const r = await tool('ideviceinfo', ['-s', '-u', udid]);
    expect(r.code, r.stderr).toBe(0);
    const s = await state(udid);
    expect(r.stdout).toContain(`UniqueDeviceID: ${udid}`);
    expect(r.stdout).toContain(`ProductType: ${String(s.productType)}`);
    expect(r.stdout).toContain(`UniqueChipID: ${String(s.ecid)}`);
    expect(r.stdout).toContain(`SerialNumber: ${String(s.serial)}`);
    expect(r.stdout).toMatch(/DevicePublicKey: \S+/);
    // Session-only values are not in the simple answer.
    expect(r.stdout).not.toContain('BatteryCurrentCapacity');
    expect(r.stdout).not.toContain('TimeZone:');
  });

  it('idevicepair pair waits for the Trust dialog, then pairs once the person accepts', async () => {
    const udid = udids[0] ?? '';
    const first = await tool('idevicepair', ['-u', udid, 'pair']);
    expect(first.code).not.toBe(0);
    expect(first.stdout).toContain('accept the trust dialog');
    expect((await state(udid)).trustDialog).toBe('showing');

    const accept = await sim.ctl(['trust', udid, 'accept']);
    expect(accept.code, accept.stderr).toBe(0);

    const second = await tool('idevicepair', ['-u', udid, 'pair']);
    expect(second.code, second.stdout + second.stderr).toBe(0);
    expect(second.stdout).toContain(`SUCCESS: Paired with device ${udid}`);
    const s = await state(udid);
    expect(s.pairings).toHaveLength(1);

    const validate = await tool('idevicepair', ['-u', udid, 'validate']);
    expect(validate.code, validate.stdout).toBe(0);
    expect(validate.stdout).toContain('SUCCESS: Validated pairing');
  });

  it('a denied Trust dialog is reported as denied', async () => {
    const udid = udids[2] ?? '';
    expect((await sim.ctl(['trust', udid, 'deny'])).code).toBe(0);
    const r = await tool('idevicepair', ['-u', udid, 'pair']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toContain('denied the trust dialog');
    expect((await state(udid)).pairings).toEqual([]);
  });

  it('a locked device refuses to pair until unlocked', async () => {
    const udid = udids[2] ?? '';
    expect((await sim.ctl(['trust', udid, 'accept'])).code).toBe(0);
    expect((await sim.ctl(['lock', udid])).code).toBe(0);
    const locked = await tool('idevicepair', ['-u', udid, 'pair']);
    expect(locked.code).not.toBe(0);
    expect(locked.stdout).toContain('passcode is set');
    expect((await sim.ctl(['unlock', udid])).code).toBe(0);
    const ok = await tool('idevicepair', ['-u', udid, 'pair']);
    expect(ok.code, ok.stdout).toBe(0);
  });

  it('ideviceinfo reads everything in a TLS session after pairing', async () => {
    const udid = udids[0] ?? '';
    const s = await state(udid);
    const all = await tool('ideviceinfo', ['-u', udid]);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toContain(`UniqueDeviceID: ${udid}`);
    expect(all.stdout).toContain(`UniqueChipID: ${String(s.ecid)}`);
    expect(all.stdout).toContain('TimeZone: Asia/Tokyo');
    expect(all.stdout).toContain('TrustedHostAttached: true');

    const one = await tool('ideviceinfo', ['-u', udid, '-k', 'ProductType']);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout.trim()).toBe(String(s.productType));

    const battery = await tool('ideviceinfo', [
      '-u',
      udid,
      '-q',
      'com.apple.mobile.battery',
      '-k',
      'BatteryCurrentCapacity',
    ]);
    expect(battery.code).toBe(0);
    expect(battery.stdout.trim()).toBe(String(s.batteryLevel));
  });

  it('idevicename gets and sets the device name, and the name persists', async () => {
    const udid = udids[0] ?? '';
    const get = await tool('idevicename', ['-u', udid]);
    expect(get.code, get.stderr).toBe(0);
    expect(get.stdout.trim()).toBe('iPad');

    const set = await tool('idevicename', ['-u', udid, 'Cart 3 · 07']);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain("device name set to 'Cart 3 · 07'");
    expect((await state(udid)).deviceName).toBe('Cart 3 · 07');

    const again = await tool('idevicename', ['-u', udid]);
    expect(again.stdout.trim()).toBe('Cart 3 · 07');
  });

  it('a device that forgot the pairing answers InvalidHostID, which idevicepair reports as not paired', async () => {
    const udid = udids[2] ?? '';
    expect((await sim.ctl(['forget', udid])).code).toBe(0);
    const r = await tool('idevicepair', ['-u', udid, 'validate']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toContain('is not paired with this host');
  });

  it('idevicepair unpair makes the device and usbmuxd forget the pairing', async () => {
    const udid = udids[0] ?? '';
    const r = await tool('idevicepair', ['-u', udid, 'unpair']);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toContain(`SUCCESS: Unpaired with device ${udid}`);
    expect((await state(udid)).pairings).toEqual([]);
    // libimobiledevice deleted its record through usbmuxd DeletePairRecord: Linux answers ENOENT now.
    const read = await muxRequest(sim.usbmuxd, { MessageType: 'ReadPairRecord', PairRecordID: udid });
    expect(read.plist).toEqual({ MessageType: 'Result', Number: 2 });
  });

  it('idevicediagnostics restart: the device leaves and returns with the same UDID and a new DeviceID', async () => {
    const udid = udids[1] ?? '';
    expect((await sim.ctl(['trust', udid, 'accept'])).code).toBe(0);
    expect((await tool('idevicepair', ['-u', udid, 'pair'])).code).toBe(0);
    const before = (await listDevices(sim.usbmuxd)).find((d) => d.udid === udid);
    expect(before).toBeDefined();

    const listener = await MuxSocket.connect(sim.usbmuxd);
    listener.send(
      { MessageType: 'Listen', ProgName: 'conformance', ClientVersionString: 'test', kLibUSBMuxVersion: 3 },
      5,
    );
    const result = await listener.read();
    expect(result.plist).toEqual({ MessageType: 'Result', Number: 0 });
    for (let i = 0; i < udids.length; i++) expect((await listener.read()).plist?.MessageType).toBe('Attached');

    const r = await tool('idevicediagnostics', ['-u', udid, 'restart']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('Restarting device.');

    const events: MuxPacket[] = [];
    while (events.length < 2) events.push(await listener.read(30_000));
    listener.close();
    expect(events[0]?.plist).toEqual({ MessageType: 'Detached', DeviceID: before?.deviceId });
    const attached = events[1]?.plist;
    expect(attached?.MessageType).toBe('Attached');
    expect((attached?.Properties as Record<string, unknown> | undefined)?.SerialNumber).toBe(udid);
    expect(attached?.DeviceID).not.toBe(before?.deviceId);

    const after = (await listDevices(sim.usbmuxd)).find((d) => d.udid === udid);
    expect(after?.deviceId).toBe(attached?.DeviceID);
    expect((await state(udid)).deviceId).toBe(after?.deviceId);
    // Same device, same state: it still knows the pairing and the tools still find it.
    const ids = await tool('idevice_id', ['-l']);
    expect(ids.stdout).toContain(udid);
  });
});
