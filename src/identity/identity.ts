/**
 * Organization (supervision) identities: the RSA key and self-signed certificate that supervise a
 * school's iPads (domain.md, "Organization identities"). Changing it means erasing every device,
 * so the service treats it as precious: validated fully before anything is stored, stored in one
 * transaction, the private key only ever at rest as vault ciphertext, and handed out decrypted
 * only through an explicit {@link IdentityService.unlock}.
 *
 * Lifecycle: one {@link IdentityService} per open database. The vault is asked for lazily, so
 * listing, reading and deleting identities need no passphrase; creating, importing, exporting,
 * unlocking and signing do.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { KitError, hasCode } from '../errors.ts';
import { createLogger } from '../log.ts';
import { appendAudit } from '../store/audit.ts';
import { transaction, type Db } from '../store/db.ts';
import {
  countBlueprintsUsingIdentity,
  deleteIdentity,
  getIdentity,
  getIdentityByFingerprint,
  insertIdentity,
  listIdentities,
  type IdentityRow,
} from '../store/identities.ts';
import { createSupervisionCertificate, displayFingerprint, inspectCertificate, organizationOf } from './certificate.ts';
import { signCms, type CmsSigner } from './cms.ts';
import { writePrivateFile } from './files.ts';
import { MIN_RSA_BITS, readIdentityFiles, validateMaterial, type IdentityMaterial } from './material.ts';
import { buildPkcs12, type Pkcs12Algorithm } from './pkcs12.ts';
import type { Vault } from './vault.ts';

const generateKeyPair = promisify(crypto.generateKeyPair);
const log = createLogger('identity');

/** Identity ids: lowercase letters, digits and hyphens, 1–64 characters. */
export const IDENTITY_ID = /^[a-z0-9-]{1,64}$/;

/** Export formats. */
export type ExportFormat = 'p12' | 'pem' | 'der';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['p12', 'pem', 'der'];

/** What lists show: no key material. Times are ISO-8601 UTC. */
export interface IdentitySummary {
  readonly id: string;
  readonly org: string;
  /** SHA-256 of the DER certificate, lowercase hex. */
  readonly fingerprint: string;
  readonly notBefore: string;
  readonly notAfter: string;
}

/** One identity with its certificate (still no private key). */
export interface IdentityDetails extends IdentitySummary {
  /** `AB:CD:…`, for people comparing two stations. */
  readonly fingerprintDisplay: string;
  readonly certificateDer: Buffer;
  readonly subject: Readonly<Record<string, string>>;
  readonly createdAt: string;
}

/** An identity with its decrypted private key: from {@link IdentityService.unlock} only. */
export interface UnlockedIdentity extends IdentityDetails {
  readonly privateKey: crypto.KeyObject;
  /** CMS SignedData (content attached, certificate embedded, SHA-256) with this identity. */
  readonly sign: CmsSigner;
}

/** Input of {@link IdentityService.create}. */
export interface CreateIdentityInput {
  /** Organization name (any script: `テスト学園`). */
  readonly org: string;
  /** Defaults to a slug of the org plus a short random suffix ({@link makeIdentityId}). */
  readonly id?: string;
  /** ISO 3166 two-letter code for the certificate's `C`. */
  readonly country?: string;
  /** RSA modulus length, at least 2048 (default 2048, as Apple Configurator). */
  readonly keyBits?: number;
}

/** Input of {@link IdentityService.importFile}. */
export interface ImportIdentityInput {
  readonly password?: string;
  readonly keyFile?: string;
  readonly id?: string;
  /** Overrides the organization read from the certificate. */
  readonly org?: string;
}

/** Input of {@link IdentityService.export}. */
export interface ExportIdentityInput {
  readonly out: string;
  readonly format?: ExportFormat;
  /** Required for p12; optional for pem (encrypts the key as PKCS#8 AES-256-CBC); refused for der. */
  readonly password?: string;
  /** p12 encryption profile (default `3des`, see `pkcs12.ts`). */
  readonly p12Algorithm?: Pkcs12Algorithm;
}

