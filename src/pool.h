/*
 * pool.h - what pool.c and future.c share: the async result object and
 * the process-wide lock and condition variable every async waits on.
 * Not installed.
 */
#ifndef MPROC_POOL_H
#define MPROC_POOL_H

#include "internal.h"
#include "shared.h"

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

/* ---- array maps and reductions --------------------------------------- */

typedef struct mp__arrjob mp__arrjob;     /* one call's arrays */
typedef struct mp__arrcache mp__arrcache; /* a worker's mapped segments */

/* A worker keeps the segments of array maps mapped while it has work,
 * and lets them go once idle this long (seconds). */
#define MP__ARRAY_IDLE 1.0

/* An array map's workers take its chunks by a counter in shared memory
 * (a slot of 64 bytes in a segment of the pool's); this many slots, so
 * this many maps at once (more take their chunks one message each). */
#define MP__CTL_SLOTS 64
#define MP__CTL_SLOT 64

/* pool_array.c, the caller's side: the descriptor of chunk [first,
 * first + n) for the workers (*desc realloc'd, *n_out bytes); the answer
 * of a chunk (pool lock held: copies its output out, keeps its
 * accumulator); the last reference lets the arrays go. */
int mp__array_desc(mp__arrjob *a, size_t first, size_t n,
                   unsigned char **desc, size_t *n_out);
int mp__array_answer(mp__arrjob *a, size_t chunk, size_t first, size_t n,
                     const unsigned char *acc, size_t acc_n);
void mp__array_unref(mp__arrjob *a);
/* The number of chunks its workers take by a counter (one message per
 * worker), or 0: one message per chunk. */
size_t mp__array_counted(mp__arrjob *a);
/* By a counter: 1 once every chunk is done (*fail_at: the first failed
 * chunk, UINT64_MAX for none; may be NULL); the output copied back
 * (pool lock held). */
int mp__array_all_done(mp__arrjob *a, uint64_t *fail_at);
void mp__array_finish(mp__arrjob *a);
/* Sleep until the last chunk is done (its worker wakes us), at most
 * timeout seconds. */
void mp__array_sleep(mp__arrjob *a, double timeout);
/* The call has ended and no worker touches its arrays any more: the
 * scratch segment goes back to the pool for the next call at once (the
 * job itself lives on until every worker has answered). */
void mp__array_release(mp__arrjob *a);

/* pool_array.c, the worker's side: run the kernel of one chunk.  0 when
 * it ran (*status: its return; *acc, *acc_n: a reduction's accumulator,
 * malloc'd), or why it could not (a bad descriptor, segments that cannot
 * be had).  local: a thread pool's worker (addresses, no segments). */
int mp__array_run(mp__arrcache **cache, int local, void (*fn)(void),
                  const unsigned char *desc, size_t n, unsigned char **acc,
                  size_t *acc_n, int *status, uint32_t *fail_chunk);
void mp__array_cache_drop(mp__arrcache **cache);

/* pool.c, for pool_array.c. */
int mp__pool_local(mp_pool *p);
int mp__pool_check(mp_pool *p, const char *what);
mp__seg *mp__pool_scratch_take(mp_pool *p, size_t size);
void mp__pool_scratch_give(mp_pool *p, mp__seg *s);
/* A counter slot: the pool's segment (a reference) and the slot's
 * offset in it; NULL when all are taken.  give: the slot is free. */
mp__seg *mp__pool_ctl_take(mp_pool *p, size_t *off);
void mp__pool_ctl_give(mp_pool *p, size_t off);
/* Run an array job (takes arr's reference, also on failure). */
int mp__pool_run_array(mp_pool *p, void (*fn)(void), mp__arrjob *arr,
                       size_t count, size_t chunksize, mp_result_cb cb,
                       mp_error_cb ecb, void *arg, mp_async **out,
                       const char *what);

/* pool.c: a sync map's caller waits on its counter (see pool.c). */
void mp__pool_array_wait(mp_pool *p, mp_async *a, mp__arrjob *arr);

/* log.c: mproc's own log lines. */
void mp__log(int level, const char *fmt, ...) MP_PRINTF(2, 3);

#endif /* MPROC_POOL_H */
