/*
 * N-API helpers shared by clip's native addons (src/indexer/native, src/fusefs/native): checked calls and
 * string arguments. Define NAPI_INTERNAL_CODE, the error code thrown to JavaScript when a call fails,
 * before including this file.
 */
#ifndef CLIP_NAPI_CALL_H
#define CLIP_NAPI_CALL_H

#include <node_api.h>
#include <stdbool.h>
#include <stdlib.h>

/* Evaluates an N-API call; on failure throws (unless an exception is already pending) and returns NULL. */
#define NAPI_CALL(env, call)                                                                      \
  do {                                                                                            \
    if ((call) != napi_ok) {                                                                      \
      throw_last_error(env);                                                                      \
      return NULL;                                                                                \
    }                                                                                             \
  } while (0)

static void throw_last_error(napi_env env) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  napi_throw_error(env, NAPI_INTERNAL_CODE, info && info->error_message ? info->error_message : "N-API call failed");
}

/* A JS string as a malloc'd UTF-8 C string (the caller frees it), or NULL. */
static inline char *string_arg(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *out = malloc(len + 1);
  if (!out) return NULL;
  napi_get_value_string_utf8(env, v, out, len + 1, &len);
  return out;
}

#endif
