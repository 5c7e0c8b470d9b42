/**
 * What metrics cost on the FUSE path: per-request latency of `stat` and of `open` + `read` + `close` of
 * small files whose bytes are in the content cache (so the native server answers every request itself,
 * from its table and the cache files), with the FUSE statistics off and on ([metrics] address unset or
 * set). Each sample is a fresh mount of one layer of FILES files (the kernel has cached nothing of it),
 * walked by a separate process (python3) that stats every file, then opens and reads every file once.
 * Off and on alternate (off first in even runs, on first in odd ones, so neither always goes first), RUNS
 * of each; the report is the median per request and the on/off ratio.
 * Wall-clock times on a shared machine: read the ratio, not the absolute numbers.
 *
 *   npm run build && node dist/bench/metrics-overhead.js     (METRICS_BENCH_RUNS=5, METRICS_BENCH_FILES=4000)
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import winston from 'winston';
import { ContentCache } from '../src/fusefs/content-cache';
import { LayerFilesystem } from '../src/fusefs/layer-filesystem';
import { LayerSpanReader } from '../src/fusefs/layer-span-reader';
import { forceUnmount, listFuseMounts } from '../src/fusefs/mounts';
import { ClipMetrics } from '../src/metrics/clip-metrics';
import { buildLayer, patternBytes, type FixtureEntry } from '../test/integration/fusefs/layer-fixture';
import { tempDir } from '../test/helpers/processes';

const RUNS = Number(process.env.METRICS_BENCH_RUNS ?? 5);
const FILES = Number(process.env.METRICS_BENCH_FILES ?? 4000);
const DIRS = 40;

/** Walks the mount in another process: mean microseconds per stat and per open+read+close. */
const WALKER = `
import os, sys, time
root, dirs, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
paths = [os.path.join(root, "d%d" % (i % dirs), "f%d" % i) for i in range(files)]
t = time.perf_counter()
for p in paths: os.stat(p)
stat = (time.perf_counter() - t) / files * 1e6
t = time.perf_counter()
for p in paths:
    fd = os.open(p, os.O_RDONLY)
    os.read(fd, 65536)
    os.close(fd)
read = (time.perf_counter() - t) / files * 1e6
print("%f %f" % (stat, read))
`;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const dir = await tempDir('metrics-bench');
  const logger = winston.createLogger({ silent: true });
  const entries: FixtureEntry[] = [];
  for (let d = 0; d < DIRS; d++) entries.push({ path: `d${d}`, type: 'dir' });
  for (let i = 0; i < FILES; i++) entries.push({ path: `d${i % DIRS}/f${i}`, type: 'file', data: patternBytes(2048, i + 1) });
  const layer = buildLayer(entries, 1 << 20);
  const cache = new ContentCache(path.join(dir, 'cache'));
  const { checkpoints, uncompressedSize, layerDigest, spanDigests } = layer.archive;
  for (let i = 0; i < checkpoints.length; i++) {
    const end = i + 1 < checkpoints.length ? checkpoints[i + 1]!.uncompressedOffset : uncompressedSize;
    await cache.put(layerDigest, spanDigests[i]!, layer.stream.subarray(checkpoints[i]!.uncompressedOffset, end));
  }
  const reader = new LayerSpanReader({
    archive: layer.archive,
    cache,
    source: { readRange: async () => Promise.reject(new Error('every span is cached: the registry is never asked')) },
  });
  const samples: Record<'off' | 'on', { stat: number[]; read: number[] }> = { off: { stat: [], read: [] }, on: { stat: [], read: [] } };
  let metrics: ClipMetrics | undefined;
  try {
    for (let run = 0; run < RUNS; run++) {
      for (const mode of run % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
        metrics?.close();
        metrics = mode === 'on' ? new ClipMetrics({ version: 'bench', commit: 'bench' }) : undefined;
        const mnt = path.join(dir, `mnt-${run}-${mode}`);
        await fsp.mkdir(mnt);
        const fs = new LayerFilesystem(layer.archive, reader, { logger });
        await fs.mount(mnt);
        try {
          // The walker is another process: this one serves the mount and must never touch it synchronously.
          const out = execFileSync('python3', ['-c', WALKER, mnt, String(DIRS), String(FILES)], { encoding: 'utf8', timeout: 300_000 });
          const [stat, read] = out.trim().split(' ').map(Number) as [number, number];
          samples[mode].stat.push(stat);
          samples[mode].read.push(read);
          console.log(`run ${run + 1} metrics ${mode}: stat ${stat.toFixed(1)} us, open+read ${read.toFixed(1)} us`);
        } finally {
          await fs.unmount();
        }
      }
    }
    if (metrics) {
      const text = (await metrics.exposition()).body;
      const count = /clip_fuse_operation_duration_seconds_count\{operation="lookup"\} (\d+)/.exec(text)?.[1];
      console.log(`(the native server counted ${count} lookups over the runs with metrics on)`);
    }
  } finally {
    metrics?.close();
    for (const m of await listFuseMounts(dir)) await forceUnmount(m.mountPoint).catch(() => undefined);
    await fsp.rm(dir, { recursive: true, force: true });
  }
  const line = (what: 'stat' | 'read', label: string): string => {
    const off = median(samples.off[what]);
    const on = median(samples.on[what]);
    return `${label}: metrics off ${off.toFixed(1)} us, on ${on.toFixed(1)} us per request (median of ${RUNS}), on/off ${(on / off).toFixed(3)}`;
  };
  console.log(`${FILES} files of 2 KiB, cached, fresh mount per sample`);
  console.log(line('stat', 'stat'));
  console.log(line('read', 'open+read+close'));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exitCode = 1;
});
