/**
 * One device-side plist connection (lockdownd or a plist service): 4-byte big-endian framed
 * plists in (XML or binary), XML out, one request at a time, optional TLS, and the device's faults
 * applied to every reply.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../log.ts';
import { decodePlist, encodeXml, isPlistDict, type PlistDict } from '../plist/index.ts';
import { startTlsServer, type TlsServerOptions } from './crypto.ts';
import type { FaultSet } from './faults.ts';
import { encodeFrame, FrameReader } from './framing.ts';
import { sleep, type Timing } from './timing.ts';

/** What a handler answers: a reply dict, or nothing (no reply is written). */
export type Reply = PlistDict | undefined;

/** Handles one decoded request. */
export type RequestHandler = (request: PlistDict, conn: PlistConnection) => Promise<Reply>;

/** The name a request goes by in fault specs: `Request`, `RequestType` or `Command`. */
export function requestName(msg: PlistDict): string | undefined {
  for (const k of ['Request', 'RequestType', 'Command', 'MessageType']) {
    const v = msg[k];
    if (typeof v === 'string') return v;
  }
  return undefined;
}

/** Options of a {@link PlistConnection}. */
export interface PlistConnectionOptions {
  socket: Socket;
  faults: FaultSet;
  timing: Timing;
  log: Logger;
  handler: RequestHandler;
  /** Builds the reply for an `error=REQ:CODE` fault (lockdown: `{Request, Error}`). */
  errorReply: (request: PlistDict, code: string) => PlistDict;
  /** Called once when the connection is gone. */
  onClose?: () => void;
  /** Start TLS (as the server) before the first byte, as a service with `EnableServiceSSL` does. */
  tls?: TlsServerOptions | undefined;
}

/** A device-side plist connection; see the module comment. */
export class PlistConnection {
  private stream: Socket | TLSSocket;
  private readonly raw: Socket;
  private reader = new FrameReader();
  private readonly queue: PlistDict[] = [];
  private busy = false;
  private closed = false;
  private bytesWritten = 0;
  private readonly afterReplyActions: { action: () => void | Promise<void>; alsoWhenDropped: boolean }[] = [];
  private readonly opts: PlistConnectionOptions;
  private readonly onData = (chunk: Buffer): void => this.receive(chunk);

  constructor(opts: PlistConnectionOptions) {
    this.opts = opts;
    this.raw = opts.socket;
    this.stream = opts.socket;
    this.raw.once('close', () => this.markClosed());
    if (opts.tls !== undefined) void this.startTls(opts.tls);
    else this.attach(this.stream);
  }

  /** True once the connection is closed. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** True when TLS is running. */
  get secure(): boolean {
    return this.stream !== this.raw;
  }

  private attach(stream: Socket | TLSSocket): void {
    stream.on('data', this.onData);
    stream.on('error', (err: Error) => {
      this.opts.log.debug('connection error', { err });
      this.destroy();
    });
    stream.on('end', () => this.destroy());
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.opts.onClose?.();
  }

