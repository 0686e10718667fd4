/*
 * platform.h - the internal OS interface.
 *
 * Common code (the .c files in src/) does all of its OS work through these functions;
 * each backend (src/posix/, src/win32/) implements every one of them.
 * Nothing here names an OS type: handles travel as mpi_fd (an intptr_t
 * holding a file descriptor or a HANDLE).
 *
 * Parts:
 *   1. the library lock, time, randomness, ids, executable path
 *   2. function references as (module, offset)
 *   3. waiting on handles
 *   4. starting, waiting for and signalling children (parent side)
 *   5. the bootstrap of a spawned child and its exit record (child side)
 *   6. byte streams: the pipes under mp_conn
 *   7. shared memory segments, waiting on a word in them, process liveness
 *   8. threads and condition variables (for mp_thread and the pools)
 *
 * Errors: functions return 0 or a negative MP_E* code and, on failure,
 * set the detail with mp__error(code, fmt, ...) (src/internal.h), which
 * also translates errno / GetLastError text where the backend adds it.
 */
#ifndef MPROC_PLATFORM_H
#define MPROC_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "mproc.h"

typedef intptr_t mpi_fd;
#define MPI_BAD_FD ((mpi_fd)-1)

/* ---- 1. Lock, time, randomness, ids ---------------------------------- */

/* One recursive library-wide lock guarding the process registry and
 * counters.  Held only briefly, never across a blocking wait.  POSIX
 * resets it in the child of every fork (pthread_atfork). */
void mpi_lock(void);
void mpi_unlock(void);

/* A plain (non-recursive) mutex for one object's state, e.g. a
 * connection's send side.  mpi_mutex_new: 0 or MP_ENOMEM. */
typedef struct mpi_mutex mpi_mutex;
int mpi_mutex_new(mpi_mutex **m);
void mpi_mutex_lock(mpi_mutex *m);
void mpi_mutex_unlock(mpi_mutex *m);
void mpi_mutex_free(mpi_mutex *m);

/* Monotonic clock in seconds. */
double mpi_now(void);

/* Let another thread that is ready to run have this CPU (sched_yield,
 * SwitchToThread); returns at once when there is none. */
void mpi_yield(void);

/* Cryptographically random bytes (getrandom/arc4random, BCryptGenRandom).
 * 0 or MP_EOS. */
int mpi_random(void *buf, size_t n);

int64_t mpi_getpid(void);
int64_t mpi_getppid(void);
int mpi_cpu_count(void);         /* >= 1 */
int mpi_process_cpu_count(void); /* CPUs this process may use, >= 1 */

/* This process's executable as a UTF-8 path.  0, MP_ERANGE (too small)
 * or MP_EOS. */
int mpi_exe_path(char *buf, size_t cap);

/* Short description of POSIX signal `sig` ("SIGSEGV"); "signal" if
 * unknown.  Windows maps its crash codes onto these numbers too. */
const char *mpi_signal_name(int sig);

/* ---- 2. Function references ------------------------------------------ */

/* Describe code address `fn` as (module, offset): module is "" for the
 * main executable, otherwise the path of the shared library holding it.
 * 0, MP_EINVAL (fn in no module), MP_ERANGE (cap too small). */
int mpi_fn_encode(void (*fn)(void), char *module, size_t cap,
                  uint64_t *offset);

/* The address in this process of (module, offset); loads the module if it
 * is not loaded yet.  0, MP_ENOENT (no such module), MP_EINVAL (offset
 * outside the module). */
int mpi_fn_decode(const char *module, uint64_t offset, void (**fn)(void));

/* ---- 3. Waiting --------------------------------------------------------- */

/* Wait until at least one of n handles is ready (fd readable or hung up;
 * HANDLE signalled) or timeout seconds pass (negative: forever).  Sets
 * ready[i] (if ready != NULL) to 1 or 0.  Returns the number ready (> 0),
 * MP_ETIMEDOUT, or MP_EOS.  No limit on n. */
int mpi_wait(const mpi_fd *h, size_t n, double timeout, int *ready);

/* ---- 4. Children (parent side) --------------------------------------- */

