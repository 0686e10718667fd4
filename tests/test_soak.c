/*
 * test_soak.c - random-kill soak tests (Linux; scripts/test leg "soak",
 * not a CTest test).
 *
 * For a bounded time (MPROC_SOAK_SECONDS, default 60, shared among the
 * scenarios) a killer in the test process SIGKILLs workers at random
 * moments and starts them again, while the survivors check every
 * invariant they can see and the test checks the rest at the end:
 *   - queue: producers and consumers of a JoinableQueue with a small ring
 *     (messages small and streamed); every message is checked byte by
 *     byte; none is delivered twice; none is lost but the one a killed
 *     consumer was holding; none delivered that was never put; qsize and
 *     the unfinished count exact after a final drain;
 *   - locks: Lock and RLock holders; nobody ever enters while a living
 *     process is inside; MP_EOWNERDEAD only when the holder is dead; no
 *     acquire times out; the guarded counter exact within the kills;
 *   - pool: maps on a pool whose workers (busy or idle) are killed: each
 *     map gives exactly the right values or MP_EWORKERDIED, never
 *     MP_EBROKEN or a hang, and the pool keeps going;
 *   - manager: clients killed while they use dicts and a list; the
 *     survivors' every call succeeds; then the server itself is killed
 *     and its proxies fail at once instead of hanging;
 *   - cycles: 1,000 create/free cycles of every object kind (fewer for
 *     pools, managers and processes, which start processes): the test
 *     process's descriptors, RSS, /dev/shm and temporary directory end
 *     where they began.
 * After each scenario: no process of ours left (children, trackers,
 * janitors, fork servers, managers), no zombie, no name in /dev/shm and
 * no socket directory left.  Each prints one row of the table the leg
 * shows.  MPROC_SOAK_SEED replays a run (the seed is printed).
 */
#if !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"
#include "support.h"

TS_SUITE(soak);

#define SOAK_TIMEOUT 600

/* ---- time, randomness, the table ---------------------------------------- */

static double soak_seconds(void) {
  const char *e = getenv("MPROC_SOAK_SECONDS");
  double s = e != NULL && *e != '\0' ? atof(e) : 60.0;
  return s > 0 ? s : 60.0;
}

/* Each scenario's share of the time. */
static double share(double fraction) { return soak_seconds() * fraction; }

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

static void row(const char *scenario, double secs, long kills, long checks,
                long failures, const char *leftovers) {
  static int header;
  if (!header++)
    printf("%-10s %8s %7s %10s %8s  %s\n", "scenario", "seconds", "kills",
           "checks", "failed", "left over");
  printf("%-10s %8.1f %7ld %10ld %8ld  %s\n", scenario, secs, kills, checks,
         failures, leftovers);
  fflush(stdout);
}

/* ---- what is left over --------------------------------------------------- */

/* Processes running our executable other than us and our ancestors
 * (Criterion's runner): children, trackers, janitors, managers, fork
 * servers.  Zombies count (they are children nobody reaped). */
static int strays(char *what, size_t cap) {
  char self[512], exe[512], path[64];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    return 0;
  self[n] = '\0';
  pid_t me = getpid(), up[16];
  int nup = 0;
  for (pid_t p = getppid(); p > 1 && nup < 16;) {
    up[nup++] = p;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)p);
    FILE *f = fopen(path, "r");
    if (f == NULL)
      break;
    char buf[512];
    size_t r = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[r] = '\0';
    char *rp = strrchr(buf, ')'), st;
    int pp;
    if (rp == NULL || sscanf(rp + 1, " %c %d", &st, &pp) != 2)
      break;
    p = pp;
  }
  int count = 0;
  what[0] = '\0';
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
      continue;
    exe[m] = '\0';
    if (strcmp(exe, self) != 0)
      continue;
    count++;
    size_t len = strlen(what);
    snprintf(what + len, cap - len, " %ld", pid);
  }
  if (d != NULL)
    closedir(d);
  return count;
}

/* Our children that ended and nobody reaped (the library reaps what it
 * starts; we never do here). */
static int zombies(void) {
  int count = 0;
  pid_t me = getpid();
  DIR *d = opendir("/proc");
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL) {
    char *end, path[64], buf[512];
    long pid = strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0)
      continue;
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
      continue;
    size_t r = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[r] = '\0';
    char *rp = strrchr(buf, ')'), st;
    int pp;
    if (rp != NULL && sscanf(rp + 1, " %c %d", &st, &pp) == 2 && pp == me &&
        st == 'Z')
      count++;
  }
  if (d != NULL)
    closedir(d);
  return count;
}

