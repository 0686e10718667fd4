/*
 * posix/helper.c - small helper processes that outlive whoever started
 * them (the segment tracker of shm.c, the socket janitor of listen.c).
 *
 * A helper is a grandchild (the middle process exits at once, so init or
 * a subreaper reaps the helper, never our own waits), in a session of
 * its own, deaf to the signals a terminal or a process group sends (only
 * SIGKILL ends it early), with /dev/null as stdio and no descriptor of
 * ours but the one it is given: whoever reads our pipes still sees end
 * of file when we end.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#  include <sys/syscall.h>
#endif

#include "internal.h"

static void close_from(int lowfd) {
#if defined(__linux__) && defined(SYS_close_range)
  if (syscall(SYS_close_range, (unsigned)lowfd, ~0u, 0u) == 0)
    return;
#endif
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536)
    max = 65536;
  for (int fd = lowfd; fd < max; fd++)
    close(fd);
}

int mpi__helper_detach(int keep) {
  setsid();
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  keep = fcntl(keep, F_DUPFD, 3); /* clear of 0-2 (stdio may be closed) */
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
  }
  if (keep < 0 || dup2(keep, 3) < 0)
    return -1;
  close_from(4);
  return 3;
}

int mpi__helper_start(int give, void (*main_fn)(int fd, void *arg),
                      void *arg) {
  fflush(NULL);
  pid_t mid = fork();
  if (mid == 0) {
    pid_t t = fork();
    if (t == 0) {
      int fd = mpi__helper_detach(give);
      if (fd < 0)
        _exit(1);
      main_fn(fd, arg);
      _exit(0);
    }
    _exit(t < 0 ? 1 : 0);
  }
  if (mid < 0)
    return mpi__errno_error("fork of a helper process");
  int st;
  while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
    ;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0
             ? 0
             : mp__error(MP_EOS, "a helper process could not start");
}
