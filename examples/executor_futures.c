/*
 * executor_futures.c - concurrent.futures' ProcessPoolExecutor example:
 * which of six large numbers are prime, with the results in order, then
 * in the order they complete.
 *
 * The Python original (the concurrent.futures documentation, with
 * as_completed added):
 *
 *     import concurrent.futures
 *     import math
 *
 *     PRIMES = [
 *         112272535095293,
 *         112582705942171,
 *         112272535095293,
 *         115280095190773,
 *         115797848077099,
 *         1099726899285419]
 *
 *     def is_prime(n):
 *         if n < 2:
 *             return False
 *         if n == 2:
 *             return True
 *         if n % 2 == 0:
 *             return False
 *
 *         sqrt_n = int(math.floor(math.sqrt(n)))
 *         for i in range(3, sqrt_n + 1, 2):
 *             if n % i == 0:
 *                 return False
 *         return True
 *
 *     def main():
 *         with concurrent.futures.ProcessPoolExecutor() as executor:
 *             for number, prime in zip(PRIMES, executor.map(is_prime, PRIMES)):
 *                 print('%d is prime: %s' % (number, prime))
 *
 *             print('in the order they complete:')
 *             futures = {executor.submit(is_prime, n): n for n in PRIMES}
 *             for future in concurrent.futures.as_completed(futures):
 *                 print('%d is prime: %s' % (futures[future], future.result()))
 *
 *     if __name__ == '__main__':
 *         main()
 *
 * A future is an mp_async: executor.map is a future per number, read in
 * order with mp_async_get; as_completed gives each future's index as it
 * completes: the order varies, but the last number, which is not prime,
 * is often first (its factor 3306091 is found well before the primes are
 * tested up to their square roots, about 10.6 millions).  The executor
 * is a pool of worker processes, as many as the CPUs this process may
 * use.
 *
 * An optional argument chooses the start method: executor_futures spawn.
 */
#include "example.h"

#include <stdio.h>

#include "mproc.h"

#define N 6

static const int64_t PRIMES[N] = {
    112272535095293LL, 112582705942171LL, 112272535095293LL,
    115280095190773LL, 115797848077099LL, 1099726899285419LL};

static int is_prime(const mp_args *args, mp_args *result) {
  int64_t n = mp_args_int(args, 0);
  int prime = 1;
  if (n < 2)
    prime = 0;
  else if (n > 2 && n % 2 == 0)
    prime = 0;
  for (int64_t i = 3; prime && i <= n / i; i += 2)
    if (n % i == 0)
      prime = 0;
  return mp_args_add_int(result, prime);
}

/* Submit is_prime(n) for every number. */
static int submit_all(mp_executor *executor, mp_async *futures[N]) {
  for (int i = 0; i < N; i++) {
    mp_args *a;
    int rc = mp_args_pack(&a, "I", PRIMES[i]);
    if (rc == 0)
      rc = mp_executor_submit(executor, is_prime, a, &futures[i]);
    mp_args_free(a);
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* Print future i's result; 0 when it is the expected one. */
static int print_result(mp_async *future, int i) {
  const mp_args *r;
  if (mp_async_get(future, MP_FOREVER, &r) != 0) {
    printf("%lld: %s\n", (long long)PRIMES[i], mp_last_error_message());
    return 1;
  }
  int prime = (int)mp_args_int(r, 0);
  printf("%lld is prime: %s\n", (long long)PRIMES[i],
         prime ? "True" : "False");
  return prime != (i < N - 1); /* all but the last are prime */
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  if (ex_start_method(argc, argv) != 0)
    return 2;

  mp_executor *executor;
  mp_async *futures[N];
  int failed = 0;
  if (mp_executor_new(&executor, MP_POOL_PROCESS, 0) != 0 ||
      submit_all(executor, futures) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  /* executor.map: the results in the order of the numbers. */
  for (int i = 0; i < N; i++) {
    failed |= print_result(futures[i], i);
    mp_async_free(futures[i]);
  }

  printf("in the order they complete:\n");
  mp_as_completed *done;
  if (submit_all(executor, futures) != 0 ||
      mp_as_completed_new(&done, futures, N, MP_FOREVER) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  size_t i;
  int count = 0;
  while (mp_as_completed_next(done, &i) == 1) {
    failed |= print_result(futures[i], (int)i);
    count++;
  }
  mp_as_completed_free(done);
  for (int k = 0; k < N; k++)
    mp_async_free(futures[k]);

  mp_executor_free(executor); /* shutdown(wait=True) */
  return failed || count != N;
}
