/**
 * Setup Assistant of the virtual devices: the device enrolls itself at the cloud configuration's
 * ConfigurationURL (a tiny MDM in the test checks the User-Agent, the content type and the CMS
 * signature against the simulated device CA, asks for Basic credentials, then answers a profile),
 * with and without credentials, and installs a stored profile at the end.
 */
import { verify as cryptoVerify, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPlistDict, readSignedPlist, type PlistDict } from '../../src/plist/index.ts';
import { ControlClient, startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { cmsSign, makeSupervisionIdentity, profileBytes, spawnSim, TestHost } from '../helpers/sim-process.ts';

const dirs: string[] = [];
let sim: Simulator;
let mdm: http.Server;
let mdmUrl: string;
let deviceCaPem: string;
const seen: {
  userAgent: string;
  contentType: string;
  authorization: string | undefined;
  machineInfo: PlistDict;
  signerOk: boolean;
}[] = [];
const mdmSigner = makeSupervisionIdentity('MDM Signer');

/** True when `der` (the signer certificate from the CMS) was issued by the device CA. */
function issuedByDeviceCa(der: Buffer): boolean {
  const leaf = new X509Certificate(der);
  const ca = new X509Certificate(deviceCaPem);
  return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
}

beforeAll(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-setup-'));
  dirs.push(dir);
  sim = await startSimulator({ socketPath: path.join(dir, 'usbmuxd.sock'), devices: 0, seed: 'sim-setup' });
  deviceCaPem = await new ControlClient(sim.controlAddress).deviceCa();
  expect(deviceCaPem).toBe(sim.deviceCaPem);
  mdm = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let machineInfo: PlistDict = {};
      let signerOk: boolean;
      try {
        const signed = readSignedPlist(body);
        if (isPlistDict(signed.content)) machineInfo = signed.content;
        const signer = signed.signerCertificatesDer[0];
        signerOk = signer !== undefined && issuedByDeviceCa(signer) && verifySignerInfo(body, signer);
      } catch {
        signerOk = false;
      }
      const entry = {
        userAgent: String(req.headers['user-agent']),
        contentType: String(req.headers['content-type']),
        authorization: req.headers.authorization,
        machineInfo,
        signerOk,
      };
      seen.push(entry);
      const route = req.url ?? '/';
      if (route.startsWith('/open')) {
        res.writeHead(200, { 'Content-Type': 'application/x-apple-aspen-config' });
        res.end(cmsSign(profileBytes('com.example.mdm.open', 'MDM (open)'), mdmSigner.certPem, mdmSigner.keyPem));
        return;
      }
      if (route.startsWith('/html')) {
        res.writeHead(200, { 'Content-Type': 'text/html' });
        res.end('<html>not a profile</html>');
        return;
      }
      const expected = `Basic ${Buffer.from('group-7:s3cret').toString('base64')}`;
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="mobiconnect"' });
        res.end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/x-apple-aspen-config' });
      res.end(profileBytes('com.example.mdm.enroll', 'MDM enrollment'));
    });
  });
  await new Promise<void>((resolve) => mdm.listen(0, '127.0.0.1', () => resolve()));
  const a = mdm.address();
  mdmUrl = `http://127.0.0.1:${a !== null && typeof a === 'object' ? a.port : 0}`;
});

