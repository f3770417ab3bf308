/**
 * Helpers for station tests: concurrency derived from the order of events (never from wall-clock
 * time), and a spawned `kitting watch` / `kitting prepare` whose `--json --events` lines can be
 * awaited.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { StationEvent } from '../../src/contract.ts';
import { KITTING, NODE, ROOT } from './sim-process.ts';

/** A parsed event line (station events, prepare events, or the final summary). */
export type EventLine = { readonly type: string; readonly udid?: string; readonly jobId?: string } & Record<
  string,
  unknown
>;

const STARTS = new Set(['jobCreated', 'jobResumed', 'stepStarted', 'stepFinished', 'stepProgressed']);
const ENDS = new Set(['jobFinished', 'jobFailed', 'jobWaiting', 'jobCancelled']);

/**
 * The most jobs active at once, overall and per group (`groupOf(udid)`, e.g. the hub), replaying
 * the runner's events in order: a device is active from its first job event until its job ends
 * (done, failed, waiting, cancelled).
 */
export function maxConcurrent(
  events: readonly EventLine[],
  groupOf: (udid: string) => string | null = () => null,
): { overall: number; perGroup: Map<string, number> } {
  const active = new Set<string>();
  const perGroupNow = new Map<string, number>();
  const perGroup = new Map<string, number>();
  let overall = 0;
  for (const e of events) {
    const udid = e.udid;
    if (udid === undefined) continue;
    const group = groupOf(udid);
    if (STARTS.has(e.type) && !active.has(udid)) {
      active.add(udid);
      overall = Math.max(overall, active.size);
      if (group !== null) {
        const n = (perGroupNow.get(group) ?? 0) + 1;
        perGroupNow.set(group, n);
        perGroup.set(group, Math.max(perGroup.get(group) ?? 0, n));
      }
    } else if (ENDS.has(e.type) && active.has(udid)) {
      active.delete(udid);
      if (group !== null) perGroupNow.set(group, (perGroupNow.get(group) ?? 1) - 1);
    }
  }
  return { overall, perGroup };
}

/** The hub of each device, from the station's `deviceAttached` events. */
export function hubsFrom(events: readonly (StationEvent | EventLine)[]): Map<string, string | null> {
  const hubs = new Map<string, string | null>();
  for (const e of events) {
    if (e.type === 'deviceAttached' && typeof e.udid === 'string') {
      hubs.set(e.udid, (e as { hub?: string | null }).hub ?? null);
    }
  }
  return hubs;
}

/** A spawned `kitting … --json --events` process. */
export interface EventProcess {
  readonly child: ChildProcess;
  /** Every line so far. */
  readonly lines: EventLine[];
  /** Resolves with the first line (past or future) matching; rejects when the process exits first or after `timeoutMs`. */
  waitFor(match: (e: EventLine) => boolean, timeoutMs?: number): Promise<EventLine>;
  /** Sends a signal by PID. */
  signal(sig: NodeJS.Signals): void;
  /** Resolves on exit. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

/** Spawns `kitting args…` with `USBMUXD_SOCKET_ADDRESS=usbmuxd`; `onLine` sees each event line as it comes. */
export function spawnEvents(
  usbmuxd: string,
  args: readonly string[],
  onLine?: (e: EventLine, p: EventProcess) => void,
): EventProcess {
  const child = spawn(NODE, [KITTING, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, USBMUXD_SOCKET_ADDRESS: usbmuxd, KITTING_LOG: 'error' },
  });
  const lines: EventLine[] = [];
  const waiters = new Set<{ match: (e: EventLine) => boolean; resolve: (e: EventLine) => void }>();
  let stderr = '';
  let buf = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const p: EventProcess = {
    child,
    lines,
    exited,
    stderr: () => stderr,
    signal(sig) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, sig);
    },
    waitFor(match, timeoutMs = 60_000) {
      const seen = lines.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = {
          match,
          resolve: (e: EventLine) => {
            clearTimeout(timer);
            resolve(e);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`no matching event within ${timeoutMs} ms; stderr:\n${stderr}`));
        }, timeoutMs);
        waiters.add(w);
        void exited.then(({ code, signal }) => {
          if (!waiters.has(w)) return;
          waiters.delete(w);
          clearTimeout(timer);
          reject(new Error(`the process exited (${String(code)}/${String(signal)}) first; stderr:\n${stderr}`));
        });
      });
    },
  };
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    stderr += s;
  });
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (s: string) => {
    buf += s;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const text = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (text.trim() === '') continue;
      const e = JSON.parse(text) as EventLine;
      lines.push(e);
      onLine?.(e, p);
      for (const w of [...waiters]) {
        if (w.match(e)) {
          waiters.delete(w);
          w.resolve(e);
        }
      }
    }
  });
  return p;
}
