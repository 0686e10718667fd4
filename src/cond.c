/*
 * cond.c - Condition and Barrier.
 *
 * Condition: each waiter takes a slot (a word it sleeps on) and a ticket;
 * notify(n) wakes the n waiting slots with the lowest tickets, so the
 * longest waiting go first and exactly n wake (Python's semantics).  A
 * waiter that times out gives its slot back under the internal lock, so
 * a notification is never spent on a thread that already left; a slot
 * whose process died is skipped and reclaimed.  The slots are found by
 * scanning, not through links, so a process dying in the middle of an
 * update cannot corrupt a list.
 *
 * Barrier: a round counter.  A waiter of round r is released when the
 * round moves on (or reports broken if round r was broken or reset).
 */
#include <stdlib.h>
#include <string.h>

#include "shared.h"

/* ---- Condition ---------------------------------------------------------- */

#define COND_SLOTS 1024u

enum { SLOT_FREE = 0, SLOT_WAITING = 1, SLOT_NOTIFIED = 2 };

typedef struct cond_slot {
  mpi_word w; /* SLOT_* */
  uint32_t pid;
  uint32_t reserved;
  uint64_t ticket;
} cond_slot;

typedef struct cond_state {
  mp__shobj hdr;
  mp__plock il; /* guards slot allocation and notification */
  uint64_t next_ticket;
  uint32_t high; /* slots [0, high) may be in use */
  uint32_t reserved;
  cond_slot slots[COND_SLOTS];
} cond_state;

struct mp_condition {
  mp__obj base;
  cond_state *st;
  mp_lock *lock;
};

static void cond_lock(mp_condition *c) {
  /* A holder that died left at most one slot half-written: every field
   * but the word is written before the word, so there is nothing to
   * repair. */
  mp__plock_acquire(mp__obj_shm(&c->base), &c->st->il, -1);
}

static void cond_unlock(mp_condition *c) {
  mp__plock_release(mp__obj_shm(&c->base), &c->st->il);
}

int mp_condition_new(mp_condition **out, mp_lock *lock) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_condition_new: NULL out");
  if (lock != NULL) {
    int rc = mp__obj_check(lock, MP__T_LOCK, "mp_condition_new");
    if (rc != 0)
      return rc;
  }
  mp_condition *c = NULL;
  int rc = mp__obj_create(sizeof *c, MP__T_CONDITION, sizeof(cond_state),
                          (void **)&c);
  if (rc != 0)
    return rc;
  c->st = mp__obj_state(&c->base);
  rc = lock != NULL ? mp__lock_dup(lock, &c->lock) : mp_rlock_new(&c->lock);
  if (rc != 0) {
    mp__obj_free(c, MP__T_CONDITION);
    return rc;
  }
  *out = c;
  return 0;
}

MP__OPENER(mp__condition_open) {
  if (n != MP__REF_SIZE)
    return mp__error(MP_EPROTO, "malformed condition reference");
  mp_lock *lock = NULL;
  int rc = mp__shared_open_ref(extra, handles, nh, (void **)&lock);
  if (rc != 0)
    return rc;
  if (((mp__obj *)lock)->type != MP__T_LOCK) {
    mp__shared_release(lock);
    return mp__error(MP_EPROTO, "condition reference without a lock");
  }
  mp_condition *c = NULL;
  if ((rc = mp__obj_alloc(sizeof *c, MP__T_CONDITION, seg, off,
                          (void **)&c)) != 0) {
    mp_lock_free(lock);
    return rc;
  }
  c->st = mp__obj_state(&c->base);
  c->lock = lock;
  *out = c;
  return 0;
}

mp_lock *mp_condition_get_lock(mp_condition *c) {
  return mp__obj_check(c, MP__T_CONDITION, "mp_condition_get_lock") == 0
             ? c->lock
             : NULL;
}

