/*
 * bench_pool.c - throughput and latency of mproc's process pool and
 * process executor, with the floors they are judged against.
 *
 * One pool (mp_pool_new(&pool, 0): as many workers as usable CPUs) and one
 * executor (mp_executor_new(&ex, MP_POOL_PROCESS, 0)) are created at the
 * start, with the default start method (fork on Linux), and warmed up;
 * their creation is not measured.  The task everywhere is
 *     square(a, r): mp_args_add_int(r, x * x), x = mp_args_int(a, 0).
 *
 * Measurements (one sample per repetition; see README.md):
 *   mproc map          tasks/s: mp_pool_map(pool, square, items, 0, &res)
 *                      over N = 1,000,000 int64 items (a tuple built once,
 *                      outside the timing), default chunksize.
 *   mproc map cs1      tasks/s: the same over N = 100,000 items with
 *                      chunksize 1.
 *   c serial map       tasks/s: the map without a pool, in this process:
 *                      for each item, x = mp_args_int(items, i), then
 *                      mp_args_add_int(res, x * x): the same input and
 *                      output tuples, no task calls, no IPC.  The floor
 *                      of the maps.
 *   mproc apply        µs per round trip: mp_pool_apply_async(pool,
 *                      square, (i), ...) + mp_async_get + mp_async_free,
 *                      one task at a time; every round trip is a sample.
 *   os ping-pong       µs per round trip: write + read of 8 bytes on a
 *                      socketpair(AF_UNIX, SOCK_STREAM) with a plain
 *                      fork()ed child echoing them: the floor of the
 *                      above (a pool's round trip is at least that).
 *   mproc executor     futures/s: N = 20,000 mp_executor_submit(ex,
 *                      square, (i)) then mp_futures_wait(ALL_COMPLETED);
 *                      the futures are checked and freed afterwards,
 *                      outside the timing.
 *   mproc executor get futures/s (diagnostic, only with --only
 *                      executor-get): the same, waiting with mp_async_get
 *                      on each future in turn.
 *
 * Spinning: mproc reads MPROC_SPIN_US at first use.  When it is set, the
 * mproc labels get a suffix: " nospin" for 0, " spin=<N>us" otherwise.
 *
 * Placement: nothing is pinned, unless --pin one: then this process is
 * pinned to the first CPU it may use before anything starts (the pool
 * workers and the ping-pong child inherit it: everything shares one CPU)
 * and every label ends in " @one-cpu".
 *
 * A rate sample repeats its operation until it has run for at least
 * --min-time seconds (default 0.2) and is the number of tasks over the
 * time they took.  Every result is checked (count, every value), outside
 * the timing; a wrong one ends the program with status 2.
 *
 * Output, one line per label, with the unit in the keys:
 *   mproc map median_tasks_s=... min_tasks_s=... p10_tasks_s=...
 *     p90_tasks_s=... n=3
 * (units: tasks_s, us, futures_s).  With --samples, each line is followed
 * by "samples <label>: v1,v2,...".  First comes a line
 *   info mproc: start_method=fork workers=2 executor_workers=2
 *
 * Flags: --reps R (samples per measurement, default 3), --scale F
 *        (multiplies every default count), --map-n N (1000000),
 *        --cs1-n N (100000), --rt-n N (round trips per repetition, 5000),
 *        --exec-n N (20000), --min-time S (0.2), --only map|cs1|serial|
 *        apply|os|executor|executor-get (repeatable), --pin one,
 *        --samples.
 * POSIX only.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif
#if !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
#  define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mproc.h>

#include "bench_util.h"

/* ---- series of samples ------------------------------------------------- */

static char suffix[32]; /* " nospin", " spin=<N>us" or "" (mproc labels) */
static const char *place = ""; /* " @one-cpu" with --pin one */

