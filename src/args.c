/*
 * args.c - mp_args, the typed tuple mproc passes to children.
 *
 * The tuple is kept encoded as it is built, so sending it is a copy of its
 * bytes.  Layout (all integers little-endian):
 *
 *   "MPA1" | u32 count | item...
 *   item:  u8 type | payload
 *     MP_ARG_INT     i64
 *     MP_ARG_DOUBLE  f64 (IEEE-754 bits as u64)
 *     MP_ARG_STR     u32 len | len bytes | NUL       (no NUL inside)
 *     MP_ARG_BYTES   u32 len | len bytes
 *     MP_ARG_OBJECT  u32 kind | u32 len | len bytes (the type's own blob)
 *     MP_ARG_NONE    nothing
 *     MP_ARG_TUPLE   u32 len | len bytes (a whole encoded tuple, itself
 *                    validated; plain values and tuples only, nested at
 *                    most ARGS_MAX_DEPTH deep)
 *
 * mp__args_from_bytes validates everything against the given length, so a
 * truncated or forged buffer is MP_EPROTO, never an out-of-bounds read.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "manager.h"
#include "shared.h"

#define ARGS_MAGIC "MPA1"
#define ARGS_HEADER 8
#define ARGS_ITEM_MAX (UINT32_MAX - 64u)
#define ARGS_MAX_DEPTH 32

struct mp_args {
  unsigned char *buf;
  size_t len, cap;
  size_t *off; /* offset of each item's type byte */
  size_t count, off_cap;
  /* Object items name OS handles by index in this table, and stand for
   * the objects kept here per item (NULL for plain items).  A tuple built
   * in this process borrows both; one decoded in a child owns them. */
  mpi_fd *handles;
  size_t n_handles, handles_cap;
  void **objects; /* off_cap entries */
  int owns;
};

/* ---- little-endian helpers ------------------------------------------ */

static void put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++)
    v |= (uint32_t)p[i] << (8 * i);
  return v;
}

static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* ---- building ------------------------------------------------------- */

/* Room for oc items in the offset and object tables. */
static int grow_items(mp_args *a, size_t oc) {
  size_t *o = realloc(a->off, oc * sizeof *o);
  if (o == NULL)
    return mp__error(MP_ENOMEM, "mp_args: out of memory");
  a->off = o;
  void **obj = realloc(a->objects, oc * sizeof *obj);
  if (obj == NULL)
    return mp__error(MP_ENOMEM, "mp_args: out of memory");
  memset(obj + a->off_cap, 0, (oc - a->off_cap) * sizeof *obj);
  a->objects = obj;
  a->off_cap = oc;
  return 0;
}

static int reserve(mp_args *a, size_t extra) {
  if (extra > SIZE_MAX / 2 - a->len) /* the doubling below would wrap */
    return mp__error(MP_ENOMEM, "mp_args: out of memory");
  if (a->len + extra > a->cap) {
    size_t cap = a->cap ? a->cap : 64;
    while (cap < a->len + extra)
      cap *= 2;
    unsigned char *b = realloc(a->buf, cap);
    if (b == NULL)
      return mp__error(MP_ENOMEM, "mp_args: out of memory");
    a->buf = b;
    a->cap = cap;
  }
  if (a->count == a->off_cap)
    return grow_items(a, a->off_cap ? a->off_cap * 2 : 8);
  return 0;
}

int mp_args_new(mp_args **out) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_args_new: out is NULL");
  *out = NULL;
  mp_args *a = calloc(1, sizeof *a);
  if (a == NULL || reserve(a, ARGS_HEADER) != 0) {
    free(a);
    return mp__error(MP_ENOMEM, "mp_args_new: out of memory");
  }
  memcpy(a->buf, ARGS_MAGIC, 4);
  put_u32(a->buf + 4, 0);
  a->len = ARGS_HEADER;
  *out = a;
  return 0;
}

/* Append one item: its type byte, an optional fixed head, then a body. */
static int add_item(mp_args *a, int type, const void *head, size_t head_n,
                    const void *body, size_t body_n, int nul) {
  if (a == NULL)
    return mp__error(MP_EINVAL, "mp_args: NULL tuple");
  if (body_n > ARGS_ITEM_MAX)
    return mp__error(MP_ERANGE, "mp_args: item of %zu bytes is too large",
                     body_n);
  size_t need = 1 + head_n + body_n + (nul ? 1 : 0);
  int rc = reserve(a, need);
  if (rc != 0)
    return rc;
  unsigned char *p = a->buf + a->len;
  a->off[a->count++] = a->len;
  *p++ = (unsigned char)type;
  if (head_n)
    memcpy(p, head, head_n);
  p += head_n;
  if (body_n)
    memcpy(p, body, body_n);
  p += body_n;
  if (nul)
    *p = '\0';
  a->len += need;
  put_u32(a->buf + 4, (uint32_t)a->count);
  return 0;
}

int mp_args_add_int(mp_args *a, int64_t v) {
  unsigned char h[8];
  put_u64(h, (uint64_t)v);
  return add_item(a, MP_ARG_INT, h, 8, NULL, 0, 0);
}

int mp_args_add_double(mp_args *a, double v) {
  uint64_t bits;
  unsigned char h[8];
  memcpy(&bits, &v, 8);
  put_u64(h, bits);
  return add_item(a, MP_ARG_DOUBLE, h, 8, NULL, 0, 0);
}

int mp_args_add_str(mp_args *a, const char *s) {
  if (s == NULL)
    return mp__error(MP_EINVAL, "mp_args_add_str: NULL string");
  size_t n = strlen(s);
  unsigned char h[4];
  put_u32(h, (uint32_t)n);
  return add_item(a, MP_ARG_STR, h, 4, s, n, 1);
}

int mp_args_add_bytes(mp_args *a, const void *p, size_t n) {
  if (p == NULL && n != 0)
    return mp__error(MP_EINVAL, "mp_args_add_bytes: NULL data");
  unsigned char h[4];
  put_u32(h, (uint32_t)n);
  return add_item(a, MP_ARG_BYTES, h, 4, p, n, 0);
}

int mp_args_add_none(mp_args *a) {
  return add_item(a, MP_ARG_NONE, NULL, 0, NULL, 0, 0);
}

