/**
 * TLS on an existing device connection (protocols.md §3.5): the host is the TLS client and
 * presents the pair record's host certificate; the device is the server and nobody verifies its
 * certificate. Pair certificates are old-style (SHA-1, serial 0, empty DNs), so OpenSSL's security
 * level is lowered to 0; the protocol range follows the device's iOS version.
 */
import { constants, createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { KitError } from '../errors.ts';
import type { PairRecord } from './pairing.ts';

/** Handshake time limit (pymobiledevice3 uses 10 s too). */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** The major iOS version of a `ProductVersion` (`"17.5.1"` → 17); undefined when unknown. */
export function majorVersion(productVersion: string | undefined): number | undefined {
  if (productVersion === undefined) return undefined;
  const m = /^(\d+)/.exec(productVersion);
  return m === null ? undefined : Number(m[1]);
}

/**
 * TLS client options for a device: host certificate and key from `record`; `SECLEVEL=0`; TLS 1.0+
 * for iOS < 10 or an unknown version, TLS 1.2+ otherwise; legacy renegotiation allowed; no
 * verification of the device.
 */
export function deviceTlsOptions(
  record: Pick<PairRecord, 'hostCertificate' | 'hostPrivateKey'>,
  productVersion?: string,
): tls.ConnectionOptions {
  const major = majorVersion(productVersion);
  return {
    cert: record.hostCertificate,
    key: record.hostPrivateKey,
    rejectUnauthorized: false,
    ciphers: 'DEFAULT:@SECLEVEL=0',
    minVersion: major === undefined || major < 10 ? 'TLSv1' : 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    // Old iOS lacks RFC 5746 secure renegotiation; OpenSSL 3 refuses such servers unless told
    // otherwise (libimobiledevice and pymobiledevice3 set the same option).
    secureOptions: constants.SSL_OP_LEGACY_SERVER_CONNECT,
    // Device certificates have empty names; there is nothing to match.
    checkServerIdentity: () => undefined,
  };
}

/** Secure contexts by the options that make them (see {@link secureContextFor}). */
const contexts = new Map<string, tls.SecureContext>();
/** Distinct pair records of one station are few (one host key per process); this only bounds a leak. */
const MAX_CONTEXTS = 64;
/** The options {@link deviceTlsOptions} sets that go into a secure context (the cache key). */
const CONTEXT_OPTIONS = ['cert', 'key', 'ciphers', 'minVersion', 'maxVersion', 'secureOptions'] as const;
/** Other context options: with any of them set, tls.connect builds the context itself. */
const OTHER_CONTEXT_OPTIONS = new Set([
  'secureContext',
  'ca',
  'pfx',
  'passphrase',
  'crl',
  'dhparam',
  'ecdhCurve',
  'honorCipherOrder',
  'secureProtocol',
  'sigalgs',
  'privateKeyEngine',
  'privateKeyIdentifier',
  'clientCertEngine',
  'sessionIdContext',
  'ticketKeys',
  'sessionTimeout',
  'allowPartialTrustChain',
]);

function keyPart(v: unknown): string {
  if (v === undefined) return '';
  if (typeof v === 'string' || typeof v === 'number') return `${typeof v}:${v}`;
  if (Buffer.isBuffer(v)) return `b:${createHash('sha256').update(v).digest('base64')}`;
  return `j:${createHash('sha256').update(JSON.stringify(v)).digest('base64')}`;
}

/**
 * The secure context `tls.connect` would build from `options`, built once per distinct certificate,
 * key, ciphers, protocol range and secure options (building one parses the key and certificate and
 * costs about as much as the rest of the handshake on the client side). Options that already carry
 * a `secureContext`, or set something else a context is made of, get none (tls.connect builds it).
 */
function secureContextFor(options: tls.ConnectionOptions): tls.SecureContext | undefined {
  const o = options as Record<string, unknown>;
  if (Object.keys(o).some((k) => o[k] !== undefined && OTHER_CONTEXT_OPTIONS.has(k))) return undefined;
  const id = CONTEXT_OPTIONS.map((k) => keyPart(o[k])).join('|');
  let context = contexts.get(id);
  if (context === undefined) {
    context = tls.createSecureContext(options);
    if (contexts.size >= MAX_CONTEXTS) contexts.clear();
    contexts.set(id, context);
  }
  return context;
}

/**
 * Starts TLS as client on `socket` and resolves once the handshake is done.
 * @throws KitError `device/tls-failed` when the handshake fails or the device closes it (often:
 * the pairing was removed on the device), `device/timeout` after {@link TLS_HANDSHAKE_TIMEOUT_MS}.
 */
export function startTls(
  socket: Duplex,
  options: tls.ConnectionOptions,
  context: { udid?: string; label?: string; timeoutMs?: number } = {},
): Promise<tls.TLSSocket> {
  const label = context.label ?? 'device';
  const timeoutMs = context.timeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS;
  const udid = context.udid !== undefined ? { udid: context.udid } : {};
  return new Promise((resolve, reject) => {
    const secureContext = secureContextFor(options);
    const secure = tls.connect({ ...options, ...(secureContext !== undefined ? { secureContext } : {}), socket });
    let done = false;
    const finish = (err: KitError | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      secure.off('secureConnect', onSecure);
      secure.off('error', onError);
      secure.off('close', onClose);
      if (err === undefined) {
        resolve(secure);
      } else {
        secure.on('error', () => undefined);
        secure.destroy();
        reject(err);
      }
    };
    const onSecure = (): void => finish(undefined);
    const onError = (err: Error): void =>
      finish(
        new KitError('device/tls-failed', `TLS handshake with ${label} failed: ${err.message}`, {
          ...udid,
          cause: err,
        }),
      );
    const onClose = (): void =>
      finish(new KitError('device/tls-failed', `${label} closed the connection during the TLS handshake`, udid));
    const timer = setTimeout(
      () =>
        finish(
          new KitError('device/timeout', `TLS handshake with ${label} took longer than ${timeoutMs} ms`, {
            ...udid,
            details: { timeoutMs },
          }),
        ),
      timeoutMs,
    );
    secure.once('secureConnect', onSecure);
    secure.once('error', onError);
    secure.once('close', onClose);
  });
}