/** Options of {@link IdentityService}. */
export interface IdentityServiceOptions {
  readonly db: Db;
  /** The vault, or a function opening it on first need (so read-only commands need no passphrase). */
  readonly vault: Vault | (() => Promise<Vault>);
  /**
   * Whether something (a blueprint) still uses the identity. Blueprints live in a later migration;
   * until then, and in addition, the service checks a `blueprints.identity_id` column when that
   * table exists, and a foreign key refusing the delete also counts as "in use".
   */
  readonly isInUse?: (id: string) => boolean;
  /** The clock (tests). */
  readonly now?: () => Date;
  /** Recorded in the audit log: `cli`, `app`, `server`. */
  readonly actor?: string;
}

/**
 * A short id from an organization name: ASCII letters and digits of the name (lowercased, accents
 * dropped), hyphenated, at most 40 characters, `identity` when nothing is left (Japanese names),
 * plus `-` and 6 random hex digits.
 */
export function makeIdentityId(org: string): string {
  const slug = org
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/g, '');
  return `${slug === '' ? 'identity' : slug}-${crypto.randomBytes(3).toString('hex')}`;
}

function checkId(id: string): string {
  if (!IDENTITY_ID.test(id)) {
    throw new KitError(
      'usage/invalid-argument',
      `identity ids are 1–64 characters of a-z, 0-9 and -: ${JSON.stringify(id)}`,
    );
  }
  return id;
}

function checkOrg(org: string): string {
  const trimmed = org.trim();
  if (trimmed.length === 0 || trimmed.length > 200) {
    throw new KitError('usage/invalid-argument', 'the organization name must be 1–200 characters');
  }
  return trimmed;
}

function keyLabel(id: string, fingerprint: string): string {
  return `identity/${id}/${fingerprint}`;
}

function summaryOf(row: Pick<IdentityRow, 'id' | 'org' | 'fingerprint' | 'notBefore' | 'notAfter'>): IdentitySummary {
  return { id: row.id, org: row.org, fingerprint: row.fingerprint, notBefore: row.notBefore, notAfter: row.notAfter };
}

/**
 * Makes a new identity without storing it: an RSA key (node:crypto, off the event loop) and an
 * Apple Configurator-shaped certificate (see `certificate.ts`), valid 10 years from `now`.
 * Throws `usage/invalid-argument` (bad org or country) and `identity/weak-key` (keyBits outside 2048–8192).
 */
export async function createIdentityMaterial(input: {
  org: string;
  country?: string;
  keyBits?: number;
  now?: Date;
}): Promise<IdentityMaterial> {
  const org = checkOrg(input.org);
  const keyBits = input.keyBits ?? 2048;
  if (!Number.isInteger(keyBits) || keyBits < MIN_RSA_BITS || keyBits > 8192) {
    throw new KitError('identity/weak-key', `RSA keys of ${MIN_RSA_BITS}–8192 bits only, not ${keyBits}`);
  }
  const now = input.now ?? new Date();
  const { publicKey, privateKey } = await generateKeyPair('rsa', { modulusLength: keyBits });
  const certificateDer = createSupervisionCertificate({
    org,
    publicKey,
    privateKey,
    now,
    ...(input.country === undefined ? {} : { country: input.country }),
  });
  return validateMaterial([certificateDer], [privateKey], 'new identity', now);
}

/**
 * Create, import, export, list, unlock, sign with and delete supervision identities. See the file
 * comment for the lifecycle; each method lists its error codes.
 */
export class IdentityService {
  readonly #db: Db;
  readonly #vaultSource: Vault | (() => Promise<Vault>);
  #vault: Promise<Vault> | undefined;
  readonly #isInUse: (id: string) => boolean;
  readonly #now: () => Date;
  readonly #actor: string;

