import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import winston from 'winston';
import { ClipArchive } from '../../../src/archive/types';
import { UnavailableError } from '../../../src/errors';
import { BackgroundFetcher } from '../../../src/fusefs/background-fetcher';
import { ContentCache } from '../../../src/fusefs/content-cache';
import { ForegroundActivity, LayerSpanReader, RangeSource } from '../../../src/fusefs/layer-span-reader';
import { tempDir } from '../../helpers/processes';

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
    assert.deepEqual([...(await cache.cachedSpans(archive.layerDigest))].sort(), [2, 5]);
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

  it('ignores a damaged cache file and fetches the span again', async () => {
    const cache = new ContentCache(path.join(dir, 'c3'));
    const source = new BufferSource(data);
    await cache.put(archive.layerDigest, 0, Buffer.alloc(SPAN, 7));
    const reader = new LayerSpanReader({ archive, source, cache });
    assert.deepEqual(await reader.readSpan(0), data.subarray(0, SPAN));
    assert.equal(source.requests, 1);
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
    const fetcher = new BackgroundFetcher(activity, winston.createLogger({ silent: true }));
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
