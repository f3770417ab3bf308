/**
 * Exactly-once delivery of 10,000 kitting results under faults: the MDM down then up, 5xx bursts,
 * slow answers past the client's timeout (the server may commit: the retry must come back as
 * duplicates), dropped connections, 401 then a new token, a batch the server committed but answered
 * only after the client had given up (its replay is counted as duplicates by the server, never stored
 * twice), invalid records parked with reasons;
 * then across processes: the syncer (`kitting sync run`) SIGKILLed mid-sync and the MDM server
 * (`kitting mdm-dev --db`) SIGKILLed mid-request and restarted on the same db and port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { toKitError } from '../../src/errors.ts';
import { MdmClient, type KittingResultPayload, type ResultsAnswer } from '../../src/mdm/client.ts';
import { Syncer, type SyncStatus } from '../../src/mdm/syncer.ts';
import { startMdmServer, type MdmServer } from '../../src/simulator/mdm-server/index.ts';
import { openDatabase, openStationDatabase } from '../../src/store/db.ts';
import { enqueueResults, getOutboxRow, listOutbox, outboxCounts, type NewOutboxEntry } from '../../src/store/outbox.ts';
import { KITTING, NODE, run } from '../helpers/sim-process.ts';

const N = 10_000;
const AT = '2025-01-01T00:00:00.000Z';

function entries(n: number, invalid: ReadonlySet<number> = new Set()): NewOutboxEntry[] {
  return Array.from({ length: n }, (_, i) => {
    const key = `kr-${String(i).padStart(5, '0')}`;
    const serial = invalid.has(i) ? 'not a serial!' : `SER${String(i).padStart(7, '0')}`;
    return {
      idempotencyKey: key,
      createdAt: AT,
      payload: { idempotencyKey: key, serial, outcome: 'done', finishedAt: AT },
    };
  });
}

const tmp: string[] = [];
const children: ChildProcess[] = [];
const servers: MdmServer[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
  }
  for (const s of servers.splice(0)) await s.stop();
  for (const d of tmp.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-sync-faults-'));
  tmp.push(d);
  return d;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

const fast = { backoff: { baseMs: 2, maxMs: 20 }, random: () => 0.5, idlePollMs: 20 };

/** The real client, recording the keys of every batch it sends and how the request ended. */
class RecordingClient extends MdmClient {
  readonly sent: { keys: string[]; outcome: string }[] = [];

  override async postResults(batch: readonly KittingResultPayload[]): Promise<ResultsAnswer> {
    const keys = batch.map((r) => r.idempotencyKey);
    try {
      const answer = await super.postResults(batch);
      this.sent.push({ keys, outcome: 'answered' });
      return answer;
    } catch (err) {
      this.sent.push({ keys, outcome: toKitError(err).code });
      throw err;
    }
  }
}

