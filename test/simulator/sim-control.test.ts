/**
 * The simulator through its own doors: the control API (HTTP and sim-ctl), presets, DeviceID
 * renewal on replug/reboot/restart, Listen event order, usbmuxd error numbers, lockdown session
 * rules with a full TLS session, and every fault observed at the socket level.
 */
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import forge from 'node-forge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { decodePlist, encodeXml, isPlistDict, type PlistDict } from '../../src/plist/index.ts';
import { generateIdentity } from '../../src/simulator/identity.ts';
import { ControlClient, startSimulator, type Simulator } from '../../src/simulator/index.ts';
import {
  ByteReader,
  deviceConnect,
  listDevices,
  lockdownConnect,
  MuxSocket,
  muxRequest,
  spawnSim,
  type DeviceSocket,
  type MuxPacket,
} from '../helpers/sim-process.ts';

const dirs: string[] = [];
const sims: Simulator[] = [];

async function newSim(options: Parameters<typeof startSimulator>[0] = {}): Promise<Simulator> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-control-'));
  dirs.push(dir);
  const sim = await startSimulator({ socketPath: path.join(dir, 'usbmuxd.sock'), ...options });
  sims.push(sim);
  return sim;
}

afterAll(async () => {
  for (const s of sims) await s.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

// ---- a host's pairing material (what libimobiledevice generates), built with forge -------------

interface HostMaterial {
  hostId: string;
  hostCertPem: string;
  hostKeyPem: string;
  rootCertPem: string;
  deviceCertPem: string;
}

const hostKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rootKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });

function cert(publicKey: forge.pki.PublicKey, signer: forge.pki.rsa.PrivateKey, ca: boolean): string {
  const c = forge.pki.createCertificate();
  c.publicKey = publicKey;
  c.serialNumber = '00';
  c.validity.notBefore = new Date();
  c.validity.notAfter = new Date(Date.now() + 10 * 365 * 86400_000);
  c.setSubject([]);
  c.setIssuer([]);
  c.setExtensions(
    ca
      ? [{ name: 'basicConstraints', cA: true, critical: true }]
      : [{ name: 'basicConstraints', cA: false, critical: true }],
  );
  c.sign(signer, forge.md.sha1.create());
  return forge.pki.certificateToPem(c);
}

function hostMaterial(devicePublicKeyPem: string, hostId = 'E1D2C3B4-A596-4788-9900-AABBCCDDEEFF'): HostMaterial {
  const rootPriv: forge.pki.rsa.PrivateKey = forge.pki.privateKeyFromPem(
    rootKeys.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
  );
  const rootPub = forge.pki.publicKeyFromPem(rootKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString());
  const hostPub = forge.pki.publicKeyFromPem(hostKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString());
  return {
    hostId,
    rootCertPem: cert(rootPub, rootPriv, true),
    hostCertPem: cert(hostPub, rootPriv, false),
    hostKeyPem: hostKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    deviceCertPem: cert(forge.pki.publicKeyFromPem(devicePublicKeyPem), rootPriv, false),
  };
}

function pairRequest(m: HostMaterial, systemBuid: string): PlistDict {
  return {
    Label: 'vitest',
    PairRecord: {
      DeviceCertificate: Buffer.from(m.deviceCertPem),
      HostCertificate: Buffer.from(m.hostCertPem),
      HostID: m.hostId,
      RootCertificate: Buffer.from(m.rootCertPem),
      SystemBUID: systemBuid,
    },
    PairingOptions: { ExtendedPairingErrors: true },
    ProtocolVersion: '2',
    Request: 'Pair',
  };
}

async function material(sim: Simulator, udid: string, hostId?: string): Promise<HostMaterial> {
  const ld = await lockdownConnect(sim.usbmuxdAddress, udid);
  const r = await ld.request({ Label: 'vitest', Key: 'DevicePublicKey', Request: 'GetValue' });
  ld.close();
  if (!Buffer.isBuffer(r.Value)) throw new Error('no DevicePublicKey');
  return hostMaterial(r.Value.toString(), hostId);
}

async function pairOnce(sim: Simulator, udid: string, m: HostMaterial): Promise<PlistDict> {
  const ld = await lockdownConnect(sim.usbmuxdAddress, udid);
  try {
    return await ld.request(pairRequest(m, sim.systemBuid));
  } finally {
    ld.close();
  }
}

/** TLS as libimobiledevice does it (client certificate = the root certificate). */
function startClientTls(ld: DeviceSocket, m: HostMaterial, presentRoot = true): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    ld.socket.removeAllListeners('data');
    const t = tls.connect({
      socket: ld.socket,
      cert: presentRoot ? m.rootCertPem : m.hostCertPem,
      key: presentRoot ? rootKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() : m.hostKeyPem,
      rejectUnauthorized: false,
      ciphers: 'DEFAULT:@SECLEVEL=0',
      minVersion: 'TLSv1',
    });
    t.once('secureConnect', () => resolve(t));
    t.once('error', reject);
  });
}

/** Framed plist request over a TLS socket. */
async function tlsRequest(reader: ByteReader, t: tls.TLSSocket, dict: PlistDict): Promise<PlistDict> {
  const body = encodeXml(dict);
  const p = Buffer.alloc(4);
  p.writeUInt32BE(body.length, 0);
  t.write(Buffer.concat([p, body]));
  const len = (await reader.read(4)).readUInt32BE(0);
  const v = decodePlist(await reader.read(len));
  if (!isPlistDict(v)) throw new Error('not a dict');
  return v;
}

