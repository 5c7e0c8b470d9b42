/**
 * Read-ahead keeps going while a sequential reader consumes spans the native server answers from their
 * cache files on its own: the server reports the first read of each such span, so the window of spans
 * loaded ahead moves with the reader instead of stopping until the reader finds a span missing.
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
import { tempDir } from '../../helpers/processes';
import { buildLayer, patternBytes } from '../fusefs/layer-fixture';
import { probeOk } from '../fusefs/probe';

const SPAN = 512 * 1024;
const SPANS = 12;
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('sequential read-ahead through the native server', () => {
  let dir: string;
  let fs: LayerFilesystem | undefined;
  before(async () => {
    dir = await tempDir('read-ahead');
  });
  after(async () => {
    await fs?.unmount().catch(() => undefined);
    for (const m of await listFuseMounts(dir)) await forceUnmount(m.mountPoint).catch(() => undefined);
    if ((await listFuseMounts(dir)).length === 0) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('moves the read-ahead on when the reader reaches a span the server reads from its cache file', async () => {
    const big = patternBytes(SPANS * SPAN, 7);
    const { archive, stream } = buildLayer([{ path: 'big.bin', type: 'file', data: big }], SPAN);
    const requested: number[] = [];
    const source: RangeSource = {
      readRange: async (offset, length) => {
        requested.push(Math.floor(offset / SPAN));
        return Buffer.from(stream.subarray(offset, offset + length));
      },
    };
    const cache = new ContentCache(path.join(dir, 'cache'));
    const reader = new LayerSpanReader({ archive, source, cache, logger: recordingLogger(), readAhead: 2 });
    // No spans kept in memory: a read reaches JavaScript only for a span not yet verified in the cache.
    fs = new LayerFilesystem(archive, reader, { logger: recordingLogger(), spanMemoryBytes: 0 });
    const mnt = path.join(dir, 'mnt');
    await fsp.mkdir(mnt);
    await fs.mount(mnt);
    const file = path.join(mnt, 'big.bin');
    const dataOffset = archive.entries[0]!.dataOffset;
    /** Reads 100 bytes at the start of span `i` (from a child process; the kernel reads ahead within the span) and checks them. */
    const readInSpan = async (i: number): Promise<void> => {
      const at = i * SPAN + 1000 - dataOffset;
      const got = await probeOk<{ len: number; sha256: string }>('pread', file, at, 100);
      assert.equal(got.sha256, createHash('sha256').update(big.subarray(at, at + 100)).digest('hex'), `bytes of span ${i}`);
    };
    /** Waits (10 s at most) until span i is verified in the cache. */
    const cached = async (i: number, after: string): Promise<void> => {
      for (const start = Date.now(); !cache.isVerified(archive.layerDigest, archive.spanDigests[i]!); ) {
        if (Date.now() - start > 10_000) assert.fail(`span ${i} was not loaded ahead ${after} (requested: ${requested.join(' ')})`);
        await pause(10);
      }
    };

    await readInSpan(0);
    await readInSpan(1); // the second span in order: spans 2 and 3 are loaded ahead
    await cached(2, 'after spans 0 and 1');
    await cached(3, 'after spans 0 and 1');
    for (let k = 2; k + 2 < SPANS; k++) {
      // Span k is in the cache: the server answers it from its file and JavaScript sees no read request.
      await readInSpan(k);
      await cached(k + 2, `once the reader reached span ${k}`);
    }
    assert.deepEqual([...requested].sort((x, y) => x - y), Array.from({ length: SPANS }, (_, i) => i), 'each span was fetched once');
  });
});
