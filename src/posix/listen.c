/*
 * posix/listen.c - listeners and connections (platform.h part 10):
 * Unix-domain socket files and TCP over IPv4 / IPv6.
 *
 * Owner-only local sockets.  A generated address is a socket in a fresh
 * mkdtemp directory (0700), so nobody else can even reach it.  A given
 * path is bound in such a private directory next to it, made 0600 there,
 * and only then linked to its final name (link refuses to replace a file
 * that is there): at no moment does the socket exist with wider rights.
 *
 * mpi_accept waits in poll on the listening socket and on a self-pipe
 * that mpi_listener_shutdown writes to, so another thread can end it.
 *
 * A generated address leaves nothing behind, however its process ends:
 * a janitor (a helper process, helper.c) holds the read end of a pipe
 * whose write end only the listener's process (and its fork children)
 * hold; when the last of them ends, killed or not, the janitor reads end
 * of file and removes the socket and its directory.
 *
 * Linux abstract addresses ("@name": Python's '\0name') have no file,
 * hence no permissions: the owner check moves to the connection.  accept
 * drops a peer of another user (SO_PEERCRED) and connect refuses a
 * listener of another user (a name squatter), so that a local address is
 * this user's only, file or not.  Elsewhere "@name" is MP_ENOTSUP.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

struct mpi_listener {
  int fd, family;
  int wake_r, wake_w;
  int abstract;       /* path is "@name", a Linux abstract address */
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  char dir[PATH_MAX]; /* the directory mpi_listen made, or "" */
  int janitor_w;      /* the janitor's pipe, or -1 */
  char peer[320];     /* the last accepted peer's address, or "" */
};

/* ---- small helpers ------------------------------------------------------- */

static void set_cloexec(int fd) { fcntl(fd, F_SETFD, FD_CLOEXEC); }

static void set_blocking(int fd, int blocking) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0)
    fcntl(fd, F_SETFL, blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK);
}

static int new_socket(int domain) {
#if defined(SOCK_CLOEXEC)
  int fd = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
#else
  int fd = socket(domain, SOCK_STREAM, 0);
  if (fd >= 0)
    set_cloexec(fd);
#endif
  return fd;
}

/* What every connected stream gets: blocking, no SIGPIPE where the
 * platform needs a socket option for that, no Nagle delay on TCP. */
static void stream_options(int fd, int family) {
  set_blocking(fd, 1);
#if defined(SO_NOSIGPIPE)
  int one1 = 1;
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one1, sizeof one1);
#endif
  if (family != MPI_AF_LOCAL) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
}

static int check_family(int family) {
  if (family != MPI_AF_LOCAL && family != MPI_AF_INET &&
      family != MPI_AF_INET6)
    return mp__error(MP_EINVAL, "unknown address family %d", family);
  return 0;
}

/* A sockaddr_un for path: 0 or MP_EINVAL (too long for sun_path). */
static int unix_address(const char *path, struct sockaddr_un *sa) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (path[0] == '\0' || strlen(path) >= sizeof sa->sun_path)
    return mp__error(MP_EINVAL, "local address \"%s\": empty or longer "
                                "than %zu bytes", path,
                     sizeof sa->sun_path - 1);
  memcpy(sa->sun_path, path, strlen(path) + 1);
  return 0;
}

/* A sockaddr_un for "@name": a NUL, then the name's bytes and no more
 * (the length says where it ends, as for Python's '\0name' and the
 * Linux tools' "@name").  0, MP_EINVAL (empty or too long), or
 * MP_ENOTSUP where there is no abstract namespace. */
static int abstract_address(const char *address, struct sockaddr_un *sa,
                            socklen_t *len) {
#if defined(__linux__)
  size_t n = strlen(address + 1);
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (n == 0 || n >= sizeof sa->sun_path)
    return mp__error(MP_EINVAL, "abstract address \"%s\": empty or longer "
                                "than %zu bytes after the '@'", address,
                     sizeof sa->sun_path - 1);
  memcpy(sa->sun_path + 1, address + 1, n);
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
  return 0;
#else
  (void)sa;
  (void)len;
  return mp__error(MP_ENOTSUP, "local address \"%s\": abstract socket "
                               "names (\"@name\") exist on Linux only; "
                               "use a path (\"./@name\" for a file)",
                   address);
#endif
}