async function listen(address: string): Promise<MuxSocket> {
  const s = await MuxSocket.connect(address);
  s.send(
    {
      MessageType: 'Listen',
      ProgName: 'vitest-listener',
      ClientVersionString: 'test',
      kLibUSBMuxVersion: 3,
      BundleID: 'org.example.vitest',
    },
    9,
  );
  return s;
}

// ---- tests -------------------------------------------------------------------------------------

describe('Listen and DeviceIDs', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await newSim({ devices: 3, seed: 'listen-order' });
  });

  it('answers Result (tag echoed) then one Attached per device, tag 0, in DeviceID order', async () => {
    const l = await listen(sim.usbmuxdAddress);
    const first = await l.read();
    expect(first.tag).toBe(9);
    expect(first.plist).toEqual({ MessageType: 'Result', Number: 0 });
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await l.read();
      expect(p.tag).toBe(0);
      expect(p.version).toBe(1);
      expect(p.plist?.MessageType).toBe('Attached');
      const props = p.plist?.Properties as PlistDict;
      expect(Object.keys(props).sort()).toEqual([
        'ConnectionSpeed',
        'ConnectionType',
        'DeviceID',
        'LocationID',
        'ProductID',
        'SerialNumber',
      ]);
      expect(props.DeviceID).toBe(p.plist?.DeviceID);
      ids.push(Number(p.plist?.DeviceID));
    }
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(3);
    l.close();
  });

  it('plug, unplug, replug and reboot show up live; a returning device gets a new DeviceID', async () => {
    const l = await listen(sim.usbmuxdAddress);
    for (let i = 0; i < 4; i++) await l.read();
    const udid = sim.plug('activated');
    const added = await l.read();
    expect(added.plist?.MessageType).toBe('Attached');
    expect((added.plist?.Properties as PlistDict).SerialNumber).toBe(udid);
    const id1 = Number(added.plist?.DeviceID);

    sim.unplug(udid);
    expect((await l.read()).plist).toEqual({ MessageType: 'Detached', DeviceID: id1 });
    expect(sim.state(udid).attached).toBe(false);
    expect((await listDevices(sim.usbmuxdAddress)).map((d) => d.udid)).not.toContain(udid);

    await sim.replug(udid);
    const back = await l.read();
    expect(back.plist?.MessageType).toBe('Attached');
    const id2 = Number(back.plist?.DeviceID);
    expect(id2).toBeGreaterThan(id1);
    expect((back.plist?.Properties as PlistDict).SerialNumber).toBe(udid);

    sim.reboot(udid);
    expect((await l.read()).plist).toEqual({ MessageType: 'Detached', DeviceID: id2 });
    const rebooted = await l.read(10_000);
    expect(rebooted.plist?.MessageType).toBe('Attached');
    expect(Number(rebooted.plist?.DeviceID)).toBeGreaterThan(id2);
    expect(sim.state(udid).deviceId).toBe(rebooted.plist?.DeviceID);
    l.close();
  });

  it('puts 8 devices on a bus: LocationID is bus << 16 | address', async () => {
    const many = await newSim({ devices: 10, seed: 'hubs' });
    const devs = await listDevices(many.usbmuxdAddress);
    const buses = devs.map((d) => Number(d.properties.LocationID) >> 16);
    expect(buses.filter((b) => b === 1)).toHaveLength(8);
    expect(buses.filter((b) => b === 2)).toHaveLength(2);
    for (const d of devs) expect(Number(d.properties.LocationID) & 0xffff).toBeGreaterThan(0);
  });

  it('lists the Listen clients with ListListeners', async () => {
    const l = await listen(sim.usbmuxdAddress);
    await l.read();
    const r = await muxRequest(sim.usbmuxdAddress, { MessageType: 'ListListeners', ProgName: 'asker' });
    const list = r.plist?.ListenerList as PlistDict[];
    const me = list.find((e) => e.ProgName === 'vitest-listener');
    expect(me).toBeDefined();
    expect(Object.keys(me ?? {}).sort()).toEqual([
      'Blacklisted',
      'BundleID',
      'ConnType',
      'ID String',
      'ProgName',
      'kLibUSBMuxVersion',
    ]);
    expect(me?.['ID String']).toMatch(/^\d+-vitest-listener$/);
    expect(me?.kLibUSBMuxVersion).toBe(3);
    l.close();
  });

  it('restartUsbmuxd closes every client and listens again at the same address', async () => {
    const l = await listen(sim.usbmuxdAddress);
    await l.read();
    const before = sim.usbmuxdAddress;
    await sim.restartUsbmuxd();
    await expect(l.reader.readToEnd()).resolves.toBeInstanceOf(Buffer);
    expect(l.reader.closed).toBe(true);
    expect(sim.usbmuxdAddress).toBe(before);
    expect(await listDevices(sim.usbmuxdAddress)).toHaveLength(sim.list().filter((d) => d.attached).length);
  });
});

