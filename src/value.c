/*
 * value.c - Value, RawValue, Array, RawArray and named shared memory.
 *
 * A Value is an Array of one element.  Its segment holds the state
 * (typecode, length, where the data is), then, for a synchronized one
 * with its own lock, the lock's state at offset 64 and the data right
 * after it: a small value shares a cache line with its lock, so taking
 * the lock brings the value along.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared.h"
#include "manager.h"

/* ---- typecodes ---------------------------------------------------------- */

typedef struct typecode_info {
  char code;
  size_t size;
  signed char kind; /* 1 signed, 0 unsigned, -1 floating, 2 a C struct */
} typecode_info;

#define KIND_STRUCT 2
#define STRUCT_MAX ((size_t)1 << 30) /* an item's bytes, at most */
#define STRUCT_ALIGN 16u             /* max_align_t on the platforms */

static int not_a_struct(const typecode_info *t) {
  return t->kind == KIND_STRUCT
             ? mp__error(MP_ETYPE, "a struct value: read and write it "
                                   "through its pointer, under its lock")
             : 0;
}

static const typecode_info typecodes[] = {
    {'c', sizeof(char), 0},         {'b', sizeof(signed char), 1},
    {'B', sizeof(unsigned char), 0}, {'h', sizeof(short), 1},
    {'H', sizeof(unsigned short), 0}, {'i', sizeof(int), 1},
    {'I', sizeof(unsigned int), 0},  {'l', sizeof(long), 1},
    {'L', sizeof(unsigned long), 0}, {'q', sizeof(long long), 1},
    {'Q', sizeof(unsigned long long), 0}, {'f', sizeof(float), -1},
    {'d', sizeof(double), -1}};

static const typecode_info *typecode_find(char code) {
  for (size_t i = 0; i < sizeof typecodes / sizeof typecodes[0]; i++)
    if (typecodes[i].code == code)
      return &typecodes[i];
  return NULL;
}

/* Read element p as int64 / double; write x into it. */
static int elem_get_int(const typecode_info *t, const void *p, int64_t *out) {
  if (t->kind == KIND_STRUCT)
    return not_a_struct(t);
  if (t->kind < 0)
    return mp__error(MP_ETYPE, "typecode '%c' holds floating point values",
                     t->code);
  uint64_t u = 0;
  int64_t s = 0;
  switch (t->size) {
  case 1: u = *(const uint8_t *)p; s = *(const int8_t *)p; break;
  case 2: u = *(const uint16_t *)p; s = *(const int16_t *)p; break;
  case 4: u = *(const uint32_t *)p; s = *(const int32_t *)p; break;
  default: u = *(const uint64_t *)p; s = *(const int64_t *)p; break;
  }
  if (t->kind == 1) {
    *out = s;
    return 0;
  }
  if (u > (uint64_t)INT64_MAX)
    return mp__error(MP_ERANGE, "value %llu does not fit in int64_t",
                     (unsigned long long)u);
  *out = (int64_t)u;
  return 0;
}

static int elem_set_int(const typecode_info *t, void *p, int64_t x) {
  if (t->kind == KIND_STRUCT)
    return not_a_struct(t);
  if (t->kind < 0)
    return mp__error(MP_ETYPE, "typecode '%c' holds floating point values",
                     t->code);
  unsigned bits = 8u * t->size;
  if (t->kind == 1 && bits < 64) {
    int64_t lim = (int64_t)1 << (bits - 1);
    if (x < -lim || x >= lim)
      return mp__error(MP_ERANGE, "%lld is out of range for typecode '%c'",
                       (long long)x, t->code);
  } else if (t->kind == 0 &&
             (x < 0 || (bits < 64 && (uint64_t)x >> bits != 0))) {
    return mp__error(MP_ERANGE, "%lld is out of range for typecode '%c'",
                     (long long)x, t->code);
  }
  switch (t->size) {
  case 1: *(uint8_t *)p = (uint8_t)x; break;
  case 2: *(uint16_t *)p = (uint16_t)x; break;
  case 4: *(uint32_t *)p = (uint32_t)x; break;
  default: *(uint64_t *)p = (uint64_t)x; break;
  }
  return 0;
}

