import { describe, expect, it } from 'vitest';
import { formatValues } from '../../src/cli/commands/device.ts';
import { buildProgram } from '../../src/cli/main.ts';

describe('kitting info human output', () => {
  it('prints Key: value lines like ideviceinfo, nested values indented, data as base64, ECID exact', () => {
    const lines = formatValues({
      ProductVersion: '17.5',
      UniqueChipID: 18446744073709551615n,
      PasswordProtected: false,
      WiFiAddress: 'aa:bb:cc:dd:ee:ff',
      EscrowProbe: Buffer.from([1, 2, 3]),
      NonVolatileRAM: { 'auto-boot': Buffer.from('true') },
      SupportedDeviceFamilies: [1, 2],
    });
    expect(lines).toEqual([
      'ProductVersion: 17.5',
      'UniqueChipID: 18446744073709551615',
      'PasswordProtected: false',
      'WiFiAddress: aa:bb:cc:dd:ee:ff',
      'EscrowProbe: AQID',
      'NonVolatileRAM:',
      '  auto-boot: dHJ1ZQ==',
      'SupportedDeviceFamilies:',
      '  1',
      '  2',
    ]);
    expect(formatValues('18.6')).toEqual(['18.6']);
  });

  it('registers the device commands of cli.md', () => {
    const names = buildProgram().commands.map((c) => c.name());
    for (const name of ['list', 'info', 'pair', 'unpair', 'restart', 'shutdown']) expect(names).toContain(name);
    const info = buildProgram().commands.find((c) => c.name() === 'info');
    expect(info?.options.map((o) => o.long).sort()).toEqual(['--domain', '--key']);
  });
});
