/*
 * test_soak.c - random-kill soak tests (Linux; scripts/test leg "soak",
 * not a CTest test).
 *
 * For a bounded time (MPROC_SOAK_SECONDS, default 60, shared among the
 * scenarios: queue 22%, locks 12%, semaphore 10%, pool 18%, manager 18%;
 * the create/free cycles are counted, not timed, ~13 s) a killer in
 * the test process SIGKILLs workers at random moments and starts them
 * again, while the survivors check every invariant they can see and the
 * test checks the rest.  Each worker publishes the phase it is in (a word
 * in shared memory, written before and after each mproc call), so after a
 * kill the test knows what the victim may have left undone and the
 * invariants are exact bounds, not "about right":
 *   - queue: producers and consumers of a JoinableQueue with a 4 KiB ring
 *     (messages small and streamed, up to 3/4 of the ring); every message
 *     checked byte by byte; none delivered twice; none delivered that was
 *     never put; none lost but the one a consumer killed in its get or
 *     before recording it held; a put that returned 0 is delivered even
 *     when its producer was killed right after; qsize equals what a final
 *     drain yields; the unfinished count is exactly the killed
 *     consumers' tasks (within the ones killed mid-get);
 *   - locks: Lock and RLock holders incrementing a counter in two steps;
 *     nobody enters while a process is inside (a living one: mutual
 *     exclusion; a dead one: it must come as MP_EOWNERDEAD); MP_EOWNERDEAD
 *     never while the holder lives, once per holder killed inside (and at
 *     most once per process killed in acquire or release); no acquire
 *     times out; the counter exact within the kills;
 *   - semaphore: Semaphore and BoundedSemaphore(2) holders; never more
 *     than 2 inside; in epochs the workers park and the value is checked:
 *     exactly the units of the holders killed inside are gone (mproc, as
 *     Python, does not give back a dead process's unit), which the test
 *     gives back; a bounded one refuses one release more;
 *   - pool: maps on a pool whose workers are killed busy or idle: each map
 *     gives exactly the right values or MP_EWORKERDIED, and
 *     MP_EWORKERDIED only when a worker was killed during it; never
 *     MP_EBROKEN, never a map that does not end in 30 s;
 *   - manager: clients killed while they use a dict, a list and a queue;
 *     the survivors' every call succeeds; the list length, the dict and
 *     the queue exact within the kills; then the server itself is killed
 *     under running clients: every client and the owner get MP_ECLOSED at
 *     once, and the owner frees the manager;
 *   - cycles: 1,000 create/free cycles of every object kind (fewer of the
 *     kinds that start processes: 100 process start/join and listeners,
 *     20 pools, 10 managers): the test process's descriptors, RSS, heap,
 *     /dev/shm and temporary directory end where they began (the heap
 *     exactly, with GLIBC_TUNABLES=glibc.malloc.tcache_count=0, as
 *     scripts/test runs it; see CYCLES_HEAP_MAX_BYTES).
 * After each scenario: no process of ours left (children, trackers,
 * janitors, fork servers, managers: anything running this executable
 * that descends from us or was orphaned; our own fork server excepted,
 * which lives as long as we do), no zombie child, waitpid(-1) has
 * nothing, no name this run made left in /dev/shm, nothing left in the
 * scenario's private TMPDIR (socket directories), descriptors as at the
 * start.  Each scenario prints one row of the table the leg shows.
 * MPROC_SOAK_SEED replays the random choices (the seed is printed; the
 * timing of the kills is the machine's); MPROC_SOAK_METHOD (fork, spawn,
 * forkserver; default fork) starts the workers another way;
 * MPROC_SOAK_CYCLES (default 1000) sets the number of cycles.  Run it
 * with --jobs 1 (scripts/test does): the scenarios are timed, and two at
 * once would share the two cores of a small machine.
 */
#if !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"
#include "support.h"

TS_SUITE(soak);

/* Per test.  A scenario's share of MPROC_SOAK_SECONDS is capped so that
 * it ends (and checks what is left) well within it. */
#define SOAK_TIMEOUT 900
#define SHARE_MAX (SOAK_TIMEOUT - 300)

/* ---- time, randomness ---------------------------------------------------- */

static double soak_seconds(void) {
  const char *e = getenv("MPROC_SOAK_SECONDS");
  double s = e != NULL && *e != '\0' ? atof(e) : 60.0;
  return s > 0 ? s : 60.0;
}

/* A scenario's share of the time. */
static double share(double fraction) {
  double s = soak_seconds() * fraction;
  return s > SHARE_MAX ? SHARE_MAX : s;
}

static uint64_t rng_state;

static void rng_seed(const char *scenario) {
  const char *e = getenv("MPROC_SOAK_SEED");
  uint64_t seed = e != NULL && *e != '\0'
                      ? strtoull(e, NULL, 0)
                      : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  rng_state = seed ? seed : 1;
  fprintf(stderr, "soak %s: seed %llu (MPROC_SOAK_SEED replays it)\n",
          scenario, (unsigned long long)seed);
}

static uint64_t rng(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

static uint64_t rng_below(uint64_t n) { return n ? rng() % n : 0; }

/* A random pause before the next kill: the injection, not a wait for
 * anything. */
static void pause_ms(unsigned lo, unsigned hi) {
  unsigned ms = lo + (unsigned)rng_below(hi - lo + 1);
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static void spin(int n) {
  for (volatile int i = 0; i < n; i++)
    ;
}

/* ---- processes ----------------------------------------------------------- */

/* A process that runs (not gone, not a zombie). */
static int alive(long pid) {
  char st;
  long pp;
  return pid > 0 && ts_proc_stat(pid, &st, &pp) == 0 && st != 'Z' && st != 'X';
}

/* Our own fork server (MPROC_SOAK_METHOD=forkserver): it serves this
 * process until this process exits (there is no call to stop it), so it
 * is not left over; it says whose it is in its environment
 * ("MPROC_FORKSERVER=<fd>:<our pid>"). */
static int our_forkserver(long pid) {
  char path[64], env[8192], want[40];
  snprintf(path, sizeof path, "/proc/%ld/environ", pid);
  snprintf(want, sizeof want, ":%ld", (long)getpid());
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  size_t n = fread(env, 1, sizeof env - 1, f);
  fclose(f);
  env[n] = '\0';
  for (size_t i = 0; i < n; i += strlen(env + i) + 1) {
    const char *e = env + i;
    if (strncmp(e, "MPROC_FORKSERVER=", 17) == 0) {
      const char *colon = strrchr(e, ':');
      return colon != NULL && strcmp(colon, want) == 0;
    }
  }
  return 0;
}

/* Processes of ours left: anything running our executable (this build's
 * own path, so no other program counts) that descends from us, or was
 * orphaned to init or a subreaper (trackers and janitors are grandchildren
 * in a session of their own; so is what a killed child left): children,
 * helpers, managers, fork servers of our children.  Not us, our ancestors
 * (Criterion's runner), another test's worker when Criterion runs tests in
 * parallel (--jobs > 1) or what descends from it, nor our own fork
 * server (counted in *fs). */
static int strays_fs(char *what, size_t cap, int *fs) {
  char self[512], exe[512], path[64];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  what[0] = '\0';
  if (fs)
    *fs = 0;
  if (n <= 0)
    return 0;
  self[n] = '\0';
  long me = getpid(), runner = getppid(), up[16];
  int nup = 0;
  for (long p = runner; p > 1 && nup < 16;) {
    char st;
    up[nup++] = p;
    if (ts_proc_stat(p, &st, &p) != 0)
      break;
  }
  int count = 0;
  DIR *d = opendir("/proc");
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == me)
      continue;
    int ancestor = 0;
    for (int i = 0; i < nup; i++)
      ancestor |= up[i] == pid;
    if (ancestor)
      continue;
    snprintf(path, sizeof path, "/proc/%ld/exe", pid);
    ssize_t m = readlink(path, exe, sizeof exe - 1);
    if (m <= 0)
      continue; /* gone, or a zombie (counted by zombies()) */
    exe[m] = '\0';
    if (strcmp(exe, self) != 0)
      continue;
    /* Whose is it?  Up its parents: us, a sibling worker, or init. */
    int ours = 1;
    long p = pid;
    for (int depth = 0; depth < 64; depth++) {
      char st;
      long pp;
      if (ts_proc_stat(p, &st, &pp) != 0 || pp <= 1 || pp == me)
        break;
      if (pp == runner) { /* p is another worker of our runner */
        ours = 0;
        break;
      }
      p = pp;
    }
    if (!ours)
      continue;
    if (our_forkserver(pid)) {
      if (fs)
        (*fs)++;
      continue;
    }
    count++;
    size_t len = strlen(what);
    snprintf(what + len, cap - len, " %ld", pid);
  }
  if (d != NULL)
    closedir(d);
  return count;
}

static int strays(char *what, size_t cap) { return strays_fs(what, cap, NULL); }

/* Our children that ended and nobody reaped (the library reaps what it
 * starts; the test never does but in reap_left below). */
static int zombies(void) {
  int count = 0;
  long me = getpid();
  DIR *d = opendir("/proc");
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL) {
    char *end, st;
    long pid = strtol(e->d_name, &end, 10), pp;
    if (*end != '\0' || pid <= 0)
      continue;
    if (ts_proc_stat(pid, &st, &pp) == 0 && pp == me && st == 'Z')
      count++;
  }
  if (d != NULL)
    closedir(d);
  return count;
}

/* waitpid(-1, WNOHANG) once everything is freed: no child at all (ECHILD)
 * is right; a child still running (0) or one nobody reaped (reaped here)
 * is counted. */
