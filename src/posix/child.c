/*
 * posix/child.c - starting, waiting for and signalling children, and the
 * child's side of the bootstrap.
 *
 * Parts:
 *   1. the start lock and descriptor helpers
 *   2. fork, posix_spawn and fork-server starts
 *   3. collecting a child: the status channel, waitpid, exit codes
 *   4. the child side: bootstrap, exit record, watching the parent
 *
 * Every child holds the write end of a status pipe until it dies; the
 * parent's read end is the sentinel (EOF = dead).  Before exiting the
 * child writes one framed exit record on it.  Spawned children also get a
 * socket carrying the bootstrap bytes, which they acknowledge with one
 * byte: no acknowledgement means the child never reached the main guard.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__)
#  include <sys/auxv.h>
#  include <sys/prctl.h>
#  include <sys/syscall.h>
#endif
#if !defined(__linux__)
#  include <sys/un.h> /* LOCAL_PEERPID (macOS) */
#endif
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || \
    defined(__NetBSD__)
#  include <sys/event.h>
#  define MPI_HAVE_KQUEUE 1
#endif

#include "internal.h"

extern char **environ;

struct mpi_child {
  int method;
  pid_t pid;
  int status_fd; /* read end: the sentinel */
  int boot_fd;   /* spawn: our end of the bootstrap socket */
  unsigned char *buf;
  size_t len;
  int eof;
  int have_status; /* fork server: its 'X' frame arrived */
  int wstatus;
  int reaped;
};

/* ---- 1. The start lock and descriptors ------------------------------- */

static pthread_mutex_t start_mutex = PTHREAD_MUTEX_INITIALIZER;

void mpi__start_lock(void) { pthread_mutex_lock(&start_mutex); }
void mpi__start_unlock(void) { pthread_mutex_unlock(&start_mutex); }

static int set_cloexec(int fd) {
  int fl = fcntl(fd, F_GETFD);
  return fl < 0 ? -1 : fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

static int cloexec_pipe(int fds[2]) {
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || \
    defined(__OpenBSD__)
  if (pipe2(fds, O_CLOEXEC) != 0)
    return mpi__errno_error("pipe");
#else
  if (pipe(fds) != 0)
    return mpi__errno_error("pipe");
  set_cloexec(fds[0]);
  set_cloexec(fds[1]);
#endif
  return 0;
}

#if !defined(MSG_NOSIGNAL)
#  define MSG_NOSIGNAL 0 /* SO_NOSIGPIPE is set instead */
#endif

static int send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return errno == EPIPE ? mp__error(MP_EPIPE, "send: broken pipe")
                            : mpi__errno_error("send");
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Sends the part of a bootstrap the socket could not take at once, so
 * that mp_process_start never waits for the child to reach its guard.
 * It ends when all is sent or the child is gone (the send fails). */
typedef struct boot_writer {
  int fd;
  unsigned char *data;
  size_t len;
} boot_writer;

static void *boot_writer_main(void *arg) {
  boot_writer *w = arg;
  size_t done = 0;
  while (done < w->len) {
    struct pollfd pfd = {w->fd, POLLOUT, 0};
    if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
      break;
    ssize_t n = send(w->fd, w->data + done, w->len - done, MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n <= 0)
      break;
    done += (size_t)n;
  }
  close(w->fd);
  free(w->data);
  free(w);
  return NULL;
}

/* Send the bootstrap, u64 LE length then the bytes, without blocking:
 * what does not fit in the socket buffer goes to a writer thread.  It
 * cannot fail (the child is already running): without memory or a thread
 * it sends the rest here, blocking.  Send errors mean the child is gone,
 * which its join reports. */
static void send_boot(int fd, const void *p, size_t n) {
  unsigned char head[8];
  for (int i = 0; i < 8; i++)
    head[i] = (unsigned char)((uint64_t)n >> (8 * i));
  unsigned char *msg = malloc(n + 8);
  if (msg == NULL) {
    if (send_all(fd, head, 8) == 0)
      send_all(fd, p, n);
    return;
  }
  memcpy(msg, head, 8);
  memcpy(msg + 8, p, n);
  size_t total = n + 8, done = 0;
  int full = 0; /* the socket buffer is full: the rest must wait */
  while (done < total) {
    ssize_t w = send(fd, msg + done, total - done,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      done += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR)
      continue;
    full = w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    break;
  }
  if (!full) { /* all sent, or the child is gone */
    free(msg);
    return;
  }
  boot_writer *bw = malloc(sizeof *bw);
  int wfd = bw != NULL ? dup(fd) : -1;
  if (wfd < 0) { /* no writer: send the rest here, blocking */
    send_all(fd, msg + done, total - done);
    free(bw);
    free(msg);
    return;
  }
  set_cloexec(wfd);
  memmove(msg, msg + done, total - done);
  bw->fd = wfd;
  bw->data = msg;
  bw->len = total - done;
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &a, boot_writer_main, bw) != 0)
    boot_writer_main(bw); /* sends the rest here, then frees */
  pthread_attr_destroy(&a);
}

