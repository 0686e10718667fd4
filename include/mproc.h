/*
 * mproc.h - Python's multiprocessing for C.
 *
 * Parts of this header:
 *   1. errors        MP_E* codes, mp_strerror, mp_err_name, last error
 *   2. arguments     mp_args: the typed tuple passed to a child ("pickle")
 *   3. processes     mp_process: start, join, terminate, exitcode, ...
 *   4. this process  mp_current_process, mp_parent_process, cpu counts
 *   5. start methods mp_context, mp_set_start_method, MP_MAIN_GUARD
 *   6. pipes         mp_pipe, mp_conn: framed messages between processes
 *   7. synchronisation  mp_lock (Lock, RLock), mp_semaphore, mp_event,
 *                    mp_condition, mp_barrier
 *   8. queues        mp_queue (Queue, SimpleQueue, JoinableQueue)
 *   9. shared memory mp_value, mp_array, mp_shm
 *  10. threads       mp_thread, mp_current_thread
 *  11. pools         mp_pool (process and thread kinds), mp_async, mp_imap,
 *                    array maps and reductions
 *  12. executors     mp_executor: submit, futures, wait, as_completed
 *  13. managers      mp_manager, mp_proxy (also remote), listeners
 *  14. logging       mp_log_to_stderr, mp_log, mp_log_set_handler
 *  15. finalizers    mp_finalize, mp_register_after_fork
 *
 * Conventions: a failure is a negative MP_E* code, and
 * mp_last_error_message() then says what went wrong.  Success is 0, except
 * for functions that answer a question: 1/0 for yes/no (is_alive, poll,
 * contains, ...) or a count or index (mp_wait, mp_barrier_wait, ...), as
 * each one's comment says.  Timeouts are
 * in seconds (double); MP_FOREVER blocks.  Every object is opaque and safe
 * to use from several threads of one process.
 */
#ifndef MPROC_H
#define MPROC_H

#include <stddef.h>
#include <stdint.h>

#include "mproc/export.h"
#include "mproc/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* 1. Errors                                                           */
/* ------------------------------------------------------------------ */

/* One table makes the codes, mp_strerror and mp_err_name. */
#define MP_ERRNO_MAP(XX)                                                    \
  XX(EINVAL,      -1, "invalid argument")                                   \
  XX(ENOMEM,      -2, "out of memory")                                      \
  XX(ESTATE,      -3, "operation not valid in the object's current state") \
  XX(ETIMEDOUT,   -4, "timed out")                                          \
  XX(ENOTSUP,     -5, "not supported on this platform")                     \
  XX(EBOOTSTRAP,  -6, "process bootstrapping error (see MP_MAIN_GUARD)")    \
  XX(EDAEMONIC,   -7, "daemonic processes are not allowed to have children") \
  XX(EOS,         -8, "operating system error")                             \
  XX(ETYPE,       -9, "wrong argument type")                                \
  XX(ERANGE,     -10, "index out of range")                                 \
  XX(EPROTO,     -11, "malformed message")                                  \
  XX(EOWNERDEAD, -12, "previous owner died holding the lock")               \
  XX(EWORKERDIED,-13, "worker process died")                                \
  XX(EPIPE,      -14, "broken pipe")                                        \
  XX(EEOF,       -15, "end of file")                                        \
  XX(ECLOSED,    -16, "object is closed")                                   \
  XX(EFULL,      -17, "full")                                               \
  XX(EEMPTY,     -18, "empty")                                              \
  XX(EVALUE,     -19, "value error")                                        \
  XX(EAUTH,      -20, "authentication failed")                              \
  XX(ENOENT,     -21, "no such object")                                     \
  XX(EEXIST,     -22, "object already exists")                              \
  XX(EPERM,      -23, "permission denied")                                 \
  XX(EBROKEN,    -24, "broken (barrier or pool)")                          \
  XX(ETASK,      -25, "the task failed")                                    \
  XX(ECANCELLED, -26, "cancelled")

enum {
  MP_OK = 0,
#define MP__ERR_ENUM(name, value, text) MP_##name = (value),
  MP_ERRNO_MAP(MP__ERR_ENUM)
#undef MP__ERR_ENUM
  MP__ERR_MIN = -27
};

/* The text for an MP_E* code ("timed out"); "unknown error" otherwise. */
MP_API const char *mp_strerror(int code);

/* The code's name ("MP_ETIMEDOUT"); "MP_UNKNOWN" otherwise. */
MP_API const char *mp_err_name(int code);

/* Detail of the last failure of an mproc call in this thread, e.g.
 * "daemonic processes are not allowed to have children".  Never NULL. */
MP_API const char *mp_last_error_message(void);

/* Record an error (code and printf-style message) as this thread's last
 * error and return `code`.  In a child, the message of the last call
 * travels to the parent when the child exits with a non-zero status:
 *     return mp_set_error(3, "cannot open %s", path);
 * gives the parent exitcode 3 and mp_process_error() == "cannot open ...". */
MP_API int mp_set_error(int code, const char *fmt, ...) MP_PRINTF(2, 3);

/* MP_FOREVER as a timeout blocks without limit. */
#define MP_FOREVER (-1.0)

/* ------------------------------------------------------------------ */
/* 2. Arguments: mp_args                                               */
/* ------------------------------------------------------------------ */

/* An immutable-once-sent, typed tuple.  It is encoded into bytes as it is
 * built, copied into the child at start (fork and spawn alike), and read
 * there with bounds checks.  Strings and bytes are copied. */
typedef struct mp_args mp_args;

enum mp_arg_type {
  MP_ARG_INT = 1,    /* int64_t */
  MP_ARG_DOUBLE = 2, /* double */
  MP_ARG_STR = 3,    /* NUL-terminated string */
  MP_ARG_BYTES = 4,  /* bytes with a length */
  MP_ARG_OBJECT = 5, /* reference to an mproc object (queue, lock, ...) */
  MP_ARG_NONE = 6,   /* no value (Python's None) */
  MP_ARG_TUPLE = 7   /* a nested tuple of plain values */
};

/* A new empty tuple. */
MP_API int mp_args_new(mp_args **out);

/* A new tuple from a format, like Py_BuildValue:
 *   'i' int, 'I' int64_t (pass a real int64_t: a plain int literal is
 *   undefined behaviour through varargs), 'd' double, 's' const char *,
 *   'y' bytes as (const void *, size_t), 'n' None (takes no argument),
 *   and one capital letter per kind of object (the object is borrowed,
 *   as by its mp_args_add_*):
 *   'C' mp_conn *        'L' mp_lock * (Lock or RLock)
 *   'S' mp_semaphore *   'E' mp_event *      'W' mp_condition *
 *   'B' mp_barrier *     'Q' mp_queue *      'V' mp_value *
 *   'A' mp_array *       'M' mp_shm *        'P' mp_proxy * (section 13)
 *     mp_args_pack(&a, "sid", "bob", 42, 1.5);
 *     mp_args_pack(&a, "VAi", num, arr, 3);     Python: args=(num, arr, 3)
 * Integers are stored as int64_t whichever letter packed them: 'i' and
 * 'I' both read back with mp_args_int (an int64_t), or with unpack's 'i'
 * (into an int, MP_ERANGE if it does not fit) or 'I' (into an int64_t). */
MP_API int mp_args_pack(mp_args **out, const char *fmt, ...);

MP_API int mp_args_add_int(mp_args *a, int64_t v);
MP_API int mp_args_add_double(mp_args *a, double v);
MP_API int mp_args_add_str(mp_args *a, const char *s);
MP_API int mp_args_add_bytes(mp_args *a, const void *p, size_t n);

/* None, and a nested tuple (a copy of t, which may hold plain values
 * and tuples but no objects: MP_ETYPE). */
MP_API int mp_args_add_none(mp_args *a);
MP_API int mp_args_add_tuple(mp_args *a, const mp_args *t);

/* Item i as a tuple (borrowed: lives as long as `a`), or NULL (with the
 * last error set) when it is out of range or not a tuple. */
MP_API const mp_args *mp_args_tuple(const mp_args *a, size_t i);

/* Number of items. */
MP_API size_t mp_args_count(const mp_args *a);

/* The MP_ARG_* type of item i; MP_ERANGE past the end. */
MP_API int mp_args_type(const mp_args *a, size_t i);

/* Read items by format, as mp_args_pack writes them ('i' int *,
 * 'I' int64_t *, 'd' double *, 's' const char **, 'y' const void **,
 * size_t *, 'n' None: no pointer; objects: 'L' mp_lock **, 'Q'
 * mp_queue ** ... with mp_args_pack's letters).  Pointers point into `a`
 * and live as long as it does.  MP_ETYPE on a type mismatch, MP_ENOENT
 * for an object not available in this process, MP_EINVAL when the count
 * differs:
 *     mp_value *num; mp_array *arr; int i;
 *     mp_args_unpack(args, "VAi", &num, &arr, &i);                        */
MP_API int mp_args_unpack(const mp_args *a, const char *fmt, ...);

/* Python's repr of the tuple, e.g. "(1, 'bob', 2.5, None, b'\x00',
 * <Queue>)" (a single item: "(1,)"), into buf: like snprintf, it writes
 * at most cap - 1 characters and a NUL, and returns the length of the
 * whole text (larger than cap - 1: truncated); MP_EINVAL for NULLs. */
MP_API int mp_args_repr(const mp_args *a, char *buf, size_t cap);

/* Lenient accessors for the common case: the item's value, or 0 / NULL
 * (with the last error set) when i is out of range or of another type. */
MP_API int64_t mp_args_int(const mp_args *a, size_t i);
MP_API double mp_args_double(const mp_args *a, size_t i);
MP_API const char *mp_args_str(const mp_args *a, size_t i);
MP_API const void *mp_args_bytes(const mp_args *a, size_t i, size_t *n);

/* A deep copy of the values; objects in it (locks, queues, connections
 * ...) are the same objects, borrowed from `a`, which must outlive the
 * copy.  A child may hand the args it received (or a copy) on to
 * processes and pools of its own, as Python allows (gh-108520). */
MP_API int mp_args_copy(mp_args **out, const mp_args *a);

MP_API void mp_args_free(mp_args *a);

/* ------------------------------------------------------------------ */
/* 3. Processes: mp_process                                            */
/* ------------------------------------------------------------------ */

typedef struct mp_process mp_process;
typedef struct mp_context mp_context;

/* A waitable OS object: a file descriptor on POSIX, a HANDLE on Windows. */
typedef intptr_t mp_handle;
#define MP_INVALID_HANDLE ((mp_handle)-1)

/* A target runs in the child; its return value is the exit code. */
typedef int (*mp_target_fn)(const mp_args *args);

/* A "subclass" run function; `self` is the user's struct (see below). */
typedef int (*mp_run_fn)(void *self);

/* A process that will run target(args) once started.  `args` may be NULL
 * and is copied.  The name defaults to "Process-N" ("Process-1:2" in a
 * grandchild), daemon to the creating process's own daemon flag. */
MP_API int mp_process_new(mp_process **out, mp_target_fn target,
                          const mp_args *args);

/* Python's Process(target=f, args=(...)).start() in one call: the args
 * from a format (mp_args_pack's letters), a new process with the default
 * start method, started.  0 with *out running; on failure *out is NULL,
 * nothing was started and nothing needs freeing.  Free it as usual:
 *     mp_process *p;
 *     mp_process_startf(&p, worker, "VAi", num, arr, 3);
 *     mp_process_join(p, MP_FOREVER);
 *     mp_process_free(p);                                                 */
MP_API int mp_process_startf(mp_process **out, mp_target_fn target,
                             const char *fmt, ...);

/* The "subclass" form of Python's `class P(Process): def run(self)`.
 * `self` points to a user struct of `size` bytes whose FIRST MEMBER is an
 * `mp_process *`; this call creates the process and stores it there:
 *     struct worker { mp_process *base; int n; } w = { NULL, 3 };
 *     mp_process_new_subclass(&w, sizeof w, worker_run);
 *     mp_process_start(w.base);
 * At start the struct is copied into the child (bytewise: under spawn it
 * must hold plain data, no pointers), its first member is set to the
 * child's current process, and run(copy) is called there. */
MP_API int mp_process_new_subclass(void *self, size_t size, mp_run_fn run);

/* Name: any time, like Python (the child sees the name it had at start). */
MP_API int mp_process_set_name(mp_process *p, const char *name);
MP_API const char *mp_process_name(const mp_process *p);

