/*
 * pool_array.c - array maps and reductions on a pool (mp_pool_map_array,
 * mp_pool_reduce, mp_pool_reduce_fn).
 *
 * A call is one job of pool.c whose chunks are ranges of the array: the
 * task message of a chunk carries a descriptor (below), the worker runs
 * the kernel once over its range and answers with nothing (a map) or the
 * chunk's accumulator (a reduction).  The arrays never travel in
 * messages: a thread pool's workers use them where they are; a process
 * pool's workers map the shared segments that hold them.  Arrays that
 * are not in shared memory are copied into a scratch segment of the pool
 * (kept for the next call) and the output copied back per chunk.
 *
 * How a worker gets the segments: the call offers their handles under
 * one ticket that any number of claims may use (handoff.c) until the job
 * ends; a worker that does not have a segment yet claims it, maps it and
 * keeps it under the segment's uid (unique in the pool's process) while
 * it has work, so that the next call over the same arrays costs nothing.
 *
 * Descriptor (host byte order: pools do not cross machines):
 *   desc_hdr, the ticket, the initial accumulator (acc_size bytes), the
 *   context tuple's bytes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

#define ACC_MAX (64u * 1024u)
#define CACHE_N 8

enum { D_REDUCE = 1, D_LOCAL = 2, D_COUNT = 4 };

typedef struct desc_hdr {
  char magic[4]; /* "MPY1" */
  uint32_t flags;
  uint64_t first, n;                  /* D_COUNT: the whole array */
  uint64_t in_uid, in_off, in_size;   /* D_LOCAL: in_off is the address */
  uint64_t out_uid, out_off, out_size;
  uint32_t acc_size, ticket_n;
  uint64_t ctx_n;
  uint64_t ctl_uid, ctl_off;          /* D_COUNT: the counter's slot */
  uint64_t ctl_shm;                   /* D_COUNT|D_LOCAL: its mpi_shm */
  uint64_t nchunks, chunksize, least, w2; /* D_COUNT: the chunks */
} desc_hdr;

/* A counter's slot in shared memory (MP__CTL_SLOT bytes). */
typedef struct ctl_slot {
  volatile uint64_t next;    /* the next chunk to take */
  volatile uint64_t done;    /* chunks run, or skipped after a failure */
  volatile uint64_t fail_at; /* the first failed chunk (UINT64_MAX: none) */
  mpi_word all_done;         /* 1 once done == the chunks: the caller
                                sleeps on it */
} ctl_slot;

/* The length of the chunk that starts with `left` elements left:
 * chunksize, or guided (see next_chunk in pool.c): a share 1 / w2 of
 * what is left, not below `least`.  Both sides compute the chunks so. */
static uint64_t chunk_len(uint64_t left, uint64_t chunksize, uint64_t least,
                          uint64_t w2) {
  uint64_t n = chunksize;
  if (n == 0) {
    n = (left + w2 - 1) / w2;
    if (n < least)
      n = least;
  }
  if (n == 0)
    n = 1;
  return left < n ? left : n;
}

struct mp__arrjob {
  volatile uint32_t refs;
  mp_pool *pool;
  int local, reduce;
  size_t in_size, out_size, count;
  unsigned char *out;        /* the caller's output (copy_out) */
  uint64_t in_uid, in_off, out_uid, out_off;
  mp__seg *in_seg, *out_seg; /* references */
  mp__seg *scratch;          /* the pool's, while this call has it */
  int copy_out;
  unsigned char *ticket;
  size_t ticket_n;
  uint64_t ticket_id;
  unsigned char *ctx;        /* the context tuple's bytes */
  size_t ctx_n;
  size_t acc_size;
  unsigned char *init;       /* acc_size bytes */
  unsigned char *accs;       /* a reduction: each chunk's */
  size_t nchunks;
  mp__seg *ctl;              /* by a counter: the pool's slots (a ref) */
  size_t ctl_off;
  ctl_slot *slot;
  uint64_t counted, chunksize, least, w2;
};

/* ---- the caller's side ------------------------------------------------- */

void mp__array_unref(mp__arrjob *a) {
  if (a == NULL || mp__add32(&a->refs, (uint32_t)-1) != 0)
    return;
  mp__handoff_withdraw(a->ticket_id);
  if (a->ctl != NULL) {
    mp__pool_ctl_give(a->pool, a->ctl_off);
    mp__seg_unref(a->ctl);
  }
  mp__seg_unref(a->in_seg);
  mp__seg_unref(a->out_seg);
  if (a->scratch != NULL)
    mp__pool_scratch_give(a->pool, a->scratch);
  free(a->ticket);
  free(a->ctx);
  free(a->init);
  free(a->accs);
  free(a);
}

