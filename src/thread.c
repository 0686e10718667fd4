/*
 * thread.c - mp_thread: Python's threading.Thread, current_thread,
 * main_thread and active_count over platform.h part 8.
 *
 * Parts:
 *   1. objects, names and the registry of the threads alive
 *   2. the calling thread: the main thread and dummies
 *   3. creating, starting and joining
 *   4. at exit (join the non-daemonic threads) and after fork
 *
 * State.  Everything in an mp_thread that changes (state, refs, ident,
 * exitcode, os, names, registry links) changes under mpi_lock(), so that a
 * fork (whose POSIX handler takes that lock) always sees it whole.  Waits
 * (start waiting for the thread to run, join waiting for it to end) sleep
 * on one condition variable shared by every thread object: a change of
 * state broadcasts it, and each waiter re-checks its own object.  Lock
 * order: wait_mu, then mpi_lock().
 *
 * Lifetime.  A started mp_thread has two references: its creator's and
 * the running thread's.  Whoever drops the last one frees the object and
 * releases the OS thread: the thread itself detaches it; anyone else
 * joins it (it has ended by then).  So mp_thread_free on a running thread
 * leaves the object to the thread, which frees it when it ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "process.h"

enum { T_USER = 1, T_MAIN = 2, T_DUMMY = 3 };
enum { T_NEW = 0, T_STARTING = 1, T_RUNNING = 2, T_ENDED = 3 };

/* Names are kept until the object goes, so that a pointer returned by
 * mp_thread_name stays valid when another thread renames the thread. */
typedef struct name_node {
  struct name_node *next; /* the previous names */
  char *text;             /* the bytes follow the node */
} name_node;

struct mp_thread {
  int kind;
  int state;
  mp_thread_fn fn;
  void *arg;
  mp_target_fn target; /* mp_thread_startf: target(targs) instead */
  mp_args *targs;
  name_node *names;  /* the current name first */
  int daemon;
  int refs;          /* T_USER: creator + running thread */
  int64_t ident;
  int exitcode;
  mpi_thread *os;    /* until joined or detached */
  int finishing;     /* seen by mp__threads_finish */
  int registered;
  mp_thread *next;   /* registry link */
};

/* ---- 1. Objects, names and the registry ------------------------------ */

static mp_thread *registry;        /* threads alive, newest first */
static mp_thread *main_thread;     /* NULL until decided */
static int name_counter;           /* Thread-N and Dummy-N, from 1 */
static mpi_mutex *wait_mu;         /* with wait_cv: state changes */
static mpi_cond *wait_cv;
static MP_THREAD_LOCAL mp_thread *current;

static char main_text[] = "MainThread";
static name_node main_name = {NULL, main_text};
static mp_thread main_obj = {.kind = T_MAIN, .state = T_RUNNING,
                             .names = &main_name};
/* What a thread gets when there is no memory for its dummy. */
static char fallback_text[] = "Dummy";
static name_node fallback_name = {NULL, fallback_text};
static mp_thread dummy_fallback = {.kind = T_DUMMY, .state = T_RUNNING,
                                   .names = &fallback_name, .daemon = 1};

static name_node *name_new(const char *text) {
  size_t n = strlen(text) + 1;
  name_node *node = malloc(sizeof *node + n);
  if (node == NULL)
    return NULL;
  node->next = NULL;
  node->text = (char *)(node + 1);
  memcpy(node->text, text, n);
  return node;
}

/* "Thread-N" or "Dummy-N" with the next number. */
static name_node *name_numbered(const char *prefix) {
  char buf[48];
  mpi_lock();
  int n = ++name_counter;
  mpi_unlock();
  snprintf(buf, sizeof buf, "%s-%d", prefix, n);
  return name_new(buf);
}

static void names_free(name_node *node, name_node *keep) {
  while (node != NULL && node != keep) {
    name_node *next = node->next;
    free(node);
    node = next;
  }
}

static void destroy(mp_thread *t) {
  names_free(t->names, NULL);
  mp_args_free(t->targs);
  free(t);
}

/* Under mpi_lock(). */
static void registry_add(mp_thread *t) {
  if (t->registered)
    return;
  t->next = registry;
  registry = t;
  t->registered = 1;
}

static void registry_remove(mp_thread *t) {
  if (!t->registered)
    return;
  for (mp_thread **pp = &registry; *pp; pp = &(*pp)->next)
    if (*pp == t) {
      *pp = t->next;
      break;
    }
  t->next = NULL;
  t->registered = 0;
}