describe('usbmuxd results like Linux usbmuxd', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await newSim({ devices: 1, seed: 'mux-errors', tcp: { host: '127.0.0.1', port: 0 } });
  });

  it('listens on TCP when asked, with a host:port address', () => {
    expect(sim.usbmuxdAddress).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('ReadBUID is one uppercase UUID per simulator', async () => {
    const a = await muxRequest(sim.usbmuxdAddress, { MessageType: 'ReadBUID' });
    const b = await muxRequest(sim.usbmuxdAddress, { MessageType: 'ReadBUID' });
    expect(a.plist?.BUID).toMatch(/^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/);
    expect(b.plist?.BUID).toBe(a.plist?.BUID);
  });

  it('pair-record commands answer errno numbers', async () => {
    const udid = sim.udids()[0] ?? '';
    expect((await muxRequest(sim.usbmuxdAddress, { MessageType: 'ReadPairRecord', PairRecordID: udid })).plist).toEqual(
      { MessageType: 'Result', Number: 2 },
    );
    expect((await muxRequest(sim.usbmuxdAddress, { MessageType: 'ReadPairRecord' })).plist).toEqual({
      MessageType: 'Result',
      Number: 22,
    });
    expect(
      (await muxRequest(sim.usbmuxdAddress, { MessageType: 'DeletePairRecord', PairRecordID: udid })).plist,
    ).toEqual({ MessageType: 'Result', Number: 2 });
    expect(
      (
        await muxRequest(sim.usbmuxdAddress, {
          MessageType: 'SavePairRecord',
          PairRecordID: udid,
          PairRecordData: Buffer.from('not a plist at all'),
        })
      ).plist,
    ).toEqual({
      MessageType: 'Result',
      Number: 22,
    });
    expect((await muxRequest(sim.usbmuxdAddress, { MessageType: 'SavePairRecord', PairRecordID: udid })).plist).toEqual(
      { MessageType: 'Result', Number: 22 },
    );
  });

  it('SavePairRecord with the DeviceID tells listeners Paired; the record reads back as XML', async () => {
    const [dev] = await listDevices(sim.usbmuxdAddress);
    const l = await listen(sim.usbmuxdAddress);
    await l.read();
    await l.read();
    const record = encodeXml({ HostID: 'AAAA', SystemBUID: sim.systemBuid });
    const save = await muxRequest(sim.usbmuxdAddress, {
      MessageType: 'SavePairRecord',
      PairRecordID: dev?.udid ?? '',
      PairRecordData: record,
      DeviceID: dev?.deviceId ?? 0,
    });
    expect(save.plist).toEqual({ MessageType: 'Result', Number: 0 });
    expect((await l.read()).plist).toEqual({ MessageType: 'Paired', DeviceID: dev?.deviceId });
    const read = await muxRequest(sim.usbmuxdAddress, { MessageType: 'ReadPairRecord', PairRecordID: dev?.udid ?? '' });
    const data = read.plist?.PairRecordData as Buffer;
    expect(data.subarray(0, 5).toString()).toBe('<?xml');
    expect(decodePlist(data)).toEqual({ HostID: 'AAAA', SystemBUID: sim.systemBuid });
    expect(
      (await muxRequest(sim.usbmuxdAddress, { MessageType: 'DeletePairRecord', PairRecordID: dev?.udid ?? '' })).plist
        ?.Number,
    ).toBe(0);
    l.close();
  });

  it('keeps pair records and the SystemBUID in a folder across simulator runs', async () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-records-'));
    dirs.push(folder);
    const first = await newSim({ devices: 1, seed: 'records-1', pairRecordDir: folder });
    const udid = first.udids()[0] ?? '';
    const record = encodeXml({ HostID: 'HOST-1', SystemBUID: first.systemBuid });
    expect(
      (
        await muxRequest(first.usbmuxdAddress, {
          MessageType: 'SavePairRecord',
          PairRecordID: udid,
          PairRecordData: record,
        })
      ).plist?.Number,
    ).toBe(0);
    expect(fs.existsSync(path.join(folder, `${udid}.plist`))).toBe(true);
    await first.stop();
    const second = await newSim({ devices: 0, seed: 'records-2', pairRecordDir: folder });
    expect(second.systemBuid).toBe(first.systemBuid);
    const read = await muxRequest(second.usbmuxdAddress, { MessageType: 'ReadPairRecord', PairRecordID: udid });
    expect(decodePlist(read.plist?.PairRecordData as Buffer)).toEqual({
      HostID: 'HOST-1',
      SystemBUID: first.systemBuid,
    });
  });

  it('unknown commands get 1, bad devices 2, closed ports 3, bad versions 6', async () => {
    expect((await muxRequest(sim.usbmuxdAddress, { MessageType: 'Frobnicate' })).plist).toEqual({
      MessageType: 'Result',
      Number: 1,
    });
    expect(
      (await muxRequest(sim.usbmuxdAddress, { MessageType: 'Connect', DeviceID: 999, PortNumber: 32498 })).plist
        ?.Number,
    ).toBe(2);
    const [dev] = await listDevices(sim.usbmuxdAddress);
    expect(
      (
        await muxRequest(sim.usbmuxdAddress, {
          MessageType: 'Connect',
          DeviceID: dev?.deviceId ?? 0,
          PortNumber: 0x3930,
        })
      ).plist?.Number,
    ).toBe(3);
    expect(
      (await muxRequest(sim.usbmuxdAddress, { MessageType: 'Connect', DeviceID: dev?.deviceId ?? 0 })).plist?.Number,
    ).toBe(1);
    const s = await MuxSocket.connect(sim.usbmuxdAddress);
    s.sendRaw(5, 8, 4, encodeXml({ MessageType: 'ListDevices' }));
    const r: MuxPacket = await s.read();
    expect(r.tag).toBe(4);
    expect(r.version).toBe(0);
    expect(r.message).toBe(1);
    expect(r.payload.readUInt32LE(0)).toBe(6);
    s.close();
  });

  it('speaks the binary v0 protocol for Listen', async () => {
    const s = await MuxSocket.connect(sim.usbmuxdAddress);
    s.sendRaw(0, 3, 11, Buffer.alloc(0));
    const result = await s.read();
    expect([result.version, result.message, result.tag, result.payload.readUInt32LE(0)]).toEqual([0, 1, 11, 0]);
    const add = await s.read();
    expect([add.version, add.message, add.tag, add.payload.length]).toEqual([0, 4, 0, 268]);
    expect(add.payload.subarray(6, 6 + 25).toString('latin1')).toBe(sim.udids()[0]);
    s.close();
  });

  it('a command on a Listen socket gets BADCOMMAND and the socket is closed; oversized packets close the socket', async () => {
    const l = await listen(sim.usbmuxdAddress);
    await l.read();
    await l.read();
    l.send({ MessageType: 'ListDevices' }, 12);
    expect((await l.read()).plist).toEqual({ MessageType: 'Result', Number: 1 });
    await l.reader.readToEnd();
    expect(l.reader.closed).toBe(true);

    const big = await MuxSocket.connect(sim.usbmuxdAddress);
    const h = Buffer.alloc(16);
    h.writeUInt32LE(0x10001, 0);
    h.writeUInt32LE(1, 4);
    h.writeUInt32LE(8, 8);
    big.socket.write(h);
    expect((await big.reader.readToEnd()).length).toBe(0);
  });
});

