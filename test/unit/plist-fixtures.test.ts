/** Real bytes recorded from an iPhone through Apple's usbmuxd (see the fixtures README). */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  decodeBinary,
  decodePlist,
  decodeXml,
  encodeBinary,
  encodeXml,
  isPlistDict,
  plistEqual,
  type PlistDict,
} from '../../src/plist/index.ts';

const RECORDED = path.resolve(import.meta.dirname, '../../../shared/fixtures/recorded');

function read(name: string): Buffer {
  return fs.readFileSync(path.join(RECORDED, name));
}

/** The plist after a 16-byte little-endian usbmux header, checking the header's length field. */
function usbmuxPayload(name: string): Buffer {
  const b = read(name);
  expect(b.readUInt32LE(0)).toBe(b.length);
  expect(b.readUInt32LE(4)).toBe(1); // version 1: plist payloads
  expect(b.readUInt32LE(8)).toBe(8); // message type 8: plist
  return b.subarray(16);
}

/** The plist after a 4-byte big-endian lockdown length prefix. */
function lockdownPayload(name: string): Buffer {
  const b = read(name);
  expect(b.readUInt32BE(0)).toBe(b.length - 4);
  return b.subarray(4);
}

function dict(v: unknown): PlistDict {
  expect(isPlistDict(v)).toBe(true);
  return v as PlistDict;
}

/** Decoding, re-encoding in both formats and decoding again keeps the value. */
function expectStable(v: PlistDict): void {
  expect(plistEqual(decodeBinary(encodeBinary(v)), v)).toBe(true);
  expect(plistEqual(decodeXml(encodeXml(v)), v)).toBe(true);
}

describe('recorded device fixtures', () => {
  it('usbmuxd ListDevices reply', () => {
    const recorded = [
      { name: 'usbmuxlistdevicemessage.bin', entryId: 1, productId: 4776 },
      { name: 'usbmuxlistdevicemessage2.bin', entryId: 2, productId: 4777 },
    ];
    for (const { name, entryId, productId } of recorded) {
      const v = dict(decodePlist(usbmuxPayload(name)));
      const list = v.DeviceList as PlistDict[];
      expect(list).toHaveLength(1);
      const entry = dict(list[0]);
      expect(entry.MessageType).toBe('Attached');
      expect(entry.DeviceID).toBe(entryId);
      const props = dict(entry.Properties);
      expect(props).toEqual({
        ConnectionSpeed: 480000000,
        ConnectionType: 'USB',
        DeviceID: 1,
        LocationID: 339881984,
        ProductID: productId,
        SerialNumber: expect.stringMatching(/^[0-9a-f]{40}$/) as unknown as string,
      });
      expectStable(v);
    }
  });

  it('usbmuxd Connect reply', () => {
    expect(decodePlist(usbmuxPayload('usbmuxconnectmessage.bin'))).toEqual({ MessageType: 'Result', Number: 0 });
  });

  it('usbmuxd ReadPairRecord reply, with the binary pair record inside', () => {
    const v = dict(decodePlist(usbmuxPayload('usbmuxreadpairmessage.bin')));
    const data = v.PairRecordData;
    expect(Buffer.isBuffer(data)).toBe(true);
    const raw = data as Buffer;
    expect(raw.subarray(0, 8).toString('latin1')).toBe('bplist00');
    const record = dict(decodePlist(raw));
    for (const k of ['DeviceCertificate', 'HostCertificate', 'RootCertificate']) {
      const pem = record[k];
      expect(Buffer.isBuffer(pem)).toBe(true);
      expect((pem as Buffer).toString('latin1')).toMatch(
        /^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?$/,
      );
    }
    for (const k of ['HostPrivateKey', 'RootPrivateKey']) {
      expect((record[k] as Buffer).toString('latin1')).toMatch(/^-----BEGIN (RSA )?PRIVATE KEY-----/);
    }
    expect(record.HostID).toMatch(/^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/);
    expect(record.SystemBUID).toMatch(/^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/);
    expect(Buffer.isBuffer(record.EscrowBag)).toBe(true);
    expect((record.EscrowBag as Buffer).length).toBe(32);
    expect(record.WiFiMACAddress).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    // Our binary writer reproduces the record exactly in value.
    expectStable(record);
    expectStable(v);
  });

  it('lockdown GetValue ProductVersion', () => {
    const v = decodePlist(lockdownPayload('lockdowngetvaluemessage.bin'));
    expect(v).toEqual({ Key: 'ProductVersion', Request: 'GetValue', Value: '12.3.1' });
  });

  it('lockdown GetValue TimeIntervalSince1970 (a real)', () => {
    const bytes = lockdownPayload('lockdowngettimemessage.bin');
    const v = dict(decodePlist(bytes));
    expect(v.Key).toBe('TimeIntervalSince1970');
    expect(v.Request).toBe('GetValue');
    expect(v.Value).toBeCloseTo(1561317733.062099, 6);
    expect(bytes.toString('utf8')).toContain('<real>');
    expectStable(v);
  });

  it('lockdown QueryType', () => {
    expect(decodePlist(lockdownPayload('lockdownquerytypemessage.bin'))).toEqual({
      Request: 'QueryType',
      Type: 'com.apple.mobile.lockdown',
    });
  });

  it('the usbmux Connect result followed by a lockdown frame on the same stream', () => {
    const b = read('usbmuxconnectandlockdown.bin');
    const first = b.readUInt32LE(0);
    expect(decodePlist(b.subarray(16, first))).toEqual({ MessageType: 'Result', Number: 0 });
    const frame = b.subarray(first);
    const len = frame.readUInt32BE(0);
    expect(len).toBe(frame.length - 4);
    expect(dict(decodePlist(frame.subarray(4))).Key).toBe('TimeIntervalSince1970');
  });
});