/* Pass handles (mpi_fd values holding descriptors) by SCM_RIGHTS. */
static int send_handles(int sock, const mpi_fd *h, size_t n) {
  int *fds = malloc(n * sizeof *fds);
  if (fds == NULL)
    return mp__error(MP_ENOMEM, "spawn: out of memory");
  for (size_t i = 0; i < n; i++)
    fds[i] = (int)h[i];
  int rc = mpi__send_fds(sock, fds, n);
  free(fds);
  return rc;
}

/* The descriptors a spawned program holds: 0, 1 and 2, and keep[i] as
 * descriptor 3 + i (what mproc gives it), nothing else, as Python's
 * close_fds: no parent socket or pipe leaks into it, whatever its
 * close-on-exec flag.  glibc 2.34+ and FreeBSD 13+ close the rest with a
 * closefrom action, macOS with POSIX_SPAWN_CLOEXEC_DEFAULT; elsewhere the
 * descriptors open now are closed one by one. */
#if (defined(__GLIBC__) &&                                              \
     (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))) ||   \
    (defined(__FreeBSD__) && __FreeBSD_version >= 1300000)
#  define MPI_SPAWN_CLOSEFROM 1
#endif

static int spawn_actions(posix_spawn_file_actions_t *fa, short *flags,
                         const int *keep, size_t nkeep, int *moved) {
  int first_free = 3 + (int)nkeep;
  /* Each kept descriptor is first moved above the targets, so that no
   * dup2 overwrites one still to be moved. */
  for (size_t i = 0; i < nkeep; i++) {
    moved[i] = fcntl(keep[i], F_DUPFD_CLOEXEC, first_free);
    if (moved[i] < 0)
      return mpi__errno_error("spawn: fcntl F_DUPFD_CLOEXEC");
  }
  for (size_t i = 0; i < nkeep; i++)
    if (posix_spawn_file_actions_adddup2(fa, moved[i], 3 + (int)i) != 0)
      return mp__error(MP_ENOMEM, "spawn: out of memory");
#if defined(MPI_SPAWN_CLOSEFROM)
  (void)flags;
  if (posix_spawn_file_actions_addclosefrom_np(fa, first_free) != 0)
    return mp__error(MP_ENOMEM, "spawn: out of memory");
#elif defined(__APPLE__)
  for (int fd = 0; fd < 3; fd++)
    posix_spawn_file_actions_addinherit_np(fa, fd);
  *flags |= POSIX_SPAWN_CLOEXEC_DEFAULT;
#else
  (void)flags;
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536)
    max = 65536;
  for (int fd = first_free; fd < (int)max; fd++)
    if (fcntl(fd, F_GETFD) != -1 && (fd < moved[0] || fd > moved[nkeep - 1]) &&
        posix_spawn_file_actions_addclose(fa, fd) != 0)
      return mp__error(MP_ENOMEM, "spawn: out of memory");
#endif
  return 0;
}

/* Start `exe` with argv and this environment plus one entry (replacing
 * any mproc marker inherited from our own parent); keep[i] becomes its
 * descriptor 3 + i (at most 4). */
