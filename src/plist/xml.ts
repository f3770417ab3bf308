/**
 * XML property lists: a hand-written scanner over the decoded text (no DOM), and a writer that
 * produces Apple's layout (tab indentation, `<data>` wrapped on its own lines).
 */
import { isUtf8 } from 'node:buffer';
import { KitError } from '../errors.ts';
import {
  DEFAULT_MAX_DEPTH,
  INT_MAX,
  INT_MIN,
  PlistReal,
  PlistUid,
  describeJs,
  isPlistDict,
  maxObjectsFor,
  setKey,
  unsupportedAt,
  type DecodeOptions,
  type PlistDict,
  type PlistValue,
} from './types.ts';

// Character codes.
const LT = 0x3c;
const GT = 0x3e;
const SLASH = 0x2f;
const BANG = 0x21;
const QMARK = 0x3f;

const MIN_SAFE_BIG = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);

const INTEGER_RE = /^[+-]?\d+$/;
const REAL_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const DATE_RE = /^(\d{1,4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?Z$/;
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const WS_RE = /[ \t\r\n]+/g;

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
}

function isNameChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2d ||
    c === 0x5f ||
    c === 0x3a ||
    c === 0x2e
  );
}

/** Line and column (1-based) of a UTF-16 index in `src`. */
function locate(src: string, pos: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(pos, src.length);
  for (let i = src.indexOf('\n'); i !== -1 && i < end; i = src.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: end - lineStart + 1 };
}

function malformedXml(src: string, pos: number, message: string): KitError {
  const { line, column } = locate(src, pos);
  return new KitError('plist/malformed', `XML plist: ${message} (line ${line}, column ${column})`, {
    details: { line, column },
  });
}

