/*
 * bench_start.c - latency of starting and joining a do-nothing child.
 *
 * Measures, per iteration, the wall time of:
 *   mproc fork / spawn / forkserver:
 *       mp_process_new + mp_process_start + mp_process_join(MP_FOREVER)
 *       + mp_process_free, target returns 0, context set per process;
 *   os fork+waitpid:   fork(), child _exit(0), waitpid();
 *   os posix_spawn:    posix_spawn(this executable, "--raw-child") +
 *                      waitpid(); the child returns from main at once,
 *                      i.e. it runs this very program up to the point
 *                      where an mproc spawned child reaches the guard.
 *
 * The methods are interleaved (iteration i runs every method once, in a
 * rotating order) so that the noise of a shared machine spreads over all
 * of them alike.  Each method is warmed up first (for forkserver this
 * also starts the server, which is thus excluded).
 *
 * Output, one line per method (times in microseconds):
 *   mproc fork median_us=... min_us=... p10_us=... p90_us=... n=100
 *   os fork+waitpid median_us=... ...
 *   os posix_spawn median_us=... ...
 * With --samples, each line is followed by "samples <label>: t1,t2,...".
 *
 * Flags: -n N (iterations, default 100), -w W (warm-up, default 5),
 *        --only fork|spawn|forkserver|os (repeatable), --samples.
 * POSIX only.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif
#if !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
#  define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "bench_util.h"

#if defined(__APPLE__)
#  include <mach-o/dyld.h>
#endif

extern char **environ;

static char self_exe[PATH_MAX];

/* ---- the measured operations ------------------------------------------ */

static int noop(const mp_args *args) {
  (void)args;
  return 0;
}

static mp_context *ctx_fork, *ctx_spawn, *ctx_forkserver;

static double run_mproc(mp_context *ctx) {
  mp_process *p;
  double t0 = now();
  int rc = mp_process_new(&p, noop, NULL);
  if (rc != 0)
    die("mp_process_new", rc);
  if ((rc = mp_process_set_context(p, ctx)) != 0)
    die("mp_process_set_context", rc);
  if ((rc = mp_process_start(p)) != 0)
    die("mp_process_start", rc);
  if ((rc = mp_process_join(p, MP_FOREVER)) != 0)
    die("mp_process_join", rc);
  int code = -1;
  (void)mp_process_exitcode(p, &code);
  if ((rc = mp_process_free(p)) != 0)
    die("mp_process_free", rc);
  double t = now() - t0;
  if (code != 0) {
    fprintf(stderr, "bench_start: child exit code %d\n", code);
    exit(2);
  }
  return t;
}

/* Reap a raw child, check it exited 0; the time since t0. */
static double wait_ok(pid_t pid, double t0, const char *what) {
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      die("waitpid", 0);
  double t = now() - t0;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "bench_start: raw %s child status %d\n", what, st);
    exit(2);
  }
  return t;
}

static double run_os_fork(void) {
  double t0 = now();
  pid_t pid = fork();
  if (pid < 0)
    die("fork", 0);
  if (pid == 0)
    _exit(0);
  return wait_ok(pid, t0, "fork");
}

static double run_os_spawn(void) {
  char *argv[] = {self_exe, (char *)"--raw-child", NULL};
  double t0 = now();
  pid_t pid;
  int err = posix_spawn(&pid, self_exe, NULL, NULL, argv, environ);
  if (err != 0) {
    errno = err;
    die("posix_spawn", 0);
  }
  return wait_ok(pid, t0, "spawn");
}

/* ---- methods, samples, statistics ------------------------------------- */

enum { M_FORK, M_SPAWN, M_FORKSERVER, M_OS_FORK, M_OS_SPAWN, M_COUNT };

static const char *const labels[M_COUNT] = {
    "mproc fork", "mproc spawn", "mproc forkserver", "os fork+waitpid",
    "os posix_spawn"};

static double run_method(int m) {
  switch (m) {
  case M_FORK: return run_mproc(ctx_fork);
  case M_SPAWN: return run_mproc(ctx_spawn);
  case M_FORKSERVER: return run_mproc(ctx_forkserver);
  case M_OS_FORK: return run_os_fork();
  default: return run_os_spawn();
  }
}

