/**
 * `clip pull` on the real containerd (CLIP_TEST_CONTAINERD: 1.6, 1.7 or 2.1): it pulls an image through
 * containerd's API with the labels CRI would send, so clip serves the layers lazily, `ctr run
 * --snapshotter clip` starts containers, and removing the image lets containerd's garbage collector remove
 * clip's snapshots. A second stack runs clip with lazy loading off, so every layer goes through containerd's
 * diff service instead.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Kind } from '../../src/generated/containerd/services/snapshots/v1/snapshots';
import { LABEL_CRI_IMAGE_REF, LABEL_CRI_LAYER_DIGEST, LABEL_REMOTE, LABEL_TARGET_REF } from '../../src/snapshotter/labels';
import { chainIds, sha256, snapshotTree } from '../helpers/images';
import { REPO_ROOT, runOk, waitFor } from '../helpers/processes';
import { TestSnapshotsClient } from '../helpers/snapshots-client';
import { CtrResult, Stack, runClosedStdin, useStack } from '../helpers/stack';
import { diffManifests } from '../helpers/tree';

const TEST_TIMEOUT = 300_000;
const CLIP = path.join(REPO_ROOT, 'bin', 'clip');

/** `clip pull` against the stack's containerd and registry (stdout is a pipe: quiet mode). */
function clipPull(stack: Stack, ref: string, extra: string[] = []): Promise<CtrResult> {
  return runClosedStdin(CLIP, ['pull', '--address', stack.containerdAddress, '--plain-http', ...extra, ref], 300_000);
}

async function clipPullOk(stack: Stack, ref: string, extra: string[] = []): Promise<string> {
  const r = await clipPull(stack, ref, extra);
  assert.equal(r.code, 0, `clip pull ${ref} exited ${r.code}\n${r.stdout}\n${r.stderr}\n${await stack.diagnostics()}`);
  assert.equal(r.stderr, '', 'nothing on stderr');
  return r.stdout;
}

async function withClient<T>(stack: Stack, fn: (client: TestSnapshotsClient) => Promise<T>): Promise<T> {
  const client = new TestSnapshotsClient(stack.clipAddress);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** `ctr content ls` as digest → labels. */
async function contentLabels(stack: Stack, namespace = 'default'): Promise<Map<string, Record<string, string>>> {
  const out = await stack.ctrOk(['-n', namespace, 'content', 'ls']);
  const map = new Map<string, Record<string, string>>();
  for (const line of out.split('\n').slice(1)) {
    const fields = line.split('\t').filter((f) => f !== '');
    if (fields.length === 0) continue;
    const labels: Record<string, string> = {};
    const text = fields.length > 3 ? fields[fields.length - 1]!.trim() : '';
    for (const pair of text === '' ? [] : text.split(',')) {
      const eq = pair.indexOf('=');
      if (eq > 0) labels[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    map.set(fields[0]!.trim(), labels);
  }
  return map;
}

/**
 * Pushes `tag` as an OCI index (tag `as`) whose linux/arm64 and linux/amd64 entries both name `of`'s
 * manifest, written by hand into the stack's OCI layout. Returns the index digest.
 */
async function pushIndex(stack: Stack, of: string, as: string): Promise<string> {
  const layout = path.join(stack.state, 'layout');
  const image = stack.images[of]!;
  const manifestSize = (await fsp.stat(path.join(layout, 'blobs', image.manifest.replace(':', '/')))).size;
  const entry = (architecture: string): object => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: image.manifest,
    size: manifestSize,
    platform: { architecture, os: 'linux' },
  });
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [entry('arm64'), entry('amd64')] }, null, 2));
  const digest = `sha256:${sha256(body)}`;
  await fsp.writeFile(path.join(layout, 'blobs', 'sha256', digest.slice(7)), body);
  const indexFile = path.join(layout, 'index.json');
  const top = JSON.parse(await fsp.readFile(indexFile, 'utf8')) as { manifests: object[] };
  top.manifests.push({ mediaType: 'application/vnd.oci.image.index.v1+json', digest, size: body.length, annotations: { 'org.opencontainers.image.ref.name': as } });
  await fsp.writeFile(indexFile, JSON.stringify(top));
  await runOk('skopeo', ['--insecure-policy', 'copy', '--quiet', '--all', '--dest-tls-verify=false', `oci:${layout}:${as}`, `docker://${stack.imageRef(as)}`], { timeoutMs: 120_000 });
  return digest;
}

