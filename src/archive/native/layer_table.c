/*
 * layer_table: clip archive entries -> the FUSE server's layer table, in one pass over the body (see
 * layer_table.h). Three stages:
 *
 * 1. Decode. Top-level fields other than `entries` (7) are skipped by their wire type, so fields added by
 *    later minor versions are ignored as docs/format.md requires. Each Entry is decoded (unknown fields
 *    skipped too), front-coded back to its full path, counted against the limits in the order
 *    src/archive/body-decoder.ts counts them, then checked against the rules of src/archive/validate.ts
 *    (paths, types, modes, data ranges, link targets, xattrs, hard links to earlier entries). Strings must
 *    be valid UTF-8 (link targets and xattr names too).
 * 2. Tree. Entries are applied in tar order with the semantics of tar extraction and OCI whiteouts that
 *    docs/format.md and the README describe: a later entry replaces an earlier one (a directory over a
 *    directory only updates its attributes), missing parents appear as 0755 root-owned directories, a hard
 *    link names the inode its target has at that point, `.wh.<name>` becomes a 0/0 character device
 *    unless <name> is real, `.wh..wh..opq` marks its directory opaque, other `.wh..wh.*` names are ignored.
 *    Entries that cannot be applied are counted as problems.
 * 3. Table. Inode numbers are given depth first (the root is 1), records are written breadth first, in
 *    the format at the top of src/fusefs/native/clip_fuse.c.
 *
 * Names are hashed with a per-call random seed, so that a hostile archive cannot choose colliding names.
 */
#define _GNU_SOURCE
#include "layer_table.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define NONE UINT32_MAX
#define SAFE_MAX 9007199254740991ull /* Number.MAX_SAFE_INTEGER: offsets and times are JS numbers */
#define MODE_MAX 07777u
#define XATTR_NAME_MAX 255u
#define XATTR_SIZE_MAX 65536u
#define DIR_SIZE 4096u
#define TABLE_MAGIC 0x31544c43u
#define HEADER_SIZE 40
#define INODE_SIZE 72
#define DIRENT_SIZE 12
#define XATTR_SIZE 16

enum { T_FILE = 1, T_DIR, T_SYMLINK, T_HARDLINK, T_CHAR, T_BLOCK, T_FIFO, K_WHITEOUT };
static const char *const TYPE_NAMES[] = {"?", "file", "dir", "symlink", "hardlink", "char", "block", "fifo", "whiteout"};
static const uint32_t TYPE_BITS[] = {0, 0100000, 0040000, 0120000, 0, 0020000, 0060000, 0010000, 0020000};

typedef struct {
  const uint8_t *p;
  size_t len;
} bytes_t;

/* ---- growable arrays, an arena, a hash map ------------------------------------------------------ */

typedef struct {
  void *items;
  size_t count, cap, size;
} vec_t;

/* A new zeroed slot at the end; NULL if out of memory. */
static void *vec_push(vec_t *v) {
  if (v->count == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 64;
    if (cap > SIZE_MAX / v->size) return NULL;
    void *items = realloc(v->items, cap * v->size);
    if (!items) return NULL;
    v->items = items;
    v->cap = cap;
  }
  void *slot = (char *)v->items + v->count++ * v->size;
  memset(slot, 0, v->size);
  return slot;
}

typedef struct chunk {
  struct chunk *next;
  size_t used, cap;
  uint8_t data[];
} chunk_t;

/* `len` bytes that stay where they are until the end of the call. */
static uint8_t *arena_alloc(chunk_t **arena, size_t len) {
  chunk_t *c = *arena;
  if (!c || c->cap - c->used < len) {
    size_t cap = len > (1u << 16) ? len : (1u << 16);
    c = malloc(sizeof(chunk_t) + cap);
    if (!c) return NULL;
    c->next = *arena;
    c->used = 0;
    c->cap = cap;
    *arena = c;
  }
  uint8_t *at = c->data + c->used;
  c->used += len;
  return at;
}

typedef struct {
  uint32_t scope, value, next, len;
  uint64_t hash;
  const uint8_t *key;
} slot_t;

/* (scope, bytes) -> value; values are only ever added or overwritten. */
typedef struct {
  vec_t slots; /* slot_t */
  uint32_t *heads;
  uint64_t mask, seed;
} map_t;

static uint64_t hash_bytes(uint64_t seed, uint32_t scope, const uint8_t *p, size_t len) {
  uint64_t h = seed ^ ((uint64_t)scope * 0x9e3779b97f4a7c15ull) ^ len;
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 29;
    p += 8;
    len -= 8;
  }
  uint64_t w = 0;
  memcpy(&w, p, len);
  h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 32;
  h *= 0x9e3779b97f4a7c15ull;
  return h ^ (h >> 29);
}

static int map_init(map_t *m, uint64_t seed) {
  m->slots.size = sizeof(slot_t);
  m->mask = 1023;
  m->seed = seed;
  m->heads = malloc((m->mask + 1) * sizeof(uint32_t));
  if (!m->heads) return 0;
  memset(m->heads, 0xff, (m->mask + 1) * sizeof(uint32_t));
  return 1;
}

static void map_free(map_t *m) {
  free(m->slots.items);
  free(m->heads);
}

static slot_t *map_find(const map_t *m, uint32_t scope, const uint8_t *p, size_t len, uint64_t h) {
  for (uint32_t i = m->heads[h & m->mask]; i != NONE;) {
    slot_t *s = (slot_t *)m->slots.items + i;
    if (s->hash == h && s->scope == scope && s->len == len && memcmp(s->key, p, len) == 0) return s;
    i = s->next;
  }
  return NULL;
}

static uint32_t map_get(const map_t *m, uint32_t scope, const uint8_t *p, size_t len) {
  slot_t *s = map_find(m, scope, p, len, hash_bytes(m->seed, scope, p, len));
  return s ? s->value : NONE;
}

