/*
 * test_threads.c - mproc from several threads: concurrent starts and
 * joins, two threads joining one process, a daemon started from a thread
 * that then ends, and a large argument (8 MiB) under each method; and
 * mp_thread itself (Python's threading.Thread): start, join with and
 * without a timeout, exit codes, names, daemon flags, idents, the main
 * and dummy threads, freeing a running thread, active_count, locks
 * between threads, and what happens at exit and in a forked child.
 */
#include <criterion/criterion.h>
#include <stdio.h>
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

/* ====================================================================== */
/* mp_thread                                                              */
/* ====================================================================== */

TS_SUITE(thread);

static int return_value(void *arg) { return *(int *)arg; }

/* Blocks until its event is set, then returns 5. */
static int wait_event(void *arg) {
  return mp_event_wait((mp_event *)arg, MP_FOREVER) == 0 ? 5 : 50;
}

static mp_event *new_event(void) {
  mp_event *e = NULL;
  cr_assert_eq(mp_event_new(&e), 0);
  return e;
}

static mp_thread *start_thread(mp_thread_fn fn, void *arg) {
  mp_thread *t = NULL;
  cr_assert_eq(mp_thread_new(&t, fn, arg), 0, "%s", mp_last_error_message());
  int rc = mp_thread_start(t);
  cr_assert_eq(rc, 0, "start: %s: %s", mp_err_name(rc),
               mp_last_error_message());
  return t;
}

Test(thread, start_join_exitcode, .timeout = TS_TIMEOUT) {
  int value = 42;
  mp_thread *t = NULL;
  cr_assert_eq(mp_thread_new(&t, return_value, &value), 0);
  int code = -1;
  cr_expect_eq(mp_thread_exitcode(t, &code), MP_ESTATE, "not started");
  cr_expect_eq(mp_thread_is_alive(t), 0);
  cr_assert_eq(mp_thread_start(t), 0);
  cr_expect_eq(mp_thread_join(t, MP_FOREVER), 0);
  cr_expect_eq(mp_thread_is_alive(t), 0);
  cr_assert_eq(mp_thread_exitcode(t, &code), 0);
  cr_expect_eq(code, 42);
  /* Joining again is fine, as in Python. */
  cr_expect_eq(mp_thread_join(t, 0), 0);
  cr_expect_eq(mp_thread_join(t, MP_FOREVER), 0);
  mp_thread_free(t);

  /* Many in turn: each returns its own value. */
  int values[8];
  mp_thread *ts[8];
  for (int i = 0; i < 8; i++) {
    values[i] = i * 3 - 7;
    ts[i] = start_thread(return_value, &values[i]);
  }
  for (int i = 0; i < 8; i++) {
    cr_expect_eq(mp_thread_join(ts[i], 30.0), 0);
    cr_expect_eq(mp_thread_exitcode(ts[i], &code), 0);
    cr_expect_eq(code, i * 3 - 7);
    mp_thread_free(ts[i]);
  }
}

Test(thread, join_times_out_on_a_blocked_thread, .timeout = TS_TIMEOUT) {
  mp_event *go = new_event();
  mp_thread *t = start_thread(wait_event, go);
  int code = -1;
  cr_expect_eq(mp_thread_exitcode(t, &code), MP_ESTATE, "still running");
  cr_expect_eq(mp_thread_join(t, 0), MP_ETIMEDOUT);
  double t0 = ts_now();
  cr_expect_eq(mp_thread_join(t, 0.3), MP_ETIMEDOUT);
  double took = ts_now() - t0;
  cr_expect_geq(took, 0.25, "waited %f s", took);
  cr_expect_lt(took, 10.0, "waited %f s", took);
  cr_expect_eq(mp_thread_is_alive(t), 1, "a timed-out join leaves it be");
  cr_expect_eq(mp_thread_join(t, -2.0), MP_EINVAL);
  cr_assert_eq(mp_event_set(go), 0);
  cr_expect_eq(mp_thread_join(t, 30.0), 0);
  cr_expect_eq(mp_thread_exitcode(t, &code), 0);
  cr_expect_eq(code, 5);
  mp_thread_free(t);
  mp_event_free(go);
}

/* A waiter in another thread wakes as soon as the thread ends, long
 * before its timeout. */
typedef struct join_arg {
  mp_thread *t;
  double timeout;
  int rc;
  double took;
} join_arg;

static void join_in_thread(void *p) {
  join_arg *j = p;
  double t0 = ts_now();
  j->rc = mp_thread_join(j->t, j->timeout);
  j->took = ts_now() - t0;
}

