/*
 * killpoint.h - the "kill-anywhere" test facility (issue 15; Linux only).
 *
 * mproc promises that a process killed at ANY instruction inside an mproc
 * call leaves the shared objects consistent.  kp_run checks that promise
 * for one call: a child forked from the test (which inherits the objects
 * the test made) stops itself at a marker right before the call and at a
 * second marker right after it; the test traces it with ptrace.
 *
 *   1. calibration: one child is single-stepped from the first marker to
 *      the second: N steps (a system call is one step);
 *   2. for each kill point k in 0..N (all of them, or all below a dense
 *      prefix plus an even spread up to N when N is large; see
 *      MPROC_KILLPOINT_MAX), a fresh child is single-stepped k
 *      instructions past the first marker, killed with SIGKILL and
 *      reaped; the scenario's check then runs in the test against the
 *      objects, and its teardown puts them back (or frees them).
 *
 * A call that would block (a futex wait) is not a valid scenario: set the
 * objects up so that it does not.  A watchdog kills a child that makes no
 * progress for KP_WATCHDOG seconds (the run then fails).
 *
 * The lower-level pieces (kp_trace_stop, kp_step, kp_kill) serve
 * scenarios whose process the test did not fork itself (a pool worker,
 * traced with PTRACE_SEIZE).
 */
#ifndef MPROC_TEST_KILLPOINT_H
#define MPROC_TEST_KILLPOINT_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/* Where a child was killed. */
typedef struct kp_point {
  long k;        /* the kill point asked for: steps past the first marker */
  long steps;    /* steps actually made (< k when the call ended first) */
  int completed; /* the child had reached the second marker */
  pid_t pid;     /* the killed child (reaped) */
} kp_point;

typedef struct kp_scenario {
  const char *name;
  void *ctx;
  /* Parent, once before anything else (may be NULL): e.g. make the call
   * once on scratch objects so that lazy symbol binding is done and the
   * children step through mproc, not the dynamic linker. */
  void (*warmup)(void *ctx);
  /* Parent, before each child: the objects in their known state.
   * 0, or non-zero to stop the run (reported as a facility error). */
  int (*setup)(void *ctx);
  /* Child, before the first marker (may be NULL): e.g. take the lock the
   * traced call releases.  Non-zero: the child exits (a facility error). */
  int (*child_pre)(void *ctx);
  /* Child, between the markers: the call under test. */
  void (*call)(void *ctx);
  /* Parent, after the kill: 0 when every invariant holds, else non-zero
   * with a message in msg. */
  int (*check)(void *ctx, const kp_point *pt, char *msg, size_t cap);
  /* Parent, after check (may be NULL). */
  void (*teardown)(void *ctx);
  /* Kill points at most (0: MPROC_KILLPOINT_MAX, else KP_DEFAULT_MAX). */
  long max_points;
} kp_scenario;

#define KP_DEFAULT_MAX 4000L
#define KP_WATCHDOG 20 /* seconds */
#define KP_MAX_FAILS 6
#define KP_MAX_TAGS 12

typedef struct kp_report {
  char name[80];
  long n;         /* steps from the first marker to the second (calibration) */
  long points;    /* kill points injected (children killed) */
  long dense;     /* every k < dense was a kill point */
  int exhaustive; /* every k in 0..n was */
  long passed, failed;
  int nfails; /* the first KP_MAX_FAILS failures */
  struct {
    long k;
    int completed;
    char msg[240];
  } fails[KP_MAX_FAILS];
  /* Per invariant: a check's message may name the invariants it broke
   * as "[tag] text; [tag] text"; each tag is counted with its first kill
   * points. */
  int ntags;
  struct {
    char tag[24];
    long count;
    int nk;
    long k[KP_MAX_FAILS];
    char first[200]; /* the text at its first kill point */
  } tags[KP_MAX_TAGS];
  long steps_total; /* single steps made, calibration included */
  double seconds;
  char error[300]; /* the facility's own failure (no ptrace, ...) */
} kp_report;

/* The kill points allowed for a scenario: s->max_points, else the
 * environment's MPROC_KILLPOINT_MAX, else KP_DEFAULT_MAX. */
long kp_max_points(const kp_scenario *s);

/* Run the scenario.  0 when it ran (out->failed says how many checks
 * failed); -1 when the facility could not (out->error says why: ptrace
 * refused, the child did not reach its marker, the watchdog fired...). */
int kp_run(const kp_scenario *s, kp_report *out);

/* One line per report, and the failures under it. */
void kp_print(const kp_report *r, FILE *f);
/* Count a failed kill point in r (kp_run does it for its scenarios). */
void kp_record_failure(kp_report *r, long k, int completed, const char *msg);
/* The table header kp_print's lines go under. */
void kp_print_header(FILE *f);

/* ---- lower level ------------------------------------------------------ */

/* Wait for a stop of traced `pid` (any thread of ours may trace it).
 * Returns the stop signal (> 0), 0 when it ended, -1 on error. */
int kp_wait_stop(pid_t pid, int *status);
/* Single-step traced, stopped `pid` up to n times.  Returns 0 after n
 * steps, 1 when it stopped with SIGSTOP first (a marker; *done steps
 * before it), -1 when it ended or on error.  A signal other than SIGTRAP
 * or SIGSTOP is passed on to the tracee. */
int kp_step(pid_t pid, long n, long *done);
/* SIGKILL `pid`; reap it too when reap is non-zero (our own child). */
void kp_kill(pid_t pid, int reap);

/* Arm / disarm the watchdog: SIGKILL to pid after `seconds` (0: off). */
void kp_watchdog(pid_t pid, unsigned seconds);
/* 1 when the watchdog has fired since it was last armed. */
int kp_watchdog_fired(void);

#endif
