/**
 * The live picture of the station the screens share (pure part: types and the event reducer; the
 * React hook that feeds it is in station-state.ts): every device (its identity from
 * `devices.list`, its state and next action from `devices.states` and events, its current step,
 * steps done and elapsed time from job events) and the running batch with its counts.
 */
import type { CommandResult, DeviceState, NextAction, StationEvent } from '../../src/contract.ts';

export type DeviceSummary = CommandResult<'devices.list'>[number];
export type ActiveBatch = NonNullable<CommandResult<'batch.status'>['active']>;
export type BatchCounts = ActiveBatch['counts'];

/** The pipeline's steps, in order (domain.md "The per-device pipeline"). */
export const STEP_IDS = [
  'identify',
  'check-mdm',
  'pair',
  'inspect',
  'erase',
  'activate',
  'configure',
  'enroll',
  'personalize',
  'finish',
] as const;
export type StepId = (typeof STEP_IDS)[number];

export function isStepId(s: string): s is StepId {
  return (STEP_IDS as readonly string[]).includes(s);
}

export interface DeviceView {
  readonly udid: string;
  readonly summary: DeviceSummary | null;
  readonly state: DeviceState;
  readonly nextAction: NextAction | null;
  readonly code: string | null;
  readonly hub: string | null;
  readonly jobId: string | null;
  readonly step: string | null;
  readonly stepsFinished: number;
  /** When the current (or last) job started or resumed here, ms since the epoch. */
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  readonly attached: boolean;
  /** Recovery/DFU: its ECID (the input of `devices.leaveRecovery`), when the station told it. */
  readonly ecid: string | null;
}

export interface StationView {
  readonly devices: ReadonlyMap<string, DeviceView>;
  readonly batch: ActiveBatch | null;
  /** Increments when something worth announcing happened (live region). */
  readonly announcement: { readonly seq: number; readonly udid: string; readonly state: DeviceState } | null;
}

export const EMPTY_VIEW: StationView = { devices: new Map(), batch: null, announcement: null };

export function blank(udid: string): DeviceView {
  return {
    udid,
    summary: null,
    state: 'attached',
    nextAction: null,
    code: null,
    hub: null,
    jobId: null,
    step: null,
    stepsFinished: 0,
    startedAt: null,
    finishedAt: null,
    attached: true,
    ecid: null,
  };
}

/** What the tile's large line says (`next.<line>` in the word tables). */
export type NextLine = NextAction | 'done' | 'failed' | 'wait' | 'queued' | 'ready';

/** Whether the running batch holds the device queued, waiting its turn (a cap or a pause). */
export function isQueued(batch: ActiveBatch | null, udid: string): boolean {
  return batch !== null && batch.queuedUdids.includes(udid);
}

/** The tile's large line: what a person must do, else the device's progress, `queued` while it waits its turn. */
export function nextLine(d: DeviceView, batch: ActiveBatch | null): NextLine {
  if (d.nextAction !== null) return d.nextAction;
  if (!d.attached && d.state !== 'done') return 'reconnect';
  switch (d.state) {
    case 'done':
      return 'done';
    case 'failed':
      return 'failed';
    case 'running':
      return 'wait';
    default:
      return isQueued(batch, d.udid) ? 'queued' : 'ready';
  }
}

/** The ECID for the tile's "leave recovery mode" button: a device in recovery whose ECID is known, else null. */
export function leaveRecoveryEcid(d: DeviceView): string | null {
  return d.state === 'recovery' && d.ecid !== null ? d.ecid : null;
}

/** Applies one event to the view (pure; exported for tests and the bench page). */
export function applyEvent(view: StationView, e: StationEvent): StationView {
  const devices = new Map(view.devices);
  let batch = view.batch;
  let announcement = view.announcement;
  const get = (udid: string): DeviceView => devices.get(udid) ?? blank(udid);
  const t = Date.parse(e.at);
  switch (e.type) {
    case 'deviceAttached':
      devices.set(e.udid, { ...get(e.udid), attached: true, hub: e.hub });
      break;
    case 'deviceDetached':
      devices.set(e.udid, { ...get(e.udid), attached: false });
      break;
    case 'deviceStateChanged': {
      const before = get(e.udid);
      devices.set(e.udid, {
        ...before,
        state: e.state,
        nextAction: e.nextAction ?? null,
        code: e.code ?? null,
        hub: e.hub ?? before.hub,
        jobId: e.jobId ?? before.jobId,
        ecid: e.ecid ?? before.ecid,
      });
      if (before.state !== e.state) announcement = { seq: (announcement?.seq ?? 0) + 1, udid: e.udid, state: e.state };
      break;
    }
    case 'jobCreated':
      devices.set(e.udid, {
        ...get(e.udid),
        jobId: e.jobId,
        step: null,
        stepsFinished: 0,
        startedAt: t,
        finishedAt: null,
      });
      break;
    case 'jobResumed': {
      const d = get(e.udid);
      devices.set(e.udid, { ...d, jobId: e.jobId, startedAt: d.startedAt ?? t, finishedAt: null });
      break;
    }
    case 'stepStarted': {
      const d = get(e.udid);
      const index = (STEP_IDS as readonly string[]).indexOf(e.stepId);
      devices.set(e.udid, {
        ...d,
        jobId: e.jobId,
        step: e.stepId,
        stepsFinished: Math.max(d.stepsFinished, index),
        startedAt: d.startedAt ?? t,
      });
      break;
    }
    case 'stepFinished': {
      const d = get(e.udid);
      const index = (STEP_IDS as readonly string[]).indexOf(e.stepId);
      devices.set(e.udid, { ...d, stepsFinished: Math.max(d.stepsFinished, index + 1) });
      break;
    }
    case 'jobFinished': {
      const d = get(e.udid);
      devices.set(e.udid, { ...d, stepsFinished: STEP_IDS.length, step: null, finishedAt: t });
      break;
    }
    case 'jobFailed':
    case 'jobCancelled':
      devices.set(e.udid, { ...get(e.udid), finishedAt: t });
      break;
    case 'batchStarted':
      batch = {
        batchId: e.batchId,
        mode: e.mode,
        blueprint: e.blueprint,
        paused: false,
        counts: { waiting: 0, queued: 0, running: 0, done: 0, failed: 0, throughputPerHour: 0, etaSeconds: null },
        queuedUdids: [],
      };
      break;
    case 'batchProgressed':
      if (batch !== null && batch.batchId === e.batchId) {
        batch = {
          ...batch,
          counts: {
            waiting: e.waiting,
            queued: e.queued,
            running: e.running,
            done: e.done,
            failed: e.failed,
            throughputPerHour: e.throughputPerHour,
            etaSeconds: e.etaSeconds,
          },
          queuedUdids: e.queuedUdids,
        };
      }
      break;
    case 'batchPaused':
      if (batch !== null) batch = { ...batch, paused: true };
      break;
    case 'batchResumed':
      if (batch !== null) batch = { ...batch, paused: false };
      break;
    case 'batchStopped':
    case 'batchFinished':
      if (batch !== null && batch.batchId === e.batchId) batch = null;
      break;
    default:
      return view;
  }
  return { devices, batch, announcement };
}