Test(thread, join_wakes_when_the_thread_ends, .timeout = TS_TIMEOUT) {
  mp_event *go = new_event();
  mp_thread *t = start_thread(wait_event, go);
  join_arg a = {t, 50.0, 1, 0}, b = {t, MP_FOREVER, 1, 0};
  ts_thread *ja = ts_thread_start(join_in_thread, &a);
  ts_thread *jb = ts_thread_start(join_in_thread, &b);
  cr_expect_eq(mp_thread_join(t, 0.1), MP_ETIMEDOUT);
  cr_assert_eq(mp_event_set(go), 0);
  ts_thread_join(ja);
  ts_thread_join(jb);
  cr_expect_eq(a.rc, 0);
  cr_expect_eq(b.rc, 0);
  cr_expect_lt(a.took, 40.0, "woke after %f s", a.took);
  mp_thread_free(t);
  mp_event_free(go);
}

Test(thread, errors, .timeout = TS_TIMEOUT) {
  int value = 3;
  mp_thread *t = NULL;
  cr_expect_eq(mp_thread_new(NULL, return_value, &value), MP_EINVAL);
  cr_expect_eq(mp_thread_new(&t, NULL, &value), MP_EINVAL);
  cr_expect_eq(mp_thread_start(NULL), MP_EINVAL);
  cr_expect_eq(mp_thread_join(NULL, 0), MP_EINVAL);
  cr_expect_eq(mp_thread_set_name(NULL, "x"), MP_EINVAL);
  cr_expect_eq(mp_thread_set_daemon(NULL, 1), MP_EINVAL);
  cr_expect_null(mp_thread_name(NULL));
  cr_expect_eq(mp_thread_daemon(NULL), 0);
  cr_expect_eq(mp_thread_is_alive(NULL), 0);
  cr_expect_eq(mp_thread_ident(NULL), 0);
  mp_thread_free(NULL);

  cr_assert_eq(mp_thread_new(&t, return_value, &value), 0);
  cr_expect_eq(mp_thread_set_name(t, NULL), MP_EINVAL);
  cr_expect_eq(mp_thread_exitcode(t, NULL), MP_EINVAL);
  int rc = mp_thread_join(t, MP_FOREVER);
  cr_expect_eq(rc, MP_ESTATE, "join before start: %s", mp_err_name(rc));
  cr_expect(strstr(mp_last_error_message(), "start") != NULL, "%s",
            mp_last_error_message());
  cr_assert_eq(mp_thread_start(t), 0);
  cr_expect_eq(mp_thread_start(t), MP_ESTATE, "started twice");
  cr_expect_eq(mp_thread_join(t, 30.0), 0);
  cr_expect_eq(mp_thread_start(t), MP_ESTATE, "started after it ended");
  mp_thread_free(t);

  /* A thread never started is freed like any object. */
  cr_assert_eq(mp_thread_new(&t, return_value, &value), 0);
  mp_thread_free(t);
}

/* ---- joining oneself ---------------------------------------------------- */

typedef struct self_join {
  int rc_forever, rc_timed;
  mp_thread *seen;
} self_join;

static int join_self(void *arg) {
  self_join *s = arg;
  s->seen = mp_current_thread();
  s->rc_forever = mp_thread_join(mp_current_thread(), MP_FOREVER);
  s->rc_timed = mp_thread_join(mp_current_thread(), 0.1);
  return 0;
}

Test(thread, joining_oneself_is_an_error, .timeout = TS_TIMEOUT) {
  self_join s = {1, 1, NULL};
  mp_thread *t = start_thread(join_self, &s);
  cr_assert_eq(mp_thread_join(t, 30.0), 0);
  cr_expect_eq(s.seen, t, "mp_current_thread() is the thread's own object");
  cr_expect_eq(s.rc_forever, MP_EINVAL);
  cr_expect_eq(s.rc_timed, MP_EINVAL);
  mp_thread_free(t);
  /* The main thread cannot join itself either. */
  cr_expect_eq(mp_thread_join(mp_current_thread(), 0.1), MP_EINVAL);
  cr_expect_eq(mp_thread_join(mp_main_thread(), MP_FOREVER), MP_EINVAL);
}

/* ---- names -------------------------------------------------------------- */

static int thread_number(const mp_thread *t) {
  const char *name = mp_thread_name(t);
  int n = -1;
  cr_assert_not_null(name);
  cr_assert_eq(strncmp(name, "Thread-", 7), 0, "name %s", name);
  cr_assert_eq(sscanf(name + 7, "%d", &n), 1, "name %s", name);
  return n;
}

