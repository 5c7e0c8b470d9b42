/*
 * clip-fd-holder: keeps open file descriptors (the /dev/fuse connections of clip's layer mounts) for clip,
 * so that they outlive a clip process that crashes, is restarted or is replaced by a newer build. It never
 * reads or writes the descriptors it keeps, so it knows nothing of FUSE and never needs upgrading: a new
 * clip talks to the holder an older clip started. Used where systemd's file-descriptor store is not.
 *
 *   clip-fd-holder SOCKET [IDLE_SECONDS [ORPHAN_SECONDS]]
 *
 * Listens on the unix SOCK_SEQPACKET socket SOCKET (created 0600; refuses to start if another holder
 * answers there). One datagram per request, one per answer:
 *   "P" NAME + one fd (SCM_RIGHTS)  keep fd under NAME (replacing and closing an older one) -> "K"
 *   "D" NAME                        close and forget NAME                                    -> "K"
 *   "L"                             one "F" NAME + fd per kept fd (the holder keeps its own), then "E"
 * Anything else is answered "X". NAME is 1..255 bytes. A kept fd that reports POLLERR or POLLHUP (the FUSE
 * connection ended: unmounted or aborted) is closed and forgotten. With nothing kept and nobody connected
 * for IDLE_SECONDS (default 60), the holder exits.
 *
 * The process that sent the last request (SO_PEERCRED; clip lists at start-up and keeps each new mount) is
 * the owner, watched through a pidfd. Once the owner has exited and no other process has sent a request for
 * ORPHAN_SECONDS (default 0: never), the holder closes every fd it keeps: the FUSE connections whose last
 * fd that was are aborted, so readers waiting for a clip that does not come back get an error
 * (ENOTCONN) instead of waiting forever.
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
#include <sys/syscall.h>
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
/* The owner (the process that sent the last request), watched through a pidfd; -1 while there is none. */
static int owner_pidfd = -1;
static pid_t owner_pid;
static time_t owner_gone_since;

static time_t now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec;
}

/* The peer of conn becomes the owner. Without a pidfd (an old kernel) nothing is watched: no orphan rule. */
static void note_owner(int conn) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.pid <= 0) return;
  if (owner_pidfd >= 0 && cred.pid == owner_pid) return;
  int pidfd = (int)syscall(SYS_pidfd_open, cred.pid, 0);
  if (pidfd < 0) return;
  if (owner_pidfd >= 0) close(owner_pidfd);
  owner_pidfd = pidfd;
  owner_pid = cred.pid;
}

static void owner_exited(void) {
  close(owner_pidfd);
  owner_pidfd = -1;
  owner_gone_since = now();
}

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
    note_owner(conn);
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
    note_owner(conn);
    int i = find(name);
    if (i >= 0) forget(i);
    answer(conn, "K", 1, -1);
  } else if (buf[0] == 'L' && n == 1) {
    note_owner(conn);
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

int main(int argc, char **argv) {
  if (argc < 2 || argc > 4) {
    fprintf(stderr, "usage: clip-fd-holder SOCKET [IDLE_SECONDS [ORPHAN_SECONDS]]\n");
    return 2;
  }
  long idle = argc >= 3 ? strtol(argv[2], NULL, 10) : 60;
  long orphan = argc >= 4 ? strtol(argv[3], NULL, 10) : 0;
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  int listener = listen_on(argv[1]);
  if (listener < 0) return 1;
  static struct pollfd fds[2 + MAX_CLIENTS + MAX_HELD];
  time_t idle_since = now();
  owner_gone_since = now();
  for (;;) {
    int n = 0;
    /* fds[0]: the owner's pidfd (readable once it exited), or -1, which poll ignores */
    fds[n++] = (struct pollfd){.fd = owner_pidfd, .events = POLLIN};
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
      if (fds[0].fd >= 0 && fds[0].revents) owner_exited();
      /* kept fds first (indices shift as they are forgotten: walk backwards) */
      for (int i = held_count - 1; i >= 0; i--) {
        if (fds[2 + client_count + i].revents & (POLLERR | POLLHUP | POLLNVAL)) forget(i);
      }
      for (int i = client_count - 1; i >= 0; i--) {
        short ev = fds[2 + i].revents;
        if (!ev) continue;
        if ((ev & POLLIN) && serve(clients[i]) == 0) continue;
        if (ev & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) {
          close(clients[i]);
          clients[i] = clients[--client_count];
        }
      }
      if (fds[1].revents & POLLIN) {
        int c = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0 && client_count < MAX_CLIENTS) clients[client_count++] = c;
        else if (c >= 0) close(c);
      }
    }
    if (orphan > 0 && held_count > 0 && owner_pidfd < 0 && client_count == 0 && now() - owner_gone_since >= orphan) {
      fprintf(stderr, "clip-fd-holder: no clip for %ld s: closing the %d connections kept for it\n", orphan, held_count);
      while (held_count > 0) forget(held_count - 1);
    }
    if (held_count > 0 || client_count > 0) idle_since = now();
    else if (idle > 0 && now() - idle_since >= idle) {
      /* Leave the socket file: a holder started meanwhile may own it already; the next one replaces it. */
      return 0;
    }
  }
}
