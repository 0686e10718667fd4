/*
 * win32/child.c - starting, waiting for and signalling children, and the
 * child's side of the bootstrap.
 *
 * Parts:
 *   1. the job object that takes daemonic children down with us
 *   2. the child's environment block and inherited handles
 *   3. starting a child (spawn only) and sending its bootstrap
 *   4. collecting a child: exit codes, the status channel
 *   5. terminating and freeing
 *   6. the child side: bootstrap, exit record, watching the parent
 *
 * A spawned child re-runs this program with the argv the main guard
 * recorded (quoted by the rules CommandLineToArgvW and the C runtime
 * undo), or with no arguments after mp_main_guard(0, NULL).  It inherits
 * exactly four handles (listed in PROC_THREAD_ATTRIBUTE_HANDLE_LIST): the
 * read end of a bootstrap pipe (u32 LE count + count u64 LE handle values,
 * then u64 LE length + bytes, written by the parent after CreateProcess;
 * the handles are mpi_start_info's, duplicated into the child, not
 * inheritable), the write end of a status pipe (frames
 * 'A' = bootstrap read, 'R' = exit record), a SYNCHRONIZE handle on the
 * parent, and its standard handles.  Their values travel in the
 * MPROC_SPAWN variable of the environment block built for the child.
 * The process handle is the sentinel; the status pipe is read (without
 * blocking) only once the child has ended.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

struct mpi_child {
  HANDLE process;
  HANDLE status; /* read end of the status pipe */
  DWORD pid;
  int collected;
  int exitcode;
};

/* ---- 1. The job object for daemonic children -------------------------- */

static INIT_ONCE job_once = INIT_ONCE_STATIC_INIT;
static HANDLE daemon_job; /* NULL when it cannot be made */

static BOOL CALLBACK job_init(PINIT_ONCE once, PVOID arg, PVOID *ctx) {
  (void)once;
  (void)arg;
  (void)ctx;
  HANDLE job = CreateJobObjectW(NULL, NULL); /* not inheritable */
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION li;
  memset(&li, 0, sizeof li);
  li.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
  if (job != NULL &&
      !SetInformationJobObject(job, JobObjectExtendedLimitInformation, &li,
                               sizeof li)) {
    CloseHandle(job);
    job = NULL;
  }
  daemon_job = job;
  return TRUE;
}

/* Put a suspended child in the job.  When that fails (an enclosing job
 * forbids nesting, before Windows 8) the child still starts: it then
 * relies on its own parent watcher (mpi_child_init). */
static void join_daemon_job(HANDLE process) {
  InitOnceExecuteOnce(&job_once, job_init, NULL, NULL);
  if (daemon_job != NULL)
    AssignProcessToJobObject(daemon_job, process);
}

/* ---- 2. Environment and inherited handles ----------------------------- */

/* Does environment entry e name `name` (case-insensitively)?  Returns
 * the comparison as CSTR_LESS_THAN / CSTR_EQUAL / CSTR_GREATER_THAN. */
static int compare_name(const wchar_t *e, const wchar_t *name) {
  const wchar_t *eq = wcschr(e + 1, L'=');
  int n = eq ? (int)(eq - e) : (int)wcslen(e);
  return CompareStringOrdinal(e, n, name, -1, TRUE);
}

/* A copy of this process's environment with `entry` (MPROC_SPAWN=...)
 * put in its sorted place, replacing any inherited one. */