static int elem_get_double(const typecode_info *t, const void *p,
                           double *out) {
  if (t->kind == KIND_STRUCT)
    return not_a_struct(t);
  if (t->code == 'f') {
    *out = *(const float *)p;
    return 0;
  }
  if (t->code == 'd') {
    *out = *(const double *)p;
    return 0;
  }
  if (t->kind == 0 && t->size == 8) {
    *out = (double)*(const uint64_t *)p;
    return 0;
  }
  int64_t v = 0;
  int rc = elem_get_int(t, p, &v);
  if (rc == 0)
    *out = (double)v;
  return rc;
}

static int elem_set_double(const typecode_info *t, void *p, double x) {
  if (t->kind == KIND_STRUCT)
    return not_a_struct(t);
  if (t->code == 'f') {
    *(float *)p = (float)x;
    return 0;
  }
  if (t->code == 'd') {
    *(double *)p = x;
    return 0;
  }
  return mp__error(MP_ETYPE, "typecode '%c' holds integers: use set_int",
                   t->code);
}

/* The same for the Manager's Value and Array (manager.h). */
size_t mp__typecode_size(char code) {
  const typecode_info *t = typecode_find(code);
  return t ? t->size : 0;
}

int mp__typecode_is_float(char code) {
  const typecode_info *t = typecode_find(code);
  return t != NULL && t->kind < 0;
}

int mp__elem_get_int(char code, const void *p, int64_t *out) {
  return elem_get_int(typecode_find(code), p, out);
}

int mp__elem_set_int(char code, void *p, int64_t x) {
  return elem_set_int(typecode_find(code), p, x);
}

int mp__elem_get_double(char code, const void *p, double *out) {
  return elem_get_double(typecode_find(code), p, out);
}

int mp__elem_set_double(char code, void *p, double x) {
  return elem_set_double(typecode_find(code), p, x);
}

/* ---- the shared part ---------------------------------------------------- */

typedef struct va_state {
  mp__shobj hdr;
  uint32_t typecode;
  uint32_t itemsize; /* MP_TYPECODE_STRUCT: the struct's size */
  uint64_t length;
  uint64_t data_off; /* from the segment's start */
} va_state;

#define VA_LOCK_OFF 64u

/* mp_value and mp_array are one struct; base.type tells them apart. */
typedef struct va {
  mp__obj base;
  const typecode_info *t; /* a typecode's, or `own` for a struct */
  typecode_info own;
  size_t length;
  unsigned char *data;
  mp_lock *lock;
} va;

struct mp_value { va v; };
struct mp_array { va v; };

static int va_new(va **out, uint32_t type, char typecode, size_t itemsize,
                  size_t length, const void *initial, int own_lock,
                  mp_lock *lock) {
  const char *what = type == MP__T_VALUE ? "mp_value_new" : "mp_array_new";
  if (out == NULL)
    return mp__error(MP_EINVAL, "%s: NULL out", what);
  typecode_info st = {MP_TYPECODE_STRUCT, itemsize, KIND_STRUCT};
  const typecode_info *t =
      typecode == MP_TYPECODE_STRUCT ? &st : typecode_find(typecode);
  if (t == NULL)
    return mp__error(MP_EINVAL, "%s: unknown typecode '%c'", what,
                     typecode);
  if (t == &st && (itemsize == 0 || itemsize > STRUCT_MAX))
    return mp__error(MP_EINVAL, "%s: a struct of %zu bytes (1 to 2^30)",
                     what, itemsize);
  if (lock != NULL) {
    int rc = mp__obj_check(lock, MP__T_LOCK, what);
    if (rc != 0)
      return rc;
  }
  /* At most 1 TiB, and what size_t can count (32-bit systems). */
  if ((uint64_t)length > ((uint64_t)1 << 40) / t->size ||
      length > (SIZE_MAX - 4096) / t->size)
    return mp__error(MP_EINVAL, "%s: %zu elements is too many", what, length);
  size_t data_off = own_lock ? VA_LOCK_OFF + mp__lock_state_size()
                             : sizeof(va_state);
  data_off = (data_off + 7u) & ~(size_t)7u;
  if (t == &st)
    data_off = (data_off + STRUCT_ALIGN - 1) & ~(size_t)(STRUCT_ALIGN - 1);
  if (type == MP__T_ARRAY && length * t->size >= 64)
    data_off = (data_off + 63u) & ~(size_t)63u;
  size_t bytes = length * t->size;
  va *v = NULL;
  int rc = mp__obj_create(sizeof(struct mp_array), type,
                          data_off + (bytes ? bytes : 1), (void **)&v);
  if (rc != 0)
    return rc;
  va_state *state = mp__obj_state(&v->base);
  state->typecode = (unsigned char)typecode;
  state->itemsize = (uint32_t)t->size;
  state->length = length;
  state->data_off = data_off;
  v->own = *t;
  v->t = t == &st ? &v->own : t;
  v->length = length;
  v->data = (unsigned char *)state + data_off;
  if (initial != NULL && bytes > 0)
    memcpy(v->data, initial, bytes);
  if (own_lock)
    rc = mp__lock_embed(v->base.seg, VA_LOCK_OFF, 1, &v->lock);
  else if (lock != NULL)
    rc = mp__lock_dup(lock, &v->lock);
  if (rc != 0) {
    mp__obj_free(v, type);
    return rc;
  }
  *out = v;
  return 0;
}

