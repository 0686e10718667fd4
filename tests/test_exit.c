/*
 * test_exit.c - exit behaviour: a process that ends terminates its
 * daemonic children and joins the others; daemonic children die when
 * their parent is killed; a child waiting on mp_parent_process() sees it
 * end.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "methods.h"
#include "mproc.h"
#include "support.h"

TS_SUITE(finalize);

static int block(const mp_args *a) {
  (void)a;
  ts_block_forever();
  return 0;
}

static int write_marker(const mp_args *a) {
  ts_append_file(mp_args_str(a, 0), "joined\n");
  return 0;
}

static mp_process *start_with(const char *method, mp_target_fn fn,
                              mp_args *args, int daemon) {
  mp_context *ctx;
  mp_process *p;
  if (mp_get_context(method, &ctx) != 0 || mp_process_new(&p, fn, args) != 0)
    return NULL;
  mp_process_set_context(p, ctx);
  mp_process_set_daemon(p, daemon);
  if (mp_process_start(p) != 0)
    return NULL;
  return p;
}

/* Starts a daemon that blocks and a non-daemon that writes a marker file,
 * then returns at once: its exit work must terminate the daemon (so the
 * process ends) and join the other (so the marker is there). */
static int leave_children(const mp_args *a) {
  const char *method = mp_args_str(a, 0);
  mp_args *m;
  mp_args_pack(&m, "s", mp_args_str(a, 1));
  mp_process *d = start_with(method, block, NULL, 1);
  mp_process *w = start_with(method, write_marker, m, 0);
  mp_args_free(m);
  if (d == NULL || w == NULL)
    return 60;
  return ts_report("%lld", (long long)mp_process_pid(d));
}

static void check_exit_cleans_up(const char *method) {
  char path[512], text[64];
  ts_temp_path(path, sizeof path, "marker");
  mp_args *a;
  mp_args_pack(&a, "ss", method, path);
  mp_process *p = ts_start(method, leave_children, a);
  mp_args_free(a);
  cr_assert_eq(ts_join(p), TS_REPORT, "%s", mp_process_error(p));
  long long daemon_pid = 0;
  cr_assert_eq(sscanf(mp_process_error(p), "%lld", &daemon_pid), 1);
  cr_expect(ts_pid_ended_or_kill(daemon_pid, 10.0), "daemon was terminated");
  cr_expect_eq(ts_read_file(path, text, sizeof text), 7,
               "the non-daemonic child was joined before the exit");
  mp_process_free(p);
  remove(path);
}
FOR_EACH_METHOD(check_exit_cleans_up)

/* Starts a daemonic child, reports its pid through the pipe, and blocks
 * until the test kills it. */
static int daemon_parent(const mp_args *a) {
  mp_process *d = start_with(mp_args_str(a, 0), block, NULL, 1);
  if (d == NULL)
    return 70;
  ts_pipe_put(a, 1, mp_process_pid(d));
  ts_block_forever();
  return 0;
}

/* Start fn(method, pipe) with `method`; the child reports via the pipe. */
static mp_process *start_reporting(const char *method, mp_target_fn fn,
                                   ts_pipe *pipe) {
  ts_pipe_open(pipe);
  mp_args *a;
  mp_args_pack(&a, "s", method);
  ts_pipe_add_args(pipe, a);
  mp_process *p = ts_start(method, fn, a);
  mp_args_free(a);
  return p;
}

static void check_daemon_dies_with_parent(const char *method) {
  ts_pipe pipe;
  mp_process *p = start_reporting(method, daemon_parent, &pipe);
  int64_t daemon_pid = 0;
  cr_assert_eq(ts_pipe_get(&pipe, 30.0, &daemon_pid), 0,
               "the parent reported its daemon");
  cr_assert_gt(daemon_pid, 0);
  cr_expect_eq(ts_wait_pid_gone(daemon_pid, 0.2), 0, "daemon is running");
  cr_assert_eq(mp_process_kill(p), 0); /* SIGKILL: no exit work at all */
  cr_expect_eq(ts_join(p), -9);
  cr_expect(ts_pid_ended_or_kill(daemon_pid, 10.0),
            "the daemon died with its killed parent");
  mp_process_free(p);
  ts_pipe_close(&pipe);
}
FOR_EACH_METHOD(check_daemon_dies_with_parent)

