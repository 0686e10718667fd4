/*
 * process_subclass.c - the "subclass" form of a process.
 *
 * The Python original:
 *
 *     import multiprocessing, time
 *
 *     class ClockProcess(multiprocessing.Process):
 *         def __init__(self, interval):
 *             multiprocessing.Process.__init__(self)
 *             self.interval = interval
 *
 *         def run(self):
 *             n = 3
 *             while n > 0:
 *                 print('the time is {0}'.format(time.ctime()))
 *                 time.sleep(self.interval)
 *                 n -= 1
 *
 *     if __name__ == '__main__':
 *         p = ClockProcess(0.5)
 *         p.start()
 *         p.join()
 *
 * In C the "subclass" is a struct whose first member is the mp_process
 * pointer; mp_process_new_subclass fills it in.  At start the struct is
 * copied into the child, whose copy gets the child's own process object
 * as `base`, and run(copy) is called there.
 */
#include "example.h"

#include <stdio.h>

#include "mproc.h"

struct clock_process {
  mp_process *base; /* must come first */
  double interval;
  int count;
};

static int clock_run(void *self) {
  struct clock_process *me = self;
  char now[64];
  for (int n = me->count; n > 0; n--) {
    printf("%s: the time is %s\n", mp_process_name(me->base),
           ex_ctime(now, sizeof now));
    fflush(stdout);
    ex_sleep(me->interval);
  }
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);

  struct clock_process p = {NULL, 0.5, 3};
  if (mp_process_new_subclass(&p, sizeof p, clock_run) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  /* Python names a subclass's process after the class. */
  mp_process_set_name(p.base, "ClockProcess-1");
  if (mp_process_start(p.base) != 0 ||
      mp_process_join(p.base, MP_FOREVER) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  int code = 0;
  mp_process_exitcode(p.base, &code);
  printf("%s ended with exitcode %d\n", mp_process_name(p.base), code);
  mp_process_free(p.base);
  return 0;
}
