/*
 * win32/listen.c - listeners and connections (platform.h part 10): named
 * pipes for the local family, Winsock TCP for IPv4 and IPv6; and the
 * socket helpers that let stream.c and sys.c treat a connected socket as
 * a stream.
 *
 * Parts:
 *   1. Winsock: started once; telling sockets from pipes; readiness
 *   2. addresses: pipe names, "host:port" resolution, the bound address
 *   3. named pipe listeners: one instance always waiting for a client
 *   4. TCP listeners: a listening socket with an FD_ACCEPT event
 *   5. the entry points
 *   6. connecting
 *
 * Local listeners keep one pipe instance with a ConnectNamedPipe in
 * flight.  An accept that times out or is shut down leaves it in flight,
 * so a client that arrives between accepts waits in that instance (no
 * client is lost); the next accept finds it connected.  A connected
 * instance becomes the stream and a new instance takes its place.
 *
 * Sockets are made overlapped (WSA_FLAG_OVERLAPPED) and not inheritable,
 * and are left in blocking mode, so that stream.c's overlapped ReadFile
 * and WriteFile work on them as on the pipes.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <winsock2.h>
#include <ws2tcpip.h>

#if defined(_MSC_VER)
#  pragma comment(lib, "ws2_32.lib")
#endif

#ifndef PIPE_REJECT_REMOTE_CLIENTS
#  define PIPE_REJECT_REMOTE_CLIENTS 0x00000008
#endif
#ifndef WSA_FLAG_NO_HANDLE_INHERIT
#  define WSA_FLAG_NO_HANDLE_INHERIT 0x80
#endif

#define PIPE_PREFIX "\\\\.\\pipe\\"
#define PIPE_PREFIX_LEN 9
#define PIPE_NAME_MAX 256 /* characters, prefix included */

struct mpi_listener {
  int family;
  HANDLE stop; /* manual-reset: set by mpi_listener_shutdown */
  /* MPI_AF_LOCAL */
  wchar_t *name;
  HANDLE pipe;    /* the instance waiting for a client, or invalid */
  int pending;    /* a ConnectNamedPipe on it is in flight (ov) */
  OVERLAPPED ov;
  HANDLE done;    /* ov's event */
  SECURITY_DESCRIPTOR sd;
  void *sd_mem;
  /* MPI_AF_INET, MPI_AF_INET6 */
  SOCKET sock;
  HANDLE ready; /* FD_ACCEPT, through WSAEventSelect */
  char peer[INET6_ADDRSTRLEN + 32]; /* the last accepted client, or "" */
};

/* ---- 1. Winsock ------------------------------------------------------- */

static INIT_ONCE wsa_once = INIT_ONCE_STATIC_INIT;
static int wsa_status; /* WSAStartup's result */

static BOOL CALLBACK wsa_init(PINIT_ONCE once, PVOID arg, PVOID *ctx) {
  (void)once;
  (void)arg;
  (void)ctx;
  WSADATA data;
  wsa_status = WSAStartup(MAKEWORD(2, 2), &data);
  return TRUE;
}

/* Start Winsock once per process (never cleaned up: the process may hold
 * sockets until it ends).  0 or MP_EOS. */
int mpi__winsock_start(void) {
  InitOnceExecuteOnce(&wsa_once, wsa_init, NULL, NULL);
  if (wsa_status != 0)
    return mpi__win_error_code((DWORD)wsa_status, "WSAStartup");
  return 0;
}

/* Set the error for Winsock error err with `code`, or with the code the
 * system error table gives when code is 0. */
static int wsa_error(int err, int code, const char *what) {
  int rc = mpi__win_error_code((DWORD)err, what);
  if (code == 0)
    return rc;
  char msg[600];
  mp__strlcpy(msg, mp_last_error_message(), sizeof msg);
  return mp__error(code, "%s", msg);
}

static SOCKET as_socket(HANDLE h) { return (SOCKET)(uintptr_t)h; }

/* Sockets report FILE_TYPE_PIPE like pipes; unlike them they have no
 * pipe information.  GetLastError is changed. */
