/**
 * The remote-snapshot handshake of the snapshot model (containerd's remote snapshotter handshake), with a simple in-process
 * RemoteLayers: "mounting" writes the layer's files into the directory, "unmounting" empties it.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { recordingLogger } from '../helpers/recording-logger';
import { AlreadyExistsError, UnavailableError } from '../../src/errors';
import {
  LABEL_CRI_IMAGE_REF,
  LABEL_CRI_LAYER_DIGEST,
  LABEL_REMOTE,
  LABEL_TARGET_REF,
} from '../../src/snapshotter/labels';
import { chainIdOf } from '../../src/snapshotter/chain-id';
import { RemoteLayers, type RemoteLayerInfo } from '../../src/snapshotter/remote-layers';
import { Snapshotter, remoteSnapshotName } from '../../src/snapshotter/snapshotter';
import { Kind, Labels } from '../../src/snapshotter/types';
import { tempDir } from '../helpers/processes';

class DirectoryLayers implements RemoteLayers {
  mountedDirs = new Set<string>();
  failing = new Set<string>();
  /** Diff IDs reported by layer digest (none reported for the others). */
  diffIds = new Map<string, string>();
  mounts = 0;
  /** While set, mounts wait for it (a slow remount at start-up). */
  gate?: Promise<void>;
  tookOverEnded = 0;

  canServe(labels: Labels): boolean {
    return labels[LABEL_CRI_LAYER_DIGEST] !== undefined && labels[LABEL_CRI_IMAGE_REF] !== undefined;
  }

  async mount(dir: string, labels: Labels): Promise<RemoteLayerInfo | void> {
    const digest = labels[LABEL_CRI_LAYER_DIGEST]!;
    if (this.failing.has(digest)) {
      // What undici reports when a plain-http registry is spoken to over TLS.
      const tls = Object.assign(new Error('ssl3_get_record:wrong version number'), { code: 'ERR_SSL_WRONG_VERSION_NUMBER' });
      throw new UnavailableError(`GET https://registry.test/v2/ for ${digest}: TLS failure`, { cause: tls });
    }
    await this.gate;
    this.mounts++;
    await fsp.writeFile(path.join(dir, 'layer'), digest);
    this.mountedDirs.add(dir);
    const diffId = this.diffIds.get(digest);
    return diffId === undefined ? undefined : { diffId };
  }

  async unmount(dir: string): Promise<void> {
    await fsp.rm(path.join(dir, 'layer'), { force: true });
    this.mountedDirs.delete(dir);
  }

  async unmountAll(): Promise<number> {
    return 0;
  }

  async endTakeOver(): Promise<void> {
    this.tookOverEnded++;
  }
}

const logger = recordingLogger();
const fallback = { hostsDirs: ['/etc/containerd/certs.d', '/etc/docker/certs.d'], hostsFile: async () => undefined };

function layerLabels(target: string, digest: string): Labels {
  return {
    [LABEL_TARGET_REF]: target,
    [LABEL_CRI_IMAGE_REF]: 'registry.test/app:1',
    [LABEL_CRI_LAYER_DIGEST]: digest,
  };
}

