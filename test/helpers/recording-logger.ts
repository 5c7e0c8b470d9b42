import { Writable } from 'node:stream';
import winston from 'winston';

/** A winston logger that keeps its lines ("level message") for assertions and prints nothing. */
export function recordingLogger(): winston.Logger & { lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString().trimEnd());
      done();
    },
  });
  const logger = winston.createLogger({
    level: 'debug',
    format: winston.format.printf(({ level, message }) => `${level} ${String(message)}`),
    transports: [new winston.transports.Stream({ stream: sink })],
  });
  return Object.assign(logger, { lines });
}
