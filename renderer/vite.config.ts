/**
 * Vite config of the UI: root `renderer/`, output `dist/renderer/` (scripts/build.ts calls Vite with
 * this file), relative base so the build works under Electron's `app://` and the headless server's
 * http alike. No inline scripts or styles are emitted, so the strict CSP (script-src 'self') holds.
 */
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  root: import.meta.dirname,
  base: './',
  plugins: [react()],
  build: {
    // Relative to `root`: the repo's dist/renderer/.
    outDir: '../dist/renderer',
    emptyOutDir: true,
    // Keeps the module-preload polyfill out: it would be an inline script.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    target: 'es2023',
  },
});
