/**
 * One error type for the whole station: {@link KitError}.
 *
 * Raw protocol results (usbmux numbers, lockdown `Error` strings, MCInstall `ErrorChain`s, HTTP
 * statuses, SQLite codes) become a namespaced `code` at the edge, through tables. Everything above
 * the edge (retry policy, CLI exit codes, UI messages) keys on the code alone.
 *
 * The catalogue below is the single list of codes. Each code says whether a retry may help and
 * which CLI exit code it maps to; the ja/en message table (`src/i18n/messages.ts`) is typed as a
 * `Record` over the same keys, so a code cannot ship without words.
 */

/** How a failure maps to the CLI's exit codes (cli.md): 1 failed, 2 bad usage/input, 3 nothing matched. */
export type ExitKind = 'failed' | 'usage' | 'not-found';

interface CodeSpec {
  /** A retry (with backoff) may succeed without a person doing anything. */
  readonly retryable: boolean;
  readonly exit: ExitKind;
}

const spec = (retryable: boolean, exit: ExitKind = 'failed'): CodeSpec => ({ retryable, exit });

/** Every error code the station can raise. Add new codes here (and their words in the message table). */
export const ERROR_CODES = {
  /** A defect: an invariant broke. Never retried. */
  bug: spec(false),
  'usage/invalid-argument': spec(false, 'usage'),
  'usage/unknown-command': spec(false, 'usage'),
  'io/read-failed': spec(false, 'usage'),
  'io/write-failed': spec(false),
  'io/not-found': spec(false, 'not-found'),

  'plist/malformed': spec(false, 'usage'),
  'plist/unsupported': spec(false, 'usage'),
  'cms/malformed': spec(false, 'usage'),

  // kitting/ blueprints, cloud configuration, naming (src/kitting/blueprint.ts, cloud-config.ts, naming.ts)
  'blueprint/invalid': spec(false, 'usage'),
  'blueprint/not-json': spec(false, 'usage'),
  'blueprint/shared-ipad-quota': spec(false),
  'blueprint/duplicate-name': spec(false),
  'blueprint/not-found': spec(false, 'not-found'),
  // csv/ serial plans (src/kitting/plans.ts): import and export of CSV files
  'csv/too-many-rows': spec(false, 'usage'),
  'csv/invalid-rows': spec(false, 'usage'),
  'csv/malformed': spec(false, 'usage'),
  'csv/encoding': spec(false, 'usage'),
  'csv/empty': spec(false, 'usage'),
  'csv/bad-header': spec(false, 'usage'),
  'csv/unrepresentable': spec(false),
  'plan/not-found': spec(false, 'not-found'),
  'naming/invalid-template': spec(false, 'usage'),
  'naming/missing-plan-field': spec(false),
  'naming/too-long': spec(false),

  // store/ (SQLite): see src/store/db.ts for the SQLite result table.
  'store/busy': spec(true),
  'store/constraint': spec(false),
  'store/corrupt': spec(false),
  'store/io': spec(false),
  'store/newer-schema': spec(false),
  // vault: private keys encrypted at rest (src/identity/vault.ts).
  'vault/passphrase-required': spec(false, 'usage'),
  'vault/wrong-passphrase': spec(false, 'usage'),
  'vault/corrupt': spec(false),
  // identity/: organization (supervision) identities (src/identity/).
  'identity/not-found': spec(false, 'not-found'),
  'identity/wrong-password': spec(false, 'usage'),
  'identity/corrupt-file': spec(false, 'usage'),
  'identity/missing-key': spec(false, 'usage'),
  'identity/missing-certificate': spec(false, 'usage'),
  'identity/key-mismatch': spec(false, 'usage'),
  'identity/expired': spec(false, 'usage'),
  'identity/weak-key': spec(false, 'usage'),
  'identity/unsupported-key': spec(false, 'usage'),
  'identity/duplicate': spec(false),
  'identity/in-use': spec(false),

  // device/ (usbmuxd, framing, lockdown, pairing, services): see src/device/*.ts for the tables.
  'usbmux/unavailable': spec(true),
  'usbmux/bad-command': spec(false),
  'usbmux/device-gone': spec(false),
  'usbmux/connection-refused': spec(true),
  'usbmux/no-such-service': spec(false),
  'usbmux/bad-version': spec(false),
  'usbmux/pair-record-failed': spec(false),
  'usbmux/failed': spec(false),
  'device/not-found': spec(false, 'not-found'),
  'device/timeout': spec(true),
  'device/frame-too-large': spec(false),
  'device/bad-reply': spec(false),
  'device/connection-lost': spec(true),
  'device/tls-failed': spec(false),
  'device/wrong-mode': spec(false),
  'pairing/invalid-record': spec(false),
  'pairing/failed': spec(false),
  'lockdown/invalid-response': spec(false),
  'lockdown/missing-key': spec(false),
  'lockdown/missing-value': spec(false),
  'lockdown/get-prohibited': spec(false),
  'lockdown/set-prohibited': spec(false),
  'lockdown/remove-prohibited': spec(false),
  'lockdown/immutable-value': spec(false),
  'lockdown/password-protected': spec(false),
  'lockdown/trust-denied': spec(false),
  'lockdown/trust-pending': spec(true),
  'lockdown/missing-host-id': spec(false),
  'lockdown/invalid-host-id': spec(false),
  'lockdown/session-active': spec(false),
  'lockdown/session-inactive': spec(true),
  'lockdown/missing-session-id': spec(false),
  'lockdown/invalid-session-id': spec(false),
  'lockdown/missing-service': spec(false),
  'lockdown/invalid-service': spec(false),
  'lockdown/service-limit': spec(true),
  'lockdown/missing-pair-record': spec(false),
  'lockdown/save-pair-record-failed': spec(false),
  'lockdown/invalid-pair-record': spec(false),
  'lockdown/invalid-activation-record': spec(false),
  'lockdown/missing-activation-record': spec(false),
  'lockdown/service-prohibited': spec(false),
  'lockdown/escrow-locked': spec(false),
  'lockdown/pairing-prohibited': spec(false),
  'lockdown/fmip-protected': spec(false),
  'lockdown/mc-protected': spec(false),
  'lockdown/mc-challenge-required': spec(false),
  'lockdown/invalid-connection': spec(false),
  'lockdown/unknown-error': spec(false),
  'lockdown/supervisor-rejected': spec(false),
  'diagnostics/failed': spec(false),
  // usb/: the USB layer (src/device/usb*.ts): port numbers, recovery/DFU devices (protocols.md §8).
  'usb/not-loaded': spec(false),
  'usb/unavailable': spec(false),
  'usb/permission-denied': spec(false),
  'usb/not-found': spec(false, 'not-found'),
  'usb/device-gone': spec(false),
  'usb/transfer-failed': spec(false),
  'usb/recovery-not-confirmed': spec(false, 'usage'),
  // MCInstall (com.apple.mobile.MCInstall) ErrorChain / Status → code, at the device edge (protocols.md §4.2).
  'mcinstall/cloud-config-present': spec(false),
  'mcinstall/not-activated': spec(false),
  'mcinstall/ade-assigned': spec(false),
  'mcinstall/device-locked': spec(false),
  'mcinstall/escalation-rejected': spec(false),
  'mcinstall/not-escalated': spec(false),
  'mcinstall/profile-rejected': spec(false),
  'mcinstall/failed': spec(false),
  'mcinstall/not-supervised': spec(false),
  'mcinstall/profile-not-found': spec(false, 'not-found'),
  // AFC (com.apple.afc) status codes → code (protocols.md Appendix A; src/device/services/afc.ts).
  'afc/not-found': spec(false, 'not-found'),
  'afc/exists': spec(false),
  'afc/permission-denied': spec(false),
  'afc/dir-not-empty': spec(false),
  'afc/no-space': spec(false),
  'afc/failed': spec(false),
  // activation through mobileactivationd and Apple's activation server (protocols.md §6).
  'activation/offline': spec(true),
  'activation/locked': spec(false),
  'activation/failed': spec(false),
  'activation/server-error': spec(false),

  // kitting/ pipeline steps and the job runner (src/kitting/steps.ts, runner.ts)
  'kitting/erase-needed': spec(false),
  'kitting/erase-not-allowed': spec(false),
  'kitting/erase-not-confirmed': spec(false),
  'kitting/erase-unconfirmed': spec(true),
  'kitting/ade-assigned': spec(false),
  'kitting/signer-required': spec(false),
  'kitting/profile-unavailable': spec(false),
  'kitting/cancelled': spec(false),
  'kitting/mdm-registered': spec(false),
  // batch/ the scheduler behind prepare and watch (src/kitting/scheduler.ts, src/station.ts)
  'batch/already-running': spec(false),
  'batch/not-running': spec(false, 'not-found'),
  'job/not-found': spec(false, 'not-found'),

  // simulator/ (virtual usbmuxd and devices, sim-ctl)
  'sim/unknown-device': spec(false, 'not-found'),
  'sim/invalid-state': spec(false),
  'sim/control-unreachable': spec(true),
  'sim/start-failed': spec(false),
  'sim/setup-needs-credentials': spec(false),
  'sim/setup-failed': spec(false),
  // simulator/mdm-server (kitting mdm-dev, the reference MDM server)
  'mdm-server/start-failed': spec(false),
  // electron/: the desktop shell's IPC binding (electron/ipc.ts)
  'ipc/untrusted-sender': spec(false),
  // mdm/: the station's MDM client and syncer (src/mdm/client.ts maps HTTP answers through one table)
  'mdm/unconfigured': spec(false, 'usage'),
  'mdm/offline': spec(true),
  'mdm/timeout': spec(true),
  'mdm/server-error': spec(true),
  'mdm/auth-required': spec(false),
  'mdm/bad-response': spec(false),
  'mdm/rejected': spec(false),
  'mdm/not-found': spec(false, 'not-found'),
  'mdm/conflict': spec(false),
  'mdm/wrong-credentials': spec(false, 'usage'),
  'mdm/credentials-expired': spec(false),
  'mdm/group-closed': spec(false),
  'mdm/already-registered': spec(false),
  'mdm/no-license': spec(false),
  'mdm/device-unreachable': spec(false),
  'mdm/force-not-allowed': spec(false),
  'mdm/already-inactive': spec(false),
  'mdm/device-active': spec(false),
} as const satisfies Record<string, CodeSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Whether `code` is one of the station's codes. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CODES, code);
}

