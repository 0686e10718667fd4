/*
 * win32/sys.c - the Win32 backend's basics.
 *
 * Parts:
 *   1. the library lock (a CRITICAL_SECTION made once)
 *   2. errors, UTF-8 <-> UTF-16 and pipe I/O helpers
 *   3. time, randomness, ids, CPU counts, the executable, signal names
 *   4. function references as (module path, offset from the image base)
 *   5. waiting on any number of handles
 *   6. start methods (spawn only)
 */
#include "internal.h"

#include <bcrypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tlhelp32.h>

#if defined(_MSC_VER)
#  pragma comment(lib, "bcrypt.lib")
#endif

#ifndef BCRYPT_USE_SYSTEM_PREFERRED_RNG
#  define BCRYPT_USE_SYSTEM_PREFERRED_RNG 0x00000002
#endif

void mpi_yield(void) { SwitchToThread(); }

/* ---- 1. The library lock --------------------------------------------- */

static CRITICAL_SECTION big_lock;
static INIT_ONCE big_lock_once = INIT_ONCE_STATIC_INIT;

static BOOL CALLBACK big_lock_init(PINIT_ONCE once, PVOID arg, PVOID *ctx) {
  (void)once;
  (void)arg;
  (void)ctx;
  InitializeCriticalSection(&big_lock);
  return TRUE;
}

void mpi_lock(void) {
  InitOnceExecuteOnce(&big_lock_once, big_lock_init, NULL, NULL);
  EnterCriticalSection(&big_lock);
}

void mpi_unlock(void) { LeaveCriticalSection(&big_lock); }

/* ---- 2. Errors, strings and pipe I/O --------------------------------- */

static int code_for(DWORD err) {
  switch (err) {
  case ERROR_NOT_ENOUGH_MEMORY:
  case ERROR_OUTOFMEMORY:
    return MP_ENOMEM;
  case ERROR_ACCESS_DENIED:
    return MP_EPERM;
  case ERROR_FILE_NOT_FOUND:
  case ERROR_PATH_NOT_FOUND:
  case ERROR_MOD_NOT_FOUND:
    return MP_ENOENT;
  case ERROR_BROKEN_PIPE:
  case ERROR_NO_DATA:
    return MP_EPIPE;
  case ERROR_INVALID_HANDLE:
    return MP_EINVAL;
  default:
    return MP_EOS;
  }
}

/* The system's text for err in UTF-8, without the trailing ".\r\n". */
static void system_text(DWORD err, char *buf, size_t cap) {
  wchar_t w[512];
  DWORD n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM |
                               FORMAT_MESSAGE_IGNORE_INSERTS,
                           NULL, err, 0, w, 512, NULL);
  while (n > 0 && (w[n - 1] == L'\r' || w[n - 1] == L'\n' ||
                   w[n - 1] == L' ' || w[n - 1] == L'.'))
    n--;
  w[n] = L'\0';
  if (n == 0 || mpi__to_utf8(w, buf, cap) != 0)
    snprintf(buf, cap, "system error");
}

int mpi__win_error_code(DWORD err, const char *what) {
  char text[512];
  system_text(err, text, sizeof text);
  return mp__error(code_for(err), "%s: %s (error %lu)", what, text,
                   (unsigned long)err);
}

int mpi__win_error(const char *what) {
  return mpi__win_error_code(GetLastError(), what);
}

wchar_t *mpi__to_wide(const char *s) {
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
  if (n <= 0) {
    mpi__win_error("not valid UTF-8");
    return NULL;
  }
  wchar_t *w = malloc((size_t)n * sizeof *w);
  if (w == NULL) {
    mp__error(MP_ENOMEM, "out of memory");
    return NULL;
  }
  MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n);
  return w;
}

