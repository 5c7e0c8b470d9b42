import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import zlib from 'node:zlib';
import type { Checkpoint } from '../../../src/archive/types';
import { InvalidArgumentError } from '../../../src/errors';
import { GzipDecoder } from '../../../src/indexer/gzip-decoder';
import { spanRange } from '../../../src/indexer/span-decoder';
import { extractSpan } from '../../../src/indexer/zran';
import { gzipCommand, mixedData, prng, randomBytes, randomChunks } from './fixtures';

interface Index {
  checkpoints: Checkpoint[];
  output: Buffer;
}

/** Runs the gzip decoder over `chunks`, collecting its output and checkpoints. */
async function index(chunks: Buffer[], spanSize: number): Promise<Index> {
  const checkpoints: Checkpoint[] = [];
  const parts: Buffer[] = [];
  let offset = 0;
  const decoder = new GzipDecoder(spanSize, {
    data(chunk) {
      parts.push(Buffer.from(chunk)); // only valid during the call
      offset += chunk.length;
    },
    checkpoint(checkpoint) {
      assert.equal(checkpoint.uncompressedOffset, offset, 'a checkpoint arrives right after the output before it');
      checkpoints.push(checkpoint);
    },
  });
  for (const chunk of chunks) await decoder.write(chunk);
  await decoder.end();
  return { checkpoints, output: Buffer.concat(parts) };
}

/** Extracts every span from its checkpoint with exactly the blob range a reader would fetch. */
async function checkEverySpan(gz: Buffer, data: Buffer, checkpoints: Checkpoint[]): Promise<void> {
  const archive = { layerDigest: 'test', compression: 'gzip' as const, compressedSize: gz.length, uncompressedSize: data.length, checkpoints, spanDigests: [] };
  for (let i = 0; i < checkpoints.length; i++) {
    const range = spanRange(archive, i);
    const span = await extractSpan(checkpoints[i], gz.subarray(range.compressedStart, range.compressedEnd), range.uncompressedEnd - range.uncompressedStart);
    assert.ok(span.equals(data.subarray(range.uncompressedStart, range.uncompressedEnd)), `span ${i} (bits ${checkpoints[i].bits})`);
  }
}

function checkCheckpoints(checkpoints: Checkpoint[], data: Buffer, spanSize: number): void {
  assert.ok(checkpoints.length >= 1);
  assert.equal(checkpoints[0].uncompressedOffset, 0);
  assert.equal(checkpoints[0].bits, 0);
  assert.equal(checkpoints[0].window.length, 0);
  for (let i = 1; i < checkpoints.length; i++) {
    const { uncompressedOffset: out, window } = checkpoints[i];
    assert.ok(out - checkpoints[i - 1].uncompressedOffset >= spanSize, 'spans are at least spanSize long');
    assert.ok(out < data.length, 'no empty span at the end');
    assert.ok(window.equals(data.subarray(Math.max(0, out - 32768), out)), `window ${i} is the 32 KiB before it`);
    assert.ok(checkpoints[i].bits >= 0 && checkpoints[i].bits <= 7);
  }
}

async function roundTrip(gz: Buffer, data: Buffer, spanSize: number, chunks: Buffer[] = [gz]): Promise<Checkpoint[]> {
  const { checkpoints, output } = await index(chunks, spanSize);
  assert.ok(output.equals(data), 'inflated output equals the original');
  checkCheckpoints(checkpoints, data, spanSize);
  await checkEverySpan(gz, data, checkpoints);
  return checkpoints;
}

async function rejectsData(promise: Promise<unknown>, pattern?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => err instanceof InvalidArgumentError && (!pattern || pattern.test(err.message)));
}

