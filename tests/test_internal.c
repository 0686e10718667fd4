/*
 * test_internal.c - the encoded form of mp_args: object references (the
 * slot later subsystems use) and decoding of malformed bytes, which must
 * be refused with MP_EPROTO and never read out of bounds.  Built from the
 * library's sources, since these functions are not exported.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "support.h"

TS_SUITE(args_wire);

static mp_args *roundtrip(const mp_args *a) {
  size_t n;
  const void *p = mp__args_data(a, &n);
  mp_args *b = NULL;
  cr_assert_eq(mp__args_from_bytes(&b, p, n), 0, "%s",
               mp_last_error_message());
  return b;
}

Test(args_wire, object_reference_roundtrip) {
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_int(a, 9);
  cr_assert_eq(mp__args_add_object(a, 7, "queue:/mp-1234", 14, NULL), 0);
  mp_args *b = roundtrip(a);
  cr_expect_eq(mp_args_type(b, 1), MP_ARG_OBJECT);
  uint32_t kind;
  const void *blob;
  size_t n;
  cr_assert_eq(mp__args_get_object(b, 1, &kind, &blob, &n), 0);
  cr_expect_eq(kind, 7);
  cr_expect_eq(n, 14);
  cr_expect_eq(memcmp(blob, "queue:/mp-1234", 14), 0);
  cr_expect_eq(mp__args_get_object(b, 0, &kind, &blob, &n), MP_ETYPE);
  cr_expect_eq(mp_args_int(b, 0), 9);
  mp_args_free(a);
  mp_args_free(b);
}

Test(args_wire, every_truncation_is_refused) {
  mp_args *a;
  mp_args_pack(&a, "isyd", 1, "text", "bytes", (size_t)5, 1.5);
  mp__args_add_object(a, 3, "blob", 4, NULL);
  size_t n;
  const unsigned char *p = mp__args_data(a, &n);
  for (size_t cut = 0; cut < n; cut++) {
    /* Copy into an exact-size heap block so that ASan/valgrind would see
     * any read past the end. */
    unsigned char *q = malloc(cut ? cut : 1);
    memcpy(q, p, cut);
    mp_args *b = NULL;
    cr_expect_eq(mp__args_from_bytes(&b, q, cut), MP_EPROTO, "cut %zu", cut);
    cr_expect_null(b);
    free(q);
  }
  mp_args_free(a);
}

Test(args_wire, forged_fields_are_refused) {
  mp_args *a;
  mp_args_pack(&a, "s", "abc");
  size_t n;
  const unsigned char *p = mp__args_data(a, &n);
  unsigned char q[64];
  memcpy(q, p, n);
  mp_args *b = NULL;

  q[0] = 'X'; /* magic */
  cr_expect_eq(mp__args_from_bytes(&b, q, n), MP_EPROTO);
  memcpy(q, p, n);
  q[4] = 200; /* count far beyond the data */
  cr_expect_eq(mp__args_from_bytes(&b, q, n), MP_EPROTO);
  memcpy(q, p, n);
  q[8] = 77; /* unknown type */
  cr_expect_eq(mp__args_from_bytes(&b, q, n), MP_EPROTO);
  memcpy(q, p, n);
  q[9] = 0xff; /* string length past the end */
  q[12] = 0x7f;
  cr_expect_eq(mp__args_from_bytes(&b, q, n), MP_EPROTO);
  memcpy(q, p, n);
  q[13] = '\0'; /* NUL inside the string */
  cr_expect_eq(mp__args_from_bytes(&b, q, n), MP_EPROTO);
  memcpy(q, p, n);
  q[n - 1] = 'z'; /* missing terminator */
  cr_expect_eq(mp__args_from_bytes(&b, q, n), MP_EPROTO);
  memcpy(q, p, n);
  q[n] = 0; /* trailing byte */
  cr_expect_eq(mp__args_from_bytes(&b, q, n + 1), MP_EPROTO);
  cr_expect_eq(mp__args_from_bytes(&b, NULL, 0), MP_EPROTO);
  cr_expect_null(b);
  mp_args_free(a);
}

Test(args_wire, random_bytes_never_crash) {
  unsigned char buf[256];
  unsigned seed = 12345;
  int accepted = 0;
  for (int round = 0; round < 20000; round++) {
    size_t n = 8 + (seed % 64);
    memcpy(buf, "MPA1", 4);
    for (size_t i = 4; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      buf[i] = (unsigned char)(seed >> 16);
    }
    buf[5] = buf[6] = buf[7] = 0; /* small counts, so some decode */
    buf[4] %= 4;
    mp_args *b = NULL;
    int rc = mp__args_from_bytes(&b, buf, n);
    cr_assert(rc == 0 || rc == MP_EPROTO);
    if (rc == 0) {
      accepted++;
      for (size_t i = 0; i < mp_args_count(b); i++)
        cr_assert_gt(mp_args_type(b, i), 0);
      mp_args_free(b);
    }
  }
  cr_log_info("random buffers accepted: %d of 20000", accepted);
}

Test(args_wire, nested_tuples_are_validated) {
  mp_args *inner, *a;
  mp_args_pack(&inner, "is", 1, "x");
  mp_args_new(&a);
  mp_args_add_none(a);
  mp_args_add_tuple(a, inner);
  size_t n;
  const unsigned char *p = mp__args_data(a, &n);
  mp_args *b = roundtrip(a);
  cr_expect_eq(mp_args_type(b, 0), MP_ARG_NONE);
  cr_expect_eq(mp_args_int(mp_args_tuple(b, 1), 0), 1);
  mp_args_free(b);
  /* A nested tuple whose own bytes are damaged is refused whole. */
  unsigned char q[128];
  cr_assert_leq(n, sizeof q);
  memcpy(q, p, n);
  q[9 + 5] = 'X'; /* the inner magic: after none (1) and the tuple head (5) */
  cr_expect_eq(mp__args_from_bytes(&b, q, n), MP_EPROTO);
  memcpy(q, p, n);
  q[n - 2] = 'q'; /* the inner string loses its terminator */
  q[n - 1] = 'q';
  cr_expect_eq(mp__args_from_bytes(&b, q, n), MP_EPROTO);
  for (size_t cut = 0; cut < n; cut++)
    cr_expect_eq(mp__args_from_bytes(&b, p, cut), MP_EPROTO, "cut %zu", cut);
  mp_args_free(a);
  mp_args_free(inner);
  /* Tuples nested deeper than the limit are refused. */
  mp_args *t;
  mp_args_pack(&t, "i", 0);
  for (int depth = 0; depth < 40; depth++) {
    mp_args *w;
    mp_args_new(&w);
    mp_args_add_tuple(w, t);
    mp_args_free(t);
    t = w;
  }
  p = mp__args_data(t, &n);
  cr_expect_eq(mp__args_from_bytes(&b, p, n), MP_EPROTO);
  mp_args_free(t);
  /* An object inside a nested tuple (forged) is refused. */
  mp_args *o, *w;
  mp_args_new(&o);
  mp__args_add_object(o, 3, "blob", 4, NULL);
  size_t on;
  const unsigned char *op = mp__args_data(o, &on);
  mp_args_new(&w);
  mp_args_add_bytes(w, op, on); /* same layout as a tuple item but type */
  p = mp__args_data(w, &n);
  memcpy(q, p, n);
  q[8] = MP_ARG_TUPLE;
  cr_expect_eq(mp__args_from_bytes(&b, q, n), MP_EPROTO);
  mp_args_free(w);
  mp_args_free(o);
}
