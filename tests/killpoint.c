/*
 * killpoint.c - the kill-anywhere facility (see killpoint.h).  Linux only:
 * ptrace(PTRACE_TRACEME / PTRACE_SINGLESTEP).
 */
#if !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif

#include "killpoint.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KP_EXIT_NOTRACE 64 /* + errno of PTRACE_TRACEME, capped */
#define KP_EXIT_PRE 120

/* ---- the watchdog ------------------------------------------------------ */

static volatile sig_atomic_t wd_pid;
static volatile sig_atomic_t wd_fired;

static void wd_handler(int sig) {
  (void)sig;
  if (wd_pid > 0) {
    wd_fired = 1;
    kill((pid_t)wd_pid, SIGKILL);
  }
}

void kp_watchdog(pid_t pid, unsigned seconds) {
  static int installed;
  if (!installed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = wd_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    installed = 1;
  }
  if (seconds == 0) {
    alarm(0);
    wd_pid = 0;
    return;
  }
  wd_fired = 0;
  wd_pid = (sig_atomic_t)pid;
  alarm(seconds);
}

int kp_watchdog_fired(void) { return wd_fired != 0; }

/* ---- stepping ----------------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int kp_wait_stop(pid_t pid, int *status) {
  int st = 0;
  pid_t r;
  while ((r = waitpid(pid, &st, __WALL)) < 0 && errno == EINTR)
    ;
  if (status != NULL)
    *status = st;
  if (r != pid)
    return -1;
  if (WIFSTOPPED(st))
    return WSTOPSIG(st);
  return 0;
}

int kp_step(pid_t pid, long n, long *done) {
  long d = 0;
  int sig = 0;
  int rc = 0;
  while (d < n) {
    if (ptrace(PTRACE_SINGLESTEP, pid, NULL, (void *)(intptr_t)sig) != 0) {
      rc = -1;
      break;
    }
    sig = 0;
    int w = kp_wait_stop(pid, NULL);
    if (w <= 0) {
      rc = -1;
      break;
    }
    if (w == SIGTRAP) {
      d++;
    } else if (w == SIGSTOP) {
      rc = 1;
      break;
    } else {
      sig = w; /* not ours: deliver it with the next step */
    }
  }
  if (done != NULL)
    *done = d;
  return rc;
}

void kp_kill(pid_t pid, int reap) {
  kill(pid, SIGKILL);
  if (reap) {
    int st;
    while (waitpid(pid, &st, __WALL) < 0 && errno == EINTR)
      ;
  }
}

/* ---- running a scenario ------------------------------------------------- */

long kp_max_points(const kp_scenario *s) {
  if (s->max_points > 0)
    return s->max_points;
  const char *e = getenv("MPROC_KILLPOINT_MAX");
  if (e != NULL && *e != '\0') {
    char *end;
    long v = strtol(e, &end, 10);
    if (*end == '\0' && v > 0)
      return v;
  }
  return KP_DEFAULT_MAX;
}

static void set_error(kp_report *out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out->error, sizeof out->error, fmt, ap);
  va_end(ap);
}

