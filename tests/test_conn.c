/*
 * test_conn.c - pipes and connections: messages of every size between
 * processes under each start method, one-way pipes, end of file when the
 * other end is closed or its process dies, broken pipes, receiving into a
 * buffer that is too small, polling, waiting on several connections and
 * sentinels, tuples, forged frames, and misuse; receiving with a maximum
 * length (Python's recv_bytes(maxlength)), against hostile lengths and a
 * peer that dies inside a message.
 */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods.h"
#include "mproc.h"
#include "support.h"

TS_SUITE(conn);

/* ---- a child echoes what it receives -------------------------------- */

/* Echo every message back until end of file; return how many. */
static int echo(const mp_args *a) {
  mp_conn *c = mp_args_conn(a, 0);
  if (c == NULL)
    return 90;
  int count = 0;
  for (;;) {
    void *p;
    size_t n;
    int rc = mp_conn_recv_bytes(c, &p, &n);
    if (rc == MP_EEOF)
      return count;
    if (rc != 0 || mp_conn_send_bytes(c, p, n) != 0)
      return 91;
    mp_free(p);
    count++;
  }
}

static void check_echo(const char *method) {
  mp_conn *mine, *theirs;
  cr_assert_eq(mp_pipe(1, &mine, &theirs), 0);
  mp_args *a;
  mp_args_new(&a);
  cr_assert_eq(mp_args_add_conn(a, theirs), 0);
  mp_process *p = ts_start(method, echo, a);
  mp_args_free(a);
  mp_conn_free(theirs); /* the child has its own copy */
  size_t sizes[] = {0, 1, 7, 4090, 4096, 100000, 5 << 20};
  size_t n_sizes = sizeof sizes / sizeof sizes[0];
  for (size_t k = 0; k < n_sizes; k++) {
    void *msg = ts_make_message(sizes[k], k);
    cr_assert_eq(mp_conn_send_bytes(mine, msg, sizes[k]), 0, "%s",
                 mp_last_error_message());
    void *back;
    size_t n;
    cr_assert_eq(mp_conn_recv_bytes(mine, &back, &n), 0, "size %zu: %s",
                 sizes[k], mp_last_error_message());
    cr_expect_eq(n, sizes[k]);
    cr_expect(ts_is_message(back, n, k), "size %zu intact", sizes[k]);
    mp_free(back);
    free(msg);
  }
  mp_conn_close(mine); /* the child sees end of file */
  cr_expect_eq(ts_join(p), (int)n_sizes, "%s", mp_process_error(p));
  mp_process_free(p);
  mp_conn_free(mine);
}
FOR_EACH_METHOD(check_echo)

/* ---- ten processes each sending on one pipe -------------------------- */

static int send_my_number(const mp_args *a) {
  mp_conn *c = mp_args_conn(a, 0);
  char text[32];
  snprintf(text, sizeof text, "hello from %d", (int)mp_args_int(a, 1));
  return c != NULL && mp_conn_send_bytes(c, text, strlen(text)) == 0 ? 0
                                                                     : 1;
}

static void check_ten_senders(const char *method) {
  mp_conn *r, *w;
  cr_assert_eq(mp_pipe(0, &r, &w), 0);
  cr_expect(mp_conn_readable(r) && !mp_conn_writable(r));
  cr_expect(mp_conn_writable(w) && !mp_conn_readable(w));
  mp_process *p[10];
  for (int i = 0; i < 10; i++) {
    mp_args *a;
    mp_args_new(&a);
    mp_args_add_conn(a, w);
    mp_args_add_int(a, i);
    p[i] = ts_start(method, send_my_number, a);
    mp_args_free(a);
  }
  mp_conn_free(w);
  int seen[10] = {0};
  for (int i = 0; i < 10; i++) {
    char buf[64];
    size_t n;
    cr_assert_eq(mp_conn_recv_bytes_into(r, buf, sizeof buf - 1, &n), 0);
    buf[n] = '\0';
    int who = -1;
    cr_assert_eq(sscanf(buf, "hello from %d", &who), 1, "%s", buf);
    cr_assert(who >= 0 && who < 10);
    seen[who]++;
  }
  for (int i = 0; i < 10; i++) {
    cr_expect_eq(seen[i], 1, "sender %d", i);
    cr_expect_eq(ts_join(p[i]), 0);
    mp_process_free(p[i]);
  }
  /* Every writer is gone (ours freed, the children ended): end of file. */
  void *x;
  size_t n;
  cr_expect_eq(mp_conn_recv_bytes(r, &x, &n), MP_EEOF);
  mp_conn_free(r);
}
FOR_EACH_METHOD(check_ten_senders)

