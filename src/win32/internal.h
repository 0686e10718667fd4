/*
 * win32/internal.h - what the Win32 backend's files share.
 *
 * Parts:
 *   1. the Windows headers, with the version this backend needs
 *   2. the spawn protocol: environment marker, frames, limits
 *   3. helpers from sys.c: errors, UTF-8 <-> UTF-16, pipe I/O, timeouts
 *   4. helpers from stream.c used by sys.c
 *   5. the object mutex (mutex.c), which thread.c's condition variables
 *      sleep on
 *   6. sockets as streams (listen.c)
 */
#ifndef MPROC_WIN32_INTERNAL_H
#define MPROC_WIN32_INTERNAL_H

/* ---- 1. Windows headers ---------------------------------------------- */

#ifndef WIN32_LEAN_AND_MEAN
#  define WIN32_LEAN_AND_MEAN
#endif
/* Windows 7: GetActiveProcessorCount, PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
 * InitOnceExecuteOnce, CompareStringOrdinal. */
#if !defined(_WIN32_WINNT) || _WIN32_WINNT < 0x0601
#  undef _WIN32_WINNT
#  define _WIN32_WINNT 0x0601
#endif

#include <windows.h>

/* Before mproc.h: MinGW defines __MINGW_PRINTF_FORMAT (used by MP_PRINTF)
 * only in its stdio.h. */
#include <stdio.h>

#include "../internal.h"

/* ---- 2. The spawn protocol ------------------------------------------- */

/* The environment entry a spawned child finds in mpi_boot_detect:
 * MPROC_SPAWN=<boot read handle>:<status write handle>:<parent pid>:
 * <parent process handle>, all decimal. */
#define MPI_ENV_SPAWN_W L"MPROC_SPAWN"

/* Status channel frames (child -> parent): u8 type | u32 LE length |
 * payload, as in the POSIX backend. */
enum { MPI_FRAME_ACK = 'A', MPI_FRAME_RECORD = 'R' };
#define MPI_FRAME_MAX 4096               /* one frame, header included */
#define MPI_STATUS_KEEP (64 * 1024)      /* what the parent keeps */
#define MPI_STATUS_PIPE_SIZE (64 * 1024) /* never blocks the child */
#define MPI_BOOT_MAX ((uint64_t)1 << 30)
#define MPI_BOOT_HANDLES_MAX 65536u /* handles passed to one child */

/* Our TerminateProcess exit codes (Python uses 0x10000 for terminate). */
#define MPI_TERMINATE_CODE 0x10000u
#define MPI_KILL_CODE 0x10009u

/* stream.c: a security descriptor whose DACL grants the current user
 * full access and nobody else anything (pipes, named segments and their
 * semaphores).  *mem holds what must stay alive while sd is used; free
 * it afterwards.  0 or MP_EOS. */
int mpi__user_only_sd(SECURITY_DESCRIPTOR *sd, void **mem);

/* ---- 3. Helpers (sys.c) ---------------------------------------------- */

/* Set the last error to "what: <system text> (error N)" for err (or
 * GetLastError()) and return the matching MP_E* code. */
int mpi__win_error_code(DWORD err, const char *what);
int mpi__win_error(const char *what);

/* UTF-8 -> malloc'd UTF-16 (NULL with the error set). */
wchar_t *mpi__to_wide(const char *s);
/* UTF-16 -> UTF-8 into buf: 0, MP_ERANGE or MP_EOS. */
int mpi__to_utf8(const wchar_t *w, char *buf, size_t cap);
/* The full path of module m (NULL: the executable), malloc'd. */
wchar_t *mpi__module_path(HMODULE m);

/* Whole reads and writes on pipes: 0, MP_EPIPE (reader gone), MP_EEOF
 * (writer gone before n bytes), MP_EOS. */
int mpi__write_all(HANDLE h, const void *p, size_t n);
int mpi__read_all(HANDLE h, void *p, size_t n);
/* One frame in one write (payload cut to fit MPI_FRAME_MAX). */
int mpi__frame_write(HANDLE h, int type, const void *p, size_t n);
void mpi__put_u32(unsigned char *p, uint32_t v);
uint32_t mpi__get_u32(const unsigned char *p);

/* Seconds (negative: forever) -> a Wait* timeout in ms, rounded up. */
DWORD mpi__timeout_ms(double seconds);

/* Wait for one handle: 0 when signalled, MP_ETIMEDOUT, MP_EOS. */
int mpi__wait_one(HANDLE h, double timeout);

/* ---- 4. Helpers (stream.c) ------------------------------------------- */

/* Pooled manual-reset events for overlapped I/O: take one per operation
 * (NULL with the error set), give it back once the operation is over. */
typedef struct event_node event_node;
event_node *mpi__event_take(void);
void mpi__event_give(event_node *e);
HANDLE mpi__event_handle(event_node *e);

/* The pipe buffers of streams and local listeners. */
#define MPI_PIPE_BUFSIZE (64 * 1024)

/* Stream readiness: 1 when a read would not block (data or end of
 * stream), 0, or an error code.  Pipes and sockets. */
int mpi__stream_ready(HANDLE h);

/* A zero-byte overlapped read on a stream: completes (setting the event)
 * when data arrives or the stream ends, consuming nothing. */
enum { MPI_ZR_PENDING = 0, MPI_ZR_DONE = 1, MPI_ZR_FAILED = 2 };
int mpi__zero_read_start(HANDLE h, OVERLAPPED *ov, HANDLE event);
void mpi__zero_read_end(HANDLE h, OVERLAPPED *ov, int state);

/* ---- 5. The object mutex (mutex.c) ----------------------------------- */

/* platform.h part 1's mpi_mutex: a slim reader/writer lock used
 * exclusively; thread.c's condition variables sleep on it. */
struct mpi_mutex {
  SRWLOCK lock;
};

/* ---- 6. Sockets as streams (listen.c) -------------------------------- */

/* mpi_accept and mpi_connect return TCP sockets as streams: overlapped,
 * blocking, not inheritable, so ReadFile and WriteFile work on them as
 * on the pipes.  What differs is handled with these. */

/* Start Winsock once per process: 0 or MP_EOS. */
int mpi__winsock_start(void);

/* 1 if h is a socket (a FILE_TYPE_PIPE handle that is not a named pipe
 * and that Winsock knows), else 0.  Changes GetLastError. */
int mpi__is_socket(HANDLE h);

/* 1 if Win32 or Winsock error err means the connection is gone (reset,
 * aborted, shut down): MP_EPIPE on write, MP_EEOF on read. */
int mpi__socket_gone(DWORD err);

/* Wait until socket h is readable (data, end of stream or an error) for
 * at most timeout seconds (negative: forever; 0: just look): 1, 0, or an
 * error code. */
int mpi__socket_wait(HANDLE h, double timeout);

/* mpi__zero_read_start for a socket (a zero-byte WSARecv); the same
 * states, ended with mpi__zero_read_end. */
int mpi__zero_recv_start(HANDLE h, OVERLAPPED *ov, HANDLE event);

#endif /* MPROC_WIN32_INTERNAL_H */
