/**
 * `secrets.setGroupPassword`: a group enrollment password set from the blueprint editor is stored
 * sealed by the vault (no file of the data folder holds the plaintext) and answers only the
 * blueprint reference `secret:<id>`, which the MDM port then opens.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatch } from '../../src/contract.ts';
import { PassphraseVault } from '../../src/identity/vault.ts';
import { loadGroupPassword } from '../../src/mdm/secrets.ts';
import { openStationDatabase } from '../../src/store/db.ts';
import { Station } from '../../src/station.ts';

const PASSWORD = 'Very-Secret-Group-Pass-7731';
let dir: string;
let dataDir: string;
let passphraseFile: string;
let station: Station;

function filesUnder(root: string): string[] {
  return fs.readdirSync(root, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(root, e.name);
    return e.isDirectory() ? filesUnder(p) : [p];
  });
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-group-pw-'));
  dataDir = path.join(dir, 'data');
  fs.mkdirSync(dataDir);
  passphraseFile = path.join(dir, 'passphrase');
  fs.writeFileSync(passphraseFile, 'group-password-test-passphrase');
  station = new Station({ dataDir, passphraseFile });
});
afterAll(async () => {
  await station.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('secrets.setGroupPassword', () => {
  it('stores the password sealed and answers only its reference', async () => {
    const result = await dispatch(station, 'secrets.setGroupPassword', { id: 'grade5', password: PASSWORD });
    expect(result).toEqual({ ref: 'secret:grade5' });
    expect(JSON.stringify(result)).not.toContain(PASSWORD);

    const needle = Buffer.from(PASSWORD, 'utf8');
    for (const file of filesUnder(dataDir)) expect(fs.readFileSync(file).includes(needle), file).toBe(false);

    const vault = await PassphraseVault.open({
      dataDir,
      passphrase: fs.readFileSync(passphraseFile, 'utf8'),
      create: false,
    });
    const db = openStationDatabase(dataDir);
    try {
      expect(await loadGroupPassword(db, vault, 'grade5')).toBe(PASSWORD);
    } finally {
      db.close();
    }
  });

  it('refuses an empty password and an id that is not a slug', async () => {
    await expect(dispatch(station, 'secrets.setGroupPassword', { id: 'grade5', password: '' })).rejects.toMatchObject({
      code: 'usage/invalid-argument',
    });
    await expect(dispatch(station, 'secrets.setGroupPassword', { id: '../x', password: 'p' })).rejects.toMatchObject({
      code: 'usage/invalid-argument',
    });
  });
});
