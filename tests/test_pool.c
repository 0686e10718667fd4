/*
 * test_pool.c - process and thread pools, async results, imap,
 * executors and futures; worker deaths, maxtasksperchild, terminate.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods.h"
#include "support.h"

TS_SUITE(pool);
TS_SUITE(thread_pool);
TS_SUITE(executor);

/* ---- tasks ---------------------------------------------------------------- */

static int square(const mp_args *a, mp_args *r) {
  int64_t x = mp_args_int(a, 0);
  return mp_args_add_int(r, x * x);
}

static int mul(const mp_args *a, mp_args *r) {
  return mp_args_add_int(r, mp_args_int(a, 0) * mp_args_int(a, 1));
}

static int my_pid(const mp_args *a, mp_args *r) {
  (void)a;
  return mp_args_add_int(r, mp_getpid());
}

/* Adds as many values as its argument says (0: None, 2: a tuple). */
static int n_values(const mp_args *a, mp_args *r) {
  int64_t n = mp_args_int(a, 0);
  for (int64_t i = 0; i < n; i++)
    mp_args_add_int(r, i);
  return 0;
}

/* Fails with status 7 for x == 3. */
static int fail_on_3(const mp_args *a, mp_args *r) {
  int64_t x = mp_args_int(a, 0);
  if (x == 3)
    return mp_set_error(7, "no threes (%lld)", (long long)x);
  return mp_args_add_int(r, x);
}

static int echo(const mp_args *a, mp_args *r) {
  for (size_t i = 0; i < mp_args_count(a); i++) {
    int t = mp_args_type(a, i);
    if (t == MP_ARG_INT)
      mp_args_add_int(r, mp_args_int(a, i));
    else if (t == MP_ARG_STR)
      mp_args_add_str(r, mp_args_str(a, i));
    else if (t == MP_ARG_DOUBLE)
      mp_args_add_double(r, mp_args_double(a, i));
  }
  return 0;
}

/* Objects given to the workers by the initializer (Python's pattern). */
static mp_event *g_started, *g_release;
static mp_value *g_pid;
static int g_inits;

static int init_objects(const mp_args *a) {
  g_started = mp_args_event(a, 0);
  g_release = mp_args_event(a, 1);
  g_pid = mp_args_value(a, 2);
  g_inits++;
  return g_started && g_release && g_pid ? 0 : 1;
}

/* Record our pid, say we started, wait to be released. */
static int blocker(const mp_args *a, mp_args *r) {
  (void)a;
  mp_value_set_int(g_pid, mp_getpid());
  mp_event_set(g_started);
  if (mp_event_wait(g_release, 30.0) != 0)
    return mp_set_error(9, "never released");
  return mp_args_add_int(r, 1);
}

static int init_fails(const mp_args *a) {
  (void)a;
  return mp_set_error(4, "cannot initialise %s", "the widget");
}

static int exits_3(const mp_args *a, mp_args *r) {
  (void)a;
  (void)r;
  exit(3);
}

typedef struct blockers {
  mp_event *started, *release;
  mp_value *pid;
  mp_pool *pool;
} blockers;

/* The blocker's objects and the pool options that hand them to workers
 * (*ia: the initializer's arguments, freed by the caller). */
static void blocker_options(blockers *b, int kind, int workers,
                            const char *method, mp_pool_options *o,
                            mp_args **ia) {
  cr_assert_eq(mp_event_new(&b->started), 0);
  cr_assert_eq(mp_event_new(&b->release), 0);
  cr_assert_eq(mp_value_new(&b->pid, 'q', NULL), 0);
  b->pool = NULL;
  cr_assert_eq(mp_args_new(ia), 0);
  mp_args_add_event(*ia, b->started);
  mp_args_add_event(*ia, b->release);
  mp_args_add_value(*ia, b->pid);
  mp_pool_options def = MP_POOL_OPTIONS_INIT;
  *o = def;
  o->kind = kind;
  o->workers = workers;
  o->initializer = init_objects;
  o->initargs = *ia;
  if (method != NULL)
    cr_assert_eq(mp_get_context(method, &o->context), 0);
}

static mp_pool *new_blocker_pool(blockers *b, int kind, int workers,
                                 const char *method) {
  mp_pool_options o;
  mp_args *ia;
  blocker_options(b, kind, workers, method, &o, &ia);
  cr_assert_eq(mp_pool_new_ex(&b->pool, &o), 0, "%s",
               mp_last_error_message());
  mp_args_free(ia);
  return b->pool;
}

static void free_blockers(blockers *b) {
  mp_event_set(b->release);
  mp_pool_free(b->pool);
  mp_event_free(b->started);
  mp_event_free(b->release);
  mp_value_free(b->pid);
}

static mp_args *ints(int64_t from, int64_t to) {
  mp_args *a;
  cr_assert_eq(mp_args_new(&a), 0);
  for (int64_t i = from; i < to; i++)
    mp_args_add_int(a, i);
  return a;
}

static void check_squares(const mp_args *r, int64_t from, int64_t to) {
  cr_assert_eq(mp_args_count(r), (size_t)(to - from));
  for (int64_t i = from; i < to; i++)
    cr_assert_eq(mp_args_int(r, (size_t)(i - from)), i * i, "item %lld",
                 (long long)i);
}

static mp_pool *method_pool(const char *method, int workers) {
  mp_pool_options o = MP_POOL_OPTIONS_INIT;
  o.workers = workers;
  cr_assert_eq(mp_get_context(method, &o.context), 0);
  mp_pool *p;
  cr_assert_eq(mp_pool_new_ex(&p, &o), 0, "%s", mp_last_error_message());
  return p;
}

/* ---- map, starmap, apply ---------------------------------------------- */

static void check_map_square(const char *method) {
  mp_pool *p = method_pool(method, 4);
  mp_args *in = ints(1, 5), *out = NULL;
  cr_assert_eq(mp_pool_map(p, square, in, 0, &out), 0, "%s",
               mp_last_error_message());
  check_squares(out, 1, 5);
  mp_args_free(out);
  mp_args_free(in);
  cr_assert_eq(mp_pool_close(p), 0);
  cr_assert_eq(mp_pool_join(p, 30.0), 0);
  mp_pool_free(p);
}
FOR_EACH_METHOD(check_map_square)

static void map_chunks(int kind) {
  mp_pool *p;
  cr_assert_eq(kind == MP_POOL_THREAD ? mp_thread_pool_new(&p, 3)
                                      : mp_pool_new(&p, 3), 0);
  cr_assert_eq(mp_pool_workers(p), 3);
  mp_args *in = ints(0, 5000);
  size_t sizes[] = {0, 1, 7, 5000, 100000};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    mp_args *out = NULL;
    cr_assert_eq(mp_pool_map(p, square, in, sizes[k], &out), 0,
                 "chunksize %zu: %s", sizes[k], mp_last_error_message());
    check_squares(out, 0, 5000);
    mp_args_free(out);
  }
  mp_args_free(in);
  mp_pool_free(p);
}

Test(pool, map_chunksizes, .timeout = TS_TIMEOUT) { map_chunks(MP_POOL_PROCESS); }
Test(thread_pool, map_chunksizes, .timeout = TS_TIMEOUT) {
  map_chunks(MP_POOL_THREAD);
}

Test(pool, map_empty_and_values, .timeout = TS_TIMEOUT) {
  mp_pool *p;
  cr_assert_eq(mp_pool_new(&p, 2), 0);
  mp_args *in, *out = NULL;
  cr_assert_eq(mp_args_new(&in), 0);
  cr_assert_eq(mp_pool_map(p, square, in, 0, &out), 0);
  cr_assert_eq(mp_args_count(out), 0);
  mp_args_free(out);
  mp_args_free(in);
  /* One value: itself; none: None; several: a tuple. */
  in = ints(0, 4);
  cr_assert_eq(mp_pool_map(p, n_values, in, 1, &out), 0);
  cr_assert_eq(mp_args_count(out), 4);
  cr_assert_eq(mp_args_type(out, 0), MP_ARG_NONE);
  cr_assert_eq(mp_args_type(out, 1), MP_ARG_INT);
  cr_assert_eq(mp_args_int(out, 1), 0);
  cr_assert_eq(mp_args_type(out, 3), MP_ARG_TUPLE);
  const mp_args *t = mp_args_tuple(out, 3);
  cr_assert_not_null(t);
  cr_assert_eq(mp_args_count(t), 3);
  cr_assert_eq(mp_args_int(t, 2), 2);
  mp_args_free(out);
  mp_args_free(in);
  mp_pool_free(p);
}