int mp__array_desc(mp__arrjob *a, size_t first, size_t n,
                   unsigned char **desc, size_t *n_out) {
  desc_hdr h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, "MPY1", 4);
  h.flags = (a->reduce ? D_REDUCE : 0) | (a->local ? D_LOCAL : 0);
  h.first = first;
  h.n = n;
  h.in_uid = a->in_uid;
  h.in_off = a->in_off;
  h.in_size = a->in_size;
  h.out_uid = a->out_uid;
  h.out_off = a->out_off;
  h.out_size = a->out_size;
  h.acc_size = (uint32_t)a->acc_size;
  h.ticket_n = (uint32_t)a->ticket_n;
  h.ctx_n = a->ctx_n;
  if (a->counted > 0) {
    h.flags |= D_COUNT;
    h.ctl_uid = a->local ? 0 : a->ctl->uid;
    h.ctl_off = a->local ? (uint64_t)(uintptr_t)a->slot : a->ctl_off;
    h.ctl_shm = a->local ? (uint64_t)(uintptr_t)a->ctl->shm : 0;
    h.nchunks = a->counted;
    h.chunksize = a->chunksize;
    h.least = a->least;
    h.w2 = a->w2;
  }
  size_t len = sizeof h + a->ticket_n + a->acc_size + a->ctx_n;
  unsigned char *d = realloc(*desc, len);
  if (d == NULL)
    return mp__error(MP_ENOMEM, "out of memory");
  *desc = d;
  memcpy(d, &h, sizeof h);
  if (a->ticket_n)
    memcpy(d + sizeof h, a->ticket, a->ticket_n);
  if (a->acc_size)
    memcpy(d + sizeof h + a->ticket_n, a->init, a->acc_size);
  if (a->ctx_n)
    memcpy(d + sizeof h + a->ticket_n + a->acc_size, a->ctx, a->ctx_n);
  *n_out = len;
  if (a->reduce) { /* a slot for this chunk's accumulator */
    unsigned char *accs = realloc(a->accs, (a->nchunks + 1) * a->acc_size);
    if (accs == NULL)
      return mp__error(MP_ENOMEM, "out of memory");
    a->accs = accs;
    a->nchunks++;
  }
  return 0;
}

size_t mp__array_counted(mp__arrjob *a) { return (size_t)a->counted; }

void mp__array_sleep(mp__arrjob *a, double timeout) {
  mpi_word_wait(a->ctl->shm, &a->slot->all_done, 0, timeout);
}

int mp__array_all_done(mp__arrjob *a, uint64_t *fail_at) {
  if (fail_at != NULL)
    *fail_at = mp__load64(&a->slot->fail_at);
  return mp__load64(&a->slot->done) >= a->counted;
}

void mp__array_finish(mp__arrjob *a) {
  if (a->copy_out && a->count > 0)
    memcpy(a->out,
           (const unsigned char *)mpi_shm_addr(a->out_seg->shm) + a->out_off,
           a->count * a->out_size);
}

void mp__array_release(mp__arrjob *a) {
  if (a->scratch != NULL) {
    mp__pool_scratch_give(a->pool, a->scratch);
    a->scratch = NULL;
  }
}

int mp__array_answer(mp__arrjob *a, size_t chunk, size_t first, size_t n,
                     const unsigned char *acc, size_t acc_n) {
  if (a->reduce) {
    if (acc_n != a->acc_size || chunk >= a->nchunks)
      return MP_EPROTO;
    memcpy(a->accs + chunk * a->acc_size, acc, acc_n);
  } else if (acc_n != 0) {
    return MP_EPROTO;
  }
  if (a->copy_out && n > 0) {
    const unsigned char *from =
        (const unsigned char *)mpi_shm_addr(a->out_seg->shm) + a->out_off;
    memcpy(a->out + first * a->out_size, from + first * a->out_size,
           n * a->out_size);
  }
  return 0;
}

static int overlap(const void *a, size_t an, const void *b, size_t bn) {
  const char *x = a, *y = b;
  return an > 0 && bn > 0 && x < y + bn && y < x + an;
}

#define ALIGN64(x) (((x) + 63u) & ~(size_t)63u)

/* The job for a call: checks, where the workers find the arrays, the
 * copy in.  acc_size 0: a map. */
