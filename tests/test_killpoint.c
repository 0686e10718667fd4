/*
 * test_killpoint.c - kill-anywhere tests (issue 15; Linux only).
 *
 * Each test kills a child at every instruction boundary of one mproc call
 * (killpoint.h: ptrace single-stepping) and checks after each kill that
 * the shared objects are exactly consistent:
 *   - queues (put / get; plain, joinable, with maxsize; small messages and
 *     streamed ones): no message lost, none doubled, no garbage; qsize
 *     equals what can be taken at that moment, empty / full agree, never
 *     more than maxsize; a JoinableQueue's unfinished count is exact; the
 *     queue works afterwards;
 *   - Lock, RLock (acquire, release): the next acquire succeeds within
 *     2 s, with MP_EOWNERDEAD exactly when the child held it, then 0;
 *   - Semaphore (acquire, release): the value is v or v-1 / v or v+1;
 *   - a waker (queue put, semaphore release, event set) killed while a
 *     thread of the parent sleeps on the object: what the child did
 *     reaches the sleeper within 3 s by itself, and the parent's own
 *     wake reaches it within 3 s when the child did nothing;
 *   - mp_shm_new of a named segment: the name goes within 5 s, can be
 *     created again, and no tracker process stays;
 *   - a pool worker killed while it answers a chunk: the map fails with
 *     MP_EWORKERDIED or succeeds with the right values; the next map on
 *     the same pool succeeds.
 * Each test prints its report (N, kill points, checks, failures with the
 * kill point and the invariant).  MPROC_KILLPOINT_MAX caps the kill points
 * per scenario (default KP_DEFAULT_MAX); MPROC_KILLPOINT_REPORT names a
 * file each report is also appended to.
 */
#if !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "killpoint.h"
#include "mproc.h"
#include "support.h"

#define KP_TEST_TIMEOUT 900

TS_SUITE(killpoint);

/* ---- running a scenario as a test --------------------------------------- */

static void report_out(const kp_report *r) {
  kp_print_header(stderr);
  kp_print(r, stderr);
  const char *path = getenv("MPROC_KILLPOINT_REPORT");
  if (path != NULL && *path != '\0') {
    FILE *f = fopen(path, "a");
    if (f != NULL) {
      kp_print(r, f);
      fclose(f);
    }
  }
}

static void run_scenario(const kp_scenario *s) {
  kp_report r;
  int rc = kp_run(s, &r);
  report_out(&r);
  cr_assert(rc == 0, "%s: the kill-anywhere facility failed: %s", s->name,
            r.error);
  cr_assert(r.points > 0, "%s: no kill point was injected", s->name);
  cr_assert(r.failed == 0,
            "%s: %ld of %ld kill points broke an invariant; first at k=%ld "
            "(of N=%ld): %s",
            s->name, r.failed, r.points, r.fails[0].k, r.n, r.fails[0].msg);
}

/* Append a formatted message (the first failure wins the front). */
static int fail_msg(char *msg, size_t cap, const char *fmt, ...) {
  size_t used = strlen(msg);
  if (used + 4 >= cap)
    return 1;
  if (used > 0) {
    memcpy(msg + used, "; ", 3);
    used += 2;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg + used, cap - used, fmt, ap);
  va_end(ap);
  return 1;
}

/* ---- queues ------------------------------------------------------------- */

enum { OP_PUT = 0, OP_GET = 1 };

typedef struct qctx {
  const char *name;
  int op;
  int joinable;
  int64_t maxsize;
  size_t buffer;   /* 0: the default ring */
  int pre;         /* messages queued before the call */
  size_t len;      /* the length of each message */
  int slow_budget; /* failures that may still wait the full timeout */
  mp_queue *q;
  /* the child's result (for its own sake: the parent never sees it) */
  int rc;
  void *got;
  size_t got_n;
  void *x; /* the child's message X */
  size_t x_n;
} qctx;

#define X_SEED 1000u

static size_t msg_len(const qctx *c, size_t seed) {
  return c->len + (seed % 7); /* small variations: records of other sizes */
}

static int q_new(const qctx *c, mp_queue **q) {
  return mp_queue_new_ex(q, c->maxsize, c->buffer, c->joinable);
}

static int q_put_seed(mp_queue *q, const qctx *c, size_t seed) {
  size_t n = msg_len(c, seed);
  void *m = ts_make_message(n, seed);
  int rc = mp_queue_put(q, m, n, 1.0);
  free(m);
  return rc;
}

static void q_warmup(void *arg) {
  qctx *c = arg;
  mp_queue *q = NULL;
  if (q_new(c, &q) != 0)
    return;
  for (int i = 0; i < 2; i++) {
    q_put_seed(q, c, 1);
    void *p = NULL;
    size_t n = 0;
    if (mp_queue_get(q, &p, &n, 1.0) == 0)
      free(p);
    if (c->joinable)
      mp_queue_task_done(q);
  }
  mp_queue_qsize(q);
  mp_queue_free(q);
}

static int q_setup(void *arg) {
  qctx *c = arg;
  if (q_new(c, &c->q) != 0)
    return -1;
  for (int i = 0; i < c->pre; i++)
    if (q_put_seed(c->q, c, (size_t)i + 1) != 0)
      return -1;
  return 0;
}

static void q_teardown(void *arg) {
  qctx *c = arg;
  mp_queue_free(c->q);
  c->q = NULL;
}

/* In the child, before the first marker: make message X, so that only
 * the put is stepped. */
