/*
 * mgr_types.c - the Manager's built-in types, as the server holds them:
 * dict and Namespace (an insertion-ordered hash table of encoded items),
 * list, Queue and JoinableQueue, Lock and RLock, Semaphore and
 * BoundedSemaphore, Condition, Event, Barrier, Value and Array.
 *
 * Every function here runs with the server's lock held (mgr_server.c);
 * blocking methods wait with mp__mgr_wait.  Values are kept as their
 * encoded mp_args items; a stored proxy holds a reference to its object
 * (mp__mgr_hold / mp__mgr_drop).  A timeout argument is a double:
 * negative waits forever, 0 does not wait.
 */
#include <stdlib.h>
#include <string.h>

#include "manager.h"

/* The largest managed Array, in bytes (the fuzz build makes it small). */
#ifndef MGR_ARRAY_MAX_BYTES
#  define MGR_ARRAY_MAX_BYTES ((size_t)256 << 20)
#endif

/* ---- arguments ----------------------------------------------------- */

static int nargs(mgr_call *c, const mgr_obj *o, const char *method,
                 size_t min, size_t max) {
  size_t n = mp_args_count(c->args);
  if (n < min || n > max)
    return mp__error(MP_EINVAL, "%s.%s takes %zu%s%s arguments, not %zu",
                     o->type->type_id, method, min, max > min ? " to " : "",
                     max > min ? (max == min + 1 ? "one more" : "more") : "",
                     n);
  return 0;
}

static int arg_int(mgr_call *c, size_t i, int64_t *v) {
  if (mp_args_type(c->args, i) != MP_ARG_INT)
    return mp__error(MP_ETYPE, "argument %zu must be an integer", i + 1);
  *v = mp_args_int(c->args, i);
  return 0;
}

/* A timeout argument as a deadline (negative: none). */
static int arg_deadline(mgr_call *c, size_t i, double *deadline) {
  int t = mp_args_type(c->args, i);
  double d;
  if (t == MP_ARG_DOUBLE)
    d = mp_args_double(c->args, i);
  else if (t == MP_ARG_INT)
    d = (double)mp_args_int(c->args, i);
  else
    return mp__error(MP_ETYPE, "a timeout must be a number");
  if (d != d)
    return mp__error(MP_EINVAL, "a timeout cannot be NaN");
  *deadline = d < 0 ? -1.0 : mpi_now() + d;
  return 0;
}

/* A method's only, optional argument: a timeout (none: wait forever). */
static int opt_deadline(mgr_call *c, const mgr_obj *o, const char *method,
                        double *deadline) {
  *deadline = -1.0;
  int rc = nargs(c, o, method, 0, 1);
  if (rc == 0 && mp_args_count(c->args) == 1)
    rc = arg_deadline(c, 0, deadline);
  return rc;
}

/* The object's state, zeroed (o->data), or NULL with MP_ENOMEM set. */
static void *new_data(mgr_obj *o, size_t size) {
  if ((o->data = calloc(1, size)) == NULL)
    mp__error(MP_ENOMEM, "manager: out of memory");
  return o->data;
}

typedef struct item {
  unsigned char *p;
  size_t n;
} item;

static void raw(mgr_call *c, size_t i, const void **p, size_t *n) {
  mp__args_item_raw(c->args, i, p, n);
}

/* Argument i as a stored value (a copy; holds a proxy's object). */
static int take_value(mgr_call *c, size_t i, item *out) {
  const void *p;
  size_t n;
  raw(c, i, &p, &n);
  int rc = mp__mgr_hold(c->srv, p, n);
  if (rc != 0)
    return rc;
  if ((out->p = malloc(n)) == NULL) {
    mp__mgr_drop(c->srv, p, n);
    return mp__error(MP_ENOMEM, "manager: out of memory");
  }
  memcpy(out->p, p, n);
  out->n = n;
  return 0;
}

static void drop_value(mgr_server *srv, item *v) {
  if (v->p != NULL) {
    mp__mgr_drop(srv, v->p, v->n);
    free(v->p);
    v->p = NULL;
  }
}

static int result_value(mgr_call *c, const item *v) {
  return mp__mgr_result_item(c, v->p, v->n);
}

static int key_ok(mgr_call *c, size_t i) {
  if (mp_args_type(c->args, i) == MP_ARG_OBJECT)
    return mp__error(MP_ETYPE, "a key must be a plain value, not an object");
  return 0;
}

/* ---- an insertion-ordered hash table of items ------------------------- */

typedef struct entry {
  item key, val;
  uint64_t hash;
  int live;
} entry;

typedef struct table {
  entry *e;
  size_t n, cap, live; /* entries used (live or dead), allocated, live */
  size_t *idx;         /* entry index + 1; 0 empty; SIZE_MAX deleted */
  size_t icap;
} table;

