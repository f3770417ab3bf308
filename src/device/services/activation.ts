/**
 * Activation (protocols.md §6): the device asks Apple's activation server (albert.apple.com) for
 * its activation record, with the host carrying the messages.
 *
 * - Session mode (iOS ≥ 10, §6.3): mobileactivationd `CreateTunnel1SessionInfoRequest` → POST
 *   drmHandshake → `CreateTunnel1ActivationInfoRequest` → POST deviceActivation →
 *   `HandleActivationInfoWithSessionRequest` → lockdown `ActivationStateAcknowledged`.
 * - Legacy (iOS < 10, §6.4): lockdown `ActivationInfo` → POST deviceActivation → lockdown
 *   `Activate` → `ActivationStateAcknowledged`.
 *
 * mobileactivationd gets a fresh connection per command (as pymobiledevice3, go-ios do). The HTTP
 * exchange is part of the device protocol, so it lives here, with Apple's URLs by default and
 * injectable ones (a test server, a proxy). Server answers are validated with zod before use.
 *
 * Error table (the one place HTTP and mobileactivationd answers become codes):
 * - no network (refused, DNS, reset, timeout) → `activation/offline` (retryable);
 * - `application/x-buddyml` (the Activation Lock form) → `activation/locked`;
 * - any other HTTP status or body without an activation record → `activation/server-error`
 *   (details: `httpStatus`, `contentType`);
 * - mobileactivationd `Error` / lockdown `Activate` refusal → `activation/failed` / the lockdown code.
 */
import http from 'node:http';
import https from 'node:https';
import { z } from 'zod';
import { KitError } from '../../errors.ts';
import { createLogger } from '../../log.ts';
import { decodePlist, encodeXml, isPlistDict, type PlistDict, type PlistValue } from '../../plist/index.ts';
import type { LockdownClient } from '../lockdown.ts';
import { majorVersion } from '../tls.ts';

/** The lockdown service name. */
export const MOBILEACTIVATION_SERVICE = 'com.apple.mobileactivationd';
/** Apple's deviceActivation endpoint. */
export const APPLE_ACTIVATION_URL = 'https://albert.apple.com/deviceservices/deviceActivation';
/** Apple's drmHandshake endpoint. */
export const APPLE_DRM_HANDSHAKE_URL = 'https://albert.apple.com/deviceservices/drmHandshake';
/** What go-ios and libideviceactivation send. */
const USER_AGENT = 'iOS Device Activator (MobileActivation-592.103.2)';
/** Default HTTP time limit per request. */
export const DEFAULT_ACTIVATION_HTTP_TIMEOUT_MS = 30_000;

const log = createLogger('device/activation');

/** Where and how to reach Apple's activation server. */
export interface ActivationOptions {
  /** deviceActivation URL (default Apple's). */
  activationUrl?: string;
  /**
   * drmHandshake URL. Default: Apple's; with only `activationUrl` given, `drmHandshake` next to it
   * (Apple serves both from the same folder).
   */
  drmHandshakeUrl?: string;
  /** Per HTTP request (default 30 s); running out counts as offline. */
  httpTimeoutMs?: number;
  /** The pair record's escrow bag (services start while the device is locked). */
  escrowBag?: Buffer;
  /** Force a flow instead of choosing by ProductVersion (session for iOS ≥ 10). */
  flow?: ActivationFlow;
  signal?: AbortSignal;
}

export type ActivationFlow = 'session' | 'legacy';

/** What {@link activateDevice} did. */
export interface ActivationResult {
  readonly flow: ActivationFlow;
  /** The device was already activated: nothing was sent to Apple. */
  readonly alreadyActivated: boolean;
  /** `ActivationState` afterwards. */
  readonly activationState: string;
}

/** The two endpoints, after defaults. */
export function activationEndpoints(options: Pick<ActivationOptions, 'activationUrl' | 'drmHandshakeUrl'>): {
  activationUrl: string;
  drmHandshakeUrl: string;
} {
  const activationUrl = options.activationUrl ?? APPLE_ACTIVATION_URL;
  let drmHandshakeUrl = options.drmHandshakeUrl;
  if (drmHandshakeUrl === undefined) {
    drmHandshakeUrl =
      options.activationUrl === undefined ? APPLE_DRM_HANDSHAKE_URL : new URL('drmHandshake', activationUrl).toString();
  }
  return { activationUrl, drmHandshakeUrl };
}