static int q_child_pre(void *arg) {
  qctx *c = arg;
  if (c->op == OP_PUT) {
    c->x_n = msg_len(c, X_SEED);
    c->x = ts_make_message(c->x_n, X_SEED);
  }
  return 0;
}

static void q_call(void *arg) {
  qctx *c = arg;
  if (c->op == OP_PUT) {
    c->rc = mp_queue_put(c->q, c->x, c->x_n, 0);
  } else {
    c->rc = mp_queue_get(c->q, &c->got, &c->got_n, 0);
  }
}

/* The message a drained one is: its seed, 0 when it is garbage. */
static size_t which_message(const qctx *c, const void *p, size_t n) {
  for (size_t seed = 1; seed <= (size_t)c->pre; seed++)
    if (n == msg_len(c, seed) && ts_is_message(p, n, seed))
      return seed;
  if (n == msg_len(c, X_SEED) && ts_is_message(p, n, X_SEED))
    return X_SEED;
  return 0;
}

static int q_after(qctx *c, size_t len, char *msg, size_t cap);

static int q_check(void *arg, const kp_point *pt, char *msg, size_t cap) {
  (void)pt;
  qctx *c = arg;
  mp_queue *q = c->q;
  int bad = 0;
  int64_t qs = mp_queue_qsize(q);
  int empty = mp_queue_empty(q), full = mp_queue_full(q);
  /* Drain with get_nowait.  When it finds nothing at first while qsize()
   * says there is something (or the child was a consumer), one get that
   * may wait tells a queue that is really empty from a consumer lock the
   * dead child still holds (which only a waiting get takes over). */
  size_t seeds[64];
  int d = 0;
  for (;;) {
    void *p = NULL;
    size_t n = 0;
    int rc = mp_queue_get_nowait(q, &p, &n);
    if (rc == MP_EEMPTY && d == 0 &&
        (qs > 0 || (c->op == OP_GET && c->pre > 0))) {
      rc = mp_queue_get(q, &p, &n, c->slow_budget > 0 ? 0.5 : 0.06);
      if (rc == 0)
        bad = fail_msg(msg, cap,
                       "[nowait] get_nowait() gave MP_EEMPTY with a "
                       "message there (qsize()=%lld): the dead child's "
                       "consumer lock is taken over only by a waiting get",
                       (long long)qs);
      else if (c->slow_budget > 0)
        c->slow_budget--;
    }
    if (rc == MP_EEMPTY)
      break;
    if (rc != 0) {
      bad = fail_msg(msg, cap, "[drain] get_nowait while draining: %s",
                     mp_err_name(rc));
      break;
    }
    size_t s = which_message(c, p, n);
    free(p);
    if (d < 64)
      seeds[d] = s;
    d++;
    if (d > c->pre + 2)
      break;
  }
  /* Contents: put: the M in order, then X at most once; get: the M in
   * order, the first possibly taken by the child. */
  int first = 0;
  if (c->op == OP_PUT) {
    if (d != c->pre && d != c->pre + 1)
      bad = fail_msg(msg, cap, "[count] drained %d messages, expected %d or %d",
                     d, c->pre, c->pre + 1);
  } else {
    if (d != c->pre && d != c->pre - 1)
      bad = fail_msg(msg, cap, "[count] drained %d messages, expected %d or %d",
                     d, c->pre, c->pre - 1);
    first = c->pre - d;
  }
  for (int i = 0; i < d && i < 64; i++) {
    size_t want =
        (c->op == OP_PUT && i == c->pre) ? X_SEED : (size_t)(first + i + 1);
    if (seeds[i] != want) {
      bad = fail_msg(msg, cap,
                     seeds[i] == 0
                         ? "[content] message %d drained is garbage"
                         : "[content] message %d drained is #%zu, expected "
                           "#%zu",
                     i, seeds[i], want);
      break;
    }
  }
  if (c->maxsize > 0 && d > c->maxsize)
    bad =
        fail_msg(msg, cap, "[maxsize] the queue held %d messages, maxsize %lld",
                 d, (long long)c->maxsize);
  /* Counters, as read right after the kill. */
  if (qs != d)
    bad = fail_msg(msg, cap,
                   "[qsize] qsize() was %lld but %d messages could be "
                   "taken",
                   (long long)qs, d);
  if (empty != (qs == 0))
    bad = fail_msg(msg, cap, "[empty] empty()=%d with qsize()=%lld", empty,
                   (long long)qs);
  int want_full = c->maxsize > 0 && qs >= c->maxsize;
  if (full != want_full)
    bad = fail_msg(msg, cap, "[full] full()=%d with qsize()=%lld, maxsize %lld",
                   full, (long long)qs, (long long)c->maxsize);
  if (mp_queue_qsize(q) != 0 || !mp_queue_empty(q))
    bad = fail_msg(msg, cap, "[qsize] after draining, qsize()=%lld",
                   (long long)mp_queue_qsize(q));
  /* JoinableQueue: one task_done per message taken. */
  if (c->joinable) {
    int done_ok = 1;
    for (int i = 0; i < d; i++) {
      int rc = mp_queue_task_done(q);
      if (rc != 0) {
        bad = fail_msg(msg, cap,
                       "[unfinished] task_done %d of %d drained: %s "
                       "(unfinished count too low)",
                       i + 1, d, mp_err_name(rc));
        done_ok = 0;
        break;
      }
    }
    if (done_ok && c->op == OP_GET && d == c->pre - 1) {
      /* The dead consumer's message: it owed a task_done, unless the
       * queue wrote the message off (a streamed one it had begun). */
      if (mp_queue_join(q, 0) != 0 && mp_queue_task_done(q) != 0)
        bad = fail_msg(msg, cap,
                       "[unfinished] task_done for the dead consumer's "
                       "message failed");
    }
    if (done_ok) {
      /* 1 s while the budget for slow failures lasts, then 0.1 s. */
      int rc = mp_queue_join(q, c->slow_budget > 0 ? 1.0 : 0.1);
      if (rc != 0 && c->slow_budget > 0)
        c->slow_budget--;
      if (rc != 0) {
        bad = fail_msg(msg, cap,
                       "[unfinished] join() after every task_done: %s "
                       "(unfinished count too high)",
                       mp_err_name(rc));
      } else if ((rc = mp_queue_task_done(q)) != MP_EVALUE) {
        bad = fail_msg(msg, cap,
                       "[unfinished] one more task_done gave %s, not "
                       "MP_EVALUE",
                       mp_err_name(rc));
      }
    }
  }
  /* The queue works afterwards: a small message, then one of the
   * scenario's size (a streamed one is put by a thread while this one
   * takes it: a streamed put may need a consumer), repairing what the
   * dead process left. */
  for (int round = 0; round < 2 && !bad; round++)
    bad = q_after(c, round == 0 ? 24 : msg_len(c, 3), msg, cap);
  return bad;
}