int mp_args_add_tuple(mp_args *a, const mp_args *t) {
  if (t == NULL)
    return mp__error(MP_EINVAL, "mp_args_add_tuple: NULL tuple");
  if (mp__args_has_objects(t))
    return mp__error(MP_ETYPE, "a nested tuple cannot hold objects");
  if (t == a)
    return mp__error(MP_EINVAL, "mp_args_add_tuple: a tuple inside itself");
  unsigned char h[4];
  put_u32(h, (uint32_t)t->len);
  return add_item(a, MP_ARG_TUPLE, h, 4, t->buf, t->len, 0);
}

int mp__args_add_object(mp_args *a, uint32_t kind, const void *blob,
                        size_t n, void *obj) {
  if (blob == NULL && n != 0)
    return mp__error(MP_EINVAL, "mp_args: NULL object blob");
  unsigned char h[8];
  put_u32(h, kind);
  put_u32(h + 4, (uint32_t)n);
  int rc = add_item(a, MP_ARG_OBJECT, h, 8, blob, n, 0);
  if (rc == 0)
    a->objects[a->count - 1] = obj;
  return rc;
}

int mp__args_add_handle(mp_args *a, mpi_fd h, uint32_t *index) {
  if (a->n_handles == a->handles_cap) {
    size_t cap = a->handles_cap ? a->handles_cap * 2 : 4;
    mpi_fd *t = realloc(a->handles, cap * sizeof *t);
    if (t == NULL)
      return mp__error(MP_ENOMEM, "mp_args: out of memory");
    a->handles = t;
    a->handles_cap = cap;
  }
  *index = (uint32_t)a->n_handles;
  a->handles[a->n_handles++] = h;
  return 0;
}

const mpi_fd *mp__args_handles(const mp_args *a, size_t *n) {
  *n = a ? a->n_handles : 0;
  return a ? a->handles : NULL;
}

int mp__args_holds(const mp_args *a, const void *obj) {
  for (size_t i = 0; i < a->count; i++)
    if (a->objects[i] == obj)
      return 1;
  return 0;
}

int mp__args_has_objects(const mp_args *a) {
  for (size_t i = 0; i < a->count; i++)
    if (a->buf[a->off[i]] == MP_ARG_OBJECT)
      return 1;
  return 0;
}

/* What each object kind is, for a tuple that owns its objects. */
static int object_open(uint32_t kind, const void *blob, size_t n,
                       mpi_fd *handles, size_t nh, void **out) {
  switch (kind) {
  case MP__OBJ_CONN:
    return mp__conn_open(blob, n, handles, nh, out);
  case MP__OBJ_SHARED:
    return mp__shared_open(blob, n, handles, nh, out);
  case MP__OBJ_PROXY:
    return mp__proxy_open(blob, n, out);
  default:
    return mp__error(MP_EPROTO, "mp_args: unknown object kind %u",
                     (unsigned)kind);
  }
}

static void object_release(uint32_t kind, void *obj) {
  if (kind == MP__OBJ_CONN)
    mp_conn_free(obj);
  else if (kind == MP__OBJ_SHARED)
    mp__shared_release(obj);
  else if (kind == MP__OBJ_PROXY)
    mp__proxy_release(obj);
}

/* A proxy is held by every tuple it is in (a reference count in this
 * process), built here or decoded: copies and slices take their own. */
static int is_proxy_item(const mp_args *a, size_t i) {
  const unsigned char *p = a->buf + a->off[i];
  return p[0] == MP_ARG_OBJECT && get_u32(p + 1) == MP__OBJ_PROXY;
}

static void retain_object(const mp_args *a, size_t i) {
  if (a->objects[i] != NULL && is_proxy_item(a, i))
    mp__proxy_retain(a->objects[i]);
}

void mp_args_free(mp_args *a) {
  if (a == NULL)
    return;
  for (size_t i = 0; i < a->count; i++)
    if (a->buf[a->off[i]] == MP_ARG_TUPLE && a->objects[i] != NULL)
      mp_args_free(a->objects[i]);
  if (!a->owns) {
    for (size_t i = 0; i < a->count; i++)
      if (a->objects[i] != NULL && is_proxy_item(a, i))
        mp__proxy_release(a->objects[i]);
  } else {
    for (size_t i = 0; i < a->count; i++) {
      uint32_t kind;
      const void *blob;
      size_t n;
      if (a->objects[i] != NULL &&
          mp__args_get_object(a, i, &kind, &blob, &n) == 0)
        object_release(kind, a->objects[i]);
    }
    for (size_t i = 0; i < a->n_handles; i++)
      if (a->handles[i] != MPI_BAD_FD)
        mpi_stream_close(a->handles[i]); /* closes any handle */
  }
  free(a->handles);
  free(a->objects);
  free(a->buf);
  free(a->off);
  free(a);
}

/* ---- reading ---------------------------------------------------------- */

size_t mp_args_count(const mp_args *a) { return a ? a->count : 0; }

int mp_args_type(const mp_args *a, size_t i) {
  if (a == NULL)
    return mp__error(MP_EINVAL, "mp_args_type: NULL tuple");
  if (i >= a->count)
    return mp__error(MP_ERANGE, "mp_args: index %zu out of range (%zu items)",
                     i, a->count);
  return a->buf[a->off[i]];
}

/* Item i's payload if it has the wanted type. */
static int item(const mp_args *a, size_t i, int type,
                const unsigned char **p) {
  int t = mp_args_type(a, i);
  if (t < 0)
    return t;
  if (t != type)
    return mp__error(MP_ETYPE, "mp_args: item %zu has type %d, not %d", i, t,
                     type);
  *p = a->buf + a->off[i] + 1;
  return 0;
}

static int get_int(const mp_args *a, size_t i, int64_t *v) {
  const unsigned char *p = NULL;
  int rc = item(a, i, MP_ARG_INT, &p);
  if (rc == 0)
    *v = (int64_t)get_u64(p);
  return rc;
}

static int get_double(const mp_args *a, size_t i, double *v) {
  const unsigned char *p = NULL;
  int rc = item(a, i, MP_ARG_DOUBLE, &p);
  if (rc == 0) {
    uint64_t bits = get_u64(p);
    memcpy(v, &bits, 8);
  }
  return rc;
}

