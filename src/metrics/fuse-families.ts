/**
 * The FUSE families, read from the native servers' counters (native/fuse_stats.c) on each scrape rather
 * than counted per request in JavaScript: a histogram of operation latency and a counter of error
 * replies. `fuseFamilies` is pure (it only reshapes one FuseStats snapshot), so it is unit-tested alone.
 */
import type { FuseStats } from '../fusefs/layer-server';

/** One sample as prom-client's registry prints it (metricName overrides the family's name). */
export interface Sample {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/** A family in the shape prom-client's Registry reads from a metric's get(). */
export interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  values: Sample[];
  aggregator: 'sum';
}

export const FUSE_DURATION = 'clip_fuse_operation_duration_seconds';
export const FUSE_ERRORS = 'clip_fuse_operation_errors_total';

export function fuseFamilies(stats: FuseStats): { duration: Family; errors: Family } {
  const duration: Family = {
    name: FUSE_DURATION,
    help: 'Latency of FUSE requests answered by clip, by operation (reads passed to JavaScript: until their reply).',
    type: 'histogram',
    values: [],
    aggregator: 'sum',
  };
  const errors: Family = { name: FUSE_ERRORS, help: 'FUSE requests answered with an error, by operation and errno.', type: 'counter', values: [], aggregator: 'sum' };
  stats.operations.forEach((operation, op) => {
    const buckets = stats.buckets[op] ?? [];
    let cumulative = 0;
    stats.bucketBoundsSeconds.forEach((le, b) => {
      cumulative += buckets[b] ?? 0;
      duration.values.push({ metricName: `${FUSE_DURATION}_bucket`, labels: { operation, le }, value: cumulative });
    });
    cumulative += buckets[stats.bucketBoundsSeconds.length] ?? 0;
    duration.values.push({ metricName: `${FUSE_DURATION}_bucket`, labels: { operation, le: '+Inf' }, value: cumulative });
    duration.values.push({ metricName: `${FUSE_DURATION}_sum`, labels: { operation }, value: stats.sumSeconds[op] ?? 0 });
    duration.values.push({ metricName: `${FUSE_DURATION}_count`, labels: { operation }, value: stats.count[op] ?? 0 });
    stats.errnos.forEach((errno, e) => {
      const value = stats.errors[op]?.[e] ?? 0;
      if (value > 0) errors.values.push({ labels: { operation, errno }, value });
    });
  });
  return { duration, errors };
}
