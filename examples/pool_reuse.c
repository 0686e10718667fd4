/*
 * pool_reuse.c - four long tasks on a pool of three processes: the
 * fourth waits for a worker to be free and runs in that same process.
 *
 * The Python original (a common tutorial example):
 *
 *     from multiprocessing import Pool
 *     import os, time
 *
 *     def task(n):
 *         print(f'task {n} starts in process {os.getpid()}', flush=True)
 *         time.sleep(0.5)
 *         print(f'task {n} ends in process {os.getpid()}', flush=True)
 *         return os.getpid()
 *
 *     if __name__ == '__main__':
 *         with Pool(3) as pool:
 *             pids = pool.map(task, [1, 2, 3, 4], chunksize=1)
 *         print(len(set(pids)), 'processes ran', len(pids), 'tasks')
 *
 * A pool's workers are started once and reused: tasks 1 to 3 start at
 * once, one in each worker, and task 4 starts only when one of them has
 * ended, in the process that ran it.  Each task returns its pid and the
 * times it started and ended (ex_now reads a clock that every process of
 * the machine shares), so the program checks that three processes ran
 * the four tasks and that task 4 started after the task before it in the
 * same process had ended; the last line names that process.
 *
 * An optional argument chooses the start method: pool_reuse spawn.
 */
#include "example.h"

#include <stdio.h>

#include "mproc.h"

#define WORKERS 3
#define TASKS 4

/* Returns (pid, start time, end time). */
static int task(const mp_args *args, mp_args *result) {
  int n = (int)mp_args_int(args, 0);
  long long pid = (long long)mp_getpid();
  double start = ex_now();
  printf("task %d starts in process %lld\n", n, pid);
  fflush(stdout);
  ex_sleep(0.5);
  printf("task %d ends in process %lld\n", n, pid);
  fflush(stdout);
  if (mp_args_add_int(result, mp_getpid()) != 0 ||
      mp_args_add_double(result, start) != 0)
    return 1;
  return mp_args_add_double(result, ex_now());
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  if (ex_start_method(argc, argv) != 0)
    return 2;

  mp_pool *pool;
  mp_args *items, *results = NULL;
  if (mp_pool_new(&pool, WORKERS) != 0 ||
      mp_args_pack(&items, "iiii", 1, 2, 3, 4) != 0 ||
      mp_pool_map(pool, task, items, 1, &results) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  mp_args_free(items);
  mp_pool_free(pool);

  /* Each call added three values: map gives a tuple for each. */
  int64_t pid[TASKS];
  double start[TASKS], end[TASKS];
  for (size_t i = 0; i < TASKS; i++)
    mp_args_unpack(mp_args_tuple(results, i), "Idd", &pid[i], &start[i],
                   &end[i]);
  mp_args_free(results);

  int distinct = 0, before = -1;
  for (int i = 0; i < TASKS; i++) {
    int seen = 0;
    for (int j = 0; j < i; j++)
      seen |= pid[j] == pid[i];
    distinct += !seen;
  }
  for (int j = 0; j < TASKS - 1; j++)
    if (pid[j] == pid[TASKS - 1] && end[j] <= start[TASKS - 1])
      before = j;
  printf("%d processes ran %d tasks\n", distinct, TASKS);
  if (distinct != WORKERS || before < 0) {
    printf("task 4 did not wait for a worker to be free\n");
    return 1;
  }
  printf("task 4 reused worker %lld (task %d's), %.2f s after the start\n",
         (long long)pid[TASKS - 1], before + 1,
         start[TASKS - 1] - start[0]);
  return 0;
}
