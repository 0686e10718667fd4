/*
 * bench_array.c - array maps (mp_pool_map_array) on process and thread
 * pools, against the serial loop and OpenMP's `parallel for`, with their
 * scaling and their memory.
 *
 * One process pool (mp_pool_new(&pool, 0)) and one thread pool
 * (mp_thread_pool_new(&tpool, 0)), as many workers as usable CPUs, are
 * created at the start with the default start method (fork on Linux),
 * before any array, and warmed up with one call of every measurement;
 * none of that is timed.  OpenMP runs with num_threads = the pool's
 * workers.  Arrays are allocated and pre-faulted (written) outside the
 * timing: "shm arrays" are x and y in one mp_shm (mp_shm_new(&s, NULL,
 * bytes), x at its start, y right after), used in place by the process
 * pool; "malloc'd" ones are two malloc()s.  Two kernels, each one
 * function used by every method (the serial loop calls the kernel
 * itself, OpenMP runs the same loop body):
 *   square   y[i] = x[i] * x[i] over int64, x[i] = i (memory-bound);
 *   compute  y[i] = work(x[i], K) over doubles: K steps of the logistic
 *            map v = 3.9 v (1 - v) from the seed x[i] in (0.05, 0.95),
 *            work() not inlined so that every method runs the same code;
 *            K is calibrated at the start so that one item takes about
 *            1 us (--iters K fixes it); the pools get K in the call's
 *            context (ctx).
 *
 * Measurements (items/s; one sample per repetition):
 *   c serial square        the square kernel called once over N =
 *                          1,000,000 malloc'd int64 in this process: a
 *                          plain loop, vectorised as the compiler likes;
 *                          the floor.
 *   mproc array square     mp_pool_map_array(pool, square, x, 8, y, 8, N,
 *                          NULL, 0) with x and y in one mp_shm (no copy),
 *                          default chunksize (guided).
 *   mproc array square copy  the same with malloc'd x and y (copied into
 *                          the pool's scratch segment and back).
 *   mproc thread array square  the same on the thread pool, malloc'd.
 *   omp square             #pragma omp parallel for num_threads(workers)
 *                          over the same loop, malloc'd.
 *   c serial compute       the compute kernel over M = 1,000,000 items.
 *   mproc array compute    mp_pool_map_array on the process pool, shm
 *                          arrays, default chunksize.
 *   mproc thread array compute  the same on the thread pool, malloc'd.
 *   omp compute            #pragma omp parallel for num_threads(workers)
 *                          (default schedule) calling work(), malloc'd.
 *   (--only scaling) mproc array compute wW, mproc thread array compute
 *                          wW, omp compute wW: the three above over M / 4
 *                          items with W = 1, 2, 4, 8 workers / threads
 *                          (a new process and thread pool per W, warmed
 *                          up, outside the timing).
 *   (--only memory, Linux) mproc array memory 1M, mproc array memory
 *                          100M (MB = 10^6 bytes): the square map over
 *                          1,000,000 and then 100,000,000 int64 (x and y
 *                          in one mp_shm each: 16 MB and 1.6 GB) on the
 *                          process pool; after each, the private memory
 *                          of this process plus its pool's workers
 *                          (mp_pool_worker_pids): the Private_Clean +
 *                          Private_Dirty of every private mapping in
 *                          /proc/PID/smaps, i.e. smaps_rollup's figure
 *                          without the MAP_SHARED mappings (the arrays,
 *                          which are shared memory).  --scale does not
 *                          change these sizes.
 *
 * A rate sample repeats its operation until it has run for at least
 * --min-time seconds (default 0.2) and is the items over the time they
 * took.  Every result is checked, outside the timing (square: y[i] ==
 * i * i; compute: bitwise equal to a reference made once by the serial
 * loop at the start), and the output is then overwritten with -1 so that
 * a missing write shows in the next check; a wrong one ends the program
 * with status 2.  Within a repetition every measurement runs once, the
 * first one rotating.
 *
 * Spinning: when MPROC_SPIN_US is set, the mproc labels get a suffix:
 * " nospin" for 0, " spin=<N>us" otherwise.
 *
 * Output, one line per label, with the unit in the keys:
 *   mproc array square median_items_s=... min_items_s=... p10_items_s=...
 *     p90_items_s=... n=3
 * (units: items_s, MB).  With --samples, each line is followed by
 * "samples <label>: v1,v2,...".  First come the lines
 *   info mproc-array: start_method=fork workers=2 thread_workers=2
 *     n=1000000 compute_n=1000000 iters=380 compute_ns_per_item=1.00
 *   info omp: openmp=201511 threads=2      (or: info omp: none ...)
 * and, with --only memory,
 *   info mproc-array-memory: processes=3 arrays_MB=16,1600 ...
 *
 * Flags: --reps R (samples per measurement, default 3), --scale F
 *        (multiplies N, M and the scaling count), --n N (1000000),
 *        --compute-n M (1000000), --scaling-n S (M / 4), --iters K
 *        (calibrated), --mem-small N (1000000), --mem-big N (100000000),
 *        --min-time S (0.2), --only serial|square|copy|thread|omp|
 *        serial-compute|compute|thread-compute|omp-compute|scaling|memory
 *        (repeatable; without it every measurement but scaling and
 *        memory), --samples.
 * Built with OpenMP when CMake finds it (BENCH_HAVE_OPENMP); otherwise
 * the omp measurements are skipped, with a note.  POSIX only.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif
#if !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
#  define _POSIX_C_SOURCE 200809L
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

#if defined(BENCH_HAVE_OPENMP)
#  include <omp.h>
#endif

#include "bench_util.h"

#if defined(__GNUC__)
#  define NOINLINE __attribute__((noinline))
#else
#  define NOINLINE
#endif

/* ---- series of samples ------------------------------------------------- */

