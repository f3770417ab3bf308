/**
 * The one ja/en table of what people read when something fails: a title and what to do, keyed by
 * error code. Typed as a `Record` over every {@link ErrorCode}, so adding a code without words is a
 * type error (and `npm run typecheck` fails the build).
 */
import type { ErrorCode } from '../errors.ts';
import { KitError } from '../errors.ts';

export type Lang = 'ja' | 'en';

export interface Words {
  /** What happened, in a few words. */
  readonly title: string;
  /** What the person should do next. */
  readonly action: string;
}

export type MessageTable = Readonly<Record<ErrorCode, Readonly<Record<Lang, Words>>>>;

export const ERROR_MESSAGES: MessageTable = {
  bug: {
    ja: { title: '内部エラーが発生しました', action: 'ログを保存して開発者に連絡してください。' },
    en: { title: 'Internal error', action: 'Save the log and contact the developers.' },
  },
  'usage/invalid-argument': {
    ja: { title: '指定内容に誤りがあります', action: 'コマンドの指定を確認してください（--help）。' },
    en: { title: 'Invalid argument', action: 'Check the command line (--help).' },
  },
  'usage/unknown-command': {
    ja: { title: '不明なコマンドです', action: '--help で使えるコマンドを確認してください。' },
    en: { title: 'Unknown command', action: 'See --help for the available commands.' },
  },
  'io/read-failed': {
    ja: { title: 'ファイルを読み込めません', action: 'ファイルの場所と権限を確認してください。' },
    en: { title: 'Cannot read the file', action: 'Check the path and its permissions.' },
  },
  'io/write-failed': {
    ja: { title: 'ファイルを書き込めません', action: '保存先の空き容量と権限を確認してください。' },
    en: { title: 'Cannot write the file', action: 'Check free space and permissions of the destination.' },
  },
  'io/not-found': {
    ja: { title: '見つかりません', action: '名前やIDを確認してください。' },
    en: { title: 'Not found', action: 'Check the name or ID.' },
  },
  'plist/malformed': {
    ja: { title: 'プロパティリストが壊れています', action: 'ファイルが正しい plist か確認してください（位置はメッセージに表示）。' },
    en: { title: 'Malformed property list', action: 'Check that the file is a valid plist (the position is in the message).' },
  },
  'plist/unsupported': {
    ja: { title: 'この plist の型には対応していません', action: '対応する型（辞書・配列・文字列・数値・日付・データ）に変換してください。' },
    en: { title: 'Unsupported plist value', action: 'Use supported types (dict, array, string, number, date, data).' },
  },
  'cms/malformed': {
    ja: { title: '署名付きデータが壊れています', action: '署名付き構成プロファイルを取得し直してください。' },
    en: { title: 'Malformed signed data', action: 'Get the signed configuration profile again.' },
  },
};

/** The words for an error (KitError or anything thrown) in the given language. */
export function describeError(err: unknown, lang: Lang): Words & { code: ErrorCode } {
  const code: ErrorCode = err instanceof KitError ? err.code : 'bug';
  return { code, ...ERROR_MESSAGES[code][lang] };
}

/** The language from an explicit choice, else the OS locale (LC_ALL, LC_MESSAGES, LANG, Intl). */
export function resolveLang(explicit?: string, env: NodeJS.ProcessEnv = process.env): Lang {
  if (explicit === 'ja' || explicit === 'en') return explicit;
  const fromEnv = env.LC_ALL ?? env.LC_MESSAGES ?? env.LANG;
  const locale = fromEnv !== undefined && fromEnv !== '' && fromEnv !== 'C' && fromEnv !== 'POSIX'
    ? fromEnv
    : Intl.DateTimeFormat().resolvedOptions().locale;
  return locale.toLowerCase().startsWith('ja') ? 'ja' : 'en';
}
