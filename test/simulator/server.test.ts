/**
 * `kitting serve --port 0 --simulate 4` as a child process (issue #7): the access token guards the
 * page, the API and the WebSocket; the query token sets the cookie; bearer works; commands round
 * trip over the WebSocket and HTTP; events are pushed; bad input answers an error envelope; paths
 * cannot leave the UI folder; `--mdm-dev` starts the reference MDM server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { StationEvent, WireResponse } from '../../src/contract.ts';
import { KITTING, NODE } from '../helpers/sim-process.ts';

interface Served {
  child: ChildProcess;
  url: string;
  origin: string;
  token: string;
  stderr: () => string;
  exited: Promise<number | null>;
}

let dir: string;
let rendererDir: string;

async function serve(args: string[]): Promise<Served> {
  const child = spawn(NODE, [KITTING, 'serve', '--port', '0', '--renderer-dir', rendererDir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KITTING_DATA_DIR: '', KITTING_PASSPHRASE: '' },
  });
  let err = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => (err += s));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (s: string) => {
      out += s;
      if (out.includes('\n')) resolve(out);
    });
    void exited.then((code) => reject(new Error(`serve exited with ${String(code)}: ${err}`)));
  });
  expect(line.trim().split('\n')).toHaveLength(1);
  const ready = JSON.parse(line.trim()) as { ready: boolean; url: string };
  expect(Object.keys(ready)).toEqual(['ready', 'url']);
  expect(ready.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{43}$/);
  const u = new URL(ready.url);
  return {
    child,
    url: ready.url,
    origin: u.origin,
    token: u.searchParams.get('token') ?? '',
    stderr: () => err,
    exited,
  };
}

async function stop(s: Served): Promise<number | null> {
  if (s.child.pid !== undefined && s.child.exitCode === null) process.kill(s.child.pid, 'SIGTERM');
  return s.exited;
}

/** A raw GET (fetch normalizes `..` away, so traversal needs the raw path). */
function rawGet(
  origin: string,
  rawPath: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const u = new URL(origin);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: rawPath, method: 'GET', headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Tries a WebSocket upgrade; resolves with the open socket or the refusing HTTP status. */
function openWs(url: string, headers: Record<string, string> = {}): Promise<WebSocket | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('error', reject);
  });
}