static int no_strays(void *arg) {
  char buf[256];
  (void)arg;
  return strays(buf, sizeof buf) == 0 && zombies() == 0;
}

/* Names in /dev/shm and socket directories in the temporary directory
 * that mproc makes. */
static int names(char *out, size_t cap) {
  const char *dirs[2] = {"/dev/shm", getenv("TMPDIR")};
  if (dirs[1] == NULL || dirs[1][0] == '\0')
    dirs[1] = "/tmp";
  int count = 0;
  out[0] = '\0';
  for (int k = 0; k < 2; k++) {
    DIR *d = opendir(dirs[k]);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
      const char *n = e->d_name;
      int ours = k == 0 ? strncmp(n, "mpt-", 4) == 0 ||
                              strncmp(n, "mph-", 4) == 0 ||
                              (strncmp(n, "mp-", 3) == 0 && n[3] >= '0' &&
                               n[3] <= '9')
                        : strncmp(n, ".mproc-", 7) == 0;
      if (!ours)
        continue;
      count++;
      size_t len = strlen(out);
      if (len + strlen(n) + 2 < cap)
        snprintf(out + len, cap - len, "%s\n", n);
    }
    if (d != NULL)
      closedir(d);
  }
  return count;
}

/* A line per name in `now` that is not in `before`. */
static int new_names(const char *before, const char *now, char *out,
                     size_t cap) {
  int count = 0;
  out[0] = '\0';
  char line[300];
  for (const char *p = now; *p != '\0';) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    if (n < sizeof line - 2) {
      memcpy(line, p, n);
      line[n] = '\n';
      line[n + 1] = '\0';
      if (strstr(before, line) == NULL) {
        count++;
        size_t len = strlen(out);
        snprintf(out + len, cap - len, " %.*s", (int)n, p);
      }
    }
    p += n + (nl != NULL);
  }
  return count;
}

typedef struct leftover_args {
  const char *before;
  char now[8192], extra[2048];
} leftover_args;

static int no_new_names(void *arg) {
  leftover_args *a = arg;
  names(a->now, sizeof a->now);
  return new_names(a->before, a->now, a->extra, sizeof a->extra) == 0;
}

/* After a scenario: wait (bounded) for helpers to end, then say what is
 * left: "none", or the strays and names.  Non-zero when something is. */
static int leftovers(const char *before, char *out, size_t cap) {
  ts_poll_until(no_strays, NULL, 15.0);
  leftover_args *a = calloc(1, sizeof *a);
  cr_assert_not_null(a);
  a->before = before;
  ts_poll_until(no_new_names, a, 15.0);
  char pids[512];
  int s = strays(pids, sizeof pids), z = zombies();
  int n = new_names(before, a->now, a->extra, sizeof a->extra);
  if (s == 0 && n == 0 && z == 0)
    snprintf(out, cap, "none");
  else
    snprintf(out, cap, "%d processes:%s; %d zombies; %d names:%s", s, pids,
             z, n, a->extra);
  free(a);
  return s + n + z;
}

static char *names_now(void) {
  char *b = calloc(1, 8192);
  cr_assert_not_null(b);
  names(b, 8192);
  return b;
}

/* ---- workers that are killed and started again --------------------------- */

typedef struct slot {
  mp_target_fn fn;
  mp_args *args;
  mp_process *p;
} slot;

static mp_context *fork_ctx(void) {
  mp_context *ctx = NULL;
  const char *m = getenv("MPROC_SOAK_METHOD");
  cr_assert_eq(mp_get_context(m != NULL && *m ? m : "fork", &ctx), 0);
  return ctx;
}

static void slot_start(slot *s) {
  cr_assert_eq(mp_process_new(&s->p, s->fn, s->args), 0);
  mp_process_set_context(s->p, fork_ctx());
  cr_assert_eq(mp_process_start(s->p), 0, "%s", mp_last_error_message());
}

static void slot_kill(slot *s) {
  kill((pid_t)mp_process_pid(s->p), SIGKILL);
  cr_assert_eq(mp_process_join(s->p, 30.0), 0, "a killed worker is joined");
  mp_process_free(s->p);
  s->p = NULL;
}

/* Stop it the gentle way (it watches a flag), or kill it if it does not
 * end in time: returns its exit code (-9 when killed). */
static int slot_end(slot *s) {
  int code = -1;
  if (mp_process_join(s->p, 20.0) != 0) {
    kill((pid_t)mp_process_pid(s->p), SIGKILL);
    mp_process_join(s->p, 20.0);
  }
  mp_process_exitcode(s->p, &code);
  mp_process_free(s->p);
  s->p = NULL;
  return code;
}

