/*
 * consumer.c - what a program using an installed (or vendored) mproc
 * looks like: it starts a process that runs a function, joins it and
 * checks its exit code, under the default start method and under
 * "spawn" (which re-runs this program up to MP_MAIN_GUARD, so it also
 * checks that a spawned child finds the library).
 *
 * Prints "consumer ok: <version> <methods>" and exits 0 when all is well.
 */
#include <stdio.h>
#include <string.h>

#include <mproc.h>

static int child(const mp_args *args) {
  /* The exit code the parent checks: the argument plus one. */
  return (int)mp_args_int(args, 0) + 1;
}

static int run_with(const char *method, int arg) {
  mp_context *ctx;
  mp_process *p;
  mp_args *args;
  int code = -1;
  if (mp_get_context(method, &ctx) != 0 ||
      mp_args_pack(&args, "i", arg) != 0 ||
      mp_process_new(&p, child, args) != 0 ||
      mp_process_set_context(p, ctx) != 0 || mp_process_start(p) != 0 ||
      mp_process_join(p, 60.0) != 0 || mp_process_exitcode(p, &code) != 0) {
    fprintf(stderr, "consumer: %s: %s\n", method, mp_last_error_message());
    return 1;
  }
  mp_process_free(p);
  mp_args_free(args);
  if (code != arg + 1) {
    fprintf(stderr, "consumer: %s: exit code %d, expected %d\n", method,
            code, arg + 1);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  if (strcmp(mp_version(), MP_VERSION_STRING) != 0) {
    fprintf(stderr, "consumer: header %s, library %s\n", MP_VERSION_STRING,
            mp_version());
    return 1;
  }
  if (run_with(mp_get_start_method(), 41) != 0 || run_with("spawn", 6) != 0)
    return 1;
  printf("consumer ok: mproc %s, %s and spawn\n", mp_version(),
         mp_get_start_method());
  return 0;
}