int mpi__to_utf8(const wchar_t *w, char *buf, size_t cap) {
  int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, NULL, 0, NULL, NULL);
  if (n <= 0)
    return mpi__win_error("cannot convert to UTF-8");
  if ((size_t)n > cap)
    return mp__error(MP_ERANGE, "path too long (%d bytes)", n);
  WideCharToMultiByte(CP_UTF8, 0, w, -1, buf, n, NULL, NULL);
  return 0;
}

wchar_t *mpi__module_path(HMODULE m) {
  DWORD cap = MAX_PATH;
  for (;;) {
    wchar_t *w = malloc(cap * sizeof *w);
    if (w == NULL) {
      mp__error(MP_ENOMEM, "out of memory");
      return NULL;
    }
    DWORD n = GetModuleFileNameW(m, w, cap);
    if (n == 0) {
      mpi__win_error("GetModuleFileNameW");
      free(w);
      return NULL;
    }
    if (n < cap - 1)
      return w;
    free(w);
    if (cap >= 32768) {
      mp__error(MP_ERANGE, "module path too long");
      return NULL;
    }
    cap *= 2;
  }
}

int mpi__write_all(HANDLE h, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    DWORD chunk = n > 0x40000000u ? 0x40000000u : (DWORD)n, done = 0;
    if (!WriteFile(h, c, chunk, &done, NULL))
      return mpi__win_error("write to pipe");
    c += done;
    n -= done;
  }
  return 0;
}

int mpi__read_all(HANDLE h, void *p, size_t n) {
  char *c = p;
  while (n > 0) {
    DWORD chunk = n > 0x40000000u ? 0x40000000u : (DWORD)n, done = 0;
    if (!ReadFile(h, c, chunk, &done, NULL)) {
      if (GetLastError() == ERROR_BROKEN_PIPE)
        return mp__error(MP_EEOF, "read: unexpected end of file");
      return mpi__win_error("read from pipe");
    }
    if (done == 0)
      return mp__error(MP_EEOF, "read: unexpected end of file");
    c += done;
    n -= done;
  }
  return 0;
}

void mpi__put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

uint32_t mpi__get_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

int mpi__frame_write(HANDLE h, int type, const void *p, size_t n) {
  unsigned char buf[MPI_FRAME_MAX];
  if (n > sizeof buf - 5)
    n = sizeof buf - 5;
  buf[0] = (unsigned char)type;
  mpi__put_u32(buf + 1, (uint32_t)n);
  if (n)
    memcpy(buf + 5, p, n);
  return mpi__write_all(h, buf, n + 5);
}

DWORD mpi__timeout_ms(double seconds) {
  if (seconds < 0)
    return INFINITE;
  double ms = seconds * 1000.0;
  if (ms >= (double)(INFINITE - 1))
    return INFINITE - 1;
  DWORD r = (DWORD)ms;
  return (double)r < ms ? r + 1 : r;
}

int mpi__wait_one(HANDLE h, double timeout) {
  double deadline = timeout < 0 ? -1.0 : mpi_now() + timeout;
  for (;;) {
    double left = deadline < 0 ? -1.0 : deadline - mpi_now();
    if (deadline >= 0 && left < 0)
      left = 0;
    DWORD r = WaitForSingleObject(h, mpi__timeout_ms(left));
    if (r == WAIT_OBJECT_0 || r == WAIT_ABANDONED)
      return 0;
    if (r == WAIT_FAILED)
      return mpi__win_error("WaitForSingleObject");
    if (deadline >= 0 && mpi_now() >= deadline)
      return mp__error(MP_ETIMEDOUT, "wait timed out");
  }
}

/* ---- 3. Time, randomness, ids ---------------------------------------- */

double mpi_now(void) {
  static LARGE_INTEGER freq; /* constant after boot: a benign race */
  LARGE_INTEGER now;
  if (freq.QuadPart == 0)
    QueryPerformanceFrequency(&freq);
  QueryPerformanceCounter(&now);
  long long f = freq.QuadPart, c = now.QuadPart;
  return (double)(c / f) + (double)(c % f) / (double)f;
}

