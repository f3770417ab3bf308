/**
 * The language of the UI: ja or en, the OS locale by default (navigator.language), switched from the
 * header or Settings. `t(key, params)` reads the tables in ja.ts / en.ts; `{name}` in a text is
 * replaced by `params.name`. The document's `lang` follows the choice.
 */
import { createContext, useContext } from 'react';
import { ja, type MessageKey } from './ja.ts';
import { en } from './en.ts';

export type Lang = 'ja' | 'en';
export type { MessageKey };

export const TABLES: Readonly<Record<Lang, Readonly<Record<MessageKey, string>>>> = { ja, en };

export type Params = Readonly<Record<string, string | number>>;

export function translate(lang: Lang, key: MessageKey, params?: Params): string {
  const text = TABLES[lang][key];
  if (params === undefined) return text;
  return text.replace(/\{([A-Za-z0-9_.]+)\}/g, (m, name: string) => {
    const v = params[name];
    return v === undefined ? m : String(v);
  });
}

/** The OS (browser) language: ja when it starts with ja, else en. */
export function osLang(): Lang {
  return navigator.language.toLowerCase().startsWith('ja') ? 'ja' : 'en';
}

export interface I18n {
  readonly lang: Lang;
  readonly t: (key: MessageKey, params?: Params) => string;
  readonly setLang: (lang: Lang) => void;
}

export const I18nContext = createContext<I18n>({
  lang: 'ja',
  t: (key, params) => translate('ja', key, params),
  setLang: () => undefined,
});

export function useI18n(): I18n {
  return useContext(I18nContext);
}
