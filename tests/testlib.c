/*
 * testlib.c - a process target defined in a shared library the test
 * program links against: under spawn the child must find it again as
 * (library path, offset from the library's base).
 */
#include "testlib.h"

int testlib_answer(const mp_args *args) {
  return 40 + (int)mp_args_int(args, 0);
}
