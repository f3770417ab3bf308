/**
 * `npm run bench [-- NAME…] [-- --json]`: prints figures, never pass/fail timers.
 *
 * Each group lives in bench/NAME.ts and exports `run(): Promise<BenchResult[]>`. Results are also
 * saved to bench/results/DATE-GROUP.json with a description of the machine, so figures can be
 * compared across runs. Targets are printed beside the figures; a missed target does not fail.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BenchGroup, BenchResult } from './types.ts';

const GROUPS: Record<string, () => Promise<{ run: BenchGroup }>> = {
  plist: () => import('./plist.ts'),
  lockdown: () => import('./lockdown.ts'),
  csv: () => import('./csv.ts'),
  station: () => import('./station.ts'),
  sync: () => import('./sync.ts'),
  ui: () => import('./ui.ts'),
  fuzz: () => import('./fuzz.ts'),
};

const args = process.argv.slice(2);
const json = args.includes('--json');
const names = args.filter((a) => !a.startsWith('--'));
const unknown = names.filter((n) => !(n in GROUPS));
if (unknown.length > 0) {
  process.stderr.write(`unknown bench group(s): ${unknown.join(', ')}; groups: ${Object.keys(GROUPS).join(', ')}\n`);
  process.exit(2);
}
const selected = names.length > 0 ? names : Object.keys(GROUPS);

const machine = {
  cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}`,
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  platform: `${os.platform()} ${os.release()} ${os.arch()}`,
  node: process.version,
};

function fmt(v: number): string {
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3);
}

const resultsDir = path.join(import.meta.dirname, 'results');
fs.mkdirSync(resultsDir, { recursive: true });
const date = new Date().toISOString().slice(0, 10);
const all: Record<string, BenchResult[]> = {};
let failedGroups = 0;

for (const name of selected) {
  const loader = GROUPS[name];
  if (loader === undefined) continue;
  if (!json) process.stdout.write(`\n## ${name}\n`);
  try {
    const results = await (await loader()).run();
    all[name] = results;
    fs.writeFileSync(
      path.join(resultsDir, `${date}-${name}.json`),
      `${JSON.stringify({ date: new Date().toISOString(), machine, group: name, results }, null, 2)}\n`,
    );
    if (!json) {
      const width = Math.max(...results.map((r) => r.name.length), 10);
      for (const r of results) {
        const mark = r.ok === undefined ? '' : r.ok ? '  ✓' : '  ✗ (missed)';
        const target = r.target !== undefined ? `   target ${r.target}${mark}` : '';
        process.stdout.write(`${r.name.padEnd(width)}  ${fmt(r.value).padStart(10)} ${r.unit}${target}\n`);
      }
    }
  } catch (err) {
    failedGroups += 1;
    process.stderr.write(`bench ${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
}

if (json) process.stdout.write(`${JSON.stringify({ machine, results: all }, null, 2)}\n`);
process.exitCode = failedGroups > 0 ? 1 : 0;
