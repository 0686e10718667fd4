/*
 * test_args.c - mp_args: building, reading, types, ranges and misuse.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "mproc.h"
#include "support.h"

TS_SUITE(args);

Test(args, pack_and_unpack) {
  mp_args *a;
  cr_assert_eq(mp_args_pack(&a, "iIdsy", 5, INT64_MIN, -0.5, "héllo",
                            "ab\0c", (size_t)4),
               0);
  cr_expect_eq(mp_args_count(a), 5);
  cr_expect_eq(mp_args_type(a, 0), MP_ARG_INT);
  cr_expect_eq(mp_args_type(a, 2), MP_ARG_DOUBLE);
  cr_expect_eq(mp_args_type(a, 3), MP_ARG_STR);
  cr_expect_eq(mp_args_type(a, 4), MP_ARG_BYTES);
  int i;
  int64_t big;
  double d;
  const char *s;
  const void *b;
  size_t n;
  cr_assert_eq(mp_args_unpack(a, "iIdsy", &i, &big, &d, &s, &b, &n), 0);
  cr_expect_eq(i, 5);
  cr_expect_eq(big, INT64_MIN);
  cr_expect_eq(d, -0.5);
  cr_expect_str_eq(s, "héllo");
  cr_expect_eq(n, 4);
  cr_expect_eq(memcmp(b, "ab\0c", 4), 0);
  mp_args_free(a);
}

Test(args, add_and_lenient_getters) {
  mp_args *a;
  cr_assert_eq(mp_args_new(&a), 0);
  cr_expect_eq(mp_args_count(a), 0);
  cr_assert_eq(mp_args_add_int(a, 1), 0);
  cr_assert_eq(mp_args_add_double(a, INFINITY), 0);
  cr_assert_eq(mp_args_add_str(a, ""), 0);
  cr_assert_eq(mp_args_add_bytes(a, NULL, 0), 0);
  cr_expect_eq(mp_args_int(a, 0), 1);
  cr_expect(isinf(mp_args_double(a, 1)));
  cr_expect_str_eq(mp_args_str(a, 2), "");
  size_t n = 99;
  cr_expect_not_null(mp_args_bytes(a, 3, &n));
  cr_expect_eq(n, 0);
  /* Wrong type or index: 0 / NULL, with the reason recorded. */
  cr_expect_eq(mp_args_int(a, 2), 0);
  cr_expect(strstr(mp_last_error_message(), "type") != NULL);
  cr_expect_null(mp_args_str(a, 0));
  cr_expect_null(mp_args_str(a, 17));
  cr_expect(strstr(mp_last_error_message(), "out of range") != NULL);
  cr_expect_null(mp_args_bytes(a, 0, &n));
  cr_expect_eq(n, 0);
  cr_expect_eq(mp_args_type(a, 4), MP_ERANGE);
  mp_args_free(a);
}

Test(args, copy_is_deep) {
  mp_args *a, *b;
  char s[] = "original";
  mp_args_pack(&a, "s", s);
  s[0] = 'X'; /* strings are copied at add time */
  cr_assert_eq(mp_args_copy(&b, a), 0);
  mp_args_free(a);
  cr_expect_str_eq(mp_args_str(b, 0), "original");
  mp_args_free(b);
}

Test(args, misuse) {
  mp_args *a;
  cr_expect_eq(mp_args_new(NULL), MP_EINVAL);
  cr_expect_eq(mp_args_pack(&a, "q", 1), MP_EINVAL);
  cr_expect_eq(mp_args_pack(&a, NULL), MP_EINVAL);
  cr_assert_eq(mp_args_pack(&a, "is", 1, "x"), 0);
  cr_expect_eq(mp_args_add_str(a, NULL), MP_EINVAL);
  cr_expect_eq(mp_args_add_bytes(a, NULL, 3), MP_EINVAL);
  cr_expect_eq(mp_args_add_int(NULL, 3), MP_EINVAL);
  int i;
  const char *s;
  double d;
  cr_expect_eq(mp_args_unpack(a, "i", &i), MP_EINVAL, "count differs");
  cr_expect_eq(mp_args_unpack(a, "ds", &d, &s), MP_ETYPE);
  cr_expect_eq(mp_args_unpack(a, "iz", &i, &s), MP_EINVAL, "bad format");
  cr_expect_eq(mp_args_unpack(NULL, "i", &i), MP_EINVAL);
  mp_args_free(a);
  cr_assert_eq(mp_args_pack(&a, "I", INT64_C(1) << 40), 0);
  cr_expect_eq(mp_args_unpack(a, "i", &i), MP_ERANGE, "does not fit int");
  mp_args_free(a);
  mp_args_free(NULL);
  cr_expect_eq(mp_args_count(NULL), 0);
}