static char suffix[32]; /* " nospin", " spin=<N>us" or "" (mproc labels) */

typedef struct series {
  char label[64];
  const char *unit; /* items_s, MB */
  double *v;
  size_t n, cap;
} series;

static void add(series *s, double x) {
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 64;
    s->v = realloc(s->v, s->cap * sizeof *s->v);
    if (s->v == NULL)
      die("realloc", 0);
  }
  s->v[s->n++] = x;
}

static void print_series(series *s, int samples) {
  if (s->n == 0)
    return;
  char label[128];
  snprintf(label, sizeof label, "%s%s", s->label,
           strncmp(s->label, "mproc ", 6) == 0 ? suffix : "");
  if (samples) {
    printf("samples %s:", label);
    for (size_t i = 0; i < s->n; i++)
      printf("%s%.3f", i ? "," : " ", s->v[i]);
    printf("\n");
  }
  qsort(s->v, s->n, sizeof *s->v, cmp_double);
  int c = (int)s->n;
  const char *u = s->unit;
  printf("%s median_%s=%.2f min_%s=%.2f p10_%s=%.2f p90_%s=%.2f n=%d\n",
         label, u, pct(s->v, c, 0.5), u, s->v[0], u, pct(s->v, c, 0.1), u,
         pct(s->v, c, 0.9), c);
}

/* ---- the kernels ------------------------------------------------------- */

static int square_kernel(const void *in, void *out, size_t first, size_t n,
                         const mp_args *ctx) {
  const int64_t *x = in;
  int64_t *y = out;
  (void)first;
  (void)ctx;
  for (size_t i = 0; i < n; i++)
    y[i] = x[i] * x[i];
  return 0;
}

/* About 1 us of arithmetic for the calibrated k: a chain of dependent
 * floating-point operations (nothing to vectorise or overlap within an
 * item).  Not inlined: every method calls this same code. */
static NOINLINE double work(double v, int k) {
  for (int j = 0; j < k; j++)
    v = 3.9 * v * (1.0 - v);
  return v;
}

