/*
 * bench_sync.c - throughput of mproc's queues, cost of its locks and of a
 * shared Value under contention, with the floors they are judged against.
 *
 * Measurements (one sample per repetition; see README.md):
 *   mproc queue 64B     messages/s: mp_queue_new(&q, 0); a child (fork
 *                       context) puts W + N messages of 64 bytes with
 *                       mp_queue_put(q, buf, 64, MP_FOREVER); the parent
 *                       takes W of them (warm-up, untimed), then times
 *                       N mp_queue_get_into.
 *   mproc queue 1MiB    MB/s (10^6 bytes), the same with 1 MiB messages.
 *   os memcpy           MB/s: memcpy of a 256 MiB buffer into another
 *                       (larger than any cache; both faulted in first and
 *                       kept out of the children: MADV_DONTFORK), the
 *                       floor of the above.
 *   mproc lock          ns per mp_lock_acquire(l, MP_FOREVER) +
 *                       mp_lock_release(l), one thread, uncontended.
 *   mproc rlock         the same with mp_rlock_new (a Value's lock).
 *   os futex lock       ns per acquire + release of a minimal futex mutex
 *                       on a word in MAP_SHARED|MAP_ANONYMOUS memory
 *                       (compare-and-swap 0->1; release: exchange with 0,
 *                       FUTEX_WAKE only when the old value said there are
 *                       waiters), called through non-inlined functions:
 *                       the floor of the two above.
 *   mproc value         increments/s in all: mp_value_new(&v, 'q', NULL);
 *                       the parent and one child (fork) each do K times
 *                       mp_lock_acquire(mp_value_get_lock(v), MP_FOREVER);
 *                       (*(int64_t *)mp_value_ptr(v))++; mp_lock_release;
 *                       timed from the start signal until both are done;
 *                       the final value must be exactly 2K (else exit 2).
 *
 * Every message is checked (length, sequence number at both ends; the
 * first one in full), so a lost, duplicated or torn message ends the run
 * with status 2.
 *
 * Spinning: mproc reads MPROC_SPIN_US at first use.  When it is set, the
 * mproc labels get a suffix: " nospin" for 0, " spin=<N>us" otherwise.
 * --nospin sets MPROC_SPIN_US=0 and re-executes this program.
 *
 * Placement (Linux): every sample of a two-process measurement (queues,
 * value) is tagged by the CPUs of parent and child before and after it
 * (bench_util), like bench_pipe: the tagged samples are printed again as
 * "<label> @same-cpu" and "<label> @cross-cpu".  --pin same|cross pins
 * them instead (sched_setaffinity: the parent to the first CPU it may use,
 * the child to the same one or to the second), and then only the tagged
 * lines are printed for them.
 *
 * Output, one line per label, with the unit in the keys:
 *   mproc queue 64B median_msgs_s=... min_msgs_s=... p10_msgs_s=...
 *     p90_msgs_s=... n=3
 * (units: msgs_s, MB_s, ns, incs_s).  With --samples, each line is
 * followed by "samples <label>: v1,v2,..." in the same unit.
 *
 * Flags: --reps R (samples per measurement, default 3), --scale F
 *        (multiplies every default count), --q64-n N (1000000),
 *        --q1m-n N (2000), --lock-n N (10000000), --value-n K (1000000
 *        per process), --memcpy-mib M (256), --only queue64|queue1m|
 *        memcpy|lock|value (repeatable), --pin same|cross, --nospin,
 *        --samples.
 * POSIX only (the futex floor needs Linux; elsewhere it yields instead).
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif
#if !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
#  define _POSIX_C_SOURCE 200809L
#endif
/* Apple's headers hide what POSIX leaves out (MAP_ANON, MSG_DONTWAIT,
 * INADDR_LOOPBACK) once _POSIX_C_SOURCE is set, unless asked for. */
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
#  define _DARWIN_C_SOURCE
#endif

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#if defined(__linux__)
#  include <linux/futex.h>
#  include <sys/syscall.h>
#endif

#include <mproc.h>

#include "bench_util.h"

#ifndef MAP_ANONYMOUS
#  define MAP_ANONYMOUS MAP_ANON
#endif

/* ---- series of samples ------------------------------------------------- */

enum { P_NONE, P_SAME, P_CROSS };
static const char *const place_names[] = {"", "same-cpu", "cross-cpu"};

