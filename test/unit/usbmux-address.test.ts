import { describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import {
  defaultUsbmuxdAddress,
  formatUsbmuxdAddress,
  parseUsbmuxdAddress,
  resolveUsbmuxdAddress,
} from '../../src/device/usbmux.ts';

describe('usbmuxd address', () => {
  it('parses every form of cli.md', () => {
    expect(parseUsbmuxdAddress('UNIX:/tmp/a/usbmuxd.sock')).toEqual({ kind: 'unix', path: '/tmp/a/usbmuxd.sock' });
    expect(parseUsbmuxdAddress('unix:/tmp/b.sock')).toEqual({ kind: 'unix', path: '/tmp/b.sock' });
    expect(parseUsbmuxdAddress('unix:///var/run/usbmuxd')).toEqual({ kind: 'unix', path: '/var/run/usbmuxd' });
    expect(parseUsbmuxdAddress('/var/run/usbmuxd')).toEqual({ kind: 'unix', path: '/var/run/usbmuxd' });
    expect(parseUsbmuxdAddress('./rel.sock')).toEqual({ kind: 'unix', path: './rel.sock' });
    expect(parseUsbmuxdAddress('127.0.0.1:27015')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 27015 });
    expect(parseUsbmuxdAddress('localhost:5000')).toEqual({ kind: 'tcp', host: 'localhost', port: 5000 });
    expect(parseUsbmuxdAddress('[::1]:27015')).toEqual({ kind: 'tcp', host: '::1', port: 27015 });
    expect(parseUsbmuxdAddress('tcp://10.0.0.2:27015')).toEqual({ kind: 'tcp', host: '10.0.0.2', port: 27015 });
    expect(parseUsbmuxdAddress('tcp://[fe80::1]:1234')).toEqual({ kind: 'tcp', host: 'fe80::1', port: 1234 });
  });

  it('rejects bad ports, empty values, unknown schemes and bare IPv6 with usage errors', () => {
    for (const bad of [
      '',
      'host:0',
      'host:70000',
      'host:abc',
      'http://x:1',
      '::1:27015',
      'UNIX:',
      'unix://',
      '[::1]27015',
    ]) {
      let caught: unknown;
      try {
        parseUsbmuxdAddress(bad);
      } catch (err) {
        caught = err;
      }
      expect(caught, bad).toBeInstanceOf(KitError);
      expect((caught as KitError).code, bad).toBe('usage/invalid-argument');
    }
  });

  it('defaults per platform', () => {
    expect(defaultUsbmuxdAddress('darwin')).toEqual({ kind: 'unix', path: '/var/run/usbmuxd' });
    expect(defaultUsbmuxdAddress('linux')).toEqual({ kind: 'unix', path: '/var/run/usbmuxd' });
    expect(defaultUsbmuxdAddress('win32')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 27015 });
  });

  it('prefers the explicit option, then USBMUXD_SOCKET_ADDRESS, then the default', () => {
    const env = { USBMUXD_SOCKET_ADDRESS: 'UNIX:/env.sock' };
    expect(resolveUsbmuxdAddress('/opt.sock', env, 'linux')).toEqual({ kind: 'unix', path: '/opt.sock' });
    expect(resolveUsbmuxdAddress(undefined, env, 'linux')).toEqual({ kind: 'unix', path: '/env.sock' });
    expect(resolveUsbmuxdAddress(undefined, { USBMUXD_SOCKET_ADDRESS: '' }, 'win32')).toEqual({
      kind: 'tcp',
      host: '127.0.0.1',
      port: 27015,
    });
    expect(resolveUsbmuxdAddress(undefined, {}, 'darwin')).toEqual({ kind: 'unix', path: '/var/run/usbmuxd' });
  });

  it('formats addresses the way libusbmuxd reads them', () => {
    expect(formatUsbmuxdAddress({ kind: 'unix', path: '/x.sock' })).toBe('UNIX:/x.sock');
    expect(formatUsbmuxdAddress({ kind: 'tcp', host: '::1', port: 9 })).toBe('[::1]:9');
    expect(formatUsbmuxdAddress({ kind: 'tcp', host: '127.0.0.1', port: 27015 })).toBe('127.0.0.1:27015');
    for (const text of ['UNIX:/x.sock', '[::1]:9', '127.0.0.1:27015']) {
      expect(formatUsbmuxdAddress(parseUsbmuxdAddress(text))).toBe(text);
    }
  });
});