/* Daemon flag: before start only (MP_ESTATE after). */
MP_API int mp_process_set_daemon(mp_process *p, int daemon);
MP_API int mp_process_daemon(const mp_process *p);

/* Start method for this process (NULL: the global default); before start. */
MP_API int mp_process_set_context(mp_process *p, mp_context *ctx);

/* Authentication key (inherited from the creating process by default:
 * 32 random bytes in the main process).  1 to 256 bytes.  When the
 * system's random source fails (e.g. getrandom refused by a seccomp
 * filter) the main process has no key, never a fixed one: its length is
 * 0 and calls that need the default key (managers) fail with MP_EAUTH
 * until one is set. */
MP_API int mp_process_set_authkey(mp_process *p, const void *key, size_t n);
/* Copies up to `cap` bytes of the key into buf; returns the key length. */
MP_API size_t mp_process_authkey(const mp_process *p, void *buf, size_t cap);

/* Start the child.  Errors: MP_ESTATE (started twice, or closed),
 * MP_EDAEMONIC (called in a daemonic process), MP_EBOOTSTRAP (a spawned
 * child still bootstrapping, or spawn without MP_MAIN_GUARD), MP_EOS,
 * MP_ECLOSED (spawn and forkserver: an object in the args was closed
 * after mp_process_new; the objects go as they are at start, as Python
 * pickles them then).  A failed start started nothing and may be tried
 * again; it never returns 0 for a child that cannot have its objects. */
MP_API int mp_process_start(mp_process *p);

/* Run the target in the calling process (Python's Process.run()). */
MP_API int mp_process_run(mp_process *p);

/* Wait until the child ends or `timeout` seconds pass (MP_FOREVER).
 * 0 when it has ended (exitcode available), MP_ETIMEDOUT otherwise;
 * MP_ESTATE when never started, MP_EINVAL when joining oneself or a
 * negative timeout other than MP_FOREVER.  MP_EBOOTSTRAP when a spawned
 * child exited without reaching MP_MAIN_GUARD. */
MP_API int mp_process_join(mp_process *p, double timeout);

/* 1 while the child runs, 0 otherwise (not started or ended). */
MP_API int mp_process_is_alive(mp_process *p);

/* SIGTERM / SIGKILL on POSIX; TerminateProcess on Windows (exitcode -15,
 * or -9 for kill).  No-op on an ended process; MP_ESTATE if not started. */
MP_API int mp_process_terminate(mp_process *p);
MP_API int mp_process_kill(mp_process *p);

/* OS process id; 0 before start. */
MP_API int64_t mp_process_pid(const mp_process *p);

/* The exit code once the child has ended: the target's return value or
 * exit(n) (POSIX truncates to 0..255), -N when killed by signal N.
 * On Windows: terminate/kill give -15/-9, crashes map to the POSIX
 * signal numbers (access violation -11, illegal instruction -4, ...).
 * MP_ESTATE (and *code untouched) while running or before start. */
MP_API int mp_process_exitcode(mp_process *p, int *code);

/* Python's repr(process) into buf (snprintf's contract: returns the
 * whole length; MP_EINVAL for NULLs), e.g.
 *   <Process name='Process-1' parent=4241 initial>
 *   <Process name='Process-1' pid=4242 parent=4241 started daemon>
 *   <Process name='Process-1' pid=4242 parent=4241 stopped exitcode=-SIGTERM>
 *   <_MainProcess name='MainProcess' parent=None started>
 * ("unknown" for a process object made by another process, as Python). */
MP_API int mp_process_repr(mp_process *p, char *buf, size_t cap);

/* The message the child reported with mp_set_error before exiting with a
 * non-zero status, or a description of how it died; NULL if none. */
MP_API const char *mp_process_error(mp_process *p);

/* Becomes ready (readable fd / signalled handle) when the child ends;
 * MP_INVALID_HANDLE before start.  Owned by the process object. */
MP_API mp_handle mp_process_sentinel(const mp_process *p);

/* Release the object.  MP_ESTATE while the child still runs (join or
 * terminate it first).  NULL is accepted. */
MP_API int mp_process_free(mp_process *p);

/* Wait until at least one of `n` handles (sentinels) is ready or the
 * timeout passes.  ready[i] (optional) is set to 1 for each ready one.
 * Returns how many are ready, or MP_ETIMEDOUT.  Any number of handles. */
MP_API int mp_wait(const mp_handle *handles, size_t n, double timeout,
                   int *ready);

/* ------------------------------------------------------------------ */
/* 4. This process                                                     */
/* ------------------------------------------------------------------ */

/* This process ("MainProcess" in the main program).  Never NULL. */
MP_API mp_process *mp_current_process(void);

/* The process that started this one (name, pid, is_alive, join), or NULL
 * in the main process. */
MP_API mp_process *mp_parent_process(void);

/* The children started by this process that are still running; ended
 * ones are reaped as a side effect.  Stores up to `cap` of them in `out`
 * (borrowed pointers) and returns how many there are in all. */
MP_API int mp_active_children(mp_process **out, size_t cap);

MP_API int64_t mp_getpid(void);
MP_API int64_t mp_getppid(void);

/* Logical CPUs in the machine, and those this process may run on. */
MP_API int mp_cpu_count(void);
MP_API int mp_process_cpu_count(void);

/* ------------------------------------------------------------------ */
/* 5. Start methods and the main guard                                 */
/* ------------------------------------------------------------------ */

/* "fork" (POSIX), "spawn" (everywhere), "forkserver" (POSIX).
 * Defaults: fork on Linux and the BSDs, spawn on macOS and Windows.
 * A spawned child and the fork server hold only stdin, stdout, stderr and
 * the handles of the objects in the args, as Python's: nothing else the
 * parent has open, close-on-exec or not.  A forked child has them all. */
#if !defined(_WIN32)
#  define MP_HAS_FORK 1
#  define MP_HAS_FORKSERVER 1
#else
#  define MP_HAS_FORK 0
#  define MP_HAS_FORKSERVER 0
#endif

/* The context of a start method (NULL: the current default).  Contexts
 * are static: never freed.  MP_EINVAL for an unknown name, MP_ENOTSUP
 * for a method this platform lacks. */
MP_API int mp_get_context(const char *method, mp_context **out);
MP_API const char *mp_context_start_method(const mp_context *ctx);

/* Set the default start method once (MP_ESTATE if already set, unless
 * force is non-zero).  mp_get_start_method gives the default; in a child
 * it starts as the method that started the child (a child of a spawn
 * context reports "spawn" even where the parent's default is fork). */
MP_API int mp_set_start_method(const char *method, int force);
MP_API const char *mp_get_start_method(void);

/* The methods available here, default first; returns how many. */
MP_API int mp_get_all_start_methods(const char **out, size_t cap);

/* The program spawned children run (default: this executable). */
MP_API int mp_set_executable(const char *path);

/* The main guard, Python's `if __name__ == '__main__':`.  Call it in main
 * before starting any process:
 *     int main(int argc, char **argv) {
 *         MP_MAIN_GUARD(argc, argv);
 *         ...
 * In the main program it records argv and returns 0.  In a spawned child
 * (re-running this program) it runs the child's target and exits with its
 * status: it never returns, so code above it runs again in every spawned
 * child, code below it does not.  Where main's argv is not at hand (a
 * plugin, a test framework's worker), mp_main_guard(0, NULL) is accepted:
 * spawned children then run this executable with no arguments. */
MP_API int mp_main_guard(int argc, char **argv);
#define MP_MAIN_GUARD(argc, argv) mp_main_guard((argc), (argv))

/* ------------------------------------------------------------------ */
/* 6. Pipes and connections                                            */
/* ------------------------------------------------------------------ */

/* One end of a pipe: framed messages of any size (0 bytes included).
 * The framing is Python's: a 4-byte big-endian length (-1 and an 8-byte
 * length above 2^31-1), then the bytes.  Safe to use from several
 * threads: sends and receives are each serialised. */
typedef struct mp_conn mp_conn;

/* Largest message send/recv accept (16 GiB; at least 2^31-1 anywhere). */
#define MP_CONN_MAX_MESSAGE ((uint64_t)1 << 34)

/* Python's Pipe(duplex): two connected ends.  duplex = 0: *a receives
 * only and *b sends only.  Neither end is inherited by spawned children
 * unless passed in their mp_args (fork children have everything). */
MP_API int mp_pipe(int duplex, mp_conn **a, mp_conn **b);

/* Send one message.  MP_EPIPE when the other end is closed everywhere,
 * MP_EPERM on a receive-only end, MP_ECLOSED after mp_conn_close. */
MP_API int mp_conn_send_bytes(mp_conn *c, const void *p, size_t n);

/* Receive one message into a new buffer (release it with mp_free).
 * MP_EEOF when the other end is closed everywhere (or its process died)
 * and nothing is left; MP_EPERM on a send-only end. */
MP_API int mp_conn_recv_bytes(mp_conn *c, void **out, size_t *n);

/* Python's recv_bytes(maxlength): receive one message into a new buffer
 * (release it with mp_free) if it is at most maxlength bytes long (0
 * takes empty messages only).  A longer one gives MP_ERANGE with *n set
 * to its length, before any of it is read or memory is set aside for it
 * (a hostile length costs nothing), and it stays readable, as with
 * mp_conn_recv_bytes_into: take it with a larger maxlength or
 * mp_conn_recv_bytes, or close the connection.  Python instead raises
 * OSError("bad message length") and makes the connection unusable for
 * receiving (a receive-only one is closed).  MP_EINVAL for NULL out or
 * n, or a maxlength over PTRDIFF_MAX (a negative number made unsigned;
 * Python: ValueError("negative maxlength")); otherwise as
 * mp_conn_recv_bytes. */
MP_API int mp_conn_recv_bytes_max(mp_conn *c, size_t maxlength, void **out,
                                  size_t *n);

/* Receive one message into buf.  When it does not fit: MP_ERANGE, *n set
 * to the size needed, and the message stays readable (call again with a
 * larger buffer, or mp_conn_recv_bytes). */
MP_API int mp_conn_recv_bytes_into(mp_conn *c, void *buf, size_t cap,
                                   size_t *n);

/* Send / receive an mp_args tuple, objects included (connections,
 * queues, locks, values, shared memory, proxies: any mp_args_add_*),
 * as Python pickles a Connection through a Pipe; Python refuses a Queue,
 * a Lock or a synchronized Value outside process arguments ("should only
 * be shared through inheritance"), mproc sends them too.  The receiver
 * gets objects of its own, owned by the received tuple (do not free
 * them; mp_args_copy it to hand them on), opened from copies of the
 * sender's handles, so the sender may close its objects once the message
 * is sent.  The handles wait in the sender until the receiver fetches
 * them (from a small server thread the sender starts on its first such
 * send; local only, this user only), as Python's resource sharer does:
 * the sender must still be running when the message is received
 * (otherwise recv gives MP_ENOENT and the message is consumed; a sender
 * that runs but does not answer, stopped say, costs the receive at most
 * 30 s past its own wait, then MP_ETIMEDOUT, consumed too), a
 * message never received keeps its handles open in the sender until it
 * exits, and one message gives its objects once (the same bytes sent
 * again: MP_ENOENT).  Only within one computer: a tuple with objects
 * that hold handles does not reach another host over TCP (MP_ENOENT;
 * proxies do, they hold none).  Send: MP_ECLOSED for a closed object.
 * Receive: MP_EPROTO for a malformed message; a handle message from
 * mp_conn_send_handle is MP_EPROTO here.  The same holds for queues
 * (mp_queue_put_args / mp_queue_get_args). */
MP_API int mp_conn_send_args(mp_conn *c, const mp_args *a);
MP_API int mp_conn_recv_args(mp_conn *c, mp_args **out);

/* Python's multiprocessing.reduction.send_handle / recv_handle: pass a
 * raw OS handle (a descriptor on POSIX, a HANDLE on Windows) through any
 * connection.  send: a copy goes (h stays open and the caller's); as
 * with objects above, the sender must still run when it is received.
 * Python takes a destination pid and works only on a Unix socket on
 * POSIX; mproc needs neither.  recv: *out is a new handle of this
 * process, the caller's to close (close / CloseHandle); MP_EPROTO when
 * the message is not a handle; MP_ENOENT when its sender has ended.
 * send: MP_ECLOSED when h is not an open handle. */
MP_API int mp_conn_send_handle(mp_conn *c, mp_handle h);
MP_API int mp_conn_recv_handle(mp_conn *c, mp_handle *out);

