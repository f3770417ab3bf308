/**
 * The blueprint store (domain.md "Blueprints"): blueprints kept in the station database by unique
 * name, imported from and exported to JSON files without secrets, and {@link resolveBlueprint} for
 * every `--blueprint NAME|FILE` option (a stored name first, else a file path).
 *
 * Storing a blueprint checks, in this order: the JSON (`blueprint/not-json`), every field
 * (`blueprint/invalid` as a {@link BlueprintIssuesError} listing each field's problem in ja/en),
 * the supervision identity (`identity/not-found` when the station has no identity with that id:
 * the `blueprints.identity_id` foreign key needs it, and a blueprint without its identity cannot
 * prepare anything), then the name (`blueprint/duplicate-name` unless `replace`). What is stored
 * is {@link exportBlueprint}'s text: defaults filled in, secrets left out.
 */
import fs from 'node:fs';
import { KitError, hasCode, toKitError } from '../errors.ts';
import type { Vault } from '../identity/vault.ts';
import type { MdmClient } from '../mdm/client.ts';
import { checkGroupCredentials, type CredentialsCheck } from './mdm-port.ts';
import type { Lang } from '../i18n/messages.ts';
import {
  deleteBlueprintByName,
  getBlueprintByName,
  insertBlueprint,
  listBlueprintRecords,
  upsertBlueprint,
} from '../store/blueprints.ts';
import { transaction, type Db } from '../store/db.ts';
import { getIdentity } from '../store/identities.ts';
import {
  exportBlueprint,
  parseBlueprint,
  parseBlueprintJson,
  validateBlueprint,
  type Blueprint,
  type BlueprintIssue,
} from './blueprint.ts';

/** `blueprint/invalid` with every field problem (the CLI prints them all, like `validate`). */
export class BlueprintIssuesError extends KitError {
  readonly issues: readonly BlueprintIssue[];

  constructor(source: string, issues: readonly BlueprintIssue[], lang: Lang) {
    const first = issues[0];
    super(
      'blueprint/invalid',
      `${source}: ${issues.length} invalid field(s)${first === undefined ? '' : `; ${first.path === '' ? '(document)' : first.path}: ${first.message[lang]}`}`,
      { details: { source, issueCount: issues.length, path: first?.path ?? null, code: first?.code ?? null } },
    );
    this.issues = issues;
  }
}

/** One stored blueprint as `blueprint list --json` shows it. */
export interface StoredBlueprintSummary {
  readonly name: string;
  /** The supervision identity's id. */
  readonly identity: string;
  readonly supervise: boolean;
  /** The enrollment method: `none`, `url` or `staged`. */
  readonly enrollment: Blueprint['enrollment']['method'];
  /** ISO-8601 UTC. */
  readonly updatedAt: string;
}

/** Options of {@link storeBlueprint}. */
export interface StoreBlueprintOptions {
  /** Replace a stored blueprint of the same name instead of refusing. */
  readonly replace?: boolean;
  /** Language of the thrown message (the issues carry both). */
  readonly lang?: Lang;
  /** Where the blueprint came from, for messages. */
  readonly source?: string;
  readonly now?: () => Date;
}

/** What {@link storeBlueprint} stored. */
export interface StoredBlueprint {
  readonly blueprint: Blueprint;
  /** True when a blueprint of the same name was replaced. */
  readonly replaced: boolean;
}

/**
 * Validates and stores a blueprint (already parsed from JSON). See the module comment for the
 * order of checks.
 * @throws {@link BlueprintIssuesError} (`blueprint/invalid`), KitError `identity/not-found`,
 *   `blueprint/duplicate-name`, `store/*`.
 */