int mpi__is_socket(HANDLE h) {
  DWORD flags = 0;
  if (GetFileType(h) != FILE_TYPE_PIPE ||
      GetNamedPipeInfo(h, &flags, NULL, NULL, NULL))
    return 0;
  if (mpi__winsock_start() != 0)
    return 0;
  int type = 0, len = (int)sizeof type;
  return getsockopt(as_socket(h), SOL_SOCKET, SO_TYPE, (char *)&type,
                    &len) == 0;
}

/* A Winsock error that means the connection is gone (reset, aborted,
 * shut down), in either numbering: the WSA one from Winsock calls or the
 * Win32 one from ReadFile, WriteFile and GetOverlappedResult. */
int mpi__socket_gone(DWORD err) {
  switch (err) {
  case WSAECONNRESET:
  case WSAECONNABORTED:
  case WSAESHUTDOWN:
  case WSAENOTCONN:
  case WSAENETRESET:
  case WSAEDISCON:
  case ERROR_NETNAME_DELETED:
  case ERROR_CONNECTION_ABORTED:
  case ERROR_GRACEFUL_DISCONNECT:
  case ERROR_HANDLE_EOF:
    return 1;
  default:
    return 0;
  }
}

/* A timeval for what is left until deadline (negative: NULL, forever),
 * rounded up to the microsecond, at most a day (callers loop). */
static struct timeval *time_left(double deadline, struct timeval *tv) {
  if (deadline < 0)
    return NULL;
  double left = deadline - mpi_now();
  if (left < 0)
    left = 0;
  if (left > 86400.0)
    left = 86400.0;
  long sec = (long)left;
  long usec = (long)((left - (double)sec) * 1e6) + 1;
  if (left == 0)
    usec = 0;
  if (usec >= 1000000) {
    sec++;
    usec -= 1000000;
  }
  tv->tv_sec = sec;
  tv->tv_usec = usec;
  return tv;
}

/* Wait until socket h is readable (data, end of stream or an error),
 * at most timeout seconds (negative: forever; 0: just look).  1, 0 (not
 * readable in time) or an error code. */
int mpi__socket_wait(HANDLE h, double timeout) {
  SOCKET s = as_socket(h);
  double deadline = timeout < 0 ? -1.0 : mpi_now() + timeout;
  for (;;) {
    fd_set rd;
    struct timeval tv;
    FD_ZERO(&rd);
    FD_SET(s, &rd);
    int n = select(0, &rd, NULL, NULL, time_left(deadline, &tv));
    if (n == SOCKET_ERROR)
      return wsa_error(WSAGetLastError(), 0, "stream: select");
    if (n > 0)
      return 1;
    if (deadline >= 0 && mpi_now() >= deadline)
      return 0;
  }
}

/* A zero-byte overlapped receive on socket h: completes (setting the
 * event) once data arrives or the connection ends, consuming nothing.
 * States as mpi__zero_read_start's; end it with mpi__zero_read_end. */
int mpi__zero_recv_start(HANDLE h, OVERLAPPED *ov, HANDLE event) {
  static char none[1];
  WSABUF buf;
  DWORD got = 0, flags = 0;
  buf.len = 0;
  buf.buf = none;
  memset(ov, 0, sizeof *ov);
  ov->hEvent = event;
  ResetEvent(event);
  if (WSARecv(as_socket(h), &buf, 1, &got, &flags, (WSAOVERLAPPED *)ov,
              NULL) == 0) {
    SetEvent(event);
    return MPI_ZR_DONE;
  }
  int err = WSAGetLastError();
  if (err == WSA_IO_PENDING)
    return MPI_ZR_PENDING;
  if (mpi__socket_gone((DWORD)err)) {
    SetEvent(event);
    return MPI_ZR_FAILED;
  }
  return wsa_error(err, 0, "stream: zero-byte receive");
}

/* ---- 2. Addresses ----------------------------------------------------- */

/* Check a pipe name ("\\.\pipe\<name>": no more backslashes, at most
 * 256 characters) and convert it into *out (malloc'd).  0, MP_EINVAL, or
 * MP_ENOTSUP for a Linux abstract socket name ("@name"), which must not
 * quietly become something else here. */
