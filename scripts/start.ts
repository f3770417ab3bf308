/**
 * `npm start`: builds, then opens the real app with the Electron binary that `npm ci` downloads
 * on a developer's machine. Where the binary is missing (CI, or installs with
 * ELECTRON_SKIP_BINARY_DOWNLOAD), it says so and how to get it, and exits 1.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const require = createRequire(import.meta.url);

/**
 * The Electron binary's path, or null when it is not installed. Read from the package's
 * `path.txt` (what `require('electron')` answers) without requiring it: in Electron 45 the require
 * itself starts a download when the binary is missing.
 */
function electronBinary(): string | null {
  let pkgDir: string;
  try {
    pkgDir = path.dirname(require.resolve('electron/package.json'));
  } catch {
    return null;
  }
  const override = process.env.ELECTRON_OVERRIDE_DIST_PATH;
  const pathFile = path.join(pkgDir, 'path.txt');
  if (!fs.existsSync(pathFile)) return null;
  const rel = fs.readFileSync(pathFile, 'utf8').trim();
  const p = override !== undefined && override !== '' ? path.join(override, rel) : path.join(pkgDir, 'dist', rel);
  return fs.existsSync(p) ? p : null;
}

const binary = electronBinary();
if (binary === null) {
  process.stderr.write(
    'npm start needs the Electron binary, which is not installed here.\n' +
      '`npm ci` downloads it on a developer machine (macOS, Windows, Linux desktop); to fetch it now run\n' +
      '  node node_modules/electron/install.js\n' +
      'On a machine without it (like CI), use the headless station instead: npx kitting serve --simulate 4\n',
  );
  process.exit(1);
}
const built = spawnSync(process.execPath, [path.join(root, 'scripts/build.ts')], { stdio: 'inherit' });
if (built.status !== 0) process.exit(built.status ?? 1);
const child = spawn(binary, [root], { stdio: 'inherit' });
child.on('exit', (code) => process.exit(code ?? 0));
