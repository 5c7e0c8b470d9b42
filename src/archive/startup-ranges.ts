/**
 * Start-up read ranges (Archive.startup_ranges, docs/format.md): the parts of a layer's uncompressed
 * stream containers read as they started, kept in an archive as (gap, length) pairs of 4096-byte blocks.
 * Here they are byte ranges [start, end): block-aligned, except that the last one may end at the end of
 * the stream.
 */
import { ArchiveFormatError } from './format-error';
import { MAX_STARTUP_RANGES, STARTUP_RANGE_BLOCK } from './types';

export type StartupRange = [start: number, end: number];

/** Why `ranges` are not valid start-up ranges of a stream of `size` bytes, or undefined. */
export function startupRangesProblem(ranges: readonly StartupRange[], size: number): string | undefined {
  if (ranges.length > MAX_STARTUP_RANGES) return `${ranges.length} start-up ranges, at most ${MAX_STARTUP_RANGES} are allowed`;
  let previousEnd = -1;
  for (const [i, range] of ranges.entries()) {
    const [start, end] = Array.isArray(range) ? range : [NaN, NaN];
    const where = `start-up range ${i} [${start}, ${end})`;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0) return `${where} is not a pair of offsets`;
    if (start % STARTUP_RANGE_BLOCK !== 0) return `${where} does not start at a ${STARTUP_RANGE_BLOCK}-byte block`;
    if (end <= start) return `${where} is empty`;
    if (end > size) return `${where} ends past the stream (${size} bytes)`;
    if (end % STARTUP_RANGE_BLOCK !== 0 && end !== size) return `${where} does not end at a block or at the end of the stream`;
    if (start <= previousEnd) return `${where} overlaps or touches the range before it`;
    previousEnd = end;
  }
  return undefined;
}

/** The wire form of valid ranges: (gap, length) pairs in blocks. */
export function encodeStartupRanges(ranges: readonly StartupRange[]): number[] {
  const out: number[] = [];
  let previousEnd = 0;
  for (const [start, end] of ranges) {
    const first = start / STARTUP_RANGE_BLOCK;
    const blocks = Math.ceil((end - start) / STARTUP_RANGE_BLOCK);
    out.push(first - previousEnd, blocks);
    previousEnd = first + blocks;
  }
  return out;
}

/** Byte ranges from the wire form, for a stream of `size` bytes; ArchiveFormatError when they are not valid. */
export function decodeStartupRanges(values: readonly number[], size: number): StartupRange[] {
  if (values.length % 2 !== 0) throw new ArchiveFormatError(`start-up ranges: ${values.length} numbers, not pairs`);
  if (values.length / 2 > MAX_STARTUP_RANGES) throw new ArchiveFormatError(`${values.length / 2} start-up ranges, at most ${MAX_STARTUP_RANGES} are allowed`);
  const ranges: StartupRange[] = [];
  let block = 0;
  for (let i = 0; i < values.length; i += 2) {
    const gap = values[i]!;
    const length = values[i + 1]!;
    if (i > 0 && gap === 0) throw new ArchiveFormatError(`start-up range ${i / 2} touches the range before it`);
    if (length === 0) throw new ArchiveFormatError(`start-up range ${i / 2} is empty`);
    const start = (block + gap) * STARTUP_RANGE_BLOCK;
    block += gap + length;
    const end = block * STARTUP_RANGE_BLOCK;
    if (!Number.isSafeInteger(end) || start >= size || end - STARTUP_RANGE_BLOCK >= size) {
      throw new ArchiveFormatError(`start-up range ${i / 2} lies outside the stream (${size} bytes)`);
    }
    ranges.push([start, Math.min(end, size)]);
  }
  return ranges;
}

/**
 * Ranges from a map of the stream's blocks (bit b of byte b >> 3, least significant first: block b was
 * read), merged, at most MAX_STARTUP_RANGES (the first ones in stream order), for a stream of `size` bytes.
 */
export function startupRangesFromBlockMap(map: Uint8Array, size: number): StartupRange[] {
  const blocks = Math.ceil(size / STARTUP_RANGE_BLOCK);
  const ranges: StartupRange[] = [];
  let open = -1;
  for (let b = 0; b <= blocks; b++) {
    const read = b < blocks && b >> 3 < map.length && (map[b >> 3]! & (1 << (b & 7))) !== 0;
    if (read && open < 0) open = b;
    if (!read && open >= 0) {
      ranges.push([open * STARTUP_RANGE_BLOCK, Math.min(b * STARTUP_RANGE_BLOCK, size)]);
      open = -1;
      if (ranges.length === MAX_STARTUP_RANGES) break;
    }
  }
  return ranges;
}
