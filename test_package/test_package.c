/*
 * test_package.c - the smallest real use of an installed mproc: start a
 * process running child(), join it and check its exit code.  Exits 0 and
 * prints the library version when all is well.
 */
#include <stdio.h>

#include <mproc.h>

#define ARG 41

static int child(const mp_args *args) {
  return (int)mp_args_int(args, 0) + 1; /* the exit code: ARG + 1 */
}

int main(int argc, char **argv) {
  mp_args *args = NULL;
  mp_process *p = NULL;
  int code = -1;

  /* Must come first: a spawned child runs child() here and exits. */
  MP_MAIN_GUARD(argc, argv);

  if (mp_args_pack(&args, "i", ARG) != 0 ||
      mp_process_new(&p, child, args) != 0 || mp_process_start(p) != 0 ||
      mp_process_join(p, MP_FOREVER) != 0 ||
      mp_process_exitcode(p, &code) != 0) {
    fprintf(stderr, "test_package: %s\n", mp_last_error_message());
    return 1;
  }
  mp_process_free(p);
  mp_args_free(args);
  if (code != ARG + 1) {
    fprintf(stderr, "test_package: exit code %d, expected %d\n", code,
            ARG + 1);
    return 1;
  }
  printf("test_package: mproc %s (%s), child exit code %d\n", mp_version(),
         mp_get_start_method(), code);
  return 0;
}
