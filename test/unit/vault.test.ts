import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import {
  DEFAULT_SCRYPT,
  MIN_SCRYPT,
  PassphraseVault,
  SafeStorageVault,
  VAULT_FILE,
  resolvePassphrase,
  type SafeStorageLike,
} from '../../src/identity/vault.ts';
import { ensurePrivateDir, openStationDatabase } from '../../src/store/db.ts';
import { insertIdentity } from '../../src/store/identities.ts';

const PASS = 'correct horse battery staple';
let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-vault-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A vault with the weakest allowed scrypt parameters, so tests stay fast. */
function openVault(passphrase = PASS, dataDir = dir): Promise<PassphraseVault> {
  return PassphraseVault.open({ dataDir, passphrase, createWith: MIN_SCRYPT });
}

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return err instanceof KitError ? err.code : `not a KitError: ${String(err)}`;
  }
  return 'did not throw';
}

/** Byte strings only the private key holds (d, p, q, dq and a late PEM line): never in a data-folder file. */
function privateNeedles(k: crypto.KeyObject): Buffer[] {
  const jwk = k.export({ format: 'jwk' });
  const parts = [jwk.d, jwk.p, jwk.q, jwk.dq].map((v) => Buffer.from(v ?? '', 'base64url').subarray(0, 32));
  const der = k.export({ type: 'pkcs8', format: 'der' });
  for (const part of parts) {
    expect(part.length).toBe(32);
    expect(der.includes(part)).toBe(true);
  }
  const pemLines = k.export({ type: 'pkcs8', format: 'pem' }).toString().trim().split('\n');
  return [...parts, Buffer.from(pemLines[pemLines.length - 3] ?? 'missing line')];
}

