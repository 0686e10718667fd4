/*
 * manager_peer.c - a remote client of a Manager in a program of its own
 * (used by test_manager.c): it connects over TCP with the authkey it is
 * given, makes objects of its own on the server and checks them.
 *
 *     manager_peer ADDRESS KEYHEX N [OUTFILE]
 *
 * Writes one line to OUTFILE (to stdout without one):
 *   "peer ok N"                       exit 0: everything worked
 *   the error name, e.g. "MP_EAUTH"   exit 3: mp_manager_connect failed
 *   "peer failed: STEP: MP_E..."      exit 4: a later step failed
 *   "usage ..."                       exit 2
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

static const char *out_path;

static void say(const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (out_path == NULL) {
    printf("%s\n", line);
    fflush(stdout);
  } else {
    FILE *f = fopen(out_path, "wb");
    if (f != NULL) {
      fputs(line, f);
      fclose(f);
    }
  }
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

#define FAIL(step, rc)                                                       \
  do {                                                                       \
    say("peer failed: %s: %s (%s)", (step), mp_err_name(rc),                 \
        mp_last_error_message());                                            \
    return 4;                                                                \
  } while (0)

static int work(mp_manager *m, int n) {
  mp_proxy *d = NULL, *l = NULL, *lock = NULL, *e = NULL;
  mp_args *v = NULL;
  int rc;
  char want[32];
  if ((rc = mp_manager_dict(m, &d)) != 0)
    FAIL("dict", rc);
  for (int i = 0; i < n; i++) {
    snprintf(want, sizeof want, "value %d", i);
    if ((rc = mp_dict_set(d, "is", i, want)) != 0)
      FAIL("dict set", rc);
  }
  if (mp_dict_len(d) != n)
    FAIL("dict len", MP_EVALUE);
  for (int i = 0; i < n; i++) {
    snprintf(want, sizeof want, "value %d", i);
    if ((rc = mp_dict_get(d, &v, "i", i)) != 0)
      FAIL("dict get", rc);
    const char *s = mp_args_str(v, 0);
    if (mp_args_count(v) != 1 || s == NULL || strcmp(s, want) != 0)
      FAIL("dict value", MP_EVALUE);
    mp_args_free(v);
    v = NULL;
  }
  if ((rc = mp_dict_keys(d, &v)) != 0)
    FAIL("dict keys", rc);
  for (int i = 0; i < n; i++)
    if (mp_args_int(v, (size_t)i) != i)
      FAIL("keys in insertion order", MP_EVALUE);
  mp_args_free(v);
  v = NULL;
  if ((rc = mp_manager_list(m, &l)) != 0)
    FAIL("list", rc);
  for (int i = 0; i < n; i++)
    if ((rc = mp_list_append(l, "i", i)) != 0)
      FAIL("list append", rc);
  if ((rc = mp_list_slice(l, 0, INT64_MAX, &v)) != 0)
    FAIL("list slice", rc);
  int64_t sum = 0;
  for (size_t i = 0; i < mp_args_count(v); i++)
    sum += mp_args_int(v, i);
  if (mp_args_count(v) != (size_t)n || sum != (int64_t)n * (n - 1) / 2)
    FAIL("list contents", MP_EVALUE);
  mp_args_free(v);
  v = NULL;
  if ((rc = mp_manager_lock(m, &lock)) != 0)
    FAIL("lock", rc);
  if ((rc = mp_proxy_lock_acquire(lock, 10.0)) != 0)
    FAIL("lock acquire", rc);
  if ((rc = mp_proxy_lock_release(lock)) != 0)
    FAIL("lock release", rc);
  if ((rc = mp_manager_event(m, &e)) != 0)
    FAIL("event", rc);
  if ((rc = mp_proxy_event_set(e)) != 0)
    FAIL("event set", rc);
  if (mp_proxy_event_wait(e, 10.0) != 1)
    FAIL("event wait", MP_EVALUE);
  mp_proxy_free(e);
  mp_proxy_free(lock);
  mp_proxy_free(l);
  mp_proxy_free(d);
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  if (argc < 4) {
    say("usage: manager_peer ADDRESS KEYHEX N [OUTFILE]");
    return 2;
  }
  if (argc > 4)
    out_path = argv[4];
  const char *hex = argv[2];
  size_t hn = strlen(hex);
  unsigned char key[256];
  if (hn % 2 != 0 || hn / 2 > sizeof key) {
    say("usage: bad KEYHEX");
    return 2;
  }
  for (size_t i = 0; i < hn / 2; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      say("usage: bad KEYHEX");
      return 2;
    }
    key[i] = (unsigned char)(hi * 16 + lo);
  }
  int n = atoi(argv[3]);
  mp_manager *m = NULL;
  int rc = mp_manager_connect(&m, argv[1], key, hn / 2, 20.0);
  if (rc != 0) {
    say("%s", mp_err_name(rc));
    return 3;
  }
  int status = work(m, n);
  if (status == 0)
    say("peer ok %d", n);
  /* We did not start the server: this only disconnects. */
  mp_manager_free(m);
  return status;
}
