/*
 * posix/shm.c - shared memory segments, waiting on a word, liveness.
 *
 * Parts:
 *   1. segments: a header of our own, then the caller's bytes
 *   2. anonymous segments: memfd (Linux) or shm_open + shm_unlink at once
 *   3. named segments and their tracker process
 *   4. waiting on a word: futex (Linux), ulock (macOS), umtx (FreeBSD)
 *   5. process liveness
 *
 * Why a tracker: a POSIX shm name outlives every process until someone
 * unlinks it, so a crash leaks it (Python's resource tracker counts names
 * per process and gets this wrong both ways).  Here each named segment
 * gets one tiny process, forked when the segment is created, that holds
 * a listening Unix socket.  Every process using the segment keeps one
 * connection to it; the kernel closes that connection when the process
 * ends however it ends.  When the last connection goes, the tracker
 * unlinks the name and exits.  Users are counted, not names.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
#  define _DARWIN_C_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__)
#  include <linux/futex.h>
#  include <sys/syscall.h>
#endif
#if defined(__APPLE__)
#  include <libproc.h>
#  include <sys/proc_info.h>
#endif
#if defined(__FreeBSD__)
#  include <sys/types.h>
#  include <sys/umtx.h>
#endif

#include "../atomic.h"
#include "internal.h"

/* ---- 1. Segments -------------------------------------------------------- */

#define SHM_MAGIC 0x4753504du /* "MPSG" */
#define SHM_VERSION 1u
#define SHM_HEADER 256u /* mpi_shm_addr is base + this: 64-byte aligned */
#define SHM_ADDR_MAX 200u

typedef struct shm_header {
  volatile uint32_t magic; /* written last: a reader never sees half */
  uint32_t version;
  uint64_t size;           /* usable bytes after the header */
  uint32_t named;
  uint32_t reserved;
  unsigned char id[16];    /* random: tells this segment from a namesake */
  char tracker[SHM_ADDR_MAX]; /* named: the tracker's socket address */
} shm_header;

struct mpi_shm {
  int fd;
  int tracker_fd; /* named: our connection to the tracker, or -1 */
  unsigned char *base;
  size_t map_len;
  size_t size;
};

static int shm_fail(int code, const char *what) {
  return mp__error(code, "%s: %s", what, strerror(errno));
}

/* The segment for mapping p (len bytes) of fd; unmaps p on failure. */
static int shm_wrap(int fd, void *p, size_t len, size_t size, mpi_shm **out) {
  mpi_shm *s = malloc(sizeof *s);
  if (s == NULL) {
    munmap(p, len);
    return mp__error(MP_ENOMEM, "out of memory");
  }
  s->fd = fd;
  s->tracker_fd = -1;
  s->base = p;
  s->map_len = len;
  s->size = size;
  *out = s;
  return 0;
}

/* Map fd (st_size bytes) and check the header; the segment takes fd. */
static int map_segment(int fd, mpi_shm **out) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return shm_fail(MP_EOS, "fstat of a shared memory segment");
  if ((uint64_t)st.st_size < SHM_HEADER)
    return mp__error(MP_EPROTO, "not an mproc shared memory segment");
  size_t len = (size_t)st.st_size;
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return shm_fail(MP_EOS, "mmap of a shared memory segment");
  shm_header *h = p;
  if (mp__load32(&h->magic) != SHM_MAGIC || h->version != SHM_VERSION ||
      h->size > len - SHM_HEADER) {
    munmap(p, len);
    return mp__error(MP_EPROTO, "not an mproc shared memory segment");
  }
  return shm_wrap(fd, p, len, (size_t)h->size, out);
}