const plistDict = z.custom<PlistDict>((v) => isPlistDict(v as PlistValue), 'a dictionary');
/** Session-mode deviceActivation answer. */
const SessionAnswer = z.object({ ActivationRecord: plistDict });
/** Legacy answer: `iphone-activation` or `device-activation` holding `activation-record`. */
const LegacyNode = z.object({ 'activation-record': plistDict });
const LegacyAnswer = z.union([
  z.object({ 'iphone-activation': LegacyNode }).transform((v) => v['iphone-activation']['activation-record']),
  z.object({ 'device-activation': LegacyNode }).transform((v) => v['device-activation']['activation-record']),
]);
/** Headers we rely on. */
const ContentType = z.string().default('');

interface HttpAnswer {
  status: number;
  contentType: string;
  headers: PlistDict;
  body: Buffer;
}

function errnoOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** `Content-Type` style names for the headers handed to the device. */
function canonicalHeader(name: string): string {
  return name
    .split('-')
    .map((p) => (p === '' ? p : p[0]!.toUpperCase() + p.slice(1)))
    .join('-');
}

/** One HTTP exchange as node:http hands it back. */
interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Redirects followed before giving up (fetch's limit is 20; Apple's servers answer directly). */
const MAX_REDIRECTS = 5;

/**
 * POSTs with node:http(s) instead of fetch: fetch (undici with its WebAssembly HTTP parser and web
 * streams) cost a cart of 64 devices about 6 ms of station CPU per device in `npm run bench --
 * station`, node:http's native parser a fraction of that. Follows 301/302/303/307/308 like fetch
 * (303, and 301/302 after a POST, become a GET without a body).
 */
