import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ArchiveFormatError,
  ArchiveLimitError,
  BundleRanges,
  checkArchiveHeader,
  decodeArchive,
  encodeArchive,
  startupRangeBytes,
  type ClipArchive,
  type StartupBundle,
} from '../../../src/archive';
import { gzipBound } from '../../../src/archive/startup-bundle';
import { realisticArchive, sha256 } from './fixtures';

const BLOCK = 4096;

/** The realistic archive with three start-up ranges and a bundle that matches them. */
function withBundle(extra: Partial<StartupBundle> = {}): ClipArchive {
  const a = realisticArchive();
  const size = a.uncompressedSize;
  const last = Math.floor((size - 1) / BLOCK) * BLOCK;
  const startupRanges: Array<[number, number]> = [[0, 2 * BLOCK], [5 * BLOCK, 6 * BLOCK], [last, size]];
  const bytes = startupRangeBytes(startupRanges);
  return {
    ...a,
    startupSpans: [0],
    startupRanges,
    startupBundle: { digest: sha256('blob'), compressedSize: 1000, uncompressedSize: bytes, compression: 'gzip', uncompressedDigest: sha256('data'), ...extra },
  };
}

function rejected(a: ClipArchive, message: RegExp): void {
  assert.throws(() => encodeArchive(a), (err: unknown) => err instanceof ArchiveFormatError && message.test(err.message));
}

describe('start-up bundle field (format 1.1)', () => {
  it('round-trips, and is written as minor version 1 only when present', () => {
    const a = withBundle();
    const file = encodeArchive(a);
    assert.deepEqual(decodeArchive(file).startupBundle, a.startupBundle);
    assert.equal(checkArchiveHeader(file, file.length).minor, 1);
    const plain = encodeArchive({ ...a, startupBundle: undefined });
    assert.equal(checkArchiveHeader(plain, plain.length).minor, 0);
    assert.equal('startupBundle' in decodeArchive(plain), false);
    assert.ok(file.length > plain.length);
  });

  it('is rejected when it does not fit its ranges or its digests are malformed', () => {
    const a = withBundle();
    rejected({ ...a, startupRanges: undefined }, /start-up bundle without start-up ranges/);
    rejected(withBundle({ uncompressedSize: a.startupBundle!.uncompressedSize + 1 }), /uncompressed size \d+, its ranges hold \d+ bytes/);
    rejected(withBundle({ compressedSize: 0 }), /compressed size 0 is impossible/);
    rejected(withBundle({ compressedSize: gzipBound(a.startupBundle!.uncompressedSize) + 1 }), /is impossible/);
    rejected(withBundle({ digest: 'sha256:abc' }), /start-up bundle: digest "sha256:abc"/);
    rejected(withBundle({ uncompressedDigest: 'md5:x' }), /uncompressed digest "md5:x"/);
    rejected(withBundle({ compression: 'zstd' as 'gzip' }), /unknown compression "zstd"/);
  });

  it('is decoded within limits.max_startup_bundle_size', () => {
    const file = encodeArchive(withBundle());
    const declared = withBundle().startupBundle!.uncompressedSize;
    assert.throws(
      () => decodeArchive(file, { maxStartupBundleBytes: declared - 1 }),
      (err: unknown) => err instanceof ArchiveLimitError && /start-up bundle inflates to \d+ bytes \(limit limits.max_startup_bundle_size = \d+\)/.test(err.message),
    );
    assert.ok(decodeArchive(file, { maxStartupBundleBytes: declared }).startupBundle);
  });
});

describe('BundleRanges', () => {
  const ranges = new BundleRanges([[0, 8192], [20480, 24576], [40960, 41000]]);

  it('maps stream bytes inside one range to their place in the bundle', () => {
    assert.equal(ranges.bundleOffset(0, 8192), 0);
    assert.equal(ranges.bundleOffset(100, 50), 100);
    assert.equal(ranges.bundleOffset(20480, 4096), 8192);
    assert.equal(ranges.bundleOffset(24000, 576), 8192 + 3520);
    assert.equal(ranges.bundleOffset(40960, 40), 12288);
  });

  it('sends reads outside the ranges, or across an edge, to spans', () => {
    assert.equal(ranges.bundleOffset(8000, 400), undefined, 'straddles the end of a range');
    assert.equal(ranges.bundleOffset(10000, 10), undefined, 'between ranges');
    assert.equal(ranges.bundleOffset(20000, 1000), undefined, 'straddles the start of a range');
    assert.equal(ranges.bundleOffset(40990, 11), undefined, 'past the last range');
    assert.equal(ranges.bundleOffset(0, 0), undefined, 'empty');
    assert.equal(new BundleRanges([]).bundleOffset(0, 1), undefined);
  });

  it('says which spans it touches', () => {
    assert.equal(ranges.overlaps(8192, 20480), false);
    assert.equal(ranges.overlaps(8191, 20480), true);
    assert.equal(ranges.overlaps(24575, 30000), true);
    assert.equal(ranges.overlaps(41000, 50000), false);
    assert.equal(ranges.holds(0, 8192), true);
    assert.equal(ranges.holds(0, 8193), false);
  });
});