typedef struct name_seen {
  char name[64];
} name_seen;

static int record_name(void *arg) {
  name_seen *n = arg;
  snprintf(n->name, sizeof n->name, "%s", mp_thread_name(mp_current_thread()));
  return 0;
}

Test(thread, names, .timeout = TS_TIMEOUT) {
  name_seen seen = {""};
  mp_thread *a = NULL, *b = NULL;
  cr_assert_eq(mp_thread_new(&a, record_name, &seen), 0);
  cr_assert_eq(mp_thread_new(&b, record_name, &seen), 0);
  int na = thread_number(a), nb = thread_number(b);
  cr_expect_geq(na, 1, "numbered from 1");
  cr_expect_gt(nb, na, "Thread-%d then Thread-%d", na, nb);
  cr_expect_eq(mp_thread_set_name(a, "worker"), 0);
  const char *before = mp_thread_name(b);
  cr_expect_str_eq(mp_thread_name(a), "worker");
  cr_assert_eq(mp_thread_start(a), 0);
  cr_assert_eq(mp_thread_join(a, 30.0), 0);
  cr_expect_str_eq(seen.name, "worker", "the thread sees its own name");
  /* Renamed after start too; the old pointer stays readable. */
  cr_expect_eq(mp_thread_set_name(b, "later"), 0);
  cr_expect_str_eq(mp_thread_name(b), "later");
  cr_expect_eq(strncmp(before, "Thread-", 7), 0);
  cr_assert_eq(mp_thread_start(b), 0);
  cr_assert_eq(mp_thread_join(b, 30.0), 0);
  cr_expect_str_eq(seen.name, "later");
  cr_expect_eq(mp_thread_set_name(b, "after the end"), 0);
  cr_expect_str_eq(mp_thread_name(b), "after the end");
  mp_thread_free(a);
  mp_thread_free(b);
}

/* ---- daemon flags --------------------------------------------------------- */

typedef struct daemon_seen {
  int self;      /* the thread's own flag, as it sees it */
  int child;     /* the default of a thread it creates */
} daemon_seen;

static int record_daemon(void *arg) {
  daemon_seen *d = arg;
  d->self = mp_thread_daemon(mp_current_thread());
  mp_thread *c = NULL;
  d->child = -1;
  if (mp_thread_new(&c, record_daemon, NULL) == 0) {
    d->child = mp_thread_daemon(c);
    mp_thread_free(c);
  }
  return 0;
}

Test(thread, daemon_flag, .timeout = TS_TIMEOUT) {
  cr_expect_eq(mp_thread_daemon(mp_current_thread()), 0);
  daemon_seen plain = {-1, -1}, daemonic = {-1, -1};
  mp_thread *a = NULL, *b = NULL;
  cr_assert_eq(mp_thread_new(&a, record_daemon, &plain), 0);
  cr_assert_eq(mp_thread_new(&b, record_daemon, &daemonic), 0);
  cr_expect_eq(mp_thread_daemon(a), 0, "the main thread's flag: 0");
  cr_expect_eq(mp_thread_set_daemon(b, 7), 0);
  cr_expect_eq(mp_thread_daemon(b), 1);
  cr_assert_eq(mp_thread_start(a), 0);
  cr_assert_eq(mp_thread_start(b), 0);
  cr_expect_eq(mp_thread_set_daemon(a, 1), MP_ESTATE, "after start");
  cr_expect_eq(mp_thread_set_daemon(b, 0), MP_ESTATE);
  cr_assert_eq(mp_thread_join(a, 30.0), 0);
  cr_assert_eq(mp_thread_join(b, 30.0), 0);
  cr_expect_eq(mp_thread_set_daemon(a, 1), MP_ESTATE, "after the end");
  cr_expect_eq(mp_thread_daemon(a), 0);
  cr_expect_eq(plain.self, 0);
  cr_expect_eq(plain.child, 0, "inherited from the creating thread");
  cr_expect_eq(daemonic.self, 1);
  cr_expect_eq(daemonic.child, 1, "inherited from the creating thread");
  cr_expect_eq(mp_thread_set_daemon(mp_main_thread(), 1), MP_ESTATE);
  mp_thread_free(a);
  mp_thread_free(b);
}

/* ---- idents ------------------------------------------------------------- */

typedef struct ident_seen {
  int64_t ident;
  mp_barrier *all_running;
} ident_seen;

