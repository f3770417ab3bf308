/**
 * AFC (`com.apple.afc`, protocols.md Appendix A): files on the device's media partition.
 *
 * Packet: a 40-byte header — magic `CFA6LPAA`, then uint64 little-endian `entire_length` (header +
 * header payload + data), `this_length` (header + header payload), `packet_num`, `operation` — then
 * the header payload, then data. Paths travel NUL-terminated in the header payload; `FILE_WRITE`
 * carries the handle in the header payload and the bytes as data. Replies: `STATUS` (uint64 error
 * code, 0 = success), `DATA`, `FILE_OPEN_RES` (uint64 handle). Status codes become KitErrors through
 * {@link AFC_STATUS_CODES}, the one table (libimobiledevice `afc_error_t` numbering).
 */
import type { Duplex } from 'node:stream';
import { KitError, type ErrorCode } from '../../errors.ts';
import { createLogger, type Logger } from '../../log.ts';
import { ByteQueue } from '../byte-queue.ts';
import type { LockdownClient } from '../lockdown.ts';

/** The lockdown service name. */
export const AFC_SERVICE = 'com.apple.afc';

/** AFC operations (libimobiledevice afc.h). */
export const AFC_OP = {
  status: 0x01,
  data: 0x02,
  readDir: 0x03,
  removePath: 0x08,
  makeDir: 0x09,
  getFileInfo: 0x0a,
  fileOpen: 0x0d,
  fileOpenResult: 0x0e,
  fileRead: 0x0f,
  fileWrite: 0x10,
  fileClose: 0x14,
  removePathAndContents: 0x22,
} as const;

/** `FILE_OPEN` modes (Appendix A). */
export const AFC_MODE = {
  /** r */
  readOnly: 1,
  /** r+ */
  readWrite: 2,
  /** w: create or truncate */
  writeOnly: 3,
  /** w+ */
  writeRead: 4,
  /** a */
  append: 5,
  /** a+ */
  appendRead: 6,
} as const;
export type AfcMode = (typeof AFC_MODE)[keyof typeof AFC_MODE];

/** The one table from AFC status codes to station codes; others are `afc/failed` with the number kept. */
export const AFC_STATUS_CODES: Readonly<Record<number, { name: string; code: ErrorCode }>> = {
  1: { name: 'UNKNOWN_ERROR', code: 'afc/failed' },
  2: { name: 'OP_HEADER_INVALID', code: 'afc/failed' },
  3: { name: 'NO_RESOURCES', code: 'afc/failed' },
  4: { name: 'READ_ERROR', code: 'afc/failed' },
  5: { name: 'WRITE_ERROR', code: 'afc/failed' },
  6: { name: 'UNKNOWN_PACKET_TYPE', code: 'afc/failed' },
  7: { name: 'INVALID_ARG', code: 'afc/failed' },
  8: { name: 'OBJECT_NOT_FOUND', code: 'afc/not-found' },
  9: { name: 'OBJECT_IS_DIR', code: 'afc/failed' },
  10: { name: 'PERM_DENIED', code: 'afc/permission-denied' },
  11: { name: 'SERVICE_NOT_CONNECTED', code: 'afc/failed' },
  12: { name: 'OP_TIMEOUT', code: 'afc/failed' },
  13: { name: 'TOO_MUCH_DATA', code: 'afc/failed' },
  14: { name: 'END_OF_DATA', code: 'afc/failed' },
  15: { name: 'OP_NOT_SUPPORTED', code: 'afc/failed' },
  16: { name: 'OBJECT_EXISTS', code: 'afc/exists' },
  17: { name: 'OBJECT_BUSY', code: 'afc/failed' },
  18: { name: 'NO_SPACE_LEFT', code: 'afc/no-space' },
  19: { name: 'OP_WOULD_BLOCK', code: 'afc/failed' },
  20: { name: 'IO_ERROR', code: 'afc/failed' },
  21: { name: 'OP_INTERRUPTED', code: 'afc/failed' },
  22: { name: 'OP_IN_PROGRESS', code: 'afc/failed' },
  23: { name: 'INTERNAL_ERROR', code: 'afc/failed' },
  33: { name: 'DIR_NOT_EMPTY', code: 'afc/dir-not-empty' },
};

