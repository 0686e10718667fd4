/*
 * win32/shm.c - shared memory segments, waiting on a word in them, and
 * process liveness (platform.h part 7).
 *
 * Parts:
 *   1. the segment header and the mpi_shm object
 *   2. anonymous segments: unnamed file mappings passed as handles
 *   3. named segments: Local\ (or Global\) file mappings
 *   4. waiting on a word: a named semaphore per word, sleepers counted
 *      in the word itself
 *   5. process liveness
 *
 * Every segment is a pagefile-backed section.  The kernel counts the
 * handles to it and frees it with the last one, crashes included, so
 * neither kind can leak.  Windows has no futex that works across
 * processes (WaitOnAddress is per process), hence part 4.
 */
#include "internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../atomic.h"

#if defined(_MSC_VER)
#  pragma comment(lib, "advapi32.lib")
#endif

/* ---- 1. Header and object ---------------------------------------------- */

/* The first SHM_HEADER bytes of every segment are ours.  256 keeps
 * mpi_shm_addr 64-byte aligned: views start on 64 KiB boundaries. */
#define SHM_HEADER 256u
#define SHM_MAGIC 0x4853504Du /* "MPSH" */
#define SHM_VERSION 1u

enum {
  SHM_NAMED = 1,  /* created by name (mpi_shm_create) */
  SHM_GLOBAL = 2, /* in the Global\ namespace: its word semaphores too */
};

typedef struct shm_header {
  uint32_t magic;   /* SHM_MAGIC, stored last: 0 while being set up */
  uint32_t version; /* SHM_VERSION */
  uint64_t size;    /* usable bytes after the header */
  uint32_t flags;   /* SHM_NAMED, SHM_GLOBAL */
  uint32_t reserved;
  unsigned char id[16]; /* random: names the word semaphores (part 4) */
} shm_header;

/* The header must fit in front of the data (no _Static_assert: older
 * MSVC C modes lack it). */
typedef char shm_header_fits[sizeof(shm_header) <= SHM_HEADER ? 1 : -1];

/* A cached semaphore: the one of the word at byte offset `off`. */
typedef struct sem_slot {
  uint64_t off;
  HANDLE sem; /* NULL: empty slot */
} sem_slot;

/* Longest semaphore name: "Global\mproc-w-" + 32 + "-" + 16 hex + NUL. */
#define SEM_NAME_MAX 80

struct mpi_shm {
  HANDLE mapping;
  unsigned char *base; /* the view; the data is at base + SHM_HEADER */
  size_t size;         /* usable bytes */
  /* "Local\mproc-w-<id in hex>-": the offset of a word completes it. */
  wchar_t sem_prefix[SEM_NAME_MAX];
  size_t prefix_len;
  /* Open-addressing table of the word semaphores opened so far, keyed
   * by offset; cap is 0 or a power of two, at most half full. */
  SRWLOCK lock;
  sem_slot *slots;
  size_t cap, used;
};

/* Append the hex digits of the n bytes at p to w (2n characters). */
static size_t put_hex_bytes(wchar_t *w, const unsigned char *p, size_t n) {
  static const wchar_t digits[] = L"0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    w[2 * i] = digits[p[i] >> 4];
    w[2 * i + 1] = digits[p[i] & 15];
  }
  return 2 * n;
}

/* Append v in hex without leading zeros (at least one digit). */
static size_t put_hex_u64(wchar_t *w, uint64_t v) {
  static const wchar_t digits[] = L"0123456789abcdef";
  wchar_t tmp[16];
  size_t n = 0;
  do {
    tmp[n++] = digits[v & 15];
    v >>= 4;
  } while (v != 0);
  for (size_t i = 0; i < n; i++)
    w[i] = tmp[n - 1 - i];
  return n;
}

/* Errors of CreateFileMappingW: a full commit charge is "out of memory"
 * too (mpi__win_error_code calls it an OS error). */
static int mapping_error(DWORD err, const char *what) {
  if (err == ERROR_COMMITMENT_LIMIT || err == ERROR_NOT_ENOUGH_MEMORY ||
      err == ERROR_OUTOFMEMORY)
    return mp__error(MP_ENOMEM, "%s: not enough memory for the segment "
                                "(error %lu)",
                     what, (unsigned long)err);
  return mpi__win_error_code(err, what);
}

