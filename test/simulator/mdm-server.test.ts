/**
 * The reference MDM server over real HTTP on 127.0.0.1 with a real SQLite file: every contract route
 * and its errors (each answer also checked against the OpenAPI document), idempotent results, the
 * mobiconnect lifecycle rules, device enrollment with CMS-signed MachineInfo made here with a
 * throwaway device CA, check-in, the admin API and its fault injection.
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { encodeXml, isPlistDict, readSignedPlist, type PlistDict } from '../../src/plist/index.ts';
import { chainsTo, verifyCms } from '../../src/simulator/cms.ts';
import { startMdmServer, type MdmServer } from '../../src/simulator/mdm-server/index.ts';
import { contractCall, type ContractAnswer } from '../helpers/mdm-contract.ts';
import { KITTING, NODE } from '../helpers/sim-process.ts';

interface Pki {
  certPem: string;
  keyPem: string;
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
}

function makeCert(cn: string, issuer?: Pki, ca = false): Pki {
  const k = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = forge.pki.privateKeyFromPem(
    k.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
  ) as forge.pki.rsa.PrivateKey;
  const c = forge.pki.createCertificate();
  c.publicKey = forge.pki.publicKeyFromPem(k.publicKey.export({ type: 'spki', format: 'pem' }).toString());
  c.serialNumber = '0' + randomUUID().replace(/-/g, '').slice(0, 15);
  c.validity.notBefore = new Date(Date.now() - 60_000);
  c.validity.notAfter = new Date(Date.now() + 365 * 86_400_000);
  c.setSubject([{ name: 'commonName', value: cn }]);
  c.setIssuer(issuer === undefined ? [{ name: 'commonName', value: cn }] : issuer.cert.subject.attributes);
  c.setExtensions([{ name: 'basicConstraints', cA: ca, critical: true }]);
  c.sign(issuer?.key ?? key, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(c), keyPem: forge.pki.privateKeyToPem(key), cert: c, key };
}

function sign(content: Buffer, signer: Pki, detached = false): Buffer {
  const p7 = forge.pkcs7.createSignedData();
  p7.content = forge.util.createBuffer(content.toString('binary'));
  p7.addCertificate(signer.cert);
  p7.addSigner({
    key: signer.key,
    certificate: signer.cert,
    digestAlgorithm: forge.pki.oids.sha256 as string,
    authenticatedAttributes: [
      { type: forge.pki.oids.contentType as string, value: forge.pki.oids.data as string },
      { type: forge.pki.oids.messageDigest as string },
    ],
  });
  p7.sign({ detached });
  return Buffer.from(forge.asn1.toDer(p7.toAsn1()).getBytes(), 'binary');
}

const deviceCa = makeCert('Throwaway Device CA', undefined, true);
const otherCa = makeCert('Other CA', undefined, true);
let serialCounter = 0;

/** A fake device: a leaf certificate from `ca`, a serial and a UDID. */
function fakeDevice(ca: Pki = deviceCa): { serial: string; udid: string; pki: Pki } {
  serialCounter++;
  const serial = `DMPTEST${String(serialCounter).padStart(5, '0')}`;
  const udid = `00008030-${randomUUID().replace(/-/g, '').slice(0, 16).toUpperCase()}`;
  return { serial, udid, pki: makeCert(udid, ca) };
}

function machineInfo(d: { serial: string; udid: string; pki: Pki }): Buffer {
  return sign(
    encodeXml({
      UDID: d.udid,
      SERIAL: d.serial,
      PRODUCT: 'iPad13,18',
      VERSION: '22A3354',
      OS_VERSION: '18.0',
      LANGUAGE: 'ja',
    }),
    d.pki,
  );
}

let dir: string;
let mdm: MdmServer;

async function call(
  method: string,
  template: string,
  options: Parameters<typeof contractCall>[3] = {},
): Promise<ContractAnswer> {
  const a = await contractCall(mdm.url, method, template, options);
  expect(a.problems).toEqual([]);
  return a;
}

const station = (
  method: string,
  template: string,
  options: Omit<Parameters<typeof contractCall>[3] & object, 'token'> = {},
): Promise<ContractAnswer> => call(method, template, { ...options, token: mdm.token });

async function enroll(
  d: { serial: string; udid: string; pki: Pki },
  url: string = mdm.enrollmentUrl,
  creds?: { userId: string; password: string },
): Promise<ContractAnswer> {
  const headers: Record<string, string> = {
    'User-Agent': 'CloudConfiguration/1.0',
    'Content-Type': 'application/pkcs7-signature',
  };
  if (creds !== undefined)
    headers.Authorization = `Basic ${Buffer.from(`${creds.userId}:${creds.password}`).toString('base64')}`;
  if (url === mdm.enrollmentUrl) return call('POST', '/mdm/enroll', { headers, body: machineInfo(d) });
  const m = /\/mdm\/enroll\/groups\/([^/]+)\/([^/]+)$/.exec(url);
  if (m === null) throw new Error(`not an enrollment URL: ${url}`);
  return call('POST', '/mdm/enroll/groups/{id}/{key}', {
    params: { id: decodeURIComponent(m[1] as string), key: decodeURIComponent(m[2] as string) },
    headers,
    body: machineInfo(d),
  });
}

