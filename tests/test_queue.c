/*
 * test_queue.c - Queue, SimpleQueue and JoinableQueue: order and sizes
 * (streamed messages larger than the buffer included), maxsize, timeouts,
 * close, task_done/join, tuples, messages surviving their producer's
 * exit, 4 x 100,000 messages from four processes (and the same through
 * pipes), and the faults: a producer killed in the middle of a message,
 * a consumer killed in the middle of taking one.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "methods.h"
#include "mproc.h"
#include "support.h"

TS_SUITE(queue);

/* ---- in one process ----------------------------------------------------- */

Test(queue, fifo_of_every_size, .timeout = TS_TIMEOUT) {
  mp_queue *q;
  /* A 4 KiB buffer: everything above 1 KiB streams through it. */
  cr_assert_eq(mp_queue_new_ex(&q, 0, 4096, 0), 0);
  size_t sizes[] = {0, 1, 64, 1000, 1008, 1009, 4096, 70000};
  size_t n = sizeof sizes / sizeof sizes[0];
  /* Small ones queue up; each large one needs a consumer meanwhile, so
   * put those from a thread below. */
  for (size_t k = 0; k < 4; k++) {
    void *m = ts_make_message(sizes[k], k);
    cr_assert_eq(mp_queue_put(q, m, sizes[k], 1.0), 0, "%s",
                 mp_last_error_message());
    free(m);
  }
  cr_expect_eq(mp_queue_qsize(q), 4);
  cr_expect_eq(mp_queue_empty(q), 0);
  cr_expect_eq(mp_queue_full(q), 0, "no maxsize: never full");
  for (size_t k = 0; k < 4; k++) {
    void *p;
    size_t len;
    cr_assert_eq(mp_queue_get(q, &p, &len, 1.0), 0);
    cr_expect_eq(len, sizes[k]);
    cr_expect(ts_is_message(p, len, k), "message %zu intact", k);
    mp_free(p);
  }
  cr_expect_eq(mp_queue_empty(q), 1);
  mp_queue_free(q);
  (void)n;
}

typedef struct putter {
  mp_queue *q;
  size_t *sizes;
  size_t n;
  int rc;
} putter;

static void put_all(void *arg) {
  putter *p = arg;
  p->rc = 0;
  for (size_t k = 0; k < p->n && p->rc == 0; k++) {
    void *m = ts_make_message(p->sizes[k], k);
    p->rc = mp_queue_put(p->q, m, p->sizes[k], 30.0);
    free(m);
  }
}

Test(queue, messages_larger_than_the_buffer_stream, .timeout = TS_TIMEOUT) {
  mp_queue *q;
  cr_assert_eq(mp_queue_new_ex(&q, 0, 4096, 0), 0);
  size_t sizes[] = {1009, 4096, 70000, 3 << 20, 5, 0};
  putter pt = {q, sizes, 6, -1};
  ts_thread *th = ts_thread_start(put_all, &pt);
  for (size_t k = 0; k < 6; k++) {
    void *p;
    size_t len;
    cr_assert_eq(mp_queue_get(q, &p, &len, 30.0), 0, "%s",
                 mp_last_error_message());
    cr_expect_eq(len, sizes[k]);
    cr_expect(ts_is_message(p, len, k), "message %zu intact", k);
    mp_free(p);
  }
  ts_thread_join(th);
  cr_expect_eq(pt.rc, 0);
  mp_queue_free(q);
}