static uint64_t hash_bytes(const void *p, size_t n) {
  const unsigned char *b = p;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

static int table_reindex(table *t, size_t icap) {
  size_t *idx = calloc(icap, sizeof *idx);
  if (idx == NULL)
    return mp__error(MP_ENOMEM, "manager: out of memory");
  /* Compact the entries first. */
  size_t w = 0;
  for (size_t r = 0; r < t->n; r++)
    if (t->e[r].live)
      t->e[w++] = t->e[r];
  t->n = w;
  for (size_t k = 0; k < t->n; k++) {
    size_t j = (size_t)t->e[k].hash & (icap - 1);
    while (idx[j] != 0)
      j = (j + 1) & (icap - 1);
    idx[j] = k + 1;
  }
  free(t->idx);
  t->idx = idx;
  t->icap = icap;
  return 0;
}

/* The entry with this key, or -1; *slot: where it is (or may go). */
static long table_find(const table *t, const void *key, size_t kn,
                       uint64_t h) {
  if (t->icap == 0)
    return -1;
  for (size_t j = (size_t)h & (t->icap - 1);; j = (j + 1) & (t->icap - 1)) {
    size_t v = t->idx[j];
    if (v == 0)
      return -1;
    if (v == SIZE_MAX)
      continue;
    const entry *e = &t->e[v - 1];
    if (e->live && e->hash == h && e->key.n == kn &&
        memcmp(e->key.p, key, kn) == 0)
      return (long)(v - 1);
  }
}

static int table_add(table *t, entry *e) {
  if ((t->n + 1) * 4 > t->icap * 3 || t->n == t->cap) {
    if (t->n == t->cap) {
      size_t cap = t->cap ? t->cap * 2 : 8;
      if (t->live * 2 < t->n)
        cap = t->cap; /* half dead: compaction makes room */
      entry *ne = realloc(t->e, cap * sizeof *ne);
      if (ne == NULL)
        return mp__error(MP_ENOMEM, "manager: out of memory");
      t->e = ne;
      t->cap = cap;
    }
    size_t icap = 16;
    while (icap * 3 < (t->live + 1) * 4 * 2)
      icap *= 2;
    int rc = table_reindex(t, icap);
    if (rc != 0)
      return rc;
    if (t->n == t->cap) { /* compaction freed nothing: grow */
      entry *ne = realloc(t->e, t->cap * 2 * sizeof *ne);
      if (ne == NULL)
        return mp__error(MP_ENOMEM, "manager: out of memory");
      t->e = ne;
      t->cap *= 2;
    }
  }
  size_t j = (size_t)e->hash & (t->icap - 1);
  while (t->idx[j] != 0 && t->idx[j] != SIZE_MAX)
    j = (j + 1) & (t->icap - 1);
  t->e[t->n] = *e;
  t->idx[j] = ++t->n;
  t->live++;
  return 0;
}

static void table_remove(mgr_server *srv, table *t, long k) {
  entry *e = &t->e[k];
  for (size_t j = (size_t)e->hash & (t->icap - 1);;
       j = (j + 1) & (t->icap - 1))
    if (t->idx[j] == (size_t)k + 1) {
      t->idx[j] = SIZE_MAX;
      break;
    }
  free(e->key.p);
  e->key.p = NULL;
  drop_value(srv, &e->val);
  e->live = 0;
  t->live--;
}

static void table_clear(mgr_server *srv, table *t) {
  for (size_t k = 0; k < t->n; k++)
    if (t->e[k].live) {
      free(t->e[k].key.p);
      drop_value(srv, &t->e[k].val);
    }
  free(t->e);
  free(t->idx);
  memset(t, 0, sizeof *t);
}

/* Set key (argument ki) to value (argument vi). */
static int table_set(mgr_call *c, table *t, size_t ki, size_t vi) {
  const void *kp;
  size_t kn;
  int rc = key_ok(c, ki);
  if (rc != 0)
    return rc;
  raw(c, ki, &kp, &kn);
  item v = {NULL, 0};
  if ((rc = take_value(c, vi, &v)) != 0)
    return rc;
  uint64_t h = hash_bytes(kp, kn);
  long k = table_find(t, kp, kn, h);
  if (k >= 0) {
    drop_value(c->srv, &t->e[k].val);
    t->e[k].val = v;
    return 0;
  }
  entry e;
  e.hash = h;
  e.live = 1;
  e.val = v;
  e.key.n = kn;
  if ((e.key.p = malloc(kn)) == NULL) {
    drop_value(c->srv, &v);
    return mp__error(MP_ENOMEM, "manager: out of memory");
  }
  memcpy(e.key.p, kp, kn);
  if ((rc = table_add(t, &e)) != 0) {
    free(e.key.p);
    drop_value(c->srv, &v);
  }
  return rc;
}

static long table_lookup(mgr_call *c, table *t, size_t ki, int missing_rc) {
  const void *kp;
  size_t kn;
  raw(c, ki, &kp, &kn);
  long k = table_find(t, kp, kn, hash_bytes(kp, kn));
  if (k < 0 && missing_rc != 0)
    mp__error(missing_rc, "no such key");
  return k;
}

/* ---- dict ------------------------------------------------------------ */

static int dict_create(mgr_call *c, mgr_obj *o) {
  if (mp_args_count(c->args) % 2 != 0)
    return mp__error(MP_EINVAL, "dict: initial items come in pairs");
  table *t = calloc(1, sizeof *t);
  if (t == NULL)
    return mp__error(MP_ENOMEM, "manager: out of memory");
  o->data = t;
  for (size_t i = 0; i < mp_args_count(c->args); i += 2) {
    int rc = table_set(c, t, i, i + 1);
    if (rc != 0) {
      table_clear(c->srv, t);
      free(t);
      return rc;
    }
  }
  return 0;
}

static void dict_destroy(mgr_server *srv, mgr_obj *o) {
  table_clear(srv, o->data);
  free(o->data);
}

static int dict_set(mgr_call *c, mgr_obj *o) {
  int rc = nargs(c, o, "set", 2, 2);
  return rc ? rc : table_set(c, o->data, 0, 1);
}

/* Argument i as the result (a default given by the caller). */
static int result_arg(mgr_call *c, size_t i) {
  const void *p;
  size_t n;
  raw(c, i, &p, &n);
  return mp__mgr_result_item(c, p, n);
}

/* get(key[, default]): a missing key gives the default if there is one,
 * else MP_ENOENT. */
static int dict_get(mgr_call *c, mgr_obj *o) {
  int rc = nargs(c, o, "get", 1, 2);
  if (rc != 0)
    return rc;
  table *t = o->data;
  int dflt = mp_args_count(c->args) == 2;
  long k = table_lookup(c, t, 0, dflt ? 0 : MP_ENOENT);
  if (k >= 0)
    return result_value(c, &t->e[k].val);
  return dflt ? result_arg(c, 1) : MP_ENOENT;
}

/* pop(key[, default]), as get, and the key goes. */
static int dict_pop(mgr_call *c, mgr_obj *o) {
  int rc = nargs(c, o, "pop", 1, 2);
  if (rc != 0)
    return rc;
  table *t = o->data;
  int dflt = mp_args_count(c->args) == 2;
  long k = table_lookup(c, t, 0, dflt ? 0 : MP_ENOENT);
  if (k < 0)
    return dflt ? result_arg(c, 1) : MP_ENOENT;
  if ((rc = result_value(c, &t->e[k].val)) == 0)
    table_remove(c->srv, t, k);
  return rc;
}

/* setdefault(key, default): the value, after setting the default if the
 * key was missing. */
static int dict_setdefault(mgr_call *c, mgr_obj *o) {
  int rc = nargs(c, o, "setdefault", 2, 2);
  if (rc == 0) rc = key_ok(c, 0);
  if (rc != 0)
    return rc;
  table *t = o->data;
  long k = table_lookup(c, t, 0, 0);
  if (k < 0) {
    if ((rc = table_set(c, t, 0, 1)) != 0)
      return rc;
    k = table_lookup(c, t, 0, MP_ENOENT);
  }
  return k < 0 ? MP_ENOENT : result_value(c, &t->e[k].val);
}

/* popitem(): the last key and value set, removed; MP_ENOENT when empty. */
static int dict_popitem(mgr_call *c, mgr_obj *o) {
  int rc = nargs(c, o, "popitem", 0, 0);
  if (rc != 0)
    return rc;
  table *t = o->data;
  long k = (long)t->n - 1;
  while (k >= 0 && !t->e[k].live)
    k--;
  if (k < 0)
    return mp__error(MP_ENOENT, "popitem(): the dictionary is empty");
  rc = mp__args_add_raw(c->result, t->e[k].key.p, t->e[k].key.n);
  if (rc == 0) rc = result_value(c, &t->e[k].val);
  if (rc == 0)
    table_remove(c->srv, t, k);
  return rc;
}

static int dict_delete(mgr_call *c, mgr_obj *o) {
  int rc = nargs(c, o, "delete", 1, 1);
  if (rc != 0)
    return rc;
  table *t = o->data;
  long k = table_lookup(c, t, 0, MP_ENOENT);
  if (k < 0)
    return MP_ENOENT;
  table_remove(c->srv, t, k);
  return 0;
}

static int dict_contains(mgr_call *c, mgr_obj *o) {
  int rc = nargs(c, o, "contains", 1, 1);
  if (rc != 0)
    return rc;
  return mp_args_add_int(c->result, table_lookup(c, o->data, 0, 0) >= 0);
}

static int dict_len(mgr_call *c, mgr_obj *o) {
  int rc = nargs(c, o, "len", 0, 0);
  return rc ? rc : mp_args_add_int(c->result, (int64_t)((table *)o->data)->live);
}

/* keys (what = 1), values (2), items (3). */
static int dict_list(mgr_call *c, mgr_obj *o, int what) {
  int rc = nargs(c, o, what == 1 ? "keys" : what == 2 ? "values" : "items",
                 0, 0);
  table *t = o->data;
  for (size_t k = 0; rc == 0 && k < t->n; k++) {
    if (!t->e[k].live)
      continue;
    if (what & 1)
      rc = mp__args_add_raw(c->result, t->e[k].key.p, t->e[k].key.n);
    if (rc == 0 && (what & 2))
      rc = result_value(c, &t->e[k].val);
  }
  return rc;
}

static int dict_keys(mgr_call *c, mgr_obj *o) { return dict_list(c, o, 1); }
static int dict_values(mgr_call *c, mgr_obj *o) { return dict_list(c, o, 2); }
static int dict_items(mgr_call *c, mgr_obj *o) { return dict_list(c, o, 3); }

static int dict_update(mgr_call *c, mgr_obj *o) {
  size_t n = mp_args_count(c->args);
  if (n % 2 != 0)
    return mp__error(MP_EINVAL, "dict.update takes key, value pairs");
  for (size_t i = 0; i < n; i += 2) {
    int rc = key_ok(c, i);
    if (rc != 0)
      return rc;
  }
  for (size_t i = 0; i < n; i += 2) {
    int rc = table_set(c, o->data, i, i + 1);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static int dict_clear(mgr_call *c, mgr_obj *o) {
  int rc = nargs(c, o, "clear", 0, 0);
  if (rc == 0)
    table_clear(c->srv, o->data);
  return rc;
}

static const mgr_method dict_methods[] = {
    {"set", dict_set},           {"get", dict_get},
    {"pop", dict_pop},           {"delete", dict_delete},
    {"contains", dict_contains}, {"len", dict_len},
    {"keys", dict_keys},         {"values", dict_values},
    {"items", dict_items},       {"update", dict_update},
    {"clear", dict_clear},       {"setdefault", dict_setdefault},
    {"popitem", dict_popitem}};

static const mgr_type dict_type = {
    "dict", dict_create, dict_destroy, dict_methods,
    sizeof dict_methods / sizeof dict_methods[0], NULL, NULL};

/* ---- Namespace: a table of named attributes --------------------------- */

static int ns_create(mgr_call *c, mgr_obj *o) {
  for (size_t i = 0; i < mp_args_count(c->args); i += 2)
    if (mp_args_type(c->args, i) != MP_ARG_STR)
      return mp__error(MP_ETYPE, "attribute names are strings");
  return dict_create(c, o);
}

static int ns_name(mgr_call *c) {
  return mp_args_type(c->args, 0) == MP_ARG_STR
             ? 0 : mp__error(MP_ETYPE, "attribute names are strings");
}

static int ns_set(mgr_call *c, mgr_obj *o) {
  int rc = nargs(c, o, "setattr", 2, 2);
  if (rc == 0) rc = ns_name(c);
  return rc ? rc : table_set(c, o->data, 0, 1);
}

static int ns_get(mgr_call *c, mgr_obj *o) {
  int rc = nargs(c, o, "getattr", 1, 1);
  if (rc == 0) rc = ns_name(c);
  if (rc != 0)
    return rc;
  table *t = o->data;
  long k = table_lookup(c, t, 0, 0);
  if (k < 0)
    return mp__error(MP_ENOENT, "'Namespace' object has no attribute '%s'",
                     mp_args_str(c->args, 0));
  return result_value(c, &t->e[k].val);
}

static int ns_del(mgr_call *c, mgr_obj *o) {
  int rc = nargs(c, o, "delattr", 1, 1);
  if (rc == 0) rc = ns_name(c);
  if (rc != 0)
    return rc;
  long k = table_lookup(c, o->data, 0, 0);
  if (k < 0)
    return mp__error(MP_ENOENT, "'Namespace' object has no attribute '%s'",
                     mp_args_str(c->args, 0));
  table_remove(c->srv, o->data, k);
  return 0;
}

/* A public attribute: its name (a string item) does not start with '_'. */
static int ns_public(const item *key) {
  const unsigned char *p = key->p;
  return !(key->n > 5 && p[0] == MP_ARG_STR && p[5] == '_');
}

static int ns_order(const void *a, const void *b) {
  const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
  int ord = 0;
  mp__args_item_order(x->key.p, y->key.p, &ord); /* strings: never fails */
  return ord;
}

/* vars([with_values]): the public attributes' names sorted (as Python's
 * Namespace repr lists them), each followed by its value when asked. */
static int ns_vars(mgr_call *c, mgr_obj *o) {
  size_t n = mp_args_count(c->args);
  if (n > 1 || (n == 1 && mp_args_type(c->args, 0) != MP_ARG_INT))
    return mp__error(MP_EPROTO, "Namespace.vars takes one integer at most");
  int values = n == 1 && mp_args_int(c->args, 0) != 0;
  table *t = o->data;
  const entry **v = malloc((t->live ? t->live : 1) * sizeof *v);
  if (v == NULL)
    return mp__error(MP_ENOMEM, "manager: out of memory");
  size_t k = 0;
  for (size_t i = 0; i < t->n; i++)
    if (t->e[i].live && ns_public(&t->e[i].key))
      v[k++] = &t->e[i];
  qsort(v, k, sizeof *v, ns_order);
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < k; i++) {
    rc = mp__args_add_raw(c->result, v[i]->key.p, v[i]->key.n);
    if (rc == 0 && values)
      rc = result_value(c, &v[i]->val);
  }
  free(v);
  return rc;
}

static const mgr_method ns_methods[] = {
    {"setattr", ns_set}, {"getattr", ns_get}, {"delattr", ns_del},
    {"items", dict_items}, {"vars", ns_vars}};

static const mgr_type ns_type = {
    "Namespace", ns_create, dict_destroy, ns_methods,
    sizeof ns_methods / sizeof ns_methods[0], NULL, NULL};

/* ---- list -------------------------------------------------------------- */

typedef struct vec {
  item *v;
  size_t n, cap;
} vec;

static int vec_reserve(vec *l, size_t extra) {
  if (l->n + extra <= l->cap)
    return 0;
  size_t cap = l->cap ? l->cap : 8;
  while (cap < l->n + extra)
    cap *= 2;
  item *v = realloc(l->v, cap * sizeof *v);
  if (v == NULL)
    return mp__error(MP_ENOMEM, "manager: out of memory");
  l->v = v;
  l->cap = cap;
  return 0;
}

static void vec_clear(mgr_server *srv, vec *l) {
  for (size_t i = 0; i < l->n; i++)
    drop_value(srv, &l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

/* Insert arguments [first, n) at position at. */
static int vec_insert_args(mgr_call *c, vec *l, size_t at, size_t first) {
  size_t n = mp_args_count(c->args) - first;
  if (n == 0)
    return 0;
  int rc = vec_reserve(l, n);
  if (rc != 0)
    return rc;
  item *tmp = calloc(n, sizeof *tmp);
  if (tmp == NULL)
    return mp__error(MP_ENOMEM, "manager: out of memory");
  size_t got = 0;
  for (; rc == 0 && got < n; got++)
    if ((rc = take_value(c, first + got, &tmp[got])) != 0)
      break;
  if (rc != 0) {
    for (size_t i = 0; i < got; i++)
      drop_value(c->srv, &tmp[i]);
    free(tmp);
    return rc;
  }
  memmove(l->v + at + n, l->v + at, (l->n - at) * sizeof *l->v);
  memcpy(l->v + at, tmp, n * sizeof *tmp);
  l->n += n;
  free(tmp);
  return 0;
}

static int list_create(mgr_call *c, mgr_obj *o) {
  vec *l = calloc(1, sizeof *l);
  if (l == NULL)
    return mp__error(MP_ENOMEM, "manager: out of memory");
  o->data = l;
  int rc = vec_insert_args(c, l, 0, 0);
  if (rc != 0) {
    vec_clear(c->srv, l);
    free(l);
  }
  return rc;
}

static void list_destroy(mgr_server *srv, mgr_obj *o) {
  vec_clear(srv, o->data);
  free(o->data);
}

/* A Python index (negative from the end) into [0, n): MP_ERANGE if out. */
static int index_arg(mgr_call *c, size_t i, size_t n, size_t *at) {
  int64_t v = 0;
  int rc = arg_int(c, i, &v);
  if (rc != 0)
    return rc;
  if (v < 0)
    v += (int64_t)n;
  if (v < 0 || (uint64_t)v >= n)
    return mp__error(MP_ERANGE, "list index %lld out of range (%zu items)",
                     (long long)mp_args_int(c->args, i), n);
  *at = (size_t)v;
  return 0;
}

/* A Python slice bound, clamped into [0, n]. */
static size_t clamp_bound(int64_t v, size_t n) {
  if (v < 0) {
    v += (int64_t)n;
    return v < 0 ? 0 : (size_t)v;
  }
  return (uint64_t)v > n ? n : (size_t)v;
}

static int list_append(mgr_call *c, mgr_obj *o) {
  int rc = nargs(c, o, "append", 1, 1);
  vec *l = o->data;
  return rc ? rc : vec_insert_args(c, l, l->n, 0);
}

static int list_extend(mgr_call *c, mgr_obj *o) {
  vec *l = o->data;
  return vec_insert_args(c, l, l->n, 0);
}

static int list_get(mgr_call *c, mgr_obj *o) {
  vec *l = o->data;
  size_t at = 0;
  int rc = nargs(c, o, "get", 1, 1);
  if (rc == 0) rc = index_arg(c, 0, l->n, &at);
  return rc ? rc : result_value(c, &l->v[at]);
}

static int list_set(mgr_call *c, mgr_obj *o) {
  vec *l = o->data;
  size_t at = 0;
  item v = {NULL, 0};
  int rc = nargs(c, o, "set", 2, 2);
  if (rc == 0) rc = index_arg(c, 0, l->n, &at);
  if (rc == 0) rc = take_value(c, 1, &v);
  if (rc != 0)
    return rc;
  drop_value(c->srv, &l->v[at]);
  l->v[at] = v;
  return 0;
}

static int list_insert(mgr_call *c, mgr_obj *o) {
  vec *l = o->data;
  int64_t i = 0;
  int rc = nargs(c, o, "insert", 2, 2);
  if (rc == 0) rc = arg_int(c, 0, &i);
  return rc ? rc : vec_insert_args(c, l, clamp_bound(i, l->n), 1);
}

static int list_pop(mgr_call *c, mgr_obj *o) {
  vec *l = o->data;
  size_t at = l->n - 1;
  int rc = nargs(c, o, "pop", 0, 1);
  if (rc == 0 && l->n == 0)
    rc = mp__error(MP_ERANGE, "pop from an empty list");
  if (rc == 0 && mp_args_count(c->args) == 1)
    rc = index_arg(c, 0, l->n, &at);
  if (rc == 0) rc = result_value(c, &l->v[at]);
  if (rc != 0)
    return rc;
  drop_value(c->srv, &l->v[at]);
  memmove(l->v + at, l->v + at + 1, (l->n - at - 1) * sizeof *l->v);
  l->n--;
  return 0;
}

/* The first item in [from, to) equal to argument i (same type and
 * content), or -1. */
static int64_t vec_find(mgr_call *c, const vec *l, size_t i, size_t from,
                     size_t to) {
  const void *p;
  size_t n;
  raw(c, i, &p, &n);
  for (size_t k = from; k < to && k < l->n; k++)
    if (l->v[k].n == n && memcmp(l->v[k].p, p, n) == 0)
      return (int64_t)k;
  return -1;
}

static int list_remove(mgr_call *c, mgr_obj *o) {
  vec *l = o->data;
  int rc = nargs(c, o, "remove", 1, 1);
  if (rc != 0)
    return rc;
  int64_t k = vec_find(c, l, 0, 0, l->n);
  if (k < 0)
    return mp__error(MP_EVALUE, "list.remove(x): x not in list");
  drop_value(c->srv, &l->v[k]);
  memmove(l->v + k, l->v + k + 1, (l->n - (size_t)k - 1) * sizeof *l->v);
  l->n--;
  return 0;
}

/* index(x[, start[, stop]]): bounds as a slice's; MP_EVALUE if absent. */
static int list_index(mgr_call *c, mgr_obj *o) {
  vec *l = o->data;
  int64_t a = 0, b = INT64_MAX;
  int rc = nargs(c, o, "index", 1, 3);
  if (rc == 0 && mp_args_count(c->args) > 1) rc = arg_int(c, 1, &a);
  if (rc == 0 && mp_args_count(c->args) > 2) rc = arg_int(c, 2, &b);
  if (rc != 0)
    return rc;
  int64_t k = vec_find(c, l, 0, clamp_bound(a, l->n), clamp_bound(b, l->n));
  if (k < 0)
    return mp__error(MP_EVALUE, "list.index(x): x not in list");
  return mp_args_add_int(c->result, k);
}

static int list_count(mgr_call *c, mgr_obj *o) {
  vec *l = o->data;
  int64_t count = 0;
  int rc = nargs(c, o, "count", 1, 1);
  if (rc != 0)
    return rc;
  for (int64_t k = vec_find(c, l, 0, 0, l->n); k >= 0;
       k = vec_find(c, l, 0, (size_t)k + 1, l->n))
    count++;
  return mp_args_add_int(c->result, count);
}

static int list_contains(mgr_call *c, mgr_obj *o) {
  vec *l = o->data;
  int rc = nargs(c, o, "contains", 1, 1);
  return rc ? rc : mp_args_add_int(c->result, vec_find(c, l, 0, 0, l->n) >= 0);
}

static int list_reverse(mgr_call *c, mgr_obj *o) {
  vec *l = o->data;
  int rc = nargs(c, o, "reverse", 0, 0);
  for (size_t i = 0; rc == 0 && i < l->n / 2; i++) {
    item t = l->v[i];
    l->v[i] = l->v[l->n - 1 - i];
    l->v[l->n - 1 - i] = t;
  }
  return rc;
}

typedef struct sorter {
  int reverse, rc;
} sorter;

/* x before y, strictly (the first error stops the sort). */
static int sort_less(sorter *s, const item *x, const item *y) {
  int ord = 0;
  if (s->rc == 0)
    s->rc = mp__args_item_order(x->p, y->p, &ord);
  return s->reverse ? ord > 0 : ord < 0;
}

/* A stable merge sort of v[0, n) (tmp: n items of room). */
static void merge_sort(sorter *s, item *v, item *tmp, size_t n) {
  if (n < 2)
    return;
  size_t h = n / 2, i = 0, j = h, k = 0;
  merge_sort(s, v, tmp, h);
  merge_sort(s, v + h, tmp, n - h);
  if (s->rc != 0)
    return;
  while (i < h && j < n)
    tmp[k++] = sort_less(s, &v[j], &v[i]) ? v[j++] : v[i++];
  while (i < h)
    tmp[k++] = v[i++];
  while (j < n)
    tmp[k++] = v[j++];
  memcpy(v, tmp, n * sizeof *v);
}

/* sort([reverse]): Python's order (numbers together, strings, bytes and
 * tuples each among themselves), stable; items without an order between
 * them are MP_ETYPE and leave the list as it was. */
static int list_sort(mgr_call *c, mgr_obj *o) {
  vec *l = o->data;
  int64_t rev = 0;
  int rc = nargs(c, o, "sort", 0, 1);
  if (rc == 0 && mp_args_count(c->args) == 1) rc = arg_int(c, 0, &rev);
  if (rc != 0 || l->n < 2)
    return rc;
  item *work = malloc(2 * l->n * sizeof *work);
  if (work == NULL)
    return mp__error(MP_ENOMEM, "manager: out of memory");
  memcpy(work, l->v, l->n * sizeof *work);
  sorter s = {rev != 0, 0};
  merge_sort(&s, work, work + l->n, l->n);
  if (s.rc == 0)
    memcpy(l->v, work, l->n * sizeof *work);
  free(work);
  return s.rc;
}

static int list_clear(mgr_call *c, mgr_obj *o) {
  int rc = nargs(c, o, "clear", 0, 0);
  if (rc == 0)
    vec_clear(c->srv, o->data);
  return rc;
}

static int list_len(mgr_call *c, mgr_obj *o) {
  int rc = nargs(c, o, "len", 0, 0);
  return rc ? rc : mp_args_add_int(c->result, (int64_t)((vec *)o->data)->n);
}

static int list_slice(mgr_call *c, mgr_obj *o) {
  vec *l = o->data;
  int64_t a = 0, b = 0;
  int rc = nargs(c, o, "slice", 2, 2);
  if (rc == 0) rc = arg_int(c, 0, &a);
  if (rc == 0) rc = arg_int(c, 1, &b);
  size_t from = clamp_bound(a, l->n), to = clamp_bound(b, l->n);
  for (size_t i = from; rc == 0 && i < to; i++)
    rc = result_value(c, &l->v[i]);
  return rc;
}

static const mgr_method list_methods[] = {
    {"append", list_append}, {"extend", list_extend}, {"get", list_get},
    {"set", list_set},       {"insert", list_insert}, {"pop", list_pop},
    {"remove", list_remove}, {"len", list_len},       {"slice", list_slice},
    {"index", list_index},   {"count", list_count},   {"contains", list_contains},
    {"reverse", list_reverse}, {"sort", list_sort},   {"clear", list_clear}};

static const mgr_type list_type = {
    "list", list_create, list_destroy, list_methods,
    sizeof list_methods / sizeof list_methods[0], NULL, NULL};

/* ---- Queue and JoinableQueue --------------------------------------------- */

typedef struct mqueue {
  item *ring;
  size_t head, n, cap;
  int64_t maxsize;    /* <= 0: unbounded */
  int64_t unfinished; /* JoinableQueue */
  int joinable;
} mqueue;

static int queue_create_common(mgr_call *c, mgr_obj *o, int joinable) {
  int64_t maxsize = 0;
  size_t n = mp_args_count(c->args);
  if (n > 1)
    return mp__error(MP_EINVAL, "Queue takes at most a maxsize");
  if (n == 1 && arg_int(c, 0, &maxsize) != 0)
    return MP_ETYPE;
  mqueue *q = new_data(o, sizeof *q);
  if (q == NULL)
    return MP_ENOMEM;
  q->maxsize = maxsize;
  q->joinable = joinable;
  return 0;
}

static int queue_create(mgr_call *c, mgr_obj *o) {
  return queue_create_common(c, o, 0);
}

static int jqueue_create(mgr_call *c, mgr_obj *o) {
  return queue_create_common(c, o, 1);
}

static void queue_destroy(mgr_server *srv, mgr_obj *o) {
  mqueue *q = o->data;
  for (size_t i = 0; i < q->n; i++)
    drop_value(srv, &q->ring[(q->head + i) % q->cap]);
  free(q->ring);
  free(q);
}

static int queue_full_now(const mqueue *q) {
  return q->maxsize > 0 && (int64_t)q->n >= q->maxsize;
}

static int queue_put(mgr_call *c, mgr_obj *o) {
  mqueue *q = o->data;
  double deadline = -1.0;
  int rc = nargs(c, o, "put", 2, 2);
  if (rc == 0) rc = arg_deadline(c, 0, &deadline);
  while (rc == 0 && queue_full_now(q))
    if ((rc = mp__mgr_wait(c, deadline)) == MP_ETIMEDOUT)
      return mp__error(MP_EFULL, "the queue is full");
  if (rc != 0)
    return rc;
  if (q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 16;
    item *r = malloc(cap * sizeof *r);
    if (r == NULL)
      return mp__error(MP_ENOMEM, "manager: out of memory");
    for (size_t i = 0; i < q->n; i++)
      r[i] = q->ring[(q->head + i) % q->cap];
    free(q->ring);
    q->ring = r;
    q->head = 0;
    q->cap = cap;
  }
  item v = {NULL, 0};
  if ((rc = take_value(c, 1, &v)) != 0)
    return rc;
  q->ring[(q->head + q->n) % q->cap] = v;
  q->n++;
  q->unfinished++;
  mp__mgr_notify(c->srv);
  return 0;
}

static int queue_get(mgr_call *c, mgr_obj *o) {
  mqueue *q = o->data;
  double deadline = -1.0;
  int rc = nargs(c, o, "get", 1, 1);
  if (rc == 0) rc = arg_deadline(c, 0, &deadline);
  while (rc == 0 && q->n == 0)
    if ((rc = mp__mgr_wait(c, deadline)) == MP_ETIMEDOUT)
      return mp__error(MP_EEMPTY, "the queue is empty");
  if (rc == 0) rc = result_value(c, &q->ring[q->head]);
  if (rc != 0)
    return rc;
  drop_value(c->srv, &q->ring[q->head]);
  q->head = (q->head + 1) % q->cap;
  q->n--;
  mp__mgr_notify(c->srv);
  return 0;
}

static int queue_qsize(mgr_call *c, mgr_obj *o) {
  return mp_args_add_int(c->result, (int64_t)((mqueue *)o->data)->n);
}

static int queue_empty(mgr_call *c, mgr_obj *o) {
  return mp_args_add_int(c->result, ((mqueue *)o->data)->n == 0);
}

static int queue_full(mgr_call *c, mgr_obj *o) {
  return mp_args_add_int(c->result, queue_full_now(o->data));
}

static int queue_task_done(mgr_call *c, mgr_obj *o) {
  mqueue *q = o->data;
  if (!q->joinable)
    return mp__error(MP_ENOENT, "'Queue' has no method 'task_done' (use a "
                     "JoinableQueue)");
  if (q->unfinished <= 0)
    return mp__error(MP_EVALUE, "task_done() called too many times");
  if (--q->unfinished == 0)
    mp__mgr_notify(c->srv);
  return 0;
}

static int queue_join(mgr_call *c, mgr_obj *o) {
  mqueue *q = o->data;
  double deadline = -1.0;
  int rc = nargs(c, o, "join", 1, 1);
  if (!q->joinable)
    return mp__error(MP_ENOENT, "'Queue' has no method 'join' (use a "
                     "JoinableQueue)");
  if (rc == 0) rc = arg_deadline(c, 0, &deadline);
  while (rc == 0 && q->unfinished > 0)
    if ((rc = mp__mgr_wait(c, deadline)) == MP_ETIMEDOUT)
      return mp__error(MP_ETIMEDOUT, "%lld tasks still unfinished",
                       (long long)q->unfinished);
  return rc;
}

static const mgr_method queue_methods[] = {
    {"put", queue_put},     {"get", queue_get},
    {"qsize", queue_qsize}, {"empty", queue_empty},
    {"full", queue_full},   {"task_done", queue_task_done},
    {"join", queue_join}};

static const mgr_type queue_type = {
    "Queue", queue_create, queue_destroy, queue_methods,
    sizeof queue_methods / sizeof queue_methods[0], NULL, NULL};
static const mgr_type jqueue_type = {
    "JoinableQueue", jqueue_create, queue_destroy, queue_methods,
    sizeof queue_methods / sizeof queue_methods[0], NULL, NULL};

/* ---- Lock and RLock ------------------------------------------------------ */

typedef struct mlock {
  int recursive;
  int held;
  int owner_died; /* the last holder's client died holding it */
  mgr_session *owner;
  int64_t tid;
  int64_t count;
} mlock;

static int lock_create_common(mgr_call *c, mgr_obj *o, int recursive) {
  if (mp_args_count(c->args) != 0)
    return mp__error(MP_EINVAL, "%s takes no arguments", o->type->type_id);
  mlock *l = new_data(o, sizeof *l);
  if (l == NULL)
    return MP_ENOMEM;
  l->recursive = recursive;
  return 0;
}

static int lock_create(mgr_call *c, mgr_obj *o) {
  return lock_create_common(c, o, 0);
}

static int rlock_create(mgr_call *c, mgr_obj *o) {
  return lock_create_common(c, o, 1);
}

static void plain_destroy(mgr_server *srv, mgr_obj *o) {
  (void)srv;
  free(o->data);
}

static int lock_mine(const mlock *l, const mgr_call *c) {
  return l->held && l->owner == c->session && l->tid == c->tid;
}

static int lock_take(mgr_call *c, mlock *l, double deadline) {
  if (l->recursive && lock_mine(l, c)) {
    l->count++;
    return 0;
  }
  int rc = 0;
  while (rc == 0 && l->held)
    rc = mp__mgr_wait(c, deadline);
  if (rc == MP_ETIMEDOUT)
    return mp__error(MP_ETIMEDOUT, "lock not acquired in time");
  if (rc != 0)
    return rc;
  l->held = 1;
  l->owner = c->session;
  l->tid = c->tid;
  l->count = 1;
  if (l->owner_died) {
    l->owner_died = 0;
    return mp__error(MP_EOWNERDEAD, "the previous owner died holding the "
                     "lock (it is yours now)");
  }
  return 0;
}

static int lock_give(mgr_call *c, mlock *l) {
  if (l->recursive && !lock_mine(l, c)) /* as Python's RLock */
    return mp__error(MP_EPERM, "cannot release an RLock this thread does "
                     "not own");
  if (!l->held)
    return mp__error(MP_EVALUE, "release of an unlocked lock");
  if (--l->count == 0) {
    l->held = 0;
    l->owner = NULL;
    mp__mgr_notify(c->srv);
  }
  return 0;
}

static int lock_acquire(mgr_call *c, mgr_obj *o) {
  double deadline = -1.0;
  int rc = opt_deadline(c, o, "acquire", &deadline);
  return rc ? rc : lock_take(c, o->data, deadline);
}

static int lock_release(mgr_call *c, mgr_obj *o) {
  int rc = nargs(c, o, "release", 0, 0);
  return rc ? rc : lock_give(c, o->data);
}

static int lock_locked(mgr_call *c, mgr_obj *o) {
  return mp_args_add_int(c->result, ((mlock *)o->data)->held);
}

static void lock_owner_died(mgr_server *srv, mgr_obj *o, mgr_session *s) {
  mlock *l = o->data;
  if (l->held && l->owner == s) {
    l->held = 0;
    l->owner = NULL;
    l->count = 0;
    l->owner_died = 1;
    mp__mgr_notify(srv);
  }
}

static const mgr_method lock_methods[] = {{"acquire", lock_acquire},
                                          {"release", lock_release},
                                          {"locked", lock_locked}};

static const mgr_type lock_type = {
    "Lock", lock_create, plain_destroy, lock_methods,
    sizeof lock_methods / sizeof lock_methods[0], NULL, lock_owner_died};
static const mgr_type rlock_type = {
    "RLock", rlock_create, plain_destroy, lock_methods,
    sizeof lock_methods / sizeof lock_methods[0], NULL, lock_owner_died};

/* ---- Semaphore and BoundedSemaphore -------------------------------------- */

typedef struct msem {
  int64_t value, initial;
  int bounded;
} msem;

static int sem_create_common(mgr_call *c, mgr_obj *o, int bounded) {
  int64_t v = 1;
  size_t n = mp_args_count(c->args);
  if (n > 1 || (n == 1 && arg_int(c, 0, &v) != 0))
    return mp__error(MP_EINVAL, "%s takes one integer value",
                     o->type->type_id);
  if (v < 0 || v > INT32_MAX)
    return mp__error(MP_EINVAL, "semaphore value %lld is out of range",
                     (long long)v);
  msem *s = new_data(o, sizeof *s);
  if (s == NULL)
    return MP_ENOMEM;
  s->value = s->initial = v;
  s->bounded = bounded;
  return 0;
}

static int sem_create(mgr_call *c, mgr_obj *o) {
  return sem_create_common(c, o, 0);
}

static int bsem_create(mgr_call *c, mgr_obj *o) {
  return sem_create_common(c, o, 1);
}

static int sem_acquire(mgr_call *c, mgr_obj *o) {
  msem *s = o->data;
  double deadline = -1.0;
  int rc = opt_deadline(c, o, "acquire", &deadline);
  while (rc == 0 && s->value == 0)
    rc = mp__mgr_wait(c, deadline);
  if (rc == MP_ETIMEDOUT)
    return mp__error(MP_ETIMEDOUT, "semaphore not acquired in time");
  if (rc == 0)
    s->value--;
  return rc;
}

static int sem_release(mgr_call *c, mgr_obj *o) {
  msem *s = o->data;
  if (s->bounded && s->value >= s->initial)
    return mp__error(MP_EVALUE, "semaphore released too many times");
  if (s->value >= INT32_MAX)
    return mp__error(MP_EVALUE, "semaphore value would pass 2^31-1");
  s->value++;
  mp__mgr_notify(c->srv);
  return 0;
}

static int sem_value(mgr_call *c, mgr_obj *o) {
  return mp_args_add_int(c->result, ((msem *)o->data)->value);
}

static const mgr_method sem_methods[] = {{"acquire", sem_acquire},
                                         {"release", sem_release},
                                         {"get_value", sem_value}};

static const mgr_type sem_type = {
    "Semaphore", sem_create, plain_destroy, sem_methods,
    sizeof sem_methods / sizeof sem_methods[0], NULL, NULL};
static const mgr_type bsem_type = {
    "BoundedSemaphore", bsem_create, plain_destroy, sem_methods,
    sizeof sem_methods / sizeof sem_methods[0], NULL, NULL};

/* ---- Condition ------------------------------------------------------------ */

typedef struct waiter {
  int notified;
  struct waiter *next;
} waiter;

typedef struct mcond {
  mgr_obj *lock; /* a Lock or RLock object (a reference held) */
  waiter *waiters; /* oldest first */
} mcond;

static int cond_create(mgr_call *c, mgr_obj *o) {
  size_t n = mp_args_count(c->args);
  const void *p;
  size_t pn;
  mgr_obj *lock = NULL;
  if (n > 1)
    return mp__error(MP_EINVAL, "Condition takes at most a lock");
  if (n == 1) {
    raw(c, 0, &p, &pn);
    int rc = mp__mgr_hold(c->srv, p, pn);
    if (rc != 0)
      return rc;
    uint32_t kind;
    const void *blob;
    size_t bn;
    mp_args *h = NULL;
    const char *type_id, *address;
    const void *key;
    size_t key_n;
    int64_t id = 0;
    if (mp__args_get_object(c->args, 0, &kind, &blob, &bn) != 0 ||
        mp__proxy_blob_parse(blob, bn, &h, &type_id, &id, &address, &key,
                             &key_n) != 0) {
      mp__mgr_drop(c->srv, p, pn);
      return mp__error(MP_ETYPE, "a Condition's lock must be a managed Lock "
                       "or RLock");
    }
    mp_args_free(h);
    lock = mp__mgr_find(c->srv, id);
    if (lock == NULL || (lock->type != &lock_type && lock->type != &rlock_type)) {
      mp__mgr_drop(c->srv, p, pn);
      return mp__error(MP_ETYPE, "a Condition's lock must be a managed Lock "
                       "or RLock");
    }
  }
  mcond *cv = calloc(1, sizeof *cv);
  if (cv == NULL) {
    if (lock != NULL)
      mp__mgr_unref(c->srv, lock);
    return mp__error(MP_ENOMEM, "manager: out of memory");
  }
  if (lock == NULL) { /* a fresh RLock of its own */
    mlock *l = calloc(1, sizeof *l);
    mgr_obj *lo = calloc(1, sizeof *lo);
    if (l == NULL || lo == NULL) {
      free(l);
      free(lo);
      free(cv);
      return mp__error(MP_ENOMEM, "manager: out of memory");
    }
    l->recursive = 1;
    lo->type = &rlock_type;
    lo->data = l;
    lo->refs = 1;
    lo->id = -o->id; /* not in the table: only this condition uses it */
    lock = lo;
  }
  cv->lock = lock;
  o->data = cv;
  return 0;
}

static void cond_destroy(mgr_server *srv, mgr_obj *o) {
  mcond *cv = o->data;
  if (cv->lock->id < 0) {
    free(cv->lock->data);
    free(cv->lock);
  } else {
    mp__mgr_unref(srv, cv->lock);
  }
  free(cv);
}

static int cond_acquire(mgr_call *c, mgr_obj *o) {
  return lock_acquire(c, ((mcond *)o->data)->lock);
}

static int cond_release(mgr_call *c, mgr_obj *o) {
  return lock_release(c, ((mcond *)o->data)->lock);
}

static int cond_wait(mgr_call *c, mgr_obj *o) {
  mcond *cv = o->data;
  mlock *l = cv->lock->data;
  double deadline = -1.0;
  int rc = opt_deadline(c, o, "wait", &deadline);
  if (rc != 0)
    return rc;
  if (!lock_mine(l, c))
    return mp__error(MP_EPERM, "cannot wait on an un-acquired lock");
  int64_t count = l->count;
  waiter w = {0, NULL};
  waiter **tail = &cv->waiters;
  while (*tail != NULL)
    tail = &(*tail)->next;
  *tail = &w;
  l->held = 0;
  l->owner = NULL;
  l->count = 0;
  mp__mgr_notify(c->srv);
  while (rc == 0 && !w.notified)
    rc = mp__mgr_wait(c, deadline);
  for (waiter **pp = &cv->waiters; *pp != NULL; pp = &(*pp)->next)
    if (*pp == &w) {
      *pp = w.next;
      break;
    }
  if (rc == MP_ECLOSED)
    return rc; /* the caller is gone: do not take the lock for it */
  int rc2 = 0;
  while (rc2 == 0 && l->held)
    rc2 = mp__mgr_wait(c, -1.0);
  if (rc2 != 0)
    return rc2;
  l->held = 1;
  l->owner = c->session;
  l->tid = c->tid;
  l->count = count;
  if (rc == MP_ETIMEDOUT)
    return mp__error(MP_ETIMEDOUT, "not notified in time");
  return rc;
}

static int cond_notify_n(mgr_call *c, mgr_obj *o, int64_t n) {
  mcond *cv = o->data;
  if (!lock_mine(cv->lock->data, c))
    return mp__error(MP_EPERM, "cannot notify on an un-acquired lock");
  for (waiter *w = cv->waiters; w != NULL && n > 0; w = w->next)
    if (!w->notified) {
      w->notified = 1;
      n--;
    }
  mp__mgr_notify(c->srv);
  return 0;
}

static int cond_notify(mgr_call *c, mgr_obj *o) {
  int64_t n = 1;
  int rc = nargs(c, o, "notify", 0, 1);
  if (rc == 0 && mp_args_count(c->args) == 1)
    rc = arg_int(c, 0, &n);
  if (rc == 0 && n < 0)
    rc = mp__error(MP_EINVAL, "notify: negative count");
  return rc ? rc : cond_notify_n(c, o, n);
}

static int cond_notify_all(mgr_call *c, mgr_obj *o) {
  return cond_notify_n(c, o, INT64_MAX);
}

static void cond_owner_died(mgr_server *srv, mgr_obj *o, mgr_session *s) {
  mcond *cv = o->data;
  if (cv->lock->id < 0) /* its own lock: nobody else would see it */
    lock_owner_died(srv, cv->lock, s);
}

static const mgr_method cond_methods[] = {
    {"acquire", cond_acquire}, {"release", cond_release},
    {"wait", cond_wait},       {"notify", cond_notify},
    {"notify_all", cond_notify_all}};

static const mgr_type cond_type = {
    "Condition", cond_create, cond_destroy, cond_methods,
    sizeof cond_methods / sizeof cond_methods[0], NULL, cond_owner_died};

/* ---- Event ---------------------------------------------------------------- */

static int event_create(mgr_call *c, mgr_obj *o) {
  (void)c;
  return new_data(o, sizeof(int)) ? 0 : MP_ENOMEM;
}

static int event_set(mgr_call *c, mgr_obj *o) {
  *(int *)o->data = 1;
  mp__mgr_notify(c->srv);
  return 0;
}

static int event_clear(mgr_call *c, mgr_obj *o) {
  (void)c;
  *(int *)o->data = 0;
  return 0;
}

static int event_is_set(mgr_call *c, mgr_obj *o) {
  return mp_args_add_int(c->result, *(int *)o->data);
}

static int event_wait(mgr_call *c, mgr_obj *o) {
  double deadline = -1.0;
  int rc = opt_deadline(c, o, "wait", &deadline);
  while (rc == 0 && !*(int *)o->data)
    rc = mp__mgr_wait(c, deadline);
  if (rc == MP_ETIMEDOUT)
    rc = 0;
  return rc ? rc : mp_args_add_int(c->result, *(int *)o->data);
}

static const mgr_method event_methods[] = {{"set", event_set},
                                           {"clear", event_clear},
                                           {"is_set", event_is_set},
                                           {"wait", event_wait}};

static const mgr_type event_type = {
    "Event", event_create, plain_destroy, event_methods,
    sizeof event_methods / sizeof event_methods[0], NULL, NULL};

/* ---- Barrier -------------------------------------------------------------- */

typedef struct mbarrier {
  int64_t parties, count, generation, reset_of;
  int broken;
} mbarrier;

static int barrier_create(mgr_call *c, mgr_obj *o) {
  int64_t parties = 0;
  if (mp_args_count(c->args) != 1 || arg_int(c, 0, &parties) != 0 ||
      parties < 1 || parties > INT32_MAX)
    return mp__error(MP_EINVAL, "a Barrier needs 1 to 2^31-1 parties");
  mbarrier *b = new_data(o, sizeof *b);
  if (b == NULL)
    return MP_ENOMEM;
  b->parties = parties;
  b->reset_of = -1;
  return 0;
}

static int barrier_wait(mgr_call *c, mgr_obj *o) {
  mbarrier *b = o->data;
  double deadline = -1.0;
  int rc = opt_deadline(c, o, "wait", &deadline);
  if (rc != 0)
    return rc;
  if (b->broken)
    return mp__error(MP_EBROKEN, "the barrier is broken");
  int64_t index = b->count++, gen = b->generation;
  if (b->count == b->parties) {
    b->count = 0;
    b->generation++;
    mp__mgr_notify(c->srv);
    return mp_args_add_int(c->result, index);
  }
  while (rc == 0 && b->generation == gen && !b->broken)
    rc = mp__mgr_wait(c, deadline);
  if (b->generation != gen)
    return b->reset_of == gen ? mp__error(MP_EBROKEN, "the barrier was reset")
                              : mp_args_add_int(c->result, index);
  b->count--;
  if (rc == MP_ETIMEDOUT) {
    b->broken = 1;
    mp__mgr_notify(c->srv);
    return mp__error(MP_ETIMEDOUT, "barrier timed out (now broken)");
  }
  if (rc == 0 || b->broken)
    return mp__error(MP_EBROKEN, "the barrier is broken");
  return rc;
}

static int barrier_reset(mgr_call *c, mgr_obj *o) {
  mbarrier *b = o->data;
  if (b->count > 0) {
    b->reset_of = b->generation;
    b->generation++;
  }
  b->count = 0;
  b->broken = 0;
  mp__mgr_notify(c->srv);
  return 0;
}

static int barrier_abort(mgr_call *c, mgr_obj *o) {
  ((mbarrier *)o->data)->broken = 1;
  mp__mgr_notify(c->srv);
  return 0;
}

static int barrier_parties(mgr_call *c, mgr_obj *o) {
  return mp_args_add_int(c->result, ((mbarrier *)o->data)->parties);
}

static int barrier_n_waiting(mgr_call *c, mgr_obj *o) {
  return mp_args_add_int(c->result, ((mbarrier *)o->data)->count);
}

static int barrier_broken(mgr_call *c, mgr_obj *o) {
  return mp_args_add_int(c->result, ((mbarrier *)o->data)->broken);
}

static const mgr_method barrier_methods[] = {
    {"wait", barrier_wait},       {"reset", barrier_reset},
    {"abort", barrier_abort},     {"parties", barrier_parties},
    {"n_waiting", barrier_n_waiting}, {"broken", barrier_broken}};

static const mgr_type barrier_type = {
    "Barrier", barrier_create, plain_destroy, barrier_methods,
    sizeof barrier_methods / sizeof barrier_methods[0], NULL, NULL};

/* ---- Value and Array --------------------------------------------------- */

typedef struct marray {
  char code;
  size_t size, len; /* element size, count */
  unsigned char *data;
} marray;

static int code_arg(mgr_call *c, char *code) {
  const char *s = mp_args_type(c->args, 0) == MP_ARG_STR
                      ? mp_args_str(c->args, 0) : NULL;
  if (s == NULL || strlen(s) != 1 || mp__typecode_size(s[0]) == 0)
    return mp__error(MP_EINVAL, "unknown typecode");
  *code = s[0];
  return 0;
}

/* Store argument i into element p. */
static int elem_store(mgr_call *c, char code, void *p, size_t i) {
  int t = mp_args_type(c->args, i);
  if (t == MP_ARG_INT)
    return mp__typecode_is_float(code)
               ? mp__elem_set_double(code, p, (double)mp_args_int(c->args, i))
               : mp__elem_set_int(code, p, mp_args_int(c->args, i));
  if (t == MP_ARG_DOUBLE)
    return mp__elem_set_double(code, p, mp_args_double(c->args, i));
  return mp__error(MP_ETYPE, "typecode '%c' holds numbers", code);
}

static int elem_load(mgr_call *c, char code, const void *p) {
  if (mp__typecode_is_float(code)) {
    double d = 0;
    mp__elem_get_double(code, p, &d);
    return mp_args_add_double(c->result, d);
  }
  int64_t v = 0;
  int rc = mp__elem_get_int(code, p, &v);
  return rc ? rc : mp_args_add_int(c->result, v);
}

static int array_alloc(mgr_call *c, mgr_obj *o, size_t len) {
  marray *a = calloc(1, sizeof *a);
  int rc = a ? code_arg(c, &a->code) : mp__error(MP_ENOMEM, "out of memory");
  if (rc == 0) {
    a->size = mp__typecode_size(a->code);
    a->len = len;
    if (len > (size_t)MGR_ARRAY_MAX_BYTES / a->size ||
        (a->data = calloc(len ? len : 1, a->size)) == NULL)
      rc = mp__error(MP_ENOMEM, "manager: an array of %zu items is too large",
                     len);
  }
  if (rc != 0) {
    free(a);
    return rc;
  }
  o->data = a;
  return 0;
}

static void array_destroy(mgr_server *srv, mgr_obj *o) {
  (void)srv;
  marray *a = o->data;
  free(a->data);
  free(a);
}

static int value_create(mgr_call *c, mgr_obj *o) {
  size_t n = mp_args_count(c->args);
  if (n < 1 || n > 2)
    return mp__error(MP_EINVAL, "Value takes a typecode and a value");
  int rc = array_alloc(c, o, 1);
  if (rc == 0 && n == 2 &&
      (rc = elem_store(c, ((marray *)o->data)->code,
                       ((marray *)o->data)->data, 1)) != 0)
    array_destroy(c->srv, o);
  return rc;
}

static int value_get(mgr_call *c, mgr_obj *o) {
  marray *a = o->data;
  return elem_load(c, a->code, a->data);
}

static int value_set(mgr_call *c, mgr_obj *o) {
  marray *a = o->data;
  int rc = nargs(c, o, "set", 1, 1);
  return rc ? rc : elem_store(c, a->code, a->data, 0);
}

/* The typecode, for repr: Value('i', 5), array('i', [1, 2]). */
static int array_typecode(mgr_call *c, mgr_obj *o) {
  marray *a = o->data;
  char code[2] = {a->code, '\0'};
  int rc = nargs(c, o, "typecode", 0, 0);
  return rc ? rc : mp_args_add_str(c->result, code);
}

static const mgr_method value_methods[] = {{"get", value_get},
                                           {"set", value_set},
                                           {"typecode", array_typecode}};

static const mgr_type value_type = {
    "Value", value_create, array_destroy, value_methods,
    sizeof value_methods / sizeof value_methods[0], NULL, NULL};

static int array_create(mgr_call *c, mgr_obj *o) {
  int64_t len = 0;
  if (mp_args_count(c->args) != 2 || arg_int(c, 1, &len) != 0 || len < 0)
    return mp__error(MP_EINVAL, "Array takes a typecode and a length");
  return array_alloc(c, o, (size_t)len);
}

static int array_index(mgr_call *c, const marray *a, size_t *at) {
  int64_t i = 0;
  int rc = arg_int(c, 0, &i);
  if (rc != 0)
    return rc;
  if (i < 0 || (uint64_t)i >= a->len)
    return mp__error(MP_ERANGE, "array index %lld out of range (%zu items)",
                     (long long)i, a->len);
  *at = (size_t)i;
  return 0;
}

static int array_get(mgr_call *c, mgr_obj *o) {
  marray *a = o->data;
  size_t at = 0;
  int rc = nargs(c, o, "get", 1, 1);
  if (rc == 0) rc = array_index(c, a, &at);
  return rc ? rc : elem_load(c, a->code, a->data + at * a->size);
}

static int array_set(mgr_call *c, mgr_obj *o) {
  marray *a = o->data;
  size_t at = 0;
  int rc = nargs(c, o, "set", 2, 2);
  if (rc == 0) rc = array_index(c, a, &at);
  return rc ? rc : elem_store(c, a->code, a->data + at * a->size, 1);
}

static int array_len(mgr_call *c, mgr_obj *o) {
  return mp_args_add_int(c->result, (int64_t)((marray *)o->data)->len);
}

static int array_tolist(mgr_call *c, mgr_obj *o) {
  marray *a = o->data;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < a->len; i++)
    rc = elem_load(c, a->code, a->data + i * a->size);
  return rc;
}

static const mgr_method array_methods[] = {{"get", array_get},
                                           {"set", array_set},
                                           {"len", array_len},
                                           {"tolist", array_tolist},
                                           {"typecode", array_typecode}};

static const mgr_type array_type = {
    "Array", array_create, array_destroy, array_methods,
    sizeof array_methods / sizeof array_methods[0], NULL, NULL};

const mgr_type *const mp__mgr_builtin_types[] = {
    &dict_type,  &list_type,  &ns_type,    &queue_type,   &jqueue_type,
    &lock_type,  &rlock_type, &sem_type,   &bsem_type,    &cond_type,
    &event_type, &barrier_type, &value_type, &array_type,
    &mp__mgr_pool_type, NULL};