Test(args, many_items) {
  mp_args *a;
  mp_args_new(&a);
  for (int i = 0; i < 10000; i++)
    cr_assert_eq(mp_args_add_int(a, i * 3), 0);
  cr_expect_eq(mp_args_count(a), 10000);
  cr_expect_eq(mp_args_int(a, 9999), 29997);
  mp_args_free(a);
}

Test(args, none_and_nested_tuples) {
  mp_args *inner, *a;
  cr_assert_eq(mp_args_pack(&inner, "is", 7, "seven"), 0);
  cr_assert_eq(mp_args_new(&a), 0);
  cr_assert_eq(mp_args_add_none(a), 0);
  cr_assert_eq(mp_args_add_tuple(a, inner), 0);
  cr_assert_eq(mp_args_add_int(a, 3), 0);
  cr_assert_eq(mp_args_count(a), 3);
  cr_expect_eq(mp_args_type(a, 0), MP_ARG_NONE);
  cr_expect_eq(mp_args_type(a, 1), MP_ARG_TUPLE);
  const mp_args *t = mp_args_tuple(a, 1);
  cr_assert_not_null(t);
  cr_expect_eq(t, mp_args_tuple(a, 1)); /* the same view each time */
  cr_expect_eq(mp_args_count(t), 2);
  cr_expect_eq(mp_args_int(t, 0), 7);
  cr_expect_str_eq(mp_args_str(t, 1), "seven");
  /* Wrong item type or index: NULL with the error set. */
  cr_expect_null(mp_args_tuple(a, 0));
  cr_expect_null(mp_args_tuple(a, 9));
  /* Tuples nest, and copies carry them. */
  mp_args *outer, *c;
  cr_assert_eq(mp_args_new(&outer), 0);
  cr_assert_eq(mp_args_add_tuple(outer, a), 0);
  cr_assert_eq(mp_args_copy(&c, outer), 0);
  const mp_args *t2 = mp_args_tuple(mp_args_tuple(c, 0), 1);
  cr_assert_not_null(t2);
  cr_expect_str_eq(mp_args_str(t2, 1), "seven");
  /* Misuse. */
  cr_expect_eq(mp_args_add_tuple(a, NULL), MP_EINVAL);
  cr_expect_eq(mp_args_add_tuple(a, a), MP_EINVAL);
  cr_expect_eq(mp_args_add_none(NULL), MP_EINVAL);
  mp_lock *l;
  cr_assert_eq(mp_lock_new(&l), 0);
  mp_args *withobj;
  mp_args_new(&withobj);
  mp_args_add_lock(withobj, l);
  cr_expect_eq(mp_args_add_tuple(a, withobj), MP_ETYPE);
  mp_args_free(withobj);
  mp_lock_free(l);
  mp_args_free(c);
  mp_args_free(outer);
  mp_args_free(a);
  mp_args_free(inner);
}

/* Every kind of object has a letter in mp_args_pack and mp_args_unpack
 * (issue 16: Python's args=(num, arr, i) in one call). */
