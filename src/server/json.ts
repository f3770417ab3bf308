/**
 * JSON for the wire (src/server/README.md): BigInt values as decimal strings, bytes (Buffer,
 * Uint8Array) as base64, as the CLI's `--json` output does.
 */

function replacer(this: unknown, key: string, value: unknown): unknown {
  // JSON.stringify calls Buffer#toJSON before the replacer: look at the holder's original value.
  const original: unknown = (this as Record<string, unknown>)[key];
  if (original instanceof Uint8Array) return Buffer.from(original).toString('base64');
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/** Serializes a wire message (one line, no indentation). */
export function toWireJson(value: unknown): string {
  return JSON.stringify(value, replacer);
}
