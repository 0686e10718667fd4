/*
 * win32/stream.c - byte streams: overlapped named pipe pairs, and the
 * reads, writes and polls that also serve the TCP sockets listen.c makes.
 *
 * Parts:
 *   1. a pool of I/O events (no event made per call)
 *   2. the pair: a uniquely named pipe, readable by the current user only
 *   3. whole reads and writes, each with its own OVERLAPPED
 *   4. polling: PeekNamedPipe, and a zero-byte read to block on
 *
 * Every handle is opened with FILE_FLAG_OVERLAPPED, so that several
 * threads may read and write the same handle at once (each call waits
 * for its own operation only), and so that a zero-byte read can wait for
 * data without taking any (part 4, and mpi_wait in sys.c).
 *
 * Sockets from mpi_accept / mpi_connect are overlapped too: ReadFile and
 * WriteFile work on them alike.  They differ in how a stream ends (a
 * read of 0 bytes; reset errors) and in having no PeekNamedPipe, so
 * polling and closing ask listen.c's mpi__is_socket, on those paths only.
 */
#include "internal.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <winsock2.h>

#if defined(_MSC_VER)
#  pragma comment(lib, "advapi32.lib")
#  pragma comment(lib, "ws2_32.lib")
#endif

#ifndef PIPE_REJECT_REMOTE_CLIENTS
#  define PIPE_REJECT_REMOTE_CLIENTS 0x00000008
#endif

#define STREAM_BUFSIZE MPI_PIPE_BUFSIZE
#define STREAM_CHUNK (1024 * 1024) /* largest single WriteFile */
#define STREAM_READ_MAX 0x40000000u /* largest single ReadFile */

/* ---- 1. Event pool ---------------------------------------------------- */

/* Manual-reset events, taken and given back with interlocked list
 * operations: as cheap as a thread-local event, but nothing is lost when
 * threads end.  The pool grows to the peak number of operations in flight
 * at once and lives as long as the process. */
#if defined(_MSC_VER)
#  pragma warning(push)
#  pragma warning(disable : 4324) /* padded for SLIST_ENTRY's alignment */
#endif
typedef struct event_node {
  SLIST_ENTRY link; /* first: the node is the entry */
  HANDLE event;
} event_node;
#if defined(_MSC_VER)
#  pragma warning(pop)
#endif

static SLIST_HEADER event_pool;
static INIT_ONCE event_pool_once = INIT_ONCE_STATIC_INIT;

static BOOL CALLBACK event_pool_init(PINIT_ONCE once, PVOID arg, PVOID *ctx) {
  (void)once;
  (void)arg;
  (void)ctx;
  InitializeSListHead(&event_pool);
  return TRUE;
}

/* A node holding a manual-reset event (maybe still signalled from its
 * last use: every operation that takes it resets it as it starts), or
 * NULL with the error set. */
event_node *mpi__event_take(void) {
  InitOnceExecuteOnce(&event_pool_once, event_pool_init, NULL, NULL);
  event_node *e = (event_node *)InterlockedPopEntrySList(&event_pool);
  if (e != NULL)
    return e; /* ReadFile, WriteFile, ConnectNamedPipe reset it */
  e = _aligned_malloc(sizeof *e, MEMORY_ALLOCATION_ALIGNMENT);
  if (e == NULL) {
    mp__error(MP_ENOMEM, "out of memory");
    return NULL;
  }
  e->event = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (e->event == NULL) {
    mpi__win_error("CreateEventW");
    _aligned_free(e);
    return NULL;
  }
  return e;
}

/* Only once no operation uses the event any more. */
void mpi__event_give(event_node *e) {
  if (e != NULL)
    InterlockedPushEntrySList(&event_pool, &e->link);
}

HANDLE mpi__event_handle(event_node *e) { return e->event; }

/* ---- 2. The pair ------------------------------------------------------ */

/* A security descriptor whose DACL grants the current user (the token's
 * user) full access and nobody else anything.  *mem holds what must stay
 * alive while sd is used; free it afterwards.  0 or MP_EOS. */
