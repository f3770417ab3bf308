/**
 * `npm run build`: produces what ships.
 *
 * - `dist/cli/main.js`: the `kitting` CLI as one ESM bundle (dependencies stay external). The repo
 *   itself runs TypeScript directly (Node 22 type stripping), but Node refuses to strip types under
 *   node_modules or inside an app archive, so the packaged app and the Electron main process need
 *   plain JavaScript.
 * - `dist/renderer/`: the React UI (Vite, `renderer/vite.config.ts`), served by `kitting serve` and
 *   by the app's `app://kitting/` protocol.
 * - `dist-electron/main.js` (ESM) and `dist-electron/preload.cjs` (CommonJS: sandboxed preloads
 *   cannot be ES modules): the Electron shell; electron and the native modules stay external.
 */
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'vite';

const root = path.resolve(import.meta.dirname, '..');
/** Loaded at run time from node_modules (native parts, or Electron itself). */
const EXTERNAL = ['electron', 'better-sqlite3', 'usb'];

async function buildCli(): Promise<void> {
  await build({
    root,
    configFile: false,
    logLevel: 'warn',
    build: {
      ssr: path.join(root, 'src/cli/main.ts'),
      outDir: path.join(root, 'dist/cli'),
      emptyOutDir: true,
      target: 'node22',
      sourcemap: true,
      minify: false,
      rollupOptions: { output: { format: 'es', entryFileNames: 'main.js' } },
    },
  });
}

async function buildRenderer(): Promise<boolean> {
  const configFile = path.join(root, 'renderer/vite.config.ts');
  if (!fs.existsSync(configFile)) {
    process.stdout.write('build: renderer skipped: renderer/vite.config.ts does not exist yet\n');
    return false;
  }
  await build({ configFile, logLevel: 'warn', build: { outDir: path.join(root, 'dist/renderer'), emptyOutDir: true } });
  return true;
}

async function buildElectron(entry: string, file: string, format: 'es' | 'cjs', empty: boolean): Promise<void> {
  await build({
    root,
    configFile: false,
    logLevel: 'warn',
    ssr: { noExternal: format === 'cjs' ? true : [], external: EXTERNAL },
    build: {
      ssr: path.join(root, entry),
      outDir: path.join(root, 'dist-electron'),
      emptyOutDir: empty,
      target: 'node22',
      sourcemap: true,
      minify: false,
      rollupOptions: { external: EXTERNAL, output: { format, entryFileNames: file } },
    },
  });
}

const started = Date.now();
await buildCli();
await buildElectron('electron/main.ts', 'main.js', 'es', true);
await buildElectron('electron/preload.ts', 'preload.cjs', 'cjs', false);
const renderer = await buildRenderer();
process.stdout.write(
  `build: dist/cli/main.js, ${renderer ? 'dist/renderer/, ' : ''}dist-electron/main.js, dist-electron/preload.cjs (${Date.now() - started} ms)\n`,
);
