/**
 * The AFC client against the virtual fleet: directories, file info, open/write/read/close, list,
 * remove (empty and with contents), go-ios' SkipSetup sequence, and the status table (not found,
 * permission denied, exists, unknown numbers kept) plus a connection dropped mid-operation.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { openDevice } from '../../src/device/device.ts';
import { AFC_MODE, AfcClient } from '../../src/device/services/afc.ts';
import { UsbmuxClient } from '../../src/device/usbmux.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';

const sims: Simulator[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  for (const s of sims.splice(0)) await s.stop();
});

async function afc(): Promise<{ sim: Simulator; udid: string; client: AfcClient }> {
  const sim = await startSimulator({ devices: 1, preset: 'activated', timing: 'none' });
  sims.push(sim);
  const udid = sim.udids()[0] as string;
  const session = await openDevice(new UsbmuxClient(sim.usbmuxdAddress), udid);
  const client = await AfcClient.start(session.lockdown, { timeoutMs: 5_000 });
  cleanups.push(async () => {
    client.close();
    await session.close();
  });
  return { sim, udid, client };
}

async function failure(p: Promise<unknown>): Promise<KitError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof KitError) return err;
    throw err;
  }
  throw new Error('expected a KitError');
}

describe('AFC', () => {
  it("runs go-ios' SkipSetup sequence: remove (absent), make dir, file info, create empty file", async () => {
    const { client } = await afc();
    const absent = await failure(client.removePathAndContents('iTunes_Control/iTunes/SkipSetup'));
    expect(absent.code).toBe('afc/not-found');
    expect(absent.exitCode).toBe(3);
    await client.makeDirectory('iTunes_Control/iTunes');
    expect((await client.getFileInfo('iTunes_Control/iTunes')).type).toBe('directory');
    await client.writeWholeFile('iTunes_Control/iTunes/SkipSetup', Buffer.alloc(0));
    const info = await client.getFileInfo('iTunes_Control/iTunes/SkipSetup');
    expect(info).toMatchObject({ type: 'file', size: 0 });
    expect(await client.listDirectory('iTunes_Control/iTunes')).toContain('SkipSetup');
  });

  it('writes, reads back, lists and removes files and folders', async () => {
    const { client } = await afc();
    await client.makeDirectory('Kitting/a/b');
    const bytes = Buffer.from('こんにちは kitting '.repeat(1000));
    const h = await client.openFile('Kitting/a/b/hello.txt', AFC_MODE.writeOnly);
    await client.writeFile(h, bytes.subarray(0, 100));
    await client.writeFile(h, bytes.subarray(100));
    await client.closeFile(h);
    const info = await client.getFileInfo('Kitting/a/b/hello.txt');
    expect(info.size).toBe(bytes.length);
    expect(info.modifiedMs).not.toBeNull();
    expect(await client.readWholeFile('Kitting/a/b/hello.txt')).toEqual(bytes);
    const r = await client.openFile('Kitting/a/b/hello.txt', AFC_MODE.readOnly);
    expect(await client.readFile(r, 5)).toEqual(bytes.subarray(0, 5));
    await client.closeFile(r);
    expect((await client.listDirectory('Kitting')).sort()).toEqual(['a']);
    expect(await client.listDirectory('Kitting/a/b')).toEqual(['hello.txt']);

    const notEmpty = await failure(client.removePath('Kitting/a'));
    expect(notEmpty.code.startsWith('afc/')).toBe(true);
    expect(notEmpty.details?.afcStatus).toBeGreaterThan(0);
    await client.removePath('Kitting/a/b/hello.txt');
    expect(await client.listDirectory('Kitting/a/b')).toEqual([]);
    await client.writeWholeFile('Kitting/a/x', Buffer.from('x'));
    await client.removePathAndContents('Kitting');
    expect((await failure(client.getFileInfo('Kitting/a'))).code).toBe('afc/not-found');
    expect((await failure(client.openFile('Kitting/none', AFC_MODE.readOnly))).code).toBe('afc/not-found');
  });

  it('maps status codes through the table and keeps unknown numbers', async () => {
    const { sim, udid, client } = await afc();
    sim.fault(udid, 'error=MakeDir:10');
    const denied = await failure(client.makeDirectory('Nope'));
    expect(denied.code).toBe('afc/permission-denied');
    sim.fault(udid, 'error=FileOpen:16');
    expect((await failure(client.openFile('x', AFC_MODE.writeOnly))).code).toBe('afc/exists');
    sim.fault(udid, 'error=FileOpen:18');
    expect((await failure(client.openFile('x', AFC_MODE.writeOnly))).code).toBe('afc/no-space');
    sim.fault(udid, 'error=FileOpen:77');
    const unknown = await failure(client.openFile('x', AFC_MODE.writeOnly));
    expect(unknown.code).toBe('afc/failed');
    expect(unknown.details).toMatchObject({ afcStatus: 77 });
    sim.fault(udid, 'clear');
    await client.makeDirectory('Fine');
  });

  it('a connection dropped mid-operation → device/connection-lost for that and every later call', async () => {
    const { sim, udid, client } = await afc();
    sim.fault(udid, 'disconnect-after=FileOpen');
    expect((await failure(client.openFile('y', AFC_MODE.writeOnly))).code).toBe('device/connection-lost');
    expect((await failure(client.makeDirectory('z'))).code).toBe('device/connection-lost');
  });
});
