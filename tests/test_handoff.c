/*
 * test_handoff.c - objects and raw handles through a connection or a
 * queue (Python: a Connection sent through a Pipe, reduction.send_handle;
 * mproc also sends queues, locks and values, which Python refuses).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods.h"
#include "mproc.h"
#include "support.h"

TS_SUITE(handoff);

/* A message's bytes as they travel (the envelope with its ticket). */
static void *wire_bytes(const mp_args *t, size_t *n) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  cr_assert_eq(mp_conn_send_args(a, t), 0);
  void *p = NULL;
  cr_assert_eq(mp_conn_recv_bytes(b, &p, n), 0);
  mp_conn_free(a);
  mp_conn_free(b);
  return p;
}

/* recv_args of exactly these bytes. */
static int recv_these(const void *p, size_t n, mp_args **out) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  cr_assert_eq(mp_conn_send_bytes(a, p, n), 0);
  int rc = mp_conn_recv_args(b, out);
  mp_conn_free(a);
  mp_conn_free(b);
  return rc;
}

/* ---- within one process ------------------------------------------------ */

Test(handoff, connection_through_a_pipe, .timeout = TS_TIMEOUT) {
  mp_conn *a, *b, *c1, *c2;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  cr_assert_eq(mp_pipe(1, &c1, &c2), 0);
  mp_args *t;
  cr_assert_eq(mp_args_pack(&t, "Ci", b, 5), 0);
  cr_assert_eq(mp_conn_send_args(c1, t), 0);
  mp_args_free(t);
  mp_conn_free(b); /* the message holds its own copy */
  mp_args *back = NULL;
  cr_assert_eq(mp_conn_recv_args(c2, &back), 0);
  mp_conn *nb = mp_args_conn(back, 0);
  cr_assert_not_null(nb);
  cr_expect_eq(mp_args_int(back, 1), 5);
  cr_assert_eq(mp_conn_send_bytes(nb, "hi", 2), 0);
  void *p;
  size_t n;
  cr_assert_eq(mp_conn_recv_bytes(a, &p, &n), 0);
  cr_expect(n == 2 && memcmp(p, "hi", 2) == 0);
  mp_free(p);
  /* The received tuple owns the connection; freeing it closes the last
   * copy: no handle stays behind in the sender's table. */
  mp_args_free(back);
  cr_expect_eq(mp_conn_poll(a, 10.0), 1);
  cr_expect_eq(mp_conn_recv_bytes(a, &p, &n), MP_EEOF);
  mp_conn_free(a);
  mp_conn_free(c1);
  mp_conn_free(c2);
}

Test(handoff, lock_value_and_queue_through_a_queue, .timeout = TS_TIMEOUT) {
  mp_queue *q, *inner;
  mp_lock *l;
  mp_value *v;
  cr_assert_eq(mp_queue_new(&q, 0), 0);
  cr_assert_eq(mp_queue_new(&inner, 0), 0);
  cr_assert_eq(mp_lock_new(&l), 0);
  cr_assert_eq(mp_value_new(&v, 'q', NULL), 0);
  mp_args *t;
  cr_assert_eq(mp_args_pack(&t, "LVQ", l, v, inner), 0);
  cr_assert_eq(mp_queue_put_args(q, t, 5.0), 0);
  mp_args_free(t);
  mp_args *back = NULL;
  cr_assert_eq(mp_queue_get_args(q, &back, 5.0), 0);
  mp_lock *l2;
  mp_value *v2;
  mp_queue *inner2;
  cr_assert_eq(mp_args_unpack(back, "LVQ", &l2, &v2, &inner2), 0);
  cr_expect(l2 != l && v2 != v && inner2 != inner, "objects of its own");
  /* The same lock, value and queue underneath. */
  cr_assert_eq(mp_lock_acquire(l2, 5.0), 0);
  cr_expect_eq(mp_lock_locked(l), 1);
  cr_expect_eq(mp_lock_acquire(l, 0), MP_ETIMEDOUT);
  cr_assert_eq(mp_lock_release(l2), 0);
  *(int64_t *)mp_value_ptr(v2) = 42;
  cr_expect_eq(*(int64_t *)mp_value_ptr(v), 42);
  cr_assert_eq(mp_queue_put(inner2, "x", 1, 5.0), 0);
  void *p;
  size_t n;
  cr_assert_eq(mp_queue_get(inner, &p, &n, 5.0), 0);
  cr_expect(n == 1 && ((char *)p)[0] == 'x');
  mp_free(p);
  mp_args_free(back);
  mp_value_free(v);
  mp_lock_free(l);
  mp_queue_free(inner);
  mp_queue_free(q);
}