int mp_condition_acquire(mp_condition *c, double timeout) {
  int rc = mp__obj_check(c, MP__T_CONDITION, "mp_condition_acquire");
  return rc != 0 ? rc : mp_lock_acquire(c->lock, timeout);
}

int mp_condition_release(mp_condition *c) {
  int rc = mp__obj_check(c, MP__T_CONDITION, "mp_condition_release");
  return rc != 0 ? rc : mp_lock_release(c->lock);
}

/* A free slot (reclaiming those of dead waiters when all are taken), or
 * -1.  Under the internal lock. */
static int slot_alloc(cond_state *st) {
  for (uint32_t i = 0; i < st->high; i++)
    if (mp__load32(&st->slots[i].w.value) == SLOT_FREE)
      return (int)i;
  if (st->high < COND_SLOTS)
    return (int)st->high++;
  for (uint32_t i = 0; i < COND_SLOTS; i++)
    if (mp__load32(&st->slots[i].w.value) == SLOT_WAITING &&
        !mpi_pid_alive(st->slots[i].pid)) {
      mp__store32(&st->slots[i].w.value, SLOT_FREE);
      return (int)i;
    }
  return -1;
}

static int slot_wait_try(void *arg) {
  return mp__load32(&((cond_slot *)arg)->w.value) != SLOT_WAITING;
}

int mp_condition_wait(mp_condition *c, double timeout) {
  int rc = mp__obj_check(c, MP__T_CONDITION, "mp_condition_wait");
  if (rc != 0 || (rc = mp__check_timeout(timeout)) != 0)
    return rc;
  if (!mp__lock_held_by_me(c->lock))
    return mp__error(MP_EPERM, "cannot wait on an un-acquired lock");
  double deadline = mp__deadline(timeout);
  cond_state *st = c->st;
  cond_lock(c);
  int i = slot_alloc(st);
  if (i < 0) {
    cond_unlock(c);
    return mp__error(MP_ENOMEM, "more than %u waiters on one condition",
                     COND_SLOTS);
  }
  cond_slot *slot = &st->slots[i];
  slot->pid = mp__self_pid();
  slot->ticket = st->next_ticket++;
  mp__store32(&slot->w.value, SLOT_WAITING);
  cond_unlock(c);

  uint32_t depth = mp__lock_release_all(c->lock);
  mpi_shm *shm = mp__obj_shm(&c->base);
  int notified;
  /* Sliced (see mp__rescue_slice): a notifier killed between marking
   * our slot and waking us cannot leave us asleep. */
  double rescue = MP__RESCUE_FIRST;
  for (;;) {
    if (slot_wait_try(slot)) {
      notified = 1;
      break;
    }
    double wait = -1;
    if (deadline >= 0 && (wait = deadline - mpi_now()) <= 0) {
      notified = 0;
      break;
    }
    mpi_word_wait(shm, &slot->w, SLOT_WAITING,
                  mp__rescue_slice(wait, &rescue));
  }
  if (!notified) {
    /* Leave under the lock: either a notifier got here first (then it
     * counted us: we were notified) or it never will. */
    cond_lock(c);
    notified = mp__load32(&slot->w.value) == SLOT_NOTIFIED;
    mp__store32(&slot->w.value, SLOT_FREE);
    cond_unlock(c);
  } else {
    mp__store32(&slot->w.value, SLOT_FREE);
  }
  rc = mp__lock_reacquire(c->lock, depth);
  if (rc == MP_EOWNERDEAD)
    return mp__error(rc, "condition's lock came back from a holder that "
                         "died");
  return notified ? 0 : mp__error(MP_ETIMEDOUT, "not notified within %g s",
                                  timeout);
}

