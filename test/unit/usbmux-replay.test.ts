/**
 * The client against bytes recorded from Apple's usbmuxd and a real iPhone, replayed over a real
 * UNIX socket by a tiny server in this file. The server echoes each request's tag into the
 * recorded header (usbmuxd echoes tags) and otherwise sends the recordings byte for byte.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { openDevice } from '../../src/device/device.ts';
import { encodeFrame } from '../../src/device/framing.ts';
import { LockdownClient } from '../../src/device/lockdown.ts';
import { certificateFacts, pairRecordFromPlist } from '../../src/device/pairing.ts';
import { deviceTlsOptions, startTls } from '../../src/device/tls.ts';
import { UsbmuxClient, decodeUsbmuxHeader } from '../../src/device/usbmux.ts';
import { decodePlist, isPlistDict, type PlistDict } from '../../src/plist/index.ts';

// The recorded bytes live beside the repository (/work/shared next to /work/main).
const FIXTURES = path.resolve(import.meta.dirname, '../../../shared/fixtures/recorded');
const fixture = (name: string): Buffer => fs.readFileSync(path.join(FIXTURES, name));
const UDID = '63c3d055c4f83e960e5980fa68be0fbf7d4ba74c';

function withTag(packet: Buffer, tag: number): Buffer {
  const copy = Buffer.from(packet);
  copy.writeUInt32LE(tag, 12);
  return copy;
}

interface Replay {
  address: string;
  requests: PlistDict[];
  lockdownRequests: PlistDict[];
  close(): Promise<void>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** Answers usbmuxd requests with recordings; after Connect, answers lockdown requests in order from `lockdown`. */
async function replayServer(lockdown: Buffer[] = [], options: { coalesceAfterConnect?: Buffer } = {}): Promise<Replay> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-replay-'));
  const sock = path.join(dir, 'usbmuxd.sock');
  const requests: PlistDict[] = [];
  const lockdownRequests: PlistDict[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    let buf = Buffer.alloc(0);
    let raw = false;
    const queue = [...lockdown];
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (raw) {
          if (buf.length < 4) return;
          const n = buf.readUInt32BE(0);
          if (buf.length < 4 + n) return;
          const req = decodePlist(buf.subarray(4, 4 + n));
          buf = buf.subarray(4 + n);
          if (isPlistDict(req)) lockdownRequests.push(req);
          const next = queue.shift();
          if (next !== undefined) s.write(next);
          continue;
        }
        if (buf.length < 16) return;
        const h = decodeUsbmuxHeader(buf);
        if (buf.length < h.length) return;
        const req = decodePlist(buf.subarray(16, h.length));
        buf = buf.subarray(h.length);
        if (!isPlistDict(req)) return;
        requests.push(req);
        switch (req.MessageType) {
          case 'ListDevices':
            s.write(withTag(fixture('usbmuxlistdevicemessage.bin'), h.tag));
            break;
          case 'ReadPairRecord':
            s.write(withTag(fixture('usbmuxreadpairmessage.bin'), h.tag));
            break;
          case 'Connect': {
            raw = true;
            const result = withTag(fixture('usbmuxconnectmessage.bin'), h.tag);
            // The recorded stream: the Connect result and a lockdown frame in one write.
            s.write(
              options.coalesceAfterConnect !== undefined
                ? Buffer.concat([result, options.coalesceAfterConnect])
                : result,
            );
            break;
          }
          default:
            s.end();
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  const close = async (): Promise<void> => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  };
  cleanups.push(close);
  return { address: `UNIX:${sock}`, requests, lockdownRequests, close };
}

