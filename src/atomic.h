/*
 * atomic.h - the few atomic operations the shared-memory objects need.
 *
 * GCC and Clang: the __atomic builtins; MSVC: the Interlocked family
 * (MSVC's C11 <stdatomic.h> needs an experimental switch).  Every
 * operation but the _rel stores is sequentially consistent: the objects built on these rely
 * on store-then-load ordering between processes (a waiter announces
 * itself, then re-checks; a waker publishes, then checks for waiters).
 * Not installed.
 */
#ifndef MPROC_ATOMIC_H
#define MPROC_ATOMIC_H

#include <stdint.h>

#if defined(_MSC_VER) && !defined(__clang__)
#  include <intrin.h>
#  include <windows.h>

static __forceinline uint32_t mp__load32(volatile uint32_t *p) {
  return (uint32_t)InterlockedCompareExchange((volatile LONG *)p, 0, 0);
}
static __forceinline void mp__store32(volatile uint32_t *p, uint32_t v) {
  InterlockedExchange((volatile LONG *)p, (LONG)v);
}
static __forceinline uint32_t mp__xchg32(volatile uint32_t *p, uint32_t v) {
  return (uint32_t)InterlockedExchange((volatile LONG *)p, (LONG)v);
}
/* Compare-and-swap: 1 when *p was *expected (now desired); otherwise 0
 * with *expected updated to the current value. */
static __forceinline int mp__cas32(volatile uint32_t *p, uint32_t *expected,
                                   uint32_t desired) {
  uint32_t old = (uint32_t)InterlockedCompareExchange(
      (volatile LONG *)p, (LONG)desired, (LONG)*expected);
  if (old == *expected)
    return 1;
  *expected = old;
  return 0;
}
static __forceinline uint32_t mp__add32(volatile uint32_t *p, uint32_t v) {
  return (uint32_t)InterlockedExchangeAdd((volatile LONG *)p, (LONG)v) + v;
}
static __forceinline uint64_t mp__load64(volatile uint64_t *p) {
  return (uint64_t)InterlockedCompareExchange64((volatile LONG64 *)p, 0, 0);
}
static __forceinline void mp__store64(volatile uint64_t *p, uint64_t v) {
  InterlockedExchange64((volatile LONG64 *)p, (LONG64)v);
}
static __forceinline uint64_t mp__add64(volatile uint64_t *p, uint64_t v) {
  return (uint64_t)InterlockedExchangeAdd64((volatile LONG64 *)p,
                                            (LONG64)v) + v;
}
static __forceinline int mp__cas64(volatile uint64_t *p, uint64_t *expected,
                                   uint64_t desired) {
  uint64_t old = (uint64_t)InterlockedCompareExchange64(
      (volatile LONG64 *)p, (LONG64)desired, (LONG64)*expected);
  if (old == *expected)
    return 1;
  *expected = old;
  return 0;
}
/* Release stores (here simply the sequentially consistent ones). */
static __forceinline void mp__store32_rel(volatile uint32_t *p, uint32_t v) {
  mp__store32(p, v);
}
static __forceinline void mp__store64_rel(volatile uint64_t *p, uint64_t v) {
  mp__store64(p, v);
}
#  define mp__cpu_relax() YieldProcessor()

#else /* GCC, Clang */

#  define MP__SC __ATOMIC_SEQ_CST
static inline uint32_t mp__load32(volatile uint32_t *p) {
  return __atomic_load_n(p, MP__SC);
}
static inline void mp__store32(volatile uint32_t *p, uint32_t v) {
  __atomic_store_n(p, v, MP__SC);
}
static inline uint32_t mp__xchg32(volatile uint32_t *p, uint32_t v) {
  return __atomic_exchange_n(p, v, MP__SC);
}
static inline int mp__cas32(volatile uint32_t *p, uint32_t *expected,
                            uint32_t desired) {
  return __atomic_compare_exchange_n(p, expected, desired, 0, MP__SC,
                                     MP__SC);
}
static inline uint32_t mp__add32(volatile uint32_t *p, uint32_t v) {
  return __atomic_add_fetch(p, v, MP__SC);
}
static inline uint64_t mp__load64(volatile uint64_t *p) {
  return __atomic_load_n(p, MP__SC);
}
static inline void mp__store64(volatile uint64_t *p, uint64_t v) {
  __atomic_store_n(p, v, MP__SC);
}
static inline uint64_t mp__add64(volatile uint64_t *p, uint64_t v) {
  return __atomic_add_fetch(p, v, MP__SC);
}
static inline int mp__cas64(volatile uint64_t *p, uint64_t *expected,
                            uint64_t desired) {
  return __atomic_compare_exchange_n(p, expected, desired, 0, MP__SC,
                                     MP__SC);
}
/* Release stores: ordered after everything before them (no fence). */
static inline void mp__store32_rel(volatile uint32_t *p, uint32_t v) {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
static inline void mp__store64_rel(volatile uint64_t *p, uint64_t v) {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
#  if defined(__x86_64__) || defined(__i386__)
#    define mp__cpu_relax() __builtin_ia32_pause()
#  elif defined(__aarch64__) || defined(__arm__)
#    define mp__cpu_relax() __asm__ __volatile__("yield")
#  else
#    define mp__cpu_relax() ((void)0)
#  endif
#endif

#endif /* MPROC_ATOMIC_H */
