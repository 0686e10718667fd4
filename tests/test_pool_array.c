/*
 * test_pool_array.c - array maps and reductions (mp_pool_map_array,
 * mp_pool_reduce, mp_pool_reduce_fn) on process pools under every start
 * method and on thread pools: private and shared arrays, in place, a
 * kernel that fails, a worker killed in the middle of a chunk, guided and
 * fixed chunks, bad arguments.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods.h"
#include "support.h"

TS_SUITE(array_map);
TS_SUITE(thread_array_map);

#define N 100003

/* ---- kernels --------------------------------------------------------- */

static int square(const void *in, void *out, size_t first, size_t n,
                  const mp_args *ctx) {
  (void)first;
  (void)ctx;
  const int64_t *x = in;
  int64_t *y = out;
  for (size_t i = 0; i < n; i++)
    y[i] = x[i] * x[i];
  return 0;
}

/* out[i] = (first + i) * ctx[0]: no input. */
static int scaled_index(const void *in, void *out, size_t first, size_t n,
                        const mp_args *ctx) {
  double *y = out;
  int64_t k = mp_args_int(ctx, 0);
  if (in != NULL)
    return mp_set_error(5, "an input came");
  for (size_t i = 0; i < n; i++)
    y[i] = (double)(first + i) * (double)k;
  return 0;
}

/* x += 1 in place (int32). */
static int add_one(const void *in, void *out, size_t first, size_t n,
                   const mp_args *ctx) {
  (void)first;
  (void)ctx;
  if (in != out)
    return mp_set_error(6, "not in place");
  int32_t *y = out;
  for (size_t i = 0; i < n; i++)
    y[i] += 1;
  return 0;
}

/* out[i] = the first index of i's chunk, and its size. */
static int chunk_of(const void *in, void *out, size_t first, size_t n,
                    const mp_args *ctx) {
  (void)in;
  (void)ctx;
  uint64_t *y = out;
  for (size_t i = 0; i < n; i++) {
    y[2 * i] = first;
    y[2 * i + 1] = n;
  }
  return 0;
}

/* Fails (status 7) in every chunk that holds an index in ctx, with the
 * index in the message; squares otherwise. */
static int fail_at(const void *in, void *out, size_t first, size_t n,
                   const mp_args *ctx) {
  for (size_t k = 0; k < mp_args_count(ctx); k++) {
    size_t bad = (size_t)mp_args_int(ctx, k);
    if (bad >= first && bad < first + n)
      return mp_set_error(7, "bad item %zu", bad);
  }
  return square(in, out, first, n, ctx);
}

/* The worker holding index ctx[0] kills itself halfway through. */
static int die_at(const void *in, void *out, size_t first, size_t n,
                  const mp_args *ctx) {
  size_t bad = (size_t)mp_args_int(ctx, 0);
  int64_t *y = out;
  if (bad >= first && bad < first + n) {
    for (size_t i = 0; i < n / 2; i++)
      y[i] = -1;
    ts_kill_pid(mp_getpid());
  }
  return square(in, out, first, n, ctx);
}

/* ---- helpers ------------------------------------------------------------ */

static mp_pool *new_pool(int kind, int workers, const char *method) {
  mp_pool_options o = MP_POOL_OPTIONS_INIT;
  o.kind = kind;
  o.workers = workers;
  if (method != NULL)
    cr_assert_eq(mp_get_context(method, &o.context), 0);
  mp_pool *p = NULL;
  cr_assert_eq(mp_pool_new_ex(&p, &o), 0, "%s", mp_last_error_message());
  return p;
}

static void fill(int64_t *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    x[i] = (int64_t)i - 5000;
}

static void check_squares(const int64_t *y, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int64_t v = (int64_t)i - 5000;
    if (y[i] != v * v)
      cr_assert_fail("y[%zu] = %lld, not %lld", i, (long long)y[i],
                     (long long)(v * v));
  }
}

/* ---- maps ------------------------------------------------------------- */

/* Private arrays (copied), shared ones (in place: an mp_shm, an mp_array),
 * fixed chunks, no input, in place, nothing. */
