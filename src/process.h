/*
 * process.h - the mp_process struct and what process.c, boot.c and
 * context.c share.  Not installed.
 */
#ifndef MPROC_PROCESS_H
#define MPROC_PROCESS_H

#include "internal.h"

#define MP__IDENT_CAP 128
#define MP__AUTHKEY_CAP 256
#define MP__BOOT_MAGIC "mproc-boot-1"
/* How long join lets a child whose sentinel is ready finish exiting. */
#define MP__REAP_GRACE 0.005

enum { MP__KIND_TARGET = 1, MP__KIND_SUBCLASS = 2, MP__KIND_SELF = 3,
       MP__KIND_PARENT = 4 };
enum { MP__NEW = 0, MP__STARTING = 1, MP__RUNNING = 2, MP__ENDED = 3 };

struct mp_process {
  int kind;
  int state;
  mp_target_fn target;
  mp_args *args;
  mp_run_fn run;
  void *self;          /* subclass: the user's struct (copied at start) */
  size_t self_size;
  char *name;
  int name_borrowed;   /* name points to memory this object does not own */
  char identity[MP__IDENT_CAP]; /* "1:2" for Process-1:2 */
  int child_counter;   /* for the names of this process's own children */
  int daemon;
  mp_context *ctx;
  unsigned char authkey[MP__AUTHKEY_CAP];
  size_t authkey_len;
  mpi_child *child;
  int64_t pid;
  int64_t creator_pid; /* Python's _parent_pid: who made this object */
  int exitcode;
  int boot_failed;     /* spawned child ended before reaching the guard */
  int signalled;       /* terminate or kill was sent */
  char *error;
  mp_process *next;    /* registry link */
};

/* process.c */
int mp__process_poll(mp_process *p, double timeout);
void mp__registry_add(mp_process *p);
void mp__registry_remove(mp_process *p);
void mp__registry_forget(void);
void mp__cleanup_children(void);
/* Names are borrowed: they must live as long as the process. */
void mp__become_child(const char *name, const char *identity, int daemon,
                      const void *authkey, size_t authkey_len,
                      int64_t parent_pid, const char *parent_name);

/* context.c */
int mp__context_method(const mp_context *ctx);
void mp__context_fork_child(void);
const char *mp__executable(void);

/* boot.c; mp__fork_child_main runs in a forked child with the
 * mp_process being started (its memory is the child's own copy). */
void mp__fork_child_main(void *process);
void mp__at_exit_install(void);
int mp__guard_called(void);
char *const *mp__guard_argv(void);

#endif /* MPROC_PROCESS_H */