typedef struct series {
  char label[64];
  const char *unit; /* msgs_s, MB_s, ns, incs_s */
  int two_proc;     /* parent + child: tagged by placement */
  double *v;
  unsigned char *tag; /* P_* */
  int n, cap;
} series;

static series all[16];
static int nseries;
static int pinned = P_NONE; /* --pin: P_SAME or P_CROSS */

static series *series_get(const char *label, const char *unit,
                          int two_proc) {
  for (int i = 0; i < nseries; i++)
    if (strcmp(all[i].label, label) == 0)
      return &all[i];
  if (nseries == (int)(sizeof all / sizeof all[0])) {
    fprintf(stderr, "bench_sync: too many labels\n");
    exit(2);
  }
  series *s = &all[nseries++];
  snprintf(s->label, sizeof s->label, "%s", label);
  s->unit = unit;
  s->two_proc = two_proc;
  return s;
}

static void add(series *s, double x, int tag) {
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 16;
    s->v = realloc(s->v, (size_t)s->cap * sizeof *s->v);
    s->tag = realloc(s->tag, (size_t)s->cap);
    if (s->v == NULL || s->tag == NULL)
      die("realloc", 0);
  }
  s->v[s->n] = x;
  s->tag[s->n++] = (unsigned char)tag;
}

/* The placement of parent and child from their CPUs before and after
 * (the pinned one with --pin). */
static int placement(int p0, int c0, int p1, int c1) {
  if (pinned != P_NONE)
    return pinned;
  if (p0 >= 0 && c0 >= 0 && p0 == p1 && c0 == c1)
    return p0 == c0 ? P_SAME : P_CROSS;
  return P_NONE;
}

static void print_series(const series *s, int samples) {
  double *sub = malloc((size_t)s->n * sizeof *sub);
  if (sub == NULL)
    die("malloc", 0);
  for (int pl = -1; pl <= P_CROSS; pl++) {
    if (pl == P_NONE || (pl < 0 && pinned != P_NONE && s->two_proc))
      continue;
    int c = 0;
    for (int i = 0; i < s->n; i++)
      if (pl < 0 || s->tag[i] == pl)
        sub[c++] = s->v[i];
    if (c == 0)
      continue;
    char label[96];
    snprintf(label, sizeof label, "%.63s%s%s", s->label, pl < 0 ? "" : " @",
             pl < 0 ? "" : place_names[pl]);
    if (samples) {
      printf("samples %s:", label);
      for (int i = 0; i < c; i++)
        printf("%s%.3f", i ? "," : " ", sub[i]);
      printf("\n");
    }
    qsort(sub, (size_t)c, sizeof *sub, cmp_double);
    const char *u = s->unit;
    printf("%s median_%s=%.2f min_%s=%.2f p10_%s=%.2f p90_%s=%.2f n=%d\n",
           label, u, pct(sub, c, 0.5), u, sub[0], u, pct(sub, c, 0.1), u,
           pct(sub, c, 0.9), c);
  }
  free(sub);
}

/* ---- common ------------------------------------------------------------ */

static char suffix[32];     /* " nospin", " spin=<N>us" or "" */
static int child_cpu = -1;  /* --pin cross: the child's CPU */
static mp_context *fork_ctx;

static void mlabel(char *out, size_t cap, const char *what) {
  snprintf(out, cap, "mproc %s%s", what, suffix);
}

static mp_process *start_child(mp_target_fn fn, mp_args *args) {
  mp_process *p;
  int rc;
  if ((rc = mp_process_new(&p, fn, args)) != 0)
    die("mp_process_new", rc);
  if ((rc = mp_process_set_context(p, fork_ctx)) != 0)
    die("mp_process_set_context", rc);
  if ((rc = mp_process_start(p)) != 0)
    die("mp_process_start", rc);
  mp_args_free(args);
  return p;
}

static void child_pin(void) {
  if (child_cpu >= 0 && bench_pin(child_cpu) != 0)
    _exit(6);
}

/* ---- queue ------------------------------------------------------------- */

static unsigned char pattern(size_t j) { return (unsigned char)(j * 7u + 1u); }

static void fill(unsigned char *buf, size_t size, int64_t seq) {
  memcpy(buf, &seq, 8);
  memcpy(buf + size - 8, &seq, 8);
}

