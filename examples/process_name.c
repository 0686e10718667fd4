/*
 * process_name.c - a target with an argument.
 *
 * The Python original:
 *
 *     from multiprocessing import Process
 *     import time
 *
 *     def run_proc(name):
 *         print(name + ' is running')
 *         time.sleep(0.5)
 *         print(name + ' is gone')
 *
 *     if __name__ == '__main__':
 *         p = Process(target=run_proc, args=('黑哥',))
 *         print('Child process will start.')
 *         p.start()
 *         p.join()
 *         print('Child process end.')
 *
 * In C the arguments travel as an mp_args tuple: built from a format by
 * mp_process_startf in the parent, read with mp_args_str in the child.
 */
#include "example.h"

#include <stdio.h>

#include "mproc.h"

static int run_proc(const mp_args *args) {
  const char *name = mp_args_str(args, 0);
  printf("%s is running\n", name);
  fflush(stdout);
  ex_sleep(0.5);
  printf("%s is gone\n", name);
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);

  printf("Child process will start.\n");
  fflush(stdout); /* before the child writes to the same stdout */
  mp_process *p;
  if (mp_process_startf(&p, run_proc, "s", "黑哥") != 0 ||
      mp_process_join(p, MP_FOREVER) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  printf("Child process end.\n");
  mp_process_free(p);
  return 0;
}
