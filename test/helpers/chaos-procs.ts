/**
 * Processes for the chaos tier: the reference MDM (`kitting mdm-dev --db`) that can be killed and
 * restarted on the same database and port, its admin API, and a background `kitting sync run`.
 * Every child is tracked and stopped by PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { KITTING, NODE, ROOT } from './sim-process.ts';

const children = new Set<ChildProcess>();

/** Spawns `kitting args…` (stdout/stderr captured by the caller through the returned child). */
export function spawnKitting(args: readonly string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(NODE, [KITTING, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Resolves with the exit code (null after a signal). */
export function exited(child: ChildProcess): Promise<number | null> {
  return !alive(child) ? Promise.resolve(child.exitCode) : new Promise((r) => child.once('exit', (c) => r(c)));
}

/** Sends `signal` by PID and waits for the exit. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (alive(child) && child.pid !== undefined) process.kill(child.pid, signal);
  await exited(child);
}

/** SIGKILLs every child still running (afterAll). */
export async function killAll(): Promise<void> {
  await Promise.all([...children].map((c) => stopChild(c, 'SIGKILL')));
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

/** The `url` of a `kitting mdm-dev` ready line. */
export function readyUrl(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const line = buf.split('\n')[0];
      if (buf.includes('\n') && line !== undefined) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once('exit', (code) => reject(new Error(`mdm-dev exited with ${String(code)} before its ready line`)));
  });
}

/** A `kitting mdm-dev` on a fixed port and database, restartable. */
export class MdmProcess {
  child: ChildProcess | undefined;
  url = '';
  stderr = '';
  token: string;
  readonly port: number;
  readonly db: string;
  readonly adminToken: string;
  readonly env: NodeJS.ProcessEnv;

  constructor(port: number, db: string, token: string, adminToken: string, env: NodeJS.ProcessEnv = {}) {
    this.port = port;
    this.db = db;
    this.token = token;
    this.adminToken = adminToken;
    this.env = env;
  }

  async start(): Promise<void> {
    const child = spawnKitting(
      [
        'mdm-dev',
        '--port',
        String(this.port),
        '--db',
        this.db,
        '--token',
        this.token,
        '--admin-token',
        this.adminToken,
      ],
      this.env,
    );
    child.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.child = child;
    this.url = await readyUrl(child);
  }

  async kill(): Promise<void> {
    if (this.child !== undefined) await stopChild(this.child, 'SIGKILL');
  }

  async stop(): Promise<void> {
    if (this.child !== undefined) await stopChild(this.child, 'SIGTERM');
  }

  async admin(method: string, p: string, body?: unknown): Promise<unknown> {
    const r = await fetch(`${this.url}${p}`, {
      method,
      headers: { Authorization: `Bearer ${this.adminToken}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (r.status >= 300) throw new Error(`admin ${method} ${p}: ${r.status} ${await r.text()}`);
    return r.headers.get('content-type')?.startsWith('application/json') === true ? r.json() : undefined;
  }
}
