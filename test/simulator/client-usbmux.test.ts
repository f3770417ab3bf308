/**
 * The usbmuxd client's other operations against the simulator's usbmuxd: ReadBUID, pair records
 * (ours in binary, other tools' in XML with PKCS#1 keys), ListListeners, Connect errors.
 */
import crypto from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { findDevice, loadPairRecord, openDevice } from '../../src/device/device.ts';
import { pairRecordToPlist } from '../../src/device/pairing.ts';
import { LOCKDOWN_PORT, UsbmuxClient } from '../../src/device/usbmux.ts';
import { DeviceWatcher } from '../../src/device/watcher.ts';
import { encodeXml } from '../../src/plist/index.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';

const sims: Simulator[] = [];
afterEach(async () => {
  for (const s of sims.splice(0)) await s.stop();
});

async function fleet(): Promise<{ sim: Simulator; mux: UsbmuxClient; udid: string }> {
  const sim = await startSimulator({ devices: 1, preset: 'fresh', timing: 'none' });
  sims.push(sim);
  return { sim, mux: new UsbmuxClient(sim.usbmuxdAddress), udid: sim.udids()[0] as string };
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

describe('usbmuxd operations', () => {
  it('ReadBUID answers the host SystemBUID, which our pairings carry', async () => {
    const { sim, mux, udid } = await fleet();
    const buid = await mux.readBuid();
    expect(buid).toBe(sim.systemBuid);
    const session = await openDevice(mux, udid);
    await session.close();
    expect(session.record.systemBuid).toBe(buid);
  });

  it('ReadPairRecord is null without a record; Save, Read and Delete round-trip', async () => {
    const { mux, udid } = await fleet();
    expect(await mux.readPairRecord(udid)).toBeNull();
    const session = await openDevice(mux, udid);
    await session.close();
    const dict = await mux.readPairRecord(udid);
    expect(dict?.HostID).toBe(session.record.hostId);
    expect(await mux.deletePairRecord(udid)).toBe(true);
    expect(await mux.readPairRecord(udid)).toBeNull();
    expect(await mux.deletePairRecord(udid)).toBe(false);
  });

  it('uses a record another tool saved as XML with PKCS#1 keys (go-ios style) without pairing again', async () => {
    const { sim, mux, udid } = await fleet();
    const first = await openDevice(mux, udid);
    await first.close();
    const pkcs1 = (pem: Buffer): Buffer =>
      Buffer.from(crypto.createPrivateKey(pem).export({ type: 'pkcs1', format: 'pem' }).toString());
    const goIos = {
      ...pairRecordToPlist(first.record),
      HostPrivateKey: pkcs1(first.record.hostPrivateKey),
      RootPrivateKey: pkcs1(first.record.rootPrivateKey),
    };
    await mux.savePairRecord(udid, encodeXml(goIos));
    const stored = await loadPairRecord(mux, udid);
    expect(stored?.hostPrivateKey.toString()).toContain('BEGIN RSA PRIVATE KEY');
    const again = await openDevice(mux, udid);
    await again.close();
    expect(again.pairedNow).toBe(false);
    expect(sim.state(udid).pairings).toHaveLength(1);
  });

  it('ListListeners shows a listening watcher under our ProgName', async () => {
    const { mux } = await fleet();
    const watcher = new DeviceWatcher(mux);
    await watcher.start();
    try {
      const listeners = await mux.listListeners();
      expect(listeners.some((l) => l.progName === 'kitting')).toBe(true);
    } finally {
      watcher.stop();
    }
  });

  it('Connect to an unknown DeviceID is usbmux/device-gone; to a closed port usbmux/connection-refused', async () => {
    const { mux, udid } = await fleet();
    const device = await findDevice(mux, udid);
    expect(await codeOf(mux.connect(device.deviceId + 1000, LOCKDOWN_PORT))).toBe('usbmux/device-gone');
    expect(await codeOf(mux.connect(device.deviceId, 1))).toBe('usbmux/connection-refused');
    const raw = await mux.connect(device.deviceId, LOCKDOWN_PORT);
    raw.destroy();
  });
});
