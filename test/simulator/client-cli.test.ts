/**
 * The device commands of cli.md run as a user would (`bin/kitting.js` child processes) against a
 * spawned `kitting sim`: JSON fields, human output, exit codes (0 ok, 1 failed, 2 usage, 3 no such device).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KITTING, NODE, run, spawnSim, type RunResult, type SimProcess } from '../helpers/sim-process.ts';

let sim: SimProcess;
let udids: string[];

beforeAll(async () => {
  sim = await spawnSim(['--devices', '3', '--preset', 'fresh', '--timing', 'none']);
  udids = sim.devices;
});
afterAll(async () => {
  await sim.stop();
});

function kitting(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return run(NODE, [KITTING, ...args], { env: { USBMUXD_SOCKET_ADDRESS: sim.usbmuxd, KITTING_LOG: 'error', ...env } });
}

async function stateOf(udid: string): Promise<{ pairings: { hostId: string }[]; mode?: string }> {
  const r = await sim.ctl(['state', udid, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { pairings: { hostId: string }[] };
}

describe('kitting device commands against a spawned simulator', () => {
  it('list --json: one entry per device with the fields of cli.md, never pairing', async () => {
    const r = await kitting(['list', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const list = JSON.parse(r.stdout) as Record<string, unknown>[];
    expect(list.map((d) => d.udid).sort()).toEqual([...udids].sort());
    for (const d of list) {
      for (const field of [
        'udid',
        'serial',
        'name',
        'productType',
        'model',
        'osVersion',
        'activationState',
        'supervised',
        'paired',
        'connection',
        'port',
      ]) {
        expect(d, field).toHaveProperty(field);
      }
      expect(d.connection).toBe('USB');
      expect(typeof d.serial).toBe('string');
      expect(typeof d.model).toBe('string');
    }
    const first = udids[0] as string;
    expect((await stateOf(first)).pairings).toHaveLength(0);
  });

  it('global --json works before the command too, and the human list is a table', async () => {
    const r = await kitting(['--json', 'list']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toHaveLength(3);
    const human = await kitting(['list']);
    expect(human.code).toBe(0);
    expect(human.stdout.split('\n')[0]).toMatch(/^UDID\s+NAME\s+MODEL/);
    for (const u of udids) expect(human.stdout).toContain(u);
  });

  it('info pairs first if needed, then answers one key, a domain or everything', async () => {
    const udid = udids[0] as string;
    const key = await kitting(['info', udid, '--key', 'UniqueDeviceID', '--json']);
    expect(key.code, key.stderr).toBe(0);
    expect(JSON.parse(key.stdout)).toEqual({ UniqueDeviceID: udid });
    expect((await stateOf(udid)).pairings).toHaveLength(1);
    const human = await kitting(['info', udid]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`UniqueDeviceID: ${udid}`);
    expect(human.stdout).toMatch(/^ProductVersion: \d+/m);
    // ECID stays exact (a decimal string in JSON).
    const all = JSON.parse((await kitting(['--json', 'info', udid])).stdout) as Record<string, unknown>;
    expect(typeof all.UniqueChipID).toBe('string');
    expect(all.UniqueChipID).toMatch(/^\d+$/);
    const domain = await kitting(['info', udid, '--domain', 'com.apple.mobile.battery', '--json']);
    expect(JSON.parse(domain.stdout)).toHaveProperty('BatteryCurrentCapacity');
    // Still one pairing: the stored record was used.
    expect((await stateOf(udid)).pairings).toHaveLength(1);
  });

  it('an unknown key fails with exit 1 and a JSON error naming the code', async () => {
    const r = await kitting(['info', udids[0] as string, '--key', 'NoSuchKeyAnywhere', '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({
      error: { code: 'lockdown/missing-value', message: expect.stringContaining('MissingValue') as unknown },
    });
    expect(r.stderr).toContain('[lockdown/missing-value]');
  });

  it('exit 3 for a UDID that is not attached, for every device command', async () => {
    for (const args of [
      ['info', 'NOPE'],
      ['pair', 'NOPE'],
      ['unpair', 'NOPE'],
      ['restart', 'NOPE'],
      ['shutdown', 'NOPE'],
    ]) {
      const r = await kitting([...args, '--json']);
      expect(r.code, args.join(' ')).toBe(3);
      expect((JSON.parse(r.stdout) as { error: { code: string } }).error.code).toBe('device/not-found');
    }
  });

  it('exit 2 for bad usage', async () => {
    expect((await kitting(['pair'])).code).toBe(2);
    expect((await kitting(['pair', udids[0] as string, '--all'])).code).toBe(2);
    expect((await kitting(['info'])).code).toBe(2);
    expect((await kitting(['list'], { USBMUXD_SOCKET_ADDRESS: 'host:notaport' })).code).toBe(2);
  });

  it('exit 1 with usbmux/unavailable when usbmuxd is not there', async () => {
    const r = await kitting(['list', '--json'], { USBMUXD_SOCKET_ADDRESS: 'UNIX:/nonexistent/kitting/usbmuxd.sock' });
    expect(r.code).toBe(1);
    expect((JSON.parse(r.stdout) as { error: { code: string } }).error.code).toBe('usbmux/unavailable');
  });

  it('pair, pair again (kept), unpair, and pair --all', async () => {
    const udid = udids[1] as string;
    const first = await kitting(['pair', udid, '--json']);
    expect(first.code, first.stderr).toBe(0);
    const r1 = JSON.parse(first.stdout) as { udid: string; hostId: string; pairedNow: boolean };
    expect(r1).toMatchObject({ udid, pairedNow: true });
    expect((await stateOf(udid)).pairings.map((p) => p.hostId)).toEqual([r1.hostId]);
    const again = JSON.parse((await kitting(['pair', udid, '--json'])).stdout) as {
      pairedNow: boolean;
      hostId: string;
    };
    expect(again).toMatchObject({ pairedNow: false, hostId: r1.hostId });
    const unpair = await kitting(['unpair', udid, '--json']);
    expect(JSON.parse(unpair.stdout)).toEqual({ udid, unpaired: true, hostId: r1.hostId });
    expect((await stateOf(udid)).pairings).toHaveLength(0);
    expect(JSON.parse((await kitting(['unpair', udid, '--json'])).stdout)).toMatchObject({ unpaired: false });
    const all = await kitting(['pair', '--all', '--json']);
    expect(all.code, all.stderr).toBe(0);
    const results = JSON.parse(all.stdout) as { udid: string; hostId?: string }[];
    expect(results.map((r) => r.udid).sort()).toEqual([...udids].sort());
    expect(results.every((r) => typeof r.hostId === 'string')).toBe(true);
    const human = await kitting(['list']);
    expect(human.stdout.match(/ paired/g)).toHaveLength(3);
  });

  it('restart: the device comes back with a new DeviceID; shutdown: it leaves', async () => {
    const udid = udids[2] as string;
    const before = (
      JSON.parse((await kitting(['list', '--json'])).stdout) as { udid: string; deviceId: number }[]
    ).find((d) => d.udid === udid);
    const r = await kitting(['restart', udid, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ udid, action: 'restart' });
    let after: { udid: string; deviceId: number } | undefined;
    for (let i = 0; i < 50 && (after === undefined || after.deviceId === before?.deviceId); i++) {
      const list = JSON.parse((await kitting(['list', '--json'])).stdout) as { udid: string; deviceId: number }[];
      after = list.find((d) => d.udid === udid);
    }
    expect(after?.deviceId).toBeDefined();
    expect(after?.deviceId).not.toBe(before?.deviceId);
    const off = await kitting(['shutdown', udid]);
    expect(off.code, off.stderr).toBe(0);
    expect(off.stdout).toContain('shutting down');
  });
});
