/**
 * Secrets (issue #9): a whole small batch with every secret in play — the vault passphrase, a
 * supervision identity (its private key, its .p12 password), the MDM station token and admin token,
 * a group's enrollment password, the pair records (host private key, escrow bag) — run with
 * `KITTING_LOG=debug` in every process (fleet, MDM, station commands). None of those secrets may
 * appear in any process's output or in a log file. The files that hold secrets are mode 0600 (and
 * the data folder 0700). The headless server refuses the page, the API and the WebSocket without
 * its token (and accepts them with it, so the refusal is not a broken server).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { decodePlist, isPlistDict } from '../../src/plist/index.ts';
import { ControlClient } from '../../src/simulator/index.ts';
import { MdmProcess, freePort, killAll, spawnKitting, stopChild } from '../helpers/chaos-procs.ts';
import { configureSync as storeGroupPassword } from '../helpers/mdm-loop.ts';
import { PASSPHRASE, createPrepareEnv, type PrepareEnv } from '../helpers/prepare-env.ts';
import { spawnSim, type SimProcess } from '../helpers/sim-process.ts';

const DEBUG = { KITTING_LOG: 'debug' };
const MDM_TOKEN = 'secret-station-token-Zq8vT2mXw4LpN7'; // ≥ 24 characters, unique enough to grep
const ADMIN_TOKEN = 'secret-admin-token-Hk3rB9sYc6VuE1';
const GROUP_PASSWORD = 'grp-pass-Wd5nJ0aQ';
const EXPORT_PASSWORD = 'export-pass-Mx7cR2tG';

let env: PrepareEnv;
let sim: SimProcess;
let mdm: MdmProcess;
let pairDir: string;
/** Everything every process printed (stdout and stderr), by process. */
const outputs: Record<string, string> = {};

function keep(name: string, text: string): void {
  outputs[name] = (outputs[name] ?? '') + text;
}

beforeAll(async () => {
  env = await createPrepareEnv('Secrets School');
  pairDir = path.join(env.dir, 'sim-pair-records');
  const before = process.env.KITTING_LOG;
  process.env.KITTING_LOG = 'debug';
  try {
    sim = await spawnSim(['--devices', '2', '--preset', 'fresh', '--timing', 'none', '--pair-record-dir', pairDir]);
  } finally {
    if (before === undefined) delete process.env.KITTING_LOG;
    else process.env.KITTING_LOG = before;
  }
  mdm = new MdmProcess(await freePort(), path.join(env.dir, 'mdm.db'), MDM_TOKEN, ADMIN_TOKEN, DEBUG);
  await mdm.start();
}, 90_000);

afterAll(async () => {
  await killAll();
  await sim?.stop();
  env?.cleanup();
});

/** Runs `kitting --data-dir … --passphrase-file … args` with debug logs, keeping its output. */
async function kitting(name: string, args: string[]): Promise<{ code: number; stdout: string }> {
  const r = await env.kitting(sim.usbmuxd, args, DEBUG);
  keep(name, `${r.stdout}\n${r.stderr}`);
  return r;
}

function pemBodyLines(pem: string): string[] {
  return pem
    .split(/\r?\n/)
    .filter((l) => l !== '' && !l.startsWith('-----') && !l.includes(':'))
    .filter((l) => l.length >= 40);
}

function modeOf(file: string): number {
  return fs.statSync(file).mode & 0o777;
}

