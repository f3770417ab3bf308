/**
 * The station contract: every command's schema refuses bad input with a located
 * `usage/invalid-argument` KitError (the path of the first bad field), unknown commands are
 * `usage/unknown-command`, and `dispatch` calls the station with the parsed input (defaults filled).
 */
import { describe, expect, it, vi } from 'vitest';
import {
  COMMANDS,
  COMMAND_NAMES,
  dispatch,
  dispatchEnvelope,
  parseInput,
  type CommandName,
} from '../../src/contract.ts';
import { KitError } from '../../src/errors.ts';
import type { Station } from '../../src/station.ts';

/** For each command: one bad input and the path its error must name ('' = the input itself). */
const BAD: Record<CommandName, { input: unknown; path: string }> = {
  'devices.list': { input: { extra: 1 }, path: '' },
  'devices.states': { input: 'x', path: '' },
  'devices.info': { input: { udid: 'bad udid!' }, path: 'udid' },
  'devices.pair': { input: { udid: 'A1', identityId: 7 }, path: 'identityId' },
  'devices.unpair': { input: {}, path: 'udid' },
  'devices.restart': { input: { udid: '' }, path: 'udid' },
  'devices.shutdown': { input: { udid: 42 }, path: 'udid' },
  'devices.erase': { input: { udids: ['A1'], confirmation: 'yes' }, path: 'confirmation' },
  'batch.start': { input: { blueprint: 'bp', udids: ['A1', 'x y'] }, path: 'udids.1' },
  'batch.pause': { input: { now: true }, path: '' },
  'batch.resume': { input: [], path: '' },
  'batch.stop': { input: { force: true }, path: '' },
  'batch.status': { input: 3, path: '' },
  'watch.set': { input: { enabled: true, blueprint: 'bp', maxParallel: 0 }, path: 'maxParallel' },
  'jobs.list': { input: { status: 'finished' }, path: 'status' },
  'jobs.retry': { input: { jobId: '' }, path: 'jobId' },
  'identities.list': { input: { all: 1 }, path: '' },
  'identities.create': { input: { org: '' }, path: 'org' },
  'identities.import': { input: { fileName: 'a.p12', fileBase64: 7 }, path: 'fileBase64' },
  'identities.export': { input: { id: 'x', format: 'jks' }, path: 'format' },
  'messages.get': { input: { lang: 'fr' }, path: 'lang' },
  'skipPanes.list': { input: { all: true }, path: '' },
  'blueprints.validate': { input: { blueprint: 'x' }, path: 'blueprint' },
  'devices.cloudConfiguration': { input: {}, path: 'udid' },
  'devices.profiles': { input: { udid: 'a b' }, path: 'udid' },
  'blueprints.list': { input: { x: 1 }, path: '' },
  'blueprints.export': { input: { name: '   ' }, path: 'name' },
  'blueprints.import': { input: { blueprint: [] }, path: 'blueprint' },
  'blueprints.delete': { input: { name: 'x'.repeat(129) }, path: 'name' },
  'plans.list': { input: { y: 2 }, path: '' },
  'plans.import': { input: { csvBase64: 'AAAA', encoding: 'latin1' }, path: 'encoding' },
  'plans.preview': { input: { csvBase64: '' }, path: 'csvBase64' },
  'plans.export': { input: { encoding: 'latin1' }, path: 'encoding' },
  'report.csv': { input: { lang: 'de' }, path: 'lang' },
  'report.generate': { input: { since: 20240101 }, path: 'since' },
  'station.info': { input: { x: 1 }, path: '' },
  'sync.status': { input: { x: 1 }, path: '' },
  'sync.configure': { input: { url: 'http://127.0.0.1:1', token: '' }, path: 'token' },
  'secrets.setGroupPassword': { input: { id: 'group-1', password: '' }, path: 'password' },
  'sync.run': { input: { once: true }, path: '' },
  'sync.groups': { input: [], path: '' },
  'mdm.device': { input: { serial: 'a b' }, path: 'serial' },
  'mdm.inactivate': { input: { serial: 'A1', force: true, confirmed: false }, path: 'confirmed' },
  'mdm.delete': { input: { serial: 'A1' }, path: 'confirmed' },
  'usb.status': { input: { x: 1 }, path: '' },
  'usb.devices': { input: 'all', path: '' },
  'devices.leaveRecovery': { input: { ecid: 'ECID:12' }, path: 'ecid' },
  'devices.enterRecovery': { input: { udid: 'A1' }, path: 'confirmed' },
  'settings.get': { input: { key: 'a' }, path: '' },
  'settings.set': { input: { perHub: 1.5 }, path: 'perHub' },
};

function caught(fn: () => unknown): KitError {
  try {
    fn();
  } catch (err) {
    if (err instanceof KitError) return err;
    throw err;
  }
  throw new Error('did not throw');
}