async function leaseCount(stack: Stack, namespace = 'default'): Promise<number> {
  const out = await stack.ctrOk(['-n', namespace, 'leases', 'ls', '-q']);
  return out.split('\n').filter((l) => l.trim() !== '').length;
}

async function runImage(stack: Stack, ref: string, id: string, namespace = 'default'): Promise<string> {
  const r = await stack.ctr(['-n', namespace, 'run', '--rm', '--snapshotter', 'clip', ref, id]);
  assert.equal(r.code, 0, `ctr run ${ref} failed:\n${r.stderr}\n${await stack.diagnostics()}`);
  return r.stdout;
}

describe('clip pull: lazy layers for ctr users', () => {
  const stack = useStack({ tags: ['lazy', 'multilayer'], clipConfig: '[lazy]\nbackground_fetch = false\n' });

  test('every layer is a remote snapshot, containerd downloads none, ctr run starts the container', { timeout: TEST_TIMEOUT }, async () => {
    const ref = stack.imageRef('lazy');
    const image = stack.images.lazy!;
    const out = await clipPullOk(stack, ref);
    assert.match(out, new RegExp(`^pulled ${ref.replace(/[.:/]/g, '\\$&')} \\(sha256:[0-9a-f]{12}\\) in [0-9.]+s: 4 layers, 4 lazy\\n$`));

    const chain = chainIds(image.layers.map((l) => l.diff_id));
    await withClient(stack, async (client) => {
      const remote = (await client.list()).infos.filter((i) => i.kind === Kind.COMMITTED && i.labels[LABEL_REMOTE]);
      assert.deepEqual(remote.map((i) => i.labels[LABEL_CRI_LAYER_DIGEST]).sort(), image.layers.map((l) => l.digest).sort(), stack.clipLog().slice(-3000));
      assert.deepEqual(remote.map((i) => i.labels[LABEL_TARGET_REF]).sort(), [...chain].sort());
      assert.ok(remote.every((i) => i.labels[LABEL_CRI_IMAGE_REF] === ref));
    });

    // containerd holds the manifest and config with the references its garbage collector follows,
    // and never downloaded a layer.
    const content = await contentLabels(stack);
    assert.deepEqual([...content.keys()].sort(), [image.manifest, image.config].sort());
    const manifestLabels = content.get(image.manifest)!;
    assert.equal(manifestLabels['containerd.io/gc.ref.content.config'], image.config);
    image.layers.forEach((l, i) => assert.equal(manifestLabels[`containerd.io/gc.ref.content.l.${i}`], l.digest));
    assert.equal(content.get(image.config)!['containerd.io/gc.ref.snapshot.clip'], chain[chain.length - 1]);
    assert.equal(await leaseCount(stack), 0, 'the pull lease is gone');

    const images = await stack.ctrOk(['images', 'ls', '-q']);
    assert.ok(images.split('\n').includes(ref), images);
    assert.equal(await runImage(stack, ref, 'pull-lazy-1'), 'hello from clip, layer 3\n');
  });

  test('pulling again finds every layer present', { timeout: TEST_TIMEOUT }, async () => {
    const out = await clipPullOk(stack, stack.imageRef('lazy'));
    assert.match(out, /: 4 layers, 4 already present\n$/);
    assert.equal(await runImage(stack, stack.imageRef('lazy'), 'pull-lazy-2'), 'hello from clip, layer 3\n');
  });

  test('--namespace pulls into another containerd namespace', { timeout: TEST_TIMEOUT }, async () => {
    const ref = stack.imageRef('multilayer');
    const out = await clipPullOk(stack, ref, ['--namespace', 'clip-other']);
    // The three layers multilayer shares with lazy are clip snapshots already; containerd's metadata
    // still asks clip for each in the new namespace, and clip answers from what it has.
    assert.match(out, /: 3 layers, 3 lazy\n$/);
    assert.equal(await runImage(stack, ref, 'pull-other-ns', 'clip-other'), 'hello from clip, layer 3\n');
    assert.equal((await stack.ctrOk(['images', 'ls', '-q'])).includes(ref), false, 'not in the default namespace');
  });

  test('for an index, the image record points at the index and ctr run picks the platform manifest', { timeout: TEST_TIMEOUT }, async () => {
    const index = await pushIndex(stack, 'multilayer', 'multi');
    const ref = stack.imageRef('multi');
    // Its layers are lazy's first three, already in this namespace.
    assert.match(await clipPullOk(stack, ref), /: 3 layers, 3 already present\n$/);
    const line = (await stack.ctrOk(['images', 'ls'])).split('\n').find((l) => l.startsWith(`${ref} `));
    assert.match(line ?? '', new RegExp(`application/vnd\\.oci\\.image\\.index\\.v1\\+json +${index}`));
    const labels = (await contentLabels(stack)).get(index)!;
    assert.equal(labels['containerd.io/gc.ref.content.m.0'], stack.images.multilayer!.manifest);
    assert.equal(labels['containerd.io/gc.ref.content.m.1'], stack.images.multilayer!.manifest);
    assert.equal(await runImage(stack, ref, 'pull-index'), 'hello from clip, layer 3\n');
  });

  test('a manifest written in a non-canonical JSON style is stored in containerd byte for byte', { timeout: TEST_TIMEOUT }, async () => {
    // multilayer's manifest re-indented by 4 with a space before each colon and a final newline, PUT
    // as is: containerd must get exactly these bytes under their digest.
    const layout = path.join(stack.state, 'layout');
    const original = await fsp.readFile(path.join(layout, 'blobs', stack.images.multilayer!.manifest.replace(':', '/')), 'utf8');
    const body = Buffer.from(`${JSON.stringify(JSON.parse(original), null, 4).replace(/": /g, '" : ')}\n`);
    const digest = `sha256:${sha256(body)}`;
    const put = await fetch(`http://${stack.registryAddress}/v2/${stack.repo}/manifests/spaced`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body,
      signal: AbortSignal.timeout(30_000),
    });
    assert.equal(put.status, 201, await put.text());
    const ref = stack.imageRef('spaced');
    assert.match(await clipPullOk(stack, ref), /: 3 layers, 3 already present\n$/);
    const line = (await stack.ctrOk(['images', 'ls'])).split('\n').find((l) => l.startsWith(`${ref} `));
    assert.match(line ?? '', new RegExp(`application/vnd\\.oci\\.image\\.manifest\\.v1\\+json +${digest}`));
    assert.deepEqual(Buffer.from(await stack.ctrOk(['content', 'get', digest])), body);
  });

  test('removing the images lets containerd garbage-collect clip\'s snapshots', { timeout: TEST_TIMEOUT }, async () => {
    await stack.ctrOk(['images', 'rm', '--sync', stack.imageRef('lazy'), stack.imageRef('multi'), stack.imageRef('spaced')]);
    await stack.ctrOk(['-n', 'clip-other', 'images', 'rm', '--sync', stack.imageRef('multilayer')]);
    await withClient(stack, async (client) => {
      await waitFor('clip to have no snapshots', async () => (await client.list()).infos.length === 0, 30_000).catch(async (err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify((await client.list()).infos.map((i) => i.name))}`);
      });
    });
    assert.equal((await contentLabels(stack)).size, 0, 'content removed');
    assert.equal((await contentLabels(stack, 'clip-other')).size, 0, 'content removed');
  });

  test('a bad image reference fails with one clear line and leaves nothing behind', { timeout: TEST_TIMEOUT }, async () => {
    for (const ref of [stack.imageRef('no-such-tag'), `${stack.registryAddress}/Clip/Test:x`]) {
      const r = await clipPull(stack, ref);
      assert.notEqual(r.code, 0, `clip pull ${ref} should fail`);
      assert.equal(r.stdout, '', 'quiet on stdout');
      assert.match(r.stderr, /^clip: pull \S+: .+\n$/, `one line: ${JSON.stringify(r.stderr)}`);
    }
    const missing = await clipPull(stack, stack.imageRef('no-such-tag'));
    assert.match(missing.stderr, /404|not found|unknown/i);
    const unreachable = await runClosedStdin(CLIP, ['pull', '--address', path.join(stack.state, 'nothing.sock'), '--plain-http', stack.imageRef('lazy')], 60_000);
    assert.notEqual(unreachable.code, 0);
    assert.match(unreachable.stderr, /^clip: pull \S+: cannot reach containerd at \S+nothing\.sock: .+\n$/);
    assert.equal(await leaseCount(stack), 0, 'no lease left');
    assert.equal((await stack.ctrOk(['images', 'ls', '-q'])).trim(), '');
  });
});

describe('clip pull: layers clip does not serve lazily are unpacked by containerd', () => {
  const stack = useStack({ tags: ['multilayer'], clipConfig: '[lazy]\nenabled = false\n' });

  test('layers go through containerd\'s content store and diff service, and the container runs', { timeout: TEST_TIMEOUT }, async () => {
    const ref = stack.imageRef('multilayer');
    const image = stack.images.multilayer!;
    const out = await clipPullOk(stack, ref);
    assert.match(out, /: 3 layers, 3 unpacked\n$/);

    const content = await contentLabels(stack);
    for (const layer of image.layers) {
      assert.equal(content.get(layer.digest)?.['containerd.io/uncompressed'], layer.diff_id, `layer ${layer.digest} in the content store`);
    }
    const chain = chainIds(image.layers.map((l) => l.diff_id));
    await withClient(stack, async (client) => {
      const committed = (await client.list()).infos.filter((i) => i.kind === Kind.COMMITTED);
      assert.equal(committed.length, 3);
      assert.ok(committed.every((i) => !i.labels[LABEL_REMOTE]), 'no remote snapshots');
      assert.deepEqual(committed.map((i) => i.labels[LABEL_TARGET_REF]).sort(), [...chain].sort());
    });
    assert.equal(await leaseCount(stack), 0);
    assert.equal(await runImage(stack, ref, 'pull-unpacked'), 'hello from clip, layer 3\n');

    // The same tree as containerd's own pull into overlayfs.
    const top = chain[chain.length - 1]!;
    const unpacked = await snapshotTree(stack, 'clip', top);
    await stack.ctrOk(['images', 'pull', '--snapshotter', 'overlayfs', '--plain-http', ref]);
    const overlay = await snapshotTree(stack, 'overlayfs', top);
    const diff = diffManifests(overlay, unpacked, ['overlayfs', 'clip']);
    assert.deepEqual(diff, [], `rootfs differs (${diff.length}):\n${diff.slice(0, 40).join('\n')}`);
  });

  test('removing the image lets containerd garbage-collect the snapshots and blobs', { timeout: TEST_TIMEOUT }, async () => {
    await stack.ctrOk(['images', 'rm', '--sync', stack.imageRef('multilayer')]);
    await withClient(stack, async (client) => {
      await waitFor('clip to have no snapshots', async () => (await client.list()).infos.length === 0, 30_000);
    });
    assert.equal((await contentLabels(stack)).size, 0);
  });
});
