/*
 * shared.c - segments, object headers, wait queues, the process lock and
 * passing objects to children (see shared.h).
 */
#include <stdlib.h>
#include <string.h>

#include "shared.h"

/* ---- 1. Segments -------------------------------------------------------- */

static mp__seg *all_segs; /* under mpi_lock */
static uint64_t seg_uids;

void mp__seg_register(mp__seg *s) {
  mpi_lock();
  s->uid = ++seg_uids;
  s->next = all_segs;
  all_segs = s;
  mpi_unlock();
}

static void seg_unregister(mp__seg *s) {
  mpi_lock();
  for (mp__seg **pp = &all_segs; *pp != NULL; pp = &(*pp)->next)
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  mpi_unlock();
}

mp__seg *mp__seg_find(const void *p, size_t len, size_t *off) {
  const char *b = p;
  mp__seg *found = NULL;
  if (b == NULL)
    return NULL;
  mpi_lock();
  for (mp__seg *s = all_segs; s != NULL; s = s->next) {
    const char *a = mpi_shm_addr(s->shm);
    size_t n = mpi_shm_size(s->shm);
    if (b < a || (size_t)(b - a) > n || len > n - (size_t)(b - a))
      continue;
    /* A reference, unless its last one is going (then it is not ours). */
    uint32_t r = mp__load32(&s->refs);
    while (r != 0 && !mp__cas32(&s->refs, &r, r + 1)) {
    }
    if (r != 0) {
      *off = (size_t)(b - a);
      found = s;
    }
    break;
  }
  mpi_unlock();
  return found;
}

int mp__seg_new(size_t size, mp__seg **out) {
  mp__seg *s = malloc(sizeof *s);
  if (s == NULL)
    return mp__error(MP_ENOMEM, "out of memory");
  int rc = mpi_shm_new(size, &s->shm);
  if (rc != 0) {
    free(s);
    return rc;
  }
  s->refs = 1;
  mp__seg_register(s);
  *out = s;
  return 0;
}

static int seg_adopt(mpi_fd h, mp__seg **out) {
  mp__seg *s = malloc(sizeof *s);
  if (s == NULL) {
    mpi_stream_close(h);
    return mp__error(MP_ENOMEM, "out of memory");
  }
  int rc = mpi_shm_adopt(h, &s->shm);
  if (rc != 0) {
    free(s);
    return rc;
  }
  s->refs = 1;
  mp__seg_register(s);
  *out = s;
  return 0;
}

void mp__seg_ref(mp__seg *s) { mp__add32(&s->refs, 1); }

void mp__seg_unref(mp__seg *s) {
  if (s != NULL && mp__add32(&s->refs, (uint32_t)-1) == 0) {
    seg_unregister(s);
    mpi_shm_free(s->shm);
    free(s);
  }
}

/* ---- 2. Objects --------------------------------------------------------- */

void mp__obj_init(mp__obj *o, uint32_t type, mp__seg *seg, size_t off,
                  size_t size) {
  o->type = type;
  o->seg = seg;
  o->off = off;
  mp__shobj *h = mp__obj_state(o);
  h->type = type;
  h->size = size;
  mp__store32(&h->magic, MP__OBJ_MAGIC);
}

static const char *type_name(uint32_t type) {
  static const char *const names[MP__T_COUNT] = {
      "object", "lock",  "semaphore", "event", "condition", "barrier",
      "queue",  "value", "array",     "shared memory"};
  return type < MP__T_COUNT ? names[type] : "object";
}

int mp__obj_alloc(size_t size, uint32_t type, mp__seg *seg, size_t off,
                  void **out) {
  mp__obj *o = calloc(1, size);
  if (o == NULL)
    return mp__error(MP_ENOMEM, "out of memory");
  o->type = type;
  o->seg = seg;
  o->off = off;
  *out = o;
  return 0;
}

int mp__obj_create(size_t size, uint32_t type, size_t state_size,
                   void **out) {
  mp__seg *seg = NULL;
  int rc = mp__seg_new(state_size, &seg);
  if (rc != 0)
    return rc;
  mp__obj *o = NULL;
  if ((rc = mp__obj_alloc(size, type, seg, 0, (void **)&o)) != 0) {
    mp__seg_unref(seg);
    return rc;
  }
  mp__obj_init(o, type, seg, 0, state_size);
  *out = o;
  return 0;
}

