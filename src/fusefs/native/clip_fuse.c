/*
 * clip_fuse: serves one read-only clip layer through the kernel's FUSE protocol (libfuse3, low-level API),
 * answering every metadata request in C and reading file bytes straight from the content cache when the
 * spans they lie in are known to be verified. Only reads of spans that are not (yet) verified cross into
 * JavaScript, which fetches, checks and caches them and then replies. A request therefore costs one
 * thread hand-off (kernel <-> FUSE thread) instead of three (kernel <-> FUSE thread <-> JS thread).
 *
 *   new LayerServer(table, cacheDir, ttlSeconds, onRead, onExit)
 *     table     the layer as src/archive/native/layer_table.c encodes it (inodes, directory entries, xattrs,
 *               span bounds; format below). Copied; the buffer may be reused afterwards.
 *     cacheDir  directory holding span i's verified bytes in the file named i (src/fusefs/content-cache).
 *     onRead(id, ino, offset, length)   a read of a file (inode ino, at offset in the file, length
 *               bytes, all inside the file) JS must answer with reply(id, bytes) or fail(id, errno).
 *     onExit()  the session loop ended (the mount went away); call destroy() then.
 *   .markReady(i, name)  span i's cache file `<cacheDir>/<name>` (its sha256 in hex: the cache is
 *                    content-addressed) is verified: serve reads of it from that file from now on.
 *   .touchedSpans()  the spans read so far, in the order of their first read (a start-up profile).
 *   .readMap()       which 4096-byte blocks of the layer stream were read so far: a Buffer, bit b of byte
 *                    b >> 3 (least significant first) for block b (the start-up profile's read ranges).
 *   .spanReadTimes() per span, when it was last read (milliseconds of CLOCK_MONOTONIC, the clock of
 *                    Node's process.hrtime; 0 if never), for the content cache's least-recently-used order.
 *                    Kept with a coarse clock (a few ms resolution, no system call) and stored only when it
 *                    changed, so that a cached read costs two relaxed atomic operations more.
 *   .mount(dir, options)   mounts ("-o" option string) and starts the session thread.
 *   .attach(fd, dir)  serves an existing FUSE connection instead (the /dev/fuse fd of a mount on dir that an
 *                    earlier clip process made; see "Taking over a connection" below) through its own copy
 *                    of fd (the caller still owns fd). Returns whether the kernel resent the requests the
 *                    earlier process had read but not answered.
 *   .fd()            the session's /dev/fuse fd (to hand it to the next process).
 *   .setReadTimeout(ms)  before mount/attach: a read passed to JS and not answered within ms is answered
 *                    EIO by the server itself, however busy the JS thread is (see "Read deadlines").
 *   .reply(id, buffer) / .fail(id, errno)
 *   .unmount()       lazily detaches the mount (umount2 MNT_DETACH); the loop keeps serving and ends
 *                    when the last user of the mount has left (or the connection is aborted).
 *   .destroy()       after onExit: joins the thread, answers what is still pending with EIO, frees.
 *
 * Table format (little endian), all offsets into the trailing string pool:
 *   header  u32 magic 0x31544c43 ("CLT1"), u32 inode_count, u32 dirent_count, u32 xattr_count,
 *           u32 span_count, u32 pool_len, u32 flags (bit 0: some inode has xattrs), u32 reserved,
 *           u64 file_bytes
 *   inode   (ino = index + 1; ino 1 is the root) u32 mode, uid, gid, nlink, rdev_major, rdev_minor,
 *           link_off, link_len, first_dirent, dirent_count, first_xattr, xattr_count; u64 size,
 *           data_offset, mtime_ns                                                         (72 bytes)
 *   dirent  u32 ino, name_off, name_len                         (a directory's children in order)
 *   xattr   u32 name_off, name_len, value_off, value_len
 *   spans   span_count + 1 u64 bounds: span i is [bounds[i], bounds[i + 1]) of the layer stream
 *   pool    bytes
 */
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <node_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define TABLE_MAGIC 0x31544c43u
#define HEADER_SIZE 40
#define INODE_SIZE 72
#define DIRENT_SIZE 12
#define XATTR_SIZE 16
#define STAT_BLOCK 4096

#define NAPI_INTERNAL_CODE "CLIP_FUSE_INTERNAL"
#include "napi_call.h"
#include "fuse_stats.h"

/* libfuse's own messages (why a mount failed) are kept for the error thrown to JS, not printed. */
static _Thread_local char last_log[512];

static void capture_log(enum fuse_log_level level, const char *fmt, va_list ap) {
  (void)level;
  vsnprintf(last_log, sizeof(last_log), fmt, ap);
  size_t n = strlen(last_log);
  while (n > 0 && (last_log[n - 1] == '\n' || last_log[n - 1] == ' ')) last_log[--n] = '\0';
}

static void throw_mount_error(napi_env env, const char *what) {
  char msg[768];
  snprintf(msg, sizeof(msg), "%s%s%s", what, last_log[0] ? ": " : "", last_log);
  napi_throw_error(env, "CLIP_FUSE_MOUNT", msg);
}

/* ---- The layer table ------------------------------------------------------------------------------ */

typedef struct {
  uint32_t mode, uid, gid, nlink, rdev_major, rdev_minor, link_off, link_len;
  uint32_t first_dirent, dirent_count, first_xattr, xattr_count;
  uint64_t size, data_offset, mtime_ns;
  uint32_t parent; /* directories: the directory holding it (the root: itself); not in the table */
} inode_t;

typedef struct {
  uint32_t ino, name_off, name_len, parent;
} dirent_t;

typedef struct {
  uint32_t name_off, name_len, value_off, value_len;
} xattr_t;

typedef struct {
  uint32_t inode_count, dirent_count, xattr_count, span_count, pool_len;
  int any_xattrs;
  uint64_t file_bytes;
  inode_t *inodes;
  dirent_t *dirents;
  xattr_t *xattrs;
  uint64_t *bounds;
  char *pool;
  uint32_t *lookup; /* open addressing: dirent index + 1, 0 = empty */
  uint32_t lookup_mask;
} table_t;

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static uint32_t name_hash(uint32_t parent, const char *name, size_t len) {
  uint32_t h = 2166136261u ^ parent;
  for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)name[i]) * 16777619u;
  h ^= h >> 15;
  return h;
}

static void table_free(table_t *t) {
  free(t->inodes);
  free(t->dirents);
  free(t->xattrs);
  free(t->bounds);
  free(t->pool);
  free(t->lookup);
  memset(t, 0, sizeof(*t));
}

