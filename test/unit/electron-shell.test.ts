/**
 * The Electron shell with `electron` mocked (the binary cannot be downloaded on CI): IPC binds
 * every contract command and refuses untrusted senders, bad input is an error envelope, the preload
 * exposes only invoke/on over `kit:` channels, the window is sandboxed and isolated, navigation and
 * window.open are refused, the CSP header is set, the badge counts devices needing a person, and a
 * finished batch notifies.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { COMMAND_NAMES, type StationEvent } from '../../src/contract.ts';

type Handler = (event: unknown, input: unknown) => Promise<unknown>;
type Listener = (...args: unknown[]) => void;

const m = vi.hoisted(() => {
  const handlers = new Map<string, (event: unknown, input: unknown) => Promise<unknown>>();
  const exposed: Record<string, unknown> = {};
  const rendererListeners = new Map<string, ((...a: unknown[]) => void)[]>();
  const invoked: { channel: string; input: unknown }[] = [];
  const windows: FakeWindow[] = [];
  const notifications: { title: string; body: string }[] = [];
  const badge: number[] = [];
  const appEvents = new Map<string, (...a: unknown[]) => void>();
  let userData = '';
  let headersListener: ((d: unknown, cb: (r: unknown) => void) => void) | undefined;
  class FakeContents {
    readonly listeners = new Map<string, (...a: unknown[]) => void>();
    mainFrame = { url: 'app://kitting/index.html' };
    sent: { channel: string; payload: unknown }[] = [];
    openHandler: ((d: { url: string }) => { action: string }) | undefined;
    on(name: string, fn: (...a: unknown[]) => void): this {
      this.listeners.set(name, fn);
      return this;
    }
    isDestroyed(): boolean {
      return false;
    }
    send(channel: string, payload: unknown): void {
      this.sent.push({ channel, payload });
    }
    setWindowOpenHandler(fn: (d: { url: string }) => { action: string }): void {
      this.openHandler = fn;
    }
  }
  class FakeWindow {
    readonly webContents = new FakeContents();
    readonly options: Record<string, unknown>;
    loaded = '';
    constructor(options: Record<string, unknown>) {
      this.options = options;
      windows.push(this);
    }
    once(): this {
      return this;
    }
    on(): this {
      return this;
    }
    isDestroyed(): boolean {
      return false;
    }
    maximize(): void {}
    loadURL(url: string): Promise<void> {
      this.loaded = url;
      return Promise.resolve();
    }
  }
  return {
    handlers,
    exposed,
    rendererListeners,
    invoked,
    windows,
    notifications,
    badge,
    appEvents,
    FakeWindow,
    FakeContents,
    setUserData: (d: string) => (userData = d),
    getUserData: () => userData,
    headers: () => headersListener,
    setHeaders: (fn: (d: unknown, cb: (r: unknown) => void) => void) => (headersListener = fn),
  };
});

vi.mock('electron', () => ({
  app: {
    requestSingleInstanceLock: () => true,
    quit: vi.fn(),
    exit: vi.fn(),
    whenReady: () => Promise.resolve(),
    getPath: () => m.getUserData(),
    getAppPath: () => '/app',
    getName: () => 'Kitting Station',
    getLocale: () => 'ja-JP',
    setBadgeCount: (n: number) => m.badge.push(n),
    on: (name: string, fn: Listener) => m.appEvents.set(name, fn),
  },
  BrowserWindow: m.FakeWindow,
  Menu: { setApplicationMenu: vi.fn(), buildFromTemplate: (t: unknown) => t },
  Notification: class {
    static isSupported(): boolean {
      return true;
    }
    readonly n: { title: string; body: string };
    constructor(n: { title: string; body: string }) {
      this.n = n;
    }
    show(): void {
      m.notifications.push(this.n);
    }
  },
  ipcMain: {
    handle: (channel: string, fn: Handler) => m.handlers.set(channel, fn),
    removeHandler: (channel: string) => m.handlers.delete(channel),
  },
  net: { fetch: vi.fn() },
  protocol: { registerSchemesAsPrivileged: vi.fn(), handle: vi.fn() },
  safeStorage: {
    isEncryptionAvailable: () => true,
    encryptString: (s: string) => Buffer.from(s, 'utf8').reverse(),
    decryptString: (b: Buffer) => Buffer.from(b).reverse().toString('utf8'),
  },
  screen: { getAllDisplays: () => [{ workArea: { x: 0, y: 0, width: 1920, height: 1080 } }] },
  session: {
    defaultSession: {
      webRequest: { onHeadersReceived: (fn: (d: unknown, cb: (r: unknown) => void) => void) => m.setHeaders(fn) },
      setPermissionRequestHandler: vi.fn(),
    },
  },
  shell: { openExternal: vi.fn() },
  contextBridge: { exposeInMainWorld: (key: string, api: unknown) => (m.exposed[key] = api) },
  ipcRenderer: {
    invoke: (channel: string, input: unknown) => {
      m.invoked.push({ channel, input });
      return Promise.resolve({ ok: true, result: null });
    },
    on: (channel: string, fn: Listener) =>
      m.rendererListeners.set(channel, [...(m.rendererListeners.get(channel) ?? []), fn]),
    removeListener: (channel: string, fn: Listener) =>
      m.rendererListeners.set(
        channel,
        (m.rendererListeners.get(channel) ?? []).filter((f) => f !== fn),
      ),
  },
}));

const { startApp } = await import('../../electron/app.ts');
const { Station } = await import('../../src/station.ts');
// Counted by hand: the project's mock settings may clear spy calls between tests.
let stationStarts = 0;
const originalStart = Station.prototype.start;
Station.prototype.start = function countedStart(this: InstanceType<typeof Station>) {
  stationStarts += 1;
  return originalStart.call(this);
};
const { badgeCount, AttentionTracker } = await import('../../electron/attention.ts');
const { CONTENT_SECURITY_POLICY } = await import('../../electron/security.ts');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-electron-'));
m.setUserData(dir);
process.env.USBMUXD_SOCKET_ADDRESS = `UNIX:${path.join(dir, 'no-usbmuxd.sock')}`;
const running = await startApp('/app');
if (running === undefined) throw new Error('the app did not start');
const win = m.windows[0];
if (win === undefined) throw new Error('no window');

afterAll(async () => {
  await running.station.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function trustedEvent(): unknown {
  return { sender: win?.webContents, senderFrame: win?.webContents.mainFrame };
}

describe('station lifecycle', () => {
  it('starts the station (and with it the MDM syncer) when the app starts', () => {
    expect(stationStarts).toBe(1);
  });
});

describe('IPC binding', () => {
  it('binds exactly one kit: channel per contract command', () => {
    expect([...m.handlers.keys()].sort()).toEqual(COMMAND_NAMES.map((n) => `kit:${n}`).sort());
  });

  it('answers a trusted call through the contract', async () => {
    const r = await m.handlers.get('kit:settings.get')?.(trustedEvent(), {});
    expect(r).toMatchObject({ ok: true, result: { language: 'ja' } });
  });

  it('refuses a subframe, another window, and a page of another origin', async () => {
    const call = m.handlers.get('kit:settings.get');
    const subframe = { sender: win.webContents, senderFrame: { url: 'app://kitting/index.html' } };
    const otherWindow = { sender: new m.FakeContents(), senderFrame: win.webContents.mainFrame };
    const none = { sender: win.webContents, senderFrame: null };
    for (const ev of [subframe, otherWindow, none]) {
      expect(await call?.(ev, {})).toMatchObject({ ok: false, error: { code: 'ipc/untrusted-sender' } });
    }
    win.webContents.mainFrame.url = 'https://evil.example/';
    try {
      expect(await call?.(trustedEvent(), {})).toMatchObject({ ok: false, error: { code: 'ipc/untrusted-sender' } });
    } finally {
      win.webContents.mainFrame.url = 'app://kitting/index.html';
    }
  });

  it('answers bad input with a usage/invalid-argument envelope', async () => {
    const r = await m.handlers.get('kit:jobs.list')?.(trustedEvent(), { status: 'sideways' });
    expect(r).toMatchObject({ ok: false, error: { code: 'usage/invalid-argument', details: { path: 'status' } } });
    const extra = await m.handlers.get('kit:settings.get')?.(trustedEvent(), { evil: true });
    expect(extra).toMatchObject({ ok: false, error: { code: 'usage/invalid-argument' } });
  });
});

describe('window', () => {
  it('is isolated, sandboxed, without Node, with web security, and loads the app origin', () => {
    const wp = win.options.webPreferences as Record<string, unknown>;
    expect(wp).toMatchObject({ contextIsolation: true, sandbox: true, nodeIntegration: false, webSecurity: true });
    expect(wp.preload).toBe(path.join('/app', 'dist-electron', 'preload.cjs'));
    expect(win.loaded).toBe('app://kitting/index.html');
  });

  it('refuses navigation away from the app and every window.open', () => {
    const prevent = vi.fn();
    win.webContents.listeners.get('will-navigate')?.({ preventDefault: prevent }, 'https://evil.example/');
    expect(prevent).toHaveBeenCalledTimes(1);
    const allow = vi.fn();
    win.webContents.listeners.get('will-navigate')?.({ preventDefault: allow }, 'app://kitting/jobs');
    expect(allow).not.toHaveBeenCalled();
    expect(win.webContents.openHandler?.({ url: 'https://example.com/' })).toEqual({ action: 'deny' });
    expect(win.webContents.openHandler?.({ url: 'app://kitting/x' })).toEqual({ action: 'deny' });
  });

  it('sets the CSP header on every response', () => {
    let out: { responseHeaders: Record<string, string[]> } | undefined;
    m.headers()?.({ responseHeaders: { A: ['b'] } }, (r) => (out = r as typeof out));
    expect(out?.responseHeaders['Content-Security-Policy']).toEqual([CONTENT_SECURITY_POLICY]);
    expect(CONTENT_SECURITY_POLICY).toContain("default-src 'none'");
    expect(CONTENT_SECURITY_POLICY).not.toContain('unsafe');
    expect(out?.responseHeaders.A).toEqual(['b']);
  });

  it('forwards station events to the window on kit:event', () => {
    const before = win.webContents.sent.length;
    (running.station as unknown as { emit(e: StationEvent): void }).emit({
      type: 'deviceDetached',
      udid: 'U1',
      at: new Date().toISOString(),
    });
    expect(win.webContents.sent.slice(before)).toEqual([
      { channel: 'kit:event', payload: expect.objectContaining({ type: 'deviceDetached', udid: 'U1' }) },
    ]);
  });
});

describe('Dock badge and notifications', () => {
  beforeEach(() => {
    m.notifications.length = 0;
  });

  it('counts devices with a next action or failed', () => {
    expect(
      badgeCount([
        { state: 'trust-pending', nextAction: 'tap-trust' },
        { state: 'running' },
        { state: 'failed' },
        { state: 'done' },
        { state: 'waiting', nextAction: 'reconnect' },
      ]),
    ).toBe(3);
  });

  it('sets the badge from state events and notifies when a device needs a hand and when a batch ends', () => {
    const emit = (e: StationEvent): void => (running.station as unknown as { emit(e: StationEvent): void }).emit(e);
    const at = new Date().toISOString();
    emit({ type: 'deviceStateChanged', udid: 'A', state: 'locked', nextAction: 'unlock', updatedAt: at, at });
    emit({ type: 'deviceStateChanged', udid: 'B', state: 'running', updatedAt: at, at });
    expect(m.badge.at(-1)).toBe(1);
    expect(m.notifications).toHaveLength(1);
    expect(m.notifications[0]?.body).toContain('A');
    emit({ type: 'deviceStateChanged', udid: 'A', state: 'done', updatedAt: at, at });
    expect(m.badge.at(-1)).toBe(0);
    emit({ type: 'batchFinished', batchId: 'b1', mode: 'batch', at });
    expect(m.notifications.at(-1)?.title).toBe('キッティングが終わりました');
  });

  it('speaks English when the language is en', () => {
    const t = new AttentionTracker(() => 'en');
    const at = new Date().toISOString();
    expect(t.onEvent({ type: 'deviceStateChanged', udid: 'X', state: 'failed', updatedAt: at, at })).toEqual([
      { title: 'A device needs a hand', body: 'X: It failed' },
    ]);
    expect(t.onEvent({ type: 'batchFinished', batchId: 'b', mode: 'watch', at })[0]?.body).toBe(
      '1 device(s) need a hand',
    );
  });
});

describe('preload', () => {
  it('exposes only invoke and on, over kit: channels', async () => {
    await import('../../electron/preload.ts');
    const kit = m.exposed.kit as {
      invoke(c: string, i?: unknown): Promise<unknown>;
      on(l: (e: unknown) => void): () => void;
    };
    expect(Object.keys(m.exposed)).toEqual(['kit']);
    expect(Object.keys(kit).sort()).toEqual(['invoke', 'on']);
    await kit.invoke('devices.list', {});
    expect(m.invoked.at(-1)).toEqual({ channel: 'kit:devices.list', input: {} });
    const n = m.invoked.length;
    await expect(kit.invoke('event')).rejects.toThrow('refused');
    await expect(kit.invoke('../x y')).rejects.toThrow('refused');
    expect(m.invoked).toHaveLength(n);
    const got: unknown[] = [];
    const off = kit.on((e) => got.push(e));
    for (const fn of m.rendererListeners.get('kit:event') ?? []) fn({}, { type: 'x' });
    off();
    expect(m.rendererListeners.get('kit:event')).toEqual([]);
    expect(got).toEqual([{ type: 'x' }]);
  });
});
