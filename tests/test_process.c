/*
 * test_process.c - mp_process under each start method: arguments, exit
 * codes, signals, join timeouts, names, the subclass form, sentinels,
 * active children, authkeys, error messages, targets in a shared library.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods.h"
#include "mproc.h"
#include "support.h"
#include "testlib.h"

TS_SUITE(process_api);

/* ---- targets ---------------------------------------------------------- */

static int check_args(const mp_args *a) {
  const char *s;
  const void *b;
  size_t n;
  int i;
  double d;
  int64_t big;
  if (mp_args_unpack(a, "iIdsy", &i, &big, &d, &s, &b, &n) != 0)
    return 10;
  if (i != -7 || big != INT64_C(1) << 40 || d != 2.5)
    return 11;
  if (strcmp(s, "黑哥") != 0)
    return 12;
  if (n != 4 || memcmp(b, "\0\1\2\3", 4) != 0)
    return 13;
  return 0;
}

static int return_arg(const mp_args *a) { return (int)mp_args_int(a, 0); }

static int call_exit(const mp_args *a) {
  exit((int)mp_args_int(a, 0));
}

TS_NO_UBSAN static int crash(const mp_args *a) {
  (void)a;
  volatile int *p = NULL;
  *p = 1;
  return 0;
}

static int call_abort(const mp_args *a) {
  (void)a;
  abort();
}

static int block(const mp_args *a) {
  (void)a;
  ts_block_forever();
  return 0;
}

static int report_identity(const mp_args *a) {
  (void)a;
  mp_process *me = mp_current_process(), *parent = mp_parent_process();
  if (parent == NULL)
    return 20;
  return ts_report("%lld|%lld|%s|%s|%d|%d", (long long)mp_getpid(),
                   (long long)mp_process_pid(parent), mp_process_name(me),
                   mp_process_name(parent), mp_process_is_alive(parent),
                   mp_process_daemon(me));
}

static int start_grandchild(const mp_args *a) {
  mp_context *ctx;
  mp_process *p;
  if (mp_get_context(mp_args_str(a, 0), &ctx) != 0 ||
      mp_process_new(&p, report_identity, NULL) != 0 ||
      mp_process_set_context(p, ctx) != 0 || mp_process_start(p) != 0)
    return 30;
  if (mp_process_join(p, 30) != 0)
    return 31;
  int code;
  mp_process_exitcode(p, &code);
  if (code != TS_REPORT)
    return 32;
  char text[512];
  snprintf(text, sizeof text, "%s|%s", mp_process_name(p),
           mp_process_error(p));
  mp_process_free(p);
  return ts_report("%s", text);
}

static int report_authkey(const mp_args *a) {
  (void)a;
  unsigned char key[256];
  size_t n = mp_process_authkey(mp_current_process(), key, sizeof key);
  char hex[513];
  for (size_t i = 0; i < n; i++)
    snprintf(hex + 2 * i, 3, "%02x", key[i]);
  hex[2 * n] = '\0';
  return ts_report("%s", hex);
}

static int fail_with_message(const mp_args *a) {
  (void)a;
  return mp_set_error(4, "boom %d", 7);
}

static int try_start_child(const mp_args *a) {
  (void)a;
  mp_process *p;
  if (mp_process_new(&p, return_arg, NULL) != 0)
    return 40;
  int rc = mp_process_start(p);
  char text[512];
  snprintf(text, sizeof text, "%s|%s", mp_err_name(rc),
           mp_last_error_message());
  mp_process_free(p);
  return ts_report("%s", text);
}

/* ---- checks per start method --------------------------------------- */

static void check_arguments(const char *method) {
  mp_args *a;
  cr_assert_eq(mp_args_pack(&a, "iIdsy", -7, INT64_C(1) << 40, 2.5, "黑哥",
                            "\0\1\2\3", (size_t)4),
               0);
  mp_process *p = ts_start(method, check_args, a);
  mp_args_free(a);
  cr_expect_eq(ts_join(p), 0);
  cr_assert_eq(mp_process_free(p), 0);
}
FOR_EACH_METHOD(check_arguments)

