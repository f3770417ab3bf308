/** Electron main entry (bundled to dist-electron/main.js): everything is in app.ts. */
import { app } from 'electron';
import { startApp } from './app.ts';

startApp().catch((err: unknown) => {
  process.stderr.write(`Kitting Station failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
  app.exit(1);
});