/* Extra bytes: u8 has_lock | the lock's ref. */
static int va_open(uint32_t type, mp__seg *seg, size_t off,
                   const unsigned char *extra, size_t n, mpi_fd *handles,
                   size_t nh, void **out) {
  if (n < 1 || n != (extra[0] ? 1 + MP__REF_SIZE : 1u))
    return mp__error(MP_EPROTO, "malformed value reference");
  const va_state *st =
      (const va_state *)((const char *)mpi_shm_addr(seg->shm) + off);
  typecode_info own = {MP_TYPECODE_STRUCT, st->itemsize, KIND_STRUCT};
  const typecode_info *t = (char)st->typecode == MP_TYPECODE_STRUCT
                               ? (own.size > 0 && own.size <= STRUCT_MAX
                                      ? &own
                                      : NULL)
                               : typecode_find((char)st->typecode);
  size_t size = mpi_shm_size(seg->shm);
  if (t == NULL || st->data_off > size - off ||
      st->length > (size - off - st->data_off) / t->size)
    return mp__error(MP_EPROTO, "damaged value reference");
  mp_lock *lock = NULL;
  if (extra[0]) {
    int rc = mp__shared_open_ref(extra + 1, handles, nh, (void **)&lock);
    if (rc != 0)
      return rc;
    if (((mp__obj *)lock)->type != MP__T_LOCK) {
      mp__shared_release(lock);
      return mp__error(MP_EPROTO, "value reference without a lock");
    }
  }
  va *v = NULL;
  int rc = mp__obj_alloc(sizeof(struct mp_array), type, seg, off,
                         (void **)&v);
  if (rc != 0) {
    mp_lock_free(lock);
    return rc;
  }
  v->own = *t;
  v->t = t == &own ? &v->own : t;
  v->length = (size_t)st->length;
  v->data = (unsigned char *)mp__obj_state(&v->base) + st->data_off;
  v->lock = lock;
  *out = v;
  return 0;
}

MP__OPENER(mp__value_open) {
  return va_open(MP__T_VALUE, seg, off, extra, n, handles, nh, out);
}
MP__OPENER(mp__array_open) {
  return va_open(MP__T_ARRAY, seg, off, extra, n, handles, nh, out);
}

static int va_add(mp_args *a, va *v, uint32_t type, const char *what) {
  int rc = mp__obj_check(v, type, what);
  if (rc != 0)
    return rc;
  unsigned char extra[1 + MP__REF_SIZE] = {0};
  if (v->lock != NULL) {
    extra[0] = 1;
    if ((rc = mp__shared_ref(a, (const mp__obj *)v->lock, extra + 1)) != 0)
      return rc;
  }
  return mp__shared_add(a, &v->base, extra, v->lock ? sizeof extra : 1);
}

static void va_free(va *v, uint32_t type) {
  if (v == NULL || v->base.type != type)
    return;
  mp_lock_free(v->lock);
  mp__obj_free(v, type);
}

/* Run one access under the lock (when there is one).  A lock that came
 * back from a dead holder still lets the access happen, and says so. */
static int va_lock(va *v) {
  if (v->lock == NULL)
    return 0;
  int rc = mp_lock_acquire(v->lock, MP_FOREVER);
  return rc == MP_EOWNERDEAD ? 1 : rc;
}