/* ---- queue --------------------------------------------------------------- */

#define Q_PRODUCERS 3
#define Q_CONSUMERS 2
#define Q_MAXSEQ (1 << 20) /* ids per producer: more than a run puts */

typedef struct qshared {
  volatile uint32_t stop;
  volatile uint32_t bad;       /* a consumer found a damaged message */
  volatile uint64_t checks;    /* messages verified by consumers */
  volatile uint64_t next[Q_PRODUCERS];                 /* ids reserved */
  volatile uint8_t put[Q_PRODUCERS][Q_MAXSEQ];         /* put returned 0 */
  volatile uint8_t got[Q_PRODUCERS][Q_MAXSEQ];         /* times taken */
} qshared;

static size_t q_len(uint64_t id) {
  uint64_t h = id * 0x9E3779B97F4A7C15ull;
  return (h >> 60) < 3 ? 1200 + (size_t)((h >> 20) % 1800) /* streamed */
                       : 16 + (size_t)((h >> 20) % 200);
}

static void q_fill(unsigned char *b, size_t n, uint64_t id) {
  memcpy(b, &id, 8);
  for (size_t i = 8; i < n; i++)
    b[i] = (unsigned char)(id * 31 + i * 7);
}

static int q_producer(const mp_args *a) {
  mp_queue *q = mp_args_queue(a, 0);
  qshared *sh = mp_array_ptr(mp_args_array(a, 1));
  int me = (int)mp_args_int(a, 2);
  unsigned char buf[4096];
  while (!sh->stop) {
    uint64_t seq = sh->next[me];
    if (seq >= Q_MAXSEQ)
      break;
    sh->next[me] = seq + 1; /* reserved before the put: ids never reused */
    uint64_t id = (uint64_t)me << 32 | seq;
    size_t n = q_len(id);
    q_fill(buf, n, id);
    int rc = mp_queue_put(q, buf, n, 0.2);
    if (rc == 0)
      sh->put[me][seq] = 1;
    else if (rc != MP_EFULL)
      return 10;
  }
  return 0;
}

static int q_consumer(const mp_args *a) {
  mp_queue *q = mp_args_queue(a, 0);
  qshared *sh = mp_array_ptr(mp_args_array(a, 1));
  unsigned char buf[4096], want[4096];
  while (!sh->stop) {
    size_t n = 0;
    int rc = mp_queue_get_into(q, buf, sizeof buf, &n, 0.2);
    if (rc == MP_EEMPTY)
      continue;
    if (rc != 0)
      return 20;
    uint64_t id = 0;
    if (n >= 8)
      memcpy(&id, buf, 8);
    uint32_t p = (uint32_t)(id >> 32), seq = (uint32_t)id;
    if (n < 8 || p >= Q_PRODUCERS || seq >= Q_MAXSEQ || n != q_len(id)) {
      sh->bad = 1;
      return 21;
    }
    q_fill(want, n, id);
    if (memcmp(buf, want, n) != 0) {
      sh->bad = 1;
      return 22;
    }
    sh->got[p][seq]++;
    __atomic_add_fetch(&sh->checks, 1, __ATOMIC_RELAXED);
    if (mp_queue_task_done(q) != 0)
      return 23;
  }
  return 0;
}

