/**
 * `[lazy] auto_publish` end to end: a cluster where one node indexes each layer. Three clip nodes on this
 * machine, each with its own clip root and its own containerd (CRI unpacking into clip), runc, and the real
 * registry (distribution 2.8: the referrers tag schema):
 *
 *   A  auto_publish with key K: pulls and runs the `large` image through CRI (a busybox layer and a layer
 *      with a 128 MiB random file and the small file the container prints), indexes it, publishes its
 *      archives signed with K, and again once the start-up profiles are recorded;
 *   B  trusts K: its first pull of the image uses A's archives and fetches only the ranges the container
 *      reads (≤ 5% of the image's layer bytes, measured at the registry's access log), indexes nothing,
 *      and its rootfs is the same tree as containerd's own overlayfs unpack;
 *   C  auto_publish with another key, pulling from a read-only registry serving the same storage: it
 *      indexes, cannot publish (405), says so once with the fix, counts it, and runs the container.
 *
 * Last, A restarts: it checks the images of the layers it remounts and finds nothing new to publish.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ANNOTATION_LAYER_DIGEST, PublishedArchives, newestArchiveArtifacts, trustOf } from '../../src/remote/published-archives';
import { Descriptor, RegistryClient, parseReference } from '../../src/registry';
import { TrustPolicy, loadPublicKey } from '../../src/trust';
import { scrape, total } from '../helpers/clip-status';
import { criPull, runIn } from '../helpers/cri-run';
import { assertPulledLazily, sameTreeAsOverlayfs } from '../helpers/images';
import { waitFor } from '../helpers/processes';
import { recordingLogger } from '../helpers/recording-logger';
import { Stack, useStack } from '../helpers/stack';

const TEST_TIMEOUT = 300_000;
const MESSAGE = 'small file read by the container\n';
/** How long a node may take to publish (indexing settles, then a few pushes on loopback). */
const PUBLISH_WAIT_MS = 120_000;