/** The byte offset of the first invalid UTF-8 sequence in `b` (b is known to be invalid). */
function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i] as number;
    let n: number;
    let min: number;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      min = 0x10000;
    } else return i;
    let cp = c & (0x3f >> n);
    for (let k = 1; k <= n; k++) {
      const d = b[i + k];
      if (d === undefined || (d & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return b.length;
}

function textOf(bytes: Uint8Array | string): string {
  if (typeof bytes === 'string') return bytes.charCodeAt(0) === 0xfeff ? bytes.slice(1) : bytes;
  const b0 = bytes[0];
  const b1 = bytes[1];
  if ((b0 === 0xfe && b1 === 0xff) || (b0 === 0xff && b1 === 0xfe)) {
    try {
      return new TextDecoder(b0 === 0xfe ? 'utf-16be' : 'utf-16le', { fatal: true }).decode(bytes);
    } catch {
      throw new KitError('plist/malformed', 'XML plist: invalid UTF-16 text (line 1, column 1)', {
        details: { line: 1, column: 1 },
      });
    }
  }
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!isUtf8(buf)) {
    const at = firstInvalidUtf8(buf);
    const before = buf.toString('utf8', 0, at);
    const { line, column } = locate(before, before.length);
    throw new KitError('plist/malformed', `XML plist: invalid UTF-8 at byte ${at} (line ${line}, column ${column})`, {
      details: { line, column, offset: at },
    });
  }
  const start = b0 === 0xef && b1 === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  return buf.toString('utf8', start);
}

const NAMED_ENTITIES: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

class XmlReader {
  readonly src: string;
  readonly maxDepth: number;
  readonly realsAsObjects: boolean;
  budget: number;
  pos = 0;

  constructor(src: string, options: DecodeOptions | undefined) {
    this.src = src;
    this.maxDepth = options?.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.realsAsObjects = options?.realsAsObjects === true;
    this.budget = maxObjectsFor(options, src.length);
  }

  fail(pos: number, message: string): KitError {
    return malformedXml(this.src, pos, message);
  }

  /** Skips `<!-- … -->` at pos. */
  skipComment(): void {
    const end = this.src.indexOf('-->', this.pos + 4);
    if (end === -1) throw this.fail(this.pos, 'unclosed comment');
    this.pos = end + 3;
  }

  skipPi(): void {
    const end = this.src.indexOf('?>', this.pos + 2);
    if (end === -1) throw this.fail(this.pos, 'unclosed processing instruction');
    this.pos = end + 2;
  }

  skipDoctype(): void {
    // <!DOCTYPE name PUBLIC "…" "…" [internal subset]>
    const src = this.src;
    let i = this.pos + 9;
    let bracket = 0;
    while (i < src.length) {
      const c = src.charCodeAt(i);
      if (c === 0x22 || c === 0x27) {
        const close = src.indexOf(c === 0x22 ? '"' : "'", i + 1);
        if (close === -1) break;
        i = close + 1;
        continue;
      }
      if (c === 0x5b) bracket++;
      else if (c === 0x5d) bracket--;
      else if (c === GT && bracket <= 0) {
        this.pos = i + 1;
        return;
      }
      i++;
    }
    throw this.fail(this.pos, 'unclosed DOCTYPE');
  }

  /** Skips whitespace, comments and processing instructions (and a DOCTYPE when allowed). */
  skipMisc(allowDoctype: boolean): void {
    const src = this.src;
    for (;;) {
      let c = src.charCodeAt(this.pos);
      while (isWs(c)) c = src.charCodeAt(++this.pos);
      if (c !== LT) return;
      const d = src.charCodeAt(this.pos + 1);
      if (d === BANG) {
        if (src.startsWith('<!--', this.pos)) this.skipComment();
        else if (allowDoctype && src.startsWith('<!DOCTYPE', this.pos)) this.skipDoctype();
        else return;
      } else if (d === QMARK) this.skipPi();
      else return;
    }
  }

  /**
   * Reads a start tag at pos (which is '<'): returns its name and whether it is self-closing; pos
   * ends after '>'.
   */
  startTag(): { name: string; empty: boolean; at: number } {
    const src = this.src;
    const at = this.pos;
    let i = at + 1;
    while (isNameChar(src.charCodeAt(i))) i++;
    if (i === at + 1) throw this.fail(at, 'expected an element');
    const name = src.slice(at + 1, i);
    for (;;) {
      let c = src.charCodeAt(i);
      while (isWs(c)) c = src.charCodeAt(++i);
      if (c === GT) {
        this.pos = i + 1;
        return { name, empty: false, at };
      }
      if (c === SLASH) {
        if (src.charCodeAt(i + 1) !== GT) throw this.fail(i, `expected "/>" in <${name}>`);
        this.pos = i + 2;
        return { name, empty: true, at };
      }
      // An attribute: name = "value"
      const nameStart = i;
      while (isNameChar(src.charCodeAt(i))) i++;
      if (i === nameStart) {
        if (i >= src.length) throw this.fail(at, `unclosed tag <${name}>`);
        throw this.fail(i, `unexpected character ${JSON.stringify(src[i])} in <${name}>`);
      }
      while (isWs(src.charCodeAt(i))) i++;
      if (src.charCodeAt(i) !== 0x3d) throw this.fail(i, `expected "=" after attribute in <${name}>`);
      i++;
      while (isWs(src.charCodeAt(i))) i++;
      const q = src.charCodeAt(i);
      if (q !== 0x22 && q !== 0x27) throw this.fail(i, `expected a quoted attribute value in <${name}>`);
      const close = src.indexOf(q === 0x22 ? '"' : "'", i + 1);
      if (close === -1) throw this.fail(at, `unclosed tag <${name}>`);
      i = close + 1;
    }
  }

  /** Reads `</name>` at pos. */
  endTag(name: string, openAt: number): void {
    const src = this.src;
    const at = this.pos;
    if (src.charCodeAt(at) !== LT || src.charCodeAt(at + 1) !== SLASH) {
      if (at >= src.length) throw this.fail(openAt, `unclosed tag <${name}>`);
      throw this.fail(at, `expected </${name}>`);
    }
    // Fast path: exact match.
    if (src.startsWith(name, at + 2) && src.charCodeAt(at + 2 + name.length) === GT) {
      this.pos = at + 3 + name.length;
      return;
    }
    let i = at + 2;
    while (isNameChar(src.charCodeAt(i))) i++;
    const found = src.slice(at + 2, i);
    while (isWs(src.charCodeAt(i))) i++;
    if (found !== name) throw this.fail(at, `mismatched tag: </${found}> closes <${name}>`);
    if (src.charCodeAt(i) !== GT) throw this.fail(i, `expected ">" in </${name}>`);
    this.pos = i + 1;
  }

  /** Character data up to the end tag (entities, CDATA sections and comments handled); pos stays at '</'. */
  text(name: string, openAt: number): string {
    const src = this.src;
    let out = '';
    for (;;) {
      const lt = src.indexOf('<', this.pos);
      if (lt === -1) throw this.fail(openAt, `unclosed tag <${name}>`);
      let seg = src.slice(this.pos, lt);
      if (seg.indexOf('&') !== -1) seg = this.entities(seg, this.pos);
      out = out === '' ? seg : out + seg;
      this.pos = lt;
      const d = src.charCodeAt(lt + 1);
      if (d === SLASH) return out;
      if (d === BANG && src.startsWith('<![CDATA[', lt)) {
        const end = src.indexOf(']]>', lt + 9);
        if (end === -1) throw this.fail(lt, 'unclosed CDATA section');
        out += src.slice(lt + 9, end);
        this.pos = end + 3;
      } else if (d === BANG && src.startsWith('<!--', lt)) this.skipComment();
      else if (d === QMARK) this.skipPi();
      else throw this.fail(lt, `unexpected element inside <${name}>`);
    }
  }

  entities(seg: string, base: number): string {
    let out = '';
    let last = 0;
    for (let amp = seg.indexOf('&'); amp !== -1; amp = seg.indexOf('&', last)) {
      out += seg.slice(last, amp);
      const semi = seg.indexOf(';', amp + 1);
      if (semi === -1 || semi - amp > 12)
        throw this.fail(base + amp, 'unterminated entity reference ("&" must be written "&amp;")');
      const ref = seg.slice(amp + 1, semi);
      if (ref.charCodeAt(0) === 0x23) {
        const hex = ref.charCodeAt(1) === 0x78 || ref.charCodeAt(1) === 0x58;
        const digits = ref.slice(hex ? 2 : 1);
        const cp =
          digits !== '' && (hex ? /^[0-9a-fA-F]+$/ : /^\d+$/).test(digits) ? parseInt(digits, hex ? 16 : 10) : NaN;
        if (!(cp >= 0 && cp <= 0x10ffff) || (cp >= 0xd800 && cp <= 0xdfff)) {
          throw this.fail(base + amp, `invalid character reference &${ref};`);
        }
        out += String.fromCodePoint(cp);
      } else {
        const named = NAMED_ENTITIES[ref];
        if (named === undefined) throw this.fail(base + amp, `unknown entity &${ref};`);
        out += named;
      }
      last = semi + 1;
    }
    return out + seg.slice(last);
  }

  /** Skips whitespace and comments between elements; anything else that is not markup is an error. */
  between(): void {
    const src = this.src;
    for (;;) {
      let c = src.charCodeAt(this.pos);
      while (isWs(c)) c = src.charCodeAt(++this.pos);
      if (c !== LT) {
        if (this.pos >= src.length) return;
        throw this.fail(this.pos, 'unexpected text between elements');
      }
      const d = src.charCodeAt(this.pos + 1);
      if (d === BANG && src.startsWith('<!--', this.pos)) this.skipComment();
      else if (d === QMARK) this.skipPi();
      else return;
    }
  }

  document(): PlistValue {
    const src = this.src;
    this.skipMisc(true);
    if (this.pos >= src.length) throw this.fail(this.pos, src.trim() === '' ? 'empty document' : 'no root element');
    if (src.charCodeAt(this.pos) !== LT) throw this.fail(this.pos, 'not an XML property list');
    let value: PlistValue;
    if (src.startsWith('<plist', this.pos) && !isNameChar(src.charCodeAt(this.pos + 6))) {
      const tag = this.startTag();
      if (tag.empty) throw this.fail(tag.at, 'empty <plist/>');
      this.between();
      if (src.startsWith('</', this.pos)) throw this.fail(this.pos, '<plist> holds no value');
      if (this.pos >= src.length) throw this.fail(tag.at, 'unclosed tag <plist>');
      value = this.value(0);
      this.between();
      this.endTag('plist', tag.at);
    } else value = this.value(0);
    this.skipMisc(false);
    if (this.pos < src.length) throw this.fail(this.pos, 'content after the root element');
    return value;
  }

  /** One value element at pos ('<'). */
  value(depth: number): PlistValue {
    if (--this.budget < 0) throw this.fail(this.pos, 'too many objects (raise maxObjects if this input is trusted)');
    const src = this.src;
    if (src.charCodeAt(this.pos) !== LT) throw this.fail(this.pos, 'expected a value element');
    if (src.charCodeAt(this.pos + 1) === SLASH) throw this.fail(this.pos, 'expected a value element, found an end tag');
    const tag = this.startTag();
    const name = tag.name;
    switch (name) {
      case 'string':
        if (tag.empty) return '';
        return this.closeWith(this.text(name, tag.at), name, tag.at);
      case 'dict':
        return this.dict(tag.empty, tag.at, depth);
      case 'array':
        return this.array(tag.empty, tag.at, depth);
      case 'integer': {
        if (tag.empty) throw this.fail(tag.at, 'empty <integer/>');
        const bodyAt = this.pos;
        const t = this.text(name, tag.at).trim();
        this.endTag(name, tag.at);
        return this.integer(t, bodyAt);
      }
      case 'real': {
        if (tag.empty) throw this.fail(tag.at, 'empty <real/>');
        const bodyAt = this.pos;
        const t = this.text(name, tag.at).trim();
        this.endTag(name, tag.at);
        const v = parseReal(t);
        if (v === undefined) throw this.fail(bodyAt, `invalid real ${JSON.stringify(t)}`);
        return this.realsAsObjects ? new PlistReal(v) : v;
      }
      case 'true':
      case 'false':
        if (!tag.empty) {
          this.between();
          this.endTag(name, tag.at);
        }
        return name === 'true';
      case 'data': {
        if (tag.empty) return Buffer.alloc(0);
        const bodyAt = this.pos;
        const t = this.text(name, tag.at);
        this.endTag(name, tag.at);
        const b64 = t.replace(WS_RE, '');
        if (!BASE64_RE.test(b64) || b64.length % 4 === 1 || (b64.includes('=') && b64.length % 4 !== 0)) {
          throw this.fail(bodyAt, 'invalid base64 in <data>');
        }
        return Buffer.from(b64, 'base64');
      }
      case 'date': {
        if (tag.empty) throw this.fail(tag.at, 'empty <date/>');
        const bodyAt = this.pos;
        const t = this.text(name, tag.at).trim();
        this.endTag(name, tag.at);
        const d = parseDate(t);
        if (d === undefined)
          throw this.fail(bodyAt, `invalid date ${JSON.stringify(t)} (expected YYYY-MM-DDTHH:MM:SSZ)`);
        return d;
      }
      case 'key':
        throw this.fail(tag.at, '<key> outside a <dict>');
      default:
        throw this.fail(tag.at, `unknown tag <${name}>`);
    }
  }

  closeWith<T>(v: T, name: string, openAt: number): T {
    this.endTag(name, openAt);
    return v;
  }

  integer(t: string, at: number): number | bigint {
    if (t.length <= 16 && INTEGER_RE.test(t)) return parseInt(t, 10) + 0; // + 0 turns -0 into 0
    if (!INTEGER_RE.test(t)) throw this.fail(at, `invalid integer ${JSON.stringify(t)}`);
    const v = BigInt(t);
    if (v < INT_MIN || v > INT_MAX) throw this.fail(at, `integer ${t} is outside the signed 128-bit range`);
    return v >= MIN_SAFE_BIG && v <= MAX_SAFE_BIG ? Number(v) : v;
  }

  dict(empty: boolean, openAt: number, depth: number): PlistDict {
    if (depth >= this.maxDepth) throw this.fail(openAt, `nesting deeper than ${this.maxDepth}`);
    const out: PlistDict = {};
    if (empty) return out;
    const src = this.src;
    for (;;) {
      this.between();
      if (src.charCodeAt(this.pos + 1) === SLASH || this.pos >= src.length) {
        this.endTag('dict', openAt);
        return out;
      }
      // <key>…</key>
      const keyAt = this.pos;
      let key: string;
      if (src.startsWith('<key>', keyAt)) {
        this.pos = keyAt + 5;
        key = this.text('key', keyAt);
        this.endTag('key', keyAt);
      } else {
        const tag = this.startTag();
        if (tag.name !== 'key') throw this.fail(keyAt, `expected <key> in <dict>, found <${tag.name}>`);
        key = tag.empty ? '' : this.closeWith(this.text('key', keyAt), 'key', keyAt);
      }
      this.between();
      if (this.pos >= src.length) throw this.fail(openAt, 'unclosed tag <dict>');
      if (src.charCodeAt(this.pos + 1) === SLASH) throw this.fail(this.pos, `<key>${key}</key> has no value`);
      setKey(out, key, this.value(depth + 1));
    }
  }

  array(empty: boolean, openAt: number, depth: number): PlistValue[] {
    if (depth >= this.maxDepth) throw this.fail(openAt, `nesting deeper than ${this.maxDepth}`);
    const out: PlistValue[] = [];
    if (empty) return out;
    const src = this.src;
    for (;;) {
      this.between();
      if (src.charCodeAt(this.pos + 1) === SLASH || this.pos >= src.length) {
        this.endTag('array', openAt);
        return out;
      }
      out.push(this.value(depth + 1));
    }
  }
}

function parseReal(t: string): number | undefined {
  if (REAL_RE.test(t)) return Number(t);
  const l = t.toLowerCase();
  if (l === 'nan' || l === '+nan' || l === '-nan') return NaN;
  if (l === 'inf' || l === '+inf' || l === 'infinity' || l === '+infinity') return Infinity;
  if (l === '-inf' || l === '-infinity') return -Infinity;
  return undefined;
}

function parseDate(t: string): Date | undefined {
  const m = DATE_RE.exec(t);
  if (m === null) return undefined;
  const [, ys, mos, ds, hs, mis, ss, frac] = m;
  const y = Number(ys);
  const mo = Number(mos);
  const d = Number(ds);
  const h = Number(hs);
  const mi = Number(mis);
  const s = Number(ss);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) return undefined;
  const ms = frac === undefined ? 0 : Math.round(Number(`0.${frac}`) * 1000);
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, s, 0);
  if (date.getUTCDate() !== d) return undefined;
  return ms === 0 ? date : new Date(date.getTime() + ms);
}

