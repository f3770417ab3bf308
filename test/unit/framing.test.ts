import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { duplexPair, type Duplex } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { PlistChannel, encodeFrame } from '../../src/device/framing.ts';
import { encodeBinary } from '../../src/plist/index.ts';

// The recorded bytes live beside the repository (/work/shared next to /work/main).
const FIXTURES = path.resolve(import.meta.dirname, '../../../shared/fixtures/recorded');
const recorded = ['lockdownquerytypemessage.bin', 'lockdowngetvaluemessage.bin', 'lockdowngettimemessage.bin'].map(
  (f) => fs.readFileSync(path.join(FIXTURES, f)),
);

const channels: PlistChannel[] = [];
afterEach(() => {
  for (const c of channels.splice(0)) c.close();
  vi.restoreAllMocks();
});

function pair(options: ConstructorParameters<typeof PlistChannel>[1] = {}): { channel: PlistChannel; peer: Duplex } {
  const [ours, peer] = duplexPair();
  const channel = new PlistChannel(ours, { label: 'test', ...options });
  channels.push(channel);
  return { channel, peer };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof KitError) return err.code;
    throw err;
  }
  throw new Error('expected a rejection');
}

describe('length-prefixed plist framing', () => {
  it('encodes a 4-byte big-endian length before the plist', () => {
    const frame = encodeFrame({ Request: 'QueryType' });
    expect(frame.readUInt32BE(0)).toBe(frame.length - 4);
    expect(frame.subarray(4, 9).toString()).toBe('<?xml');
    expect(encodeFrame({ a: 1 }, 'binary').subarray(4, 12).toString('latin1')).toBe('bplist00');
  });

  it('decodes a recorded frame split at every byte boundary', async () => {
    const bytes = recorded[0] as Buffer;
    for (let cut = 1; cut < bytes.length; cut++) {
      const { channel, peer } = pair();
      const reply = channel.receive();
      peer.write(bytes.subarray(0, cut));
      await new Promise((r) => setImmediate(r));
      peer.write(bytes.subarray(cut));
      expect(await reply, `cut at ${cut}`).toEqual({ Request: 'QueryType', Type: 'com.apple.mobile.lockdown' });
      channel.close();
    }
  });

  it('decodes three recorded frames delivered one byte at a time and all coalesced', async () => {
    const all = Buffer.concat(recorded);
    const bytewise = pair();
    const replies = [bytewise.channel.receive(), bytewise.channel.receive(), bytewise.channel.receive()];
    for (const byte of all) bytewise.peer.write(Buffer.from([byte]));
    const a = await Promise.all(replies);
    const coalesced = pair();
    coalesced.peer.write(all);
    const b = [await coalesced.channel.receive(), await coalesced.channel.receive(), await coalesced.channel.receive()];
    expect(a).toEqual(b);
    expect(b.map((d) => (d as { Request: string }).Request)).toEqual(['QueryType', 'GetValue', 'GetValue']);
    expect((b[1] as { Value: string }).Value).toBe('12.3.1');
  });

  it('accepts binary plist frames and matches replies to requests in order', async () => {
    const { channel, peer } = pair();
    const seen: Buffer[] = [];
    peer.on('data', (d: Buffer) => seen.push(d));
    const first = channel.request({ Request: 'A' });
    const second = channel.request({ Request: 'B' });
    const body1 = encodeBinary({ Request: 'A', Value: 1 });
    const body2 = encodeBinary({ Request: 'B', Value: 2 });
    const h = (n: number): Buffer => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
    peer.write(Buffer.concat([h(body1.length), body1, h(body2.length), body2]));
    expect(await first).toEqual({ Request: 'A', Value: 1 });
    expect(await second).toEqual({ Request: 'B', Value: 2 });
    expect(Buffer.concat(seen).subarray(4, 9).toString()).toBe('<?xml');
  });

  it('refuses a lying length prefix before allocating the body', async () => {
    const { channel, peer } = pair({ maxFrameBytes: 1024 * 1024 });
    const spy = vi.spyOn(Buffer, 'allocUnsafe');
    const alloc = vi.spyOn(Buffer, 'alloc');
    const reply = channel.receive();
    peer.write(Buffer.from([0xff, 0xff, 0xff, 0xf0]));
    const err = await reply.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KitError);
    expect((err as KitError).code).toBe('device/frame-too-large');
    expect((err as KitError).details).toMatchObject({ length: 0xfffffff0, limit: 1024 * 1024 });
    const big = [...spy.mock.calls, ...alloc.mock.calls].filter(([n]) => typeof n === 'number' && n > 1024);
    expect(big).toEqual([]);
    expect(channel.closed).toBe(true);
  });

  it('turns garbage into device/bad-reply with the plist error as its cause', async () => {
    const { channel, peer } = pair();
    const reply = channel.receive();
    peer.write(Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from('junk!')]));
    const err = (await reply.catch((e: unknown) => e)) as KitError;
    expect(err.code).toBe('device/bad-reply');
    expect((err.cause as KitError).code).toBe('plist/malformed');
  });

  it('rejects a non-dictionary reply to a request as device/bad-reply', async () => {
    const { channel, peer } = pair();
    const reply = channel.request({ Request: 'X' });
    const body = encodeBinary(['not', 'a', 'dict']);
    peer.write(Buffer.concat([Buffer.from([0, 0, 0, body.length]), body]));
    expect(await codeOf(reply)).toBe('device/bad-reply');
  });

  it('times out with device/timeout (retryable), and the channel is then closed', async () => {
    const { channel } = pair();
    const err = (await channel.receive(20).catch((e: unknown) => e)) as KitError;
    expect(err.code).toBe('device/timeout');
    expect(err.retryable).toBe(true);
    expect(await codeOf(channel.receive())).toBe('device/timeout');
    expect(() => channel.send({ a: 1 })).toThrow(KitError);
  });

  it('reports a peer reset mid-frame as device/connection-lost (retryable) over a real TCP socket', async () => {
    const server = net.createServer((s) => {
      s.write(Buffer.concat([Buffer.from([0, 0, 1, 0]), Buffer.alloc(10, 0x41)]));
      setTimeout(() => s.resetAndDestroy(), 10);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as net.AddressInfo;
      const socket = net.createConnection({ host: '127.0.0.1', port });
      const channel = new PlistChannel(socket, { label: 'test' });
      channels.push(channel);
      const err = (await channel.receive().catch((e: unknown) => e)) as KitError;
      expect(err.code).toBe('device/connection-lost');
      expect(err.retryable).toBe(true);
      expect(err.message).toContain('middle of a message');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('reports a clean close while waiting as device/connection-lost', async () => {
    const { channel, peer } = pair();
    const reply = channel.receive();
    peer.end();
    expect(await codeOf(reply)).toBe('device/connection-lost');
  });

  it('hands the socket over with unread bytes put back (for TLS on the same connection)', async () => {
    const { channel, peer } = pair();
    const frame = encodeFrame({ Request: 'StartSession', SessionID: 'S' });
    peer.write(Buffer.concat([frame, Buffer.from('TLS')]));
    expect(await channel.receive()).toEqual({ Request: 'StartSession', SessionID: 'S' });
    const socket = channel.detach();
    const rest = await new Promise<Buffer>((resolve) => {
      socket.once('data', (d: Buffer) => resolve(d));
      socket.resume();
    });
    expect(rest.toString()).toBe('TLS');
  });
});
