/*
 * posix/stream.c - byte streams (platform.h part 6) on Unix-domain
 * stream sockets, for both duplex and one-way pairs (a one-way pair is
 * shut down in the other direction): unlike a pipe, a socket can be
 * written with MSG_NOSIGNAL, so a vanished reader is an error code, not
 * a SIGPIPE.  Also the SCM_RIGHTS helpers that pass descriptors.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

#if !defined(MSG_NOSIGNAL)
#  define MSG_NOSIGNAL 0 /* SO_NOSIGPIPE is set instead */
#endif

int mpi__socketpair(int sv[2]) {
#if defined(SOCK_CLOEXEC)
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return mpi__errno_error("socketpair");
#else
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
    return mpi__errno_error("socketpair");
  fcntl(sv[0], F_SETFD, FD_CLOEXEC);
  fcntl(sv[1], F_SETFD, FD_CLOEXEC);
#endif
#if defined(SO_NOSIGPIPE)
  int one = 1;
  setsockopt(sv[0], SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
  setsockopt(sv[1], SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  return 0;
}

int mpi_stream_pair(int duplex, mpi_fd *a, mpi_fd *b) {
  int sv[2];
  int rc = mpi__socketpair(sv);
  if (rc != 0)
    return rc;
  if (!duplex) { /* a reads, b writes */
    shutdown(sv[0], SHUT_WR);
    shutdown(sv[1], SHUT_RD);
  }
  *a = sv[0];
  *b = sv[1];
  return 0;
}

int mpi_stream_write(mpi_fd h, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = send((int)h, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
      return mp__error(MP_EPIPE, "broken pipe: the other end is closed");
    if (w < 0)
      return mpi__errno_error("send");
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Read until at least `min` bytes (and at most n) have arrived. */
static int read_min(mpi_fd h, void *p, size_t n, size_t min, size_t *got) {
  char *c = p;
  size_t done = 0;
  int rc = 0;
  while (done < min) {
    ssize_t r = recv((int)h, c + done, n - done, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0 || (r < 0 && errno == ECONNRESET)) {
      rc = MP_EEOF;
      break;
    }
    if (r < 0) {
      rc = mpi__errno_error("recv");
      break;
    }
    done += (size_t)r;
  }
  if (got != NULL)
    *got = done;
  return rc;
}

int mpi_stream_read(mpi_fd h, void *p, size_t n, size_t *got) {
  return read_min(h, p, n, n, got);
}

int mpi_stream_recv(mpi_fd h, void *p, size_t n, size_t *got) {
  return read_min(h, p, n, n ? 1 : 0, got);
}

int mpi_stream_recv_ready(mpi_fd h, void *p, size_t n, size_t *got) {
  *got = 0;
  for (;;) {
    ssize_t r = recv((int)h, p, n, MSG_DONTWAIT);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 0;
    if (r == 0 && n > 0)
      return MP_EEOF;
    if (r < 0 && errno == ECONNRESET)
      return MP_EEOF;
    if (r < 0)
      return mpi__errno_error("recv");
    *got = (size_t)r;
    return 0;
  }
}

int mpi_stream_poll(mpi_fd h, double timeout) {
  int rc = mpi_wait(&h, 1, timeout, NULL);
  return rc == MP_ETIMEDOUT ? 0 : rc;
}

void mpi_stream_close(mpi_fd h) {
  if (h >= 0)
    close((int)h);
}

/* ---- passing descriptors -------------------------------------------- */

#define FDS_PER_MESSAGE 250 /* under Linux's SCM_MAX_FD (253) */

/* Send n descriptors: messages of one byte, each carrying up to
 * FDS_PER_MESSAGE of them.  The receiver reads one byte at a time. */
int mpi__fds_open(const mpi_fd *h, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (h[i] < 0 || fcntl((int)h[i], F_GETFD) == -1)
      return mp__error(MP_ECLOSED, "start: handle %zu of the arguments is "
                                   "not open in this process", i);
  return 0;
}

int mpi__send_fds(int sock, const int *fds, size_t n) {
  while (n > 0) {
    size_t k = n < FDS_PER_MESSAGE ? n : FDS_PER_MESSAGE;
    char byte = 'F';
    struct iovec iov = {&byte, 1};
    union {
      struct cmsghdr h;
      char buf[CMSG_SPACE(sizeof(int) * FDS_PER_MESSAGE)];
    } cm;
    memset(&cm, 0, sizeof cm);
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cm.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * k);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * k);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * k);
    ssize_t w;
    do
      w = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w != 1)
      return mpi__errno_error("sendmsg SCM_RIGHTS");
    fds += k;
    n -= k;
  }
  return 0;
}