typedef struct put_job {
  mp_queue *q;
  size_t n;
  int rc;
} put_job;

static void put_job_fn(void *arg) {
  put_job *j = arg;
  void *m = ts_make_message(j->n, 3);
  j->rc = mp_queue_put(j->q, m, j->n, 5.0);
  free(m);
}

static int q_after(qctx *c, size_t len, char *msg, size_t cap) {
  mp_queue *q = c->q;
  int bad = 0, rc;
  put_job job = {q, len, 0};
  ts_thread *t = NULL;
  if (len > 1000) {
    t = ts_thread_start(put_job_fn, &job);
  } else {
    put_job_fn(&job);
    if (job.rc == 0 && mp_queue_qsize(q) != 1)
      bad = fail_msg(msg, cap,
                     "[after] qsize()=%lld after one put into "
                     "the drained queue",
                     (long long)mp_queue_qsize(q));
  }
  void *p = NULL;
  size_t n = 0;
  rc = job.rc == 0 ? mp_queue_get(q, &p, &n, 5.0) : job.rc;
  if (t != NULL)
    ts_thread_join(t);
  if (job.rc != 0)
    return fail_msg(msg, cap, "[after] put of %zu bytes after the kill: %s",
                    len, mp_err_name(job.rc));
  if (rc != 0)
    return fail_msg(msg, cap, "[after] get after the kill: %s",
                    mp_err_name(rc));
  if (n != len || !ts_is_message(p, n, 3))
    bad = fail_msg(msg, cap,
                   "[after] the message got after the kill is "
                   "wrong (%zu bytes, put %zu)",
                   n, len);
  free(p);
  if (c->joinable) {
    if ((rc = mp_queue_task_done(q)) != 0)
      bad = fail_msg(msg, cap, "[after] task_done after the kill: %s",
                     mp_err_name(rc));
    else if ((rc = mp_queue_join(q, 1.0)) != 0)
      bad = fail_msg(msg, cap, "[after] join after the kill: %s",
                     mp_err_name(rc));
  }
  if (mp_queue_qsize(q) != 0)
    bad = fail_msg(msg, cap, "[after] qsize()=%lld after put and get",
                   (long long)mp_queue_qsize(q));
  return bad;
}

static void run_queue(qctx *c) {
  kp_scenario s = {c->name, c,       q_warmup,   q_setup, q_child_pre,
                   q_call,  q_check, q_teardown, 0};
  run_scenario(&s);
}

#define QTEST(tname, op_, joinable_, maxsize_, buffer_, pre_, len_)         \
  Test(killpoint, tname, .timeout = KP_TEST_TIMEOUT) {                         \
    qctx c;                                                                    \
    memset(&c, 0, sizeof c);                                                   \
    c.name = #tname;                                                           \
    c.op = op_;                                                                \
    c.joinable = joinable_;                                                    \
    c.maxsize = maxsize_;                                                      \
    c.buffer = buffer_;                                                        \
    c.pre = pre_;                                                              \
    c.len = len_;                                                              \
    c.slow_budget = 5;                                                         \
    run_queue(&c);                                                             \
  }

/* QTEST(test, op, joinable, maxsize, buffer, pre, len) */
QTEST(put_empty, OP_PUT, 0, 0, 0, 0, 24)
QTEST(put_3_queued, OP_PUT, 0, 0, 0, 3, 24)
QTEST(put_maxsize, OP_PUT, 0, 4, 0, 3, 24)
QTEST(put_joinable_empty, OP_PUT, 1, 0, 0, 0, 24)
QTEST(put_joinable_queued, OP_PUT, 1, 4, 0, 2, 24)
QTEST(get_1_queued, OP_GET, 0, 0, 0, 1, 24)
QTEST(get_3_queued, OP_GET, 0, 4, 0, 3, 24)
QTEST(get_joinable, OP_GET, 1, 0, 0, 2, 24)
/* Streamed: a 4 KiB ring streams a message above 1 KiB in pieces; 3000
 * bytes is BEGIN, MORE, END and still fits the ring, so the put does not
 * wait for a consumer (the child is alone while it is stepped). */