static int pipe_name(const char *address, wchar_t **out) {
  *out = NULL;
  if (address != NULL && address[0] == '@')
    return mp__error(MP_ENOTSUP, "local address \"%s\": abstract socket "
                                 "names (\"@name\") exist on Linux only; "
                                 "Windows uses pipe names, "
                                 "\\\\.\\pipe\\name", address);
  if (address == NULL || _strnicmp(address, PIPE_PREFIX, PIPE_PREFIX_LEN))
    return mp__error(MP_EINVAL, "local address \"%s\": a pipe name starts "
                                "with \\\\.\\pipe\\",
                     address ? address : "(null)");
  const char *rest = address + PIPE_PREFIX_LEN;
  if (rest[0] == '\0' || strchr(rest, '\\') != NULL)
    return mp__error(MP_EINVAL, "local address \"%s\": expected "
                                "\\\\.\\pipe\\ and a name without "
                                "backslashes", address);
  wchar_t *w = mpi__to_wide(address);
  if (w == NULL)
    return mp__error(MP_EINVAL, "local address: not valid UTF-8");
  if (wcslen(w) > PIPE_NAME_MAX) {
    free(w);
    return mp__error(MP_EINVAL, "local address \"%s\": longer than %d "
                                "characters", address, PIPE_NAME_MAX);
  }
  *out = w;
  return 0;
}

/* "\\.\pipe\mproc-<32 random hex digits>". */
static int fresh_pipe_name(char *buf, size_t cap) {
  unsigned char r[16];
  int rc = mpi_random(r, sizeof r);
  if (rc != 0)
    return rc;
  int n = snprintf(buf, cap, "%smproc-", PIPE_PREFIX);
  for (size_t i = 0; i < sizeof r && n > 0 && (size_t)n + 3 <= cap; i++)
    n += snprintf(buf + n, cap - (size_t)n, "%02x", r[i]);
  return 0;
}

/* Split and resolve a TCP address for `family` (MPI_AF_INET /
 * MPI_AF_INET6); an empty host is the loopback address.  0 with *out
 * (freeaddrinfo it), MP_EINVAL for a malformed address, one of the other
 * family or a host that does not resolve (as the POSIX backend), or
 * MP_EOS. */
static int resolve(int family, const char *address, int passive,
                   struct addrinfo **out) {
  char host[256], service[8];
  unsigned port = 0;
  if (address == NULL)
    return mp__error(MP_EINVAL, "TCP address: NULL");
  int rc = mp__split_host_port(address, host, sizeof host, &port);
  if (rc != 0)
    return rc;
  int af = family == MPI_AF_INET ? AF_INET : AF_INET6;
  unsigned char bin[16];
  if (family == MPI_AF_INET6 && inet_pton(AF_INET, host, bin) == 1)
    return mp__error(MP_EINVAL, "address \"%s\": an IPv4 address for "
                                "IPv6", address);
  if (family == MPI_AF_INET && inet_pton(AF_INET6, host, bin) == 1)
    return mp__error(MP_EINVAL, "address \"%s\": an IPv6 address for "
                                "IPv4", address);
  if (host[0] == '\0')
    mp__strlcpy(host, af == AF_INET ? "127.0.0.1" : "::1", sizeof host);
  rc = mpi__winsock_start();
  if (rc != 0)
    return rc;
  snprintf(service, sizeof service, "%u", port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = af;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  int err = getaddrinfo(host, service, &hints, out);
  if (err == 0)
    return 0;
  *out = NULL;
  if (err == EAI_AGAIN || err == EAI_MEMORY)
    return wsa_error(err, err == EAI_MEMORY ? MP_ENOMEM : MP_EOS,
                     "getaddrinfo");
  return wsa_error(err, MP_EINVAL, "cannot resolve the host");
}

/* "a.b.c.d:port" or "[v6]:port" (a scope as "%n"). */
static int format_address(const struct sockaddr *sa, char *buf,
                          size_t cap) {
  char host[INET6_ADDRSTRLEN + 16];
  unsigned port;
  int n;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    /* (void *): some SDKs' inet_ntop takes a PVOID. */
    if (inet_ntop(AF_INET, (void *)&in->sin_addr, host, sizeof host) ==
        NULL)
      return wsa_error(WSAGetLastError(), 0, "inet_ntop");
    port = ntohs(in->sin_port);
    n = snprintf(buf, cap, "%s:%u", host, port);
  } else {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    if (inet_ntop(AF_INET6, (void *)&in6->sin6_addr, host, sizeof host) ==
        NULL)
      return wsa_error(WSAGetLastError(), 0, "inet_ntop");
    if (in6->sin6_scope_id != 0) {
      size_t k = strlen(host);
      snprintf(host + k, sizeof host - k, "%%%lu",
               (unsigned long)in6->sin6_scope_id);
    }
    port = ntohs(in6->sin6_port);
    n = snprintf(buf, cap, "[%s]:%u", host, port);
  }
  if (n < 0 || (size_t)n >= cap)
    return mp__error(MP_EINVAL, "listen: the address buffer is too small");
  return 0;
}