static void check_return_codes(const char *method) {
  int codes[] = {0, 1, 7, 255};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    mp_args *a;
    mp_args_pack(&a, "i", codes[i]);
    mp_process *p = ts_start(method, return_arg, a);
    mp_args_free(a);
    cr_expect_eq(ts_join(p), codes[i], "return %d", codes[i]);
    mp_process_free(p);
  }
}
FOR_EACH_METHOD(check_return_codes)

static void check_exit_call(const char *method) {
  mp_args *a;
  mp_args_pack(&a, "i", 3);
  mp_process *p = ts_start(method, call_exit, a);
  mp_args_free(a);
  cr_expect_eq(ts_join(p), 3);
  cr_expect_null(mp_process_error(p), "no message for a plain exit");
  mp_process_free(p);
}
FOR_EACH_METHOD(check_exit_call)

static void check_crash(const char *method) {
  mp_process *p = ts_start(method, crash, NULL);
  cr_expect_eq(ts_join(p), -11, "a segfault is -SIGSEGV");
  cr_assert_not_null(mp_process_error(p));
  cr_expect(strstr(mp_process_error(p), "SIGSEGV") != NULL, "%s",
            mp_process_error(p));
  mp_process_free(p);
}
FOR_EACH_METHOD(check_crash)

static void check_abort(const char *method) {
  mp_process *p = ts_start(method, call_abort, NULL);
#if defined(_WIN32)
  cr_expect_eq(ts_join(p), 3, "abort() exits with 3 on Windows");
#else
  cr_expect_eq(ts_join(p), -SIGABRT);
#endif
  mp_process_free(p);
}
FOR_EACH_METHOD(check_abort)

static void check_terminate(const char *method) {
  mp_process *p = ts_start(method, block, NULL);
  cr_expect_eq(mp_process_is_alive(p), 1);
  int code;
  cr_expect_eq(mp_process_exitcode(p, &code), MP_ESTATE, "no exitcode yet");
  cr_assert_eq(mp_process_terminate(p), 0);
  cr_expect_eq(ts_join(p), -15);
  cr_expect_eq(mp_process_is_alive(p), 0);
  cr_expect_eq(mp_process_terminate(p), 0, "terminating an ended process");
  mp_process_free(p);

  p = ts_start(method, block, NULL);
  cr_assert_eq(mp_process_kill(p), 0);
  cr_expect_eq(ts_join(p), -9);
  mp_process_free(p);
}
FOR_EACH_METHOD(check_terminate)

static void check_join_timeout(const char *method) {
  mp_process *p = ts_start(method, block, NULL);
  cr_expect_eq(mp_process_join(p, 0.0), MP_ETIMEDOUT);
  cr_expect_eq(mp_process_join(p, 0.2), MP_ETIMEDOUT);
  cr_expect_eq(mp_process_free(p), MP_ESTATE, "cannot free a running one");
  mp_process_kill(p);
  cr_expect_eq(mp_process_join(p, MP_FOREVER), 0);
  cr_expect_eq(mp_process_join(p, 0.0), 0, "joining twice is fine");
  cr_expect_eq(mp_process_free(p), 0);
}
FOR_EACH_METHOD(check_join_timeout)

/* A child knows how it was started (its context's method, not the
 * parent's default, which stays the platform's here) and has the
 * parent's log level (mproc.h: "The level is inherited by children"). */
static int report_method_and_level(const mp_args *a) {
  (void)a;
  return ts_report("%s|%d", mp_get_start_method(), mp_log_level());
}

static void check_own_method_and_log_level(const char *method) {
  int old = mp_log_level();
  mp_log_to_stderr(MP_LOG_ERROR);
  mp_process *p = ts_start(method, report_method_and_level, NULL);
  mp_log_to_stderr(old);
  cr_assert_eq(ts_join(p), TS_REPORT, "%s", mp_process_error(p));
  char expect[64];
  snprintf(expect, sizeof expect, "%s|%d", method, MP_LOG_ERROR);
  cr_expect_str_eq(mp_process_error(p), expect);
  mp_process_free(p);
}
FOR_EACH_METHOD(check_own_method_and_log_level)

