/*
 * log.c - multiprocessing's log_to_stderr: "[LEVEL/ProcessName] message".
 */
#include <stdarg.h>
#include <stdio.h>

#include "pool.h"

static int log_level = MP_LOG_OFF;
static mp_log_fn handler; /* NULL: stderr */
static void *handler_arg;

void mp_log_to_stderr(int level) {
  handler = NULL;
  log_level = level;
}

void mp_log_set_handler(mp_log_fn fn, void *arg, int level) {
  handler_arg = arg;
  handler = fn;
  log_level = level;
}

int mp_log_level(void) { return log_level; }

static const char *level_name(int level) {
  if (level >= MP_LOG_ERROR)
    return "ERROR";
  if (level >= MP_LOG_WARNING)
    return "WARNING";
  if (level >= MP_LOG_INFO)
    return "INFO";
  return "DEBUG";
}

static void vlog(int level, const char *fmt, va_list ap) {
  if (level < log_level || log_level >= MP_LOG_OFF)
    return;
  char line[1024];
  const char *who = mp_process_name(mp_current_process());
  mp_log_fn fn = handler;
  if (fn != NULL) {
    vsnprintf(line, sizeof line, fmt, ap);
    fn(level, who, line, handler_arg);
    return;
  }
  int n = snprintf(line, sizeof line, "[%s/%s] ", level_name(level), who);
  if (n < 0 || (size_t)n >= sizeof line)
    n = 0;
  vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  fprintf(stderr, "%s\n", line); /* one call: lines do not interleave */
}

void mp_log(int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog(level, fmt, ap);
  va_end(ap);
}

void mp__log(int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog(level, fmt, ap);
  va_end(ap);
}