int mpi_random(void *buf, size_t n) {
  unsigned char *p = buf;
  while (n > 0) {
    ULONG chunk = n > 0x10000000u ? 0x10000000u : (ULONG)n;
    NTSTATUS st = BCryptGenRandom(NULL, p, chunk,
                                  BCRYPT_USE_SYSTEM_PREFERRED_RNG);
    if (st < 0)
      return mp__error(MP_EOS, "BCryptGenRandom failed (status 0x%08lx)",
                       (unsigned long)st);
    p += chunk;
    n -= chunk;
  }
  return 0;
}

int64_t mpi_getpid(void) { return (int64_t)GetCurrentProcessId(); }

/* Windows never re-parents: this is the pid of the process that created
 * us, even after it has ended (as Python's os.getppid). */
int64_t mpi_getppid(void) {
  HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
  if (snap == INVALID_HANDLE_VALUE)
    return 0;
  DWORD me = GetCurrentProcessId();
  int64_t ppid = 0;
  PROCESSENTRY32W e;
  e.dwSize = sizeof e;
  for (BOOL ok = Process32FirstW(snap, &e); ok; ok = Process32NextW(snap, &e))
    if (e.th32ProcessID == me) {
      ppid = (int64_t)e.th32ParentProcessID;
      break;
    }
  CloseHandle(snap);
  return ppid;
}

int mpi_cpu_count(void) {
  DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
  if (n == 0) {
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    n = si.dwNumberOfProcessors;
  }
  return n > 0 ? (int)n : 1;
}

static int popcount(ULONG_PTR m) {
  int n = 0;
  for (; m != 0; m &= m - 1)
    n++;
  return n;
}

/* The affinity mask covers one processor group: a process spread over
 * several groups may use every CPU of the machine. */
typedef BOOL(WINAPI *group_affinity_fn)(HANDLE, PUSHORT, PUSHORT);

int mpi_process_cpu_count(void) {
  USHORT groups[4];
  USHORT n_groups = 4;
  /* Looked up: kernel32 has it (Windows 7 on), not every SDK's headers
   * declare it (Wine's). */
  group_affinity_fn group_affinity = (group_affinity_fn)(void (*)(void))
      GetProcAddress(GetModuleHandleW(L"kernel32.dll"),
                     "GetProcessGroupAffinity");
  if (group_affinity == NULL ||
      !group_affinity(GetCurrentProcess(), &n_groups, groups) ||
      n_groups > 1)
    return mpi_cpu_count();
  DWORD_PTR mine = 0, sys = 0;
  if (!GetProcessAffinityMask(GetCurrentProcess(), &mine, &sys))
    return mpi_cpu_count();
  int n = popcount(mine);
  return n > 0 ? n : 1;
}

int mpi_exe_path(char *buf, size_t cap) {
  wchar_t *w = mpi__module_path(NULL);
  if (w == NULL)
    return MP_EOS;
  int rc = mpi__to_utf8(w, buf, cap);
  free(w);
  return rc;
}

/* The POSIX numbers; child.c maps Windows crash codes onto them. */
const char *mpi_signal_name(int sig) {
  switch (sig) {
  case 2: return "SIGINT";
  case 4: return "SIGILL";
  case 5: return "SIGTRAP";
  case 6: return "SIGABRT";
  case 8: return "SIGFPE";
  case 9: return "SIGKILL";
  case 11: return "SIGSEGV";
  case 15: return "SIGTERM";
  default: return "signal";
  }
}

/* ---- 4. Function references ------------------------------------------ */

