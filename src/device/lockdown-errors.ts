/**
 * The one table from lockdownd `Error` strings (protocols.md §2.4) to error codes. Unknown strings
 * become `lockdown/unknown-error` with the string kept in the message and details.
 */
import { KitError, type ErrorCode } from '../errors.ts';

/** lockdown `Error` string → code. */
export const LOCKDOWN_ERRORS: Readonly<Record<string, ErrorCode>> = {
  InvalidResponse: 'lockdown/invalid-response',
  MissingKey: 'lockdown/missing-key',
  MissingValue: 'lockdown/missing-value',
  GetProhibited: 'lockdown/get-prohibited',
  SetProhibited: 'lockdown/set-prohibited',
  RemoveProhibited: 'lockdown/remove-prohibited',
  ImmutableValue: 'lockdown/immutable-value',
  PasswordProtected: 'lockdown/password-protected',
  UserDeniedPairing: 'lockdown/trust-denied',
  PairingDialogResponsePending: 'lockdown/trust-pending',
  MissingHostID: 'lockdown/missing-host-id',
  InvalidHostID: 'lockdown/invalid-host-id',
  SessionActive: 'lockdown/session-active',
  SessionInactive: 'lockdown/session-inactive',
  MissingSessionID: 'lockdown/missing-session-id',
  InvalidSessionID: 'lockdown/invalid-session-id',
  MissingService: 'lockdown/missing-service',
  InvalidService: 'lockdown/invalid-service',
  ServiceLimit: 'lockdown/service-limit',
  MissingPairRecord: 'lockdown/missing-pair-record',
  SavePairRecordFailed: 'lockdown/save-pair-record-failed',
  InvalidPairRecord: 'lockdown/invalid-pair-record',
  InvalidActivationRecord: 'lockdown/invalid-activation-record',
  MissingActivationRecord: 'lockdown/missing-activation-record',
  ServiceProhibited: 'lockdown/service-prohibited',
  EscrowLocked: 'lockdown/escrow-locked',
  PairingProhibitedOverThisConnection: 'lockdown/pairing-prohibited',
  FMiPProtected: 'lockdown/fmip-protected',
  MCProtected: 'lockdown/mc-protected',
  MCChallengeRequired: 'lockdown/mc-challenge-required',
  InvalidConnection: 'lockdown/invalid-connection',
};

const HUMAN: Partial<Record<string, string>> = {
  InvalidHostID: 'pairing removed on the device (unknown HostID)',
  PasswordProtected: 'the device is locked with a passcode',
  UserDeniedPairing: 'the user tapped "Don\'t Trust"',
  PairingDialogResponsePending: 'the Trust dialog is waiting for an answer',
  SessionInactive: 'no session is active',
  InvalidService: 'the device does not offer this service',
  MissingValue: 'no such key or domain',
};

/** The KitError for a lockdown `Error` string returned by `request`. */
export function lockdownError(
  errorString: string,
  request: string,
  context: { udid?: string; detail?: string } = {},
): KitError {
  const code = Object.prototype.hasOwnProperty.call(LOCKDOWN_ERRORS, errorString)
    ? (LOCKDOWN_ERRORS[errorString] as ErrorCode)
    : 'lockdown/unknown-error';
  const human = HUMAN[errorString];
  const extra = context.detail !== undefined ? ` [${context.detail}]` : '';
  const message = `lockdown ${request} failed: ${errorString}${human !== undefined ? ` (${human})` : ''}${extra}`;
  return new KitError(code, message, {
    ...(context.udid !== undefined ? { udid: context.udid } : {}),
    details: { lockdownError: errorString, request },
  });
}
