/*
 * test_sync.c - Lock, RLock, Semaphore, BoundedSemaphore, Event,
 * Condition and Barrier: between threads, between processes under every
 * start method, their error paths, and what happens when a process dies
 * holding a lock or waiting on a condition or barrier.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "methods.h"
#include "mproc.h"
#include "support.h"

TS_SUITE(lock);
TS_SUITE(semaphore);
TS_SUITE(event);
TS_SUITE(condition);
TS_SUITE(barrier);

/* ---- Lock --------------------------------------------------------------- */

typedef struct try_arg {
  mp_lock *l;
  double timeout;
  int rc;
  double took;
} try_arg;

static void try_acquire(void *p) {
  try_arg *t = p;
  double t0 = ts_now();
  t->rc = mp_lock_acquire(t->l, t->timeout);
  t->took = ts_now() - t0;
  if (t->rc == 0 || t->rc == MP_EOWNERDEAD)
    mp_lock_release(t->l);
}

Test(lock, acquire_release_and_timeouts, .timeout = TS_TIMEOUT) {
  mp_lock *l;
  cr_assert_eq(mp_lock_new(&l), 0);
  cr_expect_eq(mp_lock_is_recursive(l), 0);
  cr_expect_eq(mp_lock_locked(l), 0);
  cr_assert_eq(mp_lock_acquire(l, MP_FOREVER), 0);
  cr_expect_eq(mp_lock_locked(l), 1);
  /* Not recursive: the same thread cannot take it again. */
  cr_expect_eq(mp_lock_acquire(l, 0), MP_ETIMEDOUT);
  try_arg t = {l, 0.2, 1, 0};
  ts_thread *th = ts_thread_start(try_acquire, &t);
  ts_thread_join(th);
  cr_expect_eq(t.rc, MP_ETIMEDOUT);
  cr_expect_geq(t.took, 0.15, "waited %f s", t.took);
  cr_assert_eq(mp_lock_release(l), 0);
  cr_expect_eq(mp_lock_release(l), MP_EVALUE, "release of an unlocked lock");
  cr_expect_eq(mp_lock_acquire(l, 0), 0);
  cr_expect_eq(mp_lock_acquire(l, -2.0), MP_EINVAL);
  cr_expect_eq(mp_lock_acquire(NULL, 0), MP_EINVAL);
  cr_expect_eq(mp_lock_release(NULL), MP_EINVAL);
  mp_lock_free(l);
  mp_lock_free(NULL);
}

typedef struct rel_arg {
  mp_lock *l;
  int rc;
} rel_arg;

static void release_other(void *p) {
  rel_arg *r = p;
  r->rc = mp_lock_release(r->l);
}

Test(lock, any_thread_may_release_a_lock, .timeout = TS_TIMEOUT) {
  mp_lock *l;
  cr_assert_eq(mp_lock_new(&l), 0);
  cr_assert_eq(mp_lock_acquire(l, 0), 0);
  rel_arg r = {l, 1};
  ts_thread_join(ts_thread_start(release_other, &r));
  cr_expect_eq(r.rc, 0);
  cr_expect_eq(mp_lock_locked(l), 0);
  mp_lock_free(l);
}

Test(lock, rlock_is_owned_by_one_thread, .timeout = TS_TIMEOUT) {
  mp_lock *l;
  cr_assert_eq(mp_rlock_new(&l), 0);
  cr_expect_eq(mp_lock_is_recursive(l), 1);
  cr_expect_eq(mp_lock_release(l), MP_EPERM, "release before acquire");
  for (int i = 0; i < 3; i++)
    cr_assert_eq(mp_lock_acquire(l, 0), 0);
  rel_arg r = {l, 0};
  ts_thread_join(ts_thread_start(release_other, &r));
  cr_expect_eq(r.rc, MP_EPERM, "released by a non-owner");
  try_arg t = {l, 0.05, 1, 0};
  ts_thread_join(ts_thread_start(try_acquire, &t));
  cr_expect_eq(t.rc, MP_ETIMEDOUT);
  for (int i = 0; i < 3; i++)
    cr_expect_eq(mp_lock_release(l), 0);
  cr_expect_eq(mp_lock_locked(l), 0);
  cr_expect_eq(mp_lock_release(l), MP_EPERM);
  t.timeout = 1.0;
  ts_thread_join(ts_thread_start(try_acquire, &t));
  cr_expect_eq(t.rc, 0);
  mp_lock_free(l);
}

/* Mutual exclusion between processes: a non-atomic read-modify-write of
 * a raw value under the lock loses no increment. */
#define INCS 2000

