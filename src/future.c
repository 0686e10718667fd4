/*
 * future.c - concurrent.futures over the pools: executors, wait and
 * as_completed.  A future is an mp_async (pool.c).
 */
#include <stdlib.h>

#include "pool.h"

struct mp_executor {
  mp_pool *pool;
  int shut;
};

int mp_executor_new_ex(mp_executor **out, const mp_pool_options *opt) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_executor_new: NULL out");
  *out = NULL;
  mp_executor *e = calloc(1, sizeof *e);
  if (e == NULL)
    return mp__error(MP_ENOMEM, "mp_executor_new: out of memory");
  int rc = mp_pool_new_ex(&e->pool, opt);
  if (rc != 0) {
    free(e);
    return rc;
  }
  *out = e;
  return 0;
}

int mp_executor_new(mp_executor **out, int kind, int workers) {
  mp_pool_options o = MP_POOL_OPTIONS_INIT;
  o.kind = kind;
  o.workers = workers > 0 ? workers : 0;
  return mp_executor_new_ex(out, &o);
}

int mp_executor_submit(mp_executor *e, mp_task_fn fn, const mp_args *args,
                       mp_async **future) {
  if (future != NULL)
    *future = NULL;
  if (e == NULL)
    return mp__error(MP_EINVAL, "mp_executor_submit: NULL executor");
  if (e->shut)
    return mp__error(MP_ESTATE, "cannot schedule new futures after shutdown");
  return mp_pool_apply_async(e->pool, fn, args, NULL, NULL, NULL, future);
}

int mp_executor_shutdown(mp_executor *e, int wait, int cancel_futures) {
  if (e == NULL)
    return mp__error(MP_EINVAL, "mp_executor_shutdown: NULL executor");
  if (cancel_futures)
    mp__pool_cancel_pending(e->pool);
  if (!e->shut) {
    e->shut = 1;
    int rc = mp_pool_close(e->pool);
    if (rc != 0)
      return rc;
  }
  return wait ? mp_pool_join(e->pool, MP_FOREVER) : 0;
}

void mp_executor_free(mp_executor *e) {
  if (e == NULL)
    return;
  mp_executor_shutdown(e, 1, 0);
  mp_pool_free(e->pool);
  free(e);
}

/* ---- wait and as_completed --------------------------------------------- */

static double deadline_of(double timeout) {
  return timeout < 0 ? -1 : mpi_now() + timeout;
}

int mp_futures_wait(mp_async *const *fs, size_t n, int return_when,
                    double timeout, int *done) {
  if (fs == NULL && n > 0)
    return mp__error(MP_EINVAL, "mp_futures_wait: NULL futures");
  if (return_when != MP_ALL_COMPLETED && return_when != MP_FIRST_COMPLETED &&
      return_when != MP_FIRST_EXCEPTION)
    return mp__error(MP_EINVAL, "mp_futures_wait: bad return_when %d",
                     return_when);
  int rc = mp__check_timeout(timeout);
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < n; i++)
    if (fs[i] == NULL)
      return mp__error(MP_EINVAL, "mp_futures_wait: future %zu is NULL", i);
  double deadline = deadline_of(timeout);
  int count;
  mp__async_lock();
  for (;;) {
    int failed = 0;
    count = 0;
    for (size_t i = 0; i < n; i++) {
      int d = fs[i]->state == MP__ASYNC_DONE;
      if (done != NULL)
        done[i] = d;
      count += d;
      failed |= d && fs[i]->rc != 0 && fs[i]->rc != MP_ECANCELLED;
    }
    if ((size_t)count == n ||
        (return_when == MP_FIRST_COMPLETED && count > 0) ||
        (return_when == MP_FIRST_EXCEPTION && failed))
      break;
    if (mp__async_sleep(deadline) == MP_ETIMEDOUT &&
        deadline >= 0 && mpi_now() >= deadline) {
      for (size_t i = 0; done != NULL && i < n; i++)
        done[i] = fs[i]->state == MP__ASYNC_DONE;
      count = 0;
      for (size_t i = 0; i < n; i++)
        count += fs[i]->state == MP__ASYNC_DONE;
      break;
    }
  }
  mp__async_unlock();
  return count;
}

struct mp_as_completed {
  mp_async **fs;
  unsigned char *given;
  size_t n, left;
  double deadline;
};

int mp_as_completed_new(mp_as_completed **out, mp_async *const *fs,
                        size_t n, double timeout) {
  if (out == NULL || (fs == NULL && n > 0))
    return mp__error(MP_EINVAL, "mp_as_completed_new: NULL argument");
  *out = NULL;
  int rc = mp__check_timeout(timeout);
  if (rc != 0)
    return rc;
  mp_as_completed *it = calloc(1, sizeof *it);
  if (it == NULL ||
      (n > 0 && ((it->fs = malloc(n * sizeof *it->fs)) == NULL ||
                 (it->given = calloc(n, 1)) == NULL))) {
    if (it)
      free(it->fs);
    free(it);
    return mp__error(MP_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    if (fs[i] == NULL) {
      free(it->fs);
      free(it->given);
      free(it);
      return mp__error(MP_EINVAL, "mp_as_completed_new: future %zu is NULL",
                       i);
    }
    it->fs[i] = fs[i];
  }
  it->n = it->left = n;
  it->deadline = deadline_of(timeout);
  *out = it;
  return 0;
}

int mp_as_completed_next(mp_as_completed *it, size_t *index) {
  if (it == NULL)
    return mp__error(MP_EINVAL, "mp_as_completed_next: NULL iterator");
  if (it->left == 0)
    return 0;
  mp__async_lock();
  for (;;) {
    for (size_t i = 0; i < it->n; i++)
      if (!it->given[i] && it->fs[i]->state == MP__ASYNC_DONE) {
        it->given[i] = 1;
        it->left--;
        mp__async_unlock();
        if (index != NULL)
          *index = i;
        return 1;
      }
    if (mp__async_sleep(it->deadline) == MP_ETIMEDOUT &&
        it->deadline >= 0 && mpi_now() >= it->deadline) {
      mp__async_unlock();
      return mp__error(MP_ETIMEDOUT, "%zu (of %zu) futures unfinished",
                       it->left, it->n);
    }
  }
}

void mp_as_completed_free(mp_as_completed *it) {
  if (it == NULL)
    return;
  free(it->fs);
  free(it->given);
  free(it);
}
