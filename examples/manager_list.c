/*
 * manager_list.c - processes append to one list held by a Manager; each
 * is started and joined before the next, so the list comes out in order.
 *
 * The Python original:
 *
 *     from multiprocessing import Process, Manager
 *
 *     def f(l, i):
 *         l.append(i)
 *
 *     if __name__ == '__main__':
 *         with Manager() as manager:
 *             l = manager.list()
 *             for i in range(4):
 *                 p = Process(target=f, args=(l, i))
 *                 p.start()
 *                 p.join()
 *             print(l)                  # [0, 1, 2, 3]
 *
 * The list proxy travels to each child in its mp_args (the format letter
 * 'P', read back with mp_args_proxy); mp_list_append is a request to the
 * manager's server process, which holds the list.  The main program
 * reads the whole list back with mp_list_slice (Python's l[0:len(l)])
 * and prints it as Python does.
 *
 * An optional argument chooses the start method of the children and of
 * the server: manager_list spawn.
 */
#include "example.h"

#include <stdio.h>

#include "mproc.h"

#define N 4

static int f(const mp_args *args) {
  mp_proxy *l = mp_args_proxy(args, 0); /* owned by args: not freed */
  int i = (int)mp_args_int(args, 1);
  if (l == NULL || mp_list_append(l, "i", i) != 0) /* l.append(i) */
    return mp_set_error(1, "append: %s", mp_last_error_message());
  return 0;
}

static int fail(const char *what) {
  fprintf(stderr, "error: %s: %s\n", what, mp_last_error_message());
  return 1;
}

/* Run f(l, i) in a new process and wait for it: its exit code, or -1. */
static int run(mp_proxy *l, int i) {
  mp_process *p;
  int code = -1;
  if (mp_process_startf(&p, f, "Pi", l, i) != 0) {
    fail("start");
    return -1;
  }
  mp_process_join(p, MP_FOREVER);
  mp_process_exitcode(p, &code);
  if (code != 0)
    fprintf(stderr, "error: process %d: exitcode %d: %s\n", i, code,
            mp_process_error(p) ? mp_process_error(p) : "");
  mp_process_free(p);
  return code;
}

/* print(l) for a list of integers. */
static int print_list(mp_proxy *l) {
  mp_args *items;
  if (mp_list_slice(l, 0, mp_list_len(l), &items) != 0)
    return fail("slice");
  printf("[");
  for (size_t j = 0; j < mp_args_count(items); j++)
    printf("%s%lld", j ? ", " : "", (long long)mp_args_int(items, j));
  printf("]\n");
  mp_args_free(items);
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  if (ex_start_method(argc, argv) != 0)
    return 2;

  mp_manager *manager;
  mp_proxy *l;
  if (mp_manager_start(&manager, NULL) != 0)
    return fail("manager");
  if (mp_manager_list(manager, &l) != 0)
    return fail("list");

  int failed = 0;
  for (int i = 0; i < N; i++)
    failed |= run(l, i) != 0;
  failed |= print_list(l);

  mp_proxy_free(l);
  if (mp_manager_shutdown(manager) != 0)
    failed |= fail("shutdown");
  mp_manager_free(manager);
  return failed;
}
