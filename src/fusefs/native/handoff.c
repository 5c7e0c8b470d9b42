/*
 * clip_handoff: the few system calls Node has no API for, used to hand FUSE connections from one clip
 * process to the next (src/fusefs/fd-store.ts, src/daemon/service-manager.ts):
 *
 *   holderPut(socket, name, fd) / holderDrop(socket, name) / holderList(socket) -> [{ name, fd }]
 *       talk to clip-fd-holder (clip_fd_holder.c) over its SOCK_SEQPACKET socket, passing fds with
 *       SCM_RIGHTS. Every call is bounded (2 s send and receive timeouts). Received fds are close-on-exec.
 *       Errors carry the errno name as `code` (ENOENT, ECONNREFUSED: no holder there).
 *   notify(socket, state, fd?)   sd_notify(3) / sd_pid_notify_with_fds(3): one datagram to systemd's
 *       $NOTIFY_SOCKET ("@..." is an abstract address), optionally with one fd (FDSTORE=1).
 *   lockExclusive(path) -> fd    flock(LOCK_EX | LOCK_NB) on path (created 0600); throws code EWOULDBLOCK
 *       when another process holds it. The fd stays open (and the lock held) until the process ends.
 *   closeOnExec(fd)              sets FD_CLOEXEC (fds a service manager passed arrive without it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define NAPI_INTERNAL_CODE "CLIP_HANDOFF_INTERNAL"
#include "napi_call.h"
#include "fd_passing.h"

#define NAME_MAX_LEN 255
#define IO_TIMEOUT_SECONDS 2

static const char *errno_name(int e) {
  switch (e) {
    case ENOENT: return "ENOENT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EWOULDBLOCK: return "EWOULDBLOCK";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNRESET: return "ECONNRESET";
    case EPIPE: return "EPIPE";
    case EACCES: return "EACCES";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EPROTO: return "EPROTO";
    default: return "EIO";
  }
}

static void throw_errno(napi_env env, int e, const char *what) {
  char msg[512];
  snprintf(msg, sizeof(msg), "%s: %s", what, strerror(e));
  napi_throw_error(env, errno_name(e), msg);
}

/* Fills a unix address; an address starting with '@' is abstract. Returns its length or -1. */
static socklen_t unix_address(const char *path, struct sockaddr_un *addr) {
  size_t len = strlen(path);
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (len == 0 || len >= sizeof(addr->sun_path)) return (socklen_t)-1;
  memcpy(addr->sun_path, path, len);
  if (path[0] == '@') addr->sun_path[0] = '\0';
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));
}

/* Connects to the holder; the socket or -errno. */
static int holder_connect(const char *path) {
  struct sockaddr_un addr;
  socklen_t len = unix_address(path, &addr);
  if (len == (socklen_t)-1) return -ENAMETOOLONG;
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) return -errno;
  struct timeval tv = {IO_TIMEOUT_SECONDS, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(s, (struct sockaddr *)&addr, len) != 0) {
    int e = errno;
    close(s);
    return -e;
  }
  return s;
}

/* One request answered by "K"; 0 or an errno. */
static int holder_request(const char *path, const char *msg, size_t len, int fd) {
  int s = holder_connect(path);
  if (s < 0) return -s;
  int e = send_with_fd(s, msg, len, fd);
  if (e == 0) {
    char reply[8];
    int extra;
    ssize_t n = receive_with_fd(s, reply, sizeof(reply), &extra, 0);
    if (extra >= 0) close(extra);
    if (n < 0) e = errno == EAGAIN ? ETIMEDOUT : errno;
    else if (n == 0) e = ECONNRESET;
    else if (reply[0] != 'K') e = EPROTO;
  }
  close(s);
  return e;
}

static int name_message(napi_env env, napi_value v, char kind, char *msg) {
  char *name = string_arg(env, v);
  size_t len = name ? strlen(name) : 0;
  if (!name || len == 0 || len > NAME_MAX_LEN) {
    free(name);
    napi_throw_range_error(env, NULL, "a held fd's name is 1 to 255 bytes");
    return -1;
  }
  msg[0] = kind;
  memcpy(msg + 1, name, len);
  free(name);
  return (int)len + 1;
}

static napi_value holder_put(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char msg[NAME_MAX_LEN + 2];
  int len = name_message(env, argv[1], 'P', msg);
  if (len < 0) return NULL;
  int32_t fd = -1;
  NAPI_CALL(env, napi_get_value_int32(env, argv[2], &fd));
  char *path = string_arg(env, argv[0]);
  int e = path ? holder_request(path, msg, (size_t)len, fd) : ENOMEM;
  free(path);
  if (e) throw_errno(env, e, "fd holder: keep");
  return NULL;
}

