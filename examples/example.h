/*
 * example.h - what the examples share: the start method from the command
 * line, sleeping and timing, and the temporary directory, the only place
 * where they need to know the operating system.
 *
 * Include it first: on POSIX it asks for the POSIX declarations
 * (nanosleep, clock_gettime, localtime_r, mkdir) that strict C11 hides.
 */
#ifndef MPROC_EXAMPLE_H
#define MPROC_EXAMPLE_H

/* A deliberate crash must crash, not be reported first by the undefined-
 * behaviour sanitizer (scripts/test's sanitize leg). */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 8)
#  define EX_NO_UBSAN __attribute__((no_sanitize("undefined")))
#else
#  define EX_NO_UBSAN
#endif

#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200809L
#endif
/* Apple's headers hide what POSIX leaves out (MAP_ANON, MSG_DONTWAIT,
 * INADDR_LOOPBACK) once _POSIX_C_SOURCE is set, unless asked for. */
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
#  define _DARWIN_C_SOURCE
#endif

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "mproc.h"

#ifdef _WIN32
#  ifndef WIN32_LEAN_AND_MEAN
#    define WIN32_LEAN_AND_MEAN
#  endif
#  include <windows.h>
#else
#  include <sys/stat.h>
#endif

/* The start method named by argv[1], if any ("fork", "spawn",
 * "forkserver"): 0, or -1 after printing why not. */
static inline int ex_start_method(int argc, char **argv) {
  if (argc > 1 && mp_set_start_method(argv[1], 0) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return -1;
  }
  return 0;
}

/* Sleep for `seconds` (Python's time.sleep). */
static inline void ex_sleep(double seconds) {
  if (seconds <= 0)
    return;
#ifdef _WIN32
  Sleep((DWORD)(seconds * 1000.0 + 0.5));
#else
  struct timespec ts;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    /* Interrupted by a signal: sleep for the rest. */
  }
#endif
}

/* Monotonic seconds (Python's time.monotonic).  The clock is the same in
 * every process of the machine, so a child can measure from a time its
 * parent took. */
static inline double ex_now(void) {
#ifdef _WIN32
  LARGE_INTEGER freq, count;
  QueryPerformanceFrequency(&freq);
  QueryPerformanceCounter(&count);
  return (double)count.QuadPart / (double)freq.QuadPart;
#else
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
#endif
}

/* The local time as Python's time.ctime() writes it into buf. */
static inline const char *ex_ctime(char *buf, size_t cap) {
  struct tm tm;
#ifdef _WIN32
  /* The CRT's own name (localtime_s is an inline only some headers
   * have). */
  __time64_t t = _time64(NULL);
  _localtime64_s(&tm, &t);
#else
  time_t t = time(NULL);
  localtime_r(&t, &tm);
#endif
  strftime(buf, cap, "%a %b %d %H:%M:%S %Y", &tm);
  return buf;
}

/* The temporary directory with a trailing separator ($TMPDIR or /tmp;
 * GetTempPath on Windows). */
static inline void ex_temp_dir(char *buf, size_t cap) {
#ifdef _WIN32
  DWORD n = GetTempPathA((DWORD)cap, buf);
  if (n == 0 || n >= cap)
    snprintf(buf, cap, ".\\");
#else
  const char *dir = getenv("TMPDIR");
  snprintf(buf, cap, "%s/", dir != NULL && *dir != '\0' ? dir : "/tmp");
#endif
}

/* Create / remove an (empty) directory: 0 on success. */
static inline int ex_mkdir(const char *path) {
#ifdef _WIN32
  return CreateDirectoryA(path, NULL) ? 0 : -1;
#else
  return mkdir(path, 0700);
#endif
}

static inline int ex_rmdir(const char *path) {
#ifdef _WIN32
  return RemoveDirectoryA(path) ? 0 : -1;
#else
  return remove(path); /* POSIX: rmdir for a directory */
#endif
}

#endif /* MPROC_EXAMPLE_H */
