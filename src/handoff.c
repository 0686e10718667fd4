/*
 * handoff.c - objects through a connection or a queue (Python's
 * resource_sharer with DupFd / DupHandle, and reduction.send_handle).
 *
 * The bytes of a tuple cannot carry the OS handles its objects hold.  So
 * the sender keeps a copy of each handle (mpi_handle_dup) in a table,
 * under a fresh id and a random token, and the message carries a ticket
 * instead: the sender's pid, the id, the token, the handle count and the
 * address of the sender's sharer, a listener (MPI_AF_LOCAL: this user
 * only; on Linux an abstract name, which leaves nothing behind) that one
 * thread serves.  The receiver connects, asks with the id and the token,
 * and gets the handles (POSIX: SCM_RIGHTS; Windows: the sharer
 * duplicates them into the receiver).  The entry goes with the answer, so
 * a ticket works once.  As in Python, the sender must still be running
 * when the message is received; a message never received keeps its
 * handles in the sender until the sender exits.
 *
 * Wire (little-endian):
 *   message = "MPX1" u32 ticket length, ticket, the tuple's bytes
 *             "MPH1" u32 ticket length, ticket        (one raw handle)
 *   ticket  = u64 pid, u64 id, 16-byte token, u32 count,
 *             u16 address length, the address
 *   request = "MPR1" u64 id, the token, u64 the receiver's pid,
 *             u64 the sender's pid and u32 the count, as the ticket
 *             names them (a request that differs takes nothing)
 *   answer  = 'K' u32 count, then the handles; or 'N' (no such entry)
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define TICKET_FIXED 38u
#define TOKEN_N 16u
#define REQUEST_N 48u
#define HANDLES_MAX 65536u
#define ADDRESS_MAX 300u
#define SERVE_TIME 2.0  /* a client has this long to ask */
#define CLAIM_TIME 30.0 /* a receiver waits this long for a busy sender */

typedef struct entry {
  uint64_t id;
  unsigned char token[TOKEN_N];
  mpi_fd *h;
  size_t n;
  int keep; /* served to any number of claims until withdrawn */
  struct entry *next;
} entry;

/* Guarded by mpi_lock (held briefly: never across I/O). */
static struct {
  mpi_listener *l;
  char address[ADDRESS_MAX];
  int64_t pid; /* the process these belong to */
  entry *entries;
  uint64_t next_id;
} S;

