/*
 * thread_balance.c - two threads change one balance under a Lock.
 *
 * The Python original (the classic threading lesson):
 *
 *     import threading
 *
 *     balance = 0
 *     lock = threading.Lock()
 *
 *     def deposit(n):
 *         global balance
 *         for _ in range(n):
 *             with lock:
 *                 balance += 1
 *
 *     def withdraw(n):
 *         global balance
 *         for _ in range(n):
 *             with lock:
 *                 balance -= 1
 *
 *     if __name__ == '__main__':
 *         t = threading.Thread(target=deposit, args=(100000,))
 *         t.start()
 *         withdraw(100000)          # the main thread, meanwhile
 *         t.join()
 *         print('balance:', balance)    # 0
 *
 * `balance += 1` reads, adds and writes back: two threads doing it at
 * once without the lock lose updates, and the balance ends wherever the
 * race leaves it.  With the lock it is 0.  Threads share the process's
 * memory, so the balance and the lock are globals, as in Python; the
 * thread runs a process-style target (mp_thread_startf), its args from a
 * format.  Any mproc lock works between threads as between processes.
 */
#include "example.h"

#include <stdio.h>

#include "mproc.h"

#define N 100000

static long balance = 0;
static mp_lock *lock;

static int change(long by, long n) {
  for (long i = 0; i < n; i++) {
    if (mp_lock_acquire(lock, MP_FOREVER) != 0)
      return 1;
    balance += by;
    mp_lock_release(lock);
  }
  return 0;
}

static int deposit(const mp_args *args) {
  return change(+1, (long)mp_args_int(args, 0));
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);

  mp_thread *t;
  if (mp_lock_new(&lock) != 0 || mp_thread_startf(&t, deposit, "i", N) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  int failed = change(-1, N); /* withdraw, while the thread deposits */
  int code = -1;
  mp_thread_join(t, MP_FOREVER);
  mp_thread_exitcode(t, &code);
  mp_thread_free(t);
  mp_lock_free(lock);

  printf("balance: %ld\n", balance);
  return failed || code != 0 || balance != 0;
}