static void check_identity(const char *method) {
  mp_process *p = ts_start(method, report_identity, NULL);
  cr_assert_eq(ts_join(p), TS_REPORT);
  char expect[256];
  snprintf(expect, sizeof expect, "%lld|%lld|%s|MainProcess|1|0",
           (long long)mp_process_pid(p), (long long)mp_getpid(),
           mp_process_name(p));
  cr_expect_str_eq(mp_process_error(p), expect);
  cr_expect_neq(mp_process_pid(p), mp_getpid());
  cr_expect(strncmp(mp_process_name(p), "Process-", 8) == 0);
  mp_process_free(p);
}
FOR_EACH_METHOD(check_identity)

static void check_custom_name(const char *method) {
  mp_context *ctx;
  mp_process *p;
  cr_assert_eq(mp_get_context(method, &ctx), 0);
  cr_assert_eq(mp_process_new(&p, report_identity, NULL), 0);
  cr_assert_eq(mp_process_set_name(p, "worker-α"), 0);
  mp_process_set_context(p, ctx);
  cr_assert_eq(mp_process_start(p), 0);
  cr_assert_eq(ts_join(p), TS_REPORT);
  cr_expect(strstr(mp_process_error(p), "|worker-α|MainProcess|") != NULL,
            "%s", mp_process_error(p));
  cr_expect_eq(mp_process_set_name(p, "renamed"), 0, "rename any time");
  cr_expect_str_eq(mp_process_name(p), "renamed");
  mp_process_free(p);
}
FOR_EACH_METHOD(check_custom_name)

static void check_grandchild(const char *method) {
  mp_args *a;
  mp_args_pack(&a, "s", method);
  mp_process *p = ts_start(method, start_grandchild, a);
  mp_args_free(a);
  cr_assert_eq(ts_join(p), TS_REPORT, "%s", mp_process_error(p));
  /* "Process-N:1|<pid>|<ppid>|Process-N:1|Process-N|1|0" */
  char expect[128];
  snprintf(expect, sizeof expect, "%s:1|", mp_process_name(p));
  cr_expect(strncmp(mp_process_error(p), expect, strlen(expect)) == 0,
            "%s", mp_process_error(p));
  snprintf(expect, sizeof expect, "|%s:1|%s|1|0", mp_process_name(p),
           mp_process_name(p));
  cr_expect(strstr(mp_process_error(p), expect) != NULL, "%s",
            mp_process_error(p));
  mp_process_free(p);
}
FOR_EACH_METHOD(check_grandchild)

/* gh-108520: a child hands what it received (a queue, a connection and
 * a Value with its lock) to grandchildren, as its own args and as a copy
 * of them; each grandchild uses all three. */
static int use_handed(const mp_args *a) {
  mp_queue *q = mp_args_queue(a, 1);
  mp_conn *c = mp_args_conn(a, 2);
  mp_value *v = mp_args_value(a, 3);
  if (q == NULL || c == NULL || v == NULL)
    return 60;
  int64_t me = mp_getpid();
  if (mp_queue_put(q, &me, sizeof me, 10.0) != 0 ||
      mp_conn_send_bytes(c, &me, sizeof me) != 0)
    return 61;
  mp_lock *l = mp_value_get_lock(v);
  int64_t x = 0;
  if (mp_lock_acquire(l, 10.0) != 0 || mp_value_get_int(v, &x) != 0 ||
      mp_value_set_int(v, x + 1) != 0 || mp_lock_release(l) != 0)
    return 62;
  return 0;
}

static int hand_on(const mp_args *a) {
  mp_context *ctx;
  if (mp_get_context(mp_args_str(a, 0), &ctx) != 0)
    return 70;
  mp_args *copy = NULL;
  if (mp_args_copy(&copy, a) != 0)
    return 71;
  const mp_args *given[2] = {a, copy};
  mp_process *g[2] = {NULL, NULL};
  int code = 0;
  for (int k = 0; k < 2 && code == 0; k++) {
    if (mp_process_new(&g[k], use_handed, given[k]) != 0 ||
        mp_process_set_context(g[k], ctx) != 0)
      code = 72;
    else if (mp_process_start(g[k]) != 0)
      code = ts_report("start %d: %s", k, mp_last_error_message());
  }
  for (int k = 0; k < 2; k++) {
    int ec = -1;
    if (g[k] != NULL && code == 0 &&
        (mp_process_join(g[k], 30) != 0 ||
         mp_process_exitcode(g[k], &ec) != 0 || ec != 0))
      code = ts_report("grandchild %d: exit %d %s", k, ec,
                       mp_process_error(g[k]) ? mp_process_error(g[k]) : "");
    mp_process_free(g[k]);
  }
  mp_args_free(copy);
  return code;
}