static int va_unlock(va *v, int locked, int rc) {
  if (v->lock != NULL)
    mp_lock_release(v->lock);
  if (rc == 0 && locked == 1)
    return mp__error(MP_EOWNERDEAD, "done, but a process died holding the "
                                    "lock: the data may be half updated");
  return rc;
}

typedef enum { OP_GET_INT, OP_SET_INT, OP_GET_DOUBLE, OP_SET_DOUBLE } va_op;

static int va_access(va *v, uint32_t type, size_t i, va_op op, void *io,
                     const char *what) {
  int rc = mp__obj_check(v, type, what);
  if (rc != 0)
    return rc;
  if (io == NULL)
    return mp__error(MP_EINVAL, "%s: NULL argument", what);
  if (i >= v->length)
    return mp__error(MP_ERANGE, "%s: index %zu out of range (length %zu)",
                     what, i, v->length);
  int locked = va_lock(v);
  if (locked < 0)
    return locked;
  void *p = v->data + i * v->t->size;
  switch (op) {
  case OP_GET_INT: rc = elem_get_int(v->t, p, io); break;
  case OP_SET_INT: rc = elem_set_int(v->t, p, *(int64_t *)io); break;
  case OP_GET_DOUBLE: rc = elem_get_double(v->t, p, io); break;
  case OP_SET_DOUBLE: rc = elem_set_double(v->t, p, *(double *)io); break;
  }
  return va_unlock(v, locked, rc);
}

/* ---- Value -------------------------------------------------------------- */

int mp_value_new(mp_value **out, char typecode, const void *initial) {
  return va_new((va **)out, MP__T_VALUE, typecode, 0, 1, initial, 1, NULL);
}
int mp_raw_value_new(mp_value **out, char typecode, const void *initial) {
  return va_new((va **)out, MP__T_VALUE, typecode, 0, 1, initial, 0, NULL);
}
int mp_value_new_with_lock(mp_value **out, char typecode, const void *initial,
                           mp_lock *lock) {
  if (lock == NULL)
    return mp__error(MP_EINVAL, "mp_value_new_with_lock: NULL lock");
  return va_new((va **)out, MP__T_VALUE, typecode, 0, 1, initial, 0, lock);
}

int mp_value_new_struct(mp_value **out, size_t size, const void *initial) {
  return va_new((va **)out, MP__T_VALUE, MP_TYPECODE_STRUCT, size, 1,
                initial, 1, NULL);
}

size_t mp_value_size(const mp_value *v) {
  return mp__obj_check(v, MP__T_VALUE, "mp_value_size") == 0 ? v->v.t->size
                                                             : 0;
}

int mp_value_get_int(mp_value *v, int64_t *out) {
  return va_access((va *)v, MP__T_VALUE, 0, OP_GET_INT, out,
                   "mp_value_get_int");
}
int mp_value_set_int(mp_value *v, int64_t x) {
  return va_access((va *)v, MP__T_VALUE, 0, OP_SET_INT, &x,
                   "mp_value_set_int");
}
int mp_value_get_double(mp_value *v, double *out) {
  return va_access((va *)v, MP__T_VALUE, 0, OP_GET_DOUBLE, out,
                   "mp_value_get_double");
}
int mp_value_set_double(mp_value *v, double x) {
  return va_access((va *)v, MP__T_VALUE, 0, OP_SET_DOUBLE, &x,
                   "mp_value_set_double");
}

void *mp_value_ptr(mp_value *v) {
  return mp__obj_check(v, MP__T_VALUE, "mp_value_ptr") == 0 ? v->v.data
                                                            : NULL;
}
mp_lock *mp_value_get_lock(mp_value *v) {
  return mp__obj_check(v, MP__T_VALUE, "mp_value_get_lock") == 0 ? v->v.lock
                                                                 : NULL;
}
char mp_value_typecode(const mp_value *v) {
  return mp__obj_check(v, MP__T_VALUE, "mp_value_typecode") == 0
             ? v->v.t->code
             : '\0';
}
void mp_value_free(mp_value *v) { va_free((va *)v, MP__T_VALUE); }

int mp_args_add_value(mp_args *a, mp_value *v) {
  return va_add(a, (va *)v, MP__T_VALUE, "mp_args_add_value");
}
mp_value *mp_args_value(const mp_args *a, size_t i) {
  return mp__args_shared(a, i, MP__T_VALUE);
}

/* ---- Array -------------------------------------------------------------- */

