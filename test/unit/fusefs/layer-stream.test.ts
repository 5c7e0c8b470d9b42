import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Checkpoint } from '../../../src/archive/types';
import { InternalError, InvalidArgumentError } from '../../../src/errors';
import { LayerStream } from '../../../src/fusefs/layer-stream';
import type { SpanReader } from '../../../src/fusefs/span-reader';
import { patternBytes } from '../../integration/fusefs/layer-fixture';

function checkpoints(...offsets: number[]): Checkpoint[] {
  return offsets.map((o) => ({ compressedOffset: o, bits: 0, uncompressedOffset: o, window: Buffer.alloc(0) }));
}

/** A stream of `size` bytes cut at `offsets`, served from memory, recording which spans were asked for. */
function streamOf(size: number, offsets: number[]) {
  const bytes = patternBytes(size, 9);
  const bounds = [...offsets, size];
  const asked: number[] = [];
  const reader: SpanReader = {
    readSpan: async (i) => {
      asked.push(i);
      return bytes.subarray(bounds[i], bounds[i + 1]);
    },
  };
  const stream = new LayerStream({ layerDigest: 'sha256:x', uncompressedSize: size, checkpoints: checkpoints(...offsets) }, reader, 1 << 20);
  return { bytes, stream, asked };
}

const never = new AbortController().signal;

describe('LayerStream', () => {
  it('finds the span of an offset by binary search', () => {
    const { stream } = streamOf(1000, [0, 100, 250, 900]);
    const cases: [number, number][] = [
      [0, 0],
      [99, 0],
      [100, 1],
      [249, 1],
      [250, 2],
      [899, 2],
      [900, 3],
      [999, 3],
    ];
    for (const [offset, span] of cases) assert.equal(stream.spanAt(offset), span, `offset ${offset}`);
  });

  it('reads ranges inside one span, across several, and up to the end', async () => {
    const { bytes, stream, asked } = streamOf(1000, [0, 100, 250, 900]);
    for (const [offset, length] of [
      [10, 20],
      [90, 20],
      [99, 802],
      [0, 1000],
      [950, 50],
      [100, 150],
    ]) {
      const pieces = await stream.read(offset, length, never);
      assert.deepEqual(Buffer.concat(pieces), bytes.subarray(offset, offset + length), `[${offset}, +${length})`);
    }
    assert.deepEqual([...new Set(asked)].sort(), [0, 1, 2, 3]);
  });

  it('skips empty spans (repeated checkpoint offsets)', async () => {
    const { bytes, stream } = streamOf(300, [0, 100, 100, 200]);
    assert.equal(stream.spanAt(100), 2);
    assert.deepEqual(Buffer.concat(await stream.read(50, 200, never)), bytes.subarray(50, 250));
  });

  it('rejects a span of the wrong length as an internal error', async () => {
    const reader: SpanReader = { readSpan: async () => Buffer.alloc(10) };
    const stream = new LayerStream({ layerDigest: 'sha256:x', uncompressedSize: 100, checkpoints: checkpoints(0) }, reader, 1 << 20);
    await assert.rejects(stream.read(0, 5, never), (err: unknown) => err instanceof InternalError && /span 0: got 10 bytes, expected 100/.test(err.message));
  });

  it('rejects checkpoints that do not start at 0 or go backwards', () => {
    const reader: SpanReader = { readSpan: async () => Buffer.alloc(0) };
    for (const offsets of [[], [5], [0, 50, 40], [0, 200]]) {
      assert.throws(
        () => new LayerStream({ layerDigest: 'sha256:x', uncompressedSize: 100, checkpoints: checkpoints(...offsets) }, reader, 1 << 20),
        InvalidArgumentError,
        JSON.stringify(offsets),
      );
    }
    assert.ok(new LayerStream({ layerDigest: 'sha256:x', uncompressedSize: 0, checkpoints: [] }, reader, 1 << 20));
  });
});
