/**
 * A stand-in for the daemon in tests that kill it: serves a small layer on the directory given as the
 * first argument until killed, printing "mounted" once the mount is up. Flags:
 *   --hang            the SpanReader never answers and the read timeout is ten minutes, so reads of /file
 *                     hang like a wedged server's
 *   --handoff SOCKET  live restart through clip-fd-holder on SOCKET: the mount's connection is kept there,
 *                     and one kept by an earlier process is taken over instead of mounting
 *   --abandon         with --handoff: give up every kept connection instead of serving (prints "abandoned")
 *   --block-ms N      the first span read blocks the JS thread for N ms (a busy loop), then prints
 *                     "unblocked" and answers; the read timeout is 1 s
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
  const blockMs = flags.includes('--block-ms') ? Number(flags[flags.indexOf('--block-ms') + 1]) : 0;
  const memory = new MemorySpanReader(layer);
  let blocked = false;
  const blocking: SpanReader = {
    readSpan: (index) => {
      if (!blocked) {
        blocked = true;
        for (const until = Date.now() + blockMs; Date.now() < until; ) {
          // the event loop cannot run: only the native server can answer meanwhile
        }
        process.stdout.write('unblocked\n');
      }
      return memory.readSpan(index);
    },
  };
  const reader: SpanReader = hang ? { readSpan: () => new Promise<Buffer>(() => undefined) } : blockMs ? blocking : memory;
  const readTimeoutMs = hang ? 600_000 : blockMs ? 1000 : 30_000;
  const logger = winston.createLogger({ level: 'info', transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info'] })] });
  const handOff = socket ? new MountHandOff(new HolderFdStore(socket, logger), logger) : undefined;
  await handOff?.load();
  if (handOff && flags.includes('--abandon')) {
    await handOff.abandonWaiting('told to give it up', dir);
    process.stdout.write('abandoned\n');
    process.exit(0);
  }
  const fs = new LayerFilesystem(layer.archive, reader, { logger, readTimeoutMs, handOff });
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