static void starmap_check(int kind) {
  mp_pool *p;
  cr_assert_eq(kind == MP_POOL_THREAD ? mp_thread_pool_new(&p, 2)
                                      : mp_pool_new(&p, 2), 0);
  mp_args *in, *out = NULL;
  cr_assert_eq(mp_args_new(&in), 0);
  for (int i = 0; i < 10; i++) {
    mp_args *t;
    mp_args_pack(&t, "ii", i, i + 1);
    mp_args_add_tuple(in, t);
    mp_args_free(t);
  }
  cr_assert_eq(mp_pool_starmap(p, mul, in, 3, &out), 0, "%s",
               mp_last_error_message());
  cr_assert_eq(mp_args_count(out), 10);
  for (int i = 0; i < 10; i++)
    cr_assert_eq(mp_args_int(out, (size_t)i), i * (i + 1));
  mp_args_free(out);
  /* An item that is not a tuple. */
  mp_args_add_int(in, 5);
  cr_assert_eq(mp_pool_starmap(p, mul, in, 3, &out), MP_ETYPE);
  cr_assert_null(out);
  mp_args_free(in);
  mp_pool_free(p);
}

Test(pool, starmap, .timeout = TS_TIMEOUT) { starmap_check(MP_POOL_PROCESS); }
Test(thread_pool, starmap, .timeout = TS_TIMEOUT) {
  starmap_check(MP_POOL_THREAD);
}

Test(pool, apply_values_and_pid, .timeout = TS_TIMEOUT) {
  mp_pool *p;
  cr_assert_eq(mp_pool_new(&p, 1), 0);
  mp_args *a, *r = NULL;
  mp_args_pack(&a, "isd", 42, "hello", 2.5);
  cr_assert_eq(mp_pool_apply(p, echo, a, &r), 0, "%s",
               mp_last_error_message());
  cr_assert_eq(mp_args_count(r), 3);
  cr_assert_eq(mp_args_int(r, 0), 42);
  cr_assert_str_eq(mp_args_str(r, 1), "hello");
  cr_assert_eq(mp_args_double(r, 2), 2.5);
  mp_args_free(r);
  mp_args_free(a);
  /* NULL arguments: an empty tuple; the worker is another process. */
  cr_assert_eq(mp_pool_apply(p, my_pid, NULL, &r), 0);
  int64_t pids[1];
  cr_assert_eq(mp_pool_worker_pids(p, pids, 1), 1);
  cr_assert_eq(mp_args_int(r, 0), pids[0]);
  cr_assert_neq(pids[0], mp_getpid());
  mp_args_free(r);
  mp_pool_free(p);
}

Test(thread_pool, apply_runs_here, .timeout = TS_TIMEOUT) {
  mp_pool *p;
  cr_assert_eq(mp_thread_pool_new(&p, 2), 0);
  mp_args *r = NULL;
  cr_assert_eq(mp_pool_apply(p, my_pid, NULL, &r), 0);
  cr_assert_eq(mp_args_int(r, 0), mp_getpid());
  mp_args_free(r);
  mp_pool_free(p);
}

Test(pool, bad_arguments, .timeout = TS_TIMEOUT) {
  mp_pool *p;
  mp_pool_options o = MP_POOL_OPTIONS_INIT;
  o.workers = -1;
  cr_assert_eq(mp_pool_new_ex(&p, &o), MP_EINVAL);
  o.workers = 1;
  o.kind = 7;
  cr_assert_eq(mp_pool_new_ex(&p, &o), MP_EINVAL);
  o.kind = MP_POOL_PROCESS;
  o.maxtasksperchild = -2;
  cr_assert_eq(mp_pool_new_ex(&p, &o), MP_EINVAL);
  cr_assert_eq(mp_pool_new(NULL, 1), MP_EINVAL);
  cr_assert_eq(mp_pool_new(&p, 1), 0);
  mp_args *r = NULL, *in = ints(0, 3);
  cr_assert_eq(mp_pool_map(p, NULL, in, 0, &r), MP_EINVAL);
  cr_assert_eq(mp_pool_map(p, square, NULL, 0, &r), MP_EINVAL);
  cr_assert_eq(mp_pool_apply(NULL, square, in, &r), MP_EINVAL);
  /* Objects do not travel in task arguments. */
  mp_lock *l;
  cr_assert_eq(mp_lock_new(&l), 0);
  mp_args *objs;
  mp_args_new(&objs);
  mp_args_add_lock(objs, l);
  cr_assert_eq(mp_pool_apply(p, echo, objs, &r), MP_ETYPE);
  cr_assert_eq(mp_pool_map(p, echo, objs, 0, &r), MP_ETYPE);
  mp_args_free(objs);
  mp_lock_free(l);
  /* join before close */
  cr_assert_eq(mp_pool_join(p, 1.0), MP_ESTATE);
  cr_assert_eq(mp_pool_join(p, -5.0), MP_EINVAL);
  mp_args_free(in);
  mp_pool_free(p);
  mp_pool_free(NULL);
}

/* ---- async results and callbacks -------------------------------------- */

typedef struct cb_state {
  mp_event *done;
  int64_t value;
  int status;
  char message[128];
} cb_state;

static void on_result(const mp_args *r, void *arg) {
  cb_state *s = arg;
  s->value = mp_args_int(r, 0);
  mp_event_set(s->done);
}

static void on_error(int status, const char *message, void *arg) {
  cb_state *s = arg;
  s->status = status;
  snprintf(s->message, sizeof s->message, "%s", message);
  mp_event_set(s->done);
}

static void callbacks(int kind) {
  mp_pool *p;
  cr_assert_eq(kind == MP_POOL_THREAD ? mp_thread_pool_new(&p, 2)
                                      : mp_pool_new(&p, 2), 0);
  cb_state s;
  memset(&s, 0, sizeof s);
  cr_assert_eq(mp_event_new(&s.done), 0);
  mp_args *a;
  mp_args_pack(&a, "i", 9);
  mp_async *r;
  cr_assert_eq(mp_pool_apply_async(p, square, a, on_result, on_error, &s, &r),
               0);
  cr_assert_eq(mp_event_wait(s.done, 20.0), 0);
  cr_assert_eq(s.value, 81);
  const mp_args *res;
  cr_assert_eq(mp_async_get(r, 5.0, &res), 0);
  cr_assert_eq(mp_args_int(res, 0), 81);
  cr_assert_eq(mp_async_ready(r), 1);
  cr_assert_eq(mp_async_successful(r), 1);
  mp_async_free(r);
  mp_args_free(a);
  /* A failing task: status and message reach the error callback and get. */
  mp_event_clear(s.done);
  mp_args_pack(&a, "i", 3);
  cr_assert_eq(mp_pool_apply_async(p, fail_on_3, a, on_result, on_error, &s,
                                   &r), 0);
  cr_assert_eq(mp_event_wait(s.done, 20.0), 0);
  cr_assert_eq(s.status, 7);
  cr_assert_str_eq(s.message, "no threes (3)");
  cr_assert_eq(mp_async_get(r, 5.0, &res), MP_ETASK);
  cr_assert_str_eq(mp_last_error_message(), "no threes (3)");
  cr_assert_eq(mp_async_successful(r), 0);
  int st = 0;
  const char *msg = NULL;
  cr_assert_eq(mp_async_error(r, &st, &msg), MP_ETASK);
  cr_assert_eq(st, 7);
  cr_assert_str_eq(msg, "no threes (3)");
  mp_async_free(r);
  mp_args_free(a);
  /* No handle wanted. */
  mp_event_clear(s.done);
  mp_args_pack(&a, "i", 5);
  cr_assert_eq(mp_pool_apply_async(p, square, a, on_result, NULL, &s, NULL),
               0);
  cr_assert_eq(mp_event_wait(s.done, 20.0), 0);
  cr_assert_eq(s.value, 25);
  mp_args_free(a);
  /* map_async: one error fails the map. */
  mp_args *in = ints(0, 10);
  mp_event_clear(s.done);
  cr_assert_eq(mp_pool_map_async(p, fail_on_3, in, 2, NULL, on_error, &s, &r),
               0);
  cr_assert_eq(mp_async_get(r, 20.0, &res), MP_ETASK);
  cr_assert_eq(mp_event_wait(s.done, 20.0), 0);
  cr_assert_eq(s.status, 7);
  mp_async_free(r);
  mp_args *out = NULL;
  cr_assert_eq(mp_pool_map(p, fail_on_3, in, 0, &out), MP_ETASK);
  cr_assert_str_eq(mp_last_error_message(), "no threes (3)");
  cr_assert_null(out);
  mp_args_free(in);
  mp_event_free(s.done);
  mp_pool_free(p);
}

