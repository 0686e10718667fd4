/*
 * test_internal.c - the encoded form of mp_args: object references (the
 * slot later subsystems use) and decoding of malformed bytes, which must
 * be refused with MP_EPROTO and never read out of bounds.  Built from the
 * library's sources, since these functions are not exported.
 */
#include <criterion/criterion.h>
#include <stddef.h>
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

/* ---- array map descriptors (pool_array.c): hostile bytes -------------- */

#include "pool.h"

TS_SUITE(array_wire);

/* The descriptor's head as pool_array.c writes it. */
typedef struct wire_desc {
  char magic[4];
  uint32_t flags;
  uint64_t first, n;
  uint64_t in_uid, in_off, in_size;
  uint64_t out_uid, out_off, out_size;
  uint32_t acc_size, ticket_n;
  uint64_t ctx_n;
  uint64_t ctl_uid, ctl_off, ctl_shm;
  uint64_t nchunks, chunksize, least, w2;
} wire_desc;

static int twice(const void *in, void *out, size_t first, size_t n,
                 const mp_args *ctx) {
  (void)first;
  (void)ctx;
  for (size_t i = 0; i < n; i++)
    ((int32_t *)out)[i] = 2 * ((const int32_t *)in)[i];
  return 0;
}

static int run_desc(int local, const void *d, size_t n, int *status) {
  mp__arrcache *cache = NULL;
  unsigned char *acc = NULL;
  size_t acc_n = 0;
  uint32_t at = 0;
  int rc = mp__array_run(&cache, local, (void (*)(void))twice, d, n, &acc,
                         &acc_n, status, &at);
  free(acc);
  mp__array_cache_drop(&cache);
  return rc;
}

Test(array_wire, genuine_and_hostile) {
  int32_t in[16], out[16];
  for (int i = 0; i < 16; i++)
    in[i] = i;
  wire_desc h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, "MPY1", 4);
  h.flags = 2; /* local: a thread pool's */
  h.first = 4;
  h.n = 8;
  h.in_off = (uint64_t)(uintptr_t)in;
  h.in_size = 4;
  h.out_off = (uint64_t)(uintptr_t)out;
  h.out_size = 4;
  int st = -1;
  cr_assert_eq(run_desc(1, &h, sizeof h, &st), 0, "%s",
               mp_last_error_message());
  cr_assert_eq(st, 0);
  for (int i = 4; i < 12; i++)
    cr_assert_eq(out[i], 2 * i);
  /* By a counter (a map's workers take chunks in turn): all of them. */
  mpi_shm *ctl;
  cr_assert_eq(mpi_shm_new(64, &ctl), 0);
  uint64_t *slot = mpi_shm_addr(ctl); /* next, done, fail_at, a word */
  slot[2] = UINT64_MAX;
  memset(out, 0, sizeof out);
  wire_desc c = h;
  c.flags = 2 | 4;
  c.first = 0;
  c.n = 16;
  c.ctl_off = (uint64_t)(uintptr_t)slot;
  c.ctl_shm = (uint64_t)(uintptr_t)ctl;
  c.nchunks = 4;
  c.chunksize = 4;
  cr_assert_eq(run_desc(1, &c, sizeof c, &st), 0, "%s",
               mp_last_error_message());
  cr_assert_eq(st, 0);
  cr_assert_eq(slot[1], 4, "chunks done: %llu", (unsigned long long)slot[1]);
  for (int i = 0; i < 16; i++)
    cr_assert_eq(out[i], 2 * i);
  slot[0] = slot[1] = 0;
  c.nchunks = 5; /* not what 16 in chunks of 4 make */
  cr_assert_eq(run_desc(1, &c, sizeof c, &st), MP_EPROTO);
  c.chunksize = 0; /* guided, with a count that does not add up */
  c.w2 = 4;
  c.least = 1;
  c.nchunks = 1000;
  cr_assert_eq(run_desc(1, &c, sizeof c, &st), MP_EPROTO);
  c.nchunks = 1u << 30;
  cr_assert_eq(run_desc(1, &c, sizeof c, &st), MP_EPROTO);
  cr_assert_eq(slot[1], 0, "nothing ran");
  mpi_shm_free(ctl);
  /* An address is never taken from a process pool's message. */
  cr_assert_eq(run_desc(0, &h, sizeof h, &st), MP_EPROTO);
  /* Cut anywhere. */
  for (size_t k = 0; k < sizeof h; k++)
    cr_assert_eq(run_desc(1, &h, k, &st), MP_EPROTO, "cut at %zu", k);
  /* The head's claims must add up. */
  wire_desc b = h;
  memcpy(b.magic, "MPY2", 4);
  cr_assert_eq(run_desc(1, &b, sizeof b, &st), MP_EPROTO);
  b = h;
  b.ticket_n = 5;
  cr_assert_eq(run_desc(1, &b, sizeof b, &st), MP_EPROTO);
  b = h;
  b.ctx_n = 1u << 30;
  cr_assert_eq(run_desc(1, &b, sizeof b, &st), MP_EPROTO);
  b = h;
  b.acc_size = 8; /* an accumulator without D_REDUCE */
  cr_assert_eq(run_desc(1, &b, sizeof b, &st), MP_EPROTO);
  /* A process pool's message: segments named by uid and a ticket. */
  unsigned char m[sizeof h + 40];
  memset(m, 0x41, sizeof m);
  b = h;
  b.flags = 0;
  b.in_uid = 7;
  b.in_off = 0;
  b.out_uid = 8;
  b.out_off = 0;
  b.ticket_n = 40; /* garbage */
  memcpy(m, &b, sizeof b);
  cr_assert_eq(run_desc(0, m, sizeof m, &st), MP_EPROTO, "%s",
               mp_last_error_message());
  b.in_uid = 0; /* an input size without a segment */
  memcpy(m, &b, sizeof b);
  cr_assert_eq(run_desc(0, m, sizeof m, &st), MP_EPROTO);
  /* Every byte of a process pool's head flipped in turn: refused, never
   * a read outside the message (the sanitizers' leg runs this too). */
  b.in_uid = 7;
  memcpy(m, &b, sizeof b);
  for (size_t k = 0; k < sizeof h; k++) {
    unsigned char f[sizeof m];
    memcpy(f, m, sizeof m);
    f[k] ^= 0xff;
    cr_assert_neq(run_desc(0, f, sizeof f, &st), 0, "byte %zu", k);
  }
}