typedef struct series {
  const char *label;
  const char *unit; /* tasks_s, us, futures_s */
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
  snprintf(label, sizeof label, "%s%s%s", s->label,
           strncmp(s->label, "mproc ", 6) == 0 ? suffix : "", place);
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

/* ---- the task ---------------------------------------------------------- */

static int square(const mp_args *a, mp_args *r) {
  int64_t x = mp_args_int(a, 0);
  return mp_args_add_int(r, x * x);
}

static void wrong(const char *what, size_t i, int64_t got, int64_t want) {
  fprintf(stderr, "bench_pool: %s: result %zu is %lld, expected %lld\n",
          what, i, (long long)got, (long long)want);
  exit(2);
}

/* items: 0, 1, ..., n - 1 */
static mp_args *make_items(int64_t n) {
  mp_args *a;
  int rc;
  if ((rc = mp_args_new(&a)) != 0)
    die("mp_args_new", rc);
  for (int64_t i = 0; i < n; i++)
    if ((rc = mp_args_add_int(a, i)) != 0)
      die("mp_args_add_int", rc);
  return a;
}

static void check_squares(const char *what, const mp_args *res, int64_t n) {
  if ((int64_t)mp_args_count(res) != n) {
    fprintf(stderr, "bench_pool: %s: %zu results, expected %lld\n", what,
            mp_args_count(res), (long long)n);
    exit(2);
  }
  for (int64_t i = 0; i < n; i++) {
    int64_t v = mp_args_int(res, (size_t)i);
    if (v != i * i)
      wrong(what, (size_t)i, v, i * i);
  }
}

/* ---- maps -------------------------------------------------------------- */

static double min_time = 0.2;

/* One sample: maps over `items` until min_time has passed. */
static void run_map(mp_pool *pool, const mp_args *items, size_t chunksize,
                    series *s) {
  int64_t n = (int64_t)mp_args_count(items), done = 0;
  double spent = 0;
  while (spent < min_time) {
    mp_args *res = NULL;
    double t0 = now();
    int rc = mp_pool_map(pool, square, items, chunksize, &res);
    spent += now() - t0;
    if (rc != 0)
      die("mp_pool_map", rc);
    check_squares(s->label, res, n);
    mp_args_free(res);
    done += n;
  }
  add(s, (double)done / spent);
}

static void run_serial(const mp_args *items, series *s) {
  int64_t n = (int64_t)mp_args_count(items), done = 0;
  double spent = 0;
  while (spent < min_time) {
    mp_args *res = NULL;
    int rc = 0;
    double t0 = now();
    if ((rc = mp_args_new(&res)) != 0)
      die("mp_args_new", rc);
    for (int64_t i = 0; i < n && rc == 0; i++) {
      int64_t x = mp_args_int(items, (size_t)i);
      rc = mp_args_add_int(res, x * x);
    }
    spent += now() - t0;
    if (rc != 0)
      die("mp_args_add_int", rc);
    check_squares(s->label, res, n);
    mp_args_free(res);
    done += n;
  }
  add(s, (double)done / spent);
}

/* ---- round trips ------------------------------------------------------- */

static double apply_once(mp_pool *pool, int64_t x) {
  mp_args *a;
  mp_async *h;
  const mp_args *r;
  int rc;
  if ((rc = mp_args_new(&a)) != 0 || (rc = mp_args_add_int(a, x)) != 0)
    die("mp_args", rc);
  double t0 = now();
  if ((rc = mp_pool_apply_async(pool, square, a, NULL, NULL, NULL, &h)) != 0)
    die("mp_pool_apply_async", rc);
  if ((rc = mp_async_get(h, MP_FOREVER, &r)) != 0)
    die("mp_async_get", rc);
  int64_t v = mp_args_int(r, 0);
  mp_async_free(h);
  double t = now() - t0;
  mp_args_free(a);
  if (v != x * x)
    wrong("mproc apply", 0, v, x * x);
  return t;
}

static void run_apply(mp_pool *pool, int64_t n, series *s) {
  for (int64_t i = 0; i < n; i++)
    add(s, apply_once(pool, i) * 1e6);
}

/* The raw floor: a plain fork()ed child echoing 8 bytes on a socketpair.
 * Started before anything of mproc's, stopped by a message of all 0xff
 * (the pool workers inherit our end, so end of file never comes). */
static int os_fd = -1;
static pid_t os_pid = -1;

static const unsigned char quit_msg[8] = {255, 255, 255, 255,
                                          255, 255, 255, 255};

static void start_os(void) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
    die("socketpair", 0);
  pid_t pid = fork();
  if (pid < 0)
    die("fork", 0);
  if (pid == 0) {
    close(sv[0]);
    unsigned char buf[8];
    for (;;) {
      if (bench_read_full(sv[1], buf, 8) != 0)
        _exit(4);
      if (memcmp(buf, quit_msg, 8) == 0)
        _exit(0);
      if (bench_write_full(sv[1], buf, 8) != 0)
        _exit(5);
    }
  }
  close(sv[1]);
  os_fd = sv[0];
  os_pid = pid;
}

