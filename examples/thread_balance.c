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
 * memory, so the thread takes a plain pointer; any mproc lock works
 * between threads as between processes.
 */
#include "example.h"

#include <stdio.h>

#include "mproc.h"

#define N 100000

typedef struct account {
  mp_lock *lock;
  long balance;
} account;

static int change(account *a, long by) {
  for (int i = 0; i < N; i++) {
    if (mp_lock_acquire(a->lock, MP_FOREVER) != 0)
      return 1;
    a->balance += by;
    mp_lock_release(a->lock);
  }
  return 0;
}

static int deposit(void *arg) { return change(arg, +1); }

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);

  account a = {NULL, 0};
  mp_thread *t = NULL;
  if (mp_lock_new(&a.lock) != 0 || mp_thread_new(&t, deposit, &a) != 0 ||
      mp_thread_start(t) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  int failed = change(&a, -1); /* withdraw, while the thread deposits */
  int code = -1;
  mp_thread_join(t, MP_FOREVER);
  mp_thread_exitcode(t, &code);
  mp_thread_free(t);
  mp_lock_free(a.lock);

  printf("balance: %ld\n", a.balance);
  return failed || code != 0 || a.balance != 0;
}
