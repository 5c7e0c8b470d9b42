import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { chainIds } from '../../../src/snapshotter/chain-id';
import { childGcLabels, gcRefSnapshotLabel, mergeDistributionSource } from '../../../src/containerd/labels';
import { imageLayersLabel, layerSnapshotLabels } from '../../../src/containerd/snapshot-labels';

const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const digest = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;

describe('labels of a pull', () => {
  it('numbers child references per kind, as containerd does', () => {
    const labels = childGcLabels([
      { mediaType: 'application/vnd.oci.image.config.v1+json', digest: 'sha256:c' },
      { mediaType: LAYER, digest: 'sha256:l0' },
      { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: 'sha256:l1' },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:m0' },
      { mediaType: 'application/octet-stream', digest: 'sha256:x0' },
    ]);
    assert.deepEqual(labels, {
      'containerd.io/gc.ref.content.config': 'sha256:c',
      'containerd.io/gc.ref.content.l.0': 'sha256:l0',
      'containerd.io/gc.ref.content.l.1': 'sha256:l1',
      'containerd.io/gc.ref.content.m.0': 'sha256:m0',
      'containerd.io/gc.ref.content.0': 'sha256:x0',
    });
    assert.equal(gcRefSnapshotLabel('clip'), 'containerd.io/gc.ref.snapshot.clip');
  });

  it('merges distribution sources', () => {
    assert.equal(mergeDistributionSource(undefined, 'a/b'), 'a/b');
    assert.equal(mergeDistributionSource('x/y,a/b', 'c/d'), 'a/b,c/d,x/y');
    assert.equal(mergeDistributionSource('a/b', 'a/b'), 'a/b');
  });

  it('computes chain IDs', () => {
    const [a, b] = [digest('a'), digest('b')];
    assert.deepEqual(chainIds([a, b]), [a, digest(`${a} ${b}`)]);
  });

  it('labels each layer like CRI, listing this and later layers within 4096 bytes', () => {
    const layers = Array.from({ length: 3 }, (_, i) => ({ mediaType: LAYER, digest: digest(String(i)), annotations: { 'containerd.io/snapshot/x': 'y', other: 'z' } }));
    const labels = layerSnapshotLabels({ chainId: 'sha256:chain', imageRef: 'r.example/a:b', manifestDigest: 'sha256:m', layers, index: 1 });
    assert.deepEqual(labels, {
      'containerd.io/snapshot/x': 'y',
      'containerd.io/snapshot/cri.image-ref': 'r.example/a:b',
      'containerd.io/snapshot/cri.manifest-digest': 'sha256:m',
      'containerd.io/snapshot/cri.layer-digest': layers[1]!.digest,
      'containerd.io/snapshot/cri.image-layers': `${layers[1]!.digest},${layers[2]!.digest}`,
      'containerd.io/snapshot.ref': 'sha256:chain',
    });

    const many = Array.from({ length: 100 }, (_, i) => ({ mediaType: LAYER, digest: digest(`l${i}`) }));
    const value = imageLayersLabel(many);
    const key = 'containerd.io/snapshot/cri.image-layers';
    assert.ok(key.length + value.length <= 4096);
    assert.ok(key.length + value.length + 72 > 4096, 'as many as fit');
    assert.equal(value.split(',').length, Math.floor((4096 - key.length + 1) / 72));
    assert.equal(imageLayersLabel([{ mediaType: 'application/vnd.oci.image.config.v1+json', digest: 'sha256:c' }]), '');
  });
});