/* A new overlapped TCP socket, not inheritable. */
static int new_socket(int af, SOCKET *out) {
  DWORD flags = WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT;
  SOCKET s = WSASocketW(af, SOCK_STREAM, IPPROTO_TCP, NULL, 0, flags);
  if (s == INVALID_SOCKET && WSAGetLastError() == WSAEINVAL) {
    /* Windows 7 without SP1: no WSA_FLAG_NO_HANDLE_INHERIT. */
    s = WSASocketW(af, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                   WSA_FLAG_OVERLAPPED);
    if (s != INVALID_SOCKET)
      SetHandleInformation((HANDLE)s, HANDLE_FLAG_INHERIT, 0);
  }
  if (s == INVALID_SOCKET) {
    int err = WSAGetLastError();
    return wsa_error(err, err == WSAEAFNOSUPPORT ? MP_EOS : 0,
                     af == AF_INET6 ? "socket (IPv6)" : "socket");
  }
  *out = s;
  return 0;
}

/* Make s a stream: blocking, no event association, not inheritable,
 * TCP_NODELAY. */
static int stream_socket(SOCKET s, mpi_fd *out) {
  u_long off = 0;
  BOOL on = TRUE;
  if (WSAEventSelect(s, NULL, 0) != 0 || ioctlsocket(s, FIONBIO, &off) != 0) {
    int rc = wsa_error(WSAGetLastError(), 0, "cannot make a socket blocking");
    closesocket(s);
    return rc;
  }
  SetHandleInformation((HANDLE)s, HANDLE_FLAG_INHERIT, 0);
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, (const char *)&on, sizeof on);
  *out = (mpi_fd)s;
  return 0;
}

/* ---- 3. Named pipe listeners ------------------------------------------ */

/* Wait until `event` is set or the listener is shut down, at most until
 * deadline (negative: forever): 1 (event set), 0 (woke early: wait
 * again), MP_ECLOSED, MP_ETIMEDOUT or MP_EOS.  Shutdown wins a tie. */
static int wait_or_stop(mpi_listener *l, HANDLE event, double deadline) {
  HANDLE w[2];
  w[0] = l->stop;
  w[1] = event;
  double left = deadline < 0 ? -1.0 : deadline - mpi_now();
  if (deadline >= 0 && left < 0)
    left = 0;
  DWORD r = WaitForMultipleObjects(2, w, FALSE, mpi__timeout_ms(left));
  if (r == WAIT_OBJECT_0)
    return mp__error(MP_ECLOSED, "accept: the listener was shut down");
  if (r == WAIT_OBJECT_0 + 1)
    return 1;
  if (r == WAIT_FAILED)
    return mpi__win_error("accept: WaitForMultipleObjects");
  if (deadline >= 0 && mpi_now() >= deadline)
    return mp__error(MP_ETIMEDOUT, "accept: timed out");
  return 0;
}

/* Create the instance that waits for the next client.  first: the name
 * must not exist yet (MP_EEXIST). */
static int pipe_instance(mpi_listener *l, int first) {
  SECURITY_ATTRIBUTES sa;
  sa.nLength = sizeof sa;
  sa.lpSecurityDescriptor = &l->sd;
  sa.bInheritHandle = FALSE;
  DWORD open_mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED |
                    (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0);
  DWORD pipe_mode = PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
                    PIPE_REJECT_REMOTE_CLIENTS;
  HANDLE h = CreateNamedPipeW(l->name, open_mode, pipe_mode,
                              PIPE_UNLIMITED_INSTANCES, MPI_PIPE_BUFSIZE,
                              MPI_PIPE_BUFSIZE, 0, &sa);
  if (h == INVALID_HANDLE_VALUE) {
    DWORD err = GetLastError();
    if (first && (err == ERROR_ACCESS_DENIED || err == ERROR_PIPE_BUSY))
      return mp__error(MP_EEXIST, "listen: a pipe of that name exists");
    int rc = mpi__win_error_code(err, "listen: CreateNamedPipeW");
    if (err == ERROR_INVALID_NAME || err == ERROR_BAD_PATHNAME)
      rc = mp__error(MP_EINVAL, "listen: not a valid pipe name");
    return rc;
  }
  /* Wine ignores FILE_FLAG_FIRST_PIPE_INSTANCE: count the instances. */
  DWORD count = 0;
  if (first && GetNamedPipeHandleStateW(h, NULL, &count, NULL, NULL, NULL,
                                        0) &&
      count > 1) {
    CloseHandle(h);
    return mp__error(MP_EEXIST, "listen: a pipe of that name exists");
  }
  l->pipe = h;
  l->pending = 0;
  return 0;
}