const G1 = { userId: 'grade1-user', password: 'grade1-pass' };

/** Unpacks a profile answer: verified signature, the plist, its MDM and identity payloads. */
function profileOf(a: ContractAnswer): { profile: PlistDict; mdmPayload: PlistDict; identity: PlistDict } {
  expect(a.status).toBe(200);
  expect(a.headers.get('content-type')).toBe('application/x-apple-aspen-config');
  const v = verifyCms(a.body);
  if (!v.ok) throw new Error(v.reason);
  expect(chainsTo(v.value.signerCertificate, mdm.serverCertificatePem)).toBe(true);
  const content = readSignedPlist(a.body).content;
  if (!isPlistDict(content)) throw new Error('not a dict');
  const payloads = (content.PayloadContent as PlistDict[]) ?? [];
  const mdmPayload = payloads.find((p) => p.PayloadType === 'com.apple.mdm');
  const identity = payloads.find((p) => p.PayloadType === 'com.apple.security.pkcs12');
  if (mdmPayload === undefined || identity === undefined) throw new Error('missing payloads');
  return { profile: content, mdmPayload, identity };
}

/** The identity (cert + key) inside the profile's PKCS#12 payload. */
function identityOf(identity: PlistDict): Pki {
  const p12 = forge.pkcs12.pkcs12FromAsn1(
    forge.asn1.fromDer(forge.util.createBuffer((identity.PayloadContent as Buffer).toString('binary'))),
    identity.Password as string,
  );
  const cert = p12.getBags({ bagType: forge.pki.oids.certBag as string })[forge.pki.oids.certBag as string]?.[0]?.cert;
  const key = p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag as string })[
    forge.pki.oids.pkcs8ShroudedKeyBag as string
  ]?.[0]?.key;
  if (cert === undefined || key === undefined) throw new Error('no identity');
  return {
    cert,
    key: key as forge.pki.rsa.PrivateKey,
    certPem: forge.pki.certificateToPem(cert),
    keyPem: forge.pki.privateKeyToPem(key),
  };
}

async function checkIn(message: PlistDict, identity: Pki | undefined): Promise<ContractAnswer> {
  const body = encodeXml(message);
  const headers: Record<string, string> = { 'Content-Type': 'application/x-apple-aspen-mdm-checkin' };
  if (identity !== undefined) headers['Mdm-Signature'] = sign(body, identity, true).toString('base64');
  return call('PUT', '/mdm/checkin', { headers, body });
}

/** Enrolls `d` in grade1 and checks it in fully; returns the identity and topic. */
async function enrolledDevice(): Promise<{ d: ReturnType<typeof fakeDevice>; identity: Pki; topic: string }> {
  const d = fakeDevice();
  const { mdmPayload, identity } = profileOf(await enroll(d, mdm.enrollmentUrl, G1));
  const id = identityOf(identity);
  const topic = mdmPayload.Topic as string;
  expect(
    (await checkIn({ MessageType: 'Authenticate', UDID: d.udid, SerialNumber: d.serial, Topic: topic }, id)).status,
  ).toBe(200);
  expect(
    (
      await checkIn(
        { MessageType: 'TokenUpdate', UDID: d.udid, Topic: topic, Token: Buffer.alloc(32, 7), PushMagic: 'magic' },
        id,
      )
    ).status,
  ).toBe(200);
  return { d, identity: id, topic };
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdm-server-'));
  mdm = await startMdmServer({ dbFile: path.join(dir, 'mdm.db'), deviceCaPem: deviceCa.certPem, licenseTotal: 1000 });
  mdm.admin.putGroup({
    id: 'grade1',
    name: 'Grade 1',
    path: '/School/Grade 1',
    credentials: G1,
    servicePlan: 'Education',
  });
  mdm.admin.putGroup({
    id: 'expired',
    name: 'Expired',
    credentials: { userId: 'expired-user', password: 'expired-pass', expiresAt: '2020-01-01T00:00:00Z' },
  });
  mdm.admin.putGroup({ id: 'closed', name: 'Closed', credentials: null });
});

afterAll(async () => {
  await mdm.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  mdm.admin.clearFaults();
});

