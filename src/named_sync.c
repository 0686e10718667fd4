/*
 * named_sync.c - a Lock, RLock or Semaphore that unrelated programs open
 * by name (F14): mp_lock_open_named, mp_rlock_open_named,
 * mp_semaphore_open_named.
 *
 * The choice: the object's ordinary state (lock.c) in a *named* segment
 * (mp_shm's mpi_shm_create / mpi_shm_attach), rather than the OS's own
 * named primitives (sem_open; CreateMutex / CreateSemaphore by name).
 * Why:
 *   - A named object is then an ordinary mp_lock * or mp_semaphore *:
 *     every call works on it (a Condition over it, a Value guarded by it,
 *     passing it to a child in mp_args), with the same semantics as an
 *     anonymous one (Python's: any thread may release a Lock; a Windows
 *     mutex may be released only by the thread that took it).
 *   - A dead holder is already found by the pid in the lock word
 *     (mp__plock), the same on both backends and for any two processes of
 *     one user: the next acquirer gets MP_EOWNERDEAD and holds the lock.
 *     sem_open has no owner at all (it would need a robust mutex in a
 *     segment anyway), and WAIT_ABANDONED exists on Windows only.
 *   - Names, owner-only permissions and removal come from mp_shm: POSIX
 *     creates 0600 and its tracker removes the name when the last user
 *     closes or dies however it dies (a sem_open name outlives a crash
 *     and would need a tracker of its own); Windows gives the section
 *     and its word semaphores an owner-only DACL, and the kernel drops
 *     them with the last handle.  Nothing is written twice.
 * The cost: named locks and segments share one namespace (a name is
 * either), and an opener must wait for the creator to write the state
 * (its header goes last; see open_existing).
 *
 * Parts:
 *   1. arguments and a short nap
 *   2. the segment: created, or opened and checked
 *   3. the public functions
 */
#include <stdio.h>
#include <stdlib.h>

#include "shared.h"

/* ---- 1. Arguments and a nap --------------------------------------------- */

#define NAMED_FLAGS (MP_NAMED_CREATE | MP_NAMED_EXCL)

/* How long an opener waits for a creator that has made the name but not
 * yet written the state (only a creator killed in between takes long),
 * and how long create-or-open retries a name that is being removed. */
#define NAMED_INIT_WAIT 2.0
#define NAMED_RETRY_WAIT 5.0

static int check_args(const void *out, const char *name, int flags,
                      const char *fn) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "%s: NULL out", fn);
  if (name == NULL || name[0] == '\0')
    return mp__error(MP_EINVAL, "%s: the name is %s", fn,
                     name == NULL ? "NULL" : "empty");
  if ((flags & ~NAMED_FLAGS) != 0)
    return mp__error(MP_EINVAL, "%s: unknown flags 0x%x", fn,
                     (unsigned)(flags & ~NAMED_FLAGS));
  if ((flags & MP_NAMED_EXCL) && !(flags & MP_NAMED_CREATE))
    return mp__error(MP_EINVAL, "%s: MP_NAMED_EXCL without "
                                "MP_NAMED_CREATE",
                     fn);
  return 0;
}

/* Sleep about `seconds` (a condition variable nobody signals). */
static void nap(double seconds) {
  mpi_mutex *m = NULL;
  mpi_cond *c = NULL;
  if (mpi_mutex_new(&m) == 0 && mpi_cond_new(&c) == 0) {
    mpi_mutex_lock(m);
    mpi_cond_wait(c, m, seconds);
    mpi_mutex_unlock(m);
  } else {
    mpi_yield();
  }
  if (c != NULL)
    mpi_cond_free(c);
  if (m != NULL)
    mpi_mutex_free(m);
}

/* Put fn and the kind in front of the backend's message (it speaks of
 * shared memory), keeping its code. */
static int rename_error(int rc, const char *fn) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s", mp_last_error_message());
  return mp__error(rc, "%s: %s", fn, msg);
}

/* ---- 2. The segment ----------------------------------------------------- */

typedef struct kind {
  uint32_t type;      /* MP__T_LOCK or MP__T_SEMAPHORE */
  size_t size;        /* of its state */
  const char *fn;     /* the public function, for messages */
  const char *what;   /* "lock", "semaphore" */
} kind;

/* Wait for the state's header in an attached segment, then check that it
 * is the kind wanted.  0 or MP_ETYPE. */
static int open_existing(mpi_shm *s, const char *name, const kind *k) {
  if (mpi_shm_size(s) < sizeof(mp__shobj))
    return mp__error(MP_ETYPE, "%s: \"%s\" is not a named %s", k->fn, name,
                     k->what);
  mp__shobj *h = mpi_shm_addr(s);
  double deadline = mpi_now() + NAMED_INIT_WAIT;
  for (int looks = 0; mp__load32((volatile uint32_t *)&h->magic) == 0;
       looks++) {
    if (mpi_now() > deadline)
      return mp__error(MP_ETYPE, "%s: \"%s\" is not a named %s (an "
                                 "mp_shm segment, or its creator died "
                                 "making it)",
                       k->fn, name, k->what);
    if (looks < 100)
      mpi_yield();
    else
      nap(0.001);
  }
  if (h->magic != MP__OBJ_MAGIC || h->size > mpi_shm_size(s) ||
      (h->type != MP__T_LOCK && h->type != MP__T_SEMAPHORE))
    return mp__error(MP_ETYPE, "%s: \"%s\" is not a named %s (an mp_shm "
                               "segment?)",
                     k->fn, name, k->what);
  if (h->type != k->type)
    return mp__error(MP_ETYPE, "%s: \"%s\" is a named %s, not a %s", k->fn,
                     name, h->type == MP__T_LOCK ? "lock" : "semaphore",
                     k->what);
  if (h->size != k->size)
    return mp__error(MP_ETYPE, "%s: \"%s\" is a named %s of another "
                               "version of mproc",
                     k->fn, name, k->what);
  return 0;
}

