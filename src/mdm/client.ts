/**
 * The station's MDM client: one typed method per contract route the station uses
 * (`resources/mdm-contract.openapi.json`), over Node's global `fetch`.
 *
 * - Every call has a timeout (`AbortSignal.timeout`) and a bounded answer size.
 * - Every answer is validated with zod; an answer that does not fit is `mdm/bad-response`.
 * - HTTP statuses, the server's `mdm/...` error codes and network failures become station codes
 *   through ONE table ({@link MDM_SERVER_CODES}, {@link codeForStatus}, {@link codeForNetworkError}).
 * - The bearer token is never logged: log lines carry method, route template, status and time only.
 *
 * Lifecycle: construct once per configured MDM ({@link MdmClient}), change the token with
 * {@link MdmClient.setToken}; there is nothing to close (undici pools the sockets).
 *
 * Errors every method may throw: `mdm/offline` (connection refused, reset, dropped, DNS),
 * `mdm/timeout`, `mdm/server-error` (5xx, 429), `mdm/auth-required` (401 on the station token),
 * `mdm/bad-response`, plus the route-specific codes documented on each method.
 */
import { z } from 'zod';
import { KitError, type ErrorCode } from '../errors.ts';
import { createLogger } from '../log.ts';

const log = createLogger('mdm/client');

/** Default per-request timeout (ms). */
export const DEFAULT_TIMEOUT_MS = 15_000;
/** Default cap on an answer body (bytes): larger answers are `mdm/bad-response`. */
export const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
/** The contract's cap on one `POST /v1/kitting-results` batch (items). */
export const MAX_RESULTS_PER_BATCH = 500;
/** The reference server's cap on a request body (bytes); the syncer keeps batches below it. */
export const MAX_REQUEST_BYTES = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Answer schemas (zod mirrors of the contract's components)

const isoDate = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'an ISO-8601 date-time');

/** A group as `GET /v1/groups` lists it. */
export const MdmGroupSchema = z.object({
  id: z.string().min(1),
  name: z.string().min(1),
  path: z.string().min(1),
  hasEnrollmentCredentials: z.boolean(),
  credentialsExpireAt: isoDate.nullable(),
  credentialsExpired: z.boolean(),
  servicePlan: z.string().nullable(),
});
/** A group of the MDM. */
export type MdmGroup = z.infer<typeof MdmGroupSchema>;

const GroupListSchema = z.object({ groups: z.array(MdmGroupSchema) });

/** A device record (`GET /v1/devices/{serial}`, answer of inactivation). */
export const MdmDeviceSchema = z.object({
  serial: z.string().min(1),
  udid: z.string().min(1),
  state: z.enum(['active', 'inactive']),
  groupId: z.string().min(1),
  licenseConsumed: z.boolean(),
  servicePlan: z.string().nullable(),
  registeredAt: isoDate,
  enrolledAt: isoDate.nullable(),
  lastCheckIn: isoDate.nullable(),
  reachable: z.boolean(),
  enrollment: z.object({
    status: z.enum(['profile-issued', 'authenticated', 'enrolled', 'unenrolled']),
    at: isoDate,
  }),
  inactivation: z.object({ kind: z.enum(['normal', 'forced']), at: isoDate }).nullable(),
});
/** The MDM's record of one device. */
export type MdmDevice = z.infer<typeof MdmDeviceSchema>;

const LicensesSchema = z.object({ total: z.number().int().min(0), consumed: z.number().int().min(0) });

/** Answer of `DELETE /v1/devices/{serial}`. */
export const DeleteResultSchema = z.object({
  deleted: z.string().min(1),
  licenseFreed: z.boolean(),
  licenses: LicensesSchema,
});
/** What a deletion did. */
export type DeleteResult = z.infer<typeof DeleteResultSchema>;