static int get_str(const mp_args *a, size_t i, const char **s) {
  const unsigned char *p = NULL;
  int rc = item(a, i, MP_ARG_STR, &p);
  if (rc == 0)
    *s = (const char *)p + 4;
  return rc;
}

static int get_bytes(const mp_args *a, size_t i, const void **b, size_t *n) {
  const unsigned char *p = NULL;
  int rc = item(a, i, MP_ARG_BYTES, &p);
  if (rc == 0) {
    *n = get_u32(p);
    *b = p + 4;
  }
  return rc;
}

const mp_args *mp_args_tuple(const mp_args *a, size_t i) {
  const unsigned char *p = NULL;
  if (item(a, i, MP_ARG_TUPLE, &p) != 0)
    return NULL;
  mpi_lock(); /* the view is made once, whichever thread asks first */
  if (a->objects[i] == NULL) {
    mp_args *view = NULL;
    if (mp__args_from_bytes(&view, p + 4, get_u32(p)) == 0)
      ((mp_args *)a)->objects[i] = view;
  }
  mpi_unlock();
  return a->objects[i];
}

int mp__args_get_object(const mp_args *a, size_t i, uint32_t *kind,
                        const void **blob, size_t *n) {
  const unsigned char *p = NULL;
  int rc = item(a, i, MP_ARG_OBJECT, &p);
  if (rc == 0) {
    *kind = get_u32(p);
    *n = get_u32(p + 4);
    *blob = p + 8;
  }
  return rc;
}

void *mp__args_object(const mp_args *a, size_t i, uint32_t kind) {
  uint32_t k;
  const void *blob;
  size_t n;
  if (mp__args_get_object(a, i, &k, &blob, &n) != 0)
    return NULL;
  if (k != kind) {
    mp__error(MP_ETYPE, "mp_args: item %zu is another kind of object", i);
    return NULL;
  }
  if (a->objects[i] == NULL)
    mp__error(MP_ENOENT, "mp_args: object %zu is not available here", i);
  return a->objects[i];
}

int mp__args_adopt(mp_args *a, mpi_fd *handles, size_t n) {
  free(a->handles);
  a->handles = handles;
  a->n_handles = a->handles_cap = n;
  a->owns = 1;
  for (size_t i = 0; i < a->count; i++) {
    uint32_t kind;
    const void *blob;
    size_t bn;
    if (mp__args_get_object(a, i, &kind, &blob, &bn) != 0)
      continue;
    int rc = object_open(kind, blob, bn, a->handles, a->n_handles,
                         &a->objects[i]);
    if (rc != 0)
      return rc;
  }
  return 0;
}

int64_t mp_args_int(const mp_args *a, size_t i) {
  int64_t v = 0;
  return get_int(a, i, &v) == 0 ? v : 0;
}

double mp_args_double(const mp_args *a, size_t i) {
  double v = 0.0;
  return get_double(a, i, &v) == 0 ? v : 0.0;
}

const char *mp_args_str(const mp_args *a, size_t i) {
  const char *s = NULL;
  return get_str(a, i, &s) == 0 ? s : NULL;
}

const void *mp_args_bytes(const mp_args *a, size_t i, size_t *n) {
  const void *b = NULL;
  size_t len = 0;
  if (get_bytes(a, i, &b, &len) != 0)
    b = NULL;
  if (n != NULL)
    *n = len;
  return b;
}

/* ---- format packing --------------------------------------------------- */

static int pack_one(mp_args *a, char f, va_list *ap) {
  switch (f) {
  case 'i':
    return mp_args_add_int(a, va_arg(*ap, int));
  case 'I':
    return mp_args_add_int(a, va_arg(*ap, int64_t));
  case 'd':
    return mp_args_add_double(a, va_arg(*ap, double));
  case 's':
    return mp_args_add_str(a, va_arg(*ap, const char *));
  case 'y': {
    const void *p = va_arg(*ap, const void *);
    size_t n = va_arg(*ap, size_t);
    return mp_args_add_bytes(a, p, n);
  }
  case 'n':
    return mp_args_add_none(a);
  case 'P':
    return mp_args_add_proxy(a, va_arg(*ap, mp_proxy *));
  /* Objects: one capital letter per kind (mproc.h lists them). */
  case 'C':
    return mp_args_add_conn(a, va_arg(*ap, mp_conn *));
  case 'L':
    return mp_args_add_lock(a, va_arg(*ap, mp_lock *));
  case 'S':
    return mp_args_add_semaphore(a, va_arg(*ap, mp_semaphore *));
  case 'E':
    return mp_args_add_event(a, va_arg(*ap, mp_event *));
  case 'W':
    return mp_args_add_condition(a, va_arg(*ap, mp_condition *));
  case 'B':
    return mp_args_add_barrier(a, va_arg(*ap, mp_barrier *));
  case 'Q':
    return mp_args_add_queue(a, va_arg(*ap, mp_queue *));
  case 'V':
    return mp_args_add_value(a, va_arg(*ap, mp_value *));
  case 'A':
    return mp_args_add_array(a, va_arg(*ap, mp_array *));
  case 'M':
    return mp_args_add_shm(a, va_arg(*ap, mp_shm *));
  default:
    return mp__error(MP_EINVAL, "mp_args_pack: unknown format '%c'", f);
  }
}

int mp__args_vpack(mp_args *a, const char *fmt, va_list *ap) {
  if (fmt == NULL)
    return mp__error(MP_EINVAL, "NULL format");
  int rc = 0;
  for (const char *f = fmt; *f && rc == 0; f++)
    rc = pack_one(a, *f, ap);
  return rc;
}

void mp__args_set_object(mp_args *a, size_t i, void *obj) {
  a->objects[i] = obj;
}

int mp__args_vnew(mp_args **out, const char *fmt, va_list *ap) {
  *out = NULL;
  if (fmt == NULL)
    return mp__error(MP_EINVAL, "NULL format");
  int rc = mp_args_new(out);
  if (rc == 0 && (rc = mp__args_vpack(*out, fmt, ap)) != 0) {
    mp_args_free(*out);
    *out = NULL;
  }
  return rc;
}