/* 1 if a receive would not block (a message, or end of file), 0 if
 * nothing came within timeout seconds (0: just look; MP_FOREVER). */
MP_API int mp_conn_poll(mp_conn *c, double timeout);

/* The OS handle, e.g. for mp_wait (ready = readable); owned by c. */
MP_API mp_handle mp_conn_fileno(const mp_conn *c);

MP_API int mp_conn_readable(const mp_conn *c);
MP_API int mp_conn_writable(const mp_conn *c);

/* Authenticate the other end with a shared key (Python's
 * deliver_challenge / answer_challenge, 3.12 protocol): an HMAC-SHA256
 * challenge with a 40-byte random nonce, compared in constant time.
 * deliver_challenge checks that the other end knows the key; it answers
 * with answer_challenge.  For mutual authentication the accepting side
 * calls deliver then answer, the connecting side answer then deliver.
 * 0; MP_EAUTH when the key is wrong on either side (or the other end
 * sends something that is not part of the protocol: messages longer
 * than 256 bytes are refused unread); MP_ETIMEDOUT when the other end's
 * messages are not all there within `timeout` seconds (every byte of them
 * counts: a peer that sends part of a message and falls silent times out
 * too; MP_FOREVER: no limit); MP_EEOF / MP_EPIPE when it goes away.
 * After an error, close the connection (after a timeout inside a
 * message, its later receives fail with MP_EPROTO). */
MP_API int mp_conn_deliver_challenge(mp_conn *c, const void *key,
                                     size_t key_n, double timeout);
MP_API int mp_conn_answer_challenge(mp_conn *c, const void *key,
                                    size_t key_n, double timeout);

/* Close the handle; further calls give MP_ECLOSED.  Idempotent. */
MP_API int mp_conn_close(mp_conn *c);

/* Close (if open) and release.  NULL is accepted. */
MP_API void mp_conn_free(mp_conn *c);

/* Listeners and clients (Python's multiprocessing.connection Listener
 * and Client).  Families: MP_AF_LOCAL (a Unix-domain socket file on
 * POSIX, a named pipe on Windows; both reachable by this user only),
 * MP_AF_INET and MP_AF_INET6 (TCP).  MP_AF_DEFAULT infers the family from
 * the address: "host:port" is TCP ("[host]:port": IPv6), anything else
 * (a path, a "\\.\pipe\name") local; no address at all is a fresh
 * local name nobody else can reach (with MP_AF_INET or MP_AF_INET6: a
 * free loopback port).  TCP addresses are numeric or names;
 * an empty host is the loopback ("":0 or ":0" gives a free port on
 * 127.0.0.1).
 *
 * With an authkey (authkey_n > 0) both sides authenticate each other
 * before anything else is read (mp_conn_deliver_challenge /
 * mp_conn_answer_challenge): accept returns MP_EAUTH, having closed the
 * connection, when a client has the wrong key, sends something else, or
 * has not sent all of its handshake within the handshake time
 * (mp_listener_set_handshake_timeout, default 10 s, for the whole
 * handshake); the client gets MP_EAUTH as well.  Without one, nothing
 * is checked.  A generated local address leaves nothing behind however
 * its process ends (POSIX: a small janitor process removes the socket
 * and its directory once the listener's process and its fork children
 * have all ended, killed or not).
 *
 * Linux abstract socket names: "@name" (Python's '\0name', spelt as the
 * Linux tools spell it) is a local address (a colon in it too) with no
 * file at all, nothing to remove and nothing left behind; the name is
 * the bytes after the '@' (1 to 107 of them; a file named "@x" is
 * "./@x").  It has no
 * permissions, so mproc checks the user instead: accept drops a client
 * of another user (as if it never came) and mp_client refuses with
 * MP_EPERM a listener of another user (someone who took the name first);
 * Python checks neither.  A name in use is MP_EEXIST.  MP_ENOTSUP on
 * systems without them (macOS, the BSDs, Windows, where it does not turn
 * into a pipe name). */
enum { MP_AF_DEFAULT = 0, MP_AF_LOCAL = 1, MP_AF_INET = 2, MP_AF_INET6 = 3 };

typedef struct mp_listener mp_listener;

/* Listen at address (NULL: a fresh local name; with MP_AF_INET or
 * MP_AF_INET6 a free port on the loopback, "127.0.0.1:N" or "[::1]:N",
 * as Python's Listener(family='AF_INET')) with room for backlog
 * waiting clients (0: a default).  The authkey is copied.  MP_EINVAL
 * (malformed address or family), MP_EEXIST (address in use or a file
 * there), MP_EPERM, MP_EOS. */
MP_API int mp_listener_new(mp_listener **out, const char *address,
                           int family, int backlog, const void *authkey,
                           size_t authkey_n);

/* Wait up to timeout seconds for a client and authenticate it: 0 and a
 * duplex connection; MP_ETIMEDOUT; MP_EAUTH (that client was refused and
 * dropped: call accept again); MP_ECLOSED after mp_listener_close. */
MP_API int mp_listener_accept(mp_listener *l, double timeout, mp_conn **out);

/* The bound address ("127.0.0.1:40123" with the port chosen, the socket
 * path, the pipe name), to give to clients; and the family. */
MP_API const char *mp_listener_address(const mp_listener *l);
MP_API int mp_listener_family(const mp_listener *l);

/* Python's Listener.last_accepted: the address of the client of the last
 * connection accept took, copied to buf (cap bytes; 300 always suffice)
 * in mp_listener_address's form: "127.0.0.1:50312", "[::1]:50312"; for a
 * local client, the name it bound its own socket to (a path, "@name";
 * up to a NUL byte in an abstract name), else "" as usual (Python: '').
 * Set as the OS hands the connection over, before the authkey handshake,
 * so after MP_EAUTH it names the refused client (as in Python); kept
 * after mp_listener_close.  0; MP_ESTATE before any accept (Python:
 * None), buf ""; MP_ERANGE when cap is too small, buf ""; MP_EINVAL for
 * NULL l or buf, or cap 0.  Windows pipe clients give "" where Python
 * keeps None. */
MP_API int mp_listener_last_accepted(const mp_listener *l, char *buf,
                                     size_t cap);

/* How long accept gives a client to authenticate (seconds, > 0). */
MP_API int mp_listener_set_handshake_timeout(mp_listener *l, double timeout);

/* Stop listening: a thread blocked in accept returns MP_ECLOSED (within
 * 0.1 s also when it is in the middle of a client's handshake), and so
 * does every later accept; the socket file is removed.  Idempotent. */
MP_API int mp_listener_close(mp_listener *l);
MP_API void mp_listener_free(mp_listener *l);

/* Connect to a listener and authenticate within timeout seconds (the
 * whole handshake, byte by byte): MP_ENOENT when nobody listens there,
 * MP_EAUTH, MP_ETIMEDOUT, MP_EINVAL (malformed address). */
MP_API int mp_client(mp_conn **out, const char *address, int family,
                     const void *authkey, size_t authkey_n, double timeout);

/* Pass a connection to a child: add it to the arguments of the process.
 * It must stay open until the process has started; the child gets its
 * own copy of the handle, so closing ours afterwards does not affect it.
 * In the child, mp_args_conn returns it (owned by the args: do not free;
 * it is closed when the args are). */
MP_API int mp_args_add_conn(mp_args *a, mp_conn *c);
MP_API mp_conn *mp_args_conn(const mp_args *a, size_t i);

/* ------------------------------------------------------------------ */
/* 7. Synchronisation: locks, semaphores, events, conditions, barriers */
/* ------------------------------------------------------------------ */

/* Every object here lives in shared memory and works between processes
 * and between threads alike.  Pass one to a child in its mp_args
 * (mp_args_add_lock ...); under fork and spawn the child then shares it.
 * In the child the object is owned by the args (do not free it).  An
 * object is freed in one process with mp_X_free; it lives on while other
 * processes hold it, and the OS reclaims it when the last one goes, also
 * after a crash (an anonymous object has no name to leak; a named Lock or
 * Semaphore, below, is removed with its last user as mp_shm is).
 * A process killed between changing an object (a release, a set, a
 * notify, a put) and waking the thread that sleeps on it strands no
 * sleeper: sleeps are cut into slices of 50 ms growing to 1 s while
 * nothing happens, so the sleeper sees the change within a second. */

/* Lock and RLock.  A Lock may be released by any thread or process
 * (Python's semantics); an RLock is owned by one thread, which may
 * acquire it again (released as often as acquired).
 * When a process dies holding either, the next acquirer gets the lock
 * together with MP_EOWNERDEAD (once): the data it guards may be half
 * updated.  Death is noticed within 50 ms. */
typedef struct mp_lock mp_lock;

MP_API int mp_lock_new(mp_lock **out);
MP_API int mp_rlock_new(mp_lock **out);

/* 0 when acquired; MP_EOWNERDEAD when acquired from a holder that died;
 * MP_ETIMEDOUT (timeout 0: just try; a try also takes the lock from a
 * dead holder, so polling never waits on a dead process for good). */
MP_API int mp_lock_acquire(mp_lock *l, double timeout);

/* MP_EVALUE: a Lock that is not locked; MP_EPERM: an RLock this thread
 * does not hold. */
MP_API int mp_lock_release(mp_lock *l);

/* 1 if locked (by anyone), 0 if not. */
MP_API int mp_lock_locked(mp_lock *l);
MP_API int mp_lock_is_recursive(const mp_lock *l);
MP_API void mp_lock_free(mp_lock *l);

/* Semaphore and BoundedSemaphore (release past the initial value:
 * MP_EVALUE).  Values up to 2^31-1; mp_semaphore_get_value works
 * everywhere, macOS included.  A semaphore has no owner (any process may
 * release it), so, as in Python, a unit taken by a process that dies is
 * not given back: use a Lock where a dead holder must be detected. */
typedef struct mp_semaphore mp_semaphore;

MP_API int mp_semaphore_new(mp_semaphore **out, unsigned value);
MP_API int mp_bounded_semaphore_new(mp_semaphore **out, unsigned value);
/* 0, or MP_ETIMEDOUT. */
MP_API int mp_semaphore_acquire(mp_semaphore *s, double timeout);
MP_API int mp_semaphore_release(mp_semaphore *s);
MP_API int mp_semaphore_get_value(mp_semaphore *s);
MP_API void mp_semaphore_free(mp_semaphore *s);

/* Named Lock, RLock and Semaphore (beyond Python): unrelated programs
 * open the same object by name, without passing it in mp_args.  What is
 * opened is an ordinary mp_lock / mp_semaphore (every call above works
 * on it, mp_args included; free it with mp_lock_free /
 * mp_semaphore_free), kept in a named segment made as mp_shm_new makes
 * one: names follow mp_shm's rules (up to 255 bytes with no '/' but a
 * leading one on POSIX; up to 200 with no '\' after an optional "Local\"
 * or "Global\" on Windows) and share its namespace (a name is either a
 * segment or a named lock or semaphore); only the owner's user can open
 * one (POSIX 0600, and other uids do not count as users; an owner-only
 * DACL on Windows); and the name is removed when the last process using
 * it frees it or ends, however it ends.  A process killed holding a
 * named Lock or RLock hands MP_EOWNERDEAD to the next acquirer, who then
 * holds it, as for any lock.
 * flags: 0 opens an existing object (MP_ENOENT when the name is
 * missing); MP_NAMED_CREATE creates it when missing and opens it
 * otherwise; MP_NAMED_CREATE | MP_NAMED_EXCL creates it and fails with
 * MP_EEXIST when the name exists (mp_shm_new's rule).  A semaphore's
 * `value` is its initial value when this call creates it, ignored when
 * it opens one (as sem_open does).
 * 0 on success; MP_EINVAL for a NULL out, a bad name (NULL, empty, too
 * long, a separator) or flags (unknown bits, MP_NAMED_EXCL alone) or a
 * value above 2^31-1; MP_ENOENT; MP_EEXIST; MP_ETYPE when the name is
 * another kind of object (a lock opened as a semaphore, an RLock as a
 * Lock, an mp_shm segment); MP_EPERM for another user's object; MP_EOS.
 * (POSIX's sem_open and Windows' CreateMutex are not used: they would
 * give no owner death on POSIX, a name that outlives a crash, and
 * a mutex only its owning thread may release.) */
enum { MP_NAMED_CREATE = 1, MP_NAMED_EXCL = 2 };

