/*
 * lock.c - Lock, RLock, Semaphore, BoundedSemaphore and Event.
 *
 * Each is a few words in its own anonymous segment (shared.h).  The fast
 * paths are one compare-and-swap (acquire) and one store plus one load
 * (release): no system call unless someone sleeps.
 *
 * Lock / RLock: the owner word holds the holder's pid, so a waiter can
 * tell when the holder died (mp__plock does the waiting and the check).
 * An RLock also records the owning thread and the recursion count; only
 * the owner writes those, while it holds the lock.
 */
#include <stdlib.h>

#include "shared.h"

/* ---- Lock and RLock ----------------------------------------------------- */

typedef struct lock_state {
  mp__shobj hdr;
  mp__plock pl;
  uint32_t recursive;
  volatile uint32_t count;     /* RLock: recursion depth */
  volatile uint64_t owner_tid; /* RLock: the owning thread, in owner pid;
                                  atomics (other threads read it) */
} lock_state;

struct mp_lock {
  mp__obj base;
  lock_state *st;
  /* Owners of this handle: its creator, and each Value, Array or
   * Condition made with it (they keep it, so that their get_lock gives
   * the caller's own object, as Python's get_lock() does). */
  volatile uint32_t refs;
};

static int lock_wrap(mp__seg *seg, size_t off, mp_lock **out) {
  int rc = mp__obj_alloc(sizeof **out, MP__T_LOCK, seg, off, (void **)out);
  if (rc == 0) {
    (*out)->st = mp__obj_state(&(*out)->base);
    (*out)->refs = 1;
  }
  return rc;
}

/* A lock whose state lies at `off` in an existing segment (a Value's own
 * lock shares its cache line); takes a reference to seg. */
int mp__lock_embed(mp__seg *seg, size_t off, int recursive, mp_lock **out) {
  mp_lock *l = NULL;
  int rc = lock_wrap(seg, off, &l);
  if (rc != 0)
    return rc;
  mp__seg_ref(seg);
  /* The header last: a named lock's opener waits for its magic. */
  l->st->recursive = (uint32_t)(recursive != 0);
  mp__obj_init(&l->base, MP__T_LOCK, seg, off, sizeof(lock_state));
  *out = l;
  return 0;
}

size_t mp__lock_state_size(void) { return sizeof(lock_state); }

static int lock_new(mp_lock **out, int recursive) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_lock_new: NULL out");
  mp__seg *seg = NULL;
  int rc = mp__seg_new(sizeof(lock_state), &seg);
  if (rc != 0)
    return rc;
  rc = mp__lock_embed(seg, 0, recursive, out);
  mp__seg_unref(seg);
  return rc;
}

int mp_lock_new(mp_lock **out) { return lock_new(out, 0); }
int mp_rlock_new(mp_lock **out) { return lock_new(out, 1); }

MP__OPENER(mp__lock_open) {
  (void)extra;
  (void)handles;
  (void)nh;
  if (n != 0)
    return mp__error(MP_EPROTO, "malformed lock reference");
  mp_lock *l = NULL;
  int rc = lock_wrap(seg, off, &l);
  if (rc == 0)
    *out = l;
  return rc;
}

static int rlock_mine(const mp_lock *l) {
  return mp__load32(&l->st->pl.owner) == mp__self_pid() &&
         mp__load64(&l->st->owner_tid) == (uint64_t)mp__self_tid();
}

int mp_lock_acquire(mp_lock *l, double timeout) {
  int rc = mp__obj_check(l, MP__T_LOCK, "mp_lock_acquire");
  if (rc != 0 || (rc = mp__check_timeout(timeout)) != 0)
    return rc;
  lock_state *st = l->st;
  if (st->recursive && rlock_mine(l)) {
    st->count++;
    return 0;
  }
  if (timeout == 0)
    rc = mp__plock_try(&st->pl) ? 0 : mp__plock_take_dead(&st->pl);
  else
    rc = mp__plock_acquire(mp__obj_shm(&l->base), &st->pl,
                           mp__deadline(timeout));
  if (rc == MP_ETIMEDOUT)
    return mp__error(rc, "lock not acquired within %g s", timeout);
  if (st->recursive) {
    mp__store64(&st->owner_tid, (uint64_t)mp__self_tid());
    st->count = 1;
  }
  if (rc == MP_EOWNERDEAD)
    return mp__error(rc, "lock acquired, but its previous holder died "
                         "holding it");
  return rc;
}

