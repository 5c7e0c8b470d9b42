/*
 * What the native FUSE server's per-read stamp costs (docs/cache.md, "Eviction order"): the coarse
 * monotonic clock read plus the relaxed atomic load/store clip_fuse.c does for each span a read touches,
 * against a cached read as the server answers it (open + 128 KiB pread + close of a span file).
 *
 *   cc -O2 -o /tmp/span-stamp-cost bench/span-stamp-cost.c
 *   head -c 4194304 /dev/urandom > /tmp/span && /tmp/span-stamp-cost /tmp/span
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static unsigned long long coarse_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (unsigned long long)ts.tv_sec * 1000u + (unsigned long long)ts.tv_nsec / 1000000u;
}

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static atomic_ullong last_read[4];

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s SPAN_FILE (4 MiB or more)\n", argv[0]);
    return 2;
  }
  const int stamps = 10000000;
  double t = seconds();
  for (int i = 0; i < stamps; i++) {
    unsigned long long now = coarse_now_ms();
    if (atomic_load_explicit(&last_read[i & 3], memory_order_relaxed) != now) atomic_store_explicit(&last_read[i & 3], now, memory_order_relaxed);
  }
  double stamp_ns = (seconds() - t) / stamps * 1e9;
  char *buf = malloc(128 << 10);
  const int reads = 20000;
  t = seconds();
  for (int i = 0; i < reads; i++) {
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0 || pread(fd, buf, 128 << 10, (off_t)(i % 32) * (128 << 10)) < 0) {
      perror(argv[1]);
      return 1;
    }
    close(fd);
  }
  double read_ns = (seconds() - t) / reads * 1e9;
  printf("stamp %.1f ns per read; cached 128 KiB read (open + pread + close) %.0f ns; %.3f%%\n", stamp_ns, read_ns, 100 * stamp_ns / read_ns);
  free(buf);
  return 0;
}