static wchar_t *build_env(const wchar_t *entry) {
  wchar_t *cur = GetEnvironmentStringsW();
  if (cur == NULL) {
    mpi__win_error("GetEnvironmentStringsW");
    return NULL;
  }
  size_t total = 0, elen = wcslen(entry) + 1;
  for (const wchar_t *p = cur; *p; p += wcslen(p) + 1)
    total += wcslen(p) + 1;
  wchar_t *out = malloc((total + elen + 1) * sizeof *out), *o = out;
  int placed = 0;
  for (const wchar_t *p = cur; out != NULL && *p; p += wcslen(p) + 1) {
    int cmp = p[0] == L'=' ? CSTR_LESS_THAN : compare_name(p, MPI_ENV_SPAWN_W);
    if (cmp == CSTR_EQUAL)
      continue;
    if (!placed && cmp == CSTR_GREATER_THAN) {
      memcpy(o, entry, elen * sizeof *o);
      o += elen;
      placed = 1;
    }
    memcpy(o, p, (wcslen(p) + 1) * sizeof *o);
    o += wcslen(p) + 1;
  }
  if (out != NULL && !placed) {
    memcpy(o, entry, elen * sizeof *o);
    o += elen;
  }
  if (out != NULL)
    *o = L'\0';
  else
    mp__error(MP_ENOMEM, "spawn: out of memory");
  FreeEnvironmentStringsW(cur);
  return out;
}

/* MPROC_SPAWN=<boot>:<status>:<our pid>:<our handle> into w[cap]. */
static const wchar_t *spawn_entry(HANDLE boot, HANDLE status, HANDLE parent,
                                  wchar_t *w, size_t cap) {
  char a[160];
  int n = snprintf(a, sizeof a, "MPROC_SPAWN=%llu:%llu:%lu:%llu",
                   (unsigned long long)(uintptr_t)boot,
                   (unsigned long long)(uintptr_t)status,
                   (unsigned long)GetCurrentProcessId(),
                   (unsigned long long)(uintptr_t)parent);
  for (int i = 0; i <= n && (size_t)i < cap; i++) /* ASCII only */
    w[i] = (wchar_t)a[i];
  return w;
}

/* Everything a CreateProcess call needs to hand over. */
typedef struct inherit_set {
  HANDLE std[3];  /* for STARTUPINFO: our duplicates or the originals */
  HANDLE dup[3];  /* duplicates we must close (NULL if none) */
  HANDLE list[6]; /* for PROC_THREAD_ATTRIBUTE_HANDLE_LIST */
  DWORD n_list;
} inherit_set;

static int is_console_pseudo(HANDLE h) {
  return ((uintptr_t)h & 3) == 3; /* Windows 7 console handles */
}

/* Inheritable duplicates of our standard handles, added to the list. */
static void add_std_handles(inherit_set *s) {
  static const DWORD which[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE,
                                 STD_ERROR_HANDLE};
  HANDLE self = GetCurrentProcess();
  for (int i = 0; i < 3; i++) {
    HANDLE h = GetStdHandle(which[i]), d = NULL;
    s->std[i] = h;
    s->dup[i] = NULL;
    if (h == NULL || h == INVALID_HANDLE_VALUE ||
        !DuplicateHandle(self, h, self, &d, 0, TRUE, DUPLICATE_SAME_ACCESS))
      continue;
    s->std[i] = d;
    s->dup[i] = d;
    if (!is_console_pseudo(d))
      s->list[s->n_list++] = d;
  }
}

static void close_std_dups(inherit_set *s) {
  for (int i = 0; i < 3; i++)
    if (s->dup[i] != NULL)
      CloseHandle(s->dup[i]);
}

/* A one-entry attribute list holding the handle list, or NULL. */
static LPPROC_THREAD_ATTRIBUTE_LIST make_attrs(inherit_set *s) {
  SIZE_T size = 0;
  InitializeProcThreadAttributeList(NULL, 1, 0, &size);
  LPPROC_THREAD_ATTRIBUTE_LIST a = size ? malloc(size) : NULL;
  if (a == NULL)
    return NULL;
  if (!InitializeProcThreadAttributeList(a, 1, 0, &size)) {
    free(a);
    return NULL;
  }
  if (!UpdateProcThreadAttribute(a, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
                                 s->list, s->n_list * sizeof(HANDLE), NULL,
                                 NULL)) {
    DeleteProcThreadAttributeList(a);
    free(a);
    return NULL;
  }
  return a;
}

/* ---- 3. Starting a child ---------------------------------------------- */

typedef struct spawn_job {
  wchar_t *exe, *cmdline, *env;
  HANDLE boot_rd, boot_wr, status_rd, status_wr, parent;
  int daemon;
  PROCESS_INFORMATION pi;
} spawn_job;