/**
 * Decodes an XML property list (bytes in UTF-8, or UTF-16 with a BOM; or an already decoded string).
 *
 * Accepts the XML declaration, DOCTYPE, comments, processing instructions, CDATA sections, the five
 * named entities and numeric character references, attributes on any element, `<key/>`/`<string/>`,
 * `<data>` base64 with whitespace, `<integer>` with a sign, `<real>` including nan/±infinity, dates
 * `YYYY-MM-DDTHH:MM:SS[.fff]Z`, and a root value without the `<plist>` wrapper.
 *
 * @throws KitError `plist/malformed` with `details.line`/`details.column` (1-based) for anything
 *   else: invalid UTF-8, unknown/unclosed/mismatched tags, bad base64/dates/numbers, integers outside
 *   signed 128-bit, nesting beyond `maxDepth`, more than `maxObjects` values.
 */
export function decodeXml(bytes: Uint8Array | string, options?: DecodeOptions): PlistValue {
  return new XmlReader(textOf(bytes), options).document();
}

// ---------------------------------------------------------------------------------------------
// Encoder

const XML_HEAD =
  '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n<plist version="1.0">\n';
const ESCAPE_RE = /[&<>\r]/;
const ESCAPE_ALL_RE = /[&<>\r]/g;
const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '\r': '&#13;' };
const LONE_SURROGATE_RE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function escapeText(s: string): string {
  return ESCAPE_RE.test(s) ? s.replace(ESCAPE_ALL_RE, (c) => ESCAPES[c] as string) : s;
}