int mpi__user_only_sd(SECURITY_DESCRIPTOR *sd, void **mem) {
  HANDLE token = NULL;
  unsigned char *buf = NULL;
  DWORD need = 0;
  int rc = 0;
  *mem = NULL;
  if (!OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, TRUE, &token) &&
      !OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token))
    return mpi__win_error("OpenProcessToken");
  GetTokenInformation(token, TokenUser, NULL, 0, &need);
  if (need == 0 || (buf = malloc(need)) == NULL)
    rc = need == 0 ? mpi__win_error("GetTokenInformation")
                   : mp__error(MP_ENOMEM, "out of memory");
  else if (!GetTokenInformation(token, TokenUser, buf, need, &need))
    rc = mpi__win_error("GetTokenInformation");
  CloseHandle(token);
  if (rc != 0) {
    free(buf);
    return rc;
  }
  /* The token data holds the SID and a pointer to it: copy the SID into
   * a block of our own (a pointer into a block that realloc moved would
   * dangle), then the ACL after it, DWORD aligned. */
  PSID token_sid = ((TOKEN_USER *)(void *)buf)->User.Sid;
  DWORD sid_size = GetLengthSid(token_sid);
  DWORD acl_size = (DWORD)(sizeof(ACL) + sizeof(ACCESS_ALLOWED_ACE) -
                           sizeof(DWORD) + sid_size);
  size_t off = ((size_t)sid_size + 7u) & ~(size_t)7u;
  unsigned char *all = malloc(off + acl_size);
  if (all == NULL) {
    free(buf);
    return mp__error(MP_ENOMEM, "out of memory");
  }
  PSID sid = (PSID)all;
  BOOL copied = CopySid(sid_size, sid, token_sid);
  free(buf);
  ACL *acl = (ACL *)(void *)(all + off);
  if (!copied || !InitializeAcl(acl, acl_size, ACL_REVISION) ||
      !AddAccessAllowedAce(acl, ACL_REVISION, GENERIC_ALL, sid) ||
      !InitializeSecurityDescriptor(sd, SECURITY_DESCRIPTOR_REVISION) ||
      !SetSecurityDescriptorDacl(sd, TRUE, acl, FALSE)) {
    rc = mpi__win_error("cannot build an owner-only security descriptor");
    free(all);
    return rc;
  }
  *mem = all;
  return 0;
}

/* Wait for an overlapped operation started on h: its byte count, or the
 * error of the operation (GetLastError). */
static BOOL finish(HANDLE h, OVERLAPPED *ov, BOOL started, DWORD *done) {
  *done = 0;
  if (!started && GetLastError() != ERROR_IO_PENDING)
    return FALSE;
  return GetOverlappedResult(h, ov, done, TRUE);
}

int mpi_stream_pair(int duplex, mpi_fd *a, mpi_fd *b) {
  static volatile LONG counter;
  unsigned char rnd[8];
  int rc = mpi_random(rnd, sizeof rnd);
  if (rc != 0)
    return rc;
  wchar_t name[96];
  swprintf(name, sizeof name / sizeof name[0],
           L"\\\\.\\pipe\\mproc-%lu-%ld-%02x%02x%02x%02x%02x%02x%02x%02x",
           (unsigned long)GetCurrentProcessId(),
           (long)InterlockedIncrement(&counter), rnd[0], rnd[1], rnd[2],
           rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);

  SECURITY_DESCRIPTOR sd;
  void *sd_mem = NULL;
  rc = mpi__user_only_sd(&sd, &sd_mem);
  if (rc != 0)
    return rc;
  SECURITY_ATTRIBUTES sa;
  sa.nLength = sizeof sa;
  sa.lpSecurityDescriptor = &sd;
  sa.bInheritHandle = FALSE;

  DWORD open_mode = (duplex ? PIPE_ACCESS_DUPLEX : PIPE_ACCESS_INBOUND) |
                    FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE;
  DWORD pipe_mode = PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
                    PIPE_REJECT_REMOTE_CLIENTS;
  HANDLE server = CreateNamedPipeW(name, open_mode, pipe_mode, 1,
                                   STREAM_BUFSIZE, STREAM_BUFSIZE, 0, &sa);
  if (server == INVALID_HANDLE_VALUE) {
    rc = mpi__win_error("stream: CreateNamedPipeW");
    free(sd_mem);
    return rc;
  }
  DWORD access = GENERIC_WRITE | (duplex ? GENERIC_READ : 0);
  HANDLE client = CreateFileW(name, access, 0, &sa, OPEN_EXISTING,
                              FILE_FLAG_OVERLAPPED, NULL);
  free(sd_mem);
  if (client == INVALID_HANDLE_VALUE) {
    rc = mpi__win_error("stream: CreateFileW on the pipe");
    CloseHandle(server);
    return rc;
  }
  event_node *e = mpi__event_take();
  if (e == NULL) {
    CloseHandle(client);
    CloseHandle(server);
    return MP_EOS;
  }
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  ov.hEvent = e->event;
  DWORD dummy;
  BOOL ok = ConnectNamedPipe(server, &ov);
  if (!ok && GetLastError() == ERROR_PIPE_CONNECTED)
    ok = TRUE;
  else
    ok = finish(server, &ov, ok, &dummy);
  if (!ok) {
    rc = mpi__win_error("stream: ConnectNamedPipe");
    CancelIoEx(server, &ov);
    GetOverlappedResult(server, &ov, &dummy, TRUE);
  }
  mpi__event_give(e);
  if (rc != 0) {
    CloseHandle(client);
    CloseHandle(server);
    return rc;
  }
  *a = (mpi_fd)server;
  *b = (mpi_fd)client;
  return 0;
}