/* The grandchild waits for its parent (mp_parent_process) to end, then
 * reports through the pipe. */
static int wait_for_parent(const mp_args *a) {
  mp_process *parent = mp_parent_process();
  if (parent == NULL || mp_process_is_alive(parent) != 1 ||
      mp_process_join(parent, 0.05) != MP_ETIMEDOUT)
    return 80;
  ts_pipe_put(a, 0, 1); /* "waiting" */
  if (mp_process_join(parent, 60.0) != 0)
    return 81;
  ts_pipe_put(a, 0, mp_process_is_alive(parent) == 0 ? 2 : 3);
  return 0;
}

static int parent_of_waiter(const mp_args *a) {
  mp_args *b;
  mp_args_new(&b);
  mp_args_add_int(b, mp_args_int(a, 1));
  mp_args_add_int(b, mp_args_int(a, 2));
  mp_process *c = start_with(mp_args_str(a, 0), wait_for_parent, b, 0);
  mp_args_free(b);
  if (c == NULL)
    return 90;
  ts_block_forever();
  return 0;
}

static void check_child_sees_parent_die(const char *method) {
  ts_pipe pipe;
  mp_process *p = start_reporting(method, parent_of_waiter, &pipe);
  int64_t v = 0;
  cr_assert_eq(ts_pipe_get(&pipe, 30.0, &v), 0);
  cr_assert_eq(v, 1, "the grandchild saw its parent alive");
  mp_process_kill(p);
  cr_expect_eq(ts_join(p), -9);
  cr_assert_eq(ts_pipe_get(&pipe, 30.0, &v), 0,
               "the grandchild's join on its parent returned");
  cr_expect_eq(v, 2, "and is_alive says the parent is gone");
  mp_process_free(p);
  ts_pipe_close(&pipe);
}
FOR_EACH_METHOD(check_child_sees_parent_die)

/* ---- finalizers, after-fork callbacks, a log handler (issue 16) -------- */

static char g_path[512];

static void append_letter(void *arg) { ts_append_file(g_path, arg); }

/* In the child: one finalizer called now, one cancelled, one never run
 * (no exit priority), and four that run at exit by priority. */
static int register_finalizers(const mp_args *a) {
  snprintf(g_path, sizeof g_path, "%s", mp_args_str(a, 0));
  mp_finalizer *now, *dropped, *never;
  if (mp_finalize(NULL, append_letter, "A", 5) != 0 ||
      mp_finalize(NULL, append_letter, "B", 20) != 0 ||
      mp_finalize(&now, append_letter, "C", 1) != 0 ||
      mp_finalize(NULL, append_letter, "D", 5) != 0 ||
      mp_finalize(NULL, append_letter, "E", -3) != 0 ||
      mp_finalize(&dropped, append_letter, "X", 50) != 0 ||
      mp_finalize(&never, append_letter, "Y", MP_FINALIZE_NO_EXIT) != 0)
    return 80;
  if (mp_finalizer_call(now) != 0 || mp_finalizer_cancel(dropped) != 0)
    return 81;
  return 0;
}

