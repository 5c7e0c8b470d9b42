/** What `clip inspect` reports of an archive: counts by type, whiteouts, checkpoints, start-up profile and bundle, ratios. */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { encodeArchive, startupRangeBytes, summarizeArchive } from '../../../src/archive';
import { formatSummary } from '../../../src/cli/inspect';
import { realisticArchive, sha256 } from '../archive/fixtures';
import { TestLayer, testLayers } from './fixtures';

let layers: TestLayer[];
before(async () => {
  layers = await testLayers();
});

test('summarizeArchive counts entries by type, whiteouts and spans, and relates the archive to the layer', () => {
  const [small, large] = layers as [TestLayer, TestLayer];
  const s = summarizeArchive(encodeArchive(small.archive));
  assert.equal(s.formatVersion, '1.0');
  assert.equal(s.layerDigest, small.digest);
  assert.equal(s.entries.total, 3);
  assert.deepEqual(s.entries.byType, { file: 2, dir: 1, symlink: 0, hardlink: 0, char: 0, block: 0, fifo: 0 });
  assert.equal(s.entries.whiteouts, 1);
  assert.equal(s.entries.fileBytes, 'hello from a published layer\n'.length);

  const bytes = encodeArchive(large.archive);
  const l = summarizeArchive(bytes);
  assert.equal(l.archiveSize, bytes.length);
  assert.equal(l.checkpoints.count, large.archive.checkpoints.length);
  assert.ok(l.checkpoints.count >= 5, '300 KiB in 64 KiB spans');
  assert.ok(l.checkpoints.largestSpan >= 64 * 1024 && l.checkpoints.meanSpan <= l.checkpoints.largestSpan);
  assert.ok(l.checkpoints.windowBytes > 0);
  assert.equal(l.ratio.compressed, bytes.length / large.blob.length);
  assert.equal(l.ratio.uncompressed, bytes.length / large.archive.uncompressedSize);
});

test('the human-readable summary has one labelled line per aspect', () => {
  const [small] = layers as [TestLayer];
  const text = formatSummary('small.clip', summarizeArchive(encodeArchive(small.archive)));
  assert.match(text, /^archive +small\.clip: clip archive format 1\.0, /m);
  assert.match(text, new RegExp(`^layer +${small.digest}  application/vnd\\.oci\\.image\\.layer\\.v1\\.tar\\+gzip, gzip$`, 'm'));
  assert.match(text, /^entries +3: 2 files, 1 directory; 29 B of file data$/m);
  assert.match(text, /^ +1 whiteout, 0 opaque directories, 0 entries with xattrs$/m);
  assert.match(text, /^checkpoints +1 \(spans of /m);
  assert.match(text, /^ratio +the archive is [0-9.]+% of the layer as stored, [0-9.]+% of it uncompressed$/m);
});

test('an archive that does not decode is refused', () => {
  const [small] = layers as [TestLayer];
  const bytes = encodeArchive(small.archive);
  assert.throws(() => summarizeArchive(bytes.subarray(0, bytes.length - 1)), /truncated/);
});

test('the start-up profile and bundle an archive carries are shown; an archive without them says so', () => {
  const a = realisticArchive();
  const last = Math.floor((a.uncompressedSize - 1) / 4096) * 4096;
  const startupRanges: Array<[number, number]> = [[0, 8192], [last, a.uncompressedSize]];
  const rangeBytes = startupRangeBytes(startupRanges);
  const bundle = { digest: sha256('blob'), compressedSize: 1234, uncompressedSize: rangeBytes, compression: 'gzip' as const, uncompressedDigest: sha256('data') };

  const plain = summarizeArchive(encodeArchive(a));
  assert.equal(plain.startupProfile, undefined);
  assert.equal(plain.startupBundle, undefined);
  assert.match(formatSummary('a.clip', plain), /^start-up +no start-up profile recorded$/m);

  const profiled = summarizeArchive(encodeArchive({ ...a, startupSpans: [0], startupRanges }));
  assert.deepEqual(profiled.startupProfile, { spans: 1, ranges: 2, rangeBytes });
  assert.match(formatSummary('a.clip', profiled), /^start-up +1 span read by starting containers, 2 ranges of .*; no start-up bundle$/m);

  const bundled = summarizeArchive(encodeArchive({ ...a, startupSpans: [0], startupRanges, startupBundle: bundle }));
  assert.equal(bundled.formatVersion, '1.1');
  assert.deepEqual(bundled.startupBundle, { digest: bundle.digest, compressedSize: 1234, uncompressedSize: rangeBytes, uncompressedDigest: bundle.uncompressedDigest });
  const text = formatSummary('a.clip', bundled);
  assert.match(text, /; a start-up bundle holds them$/m);
  assert.match(text, new RegExp(`^bundle +${bundle.digest}, .* \\(1234 bytes\\), inflating to ${rangeBytes} bytes$`, 'm'));
});