/* Stop the instance's ConnectNamedPipe if in flight and close it. */
static void pipe_instance_close(mpi_listener *l) {
  if (l->pipe == INVALID_HANDLE_VALUE)
    return;
  if (l->pending) {
    DWORD dummy;
    CancelIoEx(l->pipe, &l->ov);
    GetOverlappedResult(l->pipe, &l->ov, &dummy, TRUE);
    l->pending = 0;
  }
  CloseHandle(l->pipe);
  l->pipe = INVALID_HANDLE_VALUE;
}

static int pipe_listen(mpi_listener *l, const char *address, char *bound,
                       size_t cap) {
  char fresh[64];
  int rc;
  if (address == NULL || address[0] == '\0') {
    if ((rc = fresh_pipe_name(fresh, sizeof fresh)) != 0)
      return rc;
    address = fresh;
  }
  rc = pipe_name(address, &l->name);
  if (rc != 0)
    return rc;
  if (bound != NULL && strlen(address) >= cap)
    return mp__error(MP_EINVAL, "listen: the address buffer is too small");
  l->done = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (l->done == NULL)
    return mpi__win_error("listen: CreateEventW");
  rc = mpi__user_only_sd(&l->sd, &l->sd_mem);
  if (rc == 0)
    rc = pipe_instance(l, 1);
  if (rc == 0 && bound != NULL)
    mp__strlcpy(bound, address, cap);
  return rc;
}

/* Start waiting for a client on the instance: 1 when one is connected
 * already, 0 when the wait is in flight, or an error code. */
static int pipe_connect_start(mpi_listener *l) {
  memset(&l->ov, 0, sizeof l->ov);
  l->ov.hEvent = l->done;
  ResetEvent(l->done);
  if (ConnectNamedPipe(l->pipe, &l->ov))
    return 1;
  DWORD err = GetLastError();
  /* ERROR_NO_DATA: a client came and already left; what it wrote can
   * still be read (as Python's PipeListener does). */
  if (err == ERROR_PIPE_CONNECTED || err == ERROR_NO_DATA)
    return 1;
  if (err == ERROR_IO_PENDING) {
    l->pending = 1;
    return 0;
  }
  return mpi__win_error_code(err, "accept: ConnectNamedPipe");
}

/* The in-flight ConnectNamedPipe has completed: 1 (connected) or an
 * error code (the instance is dropped: the next accept makes another). */
static int pipe_connect_end(mpi_listener *l) {
  DWORD dummy;
  l->pending = 0;
  if (GetOverlappedResult(l->pipe, &l->ov, &dummy, FALSE))
    return 1;
  DWORD err = GetLastError();
  if (err == ERROR_NO_DATA || err == ERROR_PIPE_CONNECTED)
    return 1;
  int rc = mpi__win_error_code(err, "accept: ConnectNamedPipe");
  CloseHandle(l->pipe);
  l->pipe = INVALID_HANDLE_VALUE;
  return rc;
}

static int pipe_accept(mpi_listener *l, double timeout, mpi_fd *out) {
  int rc = 0;
  if (l->pipe == INVALID_HANDLE_VALUE)
    rc = pipe_instance(l, 0);
  if (rc == 0 && !l->pending)
    rc = pipe_connect_start(l);
  double deadline = timeout < 0 ? -1.0 : mpi_now() + timeout;
  while (rc == 0) { /* in flight: wait for it or for shutdown */
    int w = wait_or_stop(l, l->done, deadline);
    if (w < 0)
      return w;
    if (w == 1)
      rc = pipe_connect_end(l);
  }
  if (rc < 0)
    return rc;
  *out = (mpi_fd)l->pipe;
  l->pipe = INVALID_HANDLE_VALUE;
  l->peer[0] = '\0'; /* a pipe client has no address */
  /* The next client's instance; if that fails, the next accept retries
   * (clients meanwhile find the name busy or gone). */
  pipe_instance(l, 0);
  return 0;
}

