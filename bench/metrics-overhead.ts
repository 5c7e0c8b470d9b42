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
 *
 * `npm run bench` runs it as its "metrics" section (bench/run.ts) and reports it (bench/report.ts).
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
import { median } from './median';
import { buildLayer, patternBytes, type FixtureEntry } from '../test/integration/fusefs/layer-fixture';
import { tempDir } from '../test/helpers/processes';

const DIRS = 40;

/** Mean microseconds per request of each sample, metrics off and on. */
export interface MetricsOverhead {
  files: number;
  runs: number;
  stat: { off: number[]; on: number[] };
  read: { off: number[]; on: number[] };
}

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

export async function measureMetricsOverhead(RUNS: number, FILES: number, log: (line: string) => void = console.log): Promise<MetricsOverhead> {
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
  const result: MetricsOverhead = { files: FILES, runs: RUNS, stat: { off: [], on: [] }, read: { off: [], on: [] } };
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
          result.stat[mode].push(stat);
          result.read[mode].push(read);
          log(`run ${run + 1} metrics ${mode}: stat ${stat.toFixed(1)} us, open+read ${read.toFixed(1)} us`);
        } finally {
          await fs.unmount();
        }
      }
    }
    if (metrics) {
      const text = (await metrics.exposition()).body;
      const count = /clip_fuse_operation_duration_seconds_count\{operation="lookup"\} (\d+)/.exec(text)?.[1];
      log(`(the native server counted ${count} lookups over the runs with metrics on)`);
    }
  } finally {
    metrics?.close();
    for (const m of await listFuseMounts(dir)) await forceUnmount(m.mountPoint).catch(() => undefined);
    await fsp.rm(dir, { recursive: true, force: true });
  }
  return result;
}

if (require.main === module) {
  const runs = Number(process.env.METRICS_BENCH_RUNS ?? 5);
  const files = Number(process.env.METRICS_BENCH_FILES ?? 4000);
  measureMetricsOverhead(runs, files).then(
    (r) => {
      const line = (what: 'stat' | 'read', label: string): string => {
        const off = median(r[what].off);
        const on = median(r[what].on);
        return `${label}: metrics off ${off.toFixed(1)} us, on ${on.toFixed(1)} us per request (median of ${runs}), on/off ${(on / off).toFixed(3)}`;
      };
      console.log(`${files} files of 2 KiB, cached, fresh mount per sample`);
      console.log(line('stat', 'stat'));
      console.log(line('read', 'open+read+close'));
    },
    (err: unknown) => {
      console.error(err instanceof Error ? (err.stack ?? err.message) : err);
      process.exitCode = 1;
    },
  );
}
