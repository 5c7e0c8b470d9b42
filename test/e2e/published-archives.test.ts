/**
 * Published archives end to end: the real registry (distribution 2.8, so the referrers tag schema), the
 * real containerd 1.6 with CRI unpacking into clip (lazy pulls), runc. `clip index push` publishes the
 * archives of the `large` image (a busybox layer and a layer with a 128 MiB random file and a small
 * file); a node with a fresh clip root and no image then pulls it through CRI and runs a container that
 * reads the small file, and the registry serves little more than the archives and the bytes read. A
 * tampered artifact is rejected and the layers are indexed locally. A start-up profile recorded on one node
 * is published with a start-up bundle, which the next node fetches with one request during the pull and
 * reads the container's start-up from; a tampered bundle blob is rejected and spans serve the reads.
 * Registry traffic is measured at the registry (its access log).
 *
 * Trust (docs/security.md): clip is configured with a trusted public key and the archives are pushed with
 * its private key. An attacker's copy of the image in another repository, whose referrer carries a forged
 * archive for the real layer digest, cannot change what a container of either image sees, whichever image
 * is pulled first, with that key configured and with the default configuration (no trust at all).
 *
 * The tests share one stack and run in order. Between them the image is removed from containerd, clip is
 * stopped, its root deleted and clip started again: a node that has never seen the image.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, promises as fsp, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { decodeArchive, encodeArchive, type ClipArchive } from '../../src/archive';
import { spanRange } from '../../src/indexer';
import {
  ANNOTATION_LAYER_DIGEST,
  ARCHIVE_ARTIFACT_TYPE,
  ARCHIVE_MEDIA_TYPE,
  archiveArtifactManifest,
} from '../../src/remote/published-archives';
import { ImageManifest, MediaTypes, RegistryClient, computeDigest, pushBlob, pushManifest, referrersTag } from '../../src/registry';
import { parseSigningKey, signStatement } from '../../src/trust';
import { CriClient } from '../helpers/cri-client';
import { snapshotKeys } from '../helpers/images';
import { REPO_ROOT, run, waitFor } from '../helpers/processes';
import { LayerSummary, mountsUnder, useStack } from '../helpers/stack';

const TEST_TIMEOUT = 300_000;
const K8S = ['-n', 'k8s.io'];
const CLIP = path.join(REPO_ROOT, 'bin', 'clip');
const MESSAGE = 'small file read by the container\n';
/** The attacker's repository on the same registry, holding a copy of the image. */
const EVIL_REPO = 'evil/app';

