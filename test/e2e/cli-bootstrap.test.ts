import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The `kitting` command as a fresh machine runs it: through the bin wrapper, with whatever Node the
 * system has (it re-runs itself on the repo's Node 22 when the system one is older), and as the
 * built bundle that ships inside the app.
 */
const root = path.resolve(import.meta.dirname, '../..');
const repoNode = path.join(root, 'node_modules', '.bin', 'node');

function systemNode(): string | undefined {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node']) {
    if (fs.existsSync(candidate)) return candidate;
  }
  return undefined;
}

describe('kitting bootstrap', () => {
  it('prints help through bin/kitting.js with the repo Node', () => {
    const r = spawnSync(repoNode, ['bin/kitting.js', '--help'], { cwd: root, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('Usage: kitting');
  });

  it('re-runs itself on Node 22 when started by an older system Node', () => {
    const node = systemNode();
    if (node === undefined) return expect.fail('no system node at /usr/bin/node or /usr/local/bin/node');
    const script = "console.log(process.versions.node.split('.')[0])";
    const version = spawnSync(node, ['-e', script], { encoding: 'utf8' }).stdout.trim();
    const r = spawnSync(node, ['bin/kitting.js', '--version'], { cwd: root, encoding: 'utf8' });
    expect(r.status, `system node ${version}: ${r.stderr}`).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('exits 2 with a JSON error on bad usage', () => {
    const r = spawnSync(repoNode, ['bin/kitting.js', '--json', '--no-such-option'], { cwd: root, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'usage/invalid-argument' } });
  });

  it('runs as the built bundle that ships in the app', () => {
    const bundle = path.join(root, 'dist', 'cli', 'main.js');
    if (!fs.existsSync(bundle))
      return expect.fail('dist/cli/main.js missing: run `npm run build` first (npm test does)');
    const r = spawnSync(repoNode, [bundle, '--help'], { cwd: root, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('Usage: kitting');
  });
});
