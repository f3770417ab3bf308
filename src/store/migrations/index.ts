/**
 * The station's migrations, in order. To change the schema, add `NNNN-name.ts` next to this file
 * (exporting `version`, `name`, `up` and optionally `foreignKeysOff`, see `Migration` in
 * `../db.ts`) and append it here; never edit a migration that has shipped. A migration that
 * changes existing data gets a test in `test/unit/store-migrations.test.ts` (migrate to N−1, add
 * rows, migrate to N, check them).
 */
import type { Migration } from '../db.ts';
import * as m0001 from './0001-identities.ts';
import * as m0002 from './0002-jobs.ts';
import * as m0003 from './0003-plans-blueprints.ts';
import * as m0004 from './0004-outbox.ts';
import * as m0005 from './0005-mdm-loop.ts';

export const MIGRATIONS: readonly Migration[] = [m0001, m0002, m0003, m0004, m0005];
