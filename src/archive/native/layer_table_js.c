/*
 * The N-API binding of layer_table.c, on the libuv thread pool so that a large archive never holds the
 * event loop:
 *
 *   buildLayerTable(body, options) -> Promise<result>
 *     body     the archive body (a Buffer; not changed until the promise settles)
 *     options  { maxEntries, maxPathBytes, maxNameBytes, maxMetadataBytes, uncompressedSize,
 *                bounds: Float64Array, opaqueXattrNames: string[], table: boolean }
 *     result   { entryCount, problemCount, problems: string[], table?: Buffer }
 *              or { error: 'format' | 'limit', message, limit?, limitValue? } for an archive that breaks
 *              a rule or a limit (src/archive/entry-table.ts turns it into the typed error).
 */
#include <node_api.h>
#include <stdlib.h>
#include <string.h>

#define NAPI_INTERNAL_CODE "CLIP_ARCHIVE_INTERNAL"
#include "napi_call.h"
#include "layer_table.h"

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref body_ref;
  lt_input in;
  lt_output out;
  uint64_t *bounds;
  char **names;
  uint32_t *name_lens;
} job_t;

static void job_free(napi_env env, job_t *job) {
  if (job->body_ref) napi_delete_reference(env, job->body_ref);
  free(job->bounds);
  for (uint32_t i = 0; i < job->in.opaque_count; i++) free(job->names[i]);
  free(job->names);
  free(job->name_lens);
  free(job->out.table);
  free(job);
}

static void execute(napi_env env, void *data) {
  (void)env;
  job_t *job = data;
  lt_build(&job->in, &job->out);
}

static void free_table(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static napi_value number(napi_env env, double v) {
  napi_value out;
  return napi_create_double(env, v, &out) == napi_ok ? out : NULL;
}

static napi_value result_of(napi_env env, job_t *job) {
  napi_value r, v;
  NAPI_CALL(env, napi_create_object(env, &r));
  if (job->out.error == LT_FORMAT || job->out.error == LT_LIMIT) {
    NAPI_CALL(env, napi_create_string_utf8(env, job->out.error == LT_LIMIT ? "limit" : "format", NAPI_AUTO_LENGTH, &v));
    NAPI_CALL(env, napi_set_named_property(env, r, "error", v));
    NAPI_CALL(env, napi_create_string_utf8(env, job->out.message, NAPI_AUTO_LENGTH, &v));
    NAPI_CALL(env, napi_set_named_property(env, r, "message", v));
    if (job->out.error == LT_LIMIT) {
      NAPI_CALL(env, napi_create_string_utf8(env, job->out.limit, NAPI_AUTO_LENGTH, &v));
      NAPI_CALL(env, napi_set_named_property(env, r, "limit", v));
      NAPI_CALL(env, napi_set_named_property(env, r, "limitValue", number(env, (double)job->out.limit_value)));
    }
    return r;
  }
  NAPI_CALL(env, napi_set_named_property(env, r, "entryCount", number(env, (double)job->out.entry_count)));
  NAPI_CALL(env, napi_set_named_property(env, r, "problemCount", number(env, job->out.problem_count)));
  napi_value list;
  uint32_t shown = job->out.problem_count < LT_SHOWN_PROBLEMS ? job->out.problem_count : LT_SHOWN_PROBLEMS;
  NAPI_CALL(env, napi_create_array_with_length(env, shown, &list));
  for (uint32_t i = 0; i < shown; i++) {
    NAPI_CALL(env, napi_create_string_utf8(env, job->out.problems[i], NAPI_AUTO_LENGTH, &v));
    NAPI_CALL(env, napi_set_element(env, list, i, v));
  }
  NAPI_CALL(env, napi_set_named_property(env, r, "problems", list));
  if (job->out.table) {
    /* The table becomes the Buffer's memory (no copy); freed with it. */
    NAPI_CALL(env, napi_create_external_buffer(env, job->out.table_len, job->out.table, free_table, NULL, &v));
    job->out.table = NULL;
    NAPI_CALL(env, napi_set_named_property(env, r, "table", v));
  }
  return r;
}

static void complete(napi_env env, napi_status status, void *data) {
  job_t *job = data;
  napi_value value = NULL;
  if (status == napi_ok && job->out.error != LT_NOMEM) value = result_of(env, job);
  if (value) {
    napi_resolve_deferred(env, job->deferred, value);
  } else {
    napi_value message, error;
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) napi_get_and_clear_last_exception(env, &error);
    else {
      napi_create_string_utf8(env, job->out.error == LT_NOMEM ? "layer table: out of memory" : "layer table: N-API call failed", NAPI_AUTO_LENGTH, &message);
      napi_create_error(env, NULL, message, &error);
    }
    napi_reject_deferred(env, job->deferred, error);
  }
  napi_delete_async_work(env, job->work);
  job_free(env, job);
}

