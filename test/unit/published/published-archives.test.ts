/**
 * Published archives: the artifact format, the checks an archive must pass before use, and publishing and
 * finding them in a real HTTP registry on 127.0.0.1 with and without the referrers API, including
 * tampered artifacts (an archive naming another layer, corrupt bytes under a matching digest, bytes that
 * do not match their descriptor).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateKeyPairSync } from 'node:crypto';
import { encodeArchive } from '../../../src/archive';
import { InvalidArgumentError } from '../../../src/errors';
import {
  ANNOTATION_LAYER_DIGEST,
  ARCHIVE_ARTIFACT_TYPE,
  ARCHIVE_MEDIA_TYPE,
  PublishedArchives,
  archiveArtifactManifest,
  checkPublishedArchive,
  publishArchives,
} from '../../../src/remote/published-archives';
import { Descriptor, MediaTypes, RegistryClient, addToReferrersTag, computeDigest, pushBlob, pushManifest } from '../../../src/registry';
import { FAST_RETRY } from '../../integration/registry/test-servers';
import { TestImage, TestLayer, addImage, recordingLogger, testLayers } from './fixtures';
import { OciRegistry } from './oci-registry';
import { RepositoryPattern, TrustPolicy, parsePublicKey, parseSigningKey, signStatement, type SigningKey } from '../../../src/trust';

/** A fresh ed25519 key pair: the signing key, and a policy trusting its public key. */
function keyPair(): { key: SigningKey; policy: TrustPolicy } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const key = parseSigningKey(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'test key');
  return { key, policy: new TrustPolicy([parsePublicKey(publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'test key')], []) };
}

const GZIP_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

function layerDescriptor(l: TestLayer, mediaType = GZIP_LAYER): Descriptor {
  return { mediaType, digest: l.digest, size: l.blob.length };
}

function published(bytes: Buffer, layerDigest: string): Descriptor {
  return { mediaType: ARCHIVE_MEDIA_TYPE, digest: computeDigest(bytes), size: bytes.length, annotations: { [ANNOTATION_LAYER_DIGEST]: layerDigest } };
}

