/**
 * The job runner: one job per device, walking the pipeline steps (`steps.ts`) and persisting every
 * transition in SQLite (`src/store/jobs.ts`) before and after it happens, so a killed process,
 * an unplugged cable or a rebooted device resumes at the first step that is not done.
 *
 * Lifecycle of a job:
 * 1. {@link Runner.runJob} finds the device's unfinished job (pending, running or waiting) for the
 *    same blueprint and continues it, or creates a new one (the blueprint is snapshotted into the
 *    job; a device's naming counter `{n}` is kept per batch, so a re-run names it the same).
 * 2. For each step in order: `isDone` (reads the device); true → the step is marked `done` (if this
 *    job already ran it) or `skipped`. Otherwise the step is persisted `running`, `run` is called,
 *    and the step is persisted `done`/`skipped`. `identify`, `check-mdm` and `inspect` always re-run.
 * 3. A failure is classified by its code:
 *    - waiting codes ({@link WAITING_CODES}: Trust pending, locked, no internet, device gone, erase
 *      not confirmed) → step and job `waiting` with a reason; the job continues from there when
 *      {@link Runner.resume} (or `runJob`) is called again with the device;
 *    - retryable codes (the catalogue's `retryable`) → retried with exponential backoff up to
 *      {@link RetryPolicy.maxAttempts} per step and run;
 *    - anything else → step `failed` (error code and message) and job `failed`, with its result row.
 * 4. After the last step the job becomes `done` and its result row is written in the same
 *    transaction (the MDM outbox joins that transaction later).
 * 5. Aborting the signal cancels: the interrupted step goes back to `pending`, the job becomes
 *    `cancelled`.
 *
 * Never `await` inside a store transaction: every store call is synchronous and completes before
 * the next device call starts.
 *
 * Usage (what `kitting prepare` does):
 * ```ts
 * const runner = createRunner({
 *   db, // openStationDatabase(dataDir)
 *   // IdentityService#get throws identity/not-found; #signer needs the vault passphrase.
 *   supervisor: async (bp) => {
 *     const { certificateDer } = identities.get(bp.organization.identityId);
 *     const sign = unlocked ? await identities.signer(bp.organization.identityId) : null;
 *     return { certificateDer, signer: sign === null ? null : { certificateDer, sign } };
 *   },
 *   profiles: fileProfileLoader({ baseDir: path.dirname(blueprintFile) }),
 * });
 * runner.onEvent((e) => print(e));
 * const outcome = await runner.runJob({ device, blueprint, confirmedErase: opts.yes, signal });
 * // later, when the scheduler sees the same UDID attached again:
 * await runner.resume(udid, device, { confirmedErase: opts.yes });
 * ```
 */
import { randomUUID } from 'node:crypto';
import { KitError, toKitError, type ErrorCode } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import {
  appendStepEvent,
  cancelJob,
  createJob,
  failJob,
  findUnfinishedJob,
  finishJob,
  getJob,
  latestStepEvent,
  markJobRunning,
  markStepFinished,
  markStepRunning,
  markStepWaiting,
  recordAttemptFailed,
  recordIdentity,
  type JobRecord,
  type JsonObject,
  type WaitingReason,
} from '../store/jobs.ts';
import { parseBlueprint, type Blueprint } from './blueprint.ts';
import type { KitDevice } from './device-port.ts';
import {
  STEPS,
  type FactKind,
  type PlanEntry,
  type ProfileLoader,
  type ProgressKind,
  type StepContext,
  type StepDefinition,
  type StepId,
  type SupervisorAccess,
} from './steps.ts';

