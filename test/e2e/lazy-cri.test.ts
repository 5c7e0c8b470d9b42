/**
 * Lazy pulls through CRI on the real containerd (CLIP_TEST_CONTAINERD: 1.6 or 1.7 with snapshotter = "clip"
 * and disable_snapshot_annotations = false; 2.1 with the shipped drop-in, i.e. CRI pulling through the
 * transfer service, plus a second stack where CRI pulls on its own), with a minimal CRI client doing
 * PullImage and `ctr -n k8s.io run` starting containers. Registry traffic is measured at the registry (its
 * access log), not by clip.
 * The tests share one stack and run in order (the last one empties clip's content cache).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Kind } from '../../src/generated/containerd/services/snapshots/v1/snapshots';
import { LABEL_CRI_LAYER_DIGEST, LABEL_REMOTE } from '../../src/snapshotter/labels';
import { K8S, assertCriPullPath, criPull, runIn } from '../helpers/cri-run';
import { assertPulledLazily, sameTreeAsOverlayfs, sha256 } from '../helpers/images';
import { waitFor } from '../helpers/processes';
import { TestSnapshotsClient } from '../helpers/snapshots-client';
import { CONTAINERD } from '../helpers/containerd-release';
import { useStack } from '../helpers/stack';
import { entryAt } from '../helpers/tree';

const TEST_TIMEOUT = 300_000;

describe(`lazy pulls through CRI (containerd ${CONTAINERD.version})`, () => {
  const stack = useStack({
    tags: ['lazy', 'large', 'zstd'],
    criSnapshotter: 'clip',
    clipConfig: '[lazy]\nbackground_fetch = false\n',
  });

  async function withClient<T>(fn: (client: TestSnapshotsClient) => Promise<T>): Promise<T> {
    const client = new TestSnapshotsClient(stack.clipAddress);
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  }

  /** Total compressed size of an image's layers. */
  const imageBytes = (tag: string): number => stack.images[tag]!.layers.reduce((sum, l) => sum + l.size, 0);

  test('a CRI pull serves every layer lazily and the container runs', { timeout: TEST_TIMEOUT }, async () => {
    await criPull(stack, 'lazy');
    // Every layer is a remote snapshot and containerd never downloaded one (none is in its content store).
    await assertPulledLazily(stack, 'lazy', true, 'k8s.io');
    // containerd 2.1 with the shipped drop-in keeps CRI's default: pulls go through the transfer service.
    if (CONTAINERD.major >= 2) await assertCriPullPath(stack, 'lazy', 'transfer');
    assert.equal(await runIn(stack, 'lazy', 'lazy-hello'), 'hello from clip, layer 3\n');
  });

  test('the lazy rootfs equals the overlayfs one (devices, xattrs, large files)', { timeout: TEST_TIMEOUT }, async () => {
    const lazy = await sameTreeAsOverlayfs(stack, 'lazy');

    assert.deepEqual(entryAt(lazy, '/data/devices/null')?.rdev, { major: 1, minor: 3 });
    assert.equal(entryAt(lazy, '/data/devices/loop7')?.type, 'block');
    assert.equal(entryAt(lazy, '/data/devices/pipe')?.type, 'fifo');
    assert.equal(entryAt(lazy, '/data/xattrs/tagged')?.xattrs?.['user.clip'], '0x68656c6c6f');
    assert.equal(entryAt(lazy, '/data/gone'), undefined, 'whiteout applied');
    const random = createHash('shake256', { outputLength: 24 << 20 }).update('clip-lazy-random').digest();
    assert.equal(entryAt(lazy, '/data/large/random.bin')?.sha256, sha256(random));
    assert.ok(lazy.hardlinks.some((g) => g.includes('/data/links/hard')), 'hard links preserved');
  });

  test('a zstd layer is decompressed by clip and committed as a remote snapshot; the rootfs equals overlayfs', { timeout: TEST_TIMEOUT }, async () => {
    const layers = stack.images.zstd!.layers;
    const zstdLayer = layers.find((l) => l.mediaType.endsWith('+zstd'));
    assert.ok(zstdLayer, 'the image has a zstd layer');
    const before = await stack.registryBlobBytes();
    await criPull(stack, 'zstd');
    await withClient(async (client) => {
      const remote = (await client.list()).infos.filter((i) => i.kind === Kind.COMMITTED && i.labels[LABEL_REMOTE]);
      const digests = new Set(remote.map((i) => i.labels[LABEL_CRI_LAYER_DIGEST]));
      for (const l of layers) assert.ok(digests.has(l.digest), `layer ${l.digest} (${l.mediaType}) is a remote snapshot`);
    });
    const content = await stack.ctrOk([...K8S, 'content', 'ls', '-q']);
    assert.ok(!content.includes(zstdLayer.digest), 'containerd did not download the zstd layer');
    assert.equal(await runIn(stack, 'zstd', 'zstd-hello'), 'hello from a zstd layer\n');
    const fetched = (await stack.registryBlobBytes()) - before;
    // The zstd layer is read whole, once; the gzip layers (shared with 'lazy') were indexed already.
    assert.ok(fetched >= zstdLayer.size && fetched < zstdLayer.size + 100_000, `registry served ${fetched} blob bytes, the zstd layer is ${zstdLayer.size}`);

    const lazy = await sameTreeAsOverlayfs(stack, 'zstd');
    assert.equal(entryAt(lazy, '/data/zstd/random.bin')?.sha256, sha256(createHash('shake256', { outputLength: 6 << 20 }).update('clip-zstd').digest()));
    assert.equal(entryAt(lazy, '/data/keep/one'), undefined, 'whiteout applied');
  });

  test('after kill -9 and a restart, a new container starts without downloading any layer again', { timeout: TEST_TIMEOUT }, async () => {
    await stack.restartClip({ kill: true });
    const before = await stack.registryBlobBytes();
    // containerd's connection to the new clip may need a moment to come back.
    let out = '';
    await waitFor('a container to start after the restart', async () => {
      const r = await stack.ctr([...K8S, 'run', '--rm', '--snapshotter', 'clip', stack.imageRef('lazy'), `after-kill-${Date.now()}`, '/bin/sh', '-c', 'cat /etc/clip-test/message; sha256sum /data/large/text.txt']);
      out = r.stdout;
      return r.code === 0;
    }, 60_000);
    assert.match(out, /^hello from clip, layer 3\n[0-9a-f]{64} /);
    const fetched = (await stack.registryBlobBytes()) - before;
    assert.equal(fetched, 0, `registry served ${fetched} blob bytes after the restart`);
  });
  test('with the archive kept and the content cache emptied, a small read fetches a small part of a large image', { timeout: TEST_TIMEOUT }, async () => {
    const size = imageBytes('large');
    const before = await stack.registryBlobBytes();
    await criPull(stack, 'large');
    assert.equal(await runIn(stack, 'large', 'large-1'), 'small file read by the container\n');
    const firstPull = (await stack.registryBlobBytes()) - before;
    console.log(`# first CRI pull of 'large' (${size} bytes of layers): registry served ${firstPull} blob bytes`);

    // Remove the image and its snapshots, keep clip's archives, drop the cached bytes. Counted from here:
    // a restarted clip remounts the layers it still has (other images' too) and fetches their start-up
    // profiles at once (and a zstd layer whole), so the image's own layers are counted apart.
    const ownLayers = stack.images.large!.layers.map((l) => l.digest);
    await stack.ctrOk([...K8S, 'images', 'rm', '--sync', stack.imageRef('large')]);
    const again = await stack.registryBlobBytes();
    const againOwn = await stack.registryBlobBytes(ownLayers);
    // With clip stopped: a running clip remounts layers and fills the cache in the background meanwhile.
    await stack.stopClip();
    await fsp.rm(path.join(stack.clipRoot, 'cache'), { recursive: true, force: true });
    await stack.restartClip();

    await criPull(stack, 'large');
    assert.equal(await runIn(stack, 'large', 'large-2'), 'small file read by the container\n');
    const secondPull = (await stack.registryBlobBytes()) - again;
    const secondOwn = (await stack.registryBlobBytes(ownLayers)) - againOwn;
    console.log(
      `# second pull + run with archives present, cache empty: registry served ${secondOwn} bytes of the image's layers ` +
        `(${((100 * secondOwn) / size).toFixed(2)}% of the image); ${secondPull} blob bytes in all, with what clip fetched for the other images it remounted`,
    );
    assert.ok(secondOwn < size / 10, `registry served ${secondOwn} of the image's ${size} bytes`);
    const sinceRestart = stack.clipLog().split('received SIGTERM').pop()!;
    assert.doesNotMatch(sinceRestart, /indexing layer/, 'no layer indexed again');
  });

});

if (CONTAINERD.major >= 2) {
  describe(`containerd ${CONTAINERD.version}: CRI pulling on its own (disable_snapshot_annotations = false)`, () => {
    const stack = useStack({ tags: ['lazy'], criSnapshotter: 'clip', criPull: 'local', clipConfig: '[lazy]\nbackground_fetch = false\n' });

    test('CRI falls back to its local pull, which is lazy too', { timeout: TEST_TIMEOUT }, async () => {
      await criPull(stack, 'lazy');
      await assertPulledLazily(stack, 'lazy', true, 'k8s.io');
      await assertCriPullPath(stack, 'lazy', 'local');
      assert.equal(await runIn(stack, 'lazy', 'local-hello'), 'hello from clip, layer 3\n');
    });
  });
}
