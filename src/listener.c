/*
 * listener.c - listeners and clients (Python's Listener and Client) over
 * the platform's local sockets / named pipes and TCP (platform.h part
 * 10), with the authkey handshake of auth.c.
 *
 * Closing while another thread waits in accept: close shuts the platform
 * listener down (the waiting accept returns MP_ECLOSED) and the last of
 * the two to leave releases it.  An accept already in a client's
 * handshake notices the close within a slice (auth.c's stop callback)
 * and returns MP_ECLOSED too, rather than waiting out the handshake.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define BOUND_MAX 512
#define DEFAULT_BACKLOG 16
#define DEFAULT_HANDSHAKE 10.0
#define AUTHKEY_MAX 4096

struct mp_listener {
  mpi_mutex *mu;
  mpi_listener *pl; /* NULL once released */
  int family;
  int closed, accepting;
  double handshake;
  unsigned char *key;
  size_t key_n;
  char address[BOUND_MAX];
  int has_last;             /* a connection was accepted (mu) */
  char last[BOUND_MAX];     /* its peer's address (mu) */
};

/* The family an address stands for (MP_AF_DEFAULT: inferred). */
static int infer_family(const char *address, int family) {
  if (family != MP_AF_DEFAULT)
    return family;
  /* "@name" (a Linux abstract socket) is local even with a colon. */
  if (address == NULL || address[0] == '\0' || address[0] == '@')
    return MP_AF_LOCAL;
  char host[256];
  unsigned port;
  if (strchr(address, '/') == NULL && strchr(address, '\\') == NULL &&
      mp__split_host_port(address, host, sizeof host, &port) == 0)
    return address[0] == '[' ? MP_AF_INET6 : MP_AF_INET;
  mp__clear_error();
  return MP_AF_LOCAL;
}

static int to_mpi_family(int family) {
  switch (family) {
  case MP_AF_LOCAL:
    return MPI_AF_LOCAL;
  case MP_AF_INET:
    return MPI_AF_INET;
  case MP_AF_INET6:
    return MPI_AF_INET6;
  default:
    return 0;
  }
}

static int check_key(const void *key, size_t n, const char *what) {
  if (key == NULL && n > 0)
    return mp__error(MP_EINVAL, "%s: NULL authkey", what);
  if (n > AUTHKEY_MAX)
    return mp__error(MP_EINVAL, "%s: authkey longer than %d bytes", what,
                     AUTHKEY_MAX);
  return 0;
}

int mp_listener_new(mp_listener **out, const char *address, int family,
                    int backlog, const void *authkey, size_t authkey_n) {
  const char *what = "mp_listener_new";
  if (out == NULL)
    return mp__error(MP_EINVAL, "%s: NULL out", what);
  *out = NULL;
  int rc = check_key(authkey, authkey_n, what);
  if (rc != 0)
    return rc;
  if (backlog < 0)
    return mp__error(MP_EINVAL, "%s: negative backlog", what);
  family = infer_family(address, family);
  int pf = to_mpi_family(family);
  if (pf == 0)
    return mp__error(MP_EINVAL, "%s: unknown family %d", what, family);
  /* No address for TCP: a free port on the loopback, as Python's
   * Listener(family='AF_INET') binds ('localhost', 0). */
  if (address == NULL && family == MP_AF_INET)
    address = "127.0.0.1:0";
  else if (address == NULL && family == MP_AF_INET6)
    address = "[::1]:0";
  mp_listener *l = calloc(1, sizeof *l);
  if (l == NULL)
    return mp__error(MP_ENOMEM, "%s: out of memory", what);
  l->family = family;
  l->handshake = DEFAULT_HANDSHAKE;
  if (authkey_n > 0) {
    if ((l->key = malloc(authkey_n)) == NULL) {
      free(l);
      return mp__error(MP_ENOMEM, "%s: out of memory", what);
    }
    memcpy(l->key, authkey, authkey_n);
    l->key_n = authkey_n;
  }
  if ((rc = mpi_mutex_new(&l->mu)) != 0 ||
      (rc = mpi_listen(pf, address, backlog ? backlog : DEFAULT_BACKLOG,
                       &l->pl, l->address, sizeof l->address)) != 0) {
    if (l->mu)
      mpi_mutex_free(l->mu);
    free(l->key);
    free(l);
    return rc;
  }
  *out = l;
  return 0;
}

