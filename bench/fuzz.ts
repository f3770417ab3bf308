/**
 * Fuzz throughput (issue #9): 100,000 generated cases per parser target (plist XML, plist binary,
 * usbmuxd packets, lockdown frames, plan CSV, p12/PEM/DER) with the generators and the harness of
 * the chaos tier (test/helpers/fuzz-*.ts): each target runs in a worker thread capped at 256 MiB
 * of heap, under a per-case watchdog (5 s). Figures per target: cases per second, the slowest
 * case, the worker's peak heap. A case that is not a KitError fails the group (it is a bug).
 *
 * `npm run bench -- fuzz` (via bench/run.ts); `FUZZ_SEED=<n>` fixes the seed (printed otherwise).
 */
import { runFuzz } from '../test/helpers/fuzz-run.ts';
import { FUZZ_TARGETS } from '../test/helpers/fuzz-targets.ts';
import type { BenchResult } from './types.ts';

const CASES = Number(process.env.FUZZ_CASES ?? 100_000);
const CASE_LIMIT_MS = 5_000;
const MAX_HEAP_MB = 256;

export async function run(): Promise<BenchResult[]> {
  const seed =
    process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
  process.stderr.write(`fuzz: seed ${seed}, ${CASES} cases per target\n`);
  const out: BenchResult[] = [];
  for (const target of FUZZ_TARGETS) {
    const r = await runFuzz({ target, seed, cases: CASES, caseLimitMs: CASE_LIMIT_MS, maxHeapMb: MAX_HEAP_MB });
    if (r.failures.length > 0) {
      throw new Error(`fuzz ${target} (seed ${seed}): not a KitError: ${JSON.stringify(r.failures[0], null, 2)}`);
    }
    out.push(
      {
        name: `${target}: cases per second`,
        value: (r.cases / r.elapsedMs) * 1000,
        unit: 'cases/s',
        target: `${CASES} cases, all KitError or ok`,
        ok: true,
      },
      {
        name: `${target}: slowest case`,
        value: r.maxCaseMs,
        unit: 'ms',
        target: `< ${CASE_LIMIT_MS} ms (watchdog)`,
        ok: r.maxCaseMs < CASE_LIMIT_MS,
      },
      {
        name: `${target}: peak heap`,
        value: r.heapPeak / 2 ** 20,
        unit: 'MiB',
        target: `< ${MAX_HEAP_MB} MiB (cap)`,
        ok: r.heapPeak < MAX_HEAP_MB * 2 ** 20,
      },
    );
  }
  return out;
}