/* The mpi_shm for a mapped view whose header has been checked (or just
 * written).  Takes nothing over on failure (MP_ENOMEM). */
static int wrap(HANDLE mapping, unsigned char *base, mpi_shm **out) {
  const shm_header *hd = (const shm_header *)(void *)base;
  mpi_shm *s = calloc(1, sizeof *s);
  if (s == NULL)
    return mp__error(MP_ENOMEM, "shm: out of memory");
  s->mapping = mapping;
  s->base = base;
  s->size = (size_t)hd->size;
  const wchar_t *ns =
      (hd->flags & SHM_GLOBAL) ? L"Global\\mproc-w-" : L"Local\\mproc-w-";
  size_t n = wcslen(ns);
  memcpy(s->sem_prefix, ns, n * sizeof *ns);
  n += put_hex_bytes(s->sem_prefix + n, hd->id, sizeof hd->id);
  s->sem_prefix[n++] = L'-';
  s->prefix_len = n;
  InitializeSRWLock(&s->lock);
  *out = s;
  return 0;
}

/* Map all of section h for reading and writing into *base.  0 or an
 * error (MP_EPROTO when h is not a section: adopt's "not a segment"). */
static int map_all(HANDLE h, const char *what, unsigned char **base) {
  void *p = MapViewOfFile(h, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
  if (p == NULL) {
    DWORD err = GetLastError();
    if (err == ERROR_INVALID_HANDLE)
      return mp__error(MP_EPROTO, "%s: not a shared memory segment", what);
    return mpi__win_error_code(err, what);
  }
  *base = p;
  return 0;
}

/* Check the header of a view.  0; MP_EPROTO; or 1 while the magic is
 * still 0 (a creator that has not finished, or not ours at all). */
static int check_header(const unsigned char *base, const char *what) {
  const shm_header *hd = (const shm_header *)(const void *)base;
  /* Sequentially consistent: the fields written before the magic are
   * visible once it is. */
  uint32_t magic = mp__load32((volatile uint32_t *)&hd->magic);
  if (magic == 0)
    return 1;
  if (magic != SHM_MAGIC)
    return mp__error(MP_EPROTO, "%s: not an mproc segment", what);
  if (hd->version != SHM_VERSION)
    return mp__error(MP_EPROTO, "%s: segment version %lu, expected %u",
                     what, (unsigned long)hd->version, SHM_VERSION);
  /* The view covers the section rounded up to whole pages: the recorded
   * size must lie inside it, or the header lies (or the section was made
   * by someone else). */
  MEMORY_BASIC_INFORMATION mbi;
  if (VirtualQuery(base, &mbi, sizeof mbi) == 0)
    return mpi__win_error("shm: VirtualQuery");
  if (mbi.State != MEM_COMMIT || mbi.RegionSize < SHM_HEADER ||
      hd->size > (uint64_t)(mbi.RegionSize - SHM_HEADER))
    return mp__error(MP_EPROTO,
                     "%s: segment records %llu bytes but maps only %llu",
                     what, (unsigned long long)hd->size,
                     (unsigned long long)mbi.RegionSize);
  return 0;
}

/* Create a section of SHM_HEADER + size bytes (named when wname is not
 * NULL), map it, write the header, and wrap it. */
static int create_section(const wchar_t *wname, size_t size, uint32_t flags,
                          mpi_shm **out) {
  if (size == 0)
    return mp__error(MP_EINVAL, "shm: size must be at least 1 byte");
  if (size > SIZE_MAX - SHM_HEADER)
    return mp__error(MP_ENOMEM, "shm: size %llu too large",
                     (unsigned long long)size);
  uint64_t total = (uint64_t)size + SHM_HEADER;
  unsigned char id[16];
  int rc = mpi_random(id, sizeof id);
  if (rc != 0)
    return rc;

  /* An unnamed section is reachable only through handles we pass: the
   * default descriptor will do.  A named one is open to anyone who can
   * guess the name, so only our user may open it. */
  SECURITY_DESCRIPTOR sd;
  SECURITY_ATTRIBUTES sa;
  void *sd_mem = NULL;
  if (wname != NULL) {
    rc = mpi__user_only_sd(&sd, &sd_mem);
    if (rc != 0)
      return rc;
    sa.nLength = sizeof sa;
    sa.lpSecurityDescriptor = &sd;
    sa.bInheritHandle = FALSE;
  }
  HANDLE h = CreateFileMappingW(INVALID_HANDLE_VALUE,
                                wname != NULL ? &sa : NULL, PAGE_READWRITE,
                                (DWORD)(total >> 32), (DWORD)total, wname);
  DWORD err = GetLastError();
  free(sd_mem);
  if (h == NULL) {
    if (wname != NULL && err == ERROR_INVALID_HANDLE)
      return mp__error(MP_EEXIST, "shm: the name is taken by an object "
                                  "that is not a segment");
    return mapping_error(err, "shm: CreateFileMappingW");
  }
  if (wname != NULL && err == ERROR_ALREADY_EXISTS) {
    CloseHandle(h); /* a handle to the existing one: not ours */
    return mp__error(MP_EEXIST, "shm: a segment of that name exists");
  }
  unsigned char *base = NULL;
  rc = map_all(h, "shm: MapViewOfFile", &base);
  if (rc != 0) {
    CloseHandle(h);
    return rc;
  }
  /* Fields first, the magic last: an attacher that sees the magic sees
   * a whole header (the section starts zero-filled). */
  shm_header *hd = (shm_header *)(void *)base;
  hd->version = SHM_VERSION;
  hd->size = (uint64_t)size;
  hd->flags = flags;
  memcpy(hd->id, id, sizeof id);
  mp__store32((volatile uint32_t *)&hd->magic, SHM_MAGIC);
  rc = wrap(h, base, out);
  if (rc != 0) {
    UnmapViewOfFile(base);
    CloseHandle(h);
  }
  return rc;
}

/* ---- 2. Anonymous segments --------------------------------------------- */

int mpi_shm_new(size_t size, mpi_shm **out) {
  return create_section(NULL, size, 0, out);
}

int mpi_shm_adopt(mpi_fd fd, mpi_shm **out) {
  HANDLE h = (HANDLE)fd;
  if (fd == MPI_BAD_FD || h == NULL)
    return mp__error(MP_EINVAL, "shm: no handle to adopt");
  unsigned char *base = NULL;
  int rc = map_all(h, "shm: adopt", &base);
  if (rc != 0) {
    CloseHandle(h);
    return rc;
  }
  /* The sender finished the header before passing the handle: a magic
   * still 0 is not a segment of ours. */
  rc = check_header(base, "shm: adopt");
  if (rc == 1)
    rc = mp__error(MP_EPROTO, "shm: adopt: not an mproc segment");
  if (rc == 0)
    rc = wrap(h, base, out);
  if (rc != 0) {
    UnmapViewOfFile(base);
    CloseHandle(h);
  }
  return rc;
}

mpi_fd mpi_shm_handle(const mpi_shm *s) { return (mpi_fd)s->mapping; }

void *mpi_shm_addr(const mpi_shm *s) { return s->base + SHM_HEADER; }

size_t mpi_shm_size(const mpi_shm *s) { return s->size; }

/* Nothing: a view's pages come in as they are touched. */
void mpi_shm_prefault(mpi_shm *s) { (void)s; }

void mpi_shm_free(mpi_shm *s) {
  if (s == NULL)
    return;
  for (size_t i = 0; i < s->cap; i++)
    if (s->slots[i].sem != NULL)
      CloseHandle(s->slots[i].sem);
  free(s->slots);
  UnmapViewOfFile(s->base);
  CloseHandle(s->mapping);
  free(s);
}

/* ---- 3. Named segments ------------------------------------------------- */

#define SHM_NAME_MAX 200 /* UTF-8 bytes of the user's name */

/* The OS name for `name` ("Local\" + name unless it already names its
 * namespace) into w.  0 or MP_EINVAL.  A fixed buffer rather than
 * mpi__to_wide: no allocation, and bad UTF-8 is the caller's error
 * (MP_EINVAL), not the system's. */
static int os_name(const char *name, wchar_t *w, size_t cap, int *global) {
  static const char local[] = "Local\\", glob[] = "Global\\";
  if (name == NULL || name[0] == '\0')
    return mp__error(MP_EINVAL, "shm: empty name");
  size_t len = strlen(name);
  if (len > SHM_NAME_MAX)
    return mp__error(MP_EINVAL, "shm: name longer than %d bytes",
                     SHM_NAME_MAX);
  const char *rest = name;
  const char *prefix = local;
  *global = 0;
  if (strncmp(name, local, sizeof local - 1) == 0) {
    rest = name + sizeof local - 1;
    prefix = "";
  } else if (strncmp(name, glob, sizeof glob - 1) == 0) {
    rest = name + sizeof glob - 1;
    prefix = "";
    *global = 1;
  }
  if (rest[0] == '\0')
    return mp__error(MP_EINVAL, "shm: empty name after the namespace");
  if (strchr(rest, '\\') != NULL)
    return mp__error(MP_EINVAL, "shm: name \"%s\" contains a backslash",
                     name);
  size_t n = 0;
  for (; prefix[n] != '\0'; n++)
    w[n] = (wchar_t)prefix[n];
  int m = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, name, -1,
                              w + n, (int)(cap - n));
  if (m <= 0)
    return mp__error(MP_EINVAL, "shm: name is not valid UTF-8");
  return 0;
}