/* ---- 3. Reads and writes ---------------------------------------------- */

int mpi_stream_write(mpi_fd fd, const void *p, size_t n) {
  HANDLE h = (HANDLE)fd;
  const char *c = p;
  if (n == 0)
    return 0;
  event_node *e = mpi__event_take();
  if (e == NULL)
    return MP_EOS;
  int rc = 0;
  while (n > 0) {
    DWORD chunk = n > STREAM_CHUNK ? STREAM_CHUNK : (DWORD)n, done = 0;
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = e->event;
    if (!finish(h, &ov, WriteFile(h, c, chunk, NULL, &ov), &done)) {
      DWORD err = GetLastError();
      rc = err == ERROR_NO_DATA || err == ERROR_BROKEN_PIPE ||
                   err == ERROR_PIPE_NOT_CONNECTED || mpi__socket_gone(err)
               ? mp__error(MP_EPIPE, "write: broken pipe (no reader)")
               : mpi__win_error_code(err, "write to stream");
      break;
    }
    c += done;
    n -= done;
  }
  mpi__event_give(e);
  return rc;
}

/* Read until at least `min` bytes (and at most n) have arrived: a
 * byte-mode pipe read completes with what is there. */
static int read_min(mpi_fd fd, void *p, size_t n, size_t min, size_t *got) {
  HANDLE h = (HANDLE)fd;
  char *c = p;
  size_t total = 0;
  int rc = 0;
  event_node *e = n > 0 ? mpi__event_take() : NULL;
  if (n > 0 && e == NULL)
    rc = MP_EOS;
  while (rc == 0 && total < min) {
    size_t left = n - total;
    DWORD chunk = left > STREAM_READ_MAX ? STREAM_READ_MAX : (DWORD)left;
    DWORD done = 0;
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = e->event;
    if (!finish(h, &ov, ReadFile(h, c + total, chunk, NULL, &ov), &done)) {
      DWORD err = GetLastError();
      rc = err == ERROR_BROKEN_PIPE || err == ERROR_PIPE_NOT_CONNECTED ||
                   err == ERROR_NO_DATA || mpi__socket_gone(err)
               ? mp__error(MP_EEOF, "read: end of stream after %llu of "
                                    "%llu bytes",
                           (unsigned long long)total, (unsigned long long)n)
               : mpi__win_error_code(err, "read from stream");
      break;
    }
    total += done;
    /* done == 0 on a byte-mode pipe: a zero-length write; read on.  On
     * a socket: the end of the stream. */
    if (done == 0 && chunk > 0 && mpi__is_socket(h)) {
      rc = mp__error(MP_EEOF, "read: end of stream after %llu of %llu "
                              "bytes",
                     (unsigned long long)total, (unsigned long long)n);
      break;
    }
  }
  mpi__event_give(e);
  if (got != NULL)
    *got = total;
  return rc;
}

int mpi_stream_read(mpi_fd fd, void *p, size_t n, size_t *got) {
  return read_min(fd, p, n, n, got);
}

int mpi_stream_recv(mpi_fd fd, void *p, size_t n, size_t *got) {
  return read_min(fd, p, n, n ? 1 : 0, got);
}

/* ---- 4. Polling -------------------------------------------------------- */

/* 1 if a read on h would not block (bytes waiting, or the writer gone),
 * 0 if not, or an error code.  A socket has no PeekNamedPipe: select. */
