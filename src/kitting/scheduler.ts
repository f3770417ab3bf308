/**
 * The batch scheduler: which device runs when (architecture.md `scheduler.ts`, issue #5).
 *
 * One scheduler drives one batch (`kitting prepare`) or one watch session (`kitting watch`) over a
 * {@link Runner}. What it decides:
 *
 * - **Caps.** At most `maxParallel` jobs run at once, and at most `perHub` on one hub. A device's
 *   hub comes from {@link SchedulerOptions.hubOf}; the default ({@link busHub}) is the USB bus of
 *   usbmuxd's location id (`locationId >>> 16` on Linux), until the USB port map supplies real hub
 *   ids. A device with no known hub is only held by the global cap.
 * - **Queue.** Devices wait in FIFO order of the moment they became ready to run: attached (or
 *   listed at start), returned after leaving, or due for a re-poll. The first queued device whose
 *   hub has room starts; a device whose hub is full does not hold back devices behind it on other
 *   hubs.
 * - **Auto-apply (`mode: 'watch'`).** Every device attached at start and every one attached later
 *   gets the blueprint, until {@link BatchScheduler.stop}. A device whose job finished `done` is
 *   not run again in the same session when it re-attaches (a `finish: restart` comes back); one whose
 *   job failed or waited is queued again when it re-attaches (the technician fixed something).
 * - **Waits.** Retries with backoff for retryable codes are the runner's. A job that ends `waiting`
 *   because its device left (`device-gone`: erase, reboot, unplug) is queued again as soon as the
 *   same UDID is attached and continues the same job. Jobs waiting for a person (`trust-pending`,
 *   `locked`) are re-polled every `pollIntervalMs`, so a tapped Trust dialog continues the same job
 *   without a re-run; in watch mode `needs-internet` is re-polled too. In batch mode these waits
 *   last at most `waitTimeoutMs`, after which the device's outcome is `waiting` (the same command
 *   resumes the job later); in watch mode they last until stopped. `erase-confirmation` is never
 *   re-polled: only a run with the confirmation can continue.
 * - **Pause / resume.** {@link BatchScheduler.pause}: no new job starts (queued, returning and
 *   re-polled devices stay queued); running jobs run on to the end of their job (`done`, `failed` or
 *   a wait). Holding a device between two steps would keep it on the cable with a half-applied
 *   blueprint and no one to tell; finishing the job is what a technician pausing to re-cable a hub
 *   expects. {@link BatchScheduler.resume} starts queued devices again.
 * - **Stop.** {@link BatchScheduler.stop} aborts running jobs (the runner persists them `cancelled`
 *   at the interrupted step, which goes back to `pending`), drops the queue, and resolves
 *   {@link BatchScheduler.done} once every running job has returned.
 *
 * Events (past tense): the runner's {@link JobEvent}s, `deviceLeft` / `deviceReturned` for devices
 * of the batch, `batchProgressed` whenever a count changes, `batchPaused`, `batchResumed`,
 * `batchStopped`. Listeners run synchronously and must not throw.
 *
 * Lifecycle: `new BatchScheduler(options)` → {@link BatchScheduler.start} → (pause/resume/add) →
 * {@link BatchScheduler.done} resolves with one result per device: in batch mode when every device
 * has an outcome, in watch mode after {@link BatchScheduler.stop}.
 */
import { KitError, toKitError, type ErrorCode } from '../errors.ts';
import type { UsbmuxDevice } from '../device/usbmux.ts';
import type { DeviceWatcher } from '../device/watcher.ts';
import { createLogger } from '../log.ts';
import type { WaitingReason } from '../store/jobs.ts';
import type { Blueprint } from './blueprint.ts';
import type { KitDevice } from './device-port.ts';
import { systemClock, type JobEvent, type JobOutcome, type Runner, type RunnerClock } from './runner.ts';

const log = createLogger('kitting/scheduler');