int mpi__spawn_program(const char *exe, char *const *argv,
                       const char *env_entry, const int *keep, size_t nkeep,
                       pid_t *pid) {
  char *exe_only[2] = {(char *)exe, NULL};
  if (argv == NULL || argv[0] == NULL)
    argv = exe_only;
  if (nkeep < 1 || nkeep > 4)
    return mp__error(MP_EINVAL, "spawn: %zu descriptors to keep", nkeep);
  size_t n = 0;
  while (environ[n] != NULL)
    n++;
  char **envp = malloc((n + 2) * sizeof *envp);
  if (envp == NULL)
    return mp__error(MP_ENOMEM, "spawn: out of memory");
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], MPI_ENV_SPAWN "=", sizeof MPI_ENV_SPAWN) != 0 &&
        strncmp(environ[i], MPI_ENV_FORKSERVER "=",
                sizeof MPI_ENV_FORKSERVER) != 0)
      envp[k++] = environ[i];
  envp[k++] = (char *)env_entry;
  envp[k] = NULL;

  posix_spawnattr_t attr;
  posix_spawn_file_actions_t fa;
  sigset_t none;
  short flags = POSIX_SPAWN_SETSIGMASK;
  int moved[4] = {-1, -1, -1, -1};
  sigemptyset(&none);
  posix_spawnattr_init(&attr);
  posix_spawnattr_setsigmask(&attr, &none);
  int err = posix_spawn_file_actions_init(&fa);
  int rc = err != 0 ? mp__error(MP_ENOMEM, "spawn: out of memory")
                    : spawn_actions(&fa, &flags, keep, nkeep, moved);
  if (rc == 0) {
    posix_spawnattr_setflags(&attr, flags);
    err = posix_spawn(pid, exe, &fa, &attr, argv, envp);
    if (err != 0) {
      errno = err;
      rc = mpi__errno_error("posix_spawn");
    }
  }
  for (size_t i = 0; i < nkeep; i++)
    if (moved[i] >= 0)
      close(moved[i]);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  free(envp);
  return rc;
}

/* ---- 2. Starting ------------------------------------------------------ */

static int child_status_fd = -1; /* in a child: where its record goes */
static mpi_fd *boot_handles;      /* in a child: what the parent passed */
static size_t n_boot_handles;
static pid_t watch_pid;          /* in a child: the OS parent to watch */
static int watch_main_thread;
static int os_parent_is_ppid = 1;
static int boot_done;

void mpi__set_status_fd(int fd) {
  if (child_status_fd >= 0 && child_status_fd != fd)
    close(child_status_fd);
  child_status_fd = fd;
}

int mpi__status_fd(void) { return child_status_fd; }

static int start_fork(const mpi_start_info *si, mpi_child *c) {
  int fds[2];
  int rc = cloexec_pipe(fds);
  if (rc != 0)
    return rc;
  int main_thread = mpi__is_main_thread();
  pid_t parent = getpid();
  pid_t pid = fork(); /* the caller flushed stdio */
  if (pid < 0) {
    rc = mpi__errno_error("fork");
    close(fds[0]);
    close(fds[1]);
    return rc;
  }
  if (pid == 0) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    start_mutex = fresh; /* held by the forking thread, not ours */
    close(fds[0]);
    mpi__set_status_fd(fds[1]);
    mpi__forkserver_forget();
    watch_pid = parent;
    watch_main_thread = main_thread;
    os_parent_is_ppid = 1;
    boot_done = 1;
    if (si->daemon && mpi__watch_parent(parent, main_thread) != 0)
      _exit(1);
    si->fork_main(si->fork_arg);
    _exit(1); /* not reached */
  }
  close(fds[1]);
  c->pid = pid;
  c->status_fd = fds[0];
  return 0;
}

static int own_exe(const mpi_start_info *si, char *buf, size_t cap) {
  if (si->exe != NULL) {
    if (strlen(si->exe) >= cap)
      return mp__error(MP_ERANGE, "executable path too long");
    strcpy(buf, si->exe);
    return 0;
  }
  return mpi_exe_path(buf, cap);
}