/** A real the way Apple and libplist write it: shortest round-trip digits, nan, ±infinity. */
function formatReal(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (v === Infinity) return '+infinity';
  if (v === -Infinity) return '-infinity';
  if (Object.is(v, -0)) return '-0.0';
  return String(v);
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

const TABS: string[] = [''];
function tabs(n: number): string {
  while (TABS.length <= n) TABS.push(`${TABS[TABS.length - 1] as string}\t`);
  return TABS[n] as string;
}

class XmlWriter {
  out = '';
  readonly active = new Set<object>();
  readonly path: (string | number)[] = [];
  readonly maxDepth = DEFAULT_MAX_DEPTH;

  pathText(): string {
    let s = '$';
    for (const p of this.path)
      s += typeof p === 'number' ? `[${p}]` : /^[A-Za-z_$][\w$]*$/.test(p) ? `.${p}` : `[${JSON.stringify(p)}]`;
    return s;
  }

  str(s: string): string {
    if (LONE_SURROGATE_RE.test(s)) throw unsupportedAt(this.pathText(), 'string holds an unpaired UTF-16 surrogate');
    return escapeText(s);
  }

  integer(v: bigint): string {
    if (v < INT_MIN || v > INT_MAX)
      throw unsupportedAt(this.pathText(), `integer ${v} is outside the signed 128-bit range`);
    return v.toString();
  }

  value(v: unknown, depth: number): void {
    const ind = tabs(depth);
    switch (typeof v) {
      case 'string':
        this.out += v === '' ? `${ind}<string></string>\n` : `${ind}<string>${this.str(v)}</string>\n`;
        return;
      case 'number':
        if (Number.isSafeInteger(v)) this.out += `${ind}<integer>${v}</integer>\n`;
        else if (Number.isInteger(v) && v >= -9223372036854775808 && v < 18446744073709551616)
          this.out += `${ind}<integer>${BigInt(v)}</integer>\n`;
        else this.out += `${ind}<real>${formatReal(v)}</real>\n`;
        return;
      case 'bigint':
        this.out += `${ind}<integer>${this.integer(v)}</integer>\n`;
        return;
      case 'boolean':
        this.out += v ? `${ind}<true/>\n` : `${ind}<false/>\n`;
        return;
      case 'object': {
        if (v === null) throw unsupportedAt(this.pathText(), 'null has no plist form');
        if (v instanceof Uint8Array) {
          this.data(v, depth);
          return;
        }
        if (v instanceof Date) {
          this.out += `${ind}<date>${this.date(v)}</date>\n`;
          return;
        }
        if (v instanceof PlistReal) {
          this.out += `${ind}<real>${formatReal(v.value)}</real>\n`;
          return;
        }
        if (v instanceof PlistUid) {
          this.out += `${ind}<dict>\n${ind}\t<key>CF$UID</key>\n${ind}\t<integer>${v.value}</integer>\n${ind}</dict>\n`;
          return;
        }
        if (Array.isArray(v)) {
          if (v.length === 0) {
            this.out += `${ind}<array/>\n`;
            return;
          }
          this.enter(v, depth);
          this.out += `${ind}<array>\n`;
          for (let k = 0; k < v.length; k++) {
            this.path.push(k);
            this.value(v[k], depth + 1);
            this.path.pop();
          }
          this.out += `${ind}</array>\n`;
          this.active.delete(v);
          return;
        }
        if (isPlistDict(v)) {
          const keys = Object.keys(v);
          if (keys.length === 0) {
            this.out += `${ind}<dict/>\n`;
            return;
          }
          this.enter(v, depth);
          this.out += `${ind}<dict>\n`;
          const kind = `${ind}\t<key>`;
          for (const key of keys) {
            this.path.push(key);
            this.out += `${kind}${this.str(key)}</key>\n`;
            this.value(v[key], depth + 1);
            this.path.pop();
          }
          this.out += `${ind}</dict>\n`;
          this.active.delete(v);
          return;
        }
        throw unsupportedAt(this.pathText(), `${describeJs(v)} has no plist form`);
      }
      default:
        throw unsupportedAt(this.pathText(), `${describeJs(v)} has no plist form`);
    }
  }

  enter(v: object, depth: number): void {
    if (this.active.has(v)) throw unsupportedAt(this.pathText(), 'reference cycle (a container contains itself)');
    if (depth >= this.maxDepth) throw unsupportedAt(this.pathText(), `nesting deeper than ${this.maxDepth}`);
    this.active.add(v);
  }

  date(d: Date): string {
    const t = d.getTime();
    if (Number.isNaN(t)) throw unsupportedAt(this.pathText(), 'invalid Date');
    const y = d.getUTCFullYear();
    if (y < 0 || y > 9999) throw unsupportedAt(this.pathText(), `year ${y} cannot be written as an XML plist date`);
    return `${pad(y, 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}T${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}Z`;
  }

  data(v: Uint8Array, depth: number): void {
    const ind = tabs(depth);
    const b64 = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
    if (b64.length === 0) {
      this.out += `${ind}<data>\n${ind}</data>\n`;
      return;
    }
    // Apple's layout: the base64 on its own lines, narrower the deeper the element.
    const width = Math.max(16, 76 - 8 * Math.max(depth, 1)) & ~3;
    let s = `${ind}<data>\n`;
    for (let i = 0; i < b64.length; i += width) s += `${ind}${b64.slice(i, i + width)}\n`;
    this.out += `${s}${ind}</data>\n`;
  }
}

/**
 * Encodes a value as a complete XML property list document (XML declaration, Apple DOCTYPE,
 * `<plist version="1.0">`, tab indentation as Apple and libplist write it), in UTF-8.
 *
 * Integer numbers and bigints → `<integer>` (integral numbers beyond 64 bits → `<real>`);
 * non-integral numbers, NaN (`nan`), ±Infinity (`+infinity`/`-infinity`) and {@link PlistReal} →
 * `<real>`; Dates → `<date>` in whole seconds (UTC, floored); Buffers and other Uint8Arrays →
 * `<data>`; {@link PlistUid} → Apple's `CF$UID` dict. Text escapes `&`, `<`, `>` and CR (as `&#13;`,
 * which XML parsers do not normalize away); other control characters are written as they are, as
 * Apple and libplist do.
 *
 * @throws KitError `plist/unsupported` (with `details.path`) for values with no plist form
 *   (undefined, null, functions, symbols, Map, class instances, invalid Dates, years outside
 *   0…9999), strings with lone surrogates, bigints outside signed 128-bit, reference cycles and
 *   nesting deeper than 512.
 */
export function encodeXml(value: PlistValue): Buffer {
  const w = new XmlWriter();
  w.out = XML_HEAD;
  w.value(value, 0);
  return Buffer.from(`${w.out}</plist>\n`, 'utf8');
}
