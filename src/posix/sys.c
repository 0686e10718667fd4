/*
 * posix/sys.c - the POSIX backend's basics.
 *
 * Parts: the library lock (reset after fork), time, randomness, ids and
 * CPU counts, the executable's path, signal names, function references
 * (dl_iterate_phdr on ELF systems, dyld on macOS), waiting with poll(),
 * and small I/O helpers the other files share.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
#  define _DARWIN_C_SOURCE
#endif

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__APPLE__)
#  include <mach-o/dyld.h>
#else
#  include <link.h>
#endif
#if defined(__linux__)
#  include <sched.h>
#  include <sys/random.h>
#  include <sys/syscall.h>
#endif
#if defined(__FreeBSD__)
#  include <sys/sysctl.h>
#endif

#include "internal.h"
#include "atomic.h"

void mpi_yield(void) { sched_yield(); }

/* ---- the library lock -------------------------------------------------- */

/* Recursive, by hand: a plain mutex, its holder (the address of a
 * thread-local: the same thread keeps it in a fork child) and the depth,
 * which only the holder touches.  In a fork child the forking thread,
 * which holds the lock (atfork_prepare), simply unlocks it: a plain
 * mutex has no owner check, unlike a recursive one, whose owner is the
 * parent's thread id; re-initialising a locked mutex is undefined. */
static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile uint64_t big_owner; /* atomics */
static uint32_t big_depth;
static _Thread_local char big_me;
static pthread_once_t big_lock_once = PTHREAD_ONCE_INIT;

static void big_lock_take(void) {
  uint64_t me = (uint64_t)(uintptr_t)&big_me;
  if (mp__load64(&big_owner) == me) {
    big_depth++;
    return;
  }
  pthread_mutex_lock(&big_lock);
  mp__store64(&big_owner, me);
  big_depth = 1;
}

static void big_lock_give(void) {
  if (--big_depth == 0) {
    mp__store64(&big_owner, 0);
    pthread_mutex_unlock(&big_lock);
  }
}

static void atfork_prepare(void) { big_lock_take(); }
static void atfork_parent(void) { big_lock_give(); }
/* getpid() is a system call (glibc stopped caching it), and lock owner
 * words need it on every acquire: keep it, renewed in every fork child. */
static volatile uint32_t self_pid; /* atomics: read by every thread */

static void atfork_child(void) {
  mp__store32(&self_pid, (uint32_t)getpid());
  big_lock_give();
}

