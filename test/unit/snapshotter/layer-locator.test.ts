/**
 * An unpack Prepare naming only its target chain ID (nerdctl's pull): the snapshotter asks its LayerLocator,
 * in the namespace of the call or else of the key, and takes the remote path with the labels found; without
 * a find it is a normal Prepare. The hosts directories give the registries a port-less host name stands for.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AlreadyExistsError } from '../../../src/errors';
import { RegistryHosts } from '../../../src/registry';
import { LABEL_CRI_IMAGE_REF, LABEL_CRI_LAYER_DIGEST, LABEL_REMOTE, LABEL_TARGET_REF } from '../../../src/snapshotter/labels';
import type { LayerLocator, RemoteLayers } from '../../../src/snapshotter/remote-layers';
import { Snapshotter, remoteSnapshotName } from '../../../src/snapshotter/snapshotter';
import { Kind, type Labels } from '../../../src/snapshotter/types';
import { tempDir } from '../../helpers/processes';
import { recordingLogger } from '../../helpers/recording-logger';

const chain = (name: string): string => `sha256:${createHash('sha256').update(name).digest('hex')}`;

/** "Mounting" writes the layer digest into the directory. */
const layers: RemoteLayers = {
  canServe: (labels) => labels[LABEL_CRI_LAYER_DIGEST] !== undefined && labels[LABEL_CRI_IMAGE_REF] !== undefined,
  mount: async (dir, labels) => fsp.writeFile(path.join(dir, 'layer'), labels[LABEL_CRI_LAYER_DIGEST]!),
  unmount: async (dir) => fsp.rm(path.join(dir, 'layer'), { force: true }),
  unmountAll: async () => 0,
  endTakeOver: async () => undefined,
};

class TableLocator implements LayerLocator {
  calls: Array<{ target: string; namespace: string }> = [];
  constructor(private readonly table: Record<string, string>) {}
  async locate(target: string, namespace: string): Promise<Labels | undefined> {
    this.calls.push({ target, namespace });
    const digest = this.table[`${namespace} ${target}`];
    return digest ? { [LABEL_CRI_IMAGE_REF]: 'registry.test/app@sha256:m', [LABEL_CRI_LAYER_DIGEST]: digest, [LABEL_TARGET_REF]: 'ignored' } : undefined;
  }
}

describe('layers found by a LayerLocator', () => {
  let root: string;
  let sn: Snapshotter;
  const c1 = chain('one');
  const c2 = chain('two');
  const locator = new TableLocator({ [`k8s.io ${c1}`]: 'sha256:d1', [`default ${c2}`]: 'sha256:d2' });

  before(async () => {
    root = await tempDir('locator');
    sn = await Snapshotter.open({ root, logger: recordingLogger(), remote: layers, locator });
  });
  after(async () => {
    sn.close();
    await fsp.rm(root, { recursive: true, force: true });
  });

  it('serves a layer found for the namespace of the key, with the labels found and the target received', async () => {
    await assert.rejects(sn.prepare(`k8s.io/1/extract-1-a ${c1}`, '', { [LABEL_TARGET_REF]: c1 }), AlreadyExistsError);
    assert.deepEqual(locator.calls, [{ target: c1, namespace: 'k8s.io' }]);
    const info = await sn.stat(remoteSnapshotName(c1, ''));
    assert.equal(info.kind, Kind.COMMITTED);
    assert.equal(info.labels[LABEL_CRI_LAYER_DIGEST], 'sha256:d1', 'kept for remounts after a restart');
    assert.equal(info.labels[LABEL_TARGET_REF], c1, "containerd's own label wins");
    assert.equal(info.labels[LABEL_REMOTE], 'remote snapshot');
  });

  it('answers a target served already without a lookup', async () => {
    const before = locator.calls.length;
    await assert.rejects(sn.prepare(`other/2/extract-2-b ${c1}`, '', { [LABEL_TARGET_REF]: c1 }), AlreadyExistsError);
    assert.equal(locator.calls.length, before);
  });

  it("prefers the call's namespace to the key's", async () => {
    await assert.rejects(sn.prepare(`k8s.io/3/extract-3-c ${c2}`, '', { [LABEL_TARGET_REF]: c2 }, undefined, 'default'), AlreadyExistsError);
    assert.deepEqual(locator.calls.at(-1), { target: c2, namespace: 'default' });
  });

  it('prepares normally when nothing is found, and never looks up keys that are not unpacks', async () => {
    const c3 = chain('three');
    const mounts = await sn.prepare(`k8s.io/4/extract-4-d ${c3}`, '', { [LABEL_TARGET_REF]: c3 });
    assert.equal(mounts[0]!.type, 'bind');
    assert.equal((await sn.stat(`k8s.io/4/extract-4-d ${c3}`)).kind, Kind.ACTIVE);
    const before = locator.calls.length;
    await sn.prepare('k8s.io/5/container', '', { [LABEL_TARGET_REF]: chain('four') });
    assert.equal(locator.calls.length, before);
  });
});

describe('RegistryHosts.domainsNamed', () => {
  it('lists host:port directories of the hosts directories, then the bare host', async () => {
    const a = await tempDir('hosts-a');
    const b = await tempDir('hosts-b');
    try {
      for (const d of [path.join(a, '127.0.0.1:5000'), path.join(b, '127.0.0.1_5001_'), path.join(a, '127.0.0.10:5000'), path.join(a, 'registry.test')]) {
        await fsp.mkdir(d);
      }
      const hosts = new RegistryHosts({ configDir: [a, b, path.join(a, 'missing')] });
      assert.deepEqual(await hosts.domainsNamed('127.0.0.1'), ['127.0.0.1:5000', '127.0.0.1:5001', '127.0.0.1']);
      assert.deepEqual(await hosts.domainsNamed('registry.test'), ['registry.test']);
      assert.deepEqual(await new RegistryHosts().domainsNamed('docker.io'), ['docker.io']);
    } finally {
      await fsp.rm(a, { recursive: true, force: true });
      await fsp.rm(b, { recursive: true, force: true });
    }
  });
});
