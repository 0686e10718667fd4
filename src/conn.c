/*
 * conn.c - mp_conn: framed messages over a byte stream (mpi_stream_*).
 *
 * Framing as Python's multiprocessing.connection: a 4-byte big-endian
 * length, or 0xFFFFFFFF and an 8-byte big-endian length for messages over
 * 2^31-1 bytes, then the bytes.  A receive that does not fit the caller's
 * buffer keeps the length it read ("pending"), so the message stays
 * readable.  Sends and receives are serialised by one mutex each, so
 * whole messages never interleave between threads.
 *
 * Receives read ahead: one recv fills a small buffer with whatever has
 * arrived, so a small message costs one system call (header and body
 * together), not two.  Bytes waiting there count as readable for
 * mp_conn_poll and mp_wait, and a forked child starts without the
 * parent's (as a spawned child would).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct mp_conn {
  mpi_fd h;
  int readable, writable;
  int closed;
  int pending;        /* a header was read; its body was not */
  uint64_t pending_n;
  mpi_mutex *send_mu, *recv_mu;
  mp_conn *prev, *next; /* every live connection, for fork children */
  size_t rpos, rlen;    /* read-ahead: rbuf[rpos, rlen) is unread */
  /* A bounded receive (mp__conn_recv_bounded) in progress: every read
   * waits at most until `deadline`, and asks `stop` between slices. */
  double deadline;      /* < 0: none */
  int (*stop)(void *);
  void *stop_arg;
  uint64_t taken;       /* bytes read so far, for telling a cut message */
  int broken;           /* a message was cut short: out of step for good */
  unsigned char rbuf[4096];
};

/* Something to read without touching the stream?  (recv_mu held, or a
 * benign race for a hint.) */
static int buffered(const mp_conn *c) {
  return c->pending || c->rpos < c->rlen;
}

static mp_conn *live; /* guarded by mpi_lock */

static void link_conn(mp_conn *c) {
  mpi_lock();
  c->next = live;
  if (live != NULL)
    live->prev = c;
  live = c;
  mpi_unlock();
}

static void unlink_conn(mp_conn *c) {
  mpi_lock();
  if (c->prev != NULL)
    c->prev->next = c->next;
  else if (live == c)
    live = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  mpi_unlock();
}

/* In a forked child, before its target runs: close every connection it
 * inherited but was not given, as a spawned child would not have them.
 * Otherwise a child holding the parent's end of a pipe keeps the other
 * end from ever seeing end of file. */
void mp__conn_fork_child(const mp_args *keep) {
  for (mp_conn *c = live; c != NULL; c = c->next) {
    c->pending = 0; /* what the parent read ahead is the parent's */
    c->rpos = c->rlen = 0;
    if (!c->closed && (keep == NULL || !mp__args_holds(keep, c))) {
      mpi_stream_close(c->h);
      c->closed = 1;
      c->h = MPI_BAD_FD;
    }
  }
}

int mp__conn_buffered(const mp_handle *h, size_t n, int *ready) {
  int count = 0;
  mpi_lock();
  for (mp_conn *c = live; c != NULL; c = c->next)
    if (!c->closed && buffered(c))
      for (size_t i = 0; i < n; i++)
        if (h[i] == (mp_handle)c->h && !ready[i]) {
          ready[i] = 1;
          count++;
        }
  mpi_unlock();
  return count;
}

static int new_conn(mpi_fd h, int readable, int writable, mp_conn **out) {
  mp_conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return mp__error(MP_ENOMEM, "mp_conn: out of memory");
  if (mpi_mutex_new(&c->send_mu) != 0 || mpi_mutex_new(&c->recv_mu) != 0) {
    mpi_mutex_free(c->send_mu);
    free(c);
    return mp__error(MP_ENOMEM, "mp_conn: out of memory");
  }
  c->h = h;
  c->readable = readable;
  c->writable = writable;
  c->deadline = -1;
  link_conn(c);
  *out = c;
  return 0;
}