static int prepare(mp_pool *p, const void *in, size_t in_size, void *out,
                   size_t out_size, size_t count, const mp_args *ctx,
                   size_t acc_size, const void *init, size_t chunksize,
                   mp__arrjob **job, const char *what) {
  *job = NULL;
  int rc = mp__pool_check(p, what);
  if (rc != 0)
    return rc;
  if ((in == NULL) != (in_size == 0) || (out == NULL) != (out_size == 0))
    return mp__error(MP_EINVAL, "%s: an array and its element size must "
                                "be given together (NULL with 0)", what);
  if ((in_size && count > SIZE_MAX / in_size) ||
      (out_size && count > SIZE_MAX / out_size))
    return mp__error(MP_EINVAL, "%s: %zu elements do not fit in memory",
                     what, count);
  size_t in_n = in_size * count, out_n = out_size * count;
  int in_place = in != NULL && in == out && in_size == out_size;
  if (!in_place && overlap(in, in_n, out, out_n))
    return mp__error(MP_EINVAL, "%s: the input and the output overlap "
                                "(in place: the same pointer and size)",
                     what);
  if (acc_size > ACC_MAX)
    return mp__error(MP_EINVAL, "%s: an accumulator of %zu bytes (at most "
                                "%u)", what, acc_size, ACC_MAX);
  if (ctx != NULL && mp__args_has_objects(ctx))
    return mp__error(MP_ETYPE, "%s: objects cannot travel in a kernel's "
                               "context; give them to the initializer",
                     what);
  mp__arrjob *a = calloc(1, sizeof *a);
  if (a == NULL)
    return mp__error(MP_ENOMEM, "out of memory");
  a->refs = 1;
  a->pool = p;
  a->local = mp__pool_local(p);
  a->reduce = acc_size > 0;
  a->in_size = in_size;
  a->out_size = out_size;
  a->count = count;
  a->acc_size = acc_size;
  if (ctx != NULL) {
    size_t n = 0;
    const void *b = mp__args_data(ctx, &n);
    if ((a->ctx = malloc(n ? n : 1)) == NULL)
      goto nomem;
    memcpy(a->ctx, b, n);
    a->ctx_n = n;
  }
  if (acc_size > 0) {
    if ((a->init = malloc(acc_size)) == NULL)
      goto nomem;
    memcpy(a->init, init, acc_size);
  }
  if (acc_size == 0 && count > 0 && mp_pool_workers(p) > 0 &&
      (a->ctl = mp__pool_ctl_take(p, &a->ctl_off)) != NULL) {
    /* A map: the workers take its chunks by a counter. */
    uint64_t w = (uint64_t)mp_pool_workers(p);
    a->chunksize = chunksize;
    a->least = count / (32 * w);
    a->w2 = 2 * w;
    for (uint64_t left = count; left > 0; a->counted++)
      left -= chunk_len(left, a->chunksize, a->least, a->w2);
    a->slot = (ctl_slot *)((unsigned char *)mpi_shm_addr(a->ctl->shm) +
                           a->ctl_off);
    mp__store64(&a->slot->next, 0);
    mp__store64(&a->slot->done, 0);
    mp__store64(&a->slot->fail_at, UINT64_MAX);
    mp__store32(&a->slot->all_done.value, 0);
  }
  if (a->local) {
    a->in_off = (uint64_t)(uintptr_t)in;
    a->out_off = (uint64_t)(uintptr_t)out;
    *job = a;
    return 0;
  }
  /* A process pool: shared segments, the caller's or our copies. */
  size_t off = 0;
  if (in_n > 0)
    a->in_seg = mp__seg_find(in, in_n, &off);
  a->in_off = off;
  off = 0;
  if (in_place)
    a->out_seg = a->in_seg ? (mp__seg_ref(a->in_seg), a->in_seg) : NULL;
  else if (out_n > 0)
    a->out_seg = mp__seg_find(out, out_n, &off);
  a->out_off = in_place ? a->in_off : off;
  size_t need_in = in_n > 0 && a->in_seg == NULL ? ALIGN64(in_n) : 0;
  size_t need_out = out_n > 0 && a->out_seg == NULL && !in_place
                        ? out_n : 0;
  if (need_in + need_out > 0) {
    a->scratch = mp__pool_scratch_take(p, need_in + need_out);
    if (a->scratch == NULL &&
        (rc = mp__seg_new(need_in + need_out, &a->scratch)) != 0) {
      mp__array_unref(a);
      return rc;
    }
    unsigned char *base = mpi_shm_addr(a->scratch->shm);
    if (need_in) {
      memcpy(base, in, in_n); /* one copy in */
      mp__seg_ref(a->scratch);
      a->in_seg = a->scratch;
      a->in_off = 0;
      if (in_place) {
        mp__seg_ref(a->scratch);
        a->out_seg = a->scratch;
        a->out_off = 0;
        a->copy_out = 1;
      }
    }
    if (need_out) {
      mp__seg_ref(a->scratch);
      a->out_seg = a->scratch;
      a->out_off = need_in;
      a->copy_out = 1;
    }
  }
  a->out = out;
  a->in_uid = a->in_seg ? a->in_seg->uid : 0;
  a->out_uid = a->out_seg ? a->out_seg->uid : 0;
  mpi_fd h[3];
  size_t nh = 0;
  if (a->in_seg)
    h[nh++] = mpi_shm_handle(a->in_seg->shm);
  if (a->out_seg && a->out_seg != a->in_seg)
    h[nh++] = mpi_shm_handle(a->out_seg->shm);
  if (a->counted > 0)
    h[nh++] = mpi_shm_handle(a->ctl->shm);
  if (nh > 0 && (rc = mp__handoff_offer(h, nh, &a->ticket, &a->ticket_n,
                                        &a->ticket_id)) != 0) {
    mp__array_unref(a);
    return rc;
  }
  *job = a;
  return 0;
nomem:
  mp__array_unref(a);
  return mp__error(MP_ENOMEM, "out of memory");
}