Test(queue, maxsize_nowait_and_timeouts, .timeout = TS_TIMEOUT) {
  mp_queue *q;
  cr_assert_eq(mp_queue_new(&q, 2), 0);
  cr_expect_eq(mp_queue_put_nowait(q, "a", 1), 0);
  cr_expect_eq(mp_queue_put(q, "b", 1, 0), 0);
  cr_expect_eq(mp_queue_full(q), 1);
  cr_expect_eq(mp_queue_put_nowait(q, "c", 1), MP_EFULL);
  double t0 = ts_now();
  cr_expect_eq(mp_queue_put(q, "c", 1, 0.1), MP_EFULL);
  cr_expect_geq(ts_now() - t0, 0.08);
  char buf[8];
  size_t n;
  cr_expect_eq(mp_queue_get_into(q, buf, sizeof buf, &n, 0), 0);
  cr_expect_eq(n, 1);
  cr_expect_eq(buf[0], 'a');
  cr_expect_eq(mp_queue_put_nowait(q, "c", 1), 0, "room again");
  void *p;
  cr_expect_eq(mp_queue_get_nowait(q, &p, &n), 0);
  mp_free(p);
  cr_expect_eq(mp_queue_get_nowait(q, &p, &n), 0);
  mp_free(p);
  cr_expect_eq(mp_queue_get_nowait(q, &p, &n), MP_EEMPTY);
  t0 = ts_now();
  cr_expect_eq(mp_queue_get(q, &p, &n, 0.1), MP_EEMPTY);
  cr_expect_geq(ts_now() - t0, 0.08);
  cr_expect_eq(mp_queue_get(q, &p, &n, -2), MP_EINVAL);
  cr_expect_eq(mp_queue_put(q, NULL, 3, 0), MP_EINVAL);
  cr_expect_eq(mp_queue_put(NULL, "x", 1, 0), MP_EINVAL);
  cr_expect_eq(mp_queue_get(q, NULL, &n, 0), MP_EINVAL);
  cr_expect_eq(mp_queue_new_ex(&q, 0, (size_t)2 << 30, 0), MP_EINVAL);
  mp_queue_free(q);
}

/* Sizes whose record size would wrap (SIZE_MAX became a 16-byte record
 * and memcpy ran over the ring) are refused, and the queue goes on. */
Test(queue, impossible_sizes_are_refused, .timeout = TS_TIMEOUT) {
  mp_queue *q;
  cr_assert_eq(mp_queue_new_ex(&q, 0, 4096, 1), 0);
  char buf[32] = "still here";
  size_t sizes[] = {SIZE_MAX, SIZE_MAX - 15, SIZE_MAX - 16, SIZE_MAX / 2 + 1,
                    (size_t)PTRDIFF_MAX + 1};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    cr_expect_eq(mp_queue_put(q, buf, sizes[i], 0), MP_ERANGE, "size %zu",
                 sizes[i]);
    cr_expect_eq(mp_queue_qsize(q), 0);
  }
  if ((uint64_t)SIZE_MAX > MP_QUEUE_MAX_MESSAGE)
    cr_expect_eq(mp_queue_put(q, buf, (size_t)(MP_QUEUE_MAX_MESSAGE + 1), 0),
                 MP_ERANGE);
  cr_expect_eq(mp_queue_put(q, buf, 11, 0), 0);
  char got[32];
  size_t n = 0;
  cr_expect_eq(mp_queue_get_into(q, got, sizeof got, &n, 1.0), 0);
  cr_expect_eq(n, 11);
  cr_expect_str_eq(got, "still here");
  cr_expect_eq(mp_queue_task_done(q), 0);
  cr_expect_eq(mp_queue_join(q, 0), 0);
  cr_expect_eq(mp_queue_task_done(q), MP_EVALUE);
  mp_queue_free(q);
}

