/**
 * Auto-publishing ([lazy] auto_publish) against a real HTTP registry on 127.0.0.1 (oci-registry.ts) and a
 * real archive store in a temp dir: what this node indexed is published signed with its key and found by a
 * node trusting that key; nothing else is published; publishing twice pushes nothing; a recorded start-up
 * profile is published again and wins; failures are classified, logged once per repository and counted;
 * the queue is bounded.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NotFoundError } from '../../../src/errors';
import { ArchivePublisher, type PublishOutcome } from '../../../src/remote/archive-publisher';
import { ArchiveStore } from '../../../src/remote/archive-store';
import { publishFailureHint, publishFailureReason } from '../../../src/remote/publish-failure';
import { PublishedArchives, publishArchives } from '../../../src/remote/published-archives';
import { indexLayer } from '../../../src/indexer';
import { RegistryAuthError, RegistryClient, RegistryRequestError, listReferrers } from '../../../src/registry';
import { TrustPolicy, parsePublicKey, parseSigningKey, type SigningKey } from '../../../src/trust';
import { FAST_RETRY } from '../../integration/registry/test-servers';
import { tempDir } from '../../helpers/processes';
import { TestImage, TestLayer, addImage, recordingLogger, testLayers } from './fixtures';
import { OciRegistry, type OciRegistryOptions } from './oci-registry';

const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

function keyPair(): { key: SigningKey; policy: TrustPolicy } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const key = parseSigningKey(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'node key');
  return { key, policy: new TrustPolicy([parsePublicKey(publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'node key')], []) };
}

/** Polls `check` every 10 ms for up to 10 s. */
async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

class CountingMetrics {
  readonly counts: string[] = [];
  autoPublished(outcome: PublishOutcome, reason: string): void {
    this.counts.push(reason ? `${outcome}:${reason}` : outcome);
  }
}

interface Node {
  registry: OciRegistry;
  client: RegistryClient;
  store: ArchiveStore;
  publisher: ArchivePublisher;
  metrics: CountingMetrics;
  logger: ReturnType<typeof recordingLogger>;
  image: TestImage;
}

