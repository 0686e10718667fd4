/*
 * bench_pipe.c - round-trip latency of an 8-byte message between two
 * processes.
 *
 * Measures, per round trip, the wall time the parent spends on:
 *   mproc pipe:        mp_conn_send_bytes(a, 8 bytes) +
 *                      mp_conn_recv_bytes_into(a, ...), with a = one end of
 *                      mp_pipe(1, &a, &b); the child, started with mproc's
 *                      fork context and given b in its mp_args
 *                      (mp_args_add_conn), receives with
 *                      mp_conn_recv_bytes_into and sends the same bytes
 *                      back with mp_conn_send_bytes until end of file;
 *   mproc pipe spawn:  the same with a child started by the spawn context;
 *   os socketpair:     the raw floor: socketpair(AF_UNIX, SOCK_STREAM), a
 *                      plain fork()ed child echoing with read()/write() of
 *                      8 bytes; the parent times write() + read() of 8.
 *
 * Each child is started once and warmed up (-w round trips).  The N round
 * trips per method are then run in B blocks (--blocks, default 4): block i
 * runs N/B round trips of every method, the starting method rotating from
 * block to block, so that the noise of a shared machine spreads over all
 * methods alike.  Nothing is pinned to a CPU.
 *
 * Output, one line per method (times in microseconds):
 *   mproc pipe median_us=... min_us=... p10_us=... p90_us=... n=20000
 * With --samples, each line is followed by "samples <label>: t1,t2,...".
 *
 * Placement (Linux): whether the parent and the child share a CPU changes
 * the round trip several-fold (a wake-up on the same CPU is a context
 * switch; on another, idle CPU it is an inter-processor interrupt and an
 * exit from idle).  The scheduler's choice tends to stick for the life of
 * a pair, so it differs between methods by chance.  Each block is
 * therefore tagged by the CPUs of parent and child, read before and after
 * it (bench_util: sched_getcpu, /proc/PID/stat): "same-cpu" when both
 * stayed on one CPU, "cross-cpu" when each stayed on its own, untagged
 * otherwise.  The tagged samples are printed again under
 * "<label> @same-cpu" and "<label> @cross-cpu" (lines and, with
 * --samples, samples).
 *
 * Flags: -n N (round trips per method, default 20000), -w W (warm-up round
 *        trips per method, default 1000), --blocks B (default 4),
 *        --only mproc|spawn|os (repeatable), --samples.
 * POSIX only.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif
#if !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
#  define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "bench_util.h"

#define MSG 8 /* bytes per message */

/* ---- the children ------------------------------------------------------ */

/* mproc child: echo every message until end of file. */
static int echo_child(const mp_args *args) {
  mp_conn *c = mp_args_conn(args, 0);
  unsigned char buf[MSG];
  size_t n;
  if (c == NULL)
    return 3;
  for (;;) {
    int rc = mp_conn_recv_bytes_into(c, buf, sizeof buf, &n);
    if (rc == MP_EEOF)
      return 0;
    if (rc != 0)
      return 4;
    if (mp_conn_send_bytes(c, buf, n) != 0)
      return 5;
  }
}

/* ---- methods ----------------------------------------------------------- */

enum { M_MPROC, M_SPAWN, M_OS, M_COUNT };

static const char *const labels[M_COUNT] = {"mproc pipe", "mproc pipe spawn",
                                            "os socketpair"};

struct peer {
  mp_conn *a;    /* mproc: the parent's end */
  mp_process *p; /* mproc: the echo child */
  int fd;        /* os: the parent's end */
  pid_t pid;     /* the echo child */
};

static struct peer peers[M_COUNT];
static int on[M_COUNT];

static void start_mproc(int m, mp_context *ctx) {
  mp_conn *a, *b;
  mp_args *args;
  int rc;
  if ((rc = mp_pipe(1, &a, &b)) != 0)
    die("mp_pipe", rc);
  if ((rc = mp_args_new(&args)) != 0)
    die("mp_args_new", rc);
  if ((rc = mp_args_add_conn(args, b)) != 0)
    die("mp_args_add_conn", rc);
  if ((rc = mp_process_new(&peers[m].p, echo_child, args)) != 0)
    die("mp_process_new", rc);
  if ((rc = mp_process_set_context(peers[m].p, ctx)) != 0)
    die("mp_process_set_context", rc);
  if ((rc = mp_process_start(peers[m].p)) != 0)
    die("mp_process_start", rc);
  mp_args_free(args);
  mp_conn_free(b); /* the child has its own copy */
  peers[m].a = a;
  peers[m].pid = (pid_t)mp_process_pid(peers[m].p);
}

