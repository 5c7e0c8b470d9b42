/*
 * Process-wide FUSE operation statistics (see fuse_stats.h). Counters only ever grow; the collector turns
 * them into Prometheus counters and a histogram. Bucket counts are kept per bucket (not cumulative): one
 * atomic add per request.
 */
#define NAPI_INTERNAL_CODE "CLIP_FUSE_INTERNAL"
#include "fuse_stats.h"
#include <errno.h>
#include <stdatomic.h>
#include <time.h>
#include "napi_call.h"

static const char *const OP_NAMES[OP_COUNT] = {"lookup",  "getattr",     "readlink", "open",      "read",  "opendir",
                                               "readdir", "readdirplus", "getxattr", "listxattr", "statfs"};

/* Upper bounds of the latency buckets in nanoseconds (10 us .. 30 s); one more bucket above the last. */
static const uint64_t BUCKET_NS[] = {10000,     25000,     50000,      100000,     250000,     500000,     1000000,
                                     2500000,   5000000,   10000000,   25000000,   50000000,   100000000,  250000000,
                                     500000000, 1000000000, 2500000000, 5000000000, 10000000000, 30000000000};
#define BUCKETS (sizeof(BUCKET_NS) / sizeof(BUCKET_NS[0]))

/* The errnos the server answers with, by name; anything else counts as "other". */
static const int ERRNOS[] = {ENOENT, EIO, ENOSYS, ENODATA, ERANGE, ENOTDIR, EISDIR, EINVAL, ENOMEM};
static const char *const ERRNO_NAMES[] = {"ENOENT", "EIO", "ENOSYS", "ENODATA", "ERANGE", "ENOTDIR", "EISDIR", "EINVAL", "ENOMEM", "other"};
#define ERRNO_SLOTS (sizeof(ERRNOS) / sizeof(ERRNOS[0]) + 1)

typedef struct {
  atomic_ullong count, sum_ns;
  atomic_ullong bucket[BUCKETS + 1];
  atomic_ullong errors[ERRNO_SLOTS];
} op_stats_t;

static op_stats_t op_stats[OP_COUNT];
static atomic_ullong cache_hits;
static atomic_int enabled;

uint64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t stats_start(void) {
  if (!atomic_load_explicit(&enabled, memory_order_relaxed)) return 0;
  uint64_t now = monotonic_ns();
  return now ? now : 1;
}

static void add(atomic_ullong *c, uint64_t v) { atomic_fetch_add_explicit(c, v, memory_order_relaxed); }

void stats_record(int op, uint64_t start_ns, int err) {
  if (start_ns == 0 || op < 0 || op >= OP_COUNT) return;
  uint64_t now = monotonic_ns();
  uint64_t took = now > start_ns ? now - start_ns : 0;
  op_stats_t *st = &op_stats[op];
  add(&st->count, 1);
  add(&st->sum_ns, took);
  size_t b = 0;
  while (b < BUCKETS && took > BUCKET_NS[b]) b++;
  add(&st->bucket[b], 1);
  if (err != 0) {
    size_t slot = 0;
    while (slot < ERRNO_SLOTS - 1 && ERRNOS[slot] != err) slot++;
    add(&st->errors[slot], 1);
  }
}

void stats_cache_hit(void) {
  if (atomic_load_explicit(&enabled, memory_order_relaxed)) add(&cache_hits, 1);
}

static napi_value number_array(napi_env env, const double *values, size_t n) {
  napi_value out, v;
  if (napi_create_array_with_length(env, n, &out) != napi_ok) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (napi_create_double(env, values[i], &v) != napi_ok || napi_set_element(env, out, (uint32_t)i, v) != napi_ok) return NULL;
  }
  return out;
}

static napi_value string_array(napi_env env, const char *const *values, size_t n) {
  napi_value out, v;
  if (napi_create_array_with_length(env, n, &out) != napi_ok) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (napi_create_string_utf8(env, values[i], NAPI_AUTO_LENGTH, &v) != napi_ok || napi_set_element(env, out, (uint32_t)i, v) != napi_ok) return NULL;
  }
  return out;
}

static int set(napi_env env, napi_value obj, const char *name, napi_value value) {
  return value != NULL && napi_set_named_property(env, obj, name, value) == napi_ok;
}

/*
 * { operations: string[], errnos: string[], bucketBoundsSeconds: number[],
 *   count: number[op], sumSeconds: number[op], buckets: number[op][bucket] (BUCKETS + 1, not cumulative),
 *   errors: number[op][errno slot], cacheHits: number }
 */
napi_value fuse_stats_js(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out, buckets, errors;
  double count[OP_COUNT], sum[OP_COUNT], bounds[BUCKETS], row_b[BUCKETS + 1], row_e[ERRNO_SLOTS];
  for (size_t b = 0; b < BUCKETS; b++) bounds[b] = (double)BUCKET_NS[b] / 1e9;
  NAPI_CALL(env, napi_create_object(env, &out));
  NAPI_CALL(env, napi_create_array_with_length(env, OP_COUNT, &buckets));
  NAPI_CALL(env, napi_create_array_with_length(env, OP_COUNT, &errors));
  for (int op = 0; op < OP_COUNT; op++) {
    op_stats_t *st = &op_stats[op];
    count[op] = (double)atomic_load_explicit(&st->count, memory_order_relaxed);
    sum[op] = (double)atomic_load_explicit(&st->sum_ns, memory_order_relaxed) / 1e9;
    for (size_t b = 0; b <= BUCKETS; b++) row_b[b] = (double)atomic_load_explicit(&st->bucket[b], memory_order_relaxed);
    for (size_t e = 0; e < ERRNO_SLOTS; e++) row_e[e] = (double)atomic_load_explicit(&st->errors[e], memory_order_relaxed);
    napi_value rb = number_array(env, row_b, BUCKETS + 1), re = number_array(env, row_e, ERRNO_SLOTS);
    if (!rb || !re) break;
    NAPI_CALL(env, napi_set_element(env, buckets, (uint32_t)op, rb));
    NAPI_CALL(env, napi_set_element(env, errors, (uint32_t)op, re));
  }
  napi_value hits;
  NAPI_CALL(env, napi_create_double(env, (double)atomic_load_explicit(&cache_hits, memory_order_relaxed), &hits));
  if (!set(env, out, "operations", string_array(env, OP_NAMES, OP_COUNT)) || !set(env, out, "errnos", string_array(env, ERRNO_NAMES, ERRNO_SLOTS)) ||
      !set(env, out, "bucketBoundsSeconds", number_array(env, bounds, BUCKETS)) || !set(env, out, "count", number_array(env, count, OP_COUNT)) ||
      !set(env, out, "sumSeconds", number_array(env, sum, OP_COUNT)) || !set(env, out, "buckets", buckets) || !set(env, out, "errors", errors) ||
      !set(env, out, "cacheHits", hits)) {
    throw_last_error(env);
    return NULL;
  }
  return out;
}

napi_value set_fuse_stats_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool on = false;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc >= 1) NAPI_CALL(env, napi_get_value_bool(env, argv[0], &on));
  atomic_store(&enabled, on ? 1 : 0);
  return NULL;
}
