/**
 * `kitting`: the station without windows (cli.md). Each command module only parses its arguments,
 * calls the core and prints; this file wires the global options and turns failures into the exit
 * codes of cli.md (0 ok, 1 failed, 2 bad usage or input, 3 nothing matched).
 */
import { Command, CommanderError, Option } from 'commander';
import { KitError } from '../errors.ts';
import { contextFrom, reportError, type GlobalOptions } from './context.ts';
import { COMMANDS } from './commands/index.ts';

export function buildProgram(): Command {
  const program = new Command('kitting')
    .description('Kitting Station: prepare, supervise and enroll iPads (キッティングステーション)')
    .version(process.env.npm_package_version ?? '0.1.0')
    .option('--usbmuxd <addr>', 'usbmuxd address (UNIX:/path, unix:///path, /path, host:port, tcp://host:port)')
    .option('--data-dir <dir>', 'station data folder (default KITTING_DATA_DIR or the OS app-data folder)')
    .option('--json', 'one JSON document on stdout')
    .addOption(new Option('--lang <lang>', 'message language').choices(['ja', 'en']))
    .option('--passphrase-file <file>', 'vault passphrase file (or KITTING_PASSPHRASE)')
    .enablePositionalOptions(false)
    .showHelpAfterError()
    .exitOverride();
  for (const register of COMMANDS) register(program);
  return program;
}

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) return 0;
      const opts = program.opts<GlobalOptions>();
      if (opts.json === true) {
        process.stdout.write(
          `${JSON.stringify({ error: { code: 'usage/invalid-argument', message: err.message } })}\n`,
        );
      }
      return 2;
    }
    const ctx = contextFrom(program.opts<GlobalOptions>());
    return reportError(err instanceof KitError ? err : err, ctx.json, ctx.lang);
  }
}

const isMain = process.argv[1] !== undefined && import.meta.filename === process.argv[1];
if (isMain) {
  const code = await runCli(process.argv.slice(2));
  process.exitCode = code;
}
