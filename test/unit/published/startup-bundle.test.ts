/**
 * Start-up bundles: built by publishArchives from the layer in an in-process registry (real gzip layers,
 * real zran span decoding), recorded in the archive, pushed beside it, deterministic; and the checks a
 * node applies before it serves a byte of a bundle.
 */
import assert from 'node:assert/strict';
import { gunzipSync, gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { decodeArchive, type ClipArchive, type StartupBundle } from '../../../src/archive';
import { RegistryClient, computeDigest } from '../../../src/registry';
import { ARCHIVE_MEDIA_TYPE, ANNOTATION_LAYER_DIGEST, PublishedArchives, publishArchives } from '../../../src/remote/published-archives';
import { STARTUP_BUNDLE_MEDIA_TYPE, inflateStartupBundle } from '../../../src/remote/startup-bundle-blob';
import { RepositoryPattern, TrustPolicy } from '../../../src/trust';
import { FAST_RETRY } from '../../integration/registry/test-servers';
import { TestImage, TestLayer, addImage, recordingLogger, testLayers } from './fixtures';
import { OciRegistry } from './oci-registry';

const BLOCK = 4096;

/** The bytes of the ranges, cut from the layer's whole uncompressed stream. */
function rangeBytes(layer: TestLayer, ranges: Array<[number, number]>): Buffer {
  const stream = gunzipSync(layer.blob);
  return Buffer.concat(ranges.map(([s, e]) => stream.subarray(s, e)));
}

describe('start-up bundles', () => {
  let registry: OciRegistry;
  let client: RegistryClient;
  let layers: TestLayer[];
  let image: TestImage;
  /** The large layer's ranges: one inside span 0, one across the span 0/1 boundary (64 KiB), the stream's end. */
  let ranges: Array<[number, number]>;
  let profiled: ClipArchive[];

  before(async () => {
    registry = await OciRegistry.start({ referrersApi: true });
    client = new RegistryClient({ hosts: { plainHttp: true }, retry: FAST_RETRY });
    layers = await testLayers();
    image = addImage(registry, layers, 'clip/bundle');
    const large = layers[1]!.archive;
    const last = Math.floor((large.uncompressedSize - 1) / BLOCK) * BLOCK;
    ranges = [[BLOCK, 3 * BLOCK], [15 * BLOCK, 18 * BLOCK], [last, large.uncompressedSize]];
    profiled = [layers[0]!.archive, { ...large, startupSpans: [0, 1], startupRanges: ranges }];
  });

  after(async () => {
    await client.close();
    await registry.close();
  });

  test('publishing builds the bundle of an archive with ranges, records it in the archive and lists it after it', async () => {
    const resolved = await client.resolve(image.ref);
    const result = await publishArchives(client, resolved, profiled);
    assert.equal(result.archives[0]!.bundle, undefined, 'no ranges, no bundle');
    const pushed = result.archives[1]!;
    assert.ok(pushed.bundle);
    const archive = decodeArchive(registry.repo.blobs.get(pushed.digest)!);
    const bundle = archive.startupBundle!;
    assert.equal(bundle.digest, pushed.bundle.digest);
    const blob = registry.repo.blobs.get(bundle.digest)!;
    assert.equal(blob.length, bundle.compressedSize);
    const data = await inflateStartupBundle(blob, bundle);
    assert.deepEqual(data, rangeBytes(layers[1]!, ranges), 'exactly the bytes of the ranges, in order');
    assert.equal(blob.readUInt32LE(4), 0, 'no mtime in the gzip header');

    const manifest = JSON.parse(registry.repo.manifests.get(result.digest)!.body.toString()) as { layers: Array<{ mediaType: string; digest: string; annotations: Record<string, string> }> };
    assert.deepEqual(
      manifest.layers.map((l) => [l.mediaType, l.annotations[ANNOTATION_LAYER_DIGEST]]),
      [[ARCHIVE_MEDIA_TYPE, layers[0]!.digest], [ARCHIVE_MEDIA_TYPE, layers[1]!.digest], [STARTUP_BUNDLE_MEDIA_TYPE, layers[1]!.digest]],
    );

    const again = await publishArchives(client, resolved, profiled);
    assert.equal(again.digest, result.digest, 'the same archives give the same manifest, bundle included');

    const finder = new PublishedArchives({ registry: client, logger: recordingLogger(), policy: new TrustPolicy([], [RepositoryPattern.parse(`${registry.host}/clip/*`)]) });
    const found = await finder.find({ imageRef: image.ref, layerDigest: layers[1]!.digest, manifestDigest: image.manifest.digest });
    assert.deepEqual(found?.archive.startupBundle, bundle, 'a reader gets the bundle field with the archive');
  });

  test('a node accepts only the exact blob the archive names, inflating to exactly what it declares', async () => {
    const data = rangeBytes(layers[1]!, ranges);
    const blob = gzipSync(data, { level: 9 });
    const good: StartupBundle = { digest: computeDigest(blob), compressedSize: blob.length, uncompressedSize: data.length, compression: 'gzip', uncompressedDigest: computeDigest(data) };
    assert.deepEqual(await inflateStartupBundle(blob, good), data);

    const tampered = Buffer.from(blob);
    tampered[tampered.length >> 1]! ^= 0x01;
    await assert.rejects(inflateStartupBundle(tampered, good), /start-up bundle: digest mismatch/);
    await assert.rejects(inflateStartupBundle(blob.subarray(1), good), /bytes, the archive says/);

    // A publisher's own bytes that do not inflate to what its field says: longer, shorter, or other bytes.
    const bigger = gzipSync(Buffer.concat([data, Buffer.alloc(1 << 20)]));
    const shorter = gzipSync(data.subarray(1));
    const other = gzipSync(Buffer.alloc(data.length, 7));
    const named = (b: Buffer): StartupBundle => ({ ...good, digest: computeDigest(b), compressedSize: b.length });
    await assert.rejects(inflateStartupBundle(bigger, named(bigger)), /inflates to more than \d+ bytes/);
    await assert.rejects(inflateStartupBundle(shorter, named(shorter)), /inflates to \d+ bytes, the archive says/);
    await assert.rejects(inflateStartupBundle(other, named(other)), /inflated bytes: digest mismatch/);
  });
});
