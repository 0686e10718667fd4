/*
 * test_auth.c - authenticating a connection with a shared key
 * (mp_conn_deliver_challenge / mp_conn_answer_challenge): mutual success
 * with a child under each start method, a wrong key failing on both
 * sides, a silent peer timing out, garbage, oversized and truncated
 * answers, a peer that goes away, bad arguments, and hostile peers: part
 * of a frame then silence, a frame sent a byte at a time for longer than
 * the timeout.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods.h"
#include "mproc.h"
#include "support.h"

TS_SUITE(auth);

static const char key_a[] = "the key both sides know";
static const char key_b[] = "a different key";

/* The accepting side: challenge the parent, then answer its challenge,
 * with the key given as argument 1, then receive "after".  Exit code: 0,
 * or 10 + -rc of the first step that failed (20 + for the second, 40 for
 * the message). */
static int server(const mp_args *a) {
  mp_conn *c = mp_args_conn(a, 0);
  const char *key = mp_args_str(a, 1);
  if (c == NULL || key == NULL)
    return 99;
  int rc = mp_conn_deliver_challenge(c, key, strlen(key), 20.0);
  if (rc != 0)
    return 10 - rc;
  rc = mp_conn_answer_challenge(c, key, strlen(key), 20.0);
  if (rc != 0)
    return 20 - rc;
  /* Authenticated: the connection carries messages as before. */
  char buf[16];
  size_t n = 0;
  if (mp_conn_recv_bytes_into(c, buf, sizeof buf, &n) != 0 || n != 5 ||
      memcmp(buf, "after", 5) != 0)
    return 40;
  return 0;
}

static mp_process *start_server(const char *method, mp_conn **mine,
                                const char *key) {
  mp_conn *theirs;
  cr_assert_eq(mp_pipe(1, mine, &theirs), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_conn(a, theirs);
  mp_args_add_str(a, key);
  mp_process *p = ts_start(method, server, a);
  mp_args_free(a);
  mp_conn_free(theirs);
  return p;
}

static void check_mutual(const char *method) {
  mp_conn *c;
  mp_process *p = start_server(method, &c, key_a);
  cr_assert_eq(mp_conn_answer_challenge(c, key_a, strlen(key_a), 20.0), 0,
               "%s", mp_last_error_message());
  cr_assert_eq(mp_conn_deliver_challenge(c, key_a, strlen(key_a), 20.0), 0,
               "%s", mp_last_error_message());
  cr_assert_eq(mp_conn_send_bytes(c, "after", 5), 0);
  cr_expect_eq(ts_join(p), 0, "server: %s", mp_process_error(p));
  mp_process_free(p);
  mp_conn_free(c);
}
FOR_EACH_METHOD(check_mutual)

static void check_wrong_key(const char *method) {
  mp_conn *c;
  mp_process *p = start_server(method, &c, key_b);
  /* Our digest (key_a) is refused by the server (key_b): both sides say
   * MP_EAUTH, and the server never goes on to its second step. */
  cr_assert_eq(mp_conn_answer_challenge(c, key_a, strlen(key_a), 20.0),
               MP_EAUTH);
  cr_expect_eq(ts_join(p), 10 - MP_EAUTH, "server: %s", mp_process_error(p));
  mp_process_free(p);
  mp_conn_free(c);
}
FOR_EACH_METHOD(check_wrong_key)

/* A digest of the right form but the wrong value: the challenger says
 * MP_EAUTH and sends #FAILURE#. */
Test(auth, wrong_digest_gets_failure) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  char answer[8 + 32];
  memcpy(answer, "{sha256}", 8);
  memset(answer + 8, 0x5a, 32);
  cr_assert_eq(mp_conn_send_bytes(a, answer, sizeof answer), 0);
  cr_assert_eq(mp_conn_deliver_challenge(b, key_a, strlen(key_a), 5.0),
               MP_EAUTH);
  void *m;
  size_t n;
  cr_assert_eq(mp_conn_recv_bytes(a, &m, &n), 0);
  cr_expect(n == 19 + 40 && memcmp(m, "#CHALLENGE#{sha256}", 19) == 0,
            "the challenge: %zu bytes", n);
  mp_free(m);
  cr_assert_eq(mp_conn_recv_bytes(a, &m, &n), 0);
  cr_expect(n == 9 && memcmp(m, "#FAILURE#", 9) == 0);
  mp_free(m);
  mp_conn_free(a);
  mp_conn_free(b);
}