/** A hub's id (text so the USB port map can supply `1-2.3`-style ids later). */
export type HubId = string;

/** Which hub a device hangs on, or null when unknown. */
export type HubOf = (device: UsbmuxDevice) => HubId | null;

/** The default {@link HubOf}: usbmuxd's location id's bus (`locationId >>> 16`; Linux `(bus << 16) | address`). */
export const busHub: HubOf = (device) =>
  device.locationId === undefined || device.locationId === 0 ? null : String(device.locationId >>> 16);

/** How one device's preparation ended (or stands, when the scheduler stopped). */
export interface DeviceOutcome {
  readonly udid: string;
  /** The job, or null when none was started. */
  readonly jobId: string | null;
  readonly status: 'done' | 'failed' | 'waiting' | 'cancelled';
  /** The failure's code, or the cause of the wait. */
  readonly errorCode?: ErrorCode;
  readonly errorMessage?: string;
  readonly waitingReason?: WaitingReason;
  /** The step the job failed or waits at. */
  readonly stepId?: string;
}

/** Counts of a batch (`batchProgressed`). */
export interface BatchCounts {
  /** Not running and not finished: queued to start plus waiting for a device or a person. */
  readonly waiting: number;
  /** Of {@link waiting}: ready and queued to start (held by a cap or a pause). */
  readonly queued: number;
  readonly running: number;
  readonly done: number;
  readonly failed: number;
  /** Devices done per hour since the batch started (0 before the first). */
  readonly throughputPerHour: number;
  /** Seconds until the devices not finished yet are done at the rate so far; null before the first is done. */
  readonly etaSeconds: number | null;
}

/** The devices waiting their turn (queued to start, held by a cap or a pause), in start order. */
export interface QueuedDevices {
  readonly queuedUdids: readonly string[];
}

/** Events of a scheduler (see the module doc). */
export type SchedulerEvent =
  | JobEvent
  | { readonly type: 'deviceLeft'; readonly udid: string; readonly at: string }
  | { readonly type: 'deviceReturned'; readonly udid: string; readonly at: string }
  | ({ readonly type: 'batchProgressed'; readonly at: string } & BatchCounts & QueuedDevices)
  | { readonly type: 'batchPaused'; readonly at: string }
  | { readonly type: 'batchResumed'; readonly at: string }
  | { readonly type: 'batchStopped'; readonly at: string };

/** Options of a {@link BatchScheduler}. */
export interface SchedulerOptions {
  /** `batch`: the given devices, then done. `watch`: every attached device, until stopped. */
  readonly mode: 'batch' | 'watch';
  /** Batch mode: the devices, or `'all'` for every device attached at start. Ignored in watch mode. */
  readonly udids?: readonly string[] | 'all';
  readonly blueprint: Blueprint;
  readonly confirmedErase: boolean;
  /** Global cap on running jobs (≥ 1). */
  readonly maxParallel: number;
  /** Cap per hub (≥ 1), or undefined for none. */
  readonly perHub?: number | undefined;
  readonly runner: Runner;
  /** A started watcher. */
  readonly watcher: DeviceWatcher;
  /** The port of a UDID (one per device, reused across runs). */
  readonly deviceFor: (udid: string) => KitDevice;
  /** Default {@link busHub}. */
  readonly hubOf?: HubOf;
  /** Batch mode: how long a device that left, or a job waiting for Trust/unlock, is waited for (default 5 min). */
  readonly waitTimeoutMs?: number;
  /** How often a job waiting for a person is tried again (default 2 s). */
  readonly pollIntervalMs?: number;
  /** Naming counter batch (runner default: per blueprint). */
  readonly batchId?: string;
  readonly clock?: RunnerClock;
  /** Aborting it is {@link BatchScheduler.stop}. */
  readonly signal?: AbortSignal;
}

type EntryState = 'queued' | 'running' | 'waiting' | 'done' | 'failed' | 'cancelled';