/* ---- the other end's process dies ------------------------------------- */

static int hold_and_block(const mp_args *a) {
  mp_conn *c = mp_args_conn(a, 0);
  if (c == NULL || mp_conn_send_bytes(c, "ready", 5) != 0)
    return 1;
  ts_block_forever();
  return 0;
}

static void check_peer_killed(const char *method) {
  mp_conn *mine, *theirs;
  cr_assert_eq(mp_pipe(1, &mine, &theirs), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_conn(a, theirs);
  mp_process *p = ts_start(method, hold_and_block, a);
  mp_args_free(a);
  mp_conn_free(theirs);
  char buf[8];
  size_t n;
  cr_assert_eq(mp_conn_recv_bytes_into(mine, buf, sizeof buf, &n), 0);
  cr_expect_eq(mp_conn_poll(mine, 0.05), 0, "nothing more yet");
  mp_process_kill(p);
  cr_expect_eq(mp_conn_poll(mine, 30.0), 1, "end of file is readable");
  cr_expect_eq(mp_conn_recv_bytes_into(mine, buf, sizeof buf, &n), MP_EEOF);
  cr_expect_eq(mp_conn_send_bytes(mine, "x", 1), MP_EPIPE);
  cr_expect_eq(ts_join(p), -9);
  mp_process_free(p);
  mp_conn_free(mine);
}
FOR_EACH_METHOD(check_peer_killed)

#if MP_HAS_FORK
/* A forked child keeps only the connections in its arguments, like a
 * spawned one: others it inherited are closed (so that, e.g., it cannot
 * hold the parent's end of a pipe open by accident). */
static mp_conn *not_given;

static int use_not_given(const mp_args *a) {
  mp_conn *given = mp_args_conn(a, 0);
  if (given == NULL || mp_conn_send_bytes(given, "ok", 2) != 0)
    return 1;
  return mp_conn_send_bytes(not_given, "x", 1) == MP_ECLOSED ? 0 : 2;
}

Test(fork, child_keeps_only_the_connections_it_is_given,
     .timeout = TS_TIMEOUT) {
  mp_conn *a, *b, *c, *d;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  cr_assert_eq(mp_pipe(1, &c, &d), 0);
  not_given = c;
  mp_args *args;
  mp_args_new(&args);
  mp_args_add_conn(args, b);
  mp_process *p = ts_start("fork", use_not_given, args);
  mp_args_free(args);
  cr_expect_eq(ts_join(p), 0);
  mp_process_free(p);
  char buf[4];
  size_t n;
  cr_expect_eq(mp_conn_recv_bytes_into(a, buf, sizeof buf, &n), 0);
  cr_expect_eq(mp_conn_send_bytes(c, "still", 5), 0, "ours is untouched");
  mp_conn_free(a);
  mp_conn_free(b);
  mp_conn_free(c);
  mp_conn_free(d);
}

/* What the parent read ahead stays the parent's: the child given the
 * connection starts from the stream, as a spawned child would. */
static int poll_given(const mp_args *a) {
  mp_conn *c = mp_args_conn(a, 0);
  return c != NULL && mp_conn_poll(c, 0.2) == 0 ? 0 : 1;
}

Test(fork, child_does_not_inherit_read_ahead, .timeout = TS_TIMEOUT) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  mp_conn_send_bytes(a, "one", 3);
  mp_conn_send_bytes(a, "two", 3);
  char buf[8];
  size_t n;
  cr_assert_eq(mp_conn_recv_bytes_into(b, buf, sizeof buf, &n), 0);
  mp_args *args;
  mp_args_new(&args);
  mp_args_add_conn(args, b);
  mp_process *p = ts_start("fork", poll_given, args);
  mp_args_free(args);
  cr_expect_eq(ts_join(p), 0, "the child saw nothing to read");
  mp_process_free(p);
  cr_assert_eq(mp_conn_recv_bytes_into(b, buf, sizeof buf, &n), 0);
  cr_expect_eq(memcmp(buf, "two", 3), 0, "the parent still has it");
  mp_conn_free(a);
  mp_conn_free(b);
}
#endif