static void check_hand_on_received(const char *method) {
  mp_queue *q;
  mp_conn *r, *w;
  mp_value *v;
  cr_assert_eq(mp_queue_new(&q, 0), 0);
  cr_assert_eq(mp_pipe(0, &r, &w), 0);
  cr_assert_eq(mp_value_new(&v, 'q', NULL), 0);
  mp_args *a;
  cr_assert_eq(mp_args_new(&a), 0);
  mp_args_add_str(a, method);
  cr_assert_eq(mp_args_add_queue(a, q), 0);
  cr_assert_eq(mp_args_add_conn(a, w), 0);
  cr_assert_eq(mp_args_add_value(a, v), 0);
  mp_process *p = ts_start(method, hand_on, a);
  mp_args_free(a);
  int64_t from_q[2], from_c[2];
  for (int k = 0; k < 2; k++) {
    void *m = NULL;
    size_t n = 0;
    cr_assert_eq(mp_queue_get(q, &m, &n, 30.0), 0, "%s",
                 mp_last_error_message());
    cr_assert_eq(n, sizeof(int64_t));
    memcpy(&from_q[k], m, n);
    mp_free(m);
    cr_assert_eq(mp_conn_poll(r, 30.0), 1);
    cr_assert_eq(mp_conn_recv_bytes(r, &m, &n), 0);
    cr_assert_eq(n, sizeof(int64_t));
    memcpy(&from_c[k], m, n);
    mp_free(m);
  }
  cr_assert_eq(ts_join(p), 0, "%s", mp_process_error(p));
  cr_expect_neq(from_q[0], from_q[1]);
  cr_expect(from_c[0] == from_q[0] || from_c[0] == from_q[1]);
  int64_t x = 0;
  cr_assert_eq(mp_value_get_int(v, &x), 0);
  cr_expect_eq(x, 2);
  mp_process_free(p);
  mp_value_free(v);
  mp_conn_free(r);
  mp_conn_free(w);
  mp_queue_free(q);
}
FOR_EACH_METHOD(check_hand_on_received)

/* A start whose objects cannot go with the child fails (and may be
 * tried again): never 0 for a child that will not run.  Under fork the
 * child has the parent's memory, closed connection included. */
static int conn_is_closed(const mp_args *a) {
  mp_conn *c = mp_args_conn(a, 0);
  return c == NULL ? 80 : mp_conn_send_bytes(c, "x", 1) == MP_ECLOSED ? 0 : 81;
}

static void check_closed_object_refused(const char *method) {
  mp_conn *r, *w;
  cr_assert_eq(mp_pipe(0, &r, &w), 0);
  mp_args *a;
  cr_assert_eq(mp_args_new(&a), 0);
  cr_assert_eq(mp_args_add_conn(a, w), 0);
  mp_context *ctx;
  mp_process *p;
  cr_assert_eq(mp_get_context(method, &ctx), 0);
  cr_assert_eq(mp_process_new(&p, conn_is_closed, a), 0);
  mp_args_free(a);
  mp_process_set_context(p, ctx);
  cr_assert_eq(mp_conn_close(w), 0);
  if (strcmp(method, "fork") == 0) {
    cr_assert_eq(mp_process_start(p), 0);
    cr_expect_eq(ts_join(p), 0);
  } else {
    cr_assert_eq(mp_process_start(p), MP_ECLOSED);
    cr_expect(strstr(mp_last_error_message(), "closed") != NULL, "%s",
              mp_last_error_message());
    cr_expect_eq(mp_process_pid(p), 0);
    cr_expect_eq(mp_process_is_alive(p), 0);
  }
  mp_process_free(p);
  mp_conn_free(r);
  mp_conn_free(w);
}
FOR_EACH_METHOD(check_closed_object_refused)