/** Answer of `POST /v1/groups/{id}/enrollment-url`. */
export const GroupEnrollmentUrlSchema = z.object({
  groupId: z.string().min(1),
  url: z.url(),
  generalUrl: z.url(),
  credentialsExpireAt: isoDate.nullable(),
});
/** The group-specific (no prompt) and general device enrollment URLs. */
export type GroupEnrollmentUrl = z.infer<typeof GroupEnrollmentUrlSchema>;

/** One step of a kitting result (contract `Step`). */
export const ResultStepSchema = z.object({
  name: z.string().min(1).max(64),
  status: z.enum(['pending', 'running', 'done', 'skipped', 'failed', 'waiting']),
  ms: z.number().int().min(0).optional(),
  errorCode: z.string().min(1).max(128).optional(),
});

/**
 * One kitting result as sent (contract `KittingResult`). The station builds it from its job's
 * result row; the outbox stores it, the syncer adds nothing but the batch envelope.
 */
export interface KittingResultPayload {
  idempotencyKey: string;
  serial: string;
  udid?: string;
  outcome: 'done' | 'failed' | 'cancelled';
  finishedAt: string;
  blueprint?: string;
  deviceName?: string;
  groupId?: string;
  errorCode?: string;
  steps?: z.infer<typeof ResultStepSchema>[];
}

/** Answer of `POST /v1/kitting-results`: per-key outcome. */
export const ResultsAnswerSchema = z.object({
  accepted: z.array(z.string()),
  duplicates: z.array(z.string()),
  rejected: z.array(
    z.object({ key: z.string().nullable(), index: z.number().int().min(0), reason: z.string().min(1) }),
  ),
});
/** Per-key outcome of a results batch: accepted and duplicates are delivered; rejected never will be. */
export type ResultsAnswer = z.infer<typeof ResultsAnswerSchema>;

const ServiceConfigSchema = z.object({
  dep_enrollment_url: z.url(),
  dep_anchor_certs_url: z.url(),
  trust_profile_url: z.url().optional(),
});
/** Apple's `/MDMServiceConfig`, in the station's camelCase. */
export interface ServiceConfig {
  enrollmentUrl: string;
  anchorCertsUrl: string;
  trustProfileUrl: string | undefined;
}

const ErrorBodySchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

// ---------------------------------------------------------------------------------------------
// The one mapping table: server error codes first, then the HTTP status, then network failures.

/** The server's `error.code` → station code. Codes not listed fall back to {@link codeForStatus}. */
export const MDM_SERVER_CODES: Readonly<Record<string, ErrorCode>> = {
  'mdm/unauthorized': 'mdm/auth-required',
  'mdm/invalid-request': 'mdm/rejected',
  'mdm/payload-too-large': 'mdm/rejected',
  'mdm/method-not-allowed': 'mdm/rejected',
  'mdm/not-found': 'mdm/not-found',
  'mdm/wrong-credentials': 'mdm/wrong-credentials',
  'mdm/credentials-expired': 'mdm/credentials-expired',
  'mdm/group-closed': 'mdm/group-closed',
  'mdm/already-registered': 'mdm/already-registered',
  'mdm/no-license': 'mdm/no-license',
  'mdm/device-unreachable': 'mdm/device-unreachable',
  'mdm/force-not-allowed': 'mdm/force-not-allowed',
  'mdm/already-inactive': 'mdm/already-inactive',
  'mdm/device-active': 'mdm/device-active',
  'mdm/injected-fault': 'mdm/server-error',
  'mdm/internal': 'mdm/server-error',
};

/** HTTP status → station code, when the server's error code is unknown or absent. */
export function codeForStatus(status: number): ErrorCode {
  if (status === 401) return 'mdm/auth-required';
  if (status === 404) return 'mdm/not-found';
  if (status === 409) return 'mdm/conflict';
  if (status === 408 || status === 429 || status >= 500) return 'mdm/server-error';
  if (status >= 400) return 'mdm/rejected';
  return 'mdm/bad-response';
}

