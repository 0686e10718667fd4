/*
 * bench_handoff.c - a connection handed to another process through a
 * pipe (Python: c.send(conn) of a Connection, which its resource sharer
 * serves), against the OS floor: the same descriptor by SCM_RIGHTS
 * straight down a Unix socket.  See bench_handoff.py for Python's side
 * and run.py --handoff for the table.
 *
 * A child (fork) takes N connections from its carrier pipe and sends one
 * byte through each.  The parent, N times: a new pipe (a, b); send b;
 * close b; receive the byte on a.  One line per mode (microseconds per
 * hand-off):
 *     mproc handoff median_us=... p10_us=... p90_us=... n=...
 *     os handoff ...
 * Flags: -n N (default 2000), -w WARMUP (200), --only mproc|os,
 * --samples (also "samples <label>: t1,t2,..." in microseconds).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"

/* Child: take `count` connections, say one byte through each. */
static int taker(const mp_args *a) {
  mp_conn *carrier = mp_args_conn(a, 0);
  int64_t count = mp_args_int(a, 1);
  for (int64_t i = 0; i < count; i++) {
    mp_args *t = NULL;
    int rc = mp_conn_recv_args(carrier, &t);
    if (rc == 0)
      rc = mp_conn_send_bytes(mp_args_conn(t, 0), "x", 1);
    mp_args_free(t);
    if (rc != 0)
      return 1;
  }
  return 0;
}

static void run_mproc(int n, int warm, double *t) {
  mp_conn *c1, *c2;
  if (mp_pipe(1, &c1, &c2) != 0)
    die("mp_pipe", -1);
  mp_args *a;
  mp_args_pack(&a, "CI", c2, (int64_t)(n + warm));
  mp_process *p;
  int rc = mp_process_new(&p, taker, a);
  if (rc == 0)
    rc = mp_process_start(p);
  if (rc != 0)
    die("start", rc);
  for (int i = 0; i < n + warm; i++) {
    double t0 = now();
    mp_conn *x, *y;
    if ((rc = mp_pipe(1, &x, &y)) != 0)
      die("mp_pipe", rc);
    mp_args *m;
    mp_args_pack(&m, "C", y);
    if ((rc = mp_conn_send_args(c1, m)) != 0)
      die("send_args", rc);
    mp_args_free(m);
    mp_conn_free(y);
    void *b;
    size_t len;
    if ((rc = mp_conn_recv_bytes(x, &b, &len)) != 0)
      die("recv", rc);
    mp_free(b);
    mp_conn_free(x);
    if (i >= warm)
      t[i - warm] = now() - t0;
  }
  bench_join_child(p, "taker");
  mp_args_free(a);
  mp_conn_free(c1);
  mp_conn_free(c2);
}

/* The floor: socketpair, descriptor by SCM_RIGHTS, one byte back. */
static int send_fd(int sock, int fd) {
  char byte = 'F';
  struct iovec iov = {&byte, 1};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } cm;
  memset(&cm, 0, sizeof cm);
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cm.buf;
  msg.msg_controllen = sizeof cm.buf;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock) {
  char byte;
  struct iovec iov = {&byte, 1};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } cm;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cm.buf;
  msg.msg_controllen = sizeof cm.buf;
  if (recvmsg(sock, &msg, 0) != 1)
    return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  int fd = -1;
  if (c != NULL && c->cmsg_type == SCM_RIGHTS)
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

static void run_os(int n, int warm, double *t) {
  int carrier[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, carrier) != 0)
    die("socketpair", errno);
  pid_t pid = fork();
  if (pid < 0)
    die("fork", errno);
  if (pid == 0) {
    close(carrier[0]);
    for (int i = 0; i < n + warm; i++) {
      int fd = recv_fd(carrier[1]);
      if (fd < 0 || bench_write_full(fd, "x", 1) != 0)
        _exit(1);
      close(fd);
    }
    _exit(0);
  }
  close(carrier[1]);
  for (int i = 0; i < n + warm; i++) {
    double t0 = now();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
      die("socketpair", errno);
    if (send_fd(carrier[0], sv[1]) != 0)
      die("sendmsg", errno);
    close(sv[1]);
    char b;
    if (bench_read_full(sv[0], &b, 1) != 0)
      die("read", errno);
    close(sv[0]);
    if (i >= warm)
      t[i - warm] = now() - t0;
  }
  close(carrier[0]);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
    ;
}

/* "<label> handoff median_us=..." and, with --samples, every sample. */
static void report(const char *label, double *t, int n, int samples) {
  if (samples) {
    printf("samples %s handoff:", label);
    for (int i = 0; i < n; i++)
      printf("%s%.3f", i ? "," : "", t[i] * 1e6);
    printf("\n");
  }
  qsort(t, (size_t)n, sizeof *t, cmp_double);
  printf("%s handoff median_us=%.2f p10_us=%.2f p90_us=%.2f n=%d\n", label,
         pct(t, n, 0.5) * 1e6, pct(t, n, 0.1) * 1e6, pct(t, n, 0.9) * 1e6, n);
  fflush(stdout);
}

int main(int argc, char **argv) {
  bench_name = "bench_handoff";
  MP_MAIN_GUARD(argc, argv);
  int n = 2000, warm = 200, want_mproc = 1, want_os = 1, samples = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
      n = atoi(argv[++i]);
    } else if (strcmp(argv[i], "-w") == 0 && i + 1 < argc) {
      warm = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--samples") == 0) {
      samples = 1;
    } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      const char *w = argv[++i];
      want_mproc = strcmp(w, "mproc") == 0;
      want_os = strcmp(w, "os") == 0;
    } else {
      fprintf(stderr, "usage: bench_handoff [-n N] [-w W] [--samples] "
                      "[--only mproc|os]\n");
      return 2;
    }
  }
  if (n < 1 || warm < 0)
    die("bad counts", EINVAL);
  mp_set_start_method("fork", 1);
  double *t = malloc((size_t)n * sizeof *t);
  if (t == NULL)
    die("malloc", ENOMEM);
  if (want_mproc) {
    run_mproc(n, warm, t);
    report("mproc", t, n, samples);
  }
  if (want_os) {
    run_os(n, warm, t);
    report("os", t, n, samples);
  }
  free(t);
  return 0;
}