/* Parses and checks the table; returns NULL or a message saying what is wrong. */
static const char *table_parse(table_t *t, const uint8_t *b, size_t len) {
  memset(t, 0, sizeof(*t));
  if (len < HEADER_SIZE || rd32(b) != TABLE_MAGIC) return "not a clip layer table";
  t->inode_count = rd32(b + 4);
  t->dirent_count = rd32(b + 8);
  t->xattr_count = rd32(b + 12);
  t->span_count = rd32(b + 16);
  t->pool_len = rd32(b + 20);
  t->any_xattrs = rd32(b + 24) & 1;
  t->file_bytes = rd64(b + 32);
  uint64_t need = HEADER_SIZE + (uint64_t)t->inode_count * INODE_SIZE + (uint64_t)t->dirent_count * DIRENT_SIZE +
                  (uint64_t)t->xattr_count * XATTR_SIZE + ((uint64_t)t->span_count + 1) * 8 + t->pool_len;
  if (need != len) return "table size does not match its header";
  if (t->inode_count == 0) return "table has no root inode";
  t->inodes = calloc(t->inode_count, sizeof(inode_t));
  t->dirents = calloc(t->dirent_count ? t->dirent_count : 1, sizeof(dirent_t));
  t->xattrs = calloc(t->xattr_count ? t->xattr_count : 1, sizeof(xattr_t));
  t->bounds = calloc((size_t)t->span_count + 1, sizeof(uint64_t));
  t->pool = malloc(t->pool_len ? t->pool_len : 1);
  if (!t->inodes || !t->dirents || !t->xattrs || !t->bounds || !t->pool) return "out of memory";
  const uint8_t *p = b + HEADER_SIZE;
  for (uint32_t i = 0; i < t->inode_count; i++, p += INODE_SIZE) {
    inode_t *n = &t->inodes[i];
    uint32_t *f = &n->mode;
    for (int k = 0; k < 12; k++) f[k] = rd32(p + 4 * k);
    n->size = rd64(p + 48);
    n->data_offset = rd64(p + 56);
    n->mtime_ns = rd64(p + 64);
  }
  for (uint32_t i = 0; i < t->dirent_count; i++, p += DIRENT_SIZE) {
    t->dirents[i].ino = rd32(p);
    t->dirents[i].name_off = rd32(p + 4);
    t->dirents[i].name_len = rd32(p + 8);
  }
  for (uint32_t i = 0; i < t->xattr_count; i++, p += XATTR_SIZE) {
    xattr_t *x = &t->xattrs[i];
    x->name_off = rd32(p);
    x->name_len = rd32(p + 4);
    x->value_off = rd32(p + 8);
    x->value_len = rd32(p + 12);
    if ((uint64_t)x->name_off + x->name_len > t->pool_len || (uint64_t)x->value_off + x->value_len > t->pool_len) return "xattr outside the pool";
  }
  for (uint32_t i = 0; i <= t->span_count; i++, p += 8) t->bounds[i] = rd64(p);
  memcpy(t->pool, p, t->pool_len);
  for (uint32_t i = 1; i <= t->span_count; i++) {
    if (t->bounds[i] < t->bounds[i - 1]) return "span bounds decrease";
  }

  uint32_t slots = 16;
  while (slots < 2 * (uint64_t)t->dirent_count + 16) slots <<= 1;
  t->lookup = calloc(slots, sizeof(uint32_t));
  if (!t->lookup) return "out of memory";
  t->lookup_mask = slots - 1;
  t->inodes[0].parent = FUSE_ROOT_ID;
  if (!S_ISDIR(t->inodes[0].mode)) return "the root is not a directory";
  for (uint32_t i = 0; i < t->inode_count; i++) {
    inode_t *n = &t->inodes[i];
    if ((uint64_t)n->first_dirent + n->dirent_count > t->dirent_count) return "directory entries outside the table";
    if ((uint64_t)n->first_xattr + n->xattr_count > t->xattr_count) return "xattrs outside the table";
    if ((uint64_t)n->link_off + n->link_len + 1 > t->pool_len && n->link_len > 0) return "link target outside the pool";
    if (S_ISREG(n->mode) && n->size > 0 && (t->span_count == 0 || n->data_offset + n->size > t->bounds[t->span_count])) return "file data outside the layer";
    for (uint32_t d = n->first_dirent; d < n->first_dirent + n->dirent_count; d++) {
      dirent_t *e = &t->dirents[d];
      if (e->ino == 0 || e->ino > t->inode_count) return "directory entry to a missing inode";
      if ((uint64_t)e->name_off + e->name_len > t->pool_len) return "name outside the pool";
      e->parent = i + 1;
      if (S_ISDIR(t->inodes[e->ino - 1].mode)) t->inodes[e->ino - 1].parent = i + 1;
      uint32_t h = name_hash(e->parent, t->pool + e->name_off, e->name_len) & t->lookup_mask;
      while (t->lookup[h] != 0) h = (h + 1) & t->lookup_mask;
      t->lookup[h] = d + 1;
    }
  }
  return NULL;
}

static const dirent_t *table_lookup(const table_t *t, uint32_t parent, const char *name) {
  size_t len = strlen(name);
  uint32_t h = name_hash(parent, name, len) & t->lookup_mask;
  for (uint32_t slot; (slot = t->lookup[h]) != 0; h = (h + 1) & t->lookup_mask) {
    const dirent_t *e = &t->dirents[slot - 1];
    if (e->parent == parent && e->name_len == len && memcmp(t->pool + e->name_off, name, len) == 0) return e;
  }
  return NULL;
}

static const inode_t *table_inode(const table_t *t, fuse_ino_t ino) {
  return ino >= 1 && ino <= t->inode_count ? &t->inodes[ino - 1] : NULL;
}

static void fill_stat(const inode_t *n, fuse_ino_t ino, struct stat *st) {
  memset(st, 0, sizeof(*st));
  st->st_ino = ino;
  st->st_mode = n->mode;
  st->st_nlink = n->nlink;
  st->st_uid = n->uid;
  st->st_gid = n->gid;
  st->st_rdev = makedev(n->rdev_major, n->rdev_minor);
  st->st_size = (off_t)n->size;
  st->st_blksize = STAT_BLOCK;
  st->st_blocks = (S_ISREG(n->mode) || S_ISDIR(n->mode)) ? (blkcnt_t)((n->size + 511) / 512) : 0;
  st->st_mtim.tv_sec = (time_t)(n->mtime_ns / 1000000000u);
  st->st_mtim.tv_nsec = (long)(n->mtime_ns % 1000000000u);
  st->st_atim = st->st_mtim;
  st->st_ctim = st->st_mtim;
}

/* ---- The server --------------------------------------------------------------------------------- */

typedef struct pending {
  uint32_t id;
  fuse_req_t req;
  uint64_t deadline_ns; /* CLOCK_MONOTONIC; 0 = none */
  uint64_t queued_ns;   /* CLOCK_MONOTONIC when it was passed to JS */
  uint64_t start_ns;    /* stats_start() of the request (0: statistics were off) */
  struct pending *next;
} pending_t;

/* The granularity of readMap() (docs/format.md, startup_ranges). */
#define READ_BLOCK 4096u

/* A span's cache file name: the 64 hex digits of its sha256. */
#define SPAN_NAME_MAX 64

typedef struct {
  table_t table;
  char *cache_dir;
  double ttl;
  atomic_uchar *ready; /* per span: 1 once its cache file is verified */
  char (*names)[SPAN_NAME_MAX + 1]; /* per span: its cache file's name, set before ready */
  atomic_uint *touched; /* per span: when it was first read (1, 2, ...), 0 if never */
  atomic_uint touch_seq;
  atomic_uchar *read_map; /* per READ_BLOCK of the stream, one bit: read */
  size_t read_map_len;
  atomic_ullong *last_read; /* per span: CLOCK_MONOTONIC(_COARSE) ms of its last read, 0 if never */
  /* per span: 1 from markReady until the server first reads its cache file, which is then reported to
     on_cached_read (when set): the read path learns where a reader is that it never sees otherwise */
  atomic_uchar *report_read;
  napi_threadsafe_function on_cached_read;
  /* The layer's start-up bundle (docs/format.md), once verified in the cache: the stream ranges it holds, in
     order, and where each starts in the file; set once by bundleReady before bundle_ready is stored. */
  atomic_int bundle_ready;
  char bundle_name[SPAN_NAME_MAX + 1];
  uint64_t *bundle_ranges; /* start, end, file offset per range */
  uint32_t bundle_count;
  struct fuse_session *se;
  char *mountpoint;
  pthread_t thread;
  int thread_started;
  atomic_int exited;
  int destroyed;
  pthread_mutex_t lock; /* guards pending, next_id, closing */
  pending_t *pending;
  uint32_t next_id;
  int closing;
  napi_threadsafe_function on_read;
  napi_threadsafe_function on_exit;
  /* The read deadline (see "Read deadlines"): guarded by lock, the watchdog waits on wake. */
  uint64_t read_timeout_ns;
  pthread_cond_t wake;
  pthread_t watchdog;
  int watchdog_started;
} server_t;