interface Entry {
  readonly udid: string;
  /** FIFO key: when the device last became ready. */
  seq: number;
  state: EntryState;
  /** The hub it runs on (while running). */
  hub: HubId | null;
  /** A wait that will not end by itself in this session (batch timeouts, erase confirmation). */
  final: boolean;
  outcome: DeviceOutcome | null;
  /** Runs started in this session (bounds a device that keeps leaving). */
  runs: number;
  /** Ends a pending poll or return wait. */
  timer: AbortController | null;
}

/** How many times one device may be started in one session before it is left as it is. */
const MAX_RUNS = 60;

function outcomeOf(o: JobOutcome): DeviceOutcome {
  const step = o.job.steps.find((s) => s.status === 'failed' || s.status === 'waiting');
  return {
    udid: o.udid,
    jobId: o.jobId,
    status: o.status,
    ...(o.error !== null && o.status !== 'done' ? { errorCode: o.error.code, errorMessage: o.error.message } : {}),
    ...(o.waitingReason !== null ? { waitingReason: o.waitingReason } : {}),
    ...(step !== undefined && o.status !== 'done' ? { stepId: step.stepId } : {}),
  };
}

/** The scheduler (see the module doc). */
export class BatchScheduler {
  private readonly o: SchedulerOptions;
  private readonly clock: RunnerClock;
  private readonly hubOf: HubOf;
  private readonly entries = new Map<string, Entry>();
  /** Batch mode: result order. */
  private order: string[] = [];
  private readonly listeners = new Set<(e: SchedulerEvent) => void>();
  private readonly stopController = new AbortController();
  private seq = 0;
  private running = 0;
  private readonly runningByHub = new Map<HubId, number>();
  private pausedFlag = false;
  private started = false;
  private stopping = false;
  private startedAt = 0;
  private unsubscribeRunner: (() => void) | undefined;
  private resolveDone: ((results: DeviceOutcome[]) => void) | undefined;
  /** Resolves with one outcome per device (batch: in the order given; watch: in attach order). */
  readonly done: Promise<DeviceOutcome[]>;

