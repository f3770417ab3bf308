import { describe, expect, it } from 'vitest';
import { ERROR_CODES, KitError, hasCode, toKitError } from '../../src/errors.ts';
import { ERROR_MESSAGES, describeError, resolveLang } from '../../src/i18n/messages.ts';

describe('KitError', () => {
  it('keeps code, retryable, udid and details through serialize and revive', () => {
    const inner = new KitError('plist/malformed', 'bad byte at offset 12', { details: { offset: 12 } });
    const outer = new KitError('io/read-failed', 'reading x.plist', { cause: inner, udid: 'abc', retryable: true });
    const revived = KitError.revive(JSON.parse(JSON.stringify(outer)));
    expect(revived).toBeInstanceOf(KitError);
    expect(revived.code).toBe('io/read-failed');
    expect(revived.retryable).toBe(true);
    expect(revived.udid).toBe('abc');
    const cause = revived.cause as KitError;
    expect(cause).toBeInstanceOf(KitError);
    expect(cause.code).toBe('plist/malformed');
    expect(cause.details).toEqual({ offset: 12 });
  });

  it('revives unknown codes as bug without losing the original code', () => {
    const e = KitError.revive({ name: 'KitError', code: 'nope/never', message: 'x' });
    expect(e.code).toBe('bug');
    expect(e.message).toContain('nope/never');
  });

  it('maps codes to the CLI exit codes of cli.md', () => {
    expect(new KitError('plist/malformed', 'x').exitCode).toBe(2);
    expect(new KitError('io/not-found', 'x').exitCode).toBe(3);
    expect(new KitError('bug', 'x').exitCode).toBe(1);
  });

  it('wraps foreign errors as bug and recognises codes', () => {
    const e = toKitError(new TypeError('boom'));
    expect(e.code).toBe('bug');
    expect(hasCode(e, 'bug')).toBe(true);
    expect(hasCode(new Error('x'), 'bug')).toBe(false);
  });
});

describe('message table', () => {
  it('has Japanese and English words for every code', () => {
    for (const code of Object.keys(ERROR_CODES) as (keyof typeof ERROR_CODES)[]) {
      for (const lang of ['ja', 'en'] as const) {
        expect(ERROR_MESSAGES[code][lang].title.length, `${code} ${lang}`).toBeGreaterThan(0);
        expect(ERROR_MESSAGES[code][lang].action.length, `${code} ${lang}`).toBeGreaterThan(0);
      }
    }
    expect(describeError(new KitError('plist/malformed', 'x'), 'ja').title).toBe('プロパティリストが壊れています');
  });

  it('picks the language from the flag, else the locale', () => {
    expect(resolveLang('en', { LANG: 'ja_JP.UTF-8' })).toBe('en');
    expect(resolveLang(undefined, { LANG: 'ja_JP.UTF-8' })).toBe('ja');
    expect(resolveLang(undefined, { LANG: 'en_US.UTF-8' })).toBe('en');
  });
});

describe('CLI JSON output', () => {
  it('writes bytes as base64 and BigInt as decimal text', async () => {
    const { toJsonText } = await import('../../src/cli/context.ts');
    const text = toJsonText({
      data: Buffer.from([1, 2, 255]),
      ecid: 18446744073709551615n,
      nested: [new Uint8Array([0])],
    });
    expect(JSON.parse(text)).toEqual({ data: 'AQL/', ecid: '18446744073709551615', nested: ['AA=='] });
  });
});
