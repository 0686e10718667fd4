/*
 * support.c - test helpers (see support.h).  The OS-specific parts are
 * here, in the tests, not in the library's common code.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#if defined(_WIN32)
#  include <windows.h>
#else
#  include <errno.h>
#  include <fcntl.h>
#  include <poll.h>
#  include <pthread.h>
#  include <signal.h>
#  include <sched.h>
#  include <sys/mman.h>
#  include <sys/stat.h>
#  include <sys/syscall.h>
#  include <time.h>
#  include <spawn.h>
#  include <sys/socket.h>
#  include <sys/wait.h>
#  include <unistd.h>
extern char **environ;
#endif

void ts_worker_init(void) {
  ts_unsetenv("BXFI_MAP");
  mp_main_guard(0, NULL);
}

void ts_worker_fini(void) {
  mp_process *left[512];
  int n = mp_active_children(left, 512);
  if (n > 512)
    n = 512;
  for (int i = 0; i < n; i++)
    mp_process_kill(left[i]);
  for (int i = 0; i < n; i++)
    mp_process_join(left[i], 10.0);
}

mp_process *ts_start(const char *method, mp_target_fn fn, mp_args *args) {
  mp_context *ctx = NULL;
  mp_process *p = NULL;
  cr_assert_eq(mp_get_context(method, &ctx), 0, "context %s: %s", method,
               mp_last_error_message());
  cr_assert_eq(mp_process_new(&p, fn, args), 0);
  cr_assert_eq(mp_process_set_context(p, ctx), 0);
  int rc = mp_process_start(p);
  cr_assert_eq(rc, 0, "start (%s): %s: %s", method, mp_err_name(rc),
               mp_last_error_message());
  return p;
}

int ts_join(mp_process *p) {
  int rc = mp_process_join(p, 30.0);
  cr_assert(rc == 0 || rc == MP_EBOOTSTRAP, "join: %s: %s", mp_err_name(rc),
            mp_last_error_message());
  int code = -1000;
  cr_assert_eq(mp_process_exitcode(p, &code), 0);
  return code;
}

static unsigned char big_byte(size_t i) {
  return (unsigned char)(i * 7 + (i >> 13));
}

mp_args *ts_big_args(void) {
  unsigned char *big = malloc(TS_BIG);
  cr_assert_not_null(big);
  for (size_t i = 0; i < TS_BIG; i++)
    big[i] = big_byte(i);
  mp_args *a;
  cr_assert_eq(mp_args_pack(&a, "y", big, (size_t)TS_BIG), 0);
  free(big);
  return a;
}

int ts_check_big(const mp_args *a) {
  size_t n = 0;
  const unsigned char *b = mp_args_bytes(a, 0, &n);
  if (b == NULL || n != TS_BIG)
    return 2;
  for (size_t i = 0; i < n; i++)
    if (b[i] != big_byte(i))
      return 3;
  return 0;
}

void ts_setenv(const char *name, const char *value) {
#if defined(_WIN32)
  _putenv_s(name, value);
#else
  setenv(name, value, 1);
#endif
}

void ts_unsetenv(const char *name) {
#if defined(_WIN32)
  _putenv_s(name, "");
#else
  unsetenv(name);
#endif
}

void ts_temp_path(char *buf, size_t cap, const char *tag) {
#if defined(_WIN32)
  char dir[MAX_PATH];
  GetTempPathA(sizeof dir, dir);
  snprintf(buf, cap, "%smproc-test-%s-%lld.txt", dir, tag,
           (long long)mp_getpid());
#else
  snprintf(buf, cap, "/tmp/mproc-test-%s-%lld.txt", tag,
           (long long)mp_getpid());
#endif
  remove(buf);
}

long ts_read_file(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return -1;
  size_t n = fread(buf, 1, cap - 1, f);
  buf[n] = '\0';
  fclose(f);
  return (long)n;
}

void ts_append_file(const char *path, const char *text) {
  FILE *f = fopen(path, "ab");
  if (f != NULL) {
    fputs(text, f);
    fclose(f);
  }
}

void ts_pipe_spec(const ts_pipe *p, char *buf, size_t cap) {
  snprintf(buf, cap, "%lld:%lld:%lld", (long long)p->owner,
           (long long)p->rd, (long long)p->wr);
}

/* ---- threads ------------------------------------------------------------ */

struct ts_thread {
  void (*fn)(void *);
  void *arg;
#if defined(_WIN32)
  HANDLE h;
#else
  pthread_t t;
#endif
};

