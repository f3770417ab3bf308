/**
 * Device-name templates: `{serial}`, `{model}`, `{n}` (counter), `{n:3}` (counter zero-padded to 3
 * digits), `{plan.name}`, `{plan.assetTag}`; `{{` and `}}` write a literal brace. Anything else in
 * braces is an error, found when the blueprint is validated rather than when a device is named.
 *
 * Length: Apple documents no maximum for a device name (apple/device-management
 * `mdm/commands/settings.yaml` `DeviceName`: a plain string; lockdown's `DeviceName` likewise). The
 * station caps names at {@link MAX_NAME_BYTES} bytes of UTF-8, the common file-system/host-name
 * bound, so a name is never silently cut by a component that stores it. Bonjour announces the name
 * as a DNS-SD instance label, which holds at most 63 bytes (RFC 6763 §4.1.1): a longer name still
 * works but shows shortened on the network ({@link BONJOUR_LABEL_BYTES}, for UI hints).
 */
import { KitError } from '../errors.ts';

/** Hard cap on a rendered device name, in UTF-8 bytes (see the module doc). */
export const MAX_NAME_BYTES = 255;
/** Longest name Bonjour shows unshortened (DNS-SD instance label, RFC 6763 §4.1.1). */
export const BONJOUR_LABEL_BYTES = 63;
/** Widest zero padding `{n:W}` accepts. */
export const MAX_COUNTER_WIDTH = 9;

/** The placeholders a template may use (the counter also as `{n:W}`). */
export const PLACEHOLDERS = ['serial', 'model', 'n', 'plan.name', 'plan.assetTag'] as const;

/** One piece of a parsed template. */
export type TemplatePart =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'serial' }
  | { readonly kind: 'model' }
  | { readonly kind: 'counter'; readonly width: number }
  | { readonly kind: 'plan'; readonly field: 'name' | 'assetTag' };

/** Why a template is invalid, with the character offset where the problem starts. */
export interface TemplateProblem {
  readonly reason:
    'empty' | 'unknown-placeholder' | 'unclosed-brace' | 'stray-brace' | 'bad-width' | 'control-character';
  readonly offset: number;
  /** The placeholder text as written (for `unknown-placeholder` and `bad-width`). */
  readonly placeholder?: string;
}