describe('lockdown: presets, Trust, sessions', () => {
  it('fresh and activated devices pair without a dialog even when the person would be asked', async () => {
    const sim = await newSim({ devices: 2, preset: 'fresh', seed: 'fresh-pair' });
    const plugged = sim.plug('activated');
    for (const udid of [sim.udids()[0] ?? '', plugged]) {
      sim.trust(udid, 'prompt');
      const r = await pairOnce(sim, udid, await material(sim, udid));
      expect(r.Error).toBeUndefined();
      expect(Buffer.isBuffer(r.EscrowBag) && r.EscrowBag.length).toBe(32);
      expect(sim.state(udid).pairings).toHaveLength(1);
    }
    expect(sim.state(sim.udids()[0] ?? '')).toMatchObject({
      activationState: 'Unactivated',
      setupComplete: false,
      preset: 'fresh',
    });
    expect(sim.state(plugged)).toMatchObject({
      activationState: 'Activated',
      setupComplete: false,
      preset: 'activated',
    });
  });

  it('in-use devices prompt, can be denied, and refuse while locked', async () => {
    const sim = await newSim({ devices: 1, preset: 'in-use', seed: 'in-use-pair' });
    const udid = sim.udids()[0] ?? '';
    expect(sim.state(udid)).toMatchObject({
      setupComplete: true,
      passcodeSet: true,
      supervised: false,
      trust: 'prompt',
    });
    const m = await material(sim, udid);
    expect((await pairOnce(sim, udid, m)).Error).toBe('PairingDialogResponsePending');
    expect((await pairOnce(sim, udid, m)).Error).toBe('PairingDialogResponsePending');
    sim.trust(udid, 'deny');
    expect(await pairOnce(sim, udid, m)).toEqual({ Request: 'Pair', Error: 'UserDeniedPairing' });
    sim.trust(udid, 'accept');
    sim.lock(udid);
    expect((await pairOnce(sim, udid, m)).Error).toBe('PasswordProtected');
    sim.unlock(udid);
    const ok = await pairOnce(sim, udid, m);
    expect(ok.Request).toBe('Pair');
    expect(ok.Error).toBeUndefined();
    expect(sim.state(udid).pairings.map((p) => p.hostId)).toEqual([m.hostId]);
  });

  it('rejects a pair record whose DeviceCertificate is not for this device', async () => {
    const sim = await newSim({ devices: 1, preset: 'activated', seed: 'bad-record' });
    const udid = sim.udids()[0] ?? '';
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .publicKey.export({ type: 'pkcs1', format: 'pem' })
      .toString();
    expect((await pairOnce(sim, udid, hostMaterial(other))).Error).toBe('InvalidPairRecord');
  });

  it('enforces the session rules before StartSession', async () => {
    const sim = await newSim({ devices: 1, preset: 'activated', seed: 'session-rules' });
    const ld = await lockdownConnect(sim.usbmuxdAddress, sim.udids()[0] ?? '');
    expect(await ld.request({ Request: 'QueryType' })).toEqual({
      Request: 'QueryType',
      Type: 'com.apple.mobile.lockdown',
    });
    expect(await ld.request({ Request: 'StartService', Service: 'com.apple.mobile.diagnostics_relay' })).toEqual({
      Request: 'StartService',
      Error: 'SessionInactive',
    });
    expect(await ld.request({ Request: 'GetValue', Key: 'TimeZone' })).toEqual({
      Request: 'GetValue',
      Key: 'TimeZone',
      Error: 'GetProhibited',
    });
    expect(await ld.request({ Request: 'GetValue', Key: 'NoSuchKey' })).toEqual({
      Request: 'GetValue',
      Key: 'NoSuchKey',
      Error: 'MissingValue',
    });
    expect((await ld.request({ Request: 'GetValue', Domain: 'com.apple.mobile.battery' })).Error).toBe('GetProhibited');
    expect(await ld.request({ Request: 'SetValue', Key: 'DeviceName', Value: 'x' })).toEqual({
      Request: 'SetValue',
      Key: 'DeviceName',
      Error: 'SessionInactive',
    });
    expect(await ld.request({ Request: 'SetValue', Key: 'UntrustedHostBUID', Value: sim.systemBuid })).toEqual({
      Request: 'SetValue',
      Key: 'UntrustedHostBUID',
    });
    expect(await ld.request({ Request: 'StartSession', HostID: 'NOT-PAIRED', SystemBUID: sim.systemBuid })).toEqual({
      Request: 'StartSession',
      Error: 'InvalidHostID',
    });
    const simple = await ld.request({ Request: 'GetValue' });
    expect(Object.keys(simple.Value as PlistDict)).toContain('UniqueChipID');
    expect(Object.keys(simple.Value as PlistDict)).not.toContain('TimeZone');
    expect(
      typeof (simple.Value as PlistDict).UniqueChipID === 'bigint' ||
        typeof (simple.Value as PlistDict).UniqueChipID === 'number',
    ).toBe(true);
    expect(String((simple.Value as PlistDict).UniqueChipID)).toBe(sim.state(sim.udids()[0] ?? '').ecid);
    ld.close();
  });

  it('runs a TLS session (root or host client certificate), services, and a diagnostics restart without WaitForDisconnect', async () => {
    const sim = await newSim({ devices: 1, preset: 'activated', seed: 'tls-session' });
    const udid = sim.udids()[0] ?? '';
    const m = await material(sim, udid);
    expect((await pairOnce(sim, udid, m)).EscrowBag).toBeInstanceOf(Buffer);

    for (const presentRoot of [true, false]) {
      const ld = await lockdownConnect(sim.usbmuxdAddress, udid);
      const start = await ld.request({
        Label: 'vitest',
        Request: 'StartSession',
        HostID: m.hostId,
        SystemBUID: sim.systemBuid,
      });
      expect(start).toMatchObject({ Request: 'StartSession', EnableSessionSSL: true });
      expect(typeof start.SessionID).toBe('string');
      const t = await startClientTls(ld, m, presentRoot);
      const reader = new ByteReader(t);
      const all = await tlsRequest(reader, t, { Request: 'GetValue' });
      expect((all.Value as PlistDict).TimeZone).toBe('America/Los_Angeles');
      expect(await tlsRequest(reader, t, { Request: 'SetValue', Key: 'DeviceName', Value: 'Lab 1' })).toEqual({
        Request: 'SetValue',
        Key: 'DeviceName',
      });
      expect(await tlsRequest(reader, t, { Request: 'SetValue', Key: 'UniqueDeviceID', Value: 'x' })).toMatchObject({
        Error: 'SetProhibited',
      });
      expect(
        await tlsRequest(reader, t, { Request: 'StartService', Service: 'com.apple.no.such.service' }),
      ).toMatchObject({ Error: 'InvalidService' });
      expect(await tlsRequest(reader, t, { Request: 'StopSession', SessionID: start.SessionID ?? '' })).toEqual({
        Request: 'StopSession',
        Result: 'Success',
      });
      t.destroy();
    }
    expect(sim.state(udid).deviceName).toBe('Lab 1');

    // diagnostics_relay over TLS; Restart without WaitForDisconnect acts on its own.
    const ld = await lockdownConnect(sim.usbmuxdAddress, udid);
    const start = await ld.request({ Request: 'StartSession', HostID: m.hostId, SystemBUID: sim.systemBuid });
    const t = await startClientTls(ld, m);
    const reader = new ByteReader(t);
    const svc = await tlsRequest(reader, t, { Request: 'StartService', Service: 'com.apple.mobile.diagnostics_relay' });
    expect(svc).toMatchObject({
      Request: 'StartService',
      Service: 'com.apple.mobile.diagnostics_relay',
      EnableServiceSSL: true,
    });
    expect(typeof svc.Port).toBe('number');
    await tlsRequest(reader, t, { Request: 'StopSession', SessionID: start.SessionID ?? '' });
    t.destroy();

    const oldId = sim.state(udid).deviceId ?? 0;
    const l = await listen(sim.usbmuxdAddress);
    await l.read();
    await l.read();
    const diag = await deviceConnect(sim.usbmuxdAddress, oldId, Number(svc.Port));
    const dt = await startClientTls(diag, m);
    const dr = new ByteReader(dt);
    expect(await tlsRequest(dr, dt, { Request: 'Sleep' })).toEqual({ Status: 'Success' });
    expect(await tlsRequest(dr, dt, { Request: 'Frobnicate' })).toEqual({ Status: 'UnknownRequest' });
    expect(await tlsRequest(dr, dt, { Request: 'Restart', DisplayPass: true })).toEqual({ Status: 'Success' });
    expect((await l.read()).plist).toEqual({ MessageType: 'Detached', DeviceID: oldId });
    await dr.readToEnd();
    const back = await l.read();
    expect(back.plist?.MessageType).toBe('Attached');
    expect(back.plist?.DeviceID).not.toBe(oldId);
    // The service port was used once; it is not listening any more.
    const again = await muxRequest(sim.usbmuxdAddress, {
      MessageType: 'Connect',
      DeviceID: Number(back.plist?.DeviceID),
      PortNumber: ((Number(svc.Port) & 0xff) << 8) | (Number(svc.Port) >> 8),
    });
    expect(again.plist?.Number).toBe(3);
    expect(sim.state(udid).pairings).toHaveLength(1);
    l.close();
  });

  it('drops a TLS session whose client certificate belongs to no pairing of the HostID', async () => {
    const sim = await newSim({ devices: 1, preset: 'activated', seed: 'tls-wrong-cert' });
    const udid = sim.udids()[0] ?? '';
    const m = await material(sim, udid);
    await pairOnce(sim, udid, m);
    const strangerKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const strangerPriv: forge.pki.rsa.PrivateKey = forge.pki.privateKeyFromPem(
      strangerKeys.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    );
    const strangerPub = forge.pki.publicKeyFromPem(
      strangerKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    );
    const stranger: HostMaterial = { ...m, rootCertPem: cert(strangerPub, strangerPriv, true) };
    const ld = await lockdownConnect(sim.usbmuxdAddress, udid);
    expect(
      (await ld.request({ Request: 'StartSession', HostID: m.hostId, SystemBUID: sim.systemBuid })).EnableSessionSSL,
    ).toBe(true);
    const closed = new Promise<void>((resolve) => ld.socket.once('close', () => resolve()));
    const t = await new Promise<tls.TLSSocket>((resolve) => {
      ld.socket.removeAllListeners('data');
      const c = tls.connect({
        socket: ld.socket,
        cert: stranger.rootCertPem,
        key: strangerKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        rejectUnauthorized: false,
        ciphers: 'DEFAULT:@SECLEVEL=0',
      });
      c.on('error', () => undefined);
      c.once('secureConnect', () => resolve(c));
      c.once('close', () => resolve(c));
    });
    await closed;
    expect(t.destroyed || ld.socket.destroyed).toBe(true);
  });

  it('Shutdown keeps the device off until replug; EnterRecovery leaves the bus in recovery mode', async () => {
    const sim = await newSim({ devices: 1, preset: 'activated', seed: 'shutdown' });
    const udid = sim.udids()[0] ?? '';
    const m = await material(sim, udid);
    await pairOnce(sim, udid, m);

    const session = async (): Promise<{ t: tls.TLSSocket; r: ByteReader; sessionId: string }> => {
      const ld = await lockdownConnect(sim.usbmuxdAddress, udid);
      const s = await ld.request({ Request: 'StartSession', HostID: m.hostId, SystemBUID: sim.systemBuid });
      const t = await startClientTls(ld, m);
      return { t, r: new ByteReader(t), sessionId: String(s.SessionID) };
    };
    const a = await session();
    const svc = await tlsRequest(a.r, a.t, { Request: 'StartService', Service: 'com.apple.mobile.diagnostics_relay' });
    a.t.destroy();
    const diag = await deviceConnect(sim.usbmuxdAddress, sim.state(udid).deviceId ?? 0, Number(svc.Port));
    const dt = await startClientTls(diag, m);
    const dr = new ByteReader(dt);
    expect(await tlsRequest(dr, dt, { Request: 'Shutdown', WaitForDisconnect: true })).toEqual({ Status: 'Success' });
    expect(sim.state(udid).attached).toBe(true);
    expect(await tlsRequest(dr, dt, { Request: 'Goodbye' })).toEqual({ Status: 'Success' });
    dt.destroy();
    for (let i = 0; i < 100 && sim.state(udid).attached; i++) await new Promise((r) => setTimeout(r, 20));
    expect(sim.state(udid)).toMatchObject({ attached: false, mode: 'off', deviceId: null });
    await sim.replug(udid);
    expect(sim.state(udid)).toMatchObject({ attached: true, mode: 'normal' });

    const b = await session();
    expect(await tlsRequest(b.r, b.t, { Request: 'EnterRecovery' })).toEqual({ Request: 'EnterRecovery' });
    await b.r.readToEnd();
    expect(sim.state(udid)).toMatchObject({ attached: false, mode: 'recovery' });
  });
});

