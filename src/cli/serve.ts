import { Command, Option } from 'commander';
import { versionLine } from '../build-info';
import { DEFAULT_CONFIG, DEFAULT_CONFIG_FILE, LOG_FORMATS, LOG_LEVELS, serviceEnvironment } from '../daemon/config';
import { Daemon } from '../daemon/daemon';
import { createLogger } from '../daemon/logger';
import { configFromFlags } from './config-flags';

interface ServeFlags {
  root?: string;
  address?: string;
  config?: string;
  logLevel?: string;
  logFormat?: string;
}

/** `clip serve`: runs the snapshotter daemon in the foreground until SIGTERM or SIGINT. */
export function serveCommand(): Command {
  return new Command('serve')
    .description('run the clip snapshotter daemon in the foreground')
    .option('--root <dir>', `directory for clip's metadata and snapshots (default: ${DEFAULT_CONFIG.root})`)
    .option('--address <socket>', `unix socket containerd connects to (default: ${DEFAULT_CONFIG.address})`)
    .option('--config <file>', `TOML configuration file (see config/clip.toml; default: ${DEFAULT_CONFIG_FILE} if it exists)`)
    .addOption(new Option('--log-level <level>', `log level (default: ${DEFAULT_CONFIG.logLevel})`).choices([...LOG_LEVELS]))
    .addOption(new Option('--log-format <format>', `log lines as text or JSON (default: ${DEFAULT_CONFIG.logFormat})`).choices([...LOG_FORMATS]))
    .action(async (flags: ServeFlags) => {
      const { config, file } = await configFromFlags(flags.config, {
        root: flags.root,
        address: flags.address,
        logLevel: flags.logLevel,
        logFormat: flags.logFormat,
      });
      const logger = createLogger(config.logLevel, { format: config.logFormat });
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
      let daemon: Daemon;
      try {
        daemon = await Daemon.start(config, logger, serviceEnvironment(process.env, process.pid), file);
      } catch (err) {
        logger.close();
        throw err;
      }
      // After the start, so that a start refused at once (another clip serve holds the root) says one line.
      logger.info(`clip ${versionLine()} started (config ${file ?? 'built-in defaults'}, pid ${process.pid})`);
      logger.info(`received ${await stopSignal}, stopping`);
      await daemon.stop();
      logger.close();
      // Layer mounts handed to the next process keep their FUSE threads (and so this process) alive.
      process.exit(0);
    });
}