/** Extra, non-secret facts about a failure (file, line, byte offset, field, HTTP status …). */
export type ErrorDetails = Readonly<Record<string, string | number | boolean | null>>;

export interface KitErrorOptions {
  /** The device the failure concerns, when there is one. */
  udid?: string;
  /** Overrides the catalogue's retry flag for this instance (e.g. a timeout that is retryable here). */
  retryable?: boolean;
  cause?: unknown;
  details?: ErrorDetails;
}

/** The serialized form of a {@link KitError}: plain JSON, safe to send across IPC, HTTP and processes. */
export interface SerializedKitError {
  name: 'KitError';
  code: ErrorCode;
  message: string;
  retryable: boolean;
  udid?: string;
  details?: ErrorDetails;
  cause?: SerializedKitError | { name: string; message: string };
}

/**
 * The station's error. `code` is namespaced (`area/what`), `message` is for engineers (English,
 * precise, located: file, line, offset, field); people see the ja/en text keyed by `code`.
 */
export class KitError extends Error {
  override readonly name = 'KitError';
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly udid: string | undefined;
  readonly details: ErrorDetails | undefined;

  constructor(code: ErrorCode, message: string, options: KitErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? ERROR_CODES[code].retryable;
    this.udid = options.udid;
    this.details = options.details;
  }

