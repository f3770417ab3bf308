/**
 * Starting states of a virtual device (`--preset`). Each preset is a plain record of the state it
 * sets, so new presets (`supervised`, `activation-locked`) are new rows plus whatever state they need.
 */
import { KitError } from '../errors.ts';

/** What a person does when the Trust dialog appears. */
export type TrustMode = 'accept' | 'deny' | 'prompt';

/** Lockdown `ActivationState` values. */
export type ActivationState = 'Unactivated' | 'Activated' | 'FactoryActivated';

/** The state a preset sets on a new virtual device. */
export interface PresetSpec {
  /** One line for `--help` and docs. */
  readonly description: string;
  readonly activationState: ActivationState;
  /** Setup Assistant finished (false: the device is showing the Hello screen and pairs without a Trust dialog). */
  readonly setupComplete: boolean;
  readonly passcodeSet: boolean;
  readonly supervised: boolean;
  readonly trust: TrustMode;
  readonly language: string;
  readonly locale: string;
  readonly timeZone: string;
  /** Activation Lock is on (the activation server answers with the lock form). */
  readonly activationLocked: boolean;
  /**
   * The device was prepared by the simulator's supervision identity (`--identity-p12`): a cloud
   * configuration with IsSupervised, that certificate in SupervisorHostCertificates, AllowPairing
   * false.
   */
  readonly preparedBySupervisor: boolean;
}

/** Every preset (cli.md). */
export const PRESETS = {
  fresh: {
    description: 'erased, unactivated, in Setup Assistant',
    activationState: 'Unactivated',
    setupComplete: false,
    passcodeSet: false,
    supervised: false,
    trust: 'accept',
    language: 'en',
    locale: 'en_US',
    timeZone: 'America/Los_Angeles',
    activationLocked: false,
    preparedBySupervisor: false,
  },
  activated: {
    description: 'activated, in Setup Assistant',
    activationState: 'Activated',
    setupComplete: false,
    passcodeSet: false,
    supervised: false,
    trust: 'accept',
    language: 'en',
    locale: 'en_US',
    timeZone: 'America/Los_Angeles',
    activationLocked: false,
    preparedBySupervisor: false,
  },
  'in-use': {
    description: 'setup finished, passcode set, not supervised, Trust prompts',
    activationState: 'Activated',
    setupComplete: true,
    passcodeSet: true,
    supervised: false,
    trust: 'prompt',
    language: 'ja',
    locale: 'ja_JP',
    timeZone: 'Asia/Tokyo',
    activationLocked: false,
    preparedBySupervisor: false,
  },
  supervised: {
    description: 'prepared by the --identity-p12 identity: activated, supervised, pairing disallowed, setup finished',
    activationState: 'Activated',
    setupComplete: true,
    passcodeSet: false,
    supervised: true,
    trust: 'accept',
    language: 'ja',
    locale: 'ja_JP',
    timeZone: 'Asia/Tokyo',
    activationLocked: false,
    preparedBySupervisor: true,
  },
  'activation-locked': {
    description: 'unactivated, in Setup Assistant, Activation Lock on (the activation server answers with the lock)',
    activationState: 'Unactivated',
    setupComplete: false,
    passcodeSet: false,
    supervised: false,
    trust: 'accept',
    language: 'en',
    locale: 'en_US',
    timeZone: 'America/Los_Angeles',
    activationLocked: true,
    preparedBySupervisor: false,
  },
} as const satisfies Record<string, PresetSpec>;

/** A preset name. */
export type PresetName = keyof typeof PRESETS;

/** Preset names, for help texts. */
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

/** The preset called `name`; `usage/invalid-argument` for anything else. */
export function presetOf(name: string): PresetSpec & { name: PresetName } {
  if (Object.prototype.hasOwnProperty.call(PRESETS, name)) {
    const key = name as PresetName;
    return { ...PRESETS[key], name: key };
  }
  throw new KitError('usage/invalid-argument', `unknown preset "${name}" (available: ${PRESET_NAMES.join(', ')})`);
}