Test(pool, callbacks_and_errors, .timeout = TS_TIMEOUT) {
  callbacks(MP_POOL_PROCESS);
}
Test(thread_pool, callbacks_and_errors, .timeout = TS_TIMEOUT) {
  callbacks(MP_POOL_THREAD);
}

static void async_timeouts(int kind) {
  blockers b;
  mp_pool *p = new_blocker_pool(&b, kind, 1, NULL);
  mp_async *r;
  cr_assert_eq(mp_pool_apply_async(p, blocker, NULL, NULL, NULL, NULL, &r), 0);
  cr_assert_eq(mp_event_wait(b.started, 20.0), 0);
  const mp_args *res;
  cr_assert_eq(mp_async_get(r, 0.05, &res), MP_ETIMEDOUT);
  cr_assert_eq(mp_async_wait(r, 0), MP_ETIMEDOUT);
  cr_assert_eq(mp_async_ready(r), 0);
  cr_assert_eq(mp_async_successful(r), MP_ESTATE);
  cr_assert_eq(mp_async_error(r, NULL, NULL), MP_ESTATE);
  cr_assert_eq(mp_async_running(r), 1);
  cr_assert_eq(mp_async_get(r, -3, &res), MP_EINVAL);
  mp_event_set(b.release);
  cr_assert_eq(mp_async_get(r, 20.0, &res), 0);
  cr_assert_eq(mp_args_int(res, 0), 1);
  mp_async_free(r);
  free_blockers(&b);
}

Test(pool, async_timeouts, .timeout = TS_TIMEOUT) {
  async_timeouts(MP_POOL_PROCESS);
}
Test(thread_pool, async_timeouts, .timeout = TS_TIMEOUT) {
  async_timeouts(MP_POOL_THREAD);
}

/* ---- never a hang ------------------------------------------------------ */

static void check_kill_worker(const char *method) {
  blockers b;
  mp_pool *p = new_blocker_pool(&b, MP_POOL_PROCESS, 2, method);
  mp_async *victim, *others[6];
  cr_assert_eq(mp_pool_apply_async(p, blocker, NULL, NULL, NULL, NULL,
                                   &victim), 0);
  cr_assert_eq(mp_event_wait(b.started, 20.0), 0);
  int64_t pid = 0;
  mp_value_get_int(b.pid, &pid);
  for (int i = 0; i < 6; i++) {
    mp_args *a;
    mp_args_pack(&a, "i", i);
    cr_assert_eq(mp_pool_apply_async(p, square, a, NULL, NULL, NULL,
                                     &others[i]), 0);
    mp_args_free(a);
  }
  ts_kill_pid(pid);
  const mp_args *res;
  cr_assert_eq(mp_async_get(victim, 20.0, &res), MP_EWORKERDIED, "%s",
               mp_last_error_message());
  cr_assert(strstr(mp_last_error_message(), "worker process") != NULL, "%s",
            mp_last_error_message());
  for (int i = 0; i < 6; i++) {
    cr_assert_eq(mp_async_get(others[i], 20.0, &res), 0, "task %d: %s", i,
                 mp_last_error_message());
    cr_assert_eq(mp_args_int(res, 0), i * i);
    mp_async_free(others[i]);
  }
  mp_async_free(victim);
  /* Replaced, and usable. */
  int64_t pids[2];
  cr_assert_eq(mp_pool_worker_pids(p, pids, 2), 2);
  cr_assert_neq(pids[0], pid);
  cr_assert_neq(pids[1], pid);
  mp_args *in = ints(0, 100), *out = NULL;
  cr_assert_eq(mp_pool_map(p, square, in, 1, &out), 0);
  check_squares(out, 0, 100);
  mp_args_free(out);
  mp_args_free(in);
  free_blockers(&b);
}
FOR_EACH_METHOD(check_kill_worker)

Test(pool, worker_exits_mid_task, .timeout = TS_TIMEOUT) {
  mp_pool *p;
  cr_assert_eq(mp_pool_new(&p, 1), 0);
  mp_args *r = NULL;
  cr_assert_eq(mp_pool_apply(p, exits_3, NULL, &r), MP_EWORKERDIED);
  cr_assert(strstr(mp_last_error_message(), "status 3") != NULL, "%s",
            mp_last_error_message());
  mp_args *a;
  mp_args_pack(&a, "i", 6);
  cr_assert_eq(mp_pool_apply(p, square, a, &r), 0);
  cr_assert_eq(mp_args_int(r, 0), 36);
  mp_args_free(r);
  mp_args_free(a);
  mp_pool_free(p);
}

Test(pool, maxtasksperchild, .timeout = TS_TIMEOUT) {
  mp_pool_options o = MP_POOL_OPTIONS_INIT;
  o.workers = 1;
  o.maxtasksperchild = 2;
  mp_pool *p;
  cr_assert_eq(mp_pool_new_ex(&p, &o), 0);
  mp_args *in = ints(0, 10), *out = NULL;
  cr_assert_eq(mp_pool_map(p, my_pid, in, 1, &out), 0, "%s",
               mp_last_error_message());
  cr_assert_eq(mp_args_count(out), 10);
  /* Tasks 2k and 2k+1 share a worker; each pair has a new one. */
  for (size_t i = 0; i < 10; i += 2) {
    cr_assert_eq(mp_args_int(out, i), mp_args_int(out, i + 1));
    if (i > 0)
      cr_assert_neq(mp_args_int(out, i), mp_args_int(out, i - 1));
  }
  mp_args_free(out);
  mp_args_free(in);
  mp_pool_free(p);
}

Test(pool, initializer_fails, .timeout = TS_TIMEOUT) {
  mp_pool_options o = MP_POOL_OPTIONS_INIT;
  o.workers = 2;
  o.initializer = init_fails;
  mp_pool *p;
  cr_assert_eq(mp_pool_new_ex(&p, &o), 0);
  mp_args *a, *r = NULL;
  mp_args_pack(&a, "i", 2);
  cr_assert_eq(mp_pool_apply(p, square, a, &r), MP_EBROKEN);
  cr_assert(strstr(mp_last_error_message(), "cannot initialise the widget"),
            "%s", mp_last_error_message());
  cr_assert_eq(mp_pool_apply(p, square, a, &r), MP_EBROKEN);
  mp_args_free(a);
  mp_pool_free(p);
}