int mp_args_pack(mp_args **out, const char *fmt, ...) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_args_pack: NULL out");
  va_list ap;
  va_start(ap, fmt);
  int rc = mp__args_vnew(out, fmt, &ap);
  va_end(ap);
  return rc;
}

/* An object for mp_args_unpack: `obj` is what the typed getter gave for
 * item i, `dst` the caller's `T **` (every object pointer has the same
 * representation as void *, as on every platform mproc supports). */
static int unpack_obj(const mp_args *a, size_t i, void *obj, void *dst) {
  if (obj == NULL) /* the getter said why */
    return a->buf[a->off[i]] == MP_ARG_OBJECT && a->objects[i] == NULL
               ? MP_ENOENT
               : MP_ETYPE;
  memcpy(dst, &obj, sizeof obj);
  return 0;
}

static int unpack_one(const mp_args *a, size_t i, char f, va_list *ap) {
  switch (f) {
  case 'i': {
    int64_t v;
    int rc = get_int(a, i, &v);
    if (rc == 0 && (v < INT32_MIN || v > INT32_MAX))
      rc = mp__error(MP_ERANGE, "mp_args_unpack: item %zu does not fit int",
                     i);
    if (rc == 0)
      *va_arg(*ap, int *) = (int)v;
    return rc;
  }
  case 'I':
    return get_int(a, i, va_arg(*ap, int64_t *));
  case 'd':
    return get_double(a, i, va_arg(*ap, double *));
  case 's':
    return get_str(a, i, va_arg(*ap, const char **));
  case 'y': {
    const void **p = va_arg(*ap, const void **);
    size_t *n = va_arg(*ap, size_t *);
    return get_bytes(a, i, p, n);
  }
  case 'n':
    return mp_args_type(a, i) == MP_ARG_NONE
               ? 0
               : mp__error(MP_ETYPE, "mp_args: item %zu is not None", i);
  case 'C': return unpack_obj(a, i, mp_args_conn(a, i), va_arg(*ap, void *));
  case 'L': return unpack_obj(a, i, mp_args_lock(a, i), va_arg(*ap, void *));
  case 'S':
    return unpack_obj(a, i, mp_args_semaphore(a, i), va_arg(*ap, void *));
  case 'E': return unpack_obj(a, i, mp_args_event(a, i), va_arg(*ap, void *));
  case 'W':
    return unpack_obj(a, i, mp_args_condition(a, i), va_arg(*ap, void *));
  case 'B':
    return unpack_obj(a, i, mp_args_barrier(a, i), va_arg(*ap, void *));
  case 'Q': return unpack_obj(a, i, mp_args_queue(a, i), va_arg(*ap, void *));
  case 'V': return unpack_obj(a, i, mp_args_value(a, i), va_arg(*ap, void *));
  case 'A': return unpack_obj(a, i, mp_args_array(a, i), va_arg(*ap, void *));
  case 'M': return unpack_obj(a, i, mp_args_shm(a, i), va_arg(*ap, void *));
  case 'P': return unpack_obj(a, i, mp_args_proxy(a, i), va_arg(*ap, void *));
  default:
    return mp__error(MP_EINVAL, "mp_args_unpack: unknown format '%c'", f);
  }
}

int mp_args_unpack(const mp_args *a, const char *fmt, ...) {
  if (a == NULL || fmt == NULL)
    return mp__error(MP_EINVAL, "mp_args_unpack: NULL argument");
  size_t n = strlen(fmt);
  if (n != a->count)
    return mp__error(MP_EINVAL,
                     "mp_args_unpack: format has %zu items, tuple has %zu", n,
                     a->count);
  int rc = 0;
  va_list ap;
  va_start(ap, fmt);
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = unpack_one(a, i, fmt[i], &ap);
  va_end(ap);
  return rc;
}

/* ---- bytes in and out ------------------------------------------------- */

const void *mp__args_data(const mp_args *a, size_t *n) {
  *n = a->len;
  return a->buf;
}

/* Add an opened object to `a` again, as its own kind's mp_args_add_*
 * would: a new reference naming the handles the object holds now. */
static int object_add_again(mp_args *a, uint32_t kind, void *obj) {
  if (kind == MP__OBJ_CONN)
    return mp_args_add_conn(a, obj);
  if (kind == MP__OBJ_PROXY)
    return mp_args_add_proxy(a, obj);
  switch (((mp__obj *)obj)->type) {
  case MP__T_LOCK: return mp_args_add_lock(a, obj);
  case MP__T_SEMAPHORE: return mp_args_add_semaphore(a, obj);
  case MP__T_EVENT: return mp_args_add_event(a, obj);
  case MP__T_CONDITION: return mp_args_add_condition(a, obj);
  case MP__T_BARRIER: return mp_args_add_barrier(a, obj);
  case MP__T_QUEUE: return mp_args_add_queue(a, obj);
  case MP__T_VALUE: return mp_args_add_value(a, obj);
  case MP__T_ARRAY: return mp_args_add_array(a, obj);
  case MP__T_SHM: return mp_args_add_shm(a, obj);
  default: return mp__error(MP_EPROTO, "mp_args: unknown object");
  }
}

/* A copy of a tuple received by this process (one that owns its objects)
 * is one of these: its handle table named the handles as they came, now
 * owned by the objects opened from them (gh-108520: a child hands on what
 * it received). */
int mp__args_rebuild(mp_args **out, const mp_args *a) {
  int rc = mp_args_new(out);
  for (size_t i = 0; rc == 0 && i < a->count; i++) {
    uint32_t kind;
    const void *blob;
    size_t n;
    if (a->buf[a->off[i]] != MP_ARG_OBJECT)
      rc = mp__args_add_item_of(*out, a, i);
    else if (mp__args_get_object(a, i, &kind, &blob, &n) != 0)
      rc = mp__error(MP_EPROTO, "mp_args: malformed object %zu", i);
    else if (a->objects[i] == NULL)
      rc = mp__error(MP_ENOENT, "mp_args: object %zu is not available here",
                     i);
    else
      rc = object_add_again(*out, kind, a->objects[i]);
  }
  if (rc != 0) {
    mp_args_free(*out);
    *out = NULL;
  }
  return rc;
}

