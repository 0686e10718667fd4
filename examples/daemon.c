/*
 * daemon.c - what happens to children when the main program ends.
 *
 * The Python original:
 *
 *     from multiprocessing import Process
 *     import time
 *
 *     def daemon_loop():
 *         while True:                  # would run forever
 *             print('daemon: still here')
 *             time.sleep(0.2)
 *
 *     def worker():
 *         time.sleep(0.8)
 *         print('worker: done')
 *
 *     if __name__ == '__main__':
 *         Process(target=daemon_loop, daemon=True).start()
 *         Process(target=worker).start()
 *         time.sleep(0.5)
 *         print('main process ends')
 *
 * When main returns, the exit work of the library (Python's
 * _exit_function) first terminates the daemonic children, so the daemon's
 * lines stop, then joins the others: the program waits for "worker: done".
 * Neither child is joined or freed by main itself.
 */
#include "example.h"

#include <stdio.h>

#include "mproc.h"

static int daemon_loop(const mp_args *args) {
  double start = mp_args_double(args, 0);
  for (int i = 0; i < 50; i++) { /* 10 s: far longer than main runs */
    printf("[%.1f s] daemon: still here\n", ex_now() - start);
    fflush(stdout);
    ex_sleep(0.2);
  }
  printf("daemon: not terminated?\n");
  return 1;
}

static int worker(const mp_args *args) {
  double start = mp_args_double(args, 0);
  ex_sleep(0.8);
  printf("[%.1f s] worker: done\n", ex_now() - start);
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);

  double start = ex_now();
  mp_args *args;
  mp_process *d, *w;
  if (mp_args_pack(&args, "d", start) != 0 ||
      mp_process_new(&d, daemon_loop, args) != 0 ||
      mp_process_set_daemon(d, 1) != 0 || mp_process_start(d) != 0 ||
      mp_process_startf(&w, worker, "d", start) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  mp_args_free(args);

  ex_sleep(0.5);
  printf("[%.1f s] main process ends (daemon: %s, worker: %s)\n",
         ex_now() - start, mp_process_daemon(d) ? "daemonic" : "not daemonic",
         mp_process_daemon(w) ? "daemonic" : "not daemonic");
  fflush(stdout); /* before the exit work waits for the worker */
  return 0;
}
