/**
 * usbmuxd client (protocols.md §1): talks to whatever usbmuxd it is given (macOS, Linux, Windows,
 * or any stand-in speaking the same protocol) with the plist protocol: a 16-byte little-endian
 * header, XML plist requests, XML or binary replies, a per-socket tag echoed by replies.
 *
 * Every operation opens a fresh socket (§1.1): a socket that issued `Listen` or a successful
 * `Connect` can never carry another command. Apple's PascalCase keys stay in this file; callers
 * get camelCase types.
 */
import net from 'node:net';
import { KitError, type ErrorCode } from '../errors.ts';
import { createLogger } from '../log.ts';
import { decodePlist, encodeBinary, encodeXml, isPlistDict, type PlistDict, type PlistValue } from '../plist/index.ts';
import { formatUsbmuxdAddress, resolveUsbmuxdAddress, type UsbmuxdAddress } from './address.ts';
import { ByteQueue } from './byte-queue.ts';

export { parseUsbmuxdAddress, resolveUsbmuxdAddress, defaultUsbmuxdAddress, formatUsbmuxdAddress } from './address.ts';
export type { UsbmuxdAddress } from './address.ts';

const log = createLogger('device/usbmux');

/** Header size and message types (§1.2). */
export const USBMUX_HEADER_BYTES = 16;
export const USBMUX_MESSAGE = {
  result: 1,
  connect: 2,
  listen: 3,
  deviceAdd: 4,
  deviceRemove: 5,
  devicePaired: 6,
  plist: 8,
} as const;
/** Largest usbmuxd packet accepted (16 MiB, like go-ios); smaller than 16 is malformed. */
export const USBMUX_MAX_PACKET_BYTES = 16 * 1024 * 1024;
/** lockdownd's TCP port on the device. */
export const LOCKDOWN_PORT = 62078;

/** One decoded usbmuxd packet header. */
export interface UsbmuxHeader {
  /** Total packet length, header included. */
  length: number;
  version: number;
  message: number;
  tag: number;
}

/** Encodes a header + payload packet (length counts the 16-byte header). */
export function encodeUsbmuxPacket(
  payload: Buffer,
  tag: number,
  message: number = USBMUX_MESSAGE.plist,
  version = 1,
): Buffer {
  const header = Buffer.allocUnsafe(USBMUX_HEADER_BYTES);
  header.writeUInt32LE(USBMUX_HEADER_BYTES + payload.length, 0);
  header.writeUInt32LE(version, 4);
  header.writeUInt32LE(message, 8);
  header.writeUInt32LE(tag, 12);
  return Buffer.concat([header, payload]);
}

/** Decodes the first 16 bytes of `buf` as a usbmuxd header. */
export function decodeUsbmuxHeader(buf: Buffer): UsbmuxHeader {
  if (buf.length < USBMUX_HEADER_BYTES) throw new RangeError(`a usbmuxd header is 16 bytes, got ${buf.length}`);
  return {
    length: buf.readUInt32LE(0),
    version: buf.readUInt32LE(4),
    message: buf.readUInt32LE(8),
    tag: buf.readUInt32LE(12),
  };
}

/** The byte-swapped port usbmuxd expects in `Connect.PortNumber` (§1.7: 62078 → 32498). */
export function swapPort(port: number): number {
  return ((port & 0xff) << 8) | ((port >> 8) & 0xff);
}

/** A device as usbmuxd reports it (`Attached` / `DeviceList` entries). */
export interface UsbmuxDevice {
  /** usbmuxd's handle for this attachment; a re-attached device gets a new one. */
  deviceId: number;
  /** `SerialNumber`: the UDID (24-hex serials get the hyphen after 8 digits, like libusbmuxd). */
  udid: string;
  /** `USB` or `Network` (others passed through). */
  connectionType: string;
  locationId: number | undefined;
  productId: number | undefined;
  /** Bits per second, when reported. */
  connectionSpeed: number | undefined;
}

/** An event on a `Listen` socket. */
export type UsbmuxEvent =
  | { type: 'attached'; device: UsbmuxDevice }
  | { type: 'detached'; deviceId: number }
  | { type: 'paired'; deviceId: number };

/** A client registered with usbmuxd (`ListListeners`). */
export interface UsbmuxListenerInfo {
  id: string;
  progName: string | undefined;
  bundleId: string | undefined;
  connType: number | undefined;
  libUsbmuxVersion: number | undefined;
}