Test(handoff, a_message_gives_its_objects_once, .timeout = TS_TIMEOUT) {
  mp_lock *l;
  cr_assert_eq(mp_lock_new(&l), 0);
  mp_args *t;
  cr_assert_eq(mp_args_pack(&t, "L", l), 0);
  size_t n;
  void *p = wire_bytes(t, &n);
  mp_args *back = NULL;
  cr_assert_eq(recv_these(p, n, &back), 0);
  cr_expect_not_null(mp_args_lock(back, 0));
  mp_args_free(back);
  back = NULL;
  int rc = recv_these(p, n, &back);
  cr_expect_eq(rc, MP_ENOENT, "the same bytes again: %s", mp_err_name(rc));
  cr_expect_null(back);
  mp_free(p);
  mp_args_free(t);
  mp_lock_free(l);
}

Test(handoff, a_closed_object_is_refused, .timeout = TS_TIMEOUT) {
  mp_conn *a, *b, *c1, *c2;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  cr_assert_eq(mp_pipe(1, &c1, &c2), 0);
  mp_args *t;
  cr_assert_eq(mp_args_pack(&t, "C", b), 0);
  mp_conn_close(b);
  cr_expect_eq(mp_conn_send_args(c1, t), MP_ECLOSED);
  cr_expect_eq(mp_conn_poll(c2, 0), 0, "nothing was sent");
  mp_queue *q;
  cr_assert_eq(mp_queue_new(&q, 0), 0);
  cr_expect_eq(mp_queue_put_args(q, t, 1.0), MP_ECLOSED);
  cr_expect_eq(mp_queue_empty(q), 1);
  cr_expect_eq(mp_conn_send_args(c1, NULL), MP_EINVAL);
  cr_expect_eq(mp_queue_put_args(NULL, t, 1.0), MP_EINVAL);
  mp_args_free(t);
  mp_queue_free(q);
  mp_conn_free(a);
  mp_conn_free(b);
  mp_conn_free(c1);
  mp_conn_free(c2);
}

/* A message that did not go (a full queue) leaves nothing behind: the
 * received connection's last copy closes and its peer sees end of file. */
Test(handoff, a_message_not_sent_is_withdrawn, .timeout = TS_TIMEOUT) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  mp_queue *q;
  cr_assert_eq(mp_queue_new(&q, 1), 0);
  cr_assert_eq(mp_queue_put(q, "f", 1, 1.0), 0);
  mp_args *t;
  cr_assert_eq(mp_args_pack(&t, "C", b), 0);
  cr_expect_eq(mp_queue_put_args(q, t, 0.05), MP_EFULL);
  mp_args_free(t);
  mp_conn_free(b);
  cr_expect_eq(mp_conn_poll(a, 10.0), 1);
  void *p;
  size_t n;
  cr_expect_eq(mp_conn_recv_bytes(a, &p, &n), MP_EEOF);
  mp_queue_free(q);
  mp_conn_free(a);
}

