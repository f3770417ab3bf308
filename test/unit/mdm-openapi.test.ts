/**
 * The MDM contract document (`resources/mdm-contract.openapi.json`): it parses, has the structure of
 * OpenAPI 3.1 (checked here by a small validator: required objects, operation ids, path parameters,
 * status keys, every `$ref` resolves, every security requirement names a scheme, every schema
 * compiles as JSON Schema 2020-12), and the validator the server tests use catches answers that do
 * not conform.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { startMdmServer } from '../../src/simulator/mdm-server/index.ts';
import { contractCall, contractProblems, loadContract, resolveRef } from '../helpers/mdm-contract.ts';

type Obj = Record<string, unknown>;
const doc = loadContract() as Obj;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

function walk(v: unknown, at: string, visit: (v: Obj, at: string) => void): void {
  if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${at}/${i}`, visit));
  else if (isObj(v)) {
    visit(v, at);
    for (const [k, x] of Object.entries(v)) walk(x, `${at}/${k}`, visit);
  }
}

function operations(): { path: string; method: string; op: Obj }[] {
  const out: { path: string; method: string; op: Obj }[] = [];
  for (const [p, item] of Object.entries(doc.paths as Obj))
    for (const m of METHODS) if (isObj((item as Obj)[m])) out.push({ path: p, method: m, op: (item as Obj)[m] as Obj });
  return out;
}

/** Structural problems of an OpenAPI 3.1 document (empty when none). */
function structuralProblems(d: Obj): string[] {
  const problems: string[] = [];
  if (typeof d.openapi !== 'string' || !/^3\.1\.\d+$/.test(d.openapi)) problems.push('openapi must be 3.1.x');
  const info = d.info;
  if (!isObj(info) || typeof info.title !== 'string' || typeof info.version !== 'string')
    problems.push('info.title and info.version are required');
  if (!isObj(d.paths)) problems.push('paths is required');
  const schemes = isObj(d.components) && isObj(d.components.securitySchemes) ? d.components.securitySchemes : {};
  const ids = new Set<string>();
  for (const [p, item] of Object.entries(isObj(d.paths) ? d.paths : {})) {
    if (!p.startsWith('/')) problems.push(`path ${p} must start with /`);
    for (const m of METHODS) {
      const op = isObj(item) ? item[m] : undefined;
      if (!isObj(op)) continue;
      const where = `${m.toUpperCase()} ${p}`;
      if (typeof op.operationId !== 'string') problems.push(`${where}: operationId missing`);
      else if (ids.has(op.operationId)) problems.push(`${where}: duplicate operationId ${op.operationId}`);
      else ids.add(op.operationId);
      const templated = [...p.matchAll(/\{([^}]+)\}/g)].map((x) => x[1]);
      const declared = (Array.isArray(op.parameters) ? op.parameters : [])
        .map((x): unknown => resolveRef(x as never))
        .filter((x): x is Obj => isObj(x) && x.in === 'path')
        .map((x) => x.name);
      for (const t of templated)
        if (!declared.includes(t)) problems.push(`${where}: path parameter {${t}} not declared`);
      for (const n of declared)
        if (!templated.includes(n as string)) problems.push(`${where}: parameter ${String(n)} not in the path`);
      if (!isObj(op.responses) || Object.keys(op.responses).length === 0) problems.push(`${where}: no responses`);
      for (const [status, r] of Object.entries(isObj(op.responses) ? op.responses : {})) {
        if (!/^([1-5]\d\d|[1-5]XX|default)$/.test(status)) problems.push(`${where}: bad status key ${status}`);
        const resolved = resolveRef(r as never);
        if (!isObj(resolved) || typeof resolved.description !== 'string')
          problems.push(`${where} ${status}: a response needs a description`);
      }
      for (const req of Array.isArray(op.security) ? op.security : [])
        for (const name of Object.keys(req as Obj))
          if (!(name in schemes)) problems.push(`${where}: unknown security ${name}`);
    }
  }
  walk(d, '#', (v, at) => {
    if (typeof v.$ref === 'string' && resolveRef(v as never) === undefined)
      problems.push(`${at}: $ref ${v.$ref} does not resolve`);
  });
  return problems;
}

