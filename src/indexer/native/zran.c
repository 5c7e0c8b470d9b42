/*
 * Random access into gzip layers (the zran technique, zlib's examples/zran.c), the gzip part of the
 * clip_indexer addon. Two operations, both run on the libuv thread pool and return promises:
 *
 *   new GzipIndexer(spanSize).inflate(input, output) -> { read, written, ended, checkpoint }
 *     Inflates gzip data (one member or several concatenated ones, as pigz writes) from `input` into
 *     `output`. It stops when the input is used up, the output is full, or a checkpoint was just recorded;
 *     the caller then calls again with the rest of the input or a new output buffer. A checkpoint is a
 *     deflate block boundary where inflation can later resume: the first is right after the first gzip
 *     header, then one at the first boundary after each `spanSize` bytes of output. A returned
 *     checkpoint lies at the end of that call's output and carries the up to 32 KiB of output before it.
 *
 *   extractSpan(compressed, bits, window, output) -> undefined
 *     Fills `output` with the uncompressed bytes that start at a checkpoint. `compressed` starts at the
 *     checkpoint's compressedOffset - (bits ? 1 : 0) and must hold enough data to fill `output`.
 *
 * Data errors (corrupt or truncated input) reject with an Error whose code is "CLIP_INDEXER_DATA_ERROR"; anything
 * else (out of memory, misuse) with "CLIP_INDEXER_INTERNAL". The caller (src/indexer/zran.ts) must not touch the
 * buffers it passed until the promise settles; this file keeps them alive meanwhile and refuses a second
 * inflate on a GzipIndexer that is still busy.
 */
#include "async_job.h"

#include <zlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_SIZE 32768 /* deflate's maximum back-reference distance */

#define NAPI_INTERNAL_CODE INTERNAL_ERROR
#include "napi_call.h"

/* Records a zlib failure: Z_DATA_ERROR means the input is corrupt, anything else is our problem. */
static void job_fail_zlib(Job *job, int ret, const char *what, const char *msg) {
  char text[sizeof job->error];
  snprintf(text, sizeof text, "%s: %s", what, msg ? msg : zError(ret));
  job_fail(job, ret == Z_DATA_ERROR ? DATA_ERROR : INTERNAL_ERROR, text);
}

/* ---- GzipIndexer ------------------------------------------------------------------------------ */

typedef struct {
  z_stream strm;
  uint64_t span_size;
  uint64_t total_in;        /* compressed bytes consumed so far (over all members) */
  uint64_t total_out;       /* uncompressed bytes produced so far (over all members) */
  uint64_t last_checkpoint; /* total_out at the last checkpoint */
  int have_checkpoint;
  int in_member;  /* a gzip member has started and not yet ended */
  int members;    /* gzip members completed */
  int busy;       /* an inflate job is running */
  int broken;     /* a data error happened: the zlib state is unusable */
  size_t history_len;
  unsigned char history[WINDOW_SIZE]; /* the last output bytes, for checkpoint windows */
} Indexer;

typedef struct {
  Job job; /* first member: a Job pointer is an InflateJob pointer */
  Indexer *ix;
  const unsigned char *in;
  size_t in_len;
  unsigned char *out;
  size_t out_len;
  size_t read, written;
  int checkpoint; /* a checkpoint was recorded at the end of this call's output */
  uint64_t cp_in, cp_out;
  int cp_bits;
  size_t window_len;
  unsigned char window[WINDOW_SIZE];
} InflateJob;

/* Appends newly written output to the history, keeping only its last WINDOW_SIZE bytes. */
static void history_append(Indexer *ix, const unsigned char *data, size_t len) {
  if (len >= WINDOW_SIZE) {
    memcpy(ix->history, data + len - WINDOW_SIZE, WINDOW_SIZE);
    ix->history_len = WINDOW_SIZE;
    return;
  }
  size_t keep = ix->history_len;
  if (keep > WINDOW_SIZE - len) keep = WINDOW_SIZE - len;
  memmove(ix->history, ix->history + ix->history_len - keep, keep);
  memcpy(ix->history + keep, data, len);
  ix->history_len = keep + len;
}