static napi_value holder_drop(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char msg[NAME_MAX_LEN + 2];
  int len = name_message(env, argv[1], 'D', msg);
  if (len < 0) return NULL;
  char *path = string_arg(env, argv[0]);
  int e = path ? holder_request(path, msg, (size_t)len, -1) : ENOMEM;
  free(path);
  if (e) throw_errno(env, e, "fd holder: drop");
  return NULL;
}

static napi_value holder_list(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *path = string_arg(env, argv[0]);
  if (!path) return NULL;
  int s = holder_connect(path);
  free(path);
  if (s < 0) {
    throw_errno(env, -s, "fd holder: list");
    return NULL;
  }
  napi_value out;
  if (napi_create_array(env, &out) != napi_ok) {
    close(s);
    throw_last_error(env);
    return NULL;
  }
  int e = send_with_fd(s, "L", 1, -1);
  uint32_t count = 0;
  while (e == 0) {
    char msg[NAME_MAX_LEN + 2];
    int fd;
    ssize_t n = receive_with_fd(s, msg, sizeof(msg), &fd, 0);
    if (n <= 0) {
      e = n == 0 ? ECONNRESET : errno == EAGAIN ? ETIMEDOUT : errno;
      break;
    }
    if (msg[0] == 'E') break;
    if (msg[0] != 'F' || fd < 0) {
      if (fd >= 0) close(fd);
      e = EPROTO;
      break;
    }
    napi_value item, name, num;
    napi_create_object(env, &item);
    napi_create_string_utf8(env, msg + 1, (size_t)n - 1, &name);
    napi_create_int32(env, fd, &num);
    napi_set_named_property(env, item, "name", name);
    napi_set_named_property(env, item, "fd", num);
    napi_set_element(env, out, count++, item);
  }
  close(s);
  if (e) {
    /* do not leak what was received before the failure */
    for (uint32_t i = 0; i < count; i++) {
      napi_value item, num;
      int32_t fd;
      napi_get_element(env, out, i, &item);
      napi_get_named_property(env, item, "fd", &num);
      if (napi_get_value_int32(env, num, &fd) == napi_ok) close(fd);
    }
    throw_errno(env, e, "fd holder: list");
    return NULL;
  }
  return out;
}

static napi_value sd_notify_call(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1;
  if (argc >= 3) {
    napi_valuetype t;
    NAPI_CALL(env, napi_typeof(env, argv[2], &t));
    if (t == napi_number) NAPI_CALL(env, napi_get_value_int32(env, argv[2], &fd));
  }
  char *path = string_arg(env, argv[0]);
  char *state = string_arg(env, argv[1]);
  int e = 0;
  struct sockaddr_un addr;
  socklen_t len = path ? unix_address(path, &addr) : (socklen_t)-1;
  if (!path || !state) e = ENOMEM;
  else if (len == (socklen_t)-1) e = ENAMETOOLONG;
  else {
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) e = errno;
    else {
      if (connect(s, (struct sockaddr *)&addr, len) != 0) e = errno;
      else e = send_with_fd(s, state, strlen(state), fd);
      close(s);
    }
  }
  free(path);
  free(state);
  if (e) throw_errno(env, e, "sd_notify");
  return NULL;
}

static napi_value lock_exclusive(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *path = string_arg(env, argv[0]);
  if (!path) return NULL;
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw_errno(env, errno, path);
    free(path);
    return NULL;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    close(fd);
    throw_errno(env, e, path);
    free(path);
    return NULL;
  }
  free(path);
  napi_value out;
  NAPI_CALL(env, napi_create_int32(env, fd, &out));
  return out;
}

static napi_value close_on_exec(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1;
  NAPI_CALL(env, napi_get_value_int32(env, argv[0], &fd));
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) throw_errno(env, errno, "fcntl F_SETFD");
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"holderPut", NULL, holder_put, NULL, NULL, NULL, napi_default, NULL},
      {"holderDrop", NULL, holder_drop, NULL, NULL, NULL, napi_default, NULL},
      {"holderList", NULL, holder_list, NULL, NULL, NULL, napi_default, NULL},
      {"notify", NULL, sd_notify_call, NULL, NULL, NULL, napi_default, NULL},
      {"lockExclusive", NULL, lock_exclusive, NULL, NULL, NULL, napi_default, NULL},
      {"closeOnExec", NULL, close_on_exec, NULL, NULL, NULL, napi_default, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof(fns) / sizeof(fns[0]), fns));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