/* A copy borrows the original's handles and objects. */
int mp_args_copy(mp_args **out, const mp_args *a) {
  if (out == NULL || a == NULL)
    return mp__error(MP_EINVAL, "mp_args_copy: NULL argument");
  if (a->owns && mp__args_has_objects(a))
    return mp__args_rebuild(out, a);
  int rc = mp__args_from_bytes(out, a->buf, a->len);
  for (size_t i = 0; rc == 0 && i < a->n_handles; i++) {
    uint32_t index;
    rc = mp__args_add_handle(*out, a->handles[i], &index);
  }
  if (rc == 0) {
    for (size_t i = 0; i < a->count; i++)
      if (a->buf[a->off[i]] == MP_ARG_OBJECT) {
        (*out)->objects[i] = a->objects[i];
        retain_object(a, i);
      }
  } else {
    mp_args_free(*out);
    *out = NULL;
  }
  return rc;
}

static int validate(const unsigned char *p, size_t n, int depth,
                    uint32_t *count);

/* Size of the item at p (type byte included), or 0 if it does not fit in
 * the `left` bytes or is malformed.  Nested tuples are validated whole,
 * `depth` levels down. */
static size_t item_size(const unsigned char *p, size_t left, int depth) {
  if (left < 1)
    return 0;
  size_t head, body;
  switch (p[0]) {
  case MP_ARG_NONE:
    return 1;
  case MP_ARG_INT:
  case MP_ARG_DOUBLE:
    return left >= 9 ? 9 : 0;
  case MP_ARG_STR:
  case MP_ARG_BYTES:
  case MP_ARG_TUPLE:
    head = 4;
    break;
  case MP_ARG_OBJECT:
    if (depth > 0)
      return 0; /* objects only at the top */
    head = 8;
    break;
  default:
    return 0;
  }
  if (left < 1 + head)
    return 0;
  /* The body length is the last u32 of the head. */
  body = get_u32(p + 1 + head - 4);
  if (p[0] == MP_ARG_STR) { /* body bytes, then the NUL */
    if (left - 1 - head < 1 || body > left - 1 - head - 1)
      return 0;
    const unsigned char *s = p + 1 + head;
    if (s[body] != '\0' || memchr(s, '\0', body) != NULL)
      return 0;
    return 1 + head + body + 1;
  }
  if (body > left - 1 - head)
    return 0;
  uint32_t inner;
  if (p[0] == MP_ARG_TUPLE &&
      (depth >= ARGS_MAX_DEPTH || validate(p + 5, body, depth + 1, &inner)))
    return 0;
  return 1 + head + body;
}

/* Check a whole encoded tuple: 0 (and its item count) or MP_EPROTO. */
static int validate(const unsigned char *p, size_t n, int depth,
                    uint32_t *count) {
  if (n < ARGS_HEADER || memcmp(p, ARGS_MAGIC, 4) != 0)
    return MP_EPROTO;
  *count = get_u32(p + 4);
  if (*count > n - ARGS_HEADER)
    return MP_EPROTO;
  size_t pos = ARGS_HEADER;
  for (uint32_t i = 0; i < *count; i++) {
    size_t sz = item_size(p + pos, n - pos, depth);
    if (sz == 0)
      return MP_EPROTO;
    pos += sz;
  }
  return pos == n ? 0 : MP_EPROTO;
}

/* Empty a tuple of plain values, keeping its memory. */
void mp__args_reset(mp_args *a) {
  for (size_t i = 0; i < a->count; i++)
    if (a->buf[a->off[i]] == MP_ARG_TUPLE && a->objects[i] != NULL) {
      mp_args_free(a->objects[i]);
      a->objects[i] = NULL;
    } else if (a->objects[i] != NULL && is_proxy_item(a, i)) {
      mp__proxy_release(a->objects[i]);
      a->objects[i] = NULL;
    }
  a->count = 0;
  a->len = ARGS_HEADER;
  put_u32(a->buf + 4, 0);
}

/* Replace the contents of a (plain values only) with the tuple encoded in
 * data: 0, MP_EPROTO (malformed: a is left empty) or MP_ENOMEM. */
int mp__args_load(mp_args *a, const void *data, size_t n) {
  const unsigned char *p = data;
  uint32_t count = 0;
  mp__args_reset(a);
  if (data == NULL || validate(p, n, 0, &count) != 0)
    return mp__error(MP_EPROTO, "mp_args: malformed tuple");
  int rc = reserve(a, n);
  if (rc != 0)
    return rc;
  memcpy(a->buf, p, n);
  a->len = n;
  size_t pos = ARGS_HEADER;
  for (uint32_t i = 0; i < count; i++) {
    if (a->count == a->off_cap && (rc = reserve(a, 0)) != 0) {
      mp__args_reset(a);
      return rc;
    }
    a->off[a->count++] = pos;
    pos += item_size(p + pos, n - pos, 0);
  }
  return 0;
}

/* Item i's encoding (type byte included). */
static void item_raw(const mp_args *a, size_t i, const unsigned char **p,
                     size_t *n) {
  size_t end = i + 1 < a->count ? a->off[i + 1] : a->len;
  *p = a->buf + a->off[i];
  *n = end - a->off[i];
}

/* Append item i of src (a plain value or tuple) to a. */
int mp__args_add_item_of(mp_args *a, const mp_args *src, size_t i) {
  if (i >= src->count)
    return mp__error(MP_ERANGE, "mp_args: index %zu out of range", i);
  if (src->buf[src->off[i]] == MP_ARG_OBJECT)
    return mp__error(MP_ETYPE, "objects cannot be results");
  const unsigned char *p;
  size_t n;
  item_raw(src, i, &p, &n);
  int rc = reserve(a, n);
  if (rc != 0)
    return rc;
  a->off[a->count++] = a->len;
  memcpy(a->buf + a->len, p, n);
  a->len += n;
  put_u32(a->buf + 4, (uint32_t)a->count);
  return 0;
}

void mp__args_item_raw(const mp_args *a, size_t i, const void **p,
                       size_t *n) {
  const unsigned char *q;
  item_raw(a, i, &q, n);
  *p = q;
}

/* Append one encoded item, which may be an object reference (its object
 * is not opened here): 0, or MP_EPROTO when it is malformed. */