describe('ArchivePublisher', () => {
  let layers: TestLayer[];
  let dir: string;
  const { key, policy } = keyPair();
  const nodes: Node[] = [];

  before(async () => {
    layers = await testLayers();
    dir = await tempDir('auto-publish');
  });
  after(async () => {
    for (const n of nodes) {
      await n.publisher.close(); // closes its client
      await n.registry.close();
    }
    await fsp.rm(dir, { recursive: true, force: true });
  });

  async function node(options: OciRegistryOptions = {}, publisherOptions: { maxPending?: number } = {}): Promise<Node> {
    const registry = await OciRegistry.start(options);
    const client = new RegistryClient({ hosts: { plainHttp: true }, retry: FAST_RETRY });
    const logger = recordingLogger();
    const store = new ArchiveStore(path.join(dir, `store-${nodes.length}`), 1 << 30, logger, policy);
    const metrics = new CountingMetrics();
    const publisher = new ArchivePublisher({ registry: client, archives: store, signingKey: key, logger, metrics, settleMs: 20, retryMs: 20, ...publisherOptions });
    const n = { registry, client, store, publisher, metrics, logger, image: addImage(registry, layers) };
    nodes.push(n);
    return n;
  }

  const where = (n: Node, tag = 'v1') => ({ imageRef: n.image.ref.replace(/:v1$/, `:${tag}`), layerDigest: layers[0]!.digest, manifestDigest: n.image.manifest.digest });
  const manifestPuts = (n: Node) => n.registry.requests('PUT', /\/manifests\/sha256:/).length;

  test('publishes the archives this node indexed, signed with its key; a node trusting the key uses them', async () => {
    const n = await node();
    for (const l of layers) await n.store.put(l.archive, { source: 'local' });
    n.publisher.schedule(where(n));
    n.publisher.schedule(where(n)); // a second layer of the same image: one publish
    await until('the publish', () => n.metrics.counts.length > 0);
    assert.deepEqual(n.metrics.counts, ['published']);
    assert.equal(manifestPuts(n), 1);
    assert.match(n.logger.lines.join('\n'), /auto-publish .*: published the archives of 2 of 2 layers \(0 with a start-up profile\) as sha256:[0-9a-f]{64}, signed by sha256:/);

    const reader = new PublishedArchives({ registry: n.client, logger: recordingLogger(), policy });
    for (const l of layers) {
      const found = await reader.find({ ...where(n), layerDigest: l.digest });
      assert.deepEqual(found?.archive, l.archive);
      assert.deepEqual(found?.provenance, { source: 'signed', keyId: key.keyId });
    }
  });

  test('publishes nothing that exists already: the referrers are read first', async () => {
    const n = nodes[0]!;
    const before = n.registry.seen.length;
    n.publisher.schedule(where(n));
    await until('the second publish', () => n.metrics.counts.length > 1);
    assert.deepEqual(n.metrics.counts, ['published', 'exists']);
    const writes = n.registry.seen.slice(before).filter((s) => s.method !== 'GET' && s.method !== 'HEAD');
    assert.deepEqual(writes, [], 'no upload, no manifest');
  });

  test('a start-up profile recorded later is published again, and readers take the profiled archive', async () => {
    const n = nodes[0]!;
    const [, large] = layers as [TestLayer, TestLayer];
    await n.store.put({ ...large.archive, startupSpans: [2, 0] }, { source: 'local' });
    n.publisher.schedule({ ...where(n), layerDigest: large.digest });
    await until('the profile publish', () => n.metrics.counts.length > 2);
    assert.deepEqual(n.metrics.counts, ['published', 'exists', 'published']);
    const { referrers } = await listReferrers(n.client, n.image.ref, n.image.manifest.digest);
    assert.equal(referrers.length, 2, 'a second artifact');
    const found = await new PublishedArchives({ registry: n.client, logger: recordingLogger(), policy }).find({ ...where(n), layerDigest: large.digest });
    assert.deepEqual(found?.archive.startupSpans, [2, 0], 'the newest artifact wins');
    assert.match(n.logger.lines.join('\n'), /published the archives of 2 of 2 layers \(1 with a start-up profile\)/);

    // An archive without a profile published after it (another span size: other bytes) comes second all the same.
    const other = await indexLayer([large.blob], { layerDigest: large.digest, mediaType: GZIP, compression: 'gzip', spanSize: 128 * 1024 });
    await publishArchives(n.client, await n.client.resolve(n.image.ref), [other], { signingKey: key, allLayers: false });
    assert.equal((await listReferrers(n.client, n.image.ref, n.image.manifest.digest)).referrers.length, 3);
    const chosen = await new PublishedArchives({ registry: n.client, logger: recordingLogger(), policy }).find({ ...where(n), layerDigest: large.digest });
    assert.deepEqual(chosen?.archive.startupSpans, [2, 0], 'the profiled archive is tried first');
  });

  test("never publishes an archive this node did not index; with none of its own, nothing at all", async () => {
    const n = await node({ referrersApi: true });
    const [small, large] = layers as [TestLayer, TestLayer];
    await n.store.put(small.archive, { source: 'signed', keyId: key.keyId });
    n.publisher.schedule(where(n));
    await until('the publisher to finish', () => n.publisher.pending === 0);
    assert.equal(manifestPuts(n), 0);
    assert.deepEqual(n.metrics.counts, []);

    await n.store.put(large.archive, { source: 'local' });
    n.publisher.schedule(where(n));
    await until('the publish', () => n.metrics.counts.length > 0);
    const { referrers } = await listReferrers(n.client, n.image.ref, n.image.manifest.digest);
    assert.equal(referrers.length, 1);
    const reader = new PublishedArchives({ registry: n.client, logger: recordingLogger(), policy });
    assert.equal(await reader.find({ ...where(n), layerDigest: small.digest }), undefined, 'the signed archive is not republished');
    assert.deepEqual((await reader.find({ ...where(n), layerDigest: large.digest }))?.archive, large.archive);
  });

  for (const [writes, reason, fix] of [
    ['denied', 'auth', /refused to let this node push to .*clip\/test: give clip credentials that may push there/],
    ['unsupported', 'unsupported', /does not accept uploads \(a read-only registry or a mirror\)/],
  ] as const) {
    test(`a registry whose writes are ${writes}: logged once per repository with the reason and the fix, counted, nothing else`, async () => {
      const n = await node({ writes });
      for (const l of layers) await n.store.put(l.archive, { source: 'local' });
      n.publisher.schedule(where(n));
      await until('the failure', () => n.metrics.counts.length > 0);
      // Another image of the same repository fails too, without another warning.
      const other = n.registry.repo.addImage([layers[0]!.blob], 'v2');
      n.publisher.schedule({ imageRef: n.image.ref.replace(/:v1$/, ':v2'), layerDigest: layers[0]!.digest, manifestDigest: other.manifest.digest });
      await until('the second failure', () => n.metrics.counts.length > 1);
      assert.deepEqual(n.metrics.counts, [`failed:${reason}`, `failed:${reason}`]);
      const warnings = n.logger.lines.filter((l) => l.startsWith('warn'));
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0]!, new RegExp(`auto-publish .* failed \\(${reason}\\): `));
      assert.match(warnings[0]!, fix);
      assert.equal(n.logger.lines.filter((l) => l.startsWith('debug') && l.includes(`failed (${reason})`)).length, 1);
      await until('the publisher to finish', () => n.publisher.pending === 0);
    });
  }

  test('an unreachable registry is tried once more, then given up', async () => {
    const n = await node();
    await n.store.put(layers[0]!.archive, { source: 'local' });
    await n.registry.close();
    n.publisher.schedule(where(n));
    await until('two attempts', () => n.metrics.counts.length >= 2);
    await until('the publisher to give up', () => n.publisher.pending === 0);
    assert.deepEqual(n.metrics.counts, ['failed:unreachable', 'failed:unreachable']);
  });

  test('at most maxPending images wait; more are dropped and counted', async () => {
    const n = await node({}, { maxPending: 1 });
    n.publisher.schedule(where(n));
    n.publisher.schedule({ ...where(n), manifestDigest: `sha256:${'2'.repeat(64)}` });
    assert.equal(n.publisher.pending, 1);
    assert.deepEqual(n.metrics.counts, ['dropped']);
    assert.match(n.logger.lines.join('\n'), /warn auto-publish: 1 images wait to be published already/);
    await n.publisher.close();
    assert.equal(n.publisher.pending, 0);
    n.publisher.schedule(where(n));
    assert.equal(n.publisher.pending, 0, 'nothing is scheduled once closed');
  });

  test('without a manifest digest nothing is scheduled', async () => {
    const n = await node();
    n.publisher.schedule({ imageRef: n.image.ref, layerDigest: layers[0]!.digest });
    assert.equal(n.publisher.pending, 0);
  });
});