Test(queue, get_into_too_small_leaves_the_message, .timeout = TS_TIMEOUT) {
  mp_queue *q;
  cr_assert_eq(mp_queue_new_ex(&q, 0, 4096, 0), 0);
  cr_assert_eq(mp_queue_put(q, "hello", 5, 1.0), 0);
  char small[3], big[16];
  size_t n = 0;
  cr_expect_eq(mp_queue_get_into(q, small, sizeof small, &n, 1.0),
               MP_ERANGE);
  cr_expect_eq(n, 5, "the size needed");
  cr_expect_eq(mp_queue_qsize(q), 1, "still queued");
  cr_expect_eq(mp_queue_get_into(q, big, sizeof big, &n, 1.0), 0);
  cr_expect_eq(n, 5);
  cr_expect_eq(memcmp(big, "hello", 5), 0);
  /* A streamed message too: refused before any piece is taken. */
  size_t sizes[] = {10000};
  putter pt = {q, sizes, 1, -1};
  ts_thread *th = ts_thread_start(put_all, &pt);
  cr_expect_eq(mp_queue_get_into(q, big, sizeof big, &n, 10.0), MP_ERANGE);
  cr_expect_eq(n, 10000);
  void *p;
  cr_assert_eq(mp_queue_get(q, &p, &n, 10.0), 0);
  cr_expect_eq(n, 10000);
  cr_expect(ts_is_message(p, n, 0));
  mp_free(p);
  ts_thread_join(th);
  cr_expect_eq(mp_queue_put(q, "", 0, 1.0), 0);
  cr_expect_eq(mp_queue_get_into(q, NULL, 0, &n, 1.0), 0);
  cr_expect_eq(n, 0);
  mp_queue_free(q);
}

typedef struct getter {
  mp_queue *q;
  int rc;
} getter;

static void get_one(void *arg) {
  getter *g = arg;
  void *p;
  size_t n;
  g->rc = mp_queue_get(g->q, &p, &n, 30.0);
  if (g->rc == 0)
    mp_free(p);
}

Test(queue, close_drains_then_reports_closed, .timeout = TS_TIMEOUT) {
  mp_queue *q;
  cr_assert_eq(mp_simple_queue_new(&q), 0);
  getter g = {q, 1};
  ts_thread *th = ts_thread_start(get_one, &g);
  cr_expect_eq(mp_queue_is_closed(q), 0);
  /* The blocked getter wakes when the queue closes... */
  cr_assert_eq(mp_queue_close(q), 0);
  ts_thread_join(th);
  cr_expect_eq(g.rc, MP_ECLOSED);
  cr_expect_eq(mp_queue_is_closed(q), 1);
  cr_expect_eq(mp_queue_put(q, "x", 1, 0), MP_ECLOSED);
  mp_queue_free(q);
  /* ...and gets take what is left first. */
  cr_assert_eq(mp_queue_new(&q, 0), 0);
  mp_queue_put(q, "1", 1, 0);
  mp_queue_put(q, "2", 1, 0);
  mp_queue_close(q);
  char b[4];
  size_t n;
  cr_expect_eq(mp_queue_get_into(q, b, 4, &n, 0), 0);
  cr_expect_eq(b[0], '1');
  cr_expect_eq(mp_queue_get_into(q, b, 4, &n, 0), 0);
  cr_expect_eq(b[0], '2');
  cr_expect_eq(mp_queue_get_into(q, b, 4, &n, 5.0), MP_ECLOSED);
  mp_queue_free(q);
}

Test(queue, joinable_task_done_and_join, .timeout = TS_TIMEOUT) {
  mp_queue *q, *plain;
  cr_assert_eq(mp_joinable_queue_new(&q, 0), 0);
  cr_assert_eq(mp_queue_new(&plain, 0), 0);
  cr_expect_eq(mp_queue_task_done(plain), MP_EINVAL);
  cr_expect_eq(mp_queue_join(plain, 0), MP_EINVAL);
  cr_expect_eq(mp_queue_join(q, 0), 0, "nothing put: done");
  cr_expect_eq(mp_queue_task_done(q), MP_EVALUE);
  mp_queue_put(q, "a", 1, 0);
  mp_queue_put(q, "b", 1, 0);
  cr_expect_eq(mp_queue_join(q, 0.05), MP_ETIMEDOUT);
  char b[2];
  size_t n;
  mp_queue_get_into(q, b, 2, &n, 0);
  mp_queue_get_into(q, b, 2, &n, 0);
  cr_expect_eq(mp_queue_task_done(q), 0);
  cr_expect_eq(mp_queue_join(q, 0.05), MP_ETIMEDOUT, "one left");
  cr_expect_eq(mp_queue_task_done(q), 0);
  cr_expect_eq(mp_queue_join(q, 1.0), 0);
  cr_expect_eq(mp_queue_task_done(q), MP_EVALUE, "too many");
  mp_queue_free(q);
  mp_queue_free(plain);
}