/** The facts a name is rendered from. `n` is the blueprint's counter for this device. */
export interface NamingFacts {
  readonly serial: string;
  readonly model: string;
  readonly n: number;
  readonly plan?: { readonly name?: string | undefined; readonly assetTag?: string | undefined };
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
// eslint-disable-next-line no-control-regex
const CONTROL_ALL = /[\u0000-\u001f\u007f]/g;

function parsePlaceholder(body: string): TemplatePart | 'bad-width' | undefined {
  switch (body) {
    case 'serial':
      return { kind: 'serial' };
    case 'model':
      return { kind: 'model' };
    case 'n':
      return { kind: 'counter', width: 0 };
    case 'plan.name':
      return { kind: 'plan', field: 'name' };
    case 'plan.assetTag':
      return { kind: 'plan', field: 'assetTag' };
    default: {
      const m = /^n:(\d+)$/.exec(body);
      if (m === null) return undefined;
      const width = Number(m[1]);
      return width >= 1 && width <= MAX_COUNTER_WIDTH ? { kind: 'counter', width } : 'bad-width';
    }
  }
}

/** Parses a template, or says what is wrong with it (no exception). */
export function inspectTemplate(template: string): { parts: TemplatePart[] } | { problem: TemplateProblem } {
  if (template.trim() === '') return { problem: { reason: 'empty', offset: 0 } };
  const control = CONTROL.exec(template);
  if (control !== null) return { problem: { reason: 'control-character', offset: control.index } };
  const parts: TemplatePart[] = [];
  let text = '';
  let i = 0;
  while (i < template.length) {
    const c = template[i];
    if (c === '{' && template[i + 1] === '{') {
      text += '{';
      i += 2;
    } else if (c === '}' && template[i + 1] === '}') {
      text += '}';
      i += 2;
    } else if (c === '}') {
      return { problem: { reason: 'stray-brace', offset: i } };
    } else if (c === '{') {
      const close = template.indexOf('}', i + 1);
      const open = template.indexOf('{', i + 1);
      if (close < 0 || (open >= 0 && open < close)) return { problem: { reason: 'unclosed-brace', offset: i } };
      const body = template.slice(i + 1, close);
      const part = parsePlaceholder(body);
      if (part === undefined)
        return { problem: { reason: 'unknown-placeholder', offset: i, placeholder: `{${body}}` } };
      if (part === 'bad-width') return { problem: { reason: 'bad-width', offset: i, placeholder: `{${body}}` } };
      if (text !== '') parts.push({ kind: 'text', text });
      text = '';
      parts.push(part);
      i = close + 1;
    } else {
      text += c;
      i += 1;
    }
  }
  if (text !== '') parts.push({ kind: 'text', text });
  return { parts };
}

/**
 * Parses a template.
 * @throws KitError `naming/invalid-template` (details: `reason`, `offset`, `placeholder`).
 */
export function parseTemplate(template: string): TemplatePart[] {
  const r = inspectTemplate(template);
  if ('problem' in r) {
    const p = r.problem;
    const what = p.placeholder !== undefined ? ` ${p.placeholder}` : '';
    throw new KitError('naming/invalid-template', `device name template: ${p.reason}${what} at offset ${p.offset}`, {
      details: { reason: p.reason, offset: p.offset, placeholder: p.placeholder ?? null, template },
    });
  }
  return r.parts;
}

/** Byte length of `s` in UTF-8. */
export function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/**
 * Renders a device name. Plan values and device facts lose control characters; the result is
 * trimmed.
 * @throws KitError `naming/invalid-template` for a bad template or a bad counter;
 *   `naming/missing-plan-field` when the template uses `{plan.name}`/`{plan.assetTag}` and the plan
 *   has no (non-blank) value for it — never an empty or half name;
 *   `naming/too-long` when the name exceeds {@link MAX_NAME_BYTES} bytes of UTF-8, or is empty.
 */
export function renderName(template: string | readonly TemplatePart[], facts: NamingFacts): string {
  const parts = typeof template === 'string' ? parseTemplate(template) : template;
  if (!Number.isSafeInteger(facts.n) || facts.n < 0) {
    throw new KitError(
      'naming/invalid-template',
      `the device counter must be a non-negative integer, got ${String(facts.n)}`,
      {
        details: { n: String(facts.n) },
      },
    );
  }
  const clean = (s: string): string => s.replace(CONTROL_ALL, '');
  let out = '';
  for (const part of parts) {
    switch (part.kind) {
      case 'text':
        out += part.text;
        break;
      case 'serial':
        out += clean(facts.serial);
        break;
      case 'model':
        out += clean(facts.model);
        break;
      case 'counter':
        out += String(facts.n).padStart(part.width, '0');
        break;
      case 'plan': {
        const value = facts.plan?.[part.field];
        if (value === undefined || clean(value).trim() === '') {
          throw new KitError('naming/missing-plan-field', `the plan has no ${part.field} for serial ${facts.serial}`, {
            details: { field: part.field === 'name' ? 'plan.name' : 'plan.assetTag', serial: facts.serial },
          });
        }
        out += clean(value).trim();
        break;
      }
    }
  }
  const name = out.trim();
  const bytes = utf8Length(name);
  if (bytes === 0 || bytes > MAX_NAME_BYTES) {
    throw new KitError('naming/too-long', `device name is ${bytes} bytes of UTF-8 (allowed 1–${MAX_NAME_BYTES})`, {
      details: { bytes, max: MAX_NAME_BYTES },
    });
  }
  return name;
}

/** Whether a template uses a plan field (so the UI can warn when no plan is loaded). */
export function usesPlan(template: string): boolean {
  const r = inspectTemplate(template);
  return 'parts' in r && r.parts.some((p) => p.kind === 'plan');
}
