/*
 * test_shmem.c - Value, RawValue, Array, RawArray and named shared
 * memory: typecodes and their ranges, bounds, locks, children changing
 * them under every start method, attach by name, and cleanup: a name is
 * gone once its last user has gone, also when users were killed.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE /* setgroups, prctl */
#endif

#include <criterion/criterion.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if !defined(_WIN32)
#  include <errno.h>
#  include <fcntl.h>
#  include <grp.h>
#  include <poll.h>
#  include <signal.h>
#  include <sys/mman.h>
#  include <sys/socket.h>
#  include <sys/un.h>
#  include <sys/wait.h>
#  include <time.h>
#  include <unistd.h>
#  if defined(__linux__)
#    include <sys/prctl.h>
#  endif
#else
#  include <windows.h>
#endif

#include "methods.h"
#include "mproc.h"
#include "support.h"

TS_SUITE(value);
TS_SUITE(array);
TS_SUITE(shm);

/* ---- Value -------------------------------------------------------------- */

Test(value, typecodes_and_ranges, .timeout = TS_TIMEOUT) {
  const char *codes = "cbBhHiIlLqQfd";
  for (const char *c = codes; *c; c++) {
    mp_value *v;
    cr_assert_eq(mp_value_new(&v, *c, NULL), 0, "typecode %c", *c);
    cr_expect_eq(mp_value_typecode(v), *c);
    cr_expect_not_null(mp_value_get_lock(v));
    double d = -1;
    cr_expect_eq(mp_value_get_double(v, &d), 0);
    cr_expect_eq(d, 0.0, "zeroed");
    if (*c == 'f' || *c == 'd') {
      cr_expect_eq(mp_value_set_double(v, 2.5), 0);
      cr_expect_eq(mp_value_get_double(v, &d), 0);
      cr_expect_eq(d, 2.5);
      int64_t i;
      cr_expect_eq(mp_value_get_int(v, &i), MP_ETYPE);
      cr_expect_eq(mp_value_set_int(v, 1), MP_ETYPE);
    } else {
      int64_t i = 0;
      cr_expect_eq(mp_value_set_int(v, 100), 0);
      cr_expect_eq(mp_value_get_int(v, &i), 0);
      cr_expect_eq(i, 100);
      cr_expect_eq(mp_value_set_double(v, 1.0), MP_ETYPE);
      int is_signed = strchr("bhilq", *c) != NULL;
      cr_expect_eq(mp_value_set_int(v, -1), is_signed ? 0 : MP_ERANGE,
                   "typecode %c, -1", *c);
    }
    mp_value_free(v);
  }
  mp_value *v;
  cr_expect_eq(mp_value_new(&v, 'x', NULL), MP_EINVAL);
  cr_expect_eq(mp_value_new(NULL, 'i', NULL), MP_EINVAL);
  cr_assert_eq(mp_value_new(&v, 'b', NULL), 0);
  cr_expect_eq(mp_value_set_int(v, 127), 0);
  cr_expect_eq(mp_value_set_int(v, 128), MP_ERANGE);
  cr_expect_eq(mp_value_set_int(v, -128), 0);
  cr_expect_eq(mp_value_set_int(v, -129), MP_ERANGE);
  mp_value_free(v);
  cr_assert_eq(mp_value_new(&v, 'H', NULL), 0);
  cr_expect_eq(mp_value_set_int(v, 65535), 0);
  cr_expect_eq(mp_value_set_int(v, 65536), MP_ERANGE);
  mp_value_free(v);
  uint64_t big = UINT64_MAX;
  cr_assert_eq(mp_value_new(&v, 'Q', &big), 0);
  int64_t i;
  cr_expect_eq(mp_value_get_int(v, &i), MP_ERANGE, "above INT64_MAX");
  double d;
  cr_expect_eq(mp_value_get_double(v, &d), 0);
  cr_expect_gt(d, 1.8e19);
  mp_value_free(v);
  double init = 1.25;
  cr_assert_eq(mp_raw_value_new(&v, 'd', &init), 0);
  cr_expect_null(mp_value_get_lock(v), "raw: no lock");
  cr_expect_eq(*(double *)mp_value_ptr(v), 1.25);
  mp_value_free(v);
}

Test(value, with_a_given_lock, .timeout = TS_TIMEOUT) {
  mp_lock *l;
  mp_value *v;
  cr_assert_eq(mp_lock_new(&l), 0);
  cr_expect_eq(mp_value_new_with_lock(&v, 'i', NULL, NULL), MP_EINVAL);
  cr_assert_eq(mp_value_new_with_lock(&v, 'i', NULL, l), 0);
  mp_lock *vl = mp_value_get_lock(v);
  cr_assert_not_null(vl);
  cr_expect_eq(vl, l, "get_lock gives the caller's own lock (Python: "
               "v.get_lock() is lock)");
  cr_assert_eq(mp_lock_acquire(l, 0), 0);
  cr_expect_eq(mp_lock_locked(vl), 1, "the same lock");
  cr_expect_eq(mp_lock_acquire(vl, 0), MP_ETIMEDOUT);
  mp_lock_release(l);
  mp_lock_free(l);
  cr_expect_eq(mp_value_set_int(v, 3), 0, "the value keeps the lock alive");
  cr_expect_eq(mp_value_get_lock(v), vl, "and get_lock still gives it");
  cr_assert_eq(mp_lock_acquire(mp_value_get_lock(v), 0), 0);
  mp_lock_release(mp_value_get_lock(v));
  mp_value_free(v);
}

