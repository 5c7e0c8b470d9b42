/** Helpers for end-to-end tests that inspect images and snapshots through `ctr`. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Kind } from '../../src/generated/containerd/services/snapshots/v1/snapshots';
import { LABEL_CRI_LAYER_DIGEST, LABEL_REMOTE } from '../../src/snapshotter/labels';
import { run } from './processes';
import { TestSnapshotsClient } from './snapshots-client';
import { Stack } from './stack';
import { diffManifests, TreeManifest, walkTree } from './tree';

/** ChainID(L0) = DiffID(L0); ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(n)). */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : `sha256:${createHash('sha256').update(`${prev} ${d}`).digest('hex')}`);
  }
  return out;
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

const ns = (namespace: string): string[] => ['-n', namespace];

/** The image's diff IDs as containerd stored them: image -> manifest -> config, from its content store. */
export async function diffIdsOf(stack: Stack, ref: string, namespace = 'default'): Promise<string[]> {
  const images = await stack.ctrOk([...ns(namespace), 'images', 'ls']);
  const line = images.split('\n').find((l) => l.split(/\s+/)[0] === ref);
  assert.ok(line, `image ${ref} not listed:\n${images}`);
  const manifestDigest = line.split(/\s+/)[2]!;
  const manifest = JSON.parse(await stack.ctrOk([...ns(namespace), 'content', 'get', manifestDigest])) as { config: { digest: string } };
  const config = JSON.parse(await stack.ctrOk([...ns(namespace), 'content', 'get', manifest.config.digest])) as {
    rootfs: { diff_ids: string[] };
  };
  return config.rootfs.diff_ids;
}

/** KEY column of `ctr snapshots --snapshotter X ls`. */
export async function snapshotKeys(stack: Stack, snapshotter: string, namespace = 'default'): Promise<string[]> {
  const out = await stack.ctrOk([...ns(namespace), 'snapshots', '--snapshotter', snapshotter, 'ls']);
  return out.split('\n').slice(1).filter((l) => l.trim() !== '').map((l) => l.split(/\s+/)[0]!);
}

/**
 * Prepares an active snapshot on top of `parent`, mounts it with the command `ctr snapshots mounts`
 * prints, walks it, and always unmounts and removes it again.
 */
export async function snapshotTree(stack: Stack, snapshotter: string, parent: string, namespace = 'default'): Promise<TreeManifest> {
  const key = `tree-${snapshotter}-${namespace}`;
  const target = path.join(stack.state, `mnt-${snapshotter}-${namespace}`);
  const snapshots = [...ns(namespace), 'snapshots', '--snapshotter', snapshotter];
  await fsp.mkdir(target, { recursive: true });
  await stack.ctrOk([...snapshots, 'prepare', key, parent]);
  let mounted = false;
  try {
    const cmd = (await stack.ctrOk([...snapshots, 'mounts', target, key])).trim();
    assert.match(cmd, /^mount -t \S+ \S+ /, `unexpected mount command: ${cmd}`);
    const m = await run('sh', ['-c', cmd], { timeoutMs: 30_000 });
    assert.equal(m.code, 0, `${cmd}\n${m.stdout}${m.stderr}`);
    mounted = true;
    return await walkTree(target);
  } finally {
    const u = mounted ? await run('umount', [target], { timeoutMs: 30_000 }) : undefined;
    await stack.ctrOk([...snapshots, 'rm', key]);
    assert.equal(u?.code ?? 0, 0, `umount ${target}: ${u?.stderr}`);
  }
}

/**
 * Asserts how `tag` was pulled: lazily (every layer a remote snapshot in clip, none in containerd's content
 * store) or unpacked by containerd (every layer in its content store, no remote snapshot).
 */
export async function assertPulledLazily(stack: Stack, tag: string, lazy: boolean, namespace = 'default'): Promise<void> {
  const layers = stack.images[tag]!.layers;
  const content = await stack.ctrOk(['-n', namespace, 'content', 'ls', '-q']);
  for (const l of layers) {
    assert.equal(content.includes(l.digest), !lazy, `layer ${l.digest} ${lazy ? 'was' : 'was not'} downloaded by containerd`);
  }
  const client = new TestSnapshotsClient(stack.clipAddress);
  try {
    const remote = (await client.list()).infos.filter((i) => i.kind === Kind.COMMITTED && i.labels[LABEL_REMOTE]);
    const digests = new Set(remote.map((i) => i.labels[LABEL_CRI_LAYER_DIGEST]));
    for (const l of layers) {
      assert.equal(digests.has(l.digest), lazy, `layer ${l.digest} ${lazy ? 'is not' : 'is'} a remote snapshot; clip log:\n${stack.clipLog().slice(-3000)}`);
    }
  } finally {
    client.close();
  }
}

/**
 * Pulls `tag` again with overlayfs (namespace default), asserts that clip's rootfs of the image (pulled in
 * `namespace`) is the same tree, and returns clip's.
 */
export async function sameTreeAsOverlayfs(stack: Stack, tag: string, namespace = 'k8s.io'): Promise<TreeManifest> {
  const ref = stack.imageRef(tag);
  await stack.ctrOk(['images', 'pull', '--snapshotter', 'overlayfs', '--plain-http', ref]);
  const chain = chainIds(await diffIdsOf(stack, ref));
  const top = chain[chain.length - 1]!;
  const lazy = await snapshotTree(stack, 'clip', top, namespace);
  const overlay = await snapshotTree(stack, 'overlayfs', top);
  const diff = diffManifests(overlay, lazy, ['overlayfs', 'clip']);
  assert.deepEqual(diff, [], `rootfs differs (${diff.length}):\n${diff.slice(0, 40).join('\n')}`);
  assert.deepEqual(lazy, overlay);
  return lazy;
}