enum { MPI_FORK = 1, MPI_SPAWN = 2, MPI_FORKSERVER = 3 };

/* The platform's default start method, and whether it has a method. */
int mpi_default_method(void);
int mpi_method_supported(int method);

typedef struct mpi_child mpi_child; /* defined by each backend */

typedef struct mpi_start_info {
  int method;           /* MPI_FORK, MPI_SPAWN or MPI_FORKSERVER */
  int daemon;           /* child dies when this process dies */
  /* MPI_SPAWN, MPI_FORKSERVER: the bootstrap bytes the child reads in
   * mpi_boot_detect(). */
  const void *boot;
  size_t boot_len;
  /* MPI_FORK: runs in the child right after fork; never returns. */
  void (*fork_main)(void *arg);
  void *fork_arg;
  /* MPI_SPAWN, MPI_FORKSERVER: the program to run (NULL: this
   * executable) and its argv (NULL-terminated, argv[0] first; NULL: just
   * the program's path).  Windows builds its command line from argv. */
  const char *exe;
  char *const *argv;
  /* MPI_SPAWN, MPI_FORKSERVER: handles the child receives, in this order
   * (duplicated into it; ours stay open).  A forked child simply has
   * them: the same values. */
  const mpi_fd *handles;
  size_t n_handles;
} mpi_start_info;

/* Start a child.  MP_ENOTSUP for a method the platform lacks, MP_EOS. */
int mpi_child_start(const mpi_start_info *si, mpi_child **out);

int64_t mpi_child_pid(const mpi_child *c);

/* Ready once the child has ended (it may turn ready a moment before the
 * exit status can be collected; mpi_child_wait copes with that). */
mpi_fd mpi_child_sentinel(const mpi_child *c);

typedef struct mpi_exit_info {
  int exitcode;   /* Python style: code, or -N for signal N */
  int booted;     /* spawn: 1 if the child read its bootstrap (reached the
                   * guard); always 1 for fork and forkserver */
  void *record;   /* the bytes the child sent with mpi_status_send, or
                   * NULL; malloc'd, the caller frees */
  size_t record_len;
} mpi_exit_info;

/* Wait up to timeout seconds (negative: forever) for the child to end and
 * collect it.  0 with *info filled, or MP_ETIMEDOUT.  Call at most once
 * successfully per child. */
int mpi_child_wait(mpi_child *c, double timeout, mpi_exit_info *info);

/* hard = 0: SIGTERM / TerminateProcess(-15); 1: SIGKILL / (-9). */
int mpi_child_signal(mpi_child *c, int hard);

/* Close the handles; never kills or waits. */
void mpi_child_free(mpi_child *c);

/* ---- 5. The child side ---------------------------------------------- */

enum { MPI_BOOT_NONE = 0, MPI_BOOT_CHILD = 1 };

/* Called by the main guard.  MPI_BOOT_NONE in a normal program.  In a
 * spawned child: reads the bootstrap bytes the parent sent (malloc'd into
 * *boot), acknowledges them, and returns MPI_BOOT_CHILD.  The POSIX
 * backend's fork server also lives here: it never returns in the server,
 * and its forked children return MPI_BOOT_CHILD with their bootstrap. */
int mpi_boot_detect(void **boot, size_t *len);

/* After MPI_BOOT_CHILD: the handles the parent passed (mpi_start_info's
 * handles, in order, valid in this process; not inheritable), malloc'd
 * into *h; the caller owns array and handles.  *n is 0 when none. */
int mpi_boot_handles(mpi_fd **h, size_t *n);

/* 1 while this process was started by spawn and has not yet passed the
 * main guard (mpi_boot_detect not called yet). */
int mpi_boot_pending(void);

/* In a spawned or fork-server child, after decoding the bootstrap: apply
 * the daemon rule (die with the parent whose pid is given). */
int mpi_child_init(int daemon, int64_t parent_pid);

/* In a child: send the exit record to the parent (once, right before the
 * process exits).  No-op in the main process. */
int mpi_status_send(const void *rec, size_t len);

/* Is the process that started us alive?  1/0.  Wait for it to end:
 * 0 or MP_ETIMEDOUT. */
