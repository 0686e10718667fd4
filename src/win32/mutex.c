/*
 * win32/mutex.c - object mutexes (platform.h part 1) on slim
 * reader/writer locks, used exclusively.
 */
#include "internal.h"

#include <stdlib.h>

/* struct mpi_mutex is in internal.h (thread.c waits on it). */

int mpi_mutex_new(mpi_mutex **out) {
  mpi_mutex *m = malloc(sizeof *m);
  if (m == NULL)
    return mp__error(MP_ENOMEM, "mutex: out of memory");
  InitializeSRWLock(&m->lock);
  *out = m;
  return 0;
}

void mpi_mutex_lock(mpi_mutex *m) { AcquireSRWLockExclusive(&m->lock); }
void mpi_mutex_unlock(mpi_mutex *m) { ReleaseSRWLockExclusive(&m->lock); }
void mpi_mutex_free(mpi_mutex *m) { free(m); }