#if defined(_WIN32)
static DWORD WINAPI thread_main(LPVOID p) {
  ts_thread *t = p;
  t->fn(t->arg);
  return 0;
}
#else
static void *thread_main(void *p) {
  ts_thread *t = p;
  t->fn(t->arg);
  return NULL;
}
#endif

ts_thread *ts_thread_start(void (*fn)(void *), void *arg) {
  ts_thread *t = calloc(1, sizeof *t);
  cr_assert_not_null(t);
  t->fn = fn;
  t->arg = arg;
#if defined(_WIN32)
  t->h = CreateThread(NULL, 0, thread_main, t, 0, NULL);
  cr_assert_not_null(t->h);
#else
  cr_assert_eq(pthread_create(&t->t, NULL, thread_main, t), 0);
#endif
  return t;
}

void ts_thread_join(ts_thread *t) {
#if defined(_WIN32)
  WaitForSingleObject(t->h, INFINITE);
  CloseHandle(t->h);
#else
  pthread_join(t->t, NULL);
#endif
  free(t);
}

/* ---- pipes -------------------------------------------------------------- */

#if defined(_WIN32)

void ts_pipe_open(ts_pipe *p) {
  HANDLE rd, wr;
  cr_assert(CreatePipe(&rd, &wr, NULL, 0));
  p->rd = (intptr_t)rd;
  p->wr = (intptr_t)wr;
  p->owner = (int64_t)GetCurrentProcessId();
}

void ts_inheritable_pipe(intptr_t *rd, intptr_t *wr) {
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
  HANDLE r, w;
  cr_assert(CreatePipe(&r, &w, &sa, 0));
  SetHandleInformation(r, HANDLE_FLAG_INHERIT, 0);
  *rd = (intptr_t)r;
  *wr = (intptr_t)w;
}

int ts_pipe_writers_gone(intptr_t rd) {
  DWORD avail = 0;
  return !PeekNamedPipe((HANDLE)rd, NULL, 0, NULL, &avail, NULL) &&
         GetLastError() == ERROR_BROKEN_PIPE;
}

void ts_close_raw(intptr_t h) { CloseHandle((HANDLE)h); }

void ts_pipe_close(ts_pipe *p) {
  CloseHandle((HANDLE)p->rd);
  if (p->wr != -1)
    CloseHandle((HANDLE)p->wr);
}

void ts_pipe_add_args(const ts_pipe *p, mp_args *a) {
  mp_args_add_int(a, p->owner);
  mp_args_add_int(a, p->wr);
}

/* The child copies the handle out of the test process. */
void ts_pipe_put(const mp_args *a, size_t i, int64_t v) {
  HANDLE owner = OpenProcess(PROCESS_DUP_HANDLE, FALSE,
                             (DWORD)mp_args_int(a, i));
  HANDLE h = NULL;
  if (owner == NULL ||
      !DuplicateHandle(owner, (HANDLE)(intptr_t)mp_args_int(a, i + 1),
                       GetCurrentProcess(), &h, 0, FALSE,
                       DUPLICATE_SAME_ACCESS))
    exit(97);
  DWORD n;
  WriteFile(h, &v, sizeof v, &n, NULL);
  CloseHandle(h);
  CloseHandle(owner);
}

void ts_pipe_send(ts_pipe *p, int64_t v) {
  DWORD n;
  WriteFile((HANDLE)p->wr, &v, sizeof v, &n, NULL);
}

int64_t ts_pipe_take(const char *spec) {
  long long owner = 0, token = 0;
  sscanf(spec, "%lld:%lld", &owner, &token);
  HANDLE from = OpenProcess(PROCESS_DUP_HANDLE, FALSE, (DWORD)owner);
  HANDLE h = NULL;
  int64_t v = -1;
  DWORD n;
  if (from != NULL &&
      DuplicateHandle(from, (HANDLE)(intptr_t)token, GetCurrentProcess(), &h,
                      0, FALSE, DUPLICATE_SAME_ACCESS))
    ReadFile(h, &v, sizeof v, &n, NULL);
  if (h != NULL)
    CloseHandle(h);
  if (from != NULL)
    CloseHandle(from);
  return v;
}

struct pipe_read {
  HANDLE h;
  int64_t v;
  int ok;
};

static DWORD WINAPI pipe_reader(LPVOID arg) {
  struct pipe_read *r = arg;
  DWORD n = 0;
  r->ok = ReadFile(r->h, &r->v, sizeof r->v, &n, NULL) && n == sizeof r->v;
  return 0;
}