int mpi_parent_alive(int64_t parent_pid);
int mpi_parent_wait(int64_t parent_pid, double timeout);

/* End the process at once with `code` (no atexit handlers). */
void mpi_exit(int code);

/* ---- 6. Byte streams ------------------------------------------------- */

/* A connected pair: duplex, both ends read and write; otherwise a reads
 * and b writes.  Neither end is inherited by spawned children (they get
 * only what mpi_start_info passes).  POSIX: socketpair / pipe; Windows:
 * an overlapped named pipe pair.  0 or MP_EOS. */
int mpi_stream_pair(int duplex, mpi_fd *a, mpi_fd *b);

/* Write all n bytes (blocking).  MP_EPIPE when no reader is left. */
int mpi_stream_write(mpi_fd h, const void *p, size_t n);

/* Read exactly n bytes (blocking).  MP_EEOF when the stream ends first
 * (*got says how many arrived, may be NULL). */
int mpi_stream_read(mpi_fd h, void *p, size_t n, size_t *got);

/* Read what has arrived, at least 1 byte and at most n (blocking until
 * there is one).  MP_EEOF when the stream ended with nothing read. */
int mpi_stream_recv(mpi_fd h, void *p, size_t n, size_t *got);

/* Read what has arrived, at most n bytes, without waiting: 0 with *got
 * bytes (0 when nothing has arrived yet); MP_EEOF when the stream has
 * ended with nothing read.  One system call where the OS allows (a
 * bounded receive uses it before it polls). */
int mpi_stream_recv_ready(mpi_fd h, void *p, size_t n, size_t *got);

/* 1 when a read would not block (data or end of stream), 0 when timeout
 * seconds (negative: forever) passed first; or an error code (MP_EPERM on
 * a write-only end: callers check the direction first). */
int mpi_stream_poll(mpi_fd h, double timeout);

void mpi_stream_close(mpi_fd h);

/* Handles that travel to another process over a local stream (a
 * socketpair or an mpi_accept / mpi_connect stream of MPI_AF_LOCAL), for
 * objects sent through a connection or a queue (handoff.c).
 * mpi_handle_dup: a copy of h in this process, not inherited (MP_ECLOSED
 * when h is not open).  mpi_handles_send: the n handles, which the
 * caller keeps, to the stream's peer, whose pid is peer_pid: POSIX sends
 * the descriptors by SCM_RIGHTS (peer_pid unused); Windows duplicates
 * them into process peer_pid and writes their values there, 8 bytes
 * each.  mpi_handles_recv: n handles so sent, within timeout seconds
 * (negative: forever): 0, MP_ETIMEDOUT, MP_EPROTO, MP_EEOF; on failure
 * none is left open. */
int mpi_handle_dup(mpi_fd h, mpi_fd *out);
int mpi_handles_send(mpi_fd stream, const mpi_fd *h, size_t n,
                     int64_t peer_pid);
int mpi_handles_recv(mpi_fd stream, mpi_fd *out, size_t n, double timeout);

/* mpi_wait (part 3) accepts stream read ends as well: ready = readable
 * (Windows: a pipe that is not one of these streams is MP_EINVAL). */

/* ---- 7. Shared memory and waiting on a word ------------------------- */

/* A mapped segment of shared memory, zero-filled when created.  The
 * backend keeps a small header of its own in front of what mpi_shm_addr
 * returns (64-byte aligned).  Anonymous segments have no name at all
 * (memfd / unlinked shm_open; an unnamed file mapping): the OS frees them
 * when the last process holding them goes, crashes included, so nothing
 * can leak.  They reach other processes as a handle (mpi_start_info). */
typedef struct mpi_shm mpi_shm;

/* A new anonymous segment of `size` usable bytes.  MP_ENOMEM, MP_EOS. */
int mpi_shm_new(size_t size, mpi_shm **out);

/* Map the segment behind handle `h` (anonymous or named) received from
 * another process; takes ownership of h (closed on failure too).
 * MP_EPROTO when it is not an mproc segment. */
int mpi_shm_adopt(mpi_fd h, mpi_shm **out);