static void maps(int kind, const char *method) {
  mp_pool *p = new_pool(kind, 2, method);
  int64_t *x = malloc(N * sizeof *x), *y = calloc(N, sizeof *y);
  fill(x, N);
  cr_assert_eq(mp_pool_map_array(p, square, x, 8, y, 8, N, NULL, 0), 0,
               "%s", mp_last_error_message());
  check_squares(y, N);
  memset(y, 0, N * sizeof *y);
  cr_assert_eq(mp_pool_map_array(p, square, x, 8, y, 8, N, NULL, 7), 0);
  check_squares(y, N);

  /* Shared: an mp_shm holding both, and an mp_array for the input. */
  mp_shm *s;
  cr_assert_eq(mp_shm_new(&s, NULL, 2 * N * sizeof *x), 0);
  int64_t *sx = mp_shm_buf(s), *sy = sx + N;
  fill(sx, N);
  cr_assert_eq(mp_pool_map_array(p, square, sx, 8, sy, 8, N, NULL, 0), 0,
               "%s", mp_last_error_message());
  check_squares(sy, N);
  mp_array *arr;
  cr_assert_eq(mp_raw_array_new(&arr, 'q', N, x), 0);
  memset(y, 0, N * sizeof *y);
  cr_assert_eq(mp_pool_map_array(p, square, mp_array_ptr(arr), 8, y, 8, N,
                                 NULL, 0), 0);
  check_squares(y, N);
  /* A part of a shared array, and shared output with private input. */
  memset(sy, 0, N * sizeof *sy);
  cr_assert_eq(mp_pool_map_array(p, square, x + 100, 8, sy + 100, 8,
                                 N - 200, NULL, 0), 0);
  cr_assert_eq(sy[99], 0);
  cr_assert_eq(sy[100], 4900 * 4900);
  cr_assert_eq(sy[N - 101], (int64_t)(N - 101 - 5000) * (N - 101 - 5000));
  cr_assert_eq(sy[N - 100], 0);

  /* No input: the index and the context. */
  double *d = calloc(N, sizeof *d);
  mp_args *ctx;
  mp_args_pack(&ctx, "i", 3);
  cr_assert_eq(mp_pool_map_array(p, scaled_index, NULL, 0, d, sizeof *d, N,
                                 ctx, 0), 0, "%s", mp_last_error_message());
  for (size_t i = 0; i < N; i++)
    cr_assert_eq(d[i], 3.0 * (double)i);
  mp_args_free(ctx);

  /* In place, private and shared. */
  int32_t *v = malloc(N * sizeof *v);
  for (size_t i = 0; i < N; i++)
    v[i] = (int32_t)i;
  cr_assert_eq(mp_pool_map_array(p, add_one, v, 4, v, 4, N, NULL, 0), 0,
               "%s", mp_last_error_message());
  int32_t *sv = mp_shm_buf(s);
  for (size_t i = 0; i < N; i++) {
    cr_assert_eq(v[i], (int32_t)i + 1);
    sv[i] = (int32_t)i;
  }
  cr_assert_eq(mp_pool_map_array(p, add_one, sv, 4, sv, 4, N, NULL, 0), 0);
  for (size_t i = 0; i < N; i++)
    cr_assert_eq(sv[i], (int32_t)i + 1);

  /* Over nothing. */
  cr_assert_eq(mp_pool_map_array(p, square, x, 8, y, 8, 0, NULL, 0), 0);

  free(v);
  free(d);
  mp_array_free(arr);
  mp_shm_free(s);
  free(x);
  free(y);
  mp_pool_free(p);
}

static void check_maps(const char *method) { maps(MP_POOL_PROCESS, method); }
FOR_EACH_METHOD(check_maps)
Test(thread_array_map, maps, .timeout = TS_TIMEOUT) {
  maps(MP_POOL_THREAD, NULL);
}

/* Chunks: guided ones shrink towards the end, never below count / (32 *
 * workers) but for the last; fixed ones have the size asked. */
