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
 * gets one tiny process, started before the name exists (it creates the
 * name itself, see part 3 for why), that holds a listening Unix socket.
 * Every process using the segment keeps one connection to it (the
 * creator: a socket pair made before the tracker); the kernel closes that
 * connection when the process ends however it ends.  When the last
 * connection goes, the tracker unlinks the name and exits.  Users are
 * counted, not names, and only the owner's uid counts.
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
/* p_stat of a zombie (sys/proc.h; not declared in every SDK's). */
#  if defined(SZOMB)
#    define MPI_SZOMB SZOMB
#  else
#    define MPI_SZOMB 5
#  endif
#endif
#if defined(__FreeBSD__)
#  include <sys/types.h>
#  include <sys/umtx.h>
#endif

#include "../atomic.h"
#include "internal.h"

#if !defined(MSG_NOSIGNAL)
#  define MSG_NOSIGNAL 0 /* SO_NOSIGPIPE is set instead (and T ignores it) */
#endif

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

/* Size the new anonymous segment behind fd, map it and write the header
 * (a named one is made by its tracker: part 3). */
static int init_segment(int fd, size_t size, mpi_shm **out) {
  if (size == 0 || size > (size_t)INT64_MAX - SHM_HEADER)
    return mp__error(MP_EINVAL, "shared memory size %zu is not valid", size);
  size_t len = SHM_HEADER + size;
  if (ftruncate(fd, (off_t)len) != 0)
    return shm_fail(errno == EFBIG || errno == EINVAL ? MP_EINVAL : MP_EOS,
                    "sizing a shared memory segment");
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return shm_fail(MP_EOS, "mmap of a shared memory segment");
  shm_header *h = p;
  h->version = SHM_VERSION;
  h->size = size;
  h->named = 0;
  if (mpi_random(h->id, sizeof h->id) != 0) {
    munmap(p, len);
    return MP_EOS;
  }
  return shm_wrap(fd, p, len, size, out);
}

mpi_fd mpi_shm_handle(const mpi_shm *s) { return (mpi_fd)s->fd; }
void *mpi_shm_addr(const mpi_shm *s) { return s->base + SHM_HEADER; }
size_t mpi_shm_size(const mpi_shm *s) { return s->size; }

void mpi_shm_prefault(mpi_shm *s) {
#ifdef MADV_POPULATE_WRITE
  if (madvise(s->base, s->map_len, MADV_POPULATE_WRITE) == 0)
    return;
#endif
  long page = sysconf(_SC_PAGESIZE);
  volatile const unsigned char *p = s->base;
  for (size_t at = 0; page > 0 && at < s->map_len; at += (size_t)page)
    (void)p[at];
}

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
  int rc = init_segment(fd, size, &s);
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