/* The handle to pass to a child; owned by the segment. */
mpi_fd mpi_shm_handle(const mpi_shm *s);
void *mpi_shm_addr(const mpi_shm *s);
size_t mpi_shm_size(const mpi_shm *s);

/* Map all of a segment's pages into this process now, in one go rather
 * than one fault at a time as they are first touched (a pool worker
 * that has just mapped an array; faults cost microseconds each in a VM).
 * Best effort: Linux's MADV_POPULATE_WRITE, else a read of every page;
 * nothing on Windows. */
void mpi_shm_prefault(mpi_shm *s);

/* Unmap and close.  The memory lives on while other processes map it. */
void mpi_shm_free(mpi_shm *s);

/* Named segments (mp_shm).  `name` is the user's name (no path); the
 * backend turns it into an OS name that fits the platform's limits.
 * The segment is destroyed when the last process using it closes it or
 * ends, crashes included (POSIX: a small tracker process counts the users
 * by their connections to it; Windows: the kernel counts handles).
 * create: MP_EEXIST when taken; attach: MP_ENOENT when missing. */
int mpi_shm_create(const char *name, size_t size, mpi_shm **out);
int mpi_shm_attach(const char *name, mpi_shm **out);
/* Remove the name now (users keep their mappings).  MP_ENOENT when
 * missing.  A no-op on Windows, where names go with the last handle. */
int mpi_shm_unlink(const char *name);

/* A 32-bit word in a segment that threads of any process can sleep on
 * until it changes (a futex).  `value` belongs to the caller (use
 * atomic.h on it); `os` belongs to the backend (Windows counts sleepers
 * there).  Both start at 0. */
typedef struct mpi_word {
  volatile uint32_t value;
  volatile uint32_t os;
} mpi_word;

/* Sleep while w->value == expected, at most timeout seconds (negative:
 * forever).  Returns 0 (woken, value changed, or spuriously: callers
 * re-check) or MP_ETIMEDOUT.  w must lie in segment s. */
int mpi_word_wait(mpi_shm *s, mpi_word *w, uint32_t expected,
                  double timeout);

/* Wake one (all = 0) or all of the threads sleeping on w. */
void mpi_word_wake(mpi_shm *s, mpi_word *w, int all);

/* Whether process `pid` is still running: 1 or 0.  A process that has
 * ended but is not yet reaped (a zombie) counts as ended. */
int mpi_pid_alive(int64_t pid);

/* ---- 8. Threads and condition variables ---------------------------- */

/* A joinable OS thread running fn(arg).  0, MP_ENOMEM or MP_EOS. */
typedef struct mpi_thread mpi_thread;
int mpi_thread_start(void (*fn)(void *), void *arg, mpi_thread **out);

/* Wait for the thread to end and release it (blocking, no timeout: the
 * callers build timed joins from a flag and a condition variable). */
void mpi_thread_join(mpi_thread *t);

/* Let the thread run on by itself and release the object. */
void mpi_thread_detach(mpi_thread *t);

/* The OS id of the calling thread (gettid, pthread_threadid_np,
 * GetCurrentThreadId): > 0, unique among the threads alive in the
 * system. */
int64_t mpi_thread_id(void);

/* A condition variable used with an mpi_mutex (part 1). */
typedef struct mpi_cond mpi_cond;
int mpi_cond_new(mpi_cond **out);
/* Release m, wait to be signalled or for timeout seconds (negative:
 * forever), take m back.  0 (signalled, or spuriously: callers re-check)
 * or MP_ETIMEDOUT.  Timeouts use the monotonic clock. */
int mpi_cond_wait(mpi_cond *c, mpi_mutex *m, double timeout);
void mpi_cond_signal(mpi_cond *c);
void mpi_cond_broadcast(mpi_cond *c);
void mpi_cond_free(mpi_cond *c);

/* ---- 9. Cryptography ------------------------------------------------ */

/* HMAC-SHA256 of msg under key, from the OS or a well-kept library (never
 * written here): OpenSSL's libcrypto on POSIX, CommonCrypto on macOS,
 * BCrypt on Windows.  0 or MP_EOS. */
