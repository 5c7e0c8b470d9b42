/**
 * Eviction sees reads the native FUSE server answers on its own: on a real mount, a span re-read from its
 * cache file (never reaching JavaScript) counts as recently read, so the content cache evicts another span
 * first; the evicted span is fetched again, checked and served when read later.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ContentCache } from '../../../src/fusefs/content-cache';
import { LayerFilesystem, forceUnmount, listFuseMounts } from '../../../src/fusefs';
import { LayerSpanReader, RangeSource } from '../../../src/fusefs/layer-span-reader';
import { recordingLogger } from '../../helpers/recording-logger';
import { runOk, tempDir } from '../../helpers/processes';
import { buildLayer, patternBytes } from '../fusefs/layer-fixture';
import { probeOk } from '../fusefs/probe';

const SPAN = 64 * 1024;
const hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('content cache recency through the native server', () => {
  let dir: string;
  let fs: LayerFilesystem | undefined;
  before(async () => {
    dir = await tempDir('cache-recency');
  });
  after(async () => {
    await fs?.unmount().catch(() => undefined);
    for (const m of await listFuseMounts(dir)) await forceUnmount(m.mountPoint).catch(() => undefined);
    if ((await listFuseMounts(dir)).length === 0) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('keeps the span the server re-read from its file and evicts the colder one', async () => {
    const big = patternBytes(4 * SPAN, 3);
    const layer = buildLayer([{ path: 'big.bin', type: 'file', data: big }], SPAN);
    const { archive, stream } = layer;
    const fetched: number[] = [];
    const source: RangeSource = {
      readRange: async (offset, length) => {
        fetched.push(Math.floor(offset / SPAN));
        return Buffer.from(stream.subarray(offset, offset + length));
      },
    };
    const cache = new ContentCache(path.join(dir, 'cache'), { maxBytes: 2 * SPAN });
    const reader = new LayerSpanReader({ archive, source, cache, logger: recordingLogger(), readAhead: 0 });
    // No spans kept in memory: every read the server passes up goes to the cache or the registry.
    fs = new LayerFilesystem(archive, reader, { logger: recordingLogger(), spanMemoryBytes: 0 });
    const mnt = path.join(dir, 'mnt');
    await fsp.mkdir(mnt);
    await fs.mount(mnt);
    const file = path.join(mnt, 'big.bin');
    const dataOffset = archive.entries[0]!.dataOffset;
    /** Reads 100 bytes of the file inside span `i` (from a child process) and checks them. */
    const readInSpan = async (i: number): Promise<void> => {
      const at = i * SPAN + 1000 - dataOffset;
      const got = await probeOk<{ len: number; sha256: string }>('pread', file, at, 100);
      assert.equal(got.sha256, hex(big.subarray(at, at + 100)), `bytes of span ${i}`);
    };
    const cached = async (): Promise<number[]> => {
      const names = new Set(await fsp.readdir(cache.spanDir(archive.layerDigest)));
      return archive.spanDigests.flatMap((d, i) => (names.has(d.slice(7)) ? [i] : []));
    };

    await readInSpan(1);
    await pause(30);
    await readInSpan(2);
    assert.deepEqual(await cached(), [1, 2]);
    await pause(30);
    // Span 1 again, past the page cache: the server reads its cache file itself; JavaScript never sees it.
    await runOk('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
    await readInSpan(1);
    assert.deepEqual(fetched, [1, 2], 'span 1 was served from its cache file');
    await pause(30);
    await readInSpan(3); // needs room: span 2 is now the least recently read
    assert.deepEqual(await cached(), [1, 3]);
    assert.equal(cache.isVerified(archive.layerDigest, archive.spanDigests[2]!), false, 'the evicted span is forgotten');
    await runOk('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
    await readInSpan(2);
    assert.deepEqual(fetched, [1, 2, 3, 2], 'the evicted span was fetched again');
    assert.ok(cache.usage().totalBytes <= 2 * SPAN);
  });
});