export function storeBlueprint(db: Db, json: unknown, options: StoreBlueprintOptions = {}): StoredBlueprint {
  const lang = options.lang ?? 'en';
  const source = options.source ?? 'blueprint';
  const v = validateBlueprint(json);
  if (!v.ok) throw new BlueprintIssuesError(source, v.issues, lang);
  const bp = parseBlueprint(json, lang);
  const identityId = bp.organization.identityId;
  if (getIdentity(db, identityId) === undefined) {
    throw new KitError(
      'identity/not-found',
      `${source}: organization.identityId: no identity "${identityId}" in this station (see kitting identity list)`,
      { details: { id: identityId, path: 'organization.identityId' } },
    );
  }
  const at = (options.now ?? (() => new Date()))().toISOString();
  const row = { name: bp.name, json: exportBlueprint(bp), identityId };
  return transaction(db, 'storing a blueprint', () => {
    const existing = getBlueprintByName(db, bp.name);
    if (existing !== undefined && options.replace !== true) {
      throw new KitError(
        'blueprint/duplicate-name',
        `a blueprint named "${bp.name}" is already stored (give --replace to replace it)`,
        { details: { name: bp.name } },
      );
    }
    if (existing === undefined) insertBlueprint(db, row, at);
    else upsertBlueprint(db, row, at);
    return { blueprint: bp, replaced: existing !== undefined };
  });
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new KitError(
      code === 'ENOENT' ? 'io/not-found' : 'io/read-failed',
      `cannot read ${file}: ${(err as Error).message}`,
      { cause: err, details: { file } },
    );
  }
}

/**
 * A blueprint JSON file, parsed (not validated).
 * @throws KitError `io/not-found`, `io/read-failed`, `blueprint/not-json` (line, column).
 */
export function readBlueprintFile(file: string): unknown {
  return parseBlueprintJson(readText(file));
}

/**
 * Imports a blueprint JSON file into the store.
 * @throws KitError `io/not-found`, `io/read-failed`, `blueprint/not-json` (line, column), and the
 *   errors of {@link storeBlueprint}.
 */
export function importBlueprintFile(db: Db, file: string, options: StoreBlueprintOptions = {}): StoredBlueprint {
  const json = parseBlueprintJson(readText(file));
  return storeBlueprint(db, json, { ...options, source: options.source ?? file });
}

/** What the save-time credentials check needs: the configured MDM client and the vault, opened on need. */
export interface CredentialsCheckDeps {
  /** The configured client, or null when sync is not configured. Rejections count as "not checked". */
  readonly openClient: () => Promise<MdmClient | null>;
  readonly vault: () => Promise<Vault>;
}

/**
 * Checks the MDM group credentials of a blueprint about to be saved (the seed: wrong credentials
 * make it impossible to save). `none`: no group credentials (or the blueprint is invalid, which
 * {@link storeBlueprint} then reports); `ok`; `not-checked` with the reason when the MDM is offline,
 * unconfigured or cannot be opened (the blueprint is saved with a warning).
 * @throws KitError `mdm/wrong-credentials`, `mdm/credentials-expired`, `mdm/group-closed`,
 *   `mdm/not-found` (no such group), `kitting/profile-unavailable` (no password stored for the
 *   `passwordRef`), with `details.path` `enrollment.group`.
 */
export async function checkBlueprintCredentials(
  db: Db,
  json: unknown,
  deps: CredentialsCheckDeps,
  lang: Lang = 'en',
): Promise<CredentialsCheck> {
  if (!validateBlueprint(json).ok) return { status: 'none' };
  const bp = parseBlueprint(json, lang);
  const group = bp.enrollment.method === 'none' ? undefined : bp.enrollment.group;
  if (group?.userId === undefined || group.passwordRef === undefined) return { status: 'none' };
  let client: MdmClient | null;
  try {
    client = await deps.openClient();
  } catch (err) {
    return { status: 'not-checked', reason: toKitError(err).code };
  }
  try {
    return await checkGroupCredentials({ db, client, vault: deps.vault }, bp);
  } catch (err) {
    const e = toKitError(err);
    throw new KitError(
      e.code,
      `blueprint "${bp.name}": the MDM refused the enrollment credentials of group ${group.groupId} (${e.message}); it was not saved`,
      { cause: err, details: { path: 'enrollment.group', groupId: group.groupId } },
    );
  }
}

