/*
 * clip_indexer: the native part of clip's indexer, built by `npm run build:native` and loaded only
 * through src/indexer/native-addon.ts. It exports GzipIndexer and extractSpan (zran.c), ZstdDecoder
 * (zstd.c) and Sha256 (sha256.c).
 */
#include <node_api.h>

napi_value zran_register(napi_env env, napi_value exports);
napi_value sha256_register(napi_env env, napi_value exports);
napi_value zstd_register(napi_env env, napi_value exports);

static napi_value init(napi_env env, napi_value exports) {
  if (!zran_register(env, exports) || !zstd_register(env, exports)) return NULL;
  return sha256_register(env, exports);
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