describe('power cycles and the cable', () => {
  it('a Restart waiting for the disconnect does not bring back a device whose cable was pulled', async () => {
    const sim = await newSim({ devices: 1, preset: 'activated', seed: 'restart-unplugged' });
    const udid = sim.udids()[0] ?? '';
    const m = await material(sim, udid);
    await pairOnce(sim, udid, m);
    const ld = await lockdownConnect(sim.usbmuxdAddress, udid);
    const start = await ld.request({ Request: 'StartSession', HostID: m.hostId, SystemBUID: sim.systemBuid });
    const t = await startClientTls(ld, m);
    const r = new ByteReader(t);
    const svc = await tlsRequest(r, t, { Request: 'StartService', Service: 'com.apple.mobile.diagnostics_relay' });
    await tlsRequest(r, t, { Request: 'StopSession', SessionID: start.SessionID ?? '' });
    t.destroy();
    const diag = await deviceConnect(sim.usbmuxdAddress, sim.state(udid).deviceId ?? 0, Number(svc.Port));
    const dt = await startClientTls(diag, m);
    const dr = new ByteReader(dt);
    expect(await tlsRequest(dr, dt, { Request: 'Restart', WaitForDisconnect: true })).toEqual({ Status: 'Success' });
    sim.unplug(udid);
    await dr.readToEnd();
    expect(sim.state(udid)).toMatchObject({ attached: false, mode: 'normal' });
    await sim.replug(udid);
    expect(sim.state(udid)).toMatchObject({ attached: true, mode: 'normal' });
  });
});

