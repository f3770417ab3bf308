/**
 * `kitting identity create|import|export|list|show|delete` (cli.md, "Identities, blueprints, plans").
 *
 * The database is `<dataDir>/station.db`, the vault `<dataDir>/vault.json`; the vault passphrase
 * comes from `--passphrase-file` or `KITTING_PASSPHRASE` and is asked for only by the commands that
 * touch private keys (create, import, export). File passwords come from `--password-file` only,
 * never from the command line (they would show in `ps` and shell history).
 *
 * Exit codes: 0 ok; 1 failed (`identity/duplicate`, `identity/in-use` …); 2 bad input file,
 * password or passphrase; 3 no such identity.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { z } from 'zod';
import { KitError } from '../../errors.ts';
import { displayFingerprint } from '../../identity/certificate.ts';
import { readSecretFile } from '../../identity/files.ts';
import {
  EXPORT_FORMATS,
  IDENTITY_ID,
  IdentityService,
  type ExportFormat,
  type IdentitySummary,
} from '../../identity/identity.ts';
import { PKCS12_ALGORITHMS, type Pkcs12Algorithm } from '../../identity/pkcs12.ts';
import { PassphraseVault, resolvePassphrase } from '../../identity/vault.ts';
import type { Lang } from '../../i18n/messages.ts';
import { openStationDatabase, type Db } from '../../store/db.ts';
import { countIdentities } from '../../store/identities.ts';
import { ctxOf, type CliContext } from '../context.ts';

const idSchema = z.string().regex(IDENTITY_ID, 'identity ids are 1–64 characters of a-z, 0-9 and -');
const CreateOptions = z.object({
  org: z.string().trim().min(1, '--org NAME is required').max(200),
  id: idSchema.optional(),
  country: z
    .string()
    .regex(/^[A-Za-z]{2}$/, '--country takes a two-letter code such as JP')
    .transform((c) => c.toUpperCase())
    .optional(),
});
const ImportOptions = z.object({
  passwordFile: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
  id: idSchema.optional(),
  org: z.string().trim().min(1).max(200).optional(),
});
const ExportOptions = z.object({
  out: z.string().min(1, '--out FILE is required'),
  format: z.enum(EXPORT_FORMATS as [ExportFormat, ...ExportFormat[]]).default('p12'),
  passwordFile: z.string().min(1).optional(),
  p12Cipher: z.enum(PKCS12_ALGORITHMS as [Pkcs12Algorithm, ...Pkcs12Algorithm[]]).default('3des'),
});

/** Parses command options with zod; a failure is bad usage (exit 2) naming the option. */
function parseOptions<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.join('.') ?? '';
    throw new KitError(
      'usage/invalid-argument',
      `${where === '' ? '' : `--${kebab(where)}: `}${issue?.message ?? 'invalid'}`,
    );
  }
  return result.data;
}

function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function checkIdArgument(id: string): string {
  return parseOptions(idSchema, id);
}

/** Runs `fn` with an identity service over the data folder's database, closing it afterwards. */
async function withService<T>(ctx: CliContext, fn: (service: IdentityService) => Promise<T> | T): Promise<T> {
  const db: Db = openStationDatabase(ctx.dataDir);
  try {
    const service = new IdentityService({
      db,
      actor: 'cli',
      // Asked for only when a key is sealed or opened. A missing vault.json next to stored
      // identities is an error, not a reason to start a new vault (the old keys would be lost).
      vault: () =>
        PassphraseVault.open({
          dataDir: ctx.dataDir,
          passphrase: resolvePassphrase(ctx.passphraseFile),
          create: countIdentities(db) === 0,
        }),
    });
    return await fn(service);
  } finally {
    db.close();
  }
}

function brief(s: IdentitySummary): { id: string; org: string; fingerprint: string; notAfter: string } {
  return { id: s.id, org: s.org, fingerprint: s.fingerprint, notAfter: s.notAfter };
}

