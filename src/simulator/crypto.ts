/**
 * Key material and TLS for virtual devices: RSA device keys (a small pool generated lazily with
 * node:crypto and shared within the process), the PKCS#1 `DevicePublicKey`, certificate
 * comparison, and the TLS server a device runs on a lockdown or service connection.
 */
import { createHash, generateKeyPair, X509Certificate, type KeyObject } from 'node:crypto';
import type { Socket } from 'node:net';
import tls from 'node:tls';

/** A device's RSA key pair as PEM strings. */
export interface DeviceKeys {
  /** PKCS#1 `-----BEGIN RSA PUBLIC KEY-----`, the lockdown `DevicePublicKey` format. */
  publicKeyPem: string;
  /** PKCS#8 private key. */
  privateKeyPem: string;
  publicKey: KeyObject;
}

/**
 * How many distinct RSA keys the virtual devices of one process share. An RSA-2048 key costs
 * 50–150 ms of CPU to make; one per device made a 64-device cart spend seconds of the cores it
 * shares with the station at its first `GetValue`. Nothing in lockdown, pairing or TLS needs two
 * devices to hold different keys (each pairing certifies the key its device presents).
 */
export const DEVICE_KEY_POOL_SIZE = 8;

const keyPool = new Map<number, Promise<DeviceKeys>>();

function generateDeviceKeys(): Promise<DeviceKeys> {
  return new Promise<DeviceKeys>((resolve, reject) => {
    generateKeyPair('rsa', { modulusLength: 2048, publicExponent: 0x10001 }, (err, publicKey, privateKey) => {
      if (err !== null) {
        reject(err);
        return;
      }
      resolve({
        publicKeyPem: publicKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
        privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        publicKey,
      });
    });
  });
}

/**
 * The RSA-2048 key of the device with this UDID: one of {@link DEVICE_KEY_POOL_SIZE} keys, chosen
 * by the UDID and generated on first use, so a device keeps its key across reboots and simulator
 * restarts in one process.
 */
export function deviceKeys(udid: string): Promise<DeviceKeys> {
  const slot = createHash('sha256').update(udid).digest().readUInt32BE(0) % DEVICE_KEY_POOL_SIZE;
  let p = keyPool.get(slot);
  if (p === undefined) {
    p = generateDeviceKeys();
    // A failed generation is not kept: the next use tries again.
    p.catch(() => {
      if (keyPool.get(slot) === p) keyPool.delete(slot);
    });
    keyPool.set(slot, p);
  }
  return p;
}

/**
 * DER of PEM texts seen before: a device checks the host certificate of the same pairing on every
 * StartSession, and parsing X.509 each time was the fleet's largest single cost in a 64-device
 * batch. Bounded (emptied past 512 entries).
 */
const derOfPem = new Map<string, Buffer | null>();

/** DER bytes of a PEM certificate (the first one in the text), or undefined when it does not parse. */
export function certificateDer(pem: Buffer | string): Buffer | undefined {
  const key = typeof pem === 'string' ? pem : pem.toString('latin1');
  const known = derOfPem.get(key);
  if (known !== undefined) return known ?? undefined;
  let der: Buffer | null;
  try {
    der = new X509Certificate(pem).raw;
  } catch {
    der = null;
  }
  if (derOfPem.size >= 512) derOfPem.clear();
  derOfPem.set(key, der);
  return der ?? undefined;
}

/** SPKI DER of keys already exported (a device's own key is compared at every pairing). */
const spkiOfKey = new WeakMap<KeyObject, Buffer>();

function spki(key: KeyObject): Buffer {
  let der = spkiOfKey.get(key);
  if (der === undefined) {
    der = key.export({ type: 'spki', format: 'der' });
    spkiOfKey.set(key, der);
  }
  return der;
}

/** True when the certificate `pem` carries `publicKey`. */
export function certificateHasKey(pem: Buffer | string, publicKey: KeyObject): boolean {
  try {
    const cert = new X509Certificate(pem);
    return Buffer.compare(spki(cert.publicKey), spki(publicKey)) === 0;
  } catch {
    return false;
  }
}

/** Options for {@link startTlsServer}. */
export interface TlsServerOptions {
  /** PEM certificate the device presents (the pairing's DeviceCertificate). */
  certPem: Buffer | string;
  /** PEM private key matching the certificate. */
  keyPem: string;
  /** DER certificates a client may present (the pairing's HostCertificate and RootCertificate). */
  acceptedClientCerts: readonly Buffer[];
}

/** Server contexts by certificate then key: a device serves every connection with the same pair. */
const serverContexts = new Map<string, Map<string, tls.SecureContext>>();

/** The device's server context, made once per certificate and key (making one parses both). */
function serverContext(certPem: Buffer | string, keyPem: string): tls.SecureContext {
  const certId = typeof certPem === 'string' ? certPem : certPem.toString('base64');
  let byKey = serverContexts.get(certId);
  if (byKey === undefined) {
    // A bound on a leak only: a fleet has one certificate per virtual device.
    if (serverContexts.size >= 4096) serverContexts.clear();
    byKey = new Map();
    serverContexts.set(certId, byKey);
  }
  let context = byKey.get(keyPem);
  if (context === undefined) {
    context = tls.createSecureContext({
      cert: certPem,
      key: keyPem,
      ciphers: 'DEFAULT:@SECLEVEL=0',
      minVersion: 'TLSv1',
    });
    byKey.set(keyPem, context);
  }
  return context;
}

/**
 * Turns a plain socket into the server side of TLS, the way a device does after `StartSession` or on
 * a service port with `EnableServiceSSL`. Old-style pairing certificates (SHA-1, serial 0, empty
 * DNs) need security level 0. The client certificate is requested and must equal one of
 * `acceptedClientCerts`; otherwise the connection is destroyed. Resolves once the handshake is done.
 */
export function startTlsServer(socket: Socket, options: TlsServerOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    let secureContext: tls.SecureContext;
    try {
      secureContext = serverContext(options.certPem, options.keyPem);
    } catch (err) {
      reject(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    const tlsSocket = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext,
      requestCert: true,
      rejectUnauthorized: false,
    });
    const onError = (err: Error): void => {
      tlsSocket.destroy();
      reject(err);
    };
    tlsSocket.once('error', onError);
    tlsSocket.once('close', () => reject(new Error('connection closed during the TLS handshake')));
    tlsSocket.once('secure', () => {
      tlsSocket.removeListener('error', onError);
      const peer = tlsSocket.getPeerCertificate(true);
      const raw: Buffer | undefined = peer !== null && typeof peer === 'object' && 'raw' in peer ? peer.raw : undefined;
      if (raw === undefined || !options.acceptedClientCerts.some((c) => Buffer.compare(c, raw) === 0)) {
        tlsSocket.destroy();
        reject(new Error('the client presented no certificate of this pairing'));
        return;
      }
      resolve(tlsSocket);
    });
  });
}
