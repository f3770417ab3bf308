/** The blueprint store: import/export/list, unique names, no secrets, identities in use, resolveBlueprint. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import { IdentityService } from '../../src/identity/identity.ts';
import { exportBlueprint, parseBlueprint, type BlueprintInput } from '../../src/kitting/blueprint.ts';
import {
  BlueprintIssuesError,
  deleteStoredBlueprint,
  exportStoredBlueprint,
  getStoredBlueprint,
  importBlueprintFile,
  listStoredBlueprints,
  resolveBlueprint,
  storeBlueprint,
} from '../../src/kitting/blueprint-store.ts';
import {
  migrateTo,
  openDatabase,
  openStationDatabase,
  schemaVersion,
  tableColumns,
  type Db,
} from '../../src/store/db.ts';
import { getIdentity, insertIdentity } from '../../src/store/identities.ts';
import { createJob, getJob } from '../../src/store/jobs.ts';

const dirs: string[] = [];
const dbs: Db[] = [];
afterEach(() => {
  for (const d of dbs.splice(0)) d.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function setup(): { dir: string; db: Db } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-bp-store-'));
  dirs.push(dir);
  const db = openStationDatabase(path.join(dir, 'data'));
  dbs.push(db);
  for (const id of ['org-1', 'org-2']) {
    insertIdentity(db, {
      id,
      org: `Org ${id}`,
      fingerprint: crypto.createHash('sha256').update(id).digest('hex'),
      notBefore: '2026-01-01T00:00:00.000Z',
      notAfter: '2036-01-01T00:00:00.000Z',
      certificate: Buffer.from(`cert ${id}`),
      encryptedKey: Buffer.from(`sealed ${id}`),
      createdAt: '2026-01-01T00:00:00.000Z',
    });
  }
  return { dir, db };
}

function bp(name: string, extra: Partial<BlueprintInput> = {}): BlueprintInput {
  return {
    version: 1,
    name,
    organization: { identityId: 'org-1', displayName: 'さくら小学校' },
    enrollment: {
      method: 'url',
      url: 'https://mdm.example.jp/enroll',
      group: { groupId: 'g-3-1', hideAuthScreen: true, userId: 'enroll31', passwordRef: 'secret:g-3-1' },
    },
    ...extra,
  };
}

function writeJson(dir: string, file: string, value: unknown): string {
  const p = path.join(dir, file);
  fs.writeFileSync(p, JSON.stringify(value, null, 2));
  return p;
}

function thrown(fn: () => unknown): KitError {
  try {
    fn();
  } catch (err) {
    if (err instanceof KitError) return err;
    throw err;
  }
  throw new Error('expected a KitError');
}

describe('blueprint store', () => {
  it('imports a file, lists it with the cli.md fields, exports it without secrets', () => {
    const { dir, db } = setup();
    const file = writeJson(dir, 'grade3.json', bp('3年1組', { supervise: true }));
    const r = importBlueprintFile(db, file, { now: () => new Date('2026-04-01T09:00:00Z') });
    expect(r.replaced).toBe(false);
    expect(listStoredBlueprints(db)).toEqual([
      { name: '3年1組', identity: 'org-1', supervise: true, enrollment: 'url', updatedAt: '2026-04-01T09:00:00.000Z' },
    ]);
    const text = exportStoredBlueprint(db, '3年1組');
    expect(text).toBe(exportBlueprint(parseBlueprint(bp('3年1組', { supervise: true }))));
    const exported = JSON.parse(text) as { enrollment: { group: Record<string, unknown> } };
    expect(exported.enrollment.group).toEqual({
      groupId: 'g-3-1',
      hideAuthScreen: true,
      userId: 'enroll31',
      passwordRef: 'secret:g-3-1',
    });
    expect(getStoredBlueprint(db, '3年1組').organization.identityId).toBe('org-1');
  });

  it('a secret written inline is refused field by field and never stored or exported', () => {
    const { db } = setup();
    const input = bp('inline');
    const withPassword = {
      ...input,
      enrollment: { method: 'url', url: 'https://mdm.example.jp/enroll', password: 'hunter2' },
    };
    const err = thrown(() => storeBlueprint(db, withPassword));
    expect(err).toBeInstanceOf(BlueprintIssuesError);
    expect(err.code).toBe('blueprint/invalid');
    expect(err.exitCode).toBe(2);
    const issues = (err as BlueprintIssuesError).issues;
    expect(issues.map((i) => [i.path, i.code])).toContainEqual(['enrollment.password', 'secret-inline']);
    expect(issues[0]?.message.ja).not.toBe('');
    expect(listStoredBlueprints(db)).toEqual([]);
    const stored = db.prepare('SELECT json FROM blueprints').all() as { json: string }[];
    expect(stored.some((s) => s.json.includes('hunter2'))).toBe(false);
  });

  it('every invalid field is reported (ja/en) and nothing is stored', () => {
    const { db } = setup();
    const err = thrown(() =>
      storeBlueprint(db, {
        version: 1,
        name: '',
        organization: { identityId: 'org-1', displayName: 'X', email: 'no' },
      }),
    ) as BlueprintIssuesError;
    expect(err.code).toBe('blueprint/invalid');
    expect(err.issues.map((i) => i.path).sort()).toEqual(['name', 'organization.email']);
    for (const i of err.issues) {
      expect(i.message.en).not.toBe('');
      expect(i.message.ja).not.toBe('');
    }
    expect(listStoredBlueprints(db)).toEqual([]);
  });

  it('names are unique: a second import is blueprint/duplicate-name unless replace', () => {
    const { db } = setup();
    let t = Date.parse('2026-04-01T00:00:00Z');
    const now = (): Date => new Date((t += 60_000));
    storeBlueprint(db, bp('cart'), { now });
    const dup = thrown(() => storeBlueprint(db, bp('cart', { supervise: false }), { now }));
    expect(dup.code).toBe('blueprint/duplicate-name');
    expect(dup.exitCode).toBe(1);
    expect(getStoredBlueprint(db, 'cart').supervise).toBe(true);
    const r = storeBlueprint(
      db,
      bp('cart', { supervise: false, organization: { identityId: 'org-2', displayName: 'B' } }),
      {
        now,
        replace: true,
      },
    );
    expect(r.replaced).toBe(true);
    expect(listStoredBlueprints(db)).toEqual([
      { name: 'cart', identity: 'org-2', supervise: false, enrollment: 'url', updatedAt: '2026-04-01T00:03:00.000Z' },
    ]);
  });

  it('an identity the station does not have is identity/not-found (exit 3)', () => {
    const { db } = setup();
    const err = thrown(() => storeBlueprint(db, bp('x', { organization: { identityId: 'nobody', displayName: 'N' } })));
    expect(err.code).toBe('identity/not-found');
    expect(err.exitCode).toBe(3);
    expect(err.message).toContain('organization.identityId');
    expect(listStoredBlueprints(db)).toEqual([]);
  });

  it('an identity used by a blueprint cannot be deleted (identity service → identity/in-use; the foreign key too)', () => {
    const { db } = setup();
    storeBlueprint(db, bp('uses-org-1'));
    const service = new IdentityService({
      db,
      vault: () => Promise.reject(new KitError('vault/passphrase-required', 'not needed to delete')),
    });
    const err = thrown(() => service.delete('org-1'));
    expect(err.code).toBe('identity/in-use');
    expect(err.details).toMatchObject({ id: 'org-1', blueprints: 1 });
    expect(getIdentity(db, 'org-1')).toBeDefined();
    expect(() => db.prepare("DELETE FROM identities WHERE id = 'org-1'").run()).toThrow(/FOREIGN KEY/);
    service.delete('org-2');
    expect(getIdentity(db, 'org-2')).toBeUndefined();
    deleteStoredBlueprint(db, 'uses-org-1');
    service.delete('org-1');
    expect(getIdentity(db, 'org-1')).toBeUndefined();
  });

  it('resolveBlueprint: a stored name first, else a file path; neither is blueprint/not-found', () => {
    const { dir, db } = setup();
    const file = writeJson(dir, 'from-file.json', bp('from file', { finish: 'restart' }));
    const shadow = writeJson(dir, 'shadow.json', bp('the file', { finish: 'shutdown' }));
    storeBlueprint(db, bp('stored', { finish: 'none' }));
    storeBlueprint(db, bp(shadow, { finish: 'restart' }));

    expect(resolveBlueprint(db, 'stored')).toMatchObject({ source: 'stored', blueprint: { name: 'stored' } });
    expect(resolveBlueprint(db, file)).toMatchObject({
      source: 'file',
      path: file,
      blueprint: { name: 'from file', finish: 'restart' },
    });
    // A stored blueprint named like an existing file wins.
    expect(resolveBlueprint(db, shadow)).toMatchObject({ source: 'stored', blueprint: { finish: 'restart' } });

    const missing = thrown(() => resolveBlueprint(db, 'no such blueprint'));
    expect(missing.code).toBe('blueprint/not-found');
    expect(missing.exitCode).toBe(3);
    expect(thrown(() => resolveBlueprint(db, dir)).code).toBe('blueprint/not-found');

    const bad = writeJson(dir, 'bad.json', { version: 1, name: 'bad' });
    expect(thrown(() => resolveBlueprint(db, bad)).code).toBe('blueprint/invalid');
    fs.writeFileSync(path.join(dir, 'broken.json'), '{ "version": 1,\n  oops }');
    const broken = thrown(() => resolveBlueprint(db, path.join(dir, 'broken.json')));
    expect(broken.code).toBe('blueprint/not-json');
    expect(broken.details).toMatchObject({ line: 2 });
  });
});

describe('migration 0003-plans-blueprints', () => {
  it('adds plans, plan_rows and blueprints to a version-2 database, keeping its identities and jobs', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-mig3-'));
    dirs.push(dir);
    const db = openDatabase(path.join(dir, 'station.db'), { migrate: 2 });
    dbs.push(db);
    insertIdentity(db, {
      id: 'org-1',
      org: 'Org',
      fingerprint: 'b'.repeat(64),
      notBefore: '2026-01-01T00:00:00.000Z',
      notAfter: '2036-01-01T00:00:00.000Z',
      certificate: Buffer.from([1]),
      encryptedKey: Buffer.from([2]),
      createdAt: '2026-01-01T00:00:00.000Z',
    });
    createJob(
      db,
      {
        id: 'j',
        udid: 'u',
        serial: null,
        blueprintName: 'b',
        blueprintJson: '{}',
        batchId: 'x',
        counterStart: 1,
        steps: ['identify'],
      },
      '2026-01-01T00:00:00.000Z',
    );
    expect(tableColumns(db, 'blueprints')).toEqual([]);
    expect(migrateTo(db, 3)).toBe(3);
    expect(schemaVersion(db)).toBe(3);
    expect(getIdentity(db, 'org-1')?.org).toBe('Org');
    expect(getJob(db, 'j')?.steps).toHaveLength(1);
    expect(tableColumns(db, 'blueprints')).toEqual(['id', 'name', 'json', 'identity_id', 'created_at', 'updated_at']);
    expect(tableColumns(db, 'plans')).toEqual(['name', 'format', 'encoding', 'source', 'imported_at']);
    expect(tableColumns(db, 'plan_rows')).toContain('serial');
  });
});