int mp_array_new(mp_array **out, char typecode, size_t length,
                 const void *initial) {
  return va_new((va **)out, MP__T_ARRAY, typecode, 0, length, initial,
               1, NULL);
}
int mp_raw_array_new(mp_array **out, char typecode, size_t length,
                     const void *initial) {
  return va_new((va **)out, MP__T_ARRAY, typecode, 0, length, initial,
               0, NULL);
}
int mp_array_new_with_lock(mp_array **out, char typecode, size_t length,
                           const void *initial, mp_lock *lock) {
  if (lock == NULL)
    return mp__error(MP_EINVAL, "mp_array_new_with_lock: NULL lock");
  return va_new((va **)out, MP__T_ARRAY, typecode, 0, length, initial,
               0, lock);
}

int mp_array_new_struct(mp_array **out, size_t itemsize, size_t length,
                        const void *initial) {
  return va_new((va **)out, MP__T_ARRAY, MP_TYPECODE_STRUCT, itemsize,
                length, initial, 1, NULL);
}

size_t mp_array_len(const mp_array *a) {
  return mp__obj_check(a, MP__T_ARRAY, "mp_array_len") == 0 ? a->v.length
                                                            : 0;
}
char mp_array_typecode(const mp_array *a) {
  return mp__obj_check(a, MP__T_ARRAY, "mp_array_typecode") == 0
             ? a->v.t->code
             : '\0';
}
size_t mp_array_itemsize(const mp_array *a) {
  return mp__obj_check(a, MP__T_ARRAY, "mp_array_itemsize") == 0
             ? a->v.t->size
             : 0;
}

int mp_array_get_int(mp_array *a, size_t i, int64_t *out) {
  return va_access((va *)a, MP__T_ARRAY, i, OP_GET_INT, out,
                   "mp_array_get_int");
}
int mp_array_set_int(mp_array *a, size_t i, int64_t x) {
  return va_access((va *)a, MP__T_ARRAY, i, OP_SET_INT, &x,
                   "mp_array_set_int");
}
int mp_array_get_double(mp_array *a, size_t i, double *out) {
  return va_access((va *)a, MP__T_ARRAY, i, OP_GET_DOUBLE, out,
                   "mp_array_get_double");
}
int mp_array_set_double(mp_array *a, size_t i, double x) {
  return va_access((va *)a, MP__T_ARRAY, i, OP_SET_DOUBLE, &x,
                   "mp_array_set_double");
}

static int array_copy(mp_array *a, size_t start, size_t count, void *buf,
                      int out, const char *what) {
  int rc = mp__obj_check(a, MP__T_ARRAY, what);
  if (rc != 0)
    return rc;
  va *v = &a->v;
  if (buf == NULL && count > 0)
    return mp__error(MP_EINVAL, "%s: NULL buffer", what);
  if (start > v->length || count > v->length - start)
    return mp__error(MP_ERANGE, "%s: slice [%zu, %zu+%zu) outside length %zu",
                     what, start, start, count, v->length);
  int locked = va_lock(v);
  if (locked < 0)
    return locked;
  size_t sz = v->t->size;
  if (count > 0) {
    if (out)
      memcpy(buf, v->data + start * sz, count * sz);
    else
      memcpy(v->data + start * sz, buf, count * sz);
  }
  return va_unlock(v, locked, 0);
}

int mp_array_read(mp_array *a, size_t start, size_t count, void *out) {
  return array_copy(a, start, count, out, 1, "mp_array_read");
}
int mp_array_write(mp_array *a, size_t start, size_t count, const void *in) {
  return array_copy(a, start, count, (void *)in, 0, "mp_array_write");
}

void *mp_array_ptr(mp_array *a) {
  return mp__obj_check(a, MP__T_ARRAY, "mp_array_ptr") == 0 ? a->v.data
                                                            : NULL;
}
mp_lock *mp_array_get_lock(mp_array *a) {
  return mp__obj_check(a, MP__T_ARRAY, "mp_array_get_lock") == 0 ? a->v.lock
                                                                 : NULL;
}
void mp_array_free(mp_array *a) { va_free((va *)a, MP__T_ARRAY); }

int mp_args_add_array(mp_args *a, mp_array *arr) {
  return va_add(a, (va *)arr, MP__T_ARRAY, "mp_args_add_array");
}
mp_array *mp_args_array(const mp_args *a, size_t i) {
  return mp__args_shared(a, i, MP__T_ARRAY);
}