static int start_spawn(const mpi_start_info *si, mpi_child *c) {
  char exe[4096];
  int rc = own_exe(si, exe, sizeof exe);
  if (rc == 0)
    rc = mpi__fds_open(si->handles, si->n_handles);
  if (rc != 0)
    return rc;
  int sv[2], st[2];
  if ((rc = mpi__socketpair(sv)) != 0)
    return rc;
  if ((rc = cloexec_pipe(st)) != 0) {
    close(sv[0]);
    close(sv[1]);
    return rc;
  }
  /* The child's ends become its descriptors 3 and 4. */
  char env[128];
  snprintf(env, sizeof env, MPI_ENV_SPAWN "=3:4:%ld:%d", (long)getpid(),
           mpi__is_main_thread() ? MPI_FLAG_MAIN_THREAD : 0);
  int keep[2] = {sv[1], st[1]};
  rc = mpi__spawn_program(exe, si->argv, env, keep, 2, &c->pid);
  close(sv[1]);
  close(st[1]);
  if (rc != 0) {
    close(sv[0]);
    close(st[0]);
    return rc;
  }
  c->status_fd = st[0];
  c->boot_fd = sv[0];
  /* First the handles (u32 count, then SCM_RIGHTS), then the blob.  A
   * child that dies before reading them is seen at join. */
  unsigned char count[4];
  mpi__put_u32(count, (uint32_t)si->n_handles);
  if (send_all(sv[0], count, 4) == 0 && si->n_handles > 0 &&
      (rc = send_handles(sv[0], si->handles, si->n_handles)) != 0) {
    /* Its objects cannot reach it: it must not run without them. */
    kill(c->pid, SIGKILL);
    while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
      ;
    close(sv[0]);
    close(st[0]);
    c->pid = 0;
    c->status_fd = c->boot_fd = -1;
    return rc;
  }
  send_boot(sv[0], si->boot, si->boot_len);
  return 0;
}

/* Read status frames into c->buf until `done` says so, EOF, or timeout. */
static int read_status(mpi_child *c, double timeout,
                       int (*done)(const mpi_child *));

static int parse_frames(const mpi_child *c, int want, const unsigned char **p,
                        size_t *n);

static int have_pid(const mpi_child *c) {
  return parse_frames(c, MPI_FRAME_PID, NULL, NULL);
}

static int start_forkserver(const mpi_start_info *si, mpi_child *c) {
  int st[2];
  int rc = cloexec_pipe(st);
  if (rc != 0)
    return rc;
  rc = mpi__forkserver_request(si, st[1]);
  close(st[1]);
  c->status_fd = st[0];
  if (rc == 0)
    rc = read_status(c, -1.0, have_pid);
  const unsigned char *p = NULL;
  size_t n = 0;
  if (rc == 0 && parse_frames(c, MPI_FRAME_PID, &p, &n) && n == 8) {
    int64_t pid = 0;
    for (int i = 7; i >= 0; i--)
      pid = (pid << 8) | p[i];
    c->pid = (pid_t)pid;
    if (pid > 0)
      return 0;
  }
  close(st[0]);
  c->status_fd = -1;
  return rc != 0 ? rc
                 : mp__error(MP_EOS, "the fork server could not start the "
                                     "process");
}

int mpi_child_start(const mpi_start_info *si, mpi_child **out) {
  mpi_child *c = calloc(1, sizeof *c);
  if (c == NULL)
    return mp__error(MP_ENOMEM, "start: out of memory");
  c->method = si->method;
  c->status_fd = c->boot_fd = -1;
  int rc;
  mpi__start_lock();
  if (si->method == MPI_FORK)
    rc = start_fork(si, c);
  else if (si->method == MPI_SPAWN)
    rc = start_spawn(si, c);
  else if (si->method == MPI_FORKSERVER)
    rc = start_forkserver(si, c);
  else
    rc = mp__error(MP_ENOTSUP, "unknown start method %d", si->method);
  mpi__start_unlock();
  if (rc != 0) {
    free(c->buf);
    free(c);
    return rc;
  }
  *out = c;
  return 0;
}

int64_t mpi_child_pid(const mpi_child *c) { return (int64_t)c->pid; }
mpi_fd mpi_child_sentinel(const mpi_child *c) { return c->status_fd; }