const keyDir = mkdtempSync(path.join(os.tmpdir(), 'clip-autopub-keys-'));
/** Writes an ed25519 key pair as OpenSSL would; returns the private and public key files. */
function keyPair(name: string): { key: string; pub: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const key = path.join(keyDir, `${name}.pem`);
  const pub = path.join(keyDir, `${name}.pub`);
  writeFileSync(key, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  return { key, pub };
}
const K = keyPair('cluster');
const OTHER = keyPair('other');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('auto_publish: a cluster where one node indexes each layer', () => {
  const a = useStack({
    tags: ['large'],
    criSnapshotter: 'clip',
    clipConfig: `[lazy]\nbackground_fetch = false\nauto_publish = true\npublish_key = "${K.key}"\n`,
  });
  const b = useStack({
    criSnapshotter: 'clip',
    registryOf: () => ({ stack: a }),
    clipConfig: `[lazy]\nbackground_fetch = false\ntrusted_keys = ["${K.pub}"]\n[metrics]\naddress = "127.0.0.1:0"\n`,
  });
  const c = useStack({
    criSnapshotter: 'clip',
    registryOf: () => ({ stack: a, readOnly: true }),
    clipConfig: `[lazy]\nbackground_fetch = false\nauto_publish = true\npublish_key = "${OTHER.key}"\n[metrics]\naddress = "127.0.0.1:0"\n`,
  });
  after(() => rmSync(keyDir, { recursive: true, force: true }));

  const image = () => a.images['large']!;
  const layerBytes = () => image().layers.reduce((n, l) => n + l.size, 0);

  async function withClient<T>(stack: Stack, work: (client: RegistryClient) => Promise<T>): Promise<T> {
    const client = new RegistryClient({ hosts: { configDir: [stack.hostsDir] } });
    try {
      return await work(client);
    } finally {
      await client.close();
    }
  }

  /** The image's archives as a node trusting K finds them: by layer digest, undefined where none passes. */
  async function trustedArchives(): Promise<Map<string, { startupSpans: number; signed: boolean }>> {
    const policy = new TrustPolicy([await loadPublicKey(K.pub)], []);
    return withClient(a, async (registry) => {
      const reader = new PublishedArchives({ registry, logger: recordingLogger(), policy });
      const found = new Map<string, { startupSpans: number; signed: boolean }>();
      for (const l of image().layers) {
        const got = await reader.find({ imageRef: a.imageRef('large'), layerDigest: l.digest, manifestDigest: image().manifest });
        if (got) found.set(l.digest, { startupSpans: got.archive.startupSpans?.length ?? 0, signed: got.provenance.source === 'signed' });
      }
      return found;
    });
  }

  test('node A indexes the image it runs, then publishes its archives signed with its key', { timeout: TEST_TIMEOUT }, async () => {
    const before = await a.registryBlobBytes();
    await criPull(a, 'large');
    await assertPulledLazily(a, 'large', true, 'k8s.io');
    assert.equal(await runIn(a, 'large', 'a-first'), MESSAGE);
    console.log(`# A's first pull + run of 'large' (indexing): the registry served ${(await a.registryBlobBytes()) - before} blob bytes for ${layerBytes()} bytes of layers`);
    assert.equal((a.clipLog().match(/indexing layer/g) ?? []).length, image().layers.length, 'A indexed every layer');

    const ref = parseReference(a.imageRef('large'));
    const policy = new TrustPolicy([await loadPublicKey(K.pub)], []);
    const artifacts = await withClient(a, async (registry) => {
      let found: Awaited<ReturnType<typeof newestArchiveArtifacts>> = [];
      await waitFor(
        'the artifact A publishes (referrers tag)',
        async () => {
          found = await newestArchiveArtifacts(registry, ref, image().manifest, recordingLogger());
          return found.length > 0 || (await sleep(1000), false);
        },
        PUBLISH_WAIT_MS,
      );
      return found;
    });
    const oldest = artifacts[artifacts.length - 1]!;
    const layerOf = (d: Descriptor): string => d.annotations![ANNOTATION_LAYER_DIGEST]!;
    assert.deepEqual(oldest.layers.map(layerOf), image().layers.map((l) => l.digest), 'one archive per layer, in order');
    for (const d of oldest.layers) {
      const { provenance } = trustOf(policy, d, { repository: ref.name, layerDigest: layerOf(d), manifestDigest: image().manifest });
      assert.deepEqual(provenance, { source: 'signed', keyId: policy.keys[0]!.keyId });
    }
    assert.match(a.clipLog(), new RegExp(`auto-publish ${ref.name}@${image().manifest}: published the archives of 2 of 2 layers \\(0 with a start-up profile\\)`));
    console.log(`# A published ${oldest.digest}: ${oldest.layers.map((d) => `${d.size} bytes`).join(', ')} of archives for ${layerBytes()} bytes of layers`);
  });

  test('once A has recorded the start-up profiles, it publishes again and readers take the profiled archives', { timeout: TEST_TIMEOUT }, async () => {
    let found = new Map<string, { startupSpans: number; signed: boolean }>();
    await waitFor(
      'the profiled artifact',
      async () => {
        found = await trustedArchives();
        return image().layers.every((l) => (found.get(l.digest)?.startupSpans ?? 0) > 0) || (await sleep(2000), false);
      },
      PUBLISH_WAIT_MS,
    );
    assert.ok([...found.values()].every((f) => f.signed));
    assert.match(a.clipLog(), /recorded a start-up profile/);
    assert.match(a.clipLog(), /published the archives of 2 of 2 layers \([12] with a start-up profile\)/);
  });

  test("node B, trusting A's key, serves the image from its first pull without indexing: ≤ 5% of the layer bytes", { timeout: TEST_TIMEOUT }, async () => {
    const digests = image().layers.map((l) => l.digest);
    const [layersBefore, allBefore] = [await b.registryBlobBytes(digests), await b.registryBlobBytes()];
    await criPull(b, 'large');
    assert.equal(await runIn(b, 'large', 'b-first'), MESSAGE);
    // Nothing else reads from the registry meanwhile (A and C are idle, background fetching is off).
    const served = (await b.registryBlobBytes(digests)) - layersBefore;
    const all = (await b.registryBlobBytes()) - allBefore;
    const percent = (n: number): string => `${((n / layerBytes()) * 100).toFixed(2)}%`;
    console.log(
      `# B's first pull + run of 'large': the registry served ${served} of its ${layerBytes()} layer bytes (${percent(served)}); ` +
        `${all} blob bytes in all, archives and config included (${percent(all)})`,
    );
    assert.ok(served <= 0.05 * layerBytes(), `B fetched ${served} layer bytes, ${percent(served)} of the image`);
    assert.ok(all <= 0.05 * layerBytes(), `B fetched ${all} blob bytes in all, ${percent(all)} of the image's layer bytes`);

    const log = b.clipLog();
    assert.doesNotMatch(log, /indexing layer/, 'B indexed nothing');
    assert.equal((log.match(/using the archive sha256:[0-9a-f]{64} \(\d+ bytes, signed by sha256:[0-9a-f]{64}\) published in/g) ?? []).length, digests.length, log.slice(-3000));
    const metrics = await scrape(b);
    assert.equal(total(metrics, 'clip_indexed_layers_total'), 0);
    assert.equal(total(metrics, 'clip_index_bytes_total'), 0);
    await assertPulledLazily(b, 'large', true, 'k8s.io');
    // The rootfs, file by file, against containerd's own overlayfs unpack of the image (after the measurement).
    await sameTreeAsOverlayfs(b, 'large');
  });

  test('a node whose registry refuses pushes logs why once, counts it, and still runs the container', { timeout: TEST_TIMEOUT }, async () => {
    await criPull(c, 'large');
    assert.equal(await runIn(c, 'large', 'c-first'), MESSAGE);
    await assertPulledLazily(c, 'large', true, 'k8s.io');
    const failed = /auto-publish \S+ failed \(unsupported\): .*HTTP 405.*Fix: \S+ does not accept uploads/;
    await waitFor('C to give up publishing', () => failed.test(c.clipLog()) || sleep(500).then(() => false), PUBLISH_WAIT_MS);
    assert.equal(c.clipLog().split('\n').filter((l) => /warn/.test(l) && /auto-publish/.test(l)).length, 1, 'one warning');
    assert.ok(total(await scrape(c), 'clip_auto_publish_total', { outcome: 'failed', reason: 'unsupported' }) >= 1, 'counted');
    assert.equal(await runIn(c, 'large', 'c-second'), MESSAGE, 'the node carries on');
  });

  test('after a restart, A checks the images it remounts again and pushes nothing that is there already', { timeout: TEST_TIMEOUT }, async () => {
    const ref = parseReference(a.imageRef('large'));
    const count = (): Promise<number> => withClient(a, async (registry) => (await newestArchiveArtifacts(registry, ref, image().manifest, recordingLogger())).length);
    const before = await count();
    await a.restartClip();
    const checked = /auto-publish \S+: artifact sha256:[0-9a-f]{64} has these archives already/;
    await waitFor("A's check of the remounted image", () => checked.test(a.clip!.process.output()) || sleep(500).then(() => false), PUBLISH_WAIT_MS);
    assert.equal(await count(), before, 'no new artifact');
    assert.doesNotMatch(a.clip!.process.output(), /auto-publish .*: published/);
  });
});
