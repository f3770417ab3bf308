/**
 * MCInstall of the virtual devices, spoken with raw sockets (no src/device code): the cloud
 * configuration's once-only rule and refusals, the values the device forces, AllowPairing=false,
 * escalation, profiles (approval, silent install, list, remove, stored), erase, and faults.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeBinary, encodeXml, isPlistDict, type PlistDict } from '../../src/plist/index.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import {
  cmsSign,
  listDevices,
  makeSupervisionIdentity,
  profileBytes,
  TestHost,
  type ServiceConnection,
  type SupervisionIdentity,
} from '../helpers/sim-process.ts';

const MC = 'com.apple.mobile.MCInstall';
const dirs: string[] = [];
let sim: Simulator;
let supervisor: SupervisionIdentity;
let stranger: SupervisionIdentity;

beforeAll(async () => {
  supervisor = makeSupervisionIdentity('Kitting MC Org');
  stranger = makeSupervisionIdentity('Someone Else');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-mcinstall-'));
  dirs.push(dir);
  sim = await startSimulator({
    socketPath: path.join(dir, 'usbmuxd.sock'),
    devices: 0,
    seed: 'sim-mcinstall',
    identityP12: supervisor.p12,
    identityPassword: supervisor.password,
  });
});

afterAll(async () => {
  await sim.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A new device of `preset`, paired (normal Pair), with an MCInstall connection. */
async function pairedMc(
  preset: string,
  productType?: string,
): Promise<{ udid: string; host: TestHost; mc: ServiceConnection }> {
  const udid = sim.plug(preset, productType);
  const host = await TestHost.create(sim.usbmuxdAddress, udid, sim.systemBuid);
  const r = await host.pair();
  expect(r.Error).toBeUndefined();
  return { udid, host, mc: await host.service(MC) };
}

function errorOf(reply: PlistDict): { code: unknown; domain: unknown } {
  expect(reply.Status).toBe('Error');
  const chain = reply.ErrorChain;
  if (!Array.isArray(chain) || !isPlistDict(chain[0])) throw new Error(`no ErrorChain in ${JSON.stringify(reply)}`);
  expect(typeof chain[0].LocalizedDescription).toBe('string');
  expect(typeof chain[0].USEnglishDescription).toBe('string');
  return { code: chain[0].ErrorCode, domain: chain[0].ErrorDomain };
}