static void chunks(int kind) {
  mp_pool *p = new_pool(kind, 2, NULL);
  size_t n = 1000000;
  uint64_t *c = calloc(2 * n, sizeof *c);
  cr_assert_eq(mp_pool_map_array(p, chunk_of, NULL, 0, c, 16, n, NULL, 0),
               0, "%s", mp_last_error_message());
  size_t at = 0, prev = SIZE_MAX, count = 0;
  while (at < n) {
    size_t size = (size_t)c[2 * at + 1];
    cr_assert_eq(c[2 * at], at, "element %zu: chunk at %llu", at,
                 (unsigned long long)c[2 * at]);
    cr_assert(size <= prev, "chunk at %zu grew: %zu after %zu", at, size,
              prev);
    if (at + size < n)
      cr_assert_geq(size, n / 64);
    for (size_t i = at; i < at + size; i++)
      cr_assert_eq(c[2 * i], at);
    prev = size;
    at += size;
    count++;
  }
  cr_assert_eq(at, n);
  cr_assert(count >= 8 && count <= 64, "%zu chunks", count);
  cr_assert_eq(c[1], n / 4, "the first chunk: a quarter with two workers");
  cr_assert_eq(mp_pool_map_array(p, chunk_of, NULL, 0, c, 16, 1000, NULL,
                                 300), 0);
  for (size_t i = 0; i < 1000; i++) {
    cr_assert_eq(c[2 * i], i / 300 * 300);
    cr_assert_eq(c[2 * i + 1], i < 900 ? 300 : 100);
  }
  free(c);
  mp_pool_free(p);
}

Test(array_map, chunks, .timeout = TS_TIMEOUT) { chunks(MP_POOL_PROCESS); }
Test(thread_array_map, chunks, .timeout = TS_TIMEOUT) {
  chunks(MP_POOL_THREAD);
}

/* ---- failures -------------------------------------------------------- */

static void failing_kernel(int kind, const char *method) {
  mp_pool *p = new_pool(kind, 2, method);
  int64_t *x = malloc(N * sizeof *x), *y = calloc(N, sizeof *y);
  fill(x, N);
  /* Two chunks fail: the first in input order is reported. */
  mp_args *ctx;
  mp_args_pack(&ctx, "ii", 90000, 1234);
  cr_assert_eq(mp_pool_map_array(p, fail_at, x, 8, y, 8, N, ctx, 1000),
               MP_ETASK);
  cr_assert_str_eq(mp_last_error_message(), "bad item 1234");
  mp_async *a;
  cr_assert_eq(mp_pool_map_array_async(p, fail_at, x, 8, y, 8, N, ctx, 0,
                                       NULL, NULL, NULL, &a), 0);
  int status = 0;
  const char *msg = NULL;
  cr_assert_eq(mp_async_wait(a, 30.0), 0);
  cr_assert_eq(mp_async_successful(a), 0);
  cr_assert_eq(mp_async_error(a, &status, &msg), MP_ETASK);
  cr_assert_eq(status, 7);
  cr_assert_str_eq(msg, "bad item 1234");
  mp_async_free(a);
  mp_args_free(ctx);
  /* The pool goes on. */
  cr_assert_eq(mp_pool_map_array(p, square, x, 8, y, 8, N, NULL, 0), 0);
  check_squares(y, N);
  free(x);
  free(y);
  mp_pool_free(p);
}

static void check_failing_kernel(const char *method) {
  failing_kernel(MP_POOL_PROCESS, method);
}
FOR_EACH_METHOD(check_failing_kernel)
Test(thread_array_map, failing_kernel, .timeout = TS_TIMEOUT) {
  failing_kernel(MP_POOL_THREAD, NULL);
}

/* A worker killed in the middle of a chunk: MP_EWORKERDIED, never a
 * success with a half-written output, and the pool goes on. */
static void check_worker_killed(const char *method) {
  mp_pool *p = new_pool(MP_POOL_PROCESS, 2, method);
  mp_shm *s;
  cr_assert_eq(mp_shm_new(&s, NULL, 2 * N * sizeof(int64_t)), 0);
  int64_t *x = mp_shm_buf(s), *y = x + N;
  fill(x, N);
  int64_t *px = malloc(N * sizeof *px), *py = calloc(N, sizeof *py);
  fill(px, N);
  mp_args *ctx;
  mp_args_pack(&ctx, "i", 50000);
  cr_assert_eq(mp_pool_map_array(p, die_at, x, 8, y, 8, N, ctx, 1000),
               MP_EWORKERDIED, "%s", mp_last_error_message());
  cr_assert_eq(mp_pool_map_array(p, die_at, px, 8, py, 8, N, ctx, 0),
               MP_EWORKERDIED, "%s", mp_last_error_message());
  int64_t r = 0;
  cr_assert_eq(mp_pool_reduce(p, 'q', MP_REDUCE_SUM, x, N, &r), 0, "%s",
               mp_last_error_message());
  cr_assert_eq(mp_pool_map_array(p, square, x, 8, y, 8, N, NULL, 0), 0,
               "%s", mp_last_error_message());
  check_squares(y, N);
  cr_assert_eq(mp_pool_map_array(p, square, px, 8, py, 8, N, NULL, 0), 0);
  check_squares(py, N);
  mp_args_free(ctx);
  free(px);
  free(py);
  mp_shm_free(s);
  mp_pool_free(p);
}
FOR_EACH_METHOD(check_worker_killed)