/* Append one argument to a command line, quoted so that the child's C
 * runtime splits it back unchanged: backslashes are literal except
 * before a quote, where they (and the quote) are escaped. */
static size_t quote_arg(wchar_t *out, const wchar_t *arg) {
  size_t n = 0;
  int plain = arg[0] != L'\0' && wcspbrk(arg, L" \t\n\v\"") == NULL;
  if (plain) {
    size_t len = wcslen(arg);
    if (out)
      memcpy(out, arg, len * sizeof *arg);
    return len;
  }
#define PUT(ch) (out ? (void)(out[n] = (ch)) : (void)0, n++)
  PUT(L'"');
  for (const wchar_t *c = arg;; c++) {
    size_t slashes = 0;
    while (*c == L'\\') {
      slashes++;
      c++;
    }
    size_t times = *c == L'\0' ? 2 * slashes
                   : *c == L'"' ? 2 * slashes + 1
                                : slashes;
    for (size_t k = 0; k < times; k++)
      PUT(L'\\');
    if (*c == L'\0')
      break;
    PUT(*c);
  }
  PUT(L'"');
#undef PUT
  return n;
}

/* The child's command line: argv quoted, or just the program's path. */
static wchar_t *build_cmdline(char *const *argv, const wchar_t *exe) {
  size_t argc = 0;
  while (argv != NULL && argv[argc] != NULL)
    argc++;
  wchar_t **w = calloc(argc ? argc : 1, sizeof *w);
  if (w == NULL)
    return NULL;
  size_t total = 1, ok = 1;
  for (size_t i = 0; i < argc && ok; i++)
    ok = (w[i] = mpi__to_wide(argv[i])) != NULL;
  const wchar_t *const *args = (const wchar_t *const *)w;
  if (argc == 0) {
    args = &exe;
    argc = 1;
  }
  for (size_t i = 0; i < argc && ok; i++)
    total += quote_arg(NULL, args[i]) + 1;
  wchar_t *line = ok ? malloc(total * sizeof *line) : NULL;
  if (line != NULL) {
    size_t n = 0;
    for (size_t i = 0; i < argc; i++) {
      if (i > 0)
        line[n++] = L' ';
      n += quote_arg(line + n, args[i]);
    }
    line[n] = L'\0';
  }
  for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
    free(w[i]);
  free(w);
  return line;
}

/* CreateProcessW with the handle list, or with plain inheritance when the
 * list is unavailable or refused.  Called inside the start window. */
static int create_process(spawn_job *j, inherit_set *s) {
  DWORD flags = CREATE_UNICODE_ENVIRONMENT | (j->daemon ? CREATE_SUSPENDED
                                                        : 0);
  STARTUPINFOEXW si;
  memset(&si, 0, sizeof si);
  si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  si.StartupInfo.hStdInput = s->std[0];
  si.StartupInfo.hStdOutput = s->std[1];
  si.StartupInfo.hStdError = s->std[2];
  si.lpAttributeList = make_attrs(s);
  for (int attempt = 0; attempt < 2; attempt++) {
    int ext = si.lpAttributeList != NULL;
    si.StartupInfo.cb = ext ? sizeof si : sizeof si.StartupInfo;
    if (CreateProcessW(j->exe, j->cmdline, NULL, NULL, TRUE,
                       flags | (ext ? EXTENDED_STARTUPINFO_PRESENT : 0),
                       j->env, NULL, &si.StartupInfo, &j->pi))
      break;
    DWORD err = GetLastError();
    if (!ext || err != ERROR_INVALID_PARAMETER) {
      j->pi.hProcess = NULL;
      mpi__win_error_code(err, "CreateProcessW");
      break;
    }
    DeleteProcThreadAttributeList(si.lpAttributeList);
    free(si.lpAttributeList);
    si.lpAttributeList = NULL;
  }
  if (si.lpAttributeList != NULL) {
    DeleteProcThreadAttributeList(si.lpAttributeList);
    free(si.lpAttributeList);
  }
  return j->pi.hProcess != NULL ? 0 : MP_EOS;
}

