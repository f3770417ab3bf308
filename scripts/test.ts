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

let passed = 0;
let failed = 0;
let skipped = 0;
const failures: string[] = [];

function step(name: string, command: string, commandArgs: string[]): void {
  process.stdout.write(`\n=== ${name}: ${path.basename(command)} ${commandArgs.join(' ')}\n`);
  const r = spawnSync(command, commandArgs, { cwd: root, stdio: 'inherit', env: process.env });
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
  testResults: { name: string; status: string; message?: string; assertionResults: unknown[] }[];
}

const outDir = path.join(root, 'test-results');
fs.mkdirSync(outDir, { recursive: true });
const reportFile = path.join(outDir, 'vitest.json');
fs.rmSync(reportFile, { force: true });
const projectArgs = tiers.flatMap((t) => ['--project', t]);
process.stdout.write(`\n=== tests: vitest ${tiers.length > 0 ? tiers.join(', ') : 'all tiers'}\n`);
spawnSync(
  bin('vitest'),
  ['run', ...projectArgs, '--reporter=default', '--reporter=json', `--outputFile.json=${reportFile}`],
  { cwd: root, stdio: 'inherit', env: { ...process.env, FORCE_COLOR: process.env.CI === undefined ? '1' : '0' } },
);
if (fs.existsSync(reportFile)) {
  const report = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as VitestReport;
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + report.numTodoTests;
  // A file that fails to load (syntax error, failing hook) has no test results but must count.
  for (const file of report.testResults) {
    if (file.status === 'failed' && file.assertionResults.length === 0) {
      failed += 1;
      failures.push(path.relative(root, file.name));
    }
  }
  if (report.numFailedTests > 0) failures.push(`${report.numFailedTests} vitest test(s)`);
} else {
  failed += 1;
  failures.push('vitest produced no report');
}

if (failures.length > 0) process.stdout.write(`\nFailed: ${failures.join('; ')}\n`);
process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