/* Bad arguments: nothing runs. */
static void bad_arguments(int kind) {
  mp_pool *p = new_pool(kind, 1, NULL);
  int64_t x[64], y[64];
  fill(x, 64);
  cr_assert_eq(mp_pool_map_array(NULL, square, x, 8, y, 8, 64, NULL, 0),
               MP_EINVAL);
  cr_assert_eq(mp_pool_map_array(p, NULL, x, 8, y, 8, 64, NULL, 0),
               MP_EINVAL);
  cr_assert_eq(mp_pool_map_array(p, square, x, 0, y, 8, 64, NULL, 0),
               MP_EINVAL);
  cr_assert_eq(mp_pool_map_array(p, square, NULL, 8, y, 8, 64, NULL, 0),
               MP_EINVAL);
  cr_assert_eq(mp_pool_map_array(p, square, x, 8, x + 1, 8, 32, NULL, 0),
               MP_EINVAL, "overlapping, not in place");
  cr_assert_eq(mp_pool_map_array(p, square, x, 8, y, 8, SIZE_MAX / 4, NULL,
                                 0), MP_EINVAL);
  mp_event *e;
  mp_event_new(&e);
  mp_args *ctx;
  mp_args_pack(&ctx, "E", e);
  cr_assert_eq(mp_pool_map_array(p, square, x, 8, y, 8, 64, ctx, 0),
               MP_ETYPE);
  mp_args_free(ctx);
  mp_event_free(e);
  int64_t r;
  cr_assert_eq(mp_pool_reduce(p, 'z', MP_REDUCE_SUM, x, 64, &r), MP_EINVAL);
  cr_assert_eq(mp_pool_reduce(p, 'q', 9, x, 64, &r), MP_EINVAL);
  cr_assert_eq(mp_pool_reduce(p, 'q', MP_REDUCE_MIN, x, 0, &r), MP_EINVAL);
  cr_assert_eq(mp_pool_reduce(p, 'q', MP_REDUCE_SUM, NULL, 64, &r),
               MP_EINVAL);
  char acc[8] = {0};
  cr_assert_eq(mp_pool_reduce_fn(p, NULL, NULL, x, 8, 64, acc, sizeof acc,
                                 NULL, 0), MP_EINVAL);
  mp_pool_close(p);
  cr_assert_eq(mp_pool_map_array(p, square, x, 8, y, 8, 64, NULL, 0),
               MP_ESTATE);
  cr_assert_eq(mp_pool_reduce(p, 'q', MP_REDUCE_SUM, x, 64, &r), MP_ESTATE);
  mp_pool_free(p);
}

Test(array_map, bad_arguments, .timeout = TS_TIMEOUT) {
  bad_arguments(MP_POOL_PROCESS);
}
Test(thread_array_map, bad_arguments, .timeout = TS_TIMEOUT) {
  bad_arguments(MP_POOL_THREAD);
}

/* ---- async --------------------------------------------------------- */

static void on_done(const mp_args *r, void *arg) {
  (void)r;
  *(int *)arg = 1;
}

static void on_error(int status, const char *message, void *arg) {
  (void)message;
  *(int *)arg = status;
}

static void async_maps(int kind) {
  mp_pool *p = new_pool(kind, 2, NULL);
  int64_t *x = malloc(N * sizeof *x), *y = calloc(N, sizeof *y);
  fill(x, N);
  int done = 0, failed = 0;
  mp_async *a;
  cr_assert_eq(mp_pool_map_array_async(p, square, x, 8, y, 8, N, NULL, 0,
                                       on_done, on_error, &done, &a), 0);
  const mp_args *r = NULL;
  cr_assert_eq(mp_async_get(a, 30.0, &r), 0);
  cr_assert_eq(mp_args_count(r), 0);
  cr_assert_eq(done, 1);
  check_squares(y, N);
  mp_async_free(a);
  mp_args *ctx;
  mp_args_pack(&ctx, "i", 10);
  cr_assert_eq(mp_pool_map_array_async(p, fail_at, x, 8, y, 8, N, ctx, 0,
                                       on_done, on_error, &failed, &a), 0);
  cr_assert_eq(mp_async_get(a, 30.0, &r), MP_ETASK);
  cr_assert_eq(failed, 7);
  mp_async_free(a);
  mp_args_free(ctx);
  free(x);
  free(y);
  mp_pool_free(p);
}