describe('faults at the socket level', () => {
  let sim: Simulator;
  let udid: string;
  beforeAll(async () => {
    sim = await newSim({ devices: 1, preset: 'activated', seed: 'faults' });
    udid = sim.udids()[0] ?? '';
  });

  async function ld(): Promise<DeviceSocket> {
    return lockdownConnect(sim.usbmuxdAddress, udid);
  }

  it('disconnect-after drops the connection with no reply', async () => {
    sim.fault(udid, 'disconnect-after=QueryType');
    const c = await ld();
    c.send({ Request: 'QueryType' });
    expect((await c.reader.readToEnd()).length).toBe(0);
    sim.fault(udid, 'clear');
    const ok = await ld();
    expect((await ok.request({ Request: 'QueryType' })).Type).toBe('com.apple.mobile.lockdown');
    ok.close();
  });

  it('error answers the lockdown Error string, with Request echoed; once fires a single time', async () => {
    sim.fault(udid, 'error=GetValue:GetProhibited', { once: true });
    expect(sim.state(udid).faults).toEqual(['error=GetValue:GetProhibited (once)']);
    const c = await ld();
    expect(await c.request({ Request: 'GetValue', Key: 'ProductVersion' })).toEqual({
      Request: 'GetValue',
      Error: 'GetProhibited',
    });
    expect((await c.request({ Request: 'GetValue', Key: 'ProductVersion' })).Value).toBe(
      sim.state(udid).productVersion,
    );
    expect(sim.state(udid).faults).toEqual([]);
    c.close();
  });

  it('oversize-frame answers with a 0x7fffffff length prefix', async () => {
    sim.fault(udid, 'oversize-frame');
    const c = await ld();
    c.send({ Request: 'QueryType' });
    expect((await c.reader.read(4)).readUInt32BE(0)).toBe(0x7fffffff);
    c.close();
    sim.fault(udid, 'clear');
  });

  it('garbage answers a framed payload that is not a plist', async () => {
    sim.fault(udid, 'garbage');
    const c = await ld();
    c.send({ Request: 'QueryType' });
    const len = (await c.reader.read(4)).readUInt32BE(0);
    const body = await c.reader.read(len);
    expect(() => decodePlist(body)).toThrow(KitError);
    c.close();
    sim.fault(udid, 'clear');
  });

  it('disconnect-after-bytes resets mid-frame after exactly N reply bytes', async () => {
    sim.fault(udid, 'disconnect-after-bytes=10');
    const c = await ld();
    c.send({ Request: 'QueryType' });
    const got = await c.reader.readToEnd();
    expect(got.length).toBe(10);
    expect(got.readUInt32BE(0)).toBeGreaterThan(6);
    sim.fault(udid, 'clear');
  });

  it('delay-ms still answers correctly', async () => {
    sim.fault(udid, 'delay-ms=30');
    const c = await ld();
    expect((await c.request({ Request: 'QueryType' })).Type).toBe('com.apple.mobile.lockdown');
    c.close();
    sim.fault(udid, 'clear');
  });

  it('rejects unknown fault specs', () => {
    expect(() => sim.fault(udid, 'explode')).toThrow(/unknown fault spec/);
    expect(() => sim.fault(udid, 'error=GetValue')).toThrow(KitError);
    expect(() => sim.fault(udid, 'delay-ms=soon')).toThrow(KitError);
  });
});

