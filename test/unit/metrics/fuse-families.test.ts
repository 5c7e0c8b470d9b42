import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FuseStats } from '../../../src/fusefs/layer-server';
import { fuseFamilies } from '../../../src/metrics/fuse-families';

const stats: FuseStats = {
  operations: ['lookup', 'read'],
  errnos: ['ENOENT', 'EIO', 'other'],
  bucketBoundsSeconds: [0.001, 0.01],
  count: [5, 3],
  sumSeconds: [0.002, 20.5],
  // per bucket, not cumulative; the last one is above every bound
  buckets: [
    [4, 1, 0],
    [1, 0, 2],
  ],
  errors: [
    [0, 0, 0],
    [0, 2, 1],
  ],
  cacheHits: 7,
};

test('native bucket counts become a cumulative Prometheus histogram with +Inf, _sum and _count', () => {
  const { duration } = fuseFamilies(stats);
  const value = (metric: string, labels: Record<string, string | number>): number | undefined =>
    duration.values.find((v) => v.metricName === metric && Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
  assert.equal(value('clip_fuse_operation_duration_seconds_bucket', { operation: 'lookup', le: 0.001 }), 4);
  assert.equal(value('clip_fuse_operation_duration_seconds_bucket', { operation: 'lookup', le: 0.01 }), 5);
  assert.equal(value('clip_fuse_operation_duration_seconds_bucket', { operation: 'lookup', le: '+Inf' }), 5);
  assert.equal(value('clip_fuse_operation_duration_seconds_bucket', { operation: 'read', le: 0.01 }), 1);
  assert.equal(value('clip_fuse_operation_duration_seconds_bucket', { operation: 'read', le: '+Inf' }), 3);
  assert.equal(value('clip_fuse_operation_duration_seconds_sum', { operation: 'read' }), 20.5);
  assert.equal(value('clip_fuse_operation_duration_seconds_count', { operation: 'read' }), 3);
  assert.equal(duration.type, 'histogram');
});

test('errors by operation and errno; zero counts are left out', () => {
  const { errors } = fuseFamilies(stats);
  assert.deepEqual(
    errors.values.map((v) => [v.labels.operation, v.labels.errno, v.value]),
    [
      ['read', 'EIO', 2],
      ['read', 'other', 1],
    ],
  );
});