/* "Local\" + 200 bytes of UTF-8 (at most 200 UTF-16 units) + NUL. */
#define OS_NAME_CAP 256

int mpi_shm_create(const char *name, size_t size, mpi_shm **out) {
  wchar_t w[OS_NAME_CAP];
  int global;
  int rc = os_name(name, w, OS_NAME_CAP, &global);
  if (rc != 0)
    return rc;
  return create_section(w, size, SHM_NAMED | (global ? SHM_GLOBAL : 0u),
                        out);
}

int mpi_shm_attach(const char *name, mpi_shm **out) {
  wchar_t w[OS_NAME_CAP];
  int global;
  int rc = os_name(name, w, OS_NAME_CAP, &global);
  if (rc != 0)
    return rc;
  HANDLE h = OpenFileMappingW(FILE_MAP_READ | FILE_MAP_WRITE, FALSE, w);
  if (h == NULL) {
    DWORD err = GetLastError();
    /* ERROR_INVALID_HANDLE: the name belongs to an object of another
     * kind (an event, a semaphore...): there is no such segment. */
    if (err == ERROR_FILE_NOT_FOUND || err == ERROR_INVALID_HANDLE)
      return mp__error(MP_ENOENT, "shm: no segment named \"%s\"", name);
    return mpi__win_error_code(err, "shm: OpenFileMappingW");
  }
  unsigned char *base = NULL;
  rc = map_all(h, "shm: attach", &base);
  if (rc != 0) {
    CloseHandle(h);
    return rc;
  }
  /* Between CreateFileMappingW and the store of the magic the creator's
   * header is incomplete: give it a second. */
  double deadline = mpi_now() + 1.0;
  while ((rc = check_header(base, "shm: attach")) == 1 &&
         mpi_now() < deadline)
    Sleep(1);
  if (rc == 1)
    rc = mp__error(MP_EPROTO, "shm: attach: \"%s\" is not an mproc "
                              "segment (no header after 1 s)",
                   name);
  if (rc == 0)
    rc = wrap(h, base, out);
  if (rc != 0) {
    UnmapViewOfFile(base);
    CloseHandle(h);
  }
  return rc;
}

