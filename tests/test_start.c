/*
 * test_start.c - start methods and contexts, and the main guard: what a
 * spawned child does before the guard, and the errors that stop a program
 * from spawning itself without end.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE /* the forged-bootstrap tests: fork, exec, prctl */
#endif
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

/* ---- a forged bootstrap is refused (issue 15) ------------------------ */
#if defined(__linux__)
#  include <fcntl.h>
#  include <sched.h>
#  include <sys/prctl.h>
#  include <sys/socket.h>
#  include <sys/stat.h>
#  include <sys/wait.h>
#  include <unistd.h>

/* Run `exe` with MPROC_SPAWN set to `env` (fds stay inherited); its
 * stderr goes into err.  Returns the exit status (-signal if killed). */
static int run_with_spawn_env(const char *exe, const char *env, char *err,
                              size_t cap) {
  int ep[2];
  cr_assert_eq(pipe(ep), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(ep[1], 2);
    setenv("MPROC_SPAWN", env, 1);
    execl(exe, exe, (char *)NULL);
    _exit(127);
  }
  close(ep[1]);
  size_t got = 0;
  ssize_t r;
  while (got + 1 < cap && (r = read(ep[0], err + got, cap - 1 - got)) > 0)
    got += (size_t)r;
  err[got] = '\0';
  close(ep[0]);
  int st = 0;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

static void self_exe(char *buf, size_t cap) {
  ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
  cr_assert_gt(n, 0);
  buf[n] = '\0';
}

/* A bootstrap descriptor that is a plain file, as an attacker who sets
 * the environment could leave: refused before a byte of it is read. */
Test(start, forged_bootstrap_file_is_refused, .timeout = TS_TIMEOUT) {
  char exe[4096], path[256], err[4096], env[128];
  self_exe(exe, sizeof exe);
  ts_temp_path(path, sizeof path, "forged-boot");
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, "\x01\x00\x00\x00garbage", 11), 11);
  lseek(fd, 0, SEEK_SET);
  snprintf(env, sizeof env, "%d:2:%ld:0", fd, (long)getpid());
  int code = run_with_spawn_env(exe, env, err, sizeof err);
  close(fd);
  remove(path);
  cr_expect_eq(code, 1, "exit %d: %s", code, err);
  cr_expect(strstr(err, "not a socket") != NULL, "%s", err);
}

/* A socket made by another process than the one that started us (here
 * the process that made it has ended, and we were handed to a
 * subreaper): refused. */
Test(start, forged_bootstrap_socket_is_refused, .timeout = TS_TIMEOUT) {
  char exe[4096];
  self_exe(exe, sizeof exe);
  cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int ep[2];
  cr_assert_eq(pipe(ep), 0);
  pid_t m = fork();
  cr_assert_geq(m, 0);
  if (m == 0) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
      _exit(2);
    pid_t me = getpid();
    if (fork() == 0) {
      while (getppid() == me) /* until our maker has ended */
        sched_yield();
      char env[128];
      snprintf(env, sizeof env, "%d:2:%ld:0", sv[1], (long)getppid());
      dup2(ep[1], 2);
      setenv("MPROC_SPAWN", env, 1);
      execl(exe, exe, (char *)NULL);
      _exit(127);
    }
    _exit(0);
  }
  close(ep[1]);
  int st = 0;
  cr_assert_eq(waitpid(m, &st, 0), m);
  char err[4096];
  size_t got = 0;
  ssize_t r;
  while (got + 1 < sizeof err &&
         (r = read(ep[0], err + got, sizeof err - 1 - got)) > 0)
    got += (size_t)r;
  err[got] = '\0';
  close(ep[0]);
  /* The grandchild, now ours. */
  pid_t c = waitpid(-1, &st, 0);
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  cr_assert_gt(c, 0);
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d: %s", st, err);
  cr_expect(strstr(err, "not our parent's") != NULL, "%s", err);
}

/* In a set-uid program the environment is the caller's: no bootstrap is
 * taken from it at all, even over a real socket from the parent. */
Test(start, bootstrap_refused_in_setuid_program, .timeout = TS_TIMEOUT) {
  if (geteuid() != 0)
    cr_skip_test("needs root to make a set-uid copy of this program");
  char exe[4096], copy[256], err[4096], env[128];
  self_exe(exe, sizeof exe);
  ts_temp_path(copy, sizeof copy, "setuid");
  int in = open(exe, O_RDONLY), out = open(copy, O_WRONLY | O_CREAT, 0700);
  cr_assert(in >= 0 && out >= 0);
  char buf[65536];
  ssize_t n;
  while ((n = read(in, buf, sizeof buf)) > 0)
    cr_assert_eq(write(out, buf, (size_t)n), n);
  close(in);
  close(out);
  cr_assert_eq(chown(copy, 65534, 65534), 0);
  cr_assert_eq(chmod(copy, 06755), 0);
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  snprintf(env, sizeof env, "%d:2:%ld:0", sv[1], (long)getpid());
  int code = run_with_spawn_env(copy, env, err, sizeof err);
  close(sv[0]);
  close(sv[1]);
  remove(copy);
  cr_expect_eq(code, 1, "exit %d: %s", code, err);
  cr_expect(strstr(err, "set-uid") != NULL, "%s", err);
}
#endif