int mp__conn_wrap(mpi_fd h, mp_conn **out) {
  int rc = new_conn(h, 1, 1, out);
  if (rc != 0)
    mpi_stream_close(h);
  return rc;
}

int mp_pipe(int duplex, mp_conn **a, mp_conn **b) {
  if (a == NULL || b == NULL)
    return mp__error(MP_EINVAL, "mp_pipe: NULL argument");
  *a = *b = NULL;
  mpi_fd ha, hb;
  int rc = mpi_stream_pair(duplex, &ha, &hb);
  if (rc != 0)
    return rc;
  if ((rc = new_conn(ha, 1, duplex != 0, a)) != 0 ||
      (rc = new_conn(hb, duplex != 0, 1, b)) != 0) {
    if (*a == NULL)
      mpi_stream_close(ha);
    mp_conn_free(*a);
    mpi_stream_close(hb);
    *a = NULL;
    return rc;
  }
  return 0;
}

/* ---- checks ------------------------------------------------------------ */

static int check(const mp_conn *c, int for_send) {
  if (c == NULL)
    return mp__error(MP_EINVAL, "mp_conn: NULL connection");
  if (c->closed)
    return mp__error(MP_ECLOSED, "connection is closed");
  if (for_send && !c->writable)
    return mp__error(MP_EPERM, "connection is read-only");
  if (!for_send && !c->readable)
    return mp__error(MP_EPERM, "connection is write-only");
  if (!for_send && c->broken)
    return mp__error(MP_EPROTO, "connection out of step: a message was cut "
                                "short by a timeout");
  return 0;
}

/* ---- sending ----------------------------------------------------------- */

static int send_locked(mp_conn *c, const void *p, size_t n) {
  unsigned char head[12];
  size_t head_n;
  uint64_t len = (uint64_t)n;
  if (len > 0x7fffffffu) {
    memset(head, 0xff, 4);
    for (int i = 0; i < 8; i++)
      head[4 + i] = (unsigned char)(len >> (56 - 8 * i));
    head_n = 12;
  } else {
    for (int i = 0; i < 4; i++)
      head[i] = (unsigned char)(len >> (24 - 8 * i));
    head_n = 4;
  }
  /* Small messages go out in one write: one system call, one wake-up. */
  if (n <= 4096 - head_n) {
    unsigned char frame[4096];
    memcpy(frame, head, head_n);
    if (n)
      memcpy(frame + head_n, p, n);
    return mpi_stream_write(c->h, frame, head_n + n);
  }
  int rc = mpi_stream_write(c->h, head, head_n);
  return rc == 0 ? mpi_stream_write(c->h, p, n) : rc;
}

int mp_conn_send_bytes(mp_conn *c, const void *p, size_t n) {
  int rc = check(c, 1);
  if (rc != 0)
    return rc;
  if (p == NULL && n != 0)
    return mp__error(MP_EINVAL, "mp_conn_send_bytes: NULL data");
#if SIZE_MAX > 0xFFFFFFFFu /* a 32-bit size_t is never over the maximum */
  if ((uint64_t)n > MP_CONN_MAX_MESSAGE)
    return mp__error(MP_ERANGE, "message of %zu bytes is over the maximum",
                     n);
#endif
  mpi_mutex_lock(c->send_mu);
  rc = send_locked(c, p, n);
  mpi_mutex_unlock(c->send_mu);
  return rc;
}

/* ---- receiving --------------------------------------------------------- */

#define BOUNDED_SLICE 0.1 /* how often a bounded receive asks `stop` */

/* In a bounded receive: wait until the stream has bytes, the deadline
 * passes (MP_ETIMEDOUT) or stop says so (MP_ECLOSED). */
static int wait_bytes(mp_conn *c) {
  for (;;) {
    if (c->stop != NULL && c->stop(c->stop_arg))
      return mp__error(MP_ECLOSED, "receive abandoned: stopping");
    double left = c->deadline < 0 ? BOUNDED_SLICE : mp__time_left(c->deadline);
    double slice = c->stop != NULL && left > BOUNDED_SLICE ? BOUNDED_SLICE
                                                           : left;
    int r = mpi_stream_poll(c->h, slice);
    if (r != 0)
      return r < 0 ? r : 0;
    if (c->deadline >= 0 && mpi_now() >= c->deadline)
      return mp__error(MP_ETIMEDOUT, "no whole message in time");
  }
}