static int reap_left(int forkservers) {
  int n = 0, st;
  for (;;) {
    pid_t r = waitpid(-1, &st, WNOHANG);
    if (r > 0) {
      n++;
      continue;
    }
    /* 0: a child still runs (our fork server may) */
    return r == 0 && !forkservers ? n + 1 : n;
  }
}

static int no_strays(void *arg) {
  char buf[256];
  (void)arg;
  return strays(buf, sizeof buf) == 0 && zombies() == 0;
}

/* Wait (bounded) until process `pid` has ended (a zombie has ended). */
static int pid_ended(void *arg) { return !alive(*(long *)arg); }
static int wait_ended(long pid, double timeout) {
  return ts_poll_until(pid_ended, &pid, timeout);
}

/* ---- names, descriptors, memory ------------------------------------------ */

/* mproc's names in /dev/shm ("mpt-..." the tests', "mp-<pid>-..."
 * generated, "mph-..." hashed long names), one per line. */
static int shm_names(char *out, size_t cap) {
  int count = 0;
  out[0] = '\0';
  DIR *d = opendir("/dev/shm");
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL) {
    const char *n = e->d_name;
    if (strncmp(n, "mpt-", 4) != 0 && strncmp(n, "mph-", 4) != 0 &&
        !(strncmp(n, "mp-", 3) == 0 && n[3] >= '0' && n[3] <= '9'))
      continue;
    count++;
    size_t len = strlen(out);
    if (len + strlen(n) + 2 < cap)
      snprintf(out + len, cap - len, "%s\n", n);
  }
  if (d != NULL)
    closedir(d);
  return count;
}

/* A name this run made: the tests' "mpt-soak-<pid>-", or generated by us
 * ("mp-<pid>-"); only the test process makes names here.  Names other
 * programs on the machine make meanwhile are not ours (they are listed
 * in the log, not counted). */
static int shm_ours(const char *n, size_t len) {
  char a[40], b[40];
  snprintf(a, sizeof a, "mpt-soak-%ld-", (long)getpid());
  snprintf(b, sizeof b, "mp-%ld-", (long)getpid());
  return (len >= strlen(a) && strncmp(n, a, strlen(a)) == 0) ||
         (len >= strlen(b) && strncmp(n, b, strlen(b)) == 0);
}

/* Names in `now` not in `before`: ours counted (and listed in `out`),
 * others in *foreign. */
static int new_names(const char *before, const char *now, char *out,
                     size_t cap, int *foreign) {
  int count = 0;
  out[0] = '\0';
  if (foreign)
    *foreign = 0;
  char line[300];
  for (const char *p = now; *p != '\0';) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    if (n < sizeof line - 2) {
      memcpy(line, p, n);
      line[n] = '\n';
      line[n + 1] = '\0';
      if (strstr(before, line) == NULL) {
        if (shm_ours(p, n)) {
          count++;
          size_t len = strlen(out);
          snprintf(out + len, cap - len, " %.*s", (int)n, p);
        } else if (foreign) {
          (*foreign)++;
        }
      }
    }
    p += n + (nl != NULL);
  }
  return count;
}

/* Entries under a directory (one level down too: a socket directory and
 * its socket); with `remove`, remove them. */
static int dir_entries(const char *dir, char *out, size_t cap, int remove) {
  int count = 0;
  if (out)
    out[0] = '\0';
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    count++;
    if (out) {
      size_t len = strlen(out);
      snprintf(out + len, cap - len, " %s", e->d_name);
    }
    struct stat sb;
    if (remove && lstat(path, &sb) == 0) {
      if (S_ISDIR(sb.st_mode)) {
        dir_entries(path, NULL, 0, 1);
        rmdir(path);
      } else {
        unlink(path);
      }
    }
  }
  if (d != NULL)
    closedir(d);
  return count;
}

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  if (d != NULL)
    closedir(d);
  return n - 1; /* the directory's own */
}

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, res = 0;
  if (f != NULL) {
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
      res = 0;
    fclose(f);
  }
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Bytes malloc has handed out and not had back (every arena). */
static long heap_bytes(void) {
  struct mallinfo2 mi = mallinfo2();
  return (long)(mi.uordblks + mi.hblkhd);
}

/* ---- a scenario's frame: what it started from, what is left, its row ---- */

/* How workers start: MPROC_SOAK_METHOD, default fork. */
static mp_context *soak_ctx(void) {
  mp_context *ctx = NULL;
  const char *m = getenv("MPROC_SOAK_METHOD");
  cr_assert_eq(mp_get_context(m != NULL && *m ? m : "fork", &ctx), 0);
  return ctx;
}

static int warm_target(const mp_args *a) {
  (void)a;
  return 0;
}

typedef struct soak {
  const char *name;
  double t0;
  char tmpdir[64];
  char *shm_before;
  int fds0;
  long rss0;
  long kills, checks, failures;
} soak;

static void soak_begin(soak *s, const char *name) {
  memset(s, 0, sizeof *s);
  s->name = name;
  rng_seed(name);
  /* A TMPDIR of the scenario's own: the socket directories mproc makes
   * there (.mproc-*) are ours, whatever other programs do in /tmp. */
  const char *base = getenv("TMPDIR");
  if (base == NULL || base[0] == '\0' || strlen(base) > 30)
    base = "/tmp";
  snprintf(s->tmpdir, sizeof s->tmpdir, "%s/mproc-soak-XXXXXX", base);
  cr_assert_not_null(mkdtemp(s->tmpdir), "mkdtemp: %s", strerror(errno));
  ts_setenv("TMPDIR", s->tmpdir);
  s->shm_before = calloc(1, 8192);
  cr_assert_not_null(s->shm_before);
  shm_names(s->shm_before, 8192);
  /* Under forkserver, its server and our descriptor to it come with the
   * first start and stay: start one before counting. */
  mp_process *p = NULL;
  cr_assert_eq(mp_process_new(&p, warm_target, NULL), 0);
  mp_process_set_context(p, soak_ctx());
  cr_assert_eq(mp_process_start(p), 0, "%s", mp_last_error_message());
  cr_assert_eq(mp_process_join(p, 30.0), 0);
  mp_process_free(p);
  s->fds0 = count_fds();
  s->rss0 = rss_kib();
  s->t0 = ts_now();
}

typedef struct names_wait {
  soak *s;
  char now[8192], ours[2048];
} names_wait;

static int names_gone(void *arg) {
  names_wait *w = arg;
  shm_names(w->now, sizeof w->now);
  return new_names(w->s->shm_before, w->now, w->ours, sizeof w->ours,
                   NULL) == 0 &&
         dir_entries(w->s->tmpdir, NULL, 0, 0) == 0;
}

/* After the scenario freed everything: wait (bounded) for helpers to
 * end, count what is left, print the row, assert nothing is.  `extra`
 * (may be NULL) goes at the end of the row. */
static void soak_end(soak *s, const char *extra) {
  double t_run = ts_now() - s->t0;
  ts_poll_until(no_strays, NULL, 15.0);
  names_wait *w = calloc(1, sizeof *w);
  cr_assert_not_null(w);
  w->s = s;
  ts_poll_until(names_gone, w, 15.0);
  char pids[512], tmp[1024];
  int fs = 0;
  int procs = strays_fs(pids, sizeof pids, &fs), zomb = zombies();
  int reaped = reap_left(fs);
  int foreign = 0;
  shm_names(w->now, sizeof w->now);
  int shm = new_names(s->shm_before, w->now, w->ours, sizeof w->ours,
                      &foreign);
  int tmps = dir_entries(s->tmpdir, tmp, sizeof tmp, 0);
  int dfd = count_fds() - s->fds0;
  long drss = rss_kib() - s->rss0;
  static int header;
  if (!header++)
    printf("%-10s %7s %6s %10s %6s %4s %5s %5s %4s %4s %8s\n", "scenario",
           "seconds", "kills", "checks", "failed", "shm", "procs", "zomb",
           "tmp", "fds", "RSS KiB");
  printf("%-10s %7.1f %6ld %10ld %6ld %4d %5d %5d %4d %+4d %+8ld%s%s\n",
         s->name, t_run, s->kills, s->checks, s->failures, shm, procs,
         zomb > reaped ? zomb : reaped, tmps, dfd, drss, extra ? "  " : "",
         extra ? extra : "");
  fflush(stdout);
  if (foreign)
    fprintf(stderr, "soak %s: %d new /dev/shm names of other programs "
            "(not ours, not counted)\n", s->name, foreign);
  if (fs)
    fprintf(stderr, "soak %s: our fork server runs on (until we exit, as "
            "documented; not counted)\n", s->name);
  cr_expect_eq(s->failures, 0, "%s: %ld invariant failures", s->name,
               s->failures);
  cr_expect(procs == 0 && zomb == 0 && reaped == 0 && shm == 0 &&
                tmps == 0 && dfd == 0,
            "%s left over: %d processes:%s; %d zombies (%d reaped by "
            "waitpid(-1)); %d /dev/shm names:%s; %d in %s:%s; "
            "descriptors %+d",
            s->name, procs, pids, zomb, reaped, shm, w->ours, tmps,
            s->tmpdir, tmp, dfd);
  /* Leave nothing behind even when something was left. */
  dir_entries(s->tmpdir, NULL, 0, 1);
  rmdir(s->tmpdir);
  free(w);
  free(s->shm_before);
}

/* Count a check; a failed one also as a failure (the cr_expect says
 * which). */
#define CHECK(s, cond, ...)                 \
  do {                                      \
    (s)->checks++;                          \
    if (!(cond)) {                          \
      (s)->failures++;                      \
      cr_expect(0, __VA_ARGS__);            \
    }                                       \
  } while (0)

