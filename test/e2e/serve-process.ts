/**
 * Starts `kitting serve --port 0 --simulate N --mdm-dev` with a fresh data folder for the e2e tier
 * and the UI bench: builds the renderer first when `dist/renderer` is missing, waits for the one
 * ready line on stdout, and learns the simulator's control socket from the log line naming the
 * virtual usbmuxd. Stopped by PID (SIGTERM, then SIGKILL).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');

export interface ServeProcess {
  readonly url: string;
  readonly origin: string;
  readonly token: string;
  readonly dataDir: string;
  /** The simulator's control API (unix socket path), for `ControlClient`. */
  readonly control: string;
  readonly child: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Builds the renderer with Vite (the repo's Node) when `dist/renderer/index.html` is missing or
 * older than a file under `renderer/` (so a test never looks at a stale UI), or when `force`.
 */
export function buildRenderer(force = false): void {
  const index = path.join(ROOT, 'dist', 'renderer', 'index.html');
  const fresh = fs.existsSync(index) && fs.statSync(index).mtimeMs >= newestMtime(path.join(ROOT, 'renderer'));
  if (!force && fresh) return;
  const vite = path.join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
  const r = spawnSync(process.execPath, [vite, 'build', '--config', 'renderer/vite.config.ts', '--logLevel', 'warn'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`vite build failed: ${r.stderr}${r.stdout}`);
}

export async function startServe(devices: number, extra: string[] = []): Promise<ServeProcess> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kitting-e2e-'));
  const child = spawn(
    process.execPath,
    [
      path.join(ROOT, 'src', 'cli', 'main.ts'),
      '--data-dir',
      dataDir,
      'serve',
      '--port',
      '0',
      '--simulate',
      String(devices),
      ...extra,
    ],
    {
      cwd: ROOT,
      env: { ...process.env, KITTING_PASSPHRASE: 'e2e passphrase for the test vault', KITTING_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stdout.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    stderr += d;
  });
  const ready = await new Promise<{ url: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kitting serve did not get ready:\n${stderr}`)), 60_000);
    child.stdout.on('data', (d: string) => {
      stdout += d;
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      if (line !== undefined && stdout.includes('\n')) {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(line) as { url: string });
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`kitting serve exited with ${String(code)}:\n${stderr}`));
    });
  });
  const sock = /virtual iPads \([^)]*\) on (?:UNIX:|unix:\/\/)?(\S+)/.exec(stderr);
  if (sock?.[1] === undefined) throw new Error(`no usbmuxd address in the log:\n${stderr}`);
  const control = path.join(path.dirname(sock[1]), 'control.sock');
  const u = new URL(ready.url);
  const pid = child.pid;
  return {
    url: ready.url,
    origin: u.origin,
    token: u.searchParams.get('token') ?? '',
    dataDir,
    control,
    child,
    log: () => stderr,
    async stop() {
      if (pid !== undefined && child.exitCode === null) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        process.kill(pid, 'SIGTERM');
        const timer = setTimeout(() => {
          if (child.exitCode === null) process.kill(pid, 'SIGKILL');
        }, 10_000);
        await exited;
        clearTimeout(timer);
      }
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
