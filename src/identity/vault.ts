/**
 * The vault: how private keys (and later other secrets, like the MDM token) are encrypted at rest.
 *
 * {@link Vault} is the interface every consumer uses. Two implementations:
 * - {@link PassphraseVault} for the CLI and headless mode: scrypt + AES-256-GCM, with a vault
 *   metadata file `<dataDir>/vault.json` (mode 0600) holding the scrypt salt and parameters and a
 *   check blob, so a wrong passphrase is told apart from a damaged secret.
 * - {@link SafeStorageVault} for the Electron app: the OS keychain through Electron's `safeStorage`
 *   (injected as {@link SafeStorageLike}, since `src/` never imports electron).
 *
 * Sealed blob format (version byte 1, passphrase vault):
 *
 * | offset | bytes | content |
 * |---|---|---|
 * | 0 | 3 | magic `KSV` |
 * | 3 | 1 | format: `0x01` passphrase AES-256-GCM, `0x02` OS keychain |
 * | 4 | 12 | random IV (a new one per blob) |
 * | 16 | 16 | GCM tag |
 * | 32 | n | ciphertext |
 *
 * The AAD is the 4 header bytes, `kitting-station-vault\0`, then the UTF-8 label: a blob opened
 * under another label (for example the key of identity A presented as identity B's) fails to
 * authenticate, as does any changed byte → `vault/corrupt`.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { KitError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { createPrivateFileExclusive, readSecretFile } from './files.ts';

/**
 * Encrypts secrets at rest. Implementations keep their key material for their own lifetime only.
 *
 * Errors: `vault/corrupt` when a blob is damaged, was sealed by another vault, or is opened under
 * another label.
 */
export interface Vault {
  /** `passphrase` or `os-keychain`: shown in diagnostics, never secret. */
  readonly kind: string;
  /** Encrypts `plaintext`, binding it to `label` (e.g. `identity/<id>`). */
  seal(plaintext: Buffer, label: string): Promise<Buffer>;
  /** Decrypts a blob from {@link Vault.seal} with the same label. The caller should `fill(0)` the result when done. */
  open(sealed: Buffer, label: string): Promise<Buffer>;
}

/** The vault metadata file inside the data folder. */
export const VAULT_FILE = 'vault.json';

const MAGIC = Buffer.from('KSV', 'ascii');
const FORMAT_PASSPHRASE = 0x01;
const FORMAT_KEYCHAIN = 0x02;
const HEADER_LEN = 4;
const IV_LEN = 12;
const TAG_LEN = 16;
const AAD_PREFIX = Buffer.from('kitting-station-vault\0', 'utf8');
const CHECK_LABEL = 'vault/check';
const CHECK_PLAINTEXT = Buffer.from('kitting-station vault check v1', 'utf8');

/** scrypt cost parameters (RFC 7914). */
export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

/**
 * Defaults for a new vault: N = 2^17, r = 8, p = 1 (128 MiB, about half a second; OWASP's
 * recommendation for scrypt). The key is derived once per process, not per secret.
 */
export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 17, r: 8, p: 1 };
/** The weakest parameters a vault file may carry (tests create vaults with these to stay fast). */
export const MIN_SCRYPT: ScryptParams = { N: 2 ** 14, r: 8, p: 1 };
const MAX_N = 2 ** 20;
/** Shortest passphrase accepted when a vault is created. */
export const MIN_PASSPHRASE_LENGTH = 8;

const b64 = z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/);
const VaultFileSchema = z.object({
  format: z.literal('kitting-station-vault'),
  version: z.literal(1),
  kind: z.literal('passphrase'),
  kdf: z.object({
    name: z.literal('scrypt'),
    N: z.number().int().min(MIN_SCRYPT.N).max(MAX_N),
    r: z.number().int().min(MIN_SCRYPT.r).max(32),
    p: z.number().int().min(MIN_SCRYPT.p).max(16),
    salt: b64,
    keyLength: z.literal(32),
  }),
  cipher: z.literal('aes-256-gcm'),
  check: b64,
  createdAt: z.string(),
});
type VaultFile = z.infer<typeof VaultFileSchema>;

const log = createLogger('identity/vault');

function header(format: number): Buffer {
  return Buffer.concat([MAGIC, Buffer.of(format)]);
}

function aad(head: Buffer, label: string): Buffer {
  return Buffer.concat([head, AAD_PREFIX, Buffer.from(label, 'utf8')]);
}

function corrupt(label: string, why: string, cause?: unknown): KitError {
  return new KitError('vault/corrupt', `sealed secret ${label}: ${why}`, {
    ...(cause === undefined ? {} : { cause }),
    details: { label },
  });
}

function sealWithKey(key: Buffer, plaintext: Buffer, label: string): Buffer {
  const head = header(FORMAT_PASSPHRASE);
  const iv = crypto.randomBytes(IV_LEN);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_LEN });
  cipher.setAAD(aad(head, label));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([head, iv, cipher.getAuthTag(), body]);
}