Test(soak, queue, .timeout = SOAK_TIMEOUT) {
  rng_seed("queue");
  char *before = names_now();
  double t0 = ts_now(), until = t0 + share(0.25);
  mp_queue *q;
  cr_assert_eq(mp_queue_new_ex(&q, 0, 4096, 1), 0);
  mp_array *arr;
  cr_assert_eq(mp_raw_array_new(&arr, 'B', sizeof(qshared), NULL), 0);
  qshared *sh = mp_array_ptr(arr);
  slot s[Q_PRODUCERS + Q_CONSUMERS];
  for (int i = 0; i < Q_PRODUCERS + Q_CONSUMERS; i++) {
    int prod = i < Q_PRODUCERS;
    s[i].fn = prod ? q_producer : q_consumer;
    cr_assert_eq(mp_args_new(&s[i].args), 0);
    mp_args_add_queue(s[i].args, q);
    mp_args_add_array(s[i].args, arr);
    mp_args_add_int(s[i].args, prod ? i : i - Q_PRODUCERS);
    slot_start(&s[i]);
  }
  long kills = 0, pkills = 0, ckills = 0, failures = 0;
  while (ts_now() < until) {
    pause_ms(5, 60);
    int i = (int)rng_below(Q_PRODUCERS + Q_CONSUMERS);
    slot_kill(&s[i]);
    kills++;
    if (i < Q_PRODUCERS)
      pkills++;
    else
      ckills++;
    slot_start(&s[i]);
  }
  sh->stop = 1;
  for (int i = 0; i < Q_PRODUCERS + Q_CONSUMERS; i++) {
    int code = slot_end(&s[i]);
    cr_expect_eq(code, 0, "worker %d ended with %d", i, code);
    failures += code != 0;
    mp_args_free(s[i].args);
  }
  /* Drain what is left, checking it as the consumers did. */
  unsigned char buf[4096], want[4096];
  size_t n;
  int64_t qs = mp_queue_qsize(q), drained = 0;
  while (mp_queue_get_into(q, buf, sizeof buf, &n, 0) == 0) {
    uint64_t id;
    memcpy(&id, buf, 8);
    q_fill(want, n, id);
    cr_expect(n == q_len(id) && memcmp(buf, want, n) == 0, "damaged");
    sh->got[id >> 32][(uint32_t)id]++;
    mp_queue_task_done(q);
    drained++;
  }
  cr_expect_eq(qs, drained, "qsize %lld, but %lld messages were there",
               (long long)qs, (long long)drained);
  cr_expect_eq(mp_queue_qsize(q), 0);
  /* A consumer killed between its get and its task_done leaves that task
   * unfinished (the queue cannot tell it was not worked on; Python's
   * would too): at most one per consumer killed, and exactly counted. */
  long undone = 0;
  while (mp_queue_join(q, 0) != 0 && undone <= ckills &&
         mp_queue_task_done(q) == 0)
    undone++;
  cr_expect_eq(mp_queue_join(q, 0), 0, "join after %ld more task_done",
               undone);
  cr_expect_leq(undone, ckills, "%ld tasks left unfinished, %ld consumers "
                "killed", undone, ckills);
  cr_expect_eq(mp_queue_task_done(q), MP_EVALUE, "one task_done too many");
  failures += undone > ckills;
  cr_expect_eq(sh->bad, 0, "a consumer found a damaged message");
  long dup = 0, lost = 0, unrecorded = 0, never = 0, total = 0;
  for (int p = 0; p < Q_PRODUCERS; p++)
    for (uint64_t k = 0; k < Q_MAXSEQ; k++) {
      int put = sh->put[p][k], got = sh->got[p][k];
      total += put;
      dup += got > 1;
      lost += put && got == 0;
      unrecorded += !put && got > 0;
      never += got > 0 && k >= sh->next[p];
    }
  cr_expect_eq(dup, 0, "%ld messages delivered twice", dup);
  cr_expect_eq(never, 0, "%ld messages delivered that were never put", never);
  cr_expect_leq(lost, ckills, "%ld messages lost, %ld consumers killed", lost,
                ckills);
  cr_expect_leq(unrecorded, pkills,
                "%ld delivered whose put was not recorded, %ld producers "
                "killed",
                unrecorded, pkills);
  failures += dup + never + (lost > ckills) + (unrecorded > pkills) +
              (qs != drained) + (sh->bad != 0);
  long checks = (long)sh->checks + drained + total;
  mp_queue_free(q);
  mp_array_free(arr);
  char left[4096];
  int l = leftovers(before, left, sizeof left);
  row("queue", ts_now() - t0, kills, checks, failures, left);
  cr_expect_eq(l, 0, "left over: %s", left);
  cr_expect_gt(total, 1000, "only %ld messages went through", total);
  free(before);
}

/* ---- locks --------------------------------------------------------------- */

#define L_WORKERS 4

typedef struct lshared {
  volatile uint32_t stop;
  volatile uint32_t bad;          /* mutual exclusion broken */
  volatile uint32_t bad_dead;     /* MP_EOWNERDEAD with a living holder */
  volatile int32_t holder[2];     /* pid inside, per lock, or 0 */
  volatile uint64_t counter[2];   /* incremented inside, two steps */
  volatile uint64_t done[L_WORKERS][2]; /* increments each worker saw done */
  volatile uint64_t checks, ownerdead;
} lshared;