/** The publisher's signing key pair, in files as OpenSSL writes them. */
const keyDir = mkdtempSync(path.join(os.tmpdir(), 'clip-keys-'));
const SIGN_KEY = path.join(keyDir, 'publisher.pem');
const TRUSTED_KEY = path.join(keyDir, 'publisher.pub');
{
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  writeFileSync(SIGN_KEY, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(TRUSTED_KEY, publicKey.export({ type: 'spki', format: 'pem' }));
}
const WITH_KEY = `trusted_keys = ["${TRUSTED_KEY}"]`;
const NO_TRUST = 'trusted_keys = []';

describe('published archives', () => {
  const stack = useStack({ tags: ['large'], criSnapshotter: 'clip', clipConfig: `[lazy]\nbackground_fetch = false\n${WITH_KEY}\n` });
  after(() => rmSync(keyDir, { recursive: true, force: true }));
  /** The attacker's forged archive (publishForgery). */
  let forgery: string | undefined;
  /** The published artifact and its archive blobs, by layer digest. */
  let artifact: { digest: string; archives: Map<string, { digest: string; size: number }> } | undefined;

  const ref = (): string => stack.imageRef('large');
  const layers = () => stack.images['large']!.layers;
  const registry = (): RegistryClient => new RegistryClient({ hosts: { configDir: stack.hostsDir } });

  const criPull = (): Promise<void> => criPullOf(ref());

  async function criPullOf(image: string): Promise<void> {
    const cri = new CriClient(stack.containerdAddress);
    try {
      await cri.pullImage(image);
    } catch (err) {
      throw new Error(`CRI PullImage ${image}: ${(err as Error).message}\n${await stack.diagnostics()}`);
    } finally {
      cri.close();
    }
  }

  /** CRI pull + a container reading the small file; returns the blob bytes the registry served meanwhile. */
  async function pullAndRun(id: string, image = ref()): Promise<number> {
    const before = await stack.registryBlobBytes();
    await criPullOf(image);
    const r = await stack.ctr([...K8S, 'run', '--rm', '--snapshotter', 'clip', image, id]);
    assert.equal(r.code, 0, `ctr run failed:\n${r.stderr}\n${await stack.diagnostics()}`);
    assert.equal(r.stdout, MESSAGE, `the container of ${image} read other bytes than the layer holds`);
    return (await stack.registryBlobBytes()) - before;
  }

  /** Rewrites the [lazy] trust line of clip's config; takes effect at the next start. */
  async function setTrust(line: string): Promise<void> {
    const text = await fsp.readFile(stack.clipConfigFile, 'utf8');
    await fsp.writeFile(stack.clipConfigFile, text.replace(/^trusted_keys = .*$/m, line));
  }

  /** The image gone from containerd and clip started again on an empty root: a node new to the image. */
  async function freshNode(): Promise<void> {
    // CRI keeps the image under its tag, its repo digest and its ID: all three hold its snapshots.
    const images = (await stack.ctrOk([...K8S, 'images', 'ls', '-q'])).split('\n').filter((l) => l.trim() !== '');
    await stack.ctrOk([...K8S, 'images', 'rm', '--sync', ...images]);
    assert.deepEqual(await snapshotKeys(stack, 'clip', 'k8s.io'), [], 'containerd removed the snapshots');
    await stack.stopClip();
    assert.deepEqual(await mountsUnder(stack.clipRoot), [], 'clip unmounted its layers');
    await fsp.rm(stack.clipRoot, { recursive: true, force: true });
    await restartClip();
  }

  /** Starts clip again and waits until containerd reaches it. */
  async function restartClip(): Promise<void> {
    await stack.restartClip();
    // containerd redials the proxy plugin's socket with back-off; a Prepare is a call that reaches clip.
    await waitFor('containerd to reach the restarted clip', async () => {
      const key = `probe-${Date.now()}`;
      if ((await stack.ctr(['snapshots', '--snapshotter', 'clip', 'prepare', key])).code !== 0) return false;
      await stack.ctrOk(['snapshots', '--snapshotter', 'clip', 'rm', key]);
      return true;
    }, 120_000);
  }

  /** Output of the clip daemon started last. */
  const clipLog = (): string => stack.clip!.process.output();

  /** Bytes the registry served for one blob, from its access log. */
  async function servedFor(digest: string): Promise<number> {
    const log = await fsp.readFile(path.join(stack.state, 'registry.log'), 'utf8');
    return log
      .split('\n')
      .map((l) => l.split(' '))
      .filter((f) => f[5] === '"GET' && f[6]?.endsWith(`/blobs/${digest}`) && /^\d+$/.test(f[9] ?? ''))
      .reduce((n, f) => n + Number(f[9]), 0);
  }

  test('without published archives, clip indexes every layer: the registry serves the whole image', { timeout: TEST_TIMEOUT }, async () => {
    const size = layers().reduce((n, l) => n + l.size, 0);
    const served = await pullAndRun('unpublished');
    console.log(`# without published archives: CRI pull + run of 'large' (${size} bytes of layers): registry served ${served} blob bytes`);
    assert.ok(served >= size, `${served} < ${size}`);
    assert.equal((clipLog().match(/indexing layer/g) ?? []).length, 2);
  });

  test('clip index push publishes the archives as an artifact referring to the image', { timeout: TEST_TIMEOUT }, async () => {
    const before = await stack.registryBlobBytes();
    const r = await run(CLIP, ['index', 'push', ref(), '--hosts-dir', stack.hostsDir, '--sign-key', SIGN_KEY], { timeoutMs: 240_000 });
    assert.equal(r.code, 0, r.stderr);
    const pushed = (await stack.registryBlobBytes()) - before;
    console.log(`# clip index push ${ref()} (streams every layer to index it): registry served ${pushed} blob bytes\n# ${r.stdout.trim()}`);
    const digest = /as (sha256:[0-9a-f]{64}) \(referrers tag sha256-[0-9a-f]{64}\), signed by sha256:[0-9a-f]{64}$/m.exec(r.stdout)?.[1];
    assert.ok(digest, r.stdout);

    const client = registry();
    try {
      const manifest = await client.fetchManifest(`${stack.registryAddress}/${stack.repo}@${digest}`);
      const doc = (manifest.parsed.kind === 'manifest' ? manifest.parsed.manifest : undefined) as ImageManifest & { artifactType: string; subject: { digest: string } };
      assert.equal(doc.artifactType, ARCHIVE_ARTIFACT_TYPE);
      assert.equal(doc.subject.digest, stack.images['large']!.manifest);
      artifact = { digest, archives: new Map(doc.layers.map((l) => [l.annotations![ANNOTATION_LAYER_DIGEST]!, { digest: l.digest, size: l.size }])) };
      assert.deepEqual([...artifact.archives.keys()], layers().map((l) => l.digest));
    } finally {
      await client.close();
    }
  });

  test('a node with published archives starts the container without downloading any whole layer', { timeout: TEST_TIMEOUT }, async () => {
    assert.ok(artifact, 'published by the previous test');
    const [small, large] = layers() as [LayerSummary, LayerSummary];
    await freshNode();
    const largeBefore = await servedFor(large.digest);
    const served = await pullAndRun('published');
    const largeServed = (await servedFor(large.digest)) - largeBefore;
    const archiveBytes = [...artifact.archives.values()].reduce((n, a) => n + a.size, 0);
    // The span holding /data/small.txt, in compressed bytes, from the archive clip stored.
    const largeArchive = decodeArchive(await fsp.readFile(path.join(stack.clipRoot, 'archives', 'sha256', `${large.digest.slice(7)}.clip`)));
    const spans = largeArchive.checkpoints.map((_, i) => spanRange(largeArchive, i));
    const span = Math.max(...spans.map((s) => s.compressedEnd - s.compressedStart));
    const config = 4096; // the image config (579 bytes) and slack
    const bound = archiveBytes + span + small.size + config;
    const log = clipLog();
    console.log(
      `# with published archives: CRI pull + run of 'large' on a fresh node: registry served ${served} blob bytes ` +
        `(archives ${archiveBytes} + one span ${span} + small layer ${small.size} + config = ${bound}; ` +
        `image ${small.size + large.size}); of the ${large.size}-byte layer: ${largeServed} bytes`,
    );
    assert.ok(served <= bound, `registry served ${served} bytes, more than ${bound}`);
    assert.ok(largeServed <= span, `of the large layer only the span that was read, not ${largeServed} bytes`);
    assert.equal((log.match(/using the archive sha256:[0-9a-f]{64} \(\d+ bytes, signed by sha256:[0-9a-f]{64}\) published in/g) ?? []).length, 2, log.slice(-3000));
    assert.doesNotMatch(log, /indexing layer/);
  });

  /** GET requests of one blob in the registry's access log. */
  async function requestsFor(digest: string): Promise<number> {
    const log = await fsp.readFile(path.join(stack.state, 'registry.log'), 'utf8');
    return log.split('\n').map((l) => l.split(' ')).filter((f) => f[5] === '"GET' && f[6]?.endsWith(`/blobs/${digest}`)).length;
  }

  /** The file in which the registry (distribution's filesystem storage) keeps a blob's bytes. */
  const storedBlob = (digest: string): string =>
    path.join(stack.state, 'registry-data', 'docker', 'registry', 'v2', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7), 'data');

  /** The large layer's archive as clip stored it, with the start-up bundle the publisher added. */
  let bundled: { archive: ClipArchive; smallSpan: number } | undefined;

  test('a start-up profile recorded where the image ran is published with a start-up bundle, which the next node fetches in one request', { timeout: TEST_TIMEOUT }, async () => {
    assert.ok(artifact, 'published by an earlier test');
    const [, large] = layers() as [LayerSummary, LayerSummary];
    // The node of the previous test ran the container; stopping clip unmounts its layers, which stores the
    // profiles recorded so far in their archives.
    await stack.stopClip();
    const archiveDir = path.join(stack.clipRoot, 'archives', 'sha256');
    const recorded = decodeArchive(await fsp.readFile(path.join(archiveDir, `${large.digest.slice(7)}.clip`)));
    const smallEntry = recorded.entries.find((e) => e.path === 'data/small.txt');
    assert.ok(smallEntry, 'the large layer holds data/small.txt');
    const smallSpan = recorded.checkpoints.filter((c) => c.uncompressedOffset <= smallEntry.dataOffset).length - 1;
    assert.deepEqual(recorded.startupSpans, [smallSpan], 'the profile is the one span the container read');
    const ranges = recorded.startupRanges ?? [];
    assert.ok(ranges.some(([s, e]) => s <= smallEntry.dataOffset && smallEntry.dataOffset + smallEntry.size <= e), `small.txt in the ranges ${JSON.stringify(ranges)}`);
    await restartClip();

    const r = await run(CLIP, ['index', 'push', ref(), '--hosts-dir', stack.hostsDir, '--reuse', archiveDir, '--sign-key', SIGN_KEY], { timeoutMs: 240_000 });
    assert.equal(r.code, 0, r.stderr);
    await freshNode();
    const largeBefore = await servedFor(large.digest);
    await criPull();
    const fetched = new RegExp(`layer ${large.digest}: start-up bundle: (\\d+) bytes fetched`);
    await waitFor('clip to fetch the start-up bundle', () => fetched.test(clipLog()), 30_000);
    const archive = decodeArchive(await fsp.readFile(path.join(stack.clipRoot, 'archives', 'sha256', `${large.digest.slice(7)}.clip`)));
    const bundle = archive.startupBundle;
    assert.ok(bundle, 'the published archive carries its start-up bundle');
    assert.deepEqual(archive.startupRanges, ranges);
    assert.equal(await requestsFor(bundle.digest), 1, 'the bundle was fetched with one request');
    assert.equal(await servedFor(bundle.digest), bundle.compressedSize);
    const run2 = await stack.ctr([...K8S, 'run', '--rm', '--snapshotter', 'clip', ref(), 'bundled']);
    assert.equal(run2.code, 0, run2.stderr);
    assert.equal(run2.stdout, MESSAGE);
    assert.equal((await servedFor(large.digest)) - largeBefore, 0, 'no span of the large layer was fetched: its reads were in the bundle');
    assert.equal(await requestsFor(bundle.digest), 1, 'and the bundle was not fetched again');
    assert.doesNotMatch(clipLog(), new RegExp(`layer ${large.digest}: start-up profile: fetched`), 'the profile span the bundle covers was not loaded ahead');
    console.log(
      `# start-up bundle: ${bundle.compressedSize} bytes (${bundle.uncompressedSize} inflated, ${ranges.length} ranges) fetched in one request during the pull; ` +
        `the run fetched nothing of the ${large.size}-byte layer (span ${smallSpan} would have been ${spanRange(recorded, smallSpan).compressedEnd - spanRange(recorded, smallSpan).compressedStart} bytes)`,
    );
    bundled = { archive, smallSpan };
  });

  test('a tampered start-up bundle is rejected and logged, and the container reads the real bytes from spans', { timeout: TEST_TIMEOUT }, async () => {
    assert.ok(bundled, 'published by the previous test');
    const [, large] = layers() as [LayerSummary, LayerSummary];
    const bundle = bundled.archive.startupBundle!;
    const file = storedBlob(bundle.digest);
    const original = await fsp.readFile(file);
    const tampered = Buffer.from(original);
    tampered[tampered.length >> 1]! ^= 0x20; // same size, other bytes: the registry serves it under the old digest
    await fsp.writeFile(file, tampered);
    try {
      await freshNode();
      const largeBefore = await servedFor(large.digest);
      await pullAndRun('tampered-bundle');
      const log = clipLog();
      const rejected = log.split('\n').filter((l) => l.includes(`layer ${large.digest}: start-up bundle ${bundle.digest}`) && l.includes('reading spans instead'));
      assert.equal(rejected.length, 1, log.slice(-3000));
      assert.match(rejected[0]!, /digest/i);
      const { compressedStart, compressedEnd } = spanRange(bundled.archive, bundled.smallSpan);
      assert.equal((await servedFor(large.digest)) - largeBefore, compressedEnd - compressedStart, 'the span the container read came from the registry instead');
      console.log(`# tampered start-up bundle: rejected (${rejected[0]!.slice(0, 200)}…); the container read the real file through span ${bundled.smallSpan}`);
    } finally {
      await fsp.writeFile(file, original);
    }
  });

  /**
   * The attacker's copy of the image in EVIL_REPO, with a referrer carrying a forged archive of the large
   * layer (the real layer digest and diff ID, well formed): data/small.txt points at other bytes of the
   * layer and is setuid, signed with the attacker's own key. Returns the forged archive's digest.
   */
  async function publishForgery(): Promise<string> {
    await run(path.join(REPO_ROOT, 'scripts', 'push-test-image.sh'), [path.join(stack.state, 'layout'), 'large', stack.registryAddress, EVIL_REPO], { timeoutMs: 150_000 });
    const [, large] = layers() as [LayerSummary, LayerSummary];
    const evil = `${stack.registryAddress}/${EVIL_REPO}:large`;
    const client = registry();
    try {
      const image = await client.resolve(evil);
      const real = decodeArchive(await client.fetchBlob(ref(), { mediaType: ARCHIVE_MEDIA_TYPE, ...artifact!.archives.get(large.digest)! }));
      const random = real.entries.find((e) => e.type === 'file' && e.size > 1 << 20)!;
      const forged = {
        ...real,
        entries: real.entries.map((e) => (e.path === 'data/small.txt' ? { ...e, dataOffset: random.dataOffset, mode: 0o4755 } : e)),
      };
      const bytes = encodeArchive(forged);
      const blob = await pushBlob(client, evil, bytes);
      const { privateKey } = generateKeyPairSync('ed25519');
      const attackerKey = parseSigningKey(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'attacker');
      const signature = signStatement({ archive: blob.digest, layer: large.digest, diffId: real.diffId, manifest: image.digest }, attackerKey);
      await pushBlob(client, evil, Buffer.from('{}'));
      const body = archiveArtifactManifest({ mediaType: image.mediaType, digest: image.digest, size: image.size }, [
        { layerDigest: large.digest, blob: { mediaType: ARCHIVE_MEDIA_TYPE, digest: blob.digest, size: blob.size }, signature },
      ]);
      const pushed = await pushManifest(client, evil, body, MediaTypes.ociManifest);
      const index = { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [{ mediaType: MediaTypes.ociManifest, digest: pushed.digest, size: pushed.size, artifactType: ARCHIVE_ARTIFACT_TYPE }] };
      await pushManifest(client, evil, Buffer.from(JSON.stringify(index)), MediaTypes.ociIndex, { tag: referrersTag(image.digest) });
      return computeDigest(bytes);
    } finally {
      await client.close();
    }
  }

  /**
   * Both images pulled and run on a fresh node, in either order: each container sees the real file. Returns
   * clip's log of each order (attacker image first, then real image first).
   */
  async function bothOrders(forgery: string, label: string): Promise<string[]> {
    const logs: string[] = [];
    const evil = `${stack.registryAddress}/${EVIL_REPO}:large`;
    for (const order of [[evil, ref()], [ref(), evil]]) {
      await freshNode();
      const before = await servedFor(forgery);
      for (const [i, image] of order.entries()) await pullAndRun(`${label.replace(/[^A-Za-z0-9]+/g, '-')}-${logs.length}${i}`, image);
      assert.equal(await servedFor(forgery), before, 'the forged archive was never even downloaded');
      assert.doesNotMatch(clipLog(), new RegExp(`using the archive ${forgery}`));
      console.log(`# ${label}: ${order.map((o) => (o === evil ? 'attacker image' : 'real image')).join(' then ')}: both containers read the real file`);
      logs.push(clipLog());
    }
    return logs;
  }

  test("an attacker's forged archive for the real layer cannot change what containers see (trusted key configured)", { timeout: TEST_TIMEOUT * 2 }, async () => {
    assert.ok(artifact, 'published by an earlier test');
    forgery = await publishForgery();
    const [attackerFirst] = await bothOrders(forgery, 'trusted key');
    assert.match(attackerFirst!, /rejected the published archive sha256:[0-9a-f]{64} \(artifact sha256:[0-9a-f]{64}\): no signature verifies against a trusted key/);
  });

  test('a tampered published archive is rejected, logged, and the layer indexed locally', { timeout: TEST_TIMEOUT }, async () => {
    assert.ok(artifact, 'published by an earlier test');
    const [small, large] = layers() as [LayerSummary, LayerSummary];
    const client = registry();
    let tampered: string;
    try {
      const image = await client.resolve(ref());
      const smallArchive = await client.fetchBlob(ref(), { mediaType: ARCHIVE_MEDIA_TYPE, ...artifact.archives.get(small.digest)! });
      const corrupt = Buffer.from(smallArchive);
      corrupt[corrupt.length - 1]! ^= 0x01; // a valid descriptor for bytes that fail the archive's checksum
      const entries: Array<[string, Buffer]> = [
        [small.digest, corrupt],
        [large.digest, encodeArchive(decodeArchive(smallArchive))], // an archive naming another layer
      ];
      // Signed by the trusted publisher (a broken upload, not an attack): the archives' own checks catch it.
      const key = parseSigningKey(await fsp.readFile(SIGN_KEY, 'utf8'), 'publisher');
      const blobs = [];
      for (const [layerDigest, bytes] of entries) {
        const blob = await pushBlob(client, ref(), bytes);
        const diffId = layers().find((l) => l.digest === layerDigest)!.diff_id;
        const signature = signStatement({ archive: blob.digest, layer: layerDigest, diffId, manifest: image.digest }, key);
        blobs.push({ layerDigest, blob: { mediaType: ARCHIVE_MEDIA_TYPE, digest: blob.digest, size: blob.size }, signature });
      }
      const body = archiveArtifactManifest({ mediaType: image.mediaType, digest: image.digest, size: image.size }, blobs);
      const pushed = await pushManifest(client, ref(), body, MediaTypes.ociManifest);
      tampered = pushed.digest;
      // Make it the only referrer: the referrers index now lists the tampered artifact alone.
      const index = { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [{ mediaType: MediaTypes.ociManifest, digest: pushed.digest, size: pushed.size, artifactType: ARCHIVE_ARTIFACT_TYPE }] };
      await pushManifest(client, ref(), Buffer.from(JSON.stringify(index)), MediaTypes.ociIndex, { tag: referrersTag(image.digest) });
    } finally {
      await client.close();
    }

    await freshNode();
    const served = await pullAndRun('tampered');
    const log = clipLog();
    console.log(`# with a tampered artifact: registry served ${served} blob bytes (the layers were indexed locally)`);
    const rejected = log.split('\n').filter((l) => l.includes('rejected the published archive') && l.includes(tampered));
    assert.equal(rejected.length, 2, log.slice(-3000));
    assert.ok(rejected.some((l) => l.includes(`layer ${small.digest}`) && /checksum mismatch/.test(l)), rejected.join('\n'));
    assert.ok(rejected.some((l) => l.includes(`layer ${large.digest}`) && l.includes(`it describes layer ${small.digest}`)), rejected.join('\n'));
    assert.equal((log.match(/no published archive passed its checks; indexing the layer locally/g) ?? []).length, 2);
    assert.equal((log.match(/indexing layer/g) ?? []).length, 2);
  });

  test("with the default configuration nothing published is used, and the forgery changes nothing", { timeout: TEST_TIMEOUT * 2 }, async () => {
    assert.ok(forgery, 'published by an earlier test');
    await setTrust(NO_TRUST);
    for (const log of await bothOrders(forgery, 'default configuration')) {
      assert.match(log, /published archives are not used: no \[lazy\] trusted_keys or trusted_repositories/);
      assert.doesNotMatch(log, /using the archive/);
      assert.equal((log.match(/indexing layer/g) ?? []).length, 2, 'both layers indexed on the node');
    }
  });
});