describe('station API', () => {
  it('needs the bearer token', async () => {
    const a = await call('GET', '/v1/groups');
    expect(a.status).toBe(401);
    expect(a.json).toMatchObject({ error: { code: 'mdm/unauthorized' } });
    expect((await call('GET', '/v1/groups', { token: 'x'.repeat(32) })).status).toBe(401);
  });

  it('GET /v1/groups lists groups with credential state and expiry', async () => {
    const a = await station('GET', '/v1/groups');
    expect(a.status).toBe(200);
    const groups = (a.json as { groups: Record<string, unknown>[] }).groups;
    expect(groups.find((g) => g.id === 'grade1')).toMatchObject({
      name: 'Grade 1',
      path: '/School/Grade 1',
      hasEnrollmentCredentials: true,
      credentialsExpired: false,
      servicePlan: 'Education',
    });
    const exp = Date.parse(String(groups.find((g) => g.id === 'grade1')?.credentialsExpireAt));
    // Default validity: about three months.
    expect(exp - Date.now()).toBeGreaterThan(85 * 86_400_000);
    expect(exp - Date.now()).toBeLessThan(95 * 86_400_000);
    expect(groups.find((g) => g.id === 'expired')).toMatchObject({ credentialsExpired: true });
    expect(groups.find((g) => g.id === 'closed')).toMatchObject({
      hasEnrollmentCredentials: false,
      credentialsExpireAt: null,
    });
  });

  it('enrollment profile: right credentials → signed .mobileconfig pointing at the server; wrong → 401; expired → 403; closed → 403; unknown → 404; bad body → 400', async () => {
    const { profile, mdmPayload, identity } = profileOf(
      await station('POST', '/v1/groups/{id}/enrollment-profile', { params: { id: 'grade1' }, json: G1 }),
    );
    expect(profile).toMatchObject({ PayloadType: 'Configuration', PayloadVersion: 1 });
    expect(mdmPayload).toMatchObject({
      ServerURL: `${mdm.url}/mdm/server`,
      CheckInURL: `${mdm.url}/mdm/checkin`,
      AccessRights: 8191,
      SignMessage: true,
      IdentityCertificateUUID: identity.PayloadUUID,
    });
    expect(String(mdmPayload.Topic)).toMatch(/^com\.apple\.mgmt\.External\./);
    const uuids = [profile.PayloadUUID, mdmPayload.PayloadUUID, identity.PayloadUUID];
    expect(new Set(uuids).size).toBe(3);
    const again = profileOf(
      await station('POST', '/v1/groups/{id}/enrollment-profile', { params: { id: 'grade1' }, json: G1 }),
    );
    expect(again.profile.PayloadUUID).not.toBe(profile.PayloadUUID);
    expect(
      chainsTo(
        Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(identityOf(identity).cert)).getBytes(), 'binary'),
        mdm.serverCertificatePem,
      ),
    ).toBe(true);

    const wrong = await station('POST', '/v1/groups/{id}/enrollment-profile', {
      params: { id: 'grade1' },
      json: { userId: G1.userId, password: 'nope' },
    });
    expect([wrong.status, (wrong.json as { error: { code: string } }).error.code]).toEqual([
      401,
      'mdm/wrong-credentials',
    ]);
    const expired = await station('POST', '/v1/groups/{id}/enrollment-profile', {
      params: { id: 'expired' },
      json: { userId: 'expired-user', password: 'expired-pass' },
    });
    expect([expired.status, (expired.json as { error: { code: string } }).error.code]).toEqual([
      403,
      'mdm/credentials-expired',
    ]);
    const closed = await station('POST', '/v1/groups/{id}/enrollment-profile', { params: { id: 'closed' }, json: G1 });
    expect([closed.status, (closed.json as { error: { code: string } }).error.code]).toEqual([403, 'mdm/group-closed']);
    expect(
      (await station('POST', '/v1/groups/{id}/enrollment-profile', { params: { id: 'nope' }, json: G1 })).status,
    ).toBe(404);
    const bad = await station('POST', '/v1/groups/{id}/enrollment-profile', {
      params: { id: 'grade1' },
      json: { userId: 'x' },
    });
    expect([bad.status, (bad.json as { error: { code: string } }).error.code]).toEqual([400, 'mdm/invalid-request']);
  });

  it('GET /v1/devices/{serial}: 404 when absent, 400 for a malformed serial', async () => {
    expect((await station('GET', '/v1/devices/{serial}', { params: { serial: 'ABSENT0001' } })).status).toBe(404);
    expect((await station('GET', '/v1/devices/{serial}', { params: { serial: 'bad serial!' } })).status).toBe(400);
  });
});