/* Fork a child stopped at its first marker, traced by us; -1 on error. */
static pid_t start_child(const kp_scenario *s, kp_report *out) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    set_error(out, "fork: %s", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
      _exit(KP_EXIT_NOTRACE + (errno < 50 ? errno : 50));
    if (s->child_pre != NULL && s->child_pre(s->ctx) != 0)
      _exit(KP_EXIT_PRE);
    pid_t me = getpid();
    kill(me, SIGSTOP); /* first marker */
    s->call(s->ctx);
    kill(me, SIGSTOP); /* second marker */
    _exit(0);
  }
  kp_watchdog(pid, KP_WATCHDOG);
  int st = 0;
  int w = kp_wait_stop(pid, &st);
  if (w == SIGSTOP) {
    /* The child dies with us if the test itself dies. */
    ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)(intptr_t)PTRACE_O_EXITKILL);
    return pid;
  }
  if (w == 0 && WIFEXITED(st) && WEXITSTATUS(st) >= KP_EXIT_NOTRACE &&
      WEXITSTATUS(st) <= KP_EXIT_NOTRACE + 50) {
    set_error(out,
              "ptrace(PTRACE_TRACEME) refused in the child (%s): "
              "the kill-anywhere tests need ptrace (yama ptrace_scope, "
              "seccomp or a container may forbid it)",
              strerror(WEXITSTATUS(st) - KP_EXIT_NOTRACE));
  } else if (w == 0 && WIFEXITED(st) && WEXITSTATUS(st) == KP_EXIT_PRE) {
    set_error(out, "the scenario's child_pre failed");
  } else if (w > 0) {
    set_error(out, "the child stopped with signal %d before its marker", w);
    kp_kill(pid, 1);
  } else {
    set_error(out, "the child ended before its first marker (status 0x%x)",
              (unsigned)st);
  }
  kp_watchdog(0, 0);
  return -1;
}

static void count_tags(kp_report *out, long k, const char *msg) {
  const char *p = msg;
  int seen[KP_MAX_TAGS] = {0}; /* each tag counts once per kill point */
  while ((p = strchr(p, '[')) != NULL) {
    const char *e = strchr(p, ']');
    if (e == NULL)
      break;
    size_t len = (size_t)(e - p - 1);
    char tag[24];
    if (len == 0 || len >= sizeof tag) {
      p = e;
      continue;
    }
    memcpy(tag, p + 1, len);
    tag[len] = '\0';
    int i;
    for (i = 0; i < out->ntags; i++)
      if (strcmp(out->tags[i].tag, tag) == 0)
        break;
    if (i == out->ntags) {
      if (out->ntags == KP_MAX_TAGS)
        i = KP_MAX_TAGS - 1; /* the last one gathers the rest */
      else {
        out->ntags++;
        snprintf(out->tags[i].tag, sizeof out->tags[i].tag, "%s", tag);
        const char *semi = strstr(e, "; [");
        size_t tl = semi ? (size_t)(semi - e - 1) : strlen(e + 1);
        if (tl >= sizeof out->tags[i].first)
          tl = sizeof out->tags[i].first - 1;
        memcpy(out->tags[i].first, e + 1, tl);
        out->tags[i].first[tl] = '\0';
      }
    }
    if (!seen[i]) {
      seen[i] = 1;
      out->tags[i].count++;
      if (out->tags[i].nk < KP_MAX_FAILS)
        out->tags[i].k[out->tags[i].nk++] = k;
    }
    p = e;
  }
}

void kp_record_failure(kp_report *out, long k, int completed, const char *msg) {
  out->failed++;
  if (out->nfails < KP_MAX_FAILS) {
    out->fails[out->nfails].k = k;
    out->fails[out->nfails].completed = completed;
    snprintf(out->fails[out->nfails].msg, sizeof out->fails[0].msg, "%s", msg);
    out->nfails++;
  }
  count_tags(out, k, msg);
}

static void record(kp_report *out, const kp_point *pt, int ok,
                   const char *msg) {
  out->points++;
  if (ok)
    out->passed++;
  else
    kp_record_failure(out, pt->k, pt->completed, msg);
}