Test(auth, silent_peer_times_out) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  double t0 = ts_now();
  cr_expect_eq(mp_conn_deliver_challenge(a, key_a, strlen(key_a), 0.2),
               MP_ETIMEDOUT);
  cr_expect_eq(mp_conn_answer_challenge(a, key_a, strlen(key_a), 0.2),
               MP_ETIMEDOUT); /* b's end holds a challenge, not for a */
  double took = ts_now() - t0;
  cr_expect(took >= 0.15 && took < 5.0, "took %.3f s", took);
  mp_conn_free(a);
  mp_conn_free(b);
}

typedef struct wire_msg {
  const void *p;
  size_t n;
} wire_msg;

typedef int (*auth_step)(mp_conn *c, const void *key, size_t key_n,
                         double timeout);

/* Each message, sent by the other end, makes `step` fail with MP_EAUTH. */
static void check_refused(auth_step step, const wire_msg *msgs, size_t n,
                          const char *what) {
  for (size_t i = 0; i < n; i++) {
    mp_conn *a, *b;
    cr_assert_eq(mp_pipe(1, &a, &b), 0);
    cr_assert_eq(mp_conn_send_bytes(b, msgs[i].p, msgs[i].n), 0);
    cr_expect_eq(step(a, key_a, strlen(key_a), 5.0), MP_EAUTH, "%s %zu",
                 what, i);
    mp_conn_free(a);
    mp_conn_free(b);
  }
}

Test(auth, bad_answers_are_refused) {
  char big[300];
  memset(big, 'z', sizeof big);
  memcpy(big, "{sha256}", 8);
  wire_msg answers[] = {{"", 0},
                        {"garbage", 7},
                        {"{sha256}", 8},
                        {"{sha256}0123456789012345678901234567890", 39},
                        {"{md5}0123456789012345678901234567890123", 40},
                        {big, sizeof big}};
  check_refused(mp_conn_deliver_challenge, answers,
                sizeof answers / sizeof answers[0], "answer");
}

Test(auth, bad_challenges_are_refused) {
  char big[300];
  memset(big, 'z', sizeof big);
  memcpy(big, "#CHALLENGE#{sha256}", 19);
  wire_msg challenges[] = {
      {"", 0},
      {"#CHALLENGE#", 11},
      {"#CHALLENGE#{sha256}short", 24},
      {"#CHALLENGE#{md5}0123456789012345678901234567890", 47},
      {"#WELCOME#", 9},
      {big, sizeof big}};
  check_refused(mp_conn_answer_challenge, challenges,
                sizeof challenges / sizeof challenges[0], "challenge");
}

Test(auth, right_digest_but_no_welcome) {
  /* A challenger that answers our digest with anything but #WELCOME#. */
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  char ch[19 + 40];
  memcpy(ch, "#CHALLENGE#{sha256}", 19);
  memset(ch + 19, 7, 40);
  cr_assert_eq(mp_conn_send_bytes(b, ch, sizeof ch), 0);
  cr_assert_eq(mp_conn_send_bytes(b, "#WELCOME!", 9), 0);
  cr_expect_eq(mp_conn_answer_challenge(a, key_a, strlen(key_a), 5.0),
               MP_EAUTH);
  mp_conn_free(a);
  mp_conn_free(b);
}

Test(auth, peer_goes_away) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  mp_conn_close(b);
  int rc = mp_conn_deliver_challenge(a, key_a, strlen(key_a), 5.0);
  cr_expect(rc == MP_EPIPE || rc == MP_EEOF, "%s", mp_err_name(rc));
  cr_expect_eq(mp_conn_answer_challenge(a, key_a, strlen(key_a), 5.0),
               MP_EEOF);
  mp_conn_free(a);
  mp_conn_free(b);
}

Test(auth, bad_arguments) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  cr_expect_eq(mp_conn_deliver_challenge(NULL, "k", 1, 1.0), MP_EINVAL);
  cr_expect_eq(mp_conn_answer_challenge(NULL, "k", 1, 1.0), MP_EINVAL);
  cr_expect_eq(mp_conn_deliver_challenge(a, "", 0, 1.0), MP_EINVAL);
  cr_expect_eq(mp_conn_answer_challenge(a, NULL, 3, 1.0), MP_EINVAL);
  cr_expect_eq(mp_conn_deliver_challenge(a, "k", 1, -2.0), MP_EINVAL);
  mp_conn_close(a);
  cr_expect_eq(mp_conn_deliver_challenge(a, "k", 1, 1.0), MP_ECLOSED);
  mp_conn_free(a);
  mp_conn_free(b);
}

/* ---- hostile peers: part of a frame, a frame that never ends ---------- */

/* Frames a hostile peer starts and never finishes: one byte of the
 * length; a header announcing a challenge (59 bytes) and the first few
 * of them. */
