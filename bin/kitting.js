#!/usr/bin/env node
// The `kitting` command. The station targets Node 22.18+ (TypeScript runs by type stripping, no
// build step). On an older system Node, re-run this script with the Node 22 that the repo's `node`
// devDependency installs, so `npx kitting` works on a fresh machine without any manual step.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  const require = createRequire(import.meta.url);
  let nodeBin;
  try {
    nodeBin = require.resolve('node/bin/node');
  } catch {
    process.stderr.write(`kitting: Node ${process.versions.node} is too old (22.18+ needed); run \`npm ci\` first.\n`);
    process.exit(1);
  }
  const r = spawnSync(nodeBin, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const { runCli } = await import('../src/cli/main.ts');
process.exitCode = await runCli(process.argv.slice(2));
