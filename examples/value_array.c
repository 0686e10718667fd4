/*
 * value_array.c - a shared Value and Array, changed by ten processes.
 *
 * The multiprocessing documentation's example has one child:
 *
 *     from multiprocessing import Process, Value, Array
 *
 *     def f(n, a):
 *         n.value = 3.1415927
 *         for i in range(len(a)):
 *             a[i] = -a[i]
 *
 *     if __name__ == '__main__':
 *         num = Value('d', 0.0)
 *         arr = Array('i', range(10))
 *
 *         p = Process(target=f, args=(num, arr))
 *         p.start()
 *         p.join()
 *
 *         print(num.value)      # 3.1415927
 *         print(arr[:])         # [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]
 *
 * Here ten processes share the work, and the Python is:
 *
 *     def f(n, a, i):
 *         with n.get_lock():                      # read-modify-write
 *             n.value += i * i - (i - 1) * (i - 1) if i else 0
 *         a[i] = -a[i]
 *
 *     if __name__ == '__main__':
 *         num = Value('d', 0.0)
 *         arr = Array('i', range(10))
 *         ps = [Process(target=f, args=(num, arr, i)) for i in range(10)]
 *         for p in ps: p.start()
 *         for p in ps: p.join()
 *         print(num.value)      # 81.0
 *         print(arr[:])         # [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]
 *
 * Process i negates element i (each element has one writer), and adds
 * i^2 - (i-1)^2 to num (process 0 adds 0).  The sum telescopes to
 * 9^2 = 81 in whatever order the processes run, and every term is a
 * small integer, exact in a double: the output is always 81.0, unless an
 * update is lost.  `num += x` is a read followed by a write, so two
 * processes could both read the old value and one addition would
 * vanish; holding the value's lock across both, like Python's
 * `with n.get_lock():`, rules that out.
 *
 * An optional argument chooses the start method: value_array spawn.
 */
#include "example.h"

#include <stdint.h>
#include <stdio.h>

#include "mproc.h"

#define N 10

static int f(const mp_args *args) {
  mp_value *n = mp_args_value(args, 0);
  mp_array *a = mp_args_array(args, 1);
  int64_t i = mp_args_int(args, 2), x;

  /* with n.get_lock(): n.value += ... */
  mp_lock *lock = mp_value_get_lock(n);
  int rc = mp_lock_acquire(lock, MP_FOREVER);
  if (rc != 0)
    return mp_set_error(1, "acquire: %s", mp_last_error_message());
  double *value = mp_value_ptr(n);
  *value += i == 0 ? 0.0 : (double)(i * i - (i - 1) * (i - 1));
  mp_lock_release(lock);

  /* a[i] = -a[i] */
  if (mp_array_get_int(a, (size_t)i, &x) != 0 ||
      mp_array_set_int(a, (size_t)i, -x) != 0)
    return mp_set_error(1, "arr[%d]: %s", (int)i, mp_last_error_message());
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  if (ex_start_method(argc, argv) != 0)
    return 2;

  int range[N];
  for (int i = 0; i < N; i++)
    range[i] = i;
  double zero = 0.0;
  mp_value *num;
  mp_array *arr;
  if (mp_value_new(&num, 'd', &zero) != 0 ||
      mp_array_new(&arr, 'i', N, range) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }

  mp_process *ps[N];
  for (int i = 0; i < N; i++) {
    if (mp_process_startf(&ps[i], f, "VAi", num, arr, i) != 0) {
      fprintf(stderr, "error: %s\n", mp_last_error_message());
      return 1;
    }
  }
  int failed = 0;
  for (int i = 0; i < N; i++) {
    int code = -1;
    mp_process_join(ps[i], MP_FOREVER);
    mp_process_exitcode(ps[i], &code);
    if (code != 0) {
      fprintf(stderr, "%s: exitcode %d: %s\n", mp_process_name(ps[i]), code,
              mp_process_error(ps[i]) ? mp_process_error(ps[i]) : "");
      failed = 1;
    }
    mp_process_free(ps[i]);
  }

  /* print(num.value); print(arr[:]) */
  double value;
  int out[N];
  if (mp_value_get_double(num, &value) != 0 ||
      mp_array_read(arr, 0, N, out) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  printf("%.1f\n[", value);
  for (int i = 0; i < N; i++) {
    printf("%s%d", i ? ", " : "", out[i]);
    failed |= out[i] != -i;
  }
  printf("]\n");
  failed |= value != 81.0;

  mp_value_free(num);
  mp_array_free(arr);
  return failed;
}
