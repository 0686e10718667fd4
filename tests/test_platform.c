/*
 * test_platform.c - the platform layer's shared memory, words and process
 * liveness (src/platform.h part 7), called directly: anonymous segments
 * and adoption of their handles, named segments, sleeping on a word and
 * waking from other threads (through the same mapping and through a
 * second one, as another process would), and mpi_pid_alive.  Built from
 * the library's sources, since these functions are not exported.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "internal.h"
#include "support.h"

#if defined(_WIN32)
#  include <windows.h>
#else
#  include <time.h>
#  include <unistd.h>
#endif

TS_SUITE(shm);
TS_SUITE(shm_named);
TS_SUITE(word);
TS_SUITE(pid);

/* ---- helpers ------------------------------------------------------------ */

static void nap(double seconds) {
#if defined(_WIN32)
  Sleep((DWORD)(seconds * 1000));
#else
  struct timespec ts;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  nanosleep(&ts, NULL);
#endif
}

/* A second handle to the segment behind h (adopt takes it over). */
static mpi_fd dup_handle(mpi_fd h) {
#if defined(_WIN32)
  HANDLE d = NULL;
  cr_assert(DuplicateHandle(GetCurrentProcess(), (HANDLE)h,
                            GetCurrentProcess(), &d, 0, FALSE,
                            DUPLICATE_SAME_ACCESS));
  return (mpi_fd)d;
#else
  int d = dup((int)h);
  cr_assert_geq(d, 0);
  return (mpi_fd)d;
#endif
}

/* A name no other test run uses: pid and random bytes, short enough to
 * be used as it is on every platform. */
static void random_name(char *buf, size_t cap) {
  unsigned char r[6];
  cr_assert_eq(mpi_random(r, sizeof r), 0);
  snprintf(buf, cap, "mproc-t-%lu-%02x%02x%02x%02x%02x%02x",
           (unsigned long)(mpi_getpid() % 10000000), r[0], r[1], r[2], r[3],
           r[4], r[5]);
}

static mpi_shm *new_segment(size_t size) {
  mpi_shm *s = NULL;
  int rc = mpi_shm_new(size, &s);
  cr_assert_eq(rc, 0, "mpi_shm_new: %s: %s", mp_err_name(rc),
               mp_last_error_message());
  return s;
}

/* ---- anonymous segments ------------------------------------------------- */

Test(shm, new_rejects_size_zero) {
  mpi_shm *s = NULL;
  cr_expect_eq(mpi_shm_new(0, &s), MP_EINVAL);
}

Test(shm, new_rejects_a_size_that_overflows) {
  mpi_shm *s = NULL;
  int rc = mpi_shm_new(SIZE_MAX, &s);
  cr_expect(rc == MP_ENOMEM || rc == MP_EINVAL, "got %s", mp_err_name(rc));
  rc = mpi_shm_new(SIZE_MAX - 100, &s);
  cr_expect(rc == MP_ENOMEM || rc == MP_EINVAL, "got %s", mp_err_name(rc));
}

Test(shm, new_is_zeroed_aligned_and_writable) {
  size_t size = 3 * 4096 + 1;
  mpi_shm *s = new_segment(size);
  unsigned char *p = mpi_shm_addr(s);
  cr_expect_eq(mpi_shm_size(s), size);
  cr_expect_eq((uintptr_t)p % 64, 0, "addr %p not 64-byte aligned",
               (void *)p);
  cr_expect_neq(mpi_shm_handle(s), MPI_BAD_FD);
  size_t nonzero = 0;
  for (size_t i = 0; i < size; i++)
    nonzero += p[i] != 0;
  cr_expect_eq(nonzero, 0);
  for (size_t i = 0; i < size; i++)
    p[i] = (unsigned char)(i * 31);
  for (size_t i = 0; i < size; i++)
    if (p[i] != (unsigned char)(i * 31))
      cr_assert_fail("byte %lu", (unsigned long)i);
  mpi_shm_free(s);
  mpi_shm_free(NULL);
}

Test(shm, adopt_maps_the_same_memory) {
  mpi_shm *a = new_segment(10000);
  mpi_shm *b = NULL;
  int rc = mpi_shm_adopt(dup_handle(mpi_shm_handle(a)), &b);
  cr_assert_eq(rc, 0, "adopt: %s: %s", mp_err_name(rc),
               mp_last_error_message());
  cr_expect_eq(mpi_shm_size(b), 10000);
  char *pa = mpi_shm_addr(a), *pb = mpi_shm_addr(b);
  cr_expect_neq(pa, pb, "two views of one segment share an address");
  strcpy(pa + 9000, "through a");
  cr_expect_str_eq(pb + 9000, "through a");
  /* The memory lives on while any mapping does. */
  mpi_shm_free(a);
  strcpy(pb, "still here");
  cr_expect_str_eq(pb, "still here");
  cr_expect_str_eq(pb + 9000, "through a");
  mpi_shm_free(b);
}

/* A section (or file) of the right kind without our header. */
Test(shm, adopt_refuses_memory_without_a_header) {
#if defined(_WIN32)
  HANDLE h = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE,
                                0, 8192, NULL);
  cr_assert_not_null(h);
  mpi_fd fd = (mpi_fd)h;
#else
  FILE *f = tmpfile();
  cr_assert_not_null(f);
  cr_assert_eq(ftruncate(fileno(f), 8192), 0);
  mpi_fd fd = (mpi_fd)dup(fileno(f));
  fclose(f);
#endif
  mpi_shm *s = NULL;
  int rc = mpi_shm_adopt(fd, &s);
  cr_expect_eq(rc, MP_EPROTO, "got %s: %s", mp_err_name(rc),
               mp_last_error_message());
}

/* A handle of another kind altogether. */
Test(shm, adopt_refuses_a_handle_that_is_not_memory) {
#if defined(_WIN32)
  HANDLE h = CreateEventW(NULL, TRUE, FALSE, NULL);
  cr_assert_not_null(h);
  mpi_fd fd = (mpi_fd)h;
#else
  int p[2];
  cr_assert_eq(pipe(p), 0);
  close(p[1]);
  mpi_fd fd = (mpi_fd)p[0];
#endif
  mpi_shm *s = NULL;
  int rc = mpi_shm_adopt(fd, &s);
  cr_expect_eq(rc, MP_EPROTO, "got %s: %s", mp_err_name(rc),
               mp_last_error_message());
}

#if defined(_WIN32)
/* A header whose recorded size is larger than the section holding it
 * (a real 1 MiB segment's header copied into a 4 KiB section) must be
 * refused: the header is 256 bytes on Windows. */
Test(shm, adopt_refuses_a_header_that_claims_too_much) {
  mpi_shm *big = new_segment(1 << 20);
  HANDLE h = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE,
                                0, 4096, NULL);
  cr_assert_not_null(h);
  unsigned char *v = MapViewOfFile(h, FILE_MAP_WRITE, 0, 0, 0);
  cr_assert_not_null(v);
  /* The header: everything in front of mpi_shm_addr. */
  unsigned char *head = (unsigned char *)mpi_shm_addr(big) - 256;
  memcpy(v, head, 256);
  UnmapViewOfFile(v);
  mpi_shm *s = NULL;
  int rc = mpi_shm_adopt((mpi_fd)h, &s);
  cr_expect_eq(rc, MP_EPROTO, "got %s: %s", mp_err_name(rc),
               mp_last_error_message());
  mpi_shm_free(big);
}
#endif

/* ---- named segments ----------------------------------------------------- */

Test(shm_named, create_and_attach_share_memory, .timeout = TS_TIMEOUT) {
  char name[64];
  random_name(name, sizeof name);
  mpi_shm *a = NULL, *b = NULL;
  int rc = mpi_shm_create(name, 5000, &a);
  cr_assert_eq(rc, 0, "create: %s: %s", mp_err_name(rc),
               mp_last_error_message());
  cr_expect_eq(mpi_shm_size(a), 5000);
  cr_expect_eq((uintptr_t)mpi_shm_addr(a) % 64, 0);
  rc = mpi_shm_attach(name, &b);
  cr_assert_eq(rc, 0, "attach: %s: %s", mp_err_name(rc),
               mp_last_error_message());
  cr_expect_eq(mpi_shm_size(b), 5000);
  char *pa = mpi_shm_addr(a), *pb = mpi_shm_addr(b);
  cr_expect_eq(pb[4999], 0);
  strcpy(pa + 4000, "hello");
  cr_expect_str_eq(pb + 4000, "hello");
  strcpy(pb, "back");
  cr_expect_str_eq(pa, "back");
  mpi_shm_free(b);
  mpi_shm_free(a);
}