describe('contract schemas', () => {
  it('the table above covers every command', () => {
    expect(Object.keys(BAD).sort()).toEqual([...COMMAND_NAMES].sort());
  });

  it.each(COMMAND_NAMES)('%s refuses bad input with a located usage/invalid-argument', (name) => {
    const bad = BAD[name];
    const err = caught(() => parseInput(name, bad.input));
    expect(err.code).toBe('usage/invalid-argument');
    expect(err.exitCode).toBe(2);
    expect(err.details?.path).toBe(bad.path);
    expect(err.details?.command).toBe(name);
    expect(err.message).toContain(bad.path === '' ? `${name}: input` : `${name}: ${bad.path}`);
  });

  it('unknown commands are usage/unknown-command', () => {
    expect(caught(() => parseInput('devices.explode', {})).code).toBe('usage/unknown-command');
  });

  it('good input parses, with defaults filled', () => {
    expect(parseInput('batch.start', { blueprint: 'cart', udids: 'all' })).toEqual({
      blueprint: 'cart',
      udids: 'all',
      maxParallel: 4,
      confirmedErase: false,
    });
    expect(parseInput('watch.set', { enabled: false })).toEqual({ enabled: false });
    expect(parseInput('devices.erase', { udids: ['00008101-001E30590C08001E'], confirmation: 'ERASE' })).toEqual({
      udids: ['00008101-001E30590C08001E'],
      confirmation: 'ERASE',
      wait: true,
    });
    expect(parseInput('devices.list', undefined)).toEqual({});
  });

  it('every command has a summary and a schema', () => {
    for (const name of COMMAND_NAMES) {
      expect(COMMANDS[name].summary.length).toBeGreaterThan(5);
      expect(typeof COMMANDS[name].input.safeParse).toBe('function');
    }
  });
});

describe('dispatch', () => {
  function fakeStation(): Station & Record<string, ReturnType<typeof vi.fn>> {
    const s = {
      listDevices: vi.fn(() => Promise.resolve([{ udid: 'A1' }])),
      startBatch: vi.fn(() => ({ batchId: 'batch-1', mode: 'batch' })),
      pauseBatch: vi.fn(() => ({ active: null })),
      erase: vi.fn(() => Promise.resolve([])),
      info: vi.fn(() => Promise.resolve({ UniqueChipID: 123n, Data: Buffer.from('hi') })),
      setWatch: vi.fn(() => Promise.resolve({ active: null })),
      jobs: vi.fn(() => []),
    };
    return s as unknown as Station & Record<string, ReturnType<typeof vi.fn>>;
  }

  it('calls the station with the parsed input and answers its result', async () => {
    const s = fakeStation();
    expect(await dispatch(s, 'devices.list', {})).toEqual([{ udid: 'A1' }]);
    expect(s.listDevices).toHaveBeenCalledTimes(1);
    expect(await dispatch(s, 'batch.start', { blueprint: 'cart', udids: ['A1'], perHub: 2 })).toEqual({
      batchId: 'batch-1',
      mode: 'batch',
    });
    expect(s.startBatch).toHaveBeenCalledWith({
      blueprint: 'cart',
      udids: ['A1'],
      maxParallel: 4,
      perHub: 2,
      confirmedErase: false,
    });
    await dispatch(s, 'batch.pause', {});
    expect(s.pauseBatch).toHaveBeenCalledTimes(1);
    await dispatch(s, 'devices.erase', { udids: ['A1', 'B2'], confirmation: 'ERASE', wait: false });
    expect(s.erase).toHaveBeenCalledWith(['A1', 'B2'], { wait: false });
    await dispatch(s, 'watch.set', { enabled: true, blueprint: 'cart' });
    expect(s.setWatch).toHaveBeenCalledWith({
      enabled: true,
      blueprint: 'cart',
      maxParallel: 4,
      confirmedErase: false,
    });
    await dispatch(s, 'jobs.list', { status: 'failed' });
    expect(s.jobs).toHaveBeenCalledWith({ statuses: ['failed'] });
  });

  it('devices.info answers JSON: 64-bit integers as text, data as base64', async () => {
    const s = fakeStation();
    expect(await dispatch(s, 'devices.info', { udid: 'A1', key: 'UniqueChipID' })).toEqual({
      UniqueChipID: '123',
      Data: Buffer.from('hi').toString('base64'),
    });
    expect(s.info).toHaveBeenCalledWith('A1', { key: 'UniqueChipID' });
  });

  it('never calls the station for bad input; the envelope carries the located error', async () => {
    const s = fakeStation();
    await expect(dispatch(s, 'devices.erase', { udids: ['A1'] })).rejects.toMatchObject({
      code: 'usage/invalid-argument',
      details: { path: 'confirmation' },
    });
    expect(s.erase).not.toHaveBeenCalled();
    const env = await dispatchEnvelope(s, 'batch.start', { blueprint: '', udids: 'all' });
    expect(env).toMatchObject({ ok: false, error: { code: 'usage/invalid-argument', details: { path: 'blueprint' } } });
    expect(await dispatchEnvelope(s, 'devices.list', {})).toEqual({ ok: true, result: [{ udid: 'A1' }] });
    expect(await dispatchEnvelope(s, 'nope', {})).toMatchObject({
      ok: false,
      error: { code: 'usage/unknown-command' },
    });
    expect(s.startBatch).not.toHaveBeenCalled();
  });
});