/* Sets the value; `p` must stay valid as long as the map. Returns 0 when out of memory. */
static int map_put(map_t *m, uint32_t scope, const uint8_t *p, size_t len, uint32_t value) {
  uint64_t h = hash_bytes(m->seed, scope, p, len);
  slot_t *found = map_find(m, scope, p, len, h);
  if (found) {
    found->value = value;
    return 1;
  }
  if (m->slots.count >= NONE - 1) return 0;
  if (m->slots.count + 1 > m->mask + 1) {
    uint64_t mask = m->mask * 2 + 1;
    uint32_t *heads = malloc((mask + 1) * sizeof(uint32_t));
    if (!heads) return 0;
    memset(heads, 0xff, (mask + 1) * sizeof(uint32_t));
    for (uint32_t i = 0; i < m->slots.count; i++) {
      slot_t *s = (slot_t *)m->slots.items + i;
      s->next = heads[s->hash & mask];
      heads[s->hash & mask] = i;
    }
    free(m->heads);
    m->heads = heads;
    m->mask = mask;
  }
  slot_t *s = vec_push(&m->slots);
  if (!s) return 0;
  uint32_t i = (uint32_t)(m->slots.count - 1);
  *s = (slot_t){.scope = scope, .value = value, .len = (uint32_t)len, .hash = h, .key = p, .next = m->heads[h & m->mask]};
  m->heads[h & m->mask] = i;
  return 1;
}

/* ---- the state of one call --------------------------------------------------------------------- */

typedef struct {
  uint8_t kind; /* T_* other than T_HARDLINK, or K_WHITEOUT */
  uint32_t perm, uid, gid, dev_major, dev_minor, nlink, ino;
  uint64_t size, data_offset;
  int64_t mtime_ms;
  bytes_t link; /* symlink target */
  uint32_t first_xattr, xattr_count;
} inode_t;

typedef struct {
  uint32_t inode, parent;
  const uint8_t *name;
  uint32_t name_len;
  uint8_t is_dir, opaque;
  uint32_t first_child, last_child, prev, next; /* children in order; siblings */
  uint32_t first_wh, last_wh;                   /* whiteouts in order */
} node_t;

typedef struct {
  const uint8_t *name;
  uint32_t name_len, next;
  int64_t mtime_ms;
} whiteout_t;

typedef struct {
  bytes_t name, value;
} xattr_t;

typedef struct {
  const lt_input *in;
  lt_output *out;
  chunk_t *arena;
  vec_t inodes, nodes, whiteouts, xattrs; /* inode_t, node_t, whiteout_t, xattr_t */
  map_t children;                         /* (dir node, name) -> child node */
  map_t wh_names;                         /* (dir node, name) -> whiteout */
  map_t earlier;                          /* (0, path) -> type of the latest entry with that path */
  map_t entry_xattrs;                     /* (entry index, xattr name) -> xattr, for repeated names */
  uint64_t metadata_bytes;
} state_t;

#define INODE(s, i) (((inode_t *)(s)->inodes.items)[i])
#define NODE(s, i) (((node_t *)(s)->nodes.items)[i])

static int fail(state_t *s, int error, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->out->message, sizeof(s->out->message), fmt, ap);
  va_end(ap);
  s->out->error = error;
  return error;
}

static int fail_limit(state_t *s, const char *limit, uint64_t value, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->out->message, sizeof(s->out->message), fmt, ap);
  va_end(ap);
  s->out->error = LT_LIMIT;
  s->out->limit = limit;
  s->out->limit_value = value;
  return LT_LIMIT;
}

static int nomem(state_t *s) { return fail(s, LT_NOMEM, "out of memory"); }

/* JSON.stringify of (valid UTF-8) bytes, shortened to fit `cap`. */
static const char *quoted(const bytes_t b, char *buf, size_t cap) {
  size_t o = 0;
  buf[o++] = '"';
  for (size_t i = 0; i < b.len && o + 8 < cap; i++) {
    uint8_t c = b.p[i];
    if (c == '"' || c == '\\') {
      buf[o++] = '\\';
      buf[o++] = (char)c;
    } else if (c < 0x20) {
      o += (size_t)snprintf(buf + o, cap - o, "\\u%04x", c);
    } else {
      buf[o++] = (char)c;
    }
  }
  buf[o++] = '"';
  buf[o] = '\0';
  return buf;
}

/* ---- protobuf wire ----------------------------------------------------------------------------- */

typedef struct {
  const uint8_t *p, *end;
} reader_t;

static int read_varint(reader_t *r, uint64_t *v) {
  uint64_t x = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (r->p >= r->end) return 0;
    uint8_t b = *r->p++;
    if (shift == 63 && b > 1) return 0;
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return 1;
    }
  }
  return 0;
}

static int read_bytes(reader_t *r, bytes_t *b) {
  uint64_t len;
  if (!read_varint(r, &len) || len > (uint64_t)(r->end - r->p)) return 0;
  b->p = r->p;
  b->len = (size_t)len;
  r->p += len;
  return 1;
}

/* Skips a field of wire type `wt` whose tag was read; groups are skipped to their end tag. */
static int skip_field(reader_t *r, uint32_t wt, uint64_t field) {
  uint64_t v;
  bytes_t b;
  switch (wt) {
  case 0:
    return read_varint(r, &v);
  case 1:
    if (r->end - r->p < 8) return 0;
    r->p += 8;
    return 1;
  case 2:
    return read_bytes(r, &b);
  case 5:
    if (r->end - r->p < 4) return 0;
    r->p += 4;
    return 1;
  case 3: {
    uint64_t open[100];
    int depth = 0;
    open[depth++] = field;
    while (depth > 0) {
      uint64_t tag;
      if (!read_varint(r, &tag)) return 0;
      uint32_t w = (uint32_t)(tag & 7);
      if (w == 4) {
        if ((tag >> 3) != open[--depth]) return 0;
      } else if (w == 3) {
        if (depth == 100) return 0;
        open[depth++] = tag >> 3;
      } else if (!skip_field(r, w, tag >> 3)) {
        return 0;
      }
    }
    return 1;
  }
  default:
    return 0;
  }
}

/* ---- checks ------------------------------------------------------------------------------------ */

