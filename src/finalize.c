/*
 * finalize.c - Python's multiprocessing.util.Finalize and
 * register_after_fork: callbacks run at this process's exit (by exit
 * priority) and in every child before its target.
 *
 * Finalizers belong to the process that made them: a child starts with
 * none (Python clears the registry in BaseProcess._bootstrap).  After-fork
 * callbacks are inherited: a forked child has its parent's, a spawned
 * child (and the fork server's children) the ones registered by the code
 * above MP_MAIN_GUARD, which ran again in it.
 */
#include <stdlib.h>

#include "internal.h"
#include "process.h"

struct mp_finalizer {
  void (*fn)(void *);
  void *arg;
  int priority;
  int at_exit;    /* has an exit priority (Python: not None) */
  uint64_t seq;   /* creation order: later first among equals */
  mp_finalizer *next;
};

typedef struct after_fork {
  void (*fn)(void *);
  void *arg;
  struct after_fork *next;
} after_fork;

static mp_finalizer *finalizers; /* under mpi_lock */
static uint64_t finalizer_seq;
static after_fork *after_forkers, *after_forkers_tail;

int mp_finalize(mp_finalizer **out, void (*fn)(void *), void *arg,
                int exitpriority) {
  if (out != NULL)
    *out = NULL;
  if (fn == NULL)
    return mp__error(MP_EINVAL, "mp_finalize: NULL callback");
  if (out == NULL && exitpriority == MP_FINALIZE_NO_EXIT)
    return mp__error(MP_EINVAL, "mp_finalize: a finalizer that never runs "
                                "(no exit priority and no handle)");
  mp_finalizer *f = calloc(1, sizeof *f);
  if (f == NULL)
    return mp__error(MP_ENOMEM, "mp_finalize: out of memory");
  f->fn = fn;
  f->arg = arg;
  f->at_exit = exitpriority != MP_FINALIZE_NO_EXIT;
  f->priority = exitpriority;
  mp__at_exit_install();
  mpi_lock();
  f->seq = ++finalizer_seq;
  f->next = finalizers;
  finalizers = f;
  mpi_unlock();
  if (out != NULL)
    *out = f;
  return 0;
}

/* Take f out of the registry: 1 if it was there (pending). */
static int unlink_finalizer(mp_finalizer *f) {
  int found = 0;
  mpi_lock();
  for (mp_finalizer **pp = &finalizers; *pp; pp = &(*pp)->next)
    if (*pp == f) {
      *pp = f->next;
      found = 1;
      break;
    }
  mpi_unlock();
  return found;
}

int mp_finalizer_call(mp_finalizer *f) {
  if (f == NULL)
    return mp__error(MP_EINVAL, "mp_finalizer_call: NULL finalizer");
  if (!unlink_finalizer(f))
    return mp__error(MP_ESTATE, "mp_finalizer_call: not pending here");
  f->fn(f->arg);
  free(f);
  return 0;
}

int mp_finalizer_cancel(mp_finalizer *f) {
  if (f == NULL)
    return mp__error(MP_EINVAL, "mp_finalizer_cancel: NULL finalizer");
  if (!unlink_finalizer(f))
    return mp__error(MP_ESTATE, "mp_finalizer_cancel: not pending here");
  free(f);
  return 0;
}

/* Run the pending finalizers with an exit priority >= min (all of those
 * with one when all_ is set), highest priority first, later-made first
 * among equals: Python's _run_finalizers(minpriority).  Each is taken
 * out of the registry before it runs, so one may register or cancel
 * others. */
static void run_finalizers(int min, int all_) {
  for (;;) {
    mpi_lock();
    mp_finalizer **best = NULL;
    for (mp_finalizer **pp = &finalizers; *pp; pp = &(*pp)->next) {
      mp_finalizer *f = *pp;
      if (!f->at_exit || (!all_ && f->priority < min))
        continue;
      if (best == NULL || f->priority > (*best)->priority ||
          (f->priority == (*best)->priority && f->seq > (*best)->seq))
        best = pp;
    }
    mp_finalizer *f = best ? *best : NULL;
    if (f != NULL)
      *best = f->next;
    mpi_unlock();
    if (f == NULL)
      return;
    f->fn(f->arg);
    free(f);
  }
}

void mp__finalizers_run(int min) { run_finalizers(min, 0); }
void mp__finalizers_run_all(void) { run_finalizers(0, 1); }

void mp__finalizers_forget(void) {
  mpi_lock();
  mp_finalizer *f = finalizers;
  finalizers = NULL;
  mpi_unlock();
  while (f != NULL) {
    mp_finalizer *next = f->next;
    free(f);
    f = next;
  }
}

int mp_register_after_fork(void (*fn)(void *), void *arg) {
  if (fn == NULL)
    return mp__error(MP_EINVAL, "mp_register_after_fork: NULL callback");
  after_fork *a = calloc(1, sizeof *a);
  if (a == NULL)
    return mp__error(MP_ENOMEM, "mp_register_after_fork: out of memory");
  a->fn = fn;
  a->arg = arg;
  mpi_lock();
  if (after_forkers_tail != NULL)
    after_forkers_tail->next = a;
  else
    after_forkers = a;
  after_forkers_tail = a;
  mpi_unlock();
  return 0;
}

/* In a child, before its target: a fresh finalizer registry, then the
 * after-fork callbacks in the order they were registered. */
void mp__child_hooks(void) {
  mp__finalizers_forget();
  mpi_lock();
  after_fork *a = after_forkers;
  mpi_unlock();
  for (; a != NULL; a = a->next)
    a->fn(a->arg);
}
