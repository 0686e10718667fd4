/* bench_util.c - see bench_util.h. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif

#include "bench_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