static int record_ident(void *arg) {
  ident_seen *s = arg;
  s->ident = mp_thread_ident(mp_current_thread());
  /* All alive at once: the OS cannot have reused an id. */
  return mp_barrier_wait(s->all_running, 30.0) >= 0 ? 0 : 1;
}

Test(thread, idents_are_distinct_and_match, .timeout = TS_TIMEOUT) {
  enum { N = 4 };
  mp_barrier *bar = NULL;
  cr_assert_eq(mp_barrier_new(&bar, N, NULL, MP_FOREVER), 0);
  ident_seen seen[N];
  mp_thread *t[N];
  for (int i = 0; i < N; i++) {
    seen[i].ident = -1;
    seen[i].all_running = bar;
    cr_assert_eq(mp_thread_new(&t[i], record_ident, &seen[i]), 0);
    cr_expect_eq(mp_thread_ident(t[i]), 0, "0 before start");
  }
  for (int i = 0; i < N; i++) {
    cr_assert_eq(mp_thread_start(t[i]), 0);
    cr_expect_gt(mp_thread_ident(t[i]), 0, "known once start returns");
  }
  int64_t main_id = mp_thread_ident(mp_current_thread());
  cr_expect_gt(main_id, 0);
  for (int i = 0; i < N; i++) {
    int code = -1;
    cr_assert_eq(mp_thread_join(t[i], 30.0), 0);
    cr_expect_eq(mp_thread_exitcode(t[i], &code), 0);
    cr_expect_eq(code, 0);
    cr_expect_eq(seen[i].ident, mp_thread_ident(t[i]),
                 "the thread's own view");
    cr_expect_neq(seen[i].ident, main_id);
    for (int j = 0; j < i; j++)
      cr_expect_neq(seen[i].ident, seen[j].ident, "threads %d and %d", i, j);
  }
  for (int i = 0; i < N; i++)
    mp_thread_free(t[i]);
  mp_barrier_free(bar);
}

/* ---- the main thread and dummies ------------------------------------------ */

typedef struct who {
  mp_thread *current, *main;
  char name[64];
  int daemon, alive, join_rc, same_twice, count;
  int64_t ident;
} who;

static void look_around(who *w) {
  w->current = mp_current_thread();
  w->main = mp_main_thread();
  snprintf(w->name, sizeof w->name, "%s", mp_thread_name(w->current));
  w->daemon = mp_thread_daemon(w->current);
  w->alive = mp_thread_is_alive(w->current);
  w->join_rc = mp_thread_join(w->current, 0);
  w->same_twice = mp_current_thread() == w->current;
  w->ident = mp_thread_ident(w->current);
  w->count = mp_thread_active_count();
}

static int look_around_mp(void *arg) {
  look_around(arg);
  return 0;
}

static void look_around_foreign(void *arg) { look_around(arg); }

Test(thread, main_thread, .timeout = TS_TIMEOUT) {
  mp_thread *me = mp_current_thread();
  cr_assert_not_null(me);
  cr_expect_str_eq(mp_thread_name(me), "MainThread");
  cr_expect_eq(me, mp_main_thread());
  cr_expect_eq(mp_current_thread(), me, "the same object every time");
  cr_expect_eq(mp_thread_is_alive(me), 1);
  cr_expect_eq(mp_thread_daemon(me), 0);
  cr_expect_gt(mp_thread_ident(me), 0);
  int code = 0;
  cr_expect_eq(mp_thread_exitcode(me, &code), MP_ESTATE);
  cr_expect_eq(mp_thread_start(me), MP_ESTATE);
  mp_thread_free(me); /* no-op */
  cr_expect_str_eq(mp_thread_name(mp_current_thread()), "MainThread");

  /* In an mp_thread: its own object, the same main thread. */
  who w;
  memset(&w, 0, sizeof w);
  mp_thread *t = start_thread(look_around_mp, &w);
  cr_assert_eq(mp_thread_join(t, 30.0), 0);
  cr_expect_eq(w.current, t);
  cr_expect_eq(w.main, me);
  cr_expect_eq(w.alive, 1);
  cr_expect_eq(w.join_rc, MP_EINVAL);
  cr_expect_str_eq(w.name, mp_thread_name(t));
  mp_thread_free(t);
}