const MAGIC = Buffer.from('CFA6LPAA', 'latin1');
const HEADER_BYTES = 40;
/** Largest reply accepted (and largest read chunk requested). */
const MAX_PACKET_BYTES = 16 * 1024 * 1024;
const READ_CHUNK = 1024 * 1024;

/** `GET_FILE_INFO`, typed. Unknown keys stay in `raw`. */
export interface AfcFileInfo {
  /** `S_IFREG` → file, `S_IFDIR` → directory, `S_IFLNK` → link; other values as given. */
  readonly type: 'file' | 'directory' | 'link' | string;
  readonly size: number;
  /** Modification time (ms since the epoch), null when absent. */
  readonly modifiedMs: number | null;
  readonly raw: Readonly<Record<string, string>>;
}

interface Reply {
  op: number;
  header: Buffer;
  data: Buffer;
}

function pathBytes(path: string): Buffer {
  return Buffer.concat([Buffer.from(path, 'utf8'), Buffer.from([0])]);
}

function u64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

/** Splits NUL-separated strings (the last one may lack its NUL). */
function nulStrings(data: Buffer): string[] {
  const text = data.toString('utf8');
  const parts = text.split('\u0000');
  if (parts.at(-1) === '') parts.pop();
  return parts;
}

/**
 * One AFC connection.
 *
 * Lifecycle: {@link AfcClient.start} → operations (queued, one on the wire at a time) →
 * {@link close}. Errors: the codes of {@link AFC_STATUS_CODES} (`afc/not-found`, `afc/exists`,
 * `afc/permission-denied`, `afc/dir-not-empty`, `afc/no-space`, `afc/failed`), `device/timeout`,
 * `device/connection-lost`, `device/bad-reply` (not an AFC packet; the connection is closed).
 */
export class AfcClient {
  readonly udid: string;
  private readonly socket: Duplex;
  private readonly queue = new ByteQueue();
  private readonly timeoutMs: number;
  private readonly log: Logger;
  private packetNum = 0n;
  private failure: KitError | undefined;
  private waiter: { resolve: () => void } | undefined;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(socket: Duplex, udid: string, options: { timeoutMs?: number } = {}) {
    this.socket = socket;
    this.udid = udid;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.log = createLogger('device/afc', { udid });
    socket.on('data', (chunk: Buffer) => {
      this.queue.push(chunk);
      this.wake();
    });
    const lost = (err?: Error): void => {
      this.failure ??= new KitError('device/connection-lost', 'the AFC connection closed', {
        udid,
        ...(err !== undefined ? { cause: err } : {}),
      });
      this.wake();
    };
    socket.on('end', () => lost());
    socket.on('close', () => lost());
    socket.on('error', (err: Error) => lost(err));
    socket.resume();
  }

  /** Starts AFC through a lockdown client in a session. @throws the StartService codes. */
  static async start(
    lockdown: LockdownClient,
    options: { escrowBag?: Buffer; timeoutMs?: number } = {},
  ): Promise<AfcClient> {
    const conn = await lockdown.startRawService(
      AFC_SERVICE,
      options.escrowBag !== undefined ? { escrowBag: options.escrowBag } : {},
    );
    return new AfcClient(
      conn.socket,
      lockdown.udid,
      options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {},
    );
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve();
  }

  private fail(err: KitError): never {
    this.failure ??= err;
    this.socket.on('error', () => undefined);
    this.socket.destroy();
    throw err;
  }

