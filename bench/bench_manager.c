/*
 * bench_manager.c - operations per second on a managed dict (Python's
 * Manager().dict()) from a child process, with the floor of a plain
 * request-reply round trip between two processes.
 *
 * Measurements (one sample per repetition; bench_manager.py does the same
 * with Python's multiprocessing):
 *   mproc manager dict  ops/s: mp_manager_start(&m, NULL) once at the
 *                       start (default local address, default start
 *                       method; not timed); per sample a new dict
 *                       (mp_manager_dict) and a new child (default start
 *                       method) that gets the proxy in its mp_args and
 *                       does W warm-up iterations, then times N of
 *                           mp_dict_set(d, "II", k, v);
 *                           mp_dict_get(d, &r, "I", k);   (checks r == v)
 *                       with k = i % 100, v = i: each set and each get is
 *                       one operation (2N in all), a round trip to the
 *                       manager's server process.
 *   os ping-pong 32B spin
 *                       round trips/s: the floor of one manager
 *                       operation, a request and its reply between two
 *                       processes and nothing else: W + N round trips of
 *                       32 bytes over socketpair(AF_UNIX, SOCK_STREAM)
 *                       with a plain fork()ed child echoing them, the
 *                       parent timing the last N.  Both sides wait as
 *                       mproc's calls do: they poll (recv with
 *                       MSG_DONTWAIT) for up to MPROC_SPIN_US (default
 *                       50 us), then block.
 *   os ping-pong 32B    the same, both sides blocking in recv at once
 *                       (what a wait that sleeps costs: on two CPUs, an
 *                       idle CPU must be woken for every message).
 * The dict's child measures and stores its rate in a shared double
 * (mp_raw_value_new), read by the parent after joining it.
 *
 * Output, one line per label, with the unit in the keys:
 *   mproc manager dict median_ops_s=... min_ops_s=... p10_ops_s=...
 *     p90_ops_s=... n=3
 * preceded by "info mproc-manager: start_method=fork keys=100".  With
 * --samples, each line is followed by "samples <label>: v1,v2,...".
 *
 * Flags: --reps R (samples per measurement, default 3), --scale F
 *        (multiplies every default count), --dict-n N (20000 iterations,
 *        40000 operations), --pp-n N (50000 round trips per ping-pong),
 *        --only dict|pingpong (repeatable), --samples.
 * Nothing is pinned.  POSIX only, as bench/ is.
 */
#if !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200809L
#endif
/* Apple's headers hide what POSIX leaves out (MAP_ANON, MSG_DONTWAIT,
 * INADDR_LOOPBACK) once _POSIX_C_SOURCE is set, unless asked for. */
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
#  define _DARWIN_C_SOURCE
#endif

#include <errno.h>
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

#define KEYS 100
#define WARM 1000

/* ---- series of samples ------------------------------------------------- */

typedef struct series {
  const char *label;
  double *v;
  int n, cap;
} series;

static void add(series *s, double x) {
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 16;
    s->v = realloc(s->v, (size_t)s->cap * sizeof *s->v);
    if (s->v == NULL)
      die("realloc", 0);
  }
  s->v[s->n++] = x;
}

static void print_series(series *s, int samples) {
  if (s->n == 0)
    return;
  if (samples) {
    printf("samples %s:", s->label);
    for (int i = 0; i < s->n; i++)
      printf("%s%.3f", i ? "," : " ", s->v[i]);
    printf("\n");
  }
  qsort(s->v, (size_t)s->n, sizeof *s->v, cmp_double);
  printf("%s median_ops_s=%.2f min_ops_s=%.2f p10_ops_s=%.2f "
         "p90_ops_s=%.2f n=%d\n",
         s->label, pct(s->v, s->n, 0.5), s->v[0], pct(s->v, s->n, 0.1),
         pct(s->v, s->n, 0.9), s->n);
}

/* ---- children ---------------------------------------------------------- */

/* Start fn(args) with the default start method; args are freed. */
static mp_process *start_child(mp_target_fn fn, mp_args *args) {
  mp_process *p;
  int rc;
  if ((rc = mp_process_new(&p, fn, args)) != 0)
    die("mp_process_new", rc);
  if ((rc = mp_process_start(p)) != 0)
    die("mp_process_start", rc);
  mp_args_free(args);
  return p;
}

