/**
 * The headless station server (`kitting serve`, issue #7): the station contract over HTTP and a
 * WebSocket on 127.0.0.1, and the built renderer (`dist/renderer/`) as the page. Wire format:
 * `src/server/README.md` and the `Wire*` types of `src/contract.ts`.
 *
 * Security: a random 32-byte access token guards everything, the page included. It is accepted as
 * the `token` query parameter (which also sets an HttpOnly, SameSite=Strict cookie, so the page's
 * own requests carry it), as that cookie, or as `Authorization: Bearer`. Comparison is constant
 * time. Anything else gets 401. The WebSocket also refuses a browser `Origin` other than the
 * server's own (403). Commands go through {@link dispatchEnvelope} (zod validation, errors as data).
 *
 * Lifecycle: {@link startStationServer} → listening → {@link StationServer.close} (sockets closed,
 * event subscription dropped). The station itself belongs to the caller.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { dispatchEnvelope, type StationEvent, type WireEvent, type WireResponse } from '../contract.ts';
import { KitError } from '../errors.ts';
import { createLogger } from '../log.ts';
import type { Station } from '../station.ts';
import { toWireJson } from './json.ts';
import { contentSecurityPolicy, mimeTypeOf, resolveStaticPath, securityHeaders } from './static.ts';

const log = createLogger('server');

/** Name of the cookie set from the `token` query parameter. */
export const TOKEN_COOKIE = 'kitting_token';
/** Largest request body or WebSocket message (a 16 MiB base64 CSV plan fits). */
export const MAX_BODY_BYTES = 20 * 1024 * 1024;

/** Options of {@link startStationServer}. */
export interface StationServerOptions {
  /** The station every command and event goes to/comes from. */
  readonly station: Station;
  /** TCP port on 127.0.0.1; 0 (default) picks a free one. */
  readonly port?: number;
  /** Folder of the built renderer (Vite output with `index.html`). */
  readonly rendererDir: string;
  /** The access token (default: 32 random bytes, base64url). Tests may fix it. */
  readonly token?: string;
  /** Version shown by `GET /api/health`. */
  readonly version?: string;
}

/** A listening server. */
export interface StationServer {
  /** `http://127.0.0.1:PORT` (no token). */
  readonly origin: string;
  /** The URL to open: `http://127.0.0.1:PORT/?token=…`. Secret: print it only on the ready line. */
  readonly url: string;
  readonly port: number;
  /** The access token. Secret. */
  readonly token: string;
  /** Stops listening, closes every WebSocket and HTTP connection. */
  close(): Promise<void>;
}