/* ctx: (k) */
static int compute_kernel(const void *in, void *out, size_t first, size_t n,
                          const mp_args *ctx) {
  const double *x = in;
  double *y = out;
  int k = (int)mp_args_int(ctx, 0);
  (void)first;
  for (size_t i = 0; i < n; i++)
    y[i] = work(x[i], k);
  return 0;
}

static double seed(int64_t i) {
  return 0.05 +
         0.9 * (double)(((uint64_t)i * 2654435761u) % 1000003u) / 1000003.0;
}

#if defined(BENCH_HAVE_OPENMP)
static void omp_square(const int64_t *x, int64_t *y, int64_t n, int nt) {
#  pragma omp parallel for num_threads(nt)
  for (int64_t i = 0; i < n; i++)
    y[i] = x[i] * x[i];
}

static void omp_compute(const double *x, double *y, int64_t n, int k,
                        int nt) {
#  pragma omp parallel for num_threads(nt)
  for (int64_t i = 0; i < n; i++)
    y[i] = work(x[i], k);
}
#endif

/* ---- the arrays -------------------------------------------------------- */

/* Globals, so that the compiler must assume the calls around a timed
 * loop (now()) may read what it wrote. */
static int64_t *sq_x, *sq_y;  /* malloc'd, sq_n each */
static int64_t *sqs_x, *sqs_y; /* in sq_shm */
static double *c_x, *c_y;      /* malloc'd, c_n each */
static double *cs_x, *cs_y;    /* in c_shm */
static double *c_ref;          /* the reference results */
static int64_t sq_n, c_n;
static mp_shm *sq_shm, *c_shm;
static int iters;
static mp_args *ctx_k; /* (iters) */
static volatile int64_t sink_i;
static volatile double sink_d;

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (p == NULL)
    die("malloc", 0);
  return p;
}

/* x and y of `n` elements of `size` bytes in one new mp_shm. */
static void *shm_pair(mp_shm **s, int64_t n, size_t size) {
  int rc;
  if ((rc = mp_shm_new(s, NULL, 2 * (size_t)n * size)) != 0)
    die("mp_shm_new", rc);
  return mp_shm_buf(*s);
}

static void fill_square(int64_t *x, int64_t *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    x[i] = i;
    y[i] = -1;
  }
}

static void fill_compute(double *x, double *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    x[i] = seed(i);
    y[i] = -1.0;
  }
}

static void wrong(const char *what, int64_t i, const char *got,
                  const char *want) {
  fprintf(stderr, "bench_array: %s: result %lld is %s, expected %s\n", what,
          (long long)i, got, want);
  exit(2);
}

/* Check y[0..n) (y[i] == i * i) and overwrite it with -1. */
static void check_square(const char *what, int64_t *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    if (y[i] != i * i) {
      char g[32], w[32];
      snprintf(g, sizeof g, "%lld", (long long)y[i]);
      snprintf(w, sizeof w, "%lld", (long long)(i * i));
      wrong(what, i, g, w);
    }
    y[i] = -1;
  }
}

static void check_compute(const char *what, double *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    if (memcmp(&y[i], &c_ref[i], sizeof y[i]) != 0) {
      char g[40], w[40];
      snprintf(g, sizeof g, "%.17g", y[i]);
      snprintf(w, sizeof w, "%.17g", c_ref[i]);
      wrong(what, i, g, w);
    }
    y[i] = -1.0;
  }
}

/* ---- one operation ----------------------------------------------------- */

enum {
  T_SERIAL, T_SQUARE, T_COPY, T_THREAD, T_OMP,
  T_SERIAL_C, T_COMPUTE, T_THREAD_C, T_OMP_C,
  T_SCALING, T_MEMORY, T_COUNT
};
static const char *const test_names[T_COUNT] = {
    "serial", "square", "copy", "thread", "omp",
    "serial-compute", "compute", "thread-compute", "omp-compute",
    "scaling", "memory"};