/* The same for an Array and a Condition made with a caller's lock, and
 * two objects sharing one lock: each holds it, the last free ends it. */
Test(value, array_and_condition_give_the_callers_lock,
     .timeout = TS_TIMEOUT) {
  mp_lock *l;
  cr_assert_eq(mp_rlock_new(&l), 0);
  mp_array *a;
  mp_condition *c;
  mp_value *v;
  cr_assert_eq(mp_array_new_with_lock(&a, 'i', 4, NULL, l), 0);
  cr_assert_eq(mp_condition_new(&c, l), 0);
  cr_assert_eq(mp_value_new_with_lock(&v, 'd', NULL, l), 0);
  cr_expect_eq(mp_array_get_lock(a), l);
  cr_expect_eq(mp_condition_get_lock(c), l);
  cr_expect_eq(mp_value_get_lock(v), l);
  mp_lock_free(l);
  mp_condition_free(c);
  cr_assert_eq(mp_array_set_int(a, 3, 7), 0);
  cr_assert_eq(mp_lock_acquire(mp_array_get_lock(a), 0), 0);
  cr_expect_eq(mp_value_set_double(v, 2.5), 0, "an RLock: held, re-entered");
  mp_lock_release(mp_array_get_lock(a));
  mp_array_free(a);
  cr_expect_eq(mp_value_set_double(v, 3.5), 0);
  mp_value_free(v);
}

/* Python's example: Value('d', 0.0) and Array('i', range(10)) changed by
 * a child: 3.1415927 and the negated list. */
static int change(const mp_args *a) {
  mp_value *num = mp_args_value(a, 0);
  mp_array *arr = mp_args_array(a, 1);
  if (num == NULL || arr == NULL)
    return 90;
  if (mp_value_set_double(num, 3.1415927) != 0)
    return 91;
  for (size_t i = 0; i < mp_array_len(arr); i++) {
    int64_t x;
    if (mp_array_get_int(arr, i, &x) != 0 || mp_array_set_int(arr, i, -x))
      return 92;
  }
  return 0;
}

static void check_value_and_array_in_child(const char *method) {
  mp_value *num;
  mp_array *arr;
  int init[10];
  for (int i = 0; i < 10; i++)
    init[i] = i;
  cr_assert_eq(mp_value_new(&num, 'd', NULL), 0);
  cr_assert_eq(mp_array_new(&arr, 'i', 10, init), 0);
  mp_args *a;
  mp_args_new(&a);
  cr_assert_eq(mp_args_add_value(a, num), 0);
  cr_assert_eq(mp_args_add_array(a, arr), 0);
  mp_process *p = ts_start(method, change, a);
  mp_args_free(a);
  cr_expect_eq(ts_join(p), 0);
  double d;
  mp_value_get_double(num, &d);
  cr_expect_eq(d, 3.1415927);
  int out[10];
  cr_assert_eq(mp_array_read(arr, 0, 10, out), 0);
  for (int i = 0; i < 10; i++)
    cr_expect_eq(out[i], -i);
  mp_process_free(p);
  mp_value_free(num);
  mp_array_free(arr);
}
FOR_EACH_METHOD(check_value_and_array_in_child)

/* Increments under the value's own lock from three processes. */
static int add_many(const mp_args *a) {
  mp_value *v = mp_args_value(a, 0);
  if (v == NULL || mp_value_get_lock(v) == NULL)
    return 90;
  for (int i = 0; i < 5000; i++) {
    mp_lock *l = mp_value_get_lock(v);
    if (mp_lock_acquire(l, 30.0) != 0)
      return 91;
    (*(int64_t *)mp_value_ptr(v))++;
    mp_lock_release(l);
  }
  return 0;
}