void mp__obj_free(void *obj, uint32_t type) {
  mp__obj *o = obj;
  if (o == NULL || o->type != type)
    return;
  mp__seg_unref(o->seg);
  o->type = 0; /* a second free of a stale pointer is caught */
  free(o);
}

void *mp__args_shared(const mp_args *a, size_t i, uint32_t type) {
  mp__obj *o = mp__args_object(a, i, MP__OBJ_SHARED);
  if (o != NULL && o->type != type) {
    mp__error(MP_ETYPE, "mp_args: item %zu is not a %s", i, type_name(type));
    return NULL;
  }
  return o;
}

int mp__args_add_shared(mp_args *a, const void *obj, uint32_t type,
                        const char *what) {
  int rc = mp__obj_check(obj, type, what);
  return rc != 0 ? rc : mp__shared_add(a, obj, NULL, 0);
}

int mp__obj_check(const void *obj, uint32_t type, const char *what) {
  if (obj == NULL)
    return mp__error(MP_EINVAL, "%s: NULL %s", what, type_name(type));
  if (((const mp__obj *)obj)->type != type)
    return mp__error(MP_EINVAL, "%s: not a %s", what, type_name(type));
  return 0;
}

/* ---- 3. Wait queues ----------------------------------------------------- */

double mp__deadline(double timeout) {
  return timeout < 0 ? -1.0 : mpi_now() + timeout;
}

static volatile uint32_t spin_ns_plus1; /* 0: not read yet */

double mp__spin_seconds(void) {
  uint32_t v = mp__load32(&spin_ns_plus1);
  if (v == 0) {
    long us = 50;
    const char *env = getenv("MPROC_SPIN_US");
    if (env != NULL && env[0] != '\0') {
      char *end;
      long x = strtol(env, &end, 10);
      if (*end == '\0' && x >= 0 && x <= 1000000)
        us = x;
    }
    if (mpi_cpu_count() < 2)
      us = 0; /* spinning only delays the thread we wait for (a process
               * pinned to one CPU may wait for one on another: it spins) */
    v = (uint32_t)us * 1000u + 1u;
    mp__store32(&spin_ns_plus1, v);
  }
  return (double)(v - 1u) * 1e-9;
}

uint32_t mp__self_pid(void) { return (uint32_t)mpi_getpid(); }

static MP_THREAD_LOCAL char tid_anchor;
uint64_t mp__self_tid(void) { return (uint64_t)(uintptr_t)&tid_anchor; }

double mp__rescue_slice(double wait, double *rescue) {
  if (wait < 0 || wait > *rescue) {
    wait = *rescue;
    *rescue = *rescue * 2 < MP__RESCUE_MAX ? *rescue * 2 : MP__RESCUE_MAX;
  }
  return wait;
}