static const char *const test_labels[T_SCALING] = {
    "c serial square", "mproc array square", "mproc array square copy",
    "mproc thread array square", "omp square", "c serial compute",
    "mproc array compute", "mproc thread array compute", "omp compute"};

static void map_array(mp_pool *p, mp_kernel_fn k, const void *x, void *y,
                      size_t size, int64_t n, const mp_args *ctx) {
  int rc = mp_pool_map_array(p, k, x, size, y, size, (size_t)n, ctx, 0);
  if (rc != 0)
    die("mp_pool_map_array", rc);
}

/* Test t once over n items (pool: the process or thread pool it needs,
 * nt: OpenMP's threads); returns its time.  The result is checked and
 * overwritten after the timing. */
static double once(int t, mp_pool *pool, int nt, int64_t n,
                   const char *what) {
  double t0 = now(), dt;
  switch (t) {
  case T_SERIAL:
    square_kernel(sq_x, sq_y, 0, (size_t)n, NULL);
    dt = now() - t0;
    sink_i = sq_y[n - 1];
    check_square(what, sq_y, n);
    break;
  case T_SQUARE:
    map_array(pool, square_kernel, sqs_x, sqs_y, 8, n, NULL);
    dt = now() - t0;
    check_square(what, sqs_y, n);
    break;
  case T_COPY:
  case T_THREAD:
    map_array(pool, square_kernel, sq_x, sq_y, 8, n, NULL);
    dt = now() - t0;
    check_square(what, sq_y, n);
    break;
  case T_OMP:
#if defined(BENCH_HAVE_OPENMP)
    omp_square(sq_x, sq_y, n, nt);
#endif
    dt = now() - t0;
    sink_i = sq_y[n - 1];
    check_square(what, sq_y, n);
    break;
  case T_SERIAL_C:
    compute_kernel(c_x, c_y, 0, (size_t)n, ctx_k);
    dt = now() - t0;
    sink_d = c_y[n - 1];
    check_compute(what, c_y, n);
    break;
  case T_COMPUTE:
    map_array(pool, compute_kernel, cs_x, cs_y, 8, n, ctx_k);
    dt = now() - t0;
    check_compute(what, cs_y, n);
    break;
  case T_THREAD_C:
    map_array(pool, compute_kernel, c_x, c_y, 8, n, ctx_k);
    dt = now() - t0;
    check_compute(what, c_y, n);
    break;
  default: /* T_OMP_C */
#if defined(BENCH_HAVE_OPENMP)
    omp_compute(c_x, c_y, n, iters, nt);
#endif
    dt = now() - t0;
    sink_d = c_y[n - 1];
    check_compute(what, c_y, n);
    break;
  }
  (void)nt;
  return dt;
}

static double min_time = 0.2;

/* One sample: test t over n items until min_time has passed. */
static void run_rate(int t, mp_pool *pool, int nt, int64_t n, series *s) {
  int64_t done = 0;
  double spent = 0;
  while (spent < min_time) {
    spent += once(t, pool, nt, n, s->label);
    done += n;
  }
  add(s, (double)done / spent);
}

/* ---- calibration ------------------------------------------------------- */

/* ns per item of work(., k), over the first `n` seeds. */
static double ns_per_item(int k, int64_t n) {
  double *x = xmalloc((size_t)n * sizeof *x), best = 1e30;
  for (int64_t i = 0; i < n; i++)
    x[i] = seed(i);
  for (int r = 0; r < 5; r++) { /* the best of five */
    double s = 0, t0 = now();
    for (int64_t i = 0; i < n; i++)
      s += work(x[i], k);
    double t = (now() - t0) * 1e9 / (double)n;
    sink_d = s;
    if (t < best)
      best = t;
  }
  free(x);
  return best;
}

