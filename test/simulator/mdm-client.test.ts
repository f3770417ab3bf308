/**
 * The MDM client (src/mdm/client.ts) against the real reference server: every call, statuses →
 * station codes, answers validated with zod by the client and against the OpenAPI document by the
 * test, and the client's own request bodies validated against the document's request schemas.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { MdmClient, discoverServiceConfig } from '../../src/mdm/client.ts';
import { startMdmServer, type MdmServer } from '../../src/simulator/mdm-server/index.ts';
import { contractProblems, loadContract } from '../helpers/mdm-contract.ts';

let server: MdmServer;
const seen: { method: string; url: string; body: unknown; problems: string[]; auth: string | null }[] = [];
const realFetch = globalThis.fetch;
const ajv = new Ajv2020({ strict: false });
ajv.addFormat('date-time', true);
ajv.addFormat('uri', true);
ajv.addSchema({ ...loadContract(), $id: 'contract' });

function template(pathname: string): string {
  return pathname
    .replace(/^\/v1\/groups\/[^/]+\//, '/v1/groups/{id}/')
    .replace(/^\/v1\/devices\/[^/]+\/inactivate$/, '/v1/devices/{serial}/inactivate')
    .replace(/^\/v1\/devices\/[^/]+$/, '/v1/devices/{serial}');
}

beforeAll(async () => {
  server = await startMdmServer({ seedDemo: true });
  vi.stubGlobal('fetch', async (input: string, init: RequestInit) => {
    const u = new URL(input);
    const method = init.method ?? 'GET';
    const t = template(u.pathname);
    const body: unknown = typeof init.body === 'string' ? JSON.parse(init.body) : undefined;
    const headers = init.headers as Record<string, string>;
    const r = await realFetch(input, init);
    const bytes = Buffer.from(await r.clone().arrayBuffer());
    const problems = contractProblems(method, t, r.status, r.headers.get('content-type') ?? '', bytes);
    if (body !== undefined) {
      const validate = ajv.getSchema(
        `contract#/paths/${t.replace(/\//g, '~1')}/${method.toLowerCase()}/requestBody/content/application~1json/schema`,
      );
      if (validate === undefined) problems.push(`no request schema for ${method} ${t}`);
      else if (!validate(body)) problems.push(`request ${method} ${t}: ${ajv.errorsText(validate.errors)}`);
    }
    seen.push({ method, url: u.pathname, body, problems, auth: headers.Authorization ?? null });
    return r;
  });
});
afterAll(async () => {
  vi.unstubAllGlobals();
  await server.stop();
});
afterEach(() => {
  for (const s of seen.splice(0)) expect(s.problems, `${s.method} ${s.url}`).toEqual([]);
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return err instanceof KitError ? err.code : `not a KitError: ${String(err)}`;
  }
  return 'did not throw';
}

const creds = { userId: 'demo-school', password: 'demo-school-pass' };

describe('MdmClient against the reference server', () => {
  it('lists groups, fetches profiles and URLs, maps credential errors', async () => {
    const c = new MdmClient({ baseUrl: `${server.url}/`, token: server.token });
    const groups = await c.listGroups();
    expect(groups.map((g) => g.id).sort()).toEqual(['demo-closed', 'demo-school', 'demo-school-grade1']);
    const profile = await c.fetchEnrollmentProfile('demo-school', creds);
    expect(profile[0]).toBe(0x30);
    const url = await c.enrollmentUrl('demo-school', creds);
    expect(url.url).toContain('/mdm/enroll/groups/demo-school/');
    expect(await codeOf(c.fetchEnrollmentProfile('demo-school', { ...creds, password: 'wrong' }))).toBe(
      'mdm/wrong-credentials',
    );
    expect(await codeOf(c.enrollmentUrl('demo-closed', creds))).toMatch(/^mdm\/(group-closed|wrong-credentials)$/);
    expect(await codeOf(c.fetchEnrollmentProfile('no-such-group', creds))).toBe('mdm/not-found');
    expect(await codeOf(c.fetchEnrollmentProfile('bad id!', creds))).toBe('usage/invalid-argument');
    expect(seen.every((s) => s.auth === `Bearer ${server.token}`)).toBe(true);
  });

  it('checks, inactivates and deletes devices with precise codes', async () => {
    const c = new MdmClient({ baseUrl: server.url, token: server.token });
    expect(await c.getDevice('NOSUCHSERIAL1')).toBeNull();
    expect(await codeOf(c.inactivate('NOSUCHSERIAL1', { force: false }))).toBe('mdm/not-found');
    expect(await codeOf(c.deleteDevice('NOSUCHSERIAL1'))).toBe('mdm/not-found');
  });

  it('posts results: accepted, duplicates, rejected per key', async () => {
    const c = new MdmClient({ baseUrl: server.url, token: server.token });
    const r = {
      idempotencyKey: 'client-k1',
      serial: 'SERC1',
      outcome: 'done' as const,
      finishedAt: '2025-01-01T00:00:00Z',
    };
    expect(await c.postResults([r])).toEqual({ accepted: ['client-k1'], duplicates: [], rejected: [] });
    expect(await c.postResults([r])).toEqual({ accepted: [], duplicates: ['client-k1'], rejected: [] });
    const a = await c.postResults([{ ...r, outcome: 'failed' }]);
    expect(a.rejected).toEqual([{ key: 'client-k1', index: 0, reason: expect.any(String) as unknown }]);
    expect(await codeOf(c.postResults([]))).toBe('bug');
  });

  it('maps 401, 5xx, dropped connections, timeouts and refused connections', async () => {
    const bad = new MdmClient({ baseUrl: server.url, token: 'wrong-token-wrong-token' });
    expect(await codeOf(bad.listGroups())).toBe('mdm/auth-required');
    const c = new MdmClient({ baseUrl: server.url, token: server.token, timeoutMs: 200 });
    server.admin.setFaults({ failNext: 1, failStatus: 502 });
    expect(await codeOf(c.listGroups())).toBe('mdm/server-error');
    server.admin.setFaults({ dropNext: 1 });
    expect(await codeOf(c.listGroups())).toBe('mdm/offline');
    server.admin.setFaults({ delayMs: 600 });
    expect(await codeOf(c.listGroups())).toBe('mdm/timeout');
    server.admin.clearFaults();
    seen.splice(0);
    const gone = await startMdmServer({});
    const goneUrl = gone.url;
    await gone.stop();
    expect(await codeOf(new MdmClient({ baseUrl: goneUrl, token: 'x' }).listGroups())).toBe('mdm/offline');
    seen.splice(0);
  });

  it('discovers the service config from the base URL', async () => {
    const c = await discoverServiceConfig(server.url);
    expect(c.enrollmentUrl).toBe(`${server.url}/mdm/enroll`);
    expect(c.anchorCertsUrl).toBe(`${server.url}/mdm/anchor-certs`);
    expect(await codeOf(discoverServiceConfig('ftp://x'))).toBe('usage/invalid-argument');
  });
});
