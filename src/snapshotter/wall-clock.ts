/**
 * Snapshot times in microseconds since the Unix epoch.
 *
 * containerd's snapshotter conformance suite takes nanosecond wall-clock times just before and just after
 * a call and requires the snapshot's created/updated time to lie between them; a time cut to
 * milliseconds (Date) lands before the first one. Node has no microsecond wall clock, so the time is
 * the process's start time (performance.timeOrigin, taken with microsecond precision) plus the monotonic
 * time since, kept within the millisecond Date.now() reports: if the system clock was stepped since the
 * process started, the result is clamped into that millisecond rather than drifting away from it.
 *
 * A microsecond count stays below Number.MAX_SAFE_INTEGER until the year 2255.
 */
import { performance } from 'node:perf_hooks';

/** Whole microseconds since 1970-01-01T00:00:00Z. */
export type EpochMicros = number;

/** The wall-clock time now, with microsecond precision. */
export function nowMicros(): EpochMicros {
  const estimate = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  const msFloor = Date.now() * 1000;
  return Math.min(Math.max(estimate, msFloor), msFloor + 999);
}

/** A google.protobuf.Timestamp's fields for a microsecond time. */
export function timestampOfMicros(us: EpochMicros): { seconds: number; nanos: number } {
  const seconds = Math.floor(us / 1e6);
  return { seconds, nanos: (us - seconds * 1e6) * 1000 };
}
