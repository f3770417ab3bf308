/**
 * Activation of the virtual devices against the simulator's fake Apple activation server, as the
 * maintained clients do it, with raw sockets and fetch: the session-mode flow through
 * mobileactivationd, the legacy lockdown flow, Activation Lock, and an injected HTTP 500.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePlist, encodeXml, isPlistDict, type PlistDict } from '../../src/plist/index.ts';
import { ControlClient, startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { lockdownConnect, TestHost } from '../helpers/sim-process.ts';

const MA = 'com.apple.mobileactivationd';
const dirs: string[] = [];
let sim: Simulator;
let control: ControlClient;

beforeAll(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-activation-'));
  dirs.push(dir);
  sim = await startSimulator({ socketPath: path.join(dir, 'usbmuxd.sock'), devices: 0, seed: 'sim-activation' });
  control = new ControlClient(sim.controlAddress);
});

afterAll(async () => {
  await sim.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function pairedHost(preset: string): Promise<{ udid: string; host: TestHost }> {
  const udid = sim.plug(preset);
  const host = await TestHost.create(sim.usbmuxdAddress, udid, sim.systemBuid);
  expect((await host.pair()).Error).toBeUndefined();
  return { udid, host };
}

/** One mobileactivationd command on its own connection (binary plist, as libimobiledevice sends). */
async function command(host: TestHost, dict: PlistDict): Promise<PlistDict> {
  const s = await host.service(MA);
  const r = await s.request(dict, true);
  await s.waitClosed();
  return r;
}

async function post(
  url: string,
  body: string | Buffer | FormData | URLSearchParams,
  headers: Record<string, string> = {},
): Promise<{ status: number; type: string; body: Buffer; headers: Record<string, string> }> {
  const res = await fetch(url, {
    method: 'POST',
    body,
    headers: { 'User-Agent': 'iOS Device Activator (MobileActivation-592.103.2)', ...headers },
  });
  const h: Record<string, string> = {};
  res.headers.forEach((v, k) => {
    h[k] = v;
  });
  return {
    status: res.status,
    type: res.headers.get('content-type') ?? '',
    body: Buffer.from(await res.arrayBuffer()),
    headers: h,
  };
}

/** Steps 2–5 of the session flow; returns the deviceActivation answer. */
async function sessionActivation(
  host: TestHost,
  multipart: boolean,
): Promise<{ status: number; type: string; body: Buffer; headers: Record<string, string> }> {
  const endpoint = await control.activationEndpoint();
  const info = await command(host, { Command: 'CreateTunnel1SessionInfoRequest' });
  const blob = info.Value;
  if (!isPlistDict(blob) || !Buffer.isBuffer(blob.HandshakeRequestMessage))
    throw new Error(`no session blob: ${JSON.stringify(info)}`);
  const hs = await post(endpoint.drmHandshakeUrl, encodeXml(blob), {
    'Content-Type': 'application/x-apple-plist',
    Accept: 'application/xml',
  });
  expect(hs.status).toBe(200);
  expect(hs.type).toBe('application/xml');
  const hsPlist = decodePlist(hs.body);
  expect(isPlistDict(hsPlist) && Buffer.isBuffer(hsPlist.HandshakeResponseMessage)).toBe(true);
  const act = await command(host, { Command: 'CreateTunnel1ActivationInfoRequest', Value: hs.body });
  if (!isPlistDict(act.Value)) throw new Error(`no activation info: ${JSON.stringify(act)}`);
  const infoXml = encodeXml(act.Value);
  if (multipart) {
    const form = new FormData();
    form.set('activation-info', infoXml.toString('utf8'));
    return post(endpoint.url, form);
  }
  return post(endpoint.url, new URLSearchParams({ 'activation-info': infoXml.toString('utf8') }), {
    'Content-Type': 'application/x-www-form-urlencoded',
  });
}