Test(queue, tuples, .timeout = TS_TIMEOUT) {
  mp_queue *q;
  cr_assert_eq(mp_queue_new(&q, 0), 0);
  mp_args *a, *b;
  mp_args_pack(&a, "isd", 7, "seven", 7.5);
  cr_assert_eq(mp_queue_put_args(q, a, 1.0), 0);
  cr_assert_eq(mp_queue_get_args(q, &b, 1.0), 0);
  cr_expect_eq(mp_args_int(b, 0), 7);
  cr_expect_str_eq(mp_args_str(b, 1), "seven");
  cr_expect_eq(mp_args_double(b, 2), 7.5);
  mp_args_free(b);
  mp_lock *l;
  mp_lock_new(&l);
  mp_args_add_lock(a, l);
  cr_expect_eq(mp_queue_put_args(q, a, 1.0), 0,
               "objects travel through queues (tests/test_handoff.c)");
  cr_assert_eq(mp_queue_get_args(q, &b, 1.0), 0);
  cr_expect(mp_args_lock(b, 3) != NULL && mp_args_lock(b, 3) != l);
  mp_args_free(b);
  /* Bytes that are not a tuple are refused by get_args. */
  mp_queue_put(q, "junk", 4, 1.0);
  cr_expect_eq(mp_queue_get_args(q, &b, 1.0), MP_EPROTO);
  mp_args_free(a);
  mp_lock_free(l);
  mp_queue_free(q);
}

/* ---- between processes -------------------------------------------------- */

/* Put `count` numbered messages, then exit at once: every one arrives. */
static int produce(const mp_args *a) {
  mp_queue *q = mp_args_queue(a, 0);
  int64_t id = mp_args_int(a, 1), count = mp_args_int(a, 2);
  if (q == NULL)
    return 90;
  for (int64_t i = 0; i < count; i++) {
    int64_t msg[2] = {id, i};
    if (mp_queue_put(q, msg, sizeof msg, 60.0) != 0)
      return 91;
  }
  return 0;
}

static void check_nothing_lost_at_exit(const char *method) {
  mp_queue *q;
  cr_assert_eq(mp_queue_new(&q, 0), 0);
  mp_args *a;
  mp_args_pack(&a, "", 0);
  mp_args_add_queue(a, q);
  mp_args_add_int(a, 1);
  mp_args_add_int(a, 1000);
  mp_process *p = ts_start(method, produce, a);
  mp_args_free(a);
  /* The producer has exited before we take anything. */
  cr_expect_eq(ts_join(p), 0);
  cr_expect_eq(mp_queue_qsize(q), 1000);
  for (int64_t i = 0; i < 1000; i++) {
    int64_t msg[2];
    size_t n;
    cr_assert_eq(mp_queue_get_into(q, msg, sizeof msg, &n, 0), 0);
    cr_expect(msg[0] == 1 && msg[1] == i);
  }
  mp_process_free(p);
  mp_queue_free(q);
}
FOR_EACH_METHOD(check_nothing_lost_at_exit)

static int echo_big(const mp_args *a) {
  mp_queue *in = mp_args_queue(a, 0), *out = mp_args_queue(a, 1);
  if (in == NULL || out == NULL)
    return 90;
  for (;;) {
    void *p;
    size_t n;
    int rc = mp_queue_get(in, &p, &n, 60.0);
    if (rc == MP_ECLOSED)
      return 0;
    if (rc != 0 || mp_queue_put(out, p, n, 60.0) != 0)
      return 91;
    mp_free(p);
  }
}

