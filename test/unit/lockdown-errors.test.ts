import { describe, expect, it } from 'vitest';
import { ERROR_CODES, KitError } from '../../src/errors.ts';
import { ERROR_MESSAGES } from '../../src/i18n/messages.ts';
import { LOCKDOWN_ERRORS, lockdownError } from '../../src/device/lockdown-errors.ts';
import { identityFromValues } from '../../src/device/lockdown.ts';

/** protocols.md §2.4, every string. */
const SECTION_2_4 = [
  'InvalidResponse',
  'MissingKey',
  'MissingValue',
  'GetProhibited',
  'SetProhibited',
  'RemoveProhibited',
  'ImmutableValue',
  'PasswordProtected',
  'UserDeniedPairing',
  'PairingDialogResponsePending',
  'MissingHostID',
  'InvalidHostID',
  'SessionActive',
  'SessionInactive',
  'MissingSessionID',
  'InvalidSessionID',
  'MissingService',
  'InvalidService',
  'ServiceLimit',
  'MissingPairRecord',
  'SavePairRecordFailed',
  'InvalidPairRecord',
  'InvalidActivationRecord',
  'MissingActivationRecord',
  'ServiceProhibited',
  'EscrowLocked',
  'PairingProhibitedOverThisConnection',
  'FMiPProtected',
  'MCProtected',
  'MCChallengeRequired',
  'InvalidConnection',
];

describe('lockdown error table', () => {
  it('maps every §2.4 string to its own lockdown/ code with ja and en words', () => {
    const codes = new Set<string>();
    for (const s of SECTION_2_4) {
      const code = LOCKDOWN_ERRORS[s];
      expect(code, s).toMatch(/^lockdown\//);
      expect(Object.prototype.hasOwnProperty.call(ERROR_CODES, code as string), s).toBe(true);
      codes.add(code as string);
      const words = ERROR_MESSAGES[code as keyof typeof ERROR_MESSAGES];
      expect(words.ja.title.length * words.en.title.length, s).toBeGreaterThan(0);
    }
    expect(codes.size).toBe(SECTION_2_4.length);
    expect(Object.keys(LOCKDOWN_ERRORS).sort()).toEqual([...SECTION_2_4].sort());
  });

  it('names the codes the station reacts to', () => {
    expect(LOCKDOWN_ERRORS.InvalidHostID).toBe('lockdown/invalid-host-id');
    expect(LOCKDOWN_ERRORS.PairingDialogResponsePending).toBe('lockdown/trust-pending');
    expect(LOCKDOWN_ERRORS.UserDeniedPairing).toBe('lockdown/trust-denied');
    expect(LOCKDOWN_ERRORS.PasswordProtected).toBe('lockdown/password-protected');
    expect(LOCKDOWN_ERRORS.MCChallengeRequired).toBe('lockdown/mc-challenge-required');
    expect(lockdownError('PairingDialogResponsePending', 'Pair').retryable).toBe(true);
    expect(lockdownError('SessionInactive', 'GetValue').retryable).toBe(true);
    expect(lockdownError('UserDeniedPairing', 'Pair').retryable).toBe(false);
  });

  it('keeps the request, the udid and a readable reason', () => {
    const e = lockdownError('InvalidHostID', 'StartSession', { udid: 'U1' });
    expect(e).toBeInstanceOf(KitError);
    expect(e.udid).toBe('U1');
    expect(e.message).toContain('StartSession');
    expect(e.message).toContain('pairing removed on the device');
    expect(e.details).toEqual({ lockdownError: 'InvalidHostID', request: 'StartSession' });
  });

  it('keeps unknown strings in the message of lockdown/unknown-error', () => {
    const e = lockdownError('SomethingNew', 'GetValue');
    expect(e.code).toBe('lockdown/unknown-error');
    expect(e.message).toContain('SomethingNew');
    expect(lockdownError('__proto__', 'GetValue').code).toBe('lockdown/unknown-error');
  });
});

describe('identity helpers', () => {
  it('types the pre-session identity, ECID as bigint', () => {
    const id = identityFromValues({
      UniqueDeviceID: '00008101-000A1B2C3D4E5F60',
      SerialNumber: 'F9FXXXXX',
      UniqueChipID: 18446744073709551615n,
      ProductType: 'iPad13,1',
      ProductVersion: '17.5',
      BuildVersion: '21F79',
      DeviceClass: 'iPad',
      DeviceName: 'iPad',
      ActivationState: 'Unactivated',
      WiFiAddress: 'aa:bb:cc:dd:ee:ff',
      DevicePublicKey: Buffer.from('-----BEGIN RSA PUBLIC KEY-----'),
    });
    expect(id.uniqueChipId).toBe(18446744073709551615n);
    expect(id.productType).toBe('iPad13,1');
    expect(id.devicePublicKey?.toString()).toContain('RSA PUBLIC KEY');
    expect(identityFromValues({ UniqueChipID: 1234 }).uniqueChipId).toBe(1234n);
    expect(identityFromValues({}).udid).toBeUndefined();
  });
});