/* keep: if not NULL, the call's arrays with a reference of the caller's
 * (a sync map watches its counter). */
static int map_array(mp_pool *p, mp_kernel_fn kernel, const void *in,
                     size_t in_size, void *out, size_t out_size, size_t count,
                     const mp_args *ctx, size_t chunksize, mp_result_cb cb,
                     mp_error_cb ecb, void *arg, mp_async **handle,
                     mp__arrjob **keep, const char *what) {
  if (handle != NULL)
    *handle = NULL;
  if (kernel == NULL)
    return mp__error(MP_EINVAL, "%s: NULL kernel", what);
  mp__arrjob *a;
  int rc = prepare(p, in, in_size, out, out_size, count, ctx, 0, NULL,
                   chunksize, &a, what);
  if (rc != 0)
    return rc;
  if (keep != NULL) {
    mp__add32(&a->refs, 1);
    *keep = a;
  }
  rc = mp__pool_run_array(p, (void (*)(void))kernel, a, count, chunksize, cb,
                          ecb, arg, handle, what);
  if (rc != 0 && keep != NULL) {
    mp__array_unref(a);
    *keep = NULL;
  }
  return rc;
}

int mp_pool_map_array_async(mp_pool *p, mp_kernel_fn kernel, const void *in,
                            size_t in_size, void *out, size_t out_size,
                            size_t count, const mp_args *ctx,
                            size_t chunksize, mp_result_cb cb,
                            mp_error_cb ecb, void *arg, mp_async **handle) {
  return map_array(p, kernel, in, in_size, out, out_size, count, ctx,
                   chunksize, cb, ecb, arg, handle, NULL,
                   "mp_pool_map_array_async");
}

int mp_pool_map_array(mp_pool *p, mp_kernel_fn kernel, const void *in,
                      size_t in_size, void *out, size_t out_size,
                      size_t count, const mp_args *ctx, size_t chunksize) {
  mp_async *h = NULL;
  mp__arrjob *a = NULL;
  int rc = map_array(p, kernel, in, in_size, out, out_size, count, ctx,
                     chunksize, NULL, NULL, NULL, &h, &a,
                     "mp_pool_map_array");
  if (rc != 0)
    return rc;
  if (a->counted > 0)
    mp__pool_array_wait(p, h, a);
  rc = mp_async_get(h, MP_FOREVER, NULL);
  mp_async_free(h);
  mp__array_unref(a);
  return rc;
}

int mp_pool_reduce_fn(mp_pool *p, mp_fold_fn fold, mp_combine_fn combine,
                      const void *in, size_t in_size, size_t count, void *acc,
                      size_t acc_size, const mp_args *ctx, size_t chunksize) {
  const char *what = "mp_pool_reduce_fn";
  if (fold == NULL || combine == NULL || acc == NULL || acc_size == 0)
    return mp__error(MP_EINVAL, "%s: NULL fold, combine or accumulator",
                     what);
  mp__arrjob *a;
  int rc = prepare(p, in, in_size, NULL, 0, count, ctx, acc_size, acc,
                   chunksize, &a, what);
  if (rc != 0)
    return rc;
  mp__add32(&a->refs, 1); /* ours, for the accumulators */
  mp_async *h = NULL;
  rc = mp__pool_run_array(p, (void (*)(void))fold, a, count, chunksize, NULL,
                          NULL, NULL, &h, what);
  if (rc == 0)
    rc = mp_async_get(h, MP_FOREVER, NULL);
  mp_async_free(h);
  if (rc == 0) {
    for (size_t k = 0; k < a->nchunks; k++)
      combine(acc, a->accs + k * acc_size, ctx);
  }
  mp__array_unref(a);
  return rc;
}

/* ---- built-in reductions ----------------------------------------------- */

/* The accumulator of mp_pool_reduce: the sum, or the extreme so far. */
typedef struct racc {
  int32_t any, nan;
  union {
    int64_t i;
    uint64_t u;
    double d;
  } v;
} racc;

enum { C_SIGNED = 1, C_UNSIGNED = 2, C_FLOAT = 3 };

static int type_class(char tc, size_t *size) {
  switch (tc) {
  case 'b': *size = sizeof(signed char); return C_SIGNED;
  case 'B': *size = sizeof(unsigned char); return C_UNSIGNED;
  case 'h': *size = sizeof(short); return C_SIGNED;
  case 'H': *size = sizeof(unsigned short); return C_UNSIGNED;
  case 'i': *size = sizeof(int); return C_SIGNED;
  case 'I': *size = sizeof(unsigned int); return C_UNSIGNED;
  case 'l': *size = sizeof(long); return C_SIGNED;
  case 'L': *size = sizeof(unsigned long); return C_UNSIGNED;
  case 'q': *size = sizeof(long long); return C_SIGNED;
  case 'Q': *size = sizeof(unsigned long long); return C_UNSIGNED;
  case 'f': *size = sizeof(float); return C_FLOAT;
  case 'd': *size = sizeof(double); return C_FLOAT;
  default: return 0;
  }
}

