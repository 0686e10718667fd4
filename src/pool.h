/*
 * pool.h - what pool.c and future.c share: the async result object and
 * the process-wide lock and condition variable every async waits on.
 * Not installed.
 */
#ifndef MPROC_POOL_H
#define MPROC_POOL_H

#include "internal.h"

enum { MP__ASYNC_PENDING = 0, MP__ASYNC_RUNNING = 1, MP__ASYNC_DONE = 2 };

struct mp_async {
  int refs;            /* the user's handle + the pool's job */
  int state;           /* MP__ASYNC_*, under mp__async_lock */
  int rc;              /* 0, MP_ETASK, MP_EWORKERDIED, ... once done */
  int status;          /* the task's own non-zero return (MP_ETASK) */
  int cancelled;
  volatile uint32_t done_flag; /* 1 once done: read without the lock */
  char *message;
  mp_args *result;
  mp_result_cb cb;
  mp_error_cb ecb;
  void *arg;
  struct mp__job *job; /* while not done: for cancel (under the pool's mu) */
  mp_pool *pool;
};

/* Every async's state changes under this lock, and the condition is
 * broadcast on each completion (waiters re-check their own). */
void mp__async_lock(void);
void mp__async_unlock(void);
/* Wait (lock held) until woken or the deadline (negative: none) passes:
 * 0 or MP_ETIMEDOUT. */
int mp__async_sleep(double deadline);

/* pool.c: an async that no pool completes, and its completion (result
 * taken; the completer's reference goes). */
mp_async *mp__async_detached(mp_result_cb cb, mp_error_cb ecb, void *arg);
void mp__async_finish(mp_async *a, int rc, const char *message,
                      mp_args *result);
/* pool.c: cancel the job of a pending async (1 if cancelled). */
int mp__pool_cancel(mp_async *a);
/* pool.c: cancel every job of the pool that has not started. */
void mp__pool_cancel_pending(mp_pool *p);

/* log.c: mproc's own log lines. */
void mp__log(int level, const char *fmt, ...) MP_PRINTF(2, 3);

#endif /* MPROC_POOL_H */
