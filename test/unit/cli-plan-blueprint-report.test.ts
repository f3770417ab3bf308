/** `kitting plan|blueprint|report …` run as a real process on the repo's Node 22, against a temp data dir. */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import iconv from 'iconv-lite';
import { afterEach, describe, expect, it } from 'vitest';
import { openStationDatabase } from '../../src/store/db.ts';
import { insertIdentity } from '../../src/store/identities.ts';
import { createJob, finishJob, markJobRunning, markStepFinished, markStepRunning } from '../../src/store/jobs.ts';

const root = path.resolve(import.meta.dirname, '../..');
const node = path.join(root, 'node_modules', '.bin', 'node');
/** Each test spawns the CLI several times; a loaded machine must not turn that into a failure. */
const SPAWN_TIMEOUT = 90_000;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

interface Run {
  status: number | null;
  stdout: string;
  stdoutBytes: Buffer;
  stderr: string;
}

function setup(): { dir: string; dataDir: string; kit(...args: string[]): Run } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-cli-plan-'));
  dirs.push(dir);
  const dataDir = path.join(dir, 'data');
  const env: NodeJS.ProcessEnv = { ...process.env, LANG: 'en_US.UTF-8', LC_ALL: 'en_US.UTF-8' };
  delete env.KITTING_DATA_DIR;
  return {
    dir,
    dataDir,
    kit(...args) {
      const r = spawnSync(node, ['bin/kitting.js', '--data-dir', dataDir, ...args], { cwd: root, env });
      return {
        status: r.status,
        stdout: r.stdout.toString('utf8'),
        stdoutBytes: r.stdout,
        stderr: r.stderr.toString('utf8'),
      };
    },
  };
}

function ok<T>(r: Run): T {
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
}

function seedIdentity(dataDir: string, id: string): void {
  const db = openStationDatabase(dataDir);
  try {
    insertIdentity(db, {
      id,
      org: 'さくら小学校',
      fingerprint: crypto.createHash('sha256').update(id).digest('hex'),
      notBefore: '2026-01-01T00:00:00.000Z',
      notAfter: '2036-01-01T00:00:00.000Z',
      certificate: Buffer.from('cert'),
      encryptedKey: Buffer.from('sealed'),
      createdAt: '2026-01-01T00:00:00.000Z',
    });
  } finally {
    db.close();
  }
}

