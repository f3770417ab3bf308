/**
 * The real client against the virtual fleet: every lockdown error path with its code, pairing with
 * the Trust dialog, sessions with SHA-1 and SHA-256 pair certificates, records through usbmuxd.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import {
  connectLockdown,
  findDevice,
  loadPairRecord,
  openDevice,
  pairDevice,
  type DeviceProgress,
} from '../../src/device/device.ts';
import { type LockdownClient } from '../../src/device/lockdown.ts';
import { certificateFacts, generatePairRecord } from '../../src/device/pairing.ts';
import { UsbmuxClient } from '../../src/device/usbmux.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';

const sims: Simulator[] = [];
const clients: LockdownClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of sims.splice(0)) await s.stop();
});

async function fleet(preset: string, devices = 1): Promise<{ sim: Simulator; mux: UsbmuxClient; udid: string }> {
  const sim = await startSimulator({ devices, preset, timing: 'none' });
  sims.push(sim);
  const udid = sim.udids()[0];
  if (udid === undefined) throw new Error('no device');
  return { sim, mux: new UsbmuxClient(sim.usbmuxdAddress), udid };
}

async function lockdownFor(mux: UsbmuxClient, udid: string): Promise<LockdownClient> {
  const client = await connectLockdown(mux, await findDevice(mux, udid));
  clients.push(client);
  return client;
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

describe('pairing against the virtual fleet', () => {
  it('pairs a fresh device, saves the record through usbmuxd (binary plist) and starts a TLS session', async () => {
    const { sim, mux, udid } = await fleet('fresh');
    const events: DeviceProgress['stage'][] = [];
    const session = await openDevice(mux, udid, { onProgress: (e) => events.push(e.stage) });
    try {
      expect(session.pairedNow).toBe(true);
      expect(session.lockdown.inSession).toBe(true);
      expect(events).toEqual(['pairing', 'paired']);
      expect(await session.lockdown.getValue(undefined, 'UniqueDeviceID')).toBe(udid);
      // A session-only domain answers inside the session.
      expect(await session.lockdown.getValue('com.apple.mobile.battery')).toMatchObject({ HasBattery: true });
    } finally {
      await session.close();
    }
    const stored = await loadPairRecord(mux, udid);
    expect(stored?.hostId).toBe(session.record.hostId);
    expect(stored?.escrowBag?.length).toBeGreaterThan(0);
    expect(sim.state(udid).pairings.map((p) => p.hostId)).toEqual([session.record.hostId]);
    // A second open reuses the record: no new pairing on the device.
    const again = await openDevice(mux, udid);
    await again.close();
    expect(again.pairedNow).toBe(false);
    expect(sim.state(udid).pairings).toHaveLength(1);
  });

  it.each(['sha1', 'sha256'] as const)('runs sessions with %s pair certificates', async (hash) => {
    const { mux, udid } = await fleet('fresh');
    const session = await openDevice(mux, udid, { hash });
    try {
      expect(certificateFacts(session.record.hostCertificate).signatureHash).toBe(hash);
      expect(certificateFacts(session.record.deviceCertificate).signatureHash).toBe(hash);
      expect(typeof (await session.lockdown.getValue(undefined, 'ProductVersion'))).toBe('string');
    } finally {
      await session.close();
    }
  });

  it('waits for Trust (progress event trust-pending) and succeeds once the person accepts', async () => {
    const { sim, mux, udid } = await fleet('in-use');
    sim.unlock(udid);
    const events: string[] = [];
    const session = await openDevice(mux, udid, {
      onProgress: (e) => {
        events.push(e.stage);
        if (e.stage === 'trust-pending') sim.trust(udid, 'accept');
      },
    });
    await session.close();
    expect(events).toEqual(['pairing', 'trust-pending', 'paired']);
    expect(sim.state(udid).pairings).toHaveLength(1);
  });

  it('reports "Don\'t Trust" as lockdown/trust-denied', async () => {
    const { sim, mux, udid } = await fleet('in-use');
    sim.unlock(udid);
    const err = await openDevice(mux, udid, {
      onProgress: (e) => e.stage === 'trust-pending' && sim.trust(udid, 'deny'),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KitError);
    expect((err as KitError).code).toBe('lockdown/trust-denied');
    expect((err as KitError).udid).toBe(udid);
    expect(sim.state(udid).pairings).toHaveLength(0);
  });

  it('gives up waiting for Trust with lockdown/trust-pending (retryable)', async () => {
    const { sim, mux, udid } = await fleet('in-use');
    sim.unlock(udid);
    const err = (await openDevice(mux, udid, { pairTimeoutMs: 1_500 }).catch((e: unknown) => e)) as KitError;
    expect(err.code).toBe('lockdown/trust-pending');
    expect(err.retryable).toBe(true);
  });

  it('reports a passcode-locked device as lockdown/password-protected', async () => {
    const { sim, mux, udid } = await fleet('in-use');
    sim.lock(udid);
    expect(await codeOf(openDevice(mux, udid))).toBe('lockdown/password-protected');
  });

  it('maps an injected Pair error (fault error=Pair:PasswordProtected) through the table', async () => {
    const { sim, mux, udid } = await fleet('fresh');
    sim.fault(udid, 'error=Pair:PasswordProtected');
    expect(await codeOf(openDevice(mux, udid))).toBe('lockdown/password-protected');
  });

  it('InvalidHostID after the device forgets the pairing; openDevice pairs again by itself', async () => {
    const { sim, mux, udid } = await fleet('fresh');
    const first = await openDevice(mux, udid);
    await first.close();
    sim.forget(udid);
    const record = await loadPairRecord(mux, udid);
    if (record === null) throw new Error('record missing');
    const lockdown = await lockdownFor(mux, udid);
    const err = (await lockdown.startSession(record).catch((e: unknown) => e)) as KitError;
    expect(err.code).toBe('lockdown/invalid-host-id');
    expect(err.message).toContain('pairing removed on the device');
    const second = await openDevice(mux, udid);
    await second.close();
    expect(second.pairedNow).toBe(true);
    expect(second.record.hostId).not.toBe(record.hostId);
    expect(sim.state(udid).pairings.map((p) => p.hostId)).toEqual([second.record.hostId]);
  });

  it("with pair: 'never' an unpaired device is lockdown/missing-pair-record", async () => {
    const { mux, udid } = await fleet('fresh');
    expect(await codeOf(openDevice(mux, udid, { pair: 'never' }))).toBe('lockdown/missing-pair-record');
  });

  it('Unpair removes the pairing on the device; ValidatePair then says InvalidHostID', async () => {
    const { sim, mux, udid } = await fleet('fresh');
    const session = await openDevice(mux, udid);
    await session.close();
    const lockdown = await lockdownFor(mux, udid);
    await lockdown.validatePair(session.record);
    await lockdown.unpair(session.record);
    expect(sim.state(udid).pairings).toHaveLength(0);
    expect(await codeOf(lockdown.validatePair(session.record))).toBe('lockdown/invalid-host-id');
  });

  it('an unknown device is device/not-found (exit 3)', async () => {
    const { mux } = await fleet('fresh');
    const err = (await openDevice(mux, 'NOPE').catch((e: unknown) => e)) as KitError;
    expect(err.code).toBe('device/not-found');
    expect(err.exitCode).toBe(3);
  });
});

describe('lockdown requests and their error codes', () => {
  it('QueryType and the typed pre-session identity (ECID as bigint)', async () => {
    const { sim, mux, udid } = await fleet('fresh');
    const lockdown = await lockdownFor(mux, udid);
    expect(await lockdown.queryType()).toBe('com.apple.mobile.lockdown');
    const id = await lockdown.getIdentity();
    const state = sim.state(udid);
    expect(id.udid).toBe(udid);
    expect(id.serialNumber).toBe(state.serial);
    expect(id.uniqueChipId).toBe(BigInt(state.ecid));
    expect(id.productType).toBe(state.productType);
    expect(id.devicePublicKey?.toString()).toContain('PUBLIC KEY');
    expect(lockdown.productVersion).toBe(id.productVersion);
  });

  it('session-only requests without a session are lockdown/session-inactive', async () => {
    const { mux, udid } = await fleet('fresh');
    const lockdown = await lockdownFor(mux, udid);
    expect(await codeOf(lockdown.startService('com.apple.mobile.diagnostics_relay'))).toBe('lockdown/session-inactive');
    expect(await codeOf(lockdown.setValue(undefined, 'DeviceName', 'x'))).toBe('lockdown/session-inactive');
  });

  it('an unknown service is lockdown/invalid-service; an unknown key lockdown/missing-value', async () => {
    const { mux, udid } = await fleet('fresh');
    const session = await openDevice(mux, udid);
    try {
      expect(await codeOf(session.lockdown.startService('com.apple.instruments.remoteserver'))).toBe(
        'lockdown/invalid-service',
      );
      expect(await codeOf(session.lockdown.getValue(undefined, 'NoSuchKeyAnywhere'))).toBe('lockdown/missing-value');
    } finally {
      await session.close();
    }
  });

  it('StartSession twice on one connection is lockdown/session-active (refused on our side)', async () => {
    const { mux, udid } = await fleet('fresh');
    const session = await openDevice(mux, udid);
    try {
      expect(await codeOf(session.lockdown.startSession(session.record))).toBe('lockdown/session-active');
    } finally {
      await session.close();
    }
  });

  it('SetValue and RemoveValue in a session', async () => {
    const { sim, mux, udid } = await fleet('fresh');
    const session = await openDevice(mux, udid);
    try {
      await session.lockdown.setValue(undefined, 'DeviceName', 'カート1-01');
      expect(await session.lockdown.getValue(undefined, 'DeviceName')).toBe('カート1-01');
      expect(sim.state(udid).deviceName).toBe('カート1-01');
      expect(await codeOf(session.lockdown.removeValue('com.example.none', 'Nothing'))).toBe(
        'lockdown/remove-prohibited',
      );
    } finally {
      await session.close();
    }
  });

  it('pairs with a record we generate ourselves through pairDevice and the raw client', async () => {
    const { mux, udid } = await fleet('fresh');
    const device = await findDevice(mux, udid);
    const lockdown = await lockdownFor(mux, udid);
    const record = await pairDevice(mux, device, lockdown);
    await lockdown.startSession(record);
    expect(lockdown.sessionId).toBeTypeOf('string');
    await lockdown.stopSession();
    expect(lockdown.inSession).toBe(false);
    // A record the device never saw is refused at StartSession.
    const stranger = await generatePairRecord({
      devicePublicKey: (await (await lockdownFor(mux, udid)).getIdentity()).devicePublicKey ?? '',
      systemBuid: 'X',
    });
    expect(await codeOf((await lockdownFor(mux, udid)).startSession(stranger))).toBe('lockdown/invalid-host-id');
  });
});