static int calibrate(void) {
  (void)ns_per_item(256, 20000); /* the CPU's frequency up */
  int k = 256;
  for (int round = 0; round < 3; round++) {
    double t = ns_per_item(k, 10000);
    int nk = (int)((double)k * 1000.0 / t + 0.5);
    if (nk < 1)
      nk = 1;
    if (nk == k)
      break;
    k = nk;
  }
  return k;
}

/* ---- memory ------------------------------------------------------------ */

#if defined(__linux__)
/* kB of Private_Clean + Private_Dirty in the private (not MAP_SHARED)
 * mappings of process pid (/proc/PID/smaps); -1 when unreadable.  Adds
 * the page tables (VmPTE of /proc/PID/status) to *pte_kb. */
static long private_kb(long pid, long *pte_kb) {
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%ld/smaps", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  long sum = 0;
  int shared = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long lo, hi;
    char perms[8];
    long v;
    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 &&
        strlen(perms) == 4)
      shared = perms[3] == 's';
    else if (!shared && (sscanf(line, "Private_Clean: %ld", &v) == 1 ||
                         sscanf(line, "Private_Dirty: %ld", &v) == 1))
      sum += v;
  }
  fclose(f);
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  if ((f = fopen(path, "r")) != NULL) {
    long v;
    while (fgets(line, sizeof line, f) != NULL)
      if (sscanf(line, "VmPTE: %ld", &v) == 1)
        *pte_kb += v;
    fclose(f);
  }
  return sum;
}

/* MB (10^6 bytes) of private memory of this process and its pool's
 * workers; *nproc: how many processes; *pte_kb: their page tables. */
static double group_private_mb(mp_pool *pool, int *nproc, long *pte_kb) {
  int64_t pids[256];
  int nw = mp_pool_worker_pids(pool, pids, 256);
  if (nw < 0)
    die("mp_pool_worker_pids", nw);
  *pte_kb = 0;
  long kb = private_kb((long)getpid(), pte_kb);
  if (kb < 0)
    die("reading /proc/self/smaps", 0);
  *nproc = 1;
  for (int i = 0; i < nw && i < 256; i++) {
    if (pids[i] <= 0)
      continue;
    long w = private_kb((long)pids[i], pte_kb);
    if (w < 0)
      die("reading a worker's smaps", 0);
    kb += w;
    ++*nproc;
  }
  return (double)kb * 1024.0 / 1e6;
}
#endif

static void count_name(char *buf, size_t cap, int64_t n) {
  if (n % 1000000 == 0)
    snprintf(buf, cap, "%lldM", (long long)(n / 1000000));
  else if (n % 1000 == 0)
    snprintf(buf, cap, "%lldk", (long long)(n / 1000));
  else
    snprintf(buf, cap, "%lld", (long long)n);
}

static void run_memory(mp_pool *pool, int reps, int64_t small, int64_t big,
                       int samples) {
#if defined(__linux__)
  int64_t ns[2] = {small, big};
  mp_shm *shm[2];
  int64_t *x[2], *y[2];
  series s[2];
  memset(s, 0, sizeof s);
  for (int j = 0; j < 2; j++) {
    char c[32];
    count_name(c, sizeof c, ns[j]);
    snprintf(s[j].label, sizeof s[j].label, "mproc array memory %s", c);
    s[j].unit = "MB";
    x[j] = shm_pair(&shm[j], ns[j], 8);
    y[j] = x[j] + ns[j];
    fill_square(x[j], y[j], ns[j]);
  }
  /* warm-up: the workers map the small arrays once */
  map_array(pool, square_kernel, x[0], y[0], 8, ns[0], NULL);
  check_square("memory warm-up", y[0], ns[0]);
  int nproc = 0;
  long pte[2] = {0, 0};
  double t[2] = {0, 0};
  for (int r = 0; r < reps; r++)
    for (int j = 0; j < 2; j++) { /* small first: then what big adds */
      double t0 = now();
      map_array(pool, square_kernel, x[j], y[j], 8, ns[j], NULL);
      t[j] = now() - t0;
      check_square(s[j].label, y[j], ns[j]);
      add(&s[j], group_private_mb(pool, &nproc, &pte[j]));
    }
  printf("info mproc-array-memory: processes=%d arrays_MB=%.0f,%.0f "
         "(x and y in one mp_shm each) map_s=%.3f,%.3f "
         "page_tables_kB=%ld,%ld metric=Private_Clean+Private_Dirty of "
         "the private mappings (/proc/PID/smaps)\n",
         nproc, 16.0 * (double)ns[0] / 1e6, 16.0 * (double)ns[1] / 1e6,
         t[0], t[1], pte[0], pte[1]);
  for (int j = 0; j < 2; j++) {
    print_series(&s[j], samples);
    free(s[j].v);
    mp_shm_free(shm[j]);
  }
#else
  (void)pool;
  (void)reps;
  (void)small;
  (void)big;
  (void)samples;
  printf("info mproc-array-memory: not measured (needs Linux's "
         "/proc/PID/smaps)\n");
#endif
}