/* ---- workers that are killed and started again --------------------------- */

typedef struct slot {
  mp_target_fn fn;
  mp_args *args;
  mp_process *p;
  int64_t pid;
} slot;

static void slot_start(slot *s) {
  cr_assert_eq(mp_process_new(&s->p, s->fn, s->args), 0);
  mp_process_set_context(s->p, soak_ctx());
  cr_assert_eq(mp_process_start(s->p), 0, "%s", mp_last_error_message());
  s->pid = mp_process_pid(s->p);
}

/* SIGKILL it and join it (bounded): afterwards everything it wrote to
 * shared memory is there to read. */
static void slot_kill(slot *s) {
  kill((pid_t)s->pid, SIGKILL);
  cr_assert_eq(mp_process_join(s->p, 30.0), 0, "a killed worker is joined");
  mp_process_free(s->p);
  s->p = NULL;
}

/* Stop it the gentle way (it watches a flag), or kill it if it does not
 * end in time: its exit code (-9 when killed). */
static int slot_end(slot *s, double timeout) {
  int code = -1;
  if (mp_process_join(s->p, timeout) != 0) {
    kill((pid_t)s->pid, SIGKILL);
    mp_process_join(s->p, 20.0);
  }
  mp_process_exitcode(s->p, &code);
  mp_process_free(s->p);
  s->p = NULL;
  return code;
}

static void slots_free_args(slot *s, int n) {
  for (int i = 0; i < n; i++)
    mp_args_free(s[i].args);
}

/* ---- queue --------------------------------------------------------------- */

#define Q_PRODUCERS 3
#define Q_CONSUMERS 2
#define Q_WORKERS (Q_PRODUCERS + Q_CONSUMERS)
#define Q_MAXSEQ (1 << 20) /* ids per producer: more than a run puts */
#define Q_BUFFER 4096      /* the ring: messages over 1 KiB stream */

/* Phases a worker publishes (with the id it is about). */
enum {
  QP_IDLE = 0,
  QP_PUTTING = 1, /* put called: the message may or may not be in */
  QP_PUT = 2,     /* put returned 0: it is in, not yet recorded */
  QC_GETTING = 1, /* get called: it may take one message and die */
  QC_HOLDING = 2, /* get returned this id; not recorded, no task_done */
  QC_DONE = 3,    /* recorded; task_done called (maybe not finished) */
};

typedef struct qworker {
  volatile uint32_t phase;
  volatile uint64_t id;
} qworker;

/* What the test itself learns of a killed worker (marks per id). */
enum { QM_MAYBE = 1, QM_MUST = 2, QM_HELD = 4 };

typedef struct qshared {
  volatile uint32_t stop;
  volatile uint32_t bad;        /* a consumer found a damaged message */
  volatile uint32_t dup_live;   /* taken when already taken */
  volatile uint32_t never_live; /* taken before its id was reserved */
  volatile uint64_t checks, streamed;
  qworker w[Q_WORKERS];
  volatile uint64_t next[Q_PRODUCERS];         /* ids reserved */
  volatile uint8_t put[Q_PRODUCERS][Q_MAXSEQ]; /* put returned 0 */
  volatile uint8_t got[Q_PRODUCERS][Q_MAXSEQ]; /* times taken */
  uint8_t mark[Q_PRODUCERS][Q_MAXSEQ];         /* QM_*, the test's */
} qshared;

static size_t q_len(uint64_t id) {
  uint64_t h = id * 0x9E3779B97F4A7C15ull;
  return (h >> 60) < 4 ? 1100 + (size_t)((h >> 20) % 2000) /* streamed */
                       : 16 + (size_t)((h >> 20) % 200);
}

static void q_fill(unsigned char *b, size_t n, uint64_t id) {
  memcpy(b, &id, 8);
  for (size_t i = 8; i < n; i++)
    b[i] = (unsigned char)(id * 31 + i * 7);
}

/* 0 when buf holds message `id` intact; its id in *id. */
static int q_check(const unsigned char *buf, size_t n, uint64_t *idp) {
  unsigned char want[4096];
  uint64_t id = 0;
  if (n < 8)
    return -1;
  memcpy(&id, buf, 8);
  *idp = id;
  if ((id >> 32) >= Q_PRODUCERS || (uint32_t)id >= Q_MAXSEQ ||
      n != q_len(id))
    return -1;
  q_fill(want, n, id);
  return memcmp(buf, want, n) == 0 ? 0 : -1;
}

static int q_producer(const mp_args *a) {
  mp_queue *q = mp_args_queue(a, 0);
  qshared *sh = mp_array_ptr(mp_args_array(a, 1));
  int me = (int)mp_args_int(a, 2);
  qworker *w = &sh->w[me];
  unsigned char buf[4096];
  while (!sh->stop) {
    uint64_t seq = sh->next[me];
    if (seq >= Q_MAXSEQ)
      break;
    sh->next[me] = seq + 1; /* reserved before the put: never reused */
    uint64_t id = (uint64_t)me << 32 | seq;
    w->id = id;
    w->phase = QP_PUTTING;
    size_t n = q_len(id);
    q_fill(buf, n, id);
    int rc = mp_queue_put(q, buf, n, 0.2);
    if (rc == 0) {
      w->phase = QP_PUT;
      sh->put[me][seq] = 1;
    } else if (rc != MP_EFULL) {
      return 10;
    }
    w->phase = QP_IDLE;
  }
  return 0;
}

static int q_consumer(const mp_args *a) {
  mp_queue *q = mp_args_queue(a, 0);
  qshared *sh = mp_array_ptr(mp_args_array(a, 1));
  int me = (int)mp_args_int(a, 2);
  qworker *w = &sh->w[Q_PRODUCERS + me];
  unsigned char buf[4096];
  while (!sh->stop) {
    size_t n = 0;
    w->phase = QC_GETTING;
    int rc = mp_queue_get_into(q, buf, sizeof buf, &n, 0.2);
    if (rc == MP_EEMPTY) {
      w->phase = QP_IDLE;
      continue;
    }
    if (rc != 0)
      return 20;
    uint64_t id;
    if (q_check(buf, n, &id) != 0) {
      sh->bad = 1;
      return 21;
    }
    w->id = id;
    w->phase = QC_HOLDING;
    uint32_t p = (uint32_t)(id >> 32), seq = (uint32_t)id;
    /* Checked as they come: taken twice, or never reserved. */
    if (sh->got[p][seq] != 0)
      sh->dup_live++;
    if (seq >= sh->next[p])
      sh->never_live++;
    sh->got[p][seq]++;
    w->phase = QC_DONE;
    if (n > Q_BUFFER / 4)
      __atomic_add_fetch(&sh->streamed, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&sh->checks, 1, __ATOMIC_RELAXED);
    if (mp_queue_task_done(q) != 0)
      return 23;
    w->phase = QP_IDLE;
  }
  return 0;
}

/* What a killed worker may have left undone (see the phases). */
typedef struct qkills {
  long prod, cons;
  long c_getting, c_holding, c_done; /* consumers by phase at death */
} qkills;

static void q_note_kill(qshared *sh, int i, qkills *k) {
  qworker *w = &sh->w[i];
  uint32_t ph = w->phase;
  uint64_t id = w->id;
  uint32_t p = (uint32_t)(id >> 32), seq = (uint32_t)id;
  if (i < Q_PRODUCERS) {
    k->prod++;
    if (ph == QP_PUTTING)
      sh->mark[p][seq] |= QM_MAYBE;
    else if (ph == QP_PUT)
      sh->mark[p][seq] |= QM_MUST;
  } else {
    k->cons++;
    if (ph == QC_GETTING)
      k->c_getting++;
    else if (ph == QC_HOLDING) {
      k->c_holding++;
      sh->mark[p][seq] |= QM_HELD;
    } else if (ph == QC_DONE)
      k->c_done++;
  }
  w->phase = QP_IDLE;
}