QTEST(put_streamed, OP_PUT, 0, 0, 4096, 0, 3000)
QTEST(put_streamed_joinable, OP_PUT, 1, 0, 4096, 0, 3000)
QTEST(get_streamed, OP_GET, 0, 0, 4096, 1, 3000)
QTEST(get_streamed_joinable, OP_GET, 1, 0, 4096, 1, 3000)

/* ---- Lock, RLock, Semaphore --------------------------------------------- */

typedef struct lctx {
  const char *name;
  int kind; /* 0 Lock, 1 RLock, 2 Semaphore */
  int op;   /* 0 acquire, 1 release */
  mp_lock *l;
  mp_semaphore *s;
  int value; /* semaphore: the value before the call */
} lctx;

static int l_setup(void *arg) {
  lctx *c = arg;
  if (c->kind == 2)
    return mp_semaphore_new(&c->s, (unsigned)c->value);
  return c->kind == 1 ? mp_rlock_new(&c->l) : mp_lock_new(&c->l);
}

static void l_teardown(void *arg) {
  lctx *c = arg;
  mp_lock_free(c->l);
  mp_semaphore_free(c->s);
  c->l = NULL;
  c->s = NULL;
}

static void l_warmup(void *arg) {
  lctx *c = arg;
  if (l_setup(c) != 0)
    return;
  for (int i = 0; i < 2; i++) {
    if (c->kind == 2) {
      mp_semaphore_acquire(c->s, 1.0);
      mp_semaphore_release(c->s);
      mp_semaphore_get_value(c->s);
    } else {
      mp_lock_acquire(c->l, 1.0);
      mp_lock_release(c->l);
      mp_lock_locked(c->l);
    }
  }
  l_teardown(c);
}

static int l_child_pre(void *arg) {
  lctx *c = arg;
  if (c->op != 1 || c->kind == 2)
    return 0;
  return mp_lock_acquire(c->l, 1.0); /* the call releases it */
}

static void l_call(void *arg) {
  lctx *c = arg;
  if (c->kind == 2) {
    if (c->op == 0)
      mp_semaphore_acquire(c->s, 1.0);
    else
      mp_semaphore_release(c->s);
  } else if (c->op == 0) {
    mp_lock_acquire(c->l, 1.0);
  } else {
    mp_lock_release(c->l);
  }
}

static int l_check(void *arg, const kp_point *pt, char *msg, size_t cap) {
  (void)pt;
  lctx *c = arg;
  int bad = 0;
  if (c->kind == 2) {
    int v = mp_semaphore_get_value(c->s);
    int other = c->op == 0 ? c->value - 1 : c->value + 1;
    if (v != c->value && v != other)
      bad = fail_msg(msg, cap,
                     "[sem-value] semaphore value %d, expected %d or %d", v,
                     c->value, other);
    for (int i = 0; i < 2 && !bad; i++) {
      int rc = mp_semaphore_acquire(c->s, 2.0);
      if (rc != 0)
        bad = fail_msg(msg, cap, "[sem-after] acquire after the kill: %s",
                       mp_err_name(rc));
      else if ((rc = mp_semaphore_release(c->s)) != 0)
        bad = fail_msg(msg, cap, "[sem-after] release after the kill: %s",
                       mp_err_name(rc));
      else if (mp_semaphore_get_value(c->s) != v)
        bad = fail_msg(msg, cap,
                       "[sem-after] value %d after acquire and release, "
                       "was %d",
                       mp_semaphore_get_value(c->s), v);
    }
    return bad;
  }
  /* Locked now: only the dead child can hold it. */
  int held = mp_lock_locked(c->l);
  int rc = mp_lock_acquire(c->l, 2.0);
  if (held && rc != MP_EOWNERDEAD)
    bad = fail_msg(msg, cap,
                   "[owner-dead] the dead child held the lock; acquire gave "
                   "%s, not MP_EOWNERDEAD",
                   mp_err_name(rc));
  if (!held && rc != 0)
    bad = fail_msg(msg, cap, "[owner-dead] the lock was free; acquire gave %s",
                   mp_err_name(rc));
  if (rc != 0 && rc != MP_EOWNERDEAD)
    return bad;
  if ((rc = mp_lock_release(c->l)) != 0)
    return fail_msg(msg, cap, "[lock-after] release after the kill: %s",
                    mp_err_name(rc));
  if (mp_lock_locked(c->l))
    bad = fail_msg(msg, cap, "[lock-after] still locked after release");
  if ((rc = mp_lock_acquire(c->l, 2.0)) != 0)
    return fail_msg(msg, cap,
                    "[lock-after] the next acquire gave %s, not 0 (owner "
                    "death reported more than once?)",
                    mp_err_name(rc));
  if ((rc = mp_lock_release(c->l)) != 0)
    bad =
        fail_msg(msg, cap, "[lock-after] second release: %s", mp_err_name(rc));
  return bad;
}

static void run_lock(lctx *c) {
  kp_scenario s = {c->name, c,       l_warmup,   l_setup, l_child_pre,
                   l_call,  l_check, l_teardown, 0};
  run_scenario(&s);
}

