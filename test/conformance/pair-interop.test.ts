/**
 * Pair records are shared with libimobiledevice through usbmuxd, both ways: a record made by
 * `idevicepair pair` is used by `kitting info` without pairing again, and a record made by
 * `kitting pair` is used by `ideviceinfo` without pairing again (the device keeps one pairing).
 * The Debian libimobiledevice-utils tools must be installed: without them this test fails.
 */
import { execFileSync } from 'node:child_process';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KITTING, NODE, run, type RunResult } from '../helpers/sim-process.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';

const TOOLS = ['idevicepair', 'ideviceinfo', 'idevice_id'] as const;

function which(tool: string): string | undefined {
  try {
    return execFileSync('which', [tool], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const sims: Simulator[] = [];
afterEach(async () => {
  for (const s of sims.splice(0)) await s.stop();
});

async function fleet(): Promise<{ sim: Simulator; udid: string; env: NodeJS.ProcessEnv }> {
  const sim = await startSimulator({ devices: 1, preset: 'fresh', timing: 'none' });
  sims.push(sim);
  const udid = sim.udids()[0];
  if (udid === undefined) throw new Error('no device');
  // libusbmuxd reads the UNIX:/path form.
  return { sim, udid, env: { USBMUXD_SOCKET_ADDRESS: sim.usbmuxdAddress, KITTING_LOG: 'error' } };
}

function tool(name: string, args: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  return run(name, args, { env, timeoutMs: 30_000 });
}

describe('pair records shared with libimobiledevice through usbmuxd', () => {
  beforeAll(() => {
    const missing = TOOLS.filter((t) => which(t) === undefined);
    expect(
      missing,
      `libimobiledevice tools missing: ${missing.join(', ')} — install the Debian package libimobiledevice-utils`,
    ).toEqual([]);
  });

  it('a record made by idevicepair is used by kitting info without pairing again', async () => {
    const { sim, udid, env } = await fleet();
    const listed = await tool('idevice_id', ['-l'], env);
    expect(listed.stdout, listed.stderr).toContain(udid);
    const paired = await tool('idevicepair', ['-u', udid, 'pair'], env);
    expect(paired.code, `${paired.stdout}${paired.stderr}`).toBe(0);
    const pairings = sim.state(udid).pairings;
    expect(pairings).toHaveLength(1);
    const hostId = pairings[0]?.hostId;

    const info = await run(NODE, [KITTING, 'info', udid, '--key', 'ProductVersion', '--json'], { env });
    expect(info.code, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout)).toEqual({ ProductVersion: sim.state(udid).productVersion });
    const list = JSON.parse((await run(NODE, [KITTING, 'list', '--json'], { env })).stdout) as {
      udid: string;
      paired: boolean;
    }[];
    expect(list.find((d) => d.udid === udid)?.paired).toBe(true);
    // Still the one pairing idevicepair made.
    expect(sim.state(udid).pairings.map((p) => p.hostId)).toEqual([hostId]);
  });

  it('a record made by kitting pair is used by ideviceinfo and idevicepair validate without pairing again', async () => {
    const { sim, udid, env } = await fleet();
    const paired = await run(NODE, [KITTING, 'pair', udid, '--json'], { env });
    expect(paired.code, paired.stderr).toBe(0);
    const { hostId } = JSON.parse(paired.stdout) as { hostId: string };
    expect(sim.state(udid).pairings.map((p) => p.hostId)).toEqual([hostId]);

    const info = await tool('ideviceinfo', ['-u', udid, '-k', 'ProductVersion'], env);
    expect(info.code, info.stderr).toBe(0);
    expect(info.stdout.trim()).toBe(sim.state(udid).productVersion);
    // A session-only domain proves ideviceinfo started a TLS session with our record.
    const battery = await tool('ideviceinfo', ['-u', udid, '-q', 'com.apple.mobile.battery'], env);
    expect(battery.code, battery.stderr).toBe(0);
    expect(battery.stdout).toContain('BatteryCurrentCapacity');
    const validate = await tool('idevicepair', ['-u', udid, 'validate'], env);
    expect(validate.code, `${validate.stdout}${validate.stderr}`).toBe(0);
    expect(sim.state(udid).pairings.map((p) => p.hostId)).toEqual([hostId]);
  });
});