const WORDS = {
  created: { ja: '監視用IDを作成しました', en: 'Created supervision identity' },
  imported: { ja: '監視用IDを読み込みました', en: 'Imported supervision identity' },
  exported: { ja: '監視用IDを書き出しました', en: 'Exported supervision identity' },
  deleted: { ja: '監視用IDを削除しました', en: 'Deleted supervision identity' },
  fingerprint: { ja: 'フィンガープリント (SHA-256)', en: 'Fingerprint (SHA-256)' },
  validUntil: { ja: '有効期限', en: 'Valid until' },
  validity: { ja: '有効期間', en: 'Validity' },
  none: {
    ja: '監視用IDはまだありません（kitting identity create --org 組織名）',
    en: 'No supervision identities yet (kitting identity create --org NAME)',
  },
  headers: {
    ja: ['ID', '組織', '有効期限', 'フィンガープリント (SHA-256)'],
    en: ['ID', 'ORGANIZATION', 'VALID UNTIL', 'FINGERPRINT (SHA-256)'],
  },
} as const;

function printSummary(ctx: CliContext, what: 'created' | 'imported', s: IdentitySummary): void {
  if (ctx.json) {
    ctx.printJson({ ...brief(s), notBefore: s.notBefore });
    return;
  }
  const lang: Lang = ctx.lang;
  ctx.print(`${WORDS[what][lang]}: ${s.id} (${s.org})`);
  ctx.print(`  ${WORDS.fingerprint[lang]}: ${displayFingerprint(s.fingerprint)}`);
  ctx.print(`  ${WORDS.validUntil[lang]}: ${s.notAfter.slice(0, 10)}`);
}

/** Display width: East Asian wide and full-width characters take two columns. */
function width(s: string): number {
  let w = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    w +=
      (cp >= 0x1100 && cp <= 0x115f) ||
      (cp >= 0x2e80 && cp <= 0xa4cf) ||
      (cp >= 0xac00 && cp <= 0xd7a3) ||
      (cp >= 0xf900 && cp <= 0xfaff) ||
      (cp >= 0xfe30 && cp <= 0xfe4f) ||
      (cp >= 0xff00 && cp <= 0xff60) ||
      (cp >= 0xffe0 && cp <= 0xffe6) ||
      (cp >= 0x20000 && cp <= 0x3fffd)
        ? 2
        : 1;
  }
  return w;
}

function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, width(cell))));
  return rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat((widths[i] ?? 0) - width(cell))))
      .join('  ')
      .trimEnd(),
  );
}

