/*
 * thread_exit.c - main returns while a non-daemonic mp_thread still runs:
 * as in Python, the exit waits for it (the test checks that its last line
 * is printed after main's).  A daemonic thread blocked for good is not
 * waited for.
 *
 * The thread's timed wait times out during the exit, so that an error
 * message with a float (%g) is formatted then: MinGW's float formatting
 * once deadlocked there (see src/win32/thread.c).
 */
#include <stdio.h>

#include "mproc.h"

static int late(void *arg) {
  int rc = mp_event_wait((mp_event *)arg, 0.2); /* nobody sets it */
  printf("thread: %s (%s)\n", mp_err_name(rc), mp_last_error_message());
  fflush(stdout);
  return 0;
}

static int forever(void *arg) {
  mp_event_wait((mp_event *)arg, MP_FOREVER);
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  mp_event *e = NULL;
  mp_thread *t = NULL, *d = NULL;
  if (mp_event_new(&e) != 0 || mp_thread_new(&t, late, e) != 0 ||
      mp_thread_start(t) != 0 || mp_thread_new(&d, forever, e) != 0 ||
      mp_thread_set_daemon(d, 1) != 0 || mp_thread_start(d) != 0) {
    printf("error: %s\n", mp_last_error_message());
    return 1;
  }
  mp_thread_free(t);
  mp_thread_free(d);
  printf("main returns\n");
  fflush(stdout);
  return 0;
}