static void start_os(void) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
    die("socketpair", 0);
  pid_t pid = fork();
  if (pid < 0)
    die("fork", 0);
  if (pid == 0) {
    /* Drop what this child inherited, so that every other child sees end
     * of file when the parent closes its end. */
    close(sv[0]);
    for (int m = 0; m < M_COUNT; m++)
      if (peers[m].a != NULL)
        close((int)mp_conn_fileno(peers[m].a));
    unsigned char buf[MSG];
    for (;;) {
      int r = bench_read_full(sv[1], buf, MSG);
      if (r == 1)
        _exit(0);
      if (r != 0 || bench_write_full(sv[1], buf, MSG) != 0)
        _exit(4);
    }
  }
  close(sv[1]);
  peers[M_OS].fd = sv[0];
  peers[M_OS].pid = pid;
}

static void stop_all(void) {
  for (int m = 0; m < M_COUNT; m++) {
    if (!on[m])
      continue;
    int code = -1, rc;
    if (m == M_OS) {
      close(peers[m].fd);
      int st;
      while (waitpid(peers[m].pid, &st, 0) < 0)
        if (errno != EINTR)
          die("waitpid", 0);
      code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    } else {
      mp_conn_free(peers[m].a);
      peers[m].a = NULL;
      if ((rc = mp_process_join(peers[m].p, MP_FOREVER)) != 0)
        die("mp_process_join", rc);
      (void)mp_process_exitcode(peers[m].p, &code);
      if ((rc = mp_process_free(peers[m].p)) != 0)
        die("mp_process_free", rc);
    }
    if (code != 0) {
      fprintf(stderr, "bench_pipe: %s child exit code %d\n", labels[m], code);
      exit(2);
    }
  }
}

static unsigned char out_msg[MSG] = {'m', 'p', 'r', 'o', 'c', 0, 0, 0};

/* One timed round trip. */
static double round_trip(int m) {
  unsigned char in[MSG];
  size_t n = 0;
  int rc;
  double t0, t;
  if (m == M_OS) {
    int fd = peers[m].fd;
    t0 = now();
    if (bench_write_full(fd, out_msg, MSG) != 0)
      die("write", 0);
    if ((rc = bench_read_full(fd, in, MSG)) != 0) {
      fprintf(stderr, "bench_pipe: os child went away\n");
      exit(2);
    }
    t = now() - t0;
    n = MSG;
  } else {
    mp_conn *a = peers[m].a;
    t0 = now();
    if ((rc = mp_conn_send_bytes(a, out_msg, MSG)) != 0)
      die("mp_conn_send_bytes", rc);
    if ((rc = mp_conn_recv_bytes_into(a, in, sizeof in, &n)) != 0)
      die("mp_conn_recv_bytes_into", rc);
    t = now() - t0;
  }
  if (n != MSG || memcmp(in, out_msg, MSG) != 0) {
    fprintf(stderr, "bench_pipe: %s echoed the wrong message\n", labels[m]);
    exit(2);
  }
  out_msg[MSG - 1]++; /* a different message each time */
  return t;
}

/* ---- placement --------------------------------------------------------- */

enum { P_NONE, P_SAME, P_CROSS };
static const char *const place_names[] = {"", "same-cpu", "cross-cpu"};

