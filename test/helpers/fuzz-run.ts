/**
 * Runs one fuzz target in a worker thread under a watchdog (per-case time limit) and a heap cap.
 * Used by test/chaos/fuzz.test.ts and bench/fuzz.ts.
 */
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { FuzzTargetName } from './fuzz-targets.ts';
import type { FuzzWorkerData, FuzzWorkerResult } from './fuzz-worker.ts';

export interface FuzzRunOptions {
  target: FuzzTargetName;
  seed: number;
  cases: number;
  /** A case running longer than this is a hang: the worker is terminated and the run fails. */
  caseLimitMs?: number;
  /** Heap cap of the worker (MiB): more is an out-of-memory failure. */
  maxHeapMb?: number;
}

export interface FuzzRunResult extends FuzzWorkerResult {
  target: FuzzTargetName;
  seed: number;
}

export function runFuzz(options: FuzzRunOptions): Promise<FuzzRunResult> {
  const caseLimitMs = options.caseLimitMs ?? 2_000;
  const progress = new SharedArrayBuffer(16);
  const view = new Float64Array(progress);
  view[0] = -1;
  const data: FuzzWorkerData = { target: options.target, seed: options.seed, first: 0, cases: options.cases, progress };
  const worker = new Worker(new URL('./fuzz-worker.ts', import.meta.url), {
    workerData: data,
    resourceLimits: { maxOldGenerationSizeMb: options.maxHeapMb ?? 256, stackSizeMb: 4 },
  });
  return new Promise<FuzzRunResult>((resolve, reject) => {
    let done = false;
    const watchdog = setInterval(() => {
      const index = view[0] ?? -1;
      const started = view[1] ?? 0;
      if (index >= 0 && performance.timeOrigin + performance.now() - started > caseLimitMs) {
        finish(
          new Error(
            `fuzz ${options.target}: case ${index} (seed ${options.seed}) ran longer than ${caseLimitMs} ms (a hang); replay with Rng.forCase(${options.seed}, ${index})`,
          ),
        );
        void worker.terminate();
      }
    }, 100);
    const finish = (err: Error | undefined, result?: FuzzWorkerResult): void => {
      if (done) return;
      done = true;
      clearInterval(watchdog);
      if (err !== undefined) reject(err);
      else if (result !== undefined) resolve({ ...result, target: options.target, seed: options.seed });
    };
    worker.on('message', (result: FuzzWorkerResult) => finish(undefined, result));
    worker.on('error', (err) =>
      finish(
        new Error(`fuzz ${options.target} (seed ${options.seed}): worker died at case ${view[0]}: ${err.message}`),
      ),
    );
    worker.on('exit', (code) =>
      finish(new Error(`fuzz ${options.target}: worker exited with ${code} before reporting`)),
    );
  });
}