/** Opens a passphrase blob; returns undefined when the tag does not verify (wrong key, label or bytes). */
function openWithKey(key: Buffer, sealed: Buffer, label: string): Buffer | undefined {
  checkHeader(sealed, FORMAT_PASSPHRASE, label, HEADER_LEN + IV_LEN + TAG_LEN);
  const head = sealed.subarray(0, HEADER_LEN);
  const iv = sealed.subarray(HEADER_LEN, HEADER_LEN + IV_LEN);
  const tag = sealed.subarray(HEADER_LEN + IV_LEN, HEADER_LEN + IV_LEN + TAG_LEN);
  const decipher = crypto.createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_LEN });
  decipher.setAAD(aad(head, label));
  decipher.setAuthTag(tag);
  const out = decipher.update(sealed.subarray(HEADER_LEN + IV_LEN + TAG_LEN));
  try {
    return Buffer.concat([out, decipher.final()]);
  } catch {
    out.fill(0);
    return undefined;
  }
}

function checkHeader(sealed: Buffer, format: number, label: string, minLength: number): void {
  if (sealed.length < minLength || !sealed.subarray(0, 3).equals(MAGIC)) {
    throw corrupt(label, 'not a vault blob');
  }
  const found = sealed[3];
  if (found !== format) {
    const kinds: Record<number, string> = { [FORMAT_PASSPHRASE]: 'passphrase', [FORMAT_KEYCHAIN]: 'os-keychain' };
    throw corrupt(label, `sealed by the ${kinds[found ?? -1] ?? `unknown (${String(found)})`} vault, not this one`);
  }
}

function deriveKey(passphrase: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const maxmem = 128 * params.N * params.r * params.p + 32 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    crypto.scrypt(passphrase.normalize('NFC'), salt, 32, { ...params, maxmem }, (err, key) => {
      if (err !== null) reject(new KitError('bug', `scrypt failed: ${err.message}`, { cause: err }));
      else resolve(key);
    });
  });
}

/** Options of {@link PassphraseVault.open}. */
export interface PassphraseVaultOptions {
  /** The station's data folder (holds `vault.json`). */
  readonly dataDir: string;
  /** The passphrase (from {@link resolvePassphrase}). */
  readonly passphrase: string;
  /** scrypt parameters for a vault created now (default {@link DEFAULT_SCRYPT}); an existing vault keeps its own. */
  readonly createWith?: ScryptParams;
  /** false: refuse to create a vault (`vault/corrupt` when `vault.json` is missing). Default true. */
  readonly create?: boolean;
}

/**
 * The passphrase vault (CLI and headless mode): one AES-256 key derived with scrypt from the
 * passphrase and the vault's random salt; every blob gets its own random IV.
 *
 * Lifecycle: {@link PassphraseVault.open} reads `<dataDir>/vault.json` (creating it, mode 0600, on
 * first use) and verifies the passphrase against its check blob; the derived key lives as long as
 * the object. Errors: `vault/passphrase-required` (empty), `vault/wrong-passphrase`, `vault/corrupt`
 * (unreadable `vault.json`, damaged blob), `usage/invalid-argument` (passphrase too short for a
 * new vault), `io/write-failed`.
 */
export class PassphraseVault implements Vault {
  readonly kind = 'passphrase';
  readonly #key: Buffer;

  private constructor(key: Buffer) {
    this.#key = key;
  }

  /** Whether `dataDir` already has a vault. */
  static exists(dataDir: string): boolean {
    return fs.existsSync(path.join(dataDir, VAULT_FILE));
  }

  /** Opens the data folder's vault, creating it on first use. See the class comment for errors. */
  static async open(options: PassphraseVaultOptions): Promise<PassphraseVault> {
    const passphrase = options.passphrase.normalize('NFC');
    if (passphrase.length === 0) throw new KitError('vault/passphrase-required', 'the vault passphrase is empty');
    const file = path.join(options.dataDir, VAULT_FILE);
    if (!fs.existsSync(file)) {
      if (options.create === false) throw new KitError('vault/corrupt', `${file} is missing`, { details: { file } });
      const created = await PassphraseVault.#create(file, passphrase, options.createWith ?? DEFAULT_SCRYPT);
      if (created !== undefined) return created;
      // Another process created the vault at the same moment: use theirs.
    }
    const meta = readVaultFile(file);
    const key = await deriveKey(passphrase, Buffer.from(meta.kdf.salt, 'base64'), meta.kdf);
    const check = openWithKey(key, Buffer.from(meta.check, 'base64'), CHECK_LABEL);
    if (check === undefined || !check.equals(CHECK_PLAINTEXT)) {
      key.fill(0);
      throw new KitError('vault/wrong-passphrase', `the passphrase does not open ${file}`, { details: { file } });
    }
    return new PassphraseVault(key);
  }

