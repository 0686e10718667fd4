/*
 * test_named_sync.c - named Lock, RLock and Semaphore (issue 16): one
 * object opened by name by processes that mproc did not connect (a child
 * under every start method that is given only the name, and a program of
 * its own, tests/named_peer.c), mutual exclusion, semaphore counts, a
 * holder killed while holding, the name gone after the last user closes
 * or is killed, names only the owner can open, and every error path.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE /* setgroups */
#endif

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(_WIN32)
#  include <windows.h>
#  include <aclapi.h>
#else
#  include <grp.h>
#  include <signal.h>
#  include <sys/wait.h>
#  include <unistd.h>
#endif

#include "methods.h"
#include "mproc.h"
#include "support.h"

TS_SUITE(named);

static void unique_name(char *buf, size_t cap, const char *tag) {
  static int seq;
  snprintf(buf, cap, "mpt-nm-%s-%lld-%d", tag, (long long)mp_getpid(),
           ++seq);
}

/* Whether the name is gone: nothing of any kind can be opened by it (on
 * Linux, no file in /dev/shm either). */
static int name_gone(void *name) {
  mp_lock *l = NULL;
  int rc = mp_lock_open_named(&l, name, 0);
  if (rc == 0)
    mp_lock_free(l);
  if (rc != MP_ENOENT)
    return 0;
#if defined(__linux__)
  char path[300];
  snprintf(path, sizeof path, "/dev/shm/%s", (const char *)name);
  if (access(path, F_OK) == 0)
    return 0;
#endif
  return 1;
}

/* ---- errors ------------------------------------------------------------- */

Test(named, bad_arguments_and_names, .timeout = TS_TIMEOUT) {
  char name[64];
  unique_name(name, sizeof name, "args");
  mp_lock *l = NULL;
  mp_semaphore *s = NULL;
  cr_expect_eq(mp_lock_open_named(NULL, name, MP_NAMED_CREATE), MP_EINVAL);
  cr_expect_eq(mp_rlock_open_named(NULL, name, MP_NAMED_CREATE), MP_EINVAL);
  cr_expect_eq(mp_semaphore_open_named(NULL, name, MP_NAMED_CREATE, 1),
               MP_EINVAL);
  cr_expect_eq(mp_lock_open_named(&l, NULL, MP_NAMED_CREATE), MP_EINVAL);
  cr_expect(strstr(mp_last_error_message(), "NULL") != NULL, "%s",
            mp_last_error_message());
  cr_expect_eq(mp_lock_open_named(&l, "", MP_NAMED_CREATE), MP_EINVAL);
  cr_expect_eq(mp_semaphore_open_named(&s, NULL, 0, 0), MP_EINVAL);
  cr_expect_eq(mp_semaphore_open_named(&s, "", MP_NAMED_CREATE, 0),
               MP_EINVAL);
  char longname[400];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  cr_expect_eq(mp_lock_open_named(&l, longname, MP_NAMED_CREATE),
               MP_EINVAL);
  cr_expect_eq(mp_semaphore_open_named(&s, longname, MP_NAMED_CREATE, 0),
               MP_EINVAL);
#if defined(_WIN32)
  cr_expect_eq(mp_lock_open_named(&l, "a\\b", MP_NAMED_CREATE), MP_EINVAL);
  cr_expect_eq(mp_lock_open_named(&l, "Local\\", MP_NAMED_CREATE),
               MP_EINVAL);
#else
  cr_expect_eq(mp_lock_open_named(&l, "a/b", MP_NAMED_CREATE), MP_EINVAL);
  cr_expect_eq(mp_lock_open_named(&l, "/", MP_NAMED_CREATE), MP_EINVAL);
#endif
  cr_expect_eq(mp_lock_open_named(&l, name, MP_NAMED_EXCL), MP_EINVAL);
  cr_expect(strstr(mp_last_error_message(), "MP_NAMED_EXCL") != NULL, "%s",
            mp_last_error_message());
  cr_expect_eq(mp_lock_open_named(&l, name, 8), MP_EINVAL);
  cr_expect_eq(mp_lock_open_named(&l, name, -1), MP_EINVAL);
  cr_expect_eq(mp_semaphore_open_named(&s, name, MP_NAMED_CREATE,
                                       0x80000000u),
               MP_EINVAL);
  /* None of that made the name. */
  cr_expect(name_gone(name));
}

