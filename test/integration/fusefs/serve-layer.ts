/**
 * A stand-in for the daemon in tests that kill it: serves a small layer on the directory given as the
 * first argument until killed, printing "mounted" once the mount is up. Flags:
 *   --hang            the SpanReader never answers and the read timeout is ten minutes, so reads of /file
 *                     hang like a wedged server's
 *   --handoff SOCKET  live restart through clip-fd-holder on SOCKET: the mount's connection is kept there,
 *                     and one kept by an earlier process is taken over instead of mounting
 *   --abandon         with --handoff: give up every kept connection instead of serving (prints "abandoned")
 */
import winston from 'winston';
import { LayerFilesystem, SpanReader } from '../../../src/fusefs';
import { HolderFdStore } from '../../../src/fusefs/fd-store';
import { MountHandOff } from '../../../src/fusefs/mount-handoff';
import { MemorySpanReader, buildLayer } from './layer-fixture';

const SERVED_TEXT = 'served by a child process\n';

async function main(): Promise<void> {
  const [dir, ...flags] = process.argv.slice(2);
  const hang = flags.includes('--hang');
  const socket = flags.includes('--handoff') ? flags[flags.indexOf('--handoff') + 1] : undefined;
  const layer = buildLayer([{ path: 'file', type: 'file', data: Buffer.from(SERVED_TEXT) }]);
  const reader: SpanReader = hang ? { readSpan: () => new Promise<Buffer>(() => undefined) } : new MemorySpanReader(layer);
  const logger = winston.createLogger({ level: 'info', transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info'] })] });
  const handOff = socket ? new MountHandOff(new HolderFdStore(socket, logger), logger) : undefined;
  await handOff?.load();
  if (handOff && flags.includes('--abandon')) {
    await handOff.abandonWaiting('told to give it up', dir);
    process.stdout.write('abandoned\n');
    process.exit(0);
  }
  const fs = new LayerFilesystem(layer.archive, reader, { logger, readTimeoutMs: hang ? 600_000 : 30_000, handOff });
  await fs.mount(dir);
  process.stdout.write('mounted\n');
  process.on('SIGTERM', () => {
    if (handOff) process.exit(0); // the next process serves the mount
    void fs.unmount().then(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`serve-layer: ${String(err)}\n`);
  process.exit(1);
});
