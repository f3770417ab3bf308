/**
 * The desktop app's lifecycle (issue #7), glue only: single instance, the privileged `app://`
 * protocol serving the built renderer, one secured window with its saved state, the IPC binding,
 * the ja/en menu, the Dock badge and notifications, and a Station over `app.getPath('userData')`
 * whose private keys are sealed by the OS keychain (`safeStorage`; the passphrase vault when the
 * OS offers none). `main.ts` calls {@link startApp}; tests call it with `electron` mocked.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  BrowserWindow,
  Menu,
  Notification,
  app,
  ipcMain,
  net,
  protocol,
  safeStorage,
  screen,
  session,
  shell,
} from 'electron';
import { SafeStorageVault, type Vault } from '../src/identity/vault.ts';
import { createLogger } from '../src/log.ts';
import { resolveStaticPath } from '../src/server/static.ts';
import { Station } from '../src/station.ts';
import { AttentionTracker } from './attention.ts';
import { APP_HOST, APP_ORIGIN, APP_SCHEME, bindStationIpc } from './ipc.ts';
import { menuTemplate } from './menu.ts';
import { lockNavigation, secureSession, webPreferences } from './security.ts';
import { loadWindowState, saveWindowState } from './window-state.ts';

const log = createLogger('electron');
const DOCS_URL = 'https://github.com/kitting-station/kitting-station#readme';

/** What {@link startApp} leaves running (for tests and shutdown). */
export interface RunningApp {
  readonly station: Station;
  readonly window: BrowserWindow;
}

/** The vault: the OS keychain when the OS offers encryption, else none (the passphrase vault is used). */
export function keychainVault(): Vault | undefined {
  try {
    return new SafeStorageVault(safeStorage);
  } catch (err) {
    log.warn('OS keychain unavailable; identities use the passphrase vault', {
      error: err instanceof Error ? err.message : String(err),
    });
    return undefined;
  }
}

/** Must run before `ready`: `app://` is standard and secure (fetch, CSP, storage work as for https). */
export function registerAppScheme(): void {
  protocol.registerSchemesAsPrivileged([
    { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } },
  ]);
}

/** Serves `app://kitting/<path>` from the built renderer folder; other hosts and traversal get 404. */
export function serveRenderer(rendererDir: string): void {
  protocol.handle(APP_SCHEME, (request) => {
    const url = new URL(request.url);
    const file = url.host === APP_HOST ? resolveStaticPath(rendererDir, url.pathname) : null;
    if (file === null) return new Response('not found', { status: 404 });
    return net.fetch(pathToFileURL(file).toString());
  });
}

/**
 * Starts the app. Resolves with the window and station once the window is created, or with
 * undefined when another instance is running (this one quits and the other one is focused).
 */
export async function startApp(appRoot: string = app.getAppPath()): Promise<RunningApp | undefined> {
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return undefined;
  }
  registerAppScheme();
  await app.whenReady();

  const userData = app.getPath('userData');
  const vault = keychainVault();
  const station = new Station({ dataDir: userData, actor: 'app', ...(vault !== undefined ? { vault } : {}) });
  // The MDM syncer runs inside the station once sync is configured: results drain by themselves.
  station.start().catch((err: unknown) => log.warn('station start failed; results stay queued', { err }));
  const lang = (): 'ja' | 'en' => {
    try {
      return station.settings().language;
    } catch {
      return app.getLocale().startsWith('ja') ? 'ja' : 'en';
    }
  };

  serveRenderer(path.join(appRoot, 'dist', 'renderer'));
  secureSession(session.defaultSession);
  Menu.setApplicationMenu(
    Menu.buildFromTemplate(
      menuTemplate(lang(), process.platform === 'darwin', app.getName(), () => void shell.openExternal(DOCS_URL)),
    ),
  );

  const state = loadWindowState(
    userData,
    screen.getAllDisplays().map((d) => d.workArea),
  );
  const win = new BrowserWindow({
    ...(state.x !== undefined && state.y !== undefined ? { x: state.x, y: state.y } : {}),
    width: state.width,
    height: state.height,
    minWidth: 900,
    minHeight: 600,
    show: false,
    title: 'Kitting Station',
    webPreferences: webPreferences(path.join(appRoot, 'dist-electron', 'preload.cjs')),
  });
  if (state.maximized) win.maximize();
  lockNavigation(win.webContents, (url) => void shell.openExternal(url));
  win.once('ready-to-show', () => win.show());
  win.on('close', () => {
    const b = win.getNormalBounds();
    saveWindowState(userData, { x: b.x, y: b.y, width: b.width, height: b.height, maximized: win.isMaximized() });
  });

  const unbind = bindStationIpc(ipcMain, station, () => (win.isDestroyed() ? undefined : win.webContents));
  const attention = new AttentionTracker(lang);
  station.on((event) => {
    const notices = attention.onEvent(event);
    app.setBadgeCount(attention.count);
    if (Notification.isSupported()) for (const n of notices) new Notification(n).show();
  });
  station.watcher().catch((err: unknown) => {
    log.warn('usbmuxd not reachable yet', { error: err instanceof Error ? err.message : String(err) });
  });

  app.on('second-instance', () => {
    if (win.isDestroyed()) return;
    if (win.isMinimized()) win.restore();
    win.focus();
  });
  app.on('window-all-closed', () => app.quit());
  app.on('will-quit', () => {
    unbind();
    void station.close();
  });

  await win.loadURL(`${APP_ORIGIN}/index.html`);
  return { station, window: win };
}