static int increment(const mp_args *a) {
  mp_lock *l = mp_args_lock(a, 0);
  mp_value *v = mp_args_value(a, 1);
  if (l == NULL || v == NULL)
    return 90;
  volatile int64_t *p = mp_value_ptr(v);
  for (int i = 0; i < INCS; i++) {
    if (mp_lock_acquire(l, 30.0) != 0)
      return 91;
    int64_t x = *p;
    *p = x + 1;
    if (mp_lock_release(l) != 0)
      return 92;
  }
  return 0;
}

static void check_mutual_exclusion(const char *method) {
  mp_lock *l;
  mp_value *v;
  cr_assert_eq(mp_lock_new(&l), 0);
  cr_assert_eq(mp_raw_value_new(&v, 'q', NULL), 0);
  mp_args *a;
  mp_args_new(&a);
  cr_assert_eq(mp_args_add_lock(a, l), 0);
  cr_assert_eq(mp_args_add_value(a, v), 0);
  mp_process *p[3];
  for (int i = 0; i < 3; i++)
    p[i] = ts_start(method, increment, a);
  mp_args_free(a);
  volatile int64_t *x = mp_value_ptr(v);
  for (int i = 0; i < INCS; i++) {
    cr_assert_eq(mp_lock_acquire(l, 30.0), 0);
    int64_t y = *x;
    *x = y + 1;
    mp_lock_release(l);
  }
  for (int i = 0; i < 3; i++) {
    cr_expect_eq(ts_join(p[i]), 0, "child %d", i);
    mp_process_free(p[i]);
  }
  cr_expect_eq(*x, 4 * INCS);
  mp_value_free(v);
  mp_lock_free(l);
}
FOR_EACH_METHOD(check_mutual_exclusion)

/* Owner death: a child takes the lock, says so, and blocks; we kill it.
 * The next acquirer gets MP_EOWNERDEAD once, then the lock is normal. */
static int hold_and_block(const mp_args *a) {
  mp_lock *l = mp_args_lock(a, 0);
  mp_event *ready = mp_args_event(a, 1);
  if (l == NULL || ready == NULL)
    return 90;
  if (mp_lock_acquire(l, 30.0) != 0)
    return 91;
  if (mp_lock_is_recursive(l) && mp_lock_acquire(l, 0) != 0)
    return 92;
  mp_event_set(ready);
  ts_block_forever();
  return 0;
}