Test(soak, queue, .timeout = SOAK_TIMEOUT) {
  soak s;
  soak_begin(&s, "queue");
  double until = s.t0 + share(0.22);
  mp_queue *q;
  cr_assert_eq(mp_queue_new_ex(&q, 0, Q_BUFFER, 1), 0);
  mp_array *arr;
  cr_assert_eq(mp_raw_array_new(&arr, 'B', sizeof(qshared), NULL), 0);
  qshared *sh = mp_array_ptr(arr);
  slot w[Q_WORKERS];
  for (int i = 0; i < Q_WORKERS; i++) {
    int prod = i < Q_PRODUCERS;
    w[i].fn = prod ? q_producer : q_consumer;
    cr_assert_eq(mp_args_new(&w[i].args), 0);
    mp_args_add_queue(w[i].args, q);
    mp_args_add_array(w[i].args, arr);
    mp_args_add_int(w[i].args, prod ? i : i - Q_PRODUCERS);
    slot_start(&w[i]);
  }
  qkills k;
  memset(&k, 0, sizeof k);
  while (ts_now() < until && !sh->bad) {
    pause_ms(5, 60);
    int i = (int)rng_below(Q_WORKERS);
    slot_kill(&w[i]);
    q_note_kill(sh, i, &k);
    s.kills++;
    slot_start(&w[i]);
  }
  sh->stop = 1;
  for (int i = 0; i < Q_WORKERS; i++) {
    int code = slot_end(&w[i], 20.0);
    if (code == -9) { /* did not stop in time: counts as killed */
      q_note_kill(sh, i, &k);
      s.kills++;
    }
    CHECK(&s, code == 0 || code == -9, "queue worker %d ended with %d", i,
          code);
  }
  slots_free_args(w, Q_WORKERS);
  CHECK(&s, sh->bad == 0, "a consumer found a damaged message");
  CHECK(&s, sh->dup_live == 0, "%u messages taken twice (seen live)",
        sh->dup_live);
  CHECK(&s, sh->never_live == 0, "%u messages taken before they were put",
        sh->never_live);

  /* Drain what is left, checking it as the consumers did. */
  unsigned char buf[4096];
  size_t n;
  int64_t qs = mp_queue_qsize(q), drained = 0;
  long damaged = 0;
  while (mp_queue_get_into(q, buf, sizeof buf, &n, 0) == 0) {
    uint64_t id;
    if (q_check(buf, n, &id) != 0) {
      damaged++;
    } else {
      sh->got[id >> 32][(uint32_t)id]++;
    }
    mp_queue_task_done(q);
    drained++;
  }
  CHECK(&s, damaged == 0, "%ld damaged messages in the final drain",
        damaged);
  CHECK(&s, qs == drained, "qsize %lld, but %lld messages were there",
        (long long)qs, (long long)drained);
  CHECK(&s, mp_queue_qsize(q) == 0 && mp_queue_empty(q) == 1,
        "empty after the drain");

  /* The unfinished count: exactly one task per consumer killed holding a
   * message or done with it but maybe not with task_done, at most one
   * per consumer killed inside its get (a message taken whole stays
   * unfinished; one only begun is dropped as done). */
  long undone = 0, lo = k.c_holding, hi = k.c_holding + k.c_done +
                                             k.c_getting;
  while (mp_queue_join(q, 0) != 0 && undone <= hi &&
         mp_queue_task_done(q) == 0)
    undone++;
  CHECK(&s, mp_queue_join(q, 0) == 0, "join after %ld more task_done",
        undone);
  CHECK(&s, undone >= lo && undone <= hi,
        "%ld tasks left unfinished; consumers killed holding one %ld, "
        "after recording it %ld, inside get %ld",
        undone, k.c_holding, k.c_done, k.c_getting);
  CHECK(&s, mp_queue_task_done(q) == MP_EVALUE, "one task_done too many");

  /* Every id. */
  long dup = 0, never = 0, unrecorded = 0, lost = 0, held_lost = 0,
       must_lost = 0, total = 0;
  for (int p = 0; p < Q_PRODUCERS; p++)
    for (uint64_t i = 0; i < Q_MAXSEQ; i++) {
      int put = sh->put[p][i], got = sh->got[p][i], m = sh->mark[p][i];
      total += put;
      dup += got > 1;
      never += got > 0 && i >= sh->next[p];
      /* delivered, not recorded as put: only from a producer killed in
       * its put or right after */
      unrecorded += got > 0 && !put && !(m & (QM_MAYBE | QM_MUST));
      if ((put || (m & QM_MUST)) && got == 0) {
        if (m & QM_HELD)
          held_lost++; /* the consumer killed holding it took it along */
        else
          lost++;
        must_lost += !put; /* put returned 0, producer killed after */
      }
    }
  CHECK(&s, dup == 0, "%ld messages delivered twice", dup);
  CHECK(&s, never == 0, "%ld messages delivered that were never put", never);
  CHECK(&s, unrecorded == 0,
        "%ld messages delivered whose put neither returned 0 nor was "
        "running when its producer was killed", unrecorded);
  CHECK(&s, held_lost <= k.c_holding, "%ld lost held, %ld consumers killed "
        "holding one", held_lost, k.c_holding);
  CHECK(&s, lost <= k.c_getting,
        "%ld messages put and never delivered (%ld of them put by a "
        "producer killed right after); only %ld consumers were killed "
        "inside a get",
        lost, must_lost, k.c_getting);
  CHECK(&s, total > 1000, "only %ld messages went through", total);
  CHECK(&s, sh->streamed > 0, "no streamed message went through");
  s.checks += (long)sh->checks + drained + total;
  fprintf(stderr,
          "soak queue: %ld messages put (%llu streamed taken), %ld "
          "producers and %ld consumers killed (in get %ld, holding %ld, "
          "after %ld); %ld unfinished, %ld lost in get, %ld with their "
          "holder\n",
          total, (unsigned long long)sh->streamed, k.prod, k.cons,
          k.c_getting, k.c_holding, k.c_done, undone, lost, held_lost);
  mp_queue_free(q);
  mp_array_free(arr);
  soak_end(&s, NULL);
}

/* ---- locks --------------------------------------------------------------- */

#define L_WORKERS 4

/* Phase word: lock index << 4 | one of these. */
enum { LP_IDLE = 0, LP_ACQUIRING = 1, LP_HOLDING = 2, LP_RELEASING = 3 };

typedef struct lshared {
  volatile uint32_t stop;
  volatile uint32_t bad_enter;  /* entered while a living holder was in */
  volatile uint32_t bad_silent; /* entered after a dead holder, rc 0 */
  volatile uint32_t bad_dead;   /* MP_EOWNERDEAD while the holder lived */
  volatile int32_t holder[2];   /* pid inside, per lock, or 0 */
  volatile uint64_t counter[2]; /* incremented inside, in two steps */
  volatile uint64_t done[L_WORKERS][2]; /* increments each one counted */
  volatile uint32_t phase[L_WORKERS];
  volatile uint64_t checks, ownerdead[2];
} lshared;

/* What the one who just acquired lock k (rc) finds in the holder word. */
static void l_enter(lshared *sh, int k, int rc) {
  int32_t h = sh->holder[k];
  if (rc == MP_EOWNERDEAD) {
    __atomic_add_fetch(&sh->ownerdead[k], 1, __ATOMIC_RELAXED);
    if (h != 0 && alive(h))
      sh->bad_dead = 1;
  } else if (h != 0) {
    if (alive(h))
      sh->bad_enter = 1; /* mutual exclusion broken */
    else
      sh->bad_silent = 1; /* its holder died inside: not reported */
  }
}

static int l_worker(const mp_args *a) {
  mp_lock *locks[2] = {mp_args_lock(a, 0), mp_args_lock(a, 1)};
  lshared *sh = mp_array_ptr(mp_args_array(a, 2));
  int me = (int)mp_args_int(a, 3);
  int32_t pid = (int32_t)getpid();
  for (unsigned round = 0; !sh->stop; round++) {
    int k = (int)(round & 1);
    uint32_t K = (uint32_t)k << 4;
    sh->phase[me] = K | LP_ACQUIRING;
    int rc = mp_lock_acquire(locks[k], 10.0);
    if (rc != 0 && rc != MP_EOWNERDEAD)
      return 30; /* timed out: a lock-out */
    sh->phase[me] = K | LP_HOLDING;
    l_enter(sh, k, rc);
    sh->holder[k] = pid;
    if (k == 1 && mp_lock_acquire(locks[1], 0) != 0)
      return 31; /* the RLock again, by its owner */
    uint64_t v = sh->counter[k];
    spin(200);
    sh->counter[k] = v + 1;
    sh->done[me][k]++;
    if (k == 1 && mp_lock_release(locks[1]) != 0)
      return 32;
    sh->holder[k] = 0;
    sh->phase[me] = K | LP_RELEASING;
    if (mp_lock_release(locks[k]) != 0)
      return 33;
    sh->phase[me] = LP_IDLE;
    __atomic_add_fetch(&sh->checks, 1, __ATOMIC_RELAXED);
  }
  return 0;
}

typedef struct lkills {
  long holding[2], maybe[2]; /* killed holding lock k; maybe holding */
} lkills;

static void l_note_kill(lshared *sh, int i, lkills *k) {
  uint32_t ph = sh->phase[i];
  int lk = (int)(ph >> 4) & 1;
  if ((ph & 15) == LP_HOLDING)
    k->holding[lk]++;
  else if ((ph & 15) == LP_ACQUIRING || (ph & 15) == LP_RELEASING)
    k->maybe[lk]++;
  sh->phase[i] = LP_IDLE;
}