typedef struct {
  uint32_t id;
  uint32_t ino;
  uint64_t offset; /* in the file */
  uint32_t length;
} read_call_t;

static server_t *server_of(fuse_req_t req) { return (server_t *)fuse_req_userdata(req); }

static void entry_of(server_t *s, fuse_ino_t ino, struct fuse_entry_param *e) {
  memset(e, 0, sizeof(*e));
  e->ino = ino;
  e->generation = 1;
  e->attr_timeout = s->ttl;
  e->entry_timeout = s->ttl;
  fill_stat(table_inode(&s->table, ino), ino, &e->attr);
}

/* The request the session thread is answering (each server has one session thread): its statistics
   start, the errno it was answered with, and whether it was passed to JS (then recorded at its reply). */
static _Thread_local struct {
  uint64_t start;
  int err;
  int deferred;
} current;

static void reply_err(fuse_req_t req, int err) {
  current.err = err;
  fuse_reply_err(req, err);
}

/* timed_NAME: the operation NAME as libfuse calls it, with its statistics recorded. */
#define TIMED(name, op, params, args)  \
  static void timed_##name params {    \
    current.start = stats_start();     \
    current.err = 0;                   \
    current.deferred = 0;              \
    name args;                         \
    if (!current.deferred) stats_record(op, current.start, current.err); \
  }

static void op_init(void *userdata, struct fuse_conn_info *conn) {
  (void)userdata;
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO; /* always hand out attributes with listings */
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  server_t *s = server_of(req);
  const inode_t *dir = table_inode(&s->table, parent);
  if (!dir) return (void)reply_err(req, ENOENT);
  if (!S_ISDIR(dir->mode)) return (void)reply_err(req, ENOTDIR);
  const dirent_t *d = table_lookup(&s->table, (uint32_t)parent, name);
  struct fuse_entry_param e;
  if (!d) {
    /* a negative entry the kernel keeps for the entry timeout: layers never change */
    memset(&e, 0, sizeof(e));
    e.entry_timeout = s->ttl;
    fuse_reply_entry(req, &e);
    return;
  }
  entry_of(s, d->ino, &e);
  fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  server_t *s = server_of(req);
  const inode_t *n = table_inode(&s->table, ino);
  if (!n) return (void)reply_err(req, ENOENT);
  struct stat st;
  fill_stat(n, ino, &st);
  fuse_reply_attr(req, &st, s->ttl);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  server_t *s = server_of(req);
  const inode_t *n = table_inode(&s->table, ino);
  if (!n) return (void)reply_err(req, ENOENT);
  if (!S_ISLNK(n->mode)) return (void)reply_err(req, EINVAL);
  fuse_reply_readlink(req, s->table.pool + n->link_off); /* NUL-terminated in the pool */
}

/* No per-open state: ENOSYS makes the kernel stop sending open/opendir and keep its caches. */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  (void)fi;
  reply_err(req, ENOSYS);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  (void)fi;
  reply_err(req, ENOSYS);
}

static void list_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus) {
  server_t *s = server_of(req);
  const table_t *t = &s->table;
  const inode_t *dir = table_inode(t, ino);
  if (!dir) return (void)reply_err(req, ENOENT);
  if (!S_ISDIR(dir->mode)) return (void)reply_err(req, ENOTDIR);
  char *buf = malloc(size);
  if (!buf) return (void)reply_err(req, ENOMEM);
  size_t used = 0;
  /* positions: 0 ".", 1 "..", 2 + k the k-th child; an entry's offset is the position after it */
  uint64_t total = 2 + (uint64_t)dir->dirent_count;
  fuse_ino_t parent_ino = dir->parent ? dir->parent : FUSE_ROOT_ID;
  for (uint64_t pos = (uint64_t)off; pos < total; pos++) {
    char name[4096];
    fuse_ino_t child;
    if (pos == 0) {
      strcpy(name, ".");
      child = ino;
    } else if (pos == 1) {
      strcpy(name, "..");
      child = parent_ino;
    } else {
      const dirent_t *e = &t->dirents[dir->first_dirent + (pos - 2)];
      size_t n = e->name_len < sizeof(name) - 1 ? e->name_len : sizeof(name) - 1;
      memcpy(name, t->pool + e->name_off, n);
      name[n] = '\0';
      child = e->ino;
    }
    size_t len;
    if (plus) {
      struct fuse_entry_param ep;
      entry_of(s, child, &ep);
      len = fuse_add_direntry_plus(req, buf + used, size - used, name, &ep, (off_t)(pos + 1));
    } else {
      struct stat st;
      fill_stat(table_inode(t, child), child, &st);
      len = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)(pos + 1));
    }
    if (len > size - used) break;
    used += len;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  list_dir(req, ino, size, off, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  list_dir(req, ino, size, off, 1);
}