MP_API int mp_lock_open_named(mp_lock **out, const char *name, int flags);
MP_API int mp_rlock_open_named(mp_lock **out, const char *name, int flags);
MP_API int mp_semaphore_open_named(mp_semaphore **out, const char *name,
                                   int flags, unsigned value);

/* Event. */
typedef struct mp_event mp_event;

MP_API int mp_event_new(mp_event **out);
MP_API int mp_event_set(mp_event *e);
MP_API int mp_event_clear(mp_event *e);
MP_API int mp_event_is_set(mp_event *e);
/* 0 once the flag is set, MP_ETIMEDOUT if it was not within timeout. */
MP_API int mp_event_wait(mp_event *e, double timeout);
MP_API void mp_event_free(mp_event *e);

/* Condition variable over a Lock or RLock (NULL: a new RLock, like
 * Python).  The lock is shared: the condition holds its own reference. */
typedef struct mp_condition mp_condition;

MP_API int mp_condition_new(mp_condition **out, mp_lock *lock);
/* The condition's lock (borrowed). */
MP_API mp_lock *mp_condition_get_lock(mp_condition *c);
MP_API int mp_condition_acquire(mp_condition *c, double timeout);
MP_API int mp_condition_release(mp_condition *c);

/* Release the lock (fully, for an RLock), wait to be notified, take the
 * lock back.  0 when notified; MP_ETIMEDOUT when the timeout passed
 * (the lock is held again either way); MP_EPERM when the caller does not
 * hold the lock; MP_EOWNERDEAD when the lock came back from a holder
 * that died. */
MP_API int mp_condition_wait(mp_condition *c, double timeout);

/* Wait until pred(arg) returns non-zero (checked first, then after each
 * notification), like Python's wait_for.  0 when it holds; MP_ETIMEDOUT
 * when it still does not after timeout seconds. */
MP_API int mp_condition_wait_for(mp_condition *c, int (*pred)(void *arg),
                                 void *arg, double timeout);

/* Wake up to n waiters (the longest waiting first) / all of them.  The
 * caller must hold the lock (MP_EPERM otherwise). */
MP_API int mp_condition_notify(mp_condition *c, int n);
MP_API int mp_condition_notify_all(mp_condition *c);
MP_API void mp_condition_free(mp_condition *c);

/* Barrier for `parties` participants.  `action` (may be NULL) runs once
 * per round, in the last participant to arrive, before the others are
 * released; a non-zero return breaks the barrier.  Under spawn the
 * action travels like a process target.  `timeout` is the default for
 * mp_barrier_wait (MP_FOREVER: none). */
typedef struct mp_barrier mp_barrier;
typedef int (*mp_barrier_action)(void);

MP_API int mp_barrier_new(mp_barrier **out, unsigned parties,
                          mp_barrier_action action, double timeout);

/* Wait for the others.  Returns this participant's arrival index, 0 for
 * the first to arrive up to parties-1 for the last; MP_EBROKEN when the barrier is or
 * becomes broken (a timeout breaks it for everyone: MP_ETIMEDOUT to the
 * one that timed out, MP_EBROKEN to the rest).  A negative timeout uses
 * the barrier's default. */
MP_API int mp_barrier_wait(mp_barrier *b, double timeout);

/* Back to the initial state; threads waiting get MP_EBROKEN. */
MP_API int mp_barrier_reset(mp_barrier *b);
/* Break it: waiting and future callers get MP_EBROKEN until a reset. */
MP_API int mp_barrier_abort(mp_barrier *b);
MP_API unsigned mp_barrier_parties(mp_barrier *b);
MP_API unsigned mp_barrier_n_waiting(mp_barrier *b);
MP_API int mp_barrier_broken(mp_barrier *b);
MP_API void mp_barrier_free(mp_barrier *b);

MP_API int mp_args_add_lock(mp_args *a, mp_lock *l);
MP_API mp_lock *mp_args_lock(const mp_args *a, size_t i);
MP_API int mp_args_add_semaphore(mp_args *a, mp_semaphore *s);
MP_API mp_semaphore *mp_args_semaphore(const mp_args *a, size_t i);
MP_API int mp_args_add_event(mp_args *a, mp_event *e);
MP_API mp_event *mp_args_event(const mp_args *a, size_t i);
MP_API int mp_args_add_condition(mp_args *a, mp_condition *c);
MP_API mp_condition *mp_args_condition(const mp_args *a, size_t i);
MP_API int mp_args_add_barrier(mp_args *a, mp_barrier *b);
MP_API mp_barrier *mp_args_barrier(const mp_args *a, size_t i);

/* ------------------------------------------------------------------ */
/* 8. Queues                                                           */
/* ------------------------------------------------------------------ */

/* A multi-producer, multi-consumer queue of byte messages in shared
 * memory.  mp_queue_put copies the message into the queue before it
 * returns: a message put is never lost when its producer exits (or is
 * killed) right after.  A message larger than the queue's buffer streams
 * through it in pieces; a producer killed in the middle of a message
 * leaves nothing of it behind, and a consumer killed in the middle of
 * one does not block the others.  A process killed at any instruction of
 * a put or a get leaves the queue exact: each message is in it once or
 * not at all, and qsize, maxsize and the unfinished count agree with
 * what is there (a message the killed consumer had taken whole is gone
 * with it; one it had only begun is dropped and counts as done).  On a
 * JoinableQueue, a message a killed consumer had taken whole stays an
 * unfinished task, as in Python: the queue cannot tell whether it was
 * worked on, so join waits until someone calls task_done for it. */
typedef struct mp_queue mp_queue;

/* The largest message a queue takes (16 GiB, and PTRDIFF_MAX on 32-bit
 * systems); larger: MP_ERANGE. */
#define MP_QUEUE_MAX_MESSAGE ((uint64_t)1 << 34)

/* maxsize: the most messages the queue holds (<= 0: no limit but the
 * buffer).  The buffer defaults to 256 KiB. */
MP_API int mp_queue_new(mp_queue **out, int64_t maxsize);
MP_API int mp_queue_new_ex(mp_queue **out, int64_t maxsize,
                           size_t buffer_size, int joinable);
/* Python's SimpleQueue: a queue without maxsize. */
MP_API int mp_simple_queue_new(mp_queue **out);
/* Python's JoinableQueue: adds task_done and join. */
MP_API int mp_joinable_queue_new(mp_queue **out, int64_t maxsize);

/* Put one message, waiting up to timeout seconds for room (0: do not
 * wait).  MP_EFULL when there was no room in time (nothing was put),
 * MP_ECLOSED once the queue is closed, MP_ERANGE above
 * MP_QUEUE_MAX_MESSAGE bytes. */
MP_API int mp_queue_put(mp_queue *q, const void *p, size_t n,
                        double timeout);
MP_API int mp_queue_put_nowait(mp_queue *q, const void *p, size_t n);

/* Take one message into a new buffer (release it with mp_free), waiting
 * up to timeout seconds.  MP_EEMPTY when none came in time; MP_ECLOSED
 * when the queue is closed and drained. */
MP_API int mp_queue_get(mp_queue *q, void **out, size_t *n, double timeout);
MP_API int mp_queue_get_nowait(mp_queue *q, void **out, size_t *n);

/* Take one message into buf.  When it does not fit: MP_ERANGE with *n
 * the size needed, and the message stays in the queue. */
MP_API int mp_queue_get_into(mp_queue *q, void *buf, size_t cap, size_t *n,
                             double timeout);

/* An mp_args tuple as a message, objects included: see
 * mp_conn_send_args. */
MP_API int mp_queue_put_args(mp_queue *q, const mp_args *a, double timeout);
MP_API int mp_queue_get_args(mp_queue *q, mp_args **out, double timeout);

/* Messages in the queue now (exact, macOS included). */
MP_API int64_t mp_queue_qsize(mp_queue *q);
MP_API int mp_queue_empty(mp_queue *q);
MP_API int mp_queue_full(mp_queue *q);

/* Close the queue for everyone: puts fail with MP_ECLOSED, gets take
 * what is left, then fail with MP_ECLOSED.  Waiting threads wake. */
MP_API int mp_queue_close(mp_queue *q);
MP_API int mp_queue_is_closed(mp_queue *q);

/* JoinableQueue: one task_done per message taken (too many: MP_EVALUE;
 * not joinable: MP_EINVAL); join waits until every message put has had
 * its task_done (0 or MP_ETIMEDOUT). */
MP_API int mp_queue_task_done(mp_queue *q);
MP_API int mp_queue_join(mp_queue *q, double timeout);

MP_API void mp_queue_free(mp_queue *q);

MP_API int mp_args_add_queue(mp_args *a, mp_queue *q);
MP_API mp_queue *mp_args_queue(const mp_args *a, size_t i);

/* ------------------------------------------------------------------ */
/* 9. Shared values, arrays and named shared memory                    */
/* ------------------------------------------------------------------ */

/* Typecodes as in Python's array module: 'c' char, 'b' signed char,
 * 'B' unsigned char, 'h' short, 'H' unsigned short, 'i' int,
 * 'I' unsigned int, 'l' long, 'L' unsigned long, 'q' long long,
 * 'Q' unsigned long long, 'f' float, 'd' double (C's sizes). */

/* Value(typecode, initial): a synchronized value with its own RLock.
 * `initial` points to one C value of the type (NULL: zero).
 * mp_raw_value_new: no lock (RawValue); mp_value_new_with_lock: guarded
 * by the given lock (shared with it). */
typedef struct mp_value mp_value;

MP_API int mp_value_new(mp_value **out, char typecode, const void *initial);
MP_API int mp_raw_value_new(mp_value **out, char typecode,
                            const void *initial);
MP_API int mp_value_new_with_lock(mp_value **out, char typecode,
                                  const void *initial, mp_lock *lock);

/* Typed access, under the lock when there is one.  Integers: any integer
 * typecode or 'c'; set_int out of the type's range: MP_ERANGE.
 * Doubles: any typecode (integers convert); set_double on an integer
 * typecode: MP_ETYPE. */
MP_API int mp_value_get_int(mp_value *v, int64_t *out);
MP_API int mp_value_set_int(mp_value *v, int64_t x);
MP_API int mp_value_get_double(mp_value *v, double *out);
MP_API int mp_value_set_double(mp_value *v, double x);

/* The value's memory (a C object of the typecode's type) and its lock
 * (NULL for a raw value): `mp_lock_acquire(mp_value_get_lock(v), ...);
 * *(double *)mp_value_ptr(v) += 1;` is Python's `with v.get_lock():`.
 * With mp_value_new_with_lock, get_lock is the caller's own mp_lock (as
 * Python's v.get_lock() is lock): the value keeps it, so the caller may
 * free its reference first and get_lock stays valid while the value
 * lives (the same for arrays and mp_condition_get_lock). */
MP_API void *mp_value_ptr(mp_value *v);
MP_API mp_lock *mp_value_get_lock(mp_value *v);
MP_API char mp_value_typecode(const mp_value *v);
/* The value's size in bytes (the typecode's, or the struct's). */
MP_API size_t mp_value_size(const mp_value *v);

/* Value(MyStructure, ...) and Array(MyStructure, n) of a ctypes
 * Structure: a C struct of `size` bytes (1 to 2^30, aligned to 16 in
 * the shared memory), initial bytes copied from `initial` (NULL: zeros),
 * with its own RLock.  Read and write it through mp_value_ptr /
 * mp_array_ptr (or mp_array_read / _write) under mp_value_get_lock; the
 * typed get/set calls give MP_ETYPE, the typecode is MP_TYPECODE_STRUCT.
 * The struct travels as bytes: it must hold plain data (no pointers),
 * as under spawn.
 *     struct point { double x, y; } p0 = {1, 2};
 *     mp_value *v;  mp_value_new_struct(&v, sizeof p0, &p0);
 *     mp_lock_acquire(mp_value_get_lock(v), MP_FOREVER);
 *     ((struct point *)mp_value_ptr(v))->x += 1;
 *     mp_lock_release(mp_value_get_lock(v));                              */
#define MP_TYPECODE_STRUCT 'S'
MP_API int mp_value_new_struct(mp_value **out, size_t size,
                               const void *initial);
MP_API void mp_value_free(mp_value *v);

/* Array(typecode, length or initial values). `initial` (NULL: zeros)
 * points to `length` C values of the type. */
typedef struct mp_array mp_array;

MP_API int mp_array_new(mp_array **out, char typecode, size_t length,
                        const void *initial);