Test(soak, locks, .timeout = SOAK_TIMEOUT) {
  soak s;
  soak_begin(&s, "locks");
  double until = s.t0 + share(0.12);
  mp_lock *locks[2];
  cr_assert_eq(mp_lock_new(&locks[0]), 0);
  cr_assert_eq(mp_rlock_new(&locks[1]), 0);
  mp_array *arr;
  cr_assert_eq(mp_raw_array_new(&arr, 'B', sizeof(lshared), NULL), 0);
  lshared *sh = mp_array_ptr(arr);
  slot w[L_WORKERS];
  for (int i = 0; i < L_WORKERS; i++) {
    w[i].fn = l_worker;
    cr_assert_eq(mp_args_new(&w[i].args), 0);
    mp_args_add_lock(w[i].args, locks[0]);
    mp_args_add_lock(w[i].args, locks[1]);
    mp_args_add_array(w[i].args, arr);
    mp_args_add_int(w[i].args, i);
    slot_start(&w[i]);
  }
  lkills k;
  memset(&k, 0, sizeof k);
  while (ts_now() < until) {
    pause_ms(2, 40);
    int i = (int)rng_below(L_WORKERS);
    slot_kill(&w[i]);
    l_note_kill(sh, i, &k);
    s.kills++;
    slot_start(&w[i]);
  }
  sh->stop = 1;
  for (int i = 0; i < L_WORKERS; i++) {
    int code = slot_end(&w[i], 20.0);
    if (code == -9) {
      l_note_kill(sh, i, &k);
      s.kills++;
    }
    CHECK(&s, code == 0 || code == -9,
          "lock worker %d ended with %d (30: an acquire timed out)", i,
          code);
  }
  slots_free_args(w, L_WORKERS);
  /* The test takes each lock last: a holder killed last is reported to
   * it. */
  for (int lk = 0; lk < 2; lk++) {
    int rc = mp_lock_acquire(locks[lk], 5.0);
    CHECK(&s, rc == 0 || rc == MP_EOWNERDEAD, "lock %d after the run: %s",
          lk, mp_err_name(rc));
    l_enter(sh, lk, rc);
    mp_lock_release(locks[lk]);
  }
  CHECK(&s, sh->bad_enter == 0,
        "a process entered while a living one was inside");
  CHECK(&s, sh->bad_silent == 0,
        "a process entered after a holder died inside, and acquire "
        "returned 0, not MP_EOWNERDEAD");
  CHECK(&s, sh->bad_dead == 0, "MP_EOWNERDEAD while the holder lived");
  for (int lk = 0; lk < 2; lk++) {
    uint64_t sum = 0, c = sh->counter[lk], od = sh->ownerdead[lk];
    for (int i = 0; i < L_WORKERS; i++)
      sum += sh->done[i][lk];
    /* A holder killed between its write and its count adds one. */
    CHECK(&s, c >= sum && c <= sum + (uint64_t)k.holding[lk],
          "lock %d: counter %llu, %llu increments counted, %ld holders "
          "killed", lk, (unsigned long long)c, (unsigned long long)sum,
          k.holding[lk]);
    /* One MP_EOWNERDEAD per holder killed inside; maybe one per process
     * killed in acquire or release. */
    CHECK(&s, od >= (uint64_t)k.holding[lk] &&
                  od <= (uint64_t)(k.holding[lk] + k.maybe[lk]),
          "lock %d: MP_EOWNERDEAD %llu times; %ld killed holding it, %ld "
          "in acquire or release", lk, (unsigned long long)od,
          k.holding[lk], k.maybe[lk]);
  }
  s.checks += (long)sh->checks;
  fprintf(stderr,
          "soak locks: Lock: %ld killed holding, %ld in acquire/release, "
          "%llu MP_EOWNERDEAD; RLock: %ld, %ld, %llu\n",
          k.holding[0], k.maybe[0], (unsigned long long)sh->ownerdead[0],
          k.holding[1], k.maybe[1], (unsigned long long)sh->ownerdead[1]);
  mp_lock_free(locks[0]);
  mp_lock_free(locks[1]);
  mp_array_free(arr);
  soak_end(&s, NULL);
}

/* ---- semaphores ---------------------------------------------------------- */

#define S_WORKERS 4
#define S_VALUE 2

/* Phase word: semaphore index << 4 | LP_* (as for locks). */
typedef struct sshared {
  volatile uint32_t stop;
  volatile uint32_t gate;            /* epoch number while parked, or 0 */
  volatile uint32_t parked[S_WORKERS]; /* the epoch each one parked in */
  volatile uint32_t phase[S_WORKERS];
  volatile uint32_t inside[2];       /* processes inside each, counted */
  volatile uint32_t over;            /* more than S_VALUE inside */
  volatile uint64_t checks;
} sshared;

/* Parked workers wait on the event of their epoch's parity: the test
 * clears the one of epoch g+1 while a slow worker may still be waking
 * from the one of epoch g (and all woke from g-1's, or g would not have
 * begun), so no wake-up is lost. */

static int s_worker(const mp_args *a) {
  mp_semaphore *sems[2] = {mp_args_semaphore(a, 0), mp_args_semaphore(a, 1)};
  sshared *sh = mp_array_ptr(mp_args_array(a, 2));
  mp_event *go[2] = {mp_args_event(a, 3), mp_args_event(a, 4)};
  int me = (int)mp_args_int(a, 5);
  for (unsigned round = 0; !sh->stop; round++) {
    uint32_t g = sh->gate;
    if (g != 0) { /* park, outside, until the test has looked */
      sh->parked[me] = g;
      if (mp_event_wait(go[g & 1], 30.0) != 0)
        return 52;
      continue;
    }
    int k = (int)(round & 1);
    uint32_t K = (uint32_t)k << 4;
    sh->phase[me] = K | LP_ACQUIRING;
    if (mp_semaphore_acquire(sems[k], 10.0) != 0)
      return 50; /* timed out */
    sh->phase[me] = K | LP_HOLDING;
    /* A holder killed inside stays counted, as its unit stays taken
     * (the test zeroes the count when it gives the units back). */
    if (__atomic_add_fetch(&sh->inside[k], 1, __ATOMIC_SEQ_CST) > S_VALUE)
      sh->over = 1;
    spin(300);
    __atomic_sub_fetch(&sh->inside[k], 1, __ATOMIC_SEQ_CST);
    sh->phase[me] = K | LP_RELEASING;
    if (mp_semaphore_release(sems[k]) != 0)
      return 51;
    sh->phase[me] = LP_IDLE;
    __atomic_add_fetch(&sh->checks, 1, __ATOMIC_RELAXED);
  }
  return 0;
}

typedef struct all_parked_arg {
  sshared *sh;
  uint32_t gate;
} all_parked_arg;

static int all_parked(void *arg) {
  all_parked_arg *p = arg;
  for (int j = 0; j < S_WORKERS; j++)
    if (p->sh->parked[j] != p->gate)
      return 0;
  return 1;
}

Test(soak, semaphore, .timeout = SOAK_TIMEOUT) {
  soak s;
  soak_begin(&s, "semaphore");
  double until = s.t0 + share(0.10);
  mp_semaphore *sems[2];
  cr_assert_eq(mp_semaphore_new(&sems[0], S_VALUE), 0);
  cr_assert_eq(mp_bounded_semaphore_new(&sems[1], S_VALUE), 0);
  mp_event *go[2];
  cr_assert_eq(mp_event_new(&go[0]), 0);
  cr_assert_eq(mp_event_new(&go[1]), 0);
  mp_array *arr;
  cr_assert_eq(mp_raw_array_new(&arr, 'B', sizeof(sshared), NULL), 0);
  sshared *sh = mp_array_ptr(arr);
  slot w[S_WORKERS];
  for (int i = 0; i < S_WORKERS; i++) {
    w[i].fn = s_worker;
    cr_assert_eq(mp_args_new(&w[i].args), 0);
    mp_args_add_semaphore(w[i].args, sems[0]);
    mp_args_add_semaphore(w[i].args, sems[1]);
    mp_args_add_array(w[i].args, arr);
    mp_args_add_event(w[i].args, go[0]);
    mp_args_add_event(w[i].args, go[1]);
    mp_args_add_int(w[i].args, i);
    slot_start(&w[i]);
  }
  long holding[2] = {0, 0}, maybe[2] = {0, 0}, gone_total = 0, epochs = 0;
  uint32_t gate = 0;
  while (ts_now() < until && s.failures == 0) {
    /* Run, then kill one of them at a random moment ... */
    pause_ms(2, 40);
    int i = (int)rng_below(S_WORKERS);
    slot_kill(&w[i]);
    s.kills++;
    uint32_t ph = sh->phase[i];
    int sk = (int)(ph >> 4) & 1;
    long e_hold[2] = {0, 0}, e_maybe[2] = {0, 0};
    if ((ph & 15) == LP_HOLDING)
      e_hold[sk]++;
    else if ((ph & 15) == LP_ACQUIRING || (ph & 15) == LP_RELEASING)
      e_maybe[sk]++;
    sh->phase[i] = LP_IDLE;
    sh->parked[i] = 0;
    slot_start(&w[i]);
    /* ... then park them all outside and look at the values. */
    all_parked_arg pa = {sh, ++gate};
    cr_assert_eq(mp_event_clear(go[gate & 1]), 0);
    sh->gate = gate;
    CHECK(&s, ts_poll_until(all_parked, &pa, 30.0),
          "epoch %u: the workers did not all park within 30 s", gate);
    for (int k = 0; k < 2; k++) {
      int v = mp_semaphore_get_value(sems[k]);
      long gone = S_VALUE - v;
      /* A semaphore has no owner: a unit its killed holder took is gone
       * (as in Python); exactly those, maybe one taken or given back by
       * a process killed inside acquire or release. */
      CHECK(&s, gone >= e_hold[k] && gone <= e_hold[k] + e_maybe[k],
            "epoch %u, semaphore %d: value %d; %ld killed holding it, %ld "
            "in acquire or release",
            gate, k, v, e_hold[k], e_maybe[k]);
      for (long u = 0; u < gone; u++)
        CHECK(&s, mp_semaphore_release(sems[k]) == 0, "give a unit back");
      CHECK(&s, mp_semaphore_get_value(sems[k]) == S_VALUE, "value back");
      if (k == 1) /* bounded: one more is refused */
        CHECK(&s, mp_semaphore_release(sems[k]) == MP_EVALUE,
              "a bounded semaphore took one release too many");
      gone_total += gone;
      holding[k] += e_hold[k];
      maybe[k] += e_maybe[k];
      sh->inside[k] = 0; /* nobody inside, no unit taken */
    }
    epochs++;
    sh->gate = 0;
    cr_assert_eq(mp_event_set(go[gate & 1]), 0);
  }
  sh->stop = 1;
  sh->gate = 0;
  mp_event_set(go[0]);
  mp_event_set(go[1]);
  for (int i = 0; i < S_WORKERS; i++) {
    int code = slot_end(&w[i], 20.0);
    CHECK(&s, code == 0, "semaphore worker %d ended with %d (50: an "
          "acquire timed out; 52: parked too long)", i, code);
  }
  slots_free_args(w, S_WORKERS);
  CHECK(&s, sh->over == 0, "more than %d processes inside a semaphore of %d",
        S_VALUE, S_VALUE);
  /* At least a few epochs, unless the share was too short for them
   * (MPROC_SOAK_SECONDS of a few seconds). */
  CHECK(&s, epochs > 10 || share(0.10) < 2.0, "only %ld epochs", epochs);
  s.checks += (long)sh->checks;
  fprintf(stderr, "soak semaphore: %ld epochs; Semaphore: %ld killed "
          "holding, %ld in acquire/release; BoundedSemaphore: %ld, %ld; %ld "
          "units given back\n", epochs, holding[0], maybe[0], holding[1],
          maybe[1], gone_total);
  mp_semaphore_free(sems[0]);
  mp_semaphore_free(sems[1]);
  mp_event_free(go[0]);
  mp_event_free(go[1]);
  mp_array_free(arr);
  soak_end(&s, NULL);
}