/* One loop per type and operation, so that each compiles to the
 * machine's vector code. */
#define SUM_LOOP(T, W, field, CAST)                                           \
  do {                                                                        \
    const T *x = in;                                                          \
    W s = 0;                                                                  \
    for (size_t k = 0; k < n; k++)                                            \
      s += (W)(CAST)x[k];                                                     \
    r->v.field += s;                                                          \
  } while (0)

#define EXT_LOOP(T, W, field, CMP)                                            \
  do {                                                                        \
    const T *x = in;                                                          \
    T m = x[0];                                                               \
    for (size_t k = 1; k < n; k++)                                            \
      m = x[k] CMP m ? x[k] : m;                                              \
    if (!r->any || (W)m CMP r->v.field)                                       \
      r->v.field = (W)m;                                                      \
  } while (0)

#define FLT_LOOP(T, CMP)                                                      \
  do {                                                                        \
    const T *x = in;                                                          \
    T m = x[0];                                                               \
    int nan = 0;                                                              \
    for (size_t k = 0; k < n; k++) {                                          \
      nan |= x[k] != x[k];                                                    \
      m = x[k] CMP m ? x[k] : m;                                              \
    }                                                                         \
    r->nan |= nan;                                                            \
    if (!r->any || (double)m CMP r->v.d)                                      \
      r->v.d = (double)m;                                                     \
  } while (0)

/* Sums of integers add as uint64_t: a signed one wraps round instead of
 * overflowing (undefined behaviour), and reads back as int64_t. */
#define BY_OP(T, W, field)                                                    \
  do {                                                                        \
    if (op == MP_REDUCE_SUM)                                                  \
      SUM_LOOP(T, uint64_t, u, int64_t);                                      \
    else if (op == MP_REDUCE_MIN)                                             \
      EXT_LOOP(T, W, field, <);                                               \
    else                                                                      \
      EXT_LOOP(T, W, field, >);                                               \
  } while (0)

#define BY_OP_FLT(T)                                                          \
  do {                                                                        \
    if (op == MP_REDUCE_SUM)                                                  \
      SUM_LOOP(T, double, d, double);                                         \
    else if (op == MP_REDUCE_MIN)                                             \
      FLT_LOOP(T, <);                                                         \
    else                                                                      \
      FLT_LOOP(T, >);                                                         \
  } while (0)

static int builtin_fold(const void *in, size_t first, size_t n, void *acc,
                        const mp_args *ctx) {
  (void)first;
  racc *r = acc;
  char tc = (char)mp_args_int(ctx, 0);
  int op = (int)mp_args_int(ctx, 1);
  if (n == 0)
    return 0;
  switch (tc) {
  case 'b': BY_OP(signed char, int64_t, i); break;
  case 'B': BY_OP(unsigned char, uint64_t, u); break;
  case 'h': BY_OP(short, int64_t, i); break;
  case 'H': BY_OP(unsigned short, uint64_t, u); break;
  case 'i': BY_OP(int, int64_t, i); break;
  case 'I': BY_OP(unsigned int, uint64_t, u); break;
  case 'l': BY_OP(long, int64_t, i); break;
  case 'L': BY_OP(unsigned long, uint64_t, u); break;
  case 'q': BY_OP(long long, int64_t, i); break;
  case 'Q': BY_OP(unsigned long long, uint64_t, u); break;
  case 'f': BY_OP_FLT(float); break;
  case 'd': BY_OP_FLT(double); break;
  default:
    return mp_set_error(MP_EPROTO, "unknown typecode in a reduction");
  }
  r->any = 1;
  return 0;
}

static void builtin_combine(void *acc, const void *other,
                            const mp_args *ctx) {
  racc *r = acc;
  racc o;
  memcpy(&o, other, sizeof o);
  size_t size;
  int cls = type_class((char)mp_args_int(ctx, 0), &size);
  int op = (int)mp_args_int(ctx, 1);
  if (!o.any)
    return;
  r->nan |= o.nan;
  if (op == MP_REDUCE_SUM) {
    if (cls == C_FLOAT)
      r->v.d += o.v.d;
    else
      r->v.u += o.v.u; /* signed sums wrap round as unsigned ones */
  } else if (!r->any) {
    r->v = o.v;
  } else {
    int less = cls == C_SIGNED     ? o.v.i < r->v.i
               : cls == C_UNSIGNED ? o.v.u < r->v.u
                                   : o.v.d < r->v.d;
    int more = cls == C_SIGNED     ? o.v.i > r->v.i
               : cls == C_UNSIGNED ? o.v.u > r->v.u
                                   : o.v.d > r->v.d;
    if (op == MP_REDUCE_MIN ? less : more)
      r->v = o.v;
  }
  r->any = 1;
}