int mpi_fn_encode(void (*fn)(void), char *module, size_t cap,
                  uint64_t *offset) {
  HMODULE m = NULL;
  uintptr_t addr = (uintptr_t)fn;
  if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS |
                              GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                          (LPCWSTR)addr, &m))
    return mp__error(MP_EINVAL, "function %p is in no loaded module",
                     (void *)addr);
  *offset = (uint64_t)(addr - (uintptr_t)m);
  if (m == GetModuleHandleW(NULL)) {
    if (cap < 1)
      return mp__error(MP_ERANGE, "module buffer too small");
    module[0] = '\0';
    return 0;
  }
  wchar_t *w = mpi__module_path(m);
  if (w == NULL)
    return MP_EOS;
  int rc = mpi__to_utf8(w, module, cap);
  free(w);
  return rc;
}

/* SizeOfImage from the module's PE header. */
static uint64_t image_size(HMODULE m) {
  const unsigned char *base = (const unsigned char *)m;
  const IMAGE_DOS_HEADER *dos = (const IMAGE_DOS_HEADER *)base;
  if (dos->e_magic != IMAGE_DOS_SIGNATURE)
    return 0;
  const IMAGE_NT_HEADERS *nt =
      (const IMAGE_NT_HEADERS *)(base + dos->e_lfanew);
  if (nt->Signature != IMAGE_NT_SIGNATURE)
    return 0;
  return nt->OptionalHeader.SizeOfImage;
}

static HMODULE find_module(const char *module) {
  if (module[0] == '\0')
    return GetModuleHandleW(NULL);
  wchar_t *w = mpi__to_wide(module);
  if (w == NULL)
    return NULL;
  HMODULE m = GetModuleHandleW(w);
  if (m == NULL) /* a full path: its own directory serves its imports */
    m = LoadLibraryExW(w, NULL, LOAD_WITH_ALTERED_SEARCH_PATH);
  if (m == NULL)
    mpi__win_error("LoadLibraryExW");
  free(w);
  return m;
}

int mpi_fn_decode(const char *module, uint64_t offset, void (**fn)(void)) {
  HMODULE m = find_module(module);
  if (m == NULL)
    return mp__error(MP_ENOENT, "module '%s' cannot be loaded: %s",
                     module[0] ? module : "(main program)",
                     mp_last_error_message());
  if (offset >= image_size(m))
    return mp__error(MP_EINVAL, "offset %llu is outside module '%s'",
                     (unsigned long long)offset,
                     module[0] ? module : "(main program)");
  *fn = (void (*)(void))((uintptr_t)m + (uintptr_t)offset);
  return 0;
}

/* ---- 5. Waiting -------------------------------------------------------- */

/* Python's _exhaustive_wait on up to 64 handles: the first wait blocks up
 * to ms, then the handles after each ready one are polled.  A ready
 * auto-reset event, semaphore or mutex is acquired, as in Python. */
static int wait_group(const HANDLE *h, DWORD n, DWORD ms, int *ready) {
  DWORD start = 0;
  int count = 0;
  while (start < n) {
    DWORD r = WaitForMultipleObjects(n - start, h + start, FALSE, ms);
    if (r == WAIT_TIMEOUT)
      break;
    if (r == WAIT_FAILED)
      return mpi__win_error("WaitForMultipleObjects");
    DWORD i = r - WAIT_OBJECT_0;
    if (r >= WAIT_ABANDONED_0 && r < WAIT_ABANDONED_0 + n - start)
      i = r - WAIT_ABANDONED_0; /* a mutex whose owner died */
    ready[start + i] = 1;
    count++;
    start += i + 1;
    ms = 0;
  }
  return count;
}

/* Poll every handle without blocking, counting those already marked
 * ready. */
static int poll_all(const HANDLE *h, size_t n, int *ready) {
  int count = 0;
  for (size_t i = 0; i < n; i++) {
    if (ready[i]) {
      count++;
      continue;
    }
    DWORD r = WaitForSingleObject(h[i], 0);
    if (r == WAIT_FAILED)
      return mpi__win_error("WaitForSingleObject");
    if (r != WAIT_TIMEOUT) {
      ready[i] = 1;
      count++;
    }
  }
  return count;
}

