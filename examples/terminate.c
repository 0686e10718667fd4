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

/* Print the process the way Python's repr() of a Process does. */
static void print_process(mp_process *p) {
  int alive = mp_process_is_alive(p);
  int code;
  printf("<Process name='%s'", mp_process_name(p));
  if (mp_process_pid(p) != 0)
    printf(" pid=%lld", (long long)mp_process_pid(p));
  printf(" parent=%lld", (long long)mp_getpid());
  if (mp_process_pid(p) == 0)
    printf(" initial>");
  else if (mp_process_exitcode(p, &code) == 0)
    printf(" stopped exitcode=%d>", code);
  else
    printf(" started>");
  printf(" %s\n", alive ? "True" : "False");
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
