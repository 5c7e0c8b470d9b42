/**
 * Background verification of published archives against the layer's real bytes, served by an in-process
 * registry: a genuine archive is confirmed (stored again as indexed on this node), also when it was cut
 * into other spans than this node's; a forged one (an entry changed, or a span digest for other bytes) is
 * logged with both digests, distrusted and replaced by the locally indexed archive.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { ClipArchive, encodeArchive } from '../../../src/archive';
import { ContentCache } from '../../../src/fusefs/content-cache';
import { ForegroundActivity } from '../../../src/fusefs/layer-span-reader';
import { indexLayer } from '../../../src/indexer';
import { RegistryClient, computeDigest } from '../../../src/registry';
import { ArchiveStore } from '../../../src/remote/archive-store';
import { ArchiveVerifier } from '../../../src/remote/archive-verifier';
import { LayerIndexer } from '../../../src/remote/layer-indexer';
import { RepositoryPattern, TrustPolicy } from '../../../src/trust';
import { FAST_RETRY } from '../../integration/registry/test-servers';
import { tempDir } from '../../helpers/processes';
import { TestImage, TestLayer, addImage, recordingLogger, testLayers } from '../published/fixtures';
import { OciRegistry } from '../published/oci-registry';

describe('ArchiveVerifier', () => {
  let dir: string;
  let registry: OciRegistry;
  let client: RegistryClient;
  let layers: TestLayer[];
  let image: TestImage;
  let policy: TrustPolicy;

  before(async () => {
    dir = await tempDir('verifier');
    registry = await OciRegistry.start({ referrersApi: true });
    client = new RegistryClient({ hosts: { plainHttp: true }, retry: FAST_RETRY });
    layers = await testLayers();
    image = addImage(registry, layers);
    policy = new TrustPolicy([], [RepositoryPattern.parse(`${registry.host}/clip/*`)]);
  });
  after(async () => {
    await client.close();
    await registry.close();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  /** Stores `archive` as published in the trusted repository, verifies it, and returns what happened. */
  async function verify(name: string, archive: ClipArchive) {
    const logger = recordingLogger();
    const cache = new ContentCache(path.join(dir, name, 'cache'));
    const archives = new ArchiveStore(path.join(dir, name, 'archives'), 1 << 30, logger, policy);
    const indexer = new LayerIndexer({ registry: client, cache, logger, spanSize: 64 * 1024, cacheWhileIndexing: false });
    const verifier = new ArchiveVerifier({ indexer, archives, cache, activity: new ForegroundActivity(), logger });
    const stored = await archives.put(archive, { source: 'repository', repository: `${registry.host}/clip/*` });
    verifier.add({ imageRef: image.ref, layerDigest: archive.layerDigest, manifestDigest: image.manifest.digest }, stored);
    await verifier.idle();
    return { verifier, archives, stored, logger, after: await archives.get(archive.layerDigest) };
  }

  it('confirms a genuine archive and stores it as indexed on this node', async () => {
    const [, large] = layers as [TestLayer, TestLayer];
    const { verifier, after: now, stored } = await verify('genuine', large.archive);
    assert.deepEqual(verifier.counts, { verified: 1, mismatched: 0, failed: 0 });
    assert.deepEqual(now?.provenance, { source: 'local' });
    assert.equal(now?.digest, stored.digest, 'the same archive');
  });

  it('confirms a genuine archive cut into other spans than this node would cut', async () => {
    const [, large] = layers as [TestLayer, TestLayer];
    const coarse = await indexLayer([large.blob], { layerDigest: large.digest, mediaType: large.archive.mediaType, compression: 'gzip', spanSize: 100 * 1024 });
    assert.notEqual(coarse.checkpoints.length, large.archive.checkpoints.length);
    const { verifier } = await verify('coarse', coarse);
    assert.deepEqual(verifier.counts, { verified: 1, mismatched: 0, failed: 0 });
  });

  it('catches a forged entry: logs both digests, distrusts the archive and stores the real one', async () => {
    const [small] = layers as [TestLayer];
    const forged = { ...small.archive, entries: small.archive.entries.map((e) => (e.path === 'etc/hello' ? { ...e, mode: 0o4755 } : e)) };
    const { verifier, archives, stored, logger, after: now } = await verify('forged', forged);
    assert.deepEqual(verifier.counts, { verified: 0, mismatched: 1, failed: 0 });
    assert.ok(await archives.isDistrusted(stored.digest));
    assert.deepEqual(now?.provenance, { source: 'local' });
    assert.deepEqual(now?.archive.entries, small.archive.entries, 'new mounts get the real entries');
    const line = logger.lines.find((l) => /does not match the layer/.test(l)) ?? '';
    assert.match(line, /^error /);
    assert.ok(line.includes(stored.digest) && line.includes(computeDigest(encodeArchive(small.archive))), line);
    assert.match(line, /entry \d+ \("etc\/hello"\): mode 2541 vs 420/);
  });

  it('catches every other kind of forgery: a whiteout added, a file aliased to other bytes, a wrong diff ID', async () => {
    const [, large] = layers as [TestLayer, TestLayer];
    const files = large.archive.entries.filter((e) => e.type === 'file');
    const whiteout = { ...files[0]!, path: 'data/hidden', type: 'char' as const, size: 0, mode: 0, devMajor: 0, devMinor: 0, dataOffset: 0 };
    const variants: Array<[string, ClipArchive, RegExp]> = [
      ['whiteout', { ...large.archive, entries: [...large.archive.entries, whiteout] }, /\d+ entries, the layer has \d+/],
      ['alias', { ...large.archive, entries: large.archive.entries.map((e) => (e.path === files[1]!.path ? { ...e, dataOffset: files[0]!.dataOffset } : e)) }, /dataOffset/],
      ['diff ID', { ...large.archive, diffId: `sha256:${'0'.repeat(64)}` }, /diffId: "sha256:0{64}", the layer has "sha256:/],
    ];
    for (const [name, forged, message] of variants) {
      const { verifier, logger } = await verify(`variant-${name.replace(' ', '')}`, forged);
      assert.deepEqual(verifier.counts, { verified: 0, mismatched: 1, failed: 0 }, name);
      assert.match(logger.lines.join('\n'), message, name);
    }
  });

  it('catches span digests for other bytes, even with every entry right', async () => {
    const [, large] = layers as [TestLayer, TestLayer];
    const forged = { ...large.archive, spanDigests: large.archive.spanDigests.map((d, i) => (i === 2 ? computeDigest(Buffer.from('other bytes')) : d)) };
    const { verifier, logger } = await verify('spans', forged);
    assert.deepEqual(verifier.counts, { verified: 0, mismatched: 1, failed: 0 });
    assert.match(logger.lines.join('\n'), /span 2: sha256:[0-9a-f]{64}, the layer has sha256:/);
  });

  it('checks a start-up bundle against the layer: the real bytes of its ranges must hash to its inflated digest', async () => {
    const [, large] = layers as [TestLayer, TestLayer];
    const stream = gunzipSync(large.blob);
    const ranges: Array<[number, number]> = [[4096, 3 * 4096], [16 * 4096, 20 * 4096]];
    const real = Buffer.concat(ranges.map(([s, e]) => stream.subarray(s, e)));
    const withBundle = (data: Buffer): ClipArchive => {
      const blob = gzipSync(data);
      const bundle = { digest: computeDigest(blob), compressedSize: blob.length, uncompressedSize: data.length, compression: 'gzip' as const, uncompressedDigest: computeDigest(data) };
      return { ...large.archive, startupSpans: [0, 1], startupRanges: ranges, startupBundle: bundle };
    };
    const genuine = await verify('bundle-genuine', withBundle(real));
    assert.deepEqual(genuine.verifier.counts, { verified: 1, mismatched: 0, failed: 0 });

    const other = Buffer.from(real);
    other[100]! ^= 0xff;
    const forged = await verify('bundle-forged', withBundle(other));
    assert.deepEqual(forged.verifier.counts, { verified: 0, mismatched: 1, failed: 0 });
    assert.ok(await forged.archives.isDistrusted(forged.stored.digest));
    assert.match(forged.logger.lines.join('\n'), /start-up bundle sha256:[0-9a-f]{64}: holds sha256:[0-9a-f]{64}, the layer's bytes at its ranges hash to sha256:/);
  });
});