/* The xattr protocol: size 0 asks for the length; a smaller buffer than the value is ERANGE. */
static void reply_sized(fuse_req_t req, const char *value, size_t len, size_t size) {
  if (size == 0) fuse_reply_xattr(req, len);
  else if (size < len) reply_err(req, ERANGE);
  else fuse_reply_buf(req, value, len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  server_t *s = server_of(req);
  const table_t *t = &s->table;
  /* overlayfs probes every lower file for trusted.overlay.*; a layer without any attribute says
     ENOSYS once and the kernel stops asking this mount */
  if (!t->any_xattrs) return (void)reply_err(req, ENOSYS);
  const inode_t *n = table_inode(t, ino);
  if (!n) return (void)reply_err(req, ENOENT);
  size_t len = strlen(name);
  for (uint32_t i = n->first_xattr; i < n->first_xattr + n->xattr_count; i++) {
    const xattr_t *x = &t->xattrs[i];
    if (x->name_len == len && memcmp(t->pool + x->name_off, name, len) == 0) {
      return reply_sized(req, t->pool + x->value_off, x->value_len, size);
    }
  }
  reply_err(req, ENODATA);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  server_t *s = server_of(req);
  const table_t *t = &s->table;
  const inode_t *n = table_inode(t, ino);
  if (!n) return (void)reply_err(req, ENOENT);
  size_t total = 0;
  for (uint32_t i = n->first_xattr; i < n->first_xattr + n->xattr_count; i++) total += t->xattrs[i].name_len + 1;
  char *list = malloc(total ? total : 1);
  if (!list) return (void)reply_err(req, ENOMEM);
  size_t at = 0;
  for (uint32_t i = n->first_xattr; i < n->first_xattr + n->xattr_count; i++) {
    memcpy(list + at, t->pool + t->xattrs[i].name_off, t->xattrs[i].name_len);
    at += t->xattrs[i].name_len;
    list[at++] = '\0';
  }
  reply_sized(req, list, total, size);
  free(list);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  (void)ino;
  server_t *s = server_of(req);
  struct statvfs sv;
  memset(&sv, 0, sizeof(sv));
  sv.f_bsize = STAT_BLOCK;
  sv.f_frsize = STAT_BLOCK;
  sv.f_blocks = (s->table.file_bytes + STAT_BLOCK - 1) / STAT_BLOCK;
  sv.f_files = s->table.inode_count;
  sv.f_flag = ST_RDONLY;
  sv.f_namemax = 255;
  fuse_reply_statfs(req, &sv);
}

/* The span holding stream offset `at` (bounds[0] <= at < bounds[span_count]). */
static uint32_t span_at(const table_t *t, uint64_t at) {
  uint32_t lo = 0, hi = t->span_count - 1;
  while (lo < hi) {
    uint32_t mid = (lo + hi + 1) / 2;
    if (t->bounds[mid] <= at) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/* Reads exactly `len` bytes at `off` of the cache file `name`; 0 on success, -1 if it is missing or short. */
static int read_cache_file(const server_t *s, const char *name, char *out, size_t len, uint64_t off) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", s->cache_dir, name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t got = 0;
  while (got < len) {
    ssize_t r = pread(fd, out + got, len - got, (off_t)(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  return got == len ? 0 : -1;
}

/* Reads [at, at + len) of the stream, which starts in span `first`, from verified cache files; 0 on
   success. A missing or short file loses its span's ready mark (JS will load it again and check it). */
static int read_cached(server_t *s, uint32_t first, uint64_t at, size_t len, char *out) {
  const table_t *t = &s->table;
  uint64_t end = at + len;
  for (uint32_t i = first; i < t->span_count && t->bounds[i] < end; i++) {
    if (!atomic_load(&s->ready[i])) return -1;
  }
  for (uint32_t i = first; i < t->span_count && t->bounds[i] < end; i++) {
    uint64_t from = at > t->bounds[i] ? at : t->bounds[i];
    uint64_t to = end < t->bounds[i + 1] ? end : t->bounds[i + 1];
    if (read_cache_file(s, s->names[i], out + (from - at), (size_t)(to - from), from - t->bounds[i]) != 0) {
      atomic_store(&s->ready[i], 0);
      return -1;
    }
  }
  return 0;
}

/* Reads [at, at + len) of the stream from the start-up bundle's file when one of its ranges holds all of it;
   0 on success. A missing or short file turns the bundle off (JS then reads spans). */
static int read_bundled(server_t *s, uint64_t at, size_t len, char *out) {
  if (!atomic_load(&s->bundle_ready)) return -1;
  uint32_t lo = 0, hi = s->bundle_count;
  while (lo < hi) { /* the number of ranges starting at or before `at` */
    uint32_t mid = lo + (hi - lo) / 2;
    if (s->bundle_ranges[3 * mid] <= at) lo = mid + 1;
    else hi = mid;
  }
  if (lo == 0) return -1;
  const uint64_t *r = &s->bundle_ranges[3 * (lo - 1)]; /* the last of them */
  if (at + len > r[1]) return -1;
  if (read_cache_file(s, s->bundle_name, out, len, r[2] + (at - r[0])) != 0) {
    atomic_store(&s->bundle_ready, 0);
    return -1;
  }
  return 0;
}

/* Milliseconds of CLOCK_MONOTONIC at the coarse clock's resolution (read from the vDSO, no system call). */
static unsigned long long coarse_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (unsigned long long)ts.tv_sec * 1000u + (unsigned long long)ts.tv_nsec / 1000000u;
}

/* Notes the spans [at, at + len) touches (from span `first`): when each was last read, and those never read
   before in order of first read. */
static void note_touched(server_t *s, uint32_t first, uint64_t at, size_t len) {
  const table_t *t = &s->table;
  unsigned long long now = coarse_now_ms();
  for (uint32_t i = first; i < t->span_count && t->bounds[i] < at + len; i++) {
    if (atomic_load_explicit(&s->last_read[i], memory_order_relaxed) != now) atomic_store_explicit(&s->last_read[i], now, memory_order_relaxed);
    unsigned int never = 0;
    if (atomic_load(&s->touched[i]) == 0) atomic_compare_exchange_strong(&s->touched[i], &never, atomic_fetch_add(&s->touch_seq, 1) + 1);
  }
}

/* Reports the spans [at, at + len) touches (from span `first`) whose cache files are read for the first
   time since they were marked ready; called only for reads answered from those files. */
static void report_cached_reads(server_t *s, uint32_t first, uint64_t at, size_t len) {
  if (!s->on_cached_read) return;
  const table_t *t = &s->table;
  for (uint32_t i = first; i < t->span_count && t->bounds[i] < at + len; i++) {
    if (atomic_load(&s->report_read[i]) && atomic_exchange(&s->report_read[i], 0)) {
      napi_call_threadsafe_function(s->on_cached_read, (void *)(uintptr_t)i, napi_tsfn_nonblocking);
    }
  }
}

/* Marks the blocks of [at, at + len) (len > 0) as read. */
static void note_read(server_t *s, uint64_t at, size_t len) {
  for (uint64_t b = at / READ_BLOCK, last = (at + len - 1) / READ_BLOCK; b <= last && (b >> 3) < s->read_map_len; b++) {
    atomic_uchar *byte = &s->read_map[b >> 3];
    unsigned char bit = (unsigned char)(1u << (b & 7));
    if (!(atomic_load(byte) & bit)) atomic_fetch_or(byte, bit);
  }
}

/* ---- Read deadlines ----------------------------------------------------------------------------------
 * A read passed up to JavaScript must be answered within the read timeout even when the JS thread is busy
 * (a long synchronous task, a stalled event loop), so the deadline is kept here: a watchdog thread answers
 * EIO to every pending read past its deadline and forgets it. A late reply or fail from JS then finds no
 * pending request with its id and is dropped, so no request is answered twice.
 */
static void *watchdog_thread(void *arg) {
  server_t *s = arg;
  pthread_mutex_lock(&s->lock);
  while (!s->closing) {
    uint64_t now = monotonic_ns(), next = 0;
    pending_t *expired = NULL;
    for (pending_t **pp = &s->pending; *pp;) {
      pending_t *p = *pp;
      if (p->deadline_ns && p->deadline_ns <= now) {
        *pp = p->next;
        p->next = expired;
        expired = p;
        continue;
      }
      if (p->deadline_ns && (next == 0 || p->deadline_ns < next)) next = p->deadline_ns;
      pp = &p->next;
    }
    if (expired) {
      pthread_mutex_unlock(&s->lock);
      while (expired) {
        pending_t *p = expired;
        expired = p->next;
        stats_record(OP_READ, p->start_ns, EIO);
        fuse_reply_err(p->req, EIO);
        free(p);
      }
      pthread_mutex_lock(&s->lock);
      continue;
    }
    if (next == 0) {
      pthread_cond_wait(&s->wake, &s->lock);
    } else {
      struct timespec until = {(time_t)(next / 1000000000u), (long)(next % 1000000000u)};
      pthread_cond_timedwait(&s->wake, &s->lock, &until);
    }
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  server_t *s = server_of(req);
  const inode_t *n = table_inode(&s->table, ino);
  if (!n) return (void)reply_err(req, ENOENT);
  if (!S_ISREG(n->mode)) return (void)reply_err(req, S_ISDIR(n->mode) ? EISDIR : EINVAL);
  if (off < 0 || (uint64_t)off >= n->size || size == 0) return (void)fuse_reply_buf(req, NULL, 0);
  size_t len = (uint64_t)off + size > n->size ? (size_t)(n->size - (uint64_t)off) : size;
  uint64_t at = n->data_offset + (uint64_t)off;
  /* a non-empty file lies inside the stream, so the layer has spans (checked when the table was parsed) */
  uint32_t first = span_at(&s->table, at);
  note_touched(s, first, at, len);
  note_read(s, at, len);
  char *buf = malloc(len);
  if (!buf) return (void)reply_err(req, ENOMEM);
  if (read_cached(s, first, at, len, buf) == 0) {
    stats_cache_hit();
    report_cached_reads(s, first, at, len);
    fuse_reply_buf(req, buf, len);
    free(buf);
    return;
  }
  if (read_bundled(s, at, len, buf) == 0) {
    stats_cache_hit();
    fuse_reply_buf(req, buf, len);
    free(buf);
    return;
  }
  free(buf);
  pending_t *p = malloc(sizeof(*p));
  read_call_t *call = malloc(sizeof(*call));
  if (!p || !call) {
    free(p);
    free(call);
    return (void)reply_err(req, ENOMEM);
  }
  pthread_mutex_lock(&s->lock);
  if (s->closing) {
    pthread_mutex_unlock(&s->lock);
    free(p);
    free(call);
    return (void)reply_err(req, EIO);
  }
  p->id = ++s->next_id;
  p->req = req;
  p->queued_ns = monotonic_ns();
  p->start_ns = current.start;
  p->deadline_ns = s->read_timeout_ns ? p->queued_ns + s->read_timeout_ns : 0;
  current.deferred = 1; /* recorded when it is answered */
  p->next = s->pending;
  s->pending = p;
  if (p->deadline_ns) pthread_cond_signal(&s->wake);
  pthread_mutex_unlock(&s->lock);
  call->id = p->id;
  call->ino = (uint32_t)ino;
  call->offset = (uint64_t)off;
  call->length = (uint32_t)len;
  if (napi_call_threadsafe_function(s->on_read, call, napi_tsfn_nonblocking) != napi_ok) {
    free(call);
    /* the JS side is gone: answer it here */
    pthread_mutex_lock(&s->lock);
    pending_t **pp = &s->pending;
    while (*pp && *pp != p) pp = &(*pp)->next;
    int ours = *pp != NULL; /* else the watchdog has answered it already */
    if (ours) *pp = p->next;
    pthread_mutex_unlock(&s->lock);
    if (ours) {
      free(p);
      current.deferred = 0;
      reply_err(req, EIO);
    }
  }
}

TIMED(op_lookup, OP_LOOKUP, (fuse_req_t req, fuse_ino_t parent, const char *name), (req, parent, name))
TIMED(op_getattr, OP_GETATTR, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi), (req, ino, fi))
TIMED(op_readlink, OP_READLINK, (fuse_req_t req, fuse_ino_t ino), (req, ino))
TIMED(op_open, OP_OPEN, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi), (req, ino, fi))
TIMED(op_read, OP_READ, (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi), (req, ino, size, off, fi))
TIMED(op_opendir, OP_OPENDIR, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi), (req, ino, fi))
TIMED(op_readdir, OP_READDIR, (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi), (req, ino, size, off, fi))
TIMED(op_readdirplus, OP_READDIRPLUS, (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi), (req, ino, size, off, fi))
TIMED(op_getxattr, OP_GETXATTR, (fuse_req_t req, fuse_ino_t ino, const char *name, size_t size), (req, ino, name, size))
TIMED(op_listxattr, OP_LISTXATTR, (fuse_req_t req, fuse_ino_t ino, size_t size), (req, ino, size))
TIMED(op_statfs, OP_STATFS, (fuse_req_t req, fuse_ino_t ino), (req, ino))

static const struct fuse_lowlevel_ops OPS = {
    .init = op_init,
    .lookup = timed_op_lookup,
    .getattr = timed_op_getattr,
    .readlink = timed_op_readlink,
    .open = timed_op_open,
    .read = timed_op_read,
    .opendir = timed_op_opendir,
    .readdir = timed_op_readdir,
    .readdirplus = timed_op_readdirplus,
    .getxattr = timed_op_getxattr,
    .listxattr = timed_op_listxattr,
    .statfs = timed_op_statfs,
};

/* Removes and returns the pending request with this id, or NULL. */
static pending_t *take_pending(server_t *s, uint32_t id) {
  pthread_mutex_lock(&s->lock);
  pending_t **pp = &s->pending;
  while (*pp && (*pp)->id != id) pp = &(*pp)->next;
  pending_t *p = *pp;
  if (p) *pp = p->next;
  pthread_mutex_unlock(&s->lock);
  return p;
}

static void *session_thread(void *arg) {
  server_t *s = arg;
  fuse_session_loop(s->se);
  atomic_store(&s->exited, 1);
  napi_call_threadsafe_function(s->on_exit, NULL, napi_tsfn_nonblocking);
  return NULL;
}

/* ---- JavaScript side ------------------------------------------------------------------------------- */

static void call_on_read(napi_env env, napi_value fn, void *context, void *data) {
  (void)context;
  read_call_t *call = data;
  if (env && fn) {
    napi_value args[4], undefined;
    napi_create_uint32(env, call->id, &args[0]);
    napi_create_uint32(env, call->ino, &args[1]);
    napi_create_double(env, (double)call->offset, &args[2]);
    napi_create_uint32(env, call->length, &args[3]);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, fn, 4, args, NULL);
  }
  free(call);
}

static void call_on_cached_read(napi_env env, napi_value fn, void *context, void *data) {
  (void)context;
  if (env && fn) {
    napi_value arg, undefined;
    napi_create_uint32(env, (uint32_t)(uintptr_t)data, &arg);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, fn, 1, &arg, NULL);
  }
}