Test(thread, a_foreign_thread_is_a_dummy, .timeout = TS_TIMEOUT) {
  mp_thread *main = mp_main_thread();
  int before = mp_thread_active_count();
  who w;
  memset(&w, 0, sizeof w);
  ts_thread_join(ts_thread_start(look_around_foreign, &w));
  cr_assert_not_null(w.current);
  cr_expect_eq(strncmp(w.name, "Dummy-", 6), 0, "name %s", w.name);
  cr_expect_neq(w.current, main);
  cr_expect_eq(w.main, main);
  cr_expect_eq(w.same_twice, 1);
  cr_expect_eq(w.daemon, 1, "dummies are daemonic, as in Python");
  cr_expect_eq(w.alive, 1);
  cr_expect_eq(w.join_rc, MP_EINVAL, "joining oneself");
  cr_expect_gt(w.ident, 0);
  cr_expect_neq(w.ident, mp_thread_ident(main));
  cr_expect_eq(w.count, before + 1, "the dummy counts");
  /* Another thread cannot join a dummy; freeing one is a no-op. */
  cr_expect_eq(mp_thread_join(w.current, 0), MP_ESTATE);
  mp_thread_free(w.current);
  cr_expect_eq(strncmp(mp_thread_name(w.current), "Dummy-", 6), 0);

  /* A second foreign thread gets a dummy of its own. */
  who w2;
  memset(&w2, 0, sizeof w2);
  ts_thread_join(ts_thread_start(look_around_foreign, &w2));
  cr_expect_neq(w2.current, w.current);
  cr_expect_str_neq(w2.name, w.name);
}

/* ---- is_alive, free, active_count ----------------------------------------- */

Test(thread, is_alive_transitions, .timeout = TS_TIMEOUT) {
  mp_event *go = new_event();
  mp_thread *t = NULL;
  cr_assert_eq(mp_thread_new(&t, wait_event, go), 0);
  cr_expect_eq(mp_thread_is_alive(t), 0, "before start");
  cr_assert_eq(mp_thread_start(t), 0);
  cr_expect_eq(mp_thread_is_alive(t), 1, "running");
  cr_expect_eq(mp_thread_is_alive(t), 1, "still blocked");
  mp_event_set(go);
  cr_assert_eq(mp_thread_join(t, 30.0), 0);
  cr_expect_eq(mp_thread_is_alive(t), 0, "ended");
  mp_thread_free(t);
  mp_event_free(go);
}

typedef struct relay {
  mp_event *go, *done;
  int *counter;
} relay;

/* Waits for go, records that it ran, and sets done. */
static int relay_main(void *arg) {
  relay *r = arg;
  if (mp_event_wait(r->go, MP_FOREVER) != 0)
    return 1;
  (*r->counter)++;
  return mp_event_set(r->done);
}

typedef struct count_is {
  int want;
} count_is;

static int active_count_is(void *arg) {
  return mp_thread_active_count() == ((count_is *)arg)->want;
}

Test(thread, free_detaches_a_running_thread, .timeout = TS_TIMEOUT) {
  int base = mp_thread_active_count();
  int counter = 0;
  relay r = {new_event(), new_event(), &counter};
  mp_thread *t = start_thread(relay_main, &r);
  cr_expect_eq(mp_thread_active_count(), base + 1);
  mp_thread_free(t); /* running: detached, it runs on */
  cr_expect_eq(mp_event_is_set(r.done), 0);
  cr_assert_eq(mp_event_set(r.go), 0);
  cr_expect_eq(mp_event_wait(r.done, 30.0), 0, "the detached thread ran");
  cr_expect_eq(counter, 1);
  /* It ends by itself (and frees its object): nothing signals that. */
  count_is want = {base};
  cr_expect(ts_poll_until(active_count_is, &want, 30.0),
            "active count back to %d (is %d)", base,
            mp_thread_active_count());
  mp_event_free(r.go);
  mp_event_free(r.done);
}

Test(thread, active_count_goes_up_and_down, .timeout = TS_TIMEOUT) {
  enum { N = 3 };
  int base = mp_thread_active_count();
  cr_expect_geq(base, 1, "the main thread counts");
  mp_event *go[N];
  mp_thread *t[N];
  for (int i = 0; i < N; i++) {
    go[i] = new_event();
    cr_assert_eq(mp_thread_new(&t[i], wait_event, go[i]), 0);
    cr_expect_eq(mp_thread_active_count(), base + i, "not before start");
    cr_assert_eq(mp_thread_start(t[i]), 0);
    cr_expect_eq(mp_thread_active_count(), base + i + 1);
  }
  for (int i = 0; i < N; i++) {
    cr_assert_eq(mp_event_set(go[i]), 0);
    cr_assert_eq(mp_thread_join(t[i], 30.0), 0);
    cr_expect_eq(mp_thread_active_count(), base + N - i - 1,
                 "a joined thread no longer counts");
  }
  for (int i = 0; i < N; i++) {
    mp_thread_free(t[i]);
    mp_event_free(go[i]);
  }
  cr_expect_eq(mp_thread_active_count(), base);
}

