import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import {
  USBMUX_RESULTS,
  decodeUsbmuxHeader,
  decodeUsbmuxPayload,
  encodeUsbmuxPacket,
  parseDeviceList,
  parseEvent,
  sanitizeUdid,
  swapPort,
  usbmuxResultError,
} from '../../src/device/usbmux.ts';
import { decodePlist, encodeXml, isPlistDict } from '../../src/plist/index.ts';

// The recorded bytes live beside the repository (/work/shared next to /work/main).
const FIXTURES = path.resolve(import.meta.dirname, '../../../shared/fixtures/recorded');
const fixture = (name: string): Buffer => fs.readFileSync(path.join(FIXTURES, name));

describe('usbmuxd packet codec', () => {
  it('writes a 16-byte little-endian header whose length includes itself', () => {
    const payload = Buffer.from('abc');
    const packet = encodeUsbmuxPacket(payload, 0x01020304);
    expect(packet.length).toBe(19);
    expect([...packet.subarray(0, 16)]).toEqual([19, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 4, 3, 2, 1]);
    expect(decodeUsbmuxHeader(packet)).toEqual({ length: 19, version: 1, message: 8, tag: 0x01020304 });
  });

  it('decodes the recorded headers (version 1, message 8, tags 0 and 1)', () => {
    const a = fixture('usbmuxlistdevicemessage.bin');
    const b = fixture('usbmuxlistdevicemessage2.bin');
    expect(decodeUsbmuxHeader(a)).toEqual({ length: a.length, version: 1, message: 8, tag: 0 });
    expect(decodeUsbmuxHeader(b)).toEqual({ length: b.length, version: 1, message: 8, tag: 1 });
  });

  it('swaps the port bytes for Connect (62078 → 32498)', () => {
    expect(swapPort(62078)).toBe(32498);
    expect(swapPort(swapPort(1234))).toBe(1234);
  });

  it('decodes a recorded ListDevices reply into typed devices', () => {
    const bytes = fixture('usbmuxlistdevicemessage.bin');
    const dict = decodeUsbmuxPayload(decodeUsbmuxHeader(bytes), bytes.subarray(16));
    expect(parseDeviceList(dict)).toEqual([
      {
        deviceId: 1,
        udid: '63c3d055c4f83e960e5980fa68be0fbf7d4ba74c',
        connectionType: 'USB',
        locationId: 339881984,
        productId: 4776,
        connectionSpeed: 480000000,
      },
    ]);
  });

  it('accepts binary plist payloads and v0 Result packets', () => {
    const xml = encodeXml({ MessageType: 'Result', Number: 0 });
    const fromXml = decodeUsbmuxPayload({ length: 16 + xml.length, version: 1, message: 8, tag: 1 }, xml);
    expect(fromXml).toEqual({ MessageType: 'Result', Number: 0 });
    const v0 = Buffer.alloc(4);
    v0.writeUInt32LE(6, 0);
    expect(decodeUsbmuxPayload({ length: 20, version: 0, message: 1, tag: 1 }, v0)).toEqual({
      MessageType: 'Result',
      Number: 6,
    });
  });

  it('turns garbage payloads into device/bad-reply', () => {
    expect(() => decodeUsbmuxPayload({ length: 20, version: 1, message: 8, tag: 1 }, Buffer.from('nope'))).toThrow(
      expect.objectContaining({ code: 'device/bad-reply' }) as unknown as Error,
    );
  });

  it('parses Attached, Detached and Paired notifications', () => {
    const attached = parseEvent({
      MessageType: 'Attached',
      DeviceID: 7,
      Properties: { ConnectionType: 'USB', DeviceID: 7, SerialNumber: '00008027001122334455667A', ProductID: 0x12ab },
    });
    expect(attached).toEqual({
      type: 'attached',
      device: {
        deviceId: 7,
        udid: '00008027-001122334455667A',
        connectionType: 'USB',
        locationId: undefined,
        productId: 0x12ab,
        connectionSpeed: undefined,
      },
    });
    expect(parseEvent({ MessageType: 'Detached', DeviceID: 7 })).toEqual({ type: 'detached', deviceId: 7 });
    expect(parseEvent({ MessageType: 'Paired', DeviceID: 7 })).toEqual({ type: 'paired', deviceId: 7 });
    expect(parseEvent({ MessageType: 'Whatever' })).toBeUndefined();
  });

  it('hyphenates only bare 24-hex serials', () => {
    expect(sanitizeUdid('00008027001122334455667A')).toBe('00008027-001122334455667A');
    expect(sanitizeUdid('00008027-001122334455667A')).toBe('00008027-001122334455667A');
    expect(sanitizeUdid('63c3d055c4f83e960e5980fa68be0fbf7d4ba74c')).toBe('63c3d055c4f83e960e5980fa68be0fbf7d4ba74c');
  });

  it('decodes the recorded Connect result and the binary pair record inside ReadPairRecord', () => {
    const connect = fixture('usbmuxconnectmessage.bin');
    expect(decodeUsbmuxPayload(decodeUsbmuxHeader(connect), connect.subarray(16))).toEqual({
      MessageType: 'Result',
      Number: 0,
    });
    const pair = fixture('usbmuxreadpairmessage.bin');
    const dict = decodeUsbmuxPayload(decodeUsbmuxHeader(pair), pair.subarray(16));
    const data = dict.PairRecordData;
    expect(data).toBeInstanceOf(Buffer);
    expect((data as Buffer).subarray(0, 8).toString('latin1')).toBe('bplist00');
    const record = decodePlist(data as Buffer);
    expect(isPlistDict(record) && Object.keys(record).sort()).toEqual([
      'DeviceCertificate',
      'EscrowBag',
      'HostCertificate',
      'HostID',
      'HostPrivateKey',
      'RootCertificate',
      'RootPrivateKey',
      'SystemBUID',
      'WiFiMACAddress',
    ]);
  });
});

describe('usbmuxd result table', () => {
  it('maps every known Result number to its code', () => {
    const expected: Record<number, string> = {
      1: 'usbmux/bad-command',
      2: 'usbmux/device-gone',
      3: 'usbmux/connection-refused',
      4: 'usbmux/no-such-service',
      6: 'usbmux/bad-version',
    };
    for (const [n, code] of Object.entries(expected)) {
      expect(USBMUX_RESULTS[Number(n)]?.code).toBe(code);
      const err = usbmuxResultError(Number(n), 'Connect', { deviceId: 3, port: 62078, udid: 'U' });
      expect(err).toBeInstanceOf(KitError);
      expect(err.code).toBe(code);
      expect(err.udid).toBe('U');
      expect(err.message).toContain('DeviceID 3');
    }
    expect(usbmuxResultError(3, 'Connect').retryable).toBe(true);
    expect(usbmuxResultError(99, 'ListDevices').code).toBe('usbmux/failed');
  });

  it('reads pair-record results as errno values', () => {
    const err = usbmuxResultError(22, 'SavePairRecord', { udid: 'U' });
    expect(err.code).toBe('usbmux/pair-record-failed');
    expect(err.message).toContain('EINVAL');
    expect(usbmuxResultError(1, 'SavePairRecord').code).toBe('usbmux/bad-command');
  });
});
