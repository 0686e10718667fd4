/*
 * manager_dict.c - ten processes fill one dict held by a Manager: each
 * stores the square of its index; the main program then prints the dict.
 *
 * The Python original (after the multiprocessing documentation's
 * Manager example):
 *
 *     from multiprocessing import Process, Manager
 *
 *     def f(d, i):
 *         d[i] = i * i
 *
 *     if __name__ == '__main__':
 *         with Manager() as manager:
 *             d = manager.dict()
 *             ps = [Process(target=f, args=(d, i)) for i in range(10)]
 *             for p in ps:
 *                 p.start()
 *             for p in ps:
 *                 p.join()
 *             print(dict(sorted(d.items())))
 *             # {0: 0, 1: 1, 2: 4, 3: 9, 4: 16, 5: 25, 6: 36, 7: 49, ...}
 *
 * mp_manager_start starts the server process that holds the dict; the
 * dict proxy travels to each child in its mp_args (the format letter 'P',
 * read back with mp_args_proxy) and every mp_dict_set is a request to
 * the server.  The children finish in any order, so the dict's items
 * (insertion order, as in Python) are sorted by key before printing.
 * Leaving Python's with-block shuts the server down: mp_manager_shutdown.
 *
 * An optional argument chooses the start method of the children and of
 * the server: manager_dict spawn.
 */
#include "example.h"

#include <stdio.h>
#include <stdlib.h>

#include "mproc.h"

#define N 10

static int f(const mp_args *args) {
  mp_proxy *d = mp_args_proxy(args, 0); /* owned by args: not freed */
  int i = (int)mp_args_int(args, 1);
  if (d == NULL || mp_dict_set(d, "ii", i, i * i) != 0) /* d[i] = i * i */
    return mp_set_error(1, "d[%d]: %s", i, mp_last_error_message());
  return 0;
}

static int fail(const char *what) {
  fprintf(stderr, "error: %s: %s\n", what, mp_last_error_message());
  return 1;
}

struct item {
  int64_t key, value;
};

static int by_key(const void *a, const void *b) {
  int64_t x = ((const struct item *)a)->key, y = ((const struct item *)b)->key;
  return (x > y) - (x < y);
}

/* print(dict(sorted(d.items()))) for a dict of integers. */
static int print_sorted(mp_proxy *d) {
  mp_args *items; /* k0, v0, k1, v1, ... */
  if (mp_dict_items(d, &items) != 0)
    return fail("items");
  size_t n = mp_args_count(items) / 2;
  struct item *v = malloc((n ? n : 1) * sizeof *v);
  if (v == NULL) {
    mp_args_free(items);
    return 1;
  }
  for (size_t j = 0; j < n; j++) {
    v[j].key = mp_args_int(items, 2 * j);
    v[j].value = mp_args_int(items, 2 * j + 1);
  }
  mp_args_free(items);
  qsort(v, n, sizeof *v, by_key);
  printf("{");
  for (size_t j = 0; j < n; j++)
    printf("%s%lld: %lld", j ? ", " : "", (long long)v[j].key,
           (long long)v[j].value);
  printf("}\n");
  free(v);
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  if (ex_start_method(argc, argv) != 0)
    return 2;

  mp_manager *manager;
  mp_proxy *d;
  if (mp_manager_start(&manager, NULL) != 0)
    return fail("manager");
  if (mp_manager_dict(manager, &d) != 0)
    return fail("dict");

  mp_process *ps[N];
  for (int i = 0; i < N; i++)
    if (mp_process_startf(&ps[i], f, "Pi", d, i) != 0)
      return fail("start");
  int failed = 0;
  for (int i = 0; i < N; i++) {
    int code = -1;
    mp_process_join(ps[i], MP_FOREVER);
    mp_process_exitcode(ps[i], &code);
    if (code != 0) {
      fprintf(stderr, "error: process %d: exitcode %d: %s\n", i, code,
              mp_process_error(ps[i]) ? mp_process_error(ps[i]) : "");
      failed = 1;
    }
    mp_process_free(ps[i]);
  }

  failed |= print_sorted(d);
  failed |= mp_dict_len(d) != N;

  mp_proxy_free(d);
  if (mp_manager_shutdown(manager) != 0)
    failed |= fail("shutdown");
  mp_manager_free(manager);
  return failed;
}