int mp_lock_release(mp_lock *l) {
  int rc = mp__obj_check(l, MP__T_LOCK, "mp_lock_release");
  if (rc != 0)
    return rc;
  lock_state *st = l->st;
  if (st->recursive) {
    if (!rlock_mine(l))
      return mp__error(MP_EPERM, "cannot release an RLock this thread does "
                                 "not hold");
    if (--st->count > 0)
      return 0;
    mp__store64(&st->owner_tid, 0);
  } else if (mp__load32(&st->pl.owner) == 0) {
    return mp__error(MP_EVALUE, "release of an unlocked lock");
  }
  mp__plock_release(mp__obj_shm(&l->base), &st->pl);
  return 0;
}

int mp_lock_locked(mp_lock *l) {
  if (mp__obj_check(l, MP__T_LOCK, "mp_lock_locked") != 0)
    return 0;
  return mp__load32(&l->st->pl.owner) != 0;
}

int mp_lock_is_recursive(const mp_lock *l) {
  if (mp__obj_check(l, MP__T_LOCK, "mp_lock_is_recursive") != 0)
    return 0;
  return l->st->recursive != 0;
}

/* For Condition: does the calling thread (RLock) or process (Lock) hold
 * it; release it fully, returning the depth; take it back to depth. */
int mp__lock_held_by_me(mp_lock *l) {
  if (l->st->recursive)
    return rlock_mine(l);
  return mp__load32(&l->st->pl.owner) == mp__self_pid();
}

uint32_t mp__lock_release_all(mp_lock *l) {
  uint32_t depth = 1;
  if (l->st->recursive) {
    depth = l->st->count;
    l->st->count = 0;
    mp__store64(&l->st->owner_tid, 0);
  }
  mp__plock_release(mp__obj_shm(&l->base), &l->st->pl);
  return depth;
}

int mp__lock_reacquire(mp_lock *l, uint32_t depth) {
  int rc;
  do
    rc = mp__plock_acquire(mp__obj_shm(&l->base), &l->st->pl, -1);
  while (rc == MP_ETIMEDOUT);
  if (l->st->recursive) {
    mp__store64(&l->st->owner_tid, (uint64_t)mp__self_tid());
    l->st->count = depth;
  }
  return rc;
}

int mp__lock_dup(mp_lock *l, mp_lock **out) {
  mp__add32(&l->refs, 1);
  *out = l;
  return 0;
}

void mp_lock_free(mp_lock *l) {
  if (l == NULL || l->base.type != MP__T_LOCK)
    return;
  if (mp__add32(&l->refs, (uint32_t)-1) == 0)
    mp__obj_free(l, MP__T_LOCK);
}

int mp_args_add_lock(mp_args *a, mp_lock *l) {
  return mp__args_add_shared(a, l, MP__T_LOCK, "mp_args_add_lock");
}

mp_lock *mp_args_lock(const mp_args *a, size_t i) {
  return mp__args_shared(a, i, MP__T_LOCK);
}

/* ---- Semaphore and BoundedSemaphore ------------------------------------- */

#define SEM_VALUE_MAX_ 0x7fffffffu

typedef struct sem_state {
  mp__shobj hdr;
  volatile uint32_t value;
  uint32_t bound; /* BoundedSemaphore: the initial value; else 0 */
  uint32_t bounded;
  uint32_t reserved;
  mp__wq wq;
} sem_state;

struct mp_semaphore {
  mp__obj base;
  sem_state *st;
};

