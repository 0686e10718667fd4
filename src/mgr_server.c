/*
 * mgr_server.c - the Manager's server: the object table, client sessions
 * (their references and the locks they hold), one thread per connection,
 * the request decoder, the registry of custom types and the server
 * process mp_manager_start runs.
 *
 * Everything a request touches is guarded by one server lock (srv->mu);
 * blocking methods (a lock acquire, a queue get) wait on the server's
 * condition in short slices, checking that their client is still there.
 * A session is one client process: all its connections (one per thread
 * that calls at the same time) say the same 16-byte session id first.
 * When its last connection closes, whatever it died holding is released:
 * its references are dropped and its locks are freed with the owner-died
 * mark, so the next acquirer gets MP_EOWNERDEAD.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "manager.h"
#include "process.h"

/* ---- little helpers -------------------------------------------------- */

void mp__put_i64(unsigned char *p, int64_t v) {
  uint64_t u = (uint64_t)v;
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(u >> (8 * i));
}

int64_t mp__get_i64(const unsigned char *p) {
  uint64_t u = 0;
  for (int i = 0; i < 8; i++)
    u |= (uint64_t)p[i] << (8 * i);
  return (int64_t)u;
}

static uint32_t get_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

int mp__proxy_blob(mp_args **out, const char *type_id, int64_t id,
                   const char *address, const void *key, size_t key_n) {
  mp_args *b = NULL;
  int rc = mp_args_new(&b);
  if (rc == 0) rc = mp_args_add_str(b, type_id);
  if (rc == 0) rc = mp_args_add_int(b, id);
  if (rc == 0) rc = mp_args_add_str(b, address ? address : "");
  if (rc == 0) rc = mp_args_add_bytes(b, key, key_n);
  if (rc != 0) {
    mp_args_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

int mp__proxy_blob_parse(const void *blob, size_t n, mp_args **holder,
                         const char **type_id, int64_t *id,
                         const char **address, const void **key,
                         size_t *key_n) {
  mp_args *b = NULL;
  if (mp__args_from_bytes(&b, blob, n) != 0)
    return mp__error(MP_EPROTO, "malformed proxy reference");
  if (mp_args_count(b) != 4 || mp_args_type(b, 0) != MP_ARG_STR ||
      mp_args_type(b, 1) != MP_ARG_INT || mp_args_type(b, 2) != MP_ARG_STR ||
      mp_args_type(b, 3) != MP_ARG_BYTES) {
    mp_args_free(b);
    return mp__error(MP_EPROTO, "malformed proxy reference");
  }
  *type_id = mp_args_str(b, 0);
  *id = mp_args_int(b, 1);
  *address = mp_args_str(b, 2);
  *key = mp_args_bytes(b, 3, key_n);
  *holder = b;
  return 0;
}

/* ---- an int64 -> int64 map (open addressing; keys > 0) --------------- */

typedef struct idmap {
  int64_t *k, *v;
  size_t cap, used, live;
} idmap;

#define IDMAP_TOMB ((int64_t)-1)

static size_t idmap_slot(const idmap *m, int64_t key) {
  uint64_t h = (uint64_t)key * 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 17) & (m->cap - 1);
}

static int64_t *idmap_find(const idmap *m, int64_t key) {
  if (m->cap == 0)
    return NULL;
  for (size_t i = idmap_slot(m, key);; i = (i + 1) & (m->cap - 1)) {
    if (m->k[i] == 0)
      return NULL;
    if (m->k[i] == key)
      return &m->v[i];
  }
}

static int idmap_grow(idmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 16;
  if (m->live * 4 < m->cap)
    cap = m->cap; /* mostly tombstones: rehash in place */
  int64_t *k = calloc(cap, sizeof *k), *v = calloc(cap, sizeof *v);
  if (k == NULL || v == NULL) {
    free(k);
    free(v);
    return mp__error(MP_ENOMEM, "manager: out of memory");
  }
  idmap n = {k, v, cap, 0, 0};
  for (size_t i = 0; i < m->cap; i++)
    if (m->k[i] > 0) {
      size_t j = idmap_slot(&n, m->k[i]);
      while (n.k[j] != 0)
        j = (j + 1) & (cap - 1);
      n.k[j] = m->k[i];
      n.v[j] = m->v[i];
      n.used++;
      n.live++;
    }
  free(m->k);
  free(m->v);
  *m = n;
  return 0;
}

static int idmap_put(idmap *m, int64_t key, int64_t val) {
  int64_t *slot = idmap_find(m, key);
  if (slot != NULL) {
    *slot = val;
    return 0;
  }
  if ((m->used + 1) * 4 > m->cap * 3) {
    int rc = idmap_grow(m);
    if (rc != 0)
      return rc;
  }
  size_t i = idmap_slot(m, key);
  while (m->k[i] > 0)
    i = (i + 1) & (m->cap - 1);
  if (m->k[i] == 0)
    m->used++;
  m->k[i] = key;
  m->v[i] = val;
  m->live++;
  return 0;
}

static void idmap_del(idmap *m, int64_t key) {
  int64_t *slot = idmap_find(m, key);
  if (slot != NULL) {
    m->k[slot - m->v] = IDMAP_TOMB;
    m->live--;
  }
}

static void idmap_free(idmap *m) {
  free(m->k);
  free(m->v);
  memset(m, 0, sizeof *m);
}

/* ---- the registry of custom types ------------------------------------ */

static mgr_type *registry;
static size_t registry_n;

static void user_type_free(mp_manager_type *t) {
  if (t == NULL)
    return;
  for (size_t i = 0; i < t->n_methods; i++)
    free((char *)t->methods[i].name);
  free((void *)t->methods);
  free((char *)t->type_id);
  free(t);
}

static int valid_name(const char *s, size_t max) {
  size_t n = s ? strlen(s) : 0;
  return n > 0 && n < max;
}

int mp_manager_register(const mp_manager_type *type) {
  if (type == NULL || !valid_name(type->type_id, MGR_TYPEID_MAX) ||
      type->create == NULL || (type->n_methods > 0 && type->methods == NULL))
    return mp__error(MP_EINVAL, "mp_manager_register: a type needs a typeid "
                     "(1 to %d bytes) and a create function",
                     MGR_TYPEID_MAX - 1);
  for (size_t i = 0; i < type->n_methods; i++)
    if (!valid_name(type->methods[i].name, MGR_NAME_MAX) ||
        type->methods[i].fn == NULL)
      return mp__error(MP_EINVAL, "mp_manager_register: method %zu needs a "
                       "name and a function", i);
  for (size_t i = 0; mp__mgr_builtin_types[i] != NULL; i++)
    if (strcmp(mp__mgr_builtin_types[i]->type_id, type->type_id) == 0)
      return mp__error(MP_EEXIST, "typeid '%s' is built in", type->type_id);
  mpi_lock();
  for (size_t i = 0; i < registry_n; i++)
    if (strcmp(registry[i].type_id, type->type_id) == 0) {
      mpi_unlock();
      return mp__error(MP_EEXIST, "typeid '%s' is already registered",
                       type->type_id);
    }
  mp_manager_type *copy = calloc(1, sizeof *copy);
  mp_manager_method *ms = calloc(type->n_methods + 1, sizeof *ms);
  mgr_type *r = realloc(registry, (registry_n + 1) * sizeof *r);
  int ok = copy != NULL && ms != NULL && r != NULL;
  if (r != NULL)
    registry = r;
  if (ok) {
    *copy = *type;
    copy->type_id = mp__strdup(type->type_id);
    copy->methods = ms;
    ok = copy->type_id != NULL;
    for (size_t i = 0; ok && i < type->n_methods; i++) {
      ms[i].fn = type->methods[i].fn;
      ok = (ms[i].name = mp__strdup(type->methods[i].name)) != NULL;
    }
  }
  if (!ok) {
    mpi_unlock();
    if (copy != NULL)
      copy->methods = ms;
    user_type_free(copy);
    return mp__error(MP_ENOMEM, "mp_manager_register: out of memory");
  }
  memset(&registry[registry_n], 0, sizeof registry[0]);
  registry[registry_n].type_id = copy->type_id;
  registry[registry_n].user = copy;
  registry_n++;
  mpi_unlock();
  return 0;
}

static int fn_add(mp_args *a, void (*fn)(void)) {
  char module[1024] = "";
  uint64_t off = 0;
  int rc = 0;
  if (fn != NULL && (rc = mpi_fn_encode(fn, module, sizeof module, &off)) != 0)
    return rc;
  rc = mp_args_add_str(a, module);
  return rc ? rc : mp_args_add_int(a, fn ? (int64_t)off : -1);
}

static int fn_get(const mp_args *a, size_t i, void (**fn)(void)) {
  *fn = NULL;
  if (mp_args_type(a, i) != MP_ARG_STR || mp_args_type(a, i + 1) != MP_ARG_INT)
    return mp__error(MP_EPROTO, "manager: malformed registry");
  int64_t off = mp_args_int(a, i + 1);
  return off < 0 ? 0 : mpi_fn_decode(mp_args_str(a, i), (uint64_t)off, fn);
}

/* The registry as items appended to a (for the server process). */
static int registry_encode(mp_args *a) {
  mpi_lock();
  int rc = mp_args_add_int(a, (int64_t)registry_n);
  for (size_t i = 0; rc == 0 && i < registry_n; i++) {
    const mp_manager_type *t = registry[i].user;
    rc = mp_args_add_str(a, t->type_id);
    if (rc == 0) rc = fn_add(a, (void (*)(void))t->create);
    if (rc == 0) rc = fn_add(a, (void (*)(void))t->destroy);
    if (rc == 0) rc = mp_args_add_int(a, (int64_t)t->n_methods);
    for (size_t j = 0; rc == 0 && j < t->n_methods; j++) {
      rc = mp_args_add_str(a, t->methods[j].name);
      if (rc == 0) rc = fn_add(a, (void (*)(void))t->methods[j].fn);
    }
  }
  mpi_unlock();
  return rc;
}

/* Rebuild the registry from items at *i (in the server process). */
static int registry_decode(const mp_args *a, size_t *i) {
  int64_t n = mp_args_int(a, (*i)++);
  for (int64_t k = 0; k < n; k++) {
    mp_manager_type t;
    memset(&t, 0, sizeof t);
    t.type_id = mp_args_str(a, (*i)++);
    void (*fn)(void);
    int rc = fn_get(a, *i, &fn);
    t.create = (int (*)(void **, const mp_args *))fn;
    *i += 2;
    if (rc == 0) rc = fn_get(a, *i, &fn);
    t.destroy = (void (*)(void *))fn;
    *i += 2;
    int64_t nm = mp_args_int(a, (*i)++);
    if (rc != 0 || t.type_id == NULL || nm < 0 || nm > 100000)
      return rc ? rc : mp__error(MP_EPROTO, "manager: malformed registry");
    mp_manager_method *ms = calloc((size_t)nm + 1, sizeof *ms);
    if (ms == NULL)
      return mp__error(MP_ENOMEM, "manager: out of memory");
    for (int64_t j = 0; rc == 0 && j < nm; j++) {
      ms[j].name = mp_args_str(a, (*i)++);
      rc = fn_get(a, *i, &fn);
      ms[j].fn = (int (*)(void *, const mp_args *, mp_args *))fn;
      *i += 2;
    }
    t.methods = ms;
    t.n_methods = (size_t)nm;
    if (rc == 0) {
      rc = mp_manager_register(&t);
      if (rc == MP_EEXIST) /* fork: the parent's registry is ours already */
        rc = 0;
    }
    free(ms);
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* ---- the server ------------------------------------------------------ */

struct mgr_session {
  unsigned char sid[MGR_SID_LEN];
  int conns;
  idmap refs; /* object id -> references held */
  mgr_session *next;
};

struct mgr_server {
  mpi_mutex *mu;
  mpi_cond *cond;
  idmap objs; /* id -> mgr_obj * */
  int64_t next_id;
  mgr_session *sessions;
  mp_listener *listener;
  unsigned char key[MP__AUTHKEY_CAP];
  size_t key_n;
  volatile uint32_t stopping; /* read without the lock: atomics */
  int threads; /* connection threads alive */
  /* Every connection thread, joined once it has ended (before the server
   * returns): a thread still on its way out when the process exits runs
   * its thread-local destructors concurrently with exit's (libcrypto's
   * OPENSSL_cleanup freed the same per-thread block twice). */
  struct conn_thread *thr_head;
  int max_threads; /* authenticated connections served at once */
  int authed;      /* authenticated connections being served */
  struct conn_job *pend_head, *pend_tail; /* handshakes, oldest first */
  int pending;
  char *address;
};

static const mgr_type *find_type(const char *type_id) {
  for (size_t i = 0; mp__mgr_builtin_types[i] != NULL; i++)
    if (strcmp(mp__mgr_builtin_types[i]->type_id, type_id) == 0)
      return mp__mgr_builtin_types[i];
  const mgr_type *t = NULL;
  mpi_lock();
  for (size_t i = 0; i < registry_n && t == NULL; i++)
    if (strcmp(registry[i].type_id, type_id) == 0)
      t = &registry[i];
  mpi_unlock();
  return t;
}

mgr_obj *mp__mgr_find(mgr_server *srv, int64_t id) {
  int64_t *v = id > 0 ? idmap_find(&srv->objs, id) : NULL;
  return v ? (mgr_obj *)(intptr_t)*v : NULL;
}

static void obj_destroy(mgr_server *srv, mgr_obj *obj) {
  idmap_del(&srv->objs, obj->id);
  if (obj->type->user != NULL) {
    if (obj->type->user->destroy != NULL)
      obj->type->user->destroy(obj->data);
  } else if (obj->type->destroy != NULL) {
    obj->type->destroy(srv, obj);
  }
  free(obj);
}

void mp__mgr_unref(mgr_server *srv, mgr_obj *obj) {
  if (--obj->refs <= 0)
    obj_destroy(srv, obj);
}

int mp__mgr_session_alive(const mgr_session *s) {
  return s != NULL && s->conns > 0;
}

/* A proxy item's object (reduced or whole blob). */
static int item_proxy(mgr_server *srv, const unsigned char *p, size_t n,
                      mgr_obj **obj) {
  *obj = NULL;
  if (n < 9 || p[0] != MP_ARG_OBJECT)
    return 0;
  if (get_u32(p + 1) != MP__OBJ_PROXY)
    return mp__error(MP_ETYPE, "only plain values and proxies of this "
                     "manager can be stored");
  mp_args *h = NULL;
  const char *type_id, *address;
  const void *key;
  size_t key_n;
  int64_t id;
  int rc = mp__proxy_blob_parse(p + 9, get_u32(p + 5), &h, &type_id, &id,
                                &address, &key, &key_n);
  if (rc != 0)
    return rc;
  mgr_obj *o = mp__mgr_find(srv, id);
  if (o == NULL || strcmp(o->type->type_id, type_id) != 0)
    rc = mp__error(MP_ENOENT, "a proxy of an object this manager does not "
                   "have (%s %lld)", type_id, (long long)id);
  mp_args_free(h);
  *obj = o;
  return rc;
}

int mp__mgr_hold(mgr_server *srv, const void *item, size_t n) {
  mgr_obj *o;
  int rc = item_proxy(srv, item, n, &o);
  if (rc == 0 && o != NULL)
    o->refs++;
  return rc;
}

void mp__mgr_drop(mgr_server *srv, const void *item, size_t n) {
  mgr_obj *o;
  if (item_proxy(srv, item, n, &o) == 0 && o != NULL)
    mp__mgr_unref(srv, o);
}

static int session_ref(mgr_session *s, mgr_obj *o) {
  int64_t *c = idmap_find(&s->refs, o->id);
  int rc = c ? 0 : idmap_put(&s->refs, o->id, 0);
  if (rc != 0)
    return rc;
  (*idmap_find(&s->refs, o->id))++;
  o->refs++;
  return 0;
}

int mp__mgr_result_item(mgr_call *call, const void *item, size_t n) {
  mgr_obj *o;
  int rc = item_proxy(call->srv, item, n, &o);
  if (rc == 0 && o != NULL && call->session != NULL)
    rc = session_ref(call->session, o);
  if (rc == 0 && (rc = mp__args_add_raw(call->result, item, n)) != 0 &&
      o != NULL && call->session != NULL) {
    (*idmap_find(&call->session->refs, o->id))--;
    mp__mgr_unref(call->srv, o);
  }
  return rc;
}

void mp__mgr_notify(mgr_server *srv) { mpi_cond_broadcast(srv->cond); }

#define WAIT_SLICE 0.1

int mp__mgr_check(mgr_call *call) {
  if (mp__load32(&call->srv->stopping))
    return mp__error(MP_ECLOSED, "the manager is shutting down");
  /* The client waits for this reply: anything readable means it went
   * away (or broke the protocol). */
  if (call->conn != NULL && mp_conn_poll(call->conn, 0) != 0)
    return mp__error(MP_ECLOSED, "the client went away");
  return 0;
}

void mp__mgr_unlock(mgr_call *call) { mpi_mutex_unlock(call->srv->mu); }
void mp__mgr_relock(mgr_call *call) { mpi_mutex_lock(call->srv->mu); }

int mp__mgr_wait(mgr_call *call, double deadline) {
  int rc = mp__mgr_check(call);
  if (rc != 0)
    return rc;
  if (call->conn == NULL) /* fuzzing: never block */
    return mp__error(MP_ETIMEDOUT, "would block");
  double slice = WAIT_SLICE;
  if (deadline >= 0) {
    double left = deadline - mpi_now();
    if (left <= 0)
      return MP_ETIMEDOUT;
    if (left < slice)
      slice = left;
  }
  mpi_cond_wait(call->srv->cond, call->srv->mu, slice);
  return 0;
}

static void session_end(mgr_server *srv, mgr_session *s) {
  for (mgr_session **pp = &srv->sessions; *pp != NULL; pp = &(*pp)->next)
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  /* Locks it held first (they are released with the owner-died mark),
   * then its references. */
  for (size_t i = 0; i < srv->objs.cap; i++)
    if (srv->objs.k[i] > 0) {
      mgr_obj *o = (mgr_obj *)(intptr_t)srv->objs.v[i];
      if (o->type->owner_died != NULL)
        o->type->owner_died(srv, o, s);
    }
  for (size_t i = 0; i < s->refs.cap; i++)
    if (s->refs.k[i] > 0) {
      mgr_obj *o = mp__mgr_find(srv, s->refs.k[i]);
      for (int64_t c = s->refs.v[i]; o != NULL && c > 0; c--) {
        int last = o->refs == 1;
        mp__mgr_unref(srv, o);
        if (last)
          break;
      }
    }
  idmap_free(&s->refs);
  free(s);
  mp__mgr_notify(srv);
}

static int session_bind(mgr_server *srv, const void *sid, size_t n,
                        mgr_session **out) {
  if (n != MGR_SID_LEN)
    return mp__error(MP_EPROTO, "malformed session id");
  mgr_session *s = srv->sessions;
  while (s != NULL && memcmp(s->sid, sid, MGR_SID_LEN) != 0)
    s = s->next;
  if (s == NULL) {
    if ((s = calloc(1, sizeof *s)) == NULL)
      return mp__error(MP_ENOMEM, "manager: out of memory");
    memcpy(s->sid, sid, MGR_SID_LEN);
    s->next = srv->sessions;
    srv->sessions = s;
  }
  s->conns++;
  *out = s;
  return 0;
}

static void session_unbind(mgr_server *srv, mgr_session *s) {
  if (s != NULL && --s->conns == 0)
    session_end(srv, s);
}

/* ---- requests ---------------------------------------------------------- */

static int do_create(mgr_call *call, const char *type_id) {
  const mgr_type *t = find_type(type_id);
  if (t == NULL)
    return mp__error(MP_ENOENT, "no type '%s' in this manager", type_id);
  mgr_obj *o = calloc(1, sizeof *o);
  if (o == NULL)
    return mp__error(MP_ENOMEM, "manager: out of memory");
  mgr_server *srv = call->srv;
  o->id = ++srv->next_id;
  o->type = t;
  int rc;
  if (t->user != NULL) {
    void *data = NULL;
    mp__clear_error();
    rc = t->user->create(&data, call->args);
    if (rc == 0)
      o->data = data;
    else if (rc > 0)
      rc = MP_EVALUE;
  } else {
    rc = t->create(call, o);
  }
  if (rc != 0) {
    free(o);
    return rc;
  }
  if ((rc = idmap_put(&srv->objs, o->id, (int64_t)(intptr_t)o)) != 0) {
    o->refs = 1;
    obj_destroy(srv, o);
    return rc;
  }
  if (call->session != NULL)
    rc = session_ref(call->session, o);
  else
    o->refs = 1; /* fuzzing: kept until the bare server goes */
  if (rc == 0)
    rc = mp_args_add_int(call->result, o->id);
  return rc;
}

static int do_call(mgr_call *call, int64_t id, const char *method) {
  mgr_obj *o = mp__mgr_find(call->srv, id);
  if (o == NULL)
    return mp__error(MP_ENOENT, "no object %lld in this manager (freed, "
                     "or the manager restarted)", (long long)id);
  const mgr_type *t = o->type;
  if (t->user != NULL) {
    for (size_t i = 0; i < t->user->n_methods; i++)
      if (strcmp(t->user->methods[i].name, method) == 0) {
        mp__clear_error();
        int rc = t->user->methods[i].fn(o->data, call->args, call->result);
        return rc > 0 ? MP_EVALUE : rc;
      }
  } else {
    for (size_t i = 0; i < t->n_methods; i++)
      if (strcmp(t->methods[i].name, method) == 0)
        return t->methods[i].fn(call, o);
  }
  return mp__error(MP_ENOENT, "'%s' has no method '%s'", t->type_id, method);
}

static int do_incref(mgr_call *call, int64_t id) {
  mgr_obj *o = mp__mgr_find(call->srv, id);
  if (o == NULL)
    return mp__error(MP_ENOENT, "no object %lld in this manager",
                     (long long)id);
  return call->session ? session_ref(call->session, o) : 0;
}

static int do_decref(mgr_call *call, int64_t id) {
  int64_t n = 1;
  if (mp_args_count(call->args) > 0) {
    if (mp_args_type(call->args, 0) != MP_ARG_INT)
      return mp__error(MP_EPROTO, "decref: malformed count");
    n = mp_args_int(call->args, 0);
  }
  int64_t *have = call->session ? idmap_find(&call->session->refs, id) : NULL;
  mgr_obj *o = mp__mgr_find(call->srv, id);
  if (have == NULL || o == NULL)
    return 0; /* nothing of ours: already released */
  if (n > *have || n < 0)
    n = *have;
  *have -= n;
  if (*have == 0)
    idmap_del(&call->session->refs, id);
  for (; n > 0; n--) {
    int last = o->refs == 1;
    mp__mgr_unref(call->srv, o);
    if (last)
      break;
  }
  return 0;
}

/* A reply: the status and either the results or the error message. */
static int make_reply(int status, const mp_args *result, void **reply,
                      size_t *reply_n) {
  const void *body = NULL;
  size_t n = 0;
  if (status == 0) {
    body = mp__args_data(result, &n);
  } else {
    body = mp_last_error_message();
    n = body ? strlen(body) : 0;
    if (n == 0) {
      body = mp_strerror(status);
      n = strlen(body);
    }
  }
  unsigned char *r = malloc(8 + n);
  if (r == NULL)
    return MP_ENOMEM;
  mp__put_i64(r, status);
  if (n > 0)
    memcpy(r + 8, body, n);
  *reply = r;
  *reply_n = 8 + n;
  return 0;
}

int mp__mgr_handle(mgr_server *srv, mgr_session **session, mp_conn *conn,
                   const void *req, size_t n, void **reply,
                   size_t *reply_n) {
  const unsigned char *p = req;
  mgr_call call;
  memset(&call, 0, sizeof call);
  call.srv = srv;
  call.conn = conn;
  call.session = *session;
  mp_args *args = NULL, *result = NULL;
  int stop = 0, rc = 0;
  char name[MGR_NAME_MAX];
  uint32_t name_n = 0;
  int op = 0;
  int64_t id = 0;
  mp__clear_error();
  if (n < MGR_HEADER || (name_n = get_u32(p + 4)) >= MGR_NAME_MAX ||
      name_n > n - MGR_HEADER || p[1] != 0 || p[2] != 0 || p[3] != 0) {
    rc = mp__error(MP_EPROTO, "malformed request");
  } else {
    op = p[0];
    id = mp__get_i64(p + 8);
    call.tid = mp__get_i64(p + 16);
    memcpy(name, p + MGR_HEADER, name_n);
    name[name_n] = '\0';
    if (op != MGR_HELLO && memchr(name, '\0', name_n) != NULL)
      rc = mp__error(MP_EPROTO, "malformed request (a NUL in the name)");
  }
  if (rc == 0 && op != MGR_HELLO &&
      (rc = mp__args_from_bytes(&args, p + MGR_HEADER + name_n,
                                n - MGR_HEADER - name_n)) != 0)
    rc = mp__error(MP_EPROTO, "malformed request arguments");
  if (rc == 0)
    rc = mp_args_new(&result);
  call.args = args;
  call.result = result;
  if (rc == 0) {
    mpi_mutex_lock(srv->mu);
    if (op != MGR_HELLO && *session == NULL && conn != NULL) {
      rc = mp__error(MP_EPROTO, "a connection must say hello first");
    } else if (mp__load32(&srv->stopping)) {
      rc = mp__error(MP_ECLOSED, "the manager was shut down");
    } else {
      switch (op) {
      case MGR_HELLO:
        if (*session != NULL)
          rc = mp__error(MP_EPROTO, "hello said twice");
        else
          rc = session_bind(srv, p + MGR_HEADER, name_n, session);
        break;
      case MGR_CREATE:
        rc = do_create(&call, name);
        break;
      case MGR_CALL:
        rc = do_call(&call, id, name);
        break;
      case MGR_INCREF:
        rc = do_incref(&call, id);
        break;
      case MGR_DECREF:
        rc = do_decref(&call, id);
        break;
      case MGR_SHUTDOWN:
        /* Stopping from now on, before the reply goes out: once the
         * client that asked sees it, no other request is served. */
        mp__store32(&srv->stopping, 1);
        stop = 1;
        break;
      default:
        rc = mp__error(MP_EPROTO, "unknown request %d", op);
      }
    }
    mpi_mutex_unlock(srv->mu);
  }
  if (rc > 0 || rc < MP__ERR_MIN)
    rc = MP_EVALUE; /* a custom method's odd code */
  if (make_reply(rc, result, reply, reply_n) != 0) {
    *reply = NULL;
    *reply_n = 0;
  }
  mp_args_free(args);
  mp_args_free(result);
  return stop;
}

/* ---- connections -------------------------------------------------- */

typedef struct conn_thread {
  mpi_thread *t;
  int done; /* its function has returned (srv->mu) */
  struct conn_thread *next;
} conn_thread;

typedef struct conn_job {
  mgr_server *srv;
  mp_conn *conn;
  conn_thread *thr;
  volatile uint32_t drop;            /* its handshake is abandoned */
  struct conn_job *prev, *next;      /* in the handshake list */
  int listed;
  int authed;                        /* admitted: counted in srv->authed */
} conn_job;

#define HANDSHAKE_TIMEOUT 10.0
#define POLL_SLICE 0.25
/* Authenticated connections served at once (each has a thread); more
 * are closed at once, so a flood of clients cannot exhaust the server's
 * threads or memory.  MPROC_MANAGER_MAX_CONNECTIONS in the server's
 * environment changes it. */
#define MAX_CONNECTIONS 1024
/* Connections still in the handshake: when one more comes, the oldest is
 * dropped, so that silent or half-speaking peers, however many, can
 * neither fill the server nor lock a real client out (a handshake takes
 * a few round trips; the dropped had theirs). */
#define MAX_HANDSHAKES 64
/* Connections the system queues for accept (see mp_manager_server_new). */
#define LISTEN_BACKLOG 128

static int max_connections(void) {
  const char *env = getenv("MPROC_MANAGER_MAX_CONNECTIONS");
  if (env != NULL && env[0] != '\0') {
    char *end;
    long v = strtol(env, &end, 10);
    if (*end == '\0' && v >= 1 && v <= 1000000)
      return (int)v;
  }
  return MAX_CONNECTIONS;
}

static void server_stop(mgr_server *srv) {
  mpi_mutex_lock(srv->mu);
  mp__store32(&srv->stopping, 1);
  mp__mgr_notify(srv);
  mpi_mutex_unlock(srv->mu);
  if (srv->listener != NULL)
    mp_listener_close(srv->listener);
}

/* The handshake list (srv->mu held). */
static void pend_unlink(mgr_server *srv, conn_job *j) {
  if (!j->listed)
    return;
  if (j->prev != NULL)
    j->prev->next = j->next;
  else
    srv->pend_head = j->next;
  if (j->next != NULL)
    j->next->prev = j->prev;
  else
    srv->pend_tail = j->prev;
  j->prev = j->next = NULL;
  j->listed = 0;
  srv->pending--;
}

static void pend_add(mgr_server *srv, conn_job *j) {
  if (srv->pending >= MAX_HANDSHAKES && srv->pend_head != NULL) {
    conn_job *old = srv->pend_head;
    pend_unlink(srv, old);
    mp__store32(&old->drop, 1);
  }
  j->prev = srv->pend_tail;
  j->next = NULL;
  if (srv->pend_tail != NULL)
    srv->pend_tail->next = j;
  else
    srv->pend_head = j;
  srv->pend_tail = j;
  j->listed = 1;
  srv->pending++;
}

/* Stop a connection's handshake or a read of its request. */
static int job_stop(void *arg) {
  conn_job *j = arg;
  return mp__load32(&j->drop) != 0 || mp__load32(&j->srv->stopping) != 0;
}

/* A peer that proved the key is served if there is room (else refused
 * before the handshake ends, so its connect fails at once). */
static int job_admit(void *arg) {
  conn_job *j = arg;
  mgr_server *srv = j->srv;
  mpi_mutex_lock(srv->mu);
  if (j->listed && srv->authed < srv->max_threads) {
    pend_unlink(srv, j);
    srv->authed++;
    j->authed = 1;
  }
  mpi_mutex_unlock(srv->mu);
  if (!j->authed) /* refused in so many words: not taken for a stop */
    mp_conn_send_bytes(j->conn, "#FAILURE#", 9);
  return !j->authed;
}

static int server_stopping(void *arg) {
  mgr_server *srv = arg;
  return mp__load32(&srv->stopping) != 0;
}

static void conn_main(void *arg) {
  conn_job *job = arg;
  mgr_server *srv = job->srv;
  mp_conn *c = job->conn;
  mgr_session *session = NULL;
  int ok = srv->key_n > 0
               ? mp__conn_handshake_server(c, srv->key, srv->key_n,
                                           mpi_now() + HANDSHAKE_TIMEOUT,
                                           job_stop, job_admit, job) == 0
               : job_admit(job) == 0;
  mpi_mutex_lock(srv->mu);
  pend_unlink(srv, job); /* when the handshake failed */
  mpi_mutex_unlock(srv->mu);
  if (!ok && mp__load32(&job->drop) && !mp__load32(&srv->stopping))
    mp_conn_send_bytes(c, "#FAILURE#", 9); /* dropped, not stopping */
  int authed = job->authed;
  conn_thread *thr = job->thr;
  free(job);
  ok = ok && authed;
  double spin = mp__spin_seconds();
  while (ok && !mp__load32(&srv->stopping)) {
    /* A client often sends its next request right away. */
    int r = mp__conn_spin(c, spin) ? 1 : mp_conn_poll(c, POLL_SLICE);
    if (r == 0)
      continue;
    void *req = NULL, *reply = NULL;
    size_t n = 0, reply_n = 0;
    if (r < 0 ||
        mp__conn_recv_stoppable(c, &req, &n, server_stopping, srv) != 0)
      break;
    int stop = mp__mgr_handle(srv, &session, c, req, n, &reply, &reply_n);
    free(req);
    ok = reply != NULL && mp_conn_send_bytes(c, reply, reply_n) == 0;
    free(reply);
    if (stop)
      server_stop(srv);
    if (session == NULL) /* refused hello: drop the connection */
      ok = 0;
  }
  mp_conn_free(c);
  mpi_mutex_lock(srv->mu);
  session_unbind(srv, session);
  if (authed)
    srv->authed--;
  srv->threads--;
  thr->done = 1;
  mp__mgr_notify(srv);
  mpi_mutex_unlock(srv->mu);
}

/* Join the connection threads that have ended (all of them when `all`,
 * after srv->threads reached 0). */
static void reap_threads(mgr_server *srv, int all) {
  conn_thread *ended = NULL;
  mpi_mutex_lock(srv->mu);
  for (conn_thread **pp = &srv->thr_head; *pp != NULL;) {
    conn_thread *r = *pp;
    if (r->done || all) {
      *pp = r->next;
      r->next = ended;
      ended = r;
    } else {
      pp = &r->next;
    }
  }
  mpi_mutex_unlock(srv->mu);
  while (ended != NULL) {
    conn_thread *r = ended;
    ended = r->next;
    mpi_thread_join(r->t);
    free(r);
  }
}

static int server_alloc(mgr_server **out) {
  mgr_server *srv = calloc(1, sizeof *srv);
  if (srv == NULL)
    return mp__error(MP_ENOMEM, "manager: out of memory");
  int rc = mpi_mutex_new(&srv->mu);
  if (rc == 0 && (rc = mpi_cond_new(&srv->cond)) != 0) {
    mpi_mutex_free(srv->mu);
  }
  if (rc != 0) {
    free(srv);
    return rc;
  }
  srv->max_threads = max_connections();
  *out = srv;
  return 0;
}

static void server_free(mgr_server *srv) {
  /* Every object goes (containers drop what they hold as they go). */
  while (srv->objs.live > 0) {
    for (size_t i = 0; i < srv->objs.cap; i++)
      if (srv->objs.k[i] > 0) {
        mgr_obj *o = (mgr_obj *)(intptr_t)srv->objs.v[i];
        o->refs = 1;
        mp__mgr_unref(srv, o);
        break;
      }
  }
  while (srv->sessions != NULL) {
    mgr_session *s = srv->sessions;
    srv->sessions = s->next;
    idmap_free(&s->refs);
    free(s);
  }
  idmap_free(&srv->objs);
  mp_listener_free(srv->listener);
  mpi_cond_free(srv->cond);
  mpi_mutex_free(srv->mu);
  free(srv->address);
  free(srv);
}

int mp__mgr_server_bare(mgr_server **out) { return server_alloc(out); }

void mp__mgr_session_close(mgr_server *srv, mgr_session *s) {
  mpi_mutex_lock(srv->mu);
  session_unbind(srv, s);
  mpi_mutex_unlock(srv->mu);
}
void mp__mgr_server_bare_free(mgr_server *srv) { server_free(srv); }

/* ---- the public server ------------------------------------------------ */

struct mp_manager_server {
  mgr_server *srv;
};

static int authkey_of(const mp_manager_options *opt, unsigned char *key,
                      size_t *key_n) {
  if (opt != NULL && opt->authkey != NULL) {
    if (opt->authkey_n == 0 || opt->authkey_n > MP__AUTHKEY_CAP)
      return mp__error(MP_EINVAL, "authkey must be 1 to %d bytes",
                       MP__AUTHKEY_CAP);
    memcpy(key, opt->authkey, opt->authkey_n);
    *key_n = opt->authkey_n;
    return 0;
  }
  return mp__default_authkey(key, MP__AUTHKEY_CAP, key_n);
}

int mp_manager_server_new(mp_manager_server **out,
                          const mp_manager_options *opt) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_manager_server_new: NULL out");
  *out = NULL;
  mp_manager_server *s = calloc(1, sizeof *s);
  if (s == NULL)
    return mp__error(MP_ENOMEM, "manager: out of memory");
  int rc = server_alloc(&s->srv);
  if (rc == 0)
    rc = authkey_of(opt, s->srv->key, &s->srv->key_n);
  /* The handshake runs in each connection's thread, so one slow client
   * never holds up the others: the listener itself checks nothing.  A
   * deep backlog, so that a burst of connections (a flood of silent
   * peers among them) does not make the system drop a client's connect
   * (a TCP client then waits a second or more before it tries again). */
  if (rc == 0)
    rc = mp_listener_new(&s->srv->listener, opt ? opt->address : NULL,
                         opt ? opt->family : MP_AF_DEFAULT, LISTEN_BACKLOG,
                         NULL, 0);
  if (rc == 0 &&
      (s->srv->address = mp__strdup(mp_listener_address(s->srv->listener))) ==
          NULL)
    rc = mp__error(MP_ENOMEM, "manager: out of memory");
  if (rc == 0 && opt != NULL && opt->initializer != NULL)
    opt->initializer(opt->initargs);
  if (rc != 0) {
    if (s->srv != NULL)
      server_free(s->srv);
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

const char *mp_manager_server_address(const mp_manager_server *s) {
  return s ? s->srv->address : NULL;
}

int mp_manager_server_serve_forever(mp_manager_server *s) {
  if (s == NULL)
    return mp__error(MP_EINVAL, "mp_manager_server_serve_forever: NULL");
  mgr_server *srv = s->srv;
  while (!mp__load32(&srv->stopping)) {
    mp_conn *c = NULL;
    int rc = mp_listener_accept(srv->listener, MP_FOREVER, &c);
    if (rc == MP_ECLOSED)
      break;
    if (rc != 0)
      continue;
    reap_threads(srv, 0);
    conn_job *job = calloc(1, sizeof *job);
    conn_thread *thr = calloc(1, sizeof *thr);
    if (job == NULL || thr == NULL) {
      free(job);
      free(thr);
      mp_conn_free(c);
      continue;
    }
    job->srv = srv;
    job->conn = c;
    job->thr = thr;
    mpi_mutex_lock(srv->mu);
    /* Threads are bounded too: the served, the handshakes, and those
     * dropped and not yet gone (each ends within a slice). */
    while (srv->threads >= srv->max_threads + 2 * MAX_HANDSHAKES &&
           !mp__load32(&srv->stopping))
      mpi_cond_wait(srv->cond, srv->mu, WAIT_SLICE);
    srv->threads++;
    pend_add(srv, job);
    mpi_mutex_unlock(srv->mu);
    /* The record is listed before the thread runs (under the lock,
     * which conn_main takes before it ends), so its handle is there
     * when it is done. */
    mpi_mutex_lock(srv->mu);
    if (mpi_thread_start(conn_main, job, &thr->t) != 0) {
      pend_unlink(srv, job);
      srv->threads--;
      mpi_mutex_unlock(srv->mu);
      mp_conn_free(c);
      free(job);
      free(thr);
      continue;
    }
    thr->next = srv->thr_head;
    srv->thr_head = thr;
    mpi_mutex_unlock(srv->mu);
  }
  server_stop(srv);
  /* The connection threads notice within a slice. */
  mpi_mutex_lock(srv->mu);
  while (srv->threads > 0)
    mpi_cond_wait(srv->cond, srv->mu, WAIT_SLICE);
  mpi_mutex_unlock(srv->mu);
  reap_threads(srv, 1);
  return 0;
}

int mp_manager_server_stop(mp_manager_server *s) {
  if (s == NULL)
    return mp__error(MP_EINVAL, "mp_manager_server_stop: NULL");
  server_stop(s->srv);
  return 0;
}

void mp_manager_server_free(mp_manager_server *s) {
  if (s == NULL)
    return;
  server_stop(s->srv);
  mpi_mutex_lock(s->srv->mu);
  while (s->srv->threads > 0)
    mpi_cond_wait(s->srv->cond, s->srv->mu, WAIT_SLICE);
  mpi_mutex_unlock(s->srv->mu);
  reap_threads(s->srv, 1);
  server_free(s->srv);
  free(s);
}

/* ---- the server process of mp_manager_start ----------------------------- */

/* args: address (or None), family, authkey, initializer (module, offset),
 * initargs (a tuple), the registry, the report pipe. */
int mp__mgr_encode_start(mp_args *a, const mp_manager_options *opt,
                         const void *key, size_t key_n, mp_conn *report) {
  int rc = opt && opt->address ? mp_args_add_str(a, opt->address)
                               : mp_args_add_none(a);
  if (rc == 0) rc = mp_args_add_int(a, opt ? opt->family : 0);
  if (rc == 0) rc = mp_args_add_bytes(a, key, key_n);
  if (rc == 0)
    rc = fn_add(a, opt ? (void (*)(void))opt->initializer : NULL);
  if (rc == 0)
    rc = opt && opt->initargs ? mp_args_add_tuple(a, opt->initargs)
                              : mp_args_add_none(a);
  if (rc == 0) rc = registry_encode(a);
  if (rc == 0) rc = mp_args_add_conn(a, report);
  return rc;
}

static void report(mp_conn *c, int rc, const char *text) {
  size_t n = strlen(text);
  unsigned char *m = malloc(8 + n);
  if (m == NULL)
    return;
  mp__put_i64(m, rc);
  memcpy(m + 8, text, n);
  mp_conn_send_bytes(c, m, 8 + n);
  free(m);
}

int mp__mgr_server_main(const mp_args *a) {
  size_t i = 5;
  mp_conn *c = mp_args_conn(a, mp_args_count(a) - 1);
  mp_manager_options opt = MP_MANAGER_OPTIONS_INIT;
  opt.address = mp_args_type(a, 0) == MP_ARG_STR ? mp_args_str(a, 0) : NULL;
  opt.family = (int)mp_args_int(a, 1);
  opt.authkey = mp_args_bytes(a, 2, &opt.authkey_n);
  void (*init)(void) = NULL;
  int rc = fn_get(a, 3, &init);
  opt.initializer = (mp_manager_init_fn)init;
  opt.initargs = mp_args_type(a, i) == MP_ARG_TUPLE ? mp_args_tuple(a, i)
                                                     : NULL;
  i++;
  if (rc == 0)
    rc = registry_decode(a, &i);
  /* Started daemonic (it dies with its owner), yet it may start the
   * workers of a managed Pool, which die with it in turn (as a pool
   * worker may have children). */
  mp_current_process()->daemon = 0;
  mp_manager_server *s = NULL;
  if (rc == 0)
    rc = mp_manager_server_new(&s, &opt);
  if (c == NULL)
    return 1;
  if (rc != 0) {
    report(c, rc, mp_last_error_message());
    return 1;
  }
  report(c, 0, mp_manager_server_address(s));
  mp_conn_close(c);
  mp_manager_server_serve_forever(s);
  mp_manager_server_free(s);
  return 0;
}
