/**
 * `npm run build`: produces what ships.
 *
 * - `dist/cli/main.js`: the `kitting` CLI as one ESM bundle (dependencies stay external). The repo
 *   itself runs TypeScript directly (Node 22 type stripping), but Node refuses to strip types under
 *   node_modules or inside an app archive, so the packaged app and the Electron main process need
 *   plain JavaScript.
 */
import path from 'node:path';
import { build } from 'vite';

const root = path.resolve(import.meta.dirname, '..');

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

const started = Date.now();
await buildCli();
process.stdout.write(`build: dist/cli/main.js (${Date.now() - started} ms)\n`);