int mp_condition_wait_for(mp_condition *c, int (*pred)(void *arg), void *arg,
                          double timeout) {
  int rc = mp__obj_check(c, MP__T_CONDITION, "mp_condition_wait_for");
  if (rc != 0 || (rc = mp__check_timeout(timeout)) != 0)
    return rc;
  if (pred == NULL)
    return mp__error(MP_EINVAL, "mp_condition_wait_for: NULL predicate");
  double deadline = mp__deadline(timeout);
  while (!pred(arg)) {
    double wait = -1;
    if (deadline >= 0 && (wait = deadline - mpi_now()) <= 0)
      return mp__error(MP_ETIMEDOUT, "predicate still false after %g s",
                       timeout);
    rc = mp_condition_wait(c, wait);
    if (rc != 0 && rc != MP_ETIMEDOUT)
      return rc;
  }
  return 0;
}

static int cond_notify(mp_condition *c, uint32_t n, const char *what) {
  int rc = mp__obj_check(c, MP__T_CONDITION, what);
  if (rc != 0)
    return rc;
  if (!mp__lock_held_by_me(c->lock))
    return mp__error(MP_EPERM, "cannot notify on an un-acquired lock");
  cond_state *st = c->st;
  mpi_shm *shm = mp__obj_shm(&c->base);
  uint32_t me = mp__self_pid();
  cond_lock(c);
  uint32_t done = 0;
  while (done < n) {
    cond_slot *best = NULL;
    for (uint32_t i = 0; i < st->high; i++) {
      cond_slot *s = &st->slots[i];
      if (mp__load32(&s->w.value) != SLOT_WAITING)
        continue;
      if (n == UINT32_MAX) { /* notify_all: order does not matter */
        best = s;
        break;
      }
      if (best == NULL || s->ticket < best->ticket)
        best = s;
    }
    if (best == NULL)
      break;
    if (best->pid != me && !mpi_pid_alive(best->pid)) {
      mp__store32(&best->w.value, SLOT_FREE); /* a dead waiter */
      continue;
    }
    mp__store32(&best->w.value, SLOT_NOTIFIED);
    mpi_word_wake(shm, &best->w, 1);
    done++;
  }
  while (st->high > 0 &&
         mp__load32(&st->slots[st->high - 1].w.value) == SLOT_FREE)
    st->high--;
  cond_unlock(c);
  return 0;
}

int mp_condition_notify(mp_condition *c, int n) {
  if (n < 0)
    return mp__error(MP_EINVAL, "mp_condition_notify: negative count");
  return cond_notify(c, (uint32_t)n, "mp_condition_notify");
}

int mp_condition_notify_all(mp_condition *c) {
  return cond_notify(c, UINT32_MAX, "mp_condition_notify_all");
}

void mp_condition_free(mp_condition *c) {
  if (c == NULL || c->base.type != MP__T_CONDITION)
    return;
  mp_lock_free(c->lock);
  mp__obj_free(c, MP__T_CONDITION);
}

int mp_args_add_condition(mp_args *a, mp_condition *c) {
  int rc = mp__obj_check(c, MP__T_CONDITION, "mp_args_add_condition");
  if (rc != 0)
    return rc;
  unsigned char ref[MP__REF_SIZE];
  if ((rc = mp__shared_ref(a, (const mp__obj *)c->lock, ref)) != 0)
    return rc;
  return mp__shared_add(a, &c->base, ref, sizeof ref);
}

mp_condition *mp_args_condition(const mp_args *a, size_t i) {
  return mp__args_shared(a, i, MP__T_CONDITION);
}

/* ---- Barrier ------------------------------------------------------------ */

enum { BARRIER_FILLING = 0, BARRIER_BROKEN = 1 };

typedef struct barrier_state {
  mp__shobj hdr;
  mp__plock il;
  uint32_t parties;
  uint32_t count;             /* arrived in this round */
  volatile uint32_t state;    /* BARRIER_* */
  volatile uint32_t round;    /* from 1; moves on when a round ends */
  uint32_t last_broken;       /* the last round that was broken */
  uint32_t reserved;
  double timeout;             /* default for wait; < 0: none */
  mp__wq wq;
} barrier_state;

