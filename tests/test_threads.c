/*
 * test_threads.c - mproc from several threads: concurrent starts and
 * joins, two threads joining one process, a daemon started from a thread
 * that then ends, and a large argument (8 MiB) under each method.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "methods.h"
#include "mproc.h"
#include "support.h"

static int return_arg(const mp_args *a) { return (int)mp_args_int(a, 0); }

static int block(const mp_args *a) {
  (void)a;
  ts_block_forever();
  return 0;
}

/* ---- concurrent starts and joins ------------------------------------- */

enum { THREADS = 4, PER_THREAD = 6 };

typedef struct starter {
  const char *method;
  int index;
  int wrong; /* processes whose exit code was not the expected one */
} starter;

static void start_and_join(void *arg) {
  starter *s = arg;
  mp_context *ctx;
  mp_get_context(s->method, &ctx);
  mp_process *p[PER_THREAD];
  for (int i = 0; i < PER_THREAD; i++) {
    mp_args *a;
    mp_args_pack(&a, "i", s->index * 10 + i);
    p[i] = NULL;
    if (mp_process_new(&p[i], return_arg, a) == 0) {
      mp_process_set_context(p[i], ctx);
      if (mp_process_start(p[i]) != 0)
        s->wrong++;
    }
    mp_args_free(a);
  }
  for (int i = 0; i < PER_THREAD; i++) {
    int code = -1;
    if (p[i] == NULL || mp_process_join(p[i], 60) != 0 ||
        mp_process_exitcode(p[i], &code) != 0 || code != s->index * 10 + i)
      s->wrong++;
    mp_process_free(p[i]);
  }
}

static void check_concurrent_starts(const char *method) {
  starter s[THREADS];
  ts_thread *t[THREADS];
  for (int i = 0; i < THREADS; i++) {
    s[i].method = method;
    s[i].index = i + 1;
    s[i].wrong = 0;
    t[i] = ts_thread_start(start_and_join, &s[i]);
  }
  for (int i = 0; i < THREADS; i++) {
    ts_thread_join(t[i]);
    cr_expect_eq(s[i].wrong, 0, "thread %d", i + 1);
  }
  cr_expect_eq(mp_active_children(NULL, 0), 0);
}
FOR_EACH_METHOD(check_concurrent_starts)

/* ---- threads racing to start one process ------------------------------ */

typedef struct racer {
  mp_process *p;
  int rc;
} racer;

static void start_it(void *arg) {
  racer *r = arg;
  r->rc = mp_process_start(r->p);
}

static void check_start_race(const char *method) {
  enum { N = 4 };
  mp_context *ctx;
  mp_process *p;
  cr_assert_eq(mp_get_context(method, &ctx), 0);
  cr_assert_eq(mp_process_new(&p, return_arg, NULL), 0);
  mp_process_set_context(p, ctx);
  racer r[N];
  ts_thread *t[N];
  for (int i = 0; i < N; i++) {
    r[i].p = p;
    r[i].rc = 1;
    t[i] = ts_thread_start(start_it, &r[i]);
  }
  int started = 0, refused = 0;
  for (int i = 0; i < N; i++) {
    ts_thread_join(t[i]);
    started += r[i].rc == 0;
    refused += r[i].rc == MP_ESTATE;
  }
  cr_expect_eq(started, 1, "exactly one start wins");
  cr_expect_eq(refused, N - 1);
  cr_expect_eq(ts_join(p), 0);
  mp_process_free(p);
}
FOR_EACH_METHOD(check_start_race)

/* ---- two threads join one process ------------------------------------ */

typedef struct joiner {
  mp_process *p;
  double timeout;
  int rc;
  int code;
} joiner;

static void join_it(void *arg) {
  joiner *j = arg;
  j->rc = mp_process_join(j->p, j->timeout);
  j->code = -1000;
  mp_process_exitcode(j->p, &j->code);
}