/** What a usbmuxd operation was, for error messages and the result table. */
export type UsbmuxOperation =
  | 'ListDevices'
  | 'Listen'
  | 'Connect'
  | 'ReadBUID'
  | 'ReadPairRecord'
  | 'SavePairRecord'
  | 'DeletePairRecord'
  | 'ListListeners';

const PAIR_RECORD_OPS: ReadonlySet<UsbmuxOperation> = new Set(['ReadPairRecord', 'SavePairRecord', 'DeletePairRecord']);

/**
 * The one table from usbmuxd `Result.Number` to error codes (§1.6). Pair-record operations carry
 * errno values instead (Linux usbmuxd: ENOENT 2, EINVAL 22), which {@link usbmuxResultError} maps
 * to `usbmux/pair-record-failed`.
 */
export const USBMUX_RESULTS: Readonly<Record<number, { name: string; code: ErrorCode }>> = {
  1: { name: 'BADCOMMAND', code: 'usbmux/bad-command' },
  2: { name: 'BADDEV', code: 'usbmux/device-gone' },
  3: { name: 'CONNREFUSED', code: 'usbmux/connection-refused' },
  4: { name: 'NOSUCHSERVICE', code: 'usbmux/no-such-service' },
  6: { name: 'BADVERSION', code: 'usbmux/bad-version' },
};

const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: 'EPERM',
  2: 'ENOENT',
  5: 'EIO',
  13: 'EACCES',
  22: 'EINVAL',
  28: 'ENOSPC',
};

/** The KitError for a non-zero `Result.Number` of `op` (one table for every operation). */
export function usbmuxResultError(
  number: number,
  op: UsbmuxOperation,
  context: { udid?: string; deviceId?: number; port?: number } = {},
): KitError {
  const where = [
    context.udid !== undefined ? `udid ${context.udid}` : undefined,
    context.deviceId !== undefined ? `DeviceID ${context.deviceId}` : undefined,
    context.port !== undefined ? `port ${context.port}` : undefined,
  ]
    .filter((s) => s !== undefined)
    .join(', ');
  const suffix = where === '' ? '' : ` (${where})`;
  const details = { number, op };
  const opts = { details, ...(context.udid !== undefined ? { udid: context.udid } : {}) };
  if (PAIR_RECORD_OPS.has(op) && number !== 1 && number !== 6) {
    const name = ERRNO_NAMES[number] ?? `errno ${number}`;
    return new KitError('usbmux/pair-record-failed', `usbmuxd ${op} failed with ${name}${suffix}`, opts);
  }
  const known = USBMUX_RESULTS[number];
  if (known !== undefined) return new KitError(known.code, `usbmuxd ${op}: ${known.name} (${number})${suffix}`, opts);
  return new KitError('usbmux/failed', `usbmuxd ${op} answered Result ${number}${suffix}`, opts);
}

/** Sanitizes a UDID the way libusbmuxd does: a bare 24-hex serial gets a hyphen after 8 digits. */
export function sanitizeUdid(serial: string): string {
  return /^[0-9A-Fa-f]{24}$/.test(serial) ? `${serial.slice(0, 8)}-${serial.slice(8)}` : serial;
}

function intOf(v: PlistValue | undefined): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'bigint' && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= 0n) return Number(v);
  return undefined;
}

