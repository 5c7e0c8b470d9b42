/**
 * A layer mounted through FUSE with a start-up bundle: files whose bytes lie inside the bundle's ranges are
 * read from the bundle (fetched once, checked, kept in the content cache) while the layer's "registry" (a
 * range source over the layer blob) is asked for nothing; reads outside go to spans. A bundle whose blob
 * was tampered with is rejected and logged, and every read still gets the layer's real bytes from spans.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { STARTUP_RANGE_BLOCK, type ClipArchive, type StartupBundle } from '../../../src/archive';
import { LayerFilesystem, forceUnmount, listFuseMounts } from '../../../src/fusefs';
import { ContentCache } from '../../../src/fusefs/content-cache';
import { LayerSpanReader, type RangeSource } from '../../../src/fusefs/layer-span-reader';
import { StartupBundleReader, type BundleOutcome } from '../../../src/fusefs/startup-bundle-reader';
import { buildStartupBundle, inflateStartupBundle } from '../../../src/remote/startup-bundle-blob';
import { tempDir } from '../../helpers/processes';
import { FixtureEntry, FixtureLayer, buildLayer, memoryLogger, patternBytes } from './layer-fixture';
import { probeOk } from './probe';

const SPAN = 64 * 1024;
const entries: FixtureEntry[] = [
  { path: 'etc/', type: 'dir' },
  { path: 'etc/passwd', type: 'file', data: Buffer.from('root:x:0:0:root:/root:/bin/sh\n') },
  { path: 'usr/', type: 'dir' },
  { path: 'usr/lib/', type: 'dir' },
  { path: 'usr/lib/libstart.so', type: 'file', data: patternBytes(90_000, 3) },
  { path: 'usr/lib/unused.so', type: 'file', data: patternBytes(200_000, 4) },
  { path: 'usr/lib/libtwo.so', type: 'file', data: patternBytes(5_000, 5) },
];

/** The layer blob (an uncompressed layer: blob offsets are stream offsets); records what is asked of it. */
class RecordingSource implements RangeSource {
  readonly asked: Array<[number, number]> = [];

  constructor(private readonly blob: Buffer) {}

  async readRange(offset: number, length: number): Promise<Buffer> {
    this.asked.push([offset, offset + length]);
    return this.blob.subarray(offset, offset + length);
  }
}

/** The 4096-byte blocks holding a file's data, as a start-up range. */
function blocksOf(archive: ClipArchive, file: string): [number, number] {
  const e = archive.entries.find((x) => x.path === file)!;
  const start = Math.floor(e.dataOffset / STARTUP_RANGE_BLOCK) * STARTUP_RANGE_BLOCK;
  const end = Math.min(archive.uncompressedSize, Math.ceil((e.dataOffset + e.size) / STARTUP_RANGE_BLOCK) * STARTUP_RANGE_BLOCK);
  return [start, end];
}

function hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

class Counts {
  readonly outcomes: BundleOutcome[] = [];
  bundleBytes = 0;
  readBytes = 0;
  fetched(kind: string, bytes: number): void {
    if (kind === 'bundle') this.bundleBytes += bytes;
  }
  startupBundle(outcome: BundleOutcome): void {
    this.outcomes.push(outcome);
  }
  bundleRead(bytes: number): void {
    this.readBytes += bytes;
  }
}