function allFiles(root: string): string[] {
  return fs
    .readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

describe('PassphraseVault', () => {
  it('seals and opens, in the same process and after reopening with the same passphrase', async () => {
    const vault = await openVault();
    expect(vault.kind).toBe('passphrase');
    const secret = crypto.randomBytes(1200);
    const sealed = await vault.seal(secret, 'identity/a');
    expect(sealed.subarray(0, 4)).toEqual(Buffer.from([0x4b, 0x53, 0x56, 0x01]));
    expect(sealed.length).toBe(4 + 12 + 16 + secret.length);
    expect(await vault.open(sealed, 'identity/a')).toEqual(secret);
    const again = await openVault();
    expect(await again.open(sealed, 'identity/a')).toEqual(secret);
    expect(await again.open(await again.seal(Buffer.alloc(0), 'empty'), 'empty')).toEqual(Buffer.alloc(0));
  });

  it('uses a fresh IV for every blob', async () => {
    const vault = await openVault();
    const a = await vault.seal(Buffer.from('same'), 'l');
    const b = await vault.seal(Buffer.from('same'), 'l');
    expect(a.subarray(4, 16).equals(b.subarray(4, 16))).toBe(false);
  });

  it('detects a wrong passphrase through the check blob', async () => {
    await openVault();
    expect(await codeOf(openVault('not the passphrase'))).toBe('vault/wrong-passphrase');
  });

  it('reports every changed byte, and a blob opened under another label, as vault/corrupt', async () => {
    const vault = await openVault();
    const sealed = await vault.seal(Buffer.from('private key bytes'), 'identity/a');
    for (const offset of [3, 5, 20, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[offset] = (bad[offset] ?? 0) ^ 0x01;
      expect(await codeOf(vault.open(bad, 'identity/a')), `byte ${offset}`).toBe('vault/corrupt');
    }
    expect(await codeOf(vault.open(sealed.subarray(0, 20), 'identity/a'))).toBe('vault/corrupt');
    expect(await codeOf(vault.open(sealed, 'identity/b'))).toBe('vault/corrupt');
  });

  it('writes vault.json with mode 0600, the default scrypt parameters and no secret', async () => {
    const dataDir = path.join(dir, 'data');
    ensurePrivateDir(dataDir);
    await PassphraseVault.open({ dataDir, passphrase: PASS });
    const file = path.join(dataDir, VAULT_FILE);
    expect(fs.statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const meta = JSON.parse(fs.readFileSync(file, 'utf8')) as { kdf: Record<string, unknown>; cipher: string };
    expect(meta.kdf).toMatchObject({ name: 'scrypt', N: DEFAULT_SCRYPT.N, r: 8, p: 1, keyLength: 32 });
    expect(Buffer.from(meta.kdf.salt as string, 'base64')).toHaveLength(32);
    expect(meta.cipher).toBe('aes-256-gcm');
    expect(fs.readFileSync(file, 'utf8')).not.toContain(PASS);
  });

  it('refuses a vault.json that is damaged or weakened', async () => {
    await openVault();
    const file = path.join(dir, VAULT_FILE);
    const meta = JSON.parse(fs.readFileSync(file, 'utf8')) as { kdf: { N: number } };
    fs.writeFileSync(file, JSON.stringify({ ...meta, kdf: { ...meta.kdf, N: 1024 } }));
    expect(await codeOf(openVault())).toBe('vault/corrupt');
    fs.writeFileSync(file, '{"format": "kitting-station-vault"');
    expect(await codeOf(openVault())).toBe('vault/corrupt');
  });

  it('refuses an empty passphrase, and a short one for a new vault', async () => {
    expect(await codeOf(openVault(''))).toBe('vault/passphrase-required');
    expect(await codeOf(openVault('short'))).toBe('usage/invalid-argument');
    expect(fs.existsSync(path.join(dir, VAULT_FILE))).toBe(false);
  });

  it('refuses to create a vault when asked to open an existing one only', async () => {
    expect(await codeOf(PassphraseVault.open({ dataDir: dir, passphrase: PASS, create: false }))).toBe('vault/corrupt');
  });

  it('gives two processes creating the vault at once the same vault', async () => {
    const [a, b] = await Promise.all([openVault(), openVault()]);
    const sealed = await a.seal(Buffer.from('shared'), 'x');
    expect((await b.open(sealed, 'x')).toString()).toBe('shared');
    expect(fs.readdirSync(dir)).toEqual([VAULT_FILE]);
  });

  it('never writes the plaintext key or the passphrase to any file under the data folder', async () => {
    const dataDir = path.join(dir, 'station');
    const db = openStationDatabase(dataDir);
    const vault = await openVault(PASS, dataDir);
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
    insertIdentity(db, {
      id: 'org-test',
      org: 'Org',
      fingerprint: 'f'.repeat(64),
      notBefore: '2025-01-01T00:00:00.000Z',
      notAfter: '2035-01-01T00:00:00.000Z',
      certificate: Buffer.from([0x30, 0x00]),
      encryptedKey: await vault.seal(pkcs8, 'identity/org-test'),
      createdAt: '2025-01-01T00:00:00.000Z',
    });
    db.close();
    const needles = [...privateNeedles(privateKey), Buffer.from(PASS)];
    const files = allFiles(dataDir);
    expect(files.map((f) => path.basename(f))).toEqual(expect.arrayContaining(['station.db', VAULT_FILE]));
    for (const file of files) {
      const bytes = fs.readFileSync(file);
      for (const needle of needles) expect(bytes.includes(needle), `${file}`).toBe(false);
    }
  });
});

describe('resolvePassphrase', () => {
  it('reads the file (one trailing newline removed) before KITTING_PASSPHRASE', () => {
    const file = path.join(dir, 'pass');
    fs.writeFileSync(file, 'パスフレーズ with spaces \r\n');
    expect(resolvePassphrase(file, { KITTING_PASSPHRASE: 'from env' })).toBe('パスフレーズ with spaces ');
    expect(resolvePassphrase(undefined, { KITTING_PASSPHRASE: 'from env' })).toBe('from env');
  });

  it('says what is missing', async () => {
    expect(await codeOf(() => resolvePassphrase(undefined, {}))).toBe('vault/passphrase-required');
    const empty = path.join(dir, 'empty');
    fs.writeFileSync(empty, '\n');
    expect(await codeOf(() => resolvePassphrase(empty, {}))).toBe('vault/passphrase-required');
    expect(await codeOf(() => resolvePassphrase(path.join(dir, 'nope'), {}))).toBe('io/read-failed');
    expect(new KitError('vault/passphrase-required', 'x').exitCode).toBe(2);
  });
});

describe('SafeStorageVault', () => {
  /** A stand-in for Electron's safeStorage: AES-GCM under a key only it knows. */
  function fakeSafeStorage(): SafeStorageLike {
    const key = crypto.randomBytes(32);
    return {
      isEncryptionAvailable: () => true,
      encryptString(text) {
        const iv = crypto.randomBytes(12);
        const c = crypto.createCipheriv('aes-256-gcm', key, iv);
        const body = Buffer.concat([c.update(text, 'utf8'), c.final()]);
        return Buffer.concat([iv, c.getAuthTag(), body]);
      },
      decryptString(buf) {
        const d = crypto.createDecipheriv('aes-256-gcm', key, buf.subarray(0, 12));
        d.setAuthTag(buf.subarray(12, 28));
        return Buffer.concat([d.update(buf.subarray(28)), d.final()]).toString('utf8');
      },
    };
  }

  it('seals through the OS keychain and binds the label', async () => {
    const vault = new SafeStorageVault(fakeSafeStorage());
    expect(vault.kind).toBe('os-keychain');
    const sealed = await vault.seal(Buffer.from('key'), 'identity/a');
    expect((await vault.open(sealed, 'identity/a')).toString()).toBe('key');
    expect(await codeOf(vault.open(sealed, 'identity/b'))).toBe('vault/corrupt');
    const bad = Buffer.from(sealed);
    bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 1;
    expect(await codeOf(vault.open(bad, 'identity/a'))).toBe('vault/corrupt');
  });

  it('refuses a blob sealed by the other kind of vault', async () => {
    const keychain = new SafeStorageVault(fakeSafeStorage());
    const passphrase = await openVault();
    const fromKeychain = await keychain.seal(Buffer.from('k'), 'l');
    expect(await codeOf(passphrase.open(fromKeychain, 'l'))).toBe('vault/corrupt');
    expect(await codeOf(keychain.open(await passphrase.seal(Buffer.from('k'), 'l'), 'l'))).toBe('vault/corrupt');
  });

  it('is unavailable without OS encryption', async () => {
    const storage = { ...fakeSafeStorage(), isEncryptionAvailable: () => false };
    expect(await codeOf(() => new SafeStorageVault(storage))).toBe('vault/passphrase-required');
  });
});