/** Constant-time comparison of two secrets of any length (hashed first, so lengths do not leak). */
export function safeEqual(a: string, b: string): boolean {
  const ha = crypto.createHash('sha256').update(a, 'utf8').digest();
  const hb = crypto.createHash('sha256').update(b, 'utf8').digest();
  return crypto.timingSafeEqual(ha, hb) && a.length === b.length;
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

/** Where a request's token came from, or null when it has no valid one. */
export function tokenSource(req: http.IncomingMessage, url: URL, token: string): 'query' | 'cookie' | 'bearer' | null {
  const q = url.searchParams.get('token');
  if (q !== null && safeEqual(q, token)) return 'query';
  const auth = req.headers.authorization;
  if (auth !== undefined && /^Bearer /i.test(auth) && safeEqual(auth.slice(7).trim(), token)) return 'bearer';
  const c = cookieValue(req.headers.cookie, TOKEN_COOKIE);
  if (c !== undefined && safeEqual(c, token)) return 'cookie';
  return null;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = toWireJson(body);
  res.writeHead(status, {
    ...securityHeaders(),
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

function errorBody(code: 'usage/invalid-argument' | 'usage/unknown-command', message: string): WireResponse {
  return { id: null, ok: false, error: new KitError(code, message).toJSON() };
}

function readBody(req: http.IncomingMessage): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) over = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(over ? 'too-large' : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const FALLBACK_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>Kitting Station</title></head>
<body><h1>Kitting Station</h1><p>The UI is not built: run <code>npm run build</code>. The API is up at /api/.</p></body></html>`;

/**
 * Starts the server on 127.0.0.1. @throws KitError `io/write-failed` when the port cannot be bound
 * (in use, not allowed).
 */
export async function startStationServer(options: StationServerOptions): Promise<StationServer> {
  const token = options.token ?? crypto.randomBytes(32).toString('base64url');
  const station = options.station;
  const rendererDir = path.resolve(options.rendererDir);
  const sockets = new Set<WebSocket>();
  const connections = new Set<net.Socket>();
  let origin = '';

  async function handleApi(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    if (url.pathname === '/api/health') {
      if (req.method !== 'GET') return sendJson(res, 405, errorBody('usage/invalid-argument', 'GET only'));
      return sendJson(res, 200, { ok: true, result: { status: 'ok', version: options.version ?? null } });
    }
    const m = /^\/api\/command\/([A-Za-z0-9._-]+)$/.exec(url.pathname);
    if (m === null) return sendJson(res, 404, errorBody('usage/unknown-command', `no API route ${url.pathname}`));
    if (req.method !== 'POST') return sendJson(res, 405, errorBody('usage/invalid-argument', 'POST only'));
    // A JSON content type keeps plain HTML forms (which cannot send it) from reaching commands.
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      return sendJson(res, 415, errorBody('usage/invalid-argument', 'the body must be application/json'));
    }
    const body = await readBody(req);
    if (body === 'too-large') return sendJson(res, 413, errorBody('usage/invalid-argument', 'the body is too large'));
    let input: unknown = {};
    if (body.length > 0) {
      try {
        input = JSON.parse(body.toString('utf8'));
      } catch {
        return sendJson(res, 400, errorBody('usage/invalid-argument', 'the body is not JSON'));
      }
    }
    const envelope = await dispatchEnvelope(station, m[1] ?? '', input);
    const status = !envelope.ok && envelope.error.code === 'usage/unknown-command' ? 404 : 200;
    sendJson(res, status, envelope);
  }

  function handlePage(req: http.IncomingMessage, res: http.ServerResponse, url: URL, setCookie: boolean): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, securityHeaders()).end();
      return;
    }
    const headers: Record<string, string | number> = { ...securityHeaders() };
    if (setCookie) {
      headers['Set-Cookie'] = `${TOKEN_COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`;
    }
    const file = resolveStaticPath(rendererDir, url.pathname);
    if (file === null) {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    let data: Buffer;
    let served = file;
    try {
      data = fs.readFileSync(file);
    } catch {
      if (path.basename(file) !== 'index.html') {
        res.writeHead(404, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n');
        return;
      }
      data = Buffer.from(FALLBACK_PAGE, 'utf8');
      served = 'index.html';
    }
    const isPage = served.endsWith('.html');
    res.writeHead(200, {
      ...headers,
      'Content-Type': mimeTypeOf(served),
      'Content-Length': data.length,
      'Cache-Control': isPage ? 'no-store' : 'no-cache',
      ...(isPage ? { 'Content-Security-Policy': contentSecurityPolicy(origin) } : {}),
    });
    res.end(req.method === 'HEAD' ? undefined : data);
  }

  const server = http.createServer((req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', origin);
    } catch {
      res.writeHead(400, securityHeaders()).end();
      return;
    }
    const source = tokenSource(req, url, token);
    if (source === null) {
      res
        .writeHead(401, {
          ...securityHeaders(),
          'Content-Type': 'text/plain; charset=utf-8',
          'WWW-Authenticate': 'Bearer realm="kitting"',
        })
        .end('401: open the URL printed by kitting serve (it carries the access token)\n');
      return;
    }
    const done = url.pathname.startsWith('/api/')
      ? handleApi(req, res, url)
      : Promise.resolve(handlePage(req, res, url, source === 'query'));
    done.catch((err: unknown) => {
      log.error('request failed', { path: url.pathname, error: err instanceof Error ? err.message : String(err) });
      if (!res.headersSent)
        sendJson(res, 500, { id: null, ok: false, error: new KitError('bug', 'request failed').toJSON() });
      else res.destroy();
    });
  });
  server.on('connection', (c) => {
    connections.add(c);
    c.on('close', () => connections.delete(c));
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY_BYTES });
  server.on('upgrade', (req, socket, head) => {
    const refuse = (status: number, reason: string): void => {
      socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    let url: URL;
    try {
      url = new URL(req.url ?? '/', origin);
    } catch {
      return refuse(400, 'Bad Request');
    }
    if (tokenSource(req, url, token) === null) return refuse(401, 'Unauthorized');
    if (url.pathname !== '/api/ws') return refuse(404, 'Not Found');
    // Browsers always send Origin: only our own page may open the socket. Non-browser clients
    // (no Origin) still need the token.
    const from = req.headers.origin;
    if (from !== undefined && from !== origin) return refuse(403, 'Forbidden');
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      ws.on('close', () => sockets.delete(ws));
      ws.on('error', () => sockets.delete(ws));
      ws.on('message', (data, isBinary) => {
        void answer(ws, isBinary ? null : data.toString());
      });
    });
  });

  async function answer(ws: WebSocket, text: string | null): Promise<void> {
    let msg: unknown;
    try {
      msg = text === null ? undefined : JSON.parse(text);
    } catch {
      msg = undefined;
    }
    const rec = typeof msg === 'object' && msg !== null ? (msg as Record<string, unknown>) : undefined;
    const id = rec !== undefined && (typeof rec.id === 'number' || typeof rec.id === 'string') ? rec.id : null;
    let reply: WireResponse;
    if (rec === undefined || id === null || typeof rec.command !== 'string') {
      reply = errorBody('usage/invalid-argument', 'a message is {"id": n, "command": "name", "input": {…}}');
      reply = { ...reply, id };
    } else {
      const envelope = await dispatchEnvelope(station, rec.command, rec.input);
      reply = envelope.ok ? { id, ok: true, result: envelope.result } : { id, ok: false, error: envelope.error };
    }
    if (ws.readyState === ws.OPEN) ws.send(toWireJson(reply));
  }

  const unsubscribe = station.on((event: StationEvent) => {
    if (sockets.size === 0) return;
    const wire: WireEvent = { event };
    const text = toWireJson(wire);
    for (const ws of sockets) if (ws.readyState === ws.OPEN) ws.send(text);
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    unsubscribe();
    throw new KitError('io/write-failed', `cannot listen on 127.0.0.1:${options.port ?? 0}`, { cause: err });
  }
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  origin = `http://127.0.0.1:${port}`;

  return {
    origin,
    url: `${origin}/?token=${encodeURIComponent(token)}`,
    port,
    token,
    close: async () => {
      unsubscribe();
      for (const ws of sockets) ws.terminate();
      wss.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of connections) c.destroy();
      });
    },
  };
}
