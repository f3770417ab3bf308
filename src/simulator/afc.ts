/**
 * `com.apple.afc` of a virtual device (protocols.md Appendix A; libimobiledevice src/afc.h): the
 * media partition as an in-memory file tree, and the packet protocol over it.
 *
 * Packet: 40-byte header, every field uint64 little-endian after the magic `CFA6LPAA`:
 * entire_length, this_length (header + header payload), packet_num, operation; then the header
 * payload, then data. Replies echo the request's packet number (libimobiledevice checks it) and
 * have the shapes of the recorded real packets (`/work/shared/fixtures/recorded/afc*.bin`):
 * STATUS (0x01) with the uint64 error code as header payload (this = entire = 48); DATA (0x02) with
 * everything as data (this = 40); FILE_OPEN_RES (0x0E) / FILE_TELL_RES (0x13) with a uint64 header
 * payload. Paths may end with a NUL or not (go-ios sends remove paths without one).
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { startTlsServer } from './crypto.ts';
import type { VirtualDevice } from './device.ts';
import type { ServeOptions } from './services.ts';

/** AFC operations (libimobiledevice afc.h). */
export const AfcOp = {
  STATUS: 0x01,
  DATA: 0x02,
  READ_DIR: 0x03,
  REMOVE_PATH: 0x08,
  MAKE_DIR: 0x09,
  GET_FILE_INFO: 0x0a,
  GET_DEVINFO: 0x0b,
  FILE_OPEN: 0x0d,
  FILE_OPEN_RES: 0x0e,
  FILE_READ: 0x0f,
  FILE_WRITE: 0x10,
  FILE_SEEK: 0x11,
  FILE_TELL: 0x12,
  FILE_TELL_RES: 0x13,
  FILE_CLOSE: 0x14,
  FILE_SET_SIZE: 0x15,
  RENAME_PATH: 0x18,
  REMOVE_PATH_AND_CONTENTS: 0x22,
} as const;

/** AFC error codes (libimobiledevice afc.h `afc_error_t`). */
export const AfcError = {
  SUCCESS: 0,
  UNKNOWN_ERROR: 1,
  OP_HEADER_INVALID: 2,
  INVALID_ARG: 7,
  OBJECT_NOT_FOUND: 8,
  OBJECT_IS_DIR: 9,
  PERM_DENIED: 10,
  OP_NOT_SUPPORTED: 15,
  OBJECT_EXISTS: 16,
  DIR_NOT_EMPTY: 1,
} as const;

/** Names of the operations in fault specs (`error=FileOpen:8`, `disconnect-after=MakeDir`). */
const OP_NAMES: Readonly<Record<number, string>> = {
  [AfcOp.READ_DIR]: 'ReadDir',
  [AfcOp.REMOVE_PATH]: 'RemovePath',
  [AfcOp.MAKE_DIR]: 'MakeDir',
  [AfcOp.GET_FILE_INFO]: 'GetFileInfo',
  [AfcOp.GET_DEVINFO]: 'GetDevInfo',
  [AfcOp.FILE_OPEN]: 'FileOpen',
  [AfcOp.FILE_READ]: 'FileRead',
  [AfcOp.FILE_WRITE]: 'FileWrite',
  [AfcOp.FILE_SEEK]: 'FileSeek',
  [AfcOp.FILE_TELL]: 'FileTell',
  [AfcOp.FILE_CLOSE]: 'FileClose',
  [AfcOp.FILE_SET_SIZE]: 'FileSetSize',
  [AfcOp.RENAME_PATH]: 'RenamePath',
  [AfcOp.REMOVE_PATH_AND_CONTENTS]: 'RemovePathAndContents',
};

const MAGIC = Buffer.from('CFA6LPAA', 'latin1');
const HEADER = 40;

interface Node {
  kind: 'dir' | 'file';
  data: Buffer;
  mtimeNs: bigint;
  birthNs: bigint;
}

function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

/** Normalizes an AFC path to `a/b/c` ('' is the root); undefined when it climbs above the root. */
export function normalizeAfcPath(p: string): string | undefined {
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) return undefined;
      out.pop();
    } else out.push(part);
  }
  return out.join('/');
}

