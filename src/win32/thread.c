/*
 * win32/thread.c - threads and condition variables (platform.h part 8):
 * CreateThread, a join by WaitForSingleObject, condition variables
 * sleeping on the SRW lock of an mpi_mutex.
 */
#include "internal.h"

#include <stdlib.h>

/* ---- threads ---------------------------------------------------------- */

struct mpi_thread {
  HANDLE h;
};

/* What the new thread needs, in a block of its own: the mpi_thread may
 * be detached (freed) before the thread has even begun. */
typedef struct start_block {
  void (*fn)(void *);
  void *arg;
} start_block;

static DWORD WINAPI trampoline(LPVOID p) {
  start_block b = *(start_block *)p;
  free(p);
  b.fn(b.arg);
  return 0;
}

/* MinGW-w64's float formatting (its gdtoa, behind %g and friends with
 * __USE_MINGW_ANSI_STDIO, which this library is built with) registers an
 * atexit handler the first time it runs.  When that first time is in a
 * thread while the main thread runs the atexit handlers -- one of which
 * joins the non-daemonic threads -- the registration waits for the exit
 * lock forever: an error message with a %g (a wait that timed out) is
 * enough.  So format one float before the first thread starts. */
static volatile LONG crt_ready;

static void crt_warm_up(void) {
  if (InterlockedCompareExchange(&crt_ready, 1, 0) == 0) {
    char buf[32];
    snprintf(buf, sizeof buf, "%g", 0.5);
  }
}

int mpi_thread_start(void (*fn)(void *), void *arg, mpi_thread **out) {
  crt_warm_up();
  mpi_thread *t = malloc(sizeof *t);
  start_block *b = malloc(sizeof *b);
  if (t == NULL || b == NULL) {
    free(t);
    free(b);
    return mp__error(MP_ENOMEM, "thread: out of memory");
  }
  b->fn = fn;
  b->arg = arg;
  t->h = CreateThread(NULL, 0, trampoline, b, 0, NULL);
  if (t->h == NULL) {
    int rc = mpi__win_error("cannot start a thread: CreateThread");
    free(t);
    free(b);
    return rc;
  }
  *out = t;
  return 0;
}

void mpi_thread_join(mpi_thread *t) {
  if (t != NULL) {
    WaitForSingleObject(t->h, INFINITE);
    CloseHandle(t->h);
    free(t);
  }
}

void mpi_thread_detach(mpi_thread *t) {
  if (t != NULL) {
    CloseHandle(t->h);
    free(t);
  }
}

int64_t mpi_thread_id(void) { return (int64_t)GetCurrentThreadId(); }

/* ---- condition variables ----------------------------------------------- */

struct mpi_cond {
  CONDITION_VARIABLE cv;
};

int mpi_cond_new(mpi_cond **out) {
  mpi_cond *c = malloc(sizeof *c);
  if (c == NULL)
    return mp__error(MP_ENOMEM, "condition variable: out of memory");
  InitializeConditionVariable(&c->cv);
  *out = c;
  return 0;
}

int mpi_cond_wait(mpi_cond *c, mpi_mutex *m, double timeout) {
  /* The timeout counts on the system's tick count, which is monotonic. */
  if (SleepConditionVariableSRW(&c->cv, &m->lock, mpi__timeout_ms(timeout),
                                0))
    return 0;
  return GetLastError() == ERROR_TIMEOUT ? MP_ETIMEDOUT : 0;
}

void mpi_cond_signal(mpi_cond *c) { WakeConditionVariable(&c->cv); }
void mpi_cond_broadcast(mpi_cond *c) { WakeAllConditionVariable(&c->cv); }
void mpi_cond_free(mpi_cond *c) { free(c); }
