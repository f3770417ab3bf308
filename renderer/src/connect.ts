/** Picks the transport for this window (kept apart from api.ts, which also runs in Node tests). */
import { electronClient, webSocketClient, type KitBridge, type StationClient } from './api.ts';

declare global {
  interface Window {
    kit?: KitBridge;
  }
}

/** The WebSocket address of the page's server, with the page's `?token=`. */
export function webSocketUrl(loc: Location): string {
  const token = new URLSearchParams(loc.search).get('token') ?? '';
  const proto = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = token !== '' ? `?token=${encodeURIComponent(token)}` : '';
  return `${proto}//${loc.host}/api/ws${q}`;
}

/** The client for this window: Electron's bridge when present, else the WebSocket. */
export function createClient(): StationClient {
  if (window.kit !== undefined) return electronClient(window.kit);
  return webSocketClient(webSocketUrl(window.location));
}