/* Size the new segment behind fd, map it and write the header. */
static int init_segment(int fd, size_t size, int named, mpi_shm **out) {
  if (size == 0 || size > (size_t)INT64_MAX - SHM_HEADER)
    return mp__error(MP_EINVAL, "shared memory size %zu is not valid", size);
  size_t len = SHM_HEADER + size;
  if (ftruncate(fd, (off_t)len) != 0)
    return shm_fail(errno == EFBIG || errno == EINVAL ? MP_EINVAL : MP_EOS,
                    "sizing a shared memory segment");
#if defined(__linux__)
  /* A named segment lives in /dev/shm, which may be small (containers):
   * reserve the pages now, so that a full /dev/shm is an error here and
   * not a SIGBUS at first touch. */
  if (named) {
    int rc = posix_fallocate(fd, 0, (off_t)len);
    if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
      errno = rc;
      return shm_fail(MP_ENOMEM, "reserving shared memory (is /dev/shm full?)");
    }
  }
#endif
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return shm_fail(MP_EOS, "mmap of a shared memory segment");
  shm_header *h = p;
  h->version = SHM_VERSION;
  h->size = size;
  h->named = (uint32_t)named;
  if (mpi_random(h->id, sizeof h->id) != 0) {
    munmap(p, len);
    return MP_EOS;
  }
  return shm_wrap(fd, p, len, size, out);
}

mpi_fd mpi_shm_handle(const mpi_shm *s) { return (mpi_fd)s->fd; }
void *mpi_shm_addr(const mpi_shm *s) { return s->base + SHM_HEADER; }
size_t mpi_shm_size(const mpi_shm *s) { return s->size; }

void mpi_shm_free(mpi_shm *s) {
  if (s == NULL)
    return;
  munmap(s->base, s->map_len);
  close(s->fd);
  if (s->tracker_fd >= 0)
    close(s->tracker_fd); /* the tracker counts one user fewer */
  free(s);
}

/* ---- 2. Anonymous segments ---------------------------------------------- */

static int anon_fd(void) {
#if defined(__linux__) && defined(SYS_memfd_create)
  /* memfd needs no /dev/shm at all (containers without one work). */
  int fd = (int)syscall(SYS_memfd_create, "mproc", 1u /* MFD_CLOEXEC */);
  if (fd >= 0 || errno != ENOSYS)
    return fd;
#endif
  /* A random name that exists only between these two calls. */
  for (int tries = 0; tries < 16; tries++) {
    unsigned char r[8];
    char name[40];
    if (mpi_random(r, sizeof r) != 0)
      return -1;
    snprintf(name, sizeof name, "/mp-%ld-%02x%02x%02x%02x%02x%02x%02x%02x",
             (long)getpid() % 10000000, r[0], r[1], r[2], r[3], r[4], r[5],
             r[6], r[7]);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd >= 0) {
      shm_unlink(name);
      fcntl(fd, F_SETFD, FD_CLOEXEC);
      return fd;
    }
    if (errno != EEXIST)
      return -1;
  }
  errno = EEXIST;
  return -1;
}

int mpi_shm_new(size_t size, mpi_shm **out) {
  if (size == 0)
    return mp__error(MP_EINVAL, "shared memory size must be positive");
  int fd = anon_fd();
  if (fd < 0)
    return shm_fail(errno == EMFILE || errno == ENFILE ? MP_ENOMEM : MP_EOS,
                    "creating shared memory");
  mpi_shm *s = NULL;
  int rc = init_segment(fd, size, 0, &s);
  if (rc != 0) {
    close(fd);
    return rc;
  }
  mp__store32(&((shm_header *)s->base)->magic, SHM_MAGIC);
  *out = s;
  return 0;
}

static int tracker_join(mpi_shm *s);

