/**
 * Where usbmuxd listens (protocols.md §1.1): parsing every `--usbmuxd` / `USBMUXD_SOCKET_ADDRESS`
 * form that the common clients accept, and the per-platform default.
 */
import { KitError } from '../errors.ts';

/** A usbmuxd endpoint: a UNIX stream socket or a TCP address. */
export type UsbmuxdAddress =
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

/** The macOS/Linux socket path and the Windows (Apple Mobile Device Service) TCP endpoint. */
export const DEFAULT_UNIX_PATH = '/var/run/usbmuxd';
export const DEFAULT_WINDOWS_TCP = { host: '127.0.0.1', port: 27015 } as const;

function parsePort(text: string, whole: string): number {
  if (!/^\d{1,5}$/.test(text)) {
    throw new KitError(
      'usage/invalid-argument',
      `usbmuxd address ${JSON.stringify(whole)}: port ${JSON.stringify(text)} is not a number`,
    );
  }
  const port = Number(text);
  if (port < 1 || port > 65535) {
    throw new KitError(
      'usage/invalid-argument',
      `usbmuxd address ${JSON.stringify(whole)}: port ${port} is out of range`,
    );
  }
  return port;
}

function parseHostPort(hp: string, whole: string): UsbmuxdAddress {
  if (hp.startsWith('[')) {
    const end = hp.indexOf(']');
    if (end < 0 || hp[end + 1] !== ':') {
      throw new KitError(
        'usage/invalid-argument',
        `usbmuxd address ${JSON.stringify(whole)}: expected [v6address]:port`,
      );
    }
    return { kind: 'tcp', host: hp.slice(1, end), port: parsePort(hp.slice(end + 2), whole) };
  }
  const colon = hp.lastIndexOf(':');
  const host = hp.slice(0, colon);
  if (colon <= 0 || host.includes(':')) {
    throw new KitError(
      'usage/invalid-argument',
      `usbmuxd address ${JSON.stringify(whole)}: expected host:port (IPv6 as [addr]:port)`,
    );
  }
  return { kind: 'tcp', host, port: parsePort(hp.slice(colon + 1), whole) };
}

/**
 * Parses a usbmuxd address in any form of cli.md: `UNIX:/path` (libusbmuxd), `unix:///path`
 * (go-ios), `/path` or any value without a colon (a UNIX socket path), `host:port`, `[v6]:port`,
 * `tcp://host:port`.
 *
 * @throws KitError `usage/invalid-argument` for an empty value, a bad port or an unknown scheme.
 */
export function parseUsbmuxdAddress(text: string): UsbmuxdAddress {
  const s = text.trim();
  if (s === '') throw new KitError('usage/invalid-argument', 'usbmuxd address is empty');
  const lower = s.toLowerCase();
  if (lower.startsWith('unix://')) {
    const p = s.slice('unix://'.length);
    if (p === '') throw new KitError('usage/invalid-argument', `usbmuxd address ${JSON.stringify(text)}: no path`);
    return { kind: 'unix', path: p };
  }
  if (lower.startsWith('unix:')) {
    const p = s.slice('unix:'.length);
    if (p === '') throw new KitError('usage/invalid-argument', `usbmuxd address ${JSON.stringify(text)}: no path`);
    return { kind: 'unix', path: p };
  }
  if (lower.startsWith('tcp://')) return parseHostPort(s.slice('tcp://'.length).replace(/\/$/, ''), text);
  if (/^[a-z][a-z0-9+.-]*:\/\//.test(lower)) {
    throw new KitError(
      'usage/invalid-argument',
      `usbmuxd address ${JSON.stringify(text)}: unknown scheme (use unix:// or tcp://)`,
    );
  }
  if (s.startsWith('/') || s.startsWith('.') || !s.includes(':')) return { kind: 'unix', path: s };
  return parseHostPort(s, text);
}

/** The platform's usbmuxd: `/var/run/usbmuxd` on macOS and Linux, `127.0.0.1:27015` on Windows. */
export function defaultUsbmuxdAddress(platform: NodeJS.Platform = process.platform): UsbmuxdAddress {
  return platform === 'win32' ? { kind: 'tcp', ...DEFAULT_WINDOWS_TCP } : { kind: 'unix', path: DEFAULT_UNIX_PATH };
}

/**
 * The address to use: `explicit` (the `--usbmuxd` option) if given, else `USBMUXD_SOCKET_ADDRESS`,
 * else the platform default. An already parsed address passes through.
 */
export function resolveUsbmuxdAddress(
  explicit?: string | UsbmuxdAddress,
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): UsbmuxdAddress {
  if (typeof explicit === 'object') return explicit;
  if (explicit !== undefined && explicit !== '') return parseUsbmuxdAddress(explicit);
  const fromEnv = env.USBMUXD_SOCKET_ADDRESS;
  if (fromEnv !== undefined && fromEnv !== '') return parseUsbmuxdAddress(fromEnv);
  return defaultUsbmuxdAddress(platform);
}

/** The libusbmuxd spelling of an address (`UNIX:/path`, `host:port`, `[v6]:port`), for child tools. */
export function formatUsbmuxdAddress(a: UsbmuxdAddress): string {
  if (a.kind === 'unix') return `UNIX:${a.path}`;
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