int mpi__stream_ready(HANDLE h) {
  DWORD avail = 0;
  if (PeekNamedPipe(h, NULL, 0, NULL, &avail, NULL))
    return avail > 0;
  DWORD err = GetLastError();
  if (mpi__is_socket(h))
    return mpi__socket_wait(h, 0);
  if (err == ERROR_BROKEN_PIPE || err == ERROR_PIPE_NOT_CONNECTED ||
      err == ERROR_NO_DATA)
    return 1;
  return mpi__win_error_code(err, "stream: PeekNamedPipe");
}

/* Start a zero-byte read on h, which completes once data arrives (taking
 * none) or the stream ends.  Returns MPI_ZR_PENDING (in flight), MPI_ZR_DONE
 * (finished at once: the event is set), MPI_ZR_FAILED (the read failed at
 * once, as on a closed stream: we set the event, so that a wait on it
 * returns and the peek that follows decides), or an error code.  Every
 * state >= 0 must be ended with mpi__zero_read_end. */
int mpi__zero_read_start(HANDLE h, OVERLAPPED *ov, HANDLE event) {
  static char none[1];
  memset(ov, 0, sizeof *ov);
  ov->hEvent = event;
  if (ReadFile(h, none, 0, NULL, ov))
    return MPI_ZR_DONE;
  DWORD err = GetLastError();
  if (err == ERROR_IO_PENDING)
    return MPI_ZR_PENDING;
  if (err == ERROR_BROKEN_PIPE || err == ERROR_PIPE_NOT_CONNECTED ||
      err == ERROR_NO_DATA || err == ERROR_MORE_DATA) {
    SetEvent(event);
    return MPI_ZR_FAILED;
  }
  return mpi__win_error_code(err, "stream: zero-byte read");
}

/* Cancel the zero-byte read if it is still in flight and wait until it
 * is over: its OVERLAPPED and event are then free (and the event not
 * left set by us). */
void mpi__zero_read_end(HANDLE h, OVERLAPPED *ov, int state) {
  DWORD dummy;
  if (state == MPI_ZR_PENDING) {
    if (!HasOverlappedIoCompleted(ov))
      CancelIoEx(h, ov);
    GetOverlappedResult(h, ov, &dummy, TRUE);
  } else if (state == MPI_ZR_FAILED) {
    ResetEvent(ov->hEvent);
  }
}

int mpi_stream_recv_ready(mpi_fd fd, void *p, size_t n, size_t *got) {
  *got = 0;
  int rc = mpi__stream_ready((HANDLE)fd);
  if (rc <= 0)
    return rc; /* nothing yet, or an error */
  return read_min(fd, p, n, n ? 1 : 0, got);
}

int mpi_stream_poll(mpi_fd fd, double timeout) {
  HANDLE h = (HANDLE)fd;
  int rc = mpi__stream_ready(h);
  if (rc != 0 || timeout == 0)
    return rc;
  if (mpi__is_socket(h))
    return mpi__socket_wait(h, timeout);
  event_node *e = mpi__event_take();
  if (e == NULL)
    return MP_EOS;
  double deadline = timeout < 0 ? -1.0 : mpi_now() + timeout;
  for (;;) {
    OVERLAPPED ov;
    int state = mpi__zero_read_start(h, &ov, e->event);
    if (state < 0) {
      rc = state;
      break;
    }
    if (state == MPI_ZR_PENDING) {
      double left = deadline < 0 ? -1.0 : deadline - mpi_now();
      if (deadline >= 0 && left < 0)
        left = 0;
      if (WaitForSingleObject(e->event, mpi__timeout_ms(left)) ==
          WAIT_FAILED)
        rc = mpi__win_error("stream: WaitForSingleObject");
    }
    mpi__zero_read_end(h, &ov, state);
    if (rc != 0)
      break;
    rc = mpi__stream_ready(h);
    /* Not ready after a completed zero-byte read (a zero-length write):
     * wait again for what is left of the time. */
    if (rc != 0 || (deadline >= 0 && mpi_now() >= deadline))
      break;
  }
  mpi__event_give(e);
  return rc;
}

/* Any handle (args.c closes what it holds with this); a socket must go
 * through closesocket for Winsock to release it. */
void mpi_stream_close(mpi_fd fd) {
  if (fd == MPI_BAD_FD || fd == 0)
    return;
  if (mpi__is_socket((HANDLE)fd))
    closesocket((SOCKET)fd);
  else
    CloseHandle((HANDLE)fd);
}