/* Release the platform listener if nobody is in accept (mu held). */
static void release_if_idle(mp_listener *l) {
  if (l->closed && !l->accepting && l->pl != NULL) {
    mpi_listener_close(l->pl);
    l->pl = NULL;
  }
}

/* The handshake's stop callback: has the listener been closed? */
static int listener_closed(void *arg) {
  mp_listener *l = arg;
  mpi_mutex_lock(l->mu);
  int closed = l->closed;
  mpi_mutex_unlock(l->mu);
  return closed;
}

int mp_listener_accept(mp_listener *l, double timeout, mp_conn **out) {
  const char *what = "mp_listener_accept";
  if (l == NULL || out == NULL)
    return mp__error(MP_EINVAL, "%s: NULL argument", what);
  *out = NULL;
  int rc = mp__check_timeout(timeout);
  if (rc != 0)
    return rc;
  mpi_mutex_lock(l->mu);
  if (l->closed || l->accepting) {
    int busy = !l->closed;
    mpi_mutex_unlock(l->mu);
    return busy ? mp__error(MP_ESTATE, "%s: another thread is accepting",
                            what)
                : mp__error(MP_ECLOSED, "%s: the listener is closed", what);
  }
  l->accepting = 1;
  mpi_mutex_unlock(l->mu);
  mpi_fd h = MPI_BAD_FD;
  mp_conn *c = NULL;
  rc = mpi_accept(l->pl, timeout, &h);
  if (rc == 0) {
    /* Set before the handshake, as Python's: a refused client is the
     * last one accepted too. */
    mpi_mutex_lock(l->mu);
    mpi_listener_peer(l->pl, l->last, sizeof l->last);
    l->has_last = 1;
    mpi_mutex_unlock(l->mu);
    rc = mp__conn_wrap(h, &c);
  }
  if (rc == 0 && l->key_n > 0) {
    /* The client proves it knows the key, then we prove it: a client
     * that stalls, sends garbage or part of a message is dropped once
     * the handshake time (for the whole handshake) is over, or as soon
     * as another thread closes the listener. */
    mpi_mutex_lock(l->mu);
    double handshake = l->handshake;
    mpi_mutex_unlock(l->mu);
    rc = mp__conn_handshake_server(c, l->key, l->key_n,
                                   mpi_now() + handshake, listener_closed,
                                   NULL, l);
    if (rc != 0) {
      char msg[256];
      mp__strlcpy(msg, mp_last_error_message(), sizeof msg);
      mp_conn_free(c);
      c = NULL;
      rc = listener_closed(l)
               ? mp__error(MP_ECLOSED, "%s: the listener was closed", what)
               : mp__error(MP_EAUTH, "%s: client refused: %s", what, msg);
    }
  }
  mpi_mutex_lock(l->mu);
  l->accepting = 0;
  release_if_idle(l);
  mpi_mutex_unlock(l->mu);
  *out = c;
  return rc;
}

const char *mp_listener_address(const mp_listener *l) {
  return l ? l->address : NULL;
}

int mp_listener_family(const mp_listener *l) { return l ? l->family : 0; }

