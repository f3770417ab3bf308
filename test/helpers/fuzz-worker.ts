/**
 * Runs fuzz cases of one target in a worker thread (see fuzz-run.ts): the main thread watches the
 * shared progress words and terminates the worker when one case runs past its time limit, and the
 * worker's heap is capped by `resourceLimits`, so a hang or a runaway allocation ends the run with
 * the case's numbers instead of stalling CI.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Rng, checkThrown, createTarget, type FuzzTargetName } from './fuzz-targets.ts';

export interface FuzzWorkerData {
  target: FuzzTargetName;
  seed: number;
  first: number;
  cases: number;
  /** [0] = index of the case running (or -1), [1] = its start (performance.now() of the worker's timeOrigin + offset). */
  progress: SharedArrayBuffer;
}

export interface FuzzFailure {
  index: number;
  error: string;
  inputHex: string;
}

export interface FuzzWorkerResult {
  cases: number;
  outcomes: Record<string, number>;
  failures: FuzzFailure[];
  maxCaseMs: number;
  maxCaseIndex: number;
  heapStart: number;
  heapPeak: number;
  heapEnd: number;
  elapsedMs: number;
}

// A full collection before the first and after the last heap reading, so the growth is what stayed.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const data = workerData as FuzzWorkerData;
const progress = new Float64Array(data.progress);
const target = createTarget(data.target);
const outcomes: Record<string, number> = {};
const failures: FuzzFailure[] = [];
let maxCaseMs = 0;
let maxCaseIndex = -1;
gc();
const heapStart = process.memoryUsage().heapUsed;
let heapPeak = heapStart;
const t0 = performance.now();
for (let i = data.first; i < data.first + data.cases; i++) {
  const rng = Rng.forCase(data.seed, i);
  const input = target.input(rng);
  const start = performance.now();
  progress[0] = i;
  progress[1] = performance.timeOrigin + start;
  let outcome = 'ok';
  try {
    const named = await target.run(input, rng);
    if (typeof named === 'string') outcome = named;
  } catch (err) {
    try {
      outcome = checkThrown(err);
    } catch (bad) {
      outcome = 'FAILURE';
      if (failures.length < 5) {
        const original = (bad as { original?: unknown }).original;
        failures.push({
          index: i,
          error: original instanceof Error ? (original.stack ?? original.message) : String(bad),
          inputHex: input.subarray(0, 512).toString('hex'),
        });
      }
    }
  }
  const ms = performance.now() - start;
  if (ms > maxCaseMs) {
    maxCaseMs = ms;
    maxCaseIndex = i;
  }
  outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  if ((i & 255) === 0) heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
}
progress[0] = -1;
const elapsedMs = performance.now() - t0;
heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
gc();
const heapEnd = process.memoryUsage().heapUsed;
target.close?.();
const result: FuzzWorkerResult = {
  cases: data.cases,
  outcomes,
  failures,
  maxCaseMs,
  maxCaseIndex,
  heapStart,
  heapPeak,
  heapEnd,
  elapsedMs,
};
parentPort?.postMessage(result);