int mp__args_add_raw(mp_args *a, const void *p, size_t n) {
  if (item_size(p, n, 0) != n)
    return mp__error(MP_EPROTO, "mp_args: malformed item");
  int rc = reserve(a, n);
  if (rc != 0)
    return rc;
  a->objects[a->count] = NULL;
  a->off[a->count++] = a->len;
  memcpy(a->buf + a->len, p, n);
  a->len += n;
  put_u32(a->buf + 4, (uint32_t)a->count);
  return 0;
}

/* Room for `bytes` more encoded bytes and `count` more items, in one
 * allocation each (a map's results, whose size is known). */
int mp__args_reserve(mp_args *a, size_t bytes, size_t count) {
  int rc = reserve(a, bytes);
  if (rc != 0 || count <= a->off_cap - a->count)
    return rc;
  if (count > SIZE_MAX / sizeof(void *) - a->count)
    return mp__error(MP_ENOMEM, "mp_args: out of memory");
  return grow_items(a, a->count + count);
}

/* Append the items encoded in data (n bytes, `count` items, plain values
 * and tuples): 0, or MP_EPROTO when they are malformed (a unchanged). */
int mp__args_extend(mp_args *a, const void *data, size_t n, size_t count) {
  const unsigned char *p = data;
  size_t pos = 0, old_len = a->len, old_count = a->count;
  int rc = reserve(a, n);
  for (size_t i = 0; rc == 0 && i < count; i++) {
    size_t sz = item_size(p + pos, n - pos, 1);
    if (sz == 0) {
      rc = mp__error(MP_EPROTO, "mp_args: malformed item");
      break;
    }
    if (a->count == a->off_cap && (rc = reserve(a, 0)) != 0)
      break;
    a->off[a->count++] = a->len + pos;
    pos += sz;
  }
  if (rc == 0 && pos != n)
    rc = mp__error(MP_EPROTO, "mp_args: %zu trailing bytes", n - pos);
  if (rc != 0) {
    a->count = old_count;
    a->len = old_len;
    return rc;
  }
  memcpy(a->buf + a->len, p, n);
  a->len += n;
  put_u32(a->buf + 4, (uint32_t)a->count);
  return 0;
}

/* A tuple of items [start, start + count) of a that borrows a's objects
 * (for a worker's initializer arguments). */
int mp__args_slice(const mp_args *a, size_t start, size_t count,
                   mp_args **out) {
  if (start > a->count || count > a->count - start)
    return mp__error(MP_ERANGE, "mp_args: slice out of range");
  int rc = mp_args_new(out);
  for (size_t i = start; rc == 0 && i < start + count; i++) {
    const unsigned char *p;
    size_t n;
    item_raw(a, i, &p, &n);
    if ((rc = reserve(*out, n)) == 0) {
      mp_args *o = *out;
      o->objects[o->count] = a->buf[a->off[i]] == MP_ARG_OBJECT
                                 ? a->objects[i] : NULL;
      retain_object(a, i);
      o->off[o->count++] = o->len;
      memcpy(o->buf + o->len, p, n);
      o->len += n;
      put_u32(o->buf + 4, (uint32_t)o->count);
    }
  }
  if (rc != 0 && *out != NULL) {
    mp_args_free(*out);
    *out = NULL;
  }
  return rc;
}

/* The encoded bytes of items [first, first + count). */
int mp__args_range(const mp_args *a, size_t first, size_t count,
                   const void **p, size_t *n) {
  if (first > a->count || count > a->count - first)
    return mp__error(MP_ERANGE, "mp_args: range out of bounds");
  size_t start = first < a->count ? a->off[first] : a->len;
  size_t end = first + count < a->count ? a->off[first + count] : a->len;
  *p = a->buf + start;
  *n = end - start;
  return 0;
}

/* The encoded items (after the header) and their count. */
const void *mp__args_items(const mp_args *a, size_t *n) {
  *n = a->len - ARGS_HEADER;
  return a->buf + ARGS_HEADER;
}

/* Append a call's value: its single value, None when it has none, the
 * tuple itself when it has several. */
int mp__args_add_value_of(mp_args *a, const mp_args *res) {
  if (res->count == 0)
    return mp_args_add_none(a);
  if (res->count == 1)
    return mp__args_add_item_of(a, res, 0);
  return mp_args_add_tuple(a, res);
}

int mp__args_from_bytes(mp_args **out, const void *data, size_t n) {
  *out = NULL;
  mp_args *a;
  int rc = mp_args_new(&a);
  if (rc != 0)
    return rc;
  if ((rc = mp__args_load(a, data, n)) != 0) {
    mp_args_free(a);
    return rc;
  }
  *out = a;
  return 0;
}

/* ---- ordering (list.sort in the manager) ----------------------------- */

static const char *type_name(int t) {
  switch (t) {
  case MP_ARG_INT: return "int";
  case MP_ARG_DOUBLE: return "double";
  case MP_ARG_STR: return "str";
  case MP_ARG_BYTES: return "bytes";
  case MP_ARG_NONE: return "None";
  case MP_ARG_TUPLE: return "tuple";
  default: return "object";
  }
}

static int sign3(int c) { return (c > 0) - (c < 0); }

/* An int against a double, exactly (no rounding of large ints); NaN
 * orders after every number. */
static int int_vs_double(int64_t i, double d) {
  if (d != d)
    return -1;
  if (d >= 9223372036854775808.0)
    return -1;
  if (d < -9223372036854775808.0)
    return 1;
  int64_t t = (int64_t)d; /* truncated toward zero, in range */
  if (i != t)
    return i < t ? -1 : 1;
  double td = (double)t; /* exact: the integral part of a double */
  return d > td ? -1 : d < td ? 1 : 0;
}

static int double_vs_double(double a, double b) {
  int an = a != a, bn = b != b;
  if (an || bn)
    return an - bn;
  return (a > b) - (a < b);
}

static int order_items(const unsigned char *a, const unsigned char *b,
                       int *out);

/* The size of a well-formed item (no checks: already validated). */
static size_t known_size(const unsigned char *p) {
  switch (p[0]) {
  case MP_ARG_NONE: return 1;
  case MP_ARG_INT:
  case MP_ARG_DOUBLE: return 9;
  case MP_ARG_STR: return 1 + 4 + (size_t)get_u32(p + 1) + 1;
  case MP_ARG_OBJECT: return 1 + 8 + (size_t)get_u32(p + 5);
  default: return 1 + 4 + (size_t)get_u32(p + 1); /* bytes, tuple */
  }
}

