/**
 * The station's SQLite database (better-sqlite3): opening with the station's pragmas, the generic
 * numbered-migration runner, transactions that cannot span an `await`, and the one table that
 * turns SQLite result codes into {@link KitError} codes.
 *
 * Every SQL statement of the station lives under `src/store/` (architecture.md); this file holds
 * the plumbing, one file per table family holds the statements (`identities.ts`, `audit.ts` …).
 *
 * Lifecycle: {@link openStationDatabase} (or {@link openDatabase}) once per process, which migrates
 * to the newest schema; close with `db.close()` when the process ends. better-sqlite3 is
 * synchronous: a statement blocks the event loop for its duration, so keep statements small.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { KitError, type ErrorCode } from '../errors.ts';
import { createLogger } from '../log.ts';
import { MIGRATIONS } from './migrations/index.ts';

/** An open better-sqlite3 connection. */
export type Db = Database.Database;

/**
 * One numbered schema change, in `src/store/migrations/NNNN-name.ts` exporting `version`, `name`
 * and `up` (and optionally `foreignKeysOff`). `up` runs inside a transaction opened by the runner:
 * it must be synchronous and must not open its own transaction.
 */
export interface Migration {
  /** 1, 2, 3 … without gaps: the `PRAGMA user_version` after this migration. */
  readonly version: number;
  /** kebab-case, the file name without the number (`identities`, `jobs` …). */
  readonly name: string;
  /** Applies the change. Throwing rolls the whole migration back. */
  up(db: Db): void;
  /**
   * Set for migrations that rebuild a table (`CREATE new; INSERT … SELECT; DROP old; ALTER … RENAME`):
   * the runner turns foreign-key enforcement off around the transaction (it cannot change inside
   * one) and runs `PRAGMA foreign_key_check` before committing.
   */
  readonly foreignKeysOff?: boolean;
}

/** The station database file inside the data folder. */
export const STATION_DB_FILE = 'station.db';

const log = createLogger('store/db');

/**
 * SQLite primary result codes → station codes. better-sqlite3 reports extended codes as strings
 * (`SQLITE_CONSTRAINT_UNIQUE`, `SQLITE_IOERR_WRITE` …); the part before the second `_` is the
 * primary code looked up here. Codes not listed (SQLITE_ERROR, SQLITE_MISUSE, SQLITE_RANGE …) are
 * programming errors and become `bug`.
 */
export const SQLITE_CODES: Readonly<Record<string, ErrorCode>> = {
  SQLITE_BUSY: 'store/busy',
  SQLITE_LOCKED: 'store/busy',
  SQLITE_CONSTRAINT: 'store/constraint',
  SQLITE_CORRUPT: 'store/corrupt',
  SQLITE_NOTADB: 'store/corrupt',
  SQLITE_IOERR: 'store/io',
  SQLITE_FULL: 'store/io',
  SQLITE_CANTOPEN: 'store/io',
  SQLITE_READONLY: 'store/io',
  SQLITE_PERM: 'store/io',
  SQLITE_NOLFS: 'store/io',
  SQLITE_PROTOCOL: 'store/busy',
};

/** The station code for a SQLite result code string such as `SQLITE_CONSTRAINT_UNIQUE`. */
export function codeForSqlite(sqliteCode: string): ErrorCode {
  const primary = /^SQLITE_[A-Z]+/.exec(sqliteCode)?.[0] ?? sqliteCode;
  return SQLITE_CODES[primary] ?? 'bug';
}