MP_API int mp_raw_array_new(mp_array **out, char typecode, size_t length,
                            const void *initial);
MP_API int mp_array_new_with_lock(mp_array **out, char typecode,
                                  size_t length, const void *initial,
                                  mp_lock *lock);

MP_API size_t mp_array_len(const mp_array *a);
MP_API int mp_array_new_struct(mp_array **out, size_t itemsize,
                               size_t length, const void *initial);
MP_API char mp_array_typecode(const mp_array *a);
MP_API size_t mp_array_itemsize(const mp_array *a);
/* Element i (MP_ERANGE past the end), with the rules of mp_value_*. */
MP_API int mp_array_get_int(mp_array *a, size_t i, int64_t *out);
MP_API int mp_array_set_int(mp_array *a, size_t i, int64_t x);
MP_API int mp_array_get_double(mp_array *a, size_t i, double *out);
MP_API int mp_array_set_double(mp_array *a, size_t i, double x);
/* Copy `count` elements from index `start` out / in (a slice), under
 * the lock; MP_ERANGE when the slice does not fit. */
MP_API int mp_array_read(mp_array *a, size_t start, size_t count,
                         void *out);
MP_API int mp_array_write(mp_array *a, size_t start, size_t count,
                          const void *in);
MP_API void *mp_array_ptr(mp_array *a);
MP_API mp_lock *mp_array_get_lock(mp_array *a);
MP_API void mp_array_free(mp_array *a);

MP_API int mp_args_add_value(mp_args *a, mp_value *v);
MP_API mp_value *mp_args_value(const mp_args *a, size_t i);
MP_API int mp_args_add_array(mp_args *a, mp_array *arr);
MP_API mp_array *mp_args_array(const mp_args *a, size_t i);

/* Named shared memory, Python's shared_memory.SharedMemory.
 * mp_shm_new creates a segment of `size` bytes (zeroed) under `name`
 * (NULL: a random name, "mp-<pid>-<random>"); MP_EEXIST when taken.
 * mp_shm_open attaches to an existing one; MP_ENOENT when missing.
 * The segment is removed when the last process using it frees it or
 * ends, however it ends (POSIX: a small tracker process per segment
 * counts users; Windows: the kernel does), also when the creator is
 * killed inside mp_shm_new: then the name is gone and may be created
 * again.  POSIX: only processes of the owner's uid count as users (root
 * included, mp_shm_open of another uid's segment is MP_EPERM), so no
 * other user can keep a name alive.  Names are owner-only (0600)
 * and may be up to 255 bytes: long names are hashed to fit macOS.  The
 * buffer is 64-byte aligned. */
typedef struct mp_shm mp_shm;

MP_API int mp_shm_new(mp_shm **out, const char *name, size_t size);
MP_API int mp_shm_open(mp_shm **out, const char *name);
MP_API const char *mp_shm_name(const mp_shm *s);
MP_API size_t mp_shm_size(const mp_shm *s);
MP_API void *mp_shm_buf(mp_shm *s);
/* Remove the name now: no one can attach any more; users keep their
 * mappings.  MP_ENOENT when already removed.  A no-op on Windows. */
MP_API int mp_shm_unlink(mp_shm *s);
/* Python's close(): unmap and release this process's use. */
MP_API void mp_shm_free(mp_shm *s);

MP_API int mp_args_add_shm(mp_args *a, mp_shm *s);
MP_API mp_shm *mp_args_shm(const mp_args *a, size_t i);

/* ------------------------------------------------------------------ */
/* 10. Threads: mp_thread                                              */
/* ------------------------------------------------------------------ */

/* Python's threading.Thread.  Threads share the process's memory, so a
 * thread takes a plain pointer; every mproc object (locks, queues, ...)
 * works between threads as between processes.  As in Python, the
 * threads that are not daemonic are joined when the program exits
 * (returns from main or calls exit); daemonic ones are not waited for. */
typedef struct mp_thread mp_thread;
typedef int (*mp_thread_fn)(void *arg);

/* A thread that will run fn(arg) once started.  The name defaults to
 * "Thread-N", daemon to the creating thread's own flag (0 in the main
 * thread). */
MP_API int mp_thread_new(mp_thread **out, mp_thread_fn fn, void *arg);

/* Python's Thread(target=f, args=(...)).start() with a process target:
 * the same `int f(const mp_args *)` as mp_process_startf (args from the
 * same format; objects borrowed, not copied), run in a new thread of this
 * process; its return value is the thread's exit code.  0 with *out
 * started (free it with mp_thread_free); on failure *out is NULL. */
MP_API int mp_thread_startf(mp_thread **out, mp_target_fn target,
                            const char *fmt, ...);

MP_API int mp_thread_set_name(mp_thread *t, const char *name);
MP_API const char *mp_thread_name(const mp_thread *t);
/* Before start only (MP_ESTATE after). */
MP_API int mp_thread_set_daemon(mp_thread *t, int daemon);
MP_API int mp_thread_daemon(const mp_thread *t);

/* MP_ESTATE when started twice; MP_EOS when the OS refuses. */
MP_API int mp_thread_start(mp_thread *t);

/* Wait until the thread ends or timeout seconds pass.  0 when it has
 * ended; MP_ETIMEDOUT; MP_ESTATE when never started; MP_EINVAL when a
 * thread joins itself (it would wait forever). */
MP_API int mp_thread_join(mp_thread *t, double timeout);

/* 1 from start until fn returns, 0 otherwise. */
MP_API int mp_thread_is_alive(mp_thread *t);

/* The OS thread id (Python's native_id), 0 before start. */
MP_API int64_t mp_thread_ident(const mp_thread *t);

/* fn's return value once the thread has ended; MP_ESTATE before. */
MP_API int mp_thread_exitcode(mp_thread *t, int *code);

/* Release the object; a thread still running is detached and runs on
 * (its object goes when it ends).  NULL and mp_current_thread() objects
 * are accepted (no-op). */
MP_API void mp_thread_free(mp_thread *t);

/* The calling thread: its mp_thread in threads mproc started,
 * "MainThread" in the program's main thread (the one that called
 * MP_MAIN_GUARD; without the guard, the first thread to ask), and a
 * "Dummy-N" object in other threads.  Never NULL; do not free. */
MP_API mp_thread *mp_current_thread(void);
MP_API mp_thread *mp_main_thread(void);

/* Threads alive that mproc knows: the main thread, the started mp_threads
 * still running, and the dummies (Python's active_count). */
MP_API int mp_thread_active_count(void);

/* ------------------------------------------------------------------ */
/* 11. Pools: mp_pool, mp_async, mp_imap                               */
/* ------------------------------------------------------------------ */

/* Python's multiprocessing.Pool (process kind) and ThreadPool (thread
 * kind) with one API.
 *
 * A task reads its arguments and adds its result values to `result`
 * (empty on entry); it returns 0, or a non-zero status when it fails,
 * with an error message set by mp_set_error:
 *     static int square(const mp_args *a, mp_args *result) {
 *         int64_t x = mp_args_int(a, 0);
 *         return mp_args_add_int(result, x * x);
 *     }
 * Task functions travel like process targets: nothing to register.
 * Task arguments hold plain values (objects: MP_ETYPE); give workers
 * objects through the initializer's arguments, as in Python.  (A thread
 * pool task shares the caller's memory: a pointer may travel as an
 * integer, (int64_t)(intptr_t)ptr.)
 *
 * A task's value, where one value is expected (map, imap): the single
 * value it added; None when it added none; a tuple of them when it added
 * several (Python's `return a, b`).
 *
 * Never a hang: a worker process that dies (crash, kill, exit) fails the
 * tasks it held with MP_EWORKERDIED and is replaced; the other tasks go
 * on.  Workers are started as daemonic children (they die with the pool's
 * process, even when it is killed) but unlike Python's they may start
 * processes and pools of their own, which die with them in turn.
 * An initializer that fails breaks the pool: every task then fails with
 * MP_EBROKEN and the initializer's message; so do workers that keep
 * crashing or exiting before they come up (5 in a row).  Workers killed
 * while idle (SIGKILL or SIGTERM from outside: an operator, the OOM
 * killer), however often, are simply replaced. */
typedef struct mp_pool mp_pool;
typedef struct mp_async mp_async;
typedef struct mp_imap mp_imap;

typedef int (*mp_task_fn)(const mp_args *args, mp_args *result);

/* Called when a task succeeds (with its result) or fails (status: the
 * task's own non-zero return for a task that failed, else MP_EWORKERDIED,
 * MP_EBROKEN, MP_ECLOSED, MP_ECANCELLED; message: the worker's).  They
 * run in the pool's result thread in the calling process, except for
 * tasks that end without running (a cancel, terminate, a map over no
 * items), whose callbacks run in the thread that ended them.  Callbacks
 * should return quickly: other results wait behind them. */
typedef void (*mp_result_cb)(const mp_args *result, void *arg);
typedef void (*mp_error_cb)(int status, const char *message, void *arg);

enum { MP_POOL_PROCESS = 0, MP_POOL_THREAD = 1 };

typedef struct mp_pool_options {
  int kind;                  /* MP_POOL_PROCESS or MP_POOL_THREAD */
  int workers;               /* 0: mp_process_cpu_count() */
  mp_target_fn initializer;  /* run once in each worker; NULL: none */
  const mp_args *initargs;   /* its arguments (objects allowed); copied */
  int maxtasksperchild;      /* process kind: a worker is replaced after
                                this many tasks (chunks); 0: never */
  mp_context *context;       /* process kind: start method; NULL: default */
} mp_pool_options;

/* A zero-initialised mp_pool_options gives the defaults. */
#define MP_POOL_OPTIONS_INIT {0, 0, NULL, NULL, 0, NULL}

/* Pool(workers) and ThreadPool(workers): workers <= 0 means the CPUs
 * this process may use.  The workers are running when this returns. */
MP_API int mp_pool_new(mp_pool **out, int workers);
MP_API int mp_thread_pool_new(mp_pool **out, int workers);
MP_API int mp_pool_new_ex(mp_pool **out, const mp_pool_options *opt);

/* Run fn(args) in a worker and wait for it.  0 with *result (a new
 * tuple: the values the task added; free it), or the failure:
 * MP_ETASK (the task returned non-zero; mp_last_error_message() has its
 * message), MP_EWORKERDIED, MP_EBROKEN, MP_ESTATE (pool closed). */
MP_API int mp_pool_apply(mp_pool *p, mp_task_fn fn, const mp_args *args,
                         mp_args **result);

/* Start fn(args) and return at once.  `cb` / `ecb` (may be NULL) run with
 * `arg` when it completes.  *out (may be NULL when not needed) is the
 * handle to wait on; free it with mp_async_free. */
MP_API int mp_pool_apply_async(mp_pool *p, mp_task_fn fn,
                               const mp_args *args, mp_result_cb cb,
                               mp_error_cb ecb, void *arg, mp_async **out);

/* map: fn(item) for each item of `items` (each item becomes a call's
 * single argument), in chunks of `chunksize` calls (0: Python's default
 * ceil(n / (4 * workers))).  *results: a new tuple with each call's value
 * in order.  When calls fail, the map fails with the error of the first
 * in input order (reported once the calls before it have answered;
 * Python reports whichever failure arrives first).  As in Python, the
 * calls after a failing one in its chunk are not run; unlike Python, the
 * map's chunks not yet started after a failed one are dropped too. */
MP_API int mp_pool_map(mp_pool *p, mp_task_fn fn, const mp_args *items,
                       size_t chunksize, mp_args **results);
MP_API int mp_pool_map_async(mp_pool *p, mp_task_fn fn, const mp_args *items,
                             size_t chunksize, mp_result_cb cb,
                             mp_error_cb ecb, void *arg, mp_async **out);

/* starmap: each item of `items` is a tuple (mp_args_add_tuple) holding
 * one call's arguments. */
MP_API int mp_pool_starmap(mp_pool *p, mp_task_fn fn, const mp_args *items,
                           size_t chunksize, mp_args **results);
MP_API int mp_pool_starmap_async(mp_pool *p, mp_task_fn fn,
                                 const mp_args *items, size_t chunksize,
                                 mp_result_cb cb, mp_error_cb ecb, void *arg,
                                 mp_async **out);

/* imap and imap_unordered over an input read lazily: next(ctx, args) adds
 * one call's arguments to the empty tuple `args` and returns 1, returns 0
 * at the end of the input, or a negative code (the iteration then ends
 * with that error).  At most `window` calls (0: 8 per worker, at least
 * 4 * chunksize) are in flight or waiting to be read at any time, so
 * memory stays bounded however long the input.  chunksize 0 means 1.
 * next runs in the threads that call mp_imap_next. */