/* Python's TestCloseFds: a spawned child (and the fork server, for its
 * children) holds only what mproc gave it, not a descriptor the parent
 * left inheritable; a forked child has them all, as in Python.  The child
 * waits on an event while the parent closes its own write end: the read
 * end sees end-of-file only if no child holds a copy. */
static int wait_for_event(const mp_args *a) {
  return mp_event_wait(mp_args_event(a, 0), 30.0) == 0 ? 0 : 90;
}

static void check_parent_descriptors_stay(const char *method) {
  intptr_t rd, wr;
  ts_inheritable_pipe(&rd, &wr);
  mp_event *go;
  cr_assert_eq(mp_event_new(&go), 0);
  mp_args *a;
  cr_assert_eq(mp_args_new(&a), 0);
  cr_assert_eq(mp_args_add_event(a, go), 0);
  mp_process *p = ts_start(method, wait_for_event, a);
  mp_args_free(a);
  ts_close_raw(wr);
  int gone = ts_pipe_writers_gone(rd);
  cr_assert_eq(mp_event_set(go), 0);
  cr_assert_eq(ts_join(p), 0, "%s", mp_process_error(p));
  if (strcmp(method, "fork") == 0)
    cr_expect_eq(gone, 0, "a forked child has the parent's descriptors");
  else
    cr_expect_eq(gone, 1, "the %s child holds the parent's pipe", method);
  cr_expect_eq(ts_pipe_writers_gone(rd), 1);
  ts_close_raw(rd);
  mp_process_free(p);
  mp_event_free(go);
}
FOR_EACH_METHOD(check_parent_descriptors_stay)

/* One call starts a process with args from a format (objects included):
 * Python's Process(target=f, args=(num, arr, 3)).start(). */
static int add_to_shared(const mp_args *a) {
  mp_value *num;
  mp_array *arr;
  int k;
  if (mp_args_unpack(a, "VAi", &num, &arr, &k) != 0)
    return 70;
  int64_t x = 0;
  if (mp_value_get_int(num, &x) != 0 || mp_value_set_int(num, x + k) != 0 ||
      mp_array_set_int(arr, 1, k) != 0)
    return 71;
  return 0;
}

static void check_startf_and_repr(const char *method) {
  cr_assert_eq(mp_set_start_method(method, 1), 0);
  mp_value *num;
  mp_array *arr;
  cr_assert_eq(mp_value_new(&num, 'i', NULL), 0);
  cr_assert_eq(mp_array_new(&arr, 'i', 3, NULL), 0);
  mp_process *p = NULL;
  cr_assert_eq(mp_process_startf(&p, add_to_shared, "VAi", num, arr, 3), 0,
               "%s", mp_last_error_message());
  char text[256], expect[256];
  cr_assert_gt(mp_process_repr(p, text, sizeof text), 0);
  cr_expect(strstr(text, "<Process name='Process-") == text, "%s", text);
  cr_assert_eq(ts_join(p), 0, "%s", mp_process_error(p));
  snprintf(expect, sizeof expect,
           "<Process name='%s' pid=%lld parent=%lld stopped exitcode=0>",
           mp_process_name(p), (long long)mp_process_pid(p),
           (long long)mp_getpid());
  cr_assert_eq(mp_process_repr(p, text, sizeof text), (int)strlen(expect));
  cr_expect_str_eq(text, expect);
  int64_t x = 0;
  cr_assert_eq(mp_value_get_int(num, &x), 0);
  cr_expect_eq(x, 3);
  cr_assert_eq(mp_array_get_int(arr, 1, &x), 0);
  cr_expect_eq(x, 3);
  mp_process_free(p);
  /* A bad format or a NULL object starts nothing and leaves *out NULL. */
  p = (mp_process *)1;
  cr_expect_eq(mp_process_startf(&p, add_to_shared, "VA?", num, arr), MP_EINVAL);
  cr_expect_null(p);
  cr_expect_eq(mp_process_startf(&p, add_to_shared, "VAi", (mp_value *)NULL,
                                 arr, 3),
               MP_EINVAL);
  cr_expect_eq(mp_process_startf(&p, NULL, "i", 1), MP_EINVAL);
  cr_expect_eq(mp_process_startf(NULL, add_to_shared, "i", 1), MP_EINVAL);
  cr_expect_eq(mp_process_startf(&p, add_to_shared, NULL), MP_EINVAL);
  mp_value_free(num);
  mp_array_free(arr);
}
FOR_EACH_METHOD(check_startf_and_repr)

