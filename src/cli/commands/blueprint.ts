/**
 * `kitting blueprint init|validate|import|export|list` (cli.md).
 *
 * - `init` builds a blueprint with the station's defaults and **stores it** in the station
 *   database (the identity must be stored there: `identity/not-found`, exit 3, otherwise; a name
 *   already stored is `blueprint/duplicate-name` unless `--replace`). `--out FILE` additionally
 *   writes the file (`--force` to overwrite). `--no-store --out FILE` only writes the file (for
 *   another station: the identity is then not looked up). Storing and writing happen together or
 *   not at all.
 * - `import FILE [--replace]` validates (every field problem listed, exit 2) and stores; a blueprint
 *   enrolling into an MDM group with credentials has them checked with the configured MDM first:
 *   wrong ones refuse the save (`mdm/wrong-credentials` …), an MDM that cannot be asked saves it
 *   with a warning ("not checked"; `credentials` in `--json`). `init` makes no group, so no check.
 * - `export NAME [--out F]` writes the stored blueprint as JSON without secrets (stdout by default).
 * - `list [--json]`: an array of `{name, identity, supervise, enrollment, updatedAt}`.
 * - `validate FILE` checks a file without storing it.
 *
 * Exit codes: 0; 1 `blueprint/duplicate-name`, `store/*`, `io/write-failed`; 2 invalid blueprint,
 * unreadable file, not JSON, bad usage; 3 `blueprint/not-found`, `identity/not-found`.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { KitError } from '../../errors.ts';
import type { Lang } from '../../i18n/messages.ts';
import {
  exportBlueprint,
  parseBlueprint,
  parseBlueprintJson,
  validateBlueprint,
  type BlueprintInput,
  type BlueprintIssue,
} from '../../kitting/blueprint.ts';
import {
  BlueprintIssuesError,
  exportStoredBlueprint,
  readBlueprintFile,
  storeBlueprintChecked,
  listStoredBlueprints,
  storeBlueprint,
} from '../../kitting/blueprint-store.ts';
import { PassphraseVault, resolvePassphrase, type Vault } from '../../identity/vault.ts';
import { openMdmClient } from '../../kitting/mdm-port.ts';
import { openStationDatabase, transaction, type Db } from '../../store/db.ts';
import { ctxOf, toJsonText, type CliContext } from '../context.ts';
import { writeAtomic } from './plist.ts';

interface InitOptions {
  name?: string;
  identity?: string;
  orgName?: string;
  skip: string;
  allowPairing: boolean;
  eraseIfNeeded?: boolean;
  enrollProfile?: string;
  nameTemplate?: string;
  out?: string;
  force?: boolean;
  store: boolean;
  replace?: boolean;
}

/** The blueprint `init` writes: the given values plus the station's defaults (cli.md, domain.md). */
export function initialBlueprint(
  opts: InitOptions & { name: string; identity: string; orgName: string },
): BlueprintInput {
  const skip = opts.skip.trim();
  const bp: BlueprintInput = {
    version: 1,
    name: opts.name,
    organization: { identityId: opts.identity, displayName: opts.orgName },
    supervise: true,
    allowPairing: opts.allowPairing,
    mandatoryEnrollment: true,
    mdmRemovable: false,
    sharedIpad: { mode: 'off' },
    autoAdvance: false,
    skipSetup:
      skip === 'all'
        ? 'all'
        : skip
            .split(',')
            .map((k) => k.trim())
            .filter((k) => k !== ''),
    enrollment:
      opts.enrollProfile !== undefined
        ? { method: 'staged', source: { kind: 'file', path: opts.enrollProfile } }
        : { method: 'none' },
    locale: { language: 'ja', region: 'ja_JP', timeZone: 'Asia/Tokyo' },
    profiles: [],
    eraseIfNeeded: opts.eraseIfNeeded === true,
    mdmCheck: 'block',
    finish: 'none',
  };
  if (opts.nameTemplate !== undefined) bp.naming = { template: opts.nameTemplate, start: 1 };
  return bp;
}

function requireOption(value: string | undefined, flag: string): string {
  if (value === undefined || value.trim() === '') {
    throw new KitError('usage/invalid-argument', `${flag} is required`);
  }
  return value;
}