/** Time and waiting, injectable so tests never sleep. */
export interface RunnerClock {
  now(): Date;
  /** Resolves after `ms`; rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The real clock. */
export const systemClock: RunnerClock = {
  now: () => new Date(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(signal.reason as Error);
        return;
      }
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal?.reason as Error);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

/** Retries of retryable codes: attempt k (1-based) waits `min(maxDelayMs, baseDelayMs · 2^(k−1))` after failing. */
export interface RetryPolicy {
  /** Attempts per step and run, the first included (default 4). */
  readonly maxAttempts: number;
  /** Default 1000 ms. */
  readonly baseDelayMs: number;
  /** Default 30 000 ms. */
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 4, baseDelayMs: 1000, maxDelayMs: 30_000 };

/** The delay before attempt `attempt + 1` after attempt `attempt` (1-based) failed. */
export function retryDelayMs(policy: RetryPolicy, attempt: number): number {
  return Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
}

/**
 * Codes that make a job wait for something outside the station instead of failing. They are not
 * retried by the runner: the wait ends when the device is handed to the runner again.
 */
export const WAITING_CODES: Readonly<Partial<Record<ErrorCode, WaitingReason>>> = {
  'lockdown/trust-pending': 'trust-pending',
  'lockdown/password-protected': 'locked',
  'mcinstall/device-locked': 'locked',
  'activation/offline': 'needs-internet',
  'usbmux/device-gone': 'device-gone',
  'device/not-found': 'device-gone',
  'kitting/erase-not-confirmed': 'erase-confirmation',
};

/** Events, past tense (architecture.md). Every event carries the job and device. */
export type JobEvent =
  | {
      readonly type: 'jobCreated';
      readonly jobId: string;
      readonly udid: string;
      readonly at: string;
      readonly blueprint: string;
      readonly seqN: number;
    }
  | { readonly type: 'jobResumed'; readonly jobId: string; readonly udid: string; readonly at: string }
  | {
      readonly type: 'stepStarted';
      readonly jobId: string;
      readonly udid: string;
      readonly at: string;
      readonly stepId: StepId;
      readonly attempt: number;
    }
  | {
      readonly type: 'stepProgressed';
      readonly jobId: string;
      readonly udid: string;
      readonly at: string;
      readonly stepId: StepId;
      readonly kind: ProgressKind;
      readonly details: JsonObject;
    }
  | {
      readonly type: 'stepFinished';
      readonly jobId: string;
      readonly udid: string;
      readonly at: string;
      readonly stepId: StepId;
      readonly status: 'done' | 'skipped';
      readonly details: JsonObject;
    }
  | {
      readonly type: 'stepFailed';
      readonly jobId: string;
      readonly udid: string;
      readonly at: string;
      readonly stepId: StepId;
      readonly code: ErrorCode;
      readonly message: string;
      /** Set when the runner will try again after this many milliseconds. */
      readonly retryInMs: number | null;
    }
  | {
      readonly type: 'jobWaiting';
      readonly jobId: string;
      readonly udid: string;
      readonly at: string;
      readonly stepId: StepId;
      readonly reason: WaitingReason;
      readonly code: ErrorCode;
    }
  | { readonly type: 'jobFinished'; readonly jobId: string; readonly udid: string; readonly at: string }
  | {
      readonly type: 'jobFailed';
      readonly jobId: string;
      readonly udid: string;
      readonly at: string;
      readonly stepId: StepId;
      readonly code: ErrorCode;
      readonly message: string;
    }
  | {
      readonly type: 'jobCancelled';
      readonly jobId: string;
      readonly udid: string;
      readonly at: string;
      readonly stepId: StepId | null;
    };

/** How a call to {@link Runner.runJob} / {@link Runner.resume} ended. */
export interface JobOutcome {
  readonly jobId: string;
  readonly udid: string;
  readonly status: 'done' | 'failed' | 'waiting' | 'cancelled';
  readonly waitingReason: WaitingReason | null;
  /** The failure or the cause of the wait. */
  readonly error: KitError | null;
  /** The job as persisted at the end of the call. */
  readonly job: JobRecord;
}

/** Input of {@link Runner.runJob}. */
export interface RunJobInput {
  readonly device: KitDevice;
  readonly blueprint: Blueprint;
  /** Batch of the naming counter (default `blueprint:<name>`: one counter per blueprint). */
  readonly batchId?: string;
  /** The technician confirmed erasing (`--yes`). */
  readonly confirmedErase?: boolean;
  readonly signal?: AbortSignal;
}

/** Options of {@link Runner.resume}. */
export interface ResumeOptions {
  readonly confirmedErase?: boolean;
  readonly signal?: AbortSignal;
}

/** Options of {@link createRunner}. */
export interface RunnerOptions {
  /** The station database (migrated to 0002 or later). */
  readonly db: Db;
  /**
   * The supervision identity of a blueprint's organization: its certificate, and a signer when the
   * identity is unlocked (a locked identity is not an error: `signer: null`). Called once per
   * `runJob` / `resume`, before anything is written; its rejection rejects that call.
   */
  readonly supervisor: (blueprint: Blueprint) => Promise<SupervisorAccess>;
  readonly profiles: ProfileLoader;
  /** The plan row for a serial (default: no plan). */
  readonly planFor?: (serial: string) => PlanEntry | null;
  /** The pipeline (default {@link STEPS}). */
  readonly steps?: readonly StepDefinition[];
  readonly logger?: Logger;
  readonly clock?: RunnerClock;
  readonly retry?: Partial<RetryPolicy>;
  /** How long `erase` waits for the device to come back (default 15 minutes). */
  readonly eraseReturnTimeoutMs?: number;
  /** Job ids (default random UUIDs). */
  readonly newId?: () => string;
}

/** The runner. One per process; jobs for different devices run concurrently. */
export interface Runner {
  /**
   * Runs the blueprint on the device: continues the device's unfinished job for this blueprint, or
   * creates one. An unfinished job of another blueprint is cancelled first (superseded).
   * Resolves with the outcome (never rejects for device or step failures). Rejects, leaving the
   * store untouched, with `usage/invalid-argument` when a job for this UDID is already running in
   * this runner and with the `supervisor` callback's error (e.g. `identity/not-found`); rejects with
   * `store/*` codes when the database fails.
   */
  runJob(input: RunJobInput): Promise<JobOutcome>;
  /**
   * Continues the device's unfinished job (waiting, or interrupted by a crash) with the device as
   * it is attached now, using the blueprint snapshot of the job. Resolves undefined when the UDID
   * has no unfinished job.
   */
  resume(udid: string, device: KitDevice, options?: ResumeOptions): Promise<JobOutcome | undefined>;
  /** Subscribes to events; returns the unsubscribe function. Listeners must not throw. */
  onEvent(listener: (event: JobEvent) => void): () => void;
}

/** Creates a {@link Runner} (see the module doc for the lifecycle). */
export function createRunner(options: RunnerOptions): Runner {
  const db = options.db;
  const steps = options.steps ?? STEPS;
  const clock = options.clock ?? systemClock;
  const retry: RetryPolicy = { ...DEFAULT_RETRY, ...options.retry };
  const baseLog = options.logger ?? createLogger('kitting/runner');
  const newId = options.newId ?? randomUUID;
  const listeners = new Set<(event: JobEvent) => void>();
  const active = new Set<string>();

  const iso = (): string => clock.now().toISOString();
  const emit = (event: JobEvent): void => {
    for (const l of listeners) {
      try {
        l(event);
      } catch (err) {
        baseLog.error('an event listener threw', { error: err, event: event.type });
      }
    }
  };

  async function execute(
    job: JobRecord,
    blueprint: Blueprint,
    supervisor: SupervisorAccess,
    device: KitDevice,
    confirmedErase: boolean,
    signal: AbortSignal,
    resumed: boolean,
  ): Promise<JobOutcome> {
    const log = baseLog.child({ udid: job.udid, jobId: job.id });
    const outcome = (
      status: JobOutcome['status'],
      reason: WaitingReason | null,
      error: KitError | null,
    ): JobOutcome => {
      const current = getJob(db, job.id);
      if (current === undefined) throw new KitError('bug', `job ${job.id} vanished`);
      return { jobId: job.id, udid: job.udid, status, waitingReason: reason, error, job: current };
    };
    const summary = (): JsonObject => {
      const current = getJob(db, job.id);
      const identity = latestStepEvent(db, job.id, 'factsRecorded:identity');
      return {
        blueprint: blueprint.name,
        batchId: job.batchId,
        seqN: job.seqN,
        serial: identity?.serial ?? null,
        steps: Object.fromEntries((current?.steps ?? []).map((s) => [s.stepId, s.status])),
      };
    };
    let current: StepDefinition | null = null;
    const cancelled = (): JobOutcome => {
      const at = iso();
      cancelJob(db, job.id, current?.id ?? null, summary(), at);
      emit({ type: 'jobCancelled', jobId: job.id, udid: job.udid, at, stepId: current?.id ?? null });
      log.info('job cancelled', { step: current?.id ?? null });
      return outcome('cancelled', null, new KitError('kitting/cancelled', 'cancelled', { udid: job.udid }));
    };

    if (signal.aborted) return cancelled();

    markJobRunning(db, job.id, resumed, iso());
    if (resumed) emit({ type: 'jobResumed', jobId: job.id, udid: job.udid, at: iso() });

    const ctx: StepContext = {
      device,
      blueprint,
      job: { id: job.id, udid: job.udid, batchId: job.batchId, seqN: job.seqN },
      confirmedErase,
      signal,
      supervisor,
      profiles: options.profiles,
      planFor: options.planFor ?? (() => null),
      eraseReturnTimeoutMs: options.eraseReturnTimeoutMs ?? 15 * 60_000,
      recordFacts(kind: FactKind, facts: JsonObject) {
        const at = iso();
        if (kind === 'identity') {
          recordIdentity(
            db,
            job.id,
            current?.id ?? 'identify',
            {
              udid: job.udid,
              serial: typeof facts.serial === 'string' ? facts.serial : null,
              ecid: typeof facts.ecid === 'string' ? facts.ecid : null,
              productType: typeof facts.productType === 'string' ? facts.productType : null,
            },
            at,
          );
        }
        appendStepEvent(db, job.id, current?.id ?? null, `factsRecorded:${kind}`, facts, at);
      },
      lastFacts: (kind: FactKind) => latestStepEvent(db, job.id, `factsRecorded:${kind}`),
      stepStatus: (stepId: StepId) => getJob(db, job.id)?.steps.find((s) => s.stepId === stepId)?.status,
      progress(kind: ProgressKind, details: JsonObject = {}) {
        const at = iso();
        const stepId = current?.id ?? 'identify';
        appendStepEvent(db, job.id, stepId, 'stepProgressed', { kind, ...details }, at);
        emit({ type: 'stepProgressed', jobId: job.id, udid: job.udid, at, stepId, kind, details });
      },
    };

    for (const step of steps) {
      current = step;
      for (let attempt = 1; ; attempt++) {
        if (signal.aborted) return cancelled();
        try {
          if (await raceAbort(step.isDone(ctx), signal)) {
            // `done` when this job ran the step (an earlier attempt, perhaps interrupted after it took
            // effect); `skipped` when the device was already as the step wants it.
            const before = getJob(db, job.id)?.steps.find((s) => s.stepId === step.id);
            const status =
              before !== undefined && (before.status === 'done' || before.attempts > 0) ? 'done' : 'skipped';
            const at = iso();
            markStepFinished(db, job.id, step.id, status, at, { alreadyDone: true });
            emit({ type: 'stepFinished', jobId: job.id, udid: job.udid, at, stepId: step.id, status, details: {} });
            break;
          }
          const started = markStepRunning(db, job.id, step.id, iso());
          emit({
            type: 'stepStarted',
            jobId: job.id,
            udid: job.udid,
            at: iso(),
            stepId: step.id,
            attempt: started.attempts,
          });
          log.debug('step started', { step: step.id, attempt: started.attempts });
          const result = await raceAbort(step.run(ctx), signal);
          const at = iso();
          const details = result.details ?? {};
          markStepFinished(db, job.id, step.id, result.status, at, details);
          emit({
            type: 'stepFinished',
            jobId: job.id,
            udid: job.udid,
            at,
            stepId: step.id,
            status: result.status,
            details,
          });
          log.info('step finished', { step: step.id, status: result.status });
          break;
        } catch (err) {
          if (signal.aborted) return cancelled();
          const e = toKitError(err);
          const at = iso();
          const reason = WAITING_CODES[e.code];
          if (reason !== undefined) {
            markStepWaiting(db, job.id, step.id, reason, { code: e.code, message: e.message }, at);
            emit({ type: 'jobWaiting', jobId: job.id, udid: job.udid, at, stepId: step.id, reason, code: e.code });
            log.info('job waiting', { step: step.id, reason, code: e.code });
            return outcome('waiting', reason, e);
          }
          if (e.retryable && attempt < retry.maxAttempts) {
            const delay = retryDelayMs(retry, attempt);
            recordAttemptFailed(db, job.id, step.id, { code: e.code, message: e.message }, delay, at);
            emit({
              type: 'stepFailed',
              jobId: job.id,
              udid: job.udid,
              at,
              stepId: step.id,
              code: e.code,
              message: e.message,
              retryInMs: delay,
            });
            log.warn('step attempt failed; retrying', { step: step.id, code: e.code, attempt, delayMs: delay });
            try {
              await clock.sleep(delay, signal);
            } catch {
              return cancelled();
            }
            continue;
          }
          failJob(db, job.id, step.id, { code: e.code, message: e.message }, summary(), at);
          emit({
            type: 'stepFailed',
            jobId: job.id,
            udid: job.udid,
            at,
            stepId: step.id,
            code: e.code,
            message: e.message,
            retryInMs: null,
          });
          emit({
            type: 'jobFailed',
            jobId: job.id,
            udid: job.udid,
            at,
            stepId: step.id,
            code: e.code,
            message: e.message,
          });
          log.warn('job failed', { step: step.id, code: e.code, error: e });
          return outcome('failed', null, e);
        }
      }
    }
    current = null;
    const at = iso();
    finishJob(db, job.id, summary(), at);
    emit({ type: 'jobFinished', jobId: job.id, udid: job.udid, at });
    log.info('job finished');
    return outcome('done', null, null);
  }

  async function exclusive<T>(udid: string, fn: () => Promise<T>): Promise<T> {
    if (active.has(udid)) {
      throw new KitError('usage/invalid-argument', `a job for ${udid} is already running`, { udid });
    }
    active.add(udid);
    try {
      return await fn();
    } finally {
      active.delete(udid);
    }
  }

  return {
    runJob(input) {
      const udid = input.device.udid;
      return exclusive(udid, async () => {
        const signal = input.signal ?? new AbortController().signal;
        const unfinished = findUnfinishedJob(db, udid);
        let job = unfinished?.blueprintName === input.blueprint.name ? unfinished : undefined;
        const resumed = job !== undefined;
        const blueprint = job !== undefined ? snapshot(job) : input.blueprint;
        // Resolved before anything is written: an unknown identity leaves the store untouched.
        const supervisor = await options.supervisor(blueprint);
        if (unfinished !== undefined && job === undefined) {
          const at = iso();
          cancelJob(db, unfinished.id, null, { supersededBy: input.blueprint.name }, at);
          emit({ type: 'jobCancelled', jobId: unfinished.id, udid, at, stepId: null });
        }
        if (job === undefined) {
          job = createJob(
            db,
            {
              id: newId(),
              udid,
              serial: null,
              blueprintName: input.blueprint.name,
              blueprintJson: JSON.stringify(input.blueprint),
              batchId: input.batchId ?? `blueprint:${input.blueprint.name}`,
              counterStart: input.blueprint.naming?.start ?? 1,
              steps: steps.map((s) => s.id),
            },
            iso(),
          );
          emit({ type: 'jobCreated', jobId: job.id, udid, at: iso(), blueprint: job.blueprintName, seqN: job.seqN });
        }
        return execute(job, blueprint, supervisor, input.device, input.confirmedErase === true, signal, resumed);
      });
    },
    async resume(udid, device, resumeOptions = {}) {
      if (device.udid !== udid) throw new KitError('bug', `resume(${udid}) was given the port of ${device.udid}`);
      const job = findUnfinishedJob(db, udid);
      if (job === undefined) return undefined;
      const blueprint = snapshot(job);
      return exclusive(udid, async () =>
        execute(
          job,
          blueprint,
          await options.supervisor(blueprint),
          device,
          resumeOptions.confirmedErase === true,
          resumeOptions.signal ?? new AbortController().signal,
          true,
        ),
      );
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/** The blueprint a job was created with. */
function snapshot(job: JobRecord): Blueprint {
  return parseBlueprint(JSON.parse(job.blueprintJson) as unknown);
}

/** `promise`, or a rejection as soon as `signal` aborts (the promise itself runs on, unobserved). */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
