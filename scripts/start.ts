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

/** The Electron binary's path, or null when it is not installed. */
function electronBinary(): string | null {
  try {
    const p: unknown = require('electron');
    return typeof p === 'string' && fs.existsSync(p) ? p : null;
  } catch {
    return null;
  }
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