/* Child: put args[1] messages of args[2] bytes. */
static int producer(const mp_args *a) {
  mp_queue *q = mp_args_queue(a, 0);
  int64_t count = mp_args_int(a, 1);
  size_t size = (size_t)mp_args_int(a, 2);
  child_pin();
  unsigned char *buf = malloc(size);
  if (q == NULL || buf == NULL)
    return 3;
  for (size_t j = 8; j < size - 8; j++)
    buf[j] = pattern(j);
  for (int64_t i = 0; i < count; i++) {
    fill(buf, size, i);
    if (mp_queue_put(q, buf, size, MP_FOREVER) != 0)
      return 4;
  }
  free(buf);
  return 0;
}

static void bad_message(const char *what, int64_t i, size_t got) {
  fprintf(stderr, "bench_sync: %s: message %lld is wrong (%zu bytes)\n",
          what, (long long)i, got);
  exit(2);
}

static void run_queue(size_t size, int64_t n, int64_t warm, series *s) {
  mp_queue *q;
  mp_args *args;
  int rc;
  if ((rc = mp_queue_new(&q, 0)) != 0)
    die("mp_queue_new", rc);
  if ((rc = mp_args_new(&args)) != 0 || (rc = mp_args_add_queue(args, q)) ||
      (rc = mp_args_add_int(args, warm + n)) ||
      (rc = mp_args_add_int(args, (int64_t)size)))
    die("mp_args", rc);
  mp_process *p = start_child(producer, args);
  long pid = (long)mp_process_pid(p);
  unsigned char *buf = malloc(size);
  if (buf == NULL)
    die("malloc", 0);
  size_t got;
  int64_t seq, seq2;
  for (int64_t i = 0; i < warm; i++) {
    if ((rc = mp_queue_get_into(q, buf, size, &got, MP_FOREVER)) != 0)
      die("mp_queue_get_into", rc);
    memcpy(&seq, buf, 8);
    memcpy(&seq2, buf + size - 8, 8);
    if (got != size || seq != i || seq2 != i)
      bad_message(s->label, i, got);
    if (i == 0)
      for (size_t j = 8; j < size - 8; j++)
        if (buf[j] != pattern(j))
          bad_message(s->label, i, got);
  }
  int p0 = bench_my_cpu(), c0 = bench_cpu_of(pid);
  double t0 = now();
  for (int64_t i = warm; i < warm + n; i++) {
    if ((rc = mp_queue_get_into(q, buf, size, &got, MP_FOREVER)) != 0)
      die("mp_queue_get_into", rc);
    memcpy(&seq, buf, 8);
    memcpy(&seq2, buf + size - 8, 8);
    if (got != size || seq != i || seq2 != i)
      bad_message(s->label, i, got);
  }
  double t = now() - t0;
  int p1 = bench_my_cpu(), c1 = bench_cpu_of(pid);
  bench_join_child(p, s->label);
  if (mp_queue_qsize(q) != 0) {
    fprintf(stderr, "bench_sync: %s: queue not empty at the end\n",
            s->label);
    exit(2);
  }
  mp_queue_free(q);
  free(buf);
  double x = size <= 64 ? (double)n / t : (double)n * (double)size / t / 1e6;
  add(s, x, placement(p0, c0, p1, c1));
}

/* ---- memcpy ------------------------------------------------------------ */

static unsigned char *mc_src, *mc_dst;
static volatile unsigned char sink;

/* A buffer the children do not inherit: after a fork, every page the
 * parent still shares with a child is copy-on-write, and the next memcpy
 * into it would take one page fault per page (3x slower here). */
static unsigned char *big_buffer(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    die("mmap", 0);
#if defined(MADV_DONTFORK)
  if (madvise(p, bytes, MADV_DONTFORK) != 0)
    die("madvise(MADV_DONTFORK)", 0);
#endif
  return p;
}

static void run_memcpy(size_t mib, series *s) {
  size_t bytes = mib << 20;
  if (mc_src == NULL) {
    mc_src = big_buffer(bytes);
    mc_dst = big_buffer(bytes);
    memset(mc_src, 0x5a, bytes); /* fault every page in, outside timing */
    memset(mc_dst, 0, bytes);
    memcpy(mc_dst, mc_src, bytes);
  }
  mc_src[0]++;
  double t0 = now();
  memcpy(mc_dst, mc_src, bytes);
  double t = now() - t0;
  sink = mc_dst[0];
  add(s, (double)bytes / t / 1e6, P_NONE);
}

