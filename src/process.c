/*
 * process.c - mp_process: the parent's view of a child, the registry of
 * running children, this process and its parent, and exit behaviour.
 *
 * Parts:
 *   1. the process object and its attributes
 *   2. start (building the bootstrap tuple) and run
 *   3. join, poll, terminate, exitcode, free, wait
 *   4. the registry, active children and what happens at exit
 *   5. this process, its parent, ids and cpu counts
 *
 * The child side (the main guard, running the target) is in boot.c; start
 * methods and contexts in context.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "process.h"

/* ---- 1. The object -------------------------------------------------- */

static int new_process(mp_process **out) {
  mp_process *p = calloc(1, sizeof *p);
  if (p == NULL)
    return mp__error(MP_ENOMEM, "mp_process: out of memory");
  mp_process *me = mp_current_process();
  mpi_lock();
  int n = ++me->child_counter;
  char ident[MP__IDENT_CAP + 16];
  if (me->identity[0])
    snprintf(ident, sizeof ident, "%s:%d", me->identity, n);
  else
    snprintf(ident, sizeof ident, "%d", n);
  mpi_unlock();
  mp__strlcpy(p->identity, ident, sizeof p->identity);
  char name[MP__IDENT_CAP + 32];
  snprintf(name, sizeof name, "Process-%s", ident);
  p->name = mp__strdup(name);
  if (p->name == NULL) {
    free(p);
    return mp__error(MP_ENOMEM, "mp_process: out of memory");
  }
  p->kind = MP__KIND_TARGET;
  p->creator_pid = mp_getpid();
  p->daemon = me->daemon;
  memcpy(p->authkey, me->authkey, me->authkey_len);
  p->authkey_len = me->authkey_len;
  p->exitcode = 0;
  *out = p;
  return 0;
}

int mp_process_new(mp_process **out, mp_target_fn target,
                   const mp_args *args) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_process_new: out is NULL");
  *out = NULL;
  if (target == NULL)
    return mp__error(MP_EINVAL, "mp_process_new: target is NULL");
  mp_process *p;
  int rc = new_process(&p);
  if (rc != 0)
    return rc;
  p->target = target;
  if (args != NULL)
    rc = mp_args_copy(&p->args, args);
  else
    rc = mp_args_new(&p->args);
  if (rc != 0) {
    mp_process_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

int mp_process_startf(mp_process **out, mp_target_fn target,
                      const char *fmt, ...) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_process_startf: out is NULL");
  *out = NULL;
  mp_args *a;
  va_list ap;
  va_start(ap, fmt);
  int rc = mp__args_vnew(&a, fmt, &ap);
  va_end(ap);
  mp_process *p = NULL;
  if (rc == 0)
    rc = mp_process_new(&p, target, a);
  mp_args_free(a);
  if (rc == 0 && (rc = mp_process_start(p)) != 0) {
    char msg[512];
    mp__strlcpy(msg, mp_last_error_message(), sizeof msg);
    mp_process_free(p);
    return mp__error(rc, "%s", msg);
  }
  if (rc == 0)
    *out = p;
  return rc;
}

int mp_process_new_subclass(void *self, size_t size, mp_run_fn run) {
  if (self == NULL || run == NULL)
    return mp__error(MP_EINVAL, "mp_process_new_subclass: NULL argument");
  if (size < sizeof(mp_process *))
    return mp__error(MP_EINVAL,
                     "mp_process_new_subclass: the struct must start with "
                     "an mp_process * member (size %zu is too small)",
                     size);
  mp_process *p;
  int rc = new_process(&p);
  if (rc != 0)
    return rc;
  p->kind = MP__KIND_SUBCLASS;
  p->run = run;
  p->self = self;
  p->self_size = size;
  memcpy(self, &p, sizeof p);
  return 0;
}