static int sem_wrap(mp__seg *seg, size_t off, mp_semaphore **out) {
  int rc =
      mp__obj_alloc(sizeof **out, MP__T_SEMAPHORE, seg, off, (void **)out);
  if (rc == 0)
    (*out)->st = mp__obj_state(&(*out)->base);
  return rc;
}

/* A semaphore whose state lies at `off` in seg (takes a new reference),
 * the header written last (named_sync.c's opener waits for it). */
int mp__semaphore_embed(mp__seg *seg, size_t off, unsigned value,
                        int bounded, mp_semaphore **out) {
  if (value > SEM_VALUE_MAX_)
    return mp__error(MP_EINVAL, "semaphore value %u is above 2^31-1", value);
  mp_semaphore *s = NULL;
  int rc = sem_wrap(seg, off, &s);
  if (rc != 0)
    return rc;
  mp__seg_ref(seg);
  s->st->value = value;
  s->st->bound = value;
  s->st->bounded = (uint32_t)(bounded != 0);
  mp__obj_init(&s->base, MP__T_SEMAPHORE, seg, off, sizeof(sem_state));
  *out = s;
  return 0;
}

size_t mp__semaphore_state_size(void) { return sizeof(sem_state); }

static int sem_new(mp_semaphore **out, unsigned value, int bounded) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_semaphore_new: NULL out");
  mp__seg *seg = NULL;
  int rc = mp__seg_new(sizeof(sem_state), &seg);
  if (rc != 0)
    return rc;
  rc = mp__semaphore_embed(seg, 0, value, bounded, out);
  mp__seg_unref(seg);
  return rc;
}

int mp_semaphore_new(mp_semaphore **out, unsigned value) {
  return sem_new(out, value, 0);
}
int mp_bounded_semaphore_new(mp_semaphore **out, unsigned value) {
  return sem_new(out, value, 1);
}

MP__OPENER(mp__semaphore_open) {
  (void)extra;
  (void)handles;
  (void)nh;
  if (n != 0)
    return mp__error(MP_EPROTO, "malformed semaphore reference");
  mp_semaphore *s = NULL;
  int rc = sem_wrap(seg, off, &s);
  if (rc == 0)
    *out = s;
  return rc;
}

static int sem_try(void *arg) {
  sem_state *st = arg;
  uint32_t v = mp__load32(&st->value);
  while (v > 0)
    if (mp__cas32(&st->value, &v, v - 1))
      return 1;
  return 0;
}

int mp_semaphore_acquire(mp_semaphore *s, double timeout) {
  int rc = mp__obj_check(s, MP__T_SEMAPHORE, "mp_semaphore_acquire");
  if (rc != 0 || (rc = mp__check_timeout(timeout)) != 0)
    return rc;
  if (sem_try(s->st))
    return 0;
  if (timeout == 0)
    rc = MP_ETIMEDOUT;
  else
    rc = mp__wq_wait(mp__obj_shm(&s->base), &s->st->wq, sem_try, s->st,
                     mp__deadline(timeout), 0);
  if (rc == MP_ETIMEDOUT)
    return mp__error(rc, "semaphore not acquired within %g s", timeout);
  return rc;
}

int mp_semaphore_release(mp_semaphore *s) {
  int rc = mp__obj_check(s, MP__T_SEMAPHORE, "mp_semaphore_release");
  if (rc != 0)
    return rc;
  sem_state *st = s->st;
  uint32_t limit = st->bounded ? st->bound : SEM_VALUE_MAX_;
  uint32_t v = mp__load32(&st->value);
  do {
    if (v >= limit)
      return st->bounded
                 ? mp__error(MP_EVALUE, "semaphore released too many times")
                 : mp__error(MP_EVALUE, "semaphore value would pass 2^31-1");
  } while (!mp__cas32(&st->value, &v, v + 1));
  mp__wq_wake(mp__obj_shm(&s->base), &st->wq, MP__WAKE_ONE);
  return 0;
}

