/*
 * guard_rerun.c - why MP_MAIN_GUARD matters.
 *
 * The Python original:
 *
 *     import multiprocessing, os
 *
 *     print('top of module (pid %d)' % os.getpid())  # module level
 *
 *     def f(method):
 *         print('child started with %s (pid %d)' % (method, os.getpid()))
 *
 *     if __name__ == '__main__':
 *         for method in ('spawn', 'fork'):
 *             ctx = multiprocessing.get_context(method)
 *             p = ctx.Process(target=f, args=(method,))
 *             p.start()
 *             p.join()
 *
 * "spawn" starts a fresh copy of the program, which runs main from the
 * top: everything above MP_MAIN_GUARD runs again in the child, like
 * Python's module-level code, and the guard then runs the target and
 * exits instead of returning.  "fork" copies the running parent, so the
 * child starts inside mp_process_start and the top of main is not run
 * again.  Code that must run once belongs below the guard.  (Windows has
 * no fork: there only the spawn part runs.)
 */
#include "example.h"

#include <stdio.h>

#include "mproc.h"

static int f(const mp_args *args) {
  printf("child started with %s (pid %lld), then returns\n",
         mp_args_str(args, 0), (long long)mp_getpid());
  fflush(stdout);
  return 0;
}

static int run_with(const char *method) {
  mp_context *ctx;
  mp_args *args;
  mp_process *p;
  printf("-- starting a child with %s\n", method);
  fflush(stdout);
  if (mp_get_context(method, &ctx) != 0 ||
      mp_args_pack(&args, "s", method) != 0 ||
      mp_process_new(&p, f, args) != 0 ||
      mp_process_set_context(p, ctx) != 0 || mp_process_start(p) != 0 ||
      mp_process_join(p, MP_FOREVER) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  mp_args_free(args);
  printf("-- %s child (pid %lld) joined\n", method,
         (long long)mp_process_pid(p));
  mp_process_free(p);
  return 0;
}

int main(int argc, char **argv) {
  /* Above the guard: runs in the main program and in every spawned
   * child. */
  printf("top of main (pid %lld)\n", (long long)mp_getpid());
  fflush(stdout);

  MP_MAIN_GUARD(argc, argv);

  /* Below the guard: the main program only. */
  printf("below the guard (pid %lld): the main program only\n",
         (long long)mp_getpid());
  int rc = run_with("spawn");
#if MP_HAS_FORK
  rc |= run_with("fork");
#else
  printf("-- no fork on this platform\n");
#endif
  return rc;
}