/* ---- named shared memory ------------------------------------------------ */

struct mp_shm {
  mp__obj base; /* type MP__T_SHM, off 0: the whole segment is the user's */
  char *name;
};

static int shm_wrap(mpi_shm *s, const char *name, mp_shm **out) {
  mp__seg *seg = malloc(sizeof *seg);
  char *copy = mp__strdup(name);
  mp_shm *m = NULL;
  if (seg == NULL || copy == NULL ||
      mp__obj_alloc(sizeof *m, MP__T_SHM, seg, 0, (void **)&m) != 0) {
    free(seg);
    free(copy);
    mpi_shm_free(s);
    return mp__error(MP_ENOMEM, "out of memory");
  }
  seg->shm = s;
  seg->refs = 1;
  mp__seg_register(seg);
  m->name = copy;
  *out = m;
  return 0;
}

int mp_shm_new(mp_shm **out, const char *name, size_t size) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_shm_new: NULL out");
  if (size == 0)
    return mp__error(MP_EINVAL, "mp_shm_new: size must be positive");
  char gen[48];
  int rc;
  mpi_shm *s = NULL;
  if (name != NULL) {
    rc = mpi_shm_create(name, size, &s);
  } else {
    /* Random and tagged with our pid, like Python's "psm_" names. */
    do {
      unsigned char r[6];
      if ((rc = mpi_random(r, sizeof r)) != 0)
        return rc;
      snprintf(gen, sizeof gen, "mp-%lld-%02x%02x%02x%02x%02x%02x",
               (long long)mpi_getpid(), r[0], r[1], r[2], r[3], r[4], r[5]);
      rc = mpi_shm_create(gen, size, &s);
    } while (rc == MP_EEXIST);
    name = gen;
  }
  return rc != 0 ? rc : shm_wrap(s, name, out);
}

int mp_shm_open(mp_shm **out, const char *name) {
  if (out == NULL || name == NULL)
    return mp__error(MP_EINVAL, "mp_shm_open: NULL argument");
  mpi_shm *s = NULL;
  int rc = mpi_shm_attach(name, &s);
  return rc != 0 ? rc : shm_wrap(s, name, out);
}

MP__OPENER(mp__named_open) {
  (void)handles;
  (void)nh;
  if (off != 0 || n == 0 || n > 1024)
    return mp__error(MP_EPROTO, "malformed shared memory reference");
  char *name = malloc(n + 1);
  mp_shm *m = NULL;
  if (name == NULL ||
      mp__obj_alloc(sizeof *m, MP__T_SHM, seg, 0, (void **)&m) != 0) {
    free(name);
    return mp__error(MP_ENOMEM, "out of memory");
  }
  memcpy(name, extra, n);
  name[n] = '\0';
  m->name = name;
  *out = m;
  return 0;
}

const char *mp_shm_name(const mp_shm *s) {
  return mp__obj_check(s, MP__T_SHM, "mp_shm_name") == 0 ? s->name : NULL;
}
size_t mp_shm_size(const mp_shm *s) {
  return mp__obj_check(s, MP__T_SHM, "mp_shm_size") == 0
             ? mpi_shm_size(s->base.seg->shm)
             : 0;
}
void *mp_shm_buf(mp_shm *s) {
  return mp__obj_check(s, MP__T_SHM, "mp_shm_buf") == 0
             ? mpi_shm_addr(s->base.seg->shm)
             : NULL;
}

int mp_shm_unlink(mp_shm *s) {
  int rc = mp__obj_check(s, MP__T_SHM, "mp_shm_unlink");
  return rc != 0 ? rc : mpi_shm_unlink(s->name);
}

void mp_shm_free(mp_shm *s) {
  if (s == NULL || s->base.type != MP__T_SHM)
    return;
  free(s->name);
  mp__obj_free(s, MP__T_SHM);
}

int mp_args_add_shm(mp_args *a, mp_shm *s) {
  int rc = mp__obj_check(s, MP__T_SHM, "mp_args_add_shm");
  return rc != 0 ? rc
                 : mp__shared_add(a, &s->base, s->name, strlen(s->name));
}
mp_shm *mp_args_shm(const mp_args *a, size_t i) {
  return mp__args_shared(a, i, MP__T_SHM);
}