int mp__wq_wait(mpi_shm *s, mp__wq *q, mp__try_fn try_fn, void *arg,
                double deadline, double slice) {
  int rc = try_fn(arg);
  if (rc != 0)
    return rc > 0 ? 0 : rc;
  /* Spin: a wake across CPUs costs tens of microseconds, and the state
   * often changes sooner than that.  Look only every 32 to 64 pauses
   * (about 1-3 us): each look pulls a cache line the other side is
   * writing and slows it down; looking more often measured slower for
   * queues and for a contended lock alike. */
  double spin = mp__spin_seconds();
  if (spin > 0) {
    double until = mpi_now() + spin;
    if (deadline >= 0 && until > deadline)
      until = deadline;
    unsigned gap = 32;
    for (unsigned looks = 1;; looks++) {
      for (unsigned i = 0; i < gap; i++)
        mp__cpu_relax();
      if ((rc = try_fn(arg)) != 0)
        return rc > 0 ? 0 : rc;
      if (gap < 64)
        gap *= 2;
      if ((looks & 7) == 0) {
        if (mpi_now() >= until)
          break;
        /* Every few microseconds, give way to a thread that is ready to
         * run on this CPU (with more runnable threads than CPUs, the one
         * we wait for may be queued behind us). */
        mpi_yield();
      }
    }
  }
  double rescue = MP__RESCUE_FIRST; /* see mp__wq_wait in shared.h */
  for (;;) {
    mp__add32(&q->sleepers, 1);
    /* The generation first, then arm: a wake that takes this arm bumps
     * the generation after we read it, so the sleep below returns at
     * once and we arm again.  (Armed first, a wake could take the arm,
     * we would read its new generation and sleep unarmed, unwakeable.) */
    uint32_t gen = mp__load32(&q->gen.value);
    mp__store32(&q->armed, 1);
    rc = try_fn(arg);
    if (rc != 0) {
      mp__add32(&q->sleepers, (uint32_t)-1);
      return rc > 0 ? 0 : rc;
    }
    double wait = -1;
    if (deadline >= 0) {
      wait = deadline - mpi_now();
      if (wait <= 0) {
        mp__add32(&q->sleepers, (uint32_t)-1);
        return MP_ETIMEDOUT;
      }
    }
    if (slice > 0 && (wait < 0 || wait > slice))
      wait = slice;
    else if (slice <= 0)
      wait = mp__rescue_slice(wait, &rescue);
    mpi_word_wait(s, &q->gen, gen, wait);
    mp__add32(&q->sleepers, (uint32_t)-1);
    if ((rc = try_fn(arg)) != 0)
      return rc > 0 ? 0 : rc;
    if (deadline >= 0 && mpi_now() >= deadline)
      return MP_ETIMEDOUT;
  }
}

void mp__wq_wake(mpi_shm *s, mp__wq *q, int how) {
  if (mp__load32(&q->sleepers) == 0)
    return;
  if (how == MP__WAKE_SINGLE && mp__xchg32(&q->armed, 0) == 0)
    return; /* woken already, and not asleep again since */
  mp__add32(&q->gen.value, 1);
  mpi_word_wake(s, &q->gen, how == MP__WAKE_ALL);
}

/* ---- 4. The process lock ------------------------------------------------ */

int mp__plock_try(mp__plock *l) {
  uint32_t free_ = 0;
  return mp__cas32(&l->owner, &free_, mp__self_pid());
}

int mp__plock_take_dead(mp__plock *l) {
  uint32_t me = mp__self_pid(), v = mp__load32(&l->owner);
  if (v != 0 && v != me && !mpi_pid_alive(v) && mp__cas32(&l->owner, &v, me))
    return MP_EOWNERDEAD;
  return MP_ETIMEDOUT;
}

typedef struct plock_try {
  mp__plock *l;
  uint32_t me;
  double next_check; /* when to look at the owner's liveness again */
  int dead;          /* set when we took it over from a dead owner */
} plock_try;

static int plock_try_fn(void *arg) {
  plock_try *t = arg;
  uint32_t v = mp__load32(&t->l->owner);
  if (v == 0)
    return mp__cas32(&t->l->owner, &v, t->me);
  double now = mpi_now();
  if (now < t->next_check)
    return 0;
  t->next_check = now + MP__LIVENESS_SLICE;
  if (v != t->me && !mpi_pid_alive(v) && mp__cas32(&t->l->owner, &v, t->me)) {
    t->dead = 1;
    return 1;
  }
  return 0;
}

int mp__plock_acquire(mpi_shm *s, mp__plock *l, double deadline) {
  uint32_t me = mp__self_pid(), v = 0;
  if (mp__cas32(&l->owner, &v, me))
    return 0;
  /* Look at the owner after the spin, then every slice. */
  plock_try t = {l, me, mpi_now() + mp__spin_seconds(), 0};
  int rc = mp__wq_wait(s, &l->wq, plock_try_fn, &t, deadline,
                       MP__LIVENESS_SLICE);
  if (rc == MP_ETIMEDOUT) /* a short wait may end before the first look
                             at the owner: a dead one must not make every
                             such call fail */
    return mp__plock_take_dead(l);
  if (rc != 0)
    return rc;
  return t.dead ? MP_EOWNERDEAD : 0;
}

void mp__plock_release(mpi_shm *s, mp__plock *l) {
  mp__store32(&l->owner, 0);
  mp__wq_wake(s, &l->wq, MP__WAKE_ONE);
}

/* ---- 5. Passing objects to a child -------------------------------------- */

static void put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

