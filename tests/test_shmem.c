/*
 * test_shmem.c - Value, RawValue, Array, RawArray and named shared
 * memory: typecodes and their ranges, bounds, locks, children changing
 * them under every start method, attach by name, and cleanup: a name is
 * gone once its last user has gone, also when users were killed.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

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
  cr_assert_eq(mp_lock_acquire(l, 0), 0);
  cr_expect_eq(mp_lock_locked(vl), 1, "the same lock");
  cr_expect_eq(mp_lock_acquire(vl, 0), MP_ETIMEDOUT);
  mp_lock_release(l);
  mp_lock_free(l);
  cr_expect_eq(mp_value_set_int(v, 3), 0, "the value keeps the lock alive");
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
  cr_expect_eq(mp_array_new(&a, 'd', (size_t)1 << 62, NULL), MP_EINVAL);
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
