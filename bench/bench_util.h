/* bench_util.h - what the benchmark programs share (POSIX only). */
#ifndef MPROC_BENCH_UTIL_H
#define MPROC_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <mproc.h>

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

/* Placement (Linux; -1 elsewhere or on error): the CPU this thread runs
 * on (sched_getcpu), and the CPU a process last ran on (field 39 of
 * /proc/PID/stat). */
int bench_my_cpu(void);
int bench_cpu_of(long pid);

/* The CPUs this process may run on, in order: fills up to `cap` of them
 * into cpus[] and returns how many there are (0 where unknown). */
int bench_allowed_cpus(int *cpus, int cap);

/* Pin the calling process to one CPU (sched_setaffinity); 0 or -1 with
 * errno (ENOSYS where it is not available). */
int bench_pin(int cpu);

/* Read / write exactly n bytes (EINTR retried): 0; read: 1 at end of
 * file; -1 on error. */
int bench_read_full(int fd, void *p, size_t n);
/* A count given on the command line (> 0), or the default times scale
 * (at least 1). */
int64_t bench_scaled(int64_t given, int64_t def, double scale);
int bench_write_full(int fd, const void *p, size_t n);

/* Join a child (forever), free it, and exit(2) with `what` and its
 * error when it did not end with 0. */
void bench_join_child(mp_process *p, const char *what);

#endif
