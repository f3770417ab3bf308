/**
 * Structured logging: one JSON object per line with `time`, `level`, `module`, `msg`, optional
 * `udid` and any fields. Secrets never reach a line: fields whose name looks secret are replaced,
 * and PEM private keys, bearer tokens and basic-auth headers inside any string are masked.
 *
 * Level from `KITTING_LOG` (`debug` | `info` | `warn` | `error` | `silent`, default `warn`), sink
 * stderr by default; tests and the station can install their own sink with {@link setLogSink}.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface LogRecord {
  time: string;
  level: LogLevel;
  module: string;
  msg: string;
  udid?: string;
  [field: string]: unknown;
}

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger with the same module and extra fields on every line (for example `{ udid }`). */
  child(fields: LogFields): Logger;
}

const RANK: Record<LogLevel | 'silent', number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

/** Field names whose values are never logged. */
const SECRET_KEY =
  /pass(word|phrase|wd)?$|secret|token|private.?key|^key$|credential|authorization|cookie|escrow|p12|pfx/i;
const PEM_PRIVATE = /-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]*?(-----END \1PRIVATE KEY-----|$)/g;
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/g;
const TOKEN_PARAM = /([?&](token|password|passphrase)=)[^&\s"]+/gi;

export const REDACTED = '[redacted]';

/** Masks secrets inside a string (PEM private keys, bearer/basic credentials, token query params). */
export function redactString(s: string): string {
  return s
    .replace(PEM_PRIVATE, `-----BEGIN $1PRIVATE KEY----- ${REDACTED}`)
    .replace(BEARER, `$1 ${REDACTED}`)
    .replace(TOKEN_PARAM, `$1${REDACTED}`);
}

/** Deep copy of `value` with secret-named fields replaced and secret-looking strings masked. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 8) return '[depth]';
  if (typeof value === 'string') return redactString(value);
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array) return `[${value.length} bytes]`;
  if (value instanceof Error) {
    const e = value as Error & { code?: unknown };
    return { name: e.name, message: redactString(e.message), ...(e.code !== undefined ? { code: e.code } : {}) };
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = SECRET_KEY.test(k) && v !== undefined && v !== null && v !== false ? REDACTED : redact(v, depth + 1);
    }
    return out;
  }
  return value;
}

export type LogSink = (record: LogRecord) => void;

const stderrSink: LogSink = (record) => {
  process.stderr.write(`${JSON.stringify(record)}\n`);
};

let sink: LogSink = stderrSink;
let threshold = RANK[parseLevel(process.env.KITTING_LOG)];

function parseLevel(v: string | undefined): LogLevel | 'silent' {
  return v === 'debug' || v === 'info' || v === 'warn' || v === 'error' || v === 'silent' ? v : 'warn';
}

/** Replaces where log records go (returns the previous sink so it can be restored). */
export function setLogSink(next: LogSink): LogSink {
  const prev = sink;
  sink = next;
  return prev;
}

/** Sets the lowest level written. */
export function setLogLevel(level: LogLevel | 'silent'): void {
  threshold = RANK[level];
}

/** A logger for one module (`device/lockdown`, `kitting/runner`, …). */
export function createLogger(module: string, base: LogFields = {}): Logger {
  const write = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (RANK[level] < threshold) return;
    const merged = redact({ ...base, ...fields }) as LogFields;
    sink({ time: new Date().toISOString(), level, module, msg: redactString(msg), ...merged });
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (fields) => createLogger(module, { ...base, ...fields }),
  };
}
