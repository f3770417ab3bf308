/**
 * MDM secrets at rest: the station's bearer token and group enrollment passwords, sealed with the
 * station's vault (src/identity/vault.ts) and stored as ciphertext in the `secrets` table
 * (src/store/secrets.ts). The vault label is the secret's name, so a blob cannot be swapped for
 * another one. Plaintext never reaches a log line or a file.
 *
 * Errors: `mdm/unconfigured` (no token stored), the vault's `vault/*` codes, `store/*`.
 */
import { KitError } from '../errors.ts';
import type { Vault } from '../identity/vault.ts';
import type { Db } from '../store/db.ts';
import { deleteSecret, getSealedSecret, putSealedSecret } from '../store/secrets.ts';
import { getSetting, setSetting } from '../store/settings.ts';

/** The secret name of the station token. */
export const TOKEN_SECRET = 'mdm/token';
/** The settings key of the MDM base URL (not a secret). */
export const URL_SETTING = 'mdm.url';

/** The secret name of a group's enrollment password. */
export function groupPasswordSecret(groupId: string): string {
  return `mdm/group-password/${groupId}`;
}

/** Seals and stores the station token. */
export async function saveStationToken(db: Db, vault: Vault, token: string): Promise<void> {
  const sealed = await vault.seal(Buffer.from(token, 'utf8'), TOKEN_SECRET);
  putSealedSecret(db, TOKEN_SECRET, sealed, new Date().toISOString());
}

/** Opens the stored station token; `mdm/unconfigured` when there is none. */
export async function loadStationToken(db: Db, vault: Vault): Promise<string> {
  const sealed = getSealedSecret(db, TOKEN_SECRET);
  if (sealed === undefined) throw new KitError('mdm/unconfigured', 'no MDM token is stored (kitting sync config)');
  return (await vault.open(sealed, TOKEN_SECRET)).toString('utf8');
}

/** Whether a station token is stored (no vault needed). */
export function hasStationToken(db: Db): boolean {
  return getSealedSecret(db, TOKEN_SECRET) !== undefined;
}

/** The configured MDM base URL, or undefined. */
export function configuredUrl(db: Db): string | undefined {
  return getSetting(db, URL_SETTING);
}

/** Stores the MDM base URL. */
export function saveUrl(db: Db, url: string): void {
  setSetting(db, URL_SETTING, url);
}

/** Seals and stores a group's enrollment password (used by blueprints that enroll into the group). */
export async function saveGroupPassword(db: Db, vault: Vault, groupId: string, password: string): Promise<void> {
  const name = groupPasswordSecret(groupId);
  putSealedSecret(db, name, await vault.seal(Buffer.from(password, 'utf8'), name), new Date().toISOString());
}

/** Opens a group's enrollment password, or undefined when none is stored. */
export async function loadGroupPassword(db: Db, vault: Vault, groupId: string): Promise<string | undefined> {
  const name = groupPasswordSecret(groupId);
  const sealed = getSealedSecret(db, name);
  return sealed === undefined ? undefined : (await vault.open(sealed, name)).toString('utf8');
}

/** Forgets a group's enrollment password; true when one was stored. */
export function forgetGroupPassword(db: Db, groupId: string): boolean {
  return deleteSecret(db, groupPasswordSecret(groupId));
}
