/**
 * Lockdown-style message framing (protocols.md §2.1): every message is a 4-byte big-endian length
 * followed by that many bytes of plist (XML or binary). Used by lockdownd and by the plist services
 * started through it (MCInstall, diagnostics_relay, mobileactivationd …), over a plain or TLS socket.
 *
 * Replies are awaited by promise: bytes are parsed as they arrive and each complete frame resolves
 * the oldest waiting receive. Nothing is polled.
 */
import type { Duplex } from 'node:stream';
import { KitError, type ErrorCode } from '../errors.ts';
import { createLogger } from '../log.ts';
import { decodePlist, encodeBinary, encodeXml, isPlistDict, type PlistDict, type PlistValue } from '../plist/index.ts';
import { ByteQueue } from './byte-queue.ts';

const log = createLogger('device/framing');

/** Largest frame accepted by default: 16 MiB (go-ios uses the same bound). */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** Default time a reply may take. */
export const DEFAULT_REPLY_TIMEOUT_MS = 10_000;

export interface PlistChannelOptions {
  /** Frames whose length prefix exceeds this are refused before any allocation (default 16 MiB). */
  maxFrameBytes?: number;
  /** Default reply timeout for {@link PlistChannel.receive} and {@link PlistChannel.request}. */
  timeoutMs?: number;
  /** Encoding of outgoing messages: XML (what libimobiledevice, go-ios and pymobiledevice3 send) or binary. */
  format?: 'xml' | 'binary';
  /** For error messages and log lines (`lockdown`, `com.apple.mobile.diagnostics_relay` …). */
  label?: string;
  udid?: string;
}

interface Waiter {
  resolve: (v: PlistValue) => void;
  reject: (e: KitError) => void;
  timer: NodeJS.Timeout;
}

/** Encodes one framed message (length prefix + plist). */
export function encodeFrame(message: PlistValue, format: 'xml' | 'binary' = 'xml'): Buffer {
  const body = format === 'xml' ? encodeXml(message) : encodeBinary(message);
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(body.length, 0);
  return Buffer.concat([header, body]);
}

/**
 * A message channel over one socket.
 *
 * Lifecycle: created on a connected socket; {@link request}/{@link send}/{@link receive} while
 * open; {@link detach} hands the socket back (for a TLS upgrade) and {@link close} ends it. The
 * first failure is fatal: the socket is destroyed, every waiting receive is rejected with it, and
 * every later call fails with it too (the stream position is unknown after a timeout or a bad
 * frame, so it is never reused).
 *
 * Errors: `device/timeout` (retryable) when a reply is late; `device/frame-too-large` for a length
 * prefix above the limit (checked before allocating); `device/bad-reply` for bytes that are not a
 * plist (the `plist/malformed` error is its cause) or a reply that is not a dictionary;
 * `device/connection-lost` (retryable) when the peer closes or resets, mid-frame or while a reply is
 * awaited.
 */
export class PlistChannel {
  readonly socket: Duplex;
  private readonly queue = new ByteQueue();
  private readonly frames: PlistValue[] = [];
  private readonly waiters: Waiter[] = [];
  private failureError: KitError | undefined;
  /**
   * Closed by the station (or handed over) with no one waiting: the error later callers get is made
   * when first asked for (a KitError captures a stack; a batch closes thousands of channels).
   */
  private lazyFailure: (() => KitError) | undefined;
  private readonly maxFrameBytes: number;
  private readonly timeoutMs: number;
  private readonly format: 'xml' | 'binary';
  private readonly label: string;
  private readonly udid: string | undefined;
  private detached = false;

  private readonly onData = (chunk: Buffer): void => this.handleData(chunk);
  private readonly onEnd = (): void => this.handleClose(undefined);
  private readonly onClose = (): void => this.handleClose(undefined);
  private readonly onError = (err: Error): void => this.handleClose(err);

  constructor(socket: Duplex, options: PlistChannelOptions = {}) {
    this.socket = socket;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS;
    this.format = options.format ?? 'xml';
    this.label = options.label ?? 'device';
    this.udid = options.udid;
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
    // A socket handed over by usbmux.connect() is explicitly paused; a 'data' listener alone would not resume it.
    socket.resume();
  }

  /** True once the channel failed or was closed. */
  get closed(): boolean {
    return this.failureError !== undefined || this.lazyFailure !== undefined;
  }

  /** Why the channel is closed, or undefined while open. */
  private get failure(): KitError | undefined {
    if (this.failureError === undefined && this.lazyFailure !== undefined) this.failureError = this.lazyFailure();
    return this.failureError;
  }

  private set failure(err: KitError | undefined) {
    this.failureError = err;
  }

  /** Sends one message without waiting. @throws the channel's failure when it is closed. */
  send(message: PlistValue): void {
    if (this.failure !== undefined) throw this.failure;
    this.socket.write(encodeFrame(message, this.format));
  }