/* ---- locks ------------------------------------------------------------- */

/* The floor: a minimal futex mutex (0 free, 1 locked, 2 locked with
 * waiters), as a library would offer it: behind a function call. */
__attribute__((noinline)) static void futex_lock(uint32_t *w) {
  uint32_t c = 0;
  if (__atomic_compare_exchange_n(w, &c, 1, 0, __ATOMIC_ACQUIRE,
                                  __ATOMIC_RELAXED))
    return;
  if (c != 2)
    c = __atomic_exchange_n(w, 2, __ATOMIC_ACQUIRE);
  while (c != 0) {
#if defined(__linux__)
    syscall(SYS_futex, w, FUTEX_WAIT, 2, NULL, NULL, 0);
#else
    sched_yield();
#endif
    c = __atomic_exchange_n(w, 2, __ATOMIC_ACQUIRE);
  }
}

__attribute__((noinline)) static void futex_unlock(uint32_t *w) {
  if (__atomic_exchange_n(w, 0, __ATOMIC_RELEASE) == 2) {
#if defined(__linux__)
    syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
#endif
  }
}

static uint32_t *futex_word;

static double time_futex(int64_t n) {
  uint32_t *w = futex_word;
  double t0 = now();
  for (int64_t i = 0; i < n; i++) {
    futex_lock(w);
    futex_unlock(w);
  }
  return now() - t0;
}

static double time_mproc_lock(mp_lock *l, int64_t n) {
  double t0 = now();
  for (int64_t i = 0; i < n; i++) {
    int rc = mp_lock_acquire(l, MP_FOREVER);
    if (rc != 0)
      die("mp_lock_acquire", rc);
    if ((rc = mp_lock_release(l)) != 0)
      die("mp_lock_release", rc);
  }
  return now() - t0;
}

static mp_lock *lk, *rlk;

/* One sample of each of the three, the order rotating with `rep`. */
static void run_locks(int64_t n, int rep, series *sl, series *sr,
                      series *sf) {
  int rc;
  if (lk == NULL) {
    if ((rc = mp_lock_new(&lk)) != 0)
      die("mp_lock_new", rc);
    if ((rc = mp_rlock_new(&rlk)) != 0)
      die("mp_rlock_new", rc);
    futex_word = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (futex_word == MAP_FAILED)
      die("mmap", 0);
    /* warm-up: page faults, caches, CPU frequency */
    (void)time_mproc_lock(lk, n / 10 + 1);
    (void)time_mproc_lock(rlk, n / 10 + 1);
    (void)time_futex(n / 10 + 1);
  }
  for (int k = 0; k < 3; k++) {
    switch ((rep + k) % 3) {
    case 0:
      add(sl, time_mproc_lock(lk, n) / (double)n * 1e9, P_NONE);
      break;
    case 1:
      add(sr, time_mproc_lock(rlk, n) / (double)n * 1e9, P_NONE);
      break;
    default:
      add(sf, time_futex(n) / (double)n * 1e9, P_NONE);
      break;
    }
  }
  if (mp_lock_locked(lk) || mp_lock_locked(rlk) || *futex_word != 0) {
    fprintf(stderr, "bench_sync: a lock is still held after the loop\n");
    exit(2);
  }
}

/* ---- shared value ------------------------------------------------------ */

static void increment(mp_value *v, int64_t k) {
  for (int64_t i = 0; i < k; i++) {
    int rc = mp_lock_acquire(mp_value_get_lock(v), MP_FOREVER);
    if (rc != 0)
      die("mp_lock_acquire", rc);
    (*(int64_t *)mp_value_ptr(v))++;
    if ((rc = mp_lock_release(mp_value_get_lock(v))) != 0)
      die("mp_lock_release", rc);
  }
}

/* Child: args = value, end time (raw 'd'), ready, go, K. */
static int incrementer(const mp_args *a) {
  mp_value *v = mp_args_value(a, 0), *tend = mp_args_value(a, 1);
  mp_event *ready = mp_args_event(a, 2), *go = mp_args_event(a, 3);
  int64_t k = mp_args_int(a, 4);
  child_pin();
  if (v == NULL || tend == NULL || ready == NULL || go == NULL)
    return 3;
  if (mp_event_set(ready) != 0 || mp_event_wait(go, MP_FOREVER) != 0)
    return 4;
  increment(v, k);
  *(double *)mp_value_ptr(tend) = now();
  return 0;
}

