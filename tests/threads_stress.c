/*
 * threads_stress.c - the library used from several threads at once, for
 * ThreadSanitizer (Criterion cannot start under TSan: Snaipe/Criterion
 * issue 274), and as a plain CTest test everywhere else.
 *
 * Four threads at once, each for ROUNDS rounds: a Lock and an RLock
 * guarding a counter in shared memory, a queue that every thread puts to
 * and takes from, a semaphore, processes started and joined, apply_async
 * on one shared process pool and one thread pool (callbacks counted), and
 * a Manager's list appended to through one proxy per thread.  Every count
 * is checked at the end; exits 0 and prints "threads_stress: passed".
 * argv[1] names the start method (under TSan: spawn or forkserver, since
 * TSan does not support threads started in the child of a multi-threaded
 * fork).
 */
#include <stdio.h>
#include <string.h>

#include "mproc.h"

#define THREADS 4
#define ROUNDS 40

static mp_lock *lock, *rlock;
static mp_semaphore *sem;
static mp_value *counter, *rcounter; /* guarded by lock, by rlock */
static mp_queue *queue;
static mp_pool *procs, *threads;
static mp_manager *manager;
static mp_proxy *list;
static mp_lock *cb_lock; /* guards cb_count (callbacks run in pool threads) */
static int64_t cb_count;
static int failures;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "FAILED %s:%d: ", __FILE__, __LINE__);                   \
      fprintf(stderr, __VA_ARGS__);                                            \
      fprintf(stderr, " (%s)\n", mp_last_error_message());                     \
      return 1;                                                                \
    }                                                                          \
  } while (0)

static int twice(const mp_args *a, mp_args *r) {
  return mp_args_add_int(r, 2 * mp_args_int(a, 0));
}

static int child_ok(const mp_args *a) {
  return (int)mp_args_int(a, 0);
}

static void count_cb(const mp_args *r, void *arg) {
  (void)r;
  (void)arg;
  if (mp_lock_acquire(cb_lock, 10) == 0) {
    cb_count++;
    mp_lock_release(cb_lock);
  }
}

/* counter += 1 in two steps, under l */
static int bump(mp_lock *l, mp_value *c) {
  int64_t v;
  CHECK(mp_lock_acquire(l, 30) == 0, "acquire");
  CHECK(mp_value_get_int(c, &v) == 0, "get");
  CHECK(mp_value_set_int(c, v + 1) == 0, "set");
  CHECK(mp_lock_release(l) == 0, "release");
  return 0;
}