/* ---- 5. Handles to another process (handoff.c) ------------------------- */

int mpi_handle_dup(mpi_fd h, mpi_fd *out) {
  HANDLE self = GetCurrentProcess(), d = NULL;
  *out = MPI_BAD_FD;
  if (h == MPI_BAD_FD || h == 0 ||
      !DuplicateHandle(self, (HANDLE)h, self, &d, 0, FALSE,
                       DUPLICATE_SAME_ACCESS))
    return GetLastError() == ERROR_INVALID_HANDLE || h == MPI_BAD_FD ||
                   h == 0
               ? mp__error(MP_ECLOSED, "handle %lld is not open",
                           (long long)h)
               : mpi__win_error("DuplicateHandle");
  *out = (mpi_fd)d;
  return 0;
}

/* Close handles we put into `process` (values valid there only). */
static void close_remote(HANDLE process, const uint64_t *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    DuplicateHandle(process, (HANDLE)(uintptr_t)v[i], NULL, NULL, 0, FALSE,
                    DUPLICATE_CLOSE_SOURCE);
}

int mpi_handles_send(mpi_fd stream, const mpi_fd *h, size_t n,
                     int64_t peer_pid) {
  if (n == 0)
    return 0;
  if (peer_pid <= 0 || peer_pid > (int64_t)UINT32_MAX)
    return mp__error(MP_EINVAL, "no such process %lld",
                     (long long)peer_pid);
  HANDLE process = OpenProcess(PROCESS_DUP_HANDLE, FALSE, (DWORD)peer_pid);
  if (process == NULL)
    return mpi__win_error("OpenProcess(PROCESS_DUP_HANDLE)");
  uint64_t *v = calloc(n, sizeof *v);
  unsigned char *bytes = malloc(n * 8);
  int rc = v && bytes ? 0 : mp__error(MP_ENOMEM, "out of memory");
  size_t done = 0;
  for (; rc == 0 && done < n; done++) {
    HANDLE there = NULL;
    if (!DuplicateHandle(GetCurrentProcess(), (HANDLE)h[done], process,
                         &there, 0, FALSE, DUPLICATE_SAME_ACCESS)) {
      rc = mpi__win_error("DuplicateHandle into the receiver");
      break;
    }
    v[done] = (uint64_t)(uintptr_t)there;
    for (int b = 0; b < 8; b++)
      bytes[done * 8 + (size_t)b] = (unsigned char)(v[done] >> (8 * b));
  }
  if (rc == 0)
    rc = mpi_stream_write(stream, bytes, n * 8);
  if (rc != 0 && v != NULL)
    close_remote(process, v, done);
  CloseHandle(process);
  free(bytes);
  free(v);
  return rc;
}

int mpi_handles_recv(mpi_fd stream, mpi_fd *out, size_t n, double timeout) {
  if (n == 0)
    return 0;
  unsigned char *bytes = malloc(n * 8);
  if (bytes == NULL)
    return mp__error(MP_ENOMEM, "out of memory");
  double deadline = timeout < 0 ? -1.0 : mpi_now() + timeout;
  size_t have = 0;
  int rc = 0;
  while (rc == 0 && have < n * 8) {
    double left = deadline < 0 ? -1.0 : deadline - mpi_now();
    if (deadline >= 0 && left < 0)
      left = 0;
    int r = mpi_stream_poll(stream, left);
    if (r < 0) {
      rc = r;
      break;
    }
    if (r == 0) {
      rc = mp__error(MP_ETIMEDOUT, "handles did not come in time");
      break;
    }
    size_t got = 0;
    rc = mpi_stream_recv_ready(stream, bytes + have, n * 8 - have, &got);
    have += got;
  }
  size_t valid = 0; /* out[0 .. valid) are open handles of ours */
  for (size_t i = 0; rc == 0 && i < n; i++) {
    uint64_t v = 0;
    for (int b = 0; b < 8; b++)
      v |= (uint64_t)bytes[i * 8 + (size_t)b] << (8 * b);
    DWORD flags;
    out[i] = (mpi_fd)(uintptr_t)v;
    if (v == 0 || !GetHandleInformation((HANDLE)(uintptr_t)v, &flags))
      rc = mp__error(MP_EPROTO, "the sender gave a handle that is not open");
    else
      valid++;
  }
  if (rc != 0)
    for (size_t i = 0; i < valid; i++)
      mpi_stream_close(out[i]);
  free(bytes);
  return rc;
}