/* The condition variable of every wait here, made on first use. */
static int sync_ready(void) {
  int rc = 0;
  mpi_lock();
  if (wait_cv == NULL) {
    mpi_mutex *m = NULL;
    mpi_cond *c = NULL;
    rc = mpi_mutex_new(&m);
    if (rc == 0 && (rc = mpi_cond_new(&c)) != 0)
      mpi_mutex_free(m);
    if (rc == 0) {
      wait_mu = m;
      wait_cv = c;
    }
  }
  mpi_unlock();
  return rc;
}

/* Tell the waiters that a thread changed state. */
static void wake_all(void) {
  mpi_lock();
  mpi_mutex *m = wait_mu;
  mpi_cond *c = wait_cv;
  mpi_unlock();
  if (c == NULL)
    return;
  mpi_mutex_lock(m);
  mpi_cond_broadcast(c);
  mpi_mutex_unlock(m);
}

static int state_of(const mp_thread *t) {
  mpi_lock();
  int s = t->state;
  mpi_unlock();
  return s;
}

/* Wait until t's state reaches `until` (T_RUNNING: it runs, or has even
 * ended; T_ENDED), at most timeout seconds.  0 or MP_ETIMEDOUT. */
static int wait_state(mp_thread *t, int until, double timeout) {
  double deadline = timeout < 0 ? -1.0 : mpi_now() + timeout;
  int rc = 0;
  mpi_mutex_lock(wait_mu);
  while (state_of(t) < until) {
    double left = deadline < 0 ? -1.0 : deadline - mpi_now();
    if (deadline >= 0 && left <= 0) {
      rc = MP_ETIMEDOUT;
      break;
    }
    mpi_cond_wait(wait_cv, wait_mu, left);
  }
  mpi_mutex_unlock(wait_mu);
  return rc;
}

int mp_thread_set_name(mp_thread *t, const char *name) {
  if (t == NULL || name == NULL)
    return mp__error(MP_EINVAL, "mp_thread_set_name: NULL argument");
  name_node *node = name_new(name);
  if (node == NULL)
    return mp__error(MP_ENOMEM, "mp_thread_set_name: out of memory");
  mpi_lock();
  node->next = t->names;
  t->names = node;
  mpi_unlock();
  return 0;
}

const char *mp_thread_name(const mp_thread *t) {
  if (t == NULL)
    return NULL;
  mpi_lock();
  const char *s = t->names->text;
  mpi_unlock();
  return s;
}

int mp_thread_set_daemon(mp_thread *t, int daemon) {
  if (t == NULL)
    return mp__error(MP_EINVAL, "mp_thread_set_daemon: NULL thread");
  int rc = 0;
  mpi_lock();
  if (t->state != T_NEW)
    rc = mp__error(MP_ESTATE, "cannot set daemon status of active thread");
  else
    t->daemon = daemon != 0;
  mpi_unlock();
  return rc;
}

int mp_thread_daemon(const mp_thread *t) {
  if (t == NULL)
    return 0;
  mpi_lock();
  int d = t->daemon;
  mpi_unlock();
  return d;
}

/* ---- 2. The calling thread ------------------------------------------- */

/* Make the calling thread the main thread.  Under mpi_lock(). */
static mp_thread *main_init_locked(void) {
  main_obj.kind = T_MAIN;
  main_obj.state = T_RUNNING;
  main_obj.daemon = 0;
  main_obj.ident = mpi_thread_id();
  registry_add(&main_obj);
  main_thread = &main_obj;
  return &main_obj;
}

/* A "Dummy-N" for a thread mproc did not start: daemonic, alive for
 * good (nothing tells us when such a thread ends). */
static mp_thread *dummy_new(void) {
  mp_thread *t = calloc(1, sizeof *t);
  name_node *name = name_numbered("Dummy");
  if (t == NULL || name == NULL) {
    free(t);
    free(name);
    return &dummy_fallback;
  }
  t->kind = T_DUMMY;
  t->state = T_RUNNING;
  t->names = name;
  t->daemon = 1;
  t->ident = mpi_thread_id();
  mpi_lock();
  registry_add(t);
  mpi_unlock();
  return t;
}

mp_thread *mp_current_thread(void) {
  mp_thread *t = current;
  if (t != NULL)
    return t;
  mpi_lock();
  if (main_thread == NULL)
    t = main_init_locked();
  mpi_unlock();
  if (t == NULL)
    t = dummy_new();
  current = t;
  return t;
}

mp_thread *mp_main_thread(void) {
  mpi_lock();
  mp_thread *t = main_thread;
  mpi_unlock();
  if (t != NULL)
    return t;
  mp_current_thread(); /* the first thread to ask becomes the main one */
  mpi_lock();
  t = main_thread;
  mpi_unlock();
  return t != NULL ? t : mp_current_thread();
}

/* mp_main_guard: the calling thread is the program's main thread (unless
 * one was decided already). */
