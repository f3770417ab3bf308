/**
 * The UI's word tables: ja and en have exactly the same keys, no empty text, the same `{params}` in
 * both languages; and no component writes user-visible words outside the tables (JSX text that is
 * Japanese or an English word is refused, except the language names of the switch).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ja } from '../../renderer/src/i18n/ja.ts';
import { en } from '../../renderer/src/i18n/en.ts';

const params = (s: string): string[] => [...s.matchAll(/\{([A-Za-z0-9_.]+)\}/g)].map((m) => m[1] ?? '').sort();

describe('renderer word tables', () => {
  it('ja and en have identical key sets', () => {
    const jaKeys = Object.keys(ja).sort();
    const enKeys = Object.keys(en).sort();
    expect(
      enKeys.filter((k) => !jaKeys.includes(k)),
      'extra in en',
    ).toEqual([]);
    expect(
      jaKeys.filter((k) => !enKeys.includes(k)),
      'missing in en',
    ).toEqual([]);
    expect(jaKeys.length).toBeGreaterThan(100);
  });

  it('has no empty strings', () => {
    for (const [lang, table] of [
      ['ja', ja],
      ['en', en],
    ] as const) {
      for (const [k, v] of Object.entries(table)) expect(v.trim(), `${lang} ${k}`).not.toBe('');
    }
  });

  it('uses the same {params} in both languages', () => {
    for (const [k, v] of Object.entries(ja))
      expect(params((en as Record<string, string>)[k] ?? ''), k).toEqual(params(v));
  });

  it('uses the glossary words (端末, 準備, 監視用ID, 「信頼」をタップ)', () => {
    expect(ja['next.tap-trust']).toContain('「信頼」をタップ');
    expect(ja['station.prepare']).toContain('準備');
    expect(ja['nav.organizations']).toContain('監視用ID');
    expect(ja['station.hubPort']).toBe('ハブ{hub}・ポート{port}');
    expect(Object.values(ja).join('')).not.toContain('デバイス設定を'); // Apple's word only when quoting the iPad
  });
});

describe('renderer components', () => {
  const root = path.resolve(import.meta.dirname, '../../renderer/src');
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory() && e.name !== 'i18n') walk(p);
      else if (e.name.endsWith('.tsx')) files.push(p);
    }
  };
  walk(root);

  it('write no user-visible words outside the tables', () => {
    const allowed = new Set(['日本語', 'English', 'UTF-8', 'Shift_JIS']);
    const offenders: string[] = [];
    for (const file of files) {
      const src = fs.readFileSync(file, 'utf8');
      // JSX text between tags, and string attributes people read.
      for (const m of src.matchAll(/(?<!=)>([^<>{}\n;=()]*)</g)) {
        const text = (m[1] ?? '').trim();
        if (text === '' || allowed.has(text)) continue;
        if (/[\u3040-\u30ff\u4e00-\u9fff]/.test(text) || /[A-Za-z]{3,}/.test(text))
          offenders.push(`${path.basename(file)}: ${text}`);
      }
      for (const m of src.matchAll(/(?:aria-label|title|placeholder|alt)="([^"]*)"/g))
        offenders.push(`${path.basename(file)}: ${m[1]}`);
      for (const m of src.matchAll(/'([^'\n]*[\u3040-\u30ff\u4e00-\u9fff][^'\n]*)'/g)) {
        if (!allowed.has(m[1] ?? '')) offenders.push(`${path.basename(file)}: '${m[1]}'`);
      }
    }
    expect(files.length).toBeGreaterThan(8);
    expect(offenders).toEqual([]);
  });
});