/* ---- scaling ----------------------------------------------------------- */

static void run_scaling(int reps, int64_t n, int samples) {
  static const int ws[4] = {1, 2, 4, 8};
  static const int tests[3] = {T_COMPUTE, T_THREAD_C, T_OMP_C};
#if defined(BENCH_HAVE_OPENMP)
  int nt = 3;
#else
  int nt = 2;
#endif
  for (int w = 0; w < 4; w++) {
    mp_pool *pp, *tp;
    int rc;
    if ((rc = mp_pool_new(&pp, ws[w])) != 0)
      die("mp_pool_new", rc);
    if ((rc = mp_thread_pool_new(&tp, ws[w])) != 0)
      die("mp_thread_pool_new", rc);
    series s[3];
    memset(s, 0, sizeof s);
    for (int k = 0; k < nt; k++) {
      snprintf(s[k].label, sizeof s[k].label, "%s w%d",
               test_labels[tests[k]], ws[w]);
      s[k].unit = "items_s";
      /* warm-up: one call over a few items */
      mp_pool *p = tests[k] == T_COMPUTE ? pp : tp;
      int64_t wn = n < 1000 ? n : 1000;
      (void)once(tests[k], p, ws[w], wn, s[k].label);
    }
    for (int r = 0; r < reps; r++)
      for (int k = 0; k < nt; k++) {
        int t = tests[(r + k) % nt];
        run_rate(t, t == T_COMPUTE ? pp : tp, ws[w], n, &s[(r + k) % nt]);
      }
    for (int k = 0; k < nt; k++) {
      print_series(&s[k], samples);
      free(s[k].v);
    }
    fflush(stdout);
    mp_pool_free(pp);
    mp_pool_free(tp);
  }
}