/* ---- 4. TCP listeners ------------------------------------------------- */

static int tcp_listen(mpi_listener *l, const char *address, int backlog,
                      char *bound, size_t cap) {
  struct addrinfo *ai = NULL;
  int rc = resolve(l->family, address, 1, &ai);
  if (rc != 0)
    return rc;
  rc = new_socket(ai->ai_family, &l->sock);
  if (rc != 0) {
    freeaddrinfo(ai);
    return rc;
  }
  /* Nobody else may bind the port while we hold it (best effort: Wine
   * may not have the option; its bind then refuses anyway). */
  BOOL on = TRUE;
  setsockopt(l->sock, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&on,
             sizeof on);
  /* IPv6 only, as on POSIX (Windows' default; not Wine's). */
  if (ai->ai_family == AF_INET6)
    setsockopt(l->sock, IPPROTO_IPV6, IPV6_V6ONLY, (const char *)&on,
               sizeof on);
  if (bind(l->sock, ai->ai_addr, (int)ai->ai_addrlen) != 0) {
    int err = WSAGetLastError();
    int code = err == WSAEADDRINUSE     ? MP_EEXIST
               : err == WSAEACCES       ? MP_EPERM
               : err == WSAEADDRNOTAVAIL ? MP_EINVAL
                                         : 0;
    rc = wsa_error(err, code, "listen: bind");
  }
  freeaddrinfo(ai);
  if (rc == 0 && listen(l->sock, backlog) != 0)
    rc = wsa_error(WSAGetLastError(), 0, "listen");
  struct sockaddr_storage ss;
  int len = (int)sizeof ss;
  if (rc == 0 && getsockname(l->sock, (struct sockaddr *)&ss, &len) != 0)
    rc = wsa_error(WSAGetLastError(), 0, "listen: getsockname");
  if (rc == 0 && bound != NULL)
    rc = format_address((struct sockaddr *)&ss, bound, cap);
  if (rc == 0 && (l->ready = CreateEventW(NULL, TRUE, FALSE, NULL)) == NULL)
    rc = mpi__win_error("listen: CreateEventW");
  /* The socket turns non-blocking: accept() then never blocks. */
  if (rc == 0 && WSAEventSelect(l->sock, l->ready, FD_ACCEPT) != 0)
    rc = wsa_error(WSAGetLastError(), 0, "listen: WSAEventSelect");
  return rc;
}

static int tcp_accept(mpi_listener *l, double timeout, mpi_fd *out) {
  double deadline = timeout < 0 ? -1.0 : mpi_now() + timeout;
  for (;;) {
    if (WaitForSingleObject(l->stop, 0) == WAIT_OBJECT_0)
      return mp__error(MP_ECLOSED, "accept: the listener was shut down");
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    SOCKET s = accept(l->sock, (struct sockaddr *)&ss, &len);
    if (s != INVALID_SOCKET) {
      if (format_address((struct sockaddr *)&ss, l->peer, sizeof l->peer))
        l->peer[0] = '\0';
      return stream_socket(s, out);
    }
    int err = WSAGetLastError();
    if (err == WSAECONNRESET) /* the client left before we took it */
      continue;
    if (err != WSAEWOULDBLOCK)
      return wsa_error(err, 0, "accept");
    /* Look again at least every 50 ms: under Wine an FD_ACCEPT is now and
     * then never signalled while another thread uses a socket accepted
     * before (seen with the Manager's per-connection threads).  A missed
     * event then costs 50 ms, never a hang. */
    double until = mpi_now() + 0.05;
    int last = deadline >= 0 && deadline <= until;
    int w = wait_or_stop(l, l->ready, last ? deadline : until);
    if (w == MP_ETIMEDOUT && !last) {
      mp__clear_error();
      continue;
    }
    if (w < 0)
      return w;
    if (w == 1) {
      WSANETWORKEVENTS ne; /* resets the event */
      WSAEnumNetworkEvents(l->sock, l->ready, &ne);
    }
  }
}