Test(pool, terminate_leaves_no_process, .timeout = TS_TIMEOUT) {
  blockers b;
  mp_pool *p = new_blocker_pool(&b, MP_POOL_PROCESS, 3, NULL);
  mp_async *r;
  cr_assert_eq(mp_pool_apply_async(p, blocker, NULL, NULL, NULL, NULL, &r), 0);
  cr_assert_eq(mp_event_wait(b.started, 20.0), 0);
  int64_t pids[3];
  cr_assert_eq(mp_pool_worker_pids(p, pids, 3), 3);
  cr_assert_eq(mp_active_children(NULL, 0), 3);
  cr_assert_eq(mp_pool_terminate(p), 0);
  for (int i = 0; i < 3; i++)
    cr_assert(ts_pid_ended_or_kill(pids[i], 10.0), "worker %lld still runs",
              (long long)pids[i]);
  cr_assert_eq(mp_active_children(NULL, 0), 0);
  const mp_args *res;
  cr_assert_eq(mp_async_get(r, 5.0, &res), MP_ECLOSED);
  mp_async_free(r);
  cr_assert_eq(mp_pool_apply_async(p, square, NULL, NULL, NULL, NULL, NULL),
               MP_ESTATE);
  cr_assert_eq(mp_pool_join(p, 5.0), 0);
  free_blockers(&b);
}

Test(pool, close_then_join, .timeout = TS_TIMEOUT) {
  blockers b;
  mp_pool *p = new_blocker_pool(&b, MP_POOL_PROCESS, 2, NULL);
  mp_async *r;
  cr_assert_eq(mp_pool_apply_async(p, blocker, NULL, NULL, NULL, NULL, &r), 0);
  cr_assert_eq(mp_event_wait(b.started, 20.0), 0);
  cr_assert_eq(mp_pool_close(p), 0);
  cr_assert_eq(mp_pool_apply_async(p, square, NULL, NULL, NULL, NULL, NULL),
               MP_ESTATE);
  cr_assert_eq(mp_pool_join(p, 0.1), MP_ETIMEDOUT); /* a task still runs */
  mp_event_set(b.release);
  cr_assert_eq(mp_pool_join(p, 20.0), 0);
  const mp_args *res;
  cr_assert_eq(mp_async_get(r, 0, &res), 0); /* it finished first */
  cr_assert_eq(mp_active_children(NULL, 0), 0);
  mp_async_free(r);
  free_blockers(&b);
}

/* In a child: a pool of 2 whose worker pids go back through the queue
 * in args[0]. */
static int start_pool_and_report(const mp_args *a) {
  mp_queue *q = mp_args_queue(a, 0);
  mp_pool *p;
  if (mp_pool_new(&p, 2) != 0)
    return 1;
  int64_t pids[2];
  mp_pool_worker_pids(p, pids, 2);
  mp_args *m;
  mp_args_pack(&m, "II", pids[0], pids[1]);
  mp_queue_put_args(q, m, MP_FOREVER);
  mp_args_free(m);
  return 0;
}

/* The parent of a pool is killed: its workers go too. */
static int pool_then_block(const mp_args *a) {
  if (start_pool_and_report(a) != 0)
    return 1;
  ts_block_forever();
  return 0;
}