describe('identities', () => {
  it('the same seed gives the same fleet; different seeds differ', async () => {
    const a = await newSim({ devices: 4, seed: 'same' });
    const b = await newSim({ devices: 4, seed: 'same' });
    const c = await newSim({ devices: 4, seed: 'other' });
    expect(b.udids()).toEqual(a.udids());
    expect(b.udids().map((u) => b.state(u).serial)).toEqual(a.udids().map((u) => a.state(u).serial));
    expect(c.udids()).not.toEqual(a.udids());
    expect(b.systemBuid).toBe(a.systemBuid);
  });

  it('builds both UDID forms, Apple-style serials and 64-bit ECIDs', () => {
    const modern = generateIdentity('ids', 0, 'iPad13,18');
    expect(modern.udid).toMatch(/^00008101-00[0-9A-F]{14}$/);
    expect(modern.udid.slice(9)).toBe(modern.ecid.toString(16).toUpperCase().padStart(16, '0'));
    const legacy = generateIdentity('ids', 1, 'iPad7,11');
    expect(legacy.serial).toMatch(/^[A-Z0-9]{3}[YZCDFG][1-9CDFGHJKLMNPQRTVWXY][0-9BCDFGHJKLMNPQRTVWXYZ]{7}$/);
    expect(modern.serial).toHaveLength(10);
    expect(legacy.udid).toMatch(/^[0-9a-f]{40}$/);
    expect(legacy.model.name).toBe('iPad (7th generation)');
    expect(Number(legacy.productVersion.split('.')[0])).toBeLessThanOrEqual(18);
    const big = Array.from({ length: 40 }, (_, i) => generateIdentity('ecids', i).ecid).filter((e) => e > 2n ** 53n);
    expect(big.length).toBeGreaterThan(10);
    for (let i = 0; i < 20; i++) {
      const id = generateIdentity('serials', i);
      // 12-character structured serials before 2021 launches, randomized 10-character ones after.
      expect(id.serial).toMatch(
        id.model.firstMajor >= 15
          ? /^[1-9BCDFGHJKLMNPQRTVWXYZ][0-9BCDFGHJKLMNPQRTVWXYZ]{9}$/
          : /^[0-9BCDFGHJKLMNPQRTVWXYZ]{12}$/,
      );
      expect(id.wifiAddress).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    }
  });
});