/* Serialises the start window (not the library lock: CreateProcess can
 * take milliseconds, and other threads' mproc calls need not wait). */
static SRWLOCK start_lock = SRWLOCK_INIT;

/* The start window: the child's handles are inheritable only in here,
 * under the start lock, so no other mproc start (or any plain
 * CreateProcess, in the fallback) can pick them up.  */
static int start_window(spawn_job *j) {
  HANDLE self = GetCurrentProcess();
  inherit_set s;
  memset(&s, 0, sizeof s);
  int rc = 0;
  AcquireSRWLockExclusive(&start_lock);
  if (!SetHandleInformation(j->boot_rd, HANDLE_FLAG_INHERIT,
                            HANDLE_FLAG_INHERIT) ||
      !SetHandleInformation(j->status_wr, HANDLE_FLAG_INHERIT,
                            HANDLE_FLAG_INHERIT) ||
      !DuplicateHandle(self, self, self, &j->parent, SYNCHRONIZE, TRUE, 0))
    rc = mpi__win_error("spawn: cannot prepare inherited handles");
  if (rc == 0) {
    s.list[s.n_list++] = j->boot_rd;
    s.list[s.n_list++] = j->status_wr;
    s.list[s.n_list++] = j->parent;
    add_std_handles(&s);
    wchar_t entry[160];
    j->env = build_env(spawn_entry(j->boot_rd, j->status_wr, j->parent,
                                   entry, 160));
    rc = j->env != NULL ? create_process(j, &s) : MP_ENOMEM;
  }
  close_std_dups(&s);
  CloseHandle(j->boot_rd); /* the child's ends: ours go now */
  CloseHandle(j->status_wr);
  if (j->parent != NULL)
    CloseHandle(j->parent);
  j->boot_rd = j->status_wr = j->parent = NULL;
  ReleaseSRWLockExclusive(&start_lock);
  return rc;
}

/* Writes a big bootstrap in a thread, so that a child that never reads it
 * cannot block mp_process_start. */
typedef struct boot_writer {
  HANDLE pipe;
  unsigned char *data;
  size_t len;
} boot_writer;

static DWORD WINAPI boot_writer_main(LPVOID arg) {
  boot_writer *w = arg;
  mpi__write_all(w->pipe, w->data, w->len); /* errors: child gone */
  CloseHandle(w->pipe);
  free(w->data);
  free(w);
  return 0;
}

#define BOOT_INLINE_MAX (1024 * 1024) /* pipe sized to hold it whole */

/* Bytes on the bootstrap pipe: the handle table, then the blob. */
static size_t boot_wire_size(size_t n_handles, size_t len) {
  return 4 + 8 * n_handles + 8 + len;
}

static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

/* Send u32 LE count + count u64 LE handles (values in the child), then
 * u64 LE length + bytes; the pipe is ours from here on.  A child that
 * died first makes the write fail: that is for the wait to report. */
static void send_boot(HANDLE pipe, const HANDLE *handles, size_t nh,
                      const void *boot, size_t len) {
  size_t total = boot_wire_size(nh, len);
  unsigned char *buf = malloc(total), *p = buf;
  if (buf == NULL) {
    CloseHandle(pipe); /* the child reports a bootstrap failure */
    return;
  }
  mpi__put_u32(p, (uint32_t)nh);
  p += 4;
  for (size_t i = 0; i < nh; i++, p += 8)
    put_u64(p, (uint64_t)(uintptr_t)handles[i]);
  put_u64(p, (uint64_t)len);
  p += 8;
  if (len)
    memcpy(p, boot, len);
  boot_writer *w = total > BOOT_INLINE_MAX ? malloc(sizeof *w) : NULL;
  HANDLE t = NULL;
  if (w != NULL) {
    w->pipe = pipe;
    w->data = buf;
    w->len = total;
    t = CreateThread(NULL, 0, boot_writer_main, w, 0, NULL);
    if (t != NULL) {
      CloseHandle(t);
      return;
    }
    free(w);
  }
  mpi__write_all(pipe, buf, total);
  CloseHandle(pipe);
  free(buf);
}