/* ---- managed dict ------------------------------------------------------ */

/* d[k] = v; then d[k] must be v. */
static int set_get(mp_proxy *d, int64_t i) {
  int64_t k = i % KEYS;
  mp_args *r;
  int rc;
  if ((rc = mp_dict_set(d, "II", k, i)) != 0)
    return mp_set_error(4, "set: %s", mp_last_error_message());
  if ((rc = mp_dict_get(d, &r, "I", k)) != 0)
    return mp_set_error(5, "get: %s", mp_last_error_message());
  int64_t got = mp_args_int(r, 0);
  mp_args_free(r);
  if (got != i)
    return mp_set_error(6, "d[%lld] is %lld, expected %lld", (long long)k,
                        (long long)got, (long long)i);
  return 0;
}

/* Child: args = dict proxy, N, rate (raw 'd'). */
static int dict_client(const mp_args *a) {
  mp_proxy *d = mp_args_proxy(a, 0);
  int64_t n = mp_args_int(a, 1);
  mp_value *rate = mp_args_value(a, 2);
  int rc;
  if (d == NULL || rate == NULL)
    return 3;
  for (int64_t i = 0; i < WARM; i++)
    if ((rc = set_get(d, i)) != 0)
      return rc;
  double t0 = now();
  for (int64_t i = 0; i < n; i++)
    if ((rc = set_get(d, i)) != 0)
      return rc;
  double t = now() - t0;
  *(double *)mp_value_ptr(rate) = (double)(2 * n) / t;
  return 0;
}

static void run_dict(mp_manager *m, int64_t n, series *s) {
  mp_proxy *d;
  mp_value *rate;
  mp_args *args;
  int rc;
  if ((rc = mp_manager_dict(m, &d)) != 0)
    die("mp_manager_dict", rc);
  if ((rc = mp_raw_value_new(&rate, 'd', NULL)) != 0)
    die("mp_raw_value_new", rc);
  if ((rc = mp_args_new(&args)) != 0 || (rc = mp_args_add_proxy(args, d)) ||
      (rc = mp_args_add_int(args, n)) || (rc = mp_args_add_value(args, rate)))
    die("mp_args", rc);
  bench_join_child(start_child(dict_client, args), s->label);
  /* The last KEYS values are in the dict. */
  int64_t len = mp_dict_len(d);
  if (len != (n + WARM < KEYS ? n + WARM : KEYS)) {
    fprintf(stderr, "bench_manager: %s: the dict has %lld keys\n", s->label,
            (long long)len);
    exit(2);
  }
  add(s, *(double *)mp_value_ptr(rate));
  mp_value_free(rate);
  mp_proxy_free(d);
}

/* ---- the floor: a raw ping-pong --------------------------------------- */

#define PP_SIZE 32

/* Receive exactly n bytes from fd, first polling (MSG_DONTWAIT) for up to
 * `spin` seconds, then blocking: 0, 1 at end of file, -1 on error. */
static int recv_spin(int fd, unsigned char *buf, size_t n, double spin) {
  size_t got = 0;
  double t0 = spin > 0 ? now() : 0;
  while (got < n) {
    ssize_t r = recv(fd, buf + got, n - got, spin > 0 ? MSG_DONTWAIT : 0);
    if (r > 0) {
      got += (size_t)r;
    } else if (r == 0) {
      return 1;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (now() - t0 > spin)
        spin = 0; /* no more spinning: block */
    } else if (errno != EINTR) {
      return -1;
    }
  }
  return 0;
}

/* W + N round trips of PP_SIZE bytes over socketpair(AF_UNIX,
 * SOCK_STREAM) with a fork()ed child echoing them, both sides waiting as
 * recv_spin does; the parent times the last N. */