typedef int (*mp_input_fn)(void *ctx, mp_args *args);

MP_API int mp_pool_imap(mp_pool *p, mp_task_fn fn, mp_input_fn next,
                        void *ctx, size_t chunksize, size_t window,
                        mp_imap **out);
MP_API int mp_pool_imap_unordered(mp_pool *p, mp_task_fn fn,
                                  mp_input_fn next, void *ctx,
                                  size_t chunksize, size_t window,
                                  mp_imap **out);

/* The next result: 1 with *result (a new tuple: the values the call
 * added) and *index (may be NULL) the call's position in the input;
 * 0 at the end; MP_ETIMEDOUT; or a call's failure (MP_ETASK ...: *index
 * says which call).  As in Python, a chunk in which a call fails gives
 * that one failure: its later calls are not run and its other calls'
 * results are dropped (none with chunksize 1).  Then the iteration goes
 * on with the next chunk, where Python's imap with chunksize > 1 ends. */
MP_API int mp_imap_next(mp_imap *it, mp_args **result, size_t *index,
                        double timeout);
/* Stop early: calls not yet started are dropped. */
MP_API void mp_imap_free(mp_imap *it);

/* Python's close / terminate / join.  close: no new tasks (MP_ESTATE),
 * the queued ones still run, then the workers exit.  terminate: stop
 * the workers now; tasks not finished fail with MP_ECLOSED.  join waits
 * for the workers to exit (after close or terminate: MP_ESTATE before);
 * 0 or MP_ETIMEDOUT. */
MP_API int mp_pool_close(mp_pool *p);
MP_API int mp_pool_terminate(mp_pool *p);
MP_API int mp_pool_join(mp_pool *p, double timeout);

/* Number of workers; their pids (process kind; 0 for a worker being
 * replaced): stores up to cap, returns the number of workers. */
MP_API int mp_pool_workers(mp_pool *p);
MP_API int mp_pool_worker_pids(mp_pool *p, int64_t *pids, size_t cap);

/* Terminate (if still running), join and release.  NULL accepted.
 * mp_async handles stay valid until freed; free mp_imap iterators
 * before their pool.  terminate, join and free refuse (MP_ESTATE / do
 * nothing) when called from one of the pool's own callbacks. */
MP_API void mp_pool_free(mp_pool *p);

/* Array maps and reductions: a kernel over a typed array, run once per
 * chunk rather than once per item (OpenMP's `parallel for`, where Python
 * has Pool.map over a list).
 *
 *     static int square(const void *in, void *out, size_t first, size_t n,
 *                       const mp_args *ctx) {
 *         const int64_t *x = in;  int64_t *y = out;
 *         for (size_t i = 0; i < n; i++) y[i] = x[i] * x[i];
 *         return 0;
 *     }
 *     mp_pool_map_array(pool, square, x, sizeof *x, y, sizeof *y, count,
 *                       NULL, 0);
 *
 * The kernel gets its slice of the input (`in` + first * in_size) and of
 * the output (`out` + first * out_size), n elements each, `first` (the
 * slice's index in the whole array) and ctx, the call's context (plain
 * values, as task arguments; an empty tuple when ctx is NULL).  It
 * returns 0, or a non-zero status with a message set by mp_set_error.
 * Kernels travel as task functions do: nothing to register.
 *
 * Where the arrays live.  Thread pools use them where they are.  Process
 * pools need them in shared memory: arrays that already are (the buffer
 * of an mp_shm, mp_array_ptr, mp_value_ptr; any part of one) are used in
 * place, with no copy; any other input is copied into shared memory
 * before the map and the output copied back as each chunk answers, one
 * memcpy each way.  So give large arrays an mp_shm for full speed.
 * Workers map the segments they are given once, keep them while they
 * have work, and let them go after a second idle.  The workers of a map
 * take its chunks by a counter in shared memory; after a chunk a worker
 * watches for the next map for 2 ms before it sleeps (as OpenMP's
 * threads spin), which costs up to that much CPU after the last map.
 *
 * in may be NULL with in_size 0 (the kernel makes its output from the
 * index, as a Mandelbrot image), out NULL with out_size 0 (the kernel
 * only reads); in == out with equal sizes maps in place; arrays that
 * overlap otherwise are MP_EINVAL.  chunksize 0 chooses the chunks as
 * OpenMP's schedule(guided) does (large first, smaller towards the end,
 * none below count / (32 * workers)); otherwise every chunk has
 * chunksize elements (the last one fewer).
 *
 * Returns 0 once every element is written.  A failure is that of the
 * first failed chunk in input order: MP_ETASK (a kernel's non-zero
 * status; mp_last_error_message() has its message), MP_EWORKERDIED (a
 * worker died holding the chunk), MP_EBROKEN, MP_ECLOSED; MP_EINVAL,
 * MP_ESTATE (closed pool) before anything runs.  Chunks after a failed
 * one are not started, and the call returns only once no worker works on
 * its arrays any more; the output is then partly written (in place:
 * partly mapped).  Unlike a task's, a kernel's failure does not stop the
 * chunks that were already running. */
typedef int (*mp_kernel_fn)(const void *in, void *out, size_t first,
                            size_t n, const mp_args *ctx);

MP_API int mp_pool_map_array(mp_pool *p, mp_kernel_fn kernel, const void *in,
                             size_t in_size, void *out, size_t out_size,
                             size_t count, const mp_args *ctx,
                             size_t chunksize);
/* The same without waiting: `cb` gets an empty tuple once every element
 * is written, `ecb` the failure.  The arrays must stay as they are, and
 * allocated, until then (also when the handle is freed early). */
MP_API int mp_pool_map_array_async(mp_pool *p, mp_kernel_fn kernel,
                                   const void *in, size_t in_size, void *out,
                                   size_t out_size, size_t count,
                                   const mp_args *ctx, size_t chunksize,
                                   mp_result_cb cb, mp_error_cb ecb,
                                   void *arg, mp_async **handle);

/* Reductions.  mp_pool_reduce: the sum, minimum or maximum of `count`
 * elements of a C type named by an mp_array typecode ('b' signed char,
 * 'B', 'h' short, 'H', 'i' int, 'I', 'l' long, 'L', 'q' long long, 'Q',
 * 'f' float, 'd' double).  *result: for MP_REDUCE_MIN and _MAX an element
 * of the array's type; for MP_REDUCE_SUM an int64_t (signed types, wraps
 * round as unsigned arithmetic does), a uint64_t (unsigned types) or a
 * double ('f' and 'd').  Over no elements: the sum is 0, the minimum and
 * maximum MP_EINVAL (Python's min([]) raises).  A NaN anywhere makes the
 * minimum and maximum NaN.  Sums of floating point add chunk by chunk in
 * input order, so the result is the same for the same chunks, however
 * the workers run. */
enum { MP_REDUCE_SUM = 1, MP_REDUCE_MIN = 2, MP_REDUCE_MAX = 3 };

MP_API int mp_pool_reduce(mp_pool *p, char typecode, int op, const void *in,
                          size_t count, void *result);

/* A reduction of your own: each chunk starts from a copy of *acc (its
 * identity: 0 for a sum, say; acc_size bytes, at most 64 KiB, plain
 * data), and fold(in + first * in_size, first, n, chunk_acc, ctx) folds
 * its n elements into it in a worker; then, in the calling thread,
 * combine(acc, chunk_acc, ctx) folds each chunk's result into *acc, in
 * input order.  fold returns 0 or a failing status (MP_ETASK, as a
 * kernel).  in may be NULL with in_size 0. */
typedef int (*mp_fold_fn)(const void *in, size_t first, size_t n, void *acc,
                          const mp_args *ctx);
typedef void (*mp_combine_fn)(void *acc, const void *other,
                              const mp_args *ctx);

MP_API int mp_pool_reduce_fn(mp_pool *p, mp_fold_fn fold,
                             mp_combine_fn combine, const void *in,
                             size_t in_size, size_t count, void *acc,
                             size_t acc_size, const mp_args *ctx,
                             size_t chunksize);

/* AsyncResult (and Future, section 12).
 * get: wait up to timeout seconds; 0 with *result (borrowed: lives until
 * mp_async_free; may be NULL), MP_ETIMEDOUT, or the task's failure
 * (MP_ETASK, MP_EWORKERDIED, MP_EBROKEN, MP_ECLOSED, MP_ECANCELLED) with
 * its message in mp_last_error_message(). */
MP_API int mp_async_get(mp_async *a, double timeout, const mp_args **result);
/* 0 once ready, MP_ETIMEDOUT. */
MP_API int mp_async_wait(mp_async *a, double timeout);
MP_API int mp_async_ready(mp_async *a);
/* 1 if it succeeded, 0 if it failed; MP_ESTATE before it is ready. */
MP_API int mp_async_successful(mp_async *a);
/* Once ready: the failure code (0 on success), the task's own status
 * (its non-zero return value for MP_ETASK) and message (NULL if none). */
MP_API int mp_async_error(mp_async *a, int *status, const char **message);
/* Release the handle.  A task still running completes (its callbacks
 * run); only the result is dropped.  NULL accepted. */
MP_API void mp_async_free(mp_async *a);

/* ------------------------------------------------------------------ */
/* 12. Executors and futures                                           */
/* ------------------------------------------------------------------ */

/* concurrent.futures' ProcessPoolExecutor and ThreadPoolExecutor.  A
 * future is an mp_async: mp_async_get is result(timeout). */
typedef struct mp_executor mp_executor;

/* kind: MP_POOL_PROCESS or MP_POOL_THREAD; workers <= 0: the CPUs this
 * process may use.  mp_executor_new_ex takes all the pool options. */
MP_API int mp_executor_new(mp_executor **out, int kind, int workers);
MP_API int mp_executor_new_ex(mp_executor **out, const mp_pool_options *opt);

/* A future for fn(args).  MP_ESTATE after shutdown.  future may be NULL
 * (a dropped future, as `pool.submit(f)` whose result nobody keeps): the
 * task still runs, and its result or error is discarded. */
MP_API int mp_executor_submit(mp_executor *e, mp_task_fn fn,
                              const mp_args *args, mp_async **future);

/* No more submissions; cancel_futures: cancel those not yet running;
 * wait: return once every running one has finished and the workers are
 * gone.  Idempotent. */
MP_API int mp_executor_shutdown(mp_executor *e, int wait, int cancel_futures);
/* Shut down (wait, no cancel) and release.  NULL accepted. */
MP_API void mp_executor_free(mp_executor *e);

/* Cancel a future that has not started: 1 if it is now cancelled (its
 * get gives MP_ECANCELLED, its error callback runs), 0 if it is running
 * or done.  A task counts as running once a worker has been given it. */
MP_API int mp_async_cancel(mp_async *a);
MP_API int mp_async_cancelled(mp_async *a);
MP_API int mp_async_running(mp_async *a);

/* concurrent.futures.wait: until the first of `n` futures completes
 * (MP_FIRST_COMPLETED), the first fails (MP_FIRST_EXCEPTION: or all
 * complete) or all complete, or timeout seconds pass.  done[i] (may be
 * NULL) says which are done.  Returns how many are done (it is 0 < n
 * when the timeout passed first). */
enum { MP_ALL_COMPLETED = 0, MP_FIRST_COMPLETED = 1,
       MP_FIRST_EXCEPTION = 2 };
MP_API int mp_futures_wait(mp_async *const *fs, size_t n, int return_when,
                           double timeout, int *done);

/* concurrent.futures.as_completed: the futures in the order they
 * complete.  mp_as_completed_next gives the next one (its index in fs):
 * 1, 0 when all have been given, MP_ETIMEDOUT when none completed
 * before the overall timeout set at creation (MP_FOREVER: none). */
typedef struct mp_as_completed mp_as_completed;
MP_API int mp_as_completed_new(mp_as_completed **out, mp_async *const *fs,
                               size_t n, double timeout);
MP_API int mp_as_completed_next(mp_as_completed *it, size_t *index);
MP_API void mp_as_completed_free(mp_as_completed *it);

/* ------------------------------------------------------------------ */
/* 13. Managers: mp_manager, mp_proxy                                  */
/* ------------------------------------------------------------------ */