describe('kitting plan', () => {
  it(
    'import answers {name, rows, encoding}; list answers [{name, rows, encoding, importedAt}]',
    () => {
      const { dir, kit } = setup();
      const csv = path.join(dir, 'cart-a.csv');
      fs.writeFileSync(
        csv,
        iconv.encode('シリアル番号,端末名\r\nDMPXK0ZZQ1GC,髙橋①\r\nf9fz1234abcd,端末2\r\n', 'cp932'),
      );
      expect(ok(kit('plan', 'import', csv, '--json'))).toEqual({ name: 'cart-a', rows: 2, encoding: 'shift_jis' });
      expect(ok(kit('--json', 'plan', 'import', csv, '--name', '3年1組', '--encoding', 'shift_jis'))).toEqual({
        name: '3年1組',
        rows: 2,
        encoding: 'shift_jis',
      });
      const list = ok<Record<string, unknown>[]>(kit('plan', 'list', '--json'));
      expect(list.map((p) => Object.keys(p).sort())).toEqual([
        ['encoding', 'importedAt', 'name', 'rows'],
        ['encoding', 'importedAt', 'name', 'rows'],
      ]);
      expect(list.map((p) => [p.name, p.rows, p.encoding])).toEqual([
        ['cart-a', 2, 'shift_jis'],
        ['3年1組', 2, 'shift_jis'],
      ]);
      expect(Number.isNaN(Date.parse(String(list[0]?.importedAt)))).toBe(false);
      const human = kit('plan', 'import', csv, '--name', 'again');
      expect(human.status).toBe(0);
      expect(human.stdout).toContain('2 rows');
    },
    SPAWN_TIMEOUT,
  );

  it(
    'bad rows: exit 2, every row with its line, nothing imported',
    () => {
      const { dir, kit } = setup();
      const csv = path.join(dir, 'bad.csv');
      fs.writeFileSync(csv, 'serial,name\nDMPXK0ZZQ1GC,a\n,b\nnot-a-serial,c\ndmpxk0zzq1gc,d\n');
      const r = kit('--json', 'plan', 'import', csv);
      expect(r.status).toBe(2);
      const body = JSON.parse(r.stdout) as {
        error: { code: string; badRows: { line: number; reason: string; otherLine?: number; message: string }[] };
      };
      expect(body.error.code).toBe('csv/invalid-rows');
      expect(body.error.badRows.map((b) => [b.line, b.reason])).toEqual([
        [3, 'empty-serial'],
        [4, 'malformed-serial'],
        [5, 'duplicate-in-file'],
      ]);
      expect(body.error.badRows[2]?.otherLine).toBe(2);
      expect(r.stderr).toContain('line 4:');
      expect(r.stderr).toContain('csv/invalid-rows');
      expect(ok(kit('plan', 'list', '--json'))).toEqual([]);

      const ja = kit('--lang', 'ja', 'plan', 'import', csv);
      expect(ja.status).toBe(2);
      expect(ja.stderr).toContain('5行目');

      fs.writeFileSync(path.join(dir, 'many.csv'), `serial\n${'DMPXK0ZZQ1GC\n'.repeat(10_001)}`);
      const many = kit('plan', 'import', path.join(dir, 'many.csv'));
      expect(many.status).toBe(2);
      expect(many.stderr).toContain('csv/too-many-rows');
      expect(many.stderr).toContain('10001');
      expect(kit('plan', 'import', path.join(dir, 'missing.csv')).status).toBe(3);
    },
    SPAWN_TIMEOUT,
  );

  it(
    'export: mobiconnect upload format, named CSV in Shift_JIS to --out, JSON',
    () => {
      const { dir, kit } = setup();
      const csv = path.join(dir, 'p.csv');
      fs.writeFileSync(csv, 'serial,name,asset_tag\nDMPXK0ZZQ1GC,iPad ①,A-1\nF9FZ1234ABCD,iPad 2,\n');
      ok(kit('--json', 'plan', 'import', csv));

      const mobi = kit('plan', 'export', '--format', 'mobiconnect');
      expect(mobi.status, mobi.stderr).toBe(0);
      expect([...mobi.stdoutBytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
      expect(mobi.stdoutBytes.subarray(3).toString('utf8').split('\r\n').slice(1)).toEqual([
        `DMPXK0ZZQ1GC${','.repeat(12)}`,
        `F9FZ1234ABCD${','.repeat(12)}`,
        '',
      ]);

      const out = path.join(dir, 'out.csv');
      const w = kit('--lang', 'ja', 'plan', 'export', '--format', 'csv', '--encoding', 'shift_jis', '--out', out);
      expect(w.status, w.stderr).toBe(0);
      expect(iconv.decode(fs.readFileSync(out), 'cp932').split('\r\n').slice(0, 2)).toEqual([
        'シリアル番号,端末名,資産管理番号,グループ,ブループリント,備考',
        'DMPXK0ZZQ1GC,iPad ①,A-1,,,',
      ]);

      expect(ok(kit('plan', 'export', '--format', 'json', '--name', 'p'))).toEqual([
        { serial: 'DMPXK0ZZQ1GC', name: 'iPad ①', assetTag: 'A-1' },
        { serial: 'F9FZ1234ABCD', name: 'iPad 2' },
      ]);
      expect(kit('plan', 'export', '--name', 'nope').status).toBe(3);
    },
    SPAWN_TIMEOUT,
  );
});

describe('kitting blueprint import/list/export', () => {
  it(
    'stores, lists with the cli.md fields, exports without secrets; duplicates and unknown names',
    () => {
      const { dir, dataDir, kit } = setup();
      seedIdentity(dataDir, 'org-1');
      const file = path.join(dir, 'bp.json');
      fs.writeFileSync(
        file,
        JSON.stringify({
          version: 1,
          name: '3年1組',
          organization: { identityId: 'org-1', displayName: 'さくら小学校' },
          enrollment: {
            method: 'url',
            url: 'https://mdm.example.jp/enroll',
            group: { groupId: 'g1', hideAuthScreen: true, userId: 'u1', passwordRef: 'secret:g1' },
          },
        }),
      );
      expect(ok(kit('--json', 'blueprint', 'import', file))).toEqual({
        name: '3年1組',
        identity: 'org-1',
        replaced: false,
        // Its MDM group has credentials; no MDM is configured here, so they are not checked.
        credentials: { status: 'not-checked', reason: 'mdm/unconfigured' },
      });
      const list = ok<Record<string, unknown>[]>(kit('blueprint', 'list', '--json'));
      expect(list).toHaveLength(1);
      expect(Object.keys(list[0] ?? {}).sort()).toEqual(['enrollment', 'identity', 'name', 'supervise', 'updatedAt']);
      expect(list[0]).toMatchObject({ name: '3年1組', identity: 'org-1', supervise: true, enrollment: 'url' });

      const exported = kit('blueprint', 'export', '3年1組');
      expect(exported.status, exported.stderr).toBe(0);
      const doc = JSON.parse(exported.stdout) as { name: string; enrollment: { group: Record<string, unknown> } };
      expect(doc.name).toBe('3年1組');
      expect(doc.enrollment.group.passwordRef).toBe('secret:g1');
      expect(exported.stdout).not.toMatch(/"password"/);
      const out = path.join(dir, 'exported.json');
      expect(kit('blueprint', 'export', '3年1組', '--out', out).status).toBe(0);
      expect(fs.readFileSync(out, 'utf8')).toBe(exported.stdout);

      const dup = kit('--json', 'blueprint', 'import', file);
      expect(dup.status).toBe(1);
      expect((JSON.parse(dup.stdout) as { error: { code: string } }).error.code).toBe('blueprint/duplicate-name');
      expect(ok(kit('--json', 'blueprint', 'import', file, '--replace'))).toMatchObject({ replaced: true });

      expect(kit('blueprint', 'export', 'nope').status).toBe(3);

      const bad = path.join(dir, 'bad.json');
      fs.writeFileSync(bad, JSON.stringify({ version: 1, name: 'x', organization: { identityId: 'org-1' } }));
      const invalid = kit('--json', 'blueprint', 'import', bad);
      expect(invalid.status).toBe(2);
      const issues = (JSON.parse(invalid.stdout) as { error: { code: string; issues: { path: string }[] } }).error;
      expect(issues.code).toBe('blueprint/invalid');
      expect(issues.issues.map((i) => i.path)).toContain('organization.displayName');

      const init = kit('--json', 'blueprint', 'init', '--name', 'made', '--identity', 'org-1', '--org-name', 'Org');
      expect(ok(init)).toMatchObject({ stored: true, blueprint: { name: 'made' } });
      expect(ok<{ name: string }[]>(kit('blueprint', 'list', '--json')).map((b) => b.name)).toEqual(['3年1組', 'made']);
    },
    SPAWN_TIMEOUT,
  );
});

describe('kitting report', () => {
  it(
    '--format json lists finished jobs; CSV to --out with Japanese headers',
    () => {
      const { dir, dataDir, kit } = setup();
      const db = openStationDatabase(dataDir);
      try {
        createJob(
          db,
          {
            id: 'job-1',
            udid: 'udid-1',
            serial: 'DMPXK0ZZQ1GC',
            blueprintName: 'bp',
            blueprintJson: '{}',
            batchId: 'b',
            counterStart: 1,
            steps: ['identify'],
          },
          '2026-04-01T09:00:00.000Z',
        );
        markJobRunning(db, 'job-1', false, '2026-04-01T09:00:01.000Z');
        markStepRunning(db, 'job-1', 'identify', '2026-04-01T09:00:01.000Z');
        markStepFinished(db, 'job-1', 'identify', 'done', '2026-04-01T09:00:03.000Z');
        finishJob(db, 'job-1', {}, '2026-04-01T09:00:04.000Z');
      } finally {
        db.close();
      }
      const doc = ok<{ devices: Record<string, unknown>[]; throughput: { buckets: { finished: number }[] } }>(
        kit('report', '--format', 'json'),
      );
      expect(doc.devices).toHaveLength(1);
      expect(doc.devices[0]).toMatchObject({
        jobId: 'job-1',
        udid: 'udid-1',
        serial: 'DMPXK0ZZQ1GC',
        blueprint: 'bp',
        outcome: 'done',
        durationMs: 3000,
        applied: ['identify'],
      });
      expect(doc.throughput.buckets.map((b) => b.finished)).toEqual([1]);
      expect(ok<{ devices: unknown[] }>(kit('--json', 'report', '--since', '2026-04-02T00:00:00Z')).devices).toEqual(
        [],
      );

      const out = path.join(dir, 'report.csv');
      const r = kit('--lang', 'ja', 'report', '--out', out);
      expect(r.status, r.stderr).toBe(0);
      const bytes = fs.readFileSync(out);
      expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
      expect(bytes.subarray(3).toString('utf8')).toMatch(/^ジョブID,UDID,シリアル番号,端末名/);
      expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
      expect(kit('report', '--since', 'someday').status).toBe(2);
    },
    SPAWN_TIMEOUT,
  );
});
