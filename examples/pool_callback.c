/*
 * pool_callback.c - apply_async with a callback that prints each result
 * as it arrives.
 *
 * The Python original (the common tutorial pattern):
 *
 *     from multiprocessing import Pool
 *
 *     def square(x):
 *         return x * x
 *
 *     def print_result(r):
 *         print(f"Result: {r}")
 *
 *     if __name__ == '__main__':
 *         with Pool(4) as pool:
 *             for i in range(10):
 *                 pool.apply_async(square, (i,), callback=print_result)
 *             pool.close()
 *             pool.join()
 *
 * The callback runs in the main program's process, in the pool's own
 * thread that reads the workers' results, as in Python: one callback at
 * a time, so it may update the main program's variables without a lock.
 * The results arrive in whatever order the workers finish, so the order
 * of the lines varies; once join has returned, every callback has run.
 * No handle is kept (NULL instead of an mp_async **): the callback is
 * all we want.
 *
 * An optional argument chooses the start method: pool_callback spawn.
 */
#include "example.h"

#include <stdio.h>

#include "mproc.h"

#define N 10

static int square(const mp_args *args, mp_args *result) {
  int64_t x = mp_args_int(args, 0);
  return mp_args_add_int(result, x * x);
}

typedef struct tally {
  int count;
  int64_t sum;
} tally;

static void print_result(const mp_args *result, void *arg) {
  tally *t = arg;
  int64_t r = mp_args_int(result, 0);
  printf("Result: %lld\n", (long long)r);
  t->count++;
  t->sum += r;
}

static void print_error(int status, const char *message, void *arg) {
  (void)arg;
  printf("Error %d: %s\n", status, message);
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  if (ex_start_method(argc, argv) != 0)
    return 2;

  mp_pool *pool;
  if (mp_pool_new(&pool, 4) != 0) {
    fprintf(stderr, "Pool: %s\n", mp_last_error_message());
    return 1;
  }
  tally t = {0, 0};
  for (int i = 0; i < N; i++) {
    mp_args *args;
    if (mp_args_pack(&args, "i", i) != 0 ||
        mp_pool_apply_async(pool, square, args, print_result, print_error,
                            &t, NULL) != 0) {
      fprintf(stderr, "apply_async: %s\n", mp_last_error_message());
      mp_pool_free(pool);
      return 1;
    }
    mp_args_free(args);
  }
  mp_pool_close(pool);
  if (mp_pool_join(pool, MP_FOREVER) != 0)
    fprintf(stderr, "join: %s\n", mp_last_error_message());
  mp_pool_free(pool);

  /* 0 + 1 + 4 + ... + 81 */
  printf("%d results, sum %lld\n", t.count, (long long)t.sum);
  return t.count == N && t.sum == 285 ? 0 : 1;
}
