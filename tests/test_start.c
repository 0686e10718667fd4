/*
 * test_start.c - start methods and contexts, and the main guard: what a
 * spawned child does before the guard, and the errors that stop a program
 * from spawning itself without end.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods.h"
#include "mproc.h"
#include "support.h"

TS_SUITE(start);

static int noop(const mp_args *a) {
  (void)a;
  return 0;
}

Test(start, contexts) {
  mp_context *ctx = NULL;
  cr_assert_eq(mp_get_context(NULL, &ctx), 0);
  cr_expect_str_eq(mp_context_start_method(ctx), mp_get_start_method());
  cr_assert_eq(mp_get_context("spawn", &ctx), 0);
  cr_expect_str_eq(mp_context_start_method(ctx), "spawn");
  cr_expect_eq(mp_get_context("threads", &ctx), MP_EINVAL);
  cr_expect_eq(mp_get_context("spawn", NULL), MP_EINVAL);
  const char *all[8];
  int n = mp_get_all_start_methods(all, 8);
  cr_expect_str_eq(all[0], mp_get_start_method(), "default first");
#if MP_HAS_FORK
  cr_expect_eq(n, 3);
  cr_expect_eq(mp_get_context("fork", &ctx), 0);
  cr_expect_eq(mp_get_context("forkserver", &ctx), 0);
#  if defined(__APPLE__)
  cr_expect_str_eq(mp_get_start_method(), "spawn");
#  else
  cr_expect_str_eq(mp_get_start_method(), "fork");
#  endif
#else
  cr_expect_eq(n, 1);
  cr_expect_str_eq(mp_get_start_method(), "spawn");
  cr_expect_eq(mp_get_context("fork", &ctx), MP_ENOTSUP);
  cr_expect_eq(mp_get_context("forkserver", &ctx), MP_ENOTSUP);
  cr_expect_eq(mp_set_start_method("fork", 1), MP_ENOTSUP);
#endif
}

Test(start, set_start_method_once) {
  cr_assert_eq(mp_set_start_method("spawn", 0), 0);
  cr_expect_str_eq(mp_get_start_method(), "spawn");
  cr_expect_eq(mp_set_start_method("spawn", 0), MP_ESTATE, "already set");
  cr_expect_eq(mp_set_start_method("bogus", 1), MP_EINVAL);
  cr_expect_eq(mp_set_start_method(NULL, 0), MP_EINVAL);
  cr_expect_eq(mp_set_start_method(NULL, 1), 0, "reset to the default");
  cr_expect_eq(mp_set_start_method("spawn", 0), 0);
  /* The default reaches new processes. */
  mp_process *p;
  cr_assert_eq(mp_process_new(&p, noop, NULL), 0);
  cr_assert_eq(mp_process_start(p), 0);
  cr_expect_eq(ts_join(p), 0);
  mp_process_free(p);
  cr_expect_eq(mp_set_executable(NULL), MP_EINVAL);
}

static int report_argv(const mp_args *a) {
  (void)a;
  char text[512] = "";
  for (int i = 0; i < ts_argc; i++) {
    strcat(text, i ? "|" : "");
    strcat(text, ts_argv[i]);
  }
  return ts_report("%d:%s", ts_argc, text);
}

/* A spawned child gets the argv the guard recorded, exactly (on Windows
 * through a command line quoted for the C runtime to split back). */
Test(start, argv_reaches_spawned_children, .timeout = TS_TIMEOUT) {
  static char *argv[] = {"prog name", "a b",  "c\"d", "e\\", "",
                         "f\\\\\"g", "\t", "x", NULL};
  mp_main_guard(8, argv);
  mp_process *p = ts_start("spawn", report_argv, NULL);
  cr_assert_eq(ts_join(p), TS_REPORT, "%s", mp_process_error(p));
  cr_expect_str_eq(mp_process_error(p),
                   "8:prog name|a b|c\"d|e\\||f\\\\\"g|\t|x");
  mp_process_free(p);
  mp_main_guard(0, NULL);
}

/* Starting a spawned child with a large argument does not wait for the
 * child to read it: here the child is held before its guard until after
 * mp_process_start has returned (a start that waited would deadlock). */
Test(spawn, start_does_not_wait_for_the_child, .timeout = TS_TIMEOUT) {
  mp_args *a = ts_big_args();
  ts_pipe gate;
  ts_pipe_open(&gate);
  char spec[64], env[80];
  ts_pipe_spec(&gate, spec, sizeof spec);
  snprintf(env, sizeof env, "wait:%s", spec);
  ts_setenv("MPROC_TEST_PREGUARD", env);
  mp_process *p = ts_start("spawn", ts_check_big, a);
  ts_unsetenv("MPROC_TEST_PREGUARD");
  mp_args_free(a);
  cr_expect_eq(mp_process_is_alive(p), 1, "held before its guard");
  ts_pipe_send(&gate, 1);
  cr_expect_eq(ts_join(p), 0, "and then read all 8 MiB intact");
  mp_process_free(p);
  ts_pipe_close(&gate);
}

