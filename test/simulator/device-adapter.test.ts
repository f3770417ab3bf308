/**
 * The device port over the virtual fleet (`src/kitting/device-adapter.ts`): a read (inspection,
 * settings) answers the same read again only while nothing was written to the device and the
 * device did not re-attach; every write makes the next read ask the device again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { UsbmuxClient } from '../../src/device/usbmux.ts';
import { DeviceWatcher } from '../../src/device/watcher.ts';
import { createDeviceAdapter, type ClosableKitDevice } from '../../src/kitting/device-adapter.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function paired(): Promise<{ sim: Simulator; udid: string; port: ClosableKitDevice; watcher: DeviceWatcher }> {
  const sim = await startSimulator({ devices: 0, timing: 'none' });
  cleanups.push(() => sim.stop());
  const udid = sim.plug('in-use');
  sim.unlock(udid);
  sim.trust(udid, 'accept');
  const watcher = new DeviceWatcher(new UsbmuxClient(sim.usbmuxdAddress));
  await watcher.start();
  cleanups.push(() => watcher.stop());
  // A window no test run outlasts, so what is asserted is the memo's rules, not the machine's speed.
  const port = createDeviceAdapter(udid, {
    usbmux: new UsbmuxClient(sim.usbmuxdAddress),
    watcher,
    readFreshMs: 600_000,
  });
  cleanups.push(() => port.close());
  await port.pair({ mode: 'normal' });
  return { sim, udid, port, watcher };
}

describe('device adapter inspections', () => {
  it('answers a second inspect() from the first while nothing was written; a write reads the device again', async () => {
    const { sim, udid, port } = await paired();
    const first = await port.inspect();
    expect(await port.inspect()).toBe(first);
    const settings = await port.readSettings();
    expect(await port.readSettings()).toBe(settings);
    await port.writeSettings({ deviceName: 'Renamed by the test' });
    expect((await port.readSettings()).deviceName).toBe('Renamed by the test');
    const after = await port.inspect();
    expect(after).not.toBe(first);
    expect(after).toEqual(first);
    // The device changed by itself (a person at the screen): after a write the answer is the device's.
    sim.set(udid, { batteryLevel: 12 });
    await port.writeSettings({ deviceName: 'Again' });
    expect((await port.inspect()).batteryLevel).toBe(12);
  });

  it('a device that re-attached (new DeviceID) is inspected again', async () => {
    const { sim, udid, port, watcher } = await paired();
    const first = await port.inspect();
    const gone = new Promise<void>((resolve) => watcher.once('detached', () => resolve()));
    sim.unplug(udid);
    await gone;
    const back = new Promise<void>((resolve) => watcher.once('attached', () => resolve()));
    await sim.replug(udid);
    await back;
    const again = await port.inspect();
    expect(again).not.toBe(first);
    expect(again.activationState).toBe(first.activationState);
  });
});