  private async bytes(n: number, deadline: number): Promise<Buffer> {
    while (this.queue.length < n) {
      if (this.failure !== undefined) throw this.failure;
      const left = deadline - Date.now();
      if (left <= 0)
        this.fail(new KitError('device/timeout', `no AFC reply within ${this.timeoutMs} ms`, { udid: this.udid }));
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = {
          resolve: () => {
            clearTimeout(t);
            resolve();
          },
        };
      });
    }
    return this.queue.take(n);
  }

  private async receive(): Promise<Reply> {
    const deadline = Date.now() + this.timeoutMs;
    const header = await this.bytes(HEADER_BYTES, deadline);
    if (!header.subarray(0, 8).equals(MAGIC))
      this.fail(new KitError('device/bad-reply', 'AFC reply without the CFA6LPAA magic', { udid: this.udid }));
    const entire = header.readBigUInt64LE(8);
    const thisLength = header.readBigUInt64LE(16);
    const op = Number(header.readBigUInt64LE(32));
    if (
      entire < BigInt(HEADER_BYTES) ||
      thisLength < BigInt(HEADER_BYTES) ||
      thisLength > entire ||
      entire > BigInt(MAX_PACKET_BYTES)
    ) {
      this.fail(
        new KitError('device/bad-reply', `AFC reply with impossible lengths (${entire}, ${thisLength})`, {
          udid: this.udid,
        }),
      );
    }
    const rest = await this.bytes(Number(entire) - HEADER_BYTES, deadline);
    const split = Number(thisLength) - HEADER_BYTES;
    return { op, header: rest.subarray(0, split), data: rest.subarray(split) };
  }

  /** Sends one packet and awaits its reply; a STATUS other than 0 becomes a KitError. */
  private request(op: number, what: string, headerPayload: Buffer, data: Buffer = Buffer.alloc(0)): Promise<Reply> {
    const run = async (): Promise<Reply> => {
      if (this.failure !== undefined) throw this.failure;
      this.packetNum += 1n;
      const h = Buffer.alloc(HEADER_BYTES);
      MAGIC.copy(h, 0);
      h.writeBigUInt64LE(BigInt(HEADER_BYTES + headerPayload.length + data.length), 8);
      h.writeBigUInt64LE(BigInt(HEADER_BYTES + headerPayload.length), 16);
      h.writeBigUInt64LE(this.packetNum, 24);
      h.writeBigUInt64LE(BigInt(op), 32);
      this.socket.write(Buffer.concat([h, headerPayload, data]));
      const reply = await this.receive();
      if (reply.op === AFC_OP.status) {
        const src = reply.header.length >= 8 ? reply.header : reply.data;
        const status = src.length >= 8 ? Number(src.readBigUInt64LE(0)) : 0;
        if (status !== 0) throw this.statusError(status, what);
      }
      return reply;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private statusError(status: number, what: string): KitError {
    const row = AFC_STATUS_CODES[status];
    this.log.debug('afc error', { what, status });
    return new KitError(row?.code ?? 'afc/failed', `AFC ${what} failed: status ${status} (${row?.name ?? 'unknown'})`, {
      udid: this.udid,
      details: { afcStatus: status, operation: what },
    });
  }

  /** Makes a directory (and its parents). */
  async makeDirectory(path: string): Promise<void> {
    await this.request(AFC_OP.makeDir, `MakeDir ${path}`, pathBytes(path));
  }

  /** Facts about a file or directory. @throws KitError `afc/not-found`. */
  async getFileInfo(path: string): Promise<AfcFileInfo> {
    const reply = await this.request(AFC_OP.getFileInfo, `GetFileInfo ${path}`, pathBytes(path));
    const parts = nulStrings(reply.data);
    const raw: Record<string, string> = {};
    for (let i = 0; i + 1 < parts.length; i += 2) raw[parts[i] as string] = parts[i + 1] as string;
    const ifmt = raw.st_ifmt ?? '';
    const mtime = raw.st_mtime;
    return {
      type: ifmt === 'S_IFREG' ? 'file' : ifmt === 'S_IFDIR' ? 'directory' : ifmt === 'S_IFLNK' ? 'link' : ifmt,
      size: Number(raw.st_size ?? '0'),
      modifiedMs: mtime !== undefined && /^\d+$/.test(mtime) ? Number(BigInt(mtime) / 1_000_000n) : null,
      raw,
    };
  }

  /** Names in a directory (without `.` and `..`). @throws KitError `afc/not-found`. */
  async listDirectory(path: string): Promise<string[]> {
    const reply = await this.request(AFC_OP.readDir, `ReadDir ${path}`, pathBytes(path));
    return nulStrings(reply.data).filter((n) => n !== '.' && n !== '..');
  }

  /** Opens a file; resolves with its handle. @throws KitError `afc/not-found` (read modes), `afc/permission-denied`. */
  async openFile(path: string, mode: AfcMode): Promise<bigint> {
    const reply = await this.request(AFC_OP.fileOpen, `FileOpen ${path}`, Buffer.concat([u64(mode), pathBytes(path)]));
    const src = reply.header.length >= 8 ? reply.header : reply.data;
    if (reply.op !== AFC_OP.fileOpenResult || src.length < 8) {
      throw new KitError('device/bad-reply', `AFC FileOpen answered operation ${reply.op} without a handle`, {
        udid: this.udid,
      });
    }
    return src.readBigUInt64LE(0);
  }

  /** Writes bytes at the handle's position. */
  async writeFile(handle: bigint, data: Buffer): Promise<void> {
    await this.request(AFC_OP.fileWrite, 'FileWrite', u64(handle), data);
  }

  /** Reads up to `length` bytes (fewer at the end of the file). */
  async readFile(handle: bigint, length: number): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let left = length;
    while (left > 0) {
      const want = Math.min(left, READ_CHUNK);
      const reply = await this.request(AFC_OP.fileRead, 'FileRead', Buffer.concat([u64(handle), u64(want)]));
      if (reply.data.length === 0) break;
      chunks.push(reply.data);
      left -= reply.data.length;
    }
    return Buffer.concat(chunks);
  }

  /** Closes a handle. */
  async closeFile(handle: bigint): Promise<void> {
    await this.request(AFC_OP.fileClose, 'FileClose', u64(handle));
  }

  /** Removes a file or an empty directory. @throws KitError `afc/not-found`, `afc/failed` (not empty). */
  async removePath(path: string): Promise<void> {
    await this.request(AFC_OP.removePath, `RemovePath ${path}`, pathBytes(path));
  }

  /** Removes a file or a directory with everything in it. @throws KitError `afc/not-found`. */
  async removePathAndContents(path: string): Promise<void> {
    await this.request(AFC_OP.removePathAndContents, `RemovePathAndContents ${path}`, pathBytes(path));
  }

  /** Writes a whole file (created or truncated). */
  async writeWholeFile(path: string, data: Buffer): Promise<void> {
    const handle = await this.openFile(path, AFC_MODE.writeOnly);
    try {
      if (data.length > 0) await this.writeFile(handle, data);
    } finally {
      await this.closeFile(handle);
    }
  }

  /** Reads a whole file. @throws KitError `afc/not-found`. */
  async readWholeFile(path: string): Promise<Buffer> {
    const info = await this.getFileInfo(path);
    const handle = await this.openFile(path, AFC_MODE.readOnly);
    try {
      return await this.readFile(handle, Math.max(info.size, 0));
    } finally {
      await this.closeFile(handle);
    }
  }

  /** Closes the connection. */
  close(): void {
    this.failure ??= new KitError('device/connection-lost', 'the AFC connection was closed by the station', {
      udid: this.udid,
    });
    this.socket.on('error', () => undefined);
    this.socket.destroy();
    this.wake();
  }
}