Test(args, object_letters, .timeout = TS_TIMEOUT) {
  mp_conn *r, *w;
  mp_lock *l;
  mp_semaphore *s;
  mp_event *e;
  mp_condition *c;
  mp_barrier *b;
  mp_queue *q;
  mp_value *v;
  mp_array *arr;
  mp_shm *m;
  cr_assert_eq(mp_pipe(1, &r, &w), 0);
  cr_assert_eq(mp_lock_new(&l), 0);
  cr_assert_eq(mp_semaphore_new(&s, 2), 0);
  cr_assert_eq(mp_event_new(&e), 0);
  cr_assert_eq(mp_condition_new(&c, NULL), 0);
  cr_assert_eq(mp_barrier_new(&b, 2, NULL, MP_FOREVER), 0);
  cr_assert_eq(mp_queue_new(&q, 0), 0);
  cr_assert_eq(mp_value_new(&v, 'i', NULL), 0);
  cr_assert_eq(mp_array_new(&arr, 'd', 4, NULL), 0);
  cr_assert_eq(mp_shm_new(&m, NULL, 64), 0, "%s", mp_last_error_message());
  mp_args *a;
  cr_assert_eq(mp_args_pack(&a, "CLSEWBQVAMin", r, l, s, e, c, b, q, v, arr,
                            m, 7),
               0, "%s", mp_last_error_message());
  cr_assert_eq(mp_args_count(a), 12);
  mp_conn *r2;
  mp_lock *l2;
  mp_semaphore *s2;
  mp_event *e2;
  mp_condition *c2;
  mp_barrier *b2;
  mp_queue *q2;
  mp_value *v2;
  mp_array *arr2;
  mp_shm *m2;
  int i;
  cr_assert_eq(mp_args_unpack(a, "CLSEWBQVAMin", &r2, &l2, &s2, &e2, &c2,
                              &b2, &q2, &v2, &arr2, &m2, &i),
               0, "%s", mp_last_error_message());
  cr_expect(r2 == r && l2 == l && s2 == s && e2 == e && c2 == c);
  cr_expect(b2 == b && q2 == q && v2 == v && arr2 == arr && m2 == m);
  cr_expect_eq(i, 7);
  char text[256];
  int n = mp_args_repr(a, text, sizeof text);
  const char *expect = "(<Connection>, <Lock>, <Semaphore>, <Event>, "
                       "<Condition>, <Barrier>, <Queue>, <Value>, <Array>, "
                       "<SharedMemory>, 7, None)";
  cr_expect_str_eq(text, expect);
  cr_expect_eq(n, (int)strlen(expect));
  /* The wrong letter for an object, or a value for an object. */
  cr_expect_eq(mp_args_unpack(a, "QLSEWBQVAMin", &q2, &l2, &s2, &e2, &c2,
                              &b2, &q2, &v2, &arr2, &m2, &i),
               MP_ETYPE);
  cr_expect_eq(mp_args_unpack(a, "CLSEWBQVAMLn", &r2, &l2, &s2, &e2, &c2,
                              &b2, &q2, &v2, &arr2, &m2, &l2),
               MP_ETYPE);
  cr_expect_eq(mp_args_unpack(a, "CLSEWBQVAMii", &r2, &l2, &s2, &e2, &c2,
                              &b2, &q2, &v2, &arr2, &m2, &i, &i),
               MP_ETYPE, "None is not an int");
  mp_args_free(a);
  /* Packing a NULL object fails, and frees what was built. */
  a = (mp_args *)1;
  cr_expect_eq(mp_args_pack(&a, "iQ", 1, (mp_queue *)NULL), MP_EINVAL);
  cr_expect_null(a);
  cr_expect_eq(mp_args_pack(&a, "iZ", 1), MP_EINVAL);
  mp_conn_free(r);
  mp_conn_free(w);
  mp_lock_free(l);
  mp_semaphore_free(s);
  mp_event_free(e);
  mp_condition_free(c);
  mp_barrier_free(b);
  mp_queue_free(q);
  mp_value_free(v);
  mp_array_free(arr);
  mp_shm_free(m);
}

/* Python's repr of a tuple: quoting, escapes, floats, nesting. */
Test(args, repr_like_python) {
  mp_args *a, *t;
  cr_assert_eq(mp_args_pack(&t, "is", 1, "x"), 0);
  cr_assert_eq(mp_args_pack(&a, "idddddsssyn", -3, 2.0, 0.1, 1e16, 1.5e-5,
                            -1.0 / 3, "it's", "say \"hi\"", "a\tb\n\x01é",
                            "\x00\xff'", (size_t)3),
               0);
  cr_assert_eq(mp_args_add_tuple(a, t), 0);
  char text[512];
  mp_args_repr(a, text, sizeof text);
  cr_expect_str_eq(text, "(-3, 2.0, 0.1, 1e+16, 1.5e-05, "
                         "-0.3333333333333333, \"it's\", 'say \"hi\"', "
                         "'a\\tb\\n\\x01é', b\"\\x00\\xff'\", None, "
                         "(1, 'x'))");
  /* Truncation: at most cap - 1 characters, the whole length returned. */
  char tiny[6];
  int n = mp_args_repr(a, tiny, sizeof tiny);
  cr_expect_str_eq(tiny, "(-3, ");
  cr_expect_eq(n, (int)strlen(text));
  cr_expect_eq(mp_args_repr(a, NULL, 0), n, "a size query");
  mp_args *one, *none;
  cr_assert_eq(mp_args_pack(&one, "d", 123456789.0), 0);
  mp_args_repr(one, text, sizeof text);
  cr_expect_str_eq(text, "(123456789.0,)");
  cr_assert_eq(mp_args_new(&none), 0);
  mp_args_repr(none, text, sizeof text);
  cr_expect_str_eq(text, "()");
  cr_expect_eq(mp_args_repr(NULL, text, sizeof text), MP_EINVAL);
  cr_expect_eq(mp_args_repr(none, NULL, 5), MP_EINVAL);
  mp_args_free(none);
  mp_args_free(one);
  mp_args_free(a);
  mp_args_free(t);
}
