/** What `clip inspect` reports of an archive: counts by type, whiteouts, checkpoints, ratios. */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { encodeArchive, summarizeArchive } from '../../../src/archive';
import { formatSummary } from '../../../src/cli/inspect';
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
