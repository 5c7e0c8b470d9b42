/*
 * layer_table: decodes the entries of a clip archive body (docs/format.md, protobuf
 * clip.archive.v1.Archive) straight into the table the FUSE server answers from (format at the top of
 * src/fusefs/native/clip_fuse.c), checking every entry rule and limit of docs/format.md "Validation" and docs/limits.md on
 * the way. Plain C without N-API, so that it can be fuzzed on its own; layer_table_js.c is its binding.
 *
 * The input is hostile: every length is checked against what is left, every sum against overflow, and
 * memory grows only with what the limits allow.
 */
#ifndef CLIP_LAYER_TABLE_H
#define CLIP_LAYER_TABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t max_entries;
  uint64_t max_path_bytes;
  uint64_t max_name_bytes;
  uint64_t max_metadata_bytes;
} lt_limits;

typedef struct {
  const uint8_t *body; /* the protobuf body (the file after its 56-byte header) */
  size_t body_len;
  lt_limits limits;
  uint64_t uncompressed_size; /* the archive's uncompressed_size, decoded by the caller */
  const uint64_t *bounds;     /* span bounds (checkpoint offsets and the uncompressed size) */
  uint32_t bound_count;
  const char *const *opaque_names; /* xattrs an opaque directory reports with the value "y" */
  const uint32_t *opaque_lens;
  uint32_t opaque_count;
  int want_table; /* 0: only check the entries */
} lt_input;

enum { LT_OK = 0, LT_FORMAT = 1, LT_LIMIT = 2, LT_NOMEM = 3 };

#define LT_SHOWN_PROBLEMS 5

typedef struct {
  int error;          /* LT_* */
  const char *limit;  /* LT_LIMIT: the limit's name in ArchiveLimits (maxEntries, ...) */
  uint64_t limit_value;
  char message[1024]; /* what is wrong (the limit is not in it) */
  uint8_t *table;     /* malloc'd; the caller frees it with free() */
  size_t table_len;
  uint64_t entry_count;
  uint32_t problem_count; /* entries that could not be applied to the tree (logged by the caller) */
  char problems[LT_SHOWN_PROBLEMS][320];
} lt_output;

/* Returns out->error. */
int lt_build(const lt_input *in, lt_output *out);

#endif