/* Read exactly n bytes: from the read-ahead first, then the stream
 * (large remainders straight into p, unless bounded).  *got: how many
 * arrived. */
static int read_exact(mp_conn *c, void *p, size_t n, size_t *got) {
  unsigned char *out = p;
  size_t done = 0;
  int rc = 0;
  while (done < n && rc == 0) {
    size_t have = c->rlen - c->rpos, left = n - done;
    if (have > 0) {
      size_t k = have < left ? have : left;
      memcpy(out + done, c->rbuf + c->rpos, k);
      c->rpos += k;
      done += k;
    } else {
      /* Bounded: each read takes only what has arrived: what is there
       * already (one system call, the common case of a request that
       * came whole), else after a wait that the deadline (or stop)
       * bounds.  The deadline and stop are asked before every read, so
       * a peer that trickles bytes cannot outlast them. */
      int bounded = c->deadline >= 0 || c->stop != NULL;
      size_t g = 0;
      if (bounded) {
        if (c->stop != NULL && c->stop(c->stop_arg)) {
          rc = mp__error(MP_ECLOSED, "receive abandoned: stopping");
          break;
        }
        if (c->deadline >= 0 && mpi_now() >= c->deadline) {
          rc = mp__error(MP_ETIMEDOUT, "no whole message in time");
          break;
        }
        int big = left >= sizeof c->rbuf;
        rc = mpi_stream_recv_ready(c->h, big ? out + done : c->rbuf,
                                   big ? left : sizeof c->rbuf, &g);
        if (rc == 0 && g > 0) {
          if (big) {
            done += g;
          } else {
            c->rpos = 0;
            c->rlen = g;
          }
          continue;
        }
        if (rc != 0 || (rc = wait_bytes(c)) != 0)
          break;
      }
      if (left < sizeof c->rbuf) {
        rc = mpi_stream_recv(c->h, c->rbuf, sizeof c->rbuf, &g);
        c->rpos = 0;
        c->rlen = g;
      } else {
        rc = bounded ? mpi_stream_recv(c->h, out + done, left, &g)
                     : mpi_stream_read(c->h, out + done, left, &g);
        done += g;
      }
    }
    if (c->rpos == c->rlen)
      c->rpos = c->rlen = 0;
  }
  c->taken += done;
  if (got != NULL)
    *got = done;
  return rc;
}

/* Read the next header unless one is pending.  MP_EEOF at a clean end,
 * MP_EPROTO for a length over the maximum (the stream is then unusable). */
static int read_header(mp_conn *c) {
  if (c->pending)
    return 0;
  unsigned char h[8];
  size_t got = 0;
  int rc = read_exact(c, h, 4, &got);
  if (rc == MP_EEOF && got > 0)
    return mp__error(MP_EEOF, "connection ended inside a message header");
  if (rc != 0)
    return rc == MP_EEOF ? mp__error(MP_EEOF, "end of file: the other end "
                                              "is closed")
                         : rc;
  uint64_t n = (uint64_t)h[0] << 24 | (uint64_t)h[1] << 16 |
               (uint64_t)h[2] << 8 | h[3];
  if (n > 0x7fffffffu && n != 0xffffffffu) /* negative, and not -1 */
    return mp__error(MP_EPROTO, "malformed message header (length %lld)",
                     (long long)(int32_t)(uint32_t)n);
  if (n == 0xffffffffu) {
    if ((rc = read_exact(c, h, 8, NULL)) != 0)
      return rc == MP_EEOF ? mp__error(MP_EEOF, "connection ended inside "
                                                "a message header")
                           : rc;
    n = 0;
    for (int i = 0; i < 8; i++)
      n = n << 8 | h[i];
  }
  if (n > MP_CONN_MAX_MESSAGE || (uint64_t)(size_t)n != n)
    return mp__error(MP_EPROTO, "message length %llu is over the maximum",
                     (unsigned long long)n);
  c->pending = 1;
  c->pending_n = n;
  return 0;
}