Test(named, missing_existing_and_other_kinds, .timeout = TS_TIMEOUT) {
  char name[64], sname[64], rname[64];
  unique_name(name, sizeof name, "lock");
  unique_name(sname, sizeof sname, "sem");
  unique_name(rname, sizeof rname, "rlock");
  mp_lock *l = NULL, *t = NULL;
  mp_semaphore *s = NULL, *u = NULL;
  /* Missing, without MP_NAMED_CREATE. */
  cr_expect_eq(mp_lock_open_named(&t, name, 0), MP_ENOENT);
  cr_expect(strstr(mp_last_error_message(), name) != NULL, "%s",
            mp_last_error_message());
  cr_expect_eq(mp_rlock_open_named(&t, name, 0), MP_ENOENT);
  cr_expect_eq(mp_semaphore_open_named(&u, name, 0, 3), MP_ENOENT);
  /* Exclusive create of one that exists. */
  cr_assert_eq(mp_lock_open_named(&l, name, MP_NAMED_CREATE | MP_NAMED_EXCL),
               0, "%s", mp_last_error_message());
  cr_expect_eq(mp_lock_open_named(&t, name, MP_NAMED_CREATE | MP_NAMED_EXCL),
               MP_EEXIST);
  cr_expect_eq(
      mp_semaphore_open_named(&u, name, MP_NAMED_CREATE | MP_NAMED_EXCL, 1),
      MP_EEXIST);
  cr_assert_eq(
      mp_semaphore_open_named(&s, sname, MP_NAMED_CREATE | MP_NAMED_EXCL, 1),
      0, "%s", mp_last_error_message());
  cr_expect_eq(
      mp_semaphore_open_named(&u, sname, MP_NAMED_CREATE | MP_NAMED_EXCL, 1),
      MP_EEXIST);
  /* Another kind under the name. */
  cr_expect_eq(mp_semaphore_open_named(&u, name, 0, 0), MP_ETYPE);
  cr_expect_eq(mp_semaphore_open_named(&u, name, MP_NAMED_CREATE, 0),
               MP_ETYPE);
  cr_expect_eq(mp_lock_open_named(&t, sname, MP_NAMED_CREATE), MP_ETYPE);
  cr_expect(strstr(mp_last_error_message(), "semaphore") != NULL, "%s",
            mp_last_error_message());
  cr_expect_eq(mp_rlock_open_named(&t, name, 0), MP_ETYPE);
  cr_expect(strstr(mp_last_error_message(), "not an RLock") != NULL, "%s",
            mp_last_error_message());
  mp_lock *r = NULL;
  cr_assert_eq(mp_rlock_open_named(&r, rname, MP_NAMED_CREATE), 0);
  cr_expect_eq(mp_lock_open_named(&t, rname, 0), MP_ETYPE);
  /* A segment of mp_shm's is no lock: too small, or not a lock's state. */
  char mname[64], bname[64];
  unique_name(mname, sizeof mname, "shm");
  unique_name(bname, sizeof bname, "big");
  mp_shm *m = NULL, *b = NULL;
  cr_assert_eq(mp_shm_new(&m, mname, 8), 0);
  cr_expect_eq(mp_lock_open_named(&t, mname, 0), MP_ETYPE);
  cr_assert_eq(mp_shm_new(&b, bname, 4096), 0);
  memset(mp_shm_buf(b), 0xa5, 4096);
  cr_expect_eq(mp_lock_open_named(&t, bname, MP_NAMED_CREATE), MP_ETYPE);
  cr_expect_eq(mp_semaphore_open_named(&u, bname, 0, 0), MP_ETYPE);
  /* A name taken by a named lock is taken for mp_shm too. */
  mp_shm *m2 = NULL;
  cr_expect_eq(mp_shm_new(&m2, name, 64), MP_EEXIST);
  mp_shm_free(b);
  mp_shm_free(m);
  mp_lock_free(r);
  mp_semaphore_free(s);
  mp_lock_free(l);
  cr_expect(ts_poll_until(name_gone, name, 10.0));
  cr_expect(ts_poll_until(name_gone, sname, 10.0));
  cr_expect(ts_poll_until(name_gone, rname, 10.0));
}