int mpi_shm_adopt(mpi_fd h, mpi_shm **out) {
  int fd = (int)h;
  mpi_shm *s = NULL;
  int rc = map_segment(fd, &s);
  if (rc != 0) {
    close(fd);
    return rc;
  }
  if (((shm_header *)s->base)->named && (rc = tracker_join(s)) != 0) {
    mpi_shm_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

/* ---- 3. Named segments and the tracker ---------------------------------- */

/* The OS name: "/" + name when it fits every platform's limit (macOS
 * allows 31 bytes with the slash), else "/mph-" + a 64-bit FNV-1a hash of
 * it, so that one name means one segment on Linux and macOS alike. */
static int os_name(const char *name, char *out, size_t cap) {
  if (name == NULL)
    return mp__error(MP_EINVAL, "shared memory name is NULL");
  if (name[0] == '/')
    name++;
  size_t n = strlen(name);
  if (n == 0 || n > 255)
    return mp__error(MP_EINVAL, "shared memory name must have 1 to 255 "
                                "characters");
  if (strchr(name, '/') != NULL)
    return mp__error(MP_EINVAL, "shared memory name \"%s\" contains '/'",
                     name);
  if (n <= 30) {
    snprintf(out, cap, "/%s", name);
    return 0;
  }
  uint64_t hash = 0xcbf29ce484222325u;
  for (size_t i = 0; i < n; i++) {
    hash ^= (unsigned char)name[i];
    hash *= 0x100000001b3u;
  }
  snprintf(out, cap, "/mph-%016llx", (unsigned long long)hash);
  return 0;
}

/* Fill a sockaddr_un from a stored address ('@' = Linux abstract). */
static socklen_t tracker_sockaddr(const char *addr, struct sockaddr_un *sa) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  size_t n = strnlen(addr, SHM_ADDR_MAX);
  if (n == 0 || n >= sizeof sa->sun_path)
    return 0;
  memcpy(sa->sun_path, addr, n);
  if (addr[0] == '@')
    sa->sun_path[0] = '\0';
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

/* Connect to the tracker and wait for its one-byte welcome: then we are
 * counted.  A tracker that is gone (its last user left, so it is removing
 * the name) refuses us: MP_ENOENT. */
static int tracker_join(mpi_shm *s) {
  shm_header *h = (shm_header *)s->base;
  char addr[SHM_ADDR_MAX];
  memcpy(addr, h->tracker, sizeof addr);
  addr[SHM_ADDR_MAX - 1] = '\0';
  struct sockaddr_un sa;
  socklen_t len = tracker_sockaddr(addr, &sa);
  if (len == 0)
    return mp__error(MP_EPROTO, "shared memory segment has no tracker");
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0)
    return shm_fail(MP_EOS, "socket");
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  if (connect(fd, (struct sockaddr *)&sa, len) != 0) {
    close(fd);
    return mp__error(MP_ENOENT, "shared memory segment is being removed "
                                "(its last user has left)");
  }
  struct pollfd p = {fd, POLLIN, 0};
  char ok = 0;
  int r;
  do
    r = poll(&p, 1, 10000);
  while (r < 0 && errno == EINTR);
  if (r != 1 || read(fd, &ok, 1) != 1 || ok != 'A') {
    close(fd);
    return mp__error(MP_ENOENT, "shared memory segment is being removed "
                                "(its tracker did not answer)");
  }
  s->tracker_fd = fd;
  return 0;
}

/* The tracker's memory comes from mmap: it is a fork child of a process
 * that may have threads, so it must not call malloc. */
typedef struct tracker_state {
  struct pollfd *fds; /* fds[0] is the listening socket */
  size_t n, cap;
} tracker_state;

static int tracker_grow(tracker_state *t) {
  size_t cap = t->cap ? t->cap * 2 : 64;
  void *p = mmap(NULL, cap * sizeof *t->fds, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return -1;
  if (t->fds != NULL) {
    memcpy(p, t->fds, t->n * sizeof *t->fds);
    munmap(t->fds, t->cap * sizeof *t->fds);
  }
  t->fds = p;
  t->cap = cap;
  return 0;
}

/* Remove the name, but only if it is still our segment (after an explicit
 * unlink someone may have created a namesake). */
static void tracker_remove(const char *name, const unsigned char *id) {
  int fd = shm_open(name, O_RDWR, 0);
  if (fd < 0)
    return;
  void *p = mmap(NULL, SHM_HEADER, PROT_READ, MAP_SHARED, fd, 0);
  if (p != MAP_FAILED) {
    if (memcmp(((shm_header *)p)->id, id, 16) == 0)
      shm_unlink(name);
    munmap(p, SHM_HEADER);
  }
  close(fd);
}

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

static void tracker_main(int lfd, const char *name, const unsigned char *id,
                         const char *path, const char *dir) {
  /* Outlive the session and ignore the signals a terminal or a process
   * group sends: only SIGKILL stops the tracker early. */
  setsid();
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  /* Hold nothing of the creator's: not its pipes (whoever reads our
   * stdout must see EOF when the creator ends), not its other files. */
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
  }
  if (dup2(lfd, 3) < 0)
    _exit(1);
  close_from(4);
  tracker_state t = {NULL, 0, 0};
  if (tracker_grow(&t) != 0)
    _exit(1);
  t.fds[0].fd = 3;
  t.fds[0].events = POLLIN;
  t.n = 1;
  size_t seen = 0;
  while (seen == 0 || t.n > 1) {
    int r = poll(t.fds, (nfds_t)t.n, -1);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    for (size_t i = t.n; i-- > 1;) {
      if (t.fds[i].revents == 0)
        continue;
      char buf[64];
      ssize_t got = read(t.fds[i].fd, buf, sizeof buf);
      if (got > 0 || (got < 0 && (errno == EINTR || errno == EAGAIN)))
        continue; /* users send nothing; ignore whatever came */
      close(t.fds[i].fd);
      t.fds[i] = t.fds[--t.n];
    }
    if (t.fds[0].revents & POLLIN) {
      int c = accept(3, NULL, NULL);
      if (c >= 0) {
        if (t.n == t.cap && tracker_grow(&t) != 0) {
          close(c);
          continue;
        }
        (void)!write(c, "A", 1);
        t.fds[t.n].fd = c;
        t.fds[t.n].events = POLLIN;
        t.fds[t.n].revents = 0;
        t.n++;
        seen++;
      }
    }
  }
  /* Last user gone.  Refuse newcomers first (a connection still queued
   * is reset, and its attach fails cleanly), then remove the name. */
  close(3);
  tracker_remove(name, id);
  if (path[0] != '\0') {
    unlink(path);
    rmdir(dir);
  }
  _exit(0);
}

/* Start the tracker for a new named segment: bind its socket, connect our
 * own user connection, fork twice (the tracker must not be our child),
 * then wait for its welcome. */
static int tracker_start(mpi_shm *s, const char *name) {
  shm_header *h = (shm_header *)s->base;
  char addr[SHM_ADDR_MAX] = "";
  char path[SHM_ADDR_MAX] = "", dir[SHM_ADDR_MAX] = "";
  char hex[33];
  for (int i = 0; i < 16; i++)
    snprintf(hex + 2 * i, 3, "%02x", h->id[i]);
#if defined(__linux__)
  snprintf(addr, sizeof addr, "@mproc-shm-%s", hex);
#else
  const char *tmp = getenv("TMPDIR");
  if (tmp == NULL || tmp[0] == '\0' || strlen(tmp) > 60)
    tmp = "/tmp";
  snprintf(dir, sizeof dir, "%s/mproc-XXXXXX", tmp);
  if (mkdtemp(dir) == NULL) /* 0700: only we can reach the socket */
    return shm_fail(MP_EOS, "creating the shared memory tracker's directory");
  snprintf(path, sizeof path, "%s/t", dir);
  snprintf(addr, sizeof addr, "%s", path);
#endif
  struct sockaddr_un sa;
  socklen_t len = tracker_sockaddr(addr, &sa);
  int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (lfd < 0 || len == 0) {
    if (lfd >= 0)
      close(lfd);
    if (dir[0])
      rmdir(dir);
    return shm_fail(MP_EOS, "tracker socket");
  }
  fcntl(lfd, F_SETFD, FD_CLOEXEC);
  if (bind(lfd, (struct sockaddr *)&sa, len) != 0 || listen(lfd, 128) != 0) {
    int rc = shm_fail(MP_EOS, "binding the shared memory tracker's socket");
    close(lfd);
    if (path[0])
      unlink(path);
    if (dir[0])
      rmdir(dir);
    return rc;
  }
  memcpy(h->tracker, addr, sizeof h->tracker);
  fflush(NULL);
  pid_t mid = fork();
  if (mid < 0) {
    int rc = shm_fail(MP_EOS, "fork of the shared memory tracker");
    close(lfd);
    if (path[0])
      unlink(path);
    if (dir[0])
      rmdir(dir);
    return rc;
  }
  if (mid == 0) {
    if (fork() == 0)
      tracker_main(lfd, name, h->id, path, dir);
    _exit(0);
  }
  close(lfd);
  int st;
  while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
    ;
  return tracker_join(s);
}

int mpi_shm_create(const char *name, size_t size, mpi_shm **out) {
  char os[40 + 256];
  int rc = os_name(name, os, sizeof os);
  if (rc != 0)
    return rc;
  if (size == 0)
    return mp__error(MP_EINVAL, "shared memory size must be positive");
  int fd = shm_open(os, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0)
    return errno == EEXIST
               ? mp__error(MP_EEXIST, "shared memory \"%s\" exists", name)
               : shm_fail(errno == EACCES ? MP_EPERM : MP_EOS, "shm_open");
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  mpi_shm *s = NULL;
  rc = init_segment(fd, size, 1, &s);
  if (rc == 0 && (rc = tracker_start(s, os)) != 0)
    mpi_shm_free(s);
  else if (rc != 0)
    close(fd);
  if (rc != 0) {
    shm_unlink(os);
    return rc;
  }
  mp__store32(&((shm_header *)s->base)->magic, SHM_MAGIC);
  *out = s;
  return 0;
}

int mpi_shm_attach(const char *name, mpi_shm **out) {
  char os[40 + 256];
  int rc = os_name(name, os, sizeof os);
  if (rc != 0)
    return rc;
  int fd = shm_open(os, O_RDWR, 0);
  if (fd < 0)
    return errno == ENOENT
               ? mp__error(MP_ENOENT, "no shared memory \"%s\"", name)
               : shm_fail(errno == EACCES ? MP_EPERM : MP_EOS, "shm_open");
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  /* The creator sizes the segment, starts its tracker and writes the
   * magic last; give it a moment if we came in between. */
  double deadline = mpi_now() + 5.0;
  for (;;) {
    struct stat st;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= SHM_HEADER) {
      mpi_shm *s = NULL;
      rc = map_segment(fd, &s);
      if (rc == 0) {
        if ((rc = tracker_join(s)) != 0) {
          mpi_shm_free(s);
          return rc;
        }
        *out = s;
        return 0;
      }
    }
    if (mpi_now() > deadline) {
      close(fd);
      return mp__error(MP_EPROTO, "\"%s\" is not an mproc shared memory "
                                  "segment", name);
    }
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

int mpi_shm_unlink(const char *name) {
  char os[40 + 256];
  int rc = os_name(name, os, sizeof os);
  if (rc != 0)
    return rc;
  if (shm_unlink(os) != 0)
    return errno == ENOENT
               ? mp__error(MP_ENOENT, "no shared memory \"%s\"", name)
               : shm_fail(errno == EACCES ? MP_EPERM : MP_EOS, "shm_unlink");
  return 0;
}

/* ---- 4. Waiting on a word ----------------------------------------------- */

#if defined(__APPLE__)
/* The kernel interface under libc++'s std::atomic wait (macOS 10.12+). */
extern int __ulock_wait(uint32_t op, void *addr, uint64_t value,
                        uint32_t timeout_us);
extern int __ulock_wake(uint32_t op, void *addr, uint64_t wake_value);
#  define MPI_UL_COMPARE_AND_WAIT_SHARED 3u
#  define MPI_ULF_WAKE_ALL 0x100u
#endif

int mpi_word_wait(mpi_shm *s, mpi_word *w, uint32_t expected,
                  double timeout) {
  (void)s;
  if (timeout == 0)
    return mp__load32(&w->value) == expected ? MP_ETIMEDOUT : 0;
#if defined(__linux__)
  struct timespec ts, *tp = NULL;
  if (timeout > 0) {
    ts.tv_sec = (time_t)timeout;
    ts.tv_nsec = (long)((timeout - (double)ts.tv_sec) * 1e9);
    tp = &ts;
  }
  long r = syscall(SYS_futex, (uint32_t *)&w->value, FUTEX_WAIT, expected,
                   tp, NULL, 0);
  return r != 0 && errno == ETIMEDOUT ? MP_ETIMEDOUT : 0;
#elif defined(__APPLE__)
  uint32_t us = 0; /* 0: no limit */
  if (timeout > 0)
    us = timeout >= 4000.0 ? 4000000000u : (uint32_t)(timeout * 1e6) + 1;
  int r = __ulock_wait(MPI_UL_COMPARE_AND_WAIT_SHARED, (void *)&w->value,
                       expected, us);
  return r < 0 && errno == ETIMEDOUT ? MP_ETIMEDOUT : 0;
#elif defined(__FreeBSD__)
  struct _umtx_time ut;
  memset(&ut, 0, sizeof ut);
  ut._clockid = CLOCK_MONOTONIC;
  if (timeout > 0) {
    ut._timeout.tv_sec = (time_t)timeout;
    ut._timeout.tv_nsec =
        (long)((timeout - (double)ut._timeout.tv_sec) * 1e9);
  }
  int r = _umtx_op((void *)&w->value, UMTX_OP_WAIT_UINT, expected,
                   timeout > 0 ? (void *)(uintptr_t)sizeof ut : NULL,
                   timeout > 0 ? &ut : NULL);
  return r != 0 && errno == ETIMEDOUT ? MP_ETIMEDOUT : 0;
#else
  /* No futex: poll the word, backing off to 1 ms. */
  double deadline = timeout > 0 ? mpi_now() + timeout : -1;
  long ns = 20000;
  while (mp__load32(&w->value) == expected) {
    if (deadline > 0 && mpi_now() >= deadline)
      return MP_ETIMEDOUT;
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
    if (ns < 1000000)
      ns *= 2;
  }
  return 0;
#endif
}

void mpi_word_wake(mpi_shm *s, mpi_word *w, int all) {
  (void)s;
#if defined(__linux__)
  syscall(SYS_futex, (uint32_t *)&w->value, FUTEX_WAKE, all ? INT_MAX : 1,
          NULL, NULL, 0);
#elif defined(__APPLE__)
  __ulock_wake(MPI_UL_COMPARE_AND_WAIT_SHARED | (all ? MPI_ULF_WAKE_ALL : 0),
               (void *)&w->value, 0);
#elif defined(__FreeBSD__)
  _umtx_op((void *)&w->value, UMTX_OP_WAKE, all ? INT_MAX : 1, NULL, NULL);
#else
  (void)w;
  (void)all;
#endif
}

/* ---- 5. Liveness -------------------------------------------------------- */

int mpi_pid_alive(int64_t pid) {
  if (pid <= 0 || pid > INT_MAX)
    return 0;
  if (pid == mpi_getpid())
    return 1;
  if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
    return 0;
  /* It exists; a zombie (ended, not yet reaped) has ended all the same. */
#if defined(__linux__)
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : 1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  const char *paren = strrchr(buf, ')'); /* the name may hold spaces */
  return paren == NULL || paren[1] != ' ' ||
                 (paren[2] != 'Z' && paren[2] != 'X')
             ? 1
             : 0;
#elif defined(__APPLE__)
  struct proc_bsdinfo info;
  if (proc_pidinfo((int)pid, PROC_PIDTBSDINFO, 0, &info, sizeof info) ==
      (int)sizeof info)
    return info.pbi_status == SZOMB ? 0 : 1;
  return 1;
#else
  return 1;
#endif
}