/* Runs on the thread pool: must not call N-API. */
static void inflate_execute(napi_env env, void *data) {
  (void)env;
  InflateJob *w = data;
  Indexer *ix = w->ix;
  z_stream *s = &ix->strm;
  s->next_in = (Bytef *)w->in;
  s->avail_in = (uInt)w->in_len;
  s->next_out = w->out;
  s->avail_out = (uInt)w->out_len;

  for (;;) {
    if (!ix->in_member) {
      /* Before the first member or between members: a new member starts only if input follows. */
      if (s->avail_in == 0) break;
      int ret = inflateReset(s);
      if (ret != Z_OK) {
        job_fail_zlib(&w->job, ret, "inflateReset", s->msg);
        break;
      }
      ix->in_member = 1;
    }
    if (s->avail_out == 0) break;

    uInt in_before = s->avail_in, out_before = s->avail_out;
    /* Z_BLOCK returns at the end of the gzip header and at the end of every deflate block. */
    int ret = inflate(s, Z_BLOCK);
    ix->total_in += in_before - s->avail_in;
    ix->total_out += out_before - s->avail_out;

    if (ret == Z_STREAM_END) { /* member complete, its CRC-32 and length checked by zlib */
      ix->in_member = 0;
      ix->members++;
      continue;
    }
    if (ret == Z_BUF_ERROR) { /* no progress possible */
      if (s->avail_in != 0) job_fail(&w->job, INTERNAL_ERROR, "inflate made no progress");
      break; /* otherwise it simply needs more input */
    }
    if (ret != Z_OK) {
      job_fail_zlib(&w->job, ret, "gzip data", s->msg);
      break;
    }
    /* data_type: bit 7 = at a block boundary (or just after the header), bit 6 = in the last block,
       bits 0-2 = unused bits of the last input byte, i.e. the bits of the next block held in byte in-1. */
    if ((s->data_type & 0xC0) == 0x80 &&
        (!ix->have_checkpoint || ix->total_out - ix->last_checkpoint >= ix->span_size)) {
      w->checkpoint = 1;
      w->cp_in = ix->total_in;
      w->cp_out = ix->total_out;
      w->cp_bits = s->data_type & 7;
      ix->have_checkpoint = 1;
      ix->last_checkpoint = ix->total_out;
      break; /* return now so the checkpoint sits at the end of this call's output */
    }
  }

  w->read = w->in_len - s->avail_in;
  w->written = w->out_len - s->avail_out;
  history_append(ix, w->out, w->written);
  if (w->checkpoint) {
    memcpy(w->window, ix->history, ix->history_len);
    w->window_len = ix->history_len;
  }
  /* Do not keep pointers into buffers that JS owns. */
  s->next_in = Z_NULL;
  s->avail_in = 0;
  s->next_out = Z_NULL;
  s->avail_out = 0;
  if (w->job.error_code) ix->broken = 1;
}

static napi_value set_number(napi_env env, napi_value object, const char *name, double value) {
  napi_value v;
  NAPI_CALL(env, napi_create_double(env, value, &v));
  NAPI_CALL(env, napi_set_named_property(env, object, name, v));
  return object;
}

static napi_value inflate_result(napi_env env, InflateJob *w) {
  Indexer *ix = w->ix;
  napi_value result, checkpoint, ended, window;
  NAPI_CALL(env, napi_create_object(env, &result));
  if (!set_number(env, result, "read", (double)w->read)) return NULL;
  if (!set_number(env, result, "written", (double)w->written)) return NULL;
  NAPI_CALL(env, napi_get_boolean(env, !ix->in_member && ix->members > 0, &ended));
  NAPI_CALL(env, napi_set_named_property(env, result, "ended", ended));
  if (w->checkpoint) {
    NAPI_CALL(env, napi_create_object(env, &checkpoint));
    if (!set_number(env, checkpoint, "compressedOffset", (double)w->cp_in)) return NULL;
    if (!set_number(env, checkpoint, "bits", (double)w->cp_bits)) return NULL;
    if (!set_number(env, checkpoint, "uncompressedOffset", (double)w->cp_out)) return NULL;
    NAPI_CALL(env, napi_create_buffer_copy(env, w->window_len, w->window, NULL, &window));
    NAPI_CALL(env, napi_set_named_property(env, checkpoint, "window", window));
  } else {
    NAPI_CALL(env, napi_get_null(env, &checkpoint));
  }
  NAPI_CALL(env, napi_set_named_property(env, result, "checkpoint", checkpoint));
  return result;
}