/*
 * Creating a named segment, crash-safe at every instruction boundary.
 *
 * The rule: the name never exists without a tracker that already counts
 * the creator as a user.  So the tracker T is started first, attached to
 * the creator C by a socket pair ("the link") made before T exists, and
 * it is T, not C, that creates the name.  The order, and what a SIGKILL of
 * the creator at each point leaves:
 *
 *  C1 C checks the name, draws the segment id, prepares T's address
 *     (Linux: abstract "@mproc-shm-<id>"; elsewhere a mkdtemp template)
 *     and takes the start lock (so that mproc's own children started by
 *     other threads do not inherit the link's far end).
 *     Killed: nothing exists outside C.
 *  C2 C makes the link (CLOEXEC) and forks a middle process M.
 *     Killed before the fork: the kernel closes the link.  Killed after:
 *     M runs on (it is not C): it forks T and exits at once.
 *  M  forks T and exits (so that T is nobody's child and is reaped by
 *     init); its copies of the link go with it.
 *  C3 C closes its copy of T's end, drops the start lock, reaps M, and
 *     waits for T's welcome on its end of the link (no timeout: T
 *     answers, or dies and the kernel closes T's end: end-of-file).
 *     Killed anywhere from C2 on: T holds its end of the link, whose
 *     only other copies (C's, M's) the kernel closes when they end; so
 *     T's first user is gone before T even asks, and it ends (T4) after
 *     removing whatever it made.  T never waits for a creator that died.
 *  T1 T: setsid, ignores the terminal's signals, keeps only the link
 *     (as fd 3) and /dev/null, binds and listens on its address
 *     (elsewhere than Linux: in a fresh 0700 directory).
 *  T2 T: shm_open(O_CREAT | O_EXCL, 0600): from here the name exists,
 *     and T knows it made it.  It sizes the segment (ftruncate: once, as
 *     macOS wants; Linux: posix_fallocate, so a full /dev/shm is an
 *     error now, not a SIGBUS later) and writes the header (everything
 *     but the magic: version, size, id, its address) through a small
 *     mapping.  On any failure T unlinks the name itself before it
 *     answers, so that a failed create leaves nothing and a retry does
 *     not meet MP_EEXIST.
 *  T3 T sends the welcome: 'A' with the segment's descriptor, or an
 *     error code and errno (then it cleans up and exits).  If C is dead
 *     by now, the send fails or goes nowhere, and T4 finds no user.
 *  T4 T's loop: poll the listener, the link and every accepted user;
 *     accept only peers of the owner's uid (SO_PEERCRED / getpeereid:
 *     an abstract socket is open to every local user).  When the last
 *     user is gone, the link included: close the listener (queued
 *     connections are reset: their attach fails cleanly), unlink the
 *     name if it still holds our id (after an explicit unlink it may be
 *     a namesake's), remove the socket's directory, exit.
 *  C4 C maps the segment (a failure unlinks the name, as T2 does) and
 *     stores the magic last; attachers wait for it.  Killed: T sees the
 *     link close and unlinks the name.  Killed after: the same, as for
 *     any user: the segment is released when C ends, however it ends.
 *
 * Only T itself being SIGKILLed (after T2) can leak the name; nothing
 * but SIGKILL stops it early.
 *
 * Test-only hooks (tests/test_shmem.c; set them in tests only):
 *   MPROC_TEST_SHM_KILL_AT=k   mpi_shm_create raises SIGKILL at stage k
 *                              (SHM_STAGE below, 0..7, in order)
 *   MPROC_TEST_SHM_TRACE=path  a tracker appends "<pid> <address>\n" to
 *                              path when it starts
 *   MPROC_TEST_SHM_PEER_UID=u  trackers accept uid u only (on top of the
 *                              owner check: it can only refuse more), so
 *                              a test not run as root can play a stranger
 */

static int shm_kill_at(void) {
  const char *e = getenv("MPROC_TEST_SHM_KILL_AT");
  return e != NULL && e[0] != '\0' ? atoi(e) : -1;
}
#define SHM_STAGE(k)                                                         \
  do {                                                                       \
    if (kill_at == (k))                                                      \
      raise(SIGKILL);                                                        \
  } while (0)

static void shm_trace(const char *path, const char *addr) {
  if (path == NULL || path[0] == '\0')
    return;
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return;
  char line[SHM_ADDR_MAX + 32];
  int n = snprintf(line, sizeof line, "%ld %s\n", (long)getpid(), addr);
  if (n > 0)
    (void)!write(fd, line, (size_t)n);
  close(fd);
}

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
 * the name) refuses us: MP_ENOENT; one that does not know our uid:
 * MP_EPERM. */
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
    if (ok == 'U')
      return mp__error(MP_EPERM, "the shared memory segment's tracker "
                                 "serves its owner's uid only");
    return mp__error(MP_ENOENT, "shared memory segment is being removed "
                                "(its tracker did not answer)");
  }
  s->tracker_fd = fd;
  return 0;
}

/* The tracker's memory comes from mmap: it is a fork child of a process
 * that may have threads, so it must not call malloc. */
typedef struct tracker_state {
  struct pollfd *fds; /* [0] the listener, [1] the link, then users */
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
 * unlink someone may have created a namesake, maybe still without its
 * header: too short to be ours, and not to be mapped, or a read past its
 * end would be a SIGBUS). */
static void tracker_remove(const char *name, const unsigned char *id) {
  int fd = shm_open(name, O_RDWR, 0);
  if (fd < 0)
    return;
  struct stat st;
  if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= SHM_HEADER) {
    void *p = mmap(NULL, SHM_HEADER, PROT_READ, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) {
      if (memcmp(((shm_header *)p)->id, id, 16) == 0)
        shm_unlink(name);
      munmap(p, SHM_HEADER);
    }
  }
  close(fd);
}

/* Is the peer of accepted connection c the owner (our effective uid, and
 * the test hook's uid when set)?  An abstract socket has no permissions,
 * and a socket file's directory keeps out everyone but us and root. */
