import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeStartupRanges, encodeStartupRanges, startupRangesFromBlockMap, startupRangesProblem } from '../../../src/archive/startup-ranges';

const BLOCK = 4096;

/** A block map with the given blocks set. */
function blockMap(blocks: number[], size: number): Uint8Array {
  const map = new Uint8Array(Math.ceil(Math.ceil(size / BLOCK) / 8));
  for (const b of blocks) map[b >> 3]! |= 1 << (b & 7);
  return map;
}

describe('start-up read ranges', () => {
  it('merges the blocks read into ranges, the last one ending at the end of the stream', () => {
    const size = 10 * BLOCK + 100;
    assert.deepEqual(startupRangesFromBlockMap(blockMap([0, 1, 2, 5, 9, 10], size), size), [
      [0, 3 * BLOCK],
      [5 * BLOCK, 6 * BLOCK],
      [9 * BLOCK, size],
    ]);
    assert.deepEqual(startupRangesFromBlockMap(new Uint8Array(2), size), []);
  });

  it('round-trips any valid ranges through the wire form, and validates them', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(200), { maxLength: 300 }), fc.integer({ min: 1, max: 4095 }), (blocks, tail) => {
        const size = 201 * BLOCK + tail;
        const ranges = startupRangesFromBlockMap(blockMap(blocks, size), size);
        assert.equal(startupRangesProblem(ranges, size), undefined);
        assert.deepEqual(decodeStartupRanges(encodeStartupRanges(ranges), size), ranges);
        const read = new Set(blocks);
        for (const [start, end] of ranges) for (let o = start; o < end; o += BLOCK) assert.ok(read.has(o / BLOCK));
        assert.equal(ranges.reduce((n, [s, e]) => n + Math.ceil((e - s) / BLOCK), 0), read.size);
      }),
    );
  });

  it('says what is wrong with ranges that are not block-aligned, overlap or leave the stream', () => {
    assert.match(startupRangesProblem([[1, BLOCK]], 10 * BLOCK) ?? '', /does not start at a 4096-byte block/);
    assert.match(startupRangesProblem([[0, 100]], 10 * BLOCK) ?? '', /does not end at a block or at the end of the stream/);
    assert.match(startupRangesProblem([[0, BLOCK], [BLOCK, 2 * BLOCK]], 10 * BLOCK) ?? '', /overlaps or touches/);
    assert.match(startupRangesProblem([[0, 11 * BLOCK]], 10 * BLOCK) ?? '', /ends past the stream/);
    assert.match(startupRangesProblem([[BLOCK, BLOCK]], 10 * BLOCK) ?? '', /is empty/);
  });
});
