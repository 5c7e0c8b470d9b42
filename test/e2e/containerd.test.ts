/**
 * clip under the real containerd (1.6, 1.7 or 2.1: CLIP_TEST_CONTAINERD) + runc, with images pulled from a
 * real registry (Debian's docker-registry). The tests of this file share one stack and run in order:
 *   1. pull `multilayer` for clip with `ctr images pull`, run it (1.x: containerd downloads and unpacks the
 *      layers; 2.1: the transfer service sends the layer labels and clip serves every layer lazily);
 *   2. the rootfs clip presents equals the one of containerd's own overlayfs snapshotter;
 *   3. the same view from inside a container;
 *   4. containerd's GC removes clip's snapshots and their directories;
 *   5. (2.1) `ctr images pull --local` (the client-side pull, no layer labels) unpacks every layer;
 *   6. with clip stopped, `ctr run` fails quickly with a clear error.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { waitFor } from '../helpers/processes';
import { Kind } from '../../src/generated/containerd/services/snapshots/v1/snapshots';
import { CONTAINERD } from '../helpers/containerd-release';
import { TestSnapshotsClient } from '../helpers/snapshots-client';
import { useStack } from '../helpers/stack';
import { assertPulledLazily, chainIds, diffIdsOf, sha256, snapshotKeys, snapshotTree } from '../helpers/images';
import { childrenOf, diffManifests, entryAt } from '../helpers/tree';

const TEST_TIMEOUT = 180_000;

describe(`clip as containerd ${CONTAINERD.version} proxy snapshotter`, () => {
  const stack = useStack();
  const multilayer = (): string => stack.imageRef('multilayer');

  const how = CONTAINERD.lazyCtrPull ? 'lazily, through the transfer service' : 'unpacked by containerd (no layer labels)';
  test(`ctr images pull of a multi-layer image into clip (${how}) and ctr run`, { timeout: TEST_TIMEOUT }, async () => {
    await stack.ctrOk(['images', 'pull', '--snapshotter', 'clip', '--hosts-dir', stack.hostsDir, multilayer()]);

    // containerd's chain IDs (from its stored config) are the committed snapshots clip holds.
    const chain = chainIds(await diffIdsOf(stack, multilayer()));
    assert.deepEqual(chain, chainIds(stack.images.multilayer!.layers.map((l) => l.diff_id)));
    assert.deepEqual((await snapshotKeys(stack, 'clip')).sort(), [...chain].sort());
    await assertPulledLazily(stack, 'multilayer', CONTAINERD.lazyCtrPull);

    const r = await stack.ctr(['run', '--rm', '--snapshotter', 'clip', multilayer(), 'e2e-hello']);
    assert.equal(r.code, 0, `ctr run failed:\n${r.stderr}\n${await stack.diagnostics()}`);
    assert.equal(r.stdout, 'hello from clip, layer 3\n');
  });

  test('presents the same rootfs as the overlayfs snapshotter', { timeout: TEST_TIMEOUT }, async () => {
    await stack.ctrOk(['images', 'pull', '--snapshotter', 'overlayfs', '--plain-http', multilayer()]);
    const chain = chainIds(await diffIdsOf(stack, multilayer()));
    const top = chain[chain.length - 1]!;
    assert.ok((await snapshotKeys(stack, 'overlayfs')).includes(top), 'overlayfs has the top chain ID');
    assert.ok((await snapshotKeys(stack, 'clip')).includes(top), 'clip has the top chain ID');

    const clip = await snapshotTree(stack, 'clip', top);
    const overlay = await snapshotTree(stack, 'overlayfs', top);

    const diff = diffManifests(overlay, clip, ['overlayfs', 'clip']);
    const shown = diff.slice(0, 50).join('\n') + (diff.length > 50 ? `\n... and ${diff.length - 50} more` : '');
    assert.deepEqual(diff, [], `rootfs differs (${diff.length} differences):\n${shown}`);
    assert.deepEqual(clip, overlay);

    // Specific facts, so a failure says what is wrong even if both snapshotters were wrong the same way.
    assert.equal(entryAt(clip, '/data/gone'), undefined, '/data/gone is whited out');
    assert.equal(entryAt(clip, '/data/gonedir'), undefined, '/data/gonedir is whited out');
    assert.deepEqual(childrenOf(clip, '/data/opaque'), ['c'], '/data/opaque is opaque');
    assert.deepEqual(childrenOf(clip, '/data/keep'), ['one', 'three', 'two']);
    assert.equal(entryAt(clip, '/usr/bin/suid-tool')?.mode, 0o4755, 'setuid bit');
    assert.ok(
      clip.hardlinks.some((g) => g.includes('/data/links/orig') && g.includes('/data/links/hard')),
      `hard link group missing: ${JSON.stringify(clip.hardlinks)}`,
    );
    const owned = entryAt(clip, '/data/owned/by-1234');
    assert.deepEqual([owned?.uid, owned?.gid], [1234, 5678]);
    assert.deepEqual([entryAt(clip, '/tmp')?.type, entryAt(clip, '/tmp')?.mode], ['dir', 0o1777]);
    assert.deepEqual(
      [entryAt(clip, '/data/secret')?.mode, entryAt(clip, '/data/secret')?.uid],
      [0o700, 1000],
    );
    assert.equal(entryAt(clip, '/data/replaced')?.type, 'dir', 'file replaced by a directory');
    assert.equal(entryAt(clip, '/data/replaced/inner')?.sha256, sha256('inner file from layer 3\n'));
    assert.equal(entryAt(clip, '/etc/clip-test/message')?.sha256, sha256('hello from clip, layer 3\n'));
    assert.equal(entryAt(clip, '/data/links/rel')?.target, 'orig');
    assert.equal(entryAt(clip, '/data/links/abs')?.target, '/etc/clip-test/message');
    assert.equal(entryAt(clip, '/data/l2dir/sub/nested.txt')?.type, 'file');
    const random = createHash('shake256', { outputLength: 3 * 1024 * 1024 }).update('clip-test-seed').digest();
    assert.deepEqual(
      [entryAt(clip, '/data/random.bin')?.size, entryAt(clip, '/data/random.bin')?.sha256],
      [random.length, sha256(random)],
    );
  });

  test('a container sees the same tree from inside', { timeout: TEST_TIMEOUT }, async () => {
    const script = [
      'echo $(ls /data/opaque)',
      'echo $(ls /data)',
      'stat -c "%n %a %u:%g" /usr/bin/suid-tool /tmp /data/owned/by-1234',
      'stat -c %h /data/links/hard',
      'test -e /data/gone || echo gone-absent',
      'cat /data/replaced/inner',
      'sha256sum /data/random.bin | cut -d" " -f1',
    ].join('; ');
    const r = await stack.ctr(['run', '--rm', '--snapshotter', 'clip', multilayer(), 'e2e-inside', '/bin/sh', '-c', script]);
    assert.equal(r.code, 0, `ctr run failed:\n${r.stderr}\n${await stack.diagnostics()}`);
    const random = createHash('shake256', { outputLength: 3 * 1024 * 1024 }).update('clip-test-seed').digest();
    assert.equal(
      r.stdout,
      [
        'c',
        'keep l2dir links long opaque owned perm random.bin replaced secret',
        '/usr/bin/suid-tool 4755 0:0',
        '/tmp 1777 0:0',
        '/data/owned/by-1234 644 1234:5678',
        '2',
        'gone-absent',
        'inner file from layer 3',
        sha256(random),
        '',
      ].join('\n'),
    );
  });

  test("containerd's garbage collection removes clip's snapshots", { timeout: TEST_TIMEOUT }, async () => {
    // Nothing may hold the image's snapshots: no containers, no active snapshots left by earlier tests.
    assert.equal((await stack.ctrOk(['containers', 'ls', '-q'])).trim(), '');
    assert.equal((await snapshotKeys(stack, 'clip')).length, 3, 'containerd knows only the 3 layers');
    const client = new TestSnapshotsClient(stack.clipAddress);
    try {
      // `ctr run --rm` drops a container's snapshot from containerd's metadata at once, but the backend's
      // Remove comes from the next (asynchronous, scheduled) GC pass: wait for clip to hold only the layers.
      const names = async (): Promise<string[]> => (await client.list()).infos.map((i) => i.name);
      await waitFor('clip to hold only the 3 committed layers', async () => (await names()).length === 3, 15_000).catch(
        async (err: Error) => {
          throw new Error(`${err.message}; clip holds ${JSON.stringify(await names())}`);
        },
      );
      assert.ok((await client.list()).infos.every((i) => i.kind === Kind.COMMITTED), 'all committed');

      await stack.ctrOk(['images', 'rm', '--sync', multilayer()]);

      await waitFor('clip to have no snapshots', async () => (await client.list()).infos.length === 0, 15_000).catch(
        async (err: Error) => {
          const left = (await client.list()).infos.map((i) => i.name);
          throw new Error(`${err.message}; left: ${JSON.stringify(left)}\n${await stack.diagnostics()}`);
        },
      );
      assert.deepEqual(await snapshotKeys(stack, 'clip'), []);
      assert.deepEqual(await snapshotKeys(stack, 'overlayfs'), []);
      const dirs = async (): Promise<string[]> =>
        (await fsp.readdir(path.join(stack.clipRoot, 'snapshots'), { withFileTypes: true }))
          .filter((e) => e.isDirectory())
          .map((e) => e.name);
      // Cleanup runs right after GC's removes; give it a moment in case it lags.
      await waitFor('Cleanup to remove snapshot directories', async () => (await dirs()).length === 0, 15_000).catch(
        async (err: Error) => {
          throw new Error(`${err.message}; left: ${JSON.stringify(await dirs())}`);
        },
      );
      assert.match(stack.clipLog(), /debug Cleanup /, 'containerd called Cleanup');
    } finally {
      client.close();
    }
  });

  if (CONTAINERD.lazyCtrPull) {
    test('ctr images pull --local (client-side pull, no layer labels) unpacks every layer into clip', { timeout: TEST_TIMEOUT }, async () => {
      await stack.ctrOk(['images', 'pull', '--local', '--snapshotter', 'clip', '--hosts-dir', stack.hostsDir, multilayer()]);
      await assertPulledLazily(stack, 'multilayer', false);
      const r = await stack.ctr(['run', '--rm', '--snapshotter', 'clip', multilayer(), 'e2e-local']);
      assert.equal(r.code, 0, `ctr run failed:\n${r.stderr}\n${await stack.diagnostics()}`);
      assert.equal(r.stdout, 'hello from clip, layer 3\n');
    });
  }

  test('with clip stopped, ctr run fails quickly with a clear error', { timeout: TEST_TIMEOUT }, async () => {
    const demo = stack.imageRef('demo');
    await stack.ctrOk(['images', 'pull', '--snapshotter', 'clip', '--plain-http', demo]);
    await stack.stopClip();

    const r = await stack.ctr(['run', '--rm', '--snapshotter', 'clip', demo, 'e2e-noclip'], { timeoutMs: 60_000 });
    assert.equal(r.timedOut, false, 'ctr run must not hang');
    assert.notEqual(r.code, 0, `ctr run succeeded without clip: ${r.stdout}`);
    // e.g. `ctr: connection error: desc = "transport: Error while dialing dial unix <clip.sock>: connect:
    // connection refused": unavailable` (or "connection closed: unavailable" from containerd's gRPC client);
    // 2.1: `ctr: connection error: desc = "transport: Error while dialing: dial unix:///<clip.sock>: timeout"`.
    assert.match(r.stderr, /unavailable|connection error/);
    assert.match(r.stderr, /clip\.sock|connection (closed|refused|error)/);
    assert.equal((await stack.ctrOk(['containers', 'ls', '-q'])).trim(), '', 'no container left behind');
  });
});