static int peer_allowed(int c, long only_uid) {
  uid_t uid;
#if defined(__linux__)
  struct ucred cr;
  socklen_t len = sizeof cr;
  if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 ||
      len != sizeof cr)
    return 0;
  uid = cr.uid;
#else
  gid_t gid;
  if (getpeereid(c, &uid, &gid) != 0)
    return 0;
#endif
  return uid == geteuid() && (only_uid < 0 || (long)uid == only_uid);
}

/* What the tracker tells its creator (T3), with the descriptor on 'A'. */
enum {
  TW_OK = 'A',
  TW_EXISTS = 'E',  /* shm_open: the name is taken */
  TW_OPEN = 'O',    /* shm_open failed otherwise (err) */
  TW_SIZE = 'S',    /* ftruncate or posix_fallocate failed (err) */
  TW_LISTEN = 'L',  /* the tracker's socket (err) */
  TW_MAP = 'M'      /* mapping the header (err) */
};
typedef struct tracker_welcome {
  int code;
  int err;
} tracker_welcome;

/* What the creator hands its tracker (the tracker gets a copy in fork). */
typedef struct tracker_args {
  const char *name; /* the OS name */
  size_t size;      /* usable bytes */
  unsigned char id[16];
  char addr[SHM_ADDR_MAX]; /* Linux: the abstract address */
  char dir[96];            /* elsewhere: the mkdtemp template */
  const char *trace;       /* test hook, or NULL */
  long only_uid;           /* test hook, or -1 */
} tracker_args;

static void tracker_send(int link, int code, int err, int fd) {
  tracker_welcome w = {code, err};
  struct iovec iov = {&w, sizeof w};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } cm;
  memset(&cm, 0, sizeof cm);
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (fd >= 0) {
    msg.msg_control = cm.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int));
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t r;
  do
    r = sendmsg(link, &msg, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  /* A dead creator: nothing to tell; the loop finds the link closed. */
}

/* T1-T2: the listener and the segment, or an answer explaining why not. */
static int tracker_setup(tracker_args *a, int link, int *lfd_out,
                         char *path) {
  char addr[SHM_ADDR_MAX];
  memcpy(addr, a->addr, sizeof addr);
  path[0] = '\0';
  if (a->dir[0] != '\0') {
    if (mkdtemp(a->dir) == NULL) { /* 0700: only we (and root) get in */
      tracker_send(link, TW_LISTEN, errno, -1);
      return -1;
    }
    snprintf(path, SHM_ADDR_MAX, "%s/t", a->dir);
    memcpy(addr, path, SHM_ADDR_MAX);
  }
  shm_trace(a->trace, addr); /* before the name can exist */
  struct sockaddr_un sa;
  socklen_t len = tracker_sockaddr(addr, &sa);
  int lfd = len == 0 ? -1 : socket(AF_UNIX, SOCK_STREAM, 0);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, len) != 0 ||
      listen(lfd, 128) != 0) {
    int err = len == 0 ? ENAMETOOLONG : errno;
    if (lfd >= 0)
      close(lfd);
    tracker_send(link, TW_LISTEN, err, -1);
    return -1;
  }
  int fd = shm_open(a->name, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    int err = errno;
    close(lfd);
    tracker_send(link, err == EEXIST ? TW_EXISTS : TW_OPEN, err, -1);
    return -1;
  }
  /* From here the name is ours: every failure removes it. */
  size_t total = SHM_HEADER + a->size;
  int code = 0, err = 0;
  if (ftruncate(fd, (off_t)total) != 0) {
    code = TW_SIZE;
    err = errno;
  }
#if defined(__linux__)
  /* /dev/shm may be small (containers): reserve the pages now, so that a
   * full /dev/shm is an error here and not a SIGBUS at first touch. */
  if (code == 0) {
    int rc = posix_fallocate(fd, 0, (off_t)total);
    if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
      code = TW_SIZE;
      err = rc;
    }
  }
