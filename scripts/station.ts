/**
 * `npm run station`: the README's "set up and run" command after `npm ci`.
 *
 * Builds what the station serves (the UI), then runs the headless station (`kitting serve`) and
 * prints the URL to open. When the machine's usbmuxd shows iPads attached, the station works on
 * them (with the station's normal data folder); when none is attached (or there is no usbmuxd,
 * as on a CI machine), it runs against the virtual iPad fleet with the reference MDM
 * (`--simulate 8 --mdm-dev`, a temporary data folder with a demo identity and blueprint).
 * Extra arguments go to `kitting serve` (e.g. `npm run station -- --port 8080`).
 */
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const kitting = path.join(root, 'bin', 'kitting.js');

const build = spawnSync(process.execPath, [path.join(root, 'scripts', 'build.ts')], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

/** How many iPads the system usbmuxd shows (0 when there is no usbmuxd or it does not answer). */
function attachedDevices(): number {
  const r = spawnSync(process.execPath, [kitting, '--json', 'list'], { cwd: root, encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) return 0;
  try {
    const list: unknown = JSON.parse(r.stdout);
    return Array.isArray(list) ? list.length : 0;
  } catch {
    return 0;
  }
}

const real = attachedDevices();
const serveArgs =
  real > 0 ? ['serve', ...process.argv.slice(2)] : ['serve', '--simulate', '8', '--mdm-dev', ...process.argv.slice(2)];
process.stderr.write(
  real > 0
    ? `station: ${real} iPad(s) attached to this machine's usbmuxd; serving the real station\n`
    : 'station: no iPad attached (or no usbmuxd); serving the station against 8 virtual iPads and the reference MDM\n',
);

const child = spawn(process.execPath, [kitting, ...serveArgs], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
child.stdout.setEncoding('utf8');
child.stdout.on('data', (chunk: string) => {
  process.stdout.write(chunk);
  const line = chunk.split('\n').find((l) => l.startsWith('{"ready":true'));
  if (line !== undefined) {
    const { url } = JSON.parse(line) as { url: string };
    process.stderr.write(`\nOpen the station in a browser / ブラウザーで開いてください:\n  ${url}\n\n`);
  }
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
child.on('exit', (code) => process.exit(code ?? 0));
