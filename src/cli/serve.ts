import { Command, Option } from 'commander';
import { ConfigOverrides, DEFAULT_CONFIG, LOG_LEVELS, loadConfigFile, resolveConfig } from '../daemon/config';
import { Daemon } from '../daemon/daemon';
import { createLogger } from '../daemon/logger';

interface ServeFlags {
  root?: string;
  address?: string;
  config?: string;
  logLevel?: string;
}

/** `clip serve`: runs the snapshotter daemon in the foreground until SIGTERM or SIGINT. */
export function serveCommand(): Command {
  return new Command('serve')
    .description('run the clip snapshotter daemon in the foreground')
    .option('--root <dir>', `directory for clip's metadata and snapshots (default: ${DEFAULT_CONFIG.root})`)
    .option('--address <socket>', `unix socket containerd connects to (default: ${DEFAULT_CONFIG.address})`)
    .option('--config <file>', 'TOML configuration file (see config/clip.toml)')
    .addOption(new Option('--log-level <level>', `log level (default: ${DEFAULT_CONFIG.logLevel})`).choices([...LOG_LEVELS]))
    .action(async (flags: ServeFlags) => {
      const fromFile = flags.config ? await loadConfigFile(flags.config) : {};
      const fromFlags: ConfigOverrides = {
        root: flags.root,
        address: flags.address,
        logLevel: flags.logLevel as ConfigOverrides['logLevel'],
      };
      const config = resolveConfig(fromFile, fromFlags);
      const logger = createLogger(config.logLevel);
      // Listen for signals before starting: a SIGTERM that arrives while the daemon starts (its socket
      // already accepts calls) stops it cleanly once started instead of killing the process midway.
      const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
        const onSignal = (signal: NodeJS.Signals): void => {
          process.off('SIGTERM', onSignal);
          process.off('SIGINT', onSignal);
          resolve(signal);
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
      });
      const daemon = await Daemon.start(config, logger);
      logger.info(`received ${await stopSignal}, stopping`);
      await daemon.stop();
    });
}