Test(array_map, async, .timeout = TS_TIMEOUT) { async_maps(MP_POOL_PROCESS); }
Test(thread_array_map, async, .timeout = TS_TIMEOUT) {
  async_maps(MP_POOL_THREAD);
}

/* ---- reductions ------------------------------------------------------ */

typedef struct stats {
  int64_t count;
  double sum, sumsq;
  int64_t first_min; /* the smallest `first` seen: the chunks cover 0 */
} stats;

static int fold_stats(const void *in, size_t first, size_t n, void *acc,
                      const mp_args *ctx) {
  (void)ctx;
  const double *x = in;
  stats *s = acc;
  for (size_t i = 0; i < n; i++) {
    s->sum += x[i];
    s->sumsq += x[i] * x[i];
  }
  s->count += (int64_t)n;
  if (s->first_min < 0 || (int64_t)first < s->first_min)
    s->first_min = (int64_t)first;
  return 0;
}

static void combine_stats(void *acc, const void *other, const mp_args *ctx) {
  (void)ctx;
  stats *s = acc;
  const stats *o = other;
  s->count += o->count;
  s->sum += o->sum;
  s->sumsq += o->sumsq;
  if (s->first_min < 0 || o->first_min < s->first_min)
    s->first_min = o->first_min;
}

static int fold_fail(const void *in, size_t first, size_t n, void *acc,
                     const mp_args *ctx) {
  (void)in;
  (void)acc;
  (void)ctx;
  if (first <= 777 && 777 < first + n)
    return mp_set_error(9, "no 777");
  return 0;
}

static void reductions(int kind, const char *method) {
  mp_pool *p = new_pool(kind, 2, method);
  int64_t *x = malloc(N * sizeof *x);
  fill(x, N);
  int64_t sum = 0, want = 0;
  for (size_t i = 0; i < N; i++)
    want += x[i];
  cr_assert_eq(mp_pool_reduce(p, 'q', MP_REDUCE_SUM, x, N, &sum), 0, "%s",
               mp_last_error_message());
  cr_assert_eq(sum, want);
  int64_t lo, hi;
  x[77777] = -99999;
  x[12] = 1 << 30;
  cr_assert_eq(mp_pool_reduce(p, 'q', MP_REDUCE_MIN, x, N, &lo), 0);
  cr_assert_eq(mp_pool_reduce(p, 'q', MP_REDUCE_MAX, x, N, &hi), 0);
  cr_assert_eq(lo, -99999);
  cr_assert_eq(hi, 1 << 30);
  /* Small types: the result of min/max is one, sums go wide. */
  unsigned char *b = malloc(N);
  for (size_t i = 0; i < N; i++)
    b[i] = (unsigned char)(i % 200 + 20);
  b[4444] = 3;
  uint64_t usum = 0, uwant = 0;
  for (size_t i = 0; i < N; i++)
    uwant += b[i];
  unsigned char bmin = 0;
  cr_assert_eq(mp_pool_reduce(p, 'B', MP_REDUCE_SUM, b, N, &usum), 0);
  cr_assert_eq(usum, uwant);
  cr_assert_eq(mp_pool_reduce(p, 'B', MP_REDUCE_MIN, b, N, &bmin), 0);
  cr_assert_eq(bmin, 3);
  short *h = malloc(N * sizeof *h);
  for (size_t i = 0; i < N; i++)
    h[i] = (short)((int)(i % 3000) - 1500);
  short hmax = 0;
  int64_t hsum = 0, hwant = 0;
  for (size_t i = 0; i < N; i++)
    hwant += h[i];
  cr_assert_eq(mp_pool_reduce(p, 'h', MP_REDUCE_MAX, h, N, &hmax), 0);
  cr_assert_eq(hmax, 1499);
  cr_assert_eq(mp_pool_reduce(p, 'h', MP_REDUCE_SUM, h, N, &hsum), 0);
  cr_assert_eq(hsum, hwant);
  /* Floating point: the sum adds chunk by chunk; a NaN wins min and max. */
  double *d = malloc(N * sizeof *d);
  double dwant = 0;
  for (size_t i = 0; i < N; i++) {
    d[i] = 0.5 * (double)i;
    dwant += d[i];
  }
  double dsum = 0, dmin = 0;
  cr_assert_eq(mp_pool_reduce(p, 'd', MP_REDUCE_SUM, d, N, &dsum), 0);
  cr_assert_float_eq(dsum, dwant, 1e-6 * dwant);
  float *f = malloc(N * sizeof *f);
  for (size_t i = 0; i < N; i++)
    f[i] = (float)i;
  float fmax = 0;
  cr_assert_eq(mp_pool_reduce(p, 'f', MP_REDUCE_MAX, f, N, &fmax), 0);
  cr_assert_eq(fmax, (float)(N - 1));
  d[N / 2] = NAN;
  cr_assert_eq(mp_pool_reduce(p, 'd', MP_REDUCE_MIN, d, N, &dmin), 0);
  cr_assert(dmin != dmin, "min with a NaN: %g", dmin);
  int64_t zero = 5;
  cr_assert_eq(mp_pool_reduce(p, 'q', MP_REDUCE_SUM, NULL, 0, &zero), 0);
  cr_assert_eq(zero, 0);
  /* A reduction of our own. */
  for (size_t i = 0; i < N; i++)
    d[i] = (double)(i % 10);
  stats st = {0, 0, 0, -1};
  cr_assert_eq(mp_pool_reduce_fn(p, fold_stats, combine_stats, d, 8, N, &st,
                                 sizeof st, NULL, 0), 0, "%s",
               mp_last_error_message());
  cr_assert_eq(st.count, N);
  cr_assert_eq(st.first_min, 0);
  double s = 0, sq = 0;
  for (size_t i = 0; i < N; i++) {
    s += d[i];
    sq += d[i] * d[i];
  }
  cr_assert_float_eq(st.sum, s, 1e-9 * s);
  cr_assert_float_eq(st.sumsq, sq, 1e-9 * sq);
  stats st2 = {0, 0, 0, -1};
  cr_assert_eq(mp_pool_reduce_fn(p, fold_fail, combine_stats, NULL, 0, N,
                                 &st2, sizeof st2, NULL, 100), MP_ETASK);
  cr_assert_str_eq(mp_last_error_message(), "no 777");
  static char big[70000];
  cr_assert_eq(mp_pool_reduce_fn(p, fold_stats, combine_stats, d, 8, N, big,
                                 sizeof big, NULL, 0), MP_EINVAL);
  free(f);
  free(d);
  free(h);
  free(b);
  free(x);
  mp_pool_free(p);
}