static int make_pipes(spawn_job *j, size_t n_handles, size_t boot_len) {
  size_t wire = boot_wire_size(n_handles, boot_len);
  DWORD boot_size = wire > BOOT_INLINE_MAX ? BOOT_INLINE_MAX : (DWORD)wire;
  if (!CreatePipe(&j->boot_rd, &j->boot_wr, NULL, boot_size))
    return mpi__win_error("spawn: CreatePipe");
  if (!CreatePipe(&j->status_rd, &j->status_wr, NULL, MPI_STATUS_PIPE_SIZE))
    return mpi__win_error("spawn: CreatePipe");
  return 0;
}

static void spawn_job_free(spawn_job *j) {
  HANDLE *hs[] = {&j->boot_rd, &j->boot_wr, &j->status_rd, &j->status_wr};
  for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
    if (*hs[i] != NULL)
      CloseHandle(*hs[i]);
  free(j->exe);
  free(j->cmdline);
  free(j->env);
}

/* si's handles duplicated into the new child (values valid there, not
 * inheritable), malloc'd into *out.  On failure the child is killed. */
static int pass_handles(const mpi_start_info *si, HANDLE process,
                        HANDLE **out) {
  *out = NULL;
  if (si->n_handles == 0)
    return 0;
  HANDLE *in_child = calloc(si->n_handles, sizeof *in_child);
  int rc = in_child ? 0 : mp__error(MP_ENOMEM, "out of memory");
  for (size_t i = 0; rc == 0 && i < si->n_handles; i++)
    if (!DuplicateHandle(GetCurrentProcess(), (HANDLE)si->handles[i],
                         process, &in_child[i], 0, FALSE,
                         DUPLICATE_SAME_ACCESS))
      rc = mpi__win_error("spawn: cannot pass a handle to the child");
  if (rc != 0) { /* it would wait for a bootstrap forever */
    TerminateProcess(process, 1);
    free(in_child);
    return rc;
  }
  *out = in_child;
  return 0;
}

static int spawn(const mpi_start_info *si, mpi_child *c) {
  spawn_job j;
  HANDLE *passed = NULL;
  memset(&j, 0, sizeof j);
  j.daemon = si->daemon;
  if (si->n_handles > MPI_BOOT_HANDLES_MAX)
    return mp__error(MP_EINVAL, "spawn: too many handles (%llu) to pass",
                     (unsigned long long)si->n_handles);
  j.exe = si->exe ? mpi__to_wide(si->exe) : mpi__module_path(NULL);
  j.cmdline = j.exe ? build_cmdline(si->argv, j.exe) : NULL;
  int rc = j.exe == NULL ? MP_EINVAL
           : j.cmdline == NULL
               ? mp__error(MP_ENOMEM, "out of memory")
               : make_pipes(&j, si->n_handles, si->boot_len);
  if (rc == 0)
    rc = start_window(&j);
  if (rc == 0) {
    rc = pass_handles(si, j.pi.hProcess, &passed);
    if (j.daemon) {
      join_daemon_job(j.pi.hProcess);
      ResumeThread(j.pi.hThread);
    }
    CloseHandle(j.pi.hThread);
    if (rc != 0) {
      CloseHandle(j.pi.hProcess);
      spawn_job_free(&j);
      return rc;
    }
    send_boot(j.boot_wr, passed, si->n_handles, si->boot, si->boot_len);
    free(passed);
    j.boot_wr = NULL;
    c->process = j.pi.hProcess;
    c->pid = j.pi.dwProcessId;
    c->status = j.status_rd;
    j.status_rd = NULL;
  }
  spawn_job_free(&j);
  return rc;
}

