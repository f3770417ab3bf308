/**
 * Test helpers around the virtual fleet: {@link spawnSim} runs `kitting sim` as a child process and
 * parses its ready line; {@link MuxSocket} / {@link muxRequest} / {@link lockdownConnect} speak the
 * usbmuxd and lockdown wire formats with raw sockets (no client code from src/device).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import forge from 'node-forge';
import {
  decodePlist,
  encodeBinary,
  encodeXml,
  isPlistDict,
  type DecodeOptions,
  type PlistDict,
  type PlistValue,
} from '../../src/plist/index.ts';

/** The repository root. */
export const ROOT = path.resolve(import.meta.dirname, '../..');
/** The repo's Node 22. */
export const NODE = path.join(ROOT, 'node_modules/.bin/node');
/** The CLI entry. */
export const KITTING = path.join(ROOT, 'bin/kitting.js');

/** Result of running a command. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program; never rejects for a non-zero exit. */
export function run(
  file: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      [...args],
      { cwd: ROOT, env: { ...process.env, ...options.env }, timeout: options.timeoutMs ?? 60_000, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code =
          err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A running `kitting sim`. */
/** Resolves once every one of `udids` is attached (erases, restarts and reboots take them away a moment). */
export async function allAttached(
  control: { state(udid: string): Promise<{ attached: boolean }> },
  udids: readonly string[],
  tries = 600,
): Promise<void> {
  for (let i = 0; i < tries; i++) {
    const states = await Promise.all(udids.map((u) => control.state(u)));
    if (states.every((s) => s.attached)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('the devices did not come back');
}

export interface SimProcess {
  /** `UNIX:/path` (or `host:port`) as printed. */
  usbmuxd: string;
  /** The control address as printed. */
  control: string;
  /** UDIDs attached at start. */
  devices: string[];
  /** The usbmuxd unix socket path (empty for TCP). */
  socketPath: string;
  /** Runs `kitting sim-ctl --control <control> ...args`. */
  ctl(args: string[]): Promise<RunResult>;
  /** SIGTERM, then wait for exit (SIGKILL after 10 s). */
  stop(): Promise<void>;
  /** Everything the simulator wrote to stderr so far. */
  stderr(): string;
}

/**
 * Spawns `kitting sim ...args` and waits for its ready line. Without `--socket`/`--tcp` a socket in
 * a fresh temp folder is used, so parallel test files never collide.
 */
export async function spawnSim(args: string[]): Promise<SimProcess> {
  const extra: string[] = [];
  let tempDir: string | undefined;
  if (!args.includes('--socket') && !args.includes('--tcp')) {
    tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-simtest-'));
    extra.push('--socket', path.join(tempDir, 'usbmuxd.sock'));
  }
  const child: ChildProcess = spawn(NODE, [KITTING, 'sim', ...args, ...extra], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    stderr += s;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = await new Promise<{ usbmuxd: string; control: string; devices: string[] }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`kitting sim did not print a ready line within 30 s; stderr:\n${stderr}`)),
      30_000,
    );
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (s: string) => {
      stdout += s;
      const nl = stdout.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      try {
        const parsed = JSON.parse(stdout.slice(0, nl)) as {
          ready?: unknown;
          usbmuxd?: unknown;
          control?: unknown;
          devices?: unknown;
        };
        if (
          parsed.ready !== true ||
          typeof parsed.usbmuxd !== 'string' ||
          typeof parsed.control !== 'string' ||
          !Array.isArray(parsed.devices)
        ) {
          reject(new Error(`unexpected ready line: ${stdout}`));
          return;
        }
        resolve({ usbmuxd: parsed.usbmuxd, control: parsed.control, devices: parsed.devices.map(String) });
      } catch (err) {
        reject(new Error(`ready line is not JSON: ${stdout} (${String(err)})`));
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`kitting sim exited with ${String(code)} before it was ready; stderr:\n${stderr}`));
    });
  });
  let stopped = false;
  return {
    ...ready,
    socketPath: ready.usbmuxd.startsWith('UNIX:') ? ready.usbmuxd.slice(5) : '',
    ctl: (ctlArgs) => run(NODE, [KITTING, 'sim-ctl', '--control', ready.control, ...ctlArgs]),
    stderr: () => stderr,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      if (tempDir !== undefined) fs.rmSync(tempDir, { recursive: true, force: true });
    },
  };
}

