/* bench_util.c - see bench_util.h. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif

#include "bench_util.h"

#include <errno.h>
#if defined(__linux__)
#  include <sched.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

const char *bench_name = "bench";

double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void die(const char *what, int rc) {
  fprintf(stderr, "%s: %s failed: %s (%s)\n", bench_name, what,
          rc < 0 ? mp_strerror(rc) : strerror(errno),
          rc < 0 ? mp_last_error_message() : "");
  exit(2);
}

int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double pct(const double *v, int n, double q) {
  if (n == 1)
    return v[0];
  double pos = q * (double)(n - 1);
  int i = (int)pos;
  if (i >= n - 1)
    return v[n - 1];
  double f = pos - (double)i;
  return v[i] + (v[i + 1] - v[i]) * f;
}

int bench_my_cpu(void) {
#if defined(__linux__)
  return sched_getcpu();
#else
  return -1;
#endif
}

int bench_cpu_of(long pid) {
#if defined(__linux__)
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  size_t k = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[k] = '\0';
  char *p = strrchr(buf, ')'); /* the name may hold spaces */
  if (p == NULL)
    return -1;
  int field = 2;
  for (p++; *p != '\0'; p++)
    if (*p == ' ' && ++field == 39)
      return atoi(p + 1);
  return -1;
#else
  (void)pid;
  return -1;
#endif
}

int bench_allowed_cpus(int *cpus, int cap) {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0)
    return 0;
  int k = 0;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &set)) {
      if (k < cap)
        cpus[k] = c;
      k++;
    }
  return k;
#else
  (void)cpus;
  (void)cap;
  return 0;
#endif
}

int bench_pin(int cpu) {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set);
#else
  (void)cpu;
  errno = ENOSYS;
  return -1;
#endif
}

int bench_read_full(int fd, void *p, size_t n) {
  char *c = p;
  while (n > 0) {
    ssize_t r = read(fd, c, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0)
      return 1;
    if (r < 0)
      return -1;
    c += r;
    n -= (size_t)r;
  }
  return 0;
}

int bench_write_full(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

int64_t bench_scaled(int64_t given, int64_t def, double scale) {
  if (given > 0)
    return given;
  int64_t x = (int64_t)((double)def * scale + 0.5);
  return x < 1 ? 1 : x;
}

void bench_join_child(mp_process *p, const char *what) {
  int rc, code = -1;
  if ((rc = mp_process_join(p, MP_FOREVER)) != 0)
    die("mp_process_join", rc);
  (void)mp_process_exitcode(p, &code);
  if (code != 0) {
    const char *err = mp_process_error(p);
    fprintf(stderr, "%s: %s: child exit code %d%s%s\n", bench_name, what,
            code, err ? ": " : "", err ? err : "");
    exit(2);
  }
  if ((rc = mp_process_free(p)) != 0)
    die("mp_process_free", rc);
}