static void check_finalizers_and_after_fork(const char *method) {
  ts_temp_path(g_path, sizeof g_path, "finalizers");
  /* The parent's own: never the child's (Python clears them there). */
  mp_finalizer *mine;
  cr_assert_eq(mp_finalize(&mine, append_letter, "P", 100), 0);
  /* Inherited by a forked child only: the fork server and a spawned
   * child re-ran the program up to its guard, and this was registered
   * after it. */
  cr_assert_eq(mp_register_after_fork(append_letter, "F"), 0);
  mp_args *a;
  mp_args_pack(&a, "s", g_path);
  mp_process *p = ts_start(method, register_finalizers, a);
  mp_args_free(a);
  cr_assert_eq(ts_join(p), 0, "%s", mp_process_error(p));
  char text[64];
  ts_read_file(g_path, text, sizeof text);
  cr_expect_str_eq(text, strcmp(method, "fork") == 0 ? "FCBDAE" : "CBDAE");
  mp_process_free(p);
  cr_assert_eq(mp_finalizer_cancel(mine), 0);
  remove(g_path);
}
FOR_EACH_METHOD(check_finalizers_and_after_fork)

Test(finalize, errors_and_exit_order_here, .timeout = TS_TIMEOUT) {
  cr_expect_eq(mp_finalize(NULL, NULL, NULL, 0), MP_EINVAL);
  cr_expect_eq(mp_finalize(NULL, append_letter, "Z", MP_FINALIZE_NO_EXIT),
               MP_EINVAL, "a finalizer nobody could ever run");
  cr_expect_eq(mp_finalizer_call(NULL), MP_EINVAL);
  cr_expect_eq(mp_finalizer_cancel(NULL), MP_EINVAL);
  cr_expect_eq(mp_register_after_fork(NULL, NULL), MP_EINVAL);
  ts_temp_path(g_path, sizeof g_path, "finalize-here");
  mp_finalizer *f;
  cr_assert_eq(mp_finalize(&f, append_letter, "1", MP_FINALIZE_NO_EXIT), 0);
  cr_assert_eq(mp_finalizer_call(f), 0);
  char text[16];
  cr_expect_eq(ts_read_file(g_path, text, sizeof text), 1);
  remove(g_path);
}

/* A log handler gets mproc's messages and the program's own (mp_log) at
 * its level or above; a forked child keeps it, a spawned one logs to
 * stderr at the inherited level instead. */
static void to_file(int level, const char *who, const char *msg, void *arg) {
  char line[256];
  snprintf(line, sizeof line, "%d|%s|%s|%s\n", level, who, msg,
           (const char *)arg);
  ts_append_file(g_path, line);
}

static int log_something(const mp_args *a) {
  (void)a;
  mp_log(MP_LOG_WARNING, "from the child %d", 7);
  return mp_log_level() == MP_LOG_INFO ? 0 : 85;
}

static void check_log_handler(const char *method) {
  ts_temp_path(g_path, sizeof g_path, "loghandler");
  mp_log_set_handler(to_file, "ctx", MP_LOG_INFO);
  mp_log(MP_LOG_INFO, "hello %s", "there");
  mp_log(MP_LOG_DEBUG, "not at this level");
  mp_process *p = ts_start(method, log_something, NULL);
  cr_assert_eq(ts_join(p), 0, "%s", mp_process_error(p));
  char text[1024], expect[1024];
  ts_read_file(g_path, text, sizeof text);
  int n = snprintf(expect, sizeof expect, "%d|MainProcess|hello there|ctx\n",
                   MP_LOG_INFO);
  if (strcmp(method, "fork") == 0)
    snprintf(expect + n, sizeof expect - (size_t)n,
             "%d|%s|from the child 7|ctx\n", MP_LOG_WARNING,
             mp_process_name(p));
  mp_log_to_stderr(MP_LOG_OFF);
  cr_expect(strstr(text, expect) == text, "%s", text);
  cr_expect((strstr(text, "from the child") != NULL) ==
                (strcmp(method, "fork") == 0),
            "only a forked child has the handler: %s", text);
  cr_expect(strstr(text, "not at this level") == NULL);
  mp_process_free(p);
  remove(g_path);
}
FOR_EACH_METHOD(check_log_handler)