static void put_u32le(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

/* Hostile or broken bytes: an error, never a crash, a hang or an object
 * made of nothing. */
Test(handoff, malformed_messages_are_refused, .timeout = TS_TIMEOUT) {
  mp_lock *l;
  cr_assert_eq(mp_lock_new(&l), 0);
  mp_args *t;
  cr_assert_eq(mp_args_pack(&t, "Li", l, 3), 0);
  size_t n;
  unsigned char *good = wire_bytes(t, &n);
  cr_assert_gt(n, 8);
  cr_assert_eq(memcmp(good, "MPX1", 4), 0);
  uint32_t tn = (uint32_t)good[4] | (uint32_t)good[5] << 8 |
                (uint32_t)good[6] << 16 | (uint32_t)good[7] << 24;
  cr_assert_lt(8 + tn, n);
  unsigned char *bad = malloc(n + 64);
  cr_assert_not_null(bad);
  mp_args *back;
  int rc;
#define REFUSED(len, what)                                                 \
  do {                                                                     \
    back = NULL;                                                           \
    rc = recv_these(bad, (len), &back);                                    \
    cr_expect(rc == MP_EPROTO || rc == MP_ENOENT, "%s: %s", (what),        \
              mp_err_name(rc));                                            \
    cr_expect_null(back, "%s", (what));                                    \
  } while (0)
  /* The tuple without its ticket: objects with no handles. */
  memcpy(bad, good + 8 + tn, n - 8 - tn);
  REFUSED(n - 8 - tn, "objects without their handles");
  /* A ticket length past the end. */
  memcpy(bad, good, n);
  put_u32le(bad + 4, (uint32_t)n);
  REFUSED(n, "ticket past the end");
  /* Cut short anywhere. */
  for (size_t k = 0; k < 8 + tn; k += 3) {
    memcpy(bad, good, n);
    put_u32le(bad + 4, (uint32_t)(k > 8 ? k - 8 : 0));
    REFUSED(n, "ticket cut short");
  }
  /* Every byte of the ticket flipped in turn: the pid, id, token, count
   * or address no longer names what the sender offers. */
  for (size_t k = 8; k < 8 + tn; k++) {
    memcpy(bad, good, n);
    bad[k] ^= 0x5a;
    REFUSED(n, "ticket byte flipped");
  }
  /* A handle message where a tuple is expected, and the other way. */
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  cr_assert_eq(mp_conn_send_handle(a, mp_conn_fileno(a)), 0);
  cr_expect_eq(mp_conn_recv_args(b, &back), MP_EPROTO);
  cr_assert_eq(mp_conn_send_args(a, t), 0);
  mp_handle h;
  cr_expect_eq(mp_conn_recv_handle(b, &h), MP_EPROTO);
  cr_expect_eq(h, MP_INVALID_HANDLE);
  cr_assert_eq(mp_conn_send_bytes(a, "MPH1", 4), 0);
  cr_expect_eq(mp_conn_recv_handle(b, &h), MP_EPROTO);
  /* The good message still works (none of the above consumed it). */
  back = NULL;
  cr_expect_eq(recv_these(good, n, &back), 0);
  cr_expect_not_null(mp_args_lock(back, 0));
  mp_args_free(back);
  cr_expect_eq(mp_conn_send_handle(a, MP_INVALID_HANDLE), MP_ECLOSED);
  cr_expect_eq(mp_conn_send_handle(NULL, mp_conn_fileno(a)), MP_EINVAL);
  cr_expect_eq(mp_conn_recv_handle(b, NULL), MP_EINVAL);
  mp_conn_free(a);
  mp_conn_free(b);
  free(bad);
  mp_free(good);
  mp_args_free(t);
  mp_lock_free(l);
}

Test(handoff, raw_handle_in_one_process, .timeout = TS_TIMEOUT) {
  intptr_t rd, wr;
  ts_inheritable_pipe(&rd, &wr);
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  cr_assert_eq(mp_conn_send_handle(a, (mp_handle)wr), 0);
  ts_close_raw(wr); /* the message holds a copy */
  mp_handle got;
  cr_assert_eq(mp_conn_recv_handle(b, &got), 0);
  cr_expect_neq(got, MP_INVALID_HANDLE);
  cr_expect_eq(ts_pipe_writers_gone(rd), 0, "the received copy is open");
  ts_close_raw((intptr_t)got);
  cr_expect_eq(ts_pipe_writers_gone(rd), 1, "and was the last one");
  ts_close_raw(rd);
  mp_conn_free(a);
  mp_conn_free(b);
}

/* ---- between processes ------------------------------------------------- */

/* args: carrier.  Receive a connection, say hello through it. */
static int hello_through_received(const mp_args *a) {
  mp_args *got = NULL;
  int rc = mp_conn_recv_args(mp_args_conn(a, 0), &got);
  if (rc != 0)
    return ts_report("recv_args: %s", mp_last_error_message());
  rc = mp_conn_send_bytes(mp_args_conn(got, 0), "hello", 5);
  mp_args_free(got);
  return rc == 0 ? 0 : 2;
}

static void check_connection_to_child(const char *method) {
  mp_conn *a, *b, *c1, *c2;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  cr_assert_eq(mp_pipe(1, &c1, &c2), 0);
  mp_args *args;
  cr_assert_eq(mp_args_pack(&args, "C", c2), 0);
  mp_process *p = ts_start(method, hello_through_received, args);
  mp_args *t;
  cr_assert_eq(mp_args_pack(&t, "C", b), 0);
  cr_assert_eq(mp_conn_send_args(c1, t), 0);
  mp_args_free(t);
  mp_conn_free(b);
  void *m;
  size_t n;
  cr_assert_eq(mp_conn_poll(a, 30.0), 1);
  cr_assert_eq(mp_conn_recv_bytes(a, &m, &n), 0);
  cr_expect(n == 5 && memcmp(m, "hello", 5) == 0);
  mp_free(m);
  cr_expect_eq(ts_join(p), 0, "%s", mp_last_error_message());
  /* The child's copy went with it, the sender's with the message. */
  cr_expect_eq(mp_conn_poll(a, 10.0), 1);
  cr_expect_eq(mp_conn_recv_bytes(a, &m, &n), MP_EEOF);
  mp_process_free(p);
  mp_args_free(args);
  mp_conn_free(a);
  mp_conn_free(c1);
  mp_conn_free(c2);
}
FOR_EACH_METHOD(check_connection_to_child)

/* args: queue, event.  Make a Value and a Lock here and send them up;
 * wait for the parent to have set the value. */
static int objects_up(const mp_args *a) {
  mp_queue *q = mp_args_queue(a, 0);
  mp_event *done = mp_args_event(a, 1);
  mp_value *v;
  mp_lock *l;
  if (mp_value_new(&v, 'q', NULL) != 0 || mp_lock_new(&l) != 0)
    return 2;
  *(int64_t *)mp_value_ptr(v) = 41;
  mp_args *t;
  mp_args_pack(&t, "VL", v, l);
  int rc = mp_queue_put_args(q, t, 10.0);
  mp_args_free(t);
  if (rc != 0)
    return ts_report("put_args: %s", mp_last_error_message());
  if (mp_event_wait(done, 30.0) != 0)
    return 3;
  int64_t seen = *(int64_t *)mp_value_ptr(v);
  int held = mp_lock_locked(l);
  mp_value_free(v);
  mp_lock_free(l);
  return seen == 42 && held == 1 ? 0 : ts_report("seen %lld", (long long)seen);
}

static void check_objects_from_child(const char *method) {
  mp_queue *q;
  mp_event *done;
  cr_assert_eq(mp_queue_new(&q, 0), 0);
  cr_assert_eq(mp_event_new(&done), 0);
  mp_args *args;
  cr_assert_eq(mp_args_pack(&args, "QE", q, done), 0);
  mp_process *p = ts_start(method, objects_up, args);
  mp_args *got = NULL;
  cr_assert_eq(mp_queue_get_args(q, &got, 30.0), 0, "%s",
               mp_last_error_message());
  mp_value *v;
  mp_lock *l;
  cr_assert_eq(mp_args_unpack(got, "VL", &v, &l), 0);
  cr_expect_eq(*(int64_t *)mp_value_ptr(v), 41);
  *(int64_t *)mp_value_ptr(v) = 42;
  cr_assert_eq(mp_lock_acquire(l, 5.0), 0);
  cr_assert_eq(mp_event_set(done), 0);
  cr_expect_eq(ts_join(p), 0, "%s", mp_last_error_message());
  mp_lock_release(l);
  mp_args_free(got);
  mp_process_free(p);
  mp_args_free(args);
  mp_event_free(done);
  mp_queue_free(q);
}
FOR_EACH_METHOD(check_objects_from_child)

/* args: queue.  Send a lock of our own and end at once. */
static int send_and_go(const mp_args *a) {
  mp_lock *l;
  if (mp_lock_new(&l) != 0)
    return 2;
  mp_args *t;
  mp_args_pack(&t, "Li", l, 7);
  int rc = mp_queue_put_args(mp_args_queue(a, 0), t, 10.0);
  mp_args_free(t);
  mp_lock_free(l);
  return rc == 0 ? 0 : 3;
}

/* Python: the receiver of a connection whose sender has ended gets an
 * error; so does mproc's, at once and never a hang. */
static void check_sender_gone(const char *method) {
  mp_queue *q;
  cr_assert_eq(mp_queue_new(&q, 0), 0);
  mp_args *args;
  cr_assert_eq(mp_args_pack(&args, "Q", q), 0);
  mp_process *p = ts_start(method, send_and_go, args);
  cr_assert_eq(ts_join(p), 0);
  mp_args *got = NULL;
  double t0 = ts_now();
  int rc = mp_queue_get_args(q, &got, 30.0);
  cr_expect_eq(rc, MP_ENOENT, "%s: %s", mp_err_name(rc),
               mp_last_error_message());
  cr_expect_lt(ts_now() - t0, 20.0);
  cr_expect_null(got);
  cr_expect_eq(mp_queue_empty(q), 1, "the message was consumed");
  mp_process_free(p);
  mp_args_free(args);
  mp_queue_free(q);
}
FOR_EACH_METHOD(check_sender_gone)

/* args: carrier.  Receive a raw handle (a connection's) and write one
 * framed message through it. */
static int write_through_handle(const mp_args *a) {
  mp_handle h;
  int rc = mp_conn_recv_handle(mp_args_conn(a, 0), &h);
  if (rc != 0)
    return ts_report("recv_handle: %s", mp_last_error_message());
  static const unsigned char frame[] = {0, 0, 0, 3, 'r', 'a', 'w'};
  ts_raw_write(h, frame, sizeof frame);
  ts_close_raw((intptr_t)h);
  return 0;
}

static void check_raw_handle_to_child(const char *method) {
  mp_conn *a, *b, *c1, *c2;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  cr_assert_eq(mp_pipe(1, &c1, &c2), 0);
  mp_args *args;
  cr_assert_eq(mp_args_pack(&args, "C", c2), 0);
  mp_process *p = ts_start(method, write_through_handle, args);
  cr_assert_eq(mp_conn_send_handle(c1, mp_conn_fileno(b)), 0);
  void *m;
  size_t n;
  cr_assert_eq(mp_conn_poll(a, 30.0), 1);
  cr_assert_eq(mp_conn_recv_bytes(a, &m, &n), 0);
  cr_expect(n == 3 && memcmp(m, "raw", 3) == 0);
  mp_free(m);
  cr_expect_eq(ts_join(p), 0, "%s", mp_last_error_message());
  mp_process_free(p);
  mp_args_free(args);
  mp_conn_free(a);
  mp_conn_free(b);
  mp_conn_free(c1);
  mp_conn_free(c2);
}
FOR_EACH_METHOD(check_raw_handle_to_child)

/* args: queue.  Take a tuple with a lock from the queue. */
static int take_lock(const mp_args *a) {
  mp_args *got = NULL;
  int rc = mp_queue_get_args(mp_args_queue(a, 0), &got, 30.0);
  if (rc != 0)
    return ts_report("get_args: %s", mp_last_error_message());
  rc = mp_args_lock(got, 0) != NULL ? 0 : 2;
  mp_args_free(got);
  return rc;
}

/* The sender's sharer answers a real receiver while hostile clients sit
 * on it: one silent, one sending garbage, one asking for an entry that
 * does not exist. */
static void check_sharer_survives_hostile_clients(const char *method) {
  mp_lock *l;
  cr_assert_eq(mp_lock_new(&l), 0);
  mp_args *t;
  cr_assert_eq(mp_args_pack(&t, "L", l), 0);
  size_t n;
  unsigned char *w = wire_bytes(t, &n); /* starts the sharer */
  size_t an = (size_t)w[8 + 36] | (size_t)w[8 + 37] << 8;
  char address[320];
  cr_assert_lt(an, sizeof address);
  memcpy(address, w + 8 + 38, an);
  address[an] = '\0';
  mp_free(w);
  mp_conn *silent, *garbage, *wrong;
  cr_assert_eq(mp_client(&silent, address, MP_AF_LOCAL, NULL, 0, 10.0), 0);
  cr_assert_eq(mp_client(&garbage, address, MP_AF_LOCAL, NULL, 0, 10.0), 0);
  cr_assert_eq(mp_client(&wrong, address, MP_AF_LOCAL, NULL, 0, 10.0), 0);
  ts_raw_write(mp_conn_fileno(garbage), "garbage garbage garbage", 23);
  unsigned char req[48];
  memset(req, 0, sizeof req);
  memcpy(req, "MPR1", 4);
  req[4] = 0xee; /* no such id */
  ts_raw_write(mp_conn_fileno(wrong), req, sizeof req);
  mp_queue *q;
  cr_assert_eq(mp_queue_new(&q, 0), 0);
  cr_assert_eq(mp_queue_put_args(q, t, 5.0), 0);
  mp_args *args;
  cr_assert_eq(mp_args_pack(&args, "Q", q), 0);
  mp_process *p = ts_start(method, take_lock, args);
  cr_expect_eq(ts_join(p), 0, "%s", mp_last_error_message());
  /* The wrong request got its answer (and the garbage its hang-up). */
  cr_expect_eq(mp_conn_poll(wrong, 10.0), 1);
  cr_expect_eq(mp_conn_poll(garbage, 10.0), 1);
  mp_conn_free(silent);
  mp_conn_free(garbage);
  mp_conn_free(wrong);
  mp_process_free(p);
  mp_args_free(args);
  mp_args_free(t);
  mp_queue_free(q);
  mp_lock_free(l);
}
FOR_EACH_METHOD(check_sharer_survives_hostile_clients)