/** A failed `fetch` (no HTTP answer) → station code: timeouts are `mdm/timeout`, the rest `mdm/offline`. */
export function codeForNetworkError(err: unknown): ErrorCode {
  const name = err instanceof Error ? err.name : '';
  if (name === 'TimeoutError') return 'mdm/timeout';
  return 'mdm/offline';
}

function networkDetail(err: unknown): string {
  const cause: unknown = err instanceof Error ? err.cause : undefined;
  const code = cause instanceof Error ? (cause as Error & { code?: unknown }).code : undefined;
  if (typeof code === 'string') return code;
  if (cause instanceof Error) return cause.message;
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------------------------

/** Options of {@link MdmClient}. */
export interface MdmClientOptions {
  /** The MDM's base URL (`http://127.0.0.1:PORT`, `https://mdm.example.com`). */
  baseUrl: string;
  /** The station's bearer token. */
  token: string;
  /** Per-request timeout in ms (default {@link DEFAULT_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** Cap on an answer body in bytes (default {@link DEFAULT_MAX_RESPONSE_BYTES}). */
  maxResponseBytes?: number;
}

interface Answer {
  status: number;
  contentType: string;
  body: Buffer;
}

interface RequestSpec {
  method: 'GET' | 'POST' | 'DELETE';
  /** The contract's path template (for logs and errors), e.g. `/v1/devices/{serial}`. */
  route: string;
  /** The actual path. */
  path: string;
  json?: unknown;
  auth: boolean;
}

function requirePattern(value: string, pattern: RegExp, what: string): void {
  if (!pattern.test(value)) throw new KitError('usage/invalid-argument', `${what} "${value}" is not valid`);
}
const SERIAL = /^[A-Za-z0-9]{1,64}$/;
const GROUP_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * Normalizes a base URL: `http(s)://host[:port][/prefix]` without a trailing slash. A bare host
 * name becomes `https://host`. Throws `usage/invalid-argument` for anything else.
 */
export function normalizeBaseUrl(hostOrUrl: string): string {
  const text = hostOrUrl.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `https://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new KitError('usage/invalid-argument', `"${hostOrUrl}" is not an MDM URL or host name`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new KitError('usage/invalid-argument', `the MDM URL must be http(s), got ${url.protocol}`);
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '')
    throw new KitError('usage/invalid-argument', 'the MDM URL must not carry credentials, a query or a fragment');
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

async function readBounded(r: Response, max: number, route: string): Promise<Buffer> {
  const declared = Number(r.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > max) {
    await r.body?.cancel();
    throw new KitError('mdm/bad-response', `${route}: answer of ${declared} bytes exceeds ${max}`);
  }
  if (r.body === null) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let total = 0;
  const reader = r.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel();
      throw new KitError('mdm/bad-response', `${route}: answer exceeds ${max} bytes`);
    }
    chunks.push(Buffer.from(value));
  }
  return Buffer.concat(chunks, total);
}

/** Sends one request; network failures become KitErrors. Shared by the client and discovery. */
async function send(
  url: string,
  spec: RequestSpec,
  headers: Record<string, string>,
  timeoutMs: number,
  maxBytes: number,
): Promise<Answer> {
  const started = Date.now();
  const init: RequestInit = { method: spec.method, headers: { Accept: 'application/json', ...headers } };
  if (spec.json !== undefined) {
    init.body = JSON.stringify(spec.json);
    (init.headers as Record<string, string>)['Content-Type'] = 'application/json';
  }
  const signal = AbortSignal.timeout(timeoutMs);
  init.signal = signal;
  try {
    const r = await fetch(url, init);
    const body = await readBounded(r, maxBytes, spec.route);
    log.debug('mdm call', { method: spec.method, route: spec.route, status: r.status, ms: Date.now() - started });
    return { status: r.status, contentType: r.headers.get('content-type') ?? '', body };
  } catch (err) {
    if (err instanceof KitError) throw err;
    const code = signal.aborted ? 'mdm/timeout' : codeForNetworkError(err);
    const detail = signal.aborted ? `no answer within ${timeoutMs} ms` : networkDetail(err);
    log.debug('mdm call failed', { method: spec.method, route: spec.route, code, detail });
    throw new KitError(code, `${spec.method} ${spec.route}: ${detail}`, {
      cause: err,
      details: { route: spec.route },
    });
  }
}

/** Turns a non-2xx answer into the KitError of {@link MDM_SERVER_CODES} / {@link codeForStatus}. */
export function errorFromAnswer(route: string, status: number, contentType: string, body: Buffer): KitError {
  let serverCode: string | undefined;
  let serverMessage: string | undefined;
  if (contentType.startsWith('application/json')) {
    try {
      const parsed = ErrorBodySchema.safeParse(JSON.parse(body.toString('utf8')));
      if (parsed.success) {
        serverCode = parsed.data.error.code;
        serverMessage = parsed.data.error.message;
      }
    } catch {
      // Not JSON: the status alone decides.
    }
  }
  const code = (serverCode !== undefined ? MDM_SERVER_CODES[serverCode] : undefined) ?? codeForStatus(status);
  const details: Record<string, string | number> = { route, status };
  if (serverCode !== undefined) details.mdmCode = serverCode;
  return new KitError(code, `${route}: HTTP ${status}${serverMessage !== undefined ? ` (${serverMessage})` : ''}`, {
    details,
  });
}

function parseJson<T>(route: string, answer: Answer, schema: z.ZodType<T>): T {
  let value: unknown;
  try {
    value = JSON.parse(answer.body.toString('utf8'));
  } catch {
    throw new KitError('mdm/bad-response', `${route}: the answer is not JSON`, { details: { route } });
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const where = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new KitError('mdm/bad-response', `${route}: the answer does not fit the contract (${where})`, {
      details: { route },
    });
  }
  return parsed.data;
}

/**
 * Typed client of the station routes of the MDM contract. See the file comment for the errors
 * every call can throw; route-specific codes are listed on each method.
 */
export class MdmClient {
  /** The normalized base URL. */
  readonly baseUrl: string;
  #token: string;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;

  constructor(options: MdmClientOptions) {
    this.baseUrl = normalizeBaseUrl(options.baseUrl);
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#maxBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  }

  /** Replaces the bearer token (after `mdm/auth-required`). */
  setToken(token: string): void {
    this.#token = token;
  }

  async #call(spec: RequestSpec, ok: readonly number[] = [200]): Promise<Answer> {
    const headers: Record<string, string> = {};
    if (spec.auth) headers.Authorization = `Bearer ${this.#token}`;
    const answer = await send(`${this.baseUrl}${spec.path}`, spec, headers, this.#timeoutMs, this.#maxBytes);
    if (!ok.includes(answer.status)) throw errorFromAnswer(spec.route, answer.status, answer.contentType, answer.body);
    return answer;
  }

  /** `GET /v1/groups`: the groups the station may register devices into. */
  async listGroups(): Promise<MdmGroup[]> {
    const route = '/v1/groups';
    const a = await this.#call({ method: 'GET', route, path: route, auth: true });
    return parseJson(route, a, GroupListSchema).groups;
  }

  /**
   * `POST /v1/groups/{id}/enrollment-profile`: the group's signed `.mobileconfig` (DER CMS bytes),
   * checked against the group's enrollment credentials. Throws `mdm/wrong-credentials`,
   * `mdm/credentials-expired`, `mdm/group-closed`, `mdm/not-found`, `mdm/rejected`.
   */
  async fetchEnrollmentProfile(groupId: string, credentials: { userId: string; password: string }): Promise<Buffer> {
    requirePattern(groupId, GROUP_ID, 'group id');
    const route = '/v1/groups/{id}/enrollment-profile';
    const a = await this.#call({
      method: 'POST',
      route,
      path: `/v1/groups/${encodeURIComponent(groupId)}/enrollment-profile`,
      json: { userId: credentials.userId, password: credentials.password },
      auth: true,
    });
    if (!a.contentType.startsWith('application/x-apple-aspen-config') || a.body.length === 0)
      throw new KitError('mdm/bad-response', `${route}: expected a profile, got "${a.contentType}"`);
    return a.body;
  }

  /**
   * `POST /v1/groups/{id}/enrollment-url`: the group-specific enrollment URL (no prompt at setup),
   * checked against the credentials. Same errors as {@link MdmClient.fetchEnrollmentProfile}.
   */
  async enrollmentUrl(groupId: string, credentials: { userId: string; password: string }): Promise<GroupEnrollmentUrl> {
    requirePattern(groupId, GROUP_ID, 'group id');
    const route = '/v1/groups/{id}/enrollment-url';
    const a = await this.#call({
      method: 'POST',
      route,
      path: `/v1/groups/${encodeURIComponent(groupId)}/enrollment-url`,
      json: { userId: credentials.userId, password: credentials.password },
      auth: true,
    });
    return parseJson(route, a, GroupEnrollmentUrlSchema);
  }

  /**
   * `GET /v1/devices/{serial}`: the registration check. Returns `null` when the MDM has no record
   * (404: absent), the record otherwise. Throws `usage/invalid-argument` for a malformed serial.
   */
  async getDevice(serial: string): Promise<MdmDevice | null> {
    requirePattern(serial, SERIAL, 'serial number');
    const route = '/v1/devices/{serial}';
    const a = await this.#call(
      { method: 'GET', route, path: `/v1/devices/${encodeURIComponent(serial)}`, auth: true },
      [200, 404],
    );
    if (a.status === 404) {
      const e = errorFromAnswer(route, a.status, a.contentType, a.body);
      if (e.code !== 'mdm/not-found') throw e;
      return null;
    }
    return parseJson(route, a, MdmDeviceSchema);
  }

  /**
   * `POST /v1/devices/{serial}/inactivate`: normal (`force: false`) or forced inactivation.
   * Throws `mdm/not-found`, `mdm/device-unreachable` (use force), `mdm/force-not-allowed`,
   * `mdm/already-inactive` (a retry of a call that went through: treat as done).
   */
  async inactivate(serial: string, options: { force: boolean }): Promise<MdmDevice> {
    requirePattern(serial, SERIAL, 'serial number');
    const route = '/v1/devices/{serial}/inactivate';
    const a = await this.#call({
      method: 'POST',
      route,
      path: `/v1/devices/${encodeURIComponent(serial)}/inactivate`,
      json: { force: options.force },
      auth: true,
    });
    return parseJson(route, a, MdmDeviceSchema);
  }

  /**
   * `DELETE /v1/devices/{serial}`: deletes an inactive record, freeing its license. Throws
   * `mdm/not-found` (also a retry of a delete that went through), `mdm/device-active`.
   */
  async deleteDevice(serial: string): Promise<DeleteResult> {
    requirePattern(serial, SERIAL, 'serial number');
    const route = '/v1/devices/{serial}';
    const a = await this.#call({
      method: 'DELETE',
      route,
      path: `/v1/devices/${encodeURIComponent(serial)}`,
      auth: true,
    });
    return parseJson(route, a, DeleteResultSchema);
  }

  /**
   * `POST /v1/kitting-results`: one batch (1…{@link MAX_RESULTS_PER_BATCH} items). Per-item
   * problems come back in `rejected` (HTTP 200); a malformed envelope is `mdm/rejected`. Safe to
   * retry whole after `mdm/offline`, `mdm/timeout` or `mdm/server-error`: the server dedupes keys.
   */
  async postResults(batch: readonly KittingResultPayload[]): Promise<ResultsAnswer> {
    if (batch.length === 0 || batch.length > MAX_RESULTS_PER_BATCH)
      throw new KitError('bug', `a results batch holds 1–${MAX_RESULTS_PER_BATCH} items, got ${batch.length}`);
    const route = '/v1/kitting-results';
    const a = await this.#call({ method: 'POST', route, path: route, json: { results: batch }, auth: true });
    return parseJson(route, a, ResultsAnswerSchema);
  }

  /** `GET /MDMServiceConfig` on this client's base URL (see {@link discoverServiceConfig}). */
  serviceConfig(): Promise<ServiceConfig> {
    return discoverServiceConfig(this.baseUrl, { timeoutMs: this.#timeoutMs });
  }

  /**
   * The MDM's anchor certificates (DER): `GET` on the `dep_anchor_certs_url` of its
   * `/MDMServiceConfig` (see {@link fetchAnchorCertificates}).
   */
  async anchorCertificates(): Promise<Buffer[]> {
    const config = await this.serviceConfig();
    return fetchAnchorCertificates(config.anchorCertsUrl, { timeoutMs: this.#timeoutMs });
  }
}

const AnchorCertsSchema = z
  .array(
    z
      .string()
      .min(1)
      .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'base64'),
  )
  .min(1);

/**
 * The anchor certificates at `url` (the `dep_anchor_certs_url` of `/MDMServiceConfig`; contract
 * route `GET /mdm/anchor-certs`, no authentication): a JSON array of base64 DER certificates, the
 * server's signing CA first. Returned as DER bytes, in the server's order. The device trusts the
 * enrollment server through them (`AnchorCertificates` in the cloud configuration).
 * Throws `usage/invalid-argument` (not an http(s) URL), the network codes, `mdm/not-found`,
 * `mdm/bad-response` (not such an array, or an empty one).
 */
export async function fetchAnchorCertificates(url: string, options: { timeoutMs?: number } = {}): Promise<Buffer[]> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new KitError('usage/invalid-argument', `"${url}" is not an anchor certificates URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new KitError('usage/invalid-argument', `the anchor certificates URL must be http(s), got ${parsed.protocol}`);
  const route = '/mdm/anchor-certs';
  const spec: RequestSpec = { method: 'GET', route, path: parsed.pathname, auth: false };
  const a = await send(parsed.href, spec, {}, options.timeoutMs ?? DEFAULT_TIMEOUT_MS, 1024 * 1024);
  if (a.status !== 200) throw errorFromAnswer(route, a.status, a.contentType, a.body);
  return parseJson(route, a, AnchorCertsSchema).map((b64) => Buffer.from(b64, 'base64'));
}

/**
 * Apple's service discovery: `GET <base>/MDMServiceConfig` (no authentication), for a station
 * given only a host name (`mdm.example.com` → `https://mdm.example.com`). Returns the enrollment
 * URL and the anchor-certificates URL (and the trust profile URL when given).
 * Throws `usage/invalid-argument` (not a host/URL), the network codes, `mdm/not-found`,
 * `mdm/bad-response`.
 */
export async function discoverServiceConfig(
  hostOrUrl: string,
  options: { timeoutMs?: number } = {},
): Promise<ServiceConfig> {
  const base = normalizeBaseUrl(hostOrUrl);
  const route = '/MDMServiceConfig';
  const spec: RequestSpec = { method: 'GET', route, path: route, auth: false };
  const a = await send(`${base}${route}`, spec, {}, options.timeoutMs ?? DEFAULT_TIMEOUT_MS, 64 * 1024);
  if (a.status !== 200) throw errorFromAnswer(route, a.status, a.contentType, a.body);
  const c = parseJson(route, a, ServiceConfigSchema);
  return {
    enrollmentUrl: c.dep_enrollment_url,
    anchorCertsUrl: c.dep_anchor_certs_url,
    trustProfileUrl: c.trust_profile_url,
  };
}