Test(shm_named, create_of_a_taken_name_is_eexist, .timeout = TS_TIMEOUT) {
  char name[64];
  random_name(name, sizeof name);
  mpi_shm *a = NULL, *b = NULL;
  cr_assert_eq(mpi_shm_create(name, 100, &a), 0, "%s",
               mp_last_error_message());
  int rc = mpi_shm_create(name, 100, &b);
  cr_expect_eq(rc, MP_EEXIST, "got %s", mp_err_name(rc));
  /* The failed create left the segment alone. */
  strcpy(mpi_shm_addr(a), "mine");
  cr_assert_eq(mpi_shm_attach(name, &b), 0);
  cr_expect_str_eq(mpi_shm_addr(b), "mine");
  mpi_shm_free(b);
  mpi_shm_free(a);
}

Test(shm_named, missing_names_are_enoent, .timeout = TS_TIMEOUT) {
  char name[64];
  random_name(name, sizeof name);
  mpi_shm *s = NULL;
  int rc = mpi_shm_attach(name, &s);
  cr_expect_eq(rc, MP_ENOENT, "attach: %s", mp_err_name(rc));
  rc = mpi_shm_unlink(name);
  cr_expect_eq(rc, MP_ENOENT, "unlink: %s", mp_err_name(rc));
}

Test(shm_named, bad_arguments_are_einval, .timeout = TS_TIMEOUT) {
  mpi_shm *s = NULL;
  cr_expect_eq(mpi_shm_create("", 100, &s), MP_EINVAL);
  cr_expect_eq(mpi_shm_attach("", &s), MP_EINVAL);
  cr_expect_eq(mpi_shm_unlink(""), MP_EINVAL);
  char name[64];
  random_name(name, sizeof name);
  cr_expect_eq(mpi_shm_create(name, 0, &s), MP_EINVAL);
  cr_expect_eq(mpi_shm_attach(name, &s), MP_ENOENT, "size 0 created it");
}

Test(shm_named, unlink_of_an_existing_name, .timeout = TS_TIMEOUT) {
  char name[64];
  random_name(name, sizeof name);
  mpi_shm *a = NULL, *b = NULL;
  cr_assert_eq(mpi_shm_create(name, 100, &a), 0, "%s",
               mp_last_error_message());
  strcpy(mpi_shm_addr(a), "kept");
  cr_expect_eq(mpi_shm_unlink(name), 0, "%s", mp_last_error_message());
  int rc = mpi_shm_attach(name, &b);
#if defined(_WIN32)
  /* No unlink on Windows: the name goes with the last handle. */
  cr_expect_eq(rc, 0, "%s", mp_last_error_message());
  if (rc == 0) {
    cr_expect_str_eq(mpi_shm_addr(b), "kept");
    mpi_shm_free(b);
  }
#else
  cr_expect_eq(rc, MP_ENOENT, "got %s", mp_err_name(rc));
#endif
  cr_expect_str_eq(mpi_shm_addr(a), "kept");
  mpi_shm_free(a);
}

Test(shm_named, adopt_of_a_named_segment, .timeout = TS_TIMEOUT) {
  char name[64];
  random_name(name, sizeof name);
  mpi_shm *a = NULL, *b = NULL;
  cr_assert_eq(mpi_shm_create(name, 300, &a), 0, "%s",
               mp_last_error_message());
  int rc = mpi_shm_adopt(dup_handle(mpi_shm_handle(a)), &b);
  cr_assert_eq(rc, 0, "adopt: %s: %s", mp_err_name(rc),
               mp_last_error_message());
  cr_expect_eq(mpi_shm_size(b), 300);
  strcpy(mpi_shm_addr(a), "shared");
  cr_expect_str_eq(mpi_shm_addr(b), "shared");
  mpi_shm_free(a);
  mpi_shm_free(b);
}

#if defined(_WIN32)
Test(shm_named, windows_name_rules, .timeout = TS_TIMEOUT) {
  mpi_shm *s = NULL;
  char name[64], other[80], long_name[256];
  random_name(name, sizeof name);
  snprintf(other, sizeof other, "%s\\x", name);
  cr_expect_eq(mpi_shm_create(other, 100, &s), MP_EINVAL, "backslash");
  cr_expect_eq(mpi_shm_attach(other, &s), MP_EINVAL);
  cr_expect_eq(mpi_shm_unlink(other), MP_EINVAL);
  cr_expect_eq(mpi_shm_create("Local\\", 100, &s), MP_EINVAL);
  cr_expect_eq(mpi_shm_create("Global\\", 100, &s), MP_EINVAL);
  cr_expect_eq(mpi_shm_create("Local\\a\\b", 100, &s), MP_EINVAL);
  cr_expect_eq(mpi_shm_create("bad\xff utf-8", 100, &s), MP_EINVAL);
  memset(long_name, 'n', 201);
  long_name[201] = '\0';
  cr_expect_eq(mpi_shm_create(long_name, 100, &s), MP_EINVAL, "201 bytes");

  /* 200 bytes are fine; "Local\" + name is the same segment as name. */
  random_name(long_name, sizeof long_name);
  size_t n = strlen(long_name);
  memset(long_name + n, 'n', 200 - n);
  long_name[200] = '\0';
  mpi_shm *a = NULL, *b = NULL;
  cr_assert_eq(mpi_shm_create(long_name, 100, &a), 0, "%s",
               mp_last_error_message());
  snprintf(other, sizeof other, "Local\\%s", name);
  cr_assert_eq(mpi_shm_create(other, 100, &b), 0, "%s",
               mp_last_error_message());
  strcpy(mpi_shm_addr(b), "local");
  mpi_shm *c = NULL;
  cr_assert_eq(mpi_shm_attach(name, &c), 0, "%s", mp_last_error_message());
  cr_expect_str_eq(mpi_shm_addr(c), "local");
  cr_expect_eq(mpi_shm_create(name, 100, &s), MP_EEXIST);
  mpi_shm_free(c);
  mpi_shm_free(b);
  mpi_shm_free(a);
}

Test(shm_named, windows_name_goes_with_the_last_handle, .timeout = TS_TIMEOUT) {
  char name[64];
  random_name(name, sizeof name);
  mpi_shm *a = NULL, *b = NULL;
  cr_assert_eq(mpi_shm_create(name, 100, &a), 0);
  cr_assert_eq(mpi_shm_attach(name, &b), 0);
  mpi_shm_free(a);
  cr_expect_eq(mpi_shm_unlink(name), 0, "still held by b");
  mpi_shm_free(b);
  cr_expect_eq(mpi_shm_attach(name, &a), MP_ENOENT);
  cr_expect_eq(mpi_shm_unlink(name), MP_ENOENT);
  cr_assert_eq(mpi_shm_create(name, 100, &a), 0, "the name is free again");
  mpi_shm_free(a);
}

/* L"Local\\" + name (ASCII). */
static void local_name(const char *name, wchar_t *w, size_t cap) {
  const char *full = "Local\\";
  size_t n = 0;
  for (; *full != '\0' && n + 1 < cap; full++)
    w[n++] = (wchar_t)*full;
  for (; *name != '\0' && n + 1 < cap; name++)
    w[n++] = (wchar_t)*name;
  w[n] = L'\0';
}

static HANDLE raw_named_mapping(const char *name, uint32_t magic) {
  wchar_t w[128];
  local_name(name, w, 128);
  HANDLE h = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE,
                                0, 4096, w);
  cr_assert_not_null(h);
  uint32_t *v = MapViewOfFile(h, FILE_MAP_WRITE, 0, 0, 0);
  cr_assert_not_null(v);
  v[0] = magic;
  UnmapViewOfFile(v);
  return h;
}

Test(shm_named, windows_attach_refuses_foreign_mappings, .timeout = 30) {
  char name[64];
  mpi_shm *s = NULL;
  random_name(name, sizeof name);
  HANDLE h = raw_named_mapping(name, 0x12345678u);
  double t0 = mpi_now();
  int rc = mpi_shm_attach(name, &s);
  cr_expect_eq(rc, MP_EPROTO, "wrong magic: %s", mp_err_name(rc));
  cr_expect_lt(mpi_now() - t0, 0.5, "a wrong magic needs no waiting");
  CloseHandle(h);

  /* Magic 0: taken for a creator still writing its header, for 1 s. */
  random_name(name, sizeof name);
  h = raw_named_mapping(name, 0);
  t0 = mpi_now();
  rc = mpi_shm_attach(name, &s);
  double took = mpi_now() - t0;
  cr_expect_eq(rc, MP_EPROTO, "no magic: %s", mp_err_name(rc));
  cr_expect_geq(took, 0.9, "gave up after %.3f s", took);
  cr_expect_lt(took, 10.0);
  CloseHandle(h);
}