afterAll(async () => {
  await sim.stop();
  await new Promise<void>((resolve) => mdm.close(() => resolve()));
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** Walks the SignerInfo of a DER SignedData and verifies its signature (signed attributes, SHA-256). */
function verifySignerInfo(buf: Buffer, signerDer: Buffer): boolean {
  const read = (at: number): { tag: number; start: number; cStart: number; end: number } => {
    const tag = buf[at] as number;
    let len = buf[at + 1] as number;
    let p = at + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + (buf[p + i] as number);
      p += n;
    }
    return { tag, start: at, cStart: p, end: p + len };
  };
  const kids = (t: { cStart: number; end: number }): ReturnType<typeof read>[] => {
    const out: ReturnType<typeof read>[] = [];
    for (let p = t.cStart; p < t.end;) {
      const c = read(p);
      out.push(c);
      p = c.end;
    }
    return out;
  };
  const ci = read(0);
  const sd = kids(kids(kids(ci)[1] as ReturnType<typeof read>)[0] as ReturnType<typeof read>);
  const signerInfos = sd[sd.length - 1] as ReturnType<typeof read>;
  const si = kids(kids(signerInfos)[0] as ReturnType<typeof read>);
  const attrs = si[3] as ReturnType<typeof read>;
  const sig = si[5] as ReturnType<typeof read>;
  const signed = Buffer.concat([Buffer.from([0x31]), buf.subarray(attrs.start + 1, attrs.end)]);
  return cryptoVerify('sha256', signed, new X509Certificate(signerDer).publicKey, buf.subarray(sig.cStart, sig.end));
}

/** An activated device in Setup Assistant with a cloud configuration pointing at `route`. */
async function configured(route: string, extra: PlistDict = {}): Promise<{ udid: string; host: TestHost }> {
  const udid = sim.plug('activated');
  const host = await TestHost.create(sim.usbmuxdAddress, udid, sim.systemBuid);
  expect((await host.pair()).Error).toBeUndefined();
  const mc = await host.service('com.apple.mobile.MCInstall');
  const r = await mc.request({
    RequestType: 'SetCloudConfiguration',
    CloudConfiguration: {
      AllowPairing: true,
      IsSupervised: true,
      OrganizationName: 'Setup Org',
      SkipSetup: ['Location', 'WiFi', 'Siri'],
      ConfigurationURL: `${mdmUrl}${route}`,
      ...extra,
    },
  });
  expect(r.Status).toBe('Acknowledged');
  mc.close();
  return { udid, host };
}

describe('Setup Assistant enrollment', () => {
  it('posts signed MachineInfo, answers the 401 with the credentials, installs the profile', async () => {
    const { udid } = await configured('/enroll/group-7');
    // The ConfigurationURL keeps the Remote Management pane open: nothing is forced complete.
    expect(sim.state(udid).cloudConfiguration).not.toHaveProperty('CloudConfigurationUIComplete');
    const before = seen.length;
    const ctl = new ControlClient(sim.controlAddress);
    const result = await ctl.setup(udid, { username: 'group-7', password: 's3cret' });
    const posts = seen.slice(before);
    expect(posts).toHaveLength(2);
    for (const p of posts) {
      expect(p.userAgent).toBe('CloudConfiguration/1.0');
      expect(p.contentType).toBe('application/pkcs7-signature');
      expect(p.signerOk).toBe(true);
    }
    expect(posts[0]?.authorization).toBeUndefined();
    expect(posts[1]?.authorization).toBe(`Basic ${Buffer.from('group-7:s3cret').toString('base64')}`);
    const st = sim.state(udid);
    expect(posts[1]?.machineInfo).toMatchObject({
      UDID: udid,
      SERIAL: st.serial,
      PRODUCT: st.productType,
      OS_VERSION: st.productVersion,
      LANGUAGE: st.language,
    });
    expect(typeof posts[1]?.machineInfo.VERSION).toBe('string');
    expect(result).toMatchObject({
      setupComplete: true,
      installed: ['com.example.mdm.enroll'],
      skippedPanes: ['Location', 'WiFi', 'Siri'],
    });
    expect(st.setupComplete).toBe(true);
    expect(st.skippedPanes).toEqual(['Location', 'WiFi', 'Siri']);
    expect(st.profiles).toEqual([
      expect.objectContaining({ identifier: 'com.example.mdm.enroll', fromEnrollment: true, source: 'enrollment' }),
    ]);
    expect(st.enrollment).toMatchObject({
      url: `${mdmUrl}/enroll/group-7`,
      status: 'installed',
      httpStatus: 200,
      attempts: 2,
      authenticated: true,
    });
    expect(st.cloudConfiguration).toMatchObject({ CloudConfigurationUIComplete: true });
  });

  it('without credentials setup cannot complete: sim/setup-needs-credentials, through the control API too', async () => {
    const { udid } = await configured('/enroll/group-7');
    await expect(sim.setup(udid)).rejects.toMatchObject({ code: 'sim/setup-needs-credentials' });
    const st = sim.state(udid);
    expect(st.setupComplete).toBe(false);
    expect(st.profiles).toEqual([]);
    expect(st.enrollment).toMatchObject({ status: 'needs-credentials', httpStatus: 401, attempts: 1 });
    // Through the control API the same error code arrives.
    await expect(new ControlClient(sim.controlAddress).setup(udid)).rejects.toMatchObject({
      code: 'sim/setup-needs-credentials',
    });
    // Wrong credentials fail too; the right ones finish.
    await expect(sim.setup(udid, { username: 'group-7', password: 'nope' })).rejects.toMatchObject({
      code: 'sim/setup-failed',
    });
    expect((await sim.setup(udid, { username: 'group-7', password: 's3cret' })).installed).toEqual([
      'com.example.mdm.enroll',
    ]);
  });

  it('a signed profile without any prompt; a non-profile answer fails setup with a clear message', async () => {
    const open = await configured('/open');
    const r = await sim.setup(open.udid);
    expect(r.enrollment).toMatchObject({ status: 'installed', attempts: 1, authenticated: false });
    expect(sim.state(open.udid).profiles).toEqual([
      expect.objectContaining({ identifier: 'com.example.mdm.open', signed: true, fromEnrollment: true }),
    ]);

    const html = await configured('/html');
    await expect(sim.setup(html.udid)).rejects.toThrow(/text\/html, not application\/x-apple-aspen-config/);
    expect(sim.state(html.udid)).toMatchObject({
      setupComplete: false,
      enrollment: { status: 'failed', httpStatus: 200 },
    });
  });

  it('a stored profile is installed at setup completion (no ConfigurationURL)', async () => {
    const udid = sim.plug('activated');
    const host = await TestHost.create(sim.usbmuxdAddress, udid, sim.systemBuid);
    expect((await host.pair()).Error).toBeUndefined();
    const mc = await host.service('com.apple.mobile.MCInstall');
    await mc.request({
      RequestType: 'SetCloudConfiguration',
      CloudConfiguration: { AllowPairing: true, SkipSetup: ['Appearance'] },
    });
    await mc.request({
      RequestType: 'StoreProfile',
      ProfileData: profileBytes('com.example.staged', 'Staged'),
      Purpose: 'PostSetupInstallation',
    });
    mc.close();
    const r = await sim.setup(udid);
    expect(r).toMatchObject({ enrollment: null, installed: ['com.example.staged'], skippedPanes: ['Appearance'] });
    const st = sim.state(udid);
    expect(st.storedProfile).toBeNull();
    expect(st.profiles).toEqual([
      expect.objectContaining({ identifier: 'com.example.staged', source: 'stored', fromEnrollment: false }),
    ]);
    expect(st.cloudConfiguration).toMatchObject({ PostSetupProfileWasInstalled: true });
    await expect(sim.setup(udid)).rejects.toMatchObject({ code: 'sim/invalid-state' });
  });

  it('an unactivated device stops at the activation pane; a plain-http URL off loopback is refused', async () => {
    const fresh = sim.plug('fresh');
    await expect(sim.setup(fresh)).rejects.toMatchObject({ code: 'sim/invalid-state' });
    const { udid } = await configured('/x', { ConfigurationURL: 'http://mdm.example.com/enroll' });
    await expect(sim.setup(udid)).rejects.toThrow(/plain http only to 127\.0\.0\.1/);
  });
});

describe('kitting sim / sim-ctl', () => {
  it('--preset supervised with --identity-p12; setup, approve and activation-server verbs; GET /device-ca', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-setup-cli-'));
    dirs.push(dir);
    const id = makeSupervisionIdentity('CLI Org');
    fs.writeFileSync(path.join(dir, 'id.p12'), id.p12);
    fs.writeFileSync(path.join(dir, 'pass.txt'), `${id.password}\n`);
    const missing = await spawnSim(['--preset', 'supervised']).then(
      async (p) => {
        await p.stop();
        return 'started';
      },
      (err: unknown) => String(err),
    );
    expect(missing).toMatch(/identity-p12/);
    const p = await spawnSim([
      '--preset',
      'supervised',
      '--identity-p12',
      path.join(dir, 'id.p12'),
      '--identity-password-file',
      path.join(dir, 'pass.txt'),
      '--seed',
      'cli-supervised',
    ]);
    try {
      const udid = p.devices[0] as string;
      const state = JSON.parse((await p.ctl(['state', udid, '--json'])).stdout) as {
        supervised: boolean;
        cloudConfiguration: { OrganizationName: string; AllowPairing: boolean };
      };
      expect(state.supervised).toBe(true);
      expect(state.cloudConfiguration).toMatchObject({ OrganizationName: 'CLI Org', AllowPairing: false });
      const already = await p.ctl(['setup', udid, 'complete']);
      expect(already.code).toBe(1);
      expect(await p.ctl(['approve', udid, 'com.example.none'])).toMatchObject({ code: 1 });
      const fail = await p.ctl(['--json', 'activation-server', 'fail']);
      expect(JSON.parse(fail.stdout)).toMatchObject({ simulated: true, failureStatus: 500 });
      const ok = await p.ctl(['--json', 'activation-server', 'ok']);
      expect(JSON.parse(ok.stdout)).toMatchObject({ failureStatus: null });
      const fresh = (await p.ctl(['plug', '--preset', 'activated', '--product-type', 'iPhone12,8'])).stdout.trim();
      expect(JSON.parse((await p.ctl(['state', fresh, '--json'])).stdout)).toMatchObject({ productType: 'iPhone12,8' });
      const done = await p.ctl(['--json', 'setup', fresh, 'complete']);
      expect(done.code).toBe(0);
      expect(JSON.parse(done.stdout)).toMatchObject({ setupComplete: true, enrollment: null });
      const ca = await new ControlClient(p.control).deviceCa();
      expect(ca).toMatch(/^-----BEGIN CERTIFICATE-----/);
    } finally {
      await p.stop();
    }
  });
});