/* Read the pending body into a new buffer that grows as the bytes
 * arrive, so that a header claiming gigabytes costs memory only for what
 * is really sent.  0, MP_ENOMEM (the rest is skipped), or a read error. */
#define BODY_FIRST_CHUNK ((size_t)1 << 20)
static void skip_body(mp_conn *c);
static int read_body_new(mp_conn *c, void **out) {
  size_t n = (size_t)c->pending_n, done = 0;
  size_t cap = n < BODY_FIRST_CHUNK ? n : BODY_FIRST_CHUNK;
  unsigned char *buf = malloc(cap ? cap : 1);
  if (buf == NULL) {
    skip_body(c);
    return mp__error(MP_ENOMEM, "no memory for a message of %zu bytes", n);
  }
  c->pending = 0;
  while (done < n) {
    if (done == cap) {
      size_t more = cap > n - cap ? n : 2 * cap;
      unsigned char *b = realloc(buf, more);
      if (b == NULL) {
        free(buf);
        c->pending = 1; /* skip what is left of it */
        c->pending_n = n - done;
        skip_body(c);
        return mp__error(MP_ENOMEM, "no memory for a message of %zu bytes",
                         n);
      }
      buf = b;
      cap = more;
    }
    int rc = read_exact(c, buf + done, cap - done, NULL);
    if (rc != 0) {
      free(buf);
      return rc == MP_EEOF ? mp__error(MP_EEOF, "connection ended inside a "
                                                "message")
                           : rc;
    }
    done = cap;
  }
  *out = buf;
  return 0;
}

/* Read the pending body into p (which holds it). */
static int read_body(mp_conn *c, void *p) {
  size_t n = (size_t)c->pending_n;
  c->pending = 0;
  int rc = n ? read_exact(c, p, n, NULL) : 0;
  return rc == MP_EEOF ? mp__error(MP_EEOF, "connection ended inside a "
                                            "message")
                       : rc;
}

/* Skip the pending body (when it cannot be stored), keeping the stream
 * in step. */
static void skip_body(mp_conn *c) {
  unsigned char scrap[4096];
  uint64_t left = c->pending_n;
  c->pending = 0;
  while (left > 0) {
    size_t k = left < sizeof scrap ? (size_t)left : sizeof scrap;
    if (read_exact(c, scrap, k, NULL) != 0)
      return;
    left -= k;
  }
}

/* One message into a new buffer, if it is at most max bytes long; a
 * longer one is left pending (MP_ERANGE, *n its length), unread and with
 * nothing allocated for it. */
static int recv_new(mp_conn *c, size_t max, void **out, size_t *n,
                    const char *what) {
  int rc = check(c, 0);
  if (rc != 0)
    return rc;
  if (out == NULL || n == NULL)
    return mp__error(MP_EINVAL, "%s: NULL argument", what);
  *out = NULL;
  *n = 0;
  mpi_mutex_lock(c->recv_mu);
  rc = read_header(c);
  if (rc == 0) {
    size_t len = (size_t)c->pending_n;
    void *buf = NULL;
    if (c->pending_n > max) {
      *n = len;
      rc = mp__error(MP_ERANGE, "%s: message of %zu bytes is over the "
                                "maximum of %zu; it stays readable",
                     what, len, max);
    } else if ((rc = read_body_new(c, &buf)) == 0) {
      *out = buf;
      *n = len;
    }
  }
  mpi_mutex_unlock(c->recv_mu);
  return rc;
}

int mp_conn_recv_bytes(mp_conn *c, void **out, size_t *n) {
  return recv_new(c, SIZE_MAX, out, n, "mp_conn_recv_bytes");
}