describe('secrets stay secret through a whole batch', () => {
  it('no password, passphrase, token, private key or escrow bag in any output; secret files 0600', async () => {
    const control = new ControlClient(sim.control);
    await mdm.admin('PUT', '/admin/device-ca', { pem: await control.deviceCa() });
    await mdm.admin('POST', '/admin/groups', {
      id: 'grade3',
      name: 'Grade 3',
      credentials: { userId: 'g3-user', password: GROUP_PASSWORD },
    });

    // Sync configured through the CLI (the token read from a file), the group password sealed by the vault.
    const tokenFile = path.join(env.dir, 'mdm-token');
    fs.writeFileSync(tokenFile, `${MDM_TOKEN}\n`, { mode: 0o600 });
    const cfg = await kitting('sync config', ['sync', 'config', '--url', mdm.url, '--token-file', tokenFile]);
    expect(cfg.code, outputs['sync config']).toBe(0);
    await storeGroupPassword(env, mdm.url, MDM_TOKEN, { 'grade3-pass': GROUP_PASSWORD });

    // The identity exported as p12 (password from a file) and PEM: both files are the station's.
    const exportPasswordFile = path.join(env.dir, 'export-password');
    fs.writeFileSync(exportPasswordFile, EXPORT_PASSWORD, { mode: 0o600 });
    const p12Out = path.join(env.dir, 'exported.p12');
    const pemOut = path.join(env.dir, 'exported.pem');
    const ex1 = await kitting('identity export p12', [
      'identity',
      'export',
      env.identityId,
      '--format',
      'p12',
      '--out',
      p12Out,
      '--password-file',
      exportPasswordFile,
    ]);
    expect(ex1.code, outputs['identity export p12']).toBe(0);
    const ex2 = await kitting('identity export pem', [
      'identity',
      'export',
      env.identityId,
      '--format',
      'pem',
      '--out',
      pemOut,
    ]);
    expect(ex2.code, outputs['identity export pem']).toBe(0);
    const pem = fs.readFileSync(pemOut, 'utf8');
    const keyPem = pem.slice(pem.indexOf('-----BEGIN PRIVATE KEY-----'));
    expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);

    // The batch: staged enrollment fetched from the MDM with the group's credentials.
    const bp = env.blueprint('secrets', {
      enrollment: {
        method: 'staged',
        source: { kind: 'mdm' },
        group: { groupId: 'grade3', userId: 'g3-user', passwordRef: 'secret:grade3-pass', hideAuthScreen: false },
      },
    });
    const activationUrl = (await control.activationEndpoint()).url;
    const prep = await kitting('prepare', [
      '--json',
      'prepare',
      '--all',
      '--blueprint',
      bp,
      '--yes',
      '--activation-url',
      activationUrl,
    ]);
    expect(prep.code, outputs.prepare).toBe(0);
    const sync = await kitting('sync run', ['--json', 'sync', 'run', '--once']);
    expect(sync.code, outputs['sync run']).toBe(0);
    const held = (await mdm.admin('GET', '/admin/state')) as { results: unknown[] };
    expect(held.results.length).toBeGreaterThanOrEqual(2);

    await stopChild(mdm.child!, 'SIGTERM');
    keep('mdm-dev', mdm.stderr);
    keep('sim', sim.stderr());
    for (const dir of [env.dataDir, pairDir]) {
      for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
        if (/\.log$/i.test(f)) keep(`log file ${f}`, fs.readFileSync(path.join(dir, f), 'utf8'));
      }
    }
    // Debug logging was on (else this test would prove nothing).
    expect(outputs.sim).toMatch(/debug/i);
    expect(outputs.prepare).toMatch(/debug/i);

    // The secrets to look for.
    const records = fs.readdirSync(pairDir).filter((f) => f.endsWith('.plist') && f !== 'SystemConfiguration.plist');
    expect(records.length).toBeGreaterThan(0);
    const needles: Record<string, string> = {
      'vault passphrase': PASSPHRASE,
      '.p12 password': env.p12Password,
      'export password': EXPORT_PASSWORD,
      'MDM token': MDM_TOKEN,
      'MDM admin token': ADMIN_TOKEN,
      'group password': GROUP_PASSWORD,
    };
    pemBodyLines(keyPem).forEach((line, i) => (needles[`identity private key line ${i}`] = line));
    for (const file of records) {
      const rec = decodePlist(fs.readFileSync(path.join(pairDir, file)));
      if (!isPlistDict(rec)) continue;
      for (const k of ['HostPrivateKey', 'RootPrivateKey']) {
        const v = rec[k];
        if (Buffer.isBuffer(v))
          pemBodyLines(v.toString('utf8')).forEach((line, i) => (needles[`${file} ${k} line ${i}`] = line));
      }
      const bag = rec.EscrowBag;
      if (Buffer.isBuffer(bag)) {
        needles[`${file} EscrowBag (base64)`] = bag.toString('base64');
        needles[`${file} EscrowBag (hex)`] = bag.toString('hex');
      }
    }
    expect(Object.keys(needles).some((k) => k.includes('EscrowBag'))).toBe(true);
    const leaks: string[] = [];
    for (const [where, text] of Object.entries(outputs)) {
      for (const [what, needle] of Object.entries(needles)) {
        if (needle.length > 0 && text.includes(needle)) leaks.push(`${what} in ${where}`);
      }
    }
    expect(leaks).toEqual([]);

    // Files that hold secrets: 0600 (the data folder 0700).
    expect(modeOf(env.dataDir)).toBe(0o700);
    const secretFiles = [
      path.join(env.dataDir, 'vault.json'),
      path.join(env.dataDir, 'station.db'),
      ...['station.db-wal', 'station.db-shm'].map((f) => path.join(env.dataDir, f)).filter((f) => fs.existsSync(f)),
      p12Out,
      pemOut,
      ...records.map((f) => path.join(pairDir, f)),
    ];
    const wrong = secretFiles.filter((f) => modeOf(f) !== 0o600).map((f) => `${f}: ${modeOf(f).toString(8)}`);
    expect(wrong).toEqual([]);
  }, 180_000);
});