/* ---- in one process ---------------------------------------------------- */

Test(conn, one_way_ends_refuse_the_other_direction) {
  mp_conn *r, *w;
  cr_assert_eq(mp_pipe(0, &r, &w), 0);
  cr_expect_eq(mp_conn_send_bytes(r, "x", 1), MP_EPERM);
  cr_expect(strstr(mp_last_error_message(), "read-only") != NULL);
  void *p;
  size_t n;
  cr_expect_eq(mp_conn_recv_bytes(w, &p, &n), MP_EPERM);
  cr_expect_eq(mp_conn_poll(w, 0), MP_EPERM);
  cr_expect_eq(mp_conn_send_bytes(w, "abc", 3), 0);
  cr_expect_eq(mp_conn_recv_bytes(r, &p, &n), 0);
  cr_expect_eq(n, 3);
  mp_free(p);
  mp_conn_free(r);
  mp_conn_free(w);
}

Test(conn, too_small_buffer_keeps_the_message) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  cr_assert_eq(mp_conn_send_bytes(a, "hello world", 11), 0);
  cr_assert_eq(mp_conn_send_bytes(a, "", 0), 0);
  char small[4];
  size_t n = 0;
  cr_expect_eq(mp_conn_recv_bytes_into(b, small, sizeof small, &n),
               MP_ERANGE);
  cr_expect_eq(n, 11, "the size needed");
  cr_expect_eq(mp_conn_poll(b, 0), 1, "still readable");
  cr_expect_eq(mp_conn_recv_bytes_into(b, small, sizeof small, &n),
               MP_ERANGE, "and again");
  char big[32];
  cr_assert_eq(mp_conn_recv_bytes_into(b, big, sizeof big, &n), 0);
  cr_expect_eq(n, 11);
  cr_expect_eq(memcmp(big, "hello world", 11), 0);
  cr_assert_eq(mp_conn_recv_bytes_into(b, NULL, 0, &n), 0, "0 bytes fit");
  cr_expect_eq(n, 0);
  mp_conn_free(a);
  mp_conn_free(b);
}

Test(conn, poll_and_timeouts) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  cr_expect_eq(mp_conn_poll(b, 0), 0);
  cr_expect_eq(mp_conn_poll(b, 0.1), 0);
  cr_expect_eq(mp_conn_poll(b, -3), MP_EINVAL);
  mp_conn_send_bytes(a, "x", 1);
  cr_expect_eq(mp_conn_poll(b, MP_FOREVER), 1);
  cr_expect_eq(mp_conn_poll(a, 0), 0, "each direction on its own");
  mp_conn_close(a);
  void *p;
  size_t n;
  cr_expect_eq(mp_conn_recv_bytes(b, &p, &n), 0, "data before the end");
  mp_free(p);
  cr_expect_eq(mp_conn_poll(b, 0), 1, "end of file is readable");
  cr_expect_eq(mp_conn_recv_bytes(b, &p, &n), MP_EEOF);
  cr_expect_eq(mp_conn_send_bytes(b, "x", 1), MP_EPIPE);
  mp_conn_free(a);
  mp_conn_free(b);
}

static void send_later(void *arg) { mp_conn_send_bytes(arg, "late", 4); }

static int block(const mp_args *a) {
  (void)a;
  ts_block_forever();
  return 0;
}