/* ---- statistics -------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr, "usage: bench_pipe [-n N] [-w WARMUP] [--blocks B] "
                  "[--only mproc|spawn|os]... [--samples]\n");
  exit(2);
}

int main(int argc, char **argv) {
  bench_name = "bench_pipe";
  MP_MAIN_GUARD(argc, argv);

  int n = 20000, warm = 1000, blocks = 4, samples = 0, any_only = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
      n = atoi(argv[++i]);
    } else if (strcmp(argv[i], "-w") == 0 && i + 1 < argc) {
      warm = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--blocks") == 0 && i + 1 < argc) {
      blocks = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      const char *w = argv[++i];
      any_only = 1;
      if (strcmp(w, "mproc") == 0)
        on[M_MPROC] = 1;
      else if (strcmp(w, "spawn") == 0)
        on[M_SPAWN] = 1;
      else if (strcmp(w, "os") == 0)
        on[M_OS] = 1;
      else
        usage();
    } else if (strcmp(argv[i], "--samples") == 0) {
      samples = 1;
    } else {
      usage();
    }
  }
  if (n < 1 || warm < 0 || blocks < 1)
    usage();
  if (blocks > n)
    blocks = n;
  if (!any_only)
    for (int m = 0; m < M_COUNT; m++)
      on[m] = 1;

  /* Start the children: the mproc ones first, so that the raw child can
   * close their parent ends (mproc's fork children close every mp_conn
   * they were not given, but know nothing of the raw socketpair). */
  int rc;
  mp_context *ctx;
  if (on[M_MPROC]) {
    if ((rc = mp_get_context("fork", &ctx)) != 0)
      die("mp_get_context(fork)", rc);
    start_mproc(M_MPROC, ctx);
  }
  if (on[M_SPAWN]) {
    if ((rc = mp_get_context("spawn", &ctx)) != 0)
      die("mp_get_context(spawn)", rc);
    start_mproc(M_SPAWN, ctx);
  }
  if (on[M_OS])
    start_os();

  int active[M_COUNT], na = 0;
  for (int m = 0; m < M_COUNT; m++)
    if (on[m])
      active[na++] = m;

  /* Warm up: the children's start, page faults, caches, CPU frequency. */
  for (int k = 0; k < na; k++)
    for (int w = 0; w < warm; w++)
      (void)round_trip(active[k]);

  double *t[M_COUNT] = {0};
  for (int k = 0; k < na; k++)
    if ((t[active[k]] = malloc((size_t)n * sizeof(double))) == NULL)
      die("malloc", 0);

  unsigned char *place[M_COUNT] = {0};
  for (int k = 0; k < na; k++)
    if ((place[active[k]] = calloc((size_t)n, 1)) == NULL)
      die("calloc", 0);

  /* Blocks: each runs a slice of every method, the first one rotating. */
  int done = 0;
  for (int b = 0; b < blocks; b++) {
    int len = n / blocks + (b < n % blocks ? 1 : 0);
    for (int k = 0; k < na; k++) {
      int m = active[(b + k) % na];
      int p0 = bench_my_cpu(), c0 = bench_cpu_of((long)peers[m].pid);
      for (int i = 0; i < len; i++)
        t[m][done + i] = round_trip(m);
      int p1 = bench_my_cpu(), c1 = bench_cpu_of((long)peers[m].pid);
      int tag = P_NONE;
      if (p0 >= 0 && c0 >= 0 && p0 == p1 && c0 == c1)
        tag = p0 == c0 ? P_SAME : P_CROSS;
      memset(place[m] + done, tag, (size_t)len);
    }
    done += len;
  }
  stop_all();

  double *sub = malloc((size_t)n * sizeof(double));
  if (sub == NULL)
    die("malloc", 0);
  for (int k = 0; k < na; k++) {
    int m = active[k];
    /* all samples, then those of each placement */
    for (int pl = -1; pl <= P_CROSS; pl++) {
      if (pl == P_NONE)
        continue;
      int c = 0;
      for (int i = 0; i < n; i++)
        if (pl < 0 || place[m][i] == pl)
          sub[c++] = t[m][i];
      if (c == 0)
        continue;
      char label[64];
      snprintf(label, sizeof label, "%s%s%s", labels[m], pl < 0 ? "" : " @",
               pl < 0 ? "" : place_names[pl]);
      if (samples) {
        printf("samples %s:", label);
        for (int i = 0; i < c; i++)
          printf("%s%.3f", i ? "," : " ", sub[i] * 1e6);
        printf("\n");
      }
      qsort(sub, (size_t)c, sizeof *sub, cmp_double);
      printf("%s median_us=%.2f min_us=%.2f p10_us=%.2f p90_us=%.2f n=%d\n",
             label, pct(sub, c, 0.5) * 1e6, sub[0] * 1e6,
             pct(sub, c, 0.1) * 1e6, pct(sub, c, 0.9) * 1e6, c);
    }
    free(t[m]);
    free(place[m]);
  }
  free(sub);
  fflush(stdout);
  return 0;
}
