/*
 * terminate.c - terminate, is_alive, exitcode and the name attribute.
 *
 * The Python original (after the multiprocessing documentation):
 *
 *     import multiprocessing, time, signal
 *     p = multiprocessing.Process(target=time.sleep, args=(1000,))
 *     print(p, p.is_alive())
 *     # <Process name='Process-1' parent=... initial> False
 *     p.start()
 *     print(p, p.is_alive())
 *     # <Process name='Process-1' pid=... parent=... started> True
 *     p.terminate()
 *     p.join()
 *     print(p, p.is_alive())
 *     # <Process name='Process-1' pid=... parent=... stopped
 *     #  exitcode=-SIGTERM> False
 *     print(p.exitcode == -signal.SIGTERM)   # True
 *     p.name = 'sleeper'
 *     print(p.name)                          # sleeper
 *
 * The worker would sleep for 1000 s; terminate() ends it at once.  Under
 * Windows the library reports a terminated process as -15 too.
 */
#include "example.h"

#include <stdio.h>

#include "mproc.h"

#define SIGTERM_CODE 15

static int sleeper(const mp_args *args) {
  ex_sleep(mp_args_double(args, 0));
  return 0;
}

/* print(p, p.is_alive()) */
static void print_process(mp_process *p) {
  char repr[128];
  mp_process_repr(p, repr, sizeof repr);
  printf("%s %s\n", repr, mp_process_is_alive(p) ? "True" : "False");
  fflush(stdout);
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);

  mp_args *args;
  mp_process *p;
  if (mp_args_pack(&args, "d", 1000.0) != 0 ||
      mp_process_new(&p, sleeper, args) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  mp_args_free(args);

  print_process(p);
  if (mp_process_start(p) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  print_process(p);
  mp_process_terminate(p);
  mp_process_join(p, MP_FOREVER);
  print_process(p);

  int code = 0;
  mp_process_exitcode(p, &code);
  printf("exitcode == -SIGTERM: %s\n",
         code == -SIGTERM_CODE ? "True" : "False");
  const char *why = mp_process_error(p);
  printf("how it ended: %s\n", why ? why : "(no message)");

  mp_process_set_name(p, "sleeper");
  printf("renamed: %s\n", mp_process_name(p));
  mp_process_free(p);
  return code == -SIGTERM_CODE ? 0 : 1;
}