int mp_semaphore_get_value(mp_semaphore *s) {
  int rc = mp__obj_check(s, MP__T_SEMAPHORE, "mp_semaphore_get_value");
  return rc != 0 ? rc : (int)mp__load32(&s->st->value);
}

void mp_semaphore_free(mp_semaphore *s) {
  mp__obj_free(s, MP__T_SEMAPHORE);
}

int mp_args_add_semaphore(mp_args *a, mp_semaphore *s) {
  return mp__args_add_shared(a, s, MP__T_SEMAPHORE, "mp_args_add_semaphore");
}

mp_semaphore *mp_args_semaphore(const mp_args *a, size_t i) {
  return mp__args_shared(a, i, MP__T_SEMAPHORE);
}

/* ---- Event -------------------------------------------------------------- */

typedef struct event_state {
  mp__shobj hdr;
  volatile uint32_t flag;
  uint32_t reserved;
  mp__wq wq;
} event_state;

struct mp_event {
  mp__obj base;
  event_state *st;
};

static int event_wrap(mp__seg *seg, size_t off, mp_event **out) {
  int rc = mp__obj_alloc(sizeof **out, MP__T_EVENT, seg, off, (void **)out);
  if (rc == 0)
    (*out)->st = mp__obj_state(&(*out)->base);
  return rc;
}

int mp_event_new(mp_event **out) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_event_new: NULL out");
  mp_event *e = NULL;
  int rc = mp__obj_create(sizeof *e, MP__T_EVENT, sizeof(event_state),
                          (void **)&e);
  if (rc != 0)
    return rc;
  e->st = mp__obj_state(&e->base);
  *out = e;
  return 0;
}

MP__OPENER(mp__event_open) {
  (void)extra;
  (void)handles;
  (void)nh;
  if (n != 0)
    return mp__error(MP_EPROTO, "malformed event reference");
  mp_event *e = NULL;
  int rc = event_wrap(seg, off, &e);
  if (rc == 0)
    *out = e;
  return rc;
}

int mp_event_set(mp_event *e) {
  int rc = mp__obj_check(e, MP__T_EVENT, "mp_event_set");
  if (rc != 0)
    return rc;
  mp__store32(&e->st->flag, 1);
  mp__wq_wake(mp__obj_shm(&e->base), &e->st->wq, MP__WAKE_ALL);
  return 0;
}

int mp_event_clear(mp_event *e) {
  int rc = mp__obj_check(e, MP__T_EVENT, "mp_event_clear");
  if (rc == 0)
    mp__store32(&e->st->flag, 0);
  return rc;
}

int mp_event_is_set(mp_event *e) {
  if (mp__obj_check(e, MP__T_EVENT, "mp_event_is_set") != 0)
    return 0;
  return mp__load32(&e->st->flag) != 0;
}

static int event_try(void *arg) {
  return mp__load32(&((event_state *)arg)->flag) != 0;
}

int mp_event_wait(mp_event *e, double timeout) {
  int rc = mp__obj_check(e, MP__T_EVENT, "mp_event_wait");
  if (rc != 0 || (rc = mp__check_timeout(timeout)) != 0)
    return rc;
  if (event_try(e->st))
    return 0;
  rc = timeout == 0 ? MP_ETIMEDOUT
                    : mp__wq_wait(mp__obj_shm(&e->base), &e->st->wq,
                                  event_try, e->st, mp__deadline(timeout), 0);
  if (rc == MP_ETIMEDOUT)
    return mp__error(rc, "event not set within %g s", timeout);
  return rc;
}

void mp_event_free(mp_event *e) { mp__obj_free(e, MP__T_EVENT); }

int mp_args_add_event(mp_args *a, mp_event *e) {
  return mp__args_add_shared(a, e, MP__T_EVENT, "mp_args_add_event");
}

mp_event *mp_args_event(const mp_args *a, size_t i) {
  return mp__args_shared(a, i, MP__T_EVENT);
}