Test(conn, wait_on_connections_and_sentinels, .timeout = TS_TIMEOUT) {
  mp_conn *a1, *b1, *r2, *w2;
  cr_assert_eq(mp_pipe(1, &a1, &b1), 0);
  cr_assert_eq(mp_pipe(0, &r2, &w2), 0);
  mp_process *p = ts_start("spawn", block, NULL);
  mp_handle h[3] = {mp_conn_fileno(b1), mp_conn_fileno(r2),
                    mp_process_sentinel(p)};
  int ready[3];
  cr_expect_eq(mp_wait(h, 3, 0.1, ready), MP_ETIMEDOUT);
  ts_thread *t = ts_thread_start(send_later, w2);
  cr_expect_eq(mp_wait(h, 3, 30.0, ready), 1);
  ts_thread_join(t);
  cr_expect(!ready[0] && ready[1] && !ready[2]);
  char buf[8];
  size_t n;
  cr_assert_eq(mp_conn_recv_bytes_into(r2, buf, sizeof buf, &n), 0);
  cr_expect_eq(mp_wait(h, 3, 0, ready), MP_ETIMEDOUT, "consumed");
  mp_process_kill(p);
  cr_expect_eq(mp_wait(h, 3, 30.0, ready), 1);
  cr_expect(ready[2], "the sentinel");
  mp_conn_send_bytes(a1, "y", 1);
  cr_expect_eq(mp_wait(h, 3, 30.0, ready), 2);
  cr_expect(ready[0] && ready[2]);
  ts_join(p);
  mp_process_free(p);
  mp_conn_free(a1);
  mp_conn_free(b1);
  mp_conn_free(r2);
  mp_conn_free(w2);
}

Test(conn, tuples) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  mp_args *t, *back;
  mp_args_pack(&t, "isdy", 7, "text", 2.5, "\0\1", (size_t)2);
  cr_assert_eq(mp_conn_send_args(a, t), 0);
  cr_assert_eq(mp_conn_recv_args(b, &back), 0);
  int i;
  const char *s;
  double d;
  const void *y;
  size_t n;
  cr_assert_eq(mp_args_unpack(back, "isdy", &i, &s, &d, &y, &n), 0);
  cr_expect(i == 7 && strcmp(s, "text") == 0 && d == 2.5 && n == 2);
  mp_args_free(back);
  /* Objects travel through a pipe too (tests/test_handoff.c): the
   * receiver's is an object of its own. */
  cr_assert_eq(mp_args_add_conn(t, a), 0);
  cr_expect_eq(mp_conn_send_args(a, t), 0);
  cr_assert_eq(mp_conn_recv_args(b, &back), 0);
  cr_expect(mp_args_conn(back, 4) != NULL && mp_args_conn(back, 4) != a);
  mp_args_free(back);
  cr_expect(mp_args_conn(t, 4) == a, "the parent's own object");
  cr_expect_null(mp_args_conn(t, 0), "not a connection");
  mp_args_free(t);
  /* Bytes that are not a tuple are refused as such. */
  cr_assert_eq(mp_conn_send_bytes(a, "garbage!", 8), 0);
  cr_expect_eq(mp_conn_recv_args(b, &back), MP_EPROTO);
  cr_expect_null(back);
  mp_conn_free(a);
  mp_conn_free(b);
}

/* Small messages are read ahead: the second of two arrives with the
 * first.  It must still count as readable for poll and mp_wait, though the
 * OS stream is empty by then. */
Test(conn, messages_read_ahead_stay_visible) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  cr_assert_eq(mp_conn_send_bytes(a, "one", 3), 0);
  cr_assert_eq(mp_conn_send_bytes(a, "two", 3), 0);
  char buf[8];
  size_t n;
  cr_assert_eq(mp_conn_recv_bytes_into(b, buf, sizeof buf, &n), 0);
  cr_expect_eq(mp_conn_poll(b, 0), 1);
  mp_handle h[2] = {mp_conn_fileno(a), mp_conn_fileno(b)};
  int ready[2] = {-1, -1};
  cr_expect_eq(mp_wait(h, 2, 5.0, ready), 1);
  cr_expect(!ready[0] && ready[1]);
  cr_assert_eq(mp_conn_recv_bytes_into(b, buf, sizeof buf, &n), 0);
  cr_expect_eq(memcmp(buf, "two", 3), 0);
  cr_expect_eq(mp_conn_poll(b, 0), 0, "now nothing");
  cr_expect_eq(mp_wait(h, 2, 0.05, ready), MP_ETIMEDOUT);
  mp_conn_free(a);
  mp_conn_free(b);
}

/* Frames written by hand: the long form of the header, and lengths that
 * are refused. */