/* Anonymous pipes cannot be waited on: read on a thread, wait for it. */
int ts_pipe_get(ts_pipe *p, double timeout, int64_t *v) {
  static struct pipe_read r; /* outlives a timed-out reader */
  r.h = (HANDLE)p->rd;
  r.ok = 0;
  HANDLE t = CreateThread(NULL, 0, pipe_reader, &r, 0, NULL);
  if (t == NULL)
    return -1;
  DWORD w = WaitForSingleObject(t, (DWORD)(timeout * 1000));
  CloseHandle(t);
  if (w != WAIT_OBJECT_0 || !r.ok)
    return -1;
  *v = r.v;
  return 0;
}

void ts_kill_pid(int64_t pid) {
  HANDLE h = OpenProcess(PROCESS_TERMINATE, FALSE, (DWORD)pid);
  cr_assert_not_null(h, "cannot open process %lld", (long long)pid);
  cr_assert(TerminateProcess(h, 0xC0000005u)); /* as a crash would */
  CloseHandle(h);
}

int ts_wait_pid_gone(int64_t pid, double timeout) {
  HANDLE h = OpenProcess(SYNCHRONIZE, FALSE, (DWORD)pid);
  if (h == NULL)
    return 1;
  DWORD r = WaitForSingleObject(h, (DWORD)(timeout * 1000));
  CloseHandle(h);
  return r == WAIT_OBJECT_0;
}

void ts_block_forever(void) {
  for (;;)
    Sleep(INFINITE);
}

static size_t page_round(size_t n) {
  SYSTEM_INFO si;
  GetSystemInfo(&si);
  size_t pg = si.dwPageSize;
  return (n + pg - 1) / pg * pg;
}

void *ts_guarded_buffer(size_t writable, size_t total) {
  size_t lead = page_round(writable), len = page_round(lead - writable +
                                                       total);
  unsigned char *base =
      VirtualAlloc(NULL, len, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
  cr_assert_not_null(base);
  DWORD old;
  if (len > lead)
    cr_assert(VirtualProtect(base + lead, len - lead, PAGE_READONLY, &old));
  return base + (lead - writable);
}

void ts_guarded_free(void *p, size_t writable, size_t total) {
  (void)total;
  VirtualFree((unsigned char *)p - (page_round(writable) - writable), 0,
              MEM_RELEASE);
}

void ts_yield(void) { SwitchToThread(); }

int ts_raw_try_write(mp_handle h, const void *p, size_t n) {
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
  DWORD done = 0;
  if (!WriteFile((HANDLE)h, p, (DWORD)n, &done, &ov) &&
      GetLastError() == ERROR_IO_PENDING)
    GetOverlappedResult((HANDLE)h, &ov, &done, TRUE);
  CloseHandle(ov.hEvent);
  return done == n ? 0 : -1;
}

void ts_raw_write(mp_handle h, const void *p, size_t n) {
  cr_assert_eq(ts_raw_try_write(h, p, n), 0, "raw write");
}

#else

void ts_inheritable_pipe(intptr_t *rd, intptr_t *wr) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  *rd = fds[0];
  *wr = fds[1];
}

int ts_pipe_writers_gone(intptr_t rd) {
  struct pollfd pfd = {(int)rd, POLLIN, 0};
  return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP) != 0;
}

void ts_close_raw(intptr_t h) { close((int)h); }

/* A named FIFO: spawned children and the fork server hold only the
 * descriptors mproc gives them (as Python's), so a child opens the pipe
 * by its name, made of the owner's pid and the read end's number. */
static void fifo_path(char *buf, size_t cap, long long owner, long long rd) {
  snprintf(buf, cap, "/tmp/mproc-test-fifo-%lld-%lld", owner, rd);
}

void ts_pipe_open(ts_pipe *p) {
  static int seq;
  char tmp[128], path[128];
  snprintf(tmp, sizeof tmp, "/tmp/mproc-test-fifo-%lld-new-%d",
           (long long)getpid(), seq++);
  unlink(tmp);
  cr_assert_eq(mkfifo(tmp, 0600), 0, "mkfifo: %s", strerror(errno));
  int rd = open(tmp, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  int wr = open(tmp, O_WRONLY | O_CLOEXEC);
  cr_assert(rd >= 0 && wr >= 0, "open fifo: %s", strerror(errno));
  fifo_path(path, sizeof path, (long long)getpid(), rd);
  cr_assert_eq(rename(tmp, path), 0);
  p->rd = rd;
  p->wr = wr;
  p->owner = getpid();
}

void ts_pipe_close(ts_pipe *p) {
  char path[128];
  fifo_path(path, sizeof path, (long long)p->owner, (long long)p->rd);
  if (p->owner == getpid())
    unlink(path);
  close((int)p->rd);
  if (p->wr != -1)
    close((int)p->wr);
}

void ts_pipe_add_args(const ts_pipe *p, mp_args *a) {
  mp_args_add_int(a, p->owner);
  mp_args_add_int(a, p->rd);
}

/* Without a reader (the test has gone) the open fails: exit 97. */
void ts_pipe_put(const mp_args *a, size_t i, int64_t v) {
  char path[128];
  fifo_path(path, sizeof path, (long long)mp_args_int(a, i),
            (long long)mp_args_int(a, i + 1));
  int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0 || write(fd, &v, sizeof v) != (ssize_t)sizeof v)
    _exit(97);
  close(fd);
}