/* ---- 3. Collecting ----------------------------------------------------- */

/* Find the last complete frame of type `want`; 1 if there is one. */
static int parse_frames(const mpi_child *c, int want, const unsigned char **p,
                        size_t *n) {
  int found = 0;
  size_t pos = 0;
  while (c->len - pos >= 5) {
    uint32_t len = mpi__get_u32(c->buf + pos + 1);
    if (len > c->len - pos - 5)
      break;
    if (c->buf[pos] == want) {
      found = 1;
      if (p != NULL) {
        *p = c->buf + pos + 5;
        *n = len;
      }
    }
    pos += 5 + (size_t)len;
  }
  return found;
}

static int read_status(mpi_child *c, double timeout,
                       int (*done)(const mpi_child *)) {
  double deadline = timeout < 0 ? -1.0 : mpi_now() + timeout;
  while (!c->eof && !done(c)) {
    mpi_fd fd = c->status_fd;
    double left = deadline < 0 ? -1.0 : deadline - mpi_now();
    int rc = mpi_wait(&fd, 1, left < 0 && deadline >= 0 ? 0 : left, NULL);
    if (rc < 0)
      return rc;
    unsigned char tmp[4096];
    ssize_t r = read(c->status_fd, tmp, sizeof tmp);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      c->eof = 1; /* EOF, or an error we treat as the end */
      break;
    }
    if (c->len + (size_t)r > MPI_RECORD_MAX)
      continue; /* a misbehaving child: keep the channel drained */
    unsigned char *b = realloc(c->buf, c->len + (size_t)r);
    if (b == NULL)
      return mp__error(MP_ENOMEM, "status: out of memory");
    c->buf = b;
    memcpy(c->buf + c->len, tmp, (size_t)r);
    c->len += (size_t)r;
  }
  return 0;
}

static int have_exit_status(const mpi_child *c) {
  return c->method == MPI_FORKSERVER &&
         parse_frames(c, MPI_FRAME_STATUS, NULL, NULL);
}

static int exitcode_of(int wstatus) {
  if (WIFEXITED(wstatus))
    return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus))
    return -WTERMSIG(wstatus);
  return 255;
}

/* waitpid for a child whose status pipe is at EOF.  It has closed its
 * descriptors, so it is exiting and the wait is normally microseconds:
 * yield, then nap with a growing interval, quietly, until the deadline.
 * (A blocking waitpid could hang if the child closed the pipe itself.) */
static int reap(mpi_child *c, double timeout) {
  double deadline = -1.0;
  long nap = 2000; /* ns */
  for (int tries = 0;; tries++) {
    pid_t r = waitpid(c->pid, &c->wstatus, WNOHANG);
    if (r == c->pid) {
      c->reaped = 1;
      return 0;
    }
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) { /* not our child any more (SIGCHLD ignored?) */
      c->wstatus = 255 << 8;
      c->reaped = 1;
      return 0;
    }
    if (tries < 3) {
      sched_yield();
      continue;
    }
    if (deadline < 0)
      deadline = mpi_now() + timeout;
    else if (mpi_now() >= deadline)
      return mp__error(MP_ETIMEDOUT, "child is still exiting");
    struct timespec ts = {0, nap};
    nanosleep(&ts, NULL);
    if (nap < 500000)
      nap *= 2;
  }
}

static int acknowledged(mpi_child *c) {
  if (c->method != MPI_SPAWN)
    return 1;
  unsigned char b = 0;
  ssize_t r = recv(c->boot_fd, &b, 1, MSG_DONTWAIT);
  return r == 1 && b == 'A';
}