/* The extreme as an element of the array's type. */
static void store_elem(char tc, const racc *r, void *out) {
  switch (tc) {
  case 'b': *(signed char *)out = (signed char)r->v.i; break;
  case 'B': *(unsigned char *)out = (unsigned char)r->v.u; break;
  case 'h': *(short *)out = (short)r->v.i; break;
  case 'H': *(unsigned short *)out = (unsigned short)r->v.u; break;
  case 'i': *(int *)out = (int)r->v.i; break;
  case 'I': *(unsigned int *)out = (unsigned int)r->v.u; break;
  case 'l': *(long *)out = (long)r->v.i; break;
  case 'L': *(unsigned long *)out = (unsigned long)r->v.u; break;
  case 'q': *(long long *)out = (long long)r->v.i; break;
  case 'Q': *(unsigned long long *)out = (unsigned long long)r->v.u; break;
  case 'f': *(float *)out = (float)r->v.d; break;
  default: *(double *)out = r->v.d; break;
  }
}

int mp_pool_reduce(mp_pool *p, char typecode, int op, const void *in,
                   size_t count, void *result) {
  size_t size = 0;
  int cls = type_class(typecode, &size);
  if (cls == 0)
    return mp__error(MP_EINVAL, "mp_pool_reduce: typecode '%c' is not a "
                                "number type", typecode);
  if (op != MP_REDUCE_SUM && op != MP_REDUCE_MIN && op != MP_REDUCE_MAX)
    return mp__error(MP_EINVAL, "mp_pool_reduce: unknown operation %d", op);
  if (result == NULL || (in == NULL && count > 0))
    return mp__error(MP_EINVAL, "mp_pool_reduce: NULL array or result");
  if (count == 0 && op != MP_REDUCE_SUM)
    return mp__error(MP_EINVAL, "mp_pool_reduce: %s of no elements",
                     op == MP_REDUCE_MIN ? "minimum" : "maximum");
  mp_args *ctx = NULL;
  int rc = mp_args_new(&ctx);
  if (rc == 0 && (rc = mp_args_add_int(ctx, typecode)) == 0)
    rc = mp_args_add_int(ctx, op);
  racc r;
  memset(&r, 0, sizeof r);
  if (rc == 0)
    rc = mp_pool_reduce_fn(p, builtin_fold, builtin_combine,
                           count ? in : NULL, count ? size : 0, count, &r,
                           sizeof r, ctx, 0);
  mp_args_free(ctx);
  if (rc != 0)
    return rc;
  if (op == MP_REDUCE_SUM) {
    if (cls == C_FLOAT)
      memcpy(result, &r.v.d, sizeof r.v.d);
    else
      memcpy(result, &r.v.u, sizeof r.v.u);
  } else {
    if (r.nan)
      r.v.d = (double)NAN;
    store_elem(typecode, &r, result);
  }
  return 0;
}

/* ---- the worker's side ----------------------------------------------- */

struct mp__arrcache {
  size_t n;
  uint64_t tick;
  struct {
    uint64_t uid, used;
    mpi_shm *shm;
  } e[CACHE_N];
};

void mp__array_cache_drop(mp__arrcache **cache) {
  mp__arrcache *c = *cache;
  if (c == NULL)
    return;
  for (size_t i = 0; i < c->n; i++)
    mpi_shm_free(c->e[i].shm);
  free(c);
  *cache = NULL;
}

static mpi_shm *cache_get(mp__arrcache *c, uint64_t uid) {
  for (size_t i = 0; i < c->n; i++)
    if (c->e[i].uid == uid) {
      c->e[i].used = ++c->tick;
      return c->e[i].shm;
    }
  return NULL;
}

/* Keep s under uid, letting the least recently used go if full (never
 * `keep`, the other segment the chunk needs). */
static void cache_put(mp__arrcache *c, uint64_t uid, mpi_shm *s,
                      uint64_t keep) {
  size_t at = c->n;
  if (c->n == CACHE_N) {
    at = SIZE_MAX;
    for (size_t i = 0; i < c->n; i++)
      if (c->e[i].uid != keep && (at == SIZE_MAX || c->e[i].used < c->e[at].used))
        at = i;
    mpi_shm_free(c->e[at].shm);
  } else {
    c->n++;
  }
  c->e[at].uid = uid;
  c->e[at].shm = s;
  c->e[at].used = ++c->tick;
}