typedef struct wait_slot {
  HANDLE event; /* shared: set by the first callback */
  volatile LONG fired;
} wait_slot;

static VOID CALLBACK on_ready(PVOID arg, BOOLEAN timed_out) {
  wait_slot *s = arg;
  if (timed_out)
    return;
  InterlockedExchange(&s->fired, 1);
  SetEvent(s->event);
}

/* More than 64 handles: one thread-pool wait per handle, all setting one
 * event.  After the wait ends every registration is removed (waiting for
 * running callbacks); those that fired consumed their signal and count as
 * ready, the rest are polled. */
static int wait_many(const HANDLE *h, size_t n, double timeout, int *ready) {
  wait_slot *slot = calloc(n, sizeof *slot);
  HANDLE *reg = calloc(n, sizeof *reg);
  HANDLE ev = CreateEventW(NULL, TRUE, FALSE, NULL);
  int rc = 0;
  size_t done = 0;
  if (slot == NULL || reg == NULL || ev == NULL)
    rc = ev == NULL && slot && reg ? mpi__win_error("CreateEventW")
                                   : mp__error(MP_ENOMEM, "out of memory");
  for (; rc == 0 && done < n; done++) {
    slot[done].event = ev;
    ULONG flags = WT_EXECUTEONLYONCE | WT_EXECUTEINWAITTHREAD;
    if (!RegisterWaitForSingleObject(&reg[done], h[done], on_ready,
                                     &slot[done], INFINITE, flags))
      rc = mpi__win_error("RegisterWaitForSingleObject");
  }
  if (rc == 0)
    rc = mpi__wait_one(ev, timeout);
  for (size_t i = 0; i < done; i++)
    if (reg[i] != NULL)
      UnregisterWaitEx(reg[i], INVALID_HANDLE_VALUE);
  /* Even after a timeout: a late callback may have consumed a signal. */
  if (rc == 0 || rc == MP_ETIMEDOUT) {
    for (size_t i = 0; i < n; i++)
      ready[i] = slot[i].fired != 0;
    rc = poll_all(h, n, ready);
  }
  if (ev != NULL)
    CloseHandle(ev);
  free(reg);
  free(slot);
  return rc;
}

/* WaitForMultipleObjects refuses a handle listed twice. */
static int has_duplicates(const HANDLE *h, size_t n) {
  for (size_t i = 1; i < n; i++)
    for (size_t k = 0; k < i; k++)
      if (h[i] == h[k])
        return 1;
  return 0;
}

/* Fills r (all zero on entry); returns the count, MP_ETIMEDOUT or MP_EOS. */
static int wait_handles(const HANDLE *h, size_t n, double timeout, int *r) {
  int rc;
  if (n <= MAXIMUM_WAIT_OBJECTS && !has_duplicates(h, n)) {
    double deadline = timeout < 0 ? -1.0 : mpi_now() + timeout;
    for (;;) { /* loops only for timeouts beyond 49 days */
      double left = deadline < 0 ? -1.0 : deadline - mpi_now();
      if (deadline >= 0 && left < 0)
        left = 0;
      rc = wait_group(h, (DWORD)n, mpi__timeout_ms(left), r);
      if (rc != 0 || (deadline >= 0 && mpi_now() >= deadline))
        break;
    }
  } else {
    rc = poll_all(h, n, r);
    if (rc == 0 && timeout != 0)
      rc = wait_many(h, n, timeout, r);
  }
  return rc == 0 ? mp__error(MP_ETIMEDOUT, "wait timed out") : rc;
}

/* Stream read ends (overlapped named pipes, and the TCP sockets of
 * mpi_accept / mpi_connect) are not waitable themselves: each gets a
 * zero-byte read (a zero-byte WSARecv on a socket), whose event stands
 * for it in the wait set.  The read completes when data arrives or the
 * writer goes, taking no data; afterwards a peek (select on a socket)
 * says whether the stream is ready.  The socket keeps its mode: nothing
 * is event-selected on it. */