describe('control API and sim-ctl', () => {
  it('serves every verb over HTTP with JSON errors', async () => {
    const sim = await newSim({ devices: 2, preset: 'in-use', seed: 'control-http' });
    const c = new ControlClient(sim.controlAddress);
    const [u1, u2] = sim.udids();
    expect((await c.list()).map((d) => d.udid)).toEqual([u1, u2]);
    const plugged = await c.plug('fresh');
    expect((await c.state(plugged)).preset).toBe('fresh');
    await c.set(u1 ?? '', {
      deviceName: 'Cart 1',
      batteryLevel: '55',
      ActivationState: 'Unactivated',
      TimeZone: 'Europe/Paris',
    });
    const s1 = await c.state(u1 ?? '');
    expect(s1).toMatchObject({
      deviceName: 'Cart 1',
      batteryLevel: 55,
      activationState: 'Unactivated',
      timeZone: 'Europe/Paris',
    });
    for (const key of [
      'udid',
      'serial',
      'ecid',
      'productType',
      'deviceName',
      'activationState',
      'setupComplete',
      'supervised',
      'pairings',
      'cloudConfiguration',
      'profiles',
      'storedProfile',
      'trust',
      'deviceId',
      'attached',
      'locked',
      'productVersion',
      'model',
    ]) {
      expect(s1).toHaveProperty(key);
    }
    expect(s1.cloudConfiguration).toBeNull();
    expect(s1.storedProfile).toBeNull();
    expect(s1.profiles).toEqual([]);
    expect(typeof s1.ecid).toBe('string');
    await c.trust(u2 ?? '', 'deny');
    await c.verb(u2 ?? '', 'lock');
    expect(await c.state(u2 ?? '')).toMatchObject({ trust: 'deny', locked: true });
    await c.verb(u2 ?? '', 'unlock');
    await c.fault(u2 ?? '', 'delay-ms=5');
    expect((await c.state(u2 ?? '')).faults).toEqual(['delay-ms=5']);
    await c.verb(u2 ?? '', 'unplug');
    expect((await c.state(u2 ?? '')).attached).toBe(false);
    await expect(c.verb(u2 ?? '', 'unplug')).rejects.toMatchObject({ code: 'sim/invalid-state' });
    await c.verb(u2 ?? '', 'replug');
    expect((await c.state(u2 ?? '')).attached).toBe(true);
    await expect(c.state('0000NOPE')).rejects.toMatchObject({ code: 'sim/unknown-device' });
    await expect(c.set(u1 ?? '', { batteryLevel: '150' })).rejects.toMatchObject({ code: 'usage/invalid-argument' });
    await expect(c.set(u1 ?? '', { favouriteColour: 'blue' })).rejects.toMatchObject({
      code: 'usage/invalid-argument',
    });
    await expect(c.request('POST', `/devices/${u1 ?? ''}/trust`, { mode: 'maybe' })).rejects.toMatchObject({
      code: 'usage/invalid-argument',
    });
    await expect(c.plug('supervised')).rejects.toMatchObject({ code: 'usage/invalid-argument' });
  });

  it('kitting sim prints one ready line; sim-ctl verbs work and an unknown UDID exits 3', async () => {
    const p = await spawnSim(['--devices', '2', '--preset', 'activated', '--seed', 'cli-ctl', '--control', '0']);
    try {
      expect(p.devices).toHaveLength(2);
      expect(p.usbmuxd).toBe(`UNIX:${p.socketPath}`);
      expect(p.control).toMatch(/^127\.0\.0\.1:\d+$/);
      const plug = await p.ctl(['plug', '--preset', 'in-use']);
      expect(plug.code, plug.stderr).toBe(0);
      const udid = plug.stdout.trim();
      expect((await listDevices(p.usbmuxd)).map((d) => d.udid)).toContain(udid);
      const set = await p.ctl(['set', udid, 'deviceName=Shelf A', 'locked=true']);
      expect(set.code, set.stderr).toBe(0);
      const state = await p.ctl(['state', udid, '--json']);
      expect(JSON.parse(state.stdout)).toMatchObject({ udid, deviceName: 'Shelf A', locked: true, preset: 'in-use' });
      const list = await p.ctl(['list', '--json']);
      expect((JSON.parse(list.stdout) as { udid: string }[]).map((d) => d.udid)).toEqual([...p.devices, udid]);
      const fault = await p.ctl(['fault', udid, 'error=QueryType:InvalidRequest', '--once']);
      expect(fault.code, fault.stderr).toBe(0);
      const missing = await p.ctl(['state', '00008101-00FFFFFFFFFFFFFF', '--json']);
      expect(missing.code).toBe(3);
      expect(JSON.parse(missing.stdout)).toMatchObject({ error: { code: 'sim/unknown-device' } });
      expect((await p.ctl(['trust', udid, 'sometimes'])).code).toBe(2);
      expect((await p.ctl(['fault', udid, 'nonsense'])).code).toBe(2);
    } finally {
      await p.stop();
    }
    expect(p.stderr()).not.toContain('"level":"error"');
  });

  it('sim-ctl reports an unreachable control socket', async () => {
    const p = await spawnSim(['--devices', '0']);
    await p.stop();
    const r = await p.ctl(['list']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('sim/control-unreachable');
  });
});