  static async #create(file: string, passphrase: string, params: ScryptParams): Promise<PassphraseVault | undefined> {
    if (passphrase.length < MIN_PASSPHRASE_LENGTH) {
      throw new KitError(
        'usage/invalid-argument',
        `a new vault needs a passphrase of at least ${MIN_PASSPHRASE_LENGTH} characters`,
      );
    }
    if (params.N < MIN_SCRYPT.N || params.r < MIN_SCRYPT.r || params.p < MIN_SCRYPT.p || params.N > MAX_N) {
      throw new KitError('bug', `scrypt parameters below the floor: N=${params.N} r=${params.r} p=${params.p}`);
    }
    const salt = crypto.randomBytes(32);
    const key = await deriveKey(passphrase, salt, params);
    const meta: VaultFile = {
      format: 'kitting-station-vault',
      version: 1,
      kind: 'passphrase',
      kdf: { name: 'scrypt', N: params.N, r: params.r, p: params.p, salt: salt.toString('base64'), keyLength: 32 },
      cipher: 'aes-256-gcm',
      check: sealWithKey(key, CHECK_PLAINTEXT, CHECK_LABEL).toString('base64'),
      createdAt: new Date().toISOString(),
    };
    if (!createPrivateFileExclusive(file, `${JSON.stringify(meta, null, 2)}\n`)) {
      key.fill(0);
      return undefined;
    }
    log.info('vault created', { file, N: params.N, r: params.r, p: params.p });
    return new PassphraseVault(key);
  }

  seal(plaintext: Buffer, label: string): Promise<Buffer> {
    return Promise.resolve(sealWithKey(this.#key, plaintext, label));
  }

  open(sealed: Buffer, label: string): Promise<Buffer> {
    try {
      const out = openWithKey(this.#key, sealed, label);
      if (out === undefined) return Promise.reject(corrupt(label, 'does not authenticate (damaged, or another label)'));
      return Promise.resolve(out);
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

function readVaultFile(file: string): VaultFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new KitError('vault/corrupt', `${file} is not readable JSON`, { cause: err, details: { file } });
  }
  const result = VaultFileSchema.safeParse(parsed);
  if (!result.success) {
    const where = result.error.issues.map((i) => i.path.join('.') || '(root)').join(', ');
    throw new KitError('vault/corrupt', `${file} is not a valid vault file (${where})`, { details: { file } });
  }
  return result.data;
}

/**
 * The passphrase for the vault: the `--passphrase-file` file (one trailing newline removed), else
 * `KITTING_PASSPHRASE`. Throws `vault/passphrase-required` when neither gives a non-empty value,
 * `io/read-failed` when the file cannot be read.
 */
export function resolvePassphrase(passphraseFile: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const value =
    passphraseFile !== undefined ? readSecretFile(passphraseFile) : (env.KITTING_PASSPHRASE ?? '').normalize('NFC');
  if (value.length === 0) {
    throw new KitError(
      'vault/passphrase-required',
      passphraseFile !== undefined
        ? `the passphrase file ${passphraseFile} is empty`
        : 'no vault passphrase: give --passphrase-file or set KITTING_PASSPHRASE',
    );
  }
  return value;
}

/** What {@link SafeStorageVault} needs from Electron's `safeStorage` (main process). */
export interface SafeStorageLike {
  isEncryptionAvailable(): boolean;
  encryptString(plainText: string): Buffer;
  decryptString(encrypted: Buffer): string;
}

/**
 * The OS-keychain vault for the Electron app: Electron's `safeStorage` (Keychain on macOS, DPAPI on
 * Windows, libsecret/kwallet on Linux) encrypts; the label is bound inside the encrypted text and
 * checked on open. Errors: `vault/corrupt` (damaged blob, other label, other vault), `vault/passphrase-required`
 * when the OS offers no encryption (the app then falls back to a passphrase).
 */
export class SafeStorageVault implements Vault {
  readonly kind = 'os-keychain';
  readonly #storage: SafeStorageLike;

  constructor(storage: SafeStorageLike) {
    if (!storage.isEncryptionAvailable()) {
      throw new KitError('vault/passphrase-required', 'the OS keychain is not available: use a vault passphrase');
    }
    this.#storage = storage;
  }

  seal(plaintext: Buffer, label: string): Promise<Buffer> {
    const inner = JSON.stringify({ label, data: plaintext.toString('base64') });
    return Promise.resolve(Buffer.concat([header(FORMAT_KEYCHAIN), this.#storage.encryptString(inner)]));
  }

  open(sealed: Buffer, label: string): Promise<Buffer> {
    try {
      checkHeader(sealed, FORMAT_KEYCHAIN, label, HEADER_LEN + 1);
      let inner: unknown;
      try {
        inner = JSON.parse(this.#storage.decryptString(sealed.subarray(HEADER_LEN)));
      } catch (err) {
        throw corrupt(label, 'the OS keychain cannot decrypt it', err);
      }
      const parsed = z.object({ label: z.string(), data: b64 }).safeParse(inner);
      if (!parsed.success || parsed.data.label !== label) throw corrupt(label, 'sealed under another label');
      return Promise.resolve(Buffer.from(parsed.data.data, 'base64'));
    } catch (err) {
      return Promise.reject(err);
    }
  }
}