Test(shm_named, windows_name_of_another_object_kind, .timeout = TS_TIMEOUT) {
  char name[64];
  wchar_t w[128];
  random_name(name, sizeof name);
  local_name(name, w, 128);
  HANDLE ev = CreateEventW(NULL, TRUE, FALSE, w);
  cr_assert_not_null(ev);
  mpi_shm *s = NULL;
  int rc = mpi_shm_create(name, 100, &s);
  cr_expect_eq(rc, MP_EEXIST, "create: %s", mp_err_name(rc));
  rc = mpi_shm_attach(name, &s);
  cr_expect_eq(rc, MP_ENOENT, "attach: %s", mp_err_name(rc));
  CloseHandle(ev);
}
#endif

/* ---- words -------------------------------------------------------------- */

typedef struct waiter {
  mpi_shm *s;
  mpi_word *w;
  volatile uint32_t done;
  int rc;    /* first error of a wait */
  int calls; /* waits made */
} waiter;

/* Sleep until the word is not 0 (re-checking after every return, as a
 * caller must). */
static void wait_nonzero(void *arg) {
  waiter *x = arg;
  while (mp__load32(&x->w->value) == 0) {
    x->calls++;
    int rc = mpi_word_wait(x->s, x->w, 0, MP_FOREVER);
    if (rc != 0) {
      x->rc = rc;
      break;
    }
  }
  mp__store32(&x->done, 1);
}

/* One wait only, however it ends. */
static void wait_once(void *arg) {
  waiter *x = arg;
  x->calls++;
  x->rc = mpi_word_wait(x->s, x->w, 0, MP_FOREVER);
  mp__store32(&x->done, 1);
}

/* Give n threads the time to fall asleep on w.  The Windows backend
 * counts its sleepers in w->os, so there we know; elsewhere, wait a
 * while (a thread that is late sees the new value and does not sleep:
 * the tests then still pass, just test less). */
static void await_sleepers(mpi_word *w, uint32_t n) {
#if defined(_WIN32)
  double deadline = mpi_now() + 20.0;
  while (mp__load32(&w->os) < n) {
    cr_assert_lt(mpi_now(), deadline, "only %u of %u asleep",
                 (unsigned)mp__load32(&w->os), (unsigned)n);
    Sleep(1);
  }
  nap(0.01); /* past the count and into WaitForSingleObject */
#else
  (void)w;
  (void)n;
  nap(0.2);
#endif
}

static uint32_t count_done(waiter *x, size_t n) {
  uint32_t k = 0;
  for (size_t i = 0; i < n; i++)
    k += mp__load32(&x[i].done);
  return k;
}

Test(word, changed_value_returns_at_once, .timeout = TS_TIMEOUT) {
  mpi_shm *s = new_segment(64);
  mpi_word *w = mpi_shm_addr(s);
  mp__store32(&w->value, 5);
  double t0 = mpi_now();
  cr_expect_eq(mpi_word_wait(s, w, 4, MP_FOREVER), 0);
  cr_expect_eq(mpi_word_wait(s, w, 4, 10.0), 0);
  cr_expect_lt(mpi_now() - t0, 1.0);
#if defined(_WIN32)
  cr_expect_eq(w->os, 0, "sleeper count left at %u", (unsigned)w->os);
#endif
  mpi_shm_free(s);
}

Test(word, timeouts_expire, .timeout = TS_TIMEOUT) {
  mpi_shm *s = new_segment(64);
  mpi_word *w = mpi_shm_addr(s);
  double t0 = mpi_now();
  int rc = mpi_word_wait(s, w, 0, 0.05);
  double took = mpi_now() - t0;
  cr_expect_eq(rc, MP_ETIMEDOUT, "got %s", mp_err_name(rc));
  cr_expect_geq(took, 0.04, "returned after %.4f s", took);
  cr_expect_lt(took, 5.0);

  t0 = mpi_now();
  rc = mpi_word_wait(s, w, 0, 0);
  cr_expect_eq(rc, MP_ETIMEDOUT, "timeout 0: %s", mp_err_name(rc));
  cr_expect_lt(mpi_now() - t0, 1.0);

  rc = mpi_word_wait(s, w, 0, 0.0001);
  cr_expect_eq(rc, MP_ETIMEDOUT, "timeout 0.1 ms: %s", mp_err_name(rc));
#if defined(_WIN32)
  cr_expect_eq(w->os, 0, "sleeper count left at %u", (unsigned)w->os);
#endif
  mpi_shm_free(s);
}

Test(word, wake_without_sleepers_is_harmless, .timeout = TS_TIMEOUT) {
  mpi_shm *s = new_segment(64);
  mpi_word *w = mpi_shm_addr(s);
  mpi_word_wake(s, w, 0);
  mpi_word_wake(s, w, 1);
  /* No wake-up was stored for later. */
  int rc = mpi_word_wait(s, w, 0, 0.02);
  cr_expect_eq(rc, MP_ETIMEDOUT, "got %s", mp_err_name(rc));
  mpi_shm_free(s);
}

Test(word, wake_one_sleeper, .timeout = TS_TIMEOUT) {
  mpi_shm *s = new_segment(4096);
  mpi_word *w = (mpi_word *)((char *)mpi_shm_addr(s) + 1024);
  waiter x = {s, w, 0, 0, 0};
  ts_thread *t = ts_thread_start(wait_nonzero, &x);
  await_sleepers(w, 1);
  cr_expect_eq(mp__load32(&x.done), 0);
  mp__store32(&w->value, 1);
  mpi_word_wake(s, w, 0);
  ts_thread_join(t);
  cr_expect_eq(x.rc, 0, "wait: %s", mp_err_name(x.rc));
#if defined(_WIN32)
  cr_expect_eq(w->os, 0);
#endif
  mpi_shm_free(s);
}

/* As another process would: the sleeper and the waker each through their
 * own mapping of the segment, at different addresses. */
Test(word, wake_through_another_mapping, .timeout = TS_TIMEOUT) {
  mpi_shm *a = new_segment(4096);
  mpi_shm *b = NULL;
  cr_assert_eq(mpi_shm_adopt(dup_handle(mpi_shm_handle(a)), &b), 0);
  mpi_word *wa = (mpi_word *)((char *)mpi_shm_addr(a) + 64);
  mpi_word *wb = (mpi_word *)((char *)mpi_shm_addr(b) + 64);
  for (int round = 0; round < 3; round++) {
    mp__store32(&wa->value, 0);
    waiter x = {a, wa, 0, 0, 0};
    ts_thread *t = ts_thread_start(wait_nonzero, &x);
    await_sleepers(wb, 1);
    mp__store32(&wb->value, 1);
    mpi_word_wake(b, wb, 0);
    ts_thread_join(t);
    cr_expect_eq(x.rc, 0, "round %d: %s", round, mp_err_name(x.rc));
  }
  mpi_shm_free(b);
  mpi_shm_free(a);
}

Test(word, wake_all_wakes_every_sleeper, .timeout = TS_TIMEOUT) {
  enum { N = 4 };
  mpi_shm *s = new_segment(64);
  mpi_word *w = mpi_shm_addr(s);
  waiter x[N];
  ts_thread *t[N];
  for (int i = 0; i < N; i++) {
    waiter init = {s, w, 0, 0, 0};
    x[i] = init;
    t[i] = ts_thread_start(wait_nonzero, &x[i]);
  }
  await_sleepers(w, N);
  mp__store32(&w->value, 1);
  mpi_word_wake(s, w, 1);
  for (int i = 0; i < N; i++) {
    ts_thread_join(t[i]);
    cr_expect_eq(x[i].rc, 0, "thread %d: %s", i, mp_err_name(x[i].rc));
  }
#if defined(_WIN32)
  cr_expect_eq(w->os, 0);
#endif
  mpi_shm_free(s);
}

