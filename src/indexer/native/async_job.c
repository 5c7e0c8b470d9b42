/* Promise-returning thread-pool jobs: see async_job.h. */
#include "async_job.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>

#define NAPI_INTERNAL_CODE INTERNAL_ERROR
#include "napi_call.h"

void job_fail(Job *job, const char *code, const char *message) {
  job->error_code = code;
  snprintf(job->error, sizeof job->error, "%s", message);
}

void job_release(napi_env env, Job *job) {
  for (int i = 0; i < job->nrefs; i++) napi_delete_reference(env, job->refs[i]);
  job->nrefs = 0;
  if (job->work) napi_delete_async_work(env, job->work);
  job->work = NULL;
}

void job_settle(napi_env env, Job *job, napi_value value) {
  if (job->error_code) {
    napi_value code, message, error;
    napi_create_string_utf8(env, job->error_code, NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, job->error, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, code, message, &error);
    napi_reject_deferred(env, job->deferred, error);
    return;
  }
  if (value == NULL) napi_get_undefined(env, &value);
  napi_resolve_deferred(env, job->deferred, value);
}

napi_value job_start(napi_env env, Job *job, const char *name, napi_value *values, int nvalues,
                     napi_async_execute_callback execute, napi_async_complete_callback complete) {
  napi_value resource_name, promise;
  for (int i = 0; i < nvalues && i < JOB_MAX_REFS; i++) {
    if (napi_create_reference(env, values[i], 1, &job->refs[i]) != napi_ok) goto fail;
    job->nrefs++;
  }
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name) != napi_ok) goto fail;
  if (napi_create_async_work(env, NULL, resource_name, execute, complete, job, &job->work) != napi_ok)
    goto fail;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) goto fail;
  if (napi_queue_async_work(env, job->work) != napi_ok) goto fail; /* never fails after a promise */
  return promise;
fail:
  throw_last_error(env);
  job_release(env, job);
  return NULL;
}

int get_bytes(napi_env env, napi_value value, const char *what, unsigned char **data, size_t *length) {
  bool is_buffer = false;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer) {
    char message[96];
    snprintf(message, sizeof message, "%s must be a Buffer", what);
    napi_throw_type_error(env, NULL, message);
    return 0;
  }
  void *ptr = NULL;
  if (napi_get_buffer_info(env, value, &ptr, length) != napi_ok) {
    throw_last_error(env);
    return 0;
  }
  if (*length > UINT_MAX) {
    napi_throw_range_error(env, NULL, "buffers are limited to 4 GiB");
    return 0;
  }
  *data = ptr;
  return 1;
}

napi_value wrap_native(napi_env env, napi_value self, void *native, napi_finalize finalize) {
  if (napi_wrap(env, self, native, finalize, NULL, NULL) != napi_ok) {
    finalize(env, native, NULL);
    throw_last_error(env);
    return NULL;
  }
  return self;
}

napi_value throw_internal(napi_env env, const char *message) {
  napi_throw_error(env, INTERNAL_ERROR, message);
  return NULL;
}