describe('remote snapshots', () => {
  let root: string;
  let layers: DirectoryLayers;
  let sn: Snapshotter;

  before(async () => {
    root = await tempDir('remote');
    layers = new DirectoryLayers();
    sn = await Snapshotter.open({ root, logger, remote: layers, fallback });
  });
  after(async () => {
    sn.close();
    await fsp.rm(root, { recursive: true, force: true });
  });

  it('commits a lazily mounted layer as the target and answers ALREADY_EXISTS', async () => {
    const labels = layerLabels('sha256:c1', 'sha256:d1');
    await assert.rejects(sn.prepare('k8s.io/1/extract-1 sha256:c1', '', labels), AlreadyExistsError);
    const name = remoteSnapshotName('sha256:c1', '');
    // containerd's metadata lookup: filter by target label and parent, then Stat.
    const found = await sn.list([`labels."${LABEL_TARGET_REF}"==sha256:c1,parent==""`]);
    assert.deepEqual(found.map((i) => i.name), [name]);
    const info = await sn.stat(name);
    assert.equal(info.kind, Kind.COMMITTED);
    assert.equal(info.labels[LABEL_REMOTE], 'remote snapshot');
    assert.equal(info.labels[LABEL_CRI_LAYER_DIGEST], 'sha256:d1', 'every label received is kept');
    await assert.rejects(sn.stat('k8s.io/1/extract-1 sha256:c1'), /not found/, 'the extract key is gone');
    assert.deepEqual(await sn.usage(name), { size: 0, inodes: 0 });
  });

  it('is idempotent: the same target again does not mount again', async () => {
    const before = layers.mounts;
    const labels = layerLabels('sha256:c1', 'sha256:d1');
    const tries = await Promise.allSettled([
      sn.prepare('k8s.io/2/extract-2 sha256:c1', '', labels),
      sn.prepare('k8s.io/3/extract-3 sha256:c1', '', labels),
      sn.prepare('other/4/extract-4 sha256:c1', '', labels),
    ]);
    for (const t of tries) assert.ok(t.status === 'rejected' && t.reason instanceof AlreadyExistsError);
    assert.equal(layers.mounts, before);
  });

  it('stacks remote layers and gives containers overlay mounts over them', async () => {
    const parent = remoteSnapshotName('sha256:c1', '');
    await assert.rejects(sn.prepare('k8s.io/5/extract-5 sha256:c2', parent, layerLabels('sha256:c2', 'sha256:d2')), AlreadyExistsError);
    const top = remoteSnapshotName('sha256:c2', parent);
    assert.equal((await sn.stat(top)).parent, parent);
    const mounts = await sn.prepare('k8s.io/6/container', top);
    const lower = mounts[0]!.options.find((o) => o.startsWith('lowerdir='))!.slice('lowerdir='.length).split(':');
    assert.equal(lower.length, 2);
    assert.equal(await fsp.readFile(path.join(lower[0]!, 'layer'), 'utf8'), 'sha256:d2');
    assert.equal(await fsp.readFile(path.join(lower[1]!, 'layer'), 'utf8'), 'sha256:d1');
  });

  it('falls back to a normal prepare when the layer cannot be served lazily', async () => {
    layers.failing.add('sha256:d3');
    const mounts = await sn.prepare('k8s.io/7/extract-7 sha256:c3', '', layerLabels('sha256:c3', 'sha256:d3'));
    assert.equal(mounts[0]!.type, 'bind');
    assert.deepEqual(await fsp.readdir(mounts[0]!.source), [], 'an empty directory to unpack into');
    assert.equal((await sn.stat('k8s.io/7/extract-7 sha256:c3')).kind, Kind.ACTIVE);
    await sn.remove('k8s.io/7/extract-7 sha256:c3');
    // One line with the reason and the fix.
    const lines = logger.lines.filter((l) => l.includes('layer sha256:c3 cannot be served lazily'));
    assert.equal(lines.length, 1, logger.lines.join('\n'));
    assert.match(
      lines[0]!,
      /^warn layer sha256:c3 cannot be served lazily \(tls\), containerd unpacks it instead: GET https:\/\/registry\.test\/v2\/ for sha256:d3: TLS failure\. Fix: TLS handshake with registry\.test failed and no hosts\.toml for that host was found in \/etc\/containerd\/certs\.d:\/etc\/docker\/certs\.d: if containerd reaches it over plain http, point \[registry\] hosts_dir at containerd's config_path$/,
    );
  });

  it('without the CRI labels it is a normal snapshotter', async () => {
    const mounts = await sn.prepare('default/8/extract-8 sha256:c4', '', { [LABEL_TARGET_REF]: 'sha256:c4' });
    assert.equal(mounts[0]!.type, 'bind');
    await sn.remove('default/8/extract-8 sha256:c4');
  });

  it('mounts remote layers again after a restart, and reports UNAVAILABLE when it cannot', async () => {
    sn.close();
    for (const dir of [...layers.mountedDirs]) await layers.unmount(dir); // the old process's mounts died with it
    sn = await Snapshotter.open({ root, logger, remote: layers });
    await sn.remounted;
    assert.equal(layers.mountedDirs.size, 2);
    const mounts = await sn.mounts('k8s.io/6/container');
    const lower = mounts[0]!.options.find((o) => o.startsWith('lowerdir='))!.slice('lowerdir='.length).split(':');
    assert.equal(await fsp.readFile(path.join(lower[1]!, 'layer'), 'utf8'), 'sha256:d1');

    sn.close();
    for (const dir of [...layers.mountedDirs]) await layers.unmount(dir);
    layers.failing.add('sha256:d1');
    sn = await Snapshotter.open({ root, logger, remote: layers });
    await assert.rejects(sn.mounts('k8s.io/6/container'), UnavailableError);
    layers.failing.delete('sha256:d1');
    assert.equal((await sn.mounts('k8s.io/6/container')).length, 1, 'mounted again on the next request');
  });

  it('remounts in the background: open() returns first, a request needing a layer waits for its remount', async () => {
    sn.close();
    for (const dir of [...layers.mountedDirs]) await layers.unmount(dir);
    let open!: () => void;
    layers.gate = new Promise<void>((resolve) => (open = resolve));
    const ended = layers.tookOverEnded;
    const mountsBefore = layers.mounts;
    sn = await Snapshotter.open({ root, logger, remote: layers });
    assert.equal(layers.mountedDirs.size, 0, 'open() did not wait for the remounts');
    let answered = false;
    const mounts = sn.mounts('k8s.io/6/container').then((m) => {
      answered = true;
      return m;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(answered, false, 'the request waits for its layers');
    open();
    layers.gate = undefined;
    assert.equal((await mounts).length, 1);
    await sn.remounted;
    assert.equal(layers.mountedDirs.size, 2);
    assert.equal(layers.mounts - mountsBefore, 2, 'each layer mounted once (the request shared the remount)');
    assert.equal(layers.tookOverEnded, ended + 1, 'handed-over mounts settled after the remounts');
  });

  it('unmounts a remote layer when it is removed', async () => {
    await sn.remove('k8s.io/6/container');
    const top = remoteSnapshotName('sha256:c2', remoteSnapshotName('sha256:c1', ''));
    const before = layers.mountedDirs.size;
    await sn.remove(top);
    assert.equal(layers.mountedDirs.size, before - 1);
    await sn.remove(remoteSnapshotName('sha256:c1', ''));
    assert.equal(layers.mountedDirs.size, 0);
    assert.deepEqual(await fsp.readdir(path.join(root, 'snapshots')), []);
  });

  it("checks a layer's diff ID against the chain ID containerd named the snapshot after", async () => {
    const diff = (n: number): string => `sha256:${String(n).repeat(64)}`;
    layers.diffIds.set('sha256:d5', diff(5)).set('sha256:d6', diff(6)).set('sha256:d7', diff(7));
    // Bottom layer: chain ID = diff ID.
    await assert.rejects(sn.prepare('k8s.io/9/extract-9', '', layerLabels(diff(5), 'sha256:d5')), AlreadyExistsError);
    const bottom = remoteSnapshotName(diff(5), '');
    // On a remote parent: sha256(parent chain ID + " " + diff ID).
    const chain = chainIdOf(diff(5), diff(6));
    await assert.rejects(sn.prepare('k8s.io/10/extract-10', bottom, layerLabels(chain, 'sha256:d6')), AlreadyExistsError);
    // A layer whose content does not give the target's chain ID is unpacked normally, and unmounted.
    const before = layers.mountedDirs.size;
    const wrong = chainIdOf(diff(5), diff(8));
    const mounts = await sn.prepare('k8s.io/11/extract-11', bottom, layerLabels(wrong, 'sha256:d7'));
    assert.equal(mounts[0]!.type, 'overlay');
    assert.equal(layers.mountedDirs.size, before, 'the lazy mount was undone');
    assert.equal((await sn.stat('k8s.io/11/extract-11')).kind, Kind.ACTIVE);
    await sn.remove('k8s.io/11/extract-11');
  });
});