function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

/** The media partition of one device: directories and files in memory. */
export class AfcTree {
  private readonly nodes = new Map<string, Node>();

  constructor() {
    const t = nowNs();
    this.nodes.set('', { kind: 'dir', data: Buffer.alloc(0), mtimeNs: t, birthNs: t });
    for (const d of [
      'AirFair',
      'Books',
      'DCIM',
      'Downloads',
      'MediaAnalysis',
      'PhotoData',
      'Photos',
      'PublicStaging',
      'Radio',
      'Recordings',
      'iTunes_Control',
      'iTunes_Control/iTunes',
    ]) {
      this.nodes.set(d, { kind: 'dir', data: Buffer.alloc(0), mtimeNs: t, birthNs: t });
    }
  }

  /** Number of files and directories (the root not counted). */
  get size(): number {
    return this.nodes.size - 1;
  }

  /** The entry at a normalized path. */
  get(p: string): { kind: 'dir' | 'file'; data: Buffer } | undefined {
    return this.nodes.get(p);
  }

  /** Every path (normalized), sorted. */
  paths(): string[] {
    return [...this.nodes.keys()].filter((p) => p !== '').sort();
  }

  /** Children names of a directory. */
  list(p: string): string[] | undefined {
    const n = this.nodes.get(p);
    if (n?.kind !== 'dir') return undefined;
    const prefix = p === '' ? '' : `${p}/`;
    return [...this.nodes.keys()]
      .filter((k) => k !== p && k.startsWith(prefix) && !k.slice(prefix.length).includes('/'))
      .map((k) => k.slice(prefix.length))
      .sort();
  }

  /** Creates a directory and its parents; an existing directory is fine. */
  mkdir(p: string): number {
    const parts = p.split('/').filter((x) => x !== '');
    let cur = '';
    for (const part of parts) {
      cur = cur === '' ? part : `${cur}/${part}`;
      const n = this.nodes.get(cur);
      if (n === undefined) {
        const t = nowNs();
        this.nodes.set(cur, { kind: 'dir', data: Buffer.alloc(0), mtimeNs: t, birthNs: t });
      } else if (n.kind !== 'dir') return AfcError.OBJECT_EXISTS;
    }
    return AfcError.SUCCESS;
  }

  /** Removes a file or an empty directory. */
  remove(p: string): number {
    if (p === '') return AfcError.PERM_DENIED;
    const n = this.nodes.get(p);
    if (n === undefined) return AfcError.OBJECT_NOT_FOUND;
    if (n.kind === 'dir' && (this.list(p)?.length ?? 0) > 0) return AfcError.DIR_NOT_EMPTY;
    this.nodes.delete(p);
    return AfcError.SUCCESS;
  }

  /** Removes a path and everything below it. */
  removeAll(p: string): number {
    if (p === '') return AfcError.PERM_DENIED;
    if (!this.nodes.has(p)) return AfcError.OBJECT_NOT_FOUND;
    for (const k of [...this.nodes.keys()]) if (k === p || k.startsWith(`${p}/`)) this.nodes.delete(k);
    return AfcError.SUCCESS;
  }

  /** Renames a path (and what is below it). */
  rename(from: string, to: string): number {
    if (from === '' || to === '') return AfcError.PERM_DENIED;
    if (!this.nodes.has(from)) return AfcError.OBJECT_NOT_FOUND;
    if (this.nodes.get(parentOf(to))?.kind !== 'dir') return AfcError.OBJECT_NOT_FOUND;
    for (const k of [...this.nodes.keys()]) {
      if (k === from || k.startsWith(`${from}/`)) {
        const n = this.nodes.get(k) as Node;
        this.nodes.delete(k);
        this.nodes.set(to + k.slice(from.length), n);
      }
    }
    return AfcError.SUCCESS;
  }