static void put_le(unsigned char *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static void close_all(mpi_fd *h, size_t n) {
  for (size_t i = 0; i < n; i++)
    mpi_stream_close(h[i]);
  free(h);
}

static void entry_free(entry *e) {
  close_all(e->h, e->n);
  free(e);
}

static entry *copy_entry(const entry *e) {
  entry *c = calloc(1, sizeof *c);
  mpi_fd *h = calloc(e->n ? e->n : 1, sizeof *h);
  if (c == NULL || h == NULL) {
    free(c);
    free(h);
    return NULL;
  }
  c->h = h;
  for (; c->n < e->n; c->n++)
    if (mpi_handle_dup(e->h[c->n], &h[c->n]) != 0) {
      entry_free(c);
      return NULL;
    }
  return c;
}

static entry *copy_entry(const entry *e);

/* Unlink the entry with this id (and token and count, when a token is
 * given) under mpi_lock.  A claim (token given) of an entry that is
 * kept gets a copy with handles of its own instead. */
static entry *take_entry(uint64_t id, const unsigned char *token,
                         uint64_t count) {
  for (entry **pp = &S.entries; *pp != NULL; pp = &(*pp)->next) {
    entry *e = *pp;
    if (e->id != id)
      continue;
    if (token != NULL) {
      if (e->n != count)
        return NULL;
      unsigned diff = 0; /* constant time */
      for (size_t i = 0; i < TOKEN_N; i++)
        diff |= (unsigned)(e->token[i] ^ token[i]);
      if (diff != 0)
        return NULL;
      if (e->keep)
        return copy_entry(e);
    }
    *pp = e->next;
    return e;
  }
  return NULL;
}

/* ---- the sharer: one thread answering receivers -------------------- */

/* Read exactly n bytes by `deadline` (mpi_now() time). */
static int read_by(mpi_fd s, void *buf, size_t n, double deadline) {
  size_t have = 0;
  while (have < n) {
    double left = deadline - mpi_now();
    int r = mpi_stream_poll(s, left > 0 ? left : 0);
    if (r < 0)
      return r;
    if (r == 0)
      return mp__error(MP_ETIMEDOUT, "the other side fell silent");
    size_t got = 0;
    int rc = mpi_stream_recv_ready(s, (unsigned char *)buf + have, n - have,
                                   &got);
    if (rc != 0)
      return rc;
    have += got;
  }
  return 0;
}

static void serve_one(mpi_fd s) {
  unsigned char req[REQUEST_N];
  if (read_by(s, req, sizeof req, mpi_now() + SERVE_TIME) != 0 ||
      memcmp(req, "MPR1", 4) != 0)
    return;
  int64_t peer = (int64_t)get_le(req + 28, 8);
  entry *e = NULL;
  mpi_lock();
  if ((int64_t)get_le(req + 36, 8) == S.pid) /* the ticket names us */
    e = take_entry(get_le(req + 4, 8), req + 12, get_le(req + 44, 4));
  mpi_unlock();
  if (e == NULL) {
    mpi_stream_write(s, "N", 1);
    return;
  }
  unsigned char ok[5] = {'K'};
  put_le(ok + 1, e->n, 4);
  if (mpi_stream_write(s, ok, sizeof ok) == 0)
    mpi_handles_send(s, e->h, e->n, peer);
  entry_free(e); /* sent (in flight, or duplicated there), or lost */
}

static void serve(void *arg) {
  mpi_listener *l = arg;
  mpi_mutex *m = NULL;
  mpi_cond *c = NULL;
  for (;;) {
    mpi_fd s;
    int rc = mpi_accept(l, -1.0, &s);
    if (rc == MP_ECLOSED)
      break;
    if (rc == 0) {
      serve_one(s);
      mpi_stream_close(s);
    } else if ((m != NULL || mpi_mutex_new(&m) == 0) &&
               (c != NULL || mpi_cond_new(&c) == 0)) {
      mpi_mutex_lock(m); /* out of descriptors, say: pause, not spin */
      mpi_cond_wait(c, m, 0.05);
      mpi_mutex_unlock(m);
    }
  }
  if (c != NULL)
    mpi_cond_free(c);
  if (m != NULL)
    mpi_mutex_free(m);
}

/* Listen and serve, once per process; under mpi_lock. */
static int sharer_start(void) {
  if (S.l != NULL && S.pid == mpi_getpid())
    return 0;
  char want[ADDRESS_MAX];
  int rc = mpi_sharer_name(want, sizeof want);
  if (rc != 0)
    return rc;
  mpi_listener *l = NULL;
  rc = mpi_listen(MPI_AF_LOCAL, want[0] ? want : NULL, 64, &l, S.address,
                  sizeof S.address);
  if (rc != 0)
    return rc;
  mpi_thread *t = NULL;
  if ((rc = mpi_thread_start(serve, l, &t)) != 0) {
    mpi_listener_close(l);
    return rc;
  }
  mpi_thread_detach(t);
  S.l = l;
  S.pid = mpi_getpid();
  return 0;
}

/* In a forked child: the parent's sharer and table are not ours.  Close
 * our copies of its handles (a pipe must see its end of file), but not
 * its listener: closing would remove the parent's socket file. */
void mp__handoff_fork_child(void) {
  entry *e = S.entries;
  while (e != NULL) {
    entry *next = e->next;
    entry_free(e);
    e = next;
  }
  memset(&S, 0, sizeof S);
}

/* ---- offering and claiming ------------------------------------------ */

/* Keep copies of h[0..n) for a receiver (keep: for every receiver that
 * asks, until withdrawn): the ticket (malloc'd) and the entry's id (for
 * withdraw). */
static int offer(const mpi_fd *h, size_t n, int keep, unsigned char **ticket,
                 size_t *tn, uint64_t *id) {
  *ticket = NULL;
  if (n > HANDLES_MAX)
    return mp__error(MP_EINVAL, "too many handles (%zu) in one message", n);
  entry *e = calloc(1, sizeof *e);
  mpi_fd *dup = calloc(n, sizeof *dup);
  if (e == NULL || dup == NULL) {
    free(e);
    free(dup);
    return mp__error(MP_ENOMEM, "out of memory");
  }
  int rc = mpi_random(e->token, TOKEN_N);
  size_t made = 0;
  for (; rc == 0 && made < n; made++)
    if ((rc = mpi_handle_dup(h[made], &dup[made])) != 0)
      break;
  e->h = dup;
  e->n = made;
  e->keep = keep;
  if (rc != 0) {
    entry_free(e);
    return rc;
  }
  mpi_lock();
  rc = sharer_start();
  if (rc == 0) {
    e->id = ++S.next_id;
    e->next = S.entries;
    S.entries = e;
  }
  size_t an = strlen(S.address);
  unsigned char *t = rc == 0 ? malloc(TICKET_FIXED + an) : NULL;
  if (t != NULL) {
    put_le(t, (uint64_t)S.pid, 8);
    put_le(t + 8, e->id, 8);
    memcpy(t + 16, e->token, TOKEN_N);
    put_le(t + 32, n, 4);
    put_le(t + 36, an, 2);
    memcpy(t + TICKET_FIXED, S.address, an);
  } else if (rc == 0) {
    take_entry(e->id, NULL, 0);
    rc = mp__error(MP_ENOMEM, "out of memory");
  }
  mpi_unlock();
  if (rc != 0) {
    entry_free(e);
    return rc;
  }
  *ticket = t;
  *tn = TICKET_FIXED + an;
  *id = e->id;
  return 0;
}

/* A message offered under id did not go: close its copies. */
static void withdraw(uint64_t id) {
  mpi_lock();
  entry *e = take_entry(id, NULL, 0);
  mpi_unlock();
  if (e != NULL)
    entry_free(e);
}

/* The handles a ticket names, from their sender: *out (malloc'd, *n of
 * them; ownership is the caller's). */
static int claim(const unsigned char *t, size_t tn, mpi_fd **out,
                 size_t *n) {
  *out = NULL;
  *n = 0;
  if (tn < TICKET_FIXED || get_le(t + 36, 2) != tn - TICKET_FIXED ||
      tn - TICKET_FIXED >= ADDRESS_MAX || tn == TICKET_FIXED)
    return mp__error(MP_EPROTO, "malformed object ticket");
  uint64_t count = get_le(t + 32, 4);
  if (count == 0 || count > HANDLES_MAX)
    return mp__error(MP_EPROTO, "malformed object ticket (%llu handles)",
                     (unsigned long long)count);
  int64_t pid = (int64_t)get_le(t, 8);
  uint64_t id = get_le(t + 8, 8);
  char address[ADDRESS_MAX];
  memcpy(address, t + TICKET_FIXED, tn - TICKET_FIXED);
  address[tn - TICKET_FIXED] = '\0';
  if (strlen(address) != tn - TICKET_FIXED || !mpi_sharer_address(address))
    return mp__error(MP_EPROTO, "malformed object ticket (address)");
  if (pid == mpi_getpid()) { /* sent to ourselves: no need to ask */
    mpi_lock();
    entry *e = S.pid == pid && strcmp(address, S.address) == 0
                   ? take_entry(id, t + 16, count)
                   : NULL;
    mpi_unlock();
    if (e == NULL) {
      return mp__error(MP_ENOENT, "no such objects here (received already, "
                                  "or the message is not genuine)");
    }
    *out = e->h;
    *n = e->n;
    free(e);
    return 0;
  }
  double deadline = mpi_now() + CLAIM_TIME;
  mpi_fd s;
  int rc = mpi_connect(MPI_AF_LOCAL, address, CLAIM_TIME, &s);
  if (rc == MP_ENOENT || rc == MP_EINVAL)
    return mp__error(MP_ENOENT,
                     "the objects' sender (pid %lld) has ended: objects "
                     "travel while their sender runs, as in Python",
                     (long long)pid);
  if (rc != 0)
    return rc;
  unsigned char req[REQUEST_N], answer[5];
  memcpy(req, "MPR1", 4);
  put_le(req + 4, id, 8);
  memcpy(req + 12, t + 16, TOKEN_N);
  put_le(req + 28, (uint64_t)mpi_getpid(), 8);
  put_le(req + 36, (uint64_t)pid, 8);
  put_le(req + 44, count, 4);
  mpi_fd *h = NULL;
  if ((rc = mpi_stream_write(s, req, sizeof req)) == 0 &&
      (rc = read_by(s, answer, 1, deadline)) == 0) {
    if (answer[0] == 'N')
      rc = mp__error(MP_ENOENT, "no such objects at their sender "
                                "(received already, or the message is not "
                                "genuine)");
    else if (answer[0] != 'K')
      rc = mp__error(MP_EPROTO, "the objects' sender answered nonsense");
    else if ((rc = read_by(s, answer + 1, 4, deadline)) == 0 &&
             get_le(answer + 1, 4) != count)
      rc = mp__error(MP_EPROTO, "the objects' sender has other handles");
  }
  if (rc == MP_EEOF)
    rc = mp__error(MP_ENOENT, "the objects' sender (pid %lld) has ended",
                   (long long)pid);
  if (rc == 0 && (h = malloc((size_t)count * sizeof *h)) == NULL)
    rc = mp__error(MP_ENOMEM, "out of memory");
  if (rc == 0) {
    double left = deadline - mpi_now();
    rc = mpi_handles_recv(s, h, (size_t)count, left > 0 ? left : 0);
  }
  mpi_stream_close(s);
  if (rc != 0) {
    free(h);
    return rc;
  }
  *out = h;
  *n = (size_t)count;
  return 0;
}

/* ---- messages ---------------------------------------------------------- */

/* A message of `magic`, the ticket and `tail`. */
static int envelope(const char *magic, const unsigned char *ticket,
                    size_t tn, const void *tail, size_t n, void **msg,
                    size_t *len) {
  unsigned char *m = malloc(8 + tn + n);
  if (m == NULL)
    return mp__error(MP_ENOMEM, "out of memory");
  memcpy(m, magic, 4);
  put_le(m + 4, tn, 4);
  memcpy(m + 8, ticket, tn);
  if (n > 0)
    memcpy(m + 8 + tn, tail, n);
  *msg = m;
  *len = 8 + tn + n;
  return 0;
}

/* The ticket inside a message of `magic`, or NULL. */
static const unsigned char *ticket_of(const void *p, size_t n,
                                      const char *magic, size_t *tn) {
  const unsigned char *m = p;
  if (n < 8 || memcmp(m, magic, 4) != 0)
    return NULL;
  uint64_t t = get_le(m + 4, 4);
  if (t > n - 8)
    return NULL;
  *tn = (size_t)t;
  return m + 8;
}

int mp__handoff_pack(const mp_args *a, void **msg, size_t *len,
                     uint64_t *id) {
  *msg = NULL;
  *len = 0;
  *id = 0;
  if (!mp__args_has_objects(a))
    return 0; /* the tuple's own bytes go */
  /* The objects as they are now (a closed one is MP_ECLOSED). */
  mp_args *live = NULL;
  int rc = mp__args_rebuild(&live, a);
  if (rc != 0)
    return rc;
  size_t nh, dn;
  const mpi_fd *h = mp__args_handles(live, &nh);
  const void *data = mp__args_data(live, &dn);
  if (nh == 0) { /* proxies: their bytes say everything */
    void *copy = malloc(dn);
    if (copy == NULL)
      rc = mp__error(MP_ENOMEM, "out of memory");
    else {
      memcpy(copy, data, dn);
      *msg = copy;
      *len = dn;
    }
  } else {
    unsigned char *ticket = NULL;
    size_t tn = 0;
    if ((rc = offer(h, nh, 0, &ticket, &tn, id)) == 0) {
      rc = envelope("MPX1", ticket, tn, data, dn, msg, len);
      free(ticket);
      if (rc != 0)
        withdraw(*id);
    }
  }
  mp_args_free(live);
  return rc;
}

void mp__handoff_withdraw(uint64_t id) {
  if (id != 0)
    withdraw(id);
}

int mp__handoff_offer(const mpi_fd *h, size_t n, unsigned char **ticket,
                      size_t *tn, uint64_t *id) {
  return offer(h, n, 1, ticket, tn, id);
}

int mp__handoff_claim(const unsigned char *t, size_t tn, mpi_fd **out,
                      size_t *n) {
  return claim(t, tn, out, n);
}

int mp__handoff_unpack(const void *p, size_t n, mp_args **out) {
  *out = NULL;
  size_t tn = 0;
  const unsigned char *t = ticket_of(p, n, "MPX1", &tn);
  if (t == NULL && ticket_of(p, n, "MPH1", &tn) != NULL)
    return mp__error(MP_EPROTO, "a handle came (mp_conn_send_handle), not "
                                "a tuple: take it with mp_conn_recv_handle");
  mp_args *a = NULL;
  int rc = t != NULL ? mp__args_from_bytes(&a, t + tn, n - 8 - tn)
                     : mp__args_from_bytes(&a, p, n);
  if (rc != 0 || !mp__args_has_objects(a)) {
    if (rc == 0 && t != NULL) {
      mp_args_free(a);
      return mp__error(MP_EPROTO, "objects announced but none came");
    }
    *out = a;
    return rc;
  }
  mpi_fd *h = NULL;
  size_t nh = 0;
  if (t != NULL && (rc = claim(t, tn, &h, &nh)) != 0) {
    mp_args_free(a);
    return rc;
  }
  /* The tuple owns the handles now, and closes them if its objects
   * cannot be opened from them (a malformed or hostile message). */
  if ((rc = mp__args_adopt(a, h, nh)) != 0) {
    mp_args_free(a);
    return rc;
  }
  *out = a;
  return 0;
}

/* ---- Python's reduction.send_handle / recv_handle ------------------- */

int mp_conn_send_handle(mp_conn *c, mp_handle h) {
  if (c == NULL)
    return mp__error(MP_EINVAL, "mp_conn_send_handle: NULL connection");
  unsigned char *ticket = NULL;
  size_t tn = 0;
  uint64_t id = 0;
  mpi_fd fd = (mpi_fd)h;
  int rc = offer(&fd, 1, 0, &ticket, &tn, &id);
  void *msg = NULL;
  size_t len = 0;
  if (rc == 0) {
    rc = envelope("MPH1", ticket, tn, NULL, 0, &msg, &len);
    free(ticket);
  }
  if (rc == 0)
    rc = mp_conn_send_bytes(c, msg, len);
  free(msg);
  if (rc != 0 && id != 0)
    withdraw(id);
  return rc;
}

int mp_conn_recv_handle(mp_conn *c, mp_handle *out) {
  if (c == NULL || out == NULL)
    return mp__error(MP_EINVAL, "mp_conn_recv_handle: NULL argument");
  *out = MP_INVALID_HANDLE;
  void *p = NULL;
  size_t n = 0;
  int rc = mp_conn_recv_bytes(c, &p, &n);
  if (rc != 0)
    return rc;
  size_t tn = 0;
  const unsigned char *t = ticket_of(p, n, "MPH1", &tn);
  mpi_fd *h = NULL;
  size_t nh = 0;
  if (t == NULL || tn != n - 8)
    rc = mp__error(MP_EPROTO, "the message is not a handle from "
                              "mp_conn_send_handle");
  else if ((rc = claim(t, tn, &h, &nh)) == 0 && nh != 1) {
    close_all(h, nh);
    h = NULL;
    rc = mp__error(MP_EPROTO, "a handle message with %zu handles", nh);
  }
  if (rc == 0) {
    *out = (mp_handle)h[0];
    free(h);
  }
  mp_free(p);
  return rc;
}