#define LTEST(tname, kind, op, value)                                          \
  Test(killpoint, tname, .timeout = KP_TEST_TIMEOUT) {                         \
    lctx c = {#tname, kind, op, NULL, NULL, value};                            \
    run_lock(&c);                                                              \
  }

LTEST(lock_acquire, 0, 0, 0)
LTEST(lock_release, 0, 1, 0)
LTEST(rlock_acquire, 1, 0, 0)
LTEST(rlock_release, 1, 1, 0)
LTEST(semaphore_acquire, 2, 0, 3)
LTEST(semaphore_release, 2, 1, 3)

/* ---- a waker killed with a sleeper waiting ------------------------------ */

/* The scenarios above have nobody asleep on the object while the child is
 * stepped, so a wake is never sent.  Here a thread of the parent sleeps
 * (in the futex, checked through /proc) in a get, an acquire or a wait
 * before the child's put, release or set is stepped and killed.  Then
 * the sleeper must not be stranded: what the child did must reach it on
 * its own within WAKE_LIMIT seconds (a waker killed between the change
 * and the wake), and if the child did nothing, the parent's own put,
 * release or set must reach it within WAKE_LIMIT (a waker killed between
 * taking the sleeper's arm and bumping the generation left every later
 * wake unsent).  The object's state is exact afterwards. */

#define WAKE_LIMIT 3.0

enum { W_QUEUE = 0, W_SEMAPHORE = 1, W_EVENT = 2 };

typedef struct wctx {
  const char *name;
  int kind;
  mp_queue *q;
  mp_semaphore *s;
  mp_event *e;
  /* the sleeping thread */
  ts_thread *t;
  mp_event *done; /* set when its call returned */
  volatile pid_t tid;
  int rc;
  void *got;
  size_t got_n;
  void *x; /* the child's message (queue) */
  size_t x_n;
} wctx;

#define W_MSG_LEN 24

static void w_sleeper(void *arg) {
  wctx *c = arg;
  c->tid = (pid_t)syscall(SYS_gettid);
  if (c->kind == W_QUEUE)
    c->rc = mp_queue_get(c->q, &c->got, &c->got_n, 10.0);
  else if (c->kind == W_SEMAPHORE)
    c->rc = mp_semaphore_acquire(c->s, 10.0);
  else
    c->rc = mp_event_wait(c->e, 10.0);
  mp_event_set(c->done);
}

/* 1 once thread `tid` of this process sleeps in futex(2). */
static int in_futex(pid_t tid) {
  char path[64], buf[64];
  snprintf(path, sizeof path, "/proc/self/task/%ld/syscall", (long)tid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  int ok = fgets(buf, sizeof buf, f) != NULL &&
           strtol(buf, NULL, 10) == (long)SYS_futex;
  fclose(f);
  return ok;
}

static int w_new(wctx *c) {
  if (c->kind == W_QUEUE)
    return mp_queue_new(&c->q, 0);
  if (c->kind == W_SEMAPHORE)
    return mp_semaphore_new(&c->s, 0);
  return mp_event_new(&c->e);
}

static void w_free(wctx *c) {
  mp_queue_free(c->q);
  mp_semaphore_free(c->s);
  mp_event_free(c->e);
  c->q = NULL;
  c->s = NULL;
  c->e = NULL;
}

/* The waker's call, in the child (and the parent's own, after a kill). */
static int w_wake(wctx *c, size_t seed) {
  if (c->kind == W_QUEUE) {
    void *m = ts_make_message(W_MSG_LEN, seed);
    int rc = mp_queue_put(c->q, m, W_MSG_LEN, 1.0);
    free(m);
    return rc;
  }
  if (c->kind == W_SEMAPHORE)
    return mp_semaphore_release(c->s);
  return mp_event_set(c->e);
}

static void w_warmup(void *arg) {
  wctx *c = arg;
  if (w_new(c) != 0)
    return;
  for (int i = 0; i < 2; i++) {
    w_wake(c, 1);
    if (c->kind == W_QUEUE) {
      void *p = NULL;
      size_t n = 0;
      if (mp_queue_get(c->q, &p, &n, 1.0) == 0)
        free(p);
    } else if (c->kind == W_SEMAPHORE) {
      mp_semaphore_acquire(c->s, 1.0);
    } else {
      mp_event_wait(c->e, 1.0);
      mp_event_clear(c->e);
    }
  }
  w_free(c);
}

/* The object, and the sleeper asleep on it (within 10 s). */
static int w_setup(void *arg) {
  wctx *c = arg;
  c->tid = 0;
  c->rc = -1;
  c->got = NULL;
  c->got_n = 0;
  if (w_new(c) != 0 || mp_event_new(&c->done) != 0)
    return -1;
  c->t = ts_thread_start(w_sleeper, c);
  double until = ts_now() + 10;
  while (ts_now() < until && (c->tid == 0 || !in_futex(c->tid)))
    sched_yield();
  return c->tid != 0 && in_futex(c->tid) ? 0 : -1;
}

static void w_teardown(void *arg) {
  wctx *c = arg;
  if (c->t != NULL) {
    if (mp_event_wait(c->done, 0) != 0)
      w_wake(c, 3); /* release a sleeper a failed check left behind */
    ts_thread_join(c->t);
    c->t = NULL;
  }
  free(c->got);
  c->got = NULL;
  mp_event_free(c->done);
  c->done = NULL;
  w_free(c);
}

static int w_child_pre(void *arg) {
  wctx *c = arg;
  c->x_n = W_MSG_LEN;
  c->x = ts_make_message(c->x_n, X_SEED);
  return 0;
}

static void w_call(void *arg) {
  wctx *c = arg;
  if (c->kind == W_QUEUE)
    mp_queue_put(c->q, c->x, c->x_n, 0);
  else
    w_wake(c, X_SEED);
}

/* Has the child's call taken effect (and not yet been consumed)? */
static int w_pending(wctx *c) {
  if (c->kind == W_QUEUE)
    return mp_queue_qsize(c->q) > 0;
  if (c->kind == W_SEMAPHORE)
    return mp_semaphore_get_value(c->s) > 0;
  return mp_event_is_set(c->e);
}

static int w_check(void *arg, const kp_point *pt, char *msg, size_t cap) {
  (void)pt;
  wctx *c = arg;
  int bad = 0, mine = 0;
  if (w_pending(c) && mp_event_wait(c->done, WAKE_LIMIT) != 0)
    bad = fail_msg(msg, cap,
                   "[stranded] what the killed waker did was there for "
                   "%g s and the sleeper still slept",
                   WAKE_LIMIT);
  if (mp_event_wait(c->done, 0) != 0) {
    mine = 1;
    int rc = w_wake(c, 3);
    if (rc != 0)
      return fail_msg(msg, cap, "[after] the parent's own wake: %s",
                      mp_err_name(rc));
    if (mp_event_wait(c->done, WAKE_LIMIT) != 0)
      return fail_msg(msg, cap,
                      "[lost-arm] the sleeper slept through the parent's "
                      "own wake for %g s",
                      WAKE_LIMIT);
  }
  if (c->rc != 0)
    return fail_msg(msg, cap, "[sleeper] its call gave %s", mp_err_name(c->rc));
  if (c->kind == W_QUEUE) {
    /* It took X or, when the child put nothing, the parent's message;
     * what is left is the parent's message after X, or nothing. */
    size_t first = c->got_n == W_MSG_LEN && ts_is_message(c->got, c->got_n,
                                                          X_SEED)
                       ? X_SEED
                   : c->got_n == W_MSG_LEN && ts_is_message(c->got, c->got_n, 3)
                       ? 3
                       : 0;
    if (first == 0)
      bad = fail_msg(msg, cap, "[content] the sleeper got garbage");
    int left = 0;
    void *p = NULL;
    size_t n = 0;
    while (mp_queue_get_nowait(c->q, &p, &n) == 0) {
      left++;
      if (!mine || first != X_SEED || n != W_MSG_LEN ||
          !ts_is_message(p, n, 3))
        bad = fail_msg(msg, cap, "[content] message %d left over is not "
                                 "the parent's after X",
                       left);
      free(p);
      p = NULL;
    }
    if (mine && first == X_SEED && left != 1)
      bad = fail_msg(msg, cap, "[count] the parent's message was lost");
    if (mp_queue_qsize(c->q) != 0)
      bad = fail_msg(msg, cap, "[qsize] qsize()=%lld after draining",
                     (long long)mp_queue_qsize(c->q));
  } else if (c->kind == W_SEMAPHORE) {
    /* One unit taken; the child's release and the parent's (if any) put
     * one each: 0 or 1 left with the parent's, 0 without. */
    int v = mp_semaphore_get_value(c->s);
    if (v < 0 || v > mine)
      bad = fail_msg(msg, cap, "[sem-value] value %d after the sleeper's "
                               "acquire (the parent released %d)",
                     v, mine);
  } else if (!mp_event_is_set(c->e)) {
    bad = fail_msg(msg, cap, "[event] the event is clear after a set");
  }
  return bad;
}

#define WTEST(tname, kind_)                                                    \
  Test(killpoint, tname, .timeout = KP_TEST_TIMEOUT) {                         \
    wctx c;                                                                    \
    memset(&c, 0, sizeof c);                                                   \
    c.name = #tname;                                                           \
    c.kind = kind_;                                                            \
    kp_scenario s = {c.name, &c,      w_warmup,   w_setup, w_child_pre,        \
                     w_call, w_check, w_teardown, 0};                          \
    run_scenario(&s);                                                          \
  }

WTEST(put_to_sleeping_consumer, W_QUEUE)
WTEST(release_to_sleeping_acquirer, W_SEMAPHORE)
WTEST(set_to_sleeping_waiter, W_EVENT)

/* ---- named shared memory ------------------------------------------------ */

typedef struct sctx {
  char name[32];
  long serial;
  mp_shm *shm; /* the child's */
} sctx;

/* Our children (orphans of the killed child come to us: we are a
 * subreaper). */
static int list_children(pid_t *out, int cap) {
  DIR *d = opendir("/proc");
  int n = 0;
  if (d == NULL)
    return 0;
  pid_t me = getpid();
  struct dirent *e;
  while ((e = readdir(d)) != NULL && n < cap) {
    char *end, state;
    long pid = strtol(e->d_name, &end, 10), ppid;
    if (*end != '\0' || pid <= 0)
      continue;
    if (ts_proc_stat(pid, &state, &ppid) == 0 && ppid == me)
      out[n++] = (pid_t)pid;
  }
  closedir(d);
  return n;
}

/* Reap what has ended; the number of our children still running. */
static int reap_orphans(void) {
  int st;
  while (waitpid(-1, &st, WNOHANG) > 0)
    ;
  pid_t kids[64];
  int n = list_children(kids, 64), alive = 0;
  for (int i = 0; i < n; i++) {
    char state;
    long ppid;
    if (ts_proc_stat(kids[i], &state, &ppid) == 0 && state != 'Z')
      alive++;
  }
  return alive;
}

static void s_warmup(void *arg) {
  (void)arg;
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  mp_shm *s = NULL;
  char name[40];
  snprintf(name, sizeof name, "mpt-kpw-%ld", (long)getpid());
  if (mp_shm_new(&s, name, 4096) == 0) {
    mp_shm_unlink(s);
    mp_shm_free(s);
  }
  double until = ts_now() + 5;
  while (reap_orphans() > 0 && ts_now() < until)
    usleep(10000);
}

static int s_setup(void *arg) {
  sctx *c = arg;
  snprintf(c->name, sizeof c->name, "mpt-kp-%ld-%ld", (long)getpid(),
           c->serial++);
  return 0;
}

static void s_call(void *arg) {
  sctx *c = arg;
  mp_shm_new(&c->shm, c->name, 4096);
}

static int shm_exists(const char *name) {
  char path[80];
  struct stat sb;
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  return stat(path, &sb) == 0;
}

static int s_check(void *arg, const kp_point *pt, char *msg, size_t cap) {
  (void)pt;
  sctx *c = arg;
  int bad = 0;
  double until = ts_now() + 5.0;
  while (shm_exists(c->name) && ts_now() < until)
    usleep(2000);
  if (shm_exists(c->name))
    bad = fail_msg(msg, cap,
                   "[shm-name] /dev/shm/%s still there 5 s after the kill",
                   c->name);
  while (reap_orphans() > 0 && ts_now() < until)
    usleep(2000);
  int alive = reap_orphans();
  if (alive > 0) {
    bad = fail_msg(msg, cap,
                   "[tracker] %d helper process(es) (tracker) still running "
                   "5 s after the kill",
                   alive);
    pid_t kids[64];
    int n = list_children(kids, 64);
    for (int i = 0; i < n; i++)
      kill(kids[i], SIGKILL);
    usleep(20000);
    reap_orphans();
  }
  mp_shm *s = NULL;
  int rc = mp_shm_new(&s, c->name, 4096);
  if (rc != 0) {
    bad = fail_msg(msg, cap, "[shm-recreate] mp_shm_new of the name again: %s",
                   mp_err_name(rc));
  } else {
    mp_shm_unlink(s);
    mp_shm_free(s);
  }
  if (shm_exists(c->name)) { /* never leave it behind */
    char os[64];
    snprintf(os, sizeof os, "/%s", c->name);
    shm_unlink(os);
  }
  until = ts_now() + 5.0;
  while (reap_orphans() > 0 && ts_now() < until)
    usleep(2000);
  return bad;
}

Test(killpoint, shm_new_named, .timeout = KP_TEST_TIMEOUT) {
  sctx c;
  memset(&c, 0, sizeof c);
  kp_scenario s = {"shm_new_named", &c,      s_warmup, s_setup, NULL,
                   s_call,          s_check, NULL,     0};
  const char *e = getenv("MPROC_KILLPOINT_MAX");
  if (e == NULL || *e == '\0')
    s.max_points = 200; /* each check waits for a tracker: slower */
  run_scenario(&s);
}

/* ---- a pool worker answering a chunk ------------------------------------ */

/* The pool's workers are forked by the pool, not by this test: each
 * kill point seizes the (one) worker with PTRACE_SEIZE, stops it with
 * PTRACE_INTERRUPT while it waits on its inbox, submits a map of one
 * chunk, single-steps the worker k instructions and kills it.  The map
 * must fail with MP_EWORKERDIED or give the right values, and the next
 * map (run by the replacement worker, which it also warms up for the
 * next kill point) must give the right values.  N is the number of steps
 * until the map's result has reached the test. */

#define POOL_ITEMS 8

static int kp_square(const mp_args *a, mp_args *result) {
  int64_t x = mp_args_int(a, 0);
  return mp_args_add_int(result, x * x);
}

static mp_args *pool_items(int64_t base) {
  mp_args *in = NULL;
  if (mp_args_new(&in) != 0)
    return NULL;
  for (int64_t i = 0; i < POOL_ITEMS; i++)
    mp_args_add_int(in, base + i);
  return in;
}

/* 0 when `res` holds the squares of base .. base+POOL_ITEMS-1. */
static int pool_values_ok(const mp_args *res, int64_t base) {
  if (res == NULL || mp_args_count(res) != POOL_ITEMS)
    return -1;
  for (size_t i = 0; i < POOL_ITEMS; i++) {
    int64_t x = base + (int64_t)i;
    if (mp_args_int(res, i) != x * x)
      return -1;
  }
  return 0;
}

/* A map on the pool: 0 with the right values, else the failure.  It
 * has 30 s (a hung pool is a failure to report, not a test timeout). */
static int pool_map_ok(mp_pool *p, int64_t base, char *msg, size_t cap) {
  mp_args *in = pool_items(base);
  const mp_args *out = NULL;
  mp_async *a = NULL;
  int rc = mp_pool_map_async(p, kp_square, in, POOL_ITEMS, NULL, NULL, NULL,
                             &a);
  if (rc == 0)
    rc = mp_async_get(a, 30.0, &out);
  if (rc == 0 && pool_values_ok(out, base) != 0)
    rc = fail_msg(msg, cap, "[map] map gave wrong values");
  else if (rc != 0)
    fail_msg(msg, cap, "[map] map: %s (%s)", mp_err_name(rc),
             mp_last_error_message());
  mp_async_free(a);
  mp_args_free(in);
  return rc;
}

/* The pool's one worker, seized and stopped in its wait; -1 on error. */
static pid_t pool_seize(mp_pool *p, kp_report *r) {
  int64_t pid = 0;
  double until = ts_now() + 10;
  while ((mp_pool_worker_pids(p, &pid, 1) != 1 || pid <= 0) && ts_now() < until)
    usleep(1000);
  if (pid <= 0) {
    snprintf(r->error, sizeof r->error, "no worker pid");
    return -1;
  }
  if (ptrace(PTRACE_SEIZE, (pid_t)pid, NULL,
             (void *)(intptr_t)PTRACE_O_EXITKILL) != 0) {
    snprintf(r->error, sizeof r->error,
             "ptrace(PTRACE_SEIZE) of pool worker %lld refused: %s",
             (long long)pid, strerror(errno));
    return -1;
  }
  kp_watchdog((pid_t)pid, KP_WATCHDOG);
  if (ptrace(PTRACE_INTERRUPT, (pid_t)pid, NULL, NULL) != 0 ||
      kp_wait_stop((pid_t)pid, NULL) <= 0) {
    snprintf(r->error, sizeof r->error,
             "PTRACE_INTERRUPT of worker %lld "
             "failed: %s",
             (long long)pid, strerror(errno));
    kp_watchdog(0, 0);
    return -1;
  }
  return (pid_t)pid;
}

/* One kill point (k < 0: calibration, no kill).  0 or -1 (facility). */
static int pool_point(mp_pool *p, long k, long *steps, kp_report *r,
                      int64_t base) {
  pid_t pid = pool_seize(p, r);
  if (pid < 0)
    return -1;
  mp_args *in = pool_items(base);
  mp_async *a = NULL;
  int rc =
      mp_pool_map_async(p, kp_square, in, POOL_ITEMS, NULL, NULL, NULL, &a);
  mp_args_free(in);
  if (rc != 0) {
    snprintf(r->error, sizeof r->error, "map_async: %s", mp_err_name(rc));
    kp_kill(pid, 0);
    return -1;
  }
  long done = 0;
  int completed = 0;
  while (k < 0 || done < k) {
    long one = 0;
    if (kp_step(pid, 1, &one) != 0) {
      snprintf(r->error, sizeof r->error,
               "worker %ld could not be stepped "
               "at step %ld%s",
               (long)pid, done, kp_watchdog_fired() ? " (watchdog)" : "");
      kp_watchdog(0, 0);
      kp_kill(pid, 0);
      mp_async_free(a);
      return -1;
    }
    done++;
    if (mp_async_ready(a)) {
      completed = 1;
      break;
    }
  }
  r->steps_total += done;
  *steps = done;
  if (k < 0)
    ptrace(PTRACE_DETACH, pid, NULL, NULL);
  else
    kp_kill(pid, 0); /* the pool reaps it */
  kp_watchdog(0, 0);
  if (k < 0) {
    mp_async_free(a);
    return 0;
  }
  char msg[512] = "";
  int bad = 0;
  const mp_args *res = NULL;
  rc = mp_async_get(a, 20.0, &res);
  if (rc == 0 && pool_values_ok(res, base) != 0)
    bad =
        fail_msg(msg, sizeof msg, "[map] the map succeeded with wrong values");
  else if (rc != 0 && rc != MP_EWORKERDIED)
    bad = fail_msg(msg, sizeof msg,
                   "[map] the map failed with %s, not "
                   "MP_EWORKERDIED",
                   mp_err_name(rc));
  mp_async_free(a);
  if (pool_map_ok(p, base + 100, msg, sizeof msg) != 0)
    bad =
        fail_msg(msg, sizeof msg, "[next-map] (the next map on the same pool)");
  r->points++;
  if (!bad)
    r->passed++;
  else
    kp_record_failure(r, k, completed, msg);
  return 0;
}

Test(killpoint, pool_worker_chunk, .timeout = KP_TEST_TIMEOUT) {
  kp_report r;
  memset(&r, 0, sizeof r);
  snprintf(r.name, sizeof r.name, "pool_worker_chunk");
  double t0 = ts_now();
  mp_pool *p = NULL;
  cr_assert_eq(mp_pool_new(&p, 1), 0);
  char msg[512] = "";
  cr_assert_eq(pool_map_ok(p, 1, msg, sizeof msg), 0, "%s", msg);
  cr_assert_eq(pool_map_ok(p, 2, msg, sizeof msg), 0, "%s", msg);
  /* Calibration (the worker goes on afterwards, untraced). */
  long n = 0;
  int rc = pool_point(p, -1, &n, &r, 3);
  if (rc == 0)
    rc = pool_map_ok(p, 4, msg, sizeof msg) == 0 ? 0 : -1;
  r.n = n;
  kp_scenario dummy;
  memset(&dummy, 0, sizeof dummy);
  const char *e = getenv("MPROC_KILLPOINT_MAX");
  dummy.max_points = (e == NULL || *e == '\0') ? 60 : 0;
  long max = kp_max_points(&dummy), dense = n + 1, spread = 0;
  if (n + 1 > max) {
    dense = max / 2;
    spread = max - dense;
  } else {
    r.exhaustive = 1;
  }
  r.dense = dense;
  for (long k = 0; rc == 0 && k < dense; k++) {
    long steps;
    rc = pool_point(p, k, &steps, &r, 1000 * (k + 1));
  }
  for (long i = 0; rc == 0 && i < spread; i++) {
    long steps;
    long k =
        dense + (long)((double)(n - dense) * (double)(i + 1) / (double)spread);
    rc = pool_point(p, k, &steps, &r, 1000 * (k + 1));
  }
  r.seconds = ts_now() - t0;
  report_out(&r);
  mp_pool_free(p);
  cr_assert(rc == 0, "pool_worker_chunk: the facility failed: %s",
            r.error[0] ? r.error : msg);
  cr_assert(r.failed == 0,
            "pool_worker_chunk: %ld of %ld kill points "
            "broke an invariant; first at k=%ld (N=%ld): %s",
            r.failed, r.points, r.fails[0].k, r.n, r.fails[0].msg);
}
