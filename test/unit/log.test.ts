import { afterEach, describe, expect, it } from 'vitest';
import { REDACTED, createLogger, redact, setLogLevel, setLogSink, type LogRecord } from '../../src/log.ts';

const records: LogRecord[] = [];
const previous = setLogSink((r) => records.push(r));
setLogLevel('debug');

afterEach(() => {
  records.length = 0;
});

describe('logger', () => {
  it('writes structured lines with module and udid', () => {
    const log = createLogger('device/lockdown').child({ udid: '00008101-000A1B2C3D4E5F60' });
    log.info('session started', { tls: 'TLSv1.3' });
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      level: 'info',
      module: 'device/lockdown',
      udid: '00008101-000A1B2C3D4E5F60',
      msg: 'session started',
      tls: 'TLSv1.3',
    });
  });

  it('never writes secrets: secret-named fields, PEM private keys, bearer tokens, token parameters', () => {
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----';
    const log = createLogger('test');
    log.warn(`loaded key ${pem}`, {
      password: 'hunter2',
      passphrase: 'correct horse',
      token: 'tok_123',
      hostPrivateKey: pem,
      nested: { groupPassword: 'pw', url: 'http://127.0.0.1/?token=abc123&x=1' },
      header: 'Bearer abc.def.ghi',
      escrowBag: Buffer.alloc(32, 7),
    });
    const line = JSON.stringify(records);
    for (const secret of ['hunter2', 'correct horse', 'tok_123', 'MIIEvQ', 'abc123', 'abc.def.ghi', '"pw"']) {
      expect(line).not.toContain(secret);
    }
    expect(line).toContain(REDACTED);
    expect(line).toContain('x=1');
  });

  it('keeps ordinary values, BigInt as text and bytes as a length', () => {
    expect(redact({ ecid: 1234567890123456789n, data: Buffer.alloc(3), ok: true, n: 2 })).toEqual({
      ecid: '1234567890123456789',
      data: '[3 bytes]',
      ok: true,
      n: 2,
    });
  });

  it('respects the level threshold', () => {
    setLogLevel('error');
    createLogger('test').warn('hidden');
    expect(records).toHaveLength(0);
    setLogLevel('debug');
    setLogSink(previous);
    setLogSink((r) => records.push(r));
  });
});
