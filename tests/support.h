/*
 * support.h - what the tests share: the start methods to run each test
 * under, small OS helpers that mproc itself does not offer yet, and the
 * "report" convention children use to send a value back (a non-zero exit
 * status with an mp_set_error message).
 */
#ifndef MPROC_TEST_SUPPORT_H
#define MPROC_TEST_SUPPORT_H

/* A deliberate crash must crash, not be reported first by the undefined-
 * behaviour sanitizer (scripts/test's sanitize leg). */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 8)
#  define TS_NO_UBSAN __attribute__((no_sanitize("undefined")))
#else
#  define TS_NO_UBSAN
#endif

#include <stdint.h>

#include "mproc.h"

/* Per-test timeout (seconds): generous for Wine. */
#define TS_TIMEOUT 60

/* A child's way to hand a string back: exit code 99 and the message. */
#define TS_REPORT 99
#define ts_report(...) mp_set_error(TS_REPORT, __VA_ARGS__)

/* main()'s arguments, recorded before the guard (so a spawned child's
 * target can see what it was started with). */
extern int ts_argc;
extern char **ts_argv;

/* Every suite's .init: Criterion runs each test in a worker whose main()
 * never runs, so the worker reaches the guard here, and BoxFort's worker
 * marker is removed so that spawned children run main() normally. */
void ts_worker_init(void);
/* Every suite's .fini (run after each test, failed ones too): kill and
 * reap the children a test left behind.  Otherwise a test that fails with
 * a blocked child running would hang its worker at exit, where mproc
 * joins every non-daemonic child. */
void ts_worker_fini(void);
#define TS_SUITE(name) \
  TestSuite(name, .init = ts_worker_init, .fini = ts_worker_fini)

/* Start a process with the given start method, asserting success. */
mp_process *ts_start(const char *method, mp_target_fn fn, mp_args *args);
/* Join with a timeout and return the exit code (asserts it ended). */
int ts_join(mp_process *p);

void ts_setenv(const char *name, const char *value);
void ts_unsetenv(const char *name);

/* A temporary file path unique to this process; removed by the caller. */
void ts_temp_path(char *buf, size_t cap, const char *tag);
/* Read a whole small file into buf (NUL-terminated); -1 if missing. */
long ts_read_file(const char *path, char *buf, size_t cap);
void ts_append_file(const char *path, const char *text);

/* A one-way OS pipe a child (fork or spawn) can write an integer into:
 * `token` is passed to the child as two int args (see ts_pipe_put). */
typedef struct ts_pipe { intptr_t rd, wr; int64_t owner; } ts_pipe;
void ts_pipe_open(ts_pipe *p);
void ts_pipe_close(ts_pipe *p);
void ts_pipe_add_args(const ts_pipe *p, mp_args *a);
/* In the child: write v through the pipe described by args i and i+1. */
void ts_pipe_put(const mp_args *a, size_t i, int64_t v);
/* In the parent: send one value to the child's side (see ts_pipe_take). */
void ts_pipe_send(ts_pipe *p, int64_t v);
/* In a child: block until one value arrives through the pipe whose
 * owner and read end are given (as ts_pipe_spec formats them). */
int64_t ts_pipe_take(const char *spec);
void ts_pipe_spec(const ts_pipe *p, char *buf, size_t cap);
/* In the parent: read one value, waiting at most timeout seconds. */
int ts_pipe_get(ts_pipe *p, double timeout, int64_t *v);

/* An OS pipe whose write end any child could inherit (no close-on-exec;
 * HANDLE_FLAG_INHERIT on Windows), and whether its write end is closed
 * everywhere: 1 when a read would see end-of-file now, else 0. */
void ts_inheritable_pipe(intptr_t *rd, intptr_t *wr);
int ts_pipe_writers_gone(intptr_t rd);
void ts_close_raw(intptr_t h);

/* Kill process `pid` at once (SIGKILL; TerminateProcess as a crash). */
void ts_kill_pid(int64_t pid);

/* 1 once process `pid` (not our child) has ended, within timeout. */
int ts_wait_pid_gone(int64_t pid, double timeout);

/* ts_wait_pid_gone for a process that must end by itself: 0 when it did
 * not, after killing it, so that a stray (which may hold the test
 * runner's output pipe) fails the test instead of hanging the suite. */
int ts_pid_ended_or_kill(int64_t pid, double timeout);

/* A test program built beside the suites (named_peer, manager_peer).
 * ts_program_start runs `path` (the path the build gives; on Windows the
 * file of that name beside this program, since the build's path is the
 * host's) with the NULL-terminated `args` (at most 8), failing the test
 * when it cannot.  ts_program_wait gives its exit status (-signal when
 * killed by one), or -1000 when it runs past `timeout` (it is then
 * killed). */
typedef struct ts_program {
  int64_t pid;
  void *handle; /* Windows: its process handle */
} ts_program;
void ts_program_start(ts_program *p, const char *path,
                      const char *const *args);
int ts_program_wait(ts_program *p, double timeout);

#ifdef __linux__
/* The state letter and parent of process `pid` from /proc/PID/stat: 0,
 * or -1 when it is gone (Linux only: the kill-anywhere tests). */
int ts_proc_stat(long pid, char *state, long *ppid);
#endif

/* A large argument: an mp_args holding TS_BIG patterned bytes, and a
 * target that returns 0 when it receives them intact (2: wrong size,
 * 3: wrong bytes). */
#define TS_BIG (8u << 20)
mp_args *ts_big_args(void);
int ts_check_big(const mp_args *a);

/* Test messages: n bytes of a pattern that depends on the position and a
 * seed (malloc'd, the caller frees), and a check of one. */
unsigned char ts_pattern(size_t i, size_t seed);
void *ts_make_message(size_t n, size_t seed);
int ts_is_message(const void *p, size_t n, size_t seed);

/* Threads for the tests (mproc's own thread API comes later). */
typedef struct ts_thread ts_thread;
ts_thread *ts_thread_start(void (*fn)(void *), void *arg);
void ts_thread_join(ts_thread *t);

/* Write raw bytes to a connection's handle (to forge frames). */
void ts_raw_write(mp_handle h, const void *p, size_t n);
/* The same without asserting (for threads): 0, or -1 (the other end has
 * gone: no SIGPIPE).  POSIX: h must be a socket. */
int ts_raw_try_write(mp_handle h, const void *p, size_t n);

/* A buffer of `total` bytes whose first `writable` bytes may be written
 * and the rest not: a process copying into it past that point crashes
 * (to kill a process at an exact point of a copy).  Freed by
 * ts_guarded_free. */
void *ts_guarded_buffer(size_t writable, size_t total);
void ts_guarded_free(void *p, size_t writable, size_t total);

/* Poll pred(arg) (yielding the CPU between looks) until it is true or
 * timeout seconds pass; returns its last value.  For conditions no
 * object signals, e.g. "the child has published its first piece". */
int ts_poll_until(int (*pred)(void *), void *arg, double timeout);

/* Seconds on a monotonic clock. */
double ts_now(void);

/* Block forever (until killed), without burning CPU. */
void ts_block_forever(void);

/* ts_poll_until, looking every `every` seconds instead of spinning: for
 * conditions that take a while, such as another process removing a
 * file. */
int ts_poll_paced(int (*pred)(void *), void *arg, double timeout,
                  double every);

#endif