/* ---- pool ---------------------------------------------------------------- */

#define P_WORKERS 3
#define P_ITEMS 60

static int slow_square(const mp_args *a, mp_args *r) {
  int64_t x = mp_args_int(a, 0);
  spin(x % 7 == 0 ? 200000 : 20000); /* some calls spin longer */
  return mp_args_add_int(r, x * x);
}

typedef struct pool_run {
  mp_pool *p;
  mp_event *go[2]; /* by the hold epoch's parity (see sshared) */
  volatile int stop;
  volatile uint32_t hold, parked; /* epochs, as for semaphores */
  volatile long kgen; /* odd while a kill is on its way */
  long maps, ok, died, died_unkilled, wrong, other, timeouts;
  char other_msg[256];
} pool_run;

static int pool_mapper(void *arg) {
  pool_run *r = arg;
  mp_args *in = NULL;
  mp_args_new(&in);
  for (int64_t i = 0; i < P_ITEMS; i++)
    mp_args_add_int(in, i);
  while (!r->stop) {
    uint32_t h = r->hold;
    if (h != 0) { /* no map running: the workers are idle */
      r->parked = h;
      if (mp_event_wait(r->go[h & 1], 60.0) != 0)
        break;
      continue;
    }
    long g0 = r->kgen;
    mp_async *a = NULL;
    int rc = mp_pool_map_async(r->p, slow_square, in,
                               1 + (size_t)(r->maps % 4), NULL, NULL, NULL,
                               &a);
    const mp_args *out = NULL;
    if (rc == 0)
      rc = mp_async_get(a, 30.0, &out);
    long g1 = r->kgen;
    r->maps++;
    if (rc == 0) {
      int right = out != NULL && mp_args_count(out) == P_ITEMS;
      for (int64_t i = 0; right && i < P_ITEMS; i++)
        right = mp_args_int(out, (size_t)i) == i * i;
      if (right)
        r->ok++;
      else
        r->wrong++;
    } else if (rc == MP_EWORKERDIED) {
      r->died++;
      /* Only a worker killed while the map ran fails it. */
      if (g0 == g1 && (g0 & 1) == 0)
        r->died_unkilled++;
    } else if (rc == MP_ETIMEDOUT) {
      r->timeouts++;
    } else {
      if (r->other++ == 0)
        snprintf(r->other_msg, sizeof r->other_msg, "%s: %s",
                 mp_err_name(rc), mp_last_error_message());
    }
    mp_async_free(a);
    if (r->timeouts)
      break; /* a hang: stop here, the test fails */
  }
  mp_args_free(in);
  return 0;
}

static int mapper_parked(void *arg) {
  pool_run *r = arg;
  return r->parked == r->hold || r->timeouts != 0;
}

Test(soak, pool, .timeout = SOAK_TIMEOUT) {
  soak s;
  soak_begin(&s, "pool");
  double until = s.t0 + share(0.18);
  mp_pool_options o = MP_POOL_OPTIONS_INIT;
  o.workers = P_WORKERS;
  o.context = soak_ctx();
  pool_run r;
  memset(&r, 0, sizeof r);
  cr_assert_eq(mp_pool_new_ex(&r.p, &o), 0, "%s", mp_last_error_message());
  cr_assert_eq(mp_event_new(&r.go[0]), 0);
  cr_assert_eq(mp_event_new(&r.go[1]), 0);
  mp_thread *t;
  cr_assert_eq(mp_thread_new(&t, pool_mapper, &r), 0);
  cr_assert_eq(mp_thread_start(t), 0);
  long busy = 0, idle = 0;
  uint32_t epoch = 0;
  while (ts_now() < until && r.timeouts == 0) {
    pause_ms(5, 80);
    int want_idle = rng_below(3) == 0;
    if (want_idle) {
      /* Let the running map end, keep the next from starting. */
      ++epoch;
      mp_event_clear(r.go[epoch & 1]);
      r.hold = epoch;
      CHECK(&s, ts_poll_until(mapper_parked, &r, 60.0),
            "the map running did not end within 60 s");
    }
    int64_t pids[P_WORKERS];
    int n = mp_pool_worker_pids(r.p, pids, P_WORKERS);
    int64_t pid = n > 0 ? pids[rng_below((uint64_t)n)] : 0;
    if (pid > 0) { /* 0: that worker is being replaced */
      r.kgen++;
      if (kill((pid_t)pid, SIGKILL) == 0) {
        s.kills++;
        want_idle ? idle++ : busy++;
        CHECK(&s, wait_ended(pid, 10.0), "worker %lld did not die",
              (long long)pid);
      }
      r.kgen++;
    }
    if (want_idle) {
      r.hold = 0;
      mp_event_set(r.go[epoch & 1]);
    }
  }
  r.stop = 1;
  r.hold = 0;
  mp_event_set(r.go[0]);
  mp_event_set(r.go[1]);
  cr_assert_eq(mp_thread_join(t, 90.0), 0, "the mapper does not end");
  mp_thread_free(t);
  /* And it goes on. */
  mp_args *in = NULL, *out = NULL;
  mp_args_new(&in);
  mp_args_add_int(in, 7);
  int rc = mp_pool_map(r.p, slow_square, in, 1, &out);
  CHECK(&s, rc == 0 && out != NULL && mp_args_int(out, 0) == 49,
        "a map after the run: %s", mp_last_error_message());
  mp_args_free(out);
  mp_args_free(in);
  mp_pool_free(r.p);
  mp_event_free(r.go[0]);
  mp_event_free(r.go[1]);
  CHECK(&s, r.timeouts == 0, "a map did not end within 30 s");
  CHECK(&s, r.wrong == 0, "%ld maps gave wrong values", r.wrong);
  CHECK(&s, r.other == 0, "%ld maps failed otherwise (first: %s)", r.other,
        r.other_msg);
  CHECK(&s, r.died_unkilled == 0,
        "%ld maps failed with MP_EWORKERDIED though no worker was killed "
        "while they ran", r.died_unkilled);
  CHECK(&s, r.ok > 0, "no map succeeded");
  s.checks += r.maps;
  fprintf(stderr, "soak pool: %ld maps, %ld right, %ld MP_EWORKERDIED; "
          "%ld workers killed busy, %ld idle\n", r.maps, r.ok, r.died, busy,
          idle);
  soak_end(&s, NULL);
}

/* ---- manager ------------------------------------------------------------- */

#define M_CLIENTS 3
#define M_IDS (1 << 18) /* queue items per client: more than a run puts */

enum { MP_SET = 1, MP_APPEND = 2, MP_QPUT = 3, MP_QGET = 4 };

typedef struct mshared {
  volatile uint32_t stop, bad, server_killed;
  volatile uint32_t phase[M_CLIENTS];
  volatile int64_t vseq[M_CLIENTS], set_ok[M_CLIENTS]; /* dict values */
  volatile uint64_t qseq[M_CLIENTS], progress[M_CLIENTS];
  volatile uint64_t appends_ok, puts_ok, gets_ok, ops;
  volatile int32_t end_rc[M_CLIENTS]; /* what the server's death gave */
  volatile double end_t[M_CLIENTS];   /* and when (ts_now) */
  volatile uint8_t qput[M_CLIENTS][M_IDS], qgot[M_CLIENTS][M_IDS];
  char why[256];
} mshared;

static int m_client(const mp_args *a) {
  mp_proxy *d = mp_args_proxy(a, 0), *l = mp_args_proxy(a, 1),
           *q = mp_args_proxy(a, 2);
  mshared *sh = mp_array_ptr(mp_args_array(a, 3));
  int me = (int)mp_args_int(a, 4);
  char key[16];
  snprintf(key, sizeof key, "c%d", me);
  while (!sh->stop) {
    mp_args *got = NULL;
    int64_t v = ++sh->vseq[me];
    sh->phase[me] = MP_SET;
    int rc = mp_dict_set(d, "sI", key, v);
    if (rc == 0) {
      sh->set_ok[me] = v;
      rc = mp_dict_get(d, &got, "s", key);
    }
    if (rc == 0 && mp_args_int(got, 0) != v)
      rc = MP_EVALUE;
    mp_args_free(got);
    got = NULL;
    if (rc == 0) {
      sh->phase[me] = MP_APPEND;
      rc = mp_list_append(l, "I", ((int64_t)me << 32) | v);
      if (rc == 0)
        __atomic_add_fetch(&sh->appends_ok, 1, __ATOMIC_RELAXED);
    }
    uint64_t seq = sh->qseq[me];
    if (rc == 0 && seq < M_IDS) {
      sh->qseq[me] = seq + 1;
      sh->phase[me] = MP_QPUT;
      rc = mp_proxy_queue_put(q, 10.0, "I", (int64_t)((uint64_t)me << 32 |
                                                      seq));
      if (rc == 0) {
        sh->qput[me][seq] = 1;
        __atomic_add_fetch(&sh->puts_ok, 1, __ATOMIC_RELAXED);
        /* Never empty here: every client puts one before it takes one. */
        sh->phase[me] = MP_QGET;
        rc = mp_proxy_queue_get(q, 10.0, &got);
      }
      if (rc == 0) {
        uint64_t id = (uint64_t)mp_args_int(got, 0);
        uint32_t c = (uint32_t)(id >> 32), s = (uint32_t)id;
        if (c >= M_CLIENTS || s >= sh->qseq[c] || sh->qgot[c][s]++ != 0)
          rc = MP_EVALUE; /* never put, or taken twice */
        else
          __atomic_add_fetch(&sh->gets_ok, 1, __ATOMIC_RELAXED);
      }
      mp_args_free(got);
    }
    if (rc != 0) {
      if (sh->server_killed) { /* the end: say what we got, and when */
        sh->end_t[me] = ts_now();
        sh->end_rc[me] = rc;
        return 0;
      }
      snprintf(sh->why, sizeof sh->why, "client %d: %s: %s", me,
               mp_err_name(rc), mp_last_error_message());
      sh->bad = 1;
      return 40;
    }
    sh->phase[me] = 0;
    sh->progress[me]++;
    __atomic_add_fetch(&sh->ops, 6, __ATOMIC_RELAXED);
  }
  return 0;
}