int mpi_child_start(const mpi_start_info *si, mpi_child **out) {
  if (si->method != MPI_SPAWN)
    return mp__error(MP_ENOTSUP,
                     "the '%s' start method is not available on Windows; "
                     "use 'spawn'",
                     si->method == MPI_FORK ? "fork" : "forkserver");
  mpi_child *c = calloc(1, sizeof *c);
  if (c == NULL)
    return mp__error(MP_ENOMEM, "out of memory");
  int rc = spawn(si, c);
  if (rc != 0) {
    free(c);
    return rc;
  }
  *out = c;
  return 0;
}

int64_t mpi_child_pid(const mpi_child *c) { return (int64_t)c->pid; }

mpi_fd mpi_child_sentinel(const mpi_child *c) { return (mpi_fd)c->process; }

/* ---- 4. Collecting a child ------------------------------------------- */

/* Python style: our terminate/kill codes and crashes become -signal. */
static int map_exit_code(DWORD code) {
  switch (code) {
  case MPI_TERMINATE_CODE: return -15;
  case MPI_KILL_CODE: return -9;
  case 0xC0000005u: /* access violation */
  case 0xC00000FDu: /* stack overflow */
    return -11;
  case 0xC000001Du: /* illegal instruction */
    return -4;
  case 0xC000008Eu: /* float divide by zero */
  case 0xC0000090u: /* float invalid operation */
  case 0xC0000091u: /* float overflow */
  case 0xC0000093u: /* float underflow */
  case 0xC0000094u: /* integer divide by zero */
  case 0xC0000095u: /* integer overflow */
    return -8;
  case 0xC0000409u: /* fast fail: abort() under the UCRT */
    return -6;
  case 0x80000003u: /* breakpoint */
    return -5;
  case 0xC000013Au: /* STATUS_CONTROL_C_EXIT: Ctrl+C */
    return -2;
  default:
    return (int)(int32_t)code;
  }
}

/* Everything the ended child wrote, without ever blocking: its writes
 * are complete once it has ended, so an empty pipe means done (even if
 * some other process still held the write end).  Keeps 64 KiB at most. */
static unsigned char *drain_status(HANDLE h, size_t *n) {
  unsigned char *buf = malloc(MPI_STATUS_KEEP), sink[4096];
  *n = 0;
  for (;;) {
    DWORD avail = 0, got = 0;
    if (!PeekNamedPipe(h, NULL, 0, NULL, &avail, NULL) || avail == 0)
      break;
    size_t room = buf ? MPI_STATUS_KEEP - *n : 0;
    unsigned char *dst = room ? buf + *n : sink;
    DWORD want = room ? (room < avail ? (DWORD)room : avail)
                      : (avail < sizeof sink ? avail : (DWORD)sizeof sink);
    if (!ReadFile(h, dst, want, &got, NULL) || got == 0)
      break;
    if (room)
      *n += got;
  }
  return buf;
}

static void parse_frames(const unsigned char *p, size_t n,
                         mpi_exit_info *info) {
  while (n >= 5) {
    uint32_t len = mpi__get_u32(p + 1);
    if (len > n - 5)
      break;
    if (p[0] == MPI_FRAME_ACK)
      info->booted = 1;
    else if (p[0] == MPI_FRAME_RECORD && info->record == NULL &&
             (info->record = malloc(len ? len : 1)) != NULL) {
      memcpy(info->record, p + 5, len);
      info->record_len = len;
    }
    p += 5 + len;
    n -= 5 + len;
  }
}

int mpi_child_wait(mpi_child *c, double timeout, mpi_exit_info *info) {
  memset(info, 0, sizeof *info);
  if (!c->collected) {
    int rc = mpi__wait_one(c->process, timeout);
    if (rc != 0)
      return rc;
    DWORD code = 0;
    if (!GetExitCodeProcess(c->process, &code))
      return mpi__win_error("GetExitCodeProcess");
    c->exitcode = map_exit_code(code);
    c->collected = 1;
    size_t n = 0;
    unsigned char *buf = drain_status(c->status, &n);
    if (buf != NULL)
      parse_frames(buf, n, info);
    free(buf);
  } else {
    info->booted = 1; /* collected before: nothing more to tell */
  }
  info->exitcode = c->exitcode;
  return 0;
}

/* ---- 5. Terminating and freeing ------------------------------------- */