static void call_on_exit(napi_env env, napi_value fn, void *context, void *data) {
  (void)context;
  (void)data;
  if (env && fn) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, fn, 0, NULL, NULL);
  }
}

static void server_release(server_t *s) {
  table_free(&s->table);
  free(s->cache_dir);
  free(s->mountpoint);
  free(s->ready);
  free(s->names);
  free(s->touched);
  free(s->read_map);
  free(s->last_read);
  free(s->report_read);
  free(s->bundle_ranges);
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->wake);
  free(s);
}

static void server_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  server_t *s = data;
  /* Still mounted when collected: leave it (the thread uses it); otherwise free. */
  if (s->thread_started && !s->destroyed) return;
  server_release(s);
}

static server_t *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  void *data = NULL;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok || napi_unwrap(env, self, &data) != napi_ok) {
    throw_last_error(env);
    return NULL;
  }
  return data;
}

static napi_value server_new(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], self;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  if (argc < 5) {
    napi_throw_type_error(env, NULL, "LayerServer(table, cacheDir, ttlSeconds, onRead, onExit)");
    return NULL;
  }
  void *bytes = NULL;
  size_t len = 0;
  NAPI_CALL(env, napi_get_buffer_info(env, argv[0], &bytes, &len));
  server_t *s = calloc(1, sizeof(*s));
  if (!s) {
    napi_throw_error(env, "CLIP_FUSE_INTERNAL", "out of memory");
    return NULL;
  }
  pthread_mutex_init(&s->lock, NULL);
  pthread_condattr_t cattr;
  pthread_condattr_init(&cattr);
  pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
  pthread_cond_init(&s->wake, &cattr);
  pthread_condattr_destroy(&cattr);
  const char *bad = table_parse(&s->table, bytes, len);
  if (bad) {
    server_release(s);
    napi_throw_error(env, "CLIP_FUSE_BAD_TABLE", bad);
    return NULL;
  }
  s->cache_dir = string_arg(env, argv[1]);
  NAPI_CALL(env, napi_get_value_double(env, argv[2], &s->ttl));
  s->ready = calloc(s->table.span_count ? s->table.span_count : 1, sizeof(atomic_uchar));
  s->names = calloc(s->table.span_count ? s->table.span_count : 1, sizeof(*s->names));
  s->touched = calloc(s->table.span_count ? s->table.span_count : 1, sizeof(atomic_uint));
  /* the stream ends where the last span does; one bit per block */
  uint64_t stream = s->table.span_count ? s->table.bounds[s->table.span_count] : 0;
  s->read_map_len = (size_t)((stream + READ_BLOCK * 8 - 1) / (READ_BLOCK * 8));
  s->read_map = calloc(s->read_map_len ? s->read_map_len : 1, 1);
  s->last_read = calloc(s->table.span_count ? s->table.span_count : 1, sizeof(atomic_ullong));
  s->report_read = calloc(s->table.span_count ? s->table.span_count : 1, sizeof(atomic_uchar));
  if (!s->cache_dir || !s->ready || !s->names || !s->touched || !s->read_map || !s->last_read || !s->report_read) {
    server_release(s);
    napi_throw_error(env, "CLIP_FUSE_INTERNAL", "out of memory");
    return NULL;
  }
  napi_value name;
  NAPI_CALL(env, napi_create_string_utf8(env, "clip_fuse", NAPI_AUTO_LENGTH, &name));
  NAPI_CALL(env, napi_create_threadsafe_function(env, argv[3], NULL, name, 0, 1, NULL, NULL, NULL, call_on_read, &s->on_read));
  NAPI_CALL(env, napi_create_threadsafe_function(env, argv[4], NULL, name, 0, 1, NULL, NULL, NULL, call_on_exit, &s->on_exit));
  /* the mount itself does not keep the process alive; whoever mounted decides that */
  napi_unref_threadsafe_function(env, s->on_read);
  napi_unref_threadsafe_function(env, s->on_exit);
  NAPI_CALL(env, napi_wrap(env, self, s, server_finalize, NULL, NULL));
  return self;
}