static void inflate_complete(napi_env env, napi_status status, void *data) {
  InflateJob *w = data;
  w->ix->busy = 0;
  napi_value result = NULL;
  if (status != napi_ok && !w->job.error_code) job_fail(&w->job, INTERNAL_ERROR, "inflate was cancelled");
  if (!w->job.error_code && (result = inflate_result(env, w)) == NULL) {
    /* Building the result threw: reject with that exception. */
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_reject_deferred(env, w->job.deferred, exception);
  } else {
    job_settle(env, &w->job, result);
  }
  job_release(env, &w->job);
  free(w);
}

/* indexer.inflate(input: Buffer, output: Buffer): Promise<InflateResult> */
static napi_value indexer_inflate(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], self;
  Indexer *ix = NULL;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  NAPI_CALL(env, napi_unwrap(env, self, (void **)&ix));
  if (ix->busy) {
    napi_throw_error(env, INTERNAL_ERROR, "GzipIndexer: an inflate is already running");
    return NULL;
  }
  if (ix->broken) {
    napi_throw_error(env, INTERNAL_ERROR, "GzipIndexer: unusable after a data error");
    return NULL;
  }
  unsigned char *in, *out;
  size_t in_len, out_len;
  if (argc < 2 || !get_bytes(env, argv[0], "input", &in, &in_len) ||
      !get_bytes(env, argv[1], "output", &out, &out_len))
    return NULL;

  InflateJob *w = calloc(1, sizeof *w);
  if (!w) {
    return throw_internal(env, "out of memory");
  }
  w->ix = ix;
  w->in = in;
  w->in_len = in_len;
  w->out = out;
  w->out_len = out_len;
  napi_value keep[3] = {self, argv[0], argv[1]};
  napi_value promise =
      job_start(env, &w->job, "clip_indexer.inflate", keep, 3, inflate_execute, inflate_complete);
  if (!promise) {
    free(w);
    return NULL;
  }
  ix->busy = 1;
  return promise;
}

static void indexer_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Indexer *ix = data;
  /* A running job keeps its indexer alive, so this only happens when the process exits mid-inflate
     (process.exit): leave the memory to the exiting process rather than pull it from under the job. */
  if (ix->busy) return;
  inflateEnd(&ix->strm);
  free(ix);
}

/* new GzipIndexer(spanSize: number) */
static napi_value indexer_new(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  double span = 0;
  if (argc < 1 || napi_get_value_double(env, argv[0], &span) != napi_ok || !(span >= 1) ||
      span > 9007199254740991.0) {
    napi_throw_range_error(env, NULL, "spanSize must be a positive number");
    return NULL;
  }
  Indexer *ix = calloc(1, sizeof *ix);
  if (!ix) {
    return throw_internal(env, "out of memory");
  }
  ix->span_size = (uint64_t)span;
  /* 15 + 16: gzip wrapper only, 32 KiB window. */
  int ret = inflateInit2(&ix->strm, 15 + 16);
  if (ret != Z_OK) {
    free(ix);
    napi_throw_error(env, INTERNAL_ERROR, "inflateInit2 failed");
    return NULL;
  }
  return wrap_native(env, self, ix, indexer_finalize);
}

/* ---- extractSpan ------------------------------------------------------------------------------ */

typedef struct {
  Job job; /* first member */
  const unsigned char *in;
  size_t in_len;
  int bits;
  const unsigned char *window;
  size_t window_len;
  unsigned char *out;
  size_t out_len;
} ExtractJob;