/* Two encoded tuples (validated), lexicographically. */
static int order_tuples(const unsigned char *a, const unsigned char *b,
                        int *out) {
  uint32_t na = get_u32(a + 4), nb = get_u32(b + 4);
  size_t pa = ARGS_HEADER, pb = ARGS_HEADER;
  for (uint32_t i = 0; i < na && i < nb; i++) {
    int rc = order_items(a + pa, b + pb, out);
    if (rc != 0 || *out != 0)
      return rc;
    pa += known_size(a + pa);
    pb += known_size(b + pb);
  }
  *out = (na > nb) - (na < nb);
  return 0;
}

static int order_items(const unsigned char *a, const unsigned char *b,
                       int *out) {
  int ta = a[0], tb = b[0];
  *out = 0;
  if (ta == MP_ARG_INT && tb == MP_ARG_INT) {
    int64_t x = (int64_t)get_u64(a + 1), y = (int64_t)get_u64(b + 1);
    *out = (x > y) - (x < y);
  } else if (ta == MP_ARG_INT && tb == MP_ARG_DOUBLE) {
    double y;
    uint64_t bits = get_u64(b + 1);
    memcpy(&y, &bits, sizeof y);
    *out = int_vs_double((int64_t)get_u64(a + 1), y);
  } else if (ta == MP_ARG_DOUBLE && tb == MP_ARG_INT) {
    double x;
    uint64_t bits = get_u64(a + 1);
    memcpy(&x, &bits, sizeof x);
    *out = -int_vs_double((int64_t)get_u64(b + 1), x);
  } else if (ta == MP_ARG_DOUBLE && tb == MP_ARG_DOUBLE) {
    double x, y;
    uint64_t bx = get_u64(a + 1), by = get_u64(b + 1);
    memcpy(&x, &bx, sizeof x);
    memcpy(&y, &by, sizeof y);
    *out = double_vs_double(x, y);
  } else if (ta != tb || ta == MP_ARG_OBJECT) {
    return mp__error(MP_ETYPE, "'<' is not defined between %s and %s",
                     type_name(ta), type_name(tb));
  } else if (ta == MP_ARG_STR || ta == MP_ARG_BYTES) {
    /* UTF-8 byte order is code point order. */
    uint32_t la = get_u32(a + 1), lb = get_u32(b + 1);
    int c = memcmp(a + 5, b + 5, la < lb ? la : lb);
    *out = c != 0 ? sign3(c) : (la > lb) - (la < lb);
  } else if (ta == MP_ARG_TUPLE) {
    return order_tuples(a + 5, b + 5, out);
  } /* None against None: equal */
  return 0;
}

/* The order of two encoded items (well formed, as from an mp_args):
 * numbers by value (ints and doubles together, NaN last), strings and
 * bytes by their bytes, tuples item by item, None equal to None.  0 and
 * *out < 0, 0 or > 0; MP_ETYPE for items that have no order between
 * them (different kinds, objects). */
int mp__args_item_order(const void *a, const void *b, int *out) {
  return order_items(a, b, out);
}

/* ---- repr ----------------------------------------------------------- */

/* Text into a caller's buffer, truncated at cap - 1 but counted whole,
 * as snprintf counts. */
typedef struct text {
  char *buf;
  size_t cap, len;
} text;

static void put_text(text *t, const char *s, size_t n) {
  if (t->len < t->cap) {
    size_t room = t->cap - 1 - t->len;
    memcpy(t->buf + t->len, s, n < room ? n : room);
  }
  t->len += n;
}

static void put_cstr(text *t, const char *s) { put_text(t, s, strlen(s)); }

/* NUL-terminate; the whole length, as snprintf returns it. */
static int text_end(text *t, const char *what) {
  if (t->cap > 0)
    t->buf[t->len < t->cap ? t->len : t->cap - 1] = '\0';
  if (t->len > INT_MAX)
    return mp__error(MP_ERANGE, "%s: longer than INT_MAX", what);
  return (int)t->len;
}

/* Python's quoting: ' unless the text has ' and no ". */
static void put_quoted(text *t, const unsigned char *s, size_t n,
                       int bytes) {
  int single = 0, dbl = 0;
  for (size_t i = 0; i < n; i++) {
    single |= s[i] == '\'';
    dbl |= s[i] == '"';
  }
  char q = single && !dbl ? '"' : '\'';
  if (bytes)
    put_cstr(t, "b");
  put_text(t, &q, 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = s[i];
    char esc[8];
    if (c == '\\' || c == (unsigned char)q) {
      esc[0] = '\\';
      esc[1] = (char)c;
      put_text(t, esc, 2);
    } else if (c == '\n') {
      put_cstr(t, "\\n");
    } else if (c == '\r') {
      put_cstr(t, "\\r");
    } else if (c == '\t') {
      put_cstr(t, "\\t");
    } else if (c < 0x20 || c == 0x7f || (bytes && c > 0x7f)) {
      snprintf(esc, sizeof esc, "\\x%02x", c);
      put_cstr(t, esc);
    } else { /* printable ASCII, or UTF-8 text as Python shows it */
      put_text(t, (const char *)&c, 1);
    }
  }
  put_text(t, &q, 1);
}

/* Python's repr(float): the shortest digits that read back the same,
 * positional from 1e-4 up to 1e16, with ".0" when integral. */
static void put_double(text *t, double v) {
  char b[64];
  if (v != v) {
    put_cstr(t, "nan");
    return;
  }
  if (v == HUGE_VAL || v == -HUGE_VAL) {
    put_cstr(t, v < 0 ? "-inf" : "inf");
    return;
  }
  int p = 1;
  for (; p < 17; p++) {
    snprintf(b, sizeof b, "%.*e", p - 1, v);
    if (strtod(b, NULL) == v)
      break;
  }
  snprintf(b, sizeof b, "%.*e", p - 1, v);
  const char *e = strchr(b, 'e');
  int exp = e ? atoi(e + 1) : 0;
  if (exp >= -4 && exp < 16) {
    int decimals = p - 1 - exp;
    snprintf(b, sizeof b, "%.*f", decimals > 0 ? decimals : 0, v);
    put_cstr(t, b);
    if (strchr(b, '.') == NULL)
      put_cstr(t, ".0");
  } else {
    put_cstr(t, b);
  }
}

