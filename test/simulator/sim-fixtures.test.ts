/**
 * The simulator answers the requests of the recorded real exchanges (/work/shared/fixtures/recorded:
 * a real iPhone behind Apple's usbmuxd) in the same shape: header version and message, the tag
 * echoed, the same keys and the same value types.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePlist, isPlistDict, PlistReal, type PlistDict, type PlistValue } from '../../src/plist/index.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { deviceConnect, listDevices, MuxSocket, muxRequest, type MuxPacket } from '../helpers/sim-process.ts';

const FIXTURES = '/work/shared/fixtures/recorded';

function fixture(name: string): Buffer {
  return fs.readFileSync(path.join(FIXTURES, name));
}

/** One recorded usbmuxd packet: header fields and the decoded plist. */
function recordedMux(bytes: Buffer): { version: number; message: number; tag: number; plist: PlistDict; rest: Buffer } {
  const length = bytes.readUInt32LE(0);
  const plist = decodePlist(bytes.subarray(16, length), { realsAsObjects: true });
  if (!isPlistDict(plist)) throw new Error('recorded usbmuxd payload is not a dict');
  return {
    version: bytes.readUInt32LE(4),
    message: bytes.readUInt32LE(8),
    tag: bytes.readUInt32LE(12),
    plist,
    rest: bytes.subarray(length),
  };
}

/** One recorded lockdown frame, decoded. */
function recordedFrame(bytes: Buffer): PlistDict {
  const len = bytes.readUInt32BE(0);
  expect(bytes.length).toBe(4 + len);
  const v = decodePlist(bytes.subarray(4), { realsAsObjects: true });
  if (!isPlistDict(v)) throw new Error('recorded lockdown frame is not a dict');
  return v;
}

/** The plist type of a value, as the shape comparison sees it. */
function typeOf(v: PlistValue): string {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'bigint') return 'integer';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'real';
  if (v instanceof PlistReal) return 'real';
  if (Buffer.isBuffer(v)) return 'data';
  if (v instanceof Date) return 'date';
  if (Array.isArray(v)) return 'array';
  if (isPlistDict(v)) return 'dict';
  return 'other';
}

/** Key → type, recursively for dicts and the first element of arrays. */
function shape(v: PlistValue): unknown {
  if (isPlistDict(v))
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, shape(v[k] as PlistValue)]),
    );
  if (Array.isArray(v)) return v.length === 0 ? [] : [shape(v[0] as PlistValue)];
  return typeOf(v);
}

let sim: Simulator;
let dir: string;
let udid: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-fixtures-'));
  sim = await startSimulator({
    devices: 1,
    preset: 'activated',
    socketPath: path.join(dir, 'usbmuxd.sock'),
    seed: 'fixtures',
  });
  udid = sim.udids()[0] ?? '';
});