Test(process_api, repr_like_python, .timeout = TS_TIMEOUT) {
  char text[256], expect[256];
  mp_process *p;
  cr_assert_eq(mp_process_new(&p, block, NULL), 0);
  mp_process_set_daemon(p, 1);
  snprintf(expect, sizeof expect, "<Process name='%s' parent=%lld initial "
           "daemon>", mp_process_name(p), (long long)mp_getpid());
  mp_process_repr(p, text, sizeof text);
  cr_expect_str_eq(text, expect);
  cr_assert_eq(mp_process_start(p), 0);
  snprintf(expect, sizeof expect,
           "<Process name='%s' pid=%lld parent=%lld started daemon>",
           mp_process_name(p), (long long)mp_process_pid(p),
           (long long)mp_getpid());
  mp_process_repr(p, text, sizeof text);
  cr_expect_str_eq(text, expect);
  cr_assert_eq(mp_process_terminate(p), 0);
  cr_assert_eq(mp_process_join(p, 30), 0);
  snprintf(expect, sizeof expect,
           "<Process name='%s' pid=%lld parent=%lld stopped "
           "exitcode=-SIGTERM daemon>",
           mp_process_name(p), (long long)mp_process_pid(p),
           (long long)mp_getpid());
  mp_process_repr(p, text, sizeof text);
  cr_expect_str_eq(text, expect);
  mp_process_free(p);
  mp_process_repr(mp_current_process(), text, sizeof text);
  cr_expect_str_eq(text, "<_MainProcess name='MainProcess' parent=None "
                         "started>");
  cr_expect_eq(mp_process_repr(NULL, text, sizeof text), MP_EINVAL);
  cr_expect_eq(mp_process_repr(mp_current_process(), NULL, 4), MP_EINVAL);
  cr_expect_gt(mp_process_repr(mp_current_process(), NULL, 0), 0);
}

typedef struct counter_proc {
  mp_process *base;
  int count;
  char label[16];
} counter_proc;

static int counter_run(void *self) {
  counter_proc *c = self;
  if (c->base != mp_current_process())
    return 50;
  if (strcmp(c->label, "abc") != 0)
    return 51;
  return c->count;
}

static void check_subclass(const char *method) {
  counter_proc c;
  memset(&c, 0, sizeof c);
  c.count = 5;
  strcpy(c.label, "abc");
  cr_assert_eq(mp_process_new_subclass(&c, sizeof c, counter_run), 0);
  cr_assert_not_null(c.base);
  mp_context *ctx;
  mp_get_context(method, &ctx);
  mp_process_set_context(c.base, ctx);
  cr_assert_eq(mp_process_start(c.base), 0);
  cr_expect_eq(ts_join(c.base), 5);
  mp_process_free(c.base);
  /* run() in this process calls the same function with our struct. */
  c.base = mp_current_process();
  c.count = 6;
  cr_expect_eq(counter_run(&c), 6);
}
FOR_EACH_METHOD(check_subclass)

static void check_sentinels(const char *method) {
  mp_process *slow = ts_start(method, block, NULL);
  mp_process *quick = ts_start(method, return_arg, NULL);
  mp_handle h[2] = {mp_process_sentinel(slow), mp_process_sentinel(quick)};
  cr_assert_neq(h[0], MP_INVALID_HANDLE);
  int ready[2] = {-1, -1};
  cr_expect_eq(mp_wait(h, 2, 30.0, ready), 1);
  cr_expect_eq(ready[0], 0);
  cr_expect_eq(ready[1], 1);
  cr_expect_eq(mp_wait(h, 1, 0.1, NULL), MP_ETIMEDOUT);
  mp_process *alive[4];
  cr_expect_eq(mp_active_children(alive, 4), 1, "quick one was reaped");
  cr_expect_eq(alive[0], slow);
  mp_process_kill(slow);
  cr_expect_eq(mp_wait(h, 1, 30.0, NULL), 1);
  ts_join(slow);
  ts_join(quick);
  cr_expect_eq(mp_active_children(NULL, 0), 0);
  mp_process_free(slow);
  mp_process_free(quick);
}
FOR_EACH_METHOD(check_sentinels)