describe('publishFailureReason and publishFailureHint', () => {
  test('classify what a push meets', () => {
    assert.equal(publishFailureReason(new RegistryAuthError('PUT …: HTTP 403', { status: 403 })), 'auth');
    assert.equal(publishFailureReason(new RegistryRequestError('POST …: HTTP 405', { status: 405 })), 'unsupported');
    assert.equal(publishFailureReason(new Error('wrapped', { cause: new RegistryRequestError('POST …: HTTP 405', { status: 405 }) })), 'unsupported');
    assert.equal(publishFailureReason(new NotFoundError('r.example: no configured host has the push capability')), 'not-found');
    assert.equal(publishFailureReason(new RegistryRequestError('PUT …: HTTP 400', { status: 400 })), 'other');
  });

  test('the fix names the host and repository, and says the CRI keychain is not used to push', () => {
    const hint = publishFailureHint('auth', 'r.example', 'r.example/team/app');
    assert.match(hint!, /r\.example refused to let this node push to r\.example\/team\/app/);
    assert.match(hint!, /CRI keychain are not used for pushes/);
    assert.match(publishFailureHint('not-found', 'r.example', 'r.example/app')!, /"push" capability in its hosts\.toml/);
    assert.equal(publishFailureHint('other', 'r.example', 'r.example/app'), undefined);
  });
});
