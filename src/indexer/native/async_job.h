/*
 * Promise-returning jobs on the libuv thread pool, shared by the parts of the clip_indexer addon
 * (zran.c, sha256.c). A job keeps the JS objects it works on alive until it settles and carries one
 * error slot: set it from the execute callback with job_fail, and job_settle rejects with it.
 */
#ifndef CLIP_ASYNC_JOB_H
#define CLIP_ASYNC_JOB_H

#include <node_api.h>
#include <stddef.h>

#define JOB_MAX_REFS 4

/* Error codes seen by JavaScript: corrupt input, or anything else (out of memory, misuse). */
#define DATA_ERROR "CLIP_INDEXER_DATA_ERROR"
#define INTERNAL_ERROR "CLIP_INDEXER_INTERNAL"

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref refs[JOB_MAX_REFS]; /* JS objects (buffers, the owning object) that must outlive the job */
  int nrefs;
  const char *error_code; /* NULL on success */
  char error[160];
} Job;

/* Records a failure; callable from the thread pool. */
void job_fail(Job *job, const char *code, const char *message);

/* Keeps `values` alive, creates the promise and queues the job. Returns NULL with an exception pending
   (and what it created released) on failure; the caller then frees the job. */
napi_value job_start(napi_env env, Job *job, const char *name, napi_value *values, int nvalues,
                     napi_async_execute_callback execute, napi_async_complete_callback complete);

/* Settles the promise: rejects with the recorded error, or resolves with `value` (undefined if NULL). */
void job_settle(napi_env env, Job *job, napi_value value);

/* Releases the references and the work item; the caller frees the job itself. */
void job_release(napi_env env, Job *job);

/* Reads a Buffer argument (at most 4 GiB: zlib counts in uInt). Returns 0 with an exception pending. */
int get_bytes(napi_env env, napi_value value, const char *what, unsigned char **data, size_t *length);

/* Attaches `native` to the JS object `self`, to be released by `finalize` when the object is collected.
   On failure releases it at once with `finalize`, throws, and returns NULL. */
napi_value wrap_native(napi_env env, napi_value self, void *native, napi_finalize finalize);

/* Throws `message` with the internal error code and returns NULL, for one-line error exits. */
napi_value throw_internal(napi_env env, const char *message);

#endif
