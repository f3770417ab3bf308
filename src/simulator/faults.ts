/**
 * Misbehaviour a virtual device can be told to show on its lockdown and service connections.
 *
 * Specs (`sim-ctl fault UDID SPEC`):
 * - `disconnect-after=<Request>`: drop the connection after receiving that request (no reply).
 * - `disconnect-after-bytes=N`: reset the connection once N reply bytes were written (mid-frame).
 * - `delay-ms=N`: delay every reply by N ms.
 * - `error=<Request>:<Code>`: answer that request with `Error: <Code>` (lockdown) or a failure status.
 * - `oversize-frame`: answer with a length prefix of 0x7fffffff.
 * - `garbage`: answer with a correctly framed payload that is not a plist.
 * - `clear`: remove every fault.
 *
 * A fault stays until `clear` unless it was added with `once`, then it fires a single time.
 * `<Request>` matches the `Request`, `RequestType` or `Command` of a message.
 */
import { KitError } from '../errors.ts';

/** One fault. */
export type Fault =
  | { kind: 'disconnect-after'; request: string; once: boolean }
  | { kind: 'disconnect-after-bytes'; bytes: number; once: boolean }
  | { kind: 'delay-ms'; ms: number; once: boolean }
  | { kind: 'error'; request: string; code: string; once: boolean }
  | { kind: 'oversize-frame'; once: boolean }
  | { kind: 'garbage'; once: boolean };

/** A parsed spec: one fault, or `clear`. */
export type FaultSpec = Fault | { kind: 'clear' };

function nonNegativeInt(text: string, spec: string): number {
  if (!/^\d+$/.test(text))
    throw new KitError('usage/invalid-argument', `fault ${spec}: "${text}" is not a non-negative integer`);
  return Number(text);
}

/** Parses a fault spec string; throws `usage/invalid-argument` on anything else. */
export function parseFaultSpec(spec: string, once = false): FaultSpec {
  const s = spec.trim();
  const eq = s.indexOf('=');
  const name = eq < 0 ? s : s.slice(0, eq);
  const arg = eq < 0 ? '' : s.slice(eq + 1);
  switch (name) {
    case 'clear':
      return { kind: 'clear' };
    case 'oversize-frame':
      return { kind: 'oversize-frame', once };
    case 'garbage':
      return { kind: 'garbage', once };
    case 'disconnect-after':
      if (arg === '') break;
      return { kind: 'disconnect-after', request: arg, once };
    case 'disconnect-after-bytes':
      return { kind: 'disconnect-after-bytes', bytes: nonNegativeInt(arg, s), once };
    case 'delay-ms':
      return { kind: 'delay-ms', ms: nonNegativeInt(arg, s), once };
    case 'error': {
      const colon = arg.indexOf(':');
      if (colon <= 0 || colon === arg.length - 1) break;
      return { kind: 'error', request: arg.slice(0, colon), code: arg.slice(colon + 1), once };
    }
    default:
      break;
  }
  throw new KitError(
    'usage/invalid-argument',
    `unknown fault spec "${spec}" (disconnect-after=REQ, disconnect-after-bytes=N, delay-ms=N, error=REQ:CODE, oversize-frame, garbage, clear)`,
  );
}

/** The spec string of a fault (inverse of {@link parseFaultSpec}, without `once`). */
export function formatFault(f: Fault): string {
  switch (f.kind) {
    case 'disconnect-after':
      return `disconnect-after=${f.request}`;
    case 'disconnect-after-bytes':
      return `disconnect-after-bytes=${f.bytes}`;
    case 'delay-ms':
      return `delay-ms=${f.ms}`;
    case 'error':
      return `error=${f.request}:${f.code}`;
    case 'oversize-frame':
      return 'oversize-frame';
    case 'garbage':
      return 'garbage';
  }
}

/** The set of active faults of one device. Adding a fault of a kind already present replaces it. */
export class FaultSet {
  private faults: Fault[] = [];

  /** Applies a spec (`clear` empties the set). */
  apply(spec: FaultSpec): void {
    if (spec.kind === 'clear') {
      this.faults = [];
      return;
    }
    this.faults = this.faults.filter((f) => f.kind !== spec.kind);
    this.faults.push(spec);
  }

  /** The active faults, as spec strings. */
  list(): string[] {
    return this.faults.map((f) => (f.once ? `${formatFault(f)} (once)` : formatFault(f)));
  }

  /** The active fault of a kind (consumed when `once`), or undefined. */
  take<K extends Fault['kind']>(
    kind: K,
    match?: (f: Extract<Fault, { kind: K }>) => boolean,
  ): Extract<Fault, { kind: K }> | undefined {
    const f = this.faults.find(
      (x): x is Extract<Fault, { kind: K }> =>
        x.kind === kind && (match === undefined || match(x as Extract<Fault, { kind: K }>)),
    );
    if (f !== undefined && f.once) this.faults = this.faults.filter((x) => x !== f);
    return f;
  }
}