/* ---- locks between mp_threads -------------------------------------------- */

enum { COUNTERS = 4, INCREMENTS = 10000 };

typedef struct shared_counter {
  mp_lock *lock;
  volatile long value;
  int errors;
} shared_counter;

static int increment(void *arg) {
  shared_counter *c = arg;
  for (int i = 0; i < INCREMENTS; i++) {
    if (mp_lock_acquire(c->lock, MP_FOREVER) != 0)
      return 1;
    c->value = c->value + 1; /* read, then write: racy without the lock */
    if (mp_lock_release(c->lock) != 0)
      return 2;
  }
  return 0;
}

Test(thread, lock_guards_a_counter, .timeout = TS_TIMEOUT) {
  shared_counter c = {NULL, 0, 0};
  cr_assert_eq(mp_lock_new(&c.lock), 0);
  mp_thread *t[COUNTERS];
  for (int i = 0; i < COUNTERS; i++)
    t[i] = start_thread(increment, &c);
  for (int i = 0; i < COUNTERS; i++) {
    int code = -1;
    cr_assert_eq(mp_thread_join(t[i], 50.0), 0);
    cr_expect_eq(mp_thread_exitcode(t[i], &code), 0);
    cr_expect_eq(code, 0);
    mp_thread_free(t[i]);
  }
  cr_expect_eq(c.value, (long)COUNTERS * INCREMENTS);
  mp_lock_free(c.lock);
}

typedef struct rlock_try {
  mp_lock *l;
  int release_rc, acquire_rc;
} rlock_try;

static int poke_rlock(void *arg) {
  rlock_try *r = arg;
  r->release_rc = mp_lock_release(r->l);
  r->acquire_rc = mp_lock_acquire(r->l, 0);
  if (r->acquire_rc == 0)
    mp_lock_release(r->l);
  return 0;
}

Test(thread, rlock_belongs_to_its_thread, .timeout = TS_TIMEOUT) {
  mp_lock *l = NULL;
  cr_assert_eq(mp_rlock_new(&l), 0);
  cr_assert_eq(mp_lock_acquire(l, 0), 0);
  cr_assert_eq(mp_lock_acquire(l, 0), 0, "recursive in its owner");
  rlock_try r = {l, 1, 1};
  mp_thread *t = start_thread(poke_rlock, &r);
  cr_assert_eq(mp_thread_join(t, 30.0), 0);
  cr_expect_eq(r.release_rc, MP_EPERM, "another thread cannot release it");
  cr_expect_eq(r.acquire_rc, MP_ETIMEDOUT, "nor take it");
  mp_thread_free(t);
  cr_expect_eq(mp_lock_release(l), 0);
  cr_expect_eq(mp_lock_release(l), 0);
  /* Free now: another thread takes it. */
  r.release_rc = r.acquire_rc = 1;
  t = start_thread(poke_rlock, &r);
  cr_assert_eq(mp_thread_join(t, 30.0), 0);
  cr_expect_eq(r.release_rc, MP_EPERM);
  cr_expect_eq(r.acquire_rc, 0);
  mp_thread_free(t);
  mp_lock_free(l);
}

/* A semaphore hands work from one thread to another, in order. */
typedef struct handoff {
  mp_semaphore *items, *slots;
  int box;
  int sum;
} handoff;

static int consume(void *arg) {
  handoff *h = arg;
  for (int i = 0; i < 100; i++) {
    if (mp_semaphore_acquire(h->items, 30.0) != 0)
      return 1;
    h->sum += h->box;
    mp_semaphore_release(h->slots);
  }
  return 0;
}

Test(thread, semaphore_hands_over_between_threads, .timeout = TS_TIMEOUT) {
  handoff h = {NULL, NULL, 0, 0};
  cr_assert_eq(mp_semaphore_new(&h.items, 0), 0);
  cr_assert_eq(mp_semaphore_new(&h.slots, 1), 0);
  mp_thread *t = start_thread(consume, &h);
  int want = 0;
  for (int i = 1; i <= 100; i++) {
    cr_assert_eq(mp_semaphore_acquire(h.slots, 30.0), 0);
    h.box = i;
    want += i;
    mp_semaphore_release(h.items);
  }
  int code = -1;
  cr_assert_eq(mp_thread_join(t, 30.0), 0);
  cr_expect_eq(mp_thread_exitcode(t, &code), 0);
  cr_expect_eq(code, 0);
  cr_expect_eq(h.sum, want);
  mp_thread_free(t);
  mp_semaphore_free(h.items);
  mp_semaphore_free(h.slots);
}

