/**
 * Fuzzing (issue #9): at least 10,000 generated cases per parser — plist XML, plist binary,
 * usbmuxd packets, lockdown frames (through the real PlistChannel), plan CSV files, PKCS#12/PEM/DER
 * identity files. Each case must return or throw a catalogued KitError (not `bug`); each runs under
 * a per-case time limit (a watchdog terminates the worker thread running the cases); the worker's
 * heap is capped and its growth over the run must stay bounded.
 *
 * The seed is printed; `FUZZ_SEED=<n> npx vitest run test/chaos/fuzz.test.ts` replays a run, and a
 * failure names the case index to replay alone (`Rng.forCase(seed, index)` in fuzz-targets.ts).
 * `npm run bench -- fuzz` runs 100,000 cases per target with the same code.
 */
import { describe, expect, it } from 'vitest';
import { runFuzz } from '../helpers/fuzz-run.ts';
import { FUZZ_TARGETS } from '../helpers/fuzz-targets.ts';

const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const CASES = 10_000;
/** Heap still held after the run (after a full GC), beyond what the target held at the start. */
const MAX_RETAINED_BYTES = 16 * 1024 * 1024;

describe(`fuzzing the parsers (seed ${SEED})`, () => {
  for (const target of FUZZ_TARGETS) {
    it(`${target}: ${CASES} cases, only KitErrors, no hang, bounded memory`, { timeout: 120_000 }, async () => {
      process.stdout.write(`fuzz ${target}: seed ${SEED}\n`);
      const r = await runFuzz({ target, seed: SEED, cases: CASES, caseLimitMs: 3_000, maxHeapMb: 256 });
      process.stdout.write(
        `fuzz ${target}: ${r.cases} cases in ${Math.round(r.elapsedMs)} ms, slowest case ${r.maxCaseMs.toFixed(1)} ms (#${r.maxCaseIndex}), heap ${(r.heapStart / 2 ** 20).toFixed(1)} → peak ${(r.heapPeak / 2 ** 20).toFixed(1)} → ${(r.heapEnd / 2 ** 20).toFixed(1)} MiB, outcomes ${JSON.stringify(r.outcomes)}\n`,
      );
      expect(r.failures, `seed ${SEED}: ${JSON.stringify(r.failures, null, 2)}`).toEqual([]);
      expect(Object.values(r.outcomes).reduce((a, b) => a + b, 0)).toBe(CASES);
      // The generators must reach both sides: inputs that parse and inputs that are refused.
      expect(Object.keys(r.outcomes).length).toBeGreaterThan(1);
      expect(r.heapEnd - r.heapStart).toBeLessThan(MAX_RETAINED_BYTES);
    });
  }
});

describe('the fuzz harness can fail', () => {
  it('reports a hang as a failure naming the case', async () => {
    // A per-case limit of 0 ms: the first case that takes any time at all is "a hang".
    await expect(runFuzz({ target: 'p12', seed: 1, cases: 10_000, caseLimitMs: 0 })).rejects.toThrow(/ran longer than/);
  });
});
