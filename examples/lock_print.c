/*
 * lock_print.c - a Lock that lets one process print at a time.
 *
 * The Python original (from the multiprocessing documentation):
 *
 *     from multiprocessing import Process, Lock
 *
 *     def f(l, i):
 *         l.acquire()
 *         try:
 *             print('hello world', i)
 *         finally:
 *             l.release()
 *
 *     if __name__ == '__main__':
 *         lock = Lock()
 *
 *         for num in range(10):
 *             Process(target=f, args=(lock, num)).start()
 *
 * Ten "hello world N" lines, in any order, never mixed up.  The lock is
 * only useful if each line is fully written while it is held: the child
 * flushes stdout before releasing it (stdout is fully buffered when it
 * is not a terminal).  Python joins non-daemonic children at exit; C
 * joins them explicitly.
 *
 * An optional argument chooses the start method: lock_print spawn.
 */
#include "example.h"

#include <stdio.h>

#include "mproc.h"

#define N 10

static int f(const mp_args *args) {
  mp_lock *l = mp_args_lock(args, 0);
  int i = (int)mp_args_int(args, 1);
  int rc = mp_lock_acquire(l, MP_FOREVER);
  if (rc != 0 && rc != MP_EOWNERDEAD) /* dead owner: we hold it anyway */
    return mp_set_error(1, "acquire: %s", mp_last_error_message());
  printf("hello world %d\n", i);
  fflush(stdout);
  if (mp_lock_release(l) != 0)
    return mp_set_error(1, "release: %s", mp_last_error_message());
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  if (ex_start_method(argc, argv) != 0)
    return 2;

  mp_lock *lock;
  if (mp_lock_new(&lock) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  mp_process *ps[N];
  for (int num = 0; num < N; num++) {
    if (mp_process_startf(&ps[num], f, "Li", lock, num) != 0) {
      fprintf(stderr, "error: %s\n", mp_last_error_message());
      return 1;
    }
  }

  int failed = 0;
  for (int num = 0; num < N; num++) {
    int code = -1;
    mp_process_join(ps[num], MP_FOREVER);
    mp_process_exitcode(ps[num], &code);
    failed |= code != 0;
    mp_process_free(ps[num]);
  }
  mp_lock_free(lock);
  return failed;
}
