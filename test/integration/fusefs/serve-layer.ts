/**
 * A stand-in for the daemon in tests that kill it: serves a small layer on the directory given as the
 * first argument until killed, printing "mounted" once the mount is up. With --hang the SpanReader never
 * answers and the read timeout is ten minutes, so reads of /file hang like a wedged server's.
 */
import winston from 'winston';
import { LayerFilesystem, SpanReader } from '../../../src/fusefs';
import { MemorySpanReader, buildLayer } from './layer-fixture';

async function main(): Promise<void> {
  const [dir, flag] = process.argv.slice(2);
  const hang = flag === '--hang';
  const layer = buildLayer([{ path: 'file', type: 'file', data: Buffer.from('served by a child process\n') }]);
  const reader: SpanReader = hang ? { readSpan: () => new Promise<Buffer>(() => undefined) } : new MemorySpanReader(layer);
  const logger = winston.createLogger({ level: 'warn', transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn'] })] });
  const fs = new LayerFilesystem(layer.archive, reader, { logger, readTimeoutMs: hang ? 600_000 : 30_000 });
  await fs.mount(dir);
  process.stdout.write('mounted\n');
  process.on('SIGTERM', () => {
    void fs.unmount().then(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`serve-layer: ${String(err)}\n`);
  process.exit(1);
});