static int l_worker(const mp_args *a) {
  mp_lock *locks[2] = {mp_args_lock(a, 0), mp_args_lock(a, 1)};
  lshared *sh = mp_array_ptr(mp_args_array(a, 2));
  int me = (int)mp_args_int(a, 3);
  int32_t pid = (int32_t)getpid();
  for (unsigned round = 0; !sh->stop; round++) {
    int k = (int)(round & 1);
    int rc = mp_lock_acquire(locks[k], 10.0);
    if (rc != 0 && rc != MP_EOWNERDEAD)
      return 30; /* timed out: a lock-out */
    int32_t h = sh->holder[k];
    if (rc == MP_EOWNERDEAD) {
      __atomic_add_fetch(&sh->ownerdead, 1, __ATOMIC_RELAXED);
      if (h != 0 && kill(h, 0) == 0) {
        /* a holder that lives (not a zombie being reaped?) */
        char path[64], st = 0;
        snprintf(path, sizeof path, "/proc/%d/stat", (int)h);
        FILE *f = fopen(path, "r");
        if (f != NULL) {
          char buf[256];
          size_t r = fread(buf, 1, sizeof buf - 1, f);
          fclose(f);
          buf[r] = '\0';
          char *rp = strrchr(buf, ')');
          if (rp != NULL)
            st = rp[2];
        }
        if (st != 0 && st != 'Z')
          sh->bad_dead = 1;
      }
    } else if (h != 0 && kill(h, 0) == 0) {
      sh->bad = 1; /* a living process is still inside */
    }
    sh->holder[k] = pid;
    if (k == 1) { /* the RLock, taken twice */
      if (mp_lock_acquire(locks[1], 0) != 0)
        return 31;
    }
    uint64_t v = sh->counter[k];
    for (volatile int spin = 0; spin < 200; spin++)
      ;
    sh->counter[k] = v + 1;
    if (k == 1 && mp_lock_release(locks[1]) != 0)
      return 32;
    sh->holder[k] = 0;
    if (mp_lock_release(locks[k]) != 0)
      return 33;
    sh->done[me][k]++;
    __atomic_add_fetch(&sh->checks, 1, __ATOMIC_RELAXED);
  }
  return 0;
}

Test(soak, locks, .timeout = SOAK_TIMEOUT) {
  rng_seed("locks");
  char *before = names_now();
  double t0 = ts_now(), until = t0 + share(0.15);
  mp_lock *lock, *rlock;
  cr_assert_eq(mp_lock_new(&lock), 0);
  cr_assert_eq(mp_rlock_new(&rlock), 0);
  mp_array *arr;
  cr_assert_eq(mp_raw_array_new(&arr, 'B', sizeof(lshared), NULL), 0);
  lshared *sh = mp_array_ptr(arr);
  slot s[L_WORKERS];
  for (int i = 0; i < L_WORKERS; i++) {
    s[i].fn = l_worker;
    cr_assert_eq(mp_args_new(&s[i].args), 0);
    mp_args_add_lock(s[i].args, lock);
    mp_args_add_lock(s[i].args, rlock);
    mp_args_add_array(s[i].args, arr);
    mp_args_add_int(s[i].args, i);
    slot_start(&s[i]);
  }
  long kills = 0, failures = 0;
  while (ts_now() < until) {
    pause_ms(2, 40);
    int i = (int)rng_below(L_WORKERS);
    slot_kill(&s[i]);
    kills++;
    slot_start(&s[i]);
  }
  sh->stop = 1;
  for (int i = 0; i < L_WORKERS; i++) {
    int code = slot_end(&s[i]);
    cr_expect_eq(code, 0, "worker %d ended with %d (30: an acquire timed "
                 "out)", i, code);
    failures += code != 0;
    mp_args_free(s[i].args);
  }
  cr_expect_eq(sh->bad, 0, "a process entered while a living one was in");
  cr_expect_eq(sh->bad_dead, 0, "MP_EOWNERDEAD while the holder lived");
  failures += sh->bad + sh->bad_dead;
  for (int k = 0; k < 2; k++) {
    uint64_t sum = 0;
    for (int i = 0; i < L_WORKERS; i++)
      sum += sh->done[i][k];
    /* A worker killed inside may or may not have counted. */
    cr_expect(sh->counter[k] >= sum && sh->counter[k] <= sum + (uint64_t)kills,
              "lock %d: counter %llu, %llu increments done, %ld kills", k,
              (unsigned long long)sh->counter[k], (unsigned long long)sum,
              kills);
    failures += !(sh->counter[k] >= sum && sh->counter[k] <= sum + (uint64_t)kills);
    int rc = mp_lock_acquire(k ? rlock : lock, 5.0);
    cr_expect(rc == 0 || rc == MP_EOWNERDEAD, "the lock is usable after");
    mp_lock_release(k ? rlock : lock);
  }
  long checks = (long)sh->checks;
  char od[64];
  snprintf(od, sizeof od, "%llu", (unsigned long long)sh->ownerdead);
  mp_lock_free(lock);
  mp_lock_free(rlock);
  mp_array_free(arr);
  char left[4096];
  int l = leftovers(before, left, sizeof left);
  row("locks", ts_now() - t0, kills, checks, failures, left);
  fprintf(stderr, "soak locks: MP_EOWNERDEAD seen %s times\n", od);
  cr_expect_eq(l, 0, "left over: %s", left);
  free(before);
}

