import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';

/** `kitting identity …` as a user runs it: through bin/kitting.js on the repo's Node 22. */
const root = path.resolve(import.meta.dirname, '../..');
const node = path.join(root, 'node_modules', '.bin', 'node');
const dirs: string[] = [];

afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

interface Setup {
  dir: string;
  dataDir: string;
  passFile: string;
  kit(args: string[], options?: { passphrase?: boolean; env?: NodeJS.ProcessEnv }): Run;
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function setup(): Setup {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-cli-id-'));
  dirs.push(dir);
  const dataDir = path.join(dir, 'data');
  const passFile = path.join(dir, 'passphrase.txt');
  fs.writeFileSync(passFile, 'station passphrase 1\n');
  const env: NodeJS.ProcessEnv = { ...process.env, LANG: 'en_US.UTF-8', LC_ALL: 'en_US.UTF-8' };
  delete env.KITTING_PASSPHRASE;
  delete env.KITTING_DATA_DIR;
  return {
    dir,
    dataDir,
    passFile,
    kit(args, options = {}) {
      const globals = ['--data-dir', dataDir, ...(options.passphrase === false ? [] : ['--passphrase-file', passFile])];
      const r = spawnSync(node, ['bin/kitting.js', ...globals, ...args], {
        cwd: root,
        encoding: 'utf8',
        env: { ...env, ...options.env },
      });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    },
  };
}

function json<T>(r: Run): T {
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
}

function errorCode(r: Run): string {
  return (JSON.parse(r.stdout) as { error: { code: string } }).error.code;
}

interface Listed {
  id: string;
  org: string;
  fingerprint: string;
  notAfter: string;
}

// Each run starts Node and derives the vault key (scrypt, ~0.5 s): generous limits for loaded CI machines.
describe('kitting identity', { timeout: 120_000 }, () => {
  it('create, then list (--json on the command or globally) with exactly id, org, fingerprint, notAfter', () => {
    const s = setup();
    const created = s.kit(['identity', 'create', '--org', 'テスト学園', '--id', 'test-gakuen', '--country', 'JP']);
    expect(created.status, created.stderr).toBe(0);
    expect(created.stdout).toContain('test-gakuen');
    expect(created.stdout).toMatch(/([0-9A-F]{2}:){31}[0-9A-F]{2}/);

    const list = json<Listed[]>(s.kit(['identity', 'list', '--json'], { passphrase: false }));
    expect(list).toHaveLength(1);
    expect(Object.keys(list[0] ?? {})).toEqual(['id', 'org', 'fingerprint', 'notAfter']);
    expect(list[0]).toMatchObject({ id: 'test-gakuen', org: 'テスト学園' });
    expect(list[0]?.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.parse(list[0]?.notAfter ?? '')).toBeGreaterThan(Date.now() + 9.9 * 365 * 86_400_000);
    expect(json<Listed[]>(s.kit(['--json', 'identity', 'list'], { passphrase: false }))).toEqual(list);

    const human = s.kit(['identity', 'list'], { passphrase: false });
    expect(human.status).toBe(0);
    const display = (list[0]?.fingerprint.toUpperCase().match(/../g) ?? []).join(':');
    expect(human.stdout).toContain(display);
    expect(human.stdout).toContain('テスト学園');

    expect(fs.statSync(s.dataDir).mode & 0o777).toBe(0o700);
    for (const f of ['station.db', 'vault.json']) expect(fs.statSync(path.join(s.dataDir, f)).mode & 0o777).toBe(0o600);
  });

  it('export p12 and import it into another station: the same fingerprint', () => {
    const a = setup();
    const made = json<Listed>(a.kit(['--json', 'identity', 'create', '--org', 'Sakura Gakuen']));
    expect(made.id).toMatch(/^sakura-gakuen-[0-9a-f]{6}$/);
    const pw = path.join(a.dir, 'export-pw.txt');
    fs.writeFileSync(pw, 'エクスポート用\n');
    const out = path.join(a.dir, 'sakura.p12');
    const exported = json<{ files: string[] }>(
      a.kit(['--json', 'identity', 'export', made.id, '--out', out, '--password-file', pw]),
    );
    expect(exported.files).toEqual([out]);
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);

    const b = setup();
    const imported = json<Listed>(b.kit(['--json', 'identity', 'import', out, '--password-file', pw]));
    expect(imported.fingerprint).toBe(made.fingerprint);
    expect(crypto.createHash('sha256').update(fs.readFileSync(out)).digest('hex')).not.toBe(made.fingerprint);

    const der = path.join(a.dir, 'sakura.der');
    expect(
      json<{ files: string[] }>(a.kit(['--json', 'identity', 'export', made.id, '--out', der, '--format', 'der']))
        .files,
    ).toEqual([der, `${der}.key`]);
    expect(crypto.createHash('sha256').update(fs.readFileSync(der)).digest('hex')).toBe(made.fingerprint);
    const c = setup();
    expect(json<Listed>(c.kit(['--json', 'identity', 'import', der, '--key', `${der}.key`])).fingerprint).toBe(
      made.fingerprint,
    );
  });

  it('exit 3 for an unknown identity, 2 for a bad file or password, 1 for a duplicate', () => {
    const s = setup();
    const made = json<Listed>(s.kit(['--json', 'identity', 'create', '--org', 'Exit Codes']));
    const pw = path.join(s.dir, 'pw.txt');
    fs.writeFileSync(pw, 'right-password');
    const out = path.join(s.dir, 'e.p12');
    expect(s.kit(['identity', 'export', made.id, '--out', out, '--password-file', pw]).status).toBe(0);

    const unknown = s.kit([
      '--json',
      'identity',
      'export',
      'no-such-id',
      '--out',
      path.join(s.dir, 'n.p12'),
      '--password-file',
      pw,
    ]);
    expect(unknown.status).toBe(3);
    expect(errorCode(unknown)).toBe('identity/not-found');
    expect(unknown.stderr).toContain('identity/not-found');
    expect(s.kit(['identity', 'delete', 'no-such-id']).status).toBe(3);

    const wrong = path.join(s.dir, 'wrong.txt');
    fs.writeFileSync(wrong, 'wrong-password');
    const other = setup();
    const bad = other.kit(['--json', 'identity', 'import', out, '--password-file', wrong]);
    expect(bad.status).toBe(2);
    expect(errorCode(bad)).toBe('identity/wrong-password');
    expect(bad.stdout + bad.stderr).not.toContain('wrong-password\n');
    expect(bad.stderr).not.toContain('right-password');

    const junk = path.join(s.dir, 'junk.p12');
    fs.writeFileSync(junk, fs.readFileSync(out).subarray(0, 100));
    const corrupt = other.kit(['--json', 'identity', 'import', junk, '--password-file', pw]);
    expect(corrupt.status).toBe(2);
    expect(errorCode(corrupt)).toBe('identity/corrupt-file');
    expect(corrupt.stderr).toContain('junk.p12');
    expect(json<Listed[]>(other.kit(['--json', 'identity', 'list']))).toEqual([]);

    const dup = s.kit(['--json', 'identity', 'import', out, '--password-file', pw]);
    expect(dup.status).toBe(1);
    expect(errorCode(dup)).toBe('identity/duplicate');

    const badId = s.kit(['--json', 'identity', 'create', '--org', 'X', '--id', 'Not Valid']);
    expect(badId.status).toBe(2);
    expect(errorCode(badId)).toBe('usage/invalid-argument');
  });

  it('asks for the vault passphrase only when keys are touched, and detects a wrong one (exit 2)', () => {
    const s = setup();
    const none = s.kit(['--json', 'identity', 'create', '--org', 'No Pass'], { passphrase: false });
    expect(none.status).toBe(2);
    expect(errorCode(none)).toBe('vault/passphrase-required');
    expect(none.stderr).toContain('KITTING_PASSPHRASE');

    const viaEnv = s.kit(['--json', 'identity', 'create', '--org', 'Env Pass'], {
      passphrase: false,
      env: { KITTING_PASSPHRASE: 'station passphrase 1' },
    });
    expect(viaEnv.status, viaEnv.stderr).toBe(0);
    expect(s.kit(['identity', 'list'], { passphrase: false }).status).toBe(0);

    fs.writeFileSync(s.passFile, 'another passphrase');
    const wrong = s.kit(['--json', 'identity', 'create', '--org', 'Wrong Pass']);
    expect(wrong.status).toBe(2);
    expect(errorCode(wrong)).toBe('vault/wrong-passphrase');
    expect(wrong.stdout + wrong.stderr).not.toContain('another passphrase');
    expect(json<Listed[]>(s.kit(['--json', 'identity', 'list']))).toHaveLength(1);
  });

  it('delete: refused with exit 1 while a blueprint uses the identity, then deleted', () => {
    const s = setup();
    const made = json<Listed>(s.kit(['--json', 'identity', 'create', '--org', 'Delete Me']));
    const db = new Database(path.join(s.dataDir, 'station.db'));
    db.exec(`INSERT INTO blueprints (name, json, identity_id, created_at, updated_at)
             VALUES ('cart', '{}', '${made.id}', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')`);
    const refused = s.kit(['--json', 'identity', 'delete', made.id]);
    expect(refused.status).toBe(1);
    expect(errorCode(refused)).toBe('identity/in-use');
    db.exec('DELETE FROM blueprints');
    db.close();
    expect(json<{ deleted: boolean }>(s.kit(['--json', 'identity', 'delete', made.id]))).toEqual({
      id: made.id,
      deleted: true,
    });
    expect(json<Listed[]>(s.kit(['--json', 'identity', 'list']))).toEqual([]);
  });
});