int mp_process_set_name(mp_process *p, const char *name) {
  if (p == NULL || name == NULL)
    return mp__error(MP_EINVAL, "mp_process_set_name: NULL argument");
  char *copy = mp__strdup(name);
  if (copy == NULL)
    return mp__error(MP_ENOMEM, "mp_process_set_name: out of memory");
  mpi_lock();
  char *old = p->name_borrowed ? NULL : p->name;
  p->name = copy;
  p->name_borrowed = 0;
  mpi_unlock();
  free(old);
  return 0;
}

const char *mp_process_name(const mp_process *p) {
  return p ? p->name : NULL;
}

int mp_process_set_daemon(mp_process *p, int daemon) {
  if (p == NULL)
    return mp__error(MP_EINVAL, "mp_process_set_daemon: NULL process");
  if (p->state != MP__NEW || p->kind == MP__KIND_SELF ||
      p->kind == MP__KIND_PARENT)
    return mp__error(MP_ESTATE, "process has already started");
  p->daemon = daemon != 0;
  return 0;
}

int mp_process_daemon(const mp_process *p) { return p ? p->daemon : 0; }

int mp_process_set_context(mp_process *p, mp_context *ctx) {
  if (p == NULL)
    return mp__error(MP_EINVAL, "mp_process_set_context: NULL process");
  if (p->state != MP__NEW)
    return mp__error(MP_ESTATE, "process has already started");
  p->ctx = ctx;
  return 0;
}

int mp_process_set_authkey(mp_process *p, const void *key, size_t n) {
  if (p == NULL || key == NULL || n == 0 || n > MP__AUTHKEY_CAP)
    return mp__error(MP_EINVAL, "authkey must be 1 to %d bytes",
                     MP__AUTHKEY_CAP);
  mpi_lock();
  memcpy(p->authkey, key, n);
  p->authkey_len = n;
  mpi_unlock();
  return 0;
}

size_t mp_process_authkey(const mp_process *p, void *buf, size_t cap) {
  if (p == NULL)
    return 0;
  if (buf != NULL)
    memcpy(buf, p->authkey, cap < p->authkey_len ? cap : p->authkey_len);
  return p->authkey_len;
}

int64_t mp_process_pid(const mp_process *p) { return p ? p->pid : 0; }

mp_handle mp_process_sentinel(const mp_process *p) {
  if (p == NULL || p->child == NULL)
    return MP_INVALID_HANDLE;
  return (mp_handle)mpi_child_sentinel(p->child);
}

/* ---- 2. Start and run --------------------------------------------- */