int mpi_child_wait(mpi_child *c, double timeout, mpi_exit_info *info) {
  double start = mpi_now();
  int rc = read_status(c, timeout, have_exit_status);
  if (rc != 0)
    return rc;
  if (!c->eof && !have_exit_status(c))
    return mp__error(MP_ETIMEDOUT, "child is still running");
  double left = timeout < 0 ? -1.0 : timeout - (mpi_now() - start);
  if (c->method == MPI_FORKSERVER) {
    const unsigned char *p = NULL;
    size_t n = 0;
    if (parse_frames(c, MPI_FRAME_STATUS, &p, &n) && n == 4)
      c->wstatus = (int)mpi__get_u32(p);
    else
      c->wstatus = 255 << 8; /* the fork server died: status unknown */
    c->reaped = 1;
  } else if (!c->reaped && (rc = reap(c, left < 0 ? 0 : left)) != 0) {
    return rc;
  }
  info->exitcode = exitcode_of(c->wstatus);
  info->booted = acknowledged(c);
  info->record = NULL;
  info->record_len = 0;
  const unsigned char *p = NULL;
  size_t n = 0;
  if (parse_frames(c, MPI_FRAME_RECORD, &p, &n) &&
      (info->record = malloc(n ? n : 1)) != NULL) {
    memcpy(info->record, p, n);
    info->record_len = n;
  }
  return 0;
}

int mpi_child_signal(mpi_child *c, int hard) {
  if (c->reaped || c->pid <= 0)
    return 0;
  if (kill(c->pid, hard ? SIGKILL : SIGTERM) != 0 && errno != ESRCH)
    return mpi__errno_error("kill");
  return 0;
}

void mpi_child_free(mpi_child *c) {
  if (c == NULL)
    return;
  if (c->status_fd >= 0)
    close(c->status_fd);
  if (c->boot_fd >= 0)
    close(c->boot_fd);
  free(c->buf);
  free(c);
}

/* ---- 4. The child side ---------------------------------------------- */

int mpi_boot_pending(void) {
  return !boot_done &&
         (getenv(MPI_ENV_SPAWN) != NULL || getenv(MPI_ENV_FORKSERVER) != NULL);
}

static int read_blob(int fd, void **out, size_t *n) {
  unsigned char h[8];
  int rc = mpi__read_all(fd, h, 8);
  if (rc != 0)
    return rc;
  uint64_t len = 0;
  for (int i = 7; i >= 0; i--)
    len = (len << 8) | h[i];
  if (len > MPI_BOOT_MAX)
    return mp__error(MP_EPROTO, "bootstrap of %llu bytes is too large",
                     (unsigned long long)len);
  void *p = malloc(len ? (size_t)len : 1);
  if (p == NULL)
    return mp__error(MP_ENOMEM, "bootstrap: out of memory");
  if ((rc = mpi__read_all(fd, p, (size_t)len)) != 0) {
    free(p);
    return rc;
  }
  *out = p;
  *n = (size_t)len;
  return 0;
}

/* Receive the handle table a spawned child's parent sends first. */
static int read_handles(int fd) {
  unsigned char h[4];
  int rc = mpi__read_all(fd, h, 4);
  if (rc != 0)
    return rc;
  uint32_t n = mpi__get_u32(h);
  if (n > MPI_HANDLES_MAX)
    return mp__error(MP_EPROTO, "%u handles is too many", (unsigned)n);
  if (n == 0)
    return 0;
  int *fds = malloc(n * sizeof *fds);
  boot_handles = malloc(n * sizeof *boot_handles);
  if (fds == NULL || boot_handles == NULL) {
    free(fds);
    return mp__error(MP_ENOMEM, "bootstrap: out of memory");
  }
  if ((rc = mpi__recv_fds(fd, fds, n)) == 0) {
    for (uint32_t i = 0; i < n; i++)
      boot_handles[i] = fds[i];
    n_boot_handles = n;
  }
  free(fds);
  return rc;
}

int mpi_boot_handles(mpi_fd **h, size_t *n) {
  *h = boot_handles;
  *n = n_boot_handles;
  boot_handles = NULL;
  n_boot_handles = 0;
  return 0;
}

/* The fork server's children come back here (forkserver.c). */
void mpi__become_forkserver_child(int status_fd, mpi_fd *handles, size_t n,
                                  pid_t server) {
  boot_handles = handles;
  n_boot_handles = n;
  mpi__set_status_fd(status_fd);
  /* The server's pid as it knew it before forking: getppid() here would
   * name init (or a subreaper) if the server had already exited, and a
   * daemonic child would then outlive it. */
  watch_pid = server;
  watch_main_thread = 1; /* the server is single-threaded */
  os_parent_is_ppid = 0; /* our parent of record is the requester */
  boot_done = 1;
}

