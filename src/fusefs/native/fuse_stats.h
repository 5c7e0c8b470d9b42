/*
 * Per-operation statistics of the FUSE layer servers (clip_fuse.c), process-wide: request counts, a
 * latency histogram with fixed buckets and error replies by errno, kept in plain atomic counters that the
 * metrics collector reads on scrape (src/metrics/fuse-collector.ts). Off by default; when off, a request
 * costs one relaxed atomic load and no clock read.
 */
#ifndef CLIP_FUSE_STATS_H
#define CLIP_FUSE_STATS_H

#include <node_api.h>
#include <stdint.h>

enum {
  OP_LOOKUP,
  OP_GETATTR,
  OP_READLINK,
  OP_OPEN,
  OP_READ,
  OP_OPENDIR,
  OP_READDIR,
  OP_READDIRPLUS,
  OP_GETXATTR,
  OP_LISTXATTR,
  OP_STATFS,
  OP_COUNT
};

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t monotonic_ns(void);

/* The start of a request: its clock reading when statistics are on, else 0 (nothing is recorded for it). */
uint64_t stats_start(void);

/* A request of `op` that started at `start_ns` (stats_start) was answered, with errno `err` (0: success). */
void stats_record(int op, uint64_t start_ns, int err);

/* A read answered from verified cache files by the server itself. */
void stats_cache_hit(void);

/* JS: fuseStats() -> the counters (see fuse_stats.c); setFuseStats(on). */
napi_value fuse_stats_js(napi_env env, napi_callback_info info);
napi_value set_fuse_stats_js(napi_env env, napi_callback_info info);

#endif