/* Windows has no unlink: a name lives exactly as long as handles to its
 * section do.  Say whether there is something to unlink. */
int mpi_shm_unlink(const char *name) {
  wchar_t w[OS_NAME_CAP];
  int global;
  int rc = os_name(name, w, OS_NAME_CAP, &global);
  if (rc != 0)
    return rc;
  HANDLE h = OpenFileMappingW(FILE_MAP_READ, FALSE, w);
  if (h != NULL) {
    CloseHandle(h);
    return 0;
  }
  DWORD err = GetLastError();
  if (err == ERROR_FILE_NOT_FOUND || err == ERROR_INVALID_HANDLE)
    return mp__error(MP_ENOENT, "shm: no segment named \"%s\"", name);
  if (err == ERROR_ACCESS_DENIED)
    return 0; /* it exists, though not for us: nothing to do either */
  return mpi__win_error_code(err, "shm: OpenFileMappingW");
}

/* ---- 4. Waiting on a word ---------------------------------------------- */

/* Each word has a semaphore named after its segment's random id and its
 * offset, so every process finds the same one; w->os counts the threads
 * (of all processes) sleeping on the word.
 *
 *   waiter: os += 1; if value != expected: leave; else sleep on the
 *           semaphore; on timeout: leave.
 *   waker:  (value already changed) if os == 0: done.  Else take k
 *           sleepers off os and release k permits.
 *   leave:  os -= 1 if os > 0.  If os is 0, a waker has counted us in
 *           its k: its permit is coming, take it.
 *
 * Every registered waiter leaves either by taking itself off os or by
 * consuming one permit, and a waker releases exactly as many permits as
 * it took off os, so no permit is left over once everyone has left (no
 * spurious wakeups later) and none is missing (no lost wakeups).  The
 * sequentially consistent atomics make "waiter: os += 1, load value"
 * and "waker: store value, load os" safe: one of them sees the other.
 *
 * A process killed while asleep stays counted.  That costs no
 * correctness: a waker takes the dead sleeper off os and releases a
 * permit for it, which some later sleeper takes as a spurious wakeup
 * (callers re-check) without leaving os, so the one extra count lives
 * on and costs at most one spurious wakeup per wake. */

