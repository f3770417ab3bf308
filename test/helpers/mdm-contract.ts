/**
 * The station ↔ MDM contract (`resources/mdm-contract.openapi.json`) as a test oracle: {@link contractCall}
 * makes an HTTP request and checks the answer against the operation's declared response (status,
 * content type, JSON body against the schema with ajv's JSON Schema 2020-12, the dialect of OpenAPI
 * 3.1), so every answer a test sees is also a contract check.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';

/** The OpenAPI document's path. */
export const CONTRACT_FILE = path.resolve(import.meta.dirname, '../../resources/mdm-contract.openapi.json');

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

/** The parsed document. */
export function loadContract(): Obj {
  return JSON.parse(fs.readFileSync(CONTRACT_FILE, 'utf8')) as Obj;
}

const doc = loadContract();
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addFormat(
  'date-time',
  (s: string) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(s) && !Number.isNaN(Date.parse(s)),
);
ajv.addFormat('uri', (s: string) => URL.canParse(s));
ajv.addSchema({ ...doc, $id: 'contract' });

function isObj(v: Json | undefined): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Follows a local `$ref` (`#/a/b`). */
export function resolveRef(v: Json | undefined): Json | undefined {
  if (!isObj(v) || typeof v.$ref !== 'string') return v;
  let cur: Json | undefined = doc;
  for (const part of v.$ref.replace(/^#\//, '').split('/')) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    cur = isObj(cur) ? cur[key] : undefined;
  }
  return cur;
}

function pointer(parts: string[]): string {
  return `contract#/${parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/')}`;
}

/**
 * Problems of one answer against the contract (empty when it conforms): the operation must declare
 * the status (or its `NXX`), the content type, and a JSON body must validate.
 */
export function contractProblems(
  method: string,
  template: string,
  status: number,
  contentType: string,
  body: Buffer,
): string[] {
  const op = (doc.paths as Obj)[template];
  const operation = isObj(op) ? op[method.toLowerCase()] : undefined;
  if (!isObj(operation)) return [`no operation ${method} ${template} in the contract`];
  const responses = operation.responses as Obj;
  const key = [String(status), `${String(status)[0]}XX`, 'default'].find((k) => responses[k] !== undefined);
  if (key === undefined) return [`${method} ${template}: status ${status} is not declared`];
  const response = resolveRef(responses[key]);
  if (!isObj(response)) return [`${method} ${template} ${key}: unresolvable response`];
  const content = response.content;
  const type = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  if (!isObj(content)) return body.length === 0 ? [] : [`${method} ${template} ${key}: a body where none is declared`];
  if (!(type in content)) return [`${method} ${template} ${key}: content type "${type}" not declared`];
  if (type !== 'application/json') return [];
  const base =
    typeof (responses[key] as Obj).$ref === 'string'
      ? ((responses[key] as Obj).$ref as string).replace(/^#\//, '').split('/')
      : ['paths', template, method.toLowerCase(), 'responses', key];
  const validate = ajv.getSchema(pointer([...base, 'content', 'application/json', 'schema']));
  if (validate === undefined) return [`${method} ${template} ${key}: schema did not compile`];
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return [`${method} ${template} ${key}: body is not JSON`];
  }
  if (validate(value)) return [];
  return (validate.errors ?? []).map((e) => `${method} ${template} ${key}: ${e.instancePath} ${e.message ?? ''}`);
}

/** An answer from {@link contractCall}. */
export interface ContractAnswer {
  status: number;
  headers: Headers;
  body: Buffer;
  /** The parsed JSON body (undefined when not JSON). */
  json: unknown;
  /** Problems against the contract (the caller expects `[]`). */
  problems: string[];
}

/**
 * Calls `method` on `baseUrl` + the template with `params` filled in, and checks the answer.
 */
export async function contractCall(
  baseUrl: string,
  method: string,
  template: string,
  options: {
    params?: Record<string, string>;
    token?: string;
    json?: unknown;
    body?: Buffer;
    headers?: Record<string, string>;
  } = {},
): Promise<ContractAnswer> {
  let p = template;
  for (const [k, v] of Object.entries(options.params ?? {})) p = p.replace(`{${k}}`, encodeURIComponent(v));
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`;
  let body: Buffer | undefined = options.body;
  if (options.json !== undefined) {
    body = Buffer.from(JSON.stringify(options.json));
    headers['Content-Type'] = 'application/json';
  }
  const r = await fetch(`${baseUrl}${p}`, { method, headers, body });
  const bytes = Buffer.from(await r.arrayBuffer());
  const type = r.headers.get('content-type') ?? '';
  let json: unknown;
  if (type.startsWith('application/json')) json = JSON.parse(bytes.toString('utf8')) as unknown;
  return {
    status: r.status,
    headers: r.headers,
    body: bytes,
    json,
    problems: contractProblems(method, template, r.status, type, bytes),
  };
}
