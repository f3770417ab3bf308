/**
 * Invariants a prepared virtual device and its jobs must satisfy after any interruption: one cloud
 * configuration (ours), one of each profile, the right name, and no step applied twice.
 */
import { expect } from 'vitest';
import type { DeviceStateJson } from '../../src/simulator/index.ts';
import { listStepEvents } from '../../src/store/jobs.ts';
import type { PrepareEnv } from './prepare-env.ts';

/** Steps that change the device: each may take effect at most once per device. */
export const WRITE_STEPS = ['erase', 'activate', 'configure', 'enroll', 'personalize', 'finish'] as const;

/** What the device must show once prepared by the `sweep` blueprint. */
export interface Expected {
  readonly org: string;
  /** Profile identifiers that must be installed (exactly once each). */
  readonly profiles: readonly string[];
  /** The staged enrollment profile's identifier, when the blueprint stages one. */
  readonly stored?: string;
}

/** Asserts the device state. */
export function expectPrepared(state: DeviceStateJson, expected: Expected): void {
  expect(state.cloudConfiguration).not.toBeNull();
  expect(state.cloudConfiguration).toMatchObject({ IsSupervised: true, OrganizationName: expected.org });
  expect(state.supervised).toBe(true);
  expect(state.activationState).not.toBe('Unactivated');
  expect(state.deviceName).toBe(`CART-${state.serial}`);
  const ids = state.profiles.map((p) => p.identifier);
  expect(new Set(ids).size).toBe(ids.length);
  for (const id of expected.profiles) expect(ids.filter((x) => x === id)).toHaveLength(1);
  expect(state.pendingProfiles).toEqual([]);
  if (expected.stored !== undefined) expect(state.storedProfile?.identifier).toBe(expected.stored);
}

/**
 * Asserts, over every job of `udid`, that each write step finished by doing its work at most once
 * (a `stepFinished` done that the runner did not record as found already done), and that the
 * newest job is done. Returns the count of such finishes per step.
 */
export function expectAppliedOnce(env: PrepareEnv, udid: string): Record<string, number> {
  const jobs = env.jobs().filter((j) => j.udid === udid);
  expect(jobs.length).toBeGreaterThan(0);
  expect(jobs[jobs.length - 1]?.status).toBe('done');
  const db = env.db();
  const counts: Record<string, number> = {};
  try {
    for (const job of jobs) {
      for (const e of listStepEvents(db, job.id, 'stepFinished')) {
        if (e.stepId === null || e.details.status !== 'done' || e.details.alreadyDone === true) continue;
        counts[e.stepId] = (counts[e.stepId] ?? 0) + 1;
      }
    }
  } finally {
    db.close();
  }
  for (const step of WRITE_STEPS) expect(counts[step] ?? 0, `${step} applied`).toBeLessThanOrEqual(1);
  return counts;
}