Test(conn, forged_frames) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  unsigned char longform[] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
                              0,    0,    0,    3,    'a', 'b', 'c'};
  ts_raw_write(mp_conn_fileno(a), longform, sizeof longform);
  void *p;
  size_t n;
  cr_assert_eq(mp_conn_recv_bytes(b, &p, &n), 0);
  cr_expect_eq(n, 3);
  cr_expect_eq(memcmp(p, "abc", 3), 0);
  mp_free(p);
  unsigned char huge[] = {0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 0, 0};
  ts_raw_write(mp_conn_fileno(a), huge, sizeof huge);
  cr_expect_eq(mp_conn_recv_bytes(b, &p, &n), MP_EPROTO);
  cr_expect(strstr(mp_last_error_message(), "maximum") != NULL);
  mp_conn_free(a);
  /* A header cut short by the end of the stream. */
  cr_assert_eq(mp_pipe(1, &a, &b) == 0 ? 0 : 1, 0);
  unsigned char half[] = {0, 0};
  ts_raw_write(mp_conn_fileno(a), half, sizeof half);
  mp_conn_free(a);
  cr_expect_eq(mp_conn_recv_bytes(b, &p, &n), MP_EEOF);
  cr_expect(strstr(mp_last_error_message(), "header") != NULL);
  mp_conn_free(b);
  /* A body cut short. */
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  unsigned char cut[] = {0, 0, 0, 9, 'x'};
  ts_raw_write(mp_conn_fileno(a), cut, sizeof cut);
  mp_conn_free(a);
  cr_expect_eq(mp_conn_recv_bytes(b, &p, &n), MP_EEOF);
  mp_conn_free(b);
  /* A negative length other than -1 (found by fuzz/fuzz_conn: it was
   * taken as 2 GiB). */
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  unsigned char negative[] = {0x80, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
  ts_raw_write(mp_conn_fileno(a), negative, sizeof negative);
  cr_expect_eq(mp_conn_recv_bytes(b, &p, &n), MP_EPROTO);
  mp_conn_free(a);
  mp_conn_free(b);
  /* A header claiming the largest message (16 GiB) with 4 bytes behind
   * it: memory goes only to what arrives, so this is end of file, not
   * a 16 GiB allocation (MP_ENOMEM, or worse, success). */
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  unsigned char claim[] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 4,
                           0,    0,    0,    0,    'a', 'b', 'c', 'd'};
  ts_raw_write(mp_conn_fileno(a), claim, sizeof claim);
  mp_conn_free(a);
  cr_expect_eq(mp_conn_recv_bytes(b, &p, &n), MP_EEOF, "%s",
               mp_last_error_message());
  mp_conn_free(b);
}

Test(conn, misuse) {
  mp_conn *a, *b;
  cr_expect_eq(mp_pipe(1, NULL, &b), MP_EINVAL);
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  cr_expect_eq(mp_conn_send_bytes(a, NULL, 3), MP_EINVAL);
  cr_expect_eq(mp_conn_send_bytes(NULL, "x", 1), MP_EINVAL);
  cr_expect_eq(mp_conn_recv_bytes(b, NULL, NULL), MP_EINVAL);
  cr_expect_eq(mp_conn_close(a), 0);
  cr_expect_eq(mp_conn_close(a), 0, "idempotent");
  cr_expect_eq(mp_conn_send_bytes(a, "x", 1), MP_ECLOSED);
  cr_expect_eq(mp_conn_poll(a, 0), MP_ECLOSED);
  cr_expect_eq(mp_conn_fileno(a), MP_INVALID_HANDLE);
  mp_args *t;
  mp_args_new(&t);
  cr_expect_eq(mp_args_add_conn(t, a), MP_ECLOSED);
  cr_expect_eq(mp_args_add_conn(t, NULL), MP_EINVAL);
  mp_args_free(t);
  mp_conn_free(a);
  mp_conn_free(b);
  mp_conn_free(NULL);
}

/* Two threads send whole messages at once; none interleave. */
typedef struct blaster {
  mp_conn *c;
  size_t seed;
} blaster;