/* Whether the bytes are valid UTF-8 (what a fatal TextDecoder accepts: no overlong forms, no surrogates). */
static int valid_utf8(const uint8_t *p, size_t len) {
  size_t i = 0;
  while (i < len) {
    uint8_t c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t min, cp;
    if ((c & 0xe0) == 0xc0) n = 2, min = 0x80, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0) n = 3, min = 0x800, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0) n = 4, min = 0x10000, cp = c & 0x07;
    else return 0;
    if (len - i < n) return 0;
    for (size_t k = 1; k < n; k++) {
      if ((p[i + k] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (p[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    i += n;
  }
  return 1;
}

/* The longest component (bytes between slashes) of a path or link target. */
static size_t longest_component(bytes_t b) {
  size_t longest = 0, start = 0;
  for (size_t i = 0; i <= b.len; i++) {
    if (i == b.len || b.p[i] == '/') {
      if (i - start > longest) longest = i - start;
      start = i + 1;
    }
  }
  return longest;
}

static int has_byte(bytes_t b, uint8_t c) { return b.len && memchr(b.p, c, b.len) != NULL; }

static int equals(bytes_t b, const char *s) { return b.len == strlen(s) && memcmp(b.p, s, b.len) == 0; }

static int starts_with(const uint8_t *p, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && memcmp(p, prefix, n) == 0;
}

/* validate.ts pathProblem: why `b` is not a safe normalised path in the layer ("." allowed), or NULL. */
static const char *path_problem(bytes_t b) {
  if (b.len == 0) return "is empty";
  if (has_byte(b, 0)) return "contains a NUL byte";
  if (b.p[0] == '/') return "is absolute";
  int dot_dot = 0, empty_or_dot = 0;
  size_t start = 0;
  for (size_t i = 0; i <= b.len; i++) {
    if (i == b.len || b.p[i] == '/') {
      size_t n = i - start;
      if (n == 2 && b.p[start] == '.' && b.p[start + 1] == '.') dot_dot = 1;
      if (n == 0 || (n == 1 && b.p[start] == '.')) empty_or_dot = 1;
      start = i + 1;
    }
  }
  if (dot_dot) return "has a '..' component";
  if (equals(b, ".")) return NULL;
  if (empty_or_dot) return "is not normalised (empty or '.' component, or trailing '/')";
  return NULL;
}

/* body-decoder.ts checkLength: a path or link target within max_path_bytes and max_name_bytes. */
static int check_length(state_t *s, uint64_t i, const char *what, bytes_t b) {
  const lt_limits *l = &s->in->limits;
  if (b.len > l->max_path_bytes) return fail_limit(s, "maxPathBytes", l->max_path_bytes, "entry %llu: %s is %zu bytes long", (unsigned long long)i, what, b.len);
  size_t longest = b.len > l->max_name_bytes ? longest_component(b) : 0;
  if (longest > l->max_name_bytes) {
    return fail_limit(s, "maxNameBytes", l->max_name_bytes, "entry %llu: %s has a %zu-byte component", (unsigned long long)i, what, longest);
  }
  return LT_OK;
}

static int count_metadata(state_t *s, uint64_t i, uint64_t bytes) {
  uint64_t max = s->in->limits.max_metadata_bytes;
  s->metadata_bytes += bytes;
  if (s->metadata_bytes > max) {
    return fail_limit(s, "maxMetadataBytes", max, "entry %llu: paths, link targets and xattrs take more than %llu bytes", (unsigned long long)i,
                      (unsigned long long)max);
  }
  return LT_OK;
}

/* validate.ts XATTR_NAME: "namespace.name", no NUL, at most 255 bytes. */
static int good_xattr_name(bytes_t n) {
  if (n.len == 0 || n.len > XATTR_NAME_MAX || has_byte(n, 0) || !valid_utf8(n.p, n.len)) return 0;
  const uint8_t *dot = memchr(n.p, '.', n.len);
  return dot && dot != n.p && (size_t)(dot - n.p) < n.len - 1;
}

/* ---- one entry --------------------------------------------------------------------------------- */

typedef struct {
  uint64_t prefix, type, mode, uid, gid, size, dev_major, dev_minor;
  int64_t mtime_delta, offset_delta;
  bytes_t suffix, link;
  uint32_t first_xattr, xattr_count;
} entry_wire_t;

typedef struct {
  bytes_t path;
  uint32_t type, mode, uid, gid, dev_major, dev_minor;
  uint64_t size, data_offset;
  int64_t mtime_ms;
  bytes_t link;
  uint32_t first_xattr, xattr_count;
} entry_t;

static int64_t unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

static int decode_xattr(state_t *s, uint64_t index, bytes_t msg, entry_wire_t *e) {
  reader_t r = {msg.p, msg.p + msg.len};
  bytes_t key = {(const uint8_t *)"", 0}, value = {(const uint8_t *)"", 0};
  while (r.p < r.end) {
    uint64_t tag;
    if (!read_varint(&r, &tag) || (tag >> 3) == 0) return 0;
    uint32_t wt = (uint32_t)(tag & 7);
    if (tag == 10) {
      if (!read_bytes(&r, &key)) return 0;
    } else if (tag == 18) {
      if (!read_bytes(&r, &value)) return 0;
    } else if (wt == 4 || !skip_field(&r, wt, tag >> 3)) {
      return 0;
    }
  }
  uint32_t at = map_get(&s->entry_xattrs, (uint32_t)index, key.p, key.len);
  if (at != NONE) {
    ((xattr_t *)s->xattrs.items)[at].value = value; /* a repeated name: the last value, the first place */
    return 1;
  }
  xattr_t *x = vec_push(&s->xattrs);
  if (!x) return -1;
  x->name = key;
  x->value = value;
  if (!map_put(&s->entry_xattrs, (uint32_t)index, key.p, key.len, (uint32_t)(s->xattrs.count - 1))) return -1;
  e->xattr_count++;
  return 1;
}

static int decode_entry_wire(state_t *s, uint64_t index, bytes_t msg, entry_wire_t *e) {
  reader_t r = {msg.p, msg.p + msg.len};
  memset(e, 0, sizeof(*e));
  e->suffix.p = e->link.p = (const uint8_t *)"";
  e->first_xattr = (uint32_t)s->xattrs.count;
  while (r.p < r.end) {
    uint64_t tag, v = 0;
    if (!read_varint(&r, &tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX) return fail(s, LT_FORMAT, "malformed body: entry %llu", (unsigned long long)index);
    uint32_t wt = (uint32_t)(tag & 7), field = (uint32_t)(tag >> 3);
    int ok = 1;
    if (wt == 0 && (field <= 9 || field == 11 || field == 12) && field != 2) {
      ok = read_varint(&r, &v);
      switch (field) {
      case 1: e->prefix = (uint32_t)v; break;
      case 3: e->type = (uint32_t)v; break;
      case 4: e->mode = (uint32_t)v; break;
      case 5: e->uid = (uint32_t)v; break;
      case 6: e->gid = (uint32_t)v; break;
      case 7: e->size = v; break;
      case 8: e->mtime_delta = unzigzag(v); break;
      case 9: e->offset_delta = unzigzag(v); break;
      case 11: e->dev_major = (uint32_t)v; break;
      case 12: e->dev_minor = (uint32_t)v; break;
      }
    } else if (wt == 2 && field == 2) {
      ok = read_bytes(&r, &e->suffix);
    } else if (wt == 2 && field == 10) {
      ok = read_bytes(&r, &e->link);
    } else if (wt == 2 && field == 13) {
      bytes_t x;
      ok = read_bytes(&r, &x);
      if (ok) {
        int got = decode_xattr(s, index, x, e);
        if (got < 0) return nomem(s);
        ok = got;
      }
    } else {
      ok = wt != 4 && skip_field(&r, wt, field);
    }
    if (!ok) return fail(s, LT_FORMAT, "malformed body: entry %llu", (unsigned long long)index);
  }
  return LT_OK;
}

/* body-decoder.ts EntryDecoder.add, then validate.ts entryProblem and hardlinkProblem. */
static int check_entry(state_t *s, uint64_t i, const entry_wire_t *w, entry_t *e, bytes_t *prev_path, int64_t *prev_mtime, uint64_t *prev_end) {
  const lt_limits *l = &s->in->limits;
  char q[400], q2[400];
  if (w->prefix > prev_path->len) {
    return fail(s, LT_FORMAT, "entry %llu: path shares %llu bytes with the previous path, which has %zu", (unsigned long long)i,
                (unsigned long long)w->prefix, prev_path->len);
  }
  uint64_t path_len = w->prefix + (uint64_t)w->suffix.len;
  if (path_len > l->max_path_bytes) {
    return fail_limit(s, "maxPathBytes", l->max_path_bytes, "entry %llu: path is %llu bytes long", (unsigned long long)i, (unsigned long long)path_len);
  }
  if (count_metadata(s, i, path_len)) return s->out->error;
  /* The full path, kept until the end (names in the tree point into it). */
  uint8_t *path = arena_alloc(&s->arena, (size_t)path_len);
  if (!path) return nomem(s);
  if (w->prefix) memcpy(path, prev_path->p, (size_t)w->prefix);
  if (w->suffix.len) memcpy(path + w->prefix, w->suffix.p, w->suffix.len);
  e->path = (bytes_t){path, (size_t)path_len};
  if (!valid_utf8(path, (size_t)path_len)) return fail(s, LT_FORMAT, "entry %llu: path is not valid UTF-8", (unsigned long long)i);
  if (check_length(s, i, "path", e->path)) return s->out->error;
  if (w->type < T_FILE || w->type > T_FIFO) {
    return fail(s, LT_FORMAT, "entry %llu (%s): unknown entry type %llu", (unsigned long long)i, quoted(e->path, q, sizeof q), (unsigned long long)w->type);
  }
  if (w->link.len) {
    if (!valid_utf8(w->link.p, w->link.len)) return fail(s, LT_FORMAT, "entry %llu: link target is not valid UTF-8", (unsigned long long)i);
    if (check_length(s, i, "link target", w->link) || count_metadata(s, i, w->link.len)) return s->out->error;
  }
  xattr_t *xs = (xattr_t *)s->xattrs.items + w->first_xattr;
  for (uint32_t k = 0; k < w->xattr_count; k++) {
    if (count_metadata(s, i, (uint64_t)xs[k].name.len + xs[k].value.len)) return s->out->error;
  }
  /* Deltas: the results must be JS safe integers, as body-decoder.ts requires. */
  if (w->size > SAFE_MAX) return fail(s, LT_FORMAT, "entry %llu (%s): size out of range", (unsigned long long)i, quoted(e->path, q, sizeof q));
  int64_t mtime;
  int64_t offset;
  int bad = __builtin_add_overflow(*prev_mtime, w->mtime_delta, &mtime) || __builtin_add_overflow((int64_t)*prev_end, w->offset_delta, &offset);
  if (bad || mtime > (int64_t)SAFE_MAX || mtime < -(int64_t)SAFE_MAX || offset > (int64_t)SAFE_MAX || offset < -(int64_t)SAFE_MAX ||
      offset + (int64_t)w->size > (int64_t)SAFE_MAX || offset + (int64_t)w->size < -(int64_t)SAFE_MAX) {
    return fail(s, LT_FORMAT, "entry %llu (%s): mtime or data offset out of range", (unsigned long long)i, quoted(e->path, q, sizeof q));
  }
  *prev_path = e->path;
  *prev_mtime = mtime;
  *prev_end = (uint64_t)(offset + (int64_t)w->size);

  e->type = (uint32_t)w->type;
  e->mode = (uint32_t)w->mode;
  e->uid = (uint32_t)w->uid;
  e->gid = (uint32_t)w->gid;
  e->dev_major = (uint32_t)w->dev_major;
  e->dev_minor = (uint32_t)w->dev_minor;
  e->size = w->size;
  e->mtime_ms = mtime;
  e->link = w->link;
  e->first_xattr = w->first_xattr;
  e->xattr_count = w->xattr_count;

  /* validate.ts entryProblem */
  const char *type = TYPE_NAMES[e->type];
  const char *problem = path_problem(e->path);
#define BAD(...)                                                                                                   \
  do {                                                                                                             \
    char detail[700];                                                                                              \
    snprintf(detail, sizeof detail, __VA_ARGS__);                                                                  \
    return fail(s, LT_FORMAT, "entry %llu (%s): %s", (unsigned long long)i, quoted(e->path, q, sizeof q), detail); \
  } while (0)
  if (problem) BAD("path %s", problem);
  if (equals(e->path, ".") && e->type != T_DIR) BAD("the layer root \".\" must be a directory");
  if (e->mode > MODE_MAX) BAD("mode %u is not within 0-07777", e->mode);
  if (e->type != T_FILE && e->size != 0) BAD("a %s has size %llu, want 0", type, (unsigned long long)e->size);
  if (offset < 0) BAD("data offset %lld is not a non-negative integer", (long long)offset);
  e->data_offset = (uint64_t)offset;
  if (e->data_offset + e->size > s->in->uncompressed_size) {
    BAD("data [%llu, %llu) ends beyond the uncompressed size %llu", (unsigned long long)e->data_offset, (unsigned long long)(e->data_offset + e->size),
        (unsigned long long)s->in->uncompressed_size);
  }
  if (e->type == T_SYMLINK) {
    if (e->link.len == 0 || has_byte(e->link, 0)) BAD("symlink target %s is empty or not a valid name", quoted(e->link, q2, sizeof q2));
  } else if (e->type == T_HARDLINK) {
    const char *target = path_problem(e->link);
    if (target) BAD("hardlink target %s %s", quoted(e->link, q2, sizeof q2), target);
  } else if (e->link.len) {
    BAD("a %s has link target %s, want none", type, quoted(e->link, q2, sizeof q2));
  }
  for (uint32_t k = 0; k < e->xattr_count; k++) {
    if (!good_xattr_name(xs[k].name)) BAD("xattr name %s is not \"namespace.name\" of at most %u bytes", quoted(xs[k].name, q2, sizeof q2), XATTR_NAME_MAX);
    if (xs[k].value.len > XATTR_SIZE_MAX) {
      BAD("xattr %.*s value is %zu bytes, at most %u", (int)(xs[k].name.len > 255 ? 255 : xs[k].name.len), (const char *)xs[k].name.p, xs[k].value.len,
          XATTR_SIZE_MAX);
    }
  }
  /* validate.ts hardlinkProblem: the target is an earlier entry that is not a directory. */
  if (e->type == T_HARDLINK) {
    if (e->link.len == e->path.len && memcmp(e->link.p, e->path.p, e->path.len) == 0) BAD("hardlink to itself");
    uint32_t target = map_get(&s->earlier, 0, e->link.p, e->link.len);
    if (target == NONE) BAD("hardlink target %s is not an earlier entry", quoted(e->link, q2, sizeof q2));
    if (target == T_DIR) BAD("hardlink target %s is a directory", quoted(e->link, q2, sizeof q2));
  }
#undef BAD
  if (!map_put(&s->earlier, 0, e->path.p, e->path.len, e->type)) return nomem(s);
  return LT_OK;
}

/* ---- the tree (tar extraction, whiteouts) --------------------------------------------------------- */

static void problem(state_t *s, bytes_t path, const char *what) {
  lt_output *o = s->out;
  if (o->problem_count < LT_SHOWN_PROBLEMS) {
    snprintf(o->problems[o->problem_count], sizeof o->problems[0], "%.*s: %s", (int)(path.len > 200 ? 200 : path.len), (const char *)path.p, what);
  }
  o->problem_count++;
}

static uint32_t new_inode(state_t *s) {
  inode_t *n = vec_push(&s->inodes);
  return n ? (uint32_t)(s->inodes.count - 1) : NONE;
}

static uint32_t implicit_dir_inode(state_t *s) {
  uint32_t i = new_inode(s);
  if (i != NONE) {
    INODE(s, i).kind = T_DIR;
    INODE(s, i).perm = 0755;
  }
  return i;
}

static uint32_t entry_inode(state_t *s, const entry_t *e, uint8_t kind) {
  uint32_t i = new_inode(s);
  if (i == NONE) return NONE;
  inode_t *n = &INODE(s, i);
  n->kind = kind;
  n->perm = e->mode & MODE_MAX;
  n->uid = e->uid;
  n->gid = e->gid;
  n->size = kind == T_FILE ? e->size : 0;
  n->mtime_ms = e->mtime_ms;
  n->dev_major = e->dev_major;
  n->dev_minor = e->dev_minor;
  n->link = e->link;
  n->data_offset = e->data_offset;
  n->first_xattr = e->first_xattr;
  n->xattr_count = e->xattr_count;
  n->nlink = kind == T_DIR ? 0 : 1;
  return i;
}

static uint32_t new_node(state_t *s, uint32_t inode, uint32_t parent, const uint8_t *name, size_t name_len) {
  node_t *n = vec_push(&s->nodes);
  if (!n) return NONE;
  n->inode = inode;
  n->parent = parent;
  n->name = name;
  n->name_len = (uint32_t)name_len;
  n->is_dir = INODE(s, inode).kind == T_DIR;
  n->first_child = n->last_child = n->prev = n->next = n->first_wh = n->last_wh = NONE;
  return (uint32_t)(s->nodes.count - 1);
}

/* A name goes away: its inode loses a link; a directory takes its whole subtree with it. */
static void release(state_t *s, uint32_t node) {
  uint32_t at = node;
  for (;;) {
    node_t *n = &NODE(s, at);
    if (!n->is_dir) INODE(s, n->inode).nlink--;
    else if (n->first_child != NONE) {
      at = n->first_child;
      continue;
    }
    /* Next in pre-order within the subtree of `node`. */
    while (at != node && NODE(s, at).next == NONE) at = NODE(s, at).parent;
    if (at == node) return;
    at = NODE(s, at).next;
  }
}

static void unlink_child(state_t *s, uint32_t parent, uint32_t child) {
  node_t *c = &NODE(s, child), *p = &NODE(s, parent);
  if (c->prev != NONE) NODE(s, c->prev).next = c->next;
  else p->first_child = c->next;
  if (c->next != NONE) NODE(s, c->next).prev = c->prev;
  else p->last_child = c->prev;
  c->prev = c->next = NONE;
}

static int append_child(state_t *s, uint32_t parent, uint32_t child) {
  node_t *c = &NODE(s, child), *p = &NODE(s, parent);
  c->prev = p->last_child;
  c->next = NONE;
  if (p->last_child != NONE) NODE(s, p->last_child).next = child;
  else p->first_child = child;
  p->last_child = child;
  return map_put(&s->children, parent, c->name, c->name_len, child);
}

/* Puts a node under its name, releasing whatever had the name before; the name moves to the end. */
static int place(state_t *s, uint32_t parent, uint32_t node) {
  uint32_t old = map_get(&s->children, parent, NODE(s, node).name, NODE(s, node).name_len);
  if (old != NONE) {
    release(s, old);
    unlink_child(s, parent, old);
  }
  return append_child(s, parent, node);
}

/* Iterates over the components of a normalised path ("." has none). */
typedef struct {
  const uint8_t *p, *end;
} parts_t;

static int next_part(parts_t *it, bytes_t *part) {
  while (it->p < it->end) {
    const uint8_t *slash = memchr(it->p, '/', (size_t)(it->end - it->p));
    const uint8_t *stop = slash ? slash : it->end;
    part->p = it->p;
    part->len = (size_t)(stop - it->p);
    it->p = slash ? slash + 1 : it->end;
    if (part->len && !(part->len == 1 && part->p[0] == '.')) return 1;
  }
  return 0;
}

/* The node at a path, or NONE. */
static uint32_t find(state_t *s, bytes_t path) {
  parts_t it = {path.p, path.p + path.len};
  bytes_t part;
  uint32_t at = 0;
  while (next_part(&it, &part)) {
    if (!NODE(s, at).is_dir) return NONE;
    at = map_get(&s->children, at, part.p, part.len);
    if (at == NONE) return NONE;
  }
  return at;
}

static int add_whiteout(state_t *s, uint32_t dir, bytes_t name, const entry_t *e) {
  static const char *const OPAQUE = ".wh..wh..opq";
  if (equals(name, OPAQUE)) {
    NODE(s, dir).opaque = 1;
    return LT_OK;
  }
  if (starts_with(name.p, name.len, ".wh..wh.")) return LT_OK;
  if (name.len == 4) {
    problem(s, e->path, "whiteout without a name");
    return LT_OK;
  }
  const uint8_t *hidden = name.p + 4;
  size_t hidden_len = name.len - 4;
  uint32_t at = map_get(&s->wh_names, dir, hidden, hidden_len);
  if (at != NONE) {
    ((whiteout_t *)s->whiteouts.items)[at].mtime_ms = e->mtime_ms;
    return LT_OK;
  }
  whiteout_t *w = vec_push(&s->whiteouts);
  if (!w) return nomem(s);
  uint32_t wi = (uint32_t)(s->whiteouts.count - 1);
  *w = (whiteout_t){.name = hidden, .name_len = (uint32_t)hidden_len, .next = NONE, .mtime_ms = e->mtime_ms};
  node_t *d = &NODE(s, dir);
  if (d->last_wh != NONE) ((whiteout_t *)s->whiteouts.items)[d->last_wh].next = wi;
  else d->first_wh = wi;
  d->last_wh = wi;
  return map_put(&s->wh_names, dir, hidden, hidden_len, wi) ? LT_OK : nomem(s);
}

static int apply_entry(state_t *s, const entry_t *e) {
  /* The components; a parent named .wh.* hides the entry. */
  parts_t it = {e->path.p, e->path.p + e->path.len};
  bytes_t part = {NULL, 0}, name = {NULL, 0};
  uint32_t count = 0;
  int in_whiteout = 0;
  const uint8_t *parent_end = e->path.p;
  while (next_part(&it, &part)) {
    if (count++ > 0) {
      if (starts_with(name.p, name.len, ".wh.")) in_whiteout = 1;
      parent_end = name.p + name.len;
    }
    name = part;
  }
  if (in_whiteout) {
    problem(s, e->path, "inside a whiteout");
    return LT_OK;
  }
  if (count == 0) { /* the layer root, always a directory (checked) */
    uint32_t inode = entry_inode(s, e, T_DIR);
    if (inode == NONE) return nomem(s);
    NODE(s, 0).inode = inode;
    return LT_OK;
  }
  /* The parent directory, creating missing ones and replacing non-directories in the way. */
  uint32_t dir = 0;
  it = (parts_t){e->path.p, e->path.p + e->path.len};
  for (uint32_t k = 0; k + 1 < count; k++) {
    next_part(&it, &part);
    uint32_t next = map_get(&s->children, dir, part.p, part.len);
    if (next == NONE || !NODE(s, next).is_dir) {
      if (next != NONE) {
        char what[64];
        snprintf(what, sizeof what, "%s replaced by a directory", TYPE_NAMES[INODE(s, NODE(s, next).inode).kind]);
        problem(s, (bytes_t){e->path.p, (size_t)(parent_end - e->path.p)}, what);
      }
      uint32_t inode = implicit_dir_inode(s);
      if (inode == NONE || (next = new_node(s, inode, dir, part.p, part.len)) == NONE || !place(s, dir, next)) return nomem(s);
    }
    dir = next;
  }
  if (starts_with(name.p, name.len, ".wh.")) return add_whiteout(s, dir, name, e);

  uint32_t existing = map_get(&s->children, dir, name.p, name.len);
  if (e->type == T_HARDLINK) {
    uint32_t target = find(s, e->link);
    if (target == NONE) {
      char what[300];
      snprintf(what, sizeof what, "hard link to missing %.*s", (int)(e->link.len > 200 ? 200 : e->link.len), (const char *)e->link.p);
      problem(s, e->path, what);
      return LT_OK;
    }
    if (NODE(s, target).is_dir) {
      char what[300];
      snprintf(what, sizeof what, "hard link to directory %.*s", (int)(e->link.len > 200 ? 200 : e->link.len), (const char *)e->link.p);
      problem(s, e->path, what);
      return LT_OK;
    }
    uint32_t inode = NODE(s, target).inode;
    if (existing != NONE && NODE(s, existing).inode == inode) return LT_OK;
    INODE(s, inode).nlink++;
    uint32_t node = new_node(s, inode, dir, name.p, name.len);
    return node != NONE && place(s, dir, node) ? LT_OK : nomem(s);
  }
  if (e->type == T_DIR && existing != NONE && NODE(s, existing).is_dir) {
    uint32_t inode = entry_inode(s, e, T_DIR);
    if (inode == NONE) return nomem(s);
    NODE(s, existing).inode = inode;
    return LT_OK;
  }
  uint32_t inode = entry_inode(s, e, (uint8_t)e->type);
  uint32_t node = inode == NONE ? NONE : new_node(s, inode, dir, name.p, name.len);
  return node != NONE && place(s, dir, node) ? LT_OK : nomem(s);
}

/* ---- freezing and the table -------------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v) {
  for (int k = 0; k < 4; k++) p[k] = (uint8_t)(v >> (8 * k));
}

static void put64(uint8_t *p, uint64_t v) {
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
}

/* What the table holds, counted while freezing so that it is written in place. */
typedef struct {
  uint32_t inodes;
  uint64_t dirents, xattrs, pool, file_bytes;
  int any_xattrs;
} sizes_t;

/* Whether opaque marker `o` is one of the inode's own xattrs (it then keeps its own value). */
static int has_own_xattr(const state_t *s, const inode_t *inode, uint32_t o) {
  const xattr_t *xs = (const xattr_t *)s->xattrs.items + inode->first_xattr;
  for (uint32_t j = 0; j < inode->xattr_count; j++) {
    if (xs[j].name.len == s->in->opaque_lens[o] && memcmp(xs[j].name.p, s->in->opaque_names[o], xs[j].name.len) == 0) return 1;
  }
  return 0;
}

/*
 * Adds whiteout nodes, numbers the inodes depth first (as a stack pops), counts directory links and the
 * table's sizes.
 */
static int freeze(state_t *s, sizes_t *z) {
  vec_t stack = {.size = sizeof(uint32_t)};
  uint32_t next_ino = 1;
  uint32_t *top = vec_push(&stack);
  if (!top) return nomem(s);
  *top = 0;
  while (stack.count > 0) {
    uint32_t at = ((uint32_t *)stack.items)[--stack.count];
    inode_t *inode = &INODE(s, NODE(s, at).inode);
    if (inode->xattr_count > 0 || NODE(s, at).opaque) z->any_xattrs = 1;
    if (inode->ino != 0) continue; /* a hard link to an inode numbered already (never a directory) */
    inode->ino = next_ino++;
    if (inode->kind == T_FILE) z->file_bytes += inode->size;
    const xattr_t *xs = (const xattr_t *)s->xattrs.items + inode->first_xattr;
    for (uint32_t k = 0; k < inode->xattr_count; k++) z->pool += xs[k].name.len + xs[k].value.len;
    z->xattrs += inode->xattr_count;
    if (inode->kind == T_SYMLINK) z->pool += inode->link.len + 1;
    if (!NODE(s, at).is_dir) continue;
    if (NODE(s, at).opaque) {
      for (uint32_t o = 0; o < s->in->opaque_count; o++) {
        if (has_own_xattr(s, inode, o)) continue;
        z->xattrs++;
        z->pool += s->in->opaque_lens[o] + 1;
      }
    }
    for (uint32_t w = NODE(s, at).first_wh; w != NONE; w = ((whiteout_t *)s->whiteouts.items)[w].next) {
      whiteout_t wh = ((whiteout_t *)s->whiteouts.items)[w];
      if (map_get(&s->children, at, wh.name, wh.name_len) != NONE) continue;
      uint32_t wi = new_inode(s);
      uint32_t node = wi == NONE ? NONE : new_node(s, wi, at, wh.name, wh.name_len);
      if (node == NONE || !append_child(s, at, node)) {
        free(stack.items);
        return nomem(s);
      }
      INODE(s, wi).kind = K_WHITEOUT;
      INODE(s, wi).mtime_ms = wh.mtime_ms;
      INODE(s, wi).nlink = 1;
    }
    uint32_t subdirs = 0;
    for (uint32_t c = NODE(s, at).first_child; c != NONE; c = NODE(s, c).next) {
      subdirs += NODE(s, c).is_dir;
      z->dirents++;
      z->pool += NODE(s, c).name_len;
      uint32_t *slot = vec_push(&stack);
      if (!slot) {
        free(stack.items);
        return nomem(s);
      }
      *slot = c;
    }
    INODE(s, NODE(s, at).inode).nlink = 2 + subdirs;
  }
  free(stack.items);
  z->inodes = next_ino - 1;
  return LT_OK;
}

static uint64_t mtime_ns(int64_t ms) {
  if (ms <= 0) return 0;
  return (uint64_t)ms > UINT64_MAX / 1000000u ? UINT64_MAX : (uint64_t)ms * 1000000u;
}

/* Where the next dirent, xattr and pool bytes go. */
typedef struct {
  uint8_t *dirent, *xattr, *pool_start, *pool;
} cursor_t;

static uint32_t pool_add(cursor_t *c, const void *p, size_t len) {
  uint32_t at = (uint32_t)(c->pool - c->pool_start);
  if (len) memcpy(c->pool, p, len);
  c->pool += len;
  return at;
}

static void add_xattr(cursor_t *c, bytes_t name, bytes_t value) {
  put32(c->xattr, pool_add(c, name.p, name.len));
  put32(c->xattr + 4, (uint32_t)name.len);
  put32(c->xattr + 8, pool_add(c, value.p, value.len));
  put32(c->xattr + 12, (uint32_t)value.len);
  c->xattr += XATTR_SIZE;
}

/* Writes one inode's record, its directory entries, xattrs and link target; queues its children. */
static void write_inode(state_t *s, const node_t *node, uint8_t *r, cursor_t *c, uint32_t *first, uint32_t *queue, size_t *tail) {
  const lt_input *in = s->in;
  const inode_t *inode = &INODE(s, node->inode);
  uint32_t children = 0, nx = 0, link_off = 0, link_len = 0;
  for (uint32_t ch = node->first_child; ch != NONE; ch = NODE(s, ch).next) {
    put32(c->dirent, INODE(s, NODE(s, ch).inode).ino);
    put32(c->dirent + 4, pool_add(c, NODE(s, ch).name, NODE(s, ch).name_len));
    put32(c->dirent + 8, NODE(s, ch).name_len);
    c->dirent += DIRENT_SIZE;
    queue[(*tail)++] = ch;
    children++;
  }
  const xattr_t *xs = (const xattr_t *)s->xattrs.items + inode->first_xattr;
  for (uint32_t k = 0; k < inode->xattr_count; k++, nx++) add_xattr(c, xs[k].name, xs[k].value);
  for (uint32_t o = 0; node->opaque && o < in->opaque_count; o++) {
    if (has_own_xattr(s, inode, o)) continue;
    add_xattr(c, (bytes_t){(const uint8_t *)in->opaque_names[o], in->opaque_lens[o]}, (bytes_t){(const uint8_t *)"y", 1});
    nx++;
  }
  if (inode->kind == T_SYMLINK) {
    link_len = (uint32_t)inode->link.len;
    link_off = pool_add(c, inode->link.p, link_len);
    pool_add(c, "", 1);
  }
  int device = inode->kind == T_CHAR || inode->kind == T_BLOCK;
  uint64_t size = inode->kind == T_DIR ? DIR_SIZE : inode->kind == T_SYMLINK ? inode->link.len : inode->size;
  uint32_t fields[12] = {TYPE_BITS[inode->kind] | inode->perm, inode->uid, inode->gid, inode->nlink, device ? inode->dev_major : 0,
                         device ? inode->dev_minor : 0, link_off, link_len, first[0], children, first[1], nx};
  for (int k = 0; k < 12; k++) put32(r + 4 * k, fields[k]);
  put64(r + 48, size);
  put64(r + 56, inode->kind == T_FILE ? inode->data_offset : 0);
  put64(r + 64, mtime_ns(inode->mtime_ms));
  first[0] += children;
  first[1] += nx;
}

static int encode_table(state_t *s) {
  sizes_t z = {0};
  if (freeze(s, &z)) return s->out->error;
  const lt_input *in = s->in;
  uint32_t span_count = in->bound_count > 1 ? in->bound_count - 1 : 0;
  if (z.dirents > UINT32_MAX || z.xattrs > UINT32_MAX || z.pool > UINT32_MAX) return fail(s, LT_FORMAT, "the layer is too large for a table");
  uint64_t total = HEADER_SIZE + (uint64_t)z.inodes * INODE_SIZE + z.dirents * DIRENT_SIZE + z.xattrs * XATTR_SIZE + ((uint64_t)span_count + 1) * 8 + z.pool;
  uint8_t *table = total <= SIZE_MAX ? calloc(1, (size_t)total) : NULL;
  uint32_t *queue = malloc(s->nodes.count * sizeof(uint32_t));
  if (!table || !queue) {
    free(table);
    free(queue);
    return nomem(s);
  }
  uint8_t *records = table + HEADER_SIZE;
  cursor_t c = {.dirent = records + (size_t)z.inodes * INODE_SIZE};
  c.xattr = c.dirent + z.dirents * DIRENT_SIZE;
  uint8_t *bounds = c.xattr + z.xattrs * XATTR_SIZE;
  c.pool_start = c.pool = bounds + ((size_t)span_count + 1) * 8;
  /* Breadth first from the root; each inode is recorded once, at its number (every record has a type). */
  uint32_t first[2] = {0, 0};
  size_t head = 0, tail = 0;
  queue[tail++] = 0;
  while (head < tail) {
    const node_t *node = &NODE(s, queue[head++]);
    uint8_t *r = records + (size_t)(INODE(s, node->inode).ino - 1) * INODE_SIZE;
    if (!(r[0] | r[1] | r[2] | r[3])) write_inode(s, node, r, &c, first, queue, &tail);
  }
  uint32_t header[8] = {TABLE_MAGIC, z.inodes, (uint32_t)z.dirents, (uint32_t)z.xattrs, span_count, (uint32_t)z.pool, z.any_xattrs ? 1u : 0u, 0};
  for (int k = 0; k < 8; k++) put32(table + 4 * k, header[k]);
  put64(table + 32, z.file_bytes);
  for (uint32_t k = 0; span_count > 0 && k < in->bound_count; k++) put64(bounds + 8 * k, in->bounds[k]);
  free(queue);
  s->out->table = table;
  s->out->table_len = (size_t)total;
  return LT_OK;
}

/* ---- the call ---------------------------------------------------------------------------------- */

static uint64_t random_seed(void) {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    seed = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&ts;
  }
  return seed;
}

static int run(state_t *s) {
  const lt_input *in = s->in;
  reader_t r = {in->body, in->body + in->body_len};
  bytes_t prev_path = {(const uint8_t *)"", 0};
  int64_t prev_mtime = 0;
  uint64_t prev_end = 0, index = 0;
  /* The root: a 0755 directory until a "." entry says otherwise. */
  uint32_t root_inode = implicit_dir_inode(s);
  if (root_inode == NONE || new_node(s, root_inode, NONE, (const uint8_t *)"", 0) == NONE) return nomem(s);
  while (r.p < r.end) {
    uint64_t tag;
    if (!read_varint(&r, &tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX) return fail(s, LT_FORMAT, "malformed body: bad field tag");
    uint32_t wt = (uint32_t)(tag & 7);
    if (tag != ((7 << 3) | 2)) {
      if (wt == 4 || !skip_field(&r, wt, tag >> 3)) return fail(s, LT_FORMAT, "malformed body: field %llu", (unsigned long long)(tag >> 3));
      continue;
    }
    bytes_t msg;
    if (!read_bytes(&r, &msg)) return fail(s, LT_FORMAT, "malformed body: entry %llu", (unsigned long long)index);
    if (index == in->limits.max_entries) {
      return fail_limit(s, "maxEntries", in->limits.max_entries, "more than %llu entries", (unsigned long long)in->limits.max_entries);
    }
    entry_wire_t w;
    entry_t e;
    if (decode_entry_wire(s, index, msg, &w) || check_entry(s, index, &w, &e, &prev_path, &prev_mtime, &prev_end)) return s->out->error;
    if (in->want_table && apply_entry(s, &e)) return s->out->error;
    index++;
  }
  s->out->entry_count = index;
  return in->want_table ? encode_table(s) : LT_OK;
}

int lt_build(const lt_input *in, lt_output *out) {
  memset(out, 0, sizeof(*out));
  state_t s = {.in = in, .out = out};
  s.inodes.size = sizeof(inode_t);
  s.nodes.size = sizeof(node_t);
  s.whiteouts.size = sizeof(whiteout_t);
  s.xattrs.size = sizeof(xattr_t);
  uint64_t seed = random_seed();
  if (!map_init(&s.children, seed) || !map_init(&s.wh_names, seed) || !map_init(&s.earlier, seed) || !map_init(&s.entry_xattrs, seed)) {
    nomem(&s);
  } else {
    run(&s);
  }
  map_free(&s.children);
  map_free(&s.wh_names);
  map_free(&s.earlier);
  map_free(&s.entry_xattrs);
  free(s.inodes.items);
  free(s.nodes.items);
  free(s.whiteouts.items);
  free(s.xattrs.items);
  while (s.arena) {
    chunk_t *next = s.arena->next;
    free(s.arena);
    s.arena = next;
  }
  if (out->error) {
    free(out->table);
    out->table = NULL;
    out->table_len = 0;
  }
  return out->error;
}