class WsClient {
  private next = 1;
  private readonly waiting = new Map<number, (r: WireResponse) => void>();
  readonly events: StationEvent[] = [];
  private readonly eventWaiters: { pred: (e: StationEvent) => boolean; resolve: (e: StationEvent) => void }[] = [];
  readonly ws: WebSocket;
  constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(data.toString('utf8')) as WireResponse | { event: StationEvent };
      if ('event' in msg) {
        this.events.push(msg.event);
        for (const w of [...this.eventWaiters]) {
          if (w.pred(msg.event)) {
            this.eventWaiters.splice(this.eventWaiters.indexOf(w), 1);
            w.resolve(msg.event);
          }
        }
      } else if (typeof msg.id === 'number') this.waiting.get(msg.id)?.(msg);
    });
  }
  call(command: string, input?: unknown): Promise<WireResponse> {
    const id = this.next++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.ws.send(JSON.stringify({ id, command, input }));
    });
  }
  event(pred: (e: StationEvent) => boolean): Promise<StationEvent> {
    const seen = this.events.find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.eventWaiters.push({ pred, resolve }));
  }
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-serve-test-'));
  rendererDir = path.join(dir, 'renderer');
  fs.mkdirSync(path.join(rendererDir, 'assets'), { recursive: true });
  fs.writeFileSync(path.join(rendererDir, 'index.html'), '<!doctype html><title>Kitting test page</title>');
  fs.writeFileSync(path.join(rendererDir, 'assets', 'app.js'), 'console.log("app");');
  fs.writeFileSync(path.join(dir, 'secret.txt'), 'outside the UI folder');
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('kitting serve --simulate 4', () => {
  let s: Served;
  beforeAll(async () => {
    s = await serve(['--simulate', '4']);
  });
  afterAll(async () => {
    expect(await stop(s)).toBe(0);
  });

  it('answers 401 without the token: page, API, health, WebSocket upgrade; and with a wrong one', async () => {
    expect((await fetch(`${s.origin}/`)).status).toBe(401);
    expect((await fetch(`${s.origin}/assets/app.js`)).status).toBe(401);
    expect((await fetch(`${s.origin}/api/health`)).status).toBe(401);
    const post = await fetch(`${s.origin}/api/command/devices.list`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    });
    expect(post.status).toBe(401);
    expect((await fetch(`${s.origin}/?token=${'x'.repeat(43)}`)).status).toBe(401);
    expect((await fetch(`${s.origin}/api/health`, { headers: { Authorization: 'Bearer nope' } })).status).toBe(401);
    expect(await openWs(`${s.origin.replace('http', 'ws')}/api/ws`)).toBe(401);
    expect(await openWs(`${s.origin.replace('http', 'ws')}/api/ws?token=wrong`)).toBe(401);
    expect(s.stderr()).not.toContain(s.token);
  });

  it('serves the page with the query token, sets an HttpOnly SameSite=Strict cookie that then works alone', async () => {
    const page = await fetch(s.url);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await page.text()).toContain('Kitting test page');
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    const cookie = page.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^kitting_token=[A-Za-z0-9_-]+;/);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');
    const pair = cookie.split(';')[0] ?? '';
    const js = await fetch(`${s.origin}/assets/app.js`, { headers: { Cookie: pair } });
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    const ws = await openWs(`${s.origin.replace('http', 'ws')}/api/ws`, { Cookie: pair });
    expect(ws).toBeInstanceOf(WebSocket);
    if (ws instanceof WebSocket) ws.close();
  });

  it('accepts the bearer token on HTTP commands and health; bad input is an error envelope', async () => {
    const auth = { Authorization: `Bearer ${s.token}`, 'Content-Type': 'application/json' };
    const health = await fetch(`${s.origin}/api/health`, { headers: auth });
    expect(health.status).toBe(200);
    expect(((await health.json()) as { ok: boolean }).ok).toBe(true);
    const list = await fetch(`${s.origin}/api/command/devices.states`, { method: 'POST', headers: auth, body: '{}' });
    expect(list.status).toBe(200);
    expect(((await list.json()) as { ok: boolean }).ok).toBe(true);
    const bad = await fetch(`${s.origin}/api/command/jobs.list`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ status: 'sideways' }),
    });
    const env = (await bad.json()) as WireResponse;
    expect(env.ok).toBe(false);
    if (!env.ok) {
      expect(env.error.code).toBe('usage/invalid-argument');
      expect(env.error.details).toMatchObject({ path: 'status' });
    }
    const unknown = await fetch(`${s.origin}/api/command/devices.explode`, {
      method: 'POST',
      headers: auth,
      body: '{}',
    });
    expect(unknown.status).toBe(404);
    const form = await fetch(`${s.origin}/api/command/devices.list`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${s.token}`, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'a=b',
    });
    expect(form.status).toBe(415);
  });

  it('round-trips commands over the WebSocket: devices.list shows the 4 virtual iPads; bad input errs', async () => {
    const ws = await openWs(`${s.origin.replace('http', 'ws')}/api/ws?token=${s.token}`, { Origin: s.origin });
    if (!(ws instanceof WebSocket)) throw new Error(`upgrade refused: ${ws}`);
    const c = new WsClient(ws);
    try {
      const list = await c.call('devices.list', {});
      expect(list.ok).toBe(true);
      if (list.ok) {
        const devices = list.result as { udid: string; productType: string | null }[];
        expect(devices).toHaveLength(4);
        // Both UDID forms a fleet has: 00008030-001A2B3C4D5E6F70 (A12 and later) and 40 hex digits (older).
        for (const d of devices) expect(d.udid).toMatch(/^([0-9A-F]{8}-[0-9A-F]{16}|[0-9a-f]{40})$/);
      }
      const bad = await c.call('devices.info', { udid: 'not a udid!' });
      expect(bad).toMatchObject({ ok: false, error: { code: 'usage/invalid-argument' } });
      const unknown = await c.call('nope.nothing', {});
      expect(unknown).toMatchObject({ ok: false, error: { code: 'usage/unknown-command' } });
      ws.send('not json');
      const states = await c.call('devices.states');
      expect(states.ok).toBe(true);
    } finally {
      ws.close();
    }
  });

  it('pushes station events to every socket: the demo blueprint prepares the 4 iPads', async () => {
    const a = await openWs(`${s.origin.replace('http', 'ws')}/api/ws?token=${s.token}`);
    const b = await openWs(`${s.origin.replace('http', 'ws')}/api/ws`, { Authorization: `Bearer ${s.token}` });
    if (!(a instanceof WebSocket) || !(b instanceof WebSocket)) throw new Error('upgrade refused');
    const ca = new WsClient(a);
    const cb = new WsClient(b);
    try {
      const started = await ca.call('batch.start', { blueprint: 'demo', udids: 'all' });
      expect(started.ok).toBe(true);
      const finishedA = await ca.event((e) => e.type === 'batchFinished');
      const finishedB = await cb.event((e) => e.type === 'batchFinished');
      expect(finishedA).toEqual(finishedB);
      expect(ca.events.some((e) => e.type === 'batchStarted')).toBe(true);
      expect(ca.events.filter((e) => e.type === 'jobFinished')).toHaveLength(4);
      const states = await ca.call('devices.states');
      expect(states.ok).toBe(true);
      if (states.ok) {
        const list = states.result as { state: string }[];
        expect(list.map((d) => d.state)).toEqual(['done', 'done', 'done', 'done']);
      }
    } finally {
      a.close();
      b.close();
    }
  });

  it('refuses a WebSocket from another origin (403)', async () => {
    const status = await openWs(`${s.origin.replace('http', 'ws')}/api/ws?token=${s.token}`, {
      Origin: 'http://evil.example',
    });
    expect(status).toBe(403);
  });

  it('refuses paths that leave the UI folder', async () => {
    const auth = { Authorization: `Bearer ${s.token}` };
    for (const p of [
      '/../secret.txt',
      '/assets/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/..%2fsecret.txt',
      '/a%5c..%5c..%5csecret.txt',
    ]) {
      const r = await rawGet(s.origin, p, auth);
      expect(r.status, p).not.toBe(200);
      expect(r.body).not.toContain('outside the UI folder');
    }
    expect((await rawGet(s.origin, '/missing.js', auth)).status).toBe(404);
    expect((await rawGet(s.origin, '/some/client/route', auth)).body).toContain('Kitting test page');
  });
});

describe('kitting serve --mdm-dev', () => {
  it('starts the reference MDM server and logs its URL (not its tokens)', async () => {
    const s = await serve(['--simulate', '1', '--mdm-dev']);
    try {
      const m = /reference MDM server at (http:\/\/127\.0\.0\.1:\d+)/.exec(s.stderr());
      expect(m).not.toBeNull();
      const res = await fetch(`${m?.[1] ?? ''}/v1/groups`);
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error?: { code?: string } }).error?.code).toMatch(/^mdm\//);
    } finally {
      expect(await stop(s)).toBe(0);
    }
  });
});
