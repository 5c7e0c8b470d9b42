import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import winston from 'winston';
import { ClipArchive } from '../../../src/archive/types';
import { UnavailableError } from '../../../src/errors';
import { BackgroundFetcher } from '../../../src/fusefs/background-fetcher';
import { ContentCache } from '../../../src/fusefs/content-cache';
import { ForegroundActivity, LayerSpanReader, RangeSource } from '../../../src/fusefs/layer-span-reader';
import { indexLayer } from '../../../src/indexer';
import { tempDir } from '../../helpers/processes';
import { pythonTars } from '../indexer/fixtures';

const SPAN = 64 * 1024;
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** An uncompressed layer held in memory, served by offset like a registry's range requests. */
class BufferSource implements RangeSource {
  requests = 0;
  corrupt = false;
  failing = false;
  constructor(private readonly data: Buffer) {}
  async readRange(offset: number, length: number): Promise<Buffer> {
    this.requests++;
    if (this.failing) throw new Error('connection refused');
    const out = Buffer.from(this.data.subarray(offset, offset + length));
    if (this.corrupt) out[0] = out[0]! ^ 0xff;
    return out;
  }
}

function archiveOf(data: Buffer): ClipArchive {
  const checkpoints = [];
  const spanDigests = [];
  for (let off = 0; off < data.length; off += SPAN) {
    checkpoints.push({ compressedOffset: off, bits: 0, uncompressedOffset: off, window: Buffer.alloc(0) });
    spanDigests.push(sha(data.subarray(off, off + SPAN)));
  }
  return {
    layerDigest: sha(data),
    diffId: sha(data),
    mediaType: 'application/vnd.oci.image.layer.v1.tar',
    compression: 'none',
    compressedSize: data.length,
    uncompressedSize: data.length,
    entries: [],
    checkpoints,
    spanDigests,
  };
}

