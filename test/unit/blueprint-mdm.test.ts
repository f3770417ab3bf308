/**
 * Credentials checked when a blueprint is saved (`blueprints.import`, `kitting blueprint import`):
 * wrong group credentials refuse the save with `mdm/wrong-credentials`; right ones are `ok`; an MDM
 * that is down or not configured saves the blueprint with `not-checked` (the warning).
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatch } from '../../src/contract.ts';
import { KitError } from '../../src/errors.ts';
import { startMdmServer, type MdmServer } from '../../src/simulator/mdm-server/index.ts';
import { Station } from '../../src/station.ts';
import { configureSync } from '../helpers/mdm-loop.ts';
import { createPrepareEnv, type PrepareEnv } from '../helpers/prepare-env.ts';

let env: PrepareEnv;
let mdm: MdmServer;
let station: Station;

function blueprint(name: string, passwordRef: string): Record<string, unknown> {
  return {
    version: 1,
    name,
    organization: { identityId: env.identityId, displayName: 'Save Check School' },
    supervise: true,
    skipSetup: 'all',
    enrollment: {
      method: 'url',
      url: mdm.enrollmentUrl,
      group: { groupId: 'grade5', userId: 'g5-user', passwordRef, hideAuthScreen: true },
    },
  };
}

function stored(): string[] {
  return station.blueprints().map((b) => b.name);
}

beforeAll(async () => {
  env = await createPrepareEnv('Save Check School');
  mdm = await startMdmServer({ dbFile: path.join(env.dir, 'mdm.db') });
  mdm.admin.putGroup({ id: 'grade5', name: 'Grade 5', credentials: { userId: 'g5-user', password: 'g5-pass' } });
  station = new Station({ dataDir: env.dataDir, passphraseFile: env.passphraseFile });
});
afterAll(async () => {
  await station.close();
  await mdm.stop();
  env.cleanup();
});

describe('blueprint save checks the MDM group credentials', () => {
  it('not configured: saved, credentials not checked', async () => {
    const r = await dispatch(station, 'blueprints.import', { blueprint: blueprint('unconfigured', 'secret:right') });
    expect(r).toEqual({
      name: 'unconfigured',
      replaced: false,
      credentials: { status: 'not-checked', reason: 'mdm/unconfigured' },
    });
  });

  it('wrong credentials: refused, not stored; right ones: ok', async () => {
    await configureSync(env, mdm.url, mdm.token, { right: 'g5-pass', wrong: 'not-the-password' });
    const err = await dispatch(station, 'blueprints.import', { blueprint: blueprint('wrong', 'secret:wrong') }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KitError);
    expect((err as KitError).code).toBe('mdm/wrong-credentials');
    expect((err as KitError).details).toMatchObject({ path: 'enrollment.group', groupId: 'grade5' });
    expect((err as KitError).message).not.toContain('not-the-password');
    expect(stored()).not.toContain('wrong');

    const ok = await dispatch(station, 'blueprints.import', { blueprint: blueprint('right', 'secret:right') });
    expect(ok).toEqual({ name: 'right', replaced: false, credentials: { status: 'ok' } });
    expect(stored()).toContain('right');

    const noGroup = await dispatch(station, 'blueprints.import', {
      blueprint: { ...blueprint('plain', 'secret:right'), enrollment: { method: 'none' } },
    });
    expect(noGroup.credentials).toEqual({ status: 'none' });
  });

  it('MDM down: saved with the warning "not checked"', async () => {
    await mdm.stop();
    const r = await dispatch(station, 'blueprints.import', { blueprint: blueprint('offline', 'secret:wrong') });
    expect(r).toEqual({
      name: 'offline',
      replaced: false,
      credentials: { status: 'not-checked', reason: 'mdm/offline' },
    });
    expect(stored()).toContain('offline');
  });
});
