/**
 * `kitting cloudconfig`, `profiles list|install|remove`, `erase`, `activate` and `pair --identity`
 * run as a user would (`bin/kitting.js` child processes) against spawned simulators: JSON shapes,
 * human output, exit codes (0 ok, 1 failed, 2 usage, 3 nothing matched), the audit row of an erase.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentityService } from '../../src/identity/identity.ts';
import { MIN_SCRYPT, PassphraseVault } from '../../src/identity/vault.ts';
import { listAudit } from '../../src/store/audit.ts';
import { openStationDatabase } from '../../src/store/db.ts';
import { KITTING, NODE, profileBytes, run, spawnSim, type RunResult, type SimProcess } from '../helpers/sim-process.ts';

const PASSPHRASE = 'correct horse battery staple';
let dir: string;
let dataDir: string;
let passphraseFile: string;
let profileFile: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-cli-services-'));
  dataDir = path.join(dir, 'data');
  passphraseFile = path.join(dir, 'passphrase.txt');
  fs.writeFileSync(passphraseFile, `${PASSPHRASE}\n`, { mode: 0o600 });
  profileFile = path.join(dir, 'wifi.mobileconfig');
  fs.writeFileSync(profileFile, profileBytes('org.example.cli.wifi', 'CLI Wi-Fi'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function kitting(sim: SimProcess, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return run(NODE, [KITTING, ...args], {
    env: { USBMUXD_SOCKET_ADDRESS: sim.usbmuxd, KITTING_DATA_DIR: dataDir, KITTING_LOG: 'error', ...env },
  });
}

async function stateOf(sim: SimProcess, udid: string): Promise<Record<string, unknown>> {
  const r = await sim.ctl(['state', udid, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

function errorOf(r: RunResult): { code: string; message: string } {
  return (JSON.parse(r.stdout) as { error: { code: string; message: string } }).error;
}

describe('device service commands on unsupervised devices', () => {
  let sim: SimProcess;
  beforeAll(async () => {
    sim = await spawnSim(['--devices', '3', '--preset', 'fresh', '--timing', 'none']);
  });
  afterAll(async () => {
    await sim.stop();
  });

  it('cloudconfig: null with --json (before or after the command), a sentence without', async () => {
    const udid = sim.devices[0] as string;
    const r = await kitting(sim, ['cloudconfig', udid, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toBeNull();
    const before = await kitting(sim, ['--json', 'cloudconfig', udid]);
    expect(JSON.parse(before.stdout)).toBeNull();
    const human = await kitting(sim, ['cloudconfig', udid, '--lang', 'en']);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('No cloud configuration');
    const missing = await kitting(sim, ['cloudconfig', '00000000-0000000000000000', '--json']);
    expect(missing.code).toBe(3);
    expect(errorOf(missing).code).toBe('device/not-found');
  });

  it('activate: offline with a closed port (exit 1), then activated with the fake Apple server', async () => {
    const udid = sim.devices[0] as string;
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const offline = await kitting(sim, [
      'activate',
      udid,
      '--activation-url',
      `http://127.0.0.1:${port}/deviceservices/deviceActivation`,
      '--json',
    ]);
    expect(offline.code).toBe(1);
    expect(errorOf(offline).code).toBe('activation/offline');
    expect(offline.stderr).toContain('activation/offline');

    const endpoint = await sim.ctl(['activation-server', 'ok', '--json']);
    expect(endpoint.code, endpoint.stderr).toBe(0);
    const url = (JSON.parse(endpoint.stdout) as { url: string }).url;
    const ok = await kitting(sim, ['activate', udid, '--activation-url', url, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({
      udid,
      flow: 'session',
      alreadyActivated: false,
      activationState: 'Activated',
    });
    expect((await stateOf(sim, udid)).activationState).toBe('Activated');
    const bad = await kitting(sim, ['activate', udid, '--activation-url', 'ftp://x']);
    expect(bad.code).toBe(2);
  });

  it('profiles install/list/remove: JSON shapes and exit 3 for an unknown identifier', async () => {
    const udid = sim.devices[1] as string;
    const install = await kitting(sim, ['profiles', 'install', profileFile, udid, '--json']);
    expect(install.code, install.stderr).toBe(0);
    expect(JSON.parse(install.stdout)).toEqual({ udid, identifier: 'org.example.cli.wifi', silent: false });
    const list = await kitting(sim, ['--json', 'profiles', 'list', udid]);
    expect(list.code, list.stderr).toBe(0);
    const profiles = JSON.parse(list.stdout) as Record<string, unknown>[];
    expect(profiles).toHaveLength(1);
    expect(profiles[0]).toMatchObject({
      identifier: 'org.example.cli.wifi',
      displayName: 'CLI Wi-Fi',
      removalDisallowed: false,
    });
    const human = await kitting(sim, ['profiles', 'list', udid]);
    expect(human.stdout).toContain('org.example.cli.wifi  CLI Wi-Fi');
    const remove = await kitting(sim, ['profiles', 'remove', 'org.example.cli.wifi', udid, '--json']);
    expect(remove.code, remove.stderr).toBe(0);
    expect(JSON.parse(remove.stdout)).toEqual({ udid, identifier: 'org.example.cli.wifi', removed: true });
    const again = await kitting(sim, ['profiles', 'remove', 'org.example.cli.wifi', udid, '--json']);
    expect(again.code).toBe(3);
    expect(errorOf(again).code).toBe('mcinstall/profile-not-found');
    const unreadable = await kitting(sim, ['profiles', 'install', path.join(dir, 'nope.mobileconfig'), udid]);
    expect(unreadable.code).toBe(2);
  });

  it('erase refuses without --yes (exit 2, nothing happens)', async () => {
    const udid = sim.devices[2] as string;
    const before = await stateOf(sim, udid);
    const r = await kitting(sim, ['erase', udid, '--lang', 'en']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--yes');
    const after = await stateOf(sim, udid);
    expect(after.deviceId).toBe(before.deviceId);
  });

  it('erase --yes waits for the device: same UDID, new DeviceID, wiped; one audit row', async () => {
    const udid = sim.devices[1] as string;
    await kitting(sim, ['profiles', 'install', profileFile, udid]);
    const before = await stateOf(sim, udid);
    expect(before.profiles).toHaveLength(1);
    const r = await kitting(sim, ['erase', udid, '--yes', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const [result] = JSON.parse(r.stdout) as Record<string, unknown>[];
    expect(result).toMatchObject({ udid, erased: true, returned: true, previousDeviceId: before.deviceId });
    expect(result?.deviceId).not.toBe(before.deviceId);
    const after = await stateOf(sim, udid);
    expect(after.deviceId).toBe(result?.deviceId);
    expect(after.profiles).toEqual([]);
    expect(after.pairings).toEqual([]);
    expect(after.activationState).toBe('Unactivated');
    const db = openStationDatabase(dataDir);
    try {
      const rows = listAudit(db, { subject: udid });
      expect(rows.map((a) => a.action)).toContain('device/erased');
      expect(rows[0]).toMatchObject({ actor: 'cli', action: 'device/erased' });
    } finally {
      db.close();
    }
  });

  it('erase --no-wait returns at once; an unknown UDID exits 3', async () => {
    const udid = sim.devices[2] as string;
    const r = await kitting(sim, ['erase', udid, '--yes', '--no-wait', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([
      expect.objectContaining({ udid, erased: true, returned: false, deviceId: null }),
    ]);
    const missing = await kitting(sim, ['erase', '00000000-0000000000000000', '--yes', '--json']);
    expect(missing.code).toBe(3);
    expect((JSON.parse(missing.stdout) as { error: { code: string } }[])[0]?.error.code).toBe('device/not-found');
  });
});

describe('supervised devices: pair --identity and silent installs', () => {
  let sim: SimProcess;
  let ours: string;
  let theirs: string;
  beforeAll(async () => {
    fs.mkdirSync(dataDir, { recursive: true });
    const db = openStationDatabase(dataDir);
    try {
      const service = new IdentityService({
        db,
        vault: () => PassphraseVault.open({ dataDir, passphrase: PASSPHRASE, createWith: MIN_SCRYPT }),
      });
      ours = (await service.create({ org: 'CLI School', id: 'cli-school' })).id;
      theirs = (await service.create({ org: 'Other School', id: 'other-school' })).id;
      await service.export(ours, { out: path.join(dir, 'ours.p12'), format: 'p12', password: 'p12-password' });
    } finally {
      db.close();
    }
    fs.writeFileSync(path.join(dir, 'p12-password.txt'), 'p12-password\n');
    sim = await spawnSim([
      '--devices',
      '2',
      '--preset',
      'supervised',
      '--timing',
      'none',
      '--identity-p12',
      path.join(dir, 'ours.p12'),
      '--identity-password-file',
      path.join(dir, 'p12-password.txt'),
    ]);
  });
  afterAll(async () => {
    await sim.stop();
  });

  it('pair --identity pairs without Trust; a wrong identity → lockdown/supervisor-rejected; unknown → exit 3', async () => {
    const udid = sim.devices[0] as string;
    expect((await sim.ctl(['trust', udid, 'prompt'])).code).toBe(0);
    const env = { KITTING_PASSPHRASE: PASSPHRASE };
    const wrong = await kitting(sim, ['pair', udid, '--identity', theirs, '--json'], env);
    expect(wrong.code).toBe(1);
    expect(errorOf(wrong).code).toBe('lockdown/supervisor-rejected');
    const unknown = await kitting(sim, ['pair', udid, '--identity', 'no-such-identity', '--json'], env);
    expect(unknown.code).toBe(3);
    expect(errorOf(unknown).code).toBe('identity/not-found');
    const r = await kitting(sim, ['pair', udid, '--identity', ours, '--json', '--passphrase-file', passphraseFile]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ udid, pairedNow: true });
    const state = await stateOf(sim, udid);
    expect(state.trustDialog).toBe('hidden');
    expect(state.pairings).toHaveLength(1);
  });

  it('cloudconfig shows the supervised configuration with Apple keys; profiles install --identity is silent', async () => {
    const udid = sim.devices[1] as string;
    const env = { KITTING_PASSPHRASE: PASSPHRASE };
    // Not paired yet: the device disallows normal pairing, so --identity pairs supervised on the way.
    const install = await kitting(sim, ['profiles', 'install', profileFile, udid, '--identity', ours, '--json'], env);
    expect(install.code, install.stderr).toBe(0);
    expect(JSON.parse(install.stdout)).toEqual({ udid, identifier: 'org.example.cli.wifi', silent: true });
    expect(((await stateOf(sim, udid)).profiles as { identifier: string }[]).map((p) => p.identifier)).toContain(
      'org.example.cli.wifi',
    );
    const cc = await kitting(sim, ['cloudconfig', udid, '--json']);
    expect(cc.code, cc.stderr).toBe(0);
    const dict = JSON.parse(cc.stdout) as Record<string, unknown>;
    expect(dict).toMatchObject({ IsSupervised: true, AllowPairing: false });
    expect(Array.isArray(dict.SupervisorHostCertificates)).toBe(true);
    expect(typeof (dict.SupervisorHostCertificates as unknown[])[0]).toBe('string');
  });
});