static napi_value server_mark_ready(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  server_t *s = unwrap(env, info, &argc, argv);
  if (!s) return NULL;
  uint32_t i = 0;
  NAPI_CALL(env, napi_get_value_uint32(env, argv[0], &i));
  char name[SPAN_NAME_MAX + 2];
  size_t len = 0;
  NAPI_CALL(env, napi_get_value_string_utf8(env, argv[1], name, sizeof(name), &len));
  if (len == 0 || len > SPAN_NAME_MAX || strspn(name, "0123456789abcdef") != len) {
    napi_throw_error(env, "CLIP_FUSE_INVALID", "markReady: the span's file name must be 1-64 lowercase hex digits");
    return NULL;
  }
  if (i >= s->table.span_count) return NULL;
  /* A span's name never changes once set (it is the span's digest); the reader thread reads it only after
     seeing ready = 1, which is stored after the name (sequentially consistent atomics). */
  if (atomic_load(&s->ready[i]) && strcmp(s->names[i], name) == 0) return NULL;
  atomic_store(&s->ready[i], 0);
  memcpy(s->names[i], name, len + 1);
  atomic_store(&s->report_read[i], 1);
  atomic_store(&s->ready[i], 1);
  return NULL;
}

/* bundleReady(fileName, ranges): the start-up bundle is verified in the cache as <cacheDir>/<fileName>, holding
   the stream ranges [ranges[2k], ranges[2k + 1]) (a Float64Array, in increasing order, inside the stream)
   one after another; reads inside one range are answered from it from now on. Once. */
static napi_value server_bundle_ready(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  server_t *s = unwrap(env, info, &argc, argv);
  if (!s) return NULL;
  char name[SPAN_NAME_MAX + 2];
  size_t len = 0;
  NAPI_CALL(env, napi_get_value_string_utf8(env, argv[0], name, sizeof(name), &len));
  napi_typedarray_type type;
  size_t count = 0;
  void *data = NULL;
  if (argc < 2 || napi_get_typedarray_info(env, argv[1], &type, &count, &data, NULL, NULL) != napi_ok || type != napi_float64_array) {
    napi_throw_type_error(env, NULL, "bundleReady(fileName, ranges: Float64Array)");
    return NULL;
  }
  if (len == 0 || len > SPAN_NAME_MAX || strspn(name, "0123456789abcdef") != len) {
    napi_throw_error(env, "CLIP_FUSE_INVALID", "bundleReady: the file name must be 1-64 lowercase hex digits");
    return NULL;
  }
  if (s->bundle_ranges) {
    napi_throw_error(env, "CLIP_FUSE_STATE", "bundleReady: once per server");
    return NULL;
  }
  const double *v = data;
  double stream = (double)(s->table.span_count ? s->table.bounds[s->table.span_count] : 0);
  if (count % 2 || count / 2 > UINT32_MAX) {
    napi_throw_error(env, "CLIP_FUSE_INVALID", "bundleReady: ranges come in (start, end) pairs");
    return NULL;
  }
  /* starts in increasing order (the lookup searches them) */
  for (size_t k = 0; k < count; k += 2) {
    if (!(v[k] >= 0 && v[k + 1] > v[k] && v[k + 1] <= stream && (k == 0 || v[k] >= v[k - 2]))) {
      napi_throw_error(env, "CLIP_FUSE_INVALID", "bundleReady: ranges must be non-empty, in increasing order and inside the stream");
      return NULL;
    }
  }
  uint64_t *ranges = malloc((count / 2 ? count / 2 : 1) * 3 * sizeof(uint64_t));
  if (!ranges) {
    napi_throw_error(env, "CLIP_FUSE_INTERNAL", "out of memory");
    return NULL;
  }
  uint64_t at = 0;
  for (size_t k = 0; k < count / 2; k++) {
    ranges[3 * k] = (uint64_t)v[2 * k];
    ranges[3 * k + 1] = (uint64_t)v[2 * k + 1];
    ranges[3 * k + 2] = at;
    at += ranges[3 * k + 1] - ranges[3 * k];
  }
  memcpy(s->bundle_name, name, len + 1);
  s->bundle_count = (uint32_t)(count / 2);
  s->bundle_ranges = ranges;
  atomic_store(&s->bundle_ready, 1);
  return NULL;
}

/* Before mount/attach: fn(span) is called once for the first read answered from each span's cache file
   after markReady (reads passed up to JavaScript are not reported: JS sees them). */
static napi_value server_on_cached_read(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  server_t *s = unwrap(env, info, &argc, argv);
  if (!s) return NULL;
  if (argc < 1 || s->on_cached_read || s->thread_started) {
    napi_throw_error(env, "CLIP_FUSE_STATE", "onCachedRead(fn): once, before mount or attach");
    return NULL;
  }
  napi_value name;
  NAPI_CALL(env, napi_create_string_utf8(env, "clip_fuse_cached_read", NAPI_AUTO_LENGTH, &name));
  NAPI_CALL(env, napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, NULL, call_on_cached_read, &s->on_cached_read));
  napi_unref_threadsafe_function(env, s->on_cached_read);
  return NULL;
}

/* A copy of the read map (see readMap above). */
static napi_value server_read_map(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  server_t *s = unwrap(env, info, &argc, NULL);
  if (!s) return NULL;
  void *data = NULL;
  napi_value out;
  NAPI_CALL(env, napi_create_buffer(env, s->read_map_len, &data, &out));
  for (size_t i = 0; i < s->read_map_len; i++) ((unsigned char *)data)[i] = atomic_load(&s->read_map[i]);
  return out;
}

/* Per span, when it was last read (ms of CLOCK_MONOTONIC; 0 if never), as a Float64Array. */
static napi_value server_span_read_times(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  server_t *s = unwrap(env, info, &argc, NULL);
  if (!s) return NULL;
  uint32_t n = s->table.span_count;
  void *data = NULL;
  napi_value buffer, out;
  NAPI_CALL(env, napi_create_arraybuffer(env, (size_t)n * sizeof(double), &data, &buffer));
  double *times = data;
  for (uint32_t i = 0; i < n; i++) times[i] = (double)atomic_load_explicit(&s->last_read[i], memory_order_relaxed);
  NAPI_CALL(env, napi_create_typedarray(env, napi_float64_array, n, buffer, 0, &out));
  return out;
}

typedef struct {
  unsigned int seq;
  uint32_t span;
} touch_t;

static int by_seq(const void *a, const void *b) {
  unsigned int x = ((const touch_t *)a)->seq, y = ((const touch_t *)b)->seq;
  return x < y ? -1 : x > y;
}