/* ---- pool ---------------------------------------------------------------- */

static int slow_square(const mp_args *a, mp_args *r) {
  int64_t x = mp_args_int(a, 0);
  for (volatile int spin = 0; spin < 20000; spin++)
    ;
  return mp_args_add_int(r, x * x);
}

typedef struct pool_run {
  mp_pool *p;
  volatile int stop;
  long maps, ok, died, bad;
} pool_run;

static int pool_mapper(void *arg) {
  pool_run *r = arg;
  mp_args *in = NULL;
  mp_args_new(&in);
  for (int64_t i = 0; i < 60; i++)
    mp_args_add_int(in, i);
  while (!r->stop) {
    mp_args *out = NULL;
    int rc = mp_pool_map(r->p, slow_square, in, 1 + (size_t)(r->maps % 4),
                         &out);
    r->maps++;
    if (rc == 0) {
      int right = mp_args_count(out) == 60;
      for (int64_t i = 0; right && i < 60; i++)
        right = mp_args_int(out, (size_t)i) == i * i;
      if (right)
        r->ok++;
      else
        r->bad++;
      mp_args_free(out);
    } else if (rc == MP_EWORKERDIED) {
      r->died++;
    } else {
      fprintf(stderr, "soak pool: map gave %s: %s\n", mp_err_name(rc),
              mp_last_error_message());
      r->bad++;
    }
  }
  mp_args_free(in);
  return 0;
}

Test(soak, pool, .timeout = SOAK_TIMEOUT) {
  rng_seed("pool");
  char *before = names_now();
  double t0 = ts_now(), until = t0 + share(0.2);
  mp_pool_options o = MP_POOL_OPTIONS_INIT;
  o.workers = 3;
  o.context = fork_ctx();
  pool_run r;
  memset(&r, 0, sizeof r);
  cr_assert_eq(mp_pool_new_ex(&r.p, &o), 0);
  mp_thread *t;
  cr_assert_eq(mp_thread_new(&t, pool_mapper, &r), 0);
  cr_assert_eq(mp_thread_start(t), 0);
  long kills = 0;
  while (ts_now() < until) {
    pause_ms(5, 80);
    int64_t pids[3];
    int n = mp_pool_worker_pids(r.p, pids, 3);
    if (n > 0 && kill((pid_t)pids[rng_below((uint64_t)n)], SIGKILL) == 0)
      kills++;
  }
  r.stop = 1;
  cr_assert_eq(mp_thread_join(t, 60.0), 0, "a map hangs");
  mp_thread_free(t);
  /* And it goes on. */
  mp_args *in = NULL, *out = NULL;
  mp_args_new(&in);
  mp_args_add_int(in, 7);
  cr_expect_eq(mp_pool_map(r.p, slow_square, in, 1, &out), 0, "%s",
               mp_last_error_message());
  cr_expect(out != NULL && mp_args_int(out, 0) == 49);
  mp_args_free(out);
  mp_args_free(in);
  mp_pool_free(r.p);
  cr_expect_eq(r.bad, 0, "%ld maps wrong or failing otherwise", r.bad);
  cr_expect_gt(r.ok, 0, "no map succeeded");
  char left[4096];
  int l = leftovers(before, left, sizeof left);
  row("pool", ts_now() - t0, kills, r.maps, r.bad, left);
  fprintf(stderr, "soak pool: %ld maps, %ld right, %ld MP_EWORKERDIED\n",
          r.maps, r.ok, r.died);
  cr_expect_eq(l, 0, "left over: %s", left);
  free(before);
}

/* ---- manager ------------------------------------------------------------- */

#define M_CLIENTS 3

typedef struct mshared {
  volatile uint32_t stop, bad;
  volatile uint64_t ops;
  char why[256];
} mshared;

static int m_client(const mp_args *a) {
  mp_proxy *d = mp_args_proxy(a, 0), *l = mp_args_proxy(a, 1);
  mshared *sh = mp_array_ptr(mp_args_array(a, 2));
  int me = (int)mp_args_int(a, 3);
  char key[16];
  snprintf(key, sizeof key, "c%d", me);
  for (int64_t v = 1; !sh->stop; v++) {
    mp_args *got = NULL;
    int rc = mp_dict_set(d, "si", key, v);
    if (rc == 0)
      rc = mp_dict_get(d, &got, "s", key);
    if (rc == 0 && mp_args_int(got, 0) != v)
      rc = MP_EVALUE;
    mp_args_free(got);
    if (rc == 0)
      rc = mp_list_append(l, "i", v);
    if (rc != 0) {
      snprintf(sh->why, sizeof sh->why, "client %d: %s: %s", me,
               mp_err_name(rc), mp_last_error_message());
      sh->bad = 1;
      return 40;
    }
    __atomic_add_fetch(&sh->ops, 3, __ATOMIC_RELAXED);
  }
  return 0;
}