#define MPI_SHA256_SIZE 32
int mpi_hmac_sha256(const void *key, size_t key_n, const void *msg,
                    size_t msg_n, unsigned char out[MPI_SHA256_SIZE]);

/* ---- 10. Listeners and connections -------------------------------- */

/* Families: a local socket (POSIX: a Unix-domain socket file; Windows: a
 * named pipe), TCP over IPv4 or IPv6. */
enum { MPI_AF_LOCAL = 1, MPI_AF_INET = 2, MPI_AF_INET6 = 3 };

typedef struct mpi_listener mpi_listener;

/* Listen at `address` with room for `backlog` (>= 1) waiting connections.
 * MPI_AF_LOCAL: NULL or "" makes a fresh unguessable name that only this
 * user can reach (POSIX: "<tmpdir>/mproc-XXXXXX/listener", the directory
 * 0700 and the socket 0600, both removed by mpi_listener_close; Windows:
 * "\\.\pipe\mproc-<random>" with an owner-only DACL, remote clients
 * rejected); otherwise that path / pipe name (POSIX: created 0600; a file
 * already there is MP_EEXIST).  "@name" is a Linux abstract socket name
 * (no file; peers of another user are dropped by mpi_accept, and
 * mpi_connect refuses a listener of another user with MP_EPERM);
 * MP_ENOTSUP on other systems, Windows included.  MPI_AF_INET / MPI_AF_INET6: "host:port"
 * ("[host]:port" for IPv6 literals), port 0 for any free port.
 * The bound address, in the same form (with the port chosen), is copied
 * to `bound` (cap bytes, at least 300).  0, MP_EINVAL (malformed address
 * or family), MP_EEXIST (address in use), MP_EPERM, MP_EOS. */
int mpi_listen(int family, const char *address, int backlog,
               mpi_listener **out, char *bound, size_t cap);

/* Wait up to `timeout` seconds (negative: forever) for a connection and
 * return its stream in *out: a duplex stream for mpi_stream_read / write
 * / recv / poll / close (part 6) and mpi_wait.  0, MP_ETIMEDOUT,
 * MP_ECLOSED (mpi_listener_shutdown was called), MP_EOS.  One thread at a
 * time per listener. */
int mpi_accept(mpi_listener *l, double timeout, mpi_fd *out);

/* The address of the peer of the last stream mpi_accept returned, in
 * mpi_listen's form: "host:port" / "[host]:port" for TCP; for a local
 * peer its socket's name if it bound one (a path, or "@name"), else ""
 * (the usual case; always so for Windows pipes).  "" before any accept.
 * Copied to buf (cap bytes; 300 always suffice).  Only the thread that
 * accepts may call it (as mpi_accept). */
void mpi_listener_peer(const mpi_listener *l, char *buf, size_t cap);

/* Make a thread blocked in mpi_accept (now or later) return MP_ECLOSED.
 * Safe from any thread while another is in mpi_accept. */
void mpi_listener_shutdown(mpi_listener *l);

/* Stop listening and release (no thread may be in mpi_accept): closes the
 * socket / pipe, removes the socket file and directory mpi_listen made. */
void mpi_listener_close(mpi_listener *l);

/* Connect to a listener within `timeout` seconds (negative: forever).
 * The stream as from mpi_accept.  0, MP_EINVAL (malformed address),
 * MP_ENOENT (nobody listens there: refused, no such socket or pipe),
 * MP_ETIMEDOUT, MP_EOS. */
int mpi_connect(int family, const char *address, double timeout,
                mpi_fd *out);

/* The sharer of handoff.c listens at a name of a form only sharers use,
 * so that a hostile ticket cannot send a receiver to any other socket or
 * pipe.  mpi_sharer_name: into buf a fresh name to listen at (Linux: an
 * abstract "@mproc-share-<pid>-<random>", nothing to remove), or "" for
 * mpi_listen's generated local name (elsewhere); 0 or an error.
 * mpi_sharer_address: 1 when a bound address has a sharer's form. */
int mpi_sharer_name(char *buf, size_t cap);
int mpi_sharer_address(const char *address);

#endif /* MPROC_PLATFORM_H */