Test(word, wake_one_wakes_only_one, .timeout = TS_TIMEOUT) {
  enum { N = 2 };
  mpi_shm *s = new_segment(64);
  mpi_word *w = mpi_shm_addr(s);
  waiter x[N];
  ts_thread *t[N];
  for (int i = 0; i < N; i++) {
    waiter init = {s, w, 0, 0, 0};
    x[i] = init;
    t[i] = ts_thread_start(wait_once, &x[i]);
  }
  await_sleepers(w, N);
  mp__store32(&w->value, 1);
  mpi_word_wake(s, w, 0);
  double deadline = mpi_now() + 20.0;
  while (count_done(x, N) == 0 && mpi_now() < deadline)
    nap(0.001);
  cr_expect_eq(count_done(x, N), 1);
  nap(0.2);
  cr_expect_eq(count_done(x, N), 1, "the second sleeper woke too");
  mpi_word_wake(s, w, 0);
  for (int i = 0; i < N; i++) {
    ts_thread_join(t[i]);
    cr_expect_eq(x[i].rc, 0, "thread %d: %s", i, mp_err_name(x[i].rc));
  }
  mpi_shm_free(s);
}

/* More words than the Windows backend's first semaphore table holds,
 * each with its own sleeper, each woken on its own. */
Test(word, many_words_each_wake_their_own, .timeout = TS_TIMEOUT) {
  enum { N = 20 };
  mpi_shm *s = new_segment(N * 64);
  waiter x[N];
  ts_thread *t[N];
  for (int i = 0; i < N; i++) {
    mpi_word *w = (mpi_word *)((char *)mpi_shm_addr(s) + i * 64);
    waiter init = {s, w, 0, 0, 0};
    x[i] = init;
    t[i] = ts_thread_start(wait_nonzero, &x[i]);
  }
  for (int i = 0; i < N; i++)
    await_sleepers(x[i].w, 1);
  /* Wake from the last to the first: each wake must reach its word's
   * sleeper and nobody else's. */
  for (int i = N - 1; i >= 0; i--) {
    mp__store32(&x[i].w->value, 1);
    mpi_word_wake(s, x[i].w, 0);
    ts_thread_join(t[i]);
    cr_expect_eq(x[i].rc, 0, "word %d: %s", i, mp_err_name(x[i].rc));
    for (int j = 0; j < i; j++)
      cr_expect_eq(mp__load32(&x[j].done), 0, "word %d woke with %d", j, i);
  }
  mpi_shm_free(s);
}

/* Sleepers that keep timing out while wakes keep coming, at about the
 * same pace, so that timeouts often fall between a waker's choice of
 * whom to wake and its wake-up: afterwards the books must balance (no
 * wake-up left over to wake a later sleeper for nothing). */
typedef struct churn {
  mpi_shm *s;
  mpi_word *w;
  int bad;             /* results other than 0 and MP_ETIMEDOUT */
  int woken, timeouts; /* for the failure message */
} churn;

static void churn_waits(void *arg) {
  churn *c = arg;
  for (int i = 0; i < 300; i++) {
    int rc = mpi_word_wait(c->s, c->w, 0, 0.001);
    if (rc == 0)
      c->woken++;
    else if (rc == MP_ETIMEDOUT)
      c->timeouts++;
    else
      c->bad++;
  }
}

typedef struct waker {
  mpi_shm *s;
  mpi_word *w;
  volatile uint32_t stop;
  long wakes;
} waker;

static void churn_wakes(void *arg) {
  waker *k = arg;
  while (!mp__load32(&k->stop)) {
    mpi_word_wake(k->s, k->w, (int)(k->wakes & 1));
    k->wakes++;
    nap(0.002);
  }
}

Test(word, timeouts_racing_wakes_leave_nothing_behind,
     .timeout = TS_TIMEOUT) {
  enum { N = 6, K = 1 };
  mpi_shm *s = new_segment(64);
  mpi_word *w = mpi_shm_addr(s);
  churn c[N];
  ts_thread *t[N], *kt[K];
  waker k[K];
  for (int i = 0; i < K; i++) {
    waker init = {s, w, 0, i};
    k[i] = init;
    kt[i] = ts_thread_start(churn_wakes, &k[i]);
  }
  for (int i = 0; i < N; i++) {
    churn init = {s, w, 0, 0, 0};
    c[i] = init;
    t[i] = ts_thread_start(churn_waits, &c[i]);
  }
  int woken = 0, timeouts = 0;
  for (int i = 0; i < N; i++) {
    ts_thread_join(t[i]);
    cr_expect_eq(c[i].bad, 0);
    woken += c[i].woken;
    timeouts += c[i].timeouts;
  }
  for (int i = 0; i < K; i++) {
    mp__store32(&k[i].stop, 1);
    ts_thread_join(kt[i]);
  }
#if defined(_WIN32)
  cr_expect_eq(w->os, 0, "sleeper count left at %u (%d woken, %d timed "
                         "out)",
               (unsigned)w->os, woken, timeouts);
#endif
  int rc = mpi_word_wait(s, w, 0, 0.05);
  cr_expect_eq(rc, MP_ETIMEDOUT,
               "a wake-up was left over: %s (%d woken, %d timed out)",
               mp_err_name(rc), woken, timeouts);
  mpi_shm_free(s);
}

#if defined(_WIN32)
Test(word, windows_word_outside_the_segment_is_einval,
     .timeout = TS_TIMEOUT) {
  mpi_shm *s = new_segment(64);
  mpi_word outside = {0, 0};
  cr_expect_eq(mpi_word_wait(s, &outside, 0, 0.01), MP_EINVAL);
  mpi_word *last = (mpi_word *)((char *)mpi_shm_addr(s) + 64 - 4);
  cr_expect_eq(mpi_word_wait(s, last, 0, 0.01), MP_EINVAL, "straddles");
  mpi_word_wake(s, &outside, 1); /* harmless */
  mpi_shm_free(s);
}
#endif

/* ---- process liveness --------------------------------------------------- */

static int quick(const mp_args *a) {
  (void)a;
  return 0;
}

Test(pid, this_process_is_alive) {
  cr_expect_eq(mpi_pid_alive(mpi_getpid()), 1);
}

Test(pid, a_pid_never_used_is_dead) {
  cr_expect_eq(mpi_pid_alive(0x7ffffff0), 0);
  cr_expect_eq(mpi_pid_alive(-5), 0);
}

Test(pid, an_ended_child_is_dead, .timeout = TS_TIMEOUT) {
#if MP_HAS_FORK
  const char *method = "fork";
#else
  const char *method = "spawn";
#endif
  mp_process *p = ts_start(method, quick, NULL);
  int64_t pid = mp_process_pid(p);
  cr_expect_eq(ts_join(p), 0);
  /* Joined: on Windows mproc still holds the ended process's handle, so
   * the process object still exists; it must count as ended. */
  cr_expect_eq(mpi_pid_alive(pid), 0);
  mp_process_free(p);
  cr_expect_eq(mpi_pid_alive(pid), 0);
}

/* ---- part 9: HMAC-SHA256 (RFC 4231 test vectors) ---------------------- */

TS_SUITE(hmac);

static void check_hmac(const void *key, size_t key_n, const void *msg,
                       size_t msg_n, const char *hex) {
  unsigned char out[MPI_SHA256_SIZE];
  char got[2 * MPI_SHA256_SIZE + 1];
  cr_assert_eq(mpi_hmac_sha256(key, key_n, msg, msg_n, out), 0, "%s",
               mp_last_error_message());
  for (int i = 0; i < MPI_SHA256_SIZE; i++)
    snprintf(got + 2 * i, 3, "%02x", out[i]);
  cr_expect_str_eq(got, hex);
}