describe('recorded usbmuxd exchanges over a real socket', () => {
  it('ListDevices → one typed USB device; the request is an XML plist with the identification keys', async () => {
    const server = await replayServer();
    const client = new UsbmuxClient(server.address);
    const devices = await client.listDevices();
    expect(devices).toEqual([
      {
        deviceId: 1,
        udid: UDID,
        connectionType: 'USB',
        locationId: 339881984,
        productId: 4776,
        connectionSpeed: 480000000,
      },
    ]);
    expect(server.requests[0]).toMatchObject({ MessageType: 'ListDevices', ProgName: 'kitting', kLibUSBMuxVersion: 3 });
  });

  it('ReadPairRecord → the real macOS record: SHA-1 certificates, serial 0, PKCS#8 keys', async () => {
    const server = await replayServer();
    const dict = await new UsbmuxClient(server.address).readPairRecord(UDID);
    expect(dict).not.toBeNull();
    const record = pairRecordFromPlist(dict as PlistDict, UDID);
    expect(record.hostId).toMatch(/^[0-9A-F-]{36}$/);
    expect(record.systemBuid.length).toBeGreaterThan(0);
    expect(record.escrowBag?.length).toBe(32);
    expect(record.wifiMacAddress).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    for (const pem of [record.hostCertificate, record.rootCertificate, record.deviceCertificate]) {
      const facts = certificateFacts(pem);
      expect(facts.signatureHash).toBe('sha1');
      expect(facts.serial).toBe('00');
      expect(facts.subjectEmpty && facts.issuerEmpty).toBe(true);
    }
    expect(certificateFacts(record.rootCertificate).isCa).toBe(true);
    expect(record.hostPrivateKey.toString('utf8')).toContain('-----BEGIN PRIVATE KEY-----');
    expect(record.rootPrivateKey.toString('utf8')).toContain('-----BEGIN PRIVATE KEY-----');
    // The host key matches the host certificate.
    const hostKey = crypto.createPrivateKey(record.hostPrivateKey);
    expect(
      crypto
        .createPublicKey(hostKey)
        .export({ type: 'spki', format: 'der' })
        .equals(certificateFacts(record.hostCertificate).publicKeySpki),
    ).toBe(true);
  });

  it('the recorded pair record works as TLS client credentials (SECLEVEL 0, SHA-1)', async () => {
    const server = await replayServer();
    const record = pairRecordFromPlist(
      (await new UsbmuxClient(server.address).readPairRecord(UDID)) as PlistDict,
      UDID,
    );
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-tls-'));
    const sock = path.join(dir, 'tls.sock');
    const seen: Buffer[] = [];
    // A TLS "device" presenting the recorded root certificate (old style: SHA-1, serial 0, empty DNs).
    const tlsServer = tls.createServer(
      {
        cert: record.rootCertificate,
        key: record.rootPrivateKey,
        requestCert: true,
        rejectUnauthorized: false,
        ciphers: 'DEFAULT:@SECLEVEL=0',
        minVersion: 'TLSv1',
      },
      (s) => {
        seen.push(s.getPeerCertificate(true).raw);
        s.end('hello');
      },
    );
    await new Promise<void>((resolve) => tlsServer.listen(sock, resolve));
    cleanups.push(async () => {
      await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const raw = net.createConnection({ path: sock });
    await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
    const secure = await startTls(raw, deviceTlsOptions(record, '12.3.1'));
    const text = await new Promise<string>((resolve) => {
      let out = '';
      secure.on('data', (d: Buffer) => (out += d.toString()));
      secure.on('end', () => resolve(out));
    });
    secure.destroy();
    expect(text).toBe('hello');
    expect(seen[0]?.equals(new crypto.X509Certificate(record.hostCertificate).raw)).toBe(true);
  });

  it('Connect result followed on the same socket by a lockdown frame (one coalesced write)', async () => {
    const stream = fixture('usbmuxconnectandlockdown.bin');
    const connectLength = decodeUsbmuxHeader(stream).length;
    const server = await replayServer([], { coalesceAfterConnect: stream.subarray(connectLength) });
    const usbmux = new UsbmuxClient(server.address);
    const lockdown = await LockdownClient.connect(usbmux, { deviceId: 1, udid: UDID });
    try {
      const value = await lockdown.getValue(undefined, 'TimeIntervalSince1970');
      expect(value).toBeCloseTo(1561317733.062099, 5);
    } finally {
      lockdown.close();
    }
    expect(server.requests.at(-1)).toMatchObject({ MessageType: 'Connect', DeviceID: 1, PortNumber: 32498 });
  });

  it('QueryType, GetValue ProductVersion and GetValue TimeIntervalSince1970 replies through LockdownClient', async () => {
    const server = await replayServer([
      fixture('lockdownquerytypemessage.bin'),
      fixture('lockdowngetvaluemessage.bin'),
      fixture('lockdowngettimemessage.bin'),
    ]);
    const usbmux = new UsbmuxClient(server.address);
    const [device] = await usbmux.listDevices();
    if (device === undefined) throw new Error('no device in the recording');
    const lockdown = await LockdownClient.connect(usbmux, device);
    try {
      expect(await lockdown.queryType()).toBe('com.apple.mobile.lockdown');
      expect(await lockdown.getValue(undefined, 'ProductVersion')).toBe('12.3.1');
      expect(lockdown.productVersion).toBe('12.3.1');
      expect(typeof (await lockdown.getValue(undefined, 'TimeIntervalSince1970'))).toBe('number');
    } finally {
      lockdown.close();
    }
    expect(server.lockdownRequests.map((r) => r.Request)).toEqual(['QueryType', 'GetValue', 'GetValue']);
    expect(server.lockdownRequests[1]).toMatchObject({ Key: 'ProductVersion', Label: 'kitting' });
  });

  it('openDevice on an iOS 6 device: the stored record, ValidatePair, then StartSession', async () => {
    const server = await replayServer([
      fixture('lockdownquerytypemessage.bin'),
      encodeFrame({ Key: 'ProductVersion', Request: 'GetValue', Value: '6.1.3' }),
      encodeFrame({ Request: 'ValidatePair' }),
      encodeFrame({ Request: 'StartSession', SessionID: 'S-1', EnableSessionSSL: false }),
    ]);
    const session = await openDevice(new UsbmuxClient(server.address), UDID);
    expect(session.pairedNow).toBe(false);
    expect(session.productVersion).toBe('6.1.3');
    expect(session.lockdown.sessionId).toBe('S-1');
    session.lockdown.close();
    expect(server.lockdownRequests.map((r) => r.Request)).toEqual([
      'QueryType',
      'GetValue',
      'ValidatePair',
      'StartSession',
    ]);
    expect(server.lockdownRequests[3]).toMatchObject({
      HostID: session.record.hostId,
      SystemBUID: session.record.systemBuid,
    });
    expect(Object.keys(server.lockdownRequests[2]?.PairRecord as object).sort()).toEqual([
      'DeviceCertificate',
      'HostCertificate',
      'HostID',
      'RootCertificate',
      'SystemBUID',
    ]);
  });

  it('a missing daemon socket is usbmux/unavailable', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-none-'));
    cleanups.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
    await expect(new UsbmuxClient(`UNIX:${path.join(dir, 'nothing.sock')}`).listDevices()).rejects.toMatchObject({
      code: 'usbmux/unavailable',
      retryable: true,
    });
  });
});