/* ---- main -------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr,
          "usage: bench_array [--reps R] [--scale F] [--n N] "
          "[--compute-n M] [--scaling-n S] [--iters K]\n"
          "                   [--mem-small N] [--mem-big N] [--min-time S] "
          "[--samples]\n"
          "                   [--only serial|square|copy|thread|omp|"
          "serial-compute|compute|\n"
          "                           thread-compute|omp-compute|scaling|"
          "memory]...\n");
  exit(2);
}

int main(int argc, char **argv) {
  bench_name = "bench_array";
  MP_MAIN_GUARD(argc, argv);

  int reps = 3, samples = 0, any_only = 0, on[T_COUNT] = {0};
  double scale = 1.0;
  int64_t n_given = 0, cn_given = 0, scn_given = 0;
  int64_t mem_small = 1000000, mem_big = 100000000;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    int more = i + 1 < argc;
    if (strcmp(o, "--reps") == 0 && more)
      reps = atoi(argv[++i]);
    else if (strcmp(o, "--scale") == 0 && more)
      scale = atof(argv[++i]);
    else if (strcmp(o, "--n") == 0 && more)
      n_given = atoll(argv[++i]);
    else if (strcmp(o, "--compute-n") == 0 && more)
      cn_given = atoll(argv[++i]);
    else if (strcmp(o, "--scaling-n") == 0 && more)
      scn_given = atoll(argv[++i]);
    else if (strcmp(o, "--iters") == 0 && more)
      iters = atoi(argv[++i]);
    else if (strcmp(o, "--mem-small") == 0 && more)
      mem_small = atoll(argv[++i]);
    else if (strcmp(o, "--mem-big") == 0 && more)
      mem_big = atoll(argv[++i]);
    else if (strcmp(o, "--min-time") == 0 && more)
      min_time = atof(argv[++i]);
    else if (strcmp(o, "--only") == 0 && more) {
      const char *w = argv[++i];
      int t;
      for (t = 0; t < T_COUNT; t++)
        if (strcmp(w, test_names[t]) == 0)
          break;
      if (t == T_COUNT)
        usage();
      on[t] = any_only = 1;
    } else if (strcmp(o, "--samples") == 0)
      samples = 1;
    else
      usage();
  }
  if (reps < 1 || scale <= 0 || min_time < 0 || n_given < 0 ||
      cn_given < 0 || scn_given < 0 || iters < 0 || mem_small < 1 ||
      mem_big < 1)
    usage();
  if (!any_only) /* every measurement but scaling and memory */
    for (int t = 0; t < T_SCALING; t++)
      on[t] = 1;
  sq_n = bench_scaled(n_given, 1000000, scale);
  c_n = bench_scaled(cn_given, 1000000, scale);
  int64_t sc_n = bench_scaled(scn_given, 250000, scale);

  const char *e = getenv("MPROC_SPIN_US");
  if (e != NULL && e[0] != '\0')
    snprintf(suffix, sizeof suffix, strcmp(e, "0") == 0 ? " nospin"
                                                         : " spin=%sus", e);
#if !defined(BENCH_HAVE_OPENMP)
  int omp_wanted = on[T_OMP] || on[T_OMP_C] || on[T_SCALING];
  on[T_OMP] = on[T_OMP_C] = 0;
#endif

  int need_sq = on[T_SERIAL] || on[T_SQUARE] || on[T_COPY] || on[T_THREAD] ||
                on[T_OMP];
  int need_c = on[T_SERIAL_C] || on[T_COMPUTE] || on[T_THREAD_C] ||
               on[T_OMP_C];
  int64_t c_all = need_c ? c_n : 0; /* compute items to allocate */
  if (on[T_SCALING] && sc_n > c_all)
    c_all = sc_n;

  /* The pools first, before any array and before OpenMP's threads. */
  int rc;
  mp_pool *pool = NULL, *tpool = NULL;
  if (on[T_SQUARE] || on[T_COPY] || on[T_COMPUTE] || on[T_MEMORY])
    if ((rc = mp_pool_new(&pool, 0)) != 0)
      die("mp_pool_new", rc);
  if (on[T_THREAD] || on[T_THREAD_C])
    if ((rc = mp_thread_pool_new(&tpool, 0)) != 0)
      die("mp_thread_pool_new", rc);
  int workers = pool ? mp_pool_workers(pool)
                     : tpool ? mp_pool_workers(tpool)
                             : mp_process_cpu_count();

  /* The arrays, pre-faulted. */
  if (need_sq) {
    sq_x = xmalloc((size_t)sq_n * 8);
    sq_y = xmalloc((size_t)sq_n * 8);
    fill_square(sq_x, sq_y, sq_n);
    sqs_x = shm_pair(&sq_shm, sq_n, 8);
    sqs_y = sqs_x + sq_n;
    fill_square(sqs_x, sqs_y, sq_n);
  }
  double ns_item = 0;
  if (c_all > 0) {
    if (iters == 0)
      iters = calibrate();
    ns_item = ns_per_item(iters, c_all < 20000 ? c_all : 20000);
    if ((rc = mp_args_new(&ctx_k)) != 0 ||
        (rc = mp_args_add_int(ctx_k, iters)) != 0)
      die("mp_args", rc);
    c_x = xmalloc((size_t)c_all * 8);
    c_y = xmalloc((size_t)c_all * 8);
    c_ref = xmalloc((size_t)c_all * 8);
    fill_compute(c_x, c_y, c_all);
    cs_x = shm_pair(&c_shm, c_all, 8);
    cs_y = cs_x + c_all;
    fill_compute(cs_x, cs_y, c_all);
    compute_kernel(c_x, c_ref, 0, (size_t)c_all, ctx_k); /* the reference */
  }

  if (need_sq || c_all > 0) /* not for the memory alone */
    printf("info mproc-array: start_method=%s workers=%d thread_workers=%d "
           "n=%lld compute_n=%lld scaling_n=%lld iters=%d "
           "compute_ns_per_item=%.3f\n",
           mp_get_start_method(), workers,
           tpool ? mp_pool_workers(tpool) : workers, (long long)sq_n,
           (long long)c_n, (long long)sc_n, iters, ns_item);