/* ---- at exit: non-daemonic threads are joined -------------------------- */

/* In the child: a thread that waits for the parent's event, then reports
 * through the pipe; main returns at once. */
static int late_report(void *arg) {
  const mp_args *a = arg;
  if (mp_event_wait(mp_args_event(a, 0), MP_FOREVER) != 0)
    return 1;
  ts_pipe_put(a, 1, 7);
  return 0;
}

static int leave_a_thread(const mp_args *a) {
  int daemon = (int)mp_args_int(a, 3);
  mp_thread *t = NULL;
  if (mp_thread_new(&t, late_report, (void *)a) != 0 ||
      mp_thread_set_daemon(t, daemon) != 0 || mp_thread_start(t) != 0)
    return 70;
  mp_thread_free(t); /* running: it carries on by itself */
  ts_pipe_put(a, 1, 1);
  return 0; /* the exit waits for the thread unless it is daemonic */
}

static void check_exit_joins_threads(const char *method, int daemon) {
  mp_event *go = new_event();
  ts_pipe pipe;
  ts_pipe_open(&pipe);
  mp_args *a;
  cr_assert_eq(mp_args_new(&a), 0);
  cr_assert_eq(mp_args_add_event(a, go), 0);
  ts_pipe_add_args(&pipe, a);
  cr_assert_eq(mp_args_add_int(a, daemon), 0);
  mp_process *p = ts_start(method, leave_a_thread, a);
  mp_args_free(a);
  int64_t v = 0;
  cr_assert_eq(ts_pipe_get(&pipe, 30.0, &v), 0);
  cr_expect_eq(v, 1, "the target returned");
  if (daemon) {
    cr_expect_eq(ts_join(p), 0, "a daemonic thread is not waited for");
  } else {
    cr_expect_eq(mp_process_join(p, 0.3), MP_ETIMEDOUT,
                 "the child waits for its thread");
    cr_assert_eq(mp_event_set(go), 0);
    cr_assert_eq(ts_pipe_get(&pipe, 30.0, &v), 0);
    cr_expect_eq(v, 7, "the thread ran to its end");
    cr_expect_eq(ts_join(p), 0);
  }
  mp_process_free(p);
  ts_pipe_close(&pipe);
  mp_event_free(go);
}

static void check_exit_joins_nondaemonic_threads(const char *method) {
  check_exit_joins_threads(method, 0);
}
FOR_EACH_METHOD(check_exit_joins_nondaemonic_threads)

static void check_exit_leaves_daemonic_threads(const char *method) {
  check_exit_joins_threads(method, 1);
}
FOR_EACH_METHOD(check_exit_leaves_daemonic_threads)

/* ---- fork from a thread ----------------------------------------------------- */

#if MP_HAS_FORK
/* In the forked child: who is who. */
static int report_threads(const mp_args *a) {
  (void)a;
  mp_thread *cur = mp_current_thread(), *main = mp_main_thread();
  return ts_report("%s|%d|%d|%d", mp_thread_name(main), cur == main,
                   mp_thread_active_count(), mp_thread_is_alive(main));
}

typedef struct forker {
  mp_process *p;
  int rc;
} forker;

static int fork_child(void *arg) {
  forker *f = arg;
  mp_context *ctx = NULL;
  f->rc = mp_get_context("fork", &ctx);
  if (f->rc == 0)
    f->rc = mp_process_new(&f->p, report_threads, NULL);
  if (f->rc == 0)
    f->rc = mp_process_set_context(f->p, ctx);
  if (f->rc == 0)
    f->rc = mp_process_start(f->p);
  return 0;
}

static void fork_child_foreign(void *arg) { fork_child(arg); }

/* Fork from an mp_thread (which keeps its name in the child, as in
 * Python) and from a foreign thread (its dummy becomes "MainThread"),
 * while another thread of the parent is blocked: the child has only the
 * forking thread, which is its main thread, and it does not wait for the
 * parent's threads at exit. */
