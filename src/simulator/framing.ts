/**
 * The simulator's own wire codecs (it shares nothing with the device client on purpose):
 * the 16-byte little-endian usbmuxd header, and the 4-byte big-endian length prefix that lockdownd
 * and the plist services use.
 */

/** usbmuxd message types (usbmuxd-proto.h). */
export const MuxMessage = {
  RESULT: 1,
  CONNECT: 2,
  LISTEN: 3,
  DEVICE_ADD: 4,
  DEVICE_REMOVE: 5,
  DEVICE_PAIRED: 6,
  PLIST: 8,
} as const;

/** usbmuxd result numbers (usbmuxd-proto.h); pair-record commands answer errno values instead. */
export const MuxResult = {
  OK: 0,
  BADCOMMAND: 1,
  BADDEV: 2,
  CONNREFUSED: 3,
  BADVERSION: 6,
} as const;

/** Linux errno values usbmuxd puts in `Number` for pair-record commands. */
export const Errno = { ENOENT: 2, EINVAL: 22 } as const;

/** Size of the usbmuxd header. */
export const MUX_HEADER_SIZE = 16;
/** Linux usbmuxd closes a client whose packet is longer than this (`CMD_BUF_SIZE`). */
export const MUX_MAX_PACKET = 0x10000;

/** One decoded usbmuxd header. */
export interface MuxHeader {
  /** Total packet length including the header. */
  length: number;
  version: number;
  message: number;
  tag: number;
}

/** Encodes one usbmuxd packet (header + payload). */
export function encodeMuxPacket(version: number, message: number, tag: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(MUX_HEADER_SIZE);
  header.writeUInt32LE(MUX_HEADER_SIZE + payload.length, 0);
  header.writeUInt32LE(version, 4);
  header.writeUInt32LE(message, 8);
  header.writeUInt32LE(tag, 12);
  return Buffer.concat([header, payload]);
}

/** Decodes a usbmuxd header from the first 16 bytes of `buf`. */
export function decodeMuxHeader(buf: Buffer): MuxHeader {
  return {
    length: buf.readUInt32LE(0),
    version: buf.readUInt32LE(4),
    message: buf.readUInt32LE(8),
    tag: buf.readUInt32LE(12),
  };
}

/** Prefixes `payload` with its 4-byte big-endian length (lockdown framing). */
export function encodeFrame(payload: Buffer): Buffer {
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(payload.length, 0);
  return Buffer.concat([prefix, payload]);
}

/** Largest lockdown frame the simulator accepts from a client (real lockdownd limits are similar in spirit). */
export const MAX_FRAME = 16 * 1024 * 1024;

/**
 * Accumulates bytes and yields complete 4-byte-big-endian-prefixed frames. `push` throws a
 * RangeError when a length prefix exceeds {@link MAX_FRAME}.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  /** Adds bytes; returns every frame payload now complete. */
  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Buffer[] = [];
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (len > MAX_FRAME) throw new RangeError(`frame length ${len} exceeds ${MAX_FRAME}`);
      if (this.buf.length < 4 + len) break;
      out.push(this.buf.subarray(4, 4 + len));
      this.buf = this.buf.subarray(4 + len);
    }
    return out;
  }
}