describe('syncer under faults (in process)', () => {
  it('delivers 10,000 results exactly once through down, 5xx, timeouts, drops and a 401; invalid ones parked', async () => {
    const server = await startMdmServer({});
    servers.push(server);
    const db = openDatabase(':memory:');
    const invalid = new Set([17, 4242, 9999]);
    expect(enqueueResults(db, entries(N, invalid))).toBe(N);

    // 1. The MDM is down (connection refused) for the whole batch.
    const deadPort = await freePort();
    const syncer = new Syncer({
      db,
      client: new MdmClient({ baseUrl: `http://127.0.0.1:${deadPort}`, token: 'x' }),
      ...fast,
    });
    const states: SyncStatus[] = [];
    syncer.on('syncStateChanged', (s: SyncStatus) => states.push(s));
    await expect(syncer.drain({ maxFailures: 3 })).rejects.toMatchObject({ code: 'mdm/offline' });
    expect(syncer.status()).toMatchObject({ state: 'offline', queueLength: N, delivered: 0 });
    expect(syncer.status().nextTryAt).not.toBeNull();
    expect(syncer.status().offlineSince).not.toBeNull();

    // 2. Up again, with faults injected as batches go through.
    const client = new RecordingClient({ baseUrl: server.url, token: server.token, timeoutMs: 300 });
    syncer.setClient(client);
    let batches = 0;
    let lateFrom = -1;
    const failures: string[] = [];
    syncer.on('syncFailed', (e: { code: string }) => {
      failures.push(e.code);
      if (e.code === 'mdm/timeout' && failures.filter((c) => c === 'mdm/timeout').length >= 2)
        server.admin.clearFaults();
    });
    syncer.on('batchDelivered', () => {
      batches += 1;
      if (batches === 2) server.admin.setFaults({ failNext: 3, failStatus: 503 });
      if (batches === 4) server.admin.setFaults({ delayMs: 600 });
      if (batches === 6) server.admin.setFaults({ dropNext: 2 });
      if (batches === 8) server.admin.refuseToken();
      if (batches === 10) {
        // The next batch is committed by the server, but its answer is held far past the client's
        // timeout: the syncer must replay it, and the server must count the replay as duplicates.
        lateFrom = client.sent.length;
        server.admin.setFaults({ lateAnswerNext: 1, lateAnswerMs: 30_000 });
      }
    });
    await expect(syncer.drain()).rejects.toMatchObject({ code: 'mdm/auth-required' });
    expect(syncer.status().state).toBe('auth-required');
    const before = syncer.status().delivered;
    await expect(syncer.drain()).rejects.toMatchObject({ code: 'mdm/auth-required' });
    expect(syncer.status().delivered).toBe(before);

    server.admin.setToken('a-brand-new-station-token-0001');
    syncer.setToken('a-brand-new-station-token-0001');
    await syncer.drain();

    expect(failures).toEqual(
      expect.arrayContaining(['mdm/server-error', 'mdm/timeout', 'mdm/offline', 'mdm/auth-required']),
    );
    const counts = outboxCounts(db);
    expect(counts).toMatchObject({ queued: 0, inFlight: 0, delivered: N - invalid.size, parked: invalid.size });
    const parked = listOutbox(db, 'parked');
    expect(parked.map((r) => r.idempotencyKey).sort()).toEqual(['kr-00017', 'kr-04242', 'kr-09999']);
    for (const p of parked) expect(p.parkedReason).toMatch(/serial/i);

    const held = server.admin.state().results;
    expect(held).toHaveLength(N - invalid.size);
    expect(new Set(held.map((r) => r.idempotencyKey)).size).toBe(N - invalid.size);

    // The late answer: the request that timed out after the fault was set carried a batch the
    // server had stored; every key of it was received again (duplicate receipts > 0), stored once,
    // and the station recorded it delivered as a duplicate.
    expect(lateFrom).toBeGreaterThanOrEqual(0);
    expect(server.admin.state().faults.lateAnswerNext).toBe(0);
    const late = client.sent.slice(lateFrom);
    const timedOut = late.findIndex((r) => r.outcome === 'mdm/timeout');
    expect(timedOut).toBeGreaterThanOrEqual(0);
    const lateKeys = late[timedOut]?.keys ?? [];
    expect(lateKeys.length).toBeGreaterThan(0);
    const receipts = new Map(held.map((r) => [r.idempotencyKey, r.duplicateReceipts]));
    const lateReceipts = lateKeys.map((k) => receipts.get(k) ?? 0);
    expect(lateReceipts.filter((n) => n === 0)).toEqual([]);
    expect(lateReceipts.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(lateKeys.length);
    expect(lateKeys.filter((k) => getOutboxRow(db, k)?.duplicate !== true)).toEqual([]);
    // The replay was the next request, answered, with the same keys.
    expect(late[timedOut + 1]).toMatchObject({ outcome: 'answered' });
    expect(late[timedOut + 1]?.keys.slice(0, lateKeys.length)).toEqual(lateKeys);
    expect(syncer.status()).toMatchObject({ state: 'online', queueLength: 0, lastError: null, nextTryAt: null });
    expect(states.some((s) => s.state === 'offline')).toBe(true);
    db.close();
  });
});

function spawnKitting(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(NODE, [KITTING, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return child;
}

function readyUrl(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const line = buf.split('\n')[0];
      if (buf.includes('\n') && line !== undefined) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${String(code)} before ready`)));
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise((r) => child.once('exit', (c) => r(c)));
}

async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('syncer and MDM server killed (processes)', () => {
  it('SIGKILL of kitting sync run mid-sync and of kitting mdm-dev mid-request: 10,000 held, none lost, none twice', async () => {
    const dir = tempDir();
    const dataDir = path.join(dir, 'station');
    const serverDb = path.join(dir, 'mdm.db');
    const token = 'station-token-for-kill-test-01';
    const adminToken = 'admin-token-for-kill-test-0001';
    const port = await freePort();
    const env = { KITTING_PASSPHRASE: 'kill-test-passphrase', KITTING_LOG: 'silent' };
    const serverArgs = [
      'mdm-dev',
      '--port',
      String(port),
      '--db',
      serverDb,
      '--token',
      token,
      '--admin-token',
      adminToken,
    ];
    let server = spawnKitting(serverArgs, env);
    const url = await readyUrl(server);
    const admin = async (method: string, p: string, body?: unknown): Promise<unknown> => {
      const r = await fetch(`${url}${p}`, {
        method,
        headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return r.headers.get('content-type')?.startsWith('application/json') === true ? r.json() : undefined;
    };

    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const cfg = await run(
      NODE,
      [KITTING, '--data-dir', dataDir, 'sync', 'config', '--url', url, '--token-file', tokenFile],
      { env },
    );
    expect(cfg.code, cfg.stderr).toBe(0);
    const db = openStationDatabase(dataDir);
    expect(enqueueResults(db, entries(N))).toBe(N);
    const delivered = (): number => outboxCounts(db).delivered;

    // The syncer is killed mid-sync (slow answers so it is caught between batches or in one).
    await admin('PUT', '/admin/faults', { delayMs: 40 });
    const first = spawnKitting(['--data-dir', dataDir, 'sync', 'run'], env);
    await waitFor(() => delivered() >= 1500);
    process.kill(first.pid ?? 0, 'SIGKILL');
    await exited(first);
    expect(delivered()).toBeLessThan(N);

    // The MDM server is killed while a request waits in its delay, then restarted on the same db and port.
    await admin('PUT', '/admin/faults', { delayMs: 400 });
    const second = spawnKitting(['--data-dir', dataDir, 'sync', 'run'], env);
    const mark = delivered();
    await waitFor(() => delivered() > mark);
    await new Promise((r) => setTimeout(r, 150));
    process.kill(server.pid ?? 0, 'SIGKILL');
    await exited(server);
    server = spawnKitting(serverArgs, env);
    expect(await readyUrl(server)).toBe(url);
    await waitFor(() => outboxCounts(db).queued === 0, 90_000);
    process.kill(second.pid ?? 0, 'SIGTERM');
    expect(await exited(second)).toBe(0);

    const once = await run(NODE, [KITTING, '--data-dir', dataDir, '--json', 'sync', 'run', '--once'], { env });
    expect(once.code, once.stderr).toBe(0);
    expect(JSON.parse(once.stdout)).toMatchObject({ delivered: 0, queueLength: 0 });

    const state = (await admin('GET', '/admin/state')) as { results: { idempotencyKey: string }[] };
    expect(state.results).toHaveLength(N);
    expect(new Set(state.results.map((r) => r.idempotencyKey)).size).toBe(N);
    expect(outboxCounts(db)).toMatchObject({ queued: 0, delivered: N, parked: 0 });
    db.close();
    process.kill(server.pid ?? 0, 'SIGTERM');
    await exited(server);
  }, 120_000);
});
