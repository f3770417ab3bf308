/**
 * `kitting blueprint init` and `kitting blueprint validate` (cli.md), the parts that need no
 * database. Storing, listing, importing and exporting stored blueprints arrive with the store, so
 * `init` writes only to `--out FILE` for now.
 *
 * Exit codes: 0 valid / written; 2 invalid blueprint, unreadable file, not JSON, or bad usage.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
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
import { ctxOf } from '../context.ts';

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

function runInit(cmd: Command, opts: InitOptions): void {
  const ctx = ctxOf(cmd);
  const name = requireOption(opts.name, '--name NAME');
  const identity = requireOption(opts.identity, '--identity ID');
  const orgName = requireOption(opts.orgName, '--org-name ORG');
  if (opts.out === undefined || opts.out.trim() === '') {
    throw new KitError(
      'usage/invalid-argument',
      '--out FILE is required for now: storing blueprints in the station arrives with the store',
    );
  }
  if (existsSync(opts.out) && opts.force !== true) {
    throw new KitError('usage/invalid-argument', `${opts.out} exists; give --force to overwrite it`);
  }
  const bp = parseBlueprint(initialBlueprint({ ...opts, name, identity, orgName }), ctx.lang);
  try {
    writeFileSync(opts.out, exportBlueprint(bp));
  } catch (err) {
    throw new KitError('io/write-failed', `cannot write ${opts.out}: ${(err as Error).message}`, { cause: err });
  }
  if (ctx.json) ctx.printJson({ written: opts.out, blueprint: bp });
  else ctx.print(ctx.lang === 'ja' ? `ブループリントを書き出しました: ${opts.out}` : `Blueprint written: ${opts.out}`);
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

/** Registers `kitting blueprint init|validate`. */
export function registerBlueprint(program: Command): void {
  const bp = program.command('blueprint').description('blueprints: the recipe applied to devices (ブループリント)');
  bp.command('init')
    .description(
      'write a new blueprint file with sensible defaults (supervised, mandatory enrollment, all panes skipped)',
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
    .option('--out <file>', 'write the blueprint here (required until blueprints are stored)')
    .option('--force', 'overwrite --out if it exists')
    .action(function (this: Command) {
      runInit(this, this.opts<InitOptions>());
    });
  bp.command('validate')
    .description('check a blueprint file; prints each field error (exit 2 when invalid)')
    .argument('<file>', 'blueprint JSON file')
    .action(function (this: Command, file: string) {
      runValidate(this, file);
    });
}