typedef struct mkills {
  long set, append, qput, qget;
} mkills;

static void m_note_kill(mshared *sh, int i, mkills *k) {
  switch (sh->phase[i]) {
  case MP_SET: k->set++; break;
  case MP_APPEND: k->append++; break;
  case MP_QPUT: k->qput++; break;
  case MP_QGET: k->qget++; break;
  default: break;
  }
  sh->phase[i] = 0;
}

typedef struct progress_arg {
  mshared *sh;
  uint64_t from[M_CLIENTS];
} progress_arg;

static int all_progressed(void *arg) {
  progress_arg *p = arg;
  for (int i = 0; i < M_CLIENTS; i++)
    if (p->sh->progress[i] <= p->from[i] + 2)
      return 0;
  return 1;
}

Test(soak, manager, .timeout = SOAK_TIMEOUT) {
  soak s;
  soak_begin(&s, "manager");
  double until = s.t0 + share(0.18);
  mp_manager_options mo = MP_MANAGER_OPTIONS_INIT;
  mo.context = soak_ctx();
  mp_manager *m;
  cr_assert_eq(mp_manager_start(&m, &mo), 0, "%s", mp_last_error_message());
  /* The server is our only child now (no call gives its pid). */
  mp_process *kids[4];
  cr_assert_eq(mp_active_children(kids, 4), 1, "the server alone");
  int64_t server = mp_process_pid(kids[0]);
  mp_proxy *d, *l, *q;
  cr_assert_eq(mp_manager_dict(m, &d), 0);
  cr_assert_eq(mp_manager_list(m, &l), 0);
  cr_assert_eq(mp_manager_queue(m, 0, &q), 0);
  mp_array *arr;
  cr_assert_eq(mp_raw_array_new(&arr, 'B', sizeof(mshared), NULL), 0);
  mshared *sh = mp_array_ptr(arr);
  slot w[M_CLIENTS];
  for (int i = 0; i < M_CLIENTS; i++) {
    w[i].fn = m_client;
    cr_assert_eq(mp_args_new(&w[i].args), 0);
    mp_args_add_proxy(w[i].args, d);
    mp_args_add_proxy(w[i].args, l);
    mp_args_add_proxy(w[i].args, q);
    mp_args_add_array(w[i].args, arr);
    mp_args_add_int(w[i].args, i);
    slot_start(&w[i]);
  }
  mkills k;
  memset(&k, 0, sizeof k);
  while (ts_now() < until && !sh->bad) {
    pause_ms(10, 100);
    int i = (int)rng_below(M_CLIENTS);
    slot_kill(&w[i]);
    m_note_kill(sh, i, &k);
    s.kills++;
    slot_start(&w[i]);
  }
  sh->stop = 1;
  for (int i = 0; i < M_CLIENTS; i++) {
    int code = slot_end(&w[i], 30.0);
    CHECK(&s, code == 0, "client %d ended with %d: %s", i, code, sh->why);
  }
  CHECK(&s, sh->bad == 0, "a surviving client's call failed: %s", sh->why);

  /* The objects, exact within the kills. */
  int64_t len = mp_list_len(l);
  uint64_t ap = sh->appends_ok;
  CHECK(&s, len >= (int64_t)ap && len <= (int64_t)(ap + (uint64_t)k.append),
        "list length %lld; %llu appends returned 0, %ld clients killed "
        "appending", (long long)len, (unsigned long long)ap, k.append);
  for (int i = 0; i < M_CLIENTS; i++) {
    mp_args *v = NULL;
    char key[16];
    snprintf(key, sizeof key, "c%d", i);
    int rc = mp_dict_get(d, &v, "s", key);
    int64_t x = rc == 0 ? mp_args_int(v, 0) : -1;
    mp_args_free(v);
    /* The last set that returned 0, or one its client was killed in. */
    CHECK(&s, rc == 0 && (x == sh->set_ok[i] || x == sh->vseq[i]),
          "dict[%s] = %lld (%s); last set returned 0: %lld, last tried: "
          "%lld", key, (long long)x, mp_err_name(rc),
          (long long)sh->set_ok[i], (long long)sh->vseq[i]);
  }
  int64_t qs = mp_proxy_queue_qsize(q), drained = 0;
  int64_t net = (int64_t)sh->puts_ok - (int64_t)sh->gets_ok;
  CHECK(&s, qs >= net - k.qget && qs <= net + k.qput,
        "manager queue: qsize %lld; %lld puts, %lld gets returned; %ld "
        "clients killed putting, %ld getting", (long long)qs,
        (long long)sh->puts_ok, (long long)sh->gets_ok, k.qput, k.qget);
  long qbad = 0, qlost = 0;
  for (;;) {
    mp_args *v = NULL;
    if (mp_proxy_queue_get(q, 0, &v) != 0)
      break;
    uint64_t id = (uint64_t)mp_args_int(v, 0);
    uint32_t c = (uint32_t)(id >> 32), sq = (uint32_t)id;
    mp_args_free(v);
    drained++;
    if (c >= M_CLIENTS || sq >= sh->qseq[c] || sh->qgot[c][sq]++ != 0)
      qbad++;
  }
  for (int c = 0; c < M_CLIENTS; c++)
    for (uint64_t i = 0; i < sh->qseq[c]; i++)
      qlost += sh->qput[c][i] && !sh->qgot[c][i];
  CHECK(&s, drained == qs, "qsize %lld, drained %lld", (long long)qs,
        (long long)drained);
  CHECK(&s, qbad == 0, "%ld queue items never put or taken twice", qbad);
  CHECK(&s, qlost <= k.qget, "%ld queue items lost, %ld clients killed "
        "getting", qlost, k.qget);

  /* Now the server itself, under running clients. */
  sh->stop = 0;
  progress_arg pa;
  pa.sh = sh;
  for (int i = 0; i < M_CLIENTS; i++) {
    pa.from[i] = sh->progress[i];
    sh->end_rc[i] = 1;
    slot_start(&w[i]);
  }
  CHECK(&s, ts_poll_until(all_progressed, &pa, 30.0),
        "the clients make no progress");
  cr_assert(alive(server), "the server runs");
  sh->server_killed = 1;
  double t_kill = ts_now();
  kill((pid_t)server, SIGKILL);
  s.kills++;
  double worst = 0;
  for (int i = 0; i < M_CLIENTS; i++) {
    int code = slot_end(&w[i], 30.0);
    double after = sh->end_t[i] - t_kill;
    worst = after > worst ? after : worst;
    CHECK(&s, code == 0 && sh->end_rc[i] == MP_ECLOSED,
          "client %d, server killed: exit %d, its call gave %s (%d), "
          "not MP_ECLOSED", i, code, mp_err_name(sh->end_rc[i]),
          sh->end_rc[i]);
    CHECK(&s, code != 0 || after < 10.0, "client %d noticed after %.1f s", i,
          after);
  }
  slots_free_args(w, M_CLIENTS);
  double c0 = ts_now();
  int rc = mp_dict_set(d, "si", "after", 1);
  CHECK(&s, rc == MP_ECLOSED, "the owner's call on a dead server: %s",
        mp_err_name(rc));
  CHECK(&s, ts_now() - c0 < 10.0, "and at once (%.1f s)", ts_now() - c0);
  mp_proxy_free(d);
  mp_proxy_free(l);
  mp_proxy_free(q);
  c0 = ts_now();
  mp_manager_free(m);
  double t_free = ts_now() - c0;
  CHECK(&s, t_free < 10.0, "mp_manager_free took %.1f s", t_free);
  CHECK(&s, !alive(server), "the server is gone");
  s.checks += (long)sh->ops;
  fprintf(stderr, "soak manager: %llu appends, %llu queue puts, %llu gets; "
          "clients killed in set %ld, append %ld, put %ld, get %ld; server "
          "killed: clients out within %.3f s, free %.3f s\n",
          (unsigned long long)sh->appends_ok,
          (unsigned long long)sh->puts_ok, (unsigned long long)sh->gets_ok,
          k.set, k.append, k.qput, k.qget, worst, t_free);
  mp_array_free(arr);
  soak_end(&s, NULL);
}

/* ---- create/free cycles -------------------------------------------------- */

static int noop_target(const mp_args *a) {
  (void)a;
  return 0;
}