  /** Opens (and maybe creates/truncates) a file; returns an error code or the node. */
  open(p: string, mode: number): number | Node {
    const n = this.nodes.get(p);
    if (n?.kind === 'dir') return AfcError.OBJECT_IS_DIR;
    if (mode === 1 || mode === 2) return n ?? AfcError.OBJECT_NOT_FOUND;
    if (mode < 1 || mode > 6) return AfcError.INVALID_ARG;
    if (this.nodes.get(parentOf(p))?.kind !== 'dir') return AfcError.OBJECT_NOT_FOUND;
    if (n !== undefined) {
      if (mode === 3 || mode === 4) {
        n.data = Buffer.alloc(0);
        n.mtimeNs = nowNs();
      }
      return n;
    }
    const t = nowNs();
    const created: Node = { kind: 'file', data: Buffer.alloc(0), mtimeNs: t, birthNs: t };
    this.nodes.set(p, created);
    return created;
  }

  /** The `key\0value\0` pairs of GET_FILE_INFO, or undefined when nothing is there. */
  info(p: string): Buffer | undefined {
    const n = this.nodes.get(p);
    if (n === undefined) return undefined;
    const pairs: [string, string][] = [
      ['st_size', String(n.kind === 'dir' ? 64 + 32 * (this.list(p)?.length ?? 0) : n.data.length)],
      ['st_blocks', String(Math.ceil(n.data.length / 512))],
      ['st_nlink', String(n.kind === 'dir' ? 2 + (this.list(p)?.length ?? 0) : 1)],
      ['st_ifmt', n.kind === 'dir' ? 'S_IFDIR' : 'S_IFREG'],
      ['st_mtime', n.mtimeNs.toString()],
      ['st_birthtime', n.birthNs.toString()],
    ];
    return Buffer.from(pairs.map(([k, v]) => `${k}\0${v}\0`).join(''), 'utf8');
  }
}

interface Handle {
  node: Node;
  pos: number;
  append: boolean;
  readable: boolean;
  writable: boolean;
}

function u64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n), 0);
  return b;
}

/** Builds one AFC packet. */
export function afcPacket(
  op: number,
  packetNum: bigint,
  headerPayload: Buffer,
  data: Buffer = Buffer.alloc(0),
): Buffer {
  const h = Buffer.alloc(HEADER);
  MAGIC.copy(h, 0);
  h.writeBigUInt64LE(BigInt(HEADER + headerPayload.length + data.length), 8);
  h.writeBigUInt64LE(BigInt(HEADER + headerPayload.length), 16);
  h.writeBigUInt64LE(packetNum, 24);
  h.writeBigUInt64LE(BigInt(op), 32);
  return Buffer.concat([h, headerPayload, data]);
}

function pathArg(buf: Buffer): string {
  let end = buf.length;
  while (end > 0 && buf[end - 1] === 0) end--;
  const nul = buf.indexOf(0);
  return buf.subarray(0, nul >= 0 && nul < end ? nul : end).toString('utf8');
}

