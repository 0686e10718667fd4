/*
 * pool_map.c - a pool of four worker processes: map, apply_async, and a
 * get that runs out of patience.
 *
 * The Python original (after the multiprocessing documentation's Pool
 * examples):
 *
 *     from multiprocessing import Pool, TimeoutError
 *     import time
 *
 *     def f(x):
 *         return x*x
 *
 *     if __name__ == '__main__':
 *         with Pool(4) as pool:
 *             print(pool.map(f, [1, 2, 3, 4]))      # [1, 4, 9, 16]
 *
 *             res = pool.apply_async(f, (20,))      # runs in one process
 *             print(res.get(timeout=1))             # 400
 *
 *             res = pool.apply_async(time.sleep, (2,))
 *             try:
 *                 print(res.get(timeout=0.2))
 *             except TimeoutError:
 *                 print("We lacked patience and got a "
 *                       "multiprocessing.TimeoutError")
 *
 *             print("For the moment, the pool remains available "
 *                   "for more work")
 *
 *         # exiting the 'with'-block has stopped the pool
 *         print("Now the pool is closed and no longer available")
 *
 * A task takes its arguments as an mp_args tuple and adds its result
 * values to another; mp_pool_map passes each item of a tuple as one
 * call's argument and gives back the calls' values in order.  Leaving
 * Python's with-block terminates the pool: mp_pool_terminate stops the
 * worker still sleeping, and its task fails with MP_ECLOSED.  The get of
 * 400 waits up to 10 s rather than 1: the machine may be busy.
 *
 * An optional argument chooses the start method: pool_map spawn.
 */
#include "example.h"

#include <stdio.h>

#include "mproc.h"

static int f(const mp_args *args, mp_args *result) {
  int64_t x = mp_args_int(args, 0);
  return mp_args_add_int(result, x * x);
}

static int sleep_task(const mp_args *args, mp_args *result) {
  (void)result;
  ex_sleep(mp_args_double(args, 0));
  return 0;
}

static int fail(const char *what) {
  fprintf(stderr, "%s: %s\n", what, mp_last_error_message());
  return 1;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  if (ex_start_method(argc, argv) != 0)
    return 2;

  mp_pool *pool;
  if (mp_pool_new(&pool, 4) != 0)
    return fail("Pool");

  /* print(pool.map(f, [1, 2, 3, 4])) */
  mp_args *items, *squares;
  if (mp_args_pack(&items, "iiii", 1, 2, 3, 4) != 0 ||
      mp_pool_map(pool, f, items, 0, &squares) != 0)
    return fail("map");
  int ok = mp_args_count(squares) == 4;
  printf("[");
  for (size_t i = 0; i < mp_args_count(squares); i++) {
    int64_t sq = mp_args_int(squares, i);
    printf("%s%lld", i ? ", " : "", (long long)sq);
    ok &= sq == (int64_t)((i + 1) * (i + 1));
  }
  printf("]\n");
  mp_args_free(squares);
  mp_args_free(items);

  /* res = pool.apply_async(f, (20,)); print(res.get(timeout=1)) */
  mp_args *args;
  mp_async *res;
  const mp_args *value;
  if (mp_args_pack(&args, "i", 20) != 0 ||
      mp_pool_apply_async(pool, f, args, NULL, NULL, NULL, &res) != 0 ||
      mp_async_get(res, 10.0, &value) != 0)
    return fail("apply_async");
  printf("%lld\n", (long long)mp_args_int(value, 0));
  ok &= mp_args_int(value, 0) == 400;
  mp_async_free(res);
  mp_args_free(args);

  /* A worker sleeps for 2 s; we wait 0.2 s for it. */
  if (mp_args_pack(&args, "d", 2.0) != 0 ||
      mp_pool_apply_async(pool, sleep_task, args, NULL, NULL, NULL,
                          &res) != 0)
    return fail("apply_async");
  mp_args_free(args);
  int rc = mp_async_get(res, 0.2, &value);
  if (rc == MP_ETIMEDOUT)
    printf("We lacked patience and got a multiprocessing.TimeoutError\n");
  else
    printf("get: %s\n", rc == 0 ? "returned" : mp_strerror(rc));
  ok &= rc == MP_ETIMEDOUT;
  printf("For the moment, the pool remains available for more work\n");

  /* The end of the with-block: terminate, then release. */
  mp_pool_terminate(pool);
  rc = mp_async_get(res, 0, &value); /* the sleeper was stopped */
  ok &= rc == MP_ECLOSED;
  mp_async_free(res);
  mp_pool_free(pool);
  printf("Now the pool is closed and no longer available\n");
  return ok ? 0 : 1;
}
