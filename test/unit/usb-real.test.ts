/**
 * The real `usb` package on this machine: it loads under the repo's Node 22 (node-usb 3 is napi-rs
 * over nusb; its native part comes from the optional `@node-usb/usb-<platform>` package, no
 * libusb), enumeration works or fails with a mapped reason, and `kitting usb list` exits 0 with
 * either the devices or the clear "USB is off" status.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsbLayer, loadNodeUsbBackend } from '../../src/device/usb.ts';

const root = path.resolve(import.meta.dirname, '../..');
const node = path.join(root, 'node_modules/.bin/node');
const OFF_CODES = ['usb/unavailable', 'usb/permission-denied'];

function kitting(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(node, [path.join(root, 'bin/kitting.js'), ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, KITTING_LOG: 'silent', LANG: 'en_US.UTF-8' },
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the usb package', () => {
  it('loads here: the WebUSB object and the native functions are there', async () => {
    const mod = await import('usb');
    expect(typeof mod.usb.getDevices).toBe('function');
    const backend = await loadNodeUsbBackend();
    expect(backend.name).toMatch(/usb/);
  });

  it('enumerates, or fails with a mapped reason (never usb/not-loaded)', async () => {
    const status = await new UsbLayer().status();
    if (status.available) {
      const devices = await new UsbLayer().devices();
      expect(Array.isArray(devices)).toBe(true);
      expect(devices.every((d) => d.portPath.length > 0)).toBe(true);
    } else {
      expect(OFF_CODES).toContain(status.reason.code);
      expect(status.reason.message).not.toBe('');
    }
  });
});

describe('kitting usb', () => {
  it('usb list, usb list --json and usb status --json exit 0 and agree', () => {
    const status = kitting('usb', 'status', '--json');
    expect(status.status).toBe(0);
    const parsed = JSON.parse(status.stdout) as { available: boolean; reason?: { code: string; message: string } };

    const human = kitting('usb', 'list');
    expect(human.status).toBe(0);
    const json = kitting('usb', 'list', '--json');
    expect(json.status).toBe(0);
    const list = JSON.parse(json.stdout) as unknown[];
    expect(Array.isArray(list)).toBe(true);

    if (parsed.available) {
      expect(human.stdout).toMatch(/MODE|No Apple devices on USB/);
    } else {
      const code = parsed.reason?.code ?? '';
      expect(OFF_CODES).toContain(code);
      expect(human.stdout).toContain(`[${code}]`);
      expect(human.stdout).toContain('port numbers and recovery/DFU detection are off');
      expect(list).toEqual([]);
      expect(json.stderr).toContain(`[${code}]`);
    }
  });

  it('recovery-enter without --yes is refused with exit 2 before touching anything', () => {
    const r = kitting('usb', 'recovery-enter', '00008020-000221942EEA002E', '--json');
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout)).toEqual({
      error: { code: 'usb/recovery-not-confirmed', message: expect.stringContaining('--yes') },
    });
  });

  it('recovery-exit with something that is not an ECID is bad usage', () => {
    const r = kitting('usb', 'recovery-exit', 'not-an-ecid');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('usage/invalid-argument');
  });
});