/* Check the public function's arguments (`obj` is its out), then get
 * the named segment: attached (*created = 0, its state checked) or made
 * (*created = 1, its state still zero) as the flags say.  The caller owns
 * the reference. */
static int named_segment(const void *obj, const char *name, int flags,
                         const kind *k, mp__seg **out, int *created) {
  mpi_shm *s = NULL;
  int rc = check_args(obj, name, flags, k->fn);
  if (rc != 0)
    return rc;
  double deadline = mpi_now() + NAMED_RETRY_WAIT;
  *created = 0;
  for (;;) {
    if (!(flags & MP_NAMED_EXCL)) {
      rc = mpi_shm_attach(name, &s);
      if (rc == 0)
        break;
      if (rc == MP_ENOENT && !(flags & MP_NAMED_CREATE))
        return mp__error(MP_ENOENT, "%s: no named %s \"%s\"", k->fn,
                         k->what, name);
      if (rc != MP_ENOENT)
        return rename_error(rc, k->fn);
    }
    rc = mpi_shm_create(name, k->size, &s);
    if (rc == 0) {
      *created = 1;
      break;
    }
    if (rc == MP_EEXIST && (flags & MP_NAMED_EXCL))
      return mp__error(MP_EEXIST, "%s: \"%s\" exists", k->fn, name);
    if (rc != MP_EEXIST)
      return rename_error(rc, k->fn);
    /* Made by another process between our attach and our create, or
     * being removed by its tracker: look again. */
    if (mpi_now() > deadline)
      return mp__error(MP_EEXIST, "%s: \"%s\" exists but cannot be "
                                  "opened",
                       k->fn, name);
    nap(0.001);
  }
  if (!*created && (rc = open_existing(s, name, k)) != 0) {
    mpi_shm_free(s);
    return rc;
  }
  mp__seg *seg = malloc(sizeof *seg);
  if (seg == NULL) {
    mpi_shm_free(s);
    return mp__error(MP_ENOMEM, "out of memory");
  }
  seg->shm = s;
  seg->refs = 1;
  mp__seg_register(seg);
  *out = seg;
  return 0;
}

/* ---- 3. Public functions ------------------------------------------------ */

static int lock_open_named(mp_lock **out, const char *name, int flags,
                           int recursive, const char *fn) {
  kind k = {MP__T_LOCK, mp__lock_state_size(), fn, "lock"};
  mp__seg *seg = NULL;
  int created = 0;
  int rc = named_segment(out, name, flags, &k, &seg, &created);
  if (rc != 0)
    return rc;
  mp_lock *l = NULL;
  if (created) {
    rc = mp__lock_embed(seg, 0, recursive, &l);
    mp__seg_unref(seg);
  } else {
    rc = mp__lock_open(seg, 0, NULL, 0, NULL, 0, (void **)&l);
    if (rc != 0)
      mp__seg_unref(seg);
    else if (mp_lock_is_recursive(l) != recursive) {
      mp_lock_free(l);
      return mp__error(MP_ETYPE, "%s: \"%s\" is %s", fn, name,
                       recursive ? "a Lock, not an RLock"
                                 : "an RLock, not a Lock");
    }
  }
  if (rc == 0)
    *out = l;
  return rc;
}

int mp_lock_open_named(mp_lock **out, const char *name, int flags) {
  return lock_open_named(out, name, flags, 0, "mp_lock_open_named");
}

int mp_rlock_open_named(mp_lock **out, const char *name, int flags) {
  return lock_open_named(out, name, flags, 1, "mp_rlock_open_named");
}

int mp_semaphore_open_named(mp_semaphore **out, const char *name, int flags,
                            unsigned value) {
  static const char fn[] = "mp_semaphore_open_named";
  if (value > 0x7fffffffu)
    return mp__error(MP_EINVAL, "%s: value %u is above 2^31-1", fn, value);
  kind k = {MP__T_SEMAPHORE, mp__semaphore_state_size(), fn, "semaphore"};
  mp__seg *seg = NULL;
  int created = 0;
  int rc = named_segment(out, name, flags, &k, &seg, &created);
  if (rc != 0)
    return rc;
  mp_semaphore *s = NULL;
  if (created) {
    rc = mp__semaphore_embed(seg, 0, value, 0, &s);
    mp__seg_unref(seg);
  } else if ((rc = mp__semaphore_open(seg, 0, NULL, 0, NULL, 0,
                                      (void **)&s)) != 0) {
    mp__seg_unref(seg);
  }
  if (rc == 0)
    *out = s;
  return rc;
}