afterAll(async () => {
  await sim?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function expectHeaderLike(reply: MuxPacket, recorded: { version: number; message: number }, tag: number): void {
  expect(reply.version).toBe(recorded.version);
  expect(reply.message).toBe(recorded.message);
  expect(reply.tag).toBe(tag);
  expect(reply.length).toBe(16 + reply.payload.length);
}

describe('usbmuxd replies have the recorded shape', () => {
  it('ListDevices', async () => {
    for (const [file, tag] of [
      ['usbmuxlistdevicemessage.bin', 0],
      ['usbmuxlistdevicemessage2.bin', 1],
    ] as const) {
      const rec = recordedMux(fixture(file));
      expect(rec.tag).toBe(tag);
      const reply = await muxRequest(
        sim.usbmuxdAddress,
        {
          MessageType: 'ListDevices',
          ClientVersionString: 'libusbmuxd 2.0.2',
          ProgName: 'vitest',
          kLibUSBMuxVersion: 3,
        },
        tag,
      );
      expectHeaderLike(reply, rec, tag);
      expect(reply.plist).toBeDefined();
      expect(shape(reply.plist ?? {})).toEqual(shape(rec.plist));
      const entry = (reply.plist?.DeviceList as PlistDict[])[0];
      expect((entry?.Properties as PlistDict).SerialNumber).toBe(udid);
      expect((entry?.Properties as PlistDict).ConnectionType).toBe('USB');
    }
  });

  it('Connect', async () => {
    const rec = recordedMux(fixture('usbmuxconnectmessage.bin'));
    const [dev] = await listDevices(sim.usbmuxdAddress);
    const s = await MuxSocket.connect(sim.usbmuxdAddress);
    s.send({ MessageType: 'Connect', DeviceID: dev?.deviceId ?? 0, PortNumber: 32498, ProgName: 'vitest' }, rec.tag);
    const reply = await s.read();
    s.close();
    expectHeaderLike(reply, rec, rec.tag);
    expect(reply.plist).toEqual(rec.plist);
  });

  it('ReadPairRecord (a real macOS pair record saved, then read back)', async () => {
    const rec = recordedMux(fixture('usbmuxreadpairmessage.bin'));
    const recordData = rec.plist.PairRecordData;
    if (!Buffer.isBuffer(recordData)) throw new Error('fixture PairRecordData is not data');
    const save = await muxRequest(
      sim.usbmuxdAddress,
      { MessageType: 'SavePairRecord', PairRecordID: udid, PairRecordData: recordData },
      3,
    );
    expect(save.plist).toEqual({ MessageType: 'Result', Number: 0 });

    const reply = await muxRequest(sim.usbmuxdAddress, { MessageType: 'ReadPairRecord', PairRecordID: udid }, rec.tag);
    expectHeaderLike(reply, rec, rec.tag);
    expect(shape(reply.plist ?? {})).toEqual(shape(rec.plist));
    const ours = decodePlist(reply.plist?.PairRecordData as Buffer);
    const theirs = decodePlist(recordData);
    expect(shape(ours)).toEqual(shape(theirs));
    await muxRequest(sim.usbmuxdAddress, { MessageType: 'DeletePairRecord', PairRecordID: udid });
  });
});

describe('lockdown replies have the recorded shape', () => {
  async function lockdown(): Promise<Awaited<ReturnType<typeof deviceConnect>>> {
    const [dev] = await listDevices(sim.usbmuxdAddress);
    return deviceConnect(sim.usbmuxdAddress, dev?.deviceId ?? 0);
  }

  it('QueryType', async () => {
    const rec = recordedFrame(fixture('lockdownquerytypemessage.bin'));
    const ld = await lockdown();
    const reply = await ld.request({ Label: 'vitest', Request: 'QueryType' }, { realsAsObjects: true });
    ld.close();
    expect(shape(reply)).toEqual(shape(rec));
    expect(reply).toEqual(rec);
  });

  it('GetValue ProductVersion', async () => {
    const rec = recordedFrame(fixture('lockdowngetvaluemessage.bin'));
    const ld = await lockdown();
    const reply = await ld.request(
      { Label: 'vitest', Key: 'ProductVersion', Request: 'GetValue' },
      { realsAsObjects: true },
    );
    ld.close();
    expect(shape(reply)).toEqual(shape(rec));
    expect(reply.Value).toBe(sim.state(udid).productVersion);
  });

  it('GetValue TimeIntervalSince1970 (a real), after a Connect result like the recorded one', async () => {
    const recorded = fixture('usbmuxconnectandlockdown.bin');
    const mux = recordedMux(recorded);
    const rec = recordedFrame(mux.rest);
    expect(rec.Value).toBeInstanceOf(PlistReal);
    const [dev] = await listDevices(sim.usbmuxdAddress);
    const s = await MuxSocket.connect(sim.usbmuxdAddress);
    s.send({ MessageType: 'Connect', DeviceID: dev?.deviceId ?? 0, PortNumber: 32498 }, mux.tag);
    const result = await s.read();
    expectHeaderLike(result, mux, mux.tag);
    expect(result.plist).toEqual(mux.plist);
    // Same socket, now raw lockdown framing.
    const body = Buffer.from(
      '<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0"><dict><key>Key</key><string>TimeIntervalSince1970</string><key>Request</key><string>GetValue</string></dict></plist>\n',
    );
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(body.length, 0);
    s.socket.write(Buffer.concat([prefix, body]));
    const len = (await s.reader.read(4)).readUInt32BE(0);
    const reply = decodePlist(await s.reader.read(len), { realsAsObjects: true });
    s.close();
    expect(shape(reply)).toEqual(shape(rec));
    expect(Math.abs((reply as { Value: PlistReal }).Value.value - Date.now() / 1000)).toBeLessThan(600);
  });
});