struct mp_barrier {
  mp__obj base;
  barrier_state *st;
  mp_barrier_action action;
};

int mp_barrier_new(mp_barrier **out, unsigned parties,
                   mp_barrier_action action, double timeout) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_barrier_new: NULL out");
  if (parties == 0 || parties > 0x7fffffffu)
    return mp__error(MP_EINVAL, "a barrier needs 1 to 2^31-1 parties");
  int rc = mp__check_timeout(timeout);
  if (rc != 0)
    return rc;
  mp_barrier *b = NULL;
  if ((rc = mp__obj_create(sizeof *b, MP__T_BARRIER, sizeof(barrier_state),
                           (void **)&b)) != 0)
    return rc;
  b->st = mp__obj_state(&b->base);
  b->st->parties = parties;
  b->st->round = 1;
  b->st->timeout = timeout;
  b->action = action;
  *out = b;
  return 0;
}

/* Extra bytes: u64 offset | module path (the action's reference, as for
 * process targets; empty module and offset 0: no action). */
MP__OPENER(mp__barrier_open) {
  (void)handles;
  (void)nh;
  const unsigned char *e = extra;
  if (n < 8 || n > 8 + 1000)
    return mp__error(MP_EPROTO, "malformed barrier reference");
  uint64_t offset = 0;
  for (int i = 7; i >= 0; i--)
    offset = offset << 8 | e[i];
  char module[1001];
  memcpy(module, e + 8, n - 8);
  module[n - 8] = '\0';
  void (*fn)(void) = NULL;
  if (offset != 0 || module[0] != '\0') {
    int rc = mpi_fn_decode(module, offset, &fn);
    if (rc != 0)
      return rc;
  }
  mp_barrier *b = NULL;
  int rc = mp__obj_alloc(sizeof *b, MP__T_BARRIER, seg, off, (void **)&b);
  if (rc != 0)
    return rc;
  b->st = mp__obj_state(&b->base);
  b->action = (mp_barrier_action)fn;
  *out = b;
  return 0;
}

static void barrier_break(mp_barrier *b) {
  b->st->last_broken = b->st->round;
  mp__store32(&b->st->state, BARRIER_BROKEN);
  mp__wq_wake(mp__obj_shm(&b->base), &b->st->wq, MP__WAKE_ALL);
}

/* Under the internal lock; a holder's death may have left the round
 * half-done, so the barrier breaks (its waiters hear of it). */
static void barrier_lock(mp_barrier *b) {
  if (mp__plock_acquire(mp__obj_shm(&b->base), &b->st->il, -1) ==
      MP_EOWNERDEAD)
    barrier_break(b);
}

static void barrier_unlock(mp_barrier *b) {
  mp__plock_release(mp__obj_shm(&b->base), &b->st->il);
}

typedef struct barrier_try {
  barrier_state *st;
  uint32_t round;
} barrier_try;

static int barrier_try_fn(void *arg) {
  barrier_try *t = arg;
  return mp__load32(&t->st->state) == BARRIER_BROKEN ||
         mp__load32(&t->st->round) != t->round;
}

