/**
 * SQL for the `mdm_groups` table (migration 0004): the MDM's groups as last fetched by the
 * syncer, so blueprints can be edited offline. The whole list is replaced at once; its fetch time
 * is kept in the settings (`mdm.groupsFetchedAt`), so an empty list still says when it was seen.
 */
import { transaction, withStoreErrors, type Db } from './db.ts';
import { getSetting, setSetting } from './settings.ts';

const FETCHED_AT = 'mdm.groupsFetchedAt';

/** A cached group: the MDM's JSON for it (validated by the client before it got here). */
export type CachedGroup = { id: string } & { [key: string]: unknown };

/** The cached list and when it was fetched; `fetchedAt` is null when nothing was ever fetched. */
export interface GroupCache {
  groups: CachedGroup[];
  fetchedAt: string | null;
}

/** Replaces the cached list with `groups`, fetched at `fetchedAt` (one transaction). */
export function replaceCachedGroups(db: Db, groups: readonly CachedGroup[], fetchedAt: string): void {
  transaction(db, 'caching MDM groups', () => {
    db.prepare('DELETE FROM mdm_groups').run();
    const insert = db.prepare('INSERT INTO mdm_groups (id, position, json, fetched_at) VALUES (?, ?, ?, ?)');
    groups.forEach((g, i) => insert.run(g.id, i, JSON.stringify(g), fetchedAt));
    setSetting(db, FETCHED_AT, fetchedAt);
  });
}

/** The cached groups in the MDM's order, and their fetch time. */
export function cachedGroups(db: Db): GroupCache {
  return withStoreErrors('reading cached MDM groups', () => {
    const rows = db.prepare('SELECT json FROM mdm_groups ORDER BY position').all() as { json: string }[];
    return {
      groups: rows.map((r) => JSON.parse(r.json) as CachedGroup),
      fetchedAt: getSetting(db, FETCHED_AT) ?? null,
    };
  });
}