function strOf(v: PlistValue | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function badReply(message: string, cause?: unknown): KitError {
  return new KitError('device/bad-reply', `usbmuxd: ${message}`, cause === undefined ? {} : { cause });
}

/** Parses an `Attached` dictionary (or a `DeviceList` entry) into a {@link UsbmuxDevice}. */
export function parseAttached(dict: PlistDict): UsbmuxDevice {
  const props = dict.Properties;
  if (!isPlistDict(props)) throw badReply('device entry without Properties');
  const deviceId = intOf(dict.DeviceID) ?? intOf(props.DeviceID);
  const serial = strOf(props.SerialNumber) ?? strOf(props.UDID);
  if (deviceId === undefined || serial === undefined) throw badReply('device entry without DeviceID or SerialNumber');
  return {
    deviceId,
    udid: sanitizeUdid(serial),
    connectionType: strOf(props.ConnectionType) ?? 'USB',
    locationId: intOf(props.LocationID),
    productId: intOf(props.ProductID),
    connectionSpeed: intOf(props.ConnectionSpeed),
  };
}

/** Parses a `ListDevices` reply. @throws KitError `device/bad-reply` when there is no `DeviceList`. */
export function parseDeviceList(reply: PlistDict): UsbmuxDevice[] {
  const list = reply.DeviceList;
  if (!Array.isArray(list)) throw badReply('ListDevices reply without DeviceList');
  const out: UsbmuxDevice[] = [];
  for (const entry of list) {
    if (isPlistDict(entry)) out.push(parseAttached(entry));
  }
  return out;
}

/** Parses a tag-0 notification on a `Listen` socket; undefined for unknown message types. */
export function parseEvent(dict: PlistDict): UsbmuxEvent | undefined {
  switch (dict.MessageType) {
    case 'Attached':
      return { type: 'attached', device: parseAttached(dict) };
    case 'Detached':
    case 'Paired': {
      const deviceId = intOf(dict.DeviceID);
      if (deviceId === undefined) throw badReply(`${dict.MessageType} without DeviceID`);
      return { type: dict.MessageType === 'Detached' ? 'detached' : 'paired', deviceId };
    }
    default:
      return undefined;
  }
}

/** The decoded payload of one packet as a dictionary (plist v1; binary v0 Result and events converted). */
export function decodeUsbmuxPayload(header: UsbmuxHeader, payload: Buffer): PlistDict {
  if (header.message === USBMUX_MESSAGE.plist) {
    let value: PlistValue;
    try {
      value = decodePlist(payload);
    } catch (err) {
      throw badReply(`packet is not a plist: ${err instanceof Error ? err.message : String(err)}`, err);
    }
    if (!isPlistDict(value)) throw badReply('packet plist is not a dictionary');
    return value;
  }
  // Binary protocol v0 (§1.4): only seen when usbmuxd rejects our version.
  if (header.message === USBMUX_MESSAGE.result && payload.length >= 4) {
    return { MessageType: 'Result', Number: payload.readUInt32LE(0) };
  }
  if (
    (header.message === USBMUX_MESSAGE.deviceRemove || header.message === USBMUX_MESSAGE.devicePaired) &&
    payload.length >= 4
  ) {
    return {
      MessageType: header.message === USBMUX_MESSAGE.deviceRemove ? 'Detached' : 'Paired',
      DeviceID: payload.readUInt32LE(0),
    };
  }
  throw badReply(`unexpected packet type ${header.message} (version ${header.version})`);
}

export interface UsbmuxClientOptions {
  /** Reply timeout per operation (default 10 s). */
  timeoutMs?: number;
  /** `ProgName` sent to usbmuxd (shown by ListListeners). */
  progName?: string;
}

/** A live `Listen` subscription. */
export interface UsbmuxListenHandle {
  /** Closes the listen socket (no further events; `closed` resolves with undefined). */
  close(): void;
  /** Resolves when the socket ends: with the error when it was lost, undefined when closed by us. */
  readonly closed: Promise<KitError | undefined>;
}

interface PendingReply {
  resolve: (d: PlistDict) => void;
  reject: (e: KitError) => void;
}

/**
 * What requests on a connection the station closed get. One object for all: closing an idle
 * connection (most of them carry one request) needs no new error, and a KitError captures a stack.
 */
const CLOSED_BY_STATION = new KitError('usbmux/unavailable', 'usbmuxd connection closed by the station');

/** One usbmuxd socket: tag-correlated requests and tag-0 notifications. Internal to this file. */
class UsbmuxSocket {
  readonly socket: net.Socket;
  private readonly queue = new ByteQueue();
  private readonly pending = new Map<number, PendingReply>();
  private nextTag = 1;
  private failure: KitError | undefined;
  private handedOver = false;
  onNotify: ((d: PlistDict) => void) | undefined;
  onFail: ((e: KitError) => void) | undefined;
  /** Set by connect(): stop parsing right after the reply with this tag. */
  private stopAfterTag: number | undefined;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
  }

  private readonly onData = (chunk: Buffer): void => this.handleData(chunk);
  private readonly onClose = (): void =>
    this.fail(new KitError('usbmux/unavailable', 'usbmuxd closed the connection', { retryable: true }));
  private readonly onError = (err: Error): void =>
    this.fail(new KitError('usbmux/unavailable', `usbmuxd connection failed: ${err.message}`, { cause: err }));

  /** Opens a socket to usbmuxd. @throws KitError `usbmux/unavailable` (ENOENT, ECONNREFUSED, EACCES, timeout). */
  static open(address: UsbmuxdAddress, timeoutMs: number): Promise<UsbmuxSocket> {
    return new Promise((resolve, reject) => {
      const socket =
        address.kind === 'unix'
          ? net.createConnection({ path: address.path })
          : net.createConnection({ host: address.host, port: address.port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new KitError(
            'usbmux/unavailable',
            `usbmuxd at ${formatUsbmuxdAddress(address)} did not accept a connection within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        socket.setNoDelay(true);
        resolve(new UsbmuxSocket(socket));
      });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(
          new KitError(
            'usbmux/unavailable',
            `cannot connect to usbmuxd at ${formatUsbmuxdAddress(address)}: ${err.code ?? err.message}`,
            {
              cause: err,
              details: { errno: err.code ?? 'unknown' },
            },
          ),
        );
      });
    });
  }

  request(body: PlistDict, timeoutMs: number, op: UsbmuxOperation, stopAfter = false): Promise<PlistDict> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const tag = this.nextTag++;
    if (stopAfter) this.stopAfterTag = tag;
    return new Promise<PlistDict>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(tag);
        const err = new KitError('device/timeout', `usbmuxd did not answer ${op} within ${timeoutMs} ms`, {
          details: { timeoutMs, op },
        });
        reject(err);
        this.fail(err);
      }, timeoutMs);
      this.pending.set(tag, {
        resolve: (d) => {
          clearTimeout(timer);
          resolve(d);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.write(encodeUsbmuxPacket(encodeXml(body), tag));
    });
  }

  /** Stops parsing and hands the raw socket over; bytes after the last packet are put back. */
  handOver(): net.Socket {
    this.handedOver = true;
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onClose);
    this.socket.off('error', this.onError);
    this.socket.pause();
    if (this.queue.length > 0) this.socket.unshift(this.queue.drain());
    return this.socket;
  }

  close(): void {
    this.fail(undefined);
  }

  private fail(err: KitError | undefined): void {
    if (this.handedOver) return;
    const first = this.failure === undefined;
    this.failure ??= err ?? CLOSED_BY_STATION;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
    this.socket.off('data', this.onData);
    this.socket.destroy();
    if (first && err !== undefined) this.onFail?.(err);
  }

  private handleData(chunk: Buffer): void {
    if (this.failure !== undefined) return;
    this.queue.push(chunk);
    while (this.queue.length >= USBMUX_HEADER_BYTES && this.stopAfterTag !== -1) {
      const header = decodeUsbmuxHeader(this.queue.peek(USBMUX_HEADER_BYTES) as Buffer);
      if (header.length < USBMUX_HEADER_BYTES || header.length > USBMUX_MAX_PACKET_BYTES) {
        this.fail(
          header.length < USBMUX_HEADER_BYTES
            ? badReply(`packet length ${header.length} is shorter than its header`)
            : new KitError(
                'device/frame-too-large',
                `usbmuxd announced a ${header.length}-byte packet; the limit is ${USBMUX_MAX_PACKET_BYTES}`,
                {
                  details: { length: header.length, limit: USBMUX_MAX_PACKET_BYTES },
                },
              ),
        );
        return;
      }
      if (this.queue.length < header.length) return;
      this.queue.take(USBMUX_HEADER_BYTES);
      const payload = this.queue.take(header.length - USBMUX_HEADER_BYTES);
      let dict: PlistDict;
      try {
        dict = decodeUsbmuxPayload(header, payload);
      } catch (err) {
        this.fail(err instanceof KitError ? err : badReply(String(err), err));
        return;
      }
      const waiter = this.pending.get(header.tag);
      if (waiter !== undefined && (header.tag !== 0 || dict.MessageType === 'Result')) {
        this.pending.delete(header.tag);
        if (this.stopAfterTag === header.tag) this.stopAfterTag = -1;
        waiter.resolve(dict);
      } else if (header.tag === 0 && this.onNotify !== undefined) {
        this.onNotify(dict);
      } else {
        log.debug('unexpected usbmuxd packet', { tag: header.tag, messageType: strOf(dict.MessageType) });
      }
    }
  }
}

function resultNumber(reply: PlistDict): number | undefined {
  return reply.MessageType === 'Result' ? intOf(reply.Number) : undefined;
}

/**
 * The usbmuxd client. Stateless apart from its address: every method opens its own socket and
 * closes it when done (except {@link connect}, which returns the socket, and {@link listen}).
 *
 * Errors common to all methods: `usbmux/unavailable` (daemon socket missing or refusing,
 * retryable), `device/timeout` (no reply), `device/bad-reply` (not a plist, missing keys),
 * `device/frame-too-large`.
 */
export class UsbmuxClient {
  readonly address: UsbmuxdAddress;
  private readonly timeoutMs: number;
  private readonly progName: string;

  /** @param address `--usbmuxd` text or a parsed address; default `USBMUXD_SOCKET_ADDRESS` or the platform's. */
  constructor(address?: string | UsbmuxdAddress, options: UsbmuxClientOptions = {}) {
    this.address = resolveUsbmuxdAddress(address);
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.progName = options.progName ?? 'kitting';
  }

  private message(type: string, extra: PlistDict = {}): PlistDict {
    return {
      MessageType: type,
      ClientVersionString: 'kitting-station 0.1.0',
      ProgName: this.progName,
      kLibUSBMuxVersion: 3,
      ...extra,
    };
  }

  /** Opens a socket, sends one request, returns its reply, closes. */
  private async once(op: UsbmuxOperation, extra: PlistDict = {}): Promise<PlistDict> {
    const s = await UsbmuxSocket.open(this.address, this.timeoutMs);
    try {
      return await s.request(this.message(op, extra), this.timeoutMs, op);
    } finally {
      s.close();
    }
  }

  private async expectOk(op: UsbmuxOperation, extra: PlistDict, context: { udid?: string } = {}): Promise<void> {
    const reply = await this.once(op, extra);
    const n = resultNumber(reply);
    if (n === undefined) throw badReply(`${op} reply without a Result`);
    if (n !== 0) throw usbmuxResultError(n, op, context);
  }

  /** Every device usbmuxd sees (USB and network). */
  async listDevices(): Promise<UsbmuxDevice[]> {
    const reply = await this.once('ListDevices');
    const n = resultNumber(reply);
    if (n !== undefined && n !== 0) throw usbmuxResultError(n, 'ListDevices');
    return parseDeviceList(reply);
  }

  /**
   * Subscribes to attach/detach/paired events on a dedicated socket. `onEvent` first receives one
   * `attached` per device already present, then live events. The returned handle's `closed`
   * resolves with a KitError when usbmuxd goes away (e.g. restarts).
   * @throws KitError `usbmux/unavailable`, or the Result's code when usbmuxd refuses `Listen`.
   */
  async listen(onEvent: (event: UsbmuxEvent) => void): Promise<UsbmuxListenHandle> {
    const s = await UsbmuxSocket.open(this.address, this.timeoutMs);
    let settle: (e: KitError | undefined) => void = () => undefined;
    const closed = new Promise<KitError | undefined>((resolve) => {
      settle = resolve;
    });
    let ours = false;
    s.onFail = (e) => settle(ours ? undefined : e);
    s.onNotify = (dict) => {
      let event: UsbmuxEvent | undefined;
      try {
        event = parseEvent(dict);
      } catch (err) {
        log.warn('ignoring a malformed usbmuxd event', { error: err });
        return;
      }
      if (event !== undefined) onEvent(event);
    };
    let reply: PlistDict;
    try {
      reply = await s.request(this.message('Listen', { ConnType: 1 }), this.timeoutMs, 'Listen');
    } catch (err) {
      s.close();
      throw err;
    }
    const n = resultNumber(reply);
    if (n !== 0) {
      s.close();
      throw n === undefined ? badReply('Listen reply without a Result') : usbmuxResultError(n, 'Listen');
    }
    return {
      close: () => {
        ours = true;
        s.close();
        settle(undefined);
      },
      closed,
    };
  }

  /**
   * Opens a TCP connection to `port` on the device. Resolves with the raw socket once usbmuxd
   * answers Result 0; from then on the socket is a byte pipe to the device.
   * @throws KitError `usbmux/device-gone` (BADDEV), `usbmux/connection-refused` (nothing listening, retryable), …
   */
  async connect(deviceId: number, port: number, context: { udid?: string } = {}): Promise<net.Socket> {
    const s = await UsbmuxSocket.open(this.address, this.timeoutMs);
    let reply: PlistDict;
    try {
      reply = await s.request(
        this.message('Connect', { DeviceID: deviceId, PortNumber: swapPort(port) }),
        this.timeoutMs,
        'Connect',
        true,
      );
    } catch (err) {
      s.close();
      throw err;
    }
    const n = resultNumber(reply);
    if (n !== 0) {
      s.close();
      throw n === undefined
        ? badReply('Connect reply without a Result')
        : usbmuxResultError(n, 'Connect', { ...context, deviceId, port });
    }
    return s.handOver();
  }

  /** The host's SystemBUID (a UUID string). */
  async readBuid(): Promise<string> {
    const reply = await this.once('ReadBUID');
    const buid = strOf(reply.BUID);
    if (buid === undefined) {
      const n = resultNumber(reply);
      throw n !== undefined && n !== 0 ? usbmuxResultError(n, 'ReadBUID') : badReply('ReadBUID reply without BUID');
    }
    return buid;
  }

  /**
   * The pair record usbmuxd holds for `udid`, decoded (binary or XML plist inside `PairRecordData`),
   * or null when there is none.
   * @throws KitError `device/bad-reply` when the record is not a plist dictionary.
   */
  async readPairRecord(udid: string): Promise<PlistDict | null> {
    const reply = await this.once('ReadPairRecord', { PairRecordID: udid });
    const data = reply.PairRecordData;
    if (data instanceof Buffer) {
      let value: PlistValue;
      try {
        value = decodePlist(data);
      } catch (err) {
        throw new KitError('pairing/invalid-record', `the pair record usbmuxd holds for ${udid} is not a plist`, {
          udid,
          cause: err,
        });
      }
      if (!isPlistDict(value))
        throw new KitError('pairing/invalid-record', `the pair record for ${udid} is not a dictionary`, { udid });
      return value;
    }
    const n = resultNumber(reply);
    // Only protocol-level refusals are errors. Any other answer without data means "no record":
    // Linux usbmuxd says ENOENT (2), Apple's numbers are unconfirmed, and pymobiledevice3 and
    // go-ios read every reply without PairRecordData as "not paired" (protocols.md §1.5).
    if (n === 1 || n === 6) throw usbmuxResultError(n, 'ReadPairRecord', { udid });
    if (n !== undefined && n !== 2) log.debug('ReadPairRecord: no record', { udid, number: n });
    return null;
  }

  /**
   * Stores a pair record in usbmuxd (binary plist, like libimobiledevice) so other tools see it.
   * With `deviceId`, usbmuxd tells its listeners the device is `Paired`.
   * @throws KitError `usbmux/pair-record-failed`.
   */
  async savePairRecord(udid: string, record: PlistDict | Buffer, deviceId?: number): Promise<void> {
    const data = record instanceof Buffer ? record : encodeBinary(record);
    const extra: PlistDict = { PairRecordID: udid, PairRecordData: data };
    if (deviceId !== undefined) extra.DeviceID = deviceId;
    await this.expectOk('SavePairRecord', extra, { udid });
  }

  /** Deletes the pair record of `udid`; resolves false when there was none. @throws KitError `usbmux/pair-record-failed`. */
  async deletePairRecord(udid: string): Promise<boolean> {
    const reply = await this.once('DeletePairRecord', { PairRecordID: udid });
    const n = resultNumber(reply);
    if (n === undefined) throw badReply('DeletePairRecord reply without a Result');
    if (n === 2) return false;
    if (n !== 0) throw usbmuxResultError(n, 'DeletePairRecord', { udid });
    return true;
  }

  /** The clients currently registered with usbmuxd. */
  async listListeners(): Promise<UsbmuxListenerInfo[]> {
    const reply = await this.once('ListListeners');
    const list = reply.ListenerList;
    if (!Array.isArray(list)) {
      const n = resultNumber(reply);
      throw n !== undefined && n !== 0
        ? usbmuxResultError(n, 'ListListeners')
        : badReply('ListListeners reply without ListenerList');
    }
    return list.filter(isPlistDict).map((d) => ({
      id: strOf(d['ID String']) ?? '',
      progName: strOf(d.ProgName),
      bundleId: strOf(d.BundleID),
      connType: intOf(d.ConnType),
      libUsbmuxVersion: intOf(d.kLibUSBMuxVersion),
    }));
  }
}