static void check_reductions(const char *method) {
  reductions(MP_POOL_PROCESS, method);
}
FOR_EACH_METHOD(check_reductions)
Test(thread_array_map, reductions, .timeout = TS_TIMEOUT) {
  reductions(MP_POOL_THREAD, NULL);
}

/* Idle workers let their arrays go after a second (MP__ARRAY_IDLE) and
 * stay: the next map finds the same workers, which map the arrays again. */
static void check_idle_workers_stay(const char *method) {
  mp_pool *p = new_pool(MP_POOL_PROCESS, 2, method);
  mp_shm *s;
  cr_assert_eq(mp_shm_new(&s, NULL, 2 * N * sizeof(int64_t)), 0);
  int64_t *x = mp_shm_buf(s), *y = x + N;
  fill(x, N);
  cr_assert_eq(mp_pool_map_array(p, square, x, 8, y, 8, N, NULL, 0), 0);
  int64_t before[2], after[2];
  cr_assert_eq(mp_pool_worker_pids(p, before, 2), 2);
  /* Idle for longer than the workers keep arrays: a wait that times out
   * (the idleness is what is tested, nothing is waited for). */
  mp_event *never;
  cr_assert_eq(mp_event_new(&never), 0);
  cr_assert_eq(mp_event_wait(never, 1.6), MP_ETIMEDOUT);
  mp_event_free(never);
  memset(y, 0, N * sizeof *y);
  cr_assert_eq(mp_pool_map_array(p, square, x, 8, y, 8, N, NULL, 0), 0,
               "%s", mp_last_error_message());
  check_squares(y, N);
  cr_assert_eq(mp_pool_worker_pids(p, after, 2), 2);
  cr_assert_eq(after[0], before[0], "worker 0 was replaced");
  cr_assert_eq(after[1], before[1], "worker 1 was replaced");
  mp_shm_free(s);
  mp_pool_free(p);
}
FOR_EACH_METHOD(check_idle_workers_stay)