describe('kitting results are idempotent', () => {
  const result = (key: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    idempotencyKey: key,
    serial: 'RESULTS0001',
    outcome: 'done',
    finishedAt: '2026-04-01T09:00:00.000Z',
    blueprint: 'Grade 1 iPads',
    steps: [{ name: 'identify', status: 'done', ms: 12 }],
    ...extra,
  });

  it('a replayed batch is all duplicates; partial overlap; a bad record is rejected while the rest are accepted', async () => {
    const keys = [randomUUID(), randomUUID(), randomUUID()];
    const first = await station('POST', '/v1/kitting-results', { json: { results: keys.map((k) => result(k)) } });
    expect(first.json).toEqual({ accepted: keys, duplicates: [], rejected: [] });
    const countBefore = mdm.admin.state().results.length;
    const replay = await station('POST', '/v1/kitting-results', { json: { results: keys.map((k) => result(k)) } });
    expect(replay.json).toEqual({ accepted: [], duplicates: keys, rejected: [] });
    expect(mdm.admin.state().results.length).toBe(countBefore);

    const fresh = randomUUID();
    const mixed = await station('POST', '/v1/kitting-results', {
      json: {
        results: [
          result(keys[0] as string),
          result(fresh),
          result('bad-' + randomUUID(), { outcome: 'exploded' }),
          { serial: 'NOKEY' },
          result(keys[1] as string, { outcome: 'failed' }),
        ],
      },
    });
    expect(mixed.status).toBe(200);
    const answer = mixed.json as {
      accepted: string[];
      duplicates: string[];
      rejected: { key: string | null; index: number; reason: string }[];
    };
    expect(answer.accepted).toEqual([fresh]);
    expect(answer.duplicates).toEqual([keys[0]]);
    expect(answer.rejected.map((r) => [r.index, r.key === null])).toEqual([
      [2, false],
      [3, true],
      [4, false],
    ]);
    expect(answer.rejected[0]?.reason).toContain('outcome');
    expect(answer.rejected[2]?.reason).toContain('different result');
    expect(mdm.admin.state().results.length).toBe(countBefore + 1);
  });

  it('key order does not make a replay look different', async () => {
    const k = randomUUID();
    await station('POST', '/v1/kitting-results', { json: { results: [result(k)] } });
    const reordered = Object.fromEntries(Object.entries(result(k)).reverse());
    expect((await station('POST', '/v1/kitting-results', { json: { results: [reordered] } })).json).toMatchObject({
      duplicates: [k],
    });
  });

  it('counts every duplicate receipt of a stored result, and only those', async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    const receipts = (k: string): number | undefined =>
      mdm.admin.state().results.find((r) => r.idempotencyKey === k)?.duplicateReceipts;
    await station('POST', '/v1/kitting-results', { json: { results: [result(a), result(b)] } });
    expect([receipts(a), receipts(b)]).toEqual([0, 0]);
    await station('POST', '/v1/kitting-results', { json: { results: [result(a)] } });
    await station('POST', '/v1/kitting-results', { json: { results: [result(a), result(b, { outcome: 'failed' })] } });
    // a: two replays; b: its different content was rejected, not a duplicate.
    expect([receipts(a), receipts(b)]).toEqual([2, 0]);
  });

  it('a malformed envelope is a 400 for the whole batch', async () => {
    expect((await station('POST', '/v1/kitting-results', { json: { results: [] } })).status).toBe(400);
    expect(
      (
        await station('POST', '/v1/kitting-results', {
          body: Buffer.from('{not json'),
          headers: { 'Content-Type': 'application/json' },
        })
      ).status,
    ).toBe(400);
  });
});

