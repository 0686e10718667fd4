/*
 * main.c - the main() of every test program.
 *
 * MP_MAIN_GUARD comes first, as in any mproc program, so that spawned
 * children run their target instead of Criterion.  The pre-guard hook
 * lets tests exercise what happens before the guard in a spawned child:
 * MPROC_TEST_PREGUARD=start  try to start a process (must fail, exit 42)
 * MPROC_TEST_PREGUARD=skip   exit 5 without ever reaching the guard
 * MPROC_TEST_PREGUARD=mark:F append "pre-guard\n" to file F (code above
 *                            the guard runs again in spawned children)
 * MPROC_TEST_PREGUARD=wait:S block until a value arrives through the
 *                            test pipe S (see ts_pipe_spec)
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"
#include "support.h"

#if defined(_WIN32)
#  include <windows.h>
#  define TEST_MAIN_EXPORT __declspec(dllexport) /* BoxFort looks it up */
#else
/* BoxFort finds main by its symbol: keep it visible despite the
 * project-wide -fvisibility=hidden. */
#  define TEST_MAIN_EXPORT __attribute__((visibility("default")))
#endif

int ts_argc;
char **ts_argv;

static int noop(const mp_args *a) {
  (void)a;
  return 0;
}

static void pre_guard(void) {
  const char *m = getenv("MPROC_TEST_PREGUARD");
  if (m == NULL)
    return;
  if (strcmp(m, "start") == 0) {
    mp_process *p = NULL;
    int rc = mp_process_new(&p, noop, NULL);
    if (rc == 0)
      rc = mp_process_start(p);
    exit(rc == MP_EBOOTSTRAP ? 42 : 43);
  }
  if (strcmp(m, "skip") == 0)
    exit(5);
  if (strncmp(m, "mark:", 5) == 0)
    ts_append_file(m + 5, "pre-guard\n");
  if (strncmp(m, "wait:", 5) == 0 && ts_pipe_take(m + 5) != 1)
    exit(44);
}

TEST_MAIN_EXPORT int main(int argc, char **argv) {
#if defined(_WIN32)
  SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX);
#endif
  ts_argc = argc;
  ts_argv = argv;
  pre_guard();
  MP_MAIN_GUARD(argc, argv);
  struct criterion_test_set *tests = criterion_initialize();
  int result = 0;
  if (criterion_handle_args(argc, argv, true))
    result = !criterion_run_all_tests(tests);
  criterion_finalize(tests);
  return result;
}