/* 1 in a set-uid / set-gid (secure-execution) process, where the
 * environment is the caller's to forge. */
static int secure_execution(void) {
#if defined(__linux__)
  return getauxval(AT_SECURE) != 0;
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || \
    defined(__NetBSD__) || defined(__DragonFly__)
  return issetugid() != 0;
#else
  return getuid() != geteuid() || getgid() != getegid();
#endif
}

/* The bootstrap channel must be a socket that our parent (`ppid`, the
 * process that started us) made, of our own user: not a file or a pipe
 * someone else left on an inherited descriptor.  0, or a reason. */
const char *mpi__check_boot_channel(int fd, pid_t ppid) {
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISSOCK(sb.st_mode))
    return "the bootstrap descriptor is not a socket";
  if (ppid != getppid())
    return "the bootstrap names another parent";
#if defined(__linux__)
  struct ucred cr;
  socklen_t cl = sizeof cr;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0)
    return "the bootstrap socket has no peer";
  if (cr.pid != ppid || cr.uid != geteuid())
    return "the bootstrap socket is not our parent's";
#else
  uid_t uid;
  gid_t gid;
  if (getpeereid(fd, &uid, &gid) != 0 || uid != geteuid())
    return "the bootstrap socket is not our user's";
#  if defined(LOCAL_PEERPID)
  pid_t peer = 0;
  socklen_t pl = sizeof peer;
  if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, &peer, &pl) != 0 ||
      peer != ppid)
    return "the bootstrap socket is not our parent's";
#  endif
#endif
  return NULL;
}

int mpi_boot_detect(void **boot, size_t *len) {
  boot_done = 1;
  if ((getenv(MPI_ENV_SPAWN) != NULL || getenv(MPI_ENV_FORKSERVER) != NULL) &&
      secure_execution()) {
    /* Never load and run what an environment variable names in a
     * privileged process: spawn and forkserver are not for set-uid
     * programs (fork is). */
    fprintf(stderr, "mproc: refusing a spawn bootstrap in a set-uid or "
                    "set-gid process\n");
    _exit(1);
  }
  const char *fs = getenv(MPI_ENV_FORKSERVER);
  if (fs != NULL)
    return mpi__forkserver_serve(fs, boot, len);
  const char *env = getenv(MPI_ENV_SPAWN);
  if (env == NULL)
    return MPI_BOOT_NONE;
  int bfd = -1, sfd = -1, flags = 0;
  long ppid = 0;
  int ok = sscanf(env, "%d:%d:%ld:%d", &bfd, &sfd, &ppid, &flags) == 4;
  unsetenv(MPI_ENV_SPAWN);
  if (!ok || bfd < 0 || sfd < 0) {
    fprintf(stderr, "mproc: malformed " MPI_ENV_SPAWN " variable\n");
    _exit(1);
  }
  const char *bad = mpi__check_boot_channel(bfd, (pid_t)ppid);
  if (bad != NULL) {
    fprintf(stderr, "mproc: refusing the spawn bootstrap: %s\n", bad);
    _exit(1);
  }
  fcntl(sfd, F_SETFD, FD_CLOEXEC); /* bfd is closed below */
  mpi__set_status_fd(sfd);
  watch_pid = (pid_t)ppid;
  watch_main_thread = (flags & MPI_FLAG_MAIN_THREAD) != 0;
  os_parent_is_ppid = 1;
  if (read_handles(bfd) != 0 || read_blob(bfd, boot, len) != 0) {
    fprintf(stderr, "mproc: cannot read the bootstrap: %s\n",
            mp_last_error_message());
    _exit(1);
  }
  send_all(bfd, "A", 1);
  close(bfd);
  return MPI_BOOT_CHILD;
}

int mpi_status_send(const void *rec, size_t len) {
  if (child_status_fd < 0)
    return 0;
  return mpi__frame_write(child_status_fd, MPI_FRAME_RECORD, rec, len);
}

static void die_with_parent(void) {
  kill(getpid(), SIGKILL);
  _exit(137);
}