static void run_value(int64_t k, series *s) {
  mp_value *v, *tend;
  mp_event *ready = NULL, *go = NULL;
  mp_args *args;
  int rc;
  if ((rc = mp_value_new(&v, 'q', NULL)) != 0)
    die("mp_value_new", rc);
  if ((rc = mp_raw_value_new(&tend, 'd', NULL)) != 0)
    die("mp_raw_value_new", rc);
  if ((rc = mp_event_new(&ready)) != 0 || (rc = mp_event_new(&go)) != 0)
    die("mp_event_new", rc);
  if ((rc = mp_args_new(&args)) != 0 || (rc = mp_args_add_value(args, v)) ||
      (rc = mp_args_add_value(args, tend)) ||
      (rc = mp_args_add_event(args, ready)) ||
      (rc = mp_args_add_event(args, go)) || (rc = mp_args_add_int(args, k)))
    die("mp_args", rc);
  mp_process *p = start_child(incrementer, args);
  long pid = (long)mp_process_pid(p);
  if ((rc = mp_event_wait(ready, MP_FOREVER)) != 0)
    die("mp_event_wait", rc);
  int p0 = bench_my_cpu(), c0 = bench_cpu_of(pid);
  double t0 = now();
  if ((rc = mp_event_set(go)) != 0)
    die("mp_event_set", rc);
  increment(v, k);
  double tp = now();
  int p1 = bench_my_cpu(), c1 = bench_cpu_of(pid);
  bench_join_child(p, s->label);
  double tc = *(double *)mp_value_ptr(tend);
  int64_t total;
  if ((rc = mp_value_get_int(v, &total)) != 0)
    die("mp_value_get_int", rc);
  if (total != 2 * k) {
    fprintf(stderr, "bench_sync: %s: final value %lld, expected %lld\n",
            s->label, (long long)total, (long long)(2 * k));
    exit(2);
  }
  double t = (tc > tp ? tc : tp) - t0;
  mp_value_free(v);
  mp_value_free(tend);
  mp_event_free(ready);
  mp_event_free(go);
  add(s, (double)(2 * k) / t, placement(p0, c0, p1, c1));
}

/* ---- main -------------------------------------------------------------- */

enum { T_Q64, T_Q1M, T_MEMCPY, T_LOCK, T_VALUE, T_COUNT };
static const char *const test_names[T_COUNT] = {"queue64", "queue1m",
                                                "memcpy", "lock", "value"};

static void usage(void) {
  fprintf(stderr,
          "usage: bench_sync [--reps R] [--scale F] [--q64-n N] [--q1m-n N] "
          "[--lock-n N] [--value-n K] [--memcpy-mib M]\n"
          "                  [--only queue64|queue1m|memcpy|lock|value]... "
          "[--pin same|cross] [--nospin] [--samples]\n");
  exit(2);
}

