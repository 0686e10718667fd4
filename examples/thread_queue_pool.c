/*
 * thread_queue_pool.c - a hand-made pool of worker threads fed by a
 * queue, stopped by one sentinel per worker.
 *
 * The Python original (the queue module's documentation):
 *
 *     import threading, queue
 *
 *     def worker():
 *         while True:
 *             item = q.get()
 *             if item is None:
 *                 break
 *             print(f'{threading.current_thread().name}: working on {item}')
 *             q.task_done()
 *
 *     q = queue.Queue()
 *     threads = []
 *     for i in range(num_worker_threads):
 *         t = threading.Thread(target=worker)
 *         t.start()
 *         threads.append(t)
 *
 *     for item in range(20):
 *         q.put(item)
 *
 *     q.join()                  # block until all tasks are done
 *
 *     for i in range(num_worker_threads):
 *         q.put(None)           # stop the workers
 *     for t in threads:
 *         t.join()
 *     print('All work completed')
 *
 * Items are 4-byte integers; the sentinel (Python's None) is an empty
 * message.  Each worker prints what it works on and, at the end, how many
 * items it did; which worker takes which item is up to the scheduler.
 * The program checks that every item was done exactly once.
 */
#include "example.h"

#include <stdint.h>
#include <stdio.h>

#include "mproc.h"

#define WORKERS 4
#define ITEMS 20

/* Shared by the threads, as the globals of the Python original. */
static mp_queue *q;
static mp_lock *lock; /* guards done[] */
static int done[ITEMS]; /* times each item was worked on */

static int worker(const mp_args *args) {
  (void)args;
  const char *name = mp_thread_name(mp_current_thread());
  int count = 0;
  for (;;) {
    int32_t item;
    size_t n = 0;
    if (mp_queue_get_into(q, &item, sizeof item, &n, MP_FOREVER) != 0)
      return mp_set_error(1, "get: %s", mp_last_error_message());
    if (n == 0) /* the sentinel */
      break;
    printf("%s: working on %d\n", name, (int)item);
    if (item >= 0 && item < ITEMS) {
      mp_lock_acquire(lock, MP_FOREVER);
      done[item]++;
      mp_lock_release(lock);
    }
    count++;
    mp_queue_task_done(q);
  }
  printf("%s: done, %d items\n", name, count);
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);

  if (mp_joinable_queue_new(&q, 0) != 0 || mp_lock_new(&lock) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  mp_thread *threads[WORKERS];
  for (int i = 0; i < WORKERS; i++)
    if (mp_thread_startf(&threads[i], worker, "") != 0) {
      fprintf(stderr, "error: %s\n", mp_last_error_message());
      return 1;
    }

  for (int32_t item = 0; item < ITEMS; item++)
    mp_queue_put(q, &item, sizeof item, MP_FOREVER);
  mp_queue_join(q, MP_FOREVER); /* block until all tasks are done */

  for (int i = 0; i < WORKERS; i++)
    mp_queue_put(q, "", 0, MP_FOREVER); /* stop the workers */
  int failed = 0;
  for (int i = 0; i < WORKERS; i++) {
    int code = -1;
    mp_thread_join(threads[i], MP_FOREVER);
    mp_thread_exitcode(threads[i], &code);
    failed |= code != 0;
    mp_thread_free(threads[i]);
  }
  for (int i = 0; i < ITEMS; i++)
    if (done[i] != 1) {
      fprintf(stderr, "error: item %d done %d times\n", i, done[i]);
      failed = 1;
    }
  mp_queue_free(q);
  mp_lock_free(lock);
  printf("All work completed\n");
  return failed;
}