/* ---- one object by name, in one process --------------------------------- */

Test(named, every_opener_gets_the_same_object, .timeout = TS_TIMEOUT) {
  char name[64];
  unique_name(name, sizeof name, "same");
  mp_lock *a = NULL, *b = NULL, *c = NULL;
  cr_assert_eq(mp_lock_open_named(&a, name, MP_NAMED_CREATE), 0, "%s",
               mp_last_error_message());
  cr_assert_eq(mp_lock_open_named(&b, name, 0), 0, "%s",
               mp_last_error_message());
  cr_assert_eq(mp_lock_open_named(&c, name, MP_NAMED_CREATE), 0);
  cr_expect_eq(mp_lock_is_recursive(b), 0);
  cr_expect_eq(mp_lock_acquire(a, 1.0), 0);
  cr_expect_eq(mp_lock_locked(b), 1);
  cr_expect_eq(mp_lock_locked(c), 1);
  cr_expect_eq(mp_lock_acquire(c, 0), MP_ETIMEDOUT);
  cr_expect_eq(mp_lock_acquire(b, 0.05), MP_ETIMEDOUT);
  cr_expect_eq(mp_lock_release(b), 0, "any holder of a Lock releases it");
  cr_expect_eq(mp_lock_locked(a), 0);
  cr_expect_eq(mp_lock_release(c), MP_EVALUE);
  /* An ordinary lock: a Condition over it. */
  mp_condition *cond = NULL;
  cr_assert_eq(mp_condition_new(&cond, b), 0);
  cr_expect_eq(mp_condition_acquire(cond, 1.0), 0);
  cr_expect_eq(mp_lock_locked(a), 1);
  cr_expect_eq(mp_condition_wait(cond, 0.01), MP_ETIMEDOUT);
  cr_expect_eq(mp_condition_release(cond), 0);
  mp_condition_free(cond);
  mp_lock_free(c);
  mp_lock_free(b);
  mp_lock_free(a);

  /* An RLock: the owning thread takes it again through any handle. */
  char rname[64];
  unique_name(rname, sizeof rname, "rsame");
  cr_assert_eq(mp_rlock_open_named(&a, rname, MP_NAMED_CREATE), 0);
  cr_assert_eq(mp_rlock_open_named(&b, rname, 0), 0);
  cr_expect_eq(mp_lock_is_recursive(b), 1);
  cr_expect_eq(mp_lock_acquire(a, 1.0), 0);
  cr_expect_eq(mp_lock_acquire(b, 0), 0);
  cr_expect_eq(mp_lock_release(a), 0);
  cr_expect_eq(mp_lock_locked(b), 1, "held once more");
  cr_expect_eq(mp_lock_release(b), 0);
  cr_expect_eq(mp_lock_locked(a), 0);
  cr_expect_eq(mp_lock_release(a), MP_EPERM);
  mp_lock_free(b);
  mp_lock_free(a);

  /* A semaphore: the creator's value counts; an opener's is ignored. */
  char sname[64];
  unique_name(sname, sizeof sname, "ssame");
  mp_semaphore *s = NULL, *t = NULL;
  cr_assert_eq(mp_semaphore_open_named(&s, sname, MP_NAMED_CREATE, 2), 0);
  cr_assert_eq(mp_semaphore_open_named(&t, sname, MP_NAMED_CREATE, 7), 0);
  cr_expect_eq(mp_semaphore_get_value(t), 2);
  cr_expect_eq(mp_semaphore_acquire(t, 0), 0);
  cr_expect_eq(mp_semaphore_acquire(s, 0), 0);
  cr_expect_eq(mp_semaphore_acquire(s, 0.02), MP_ETIMEDOUT);
  cr_expect_eq(mp_semaphore_release(t), 0);
  cr_expect_eq(mp_semaphore_get_value(s), 1);
  mp_semaphore_free(t);
  mp_semaphore_free(s);
  cr_expect(ts_poll_until(name_gone, name, 10.0));
  cr_expect(ts_poll_until(name_gone, rname, 10.0));
  cr_expect(ts_poll_until(name_gone, sname, 10.0));
}