/* Python's Manager / SyncManager: a server process holds objects (dicts,
 * lists, namespaces, queues, locks, ... and types you register) and any
 * process uses them through proxies: a child, an unrelated program, or a
 * program on another computer (TCP, authenticated with the authkey).
 *
 * Values stored in and returned by managed objects are items of the
 * mp_args encoding: integers, doubles, strings, bytes, None, nested
 * tuples of those, and proxies of the same manager (a dict whose values
 * are lists).  Functions that take one value or a key use a format of
 * mp_args_pack's letters ('i' int, 'I' int64_t, 'd' double, 's' string,
 * 'y' bytes as pointer and size_t), plus 'n' (None, no argument) and 'P'
 * (an mp_proxy *).  Values come back as a tuple of one item (release it
 * with mp_args_free); any such result pointer may be NULL when the value
 * is not wanted.  Keys are plain values compared by type and
 * content: the int 1 and the double 1.0 are different keys.
 *
 * Every proxy holds a reference: the server frees an object when no
 * proxy in any process and no managed container refers to it.  When a
 * client process dies or disconnects, its references are dropped and the
 * locks it held are released; the next acquirer gets MP_EOWNERDEAD (it
 * then holds the lock).  A proxy is safe to use from several threads
 * (each blocking call uses a connection of its own) and may be passed to
 * child processes in their mp_args under every start method.  Calls on
 * a proxy whose manager was shut down, or whose server is gone, return
 * MP_ECLOSED. */
typedef struct mp_manager mp_manager;
typedef struct mp_proxy mp_proxy;

/* Runs in the server process before it serves (Python's initializer). */
typedef void (*mp_manager_init_fn)(const mp_args *args);

typedef struct mp_manager_options {
  const char *address;  /* NULL: a fresh local address only this user can
                           reach; "host:port" for TCP ("127.0.0.1:0": a
                           free port; "0.0.0.0:5000": every interface) */
  int family;           /* MP_AF_*; MP_AF_DEFAULT: from the address */
  const void *authkey;  /* NULL: this process's authkey */
  size_t authkey_n;
  mp_manager_init_fn initializer; /* may be NULL */
  const mp_args *initargs;        /* plain values; may be NULL */
  mp_context *context;  /* how the server process starts; NULL: default */
} mp_manager_options;
#define MP_MANAGER_OPTIONS_INIT {NULL, MP_AF_DEFAULT, NULL, 0, NULL, NULL, NULL}

/* Start a server process (opt may be NULL) and connect to it.  The
 * server is a daemonic child: it ends with mp_manager_shutdown or when
 * this process exits. */
MP_API int mp_manager_start(mp_manager **out, const mp_manager_options *opt);

/* Connect to a running manager (started by mp_manager_start, or served by
 * mp_manager_server_serve_forever) from any process: MP_ENOENT when
 * nobody listens there, MP_EAUTH for a wrong key, MP_ETIMEDOUT. */
MP_API int mp_manager_connect(mp_manager **out, const char *address,
                              const void *authkey, size_t authkey_n,
                              double timeout);

/* The server's address (give it to mp_manager_connect), and its authkey
 * (copies up to cap bytes, returns the length). */
MP_API const char *mp_manager_address(const mp_manager *m);
MP_API size_t mp_manager_authkey(const mp_manager *m, void *buf, size_t cap);

/* Stop the server: every proxy of it, in every process, gives
 * MP_ECLOSED from then on.  For a manager this process started, also
 * wait for the server process to end.  Idempotent. */
MP_API int mp_manager_shutdown(mp_manager *m);

/* Disconnect (and shut down the server if this process started it and
 * has not yet).  Proxies still alive give MP_ECLOSED; free them too.
 * NULL accepted. */
MP_API void mp_manager_free(mp_manager *m);

/* A server in this process (Python's manager.get_server()), for running
 * a manager as a program of its own: bind, print the address, serve. */
typedef struct mp_manager_server mp_manager_server;
MP_API int mp_manager_server_new(mp_manager_server **out,
                                 const mp_manager_options *opt);
MP_API const char *mp_manager_server_address(const mp_manager_server *s);
/* Serve until a client calls mp_manager_shutdown or another thread calls
 * mp_manager_server_stop; 0 then. */
MP_API int mp_manager_server_serve_forever(mp_manager_server *s);
MP_API int mp_manager_server_stop(mp_manager_server *s);
MP_API void mp_manager_server_free(mp_manager_server *s);

/* Custom types (BaseManager.register): a typeid, how to make and destroy
 * the object in the server, and the methods clients may call by name.
 * Methods run in the server one at a time (under the server's lock), so
 * they need no locking of their own and must not block; they append
 * their return values to `result` and return 0 or an MP_E* code (with
 * mp_set_error for the message the caller sees).  Register before
 * mp_manager_start or mp_manager_server_new: the server gets the
 * registry under every start method.  MP_EEXIST for a typeid taken. */
typedef struct mp_manager_method {
  const char *name;
  int (*fn)(void *obj, const mp_args *args, mp_args *result);
} mp_manager_method;

typedef struct mp_manager_type {
  /* Python's typeid (spelled so because typeid is a C++ keyword). */
  const char *type_id;
  int (*create)(void **obj, const mp_args *args);
  void (*destroy)(void *obj); /* may be NULL */
  const mp_manager_method *methods;
  size_t n_methods;
} mp_manager_type;

MP_API int mp_manager_register(const mp_manager_type *type);

/* Make an object of any type, built-in or registered, by typeid ("dict",
 * "list", "Namespace", "Queue", "JoinableQueue", "Lock", "RLock",
 * "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier",
 * "Value", "Array", "Pool", or yours) with constructor arguments;
 * MP_ENOENT for an unknown typeid. */
MP_API int mp_manager_create(mp_manager *m, const char *type_id,
                             const mp_args *args, mp_proxy **out);

/* Call a method by name: its arguments and return values are tuples
 * (result may be NULL when not wanted).  mp_proxy_callf packs the
 * arguments from a format instead. */
MP_API int mp_proxy_call(mp_proxy *p, const char *method,
                         const mp_args *args, mp_args **result);
MP_API int mp_proxy_callf(mp_proxy *p, const char *method, mp_args **result,
                          const char *fmt, ...);

/* The object's typeid, and the manager it belongs to (borrowed). */
MP_API const char *mp_proxy_typeid(const mp_proxy *p);
MP_API mp_manager *mp_proxy_manager(mp_proxy *p);

/* What Python's print(proxy) shows, fetched in one round trip:
 * "{'a': 1}" for a dict, "[1, 2]" for a list, "Namespace(x=1, y='a')",
 * "Value('i', 5)", "array('d', [1.0])"; "<Lock>", "<Queue>" ... for the
 * other types.  snprintf's contract (the whole length is returned); the
 * call's error when the manager fails. */
MP_API int mp_proxy_repr(mp_proxy *p, char *buf, size_t cap);

/* Drop this reference.  NULL accepted. */
MP_API void mp_proxy_free(mp_proxy *p);

/* Pass a proxy in a child's arguments; in the child, mp_args_proxy
 * returns it (owned by the args: do not free).  Also how a proxy is
 * stored as a value ('P' in formats). */
MP_API int mp_args_add_proxy(mp_args *a, mp_proxy *p);
MP_API mp_proxy *mp_args_proxy(const mp_args *a, size_t i);

/* Built-in types. */
MP_API int mp_manager_dict(mp_manager *m, mp_proxy **out);
MP_API int mp_manager_list(mp_manager *m, mp_proxy **out);
MP_API int mp_manager_namespace(mp_manager *m, mp_proxy **out);
MP_API int mp_manager_queue(mp_manager *m, int64_t maxsize, mp_proxy **out);
MP_API int mp_manager_joinable_queue(mp_manager *m, int64_t maxsize,
                                     mp_proxy **out);
MP_API int mp_manager_lock(mp_manager *m, mp_proxy **out);
MP_API int mp_manager_rlock(mp_manager *m, mp_proxy **out);
MP_API int mp_manager_semaphore(mp_manager *m, unsigned value,
                                mp_proxy **out);
MP_API int mp_manager_bounded_semaphore(mp_manager *m, unsigned value,
                                        mp_proxy **out);
/* lock: a managed Lock or RLock of the same manager; NULL: a new RLock. */
MP_API int mp_manager_condition(mp_manager *m, mp_proxy *lock,
                                mp_proxy **out);
MP_API int mp_manager_event(mp_manager *m, mp_proxy **out);
MP_API int mp_manager_barrier(mp_manager *m, unsigned parties,
                              mp_proxy **out);
/* Value(typecode, value): typecodes as for mp_value_new; the value is
 * one item by format ("i", 42).  Array(typecode, length) of zeros. */
MP_API int mp_manager_value(mp_manager *m, char typecode, mp_proxy **out,
                            const char *fmt, ...);
MP_API int mp_manager_array(mp_manager *m, char typecode, size_t length,
                            mp_proxy **out);
/* Pool(workers) in the server (0: the server's CPUs; at most 1024):
 * see mp_proxy_pool_map below. */
MP_API int mp_manager_pool(mp_manager *m, int workers, mp_proxy **out);

/* dict.  Missing key: MP_ENOENT (Python's KeyError).  keys / values /
 * items come in insertion order; items as k0, v0, k1, v1, ...
 * Iterating (Python's `for k in d`, d.keys(), d.items()): keys, values
 * and items are each a snapshot of the whole dict taken in one round
 * trip, under the server's lock, so no other process's change lands
 * in the middle of it and none made after it shows; iterate over the
 * tuple.  (Python's keys() and items() copy too, while `for k in d`
 * walks the live dict in the server and fails when another process
 * changes its size.) */
MP_API int mp_dict_set(mp_proxy *d, const char *fmt, ...); /* key, value */
MP_API int mp_dict_get(mp_proxy *d, mp_args **value, const char *fmt, ...);
MP_API int mp_dict_delete(mp_proxy *d, const char *fmt, ...);
MP_API int mp_dict_pop(mp_proxy *d, mp_args **value, const char *fmt, ...);
MP_API int mp_dict_contains(mp_proxy *d, const char *fmt, ...); /* 1/0 */
/* d.get(k, default), d.pop(k, default), d.setdefault(k, default): the
 * format gives the key, then the default ("si", "k", 0). */
MP_API int mp_dict_get_or(mp_proxy *d, mp_args **value, const char *fmt, ...);
MP_API int mp_dict_pop_or(mp_proxy *d, mp_args **value, const char *fmt, ...);
MP_API int mp_dict_setdefault(mp_proxy *d, mp_args **value,
                              const char *fmt, ...);
/* d.popitem(): the last key set and its value (two items), removed;
 * MP_ENOENT when the dict is empty. */
MP_API int mp_dict_popitem(mp_proxy *d, mp_args **item);
MP_API int64_t mp_dict_len(mp_proxy *d);
MP_API int mp_dict_keys(mp_proxy *d, mp_args **keys);
MP_API int mp_dict_values(mp_proxy *d, mp_args **values);
MP_API int mp_dict_items(mp_proxy *d, mp_args **items);
/* items: k0, v0, k1, v1, ... (an even count). */
MP_API int mp_dict_update(mp_proxy *d, const mp_args *items);
MP_API int mp_dict_clear(mp_proxy *d);

/* list.  Indexes may be negative (from the end); out of range:
 * MP_ERANGE.  remove of a missing value: MP_EVALUE.  slice: Python's
 * l[start:stop] (clamped, negative from the end). */
MP_API int mp_list_append(mp_proxy *l, const char *fmt, ...);
MP_API int mp_list_extend(mp_proxy *l, const mp_args *items);
MP_API int mp_list_get(mp_proxy *l, int64_t index, mp_args **value);
MP_API int mp_list_set(mp_proxy *l, int64_t index, const char *fmt, ...);
MP_API int mp_list_insert(mp_proxy *l, int64_t index, const char *fmt, ...);
MP_API int mp_list_pop(mp_proxy *l, int64_t index, mp_args **value);
MP_API int mp_list_remove(mp_proxy *l, const char *fmt, ...);
MP_API int64_t mp_list_len(mp_proxy *l);
MP_API int mp_list_slice(mp_proxy *l, int64_t start, int64_t stop,
                         mp_args **items);
/* Iterating, Python's `for x in l`, l[:] or list(l): every item, as a
 * snapshot taken in one round trip (l[0:len]) like mp_dict_items: a
 * change another process makes is wholly in it or wholly not.  Python's
 * list proxy iterates by index, a round trip per item, so items another
 * process inserts or removes meanwhile are skipped or seen twice. */