describe('LayerFilesystem with a start-up bundle', () => {
  let dir: string;
  let layer: FixtureLayer;
  let archive: ClipArchive & { startupBundle: StartupBundle };
  let blob: Buffer;
  const filesystems: LayerFilesystem[] = [];

  /** Mounts the layer with the bundle whose blob `fetch` returns; a fresh cache each time. */
  async function mount(name: string, fetch: () => Buffer) {
    const source = new RecordingSource(layer.stream);
    const cache = new ContentCache(path.join(dir, `${name}-cache`));
    const { logger, lines } = memoryLogger();
    const counts = new Counts();
    let fetches = 0;
    const reader = new LayerSpanReader({ archive, source, cache, readAhead: 0 });
    const bundle = new StartupBundleReader({
      archive,
      cache,
      fetch: async function* () {
        fetches++;
        const bytes = fetch();
        // In two pieces, as a registry's body arrives.
        yield bytes.subarray(0, bytes.length >> 1);
        yield bytes.subarray(bytes.length >> 1);
      },
      inflate: inflateStartupBundle,
      logger,
      metrics: counts,
    });
    reader.setBundle(bundle);
    void bundle.load();
    const fs = new LayerFilesystem(archive, reader, { logger });
    const mnt = path.join(dir, name);
    await fsp.mkdir(mnt);
    filesystems.push(fs);
    await fs.mount(mnt);
    return { mnt, source, counts, lines, fetches: () => fetches, cache, bundle };
  }

  const expected = (file: string): string => hex(entries.find((e) => e.path === file)!.data!);

  before(async () => {
    dir = await tempDir('fusefs-bundle');
    layer = buildLayer(entries, SPAN);
    // The files' blocks, merged where they touch, as the FUSE server's read map would give them.
    const ranges: Array<[number, number]> = [];
    for (const [start, end] of [blocksOf(layer.archive, 'etc/passwd'), blocksOf(layer.archive, 'usr/lib/libstart.so'), blocksOf(layer.archive, 'usr/lib/libtwo.so')]) {
      const last = ranges.at(-1);
      if (last && start <= last[1]) last[1] = Math.max(last[1], end);
      else ranges.push([start, end]);
    }
    const profiled: ClipArchive = { ...layer.archive, startupSpans: [0], startupRanges: ranges };
    const built = (await buildStartupBundle(profiled, new RecordingSource(layer.stream)))!;
    blob = built.blob;
    archive = { ...profiled, startupBundle: built.bundle };
  });

  after(async () => {
    for (const fs of filesystems) await fs.unmount().catch(() => undefined);
    for (const m of await listFuseMounts(dir)) await forceUnmount(m.mountPoint).catch(() => undefined);
    if ((await listFuseMounts(dir)).length === 0) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('answers reads inside the ranges from the bundle, fetched once, and asks the registry for nothing', async () => {
    const m = await mount('good', () => blob);
    for (const file of ['etc/passwd', 'usr/lib/libstart.so', 'usr/lib/libtwo.so']) {
      assert.equal(await probeOk('sha256', `${m.mnt}/${file}`), expected(file), file);
    }
    assert.deepEqual(m.source.asked, [], 'no span fetched for reads inside the bundle');
    assert.equal(m.fetches(), 1);
    assert.deepEqual(m.counts.outcomes, ['fetched']);
    assert.equal(m.counts.bundleBytes, blob.length);
    // The inflated bundle is a cache file beside the spans, counted in the cache's usage.
    const usage = m.cache.usage().layers.find((l) => l.digest === archive.layerDigest);
    assert.ok(usage && usage.bytes >= archive.startupBundle.uncompressedSize, JSON.stringify(usage));

    // A file outside the ranges is read from spans.
    assert.equal(await probeOk('sha256', `${m.mnt}/usr/lib/unused.so`), expected('usr/lib/unused.so'));
    assert.ok(m.source.asked.length > 0, 'unused.so came from spans');
  });

  it('lets the FUSE server answer reads inside the ranges from the cached bundle without JavaScript', async () => {
    const m = await mount('native', () => blob);
    assert.ok(await m.bundle.inCache());
    await new Promise((resolve) => setImmediate(resolve)); // the server is told in the same turn
    for (const file of ['etc/passwd', 'usr/lib/libstart.so', 'usr/lib/libtwo.so']) {
      assert.equal(await probeOk('sha256', `${m.mnt}/${file}`), expected(file), file);
    }
    assert.equal(m.counts.readBytes, 0, 'no read reached the JavaScript bundle reader');
    assert.deepEqual(m.source.asked, [], 'no span fetched');
    // Bytes outside the ranges (the rest of unused.so's span) still go up to JavaScript and spans.
    assert.equal(await probeOk('sha256', `${m.mnt}/usr/lib/unused.so`), expected('usr/lib/unused.so'));
    assert.ok(m.source.asked.length > 0);
  });

  it('finds a bundle already in the cache without fetching it (a restarted clip)', async () => {
    const cache = new ContentCache(path.join(dir, 'good-cache'));
    await cache.load();
    const counts = new Counts();
    const bundle = new StartupBundleReader({ archive, cache, inflate: inflateStartupBundle, logger: memoryLogger().logger, metrics: counts });
    assert.equal(await bundle.load(), true);
    assert.deepEqual(counts.outcomes, ['cached']);
    const e = archive.entries.find((x) => x.path === 'usr/lib/libstart.so')!;
    const bytes = await bundle.read(e.dataOffset, e.size, new AbortController().signal);
    assert.equal(bytes && hex(bytes), expected('usr/lib/libstart.so'));
  });

  it('rejects a tampered bundle, logs it once, and serves the real bytes from spans', async () => {
    const tampered = Buffer.from(blob);
    tampered[tampered.length >> 1]! ^= 0x40;
    const m = await mount('tampered', () => tampered);
    for (const file of ['etc/passwd', 'usr/lib/libstart.so', 'usr/lib/libtwo.so']) {
      assert.equal(await probeOk('sha256', `${m.mnt}/${file}`), expected(file), file);
    }
    assert.ok(m.source.asked.length > 0, 'the reads went to spans');
    assert.deepEqual(m.counts.outcomes, ['failed']);
    assert.equal(m.counts.readBytes, 0);
    const warnings = m.lines.filter((l) => /start-up bundle .*digest mismatch.*reading spans instead/.test(l));
    assert.equal(warnings.length, 1, m.lines.join('\n'));
    assert.equal(m.fetches(), 1);
  });
});
