/*
 * parallel_speedup.c - two child processes and the parent run the same
 * task at the same time.
 *
 * The Python original:
 *
 *     from multiprocessing import Process
 *     import time
 *
 *     def task(name):
 *         print(name, 'start')
 *         time.sleep(0.5)
 *         print(name, 'end')
 *
 *     if __name__ == '__main__':
 *         start = time.time()
 *         p1 = Process(target=task, args=('p1',))
 *         p2 = Process(target=task, args=('p2',))
 *         p1.start()
 *         p2.start()
 *         task('main')
 *         p1.join()
 *         p2.join()
 *         print('total: %.2f s' % (time.time() - start))
 *
 * Three tasks of 0.5 s each take about 0.5 s in all, not 1.5 s: they run
 * in parallel.
 */
#include "example.h"

#include <stdio.h>

#include "mproc.h"

#define TASK_SECONDS 0.5

static void task(const char *name) {
  printf("%s start\n", name);
  fflush(stdout);
  ex_sleep(TASK_SECONDS);
  printf("%s end\n", name);
  fflush(stdout);
}

/* The target: the same task, its name taken from the arguments. */
static int task_target(const mp_args *args) {
  task(mp_args_str(args, 0));
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);

  double start = ex_now();
  mp_process *p1, *p2;
  if (mp_process_startf(&p1, task_target, "s", "p1") != 0 ||
      mp_process_startf(&p2, task_target, "s", "p2") != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  task("main");
  mp_process_join(p1, MP_FOREVER);
  mp_process_join(p2, MP_FOREVER);
  printf("total: %.2f s (three tasks of %.2f s each)\n", ex_now() - start,
         TASK_SECONDS);
  mp_process_free(p1);
  mp_process_free(p2);
  return 0;
}