/* The spans read so far, in the order they were first read. */
static napi_value server_touched_spans(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  server_t *s = unwrap(env, info, &argc, NULL);
  if (!s) return NULL;
  touch_t *list = malloc(sizeof(touch_t) * (s->table.span_count ? s->table.span_count : 1));
  if (!list) {
    napi_throw_error(env, "CLIP_FUSE_INTERNAL", "out of memory");
    return NULL;
  }
  uint32_t n = 0;
  for (uint32_t i = 0; i < s->table.span_count; i++) {
    unsigned int seq = atomic_load(&s->touched[i]);
    if (seq != 0) list[n++] = (touch_t){seq, i};
  }
  qsort(list, n, sizeof(touch_t), by_seq);
  napi_value out, v;
  if (napi_create_array_with_length(env, n, &out) != napi_ok) {
    free(list);
    throw_last_error(env);
    return NULL;
  }
  for (uint32_t k = 0; k < n; k++) {
    napi_create_uint32(env, list[k].span, &v);
    napi_set_element(env, out, k, v);
  }
  free(list);
  return out;
}

static int start_thread(napi_env env, server_t *s);

static napi_value server_mount(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  server_t *s = unwrap(env, info, &argc, argv);
  if (!s) return NULL;
  if (s->se || s->destroyed) {
    napi_throw_error(env, "CLIP_FUSE_STATE", "already mounted once");
    return NULL;
  }
  char *dir = string_arg(env, argv[0]);
  char *opts = string_arg(env, argv[1]);
  if (!dir || !opts) {
    free(dir);
    free(opts);
    napi_throw_error(env, "CLIP_FUSE_INTERNAL", "out of memory");
    return NULL;
  }
  char *args_v[] = {"clip", "-o", opts, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(3, args_v);
  last_log[0] = '\0';
  s->se = fuse_session_new(&args, &OPS, sizeof(OPS), s);
  free(opts);
  fuse_opt_free_args(&args);
  if (!s->se) {
    free(dir);
    throw_mount_error(env, "fuse_session_new failed");
    return NULL;
  }
  if (fuse_session_mount(s->se, dir) != 0) {
    fuse_session_destroy(s->se);
    s->se = NULL;
    free(dir);
    throw_mount_error(env, "fuse_session_mount failed");
    return NULL;
  }
  s->mountpoint = dir;
  if (start_thread(env, s) != 0) {
    fuse_session_unmount(s->se);
    fuse_session_destroy(s->se);
    s->se = NULL;
    napi_throw_error(env, "CLIP_FUSE_MOUNT", "cannot start the session thread");
    return NULL;
  }
  return NULL;
}

/* ---- Taking over a connection -------------------------------------------------------------------------
 * A FUSE connection outlives the process that mounted it as long as some process holds its /dev/fuse fd
 * (clip hands it to systemd's fd store or to clip-fd-holder). A new process serves it like this:
 * - The kernel sent INIT once, to the first process. libfuse refuses every request of a session that has
 *   not seen INIT, so the new session is given one made here (the protocol version of libfuse's headers;
 *   the kernel's choices were made at the first INIT and do not change). libfuse answers it; the kernel
 *   finds no request with that id (unique 1: real ids are even) and drops the answer with ENOENT, which
 *   libfuse ignores.
 * - Requests the dead process had read but not answered sit in the kernel's "processing" list. Linux 6.9
 *   and later move them back to the pending queue on FUSE_NOTIFY_RESEND, so they are read again here and
 *   their callers never notice. Older kernels reject the notification (EINVAL): those requests are never
 *   answered and their callers wait until killed; every later request is served.
 * Node IDs are the table's inode numbers, the same in every process that builds the table from the same
 * archive, so the kernel's dentries and inodes stay valid; no request carries per-open state (open and
 * opendir answer ENOSYS).
 */
#define CLIP_FUSE_NOTIFY_RESEND 7 /* FUSE_NOTIFY_RESEND in Linux 6.9's include/uapi/linux/fuse.h */
#define CLIP_FUSE_TAKEOVER_UNIQUE 1

static void replay_init(struct fuse_session *se) {
  struct {
    struct fuse_in_header h;
    struct fuse_init_in a;
  } msg;
  memset(&msg, 0, sizeof(msg));
  msg.h.len = sizeof(msg);
  msg.h.opcode = FUSE_INIT;
  msg.h.unique = CLIP_FUSE_TAKEOVER_UNIQUE;
  msg.a.major = FUSE_KERNEL_VERSION;
  msg.a.minor = FUSE_KERNEL_MINOR_VERSION;
  msg.a.max_readahead = 1 << 20;
  msg.a.flags = FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_CACHE_SYMLINKS | FUSE_MAX_PAGES |
                FUSE_BIG_WRITES | FUSE_PARALLEL_DIROPS;
  struct fuse_buf buf;
  memset(&buf, 0, sizeof(buf));
  buf.size = sizeof(msg);
  buf.mem = &msg;
  fuse_session_process_buf(se, &buf);
}

/* Asks the kernel to queue again what an earlier server read but did not answer; 0 or an errno. */
static int resend_unanswered(int fd) {
  struct fuse_out_header h = {.len = sizeof(h), .error = CLIP_FUSE_NOTIFY_RESEND, .unique = 0};
  ssize_t r;
  while ((r = write(fd, &h, sizeof(h))) < 0 && errno == EINTR) {
  }
  return r == (ssize_t)sizeof(h) ? 0 : errno;
}

static int start_thread(napi_env env, server_t *s) {
  /* children of the daemon (mount helpers, shims) must not inherit the FUSE connection */
  int fd = fuse_session_fd(s->se);
  fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
  if (pthread_create(&s->thread, NULL, session_thread, s) != 0) return -1;
  s->thread_started = 1;
  if (s->read_timeout_ns && pthread_create(&s->watchdog, NULL, watchdog_thread, s) == 0) s->watchdog_started = 1;
  /* a mounted layer keeps the process alive, as any open server does, until it is unmounted */
  napi_ref_threadsafe_function(env, s->on_exit);
  return 0;
}

static napi_value server_attach(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  server_t *s = unwrap(env, info, &argc, argv);
  if (!s) return NULL;
  if (s->se || s->destroyed) {
    napi_throw_error(env, "CLIP_FUSE_STATE", "already mounted once");
    return NULL;
  }
  int32_t fd = -1;
  NAPI_CALL(env, napi_get_value_int32(env, argv[0], &fd));
  char *dir = string_arg(env, argv[1]);
  if (!dir) {
    napi_throw_error(env, "CLIP_FUSE_INTERNAL", "out of memory");
    return NULL;
  }
  /* the session serves (and at the end closes) its own copy; the caller keeps fd */
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (own < 0) {
    free(dir);
    char msg[128];
    snprintf(msg, sizeof(msg), "fd %d: %s", (int)fd, strerror(errno));
    napi_throw_error(env, "CLIP_FUSE_MOUNT", msg);
    return NULL;
  }
  char fd_path[32];
  snprintf(fd_path, sizeof(fd_path), "/dev/fd/%d", own);
  char *args_v[] = {"clip", NULL};
  struct fuse_args args = FUSE_ARGS_INIT(1, args_v);
  last_log[0] = '\0';
  s->se = fuse_session_new(&args, &OPS, sizeof(OPS), s);
  fuse_opt_free_args(&args);
  if (!s->se || fuse_session_mount(s->se, fd_path) != 0) {
    if (s->se) fuse_session_destroy(s->se);
    close(own);
    s->se = NULL;
    free(dir);
    throw_mount_error(env, "cannot take over the FUSE connection");
    return NULL;
  }
  s->mountpoint = dir;
  replay_init(s->se);
  int resend = resend_unanswered(own);
  if (start_thread(env, s) != 0) {
    fuse_session_destroy(s->se); /* closes own */
    s->se = NULL;
    napi_throw_error(env, "CLIP_FUSE_MOUNT", "cannot start the session thread");
    return NULL;
  }
  napi_value out;
  NAPI_CALL(env, napi_get_boolean(env, resend == 0, &out));
  return out;
}

/* The server of a method called with one argument, a number of milliseconds (<= 0: 0), as nanoseconds. */
static server_t *unwrap_ms(napi_env env, napi_callback_info info, uint64_t *ns) {
  size_t argc = 1;
  napi_value argv[1];
  server_t *s = unwrap(env, info, &argc, argv);
  double ms = 0;
  if (!s || napi_get_value_double(env, argv[0], &ms) != napi_ok) {
    throw_last_error(env);
    return NULL;
  }
  *ns = ms > 0 ? (uint64_t)(ms * 1e6) : 0;
  return s;
}

/* Sets the read deadline (milliseconds, 0 = none) before mount or attach. */
static napi_value server_set_read_timeout(napi_env env, napi_callback_info info) {
  uint64_t ns = 0;
  server_t *s = unwrap_ms(env, info, &ns);
  if (!s) return NULL;
  if (s->thread_started) {
    napi_throw_error(env, "CLIP_FUSE_STATE", "set the read timeout before mounting");
    return NULL;
  }
  s->read_timeout_ns = ns;
  return NULL;
}

/* How many reads passed to JS have waited longer than `ms` milliseconds for their answer (hung IO). */
static napi_value server_waiting_reads(napi_env env, napi_callback_info info) {
  uint64_t limit = 0;
  server_t *s = unwrap_ms(env, info, &limit);
  if (!s) return NULL;
  uint64_t now = monotonic_ns();
  uint32_t n = 0;
  pthread_mutex_lock(&s->lock);
  for (pending_t *p = s->pending; p; p = p->next) {
    if (now - p->queued_ns > limit) n++;
  }
  pthread_mutex_unlock(&s->lock);
  napi_value out;
  NAPI_CALL(env, napi_create_uint32(env, n, &out));
  return out;
}

static napi_value server_fd(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  server_t *s = unwrap(env, info, &argc, NULL);
  if (!s) return NULL;
  napi_value out;
  NAPI_CALL(env, napi_create_int32(env, s->se ? fuse_session_fd(s->se) : -1, &out));
  return out;
}

static napi_value server_reply(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  server_t *s = unwrap(env, info, &argc, argv);
  if (!s) return NULL;
  uint32_t id = 0;
  void *bytes = NULL;
  size_t len = 0;
  NAPI_CALL(env, napi_get_value_uint32(env, argv[0], &id));
  NAPI_CALL(env, napi_get_buffer_info(env, argv[1], &bytes, &len));
  pending_t *p = take_pending(s, id);
  if (p) {
    stats_record(OP_READ, p->start_ns, 0);
    fuse_reply_buf(p->req, bytes, len);
    free(p);
  }
  return NULL;
}

static napi_value server_fail(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  server_t *s = unwrap(env, info, &argc, argv);
  if (!s) return NULL;
  uint32_t id = 0, err = EIO;
  NAPI_CALL(env, napi_get_value_uint32(env, argv[0], &id));
  NAPI_CALL(env, napi_get_value_uint32(env, argv[1], &err));
  pending_t *p = take_pending(s, id);
  if (p) {
    stats_record(OP_READ, p->start_ns, (int)err);
    fuse_reply_err(p->req, (int)err);
    free(p);
  }
  return NULL;
}

static napi_value server_unmount(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  server_t *s = unwrap(env, info, &argc, NULL);
  if (!s) return NULL;
  if (!s->se || atomic_load(&s->exited)) return NULL;
  napi_unref_threadsafe_function(env, s->on_exit);
  /* Detach. The loop goes on serving whoever still uses the mount (an overlay of a running container)
     and ends by itself when the kernel drops the connection, after the last user has left. */
  if (umount2(s->mountpoint, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    char msg[256];
    snprintf(msg, sizeof(msg), "umount %s: %s", s->mountpoint, strerror(errno));
    napi_throw_error(env, "CLIP_FUSE_UNMOUNT", msg);
  }
  return NULL;
}

static napi_value server_destroy(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  server_t *s = unwrap(env, info, &argc, NULL);
  if (!s) return NULL;
  if (s->destroyed) return NULL;
  if (s->thread_started && !atomic_load(&s->exited)) {
    napi_throw_error(env, "CLIP_FUSE_STATE", "the session is still running: unmount first and wait for onExit");
    return NULL;
  }
  if (s->thread_started) pthread_join(s->thread, NULL);
  pthread_mutex_lock(&s->lock);
  s->closing = 1;
  pending_t *p = s->pending;
  s->pending = NULL;
  pthread_cond_broadcast(&s->wake);
  pthread_mutex_unlock(&s->lock);
  if (s->watchdog_started) pthread_join(s->watchdog, NULL);
  while (p) {
    pending_t *next = p->next;
    stats_record(OP_READ, p->start_ns, EIO);
    fuse_reply_err(p->req, EIO);
    free(p);
    p = next;
  }
  if (s->se) fuse_session_destroy(s->se);
  s->se = NULL;
  s->destroyed = 1;
  napi_release_threadsafe_function(s->on_read, napi_tsfn_release);
  napi_release_threadsafe_function(s->on_exit, napi_tsfn_release);
  if (s->on_cached_read) napi_release_threadsafe_function(s->on_cached_read, napi_tsfn_release);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  fuse_set_log_func(capture_log);
  napi_property_descriptor methods[] = {
      {"markReady", NULL, server_mark_ready, NULL, NULL, NULL, napi_default, NULL},
      {"onCachedRead", NULL, server_on_cached_read, NULL, NULL, NULL, napi_default, NULL},
      {"bundleReady", NULL, server_bundle_ready, NULL, NULL, NULL, napi_default, NULL},
      {"touchedSpans", NULL, server_touched_spans, NULL, NULL, NULL, napi_default, NULL},
      {"readMap", NULL, server_read_map, NULL, NULL, NULL, napi_default, NULL},
      {"spanReadTimes", NULL, server_span_read_times, NULL, NULL, NULL, napi_default, NULL},
      {"mount", NULL, server_mount, NULL, NULL, NULL, napi_default, NULL},
      {"attach", NULL, server_attach, NULL, NULL, NULL, napi_default, NULL},
      {"fd", NULL, server_fd, NULL, NULL, NULL, napi_default, NULL},
      {"waitingReads", NULL, server_waiting_reads, NULL, NULL, NULL, napi_default, NULL},
      {"setReadTimeout", NULL, server_set_read_timeout, NULL, NULL, NULL, napi_default, NULL},
      {"reply", NULL, server_reply, NULL, NULL, NULL, napi_default, NULL},
      {"fail", NULL, server_fail, NULL, NULL, NULL, napi_default, NULL},
      {"unmount", NULL, server_unmount, NULL, NULL, NULL, napi_default, NULL},
      {"destroy", NULL, server_destroy, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value cls;
  NAPI_CALL(env, napi_define_class(env, "LayerServer", NAPI_AUTO_LENGTH, server_new, NULL, sizeof(methods) / sizeof(methods[0]), methods, &cls));
  NAPI_CALL(env, napi_set_named_property(env, exports, "LayerServer", cls));
  napi_value fn;
  NAPI_CALL(env, napi_create_function(env, "fuseStats", NAPI_AUTO_LENGTH, fuse_stats_js, NULL, &fn));
  NAPI_CALL(env, napi_set_named_property(env, exports, "fuseStats", fn));
  NAPI_CALL(env, napi_create_function(env, "setFuseStats", NAPI_AUTO_LENGTH, set_fuse_stats_js, NULL, &fn));
  NAPI_CALL(env, napi_set_named_property(env, exports, "setFuseStats", fn));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
