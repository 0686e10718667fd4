/*
 * mgr_pool.c - the Manager's Pool (Python's SyncManager.Pool): an mp_pool
 * of worker processes that lives in the server and runs what its
 * clients ask for (apply, map, starmap; close, terminate, join).
 *
 * A task function comes as (module, offset), as a process target or a
 * pool task travels, and is looked up in the server's program the way a
 * pool worker looks it up (mpi_fn_decode): a module the server cannot
 * load or an offset outside it is MP_ENOENT.  The server only hands the
 * function on: the pool's worker processes call it, never the server.
 *
 * A call that waits (a map, a join) does so without the server's lock,
 * with the object pinned, looking every WAIT_SLICE that its client is
 * still there and the server not stopping; a map whose client went away
 * runs to its end in the workers and its result is dropped.  Malformed
 * arguments (only a client of its own making sends them) are MP_EPROTO.
 */
#include <stdlib.h>
#include <string.h>

#include "manager.h"

#define WAIT_SLICE 0.1
/* The most workers a client may ask the server for. */
#define POOL_MAX_WORKERS 1024

enum { RUN_APPLY, RUN_MAP, RUN_STARMAP };

static int pool_create(mgr_call *c, mgr_obj *o) {
  size_t n = mp_args_count(c->args);
  if (n > 1 || (n == 1 && mp_args_type(c->args, 0) != MP_ARG_INT))
    return mp__error(MP_EPROTO, "Pool takes a number of workers at most");
  int64_t workers = n == 1 ? mp_args_int(c->args, 0) : 0;
  if (workers < 0 || workers > POOL_MAX_WORKERS)
    return mp__error(MP_EINVAL, "a managed Pool has 1 to %d workers (0: "
                     "the server's CPUs), not %lld", POOL_MAX_WORKERS,
                     (long long)workers);
  if (c->conn == NULL) /* fuzzing: no processes */
    return mp__error(MP_ENOTSUP, "a Pool needs a client connection");
  /* Starting the workers takes a while: others are served meanwhile (the
   * object is nobody's yet). */
  mp_pool *pool = NULL;
  mp__mgr_unlock(c);
  int rc = mp_pool_new(&pool, (int)workers);
  mp__mgr_relock(c);
  if (rc == 0)
    o->data = pool;
  return rc;
}

static void pool_destroy(mgr_server *srv, mgr_obj *o) {
  (void)srv;
  mp_pool_free(o->data);
}

/* Arguments i, i + 1: a task function as (module, offset). */
static int task_fn(mgr_call *c, size_t i, mp_task_fn *fn) {
  if (mp_args_type(c->args, i) != MP_ARG_STR ||
      mp_args_type(c->args, i + 1) != MP_ARG_INT ||
      mp_args_int(c->args, i + 1) < 0)
    return mp__error(MP_EPROTO, "a task function is (module, offset)");
  const char *module = mp_args_str(c->args, i);
  uint64_t offset = (uint64_t)mp_args_int(c->args, i + 1);
  void (*f)(void) = NULL;
  int rc = mpi_fn_decode(module, offset, &f);
  if (rc != 0 || f == NULL)
    return mp__error(MP_ENOENT, "the manager's program has no task function "
                     "at offset %llu of %s%s%s (a client of another program "
                     "or build?): %s", (unsigned long long)offset,
                     module[0] ? "'" : "", module[0] ? module : "its program",
                     module[0] ? "'" : "", mp_last_error_message());
  *fn = (mp_task_fn)f;
  return 0;
}

/* The failure of a step done without the server's lock, kept across the
 * relock and unpin (which may free the pool and set messages of their
 * own) and set again. */
typedef struct outcome {
  int rc;
  char message[512];
} outcome;

static void outcome_keep(outcome *out, int rc) {
  out->rc = rc;
  if (rc != 0)
    mp__strlcpy(out->message, mp_last_error_message(), sizeof out->message);
}

static int outcome_give(const outcome *out) {
  return out->rc ? mp__error(out->rc, "%s", out->message) : 0;
}

/* Wait for a, looking every slice that the caller is still there. */
static int await(mgr_call *c, mp_async *a) {
  for (;;) {
    int rc = mp__mgr_check(c);
    if (rc != 0)
      return rc;
    rc = mp_async_wait(a, WAIT_SLICE);
    if (rc != MP_ETIMEDOUT)
      return rc;
  }
}

/* apply(module, offset, args), map(module, offset, items, chunksize),
 * starmap(...): the task's values, or each call's value in order. */
