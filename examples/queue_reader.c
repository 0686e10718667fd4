/*
 * queue_reader.c - a writer and a reader process on one Queue; the reader
 * loops forever and is terminated once it has printed everything.
 *
 * The Python original (after the multiprocessing documentation):
 *
 *     from multiprocessing import Process, JoinableQueue
 *
 *     def writer(q):
 *         for item in ['A', 'B', 'C']:
 *             q.put(item)
 *
 *     def reader(q):
 *         while True:                    # until terminated
 *             item = q.get()
 *             print('reader got', item, flush=True)
 *             q.task_done()
 *
 *     if __name__ == '__main__':
 *         q = JoinableQueue()
 *         r = Process(target=reader, args=(q,))
 *         w = Process(target=writer, args=(q,))
 *         r.start()
 *         w.start()
 *         w.join()          # all three items are in the queue
 *         q.join()          # ... and the reader has printed each of them
 *         r.terminate()
 *         r.join()
 *         print('reader terminated, exitcode', r.exitcode)   # -15
 *
 * The reader never returns by itself.  Terminating it right after the
 * writer ends could kill it before it has printed the last item, so the
 * main program first waits with the JoinableQueue's join, which returns
 * once the reader has called task_done for every item (after printing
 * it): no sleep is needed to be sure.
 *
 * An optional argument chooses the start method: queue_reader spawn.
 */
#include "example.h"

#include <stdio.h>

#include "mproc.h"

#define SIGTERM_CODE 15

static int writer(const mp_args *args) {
  mp_queue *q = mp_args_queue(args, 0);
  static const char *const items[] = {"A", "B", "C"};
  for (int i = 0; i < 3; i++)
    if (mp_queue_put(q, items[i], 1, MP_FOREVER) != 0)
      return mp_set_error(1, "put: %s", mp_last_error_message());
  return 0;
}

static int reader(const mp_args *args) {
  mp_queue *q = mp_args_queue(args, 0);
  for (;;) {
    char item[16];
    size_t n;
    if (mp_queue_get_into(q, item, sizeof item - 1, &n, MP_FOREVER) != 0)
      return mp_set_error(1, "get: %s", mp_last_error_message());
    item[n] = '\0';
    printf("reader got %s\n", item);
    fflush(stdout);
    if (mp_queue_task_done(q) != 0)
      return mp_set_error(1, "task_done: %s", mp_last_error_message());
  }
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  if (ex_start_method(argc, argv) != 0)
    return 2;

  mp_queue *q;
  mp_process *r, *w;
  if (mp_joinable_queue_new(&q, 0) != 0 ||
      mp_process_startf(&r, reader, "Q", q) != 0 ||
      mp_process_startf(&w, writer, "Q", q) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }

  int wcode = -1, rcode = 0;
  mp_process_join(w, MP_FOREVER);
  mp_process_exitcode(w, &wcode);
  if (wcode != 0) {
    /* Nothing more is coming: do not wait for task_done. */
    fprintf(stderr, "writer failed (exitcode %d): %s\n", wcode,
            mp_process_error(w) ? mp_process_error(w) : "no message");
  } else if (mp_queue_join(q, MP_FOREVER) != 0) {
    fprintf(stderr, "join: %s\n", mp_last_error_message());
    wcode = 1;
  }
  mp_process_terminate(r);
  mp_process_join(r, MP_FOREVER);
  mp_process_exitcode(r, &rcode);
  printf("reader terminated, exitcode %d\n", rcode);

  mp_process_free(w);
  mp_process_free(r);
  mp_queue_free(q);
  return wcode == 0 && rcode == -SIGTERM_CODE ? 0 : 1;
}