static void stop_os(void) {
  if (os_pid < 0)
    return;
  int st;
  if (bench_write_full(os_fd, quit_msg, 8) != 0)
    die("write", 0);
  while (waitpid(os_pid, &st, 0) < 0)
    if (errno != EINTR)
      die("waitpid", 0);
  close(os_fd);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "bench_pool: the ping-pong child failed (%d)\n", st);
    exit(2);
  }
}

static double os_once(uint64_t x) {
  unsigned char out[8], in[8];
  memcpy(out, &x, 8);
  double t0 = now();
  if (bench_write_full(os_fd, out, 8) != 0 ||
      bench_read_full(os_fd, in, 8) != 0)
    die("ping-pong", 0);
  double t = now() - t0;
  if (memcmp(in, out, 8) != 0) {
    fprintf(stderr, "bench_pool: the ping-pong child echoed wrong bytes\n");
    exit(2);
  }
  return t;
}

static void run_os(int64_t n, series *s) {
  for (int64_t i = 0; i < n; i++)
    add(s, os_once((uint64_t)i) * 1e6);
}

/* ---- executor ---------------------------------------------------------- */

static mp_args **exec_args;
static mp_async **futs;

/* Submit n tasks, wait (ALL_COMPLETED, or mp_async_get on each when
 * get_each); return the time. The futures are checked and freed after. */
static double exec_batch(mp_executor *ex, int64_t n, int get_each,
                         const char *what) {
  int rc;
  double t0 = now();
  for (int64_t i = 0; i < n; i++)
    if ((rc = mp_executor_submit(ex, square, exec_args[i], &futs[i])) != 0)
      die("mp_executor_submit", rc);
  if (get_each) {
    for (int64_t i = 0; i < n; i++)
      if ((rc = mp_async_get(futs[i], MP_FOREVER, NULL)) != 0)
        die("mp_async_get", rc);
  } else {
    rc = mp_futures_wait(futs, (size_t)n, MP_ALL_COMPLETED, MP_FOREVER,
                         NULL);
    if (rc != (int)n)
      die("mp_futures_wait", rc < 0 ? rc : MP_ETIMEDOUT);
  }
  double t = now() - t0;
  for (int64_t i = 0; i < n; i++) {
    const mp_args *r;
    if ((rc = mp_async_get(futs[i], 0, &r)) != 0)
      die("mp_async_get", rc);
    int64_t v = mp_args_int(r, 0);
    if (v != i * i)
      wrong(what, (size_t)i, v, i * i);
    mp_async_free(futs[i]);
    futs[i] = NULL;
  }
  return t;
}

static void run_executor(mp_executor *ex, int64_t n, int get_each,
                         series *s) {
  int64_t done = 0;
  double spent = 0;
  while (spent < min_time) {
    spent += exec_batch(ex, n, get_each, s->label);
    done += n;
  }
  add(s, (double)done / spent);
}

/* ---- main -------------------------------------------------------------- */