/* Is the other end of local socket fd of our own user?  1 or 0. */
static int peer_is_ours(int fd) {
#if defined(__linux__)
  struct ucred cr;
  socklen_t cl = sizeof cr;
  return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 &&
         cr.uid == geteuid();
#else
  (void)fd;
  return 0; /* no abstract sockets here to ask about */
#endif
}

/* The textual form of a local socket address of `len` bytes: its path,
 * "@name" for an abstract one (up to a NUL in the name), "" for a socket
 * without a name. */
static void format_local(const struct sockaddr_un *sa, socklen_t len,
                         char *buf, size_t cap) {
  size_t off = offsetof(struct sockaddr_un, sun_path);
  size_t n = (size_t)len > off ? (size_t)len - off : 0;
  if (n > sizeof sa->sun_path)
    n = sizeof sa->sun_path;
  if (n > 0 && sa->sun_path[0] == '\0')
    snprintf(buf, cap, "@%.*s", (int)(n - 1), sa->sun_path + 1);
  else
    snprintf(buf, cap, "%.*s", (int)n, sa->sun_path);
}

/* getaddrinfo for a TCP address; an empty host is the loopback. */
static int resolve(int family, const char *address, int passive,
                   struct addrinfo **out) {
  char host[256];
  unsigned port;
  int rc = mp__split_host_port(address, host, sizeof host, &port);
  if (rc != 0)
    return rc;
  if (host[0] == '\0')
    strcpy(host, family == MPI_AF_INET6 ? "::1" : "127.0.0.1");
  char serv[8];
  snprintf(serv, sizeof serv, "%u", port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = family == MPI_AF_INET6 ? AF_INET6 : AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  int err = getaddrinfo(host, serv, &hints, out);
  if (err != 0)
    return mp__error(MP_EINVAL, "address \"%s\": %s (for %s)", address,
                     gai_strerror(err),
                     family == MPI_AF_INET6 ? "IPv6" : "IPv4");
  return 0;
}

static void format_inet(const struct sockaddr *sa, char *buf, size_t cap) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const void *)sa;
    inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
    snprintf(buf, cap, "[%s]:%u", ip, (unsigned)ntohs(s6->sin6_port));
  } else {
    const struct sockaddr_in *s4 = (const void *)sa;
    inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
    snprintf(buf, cap, "%s:%u", ip, (unsigned)ntohs(s4->sin_port));
  }
}

static int bind_error(const char *address) {
  int e = errno;
  if (e == EADDRINUSE || e == EEXIST)
    return mp__error(MP_EEXIST, "address \"%s\" is in use", address);
  if (e == EACCES || e == EPERM)
    return mp__error(MP_EPERM, "binding \"%s\": %s", address, strerror(e));
  if (e == EADDRNOTAVAIL || e == ENOENT || e == ENOTDIR ||
      e == EAFNOSUPPORT)
    return mp__error(MP_EINVAL, "address \"%s\": %s", address, strerror(e));
  return mp__error(MP_EOS, "binding \"%s\": %s", address, strerror(e));
}

/* A private directory "<base>/mproc-XXXXXX" (0700); base NULL: $TMPDIR or
 * /tmp.  0 or MP_EOS. */
static int private_dir(const char *base, char *dir, size_t cap) {
  if (base == NULL) {
    base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0' || strlen(base) > 60)
      base = "/tmp";
  }
  if ((size_t)snprintf(dir, cap, "%s/.mproc-XXXXXX", base) >= cap)
    return mp__error(MP_EINVAL, "directory name too long");
  if (mkdtemp(dir) == NULL)
    return mpi__errno_error("mkdtemp");
  return 0;
}

/* ---- the janitor -------------------------------------------------------- */

typedef struct janitor_args {
  const char *path, *dir;
} janitor_args;

/* In the janitor: wait for every holder of the pipe to end, then remove
 * what they could not. */
static void janitor_main(int fd, void *arg) {
  janitor_args *a = arg;
  char b[64];
  ssize_t r;
  do
    r = read(fd, b, sizeof b);
  while (r > 0 || (r < 0 && errno == EINTR));
  unlink(a->path);
  rmdir(a->dir);
}

/* Start the janitor of l's generated socket (best effort: without it the
 * listener still works, and is still removed when closed). */
static void start_janitor(mpi_listener *l) {
  int p[2];
  if (pipe(p) != 0)
    return;
  set_cloexec(p[0]);
  set_cloexec(p[1]);
  janitor_args a = {l->path, l->dir};
  mpi__start_lock();
  int rc = mpi__helper_start(p[0], janitor_main, &a);
  mpi__start_unlock();
  close(p[0]);
  if (rc != 0) {
    close(p[1]);
    return;
  }
  l->janitor_w = p[1];
}