describe('the MDM contract document', () => {
  it('is OpenAPI 3.1 with the station, device and check-in routes', () => {
    expect(structuralProblems(doc)).toEqual([]);
    const routes = operations().map((o) => `${o.method.toUpperCase()} ${o.path}`);
    expect(routes).toEqual(
      expect.arrayContaining([
        'GET /v1/groups',
        'POST /v1/groups/{id}/enrollment-profile',
        'GET /v1/devices/{serial}',
        'DELETE /v1/devices/{serial}',
        'POST /v1/devices/{serial}/inactivate',
        'POST /v1/kitting-results',
        'GET /MDMServiceConfig',
        'POST /mdm/enroll',
        'POST /mdm/enroll/groups/{id}/{key}',
        'PUT /mdm/checkin',
      ]),
    );
    const results = (doc.paths as Obj)['/v1/kitting-results'] as Obj;
    expect(typeof (results.post as Obj)['x-idempotency']).toBe('string');
    expect(((doc.components as Obj).securitySchemes as Obj).station).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it('every schema compiles as JSON Schema 2020-12 and every required property is declared', () => {
    const ajv = new Ajv2020({ strict: false });
    ajv.addSchema({ ...doc, $id: 'doc' });
    const schemas = (doc.components as Obj).schemas as Obj;
    for (const name of Object.keys(schemas)) {
      expect(() => ajv.getSchema(`doc#/components/schemas/${name}`), name).not.toThrow();
    }
    walk(schemas, '#', (v, at) => {
      if (Array.isArray(v.required) && isObj(v.properties))
        for (const r of v.required) expect(Object.keys(v.properties), `${at} requires ${String(r)}`).toContain(r);
    });
  });

  it('the structural validator catches broken documents', () => {
    const broken = structuredClone(doc);
    broken.openapi = '3.0.3';
    ((broken.paths as Obj)['/v1/groups'] as Obj).get = {
      operationId: 'listDevices',
      responses: { '2xx': { $ref: '#/nope' } },
    };
    const problems = structuralProblems(broken);
    expect(problems).toEqual(
      expect.arrayContaining([
        'openapi must be 3.1.x',
        'GET /v1/groups: bad status key 2xx',
        expect.stringContaining('does not resolve'),
      ]),
    );
  });

  it('the answer validator accepts the server and catches a non-conforming answer', async () => {
    const mdm = await startMdmServer({ token: 'unit-test-token-0123456789' });
    try {
      mdm.admin.putGroup({ id: 'g1', name: 'G1', credentials: { userId: 'u1', password: 'p1' } });
      const groups = await contractCall(mdm.url, 'GET', '/v1/groups', { token: mdm.token });
      expect(groups.status).toBe(200);
      expect(groups.problems).toEqual([]);
      const absent = await contractCall(mdm.url, 'GET', '/v1/devices/{serial}', {
        token: mdm.token,
        params: { serial: 'NONE0001' },
      });
      expect([absent.status, absent.problems]).toEqual([404, []]);
      const bogus = Buffer.from(JSON.stringify({ groups: [{ id: 'g1', name: 'G1' }] }));
      expect(contractProblems('GET', '/v1/groups', 200, 'application/json', bogus).length).toBeGreaterThan(0);
      expect(contractProblems('GET', '/v1/groups', 418, 'application/json', bogus)).toEqual([
        'GET /v1/groups: status 418 is not declared',
      ]);
      const badDate = Buffer.from(JSON.stringify({ error: { code: 'mdm/not-found', message: 'x' }, extra: 1 }));
      expect(contractProblems('GET', '/v1/devices/{serial}', 404, 'application/json', badDate).length).toBeGreaterThan(
        0,
      );
    } finally {
      await mdm.stop();
    }
  });
});