static int uint_option(napi_env env, napi_value options, const char *name, uint64_t *out) {
  napi_value v;
  double d;
  if (napi_get_named_property(env, options, name, &v) != napi_ok || napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d > 9007199254740991.0) {
    napi_throw_type_error(env, NULL, "buildLayerTable: a limit or size is not a non-negative safe integer");
    return 0;
  }
  *out = (uint64_t)d;
  return 1;
}

static napi_value build_layer_table(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], v;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool is_buffer = false;
  if (argc < 2 || napi_is_buffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer) {
    napi_throw_type_error(env, NULL, "buildLayerTable(body, options): body is not a Buffer");
    return NULL;
  }
  job_t *job = calloc(1, sizeof(job_t));
  if (!job) {
    napi_throw_error(env, NAPI_INTERNAL_CODE, "out of memory");
    return NULL;
  }
  void *body;
  size_t body_len;
  lt_input *in = &job->in;
  napi_value options = argv[1];
  bool want_table = false;
  int ok = napi_get_buffer_info(env, argv[0], &body, &body_len) == napi_ok && uint_option(env, options, "maxEntries", &in->limits.max_entries) &&
           uint_option(env, options, "maxPathBytes", &in->limits.max_path_bytes) && uint_option(env, options, "maxNameBytes", &in->limits.max_name_bytes) &&
           uint_option(env, options, "maxMetadataBytes", &in->limits.max_metadata_bytes) &&
           uint_option(env, options, "uncompressedSize", &in->uncompressed_size) && napi_get_named_property(env, options, "table", &v) == napi_ok &&
           napi_get_value_bool(env, v, &want_table) == napi_ok;
  in->body = body;
  in->body_len = body_len;
  in->want_table = want_table;
  /* Span bounds */
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  if (ok) {
    ok = napi_get_named_property(env, options, "bounds", &v) == napi_ok && napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) == napi_ok &&
         type == napi_float64_array && length < UINT32_MAX;
    if (ok && (job->bounds = malloc((length ? length : 1) * sizeof(uint64_t))) == NULL) ok = 0;
    for (size_t i = 0; ok && i < length; i++) {
      double d = ((const double *)data)[i];
      if (!(d >= 0) || d > 9007199254740991.0) ok = 0;
      else job->bounds[i] = (uint64_t)d;
    }
    in->bounds = job->bounds;
    in->bound_count = (uint32_t)length;
  }
  /* Opaque xattr names */
  uint32_t count = 0;
  if (ok) {
    ok = napi_get_named_property(env, options, "opaqueXattrNames", &v) == napi_ok && napi_get_array_length(env, v, &count) == napi_ok && count <= 16;
    job->names = calloc(count ? count : 1, sizeof(char *));
    job->name_lens = calloc(count ? count : 1, sizeof(uint32_t));
    ok = ok && job->names && job->name_lens;
    for (uint32_t i = 0; ok && i < count; i++) {
      napi_value name;
      ok = napi_get_element(env, v, i, &name) == napi_ok && (job->names[i] = string_arg(env, name)) != NULL;
      if (ok) {
        job->name_lens[i] = (uint32_t)strlen(job->names[i]);
        in->opaque_count = i + 1;
      }
    }
    in->opaque_names = (const char *const *)job->names;
    in->opaque_lens = job->name_lens;
  }
  napi_value promise = NULL, name;
  if (ok) {
    ok = napi_create_reference(env, argv[0], 1, &job->body_ref) == napi_ok && napi_create_promise(env, &job->deferred, &promise) == napi_ok &&
         napi_create_string_utf8(env, "clip:layer-table", NAPI_AUTO_LENGTH, &name) == napi_ok &&
         napi_create_async_work(env, NULL, name, execute, complete, job, &job->work) == napi_ok && napi_queue_async_work(env, job->work) == napi_ok;
  }
  if (!ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_type_error(env, NULL, "buildLayerTable: bad options");
    job_free(env, job); /* a queued job is never left behind: queuing is the last step */
    return NULL;
  }
  return promise;
}

static napi_value layer_table_register(napi_env env, napi_value exports) {
  napi_value fn;
  NAPI_CALL(env, napi_create_function(env, "buildLayerTable", NAPI_AUTO_LENGTH, build_layer_table, NULL, &fn));
  NAPI_CALL(env, napi_set_named_property(env, exports, "buildLayerTable", fn));
  return exports;
}

static napi_value init(napi_env env, napi_value exports) { return layer_table_register(env, exports); }

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