static int pool_run(mgr_call *c, mgr_obj *o, int kind) {
  size_t want = kind == RUN_APPLY ? 3 : 4;
  mp_task_fn fn = NULL;
  if (mp_args_count(c->args) != want || mp_args_type(c->args, 2) !=
      MP_ARG_TUPLE || (want == 4 && (mp_args_type(c->args, 3) != MP_ARG_INT ||
                                     mp_args_int(c->args, 3) < 0)))
    return mp__error(MP_EPROTO, "Pool.%s takes (module, offset, %s)",
                     kind == RUN_APPLY ? "apply" : "map",
                     kind == RUN_APPLY ? "args" : "items, chunksize");
  int rc = task_fn(c, 0, &fn);
  if (rc != 0)
    return rc;
  const mp_args *in = mp_args_tuple(c->args, 2);
  size_t chunk = want == 4 ? (size_t)mp_args_int(c->args, 3) : 0;
  mp_pool *pool = o->data;
  mp_async *a = NULL;
  outcome out;
  o->refs++; /* pinned while the lock is down */
  mp__mgr_unlock(c);
  if (kind == RUN_APPLY)
    rc = mp_pool_apply_async(pool, fn, in, NULL, NULL, NULL, &a);
  else if (kind == RUN_MAP)
    rc = mp_pool_map_async(pool, fn, in, chunk, NULL, NULL, NULL, &a);
  else
    rc = mp_pool_starmap_async(pool, fn, in, chunk, NULL, NULL, NULL, &a);
  const mp_args *values = NULL;
  if (rc == 0) rc = await(c, a);
  if (rc == 0) rc = mp_async_get(a, 0, &values);
  outcome_keep(&out, rc);
  mp__mgr_relock(c);
  for (size_t i = 0; out.rc == 0 && values && i < mp_args_count(values);
       i++) {
    const void *p;
    size_t n;
    mp__args_item_raw(values, i, &p, &n);
    outcome_keep(&out, mp__mgr_result_item(c, p, n));
  }
  mp_async_free(a); /* (a map still running goes on; its result is lost) */
  mp__mgr_unref(c->srv, o);
  return outcome_give(&out);
}

static int pool_apply(mgr_call *c, mgr_obj *o) {
  return pool_run(c, o, RUN_APPLY);
}
static int pool_map(mgr_call *c, mgr_obj *o) {
  return pool_run(c, o, RUN_MAP);
}
static int pool_starmap(mgr_call *c, mgr_obj *o) {
  return pool_run(c, o, RUN_STARMAP);
}

enum { END_CLOSE, END_TERMINATE, END_JOIN };

/* close(), terminate(), join(timeout): as mp_pool_*, without the lock. */
static int pool_end(mgr_call *c, mgr_obj *o, int what) {
  size_t n = mp_args_count(c->args);
  double timeout = -1.0;
  if (what == END_JOIN) {
    int t = n == 1 ? mp_args_type(c->args, 0) : MP_ARG_NONE;
    if (t != MP_ARG_DOUBLE && t != MP_ARG_INT)
      return mp__error(MP_EPROTO, "Pool.join takes a timeout");
    timeout = t == MP_ARG_DOUBLE ? mp_args_double(c->args, 0)
                                 : (double)mp_args_int(c->args, 0);
    if (timeout != timeout)
      return mp__error(MP_EPROTO, "Pool.join: a NaN timeout");
  } else if (n != 0) {
    return mp__error(MP_EPROTO, "Pool.%s takes no arguments",
                     what == END_CLOSE ? "close" : "terminate");
  }
  mp_pool *pool = o->data;
  outcome out;
  o->refs++;
  mp__mgr_unlock(c);
  int rc;
  if (what == END_CLOSE) {
    rc = mp_pool_close(pool);
  } else if (what == END_TERMINATE) {
    rc = mp_pool_terminate(pool);
  } else {
    double deadline = timeout < 0 ? -1.0 : mpi_now() + timeout;
    for (;;) {
      double slice = WAIT_SLICE;
      if (deadline >= 0 && deadline - mpi_now() < slice)
        slice = deadline > mpi_now() ? deadline - mpi_now() : 0;
      rc = mp_pool_join(pool, slice);
      if (rc != MP_ETIMEDOUT || (deadline >= 0 && mpi_now() >= deadline))
        break;
      if ((rc = mp__mgr_check(c)) != 0)
        break;
    }
  }
  outcome_keep(&out, rc);
  mp__mgr_relock(c);
  mp__mgr_unref(c->srv, o);
  return outcome_give(&out);
}

static int pool_close(mgr_call *c, mgr_obj *o) {
  return pool_end(c, o, END_CLOSE);
}
static int pool_terminate(mgr_call *c, mgr_obj *o) {
  return pool_end(c, o, END_TERMINATE);
}
static int pool_join(mgr_call *c, mgr_obj *o) {
  return pool_end(c, o, END_JOIN);
}

static const mgr_method pool_methods[] = {
    {"apply", pool_apply},   {"map", pool_map},
    {"starmap", pool_starmap}, {"close", pool_close},
    {"terminate", pool_terminate}, {"join", pool_join}};

const mgr_type mp__mgr_pool_type = {
    "Pool", pool_create, pool_destroy, pool_methods,
    sizeof pool_methods / sizeof pool_methods[0], NULL, NULL};