void mp__thread_mark_main(void) {
  if (current != NULL)
    return;
  mpi_lock();
  if (main_thread == NULL)
    current = main_init_locked();
  mpi_unlock();
}

int mp_thread_active_count(void) {
  mp_main_thread();
  int n = 0;
  mpi_lock();
  for (mp_thread *t = registry; t; t = t->next)
    n++;
  mpi_unlock();
  return n;
}

/* ---- 3. Creating, starting and joining ------------------------------- */

/* A new thread object, not started, running neither fn nor a target yet
 * (the caller sets one). */
static int thread_alloc(mp_thread **out) {
  int rc = sync_ready();
  if (rc != 0)
    return rc;
  mp_thread *creator = mp_current_thread();
  mp_thread *t = calloc(1, sizeof *t);
  name_node *name = name_numbered("Thread");
  if (t == NULL || name == NULL) {
    free(t);
    free(name);
    return mp__error(MP_ENOMEM, "mp_thread_new: out of memory");
  }
  t->kind = T_USER;
  t->state = T_NEW;
  t->names = name;
  t->daemon = mp_thread_daemon(creator);
  t->refs = 1;
  *out = t;
  return 0;
}

int mp_thread_new(mp_thread **out, mp_thread_fn fn, void *arg) {
  if (out == NULL || fn == NULL)
    return mp__error(MP_EINVAL, "mp_thread_new: NULL argument");
  *out = NULL;
  int rc = thread_alloc(out);
  if (rc == 0) {
    (*out)->fn = fn;
    (*out)->arg = arg;
  }
  return rc;
}