/* ---- listening ----------------------------------------------------------- */

/* Bind at the abstract address "@name" (see the top). */
static int bind_abstract(mpi_listener *l, const char *address) {
  struct sockaddr_un sa;
  socklen_t len = 0;
  int rc = abstract_address(address, &sa, &len);
  if (rc != 0)
    return rc;
  if (bind(l->fd, (struct sockaddr *)&sa, len) != 0)
    return bind_error(address);
  mp__strlcpy(l->path, address, sizeof l->path);
  l->abstract = 1;
  return 0;
}

/* Bind a local socket at l->path, owner-only (see the top). */
static int bind_local(mpi_listener *l, const char *address) {
  struct sockaddr_un sa;
  char tmpdir[PATH_MAX] = "", tmp[PATH_MAX];
  int rc;
  if (address != NULL && address[0] == '@')
    return bind_abstract(l, address);
  if (address == NULL || address[0] == '\0') {
    if ((rc = private_dir(NULL, l->dir, sizeof l->dir)) != 0)
      return rc;
    if ((size_t)snprintf(l->path, sizeof l->path, "%s/listener", l->dir) >=
        sizeof l->path) {
      rmdir(l->dir);
      l->dir[0] = '\0';
      return mp__error(MP_EINVAL, "temporary directory name too long");
    }
    if ((rc = unix_address(l->path, &sa)) != 0)
      return rc;
    if (bind(l->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
      return bind_error(l->path);
    chmod(l->path, 0600);
    start_janitor(l);
    return 0;
  }
  if ((rc = unix_address(address, &sa)) != 0)
    return rc;
  /* l->path is set only once the socket is ours: closing a listener that
   * failed must not remove somebody else's file. */
  /* Bind in a private directory beside the final name, then link. */
  char parent[PATH_MAX];
  mp__strlcpy(parent, address, sizeof parent);
  char *slash = strrchr(parent, '/');
  if (slash == parent)
    parent[1] = '\0';
  else if (slash != NULL)
    *slash = '\0';
  else
    strcpy(parent, ".");
  struct stat st;
  if (lstat(address, &st) == 0)
    return mp__error(MP_EEXIST, "local address \"%s\" exists already",
                     address);
  if ((rc = private_dir(parent, tmpdir, sizeof tmpdir)) != 0)
    return rc == MP_EOS ? bind_error(address) : rc;
  if ((size_t)snprintf(tmp, sizeof tmp, "%s/s", tmpdir) >= sizeof tmp)
    tmp[0] = '\0'; /* unix_address refuses it */
  if ((rc = unix_address(tmp, &sa)) != 0) {
    rmdir(tmpdir);
    return rc;
  }
  if (bind(l->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    rc = bind_error(address);
  } else if (chmod(tmp, 0600) != 0) {
    rc = mpi__errno_error("chmod");
  } else if (link(tmp, address) != 0) {
    rc = bind_error(address);
  } else {
    mp__strlcpy(l->path, address, sizeof l->path);
  }
  unlink(tmp);
  rmdir(tmpdir);
  return rc;
}

int mpi_listen(int family, const char *address, int backlog,
               mpi_listener **out, char *bound, size_t cap) {
  int rc = check_family(family);
  if (rc != 0)
    return rc;
  if (backlog < 1)
    backlog = 1;
  mpi_listener *l = calloc(1, sizeof *l);
  if (l == NULL)
    return mp__error(MP_ENOMEM, "out of memory");
  l->family = family;
  l->fd = l->wake_r = l->wake_w = l->janitor_w = -1;
  int p[2];
  if (pipe(p) != 0) {
    free(l);
    return mpi__errno_error("pipe");
  }
  l->wake_r = p[0];
  l->wake_w = p[1];
  set_cloexec(p[0]);
  set_cloexec(p[1]);
  set_blocking(p[1], 0);
  if (family == MPI_AF_LOCAL) {
    if ((l->fd = new_socket(AF_UNIX)) < 0)
      rc = mpi__errno_error("socket");
    else
      rc = bind_local(l, address);
    if (rc == 0)
      mp__strlcpy(bound, l->path, cap);
  } else {
    struct addrinfo *ai = NULL;
    rc = address == NULL ? mp__error(MP_EINVAL, "a TCP listener needs an "
                                                "address \"host:port\"")
                         : resolve(family, address, 1, &ai);
    if (rc == 0 && (l->fd = new_socket(ai->ai_family)) < 0)
      rc = mpi__errno_error("socket");
    if (rc == 0) {
      int one = 1;
      setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (family == MPI_AF_INET6)
        setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
      if (bind(l->fd, ai->ai_addr, ai->ai_addrlen) != 0)
        rc = bind_error(address);
    }
    if (ai != NULL)
      freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (rc == 0 && getsockname(l->fd, (struct sockaddr *)&ss, &len) != 0)
      rc = mpi__errno_error("getsockname");
    if (rc == 0)
      format_inet((struct sockaddr *)&ss, bound, cap);
  }
  if (rc == 0 && listen(l->fd, backlog) != 0)
    rc = mpi__errno_error("listen");
  if (rc != 0) {
    mpi_listener_close(l);
    return rc;
  }
  /* Non-blocking: a connection that goes away between poll and accept
   * must not leave accept waiting. */
  set_blocking(l->fd, 0);
  *out = l;
  return 0;
}

int mpi_accept(mpi_listener *l, double timeout, mpi_fd *out) {
  double deadline = timeout < 0 ? -1 : mpi_now() + timeout;
  for (;;) {
    struct pollfd pf[2] = {{l->fd, POLLIN, 0}, {l->wake_r, POLLIN, 0}};
    int ms = -1;
    if (deadline >= 0) {
      double left = deadline - mpi_now();
      ms = left <= 0 ? 0 : (int)(left * 1000.0) + 1;
    }
    int n = poll(pf, 2, ms);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return mpi__errno_error("poll");
    if (pf[1].revents != 0)
      return mp__error(MP_ECLOSED, "the listener was shut down");
    if (n == 0) {
      if (deadline >= 0 && mpi_now() >= deadline)
        return mp__error(MP_ETIMEDOUT, "no connection within %g s",
                         timeout);
      continue;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(&ss, 0, sizeof ss);
#if defined(__linux__)
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
#else
    int fd = accept(l->fd, (struct sockaddr *)&ss, &len);
    if (fd >= 0)
      set_cloexec(fd);
#endif
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
          errno == ECONNABORTED || errno == EPROTO)
        continue; /* it went away again */
      return mpi__errno_error("accept");
    }
    if (l->abstract && !peer_is_ours(fd)) {
      close(fd); /* another user's: as if it never came */
      continue;
    }
    stream_options(fd, l->family); /* BSDs: accept inherits O_NONBLOCK */
    if (len > sizeof ss)
      len = sizeof ss;
    if (l->family == MPI_AF_LOCAL)
      format_local((const struct sockaddr_un *)&ss, len, l->peer,
                   sizeof l->peer);
    else
      format_inet((const struct sockaddr *)&ss, l->peer, sizeof l->peer);
    *out = fd;
    return 0;
  }
}

void mpi_listener_peer(const mpi_listener *l, char *buf, size_t cap) {
  if (buf != NULL && cap > 0)
    mp__strlcpy(buf, l != NULL ? l->peer : "", cap);
}

void mpi_listener_shutdown(mpi_listener *l) {
  if (l != NULL && l->wake_w >= 0) {
    char c = 1;
    ssize_t w = write(l->wake_w, &c, 1); /* full: already woken */
    (void)w;
  }
}

void mpi_listener_close(mpi_listener *l) {
  if (l == NULL)
    return;
  if (l->fd >= 0) {
    close(l->fd);
    if (l->family == MPI_AF_LOCAL && l->path[0] != '\0' && !l->abstract)
      unlink(l->path);
  }
  if (l->dir[0] != '\0')
    rmdir(l->dir);
  if (l->janitor_w >= 0)
    close(l->janitor_w); /* the janitor finds nothing left, and ends */
  if (l->wake_r >= 0)
    close(l->wake_r);
  if (l->wake_w >= 0)
    close(l->wake_w);
  free(l);
}

/* ---- connecting ---------------------------------------------------------- */

/* Wait for a non-blocking connect on fd: 0; MP_ETIMEDOUT or another
 * error code; 1 when the connect failed (errno says why). */
static int finish_connect(int fd, double deadline, const char *address) {
  for (;;) {
    struct pollfd pf = {fd, POLLOUT, 0};
    int ms = -1;
    if (deadline >= 0) {
      double left = deadline - mpi_now();
      if (left <= 0)
        return mp__error(MP_ETIMEDOUT, "connecting to \"%s\" timed out",
                         address);
      ms = (int)(left * 1000.0) + 1;
    }
    int n = poll(&pf, 1, ms);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return mpi__errno_error("poll");
    if (n == 0)
      continue;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
      err = errno;
    if (err == 0)
      return 0;
    errno = err;
    return 1;
  }
}

int mpi_connect(int family, const char *address, double timeout,
                mpi_fd *out) {
  int rc = check_family(family);
  if (rc != 0)
    return rc;
  if (address == NULL || address[0] == '\0')
    return mp__error(MP_EINVAL, "connect: no address");
  double deadline = timeout < 0 ? -1 : mpi_now() + timeout;
  struct sockaddr_un sun;
  struct addrinfo *ai = NULL;
  const struct sockaddr *sa;
  socklen_t salen;
  int domain;
  int abstract = family == MPI_AF_LOCAL && address[0] == '@';
  if (family == MPI_AF_LOCAL) {
    salen = sizeof sun;
    if ((rc = abstract ? abstract_address(address, &sun, &salen)
                       : unix_address(address, &sun)) != 0)
      return rc;
    sa = (const struct sockaddr *)&sun;
    domain = AF_UNIX;
  } else {
    if ((rc = resolve(family, address, 0, &ai)) != 0)
      return rc;
    sa = ai->ai_addr;
    salen = ai->ai_addrlen;
    domain = ai->ai_family;
  }
  int fd = -1;
  for (;;) {
    if ((fd = new_socket(domain)) < 0) {
      rc = mpi__errno_error("socket");
      break;
    }
    set_blocking(fd, 0);
    int r = connect(fd, sa, salen) == 0 ? 0 : 1;
    if (r != 0 && (errno == EINPROGRESS || errno == EINTR))
      r = finish_connect(fd, deadline, address);
    if (r == 0) {
      stream_options(fd, family);
      break;
    }
    int e = errno;
    close(fd);
    fd = -1;
    if (r < 0) { /* finish_connect's own error */
      rc = r;
      break;
    }
    if (e == EAGAIN && family == MPI_AF_LOCAL &&
        (deadline < 0 || mpi_now() < deadline)) {
      poll(NULL, 0, 1); /* the backlog is full: try again shortly */
      continue;
    }
    if (e == ETIMEDOUT)
      rc = mp__error(MP_ETIMEDOUT, "connecting to \"%s\" timed out",
                     address);
    else if (e == ECONNREFUSED || e == ENOENT || e == ENOTDIR)
      rc = mp__error(MP_ENOENT, "nobody listens at \"%s\"", address);
    else if (e == EACCES || e == EPERM)
      rc = mp__error(MP_EPERM, "connecting to \"%s\": %s", address,
                     strerror(e));
    else
      rc = mp__error(MP_EOS, "connecting to \"%s\": %s", address,
                     strerror(e));
    break;
  }
  if (ai != NULL)
    freeaddrinfo(ai);
  if (rc == 0 && abstract && !peer_is_ours(fd)) {
    close(fd);
    rc = mp__error(MP_EPERM, "\"%s\" is another user's listener", address);
  }
  if (rc != 0)
    return rc;
  *out = fd;
  return 0;
}

/* ---- the sharer's names (handoff.c) ----------------------------------- */

int mpi_sharer_name(char *buf, size_t cap) {
  buf[0] = '\0';
#if defined(__linux__)
  unsigned char r[8];
  int rc = mpi_random(r, sizeof r);
  if (rc != 0)
    return rc;
  unsigned long long v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | r[i];
  if ((size_t)snprintf(buf, cap, "@mproc-share-%lld-%016llx",
                       (long long)mpi_getpid(), v) >= cap)
    return mp__error(MP_ERANGE, "sharer name too long");
#else
  (void)cap;
#endif
  return 0;
}

int mpi_sharer_address(const char *a) {
#if defined(__linux__)
  static const char prefix[] = "@mproc-share-";
  return strncmp(a, prefix, sizeof prefix - 1) == 0;
#else
  size_t n = strlen(a); /* mpi_listen's generated name */
  return strstr(a, "/.mproc-") != NULL && n > 9 &&
         strcmp(a + n - 9, "/listener") == 0;
#endif
}
