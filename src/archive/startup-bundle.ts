/**
 * Start-up bundles (Archive.startup_bundle, docs/format.md "Start-up bundles"): one blob holding exactly
 * the bytes of an archive's start-up ranges, in stream order, concatenated and gzip-compressed as one
 * stream. Here: the rules a bundle field obeys, and the map from positions in the layer's uncompressed
 * stream to positions in the inflated bundle.
 */
import type { StartupRange } from './startup-ranges';
import type { StartupBundle } from './types';

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** The most bytes zlib's deflate (with a gzip wrapper) can make of `n` bytes (zlib's deflateBound). */
export function gzipBound(n: number): number {
  return n + Math.floor(n / 4096) + Math.floor(n / 16384) + Math.floor(n / 33554432) + 7 + 18;
}

/** The bytes the start-up ranges cover: the inflated size of their bundle. */
export function startupRangeBytes(ranges: readonly StartupRange[]): number {
  return ranges.reduce((sum, [start, end]) => sum + end - start, 0);
}

/** Why `bundle` is not a valid bundle of `ranges` (the archive's start-up ranges), or undefined. */
export function startupBundleProblem(bundle: StartupBundle, ranges: readonly StartupRange[] | undefined): string | undefined {
  if (bundle.compression !== 'gzip') return `start-up bundle: unknown compression ${JSON.stringify(bundle.compression)}`;
  if (!DIGEST.test(bundle.digest)) return `start-up bundle: digest ${JSON.stringify(bundle.digest)} is not sha256:<64 lowercase hex>`;
  if (!DIGEST.test(bundle.uncompressedDigest)) {
    return `start-up bundle: uncompressed digest ${JSON.stringify(bundle.uncompressedDigest)} is not sha256:<64 lowercase hex>`;
  }
  if (!ranges || ranges.length === 0) return 'start-up bundle without start-up ranges';
  const want = startupRangeBytes(ranges);
  if (bundle.uncompressedSize !== want) return `start-up bundle: uncompressed size ${bundle.uncompressedSize}, its ranges hold ${want} bytes`;
  const { compressedSize } = bundle;
  if (!Number.isSafeInteger(compressedSize) || compressedSize <= 0 || compressedSize > gzipBound(want)) {
    return `start-up bundle: compressed size ${compressedSize} is impossible for ${want} bytes of gzip`;
  }
  return undefined;
}

/** Where the ranges' bytes sit in the inflated bundle: range i starts at bundle offset starts[i]. */
export class BundleRanges {
  private readonly starts: number[] = [];

  constructor(private readonly ranges: readonly StartupRange[]) {
    let at = 0;
    for (const [start, end] of ranges) {
      this.starts.push(at);
      at += end - start;
    }
  }

  /** The index of the last range starting at or before `offset`, or -1. */
  private rangeAt(offset: number): number {
    let lo = 0;
    let hi = this.ranges.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ranges[mid]![0] <= offset) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  /**
   * The bundle offset of the stream bytes [offset, offset + length) when one range holds all of them;
   * undefined when any of them lies outside the ranges or they straddle a range's edge.
   */
  bundleOffset(offset: number, length: number): number | undefined {
    const i = this.rangeAt(offset);
    if (i < 0 || length <= 0) return undefined;
    const [start, end] = this.ranges[i]!;
    if (offset + length > end) return undefined;
    return this.starts[i]! + offset - start;
  }

  /** Whether the ranges hold every byte of [start, end) (a span, say). */
  holds(start: number, end: number): boolean {
    return end > start && this.bundleOffset(start, end - start) !== undefined;
  }

  /** Whether any range overlaps [start, end). */
  overlaps(start: number, end: number): boolean {
    const i = this.rangeAt(end - 1);
    return i >= 0 && this.ranges[i]![1] > start;
  }
}