enum { T_MAP, T_CS1, T_SERIAL, T_APPLY, T_OS, T_EXEC, T_EXEC_GET, T_COUNT };
static const char *const test_names[T_COUNT] = {
    "map", "cs1", "serial", "apply", "os", "executor", "executor-get"};

static void usage(void) {
  fprintf(stderr,
          "usage: bench_pool [--reps R] [--scale F] [--map-n N] [--cs1-n N] "
          "[--rt-n N] [--exec-n N] [--min-time S]\n"
          "                  [--only map|cs1|serial|apply|os|executor|"
          "executor-get]... [--pin one] [--samples]\n");
  exit(2);
}

int main(int argc, char **argv) {
  bench_name = "bench_pool";
  MP_MAIN_GUARD(argc, argv);

  int reps = 3, samples = 0, any_only = 0, on[T_COUNT] = {0};
  double scale = 1.0;
  int64_t map_n = 0, cs1_n = 0, rt_n = 0, exec_n = 0;
  const char *pin = NULL;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    int more = i + 1 < argc;
    if (strcmp(o, "--reps") == 0 && more)
      reps = atoi(argv[++i]);
    else if (strcmp(o, "--scale") == 0 && more)
      scale = atof(argv[++i]);
    else if (strcmp(o, "--map-n") == 0 && more)
      map_n = atoll(argv[++i]);
    else if (strcmp(o, "--cs1-n") == 0 && more)
      cs1_n = atoll(argv[++i]);
    else if (strcmp(o, "--rt-n") == 0 && more)
      rt_n = atoll(argv[++i]);
    else if (strcmp(o, "--exec-n") == 0 && more)
      exec_n = atoll(argv[++i]);
    else if (strcmp(o, "--min-time") == 0 && more)
      min_time = atof(argv[++i]);
    else if (strcmp(o, "--pin") == 0 && more)
      pin = argv[++i];
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
  if (reps < 1 || scale <= 0 || min_time < 0 || map_n < 0 || cs1_n < 0 ||
      rt_n < 0 || exec_n < 0)
    usage();
  if (!any_only) /* every measurement but the diagnostic executor-get */
    for (int t = 0; t < T_EXEC_GET; t++)
      on[t] = 1;
  map_n = bench_scaled(map_n, 1000000, scale);
  cs1_n = bench_scaled(cs1_n, 100000, scale);
  rt_n = bench_scaled(rt_n, 5000, scale);
  exec_n = bench_scaled(exec_n, 20000, scale);

  const char *e = getenv("MPROC_SPIN_US");
  if (e != NULL && e[0] != '\0')
    snprintf(suffix, sizeof suffix, strcmp(e, "0") == 0 ? " nospin"
                                                         : " spin=%sus", e);
  if (pin != NULL) {
    int cpus[1];
    if (strcmp(pin, "one") != 0)
      usage();
    if (bench_allowed_cpus(cpus, 1) < 1 || bench_pin(cpus[0]) != 0)
      die("sched_setaffinity", 0);
    place = " @one-cpu";
  }

  /* The raw child first: it must not inherit mproc's threads or pools. */
  if (on[T_OS])
    start_os();

  int rc;
  mp_pool *pool = NULL;
  mp_executor *ex = NULL;
  mp_args *items = NULL, *items_cs1 = NULL;
  if (on[T_MAP] || on[T_CS1] || on[T_APPLY]) {
    if ((rc = mp_pool_new(&pool, 0)) != 0)
      die("mp_pool_new", rc);
  }
  if (on[T_EXEC] || on[T_EXEC_GET]) {
    if ((rc = mp_executor_new(&ex, MP_POOL_PROCESS, 0)) != 0)
      die("mp_executor_new", rc);
    exec_args = calloc((size_t)exec_n, sizeof *exec_args);
    futs = calloc((size_t)exec_n, sizeof *futs);
    if (exec_args == NULL || futs == NULL)
      die("calloc", 0);
    for (int64_t i = 0; i < exec_n; i++)
      if ((rc = mp_args_new(&exec_args[i])) != 0 ||
          (rc = mp_args_add_int(exec_args[i], i)) != 0)
        die("mp_args", rc);
  }
  if (on[T_MAP] || on[T_SERIAL])
    items = make_items(map_n);
  if (on[T_CS1])
    items_cs1 = make_items(cs1_n);
  int nproc = mp_process_cpu_count();
  if (pin == NULL && e == NULL) /* the configuration of the budgets */
    printf("info mproc: start_method=%s workers=%d executor_workers=%d\n",
           mp_get_start_method(), pool ? mp_pool_workers(pool) : nproc,
           nproc);

  /* Warm-up: the workers' first tasks, page faults, caches, the CPU
   * frequency; the chunk-time estimate of the pool; one map of the
   * measured size (as bench_pool.py does). */
  {
    mp_args *w = make_items(10000), *res = NULL;
    if (pool != NULL) {
      if ((rc = mp_pool_map(pool, square, w, 0, &res)) != 0)
        die("mp_pool_map (warm-up)", rc);
      mp_args_free(res);
      if ((rc = mp_pool_map(pool, square, w, 1, &res)) != 0)
        die("mp_pool_map (warm-up)", rc);
      mp_args_free(res);
      if (items != NULL) { /* one map of the measured size: its buffers */
        if ((rc = mp_pool_map(pool, square, items, 0, &res)) != 0)
          die("mp_pool_map (warm-up)", rc);
        mp_args_free(res);
      }
      for (int i = 0; i < 500; i++)
        (void)apply_once(pool, i);
    }
    mp_args_free(w);
    if (ex != NULL)
      (void)exec_batch(ex, exec_n < 2000 ? exec_n : 2000, 0, "warm-up");
    if (os_pid > 0)
      for (int i = 0; i < 500; i++)
        (void)os_once((uint64_t)i);
  }

  series s[T_COUNT] = {
      {"mproc map", "tasks_s", NULL, 0, 0},
      {"mproc map cs1", "tasks_s", NULL, 0, 0},
      {"c serial map", "tasks_s", NULL, 0, 0},
      {"mproc apply", "us", NULL, 0, 0},
      {"os ping-pong", "us", NULL, 0, 0},
      {"mproc executor", "futures_s", NULL, 0, 0},
      {"mproc executor get", "futures_s", NULL, 0, 0},
  };
  int active[T_COUNT], na = 0;
  for (int t = 0; t < T_COUNT; t++)
    if (on[t])
      active[na++] = t;

  /* Repetitions: each runs every measurement once, the first rotating. */
  for (int r = 0; r < reps; r++)
    for (int k = 0; k < na; k++) {
      int t = active[(r + k) % na];
      switch (t) {
      case T_MAP:
        run_map(pool, items, 0, &s[t]);
        break;
      case T_CS1:
        run_map(pool, items_cs1, 1, &s[t]);
        break;
      case T_SERIAL:
        run_serial(items, &s[t]);
        break;
      case T_APPLY:
        run_apply(pool, rt_n, &s[t]);
        break;
      case T_OS:
        run_os(rt_n, &s[t]);
        break;
      case T_EXEC:
        run_executor(ex, exec_n, 0, &s[t]);
        break;
      default:
        run_executor(ex, exec_n, 1, &s[t]);
        break;
      }
    }

  for (int t = 0; t < T_COUNT; t++)
    print_series(&s[t], samples);
  fflush(stdout);

  stop_os();
  mp_pool_free(pool);
  mp_executor_free(ex);
  mp_args_free(items);
  mp_args_free(items_cs1);
  if (exec_args != NULL)
    for (int64_t i = 0; i < exec_n; i++)
      mp_args_free(exec_args[i]);
  free(exec_args);
  free(futs);
  for (int t = 0; t < T_COUNT; t++)
    free(s[t].v);
  return 0;
}