function sqliteCodeOf(err: unknown): string | undefined {
  if (err instanceof Database.SqliteError) return err.code;
  const code: unknown = err instanceof Error ? (err as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

/**
 * Wraps a SQLite failure into a KitError through {@link SQLITE_CODES}; KitErrors pass through,
 * anything else becomes `bug`. The SQLite message (table and column names, never values) is kept.
 */
export function toStoreError(err: unknown, what = 'database operation'): KitError {
  if (err instanceof KitError) return err;
  const sqliteCode = sqliteCodeOf(err);
  const message = err instanceof Error ? err.message : String(err);
  if (sqliteCode === undefined) return new KitError('bug', `${what}: ${message}`, { cause: err });
  return new KitError(codeForSqlite(sqliteCode), `${what}: ${message} (${sqliteCode})`, {
    cause: err,
    details: { sqlite: sqliteCode },
  });
}

/** Runs `fn`, turning SQLite failures into KitErrors ({@link toStoreError}). */
export function withStoreErrors<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw toStoreError(err, what);
  }
}

/** Prepared statements per connection and SQL text ({@link stmt}). */
const statements = new WeakMap<Db, Map<string, Database.Statement>>();

/**
 * The statement for `sql` on `db`, prepared on first use and kept for the connection's life
 * (preparing parses and plans the SQL, which costs more than running a small statement; SQLite
 * re-prepares a kept statement by itself after a schema change). For SQL texts from a small fixed
 * set only, and never with `pluck`/`raw`/`expand`/`iterate`, which change or hold the shared statement.
 */
export function stmt(db: Db, sql: string): Database.Statement {
  let bySql = statements.get(db);
  if (bySql === undefined) {
    bySql = new Map();
    statements.set(db, bySql);
  }
  let s = bySql.get(sql);
  if (s === undefined) {
    s = db.prepare(sql);
    bySql.set(sql, s);
  }
  return s;
}

/**
 * Runs `fn` in one SQLite transaction (`BEGIN IMMEDIATE`, so a writer waits for the lock up front
 * instead of failing half-way). `fn` must be synchronous: a transaction never spans an `await`
 * (architecture.md), and returning a promise is refused as a `bug` (and rolled back).
 */
export function transaction<T>(db: Db, what: string, fn: () => T): T {
  const run = db.transaction(() => {
    const result = fn();
    if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
      throw new KitError('bug', `${what}: a transaction body returned a promise (never await inside a transaction)`);
    }
    return result;
  });
  return withStoreErrors(what, () => run.immediate());
}

/** The schema version of an open database (`PRAGMA user_version`). */
export function schemaVersion(db: Db): number {
  return Number(db.pragma('user_version', { simple: true }));
}

/** Checks that migrations are numbered 1…n in order without gaps or duplicates; throws `bug` otherwise. */
export function checkMigrations(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new KitError('bug', `migration ${m.name}: version ${m.version} found where ${i + 1} was expected`);
    }
    if (!/^[a-z0-9]+(-[a-z0-9]+)*$/.test(m.name))
      throw new KitError('bug', `migration ${m.version}: bad name ${m.name}`);
  });
}

/**
 * Applies the migrations after the database's `user_version`, in order, up to `target` (default:
 * all). Each migration runs in its own transaction together with its `user_version` bump, so a
 * failing migration leaves the version and the schema as they were (and throws). Idempotent:
 * already applied migrations are skipped. A database newer than `target`'s list is refused with
 * `store/newer-schema` (a downgrade would silently misread it).
 */
export function migrateTo(db: Db, target?: number, migrations: readonly Migration[] = MIGRATIONS): number {
  checkMigrations(migrations);
  const latest = migrations.length;
  const goal = target ?? latest;
  if (!Number.isInteger(goal) || goal < 0 || goal > latest) {
    throw new KitError('bug', `migration target ${goal} outside 0…${latest}`);
  }
  const current = schemaVersion(db);
  if (current > latest) {
    throw new KitError('store/newer-schema', `database schema ${current} is newer than this station's ${latest}`, {
      details: { schema: current, supported: latest },
    });
  }
  if (current > goal) throw new KitError('bug', `cannot migrate down from ${current} to ${goal}`);
  for (const m of migrations.slice(current, goal)) applyMigration(db, m);
  return schemaVersion(db);
}

