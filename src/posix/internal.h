/*
 * posix/internal.h - what the POSIX backend's files share.
 */
#ifndef MPROC_POSIX_INTERNAL_H
#define MPROC_POSIX_INTERNAL_H

#include <pthread.h>
#include <sys/types.h>

#include "../internal.h"

/* Environment markers a spawned process finds in mpi_boot_detect. */
#define MPI_ENV_SPAWN "MPROC_SPAWN"           /* boot:status:ppid:flags */
#define MPI_ENV_FORKSERVER "MPROC_FORKSERVER" /* ctl:ppid */

/* Status channel frames (child or fork server -> parent):
 * u8 type | u32 length (LE) | payload. */
enum { MPI_FRAME_RECORD = 'R', MPI_FRAME_PID = 'P', MPI_FRAME_STATUS = 'X' };
#define MPI_RECORD_MAX (64 * 1024)
#define MPI_BOOT_MAX ((size_t)1 << 30)

/* Flags carried to a spawned child. */
enum { MPI_FLAG_MAIN_THREAD = 1 };

/* sys.c: object mutexes (platform.h part 1); thread.c's condition
 * variables wait on the pthread mutex inside. */
struct mpi_mutex {
  pthread_mutex_t m;
};

int mpi__errno_error(const char *what);  /* MP_EOS with strerror(errno) */
int mpi__is_main_thread(void);
int mpi__write_all(int fd, const void *p, size_t n);
int mpi__read_all(int fd, void *p, size_t n); /* MP_EEOF on early EOF */
int mpi__frame_write(int fd, int type, const void *p, size_t n);
void mpi__put_u32(unsigned char *p, uint32_t v);
uint32_t mpi__get_u32(const unsigned char *p);

/* stream.c: CLOEXEC (and no-SIGPIPE) socket pairs; descriptor passing. */
int mpi__socketpair(int sv[2]);
int mpi__send_fds(int sock, const int *fds, size_t n);
/* 0 when every handle is an open descriptor, else MP_ECLOSED: checked
 * before a start, so a child never waits for a descriptor that cannot
 * be sent. */
int mpi__fds_open(const mpi_fd *h, size_t n);
int mpi__recv_fds(int sock, int *fds, size_t n);
#define MPI_HANDLES_MAX 65536 /* handles one child may receive */

/* helper.c: in a helper process, cut loose from its starter: a session
 * of its own, the terminal's signals ignored, stdio on /dev/null, every
 * descriptor closed but `keep`, which becomes 3 (returned; -1 on
 * failure). */
int mpi__helper_detach(int keep);
/* helper.c: start main_fn(fd, arg) in a detached helper process (a
 * grandchild; see helper.c) holding `give` as fd; it _exits when main_fn
 * returns.  The caller still holds `give` (close it).  0 or an error. */
int mpi__helper_start(int give, void (*main_fn)(int fd, void *arg),
                      void *arg);

/* child.c: the serialised section around fork / posix_spawn. */
void mpi__start_lock(void);
void mpi__start_unlock(void);
/* In a child: the fd its exit record goes to; the parent it watches. */
void mpi__set_status_fd(int fd);
int mpi__status_fd(void);
int mpi__watch_parent(pid_t parent, int started_from_main_thread);
/* NULL when fd is a socket of our user made by process ppid, our parent
 * (a spawn bootstrap or fork-server channel); else why it is refused. */
const char *mpi__check_boot_channel(int fd, pid_t ppid);
/* Start `exe` holding only descriptors 0-2 and keep[i] as 3 + i. */
int mpi__spawn_program(const char *exe, char *const *argv,
                       const char *env_entry, const int *keep, size_t nkeep,
                       pid_t *pid);
void mpi__become_forkserver_child(int status_fd, mpi_fd *handles, size_t n,
                                  pid_t server);

/* forkserver.c */
int mpi__forkserver_request(const mpi_start_info *si, int status_wr);
/* The server's loop; returns MPI_BOOT_CHILD only in its forked children. */
int mpi__forkserver_serve(const char *env, void **boot, size_t *len);
void mpi__forkserver_forget(void); /* in a forked child */

#endif /* MPROC_POSIX_INTERNAL_H */
