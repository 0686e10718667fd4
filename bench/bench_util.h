/* bench_util.h - what the benchmark programs share (POSIX only). */
#ifndef MPROC_BENCH_UTIL_H
#define MPROC_BENCH_UTIL_H

/* The program's name for messages ("bench_start"); set it first. */
extern const char *bench_name;

/* Monotonic time in seconds. */
double now(void);

/* Report that `what` failed (rc < 0: an mproc code; else errno) and
 * exit(2). */
void die(const char *what, int rc);

/* qsort comparison for doubles, and the linear-interpolated percentile q
 * in [0,1] of sorted v[0..n). */
int cmp_double(const void *a, const void *b);
double pct(const double *v, int n, double q);

#endif
