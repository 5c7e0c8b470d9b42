/*
 * Fuzzes src/archive/native/layer_table.c on its own, built with AddressSanitizer and
 * UndefinedBehaviorSanitizer by scripts/fuzz-layer-table.sh: random archive bodies (entries of every type
 * with front-coded paths, hard links, symlinks, whiteouts, opaque markers, xattrs, unknown fields), then
 * the same bodies with bytes changed, cut short or with bytes appended, under random limits, with and
 * without the table. lt_build must return for each, without a sanitizer report; an accepted body must
 * give a table whose header matches its length.
 *
 *   layer-table-fuzz [ITERATIONS [SEED]]
 */
#include "layer_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state;

static uint32_t rnd(uint32_t n) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return n ? (uint32_t)(state % n) : 0;
}

typedef struct {
  uint8_t *p;
  size_t len, cap;
} out_t;

static void put(out_t *o, const void *p, size_t n) {
  if (o->len + n > o->cap) {
    o->cap = (o->len + n) * 2 + 64;
    o->p = realloc(o->p, o->cap);
    if (!o->p) abort();
  }
  memcpy(o->p + o->len, p, n);
  o->len += n;
}

static void varint(out_t *o, uint64_t v) {
  do {
    uint8_t b = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v) b |= 0x80;
    put(o, &b, 1);
  } while (v);
}

static void field_bytes(out_t *o, uint32_t field, const void *p, size_t n) {
  varint(o, (uint64_t)field << 3 | 2);
  varint(o, n);
  put(o, p, n);
}

static void field_varint(out_t *o, uint32_t field, uint64_t v) {
  varint(o, (uint64_t)field << 3);
  varint(o, v);
}

static const char *const NAMES[] = {"a", "b", "c", ".wh.a", ".wh.b", ".wh..wh..opq", ".wh..wh.plnk", ".wh.", "\xc3\xa9", ".", ".."};

/* A random body; paths are remembered for hard links. */
static void random_body(out_t *body, uint64_t *uncompressed) {
  char paths[40][64];
  uint32_t n = 1 + rnd(40), count = 0;
  char prev[64] = "";
  int64_t prev_mtime = 0;
  uint64_t offset = 0;
  for (uint32_t i = 0; i < n; i++) {
    char path[64] = "";
    uint32_t depth = 1 + rnd(3);
    for (uint32_t d = 0; d < depth; d++) {
      if (d) strcat(path, "/");
      strcat(path, NAMES[rnd(rnd(8) ? 9 : 11)]);
    }
    uint32_t type = 1 + rnd(7);
    out_t e = {0};
    size_t shared = 0;
    while (prev[shared] && prev[shared] == path[shared]) shared++;
    field_varint(&e, 1, shared);
    field_bytes(&e, 2, path + shared, strlen(path) - shared);
    field_varint(&e, 3, type);
    field_varint(&e, 4, rnd(10) ? rnd(07777) : rnd(1u << 16));
    field_varint(&e, 5, rnd(3));
    uint64_t size = type == 1 ? rnd(5) : 0;
    if (size) field_varint(&e, 7, size);
    int64_t mtime = 1000 * (int64_t)rnd(5);
    int64_t delta = mtime - prev_mtime;
    field_varint(&e, 8, ((uint64_t)delta << 1) ^ (uint64_t)(delta >> 63)); /* zigzag */
    field_varint(&e, 9, 2 * rnd(3));
    if (type == 3) field_bytes(&e, 10, "x/a", 3);
    if (type == 4 && count) {
      const char *target = paths[rnd(count)];
      field_bytes(&e, 10, target, strlen(target));
    }
    if (type == 5 || type == 6) field_varint(&e, 11, rnd(3));
    if (rnd(4) == 0) {
      out_t x = {0};
      const char *name = rnd(2) ? "user.x" : "trusted.overlay.opaque";
      field_bytes(&x, 1, name, strlen(name));
      field_bytes(&x, 2, "v", 1);
      field_bytes(&e, 13, x.p, x.len);
      free(x.p);
    }
    if (rnd(8) == 0) field_varint(&e, 14 + rnd(4), rnd(100)); /* an unknown field */
    field_bytes(body, 7, e.p, e.len);
    free(e.p);
    strcpy(prev, path);
    if (count < 40) strcpy(paths[count++], path);
    prev_mtime = mtime;
    offset += size + 2 * (offset & 1);
  }
  if (rnd(4) == 0) field_bytes(body, 12, "descriptor", 10); /* a field of a later minor version */
  *uncompressed = offset + rnd(64);
}

int main(int argc, char **argv) {
  long iterations = argc > 1 ? atol(argv[1]) : 100000;
  state = argc > 2 ? strtoull(argv[2], NULL, 10) | 1 : 88172645463325252ull;
  const char *names[] = {"trusted.overlay.opaque", "user.overlay.opaque"};
  uint32_t lens[] = {22, 19};
  long accepted = 0;
  for (long it = 0; it < iterations; it++) {
    out_t body = {0};
    uint64_t uncompressed;
    random_body(&body, &uncompressed);
    if (rnd(2)) { /* mutate: change bytes, cut, append */
      for (uint32_t m = rnd(8); m > 0 && body.len; m--) body.p[rnd((uint32_t)body.len)] = (uint8_t)rnd(256);
      if (rnd(4) == 0) body.len = rnd((uint32_t)body.len + 1);
      if (rnd(4) == 0) {
        uint8_t junk[16];
        for (int k = 0; k < 16; k++) junk[k] = (uint8_t)rnd(256);
        put(&body, junk, rnd(16));
      }
    }
    uint8_t *exact = malloc(body.len ? body.len : 1); /* exactly sized, so that ASan sees any over-read */
    memcpy(exact, body.p, body.len);
    uint64_t bounds[3] = {0, uncompressed / 2, uncompressed};
    lt_input in = {exact, body.len, {1u << 20, 4096, 255, 1ull << 30}, uncompressed, bounds, 3, names, lens, rnd(3), (int)rnd(2)};
    if (rnd(2)) in.limits = (lt_limits){1 + rnd(40), 1 + rnd(64), 1 + rnd(16), 1 + rnd(600)};
    lt_output out;
    if (lt_build(&in, &out) == LT_OK) {
      accepted++;
      if (in.want_table && (out.table_len < 40 || out.table[0] != 0x43)) {
        fprintf(stderr, "iteration %ld: a table without its header\n", it);
        return 1;
      }
    }
    free(out.table);
    free(exact);
    free(body.p);
  }
  printf("%ld bodies, %ld accepted\n", iterations, accepted);
  return 0;
}