/* ---- 5. Entry points -------------------------------------------------- */

int mpi_listen(int family, const char *address, int backlog,
               mpi_listener **out, char *bound, size_t cap) {
  if (out == NULL || (bound != NULL && cap == 0))
    return mp__error(MP_EINVAL, "listen: bad arguments");
  if (backlog < 1)
    backlog = 1;
  if (family != MPI_AF_LOCAL && family != MPI_AF_INET &&
      family != MPI_AF_INET6)
    return mp__error(MP_EINVAL, "listen: unknown address family %d", family);
  mpi_listener *l = calloc(1, sizeof *l);
  if (l == NULL)
    return mp__error(MP_ENOMEM, "out of memory");
  l->family = family;
  l->pipe = INVALID_HANDLE_VALUE;
  l->sock = INVALID_SOCKET;
  l->stop = CreateEventW(NULL, TRUE, FALSE, NULL);
  int rc = l->stop ? 0 : mpi__win_error("listen: CreateEventW");
  if (rc == 0)
    rc = family == MPI_AF_LOCAL
             ? pipe_listen(l, address, bound, cap)
             : tcp_listen(l, address, backlog, bound, cap);
  if (rc != 0) {
    mpi_listener_close(l);
    return rc;
  }
  *out = l;
  return 0;
}

int mpi_accept(mpi_listener *l, double timeout, mpi_fd *out) {
  if (l == NULL || out == NULL)
    return mp__error(MP_EINVAL, "accept: bad arguments");
  if (WaitForSingleObject(l->stop, 0) == WAIT_OBJECT_0)
    return mp__error(MP_ECLOSED, "accept: the listener was shut down");
  return l->family == MPI_AF_LOCAL ? pipe_accept(l, timeout, out)
                                   : tcp_accept(l, timeout, out);
}

void mpi_listener_peer(const mpi_listener *l, char *buf, size_t cap) {
  if (buf != NULL && cap > 0)
    mp__strlcpy(buf, l != NULL ? l->peer : "", cap);
}

void mpi_listener_shutdown(mpi_listener *l) {
  if (l != NULL)
    SetEvent(l->stop);
}

void mpi_listener_close(mpi_listener *l) {
  if (l == NULL)
    return;
  pipe_instance_close(l);
  if (l->sock != INVALID_SOCKET)
    closesocket(l->sock);
  if (l->ready != NULL)
    CloseHandle(l->ready);
  if (l->done != NULL)
    CloseHandle(l->done);
  if (l->stop != NULL)
    CloseHandle(l->stop);
  free(l->sd_mem);
  free(l->name);
  free(l);
}

/* ---- 6. Connecting ---------------------------------------------------- */

static int pipe_connect(const char *address, double timeout, mpi_fd *out) {
  wchar_t *name;
  int rc = pipe_name(address, &name);
  if (rc != 0)
    return rc;
  double deadline = timeout < 0 ? -1.0 : mpi_now() + timeout;
  for (;;) {
    /* SECURITY_IDENTIFICATION: the server may learn who we are but not
     * act as us. */
    HANDLE h = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL,
                           OPEN_EXISTING,
                           FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT |
                               SECURITY_IDENTIFICATION,
                           NULL);
    if (h != INVALID_HANDLE_VALUE) {
      *out = (mpi_fd)h;
      break;
    }
    DWORD err = GetLastError();
    if (err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND) {
      rc = mp__error(MP_ENOENT, "connect: nobody listens at %s", address);
      break;
    }
    if (err != ERROR_PIPE_BUSY) {
      rc = mpi__win_error_code(err, "connect: CreateFileW");
      break;
    }
    /* Every instance is taken: wait for the listener to make another. */
    double left = deadline < 0 ? -1.0 : deadline - mpi_now();
    if (deadline >= 0 && left <= 0) {
      rc = mp__error(MP_ETIMEDOUT, "connect: %s is busy", address);
      break;
    }
    DWORD ms = mpi__timeout_ms(left);
    if (ms == 0) /* 0 would mean the pipe's default wait */
      ms = 1;
    if (!WaitNamedPipeW(name, ms)) {
      err = GetLastError();
      if (err == ERROR_FILE_NOT_FOUND) {
        rc = mp__error(MP_ENOENT, "connect: nobody listens at %s", address);
        break;
      }
      if (err != ERROR_SEM_TIMEOUT && err != ERROR_PIPE_BUSY) {
        rc = mpi__win_error_code(err, "connect: WaitNamedPipeW");
        break;
      }
    }
  }
  free(name);
  return rc;
}