int mp_thread_startf(mp_thread **out, mp_target_fn target, const char *fmt,
                     ...) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_thread_startf: out is NULL");
  *out = NULL;
  if (target == NULL || fmt == NULL)
    return mp__error(MP_EINVAL, "mp_thread_startf: NULL argument");
  mp_args *a;
  va_list ap;
  va_start(ap, fmt);
  int rc = mp__args_vnew(&a, fmt, &ap);
  va_end(ap);
  mp_thread *t = NULL;
  if (rc == 0)
    rc = thread_alloc(&t);
  if (rc != 0) {
    mp_args_free(a);
    return rc;
  }
  t->target = target;
  t->targs = a;
  if ((rc = mp_thread_start(t)) != 0) {
    mp_thread_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

/* Runs in the new thread. */
static void thread_main(void *arg) {
  mp_thread *t = arg;
  current = t;
  mpi_lock();
  t->ident = mpi_thread_id();
  t->state = T_RUNNING;
  mpi_unlock();
  wake_all(); /* mp_thread_start waits for this */
  int code = t->target != NULL ? t->target(t->targs) : t->fn(t->arg);
  mpi_lock();
  t->exitcode = code;
  t->state = T_ENDED;
  registry_remove(t);
  int last = --t->refs == 0;
  mpi_thread *os = NULL;
  if (last) {
    os = t->os;
    t->os = NULL;
  }
  mpi_unlock();
  wake_all();
  current = NULL;
  if (last) { /* freed while running: nobody will join us */
    mpi_thread_detach(os);
    destroy(t);
  }
}

int mp_thread_start(mp_thread *t) {
  if (t == NULL)
    return mp__error(MP_EINVAL, "mp_thread_start: NULL thread");
  int rc = sync_ready(); /* made again in a fork child */
  if (rc != 0)
    return rc;
  mpi_lock();
  int fresh = t->kind == T_USER && t->state == T_NEW;
  if (fresh) {
    t->state = T_STARTING;
    t->refs++; /* the running thread's */
    registry_add(t);
  }
  mpi_unlock();
  if (!fresh)
    return mp__error(MP_ESTATE, "threads can only be started once");
  mp__at_exit_install(); /* non-daemonic threads are joined at exit */
  mpi_thread *os = NULL;
  rc = mpi_thread_start(thread_main, t, &os);
  mpi_lock();
  if (rc != 0) {
    registry_remove(t);
    t->refs--;
    t->state = T_NEW; /* nothing started: it may be tried again */
  } else {
    t->os = os;
  }
  mpi_unlock();
  if (rc != 0)
    return rc;
  /* Like Python's start: return once the thread runs, so that its ident
   * is known and is_alive is true. */
  wait_state(t, T_RUNNING, MP_FOREVER);
  return 0;
}

int mp_thread_join(mp_thread *t, double timeout) {
  if (t == NULL)
    return mp__error(MP_EINVAL, "mp_thread_join: NULL thread");
  int rc = mp__check_timeout(timeout);
  if (rc != 0)
    return rc;
  if (t == current)
    return mp__error(MP_EINVAL, "cannot join current thread");
  if (t->kind == T_DUMMY)
    return mp__error(MP_ESTATE, "cannot join a dummy thread (one mproc did "
                                "not start)");
  if (state_of(t) == T_NEW)
    return mp__error(MP_ESTATE, "cannot join thread before it is started");
  if ((rc = sync_ready()) != 0)
    return rc;
  if (wait_state(t, T_ENDED, timeout) != 0)
    return mp__error(MP_ETIMEDOUT, "join timed out after %g s", timeout);
  /* Release the OS thread now (it has ended or is just returning). */
  mpi_lock();
  mpi_thread *os = t->os;
  t->os = NULL;
  mpi_unlock();
  mpi_thread_join(os);
  return 0;
}

int mp_thread_is_alive(mp_thread *t) {
  if (t == NULL)
    return 0;
  int s = state_of(t);
  return s == T_STARTING || s == T_RUNNING;
}

int64_t mp_thread_ident(const mp_thread *t) {
  if (t == NULL)
    return 0;
  mpi_lock();
  int64_t id = t->ident;
  mpi_unlock();
  return id;
}

int mp_thread_exitcode(mp_thread *t, int *code) {
  if (t == NULL || code == NULL)
    return mp__error(MP_EINVAL, "mp_thread_exitcode: NULL argument");
  int rc = 0;
  mpi_lock();
  if (t->kind == T_USER && t->state == T_ENDED)
    *code = t->exitcode;
  else
    rc = mp__error(MP_ESTATE, "thread has not finished (no exit code yet)");
  mpi_unlock();
  return rc;
}

void mp_thread_free(mp_thread *t) {
  if (t == NULL || t->kind != T_USER || t == current)
    return;
  mpi_lock();
  mpi_thread *os = NULL;
  if (t->state == T_ENDED) { /* join it; running, it detaches itself */
    os = t->os;
    t->os = NULL;
  }
  int last = --t->refs == 0;
  mpi_unlock();
  mpi_thread_join(os);
  if (last)
    destroy(t);
}

/* ---- 4. At exit and after fork ---------------------------------------- */

/* Python's threading._shutdown: the main thread counts as ended (threads
 * joining it wake up), then every non-daemonic thread still running is
 * joined, those they start included.  The wait is on the OS thread
 * itself, which also returns for a thread the OS has already ended (a
 * Windows DLL's exit work runs after ExitProcess ended the other
 * threads). */
void mp__threads_finish(void) {
  mp_thread *self = current;
  mpi_lock();
  int any = main_thread != NULL || registry != NULL;
  if (main_thread != NULL) {
    main_thread->state = T_ENDED;
    registry_remove(main_thread);
  }
  mpi_unlock();
  if (!any)
    return;
  wake_all();
  for (;;) {
    mpi_lock();
    mp_thread *t = registry;
    while (t != NULL && (t->kind != T_USER || t->daemon || t == self ||
                         t->finishing))
      t = t->next;
    mpi_thread *os = NULL;
    if (t != NULL) {
      t->finishing = 1;
      t->refs++;
      os = t->os;
      t->os = NULL;
    }
    mpi_unlock();
    if (t == NULL)
      break;
    if (os != NULL)
      mpi_thread_join(os);
    else if (wait_cv != NULL)
      wait_state(t, T_ENDED, MP_FOREVER); /* still starting */
    mpi_lock();
    registry_remove(t);
    int last = --t->refs == 0;
    mpi_unlock();
    if (last)
      destroy(t);
  }
}

/* In a forked child, which has only the thread that forked: the other
 * threads have ended here (their OS threads are not ours to join), and
 * the forking thread is the main thread (named "MainThread" unless it is
 * an mp_thread, which keeps its name, as in Python). */
void mp__threads_fork_child(void) {
  mp_thread *self = current;
  mpi_lock();
  /* Another thread may have held these at the fork: make new ones. */
  wait_mu = NULL;
  wait_cv = NULL;
  for (mp_thread *t = registry, *next; t; t = next) {
    next = t->next;
    t->next = NULL;
    t->registered = 0;
    if (t != self) {
      t->state = T_ENDED;
      t->os = NULL;
    }
  }
  registry = NULL;
  if (self == NULL || self == &main_obj || self == &dummy_fallback) {
    if (main_obj.names != &main_name) { /* renamed in the parent */
      names_free(main_obj.names, &main_name);
      main_obj.names = &main_name;
    }
    self = main_init_locked();
  } else {
    if (self->kind == T_DUMMY) {
      name_node *node = name_new(main_text);
      if (node != NULL) {
        node->next = self->names;
        self->names = node;
      }
      self->kind = T_MAIN;
      self->daemon = 0;
    }
    self->ident = mpi_thread_id();
    self->state = T_RUNNING;
    self->os = NULL;
    registry_add(self);
    main_thread = self;
  }
  mpi_unlock();
  current = self;
  sync_ready();
}
