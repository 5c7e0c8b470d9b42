/**
 * The content cache's bounds on a real directory: max_size is never exceeded (counted as the disk blocks its
 * files take), eviction follows recency and spares mounted layers for background writes, min_free stops
 * background writes, and an evicted span is fetched again and checked when read.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ClipArchive } from '../../../src/archive/types';
import { CacheFullError } from '../../../src/errors';
import { CacheCollector } from '../../../src/fusefs/cache-collector';
import { monotonicMs } from '../../../src/fusefs/cache-index';
import { scanCache } from '../../../src/fusefs/cache-scan';
import { ContentCache } from '../../../src/fusefs/content-cache';
import { LayerSpanReader, RangeSource } from '../../../src/fusefs/layer-span-reader';
import { recordingLogger } from '../../helpers/recording-logger';
import { tempDir } from '../../helpers/processes';

const KIB = 1024;
const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const layerOf = (n: number): string => sha(`layer ${n}`);
/** 8 KiB of bytes unique to `name`. */
const bytesOf = (name: string, size = 8 * KIB): Buffer => {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i += 32) createHash('sha256').update(`${name}/${i}`).digest().copy(out, i);
  return out;
};

/** Disk bytes of the files in the cache directory, temporary ones included, in 512-byte blocks as du counts. */
async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await fsp.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else total += (await fsp.stat(p)).blocks * 512;
    }
  };
  await walk(dir);
  return total;
}