MP_API int mp_list_copy(mp_proxy *l, mp_args **items);
/* l.index(x) (MP_EVALUE when absent; "index" through mp_proxy_callf
 * takes start and stop too), l.count(x), x in l (1/0).  Equal means the
 * same type and content, as for keys. */
MP_API int64_t mp_list_index(mp_proxy *l, const char *fmt, ...);
MP_API int64_t mp_list_count(mp_proxy *l, const char *fmt, ...);
MP_API int mp_list_contains(mp_proxy *l, const char *fmt, ...);
/* l.reverse(); l.sort(reverse=...): stable, in Python's order (ints and
 * doubles by value together, NaN last; strings, bytes and tuples each
 * among themselves); items of kinds that have no order between them
 * (a string and a number, a proxy) are MP_ETYPE and leave the list as it
 * was.  l.clear(). */
MP_API int mp_list_reverse(mp_proxy *l);
MP_API int mp_list_sort(mp_proxy *l, int reverse);
MP_API int mp_list_clear(mp_proxy *l);

/* Namespace: named attributes; a missing one is MP_ENOENT. */
MP_API int mp_namespace_set(mp_proxy *ns, const char *name,
                            const char *fmt, ...);
MP_API int mp_namespace_get(mp_proxy *ns, const char *name, mp_args **value);
MP_API int mp_namespace_delete(mp_proxy *ns, const char *name);
/* The attributes, as Python's repr(ns) lists them: the names that do
 * not start with '_', sorted (by code point), as a snapshot (names:
 * strings; items: name0, value0, name1, value1, ...).  Unlike Python,
 * where ns._x = 1 stays on the proxy, a hidden name set here is shared
 * (mp_namespace_get reads it); only these listings leave it out. */
MP_API int mp_namespace_names(mp_proxy *ns, mp_args **names);
MP_API int mp_namespace_items(mp_proxy *ns, mp_args **items);

/* Queue / JoinableQueue of values: MP_EFULL / MP_EEMPTY after timeout
 * seconds (0: do not wait), as mp_queue_put / mp_queue_get. */
MP_API int mp_proxy_queue_put(mp_proxy *q, double timeout,
                              const char *fmt, ...);
MP_API int mp_proxy_queue_get(mp_proxy *q, double timeout, mp_args **value);
MP_API int64_t mp_proxy_queue_qsize(mp_proxy *q);
MP_API int mp_proxy_queue_empty(mp_proxy *q);
MP_API int mp_proxy_queue_full(mp_proxy *q);
MP_API int mp_proxy_queue_task_done(mp_proxy *q);
MP_API int mp_proxy_queue_join(mp_proxy *q, double timeout);

/* Lock and RLock, Semaphore and BoundedSemaphore: as mp_lock_* and
 * mp_semaphore_*, including MP_EOWNERDEAD, MP_EVALUE and MP_EPERM. */
MP_API int mp_proxy_lock_acquire(mp_proxy *l, double timeout);
MP_API int mp_proxy_lock_release(mp_proxy *l);
MP_API int mp_proxy_lock_locked(mp_proxy *l);
MP_API int mp_proxy_semaphore_acquire(mp_proxy *s, double timeout);
MP_API int mp_proxy_semaphore_release(mp_proxy *s);
MP_API int mp_proxy_semaphore_get_value(mp_proxy *s);

/* Condition: as mp_condition_* (wait and notify need the lock held). */
MP_API int mp_proxy_condition_acquire(mp_proxy *c, double timeout);
MP_API int mp_proxy_condition_release(mp_proxy *c);
MP_API int mp_proxy_condition_wait(mp_proxy *c, double timeout);
MP_API int mp_proxy_condition_wait_for(mp_proxy *c, int (*pred)(void *arg),
                                       void *arg, double timeout);
MP_API int mp_proxy_condition_notify(mp_proxy *c, int n);
MP_API int mp_proxy_condition_notify_all(mp_proxy *c);

/* Event: wait gives 1 when set, 0 on timeout. */
MP_API int mp_proxy_event_set(mp_proxy *e);
MP_API int mp_proxy_event_clear(mp_proxy *e);
MP_API int mp_proxy_event_is_set(mp_proxy *e);
MP_API int mp_proxy_event_wait(mp_proxy *e, double timeout);

/* Barrier: wait gives this party's index (0 .. parties-1); MP_EBROKEN;
 * MP_ETIMEDOUT (the barrier is then broken), as mp_barrier_wait. */
MP_API int mp_proxy_barrier_wait(mp_proxy *b, double timeout);
MP_API int mp_proxy_barrier_reset(mp_proxy *b);
MP_API int mp_proxy_barrier_abort(mp_proxy *b);
MP_API int mp_proxy_barrier_parties(mp_proxy *b);
MP_API int mp_proxy_barrier_n_waiting(mp_proxy *b);
MP_API int mp_proxy_barrier_broken(mp_proxy *b);

/* Value and Array: get and set by format, as for mp_value_set_int /
 * _double: MP_ETYPE for a double in an integer typecode, MP_ERANGE for
 * a value the typecode cannot hold or an index past the end. */
MP_API int mp_proxy_value_get(mp_proxy *v, mp_args **value);
MP_API int mp_proxy_value_set(mp_proxy *v, const char *fmt, ...);
MP_API int mp_proxy_array_get(mp_proxy *a, size_t index, mp_args **value);
MP_API int mp_proxy_array_set(mp_proxy *a, size_t index, const char *fmt,
                              ...);
MP_API int64_t mp_proxy_array_len(mp_proxy *a);
MP_API int mp_proxy_array_tolist(mp_proxy *a, mp_args **items);

/* Pool (Python's Manager().Pool()): an mp_pool of worker processes in
 * the server, shared by every client; apply, map and starmap wait and
 * give what mp_pool_apply / _map / _starmap give, with the same codes:
 * MP_ETASK with the task's message, MP_EWORKERDIED (the worker is
 * replaced), MP_ESTATE once closed, MP_ECLOSED when terminated or the
 * server is gone.  The workers start by the server's default start
 * method; they die with the server.  Not served: imap and
 * imap_unordered (use map_async, or mp_proxy_pool_map from threads of
 * your own: each call has its own connection), initializer and
 * maxtasksperchild.
 *
 * The task function travels as mp_pool's does, as (module, offset), and
 * the server looks it up as a pool worker does: a module it cannot load
 * or an offset outside its module is MP_ENOENT for that call, and the
 * server goes on.  So a remote client (another program, over TCP) must
 * be the same program, same build, as the server (Python likewise needs
 * the same module to unpickle a function by name); the server cannot
 * tell a function of another build whose offset falls inside its own
 * program: a worker runs whatever is there, and if it crashes the call
 * gives MP_EWORKERDIED.  Tasks run only in the workers, never in the
 * server itself.  Whoever holds the authkey may have the workers run
 * any function of the server's program (or load a library by path), as
 * in Python, where the key guards unpickling: keep a TCP manager's key
 * secret. */
MP_API int mp_proxy_pool_apply(mp_proxy *p, mp_task_fn fn,
                               const mp_args *args, mp_args **result);
MP_API int mp_proxy_pool_map(mp_proxy *p, mp_task_fn fn, const mp_args *items,
                             size_t chunksize, mp_args **results);
MP_API int mp_proxy_pool_starmap(mp_proxy *p, mp_task_fn fn,
                                 const mp_args *items, size_t chunksize,
                                 mp_args **results);
/* Python's pool proxy apply_async / map_async / starmap_async: the call
 * is made from a thread of this process and completes an mp_async as a
 * local pool's does (mp_async_get / _wait / _ready / _successful /
 * _error / _free; out may be NULL, the task still runs).  The callbacks
 * run in that thread, here in the client (Python runs a managed pool's
 * callbacks in the server).  A failed task's status is MP_ETASK: its own
 * return code stays in the server (the message comes).  mp_async_cancel
 * returns 0: the call has gone.  MP_EINVAL for a NULL proxy, function or
 * items; MP_ENOMEM, MP_EOS (no thread). */
MP_API int mp_proxy_pool_apply_async(mp_proxy *p, mp_task_fn fn,
                                     const mp_args *args, mp_result_cb cb,
                                     mp_error_cb ecb, void *arg,
                                     mp_async **out);
MP_API int mp_proxy_pool_map_async(mp_proxy *p, mp_task_fn fn,
                                   const mp_args *items, size_t chunksize,
                                   mp_result_cb cb, mp_error_cb ecb,
                                   void *arg, mp_async **out);
MP_API int mp_proxy_pool_starmap_async(mp_proxy *p, mp_task_fn fn,
                                       const mp_args *items,
                                       size_t chunksize, mp_result_cb cb,
                                       mp_error_cb ecb, void *arg,
                                       mp_async **out);

/* As mp_pool_close / _terminate / _join (join: 0 or MP_ETIMEDOUT). */
MP_API int mp_proxy_pool_close(mp_proxy *p);
MP_API int mp_proxy_pool_terminate(mp_proxy *p);
MP_API int mp_proxy_pool_join(mp_proxy *p, double timeout);

/* ------------------------------------------------------------------ */
/* 14. Logging                                                         */
/* ------------------------------------------------------------------ */

/* multiprocessing.log_to_stderr: mproc's own messages (workers started,
 * replaced, exited ...) at `level` or above go to stderr as
 * "[LEVEL/ProcessName] message".  MP_LOG_OFF (the default) silences it.
 * The level is inherited by children. */
enum { MP_LOG_DEBUG = 10, MP_LOG_INFO = 20, MP_LOG_WARNING = 30,
       MP_LOG_ERROR = 40, MP_LOG_OFF = 100 };
MP_API void mp_log_to_stderr(int level);
MP_API int mp_log_level(void);
/* Log a message of the program's own through the same channel. */
MP_API void mp_log(int level, const char *fmt, ...) MP_PRINTF(2, 3);

/* Route mproc's messages (and mp_log's) to fn instead of stderr: every
 * message at `level` or above calls fn(level, process name, text, arg),
 * from whichever thread logs it (fn must be thread-safe; it must not call
 * mp_log).  fn NULL goes back to stderr.  Set it, as mp_log_to_stderr,
 * before starting the threads and pools whose messages it is for (the
 * setting is not synchronised with threads logging meanwhile).  Python's
 * get_logger().addHandler(...).  A forked child keeps the handler; a
 * spawned child has the level (as Python passes it) and logs to stderr
 * unless the code above its MP_MAIN_GUARD sets a handler of its own. */
typedef void (*mp_log_fn)(int level, const char *process_name,
                          const char *message, void *arg);
MP_API void mp_log_set_handler(mp_log_fn fn, void *arg, int level);

/* ------------------------------------------------------------------ */
/* 15. Finalizers and after-fork callbacks (multiprocessing.util)      */
/* ------------------------------------------------------------------ */

/* Python's util.Finalize(obj, callback, exitpriority=...): fn(arg) runs
 * once, at the latest when this process exits: finalizers with an exit
 * priority run by priority, highest first (later-made first among
 * equals); those >= 0 before the process ends its children (a pool's own
 * ends running pools at priority 15, as in Python), negative ones after.
 * MP_FINALIZE_NO_EXIT: not at exit (Python's None), only through
 * mp_finalizer_call.  *out (may be NULL when an exit priority is given)
 * is the handle; it is freed when the finalizer runs or is cancelled.
 * A child starts with no finalizers (its parent's are not its own). */
#define MP_FINALIZE_NO_EXIT (-2147483647 - 1) /* INT_MIN */
typedef struct mp_finalizer mp_finalizer;
MP_API int mp_finalize(mp_finalizer **out, void (*fn)(void *), void *arg,
                       int exitpriority);
/* Run it now (Python's f()) or drop it (f.cancel()); either frees it.
 * MP_ESTATE when it already ran or is not this process's. */
MP_API int mp_finalizer_call(mp_finalizer *f);
MP_API int mp_finalizer_cancel(mp_finalizer *f);

/* Python's util.register_after_fork: fn(arg) runs in every child this
 * process starts afterwards, before its target, in the order registered
 * (a spawned child runs those the code above its MP_MAIN_GUARD
 * registered). */
MP_API int mp_register_after_fork(void (*fn)(void *), void *arg);

/* Release memory mproc allocated for the caller (mp_conn_recv_bytes,
 * mp_queue_get). */
MP_API void mp_free(void *p);

/* Library version as a string, e.g. "0.1.0". */
MP_API const char *mp_version(void);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_H */
