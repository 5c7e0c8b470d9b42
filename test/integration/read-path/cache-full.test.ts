/**
 * A full disk under the content cache (a real 192 KiB tmpfs): reads are still answered from verified bytes,
 * the failure is logged once rather than per read, nothing partial is left in the cache, and once space
 * returns spans are cached again.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type winston from 'winston';
import { ClipArchive } from '../../../src/archive/types';
import { ContentCache } from '../../../src/fusefs/content-cache';
import { LayerSpanReader, RangeSource } from '../../../src/fusefs/layer-span-reader';
import { runOk, tempDir } from '../../helpers/processes';

const SPAN = 64 * 1024;
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** An uncompressed layer of `spans` spans of distinct bytes, and its archive. */
function layer(spans: number): { data: Buffer; archive: ClipArchive } {
  const data = Buffer.alloc(spans * SPAN);
  for (let i = 0; i < data.length; i += 32) createHash('sha256').update(String(i)).digest().copy(data, i);
  const checkpoints = [];
  const spanDigests = [];
  for (let off = 0; off < data.length; off += SPAN) {
    checkpoints.push({ compressedOffset: off, bits: 0, uncompressedOffset: off, window: Buffer.alloc(0) });
    spanDigests.push(sha(data.subarray(off, off + SPAN)));
  }
  const archive: ClipArchive = {
    layerDigest: sha(data), diffId: sha(data), mediaType: 'application/vnd.oci.image.layer.v1.tar', compression: 'none',
    compressedSize: data.length, uncompressedSize: data.length, entries: [], checkpoints, spanDigests,
  };
  return { data, archive };
}

describe('content cache on a full disk', () => {
  let dir: string;
  let mnt: string;
  before(async () => {
    dir = await tempDir('cache-full');
    mnt = path.join(dir, 'tmpfs');
    await fsp.mkdir(mnt);
    await runOk('mount', ['-t', 'tmpfs', '-o', 'size=192k,mode=0700', 'tmpfs', mnt]);
  });
  after(async () => {
    await runOk('umount', [mnt]).catch(() => undefined);
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('serves verified bytes from memory when the cache fills up, says so once, and caches again when space returns', async () => {
    const { data, archive } = layer(8);
    const source: RangeSource = { readRange: async (offset, length) => Buffer.from(data.subarray(offset, offset + length)) };
    const warnings: string[] = [];
    const logger = { warn: (m: string) => warnings.push(m) } as unknown as winston.Logger;
    const cache = new ContentCache(path.join(mnt, 'cache'));
    const reader = new LayerSpanReader({ archive, source, cache, logger, readAhead: 0 });
    for (let i = 0; i < 8; i++) assert.deepEqual(await reader.readSpan(i), data.subarray(i * SPAN, (i + 1) * SPAN), `span ${i}`);
    const cached = await cache.cachedSpans(archive.layerDigest);
    assert.ok(cached.size >= 1 && cached.size < 8, `${cached.size} spans fit in 192 KiB`);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /ENOSPC/);
    assert.match(warnings[0]!, /serving verified bytes from memory/);
    const names = await fsp.readdir(cache.spanDir(archive.layerDigest));
    assert.deepEqual(names.filter((n) => n.startsWith('.tmp')), [], 'no partial file is left behind');
    for (const digest of cached) assert.equal(sha((await cache.get(archive.layerDigest, digest))!), digest, 'what was cached is whole');

    // Space comes back: the next span read is kept again.
    for (const digest of cached) await fsp.rm(path.join(cache.spanDir(archive.layerDigest), digest.slice(7)));
    const again = new LayerSpanReader({ archive, source, cache, logger, readAhead: 0 });
    await again.readSpan(7);
    assert.ok((await cache.cachedSpans(archive.layerDigest)).has(archive.spanDigests[7]!));
  });
});