Test(hmac, rfc4231_vectors) {
  unsigned char k1[20], k3[20], d3[50], k6[131];
  memset(k1, 0x0b, sizeof k1);
  memset(k3, 0xaa, sizeof k3);
  memset(d3, 0xdd, sizeof d3);
  memset(k6, 0xaa, sizeof k6);
  /* Test case 1. */
  check_hmac(k1, sizeof k1, "Hi There", 8,
             "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  /* Test case 2: a key shorter than the block. */
  check_hmac("Jefe", 4, "what do ya want for nothing?", 28,
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  /* Test case 3: 50 bytes of 0xdd. */
  check_hmac(k3, sizeof k3, d3, sizeof d3,
             "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
  /* Test case 6: a key longer than the block (hashed first). */
  check_hmac(k6, sizeof k6,
             "Test Using Larger Than Block-Size Key - Hash Key First", 54,
             "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  /* An empty message. */
  check_hmac("key", 3, "", 0,
             "5d5d139563c95b5967b9bd9a8c9b233a9dedb45072794cd232dc1b74832607d0");
}

/* ---- part 10: listeners and connections ------------------------------- */

/* mpi_listen / mpi_accept / mpi_connect for each kind of address: a
 * local one the backend names, a local one we name (a socket file; a
 * pipe name on Windows), TCP over IPv4 and IPv6 loopback.  Connections
 * are streams for part 6 and mpi_wait.  Clients connect from threads;
 * nothing waits for another thread by sleeping. */

#if !defined(_WIN32)
#  include <errno.h>
#  include <sys/stat.h>
#endif

TS_SUITE(listen);

#define LS_CAP 320 /* bound address buffers (>= 300) */
#define LS_WAIT 10.0

enum { LS_LOCAL, LS_LOCAL_NAMED, LS_INET, LS_INET6 };

static int ls_family(int where) {
  return where == LS_INET    ? MPI_AF_INET
         : where == LS_INET6 ? MPI_AF_INET6
                             : MPI_AF_LOCAL;
}

/* A local address nobody uses: a pipe name, or a path in /tmp. */
static void ls_local_name(char *buf, size_t cap, const char *tag) {
  unsigned char r[6];
  cr_assert_eq(mpi_random(r, sizeof r), 0);
#if defined(_WIN32)
  const char *dir = "\\\\.\\pipe\\";
#else
  const char *dir = "/tmp/";
#endif
  snprintf(buf, cap, "%smproc-t-%s-%lu-%02x%02x%02x%02x%02x%02x", dir, tag,
           (unsigned long)(mpi_getpid() % 10000000), r[0], r[1], r[2], r[3],
           r[4], r[5]);
}

/* Listen at a fresh address of kind `where`; *bound gets the address to
 * connect to.  Skips the test where the system has no IPv6 loopback. */
static mpi_listener *ls_listen(int where, char *bound) {
  char name[LS_CAP];
  const char *address = NULL;
  if (where == LS_LOCAL_NAMED) {
    ls_local_name(name, sizeof name, "named");
    address = name;
  } else if (where == LS_INET) {
    address = "127.0.0.1:0";
  } else if (where == LS_INET6) {
    address = "[::1]:0";
  }
  mpi_listener *l = NULL;
  int rc = mpi_listen(ls_family(where), address, 8, &l, bound, LS_CAP);
  if (where == LS_INET6 && (rc == MP_EOS || rc == MP_EINVAL))
    cr_skip_test("no IPv6 loopback here: %s: %s", mp_err_name(rc),
                 mp_last_error_message());
  cr_assert_eq(rc, 0, "listen at %s: %s: %s", address ? address : "(new)",
               mp_err_name(rc), mp_last_error_message());
  cr_assert_not_null(l);
  if (where == LS_LOCAL_NAMED)
    cr_expect_str_eq(bound, name);
  if (where == LS_INET)
    cr_expect_eq(strncmp(bound, "127.0.0.1:", 10), 0, "bound %s", bound);
  if (where == LS_INET6)
    cr_expect_eq(strncmp(bound, "[::1]:", 6), 0, "bound %s", bound);
  if (where == LS_INET || where == LS_INET6)
    cr_expect_neq(atoi(strrchr(bound, ':') + 1), 0, "no port: %s", bound);
  return l;
}

/* A client in a thread: connect, then optionally send one byte. */
typedef struct ls_dialer {
  int family;
  const char *address;
  double timeout;
  int send; /* >= 0: a byte to send once connected */
  int rc;
  mpi_fd fd;
  char message[300];
} ls_dialer;

static void ls_dial(void *arg) {
  ls_dialer *d = arg;
  d->fd = MPI_BAD_FD;
  d->rc = mpi_connect(d->family, d->address, d->timeout, &d->fd);
  if (d->rc == 0 && d->send >= 0) {
    unsigned char c = (unsigned char)d->send;
    d->rc = mpi_stream_write(d->fd, &c, 1);
  }
  if (d->rc != 0)
    snprintf(d->message, sizeof d->message, "%s", mp_last_error_message());
}

static void ls_dialer_init(ls_dialer *d, int family, const char *address) {
  memset(d, 0, sizeof *d);
  d->family = family;
  d->address = address;
  d->timeout = LS_WAIT;
  d->send = -1;
  d->fd = MPI_BAD_FD;
}

static mpi_fd ls_accept(mpi_listener *l) {
  mpi_fd s = MPI_BAD_FD;
  int rc = mpi_accept(l, LS_WAIT, &s);
  cr_assert_eq(rc, 0, "accept: %s: %s", mp_err_name(rc),
               mp_last_error_message());
  cr_assert_neq(s, MPI_BAD_FD);
  return s;
}

/* Connect a client from a thread and accept it. */
static void ls_pair(mpi_listener *l, int family, const char *bound,
                    mpi_fd *server, mpi_fd *client) {
  ls_dialer d;
  ls_dialer_init(&d, family, bound);
  ts_thread *t = ts_thread_start(ls_dial, &d);
  mpi_fd s = MPI_BAD_FD;
  int rc = mpi_accept(l, LS_WAIT, &s);
  char msg[300];
  snprintf(msg, sizeof msg, "%s", mp_last_error_message());
  ts_thread_join(t);
  cr_assert_eq(d.rc, 0, "connect to %s: %s: %s", bound, mp_err_name(d.rc),
               d.message);
  cr_assert_eq(rc, 0, "accept: %s: %s", mp_err_name(rc), msg);
  *server = s;
  *client = d.fd;
}

/* Read exactly n bytes with mpi_stream_recv (pieces of any size). */
static void ls_recv_all(mpi_fd h, void *p, size_t n) {
  size_t total = 0;
  while (total < n) {
    size_t got = 0;
    int rc = mpi_stream_recv(h, (char *)p + total, n - total, &got);
    cr_assert_eq(rc, 0, "recv: %s: %s", mp_err_name(rc),
                 mp_last_error_message());
    cr_assert(got >= 1 && got <= n - total, "recv gave %lu bytes",
              (unsigned long)got);
    total += got;
  }
}

typedef struct ls_writer {
  mpi_fd fd;
  const void *p;
  size_t n;
  int rc;
} ls_writer;

static void ls_write(void *arg) {
  ls_writer *w = arg;
  w->rc = mpi_stream_write(w->fd, w->p, w->n);
}

/* Bytes both ways, polling, a large transfer each way at once, and the
 * end of the stream once the client closes. */
static void ls_check_exchange(int where) {
  char bound[LS_CAP];
  mpi_listener *l = ls_listen(where, bound);
  mpi_fd s, c;
  ls_pair(l, ls_family(where), bound, &s, &c);

  /* Nothing has arrived: poll times out, at once and after a while. */
  cr_expect_eq(mpi_stream_poll(s, 0), 0);
  cr_expect_eq(mpi_stream_poll(c, 0), 0);
  double t0 = mpi_now();
  int rc = mpi_stream_poll(s, 0.1);
  double took = mpi_now() - t0;
  cr_expect_eq(rc, 0, "poll: %s", mp_err_name(rc));
  cr_expect_geq(took, 0.08, "poll returned after %.3f s", took);
  cr_expect_lt(took, 5.0);

  /* client -> server */
  cr_assert_eq(mpi_stream_write(c, "hello", 5), 0, "%s",
               mp_last_error_message());
  cr_expect_eq(mpi_stream_poll(s, LS_WAIT), 1);
  char buf[16];
  size_t got = 0;
  cr_assert_eq(mpi_stream_read(s, buf, 5, &got), 0, "%s",
               mp_last_error_message());
  cr_expect_eq(got, 5);
  cr_expect_eq(memcmp(buf, "hello", 5), 0);
  cr_expect_eq(mpi_stream_poll(s, 0), 0, "all was read");

  /* server -> client */
  cr_assert_eq(mpi_stream_write(s, "world!", 6), 0, "%s",
               mp_last_error_message());
  cr_expect_eq(mpi_stream_poll(c, LS_WAIT), 1);
  ls_recv_all(c, buf, 6);
  cr_expect_eq(memcmp(buf, "world!", 6), 0);

  /* 3 MiB each way at the same time (more than any buffer holds). */
  size_t big = 3u << 20;
  void *m1 = ts_make_message(big, 1), *m2 = ts_make_message(big, 2);
  unsigned char *in1 = malloc(big), *in2 = malloc(big);
  cr_assert(in1 != NULL && in2 != NULL);
  ls_writer w1 = {c, m1, big, -1}, w2 = {s, m2, big, -1};
  ts_thread *t1 = ts_thread_start(ls_write, &w1);
  ts_thread *t2 = ts_thread_start(ls_write, &w2);
  cr_assert_eq(mpi_stream_read(s, in1, big, &got), 0, "%s",
               mp_last_error_message());
  ls_recv_all(c, in2, big);
  ts_thread_join(t1);
  ts_thread_join(t2);
  cr_expect_eq(w1.rc, 0, "%s", mp_err_name(w1.rc));
  cr_expect_eq(w2.rc, 0, "%s", mp_err_name(w2.rc));
  cr_expect(ts_is_message(in1, big, 1), "client -> server bytes differ");
  cr_expect(ts_is_message(in2, big, 2), "server -> client bytes differ");
  free(in1);
  free(in2);
  free(m1);
  free(m2);

  /* What the client sent before closing still arrives, then the end. */
  cr_assert_eq(mpi_stream_write(c, "bye", 3), 0);
  mpi_stream_close(c);
  cr_expect_eq(mpi_stream_poll(s, LS_WAIT), 1);
  cr_expect_eq(mpi_stream_read(s, buf, 3, &got), 0, "%s",
               mp_last_error_message());
  cr_expect_eq(memcmp(buf, "bye", 3), 0);
  cr_expect_eq(mpi_stream_poll(s, LS_WAIT), 1, "the end is readable");
  got = 99;
  rc = mpi_stream_read(s, buf, 4, &got);
  cr_expect_eq(rc, MP_EEOF, "read after close: %s", mp_err_name(rc));
  cr_expect_eq(got, 0);
  rc = mpi_stream_recv(s, buf, 4, &got);
  cr_expect_eq(rc, MP_EEOF, "recv after close: %s", mp_err_name(rc));
  mpi_stream_close(s);
  mpi_listener_close(l);
}

Test(listen, exchange_local, .timeout = TS_TIMEOUT) {
  ls_check_exchange(LS_LOCAL);
}

Test(listen, exchange_local_named, .timeout = TS_TIMEOUT) {
  ls_check_exchange(LS_LOCAL_NAMED);
}

Test(listen, exchange_inet, .timeout = TS_TIMEOUT) {
  ls_check_exchange(LS_INET);
}

Test(listen, exchange_inet6, .timeout = TS_TIMEOUT) {
  ls_check_exchange(LS_INET6);
}

/* Writing to a closed peer fails with MP_EPIPE: at once on a pipe, after
 * the peer's reset comes back on TCP. */
static void ls_check_epipe(int where) {
  char bound[LS_CAP];
  mpi_listener *l = ls_listen(where, bound);
  mpi_fd s, c;
  ls_pair(l, ls_family(where), bound, &s, &c);
  mpi_stream_close(c);
  char chunk[1024];
  memset(chunk, 'x', sizeof chunk);
  int rc = 0, writes = 0;
  double deadline = mpi_now() + LS_WAIT;
  while (rc == 0 && mpi_now() < deadline) {
    rc = mpi_stream_write(s, chunk, sizeof chunk);
    writes++;
  }
  cr_expect_eq(rc, MP_EPIPE, "after %d writes: %s: %s", writes,
               mp_err_name(rc), mp_last_error_message());
  mpi_stream_close(s);
  mpi_listener_close(l);
}

Test(listen, write_to_a_closed_peer_local, .timeout = TS_TIMEOUT) {
  ls_check_epipe(LS_LOCAL);
}

Test(listen, write_to_a_closed_peer_inet, .timeout = TS_TIMEOUT) {
  ls_check_epipe(LS_INET);
}

Test(listen, write_to_a_closed_peer_inet6, .timeout = TS_TIMEOUT) {
  ls_check_epipe(LS_INET6);
}

static void ls_check_accept_timeout(int where) {
  char bound[LS_CAP];
  mpi_listener *l = ls_listen(where, bound);
  mpi_fd s = MPI_BAD_FD;
  double t0 = mpi_now();
  int rc = mpi_accept(l, 0, &s);
  cr_expect_eq(rc, MP_ETIMEDOUT, "timeout 0: %s", mp_err_name(rc));
  cr_expect_lt(mpi_now() - t0, 1.0);
  t0 = mpi_now();
  rc = mpi_accept(l, 0.25, &s);
  double took = mpi_now() - t0;
  cr_expect_eq(rc, MP_ETIMEDOUT, "timeout 0.25: %s", mp_err_name(rc));
  cr_expect_geq(took, 0.2, "returned after %.3f s", took);
  cr_expect_lt(took, 5.0, "returned after %.3f s", took);
  /* A client that comes after the timeouts is still accepted. */
  mpi_fd c;
  ls_pair(l, ls_family(where), bound, &s, &c);
  mpi_stream_close(c);
  mpi_stream_close(s);
  mpi_listener_close(l);
}

Test(listen, accept_times_out_local, .timeout = TS_TIMEOUT) {
  ls_check_accept_timeout(LS_LOCAL);
}

Test(listen, accept_times_out_inet, .timeout = TS_TIMEOUT) {
  ls_check_accept_timeout(LS_INET);
}

typedef struct ls_acceptor {
  mpi_listener *l;
  volatile uint32_t started;
  int rc;
  mpi_fd fd;
} ls_acceptor;

static void ls_accept_long(void *arg) {
  ls_acceptor *a = arg;
  mp__store32(&a->started, 1);
  a->rc = mpi_accept(a->l, 30.0, &a->fd);
}

static int ls_started(void *arg) {
  return mp__load32(&((ls_acceptor *)arg)->started) != 0;
}

/* mpi_listener_shutdown from another thread ends a blocked accept with
 * MP_ECLOSED, and every accept after it. */
static void ls_check_shutdown(int where) {
  char bound[LS_CAP];
  mpi_listener *l = ls_listen(where, bound);
  ls_acceptor a = {l, 0, 0, MPI_BAD_FD};
  ts_thread *t = ts_thread_start(ls_accept_long, &a);
  cr_assert(ts_poll_until(ls_started, &a, LS_WAIT));
  /* Give it a moment to block (if it has not, shutdown still reaches
   * it: the result is the same). */
  nap(0.05);
  double t0 = mpi_now();
  mpi_listener_shutdown(l);
  ts_thread_join(t);
  cr_expect_eq(a.rc, MP_ECLOSED, "blocked accept: %s", mp_err_name(a.rc));
  cr_expect_lt(mpi_now() - t0, 5.0);
  mpi_fd s = MPI_BAD_FD;
  int rc = mpi_accept(l, LS_WAIT, &s);
  cr_expect_eq(rc, MP_ECLOSED, "later accept: %s", mp_err_name(rc));
  mpi_listener_shutdown(l); /* twice is harmless */
  mpi_listener_close(l);
}

Test(listen, shutdown_wakes_accept_local, .timeout = TS_TIMEOUT) {
  ls_check_shutdown(LS_LOCAL);
}

Test(listen, shutdown_wakes_accept_inet, .timeout = TS_TIMEOUT) {
  ls_check_shutdown(LS_INET);
}

/* A client waiting does not beat a shutdown that came first. */
static void ls_check_shutdown_first(int where) {
  char bound[LS_CAP];
  mpi_listener *l = ls_listen(where, bound);
  mpi_fd c = MPI_BAD_FD, s = MPI_BAD_FD;
  int rc = mpi_connect(ls_family(where), bound, LS_WAIT, &c);
  cr_assert_eq(rc, 0, "connect: %s: %s", mp_err_name(rc),
               mp_last_error_message());
  mpi_listener_shutdown(l);
  rc = mpi_accept(l, LS_WAIT, &s);
  cr_expect_eq(rc, MP_ECLOSED, "accept: %s", mp_err_name(rc));
  mpi_listener_close(l);
  mpi_stream_close(c);
}

Test(listen, shutdown_before_accept_local, .timeout = TS_TIMEOUT) {
  ls_check_shutdown_first(LS_LOCAL);
}

Test(listen, shutdown_before_accept_inet, .timeout = TS_TIMEOUT) {
  ls_check_shutdown_first(LS_INET);
}

static void ls_expect_enoent(int family, const char *address) {
  mpi_fd c = MPI_BAD_FD;
  int rc = mpi_connect(family, address, LS_WAIT, &c);
  cr_expect_eq(rc, MP_ENOENT, "connect to %s: %s: %s", address,
               mp_err_name(rc), mp_last_error_message());
  if (rc == 0)
    mpi_stream_close(c);
}

Test(listen, connect_to_nobody_is_enoent, .timeout = TS_TIMEOUT) {
  char name[LS_CAP], bound[LS_CAP];
  ls_local_name(name, sizeof name, "never");
  ls_expect_enoent(MPI_AF_LOCAL, name);
  /* Addresses whose listener has closed. */
  mpi_listener *l = ls_listen(LS_LOCAL, bound);
  mpi_listener_close(l);
  ls_expect_enoent(MPI_AF_LOCAL, bound);
  l = ls_listen(LS_LOCAL_NAMED, bound);
  mpi_listener_close(l);
  ls_expect_enoent(MPI_AF_LOCAL, bound);
  l = ls_listen(LS_INET, bound);
  mpi_listener_close(l);
  ls_expect_enoent(MPI_AF_INET, bound);
}

static void ls_expect_einval(int family, const char *address) {
  mpi_listener *l = NULL;
  char bound[LS_CAP];
  int rc = mpi_listen(family, address, 4, &l, bound, sizeof bound);
  cr_expect_eq(rc, MP_EINVAL, "listen at \"%s\" (family %d): %s", address,
               family, mp_err_name(rc));
  if (rc == 0)
    mpi_listener_close(l);
  mpi_fd c = MPI_BAD_FD;
  rc = mpi_connect(family, address, 1.0, &c);
  cr_expect_eq(rc, MP_EINVAL, "connect to \"%s\" (family %d): %s", address,
               family, mp_err_name(rc));
  if (rc == 0)
    mpi_stream_close(c);
}

Test(listen, bad_addresses_are_einval, .timeout = TS_TIMEOUT) {
  ls_expect_einval(MPI_AF_INET, "127.0.0.1");
  ls_expect_einval(MPI_AF_INET, "x:99999");
  ls_expect_einval(MPI_AF_INET, "127.0.0.1:");
  ls_expect_einval(MPI_AF_INET, "127.0.0.1:12a");
  ls_expect_einval(MPI_AF_INET, "");
  ls_expect_einval(MPI_AF_INET6, "::1:5");
  ls_expect_einval(MPI_AF_INET6, "[::1]");
  ls_expect_einval(MPI_AF_INET6, "[::1:5");
  ls_expect_einval(MPI_AF_INET, "[::1]:5");     /* the other family */
  ls_expect_einval(MPI_AF_INET6, "127.0.0.1:5"); /* the other family */
  ls_expect_einval(99, "127.0.0.1:5");
  ls_expect_einval(0, NULL);
#if defined(_WIN32)
  ls_expect_einval(MPI_AF_LOCAL, "mproc-pipe");
  ls_expect_einval(MPI_AF_LOCAL, "C:\\temp\\mproc-pipe");
  ls_expect_einval(MPI_AF_LOCAL, "\\\\.\\pipe\\");
  ls_expect_einval(MPI_AF_LOCAL, "\\\\.\\pipe\\a\\b");
  ls_expect_einval(MPI_AF_LOCAL, "\\\\server\\pipe\\mproc");
#else
  char long_path[300];
  memset(long_path, 'x', 250);
  memcpy(long_path, "/tmp/", 5);
  long_path[250] = '\0';
  ls_expect_einval(MPI_AF_LOCAL, long_path);
#endif
  /* Connecting needs an address even for the local family. */
  mpi_fd c = MPI_BAD_FD;
  cr_expect_eq(mpi_connect(MPI_AF_LOCAL, "", 1.0, &c), MP_EINVAL);
  cr_expect_eq(mpi_connect(MPI_AF_LOCAL, NULL, 1.0, &c), MP_EINVAL);
}

/* An address in use: MP_EEXIST, and the listener there keeps working. */
static void ls_check_taken(int where) {
  char bound[LS_CAP], again[LS_CAP];
  mpi_listener *l = ls_listen(where, bound), *l2 = NULL;
  int rc = mpi_listen(ls_family(where), bound, 4, &l2, again, sizeof again);
  cr_expect_eq(rc, MP_EEXIST, "second listen at %s: %s: %s", bound,
               mp_err_name(rc), mp_last_error_message());
  if (rc == 0)
    mpi_listener_close(l2);
  mpi_fd s, c;
  ls_pair(l, ls_family(where), bound, &s, &c);
  mpi_stream_close(c);
  mpi_stream_close(s);
  mpi_listener_close(l);
}

Test(listen, taken_address_local, .timeout = TS_TIMEOUT) {
  ls_check_taken(LS_LOCAL);
}

Test(listen, taken_address_local_named, .timeout = TS_TIMEOUT) {
  ls_check_taken(LS_LOCAL_NAMED);
}

Test(listen, taken_address_inet, .timeout = TS_TIMEOUT) {
  ls_check_taken(LS_INET);
}

/* Two clients connecting at once are both accepted, one after the other,
 * each on its own stream. */
static void ls_check_two_clients(int where) {
  char bound[LS_CAP];
  mpi_listener *l = ls_listen(where, bound);
  ls_dialer d[2];
  ts_thread *t[2];
  for (int i = 0; i < 2; i++) {
    ls_dialer_init(&d[i], ls_family(where), bound);
    d[i].send = 'A' + i;
    t[i] = ts_thread_start(ls_dial, &d[i]);
  }
  mpi_fd s[2];
  unsigned char who[2];
  for (int i = 0; i < 2; i++) {
    s[i] = ls_accept(l);
    size_t got = 0;
    cr_assert_eq(mpi_stream_read(s[i], &who[i], 1, &got), 0, "%s",
                 mp_last_error_message());
  }
  for (int i = 0; i < 2; i++) {
    ts_thread_join(t[i]);
    cr_assert_eq(d[i].rc, 0, "client %d: %s: %s", i, mp_err_name(d[i].rc),
                 d[i].message);
  }
  cr_expect(who[0] != who[1] && (who[0] == 'A' || who[0] == 'B') &&
                (who[1] == 'A' || who[1] == 'B'),
            "got %c and %c", who[0], who[1]);
  /* Each stream reaches its own client. */
  for (int i = 0; i < 2; i++) {
    unsigned char reply = (unsigned char)(who[i] + 32), back = 0;
    cr_assert_eq(mpi_stream_write(s[i], &reply, 1), 0);
    mpi_fd c = d[who[i] - 'A'].fd;
    cr_assert_eq(mpi_stream_read(c, &back, 1, NULL), 0);
    cr_expect_eq(back, reply);
  }
  for (int i = 0; i < 2; i++) {
    mpi_stream_close(s[i]);
    mpi_stream_close(d[i].fd);
  }
  mpi_listener_close(l);
}

Test(listen, two_clients_local, .timeout = TS_TIMEOUT) {
  ls_check_two_clients(LS_LOCAL);
}

Test(listen, two_clients_inet, .timeout = TS_TIMEOUT) {
  ls_check_two_clients(LS_INET);
}

Test(listen, two_clients_inet6, .timeout = TS_TIMEOUT) {
  ls_check_two_clients(LS_INET6);
}

/* mpi_wait on an accepted stream, alongside a stream pair's read end:
 * not ready until data comes, ready when it does (also from a thread
 * while the wait blocks), and ready at the end of the stream. */
static void ls_check_wait(int where) {
  char bound[LS_CAP];
  mpi_listener *l = ls_listen(where, bound);
  mpi_fd s, c, pr, pw;
  ls_pair(l, ls_family(where), bound, &s, &c);
  cr_assert_eq(mpi_stream_pair(0, &pr, &pw), 0);
  mpi_fd set[2] = {pr, s};
  int ready[2] = {-1, -1};
  int rc = mpi_wait(set, 2, 0, ready);
  cr_expect_eq(rc, MP_ETIMEDOUT, "nothing sent: %s", mp_err_name(rc));
  double t0 = mpi_now();
  rc = mpi_wait(set, 2, 0.1, ready);
  double took = mpi_now() - t0;
  cr_expect_eq(rc, MP_ETIMEDOUT, "nothing sent: %s", mp_err_name(rc));
  cr_expect_geq(took, 0.08, "returned after %.3f s", took);

  cr_assert_eq(mpi_stream_write(c, "x", 1), 0);
  rc = mpi_wait(set, 2, LS_WAIT, ready);
  cr_expect_eq(rc, 1, "%s", mp_err_name(rc));
  cr_expect_eq(ready[0], 0);
  cr_expect_eq(ready[1], 1);
  char ch;
  cr_assert_eq(mpi_stream_read(s, &ch, 1, NULL), 0);
  cr_expect_eq(mpi_wait(set, 2, 0, ready), MP_ETIMEDOUT, "all read");

  /* Data written by another thread while we wait. */
  ls_writer w = {c, "yz", 2, -1};
  ts_thread *t = ts_thread_start(ls_write, &w);
  rc = mpi_wait(set, 2, LS_WAIT, ready);
  ts_thread_join(t);
  cr_expect_eq(rc, 1, "%s", mp_err_name(rc));
  cr_expect_eq(ready[1], 1);
  char two[2];
  cr_assert_eq(mpi_stream_read(s, two, 2, NULL), 0, "%s",
               mp_last_error_message());
  cr_expect_eq(memcmp(two, "yz", 2), 0);

  /* Both ready at once. */
  cr_assert_eq(mpi_stream_write(pw, "p", 1), 0);
  cr_assert_eq(mpi_stream_write(c, "q", 1), 0);
  /* Once the socket's byte is in (it may trail), both are ready. */
  cr_expect_eq(mpi_wait(set + 1, 1, LS_WAIT, NULL), 1);
  rc = mpi_wait(set, 2, LS_WAIT, ready);
  cr_expect_eq(rc, 2, "%s", mp_err_name(rc));
  cr_expect(ready[0] == 1 && ready[1] == 1);
  cr_assert_eq(mpi_stream_read(pr, &ch, 1, NULL), 0);
  cr_assert_eq(mpi_stream_read(s, &ch, 1, NULL), 0);

  /* The end of the stream is ready too. */
  mpi_stream_close(c);
  rc = mpi_wait(set, 2, LS_WAIT, ready);
  cr_expect_eq(rc, 1, "after close: %s", mp_err_name(rc));
  cr_expect_eq(ready[1], 1);
  cr_expect_eq(mpi_stream_read(s, &ch, 1, NULL), MP_EEOF);
  mpi_stream_close(s);
  mpi_stream_close(pr);
  mpi_stream_close(pw);
  mpi_listener_close(l);
}

Test(listen, wait_on_accepted_stream_local, .timeout = TS_TIMEOUT) {
  ls_check_wait(LS_LOCAL);
}

Test(listen, wait_on_accepted_stream_inet, .timeout = TS_TIMEOUT) {
  ls_check_wait(LS_INET);
}

#if defined(_WIN32)
/* The generated pipe name: "\\.\pipe\mproc-" and 32 hex digits. */
Test(listen, windows_generated_pipe_name, .timeout = TS_TIMEOUT) {
  char bound[LS_CAP];
  mpi_listener *l = ls_listen(LS_LOCAL, bound);
  const char *prefix = "\\\\.\\pipe\\mproc-";
  size_t n = strlen(prefix);
  cr_expect_eq(strncmp(bound, prefix, n), 0, "bound %s", bound);
  cr_expect_eq(strlen(bound), n + 32, "bound %s", bound);
  cr_expect_eq(strspn(bound + n, "0123456789abcdef"), 32, "bound %s", bound);
  char other[LS_CAP];
  mpi_listener *l2 = ls_listen(LS_LOCAL, other);
  cr_expect_str_neq(bound, other);
  mpi_listener_close(l2);
  mpi_listener_close(l);
}

/* While the listener's waiting pipe instance holds a client nobody has
 * accepted, another client waits (WaitNamedPipe) until its timeout, and
 * gets in once an accept makes the next instance. */
Test(listen, windows_busy_pipe_connect_waits, .timeout = TS_TIMEOUT) {
  char bound[LS_CAP];
  mpi_listener *l = ls_listen(LS_LOCAL, bound);
  mpi_fd c1 = MPI_BAD_FD, c2 = MPI_BAD_FD;
  cr_assert_eq(mpi_connect(MPI_AF_LOCAL, bound, LS_WAIT, &c1), 0);
  double t0 = mpi_now();
  int rc = mpi_connect(MPI_AF_LOCAL, bound, 0.2, &c2);
  double took = mpi_now() - t0;
  cr_expect_eq(rc, MP_ETIMEDOUT, "%s: %s", mp_err_name(rc),
               mp_last_error_message());
  cr_expect_geq(took, 0.15, "returned after %.3f s", took);
  cr_expect_lt(took, 5.0);
  ls_dialer d;
  ls_dialer_init(&d, MPI_AF_LOCAL, bound);
  ts_thread *t = ts_thread_start(ls_dial, &d);
  mpi_fd s1 = ls_accept(l), s2 = ls_accept(l);
  ts_thread_join(t);
  cr_assert_eq(d.rc, 0, "%s: %s", mp_err_name(d.rc), d.message);
  cr_assert_eq(mpi_stream_write(c1, "1", 1), 0);
  cr_assert_eq(mpi_stream_write(d.fd, "2", 1), 0);
  char a, b;
  cr_assert_eq(mpi_stream_read(s1, &a, 1, NULL), 0);
  cr_assert_eq(mpi_stream_read(s2, &b, 1, NULL), 0);
  cr_expect(a == '1' && b == '2', "got %c %c", a, b);
  mpi_stream_close(s1);
  mpi_stream_close(s2);
  mpi_stream_close(c1);
  mpi_stream_close(d.fd);
  mpi_listener_close(l);
}

/* Streams from listeners are not inherited by spawned children. */
Test(listen, windows_streams_are_not_inheritable, .timeout = TS_TIMEOUT) {
  for (int where = LS_LOCAL; where <= LS_INET; where++) {
    if (where == LS_LOCAL_NAMED)
      continue;
    char bound[LS_CAP];
    mpi_listener *l = ls_listen(where, bound);
    mpi_fd s, c;
    ls_pair(l, ls_family(where), bound, &s, &c);
    DWORD fs = 0, fc = 0;
    cr_assert(GetHandleInformation((HANDLE)s, &fs));
    cr_assert(GetHandleInformation((HANDLE)c, &fc));
    cr_expect_eq(fs & HANDLE_FLAG_INHERIT, 0, "accepted, family %d", where);
    cr_expect_eq(fc & HANDLE_FLAG_INHERIT, 0, "connected, family %d", where);
    mpi_stream_close(s);
    mpi_stream_close(c);
    mpi_listener_close(l);
  }
}
#else
/* The generated socket: "<tmp>/<dir>/listener", the directory 0700 and
 * the socket 0600, both gone after mpi_listener_close. */
Test(listen, posix_generated_socket_is_private, .timeout = TS_TIMEOUT) {
  char bound[LS_CAP], dir[LS_CAP];
  mpi_listener *l = ls_listen(LS_LOCAL, bound);
  const char *slash = strrchr(bound, '/');
  cr_assert_not_null(slash, "bound %s", bound);
  cr_expect_str_eq(slash, "/listener");
  snprintf(dir, sizeof dir, "%.*s", (int)(slash - bound), bound);
  struct stat st;
  cr_assert_eq(lstat(bound, &st), 0, "%s: %s", bound, strerror(errno));
  cr_expect(S_ISSOCK(st.st_mode));
  cr_expect_eq(st.st_mode & 0777, 0600, "socket mode %o",
               (unsigned)(st.st_mode & 0777));
  cr_assert_eq(lstat(dir, &st), 0, "%s: %s", dir, strerror(errno));
  cr_expect(S_ISDIR(st.st_mode));
  cr_expect_eq(st.st_mode & 0777, 0700, "directory mode %o",
               (unsigned)(st.st_mode & 0777));
  mpi_listener_close(l);
  cr_expect_neq(lstat(bound, &st), 0, "the socket is still there");
  cr_expect_neq(lstat(dir, &st), 0, "the directory is still there");
}

/* A path we name: created 0600, removed by mpi_listener_close. */
Test(listen, posix_named_socket_is_private, .timeout = TS_TIMEOUT) {
  char bound[LS_CAP];
  mpi_listener *l = ls_listen(LS_LOCAL_NAMED, bound);
  struct stat st;
  cr_assert_eq(lstat(bound, &st), 0, "%s: %s", bound, strerror(errno));
  cr_expect(S_ISSOCK(st.st_mode));
  cr_expect_eq(st.st_mode & 0777, 0600, "socket mode %o",
               (unsigned)(st.st_mode & 0777));
  mpi_listener_close(l);
  cr_expect_neq(lstat(bound, &st), 0, "the socket is still there");
}
#endif
