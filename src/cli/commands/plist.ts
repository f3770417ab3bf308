/**
 * `kitting plist print FILE [--json]` and `kitting plist convert FILE --to xml|binary|json --out F`
 * (cli.md, Utilities): plutil-like. Reads XML and binary plists and signed `.mobileconfig` files
 * (their content is printed or converted).
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type Command, Option } from 'commander';
import { KitError } from '../../errors.ts';
import {
  PlistReal,
  PlistUid,
  decodePlist,
  encodeBinary,
  encodeXml,
  isPlistDict,
  readSignedPlist,
  type PlistValue,
} from '../../plist/index.ts';
import { ctxOf, toJsonText } from '../context.ts';

interface Loaded {
  value: PlistValue;
  /** SHA-256 fingerprints (hex) of the signer certificates when the file is a signed profile. */
  signers: string[] | undefined;
}

function readInput(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    throw new KitError('io/read-failed', `cannot read ${file} (${code})`, { cause: err, details: { file } });
  }
}

function looksSigned(bytes: Buffer): boolean {
  return bytes[0] === 0x30 || bytes.subarray(0, 64).toString('latin1').trimStart().startsWith('-----BEGIN');
}

/** Reals stay reals (`PlistReal`), so printing says "real" and converting keeps the type. */
const KEEP_TYPES = { realsAsObjects: true } as const;

/** Reads a plist file, unwrapping a signed profile. */
export function loadPlistFile(file: string): Loaded {
  const bytes = readInput(file);
  try {
    if (looksSigned(bytes)) {
      const { content, signerCertificatesDer } = readSignedPlist(bytes, KEEP_TYPES);
      return {
        value: content,
        signers: signerCertificatesDer.map((der) => createHash('sha256').update(der).digest('hex')),
      };
    }
    return { value: decodePlist(bytes, KEEP_TYPES), signers: undefined };
  } catch (err) {
    if (err instanceof KitError) {
      throw new KitError(err.code, `${file}: ${err.message}`, { cause: err, details: { file, ...err.details } });
    }
    throw err;
  }
}

/**
 * The JSON form of a plist value: data as base64, dates as ISO 8601, integers beyond 2^53 as
 * decimal strings, UIDs as `{"CF$UID": n}`, NaN/±Infinity as "nan"/"+infinity"/"-infinity".
 */
export function plistToJson(v: PlistValue): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number' || v instanceof PlistReal) {
    const n = typeof v === 'number' ? v : v.value;
    if (Number.isNaN(n)) return 'nan';
    if (n === Infinity) return '+infinity';
    if (n === -Infinity) return '-infinity';
    return n;
  }
  if (typeof v !== 'object') return v;
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (v instanceof Date) return v.toISOString();
  if (v instanceof PlistUid) return { CF$UID: v.value };
  if (Array.isArray(v)) return v.map(plistToJson);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    Object.defineProperty(out, k, {
      value: plistToJson(v[k] as PlistValue),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

const PREVIEW_BYTES = 24;

function scalarText(v: PlistValue): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : `${String(v)} (real)`;
  if (typeof v === 'boolean') return String(v);
  if (v instanceof PlistReal) return `${String(v.value)} (real)`;
  if (v instanceof PlistUid) return `<UID ${v.value}>`;
  if (v instanceof Date) return `${v.toISOString().replace('.000Z', 'Z')} (date)`;
  if (Buffer.isBuffer(v)) {
    const hex = v.subarray(0, PREVIEW_BYTES).toString('hex');
    return `<${v.length} bytes${v.length === 0 ? '' : `: ${hex}${v.length > PREVIEW_BYTES ? '…' : ''}`}>`;
  }
  return '?';
}

/** An indented, plutil -p style dump: `"key" => value`, arrays indexed, data as `<N bytes: hex…>`. */
export function formatPlist(v: PlistValue, indent = ''): string {
  const inner = `${indent}  `;
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    const lines = v.map((item, i) => `${inner}${i} => ${formatPlist(item, inner)}`);
    return `[\n${lines.join('\n')}\n${indent}]`;
  }
  if (isPlistDict(v)) {
    const keys = Object.keys(v);
    if (keys.length === 0) return '{}';
    const lines = keys.map((k) => `${inner}${JSON.stringify(k)} => ${formatPlist(v[k] as PlistValue, inner)}`);
    return `{\n${lines.join('\n')}\n${indent}}`;
  }
  return scalarText(v);
}

/** Writes `bytes` to `file` through a temp file in the same folder and a rename: all or nothing. */
export function writeAtomic(file: string, bytes: Uint8Array): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'wx', 0o644);
    try {
      fs.writeFileSync(fd, bytes);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    throw new KitError('io/write-failed', `cannot write ${file} (${code})`, { cause: err, details: { file } });
  }
}

type Format = 'xml' | 'binary' | 'json';

function encodeAs(value: PlistValue, to: Format): Buffer {
  if (to === 'xml') return encodeXml(value);
  if (to === 'binary') return encodeBinary(value);
  return Buffer.from(`${toJsonText(plistToJson(value))}\n`, 'utf8');
}

/** Registers `kitting plist print|convert`. */
export function registerPlist(program: Command): void {
  const plist = program
    .command('plist')
    .description('read and convert property lists (XML, binary, signed .mobileconfig)');

  plist
    .command('print')
    .usage('FILE [--json]')
    .description('print a plist readably (plutil -p style), or as JSON with --json')
    .argument('<file>', 'XML or binary plist, or signed .mobileconfig')
    .action((file: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const { value, signers } = loadPlistFile(file);
      if (ctx.json) {
        ctx.printJson(plistToJson(value));
        return;
      }
      if (signers !== undefined) {
        ctx.print(
          `# signed profile; signer certificate SHA-256: ${signers.length === 0 ? '(none found)' : signers.join(', ')}`,
        );
      }
      ctx.print(formatPlist(value));
    });

  plist
    .command('convert')
    .usage('FILE --to xml|binary|json --out F')
    .description("convert a plist (or a signed profile's content) to XML, binary or JSON; writes atomically")
    .argument('<file>', 'XML or binary plist, or signed .mobileconfig')
    .addOption(new Option('--to <format>', 'output format').choices(['xml', 'binary', 'json']).makeOptionMandatory())
    .requiredOption('--out <file>', 'output file (written to a temp file, then renamed)')
    .action((file: string, opts: { to: Format; out: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const { value } = loadPlistFile(file);
      const bytes = encodeAs(value, opts.to);
      writeAtomic(opts.out, bytes);
      if (ctx.json) ctx.printJson({ out: opts.out, format: opts.to, bytes: bytes.length });
      else ctx.print(`wrote ${opts.out} (${opts.to}, ${bytes.length} bytes)`);
    });
}