describe('device enrollment', () => {
  it('MDMServiceConfig, anchor certificates and trust profile', async () => {
    const a = await call('GET', '/MDMServiceConfig');
    expect(a.json).toEqual({
      dep_enrollment_url: `${mdm.url}/mdm/enroll`,
      dep_anchor_certs_url: `${mdm.url}/mdm/anchor-certs`,
      trust_profile_url: `${mdm.url}/mdm/trust-profile`,
    });
    const anchors = (await call('GET', '/mdm/anchor-certs')).json as string[];
    expect(chainsTo(Buffer.from(anchors[0] as string, 'base64'), mdm.serverCertificatePem)).toBe(true);
    const trust = await call('GET', '/mdm/trust-profile');
    expect(trust.headers.get('content-type')).toBe('application/x-apple-aspen-config');
  });

  it('unknown group → 401 with WWW-Authenticate: Basic; right credentials → signed profile; the device is registered', async () => {
    const d = fakeDevice();
    const first = await enroll(d);
    expect(first.status).toBe(401);
    expect(first.headers.get('www-authenticate')).toMatch(/^Basic /);
    expect((await station('GET', '/v1/devices/{serial}', { params: { serial: d.serial } })).status).toBe(404);
    const unknownUser = await enroll(d, mdm.enrollmentUrl, { userId: 'nobody', password: 'x' });
    expect(unknownUser.status).toBe(401);
    expect(unknownUser.headers.get('www-authenticate')).toMatch(/^Basic /);
    const { mdmPayload } = profileOf(await enroll(d, mdm.enrollmentUrl, G1));
    expect(mdmPayload.CheckInURL).toBe(`${mdm.url}/mdm/checkin`);
    const dev = await station('GET', '/v1/devices/{serial}', { params: { serial: d.serial } });
    expect(dev.json).toMatchObject({
      serial: d.serial,
      udid: d.udid,
      state: 'active',
      groupId: 'grade1',
      licenseConsumed: true,
      servicePlan: 'Education',
      reachable: false,
      enrollment: { status: 'profile-issued' },
      enrolledAt: null,
    });
  });

  it('expired credentials → 403; a group without credentials takes no registrations', async () => {
    const a = await enroll(fakeDevice(), mdm.enrollmentUrl, { userId: 'expired-user', password: 'expired-pass' });
    expect([a.status, (a.json as { error: { code: string } }).error.code]).toEqual([403, 'mdm/credentials-expired']);
    const d = fakeDevice();
    mdm.admin.assign(d.serial, 'closed');
    const c = await enroll(d);
    expect([c.status, (c.json as { error: { code: string } }).error.code]).toEqual([403, 'mdm/group-closed']);
  });

  it('a pre-assigned serial needs no prompt on the general URL', async () => {
    const d = fakeDevice();
    mdm.admin.assign(d.serial, 'grade1');
    profileOf(await enroll(d));
  });

  it('group-specific URL: no prompt; after the credentials change it prompts again', async () => {
    mdm.admin.putGroup({ id: 'rotating', name: 'Rotating', credentials: { userId: 'rot-1', password: 'rot-pass-1' } });
    const viaStation = await station('POST', '/v1/groups/{id}/enrollment-url', {
      params: { id: 'rotating' },
      json: { userId: 'rot-1', password: 'rot-pass-1' },
    });
    const url = (viaStation.json as { url: string }).url;
    expect(url).toBe(mdm.admin.groupEnrollmentUrl('rotating'));
    expect(
      (
        await station('POST', '/v1/groups/{id}/enrollment-url', {
          params: { id: 'rotating' },
          json: { userId: 'rot-1', password: 'x' },
        })
      ).status,
    ).toBe(401);
    const a = await enroll(fakeDevice(), url);
    profileOf(a);
    mdm.admin.putGroup({ id: 'rotating', name: 'Rotating', credentials: { userId: 'rot-1', password: 'rot-pass-2' } });
    const b = await enroll(fakeDevice(), url);
    expect(b.status).toBe(401);
    expect(b.headers.get('www-authenticate')).toMatch(/^Basic /);
  });

  it('bad signatures: not CMS → 400, a certificate from another CA → 403, tampered content → 403, wrong content type → 400', async () => {
    const headers = { 'Content-Type': 'application/pkcs7-signature' };
    const garbage = await call('POST', '/mdm/enroll', { headers, body: Buffer.from('not cms at all') });
    expect([garbage.status, (garbage.json as { error: { code: string } }).error.code]).toEqual([
      400,
      'mdm/bad-signature',
    ]);
    const foreign = await enroll(fakeDevice(otherCa), mdm.enrollmentUrl, G1);
    expect([foreign.status, (foreign.json as { error: { code: string } }).error.code]).toEqual([
      403,
      'mdm/untrusted-device',
    ]);
    const d = fakeDevice();
    const signed = machineInfo(d);
    const at = signed.indexOf(Buffer.from(d.serial));
    const tampered = Buffer.from(signed);
    tampered[at] = 'X'.charCodeAt(0);
    const t = await call('POST', '/mdm/enroll', { headers, body: tampered });
    expect(t.status).toBe(403);
    const wrongType = await call('POST', '/mdm/enroll', { headers: { 'Content-Type': 'text/plain' }, body: signed });
    expect(wrongType.status).toBe(400);
  });

  it('the same device cannot be registered twice while active (409 with guidance); a license is needed', async () => {
    const d = fakeDevice();
    profileOf(await enroll(d, mdm.enrollmentUrl, G1));
    const again = await enroll(d, mdm.enrollmentUrl, G1);
    expect(again.status).toBe(409);
    expect(again.json).toMatchObject({ error: { code: 'mdm/already-registered' } });
    expect((again.json as { error: { message: string } }).error.message).toContain('inactivate');
    const { consumed } = mdm.admin.state().licenses;
    mdm.admin.setLicenseTotal(consumed);
    try {
      const none = await enroll(fakeDevice(), mdm.enrollmentUrl, G1);
      expect([none.status, (none.json as { error: { code: string } }).error.code]).toEqual([409, 'mdm/no-license']);
    } finally {
      mdm.admin.setLicenseTotal(1000);
    }
  });
});

