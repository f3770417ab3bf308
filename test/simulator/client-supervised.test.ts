/**
 * Supervised pairing (protocols.md §3.4) against the virtual fleet: a device supervised by our
 * identity with pairing disallowed pairs without any Trust dialog (even while the dialog would stay
 * up), a wrong identity gets a clear code and no record, a locked device gets no escrow bag (record
 * not saved), and an identity exported and re-imported through `src/identity/` still supervises the
 * same devices.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { loadPairRecord, openDevice } from '../../src/device/device.ts';
import type { SupervisorCredentials } from '../../src/device/pairing.ts';
import { McInstallClient } from '../../src/device/services/mcinstall.ts';
import { UsbmuxClient } from '../../src/device/usbmux.ts';
import { signCms } from '../../src/identity/cms.ts';
import { IdentityService } from '../../src/identity/identity.ts';
import { MIN_SCRYPT, PassphraseVault } from '../../src/identity/vault.ts';
import { openStationDatabase, type Db } from '../../src/store/db.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { makeSupervisionIdentity, type SupervisionIdentity } from '../helpers/sim-process.ts';

const sims: Simulator[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  for (const s of sims.splice(0)) await s.stop();
});

function credentials(id: SupervisionIdentity): SupervisorCredentials {
  const privateKey = crypto.createPrivateKey(id.keyPem);
  return { certificateDer: id.certDer, sign: (c) => signCms(c, { certificateDer: id.certDer, privateKey }) };
}

async function supervisedFleet(
  id: SupervisionIdentity,
  devices = 1,
): Promise<{ sim: Simulator; mux: UsbmuxClient; udids: string[] }> {
  const sim = await startSimulator({
    devices,
    preset: 'supervised',
    timing: 'none',
    identityP12: id.p12,
    identityPassword: id.password,
  });
  sims.push(sim);
  return { sim, mux: new UsbmuxClient(sim.usbmuxdAddress), udids: sim.udids() };
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

describe('supervised pairing', () => {
  it('pairs a device that disallows pairing with the right identity, without a Trust prompt', async () => {
    const id = makeSupervisionIdentity();
    const { sim, mux, udids } = await supervisedFleet(id);
    const udid = udids[0] as string;
    sim.trust(udid, 'prompt');
    const stages: string[] = [];
    const session = await openDevice(mux, udid, {
      supervisor: credentials(id),
      onProgress: (e) => stages.push(e.stage),
      pairTimeoutMs: 5_000,
    });
    try {
      expect(session.pairedNow).toBe(true);
      expect(stages).toEqual(['pairing', 'pairing-supervised', 'paired']);
      expect(stages).not.toContain('trust-pending');
      // The session works: MCInstall answers with the configuration that names our certificate.
      const mc = await McInstallClient.start(session.lockdown);
      const cc = await mc.getCloudConfiguration();
      mc.close();
      expect(cc?.SupervisorHostCertificates).toEqual([id.certDer]);
    } finally {
      await session.close();
    }
    const state = sim.state(udid);
    expect(state.trustDialog).toBe('hidden');
    expect(state.pairings.map((p) => p.hostId)).toEqual([session.record.hostId]);
    const stored = await loadPairRecord(mux, udid);
    expect(stored?.hostId).toBe(session.record.hostId);
    expect(stored?.escrowBag?.length).toBeGreaterThan(0);
  });

  it('pairs supervised straight away when asked explicitly', async () => {
    const id = makeSupervisionIdentity();
    const { sim, mux, udids } = await supervisedFleet(id);
    const udid = udids[0] as string;
    const stages: string[] = [];
    const session = await openDevice(mux, udid, {
      supervisor: credentials(id),
      pairingMode: 'supervised',
      onProgress: (e) => stages.push(e.stage),
    });
    await session.close();
    expect(stages).toEqual(['pairing', 'pairing-supervised', 'paired']);
    expect(sim.state(udid).pairings).toHaveLength(1);
  });

  it('without an identity the device refuses: lockdown/mc-protected', async () => {
    const id = makeSupervisionIdentity();
    const { mux, udids } = await supervisedFleet(id);
    const udid = udids[0] as string;
    expect((await failure(openDevice(mux, udid))).code).toBe('lockdown/mc-protected');
    expect((await failure(openDevice(mux, udid, { pairingMode: 'supervised' }))).code).toBe('usage/invalid-argument');
  });

  it('with a wrong identity: lockdown/supervisor-rejected, and no record is saved', async () => {
    const ours = makeSupervisionIdentity('Ours');
    const theirs = makeSupervisionIdentity('Theirs');
    const { sim, mux, udids } = await supervisedFleet(ours);
    const udid = udids[0] as string;
    for (const pairingMode of ['auto', 'supervised'] as const) {
      const err = await failure(openDevice(mux, udid, { supervisor: credentials(theirs), pairingMode }));
      expect(err.code).toBe('lockdown/supervisor-rejected');
      expect(err.udid).toBe(udid);
    }
    // The right certificate with a signature by another key is refused at the second Pair.
    const forged: SupervisorCredentials = { certificateDer: ours.certDer, sign: credentials(theirs).sign };
    expect((await failure(openDevice(mux, udid, { supervisor: forged, pairingMode: 'supervised' }))).code).toBe(
      'lockdown/supervisor-rejected',
    );
    expect(await loadPairRecord(mux, udid)).toBeNull();
    expect(sim.state(udid).pairings).toEqual([]);
  });

  it('a locked device accepts the identity but makes no escrow bag: lockdown/password-protected, record not saved', async () => {
    const id = makeSupervisionIdentity();
    const { sim, mux, udids } = await supervisedFleet(id);
    const udid = udids[0] as string;
    sim.set(udid, { passcodeSet: true });
    sim.lock(udid);
    const err = await failure(openDevice(mux, udid, { supervisor: credentials(id), pairingMode: 'supervised' }));
    expect(err.code).toBe('lockdown/password-protected');
    expect(err.details).toMatchObject({ supervised: true });
    expect(await loadPairRecord(mux, udid)).toBeNull();
  });

  it('an identity exported and re-imported through src/identity still supervises the same devices', async () => {
    const dirA = fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-sup-a-'));
    const dirB = fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-sup-b-'));
    const dbs: Db[] = [];
    cleanups.push(() => {
      for (const db of dbs) db.close();
      fs.rmSync(dirA, { recursive: true, force: true });
      fs.rmSync(dirB, { recursive: true, force: true });
    });
    const service = (dir: string): IdentityService => {
      const db = openStationDatabase(dir);
      dbs.push(db);
      return new IdentityService({
        db,
        vault: () =>
          PassphraseVault.open({ dataDir: dir, passphrase: 'correct horse battery', createWith: MIN_SCRYPT }),
      });
    };
    const a = service(dirA);
    const created = await a.create({ org: 'Export Test School' });
    const p12 = path.join(dirA, 'org.p12');
    await a.export(created.id, { out: p12, format: 'p12', password: 'export-pass' });

    // Supervise the fleet with the original identity: the device's configuration names its certificate.
    const sim = await startSimulator({
      devices: 2,
      preset: 'supervised',
      timing: 'none',
      identityP12: fs.readFileSync(p12),
      identityPassword: 'export-pass',
    });
    sims.push(sim);
    const mux = new UsbmuxClient(sim.usbmuxdAddress);

    const b = service(dirB);
    const imported = await b.importFile(p12, { password: 'export-pass' });
    expect(imported.fingerprint).toBe(created.fingerprint);
    const supervisor: SupervisorCredentials = {
      certificateDer: b.get(imported.id).certificateDer,
      sign: await b.signer(imported.id),
    };
    for (const udid of sim.udids()) {
      const session = await openDevice(mux, udid, { supervisor });
      await session.close();
      expect(session.pairedNow).toBe(true);
      expect(sim.state(udid).pairings).toHaveLength(1);
    }
  });
});