static void run_pingpong(int64_t n, double spin, series *s) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
    die("socketpair", 0);
  pid_t pid = fork();
  if (pid < 0)
    die("fork", 0);
  unsigned char buf[PP_SIZE] = {0};
  if (pid == 0) { /* the echo child */
    close(sv[0]);
    int rc;
    while ((rc = recv_spin(sv[1], buf, sizeof buf, spin)) == 0)
      if (bench_write_full(sv[1], buf, sizeof buf) != 0)
        _exit(4);
    _exit(rc == 1 ? 0 : 5);
  }
  close(sv[1]);
  double t0 = 0;
  for (int64_t i = 0; i < WARM + n; i++) {
    if (i == WARM)
      t0 = now();
    memcpy(buf, &i, sizeof i);
    if (bench_write_full(sv[0], buf, sizeof buf) != 0 ||
        recv_spin(sv[0], buf, sizeof buf, spin) != 0)
      die("ping-pong", 0);
    int64_t echo;
    memcpy(&echo, buf, sizeof echo);
    if (echo != i) {
      fprintf(stderr, "bench_manager: %s: round trip %lld came back as "
              "%lld\n", s->label, (long long)i, (long long)echo);
      exit(2);
    }
  }
  double t = now() - t0;
  close(sv[0]);
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      die("waitpid", 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "bench_manager: %s: the echo child failed\n", s->label);
    exit(2);
  }
  add(s, (double)n / t);
}

/* ---- main -------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr, "usage: bench_manager [--reps R] [--scale F] [--dict-n N] "
                  "[--pp-n N] [--only dict|pingpong]... [--samples]\n");
  exit(2);
}

int main(int argc, char **argv) {
  bench_name = "bench_manager";
  MP_MAIN_GUARD(argc, argv);

  int reps = 3, samples = 0, dict_on = 0, pp_on = 0;
  double scale = 1.0;
  int64_t dict_n = 0, pp_n = 0;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    int more = i + 1 < argc;
    if (strcmp(o, "--reps") == 0 && more)
      reps = atoi(argv[++i]);
    else if (strcmp(o, "--scale") == 0 && more)
      scale = atof(argv[++i]);
    else if (strcmp(o, "--dict-n") == 0 && more)
      dict_n = atoll(argv[++i]);
    else if (strcmp(o, "--pp-n") == 0 && more)
      pp_n = atoll(argv[++i]);
    else if (strcmp(o, "--only") == 0 && more) {
      const char *w = argv[++i];
      if (strcmp(w, "dict") == 0)
        dict_on = 1;
      else if (strcmp(w, "pingpong") == 0)
        pp_on = 1;
      else
        usage();
    } else if (strcmp(o, "--samples") == 0)
      samples = 1;
    else
      usage();
  }
  if (reps < 1 || scale <= 0 || dict_n < 0 || pp_n < 0)
    usage();
  if (!dict_on && !pp_on)
    dict_on = pp_on = 1;
  dict_n = bench_scaled(dict_n, 20000, scale);
  pp_n = bench_scaled(pp_n, 50000, scale);

  printf("info mproc-manager: start_method=%s keys=%d\n",
         mp_get_start_method(), KEYS);

  mp_manager *m = NULL;
  int rc;
  if (dict_on && (rc = mp_manager_start(&m, NULL)) != 0)
    die("mp_manager_start", rc);

  /* The floor waits as mproc does: it spins for MPROC_SPIN_US (default
   * 50 us) before it sleeps. */
  const char *e = getenv("MPROC_SPIN_US");
  double spin = (e != NULL && e[0] != '\0' ? atof(e) : 50.0) * 1e-6;

  series s_dict = {"mproc manager dict", NULL, 0, 0};
  series s_spin = {"os ping-pong 32B spin", NULL, 0, 0};
  series s_block = {"os ping-pong 32B", NULL, 0, 0};
  /* Repetitions: each runs every measurement once, the first rotating. */
  for (int r = 0; r < reps; r++)
    for (int k = 0; k < 3; k++) {
      int t = (r + k) % 3;
      if (t == 0 && dict_on)
        run_dict(m, dict_n, &s_dict);
      else if (t == 1 && pp_on)
        run_pingpong(pp_n, spin, &s_spin);
      else if (t == 2 && pp_on)
        run_pingpong(pp_n, 0, &s_block);
    }

  print_series(&s_dict, samples);
  print_series(&s_spin, samples);
  print_series(&s_block, samples);
  fflush(stdout);
  if (m != NULL) {
    if ((rc = mp_manager_shutdown(m)) != 0)
      die("mp_manager_shutdown", rc);
    mp_manager_free(m);
  }
  free(s_dict.v);
  free(s_spin.v);
  free(s_block.v);
  return 0;
}
