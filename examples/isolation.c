/*
 * isolation.c - processes do not share memory.
 *
 * The Python original:
 *
 *     from multiprocessing import Process
 *
 *     num = 1000
 *
 *     def work():
 *         global num
 *         num += 1
 *         print('in the child: num =', num)
 *
 *     if __name__ == '__main__':
 *         p = Process(target=work)
 *         p.start()
 *         p.join()
 *         print('in the parent: num =', num)
 *
 * The child changes its own copy of the global (a copy made by fork, or a
 * fresh one when spawn re-runs the program); the parent's stays 1000.
 */
#include "example.h"

#include <stdio.h>

#include "mproc.h"

static int num = 1000;

static int work(const mp_args *args) {
  (void)args;
  num += 1;
  printf("in the child: num = %d\n", num);
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);

  mp_process *p;
  if (mp_process_startf(&p, work, "") != 0 ||
      mp_process_join(p, MP_FOREVER) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  printf("in the parent: num = %d\n", num);
  mp_process_free(p);
  return num == 1000 ? 0 : 1;
}
