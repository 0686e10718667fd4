/*
 * manager.c - the Manager's client side: mp_manager (a server process we
 * started, or one we connected to), its connections and proxies, and the
 * typed calls on them.
 *
 * A client keeps a pool of authenticated connections to the server: a
 * call takes one for itself, so threads never wait for each other's
 * blocking calls, and puts it back.  All connections of one process say
 * the same session id, which is what the server ties references and lock
 * ownership to.  A forked child starts a session of its own on first use
 * (the parent's connections are closed in the child), and re-takes the
 * references of the proxies it inherited.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager.h"
#include "pool.h"
#include "process.h"

typedef struct mconn {
  mp_conn *conn;
  unsigned char *buf; /* request and reply scratch */
  size_t cap;
  struct mconn *next;
} mconn;

struct mp_manager {
  mpi_mutex *mu;
  char *address;
  unsigned char key[MP__AUTHKEY_CAP];
  size_t key_n;
  unsigned char sid[MGR_SID_LEN];
  int64_t pid;       /* the process the session and connections are for */
  mconn *idle;
  int refs;          /* the user's handle (unless implicit) + proxies */
  int closed;        /* shut down or freed by the user */
  int shut;          /* the server was told to stop */
  mp_process *server; /* started here */
  int64_t owner_pid;  /* who started it */
  int implicit;       /* made for proxies a child received */
  mp_manager *next_implicit;
};

struct mp_proxy {
  mp_manager *m;
  char type_id[MGR_TYPEID_MAX];
  int64_t id;
  int refs;           /* tuples and handles in this process */
  int64_t pid;        /* whose session holds server_refs */
  int64_t server_refs;
};

static mp_manager *implicit_managers;

#define CONNECT_TIMEOUT 30.0

/* ---- connections ----------------------------------------------------- */

static void mconn_free(mconn *c) {
  if (c != NULL) {
    mp_conn_free(c->conn);
    free(c->buf);
    free(c);
  }
}

static int new_session(mp_manager *m) {
  m->pid = mpi_getpid();
  return mpi_random(m->sid, sizeof m->sid);
}

static int reserve(mconn *c, size_t n) {
  if (n <= c->cap)
    return 0;
  size_t cap = c->cap ? c->cap : 256;
  while (cap < n)
    cap *= 2;
  unsigned char *b = realloc(c->buf, cap);
  if (b == NULL)
    return mp__error(MP_ENOMEM, "manager: out of memory");
  c->buf = b;
  c->cap = cap;
  return 0;
}

/* This thread's id (cached: it is a system call on some systems). */
static MP_THREAD_LOCAL int64_t my_tid;
static int64_t thread_id(void) {
  if (my_tid == 0)
    my_tid = mpi_thread_id();
  return my_tid;
}

/* Send a request and wait for its reply, left in c->buf (*n bytes). */
static int exchange(mconn *c, int op, int64_t id, const char *name,
                    size_t name_n, const void *args, size_t args_n,
                    size_t *n) {
  int rc = reserve(c, MGR_HEADER + name_n + args_n);
  if (rc != 0)
    return rc;
  unsigned char *p = c->buf;
  memset(p, 0, 8);
  p[0] = (unsigned char)op;
  p[4] = (unsigned char)name_n;
  p[5] = (unsigned char)(name_n >> 8);
  mp__put_i64(p + 8, id);
  mp__put_i64(p + 16, thread_id());
  memcpy(p + MGR_HEADER, name, name_n);
  if (args_n)
    memcpy(p + MGR_HEADER + name_n, args, args_n);
  rc = mp_conn_send_bytes(c->conn, p, MGR_HEADER + name_n + args_n);
  if (rc == 0)
    mp__conn_spin(c->conn, mp__spin_seconds());
  while (rc == 0) {
    rc = mp_conn_recv_bytes_into(c->conn, c->buf, c->cap, n);
    if (rc != MP_ERANGE)
      break;
    if ((rc = reserve(c, *n)) != 0)
      return rc;
  }
  if (rc == 0 && *n < 8)
    rc = mp__error(MP_EPROTO, "manager: malformed reply");
  if (rc == MP_EEOF || rc == MP_EPIPE)
    rc = mp__error(MP_ECLOSED, "the manager's server is gone");
  return rc;
}

/* A new authenticated connection that has said the session's hello.
 * gone_is_closed: nobody listening means the server went away. */
