/*
 * posix/forkserver.c - the forkserver start method.
 *
 * On first use a process spawns a clean copy of its own program with the
 * MPROC_FORKSERVER marker; that copy runs main() up to MP_MAIN_GUARD and
 * then serves here: each request carries a bootstrap blob and, by
 * SCM_RIGHTS, the write end of the new child's status pipe.  The server
 * forks, sends the child's pid as a 'P' frame on that pipe and, when it
 * reaps the child, its wait status as an 'X' frame.  The requester's end
 * of the pipe is the child's sentinel, as with the other methods.
 *
 * The server is single-threaded (safe to fork), ignores SIGINT (Ctrl-C
 * goes to the requester, which decides), and exits when its control
 * socket reaches EOF: when the requester exits or dies.  Its daemonic
 * children die with it (PR_SET_PDEATHSIG / a watcher), so they die with
 * the requester too.  Each process has its own server.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#define REQ_MAGIC 0x5346504Du /* "MPFS" */

static int ctl_fd = -1; /* requester: its socket to the server */
static pid_t server_pid;

void mpi__forkserver_forget(void) {
  if (ctl_fd >= 0)
    close(ctl_fd);
  ctl_fd = -1;
  server_pid = 0;
}

/* ---- the requester ---------------------------------------------------- */

static int start_server(const mpi_start_info *si) {
  char exe[4096];
  int rc = si->exe ? (strlen(si->exe) < sizeof exe
                          ? (strcpy(exe, si->exe), 0)
                          : mp__error(MP_ERANGE, "executable path too long"))
                   : mpi_exe_path(exe, sizeof exe);
  if (rc != 0)
    return rc;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
    return mpi__errno_error("socketpair");
  fcntl(sv[0], F_SETFD, FD_CLOEXEC);
  fcntl(sv[1], F_SETFD, FD_CLOEXEC);
#if defined(SO_NOSIGPIPE)
  int one = 1;
  setsockopt(sv[0], SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  /* The server's end becomes its descriptor 3: the server holds only
   * that and 0, 1, 2 (never what this process had open). */
  char env[96];
  snprintf(env, sizeof env, MPI_ENV_FORKSERVER "=3:%ld", (long)getpid());
  pid_t pid = 0;
  rc = mpi__spawn_program(exe, si->argv, env, &sv[1], 1, &pid);
  close(sv[1]);
  if (rc != 0) {
    close(sv[0]);
    return rc;
  }
  /* The server says 'R' once it has passed the main guard and serves. */
  char ready = 0;
  ssize_t r;
  do
    r = read(sv[0], &ready, 1);
  while (r < 0 && errno == EINTR);
  if (r != 1 || ready != 'R') {
    close(sv[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st))
      return mp__error(MP_EOS, "the fork server (pid %ld) was killed by "
                               "signal %d before it could serve",
                       (long)pid, WTERMSIG(st));
    return mp__error(MP_EBOOTSTRAP,
                     "the fork server (pid %ld) exited with code %d before "
                     "reaching MP_MAIN_GUARD(argc, argv): the program must "
                     "call it in main() before starting any process",
                     (long)pid, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  }
  ctl_fd = sv[0];
  server_pid = pid;
  return 0;
}

#if !defined(MSG_NOSIGNAL)
#  define MSG_NOSIGNAL 0
#endif

static int send_bytes(const void *p, size_t left) {
  const char *c = p;
  while (left > 0) {
    ssize_t w = send(ctl_fd, c, left, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return mp__error(MP_EPIPE, "the fork server is gone");
    c += w;
    left -= (size_t)w;
  }
  return 0;
}

/* A request: a 16-byte head (magic, handle count, bootstrap length),
 * then by SCM_RIGHTS the status pipe's write end followed by the child's
 * handles, then the bootstrap bytes. */
static int send_request(const mpi_start_info *si, int status_wr) {
  unsigned char head[16];
  mpi__put_u32(head, REQ_MAGIC);
  mpi__put_u32(head + 4, (uint32_t)si->n_handles);
  uint64_t n = si->boot_len;
  for (int i = 0; i < 8; i++)
    head[8 + i] = (unsigned char)(n >> (8 * i));
  int rc = mpi__fds_open(si->handles, si->n_handles);
  if (rc != 0)
    return rc;
  int *fds = malloc((1 + si->n_handles) * sizeof *fds);
  if (fds == NULL)
    return mp__error(MP_ENOMEM, "forkserver: out of memory");
  fds[0] = status_wr;
  for (size_t i = 0; i < si->n_handles; i++)
    fds[1 + i] = (int)si->handles[i];
  rc = send_bytes(head, sizeof head);
  if (rc == 0 && mpi__send_fds(ctl_fd, fds, 1 + si->n_handles) != 0)
    rc = mp__error(MP_EPIPE, "the fork server is gone");
  free(fds);
  return rc == 0 ? send_bytes(si->boot, si->boot_len) : rc;
}

int mpi__forkserver_request(const mpi_start_info *si, int status_wr) {
  for (int attempt = 0; attempt < 2; attempt++) {
    int rc = ctl_fd < 0 ? start_server(si) : 0;
    if (rc != 0)
      return rc;
    rc = send_request(si, status_wr);
    if (rc != MP_EPIPE)
      return rc;
    /* The server died (killed?): reap it and start a new one once. */
    close(ctl_fd);
    ctl_fd = -1;
    waitpid(server_pid, NULL, 0);
  }
  return mp__error(MP_EOS, "cannot reach a fork server");
}

/* ---- the server ------------------------------------------------------- */

struct served {
  pid_t pid;
  int fd;
};

static int sigchld_pipe[2] = {-1, -1};

static void on_sigchld(int sig) {
  int saved = errno;
  (void)sig;
  ssize_t r = write(sigchld_pipe[1], "c", 1);
  (void)r;
  errno = saved;
}

/* Receive one request (see send_request): 1 with *boot, *status_fd and
 * the child's handles (*handles, *nh), 0 on EOF or a malformed request. */
static int receive(int ctl, void **boot, size_t *len, int *status_fd,
                   mpi_fd **handles, size_t *nh) {
  unsigned char head[16];
  if (mpi__read_all(ctl, head, sizeof head) != 0 ||
      mpi__get_u32(head) != REQ_MAGIC)
    return 0;
  uint32_t count = mpi__get_u32(head + 4);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--)
    n = (n << 8) | head[8 + i];
  if (count > MPI_HANDLES_MAX || n > MPI_BOOT_MAX)
    return 0;
  int *fds = malloc((1 + (size_t)count) * sizeof *fds);
  *handles = count ? malloc(count * sizeof **handles) : NULL;
  *boot = malloc(n ? (size_t)n : 1);
  int ok = fds != NULL && (count == 0 || *handles != NULL) && *boot != NULL &&
           mpi__recv_fds(ctl, fds, 1 + (size_t)count) == 0;
  if (ok) {
    *status_fd = fds[0];
    for (uint32_t i = 0; i < count; i++)
      (*handles)[i] = fds[1 + i];
    *nh = count;
    if (mpi__read_all(ctl, *boot, (size_t)n) != 0) {
      for (uint32_t i = 0; i <= count; i++)
        close(fds[i]);
      ok = 0;
    }
  }
  free(fds);
  if (!ok) {
    free(*handles);
    free(*boot);
    return 0;
  }
  *len = (size_t)n;
  return 1;
}

static void put_i64(unsigned char *p, int64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)((uint64_t)v >> (8 * i));
}

static void reap_all(struct served *t, size_t *n) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (size_t i = 0; i < *n; i++) {
      if (t[i].pid != pid)
        continue;
      unsigned char b[4];
      mpi__put_u32(b, (uint32_t)status);
      mpi__frame_write(t[i].fd, MPI_FRAME_STATUS, b, 4);
      close(t[i].fd);
      t[i] = t[--*n];
      break;
    }
  }
}

