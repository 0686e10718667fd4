/*
 * named_peer.c - a program of its own that opens named locks and
 * semaphores by name (used by test_named_sync.c): nothing is passed to
 * it but names.
 *
 *     named_peer count LOCK SHM N    N increments of the int64_t at the
 *                                    start of mp_shm SHM, each under the
 *                                    named Lock LOCK, read and written
 *                                    apart (not atomic)
 *     named_peer hold LOCK SEM       take the named Lock LOCK, release the
 *                                    named Semaphore SEM (to say so), then
 *                                    block until killed
 *
 * Exit status: 0 done; 2 usage; 3 an mproc call failed (the error name
 * and message on stderr).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(_WIN32)
#  include <windows.h>
#else
#  include <unistd.h>
#endif

#include "mproc.h"

static int fail(const char *step, int rc) {
  fprintf(stderr, "named_peer: %s: %s (%s)\n", step, mp_err_name(rc),
          mp_last_error_message());
  return 3;
}

static int count(const char *lock_name, const char *shm_name, long n) {
  mp_lock *l = NULL;
  mp_shm *s = NULL;
  int rc = mp_lock_open_named(&l, lock_name, 0);
  if (rc != 0)
    return fail("open the lock", rc);
  if ((rc = mp_shm_open(&s, shm_name)) != 0)
    return fail("open the segment", rc);
  volatile int64_t *x = mp_shm_buf(s);
  for (long i = 0; i < n; i++) {
    if ((rc = mp_lock_acquire(l, 30.0)) != 0)
      return fail("acquire", rc);
    int64_t y = *x;
    *x = y + 1;
    if ((rc = mp_lock_release(l)) != 0)
      return fail("release", rc);
  }
  mp_shm_free(s);
  mp_lock_free(l);
  return 0;
}

static int hold(const char *lock_name, const char *sem_name) {
  mp_lock *l = NULL;
  mp_semaphore *said = NULL;
  int rc = mp_lock_open_named(&l, lock_name, 0);
  if (rc != 0)
    return fail("open the lock", rc);
  if ((rc = mp_semaphore_open_named(&said, sem_name, 0, 0)) != 0)
    return fail("open the semaphore", rc);
  if ((rc = mp_lock_acquire(l, 30.0)) != 0)
    return fail("acquire", rc);
  if ((rc = mp_semaphore_release(said)) != 0)
    return fail("release the semaphore", rc);
  for (;;) {
#if defined(_WIN32)
    Sleep(INFINITE);
#else
    pause();
#endif
  }
}

int main(int argc, char **argv) {
#if defined(_WIN32)
  SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX);
#endif
  MP_MAIN_GUARD(argc, argv);
  if (argc == 5 && strcmp(argv[1], "count") == 0)
    return count(argv[2], argv[3], atol(argv[4]));
  if (argc == 4 && strcmp(argv[1], "hold") == 0)
    return hold(argv[2], argv[3]);
  fprintf(stderr, "usage: named_peer count LOCK SHM N | hold LOCK SEM\n");
  return 2;
}
