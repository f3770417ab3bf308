/**
 * A misbehaving device (simulator faults) gives clear codes and never hangs the client; and a
 * 64-device fleet is listed and queried concurrently.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { findDevice, openDevice } from '../../src/device/device.ts';
import { LockdownClient } from '../../src/device/lockdown.ts';
import { UsbmuxClient } from '../../src/device/usbmux.ts';
import { Station } from '../../src/station.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';

const sims: Simulator[] = [];
afterEach(async () => {
  for (const s of sims.splice(0)) await s.stop();
});

async function fleet(devices: number): Promise<{ sim: Simulator; mux: UsbmuxClient }> {
  const sim = await startSimulator({ devices, preset: 'fresh', timing: 'none' });
  sims.push(sim);
  return { sim, mux: new UsbmuxClient(sim.usbmuxdAddress) };
}

async function getValueUnderFault(spec: string, timeoutMs = 2_000): Promise<KitError> {
  const { sim, mux } = await fleet(1);
  const udid = sim.udids()[0] as string;
  const lockdown = await LockdownClient.connect(mux, await findDevice(mux, udid), { timeoutMs });
  sim.fault(udid, spec);
  try {
    await lockdown.getValue(undefined, 'ProductVersion');
  } catch (err) {
    if (err instanceof KitError) return err;
    throw err;
  } finally {
    lockdown.close();
  }
  throw new Error(`fault ${spec} did not fail the request`);
}

describe('misbehaving devices', () => {
  it('an oversized length prefix → device/frame-too-large', async () => {
    const err = await getValueUnderFault('oversize-frame');
    expect(err.code).toBe('device/frame-too-large');
  });

  it('garbage instead of a plist → device/bad-reply', async () => {
    const err = await getValueUnderFault('garbage');
    expect(err.code).toBe('device/bad-reply');
  });

  it('a connection reset in the middle of a reply → device/connection-lost (retryable)', async () => {
    const err = await getValueUnderFault('disconnect-after-bytes=10');
    expect(err.code).toBe('device/connection-lost');
    expect(err.retryable).toBe(true);
  });

  it('a disconnect after the request → device/connection-lost', async () => {
    const err = await getValueUnderFault('disconnect-after=GetValue');
    expect(err.code).toBe('device/connection-lost');
  });

  it('a device that answers too late → device/timeout (retryable)', async () => {
    const err = await getValueUnderFault('delay-ms=5000', 200);
    expect(err.code).toBe('device/timeout');
    expect(err.retryable).toBe(true);
  });

  it('an injected lockdown error string keeps its code (error=GetValue:InvalidService)', async () => {
    const err = await getValueUnderFault('error=GetValue:InvalidService');
    expect(err.code).toBe('lockdown/invalid-service');
  });

  it('a fault during pairing fails openDevice with a code and leaves no half-saved record', async () => {
    const { sim, mux } = await fleet(1);
    const udid = sim.udids()[0] as string;
    sim.fault(udid, 'disconnect-after=Pair');
    const err = (await openDevice(mux, udid).catch((e: unknown) => e)) as KitError;
    expect(err.code).toBe('device/connection-lost');
    expect(await mux.readPairRecord(udid)).toBeNull();
  });
});

describe('a 64-device fleet', () => {
  it('is listed and queried concurrently (pairing each device, reading values in sessions)', async () => {
    const { sim, mux } = await fleet(64);
    const devices = await mux.listDevices();
    expect(devices).toHaveLength(64);
    expect(new Set(devices.map((d) => d.deviceId)).size).toBe(64);
    const results = await Promise.all(
      devices.map(async (d) => {
        const session = await openDevice(mux, d.udid);
        try {
          return {
            udid: d.udid,
            id: await session.lockdown.getValue(undefined, 'UniqueDeviceID'),
            serial: await session.lockdown.getValue(undefined, 'SerialNumber'),
          };
        } finally {
          await session.close();
        }
      }),
    );
    for (const r of results) {
      expect(r.id).toBe(r.udid);
      expect(r.serial).toBe(sim.state(r.udid).serial);
    }
    // The station's list reads all 64 in one go, now paired.
    const station = new Station({ usbmuxdAddress: sim.usbmuxdAddress, dataDir: '/nonexistent' });
    const listed = await station.listDevices();
    expect(listed).toHaveLength(64);
    expect(listed.every((d) => d.paired && d.error === undefined && d.serial !== null && d.model !== null)).toBe(true);
  });
});
