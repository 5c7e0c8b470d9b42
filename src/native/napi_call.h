/*
 * Checking N-API calls, shared by clip's native addons (src/indexer/native, src/fusefs/native). Define
 * NAPI_INTERNAL_CODE, the error code thrown to JavaScript when a call fails, before including this file.
 */
#ifndef CLIP_NAPI_CALL_H
#define CLIP_NAPI_CALL_H

#include <node_api.h>
#include <stdbool.h>

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

#endif