describe('check-in', () => {
  it('Authenticate → authenticated, TokenUpdate → enrolled, CheckOut → unenrolled, visible to the station', async () => {
    const { d, identity, topic } = await enrolledDevice();
    const dev = (await station('GET', '/v1/devices/{serial}', { params: { serial: d.serial } })).json as Record<
      string,
      unknown
    >;
    expect(dev).toMatchObject({ enrollment: { status: 'enrolled' }, reachable: true });
    expect(typeof dev.enrolledAt).toBe('string');
    expect(typeof dev.lastCheckIn).toBe('string');
    expect((await checkIn({ MessageType: 'CheckOut', UDID: d.udid, Topic: topic }, identity)).status).toBe(200);
    expect((await station('GET', '/v1/devices/{serial}', { params: { serial: d.serial } })).json).toMatchObject({
      enrollment: { status: 'unenrolled' },
      reachable: false,
    });
  });

  it('refuses check-ins without or with a foreign signature, with a foreign topic, and TokenUpdate before Authenticate', async () => {
    const d = fakeDevice();
    const { mdmPayload, identity } = profileOf(await enroll(d, mdm.enrollmentUrl, G1));
    const id = identityOf(identity);
    const topic = mdmPayload.Topic as string;
    const auth = { MessageType: 'Authenticate', UDID: d.udid, SerialNumber: d.serial, Topic: topic };
    expect((await checkIn(auth, undefined)).status).toBe(401);
    expect((await checkIn(auth, d.pki)).status).toBe(401);
    expect((await checkIn({ ...auth, Topic: 'com.example.other' }, id)).status).toBe(400);
    expect((await checkIn({ ...auth, UDID: 'SOMEONE-ELSE' }, id)).status).toBe(401);
    const early = await checkIn(
      { MessageType: 'TokenUpdate', UDID: d.udid, Topic: topic, Token: Buffer.alloc(32), PushMagic: 'm' },
      id,
    );
    expect([early.status, (early.json as { error: { code: string } }).error.code]).toEqual([409, 'mdm/not-registered']);
    expect((await checkIn({ MessageType: 'Nope', UDID: d.udid, Topic: topic }, id)).status).toBe(400);
  });

  it('a station-fetched (staged) profile registers the device at Authenticate', async () => {
    const { mdmPayload, identity } = profileOf(
      await station('POST', '/v1/groups/{id}/enrollment-profile', { params: { id: 'grade1' }, json: G1 }),
    );
    const d = fakeDevice();
    const id = identityOf(identity);
    const topic = mdmPayload.Topic as string;
    expect(
      (await checkIn({ MessageType: 'Authenticate', UDID: d.udid, SerialNumber: d.serial, Topic: topic }, id)).status,
    ).toBe(200);
    expect((await station('GET', '/v1/devices/{serial}', { params: { serial: d.serial } })).json).toMatchObject({
      groupId: 'grade1',
      state: 'active',
      enrollment: { status: 'authenticated' },
      reachable: true,
    });
    const body = encodeXml({ UDID: d.udid, Status: 'Idle' });
    const cmd = await call('PUT', '/mdm/server', {
      headers: {
        'Content-Type': 'application/x-apple-aspen-mdm',
        'Mdm-Signature': sign(body, id, true).toString('base64'),
      },
      body,
    });
    expect([cmd.status, cmd.body.length]).toEqual([200, 0]);
  });
});

describe('lifecycle (mobiconnect rules)', () => {
  it('normal inactivation of a reachable device; force refused while reachable; re-registration keeps the license; delete frees it', async () => {
    const { d } = await enrolledDevice();
    const serial = { serial: d.serial };
    const forced = await station('POST', '/v1/devices/{serial}/inactivate', { params: serial, json: { force: true } });
    expect([forced.status, (forced.json as { error: { code: string } }).error.code]).toEqual([
      409,
      'mdm/force-not-allowed',
    ]);
    expect((forced.json as { error: { message: string } }).error.message).toContain('never force');
    const deleteActive = await station('DELETE', '/v1/devices/{serial}', { params: serial });
    expect([deleteActive.status, (deleteActive.json as { error: { code: string } }).error.code]).toEqual([
      409,
      'mdm/device-active',
    ]);
    const consumedBefore = mdm.admin.state().licenses.consumed;
    const normal = await station('POST', '/v1/devices/{serial}/inactivate', { params: serial, json: { force: false } });
    expect(normal.json).toMatchObject({ state: 'inactive', licenseConsumed: true, inactivation: { kind: 'normal' } });
    expect(mdm.admin.state().licenses.consumed).toBe(consumedBefore);
    const twice = await station('POST', '/v1/devices/{serial}/inactivate', { params: serial, json: { force: false } });
    expect([twice.status, (twice.json as { error: { code: string } }).error.code]).toEqual([
      409,
      'mdm/already-inactive',
    ]);
    // Re-registration of an inactive device: allowed, the license stays the same one.
    profileOf(await enroll(d, mdm.enrollmentUrl, G1));
    expect(mdm.admin.state().licenses.consumed).toBe(consumedBefore);
    expect((await station('GET', '/v1/devices/{serial}', { params: serial })).json).toMatchObject({
      state: 'active',
      inactivation: null,
    });
  });

  it('an unreachable device: normal refused with guidance, forced allowed; delete frees the license; absent afterwards', async () => {
    const { d } = await enrolledDevice();
    const serial = { serial: d.serial };
    mdm.admin.markDevice(d.serial, { lost: true });
    const normal = await station('POST', '/v1/devices/{serial}/inactivate', { params: serial, json: { force: false } });
    expect([normal.status, (normal.json as { error: { code: string } }).error.code]).toEqual([
      409,
      'mdm/device-unreachable',
    ]);
    expect((normal.json as { error: { message: string } }).error.message).toContain('forced');
    const forced = await station('POST', '/v1/devices/{serial}/inactivate', { params: serial, json: { force: true } });
    expect(forced.json).toMatchObject({ state: 'inactive', inactivation: { kind: 'forced' }, licenseConsumed: true });
    const before = mdm.admin.state().licenses.consumed;
    const del = await station('DELETE', '/v1/devices/{serial}', { params: serial });
    expect(del.json).toMatchObject({ deleted: d.serial, licenseFreed: true, licenses: { consumed: before - 1 } });
    expect((await station('GET', '/v1/devices/{serial}', { params: serial })).status).toBe(404);
    expect((await station('DELETE', '/v1/devices/{serial}', { params: serial })).status).toBe(404);
  });

  it('a device that never checked in is unreachable; a bad inactivate body is a 400', async () => {
    const d = fakeDevice();
    profileOf(await enroll(d, mdm.enrollmentUrl, G1));
    const r = await station('POST', '/v1/devices/{serial}/inactivate', {
      params: { serial: d.serial },
      json: { force: false },
    });
    expect(r.status).toBe(409);
    expect(
      (
        await station('POST', '/v1/devices/{serial}/inactivate', {
          params: { serial: d.serial },
          json: { force: 'yes' },
        })
      ).status,
    ).toBe(400);
  });
});

