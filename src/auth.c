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
 * larger one is a failure, left unread) and waited for at most until the
 * deadline, so a peer that sends garbage or nothing cannot hold a server.
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

/* Receive one message of at most AUTH_MSG_MAX bytes before `deadline`
 * (negative: none).  MP_ETIMEDOUT, MP_EAUTH (too large), or what the
 * connection says (MP_EEOF ...). */
static int recv_bounded(mp_conn *c, unsigned char *buf, size_t *n,
                        double deadline, const char *what) {
  int rc = mp_conn_poll(c, mp__time_left(deadline));
  if (rc < 0)
    return rc;
  if (rc == 0)
    return mp__error(MP_ETIMEDOUT, "%s: no answer in time", what);
  rc = mp_conn_recv_bytes_into(c, buf, AUTH_MSG_MAX, n);
  if (rc == MP_ERANGE)
    return mp__error(MP_EAUTH, "%s: message too long (%zu bytes)", what,
                     *n);
  return rc;
}

int mp_conn_deliver_challenge(mp_conn *c, const void *key, size_t key_n,
                              double timeout) {
  const char *what = "mp_conn_deliver_challenge";
  int rc = check_args(c, key, key_n, timeout, what);
  if (rc != 0)
    return rc;
  double deadline = mp__deadline(timeout);
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
  if ((rc = recv_bounded(c, got, &n, deadline, what)) != 0)
    return rc;
  int ok = n == tag + MPI_SHA256_SIZE && memcmp(got, DIGEST_TAG, tag) == 0 &&
           same_bytes(got + tag, want, MPI_SHA256_SIZE);
  if (!ok) {
    mp_conn_send_bytes(c, FAILURE, sizeof FAILURE - 1); /* best effort */
    return mp__error(MP_EAUTH, "%s: the other end's digest is wrong", what);
  }
  return mp_conn_send_bytes(c, WELCOME, sizeof WELCOME - 1);
}

int mp_conn_answer_challenge(mp_conn *c, const void *key, size_t key_n,
                             double timeout) {
  const char *what = "mp_conn_answer_challenge";
  int rc = check_args(c, key, key_n, timeout, what);
  if (rc != 0)
    return rc;
  double deadline = mp__deadline(timeout);
  size_t pre = sizeof CHALLENGE - 1, tag = sizeof DIGEST_TAG - 1;
  unsigned char msg[AUTH_MSG_MAX];
  size_t n = 0;
  if ((rc = recv_bounded(c, msg, &n, deadline, what)) != 0)
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
  if ((rc = recv_bounded(c, msg, &n, deadline, what)) != 0)
    return rc;
  if (n == sizeof WELCOME - 1 && memcmp(msg, WELCOME, n) == 0)
    return 0;
  return mp__error(MP_EAUTH, "%s: the other end refused our digest", what);
}
