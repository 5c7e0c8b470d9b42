/*
 * clip-fd-holder: keeps open file descriptors (the /dev/fuse connections of clip's layer mounts) for clip,
 * so that they outlive a clip process that crashes, is restarted or is replaced by a newer build. It never
 * reads or writes the descriptors it keeps, so it knows nothing of FUSE and never needs upgrading: a new
 * clip talks to the holder an older clip started. Used where systemd's file-descriptor store is not.
 *
 *   clip-fd-holder SOCKET [IDLE_SECONDS]
 *
 * Listens on the unix SOCK_SEQPACKET socket SOCKET (created 0600; refuses to start if another holder
 * answers there). One datagram per request, one per answer:
 *   "P" NAME + one fd (SCM_RIGHTS)  keep fd under NAME (replacing and closing an older one) -> "K"
 *   "D" NAME                        close and forget NAME                                    -> "K"
 *   "L"                             one "F" NAME + fd per kept fd (the holder keeps its own), then "E"
 * Anything else is answered "X". NAME is 1..255 bytes. A kept fd that reports POLLERR or POLLHUP (the FUSE
 * connection ended: unmounted or aborted) is closed and forgotten. With nothing kept and nobody connected
 * for IDLE_SECONDS (default 60), the holder exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fd_passing.h"

#define MAX_HELD 4096
#define MAX_CLIENTS 16
#define NAME_MAX_LEN 255

typedef struct {
  int fd;
  char name[NAME_MAX_LEN + 1];
} held_t;

static held_t held[MAX_HELD];
static int held_count;
static int clients[MAX_CLIENTS];
static int client_count;

static void forget(int i) {
  close(held[i].fd);
  held[i] = held[--held_count];
}

static int find(const char *name) {
  for (int i = 0; i < held_count; i++)
    if (strcmp(held[i].name, name) == 0) return i;
  return -1;
}

static void answer(int conn, const char *msg, size_t len, int fd) { send_with_fd(conn, msg, len, fd); }

/* Handles one request; returns 0 to keep the connection, -1 to close it. */
static int serve(int conn) {
  char buf[NAME_MAX_LEN + 2];
  int fd;
  ssize_t n = receive_with_fd(conn, buf, sizeof(buf), &fd, MSG_DONTWAIT);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 0;
  if (n <= 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  const char *name = buf + 1;
  int valid_name = n >= 2 && n <= NAME_MAX_LEN + 1 && strlen(name) == (size_t)(n - 1);
  if (buf[0] == 'P' && valid_name && fd >= 0) {
    int i = find(name);
    if (i >= 0) {
      close(held[i].fd);
      held[i].fd = fd;
    } else if (held_count < MAX_HELD) {
      held[held_count].fd = fd;
      strcpy(held[held_count].name, name);
      held_count++;
    } else {
      close(fd);
      answer(conn, "X", 1, -1);
      return 0;
    }
    answer(conn, "K", 1, -1);
    return 0;
  }
  if (fd >= 0) close(fd);
  if (buf[0] == 'D' && valid_name) {
    int i = find(name);
    if (i >= 0) forget(i);
    answer(conn, "K", 1, -1);
  } else if (buf[0] == 'L' && n == 1) {
    for (int i = 0; i < held_count; i++) {
      char msg[NAME_MAX_LEN + 2];
      size_t len = strlen(held[i].name);
      msg[0] = 'F';
      memcpy(msg + 1, held[i].name, len);
      answer(conn, msg, len + 1, held[i].fd);
    }
    answer(conn, "E", 1, -1);
  } else {
    answer(conn, "X", 1, -1);
  }
  return 0;
}

static int listen_on(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(addr.sun_path)) {
    fprintf(stderr, "clip-fd-holder: socket path too long: %s\n", path);
    return -1;
  }
  strcpy(addr.sun_path, path);
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  if (connect(s, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
    fprintf(stderr, "clip-fd-holder: another holder serves %s\n", path);
    close(s);
    return -1;
  }
  close(s);
  unlink(path); /* a socket file left by a holder that is gone */
  s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  mode_t old = umask(0177);
  int ok = s >= 0 && bind(s, (struct sockaddr *)&addr, sizeof(addr)) == 0 && listen(s, 16) == 0;
  umask(old);
  if (!ok) {
    perror("clip-fd-holder: listen");
    if (s >= 0) close(s);
    return -1;
  }
  return s;
}

static time_t now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: clip-fd-holder SOCKET [IDLE_SECONDS]\n");
    return 2;
  }
  long idle = argc == 3 ? strtol(argv[2], NULL, 10) : 60;
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  int listener = listen_on(argv[1]);
  if (listener < 0) return 1;
  static struct pollfd fds[1 + MAX_CLIENTS + MAX_HELD];
  time_t idle_since = now();
  for (;;) {
    int n = 0;
    fds[n++] = (struct pollfd){.fd = listener, .events = POLLIN};
    for (int i = 0; i < client_count; i++) fds[n++] = (struct pollfd){.fd = clients[i], .events = POLLIN};
    /* events 0: only errors and hang-ups are reported; the holder never reads a kept fd */
    for (int i = 0; i < held_count; i++) fds[n++] = (struct pollfd){.fd = held[i].fd, .events = 0};
    int r = poll(fds, (nfds_t)n, 1000);
    if (r < 0 && errno != EINTR) {
      perror("clip-fd-holder: poll");
      return 1;
    }
    if (r > 0) {
      /* kept fds first (indices shift as they are forgotten: walk backwards) */
      for (int i = held_count - 1; i >= 0; i--) {
        if (fds[1 + client_count + i].revents & (POLLERR | POLLHUP | POLLNVAL)) forget(i);
      }
      for (int i = client_count - 1; i >= 0; i--) {
        short ev = fds[1 + i].revents;
        if (!ev) continue;
        if ((ev & POLLIN) && serve(clients[i]) == 0) continue;
        if (ev & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) {
          close(clients[i]);
          clients[i] = clients[--client_count];
        }
      }
      if (fds[0].revents & POLLIN) {
        int c = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0 && client_count < MAX_CLIENTS) clients[client_count++] = c;
        else if (c >= 0) close(c);
      }
    }
    if (held_count > 0 || client_count > 0) idle_since = now();
    else if (idle > 0 && now() - idle_since >= idle) {
      /* Leave the socket file: a holder started meanwhile may own it already; the next one replaces it. */
      return 0;
    }
  }
}