int mpi_child_signal(mpi_child *c, int hard) {
  if (c->collected || WaitForSingleObject(c->process, 0) == WAIT_OBJECT_0)
    return 0;
  if (TerminateProcess(c->process, hard ? MPI_KILL_CODE
                                        : MPI_TERMINATE_CODE))
    return 0;
  DWORD err = GetLastError();
  if (err == ERROR_ACCESS_DENIED &&
      WaitForSingleObject(c->process, 0) == WAIT_OBJECT_0)
    return 0; /* it ended meanwhile */
  return mpi__win_error_code(err, "TerminateProcess");
}

void mpi_child_free(mpi_child *c) {
  if (c == NULL)
    return;
  if (c->process != NULL)
    CloseHandle(c->process);
  if (c->status != NULL)
    CloseHandle(c->status);
  free(c);
}

/* ---- 6. The child side ---------------------------------------------- */

static int boot_detected;   /* mpi_boot_detect has run */
static mpi_fd *boot_handles; /* passed by the parent, until taken */
static size_t n_boot_handles;
static HANDLE status_pipe;  /* write end, in a spawned child */
static HANDLE parent_proc;  /* SYNCHRONIZE handle on the parent */
static DWORD parent_pid;

int mpi_boot_pending(void) {
  return !boot_detected &&
         GetEnvironmentVariableW(MPI_ENV_SPAWN_W, NULL, 0) > 0;
}

static void boot_die(const char *what) {
  fprintf(stderr, "mproc: spawned child cannot bootstrap: %s\n", what);
  fflush(stderr);
  ExitProcess(1);
}

static uint64_t parse_u64(const wchar_t **p, wchar_t end) {
  uint64_t v = 0;
  const wchar_t *s = *p;
  if (*s < L'0' || *s > L'9')
    boot_die("malformed MPROC_SPAWN");
  for (; *s >= L'0' && *s <= L'9'; s++)
    v = v * 10 + (uint64_t)(*s - L'0');
  if (*s != end)
    boot_die("malformed MPROC_SPAWN");
  *p = end ? s + 1 : s;
  return v;
}

/* Take the handles named by MPROC_SPAWN, keep them from any grandchild,
 * and drop the variable. */
static HANDLE take_handles(const wchar_t *env) {
  const wchar_t *p = env;
  HANDLE boot = (HANDLE)(uintptr_t)parse_u64(&p, L':');
  status_pipe = (HANDLE)(uintptr_t)parse_u64(&p, L':');
  parent_pid = (DWORD)parse_u64(&p, L':');
  parent_proc = (HANDLE)(uintptr_t)parse_u64(&p, L'\0');
  SetEnvironmentVariableW(MPI_ENV_SPAWN_W, NULL);
  SetHandleInformation(boot, HANDLE_FLAG_INHERIT, 0);
  SetHandleInformation(status_pipe, HANDLE_FLAG_INHERIT, 0);
  SetHandleInformation(parent_proc, HANDLE_FLAG_INHERIT, 0);
  return boot;
}

/* u32 LE count + count u64 LE handles (kept for mpi_boot_handles), then
 * u64 LE length + bytes, bounded to 1 GiB. */
static void *read_boot(HANDLE h, size_t *len) {
  unsigned char hdr[8];
  if (mpi__read_all(h, hdr, 4) != 0)
    boot_die(mp_last_error_message());
  uint32_t nh = mpi__get_u32(hdr);
  if (nh > MPI_BOOT_HANDLES_MAX)
    boot_die("too many handles in the bootstrap");
  if (nh > 0) {
    unsigned char *raw = malloc((size_t)nh * 8);
    boot_handles = malloc((size_t)nh * sizeof *boot_handles);
    if (raw == NULL || boot_handles == NULL)
      boot_die("out of memory");
    if (mpi__read_all(h, raw, (size_t)nh * 8) != 0)
      boot_die(mp_last_error_message());
    for (uint32_t i = 0; i < nh; i++) {
      uint64_t v = 0;
      for (int b = 7; b >= 0; b--)
        v = v << 8 | raw[8 * i + (uint32_t)b];
      boot_handles[i] = (mpi_fd)(uintptr_t)v;
    }
    free(raw);
    n_boot_handles = nh;
  }
  if (mpi__read_all(h, hdr, 8) != 0)
    boot_die(mp_last_error_message());
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--)
    n = n << 8 | hdr[i];
  if (n > MPI_BOOT_MAX)
    boot_die("bootstrap data larger than 1 GiB");
  void *buf = malloc(n ? (size_t)n : 1);
  if (buf == NULL)
    boot_die("out of memory");
  if (mpi__read_all(h, buf, (size_t)n) != 0)
    boot_die(mp_last_error_message());
  *len = (size_t)n;
  return buf;
}