/* One child killed at kill point k.  0, or -1 (facility error). */
static int one_point(const kp_scenario *s, kp_report *out, long k,
                     long *n_seen) {
  if (s->setup(s->ctx) != 0) {
    set_error(out, "the scenario's setup failed before kill point %ld", k);
    return -1;
  }
  pid_t pid = start_child(s, out);
  if (pid < 0) {
    if (s->teardown != NULL)
      s->teardown(s->ctx);
    return -1;
  }
  kp_point pt = {k, 0, 0, pid};
  int rc = kp_step(pid, k, &pt.steps);
  out->steps_total += pt.steps;
  if (rc == 1)
    pt.completed = 1;
  if (k == LONG_MAX)
    pt.k = pt.steps; /* calibration: killed at the second marker */
  kp_kill(pid, 1);
  kp_watchdog(0, 0);
  if (rc < 0) {
    set_error(out, "the child %s at step %ld of kill point %ld",
              kp_watchdog_fired() ? "made no progress (watchdog)"
                                  : "ended or could not be stepped",
              pt.steps, k);
    if (s->teardown != NULL)
      s->teardown(s->ctx);
    return -1;
  }
  if (n_seen != NULL)
    *n_seen = pt.steps;
  char msg[512] = "";
  int bad = s->check(s->ctx, &pt, msg, sizeof msg);
  record(out, &pt, bad == 0, msg);
  if (s->teardown != NULL)
    s->teardown(s->ctx);
  return 0;
}

int kp_run(const kp_scenario *s, kp_report *out) {
  memset(out, 0, sizeof *out);
  snprintf(out->name, sizeof out->name, "%s", s->name);
  double t0 = now_s();
  if (s->warmup != NULL)
    s->warmup(s->ctx);

  /* Calibration: the whole call, one step at a time; the child is then
   * killed at its second marker, which is kill point N. */
  long n = 0;
  if (one_point(s, out, LONG_MAX, &n) != 0) {
    out->seconds = now_s() - t0;
    return -1;
  }
  out->n = n;

  /* The kill points besides N: all of them, or a dense prefix and an even
   * spread up to N. */
  long max = kp_max_points(s);
  long dense, spread;
  if (n + 1 <= max) {
    dense = n;
    spread = 0;
    out->exhaustive = 1;
  } else {
    dense = max / 2;
    if (dense > 2000)
      dense = 2000;
    spread = max - 1 - dense;
  }
  out->dense = dense;
  for (long k = 0; k < dense; k++)
    if (one_point(s, out, k, NULL) != 0)
      goto done;
  for (long i = 0; i < spread; i++) {
    long k = dense + (long)((double)(n - dense) * (double)i / (double)spread);
    if (one_point(s, out, k, NULL) != 0)
      goto done;
  }
done:
  out->seconds = now_s() - t0;
  return out->error[0] ? -1 : 0;
}

void kp_print_header(FILE *f) {
  fprintf(f, "%-40s %8s %8s %-22s %7s %7s %8s\n", "scenario", "N", "kills",
          "coverage", "passed", "failed", "seconds");
}

void kp_print(const kp_report *r, FILE *f) {
  char cov[64];
  if (r->exhaustive)
    snprintf(cov, sizeof cov, "all k 0..N");
  else
    snprintf(cov, sizeof cov, "k<%ld + spread to N", r->dense);
  fprintf(f, "%-40s %8ld %8ld %-22s %7ld %7ld %8.1f\n", r->name, r->n,
          r->points, cov, r->passed, r->failed, r->seconds);
  for (int i = 0; i < r->ntags; i++) {
    fprintf(f, "    invariant [%s] broken at %ld kill points, first k =",
            r->tags[i].tag, r->tags[i].count);
    for (int j = 0; j < r->tags[i].nk; j++)
      fprintf(f, " %ld", r->tags[i].k[j]);
    fprintf(f, "%s\n      e.g.%s\n",
            r->tags[i].count > r->tags[i].nk ? " ..." : "", r->tags[i].first);
  }
  for (int i = 0; i < r->nfails && i < 3; i++)
    fprintf(f, "    FAIL at k=%ld%s: %s\n", r->fails[i].k,
            r->fails[i].completed ? " (call completed)" : "", r->fails[i].msg);
  if (r->failed > 3)
    fprintf(f, "    ... %ld failed kill points in all\n", r->failed);
  if (r->error[0])
    fprintf(f, "    FACILITY ERROR: %s\n", r->error);
  fflush(f);
}
