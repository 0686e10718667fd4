/*
 * auth.c - authenticating the other end of a connection with a shared
 * key (Python's multiprocessing.connection deliver_challenge and
 * answer_challenge, the 3.12 protocol).
 *
 * The challenger sends "#CHALLENGE#" + "{sha256}" + 40 random bytes; the
 * other side answers "{sha256}" + HMAC-SHA256(key, "{sha256}" + random);
 * the challenger compares in constant time and sends "#WELCOME#" or
 * "#FAILURE#".  Mutual authentication is each side doing both, the
 * server challenging first.  Every message read here is bounded (a
 * larger one is a failure, left unread) and every byte of it is waited
 * for at most until the one deadline of the whole handshake, so a peer
 * that sends garbage, nothing, or part of a message cannot hold the
 * other side.
 */
#include <string.h>

#include "internal.h"
#include "shared.h"

#define CHALLENGE "#CHALLENGE#"
#define WELCOME "#WELCOME#"
#define FAILURE "#FAILURE#"
#define DIGEST_TAG "{sha256}"
#define NONCE_SIZE 40
#define AUTH_MSG_MAX 256

/* Constant-time comparison of two equal-length buffers: 1 if equal. */
static int same_bytes(const unsigned char *a, const unsigned char *b,
                      size_t n) {
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < n; i++)
    diff |= (unsigned char)(a[i] ^ b[i]);
  return diff == 0;
}

static int check_args(mp_conn *c, const void *key, size_t key_n,
                      double timeout, const char *what) {
  if (c == NULL || (key == NULL && key_n > 0))
    return mp__error(MP_EINVAL, "%s: NULL argument", what);
  if (key_n == 0)
    return mp__error(MP_EINVAL, "%s: the authkey is empty", what);
  return mp__check_timeout(timeout);
}

/* What bounds a handshake: its deadline (negative: none) and a stop
 * callback (may be NULL). */
typedef struct bound {
  double deadline;
  int (*stop)(void *);
  void *arg;
} bound;

/* Receive one message of at most AUTH_MSG_MAX bytes, all of it within
 * the bound.  MP_ETIMEDOUT, MP_EAUTH (too large), or what the connection
 * says (MP_EEOF ...). */
static int recv_bounded(mp_conn *c, unsigned char *buf, size_t *n,
                        const bound *b, const char *what) {
  int rc = mp__conn_recv_bounded(c, buf, AUTH_MSG_MAX, n, b->deadline,
                                 b->stop, b->arg);
  if (rc == MP_ERANGE)
    return mp__error(MP_EAUTH, "%s: message too long (%zu bytes)", what,
                     *n);
  if (rc == MP_ETIMEDOUT)
    return mp__error(rc, "%s: no whole answer in time", what);
  return rc;
}

static int deliver(mp_conn *c, const void *key, size_t key_n,
                   const bound *b, const char *what) {
  int rc;
  unsigned char msg[sizeof CHALLENGE - 1 + sizeof DIGEST_TAG - 1 +
                    NONCE_SIZE];
  size_t pre = sizeof CHALLENGE - 1, tag = sizeof DIGEST_TAG - 1;
  memcpy(msg, CHALLENGE, pre);
  memcpy(msg + pre, DIGEST_TAG, tag);
  if ((rc = mpi_random(msg + pre + tag, NONCE_SIZE)) != 0)
    return rc;
  unsigned char want[MPI_SHA256_SIZE];
  if ((rc = mpi_hmac_sha256(key, key_n, msg + pre, tag + NONCE_SIZE,
                            want)) != 0 ||
      (rc = mp_conn_send_bytes(c, msg, sizeof msg)) != 0)
    return rc;
  unsigned char got[AUTH_MSG_MAX];
  size_t n = 0;
  if ((rc = recv_bounded(c, got, &n, b, what)) != 0)
    return rc;
  int ok = n == tag + MPI_SHA256_SIZE && memcmp(got, DIGEST_TAG, tag) == 0 &&
           same_bytes(got + tag, want, MPI_SHA256_SIZE);
  if (!ok) {
    mp_conn_send_bytes(c, FAILURE, sizeof FAILURE - 1); /* best effort */
    return mp__error(MP_EAUTH, "%s: the other end's digest is wrong", what);
  }
  return mp_conn_send_bytes(c, WELCOME, sizeof WELCOME - 1);
}

static int answer(mp_conn *c, const void *key, size_t key_n,
                  const bound *b, const char *what) {
  int rc;
  size_t pre = sizeof CHALLENGE - 1, tag = sizeof DIGEST_TAG - 1;
  unsigned char msg[AUTH_MSG_MAX];
  size_t n = 0;
  if ((rc = recv_bounded(c, msg, &n, b, what)) != 0)
    return rc;
  /* Only the digest this side knows, with a nonce of a sane length. */
  if (n < pre + tag + 20 || memcmp(msg, CHALLENGE, pre) != 0 ||
      memcmp(msg + pre, DIGEST_TAG, tag) != 0)
    return mp__error(MP_EAUTH, "%s: not a challenge", what);
  unsigned char reply[sizeof DIGEST_TAG - 1 + MPI_SHA256_SIZE];
  memcpy(reply, DIGEST_TAG, tag);
  if ((rc = mpi_hmac_sha256(key, key_n, msg + pre, n - pre, reply + tag)) !=
          0 ||
      (rc = mp_conn_send_bytes(c, reply, sizeof reply)) != 0)
    return rc;
  if ((rc = recv_bounded(c, msg, &n, b, what)) != 0)
    return rc;
  if (n == sizeof WELCOME - 1 && memcmp(msg, WELCOME, n) == 0)
    return 0;
  return mp__error(MP_EAUTH, "%s: the other end refused our digest", what);
}

int mp_conn_deliver_challenge(mp_conn *c, const void *key, size_t key_n,
                              double timeout) {
  const char *what = "mp_conn_deliver_challenge";
  int rc = check_args(c, key, key_n, timeout, what);
  if (rc != 0)
    return rc;
  bound b = {mp__deadline(timeout), NULL, NULL};
  return deliver(c, key, key_n, &b, what);
}

int mp_conn_answer_challenge(mp_conn *c, const void *key, size_t key_n,
                             double timeout) {
  const char *what = "mp_conn_answer_challenge";
  int rc = check_args(c, key, key_n, timeout, what);
  if (rc != 0)
    return rc;
  bound b = {mp__deadline(timeout), NULL, NULL};
  return answer(c, key, key_n, &b, what);
}

int mp__conn_handshake_server(mp_conn *c, const void *key, size_t key_n,
                              double deadline, int (*stop)(void *),
                              int (*admit)(void *), void *arg) {
  bound b = {deadline, stop, arg};
  int rc = deliver(c, key, key_n, &b, "mp_conn_deliver_challenge");
  if (rc == 0 && admit != NULL && admit(arg) != 0)
    rc = mp__error(MP_EAUTH, "no room for another connection");
  return rc != 0 ? rc : answer(c, key, key_n, &b, "mp_conn_answer_challenge");
}