#endif
  void *p = MAP_FAILED;
  if (code == 0) {
    p = mmap(NULL, SHM_HEADER, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      code = TW_MAP;
      err = errno;
    }
  }
  if (code != 0) {
    shm_unlink(a->name);
    close(fd);
    close(lfd);
    tracker_send(link, code, err, -1);
    return -1;
  }
  shm_header *h = p; /* the magic is the creator's, and last */
  h->version = SHM_VERSION;
  h->size = a->size;
  h->named = 1;
  memcpy(h->id, a->id, sizeof h->id);
  memcpy(h->tracker, addr, sizeof h->tracker);
  munmap(p, SHM_HEADER);
  tracker_send(link, TW_OK, 0, fd);
  close(fd); /* the users hold the segment; we hold the name */
  *lfd_out = lfd;
  return 0;
}

static void tracker_main(int link, tracker_args *a) {
  /* Outlive the session, ignore the signals a terminal or a process
   * group sends (only SIGKILL stops the tracker early), hold nothing of
   * the creator's but the link (helper.c). */
  if ((link = mpi__helper_detach(link)) < 0)
    _exit(1);
  tracker_state t = {NULL, 0, 0};
  if (tracker_grow(&t) != 0)
    _exit(1); /* the creator reads end-of-file: an error */
  char path[SHM_ADDR_MAX];
  int lfd = -1;
  if (tracker_setup(a, link, &lfd, path) != 0) {
    if (path[0] != '\0')
      unlink(path);
    if (a->dir[0] != '\0')
      rmdir(a->dir);
    _exit(1);
  }
  t.fds[0].fd = lfd;
  t.fds[0].events = POLLIN;
  t.fds[1].fd = link; /* the creator: our first user */
  t.fds[1].events = POLLIN;
  t.n = 2;
  while (t.n > 1) {
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
    if (t.n > 1 && (t.fds[0].revents & POLLIN)) {
      int c = accept(lfd, NULL, NULL);
      if (c < 0)
        continue;
      if (!peer_allowed(c, a->only_uid)) {
        (void)!write(c, "U", 1); /* another uid counts for nothing */
        close(c);
        continue;
      }
      if (t.n == t.cap && tracker_grow(&t) != 0) {
        close(c);
        continue;
      }
      (void)!write(c, "A", 1);
      t.fds[t.n].fd = c;
      t.fds[t.n].events = POLLIN;
      t.fds[t.n].revents = 0;
      t.n++;
    }
  }
  /* Last user gone.  Refuse newcomers first (a connection still queued
   * is reset, and its attach fails cleanly), then remove the name. */
  close(lfd);
  tracker_remove(a->name, a->id);
  if (path[0] != '\0') {
    unlink(path);
    rmdir(a->dir);
  }
  _exit(0);
}

/* The creator's side of a failure the tracker reported (T3). */
static int welcome_error(const tracker_welcome *w, const char *name) {
  errno = w->err;
  switch (w->code) {
  case TW_EXISTS:
    return mp__error(MP_EEXIST, "shared memory \"%s\" exists", name);
  case TW_OPEN:
    return shm_fail(w->err == EACCES ? MP_EPERM : MP_EOS, "shm_open");
  case TW_SIZE:
    if (w->err == EFBIG || w->err == EINVAL)
      return shm_fail(MP_EINVAL, "sizing a shared memory segment");
    return shm_fail(w->err == ENOSPC || w->err == ENOMEM ? MP_ENOMEM
                                                          : MP_EOS,
                    "reserving shared memory (is /dev/shm full?)");
  case TW_LISTEN:
    return shm_fail(MP_EOS, "the shared memory tracker's socket");
  default:
    return shm_fail(MP_EOS, "the shared memory tracker mapping the header");
  }
}

/* C3: the welcome, and the segment's descriptor with it. */
static int welcome_read(int link, tracker_welcome *w, int *fd) {
  *fd = -1;
  struct iovec iov = {w, sizeof *w};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } cm;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cm.buf;
  msg.msg_controllen = sizeof cm.buf;
  ssize_t r;
  do /* no timeout: the tracker answers at once, or dies (EOF) */
    r = recvmsg(link, &msg, MSG_WAITALL);
  while (r < 0 && errno == EINTR);
  for (struct cmsghdr *c = r > 0 ? CMSG_FIRSTHDR(&msg) : NULL; c != NULL;
       c = CMSG_NXTHDR(&msg, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      memcpy(fd, CMSG_DATA(c), sizeof *fd);
      fcntl(*fd, F_SETFD, FD_CLOEXEC);
    }
  if (r != (ssize_t)sizeof *w || (w->code == TW_OK && *fd < 0)) {
    if (*fd >= 0)
      close(*fd);
    *fd = -1;
    return mp__error(MP_EOS, "the shared memory tracker ended before it "
                             "answered");
  }
  return 0;
}