typedef struct pipe_wait {
  size_t index;
  event_node *ev;
  OVERLAPPED ov;
  int state;  /* MPI_ZR_*, or -1 when not started */
  int socket; /* a socket, not a pipe */
} pipe_wait;

static int pipe_wait_ready(const pipe_wait *pw, HANDLE h) {
  return pw->socket ? mpi__socket_wait(h, 0) : mpi__stream_ready(h);
}

typedef LONG(NTAPI *query_file_fn)(HANDLE, void *, void *, ULONG, int);

/* 1 if h was opened for synchronous I/O (a zero-byte read on it would
 * block us): FileModeInformation from ntdll.  0 when unknown. */
static int is_synchronous(HANDLE h) {
  static query_file_fn query; /* set once; a benign race */
  static volatile LONG looked;
  if (!looked) {
    HMODULE nt = GetModuleHandleW(L"ntdll.dll");
    query = nt ? (query_file_fn)(void (*)(void))GetProcAddress(
                     nt, "NtQueryInformationFile")
               : NULL;
    InterlockedExchange(&looked, 1);
  }
  struct {
    union {
      LONG status;
      void *pointer;
    } u;
    ULONG_PTR information;
  } iosb;
  ULONG mode = 0;
  if (query == NULL || query(h, &iosb, &mode, sizeof mode, 16) < 0)
    return 0; /* 16: FileModeInformation */
  return (mode & 0x30) != 0; /* FILE_SYNCHRONOUS_IO_(NON)ALERT */
}

static void end_pipe_waits(pipe_wait *pw, size_t np, const HANDLE *h) {
  for (size_t k = 0; k < np; k++) {
    if (pw[k].state >= 0)
      mpi__zero_read_end(h[pw[k].index], &pw[k].ov, pw[k].state);
    pw[k].state = -1;
    mpi__event_give(pw[k].ev);
    pw[k].ev = NULL;
  }
}

/* One round: r (all zero on entry) gets the ready handles; h (a copy of
 * fds on entry) is the wait set, where a stream's entry becomes its
 * event.  The count, MP_ETIMEDOUT or an error; 0 when only a zero-byte
 * read fired without the stream being ready (a zero-length write): the
 * caller waits again. */
static int wait_round(const HANDLE *fds, HANDLE *h, size_t n, pipe_wait *pw,
                      size_t np, double timeout, int *r) {
  int count = 0, rc = 0;
  for (size_t k = 0; k < np && rc >= 0; k++) {
    h[pw[k].index] = NULL; /* a stream: its event goes here */
    rc = pipe_wait_ready(&pw[k], fds[pw[k].index]);
    if (rc > 0) {
      r[pw[k].index] = 1;
      count++;
    }
  }
  if (rc < 0)
    return rc;
  if (count > 0) { /* no need to block: poll the rest */
    for (size_t i = 0; i < n; i++)
      if (h[i] != NULL) { /* not a stream */
        DWORD w = WaitForSingleObject(fds[i], 0);
        if (w == WAIT_FAILED)
          return mpi__win_error("WaitForSingleObject");
        if (w != WAIT_TIMEOUT) {
          r[i] = 1;
          count++;
        }
      }
    return count;
  }
  for (size_t k = 0; k < np && rc >= 0; k++) {
    if (pw[k].ev == NULL && (pw[k].ev = mpi__event_take()) == NULL) {
      rc = MP_EOS;
      break;
    }
    HANDLE ev = mpi__event_handle(pw[k].ev);
    HANDLE fd = fds[pw[k].index];
    rc = pw[k].state = pw[k].socket
                           ? mpi__zero_recv_start(fd, &pw[k].ov, ev)
                           : mpi__zero_read_start(fd, &pw[k].ov, ev);
    if (rc < 0)
      pw[k].state = -1;
    h[pw[k].index] = ev;
  }
  if (rc >= 0)
    rc = wait_handles(h, n, timeout, r);
  end_pipe_waits(pw, np, fds);
  if (rc < 0 && rc != MP_ETIMEDOUT)
    return rc;
  /* The streams' readiness is what a peek says now (even after a
   * timeout: data may have come as the wait ended). */
  int timed_out = rc == MP_ETIMEDOUT;
  count = 0;
  for (size_t i = 0; i < n; i++)
    if (h[i] == fds[i])
      count += r[i] = timed_out ? 0 : r[i];
  for (size_t k = 0; k < np; k++) {
    int ready = pipe_wait_ready(&pw[k], fds[pw[k].index]);
    if (ready < 0)
      return ready;
    r[pw[k].index] = ready;
    count += ready;
  }
  if (count == 0 && timed_out)
    return mp__error(MP_ETIMEDOUT, "wait timed out");
  return count;
}