#if defined(BENCH_HAVE_OPENMP)
  if (on[T_OMP] || on[T_OMP_C] || on[T_SCALING])
    printf("info omp: openmp=%d threads=%d schedule=default\n", _OPENMP,
           workers);
#else
  if (omp_wanted)
    printf("info omp: none (built without OpenMP: the omp measurements "
           "are skipped)\n");
#endif
  fflush(stdout);

  series s[T_SCALING];
  memset(s, 0, sizeof s);
  for (int t = 0; t < T_SCALING; t++) {
    snprintf(s[t].label, sizeof s[t].label, "%s", test_labels[t]);
    s[t].unit = "items_s";
  }
  int active[T_SCALING], na = 0;
  for (int t = 0; t < T_SCALING; t++)
    if (on[t])
      active[na++] = t;

  /* Warm-up: one call of each (the workers map the segments, the copy
   * path makes its scratch segment, OpenMP starts its threads); the
   * compute ones over a few items. */
  for (int k = 0; k < na; k++) {
    int t = active[k];
    mp_pool *p = (t == T_THREAD || t == T_THREAD_C) ? tpool : pool;
    int64_t n = t < T_SERIAL_C ? sq_n : (c_n < 1000 ? c_n : 1000);
    (void)once(t, p, workers, n, "warm-up");
  }

  /* Repetitions: each runs every measurement once, the first rotating. */
  for (int r = 0; r < reps; r++)
    for (int k = 0; k < na; k++) {
      int t = active[(r + k) % na];
      mp_pool *p = (t == T_THREAD || t == T_THREAD_C) ? tpool : pool;
      run_rate(t, p, workers, t < T_SERIAL_C ? sq_n : c_n, &s[t]);
    }
  for (int t = 0; t < T_SCALING; t++) {
    print_series(&s[t], samples);
    free(s[t].v);
  }
  fflush(stdout);

  if (on[T_SCALING])
    run_scaling(reps, sc_n, samples);
  if (on[T_MEMORY]) {
    /* the other arrays go first: only the memory test's remain */
    free(sq_x);
    free(sq_y);
    free(c_x);
    free(c_y);
    free(c_ref);
    sq_x = sq_y = NULL;
    c_x = c_y = c_ref = NULL;
    run_memory(pool, reps, mem_small, mem_big, samples);
  }
  fflush(stdout);

  mp_pool_free(pool);
  mp_pool_free(tpool);
  mp_shm_free(sq_shm);
  mp_shm_free(c_shm);
  mp_args_free(ctx_k);
  free(sq_x);
  free(sq_y);
  free(c_x);
  free(c_y);
  free(c_ref);
  return 0;
}