static void check_parent_killed(const char *method) {
  mp_queue *q;
  cr_assert_eq(mp_queue_new(&q, 0), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_queue(a, q);
  mp_process *c = ts_start(method, pool_then_block, a);
  mp_args *m = NULL;
  cr_assert_eq(mp_queue_get_args(q, &m, 30.0), 0);
  cr_assert_eq(mp_process_kill(c), 0);
  cr_assert_eq(ts_join(c), -9);
  for (size_t i = 0; i < 2; i++)
    cr_assert(ts_pid_ended_or_kill(mp_args_int(m, i), 10.0),
              "worker %lld outlived its pool's process",
              (long long)mp_args_int(m, i));
  mp_args_free(m);
  mp_args_free(a);
  mp_process_free(c);
  mp_queue_free(q);
}
FOR_EACH_METHOD(check_parent_killed)

/* ---- nested pools ---------------------------------------------------------- */

static int nested_sum(const mp_args *a, mp_args *r) {
  mp_pool *inner;
  int rc = mp_pool_new(&inner, 2);
  if (rc != 0)
    return mp_set_error(rc, "inner pool: %s", mp_last_error_message());
  mp_args *in, *out = NULL;
  mp_args_new(&in);
  for (int64_t i = 0; i < mp_args_int(a, 0); i++)
    mp_args_add_int(in, i);
  rc = mp_pool_map(inner, square, in, 0, &out);
  int64_t sum = 0;
  for (size_t i = 0; rc == 0 && i < mp_args_count(out); i++)
    sum += mp_args_int(out, i);
  mp_args_free(out);
  mp_args_free(in);
  mp_pool_close(inner);
  mp_pool_join(inner, MP_FOREVER);
  mp_pool_free(inner);
  if (rc != 0)
    return mp_set_error(rc, "inner map: %s", mp_last_error_message());
  return mp_args_add_int(r, sum);
}

static void check_nested(const char *method) {
  mp_pool *p = method_pool(method, 2);
  mp_args *in = ints(1, 5), *out = NULL;
  cr_assert_eq(mp_pool_map(p, nested_sum, in, 1, &out), 0, "%s",
               mp_last_error_message());
  /* sum of squares below n: 0, 1, 5, 14 */
  cr_assert_eq(mp_args_int(out, 0), 0);
  cr_assert_eq(mp_args_int(out, 1), 1);
  cr_assert_eq(mp_args_int(out, 2), 5);
  cr_assert_eq(mp_args_int(out, 3), 14);
  mp_args_free(out);
  mp_args_free(in);
  mp_pool_free(p);
}
FOR_EACH_METHOD(check_nested)

/* ---- imap ------------------------------------------------------------------ */

typedef struct counter {
  int64_t next, end, produced;
} counter;

static int count_input(void *ctx, mp_args *args) {
  counter *c = ctx;
  if (c->next >= c->end)
    return 0;
  c->produced++;
  return mp_args_add_int(args, c->next++) == 0 ? 1 : -1;
}

static void imap_check(int kind, int ordered) {
  mp_pool *p;
  cr_assert_eq(kind == MP_POOL_THREAD ? mp_thread_pool_new(&p, 2)
                                      : mp_pool_new(&p, 2), 0);
  counter c = {0, 1000, 0};
  mp_imap *it;
  cr_assert_eq((ordered ? mp_pool_imap : mp_pool_imap_unordered)(
                   p, square, count_input, &c, 3, 24, &it), 0);
  cr_assert_leq(c.produced, 24); /* lazy: only the window so far */
  unsigned char *seen = calloc(1000, 1);
  for (int64_t k = 0; k < 1000; k++) {
    mp_args *r = NULL;
    size_t index = 0;
    cr_assert_eq(mp_imap_next(it, &r, &index, 20.0), 1, "%s",
                 mp_last_error_message());
    if (ordered)
      cr_assert_eq(index, (size_t)k);
    cr_assert_lt(index, 1000);
    cr_assert_eq(seen[index], 0);
    seen[index] = 1;
    cr_assert_eq(mp_args_count(r), 1);
    cr_assert_eq(mp_args_int(r, 0), (int64_t)(index * index));
    mp_args_free(r);
    cr_assert_leq(c.produced - (k + 1), 24, "input read ahead too far");
  }
  cr_assert_eq(mp_imap_next(it, NULL, NULL, 5.0), 0);
  free(seen);
  mp_imap_free(it);
  mp_pool_free(p);
}

Test(pool, imap_ordered_lazy, .timeout = TS_TIMEOUT) {
  imap_check(MP_POOL_PROCESS, 1);
}
Test(pool, imap_unordered, .timeout = TS_TIMEOUT) {
  imap_check(MP_POOL_PROCESS, 0);
}
Test(thread_pool, imap_ordered_lazy, .timeout = TS_TIMEOUT) {
  imap_check(MP_POOL_THREAD, 1);
}
Test(thread_pool, imap_unordered, .timeout = TS_TIMEOUT) {
  imap_check(MP_POOL_THREAD, 0);
}

static int failing_input(void *ctx, mp_args *args) {
  counter *c = ctx;
  if (c->next >= c->end)
    return MP_EVALUE;
  return mp_args_add_int(args, c->next++) == 0 ? 1 : -1;
}

Test(pool, imap_errors_and_timeout, .timeout = TS_TIMEOUT) {
  mp_pool *p;
  cr_assert_eq(mp_pool_new(&p, 2), 0);
  counter c = {0, 6, 0};
  mp_imap *it;
  cr_assert_eq(mp_pool_imap(p, fail_on_3, failing_input, &c, 2, 0, &it), 0);
  /* Chunks {0,1} {2,3} {4,5}: as in Python, the chunk in which call 3
   * fails gives that one failure; call 2's result is dropped. */
  size_t expect[] = {0, 1, 3, 4, 5};
  for (size_t n = 0; n < 5; n++) {
    size_t k = expect[n];
    mp_args *r = NULL;
    size_t index = 99;
    int rc = mp_imap_next(it, &r, &index, 20.0);
    cr_assert_eq(index, k);
    if (k == 3) {
      cr_assert_eq(rc, MP_ETASK);
      cr_assert_str_eq(mp_last_error_message(), "no threes (3)");
    } else {
      cr_assert_eq(rc, 1);
      cr_assert_eq(mp_args_int(r, 0), (int64_t)k);
    }
    mp_args_free(r);
  }
  cr_assert_eq(mp_imap_next(it, NULL, NULL, 5.0), MP_EVALUE); /* the input's */
  cr_assert_eq(mp_imap_next(it, NULL, NULL, 5.0), 0);
  mp_imap_free(it);
  cr_assert_eq(mp_imap_next(NULL, NULL, NULL, 1.0), MP_EINVAL);
  mp_pool_free(p);
}

/* ---- the first failure in input order (issue 16, items 7 and 8) ---------- */

/* Call 1 fails once released; call 2 fails at once, saying so. */
static int fails_late_and_early(const mp_args *a, mp_args *r) {
  int64_t x = mp_args_int(a, 0);
  if (x == 1) {
    if (mp_event_wait(g_release, 30.0) != 0)
      return mp_set_error(9, "never released");
    return mp_set_error(5, "first failure (%lld)", (long long)x);
  }
  if (x == 2) {
    mp_event_set(g_started);
    return mp_set_error(6, "later failure (%lld)", (long long)x);
  }
  return mp_args_add_int(r, x);
}

/* Four workers, four calls, one each: call 2's failure answers first, yet
 * the map reports call 1's (the first in input order), once it has one. */
static void first_failure_in_order(int kind, const char *method) {
  blockers b;
  mp_pool *p = new_blocker_pool(&b, kind, 4, method);
  mp_args *in = ints(0, 4);
  mp_async *r;
  cb_state s;
  memset(&s, 0, sizeof s);
  cr_assert_eq(mp_event_new(&s.done), 0);
  cr_assert_eq(mp_pool_map_async(p, fails_late_and_early, in, 1, NULL,
                                 on_error, &s, &r), 0);
  cr_assert_eq(mp_event_wait(b.started, 20.0), 0);
  /* Call 1 has not answered: the map cannot know its first failure. */
  cr_assert_eq(mp_async_wait(r, 0.5), MP_ETIMEDOUT);
  cr_assert_eq(mp_async_ready(r), 0);
  mp_event_set(b.release);
  const mp_args *res;
  cr_assert_eq(mp_async_get(r, 20.0, &res), MP_ETASK);
  cr_assert_str_eq(mp_last_error_message(), "first failure (1)");
  cr_assert_eq(mp_event_wait(s.done, 20.0), 0);
  cr_assert_eq(s.status, 5);
  cr_assert_str_eq(s.message, "first failure (1)");
  mp_async_free(r);
  /* The same through mp_pool_map (call 1 now fails at once). */
  mp_args *out = NULL;
  cr_assert_eq(mp_pool_map(p, fails_late_and_early, in, 1, &out), MP_ETASK);
  cr_assert_str_eq(mp_last_error_message(), "first failure (1)");
  cr_assert_null(out);
  mp_args_free(in);
  mp_event_free(s.done);
  free_blockers(&b);
}

static void check_map_first_failure(const char *method) {
  first_failure_in_order(MP_POOL_PROCESS, method);
}
FOR_EACH_METHOD(check_map_first_failure)
Test(thread_pool, map_first_failure_in_input_order, .timeout = TS_TIMEOUT) {
  first_failure_in_order(MP_POOL_THREAD, NULL);
}

/* As Python's mapstar: the calls after a failing one in its chunk do not
 * run (a thread pool, so the count is in this process). */
static int g_calls;

static int count_fail_on_1(const mp_args *a, mp_args *r) {
  g_calls++;
  int64_t x = mp_args_int(a, 0);
  if (x == 1)
    return mp_set_error(3, "one");
  return mp_args_add_int(r, x);
}

Test(thread_pool, chunk_stops_at_its_failure, .timeout = TS_TIMEOUT) {
  mp_pool *p;
  cr_assert_eq(mp_thread_pool_new(&p, 1), 0);
  mp_args *in = ints(0, 4), *out = NULL;
  g_calls = 0;
  cr_assert_eq(mp_pool_map(p, count_fail_on_1, in, 4, &out), MP_ETASK);
  cr_assert_eq(g_calls, 2);
  /* imap: the chunk {0,1,2,3} gives one failure, then the end. */
  counter c = {0, 4, 0};
  mp_imap *it;
  g_calls = 0;
  cr_assert_eq(mp_pool_imap(p, count_fail_on_1, count_input, &c, 4, 0, &it),
               0);
  size_t index = 99;
  cr_assert_eq(mp_imap_next(it, NULL, &index, 20.0), MP_ETASK);
  cr_assert_eq(index, 1);
  cr_assert_str_eq(mp_last_error_message(), "one");
  cr_assert_eq(mp_imap_next(it, NULL, NULL, 20.0), 0);
  cr_assert_eq(g_calls, 2);
  mp_imap_free(it);
  mp_args_free(in);
  mp_pool_free(p);
}

Test(pool, imap_next_times_out, .timeout = TS_TIMEOUT) {
  blockers b;
  mp_pool *p = new_blocker_pool(&b, MP_POOL_PROCESS, 1, NULL);
  counter c = {0, 1, 0};
  mp_imap *it;
  cr_assert_eq(mp_pool_imap(p, blocker, count_input, &c, 1, 0, &it), 0);
  cr_assert_eq(mp_event_wait(b.started, 20.0), 0);
  cr_assert_eq(mp_imap_next(it, NULL, NULL, 0.05), MP_ETIMEDOUT);
  mp_event_set(b.release);
  cr_assert_eq(mp_imap_next(it, NULL, NULL, 20.0), 1);
  mp_imap_free(it);
  free_blockers(&b);
}

/* ---- many workers ---------------------------------------------------------- */

Test(pool, more_than_64_workers, .timeout = 180) {
  mp_pool *p;
  cr_assert_eq(mp_pool_new(&p, 70), 0, "%s", mp_last_error_message());
  mp_args *in = ints(0, 700), *out = NULL;
  cr_assert_eq(mp_pool_map(p, square, in, 1, &out), 0);
  check_squares(out, 0, 700);
  mp_args_free(out);
  mp_args_free(in);
  /* A death among them is still noticed. */
  int64_t pids[70];
  cr_assert_eq(mp_pool_worker_pids(p, pids, 70), 70);
  ts_kill_pid(pids[69]);
  cr_assert(ts_wait_pid_gone(pids[69], 10.0));
  cr_assert_eq(mp_pool_close(p), 0);
  cr_assert_eq(mp_pool_join(p, 60.0), 0);
  mp_pool_free(p);
}

/* ---- executors and futures --------------------------------------------------- */

static void executor_basics(int kind) {
  mp_executor *e;
  cr_assert_eq(mp_executor_new(&e, kind, 2), 0);
  mp_async *fs[8];
  for (int i = 0; i < 8; i++) {
    mp_args *a;
    mp_args_pack(&a, "i", i);
    cr_assert_eq(mp_executor_submit(e, square, a, &fs[i]), 0);
    mp_args_free(a);
  }
  mp_as_completed *ac;
  cr_assert_eq(mp_as_completed_new(&ac, fs, 8, 30.0), 0);
  int seen[8] = {0};
  size_t idx;
  for (int k = 0; k < 8; k++) {
    cr_assert_eq(mp_as_completed_next(ac, &idx), 1);
    cr_assert_lt(idx, 8);
    cr_assert_eq(seen[idx], 0);
    seen[idx] = 1;
    const mp_args *r;
    cr_assert_eq(mp_async_get(fs[idx], 0, &r), 0);
    cr_assert_eq(mp_args_int(r, 0), (int64_t)(idx * idx));
  }
  cr_assert_eq(mp_as_completed_next(ac, &idx), 0);
  mp_as_completed_free(ac);
  int done[8];
  cr_assert_eq(mp_futures_wait(fs, 8, MP_ALL_COMPLETED, 5.0, done), 8);
  for (int i = 0; i < 8; i++) {
    cr_assert_eq(done[i], 1);
    cr_assert_eq(mp_async_cancel(fs[i]), 0); /* done: too late */
    mp_async_free(fs[i]);
  }
  cr_assert_eq(mp_executor_shutdown(e, 1, 0), 0);
  mp_async *f;
  cr_assert_eq(mp_executor_submit(e, square, NULL, &f), MP_ESTATE);
  cr_assert_eq(mp_futures_wait(fs, 8, 99, 1.0, NULL), MP_EINVAL);
  mp_executor_free(e);
}

/* A dropped future (NULL handle) still runs its task: each adds its
 * argument to a shared Value, which the workers get from the
 * initializer (objects do not travel in task arguments). */
static mp_value *g_sum;

static int init_sum(const mp_args *a) {
  g_sum = mp_args_value(a, 0);
  return g_sum != NULL ? 0 : 1;
}

static int add_to_sum(const mp_args *a, mp_args *r) {
  (void)r;
  mp_lock *l = mp_value_get_lock(g_sum);
  int rc = mp_lock_acquire(l, MP_FOREVER);
  if (rc != 0)
    return rc;
  *(int64_t *)mp_value_ptr(g_sum) += mp_args_int(a, 0);
  mp_lock_release(l);
  return 0;
}

static int fails_value(const mp_args *a, mp_args *r) {
  (void)a;
  (void)r;
  return mp_set_error(MP_EVALUE, "this task fails");
}

static void executor_dropped_futures(int kind) {
  mp_value *v;
  cr_assert_eq(mp_value_new(&v, 'q', NULL), 0);
  mp_args *init;
  cr_assert_eq(mp_args_new(&init), 0);
  cr_assert_eq(mp_args_add_value(init, v), 0);
  mp_pool_options opt = {0};
  opt.kind = kind;
  opt.workers = 2;
  opt.initializer = init_sum;
  opt.initargs = init;
  mp_executor *e;
  cr_assert_eq(mp_executor_new_ex(&e, &opt), 0, "%s",
               mp_last_error_message());
  mp_args_free(init);
  for (int i = 1; i <= 10; i++) {
    mp_args *a;
    cr_assert_eq(mp_args_pack(&a, "i", i), 0);
    cr_assert_eq(mp_executor_submit(e, add_to_sum, a, NULL), 0,
                 "submit without a future: %s", mp_last_error_message());
    mp_args_free(a);
  }
  /* A failing task whose future is dropped disturbs nothing. */
  cr_assert_eq(mp_executor_submit(e, fails_value, NULL, NULL), 0);
  cr_assert_eq(mp_executor_shutdown(e, 1, 0), 0);
  int64_t sum = 0;
  cr_assert_eq(mp_value_get_int(v, &sum), 0);
  cr_expect_eq(sum, 55, "the dropped futures' tasks added up to %lld",
               (long long)sum);
  cr_assert_eq(mp_executor_submit(e, add_to_sum, NULL, NULL), MP_ESTATE);
  cr_assert_eq(mp_executor_submit(NULL, add_to_sum, NULL, NULL), MP_EINVAL);
  mp_executor_free(e);
  mp_value_free(v);
}

Test(executor, process_dropped_futures_run, .timeout = TS_TIMEOUT) {
  executor_dropped_futures(MP_POOL_PROCESS);
}
Test(executor, thread_dropped_futures_run, .timeout = TS_TIMEOUT) {
  executor_dropped_futures(MP_POOL_THREAD);
}

Test(executor, process_basics, .timeout = TS_TIMEOUT) {
  executor_basics(MP_POOL_PROCESS);
}
Test(executor, thread_basics, .timeout = TS_TIMEOUT) {
  executor_basics(MP_POOL_THREAD);
}

static void executor_cancel(int kind) {
  blockers b;
  mp_pool_options eo;
  mp_args *ia;
  blocker_options(&b, kind, 1, NULL, &eo, &ia);
  mp_executor *e;
  cr_assert_eq(mp_executor_new_ex(&e, &eo), 0);
  mp_args_free(ia);
  mp_async *running, *pending[3];
  cr_assert_eq(mp_executor_submit(e, blocker, NULL, &running), 0);
  cr_assert_eq(mp_event_wait(b.started, 20.0), 0);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(mp_executor_submit(e, square, NULL, &pending[i]), 0);
  /* The running one cannot be cancelled; a pending one can. */
  cr_assert_eq(mp_async_cancel(running), 0);
  cr_assert_eq(mp_async_running(running), 1);
  cr_assert_eq(mp_async_cancel(pending[2]), 1);
  cr_assert_eq(mp_async_cancelled(pending[2]), 1);
  const mp_args *r;
  cr_assert_eq(mp_async_get(pending[2], 0, &r), MP_ECANCELLED);
  /* wait: first completed times out while the blocker runs. */
  int done[2];
  mp_async *two[2] = {running, pending[0]};
  cr_assert_eq(mp_futures_wait(two, 2, MP_FIRST_COMPLETED, 0.05, done), 0);
  cr_assert_eq(done[0], 0);
  /* shutdown(cancel_futures) cancels what has not started. */
  cr_assert_eq(mp_executor_shutdown(e, 0, 1), 0);
  cr_assert_eq(mp_async_cancelled(pending[0]), 1);
  cr_assert_eq(mp_async_cancelled(pending[1]), 1);
  mp_event_set(b.release);
  cr_assert_eq(mp_futures_wait(two, 2, MP_ALL_COMPLETED, 20.0, done), 2);
  cr_assert_eq(mp_async_get(running, 0, &r), 0);
  cr_assert_eq(mp_executor_shutdown(e, 1, 0), 0);
  mp_async_free(running);
  for (int i = 0; i < 3; i++)
    mp_async_free(pending[i]);
  mp_executor_free(e);
  free_blockers(&b);
}

Test(executor, process_cancel, .timeout = TS_TIMEOUT) {
  executor_cancel(MP_POOL_PROCESS);
}
Test(executor, thread_cancel, .timeout = TS_TIMEOUT) {
  executor_cancel(MP_POOL_THREAD);
}

Test(executor, worker_death_fails_only_its_future, .timeout = TS_TIMEOUT) {
  mp_executor *e;
  cr_assert_eq(mp_executor_new(&e, MP_POOL_PROCESS, 2), 0);
  mp_async *bad, *good[4];
  cr_assert_eq(mp_executor_submit(e, exits_3, NULL, &bad), 0);
  for (int i = 0; i < 4; i++) {
    mp_args *a;
    mp_args_pack(&a, "i", i + 1);
    cr_assert_eq(mp_executor_submit(e, square, a, &good[i]), 0);
    mp_args_free(a);
  }
  const mp_args *r;
  cr_assert_eq(mp_async_get(bad, 20.0, &r), MP_EWORKERDIED);
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(mp_async_get(good[i], 20.0, &r), 0);
    cr_assert_eq(mp_args_int(r, 0), (i + 1) * (i + 1));
    mp_async_free(good[i]);
  }
  int done[1];
  cr_assert_eq(mp_futures_wait(&bad, 1, MP_FIRST_EXCEPTION, 1.0, done), 1);
  mp_async_free(bad);
  mp_executor_free(e);
}