#if defined(__linux__)
static int pidfd_of(pid_t pid) {
#  if defined(SYS_pidfd_open)
  return (int)syscall(SYS_pidfd_open, pid, 0);
#  else
  (void)pid;
  errno = ENOSYS;
  return -1;
#  endif
}
#endif

/* Block until process `pid` ends (or its end cannot be watched: -1). */
static int block_until_gone(pid_t pid, double timeout) {
#if defined(__linux__)
  int fd = pidfd_of(pid);
  if (fd < 0)
    return errno == ESRCH ? 0 : -1;
  mpi_fd h = fd;
  int rc = mpi_wait(&h, 1, timeout, NULL);
  close(fd);
  return rc == MP_ETIMEDOUT ? MP_ETIMEDOUT : 0;
#elif defined(MPI_HAVE_KQUEUE)
  int kq = kqueue();
  if (kq < 0)
    return -1;
  struct kevent ev;
  EV_SET(&ev, pid, EVFILT_PROC, EV_ADD | EV_ONESHOT, NOTE_EXIT, 0, NULL);
  if (kevent(kq, &ev, 1, NULL, 0, NULL) != 0) {
    close(kq);
    return errno == ESRCH ? 0 : -1;
  }
  mpi_fd h = kq;
  int rc = mpi_wait(&h, 1, timeout, NULL);
  close(kq);
  return rc == MP_ETIMEDOUT ? MP_ETIMEDOUT : 0;
#else
  (void)pid;
  (void)timeout;
  return -1;
#endif
}

static void *watcher(void *arg) {
  pid_t parent = (pid_t)(intptr_t)arg;
  if (block_until_gone(parent, -1.0) == 0)
    die_with_parent();
  /* No way to block on it here: look every 50 ms. */
  while (getppid() == parent) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  die_with_parent();
  return NULL;
}

int mpi__watch_parent(pid_t parent, int started_from_main_thread) {
#if defined(__linux__)
  /* PR_SET_PDEATHSIG fires when the *thread* that started us ends, so it
   * is exact only for children started from the main thread. */
  if (started_from_main_thread) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
      return mpi__errno_error("prctl");
    if (getppid() != parent)
      die_with_parent();
    return 0;
  }
#else
  (void)started_from_main_thread;
#endif
  if (getppid() != parent)
    die_with_parent();
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  int err = pthread_create(&t, &a, watcher, (void *)(intptr_t)parent);
  pthread_attr_destroy(&a);
  if (err != 0) {
    errno = err;
    return mpi__errno_error("pthread_create");
  }
  return 0;
}

int mpi_child_init(int daemon, int64_t parent_pid) {
  if (!daemon)
    return 0;
  pid_t p = watch_pid ? watch_pid : (pid_t)parent_pid;
  return mpi__watch_parent(p, watch_main_thread);
}

int mpi_parent_alive(int64_t parent_pid) {
  if (os_parent_is_ppid)
    return (int64_t)getppid() == parent_pid;
  /* Not our OS parent (a fork-server child): a pidfd or kqueue sees a
   * zombie as ended, where kill(pid, 0) would not. */
  int rc = block_until_gone((pid_t)parent_pid, 0.0);
  if (rc == 0 || rc == MP_ETIMEDOUT)
    return rc == MP_ETIMEDOUT;
  return kill((pid_t)parent_pid, 0) == 0 || errno == EPERM;
}

int mpi_parent_wait(int64_t parent_pid, double timeout) {
  if (!mpi_parent_alive(parent_pid))
    return 0;
  int rc = block_until_gone((pid_t)parent_pid, timeout);
  if (rc == 0)
    return 0;
  if (rc == MP_ETIMEDOUT)
    return mp__error(MP_ETIMEDOUT, "the parent is still running");
  double deadline = timeout < 0 ? -1.0 : mpi_now() + timeout;
  while (mpi_parent_alive(parent_pid)) {
    if (deadline >= 0 && mpi_now() >= deadline)
      return mp__error(MP_ETIMEDOUT, "the parent is still running");
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return 0;
}

void mpi_exit(int code) { _exit(code); }
