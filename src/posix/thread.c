/*
 * posix/thread.c - threads and condition variables (platform.h part 8)
 * on pthreads.
 *
 * Condition variables time out on the monotonic clock: CLOCK_MONOTONIC
 * set with pthread_condattr_setclock, or on macOS (which has no
 * setclock) a relative wait.  Thread ids: gettid on Linux,
 * pthread_threadid_np on macOS, pthread_getthreadid_np on FreeBSD,
 * _lwp_self on NetBSD, getthrid on OpenBSD, else a number drawn once per
 * thread from a process-wide counter.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
#  define _DARWIN_C_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__)
#  include <sys/syscall.h>
#elif defined(__FreeBSD__)
#  include <pthread_np.h>
#elif defined(__NetBSD__)
#  include <lwp.h>
#endif

#include "internal.h"

/* ---- threads ---------------------------------------------------------- */

struct mpi_thread {
  pthread_t t;
};

/* What the new thread needs, in a block of its own: the mpi_thread may
 * be detached (freed) before the thread has even begun. */
typedef struct start_block {
  void (*fn)(void *);
  void *arg;
} start_block;

static void *trampoline(void *p) {
  start_block b = *(start_block *)p;
  free(p);
  b.fn(b.arg);
  return NULL;
}

int mpi_thread_start(void (*fn)(void *), void *arg, mpi_thread **out) {
  mpi_thread *t = malloc(sizeof *t);
  start_block *b = malloc(sizeof *b);
  if (t == NULL || b == NULL) {
    free(t);
    free(b);
    return mp__error(MP_ENOMEM, "thread: out of memory");
  }
  b->fn = fn;
  b->arg = arg;
  int err = pthread_create(&t->t, NULL, trampoline, b);
  if (err != 0) {
    free(t);
    free(b);
    errno = err;
    return mpi__errno_error("cannot start a thread: pthread_create");
  }
  *out = t;
  return 0;
}

void mpi_thread_join(mpi_thread *t) {
  if (t != NULL) {
    pthread_join(t->t, NULL);
    free(t);
  }
}

void mpi_thread_detach(mpi_thread *t) {
  if (t != NULL) {
    pthread_detach(t->t);
    free(t);
  }
}

#if !defined(__linux__) && !defined(__APPLE__) && !defined(__FreeBSD__) && \
    !defined(__NetBSD__) && !defined(__OpenBSD__)
static MP_THREAD_LOCAL int64_t fallback_id;
static int64_t fallback_next;
#endif

int64_t mpi_thread_id(void) {
#if defined(__linux__)
  return (int64_t)syscall(SYS_gettid);
#elif defined(__APPLE__)
  uint64_t id = 0;
  pthread_threadid_np(NULL, &id);
  return (int64_t)id;
#elif defined(__FreeBSD__)
  return (int64_t)pthread_getthreadid_np();
#elif defined(__NetBSD__)
  return (int64_t)_lwp_self();
#elif defined(__OpenBSD__)
  return (int64_t)getthrid();
#else
  if (fallback_id == 0) {
    mpi_lock();
    fallback_id = ++fallback_next;
    mpi_unlock();
  }
  return fallback_id;
#endif
}

/* ---- condition variables ----------------------------------------------- */

struct mpi_cond {
  pthread_cond_t c;
};

int mpi_cond_new(mpi_cond **out) {
  mpi_cond *c = malloc(sizeof *c);
  if (c == NULL)
    return mp__error(MP_ENOMEM, "condition variable: out of memory");
  pthread_condattr_t a;
  pthread_condattr_init(&a);
#if !defined(__APPLE__)
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
#endif
  int err = pthread_cond_init(&c->c, &a);
  pthread_condattr_destroy(&a);
  if (err != 0) {
    free(c);
    errno = err;
    return mpi__errno_error("pthread_cond_init");
  }
  *out = c;
  return 0;
}

/* Longer waits are cut to this (callers re-check and wait again). */
#define MAX_WAIT 1e8

int mpi_cond_wait(mpi_cond *c, mpi_mutex *m, double timeout) {
  if (timeout < 0) {
    pthread_cond_wait(&c->c, &m->m);
    return 0;
  }
  if (timeout > MAX_WAIT)
    timeout = MAX_WAIT;
  struct timespec ts;
  int err;
#if defined(__APPLE__)
  ts.tv_sec = (time_t)timeout;
  ts.tv_nsec = (long)((timeout - (double)ts.tv_sec) * 1e9);
  err = pthread_cond_timedwait_relative_np(&c->c, &m->m, &ts);
#else
  clock_gettime(CLOCK_MONOTONIC, &ts);
  time_t sec = (time_t)timeout;
  long nsec = ts.tv_nsec + (long)((timeout - (double)sec) * 1e9);
  ts.tv_sec += sec + nsec / 1000000000L;
  ts.tv_nsec = nsec % 1000000000L;
  err = pthread_cond_timedwait(&c->c, &m->m, &ts);
#endif
  return err == ETIMEDOUT ? MP_ETIMEDOUT : 0;
}

void mpi_cond_signal(mpi_cond *c) { pthread_cond_signal(&c->c); }
void mpi_cond_broadcast(mpi_cond *c) { pthread_cond_broadcast(&c->c); }

void mpi_cond_free(mpi_cond *c) {
  if (c != NULL) {
    pthread_cond_destroy(&c->c);
    free(c);
  }
}