Test(soak, manager, .timeout = SOAK_TIMEOUT) {
  rng_seed("manager");
  char *before = names_now();
  double t0 = ts_now(), until = t0 + share(0.2);
  mp_manager_options mo = MP_MANAGER_OPTIONS_INIT;
  mo.context = fork_ctx();
  mp_manager *m;
  cr_assert_eq(mp_manager_start(&m, &mo), 0, "%s", mp_last_error_message());
  mp_proxy *d, *l;
  cr_assert_eq(mp_manager_dict(m, &d), 0);
  cr_assert_eq(mp_manager_list(m, &l), 0);
  mp_array *arr;
  cr_assert_eq(mp_raw_array_new(&arr, 'B', sizeof(mshared), NULL), 0);
  mshared *sh = mp_array_ptr(arr);
  slot s[M_CLIENTS];
  for (int i = 0; i < M_CLIENTS; i++) {
    s[i].fn = m_client;
    cr_assert_eq(mp_args_new(&s[i].args), 0);
    mp_args_add_proxy(s[i].args, d);
    mp_args_add_proxy(s[i].args, l);
    mp_args_add_array(s[i].args, arr);
    mp_args_add_int(s[i].args, i);
    slot_start(&s[i]);
  }
  long kills = 0, failures = 0;
  while (ts_now() < until && !sh->bad) {
    pause_ms(10, 100);
    int i = (int)rng_below(M_CLIENTS);
    slot_kill(&s[i]);
    kills++;
    slot_start(&s[i]);
  }
  sh->stop = 1;
  for (int i = 0; i < M_CLIENTS; i++) {
    int code = slot_end(&s[i]);
    cr_expect_eq(code, 0, "client %d ended with %d: %s", i, code, sh->why);
    failures += code != 0;
    mp_args_free(s[i].args);
  }
  cr_expect_eq(sh->bad, 0, "%s", sh->why);
  int64_t n = mp_list_len(l);
  cr_expect_geq(n, 0, "the list after the kills: %s",
                mp_last_error_message());
  /* Now the server itself. */
  mp_process *kids[4];
  int nk = mp_active_children(kids, 4);
  cr_assert_eq(nk, 1, "the server is the only child left (%d)", nk);
  int64_t server = mp_process_pid(kids[0]);
  kill((pid_t)server, SIGKILL);
  kills++;
  cr_expect(ts_wait_pid_gone(server, 20.0));
  double c0 = ts_now();
  int rc = mp_dict_set(d, "si", "after", 1);
  cr_expect_neq(rc, 0, "a call on a dead server fails");
  cr_expect_lt(ts_now() - c0, 10.0, "and at once (%.1f s)", ts_now() - c0);
  failures += rc == 0;
  long ops = (long)sh->ops;
  mp_proxy_free(d);
  mp_proxy_free(l);
  mp_manager_free(m);
  mp_array_free(arr);
  char left[4096];
  int lo = leftovers(before, left, sizeof left);
  row("manager", ts_now() - t0, kills, ops, failures, left);
  cr_expect_eq(lo, 0, "left over: %s", left);
  free(before);
}

/* ---- create/free cycles -------------------------------------------------- */

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

static int noop_target(const mp_args *a) {
  (void)a;
  return 0;
}

static int noop_task(const mp_args *a, mp_args *r) {
  return mp_args_add_int(r, mp_args_int(a, 0));
}

/* One cycle of every kind; `heavy` also the kinds that start processes.
 * Returns the number of objects made (every call checked). */