static void check_value_lock_between_processes(const char *method) {
  mp_value *v;
  cr_assert_eq(mp_value_new(&v, 'q', NULL), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_value(a, v);
  mp_process *p[3];
  for (int i = 0; i < 3; i++)
    p[i] = ts_start(method, add_many, a);
  mp_args_free(a);
  for (int i = 0; i < 3; i++) {
    cr_expect_eq(ts_join(p[i]), 0);
    mp_process_free(p[i]);
  }
  int64_t x;
  cr_expect_eq(mp_value_get_int(v, &x), 0);
  cr_expect_eq(x, 15000);
  mp_value_free(v);
}
FOR_EACH_METHOD(check_value_lock_between_processes)

/* Value and Array of a struct (Python: a ctypes Structure), shared with
 * children under every method: each moves every point by (1, 2) under
 * the lock, many times. */
typedef struct point {
  double x, y;
  int32_t hits;
  char tag[12];
} point;

static int move_points(const mp_args *a) {
  mp_value *v;
  mp_array *arr;
  if (mp_args_unpack(a, "VA", &v, &arr) != 0)
    return 90;
  if (mp_value_size(v) != sizeof(point) ||
      mp_array_itemsize(arr) != sizeof(point) ||
      mp_value_typecode(v) != MP_TYPECODE_STRUCT)
    return 91;
  for (int i = 0; i < 1000; i++) {
    mp_lock *l = mp_value_get_lock(v);
    if (mp_lock_acquire(l, 30.0) != 0)
      return 92;
    point *p = mp_value_ptr(v);
    p->x += 1;
    p->y += 2;
    p->hits++;
    mp_lock_release(l);
    l = mp_array_get_lock(arr);
    if (mp_lock_acquire(l, 30.0) != 0)
      return 93;
    point *ps = mp_array_ptr(arr);
    for (size_t k = 0; k < mp_array_len(arr); k++)
      ps[k].hits++;
    mp_lock_release(l);
  }
  return 0;
}

static void check_struct_value_and_array(const char *method) {
  point p0 = {1.5, -2, 0, "origin"};
  point ps[3] = {{0, 0, 0, "a"}, {1, 1, 0, "b"}, {2, 2, 0, "c"}};
  mp_value *v;
  mp_array *arr;
  cr_assert_eq(mp_value_new_struct(&v, sizeof p0, &p0), 0);
  cr_assert_eq(mp_array_new_struct(&arr, sizeof(point), 3, ps), 0);
  cr_expect_eq((uintptr_t)mp_value_ptr(v) % 16, 0, "aligned for any type");
  mp_process *c[2];
  mp_args *a;
  cr_assert_eq(mp_args_pack(&a, "VA", v, arr), 0);
  for (int i = 0; i < 2; i++)
    c[i] = ts_start(method, move_points, a);
  mp_args_free(a);
  for (int i = 0; i < 2; i++) {
    cr_expect_eq(ts_join(c[i]), 0, "%s", mp_process_error(c[i]));
    mp_process_free(c[i]);
  }
  point *p = mp_value_ptr(v);
  cr_expect_eq(p->x, 2001.5);
  cr_expect_eq(p->y, 3998);
  cr_expect_eq(p->hits, 2000);
  cr_expect_str_eq(p->tag, "origin");
  point out[3];
  cr_assert_eq(mp_array_read(arr, 0, 3, out), 0);
  for (int k = 0; k < 3; k++) {
    cr_expect_eq(out[k].hits, 2000);
    cr_expect_eq(out[k].x, (double)k);
  }
  cr_expect_str_eq(out[2].tag, "c");
  /* A struct has no typed get/set. */
  int64_t x;
  double d;
  cr_expect_eq(mp_value_get_int(v, &x), MP_ETYPE);
  cr_expect_eq(mp_value_set_double(v, 1.0), MP_ETYPE);
  cr_expect_eq(mp_array_get_double(arr, 0, &d), MP_ETYPE);
  mp_value_free(v);
  mp_array_free(arr);
}
FOR_EACH_METHOD(check_struct_value_and_array)

Test(value, struct_sizes, .timeout = TS_TIMEOUT) {
  mp_value *v;
  mp_array *arr;
  cr_expect_eq(mp_value_new_struct(&v, 0, NULL), MP_EINVAL);
  cr_expect_eq(mp_value_new_struct(&v, ((size_t)1 << 30) + 1, NULL),
               MP_EINVAL);
  cr_expect_eq(mp_value_new_struct(NULL, 8, NULL), MP_EINVAL);
  cr_expect_eq(mp_value_new(&v, MP_TYPECODE_STRUCT, NULL), MP_EINVAL,
               "a struct needs its size");
  cr_expect_eq(mp_array_new_struct(&arr, 0, 4, NULL), MP_EINVAL);
  cr_expect_eq(mp_array_new_struct(&arr, 1u << 20, (size_t)1 << 30, NULL),
               MP_EINVAL, "more than 1 TiB");
  cr_assert_eq(mp_value_new_struct(&v, 3, NULL), 0);
  cr_expect_eq(mp_value_size(v), 3);
  unsigned char *b = mp_value_ptr(v);
  cr_expect(b[0] == 0 && b[1] == 0 && b[2] == 0, "zeroed");
  mp_value_free(v);
  cr_assert_eq(mp_array_new_struct(&arr, 24, 0, NULL), 0);
  cr_expect_eq(mp_array_len(arr), 0);
  mp_array_free(arr);
}

/* ---- Array -------------------------------------------------------------- */

Test(array, bounds_slices_and_types, .timeout = TS_TIMEOUT) {
  mp_array *a;
  cr_assert_eq(mp_array_new(&a, 'h', 5, NULL), 0);
  cr_expect_eq(mp_array_len(a), 5);
  cr_expect_eq(mp_array_typecode(a), 'h');
  cr_expect_eq(mp_array_itemsize(a), sizeof(short));
  cr_expect_not_null(mp_array_get_lock(a));
  int64_t x;
  cr_expect_eq(mp_array_get_int(a, 5, &x), MP_ERANGE);
  cr_expect_eq(mp_array_set_int(a, 99, 1), MP_ERANGE);
  cr_expect_eq(mp_array_set_int(a, 4, 40000), MP_ERANGE, "short range");
  cr_expect_eq(mp_array_set_int(a, 4, -7), 0);
  cr_expect_eq(mp_array_get_int(a, 4, &x), 0);
  cr_expect_eq(x, -7);
  short in[3] = {1, 2, 3}, out[5];
  cr_expect_eq(mp_array_write(a, 1, 3, in), 0);
  cr_expect_eq(mp_array_write(a, 3, 3, in), MP_ERANGE, "past the end");
  cr_expect_eq(mp_array_read(a, 0, 5, out), 0);
  cr_expect(out[0] == 0 && out[1] == 1 && out[3] == 3 && out[4] == -7);
  cr_expect_eq(mp_array_read(a, 5, 0, out), 0, "empty slice at the end");
  cr_expect_eq(mp_array_read(a, 6, 0, out), MP_ERANGE);
  cr_expect_eq(mp_array_read(a, 0, 1, NULL), MP_EINVAL);
  mp_array_free(a);
  cr_assert_eq(mp_raw_array_new(&a, 'c', 6, "hello"), 0);
  cr_expect_null(mp_array_get_lock(a));
  cr_expect_str_eq((char *)mp_array_ptr(a), "hello");
  cr_expect_eq(mp_array_get_int(a, 0, &x), 0);
  cr_expect_eq(x, 'h');
  cr_expect_eq(mp_array_set_double(a, 0, 1.0), MP_ETYPE);
  mp_array_free(a);
  cr_assert_eq(mp_array_new(&a, 'd', 0, NULL), 0, "empty arrays exist");
  cr_expect_eq(mp_array_len(a), 0);
  cr_expect_eq(mp_array_get_double(a, 0, &(double){0}), MP_ERANGE);
  mp_array_free(a);
  /* A length whose size in bytes overflows size_t (32 or 64 bits). */
  cr_expect_eq(mp_array_new(&a, 'd', SIZE_MAX / 4, NULL), MP_EINVAL);
  cr_expect_eq(mp_array_len(NULL), 0);
  cr_expect_eq(mp_array_get_int((mp_array *)NULL, 0, &x), MP_EINVAL);
}

/* ---- named shared memory ------------------------------------------------ */

static void unique_name(char *buf, size_t cap, const char *tag) {
  static int seq;
  snprintf(buf, cap, "mpt-%s-%lld-%d", tag, (long long)mp_getpid(), ++seq);
}

Test(shm, create_attach_unlink, .timeout = TS_TIMEOUT) {
  char name[64];
  unique_name(name, sizeof name, "cau");
  mp_shm *s, *t;
  cr_assert_eq(mp_shm_new(&s, name, 10000), 0, "%s",
               mp_last_error_message());
  cr_expect_str_eq(mp_shm_name(s), name);
  cr_expect_eq(mp_shm_size(s), 10000);
  cr_expect_eq((uintptr_t)mp_shm_buf(s) % 64, 0, "64-byte aligned");
  unsigned char *b = mp_shm_buf(s);
  cr_expect_eq(b[0] | b[9999], 0, "zeroed");
  cr_expect_eq(mp_shm_new(&t, name, 10), MP_EEXIST);
  cr_assert_eq(mp_shm_open(&t, name), 0, "%s", mp_last_error_message());
  cr_expect_eq(mp_shm_size(t), 10000);
  memcpy(b, "shared", 7);
  cr_expect_str_eq((char *)mp_shm_buf(t), "shared", "same memory");
  mp_shm_free(t);
  cr_expect_eq(mp_shm_new(&t, "", 10), MP_EINVAL);
  cr_expect_eq(mp_shm_new(&t, name, 0), MP_EINVAL);
  cr_expect_eq(mp_shm_open(&t, NULL), MP_EINVAL);
#if !defined(_WIN32)
  cr_expect_eq(mp_shm_new(&t, "a/b", 10), MP_EINVAL);
  cr_expect_eq(mp_shm_unlink(s), 0);
  cr_expect_eq(mp_shm_open(&t, name), MP_ENOENT, "unlinked");
  cr_expect_eq(mp_shm_unlink(s), MP_ENOENT);
  cr_expect_str_eq((char *)mp_shm_buf(s), "shared", "mapping lives on");
#endif
  mp_shm_free(s);
  char missing[64];
  unique_name(missing, sizeof missing, "none");
  cr_expect_eq(mp_shm_open(&t, missing), MP_ENOENT);
}

Test(shm, generated_and_long_names, .timeout = TS_TIMEOUT) {
  mp_shm *s, *t;
  cr_assert_eq(mp_shm_new(&s, NULL, 100), 0);
  const char *gen = mp_shm_name(s);
  char want[32];
  snprintf(want, sizeof want, "mp-%lld-", (long long)mp_getpid());
  cr_expect_eq(strncmp(gen, want, strlen(want)), 0, "pid-tagged: %s", gen);
  mp_shm *s2;
  cr_assert_eq(mp_shm_new(&s2, NULL, 100), 0);
  cr_expect_str_neq(mp_shm_name(s2), gen, "random");
  mp_shm_free(s2);
  /* Longer than macOS allows: hashed, the same way in every process. */
  char longname[200];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  memcpy(longname, "mpt-", 4);
  snprintf(longname + 4, 20, "%lld", (long long)mp_getpid());
  longname[strlen(longname)] = 'y';
  cr_assert_eq(mp_shm_new(&t, longname, 64), 0, "%s",
               mp_last_error_message());
  mp_shm *u;
  cr_assert_eq(mp_shm_open(&u, longname), 0);
  cr_expect_str_eq(mp_shm_name(u), longname);
  mp_shm_free(u);
  mp_shm_free(t);
  mp_shm_free(s);
}

/* Polls whether a name can still be attached (cleanup happens in the
 * tracker process, a moment after the last user leaves). */
static int name_gone(void *name) {
  mp_shm *s;
  int rc = mp_shm_open(&s, name);
  if (rc == 0)
    mp_shm_free(s);
  return rc == MP_ENOENT;
}

Test(shm, removed_when_the_last_user_leaves, .timeout = TS_TIMEOUT) {
  char name[64];
  unique_name(name, sizeof name, "last");
  mp_shm *s, *t;
  cr_assert_eq(mp_shm_new(&s, name, 4096), 0);
  cr_assert_eq(mp_shm_open(&t, name), 0);
  mp_shm_free(s); /* the creator leaves first: the attacher keeps it */
  cr_expect_eq(name_gone(name), 0, "still used");
  mp_shm_free(t);
  cr_expect(ts_poll_until(name_gone, name, 10.0), "removed");
}

/* A child attaches by name and writes; another gets the segment in its
 * args; both may be killed: the name still goes with the last user. */
static int attach_and_write(const mp_args *a) {
  mp_shm *s;
  if (mp_shm_open(&s, mp_args_str(a, 0)) != 0)
    return 90;
  strcpy(mp_shm_buf(s), "by name");
  mp_event *ready = mp_args_event(a, 1);
  mp_event_set(ready);
  if (mp_args_int(a, 2))
    ts_block_forever(); /* to be killed while attached */
  mp_shm_free(s);
  return 0;
}

static int write_via_args(const mp_args *a) {
  mp_shm *s = mp_args_shm(a, 0);
  if (s == NULL)
    return 90;
  strcpy((char *)mp_shm_buf(s) + 100, mp_shm_name(s));
  return 0;
}

static void check_shm_in_children(const char *method) {
  char name[64];
  unique_name(name, sizeof name, method);
  mp_shm *s;
  mp_event *ready;
  cr_assert_eq(mp_shm_new(&s, name, 4096), 0);
  cr_assert_eq(mp_event_new(&ready), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_str(a, name);
  mp_args_add_event(a, ready);
  mp_args_add_int(a, 0);
  mp_process *p = ts_start(method, attach_and_write, a);
  mp_args_free(a);
  cr_expect_eq(ts_join(p), 0);
  cr_expect_str_eq((char *)mp_shm_buf(s), "by name");
  mp_process_free(p);
  mp_args_new(&a);
  cr_assert_eq(mp_args_add_shm(a, s), 0);
  p = ts_start(method, write_via_args, a);
  mp_args_free(a);
  cr_expect_eq(ts_join(p), 0);
  cr_expect_str_eq((char *)mp_shm_buf(s) + 100, name);
  mp_process_free(p);
  /* A user killed while attached: after it and us, nothing is left. */
  mp_event_clear(ready);
  mp_args_new(&a);
  mp_args_add_str(a, name);
  mp_args_add_event(a, ready);
  mp_args_add_int(a, 1);
  p = ts_start(method, attach_and_write, a);
  mp_args_free(a);
  cr_assert_eq(mp_event_wait(ready, 30.0), 0);
  mp_shm_free(s); /* creator leaves; the child is the last user */
  cr_expect_eq(name_gone(name), 0, "the child still uses it");
  mp_process_kill(p);
  ts_join(p);
  cr_expect(ts_poll_until(name_gone, name, 10.0),
            "removed after its last user was killed");
  mp_process_free(p);
  mp_event_free(ready);
}
FOR_EACH_METHOD(check_shm_in_children)

/* The creator is killed: the attached parent keeps it, then it goes. */
static int create_and_block(const mp_args *a) {
  mp_shm *s;
  if (mp_shm_new(&s, mp_args_str(a, 0), 1000) != 0)
    return 90;
  strcpy(mp_shm_buf(s), "from the creator");
  mp_event_set(mp_args_event(a, 1));
  ts_block_forever();
  return 0;
}

static void check_shm_creator_killed(const char *method) {
  char name[64];
  unique_name(name, sizeof name, "ck");
  mp_event *ready;
  cr_assert_eq(mp_event_new(&ready), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_str(a, name);
  mp_args_add_event(a, ready);
  mp_process *p = ts_start(method, create_and_block, a);
  mp_args_free(a);
  cr_assert_eq(mp_event_wait(ready, 30.0), 0);
  mp_shm *s;
  cr_assert_eq(mp_shm_open(&s, name), 0, "%s", mp_last_error_message());
  mp_process_kill(p);
  ts_join(p);
  cr_expect_str_eq((char *)mp_shm_buf(s), "from the creator");
  cr_expect_eq(name_gone(name), 0, "an attacher does not lose it");
  mp_shm_free(s);
  cr_expect(ts_poll_until(name_gone, name, 10.0), "removed at the end");
  mp_process_free(p);
  mp_event_free(ready);
}
FOR_EACH_METHOD(check_shm_creator_killed)

/* ---- a creator killed inside mp_shm_new; other users (issue 15) --------- */

#if !defined(_WIN32)

/* Test-only hooks of src/posix/shm.c (documented there). */
#define KILL_AT_ENV "MPROC_TEST_SHM_KILL_AT"  /* SIGKILL at stage k */
#define TRACE_ENV "MPROC_TEST_SHM_TRACE"      /* trackers log pid, address */
#define PEER_UID_ENV "MPROC_TEST_SHM_PEER_UID" /* trackers accept only it */

/* The name is gone from the OS (not just unattachable: a segment left
 * half-made has no header, and mp_shm_open would wait for one). */
static int os_name_gone(void *name) {
  char os[80];
  snprintf(os, sizeof os, "/%s", (const char *)name);
  int fd = shm_open(os, O_RDONLY, 0);
  if (fd >= 0)
    close(fd);
  return fd < 0 && errno == ENOENT;
}

static void os_name_remove(const char *name) {
  char os[80];
  snprintf(os, sizeof os, "/%s", name);
  shm_unlink(os);
}

/* The trackers logged in `path` (TRACE_ENV): up to cap pids, and the
 * address of the last one.  Returns how many. */
static int read_trace(const char *path, long *pids, int cap, char *addr,
                      size_t acap) {
  char buf[8192];
  if (ts_read_file(path, buf, sizeof buf) < 0)
    return 0;
  int n = 0;
  for (char *line = strtok(buf, "\n"); line != NULL && n < cap;
       line = strtok(NULL, "\n")) {
    char *sp = strchr(line, ' ');
    if (sp == NULL)
      continue;
    *sp = '\0';
    pids[n++] = atol(line);
    if (addr != NULL)
      snprintf(addr, acap, "%s", sp + 1);
  }
  return n;
}

static void sleep_seconds(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* Runs in a fresh child H, made a subreaper on Linux so that every
 * descendant of the creator (the tracker included) becomes H's child once
 * orphaned.  H forks a creator C that calls mp_shm_new(name, size) with
 * the trace hook on and is killed at hook stage `stage` (>= 0) or `delay`
 * seconds after it starts (stage < 0).  H reaps C, then every other
 * descendant: all must end on their own within 10 s.
 * Exit: 0 C was killed, 1 C finished mp_shm_new first (and exited, which
 * releases the segment all the same); 10.. failures: 10 prctl, 11 pipe or
 * fork, 12 C ended some other way, 13 a descendant was left running;
 * 30 + n: mp_shm_new failed with -n. */
static int kill_harness(const char *name, size_t size, int stage,
                        double delay, const char *trace) {
#  if defined(__linux__)
  if (prctl(PR_SET_CHILD_SUBREAPER, 1L, 0L, 0L, 0L) != 0)
    return 10;
#  endif
  int p[2];
  if (pipe(p) != 0)
    return 11;
  pid_t c = fork();
  if (c < 0)
    return 11;
  if (c == 0) {
    close(p[0]);
    char k[16];
    snprintf(k, sizeof k, "%d", stage);
    if (stage >= 0)
      setenv(KILL_AT_ENV, k, 1);
    setenv(TRACE_ENV, trace, 1);
    (void)!write(p[1], "g", 1);
    mp_shm *s;
    int rc = mp_shm_new(&s, name, size);
    _exit(rc == 0 ? 0 : 30 + (-rc & 63)); /* our end releases the segment */
  }
  close(p[1]);
  char g;
  (void)!read(p[0], &g, 1);
  close(p[0]);
  if (stage < 0) {
    sleep_seconds(delay); /* not synchronisation: where the kill lands */
    kill(c, SIGKILL);
  }
  int st;
  while (waitpid(c, &st, 0) < 0 && errno == EINTR)
    ;
  int killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
  if (!killed && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
    return WIFEXITED(st) && WEXITSTATUS(st) >= 30 ? WEXITSTATUS(st) : 12;
  double end = ts_now() + 10.0;
  for (;;) { /* every descendant must end by itself */
    pid_t w = waitpid(-1, &st, WNOHANG);
    if (w < 0 && errno == ECHILD)
      break;
    if (w == 0 && ts_now() > end)
      return 13;
    if (w == 0)
      sleep_seconds(0.001); /* polling with a deadline */
  }
  return killed ? 0 : 1;
}

/* Run kill_harness in a child (so that the subreaper setting and the
 * reaping stay out of the test's process); its exit code, -1 if stuck. */
static int run_kill(const char *name, size_t size, int stage, double delay,
                    const char *trace) {
  fflush(NULL);
  pid_t h = fork();
  cr_assert_geq(h, 0, "fork");
  if (h == 0)
    _exit(kill_harness(name, size, stage, delay, trace));
  double end = ts_now() + 40.0;
  int st;
  for (;;) {
    pid_t w = waitpid(h, &st, WNOHANG);
    if (w == h)
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (ts_now() > end) {
      kill(h, SIGKILL);
      waitpid(h, &st, 0);
      return -1;
    }
    sleep_seconds(0.001);
  }
}

/* After a run: the name is gone, every tracker logged has ended (killed
 * here if not, so that a failure leaves no stray), and the name can be
 * created again.  1 when all held. */
static int check_clean(const char *name, const char *trace,
                        const char *what) {
  int ok = ts_poll_until(os_name_gone, (void *)name, 10.0);
  cr_expect(ok, "%s: the name is removed", what);
  long pids[64];
  int n = read_trace(trace, pids, 64, NULL, 0);
  remove(trace);
  for (int i = 0; i < n; i++) {
    int gone = ts_wait_pid_gone(pids[i], 10.0);
    cr_expect(gone, "%s: tracker %ld has ended", what, pids[i]);
    if (!gone)
      kill((pid_t)pids[i], SIGKILL);
    ok &= gone;
  }
  mp_shm *s;
  int rc = mp_shm_new(&s, name, 4096);
  cr_expect_eq(rc, 0, "%s: the name can be created again: %s", what,
               rc == 0 ? "" : mp_last_error_message());
  if (rc == 0)
    mp_shm_free(s);
  if (!ts_poll_until(os_name_gone, (void *)name, 10.0))
    os_name_remove(name); /* leave nothing for the next round */
  return ok && rc == 0;
}

#  define KILL_SIZE ((size_t)32 << 20) /* large: sizing takes a while */

/* The creator is killed at every stage of mp_shm_new (the test-only hook
 * MPROC_TEST_SHM_KILL_AT), until a stage number past the last lets it
 * finish. */
Test(shm, creator_killed_at_every_stage, .timeout = TS_TIMEOUT) {
  char name[64], trace[256];
  unique_name(name, sizeof name, "ks");
  ts_temp_path(trace, sizeof trace, "shmtrace");
  int k;
  for (k = 0; k < 64; k++) {
    remove(trace);
    int r = run_kill(name, KILL_SIZE, k, 0, trace);
    char what[32];
    snprintf(what, sizeof what, "stage %d", k);
    cr_expect(r == 0 || r == 1, "%s: harness code %d", what, r);
    if (!check_clean(name, trace, what) || r != 0)
      break; /* the first failure says it all */
  }
  cr_expect_geq(k, 4, "the kill hook is compiled in (%d stages)", k);
}

/* The creator is killed after random delays that span the whole call. */
Test(shm, creator_killed_at_random_points, .timeout = TS_TIMEOUT) {
  char name[64], trace[256];
  unique_name(name, sizeof name, "kr");
  ts_temp_path(trace, sizeof trace, "shmtrace");
  /* How long one create takes here (the creator's fork included). */
  double t0 = ts_now();
  cr_assert_eq(run_kill(name, KILL_SIZE, 999, 0, trace), 1,
               "a create that is not killed finishes");
  double span = (ts_now() - t0) * 1.5;
  check_clean(name, trace, "calibration");
  unsigned seed = (unsigned)(ts_now() * 1000);
  srand(seed);
  int killed = 0;
  for (int i = 0; i < 60; i++) {
    double delay = span * rand() / RAND_MAX;
    char what[80];
    snprintf(what, sizeof what, "seed %u, kill %d after %.6f s", seed, i,
             delay);
    remove(trace);
    int r = run_kill(name, KILL_SIZE, -1, delay, trace);
    cr_expect(r == 0 || r == 1, "%s: harness code %d", what, r);
    killed += r == 0;
    if (!check_clean(name, trace, what) || (r != 0 && r != 1))
      break; /* the first failure says it all */
  }
  cr_expect_gt(killed, 0, "some kills landed inside the call");
}

/* Another user connects to the tracker: it must not keep the name alive
 * after the owner, its only real user, has freed it.  As root the
 * intruder is a child that becomes nobody (65534); otherwise the test-only
 * hook MPROC_TEST_SHM_PEER_UID makes the tracker take our own uid for a
 * stranger's, and the intruder is a plain child. */
Test(shm, other_users_cannot_keep_a_name, .timeout = TS_TIMEOUT) {
  char name[64], trace[256], addr[256] = "";
  unique_name(name, sizeof name, "uid");
  ts_temp_path(trace, sizeof trace, "shmtrace");
  remove(trace);
  int root = geteuid() == 0;
  int to_i[2], from_i[2];
  cr_assert_eq(pipe(to_i), 0);
  cr_assert_eq(pipe(from_i), 0);
  fflush(NULL);
  pid_t in = fork(); /* before the segment: it inherits no connection */
  cr_assert_geq(in, 0);
  if (in == 0) {
    close(to_i[1]);
    close(from_i[0]);
    char a[256] = "";
    if (read(to_i[0], a, sizeof a - 1) <= 0)
      _exit(1);
    if (root && (setgroups(0, NULL) != 0 || setgid(65534) != 0 ||
                 setuid(65534) != 0 || getuid() != 65534)) {
      (void)!write(from_i[1], "S", 1);
      _exit(1);
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(a);
    if (n == 0 || n >= sizeof sa.sun_path)
      _exit(1);
    memcpy(sa.sun_path, a, n);
    if (a[0] == '@')
      sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    char rep[2] = {'C', 0};
    if (connect(fd, (struct sockaddr *)&sa,
                (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) !=
        0) {
      rep[0] = 'N'; /* refused at once: as good */
    } else {
      struct pollfd p = {fd, POLLIN, 0};
      if (poll(&p, 1, 10000) != 1)
        rep[1] = 'T';
      else if (read(fd, &rep[1], 1) != 1)
        rep[1] = 'E'; /* closed on us; 'U': told so; 'A': welcomed */
    }
    (void)!write(from_i[1], rep, 2);
    ts_block_forever(); /* holding the connection, if it was kept */
  }
  close(to_i[0]);
  close(from_i[1]);
  char uid[32];
  snprintf(uid, sizeof uid, "%ld", (long)geteuid() + 1);
  if (!root)
    ts_setenv(PEER_UID_ENV, uid);
  ts_setenv(TRACE_ENV, trace);
  mp_shm *s;
  int rc = mp_shm_new(&s, name, 4096);
  ts_unsetenv(TRACE_ENV);
  ts_unsetenv(PEER_UID_ENV);
  cr_assert_eq(rc, 0, "%s", mp_last_error_message());
  long pid = 0;
  cr_assert_eq(read_trace(trace, &pid, 1, addr, sizeof addr), 1,
               "the tracker logged itself");
  remove(trace);
  cr_assert_eq(write(to_i[1], addr, strlen(addr)), (ssize_t)strlen(addr));
  char rep[2] = {0, 0};
  struct pollfd p = {from_i[0], POLLIN, 0};
  cr_assert_eq(poll(&p, 1, 20000), 1, "the intruder reports");
  cr_assert_eq(read(from_i[0], rep, 2), 2);
  cr_expect_neq(rep[0], 'S', "could not become nobody");
  cr_expect(rep[0] == 'N' || rep[1] == 'E' || rep[1] == 'U',
            "the tracker refuses another uid (%c%c)", rep[0],
            rep[1] ? rep[1] : '0');
  mp_shm_free(s); /* the owner leaves: nobody else counts */
  cr_expect(ts_poll_until(os_name_gone, name, 10.0),
            "the name is removed although a stranger is connected");
  cr_expect(ts_wait_pid_gone(pid, 10.0), "the tracker has ended");
  kill(in, SIGKILL);
  waitpid(in, NULL, 0);
  close(to_i[1]);
  close(from_i[0]);
  if (!os_name_gone(name))
    os_name_remove(name);
  kill((pid_t)pid, SIGKILL); /* in case it failed: no stray */
}

#else /* _WIN32 */

/* Windows: a named mapping is reference-counted by the kernel (no tracker,
 * no stages, no uid: another user needs the DACL's consent to open it), so
 * the promise to test is that a creator killed inside mp_shm_new leaves
 * nothing: a new create of the name succeeds once it is gone. */
static int create_big(const mp_args *a) {
  mp_event_set(mp_args_event(a, 1));
  mp_shm *s;
  if (mp_shm_new(&s, mp_args_str(a, 0), (size_t)32 << 20) != 0)
    return 90;
  ts_block_forever();
  return 0;
}

static int can_create(void *name) {
  mp_shm *s;
  if (mp_shm_new(&s, name, 4096) != 0)
    return 0;
  mp_shm_free(s);
  return 1;
}

Test(shm, creator_killed_at_random_points, .timeout = TS_TIMEOUT) {
  char name[64];
  unique_name(name, sizeof name, "kr");
  srand((unsigned)(ts_now() * 1000));
  for (int i = 0; i < 4; i++) {
    mp_event *started;
    cr_assert_eq(mp_event_new(&started), 0);
    mp_args *a;
    mp_args_new(&a);
    mp_args_add_str(a, name);
    mp_args_add_event(a, started);
    mp_process *p = ts_start("spawn", create_big, a);
    mp_args_free(a);
    cr_assert_eq(mp_event_wait(started, 30.0), 0);
    Sleep((DWORD)(rand() % 20)); /* not synchronisation: where it lands */
    mp_process_kill(p);
    ts_join(p);
    cr_expect(ts_poll_until(can_create, name, 10.0),
              "kill %d: the name can be created again", i);
    mp_process_free(p);
    mp_event_free(started);
  }
}

#endif
