/**
 * What every `kitting` command shares: the global options of cli.md, resolved once, and the
 * output helpers (human text or one JSON document, errors with their code and exit status).
 */
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { KitError, toKitError } from '../errors.ts';
import { describeError, resolveLang, type Lang } from '../i18n/messages.ts';

/** Global options as commander parses them (see cli.md, "Global options"). */
export interface GlobalOptions {
  usbmuxd?: string;
  dataDir?: string;
  json?: boolean;
  lang?: string;
  passphraseFile?: string;
}

export interface CliContext {
  readonly json: boolean;
  readonly lang: Lang;
  /** The usbmuxd address as given (`--usbmuxd`, else `USBMUXD_SOCKET_ADDRESS`), undefined for the platform default. */
  readonly usbmuxd: string | undefined;
  readonly dataDir: string;
  readonly passphraseFile: string | undefined;
  /** Writes one JSON document (pretty, newline-terminated) to stdout. */
  printJson(value: unknown): void;
  /** Writes human text to stdout. */
  print(line: string): void;
}

/** The station's data folder: `--data-dir`, `KITTING_DATA_DIR`, else the OS app-data folder. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env, platform = process.platform): string {
  if (env.KITTING_DATA_DIR !== undefined && env.KITTING_DATA_DIR !== '') return env.KITTING_DATA_DIR;
  const home = os.homedir();
  if (platform === 'darwin') return path.join(home, 'Library', 'Application Support', 'Kitting Station');
  if (platform === 'win32') return path.join(env.APPDATA ?? path.join(home, 'AppData', 'Roaming'), 'Kitting Station');
  return path.join(env.XDG_DATA_HOME ?? path.join(home, '.local', 'share'), 'kitting-station');
}

function jsonReplacer(this: unknown, key: string, value: unknown): unknown {
  // JSON.stringify calls Buffer#toJSON before the replacer: look at the holder's original value.
  const original: unknown = (this as Record<string, unknown>)[key];
  if (original instanceof Uint8Array) return Buffer.from(original).toString('base64');
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/** Serializes for `--json` output: BigInt as decimal strings, bytes as base64. */
export function toJsonText(value: unknown): string {
  return JSON.stringify(value, jsonReplacer, 2);
}

export function contextFrom(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): CliContext {
  const usbmuxd = opts.usbmuxd ?? (env.USBMUXD_SOCKET_ADDRESS !== '' ? env.USBMUXD_SOCKET_ADDRESS : undefined);
  return {
    json: opts.json === true,
    lang: resolveLang(opts.lang, env),
    usbmuxd,
    dataDir: opts.dataDir ?? defaultDataDir(env),
    passphraseFile: opts.passphraseFile ?? undefined,
    printJson: (value) => process.stdout.write(`${toJsonText(value)}\n`),
    print: (line) => process.stdout.write(`${line}\n`),
  };
}

/** The context of the command being run (global options live on the root program). */
export function ctxOf(cmd: Command): CliContext {
  let root: Command = cmd;
  while (root.parent !== null) root = root.parent;
  return contextFrom(root.opts<GlobalOptions>());
}

/**
 * Reports a failure the way cli.md asks: with `--json` a `{"error": {code, message}}` document on
 * stdout, and always a readable line on stderr; returns the exit code (1, 2 or 3).
 */
export function reportError(err: unknown, json: boolean, lang: Lang): number {
  const e = toKitError(err);
  const words = describeError(e, lang);
  if (json) process.stdout.write(`${toJsonText({ error: { code: e.code, message: e.message } })}\n`);
  process.stderr.write(`kitting: ${words.title} [${e.code}]: ${e.message}\n  → ${words.action}\n`);
  return e instanceof KitError ? e.exitCode : 1;
}
