/**
 * Serial plan import: 10,000 rows of Shift_JIS CSV (named columns with Japanese headers and names,
 * the largest file mobiconnect accepts) decoded, parsed, validated and stored in a fresh station
 * database file, as `kitting plan import` does. Figures are the median and best of several rounds,
 * each on its own database (WAL, as the station opens it); target ≤ 300 ms per import.
 *
 * `npm run bench csv` (via bench/run.ts) or standalone: `node_modules/.bin/node bench/csv.ts`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import iconv from 'iconv-lite';
import { importPlanCsv, MAX_PLAN_ROWS } from '../src/kitting/plans.ts';
import { openStationDatabase } from '../src/store/db.ts';
import type { BenchResult } from './types.ts';

const TARGET_MS = 300;
const ROUNDS = 7;

function corpus(): Buffer {
  const lines = ['シリアル番号,端末名,資産管理番号,グループ,ブループリント,備考'];
  for (let i = 0; i < MAX_PLAN_ROWS; i++) {
    const serial = `DMP${i.toString(36).toUpperCase().padStart(9, '0')}`;
    lines.push(
      `${serial},さくら小-iPad-${i + 1},資産-${String(i).padStart(5, '0')},${(i % 6) + 1}年${(i % 4) + 1}組,３年生,"備考, ${i}"`,
    );
  }
  return iconv.encode(`${lines.join('\r\n')}\r\n`, 'cp932');
}

/** Runs the rounds and returns the figures. */
export async function run(): Promise<BenchResult[]> {
  const bytes = corpus();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-bench-csv-'));
  const times: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const db = openStationDatabase(path.join(dir, `r${round}`));
      try {
        const t0 = performance.now();
        const r = importPlanCsv(db, bytes, { name: 'bench', file: 'bench.csv' });
        times.push(performance.now() - t0);
        if (r.rows !== MAX_PLAN_ROWS || r.encoding !== 'shift_jis')
          throw new Error(`unexpected import ${JSON.stringify(r)}`);
      } finally {
        db.close();
      }
      await Promise.resolve();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const sorted = [...times].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
  const best = sorted[0] ?? 0;
  return [
    {
      name: 'plan import 10,000 Shift_JIS rows (median)',
      value: median,
      unit: 'ms',
      target: `≤ ${TARGET_MS} ms`,
      ok: median <= TARGET_MS,
    },
    { name: 'plan import 10,000 Shift_JIS rows (best)', value: best, unit: 'ms' },
    { name: 'file size', value: bytes.length / 1024, unit: 'KiB' },
  ];
}

if (process.argv[1] !== undefined && import.meta.filename === path.resolve(process.argv[1])) {
  for (const r of await run()) {
    process.stdout.write(
      `${r.name}: ${r.value.toFixed(1)} ${r.unit}${r.target === undefined ? '' : ` (target ${r.target}${r.ok === true ? ' ✓' : ' ✗'})`}\n`,
    );
  }
}
