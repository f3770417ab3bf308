/**
 * The station API client: the renderer's only way to the station (architecture.md).
 *
 * Two transports behind one typed surface:
 * - Electron: `window.kit.invoke(command, input)` answers an envelope, `window.kit.on(listener)`
 *   pushes events (the preload exposes exactly these two);
 * - headless (`kitting serve`): a WebSocket at `/api/ws?token=…` (the token comes from the page's
 *   `?token=`; the server also sets a cookie). The client sends `{id, command, input}`, gets
 *   `{id, ok, result | error}` and `{event}` pushes. It reconnects with a growing delay (calls made
 *   meanwhile wait in an outbox), fails the calls in flight with a {@link ClientError} of code
 *   `client/disconnected`, and tells listeners when the link goes up or down so the UI reloads.
 *
 * Only types come from src/ (lint-enforced).
 */
import type { CommandInput, CommandName, CommandResult, Envelope, StationEvent } from '../../src/contract.ts';
import type { SerializedKitError } from '../../src/errors.ts';

/** What Electron's preload exposes. */
export interface KitBridge {
  invoke(command: string, input: unknown): Promise<Envelope<unknown>>;
  on(listener: (event: StationEvent) => void): () => void;
}

/** A failed call: the station's serialized error, or the transport's own (`client/*` codes). */
export class ClientError extends Error {
  readonly code: string;
  readonly error: SerializedKitError | null;
  constructor(code: string, message: string, error: SerializedKitError | null = null) {
    super(message);
    this.code = code;
    this.error = error;
  }
}

export type LinkState = 'connecting' | 'open' | 'closed';

export interface StationClient {
  call<N extends CommandName>(command: N, input: CommandInput<N>): Promise<CommandResult<N>>;
  onEvent(listener: (event: StationEvent) => void): () => void;
  onLink(listener: (state: LinkState) => void): () => void;
  readonly link: LinkState;
  close(): void;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function unwrap<R>(envelope: Envelope<unknown>): R {
  if (envelope.ok) return envelope.result as R;
  throw new ClientError(envelope.error.code, envelope.error.message, envelope.error);
}

class Listeners<T> {
  private readonly set = new Set<(v: T) => void>();
  add(l: (v: T) => void): () => void {
    this.set.add(l);
    return () => this.set.delete(l);
  }
  emit(v: T): void {
    for (const l of this.set) l(v);
  }
}

/** Over Electron's preload bridge. */
export function electronClient(bridge: KitBridge): StationClient {
  const links = new Listeners<LinkState>();
  return {
    link: 'open',
    async call<N extends CommandName>(command: N, input: CommandInput<N>): Promise<CommandResult<N>> {
      return unwrap<CommandResult<N>>(await bridge.invoke(command, input));
    },
    onEvent: (l) => bridge.on(l),
    onLink: (l) => links.add(l),
    close: () => undefined,
  };
}

interface Pending {
  resolve(v: Envelope<unknown>): void;
  reject(e: Error): void;
}

/** Over the headless server's WebSocket, reconnecting. */
export function webSocketClient(url: string): StationClient {
  const events = new Listeners<StationEvent>();
  const links = new Listeners<LinkState>();
  const pending = new Map<number, Pending>();
  const outbox: string[] = [];
  let seq = 0;
  let ws: WebSocket | undefined;
  let closed = false;
  let delay = 250;
  let state: LinkState = 'connecting';

  const setState = (s: LinkState): void => {
    state = s;
    links.emit(s);
  };

  const connect = (): void => {
    if (closed) return;
    setState('connecting');
    const socket = new WebSocket(url);
    ws = socket;
    socket.addEventListener('open', () => {
      delay = 250;
      setState('open');
      for (const m of outbox.splice(0)) socket.send(m);
    });
    socket.addEventListener('message', (m: MessageEvent) => {
      if (typeof m.data !== 'string') return;
      let msg: unknown;
      try {
        msg = JSON.parse(m.data);
      } catch {
        return;
      }
      if (!isRecord(msg)) return;
      if (isRecord(msg.event) && typeof msg.event.type === 'string') {
        events.emit(msg.event as unknown as StationEvent);
        return;
      }
      if (typeof msg.id === 'number') {
        const p = pending.get(msg.id);
        if (p === undefined) return;
        pending.delete(msg.id);
        if (msg.ok === true) p.resolve({ ok: true, result: msg.result });
        else if (msg.ok === false && isRecord(msg.error))
          p.resolve({ ok: false, error: msg.error as unknown as SerializedKitError });
        else p.reject(new ClientError('client/bad-answer', 'the station answered something unreadable'));
      }
    });
    socket.addEventListener('close', () => {
      if (ws !== socket) return;
      ws = undefined;
      for (const [id, p] of pending) {
        pending.delete(id);
        p.reject(new ClientError('client/disconnected', 'the connection to the station was lost'));
      }
      if (closed) {
        setState('closed');
        return;
      }
      setState('connecting');
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 5000);
    });
  };
  connect();

  return {
    get link() {
      return state;
    },
    call<N extends CommandName>(command: N, input: CommandInput<N>): Promise<CommandResult<N>> {
      seq += 1;
      const id = seq;
      const text = JSON.stringify({ id, command, input });
      return new Promise<Envelope<unknown>>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        if (ws !== undefined && ws.readyState === WebSocket.OPEN) ws.send(text);
        else outbox.push(text);
      }).then((e) => unwrap<CommandResult<N>>(e));
    },
    onEvent: (l) => events.add(l),
    onLink: (l) => links.add(l),
    close() {
      closed = true;
      ws?.close();
    },
  };
}
