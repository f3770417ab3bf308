/**
 * How long things take on a virtual device. `none` answers at once (a reboot still takes a short
 * moment so a Detached is seen before the new Attached); `realistic` uses believable delays.
 * Every delay is multiplied by the time scale.
 */

/** Timing model selected with `--timing`. */
export type TimingMode = 'none' | 'realistic';

/** Named delays, in milliseconds before scaling. */
export interface Delays {
  /** Per lockdown/service request. */
  readonly request: number;
  /** From the Trust dialog appearing to an auto-accepting person tapping "Trust". */
  readonly trustDialog: number;
  /** From the reply to Restart/Shutdown/EnterRecovery until the device drops off the bus. */
  readonly detach: number;
  /** From dropping off the bus (reboot) until it is attached again. */
  readonly reboot: number;
  /** Power-on boot time (replug of a powered-off device). */
  readonly boot: number;
  /** From leaving the bus for "Erase All Content and Settings" until it is attached again, in Setup Assistant. */
  readonly erase: number;
}

const TABLE: Record<TimingMode, Delays> = {
  none: { request: 0, trustDialog: 0, detach: 0, reboot: 100, boot: 100, erase: 150 },
  realistic: { request: 4, trustDialog: 2500, detach: 800, reboot: 40_000, boot: 35_000, erase: 180_000 },
};

/** Scaled delays for a simulator run. */
export class Timing {
  readonly mode: TimingMode;
  readonly scale: number;

  constructor(mode: TimingMode = 'none', scale = 1) {
    if (!(scale >= 0) || !Number.isFinite(scale))
      throw new RangeError(`time scale must be a finite number ≥ 0, got ${scale}`);
    this.mode = mode;
    this.scale = scale;
  }

  /** The scaled delay `name` in milliseconds. */
  ms(name: keyof Delays): number {
    return Math.round(TABLE[this.mode][name] * this.scale);
  }

  /** Resolves after the scaled delay `name` (or `extraMs` more). */
  wait(name: keyof Delays, extraMs = 0): Promise<void> {
    return sleep(this.ms(name) + extraMs);
  }
}

/** Resolves after `ms` milliseconds (at once for 0). */
export function sleep(ms: number): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => setTimeout(resolve, ms));
}