Test(executor, as_completed_timeout, .timeout = TS_TIMEOUT) {
  blockers b;
  mp_pool *p = new_blocker_pool(&b, MP_POOL_THREAD, 1, NULL);
  mp_async *f;
  cr_assert_eq(mp_pool_apply_async(p, blocker, NULL, NULL, NULL, NULL, &f), 0);
  mp_as_completed *ac;
  cr_assert_eq(mp_as_completed_new(&ac, &f, 1, 0.05), 0);
  size_t idx;
  cr_assert_eq(mp_as_completed_next(ac, &idx), MP_ETIMEDOUT);
  mp_as_completed_free(ac);
  cr_assert_eq(mp_as_completed_new(&ac, NULL, 1, 1.0), MP_EINVAL);
  mp_event_set(b.release);
  cr_assert_eq(mp_async_wait(f, 20.0), 0);
  mp_async_free(f);
  free_blockers(&b);
}

/* ---- exit with a pool still open; logging ------------------------------- */

static int pool_then_exit(const mp_args *a) {
  /* The pool is neither closed nor freed: the exit work terminates it. */
  return start_pool_and_report(a);
}

static void check_exit_with_open_pool(const char *method) {
  mp_queue *q;
  cr_assert_eq(mp_queue_new(&q, 0), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_queue(a, q);
  mp_process *c = ts_start(method, pool_then_exit, a);
  cr_assert_eq(ts_join(c), 0);
  mp_args *m = NULL;
  cr_assert_eq(mp_queue_get_args(q, &m, 5.0), 0);
  for (size_t i = 0; i < 2; i++)
    cr_assert(ts_pid_ended_or_kill(mp_args_int(m, i), 10.0));
  mp_args_free(m);
  mp_args_free(a);
  mp_process_free(c);
  mp_queue_free(q);
}
FOR_EACH_METHOD(check_exit_with_open_pool)

static int log_level_task(const mp_args *a, mp_args *r) {
  (void)a;
  return mp_args_add_int(r, mp_log_level());
}

static int log_to_file(const mp_args *a) {
  if (freopen(mp_args_str(a, 0), "w", stderr) == NULL)
    return 1;
  mp_log_to_stderr(MP_LOG_INFO);
  mp_log(MP_LOG_DEBUG, "not shown");
  mp_log(MP_LOG_WARNING, "hello %d", 5);
  fflush(stderr);
  return 0;
}

Test(pool, logging, .timeout = TS_TIMEOUT) {
  cr_assert_eq(mp_log_level(), MP_LOG_OFF);
  char path[512], text[512];
  ts_temp_path(path, sizeof path, "log");
  mp_args *a;
  mp_args_pack(&a, "s", path);
  mp_process *c = ts_start(NULL, log_to_file, a);
  cr_assert_eq(ts_join(c), 0);
  cr_assert_gt(ts_read_file(path, text, sizeof text), 0);
  cr_assert(strstr(text, "[WARNING/Process-") != NULL, "%s", text);
  const char *hello = strstr(text, "] hello 5");
  cr_assert(hello != NULL, "%s", text); /* then the line's end (\r\n on
                                         * Windows' text-mode stderr) */
  cr_assert(hello[9] == '\n' || hello[9] == '\r', "%s", text);
  cr_assert(strstr(text, "not shown") == NULL, "%s", text);
  remove(path);
  mp_process_free(c);
  mp_args_free(a);
  /* Workers inherit the level. */
  mp_log_to_stderr(MP_LOG_ERROR);
  mp_pool *p;
  cr_assert_eq(mp_pool_new(&p, 1), 0);
  mp_args *r = NULL;
  cr_assert_eq(mp_pool_apply(p, log_level_task, NULL, &r), 0);
  cr_assert_eq(mp_args_int(r, 0), MP_LOG_ERROR);
  mp_args_free(r);
  mp_pool_free(p);
  mp_log_to_stderr(MP_LOG_OFF);
}

/* A callback may submit more work, but not wait for its own pool. */
typedef struct reentrant {
  mp_pool *pool;
  mp_event *done;
  int join_rc, terminate_rc, submit_rc;
} reentrant;

static void reentrant_cb(const mp_args *r, void *arg) {
  (void)r;
  reentrant *s = arg;
  s->join_rc = mp_pool_join(s->pool, 1.0);
  s->terminate_rc = mp_pool_terminate(s->pool);
  s->submit_rc = mp_pool_apply_async(s->pool, square, NULL, NULL, NULL, NULL,
                                     NULL);
  mp_event_set(s->done);
}

Test(pool, callback_reentry, .timeout = TS_TIMEOUT) {
  reentrant s;
  memset(&s, 0, sizeof s);
  cr_assert_eq(mp_pool_new(&s.pool, 1), 0);
  cr_assert_eq(mp_event_new(&s.done), 0);
  mp_args *a;
  mp_args_pack(&a, "i", 3);
  cr_assert_eq(mp_pool_apply_async(s.pool, square, a, reentrant_cb, NULL, &s,
                                   NULL), 0);
  cr_assert_eq(mp_event_wait(s.done, 20.0), 0);
  cr_assert_eq(s.join_rc, MP_ESTATE);
  cr_assert_eq(s.terminate_rc, MP_ESTATE);
  cr_assert_eq(s.submit_rc, 0);
  mp_args_free(a);
  mp_event_free(s.done);
  mp_pool_free(s.pool);
}

/* ---- callers that read results themselves ------------------------------- */

/* A caller waiting for a result reads the pool's results itself while it
 * spins; the handler thread naps meanwhile.  Several callers at once,
 * maps, and callbacks (which must still run in the handler thread) must
 * all come out right, in order and complete. */
typedef struct rt_caller {
  mp_pool *pool;
  int64_t base;
  int wrong; /* round trips that failed or gave a wrong value */
  int64_t ident;
} rt_caller;

static int round_trips(void *arg) {
  rt_caller *c = arg;
  c->ident = mp_thread_ident(mp_current_thread());
  for (int64_t i = 0; i < 300; i++) {
    mp_args *a;
    mp_async *r;
    const mp_args *res;
    int64_t x = c->base + i;
    mp_args_pack(&a, "i", x);
    if (mp_pool_apply_async(c->pool, square, a, NULL, NULL, NULL, &r) != 0 ||
        mp_async_get(r, 30.0, &res) != 0 || mp_args_int(res, 0) != x * x)
      c->wrong++;
    mp_async_free(r);
    mp_args_free(a);
  }
  return 0;
}

typedef struct cb_seen {
  int count, expected;
  int64_t ident[3]; /* threads that must not run callbacks */
  int on_caller;
  int64_t sum;
  mp_event *all;
} cb_seen;

static void count_cb(const mp_args *r, void *arg) {
  cb_seen *s = arg;
  int64_t me = mp_thread_ident(mp_current_thread());
  for (int i = 0; i < 3; i++)
    if (me == s->ident[i])
      s->on_caller++;
  s->sum += mp_args_int(r, 0);
  if (++s->count == s->expected)
    mp_event_set(s->all);
}

static void waiting_callers(int kind) {
  mp_pool *p;
  cr_assert_eq(kind == MP_POOL_THREAD ? mp_thread_pool_new(&p, 2)
                                      : mp_pool_new(&p, 2), 0);
  rt_caller c[2] = {{p, 1000, 0, 0}, {p, 5000, 0, 0}};
  mp_thread *t[2];
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(mp_thread_new(&t[i], round_trips, &c[i]), 0);
    cr_assert_eq(mp_thread_start(t[i]), 0);
  }
  cb_seen s;
  memset(&s, 0, sizeof s);
  s.expected = 50;
  s.ident[0] = mp_thread_ident(mp_current_thread());
  s.ident[1] = mp_thread_ident(t[0]);
  s.ident[2] = mp_thread_ident(t[1]);
  cr_assert_eq(mp_event_new(&s.all), 0);
  mp_args *in = ints(0, 200);
  int64_t want = 0;
  for (int k = 0; k < 5; k++) {
    for (int64_t i = 0; i < 10; i++) {
      mp_args *a;
      int64_t x = k * 10 + i;
      mp_args_pack(&a, "i", x);
      want += x * x;
      cr_assert_eq(mp_pool_apply_async(p, square, a, count_cb, NULL, &s,
                                       NULL), 0);
      mp_args_free(a);
    }
    mp_args *out = NULL;
    cr_assert_eq(mp_pool_map(p, square, in, 1, &out), 0, "%s",
                 mp_last_error_message());
    check_squares(out, 0, 200);
    mp_args_free(out);
  }
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(mp_thread_join(t[i], 60.0), 0);
    cr_expect_eq(c[i].wrong, 0, "caller %d: %d wrong round trips", i,
                 c[i].wrong);
    mp_thread_free(t[i]);
  }
  cr_assert_eq(mp_event_wait(s.all, 30.0), 0, "%d of 50 callbacks",
               s.count);
  cr_expect_eq(s.sum, want);
  cr_expect_eq(s.on_caller, 0, "callbacks ran in a waiting caller's thread");
  mp_args_free(in);
  mp_event_free(s.all);
  mp_pool_free(p);
}