static void big_lock_init(void) {
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

void mpi_lock(void) {
  pthread_once(&big_lock_once, big_lock_init);
  big_lock_take();
}

void mpi_unlock(void) { big_lock_give(); }

/* ---- object mutexes ---------------------------------------------------- */

/* struct mpi_mutex is in internal.h (thread.c waits on it). */

int mpi_mutex_new(mpi_mutex **out) {
  mpi_mutex *m = malloc(sizeof *m);
  if (m == NULL || pthread_mutex_init(&m->m, NULL) != 0) {
    free(m);
    return mp__error(MP_ENOMEM, "mutex: out of memory");
  }
  *out = m;
  return 0;
}

void mpi_mutex_lock(mpi_mutex *m) { pthread_mutex_lock(&m->m); }
void mpi_mutex_unlock(mpi_mutex *m) { pthread_mutex_unlock(&m->m); }

void mpi_mutex_free(mpi_mutex *m) {
  if (m != NULL) {
    pthread_mutex_destroy(&m->m);
    free(m);
  }
}

/* ---- errors and small I/O helpers ------------------------------------ */

int mpi__errno_error(const char *what) {
  int e = errno;
  int code = MP_EOS;
  if (e == ENOMEM)
    code = MP_ENOMEM;
  else if (e == EACCES || e == EPERM)
    code = MP_EPERM;
  else if (e == ENOENT)
    code = MP_ENOENT;
  return mp__error(code, "%s: %s", what, strerror(e));
}

int mpi__write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return errno == EPIPE ? mp__error(MP_EPIPE, "write: broken pipe")
                            : mpi__errno_error("write");
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

int mpi__read_all(int fd, void *p, size_t n) {
  char *c = p;
  while (n > 0) {
    ssize_t r = read(fd, c, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return mpi__errno_error("read");
    if (r == 0)
      return mp__error(MP_EEOF, "read: unexpected end of file");
    c += r;
    n -= (size_t)r;
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

/* One frame in one write: atomic on a pipe while under PIPE_BUF, which
 * keeps a fork server's frames and its child's record apart. */
int mpi__frame_write(int fd, int type, const void *p, size_t n) {
  unsigned char buf[4096];
  if (n > sizeof buf - 5)
    n = sizeof buf - 5;
  buf[0] = (unsigned char)type;
  mpi__put_u32(buf + 1, (uint32_t)n);
  if (n)
    memcpy(buf + 5, p, n);
  return mpi__write_all(fd, buf, n + 5);
}

/* ---- time, randomness, ids ------------------------------------------- */

double mpi_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int mpi_random(void *buf, size_t n) {
#if defined(__linux__)
  unsigned char *p = buf;
  while (n > 0) {
    ssize_t r = getrandom(p, n, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return mpi__errno_error("getrandom");
    p += r;
    n -= (size_t)r;
  }
  return 0;
#else
  arc4random_buf(buf, n);
  return 0;
#endif
}

int64_t mpi_getpid(void) {
  pid_t p = (pid_t)mp__load32(&self_pid);
  if (p == 0) {
    /* The fork handler is in place before the value is kept. */
    pthread_once(&big_lock_once, big_lock_init);
    p = getpid();
    mp__store32(&self_pid, (uint32_t)p);
  }
  return (int64_t)p;
}
int64_t mpi_getppid(void) { return (int64_t)getppid(); }

int mpi_cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

int mpi_process_cpu_count(void) {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0)
      return n;
  }
#endif
  return mpi_cpu_count();
}

int mpi__is_main_thread(void) {
#if defined(__linux__)
  return (pid_t)syscall(SYS_gettid) == getpid();
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__)
  return pthread_main_np() == 1;
#else
  return 0; /* unknown: callers then use the portable watcher */
#endif
}

int mpi_exe_path(char *buf, size_t cap) {
#if defined(__linux__)
  ssize_t n = readlink("/proc/self/exe", buf, cap);
  if (n < 0)
    return mpi__errno_error("readlink /proc/self/exe");
  if ((size_t)n >= cap)
    return mp__error(MP_ERANGE, "executable path too long");
  buf[n] = '\0';
  return 0;
#elif defined(__APPLE__)
  char raw[PATH_MAX];
  uint32_t size = sizeof raw;
  if (_NSGetExecutablePath(raw, &size) != 0)
    return mp__error(MP_ERANGE, "executable path too long");
  if (realpath(raw, buf) == NULL) /* buf must hold PATH_MAX */
    return mpi__errno_error("realpath");
  (void)cap;
  return 0;
#elif defined(__FreeBSD__)
  int mib[4] = {CTL_KERN, KERN_PROC, KERN_PROC_PATHNAME, -1};
  size_t len = cap;
  if (sysctl(mib, 4, buf, &len, NULL, 0) != 0)
    return mpi__errno_error("sysctl KERN_PROC_PATHNAME");
  return 0;
#else
  (void)buf;
  (void)cap;
  return mp__error(MP_ENOTSUP, "cannot find this program's executable; "
                               "use mp_set_executable()");
#endif
}

const char *mpi_signal_name(int sig) {
  switch (sig) {
  case SIGHUP: return "SIGHUP";
  case SIGINT: return "SIGINT";
  case SIGQUIT: return "SIGQUIT";
  case SIGILL: return "SIGILL";
  case SIGTRAP: return "SIGTRAP";
  case SIGABRT: return "SIGABRT";
  case SIGBUS: return "SIGBUS";
  case SIGFPE: return "SIGFPE";
  case SIGKILL: return "SIGKILL";
  case SIGUSR1: return "SIGUSR1";
  case SIGSEGV: return "SIGSEGV";
  case SIGUSR2: return "SIGUSR2";
  case SIGPIPE: return "SIGPIPE";
  case SIGALRM: return "SIGALRM";
  case SIGTERM: return "SIGTERM";
  default: return "signal";
  }
}

/* ---- function references --------------------------------------------- */

#if defined(__APPLE__)

int mpi_fn_encode(void (*fn)(void), char *module, size_t cap,
                  uint64_t *offset) {
  Dl_info info;
  if (dladdr((const void *)fn, &info) == 0 || info.dli_fbase == NULL)
    return mp__error(MP_EINVAL, "function %p is in no loaded module",
                     (void *)fn);
  const void *main_header = _dyld_get_image_header(0);
  const char *name = info.dli_fbase == main_header ? "" : info.dli_fname;
  if (strlen(name) >= cap)
    return mp__error(MP_ERANGE, "module path too long");
  strcpy(module, name);
  *offset = (uint64_t)((uintptr_t)fn - (uintptr_t)info.dli_fbase);
  return 0;
}

static const void *find_image(const char *module) {
  if (module[0] == '\0')
    return _dyld_get_image_header(0);
  uint32_t n = _dyld_image_count();
  for (uint32_t i = 0; i < n; i++)
    if (strcmp(_dyld_get_image_name(i), module) == 0)
      return _dyld_get_image_header(i);
  return NULL;
}

int mpi_fn_decode(const char *module, uint64_t offset, void (**fn)(void)) {
  const void *base = find_image(module);
  if (base == NULL && dlopen(module, RTLD_NOW) != NULL)
    base = find_image(module);
  if (base == NULL)
    return mp__error(MP_ENOENT, "module '%s' cannot be loaded", module);
  *fn = (void (*)(void))((uintptr_t)base + offset);
  return 0;
}

#else /* ELF: dl_iterate_phdr */

struct fn_search {
  uintptr_t addr;     /* encode: the address looked for */
  const char *module; /* decode: the module looked for */
  int index;
  int found;
  uintptr_t base;
  char name[1024];
  int too_long;
};

static int contains(const struct dl_phdr_info *info, uintptr_t addr) {
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type == PT_LOAD && addr >= lo && addr < lo + ph->p_memsz)
      return 1;
  }
  return 0;
}