describe('ContentCache bounds', () => {
  let dir: string;
  let n = 0;
  const fresh = async (): Promise<string> => path.join(dir, `c${n++}`);
  before(async () => {
    dir = await tempDir('cache-bounds');
  });
  after(() => fsp.rm(dir, { recursive: true, force: true }));

  it('never holds more than max_size, evicting the least recently read spans first', async () => {
    const cacheDir = await fresh();
    const cache = new ContentCache(cacheDir, { maxBytes: 40 * KIB });
    const spans = Array.from({ length: 12 }, (_, i) => bytesOf(`s${i}`));
    for (let i = 0; i < spans.length; i++) {
      await cache.put(layerOf(i % 3), sha(spans[i]!), spans[i]!);
      // Keep span 0 warm: read it after every write.
      await cache.get(layerOf(0), sha(spans[0]!));
      const used = await diskUsage(cacheDir);
      assert.ok(used <= 40 * KIB, `after span ${i}: ${used} bytes on disk`);
      assert.ok(cache.usage().totalBytes <= 40 * KIB);
    }
    const left = (await scanCache(cacheDir)).spans.map((s) => s.span);
    assert.equal(left.length, 5, `40 KiB holds five 8 KiB spans: ${left.length}`);
    assert.ok(left.includes(sha(spans[0]!)), 'the span read all along is kept');
    for (const i of [8, 9, 10, 11]) assert.ok(left.includes(sha(spans[i]!)), `recent span ${i} kept`);
    assert.equal(cache.isVerified(layerOf(1), sha(spans[1]!)), false, 'an evicted span is no longer verified');
    assert.equal(cache.usage().evictedSpans, 7);
  });

  it('spares mounted layers (by the read times they report) until only their spans are left', async () => {
    const cache = new ContentCache(await fresh(), { maxBytes: 32 * KIB });
    const mounted = layerOf(10);
    const idle = layerOf(11);
    const m = [bytesOf('m0'), bytesOf('m1')];
    const i = [bytesOf('i0'), bytesOf('i1')];
    for (const b of m) await cache.put(mounted, sha(b), b);
    for (const b of i) await cache.put(idle, sha(b), b);
    // The native server read m1 just now, m0 never.
    const untrack = cache.trackReads(mounted, () => [[sha(m[1]!), monotonicMs() + 1]]);
    assert.equal(cache.usage().layers.find((l) => l.digest === mounted)?.mounted, true);

    // A background write may only evict the idle layer's spans.
    const b1 = bytesOf('b1', 16 * KIB);
    await cache.put(idle, sha(b1), b1, { background: true });
    assert.deepEqual((await cache.cachedSpans(idle)).size, 1);
    const b2 = bytesOf('b2', 16 * KIB);
    assert.equal(await cache.hasRoomFor(b2.length), true, 'the idle layer still has 16 KiB to give');
    await cache.put(idle, sha(b2), b2, { background: true });
    assert.deepEqual([...(await cache.cachedSpans(idle))], [sha(b2)]);
    // Once the other layer is mounted too, only mounted spans are left to evict.
    const untrackIdle = cache.trackReads(idle, () => []);
    const b3 = bytesOf('b3');
    assert.equal(await cache.hasRoomFor(b3.length), false, 'only mounted spans are left to evict');
    await assert.rejects(cache.put(idle, sha(b3), b3, { background: true }), CacheFullError);
    assert.equal((await cache.cachedSpans(mounted)).size, 2);

    // A foreground write evicts the coldest span of a mounted layer: m0 (never read, written first), not m1.
    await cache.put(idle, sha(b3), b3);
    assert.deepEqual([...(await cache.cachedSpans(mounted))], [sha(m[1]!)]);
    untrack();
    untrackIdle();
    assert.equal(cache.isMounted(mounted), false);
  });

  it('refuses a span larger than max_size, and a best-effort writer drops it and goes on', async () => {
    const cacheDir = await fresh();
    const cache = new ContentCache(cacheDir, { maxBytes: 16 * KIB });
    const big = bytesOf('big', 20 * KIB);
    await assert.rejects(cache.put(layerOf(20), sha(big), big), CacheFullError);
    const writer = await cache.openSpanWriter(layerOf(20), { background: true, bestEffort: true });
    await writer.write(big.subarray(0, 12 * KIB));
    await writer.write(big.subarray(12 * KIB));
    await writer.commit(sha(big));
    assert.equal(cache.isVerified(layerOf(20), sha(big)), false);
    assert.equal(await diskUsage(cacheDir), 0, 'nothing left on disk');
    assert.equal(cache.usage().reservedBytes, 0, 'reservations released');
  });

  it('stops background writes below min_free; foreground writes go on', async () => {
    let free = 100 * KIB;
    const cache = new ContentCache(await fresh(), { minFreeBytes: 64 * KIB }, async () => free);
    const a = bytesOf('a');
    await cache.put(layerOf(30), sha(a), a, { background: true });
    free = 70 * KIB;
    const b = bytesOf('b');
    assert.equal(await cache.hasRoomFor(b.length), false);
    await assert.rejects(cache.put(layerOf(30), sha(b), b, { background: true }), CacheFullError);
    await cache.put(layerOf(30), sha(b), b);
    assert.equal(cache.isVerified(layerOf(30), sha(b)), true);
    assert.deepEqual([...(await cache.cachedSpans(layerOf(30)))], [sha(b)], 'below min_free a foreground write evicts as much as it writes');
    const c = bytesOf('c');
    await cache.put(layerOf(31), sha(c), c);
    assert.equal(cache.usage().totalBytes, 8 * KIB, 'the cache does not grow below min_free, and is not emptied either');
    assert.deepEqual([...(await cache.cachedSpans(layerOf(31)))], [sha(c)]);
    free = 100 * KIB;
    await cache.put(layerOf(30), sha(a), a);
    assert.equal(cache.usage().totalBytes, 16 * KIB, 'it grows again once space returns');
  });

  it('learns the directory at start-up: sizes, leftovers removed, trimmed to a lowered max_size', async () => {
    const cacheDir = await fresh();
    const first = new ContentCache(cacheDir);
    const spans = Array.from({ length: 4 }, (_, i) => bytesOf(`load${i}`));
    for (const s of spans) await first.put(layerOf(40), sha(s), s);
    await fsp.writeFile(path.join(first.spanDir(layerOf(40)), '.tmp-0123456789abcdef'), 'partial');
    const next = new ContentCache(cacheDir, { maxBytes: 16 * KIB });
    await next.load();
    assert.equal(next.usage().totalBytes, 16 * KIB);
    assert.ok((await diskUsage(cacheDir)) <= 16 * KIB);
    assert.deepEqual((await scanCache(cacheDir)).temporary, []);
  });

  it('a reader fetches an evicted span again, checks it and caches it again', async () => {
    const SPAN = 16 * KIB;
    const data = Buffer.concat([0, 1, 2, 3].map((i) => bytesOf(`span${i}`, SPAN)));
    const checkpoints = [0, 1, 2, 3].map((i) => ({ compressedOffset: i * SPAN, bits: 0, uncompressedOffset: i * SPAN, window: Buffer.alloc(0) }));
    const archive: ClipArchive = {
      layerDigest: sha(data), diffId: sha(data), mediaType: 'application/vnd.oci.image.layer.v1.tar', compression: 'none',
      compressedSize: data.length, uncompressedSize: data.length, entries: [], checkpoints,
      spanDigests: [0, 1, 2, 3].map((i) => sha(data.subarray(i * SPAN, (i + 1) * SPAN))),
    };
    const fetched: number[] = [];
    const source: RangeSource = {
      readRange: async (offset, length) => {
        fetched.push(offset / SPAN);
        return Buffer.from(data.subarray(offset, offset + length));
      },
    };
    const cache = new ContentCache(await fresh(), { maxBytes: 2 * SPAN });
    const reader = new LayerSpanReader({ archive, source, cache, logger: recordingLogger(), readAhead: 0 });
    for (const i of [0, 1, 2, 3, 0]) assert.deepEqual(await reader.readSpan(i, new AbortController().signal), data.subarray(i * SPAN, (i + 1) * SPAN));
    assert.deepEqual(fetched, [0, 1, 2, 3, 0], 'span 0 was evicted and fetched again');
    assert.ok(cache.isVerified(archive.layerDigest, archive.spanDigests[0]!));
    assert.deepEqual([...(await cache.cachedSpans(archive.layerDigest))].sort(), [archive.spanDigests[0]!, archive.spanDigests[3]!].sort());
    // A background prefetch finds no room without evicting a mounted layer's spans, and fetches nothing.
    const untrack = cache.trackReads(archive.layerDigest, () => []);
    await assert.rejects(reader.prefetch(1), CacheFullError);
    assert.equal(fetched.length, 5);
    untrack();
  });

  it('collects layers no snapshot references after the grace period, never mounted ones', async () => {
    const cache = new ContentCache(await fresh());
    const [kept, unused, mounted] = [layerOf(50), layerOf(51), layerOf(52)];
    for (const l of [kept, unused, mounted]) await cache.put(l, sha(`x${l}`), Buffer.from(`x${l}`));
    const untrack = cache.trackReads(mounted, () => []);
    const collector = new CacheCollector({ cache, referenced: () => new Set([kept]), graceMs: 0, logger: recordingLogger() });
    await collector.pass();
    assert.deepEqual(cache.layerDigests().sort(), [kept, mounted].sort());
    assert.deepEqual((await scanCache(cache.dir)).layers.sort(), [kept, mounted].sort());
    untrack();
    await collector.pass();
    assert.deepEqual(cache.layerDigests(), [kept]);
    // A layer removed by another process (clip cache prune) is forgotten on the next pass.
    await fsp.rm(cache.spanDir(kept), { recursive: true });
    await collector.pass();
    assert.equal(cache.usage().totalBytes, 0);
  });
});