// ---- raw usbmuxd / lockdown wire -------------------------------------------------------------------

/** A usbmuxd packet as read off the wire. */
export interface MuxPacket {
  length: number;
  version: number;
  message: number;
  tag: number;
  /** The decoded plist (message 8), else undefined. */
  plist: PlistDict | undefined;
  payload: Buffer;
}

/** Splits an address of `USBMUXD_SOCKET_ADDRESS` form into net.connect options. */
export function connectOptions(address: string): net.NetConnectOpts {
  if (address.startsWith('UNIX:')) return { path: address.slice(5) };
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

/** A raw byte reader over a socket: `read(n)` resolves with exactly n bytes, or rejects when the socket closes first. */
export class ByteReader {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private ended = false;
  readonly socket: net.Socket;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.wake();
    });
    const end = (): void => {
      this.ended = true;
      this.wake();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Exactly `n` bytes. */
  async read(n: number, timeoutMs = 10_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.ended) throw new Error(`connection closed after ${this.buf.length} of ${n} bytes`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} bytes (have ${this.buf.length})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return Buffer.from(out);
  }

  /** Everything until the peer closes. */
  async readToEnd(timeoutMs = 10_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the connection to close');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    const out = this.buf;
    this.buf = Buffer.alloc(0);
    return out;
  }

  /** True once the peer closed. */
  get closed(): boolean {
    return this.ended;
  }
}

/** A raw usbmuxd client connection. */
export class MuxSocket {
  readonly reader: ByteReader;
  readonly socket: net.Socket;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.reader = new ByteReader(socket);
  }

  /** Connects to a usbmuxd address (`UNIX:/path` or `host:port`). */
  static connect(address: string): Promise<MuxSocket> {
    return new Promise((resolve, reject) => {
      const s = net.connect(connectOptions(address), () => resolve(new MuxSocket(s)));
      s.once('error', reject);
    });
  }

  /** Sends a plist request (version 1, message 8) with `tag`. */
  send(dict: PlistDict, tag: number): void {
    this.sendRaw(1, 8, tag, encodeXml(dict));
  }

  /** Sends any header + payload. */
  sendRaw(version: number, message: number, tag: number, payload: Buffer): void {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(16 + payload.length, 0);
    h.writeUInt32LE(version, 4);
    h.writeUInt32LE(message, 8);
    h.writeUInt32LE(tag, 12);
    this.socket.write(Buffer.concat([h, payload]));
  }

  /** Reads one usbmuxd packet. */
  async read(timeoutMs = 10_000): Promise<MuxPacket> {
    const h = await this.reader.read(16, timeoutMs);
    const length = h.readUInt32LE(0);
    const payload = await this.reader.read(length - 16, timeoutMs);
    const message = h.readUInt32LE(8);
    let plist: PlistDict | undefined;
    if (message === 8) {
      const v = decodePlist(payload);
      if (isPlistDict(v)) plist = v;
    }
    return { length, version: h.readUInt32LE(4), message, tag: h.readUInt32LE(12), plist, payload };
  }

  close(): void {
    this.socket.destroy();
  }
}

/** One request on a fresh usbmuxd socket; returns the reply packet. */
export async function muxRequest(address: string, dict: PlistDict, tag = 1): Promise<MuxPacket> {
  const s = await MuxSocket.connect(address);
  try {
    s.send(dict, tag);
    return await s.read();
  } finally {
    s.close();
  }
}

/** The attached devices as usbmuxd lists them: `{udid, deviceId}` pairs. */
export async function listDevices(
  address: string,
): Promise<{ udid: string; deviceId: number; properties: PlistDict }[]> {
  const r = await muxRequest(address, { MessageType: 'ListDevices', ProgName: 'vitest', ClientVersionString: 'test' });
  const list = r.plist?.DeviceList;
  if (!Array.isArray(list)) throw new Error('ListDevices reply without DeviceList');
  return list.map((e) => {
    if (!isPlistDict(e) || !isPlistDict(e.Properties)) throw new Error('bad DeviceList entry');
    return { udid: String(e.Properties.SerialNumber), deviceId: Number(e.DeviceID), properties: e.Properties };
  });
}

