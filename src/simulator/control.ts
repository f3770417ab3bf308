/**
 * The simulator's control API: JSON over HTTP on a unix socket or a 127.0.0.1 port, one route per
 * `sim-ctl` verb, request bodies checked with zod. Failures answer `{error: {code, message}}` with
 * 404 (unknown device), 400 (bad input), 409 (wrong state) or 503 (the simulator stopped before the
 * request finished). {@link ControlClient} is the other end.
 *
 * Routes: `GET /info`, `GET /devices`, `POST /devices` `{preset?}`, `GET /devices/:udid`,
 * `POST /devices/:udid/{unplug,replug,reboot,lock,unlock}`, `POST /devices/:udid/trust` `{mode}`,
 * `POST /devices/:udid/set` `{values}`, `POST /devices/:udid/fault` `{spec, once?}`,
 * `POST /devices/:udid/forget` `{hostId?}`, `POST /devices/:udid/approve` `{identifier}`,
 * `POST /devices/:udid/setup` `{action: "complete", username?, password?}`,
 * `POST /usbmuxd/restart` `{cutConnections?}` (the listener and the Listen clients restart at once;
 * device connections stay up unless `cutConnections`), `GET /activation-url`,
 * `POST /activation-server` `{failStatus: N|null}`,
 * `GET /device-ca` (the simulated Apple device CA certificate as PEM text, not JSON).
 */
import fs from 'node:fs';
import http from 'node:http';
import { z } from 'zod';
import { isErrorCode, KitError, toKitError } from '../errors.ts';
import { createLogger } from '../log.ts';
import type { DeviceStateJson } from './device.ts';
import type { SetupResult } from './setup-assistant.ts';
import type { ActivationEndpoint, DeviceSummary, Simulator } from './simulator.ts';

/** A route answer that is not JSON. */
class RawAnswer {
  readonly contentType: string;
  readonly body: string;
  constructor(contentType: string, body: string) {
    this.contentType = contentType;
    this.body = body;
  }
}

const log = createLogger('simulator/control');

const PlugBody = z.object({ preset: z.string().min(1).optional(), productType: z.string().min(1).optional() }).strict();
const ApproveBody = z.object({ identifier: z.string().min(1) }).strict();
const SetupBody = z
  .object({
    action: z.literal('complete'),
    username: z.string().optional(),
    password: z.string().optional(),
  })
  .strict()
  .refine((b) => (b.username === undefined) === (b.password === undefined), {
    message: 'give username and password together',
  });
const ActivationServerBody = z.object({ failStatus: z.number().int().min(400).max(599).nullable() }).strict();
const TrustBody = z.object({ mode: z.enum(['accept', 'deny', 'prompt']) }).strict();
const SetBody = z
  .object({ values: z.record(z.string().min(1), z.union([z.string(), z.number(), z.boolean()])) })
  .strict();
const FaultBody = z.object({ spec: z.string().min(1), once: z.boolean().optional() }).strict();
const EmptyBody = z.object({}).strict();
const RestartBody = z.object({ cutConnections: z.boolean().optional() }).strict();
/** The error body every failed control request answers with. */
const ErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
const ForgetBody = z.object({ hostId: z.string().min(1).optional() }).strict();

/** A running control server. */
export interface ControlServer {
  /** Socket path, or `127.0.0.1:PORT`. */
  readonly address: string;
  close(): Promise<void>;
}