int mpi_shm_create(const char *name, size_t size, mpi_shm **out) {
  char os[40 + 256];
  int rc = os_name(name, os, sizeof os);
  if (rc != 0)
    return rc;
  if (size == 0 || size > (size_t)INT64_MAX - SHM_HEADER)
    return mp__error(MP_EINVAL, "shared memory size %zu is not valid", size);
  int kill_at = shm_kill_at();
  /* C1 */
  tracker_args a;
  memset(&a, 0, sizeof a);
  a.name = os;
  a.size = size;
  if (mpi_random(a.id, sizeof a.id) != 0)
    return MP_EOS;
  char hex[33];
  for (int i = 0; i < 16; i++)
    snprintf(hex + 2 * i, 3, "%02x", a.id[i]);
#if defined(__linux__)
  snprintf(a.addr, sizeof a.addr, "@mproc-shm-%s", hex);
#else
  const char *tmp = getenv("TMPDIR");
  if (tmp == NULL || tmp[0] == '\0' || strlen(tmp) > 60)
    tmp = "/tmp";
  snprintf(a.dir, sizeof a.dir, "%s/mproc-XXXXXX", tmp);
#endif
  a.trace = getenv("MPROC_TEST_SHM_TRACE");
  const char *only = getenv("MPROC_TEST_SHM_PEER_UID");
  a.only_uid = only != NULL && only[0] != '\0' ? atol(only) : -1;
  SHM_STAGE(0);
  /* C2 */
  int link[2];
  mpi__start_lock();
  if ((rc = mpi__socketpair(link)) != 0) {
    mpi__start_unlock();
    return rc;
  }
  SHM_STAGE(1);
  fflush(NULL);
  pid_t mid = fork();
  if (mid == 0) { /* M */
    pid_t t = fork();
    if (t == 0)
      tracker_main(link[1], &a);
    _exit(t < 0 ? 1 : 0);
  }
  SHM_STAGE(2);
  /* C3 */
  close(link[1]);
  mpi__start_unlock();
  if (mid < 0) {
    rc = shm_fail(MP_EOS, "fork of the shared memory tracker");
    close(link[0]);
    return rc;
  }
  int st;
  while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
    ;
  SHM_STAGE(3);
  tracker_welcome w;
  int fd;
  if ((rc = welcome_read(link[0], &w, &fd)) != 0) {
    close(link[0]);
    return rc;
  }
  SHM_STAGE(4);
  if (w.code != TW_OK) {
    close(link[0]);
    return welcome_error(&w, name);
  }
  /* C4 */
  size_t len = SHM_HEADER + size;
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  SHM_STAGE(5);
  mpi_shm *s = NULL;
  if (p == MAP_FAILED)
    rc = shm_fail(MP_EOS, "mmap of a shared memory segment");
  else
    rc = shm_wrap(fd, p, len, size, &s); /* unmaps p on failure */
  if (rc != 0) {
    shm_unlink(os); /* just made, and not published: ours */
    close(fd);
    close(link[0]);
    return rc;
  }
  s->tracker_fd = link[0];
  SHM_STAGE(6);
  mp__store32(&((shm_header *)s->base)->magic, SHM_MAGIC);
  SHM_STAGE(7);
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
  /* The tracker sizes the segment and writes its header, the creator
   * writes the magic last; give them a moment if we came in between. */
  double deadline = mpi_now() + 5.0;
  for (;;) {
    struct stat st;
    int have = fstat(fd, &st) == 0;
#if defined(__linux__)
    if (have && st.st_nlink == 0) { /* its creator died: it was removed */
      close(fd);
      return mp__error(MP_ENOENT, "no shared memory \"%s\" (its creator "
                                  "ended while making it)", name);
    }
#endif
    if (have && (uint64_t)st.st_size >= SHM_HEADER) {
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
  /* arg 1: XNU looks among the zombies only when arg is non-zero (with
   * 0, a dead unreaped holder would count as alive until reaped). */
  struct proc_bsdinfo info;
  if (proc_pidinfo((int)pid, PROC_PIDTBSDINFO, 1, &info, sizeof info) ==
      (int)sizeof info)
    return info.pbi_status == MPI_SZOMB ? 0 : 1;
  return 1;
#else
  return 1;
#endif
}