static void check_two_joiners(const char *method) {
  mp_process *p = ts_start(method, block, NULL);
  joiner forever = {p, MP_FOREVER, 1, 0}, brief = {p, 0.2, 1, 0};
  ts_thread *a = ts_thread_start(join_it, &forever);
  ts_thread *b = ts_thread_start(join_it, &brief);
  ts_thread_join(b);
  cr_expect_eq(brief.rc, MP_ETIMEDOUT, "a short join times out alone");
  cr_assert_eq(mp_process_kill(p), 0);
  ts_thread_join(a);
  cr_expect_eq(forever.rc, 0);
  cr_expect_eq(forever.code, -9);
  cr_expect_eq(ts_join(p), -9);
  mp_process_free(p);
}
FOR_EACH_METHOD(check_two_joiners)

/* ---- a daemon started from a thread that ends ------------------------ */

typedef struct daemon_start {
  const char *method;
  int64_t pid;
} daemon_start;

/* The daemon: says it runs (its parent-death watch is set up by then),
 * then blocks. */
static int announce_and_block(const mp_args *a) {
  ts_pipe_put(a, 0, 1);
  ts_block_forever();
  return 0;
}

/* On a thread: start the daemon and wait until it runs, so that this
 * thread ends only after the daemon watches its parent. */
static void start_daemon(void *arg) {
  daemon_start *d = arg;
  ts_pipe ready;
  ts_pipe_open(&ready);
  mp_args *a;
  mp_args_new(&a);
  ts_pipe_add_args(&ready, a);
  mp_context *ctx;
  mp_process *p;
  int64_t v = 0;
  d->pid = 0;
  if (mp_get_context(d->method, &ctx) == 0 &&
      mp_process_new(&p, announce_and_block, a) == 0 &&
      mp_process_set_context(p, ctx) == 0 &&
      mp_process_set_daemon(p, 1) == 0 && mp_process_start(p) == 0 &&
      ts_pipe_get(&ready, 30.0, &v) == 0)
    d->pid = mp_process_pid(p);
  mp_args_free(a);
  ts_pipe_close(&ready);
}

/* Starts a daemon from a thread, lets the thread end, reports the daemon's
 * pid, and blocks until killed. */
static int daemon_from_thread(const mp_args *a) {
  daemon_start d = {mp_args_str(a, 0), 0};
  ts_thread_join(ts_thread_start(start_daemon, &d));
  if (d.pid <= 0)
    return 70;
  ts_pipe_put(a, 1, d.pid);
  ts_block_forever();
  return 0;
}

static void check_daemon_outlives_its_thread(const char *method) {
  ts_pipe pipe;
  ts_pipe_open(&pipe);
  mp_args *a;
  mp_args_pack(&a, "s", method);
  ts_pipe_add_args(&pipe, a);
  mp_process *p = ts_start(method, daemon_from_thread, a);
  mp_args_free(a);
  int64_t pid = 0;
  cr_assert_eq(ts_pipe_get(&pipe, 30.0, &pid), 0);
  /* The thread that started it is gone; its process is not: it lives. */
  cr_expect_eq(ts_wait_pid_gone(pid, 0.5), 0,
               "the daemon must not die with the thread that started it");
  mp_process_kill(p);
  cr_expect_eq(ts_join(p), -9);
  cr_expect(ts_wait_pid_gone(pid, 10.0), "but it dies with its process");
  mp_process_free(p);
  ts_pipe_close(&pipe);
}
FOR_EACH_METHOD(check_daemon_outlives_its_thread)

/* ---- a large argument -------------------------------------------------- */

static void check_large_argument(const char *method) {
  mp_args *a = ts_big_args();
  mp_process *p = ts_start(method, ts_check_big, a);
  mp_args_free(a);
  cr_expect_eq(ts_join(p), 0);
  mp_process_free(p);
}
FOR_EACH_METHOD(check_large_argument)
