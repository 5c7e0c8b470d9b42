/**
 * The daemon's logger: one event per line on stderr, as text ("<time> <level> <message> layer=…") or as
 * JSON objects (`log_format = "json"`), with the fields of child loggers (logContext) in both. Repeated
 * warnings and errors of one kind are rate-limited and summarised (rate-limiter.ts), so an EIO storm or a
 * registry outage does not flood the log.
 */
import winston from 'winston';
import { LogFormat, LogLevel } from './config';
import { RateLimiter, RateLimiterOptions } from './rate-limiter';

/** Fields a log line can carry about what it concerns. */
export interface LogContext {
  /** Layer digest. */
  layer?: string;
  /** Snapshot key or name (containerd's vocabulary). */
  snapshot?: string;
  /** Image reference. */
  image?: string;
}

const CONTEXT_FIELDS = ['layer', 'snapshot', 'image'] as const;

/** Marks a summary line, which is never rate-limited itself. */
const SUMMARY = Symbol('clip.summary');

/**
 * A child of `logger` whose lines carry the given fields (those that are undefined are left out), e.g.
 * `logContext(logger, { layer: digest, image: ref }).warn('…')`.
 */
export function logContext(logger: winston.Logger, context: LogContext): winston.Logger {
  const fields: Record<string, string> = {};
  for (const name of CONTEXT_FIELDS) if (context[name] !== undefined) fields[name] = context[name];
  return logger.child(fields);
}

function textLine(info: winston.Logform.TransformableInfo): string {
  const fields = Object.entries(info)
    .filter(([k, v]) => !['level', 'message', 'timestamp'].includes(k) && v !== undefined)
    .map(([k, v]) => ` ${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join('');
  return `${String(info['timestamp'])} ${info.level} ${String(info.message)}${fields}`;
}

export interface LoggerOptions {
  format?: LogFormat;
  /** Rate limiting of repeated warnings and errors (default: 5 of a kind per 10 s); false for none. */
  rateLimit?: Omit<RateLimiterOptions, 'onSummary'> | false;
  /** Where lines go (default: stderr). */
  stream?: NodeJS.WritableStream;
}

/** The daemon's logger; close() it (logger.close()) to write pending summaries. */
export function createLogger(level: LogLevel, options: LoggerOptions = {}): winston.Logger {
  let limiter: RateLimiter | undefined;
  const limit = winston.format((info) => {
    if (!limiter || (info as Record<symbol, unknown>)[SUMMARY] || (info.level !== 'error' && info.level !== 'warn')) return info;
    return limiter.admit(info.level, String(info.message)) ? info : false;
  });
  const transport = options.stream
    ? new winston.transports.Stream({ stream: options.stream })
    : new winston.transports.Console({ stderrLevels: [...Object.keys(winston.config.npm.levels)] });
  const logger = winston.createLogger({
    level,
    format: winston.format.combine(
      limit(),
      winston.format.timestamp(),
      options.format === 'json' ? winston.format.json() : winston.format.printf(textLine),
    ),
    transports: [transport],
  });
  if (options.rateLimit !== false) {
    limiter = new RateLimiter({
      ...options.rateLimit,
      onSummary: (lvl, message) => logger.log({ level: lvl, message, [SUMMARY]: true }),
    });
    const close = logger.close.bind(logger);
    logger.close = () => {
      limiter?.close();
      limiter = undefined;
      return close();
    };
  }
  return logger;
}