Test(pool, waiting_callers_read_results, .timeout = TS_TIMEOUT) {
  waiting_callers(MP_POOL_PROCESS);
}
Test(thread_pool, waiting_callers_read_results, .timeout = TS_TIMEOUT) {
  waiting_callers(MP_POOL_THREAD);
}

/* After a round trip the handler may nap; a result nobody waits for must
 * still be read: mp_async_ready, polled, turns true. */
static void polled_after_round_trip(int kind) {
  mp_pool *p;
  cr_assert_eq(kind == MP_POOL_THREAD ? mp_thread_pool_new(&p, 1)
                                      : mp_pool_new(&p, 1), 0);
  mp_args *a;
  mp_args_pack(&a, "i", 6);
  for (int round = 0; round < 20; round++) {
    mp_async *r;
    const mp_args *res;
    mp_args *first = NULL;
    cr_assert_eq(mp_pool_apply(p, square, a, &first), 0);
    mp_args_free(first);
    cr_assert_eq(mp_pool_apply_async(p, square, a, NULL, NULL, NULL, &r), 0);
    double t0 = ts_now();
    while (!mp_async_ready(r) && ts_now() - t0 < 10.0)
      ;
    cr_assert_eq(mp_async_ready(r), 1, "round %d: never read", round);
    cr_expect_lt(ts_now() - t0, 2.0, "round %d: read after %.3f s", round,
                 ts_now() - t0);
    cr_assert_eq(mp_async_get(r, 0, &res), 0);
    cr_assert_eq(mp_args_int(res, 0), 36);
    mp_async_free(r);
  }
  mp_args_free(a);
  mp_pool_free(p);
}

