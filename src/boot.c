/*
 * boot.c - the child side: the main guard, decoding the bootstrap tuple,
 * running the target, and the exit work of every mproc process.
 *
 * Bootstrap tuple (built by process.c build_boot), items in order:
 *   0 magic "mproc-boot-1"   1 name           2 daemon
 *   3 identity ("1:2")       4 authkey        5 parent pid
 *   6 parent name            7 start method (the child's own)
 *   8 kind (target/subclass) 9 module ("" = main exe) 10 offset
 *   11 payload (args / struct) 12 executable override
 *   13 log level (mp_log_to_stderr's)
 * Exit record sent to the parent: ("mproc-exit-1", message).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "process.h"

#define BOOT_ITEMS 14

static int guard_called;
static char **guard_argv;
static int is_child;
static int finished;
static int at_exit_installed;
static char exit_message[512];

int mp__guard_called(void) { return guard_called; }
char *const *mp__guard_argv(void) { return guard_argv; }

void mp__remember_exit_message(const char *msg) {
  mp__strlcpy(exit_message, msg, sizeof exit_message);
}

/* The exit work: flush stdio, end the children as Python's _exit_function
 * does (terminate the daemonic ones, join the rest), flush again, then
 * send the record that carries our last error message, if any. */
void mp__child_finish(void) {
  if (finished)
    return;
  finished = 1;
  mp__threads_finish(); /* Python joins the non-daemonic threads first */
  /* Then Python's _exit_function: the finalizers of priority >= 0 (a
   * pool's own is 15: pools still running are terminated among them),
   * the children, then the finalizers of negative priority. */
  mp__finalizers_run(16);
  mp__pools_finish();
  mp__finalizers_run(0);
  fflush(NULL); /* what this process printed comes before its children's */
  mp__cleanup_children();
  mp__finalizers_run_all();
  fflush(NULL);
  /* A record only when there is something to say: a clean exit costs the
   * parent no extra wake-up. */
  if (!is_child || exit_message[0] == '\0')
    return;
  mp_args *rec;
  if (mp_args_new(&rec) != 0)
    return;
  if (mp_args_add_str(rec, "mproc-exit-1") == 0 &&
      mp_args_add_str(rec, exit_message) == 0) {
    size_t n;
    const void *data = mp__args_data(rec, &n);
    mpi_status_send(data, n);
  }
  mp_args_free(rec);
}

static void at_exit(void) { mp__child_finish(); }

void mp__at_exit_install(void) {
  mpi_lock();
  if (!at_exit_installed) {
    at_exit_installed = 1;
    atexit(at_exit);
  }
  mpi_unlock();
}

/* Print why the bootstrap failed, tell the parent, and exit(1). */
static void boot_fail(const char *what) {
  char msg[600];
  snprintf(msg, sizeof msg, "mproc child bootstrap failed: %s (%s)", what,
           mp_last_error_message());
  fprintf(stderr, "%s\n", msg);
  mp__remember_exit_message(msg);
  mp__child_finish();
  mpi_exit(1);
}

/* Enter the child's identity; the strings are borrowed for good. */
static void enter_child(const char *name, const char *identity, int daemon,
                        const void *key, size_t key_n, int64_t ppid,
                        const char *parent_name) {
  mp__become_child(name, identity, daemon, key, key_n, ppid, parent_name);
  is_child = 1;
  finished = 0;
  exit_message[0] = '\0';
}

static int run_subclass(mp_run_fn run, void *self) {
  mp_process *me = mp_current_process();
  memcpy(self, &me, sizeof me); /* the first member: this process */
  return run(self);
}

