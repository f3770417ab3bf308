/** `kitting blueprint init|validate`, run as a real process the way a technician or a script runs it. */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const NODE = path.join(ROOT, 'node_modules/.bin/node');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function kitting(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      NODE,
      ['bin/kitting.js', ...args],
      { cwd: ROOT, env: { ...process.env, LANG: 'en_US.UTF-8' } },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

interface JsonIssue {
  path: string;
  code: string;
  message: string;
  messages: { ja: string; en: string };
}

let dir = '';
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-blueprint-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('kitting blueprint init / validate', () => {
  it('init writes a valid blueprint with the defaults; validate accepts it (exit 0)', async () => {
    const out = path.join(dir, 'grade3.json');
    const init = await kitting(
      'blueprint',
      'init',
      '--name',
      '3年1組 iPad',
      '--identity',
      'org-1',
      '--org-name',
      'さくら小学校',
      '--skip',
      'Siri,Location,OSShowCase',
      '--no-allow-pairing',
      '--erase-if-needed',
      '--enroll-profile',
      'enroll.mobileconfig',
      '--name-template',
      'iPad-{n:3}',
      '--no-store',
      '--out',
      out,
    );
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    const written = JSON.parse(fs.readFileSync(out, 'utf8')) as Record<string, unknown>;
    expect(written).toMatchObject({
      version: 1,
      name: '3年1組 iPad',
      organization: { identityId: 'org-1', displayName: 'さくら小学校' },
      supervise: true,
      allowPairing: false,
      mandatoryEnrollment: true,
      skipSetup: ['Siri', 'Location', 'OSShowcase'],
      enrollment: { method: 'staged', source: { kind: 'file', path: 'enroll.mobileconfig' } },
      naming: { template: 'iPad-{n:3}', start: 1 },
      locale: { language: 'ja', region: 'ja_JP', timeZone: 'Asia/Tokyo' },
      eraseIfNeeded: true,
      mdmCheck: 'block',
      finish: 'none',
    });

    const validate = await kitting('blueprint', 'validate', out);
    expect(validate.code).toBe(0);
    expect(validate.stdout).toContain('Valid blueprint');

    const json = await kitting('--json', 'blueprint', 'validate', out);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ valid: true, issues: [], warnings: [] });
  });

  it('init defaults: every pane skipped, pairing allowed', async () => {
    const out = path.join(dir, 'defaults.json');
    const init = await kitting(
      '--json',
      'blueprint',
      'init',
      '--name',
      'x',
      '--identity',
      'org-1',
      '--org-name',
      'Org',
      '--no-store',
      '--out',
      out,
    );
    expect(init.code).toBe(0);
    expect(JSON.parse(init.stdout)).toMatchObject({
      written: out,
      blueprint: { skipSetup: 'all', allowPairing: true, supervise: true },
    });
  });

  it('init refuses bad values (exit 2); --no-store needs --out; storing needs the identity (exit 3)', async () => {
    const bad = await kitting(
      'blueprint',
      'init',
      '--name',
      'x',
      '--identity',
      'org-1',
      '--org-name',
      'Org',
      '--skip',
      'Nope',
      '--out',
      path.join(dir, 'bad-init.json'),
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('blueprint/invalid');
    expect(bad.stderr).toContain('skipSetup.0');
    expect(fs.existsSync(path.join(dir, 'bad-init.json'))).toBe(false);

    const noOut = await kitting(
      'blueprint',
      'init',
      '--name',
      'x',
      '--identity',
      'org-1',
      '--org-name',
      'Org',
      '--no-store',
    );
    expect(noOut.code).toBe(2);
    expect(noOut.stderr).toContain('--no-store needs --out FILE');

    const dataDir = path.join(dir, 'data');
    const out = path.join(dir, 'not-written.json');
    const unknownIdentity = await kitting(
      '--data-dir',
      dataDir,
      'blueprint',
      'init',
      '--name',
      'x',
      '--identity',
      'org-1',
      '--org-name',
      'Org',
      '--out',
      out,
    );
    expect(unknownIdentity.code).toBe(3);
    expect(unknownIdentity.stderr).toContain('identity/not-found');
    expect(fs.existsSync(out)).toBe(false);
  });

  it('an invalid file: exit 2, --json issues, Japanese messages with --lang ja', async () => {
    const file = path.join(dir, 'invalid.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        version: 1,
        name: '',
        organization: { identityId: 'org-1', displayName: 'Org', email: 'not-an-email' },
        enrollment: { method: 'url', url: 'https://m.example.jp/e', group: { groupId: 'g', hideAuthScreen: true } },
      }),
    );
    const r = await kitting('--json', '--lang', 'ja', 'blueprint', 'validate', file);
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout) as { valid: boolean; issues: JsonIssue[] };
    expect(doc.valid).toBe(false);
    expect(doc.issues.map((i) => [i.path, i.code])).toEqual([
      ['name', 'required'],
      ['organization.email', 'invalid-email'],
      ['enrollment.group.userId', 'credentials-required'],
      ['enrollment.group.passwordRef', 'credentials-required'],
    ]);
    expect(doc.issues[0]?.message).toBe('「ブループリント名」を入力してください。');
    for (const i of doc.issues) {
      expect(i.message).toBe(i.messages.ja);
      expect(i.messages.en).toMatch(/[A-Za-z]/);
    }

    const human = await kitting('--lang', 'ja', 'blueprint', 'validate', file);
    expect(human.code).toBe(2);
    expect(human.stdout).toContain('organization.email: 「サポート用メールアドレス」の形式が正しくありません');
    const en = await kitting('--lang', 'en', 'blueprint', 'validate', file);
    expect(en.stdout).toContain('name: Blueprint name is required.');
  });

  it('unreadable or non-JSON files exit 2, JSON syntax errors with line and column', async () => {
    const file = path.join(dir, 'broken.json');
    fs.writeFileSync(file, '{\n  "version": 1,\n  name: "x"\n}\n');
    const r = await kitting('--json', 'blueprint', 'validate', file);
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    expect(doc.error.code).toBe('blueprint/not-json');
    expect(doc.error.message).toContain('line 3, column 3');

    const missing = await kitting('blueprint', 'validate', path.join(dir, 'nope.json'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('io/read-failed');
  });
});
