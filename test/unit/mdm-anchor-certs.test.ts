/**
 * Anchor certificates for the enrollment-URL way: the client reads the MDM's `dep_anchor_certs_url`
 * (`/MDMServiceConfig` → `GET /mdm/anchor-certs`), and a run whose enrollment URL comes from the
 * MDM (discovered from a bare host, or the group-specific URL) writes them into the cloud
 * configuration's `AnchorCertificates`; anchors the blueprint gives are kept; an MDM that cannot
 * be asked leaves them out.
 */
import { X509Certificate } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBlueprint, type Blueprint } from '../../src/kitting/blueprint.ts';
import { buildCloudConfiguration } from '../../src/kitting/cloud-config.ts';
import { resolveMdmEnrollmentUrl } from '../../src/kitting/mdm-port.ts';
import { fetchAnchorCertificates, MdmClient } from '../../src/mdm/client.ts';
import { startMdmServer, type MdmServer } from '../../src/simulator/mdm-server/index.ts';
import { openDatabase, type Db } from '../../src/store/db.ts';

let dir: string;
let mdm: MdmServer;
let db: Db;
let serverDer: Buffer;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-anchor-'));
  mdm = await startMdmServer({ dbFile: path.join(dir, 'mdm.db') });
  db = openDatabase(':memory:');
  serverDer = Buffer.from(new X509Certificate(mdm.serverCertificatePem).raw);
});
afterAll(async () => {
  db.close();
  await mdm.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function bp(url: string, anchorCertificates: string[] = []): Blueprint {
  return parseBlueprint({
    version: 1,
    name: 'anchors',
    organization: { identityId: 'org', displayName: 'Anchor School' },
    enrollment: { method: 'url', url, anchorCertificates },
  });
}

const inputs = (): { supervisorCertificateDer: Buffer } => ({ supervisorCertificateDer: serverDer });

describe('anchor certificates from the MDM', () => {
  it('the client reads dep_anchor_certs_url: the server CA, as DER', async () => {
    const client = new MdmClient({ baseUrl: mdm.url, token: mdm.token });
    expect((await client.serviceConfig()).anchorCertsUrl).toBe(`${mdm.url}/mdm/anchor-certs`);
    const certs = await client.anchorCertificates();
    expect(certs[0]?.equals(serverDer)).toBe(true);
    await expect(fetchAnchorCertificates(`${mdm.url}/nothing-here`)).rejects.toMatchObject({ code: 'mdm/not-found' });
  });

  it('a discovered enrollment URL gets the MDM anchors in AnchorCertificates', async () => {
    const r = await resolveMdmEnrollmentUrl({ db, client: null, vault: null }, bp(mdm.url));
    expect(r.source).toBe('discovered');
    const cc = buildCloudConfiguration(r.blueprint, inputs());
    expect(cc.ConfigurationURL).toBe(mdm.enrollmentUrl);
    const anchors = cc.AnchorCertificates as Buffer[];
    expect(anchors).toHaveLength(1);
    expect(anchors[0]?.equals(serverDer)).toBe(true);
  });

  it('anchors given in the blueprint are kept; a URL written as is gets none added', async () => {
    const kept = await resolveMdmEnrollmentUrl(
      { db, client: null, vault: null },
      bp(mdm.url, [mdm.serverCertificatePem]),
    );
    expect((buildCloudConfiguration(kept.blueprint, inputs()).AnchorCertificates as Buffer[]).length).toBe(1);
    const asWritten = await resolveMdmEnrollmentUrl({ db, client: null, vault: null }, bp(mdm.enrollmentUrl));
    expect(asWritten.source).toBe('as-written');
    expect(buildCloudConfiguration(asWritten.blueprint, inputs()).AnchorCertificates).toEqual([]);
  });
});
