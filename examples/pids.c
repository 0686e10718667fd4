/*
 * pids.c - who is who: process ids, names and the parent.
 *
 * The Python original (from the multiprocessing documentation):
 *
 *     from multiprocessing import Process
 *     import os
 *
 *     def info(title):
 *         print(title)
 *         print('module name:', __name__)
 *         print('parent process:', os.getppid())
 *         print('process id:', os.getpid())
 *
 *     def f(name):
 *         info('function f')
 *         print('hello', name)
 *
 *     if __name__ == '__main__':
 *         info('main line')
 *         p = Process(target=f, args=('bob',))
 *         p.start()
 *         p.join()
 *
 * Python's module name is "__main__" in the main program and in a forked
 * child, and "__mp_main__" in a child that re-ran the program (spawn,
 * forkserver); the C version prints the same.  It also prints the names
 * of mp_current_process() and mp_parent_process().
 */
#include "example.h"

#include <stdio.h>
#include <string.h>

#include "mproc.h"

static void info(const char *title) {
  mp_process *parent = mp_parent_process();
  int forked = strcmp(mp_get_start_method(), "fork") == 0;
  printf("%s\n", title);
  printf("module name: %s\n",
         parent == NULL || forked ? "__main__" : "__mp_main__");
  printf("parent process: %lld\n", (long long)mp_getppid());
  printf("process id: %lld\n", (long long)mp_getpid());
  printf("current process: %s\n", mp_process_name(mp_current_process()));
  if (parent != NULL)
    printf("parent process name: %s (pid %lld)\n", mp_process_name(parent),
           (long long)mp_process_pid(parent));
  else
    printf("parent process name: None\n");
  fflush(stdout);
}

static int f(const mp_args *args) {
  info("function f");
  printf("hello %s\n", mp_args_str(args, 0));
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);

  info("main line");
  printf("\n");
  fflush(stdout); /* before the child writes to the same stdout */

  mp_process *p;
  if (mp_process_startf(&p, f, "s", "bob") != 0 ||
      mp_process_join(p, MP_FOREVER) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  printf("\n(start method: %s; the child's pid was %lld)\n",
         mp_get_start_method(), (long long)mp_process_pid(p));
  mp_process_free(p);
  return 0;
}
