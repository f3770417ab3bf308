/**
 * SQL for the `settings` table (migration 0001): small station-wide values as text (JSON for
 * structured ones). Never a secret: secrets go through the vault.
 */
import { withStoreErrors, type Db } from './db.ts';

/** The value stored under `key`, or undefined. */
export function getSetting(db: Db, key: string): string | undefined {
  return withStoreErrors('reading a setting', () => {
    const r = db.prepare('SELECT value FROM settings WHERE key = ?').get(key) as { value: string } | undefined;
    return r?.value;
  });
}

/** Stores `value` under `key` (replacing any previous value). */
export function setSetting(db: Db, key: string, value: string): void {
  withStoreErrors('writing a setting', () => {
    db.prepare(
      'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    ).run(key, value);
  });
}

/** Removes `key`; true when it was there. */
export function deleteSetting(db: Db, key: string): boolean {
  return withStoreErrors(
    'deleting a setting',
    () => db.prepare('DELETE FROM settings WHERE key = ?').run(key).changes > 0,
  );
}