static void check_many_sentinels(const char *method) {
  enum { N = 70 }; /* more than Windows' 64-handle wait limit */
  mp_process *p[N];
  mp_handle h[N];
  int ready[N];
  for (int i = 0; i < N; i++) {
    p[i] = ts_start(method, i == N - 1 ? return_arg : block, NULL);
    h[i] = mp_process_sentinel(p[i]);
  }
  cr_expect_eq(mp_wait(h, N, 30.0, ready), 1);
  cr_expect_eq(ready[N - 1], 1, "the last one (past 64) ended");
  for (int i = 0; i < N; i++)
    mp_process_kill(p[i]);
  for (int i = 0; i < N; i++) {
    ts_join(p[i]);
    mp_process_free(p[i]);
  }
}
Test(spawn, check_many_sentinels, .timeout = 120) {
  check_many_sentinels("spawn");
}

static void check_authkey(const char *method) {
  unsigned char mine[256];
  size_t n = mp_process_authkey(mp_current_process(), mine, sizeof mine);
  cr_assert_eq(n, 32);
  char hex[65];
  for (size_t i = 0; i < n; i++)
    snprintf(hex + 2 * i, 3, "%02x", mine[i]);
  mp_process *p = ts_start(method, report_authkey, NULL);
  cr_assert_eq(ts_join(p), TS_REPORT);
  cr_expect_str_eq(mp_process_error(p), hex, "inherited");
  mp_process_free(p);

  mp_context *ctx;
  mp_get_context(method, &ctx);
  cr_assert_eq(mp_process_new(&p, report_authkey, NULL), 0);
  cr_assert_eq(mp_process_set_authkey(p, "secret", 6), 0);
  mp_process_set_context(p, ctx);
  cr_assert_eq(mp_process_start(p), 0);
  cr_assert_eq(ts_join(p), TS_REPORT);
  cr_expect_str_eq(mp_process_error(p), "736563726574");
  mp_process_free(p);
}
FOR_EACH_METHOD(check_authkey)

static void check_error_message(const char *method) {
  mp_process *p = ts_start(method, fail_with_message, NULL);
  cr_expect_eq(ts_join(p), 4);
  cr_expect_str_eq(mp_process_error(p), "boom 7");
  mp_process_free(p);
}
FOR_EACH_METHOD(check_error_message)

static void check_shared_library_target(const char *method) {
  mp_args *a;
  mp_args_pack(&a, "i", 2);
  mp_process *p = ts_start(method, testlib_answer, a);
  mp_args_free(a);
  cr_expect_eq(ts_join(p), 42, "%s", mp_process_error(p));
  mp_process_free(p);
}
FOR_EACH_METHOD(check_shared_library_target)

static void check_daemonic_no_children(const char *method) {
  mp_context *ctx;
  mp_process *p;
  mp_get_context(method, &ctx);
  cr_assert_eq(mp_process_new(&p, try_start_child, NULL), 0);
  mp_process_set_context(p, ctx);
  cr_assert_eq(mp_process_set_daemon(p, 1), 0);
  cr_assert_eq(mp_process_start(p), 0);
  cr_assert_eq(ts_join(p), TS_REPORT);
  cr_expect_str_eq(mp_process_error(p),
                   "MP_EDAEMONIC|daemonic processes are not allowed to "
                   "have children");
  mp_process_free(p);
}
FOR_EACH_METHOD(check_daemonic_no_children)

/* ---- API misuse --------------------------------------------------- */