static void blast(void *arg) {
  blaster *b = arg;
  void *msg = ts_make_message(70000, b->seed);
  for (int i = 0; i < 50; i++)
    mp_conn_send_bytes(b->c, msg, 70000);
  free(msg);
}

Test(conn, threads_do_not_interleave, .timeout = TS_TIMEOUT) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  blaster x = {a, 1}, y = {a, 2};
  ts_thread *tx = ts_thread_start(blast, &x);
  ts_thread *ty = ts_thread_start(blast, &y);
  int ones = 0, twos = 0;
  for (int i = 0; i < 100; i++) {
    void *p;
    size_t n;
    cr_assert_eq(mp_conn_recv_bytes(b, &p, &n), 0);
    cr_assert_eq(n, 70000);
    if (ts_is_message(p, n, 1))
      ones++;
    else if (ts_is_message(p, n, 2))
      twos++;
    mp_free(p);
  }
  ts_thread_join(tx);
  ts_thread_join(ty);
  cr_expect_eq(ones, 50);
  cr_expect_eq(twos, 50);
  mp_conn_free(a);
  mp_conn_free(b);
}

/* ---- receiving with a maximum length (recv_bytes(maxlength)) ---------- */

Test(conn, recv_bytes_max) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  void *p = NULL;
  size_t n = 0;
  /* Within the limit, and exactly at it. */
  cr_assert_eq(mp_conn_send_bytes(a, "hello", 5), 0);
  cr_assert_eq(mp_conn_recv_bytes_max(b, 100, &p, &n), 0);
  cr_expect(n == 5 && memcmp(p, "hello", 5) == 0);
  mp_free(p);
  cr_assert_eq(mp_conn_send_bytes(a, "hello", 5), 0);
  cr_assert_eq(mp_conn_recv_bytes_max(b, 5, &p, &n), 0);
  cr_expect_eq(n, 5);
  mp_free(p);
  /* Over it: MP_ERANGE with the length, nothing returned, and the
   * message stays readable (Python would make b unusable). */
  cr_assert_eq(mp_conn_send_bytes(a, "hello world", 11), 0);
  p = &n;
  cr_expect_eq(mp_conn_recv_bytes_max(b, 10, &p, &n), MP_ERANGE);
  cr_expect_eq(n, 11, "the length it has");
  cr_expect_null(p);
  cr_expect_eq(mp_conn_poll(b, 0), 1, "still readable");
  cr_expect_eq(mp_conn_recv_bytes_max(b, 10, &p, &n), MP_ERANGE, "again");
  cr_assert_eq(mp_conn_recv_bytes_max(b, 11, &p, &n), 0);
  cr_expect(n == 11 && memcmp(p, "hello world", 11) == 0);
  mp_free(p);
  /* maxlength 0 takes empty messages only. */
  cr_assert_eq(mp_conn_send_bytes(a, "", 0), 0);
  cr_assert_eq(mp_conn_send_bytes(a, "x", 1), 0);
  cr_assert_eq(mp_conn_recv_bytes_max(b, 0, &p, &n), 0);
  cr_expect_eq(n, 0);
  mp_free(p);
  cr_expect_eq(mp_conn_recv_bytes_max(b, 0, &p, &n), MP_ERANGE);
  cr_expect_eq(n, 1);
  cr_assert_eq(mp_conn_recv_bytes(b, &p, &n), 0, "the plain receive takes it");
  cr_expect(n == 1 && memcmp(p, "x", 1) == 0);
  mp_free(p);
  /* Bad arguments: a negative maxlength made unsigned, NULLs, the wrong
   * direction, a closed end.  None of them takes the waiting message. */
  cr_assert_eq(mp_conn_send_bytes(a, "kept", 4), 0);
  cr_expect_eq(mp_conn_recv_bytes_max(b, (size_t)-1, &p, &n), MP_EINVAL);
  cr_expect(strstr(mp_last_error_message(), "negative") != NULL, "%s",
            mp_last_error_message());
  cr_expect_eq(mp_conn_recv_bytes_max(b, (size_t)PTRDIFF_MAX + 1, &p, &n),
               MP_EINVAL);
  cr_expect_eq(mp_conn_recv_bytes_max(b, 10, NULL, &n), MP_EINVAL);
  cr_expect_eq(mp_conn_recv_bytes_max(b, 10, &p, NULL), MP_EINVAL);
  cr_expect_eq(mp_conn_recv_bytes_max(NULL, 10, &p, &n), MP_EINVAL);
  cr_assert_eq(mp_conn_recv_bytes_max(b, (size_t)PTRDIFF_MAX, &p, &n), 0,
               "the largest maxlength");
  cr_expect(n == 4 && memcmp(p, "kept", 4) == 0);
  mp_free(p);
  mp_conn *r, *w;
  cr_assert_eq(mp_pipe(0, &r, &w), 0);
  cr_expect_eq(mp_conn_recv_bytes_max(w, 10, &p, &n), MP_EPERM);
  mp_conn_close(b);
  cr_expect_eq(mp_conn_recv_bytes_max(b, 10, &p, &n), MP_ECLOSED);
  mp_conn_free(r);
  mp_conn_free(w);
  mp_conn_free(a);
  mp_conn_free(b);
}