  /**
   * The next message from the peer (already received ones first).
   * @throws KitError `device/timeout`, `device/frame-too-large`, `device/bad-reply`, `device/connection-lost`.
   */
  receive(timeoutMs: number = this.timeoutMs): Promise<PlistValue> {
    const ready = this.frames.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise<PlistValue>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          // A reply may sit unread when the event loop was busy past the deadline: let the poll
          // phase read it first (setImmediate runs after it), then decide.
          setImmediate(() => {
            if (!this.waiters.includes(waiter)) return;
            this.fail(
              this.error('device/timeout', `no reply from ${this.label} within ${timeoutMs} ms`, { timeoutMs }),
            );
          });
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  /**
   * Sends `message` and resolves with the next message, which must be a dictionary.
   * @throws KitError as {@link receive}; `device/bad-reply` when the reply is not a dictionary.
   */
  async request(message: PlistValue, options: { timeoutMs?: number } = {}): Promise<PlistDict> {
    this.send(message);
    const reply = await this.receive(options.timeoutMs ?? this.timeoutMs);
    if (!isPlistDict(reply)) {
      const err = this.error('device/bad-reply', `${this.label} replied with a non-dictionary plist`);
      this.fail(err);
      throw err;
    }
    return reply;
  }

  /**
   * Stops reading and returns the socket untouched (for a TLS upgrade on the same connection).
   * Unread bytes are pushed back onto the socket. After this the channel is closed.
   */
  detach(): Duplex {
    this.detached = true;
    this.removeListeners();
    this.socket.pause();
    if (this.queue.length > 0) this.socket.unshift(this.queue.drain());
    if (!this.closed)
      this.lazyFailure = () => this.error('device/connection-lost', `${this.label} channel was handed over`);
    return this.socket;
  }

  /** Ends the connection (half-close, then destroy); pending receives fail with `device/connection-lost`. */
  close(): void {
    if (this.detached) return;
    const closing = (): KitError =>
      this.error('device/connection-lost', `${this.label} connection closed by the station`);
    if (this.waiters.length === 0 && !this.closed) {
      this.lazyFailure = closing;
      this.shutdown();
      return;
    }
    this.fail(closing());
  }

  private error(
    code: ErrorCode,
    message: string,
    details?: Record<string, number | string>,
    cause?: unknown,
  ): KitError {
    return new KitError(code, message, {
      ...(this.udid !== undefined ? { udid: this.udid } : {}),
      ...(details !== undefined ? { details } : {}),
      ...(cause !== undefined ? { cause } : {}),
    });
  }

  private removeListeners(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onClose);
    this.socket.off('error', this.onError);
  }

  private fail(err: KitError): void {
    if (!this.closed) this.failure = err;
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.shutdown();
  }

  /** Stops listening and destroys the socket (unless handed over). */
  private shutdown(): void {
    if (!this.detached) {
      this.removeListeners();
      // Late errors from the destroyed socket must not become unhandled 'error' events.
      this.socket.on('error', () => undefined);
      this.socket.destroy();
    }
  }

  private handleClose(err: Error | undefined): void {
    if (this.closed) return;
    const midFrame = this.queue.length > 0;
    const why = midFrame
      ? `${this.label} connection reset in the middle of a message (${this.queue.length} bytes of it received)`
      : err !== undefined
        ? `${this.label} connection failed: ${err.message}`
        : `${this.label} connection closed by the device`;
    if (this.waiters.length > 0 || midFrame || err !== undefined) {
      log.debug('connection lost', { udid: this.udid, label: this.label, midFrame, error: err });
    }
    this.fail(this.error('device/connection-lost', why, undefined, err));
  }

  private handleData(chunk: Buffer): void {
    if (this.closed) return;
    this.queue.push(chunk);
    for (;;) {
      const prefix = this.queue.peek(4);
      if (prefix === undefined) return;
      const length = prefix.readUInt32BE(0);
      if (length > this.maxFrameBytes) {
        this.fail(
          this.error(
            'device/frame-too-large',
            `${this.label} announced a ${length}-byte message; the limit is ${this.maxFrameBytes}`,
            { length, limit: this.maxFrameBytes },
          ),
        );
        return;
      }
      if (this.queue.length < 4 + length) return;
      this.queue.take(4);
      const body = this.queue.take(length);
      let value: PlistValue;
      try {
        value = decodePlist(body);
      } catch (err) {
        this.fail(
          this.error(
            'device/bad-reply',
            `${this.label} sent a message that is not a plist: ${err instanceof Error ? err.message : String(err)}`,
            { length },
            err,
          ),
        );
        return;
      }
      const waiter = this.waiters.shift();
      if (waiter !== undefined) {
        clearTimeout(waiter.timer);
        waiter.resolve(value);
      } else {
        this.frames.push(value);
      }
    }
  }
}