int mp__shared_ref(mp_args *a, const mp__obj *o,
                   unsigned char ref[MP__REF_SIZE]) {
  uint32_t index;
  int rc = mp__args_add_handle(a, mpi_shm_handle(o->seg->shm), &index);
  if (rc != 0)
    return rc;
  put_u32(ref, index);
  put_u32(ref + 4, o->type);
  put_u32(ref + 8, (uint32_t)o->off);
  put_u32(ref + 12, (uint32_t)((uint64_t)o->off >> 32));
  return 0;
}

int mp__shared_add(mp_args *a, const mp__obj *o, const void *extra,
                   size_t n) {
  if (a == NULL)
    return mp__error(MP_EINVAL, "mp_args: NULL tuple");
  if (n > 1024)
    return mp__error(MP_EINVAL, "object reference too large");
  unsigned char blob[MP__REF_SIZE + 1024];
  int rc = mp__shared_ref(a, o, blob);
  if (rc != 0)
    return rc;
  if (n > 0)
    memcpy(blob + MP__REF_SIZE, extra, n);
  return mp__args_add_object(a, MP__OBJ_SHARED, blob, MP__REF_SIZE + n,
                             (void *)o);
}

static int open_blob(const unsigned char *b, size_t n, mpi_fd *handles,
                     size_t nh, void **out) {
  if (n < MP__REF_SIZE)
    return mp__error(MP_EPROTO, "malformed object reference");
  uint32_t index = get_u32(b), type = get_u32(b + 4);
  uint64_t off = (uint64_t)get_u32(b + 8) | (uint64_t)get_u32(b + 12) << 32;
  if (index >= nh || handles[index] == MPI_BAD_FD)
    return mp__error(MP_EPROTO, "object reference to a missing handle");
  if (type == 0 || type >= MP__T_COUNT)
    return mp__error(MP_EPROTO, "object reference of unknown type %u",
                     (unsigned)type);
  mp__seg *seg = NULL;
  mpi_fd h = handles[index];
  handles[index] = MPI_BAD_FD; /* the segment owns it now */
  int rc = seg_adopt(h, &seg);
  if (rc != 0)
    return rc;
  size_t size = mpi_shm_size(seg->shm);
  if (type != MP__T_SHM) {
    const mp__shobj *h0 =
        (const mp__shobj *)((const char *)mpi_shm_addr(seg->shm) + off);
    if (off % 64 != 0 || off > size || size - off < sizeof(mp__shobj) ||
        h0->magic != MP__OBJ_MAGIC || h0->type != type ||
        h0->size > size - off) {
      mp__seg_unref(seg);
      return mp__error(MP_EPROTO, "object reference to a damaged %s",
                       type_name(type));
    }
  }
  static const mp__open_fn openers[MP__T_COUNT] = {
      NULL,                 mp__lock_open,      mp__semaphore_open,
      mp__event_open,       mp__condition_open, mp__barrier_open,
      mp__queue_open,       mp__value_open,     mp__array_open,
      mp__named_open};
  rc = openers[type](seg, (size_t)off, b + MP__REF_SIZE, n - MP__REF_SIZE,
                     handles, nh, out);
  if (rc != 0)
    mp__seg_unref(seg);
  return rc;
}

int mp__shared_open_ref(const unsigned char *ref, mpi_fd *handles,
                        size_t nh, void **out) {
  return open_blob(ref, MP__REF_SIZE, handles, nh, out);
}

int mp__shared_open(const void *blob, size_t n, mpi_fd *handles, size_t nh,
                    void **out) {
  return open_blob(blob, n, handles, nh, out);
}

void mp__shared_release(void *obj) {
  switch (((mp__obj *)obj)->type) {
  case MP__T_LOCK: mp_lock_free(obj); break;
  case MP__T_SEMAPHORE: mp_semaphore_free(obj); break;
  case MP__T_EVENT: mp_event_free(obj); break;
  case MP__T_CONDITION: mp_condition_free(obj); break;
  case MP__T_BARRIER: mp_barrier_free(obj); break;
  case MP__T_QUEUE: mp_queue_free(obj); break;
  case MP__T_VALUE: mp_value_free(obj); break;
  case MP__T_ARRAY: mp_array_free(obj); break;
  case MP__T_SHM: mp_shm_free(obj); break;
  default: break;
  }
}