/* A header claiming far more than maxlength is refused at once, before
 * any body arrives (no wait for it, nothing allocated for it); the short
 * and the long form of the header alike. */
Test(conn, recv_bytes_max_refuses_hostile_lengths, .timeout = TS_TIMEOUT) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  unsigned char gig[] = {0x40, 0, 0, 0, 'a', 'b', 'c'}; /* 1 GiB */
  ts_raw_write(mp_conn_fileno(a), gig, sizeof gig);
  void *p = &p;
  size_t n = 0;
  cr_expect_eq(mp_conn_recv_bytes_max(b, 1 << 20, &p, &n), MP_ERANGE, "%s",
               mp_last_error_message());
  cr_expect_eq(n, (size_t)1 << 30);
  cr_expect_null(p);
  if (sizeof(size_t) > 4) {
    mp_conn *c, *d;
    cr_assert_eq(mp_pipe(1, &c, &d), 0);
    unsigned char big[] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, 0, 0, 0, 0};
    ts_raw_write(mp_conn_fileno(c), big, sizeof big); /* 8 GiB */
    cr_expect_eq(mp_conn_recv_bytes_max(d, 1 << 20, &p, &n), MP_ERANGE);
    cr_expect_eq((uint64_t)n, (uint64_t)1 << 33);
    mp_conn_free(c);
    mp_conn_free(d);
  }
  /* The peer goes: the claimed message never comes whole. */
  mp_conn_free(a);
  cr_expect_eq(mp_conn_recv_bytes(b, &p, &n), MP_EEOF);
  mp_conn_free(b);
}

/* The peer writes a header for 100 bytes and 10 of them, then is killed:
 * a maxlength under 100 is refused from the header alone; one over it
 * reads until the end of the stream: MP_EEOF. */
static int half_message(const mp_args *a) {
  mp_conn *c = mp_args_conn(a, 0);
  if (c == NULL)
    return 1;
  unsigned char frame[14] = {0, 0, 0, 100};
  memset(frame + 4, 'h', 10);
  ts_raw_write(mp_conn_fileno(c), frame, sizeof frame);
  ts_block_forever();
  return 0;
}

static void check_recv_max_peer_dies(const char *method) {
  mp_conn *mine, *theirs;
  cr_assert_eq(mp_pipe(1, &mine, &theirs), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_conn(a, theirs);
  mp_process *p = ts_start(method, half_message, a);
  mp_args_free(a);
  mp_conn_free(theirs);
  void *m = NULL;
  size_t n = 0;
  cr_expect_eq(mp_conn_recv_bytes_max(mine, 50, &m, &n), MP_ERANGE, "%s",
               mp_last_error_message());
  cr_expect_eq(n, 100);
  mp_process_kill(p);
  cr_expect_eq(mp_conn_recv_bytes_max(mine, 1000, &m, &n), MP_EEOF, "%s",
               mp_last_error_message());
  cr_expect(strstr(mp_last_error_message(), "inside a message") != NULL,
            "%s", mp_last_error_message());
  cr_expect_null(m);
  cr_expect_eq(ts_join(p), -9);
  mp_process_free(p);
  mp_conn_free(mine);
}
FOR_EACH_METHOD(check_recv_max_peer_dies)
