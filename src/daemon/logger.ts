import winston from 'winston';
import { LogLevel } from './config';

/** The daemon's logger: one line per event on stderr, with a timestamp and level. */
export function createLogger(level: LogLevel): winston.Logger {
  return winston.createLogger({
    level,
    format: winston.format.combine(
      winston.format.timestamp(),
      winston.format.printf(({ timestamp, level: lvl, message }) => `${String(timestamp)} ${lvl} ${String(message)}`),
    ),
    transports: [new winston.transports.Console({ stderrLevels: [...Object.keys(winston.config.npm.levels)] })],
  });
}
