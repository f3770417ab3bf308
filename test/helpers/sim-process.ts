/**
 * Test helpers around the virtual fleet: {@link spawnSim} runs `kitting sim` as a child process and
 * parses its ready line; {@link MuxSocket} / {@link muxRequest} / {@link lockdownConnect} speak the
 * usbmuxd and lockdown wire formats with raw sockets (no client code from src/device).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  decodePlist,
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