describe('gzip index (zran checkpoints)', () => {
  it('resumes at checkpoints of every bit offset 0-7', async () => {
    const bitsSeen = new Set<number>();
    const next = prng(42);
    for (let round = 0; round < 40 && bitsSeen.size < 8; round++) {
      const data = mixedData(300_000 + (next() % 300_000), next());
      const level = 1 + (round % 9);
      const strategy = [zlib.constants.Z_DEFAULT_STRATEGY, zlib.constants.Z_FILTERED, zlib.constants.Z_HUFFMAN_ONLY][round % 3];
      const gz = round % 4 === 3 ? gzipCommand(data, level) : zlib.gzipSync(data, { level, strategy });
      const spanSize = 16384 << (round % 3);
      for (const checkpoint of await roundTrip(gz, data, spanSize)) bitsSeen.add(checkpoint.bits);
    }
    assert.deepEqual([...bitsSeen].sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('handles stored blocks: incompressible data, zlib level 0 and gzip -1', async () => {
    const random = randomBytes(700_000, 3);
    await roundTrip(zlib.gzipSync(random, { level: 6 }), random, 32768);
    await roundTrip(zlib.gzipSync(random, { level: 0 }), random, 16384);
    const mixed = Buffer.concat([random.subarray(0, 200_000), mixedData(400_000, 9), random.subarray(200_000)]);
    await roundTrip(gzipCommand(mixed, 1), mixed, 65536);
  });

  it('gives the same index whatever the input chunking', async () => {
    const data = mixedData(900_000, 5);
    const gz = zlib.gzipSync(data, { level: 6 });
    const whole = await roundTrip(gz, data, 65536);
    for (const [maxChunk, seed] of [[997, 2], [4096, 3], [100_000, 4]]) {
      const again = await roundTrip(gz, data, 65536, randomChunks(gz, maxChunk, seed));
      const shape = (cs: Checkpoint[]) => cs.map((c) => [c.compressedOffset, c.bits, c.uncompressedOffset]);
      assert.deepEqual(shape(again), shape(whole));
    }
    const small = mixedData(60_000, 11);
    const smallGz = zlib.gzipSync(small);
    await roundTrip(smallGz, small, 16384, randomChunks(smallGz, 1, 1));
  });

  it('handles multi-member gzip (concatenated streams, as pigz writes) including spans across members', async () => {
    const a = mixedData(400_000, 21);
    const b = randomBytes(150_000, 22);
    const c = mixedData(300_000, 23);
    const gz = Buffer.concat([zlib.gzipSync(a), gzipCommand(b, 9), zlib.gzipSync(Buffer.alloc(0)), zlib.gzipSync(c, { level: 1 })]);
    const data = Buffer.concat([a, b, c]);
    for (const spanSize of [16384, 100_000, 1 << 20]) await roundTrip(gz, data, spanSize, randomChunks(gz, 30_000, spanSize));
  });

  it('handles flushed streams: empty stored blocks inside and an empty final block (as Go and pigz write)', async () => {
    const data = mixedData(400_000, 51);
    const gzip = zlib.createGzip();
    const parts: Buffer[] = [];
    gzip.on('data', (chunk: Buffer) => parts.push(chunk));
    for (let i = 0; i < data.length; i += 20_000) {
      gzip.write(data.subarray(i, i + 20_000));
      await new Promise<void>((resolve) => gzip.flush(i % 40_000 ? zlib.constants.Z_SYNC_FLUSH : zlib.constants.Z_FULL_FLUSH, () => resolve()));
    }
    const ended = new Promise((resolve) => gzip.on('end', resolve));
    gzip.end();
    await ended;
    assert.ok(zlib.gunzipSync(Buffer.concat(parts)).equals(data));
    const gz = Buffer.concat(parts);
    for (const spanSize of [4096, 20_000, 65536]) await roundTrip(gz, data, spanSize);
  });

  it('puts one checkpoint after the header of a small stream and none at its end', async () => {
    const data = Buffer.from('hello, world\n');
    const checkpoints = await roundTrip(zlib.gzipSync(data), data, 4096);
    assert.equal(checkpoints.length, 1);
    assert.equal(checkpoints[0].compressedOffset, 10);
  });

  it('rejects corrupt, truncated, trailing-garbage and empty input with a clean error', async () => {
    const data = mixedData(200_000, 31);
    const gz = zlib.gzipSync(data);
    const next = prng(99);
    for (let round = 0; round < 30; round++) {
      const bad = Buffer.from(gz);
      bad[10 + (next() % (bad.length - 10))] ^= 1 << (next() % 8);
      await rejectsData(index(randomChunks(bad, 50_000, round), 16384));
    }
    await rejectsData(index([gz.subarray(0, gz.length - 5)], 16384), /unexpected end of data/);
    await rejectsData(index([gz.subarray(0, 5000)], 16384), /unexpected end of data/);
    await rejectsData(index([Buffer.concat([gz, Buffer.from('garbage!')])], 16384), /incorrect header check/);
    await rejectsData(index([Buffer.concat([gz, Buffer.alloc(16)])], 16384));
    await rejectsData(index([], 16384), /unexpected end of data/);
    await rejectsData(index([Buffer.from('plain text, not gzip')], 16384), /incorrect header check/);
  });

  it('rejects corrupt or short span data with a clean error', async () => {
    const data = mixedData(500_000, 41);
    const gz = zlib.gzipSync(data);
    const { checkpoints } = await index([gz], 65536);
    const checkpoint = checkpoints[1];
    const start = checkpoint.compressedOffset - (checkpoint.bits ? 1 : 0);
    // 0xff: a final block of the reserved type 3, whatever the bit offset.
    await rejectsData(extractSpan({ ...checkpoint, bits: 0 }, Buffer.alloc(100, 0xff), 1000), /invalid block type/);
    await rejectsData(extractSpan(checkpoint, gz.subarray(start, start + 100), 65536), /ended after/);
    await rejectsData(extractSpan(checkpoint, Buffer.alloc(0), 10));
    const next = prng(5);
    for (let round = 0; round < 30; round++) {
      const bad = Buffer.from(gz.subarray(start));
      for (let i = 0; i < 8; i++) bad[next() % 4000] = next() & 0xff;
      try {
        const span = await extractSpan(checkpoint, bad, 65536);
        assert.equal(span.length, 65536); // raw deflate has no checksum: decodeSpan's digest catches this
      } catch (err) {
        assert.ok(err instanceof InvalidArgumentError, String(err));
      }
    }
  });
});