int mpi_wait(const mpi_fd *fds, size_t n, double timeout, int *ready) {
  HANDLE *in = calloc(n ? n : 1, sizeof *in);
  HANDLE *h = calloc(n ? n : 1, sizeof *h);
  int *r = calloc(n ? n : 1, sizeof *r);
  char *kind = calloc(n ? n : 1, 1); /* KIND_* */
  pipe_wait *pw = NULL;
  size_t np = 0;
  int rc = 0;
  enum { KIND_OTHER, KIND_PIPE, KIND_SOCKET };
  if (in == NULL || h == NULL || r == NULL || kind == NULL)
    rc = mp__error(MP_ENOMEM, "wait: out of memory");
  for (size_t i = 0; rc == 0 && i < n; i++) {
    in[i] = (HANDLE)fds[i];
    if (GetFileType(in[i]) != FILE_TYPE_PIPE)
      continue;
    kind[i] = mpi__is_socket(in[i]) ? KIND_SOCKET : KIND_PIPE;
    if (kind[i] == KIND_PIPE && is_synchronous(in[i]))
      rc = mp__error(MP_EINVAL, "wait: handle %p is a synchronous pipe, "
                                "not a stream", (void *)in[i]);
    np++;
  }
  if (rc == 0 && np > 0 && (pw = calloc(np, sizeof *pw)) == NULL)
    rc = mp__error(MP_ENOMEM, "wait: out of memory");
  if (rc == 0 && np > 0) {
    for (size_t i = 0, k = 0; i < n; i++)
      if (kind[i] != KIND_OTHER) {
        pw[k].index = i;
        pw[k].socket = kind[i] == KIND_SOCKET;
        pw[k++].state = -1;
      }
  }
  if (rc == 0 && np == 0) {
    rc = wait_handles(in, n, timeout, r);
  } else if (rc == 0) {
    double deadline = timeout < 0 ? -1.0 : mpi_now() + timeout;
    for (;;) {
      double left = deadline < 0 ? -1.0 : deadline - mpi_now();
      if (deadline >= 0 && left < 0)
        left = 0;
      memcpy(h, in, n * sizeof *h);
      memset(r, 0, n * sizeof *r);
      rc = wait_round(in, h, n, pw, np, left, r);
      if (rc != 0)
        break;
      if (deadline >= 0 && mpi_now() >= deadline) {
        rc = mp__error(MP_ETIMEDOUT, "wait timed out");
        break;
      }
    }
  }
  if (ready != NULL)
    for (size_t i = 0; i < n; i++)
      ready[i] = rc > 0 && r != NULL && r[i];
  free(pw);
  free(kind);
  free(in);
  free(h);
  free(r);
  return rc;
}

/* ---- 6. Start methods ------------------------------------------------- */

int mpi_default_method(void) { return MPI_SPAWN; }

int mpi_method_supported(int method) { return method == MPI_SPAWN; }