static size_t slot_hash(uint64_t off, size_t cap) {
  return (size_t)(((off >> 2) * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

/* The cached semaphore for offset off, or NULL.  Under s->lock. */
static HANDLE slot_find(const mpi_shm *s, uint64_t off) {
  if (s->cap == 0)
    return NULL;
  for (size_t i = slot_hash(off, s->cap);; i = (i + 1) & (s->cap - 1)) {
    if (s->slots[i].sem == NULL)
      return NULL;
    if (s->slots[i].off == off)
      return s->slots[i].sem;
  }
}

static void slot_put(sem_slot *slots, size_t cap, uint64_t off, HANDLE h) {
  size_t i = slot_hash(off, cap);
  while (slots[i].sem != NULL)
    i = (i + 1) & (cap - 1);
  slots[i].off = off;
  slots[i].sem = h;
}

/* Room for one more entry.  0 or MP_ENOMEM.  Under s->lock (exclusive). */
static int slots_reserve(mpi_shm *s) {
  if ((s->used + 1) * 2 <= s->cap)
    return 0;
  size_t cap = s->cap ? s->cap * 2 : 8;
  sem_slot *slots = calloc(cap, sizeof *slots);
  if (slots == NULL)
    return mp__error(MP_ENOMEM, "shm: out of memory");
  for (size_t i = 0; i < s->cap; i++)
    if (s->slots[i].sem != NULL)
      slot_put(slots, cap, s->slots[i].off, s->slots[i].sem);
  free(s->slots);
  s->slots = slots;
  s->cap = cap;
  return 0;
}

/* The semaphore of the word at offset off: cached, or opened (created if
 * no process has it open now: a fresh one with no permits is then
 * exactly right, since nobody can be sleeping on it).  0 or an error. */
static int word_sem(mpi_shm *s, uint64_t off, HANDLE *out) {
  AcquireSRWLockShared(&s->lock);
  HANDLE h = slot_find(s, off);
  ReleaseSRWLockShared(&s->lock);
  if (h != NULL) {
    *out = h;
    return 0;
  }
  /* Created under the exclusive lock: rare, and two threads of this
   * process then cannot both open it. */
  AcquireSRWLockExclusive(&s->lock);
  int rc = 0;
  h = slot_find(s, off);
  if (h == NULL && (rc = slots_reserve(s)) == 0) {
    wchar_t name[SEM_NAME_MAX];
    size_t n = s->prefix_len;
    memcpy(name, s->sem_prefix, n * sizeof *name);
    n += put_hex_u64(name + n, off);
    name[n] = L'\0';
    SECURITY_DESCRIPTOR sd;
    void *sd_mem = NULL;
    rc = mpi__user_only_sd(&sd, &sd_mem);
    if (rc == 0) {
      SECURITY_ATTRIBUTES sa;
      sa.nLength = sizeof sa;
      sa.lpSecurityDescriptor = &sd;
      sa.bInheritHandle = FALSE;
      h = CreateSemaphoreW(&sa, 0, LONG_MAX, name);
      if (h == NULL)
        rc = mpi__win_error("shm: CreateSemaphoreW for a word");
      free(sd_mem);
    }
    if (rc == 0) {
      slot_put(s->slots, s->cap, off, h);
      s->used++;
    }
  }
  ReleaseSRWLockExclusive(&s->lock);
  *out = h;
  return rc;
}

/* The offset of w in s: 0, or MP_EINVAL if it is not a word there. */
static int word_offset(const mpi_shm *s, const mpi_word *w, uint64_t *off) {
  uintptr_t p = (uintptr_t)w, lo = (uintptr_t)s->base + SHM_HEADER;
  if (p < lo || p - lo > s->size || s->size - (p - lo) < sizeof *w ||
      (p & 3u) != 0)
    return mp__error(MP_EINVAL, "shm: word not in the segment");
  *off = (uint64_t)(p - (uintptr_t)s->base);
  return 0;
}

/* Stop counting ourselves as a sleeper.  Returns 1 when we took
 * ourselves off w->os, 0 when a waker already had (and we consumed the
 * permit it released for us). */
static int leave(HANDLE sem, mpi_word *w) {
  uint32_t n = mp__load32(&w->os);
  while (n > 0)
    if (mp__cas32(&w->os, &n, n - 1))
      return 1;
  /* A waker counted us between its compare-and-swap and its
   * ReleaseSemaphore.  Wait for that permit, or it would wake some later
   * sleeper for nothing.  Bounded: if the waker died in between, the
   * permit never comes, and giving up keeps the count right (we left,
   * and so did the permit meant for us). */
  WaitForSingleObject(sem, 1000);
  return 0;
}

int mpi_word_wait(mpi_shm *s, mpi_word *w, uint32_t expected,
                  double timeout) {
  uint64_t off = 0;
  HANDLE sem = NULL;
  int rc = word_offset(s, w, &off);
  /* The semaphore first: once we are counted, a waker must find one. */
  if (rc == 0)
    rc = word_sem(s, off, &sem);
  if (rc != 0)
    return rc;
  mp__add32(&w->os, 1);
  if (mp__load32(&w->value) != expected) {
    leave(sem, w);
    return 0;
  }
  /* mpi__timeout_ms rounds up: a timeout under 1 ms still sleeps 1 ms. */
  DWORD r = WaitForSingleObject(sem, mpi__timeout_ms(timeout));
  if (r == WAIT_OBJECT_0)
    return 0; /* the waker took us off os */
  if (r == WAIT_TIMEOUT)
    return leave(sem, w) ? mp__error(MP_ETIMEDOUT, "wait timed out") : 0;
  rc = mpi__win_error("shm: WaitForSingleObject on a word");
  leave(sem, w);
  return rc;
}

void mpi_word_wake(mpi_shm *s, mpi_word *w, int all) {
  /* No sleeper: no system call.  This is the common case of every
   * unlock and every put. */
  uint32_t n = mp__load32(&w->os);
  if (n == 0)
    return;
  uint64_t off = 0;
  HANDLE sem = NULL;
  /* Nothing to report to: a failure (out of handles or memory) leaves
   * the sleepers counted, asleep until their timeout or a later wake. */
  if (word_offset(s, w, &off) != 0 || word_sem(s, off, &sem) != 0)
    return;
  uint32_t k = 0;
  for (;;) {
    k = all ? n : 1;
    if (k > (uint32_t)LONG_MAX)
      k = (uint32_t)LONG_MAX;
    if (mp__cas32(&w->os, &n, n - k))
      break;
    if (n == 0)
      return; /* they left (timed out) meanwhile */
  }
  ReleaseSemaphore(sem, (LONG)k, NULL);
}

/* ---- 5. Process liveness ----------------------------------------------- */

int mpi_pid_alive(int64_t pid) {
  if (pid == mpi_getpid())
    return 1;
  if (pid <= 0 || pid > (int64_t)UINT32_MAX)
    return 0;
  HANDLE h = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION,
                         FALSE, (DWORD)pid);
  if (h == NULL)
    /* No such process: ERROR_INVALID_PARAMETER.  Access denied means it
     * exists; any other failure: we cannot tell, and calling a live
     * process dead (taking its locks) is the worse mistake. */
    return GetLastError() == ERROR_INVALID_PARAMETER ? 0 : 1;
  /* A process that has ended stays an object while handles to it remain:
   * it is signalled then. */
  int alive = WaitForSingleObject(h, 0) != WAIT_OBJECT_0;
  CloseHandle(h);
  return alive;
}
