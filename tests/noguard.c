/*
 * noguard.c - a program that forgets MP_MAIN_GUARD.  Starting a process
 * with spawn (or forkserver) must fail at once with MP_EBOOTSTRAP and a
 * message naming the guard, instead of re-running this program without
 * end.  Exits 0 when that is what happens.
 */
#include <stdio.h>
#include <string.h>

#include "mproc.h"

static int noop(const mp_args *a) {
  (void)a;
  return 0;
}

static int check(const char *method) {
  mp_context *ctx;
  mp_process *p;
  if (mp_get_context(method, &ctx) != 0 || mp_process_new(&p, noop, NULL))
    return 1;
  mp_process_set_context(p, ctx);
  int rc = mp_process_start(p);
  if (rc != MP_EBOOTSTRAP ||
      strstr(mp_last_error_message(), "MP_MAIN_GUARD") == NULL) {
    printf("%s: expected MP_EBOOTSTRAP, got %s (%s)\n", method,
           mp_err_name(rc), mp_last_error_message());
    return 1;
  }
  printf("%s without the guard: %s: %s\n", method, mp_err_name(rc),
         mp_last_error_message());
  return mp_process_free(p);
}

int main(void) {
  int failed = check("spawn");
#if MP_HAS_FORKSERVER
  failed |= check("forkserver");
#endif
#if MP_HAS_FORK
  /* fork needs no guard: it must still work. */
  mp_context *ctx;
  mp_process *p;
  mp_get_context("fork", &ctx);
  mp_process_new(&p, noop, NULL);
  mp_process_set_context(p, ctx);
  if (mp_process_start(p) != 0 || mp_process_join(p, 30) != 0)
    failed = 1;
  mp_process_free(p);
#endif
  printf(failed ? "noguard: FAILED\n" : "noguard: ok\n");
  return failed;
}