static int encode_cb(struct dl_phdr_info *info, size_t size, void *data) {
  struct fn_search *s = data;
  (void)size;
  int index = s->index++;
  if (!contains(info, s->addr))
    return 0;
  const char *name = index == 0 ? "" : info->dlpi_name;
  if (strlen(name) >= sizeof s->name)
    s->too_long = 1;
  else
    strcpy(s->name, name);
  s->base = info->dlpi_addr;
  s->found = 1;
  return 1;
}

int mpi_fn_encode(void (*fn)(void), char *module, size_t cap,
                  uint64_t *offset) {
  struct fn_search s;
  memset(&s, 0, sizeof s);
  s.addr = (uintptr_t)fn;
  dl_iterate_phdr(encode_cb, &s);
  if (!s.found)
    return mp__error(MP_EINVAL, "function %p is in no loaded module",
                     (void *)(uintptr_t)fn);
  if (s.too_long || strlen(s.name) >= cap)
    return mp__error(MP_ERANGE, "module path too long");
  strcpy(module, s.name);
  *offset = (uint64_t)(s.addr - s.base);
  return 0;
}

static int decode_cb(struct dl_phdr_info *info, size_t size, void *data) {
  struct fn_search *s = data;
  (void)size;
  int index = s->index++;
  int match = s->module[0] == '\0'
                  ? index == 0
                  : index > 0 && strcmp(info->dlpi_name, s->module) == 0;
  if (!match)
    return 0;
  s->found = contains(info, info->dlpi_addr + s->addr) ? 1 : -1;
  s->base = info->dlpi_addr;
  return 1;
}

static int decode_once(const char *module, uint64_t offset,
                       struct fn_search *s) {
  memset(s, 0, sizeof *s);
  s->module = module;
  s->addr = (uintptr_t)offset;
  dl_iterate_phdr(decode_cb, s);
  return s->found;
}

int mpi_fn_decode(const char *module, uint64_t offset, void (**fn)(void)) {
  struct fn_search s;
  int found = decode_once(module, offset, &s);
  if (found == 0 && module[0] != '\0' && dlopen(module, RTLD_NOW) != NULL)
    found = decode_once(module, offset, &s);
  if (found == 0)
    return mp__error(MP_ENOENT, "module '%s' cannot be loaded",
                     module[0] ? module : "(main program)");
  if (found < 0)
    return mp__error(MP_EINVAL, "offset %llu is outside module '%s'",
                     (unsigned long long)offset, module);
  *fn = (void (*)(void))(s.base + (uintptr_t)offset);
  return 0;
}

#endif

/* ---- waiting ----------------------------------------------------------- */

int mpi_wait(const mpi_fd *h, size_t n, double timeout, int *ready) {
  struct pollfd one, *fds = n == 1 ? &one : calloc(n, sizeof *fds);
  if (fds == NULL)
    return mp__error(MP_ENOMEM, "mp_wait: out of memory");
  for (size_t i = 0; i < n; i++) {
    fds[i].fd = (int)h[i];
    fds[i].events = POLLIN;
    fds[i].revents = 0;
  }
  double deadline = timeout < 0 ? -1.0 : mpi_now() + timeout;
  int rc;
  for (;;) {
    int ms = -1;
    if (deadline >= 0) {
      double left = deadline - mpi_now();
      ms = left <= 0 ? 0 : (int)(left * 1000.0 + 0.999);
    }
    rc = poll(fds, (nfds_t)n, ms);
    if (rc >= 0 || errno != EINTR)
      break;
  }
  if (rc < 0)
    rc = mpi__errno_error("poll");
  else if (rc == 0)
    rc = mp__error(MP_ETIMEDOUT, "wait timed out");
  else {
    for (size_t i = 0; i < n; i++)
      if (fds[i].revents & POLLNVAL)
        rc = mp__error(MP_EINVAL, "wait: handle %zu is not open", i);
  }
  if (ready != NULL)
    for (size_t i = 0; i < n; i++)
      ready[i] = rc > 0 && fds[i].revents != 0;
  if (fds != &one)
    free(fds);
  return rc;
}

int mpi_default_method(void) {
#if defined(__APPLE__)
  return MPI_SPAWN;
#else
  return MPI_FORK;
#endif
}

int mpi_method_supported(int method) {
  return method == MPI_FORK || method == MPI_SPAWN ||
         method == MPI_FORKSERVER;
}