  private receive(chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      this.opts.log.warn('bad frame from client', { err });
      this.destroy();
      return;
    }
    for (const frame of frames) {
      let msg: unknown;
      try {
        msg = decodePlist(frame);
      } catch (err) {
        this.opts.log.warn('undecodable request', { err });
        this.destroy();
        return;
      }
      if (!isPlistDict(msg)) {
        this.opts.log.warn('request is not a dictionary');
        this.destroy();
        return;
      }
      this.queue.push(msg);
    }
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (!this.closed && this.queue.length > 0) {
        const msg = this.queue.shift();
        if (msg === undefined) break;
        await this.handle(msg);
      }
    } catch (err) {
      this.opts.log.error('request failed', { err });
      this.destroy();
    } finally {
      this.busy = false;
    }
  }

  private async handle(msg: PlistDict): Promise<void> {
    const name = requestName(msg);
    const { faults, timing } = this.opts;
    this.opts.log.debug('request', { request: name });
    await timing.wait('request');
    const injected = name === undefined ? undefined : faults.take('error', (f) => f.request === name);
    let reply: Reply;
    if (injected !== undefined) {
      reply = this.opts.errorReply(msg, injected.code);
    } else {
      try {
        reply = await this.opts.handler(msg, this);
      } catch (err) {
        this.opts.log.error('handler failed', { err, request: name });
        this.destroy();
        return;
      }
    }
    if (name !== undefined && faults.take('disconnect-after', (f) => f.request === name) !== undefined) {
      this.opts.log.info('fault: dropping the connection after a request', { request: name });
      const kept = this.afterReplyActions.splice(0).filter((a) => a.alsoWhenDropped);
      this.destroy();
      for (const a of kept) await a.action();
      return;
    }
    if (reply !== undefined) await this.send(reply);
    const actions = this.afterReplyActions.splice(0);
    for (const a of actions) await a.action();
  }

  /**
   * Runs `action` right after the reply to the current request was written (e.g. start TLS, close).
   * With `alsoWhenDropped`, it also runs when a `disconnect-after` fault drops the reply: the device
   * did the work (an erase starts), only the answer is lost.
   */
  afterReply(action: () => void | Promise<void>, options: { alsoWhenDropped?: boolean } = {}): void {
    this.afterReplyActions.push({ action, alsoWhenDropped: options.alsoWhenDropped ?? false });
  }

  /** Writes one reply (XML), applying the delay/garbage/oversize/byte-limit faults. */
  async send(reply: PlistDict): Promise<void> {
    if (this.closed) return;
    const { faults } = this.opts;
    const delay = faults.take('delay-ms');
    if (delay !== undefined) await sleep(delay.ms);
    if (this.closed) return;
    let bytes: Buffer;
    if (faults.take('garbage') !== undefined) {
      const junk = Buffer.concat([Buffer.from('\u0000\u00ffnot a plist\u0001'), randomBytes(24)]);
      bytes = encodeFrame(junk);
    } else if (faults.take('oversize-frame') !== undefined) {
      const payload = encodeXml(reply);
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32BE(0x7fffffff, 0);
      bytes = Buffer.concat([prefix, payload]);
    } else {
      bytes = encodeFrame(encodeXml(reply));
    }
    const limit = faults.take('disconnect-after-bytes');
    if (limit !== undefined && this.bytesWritten + bytes.length > limit.bytes) {
      const part = bytes.subarray(0, Math.max(0, limit.bytes - this.bytesWritten));
      this.opts.log.info('fault: resetting the connection mid-frame', { after: limit.bytes });
      if (part.length > 0) this.stream.write(part);
      this.bytesWritten += part.length;
      setImmediate(() => this.reset());
      return;
    }
    this.bytesWritten += bytes.length;
    await new Promise<void>((resolve) => {
      this.stream.write(bytes, () => resolve());
    });
  }

  /**
   * Starts TLS as the server on this connection (after the reply that announced it was written).
   * Any bytes already read past the last frame are handed to TLS.
   */
  async startTls(options: TlsServerOptions): Promise<void> {
    this.stream.removeListener('data', this.onData);
    this.reader = new FrameReader();
    try {
      const tlsSocket = await startTlsServer(this.raw, options);
      this.stream = tlsSocket;
      this.attach(tlsSocket);
    } catch (err) {
      this.opts.log.info('TLS handshake failed', { err });
      this.destroy();
    }
  }

  /** Sends close_notify (when TLS runs) and closes the connection. */
  end(): void {
    if (this.closed) return;
    this.stream.end();
    setTimeout(() => this.destroy(), 200).unref();
  }

  /** Closes the connection at once. */
  destroy(): void {
    if (!this.stream.destroyed) this.stream.destroy();
    if (!this.raw.destroyed) this.raw.destroy();
    this.markClosed();
  }

  /** Aborts with a TCP reset where the platform allows it. */
  reset(): void {
    try {
      if (!this.raw.destroyed) this.raw.resetAndDestroy();
    } catch {
      // Not a TCP socket (unix socket): a plain close is the closest thing to a reset.
    }
    this.destroy();
  }
}