/* The segments named uids[0..k), claimed with the ticket when missing. */
static int fetch(mp__arrcache *c, const uint64_t *uids, size_t k,
                 const unsigned char *ticket, size_t tn, mpi_shm **out) {
  size_t missing = 0;
  for (size_t i = 0; i < k; i++)
    if ((out[i] = cache_get(c, uids[i])) == NULL)
      missing++;
  if (missing == 0)
    return 0;
  mpi_fd *h = NULL;
  size_t nh = 0;
  int rc = mp__handoff_claim(ticket, tn, &h, &nh);
  if (rc != 0)
    return rc;
  if (nh != k) {
    for (size_t i = 0; i < nh; i++)
      mpi_stream_close(h[i]);
    free(h);
    return mp__error(MP_EPROTO, "an array map's segments did not come");
  }
  for (size_t i = 0; i < k; i++) {
    if (out[i] != NULL || rc != 0) {
      mpi_stream_close(h[i]);
      continue;
    }
    if ((rc = mpi_shm_adopt(h[i], &out[i])) == 0) {
      mpi_shm_prefault(out[i]); /* once, not a fault per page per call */
      cache_put(c, uids[i], out[i], uids[1 - i < k ? 1 - i : 0]);
    }
  }
  free(h);
  return rc;
}

/* base + off + (first + n) * size fits in a segment of `len` bytes. */
static int fits(uint64_t off, uint64_t first, uint64_t n, uint64_t size,
                uint64_t len) {
  if (off > len)
    return 0;
  uint64_t room = len - off;
  if (size == 0)
    return 1;
  uint64_t cap = room / size;
  return first <= cap && n <= cap - first;
}

/* Take chunks by the counter until none is left: each one run (or,
 * after a failed one, skipped if it comes later) and counted done.  The
 * first failure this worker saw is its answer. */
static int run_counted(const desc_hdr *h, ctl_slot *slot, mpi_shm *ctl,
                       mp_kernel_fn kernel,
                       const unsigned char *in, unsigned char *out,
                       const mp_args *ctx, int *status,
                       uint32_t *fail_chunk) {
  uint64_t *starts = NULL, cs = h->chunksize, nchunks = h->nchunks;
  if (cs == 0) { /* guided: the same chunks as the caller's */
    if (nchunks > (1u << 20) || h->w2 == 0)
      return mp__error(MP_EPROTO, "malformed array task");
    if ((starts = malloc((size_t)(nchunks + 1) * sizeof *starts)) == NULL)
      return mp__error(MP_ENOMEM, "out of memory");
    uint64_t at = 0, k = 0;
    for (; k < nchunks && at < h->n; k++) {
      starts[k] = at;
      at += chunk_len(h->n - at, 0, h->least, h->w2);
    }
    starts[k] = at;
    if (k != nchunks || at != h->n) {
      free(starts);
      return mp__error(MP_EPROTO, "malformed array task");
    }
  } else if (h->n / cs + (h->n % cs != 0) != nchunks) {
    return mp__error(MP_EPROTO, "malformed array task");
  }
  char msg[600] = "";
  int first_st = 0;
  uint64_t first_k = UINT64_MAX;
  for (;;) {
    uint64_t k = mp__add64(&slot->next, 1) - 1;
    if (k >= nchunks)
      break;
    if (k <= mp__load64(&slot->fail_at)) {
      uint64_t f = starts ? starts[k] : k * cs;
      uint64_t n = starts ? starts[k + 1] - f
                          : (h->n - f < cs ? h->n - f : cs);
      mp__clear_error();
      int st = kernel(in ? in + (size_t)(f * h->in_size) : NULL,
                      out ? out + (size_t)(f * h->out_size) : NULL,
                      (size_t)f, (size_t)n, ctx);
      if (st != 0 && k < first_k) {
        first_k = k;
        first_st = st;
        const char *m = mp_last_error_message();
        if (m[0] != '\0')
          mp__strlcpy(msg, m, sizeof msg);
        else
          snprintf(msg, sizeof msg, "kernel returned status %d", st);
        uint64_t cur = mp__load64(&slot->fail_at);
        while (k < cur && !mp__cas64(&slot->fail_at, &cur, k)) {
        }
      }
    }
    if (mp__add64(&slot->done, 1) == nchunks) { /* the last: wake the caller */
      mp__store32(&slot->all_done.value, 1);
      mpi_word_wake(ctl, &slot->all_done, 1);
    }
  }
  free(starts);
  if (first_k != UINT64_MAX) {
    *status = first_st;
    *fail_chunk = first_k >= UINT32_MAX ? UINT32_MAX - 1 : (uint32_t)first_k;
    mp_set_error(first_st, "%s", msg);
  }
  return 0;
}