describe('session-mode activation (mobileactivationd + drmHandshake + deviceActivation)', () => {
  it('activates an unactivated device; the host then acknowledges', async () => {
    const { udid, host } = await pairedHost('fresh');
    expect(await command(host, { Command: 'GetActivationStateRequest' })).toEqual({ Value: 'Unactivated' });
    const answer = await sessionActivation(host, true);
    expect(answer.status).toBe(200);
    expect(answer.type).toBe('text/xml');
    const doc = decodePlist(answer.body);
    if (!isPlistDict(doc) || !isPlistDict(doc.ActivationRecord)) throw new Error('no ActivationRecord');
    expect(Object.keys(doc.ActivationRecord).sort()).toEqual(
      [
        'AccountToken',
        'AccountTokenCertificate',
        'AccountTokenSignature',
        'DeviceCertificate',
        'FairPlayKeyData',
        'RegulatoryInfo',
        'UniqueDeviceCertificate',
        'unbrick',
      ].sort(),
    );
    const done = await command(host, {
      Command: 'HandleActivationInfoWithSessionRequest',
      Value: answer.body,
      ActivationResponseHeaders: answer.headers,
    });
    expect(done.Error).toBeUndefined();
    expect(sim.state(udid).activationState).toBe('Activated');
    expect(await command(host, { Command: 'GetActivationStateRequest' })).toEqual({ Value: 'Activated' });
    const s = await host.session();
    expect(await s.request({ Request: 'SetValue', Key: 'ActivationStateAcknowledged', Value: true })).toMatchObject({
      Request: 'SetValue',
    });
    expect((await s.request({ Request: 'GetValue', Key: 'ActivationStateAcknowledged' })).Value).toBe(true);
    s.close();
    expect(sim.appleActivationServer?.exchanges.filter((e) => e.udid === udid).map((e) => e.outcome)).toEqual([
      'handshake',
      'activated',
    ]);
  });

  it('accepts form-urlencoded (pymobiledevice3, go-ios) and DeactivateRequest undoes it', async () => {
    const { udid, host } = await pairedHost('fresh');
    const answer = await sessionActivation(host, false);
    expect(answer.type).toBe('text/xml');
    expect(
      (await command(host, { Command: 'HandleActivationInfoWithSessionRequest', Value: answer.body })).Error,
    ).toBeUndefined();
    expect(sim.state(udid).activationState).toBe('Activated');
    expect((await command(host, { Command: 'DeactivateRequest' })).Error).toBeUndefined();
    expect(sim.state(udid).activationState).toBe('Unactivated');
  });

  it('refuses a handshake answer made for another request, and a record for another device', async () => {
    const { udid, host } = await pairedHost('fresh');
    const other = await pairedHost('fresh');
    const endpoint = await control.activationEndpoint();
    await command(host, { Command: 'CreateTunnel1SessionInfoRequest' });
    const theirs = await command(other.host, { Command: 'CreateTunnel1SessionInfoRequest' });
    const hs = await post(endpoint.drmHandshakeUrl, encodeXml(theirs.Value as PlistDict), {
      'Content-Type': 'application/x-apple-plist',
    });
    const r = await command(host, { Command: 'CreateTunnel1ActivationInfoRequest', Value: hs.body });
    expect(String(r.Error)).toContain('Failed to establish session.');
    // A record the server made for the other device does not activate this one.
    const answer = await sessionActivation(other.host, true);
    expect(
      String((await command(host, { Command: 'HandleActivationInfoWithSessionRequest', Value: answer.body })).Error),
    ).toContain('Failed to handle activation response.');
    expect(sim.state(udid).activationState).toBe('Unactivated');
  });

  it('an activation-locked device gets the Activation Lock form and stays unactivated', async () => {
    const { udid, host } = await pairedHost('activation-locked');
    const answer = await sessionActivation(host, true);
    expect(answer.status).toBe(200);
    expect(answer.type).toBe('application/x-buddyml');
    const xml = answer.body.toString('utf8');
    expect(xml).toMatch(/<navigationBar title="Activation Lock"/);
    expect(xml).toMatch(/<editableTextRow id="login"/);
    expect(xml).toMatch(/<editableTextRow id="password"[^>]*secure="true"/);
    expect(xml).toMatch(/<serverInfo isAuthRequired="true"/);
    expect(
      (await command(host, { Command: 'HandleActivationInfoWithSessionRequest', Value: answer.body })).Error,
    ).toBeDefined();
    expect(sim.state(udid)).toMatchObject({ activationState: 'Unactivated', activationLocked: true });
    // Answering the form does not lift the lock.
    const creds = await post(
      (await control.activationEndpoint()).url,
      new URLSearchParams({ login: 'a@example.com', password: 'x', isAuthRequired: 'true' }),
      {
        'Content-Type': 'application/x-www-form-urlencoded',
      },
    );
    expect(creds.type).toBe('application/x-buddyml');
    expect(creds.body.toString('utf8')).toMatch(/<alert title=/);
  });

  it('answers HTTP 500 while the failure is injected through the control API', async () => {
    const { udid, host } = await pairedHost('fresh');
    const endpoint = await control.setActivationFailure(500);
    expect(endpoint).toMatchObject({ simulated: true, failureStatus: 500 });
    const info = await command(host, { Command: 'CreateTunnel1SessionInfoRequest' });
    const hs = await post(endpoint.drmHandshakeUrl, encodeXml(info.Value as PlistDict), {
      'Content-Type': 'application/x-apple-plist',
    });
    expect(hs.status).toBe(500);
    expect(hs.type).toBe('text/html');
    expect((await control.setActivationFailure(null)).failureStatus).toBeNull();
    expect((await sessionActivation(host, true)).status).toBe(200);
    expect(sim.state(udid).activationState).toBe('Unactivated');
  });
});

