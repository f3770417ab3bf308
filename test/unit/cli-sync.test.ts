/**
 * `kitting sync config|status|run` as a child process against an in-process reference server:
 * a wrong token exits 1 with `mdm/auth-required`, the token never appears on stdout/stderr nor in
 * any data-dir file in plain text, `sync status --json` has exactly cli.md's keys, `run --once`
 * drains the queue.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMdmServer, type MdmServer } from '../../src/simulator/mdm-server/index.ts';
import { openStationDatabase } from '../../src/store/db.ts';
import { enqueueResult } from '../../src/store/outbox.ts';
import { KITTING, NODE, run } from '../helpers/sim-process.ts';

let server: MdmServer;
let dir: string;
const env = { KITTING_PASSPHRASE: 'cli-sync-test-passphrase', KITTING_LOG: 'debug' };
beforeAll(async () => {
  server = await startMdmServer({ seedDemo: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-cli-sync-'));
});
afterAll(async () => {
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function filesUnder(d: string): string[] {
  return fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(d, e.name);
    return e.isDirectory() ? filesUnder(p) : [p];
  });
}

describe('kitting sync', () => {
  it('config refuses a wrong token, stores a good one sealed; status and run --once', async () => {
    const dataDir = path.join(dir, 'station');
    const kit = (...args: string[]) => run(NODE, [KITTING, '--data-dir', dataDir, ...args], { env });

    const unconfigured = await kit('--json', 'sync', 'status');
    expect(unconfigured.code).toBe(0);
    expect(JSON.parse(unconfigured.stdout)).toEqual({
      state: 'unconfigured',
      queueLength: 0,
      delivered: 0,
      lastError: null,
      nextTryAt: null,
    });

    const wrongFile = path.join(dir, 'wrong');
    fs.writeFileSync(wrongFile, 'wrong-token-wrong-token\n');
    const wrong = await kit('--json', 'sync', 'config', '--url', server.url, '--token-file', wrongFile);
    expect(wrong.code).toBe(1);
    expect((JSON.parse(wrong.stdout) as { error: { code: string } }).error.code).toBe('mdm/auth-required');

    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, `${server.token}\n`);
    const ok = await kit('sync', 'config', '--url', server.url, '--token-file', tokenFile);
    expect(ok.code, ok.stderr).toBe(0);
    expect(`${ok.stdout}${ok.stderr}${wrong.stdout}${wrong.stderr}`).not.toContain(server.token);
    for (const f of filesUnder(dataDir)) expect(fs.readFileSync(f).includes(server.token), f).toBe(false);

    const db = openStationDatabase(dataDir);
    for (const i of [1, 2, 3]) {
      enqueueResult(db, {
        idempotencyKey: `cli-${i}`,
        serial: `CLI${i}`,
        outcome: 'done',
        finishedAt: '2025-01-01T00:00:00Z',
      });
    }
    db.close();
    const queued = await kit('--json', 'sync', 'status');
    expect(JSON.parse(queued.stdout)).toEqual({
      state: 'online',
      queueLength: 3,
      delivered: 0,
      lastError: null,
      nextTryAt: null,
    });

    const once = await kit('--json', 'sync', 'run', '--once');
    expect(once.code, once.stderr).toBe(0);
    expect(JSON.parse(once.stdout)).toMatchObject({ delivered: 3, parked: 0, queueLength: 0 });
    expect(`${once.stdout}${once.stderr}`).not.toContain(server.token);
    const after = await kit('--json', 'sync', 'status');
    expect(JSON.parse(after.stdout)).toEqual({
      state: 'online',
      queueLength: 0,
      delivered: 3,
      lastError: null,
      nextTryAt: null,
    });
    expect(
      server.admin
        .state()
        .results.map((r) => r.idempotencyKey)
        .sort(),
    ).toEqual(['cli-1', 'cli-2', 'cli-3']);

    server.admin.refuseToken();
    const db2 = openStationDatabase(dataDir);
    enqueueResult(db2, {
      idempotencyKey: 'cli-4',
      serial: 'CLI4',
      outcome: 'done',
      finishedAt: '2025-01-01T00:00:00Z',
    });
    db2.close();
    const refused = await kit('--json', 'sync', 'run', '--once');
    expect(refused.code).toBe(1);
    expect((JSON.parse(refused.stdout) as { error: { code: string } }).error.code).toBe('mdm/auth-required');
    const stopped = await kit('--json', 'sync', 'status');
    expect(JSON.parse(stopped.stdout)).toMatchObject({ state: 'auth-required', queueLength: 1, delivered: 3 });
    server.admin.setToken(server.token);
    for (const f of filesUnder(dataDir)) expect(fs.readFileSync(f).includes(server.token), f).toBe(false);
  }, 60_000);
});