/**
 * {@link storeBlueprint} after {@link checkBlueprintCredentials}: refused with the MDM's code when
 * the group credentials are wrong; stored with `credentials` saying whether they were checked.
 */
export async function storeBlueprintChecked(
  db: Db,
  json: unknown,
  deps: CredentialsCheckDeps,
  options: StoreBlueprintOptions = {},
): Promise<StoredBlueprint & { readonly credentials: CredentialsCheck }> {
  const credentials = await checkBlueprintCredentials(db, json, deps, options.lang);
  return { ...storeBlueprint(db, json, options), credentials };
}

/**
 * The stored blueprint with this name, parsed (defaults filled in).
 * @throws KitError `blueprint/not-found`, `blueprint/invalid` (a stored row this version cannot read).
 */
export function getStoredBlueprint(db: Db, name: string): Blueprint {
  const row = getBlueprintByName(db, name);
  if (row === undefined) {
    throw new KitError('blueprint/not-found', `no stored blueprint named "${name}"`, { details: { name } });
  }
  return parseBlueprint(JSON.parse(row.json) as unknown);
}

/**
 * The stored blueprint as an export file's text: JSON, secrets left out ({@link exportBlueprint}).
 * @throws KitError `blueprint/not-found`.
 */
export function exportStoredBlueprint(db: Db, name: string): string {
  return exportBlueprint(getStoredBlueprint(db, name));
}

/** Every stored blueprint, by name (the `blueprint list --json` shape). */
export function listStoredBlueprints(db: Db): StoredBlueprintSummary[] {
  return listBlueprintRecords(db).map((r) => {
    const bp = parseBlueprint(JSON.parse(r.json) as unknown);
    return {
      name: r.name,
      identity: r.identityId,
      supervise: bp.supervise,
      enrollment: bp.enrollment.method,
      updatedAt: r.updatedAt,
    };
  });
}

/** Deletes a stored blueprint. @throws KitError `blueprint/not-found`. */
export function deleteStoredBlueprint(db: Db, name: string): void {
  if (!deleteBlueprintByName(db, name)) {
    throw new KitError('blueprint/not-found', `no stored blueprint named "${name}"`, { details: { name } });
  }
}

/** A blueprint found by {@link resolveBlueprint}. */
export interface ResolvedBlueprint {
  readonly blueprint: Blueprint;
  readonly source: 'stored' | 'file';
  /** The file read, for `source: 'file'`. */
  readonly path?: string;
}

/**
 * The blueprint a `--blueprint NAME|FILE` option means: the stored blueprint of that name first,
 * else the file at that path (validated; its identity is checked later by whoever uses it).
 * @throws KitError `blueprint/not-found` (neither a stored name nor an existing file),
 *   `blueprint/not-json`, {@link BlueprintIssuesError} (`blueprint/invalid`), `io/read-failed`.
 */
export function resolveBlueprint(db: Db, nameOrPath: string, lang: Lang = 'en'): ResolvedBlueprint {
  const row = getBlueprintByName(db, nameOrPath);
  if (row !== undefined) return { blueprint: getStoredBlueprint(db, nameOrPath), source: 'stored' };
  let text: string;
  try {
    text = readText(nameOrPath);
  } catch (err) {
    if (hasCode(err, 'io/not-found') || isDirectoryError(err)) {
      throw new KitError(
        'blueprint/not-found',
        `"${nameOrPath}" is neither a stored blueprint nor a blueprint file (see kitting blueprint list)`,
        { details: { name: nameOrPath } },
      );
    }
    throw err;
  }
  const json = parseBlueprintJson(text);
  const v = validateBlueprint(json);
  if (!v.ok) throw new BlueprintIssuesError(nameOrPath, v.issues, lang);
  return { blueprint: parseBlueprint(json, lang), source: 'file', path: nameOrPath };
}

function isDirectoryError(err: unknown): boolean {
  const cause: unknown = err instanceof KitError ? err.cause : undefined;
  return (cause as NodeJS.ErrnoException | undefined)?.code === 'EISDIR';
}