describe('checkPublishedArchive', () => {
  let layers: TestLayer[];
  before(async () => {
    layers = await testLayers();
  });

  test('accepts the archive of the layer it is published for', async () => {
    const [small] = layers;
    const bytes = encodeArchive(small!.archive);
    assert.deepEqual(await checkPublishedArchive(bytes, published(bytes, small!.digest), layerDescriptor(small!)), small!.archive);
  });

  test('rejects whatever does not describe the layer, naming what failed', async () => {
    const [small, large] = layers as [TestLayer, TestLayer];
    const bytes = encodeArchive(small.archive);
    const corrupt = Buffer.from(bytes);
    corrupt[corrupt.length - 10]! ^= 0xff;
    const cases: Array<[string, Buffer, Descriptor, Descriptor, RegExp]> = [
      ['descriptor names another layer', bytes, published(bytes, large.digest), layerDescriptor(small), /its descriptor names layer sha256:/],
      ['no annotation', bytes, { ...published(bytes, small.digest), annotations: {} }, layerDescriptor(small), /names layer \(none\)/],
      ['size differs from the descriptor', bytes, { ...published(bytes, small.digest), size: bytes.length + 1 }, layerDescriptor(small), /bytes, its descriptor says/],
      ['digest differs from the descriptor', corrupt, { ...published(bytes, small.digest), digest: computeDigest(bytes) }, layerDescriptor(small), /hash to/],
      ['corrupt bytes with a matching descriptor', corrupt, published(corrupt, small.digest), layerDescriptor(small), /checksum mismatch/],
      ['not an archive at all', Buffer.from('{}'), published(Buffer.from('{}'), small.digest), layerDescriptor(small), /not a clip archive/],
      ["an archive of another layer", encodeArchive(large.archive), published(encodeArchive(large.archive), small.digest), layerDescriptor(small), /it describes layer sha256:/],
      ['a blob of another size', bytes, published(bytes, small.digest), { ...layerDescriptor(small), size: 12345 }, /describes a \d+-byte blob, the layer has 12345 bytes/],
      ['another compression', bytes, published(bytes, small.digest), layerDescriptor(small, 'application/vnd.oci.image.layer.v1.tar'), /gzip blob, the layer's media type .* says none/],
      ['a zstd layer', bytes, published(bytes, small.digest), layerDescriptor(small, 'application/vnd.oci.image.layer.v1.tar+zstd'), /zstd/],
    ];
    for (const [what, data, descriptor, layer, message] of cases) {
      await assert.rejects(checkPublishedArchive(data, descriptor, layer), message, what);
    }
  });

  test('the artifact manifest: OCI 1.1 artifact, empty config, one annotated archive per layer, the image as subject', () => {
    const subject = { mediaType: MediaTypes.ociManifest, digest: `sha256:${'1'.repeat(64)}`, size: 500 };
    const archives = layers.map((l) => ({ layerDigest: l.digest, blob: published(encodeArchive(l.archive), l.digest) }));
    const body = archiveArtifactManifest(subject, archives);
    assert.ok(body.equals(archiveArtifactManifest(subject, archives)), 'deterministic');
    const doc = JSON.parse(body.toString()) as Record<string, unknown>;
    assert.equal(doc['artifactType'], ARCHIVE_ARTIFACT_TYPE);
    assert.equal(doc['mediaType'], MediaTypes.ociManifest);
    assert.deepEqual(doc['config'], { mediaType: 'application/vnd.oci.empty.v1+json', digest: computeDigest(Buffer.from('{}')), size: 2, data: 'e30=' });
    assert.deepEqual(doc['subject'], subject);
    assert.deepEqual(
      doc['layers'],
      archives.map((a) => ({ mediaType: ARCHIVE_MEDIA_TYPE, digest: a.blob.digest, size: a.blob.size, annotations: { [ANNOTATION_LAYER_DIGEST]: a.layerDigest } })),
    );
  });
});

for (const referrersApi of [true, false]) {
  describe(`publishing and finding archives (${referrersApi ? 'referrers API' : 'referrers tag schema'})`, () => {
    let registry: OciRegistry;
    let client: RegistryClient;
    let layers: TestLayer[];
    let image: TestImage;
    /** Trusts every repository of the test registry, without signatures. */
    let repoTrust: TrustPolicy;

    before(async () => {
      registry = await OciRegistry.start({ referrersApi });
      repoTrust = new TrustPolicy([], [RepositoryPattern.parse(`${registry.host}/clip/*`)]);
      client = new RegistryClient({ hosts: { plainHttp: true }, retry: FAST_RETRY });
      layers = await testLayers();
      image = addImage(registry, layers);
    });
    after(async () => {
      await client.close();
      await registry.close();
    });

    const where = (layer: TestLayer, img = image) => ({ imageRef: img.ref, layerDigest: layer.digest, manifestDigest: img.manifest.digest });

    /** Publishes an artifact of the given (layer digest, archive bytes) pairs by hand, as a tamperer would. */
    async function publishRaw(img: TestImage, entries: Array<[string, Buffer, string?]>): Promise<string> {
      await pushBlob(client, img.ref, Buffer.from('{}'));
      const archives = [];
      for (const [layerDigest, bytes, signature] of entries) {
        const blob = await pushBlob(client, img.ref, bytes);
        archives.push({ layerDigest, blob: { mediaType: ARCHIVE_MEDIA_TYPE, digest: blob.digest, size: blob.size }, signature });
      }
      const body = archiveArtifactManifest({ mediaType: MediaTypes.ociManifest, ...img.manifest }, archives);
      const pushed = await pushManifest(client, img.ref, body, MediaTypes.ociManifest);
      if (!pushed.subject) {
        await addToReferrersTag(client, img.ref, img.manifest.digest, { mediaType: MediaTypes.ociManifest, digest: pushed.digest, size: pushed.size, artifactType: ARCHIVE_ARTIFACT_TYPE });
      }
      return pushed.digest;
    }

    test('publishes an artifact referring to the image, found again by a reader', async () => {
      const resolved = await client.resolve(image.ref);
      const result = await publishArchives(client, resolved, layers.map((l) => l.archive));
      assert.equal(result.via, referrersApi ? 'api' : 'tag');
      assert.deepEqual(result.subject, { mediaType: MediaTypes.ociManifest, ...image.manifest });
      assert.deepEqual(result.archives.map((a) => a.layerDigest), layers.map((l) => l.digest));
      const again = await publishArchives(client, resolved, layers.map((l) => l.archive));
      assert.equal(again.digest, result.digest, 'publishing the same archives again changes nothing');
      assert.ok(again.archives.every((a) => a.existed));

      const logger = recordingLogger();
      const finder = new PublishedArchives({ registry: client, logger, policy: repoTrust });
      for (const layer of layers) {
        const found = await finder.find(where(layer));
        assert.deepEqual({ archive: found?.archive, provenance: found?.provenance }, { archive: layer.archive, provenance: { source: 'repository', repository: `${registry.host}/clip/*` } });
        assert.deepEqual(found?.bytes, encodeArchive(layer.archive), 'the file the archive was decoded from, to be stored as it is');
      }
      assert.equal(logger.lines.filter((l) => /using the archive/.test(l)).length, 2, logger.lines.join('\n'));
    });

    test('refuses to publish archives that do not match the image layers', async () => {
      const resolved = await client.resolve(image.ref);
      await assert.rejects(publishArchives(client, resolved, [layers[1]!.archive, layers[0]!.archive]), InvalidArgumentError);
    });

    test('tampered archives are rejected and logged; an older genuine one is used instead', async () => {
      const [small, large] = layers as [TestLayer, TestLayer];
      const corrupt = encodeArchive(small.archive);
      corrupt[corrupt.length - 1]! ^= 0x01;
      const tampered = await publishRaw(image, [
        [small.digest, corrupt],
        [large.digest, encodeArchive(small.archive)],
      ]);
      const logger = recordingLogger();
      const finder = new PublishedArchives({ registry: client, logger, policy: repoTrust });
      assert.deepEqual((await finder.find(where(small)))?.archive, small.archive);
      assert.deepEqual((await finder.find(where(large)))?.archive, large.archive);
      const rejected = logger.lines.filter((l) => l.includes(`rejected the published archive`) && l.includes(tampered));
      assert.equal(rejected.length, 2, logger.lines.join('\n'));
      assert.match(rejected.join('\n'), /checksum mismatch/);
      assert.match(rejected.join('\n'), /it describes layer/);
    });

    test('with only tampered archives published, the layer is left to local indexing', async () => {
      const [small, large] = layers as [TestLayer, TestLayer];
      const other = registry.repo.addImage(layers.map((l) => l.blob), 'v2', { architecture: 'arm64', os: 'linux' });
      const img = { ...image, ref: `${registry.host}/clip/test:v2`, manifest: { digest: other.manifest.digest, size: other.manifest.size } };
      const genuine = encodeArchive(large.archive);
      const digest = await publishRaw(img, [[large.digest, genuine]]);
      // The registry serves other bytes than the descriptor names.
      registry.servedInstead.set(computeDigest(genuine), Buffer.concat([genuine.subarray(0, -1), Buffer.from([genuine[genuine.length - 1]! ^ 1])]));
      const logger = recordingLogger();
      const finder = new PublishedArchives({ registry: client, logger, policy: repoTrust });
      assert.equal(await finder.find(where(large, img)), undefined);
      assert.equal(await finder.find(where(small, img)), undefined, 'nothing published for this layer');
      const text = logger.lines.join('\n');
      assert.match(text, new RegExp(`rejected the published archive ${computeDigest(genuine)} \\(artifact ${digest}\\): .*digest mismatch`));
      assert.match(text, /no published archive passed its checks; indexing the layer locally/);
      registry.servedInstead.clear();
    });

    test('without a manifest digest or with the registry down, nothing is found and nothing breaks', async () => {
      const logger = recordingLogger();
      const finder = new PublishedArchives({ registry: client, logger, policy: repoTrust });
      const before = registry.seen.length;
      assert.equal(await finder.find({ imageRef: image.ref, layerDigest: layers[0]!.digest }), undefined);
      assert.equal(registry.seen.length, before, 'no request without a manifest digest');
      const down = new PublishedArchives({ registry: client, logger, policy: repoTrust });
      assert.equal(await down.find({ ...where(layers[0]!), imageRef: '127.0.0.1:1/clip/test:v1' }), undefined);
      assert.match(logger.lines.join('\n'), /warn looking for published archives of 127\.0\.0\.1:1\/clip\/test:v1@sha256:/);
    });

    test('signed archives are used with the trusted key only, and only for the image and archive signed', async () => {
      const trusted = keyPair();
      const stranger = keyPair();
      const resolved = await client.resolve(image.ref);
      await publishArchives(client, resolved, layers.map((l) => l.archive), { signingKey: trusted.key });
      const logger = recordingLogger();
      const signedFinder = new PublishedArchives({ registry: client, logger, policy: trusted.policy });
      for (const layer of layers) {
        const found = await signedFinder.find(where(layer));
        assert.deepEqual({ archive: found?.archive, provenance: found?.provenance }, { archive: layer.archive, provenance: { source: 'signed', keyId: trusted.key.keyId } });
      }
      // The same artifact, for a node that trusts another key.
      const other = new PublishedArchives({ registry: client, logger, policy: stranger.policy });
      assert.equal(await other.find(where(layers[0]!)), undefined);
      assert.match(logger.lines.join('\n'), /no signature verifies against a trusted key \(signed by sha256:/);

      // A genuine signature, replayed for another image that names the same layer (an attacker's image in
      // another repository): it covers the first image's manifest only.
      const [small] = layers as [TestLayer];
      const attacker = registry.repo.addImage(layers.map((l) => l.blob), 'replay', { architecture: 'riscv64', os: 'linux' });
      const img = { ...image, ref: `${registry.host}/evil/app:replay`, manifest: { digest: attacker.manifest.digest, size: attacker.manifest.size } };
      const bytes = encodeArchive(small.archive);
      const genuine = signStatement({ archive: computeDigest(bytes), layer: small.digest, diffId: small.archive.diffId, manifest: image.manifest.digest }, trusted.key);
      await publishRaw(img, [[small.digest, bytes, genuine]]);
      const replayLog = recordingLogger();
      assert.equal(await new PublishedArchives({ registry: client, logger: replayLog, policy: trusted.policy }).find(where(small, img)), undefined);
      assert.match(replayLog.lines.join('\n'), /its signature is for image sha256:[0-9a-f]{64}, not sha256:/);
    });

    test('a forged archive is refused before its bytes are fetched unless a trusted key signed exactly it', async () => {
      const trusted = keyPair();
      const [small] = layers as [TestLayer];
      // Well-formed, for the real layer digest, with the real diff ID, but other entries (an extra setuid file).
      const forged = { ...small.archive, entries: [...small.archive.entries, { ...small.archive.entries[1]!, path: 'etc/sushell', mode: 0o4755 }] };
      const forgedBytes = encodeArchive(forged);
      const attacker = registry.repo.addImage(layers.map((l) => l.blob), 'forged', { architecture: 'mips64', os: 'linux' });
      const img = { ...image, ref: `${registry.host}/evil/app:forged`, manifest: { digest: attacker.manifest.digest, size: attacker.manifest.size } };
      const mine = keyPair(); // the attacker signs with a key of their own
      const selfSigned = signStatement({ archive: computeDigest(forgedBytes), layer: small.digest, diffId: small.archive.diffId, manifest: img.manifest.digest }, mine.key);
      await publishRaw(img, [[small.digest, forgedBytes, selfSigned]]);
      await publishRaw(img, [[small.digest, forgedBytes]]);
      const fetchedBefore = registry.requests('GET', new RegExp(computeDigest(forgedBytes))).length;
      for (const policy of [trusted.policy, repoTrust, TrustPolicy.localOnly()]) {
        const logger = recordingLogger();
        assert.equal(await new PublishedArchives({ registry: client, logger, policy }).find(where(small, img)), undefined);
      }
      assert.equal(registry.requests('GET', new RegExp(computeDigest(forgedBytes))).length, fetchedBefore, 'the forged archive was never downloaded');

      // A trusted signature whose statement names another diff ID than the archive holds.
      const lying = { ...small.archive, diffId: `sha256:${'e'.repeat(64)}` };
      const lyingBytes = encodeArchive(lying);
      const other = registry.repo.addImage(layers.map((l) => l.blob), 'lying', { architecture: 'ppc64le', os: 'linux' });
      const lyingImg = { ...image, ref: `${registry.host}/clip/test:lying`, manifest: { digest: other.manifest.digest, size: other.manifest.size } };
      const signedTruth = signStatement({ archive: computeDigest(lyingBytes), layer: small.digest, diffId: small.archive.diffId, manifest: lyingImg.manifest.digest }, trusted.key);
      await publishRaw(lyingImg, [[small.digest, lyingBytes, signedTruth]]);
      const logger = recordingLogger();
      assert.equal(await new PublishedArchives({ registry: client, logger, policy: trusted.policy }).find(where(small, lyingImg)), undefined);
      assert.match(logger.lines.join('\n'), /its diff ID is sha256:e{64}, its signature vouches for sha256:/);
    });

    test('seventeen untrusted artifacts: the newest sixteen are looked at, no archive is downloaded, the layer is indexed locally', async () => {
      const trusted = keyPair();
      const [small] = layers as [TestLayer];
      const many = registry.repo.addImage(layers.map((l) => l.blob), 'many', { architecture: 's390x', os: 'linux' });
      const img = { ...image, ref: `${registry.host}/clip/test:many`, manifest: { digest: many.manifest.digest, size: many.manifest.size } };
      const blobs: string[] = [];
      for (let i = 0; i < 17; i++) {
        const bytes = encodeArchive({ ...small.archive, startupSpans: [0], mediaType: `application/vnd.oci.image.layer.v1.tar+gzip; n=${i}` });
        blobs.push(computeDigest(bytes));
        await publishRaw(img, [[small.digest, bytes]]);
      }
      const manifestsBefore = registry.requests('GET', /\/manifests\/sha256:/).length;
      const logger = recordingLogger();
      assert.equal(await new PublishedArchives({ registry: client, logger, policy: trusted.policy }).find(where(small, img)), undefined);
      const rejected = logger.lines.filter((l) => /rejected the published archive .*it is not signed/.test(l));
      assert.equal(rejected.length, 16, logger.lines.join('\n'));
      assert.ok(registry.requests('GET', /\/manifests\/sha256:/).length - manifestsBefore <= 17, 'one manifest per artifact looked at, plus the image');
      for (const digest of blobs) assert.equal(registry.requests('GET', new RegExp(digest)).length, 0, 'no archive downloaded');
      assert.match(logger.lines.join('\n'), /no published archive passed its checks; indexing the layer locally/);
    });

    test('with no trusted key or repository, nothing published is looked for', async () => {
      const before = registry.seen.length;
      const finder = new PublishedArchives({ registry: client, logger: recordingLogger(), policy: TrustPolicy.localOnly() });
      assert.equal(await finder.find(where(layers[0]!)), undefined);
      assert.equal(registry.seen.length, before, 'not one request');
    });
  });
}
