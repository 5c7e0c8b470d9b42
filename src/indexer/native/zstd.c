/*
 * Streaming zstd decompression on the libuv thread pool, the zstd part of the clip_indexer addon (libzstd).
 * A zstd layer cannot be read span by span from the registry, so clip decompresses it whole, once, while
 * indexing it, and keeps every span in its cache.
 *
 *   new ZstdDecoder().decompress(input, output) -> { read, written, ended }
 *     Decompresses from `input` into `output` until the input is used up or the output is full; the
 *     caller calls again with the rest of the input, or with an empty input to drain what zstd still
 *     holds. `ended` tells that the data so far ends exactly at the end of a frame (a blob may hold
 *     several frames, and skippable ones). One call at a time; the buffers must stay untouched until the
 *     promise settles.
 *
 * Corrupt or unsupported data (a window larger than 128 MiB, for instance) rejects with the data error
 * code; anything else with the internal one.
 */
#include "async_job.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#define NAPI_INTERNAL_CODE INTERNAL_ERROR
#include "napi_call.h"

typedef struct {
  ZSTD_DStream *stream;
  int at_frame_end; /* the last call ended exactly at the end of a frame */
  int started;      /* some input was given */
  int busy;
  int broken;
} Decoder;

typedef struct {
  Job job; /* first member */
  Decoder *dec;
  const unsigned char *in;
  size_t in_len;
  unsigned char *out;
  size_t out_len;
  size_t read, written;
} DecompressJob;

/* Runs on the thread pool: must not call N-API. */
static void decompress_execute(napi_env env, void *data) {
  (void)env;
  DecompressJob *w = data;
  Decoder *dec = w->dec;
  ZSTD_inBuffer in = {w->in, w->in_len, 0};
  ZSTD_outBuffer out = {w->out, w->out_len, 0};
  if (w->in_len > 0) dec->started = 1;
  while (out.pos < out.size) {
    size_t before_in = in.pos, before_out = out.pos;
    size_t ret = ZSTD_decompressStream(dec->stream, &out, &in);
    if (ZSTD_isError(ret)) {
      char message[sizeof w->job.error];
      snprintf(message, sizeof message, "zstd data: %s", ZSTD_getErrorName(ret));
      job_fail(&w->job, ZSTD_getErrorCode(ret) == ZSTD_error_memory_allocation ? INTERNAL_ERROR : DATA_ERROR, message);
      dec->broken = 1;
      break;
    }
    if (in.pos != before_in || out.pos != before_out) dec->at_frame_end = ret == 0;
    if (in.pos == in.size && (out.pos == before_out || ret == 0)) break; /* nothing more without input */
  }
  w->read = in.pos;
  w->written = out.pos;
}

static void decompress_complete(napi_env env, napi_status status, void *data) {
  DecompressJob *w = data;
  w->dec->busy = 0;
  if (status != napi_ok && !w->job.error_code) job_fail(&w->job, INTERNAL_ERROR, "decompress was cancelled");
  napi_value result = NULL, v;
  if (!w->job.error_code) {
    if (napi_create_object(env, &result) != napi_ok ||
        napi_create_double(env, (double)w->read, &v) != napi_ok ||
        napi_set_named_property(env, result, "read", v) != napi_ok ||
        napi_create_double(env, (double)w->written, &v) != napi_ok ||
        napi_set_named_property(env, result, "written", v) != napi_ok ||
        napi_get_boolean(env, w->dec->started && w->dec->at_frame_end, &v) != napi_ok ||
        napi_set_named_property(env, result, "ended", v) != napi_ok)
      job_fail(&w->job, INTERNAL_ERROR, "cannot build the result");
  }
  job_settle(env, &w->job, result);
  job_release(env, &w->job);
  free(w);
}

/* decoder.decompress(input: Buffer, output: Buffer): Promise<{ read, written, ended }> */
static napi_value decoder_decompress(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], self;
  Decoder *dec = NULL;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  NAPI_CALL(env, napi_unwrap(env, self, (void **)&dec));
  if (dec->busy) return throw_internal(env, "ZstdDecoder: a decompress is already running");
  if (dec->broken) return throw_internal(env, "ZstdDecoder: unusable after a data error");
  unsigned char *in, *out;
  size_t in_len, out_len;
  if (argc < 2 || !get_bytes(env, argv[0], "input", &in, &in_len) || !get_bytes(env, argv[1], "output", &out, &out_len))
    return NULL;
  DecompressJob *w = calloc(1, sizeof *w);
  if (!w) return throw_internal(env, "out of memory");
  w->dec = dec;
  w->in = in;
  w->in_len = in_len;
  w->out = out;
  w->out_len = out_len;
  napi_value keep[3] = {self, argv[0], argv[1]};
  napi_value promise = job_start(env, &w->job, "clip_indexer.zstd", keep, 3, decompress_execute, decompress_complete);
  if (!promise) {
    free(w);
    return NULL;
  }
  dec->busy = 1;
  return promise;
}

static void decoder_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Decoder *dec = data;
  if (dec->busy) return; /* only when the process exits mid-call: leave the memory to it */
  ZSTD_freeDStream(dec->stream);
  free(dec);
}

/* new ZstdDecoder() */
static napi_value decoder_new(napi_env env, napi_callback_info info) {
  napi_value self;
  NAPI_CALL(env, napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  Decoder *dec = calloc(1, sizeof *dec);
  if (!dec) return throw_internal(env, "out of memory");
  dec->stream = ZSTD_createDStream();
  if (!dec->stream || ZSTD_isError(ZSTD_initDStream(dec->stream))) {
    ZSTD_freeDStream(dec->stream);
    free(dec);
    return throw_internal(env, "cannot start a zstd decoder");
  }
  return wrap_native(env, self, dec, decoder_finalize);
}

napi_value zstd_register(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"decompress", NULL, decoder_decompress, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value cls;
  NAPI_CALL(env, napi_define_class(env, "ZstdDecoder", NAPI_AUTO_LENGTH, decoder_new, NULL, 1, methods, &cls));
  NAPI_CALL(env, napi_set_named_property(env, exports, "ZstdDecoder", cls));
  return exports;
}