int mp_listener_last_accepted(const mp_listener *l, char *buf, size_t cap) {
  const char *what = "mp_listener_last_accepted";
  if (l == NULL || buf == NULL || cap == 0)
    return mp__error(MP_EINVAL, "%s: NULL argument or no room", what);
  buf[0] = '\0';
  int rc = 0;
  mpi_mutex_lock(l->mu);
  if (!l->has_last)
    rc = mp__error(MP_ESTATE, "%s: no connection accepted yet", what);
  else if (strlen(l->last) >= cap)
    rc = mp__error(MP_ERANGE, "%s: the address needs %zu bytes", what,
                   strlen(l->last) + 1);
  else
    memcpy(buf, l->last, strlen(l->last) + 1);
  mpi_mutex_unlock(l->mu);
  return rc;
}

int mp_listener_set_handshake_timeout(mp_listener *l, double timeout) {
  if (l == NULL || !(timeout > 0))
    return mp__error(MP_EINVAL, "handshake timeout must be > 0 s");
  mpi_mutex_lock(l->mu);
  l->handshake = timeout;
  mpi_mutex_unlock(l->mu);
  return 0;
}

int mp_listener_close(mp_listener *l) {
  if (l == NULL)
    return mp__error(MP_EINVAL, "mp_listener_close: NULL");
  mpi_mutex_lock(l->mu);
  if (!l->closed) {
    l->closed = 1;
    if (l->pl != NULL)
      mpi_listener_shutdown(l->pl);
  }
  release_if_idle(l);
  mpi_mutex_unlock(l->mu);
  return 0;
}

void mp_listener_free(mp_listener *l) {
  if (l == NULL)
    return;
  mp_listener_close(l);
  /* An accept still running in another thread would use l: the caller
   * must have waited for it (as for any object it frees). */
  if (l->pl != NULL)
    mpi_listener_close(l->pl);
  mpi_mutex_free(l->mu);
  if (l->key != NULL) {
    memset(l->key, 0, l->key_n);
    free(l->key);
  }
  free(l);
}

int mp_client(mp_conn **out, const char *address, int family,
              const void *authkey, size_t authkey_n, double timeout) {
  return mp__client(out, address, family, authkey, authkey_n, timeout, NULL);
}

int mp__client(mp_conn **out, const char *address, int family,
               const void *authkey, size_t authkey_n, double timeout,
               int *cause) {
  const char *what = "mp_client";
  if (cause != NULL)
    *cause = 0;
  if (out == NULL)
    return mp__error(MP_EINVAL, "%s: NULL out", what);
  *out = NULL;
  int rc = check_key(authkey, authkey_n, what);
  if (rc == 0)
    rc = mp__check_timeout(timeout);
  if (rc != 0)
    return rc;
  if (address == NULL || address[0] == '\0')
    return mp__error(MP_EINVAL, "%s: no address", what);
  int pf = to_mpi_family(infer_family(address, family));
  if (pf == 0)
    return mp__error(MP_EINVAL, "%s: unknown family %d", what, family);
  double deadline = timeout < 0 ? -1 : mpi_now() + timeout;
  mpi_fd h;
  mp_conn *c;
  if ((rc = mpi_connect(pf, address, timeout, &h)) != 0 ||
      (rc = mp__conn_wrap(h, &c)) != 0)
    return rc;
  if (authkey_n > 0) {
    /* Without a deadline, a server that never challenges (one without an
     * authkey, or not an mproc listener) still cannot hold us forever. */
    if (deadline < 0)
      deadline = mpi_now() + DEFAULT_HANDSHAKE;
    rc = mp_conn_answer_challenge(c, authkey, authkey_n,
                                  mp__time_left(deadline));
    if (rc == 0)
      rc = mp_conn_deliver_challenge(c, authkey, authkey_n,
                                     mp__time_left(deadline));
    if (rc != 0) {
      int code = rc == MP_ETIMEDOUT ? rc : MP_EAUTH;
      if (cause != NULL)
        *cause = rc;
      char msg[256];
      mp__strlcpy(msg, mp_last_error_message(), sizeof msg);
      mp_conn_free(c);
      return mp__error(code, "%s: %s", what, msg);
    }
  }
  *out = c;
  return 0;
}