function applyMigration(db: Db, m: Migration): void {
  const what = `migration ${String(m.version).padStart(4, '0')}-${m.name}`;
  const fkWasOn = Number(db.pragma('foreign_keys', { simple: true })) === 1;
  if (m.foreignKeysOff === true && fkWasOn) db.pragma('foreign_keys = OFF');
  try {
    transaction(db, what, () => {
      m.up(db);
      if (m.foreignKeysOff === true) {
        const broken = db.pragma('foreign_key_check') as unknown[];
        if (broken.length > 0) {
          throw new KitError('store/constraint', `${what}: ${broken.length} rows break a foreign key`);
        }
      }
      db.pragma(`user_version = ${m.version}`);
    });
  } finally {
    if (m.foreignKeysOff === true && fkWasOn) db.pragma('foreign_keys = ON');
  }
  log.info('migration applied', { version: m.version, name: m.name });
}

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** Migrate to this version (default: the newest); `false` leaves the schema alone (tests). */
  migrate?: number | false;
  /** The migration list (default: the station's {@link MIGRATIONS}); tests pass their own. */
  migrations?: readonly Migration[];
  /** How long a statement waits for another connection's lock before `store/busy` (ms, default 5000). */
  busyTimeoutMs?: number;
}

/**
 * Opens (creating if needed, mode 0600) a SQLite database with the station's settings: WAL
 * journal, `foreign_keys = ON`, `busy_timeout`, `synchronous = NORMAL`; then migrates it.
 * `':memory:'` works for tests (its journal mode stays `memory`).
 *
 * Throws `store/io` (cannot open or create), `store/corrupt` (not a database), `store/newer-schema`,
 * or the code of a failing migration.
 */
export function openDatabase(file: string, options: OpenDatabaseOptions = {}): Db {
  if (file !== ':memory:') createPrivateFile(file);
  const db = withStoreErrors(`opening ${file}`, () => new Database(file, { timeout: options.busyTimeoutMs ?? 5000 }));
  try {
    withStoreErrors(`configuring ${file}`, () => {
      db.pragma('journal_mode = WAL');
      db.pragma('foreign_keys = ON');
      db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs ?? 5000))}`);
      db.pragma('synchronous = NORMAL');
    });
    if (options.migrate !== false) migrateTo(db, options.migrate, options.migrations ?? MIGRATIONS);
    return db;
  } catch (err) {
    db.close();
    throw toStoreError(err, `opening ${file}`);
  }
}

/**
 * Creates the data folder (mode 0700) if needed and opens `<dataDir>/station.db` migrated to the
 * newest schema. The database holds only vault ciphertext of private keys, but still gets 0600.
 */
export function openStationDatabase(dataDir: string, options: Omit<OpenDatabaseOptions, 'migrate'> = {}): Db {
  ensurePrivateDir(dataDir);
  return openDatabase(path.join(dataDir, STATION_DB_FILE), options);
}

/**
 * Creates `dir` (and missing parents) with mode 0700. An existing folder is left as it is: it may
 * be one the user chose (`--data-dir ~`), and changing its mode is not ours to do.
 */
export function ensurePrivateDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!fs.statSync(dir).isDirectory()) throw new KitError('store/io', `${dir} is not a folder`);
  } catch (err) {
    if (err instanceof KitError) throw err;
    throw new KitError('store/io', `cannot create the data folder ${dir}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Makes sure `file` exists with mode 0600 before SQLite opens it: SQLite creates the `-wal` and
 * `-shm` files with the database file's permissions, so they are private too.
 */
function createPrivateFile(file: string): void {
  try {
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    try {
      if (process.platform !== 'win32') fs.fchmodSync(fd, 0o600);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw new KitError('store/io', `cannot create ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** Whether a table exists (for features that depend on a later migration, e.g. `blueprints`). */
export function tableExists(db: Db, table: string): boolean {
  const row = db.prepare("SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = ?").get(table);
  return row !== undefined;
}

/** The column names of a table (empty when it does not exist). */
export function tableColumns(db: Db, table: string): string[] {
  const rows = db.prepare('SELECT name FROM pragma_table_info(?)').all(table) as { name: string }[];
  return rows.map((r) => r.name);
}
