/**
 * `kitting serve --port 0 --simulate 2 --mdm-dev` as a child process: the station's sync is
 * configured to the reference MDM it started, so `batch.start` on the demo blueprint prepares both
 * virtual iPads and their results drain to that MDM by themselves: `sync.status` reaches
 * delivered = 2 with nothing queued (serve does not expose the reference server's admin token, so
 * the count is the station's: rows the MDM answered accepted or duplicate), and a `sync.run`
 * afterwards sends nothing more.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Envelope } from '../../src/contract.ts';
import { KITTING, NODE } from '../helpers/sim-process.ts';

let dir: string;
let child: ChildProcess | undefined;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-serve-mdm-'));
  fs.mkdirSync(path.join(dir, 'renderer'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'renderer', 'index.html'), '<!doctype html><title>t</title>');
});
afterAll(async () => {
  const c = child;
  if (c?.pid !== undefined && c.exitCode === null) {
    const exited = new Promise((resolve) => c.once('exit', resolve));
    process.kill(c.pid, 'SIGTERM');
    await exited;
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

interface SyncStatusAnswer {
  state: string;
  queueLength: number;
  delivered: number;
  lastError: unknown;
  nextTryAt: string | null;
  offlineSince: string | null;
}

describe('kitting serve --simulate 2 --mdm-dev', () => {
  it('drains the demo batch results to the reference MDM it started', async () => {
    const c = spawn(
      NODE,
      [KITTING, 'serve', '--port', '0', '--simulate', '2', '--mdm-dev', '--renderer-dir', path.join(dir, 'renderer')],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, KITTING_DATA_DIR: '', KITTING_PASSPHRASE: '', KITTING_LOG: 'warn' },
      },
    );
    child = c;
    let err = '';
    c.stderr?.setEncoding('utf8');
    c.stderr?.on('data', (s: string) => (err += s));
    const exited = new Promise<number | null>((resolve) => c.once('exit', (code) => resolve(code)));
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      c.stdout?.setEncoding('utf8');
      c.stdout?.on('data', (s: string) => {
        out += s;
        if (out.includes('\n')) resolve(out);
      });
      void exited.then((code) => reject(new Error(`serve exited with ${String(code)}: ${err}`)));
    });
    const url = new URL((JSON.parse(line.trim()) as { url: string }).url);
    const auth = { Authorization: `Bearer ${url.searchParams.get('token') ?? ''}`, 'Content-Type': 'application/json' };
    const call = async <T>(command: string, input: unknown = {}): Promise<T> => {
      const res = await fetch(`${url.origin}/api/command/${command}`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify(input),
      });
      const env = (await res.json()) as Envelope<T>;
      if (!env.ok) throw new Error(`${command}: ${env.error.code} ${env.error.message}`);
      return env.result;
    };

    expect(err).toMatch(/MDM sync configured to http:\/\/127\.0\.0\.1:\d+/);
    const before = await call<SyncStatusAnswer>('sync.status');
    expect(before).toMatchObject({ state: 'online', queueLength: 0, delivered: 0 });

    await call('batch.start', { blueprint: 'demo', udids: 'all', confirmedErase: true });
    let status = before;
    for (let i = 0; i < 600 && status.delivered < 2; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = await call<SyncStatusAnswer>('sync.status');
    }
    expect(status).toMatchObject({ state: 'online', queueLength: 0, delivered: 2, lastError: null });
    const jobs = await call<{ status: string }[]>('jobs.list');
    expect(jobs.map((j) => j.status)).toEqual(['done', 'done']);
    // The MDM holds exactly those two: a drain now sends nothing more.
    expect(await call('sync.run')).toMatchObject({ delivered: 0, duplicates: 0, status: { delivered: 2 } });
    expect(err).not.toContain(url.searchParams.get('token') ?? '');

    process.kill(c.pid ?? 0, 'SIGTERM');
    expect(await exited).toBe(0);
  }, 120_000);
});
