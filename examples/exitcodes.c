/*
 * exitcodes.c - how a child's end becomes its exitcode.
 *
 * The Python documentation of Process.exitcode:
 *
 *     The child's exit code.  This will be None if the process has not
 *     yet terminated.  If the child's run() method returned normally,
 *     the exit code will be 0.  If it terminated via sys.exit() with an
 *     integer argument N, the exit code will be N.  If the process was
 *     terminated by signal N, the exit code will be the negative value -N.
 *
 * A Python program to match:
 *
 *     import ctypes, os, sys, time
 *     from multiprocessing import Process
 *
 *     def ok():     pass
 *     def three():  sys.exit(3)
 *     def five():   os._exit(5)
 *     def crash():  ctypes.string_at(0)
 *     def hang():   time.sleep(1000)
 *
 *     if __name__ == '__main__':
 *         for f in (ok, three, five, crash, hang):
 *             p = Process(target=f, name=f.__name__)
 *             p.start()
 *             if f is hang:
 *                 time.sleep(0.5)
 *                 p.kill()
 *             p.join()
 *             print(p.name, p.exitcode)    # 0, 3, 5, -11, -9
 *
 * In C a target's return value is the exit code, and mp_set_error gives
 * the parent a message with it (mp_process_error).  On Windows the
 * library maps a crash (access violation) to -11 and kill to -9 as well.
 */
#include "example.h"

#include <stdio.h>
#include <stdlib.h>

#include "mproc.h"

/* A null pointer the compiler cannot see through, for the crash. */
static int *volatile null_pointer = NULL;

static int returns_0(const mp_args *args) {
  (void)args;
  return 0;
}

static int returns_3(const mp_args *args) {
  (void)args;
  return mp_set_error(3, "cannot open %s", "settings.ini");
}

static int calls_exit_5(const mp_args *args) {
  (void)args;
  exit(5);
}

EX_NO_UBSAN static int crashes(const mp_args *args) {
  (void)args;
  *null_pointer = 1;
  return 0;
}

static int is_killed(const mp_args *args) {
  (void)args;
  ex_sleep(1000);
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);

  static const struct {
    const char *name;
    mp_target_fn target;
    int expected;
  } cases[] = {
      {"returns-0", returns_0, 0},       {"returns-3", returns_3, 3},
      {"calls-exit-5", calls_exit_5, 5}, {"crashes", crashes, -11},
      {"is-killed", is_killed, -9},
  };
  int failures = 0;

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mp_process *p;
    if (mp_process_new(&p, cases[i].target, NULL) != 0 ||
        mp_process_set_name(p, cases[i].name) != 0 ||
        mp_process_start(p) != 0) {
      fprintf(stderr, "error: %s\n", mp_last_error_message());
      return 1;
    }
    if (cases[i].target == is_killed) {
      mp_process_kill(p);
    }
    mp_process_join(p, MP_FOREVER);

    int code = 0;
    mp_process_exitcode(p, &code);
    const char *error = mp_process_error(p);
    printf("%-13s exitcode %3d  error: %s\n", mp_process_name(p), code,
           error ? error : "None");
    fflush(stdout);
    failures += code != cases[i].expected;
    mp_process_free(p);
  }
  return failures == 0 ? 0 : 1;
}