static int worker(void *arg) {
  int id = (int)(intptr_t)arg;
  mp_args *one = NULL;
  CHECK(mp_args_new(&one) == 0 && mp_args_add_int(one, id) == 0, "args");
  for (int r = 0; r < ROUNDS; r++) {
    if (bump(lock, counter) || bump(rlock, rcounter))
      return 1;
    /* the RLock taken twice by the same thread */
    CHECK(mp_lock_acquire(rlock, 30) == 0 && mp_lock_acquire(rlock, 30) == 0,
          "rlock twice");
    CHECK(mp_lock_release(rlock) == 0 && mp_lock_release(rlock) == 0,
          "rlock release");
    int64_t msg = id * 1000 + r, got = -1;
    size_t n = 0;
    CHECK(mp_queue_put(queue, &msg, sizeof msg, 30) == 0, "put");
    CHECK(mp_queue_get_into(queue, &got, sizeof got, &n, 30) == 0 &&
              n == sizeof got,
          "get");
    CHECK(mp_semaphore_acquire(sem, 30) == 0, "sem acquire");
    CHECK(mp_semaphore_release(sem) == 0, "sem release");
    mp_async *pa = NULL, *ta = NULL;
    const mp_args *res = NULL;
    CHECK(mp_pool_apply_async(procs, twice, one, count_cb, NULL, NULL, &pa) ==
              0,
          "apply_async (processes)");
    CHECK(mp_pool_apply_async(threads, twice, one, count_cb, NULL, NULL,
                              &ta) == 0,
          "apply_async (threads)");
    CHECK(mp_async_get(pa, 60, &res) == 0 && mp_args_int(res, 0) == 2 * id,
          "process pool result");
    CHECK(mp_async_get(ta, 60, &res) == 0 && mp_args_int(res, 0) == 2 * id,
          "thread pool result");
    mp_async_free(pa);
    mp_async_free(ta);
    if (r % 10 == 0) {
      mp_process *p = NULL;
      int code = -1;
      CHECK(mp_process_new(&p, child_ok, one) == 0 && mp_process_start(p) == 0,
            "start a process");
      CHECK(mp_process_join(p, 60) == 0 &&
                mp_process_exitcode(p, &code) == 0 && code == id,
            "join: exit code %d", code);
      mp_process_free(p);
    }
    CHECK(mp_list_append(list, "i", id) == 0, "list append");
  }
  mp_args_free(one);
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  /* argv[1]: the start method (default: the platform's) */
  if (argc > 1 && mp_set_start_method(argv[1], 1) != 0) {
    fprintf(stderr, "%s: %s\n", argv[1], mp_last_error_message());
    return 1;
  }
  if (mp_lock_new(&lock) || mp_rlock_new(&rlock) || mp_lock_new(&cb_lock) ||
      mp_semaphore_new(&sem, 2) || mp_value_new(&counter, 'q', NULL) ||
      mp_value_new(&rcounter, 'q', NULL) ||
      mp_queue_new(&queue, 0) || mp_pool_new(&procs, 2) ||
      mp_thread_pool_new(&threads, 2) || mp_manager_start(&manager, NULL) ||
      mp_manager_list(manager, &list)) {
    fprintf(stderr, "setup: %s\n", mp_last_error_message());
    return 1;
  }
  mp_thread *t[THREADS];
  for (int i = 0; i < THREADS; i++)
    if (mp_thread_new(&t[i], worker, (void *)(intptr_t)(i + 1)) != 0 ||
        mp_thread_start(t[i]) != 0) {
      fprintf(stderr, "thread: %s\n", mp_last_error_message());
      return 1;
    }
  for (int i = 0; i < THREADS; i++) {
    int code = -1;
    if (mp_thread_join(t[i], 600) != 0 || mp_thread_exitcode(t[i], &code) ||
        code != 0) {
      fprintf(stderr, "thread %d failed (%d)\n", i + 1, code);
      failures++;
    }
    mp_thread_free(t[i]);
  }
  int64_t v = -1, rv = -1;
  mp_value_get_int(counter, &v);
  mp_value_get_int(rcounter, &rv);
  if (v != THREADS * ROUNDS || rv != THREADS * ROUNDS) {
    fprintf(stderr, "counters %lld and %lld, want %d\n", (long long)v,
            (long long)rv, THREADS * ROUNDS);
    failures++;
  }
  if (mp_queue_qsize(queue) != 0) {
    fprintf(stderr, "queue not empty\n");
    failures++;
  }
  mp_pool_close(procs);
  mp_pool_close(threads);
  mp_pool_join(procs, 60);
  mp_pool_join(threads, 60);
  /* every callback has run once the pools are joined */
  if (cb_count != 2 * THREADS * ROUNDS) {
    fprintf(stderr, "callbacks %lld, want %d\n", (long long)cb_count,
            2 * THREADS * ROUNDS);
    failures++;
  }
  int64_t len = mp_list_len(list);
  if (len != THREADS * ROUNDS) {
    fprintf(stderr, "list length %lld, want %d\n", (long long)len,
            THREADS * ROUNDS);
    failures++;
  }
  mp_proxy_free(list);
  mp_manager_free(manager);
  mp_pool_free(procs);
  mp_pool_free(threads);
  mp_queue_free(queue);
  mp_value_free(counter);
  mp_value_free(rcounter);
  mp_semaphore_free(sem);
  mp_lock_free(cb_lock);
  mp_lock_free(rlock);
  mp_lock_free(lock);
  printf("threads_stress: %s\n", failures ? "FAILED" : "passed");
  return failures != 0;
}
