/*
 * methods.h - run one check under every start method the platform has:
 *     static void check_x(const char *method) { ... }
 *     FOR_EACH_METHOD(check_x)
 * defines Test(fork, check_x), Test(spawn, check_x), ... (spawn only on
 * Windows).
 */
#ifndef MPROC_TEST_METHODS_H
#define MPROC_TEST_METHODS_H

#include <criterion/criterion.h>

#include "support.h"

#define TS_METHOD_TEST(method, check)               \
  Test(method, check, .timeout = TS_TIMEOUT) {      \
    check(#method);                                 \
  }

#if MP_HAS_FORK
TS_SUITE(fork);
TS_SUITE(forkserver);
#endif
TS_SUITE(spawn);

#if MP_HAS_FORK
#  define FOR_EACH_METHOD(check)                    \
    TS_METHOD_TEST(fork, check)                     \
    TS_METHOD_TEST(spawn, check)                    \
    TS_METHOD_TEST(forkserver, check)
#else
#  define FOR_EACH_METHOD(check) TS_METHOD_TEST(spawn, check)
#endif

#endif