Test(named, removed_when_the_last_user_leaves, .timeout = TS_TIMEOUT) {
  char name[64], sname[64];
  unique_name(name, sizeof name, "last");
  unique_name(sname, sizeof sname, "slast");
  mp_lock *a = NULL, *b = NULL;
  cr_assert_eq(mp_lock_open_named(&a, name, MP_NAMED_CREATE), 0);
  cr_assert_eq(mp_lock_open_named(&b, name, 0), 0);
  mp_semaphore *s = NULL, *t = NULL;
  cr_assert_eq(mp_semaphore_open_named(&s, sname, MP_NAMED_CREATE, 1), 0);
  cr_assert_eq(mp_semaphore_open_named(&t, sname, 0, 0), 0);
  mp_lock_free(a); /* the creator first: the opener keeps it */
  mp_semaphore_free(s);
  cr_expect_eq(name_gone(name), 0, "still used");
  cr_expect_eq(name_gone(sname), 0, "still used");
  cr_expect_eq(mp_lock_acquire(b, 1.0), 0);
  mp_lock_free(b);
  mp_semaphore_free(t);
  cr_expect(ts_poll_until(name_gone, name, 10.0), "removed");
  cr_expect(ts_poll_until(name_gone, sname, 10.0), "removed");
  /* Gone, so it may be made afresh, unlocked and with a new value. */
  cr_assert_eq(mp_lock_open_named(&a, name, MP_NAMED_CREATE | MP_NAMED_EXCL),
               0, "%s", mp_last_error_message());
  cr_expect_eq(mp_lock_locked(a), 0);
  mp_lock_free(a);
  cr_assert_eq(
      mp_semaphore_open_named(&s, sname, MP_NAMED_CREATE | MP_NAMED_EXCL, 5),
      0);
  cr_expect_eq(mp_semaphore_get_value(s), 5);
  mp_semaphore_free(s);
  cr_expect(ts_poll_until(name_gone, name, 10.0));
  cr_expect(ts_poll_until(name_gone, sname, 10.0));
}

/* ---- children that know only the name ----------------------------------- */

#define INCS 3000

/* args: lock name, counter (a raw value), increments, recursive */
static int count_by_name(const mp_args *a) {
  mp_lock *l = NULL;
  int recursive = (int)mp_args_int(a, 3);
  int rc = recursive ? mp_rlock_open_named(&l, mp_args_str(a, 0), 0)
                     : mp_lock_open_named(&l, mp_args_str(a, 0), 0);
  if (rc != 0)
    return ts_report("open: %s", mp_last_error_message());
  volatile int64_t *x = mp_value_ptr(mp_args_value(a, 1));
  int64_t n = mp_args_int(a, 2);
  for (int64_t i = 0; i < n; i++) {
    if (mp_lock_acquire(l, 30.0) != 0)
      return 91;
    int64_t y = *x;
    *x = y + 1;
    if (mp_lock_release(l) != 0)
      return 92;
  }
  mp_lock_free(l);
  return 0;
}

/* INCS increments of *x under l, read and written apart. */
static void increment(mp_lock *l, volatile int64_t *x) {
  for (int i = 0; i < INCS; i++) {
    cr_assert_eq(mp_lock_acquire(l, 30.0), 0);
    int64_t y = *x;
    *x = y + 1;
    mp_lock_release(l);
  }
}