Test(process_api, bad_arguments, .timeout = TS_TIMEOUT) {
  mp_process *p = NULL;
  cr_expect_eq(mp_process_new(NULL, return_arg, NULL), MP_EINVAL);
  cr_expect_eq(mp_process_new(&p, NULL, NULL), MP_EINVAL);
  cr_expect_null(p);
  cr_expect(strstr(mp_last_error_message(), "target") != NULL);
  cr_expect_eq(mp_process_new_subclass(NULL, 8, NULL), MP_EINVAL);
  char tiny[2];
  cr_expect_eq(mp_process_new_subclass(tiny, 2, counter_run), MP_EINVAL);

  cr_assert_eq(mp_process_new(&p, return_arg, NULL), 0);
  cr_expect_eq(mp_process_join(p, 1.0), MP_ESTATE, "never started");
  cr_expect_eq(mp_process_terminate(p), MP_ESTATE);
  int code;
  cr_expect_eq(mp_process_exitcode(p, &code), MP_ESTATE);
  cr_expect_eq(mp_process_sentinel(p), MP_INVALID_HANDLE);
  cr_expect_eq(mp_process_pid(p), 0);
  cr_expect_eq(mp_process_is_alive(p), 0);
  cr_expect_eq(mp_process_set_authkey(p, "", 0), MP_EINVAL);
  cr_expect_eq(mp_process_set_authkey(p, NULL, 4), MP_EINVAL);
  cr_assert_eq(mp_process_start(p), 0);
  cr_expect_eq(mp_process_start(p), MP_ESTATE, "started twice");
  cr_expect_eq(mp_process_set_daemon(p, 1), MP_ESTATE);
  cr_expect_eq(mp_process_set_context(p, NULL), MP_ESTATE);
  cr_expect_eq(mp_process_join(p, -2.0), MP_EINVAL, "negative timeout");
  cr_expect_eq(mp_process_join(p, 30.0), 0);
  cr_expect_eq(mp_process_free(p), 0);
  cr_expect_eq(mp_process_free(NULL), 0);

  cr_expect_eq(mp_process_join(mp_current_process(), 0), MP_EINVAL,
               "joining oneself");
  cr_expect_eq(mp_process_start(mp_current_process()), MP_EINVAL);
  cr_expect_eq(mp_process_terminate(mp_current_process()), MP_EINVAL);
  cr_expect_eq(mp_process_free(mp_current_process()), 0, "a no-op");
  mp_handle bad = MP_INVALID_HANDLE;
  cr_expect_eq(mp_wait(&bad, 1, 0, NULL), MP_EINVAL);
  cr_expect_eq(mp_wait(NULL, 0, 0, NULL), MP_EINVAL);
  cr_expect_eq(mp_wait(&bad, 1, -5, NULL), MP_EINVAL);
}

Test(process_api, run_in_this_process) {
  mp_args *a;
  mp_args_pack(&a, "i", 12);
  mp_process *p;
  cr_assert_eq(mp_process_new(&p, return_arg, a), 0);
  mp_args_free(a);
  cr_expect_eq(mp_process_run(p), 12);
  cr_expect_eq(mp_process_pid(p), 0, "run() starts nothing");
  mp_process_free(p);
}

Test(process_api, current_process) {
  mp_process *me = mp_current_process();
  cr_assert_not_null(me);
  cr_expect_str_eq(mp_process_name(me), "MainProcess");
  cr_expect_eq(mp_process_pid(me), mp_getpid());
  cr_expect_eq(mp_process_is_alive(me), 1);
  cr_expect_eq(mp_process_daemon(me), 0);
  cr_expect_null(mp_parent_process());
  cr_expect_gt(mp_getppid(), 0);
  cr_expect_geq(mp_cpu_count(), 1);
  cr_expect_geq(mp_process_cpu_count(), 1);
  cr_expect_leq(mp_process_cpu_count(), mp_cpu_count());
}

Test(process_api, default_names_count_up) {
  mp_process *a, *b;
  cr_assert_eq(mp_process_new(&a, return_arg, NULL), 0);
  cr_assert_eq(mp_process_new(&b, return_arg, NULL), 0);
  int na = 0, nb = 0;
  cr_assert_eq(sscanf(mp_process_name(a), "Process-%d", &na), 1);
  cr_assert_eq(sscanf(mp_process_name(b), "Process-%d", &nb), 1);
  cr_expect_eq(nb, na + 1);
  mp_process_free(a);
  mp_process_free(b);
}