/** A raw connection to a device port through usbmuxd Connect (4-byte big-endian framed plists). */
export class DeviceSocket {
  readonly reader: ByteReader;
  readonly socket: net.Socket;

  constructor(socket: net.Socket, reader: ByteReader) {
    this.socket = socket;
    this.reader = reader;
  }

  /** Sends one framed XML plist. */
  send(dict: PlistDict): void {
    const body = encodeXml(dict);
    const p = Buffer.alloc(4);
    p.writeUInt32BE(body.length, 0);
    this.socket.write(Buffer.concat([p, body]));
  }

  /** Reads one frame and decodes it. */
  async recv(options?: DecodeOptions): Promise<PlistValue> {
    const len = (await this.reader.read(4)).readUInt32BE(0);
    return decodePlist(await this.reader.read(len), options);
  }

  /** Sends a request and returns the reply dict. */
  async request(dict: PlistDict, options?: DecodeOptions): Promise<PlistDict> {
    this.send(dict);
    const v = await this.recv(options);
    if (!isPlistDict(v)) throw new Error('reply is not a dictionary');
    return v;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Connects to `port` of device `deviceId` (port given normally; it is byte-swapped on the wire). */
export async function deviceConnect(address: string, deviceId: number, port = 62078): Promise<DeviceSocket> {
  const s = await MuxSocket.connect(address);
  s.send(
    { MessageType: 'Connect', DeviceID: deviceId, PortNumber: ((port & 0xff) << 8) | (port >> 8), ProgName: 'vitest' },
    7,
  );
  const r = await s.read();
  if (r.plist?.Number !== 0) {
    s.close();
    throw new Error(`Connect failed: ${JSON.stringify(r.plist)}`);
  }
  return new DeviceSocket(s.socket, s.reader);
}

/** Connects to lockdownd of the device with `udid`. */
export async function lockdownConnect(address: string, udid: string): Promise<DeviceSocket> {
  const dev = (await listDevices(address)).find((d) => d.udid === udid);
  if (dev === undefined) throw new Error(`device ${udid} is not attached`);
  return deviceConnect(address, dev.deviceId);
}

// ---- a host that pairs, runs lockdown sessions and starts services (raw, no src/device code) -----

/** What a pairing host holds (libimobiledevice-style certificates, built with node-forge). */
export interface HostKeys {
  hostId: string;
  systemBuid: string;
  rootCertPem: string;
  rootKeyPem: string;
  hostCertPem: string;
  hostKeyPem: string;
  deviceCertPem: string;
}

let cachedKeys: { root: forge.pki.rsa.KeyPair; host: forge.pki.rsa.KeyPair } | undefined;

function hostKeyPairs(): { root: forge.pki.rsa.KeyPair; host: forge.pki.rsa.KeyPair } {
  if (cachedKeys === undefined) {
    const gen = (): forge.pki.rsa.KeyPair => {
      const k = generateKeyPairSync('rsa', { modulusLength: 2048 });
      return {
        privateKey: forge.pki.privateKeyFromPem(k.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString()),
        publicKey: forge.pki.publicKeyFromPem(k.publicKey.export({ type: 'spki', format: 'pem' }).toString()),
      };
    };
    cachedKeys = { root: gen(), host: gen() };
  }
  return cachedKeys;
}

function pairCert(publicKey: forge.pki.PublicKey, signer: forge.pki.rsa.PrivateKey, ca: boolean): string {
  const c = forge.pki.createCertificate();
  c.publicKey = publicKey;
  c.serialNumber = '00';
  c.validity.notBefore = new Date(Date.now() - 60_000);
  c.validity.notAfter = new Date(Date.now() + 10 * 365 * 86_400_000);
  c.setSubject([]);
  c.setIssuer([]);
  c.setExtensions([{ name: 'basicConstraints', cA: ca, critical: true }]);
  c.sign(signer, forge.md.sha256.create());
  return forge.pki.certificateToPem(c);
}

/** A framed-plist connection to a device service (TLS when the service runs it). */
export class ServiceConnection {
  readonly reader: ByteReader;
  readonly socket: net.Socket;

  constructor(socket: net.Socket) {
    this.socket = socket;
    this.reader = new ByteReader(socket);
  }

  send(dict: PlistDict, binary = false): void {
    const body = binary ? encodeBinary(dict) : encodeXml(dict);
    const p = Buffer.alloc(4);
    p.writeUInt32BE(body.length, 0);
    this.socket.write(Buffer.concat([p, body]));
  }

  async recv(): Promise<PlistDict> {
    const len = (await this.reader.read(4)).readUInt32BE(0);
    const v = decodePlist(await this.reader.read(len));
    if (!isPlistDict(v)) throw new Error('reply is not a dictionary');
    return v;
  }

  async request(dict: PlistDict, binary = false): Promise<PlistDict> {
    this.send(dict, binary);
    return this.recv();
  }

  /** Resolves once the device closed the connection. */
  async waitClosed(timeoutMs = 10_000): Promise<void> {
    await this.reader.readToEnd(timeoutMs);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A host that pairs with one device through the simulator's usbmuxd. */
export class TestHost {
  readonly address: string;
  readonly udid: string;
  readonly keys: HostKeys;

  private constructor(address: string, udid: string, keys: HostKeys) {
    this.address = address;
    this.udid = udid;
    this.keys = keys;
  }

  /** Reads the device's public key and builds pair certificates for it. */
  static async create(address: string, udid: string, systemBuid = 'SIMTEST-BUID', hostId?: string): Promise<TestHost> {
    const ld = await lockdownConnect(address, udid);
    const r = await ld.request({ Label: 'vitest', Key: 'DevicePublicKey', Request: 'GetValue' });
    ld.close();
    if (!Buffer.isBuffer(r.Value)) throw new Error('no DevicePublicKey');
    const { root, host } = hostKeyPairs();
    return new TestHost(address, udid, {
      hostId: hostId ?? randomUUID().toUpperCase(),
      systemBuid,
      rootCertPem: pairCert(root.publicKey, root.privateKey, true),
      rootKeyPem: forge.pki.privateKeyToPem(root.privateKey),
      hostCertPem: pairCert(host.publicKey, root.privateKey, false),
      hostKeyPem: forge.pki.privateKeyToPem(host.privateKey),
      deviceCertPem: pairCert(forge.pki.publicKeyFromPem(r.Value.toString()), root.privateKey, false),
    });
  }

  /** The Pair request's PairRecord. */
  pairRecord(): PlistDict {
    return {
      DeviceCertificate: Buffer.from(this.keys.deviceCertPem),
      HostCertificate: Buffer.from(this.keys.hostCertPem),
      HostID: this.keys.hostId,
      RootCertificate: Buffer.from(this.keys.rootCertPem),
      SystemBUID: this.keys.systemBuid,
    };
  }

  /** One Pair request (with `PairingOptions`); returns the reply. */
  async pair(options: PlistDict = { ExtendedPairingErrors: true }): Promise<PlistDict> {
    const ld = await lockdownConnect(this.address, this.udid);
    try {
      return await ld.request({
        Label: 'vitest',
        PairRecord: this.pairRecord(),
        PairingOptions: options,
        ProtocolVersion: '2',
        Request: 'Pair',
      });
    } finally {
      ld.close();
    }
  }

  /** A lockdown connection in a TLS session. */
  async session(): Promise<ServiceConnection> {
    const ld = await lockdownConnect(this.address, this.udid);
    const r = await ld.request({
      Label: 'vitest',
      HostID: this.keys.hostId,
      SystemBUID: this.keys.systemBuid,
      Request: 'StartSession',
    });
    if (r.Error !== undefined) {
      ld.close();
      throw new Error(`StartSession: ${String(r.Error)}`);
    }
    return new ServiceConnection(await this.tls(ld.socket));
  }

  private tls(socket: net.Socket): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
      socket.removeAllListeners('data');
      socket.removeAllListeners('end');
      socket.removeAllListeners('close');
      const t = tls.connect({
        socket,
        cert: this.keys.hostCertPem,
        key: this.keys.hostKeyPem,
        rejectUnauthorized: false,
        ciphers: 'DEFAULT:@SECLEVEL=0',
        minVersion: 'TLSv1',
      });
      t.once('secureConnect', () => resolve(t));
      t.once('error', reject);
    });
  }

  /** Starts `service` in a fresh session and connects to it (TLS when `EnableServiceSSL`). */
  async service(name: string): Promise<ServiceConnection> {
    const s = await this.session();
    const r = await s.request({ Label: 'vitest', Request: 'StartService', Service: name });
    s.close();
    if (typeof r.Port !== 'number') throw new Error(`StartService ${name}: ${JSON.stringify(r)}`);
    const dev = (await listDevices(this.address)).find((d) => d.udid === this.udid);
    if (dev === undefined) throw new Error(`device ${this.udid} is not attached`);
    const raw = await deviceConnect(this.address, dev.deviceId, r.Port);
    if (r.EnableServiceSSL === true) return new ServiceConnection(await this.tls(raw.socket));
    raw.socket.removeAllListeners('data');
    raw.socket.removeAllListeners('end');
    raw.socket.removeAllListeners('close');
    return new ServiceConnection(raw.socket);
  }
}

/** A supervision identity (RSA, self-signed, Apple Configurator-like) and its .p12. */
export interface SupervisionIdentity {
  certPem: string;
  certDer: Buffer;
  keyPem: string;
  p12: Buffer;
  password: string;
}

/** Makes a supervision identity for organization `org`. */
export function makeSupervisionIdentity(org = 'Kitting Test Org', password = 'p12-pass'): SupervisionIdentity {
  const k = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const priv = forge.pki.privateKeyFromPem(k.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString());
  const c = forge.pki.createCertificate();
  c.publicKey = forge.pki.publicKeyFromPem(k.publicKey.export({ type: 'spki', format: 'pem' }).toString());
  c.serialNumber = '01';
  c.validity.notBefore = new Date(Date.now() - 60_000);
  c.validity.notAfter = new Date(Date.now() + 10 * 365 * 86_400_000);
  const name = [
    { name: 'commonName', value: `Apple Configurator: ${org}` },
    { name: 'organizationName', value: org },
  ];
  c.setSubject(name);
  c.setIssuer(name);
  c.sign(priv, forge.md.sha256.create());
  const p12Asn1 = forge.pkcs12.toPkcs12Asn1(priv, [c], password, { algorithm: '3des' });
  return {
    certPem: forge.pki.certificateToPem(c),
    certDer: Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(c)).getBytes(), 'binary'),
    keyPem: forge.pki.privateKeyToPem(priv),
    p12: Buffer.from(forge.asn1.toDer(p12Asn1).getBytes(), 'binary'),
    password,
  };
}

