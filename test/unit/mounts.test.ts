import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Layout } from '../../src/snapshotter/layout';
import { computeMounts } from '../../src/snapshotter/mounts';
import { Kind } from '../../src/snapshotter/types';

const layout = new Layout('/var/lib/clip');
const fs = (id: number): string => `/var/lib/clip/snapshots/${id}/fs`;

describe('computeMounts (overlayfs shapes)', () => {
  it('binds an active snapshot without parent read-write', () => {
    assert.deepEqual(computeMounts(layout, 1, Kind.ACTIVE, [], { indexOff: true }), [
      { type: 'bind', source: fs(1), options: ['rw', 'rbind'] },
    ]);
  });

  it('binds a view without parent read-only', () => {
    assert.deepEqual(computeMounts(layout, 1, Kind.VIEW, [], { indexOff: true }), [
      { type: 'bind', source: fs(1), options: ['ro', 'rbind'] },
    ]);
  });

  it('binds the parent of a single-parent view read-only', () => {
    assert.deepEqual(computeMounts(layout, 5, Kind.VIEW, [4], { indexOff: true }), [
      { type: 'bind', source: fs(4), options: ['ro', 'rbind'] },
    ]);
  });

  it('overlays an active snapshot on its parents, nearest parent leftmost', () => {
    assert.deepEqual(computeMounts(layout, 9, Kind.ACTIVE, [3, 2, 1], { indexOff: true }), [
      {
        type: 'overlay',
        source: 'overlay',
        options: [
          'index=off',
          'workdir=/var/lib/clip/snapshots/9/work',
          'upperdir=/var/lib/clip/snapshots/9/fs',
          `lowerdir=${fs(3)}:${fs(2)}:${fs(1)}`,
        ],
      },
    ]);
  });

  it('overlays a multi-parent view read-only, without index=off when unsupported', () => {
    assert.deepEqual(computeMounts(layout, 9, Kind.VIEW, [3, 2], { indexOff: false }), [
      { type: 'overlay', source: 'overlay', options: [`lowerdir=${fs(3)}:${fs(2)}`] },
    ]);
  });

  it('refuses to compute mounts of a committed snapshot', () => {
    assert.throws(() => computeMounts(layout, 1, Kind.COMMITTED, [], { indexOff: false }));
  });
});