int mp__array_run(mp__arrcache **cache, int local, void (*fn)(void),
                  const unsigned char *desc, size_t len, unsigned char **acc,
                  size_t *acc_n, int *status, uint32_t *fail_chunk) {
  *acc = NULL;
  *acc_n = 0;
  *status = 0;
  *fail_chunk = 0;
  desc_hdr h;
  if (len < sizeof h)
    return mp__error(MP_EPROTO, "malformed array task");
  memcpy(&h, desc, sizeof h);
  size_t rest = len - sizeof h;
  if (memcmp(h.magic, "MPY1", 4) != 0 || h.acc_size > ACC_MAX ||
      h.ticket_n > rest || h.acc_size > rest - h.ticket_n ||
      h.ctx_n != rest - h.ticket_n - h.acc_size ||
      ((h.flags & D_REDUCE) != 0) != (h.acc_size > 0) ||
      ((h.flags & D_LOCAL) != 0) != (local != 0) ||
      ((h.flags & D_COUNT) && ((h.flags & D_REDUCE) || h.first != 0 ||
                               h.nchunks == 0)))
    return mp__error(MP_EPROTO, "malformed array task");
  ctl_slot *slot = NULL;
  mpi_shm *ctl = NULL;
  const unsigned char *ticket = desc + sizeof h;
  const unsigned char *init = ticket + h.ticket_n;
  const unsigned char *ctxb = init + h.acc_size;
  const unsigned char *in = NULL;
  unsigned char *out = NULL;
  if (local) {
    if (h.flags & D_COUNT) {
      slot = (ctl_slot *)(uintptr_t)h.ctl_off;
      ctl = (mpi_shm *)(uintptr_t)h.ctl_shm;
    }
    if (h.in_size)
      in = (const unsigned char *)(uintptr_t)h.in_off +
           (size_t)(h.first * h.in_size);
    if (h.out_size)
      out = (unsigned char *)(uintptr_t)h.out_off +
            (size_t)(h.first * h.out_size);
  } else {
    uint64_t uids[3];
    size_t k = 0;
    if (h.in_uid)
      uids[k++] = h.in_uid;
    if (h.out_uid && h.out_uid != h.in_uid)
      uids[k++] = h.out_uid;
    size_t kc = k; /* the counter's segment */
    if (h.flags & D_COUNT)
      uids[k++] = h.ctl_uid;
    if ((h.in_size != 0) != (h.in_uid != 0) ||
        (h.out_size != 0) != (h.out_uid != 0) ||
        ((h.flags & D_COUNT) &&
         (h.ctl_uid == 0 || h.ctl_uid == h.in_uid || h.ctl_uid == h.out_uid)))
      return mp__error(MP_EPROTO, "malformed array task");
    mpi_shm *segs[3] = {NULL, NULL, NULL};
    if (k > 0) {
      if (*cache == NULL && (*cache = calloc(1, sizeof **cache)) == NULL)
        return mp__error(MP_ENOMEM, "out of memory");
      int rc = fetch(*cache, uids, k, ticket, h.ticket_n, segs);
      if (rc != 0)
        return rc;
    }
    mpi_shm *si = h.in_uid ? segs[0] : NULL;
    mpi_shm *so = h.out_uid ? (h.out_uid == h.in_uid ? segs[0] : segs[kc - 1])
                            : NULL;
    if (h.flags & D_COUNT) {
      if (!fits(h.ctl_off, 0, 1, sizeof(ctl_slot), mpi_shm_size(segs[kc])) ||
          h.ctl_off % 8 != 0)
        return mp__error(MP_EPROTO, "malformed array task");
      slot = (ctl_slot *)((unsigned char *)mpi_shm_addr(segs[kc]) +
                          (size_t)h.ctl_off);
      ctl = segs[kc];
    }
    if ((si && !fits(h.in_off, h.first, h.n, h.in_size, mpi_shm_size(si))) ||
        (so && !fits(h.out_off, h.first, h.n, h.out_size, mpi_shm_size(so))))
      return mp__error(MP_EPROTO, "an array task past its segment's end");
    if (si)
      in = (const unsigned char *)mpi_shm_addr(si) +
           (size_t)(h.in_off + h.first * h.in_size);
    if (so)
      out = (unsigned char *)mpi_shm_addr(so) +
            (size_t)(h.out_off + h.first * h.out_size);
  }
  mp_args *ctx = NULL;
  int rc = h.ctx_n ? mp__args_from_bytes(&ctx, ctxb, (size_t)h.ctx_n)
                   : mp_args_new(&ctx);
  if (rc != 0)
    return rc == MP_ENOMEM ? rc
                           : mp__error(MP_EPROTO, "malformed array task");
  if (h.flags & D_COUNT) {
    rc = run_counted(&h, slot, ctl, (mp_kernel_fn)fn, in, out, ctx, status,
                     fail_chunk);
    mp_args_free(ctx);
    return rc;
  }
  if (h.flags & D_REDUCE) {
    if ((*acc = malloc(h.acc_size)) == NULL) {
      mp_args_free(ctx);
      return mp__error(MP_ENOMEM, "out of memory");
    }
    memcpy(*acc, init, h.acc_size);
    *acc_n = h.acc_size;
    *status = ((mp_fold_fn)fn)(in, (size_t)h.first, (size_t)h.n, *acc, ctx);
  } else {
    *status =
        ((mp_kernel_fn)fn)(in, out, (size_t)h.first, (size_t)h.n, ctx);
  }
  mp_args_free(ctx);
  return 0;
}