function supervisedConfig(allowPairing: boolean, extra: PlistDict = {}): PlistDict {
  return {
    AllowPairing: allowPairing,
    IsSupervised: true,
    IsMultiUser: false,
    OrganizationName: 'Kitting MC Org',
    OrganizationMagic: 'c0ffee00-0000-4000-8000-000000000001',
    SkipSetup: ['WiFi', 'Location'],
    SupervisorHostCertificates: [supervisor.certDer],
    ...extra,
  };
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('cloud configuration', () => {
  it('is stored once with the forced values; a second one gets MCTunnelErrorDomain 14002', async () => {
    const { udid, mc } = await pairedMc('activated', 'iPad13,18');
    expect(await mc.request({ RequestType: 'Flush' })).toEqual({ Status: 'Acknowledged' });
    expect(await mc.request({ RequestType: 'GetCloudConfiguration' })).toEqual({ Status: 'Acknowledged' });
    expect(await mc.request({ RequestType: 'HelloHostIdentifier' })).toEqual({ Status: 'Acknowledged' });
    const sent = {
      AllowPairing: true,
      IsSupervised: false,
      IsMandatory: false,
      IsMDMUnremovable: true,
      AwaitDeviceConfigured: true,
      ConfigurationSource: 0,
      IsMultiUser: true,
      OrganizationName: 'Unsupervised Org',
      SkipSetup: ['WiFi'],
      SomethingNew: 'kept',
    };
    expect(await mc.request({ RequestType: 'SetCloudConfiguration', CloudConfiguration: sent })).toEqual({
      Status: 'Acknowledged',
    });
    const got = await mc.request({ RequestType: 'GetCloudConfiguration' });
    expect(got.Status).toBe('Acknowledged');
    const cc = got.CloudConfiguration as PlistDict;
    expect(cc).toMatchObject({
      AllowPairing: true,
      IsSupervised: false,
      IsMandatory: true,
      IsMDMUnremovable: false,
      AwaitDeviceConfigured: false,
      ConfigurationSource: 2,
      CloudConfigurationUIComplete: true,
      ConfigurationWasApplied: true,
      OrganizationName: 'Unsupervised Org',
      SkipSetup: ['WiFi'],
      SomethingNew: 'kept',
    });
    // Shared iPad needs a supervised configuration.
    expect(cc.IsMultiUser).toBeUndefined();
    const again = await mc.request({ RequestType: 'SetCloudConfiguration', CloudConfiguration: sent });
    expect(errorOf(again)).toEqual({ code: 14002, domain: 'MCTunnelErrorDomain' });
    expect(sim.state(udid).cloudConfiguration).toMatchObject({
      OrganizationName: 'Unsupervised Org',
      IsMandatory: true,
    });
    mc.close();
  });

  it('keeps IsMultiUser on a supervised iPad, drops it on an iPhone', async () => {
    const pad = await pairedMc('activated', 'iPad13,18');
    await pad.mc.request({
      RequestType: 'SetCloudConfiguration',
      CloudConfiguration: supervisedConfig(true, { IsMultiUser: true }),
    });
    expect(sim.state(pad.udid).cloudConfiguration?.IsMultiUser).toBe(true);
    expect(sim.state(pad.udid).supervised).toBe(true);
    pad.mc.close();
    const phone = await pairedMc('activated', 'iPhone12,8');
    await phone.mc.request({
      RequestType: 'SetCloudConfiguration',
      CloudConfiguration: supervisedConfig(true, { IsMultiUser: true }),
    });
    expect(sim.state(phone.udid).cloudConfiguration).not.toHaveProperty('IsMultiUser');
    phone.mc.close();
  });

  it('is refused before activation (33003), with an ADE assignment (33004), and with a wrongly typed key (33002)', async () => {
    const fresh = await pairedMc('fresh');
    expect(
      errorOf(
        await fresh.mc.request({ RequestType: 'SetCloudConfiguration', CloudConfiguration: supervisedConfig(true) }),
      ),
    ).toEqual({
      code: 33003,
      domain: 'MCCloudConfigErrorDomain',
    });
    expect(sim.state(fresh.udid).cloudConfiguration).toBeNull();
    fresh.mc.close();

    const ade = await pairedMc('activated');
    sim.set(ade.udid, { adeAssigned: true });
    expect(
      errorOf(
        await ade.mc.request({ RequestType: 'SetCloudConfiguration', CloudConfiguration: supervisedConfig(true) }),
      ),
    ).toEqual({
      code: 33004,
      domain: 'MCCloudConfigErrorDomain',
    });
    sim.set(ade.udid, { adeAssigned: false });
    expect(
      errorOf(
        await ade.mc.request({ RequestType: 'SetCloudConfiguration', CloudConfiguration: { AllowPairing: 'yes' } }),
      ).code,
    ).toBe(33002);
    expect(
      errorOf(
        await ade.mc.request({
          RequestType: 'SetCloudConfiguration',
          CloudConfiguration: { SupervisorHostCertificates: ['not data'] },
        }),
      ).code,
    ).toBe(33002);
    expect(sim.state(ade.udid).cloudConfiguration).toBeNull();
    ade.mc.close();
  });

  it('AllowPairing=false deletes every pairing; normal Pair gets MCProtected; supervised pairing still works', async () => {
    const { udid, host, mc } = await pairedMc('activated');
    expect(sim.state(udid).pairings).toHaveLength(1);
    expect(
      await mc.request({ RequestType: 'SetCloudConfiguration', CloudConfiguration: supervisedConfig(false) }),
    ).toEqual({
      Status: 'Acknowledged',
    });
    mc.close();
    expect(sim.state(udid).pairings).toEqual([]);
    await expect(host.session()).rejects.toThrow(/InvalidHostID/);
    expect((await host.pair()).Error).toBe('MCProtected');
    // Another identity's certificate is no way in either.
    expect((await host.pair({ SupervisorCertificate: stranger.certDer, ExtendedPairingErrors: true })).Error).toBe(
      'MCProtected',
    );

    const first = await host.pair({ SupervisorCertificate: supervisor.certDer, ExtendedPairingErrors: true });
    expect(first.Error).toBe('MCChallengeRequired');
    const challenge = (first.ExtendedResponse as PlistDict).PairingChallenge;
    if (!Buffer.isBuffer(challenge)) throw new Error('no PairingChallenge');
    // A wrong answer is refused …
    const wrong = cmsSign(randomBytes(challenge.length), supervisor.certPem, supervisor.keyPem);
    expect((await host.pair({ ChallengeResponse: wrong })).Error).toBe('MCProtected');
    // … the right one pairs without a dialog.
    const again = await host.pair({ SupervisorCertificate: supervisor.certDer, ExtendedPairingErrors: true });
    const c2 = (again.ExtendedResponse as PlistDict).PairingChallenge as Buffer;
    const ok = await host.pair({
      ChallengeResponse: cmsSign(c2, supervisor.certPem, supervisor.keyPem, { digest: 'sha1' }),
    });
    expect(ok.Error).toBeUndefined();
    expect(Buffer.isBuffer(ok.EscrowBag)).toBe(true);
    expect(sim.state(udid).pairings.map((p) => p.hostId)).toEqual([host.keys.hostId]);
    (await host.session()).close();
  });

  it('the supervised preset is prepared by the --identity-p12 identity and only pairs supervised', async () => {
    const udid = sim.plug('supervised');
    const st = sim.state(udid);
    expect(st).toMatchObject({ supervised: true, activationState: 'Activated', setupComplete: true, pairings: [] });
    expect(st.cloudConfiguration).toMatchObject({
      AllowPairing: false,
      IsSupervised: true,
      OrganizationName: 'Kitting MC Org',
      SupervisorHostCertificates: [supervisor.certDer.toString('base64')],
    });
    const host = await TestHost.create(sim.usbmuxdAddress, udid, sim.systemBuid);
    expect((await host.pair()).Error).toBe('MCProtected');
    const first = await host.pair({ SupervisorCertificate: supervisor.certDer });
    const challenge = (first.ExtendedResponse as PlistDict).PairingChallenge as Buffer;
    expect(
      (await host.pair({ ChallengeResponse: cmsSign(challenge, supervisor.certPem, supervisor.keyPem) })).Error,
    ).toBeUndefined();
    const mc = await host.service(MC);
    const cc = await mc.request({ RequestType: 'GetCloudConfiguration' });
    expect((cc.CloudConfiguration as PlistDict).IsSupervised).toBe(true);
    mc.close();
  });
});

describe('escalation and profiles', () => {
  let udid: string;
  let mc: ServiceConnection;

  beforeAll(async () => {
    const p = await pairedMc('activated');
    udid = p.udid;
    mc = p.mc;
    await mc.request({ RequestType: 'SetCloudConfiguration', CloudConfiguration: supervisedConfig(true) });
  });

  afterAll(() => mc.close());

  it('Escalate refuses a foreign certificate and go-ios’ single zero byte with CertificateRejected', async () => {
    expect(await mc.request({ RequestType: 'Escalate', SupervisorCertificate: stranger.certDer })).toEqual({
      Status: 'CertificateRejected',
    });
    expect(await mc.request({ RequestType: 'Escalate', SupervisorCertificate: Buffer.from([0]) })).toEqual({
      Status: 'CertificateRejected',
    });
  });

  it('InstallProfileSilent without escalation is refused (4025); a bad signature or a detached CMS is SignedRequestRejected', async () => {
    const silent = await mc.request({
      RequestType: 'InstallProfileSilent',
      Payload: profileBytes('com.example.early'),
    });
    expect(errorOf(silent)).toEqual({ code: 4025, domain: 'MCInstallationErrorDomain' });

    let r = await mc.request({ RequestType: 'Escalate', SupervisorCertificate: supervisor.certDer });
    let challenge = r.Challenge as Buffer;
    // Signed by another key, with the supervisor's certificate claimed as signer.
    const forged = cmsSign(challenge, supervisor.certPem, stranger.keyPem);
    expect(await mc.request({ RequestType: 'EscalateResponse', SignedRequest: forged })).toEqual({
      Status: 'SignedRequestRejected',
    });

    r = await mc.request({ RequestType: 'Escalate', SupervisorCertificate: supervisor.certDer });
    challenge = r.Challenge as Buffer;
    const detached = cmsSign(challenge, supervisor.certPem, supervisor.keyPem, { detached: true });
    expect(await mc.request({ RequestType: 'EscalateResponse', SignedRequest: detached })).toEqual({
      Status: 'SignedRequestRejected',
    });

    r = await mc.request({ RequestType: 'Escalate', SupervisorCertificate: supervisor.certDer });
    // Signed by a different identity entirely.
    const other = cmsSign(r.Challenge as Buffer, stranger.certPem, stranger.keyPem);
    expect(await mc.request({ RequestType: 'EscalateResponse', SignedRequest: other })).toEqual({
      Status: 'SignedRequestRejected',
    });
    expect(
      errorOf(await mc.request({ RequestType: 'InstallProfileSilent', Payload: profileBytes('com.example.early') }))
        .code,
    ).toBe(4025);
  });

  it('escalates with the right identity, then installs silently', async () => {
    const r = await mc.request({ RequestType: 'Escalate', SupervisorCertificate: supervisor.certDer });
    expect(r.Status).toBe('Acknowledged');
    expect(Buffer.isBuffer(r.Challenge) && r.Challenge.length).toBe(8);
    const signed = cmsSign(r.Challenge as Buffer, supervisor.certPem, supervisor.keyPem);
    expect(await mc.request({ RequestType: 'EscalateResponse', SignedRequest: signed })).toEqual({
      Status: 'Acknowledged',
    });
    expect(await mc.request({ RequestType: 'ProceedWithKeybagMigration' })).toEqual({ Status: 'Acknowledged' });
    expect(
      await mc.request({ RequestType: 'InstallProfileSilent', Payload: profileBytes('com.example.silent', 'Silent') }),
    ).toEqual({
      Status: 'Acknowledged',
    });
    expect(sim.state(udid).profiles.find((p) => p.identifier === 'com.example.silent')).toMatchObject({
      source: 'silent',
    });
  });

  it('InstallProfile installs at once during Setup Assistant, waits for approval afterwards; list and remove', async () => {
    expect(
      await mc.request({ RequestType: 'InstallProfile', Payload: profileBytes('com.example.during-setup', 'During') }),
    ).toEqual({
      Status: 'Acknowledged',
    });
    expect(sim.state(udid).profiles.map((p) => p.identifier)).toContain('com.example.during-setup');

    sim.set(udid, { setupComplete: true });
    expect(
      await mc.request({ RequestType: 'InstallProfile', Payload: profileBytes('com.example.later', 'Later') }),
    ).toEqual({
      Status: 'Acknowledged',
    });
    let st = sim.state(udid);
    expect(st.profiles.map((p) => p.identifier)).not.toContain('com.example.later');
    expect(st.pendingProfiles.map((p) => p.identifier)).toEqual(['com.example.later']);
    let list = await mc.request({ RequestType: 'GetProfileList' });
    expect(list.OrderedIdentifiers).not.toContain('com.example.later');

    await sim.approve(udid, 'com.example.later');
    st = sim.state(udid);
    expect(st.pendingProfiles).toEqual([]);
    list = await mc.request({ RequestType: 'GetProfileList' });
    expect(list.Status).toBe('Acknowledged');
    expect(list.OrderedIdentifiers).toEqual(['com.example.silent', 'com.example.during-setup', 'com.example.later']);
    expect((list.ProfileManifest as PlistDict)['com.example.later']).toEqual({ Description: 'Later', IsActive: true });
    const meta = (list.ProfileMetadata as PlistDict)['com.example.later'] as PlistDict;
    expect(meta).toMatchObject({ PayloadDisplayName: 'Later', PayloadRemovalDisallowed: false, PayloadVersion: 1 });
    expect(typeof meta.PayloadUUID).toBe('string');

    // go-ios sends the identifier, pymobiledevice3 an XML plist, appium a binary plist.
    expect(await mc.request({ RequestType: 'RemoveProfile', ProfileIdentifier: 'com.example.silent' })).toEqual({
      Status: 'Acknowledged',
    });
    const xmlId = encodeXml({
      PayloadType: 'Configuration',
      PayloadIdentifier: 'com.example.later',
      PayloadUUID: meta.PayloadUUID as string,
      PayloadVersion: 1,
    });
    expect(await mc.request({ RequestType: 'RemoveProfile', ProfileIdentifier: xmlId })).toEqual({
      Status: 'Acknowledged',
    });
    const binId = encodeBinary({
      PayloadType: 'Configuration',
      PayloadIdentifier: 'com.example.during-setup',
      PayloadVersion: 1,
    });
    expect(await mc.request({ RequestType: 'RemoveProfile', ProfileIdentifier: binId })).toEqual({
      Status: 'Acknowledged',
    });
    expect(
      errorOf(await mc.request({ RequestType: 'RemoveProfile', ProfileIdentifier: 'com.example.none' })).code,
    ).toBe(4024);
    expect((await mc.request({ RequestType: 'GetProfileList' })).OrderedIdentifiers).toEqual([]);
  });

  it('refuses malformed profiles and empty payloads', async () => {
    expect(errorOf(await mc.request({ RequestType: 'InstallProfile', Payload: Buffer.from('not a profile') }))).toEqual(
      {
        code: 1000,
        domain: 'MCProfileErrorDomain',
      },
    );
    expect(await mc.request({ RequestType: 'InstallProfile' })).toEqual({ Status: 'ErrorPayloadEmpty' });
    expect(errorOf(await mc.request({ RequestType: 'InstallProfile', Payload: 'text' })).code).toBe(14000);
  });

  it('StoreProfile keeps one profile for after setup; GetStoredProfile answers it as ProfileData', async () => {
    expect(await mc.request({ RequestType: 'GetStoredProfile', Purpose: 'PostSetupInstallation' })).toEqual({
      Status: 'Acknowledged',
    });
    const bytes = profileBytes('com.example.stored', 'Stored');
    expect(await mc.request({ RequestType: 'StoreProfile', ProfileData: bytes, Purpose: 'Later' })).toEqual({
      Status: 'CommandFormatError',
    });
    expect(
      await mc.request({ RequestType: 'StoreProfile', ProfileData: bytes, Purpose: 'PostSetupInstallation' }),
    ).toEqual({
      Status: 'Acknowledged',
    });
    const got = await mc.request({ RequestType: 'GetStoredProfile', Purpose: 'PostSetupInstallation' });
    expect(got.Status).toBe('Acknowledged');
    expect(Buffer.isBuffer(got.ProfileData) && got.ProfileData.equals(bytes)).toBe(true);
    expect(sim.state(udid).storedProfile).toMatchObject({
      identifier: 'com.example.stored',
      purpose: 'PostSetupInstallation',
    });
  });
});

describe('faults', () => {
  it('error=<RequestType>:<Code> answers an ErrorChain (or a literal status) for that request', async () => {
    const { udid, mc } = await pairedMc('activated');
    sim.fault(udid, 'error=SetCloudConfiguration:33023', { once: true });
    expect(
      errorOf(await mc.request({ RequestType: 'SetCloudConfiguration', CloudConfiguration: supervisedConfig(true) })),
    ).toEqual({
      code: 33023,
      domain: 'MCCloudConfigErrorDomain',
    });
    expect(sim.state(udid).cloudConfiguration).toBeNull();
    sim.fault(udid, 'error=GetProfileList:14001', { once: true });
    expect(errorOf(await mc.request({ RequestType: 'GetProfileList' }))).toEqual({
      code: 14001,
      domain: 'MCTunnelErrorDomain',
    });
    sim.fault(udid, 'error=Escalate:CertificateRejected', { once: true });
    expect(await mc.request({ RequestType: 'Escalate', SupervisorCertificate: supervisor.certDer })).toEqual({
      Status: 'CertificateRejected',
    });
    mc.close();
  });

  it('disconnect-after=<RequestType>: the request takes effect, the reply is lost', async () => {
    const { udid, host, mc } = await pairedMc('activated');
    sim.fault(udid, 'disconnect-after=SetCloudConfiguration', { once: true });
    mc.send({ RequestType: 'SetCloudConfiguration', CloudConfiguration: supervisedConfig(true) });
    await mc.waitClosed();
    expect(sim.state(udid).cloudConfiguration).toMatchObject({ IsSupervised: true });
    const mc2 = await host.service(MC);
    expect(
      errorOf(await mc2.request({ RequestType: 'SetCloudConfiguration', CloudConfiguration: supervisedConfig(true) }))
        .code,
    ).toBe(14002);
    mc2.close();
  });
});

describe('EraseDevice', () => {
  it('acknowledges, leaves the bus, returns fresh with a new DeviceID and a wiped state', async () => {
    const { udid, host, mc } = await pairedMc('activated');
    await mc.request({ RequestType: 'SetCloudConfiguration', CloudConfiguration: supervisedConfig(true) });
    await mc.request({ RequestType: 'InstallProfile', Payload: profileBytes('com.example.before-erase') });
    await mc.request({
      RequestType: 'StoreProfile',
      ProfileData: profileBytes('com.example.stored'),
      Purpose: 'PostSetupInstallation',
    });
    sim.set(udid, { deviceName: 'Cart 3 / 07', passcodeSet: true });
    const before = sim.state(udid).deviceId;
    expect(before).not.toBeNull();
    expect(
      await mc.request({ RequestType: 'EraseDevice', PreserveDataPlan: 1, DisallowProximitySetup: false }),
    ).toEqual({
      Status: 'Acknowledged',
    });
    await mc.waitClosed();
    await waitFor(() => {
      const s = sim.state(udid);
      return s.attached && s.deviceId !== before;
    }, 'the erased device to return');
    const st = sim.state(udid);
    expect(st).toMatchObject({
      preset: 'fresh',
      pairings: [],
      cloudConfiguration: null,
      profiles: [],
      pendingProfiles: [],
      storedProfile: null,
      activationState: 'Unactivated',
      setupComplete: false,
      supervised: false,
      passcodeSet: false,
      mode: 'normal',
    });
    expect(st.deviceName).not.toBe('Cart 3 / 07');
    expect((await listDevices(sim.usbmuxdAddress)).find((d) => d.udid === udid)?.deviceId).toBe(st.deviceId);
    await expect(host.session()).rejects.toThrow(/InvalidHostID/);
  });

  it('refuses a wrongly typed PreserveDataPlan with CommandFormatError and stays', async () => {
    const { udid, mc } = await pairedMc('activated');
    expect(await mc.request({ RequestType: 'EraseDevice', PreserveDataPlan: 'yes' })).toEqual({
      Status: 'CommandFormatError',
    });
    expect(sim.state(udid).attached).toBe(true);
    mc.close();
  });
});