  constructor(options: SchedulerOptions) {
    for (const [flag, v] of [
      ['--max-parallel', options.maxParallel],
      ['--per-hub', options.perHub],
    ] as const) {
      if (v !== undefined && (!Number.isInteger(v) || v < 1)) {
        throw new KitError('usage/invalid-argument', `${flag} must be a whole number ≥ 1, not ${v}`);
      }
    }
    this.o = options;
    this.clock = options.clock ?? systemClock;
    this.hubOf = options.hubOf ?? busHub;
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  /** Subscribes to events; returns the unsubscribe function. */
  on(listener: (e: SchedulerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** True while paused. */
  get paused(): boolean {
    return this.pausedFlag;
  }

  /** The current counts. */
  counts(): BatchCounts {
    let waiting = 0;
    let queued = 0;
    let done = 0;
    let failed = 0;
    for (const e of this.entries.values()) {
      if (e.state === 'queued') queued++;
      else if (e.state === 'waiting') waiting++;
      else if (e.state === 'done') done++;
      else if (e.state === 'failed') failed++;
    }
    const elapsedS = this.startedAt === 0 ? 0 : Math.max(0.001, (this.clock.now().getTime() - this.startedAt) / 1000);
    const remaining = queued + waiting + this.running;
    return {
      waiting: waiting + queued,
      queued,
      running: this.running,
      done,
      failed,
      throughputPerHour: done === 0 || elapsedS === 0 ? 0 : (done * 3600) / elapsedS,
      etaSeconds: done === 0 ? (remaining === 0 ? 0 : null) : Math.round((remaining * elapsedS) / done),
    };
  }

  /**
   * Starts: batch mode queues the given (or all attached) devices, a named device that is not
   * attached gets a `failed` `device/not-found` outcome; watch mode queues every attached device and
   * follows new ones. @throws KitError `device/not-found` when none of the named UDIDs is attached.
   */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.startedAt = this.clock.now().getTime();
    const w = this.o.watcher;
    if (this.o.mode === 'batch') {
      const udids = this.o.udids === undefined || this.o.udids === 'all' ? null : [...new Set(this.o.udids)];
      if (udids !== null && udids.length > 0 && udids.every((u) => w.get(u) === undefined)) {
        throw new KitError(
          'device/not-found',
          udids.length === 1 ? `no attached device has UDID ${udids[0]}` : `none of ${udids.join(', ')} is attached`,
          udids.length === 1 ? { udid: udids[0] } : {},
        );
      }
      this.order = udids ?? this.attachedInOrder().map((d) => d.udid);
      for (const udid of this.order) {
        const e = this.entry(udid);
        if (w.get(udid) === undefined) {
          this.finish(e, 'failed', {
            udid,
            jobId: null,
            status: 'failed',
            errorCode: 'device/not-found',
            errorMessage: `no attached device has UDID ${udid}`,
          });
        }
      }
    } else {
      for (const d of this.attachedInOrder()) this.entry(d.udid);
    }
    w.on('attached', this.onAttached);
    w.on('detached', this.onDetached);
    this.unsubscribeRunner = this.o.runner.onEvent((e) => this.emit(e));
    this.o.signal?.addEventListener('abort', this.onAbort, { once: true });
    if (this.o.signal?.aborted === true) {
      this.stop();
      return;
    }
    this.progress();
    this.pump();
  }

  /** No new job starts until {@link resume}; running jobs run to their end. */
  pause(): void {
    if (this.pausedFlag || this.stopping) return;
    this.pausedFlag = true;
    this.emit({ type: 'batchPaused', at: this.iso() });
  }

  /** Starts queued devices again after {@link pause}. */
  resume(): void {
    if (!this.pausedFlag || this.stopping) return;
    this.pausedFlag = false;
    this.emit({ type: 'batchResumed', at: this.iso() });
    this.pump();
  }

  /**
   * Adds a device to the session (watch mode, or a retry in a running batch): queued at the back;
   * a device with a finished job gets a new one. No effect while it runs or when stopped.
   */
  add(udid: string): void {
    if (this.stopping) return;
    const e = this.entries.get(udid);
    if (e === undefined) {
      if (this.o.mode === 'batch') this.order.push(udid);
      this.entry(udid);
    } else if (e.state !== 'running') {
      e.runs = 0;
      this.enqueue(e);
    }
    this.progress();
    this.pump();
  }

  /** Aborts running jobs (persisted `cancelled`), drops the queue; {@link done} resolves when they returned. */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.stopController.abort(new KitError('kitting/cancelled', 'the batch was stopped'));
    for (const e of this.entries.values()) {
      e.timer?.abort();
      e.timer = null;
    }
    this.emit({ type: 'batchStopped', at: this.iso() });
    this.settle();
  }

  // ---- internals ---------------------------------------------------------------------------------

  private readonly onAbort = (): void => this.stop();

  private iso(): string {
    return this.clock.now().toISOString();
  }

  private emit(e: SchedulerEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        log.error('an event listener threw', { error: err, event: e.type });
      }
    }
  }

  private progress(): void {
    this.emit({ type: 'batchProgressed', at: this.iso(), ...this.counts(), queuedUdids: this.queuedUdids() });
  }

  /** The devices queued to start (waiting their turn), in start order. */
  queuedUdids(): string[] {
    return [...this.entries.values()]
      .filter((e) => e.state === 'queued')
      .sort((a, b) => a.seq - b.seq)
      .map((e) => e.udid);
  }

  private attachedInOrder(): UsbmuxDevice[] {
    return this.o.watcher.devices().sort((a, b) => a.deviceId - b.deviceId);
  }

  private entry(udid: string): Entry {
    let e = this.entries.get(udid);
    if (e === undefined) {
      e = { udid, seq: this.seq++, state: 'queued', hub: null, final: false, outcome: null, runs: 0, timer: null };
      this.entries.set(udid, e);
    }
    return e;
  }

  private enqueue(e: Entry): void {
    e.timer?.abort();
    e.timer = null;
    e.final = false;
    e.state = 'queued';
    e.seq = this.seq++;
  }

  private finish(e: Entry, state: 'done' | 'failed' | 'waiting' | 'cancelled', outcome: DeviceOutcome): void {
    e.state = state;
    e.outcome = outcome;
    e.final = state !== 'waiting' || e.final;
  }

  private readonly onAttached = (d: UsbmuxDevice): void => {
    if (this.stopping) return;
    const e = this.entries.get(d.udid);
    if (e === undefined) {
      if (this.o.mode === 'watch') {
        this.entry(d.udid);
        this.progress();
        this.pump();
      }
      return;
    }
    if (e.state === 'running' || e.state === 'queued') {
      this.pump();
      return;
    }
    if (e.state === 'done' || e.state === 'cancelled') return;
    const gone = e.outcome?.waitingReason === 'device-gone';
    if (e.state === 'failed' && this.o.mode === 'batch') return;
    if (gone || this.o.mode === 'watch') {
      this.emit({ type: 'deviceReturned', udid: d.udid, at: this.iso() });
      if (e.runs >= MAX_RUNS) return;
      if (e.state === 'failed') e.runs = 0;
      this.enqueue(e);
      this.progress();
      this.pump();
    }
  };

  private readonly onDetached = (d: UsbmuxDevice): void => {
    const e = this.entries.get(d.udid);
    if (this.stopping || e === undefined) return;
    this.emit({ type: 'deviceLeft', udid: d.udid, at: this.iso() });
    if (e.state === 'queued' && this.o.mode === 'batch') {
      // Queued but gone: wait for it like a job that saw its device leave (bounded in batch mode).
      e.state = 'waiting';
      e.outcome = {
        ...(e.outcome ?? { udid: e.udid, jobId: null }),
        status: 'waiting',
        waitingReason: 'device-gone',
      };
      this.afterWait(e, 'device-gone');
      this.progress();
    }
  };

  /** Starts queued devices while the caps allow. */
  private pump(): void {
    if (this.pausedFlag || this.stopping) return;
    const queued = [...this.entries.values()].filter((e) => e.state === 'queued').sort((a, b) => a.seq - b.seq);
    for (const e of queued) {
      if (this.running >= this.o.maxParallel) break;
      const device = this.o.watcher.get(e.udid);
      if (device === undefined) continue;
      const hub = this.hubOf(device);
      if (hub !== null && this.o.perHub !== undefined && (this.runningByHub.get(hub) ?? 0) >= this.o.perHub) continue;
      this.launch(e, hub);
    }
  }

  private launch(e: Entry, hub: HubId | null): void {
    e.state = 'running';
    e.hub = hub;
    e.runs++;
    this.running++;
    if (hub !== null) this.runningByHub.set(hub, (this.runningByHub.get(hub) ?? 0) + 1);
    this.progress();
    void this.o.runner
      .runJob({
        device: this.o.deviceFor(e.udid),
        blueprint: this.o.blueprint,
        confirmedErase: this.o.confirmedErase,
        signal: this.stopController.signal,
        ...(this.o.batchId !== undefined ? { batchId: this.o.batchId } : {}),
      })
      .then(
        (outcome) => this.settled(e, outcomeOf(outcome)),
        (err: unknown) => {
          const k = toKitError(err);
          log.warn('a job could not start', { udid: e.udid, code: k.code });
          this.settled(e, { udid: e.udid, jobId: null, status: 'failed', errorCode: k.code, errorMessage: k.message });
        },
      );
  }

  private settled(e: Entry, outcome: DeviceOutcome): void {
    this.running--;
    if (e.hub !== null) this.runningByHub.set(e.hub, (this.runningByHub.get(e.hub) ?? 1) - 1);
    e.hub = null;
    this.finish(e, outcome.status, outcome);
    if (outcome.status === 'waiting' && !this.stopping) this.afterWait(e, outcome.waitingReason);
    this.progress();
    this.pump();
    this.settle();
  }

  /** Decides how a waiting job continues (see the module doc, "Waits"). */
  private afterWait(e: Entry, reason: WaitingReason | undefined): void {
    const watch = this.o.mode === 'watch';
    const person = reason === 'trust-pending' || reason === 'locked' || (watch && reason === 'needs-internet');
    if ((reason !== 'device-gone' && !person) || e.runs >= MAX_RUNS) {
      e.final = !watch || e.runs >= MAX_RUNS;
      return;
    }
    const timer = new AbortController();
    e.timer = timer;
    const signal = AbortSignal.any([timer.signal, this.stopController.signal]);
    const waitTimeoutMs = this.o.waitTimeoutMs ?? 5 * 60_000;
    if (!watch) {
      // Batch mode: the wait has a deadline; then the outcome stays `waiting`.
      void this.clock.sleep(waitTimeoutMs, signal).then(
        () => {
          if (e.timer !== timer || e.state !== 'waiting') return;
          e.timer = null;
          e.final = true;
          log.info('the wait ended without the device; its job stays waiting', { udid: e.udid, reason });
          this.progress();
          this.settle();
        },
        () => undefined,
      );
    }
    if (reason === 'device-gone') {
      // The failing call may have seen the device gone before the watcher did: give the Detached
      // notification a moment; a device attached after that is back (else `onAttached` queues it).
      void this.clock.sleep(200, signal).then(
        () => {
          if (e.timer !== timer || e.state !== 'waiting' || this.o.watcher.get(e.udid) === undefined) return;
          this.emit({ type: 'deviceReturned', udid: e.udid, at: this.iso() });
          this.enqueue(e);
          this.progress();
          this.pump();
        },
        () => undefined,
      );
      return;
    }
    const poll = (): void => {
      void this.clock.sleep(this.o.pollIntervalMs ?? 2_000, signal).then(
        () => {
          if (e.timer !== timer || e.state !== 'waiting') return;
          if (this.o.watcher.get(e.udid) === undefined) {
            poll();
            return;
          }
          this.enqueue(e);
          this.progress();
          this.pump();
        },
        () => undefined,
      );
    };
    poll();
  }

  /** Resolves {@link done} when nothing more will happen. */
  private settle(): void {
    if (this.resolveDone === undefined || this.running > 0) return;
    if (!this.stopping) {
      if (this.o.mode === 'watch') return;
      for (const e of this.entries.values()) {
        if (e.state === 'queued' || e.state === 'running' || (e.state === 'waiting' && !e.final)) return;
      }
    }
    const resolve = this.resolveDone;
    this.resolveDone = undefined;
    this.o.watcher.off('attached', this.onAttached);
    this.o.watcher.off('detached', this.onDetached);
    this.o.signal?.removeEventListener('abort', this.onAbort);
    this.unsubscribeRunner?.();
    for (const e of this.entries.values()) {
      e.timer?.abort();
      e.timer = null;
    }
    const order = this.o.mode === 'batch' ? this.order : [...this.entries.keys()];
    resolve(
      order.map((udid): DeviceOutcome => {
        const e = this.entries.get(udid);
        if (e?.outcome != null) {
          return e.state === 'queued' && this.stopping ? { ...e.outcome, status: 'cancelled' } : e.outcome;
        }
        return {
          udid,
          jobId: null,
          status: 'cancelled',
          errorCode: 'kitting/cancelled',
          errorMessage: 'stopped before it ran',
        };
      }),
    );
  }
}