static int echo_task(const mp_args *a, mp_args *r) {
  return mp_args_add_int(r, mp_args_int(a, 0));
}

static int thread_noop(void *arg) {
  (void)arg;
  return 0;
}

typedef struct cycle_counts {
  long light, listeners, processes, pools, managers;
} cycle_counts;

/* One cycle of every light kind (each used once, then freed); `heavy`
 * adds the kinds that start processes.  Every call is checked. */
static void one_cycle(long serial, int heavy, cycle_counts *n) {
  mp_queue *q;
  for (int kind = 0; kind < 3; kind++) {
    int rc = kind == 0   ? mp_queue_new(&q, 0)
             : kind == 1 ? mp_joinable_queue_new(&q, 4)
                         : mp_simple_queue_new(&q);
    cr_assert_eq(rc, 0);
    cr_assert_eq(mp_queue_put(q, "x", 1, 0), 0);
    mp_queue_free(q); /* with the message still in */
  }
  mp_lock *l, *rl;
  cr_assert_eq(mp_lock_new(&l), 0);
  cr_assert_eq(mp_lock_acquire(l, 0), 0);
  cr_assert_eq(mp_rlock_new(&rl), 0);
  mp_condition *c;
  cr_assert_eq(mp_condition_new(&c, rl), 0);
  cr_assert_eq(mp_condition_acquire(c, 0), 0);
  cr_assert_eq(mp_condition_notify_all(c), 0);
  cr_assert_eq(mp_condition_release(c), 0);
  mp_condition_free(c);
  mp_lock_free(rl);
  mp_lock_free(l); /* held */
  mp_semaphore *s, *bs;
  cr_assert_eq(mp_semaphore_new(&s, 2), 0);
  cr_assert_eq(mp_semaphore_acquire(s, 0), 0);
  cr_assert_eq(mp_bounded_semaphore_new(&bs, 2), 0);
  mp_semaphore_free(s);
  mp_semaphore_free(bs);
  mp_event *e;
  cr_assert_eq(mp_event_new(&e), 0);
  cr_assert_eq(mp_event_set(e), 0);
  mp_event_free(e);
  mp_barrier *b;
  cr_assert_eq(mp_barrier_new(&b, 2, NULL, -1), 0);
  mp_barrier_free(b);
  mp_value *v, *rv;
  int64_t x = serial;
  cr_assert_eq(mp_value_new(&v, 'q', &x), 0);
  cr_assert_eq(mp_raw_value_new(&rv, 'd', NULL), 0);
  mp_value_free(v);
  mp_value_free(rv);
  mp_array *a, *ra;
  cr_assert_eq(mp_array_new(&a, 'd', 64, NULL), 0);
  cr_assert_eq(mp_raw_array_new(&ra, 'B', 4096, NULL), 0);
  mp_array_free(a);
  mp_array_free(ra);
  /* Named shared memory: a name of ours, and a generated one. */
  char name[64];
  snprintf(name, sizeof name, "mpt-soak-%d-%ld", (int)getpid(), serial);
  mp_shm *sh, *gen;
  cr_assert_eq(mp_shm_new(&sh, name, 4096), 0, "%s", mp_last_error_message());
  cr_assert_eq(mp_shm_new(&gen, NULL, 4096), 0, "%s",
               mp_last_error_message());
  mp_shm_free(sh);
  mp_shm_free(gen);
  mp_conn *r, *w;
  cr_assert_eq(mp_pipe(1, &r, &w), 0);
  cr_assert_eq(mp_conn_send_bytes(w, "ping", 4), 0);
  mp_conn_free(r);
  mp_conn_free(w);
  mp_thread *t;
  cr_assert_eq(mp_thread_new(&t, thread_noop, NULL), 0);
  cr_assert_eq(mp_thread_start(t), 0);
  cr_assert_eq(mp_thread_join(t, 30.0), 0);
  mp_thread_free(t);
  n->light += 20;
  if (heavy) {
    mp_listener *li;
    cr_assert_eq(mp_listener_new(&li, NULL, MP_AF_DEFAULT, 0, NULL, 0), 0);
    mp_listener_free(li);
    n->listeners++;
    mp_process *p;
    cr_assert_eq(mp_process_new(&p, noop_target, NULL), 0);
    mp_process_set_context(p, soak_ctx());
    cr_assert_eq(mp_process_start(p), 0);
    cr_assert_eq(mp_process_join(p, 30.0), 0);
    mp_process_free(p);
    n->processes++;
  }
  if (heavy > 1) {
    mp_pool_options o = MP_POOL_OPTIONS_INIT;
    o.workers = 2;
    o.context = soak_ctx();
    mp_pool *pl;
    cr_assert_eq(mp_pool_new_ex(&pl, &o), 0);
    mp_args *r1 = NULL, *in = NULL;
    mp_args_new(&in);
    mp_args_add_int(in, 3);
    cr_assert_eq(mp_pool_apply(pl, echo_task, in, &r1), 0);
    mp_args_free(r1);
    mp_args_free(in);
    mp_pool_free(pl);
    n->pools++;
  }
  if (heavy > 2) {
    mp_manager_options mo = MP_MANAGER_OPTIONS_INIT;
    mo.context = soak_ctx();
    mp_manager *m;
    cr_assert_eq(mp_manager_start(&m, &mo), 0);
    mp_proxy *d;
    cr_assert_eq(mp_manager_dict(m, &d), 0);
    cr_assert_eq(mp_dict_set(d, "si", "k", 1), 0);
    mp_proxy_free(d);
    mp_manager_free(m);
    n->managers++;
  }
}

/* The heavier the kind, the fewer its cycles (they start processes):
 * 1,000 of every light kind per 1,000 cycles, 100 listeners and process
 * start/joins, 20 pools, 10 managers. */
static void cycles(long first, long count, cycle_counts *n) {
  for (long i = first; i < first + count; i++)
    one_cycle(i, i % 100 == 0 ? 3 : i % 50 == 0 ? 2 : i % 10 == 0, n);
}

/* How much the 1,000 cycles after the warm-up may grow the test process.
 * The heap in use (mallinfo2, every arena) counts what glibc's per-thread
 * cache (tcache) keeps of the blocks freed: up to 7 per size class, so the
 * figure creeps up as rarer sizes get freed, whatever the count (1,000
 * cycles: +6..+13 KB measured; 3,000: +12 KB; valgrind finds no leak per
 * cycle).  With the cache off (GLIBC_TUNABLES=glibc.malloc.tcache_count=0,
 * as scripts/test runs this) the heap ends exactly where it began (0
 * bytes measured), so any block kept per cycle, even one per pool or
 * manager, shows: the bound is then 2 KiB.  Without, it is 32 KiB,
 * ~2.5x the most the cache was seen to keep (one 32-byte block kept per
 * cycle still exceeds it).  RSS: +0..+36 KiB measured; 1 MiB leaves room
 * for the allocator growing its heap once. */
#define CYCLES_RSS_MAX_KIB 1024
#define CYCLES_HEAP_MAX_BYTES (32 * 1024)
#define CYCLES_HEAP_MAX_BYTES_NO_TCACHE 2048

static int tcache_off(void) {
  const char *t = getenv("GLIBC_TUNABLES");
  return t != NULL && strstr(t, "glibc.malloc.tcache_count=0") != NULL;
}

Test(soak, cycles, .timeout = SOAK_TIMEOUT) {
  soak s;
  soak_begin(&s, "cycles");
  /* One malloc arena: glibc makes more (up to 8 per core, some
   * bookkeeping each) as threads of pools and managers contend, which
   * would count in the heap figure. */
  cr_assert_eq(mallopt(M_ARENA_MAX, 1), 1);
  long heap_max = tcache_off() ? CYCLES_HEAP_MAX_BYTES_NO_TCACHE
                               : CYCLES_HEAP_MAX_BYTES;
  cycle_counts n;
  memset(&n, 0, sizeof n);
  /* Warm up: what the library keeps once (its tables, the first thread's
   * state, the allocator's arenas) is made here, not counted. */
  cycles(1, 100, &n);
  int fds0 = count_fds();
  long rss0 = rss_kib(), heap0 = heap_bytes();
  s.fds0 = fds0; /* the row shows what the 1,000 cycles left */
  s.rss0 = rss0;
  memset(&n, 0, sizeof n);
  const char *e = getenv("MPROC_SOAK_CYCLES");
  long count = e != NULL && *e != '\0' ? atol(e) : 1000;
  cycles(101, count > 0 ? count : 1000, &n);
  int fds1 = count_fds();
  long rss1 = rss_kib(), heap1 = heap_bytes();
  s.checks = n.light + n.listeners + n.processes + n.pools + n.managers;
  CHECK(&s, fds1 == fds0, "descriptors: %d before, %d after", fds0, fds1);
  CHECK(&s, rss1 - rss0 <= CYCLES_RSS_MAX_KIB, "RSS grew by %ld KiB",
        rss1 - rss0);
  CHECK(&s, heap1 - heap0 <= heap_max,
        "heap in use grew by %ld bytes (bound %ld: tcache %s)",
        heap1 - heap0, heap_max, tcache_off() ? "off" : "on");
  char extra[200];
  snprintf(extra, sizeof extra,
           "(%ld cycles: %ld objects, %ld listeners, %ld processes, %ld "
           "pools, %ld managers; after warm-up RSS %+ld KiB, heap %+ld B, "
           "tcache %s)",
           count, n.light, n.listeners, n.processes, n.pools, n.managers,
           rss1 - rss0, heap1 - heap0, tcache_off() ? "off" : "on");
  soak_end(&s, extra);
}
