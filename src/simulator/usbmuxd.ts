/**
 * The virtual usbmuxd: the socket protocol of Linux usbmuxd (libimobiledevice/usbmuxd src/client.c)
 * over a unix socket or TCP. Plist protocol v1 (XML; binary requests are accepted too) and the
 * legacy binary v0 Listen/Connect; ListDevices, Listen (+ Attached/Detached/Paired events, tag 0),
 * Connect (byte-swapped PortNumber; afterwards the socket is a raw pipe to the device port),
 * ReadBUID, Read/Save/DeletePairRecord (errno results), ListListeners.
 */
import fs from 'node:fs';
import net from 'node:net';
import { KitError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { decodePlist, encodeXml, isPlistDict, type PlistDict, type PlistValue } from '../plist/index.ts';
import {
  decodeMuxHeader,
  encodeMuxPacket,
  Errno,
  MUX_HEADER_SIZE,
  MUX_MAX_PACKET,
  MuxMessage,
  MuxResult,
} from './framing.ts';
import type { PairRecordStore } from './pair-records.ts';

const log = createLogger('simulator/usbmuxd');

/** What usbmuxd knows about an attached device. */
export interface MuxDevice {
  deviceId: number;
  udid: string;
  productId: number;
  locationId: number;
  speed: number;
}

/** The device side of the virtual bus, as usbmuxd sees it. */
export interface MuxBackend {
  /** Devices currently attached, in attach order. */
  attached(): MuxDevice[];
  /** The handler for a connection to `port` of the attached device `deviceId`: 'nodev', 'refused', or a function taking the socket. */
  connect(deviceId: number, port: number): 'nodev' | 'refused' | ((socket: net.Socket) => void);
  readonly systemBuid: string;
  readonly pairRecords: PairRecordStore;
}

/** Where the virtual usbmuxd listens. */
export type MuxAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** Formats an address the way libusbmuxd's `USBMUXD_SOCKET_ADDRESS` takes it. */
export function formatMuxAddress(a: MuxAddress): string {
  return a.kind === 'unix' ? `UNIX:${a.path}` : `${a.host}:${a.port}`;
}

type ClientState = 'command' | 'listen' | 'connected';

interface MuxClient {
  number: number;
  socket: net.Socket;
  state: ClientState;
  protoVersion: number;
  info: PlistDict;
  buf: Buffer;
}

function deviceDict(d: MuxDevice): PlistDict {
  return {
    ConnectionSpeed: d.speed,
    ConnectionType: 'USB',
    DeviceID: d.deviceId,
    LocationID: d.locationId,
    ProductID: d.productId,
    SerialNumber: d.udid,
  };
}

function attachedMessage(d: MuxDevice): PlistDict {
  return { MessageType: 'Attached', DeviceID: d.deviceId, Properties: deviceDict(d) };
}

/** ntohs on the plist `PortNumber` (which carries the port byte-swapped). */
function swap16(v: number): number {
  return ((v & 0xff) << 8) | ((v >> 8) & 0xff);
}

/** The virtual usbmuxd server; see the module comment. */
export class VirtualUsbmuxd {
  private server: net.Server | undefined;
  private readonly clients = new Set<MuxClient>();
  /**
   * Sockets handed to a device by Connect: usbmuxd no longer parses them, but they still run through
   * it (and may outlive a restart).
   */
  private readonly tunnels = new Set<net.Socket>();
  /** Set by {@link close}: no restart listens again. */
  private stopped = false;
  /** A restart under way (a second request joins it). */
  private restarting: Promise<void> | undefined;
  private nextClientNumber = 1;
  private readonly backend: MuxBackend;
  /** The address actually listened on (a TCP port 0 becomes the real port). */
  address: MuxAddress;

  constructor(backend: MuxBackend, address: MuxAddress) {
    this.backend = backend;
    this.address = address;
  }

  /** Starts listening. */
  async listen(): Promise<void> {
    const server = net.createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (this.address.kind === 'unix') {
        if (fs.existsSync(this.address.path)) fs.rmSync(this.address.path, { force: true });
        server.listen(this.address.path, () => resolve());
      } else {
        server.listen(this.address.port, this.address.host, () => resolve());
      }
    });
    server.on('error', (err) => log.error('usbmuxd server error', { err }));
    const a = server.address();
    if (this.address.kind === 'tcp' && a !== null && typeof a === 'object')
      this.address = { ...this.address, port: a.port };
    log.info('usbmuxd listening', { address: formatMuxAddress(this.address) });
  }

  /**
   * Stops for good: closes every connection (tunnels too) and the listening socket; a restart under
   * way does not listen again.
   */
  async close(): Promise<void> {
    this.stopped = true;
    // A restart under way either stops short of listening again or finishes; then all of it closes.
    await this.restarting?.catch(() => undefined);
    await this.shut(true);
  }

  /**
   * A usbmuxd restart: the listening socket and every Listen/command client close, then it listens
   * again at the same address, without waiting for any host to close anything. The Connect tunnels
   * already handed to devices stay up (they end when the host or the device closes them) unless
   * `cutConnections`, which closes them too, as when the real daemon's process exits. A restart
   * asked for while one is under way joins it.
   * @throws KitError `sim/invalid-state` when the simulator stops meanwhile.
   */
  restart(options: { cutConnections?: boolean } = {}): Promise<void> {
    if (this.restarting === undefined) {
      const run = this.restartOnce(options.cutConnections === true);
      this.restarting = run;
      const done = (): void => {
        if (this.restarting === run) this.restarting = undefined;
      };
      void run.then(done, done);
    }
    return this.restarting;
  }

  private async restartOnce(cutConnections: boolean): Promise<void> {
    if (this.stopped) throw new KitError('sim/invalid-state', 'usbmuxd cannot restart: the simulator has stopped');
    await this.shut(cutConnections);
    if (this.stopped)
      throw new KitError('sim/invalid-state', 'the simulator stopped during the usbmuxd restart: usbmuxd stays down');
    await this.listen();
  }

  /**
   * Closes every client socket and the listening socket, and with `cutTunnels` every tunnel too
   * (then it waits until all of them closed). Without, it never waits on a tunnel: `net.Server`
   * stops listening at `close()`, but calls back only once every connection it accepted ended.
   */
  private async shut(cutTunnels: boolean): Promise<void> {
    for (const c of this.clients) c.socket.destroy();
    this.clients.clear();
    if (cutTunnels) {
      for (const t of this.tunnels) t.destroy();
      this.tunnels.clear();
    }
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      if (cutTunnels) await closed;
    }
    if (this.address.kind === 'unix') fs.rmSync(this.address.path, { force: true });
  }

  /** Tells every Listen client a device arrived. */
  deviceAttached(d: MuxDevice): void {
    for (const c of this.listeners()) this.sendDeviceAdd(c, d);
  }

  /** Tells every Listen client a device left. */
  deviceDetached(deviceId: number): void {
    for (const c of this.listeners()) {
      if (c.protoVersion === 1) this.sendPlist(c, 0, { MessageType: 'Detached', DeviceID: deviceId });
      else this.sendBinary(c, MuxMessage.DEVICE_REMOVE, 0, u32(deviceId));
    }
  }

  /** Tells every Listen client a device was paired (SavePairRecord with its DeviceID). */
  devicePaired(deviceId: number): void {
    for (const c of this.listeners()) {
      if (c.protoVersion === 1) this.sendPlist(c, 0, { MessageType: 'Paired', DeviceID: deviceId });
      else this.sendBinary(c, MuxMessage.DEVICE_PAIRED, 0, u32(deviceId));
    }
  }

  private listeners(): MuxClient[] {
    return [...this.clients].filter((c) => c.state === 'listen' && !c.socket.destroyed);
  }

  private accept(socket: net.Socket): void {
    const client: MuxClient = {
      number: this.nextClientNumber++,
      socket,
      state: 'command',
      protoVersion: 0,
      info: {},
      buf: Buffer.alloc(0),
    };
    this.clients.add(client);
    const onData = (chunk: Buffer): void => {
      client.buf = Buffer.concat([client.buf, chunk]);
      this.process(client, onData);
    };
    socket.on('data', onData);
    socket.on('error', (err) => log.debug('client socket error', { err }));
    socket.on('close', () => this.clients.delete(client));
  }

  private process(client: MuxClient, onData: (chunk: Buffer) => void): void {
    while (client.state !== 'connected' && client.buf.length >= MUX_HEADER_SIZE) {
      const hdr = decodeMuxHeader(client.buf);
      if (hdr.length > MUX_MAX_PACKET || hdr.length < MUX_HEADER_SIZE) {
        log.info('client packet length out of range: closing', { length: hdr.length });
        client.socket.destroy();
        return;
      }
      if (client.buf.length < hdr.length) return;
      const payload = client.buf.subarray(MUX_HEADER_SIZE, hdr.length);
      client.buf = client.buf.subarray(hdr.length);
      try {
        this.handle(client, hdr.version, hdr.message, hdr.tag, payload, onData);
      } catch (err) {
        log.error('usbmuxd request failed: closing the client', { err });
        client.socket.destroy();
        return;
      }
    }
  }

  private handle(
    client: MuxClient,
    version: number,
    message: number,
    tag: number,
    payload: Buffer,
    onData: (chunk: Buffer) => void,
  ): void {
    if (client.state !== 'command') {
      this.sendResult(client, tag, MuxResult.BADCOMMAND);
      client.socket.end();
      return;
    }
    if (version !== 0 && version !== 1) {
      this.sendResult(client, tag, MuxResult.BADVERSION);
      return;
    }
    switch (message) {
      case MuxMessage.PLIST:
        client.protoVersion = 1;
        this.handlePlist(client, tag, payload, onData);
        return;
      case MuxMessage.LISTEN:
        this.sendResult(client, tag, MuxResult.OK);
        this.startListen(client);
        return;
      case MuxMessage.CONNECT: {
        if (payload.length < 8) {
          this.sendResult(client, tag, MuxResult.BADCOMMAND);
          return;
        }
        this.startConnect(client, tag, payload.readUInt32LE(0), payload.readUInt16BE(4), onData);
        return;
      }
      default:
        this.sendResult(client, tag, MuxResult.BADCOMMAND);
    }
  }

  private handlePlist(client: MuxClient, tag: number, payload: Buffer, onData: (chunk: Buffer) => void): void {
    let msg: PlistValue;
    try {
      msg = decodePlist(payload);
    } catch (err) {
      log.info('could not parse a plist request: closing', { err });
      client.socket.destroy();
      return;
    }
    const type = isPlistDict(msg) ? msg.MessageType : undefined;
    if (!isPlistDict(msg) || typeof type !== 'string') {
      log.info('request without MessageType: closing');
      client.socket.destroy();
      return;
    }
    const info: PlistDict = {};
    for (const k of ['BundleID', 'ClientVersionString', 'ProgName', 'kLibUSBMuxVersion']) {
      const v = msg[k];
      if (v !== undefined) info[k] = v;
    }
    client.info = info;
    log.debug('request', { messageType: type, tag, client: client.number });
    const b = this.backend;
    switch (type) {
      case 'Listen':
        this.sendResult(client, tag, MuxResult.OK);
        this.startListen(client);
        return;
      case 'Connect': {
        const id = msg.DeviceID;
        if (typeof id !== 'number') {
          this.sendResult(client, tag, MuxResult.BADDEV);
          return;
        }
        const portNumber = msg.PortNumber;
        if (typeof portNumber !== 'number') {
          this.sendResult(client, tag, MuxResult.BADCOMMAND);
          return;
        }
        this.startConnect(client, tag, id, swap16(portNumber & 0xffff), onData);
        return;
      }
      case 'ListDevices':
        this.sendPlist(client, tag, { DeviceList: b.attached().map(attachedMessage) });
        return;
      case 'ListListeners':
        this.sendPlist(client, tag, {
          ListenerList: this.listeners().map((l) => {
            const progName = typeof l.info.ProgName === 'string' ? l.info.ProgName : 'unknown';
            const entry: PlistDict = { Blacklisted: false };
            if (l.info.BundleID !== undefined) entry.BundleID = l.info.BundleID;
            entry.ConnType = 0;
            entry['ID String'] = `${l.number}-${progName}`;
            entry.ProgName = progName;
            entry.kLibUSBMuxVersion = typeof l.info.kLibUSBMuxVersion === 'number' ? l.info.kLibUSBMuxVersion : 0;
            return entry;
          }),
        });
        return;
      case 'ReadBUID':
        this.sendPlist(client, tag, { BUID: b.systemBuid });
        return;
      case 'ReadPairRecord': {
        const id = msg.PairRecordID;
        if (typeof id !== 'string') {
          this.sendResult(client, tag, Errno.EINVAL);
          return;
        }
        const data = b.pairRecords.read(id);
        if (data === undefined) this.sendResult(client, tag, Errno.ENOENT);
        else this.sendPlist(client, tag, { PairRecordData: data });
        return;
      }
      case 'SavePairRecord': {
        const id = msg.PairRecordID;
        const data = msg.PairRecordData;
        if (typeof id !== 'string' || !Buffer.isBuffer(data)) {
          this.sendResult(client, tag, Errno.EINVAL);
          return;
        }
        const rc = b.pairRecords.save(id, data);
        if (rc === 0) {
          const devId = msg.DeviceID;
          if (typeof devId === 'number' && devId > 0) {
            const dev = b.attached().find((d) => d.deviceId === devId && d.udid === id);
            if (dev !== undefined) this.devicePaired(devId);
            else log.warn('SavePairRecord: DeviceID is not connected', { deviceId: devId, udid: id });
          }
        }
        this.sendResult(client, tag, rc);
        return;
      }
      case 'DeletePairRecord': {
        const id = msg.PairRecordID;
        this.sendResult(client, tag, typeof id === 'string' ? b.pairRecords.delete(id) : Errno.EINVAL);
        return;
      }
      default:
        log.info('unknown usbmuxd command', { messageType: type });
        this.sendResult(client, tag, MuxResult.BADCOMMAND);
    }
  }

  private startListen(client: MuxClient): void {
    client.state = 'listen';
    for (const d of this.backend.attached()) this.sendDeviceAdd(client, d);
  }

  private startConnect(
    client: MuxClient,
    tag: number,
    deviceId: number,
    port: number,
    onData: (chunk: Buffer) => void,
  ): void {
    const target = this.backend.connect(deviceId, port);
    if (target === 'nodev') {
      this.sendResult(client, tag, MuxResult.BADDEV);
      return;
    }
    if (target === 'refused') {
      this.sendResult(client, tag, MuxResult.CONNREFUSED);
      return;
    }
    log.debug('connect', { deviceId, port, client: client.number });
    client.state = 'connected';
    const socket = client.socket;
    const rest = client.buf;
    client.buf = Buffer.alloc(0);
    this.sendResult(client, tag, MuxResult.OK);
    // From here on the socket is the device's: no more usbmuxd framing.
    socket.removeListener('data', onData);
    this.clients.delete(client);
    this.tunnels.add(socket);
    socket.once('close', () => this.tunnels.delete(socket));
    if (rest.length > 0) socket.unshift(rest);
    target(socket);
  }

  private sendDeviceAdd(client: MuxClient, d: MuxDevice): void {
    if (client.protoVersion === 1) {
      this.sendPlist(client, 0, attachedMessage(d));
      return;
    }
    const rec = Buffer.alloc(268);
    rec.writeUInt32LE(d.deviceId, 0);
    rec.writeUInt16LE(d.productId, 4);
    rec.write(d.udid.slice(0, 255), 6, 'latin1');
    rec.writeUInt32LE(d.locationId, 264);
    this.sendBinary(client, MuxMessage.DEVICE_ADD, 0, rec);
  }

  private sendResult(client: MuxClient, tag: number, result: number): void {
    if (client.protoVersion === 1) this.sendPlist(client, tag, { MessageType: 'Result', Number: result });
    else this.sendBinary(client, MuxMessage.RESULT, tag, u32(result));
  }

  private sendPlist(client: MuxClient, tag: number, dict: PlistDict): void {
    if (client.socket.destroyed) return;
    client.socket.write(encodeMuxPacket(1, MuxMessage.PLIST, tag, encodeXml(dict)));
  }

  private sendBinary(client: MuxClient, message: number, tag: number, payload: Buffer): void {
    if (client.socket.destroyed) return;
    client.socket.write(encodeMuxPacket(0, message, tag, payload));
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}