/** Where the control API is: a unix socket path or a TCP port on 127.0.0.1. */
export type ControlTarget = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** Parses `--control`: `PORT`, `HOST:PORT`, `http://HOST:PORT`, or a socket path. */
export function parseControlTarget(spec: string | number): ControlTarget {
  if (typeof spec === 'number') return { kind: 'tcp', host: '127.0.0.1', port: spec };
  const s = spec
    .trim()
    .replace(/^http:\/\//, '')
    .replace(/\/$/, '');
  if (/^\d+$/.test(s)) return { kind: 'tcp', host: '127.0.0.1', port: Number(s) };
  const m = /^([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(\d+)$/.exec(s);
  if (m !== null && m[1] !== undefined && m[2] !== undefined)
    return { kind: 'tcp', host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  return { kind: 'unix', path: spec.replace(/^unix:\/\//, '') };
}

function statusFor(err: KitError): number {
  if (err.code === 'sim/unknown-device') return 404;
  if (err.code === 'sim/invalid-state' || err.code === 'sim/setup-needs-credentials' || err.code === 'sim/setup-failed')
    return 409;
  if (err.exitCode === 2) return 400;
  return 500;
}

async function readBody(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > 1_000_000) throw new KitError('usage/invalid-argument', 'request body too large');
    chunks.push(b);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new KitError('usage/invalid-argument', 'request body is not JSON');
  }
}

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success) {
    throw new KitError(
      'usage/invalid-argument',
      `invalid request body: ${r.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}`,
    );
  }
  return r.data;
}

async function route(sim: Simulator, method: string, pathname: string, body: unknown): Promise<unknown> {
  const parts = pathname
    .split('/')
    .filter((p) => p !== '')
    .map(decodeURIComponent);
  const [a, b, c] = parts;
  if (method === 'GET' && a === 'info' && parts.length === 1) {
    return {
      usbmuxd: sim.usbmuxdAddress,
      control: sim.controlAddress,
      devices: sim.udids(),
      systemBuid: sim.systemBuid,
      activationUrl: sim.activationUrl === '' ? null : sim.activationUrl,
    };
  }
  if (method === 'GET' && a === 'activation-url' && parts.length === 1) return sim.activation;
  if (method === 'GET' && a === 'device-ca' && parts.length === 1)
    return new RawAnswer('application/x-pem-file', sim.deviceCaPem);
  if (method === 'POST' && a === 'activation-server' && parts.length === 1) {
    sim.setActivationFailure(parse(ActivationServerBody, body).failStatus);
    return sim.activation;
  }
  if (a === 'usbmuxd' && b === 'restart' && parts.length === 2 && method === 'POST') {
    const p = parse(RestartBody, body);
    await sim.restartUsbmuxd(p.cutConnections === undefined ? {} : { cutConnections: p.cutConnections });
    return { ok: true };
  }
  if (a !== 'devices') throw new KitError('usage/unknown-command', `no route ${method} ${pathname}`);
  if (parts.length === 1) {
    if (method === 'GET') return sim.list();
    if (method === 'POST') {
      const p = parse(PlugBody, body);
      return { udid: sim.plug(p.preset, p.productType) };
    }
  }
  if (b === undefined) throw new KitError('usage/unknown-command', `no route ${method} ${pathname}`);
  if (parts.length === 2 && method === 'GET') return sim.state(b);
  if (parts.length === 3 && method === 'POST') {
    switch (c) {
      case 'unplug':
        parse(EmptyBody, body);
        sim.unplug(b);
        return { ok: true };
      case 'replug':
        parse(EmptyBody, body);
        await sim.replug(b);
        return { ok: true };
      case 'reboot':
        parse(EmptyBody, body);
        sim.reboot(b);
        return { ok: true };
      case 'lock':
        parse(EmptyBody, body);
        sim.lock(b);
        return { ok: true };
      case 'unlock':
        parse(EmptyBody, body);
        sim.unlock(b);
        return { ok: true };
      case 'trust':
        sim.trust(b, parse(TrustBody, body).mode);
        return { ok: true };
      case 'set':
        sim.set(b, parse(SetBody, body).values);
        return { ok: true };
      case 'approve':
        await sim.approve(b, parse(ApproveBody, body).identifier);
        return { ok: true };
      case 'setup': {
        const p = parse(SetupBody, body);
        return await sim.setup(
          b,
          p.username !== undefined && p.password !== undefined
            ? { username: p.username, password: p.password }
            : undefined,
        );
      }
      case 'forget':
        return { forgotten: sim.forget(b, parse(ForgetBody, body).hostId) };
      case 'fault': {
        const f = parse(FaultBody, body);
        sim.fault(b, f.spec, { once: f.once ?? false });
        return { ok: true };
      }
      default:
        break;
    }
  }
  throw new KitError('usage/unknown-command', `no route ${method} ${pathname}`);
}

/** An answer ready to send. */
interface Answer {
  status: number;
  contentType: string;
  text: string;
}

function errorAnswer(status: number, code: string, message: string): Answer {
  return { status, contentType: 'application/json', text: JSON.stringify({ error: { code, message } }) };
}

/** Runs one request; never rejects (a failure becomes an error answer). */
async function answer(sim: Simulator, req: http.IncomingMessage): Promise<Answer> {
  let status = 200;
  let payload: unknown;
  try {
    const url = new URL(req.url ?? '/', 'http://sim');
    const body = req.method === 'POST' ? await readBody(req) : undefined;
    payload = await route(sim, req.method ?? 'GET', url.pathname, body);
  } catch (err) {
    const e = toKitError(err);
    status = statusFor(e);
    payload = { error: { code: e.code, message: e.message } };
    if (status === 500) log.error('control request failed', { err });
  }
  if (payload instanceof RawAnswer) return { status, contentType: payload.contentType, text: payload.body };
  try {
    return { status, contentType: 'application/json', text: JSON.stringify(payload) ?? 'null' };
  } catch (err) {
    log.error('control answer could not be encoded', { err });
    return errorAnswer(500, 'bug', `the answer could not be encoded as JSON: ${String(err)}`);
  }
}

/** Sends `a` unless the response already went out (or its connection is gone). */
function send(res: http.ServerResponse, a: Answer, close = false): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  res.writeHead(a.status, {
    'content-type': a.contentType,
    'content-length': Buffer.byteLength(a.text),
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(a.text);
}

/** How long {@link ControlServer.close} lets the last answers flush before it cuts what is left. */
const CLOSE_GRACE_MS = 2_000;

/**
 * Starts the control API for `sim` at `spec` (socket path or port; port 0 picks a free one). Every
 * request is answered: with its result, its error, or (when the server closes first) a 503
 * `sim/invalid-state` "the simulator is stopping" naming the request; never a bare hang-up.
 */
export async function startControlServer(sim: Simulator, spec: string | number): Promise<ControlServer> {
  const target = parseControlTarget(spec);
  /** Requests not answered yet, with what each asked for. */
  const inFlight = new Map<http.ServerResponse, string>();
  let closing = false;
  const stopping = (what: string): Answer =>
    errorAnswer(
      503,
      'sim/invalid-state',
      `the simulator is stopping: ${what} was not finished (it may or may not have taken effect)`,
    );
  const server = http.createServer((req, res) => {
    const what = `${req.method ?? 'GET'} ${req.url ?? '/'}`;
    if (closing) {
      send(res, stopping(what), true);
      return;
    }
    inFlight.set(res, what);
    res.once('close', () => inFlight.delete(res));
    void answer(sim, req).then((a) => {
      inFlight.delete(res);
      send(res, a, closing);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (target.kind === 'unix') {
      fs.rmSync(target.path, { force: true });
      server.listen(target.path, () => resolve());
    } else {
      server.listen(target.port, target.host, () => resolve());
    }
  });
  const a = server.address();
  const address =
    target.kind === 'unix'
      ? target.path
      : `${target.host}:${a !== null && typeof a === 'object' ? a.port : target.port}`;
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        for (const [res, what] of inFlight) send(res, stopping(what), true);
        inFlight.clear();
        // Idle keep-alive connections close now; the answers above go out before their
        // connections close, unless a client does not read them within the grace period.
        const cut = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
        server.close(() => {
          clearTimeout(cut);
          if (target.kind === 'unix') fs.rmSync(target.path, { force: true });
          resolve();
        });
      }),
  };
}

/** Options of a {@link ControlClient}. */
export interface ControlClientOptions {
  /** How long one request may wait for its answer (default 120 s); then it fails, naming the request. */
  timeoutMs?: number;
}

/** Network error codes meaning "the connection closed under the request". */
const CONNECTION_LOST = new Set(['ECONNRESET', 'EPIPE']);

/**
 * A client of the control API (what `sim-ctl` uses). Every request ends with its answer or a
 * KitError naming the request and why (`sim/control-unreachable`: cannot connect, the connection
 * closed before the answer, or no answer in time). A POST goes on a connection of its own and is
 * never re-sent; a GET that hits a kept-alive connection the server had just closed is asked
 * once more on a new one.
 */
export class ControlClient {
  private readonly target: ControlTarget;
  private readonly timeoutMs: number;

  constructor(spec: string | number, options: ControlClientOptions = {}) {
    this.target = parseControlTarget(spec);
    this.timeoutMs = options.timeoutMs ?? 120_000;
  }

  /** One request; failures come back as the KitError the server reported. */
  async request(method: 'GET' | 'POST', pathname: string, body?: unknown): Promise<unknown> {
    const { status, data } = await this.exchange(method, pathname, body);
    let parsed: unknown;
    try {
      parsed = JSON.parse(data) as unknown;
    } catch {
      throw new KitError(
        'sim/control-unreachable',
        `the control API answered ${method} ${pathname} with ${status} and non-JSON`,
      );
    }
    if (status >= 400) {
      const e = ErrorBody.safeParse(parsed);
      const code = e.success && isErrorCode(e.data.error.code) ? e.data.error.code : 'bug';
      throw new KitError(
        code,
        e.success ? e.data.error.message : `control API error ${status} for ${method} ${pathname}`,
      );
    }
    return parsed;
  }

  private async exchange(
    method: 'GET' | 'POST',
    pathname: string,
    body?: unknown,
  ): Promise<{ status: number; data: string }> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(method, pathname, body);
      } catch (err) {
        // A kept-alive connection the server closed just as this GET went out: nothing was
        // answered and a GET changes nothing, so it is asked again on a new connection.
        if (err instanceof StaleConnection && method === 'GET' && attempt === 1) continue;
        throw err instanceof StaleConnection ? err.error : err;
      }
    }
  }

  private once(method: 'GET' | 'POST', pathname: string, body?: unknown): Promise<{ status: number; data: string }> {
    const text = body === undefined ? '' : JSON.stringify(body);
    const base =
      this.target.kind === 'unix'
        ? { socketPath: this.target.path }
        : { host: this.target.host, port: this.target.port };
    const what = `${method} ${pathname}`;
    const where = describe(this.target);
    return new Promise<{ status: number; data: string }>((resolve, reject) => {
      let answered = false;
      const req = http.request(
        {
          ...base,
          method,
          path: pathname,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
          // A POST never rides a kept-alive connection: one the server closes at that moment
          // would lose it, and it must not be sent twice.
          ...(method === 'POST' ? { agent: false } : {}),
        },
        (res) => {
          answered = true;
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, data: Buffer.concat(chunks).toString('utf8') });
          });
          res.on('error', (err) => {
            clearTimeout(timer);
            reject(
              new KitError(
                'sim/control-unreachable',
                `the simulator control API at ${where} broke off its answer to ${what}: ${err.message}`,
                { cause: err },
              ),
            );
          });
        },
      );
      const timer = setTimeout(() => {
        req.destroy(
          new KitError(
            'sim/control-unreachable',
            `the simulator control API at ${where} did not answer ${what} within ${this.timeoutMs / 1000} s`,
          ),
        );
      }, this.timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        if (err instanceof KitError) {
          reject(err);
          return;
        }
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (!answered && CONNECTION_LOST.has(code)) {
          const e = new KitError(
            'sim/control-unreachable',
            `the simulator control API at ${where} closed the connection before answering ${what} (${err.message})` +
              (method === 'POST' ? '; it may or may not have taken effect' : ''),
            { cause: err },
          );
          reject(req.reusedSocket ? new StaleConnection(e) : e);
          return;
        }
        reject(
          new KitError(
            'sim/control-unreachable',
            `cannot reach the simulator control API at ${where} for ${what}: ${err.message}`,
            { cause: err },
          ),
        );
      });
      req.end(text);
    });
  }

  list(): Promise<DeviceSummary[]> {
    return this.request('GET', '/devices') as Promise<DeviceSummary[]>;
  }

  async plug(preset?: string, productType?: string): Promise<string> {
    const body: { preset?: string; productType?: string } = {};
    if (preset !== undefined) body.preset = preset;
    if (productType !== undefined) body.productType = productType;
    const r = (await this.request('POST', '/devices', body)) as { udid: string };
    return r.udid;
  }

  async approve(udid: string, identifier: string): Promise<void> {
    await this.request('POST', `/devices/${encodeURIComponent(udid)}/approve`, { identifier });
  }

  setup(udid: string, credentials?: { username: string; password: string }): Promise<SetupResult> {
    return this.request('POST', `/devices/${encodeURIComponent(udid)}/setup`, {
      action: 'complete',
      ...credentials,
    }) as Promise<SetupResult>;
  }

  activationEndpoint(): Promise<ActivationEndpoint> {
    return this.request('GET', '/activation-url') as Promise<ActivationEndpoint>;
  }

  setActivationFailure(failStatus: number | null): Promise<ActivationEndpoint> {
    return this.request('POST', '/activation-server', { failStatus }) as Promise<ActivationEndpoint>;
  }

  /** The simulated Apple device CA certificate (PEM). */
  async deviceCa(): Promise<string> {
    const { status, data } = await this.exchange('GET', '/device-ca');
    if (status !== 200) throw new KitError('sim/control-unreachable', `the control API answered ${status}`);
    return data;
  }

  async verb(
    udid: string,
    verb: 'unplug' | 'replug' | 'reboot' | 'lock' | 'unlock',
    body: unknown = {},
  ): Promise<void> {
    await this.request('POST', `/devices/${encodeURIComponent(udid)}/${verb}`, body);
  }

  async trust(udid: string, mode: 'accept' | 'deny' | 'prompt'): Promise<void> {
    await this.request('POST', `/devices/${encodeURIComponent(udid)}/trust`, { mode });
  }

  async set(udid: string, values: Record<string, string | number | boolean>): Promise<void> {
    await this.request('POST', `/devices/${encodeURIComponent(udid)}/set`, { values });
  }

  async fault(udid: string, spec: string, once = false): Promise<void> {
    await this.request('POST', `/devices/${encodeURIComponent(udid)}/fault`, { spec, once });
  }

  async forget(udid: string, hostId?: string): Promise<number> {
    const r = (await this.request(
      'POST',
      `/devices/${encodeURIComponent(udid)}/forget`,
      hostId === undefined ? {} : { hostId },
    )) as { forgotten: number };
    return r.forgotten;
  }

  state(udid: string): Promise<DeviceStateJson> {
    return this.request('GET', `/devices/${encodeURIComponent(udid)}`) as Promise<DeviceStateJson>;
  }
}

/** A request lost on a reused kept-alive connection before any answer (see {@link ControlClient}). */
class StaleConnection extends Error {
  readonly error: KitError;
  constructor(error: KitError) {
    super(error.message);
    this.error = error;
  }
}

function describe(t: ControlTarget): string {
  return t.kind === 'unix' ? t.path : `${t.host}:${t.port}`;
}