static int open_conn(mp_manager *m, double timeout, int gone_is_closed,
                     mconn **out) {
  mconn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return mp__error(MP_ENOMEM, "manager: out of memory");
  int cause = 0;
  int rc = mp__client(&c->conn, m->address, MP_AF_DEFAULT, m->key, m->key_n,
                      timeout, &cause);
  /* A server that stops drops the handshakes in progress: that is the
   * server gone, not a wrong key (which it refuses in so many words). */
  if (rc == MP_EAUTH && (cause == MP_EEOF || cause == MP_EPIPE) &&
      gone_is_closed)
    rc = MP_ENOENT;
  size_t n = 0;
  if (rc == 0)
    rc = exchange(c, MGR_HELLO, 0, (const char *)m->sid, MGR_SID_LEN, NULL, 0,
                  &n);
  if (rc == 0 && mp__get_i64(c->buf) != 0)
    rc = mp__error(MP_EPROTO, "the manager refused the session: %.*s",
                   (int)(n - 8 > 512 ? 512 : n - 8), (char *)c->buf + 8);
  if (rc == MP_ENOENT && gone_is_closed)
    rc = mp__error(MP_ECLOSED, "the manager's server is gone (%s)",
                   mp_last_error_message());
  if (rc != 0) {
    mconn_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

/* A connection for one call (the caller's own until put back). */
static int get_conn(mp_manager *m, mconn **out) {
  mpi_mutex_lock(m->mu);
  if (m->closed) {
    mpi_mutex_unlock(m->mu);
    return mp__error(MP_ECLOSED, "the manager was shut down");
  }
  if (m->pid != mpi_getpid()) { /* a forked child: a session of its own */
    while (m->idle != NULL) {
      mconn *c = m->idle;
      m->idle = c->next;
      mconn_free(c); /* already closed in the child */
    }
    new_session(m);
  }
  mconn *c = m->idle;
  if (c != NULL)
    m->idle = c->next;
  mpi_mutex_unlock(m->mu);
  if (c == NULL) {
    int rc = open_conn(m, CONNECT_TIMEOUT, 1, &c);
    if (rc != 0)
      return rc;
  }
  *out = c;
  return 0;
}

static void put_conn(mp_manager *m, mconn *c, int ok) {
  mpi_mutex_lock(m->mu);
  if (ok && !m->closed && m->pid == mpi_getpid()) {
    c->next = m->idle;
    m->idle = c;
    c = NULL;
  }
  mpi_mutex_unlock(m->mu);
  mconn_free(c);
}

static void manager_unref(mp_manager *m);

/* ---- requests ------------------------------------------------------- */

static int same_manager(const mp_manager *a, const mp_manager *b) {
  return a == b || strcmp(a->address, b->address) == 0;
}

/* The arguments as sent: proxies reduced to (typeid, id), which must be
 * of this manager.  *conv is set when a converted copy was made. */
static int convert_args(mp_manager *m, const mp_args *args, mp_args **conv) {
  *conv = NULL;
  if (args == NULL || !mp__args_has_objects(args))
    return 0;
  mp_args *t = NULL;
  int rc = mp_args_new(&t);
  for (size_t i = 0; rc == 0 && i < mp_args_count(args); i++) {
    if (mp_args_type(args, i) != MP_ARG_OBJECT) {
      const void *p;
      size_t n;
      mp__args_item_raw(args, i, &p, &n);
      rc = mp__args_add_raw(t, p, n);
      continue;
    }
    mp_proxy *px = mp_args_proxy(args, i);
    if (px == NULL) {
      rc = mp__error(MP_ETYPE, "argument %zu: only plain values and proxies "
                     "can go to a manager", i + 1);
    } else if (!same_manager(px->m, m)) {
      rc = mp__error(MP_ETYPE, "argument %zu: a proxy of another manager",
                     i + 1);
    } else {
      mp_args *blob = NULL;
      rc = mp__proxy_blob(&blob, px->type_id, px->id, NULL, NULL, 0);
      if (rc == 0) {
        size_t bn;
        const void *bp = mp__args_data(blob, &bn);
        rc = mp__args_add_object(t, MP__OBJ_PROXY, bp, bn, NULL);
      }
      mp_args_free(blob);
    }
  }
  if (rc != 0) {
    mp_args_free(t);
    return rc;
  }
  *conv = t;
  return 0;
}

static mp_proxy *proxy_new(mp_manager *m, const char *type_id, int64_t id);

/* The results of a reply: proxies in it become proxies here (each holds
 * the reference the server took for us). */
static int open_results(mp_manager *m, const void *p, size_t n,
                        mp_args **out) {
  mp_args *r = NULL;
  int rc = mp__args_from_bytes(&r, p, n);
  if (rc != 0)
    return mp__error(MP_EPROTO, "manager: malformed reply");
  for (size_t i = 0; i < mp_args_count(r); i++) {
    uint32_t kind;
    const void *blob;
    size_t bn;
    if (mp__args_get_object(r, i, &kind, &blob, &bn) != 0)
      continue;
    mp_args *h = NULL;
    const char *type_id, *address;
    const void *key;
    size_t key_n;
    int64_t id;
    mp_proxy *px = NULL;
    if (kind == MP__OBJ_PROXY &&
        mp__proxy_blob_parse(blob, bn, &h, &type_id, &id, &address, &key,
                             &key_n) == 0) {
      px = proxy_new(m, type_id, id);
      mp_args_free(h);
    }
    if (px == NULL) {
      rc = mp__error(MP_EPROTO, "manager: malformed proxy in a reply");
      continue; /* the others must still be taken */
    }
    px->server_refs = 1;
    px->pid = m->pid;
    mp__args_set_object(r, i, px);
  }
  if (rc != 0 || out == NULL)
    mp_args_free(r);
  else
    *out = r;
  return rc;
}

/* One request: op on object id with name and args; results (may be NULL). */
static int request(mp_manager *m, int op, int64_t id, const char *name,
                   const mp_args *args, mp_args **results) {
  if (results != NULL)
    *results = NULL;
  size_t name_n = strlen(name);
  if (name_n >= MGR_NAME_MAX)
    return mp__error(MP_EINVAL, "manager: name '%s' is too long", name);
  mp_args *conv = NULL, *empty = NULL;
  int rc = convert_args(m, args, &conv);
  if (rc != 0)
    return rc;
  const mp_args *send = conv ? conv : args;
  if (send == NULL && (rc = mp_args_new(&empty)) == 0)
    send = empty;
  mconn *c = NULL;
  if (rc == 0)
    rc = get_conn(m, &c);
  size_t n = 0;
  if (rc == 0) {
    size_t an;
    const void *ap = mp__args_data(send, &an);
    rc = exchange(c, op, id, name, name_n, ap, an, &n);
  }
  mp_args_free(conv);
  mp_args_free(empty);
  if (rc != 0) {
    if (c != NULL)
      put_conn(m, c, 0);
    return rc;
  }
  int64_t status = mp__get_i64(c->buf);
  int broken = 0;
  if (status != 0) {
    /* (a well-formed reply, whatever its status: the connection is
     * sound, and dropping the session's last one would drop its
     * references) */
    if (status > 0 || status < MP__ERR_MIN)
      status = MP_EPROTO;
    rc = mp__error((int)status, "%.*s", (int)(n - 8 > 4096 ? 4096 : n - 8),
                   (const char *)c->buf + 8);
  } else if (results != NULL || n != 16) {
    /* (an empty result, the common case, needs no decoding) */
    rc = open_results(m, c->buf + 8, n - 8, results);
    broken = rc == MP_EPROTO;
  }
  put_conn(m, c, !broken);
  return rc;
}

/* ---- proxies ------------------------------------------------------------- */

static mp_proxy *proxy_new(mp_manager *m, const char *type_id, int64_t id) {
  mp_proxy *p = calloc(1, sizeof *p);
  if (p == NULL)
    return NULL;
  p->m = m;
  mp__strlcpy(p->type_id, type_id, sizeof p->type_id);
  p->id = id;
  p->refs = 1;
  mpi_mutex_lock(m->mu);
  m->refs++;
  mpi_mutex_unlock(m->mu);
  return p;
}

/* Before a call: a proxy inherited through fork takes a reference for
 * this process's session. */
static int proxy_ready(mp_proxy *p) {
  if (p == NULL)
    return mp__error(MP_EINVAL, "NULL proxy");
  int64_t me = mpi_getpid();
  if (p->pid == me)
    return 0;
  /* One thread takes the reference; the others go on meanwhile (the
   * parent's reference keeps the object). */
  mpi_lock();
  int64_t was = p->pid;
  p->pid = me;
  mpi_unlock();
  if (was == me)
    return 0;
  int rc = request(p->m, MGR_INCREF, p->id, "", NULL, NULL);
  mpi_lock();
  if (rc == 0)
    p->server_refs = 1;
  else
    p->pid = was; /* try again at the next call */
  mpi_unlock();
  return rc;
}

void mp__proxy_retain(void *obj) {
  mp_proxy *p = obj;
  mpi_lock();
  p->refs++;
  mpi_unlock();
}

void mp__proxy_release(void *obj) {
  mp_proxy *p = obj;
  if (p == NULL)
    return;
  mpi_lock();
  int last = --p->refs == 0;
  mpi_unlock();
  if (!last)
    return;
  mp_manager *m = p->m;
  if (p->server_refs > 0 && p->pid == mpi_getpid() && !m->closed) {
    mp_args *n = NULL;
    if (mp_args_pack(&n, "I", p->server_refs) == 0)
      request(m, MGR_DECREF, p->id, "", n, NULL);
    mp_args_free(n);
  }
  free(p);
  manager_unref(m);
}

void mp_proxy_free(mp_proxy *p) { mp__proxy_release(p); }

const char *mp_proxy_typeid(const mp_proxy *p) { return p ? p->type_id : NULL; }

mp_manager *mp_proxy_manager(mp_proxy *p) { return p ? p->m : NULL; }

int mp_args_add_proxy(mp_args *a, mp_proxy *p) {
  if (a == NULL || p == NULL)
    return mp__error(MP_EINVAL, "mp_args_add_proxy: NULL argument");
  mp_args *blob = NULL;
  int rc = mp__proxy_blob(&blob, p->type_id, p->id, p->m->address, p->m->key,
                          p->m->key_n);
  if (rc == 0) {
    size_t n;
    const void *b = mp__args_data(blob, &n);
    rc = mp__args_add_object(a, MP__OBJ_PROXY, b, n, p);
  }
  mp_args_free(blob);
  if (rc == 0)
    mp__proxy_retain(p);
  return rc;
}

mp_proxy *mp_args_proxy(const mp_args *a, size_t i) {
  return mp__args_object(a, i, MP__OBJ_PROXY);
}

static int manager_alloc(mp_manager **out, const char *address,
                         const void *key, size_t key_n);

/* A proxy a child received: bound to a manager client of this process
 * for that address (shared by all such proxies), with a reference of its
 * own taken at once so the object outlives the parent's. */
int mp__proxy_open(const void *blob, size_t n, void **out) {
  mp_args *h = NULL;
  const char *type_id, *address;
  const void *key;
  size_t key_n;
  int64_t id;
  int rc = mp__proxy_blob_parse(blob, n, &h, &type_id, &id, &address, &key,
                                &key_n);
  if (rc != 0)
    return rc;
  if (address[0] == '\0' || key_n == 0 || key_n > MP__AUTHKEY_CAP) {
    mp_args_free(h);
    return mp__error(MP_EPROTO, "a proxy reference without its manager");
  }
  int64_t me = mpi_getpid();
  mpi_lock();
  mp_manager *m = implicit_managers;
  while (m != NULL && !(m->pid == me && strcmp(m->address, address) == 0 &&
                        m->key_n == key_n && memcmp(m->key, key, key_n) == 0))
    m = m->next_implicit;
  mpi_unlock();
  if (m == NULL) {
    if ((rc = manager_alloc(&m, address, key, key_n)) != 0) {
      mp_args_free(h);
      return rc;
    }
    m->implicit = 1;
    m->refs = 0; /* held by its proxies only */
    mpi_lock();
    m->next_implicit = implicit_managers;
    implicit_managers = m;
    mpi_unlock();
  }
  mp_proxy *p = proxy_new(m, type_id, id);
  mp_args_free(h);
  if (p == NULL)
    return mp__error(MP_ENOMEM, "manager: out of memory");
  p->pid = -1;
  proxy_ready(p); /* a failure shows at the first call */
  *out = p;
  return 0;
}

/* ---- managers ------------------------------------------------------------- */

static int manager_alloc(mp_manager **out, const char *address,
                         const void *key, size_t key_n) {
  mp_manager *m = calloc(1, sizeof *m);
  if (m == NULL)
    return mp__error(MP_ENOMEM, "manager: out of memory");
  int rc = mpi_mutex_new(&m->mu);
  if (rc == 0 && (m->address = mp__strdup(address)) == NULL)
    rc = mp__error(MP_ENOMEM, "manager: out of memory");
  if (rc == 0)
    rc = new_session(m);
  if (rc != 0) {
    if (m->mu)
      mpi_mutex_free(m->mu);
    free(m->address);
    free(m);
    return rc;
  }
  memcpy(m->key, key, key_n);
  m->key_n = key_n;
  m->refs = 1;
  m->owner_pid = mpi_getpid();
  *out = m;
  return 0;
}

static void manager_close_conns(mp_manager *m) {
  mpi_mutex_lock(m->mu);
  mconn *c = m->idle;
  m->idle = NULL;
  mpi_mutex_unlock(m->mu);
  while (c != NULL) {
    mconn *next = c->next;
    mconn_free(c); /* (in a fork child: closed there already) */
    c = next;
  }
}

static void manager_unref(mp_manager *m) {
  mpi_mutex_lock(m->mu);
  int last = --m->refs <= 0;
  mpi_mutex_unlock(m->mu);
  if (!last)
    return;
  if (m->implicit) {
    mpi_lock();
    for (mp_manager **pp = &implicit_managers; *pp; pp = &(*pp)->next_implicit)
      if (*pp == m) {
        *pp = m->next_implicit;
        break;
      }
    mpi_unlock();
  }
  manager_close_conns(m);
  if (m->server != NULL)
    mp_process_free(m->server);
  mpi_mutex_free(m->mu);
  free(m->address);
  free(m);
}

static int check_key(const void *key, size_t n) {
  if (key != NULL && (n == 0 || n > MP__AUTHKEY_CAP))
    return mp__error(MP_EINVAL, "authkey must be 1 to %d bytes",
                     MP__AUTHKEY_CAP);
  return 0;
}

int mp_manager_connect(mp_manager **out, const char *address,
                       const void *authkey, size_t authkey_n,
                       double timeout) {
  if (out == NULL || address == NULL)
    return mp__error(MP_EINVAL, "mp_manager_connect: NULL argument");
  *out = NULL;
  int rc = check_key(authkey, authkey_n);
  if (rc == 0) rc = mp__check_timeout(timeout);
  if (rc != 0)
    return rc;
  unsigned char key[MP__AUTHKEY_CAP];
  size_t key_n = authkey_n;
  if (authkey != NULL)
    memcpy(key, authkey, authkey_n);
  else if ((rc = mp__default_authkey(key, sizeof key, &key_n)) != 0)
    return rc;
  mp_manager *m = NULL;
  if ((rc = manager_alloc(&m, address, key, key_n)) != 0)
    return rc;
  /* Connect now, so a wrong address or key shows here. */
  mconn *c = NULL;
  if ((rc = open_conn(m, timeout, 0, &c)) != 0) {
    manager_unref(m);
    return rc;
  }
  m->idle = c;
  *out = m;
  return 0;
}

static int manager_count;

int mp_manager_start(mp_manager **out, const mp_manager_options *opt) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_manager_start: NULL out");
  *out = NULL;
  int rc = opt ? check_key(opt->authkey, opt->authkey_n) : 0;
  if (rc != 0)
    return rc;
  if (opt && opt->initargs && mp__args_has_objects(opt->initargs))
    return mp__error(MP_ETYPE, "a manager's initargs must be plain values");
  unsigned char key[MP__AUTHKEY_CAP];
  size_t key_n;
  if (opt && opt->authkey) {
    memcpy(key, opt->authkey, opt->authkey_n);
    key_n = opt->authkey_n;
  } else if ((rc = mp__default_authkey(key, sizeof key, &key_n)) != 0) {
    return rc;
  }
  mp_conn *r = NULL, *w = NULL;
  mp_args *a = NULL;
  mp_process *p = NULL;
  if ((rc = mp_pipe(0, &r, &w)) != 0)
    return rc;
  rc = mp_args_new(&a);
  if (rc == 0) rc = mp__mgr_encode_start(a, opt, key, key_n, w);
  if (rc == 0) rc = mp_process_new(&p, mp__mgr_server_main, a);
  mp_args_free(a);
  if (rc == 0) {
    char name[48];
    mpi_lock();
    int k = ++manager_count;
    mpi_unlock();
    snprintf(name, sizeof name, "SyncManager-%d", k);
    mp_process_set_name(p, name);
    mp_process_set_daemon(p, 1);
    mp_process_set_authkey(p, key, key_n);
    if (opt && opt->context)
      rc = mp_process_set_context(p, opt->context);
  }
  if (rc == 0) rc = mp_process_start(p);
  mp_conn_free(w);
  /* The server says where it listens, or why it could not. */
  void *msg = NULL;
  size_t n = 0;
  if (rc == 0) {
    int ready = mp_conn_poll(r, 60.0);
    if (ready <= 0)
      rc = mp__error(MP_ETIMEDOUT, "the manager's server did not start");
    else if ((rc = mp_conn_recv_bytes(r, &msg, &n)) != 0 || n < 8)
      rc = mp__error(rc == MP_EEOF || rc == 0 ? MP_EOS : rc,
                     "the manager's server ended before it served");
  }
  mp_conn_free(r);
  if (rc == 0 && mp__get_i64(msg) != 0) {
    rc = (int)mp__get_i64(msg);
    if (rc > 0 || rc < MP__ERR_MIN)
      rc = MP_EOS;
    rc = mp__error(rc, "manager: %.*s", (int)(n - 8), (char *)msg + 8);
  }
  char *address = NULL;
  if (rc == 0 && (address = malloc(n - 7)) == NULL)
    rc = mp__error(MP_ENOMEM, "manager: out of memory");
  if (rc == 0) {
    memcpy(address, (char *)msg + 8, n - 8);
    address[n - 8] = '\0';
  }
  mp_free(msg);
  mp_manager *m = NULL;
  if (rc == 0) rc = mp_manager_connect(&m, address, key, key_n, CONNECT_TIMEOUT);
  free(address);
  if (rc != 0) {
    if (p != NULL) { /* (keeping the error that got us here) */
      char why[512];
      mp__strlcpy(why, mp_last_error_message(), sizeof why);
      if (mp_process_is_alive(p) == 1) /* it would serve on, unused */
        mp_process_terminate(p);
      if (mp_process_join(p, 5.0) != 0 || mp_process_is_alive(p) == 1) {
        mp_process_kill(p);
        mp_process_join(p, 5.0);
      }
      mp_process_free(p);
      mp__error(rc, "%s", why);
    }
    return rc;
  }
  m->server = p;
  *out = m;
  return 0;
}

const char *mp_manager_address(const mp_manager *m) {
  return m ? m->address : NULL;
}

size_t mp_manager_authkey(const mp_manager *m, void *buf, size_t cap) {
  if (m == NULL)
    return 0;
  if (buf != NULL)
    memcpy(buf, m->key, cap < m->key_n ? cap : m->key_n);
  return m->key_n;
}

int mp_manager_shutdown(mp_manager *m) {
  if (m == NULL)
    return mp__error(MP_EINVAL, "mp_manager_shutdown: NULL manager");
  int rc = 0;
  if (!m->shut && !m->closed) {
    rc = request(m, MGR_SHUTDOWN, 0, "", NULL, NULL);
    if (rc == MP_ECLOSED) /* gone already */
      rc = 0;
  }
  m->shut = 1;
  mpi_mutex_lock(m->mu);
  m->closed = 1;
  mpi_mutex_unlock(m->mu);
  manager_close_conns(m);
  if (m->server != NULL && m->owner_pid == mpi_getpid()) {
    if (mp_process_join(m->server, 10.0) != 0 ||
        mp_process_is_alive(m->server) == 1) {
      mp_process_terminate(m->server);
      mp_process_join(m->server, 10.0);
    }
  }
  return rc;
}

void mp_manager_free(mp_manager *m) {
  if (m == NULL)
    return;
  if (m->server != NULL && m->owner_pid == mpi_getpid() && !m->shut)
    mp_manager_shutdown(m);
  mpi_mutex_lock(m->mu);
  m->closed = 1;
  mpi_mutex_unlock(m->mu);
  manager_close_conns(m);
  manager_unref(m);
}

/* ---- making objects -------------------------------------------------- */

int mp_manager_create(mp_manager *m, const char *type_id, const mp_args *args,
                      mp_proxy **out) {
  if (m == NULL || type_id == NULL || out == NULL)
    return mp__error(MP_EINVAL, "mp_manager_create: NULL argument");
  *out = NULL;
  if (strlen(type_id) >= MGR_TYPEID_MAX)
    return mp__error(MP_ENOENT, "no type '%s' in this manager", type_id);
  mp_args *r = NULL;
  int rc = request(m, MGR_CREATE, 0, type_id, args, &r);
  if (rc != 0)
    return rc;
  int64_t id = mp_args_int(r, 0);
  mp_args_free(r);
  mp_proxy *p = proxy_new(m, type_id, id);
  if (p == NULL) {
    mp_args *n = NULL;
    if (mp_args_pack(&n, "i", 1) == 0)
      request(m, MGR_DECREF, id, "", n, NULL);
    mp_args_free(n);
    return mp__error(MP_ENOMEM, "manager: out of memory");
  }
  p->pid = m->pid;
  p->server_refs = 1;
  *out = p;
  return 0;
}

static int createf(mp_manager *m, const char *type_id, mp_proxy **out,
                   const char *fmt, ...) {
  mp_args *a = NULL;
  int rc = mp_args_new(&a);
  if (rc == 0 && fmt != NULL) {
    va_list ap;
    va_start(ap, fmt);
    rc = mp__args_vpack(a, fmt, &ap);
    va_end(ap);
  }
  if (rc == 0)
    rc = mp_manager_create(m, type_id, a, out);
  mp_args_free(a);
  return rc;
}

int mp_manager_dict(mp_manager *m, mp_proxy **out) {
  return mp_manager_create(m, "dict", NULL, out);
}
int mp_manager_list(mp_manager *m, mp_proxy **out) {
  return mp_manager_create(m, "list", NULL, out);
}
int mp_manager_namespace(mp_manager *m, mp_proxy **out) {
  return mp_manager_create(m, "Namespace", NULL, out);
}
int mp_manager_queue(mp_manager *m, int64_t maxsize, mp_proxy **out) {
  return createf(m, "Queue", out, "I", maxsize);
}
int mp_manager_joinable_queue(mp_manager *m, int64_t maxsize,
                              mp_proxy **out) {
  return createf(m, "JoinableQueue", out, "I", maxsize);
}
int mp_manager_lock(mp_manager *m, mp_proxy **out) {
  return mp_manager_create(m, "Lock", NULL, out);
}
int mp_manager_rlock(mp_manager *m, mp_proxy **out) {
  return mp_manager_create(m, "RLock", NULL, out);
}
int mp_manager_semaphore(mp_manager *m, unsigned value, mp_proxy **out) {
  return createf(m, "Semaphore", out, "I", (int64_t)value);
}
int mp_manager_bounded_semaphore(mp_manager *m, unsigned value,
                                 mp_proxy **out) {
  return createf(m, "BoundedSemaphore", out, "I", (int64_t)value);
}
int mp_manager_condition(mp_manager *m, mp_proxy *lock, mp_proxy **out) {
  if (lock != NULL && strcmp(lock->type_id, "Lock") != 0 &&
      strcmp(lock->type_id, "RLock") != 0)
    return mp__error(MP_ETYPE, "a Condition's lock must be a managed Lock "
                     "or RLock, not a %s", lock->type_id);
  return lock ? createf(m, "Condition", out, "P", lock)
              : mp_manager_create(m, "Condition", NULL, out);
}
int mp_manager_pool(mp_manager *m, int workers, mp_proxy **out) {
  if (workers < 0)
    return mp__error(MP_EINVAL, "mp_manager_pool: workers must be >= 0");
  return createf(m, "Pool", out, "i", workers);
}
int mp_manager_event(mp_manager *m, mp_proxy **out) {
  return mp_manager_create(m, "Event", NULL, out);
}
int mp_manager_barrier(mp_manager *m, unsigned parties, mp_proxy **out) {
  return createf(m, "Barrier", out, "I", (int64_t)parties);
}
int mp_manager_array(mp_manager *m, char typecode, size_t length,
                     mp_proxy **out) {
  char code[2] = {typecode, '\0'};
  return createf(m, "Array", out, "sI", code, (int64_t)length);
}

int mp_manager_value(mp_manager *m, char typecode, mp_proxy **out,
                     const char *fmt, ...) {
  if (out == NULL || fmt == NULL)
    return mp__error(MP_EINVAL, "mp_manager_value: NULL argument");
  char code[2] = {typecode, '\0'};
  mp_args *a = NULL;
  int rc = mp_args_pack(&a, "s", code);
  if (rc == 0) {
    va_list ap;
    va_start(ap, fmt);
    rc = mp__args_vpack(a, fmt, &ap);
    va_end(ap);
  }
  if (rc == 0)
    rc = mp_manager_create(m, "Value", a, out);
  mp_args_free(a);
  return rc;
}

/* ---- calls ------------------------------------------------------------------ */

int mp_proxy_call(mp_proxy *p, const char *method, const mp_args *args,
                  mp_args **result) {
  if (result != NULL)
    *result = NULL;
  if (method == NULL)
    return mp__error(MP_EINVAL, "mp_proxy_call: NULL method");
  int rc = proxy_ready(p);
  return rc ? rc : request(p->m, MGR_CALL, p->id, method, args, result);
}

/* A call with arguments from a prefix (lead items) and a format. */
static int vcall(mp_proxy *p, const char *method, mp_args **result,
                 const char *lead, const char *fmt, va_list *ap, ...) {
  mp_args *a = NULL;
  int rc = mp_args_new(&a);
  if (rc == 0 && lead != NULL) {
    va_list lp;
    va_start(lp, ap);
    rc = mp__args_vpack(a, lead, &lp);
    va_end(lp);
  }
  if (rc == 0 && fmt != NULL)
    rc = mp__args_vpack(a, fmt, ap);
  if (rc == 0)
    rc = mp_proxy_call(p, method, a, result);
  mp_args_free(a);
  return rc;
}

int mp_proxy_callf(mp_proxy *p, const char *method, mp_args **result,
                   const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = vcall(p, method, result, NULL, fmt, &ap);
  va_end(ap);
  return rc;
}

/* A call's integer result (freed), or its error. */
static int64_t int_result(int rc, mp_args *r, const char *method) {
  int64_t v = rc;
  if (rc == 0)
    v = mp_args_type(r, 0) == MP_ARG_INT
            ? mp_args_int(r, 0)
            : mp__error(MP_EPROTO, "manager: %s gave no integer", method);
  mp_args_free(r);
  return v;
}

/* A call whose one result is an integer: it, or the error. */
static int64_t call_int(mp_proxy *p, const char *method, const char *lead,
                        ...) {
  mp_args *r = NULL, *a = NULL;
  int rc = mp_args_new(&a);
  if (rc == 0 && lead != NULL) {
    va_list ap;
    va_start(ap, lead);
    rc = mp__args_vpack(a, lead, &ap);
    va_end(ap);
  }
  if (rc == 0) rc = mp_proxy_call(p, method, a, &r);
  mp_args_free(a);
  return int_result(rc, r, method);
}

/* A call by format whose one result is an integer. */
static int64_t vcall_int(mp_proxy *p, const char *method, const char *fmt,
                         va_list *ap) {
  mp_args *r = NULL;
  int rc = vcall(p, method, &r, NULL, fmt, ap);
  return int_result(rc, r, method);
}

#define FMT_CALL(p, method, result, lead, fmt, ...)                     \
  do {                                                                 \
    va_list ap_;                                                       \
    va_start(ap_, fmt);                                                \
    int rc_ = vcall(p, method, result, lead, fmt, &ap_, __VA_ARGS__);  \
    va_end(ap_);                                                       \
    return rc_;                                                        \
  } while (0)

/* dict */
int mp_dict_set(mp_proxy *d, const char *fmt, ...) {
  FMT_CALL(d, "set", NULL, NULL, fmt, 0);
}
int mp_dict_get(mp_proxy *d, mp_args **value, const char *fmt, ...) {
  FMT_CALL(d, "get", value, NULL, fmt, 0);
}
int mp_dict_delete(mp_proxy *d, const char *fmt, ...) {
  FMT_CALL(d, "delete", NULL, NULL, fmt, 0);
}
int mp_dict_pop(mp_proxy *d, mp_args **value, const char *fmt, ...) {
  FMT_CALL(d, "pop", value, NULL, fmt, 0);
}
#define FMT_CALL_INT(T, p, method, fmt)                                 \
  do {                                                                 \
    va_list ap_;                                                       \
    va_start(ap_, fmt);                                                \
    int64_t v_ = vcall_int(p, method, fmt, &ap_);                      \
    va_end(ap_);                                                       \
    return (T)v_;                                                      \
  } while (0)

int mp_dict_contains(mp_proxy *d, const char *fmt, ...) {
  FMT_CALL_INT(int, d, "contains", fmt);
}
int mp_dict_get_or(mp_proxy *d, mp_args **value, const char *fmt, ...) {
  FMT_CALL(d, "get", value, NULL, fmt, 0);
}
int mp_dict_pop_or(mp_proxy *d, mp_args **value, const char *fmt, ...) {
  FMT_CALL(d, "pop", value, NULL, fmt, 0);
}
int mp_dict_setdefault(mp_proxy *d, mp_args **value, const char *fmt, ...) {
  FMT_CALL(d, "setdefault", value, NULL, fmt, 0);
}
int mp_dict_popitem(mp_proxy *d, mp_args **item) {
  return mp_proxy_call(d, "popitem", NULL, item);
}
int64_t mp_dict_len(mp_proxy *d) { return call_int(d, "len", NULL); }
int mp_dict_keys(mp_proxy *d, mp_args **keys) {
  return mp_proxy_call(d, "keys", NULL, keys);
}
int mp_dict_values(mp_proxy *d, mp_args **values) {
  return mp_proxy_call(d, "values", NULL, values);
}
int mp_dict_items(mp_proxy *d, mp_args **items) {
  return mp_proxy_call(d, "items", NULL, items);
}
int mp_dict_update(mp_proxy *d, const mp_args *items) {
  return mp_proxy_call(d, "update", items, NULL);
}
int mp_dict_clear(mp_proxy *d) { return mp_proxy_call(d, "clear", NULL, NULL); }

/* list */
int mp_list_append(mp_proxy *l, const char *fmt, ...) {
  FMT_CALL(l, "append", NULL, NULL, fmt, 0);
}
int mp_list_extend(mp_proxy *l, const mp_args *items) {
  return mp_proxy_call(l, "extend", items, NULL);
}
int mp_list_get(mp_proxy *l, int64_t index, mp_args **value) {
  return mp_proxy_callf(l, "get", value, "I", index);
}
int mp_list_set(mp_proxy *l, int64_t index, const char *fmt, ...) {
  FMT_CALL(l, "set", NULL, "I", fmt, index);
}
int mp_list_insert(mp_proxy *l, int64_t index, const char *fmt, ...) {
  FMT_CALL(l, "insert", NULL, "I", fmt, index);
}
int mp_list_pop(mp_proxy *l, int64_t index, mp_args **value) {
  return mp_proxy_callf(l, "pop", value, "I", index);
}
int mp_list_remove(mp_proxy *l, const char *fmt, ...) {
  FMT_CALL(l, "remove", NULL, NULL, fmt, 0);
}
int64_t mp_list_len(mp_proxy *l) { return call_int(l, "len", NULL); }
int64_t mp_list_index(mp_proxy *l, const char *fmt, ...) {
  FMT_CALL_INT(int64_t, l, "index", fmt);
}
int64_t mp_list_count(mp_proxy *l, const char *fmt, ...) {
  FMT_CALL_INT(int64_t, l, "count", fmt);
}
int mp_list_contains(mp_proxy *l, const char *fmt, ...) {
  FMT_CALL_INT(int, l, "contains", fmt);
}
int mp_list_reverse(mp_proxy *l) {
  return mp_proxy_call(l, "reverse", NULL, NULL);
}
int mp_list_sort(mp_proxy *l, int reverse) {
  return mp_proxy_callf(l, "sort", NULL, "i", reverse != 0);
}
int mp_list_clear(mp_proxy *l) { return mp_proxy_call(l, "clear", NULL, NULL); }
int mp_list_slice(mp_proxy *l, int64_t start, int64_t stop, mp_args **items) {
  return mp_proxy_callf(l, "slice", items, "II", start, stop);
}
int mp_list_copy(mp_proxy *l, mp_args **items) {
  return mp_list_slice(l, 0, INT64_MAX, items);
}

/* Namespace */
int mp_namespace_set(mp_proxy *ns, const char *name, const char *fmt, ...) {
  if (name == NULL)
    return mp__error(MP_EINVAL, "mp_namespace_set: NULL name");
  FMT_CALL(ns, "setattr", NULL, "s", fmt, name);
}
int mp_namespace_get(mp_proxy *ns, const char *name, mp_args **value) {
  if (name == NULL)
    return mp__error(MP_EINVAL, "mp_namespace_get: NULL name");
  return mp_proxy_callf(ns, "getattr", value, "s", name);
}
int mp_namespace_delete(mp_proxy *ns, const char *name) {
  if (name == NULL)
    return mp__error(MP_EINVAL, "mp_namespace_delete: NULL name");
  return mp_proxy_callf(ns, "delattr", NULL, "s", name);
}

int mp_namespace_names(mp_proxy *ns, mp_args **names) {
  return mp_proxy_callf(ns, "vars", names, "i", 0);
}
int mp_namespace_items(mp_proxy *ns, mp_args **items) {
  return mp_proxy_callf(ns, "vars", items, "i", 1);
}

/* A timeout as sent: checked; MP_FOREVER is -1. */
static int timeout_arg(double timeout) { return mp__check_timeout(timeout); }

/* Queue */
int mp_proxy_queue_put(mp_proxy *q, double timeout, const char *fmt, ...) {
  int rc = timeout_arg(timeout);
  if (rc != 0)
    return rc;
  FMT_CALL(q, "put", NULL, "d", fmt, timeout);
}
int mp_proxy_queue_get(mp_proxy *q, double timeout, mp_args **value) {
  int rc = timeout_arg(timeout);
  return rc ? rc : mp_proxy_callf(q, "get", value, "d", timeout);
}
int64_t mp_proxy_queue_qsize(mp_proxy *q) { return call_int(q, "qsize", NULL); }
int mp_proxy_queue_empty(mp_proxy *q) {
  return (int)call_int(q, "empty", NULL);
}
int mp_proxy_queue_full(mp_proxy *q) { return (int)call_int(q, "full", NULL); }
int mp_proxy_queue_task_done(mp_proxy *q) {
  return mp_proxy_call(q, "task_done", NULL, NULL);
}
int mp_proxy_queue_join(mp_proxy *q, double timeout) {
  int rc = timeout_arg(timeout);
  return rc ? rc : mp_proxy_callf(q, "join", NULL, "d", timeout);
}

/* Lock, RLock, Semaphore */
int mp_proxy_lock_acquire(mp_proxy *l, double timeout) {
  int rc = timeout_arg(timeout);
  return rc ? rc : mp_proxy_callf(l, "acquire", NULL, "d", timeout);
}
int mp_proxy_lock_release(mp_proxy *l) {
  return mp_proxy_call(l, "release", NULL, NULL);
}
int mp_proxy_lock_locked(mp_proxy *l) {
  return (int)call_int(l, "locked", NULL);
}
int mp_proxy_semaphore_acquire(mp_proxy *s, double timeout) {
  return mp_proxy_lock_acquire(s, timeout);
}
int mp_proxy_semaphore_release(mp_proxy *s) {
  return mp_proxy_lock_release(s);
}
int mp_proxy_semaphore_get_value(mp_proxy *s) {
  return (int)call_int(s, "get_value", NULL);
}

/* Condition */
int mp_proxy_condition_acquire(mp_proxy *c, double timeout) {
  return mp_proxy_lock_acquire(c, timeout);
}
int mp_proxy_condition_release(mp_proxy *c) { return mp_proxy_lock_release(c); }
int mp_proxy_condition_wait(mp_proxy *c, double timeout) {
  int rc = timeout_arg(timeout);
  return rc ? rc : mp_proxy_callf(c, "wait", NULL, "d", timeout);
}
int mp_proxy_condition_wait_for(mp_proxy *c, int (*pred)(void *arg),
                                void *arg, double timeout) {
  if (pred == NULL)
    return mp__error(MP_EINVAL, "mp_proxy_condition_wait_for: NULL predicate");
  int rc = timeout_arg(timeout);
  double deadline = timeout < 0 ? -1.0 : mpi_now() + timeout;
  while (rc == 0 && !pred(arg)) {
    double left = mp__time_left(deadline);
    if (deadline >= 0 && left <= 0)
      return mp__error(MP_ETIMEDOUT, "predicate still false after %g s",
                       timeout);
    rc = mp_proxy_condition_wait(c, left);
    if (rc == MP_ETIMEDOUT)
      rc = 0; /* look once more, then give up above */
  }
  return rc;
}
int mp_proxy_condition_notify(mp_proxy *c, int n) {
  if (n < 0)
    return mp__error(MP_EINVAL, "mp_proxy_condition_notify: negative count");
  return mp_proxy_callf(c, "notify", NULL, "i", n);
}
int mp_proxy_condition_notify_all(mp_proxy *c) {
  return mp_proxy_call(c, "notify_all", NULL, NULL);
}

/* Event */
int mp_proxy_event_set(mp_proxy *e) { return mp_proxy_call(e, "set", NULL, NULL); }
int mp_proxy_event_clear(mp_proxy *e) {
  return mp_proxy_call(e, "clear", NULL, NULL);
}
int mp_proxy_event_is_set(mp_proxy *e) {
  return (int)call_int(e, "is_set", NULL);
}
int mp_proxy_event_wait(mp_proxy *e, double timeout) {
  int rc = timeout_arg(timeout);
  return rc ? rc : (int)call_int(e, "wait", "d", timeout);
}

/* Barrier */
int mp_proxy_barrier_wait(mp_proxy *b, double timeout) {
  int rc = timeout_arg(timeout);
  return rc ? rc : (int)call_int(b, "wait", "d", timeout);
}
int mp_proxy_barrier_reset(mp_proxy *b) {
  return mp_proxy_call(b, "reset", NULL, NULL);
}
int mp_proxy_barrier_abort(mp_proxy *b) {
  return mp_proxy_call(b, "abort", NULL, NULL);
}
int mp_proxy_barrier_parties(mp_proxy *b) {
  return (int)call_int(b, "parties", NULL);
}
int mp_proxy_barrier_n_waiting(mp_proxy *b) {
  return (int)call_int(b, "n_waiting", NULL);
}
int mp_proxy_barrier_broken(mp_proxy *b) {
  return (int)call_int(b, "broken", NULL);
}

/* Value and Array */
int mp_proxy_value_get(mp_proxy *v, mp_args **value) {
  return mp_proxy_call(v, "get", NULL, value);
}
int mp_proxy_value_set(mp_proxy *v, const char *fmt, ...) {
  FMT_CALL(v, "set", NULL, NULL, fmt, 0);
}
int mp_proxy_array_get(mp_proxy *a, size_t index, mp_args **value) {
  return mp_proxy_callf(a, "get", value, "I", (int64_t)index);
}
int mp_proxy_array_set(mp_proxy *a, size_t index, const char *fmt, ...) {
  FMT_CALL(a, "set", NULL, "I", fmt, (int64_t)index);
}
int64_t mp_proxy_array_len(mp_proxy *a) { return call_int(a, "len", NULL); }
int mp_proxy_array_tolist(mp_proxy *a, mp_args **items) {
  return mp_proxy_call(a, "tolist", NULL, items);
}

/* Pool: the function goes as (module, offset), then its arguments. */
static int pool_call(mp_proxy *p, const char *method, mp_task_fn fn,
                     const mp_args *in, int64_t chunksize, mp_args **out) {
  if (out != NULL)
    *out = NULL;
  if (p == NULL || fn == NULL)
    return mp__error(MP_EINVAL, "mp_proxy_pool_%s: NULL argument", method);
  char module[1024];
  uint64_t offset = 0;
  int rc = mpi_fn_encode((void (*)(void))fn, module, sizeof module, &offset);
  mp_args *a = NULL, *empty = NULL;
  if (rc == 0 && in == NULL) rc = mp_args_new(&empty);
  if (rc == 0) rc = mp_args_pack(&a, "sI", module, (int64_t)offset);
  if (rc == 0) rc = mp_args_add_tuple(a, in ? in : empty);
  if (rc == 0 && chunksize >= 0) rc = mp_args_add_int(a, chunksize);
  if (rc == 0) rc = mp_proxy_call(p, method, a, out);
  mp_args_free(a);
  mp_args_free(empty);
  return rc;
}

int mp_proxy_pool_apply(mp_proxy *p, mp_task_fn fn, const mp_args *args,
                        mp_args **result) {
  return pool_call(p, "apply", fn, args, -1, result);
}
static int pool_map_call(mp_proxy *p, const char *method, mp_task_fn fn,
                         const mp_args *items, size_t chunksize,
                         mp_args **results) {
  if (results != NULL)
    *results = NULL;
  if (items == NULL || chunksize > SIZE_MAX / 2) /* fits an int64_t */
    return mp__error(MP_EINVAL, "mp_proxy_pool_%s: NULL items or a "
                     "chunksize too large", method);
  return pool_call(p, method, fn, items, (int64_t)chunksize, results);
}
int mp_proxy_pool_map(mp_proxy *p, mp_task_fn fn, const mp_args *items,
                      size_t chunksize, mp_args **results) {
  return pool_map_call(p, "map", fn, items, chunksize, results);
}
int mp_proxy_pool_starmap(mp_proxy *p, mp_task_fn fn, const mp_args *items,
                          size_t chunksize, mp_args **results) {
  return pool_map_call(p, "starmap", fn, items, chunksize, results);
}
/* The _async forms: the call, made from a thread of this process (each
 * call has its own connection), completes an async result as a local
 * pool's would. */
typedef struct pool_job {
  mp_proxy *p;
  const char *method;
  mp_task_fn fn;
  mp_args *in;
  int64_t chunksize;
  mp_async *a;
} pool_job;

static void pool_job_run(void *arg) {
  pool_job *j = arg;
  mp_args *out = NULL;
  int rc = pool_call(j->p, j->method, j->fn, j->in, j->chunksize, &out);
  mp__async_finish(j->a, rc, rc != 0 ? mp_last_error_message() : NULL, out);
  mp__proxy_release(j->p);
  mp_args_free(j->in);
  free(j);
}

static int pool_async(mp_proxy *p, const char *method, mp_task_fn fn,
                      const mp_args *in, int64_t chunksize, mp_result_cb cb,
                      mp_error_cb ecb, void *arg, mp_async **out) {
  if (out != NULL)
    *out = NULL;
  if (p == NULL || fn == NULL || (chunksize >= 0 && in == NULL))
    return mp__error(MP_EINVAL, "mp_proxy_pool_%s_async: NULL argument",
                     method);
  pool_job *j = calloc(1, sizeof *j);
  if (j == NULL)
    return mp__error(MP_ENOMEM, "out of memory");
  int rc = in != NULL ? mp_args_copy(&j->in, in) : 0;
  if (rc == 0 && (j->a = mp__async_detached(cb, ecb, arg)) == NULL)
    rc = mp__error(MP_ENOMEM, "out of memory");
  mpi_thread *t = NULL;
  if (rc == 0) {
    j->p = p;
    j->method = method;
    j->fn = fn;
    j->chunksize = chunksize;
    mp__proxy_retain(p);
    if ((rc = mpi_thread_start(pool_job_run, j, &t)) != 0)
      mp__proxy_release(p);
  }
  if (rc != 0) {
    if (j->a != NULL) {
      mp_async_free(j->a);
      mp_async_free(j->a);
    }
    mp_args_free(j->in);
    free(j);
    return rc;
  }
  mpi_thread_detach(t);
  if (out != NULL)
    *out = j->a;
  else
    mp_async_free(j->a); /* dropped: it runs all the same */
  return 0;
}

int mp_proxy_pool_apply_async(mp_proxy *p, mp_task_fn fn, const mp_args *args,
                              mp_result_cb cb, mp_error_cb ecb, void *arg,
                              mp_async **out) {
  return pool_async(p, "apply", fn, args, -1, cb, ecb, arg, out);
}
int mp_proxy_pool_map_async(mp_proxy *p, mp_task_fn fn, const mp_args *items,
                            size_t chunksize, mp_result_cb cb,
                            mp_error_cb ecb, void *arg, mp_async **out) {
  if (chunksize > SIZE_MAX / 2)
    return mp__error(MP_EINVAL, "mp_proxy_pool_map_async: chunksize");
  return pool_async(p, "map", fn, items, (int64_t)chunksize, cb, ecb, arg,
                    out);
}
int mp_proxy_pool_starmap_async(mp_proxy *p, mp_task_fn fn,
                                const mp_args *items, size_t chunksize,
                                mp_result_cb cb, mp_error_cb ecb, void *arg,
                                mp_async **out) {
  if (chunksize > SIZE_MAX / 2)
    return mp__error(MP_EINVAL, "mp_proxy_pool_starmap_async: chunksize");
  return pool_async(p, "starmap", fn, items, (int64_t)chunksize, cb, ecb,
                    arg, out);
}
int mp_proxy_pool_close(mp_proxy *p) {
  return mp_proxy_call(p, "close", NULL, NULL);
}
int mp_proxy_pool_terminate(mp_proxy *p) {
  return mp_proxy_call(p, "terminate", NULL, NULL);
}
int mp_proxy_pool_join(mp_proxy *p, double timeout) {
  int rc = timeout_arg(timeout);
  return rc ? rc : mp_proxy_callf(p, "join", NULL, "d", timeout);
}
