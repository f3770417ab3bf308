import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import {
  codeForSqlite,
  migrateTo,
  openDatabase,
  openStationDatabase,
  schemaVersion,
  tableColumns,
  tableExists,
  toStoreError,
  transaction,
  type Db,
  type Migration,
} from '../../src/store/db.ts';
import { MIGRATIONS } from '../../src/store/migrations/index.ts';

let dir: string;
const open: Db[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-store-'));
});
afterEach(() => {
  for (const db of open.splice(0)) if (db.open) db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function track(db: Db): Db {
  open.push(db);
  return db;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof KitError ? err.code : `not a KitError: ${String(err)}`;
  }
  return 'did not throw';
}

function tables(db: Db): string[] {
  return (
    db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
      .all() as {
      name: string;
    }[]
  ).map((r) => r.name);
}

describe('openDatabase', () => {
  it('turns on WAL, foreign keys, a busy timeout and synchronous NORMAL, and migrates to the newest schema', () => {
    const db = track(openDatabase(path.join(dir, 'a.db')));
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(db.pragma('busy_timeout', { simple: true })).toBe(5000);
    expect(db.pragma('synchronous', { simple: true })).toBe(1);
    expect(schemaVersion(db)).toBe(MIGRATIONS.length);
    expect(tables(db)).toEqual(expect.arrayContaining(['audit_log', 'identities', 'settings']));
  });

  it('creates the data folder 0700 and station.db 0600 (WAL files too)', () => {
    const dataDir = path.join(dir, 'data', 'nested');
    const db = track(openStationDatabase(dataDir));
    db.prepare("INSERT INTO settings (key, value) VALUES ('k', 'v')").run();
    expect(fs.statSync(dataDir).mode & 0o777).toBe(0o700);
    for (const f of ['station.db', 'station.db-wal', 'station.db-shm']) {
      expect(fs.statSync(path.join(dataDir, f)).mode & 0o777, f).toBe(0o600);
    }
  });

  it('opens the same file again without re-running migrations (idempotent)', () => {
    const file = path.join(dir, 'b.db');
    track(openDatabase(file)).close();
    const db = track(openDatabase(file));
    expect(schemaVersion(db)).toBe(MIGRATIONS.length);
    expect(migrateTo(db)).toBe(MIGRATIONS.length);
  });

  it('refuses a database written by a newer station', () => {
    const file = path.join(dir, 'newer.db');
    const raw = new Database(file);
    raw.pragma(`user_version = ${MIGRATIONS.length + 5}`);
    raw.close();
    expect(codeOf(() => openDatabase(file))).toBe('store/newer-schema');
  });

  it('reports a file that is not a database as store/corrupt', () => {
    const file = path.join(dir, 'junk.db');
    fs.writeFileSync(file, Buffer.alloc(4096, 0x41));
    expect(codeOf(() => openDatabase(file))).toBe('store/corrupt');
  });
});

describe('migration runner', () => {
  const applied: string[] = [];
  const m1: Migration = {
    version: 1,
    name: 'things',
    up(db) {
      applied.push('things');
      db.exec('CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL)');
    },
  };
  const m2: Migration = {
    version: 2,
    name: 'thing-slugs',
    up(db) {
      applied.push('thing-slugs');
      db.exec("ALTER TABLE things ADD COLUMN slug TEXT NOT NULL DEFAULT ''");
      db.exec("UPDATE things SET slug = lower(replace(name, ' ', '-'))");
    },
  };
  const broken: Migration = {
    version: 3,
    name: 'broken',
    up(db) {
      db.exec('CREATE TABLE half_done (x INTEGER)');
      db.exec("INSERT INTO things (name) VALUES ('written by a failing migration')");
      throw new Error('boom in the middle');
    },
  };

  beforeEach(() => {
    applied.length = 0;
  });

  it('applies migrations in order, up to a target, and skips those already applied', () => {
    const db = track(openDatabase(':memory:', { migrate: false }));
    expect(migrateTo(db, 1, [m1, m2])).toBe(1);
    expect(migrateTo(db, 2, [m1, m2])).toBe(2);
    expect(migrateTo(db, 2, [m1, m2])).toBe(2);
    expect(applied).toEqual(['things', 'thing-slugs']);
  });

  it('rolls a failing migration back completely: user_version, schema and data unchanged', () => {
    const db = track(openDatabase(':memory:', { migrate: false }));
    migrateTo(db, 2, [m1, m2]);
    db.prepare("INSERT INTO things (name) VALUES ('Cart A')").run();
    const before = db.prepare('SELECT sql FROM sqlite_master ORDER BY name').all();
    expect(codeOf(() => migrateTo(db, undefined, [m1, m2, broken]))).toBe('bug');
    expect(schemaVersion(db)).toBe(2);
    expect(tableExists(db, 'half_done')).toBe(false);
    expect(db.prepare('SELECT sql FROM sqlite_master ORDER BY name').all()).toEqual(before);
    expect(db.prepare('SELECT count(*) AS n FROM things').get()).toEqual({ n: 1 });
  });

  it('refuses a migration list with gaps or duplicates', () => {
    const db = track(openDatabase(':memory:', { migrate: false }));
    expect(codeOf(() => migrateTo(db, undefined, [m1, { ...m2, version: 3 }]))).toBe('bug');
    expect(codeOf(() => migrateTo(db, undefined, [m1, m1]))).toBe('bug');
    expect(schemaVersion(db)).toBe(0);
  });

  it('runs a table-rebuilding migration with foreign keys off, checks them, and turns them back on', () => {
    const parent: Migration = {
      version: 1,
      name: 'parent-child',
      up(db) {
        db.exec('CREATE TABLE parent (id TEXT PRIMARY KEY)');
        db.exec('CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id TEXT NOT NULL REFERENCES parent (id))');
      },
    };
    const rebuild: Migration = {
      version: 2,
      name: 'rebuild-parent',
      foreignKeysOff: true,
      up(db) {
        db.exec('CREATE TABLE parent_new (id TEXT PRIMARY KEY, label TEXT)');
        db.exec('INSERT INTO parent_new (id) SELECT id FROM parent');
        db.exec('DROP TABLE parent');
        db.exec('ALTER TABLE parent_new RENAME TO parent');
      },
    };
    const db = track(openDatabase(':memory:', { migrate: false }));
    migrateTo(db, 1, [parent, rebuild]);
    db.exec("INSERT INTO parent (id) VALUES ('p'); INSERT INTO child (parent_id) VALUES ('p')");
    migrateTo(db, 2, [parent, rebuild]);
    expect(tableColumns(db, 'parent')).toEqual(['id', 'label']);
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(() => db.prepare("INSERT INTO child (parent_id) VALUES ('nobody')").run()).toThrow(/FOREIGN KEY/);
  });

  /**
   * The pattern for a migration that changes data (copy it for yours): migrate to N−1, write rows
   * the way the old schema held them, migrate to N, check the rows the new schema holds.
   */
  it('migration-data pattern: rows written at N−1 are converted by migration N', () => {
    const list = [m1, m2];
    const db = track(openDatabase(':memory:', { migrate: false, migrations: list }));
    migrateTo(db, 1, list);
    const insert = db.prepare('INSERT INTO things (name) VALUES (?)');
    insert.run('Cart A');
    insert.run('Hub 2 Port 7');
    migrateTo(db, 2, list);
    expect(db.prepare('SELECT name, slug FROM things ORDER BY id').all()).toEqual([
      { name: 'Cart A', slug: 'cart-a' },
      { name: 'Hub 2 Port 7', slug: 'hub-2-port-7' },
    ]);
  });
});

describe('migration 0001-identities', () => {
  it('creates identities with a unique fingerprint, checked ids and no room for a half row', () => {
    const db = track(openDatabase(':memory:', { migrate: false }));
    migrateTo(db, 1);
    expect(tableColumns(db, 'identities')).toEqual([
      'id',
      'org',
      'fingerprint',
      'not_before',
      'not_after',
      'certificate',
      'encrypted_key',
      'created_at',
    ]);
    const insert = db.prepare(
      `INSERT INTO identities (id, org, fingerprint, not_before, not_after, certificate, encrypted_key, created_at)
       VALUES (?, 'Org', ?, '2025-01-01T00:00:00.000Z', '2035-01-01T00:00:00.000Z', x'30', x'00', '2025-01-01T00:00:00.000Z')`,
    );
    insert.run('org-a1b2', 'a'.repeat(64));
    const dup = (): unknown => insert.run('org-other', 'a'.repeat(64));
    expect(() => dup()).toThrow(/UNIQUE constraint failed: identities.fingerprint/);
    expect(() => insert.run('Bad_ID', 'b'.repeat(64))).toThrow(/CHECK constraint failed/);
    expect(() => insert.run('x'.repeat(65), 'c'.repeat(64))).toThrow(/CHECK constraint failed/);
    expect(db.prepare('SELECT count(*) AS n FROM identities').get()).toEqual({ n: 1 });
  });

  it('keeps audit details as valid JSON only', () => {
    const db = track(openDatabase(':memory:'));
    db.prepare("INSERT INTO audit_log (at, actor, action, details) VALUES ('t', 'cli', 'x', '{\"a\":1}')").run();
    expect(() =>
      db.prepare("INSERT INTO audit_log (at, actor, action, details) VALUES ('t', 'cli', 'x', 'not json')").run(),
    ).toThrow(/CHECK constraint failed/);
  });
});

describe('SQLite errors become codes', () => {
  it('maps primary and extended result codes through one table', () => {
    expect(codeForSqlite('SQLITE_BUSY')).toBe('store/busy');
    expect(codeForSqlite('SQLITE_BUSY_SNAPSHOT')).toBe('store/busy');
    expect(codeForSqlite('SQLITE_CONSTRAINT_UNIQUE')).toBe('store/constraint');
    expect(codeForSqlite('SQLITE_CORRUPT')).toBe('store/corrupt');
    expect(codeForSqlite('SQLITE_NOTADB')).toBe('store/corrupt');
    expect(codeForSqlite('SQLITE_IOERR_WRITE')).toBe('store/io');
    expect(codeForSqlite('SQLITE_FULL')).toBe('store/io');
    expect(codeForSqlite('SQLITE_ERROR')).toBe('bug');
  });

  it('reports a write blocked by another connection as retryable store/busy', () => {
    const file = path.join(dir, 'busy.db');
    const a = track(openDatabase(file));
    const b = track(openDatabase(file, { busyTimeoutMs: 0 }));
    a.exec('BEGIN IMMEDIATE');
    let err: unknown;
    try {
      transaction(b, 'writing a setting', () => b.prepare("INSERT INTO settings VALUES ('k', 'v')").run());
    } catch (e) {
      err = e;
    }
    a.exec('ROLLBACK');
    expect(err).toBeInstanceOf(KitError);
    expect((err as KitError).code).toBe('store/busy');
    expect((err as KitError).retryable).toBe(true);
  });

  it('reports a constraint failure as store/constraint', () => {
    const db = track(openDatabase(':memory:'));
    db.prepare("INSERT INTO settings VALUES ('k', 'v')").run();
    let caught: unknown;
    try {
      db.prepare("INSERT INTO settings VALUES ('k', 'w')").run();
    } catch (e) {
      caught = e;
    }
    expect(toStoreError(caught).code).toBe('store/constraint');
  });

  it('refuses a transaction body that returns a promise, and rolls it back', () => {
    const db = track(openDatabase(':memory:'));
    const code = codeOf(() =>
      transaction(db, 'async body', () => {
        db.prepare("INSERT INTO settings VALUES ('k', 'v')").run();
        return Promise.resolve(1);
      }),
    );
    expect(code).toBe('bug');
    expect(db.prepare('SELECT count(*) AS n FROM settings').get()).toEqual({ n: 0 });
  });
});