  /** The CLI exit code for this error (cli.md: 1 failed, 2 bad usage or input, 3 nothing matched). */
  get exitCode(): 1 | 2 | 3 {
    const kind = ERROR_CODES[this.code].exit;
    return kind === 'usage' ? 2 : kind === 'not-found' ? 3 : 1;
  }

  /** Plain JSON form; the cause chain is kept (non-KitError causes keep only name and message). */
  toJSON(): SerializedKitError {
    const out: SerializedKitError = {
      name: 'KitError',
      code: this.code,
      message: this.message,
      retryable: this.retryable,
    };
    if (this.udid !== undefined) out.udid = this.udid;
    if (this.details !== undefined) out.details = this.details;
    const cause: unknown = this.cause;
    if (cause instanceof KitError) out.cause = cause.toJSON();
    else if (cause instanceof Error) out.cause = { name: cause.name, message: cause.message };
    return out;
  }

  /** Rebuilds a KitError from {@link KitError.toJSON} output (unknown codes become `bug`). */
  static revive(value: unknown): KitError {
    if (typeof value !== 'object' || value === null) {
      return new KitError('bug', `not a serialized KitError: ${String(value)}`);
    }
    const v = value as Partial<SerializedKitError>;
    const code = typeof v.code === 'string' && isErrorCode(v.code) ? v.code : 'bug';
    const message =
      typeof v.message === 'string'
        ? code === v.code
          ? v.message
          : `${String(v.code)}: ${v.message}`
        : 'unknown error';
    let cause: unknown;
    if (v.cause !== undefined && typeof v.cause === 'object' && v.cause !== null) {
      const c = v.cause as { name?: unknown; message?: unknown };
      cause =
        c.name === 'KitError'
          ? KitError.revive(c)
          : Object.assign(new Error(String(c.message)), { name: String(c.name) });
    }
    const options: KitErrorOptions = { cause };
    if (typeof v.retryable === 'boolean') options.retryable = v.retryable;
    if (typeof v.udid === 'string') options.udid = v.udid;
    if (v.details !== undefined && typeof v.details === 'object' && v.details !== null) {
      options.details = v.details;
    }
    return new KitError(code, message, options);
  }
}

/** Wraps anything thrown into a KitError: KitErrors pass through; anything else becomes `bug`. */
export function toKitError(err: unknown, fallback: ErrorCode = 'bug'): KitError {
  if (err instanceof KitError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new KitError(fallback, message, { cause: err });
}

/** True when `err` is a KitError with one of the given codes. */
export function hasCode(err: unknown, ...codes: ErrorCode[]): err is KitError {
  return err instanceof KitError && codes.includes(err.code);
}