/* A spawned child re-runs the program up to the guard. */
Test(start, spawn_reruns_code_before_the_guard, .timeout = TS_TIMEOUT) {
  char path[512], text[256], env[600];
  ts_temp_path(path, sizeof path, "preguard");
  snprintf(env, sizeof env, "mark:%s", path);
  ts_setenv("MPROC_TEST_PREGUARD", env);
  mp_process *p = ts_start("spawn", noop, NULL);
  cr_expect_eq(ts_join(p), 0);
  cr_expect_eq(ts_read_file(path, text, sizeof text), 10);
  cr_expect_str_eq(text, "pre-guard\n", "ran once, in the child");
  mp_process_free(p);
#if MP_HAS_FORK
  p = ts_start("fork", noop, NULL); /* a fork re-runs nothing */
  cr_expect_eq(ts_join(p), 0);
  cr_expect_eq(ts_read_file(path, text, sizeof text), 10);
  mp_process_free(p);
#endif
  ts_unsetenv("MPROC_TEST_PREGUARD");
  remove(path);
}

/* Starting a process before the guard in a spawned child is refused with
 * MP_EBOOTSTRAP (the child exits 42 when it was): no endless chain. */
Test(start, start_before_guard_is_refused, .timeout = TS_TIMEOUT) {
  ts_setenv("MPROC_TEST_PREGUARD", "start");
  mp_process *p = ts_start("spawn", noop, NULL);
  int rc = mp_process_join(p, 30);
  ts_unsetenv("MPROC_TEST_PREGUARD");
  cr_expect_eq(rc, MP_EBOOTSTRAP, "the child never reached the guard");
  int code;
  cr_assert_eq(mp_process_exitcode(p, &code), 0);
  cr_expect_eq(code, 42, "the child's start failed with MP_EBOOTSTRAP");
  mp_process_free(p);
}

static int block(const mp_args *a) {
  (void)a;
  ts_block_forever();
  return 0;
}

/* Killed by its parent before it could reach the guard: that is a kill,
 * not a bootstrap failure. */
Test(start, killed_before_the_guard, .timeout = TS_TIMEOUT) {
  for (int hard = 0; hard < 2; hard++) {
    mp_process *p = ts_start("spawn", block, NULL);
    cr_assert_eq(hard ? mp_process_kill(p) : mp_process_terminate(p), 0);
    cr_expect_eq(mp_process_join(p, 30), 0, "%s", mp_last_error_message());
    int code;
    cr_assert_eq(mp_process_exitcode(p, &code), 0);
    cr_expect_eq(code, hard ? -9 : -15);
    cr_expect(strstr(mp_process_error(p), "killed by signal") != NULL, "%s",
              mp_process_error(p));
    mp_process_free(p);
  }
}

/* A spawned child that exits without reaching the guard is reported. */
Test(start, child_that_skips_the_guard, .timeout = TS_TIMEOUT) {
  ts_setenv("MPROC_TEST_PREGUARD", "skip");
  mp_process *p = ts_start("spawn", noop, NULL);
  int rc = mp_process_join(p, 30);
  ts_unsetenv("MPROC_TEST_PREGUARD");
  cr_expect_eq(rc, MP_EBOOTSTRAP);
  cr_expect(strstr(mp_last_error_message(), "MP_MAIN_GUARD") != NULL, "%s",
            mp_last_error_message());
  int code;
  cr_assert_eq(mp_process_exitcode(p, &code), 0);
  cr_expect_eq(code, 5);
  cr_expect(strstr(mp_process_error(p), "MP_MAIN_GUARD") != NULL);
  cr_expect_eq(mp_process_join(p, 0), MP_EBOOTSTRAP, "stays reported");
  mp_process_free(p);
}

#if MP_HAS_FORKSERVER
/* A fork server that never reaches the guard (it exits, or its code above
 * the guard tries to start a process) makes start fail clearly. */
Test(forkserver, server_that_skips_the_guard, .timeout = TS_TIMEOUT) {
  const char *modes[] = {"skip", "start"};
  for (int i = 0; i < 2; i++) {
    ts_setenv("MPROC_TEST_PREGUARD", modes[i]);
    mp_context *ctx;
    mp_process *p;
    cr_assert_eq(mp_get_context("forkserver", &ctx), 0);
    cr_assert_eq(mp_process_new(&p, noop, NULL), 0);
    mp_process_set_context(p, ctx);
    int rc = mp_process_start(p);
    ts_unsetenv("MPROC_TEST_PREGUARD");
    cr_expect_eq(rc, MP_EBOOTSTRAP, "%s: %s", modes[i],
                 mp_last_error_message());
    cr_expect(strstr(mp_last_error_message(), "MP_MAIN_GUARD") != NULL);
    cr_expect(strstr(mp_last_error_message(), i ? "code 42" : "code 5") !=
                  NULL,
              "%s", mp_last_error_message());
    mp_process_free(p);
  }
  /* With the environment clean again, a new server starts and serves. */
  mp_process *p = ts_start("forkserver", noop, NULL);
  cr_expect_eq(ts_join(p), 0);
  mp_process_free(p);
}
#endif

#if MP_HAS_FORK
/* stdio is flushed before fork, so nothing buffered is written twice. */
Test(fork, buffered_output_is_not_duplicated, .timeout = TS_TIMEOUT) {
  char path[512], text[256];
  ts_temp_path(path, sizeof path, "flush");
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  setvbuf(f, NULL, _IOFBF, 4096);
  fputs("once\n", f); /* still in the buffer */
  mp_process *p = ts_start("fork", noop, NULL);
  cr_expect_eq(ts_join(p), 0);
  fclose(f);
  cr_expect_eq(ts_read_file(path, text, sizeof text), 5);
  cr_expect_str_eq(text, "once\n");
  mp_process_free(p);
  remove(path);
}
#endif