describe('LayerSpanReader and the content cache', () => {
  let dir: string;
  let data: Buffer;
  let archive: ClipArchive;
  before(async () => {
    dir = await tempDir('spans');
    data = createHash('sha512').update('seed').digest();
    while (data.length < 5 * SPAN + 1234) data = Buffer.concat([data, createHash('sha512').update(data).digest()]);
    archive = archiveOf(data);
  });
  after(async () => fsp.rm(dir, { recursive: true, force: true }));

  it('fetches a span once, verifies it and caches it on disk for every later reader', async () => {
    const cache = new ContentCache(path.join(dir, 'c1'));
    const source = new BufferSource(data);
    const reader = new LayerSpanReader({ archive, source, cache });
    const spans = await Promise.all([reader.readSpan(2), reader.readSpan(2), reader.prefetch(2).then(() => reader.readSpan(2))]);
    assert.equal(source.requests, 1, 'concurrent reads of one span fetch it once');
    for (const s of spans) assert.deepEqual(s, data.subarray(2 * SPAN, 3 * SPAN));
    assert.equal(reader.fetchedBytes, SPAN);
    const last = await reader.readSpan(5);
    assert.deepEqual(last, data.subarray(5 * SPAN));

    const again = new LayerSpanReader({ archive, source, cache });
    assert.deepEqual(await again.readSpan(2), spans[0]);
    assert.equal(source.requests, 2, 'a new reader (e.g. after a restart) reads from the disk cache');
    assert.deepEqual([...(await cache.cachedSpans(archive.layerDigest))].sort(), [archive.spanDigests[2], archive.spanDigests[5]].sort());
  });

  it('never returns or caches bytes that do not match the span digest', async () => {
    const cache = new ContentCache(path.join(dir, 'c2'));
    const source = new BufferSource(data);
    source.corrupt = true;
    const reader = new LayerSpanReader({ archive, source, cache });
    await assert.rejects(reader.readSpan(1), UnavailableError);
    assert.equal((await cache.cachedSpans(archive.layerDigest)).size, 0);
    source.corrupt = false;
    assert.deepEqual(await reader.readSpan(1), data.subarray(SPAN, 2 * SPAN), 'a later read succeeds');
  });

  /** The cache file of span i (named by the span's digest). */
  const spanPath = (cacheDir: string, index: number): string =>
    path.join(cacheDir, 'sha256', archive.layerDigest.slice('sha256:'.length), archive.spanDigests[index]!.slice('sha256:'.length));

  /** Writes span i's cache file behind the cache's back, as a disk fault or an earlier process would. */
  async function plantSpanFile(cacheDir: string, index: number, bytes: Buffer): Promise<void> {
    await fsp.mkdir(path.dirname(spanPath(cacheDir, index)), { recursive: true });
    await fsp.writeFile(spanPath(cacheDir, index), bytes);
  }

  it('ignores a damaged cache file and fetches the span again', async () => {
    const cache = new ContentCache(path.join(dir, 'c3'));
    const source = new BufferSource(data);
    await plantSpanFile(cache.dir, 0, Buffer.alloc(SPAN, 7));
    const reader = new LayerSpanReader({ archive, source, cache });
    assert.equal(await reader.readSlice(0, 0, 10), undefined, 'an unverified file gives no slices');
    assert.deepEqual(await reader.readSpan(0), data.subarray(0, SPAN));
    assert.equal(source.requests, 1);
    assert.deepEqual(await reader.readSlice(0, 5, 10), data.subarray(5, 15), 'the refetched span is served in slices');
  });

  it('checks a span left by an earlier process once, then serves slices of its file', async () => {
    const cache = new ContentCache(path.join(dir, 'c6'));
    const source = new BufferSource(data);
    await plantSpanFile(cache.dir, 2, data.subarray(2 * SPAN, 3 * SPAN));
    const reader = new LayerSpanReader({ archive, source, cache });
    assert.equal(await reader.readSlice(2, 0, 10), undefined);
    assert.deepEqual(await reader.readSpan(2), data.subarray(2 * SPAN, 3 * SPAN));
    assert.equal(source.requests, 0, 'served from the cache');
    assert.deepEqual(await reader.readSlice(2, 100, 50), data.subarray(2 * SPAN + 100, 2 * SPAN + 150));
    await fsp.truncate(spanPath(cache.dir, 2), 10);
    assert.equal(await reader.readSlice(2, 100, 50), undefined, 'a file cut short is no longer trusted');
    assert.deepEqual(await reader.readSpan(2), data.subarray(2 * SPAN, 3 * SPAN), 'and is fetched again');
    assert.equal(source.requests, 1);
  });

  it('trusts spans written by another user of the same cache (the indexer) without a fetch', async () => {
    const cache = new ContentCache(path.join(dir, 'c7'));
    const source = new BufferSource(data);
    await cache.put(archive.layerDigest, archive.spanDigests[1]!, data.subarray(SPAN, 2 * SPAN));
    const reader = new LayerSpanReader({ archive, source, cache });
    assert.deepEqual(await reader.readSlice(1, 0, 4), data.subarray(SPAN, SPAN + 4));
    assert.equal(source.requests, 0);
  });

  it('never serves a span cached for another archive of the layer unless its bytes are the ones this archive expects', async () => {
    const cache = new ContentCache(path.join(dir, 'c8'));
    // A forged archive of the same layer, whose span 1 is other bytes with their own (matching) digest,
    // served by a source that hands out those bytes: its reader caches them.
    const forgedBytes = Buffer.alloc(SPAN, 0x41);
    const forged: ClipArchive = { ...archive, spanDigests: archive.spanDigests.map((d, i) => (i === 1 ? sha(forgedBytes) : d)) };
    const forgedSource = new BufferSource(Buffer.concat([data.subarray(0, SPAN), forgedBytes, data.subarray(2 * SPAN)]));
    assert.deepEqual(await new LayerSpanReader({ archive: forged, source: forgedSource, cache }).readSpan(1), forgedBytes);
    // The real archive, in the same process and cache, gets the real bytes: its span 1 is another file.
    const source = new BufferSource(data);
    const reader = new LayerSpanReader({ archive, source, cache });
    assert.equal(await reader.readSlice(1, 0, 16), undefined, 'the forged file is not this archive\'s span 1');
    assert.deepEqual(await reader.readSpan(1), data.subarray(SPAN, 2 * SPAN));
    assert.equal(source.requests, 1, 'fetched from the registry, not taken from the forged file');
    assert.deepEqual(await reader.readSlice(1, 0, 16), data.subarray(SPAN, SPAN + 16));
  });

  it('serves verified bytes from memory when the cache cannot keep them', async () => {
    // The cache directory lies under a regular file, so every write fails (as a full disk would).
    const blocker = path.join(dir, 'not-a-dir');
    await fsp.writeFile(blocker, 'x');
    const warnings: string[] = [];
    const logger = { warn: (m: string) => warnings.push(m) } as unknown as winston.Logger;
    const source = new BufferSource(data);
    const reader = new LayerSpanReader({ archive, source, cache: new ContentCache(path.join(blocker, 'cache')), logger });
    assert.deepEqual(await reader.readSpan(3), data.subarray(3 * SPAN, 4 * SPAN));
    assert.deepEqual(await reader.readSpan(4), data.subarray(4 * SPAN, 5 * SPAN));
    assert.equal(warnings.length, 1, `the failing cache is reported once: ${warnings.join(' | ')}`);
    assert.match(warnings[0]!, /serving verified bytes from memory/);
  });

  it('reports an unreachable registry as UNAVAILABLE', async () => {
    const source = new BufferSource(data);
    source.failing = true;
    const reader = new LayerSpanReader({ archive, source, cache: new ContentCache(path.join(dir, 'c4')) });
    await assert.rejects(reader.readSpan(3), /span 3: connection refused/);
  });

  it('fills every span in the background and then stops fetching', async () => {
    const cache = new ContentCache(path.join(dir, 'c5'));
    const source = new BufferSource(data);
    const activity = new ForegroundActivity();
    const reader = new LayerSpanReader({ archive, source, cache, activity });
    await reader.readSpan(0);
    const fetcher = new BackgroundFetcher(activity, winston.createLogger({ silent: true }), { startupGraceMs: 0 });
    fetcher.add(reader);
    const deadline = Date.now() + 10_000;
    while ((await cache.cachedSpans(archive.layerDigest)).size < archive.checkpoints.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await fetcher.stop();
    assert.equal((await cache.cachedSpans(archive.layerDigest)).size, archive.checkpoints.length);
    assert.equal(source.requests, archive.checkpoints.length, 'each span fetched exactly once');
  });
});

describe('BackgroundFetcher', () => {
  it('leaves a layer alone for its start-up grace, then fills it', async () => {
    const dir = await tempDir('background-grace');
    try {
      const { tar } = pythonTars({ tar: "tf = tarfile.open(fileobj=buf, mode='w')\nadd(tf, 'data', data=bytes(range(256)) * 2000)\ntf.close()" });
      const blob = zlib.gzipSync(tar);
      const archive = await indexLayer([blob], { layerDigest: sha(blob), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', compression: 'gzip', spanSize: SPAN });
      const source = new BufferSource(blob);
      const cache = new ContentCache(path.join(dir, 'c'));
      const reader = new LayerSpanReader({ archive, source, cache });
      const fetcher = new BackgroundFetcher(new ForegroundActivity(), winston.createLogger({ silent: true }), { startupGraceMs: 1_500 });
      const added = Date.now();
      fetcher.add(reader);
      try {
        while (source.requests === 0 && Date.now() - added < 10_000) await new Promise((r) => setTimeout(r, 20));
        assert.ok(source.requests > 0, 'fetching starts after the grace');
        assert.ok(Date.now() - added >= 1_500, `the first span was fetched ${Date.now() - added} ms after the layer was added`);
      } finally {
        await fetcher.stop();
      }
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('LayerSpanReader: zstd layers (no random access)', () => {
  let dir: string;
  let tar: Buffer;
  let blob: Buffer;
  let archive: ClipArchive;
  before(async () => {
    dir = await tempDir('zstd-spans');
    ({ tar } = pythonTars({ tar: "tf = tarfile.open(fileobj=buf, mode='w')\nadd(tf, 'data', data=bytes(range(256)) * 2000)\ntf.close()" }));
    blob = execFileSync('zstd', ['-q', '-c'], { input: tar });
    archive = await indexLayer([blob], { layerDigest: sha(blob), mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', compression: 'zstd', spanSize: SPAN });
  });
  after(async () => fsp.rm(dir, { recursive: true, force: true }));

  /** A registry blob that can only be streamed whole (range reads would be a bug). */
  class WholeBlobSource implements RangeSource {
    streams = 0;
    constructor(private readonly bytes: Buffer) {}
    async readRange(): Promise<Buffer> {
      throw new Error('a zstd layer must not be read by range');
    }
    async *stream(): AsyncGenerator<Buffer> {
      this.streams++;
      for (let o = 0; o < this.bytes.length; o += 10_000) yield this.bytes.subarray(o, o + 10_000);
    }
  }

  it('decompresses the whole blob once for every missing span, and caches all of them', async () => {
    assert.ok(archive.checkpoints.length >= 4, `${archive.checkpoints.length} spans`);
    const cache = new ContentCache(path.join(dir, 'c1'));
    const source = new WholeBlobSource(blob);
    const reader = new LayerSpanReader({ archive, source, cache });
    const [s1, s3] = await Promise.all([reader.readSpan(1), reader.readSpan(3)]);
    assert.equal(source.streams, 1, 'concurrent reads share one pass over the blob');
    assert.deepEqual(s1, tar.subarray(SPAN, 2 * SPAN));
    assert.deepEqual(s3, tar.subarray(3 * SPAN, 4 * SPAN));
    assert.equal(reader.fetchedBytes, blob.length);
    assert.equal((await cache.cachedSpans(archive.layerDigest)).size, new Set(archive.spanDigests).size, 'one file per distinct span');
    assert.deepEqual(await reader.readSpan(0), tar.subarray(0, SPAN));
    assert.equal(source.streams, 1, 'every span came from that one pass');
  });

  it('ensureWhole decompresses the layer again when a span is missing, and does nothing when none is', async () => {
    const cache = new ContentCache(path.join(dir, 'c4'));
    const source = new WholeBlobSource(blob);
    await new LayerSpanReader({ archive, source, cache }).ensureWhole();
    assert.equal(source.streams, 1);
    await new LayerSpanReader({ archive, source, cache }).ensureWhole();
    assert.equal(source.streams, 1, 'every span is cached');
    await fsp.rm(path.join(cache.spanDir(archive.layerDigest), archive.spanDigests[2]!.slice('sha256:'.length)));
    const reader = new LayerSpanReader({ archive, source, cache });
    await reader.ensureWhole();
    assert.equal(source.streams, 2, 'a missing span means the whole blob again');
    assert.deepEqual(await reader.readSpan(2), tar.subarray(2 * SPAN, 3 * SPAN));
  });

  it('refuses spans that do not match the archive, and keeps none of them', async () => {
    const cache = new ContentCache(path.join(dir, 'c2'));
    const wrong = { ...archive, spanDigests: archive.spanDigests.map((d, i) => (i === 2 ? sha(Buffer.from('other')) : d)) };
    const reader = new LayerSpanReader({ archive: wrong, source: new WholeBlobSource(blob), cache });
    await assert.rejects(reader.readSpan(0), (err: unknown) => err instanceof UnavailableError && /span 2: digest mismatch/.test((err as Error).message));
    assert.equal((await cache.cachedSpans(archive.layerDigest)).size, 0);
  });

  it('answers UnavailableError when the source can only read ranges', async () => {
    const reader = new LayerSpanReader({ archive, source: new BufferSource(blob), cache: new ContentCache(path.join(dir, 'c3')) });
    await assert.rejects(reader.readSpan(0), /needs the whole blob/);
  });
});