/** Registers `kitting identity …`. */
export function registerIdentity(program: Command): void {
  const identity = program
    .command('identity')
    .description('organization (supervision) identities: certificate + private key (監視用ID)');

  identity
    .command('create')
    .description('create a new supervision identity (RSA 2048, SHA-256, 10 years), as Apple Configurator does')
    .option('--org <name>', 'organization name (組織名)')
    .option('--id <id>', 'identity id (a-z, 0-9, -; default: from the org name)')
    .option('--country <cc>', 'two-letter country code for the certificate, e.g. JP')
    .action(async (opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const input = parseOptions(CreateOptions, opts);
      const summary = await withService(ctx, (s) =>
        s.create({
          org: input.org,
          ...(input.id === undefined ? {} : { id: input.id }),
          ...(input.country === undefined ? {} : { country: input.country }),
        }),
      );
      printSummary(ctx, 'created', summary);
    });

  identity
    .command('import')
    .description('import an identity: .p12/.pfx, PEM (certificate + key) or DER certificate with --key')
    .argument('<file>', 'identity file')
    .option('--password-file <file>', 'file holding the .p12 (or encrypted key) password')
    .option('--key <keyfile>', 'private key file (PEM or DER, PKCS#1 or PKCS#8) for a certificate-only file')
    .option('--id <id>', 'identity id (default: from the organization)')
    .option('--org <name>', 'organization name (default: from the certificate)')
    .action(async (file: string, opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const input = parseOptions(ImportOptions, opts);
      const password = input.passwordFile === undefined ? undefined : readSecretFile(input.passwordFile);
      const summary = await withService(ctx, (s) =>
        s.importFile(file, {
          ...(password === undefined ? {} : { password }),
          ...(input.key === undefined ? {} : { keyFile: input.key }),
          ...(input.id === undefined ? {} : { id: input.id }),
          ...(input.org === undefined ? {} : { org: input.org }),
        }),
      );
      printSummary(ctx, 'imported', summary);
    });

  identity
    .command('export')
    .description('export an identity (p12: needs --password-file; der: writes OUT and OUT.key)')
    .argument('<id>', 'identity id')
    .option('--out <file>', 'output file')
    .addOption(new Option('--format <format>', 'p12 | pem | der').choices([...EXPORT_FORMATS]).default('p12'))
    .option('--password-file <file>', 'file holding the export password (p12: required; pem: encrypts the key)')
    .addOption(
      new Option('--p12-cipher <cipher>', '3des: every macOS; aes256: openssl 3 default, macOS 14+')
        .choices([...PKCS12_ALGORITHMS])
        .default('3des'),
    )
    .action(async (id: string, opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      checkIdArgument(id);
      const input = parseOptions(ExportOptions, opts);
      const password = input.passwordFile === undefined ? undefined : readSecretFile(input.passwordFile);
      const files = await withService(ctx, (s) =>
        s.export(id, {
          out: input.out,
          format: input.format,
          p12Algorithm: input.p12Cipher,
          ...(password === undefined ? {} : { password }),
        }),
      );
      if (ctx.json) ctx.printJson({ id, format: input.format, files });
      else ctx.print(`${WORDS.exported[ctx.lang]}: ${id} → ${files.join(', ')}`);
    });

  identity
    .command('list')
    .description('list identities with their SHA-256 fingerprints')
    .option('--json', 'JSON: an array of {id, org, fingerprint, notAfter}')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const list = await withService(ctx, (s) => s.list());
      if (ctx.json || opts.json === true) {
        ctx.printJson(list.map(brief));
        return;
      }
      if (list.length === 0) {
        ctx.print(WORDS.none[ctx.lang]);
        return;
      }
      const rows = list.map((s) => [s.id, s.org, s.notAfter.slice(0, 10), displayFingerprint(s.fingerprint)]);
      for (const line of table([[...WORDS.headers[ctx.lang]], ...rows])) ctx.print(line);
    });

  identity
    .command('show')
    .description('one identity: organization, validity, subject and fingerprint')
    .argument('<id>', 'identity id')
    .option('--json', 'one JSON object')
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      checkIdArgument(id);
      const d = await withService(ctx, (s) => s.get(id));
      if (ctx.json || opts.json === true) {
        ctx.printJson({ ...brief(d), notBefore: d.notBefore, subject: d.subject, createdAt: d.createdAt });
        return;
      }
      ctx.print(`${d.id}: ${d.org}`);
      ctx.print(
        `  subject: ${Object.entries(d.subject)
          .map(([k, v]) => `${k}=${v}`)
          .join(', ')}`,
      );
      ctx.print(`  ${WORDS.validity[ctx.lang]}: ${d.notBefore.slice(0, 10)} – ${d.notAfter.slice(0, 10)}`);
      ctx.print(`  ${WORDS.fingerprint[ctx.lang]}: ${d.fingerprintDisplay}`);
    });

  identity
    .command('delete')
    .description('delete an identity (refused while a blueprint uses it)')
    .argument('<id>', 'identity id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      checkIdArgument(id);
      await withService(ctx, (s) => s.delete(id));
      if (ctx.json) ctx.printJson({ id, deleted: true });
      else ctx.print(`${WORDS.deleted[ctx.lang]}: ${id}`);
    });
}