void ts_pipe_send(ts_pipe *p, int64_t v) {
  if (write((int)p->wr, &v, sizeof v) != (ssize_t)sizeof v)
    cr_log_error("ts_pipe_send failed");
}

/* The child opens the pipe's read side by name; it reads EOF if the test
 * dies (closing the only write end) instead of sending. */
int64_t ts_pipe_take(const char *spec) {
  long long owner = 0, rd = -1, wr = -1;
  sscanf(spec, "%lld:%lld:%lld", &owner, &rd, &wr);
  char path[128];
  fifo_path(path, sizeof path, owner, rd);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  int64_t v = -1;
  if (fd < 0)
    return -1;
  ssize_t r = read(fd, &v, sizeof v);
  close(fd);
  return r == (ssize_t)sizeof v ? v : -1;
}

int ts_pipe_get(ts_pipe *p, double timeout, int64_t *v) {
  struct pollfd pfd = {(int)p->rd, POLLIN, 0};
  if (poll(&pfd, 1, (int)(timeout * 1000)) != 1)
    return -1;
  return read((int)p->rd, v, sizeof *v) == (ssize_t)sizeof *v ? 0 : -1;
}

void ts_kill_pid(int64_t pid) {
  cr_assert_eq(kill((pid_t)pid, SIGKILL), 0, "cannot kill %lld",
               (long long)pid);
}

int ts_wait_pid_gone(int64_t pid, double timeout) {
#  if defined(SYS_pidfd_open)
  int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
  if (fd < 0)
    return errno == ESRCH;
  struct pollfd pfd = {fd, POLLIN, 0};
  int r = poll(&pfd, 1, (int)(timeout * 1000));
  close(fd);
  return r == 1;
#  else
  for (double t = 0; t < timeout; t += 0.01) {
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
      return 1;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return 0;
#  endif
}

#  ifdef __linux__
int ts_proc_stat(long pid, char *state, long *ppid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  size_t r = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[r] = '\0';
  /* The name (in parentheses) may hold anything: read after the last ')'. */
  char *rp = strrchr(buf, ')');
  return rp != NULL && sscanf(rp + 1, " %c %ld", state, ppid) == 2 ? 0 : -1;
}
#  endif

void ts_block_forever(void) {
  for (;;)
    pause();
}

static size_t page_round(size_t n) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  return (n + pg - 1) / pg * pg;
}

void *ts_guarded_buffer(size_t writable, size_t total) {
  size_t lead = page_round(writable), len = page_round(lead - writable +
                                                       total);
  unsigned char *base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  cr_assert(base != MAP_FAILED);
  if (len > lead)
    cr_assert_eq(mprotect(base + lead, len - lead, PROT_READ), 0);
  return base + (lead - writable);
}

void ts_guarded_free(void *p, size_t writable, size_t total) {
  size_t lead = page_round(writable);
  munmap((unsigned char *)p - (lead - writable),
         page_round(lead - writable + total));
}

void ts_yield(void) { sched_yield(); }

void ts_raw_write(mp_handle h, const void *p, size_t n) {
  cr_assert_eq(write((int)h, p, n), (ssize_t)n, "raw write");
}

int ts_raw_try_write(mp_handle h, const void *p, size_t n) {
  /* a socket: no SIGPIPE when the other end has gone */
#  if defined(MSG_NOSIGNAL)
  return send((int)h, p, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
#  else
  int one = 1;
  setsockopt((int)h, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
  return send((int)h, p, n, 0) == (ssize_t)n ? 0 : -1;
#  endif
}

#endif

/* ---- portable helpers built on the ones above ----------------------- */

void ts_yield(void);

double ts_now(void) {
#if defined(_WIN32)
  LARGE_INTEGER f, c;
  QueryPerformanceFrequency(&f);
  QueryPerformanceCounter(&c);
  return (double)c.QuadPart / (double)f.QuadPart;
#else
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
#endif
}

int ts_poll_until(int (*pred)(void *), void *arg, double timeout) {
  double end = ts_now() + timeout;
  int v;
  while (!(v = pred(arg)) && ts_now() < end)
    ts_yield();
  return v;
}

unsigned char ts_pattern(size_t i, size_t seed) {
  return (unsigned char)(i * 31 + seed + (i >> 12));
}

void *ts_make_message(size_t n, size_t seed) {
  unsigned char *p = malloc(n ? n : 1);
  cr_assert_not_null(p);
  for (size_t i = 0; i < n; i++)
    p[i] = ts_pattern(i, seed);
  return p;
}

int ts_is_message(const void *p, size_t n, size_t seed) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != ts_pattern(i, seed))
      return 0;
  return 1;
}

