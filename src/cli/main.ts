/**
 * The `clip` command line. It parses arguments and calls the library; errors end as one line on stderr
 * and a non-zero exit status that says what kind of failure it was (exit-codes.ts).
 */
import { Command, CommanderError } from 'commander';
import { versionLine } from '../build-info';
import { errorMessage } from '../errors';
import { EXIT_CODES_HELP, exitCodeFor } from './exit-codes';
import { cacheCommand } from './cache-command';
import { indexCommand } from './index-command';
import { inspectCommand } from './inspect';
import { mountCommand, umountCommand } from './mount';
import { pullCommand } from './pull';
import { serveCommand } from './serve';
import { statusCommand } from './status';

export function buildProgram(): Command {
  const program = new Command('clip')
    .description('clip: a containerd snapshotter that starts containers before their images are downloaded')
    .version(`clip ${versionLine()}`)
    .showSuggestionAfterError()
    .enablePositionalOptions() // a command's options after its subcommand belong to the subcommand (clip index push)
    .exitOverride();
  program.addCommand(serveCommand());
  program.addCommand(pullCommand());
  program.addCommand(indexCommand());
  program.addCommand(inspectCommand());
  program.addCommand(mountCommand());
  program.addCommand(umountCommand());
  program.addCommand(statusCommand());
  program.addCommand(cacheCommand());
  const overrideExits = (cmd: Command): void => {
    cmd.exitOverride();
    cmd.commands.forEach(overrideExits);
  };
  program.commands.forEach(overrideExits);
  program.addHelpText('after', EXIT_CODES_HELP);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    // Commander has already printed its one-line message (or the help/version text).
    if (!(err instanceof CommanderError)) process.stderr.write(`clip: ${errorMessage(err)}\n`);
    process.exitCode = exitCodeFor(err);
  }
}