function exchange(
  url: URL,
  method: 'POST' | 'GET',
  body: Buffer | null,
  headers: Record<string, string>,
  signal: AbortSignal,
  redirects = 0,
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const request = (url.protocol === 'https:' ? https : http).request(url, {
      method,
      headers: { ...headers, ...(body !== null ? { 'Content-Length': String(body.length) } : {}) },
      signal,
    });
    request.once('error', reject);
    request.once('response', (res) => {
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if ([301, 302, 303, 307, 308].includes(status) && location !== undefined) {
        res.resume();
        if (redirects >= MAX_REDIRECTS) {
          reject(new Error(`more than ${MAX_REDIRECTS} redirects`));
          return;
        }
        const keep = status === 307 || status === 308;
        const next = new URL(location, url);
        const rest = Object.fromEntries(
          Object.entries(headers).filter(([k]) => keep || k.toLowerCase() !== 'content-type'),
        );
        exchange(next, keep ? method : 'GET', keep ? body : null, rest, signal, redirects + 1).then(resolve, reject);
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', reject);
      res.once('end', () => resolve({ status, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    request.end(body ?? undefined);
  });
}

async function post(
  url: string,
  body: Buffer | URLSearchParams,
  headers: Record<string, string>,
  options: ActivationOptions,
  udid: string,
): Promise<HttpAnswer> {
  const timeoutMs = options.httpTimeoutMs ?? DEFAULT_ACTIVATION_HTTP_TIMEOUT_MS;
  const signals = [AbortSignal.timeout(timeoutMs)];
  if (options.signal !== undefined) signals.push(options.signal);
  const where = new URL(url);
  let res: RawAnswer;
  try {
    const form = body instanceof URLSearchParams;
    res = await exchange(
      where,
      'POST',
      form ? Buffer.from(body.toString(), 'utf8') : body,
      {
        'User-Agent': USER_AGENT,
        ...(form ? { 'Content-Type': 'application/x-www-form-urlencoded;charset=UTF-8' } : {}),
        ...headers,
      },
      AbortSignal.any(signals),
    );
  } catch (err) {
    // The caller's own abort is not a network failure.
    if (options.signal?.aborted === true) throw options.signal.reason;
    // Every failure to get an answer (refused, DNS, reset, TLS, time limit) means: no usable internet.
    const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
    const errno = timedOut ? undefined : errnoOf(err);
    log.warn('activation server unreachable', { udid, host: where.host, errno: errno ?? null, timedOut });
    throw new KitError(
      'activation/offline',
      `cannot reach the activation server ${where.host}: ${timedOut ? `no answer within ${timeoutMs} ms` : (errno ?? (err instanceof Error ? err.message : String(err)))}`,
      {
        udid,
        cause: err,
        details: { host: where.host, errno: errno ?? null, timedOut },
      },
    );
  }
  const out: PlistDict = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (value !== undefined) out[canonicalHeader(name)] = Array.isArray(value) ? value.join(', ') : value;
  }
  const contentType = res.headers['content-type'];
  return {
    status: res.status,
    contentType: ContentType.parse(contentType ?? ''),
    headers: out,
    body: res.body,
  };
}

/** The plist in a response body: the body itself, or the one embedded in Apple's HTML page. */
function plistIn(body: Buffer): PlistValue | undefined {
  try {
    return decodePlist(body);
  } catch {
    const m = /<plist[\s\S]*?<\/plist>/.exec(body.toString('utf8'));
    if (m === null) return undefined;
    try {
      return decodePlist(Buffer.from(m[0], 'utf8'));
    } catch {
      return undefined;
    }
  }
}

/** Activation Lock and HTTP failures of a deviceActivation/drmHandshake answer. */
function checkAnswer(answer: HttpAnswer, what: string, udid: string): void {
  if (/application\/x-buddyml/i.test(answer.contentType)) {
    log.info('the activation server answered with the Activation Lock form', { udid });
    throw new KitError(
      'activation/locked',
      `${what}: Apple's server asks for the owner's Apple Account (Activation Lock)`,
      {
        udid,
        details: { httpStatus: answer.status, contentType: answer.contentType },
      },
    );
  }
  if (answer.status < 200 || answer.status > 299) {
    throw serverError(answer, `${what}: HTTP ${answer.status}`, udid);
  }
}

function serverError(answer: HttpAnswer, message: string, udid: string): KitError {
  return new KitError('activation/server-error', message, {
    udid,
    retryable: answer.status >= 500 || answer.status === 429,
    details: { httpStatus: answer.status, contentType: answer.contentType },
  });
}

/**
 * One mobileactivationd command on its own connection; resolves with `Value` (undefined when absent).
 * @throws KitError `activation/failed` when the device answers `Error`, plus the StartService codes.
 */
export async function mobileActivationCommand(
  lockdown: LockdownClient,
  command: string,
  extra: PlistDict = {},
  options: { escrowBag?: Buffer } = {},
): Promise<PlistValue | undefined> {
  const conn = await lockdown.startService(
    MOBILEACTIVATION_SERVICE,
    options.escrowBag !== undefined ? { escrowBag: options.escrowBag } : {},
  );
  try {
    const reply = await conn.request({ Command: command, ...extra });
    if (reply.Error !== undefined) {
      const text = typeof reply.Error === 'string' ? reply.Error : 'unknown error';
      throw new KitError('activation/failed', `mobileactivationd ${command} failed: ${text}`, {
        udid: lockdown.udid,
        details: { command, error: text },
      });
    }
    return reply.Value;
  } finally {
    conn.close();
  }
}

/**
 * The device's `ActivationState` (mobileactivationd `GetActivationStateRequest`, falling back to
 * lockdown's value when the service is missing, as on old iOS).
 */
export async function getActivationState(
  lockdown: LockdownClient,
  options: { escrowBag?: Buffer } = {},
): Promise<string> {
  try {
    const v = await mobileActivationCommand(lockdown, 'GetActivationStateRequest', {}, options);
    if (typeof v === 'string') return v;
  } catch (err) {
    if (!(err instanceof KitError && (err.code === 'lockdown/invalid-service' || err.code === 'activation/failed')))
      throw err;
  }
  const v = await lockdown.getValue(undefined, 'ActivationState');
  if (typeof v !== 'string')
    throw new KitError('device/bad-reply', 'the device did not give its ActivationState', { udid: lockdown.udid });
  return v;
}

/** The flow for a `ProductVersion`: session mode from iOS 10 (libideviceactivation), legacy before. */
export function activationFlowFor(productVersion: string | undefined): ActivationFlow {
  const major = majorVersion(productVersion);
  return major !== undefined && major < 10 ? 'legacy' : 'session';
}

/**
 * Activates an `Unactivated` device and acknowledges it (`ActivationStateAcknowledged`). A device
 * that is already activated is left alone. `lockdown` must be in a session.
 * @throws KitError `activation/offline` (no internet: waiting for a connection may help),
 * `activation/locked` (Activation Lock), `activation/server-error` (another answer from the server;
 * `details.httpStatus`), `activation/failed` (the device refused the record), lockdown codes.
 */
export async function activateDevice(
  lockdown: LockdownClient,
  options: ActivationOptions = {},
): Promise<ActivationResult> {
  const udid = lockdown.udid;
  let productVersion = lockdown.productVersion;
  if (productVersion === undefined) {
    const v = await lockdown.getValue(undefined, 'ProductVersion');
    productVersion = typeof v === 'string' ? v : undefined;
  }
  const flow = options.flow ?? activationFlowFor(productVersion);
  const escrow = options.escrowBag !== undefined ? { escrowBag: options.escrowBag } : {};
  const before =
    flow === 'session'
      ? await getActivationState(lockdown, escrow)
      : String(await lockdown.getValue(undefined, 'ActivationState'));
  if (before !== 'Unactivated') {
    log.info('already activated', { udid, activationState: before });
    return { flow, alreadyActivated: true, activationState: before };
  }
  const endpoints = activationEndpoints(options);
  log.info('activating', { udid, flow, host: new URL(endpoints.activationUrl).host });
  if (flow === 'session') await sessionFlow(lockdown, endpoints, options);
  else await legacyFlow(lockdown, endpoints.activationUrl, options);
  await lockdown.setValue(undefined, 'ActivationStateAcknowledged', true);
  const after =
    flow === 'session'
      ? await getActivationState(lockdown, escrow)
      : String(await lockdown.getValue(undefined, 'ActivationState'));
  if (after === 'Unactivated') {
    throw new KitError('activation/failed', 'the device took the activation record but is still Unactivated', { udid });
  }
  log.info('activated', { udid, flow, activationState: after });
  return { flow, alreadyActivated: false, activationState: after };
}

async function sessionFlow(
  lockdown: LockdownClient,
  endpoints: { activationUrl: string; drmHandshakeUrl: string },
  options: ActivationOptions,
): Promise<void> {
  const udid = lockdown.udid;
  const escrow = options.escrowBag !== undefined ? { escrowBag: options.escrowBag } : {};
  const blob = await mobileActivationCommand(lockdown, 'CreateTunnel1SessionInfoRequest', {}, escrow);
  if (!isPlistDict(blob))
    throw new KitError('device/bad-reply', 'CreateTunnel1SessionInfoRequest gave no dictionary', { udid });
  const handshake = await post(
    endpoints.drmHandshakeUrl,
    encodeXml(blob),
    { 'Content-Type': 'application/x-apple-plist', Accept: 'application/xml' },
    options,
    udid,
  );
  checkAnswer(handshake, 'drmHandshake', udid);
  if (!isPlistDict(plistIn(handshake.body) ?? '')) {
    throw serverError(handshake, 'drmHandshake: the answer is not a property list', udid);
  }
  const info = await mobileActivationCommand(
    lockdown,
    'CreateTunnel1ActivationInfoRequest',
    { Value: handshake.body },
    escrow,
  );
  if (!isPlistDict(info))
    throw new KitError('device/bad-reply', 'CreateTunnel1ActivationInfoRequest gave no dictionary', { udid });
  const answer = await post(
    endpoints.activationUrl,
    new URLSearchParams({ 'activation-info': encodeXml(info).toString('utf8') }),
    { Accept: 'application/xml' },
    options,
    udid,
  );
  checkAnswer(answer, 'deviceActivation', udid);
  const parsed = SessionAnswer.safeParse(plistIn(answer.body));
  if (!parsed.success) throw serverError(answer, 'deviceActivation: the answer carries no ActivationRecord', udid);
  await mobileActivationCommand(
    lockdown,
    'HandleActivationInfoWithSessionRequest',
    { Value: answer.body, ActivationResponseHeaders: answer.headers },
    escrow,
  );
}

async function legacyFlow(lockdown: LockdownClient, activationUrl: string, options: ActivationOptions): Promise<void> {
  const udid = lockdown.udid;
  const info = await lockdown.getValue(undefined, 'ActivationInfo');
  if (!isPlistDict(info))
    throw new KitError('device/bad-reply', 'the device gave no ActivationInfo dictionary', { udid });
  const fields = new URLSearchParams({
    'activation-info': encodeXml(info).toString('utf8'),
    InStoreActivation: 'false',
  });
  const optional = async (key: string): Promise<string | undefined> => {
    try {
      const v = await lockdown.getValue(undefined, key);
      return typeof v === 'string' ? v : undefined;
    } catch (err) {
      if (err instanceof KitError && (err.code === 'lockdown/missing-value' || err.code === 'lockdown/get-prohibited'))
        return undefined;
      throw err;
    }
  };
  const serial = await optional('SerialNumber');
  if (serial !== undefined) fields.set('AppleSerialNumber', serial);
  if ((await lockdown.getValue(undefined, 'TelephonyCapability').catch(() => undefined)) === true) {
    const phone: [string, string][] = [
      ['IMEI', 'InternationalMobileEquipmentIdentity'],
      ['MEID', 'MobileEquipmentIdentifier'],
      ['IMSI', 'InternationalMobileSubscriberIdentity'],
      ['ICCID', 'IntegratedCircuitCardIdentity'],
    ];
    for (const [field, key] of phone) {
      const v = await optional(key);
      if (v !== undefined) fields.set(field, v);
    }
  }
  const answer = await post(activationUrl, fields, { Accept: 'application/xml' }, options, udid);
  checkAnswer(answer, 'deviceActivation', udid);
  const doc = plistIn(answer.body);
  const legacy = LegacyAnswer.safeParse(doc);
  const session = SessionAnswer.safeParse(doc);
  const record = legacy.success ? legacy.data : session.success ? session.data.ActivationRecord : undefined;
  if (record === undefined)
    throw serverError(answer, 'deviceActivation: the answer carries no activation record', udid);
  await lockdown.activate(record);
}