static long one_cycle(long serial, int heavy) {
  long made = 0;
  mp_queue *q;
  for (int kind = 0; kind < 3; kind++) {
    int rc = kind == 0   ? mp_queue_new(&q, 0)
             : kind == 1 ? mp_joinable_queue_new(&q, 4)
                         : mp_simple_queue_new(&q);
    cr_assert_eq(rc, 0);
    cr_assert_eq(mp_queue_put(q, "x", 1, 0), 0);
    mp_queue_free(q);
    made++;
  }
  mp_lock *l, *rl;
  cr_assert_eq(mp_lock_new(&l), 0);
  cr_assert_eq(mp_rlock_new(&rl), 0);
  mp_condition *c;
  cr_assert_eq(mp_condition_new(&c, rl), 0);
  mp_condition_free(c);
  mp_lock_free(rl);
  mp_lock_free(l);
  mp_semaphore *s, *bs;
  cr_assert_eq(mp_semaphore_new(&s, 2), 0);
  cr_assert_eq(mp_bounded_semaphore_new(&bs, 2), 0);
  mp_semaphore_free(s);
  mp_semaphore_free(bs);
  mp_event *e;
  cr_assert_eq(mp_event_new(&e), 0);
  mp_event_free(e);
  mp_barrier *b;
  cr_assert_eq(mp_barrier_new(&b, 2, NULL, -1), 0);
  mp_barrier_free(b);
  mp_value *v;
  cr_assert_eq(mp_value_new(&v, 'q', NULL), 0);
  mp_value_free(v);
  mp_array *a;
  cr_assert_eq(mp_array_new(&a, 'd', 64, NULL), 0);
  mp_array_free(a);
  char name[64];
  snprintf(name, sizeof name, "mpt-soak-%d-%ld", (int)getpid(), serial);
  mp_shm *sh;
  cr_assert_eq(mp_shm_new(&sh, name, 4096), 0, "%s", mp_last_error_message());
  mp_shm_free(sh);
  mp_conn *r, *w;
  cr_assert_eq(mp_pipe(1, &r, &w), 0);
  mp_conn_free(r);
  mp_conn_free(w);
  made += 14;
  if (heavy) {
    mp_listener *li;
    cr_assert_eq(mp_listener_new(&li, NULL, MP_AF_DEFAULT, 0, NULL, 0), 0);
    mp_listener_free(li);
    mp_process *p;
    cr_assert_eq(mp_process_new(&p, noop_target, NULL), 0);
    mp_process_set_context(p, fork_ctx());
    cr_assert_eq(mp_process_start(p), 0);
    cr_assert_eq(mp_process_join(p, 30.0), 0);
    mp_process_free(p);
    made += 2;
  }
  if (heavy > 1) {
    mp_pool_options o = MP_POOL_OPTIONS_INIT;
    o.workers = 2;
    o.context = fork_ctx();
    mp_pool *pl;
    cr_assert_eq(mp_pool_new_ex(&pl, &o), 0);
    mp_args *r1 = NULL;
    mp_args *in = NULL;
    mp_args_new(&in);
    mp_args_add_int(in, 3);
    cr_assert_eq(mp_pool_apply(pl, noop_task, in, &r1), 0);
    mp_args_free(r1);
    mp_args_free(in);
    mp_pool_free(pl);
    made++;
  }
  if (heavy > 2) {
    mp_manager_options mo = MP_MANAGER_OPTIONS_INIT;
    mo.context = fork_ctx();
    mp_manager *m;
    cr_assert_eq(mp_manager_start(&m, &mo), 0);
    mp_proxy *d;
    cr_assert_eq(mp_manager_dict(m, &d), 0);
    mp_proxy_free(d);
    mp_manager_free(m);
    made++;
  }
  return made;
}

/* The heavier the kind, the fewer its cycles: 1,000 of every light kind,
 * 100 listeners and processes, 20 pools, 10 managers. */
static long cycles(long first, long n) {
  long made = 0;
  for (long i = first; i < first + n; i++)
    made += one_cycle(i, i % 100 == 0 ? 3 : i % 50 == 0 ? 2 : i % 10 == 0);
  return made;
}

Test(soak, cycles, .timeout = SOAK_TIMEOUT) {
  char *before = names_now();
  double t0 = ts_now();
  /* Warm up: what the library keeps once (its tables, a thread's first
   * use) is made here, not counted as a leak. */
  cycles(1, 100);
  int fds0 = count_fds();
  long rss0 = rss_kib();
  long made = cycles(101, 1000);
  int fds1 = count_fds();
  long rss1 = rss_kib();
  cr_expect_eq(fds1, fds0, "descriptors: %d before, %d after", fds0, fds1);
  /* The allocator keeps some memory it was given back; 1,000 leaked
   * objects of the smallest kind would be far more than this. */
  cr_expect_leq(rss1 - rss0, 2048, "RSS grew by %ld KiB", rss1 - rss0);
  char left[4096], summary[4300];
  int l = leftovers(before, left, sizeof left);
  snprintf(summary, sizeof summary, "%s (fds %d -> %d, RSS %+ld KiB)", left,
           fds0, fds1, rss1 - rss0);
  row("cycles", ts_now() - t0, 0, made, (fds1 != fds0) + (rss1 - rss0 > 2048),
      summary);
  cr_expect_eq(l, 0, "left over: %s", left);
  free(before);
}