static void check_owner_death(const char *method, int recursive,
                              int waiter_first) {
  mp_lock *l;
  mp_event *ready;
  cr_assert_eq(recursive ? mp_rlock_new(&l) : mp_lock_new(&l), 0);
  cr_assert_eq(mp_event_new(&ready), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_lock(a, l);
  mp_args_add_event(a, ready);
  mp_process *p = ts_start(method, hold_and_block, a);
  mp_args_free(a);
  cr_assert_eq(mp_event_wait(ready, 30.0), 0);
  cr_expect_eq(mp_lock_acquire(l, 0), MP_ETIMEDOUT, "held by the child");
  try_arg t = {l, 20.0, 1, 0};
  ts_thread *th = NULL;
  if (waiter_first == 1) /* a thread already sleeping on the lock */
    th = ts_thread_start(try_acquire, &t);
  mp_process_kill(p);
  if (waiter_first == 2) {
    /* Polling with a zero timeout (a try-lock) finds the dead holder too:
     * never MP_ETIMEDOUT for good. */
    ts_join(p);
    int rc = mp_lock_acquire(l, 0);
    cr_expect_eq(rc, MP_EOWNERDEAD, "%s", mp_err_name(rc));
    cr_expect_eq(mp_lock_release(l), 0);
  } else if (waiter_first) {
    ts_thread_join(th);
    cr_expect_eq(t.rc, MP_EOWNERDEAD, "%s", mp_err_name(t.rc));
    cr_expect_lt(t.took, 10.0);
  } else {
    /* Not joined yet: the dead holder is a zombie, still dead. */
    double t0 = ts_now();
    int rc = mp_lock_acquire(l, 20.0);
    cr_expect_eq(rc, MP_EOWNERDEAD, "%s", mp_err_name(rc));
    cr_expect_lt(ts_now() - t0, 5.0);
    cr_expect_eq(mp_lock_release(l), 0);
  }
  cr_expect_eq(mp_lock_acquire(l, 1.0), 0, "reported only once");
  cr_expect_eq(mp_lock_release(l), 0);
  ts_join(p);
  mp_process_free(p);
  mp_event_free(ready);
  mp_lock_free(l);
}

static void check_lock_owner_death(const char *m) { check_owner_death(m, 0, 0); }
static void check_rlock_owner_death(const char *m) { check_owner_death(m, 1, 0); }
static void check_owner_death_wakes_waiter(const char *m) {
  check_owner_death(m, 0, 1);
}
static void check_owner_death_try_lock(const char *m) {
  check_owner_death(m, 0, 2);
}
FOR_EACH_METHOD(check_owner_death_try_lock)
FOR_EACH_METHOD(check_lock_owner_death)
FOR_EACH_METHOD(check_rlock_owner_death)
FOR_EACH_METHOD(check_owner_death_wakes_waiter)

Test(lock, wrong_object_in_args, .timeout = TS_TIMEOUT) {
  mp_semaphore *s;
  cr_assert_eq(mp_semaphore_new(&s, 1), 0);
  mp_args *a;
  mp_args_new(&a);
  cr_assert_eq(mp_args_add_semaphore(a, s), 0);
  cr_expect_null(mp_args_lock(a, 0));
  cr_expect_eq(mp_args_semaphore(a, 0), s);
  cr_expect_eq(mp_args_add_lock(a, (mp_lock *)s), MP_EINVAL);
  cr_expect_eq(mp_lock_acquire((mp_lock *)s, 0), MP_EINVAL);
  mp_args_free(a);
  mp_semaphore_free(s);
}

/* ---- Semaphore ---------------------------------------------------------- */

Test(semaphore, counts_and_bounds, .timeout = TS_TIMEOUT) {
  mp_semaphore *s, *b;
  cr_assert_eq(mp_semaphore_new(&s, 2), 0);
  cr_expect_eq(mp_semaphore_get_value(s), 2);
  cr_expect_eq(mp_semaphore_acquire(s, 0), 0);
  cr_expect_eq(mp_semaphore_acquire(s, 0), 0);
  cr_expect_eq(mp_semaphore_get_value(s), 0);
  double t0 = ts_now();
  cr_expect_eq(mp_semaphore_acquire(s, 0.1), MP_ETIMEDOUT);
  cr_expect_geq(ts_now() - t0, 0.08);
  for (int i = 0; i < 5; i++)
    cr_expect_eq(mp_semaphore_release(s), 0, "unbounded");
  cr_expect_eq(mp_semaphore_get_value(s), 5);
  cr_assert_eq(mp_bounded_semaphore_new(&b, 1), 0);
  cr_expect_eq(mp_semaphore_release(b), MP_EVALUE);
  cr_expect_eq(mp_semaphore_acquire(b, 0), 0);
  cr_expect_eq(mp_semaphore_release(b), 0);
  cr_expect_eq(mp_semaphore_release(b), MP_EVALUE);
  cr_expect_eq(mp_semaphore_new(NULL, 1), MP_EINVAL);
  mp_semaphore *big;
  cr_expect_eq(mp_semaphore_new(&big, 0x80000000u), MP_EINVAL);
  cr_expect_eq(mp_semaphore_acquire(NULL, 0), MP_EINVAL);
  mp_semaphore_free(s);
  mp_semaphore_free(b);
}

typedef struct sem_arg {
  mp_semaphore *s;
  volatile int *inside, *max_inside;
  mp_lock *guard;
  int errors;
} sem_arg;

static void sem_worker(void *p) {
  sem_arg *a = p;
  for (int i = 0; i < 2000; i++) {
    if (mp_semaphore_acquire(a->s, 30.0) != 0) {
      a->errors++;
      return;
    }
    mp_lock_acquire(a->guard, MP_FOREVER);
    int n = ++*a->inside;
    if (n > *a->max_inside)
      *a->max_inside = n;
    mp_lock_release(a->guard);
    mp_lock_acquire(a->guard, MP_FOREVER);
    --*a->inside;
    mp_lock_release(a->guard);
    mp_semaphore_release(a->s);
  }
}

Test(semaphore, admits_at_most_its_value, .timeout = TS_TIMEOUT) {
  mp_semaphore *s;
  mp_lock *guard;
  cr_assert_eq(mp_semaphore_new(&s, 2), 0);
  cr_assert_eq(mp_lock_new(&guard), 0);
  volatile int inside = 0, max_inside = 0;
  sem_arg args[4];
  ts_thread *th[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (sem_arg){s, &inside, &max_inside, guard, 0};
    th[i] = ts_thread_start(sem_worker, &args[i]);
  }
  for (int i = 0; i < 4; i++) {
    ts_thread_join(th[i]);
    cr_expect_eq(args[i].errors, 0);
  }
  cr_expect_leq(max_inside, 2);
  cr_expect_eq(mp_semaphore_get_value(s), 2);
  mp_semaphore_free(s);
  mp_lock_free(guard);
}

static int release_twice(const mp_args *a) {
  mp_semaphore *s = mp_args_semaphore(a, 0);
  if (s == NULL)
    return 90;
  return mp_semaphore_release(s) == 0 && mp_semaphore_release(s) == 0 ? 0
                                                                      : 91;
}

static void check_semaphore_between_processes(const char *method) {
  mp_semaphore *s;
  cr_assert_eq(mp_semaphore_new(&s, 0), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_semaphore(a, s);
  mp_process *p = ts_start(method, release_twice, a);
  mp_args_free(a);
  cr_expect_eq(mp_semaphore_acquire(s, 30.0), 0);
  cr_expect_eq(mp_semaphore_acquire(s, 30.0), 0);
  cr_expect_eq(ts_join(p), 0);
  cr_expect_eq(mp_semaphore_acquire(s, 0), MP_ETIMEDOUT);
  mp_process_free(p);
  mp_semaphore_free(s);
}
FOR_EACH_METHOD(check_semaphore_between_processes)

/* ---- Event -------------------------------------------------------------- */

Test(event, set_clear_wait, .timeout = TS_TIMEOUT) {
  mp_event *e;
  cr_assert_eq(mp_event_new(&e), 0);
  cr_expect_eq(mp_event_is_set(e), 0);
  double t0 = ts_now();
  cr_expect_eq(mp_event_wait(e, 0.1), MP_ETIMEDOUT);
  cr_expect_geq(ts_now() - t0, 0.08);
  cr_expect_eq(mp_event_set(e), 0);
  cr_expect_eq(mp_event_is_set(e), 1);
  cr_expect_eq(mp_event_wait(e, 0), 0);
  cr_expect_eq(mp_event_wait(e, MP_FOREVER), 0, "stays set");
  cr_expect_eq(mp_event_clear(e), 0);
  cr_expect_eq(mp_event_wait(e, 0), MP_ETIMEDOUT);
  cr_expect_eq(mp_event_wait(e, -3), MP_EINVAL);
  cr_expect_eq(mp_event_set(NULL), MP_EINVAL);
  mp_event_free(e);
}

typedef struct ev_arg {
  mp_event *e;
  int rc;
} ev_arg;

static void ev_waiter(void *p) {
  ev_arg *a = p;
  a->rc = mp_event_wait(a->e, 30.0);
}

Test(event, set_wakes_every_waiter, .timeout = TS_TIMEOUT) {
  mp_event *e;
  cr_assert_eq(mp_event_new(&e), 0);
  ev_arg a[4];
  ts_thread *th[4];
  for (int i = 0; i < 4; i++) {
    a[i] = (ev_arg){e, 1};
    th[i] = ts_thread_start(ev_waiter, &a[i]);
  }
  mp_event_set(e);
  for (int i = 0; i < 4; i++) {
    ts_thread_join(th[i]);
    cr_expect_eq(a[i].rc, 0);
  }
  mp_event_free(e);
}

/* Ping-pong: the child waits for "ping" and sets "pong", 20 times. */
static int pong(const mp_args *a) {
  mp_event *ping = mp_args_event(a, 0), *pong_ = mp_args_event(a, 1);
  if (ping == NULL || pong_ == NULL)
    return 90;
  for (int i = 0; i < 20; i++) {
    if (mp_event_wait(ping, 30.0) != 0)
      return 91;
    mp_event_clear(ping);
    mp_event_set(pong_);
  }
  return 0;
}

static void check_event_between_processes(const char *method) {
  mp_event *ping, *pong_;
  cr_assert_eq(mp_event_new(&ping), 0);
  cr_assert_eq(mp_event_new(&pong_), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_event(a, ping);
  mp_args_add_event(a, pong_);
  mp_process *p = ts_start(method, pong, a);
  mp_args_free(a);
  for (int i = 0; i < 20; i++) {
    mp_event_set(ping);
    cr_assert_eq(mp_event_wait(pong_, 30.0), 0, "round %d", i);
    mp_event_clear(pong_);
  }
  cr_expect_eq(ts_join(p), 0);
  mp_process_free(p);
  mp_event_free(ping);
  mp_event_free(pong_);
}
FOR_EACH_METHOD(check_event_between_processes)

/* ---- Condition ---------------------------------------------------------- */

Test(condition, needs_its_lock, .timeout = TS_TIMEOUT) {
  mp_condition *c;
  cr_assert_eq(mp_condition_new(&c, NULL), 0);
  cr_expect_eq(mp_lock_is_recursive(mp_condition_get_lock(c)), 1,
               "default lock is an RLock");
  cr_expect_eq(mp_condition_wait(c, 0.1), MP_EPERM);
  cr_expect_eq(mp_condition_notify(c, 1), MP_EPERM);
  cr_expect_eq(mp_condition_notify_all(c), MP_EPERM);
  cr_assert_eq(mp_condition_acquire(c, 1.0), 0);
  cr_assert_eq(mp_condition_acquire(c, 1.0), 0, "RLock: again");
  double t0 = ts_now();
  cr_expect_eq(mp_condition_wait(c, 0.1), MP_ETIMEDOUT);
  cr_expect_geq(ts_now() - t0, 0.08);
  cr_expect_eq(mp_condition_notify(c, 1), 0, "nobody waits: fine");
  cr_expect_eq(mp_condition_notify(c, -1), MP_EINVAL);
  /* Both levels came back after the wait. */
  cr_expect_eq(mp_condition_release(c), 0);
  cr_expect_eq(mp_condition_release(c), 0);
  cr_expect_eq(mp_condition_release(c), MP_EPERM);
  mp_lock *plain;
  mp_condition *c2;
  cr_assert_eq(mp_lock_new(&plain), 0);
  cr_assert_eq(mp_condition_new(&c2, plain), 0);
  mp_lock_free(plain); /* the condition holds its own reference */
  cr_expect_eq(mp_condition_acquire(c2, 1.0), 0);
  cr_expect_eq(mp_condition_wait(c2, 0.01), MP_ETIMEDOUT);
  cr_expect_eq(mp_condition_release(c2), 0);
  cr_expect_eq(mp_condition_new(&c2, (mp_lock *)c), MP_EINVAL);
  mp_condition_free(c2);
  mp_condition_free(c);
}

typedef struct cv_arg {
  mp_condition *c;
  int id;
  volatile int *waiting;
  mp_semaphore *woke;
  volatile int *order;
  volatile int *norder;
  int rc;
} cv_arg;

static void cv_waiter(void *p) {
  cv_arg *a = p;
  mp_condition_acquire(a->c, MP_FOREVER);
  ++*a->waiting;
  a->rc = mp_condition_wait(a->c, 30.0);
  a->order[(*a->norder)++] = a->id;
  mp_condition_release(a->c);
  mp_semaphore_release(a->woke);
}

typedef struct count_arg {
  mp_condition *c;
  volatile int *n;
  int want;
} count_arg;

static int count_reached(void *p) {
  count_arg *a = p;
  mp_condition_acquire(a->c, MP_FOREVER);
  int ok = *a->n >= a->want;
  mp_condition_release(a->c);
  return ok;
}

Test(condition, notify_wakes_exactly_n_oldest_first,
     .timeout = TS_TIMEOUT) {
  mp_condition *c;
  mp_semaphore *woke;
  cr_assert_eq(mp_condition_new(&c, NULL), 0);
  cr_assert_eq(mp_semaphore_new(&woke, 0), 0);
  volatile int waiting = 0, order[3] = {0}, norder = 0;
  cv_arg a[3];
  ts_thread *th[3];
  for (int i = 0; i < 3; i++) {
    a[i] = (cv_arg){c, i + 1, &waiting, woke, order, &norder, 1};
    th[i] = ts_thread_start(cv_waiter, &a[i]);
    /* One at a time, so that the tickets are in this order: a waiter
     * counted under the lock is inside wait once we get the lock. */
    count_arg ca = {c, &waiting, i + 1};
    cr_assert(ts_poll_until(count_reached, &ca, 20.0));
  }
  mp_condition_acquire(c, MP_FOREVER);
  cr_expect_eq(mp_condition_notify(c, 1), 0);
  mp_condition_release(c);
  cr_assert_eq(mp_semaphore_acquire(woke, 20.0), 0);
  cr_expect_eq(mp_semaphore_acquire(woke, 0.3), MP_ETIMEDOUT,
               "notify(1) woke more than one");
  cr_expect_eq(order[0], 1, "the oldest waiter goes first");
  mp_condition_acquire(c, MP_FOREVER);
  cr_expect_eq(mp_condition_notify_all(c), 0);
  mp_condition_release(c);
  for (int i = 0; i < 2; i++)
    cr_expect_eq(mp_semaphore_acquire(woke, 20.0), 0);
  for (int i = 0; i < 3; i++) {
    ts_thread_join(th[i]);
    cr_expect_eq(a[i].rc, 0, "waiter %d notified", i);
  }
  mp_semaphore_free(woke);
  mp_condition_free(c);
}

/* wait_for across processes: the child sets a shared flag under the
 * condition's lock and notifies; the parent waits for the predicate. */
static int set_flag_and_notify(const mp_args *a) {
  mp_condition *c = mp_args_condition(a, 0);
  mp_value *v = mp_args_value(a, 1);
  if (c == NULL || v == NULL)
    return 90;
  for (int i = 1; i <= 5; i++) {
    if (mp_condition_acquire(c, 30.0) != 0)
      return 91;
    *(int *)mp_value_ptr(v) = i;
    mp_condition_notify_all(c);
    mp_condition_release(c);
  }
  return 0;
}

static int flag_is_5(void *p) { return *(int *)mp_value_ptr(p) == 5; }

static void check_condition_wait_for(const char *method) {
  mp_condition *c;
  mp_value *v;
  cr_assert_eq(mp_condition_new(&c, NULL), 0);
  cr_assert_eq(mp_raw_value_new(&v, 'i', NULL), 0);
  cr_assert_eq(mp_condition_acquire(c, 10.0), 0);
  cr_expect_eq(mp_condition_wait_for(c, flag_is_5, v, 0.05), MP_ETIMEDOUT);
  mp_args *a;
  mp_args_new(&a);
  cr_assert_eq(mp_args_add_condition(a, c), 0);
  mp_args_add_value(a, v);
  mp_process *p = ts_start(method, set_flag_and_notify, a);
  mp_args_free(a);
  cr_expect_eq(mp_condition_wait_for(c, flag_is_5, v, 30.0), 0);
  cr_expect_eq(mp_condition_wait_for(c, NULL, v, 1.0), MP_EINVAL);
  mp_condition_release(c);
  cr_expect_eq(ts_join(p), 0);
  mp_process_free(p);
  mp_value_free(v);
  mp_condition_free(c);
}
FOR_EACH_METHOD(check_condition_wait_for)

/* A waiter that dies is skipped: notify(1) still reaches a living one. */
static int wait_on_condition(const mp_args *a) {
  mp_condition *c = mp_args_condition(a, 0);
  mp_event *ready = mp_args_event(a, 1);
  if (c == NULL || ready == NULL || mp_condition_acquire(c, 30.0) != 0)
    return 90;
  mp_event_set(ready); /* we hold the lock until wait releases it */
  mp_condition_wait(c, MP_FOREVER);
  return 0;
}

static void check_condition_dead_waiter(const char *method) {
  mp_condition *c;
  mp_event *ready;
  mp_semaphore *woke;
  cr_assert_eq(mp_condition_new(&c, NULL), 0);
  cr_assert_eq(mp_event_new(&ready), 0);
  cr_assert_eq(mp_semaphore_new(&woke, 0), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_condition(a, c);
  mp_args_add_event(a, ready);
  mp_process *p = ts_start(method, wait_on_condition, a);
  mp_args_free(a);
  cr_assert_eq(mp_event_wait(ready, 30.0), 0);
  /* Getting the lock proves the child is inside wait. */
  cr_assert_eq(mp_condition_acquire(c, 30.0), 0);
  mp_condition_release(c);
  mp_process_kill(p);
  ts_join(p);
  volatile int waiting = 0, order[1], norder = 0;
  cv_arg w = {c, 1, &waiting, woke, order, &norder, 1};
  ts_thread *th = ts_thread_start(cv_waiter, &w);
  count_arg ca = {c, &waiting, 1};
  cr_assert(ts_poll_until(count_reached, &ca, 20.0));
  mp_condition_acquire(c, MP_FOREVER);
  mp_condition_notify(c, 1);
  mp_condition_release(c);
  cr_expect_eq(mp_semaphore_acquire(woke, 10.0), 0,
               "the notification went to the dead waiter");
  ts_thread_join(th);
  cr_expect_eq(w.rc, 0);
  mp_process_free(p);
  mp_semaphore_free(woke);
  mp_event_free(ready);
  mp_condition_free(c);
}
FOR_EACH_METHOD(check_condition_dead_waiter)

/* ---- Barrier ------------------------------------------------------------ */

static volatile int actions_run;
static int count_action(void) {
  actions_run++;
  return 0;
}
static int failing_action(void) { return 1; }

typedef struct bar_arg {
  mp_barrier *b;
  double timeout;
  int rc[2];
} bar_arg;

static void bar_worker(void *p) {
  bar_arg *a = p;
  a->rc[0] = mp_barrier_wait(a->b, a->timeout);
  a->rc[1] = mp_barrier_wait(a->b, a->timeout);
}

Test(barrier, rounds_indexes_and_action, .timeout = TS_TIMEOUT) {
  mp_barrier *b;
  actions_run = 0;
  cr_assert_eq(mp_barrier_new(&b, 3, count_action, MP_FOREVER), 0);
  cr_expect_eq(mp_barrier_parties(b), 3);
  cr_expect_eq(mp_barrier_n_waiting(b), 0);
  bar_arg a[3];
  ts_thread *th[3];
  for (int i = 0; i < 3; i++) {
    a[i] = (bar_arg){b, 30.0, {-100, -100}};
    th[i] = ts_thread_start(bar_worker, &a[i]);
  }
  for (int i = 0; i < 3; i++)
    ts_thread_join(th[i]);
  for (int round = 0; round < 2; round++) {
    int seen = 0;
    for (int i = 0; i < 3; i++) {
      cr_assert(a[i].rc[round] >= 0 && a[i].rc[round] < 3, "rc %d",
                a[i].rc[round]);
      seen |= 1 << a[i].rc[round];
    }
    cr_expect_eq(seen, 7, "round %d: indexes 0, 1, 2", round);
  }
  cr_expect_eq(actions_run, 2, "the action runs once per round");
  cr_expect_eq(mp_barrier_broken(b), 0);
  mp_barrier_free(b);
  cr_expect_eq(mp_barrier_new(&b, 0, NULL, MP_FOREVER), MP_EINVAL);
  cr_expect_eq(mp_barrier_new(&b, 2, NULL, -5), MP_EINVAL);
}

static void bar_once(void *p) {
  bar_arg *a = p;
  a->rc[0] = mp_barrier_wait(a->b, a->timeout);
}

typedef struct waiting_arg {
  mp_barrier *b;
  unsigned n;
} waiting_arg;

static int n_waiting_is(void *p) {
  waiting_arg *w = p;
  return mp_barrier_n_waiting(w->b) == w->n;
}

Test(barrier, timeout_breaks_it_and_reset_repairs,
     .timeout = TS_TIMEOUT) {
  mp_barrier *b;
  cr_assert_eq(mp_barrier_new(&b, 3, NULL, 0.2), 0);
  bar_arg other = {b, 30.0, {-100, -100}};
  ts_thread *th = ts_thread_start(bar_once, &other);
  waiting_arg w = {b, 1};
  cr_assert(ts_poll_until(n_waiting_is, &w, 20.0));
  double t0 = ts_now();
  cr_expect_eq(mp_barrier_wait(b, -1), MP_ETIMEDOUT, "default timeout");
  cr_expect_geq(ts_now() - t0, 0.15);
  ts_thread_join(th);
  cr_expect_eq(other.rc[0], MP_EBROKEN);
  cr_expect_eq(mp_barrier_broken(b), 1);
  cr_expect_eq(mp_barrier_wait(b, 1.0), MP_EBROKEN);
  cr_expect_eq(mp_barrier_reset(b), 0);
  cr_expect_eq(mp_barrier_broken(b), 0);
  /* Usable again (parties 3: two threads and us). */
  bar_arg t2[2] = {{b, 30.0, {-100, -100}}, {b, 30.0, {-100, -100}}};
  ts_thread *th2[2] = {ts_thread_start(bar_once, &t2[0]),
                       ts_thread_start(bar_once, &t2[1])};
  int mine = mp_barrier_wait(b, 30.0);
  ts_thread_join(th2[0]);
  ts_thread_join(th2[1]);
  cr_expect(mine >= 0 && t2[0].rc[0] >= 0 && t2[1].rc[0] >= 0);
  mp_barrier_free(b);
}

Test(barrier, abort_and_reset_release_waiters, .timeout = TS_TIMEOUT) {
  mp_barrier *b;
  cr_assert_eq(mp_barrier_new(&b, 2, NULL, MP_FOREVER), 0);
  bar_arg a = {b, 30.0, {-100, -100}};
  ts_thread *th = ts_thread_start(bar_once, &a);
  waiting_arg w = {b, 1};
  cr_assert(ts_poll_until(n_waiting_is, &w, 20.0));
  cr_expect_eq(mp_barrier_abort(b), 0);
  ts_thread_join(th);
  cr_expect_eq(a.rc[0], MP_EBROKEN);
  cr_expect_eq(mp_barrier_wait(b, 0.1), MP_EBROKEN);
  mp_barrier_reset(b);
  /* reset with a waiter: it hears "broken", the barrier is fresh. */
  th = ts_thread_start(bar_once, &a);
  cr_assert(ts_poll_until(n_waiting_is, &w, 20.0));
  cr_expect_eq(mp_barrier_reset(b), 0);
  ts_thread_join(th);
  cr_expect_eq(a.rc[0], MP_EBROKEN);
  cr_expect_eq(mp_barrier_broken(b), 0);
  cr_expect_eq(mp_barrier_n_waiting(b), 0);
  mp_barrier_free(b);
}

Test(barrier, failing_action_breaks_it, .timeout = TS_TIMEOUT) {
  mp_barrier *b;
  cr_assert_eq(mp_barrier_new(&b, 2, failing_action, MP_FOREVER), 0);
  bar_arg a = {b, 30.0, {-100, -100}};
  ts_thread *th = ts_thread_start(bar_once, &a);
  int mine = mp_barrier_wait(b, 30.0);
  ts_thread_join(th);
  cr_expect_eq(mine, MP_EBROKEN);
  cr_expect_eq(a.rc[0], MP_EBROKEN);
  cr_expect_eq(mp_barrier_broken(b), 1);
  mp_barrier_free(b);
}

/* Across processes: two children and us; the action runs in exactly one
 * of the three processes (the last to arrive). */
static int arrive(const mp_args *a) {
  mp_barrier *b = mp_args_barrier(a, 0);
  if (b == NULL)
    return 90;
  actions_run = 0;
  int rc = mp_barrier_wait(b, 30.0);
  if (rc < 0)
    return 91;
  return 10 + actions_run; /* 10 or 11 */
}

static void check_barrier_between_processes(const char *method) {
  mp_barrier *b;
  actions_run = 0;
  cr_assert_eq(mp_barrier_new(&b, 3, count_action, MP_FOREVER), 0);
  mp_args *a;
  mp_args_new(&a);
  cr_assert_eq(mp_args_add_barrier(a, b), 0);
  mp_process *p[2] = {ts_start(method, arrive, a), ts_start(method, arrive, a)};
  mp_args_free(a);
  cr_expect_geq(mp_barrier_wait(b, 30.0), 0);
  int ran = actions_run;
  for (int i = 0; i < 2; i++) {
    int code = ts_join(p[i]);
    cr_expect(code == 10 || code == 11, "child exit %d", code);
    ran += code - 10;
    mp_process_free(p[i]);
  }
  cr_expect_eq(ran, 1, "the action ran once in all");
  mp_barrier_free(b);
}
FOR_EACH_METHOD(check_barrier_between_processes)

/* A party that dies before arriving: the others hear of it at their
 * timeout, never later. */
static int never_arrive(const mp_args *a) {
  (void)a;
  ts_block_forever();
  return 0;
}

static void check_barrier_party_dies(const char *method) {
  mp_barrier *b;
  cr_assert_eq(mp_barrier_new(&b, 2, NULL, MP_FOREVER), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_barrier(a, b);
  mp_process *p = ts_start(method, never_arrive, a);
  mp_args_free(a);
  mp_process_kill(p);
  ts_join(p);
  double t0 = ts_now();
  cr_expect_eq(mp_barrier_wait(b, 0.3), MP_ETIMEDOUT);
  cr_expect_lt(ts_now() - t0, 5.0);
  cr_expect_eq(mp_barrier_broken(b), 1);
  mp_process_free(p);
  mp_barrier_free(b);
}
FOR_EACH_METHOD(check_barrier_party_dies)

/* NaN is no timeout: every wait refuses it at once with MP_EINVAL (a
 * barrier waited for ever: its "negative means the default" let NaN
 * through as a deadline never reached). */
Test(barrier, nan_timeout_is_refused, .timeout = TS_TIMEOUT) {
  double nan = NAN;
  mp_barrier *b, *b2 = NULL;
  cr_assert_eq(mp_barrier_new(&b, 2, NULL, MP_FOREVER), 0);
  cr_expect_eq(mp_barrier_new(&b2, 2, NULL, nan), MP_EINVAL);
  cr_expect_null(b2);
  cr_expect_eq(mp_barrier_wait(b, nan), MP_EINVAL);
  cr_expect_eq(mp_barrier_n_waiting(b), 0);
  cr_expect_eq(mp_barrier_broken(b), 0);
  mp_barrier_free(b);
  mp_lock *l;
  cr_assert_eq(mp_lock_new(&l), 0);
  cr_expect_eq(mp_lock_acquire(l, nan), MP_EINVAL);
  mp_lock_free(l);
  mp_semaphore *s;
  cr_assert_eq(mp_semaphore_new(&s, 0), 0);
  cr_expect_eq(mp_semaphore_acquire(s, nan), MP_EINVAL);
  mp_semaphore_free(s);
  mp_event *e;
  cr_assert_eq(mp_event_new(&e), 0);
  cr_expect_eq(mp_event_wait(e, nan), MP_EINVAL);
  mp_event_free(e);
  mp_condition *c;
  cr_assert_eq(mp_condition_new(&c, NULL), 0);
  cr_expect_eq(mp_condition_acquire(c, nan), MP_EINVAL);
  cr_assert_eq(mp_condition_acquire(c, MP_FOREVER), 0);
  cr_expect_eq(mp_condition_wait(c, nan), MP_EINVAL);
  cr_expect_eq(mp_condition_release(c), 0);
  mp_condition_free(c);
  mp_queue *q;
  cr_assert_eq(mp_joinable_queue_new(&q, 0), 0);
  void *p;
  size_t n;
  cr_expect_eq(mp_queue_get(q, &p, &n, nan), MP_EINVAL);
  cr_expect_eq(mp_queue_put(q, "x", 1, nan), MP_EINVAL);
  cr_expect_eq(mp_queue_put(q, "x", 1, 0), 0);
  cr_expect_eq(mp_queue_join(q, nan), MP_EINVAL);
  mp_queue_free(q);
}