int mpi_boot_detect(void **boot, size_t *len) {
  boot_detected = 1;
  wchar_t env[128];
  DWORD n = GetEnvironmentVariableW(MPI_ENV_SPAWN_W, env, 128);
  if (n == 0)
    return MPI_BOOT_NONE;
  SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX |
               SEM_NOOPENFILEERRORBOX);
  if (n >= 128)
    boot_die("malformed MPROC_SPAWN");
  HANDLE h = take_handles(env);
  *boot = read_boot(h, len);
  CloseHandle(h);
  mpi__frame_write(status_pipe, MPI_FRAME_ACK, NULL, 0);
  return MPI_BOOT_CHILD;
}

int mpi_boot_handles(mpi_fd **h, size_t *n) {
  *h = boot_handles;
  *n = n_boot_handles;
  boot_handles = NULL; /* handed over once */
  n_boot_handles = 0;
  return 0;
}

/* The parent ends -> a daemonic child ends.  The job object normally
 * sees to it; this thread covers a child the job could not take. */
static DWORD WINAPI parent_watch(LPVOID arg) {
  (void)arg;
  if (WaitForSingleObject(parent_proc, INFINITE) == WAIT_OBJECT_0)
    TerminateProcess(GetCurrentProcess(), MPI_KILL_CODE);
  return 0;
}

int mpi_child_init(int daemon, int64_t ppid) {
  (void)ppid;
  if (!daemon || parent_proc == NULL)
    return 0;
  HANDLE t = CreateThread(NULL, 0, parent_watch, NULL, 0, NULL);
  if (t == NULL)
    return mpi__win_error("cannot start the parent watcher");
  CloseHandle(t);
  return 0;
}

int mpi_status_send(const void *rec, size_t len) {
  if (status_pipe == NULL)
    return 0;
  return mpi__frame_write(status_pipe, MPI_FRAME_RECORD, rec, len);
}

/* Our parent's inherited handle when ppid is our parent; else opened.
 * NULL with *gone = 1 when no such process exists. */
static HANDLE parent_handle(int64_t ppid, int *owned, int *gone) {
  *owned = 0;
  *gone = 0;
  if (parent_proc != NULL && ppid == (int64_t)parent_pid)
    return parent_proc;
  HANDLE h = OpenProcess(SYNCHRONIZE, FALSE, (DWORD)ppid);
  if (h == NULL)
    *gone = GetLastError() == ERROR_INVALID_PARAMETER;
  *owned = h != NULL;
  return h;
}

int mpi_parent_alive(int64_t ppid) {
  int owned, gone;
  HANDLE h = parent_handle(ppid, &owned, &gone);
  if (h == NULL)
    return !gone; /* cannot open it (access denied): assume it lives */
  int alive = WaitForSingleObject(h, 0) == WAIT_TIMEOUT;
  if (owned)
    CloseHandle(h);
  return alive;
}

int mpi_parent_wait(int64_t ppid, double timeout) {
  int owned, gone;
  HANDLE h = parent_handle(ppid, &owned, &gone);
  if (h == NULL)
    return gone ? 0 : mpi__win_error("OpenProcess");
  int rc = mpi__wait_one(h, timeout);
  if (owned)
    CloseHandle(h);
  return rc;
}

void mpi_exit(int code) { ExitProcess((UINT)code); }