Test(thread, fork_from_a_thread, .timeout = TS_TIMEOUT) {
  mp_event *go = new_event();
  mp_thread *blocked = start_thread(wait_event, go);

  forker f = {NULL, 1};
  mp_thread *t = NULL;
  cr_assert_eq(mp_thread_new(&t, fork_child, &f), 0);
  cr_assert_eq(mp_thread_set_name(t, "forker"), 0);
  cr_assert_eq(mp_thread_start(t), 0);
  cr_assert_eq(mp_thread_join(t, 30.0), 0);
  cr_assert_eq(f.rc, 0, "%s", mp_err_name(f.rc));
  cr_expect_eq(ts_join(f.p), TS_REPORT, "%s", mp_process_error(f.p));
  cr_expect_str_eq(mp_process_error(f.p), "forker|1|1|1");
  mp_process_free(f.p);
  mp_thread_free(t);

  forker g = {NULL, 1};
  ts_thread_join(ts_thread_start(fork_child_foreign, &g));
  cr_assert_eq(g.rc, 0, "%s", mp_err_name(g.rc));
  cr_expect_eq(ts_join(g.p), TS_REPORT, "%s", mp_process_error(g.p));
  cr_expect_str_eq(mp_process_error(g.p), "MainThread|1|1|1");
  mp_process_free(g.p);

  /* From the main thread itself. */
  forker h = {NULL, 1};
  fork_child(&h);
  cr_assert_eq(h.rc, 0, "%s", mp_err_name(h.rc));
  cr_expect_eq(ts_join(h.p), TS_REPORT, "%s", mp_process_error(h.p));
  cr_expect_str_eq(mp_process_error(h.p), "MainThread|1|1|1");
  mp_process_free(h.p);

  mp_event_set(go);
  cr_expect_eq(mp_thread_join(blocked, 30.0), 0);
  mp_thread_free(blocked);
  mp_event_free(go);
}
#endif

/* ---- threads in a spawned child ----------------------------------------- */

static int spawned_names(const mp_args *a) {
  (void)a;
  mp_thread *t = NULL;
  int value = 9, code = -1;
  if (mp_thread_new(&t, return_value, &value) != 0 || mp_thread_start(t) != 0 ||
      mp_thread_join(t, 30.0) != 0 || mp_thread_exitcode(t, &code) != 0)
    return 70;
  int n = 0;
  sscanf(mp_thread_name(t), "Thread-%d", &n);
  mp_thread_free(t);
  return ts_report("%s|%d|%d|%d", mp_thread_name(mp_current_thread()),
                   mp_current_thread() == mp_main_thread(), n, code);
}

Test(thread, in_a_spawned_child, .timeout = TS_TIMEOUT) {
  mp_process *p = ts_start("spawn", spawned_names, NULL);
  cr_expect_eq(ts_join(p), TS_REPORT, "%s", mp_process_error(p));
  cr_expect_str_eq(mp_process_error(p), "MainThread|1|1|9",
                   "a fresh process numbers its threads from 1");
  mp_process_free(p);
}

/* A process target runs in a thread too (Python's Thread(target=f,
 * args=(...))): the same function, the same format, objects shared. */
static int put_and_return(const mp_args *a) {
  mp_queue *q;
  const char *s;
  int k;
  if (mp_args_unpack(a, "Qsi", &q, &s, &k) != 0)
    return 90;
  return mp_queue_put(q, s, strlen(s), 10.0) == 0 ? k : 91;
}

Test(thread, startf_runs_a_process_target, .timeout = TS_TIMEOUT) {
  mp_queue *q;
  cr_assert_eq(mp_queue_new(&q, 0), 0);
  mp_thread *t = NULL;
  cr_assert_eq(mp_thread_startf(&t, put_and_return, "Qsi", q, "hi", 7), 0,
               "%s", mp_last_error_message());
  char buf[8];
  size_t n = 0;
  cr_assert_eq(mp_queue_get_into(q, buf, sizeof buf, &n, 20.0), 0);
  cr_expect_eq(n, 2);
  cr_expect_eq(memcmp(buf, "hi", 2), 0);
  cr_assert_eq(mp_thread_join(t, 20.0), 0);
  int code = -1;
  cr_assert_eq(mp_thread_exitcode(t, &code), 0);
  cr_expect_eq(code, 7);
  mp_thread_free(t);
  /* Errors start nothing and leave *out NULL. */
  t = (mp_thread *)1;
  cr_expect_eq(mp_thread_startf(&t, put_and_return, "Q?", q), MP_EINVAL);
  cr_expect_null(t);
  cr_expect_eq(mp_thread_startf(&t, NULL, "i", 1), MP_EINVAL);
  cr_expect_eq(mp_thread_startf(&t, put_and_return, NULL), MP_EINVAL);
  cr_expect_eq(mp_thread_startf(NULL, put_and_return, "i", 1), MP_EINVAL);
  mp_queue_free(q);
}
