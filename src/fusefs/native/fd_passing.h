/*
 * One datagram with at most one fd (SCM_RIGHTS), sent and received: shared by clip-fd-holder
 * (clip_fd_holder.c) and the clip side of its protocol (handoff.c).
 */
#ifndef CLIP_FD_PASSING_H
#define CLIP_FD_PASSING_H

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Sends msg with fd (none if fd < 0); 0 or an errno. */
static int send_with_fd(int s, const char *msg, size_t len, int fd) {
  struct iovec iov = {(void *)msg, len};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctl;
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  if (fd >= 0) {
    memset(&ctl, 0, sizeof(ctl));
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof(ctl.buf);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  ssize_t r;
  while ((r = sendmsg(s, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  return r < 0 ? errno : 0;
}

/*
 * Receives one datagram (up to cap - 1 bytes, NUL-terminated) and its first fd (close-on-exec; -1 if
 * none; further fds are closed). Returns recvmsg's result (errno set when negative).
 */
static ssize_t receive_with_fd(int s, char *buf, size_t cap, int *fd, int flags) {
  union {
    char buf[CMSG_SPACE(sizeof(int) * 4)];
    struct cmsghdr align;
  } ctl;
  struct iovec iov = {buf, cap - 1};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
  ssize_t n;
  while ((n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC | flags)) < 0 && errno == EINTR) {
  }
  int saved = errno;
  *fd = -1;
  if (n >= 0) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int k = 0; k < count; k++) {
        int got;
        memcpy(&got, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
        if (*fd < 0) *fd = got;
        else close(got);
      }
    }
    buf[n] = '\0';
  }
  errno = saved;
  return n;
}

#endif
