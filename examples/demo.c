/*
 * demo.c - a short tour of mproc, Python's multiprocessing for C.
 *
 * The Python it follows:
 *     import multiprocessing as mp, sys
 *     def work(lo, hi):                    # runs in a child process
 *         sys.exit(sum(i * i for i in range(lo, hi)) % 100)
 *     if __name__ == '__main__':
 *         print(mp.get_start_method(), mp.get_all_start_methods())
 *         procs = [mp.Process(target=work, args=(lo, hi)) for ...]
 *         for p in procs: p.start()
 *         for p in procs: p.join(); print(p.name, p.exitcode)
 */
#include "example.h"

#include <stdint.h>
#include <stdio.h>

#include "mproc.h"

#define N 1234567 /* the workers share the range [0, N) */

/* The target: the sum of squares over [lo, hi); it returns the last two
 * digits as its status, which the parent gets as the exit code. */
static int work(const mp_args *args) {
  int64_t lo, hi;
  if (mp_args_unpack(args, "II", &lo, &hi) != 0)
    return 99;
  uint64_t sum = 0;
  for (int64_t i = lo; i < hi; i++)
    sum += (uint64_t)(i * i);
  printf("    %-9s pid %-6lld [%7lld, %7lld) -> %llu\n",
         mp_process_name(mp_current_process()), (long long)mp_getpid(),
         (long long)lo, (long long)hi, (unsigned long long)sum);
  fflush(stdout);
  return (int)(sum % 100);
}

static int forever(const mp_args *args) {
  (void)args;
  ex_sleep(1000);
  return 0;
}

/* Four workers with `method`, each on a quarter of the range. */
static int four_workers(const char *method) {
  mp_context *ctx;
  mp_process *procs[4];
  for (int i = 0; i < 4; i++) {
    mp_args *args;
    if (mp_get_context(method, &ctx) != 0 ||
        mp_args_pack(&args, "II", (int64_t)i * N / 4,
                     (int64_t)(i + 1) * N / 4) != 0 ||
        mp_process_new(&procs[i], work, args) != 0 ||
        mp_process_set_context(procs[i], ctx) != 0 ||
        mp_process_start(procs[i]) != 0)
      return 1;
    mp_args_free(args);
  }
  for (int i = 0; i < 4; i++) {
    int code = -1;
    mp_process_join(procs[i], MP_FOREVER);
    mp_process_exitcode(procs[i], &code);
    printf("    joined %s: exitcode %d\n", mp_process_name(procs[i]), code);
    mp_process_free(procs[i]);
  }
  return 0;
}

int main(int argc, char **argv) {
  /* Above the guard: spawned children re-run it, like a module's top. */
  printf("[main() entered in pid %lld]\n", (long long)mp_getpid());
  fflush(stdout);
  MP_MAIN_GUARD(argc, argv);

  double start = ex_now();
  const char *methods[4];
  int n = mp_get_all_start_methods(methods, 4), code = 0;
  mp_process *p;
  printf("\nmproc %s - Python's multiprocessing for C, in %s\n",
         mp_version(), mp_process_name(mp_current_process()));
  printf("start method: %s (available:", mp_get_start_method());
  for (int i = 0; i < n && i < 4; i++)
    printf(" %s", methods[i]);
  printf(")\ncpu count: %d (this process may use %d)\n\n", mp_cpu_count(),
         mp_process_cpu_count());

  printf("1. Four workers (%s) sum i*i over quarters of [0, %d) in "
         "parallel;\n   each returns its result's last two digits as its "
         "exit code:\n", mp_get_start_method(), N);
  fflush(stdout);
  if (four_workers(mp_get_start_method()) != 0)
    goto fail;

  printf("\n2. A process that would sleep for 1000 s, terminated:\n");
  fflush(stdout);
  if (mp_process_startf(&p, forever, "") != 0)
    goto fail;
  printf("    %s is_alive: %s\n", mp_process_name(p),
         mp_process_is_alive(p) ? "True" : "False");
  mp_process_terminate(p);
  mp_process_join(p, MP_FOREVER);
  if (mp_process_exitcode(p, &code) != 0)
    goto fail;
  printf("    terminated: is_alive %s, exitcode %d\n",
         mp_process_is_alive(p) ? "True" : "False", code);
  mp_process_free(p);

  printf("\n3. The same with \"spawn\": each child re-runs main up to "
         "MP_MAIN_GUARD\n   (the first line again), which then runs the "
         "worker instead:\n");
  fflush(stdout);
  if (four_workers("spawn") != 0)
    goto fail;

  printf("\nTour done in %.2f s.\n", ex_now() - start);
  return 0;
fail:
  fprintf(stderr, "error: %s\n", mp_last_error_message());
  return 1;
}