  constructor(options: IdentityServiceOptions) {
    this.#db = options.db;
    this.#vaultSource = options.vault;
    this.#isInUse = options.isInUse ?? (() => false);
    this.#now = options.now ?? (() => new Date());
    this.#actor = options.actor ?? 'station';
  }

  #getVault(): Promise<Vault> {
    if (this.#vault === undefined) {
      const source = this.#vaultSource;
      this.#vault = typeof source === 'function' ? source() : Promise.resolve(source);
      this.#vault.catch(() => {
        this.#vault = undefined;
      });
    }
    return this.#vault;
  }

  /**
   * Creates a new identity: an RSA key (node:crypto) and an Apple Configurator-shaped certificate
   * (see `certificate.ts`), 10 years valid. Throws `usage/invalid-argument` (bad id, org or
   * country), `identity/weak-key` (keyBits < 2048), `identity/duplicate` (id taken), vault codes.
   */
  async create(input: CreateIdentityInput): Promise<IdentitySummary> {
    const org = checkOrg(input.org);
    const id = checkId(input.id ?? makeIdentityId(org));
    this.#refuseTakenId(id);
    const material = await createIdentityMaterial({ ...input, org, now: this.#now() });
    return this.#store(material, { id, org, action: 'identity/created', details: { keyBits: input.keyBits ?? 2048 } });
  }

  /**
   * Imports an identity file (see `material.ts` for the forms). Everything is validated first,
   * then the key is sealed and the row written in one transaction: a failure stores nothing.
   * Throws `io/read-failed`, `identity/corrupt-file`, `identity/wrong-password`,
   * `identity/missing-key`, `identity/missing-certificate`, `identity/key-mismatch`,
   * `identity/expired`, `identity/weak-key`, `identity/unsupported-key`, `identity/duplicate`
   * (same fingerprint or id already stored), `usage/invalid-argument`, vault codes.
   */
  async importFile(file: string, input: ImportIdentityInput = {}): Promise<IdentitySummary> {
    if (input.id !== undefined) checkId(input.id);
    const material = readIdentityFiles(file, {
      now: this.#now(),
      ...(input.password === undefined ? {} : { password: input.password }),
      ...(input.keyFile === undefined ? {} : { keyFile: input.keyFile }),
    });
    return this.importMaterial(material, { ...input, source: path.basename(file) });
  }

  /** Stores already-read material (for callers that hold the bytes, e.g. the app's drag and drop). Same errors as {@link importFile}. */
  async importMaterial(
    material: IdentityMaterial,
    input: { id?: string; org?: string; source?: string } = {},
  ): Promise<IdentitySummary> {
    const org = checkOrg(input.org ?? organizationOf(material.info));
    const id = checkId(input.id ?? makeIdentityId(org));
    this.#refuseDuplicate(material.info.fingerprint);
    this.#refuseTakenId(id);
    return this.#store(material, {
      id,
      org,
      action: 'identity/imported',
      details: { source: input.source ?? null },
    });
  }

  #refuseDuplicate(fingerprint: string): void {
    const existing = getIdentityByFingerprint(this.#db, fingerprint);
    if (existing !== undefined) {
      throw new KitError('identity/duplicate', `this certificate is already stored as identity ${existing.id}`, {
        details: { id: existing.id, fingerprint },
      });
    }
  }

  #refuseTakenId(id: string): void {
    if (getIdentity(this.#db, id) !== undefined) {
      throw new KitError('identity/duplicate', `an identity with id ${id} already exists`, { details: { id } });
    }
  }

  async #store(
    material: IdentityMaterial,
    meta: { id: string; org: string; action: string; details: Record<string, unknown> },
  ): Promise<IdentitySummary> {
    const { info } = material;
    const vault = await this.#getVault();
    const keyDer = material.privateKey.export({ type: 'pkcs8', format: 'der' });
    let encryptedKey: Buffer;
    try {
      encryptedKey = await vault.seal(keyDer, keyLabel(meta.id, info.fingerprint));
    } finally {
      keyDer.fill(0);
    }
    const now = this.#now().toISOString();
    const row: IdentityRow = {
      id: meta.id,
      org: meta.org,
      fingerprint: info.fingerprint,
      notBefore: info.notBefore.toISOString(),
      notAfter: info.notAfter.toISOString(),
      certificate: material.certificateDer,
      encryptedKey,
      createdAt: now,
    };
    try {
      transaction(this.#db, 'storing an identity', () => {
        // Checked again inside the transaction: another process may have stored it meanwhile.
        this.#refuseDuplicate(info.fingerprint);
        this.#refuseTakenId(meta.id);
        insertIdentity(this.#db, row);
        appendAudit(this.#db, {
          at: now,
          actor: this.#actor,
          action: meta.action,
          subject: meta.id,
          details: { ...meta.details, fingerprint: info.fingerprint },
        });
      });
    } catch (err) {
      if (hasCode(err, 'store/constraint')) {
        throw new KitError('identity/duplicate', `identity ${meta.id} or its certificate is already stored`, {
          cause: err,
        });
      }
      throw err;
    }
    log.info(meta.action, { id: meta.id, fingerprint: info.fingerprint });
    return summaryOf(row);
  }

  /** Every identity, oldest first (no passphrase needed). */
  list(): IdentitySummary[] {
    return listIdentities(this.#db).map(summaryOf);
  }

  /** One identity without its key, or undefined. */
  find(id: string): IdentityDetails | undefined {
    const row = getIdentity(this.#db, id);
    if (row === undefined) return undefined;
    const info = inspectCertificate(row.certificate, id);
    return {
      ...summaryOf(row),
      fingerprintDisplay: displayFingerprint(row.fingerprint),
      certificateDer: row.certificate,
      subject: info.subject,
      createdAt: row.createdAt,
    };
  }

  /** One identity without its key. Throws `identity/not-found`. */
  get(id: string): IdentityDetails {
    const found = this.find(id);
    if (found === undefined) throw new KitError('identity/not-found', `no identity with id ${id}`, { details: { id } });
    return found;
  }

  /**
   * Decrypts the identity's private key. Keep the result only as long as it is needed.
   * Throws `identity/not-found`, vault codes (`vault/corrupt` when the stored key does not open
   * or does not match the certificate).
   */
  async unlock(id: string): Promise<UnlockedIdentity> {
    const details = this.get(id);
    const row = getIdentity(this.#db, id);
    if (row === undefined) throw new KitError('identity/not-found', `no identity with id ${id}`, { details: { id } });
    const vault = await this.#getVault();
    const keyDer = await vault.open(row.encryptedKey, keyLabel(id, row.fingerprint));
    let privateKey: crypto.KeyObject;
    try {
      privateKey = crypto.createPrivateKey({ key: keyDer, format: 'der', type: 'pkcs8' });
    } catch (err) {
      throw new KitError('vault/corrupt', `the stored key of identity ${id} is unreadable`, { cause: err });
    } finally {
      keyDer.fill(0);
    }
    if (!new crypto.X509Certificate(row.certificate).checkPrivateKey(privateKey)) {
      throw new KitError('vault/corrupt', `the stored key of identity ${id} does not match its certificate`);
    }
    const certificateDer = row.certificate;
    return { ...details, privateKey, sign: (content) => signCms(content, { certificateDer, privateKey }) };
  }

  /**
   * A CMS signer for the identity (supervised pairing `ChallengeResponse`, MCInstall `EscalateResponse`):
   * the returned function signs synchronously. Same errors as {@link unlock}.
   */
  async signer(id: string): Promise<CmsSigner> {
    return (await this.unlock(id)).sign;
  }

  /**
   * Writes the identity to files (mode 0600, atomically):
   * - `p12`: `out`, PKCS#12 with the password (required);
   * - `pem`: `out`, the certificate then the PKCS#8 key (`ENCRYPTED PRIVATE KEY`, AES-256-CBC, when a password is given);
   * - `der`: `out` = certificate DER, `out + '.key'` = PKCS#1 DER key (unencrypted; no password accepted).
   * Returns the files written. Throws `identity/not-found`, `usage/invalid-argument`, `io/write-failed`, vault codes.
   */
  async export(id: string, input: ExportIdentityInput): Promise<string[]> {
    const format = input.format ?? 'p12';
    if (format === 'p12' && (input.password === undefined || input.password.length === 0)) {
      throw new KitError('usage/invalid-argument', 'a .p12 export needs a password (--password-file)');
    }
    if (format === 'der' && input.password !== undefined) {
      throw new KitError('usage/invalid-argument', 'DER keys cannot carry a password: export as p12 (or pem) instead');
    }
    const identity = await this.unlock(id);
    const files: string[] = [];
    if (format === 'p12') {
      writePrivateFile(
        input.out,
        buildPkcs12({
          certificateDer: identity.certificateDer,
          privateKey: identity.privateKey,
          password: input.password ?? '',
          algorithm: input.p12Algorithm ?? '3des',
          friendlyName: identity.subject.CN ?? identity.org,
        }),
      );
      files.push(input.out);
    } else if (format === 'pem') {
      const certPem = new crypto.X509Certificate(identity.certificateDer).toString();
      const keyPem =
        input.password === undefined
          ? identity.privateKey.export({ type: 'pkcs8', format: 'pem' })
          : identity.privateKey.export({
              type: 'pkcs8',
              format: 'pem',
              cipher: 'aes-256-cbc',
              passphrase: input.password,
            });
      writePrivateFile(input.out, `${certPem.trimEnd()}\n${keyPem.toString().trimEnd()}\n`);
      files.push(input.out);
    } else {
      writePrivateFile(input.out, identity.certificateDer);
      const keyFile = `${input.out}.key`;
      const keyDer = identity.privateKey.export({ type: 'pkcs1', format: 'der' });
      try {
        writePrivateFile(keyFile, keyDer);
      } finally {
        keyDer.fill(0);
      }
      files.push(input.out, keyFile);
    }
    const at = this.#now().toISOString();
    transaction(this.#db, 'recording an export', () =>
      appendAudit(this.#db, {
        at,
        actor: this.#actor,
        action: 'identity/exported',
        subject: id,
        details: { format, files: files.map((f) => path.resolve(f)), encrypted: input.password !== undefined },
      }),
    );
    log.info('identity exported', { id, format });
    return files;
  }

  /**
   * Deletes an identity. Refused with `identity/in-use` while a blueprint uses it (see
   * {@link IdentityServiceOptions.isInUse}); `identity/not-found` when there is none.
   */
  delete(id: string): void {
    if (getIdentity(this.#db, id) === undefined) {
      throw new KitError('identity/not-found', `no identity with id ${id}`, { details: { id } });
    }
    const users = countBlueprintsUsingIdentity(this.#db, id);
    if (users > 0 || this.#isInUse(id)) {
      throw new KitError(
        'identity/in-use',
        `identity ${id} is used by ${users > 0 ? `${users} blueprint(s)` : 'a blueprint'}`,
        {
          details: { id, blueprints: users },
        },
      );
    }
    const at = this.#now().toISOString();
    try {
      transaction(this.#db, 'deleting an identity', () => {
        deleteIdentity(this.#db, id);
        appendAudit(this.#db, { at, actor: this.#actor, action: 'identity/deleted', subject: id });
      });
    } catch (err) {
      if (hasCode(err, 'store/constraint')) {
        throw new KitError('identity/in-use', `identity ${id} is still referenced`, { cause: err, details: { id } });
      }
      throw err;
    }
    log.info('identity deleted', { id });
  }
}