int main(int argc, char **argv) {
  bench_name = "bench_sync";
  /* --nospin: MPROC_SPIN_US must be in the environment before mproc reads
   * it, so set it and start again (before the main guard: a spawned child
   * would never get here with --nospin anyway). */
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--nospin") == 0) {
      const char *e = getenv("MPROC_SPIN_US");
      if (e == NULL || strcmp(e, "0") != 0) {
        setenv("MPROC_SPIN_US", "0", 1);
#if defined(__linux__)
        execv("/proc/self/exe", argv);
#endif
        execvp(argv[0], argv);
        die("exec (--nospin)", 0);
      }
    }
  MP_MAIN_GUARD(argc, argv);

  int reps = 3, samples = 0, any_only = 0, on[T_COUNT] = {0};
  double scale = 1.0;
  int64_t q64_n = 0, q1m_n = 0, lock_n = 0, value_n = 0, mib = 256;
  const char *pin = NULL;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    int more = i + 1 < argc;
    if (strcmp(o, "--reps") == 0 && more)
      reps = atoi(argv[++i]);
    else if (strcmp(o, "--scale") == 0 && more)
      scale = atof(argv[++i]);
    else if (strcmp(o, "--q64-n") == 0 && more)
      q64_n = atoll(argv[++i]);
    else if (strcmp(o, "--q1m-n") == 0 && more)
      q1m_n = atoll(argv[++i]);
    else if (strcmp(o, "--lock-n") == 0 && more)
      lock_n = atoll(argv[++i]);
    else if (strcmp(o, "--value-n") == 0 && more)
      value_n = atoll(argv[++i]);
    else if (strcmp(o, "--memcpy-mib") == 0 && more)
      mib = atoll(argv[++i]);
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
    else if (strcmp(o, "--nospin") == 0)
      continue;
    else
      usage();
  }
  if (reps < 1 || scale <= 0 || mib < 1 || q64_n < 0 || q1m_n < 0 ||
      lock_n < 0 || value_n < 0)
    usage();
  if (!any_only)
    for (int t = 0; t < T_COUNT; t++)
      on[t] = 1;
  q64_n = bench_scaled(q64_n, 1000000, scale);
  q1m_n = bench_scaled(q1m_n, 2000, scale);
  lock_n = bench_scaled(lock_n, 10000000, scale);
  value_n = bench_scaled(value_n, 1000000, scale);

  const char *e = getenv("MPROC_SPIN_US");
  if (e != NULL && e[0] != '\0')
    snprintf(suffix, sizeof suffix, strcmp(e, "0") == 0 ? " nospin"
                                                         : " spin=%sus", e);

  if (pin != NULL) {
    int cpus[2], k = bench_allowed_cpus(cpus, 2);
    int cross = strcmp(pin, "cross") == 0;
    if (!cross && strcmp(pin, "same") != 0)
      usage();
    if (k < (cross ? 2 : 1)) {
      fprintf(stderr, "bench_sync: --pin %s: not enough CPUs\n", pin);
      return 2;
    }
    if (bench_pin(cpus[0]) != 0)
      die("sched_setaffinity", 0);
    if (cross)
      child_cpu = cpus[1];
    pinned = cross ? P_CROSS : P_SAME;
  }

  int rc;
  if ((rc = mp_get_context("fork", &fork_ctx)) != 0)
    die("mp_get_context(fork)", rc);

  char l[64];
  series *s_q64 = NULL, *s_q1m = NULL, *s_mc = NULL, *s_lock = NULL,
         *s_rlock = NULL, *s_futex = NULL, *s_val = NULL;
  /* Create the series in a fixed order (the order of the output). */
  if (on[T_Q64])
    mlabel(l, sizeof l, "queue 64B"), s_q64 = series_get(l, "msgs_s", 1);
  if (on[T_Q1M])
    mlabel(l, sizeof l, "queue 1MiB"), s_q1m = series_get(l, "MB_s", 1);
  if (on[T_MEMCPY])
    s_mc = series_get("os memcpy", "MB_s", 0);
  if (on[T_LOCK]) {
    mlabel(l, sizeof l, "lock"), s_lock = series_get(l, "ns", 0);
    mlabel(l, sizeof l, "rlock"), s_rlock = series_get(l, "ns", 0);
    s_futex = series_get("os futex lock", "ns", 0);
  }
  if (on[T_VALUE])
    mlabel(l, sizeof l, "value"), s_val = series_get(l, "incs_s", 1);

  int active[T_COUNT], na = 0;
  for (int t = 0; t < T_COUNT; t++)
    if (on[t])
      active[na++] = t;

  /* Repetitions: each runs every measurement once, the first rotating. */
  for (int r = 0; r < reps; r++)
    for (int k = 0; k < na; k++) {
      switch (active[(r + k) % na]) {
      case T_Q64:
        run_queue(64, q64_n, 1000, s_q64);
        break;
      case T_Q1M:
        run_queue((size_t)1 << 20, q1m_n, 20, s_q1m);
        break;
      case T_MEMCPY:
        run_memcpy((size_t)mib, s_mc);
        break;
      case T_LOCK:
        run_locks(lock_n, r, s_lock, s_rlock, s_futex);
        break;
      default:
        run_value(value_n, s_val);
        break;
      }
    }

  for (int i = 0; i < nseries; i++)
    print_series(&all[i], samples);
  fflush(stdout);
  if (lk != NULL) {
    mp_lock_free(lk);
    mp_lock_free(rlk);
  }
  return 0;
}
