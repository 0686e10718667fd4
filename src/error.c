/*
 * error.c - error codes, texts and the per-thread last error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MP__MSG_CAP 512

static MP_THREAD_LOCAL char last_message[MP__MSG_CAP];

const char *mp_strerror(int code) {
  switch (code) {
  case MP_OK:
    return "success";
#define MP__ERR_TEXT(name, value, text) \
  case MP_##name:                       \
    return text;
    MP_ERRNO_MAP(MP__ERR_TEXT)
#undef MP__ERR_TEXT
  default:
    return "unknown error";
  }
}

const char *mp_err_name(int code) {
  switch (code) {
  case MP_OK:
    return "MP_OK";
#define MP__ERR_NAME(name, value, text) \
  case MP_##name:                       \
    return "MP_" #name;
    MP_ERRNO_MAP(MP__ERR_NAME)
#undef MP__ERR_NAME
  default:
    return "MP_UNKNOWN";
  }
}

const char *mp_last_error_message(void) { return last_message; }

void mp__clear_error(void) { last_message[0] = '\0'; }

int mp__verror(int code, const char *fmt, va_list ap) {
  /* Format aside first: an argument may be mp_last_error_message(). */
  char text[MP__MSG_CAP];
  if (fmt == NULL || fmt[0] == '\0')
    mp__strlcpy(text, mp_strerror(code), sizeof text);
  else
    vsnprintf(text, sizeof text, fmt, ap);
  memcpy(last_message, text, sizeof text);
  return code;
}

int mp__error(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  mp__verror(code, fmt, ap);
  va_end(ap);
  return code;
}

int mp_set_error(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  mp__verror(code, fmt, ap);
  va_end(ap);
  mp__remember_exit_message(last_message);
  return code;
}

void mp__strlcpy(char *dst, const char *src, size_t cap) {
  size_t n = strlen(src);
  if (n >= cap)
    n = cap - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

char *mp__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d != NULL)
    memcpy(d, s, n);
  return d;
}

int mp__check_timeout(double timeout) {
  if (timeout == MP_FOREVER || timeout >= 0.0)
    return 0;
  return mp__error(MP_EINVAL, "timeout must be >= 0 or MP_FOREVER (got %g)",
                   timeout);
}

double mp__time_left(double deadline) {
  if (deadline < 0)
    return MP_FOREVER;
  double left = deadline - mpi_now();
  return left > 0 ? left : 0;
}

const char *mp_version(void) { return MP_VERSION_STRING; }