static void check_big_messages_between_processes(const char *method) {
  mp_queue *in, *out;
  cr_assert_eq(mp_queue_new_ex(&in, 0, 8192, 0), 0);
  cr_assert_eq(mp_queue_new_ex(&out, 0, 8192, 0), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_queue(a, in);
  mp_args_add_queue(a, out);
  mp_process *p = ts_start(method, echo_big, a);
  mp_args_free(a);
  size_t sizes[] = {3, 5000, 1 << 20, 0, 8 << 20};
  for (size_t k = 0; k < 5; k++) {
    void *m = ts_make_message(sizes[k], k);
    cr_assert_eq(mp_queue_put(in, m, sizes[k], 60.0), 0, "%s",
                 mp_last_error_message());
    void *back;
    size_t n;
    cr_assert_eq(mp_queue_get(out, &back, &n, 60.0), 0);
    cr_expect_eq(n, sizes[k]);
    cr_expect(ts_is_message(back, n, k), "size %zu intact", sizes[k]);
    free(m);
    mp_free(back);
  }
  mp_queue_close(in);
  cr_expect_eq(ts_join(p), 0);
  mp_process_free(p);
  mp_queue_free(in);
  mp_queue_free(out);
}
FOR_EACH_METHOD(check_big_messages_between_processes)

/* 4 producers x 100,000 messages: each arrives exactly once, and each
 * producer's messages in order. */
#define STRESS_PRODUCERS 4
#define STRESS_COUNT 100000

static void check_stress_queue(const char *method) {
  mp_queue *q;
  cr_assert_eq(mp_queue_new(&q, 1000), 0);
  mp_process *p[STRESS_PRODUCERS];
  for (int i = 0; i < STRESS_PRODUCERS; i++) {
    mp_args *a;
    mp_args_new(&a);
    mp_args_add_queue(a, q);
    mp_args_add_int(a, i);
    mp_args_add_int(a, STRESS_COUNT);
    p[i] = ts_start(method, produce, a);
    mp_args_free(a);
  }
  int64_t next[STRESS_PRODUCERS] = {0};
  for (long k = 0; k < (long)STRESS_PRODUCERS * STRESS_COUNT; k++) {
    int64_t msg[2];
    size_t n;
    int rc = mp_queue_get_into(q, msg, sizeof msg, &n, 60.0);
    cr_assert_eq(rc, 0, "message %ld: %s", k, mp_err_name(rc));
    cr_assert(n == sizeof msg && msg[0] >= 0 && msg[0] < STRESS_PRODUCERS);
    cr_assert_eq(msg[1], next[msg[0]], "producer %lld: lost or duplicated",
                 (long long)msg[0]);
    next[msg[0]]++;
  }
  for (int i = 0; i < STRESS_PRODUCERS; i++) {
    cr_expect_eq(ts_join(p[i]), 0);
    mp_process_free(p[i]);
  }
  cr_expect_eq(mp_queue_qsize(q), 0);
  mp_queue_free(q);
}
FOR_EACH_METHOD(check_stress_queue)

/* The same through pipes: one per producer, read as they come. */
static int produce_pipe(const mp_args *a) {
  mp_conn *c = mp_args_conn(a, 0);
  int64_t id = mp_args_int(a, 1), count = mp_args_int(a, 2);
  if (c == NULL)
    return 90;
  for (int64_t i = 0; i < count; i++) {
    int64_t msg[2] = {id, i};
    if (mp_conn_send_bytes(c, msg, sizeof msg) != 0)
      return 91;
  }
  return 0;
}

static void check_stress_pipe(const char *method) {
  mp_conn *r[STRESS_PRODUCERS], *w;
  mp_process *p[STRESS_PRODUCERS];
  mp_handle h[STRESS_PRODUCERS];
  for (int i = 0; i < STRESS_PRODUCERS; i++) {
    cr_assert_eq(mp_pipe(0, &r[i], &w), 0);
    mp_args *a;
    mp_args_new(&a);
    mp_args_add_conn(a, w);
    mp_args_add_int(a, i);
    mp_args_add_int(a, STRESS_COUNT);
    p[i] = ts_start(method, produce_pipe, a);
    mp_args_free(a);
    mp_conn_free(w);
    h[i] = mp_conn_fileno(r[i]);
  }
  int64_t next[STRESS_PRODUCERS] = {0};
  long total = 0;
  while (total < (long)STRESS_PRODUCERS * STRESS_COUNT) {
    int ready[STRESS_PRODUCERS] = {0};
    cr_assert_gt(mp_wait(h, STRESS_PRODUCERS, 60.0, ready), 0);
    for (int i = 0; i < STRESS_PRODUCERS; i++) {
      while (ready[i] && next[i] < STRESS_COUNT &&
             mp_conn_poll(r[i], 0) == 1) {
        int64_t msg[2];
        size_t n;
        cr_assert_eq(mp_conn_recv_bytes_into(r[i], msg, sizeof msg, &n), 0);
        cr_assert(msg[0] == i && msg[1] == next[i], "pipe %d: lost or "
                  "duplicated", i);
        next[i]++;
        total++;
      }
    }
  }
  for (int i = 0; i < STRESS_PRODUCERS; i++) {
    cr_expect_eq(ts_join(p[i]), 0);
    mp_process_free(p[i]);
    mp_conn_free(r[i]);
  }
}
FOR_EACH_METHOD(check_stress_pipe)

/* ---- faults ------------------------------------------------------------- */

/* A producer killed in the middle of a streamed message: that message is
 * dropped whole; the queue serves everyone else. */
static int put_huge(const mp_args *a) {
  mp_queue *q = mp_args_queue(a, 0);
  if (q == NULL)
    return 90;
  size_t n = 16u << 20;
  void *m = calloc(1, n);
  mp_queue_put(q, m, n, MP_FOREVER); /* blocks: nobody takes the pieces */
  return 91;
}

static int one_message_begun(void *q) { return mp_queue_qsize(q) == 1; }

/* A queue with a 4 KiB ring whose producer was killed after the first
 * piece of a 16 MiB message; *p is that (joined) producer. */
static mp_queue *queue_with_dead_producer(const char *method,
                                          mp_process **p) {
  mp_queue *q;
  cr_assert_eq(mp_queue_new_ex(&q, 0, 4096, 0), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_queue(a, q);
  *p = ts_start(method, put_huge, a);
  mp_args_free(a);
  /* The first piece is in the queue once the message counts. */
  cr_assert(ts_poll_until(one_message_begun, q, 30.0));
  mp_process_kill(*p);
  ts_join(*p);
  return q;
}

static void check_producer_killed_mid_put(const char *method) {
  mp_process *p;
  mp_queue *q = queue_with_dead_producer(method, &p);
  /* A consumer that takes the begun message notices the dead producer
   * and drops it: nothing arrives (not a partial message). */
  void *m;
  size_t n;
  double t0 = ts_now();
  cr_expect_eq(mp_queue_get(q, &m, &n, 1.0), MP_EEMPTY);
  cr_expect_lt(ts_now() - t0, 10.0);
  cr_expect_eq(mp_queue_qsize(q), 0);
  /* And the queue works for the living. */
  cr_assert_eq(mp_queue_put(q, "after", 5, 5.0), 0);
  cr_assert_eq(mp_queue_get(q, &m, &n, 5.0), 0);
  cr_expect_eq(n, 5);
  cr_expect_eq(memcmp(m, "after", 5), 0);
  mp_free(m);
  mp_process_free(p);
  mp_queue_free(q);
}
FOR_EACH_METHOD(check_producer_killed_mid_put)

static void check_producer_killed_then_put(const char *method) {
  mp_process *p;
  mp_queue *q = queue_with_dead_producer(method, &p);
  /* This time the next producer comes first: it takes over the dead
   * one's lock and ends its message. */
  cr_assert_eq(mp_queue_put(q, "after", 5, 5.0), 0, "%s",
               mp_last_error_message());
  void *m;
  size_t n;
  cr_assert_eq(mp_queue_get(q, &m, &n, 5.0), 0);
  cr_expect_eq(n, 5, "the partial message is not delivered");
  mp_free(m);
  cr_expect_eq(mp_queue_qsize(q), 0);
  mp_process_free(p);
  mp_queue_free(q);
}
FOR_EACH_METHOD(check_producer_killed_then_put)

/* A consumer that crashes while copying a message out (its buffer turns
 * read-only part way): the message is not lost, the next consumer gets
 * it whole; one that crashes after taking the first piece of a streamed
 * message: the rest is skipped and the queue goes on. */
static int crash_in_get(const mp_args *a) {
  mp_queue *q = mp_args_queue(a, 0);
  size_t writable = (size_t)mp_args_int(a, 1);
  if (q == NULL)
    return 90;
  size_t total = 64 << 10;
  void *buf = ts_guarded_buffer(writable, total);
  size_t n;
  mp_queue_get_into(q, buf, total, &n, 30.0); /* crashes */
  return 91;
}

typedef struct recv_arg {
  mp_queue *q;
  size_t n;
  int rc;
} recv_arg;

static void get_len(void *arg) {
  recv_arg *r = arg;
  void *m;
  r->rc = mp_queue_get(r->q, &m, &r->n, 30.0);
  if (r->rc == 0)
    mp_free(m);
}

static void check_consumer_killed_mid_get(const char *method,
                                          size_t writable, int survives) {
  mp_queue *q;
  cr_assert_eq(mp_queue_new_ex(&q, 0, 16384, 0), 0);
  /* 3000 bytes: one record.  20000: streamed, 4080-byte pieces. */
  size_t len = survives ? 3000 : 20000;
  void *msg = ts_make_message(len, 9); /* survives: put directly */
  size_t sizes[] = {len};
  putter pt = {q, sizes, 1, -1}; /* seed 0: ts_make_message(len, 0) */
  ts_thread *th = NULL;
  if (survives)
    cr_assert_eq(mp_queue_put(q, msg, len, 5.0), 0);
  else
    th = ts_thread_start(put_all, &pt);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_queue(a, q);
  mp_args_add_int(a, (int64_t)writable);
  mp_process *p = ts_start(method, crash_in_get, a);
  mp_args_free(a);
  int code = ts_join(p);
  cr_expect(code < 0, "the consumer crashed (exit %d)", code);
  void *m;
  size_t n;
  if (survives) {
    cr_assert_eq(mp_queue_get(q, &m, &n, 10.0), 0, "%s",
                 mp_last_error_message());
    cr_expect_eq(n, len);
    cr_expect(ts_is_message(m, n, 9), "the message, whole");
    mp_free(m);
    cr_assert_eq(mp_queue_put(q, "next", 4, 5.0), 0);
    cr_assert_eq(mp_queue_get(q, &m, &n, 10.0), 0);
    cr_expect_eq(n, 4);
    mp_free(m);
  } else {
    /* The next consumer skips the rest of the dead one's message while
     * the producer finishes it, then gets the next message. */
    recv_arg g = {q, 0, 1};
    ts_thread *gt = ts_thread_start(get_len, &g);
    ts_thread_join(th);
    cr_expect_eq(pt.rc, 0);
    cr_assert_eq(mp_queue_put(q, "next", 4, 5.0), 0);
    ts_thread_join(gt);
    cr_expect_eq(g.rc, 0, "%s", mp_err_name(g.rc));
    cr_expect_eq(g.n, 4, "got %zu bytes, not the next message", g.n);
  }
  cr_expect_eq(mp_queue_qsize(q), 0);
  free(msg);
  mp_process_free(p);
  mp_queue_free(q);
}

static void check_consumer_killed_copying(const char *method) {
  check_consumer_killed_mid_get(method, 1000, 1);
}
static void check_consumer_killed_mid_stream(const char *method) {
  /* The first piece (4080 bytes) fits, the second does not. */
  check_consumer_killed_mid_get(method, 6000, 0);
}
FOR_EACH_METHOD(check_consumer_killed_copying)
FOR_EACH_METHOD(check_consumer_killed_mid_stream)

/* A consumer killed while it waits inside get (holding the consumer
 * side) does not wedge the queue. */
static int get_forever(const mp_args *a) {
  mp_queue *q = mp_args_queue(a, 0);
  mp_event *ready = mp_args_event(a, 1);
  if (q == NULL || ready == NULL)
    return 90;
  mp_event_set(ready);
  void *m;
  size_t n;
  mp_queue_get(q, &m, &n, MP_FOREVER);
  return 91;
}

static void check_consumer_killed_waiting(const char *method) {
  mp_queue *q;
  mp_event *ready;
  cr_assert_eq(mp_queue_new(&q, 0), 0);
  cr_assert_eq(mp_event_new(&ready), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_queue(a, q);
  mp_args_add_event(a, ready);
  mp_process *p = ts_start(method, get_forever, a);
  mp_args_free(a);
  cr_assert_eq(mp_event_wait(ready, 30.0), 0);
  mp_process_kill(p);
  ts_join(p);
  cr_assert_eq(mp_queue_put(q, "x", 1, 5.0), 0);
  void *m;
  size_t n;
  cr_assert_eq(mp_queue_get(q, &m, &n, 10.0), 0);
  mp_free(m);
  mp_process_free(p);
  mp_event_free(ready);
  mp_queue_free(q);
}
FOR_EACH_METHOD(check_consumer_killed_waiting)

/* A producer woken with too little room goes back to sleep and must be
 * woken again: a lost wake-up hangs this test.  A fast producer of
 * 64-byte messages keeps the ring full, so one taken message (80 bytes
 * of ring) is often too little for the next (96 with the reserve); a few
 * streamed 1 MiB messages in between. */
static int produce_sizes(const mp_args *a) {
  mp_queue *q = mp_args_queue(a, 0);
  int64_t count = mp_args_int(a, 1);
  unsigned char *buf = malloc(1 << 20);
  if (q == NULL || buf == NULL)
    return 90;
  for (int64_t i = 0; i < count; i++) {
    size_t n = i % 100000 == 7 ? (size_t)1 << 20 : 64;
    memcpy(buf, &i, sizeof i);
    if (mp_queue_put(q, buf, n, 60.0) != 0)
      return 91;
  }
  free(buf);
  return 0;
}

static void check_stress_wakeups(const char *method) {
  mp_queue *q;
  cr_assert_eq(mp_queue_new(&q, 0), 0);
#if defined(_WIN32)
  const int64_t count = 200000; /* Wine's semaphores are slow */
#else
  const int64_t count = 1000000;
#endif
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_queue(a, q);
  mp_args_add_int(a, count);
  mp_process *p = ts_start(method, produce_sizes, a);
  mp_args_free(a);
  unsigned char *buf = malloc(1 << 20);
  cr_assert_not_null(buf);
  for (int64_t i = 0; i < count; i++) {
    size_t n;
    int rc = mp_queue_get_into(q, buf, (size_t)1 << 20, &n, 20.0);
    cr_assert_eq(rc, 0, "message %lld: %s", (long long)i, mp_err_name(rc));
    int64_t seq;
    memcpy(&seq, buf, sizeof seq);
    cr_assert(seq == i && n == (i % 100000 == 7 ? (size_t)1 << 20 : 64),
              "message %lld: got %lld (%zu bytes)", (long long)i,
              (long long)seq, n);
  }
  free(buf);
  cr_expect_eq(ts_join(p), 0);
  mp_process_free(p);
  mp_queue_free(q);
}
FOR_EACH_METHOD(check_stress_wakeups)
