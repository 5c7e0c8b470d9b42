/*
 * SHA-256 on the libuv thread pool, the hashing part of the clip_indexer addon: hashing a layer (its
 * blob, its uncompressed stream and each span, three passes over up to gigabytes) then no longer holds up
 * the JavaScript thread, and the passes run side by side. It uses the OpenSSL that Node carries: node-gyp
 * puts its headers on the include path and the node binary provides the symbols.
 *
 *   new Sha256()
 *   sha.update(chunks: Buffer[]) -> Promise<undefined>
 *     Hashes the buffers, in order, on the thread pool. One update at a time: a second one while the
 *     first runs throws. The buffers must stay untouched until the promise settles.
 *   sha.digest() -> string
 *     The lowercase hex digest of everything hashed. The object cannot be updated afterwards.
 */
#include "async_job.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#define NAPI_INTERNAL_CODE INTERNAL_ERROR
#include "napi_call.h"

typedef struct {
  EVP_MD_CTX *ctx;
  int busy;     /* an update job is running */
  int finished; /* digest() was called */
} Hasher;

typedef struct {
  const unsigned char *data;
  size_t length;
} Chunk;

typedef struct {
  Job job; /* first member */
  Hasher *hasher;
  uint32_t count;
  Chunk chunks[]; /* count entries */
} UpdateJob;

/* Runs on the thread pool: must not call N-API. */
static void update_execute(napi_env env, void *data) {
  (void)env;
  UpdateJob *w = data;
  for (uint32_t i = 0; i < w->count; i++) {
    if (EVP_DigestUpdate(w->hasher->ctx, w->chunks[i].data, w->chunks[i].length) != 1) {
      job_fail(&w->job, INTERNAL_ERROR, "EVP_DigestUpdate failed");
      return;
    }
  }
}

static void update_complete(napi_env env, napi_status status, void *data) {
  UpdateJob *w = data;
  w->hasher->busy = 0;
  if (status != napi_ok && !w->job.error_code) job_fail(&w->job, INTERNAL_ERROR, "update was cancelled");
  job_settle(env, &w->job, NULL);
  job_release(env, &w->job);
  free(w);
}

static Hasher *usable(napi_env env, napi_value self) {
  Hasher *h = NULL;
  if (napi_unwrap(env, self, (void **)&h) != napi_ok) {
    throw_last_error(env);
    return NULL;
  }
  if (h->busy) {
    throw_internal(env, "Sha256: an update is already running");
    return NULL;
  }
  if (h->finished) {
    throw_internal(env, "Sha256: already finished");
    return NULL;
  }
  return h;
}

/* sha.update(chunks: Buffer[]): Promise<void> */
static napi_value hasher_update(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  Hasher *h = usable(env, self);
  if (!h) return NULL;
  bool is_array = false;
  if (argc < 1 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) {
    napi_throw_type_error(env, NULL, "update(chunks): chunks must be an array of Buffers");
    return NULL;
  }
  uint32_t count = 0;
  NAPI_CALL(env, napi_get_array_length(env, argv[0], &count));
  UpdateJob *w = calloc(1, sizeof *w + (size_t)count * sizeof(Chunk));
  if (!w) return throw_internal(env, "out of memory");
  w->hasher = h;
  w->count = count;
  for (uint32_t i = 0; i < count; i++) {
    napi_value chunk;
    unsigned char *bytes;
    if (napi_get_element(env, argv[0], i, &chunk) != napi_ok) {
      throw_last_error(env);
      free(w);
      return NULL;
    }
    if (!get_bytes(env, chunk, "each chunk", &bytes, &w->chunks[i].length)) {
      free(w);
      return NULL;
    }
    w->chunks[i].data = bytes;
  }
  napi_value keep[2] = {self, argv[0]};
  napi_value promise = job_start(env, &w->job, "clip_indexer.sha256", keep, 2, update_execute, update_complete);
  if (!promise) {
    free(w);
    return NULL;
  }
  h->busy = 1;
  return promise;
}

/* sha.digest(): string */
static napi_value hasher_digest(napi_env env, napi_callback_info info) {
  napi_value self, result;
  NAPI_CALL(env, napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  Hasher *h = usable(env, self);
  if (!h) return NULL;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  h->finished = 1;
  if (EVP_DigestFinal_ex(h->ctx, md, &length) != 1) return throw_internal(env, "EVP_DigestFinal_ex failed");
  static const char hex[] = "0123456789abcdef";
  char text[2 * EVP_MAX_MD_SIZE];
  for (unsigned int i = 0; i < length; i++) {
    text[2 * i] = hex[md[i] >> 4];
    text[2 * i + 1] = hex[md[i] & 15];
  }
  NAPI_CALL(env, napi_create_string_latin1(env, text, 2 * length, &result));
  return result;
}

static void hasher_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Hasher *h = data;
  /* A running job keeps its object alive, so this only happens when the process exits mid-update. */
  if (h->busy) return;
  EVP_MD_CTX_free(h->ctx);
  free(h);
}

/* new Sha256() */
static napi_value hasher_new(napi_env env, napi_callback_info info) {
  napi_value self;
  NAPI_CALL(env, napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  Hasher *h = calloc(1, sizeof *h);
  if (!h) return throw_internal(env, "out of memory");
  h->ctx = EVP_MD_CTX_new();
  if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(h->ctx);
    free(h);
    return throw_internal(env, "cannot start a SHA-256 digest");
  }
  return wrap_native(env, self, h, hasher_finalize);
}

napi_value sha256_register(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"update", NULL, hasher_update, NULL, NULL, NULL, napi_default, NULL},
      {"digest", NULL, hasher_digest, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value cls;
  NAPI_CALL(env, napi_define_class(env, "Sha256", NAPI_AUTO_LENGTH, hasher_new, NULL, 2, methods, &cls));
  NAPI_CALL(env, napi_set_named_property(env, exports, "Sha256", cls));
  return exports;
}
