/*
 * join_loop.c - start several processes in a loop, join them in a loop.
 *
 * The Python original:
 *
 *     from multiprocessing import Process
 *     import time
 *
 *     def worker(interval):
 *         time.sleep(interval)
 *
 *     if __name__ == '__main__':
 *         start = time.time()
 *         procs = [Process(target=worker, args=(t,))
 *                  for t in (0.3, 0.1, 0.5)]
 *         for p in procs:
 *             p.start()
 *         for p in procs:
 *             p.join()
 *             print('%s (sleeps %.1f s) joined after %.1f s'
 *                   % (p.name, ..., time.time() - start))
 *
 * Joining in start order: Process-2 (0.1 s) ended while we waited for
 * Process-1 (0.3 s), so its join returns at once; the whole loop takes as
 * long as the longest sleep.
 */
#include "example.h"

#include <stdio.h>

#include "mproc.h"

#define NPROCS 3

static int worker(const mp_args *args) {
  ex_sleep(mp_args_double(args, 0));
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);

  static const double intervals[NPROCS] = {0.3, 0.1, 0.5};
  mp_process *procs[NPROCS];
  double start = ex_now();

  for (int i = 0; i < NPROCS; i++) {
    if (mp_process_startf(&procs[i], worker, "d", intervals[i]) != 0) {
      fprintf(stderr, "error: %s\n", mp_last_error_message());
      return 1;
    }
  }
  for (int i = 0; i < NPROCS; i++) {
    mp_process_join(procs[i], MP_FOREVER);
    printf("%s (sleeps %.1f s) joined after %.1f s\n",
           mp_process_name(procs[i]), intervals[i], ex_now() - start);
  }
  printf("all joined after %.1f s\n", ex_now() - start);
  for (int i = 0; i < NPROCS; i++)
    mp_process_free(procs[i]);
  return 0;
}
