/**
 * `npm test`: every check that runs on this kind of machine, then ONE summary line.
 *
 *   typecheck → lint (eslint + prettier) → build → vitest (tiers unit, simulator, conformance, e2e)
 *
 * Static checks count as one test each. The last line printed is `N passed, N failed, N skipped`
 * (CI reads it); the exit status is non-zero when anything failed or nothing ran.
 *
 * `npm test -- unit simulator` runs only those vitest tiers (static checks still run first unless
 * `--no-static` is given).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const runStatic = !args.includes('--no-static');
const tiers = args.filter((a) => !a.startsWith('--'));
const bin = (name: string): string => path.join(root, 'node_modules', '.bin', name);

// Tools start with `#!/usr/bin/env node`: put this Node (the repo's Node 22) and the repo's bins
// first on the PATH, or a machine whose system Node is older runs vitest and the native modules
// (better-sqlite3 needs Node 22) on the wrong Node.
const childEnv: NodeJS.ProcessEnv = {
  ...process.env,
  PATH: [path.dirname(process.execPath), path.join(root, 'node_modules', '.bin'), process.env.PATH ?? ''].join(
    path.delimiter,
  ),
};

let passed = 0;
let failed = 0;
let skipped = 0;
const failures: string[] = [];

function step(name: string, command: string, commandArgs: string[]): void {
  process.stdout.write(`\n=== ${name}: ${path.basename(command)} ${commandArgs.join(' ')}\n`);
  const r = spawnSync(command, commandArgs, { cwd: root, stdio: 'inherit', env: childEnv });
  if (r.status === 0) passed += 1;
  else {
    failed += 1;
    failures.push(name);
  }
}

if (runStatic) {
  step('typecheck', bin('tsc'), ['-p', 'tsconfig.json', '--noEmit']);
  if (fs.existsSync(path.join(root, 'renderer', 'tsconfig.json'))) {
    step('typecheck renderer', bin('tsc'), ['-p', 'renderer/tsconfig.json', '--noEmit']);
  }
  step('lint', bin('eslint'), ['.', '--max-warnings=0']);
  step('format', bin('prettier'), ['--check', '.', '--log-level=warn']);
  step('build', process.execPath, [path.join(root, 'scripts', 'build.ts')]);
}

interface VitestReport {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  testResults: { name: string; status: string; message?: string; assertionResults: { status: string }[] }[];
}

const outDir = path.join(root, 'test-results');
fs.mkdirSync(outDir, { recursive: true });
const reportFile = path.join(outDir, 'vitest.json');
fs.rmSync(reportFile, { force: true });
const projectArgs = tiers.flatMap((t) => ['--project', t]);
process.stdout.write(`\n=== tests: vitest ${tiers.length > 0 ? tiers.join(', ') : 'all tiers'}\n`);
const vitest = spawnSync(
  bin('vitest'),
  ['run', ...projectArgs, '--reporter=default', '--reporter=json', `--outputFile.json=${reportFile}`],
  { cwd: root, stdio: 'inherit', env: { ...childEnv, FORCE_COLOR: process.env.CI === undefined ? '1' : '0' } },
);
if (fs.existsSync(reportFile)) {
  const report = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as VitestReport;
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + report.numTodoTests;
  // A file that fails outside its tests (syntax error, failing hook, a crashed worker) may have
  // no failed test of its own, but it must count.
  for (const file of report.testResults) {
    const ownFailures = file.assertionResults.filter((a) => a.status === 'failed').length;
    if (file.status === 'failed' && ownFailures === 0) {
      failed += 1;
      failures.push(path.relative(root, file.name));
    }
  }
  if (report.numFailedTests > 0) failures.push(`${report.numFailedTests} vitest test(s)`);
  // Errors outside any file (unhandled rejections, worker crashes) fail the run too.
  if (vitest.status !== 0 && report.numFailedTests === 0 && !failures.some((f) => f.endsWith('.ts'))) {
    failed += 1;
    failures.push(`vitest exited with status ${String(vitest.status)} (unhandled errors)`);
  }
} else {
  failed += 1;
  failures.push('vitest produced no report');
}

if (failures.length > 0) process.stdout.write(`\nFailed: ${failures.join('; ')}\n`);
process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