int mp_conn_recv_bytes_max(mp_conn *c, size_t maxlength, void **out,
                           size_t *n) {
  const char *what = "mp_conn_recv_bytes_max";
  if (maxlength > (size_t)PTRDIFF_MAX) {
    if (out != NULL)
      *out = NULL;
    if (n != NULL)
      *n = 0;
    return mp__error(MP_EINVAL, "%s: maxlength %zu is a negative number "
                                "made unsigned", what, maxlength);
  }
  return recv_new(c, maxlength, out, n, what);
}

int mp_conn_recv_bytes_into(mp_conn *c, void *buf, size_t cap, size_t *n) {
  int rc = check(c, 0);
  if (rc != 0)
    return rc;
  if ((buf == NULL && cap != 0) || n == NULL)
    return mp__error(MP_EINVAL, "mp_conn_recv_bytes_into: NULL argument");
  mpi_mutex_lock(c->recv_mu);
  rc = read_header(c);
  if (rc == 0) {
    *n = (size_t)c->pending_n;
    if (c->pending_n > cap)
      rc = mp__error(MP_ERANGE, "message of %zu bytes does not fit in %zu; "
                                "it stays readable",
                     *n, cap);
    else
      rc = read_body(c, buf);
  }
  mpi_mutex_unlock(c->recv_mu);
  return rc;
}

/* One message under a bound: into buf (cap bytes) when buf != NULL,
 * else into a new buffer at *out. */
static int recv_bounded(mp_conn *c, void *buf, size_t cap, void **out,
                        size_t *n, double deadline, int (*stop)(void *),
                        void *arg) {
  int rc = check(c, 0);
  if (rc != 0)
    return rc;
  mpi_mutex_lock(c->recv_mu);
  c->deadline = deadline;
  c->stop = stop;
  c->stop_arg = arg;
  uint64_t before = c->taken;
  rc = read_header(c);
  if (rc == 0) {
    *n = (size_t)c->pending_n;
    if (buf == NULL)
      rc = read_body_new(c, out);
    else if (c->pending_n > cap)
      rc = mp__error(MP_ERANGE, "message of %zu bytes is over %zu", *n, cap);
    else
      rc = read_body(c, buf);
  }
  if ((rc == MP_ETIMEDOUT || rc == MP_ECLOSED) &&
      (c->taken != before || c->pending))
    c->broken = 1; /* the rest of that message may still come */
  c->deadline = -1;
  c->stop = NULL;
  c->stop_arg = NULL;
  mpi_mutex_unlock(c->recv_mu);
  return rc;
}

int mp__conn_recv_bounded(mp_conn *c, void *buf, size_t cap, size_t *n,
                          double deadline, int (*stop)(void *), void *arg) {
  static unsigned char none;
  return recv_bounded(c, buf != NULL ? buf : &none, cap, NULL, n, deadline,
                      stop, arg);
}

int mp__conn_recv_stoppable(mp_conn *c, void **out, size_t *n,
                            int (*stop)(void *), void *arg) {
  *out = NULL;
  *n = 0;
  return recv_bounded(c, NULL, 0, out, n, -1, stop, arg);
}

int mp_conn_send_args(mp_conn *c, const mp_args *a) {
  if (a == NULL)
    return mp__error(MP_EINVAL, "mp_conn_send_args: NULL tuple");
  void *msg;
  size_t n;
  uint64_t id;
  int rc = mp__handoff_pack(a, &msg, &n, &id);
  if (rc != 0)
    return rc;
  if (msg == NULL) {
    const void *p = mp__args_data(a, &n);
    return mp_conn_send_bytes(c, p, n);
  }
  if ((rc = mp_conn_send_bytes(c, msg, n)) != 0)
    mp__handoff_withdraw(id);
  free(msg);
  return rc;
}

int mp_conn_recv_args(mp_conn *c, mp_args **out) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_conn_recv_args: NULL argument");
  *out = NULL;
  void *p;
  size_t n;
  int rc = mp_conn_recv_bytes(c, &p, &n);
  if (rc != 0)
    return rc;
  rc = mp__handoff_unpack(p, n, out);
  free(p);
  return rc;
}