static int resolve_self(const char *argv0) {
#if defined(__linux__)
  ssize_t r = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  if (r > 0) {
    self_exe[r] = '\0';
    return 0;
  }
#elif defined(__APPLE__)
  uint32_t cap = sizeof self_exe;
  if (_NSGetExecutablePath(self_exe, &cap) == 0 &&
      realpath(self_exe, self_exe) != NULL)
    return 0;
#endif
  if (argv0 != NULL && realpath(argv0, self_exe) != NULL)
    return 0;
  return -1;
}

static void usage(void) {
  fprintf(stderr,
          "usage: bench_start [-n N] [-w WARMUP] "
          "[--only fork|spawn|forkserver|os]... [--samples]\n");
  exit(2);
}

int main(int argc, char **argv) {
  bench_name = "bench_start";
  /* The raw posix_spawn baseline's child: exactly the path an mproc
   * spawned child runs up to the main guard, then out. */
  if (argc > 1 && strcmp(argv[1], "--raw-child") == 0)
    return 0;
  MP_MAIN_GUARD(argc, argv);

  int n = 100, warm = 5, samples = 0;
  int on[M_COUNT] = {0};
  int any_only = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
      n = atoi(argv[++i]);
    } else if (strcmp(argv[i], "-w") == 0 && i + 1 < argc) {
      warm = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      const char *w = argv[++i];
      any_only = 1;
      if (strcmp(w, "fork") == 0) {
        on[M_FORK] = on[M_OS_FORK] = 1;
      } else if (strcmp(w, "spawn") == 0) {
        on[M_SPAWN] = on[M_OS_SPAWN] = 1;
      } else if (strcmp(w, "forkserver") == 0) {
        on[M_FORKSERVER] = on[M_OS_FORK] = 1;
      } else if (strcmp(w, "os") == 0) {
        on[M_OS_FORK] = on[M_OS_SPAWN] = 1;
      } else {
        usage();
      }
    } else if (strcmp(argv[i], "--samples") == 0) {
      samples = 1;
    } else {
      usage();
    }
  }
  if (n < 1 || warm < 0)
    usage();
  if (!any_only)
    for (int m = 0; m < M_COUNT; m++)
      on[m] = 1;

  if (resolve_self(argv[0]) != 0) {
    fprintf(stderr, "bench_start: cannot find this executable\n");
    return 2;
  }
  int rc;
  if ((rc = mp_get_context("fork", &ctx_fork)) != 0)
    die("mp_get_context(fork)", rc);
  if ((rc = mp_get_context("spawn", &ctx_spawn)) != 0)
    die("mp_get_context(spawn)", rc);
  if ((rc = mp_get_context("forkserver", &ctx_forkserver)) != 0)
    die("mp_get_context(forkserver)", rc);

  int active[M_COUNT], na = 0;
  for (int m = 0; m < M_COUNT; m++)
    if (on[m])
      active[na++] = m;

  /* Warm up: page cache, dynamic loader, and the fork server's start. */
  for (int w = 0; w < warm; w++)
    for (int k = 0; k < na; k++)
      (void)run_method(active[k]);

  double *t[M_COUNT] = {0};
  for (int k = 0; k < na; k++)
    if ((t[active[k]] = malloc((size_t)n * sizeof(double))) == NULL)
      die("malloc", 0);

  /* Interleave: round i runs every method once, starting at a rotating
   * position so that no method always follows the same other one. */
  for (int i = 0; i < n; i++)
    for (int k = 0; k < na; k++) {
      int m = active[(i + k) % na];
      t[m][i] = run_method(m);
    }

  for (int k = 0; k < na; k++) {
    int m = active[k];
    double *v = t[m];
    if (samples) {
      /* raw samples, in run order, before sorting */
      printf("samples %s:", labels[m]);
      for (int i = 0; i < n; i++)
        printf("%s%.3f", i ? "," : " ", v[i] * 1e6);
      printf("\n");
    }
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    printf("%s median_us=%.1f min_us=%.1f p10_us=%.1f p90_us=%.1f n=%d\n",
           labels[m], pct(v, n, 0.5) * 1e6, v[0] * 1e6,
           pct(v, n, 0.1) * 1e6, pct(v, n, 0.9) * 1e6, n);
    free(v);
  }
  fflush(stdout);
  return 0;
}