int ts_poll_paced(int (*pred)(void *), void *arg, double timeout,
                  double every) {
  /* An event nobody sets paces the looks (a wait with a timeout); the
   * deadline, not the pace, bounds the whole. */
  mp_event *pace = NULL;
  cr_assert_eq(mp_event_new(&pace), 0, "ts_poll_paced: an event");
  double end = ts_now() + timeout;
  int v;
  while (!(v = pred(arg)) && ts_now() < end)
    mp_event_wait(pace, every);
  mp_event_free(pace);
  return v;
}

int ts_pid_ended_or_kill(int64_t pid, double timeout) {
  if (ts_wait_pid_gone(pid, timeout))
    return 1;
  ts_kill_pid(pid);
  ts_wait_pid_gone(pid, 10.0);
  return 0;
}

#if defined(_WIN32)
void ts_program_start(ts_program *p, const char *path,
                      const char *const *args) {
  const char *base = path;
  for (const char *c = path; *c; c++)
    if (*c == '/' || *c == '\\')
      base = c + 1;
  char exe[MAX_PATH + 64];
  DWORD len = GetModuleFileNameA(NULL, exe, MAX_PATH);
  cr_assert(len > 0 && len < MAX_PATH);
  char *slash = strrchr(exe, '\\');
  cr_assert_not_null(slash);
  size_t room = sizeof exe - (size_t)(slash + 1 - exe);
  size_t bn = strlen(base);
  int has_exe = bn >= 4 && _stricmp(base + bn - 4, ".exe") == 0;
  cr_assert_lt(bn + 5, room);
  snprintf(slash + 1, room, "%s%s", base, has_exe ? "" : ".exe");
  char cmd[4096];
  size_t at = (size_t)snprintf(cmd, sizeof cmd, "\"%s\"", exe);
  for (int i = 0; args[i] != NULL; i++) {
    cr_assert_lt(i, 8);
    at += (size_t)snprintf(cmd + at, sizeof cmd - at, " \"%s\"", args[i]);
    cr_assert_lt(at, sizeof cmd);
  }
  STARTUPINFOA si;
  PROCESS_INFORMATION pi;
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  cr_assert(CreateProcessA(exe, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si,
                           &pi),
            "cannot run %s: error %lu", exe, (unsigned long)GetLastError());
  CloseHandle(pi.hThread);
  p->handle = pi.hProcess;
  p->pid = (int64_t)pi.dwProcessId;
}

int ts_program_wait(ts_program *p, double timeout) {
  DWORD code = 0;
  HANDLE h = p->handle;
  p->handle = NULL;
  if (WaitForSingleObject(h, (DWORD)(timeout * 1000)) != WAIT_OBJECT_0) {
    TerminateProcess(h, 1);
    WaitForSingleObject(h, INFINITE);
    CloseHandle(h);
    return -1000;
  }
  GetExitCodeProcess(h, &code);
  CloseHandle(h);
  return (int)code;
}
#else
void ts_program_start(ts_program *p, const char *path,
                      const char *const *args) {
  char *argv[10];
  argv[0] = (char *)path;
  int n = 0;
  for (; args[n] != NULL; n++) {
    cr_assert_lt(n, 8);
    argv[n + 1] = (char *)args[n];
  }
  argv[n + 1] = NULL;
  pid_t pid;
  int rc = posix_spawn(&pid, path, NULL, NULL, argv, environ);
  cr_assert_eq(rc, 0, "cannot run %s: %s", path, strerror(rc));
  p->pid = pid;
  p->handle = NULL;
}

int ts_program_wait(ts_program *p, double timeout) {
  pid_t pid = (pid_t)p->pid, r;
  int st = 0;
  double end = ts_now() + timeout;
  /* Our own child: a zombie until reaped, so poll waitpid (between
   * waits on a pidfd where there is one). */
  while ((r = waitpid(pid, &st, WNOHANG)) == 0 && ts_now() < end)
    ts_wait_pid_gone(pid, 0.05);
  if (r != pid) {
    kill(pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
      ;
    return -1000;
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}
#endif
