/**
 * The IPC binding, generated from `src/contract.ts` (architecture.md "IPC"): one
 * `ipcMain.handle('kit:<command>')` per contract command. Every call is checked before anything
 * runs: it must come from the main frame of our window, showing a page of our origin
 * (`app://kitting/`), else it is refused with `ipc/untrusted-sender`. Input is validated by zod in
 * {@link dispatchEnvelope}; answers are always envelopes (`{ok, result}` / `{ok:false, error}`),
 * since thrown errors lose their fields across `ipcMain.handle`.
 */
import type { IpcMainInvokeEvent, WebContents } from 'electron';
import { COMMAND_NAMES, IPC_EVENT_CHANNEL, IPC_PREFIX, dispatchEnvelope, type Envelope } from '../src/contract.ts';
import { KitError } from '../src/errors.ts';
import type { Station } from '../src/station.ts';

/** The app's own origin: the renderer is served by the privileged `app://` protocol. */
export const APP_SCHEME = 'app';
/** Host of every app page: `app://kitting/index.html`. */
export const APP_HOST = 'kitting';
/** URL prefix of every app page. */
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;

/** True when `url` is a page of the app (`app://kitting/…`). */
export function isAppUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === `${APP_SCHEME}:` && u.host === APP_HOST;
  } catch {
    return false;
  }
}

/** What the binding needs of `ipcMain`. */
export interface IpcMainLike {
  handle(channel: string, listener: (event: IpcMainInvokeEvent, input: unknown) => Promise<unknown>): void;
  removeHandler(channel: string): void;
}

/**
 * True when the call comes from the main frame of `contents` (our window) showing an app page.
 * Frames inside the page, other windows and pages navigated elsewhere are refused.
 */
export function isTrustedSender(event: IpcMainInvokeEvent, contents: WebContents | undefined): boolean {
  if (contents === undefined || contents.isDestroyed() || event.sender !== contents) return false;
  const frame = event.senderFrame;
  if (frame === null || frame !== contents.mainFrame) return false;
  return isAppUrl(frame.url);
}

/**
 * Binds every contract command on `ipcMain` for the window `contents()` returns, and forwards
 * every station event to it on `kit:event`. Returns the function that removes it all.
 */
export function bindStationIpc(
  ipcMain: IpcMainLike,
  station: Station,
  contents: () => WebContents | undefined,
): () => void {
  const channels = COMMAND_NAMES.map((name) => IPC_PREFIX + name);
  for (const name of COMMAND_NAMES) {
    ipcMain.handle(IPC_PREFIX + name, async (event, input): Promise<Envelope<unknown>> => {
      if (!isTrustedSender(event, contents())) {
        return {
          ok: false,
          error: new KitError('ipc/untrusted-sender', `kit:${name} from an untrusted frame`).toJSON(),
        };
      }
      return dispatchEnvelope(station, name, input);
    });
  }
  const off = station.on((event) => {
    const wc = contents();
    if (wc !== undefined && !wc.isDestroyed()) wc.send(IPC_EVENT_CHANNEL, event);
  });
  return () => {
    off();
    for (const c of channels) ipcMain.removeHandler(c);
  };
}
