/**
 * AFC of the virtual devices over a raw socket: go-ios' prepare sequence (SkipSetup file), file
 * write/read, listing, removal with and without a trailing NUL, and replies in the shape of the
 * packets recorded from a real device.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { TestHost, type ServiceConnection } from '../helpers/sim-process.ts';

const RECORDED = '/work/shared/fixtures/recorded';
const dirs: string[] = [];
let sim: Simulator;

beforeAll(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-afc-'));
  dirs.push(dir);
  sim = await startSimulator({ socketPath: path.join(dir, 'usbmuxd.sock'), devices: 0, seed: 'sim-afc' });
});

afterAll(async () => {
  await sim.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

interface Packet {
  magic: string;
  entire: number;
  thisLength: number;
  num: bigint;
  op: number;
  headerPayload: Buffer;
  data: Buffer;
  raw: Buffer;
}

function decode(raw: Buffer): Packet {
  const entire = Number(raw.readBigUInt64LE(8));
  const thisLength = Number(raw.readBigUInt64LE(16));
  return {
    magic: raw.subarray(0, 8).toString('latin1'),
    entire,
    thisLength,
    num: raw.readBigUInt64LE(24),
    op: Number(raw.readBigUInt64LE(32)),
    headerPayload: raw.subarray(40, thisLength),
    data: raw.subarray(thisLength, entire),
    raw,
  };
}

class Afc {
  private num = 0n;
  readonly conn: ServiceConnection;
  constructor(conn: ServiceConnection) {
    this.conn = conn;
  }

  async op(op: number, headerPayload: Buffer, data: Buffer = Buffer.alloc(0)): Promise<Packet> {
    this.num++;
    const h = Buffer.alloc(40);
    h.write('CFA6LPAA', 0, 'latin1');
    h.writeBigUInt64LE(BigInt(40 + headerPayload.length + data.length), 8);
    h.writeBigUInt64LE(BigInt(40 + headerPayload.length), 16);
    h.writeBigUInt64LE(this.num, 24);
    h.writeBigUInt64LE(BigInt(op), 32);
    this.conn.socket.write(Buffer.concat([h, headerPayload, data]));
    const head = await this.conn.reader.read(40);
    const rest = await this.conn.reader.read(Number(head.readBigUInt64LE(8)) - 40);
    const p = decode(Buffer.concat([head, rest]));
    expect(p.num).toBe(this.num);
    return p;
  }

  status(p: Packet): bigint {
    expect(p.op).toBe(1);
    expect(p.thisLength).toBe(48);
    expect(p.entire).toBe(48);
    return p.headerPayload.readBigUInt64LE(0);
  }
}

const path0 = (p: string): Buffer => Buffer.from(`${p}\0`);
const u64 = (...n: number[]): Buffer =>
  Buffer.concat(
    n.map((x) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(x), 0);
      return b;
    }),
  );
const pairs = (b: Buffer): Record<string, string> => {
  const parts = b.toString('utf8').split('\0').slice(0, -1);
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < parts.length; i += 2) out[parts[i] as string] = parts[i + 1] as string;
  return out;
};

async function afcFor(preset = 'activated'): Promise<{ udid: string; afc: Afc; host: TestHost }> {
  const udid = sim.plug(preset);
  const host = await TestHost.create(sim.usbmuxdAddress, udid, sim.systemBuid);
  expect((await host.pair()).Error).toBeUndefined();
  return { udid, host, afc: new Afc(await host.service('com.apple.afc')) };
}

describe('AFC', () => {
  it('answers in the recorded packets’ shapes (status, file info, directory listing)', async () => {
    const { afc } = await afcFor();
    const recordedStatus = decode(fs.readFileSync(path.join(RECORDED, 'afcsuccessresponse.bin')));
    const recordedInfo = decode(fs.readFileSync(path.join(RECORDED, 'afcfileinforesponse.bin')));
    const recordedList = decode(fs.readFileSync(path.join(RECORDED, 'afclistdirresponse.bin')));

    const st = await afc.op(0x09, path0('Kitting'));
    expect([st.magic, st.op, st.thisLength, st.entire]).toEqual([
      recordedStatus.magic,
      recordedStatus.op,
      recordedStatus.thisLength,
      recordedStatus.entire,
    ]);
    expect(afc.status(st)).toBe(0n);

    const info = await afc.op(0x0a, path0('iTunes_Control'));
    expect([info.magic, info.op, info.thisLength]).toEqual([
      recordedInfo.magic,
      recordedInfo.op,
      recordedInfo.thisLength,
    ]);
    expect(Object.keys(pairs(info.data))).toEqual(Object.keys(pairs(recordedInfo.data)));
    expect(pairs(info.data).st_ifmt).toBe('S_IFDIR');
    expect(pairs(info.data).st_mtime).toMatch(/^\d{19}$/);

    const list = await afc.op(0x03, path0('/'));
    expect([list.magic, list.op, list.thisLength]).toEqual([
      recordedList.magic,
      recordedList.op,
      recordedList.thisLength,
    ]);
    const names = list.data.toString('utf8').split('\0').slice(0, -1);
    const recordedNames = recordedList.data.toString('utf8').split('\0').slice(0, -1);
    expect(names.slice(0, 2)).toEqual(['.', '..']);
    expect(names).toEqual(expect.arrayContaining([...recordedNames, 'Kitting']));
  });

  it('runs go-ios’ prepare sequence: remove SkipSetup (missing: 8), make dir, info, open w, close', async () => {
    const { udid, afc } = await afcFor();
    expect(afc.status(await afc.op(0x22, Buffer.from('iTunes_Control/iTunes/SkipSetup')))).toBe(8n);
    expect(afc.status(await afc.op(0x09, path0('iTunes_Control/iTunes')))).toBe(0n);
    expect((await afc.op(0x0a, path0('iTunes_Control/iTunes'))).op).toBe(2);
    const open = await afc.op(0x0d, Buffer.concat([u64(3), path0('iTunes_Control/iTunes/SkipSetup')]));
    expect(open.op).toBe(0x0e);
    expect(open.thisLength).toBe(48);
    const handle = open.headerPayload.readBigUInt64LE(0);
    expect(afc.status(await afc.op(0x14, u64(Number(handle))))).toBe(0n);
    const info = pairs((await afc.op(0x0a, path0('iTunes_Control/iTunes/SkipSetup'))).data);
    expect(info).toMatchObject({ st_size: '0', st_ifmt: 'S_IFREG' });
    expect(sim.state(udid).afcFiles).toBeGreaterThan(0);
  });

  it('writes, reads back, lists, removes with and without a trailing NUL, and removes trees', async () => {
    const { afc } = await afcFor();
    expect(afc.status(await afc.op(0x09, path0('Kitting/a/b')))).toBe(0n);
    const open = await afc.op(0x0d, Buffer.concat([u64(3), path0('Kitting/a/b/hello.txt')]));
    const h = Number(open.headerPayload.readBigUInt64LE(0));
    // libimobiledevice: the handle in the header payload, the bytes as data.
    expect(afc.status(await afc.op(0x10, u64(h), Buffer.from('hello, ')))).toBe(0n);
    expect(afc.status(await afc.op(0x10, u64(h), Buffer.from('iPad')))).toBe(0n);
    expect(afc.status(await afc.op(0x14, u64(h)))).toBe(0n);
    expect(afc.status(await afc.op(0x14, u64(h)))).toBe(7n);

    const r = await afc.op(0x0d, Buffer.concat([u64(1), path0('Kitting/a/b/hello.txt')]));
    const rh = Number(r.headerPayload.readBigUInt64LE(0));
    const read = await afc.op(0x0f, u64(rh, 1024));
    expect(read.op).toBe(2);
    expect(read.data.toString()).toBe('hello, iPad');
    expect(afc.status(await afc.op(0x14, u64(rh)))).toBe(0n);
    expect(pairs((await afc.op(0x0a, path0('Kitting/a/b/hello.txt'))).data).st_size).toBe('11');

    const listing = (await afc.op(0x03, path0('Kitting/a/b'))).data.toString().split('\0').slice(0, -1);
    expect(listing).toEqual(['.', '..', 'hello.txt']);
    // A non-empty directory is not removed by REMOVE_PATH.
    expect(afc.status(await afc.op(0x08, path0('Kitting/a')))).not.toBe(0n);
    expect(afc.status(await afc.op(0x08, Buffer.from('Kitting/a/b/hello.txt')))).toBe(0n);
    expect(afc.status(await afc.op(0x0a, path0('Kitting/a/b/hello.txt')))).toBe(8n);
    expect(afc.status(await afc.op(0x08, path0('Kitting/a/b')))).toBe(0n);
    expect(afc.status(await afc.op(0x09, path0('Kitting/x/y')))).toBe(0n);
    expect(afc.status(await afc.op(0x22, path0('Kitting')))).toBe(0n);
    expect(afc.status(await afc.op(0x0a, path0('Kitting/x/y')))).toBe(8n);
    // Opening for reading what is not there; climbing above the root.
    expect(afc.status(await afc.op(0x0d, Buffer.concat([u64(1), path0('nope.txt')])))).toBe(8n);
    expect(afc.status(await afc.op(0x22, path0('../..')))).not.toBe(0n);
  });

  it('the tree is wiped by an erase; faults apply to AFC operations', async () => {
    const { udid, afc, host } = await afcFor();
    expect(afc.status(await afc.op(0x09, path0('Survives/Not')))).toBe(0n);
    sim.fault(udid, 'error=MakeDir:10', { once: true });
    expect(afc.status(await afc.op(0x09, path0('Other')))).toBe(10n);
    afc.conn.close();
    const mc = await host.service('com.apple.mobile.MCInstall');
    expect(await mc.request({ RequestType: 'EraseDevice', PreserveDataPlan: true })).toEqual({
      Status: 'Acknowledged',
    });
    await mc.waitClosed();
    const deadline = Date.now() + 15_000;
    while (!sim.state(udid).attached || sim.state(udid).preset !== 'fresh') {
      if (Date.now() > deadline) throw new Error('device did not return');
      await new Promise((res) => setTimeout(res, 20));
    }
    const host2 = await TestHost.create(sim.usbmuxdAddress, udid, sim.systemBuid);
    expect((await host2.pair()).Error).toBeUndefined();
    const afc2 = new Afc(await host2.service('com.apple.afc'));
    expect(afc2.status(await afc2.op(0x0a, path0('Survives')))).toBe(8n);
  });
});