/** Serves one AFC connection. */
export function serveAfc(device: VirtualDevice, socket: Socket, options: ServeOptions): void {
  const log = device.log.child({ service: 'afc' });
  const handles = new Map<bigint, Handle>();
  let nextHandle = 1n;
  let buf: Buffer = Buffer.alloc(0);
  let stream: Socket | TLSSocket = socket;
  let closed = false;
  let busy = Promise.resolve();
  const untrack = device.track({ destroy: () => destroy() });

  function destroy(): void {
    if (closed) return;
    closed = true;
    untrack();
    stream.destroy();
    socket.destroy();
  }

  const status = (num: bigint, code: number): Buffer => afcPacket(AfcOp.STATUS, num, u64(code));

  function handle(op: number, num: bigint, payload: Buffer, data: Buffer): Buffer {
    const tree = device.afc;
    const path = (b: Buffer): string | undefined => normalizeAfcPath(pathArg(b));
    switch (op) {
      case AfcOp.READ_DIR: {
        const p = path(payload);
        const names = p === undefined ? undefined : tree.list(p);
        if (names === undefined)
          return status(
            num,
            p !== undefined && tree.get(p) !== undefined ? AfcError.INVALID_ARG : AfcError.OBJECT_NOT_FOUND,
          );
        return afcPacket(
          AfcOp.DATA,
          num,
          Buffer.alloc(0),
          Buffer.from(['.', '..', ...names].map((n) => `${n}\0`).join(''), 'utf8'),
        );
      }
      case AfcOp.GET_FILE_INFO: {
        const p = path(payload);
        const info = p === undefined ? undefined : tree.info(p);
        return info === undefined
          ? status(num, AfcError.OBJECT_NOT_FOUND)
          : afcPacket(AfcOp.DATA, num, Buffer.alloc(0), info);
      }
      case AfcOp.GET_DEVINFO: {
        const cap = device.identity.diskCapacity;
        const pairs = [
          ['Model', device.identity.productType],
          ['FSTotalBytes', String(cap)],
          ['FSFreeBytes', String(Math.round(cap * 0.8))],
          ['FSBlockSize', '4096'],
        ];
        return afcPacket(AfcOp.DATA, num, Buffer.alloc(0), Buffer.from(pairs.map(([k, v]) => `${k}\0${v}\0`).join('')));
      }
      case AfcOp.MAKE_DIR: {
        const p = path(payload);
        return status(num, p === undefined ? AfcError.PERM_DENIED : tree.mkdir(p));
      }
      case AfcOp.REMOVE_PATH: {
        const p = path(payload);
        return status(num, p === undefined ? AfcError.PERM_DENIED : tree.remove(p));
      }
      case AfcOp.REMOVE_PATH_AND_CONTENTS: {
        const p = path(payload);
        return status(num, p === undefined ? AfcError.PERM_DENIED : tree.removeAll(p));
      }
      case AfcOp.RENAME_PATH: {
        const nul = payload.indexOf(0);
        if (nul < 0) return status(num, AfcError.INVALID_ARG);
        const from = path(payload.subarray(0, nul));
        const to = path(payload.subarray(nul + 1));
        if (from === undefined || to === undefined) return status(num, AfcError.PERM_DENIED);
        return status(num, tree.rename(from, to));
      }
      case AfcOp.FILE_OPEN: {
        if (payload.length < 9) return status(num, AfcError.INVALID_ARG);
        const mode = Number(payload.readBigUInt64LE(0));
        const p = path(payload.subarray(8));
        if (p === undefined || p === '') return status(num, AfcError.PERM_DENIED);
        const r = tree.open(p, mode);
        if (typeof r === 'number') return status(num, r);
        const h = nextHandle++;
        handles.set(h, {
          node: r,
          pos: 0,
          append: mode === 5 || mode === 6,
          readable: mode !== 3 && mode !== 5,
          writable: mode !== 1,
        });
        return afcPacket(AfcOp.FILE_OPEN_RES, num, u64(h));
      }
      case AfcOp.FILE_READ: {
        if (payload.length < 16) return status(num, AfcError.INVALID_ARG);
        const h = handles.get(payload.readBigUInt64LE(0));
        if (h === undefined || !h.readable) return status(num, AfcError.INVALID_ARG);
        const len = Number(payload.readBigUInt64LE(8));
        const out = h.node.data.subarray(h.pos, h.pos + len);
        h.pos += out.length;
        return afcPacket(AfcOp.DATA, num, Buffer.alloc(0), Buffer.from(out));
      }
      case AfcOp.FILE_WRITE: {
        if (payload.length < 8) return status(num, AfcError.INVALID_ARG);
        const h = handles.get(payload.readBigUInt64LE(0));
        if (h === undefined || !h.writable) return status(num, AfcError.INVALID_ARG);
        // libimobiledevice puts the bytes after the 8-byte handle, as data.
        const bytes = Buffer.concat([payload.subarray(8), data]);
        if (h.append) h.pos = h.node.data.length;
        const end = h.pos + bytes.length;
        const next = Buffer.alloc(Math.max(end, h.node.data.length));
        h.node.data.copy(next, 0);
        bytes.copy(next, h.pos);
        h.node.data = next;
        h.node.mtimeNs = nowNs();
        h.pos = end;
        return status(num, AfcError.SUCCESS);
      }
      case AfcOp.FILE_SEEK: {
        if (payload.length < 24) return status(num, AfcError.INVALID_ARG);
        const h = handles.get(payload.readBigUInt64LE(0));
        if (h === undefined) return status(num, AfcError.INVALID_ARG);
        const whence = Number(payload.readBigUInt64LE(8));
        const offset = Number(payload.readBigInt64LE(16));
        const base = whence === 0 ? 0 : whence === 1 ? h.pos : h.node.data.length;
        if (base + offset < 0) return status(num, AfcError.INVALID_ARG);
        h.pos = base + offset;
        return status(num, AfcError.SUCCESS);
      }
      case AfcOp.FILE_TELL: {
        const h = payload.length >= 8 ? handles.get(payload.readBigUInt64LE(0)) : undefined;
        return h === undefined ? status(num, AfcError.INVALID_ARG) : afcPacket(AfcOp.FILE_TELL_RES, num, u64(h.pos));
      }
      case AfcOp.FILE_SET_SIZE: {
        if (payload.length < 16) return status(num, AfcError.INVALID_ARG);
        const h = handles.get(payload.readBigUInt64LE(0));
        if (h === undefined || !h.writable) return status(num, AfcError.INVALID_ARG);
        const size = Number(payload.readBigUInt64LE(8));
        const next = Buffer.alloc(size);
        h.node.data.copy(next, 0, 0, Math.min(size, h.node.data.length));
        h.node.data = next;
        return status(num, AfcError.SUCCESS);
      }
      case AfcOp.FILE_CLOSE: {
        const key = payload.length >= 8 ? payload.readBigUInt64LE(0) : -1n;
        return status(num, handles.delete(key) ? AfcError.SUCCESS : AfcError.INVALID_ARG);
      }
      default:
        return status(num, AfcError.OP_NOT_SUPPORTED);
    }
  }

  async function onPacket(op: number, num: bigint, payload: Buffer, data: Buffer): Promise<void> {
    const name = OP_NAMES[op];
    await device.timing.wait('request');
    const injected = name === undefined ? undefined : device.faults.take('error', (f) => f.request === name);
    let reply: Buffer;
    if (injected !== undefined) {
      const code = Number(injected.code);
      reply = status(num, Number.isInteger(code) && code >= 0 ? code : AfcError.UNKNOWN_ERROR);
    } else {
      reply = handle(op, num, payload, data);
    }
    if (name !== undefined && device.faults.take('disconnect-after', (f) => f.request === name) !== undefined) {
      log.info('fault: dropping the connection after a request', { request: name });
      destroy();
      return;
    }
    const delay = device.faults.take('delay-ms');
    if (delay !== undefined) await new Promise((r) => setTimeout(r, delay.ms));
    if (!closed) stream.write(reply);
  }

  function receive(chunk: Buffer): void {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= HEADER) {
      if (!buf.subarray(0, 8).equals(MAGIC)) {
        log.warn('AFC packet without the CFA6LPAA magic');
        destroy();
        return;
      }
      const entire = Number(buf.readBigUInt64LE(8));
      const thisLen = Number(buf.readBigUInt64LE(16));
      if (thisLen < HEADER || entire < thisLen || entire > 64 * 1024 * 1024) {
        log.warn('AFC packet with invalid lengths', { entire, thisLen });
        destroy();
        return;
      }
      if (buf.length < entire) return;
      const num = buf.readBigUInt64LE(24);
      const op = Number(buf.readBigUInt64LE(32));
      const payload = Buffer.from(buf.subarray(HEADER, thisLen));
      const data = Buffer.from(buf.subarray(thisLen, entire));
      buf = buf.subarray(entire);
      busy = busy
        .then(() => onPacket(op, num, payload, data))
        .catch((err: unknown) => {
          log.error('AFC request failed', { err });
          destroy();
        });
    }
  }

  const attach = (s: Socket | TLSSocket): void => {
    stream = s;
    s.on('data', receive);
    s.on('error', () => destroy());
    s.on('end', () => destroy());
    s.on('close', () => destroy());
  };
  if (options.tls !== undefined) {
    startTlsServer(socket, options.tls).then(attach, () => destroy());
  } else attach(socket);
}