describe('legacy lockdown activation (GetValue ActivationInfo + Activate)', () => {
  it('activates with the record from the HTML answer', async () => {
    const { udid, host } = await pairedHost('fresh');
    const s = await host.session();
    const info = await s.request({ Request: 'GetValue', Key: 'ActivationInfo' });
    if (!isPlistDict(info.Value)) throw new Error('no ActivationInfo');
    expect(Buffer.isBuffer(info.Value.ActivationInfoXML)).toBe(true);
    // libideviceactivation sends the dict stripped of its <plist> wrapper, multipart.
    const stripped = encodeXml(info.Value)
      .toString('utf8')
      .replace(/^[\s\S]*?<plist[^>]*>\n?/, '')
      .replace(/\n?<\/plist>\s*$/, '');
    const form = new FormData();
    form.set('InStoreActivation', 'false');
    form.set('AppleSerialNumber', sim.state(udid).serial);
    form.set('activation-info', stripped);
    const answer = await post((await control.activationEndpoint()).url, form);
    expect(answer.type).toBe('text/html');
    const html = answer.body.toString('utf8');
    expect(html).toMatch(/<script id="protocol" type="text\/x-apple-plist"><plist/);
    const plist = /<plist[\s\S]*<\/plist>/.exec(html)?.[0];
    const doc = decodePlist(Buffer.from(plist ?? ''));
    if (!isPlistDict(doc) || !isPlistDict(doc['iphone-activation'])) throw new Error('no iphone-activation');
    const node = doc['iphone-activation'];
    expect(node['ack-received']).toBe(true);
    expect(await s.request({ Request: 'Activate', ActivationRecord: { bogus: true } })).toEqual({
      Request: 'Activate',
      Error: 'InvalidActivationRecord',
    });
    expect(await s.request({ Request: 'Activate' })).toEqual({ Request: 'Activate', Error: 'MissingActivationRecord' });
    expect(await s.request({ Request: 'Activate', ActivationRecord: node['activation-record'] as PlistDict })).toEqual({
      Request: 'Activate',
    });
    expect(sim.state(udid).activationState).toBe('Activated');
    expect((await s.request({ Request: 'GetValue', Key: 'ActivationState' })).Value).toBe('Activated');
    s.close();
  });

  it('ActivationInfo needs a session', async () => {
    const { host } = await pairedHost('fresh');
    const s = await host.session();
    s.close();
    const ld = await lockdownConnect(sim.usbmuxdAddress, host.udid);
    expect((await ld.request({ Request: 'GetValue', Key: 'ActivationInfo' })).Error).toBe('GetProhibited');
    ld.close();
  });
});