int mp_conn_poll(mp_conn *c, double timeout) {
  int rc = check(c, 0);
  if (rc != 0)
    return rc;
  if ((rc = mp__check_timeout(timeout)) != 0)
    return rc;
  mpi_mutex_lock(c->recv_mu);
  int ready = buffered(c);
  mpi_mutex_unlock(c->recv_mu);
  return ready ? 1 : mpi_stream_poll(c->h, timeout);
}

/* Spin up to `seconds` for a message (a request/reply peer about to
 * answer): 1 once readable, 0 if not by then.  A wake across CPUs costs
 * tens of microseconds on some machines; a peer that answers sooner is
 * caught here without one. */
int mp__conn_spin(mp_conn *c, double seconds) {
  if (seconds <= 0)
    return 0;
  double until = mpi_now() + seconds;
  for (unsigned looks = 1;; looks++) {
    int r = mp_conn_poll(c, 0);
    if (r != 0)
      return r > 0;
    if ((looks & 7) == 0) {
      if (mpi_now() >= until)
        return 0;
      mpi_yield();
    }
  }
}

/* ---- the rest ---------------------------------------------------------- */

mp_handle mp_conn_fileno(const mp_conn *c) {
  return c == NULL || c->closed ? MP_INVALID_HANDLE : (mp_handle)c->h;
}

int mp_conn_readable(const mp_conn *c) { return c && c->readable; }
int mp_conn_writable(const mp_conn *c) { return c && c->writable; }

int mp_conn_close(mp_conn *c) {
  if (c == NULL)
    return mp__error(MP_EINVAL, "mp_conn_close: NULL connection");
  mpi_mutex_lock(c->send_mu);
  mpi_mutex_lock(c->recv_mu);
  if (!c->closed) {
    mpi_stream_close(c->h);
    c->closed = 1;
    c->h = MPI_BAD_FD;
  }
  mpi_mutex_unlock(c->recv_mu);
  mpi_mutex_unlock(c->send_mu);
  return 0;
}

void mp_conn_free(mp_conn *c) {
  if (c == NULL)
    return;
  mp_conn_close(c);
  unlink_conn(c);
  mpi_mutex_free(c->send_mu);
  mpi_mutex_free(c->recv_mu);
  free(c);
}

void mp_free(void *p) { free(p); }

/* ---- passing to a child ------------------------------------------------- */

/* The blob: u32 handle index (LE), u8 readable, u8 writable. */
int mp_args_add_conn(mp_args *a, mp_conn *c) {
  if (a == NULL || c == NULL)
    return mp__error(MP_EINVAL, "mp_args_add_conn: NULL argument");
  if (c->closed)
    return mp__error(MP_ECLOSED, "cannot pass a closed connection");
  uint32_t index;
  int rc = mp__args_add_handle(a, c->h, &index);
  if (rc != 0)
    return rc;
  unsigned char blob[6] = {(unsigned char)index, (unsigned char)(index >> 8),
                           (unsigned char)(index >> 16),
                           (unsigned char)(index >> 24),
                           (unsigned char)c->readable,
                           (unsigned char)c->writable};
  return mp__args_add_object(a, MP__OBJ_CONN, blob, sizeof blob, c);
}

mp_conn *mp_args_conn(const mp_args *a, size_t i) {
  return mp__args_object(a, i, MP__OBJ_CONN);
}

int mp__conn_open(const void *blob, size_t n, mpi_fd *handles, size_t nh,
                  void **out) {
  const unsigned char *b = blob;
  if (n != 6)
    return mp__error(MP_EPROTO, "malformed connection reference");
  uint32_t index = (uint32_t)b[0] | (uint32_t)b[1] << 8 |
                   (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
  if (index >= nh || handles[index] == MPI_BAD_FD)
    return mp__error(MP_EPROTO, "connection reference to a missing handle");
  mp_conn *c;
  int rc = new_conn(handles[index], b[4] != 0, b[5] != 0, &c);
  if (rc != 0)
    return rc;
  handles[index] = MPI_BAD_FD; /* the connection owns it now */
  *out = c;
  return 0;
}