static void mutual_exclusion(const char *method, int recursive) {
  char name[64];
  unique_name(name, sizeof name, recursive ? "rmx" : "mx");
  mp_lock *l = NULL;
  mp_value *v = NULL;
  cr_assert_eq(recursive ? mp_rlock_open_named(&l, name, MP_NAMED_CREATE)
                         : mp_lock_open_named(&l, name, MP_NAMED_CREATE),
               0, "%s", mp_last_error_message());
  cr_assert_eq(mp_raw_value_new(&v, 'q', NULL), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_str(a, name);
  mp_args_add_value(a, v);
  mp_args_add_int(a, INCS);
  mp_args_add_int(a, recursive);
  mp_process *p[2];
  for (int i = 0; i < 2; i++)
    p[i] = ts_start(method, count_by_name, a);
  mp_args_free(a);
  volatile int64_t *x = mp_value_ptr(v);
  increment(l, x);
  for (int i = 0; i < 2; i++) {
    cr_expect_eq(ts_join(p[i]), 0, "child %d: %s", i,
                 mp_process_error(p[i]));
    mp_process_free(p[i]);
  }
  cr_expect_eq(*x, 3 * INCS);
  mp_value_free(v);
  mp_lock_free(l);
  cr_expect(ts_poll_until(name_gone, name, 10.0));
}

static void check_named_mutual_exclusion(const char *method) {
  mutual_exclusion(method, 0);
}
FOR_EACH_METHOD(check_named_mutual_exclusion)

static void check_named_rlock_mutual_exclusion(const char *method) {
  mutual_exclusion(method, 1);
}
FOR_EACH_METHOD(check_named_rlock_mutual_exclusion)

/* args: semaphore name, releases.  Opens with a value that must be
 * ignored (the semaphore exists, at 0). */
static int release_by_name(const mp_args *a) {
  mp_semaphore *s = NULL;
  if (mp_semaphore_open_named(&s, mp_args_str(a, 0), MP_NAMED_CREATE, 99) !=
      0)
    return ts_report("open: %s", mp_last_error_message());
  if (mp_semaphore_get_value(s) != 0)
    return ts_report("value %d at open", mp_semaphore_get_value(s));
  for (int64_t i = 0; i < mp_args_int(a, 1); i++)
    if (mp_semaphore_release(s) != 0)
      return 91;
  mp_semaphore_free(s);
  return 0;
}

static void check_named_semaphore(const char *method) {
  char name[64];
  unique_name(name, sizeof name, "sem");
  mp_semaphore *s = NULL;
  cr_assert_eq(mp_semaphore_open_named(&s, name,
                                       MP_NAMED_CREATE | MP_NAMED_EXCL, 0),
               0, "%s", mp_last_error_message());
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_str(a, name);
  mp_args_add_int(a, 3);
  mp_process *p = ts_start(method, release_by_name, a);
  mp_args_free(a);
  for (int i = 0; i < 3; i++)
    cr_expect_eq(mp_semaphore_acquire(s, 30.0), 0, "unit %d", i);
  cr_expect_eq(mp_semaphore_acquire(s, 0), MP_ETIMEDOUT, "three, no more");
  cr_expect_eq(ts_join(p), 0, "%s", mp_process_error(p));
  cr_expect_eq(mp_semaphore_get_value(s), 0);
  mp_process_free(p);
  mp_semaphore_free(s);
  cr_expect(ts_poll_until(name_gone, name, 10.0));
}
FOR_EACH_METHOD(check_named_semaphore)

/* args: semaphore name, go event.  Creates or opens the semaphore,
 * gives one unit, and keeps it open until told to go. */
static int create_or_open_and_give(const mp_args *a) {
  mp_semaphore *s = NULL;
  if (mp_semaphore_open_named(&s, mp_args_str(a, 0), MP_NAMED_CREATE, 0) !=
      0)
    return ts_report("open: %s", mp_last_error_message());
  if (mp_semaphore_release(s) != 0)
    return 91;
  if (mp_event_wait(mp_args_event(a, 1), 30.0) != 0)
    return 92;
  mp_semaphore_free(s);
  return 0;
}

typedef struct opener {
  const char *name;
  mp_semaphore *s;
} opener;

static int open_existing_sem(void *arg) {
  opener *o = arg;
  return mp_semaphore_open_named(&o->s, o->name, 0, 0) == 0;
}

/* Several processes create-or-open one new name at once: one of them
 * makes it, the others open that same object. */
static void check_named_created_once(const char *method) {
  char name[64];
  unique_name(name, sizeof name, "once");
  mp_event *go = NULL;
  cr_assert_eq(mp_event_new(&go), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_str(a, name);
  mp_args_add_event(a, go);
  mp_process *p[3];
  for (int i = 0; i < 3; i++)
    p[i] = ts_start(method, create_or_open_and_give, a);
  mp_args_free(a);
  opener o = {name, NULL};
  cr_assert(ts_poll_until(open_existing_sem, &o, 30.0), "%s",
            mp_last_error_message());
  mp_semaphore *s = o.s;
  for (int i = 0; i < 3; i++)
    cr_expect_eq(mp_semaphore_acquire(s, 30.0), 0, "unit %d", i);
  cr_expect_eq(mp_semaphore_get_value(s), 0);
  mp_event_set(go);
  for (int i = 0; i < 3; i++) {
    cr_expect_eq(ts_join(p[i]), 0, "child %d: %s", i,
                 mp_process_error(p[i]));
    mp_process_free(p[i]);
  }
  mp_semaphore_free(s);
  mp_event_free(go);
  cr_expect(ts_poll_until(name_gone, name, 10.0));
}
FOR_EACH_METHOD(check_named_created_once)

/* args: lock name, ready event, recursive, create.  Takes the lock (made
 * here when `create`), says so, and blocks until killed. */
static int hold_by_name(const mp_args *a) {
  mp_lock *l = NULL;
  int recursive = (int)mp_args_int(a, 2);
  int flags = mp_args_int(a, 3) ? MP_NAMED_CREATE | MP_NAMED_EXCL : 0;
  int rc = recursive ? mp_rlock_open_named(&l, mp_args_str(a, 0), flags)
                     : mp_lock_open_named(&l, mp_args_str(a, 0), flags);
  if (rc != 0)
    return ts_report("open: %s", mp_last_error_message());
  if (mp_lock_acquire(l, 30.0) != 0)
    return 91;
  if (recursive && mp_lock_acquire(l, 0) != 0)
    return 92;
  mp_event_set(mp_args_event(a, 1));
  ts_block_forever();
  return 0;
}

static mp_process *start_holder(const char *method, const char *name,
                                mp_event *ready, int recursive, int create) {
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_str(a, name);
  mp_args_add_event(a, ready);
  mp_args_add_int(a, recursive);
  mp_args_add_int(a, create);
  mp_process *p = ts_start(method, hold_by_name, a);
  mp_args_free(a);
  cr_assert_eq(mp_event_wait(ready, 30.0), 0, "the holder took it");
  return p;
}

static void owner_death(const char *method, int recursive) {
  char name[64];
  unique_name(name, sizeof name, recursive ? "rdead" : "dead");
  mp_lock *l = NULL;
  mp_event *ready = NULL;
  cr_assert_eq(recursive ? mp_rlock_open_named(&l, name, MP_NAMED_CREATE)
                         : mp_lock_open_named(&l, name, MP_NAMED_CREATE),
               0);
  cr_assert_eq(mp_event_new(&ready), 0);
  mp_process *p = start_holder(method, name, ready, recursive, 0);
  cr_expect_eq(mp_lock_acquire(l, 0), MP_ETIMEDOUT, "held by the child");
  mp_process_kill(p);
  double t0 = ts_now();
  int rc = mp_lock_acquire(l, 20.0);
  cr_expect_eq(rc, MP_EOWNERDEAD, "%s", mp_err_name(rc));
  cr_expect_lt(ts_now() - t0, 10.0);
  cr_expect_eq(mp_lock_locked(l), 1, "the next acquirer holds it");
  if (recursive) /* ours now, as an RLock */
    cr_expect_eq(mp_lock_acquire(l, 0), 0);
  cr_expect_eq(mp_lock_release(l), 0);
  if (recursive)
    cr_expect_eq(mp_lock_release(l), 0);
  cr_expect_eq(mp_lock_locked(l), 0);
  cr_expect_eq(mp_lock_acquire(l, 1.0), 0, "reported once");
  mp_lock_release(l);
  ts_join(p);
  mp_process_free(p);
  mp_event_free(ready);
  mp_lock_free(l);
  cr_expect(ts_poll_until(name_gone, name, 10.0));
}

static void check_named_owner_death(const char *method) {
  owner_death(method, 0);
}
FOR_EACH_METHOD(check_named_owner_death)

static void check_named_rlock_owner_death(const char *method) {
  owner_death(method, 1);
}
FOR_EACH_METHOD(check_named_rlock_owner_death)

/* The child made the name and is its only user: killed, the name goes. */
static void check_named_gone_with_its_killed_user(const char *method) {
  char name[64];
  unique_name(name, sizeof name, "killed");
  mp_event *ready = NULL;
  cr_assert_eq(mp_event_new(&ready), 0);
  mp_process *p = start_holder(method, name, ready, 0, 1);
  mp_lock *l = NULL;
  cr_assert_eq(mp_lock_open_named(&l, name, 0), 0, "made by the child");
  cr_expect_eq(mp_lock_locked(l), 1);
  mp_lock_free(l);
  cr_expect_eq(name_gone(name), 0, "the child still uses it");
  mp_process_kill(p);
  ts_join(p);
  cr_expect(ts_poll_until(name_gone, name, 10.0),
            "removed after its last user was killed");
  mp_process_free(p);
  mp_event_free(ready);
}
FOR_EACH_METHOD(check_named_gone_with_its_killed_user)

/* ---- a program of its own ----------------------------------------------- */

#if !defined(NAMED_PEER_PATH)
#  define NAMED_PEER_PATH "named_peer"
#endif

Test(named, a_separate_program, .timeout = TS_TIMEOUT) {
  char lname[64], mname[64], sname[64], count[16];
  unique_name(lname, sizeof lname, "plock");
  unique_name(mname, sizeof mname, "pshm");
  unique_name(sname, sizeof sname, "psem");
  mp_lock *l = NULL;
  mp_shm *m = NULL;
  mp_semaphore *said = NULL;
  cr_assert_eq(mp_lock_open_named(&l, lname, MP_NAMED_CREATE), 0);
  cr_assert_eq(mp_shm_new(&m, mname, sizeof(int64_t)), 0);
  cr_assert_eq(mp_semaphore_open_named(&said, sname, MP_NAMED_CREATE, 0), 0);
  /* Mutual exclusion with a program mproc did not start. */
  snprintf(count, sizeof count, "%d", INCS);
  ts_program p;
  const char *counting[] = {"count", lname, mname, count, NULL};
  ts_program_start(&p, NAMED_PEER_PATH, counting);
  volatile int64_t *x = mp_shm_buf(m);
  increment(l, x);
  cr_expect_eq(ts_program_wait(&p, 60.0), 0, "the counting peer");
  cr_expect_eq(*x, 2 * INCS);
  /* It takes the lock and is killed holding it. */
  const char *holding[] = {"hold", lname, sname, NULL};
  ts_program_start(&p, NAMED_PEER_PATH, holding);
  cr_assert_eq(mp_semaphore_acquire(said, 30.0), 0, "the peer holds it");
  cr_expect_eq(mp_lock_acquire(l, 0), MP_ETIMEDOUT);
  ts_kill_pid(p.pid);
  int rc = mp_lock_acquire(l, 20.0);
  cr_expect_eq(rc, MP_EOWNERDEAD, "%s", mp_err_name(rc));
  cr_expect_eq(mp_lock_locked(l), 1);
  cr_expect_eq(mp_lock_release(l), 0);
  ts_program_wait(&p, 60.0);
  mp_semaphore_free(said);
  mp_shm_free(m);
  mp_lock_free(l);
  cr_expect(ts_poll_until(name_gone, lname, 10.0));
  cr_expect(ts_poll_until(name_gone, sname, 10.0));
}

/* ---- only the owner ----------------------------------------------------- */

#if !defined(_WIN32)

/* Another uid cannot open the name.  As root: a child that becomes
 * nobody (shm_open refuses it: 0600).  Always: the test-only hook of
 * src/posix/shm.c that makes the tracker take our own uid for a
 * stranger's (the tracker refuses it: other uids never count as users). */
Test(named, another_user_cannot_open, .timeout = TS_TIMEOUT) {
  char name[64];
  unique_name(name, sizeof name, "uid");
  mp_lock *l = NULL, *t = NULL;
  if (geteuid() == 0) {
    cr_assert_eq(mp_lock_open_named(&l, name, MP_NAMED_CREATE), 0);
    fflush(NULL);
    pid_t c = fork();
    cr_assert_geq(c, 0);
    if (c == 0) {
      if (setgroups(0, NULL) != 0 || setgid(65534) != 0 ||
          setuid(65534) != 0)
        _exit(1);
      int rc = mp_lock_open_named(&t, name, 0);
      _exit(rc == MP_EPERM ? 0 : rc == 0 ? 2 : 3);
    }
    int st = 0;
    waitpid(c, &st, 0);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "nobody opened root's lock (status %d)", st);
    mp_lock_free(l);
    cr_expect(ts_poll_until(name_gone, name, 10.0));
  }
  char uid[32];
  snprintf(uid, sizeof uid, "%ld", (long)geteuid() + 1);
  ts_setenv("MPROC_TEST_SHM_PEER_UID", uid);
  int rc = mp_lock_open_named(&l, name, MP_NAMED_CREATE);
  ts_unsetenv("MPROC_TEST_SHM_PEER_UID");
  cr_assert_eq(rc, 0, "%s", mp_last_error_message());
  cr_expect_eq(mp_lock_open_named(&t, name, 0), MP_EPERM);
  cr_expect_eq(mp_lock_open_named(&t, name, MP_NAMED_CREATE), MP_EPERM);
  mp_lock_free(l);
  cr_expect(ts_poll_until(name_gone, name, 10.0));
}

#else /* _WIN32 */

/* The section behind the name has a DACL with one entry: our user. */
Test(named, another_user_cannot_open, .timeout = TS_TIMEOUT) {
  char name[64];
  unique_name(name, sizeof name, "dacl");
  mp_lock *l = NULL;
  cr_assert_eq(mp_lock_open_named(&l, name, MP_NAMED_CREATE), 0);
  HANDLE h = OpenFileMappingA(READ_CONTROL, FALSE, name);
  cr_assert_not_null(h, "error %lu", (unsigned long)GetLastError());
  PACL dacl = NULL;
  PSECURITY_DESCRIPTOR sd = NULL;
  DWORD err = GetSecurityInfo(h, SE_KERNEL_OBJECT, DACL_SECURITY_INFORMATION,
                              NULL, NULL, &dacl, NULL, &sd);
  cr_assert_eq(err, ERROR_SUCCESS, "GetSecurityInfo: %lu",
               (unsigned long)err);
  cr_assert_not_null(dacl, "a DACL (not a NULL one, open to all)");
  cr_expect_eq(dacl->AceCount, 1);
  HANDLE tok = NULL;
  cr_assert(OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok));
  union {
    TOKEN_USER u;
    unsigned char buf[256];
  } me;
  DWORD need = 0;
  cr_assert(GetTokenInformation(tok, TokenUser, &me, sizeof me, &need));
  CloseHandle(tok);
  ACCESS_ALLOWED_ACE *ace = NULL;
  cr_assert(GetAce(dacl, 0, (void **)&ace));
  cr_expect_eq(ace->Header.AceType, ACCESS_ALLOWED_ACE_TYPE);
  cr_expect(EqualSid((PSID)&ace->SidStart, me.u.User.Sid), "our user only");
  LocalFree(sd);
  CloseHandle(h);
  mp_lock_free(l);
  cr_expect(ts_poll_until(name_gone, name, 10.0));
}

#endif
