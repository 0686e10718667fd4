/* testlib.h - a target that lives in a shared library (see testlib.c). */
#ifndef MPROC_TESTLIB_H
#define MPROC_TESTLIB_H

#include "mproc.h"

#if defined(_WIN32)
#  if defined(MPROC_TESTLIB_BUILDING)
#    define TESTLIB_API __declspec(dllexport)
#  else
#    define TESTLIB_API __declspec(dllimport)
#  endif
#else
#  define TESTLIB_API __attribute__((visibility("default")))
#endif

/* Returns 40 + the int in args[0] (so 42 for 2). */
TESTLIB_API int testlib_answer(const mp_args *args);

#endif