function withDb<T>(dataDir: string, fn: (db: Db) => T): T {
  const db = openStationDatabase(dataDir);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

function runInit(cmd: Command, opts: InitOptions): void {
  const ctx = ctxOf(cmd);
  const name = requireOption(opts.name, '--name NAME');
  const identity = requireOption(opts.identity, '--identity ID');
  const orgName = requireOption(opts.orgName, '--org-name ORG');
  const out = opts.out !== undefined && opts.out.trim() !== '' ? opts.out : undefined;
  if (!opts.store && out === undefined) {
    throw new KitError('usage/invalid-argument', '--no-store needs --out FILE (otherwise nothing would be written)');
  }
  if (out !== undefined && existsSync(out) && opts.force !== true) {
    throw new KitError('usage/invalid-argument', `${out} exists; give --force to overwrite it`);
  }
  const input = initialBlueprint({ ...opts, name, identity, orgName });
  const bp = parseBlueprint(input, ctx.lang);
  const write = (): void => {
    if (out !== undefined) writeAtomic(out, Buffer.from(exportBlueprint(bp), 'utf8'));
  };
  if (opts.store) {
    // Stored and written together: a failed write rolls the store back.
    withDb(ctx.dataDir, (db) =>
      transaction(db, 'storing a new blueprint', () => {
        storeBlueprint(db, input, { replace: opts.replace === true, lang: ctx.lang, source: 'blueprint init' });
        write();
      }),
    );
  } else write();
  if (ctx.json) {
    ctx.printJson({ ...(out !== undefined ? { written: out } : {}), stored: opts.store, blueprint: bp });
    return;
  }
  if (opts.store) {
    ctx.print(ctx.lang === 'ja' ? `ブループリントを保存しました: ${bp.name}` : `Blueprint stored: ${bp.name}`);
  }
  if (out !== undefined) {
    ctx.print(ctx.lang === 'ja' ? `ブループリントを書き出しました: ${out}` : `Blueprint written: ${out}`);
  }
}

/** Prints a {@link BlueprintIssuesError} field by field (like `validate`) and sets exit code 2. */
function reportIssues(ctx: CliContext, err: BlueprintIssuesError): void {
  if (ctx.json) {
    process.stdout.write(
      `${toJsonText({ error: { code: err.code, message: err.message, issues: err.issues.map((i) => issueJson(i, ctx.lang)) } })}\n`,
    );
  }
  for (const i of err.issues) {
    process.stderr.write(`${i.path === '' ? '(document)' : i.path}: ${i.message[ctx.lang]}\n`);
  }
  process.stderr.write(
    ctx.lang === 'ja'
      ? `kitting: ブループリントに ${err.issues.length} 件の誤りがあります [blueprint/invalid]\n`
      : `kitting: the blueprint has ${err.issues.length} problem(s) [blueprint/invalid]\n`,
  );
  process.exitCode = 2;
}

async function runImport(cmd: Command, file: string, opts: { replace?: boolean }): Promise<void> {
  const ctx = ctxOf(cmd);
  const db = openStationDatabase(ctx.dataDir);
  try {
    // A blueprint enrolling into an MDM group has its credentials checked with the MDM first.
    const vault = (): Promise<Vault> =>
      PassphraseVault.open({ dataDir: ctx.dataDir, passphrase: resolvePassphrase(ctx.passphraseFile) });
    const r = await storeBlueprintChecked(
      db,
      readBlueprintFile(file),
      { openClient: () => openMdmClient(db, vault), vault },
      { replace: opts.replace === true, lang: ctx.lang, source: file },
    );
    if (ctx.json) {
      ctx.printJson({
        name: r.blueprint.name,
        identity: r.blueprint.organization.identityId,
        replaced: r.replaced,
        credentials: r.credentials,
      });
      return;
    }
    if (ctx.lang === 'ja') {
      ctx.print(`ブループリントを${r.replaced ? '置き換えました' : '取り込みました'}: ${r.blueprint.name}`);
    } else ctx.print(`Blueprint ${r.replaced ? 'replaced' : 'imported'}: ${r.blueprint.name}`);
    if (r.credentials.status === 'not-checked') {
      process.stderr.write(
        ctx.lang === 'ja'
          ? `kitting: 警告: MDM に問い合わせできないため、グループの登録用認証情報は確認していません (${r.credentials.reason})\n`
          : `kitting: warning: the group's enrollment credentials were not checked: the MDM could not be asked (${r.credentials.reason})\n`,
      );
    }
  } catch (err) {
    if (err instanceof BlueprintIssuesError) reportIssues(ctx, err);
    else throw err;
  } finally {
    db.close();
  }
}

function runExport(cmd: Command, name: string, opts: { out?: string }): void {
  const ctx = ctxOf(cmd);
  const text = withDb(ctx.dataDir, (db) => exportStoredBlueprint(db, name));
  if (opts.out === undefined) {
    process.stdout.write(text);
    return;
  }
  writeAtomic(opts.out, Buffer.from(text, 'utf8'));
  if (ctx.json) ctx.printJson({ name, written: opts.out });
  else ctx.print(ctx.lang === 'ja' ? `ブループリントを書き出しました: ${opts.out}` : `Blueprint written: ${opts.out}`);
}

function runList(cmd: Command): void {
  const ctx = ctxOf(cmd);
  const list = withDb(ctx.dataDir, (db) => listStoredBlueprints(db));
  if (ctx.json) {
    ctx.printJson(list);
    return;
  }
  if (list.length === 0) ctx.print(ctx.lang === 'ja' ? 'ブループリントはありません' : 'no blueprints');
  for (const b of list) {
    ctx.print(`${b.name}  ${b.identity}  supervise=${String(b.supervise)}  enrollment=${b.enrollment}  ${b.updatedAt}`);
  }
}

function issueJson(
  i: BlueprintIssue,
  lang: Lang,
): { path: string; code: string; message: string; messages: { ja: string; en: string } } {
  return { path: i.path, code: i.code, message: i.message[lang], messages: { ja: i.message.ja, en: i.message.en } };
}

function runValidate(cmd: Command, file: string): void {
  const ctx = ctxOf(cmd);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new KitError('io/read-failed', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  const json = parseBlueprintJson(text);
  const r = validateBlueprint(json);
  if (ctx.json) {
    ctx.printJson({
      valid: r.ok,
      issues: r.issues.map((i) => issueJson(i, ctx.lang)),
      warnings: r.warnings.map((i) => issueJson(i, ctx.lang)),
    });
  } else {
    for (const i of r.issues) ctx.print(`${i.path === '' ? '(document)' : i.path}: ${i.message[ctx.lang]}`);
    const warn = ctx.lang === 'ja' ? '注意' : 'warning';
    for (const w of r.warnings) ctx.print(`${w.path}: ${warn}: ${w.message[ctx.lang]}`);
    if (r.ok) ctx.print(ctx.lang === 'ja' ? `有効なブループリントです: ${file}` : `Valid blueprint: ${file}`);
    else
      process.stderr.write(
        ctx.lang === 'ja'
          ? `kitting: ブループリントに ${r.issues.length} 件の誤りがあります [blueprint/invalid]\n`
          : `kitting: the blueprint has ${r.issues.length} problem(s) [blueprint/invalid]\n`,
      );
  }
  if (!r.ok) process.exitCode = 2;
}

/** Registers `kitting blueprint init|validate|import|export|list`. */
export function registerBlueprint(program: Command): void {
  const bp = program.command('blueprint').description('blueprints: the recipe applied to devices (ブループリント)');
  bp.command('init')
    .description(
      'create a blueprint with sensible defaults (supervised, mandatory enrollment, all panes skipped) and store it',
    )
    .option('--name <name>', 'blueprint name (1–128 characters)')
    .option('--identity <id>', 'supervision identity id')
    .option('--org-name <org>', 'organization name shown on the device')
    .option('--skip <keys>', 'Setup Assistant panes to skip: all, or KEY,KEY…', 'all')
    .option('--allow-pairing', 'allow pairing with other computers (default)')
    .option('--no-allow-pairing', 'forbid pairing with other computers (only the supervision identity can pair)')
    .option('--erase-if-needed', 'allow erasing a device that needs it (still asks for confirmation)')
    .option('--enroll-profile <file>', 'enrollment profile to stage for after Setup Assistant')
    .option('--name-template <template>', 'device name template, e.g. "iPad-{n:3}"')
    .option('--out <file>', 'also write the blueprint to this file')
    .option('--force', 'overwrite --out if it exists')
    .option('--no-store', 'only write --out; do not store the blueprint in the station')
    .option('--replace', 'replace a stored blueprint of the same name')
    .action(function (this: Command) {
      runInit(this, this.opts<InitOptions>());
    });
  bp.command('import')
    .description('validate a blueprint file and store it (names are unique; --replace to replace)')
    .argument('<file>', 'blueprint JSON file')
    .option('--replace', 'replace a stored blueprint of the same name')
    .action(async function (this: Command, file: string) {
      await runImport(this, file, this.opts<{ replace?: boolean }>());
    });
  bp.command('export')
    .description('write a stored blueprint as JSON, secrets left out (stdout unless --out)')
    .argument('<name>', 'stored blueprint name')
    .option('--out <file>', 'write to this file (atomically)')
    .action(function (this: Command, name: string) {
      runExport(this, name, this.opts<{ out?: string }>());
    });
  bp.command('list')
    .description('stored blueprints; --json: [{name, identity, supervise, enrollment, updatedAt}]')
    .action(function (this: Command) {
      runList(this);
    });
  bp.command('validate')
    .description('check a blueprint file; prints each field error (exit 2 when invalid)')
    .argument('<file>', 'blueprint JSON file')
    .action(function (this: Command, file: string) {
      runValidate(this, file);
    });
}
