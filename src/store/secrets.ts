/**
 * SQL for the `secrets` table (migration 0004): vault-sealed secrets by name, such as the
 * station's MDM token (`mdm/token`) and group enrollment passwords (`mdm/group-password/<id>`).
 * Only ciphertext from `Vault.seal` is stored here; sealing and opening happen in the caller
 * (src/mdm/secrets.ts), so this file never sees a plaintext secret.
 */
import { withStoreErrors, type Db } from './db.ts';

/** The sealed bytes stored under `name`, or undefined. */
export function getSealedSecret(db: Db, name: string): Buffer | undefined {
  return withStoreErrors('reading a secret', () => {
    const r = db.prepare('SELECT sealed FROM secrets WHERE name = ?').get(name) as { sealed: Buffer } | undefined;
    return r?.sealed;
  });
}

/** Stores sealed bytes under `name` (replacing any previous value). */
export function putSealedSecret(db: Db, name: string, sealed: Buffer, at: string): void {
  withStoreErrors('writing a secret', () => {
    db.prepare(
      `INSERT INTO secrets (name, sealed, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at`,
    ).run(name, sealed, at);
  });
}

/** Removes the secret `name`; true when it was there. */
export function deleteSecret(db: Db, name: string): boolean {
  return withStoreErrors(
    'deleting a secret',
    () => db.prepare('DELETE FROM secrets WHERE name = ?').run(name).changes > 0,
  );
}