static const unsigned char length_byte[] = {0};
static const unsigned char header_and_part[] = {0,   0,   0,   59,  '#',
                                                'C', 'H', 'A', 'L', 'L'};

/* `step` with a 0.3 s timeout against a peer that has sent p[0, n) and
 * falls silent: MP_ETIMEDOUT once the time is over (every byte of the
 * handshake is under its one deadline, not only the first), and the
 * connection is out of step from then on (MP_EPROTO). */
static void check_partial(auth_step step, const void *p, size_t n,
                          const char *what) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  ts_raw_write(mp_conn_fileno(b), p, n);
  double t0 = ts_now();
  int rc = step(a, key_a, strlen(key_a), 0.3);
  double took = ts_now() - t0;
  cr_expect_eq(rc, MP_ETIMEDOUT, "%s: %s (%s)", what, mp_err_name(rc),
               mp_last_error_message());
  cr_expect(took >= 0.25 && took < 3.0, "%s: took %.2f s (timeout 0.3 s)",
            what, took);
  char buf[8];
  size_t got = 0;
  rc = mp_conn_recv_bytes_into(a, buf, sizeof buf, &got);
  cr_expect_eq(rc, MP_EPROTO, "%s: then a receive gave %s", what,
               mp_err_name(rc));
  mp_conn_free(a);
  mp_conn_free(b);
}

Test(auth, partial_frames_time_out, .timeout = 30) {
  check_partial(mp_conn_deliver_challenge, length_byte, sizeof length_byte,
                "answer: one byte of the length");
  check_partial(mp_conn_deliver_challenge, header_and_part,
                sizeof header_and_part, "answer: a header and part of it");
  check_partial(mp_conn_answer_challenge, length_byte, sizeof length_byte,
                "challenge: one byte of the length");
  check_partial(mp_conn_answer_challenge, header_and_part,
                sizeof header_and_part, "challenge: a header and part of it");
}

/* A peer that sends a whole frame one byte every 0.05 s (until told to
 * stop, or its connection goes). */
typedef struct slow_peer {
  mp_handle h;
  const unsigned char *p;
  size_t n;
  mp_event *stop;
} slow_peer;

static void slow_peer_main(void *arg) {
  slow_peer *s = arg;
  for (size_t i = 0; i < s->n; i++) {
    if (ts_raw_try_write(s->h, s->p + i, 1) != 0)
      break;
    /* The pace is what is under test, not a wait for an event: the
     * event only ends the sender early. */
    if (mp_event_wait(s->stop, 0.05) == 0)
      break;
  }
}

/* `step` with a 0.5 s timeout against a peer that sends the frame
 * p[0, n) a byte at a time, taking several seconds in all: the step
 * must end when its time is over, not when the frame does. */
static void check_slow(auth_step step, const unsigned char *p, size_t n,
                       const char *what) {
  mp_conn *a, *b;
  cr_assert_eq(mp_pipe(1, &a, &b), 0);
  slow_peer s = {mp_conn_fileno(b), p, n, NULL};
  cr_assert_eq(mp_event_new(&s.stop), 0);
  ts_thread *t = ts_thread_start(slow_peer_main, &s);
  double t0 = ts_now();
  int rc = step(a, key_a, strlen(key_a), 0.5);
  double took = ts_now() - t0;
  cr_expect_eq(rc, MP_ETIMEDOUT, "%s: %s (%s)", what, mp_err_name(rc),
               mp_last_error_message());
  cr_expect(took >= 0.45 && took < 1.5,
            "%s: took %.2f s (timeout 0.5 s, the frame %.1f s)", what, took,
            0.05 * (double)n);
  mp_event_set(s.stop);
  ts_thread_join(t);
  mp_event_free(s.stop);
  mp_conn_free(a);
  mp_conn_free(b);
}

Test(auth, slow_sender_is_bounded_as_a_whole, .timeout = 30) {
  /* An answer of the right form (a wrong digest): 44 bytes, 2.2 s. */
  unsigned char answer[4 + 8 + 32] = {0, 0, 0, 40};
  memcpy(answer + 4, "{sha256}", 8);
  memset(answer + 12, 0x5a, 32);
  check_slow(mp_conn_deliver_challenge, answer, sizeof answer,
             "a slow answer");
  /* A challenge: 63 bytes, 3.15 s. */
  unsigned char challenge[4 + 19 + 40] = {0, 0, 0, 59};
  memcpy(challenge + 4, "#CHALLENGE#{sha256}", 19);
  memset(challenge + 23, 7, 40);
  check_slow(mp_conn_answer_challenge, challenge, sizeof challenge,
             "a slow challenge");
}