static const char *object_name(const mp_args *a, size_t i) {
  uint32_t kind;
  const void *blob;
  size_t n;
  if (mp__args_get_object(a, i, &kind, &blob, &n) != 0)
    return "object";
  if (kind == MP__OBJ_CONN)
    return "Connection";
  if (kind == MP__OBJ_PROXY)
    return "Proxy";
  static const char *const names[MP__T_COUNT] = {
      "object", "Lock",  "Semaphore", "Event", "Condition", "Barrier",
      "Queue",  "Value", "Array",     "SharedMemory"};
  uint32_t type = 0;
  if (a->objects[i] != NULL)
    type = ((const mp__obj *)a->objects[i])->type;
  else if (n >= 8)
    type = get_u32((const unsigned char *)blob + 4);
  return type < MP__T_COUNT ? names[type] : "object";
}

static void put_tuple(text *t, const mp_args *a);

/* Item i as Python's repr shows it. */
static void put_item(text *t, const mp_args *a, size_t i) {
  char b[32];
  const void *p;
  size_t n;
  switch (mp_args_type(a, i)) {
  case MP_ARG_INT:
    snprintf(b, sizeof b, "%lld", (long long)mp_args_int(a, i));
    put_cstr(t, b);
    break;
  case MP_ARG_DOUBLE:
    put_double(t, mp_args_double(a, i));
    break;
  case MP_ARG_STR:
    p = mp_args_str(a, i);
    put_quoted(t, p, strlen(p), 0);
    break;
  case MP_ARG_BYTES:
    p = mp_args_bytes(a, i, &n);
    put_quoted(t, p, n, 1);
    break;
  case MP_ARG_NONE:
    put_cstr(t, "None");
    break;
  case MP_ARG_TUPLE: {
    const mp_args *sub = mp_args_tuple(a, i);
    if (sub != NULL)
      put_tuple(t, sub);
    else
      put_cstr(t, "(...)"); /* no memory to decode it */
    break;
  }
  default: /* MP_ARG_OBJECT */
    put_cstr(t, "<");
    put_cstr(t, object_name(a, i));
    if (is_proxy_item(a, i) && a->objects[i] != NULL) {
      put_cstr(t, " '");
      put_cstr(t, mp_proxy_typeid(a->objects[i]));
      put_cstr(t, "'");
    }
    put_cstr(t, ">");
  }
}

/* Items from, from + step, ... separated by ", " (pairs joined by sep
 * when step is 2: "k: v"). */
static void put_items(text *t, const mp_args *a, size_t step,
                      const char *sep) {
  for (size_t i = 0; i + step <= a->count; i += step) {
    if (i > 0)
      put_cstr(t, ", ");
    put_item(t, a, i);
    if (step == 2) {
      put_cstr(t, sep);
      put_item(t, a, i + 1);
    }
  }
}

static void put_tuple(text *t, const mp_args *a) {
  put_cstr(t, "(");
  put_items(t, a, 1, NULL);
  put_cstr(t, a->count == 1 ? ",)" : ")");
}

int mp_args_repr(const mp_args *a, char *buf, size_t cap) {
  if (buf == NULL && cap > 0)
    return mp__error(MP_EINVAL, "mp_args_repr: NULL buffer");
  if (a == NULL)
    return mp__error(MP_EINVAL, "mp_args_repr: NULL tuple");
  text t = {buf, cap, 0};
  put_tuple(&t, a);
  return text_end(&t, "mp_args_repr");
}

/* What print(proxy) shows in Python (str() of the referent, fetched in
 * one round trip): {'a': 1}, [1, 2], Namespace(a=1), Value('i', 5),
 * array('d', [1.0]); "<Lock>" and so on for the other types. */
int mp_proxy_repr(mp_proxy *p, char *buf, size_t cap) {
  if (buf == NULL && cap > 0)
    return mp__error(MP_EINVAL, "mp_proxy_repr: NULL buffer");
  if (p == NULL)
    return mp__error(MP_EINVAL, "mp_proxy_repr: NULL proxy");
  const char *type = mp_proxy_typeid(p);
  text t = {buf, cap, 0};
  mp_args *items = NULL, *code = NULL;
  int rc = 0;
  if (strcmp(type, "dict") == 0 && (rc = mp_dict_items(p, &items)) == 0) {
    put_cstr(&t, "{");
    put_items(&t, items, 2, ": ");
    put_cstr(&t, "}");
  } else if (strcmp(type, "list") == 0 &&
             (rc = mp_list_copy(p, &items)) == 0) {
    put_cstr(&t, "[");
    put_items(&t, items, 1, NULL);
    put_cstr(&t, "]");
  } else if (strcmp(type, "Namespace") == 0 &&
             (rc = mp_namespace_items(p, &items)) == 0) {
    put_cstr(&t, "Namespace(");
    for (size_t i = 0; i + 2 <= mp_args_count(items); i += 2) {
      if (i > 0)
        put_cstr(&t, ", ");
      const char *name = mp_args_str(items, i);
      put_cstr(&t, name ? name : "?");
      put_cstr(&t, "=");
      put_item(&t, items, i + 1);
    }
    put_cstr(&t, ")");
  } else if ((strcmp(type, "Value") == 0 || strcmp(type, "Array") == 0) &&
             (rc = mp_proxy_call(p, "typecode", NULL, &code)) == 0 &&
             (rc = type[0] == 'V' ? mp_proxy_value_get(p, &items)
                                  : mp_proxy_array_tolist(p, &items)) == 0) {
    put_cstr(&t, type[0] == 'V' ? "Value(" : "array(");
    put_item(&t, code, 0);
    put_cstr(&t, type[0] == 'V' ? ", " : ", [");
    put_items(&t, items, 1, NULL);
    put_cstr(&t, type[0] == 'V' ? ")" : "])");
  } else if (rc == 0) {
    put_cstr(&t, "<");
    put_cstr(&t, type);
    put_cstr(&t, ">");
  }
  mp_args_free(items);
  mp_args_free(code);
  return rc != 0 ? rc : text_end(&t, "mp_proxy_repr");
}