describe('the headless server wants its token', () => {
  it('page, API and WebSocket answer 401 without the token, and work with it', async () => {
    const dataDir = path.join(env.dir, 'serve-data');
    const child = spawnKitting(['--data-dir', dataDir, 'serve', '--port', '0', '--simulate', '1'], {
      KITTING_LOG: 'error',
    });
    const ready = await new Promise<{ url: string }>((resolve, reject) => {
      let buf = '';
      child.stdout?.on('data', (d: Buffer) => {
        buf += d.toString();
        const nl = buf.indexOf('\n');
        if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl)) as { url: string });
      });
      child.once('exit', (code) => reject(new Error(`kitting serve exited with ${String(code)}`)));
    });
    try {
      const withToken = new URL(ready.url);
      const token = withToken.searchParams.get('token') ?? '';
      expect(token.length).toBeGreaterThan(20);
      const origin = withToken.origin;

      for (const p of ['/', '/index.html', '/api/health', '/api/devices']) {
        expect((await fetch(`${origin}${p}`)).status, p).toBe(401);
        expect((await fetch(`${origin}${p}?token=wrong-${token}`)).status, p).toBe(401);
        expect((await fetch(`${origin}${p}`, { headers: { Authorization: 'Bearer nope' } })).status, p).toBe(401);
      }
      expect((await fetch(`${origin}/api/health`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);

      const wsStatus = (url: string): Promise<number> =>
        new Promise((resolve, reject) => {
          const ws = new WebSocket(url);
          ws.once('unexpected-response', (_req, res) => {
            resolve(res.statusCode ?? 0);
            ws.terminate();
          });
          ws.once('open', () => {
            resolve(101);
            ws.close();
          });
          ws.once('error', (err) => {
            if (!/Unexpected server response/.test(err.message)) reject(err);
          });
        });
      const wsOrigin = origin.replace(/^http/, 'ws');
      expect(await wsStatus(`${wsOrigin}/api/ws`)).toBe(401);
      expect(await wsStatus(`${wsOrigin}/api/ws?token=wrong`)).toBe(401);
      expect(await wsStatus(`${wsOrigin}/api/ws?token=${encodeURIComponent(token)}`)).toBe(101);
    } finally {
      await stopChild(child, 'SIGTERM');
    }
  }, 90_000);
});
