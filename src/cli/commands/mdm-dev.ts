/**
 * `kitting mdm-dev`: the reference MDM server (src/simulator/mdm-server) until SIGINT/SIGTERM.
 * Prints exactly one line on stdout, `{"ready":true,"url":"http://127.0.0.1:PORT"}`; logs go to
 * stderr. Tokens never appear on stdout or in logs: `--token`/`--admin-token` fix them, and
 * `--token-file F` writes `{"token","adminToken"}` (mode 0600) before the ready line.
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import { KitError } from '../../errors.ts';
import { startMdmServer, type MdmServerOptions } from '../../simulator/mdm-server/index.ts';

interface MdmDevOptions {
  port: string;
  host: string;
  db?: string;
  token?: string;
  adminToken?: string;
  tokenFile?: string;
  deviceCa?: string;
  licenses?: string;
  seedDemo?: boolean;
}

function intArg(flag: string, text: string, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n > max)
    throw new KitError('usage/invalid-argument', `${flag} wants an integer from 0 to ${max}, got "${text}"`);
  return n;
}

async function runMdmDev(opts: MdmDevOptions): Promise<void> {
  if (!['127.0.0.1', 'localhost', '::1'].includes(opts.host))
    throw new KitError('usage/invalid-argument', `--host must be a loopback address (127.0.0.1), got "${opts.host}"`);
  for (const [flag, value] of [
    ['--token', opts.token],
    ['--admin-token', opts.adminToken],
  ] as const) {
    if (value !== undefined && value.length < 16)
      throw new KitError('usage/invalid-argument', `${flag} must be at least 16 characters`);
  }
  const options: MdmServerOptions = { port: intArg('--port', opts.port, 65535), host: opts.host };
  if (opts.db !== undefined) options.dbFile = opts.db;
  if (opts.token !== undefined) options.token = opts.token;
  if (opts.adminToken !== undefined) options.adminToken = opts.adminToken;
  if (opts.licenses !== undefined) options.licenseTotal = intArg('--licenses', opts.licenses, 1_000_000);
  if (opts.seedDemo === true) options.seedDemo = true;
  if (opts.deviceCa !== undefined) {
    let pem: string;
    try {
      pem = fs.readFileSync(opts.deviceCa, 'utf8');
    } catch (err) {
      throw new KitError('io/read-failed', `--device-ca: cannot read ${opts.deviceCa}`, { cause: err });
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----'))
      throw new KitError('usage/invalid-argument', `--device-ca: ${opts.deviceCa} holds no PEM certificate`);
    options.deviceCaPem = pem;
  }
  let server;
  try {
    server = await startMdmServer(options);
  } catch (err) {
    throw new KitError(
      'mdm-server/start-failed',
      `the reference MDM server could not start: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  if (opts.tokenFile !== undefined) {
    try {
      fs.writeFileSync(opts.tokenFile, `${JSON.stringify({ token: server.token, adminToken: server.adminToken })}\n`, {
        mode: 0o600,
      });
    } catch (err) {
      await server.stop();
      throw new KitError('io/write-failed', `--token-file: cannot write ${opts.tokenFile}`, { cause: err });
    }
  }
  process.stdout.write(`${JSON.stringify({ ready: true, url: server.url })}\n`);
  await new Promise<void>((resolve) => {
    const done = (): void => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
  });
  await server.stop();
}

/** Registers `kitting mdm-dev`. */
export function registerMdmDev(program: Command): void {
  program
    .command('mdm-dev')
    .description('run the reference MDM server until SIGINT/SIGTERM (prints one JSON ready line)')
    .option('--port <n>', 'TCP port on the host; 0 picks a free one', '0')
    .option('--host <addr>', 'loopback address to bind', '127.0.0.1')
    .option('--db <file>', "the server's SQLite file (default: in memory)")
    .option('--token <t>', 'station bearer token (default: random; see --token-file)')
    .option('--admin-token <t>', 'admin API bearer token (default: random; see --token-file)')
    .option('--token-file <file>', 'write {"token","adminToken"} here (mode 0600) before the ready line')
    .option('--device-ca <pem>', 'CA that must have issued the devices’ MachineInfo signing certificates')
    .option('--licenses <n>', 'total licenses (default 100, or what --db holds)')
    .option('--seed-demo', 'create demo groups demo-school, demo-school-grade1 (with credentials) and demo-closed')
    .action(async (opts: MdmDevOptions) => {
      await runMdmDev(opts);
    });
}