int mpi__forkserver_serve(const char *env, void **boot, size_t *len) {
  int ctl = -1;
  long requester = 0;
  if (sscanf(env, "%d:%ld", &ctl, &requester) != 2 || ctl < 0) {
    fprintf(stderr, "mproc: malformed " MPI_ENV_FORKSERVER " variable\n");
    _exit(1);
  }
  unsetenv(MPI_ENV_FORKSERVER);
  const char *bad = mpi__check_boot_channel(ctl, (pid_t)requester);
  if (bad != NULL) {
    fprintf(stderr, "mproc: refusing the fork server's channel: %s\n", bad);
    _exit(1);
  }
  fcntl(ctl, F_SETFD, FD_CLOEXEC);
  if (pipe(sigchld_pipe) != 0)
    _exit(1);
  for (int i = 0; i < 2; i++) {
    fcntl(sigchld_pipe[i], F_SETFD, FD_CLOEXEC);
    fcntl(sigchld_pipe[i], F_SETFL, O_NONBLOCK);
  }
  struct sigaction sa, old_chld, old_int;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGCHLD, &sa, &old_chld);
  sa.sa_handler = SIG_IGN;
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, &old_int);

  struct served *table = NULL;
  size_t n = 0, cap = 0;
  pid_t self = getpid();
  if (write(ctl, "R", 1) != 1) /* serving: see start_server */
    _exit(1);
  for (;;) {
    struct pollfd fds[2] = {{ctl, POLLIN, 0}, {sigchld_pipe[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      _exit(1);
    }
    if (fds[1].revents) {
      char drain[64];
      while (read(sigchld_pipe[0], drain, sizeof drain) > 0) {
      }
      reap_all(table, &n);
    }
    if (!fds[0].revents)
      continue;
    void *data = NULL;
    size_t data_len = 0, nh = 0;
    int status_fd = -1;
    mpi_fd *handles = NULL;
    if (!receive(ctl, &data, &data_len, &status_fd, &handles, &nh))
      _exit(0); /* the requester is gone, or spoke nonsense */
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      struct served *t = realloc(table, cap * sizeof *t);
      if (t == NULL)
        _exit(1);
      table = t;
    }
    pid_t pid = fork();
    if (pid == 0) {
      sigaction(SIGCHLD, &old_chld, NULL);
      sigaction(SIGINT, &old_int, NULL);
      close(ctl);
      close(sigchld_pipe[0]);
      close(sigchld_pipe[1]);
      for (size_t i = 0; i < n; i++)
        close(table[i].fd);
      free(table);
      mpi__become_forkserver_child(status_fd, handles, nh, self);
      *boot = data;
      *len = data_len;
      return MPI_BOOT_CHILD;
    }
    for (size_t i = 0; i < nh; i++) /* the child has them now */
      close((int)handles[i]);
    free(handles);
    unsigned char b[8];
    put_i64(b, pid > 0 ? (int64_t)pid : -1);
    mpi__frame_write(status_fd, MPI_FRAME_PID, b, 8);
    free(data);
    if (pid > 0) {
      table[n].pid = pid;
      table[n].fd = status_fd;
      n++;
    } else {
      close(status_fd);
    }
  }
}