/* Runs on the thread pool (zran's deflate_index_extract, without the skipping). */
static void extract_execute(napi_env env, void *data) {
  (void)env;
  ExtractJob *w = data;
  z_stream s;
  memset(&s, 0, sizeof s);
  int ret = inflateInit2(&s, -15); /* raw deflate: we start in the middle of a member */
  if (ret != Z_OK) {
    job_fail_zlib(&w->job, ret, "inflateInit2", s.msg);
    return;
  }
  const unsigned char *in = w->in;
  size_t in_len = w->in_len;
  if (w->bits) {
    /* The block's first `bits` bits are the high bits of the byte before compressedOffset. */
    if (in_len == 0) {
      job_fail(&w->job, DATA_ERROR, "no compressed data");
      goto done;
    }
    ret = inflatePrime(&s, w->bits, in[0] >> (8 - w->bits));
    if (ret != Z_OK) {
      job_fail_zlib(&w->job, ret, "inflatePrime", s.msg);
      goto done;
    }
    in++;
    in_len--;
  }
  if (w->window_len) {
    ret = inflateSetDictionary(&s, w->window, (uInt)w->window_len);
    if (ret != Z_OK) {
      job_fail_zlib(&w->job, ret, "inflateSetDictionary", s.msg);
      goto done;
    }
  }
  s.next_in = (Bytef *)in;
  s.avail_in = (uInt)in_len;
  s.next_out = w->out;
  s.avail_out = (uInt)w->out_len;
  int raw = 1; /* still in the member we started in, decoded without its gzip wrapper */
  while (s.avail_out > 0) {
    ret = inflate(&s, Z_NO_FLUSH);
    if (ret == Z_STREAM_END) {
      /* End of a member. In raw mode zlib has not read its trailer (CRC-32, ISIZE): skip it. */
      if (raw) {
        if (s.avail_in < 8) break;
        s.next_in += 8;
        s.avail_in -= 8;
      }
      if (s.avail_in == 0) break;
      /* Another member follows: decode it whole, header and trailer included. */
      ret = inflateReset2(&s, 15 + 16);
      if (ret != Z_OK) {
        job_fail_zlib(&w->job, ret, "inflateReset2", s.msg);
        goto done;
      }
      raw = 0;
      continue;
    }
    if (ret == Z_BUF_ERROR) break; /* input used up */
    if (ret != Z_OK) {
      job_fail_zlib(&w->job, ret, "gzip data", s.msg);
      goto done;
    }
  }
  if (s.avail_out > 0) {
    char message[sizeof w->job.error];
    snprintf(message, sizeof message, "compressed data ended after %zu of %zu bytes",
             w->out_len - s.avail_out, w->out_len);
    job_fail(&w->job, DATA_ERROR, message);
  }
done:
  inflateEnd(&s);
}

static void extract_complete(napi_env env, napi_status status, void *data) {
  ExtractJob *w = data;
  if (status != napi_ok && !w->job.error_code) job_fail(&w->job, INTERNAL_ERROR, "extract was cancelled");
  job_settle(env, &w->job, NULL);
  job_release(env, &w->job);
  free(w);
}

/* extractSpan(compressed: Buffer, bits: number, window: Buffer, output: Buffer): Promise<void> */
static napi_value extract_span(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  unsigned char *in, *window, *out;
  size_t in_len, window_len, out_len;
  int32_t bits = -1;
  if (argc < 4) {
    napi_throw_type_error(env, NULL, "extractSpan(compressed, bits, window, output)");
    return NULL;
  }
  if (napi_get_value_int32(env, argv[1], &bits) != napi_ok || bits < 0 || bits > 7) {
    napi_throw_range_error(env, NULL, "bits must be an integer from 0 to 7");
    return NULL;
  }
  if (!get_bytes(env, argv[0], "compressed", &in, &in_len) ||
      !get_bytes(env, argv[2], "window", &window, &window_len) ||
      !get_bytes(env, argv[3], "output", &out, &out_len))
    return NULL;
  if (window_len > WINDOW_SIZE) {
    napi_throw_range_error(env, NULL, "window is larger than 32 KiB");
    return NULL;
  }
  ExtractJob *w = calloc(1, sizeof *w);
  if (!w) {
    return throw_internal(env, "out of memory");
  }
  w->in = in;
  w->in_len = in_len;
  w->bits = bits;
  w->window = window;
  w->window_len = window_len;
  w->out = out;
  w->out_len = out_len;
  napi_value keep[3] = {argv[0], argv[2], argv[3]};
  napi_value promise =
      job_start(env, &w->job, "clip_indexer.extractSpan", keep, 3, extract_execute, extract_complete);
  if (!promise) free(w);
  return promise;
}

/* ---- Registration ----------------------------------------------------------------------------- */

napi_value zran_register(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"inflate", NULL, indexer_inflate, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value indexer_class, extract;
  NAPI_CALL(env, napi_define_class(env, "GzipIndexer", NAPI_AUTO_LENGTH, indexer_new, NULL, 1,
                                   methods, &indexer_class));
  NAPI_CALL(env, napi_set_named_property(env, exports, "GzipIndexer", indexer_class));
  NAPI_CALL(env, napi_create_function(env, "extractSpan", NAPI_AUTO_LENGTH, extract_span, NULL, &extract));
  NAPI_CALL(env, napi_set_named_property(env, exports, "extractSpan", extract));
  return exports;
}