/* Receive n descriptors sent by mpi__send_fds, made CLOEXEC, by
 * `deadline` (mpi_now() time; negative: none).  On failure none is left
 * open. */
static int recv_fds(int sock, int *fds, size_t n, double deadline) {
  size_t have = 0;
  int rc = 0;
  while (rc == 0 && have < n) {
    if (deadline >= 0) {
      double left = deadline - mpi_now();
      struct pollfd pfd = {sock, POLLIN, 0};
      int r = left > 0 ? poll(&pfd, 1, (int)(left * 1000) + 1) : 0;
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0) {
        rc = mp__error(MP_ETIMEDOUT, "descriptors did not come in time");
        break;
      }
    }
    char byte;
    struct iovec iov = {&byte, 1};
    union {
      struct cmsghdr h;
      char buf[CMSG_SPACE(sizeof(int) * FDS_PER_MESSAGE)];
    } cm;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cm.buf;
    msg.msg_controllen = sizeof cm.buf;
    ssize_t r;
    do
      r = recvmsg(sock, &msg, 0);
    while (r < 0 && errno == EINTR);
    if (r == 1) {
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL;
           c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
          continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
          int fd;
          memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          fcntl(fd, F_SETFD, FD_CLOEXEC);
          if (have < n)
            fds[have++] = fd;
          else
            close(fd);
        }
      }
    }
    if (r != 1 || (msg.msg_flags & MSG_CTRUNC))
      rc = mp__error(MP_EPROTO, "descriptors missing from the sender");
  }
  if (rc != 0)
    while (have > 0)
      close(fds[--have]);
  return rc;
}

int mpi__recv_fds(int sock, int *fds, size_t n) {
  return recv_fds(sock, fds, n, -1.0);
}

/* ---- handles to another process (handoff.c) ---------------------------- */

int mpi_handle_dup(mpi_fd h, mpi_fd *out) {
  int fd = h < 0 || h > INT32_MAX ? -1 : fcntl((int)h, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) {
    *out = MPI_BAD_FD;
    return errno == EBADF || h < 0 || h > INT32_MAX
               ? mp__error(MP_ECLOSED, "handle %lld is not open",
                           (long long)h)
               : mpi__errno_error("fcntl(F_DUPFD_CLOEXEC)");
  }
  *out = fd;
  return 0;
}

int mpi_handles_send(mpi_fd stream, const mpi_fd *h, size_t n,
                     int64_t peer_pid) {
  (void)peer_pid; /* the kernel knows the peer */
  if (n == 0)
    return 0;
  int *fds = malloc(n * sizeof *fds);
  if (fds == NULL)
    return mp__error(MP_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++)
    fds[i] = (int)h[i];
  int rc = mpi__send_fds((int)stream, fds, n);
  free(fds);
  return rc;
}

int mpi_handles_recv(mpi_fd stream, mpi_fd *out, size_t n, double timeout) {
  if (n == 0)
    return 0;
  int *fds = malloc(n * sizeof *fds);
  if (fds == NULL)
    return mp__error(MP_ENOMEM, "out of memory");
  int rc = recv_fds((int)stream, fds, n, timeout < 0 ? -1.0
                                                      : mpi_now() + timeout);
  for (size_t i = 0; rc == 0 && i < n; i++)
    out[i] = fds[i];
  free(fds);
  return rc;
}