/** CMS SignedData over `content` (attached unless `detached`), as go-ios (sha1) or pymobiledevice3 (sha256) sign. */
export function cmsSign(
  content: Buffer,
  certPem: string,
  keyPem: string,
  options: { detached?: boolean; digest?: 'sha1' | 'sha256' } = {},
): Buffer {
  const p7 = forge.pkcs7.createSignedData();
  p7.content = forge.util.createBuffer(content.toString('binary'));
  const cert = forge.pki.certificateFromPem(certPem);
  p7.addCertificate(cert);
  p7.addSigner({
    key: forge.pki.privateKeyFromPem(keyPem),
    certificate: cert,
    digestAlgorithm: (options.digest === 'sha1' ? forge.pki.oids.sha1 : forge.pki.oids.sha256) as string,
    authenticatedAttributes: [
      { type: forge.pki.oids.contentType as string, value: forge.pki.oids.data as string },
      { type: forge.pki.oids.messageDigest as string },
    ],
  });
  p7.sign({ detached: options.detached === true });
  return Buffer.from(forge.asn1.toDer(p7.toAsn1()).getBytes(), 'binary');
}

/** A minimal unsigned configuration profile. */
export function profileBytes(identifier: string, displayName = identifier): Buffer {
  return encodeXml({
    PayloadContent: [],
    PayloadDisplayName: displayName,
    PayloadIdentifier: identifier,
    PayloadType: 'Configuration',
    PayloadUUID: randomUUID().toUpperCase(),
    PayloadVersion: 1,
  });
}
