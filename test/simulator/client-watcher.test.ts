/**
 * DeviceWatcher against the virtual fleet: attach/detach keyed by UDID, a restart bringing the
 * device back with a new DeviceID, and usbmuxd restarting underneath a running watcher.
 */
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { openDevice } from '../../src/device/device.ts';
import { DiagnosticsClient, waitForReturn } from '../../src/device/services/diagnostics.ts';
import { UsbmuxClient, type UsbmuxDevice } from '../../src/device/usbmux.ts';
import { DeviceWatcher } from '../../src/device/watcher.ts';
import { KitError } from '../../src/errors.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';

const sims: Simulator[] = [];
const watchers: DeviceWatcher[] = [];
afterEach(async () => {
  for (const w of watchers.splice(0)) w.stop();
  for (const s of sims.splice(0)) await s.stop();
});

async function setup(devices = 2): Promise<{ sim: Simulator; mux: UsbmuxClient; watcher: DeviceWatcher }> {
  const sim = await startSimulator({ devices, preset: 'fresh', timing: 'none' });
  sims.push(sim);
  const mux = new UsbmuxClient(sim.usbmuxdAddress);
  const watcher = new DeviceWatcher(mux, { backoffMinMs: 20, backoffMaxMs: 200 });
  watchers.push(watcher);
  await watcher.start();
  return { sim, mux, watcher };
}

function nextEvent(watcher: DeviceWatcher, name: 'attached' | 'detached', udid: string): Promise<UsbmuxDevice> {
  return new Promise((resolve) => {
    const on = (d: UsbmuxDevice): void => {
      if (d.udid !== udid) return;
      watcher.off(name, on);
      resolve(d);
    };
    watcher.on(name, on);
  });
}

describe('DeviceWatcher', () => {
  it('knows the attached devices at start, keyed by UDID', async () => {
    const { sim, watcher } = await setup(3);
    expect(
      watcher
        .devices()
        .map((d) => d.udid)
        .sort(),
    ).toEqual([...sim.udids()].sort());
    for (const d of watcher.devices()) expect(d.connectionType).toBe('USB');
  });

  it('reports unplug as detached and replug as attached with a new DeviceID', async () => {
    const { sim, watcher } = await setup(2);
    const udid = sim.udids()[0] as string;
    const before = watcher.get(udid);
    const detached = nextEvent(watcher, 'detached', udid);
    sim.unplug(udid);
    expect((await detached).deviceId).toBe(before?.deviceId);
    expect(watcher.get(udid)).toBeUndefined();
    const attached = nextEvent(watcher, 'attached', udid);
    const replugged = sim.replug(udid);
    const back = await attached;
    await replugged;
    expect(back.udid).toBe(udid);
    expect(back.deviceId).not.toBe(before?.deviceId);
    expect(watcher.get(udid)?.deviceId).toBe(back.deviceId);
  });

  it('emits paired when a record is saved through usbmuxd with the DeviceID', async () => {
    const { sim, mux, watcher } = await setup(1);
    const udid = sim.udids()[0] as string;
    const paired = once(watcher, 'paired') as Promise<[UsbmuxDevice]>;
    const session = await openDevice(mux, udid);
    await session.close();
    const [device] = await paired;
    expect(device.udid).toBe(udid);
  });

  it('recovers when usbmuxd restarts: reconnects, re-lists, reports changes made meanwhile', async () => {
    const { sim, watcher } = await setup(3);
    const [a, b] = sim.udids() as [string, string];
    const detachedB = nextEvent(watcher, 'detached', b);
    const attached: string[] = [];
    watcher.on('attached', (d) => attached.push(d.udid));
    let plugged: string | undefined;
    // While the watcher has lost usbmuxd, one device leaves and a new one arrives.
    const disconnected = new Promise<KitError>((resolve) =>
      watcher.once('disconnected', (err) => {
        sim.unplug(b);
        plugged = sim.plug('fresh');
        resolve(err);
      }),
    );
    const reconnected = once(watcher, 'reconnected');
    await sim.restartUsbmuxd();
    const err = await disconnected;
    expect(err).toBeInstanceOf(KitError);
    expect(err.code).toBe('usbmux/unavailable');
    await reconnected;
    await detachedB;
    expect(watcher.get(a)).toBeDefined();
    expect(watcher.get(b)).toBeUndefined();
    expect(plugged).toBeDefined();
    expect(watcher.get(plugged as string)).toBeDefined();
    expect(attached).toEqual([plugged]);
    expect(watcher.devices()).toHaveLength(3);
  });

  it('waitFor resolves at once for an attached device and times out with device/timeout for an absent one', async () => {
    const { sim, watcher } = await setup(1);
    const udid = sim.udids()[0] as string;
    expect((await watcher.waitFor(udid)).udid).toBe(udid);
    const err = (await watcher.waitFor('NOT-THERE', { timeoutMs: 50 }).catch((e: unknown) => e)) as KitError;
    expect(err.code).toBe('device/timeout');
  });
});

describe('restart through diagnostics_relay', () => {
  it('the device leaves and returns with the same UDID and a new DeviceID', async () => {
    const { sim, mux, watcher } = await setup(1);
    const udid = sim.udids()[0] as string;
    const oldId = watcher.get(udid)?.deviceId;
    const returned = waitForReturn(watcher, udid, { timeoutMs: 30_000 });
    const detached = nextEvent(watcher, 'detached', udid);
    const session = await openDevice(mux, udid);
    const diag = await DiagnosticsClient.start(session.lockdown, { escrowBag: session.record.escrowBag as Buffer });
    await diag.restart();
    await diag.goodbye();
    await session.close();
    expect((await detached).deviceId).toBe(oldId);
    const back = await returned;
    expect(back.udid).toBe(udid);
    expect(back.deviceId).not.toBe(oldId);
    // And it answers again, with the pairing kept.
    const again = await openDevice(mux, udid);
    await again.close();
    expect(again.pairedNow).toBe(false);
  });

  it('EnterRecovery: the device leaves usbmuxd (recovery mode is watched over USB, not usbmuxd)', async () => {
    const { sim, mux, watcher } = await setup(1);
    const udid = sim.udids()[0] as string;
    const detached = nextEvent(watcher, 'detached', udid);
    const session = await openDevice(mux, udid);
    await session.lockdown.enterRecovery();
    await session.close();
    await detached;
    expect(watcher.get(udid)).toBeUndefined();
    expect(sim.state(udid).mode).toBe('recovery');
  });

  it('shutdown: the device leaves and does not come back', async () => {
    const { sim, mux, watcher } = await setup(1);
    const udid = sim.udids()[0] as string;
    const detached = nextEvent(watcher, 'detached', udid);
    const session = await openDevice(mux, udid);
    const diag = await DiagnosticsClient.start(session.lockdown);
    await diag.shutdown();
    await diag.goodbye();
    await session.close();
    await detached;
    expect(watcher.get(udid)).toBeUndefined();
    expect(sim.state(udid).mode).not.toBe('normal');
  });
});
