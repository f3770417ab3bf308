import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KitError } from '../../src/errors.ts';
import {
  MAX_NAME_BYTES,
  inspectTemplate,
  parseTemplate,
  renderName,
  usesPlan,
  type NamingFacts,
} from '../../src/kitting/naming.ts';

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    return e instanceof KitError ? e.code : 'not-a-KitError';
  }
}

const FACTS: NamingFacts = {
  serial: 'DMPXK1ABCD',
  model: 'iPad (10th generation)',
  n: 7,
  plan: { name: '3年1組-01', assetTag: 'A-0042' },
};

describe('naming templates', () => {
  it('renders each placeholder', () => {
    expect(renderName('{serial}', FACTS)).toBe('DMPXK1ABCD');
    expect(renderName('{model}', FACTS)).toBe('iPad (10th generation)');
    expect(renderName('iPad-{n}', FACTS)).toBe('iPad-7');
    expect(renderName('iPad-{n:3}', FACTS)).toBe('iPad-007');
    expect(renderName('{plan.name}', FACTS)).toBe('3年1組-01');
    expect(renderName('{plan.assetTag} {serial}', FACTS)).toBe('A-0042 DMPXK1ABCD');
    expect(renderName('{{literal}} {n:2}', FACTS)).toBe('{literal} 07');
    expect(renderName('{n:2}', { ...FACTS, n: 123 })).toBe('123');
  });

  it('rejects unknown placeholders and broken braces with naming/invalid-template', () => {
    for (const t of [
      '{colour}',
      '{plan.notes}',
      '{n:0}',
      '{n:10}',
      '{n:x}',
      '{serial',
      'a}b',
      '',
      '   ',
      'a\nb',
      '{}',
    ]) {
      expect(
        codeOf(() => parseTemplate(t)),
        JSON.stringify(t),
      ).toBe('naming/invalid-template');
    }
    const r = inspectTemplate('iPad-{colour}');
    expect(r).toEqual({ problem: { reason: 'unknown-placeholder', offset: 5, placeholder: '{colour}' } });
  });

  it('a missing plan value is naming/missing-plan-field, never an empty name', () => {
    expect(codeOf(() => renderName('{plan.name}', { ...FACTS, plan: {} }))).toBe('naming/missing-plan-field');
    expect(codeOf(() => renderName('x-{plan.assetTag}', { serial: 'S', model: 'M', n: 1 }))).toBe(
      'naming/missing-plan-field',
    );
    expect(codeOf(() => renderName('{plan.name}', { ...FACTS, plan: { name: '  ' } }))).toBe(
      'naming/missing-plan-field',
    );
    let e: unknown;
    try {
      renderName('{plan.assetTag}', { ...FACTS, plan: { name: 'x' } });
    } catch (err) {
      e = err;
    }
    expect((e as KitError).details).toMatchObject({ field: 'plan.assetTag', serial: 'DMPXK1ABCD' });
    expect(usesPlan('{plan.name}-{n}')).toBe(true);
    expect(usesPlan('{serial}')).toBe(false);
  });

  it('caps names at 255 bytes of UTF-8 (Japanese characters are 3 bytes each)', () => {
    expect(renderName('あ'.repeat(85), FACTS)).toHaveLength(85); // 255 bytes
    expect(codeOf(() => renderName('あ'.repeat(86), FACTS))).toBe('naming/too-long');
    expect(codeOf(() => renderName('{plan.name}', { ...FACTS, plan: { name: 'x'.repeat(MAX_NAME_BYTES + 1) } }))).toBe(
      'naming/too-long',
    );
  });

  it('rejects a negative or fractional counter', () => {
    expect(codeOf(() => renderName('{n}', { ...FACTS, n: -1 }))).toBe('naming/invalid-template');
    expect(codeOf(() => renderName('{n}', { ...FACTS, n: 1.5 }))).toBe('naming/invalid-template');
  });
});

const textPart = fc.stringMatching(/^[A-Za-z0-9 ._\-ぁ-ん一-龯]{0,8}$/);
const placeholder = fc.oneof(
  fc.constantFrom('{serial}', '{model}', '{n}', '{plan.name}', '{plan.assetTag}'),
  fc.integer({ min: 1, max: 9 }).map((w) => `{n:${w}}`),
);
const template = fc
  .array(fc.tuple(textPart, placeholder), { minLength: 1, maxLength: 5 })
  .map((parts) => parts.map(([t, p]) => t + p).join(''));
const value = fc.stringMatching(/^[A-Za-z0-9ぁ-ん一-龯][A-Za-z0-9 ()ぁ-ん一-龯-]{0,10}$/);
const facts = fc.record({
  serial: fc.stringMatching(/^[A-Z0-9]{8,12}$/),
  model: value,
  n: fc.integer({ min: 0, max: 99_999 }),
  plan: fc.record({ name: value, assetTag: value }),
});

describe('naming templates (properties)', () => {
  it('no placeholder survives rendering', () => {
    fc.assert(
      fc.property(template, facts, (t, f) => {
        const name = renderName(t, f);
        expect(name).not.toMatch(/[{}]/);
        expect(name.length).toBeGreaterThan(0);
      }),
    );
  });

  it('counters are zero-padded to their width and keep their value', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 0, max: 10 ** 9 }), (w, n) => {
        const out = renderName(`#{n:${w}}#`, { serial: 'S', model: 'M', n });
        const digits = out.slice(1, -1);
        expect(digits).toMatch(/^\d+$/);
        expect(digits.length).toBe(Math.max(w, String(n).length));
        expect(Number(digits)).toBe(n);
      }),
    );
  });

  it('text outside placeholders is kept verbatim', () => {
    fc.assert(
      fc.property(textPart, textPart, (a, b) => {
        fc.pre((a + b).trim() !== '' && a === a.trimStart() && b === b.trimEnd());
        expect(renderName(`${a}{serial}${b}`, { serial: 'SER', model: 'M', n: 0 })).toBe(`${a}SER${b}`);
      }),
    );
  });
});