/* The bootstrap tuple a child decodes (see boot.c for the reader). */
static int build_boot(mp_process *p, const mp_args *args, mp_args **out) {
  mp_process *me = mp_current_process();
  void (*fn)(void) = p->kind == MP__KIND_TARGET ? (void (*)(void))p->target
                                                 : (void (*)(void))p->run;
  char module[1024];
  uint64_t offset = 0;
  int rc = mpi_fn_encode(fn, module, sizeof module, &offset);
  if (rc != 0)
    return rc;
  const void *payload;
  size_t payload_n;
  if (p->kind == MP__KIND_TARGET)
    payload = mp__args_data(args, &payload_n);
  else {
    payload = p->self;
    payload_n = p->self_size;
  }
  mp_args *b;
  rc = mp_args_new(&b);
  if (rc != 0)
    return rc;
  mpi_lock();
  rc = mp_args_add_str(b, MP__BOOT_MAGIC);
  if (rc == 0) rc = mp_args_add_str(b, p->name);
  if (rc == 0) rc = mp_args_add_int(b, p->daemon);
  if (rc == 0) rc = mp_args_add_str(b, p->identity);
  if (rc == 0) rc = mp_args_add_bytes(b, p->authkey, p->authkey_len);
  if (rc == 0) rc = mp_args_add_int(b, mp_getpid());
  if (rc == 0) rc = mp_args_add_str(b, me->name);
  /* The process's own method (its context's), not our default: the
   * child's mp_get_start_method() reports how it was started. */
  if (rc == 0) {
    mp_context *own = p->ctx;
    if (own == NULL)
      rc = mp_get_context(NULL, &own);
    if (rc == 0)
      rc = mp_args_add_str(b, mp_context_start_method(own));
  }
  if (rc == 0) rc = mp_args_add_int(b, p->kind);
  if (rc == 0) rc = mp_args_add_str(b, module);
  if (rc == 0) rc = mp_args_add_int(b, (int64_t)offset);
  if (rc == 0) rc = mp_args_add_bytes(b, payload, payload_n);
  if (rc == 0) rc = mp_args_add_str(b, mp__executable());
  if (rc == 0) rc = mp_args_add_int(b, mp_log_level());
  mpi_unlock();
  if (rc != 0) {
    mp_args_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

static int check_can_start(mp_process *p) {
  if (p == NULL)
    return mp__error(MP_EINVAL, "mp_process_start: NULL process");
  if (p->kind == MP__KIND_SELF || p->kind == MP__KIND_PARENT)
    return mp__error(MP_EINVAL, "cannot start the current or parent process");
  if (mp_current_process()->daemon)
    return mp__error(MP_EDAEMONIC,
                     "daemonic processes are not allowed to have children");
  if (mpi_boot_pending())
    return mp__error(
        MP_EBOOTSTRAP,
        "An attempt has been made to start a new process before the current "
        "process has finished its bootstrapping phase. This probably means "
        "that you are not using fork to start your child processes and you "
        "have forgotten to call MP_MAIN_GUARD(argc, argv) at the top of "
        "main(), before any code that starts processes.");
  return 0;
}

/* Start, once the process has been claimed (state MP__STARTING). */
static int start_claimed(mp_process *p);

int mp_process_start(mp_process *p) {
  int rc = check_can_start(p);
  if (rc != 0)
    return rc;
  /* Claim it, so that two threads cannot both start it. */
  mpi_lock();
  int fresh = p->state == MP__NEW;
  if (fresh)
    p->state = MP__STARTING;
  mpi_unlock();
  if (!fresh)
    return mp__error(MP_ESTATE, "cannot start a process twice");
  rc = start_claimed(p);
  if (rc != 0) {
    mpi_lock();
    p->state = MP__NEW; /* nothing started: it may be tried again */
    mpi_unlock();
  }
  return rc;
}

static int start_claimed(mp_process *p) {
  int rc;
  int method = mp__context_method(p->ctx);
  if (method != MPI_FORK && !mp__guard_called())
    return mp__error(
        MP_EBOOTSTRAP,
        "the %s start method re-runs this program, which must call "
        "MP_MAIN_GUARD(argc, argv) at the top of main() before it starts "
        "any process",
        method == MPI_SPAWN ? "spawn" : "forkserver");
  /* A forked child reads everything from its copy of *p; the others get
   * the bootstrap tuple. */
  mp_args *boot = NULL, *live = NULL;
  const mp_args *args = p->args;
  if (method != MPI_FORK && p->kind == MP__KIND_TARGET &&
      mp__args_has_objects(p->args)) {
    /* The objects as they are now, like Python pickling at start: one
     * closed since mp_process_new is MP_ECLOSED here. */
    if ((rc = mp__args_rebuild(&live, p->args)) != 0)
      return rc;
    args = live;
  }
  if (method != MPI_FORK && (rc = build_boot(p, args, &boot)) != 0) {
    mp_args_free(live);
    return rc;
  }
  mpi_start_info si;
  memset(&si, 0, sizeof si);
  si.method = method;
  si.daemon = p->daemon;
  if (boot != NULL)
    si.boot = mp__args_data(boot, &si.boot_len);
  si.fork_main = mp__fork_child_main;
  si.fork_arg = p;
  si.exe = mp__executable()[0] ? mp__executable() : NULL;
  si.argv = mp__guard_argv();
  if (p->kind == MP__KIND_TARGET && method != MPI_FORK)
    si.handles = mp__args_handles(args, &si.n_handles);
  mp__at_exit_install();
  fflush(NULL); /* nothing buffered is printed twice, or out of order */
  rc = mpi_child_start(&si, &p->child);
  if (rc == 0) {
    mpi_lock();
    p->pid = mpi_child_pid(p->child);
    p->state = MP__RUNNING;
    mp__registry_add(p);
    mpi_unlock();
  }
  mp_args_free(boot);
  mp_args_free(live);
  return rc;
}

int mp_process_run(mp_process *p) {
  if (p == NULL)
    return mp__error(MP_EINVAL, "mp_process_run: NULL process");
  if (p->kind == MP__KIND_TARGET)
    return p->target(p->args);
  if (p->kind == MP__KIND_SUBCLASS)
    return p->run(p->self);
  return mp__error(MP_EINVAL, "cannot run the current or parent process");
}

/* ---- 3. Join, poll, terminate ----------------------------------------- */

static void set_error_text(mp_process *p, const char *text) {
  free(p->error);
  p->error = text ? mp__strdup(text) : NULL;
}

/* Record what mpi_child_wait collected.  Called with the lock held. */
static void record_exit(mp_process *p, mpi_exit_info *info) {
  p->state = MP__ENDED;
  p->exitcode = info->exitcode;
  /* A child killed (by us or a signal) before it reached the guard did
   * not fail to bootstrap: it was killed. */
  p->boot_failed = !info->booted && !p->signalled && info->exitcode >= 0;
  mp__registry_remove(p);
  char text[600];
  text[0] = '\0';
  mp_args *rec = NULL;
  if (info->record != NULL &&
      mp__args_from_bytes(&rec, info->record, info->record_len) == 0 &&
      mp_args_count(rec) >= 2 && mp_args_str(rec, 1) != NULL &&
      info->exitcode != 0)
    mp__strlcpy(text, mp_args_str(rec, 1), sizeof text);
  mp_args_free(rec);
  free(info->record);
  if (p->boot_failed)
    snprintf(text, sizeof text,
             "the spawned child (pid %lld) exited with code %d before "
             "reaching MP_MAIN_GUARD(argc, argv): every program that "
             "spawns must call it in main() on every path",
             (long long)p->pid, p->exitcode);
  else if (text[0] == '\0' && p->exitcode < 0)
    snprintf(text, sizeof text, "killed by signal %d (%s)", -p->exitcode,
             mpi_signal_name(-p->exitcode));
  set_error_text(p, text[0] ? text : NULL);
}

/* Collect the child if it has ended, waiting at most `timeout`.
 * 0 when ended; MP_ETIMEDOUT while running. */
int mp__process_poll(mp_process *p, double timeout) {
  int rc;
  mpi_lock();
  if (p->state == MP__ENDED) {
    mpi_unlock();
    return 0;
  }
  mpi_exit_info info;
  memset(&info, 0, sizeof info);
  rc = mpi_child_wait(p->child, timeout, &info);
  if (rc == 0)
    record_exit(p, &info);
  mpi_unlock();
  return rc;
}

int mp_process_join(mp_process *p, double timeout) {
  if (p == NULL)
    return mp__error(MP_EINVAL, "mp_process_join: NULL process");
  int rc = mp__check_timeout(timeout);
  if (rc != 0)
    return rc;
  if (p->kind == MP__KIND_SELF)
    return mp__error(MP_EINVAL, "can only join a child process, not oneself");
  if (p->kind == MP__KIND_PARENT)
    return mpi_parent_wait(p->pid, timeout);
  if (p->state < MP__RUNNING)
    return mp__error(MP_ESTATE, "can only join a started process");
  double deadline = timeout < 0 ? -1.0 : mpi_now() + timeout;
  mpi_fd s = mpi_child_sentinel(p->child);
  for (;;) {
    /* Wait without the lock, then collect with it: once the sentinel is
     * ready the child is exiting, and a short grace lets it finish. */
    double left = deadline < 0 ? -1.0 : deadline - mpi_now();
    if (left < 0 && deadline >= 0)
      left = 0;
    int ready = 0;
    if (p->state != MP__ENDED) {
      rc = mpi_wait(&s, 1, left, NULL);
      if (rc < 0 && rc != MP_ETIMEDOUT)
        return rc;
      ready = rc > 0;
    }
    rc = mp__process_poll(p, ready ? MP__REAP_GRACE : 0.0);
    if (rc == 0)
      break;
    if (rc != MP_ETIMEDOUT)
      return rc;
    if (deadline >= 0 && mpi_now() >= deadline)
      return mp__error(MP_ETIMEDOUT, "join timed out after %g s", timeout);
  }
  if (p->boot_failed)
    return mp__error(MP_EBOOTSTRAP, "%s", p->error);
  return 0;
}

/* Python's repr(process), e.g. "<Process name='Process-1' pid=4242
 * parent=4241 stopped exitcode=-SIGTERM daemon>". */
int mp_process_repr(mp_process *p, char *buf, size_t cap) {
  if (buf == NULL && cap > 0)
    return mp__error(MP_EINVAL, "mp_process_repr: NULL buffer");
  if (p == NULL)
    return mp__error(MP_EINVAL, "mp_process_repr: NULL process");
  const char *type = "Process", *status;
  char parent[32] = "None", pid[40] = "", exitcode[48] = "";
  if (p->kind == MP__KIND_SELF) {
    status = "started";
    if (mp_parent_process() == NULL)
      type = "_MainProcess";
    else
      snprintf(parent, sizeof parent, "%lld", (long long)mp_getppid());
  } else if (p->kind == MP__KIND_PARENT) {
    type = "_ParentProcess";
    status = "unknown";
  } else {
    snprintf(parent, sizeof parent, "%lld", (long long)p->creator_pid);
    if (p->creator_pid != mp_getpid()) {
      status = "unknown";
    } else if (p->state < MP__RUNNING) {
      status = "initial";
    } else {
      int code = 0;
      if (mp_process_is_alive(p) || mp_process_exitcode(p, &code) != 0) {
        status = "started";
      } else {
        status = "stopped";
        const char *sig = code < 0 ? mpi_signal_name(-code) : "signal";
        if (strcmp(sig, "signal") != 0) /* a name Python knows */
          snprintf(exitcode, sizeof exitcode, " exitcode=-%s", sig);
        else
          snprintf(exitcode, sizeof exitcode, " exitcode=%d", code);
      }
    }
    if (p->state >= MP__RUNNING)
      snprintf(pid, sizeof pid, " pid=%lld", (long long)p->pid);
  }
  int n = snprintf(buf, cap, "<%s name='%s'%s parent=%s %s%s%s>", type,
                   p->name ? p->name : "", pid, parent, status, exitcode,
                   p->daemon ? " daemon" : "");
  return n < 0 ? mp__error(MP_EINVAL, "mp_process_repr: cannot format") : n;
}

int mp_process_is_alive(mp_process *p) {
  if (p == NULL)
    return 0;
  if (p->kind == MP__KIND_SELF)
    return 1;
  if (p->kind == MP__KIND_PARENT)
    return mpi_parent_alive(p->pid);
  if (p->state != MP__RUNNING)
    return 0;
  return mp__process_poll(p, 0.0) == MP_ETIMEDOUT;
}

static int signal_process(mp_process *p, int hard) {
  if (p == NULL)
    return mp__error(MP_EINVAL, "mp_process_terminate: NULL process");
  if (p->kind != MP__KIND_TARGET && p->kind != MP__KIND_SUBCLASS)
    return mp__error(MP_EINVAL, "can only terminate a child process");
  if (p->state < MP__RUNNING)
    return mp__error(MP_ESTATE, "process has not been started");
  int rc = 0;
  mpi_lock();
  if (p->state == MP__RUNNING) {
    rc = mpi_child_signal(p->child, hard);
    p->signalled = rc == 0;
  }
  mpi_unlock();
  return rc;
}

int mp_process_terminate(mp_process *p) { return signal_process(p, 0); }
int mp_process_kill(mp_process *p) { return signal_process(p, 1); }

int mp_process_exitcode(mp_process *p, int *code) {
  if (p == NULL || code == NULL)
    return mp__error(MP_EINVAL, "mp_process_exitcode: NULL argument");
  if (p->kind == MP__KIND_TARGET || p->kind == MP__KIND_SUBCLASS) {
    if (p->state == MP__RUNNING)
      mp__process_poll(p, 0.0);
    if (p->state == MP__ENDED) {
      *code = p->exitcode;
      return 0;
    }
  }
  return mp__error(MP_ESTATE, "process has not finished (exitcode is None)");
}

const char *mp_process_error(mp_process *p) {
  if (p == NULL)
    return NULL;
  if (p->state == MP__RUNNING)
    mp__process_poll(p, 0.0);
  return p->state == MP__ENDED ? p->error : NULL;
}

int mp_process_free(mp_process *p) {
  if (p == NULL || p->kind == MP__KIND_SELF || p->kind == MP__KIND_PARENT)
    return 0;
  if (p->state == MP__RUNNING && mp__process_poll(p, 0.0) != 0)
    return mp__error(MP_ESTATE, "cannot free process %s (pid %lld): it is "
                                "still running; join or terminate it first",
                     p->name, (long long)p->pid);
  if (p->child != NULL)
    mpi_child_free(p->child);
  mp_args_free(p->args);
  if (!p->name_borrowed)
    free(p->name);
  free(p->error);
  free(p);
  return 0;
}

int mp_wait(const mp_handle *handles, size_t n, double timeout, int *ready) {
  if (handles == NULL || n == 0)
    return mp__error(MP_EINVAL, "mp_wait: no handles");
  int rc = mp__check_timeout(timeout);
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < n; i++)
    if (handles[i] == MP_INVALID_HANDLE)
      return mp__error(MP_EINVAL, "mp_wait: handle %zu is invalid", i);
  /* Connections may hold messages already read from their stream. */
  int *early = calloc(n, sizeof *early), *os = calloc(n, sizeof *os);
  if (early == NULL || os == NULL) {
    free(early);
    free(os);
    return mp__error(MP_ENOMEM, "mp_wait: out of memory");
  }
  int pre = mp__conn_buffered(handles, n, early);
  rc = mpi_wait((const mpi_fd *)handles, n, pre > 0 ? 0.0 : timeout, os);
  if (pre > 0 && rc == MP_ETIMEDOUT)
    rc = 0;
  if (rc >= 0) {
    rc = 0;
    for (size_t i = 0; i < n; i++)
      rc += (os[i] = os[i] || early[i]);
  }
  if (ready != NULL)
    for (size_t i = 0; i < n; i++)
      ready[i] = rc > 0 && os[i];
  free(early);
  free(os);
  return rc;
}

/* ---- 4. The registry and exit behaviour ------------------------------ */

static mp_process *registry; /* running children, newest first */

void mp__registry_add(mp_process *p) {
  p->next = registry;
  registry = p;
}

void mp__registry_remove(mp_process *p) {
  for (mp_process **pp = &registry; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      p->next = NULL;
      return;
    }
}

/* Forget the parent's children in a forked child (they are not ours). */
void mp__registry_forget(void) { registry = NULL; }

int mp_active_children(mp_process **out, size_t cap) {
  int count = 0;
  mpi_lock();
  mp_process *p = registry;
  while (p != NULL) {
    mp_process *next = p->next;
    if (mp__process_poll(p, 0.0) == MP_ETIMEDOUT) {
      if (out != NULL && (size_t)count < cap)
        out[count] = p;
      count++;
    }
    p = next;
  }
  mpi_unlock();
  return count;
}

/* Python's _exit_function: terminate the daemonic children, then join
 * every child still registered. */
void mp__cleanup_children(void) {
  mpi_lock();
  for (mp_process *p = registry; p; p = p->next)
    if (p->daemon && mp__process_poll(p, 0.0) == MP_ETIMEDOUT)
      mpi_child_signal(p->child, 0);
  mpi_unlock();
  for (;;) {
    mpi_lock();
    mp_process *p = registry;
    mpi_unlock();
    if (p == NULL)
      break;
    if (mp_process_join(p, MP_FOREVER) != 0 && p->state != MP__ENDED) {
      mpi_lock();
      mp__registry_remove(p); /* cannot be waited for: give up on it */
      mpi_unlock();
    }
  }
}

/* ---- 5. This process and its parent --------------------------------- */

static mp_process current = {.kind = MP__KIND_SELF, .state = MP__RUNNING};
static mp_process parent = {.kind = MP__KIND_PARENT, .state = MP__RUNNING};
static int current_ready, parent_known;
static char main_name[] = "MainProcess";

mp_process *mp_current_process(void) {
  if (!current_ready) {
    mpi_lock();
    if (!current_ready) {
      current.name = main_name;
      current.name_borrowed = 1;
      current.pid = mpi_getpid();
      /* Without a random source there is no key at all (never a fixed,
       * guessable one): what needs the key fails then, and says why
       * (mp__default_authkey). */
      current.authkey_len = mpi_random(current.authkey, 32) == 0 ? 32 : 0;
      current_ready = 1;
    }
    mpi_unlock();
  }
  return &current;
}

int mp__default_authkey(unsigned char *key, size_t cap, size_t *n) {
  mp_process *me = mp_current_process();
  mpi_lock();
  if (me->authkey_len == 0 && mpi_random(me->authkey, 32) == 0)
    me->authkey_len = 32; /* the random source works again */
  size_t len = me->authkey_len;
  memcpy(key, me->authkey, cap < len ? cap : len);
  mpi_unlock();
  if (len == 0)
    return mp__error(MP_EAUTH, "this process has no authkey: the system's "
                               "random source failed (%s); give a key "
                               "(mp_process_set_authkey, or the call's own)",
                     mp_last_error_message());
  *n = len < cap ? len : cap;
  return 0;
}

mp_process *mp_parent_process(void) { return parent_known ? &parent : NULL; }

/* Become the child described by the bootstrap fields (boot.c). */
void mp__become_child(const char *name, const char *identity, int daemon,
                      const void *authkey, size_t authkey_len,
                      int64_t parent_pid, const char *parent_name) {
  mp__registry_forget();
  /* No mp_current_process() here: it would draw an authkey to discard. */
  current.name = (char *)name;
  current.name_borrowed = 1;
  current.pid = mpi_getpid();
  current.daemon = daemon;
  current.child_counter = 0;
  mp__strlcpy(current.identity, identity, sizeof current.identity);
  if (authkey_len > 0 && authkey_len <= MP__AUTHKEY_CAP) {
    memcpy(current.authkey, authkey, authkey_len);
    current.authkey_len = authkey_len;
  }
  current_ready = 1;
  parent.name = (char *)parent_name;
  parent.name_borrowed = 1;
  parent.pid = parent_pid;
  parent_known = 1;
}

int64_t mp_getpid(void) { return mpi_getpid(); }
int64_t mp_getppid(void) { return mpi_getppid(); }
int mp_cpu_count(void) { return mpi_cpu_count(); }
int mp_process_cpu_count(void) { return mpi_process_cpu_count(); }