describe('admin API and fault injection', () => {
  const admin = (method: string, p: string, json?: unknown): Promise<Response> =>
    fetch(`${mdm.url}${p}`, {
      method,
      headers: { Authorization: `Bearer ${mdm.adminToken}`, 'Content-Type': 'application/json' },
      body: json === undefined ? undefined : JSON.stringify(json),
    });

  it('needs the admin token (the station token is not enough)', async () => {
    const r = await fetch(`${mdm.url}/admin/state`, { headers: { Authorization: `Bearer ${mdm.token}` } });
    expect(r.status).toBe(401);
    const ok = await admin('GET', '/admin/state');
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ licenses: { total: 1000 }, deviceCaConfigured: true, tokenRefused: false });
  });

  it('seeds groups, assignments, licenses and marks devices over HTTP; validates bodies', async () => {
    expect(
      (
        await admin('POST', '/admin/groups', {
          id: 'http-group',
          name: 'HTTP',
          credentials: { userId: 'http-u', password: 'http-p' },
        })
      ).status,
    ).toBe(200);
    expect((await admin('POST', '/admin/groups', { id: 'bad id!', name: 'x' })).status).toBe(400);
    expect((await admin('POST', '/admin/assignments', { serial: 'ASSIGN0001', groupId: 'http-group' })).status).toBe(
      200,
    );
    expect((await admin('POST', '/admin/assignments', { serial: 'ASSIGN0001', groupId: 'missing' })).status).toBe(404);
    expect(await (await admin('PUT', '/admin/licenses', { total: 1000 })).json()).toMatchObject({ total: 1000 });
    expect((await admin('POST', '/admin/devices/NOSUCH0001/mark', { lost: true })).status).toBe(404);
    const url = (await (await admin('GET', '/admin/groups/http-group/enrollment-url')).json()) as { url: string };
    expect(url.url).toBe(mdm.admin.groupEnrollmentUrl('http-group'));
  });

  it('fails the next N station requests with 5xx, then recovers; device routes unaffected in station scope', async () => {
    expect((await admin('PUT', '/admin/faults', { failNext: 2, failStatus: 502 })).status).toBe(200);
    expect((await call('GET', '/MDMServiceConfig')).status).toBe(200);
    const a = await station('GET', '/v1/groups');
    expect([a.status, (a.json as { error: { code: string } }).error.code]).toEqual([502, 'mdm/injected-fault']);
    expect((await station('GET', '/v1/groups')).status).toBe(502);
    expect((await station('GET', '/v1/groups')).status).toBe(200);
  });

  it('drops the connection mid-request without an answer', async () => {
    mdm.admin.setFaults({ dropNext: 1 });
    await expect(
      fetch(`${mdm.url}/v1/groups`, { headers: { Authorization: `Bearer ${mdm.token}` } }),
    ).rejects.toThrow();
    expect((await station('GET', '/v1/groups')).status).toBe(200);
  });

  it('delays answers (the answer still comes)', async () => {
    mdm.admin.setFaults({ delayMs: 50, scope: 'all' });
    expect(mdm.admin.state().faults).toMatchObject({ delayMs: 50, scope: 'all' });
    expect((await station('GET', '/v1/groups')).status).toBe(200);
    expect((await admin('DELETE', '/admin/faults')).status).toBe(200);
    expect(mdm.admin.state().faults.delayMs).toBe(0);
  });

  it('late answer: the batch is committed at once, the answer held; a client that gave up finds its replay a duplicate', async () => {
    const key = randomUUID();
    const body = JSON.stringify({
      results: [{ idempotencyKey: key, serial: 'LATE0001', outcome: 'done', finishedAt: '2026-04-01T09:00:00.000Z' }],
    });
    const post = (signal?: AbortSignal): Promise<Response> =>
      fetch(`${mdm.url}/v1/kitting-results`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${mdm.token}`, 'Content-Type': 'application/json' },
        body,
        signal,
      });
    const stored = (): { duplicateReceipts: number } | undefined =>
      mdm.admin.state().results.find((r) => r.idempotencyKey === key);
    // The client gives up long before the held answer would come.
    mdm.admin.setFaults({ lateAnswerNext: 1, lateAnswerMs: 60_000 });
    const gaveUp = new AbortController();
    let settled = false;
    const first = post(gaveUp.signal).finally(() => {
      settled = true;
    });
    while (stored() === undefined) await new Promise((r) => setTimeout(r, 5));
    // Committed, and a later request comes and goes while the first answer is still held.
    expect((await station('GET', '/v1/groups')).status).toBe(200);
    expect(settled).toBe(false);
    gaveUp.abort();
    await expect(first).rejects.toThrow();
    expect(mdm.admin.state().faults.lateAnswerNext).toBe(0);
    const replay = await post();
    expect(await replay.json()).toEqual({ accepted: [], duplicates: [key], rejected: [] });
    expect(stored()).toMatchObject({ duplicateReceipts: 1 });

    // A client that waits gets the held answer, whole.
    mdm.admin.setFaults({ lateAnswerNext: 1, lateAnswerMs: 20 });
    const patient = await post();
    expect(patient.status).toBe(200);
    expect(await patient.json()).toEqual({ accepted: [], duplicates: [key], rejected: [] });
    expect(stored()).toMatchObject({ duplicateReceipts: 2 });
    expect((await admin('PUT', '/admin/faults', { lateAnswerNext: 1, lateAnswerMs: 0 })).status).toBe(400);
  });

  it('a database written before duplicate receipts were counted opens with a count of 0', async () => {
    const file = path.join(dir, 'old-results.db');
    const { default: Database } = await import('better-sqlite3');
    const old = new Database(file);
    old.exec(`CREATE TABLE results (idempotency_key TEXT PRIMARY KEY, serial TEXT NOT NULL, body TEXT NOT NULL,
      received_at TEXT NOT NULL);
      INSERT INTO results VALUES ('old-key', 'OLD0001', '{}', '2026-01-01T00:00:00.000Z');`);
    old.close();
    const s = await startMdmServer({ dbFile: file });
    try {
      expect(s.admin.state().results).toEqual([
        {
          idempotencyKey: 'old-key',
          serial: 'OLD0001',
          receivedAt: '2026-01-01T00:00:00.000Z',
          duplicateReceipts: 0,
          result: {},
        },
      ]);
    } finally {
      await s.stop();
    }
  });

  it('refuses the station token until a new one is set', async () => {
    const old = mdm.token;
    expect((await admin('POST', '/admin/token/refuse')).status).toBe(204);
    const r = await station('GET', '/v1/groups');
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toMatch(/^Bearer /);
    const next = `new-token-${randomUUID()}`;
    expect((await admin('PUT', '/admin/token', { token: next })).status).toBe(204);
    expect(mdm.token).toBe(next);
    expect((await call('GET', '/v1/groups', { token: old })).status).toBe(401);
    expect((await station('GET', '/v1/groups')).status).toBe(200);
  });

  it('unknown routes are 404 and wrong methods 405, in the error shape', async () => {
    const r = await fetch(`${mdm.url}/v2/nothing`);
    expect(r.status).toBe(404);
    expect(await r.json()).toMatchObject({ error: { code: 'mdm/not-found' } });
    const m = await fetch(`${mdm.url}/v1/groups`, { method: 'PATCH' });
    expect(m.status).toBe(405);
  });

  it('the database survives a restart: groups, devices and results are still there', async () => {
    const file = path.join(dir, 'restart.db');
    const a = await startMdmServer({ dbFile: file, token: 'restart-token-0123456789' });
    a.admin.putGroup({ id: 'keep', name: 'Keep', credentials: { userId: 'keep-u', password: 'keep-p' } });
    const certA = a.serverCertificatePem;
    await a.stop();
    const b = await startMdmServer({ dbFile: file, token: 'restart-token-0123456789' });
    try {
      expect(b.serverCertificatePem).toBe(certA);
      expect(b.admin.state().groups.map((g) => g.id)).toEqual(['keep']);
    } finally {
      await b.stop();
    }
  });

  it('binds loopback only', async () => {
    await expect(startMdmServer({ host: '0.0.0.0' })).rejects.toThrow(/loopback/);
    expect(net.isIP(new URL(mdm.url).hostname)).toBe(4);
  });
});

describe('kitting mdm-dev', () => {
  it('prints exactly the ready line, writes the tokens to --token-file, serves the demo groups, stops on SIGTERM', async () => {
    const tokenFile = path.join(dir, 'tokens.json');
    const child = spawn(
      NODE,
      [KITTING, 'mdm-dev', '--port', '0', '--seed-demo', '--db', path.join(dir, 'cli.db'), '--token-file', tokenFile],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (s: string) => {
          out += s;
          if (out.includes('\n')) resolve(out);
        });
        void exited.then((code) => reject(new Error(`mdm-dev exited with ${String(code)}`)));
      });
      const ready = JSON.parse(line.trim()) as { ready: boolean; url: string };
      expect(Object.keys(ready)).toEqual(['ready', 'url']);
      expect(ready.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const tokens = JSON.parse(fs.readFileSync(tokenFile, 'utf8')) as { token: string; adminToken: string };
      expect((fs.statSync(tokenFile).mode & 0o777).toString(8)).toBe('600');
      const groups = await contractCall(ready.url, 'GET', '/v1/groups', { token: tokens.token });
      expect(groups.problems).toEqual([]);
      expect((groups.json as { groups: { id: string }[] }).groups.map((g) => g.id).sort()).toEqual([
        'demo-closed',
        'demo-school',
        'demo-school-grade1',
      ]);
    } finally {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