Test(pool, polled_result_after_round_trip, .timeout = TS_TIMEOUT) {
  polled_after_round_trip(MP_POOL_PROCESS);
}
Test(thread_pool, polled_result_after_round_trip, .timeout = TS_TIMEOUT) {
  polled_after_round_trip(MP_POOL_THREAD);
}

/* ---- kills at unlucky moments (issue 15) ----------------------------- */

/* x*x, except that x == -1 kills its own worker. */
static int square_or_die(const mp_args *a, mp_args *r) {
  int64_t x = mp_args_int(a, 0);
  if (x == -1)
    ts_kill_pid(mp_getpid());
  return mp_args_add_int(r, x * x);
}

/* A map whose worker is killed fails; the chunks of it still queued must
 * never touch its result again (it was freed when the map returned: a
 * use-after-free that failed the next, unrelated map), and every later
 * map gives the right answer. */
Test(pool, killed_map_leaves_no_trace, .timeout = TS_TIMEOUT) {
  mp_pool *p;
  cr_assert_eq(mp_pool_new(&p, 2), 0);
  mp_args *bad, *good = ints(0, 300);
  cr_assert_eq(mp_args_new(&bad), 0);
  for (int64_t i = 0; i < 400; i++)
    mp_args_add_int(bad, i == 1 ? -1 : i);
  for (int round = 0; round < 5; round++) {
    mp_args *out = NULL;
    cr_assert_eq(mp_pool_map(p, square_or_die, bad, 1, &out), MP_EWORKERDIED,
                 "round %d: %s", round, mp_last_error_message());
    cr_assert_null(out);
    for (size_t cs = 1; cs <= 7; cs += 6) {
      cr_assert_eq(mp_pool_map(p, square, good, cs, &out), 0,
                   "round %d, chunksize %zu: %s", round, cs,
                   mp_last_error_message());
      check_squares(out, 0, 300);
      mp_args_free(out);
    }
  }
  mp_args_free(bad);
  mp_args_free(good);
  mp_pool_free(p);
}

/* Initializer: keeps the barrier of initargs[0] (initargs live as long
 * as the worker). */
static mp_barrier *meet_barrier;
static int init_keep_barrier(const mp_args *a) {
  meet_barrier = mp_args_barrier(a, 0);
  return meet_barrier != NULL ? 0 : MP_EINVAL;
}

/* Task: meet the other task at the barrier (so the two run in two
 * different workers, both up and serving), then answer this worker's pid. */
static int meet_pid(const mp_args *a, mp_args *r) {
  (void)a;
  int rc = mp_barrier_wait(meet_barrier, 30.0);
  if (rc < 0)
    return rc;
  return mp_args_add_int(r, mp_getpid());
}

/* Both workers, each after answering a task: their pids. */
static void serving_pids(mp_pool *p, int64_t pid[2]) {
  mp_args *in = ints(0, 2), *out = NULL;
  cr_assert_eq(mp_pool_map(p, meet_pid, in, 1, &out), 0, "%s",
               mp_last_error_message());
  cr_assert_eq(mp_args_count(out), 2);
  pid[0] = mp_args_int(out, 0);
  pid[1] = mp_args_int(out, 1);
  cr_assert_neq(pid[0], pid[1]);
  mp_args_free(out);
  mp_args_free(in);
}

/* Idle workers killed again and again once they have answered a task,
 * with no task in between that could finish (an OOM killer, an
 * operator): each is replaced, and the pool never breaks.  Only workers
 * that cannot come up may break it.  (The workers are killed as a crash
 * would end them: SIGKILL; on Windows an access violation's code.) */
static void check_idle_kills(const char *method) {
  mp_barrier *b;
  cr_assert_eq(mp_barrier_new(&b, 2, NULL, -1), 0);
  mp_args *ia;
  cr_assert_eq(mp_args_new(&ia), 0);
  mp_args_add_barrier(ia, b);
  mp_pool_options o = MP_POOL_OPTIONS_INIT;
  o.workers = 2;
  o.initializer = init_keep_barrier;
  o.initargs = ia;
  cr_assert_eq(mp_get_context(method, &o.context), 0);
  mp_pool *p;
  cr_assert_eq(mp_pool_new_ex(&p, &o), 0, "%s", mp_last_error_message());
  int64_t pid[2];
  for (int round = 0; round < 8; round++) {
    serving_pids(p, pid);
    ts_kill_pid(pid[0]);
    ts_kill_pid(pid[1]);
  }
  serving_pids(p, pid);
  mp_args *in = ints(0, 20), *out = NULL;
  cr_assert_eq(mp_pool_map(p, square, in, 1, &out), 0, "%s",
               mp_last_error_message());
  check_squares(out, 0, 20);
  mp_args_free(out);
  mp_args_free(in);
  mp_pool_free(p);
  mp_args_free(ia);
  mp_barrier_free(b);
}
FOR_EACH_METHOD(check_idle_kills)