int mp_barrier_wait(mp_barrier *b, double timeout) {
  int rc = mp__obj_check(b, MP__T_BARRIER, "mp_barrier_wait");
  if (rc != 0)
    return rc;
  if (timeout != timeout) /* NaN: neither a time nor "the default" */
    return mp__error(MP_EINVAL, "mp_barrier_wait: the timeout is NaN");
  barrier_state *st = b->st;
  if (timeout < 0)
    timeout = st->timeout;
  double deadline = mp__deadline(timeout);
  barrier_lock(b);
  if (st->state == BARRIER_BROKEN) {
    barrier_unlock(b);
    return mp__error(MP_EBROKEN, "the barrier is broken");
  }
  uint32_t index = st->count++, round = st->round;
  if (st->count == st->parties) {
    if (b->action != NULL && b->action() != 0) {
      barrier_break(b);
      barrier_unlock(b);
      return mp__error(MP_EBROKEN, "the barrier's action failed");
    }
    st->count = 0;
    mp__store32(&st->round, round + 1);
    mp__wq_wake(mp__obj_shm(&b->base), &st->wq, MP__WAKE_ALL);
    barrier_unlock(b);
    return (int)index;
  }
  barrier_unlock(b);
  barrier_try t = {st, round};
  rc = mp__wq_wait(mp__obj_shm(&b->base), &st->wq, barrier_try_fn, &t,
                   deadline, 0);
  barrier_lock(b);
  if (rc == MP_ETIMEDOUT && st->round == round &&
      st->state != BARRIER_BROKEN) {
    barrier_break(b);
    barrier_unlock(b);
    return mp__error(MP_ETIMEDOUT, "barrier timed out (now broken)");
  }
  int broken = st->round == round || st->last_broken == round;
  barrier_unlock(b);
  return broken ? mp__error(MP_EBROKEN, "the barrier is broken")
                : (int)index;
}

int mp_barrier_reset(mp_barrier *b) {
  int rc = mp__obj_check(b, MP__T_BARRIER, "mp_barrier_reset");
  if (rc != 0)
    return rc;
  barrier_state *st = b->st;
  barrier_lock(b);
  if (st->count > 0 && st->state != BARRIER_BROKEN)
    st->last_broken = st->round; /* its waiters hear "broken" */
  st->count = 0;
  mp__store32(&st->round, st->round + 1);
  mp__store32(&st->state, BARRIER_FILLING);
  mp__wq_wake(mp__obj_shm(&b->base), &st->wq, MP__WAKE_ALL);
  barrier_unlock(b);
  return 0;
}

int mp_barrier_abort(mp_barrier *b) {
  int rc = mp__obj_check(b, MP__T_BARRIER, "mp_barrier_abort");
  if (rc != 0)
    return rc;
  barrier_lock(b);
  barrier_break(b);
  barrier_unlock(b);
  return 0;
}

unsigned mp_barrier_parties(mp_barrier *b) {
  return mp__obj_check(b, MP__T_BARRIER, "mp_barrier_parties") == 0
             ? b->st->parties
             : 0;
}

unsigned mp_barrier_n_waiting(mp_barrier *b) {
  if (mp__obj_check(b, MP__T_BARRIER, "mp_barrier_n_waiting") != 0)
    return 0;
  barrier_lock(b);
  unsigned n = b->st->state == BARRIER_BROKEN ? 0 : b->st->count;
  barrier_unlock(b);
  return n;
}

int mp_barrier_broken(mp_barrier *b) {
  if (mp__obj_check(b, MP__T_BARRIER, "mp_barrier_broken") != 0)
    return 0;
  return mp__load32(&b->st->state) == BARRIER_BROKEN;
}

void mp_barrier_free(mp_barrier *b) { mp__obj_free(b, MP__T_BARRIER); }

int mp_args_add_barrier(mp_args *a, mp_barrier *b) {
  int rc = mp__obj_check(b, MP__T_BARRIER, "mp_args_add_barrier");
  if (rc != 0)
    return rc;
  unsigned char extra[8 + 1000];
  uint64_t offset = 0;
  size_t mlen = 0;
  if (b->action != NULL) {
    char module[1001];
    if ((rc = mpi_fn_encode((void (*)(void))b->action, module, sizeof module,
                            &offset)) != 0)
      return rc;
    mlen = strlen(module);
    memcpy(extra + 8, module, mlen);
  }
  for (int i = 0; i < 8; i++)
    extra[i] = (unsigned char)(offset >> (8 * i));
  return mp__shared_add(a, &b->base, extra, 8 + mlen);
}

mp_barrier *mp_args_barrier(const mp_args *a, size_t i) {
  return mp__args_shared(a, i, MP__T_BARRIER);
}