/* Run the spawned child described by tuple b.  Never returns. */
static void run_spawned(const mp_args *b) {
  const char *magic = mp_args_str(b, 0);
  if (mp_args_count(b) != BOOT_ITEMS || magic == NULL ||
      strcmp(magic, MP__BOOT_MAGIC) != 0)
    boot_fail("malformed bootstrap data");
  size_t key_n = 0, payload_n = 0;
  const void *key = mp_args_bytes(b, 4, &key_n);
  const void *payload = mp_args_bytes(b, 11, &payload_n);
  const char *name = mp_args_str(b, 1), *ident = mp_args_str(b, 3);
  const char *pname = mp_args_str(b, 6), *method = mp_args_str(b, 7);
  const char *module = mp_args_str(b, 9), *exe = mp_args_str(b, 12);
  int daemon = (int)mp_args_int(b, 2);
  int kind = (int)mp_args_int(b, 8);
  int64_t ppid = mp_args_int(b, 5);
  if (!key || !payload || !name || !ident || !pname || !method || !module ||
      !exe)
    boot_fail("malformed bootstrap data");

  enter_child(name, ident, daemon, key, key_n, ppid, pname);
  mp__at_exit_install();
  mp_set_start_method(method, 1);
  mp_log_to_stderr((int)mp_args_int(b, 13));
  if (exe[0])
    mp_set_executable(exe);
  if (mpi_child_init(daemon, ppid) != 0)
    boot_fail("cannot watch the parent");
  void (*fn)(void) = NULL;
  if (mpi_fn_decode(module, (uint64_t)mp_args_int(b, 10), &fn) != 0)
    boot_fail("cannot find the target function");

  /* The handles the parent passed belong to the target's arguments. */
  mpi_fd *handles = NULL;
  size_t n_handles = 0;
  if (mpi_boot_handles(&handles, &n_handles) != 0)
    boot_fail("cannot receive the handles");
  int rc;
  if (kind == MP__KIND_TARGET) {
    mp_args *args;
    if (mp__args_from_bytes(&args, payload, payload_n) != 0)
      boot_fail("malformed target arguments");
    if (mp__args_adopt(args, handles, n_handles) != 0)
      boot_fail("malformed object arguments");
    mp__child_hooks();
    rc = ((mp_target_fn)fn)(args);
  } else if (kind == MP__KIND_SUBCLASS && payload_n >= sizeof(mp_process *)) {
    void *self = malloc(payload_n);
    if (self == NULL)
      boot_fail("out of memory");
    memcpy(self, payload, payload_n);
    mp__child_hooks();
    rc = run_subclass((mp_run_fn)fn, self);
  } else {
    boot_fail("unknown process kind");
    return;
  }
  mp__child_finish();
  exit(rc); /* like Python's spawn: atexit handlers above the guard run */
}

/* The fork start method's entry in the child: *process is our own copy of
 * the parent's object, so nothing is decoded or allocated before the
 * target runs (every write here is a copy-on-write page fault). */
void mp__fork_child_main(void *process) {
  mp_process *p = process;
  mp_process *parent = mp_current_process();
  mp__threads_fork_child();
  mp__pools_fork_child();
  mp__handoff_fork_child();
  mp__context_fork_child();
  enter_child(p->name, p->identity, p->daemon, p->authkey, p->authkey_len,
              parent->pid, parent->name);
  mp__conn_fork_child(p->kind == MP__KIND_TARGET ? p->args : NULL);
  mp__child_hooks();
  int rc = p->kind == MP__KIND_TARGET ? p->target(p->args)
                                       : run_subclass(p->run, p->self);
  mp__child_finish();
  mpi_exit(rc); /* like os._exit: the parent's atexit work is not ours */
}

int mp_main_guard(int argc, char **argv) {
  (void)argc;
  mp__thread_mark_main();
  guard_called = 1;
  guard_argv = argv;
  void *data = NULL;
  size_t n = 0;
  if (mpi_boot_detect(&data, &n) != MPI_BOOT_CHILD)
    return 0;
  mp_args *b;
  if (mp__args_from_bytes(&b, data, n) != 0) {
    is_child = 1;
    boot_fail("malformed bootstrap data");
  }
  free(data);
  run_spawned(b);
  return 0; /* not reached */
}