static int connect_error(int err) {
  switch (err) {
  case WSAECONNREFUSED:
  case WSAENETUNREACH:
  case WSAEHOSTUNREACH:
    return wsa_error(err, MP_ENOENT, "connect");
  case WSAETIMEDOUT:
    return wsa_error(err, MP_ETIMEDOUT, "connect");
  case WSAEADDRNOTAVAIL:
    return wsa_error(err, MP_EINVAL, "connect");
  default:
    return wsa_error(err, 0, "connect");
  }
}

/* Connect to one resolved address by the deadline: a non-blocking
 * connect, select for its end, then back to blocking. */
static int tcp_connect_one(const struct addrinfo *ai, double deadline,
                           mpi_fd *out) {
  SOCKET s;
  int rc = new_socket(ai->ai_family, &s);
  if (rc != 0)
    return rc;
  u_long on = 1;
  if (ioctlsocket(s, FIONBIO, &on) != 0)
    rc = wsa_error(WSAGetLastError(), 0, "connect: ioctlsocket");
  else if (connect(s, ai->ai_addr, (int)ai->ai_addrlen) != 0) {
    int err = WSAGetLastError();
    if (err != WSAEWOULDBLOCK)
      rc = connect_error(err);
    while (rc == 0) {
      fd_set wr, ex;
      struct timeval tv;
      FD_ZERO(&wr);
      FD_ZERO(&ex);
      FD_SET(s, &wr);
      FD_SET(s, &ex);
      int n = select(0, NULL, &wr, &ex, time_left(deadline, &tv));
      if (n == SOCKET_ERROR) {
        rc = wsa_error(WSAGetLastError(), 0, "connect: select");
        break;
      }
      if (n == 0) {
        if (deadline >= 0 && mpi_now() >= deadline)
          rc = mp__error(MP_ETIMEDOUT, "connect: timed out");
        continue;
      }
      int soerr = 0, len = (int)sizeof soerr;
      if (getsockopt(s, SOL_SOCKET, SO_ERROR, (char *)&soerr, &len) != 0)
        soerr = WSAGetLastError();
      if (soerr == 0 && !FD_ISSET(s, &wr))
        soerr = WSAECONNREFUSED;
      if (soerr != 0)
        rc = connect_error(soerr);
      break;
    }
  }
  if (rc != 0) {
    closesocket(s);
    return rc;
  }
  return stream_socket(s, out);
}

static int tcp_connect(int family, const char *address, double timeout,
                       mpi_fd *out) {
  struct addrinfo *ai = NULL;
  int rc = resolve(family, address, 0, &ai);
  if (rc != 0)
    return rc;
  double deadline = timeout < 0 ? -1.0 : mpi_now() + timeout;
  rc = mp__error(MP_ENOENT, "connect: %s has no address", address);
  /* Each address the name has, until one answers. */
  for (const struct addrinfo *p = ai; p != NULL; p = p->ai_next) {
    rc = tcp_connect_one(p, deadline, out);
    if (rc != MP_ENOENT)
      break;
  }
  freeaddrinfo(ai);
  return rc;
}

int mpi_connect(int family, const char *address, double timeout,
                mpi_fd *out) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "connect: bad arguments");
  if (family == MPI_AF_LOCAL)
    return pipe_connect(address, timeout, out);
  if (family == MPI_AF_INET || family == MPI_AF_INET6)
    return tcp_connect(family, address, timeout, out);
  return mp__error(MP_EINVAL, "connect: unknown address family %d", family);
}

/* ---- the sharer's names (handoff.c) ----------------------------------- */

int mpi_sharer_name(char *buf, size_t cap) {
  (void)cap;
  buf[0] = '\0'; /* mpi_listen's generated owner-only pipe */
  return 0;
}

int mpi_sharer_address(const char *a) {
  static const char prefix[] = PIPE_PREFIX "mproc-";
  return strncmp(a, prefix, sizeof prefix - 1) == 0;
}
