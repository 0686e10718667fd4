/*
 * fuzz_args.c - libFuzzer target for the tuple decoder every message
 * goes through (mp_args on the wire: process arguments, queue and pipe
 * tuples, pool tasks, and the Manager's requests), and the envelope of
 * a tuple with objects sent through a pipe or a queue (handoff.c).
 *
 * Any input must either be refused (MP_EPROTO) or decode into a tuple
 * whose every item reads back, nested tuples included, and whose
 * encoding is the input itself.  A crash, a sanitizer report or a
 * mismatch (abort) is a finding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void walk(const mp_args *a, int depth) {
  if (depth > 40)
    abort(); /* the decoder promised at most 32 levels */
  size_t n = mp_args_count(a);
  for (size_t i = 0; i < n; i++) {
    size_t len = 0;
    switch (mp_args_type(a, i)) {
    case MP_ARG_INT:
      (void)mp_args_int(a, i);
      break;
    case MP_ARG_DOUBLE:
      (void)mp_args_double(a, i);
      break;
    case MP_ARG_STR: {
      const char *s = mp_args_str(a, i);
      if (s == NULL)
        abort();
      (void)strlen(s);
      break;
    }
    case MP_ARG_BYTES: {
      const unsigned char *p = mp_args_bytes(a, i, &len);
      if (p == NULL && len > 0)
        abort();
      for (size_t k = 0; k < len; k++)
        (void)p[k];
      break;
    }
    case MP_ARG_TUPLE: {
      const mp_args *t = mp_args_tuple(a, i);
      if (t == NULL)
        abort();
      walk(t, depth + 1);
      break;
    }
    case MP_ARG_NONE:
      break;
    default:
      abort(); /* (objects were refused above) */
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mp_args *a = NULL;
  if (size >= 4 &&
      (memcmp(data, "MPX1", 4) == 0 || memcmp(data, "MPH1", 4) == 0)) {
    /* A message with objects (handoff.c): its ticket names nothing this
     * process offers, so it must be refused, after bounds-checked
     * parsing, without a hang (no socket but a sharer's is tried). */
    if (mp__handoff_unpack(data, size, &a) == 0)
      abort();
    if (a != NULL)
      abort();
    return 0;
  }
  if (mp__args_from_bytes(&a, data, size) != 0)
    return 0;
  if (mp__args_has_objects(a)) { /* every plain receiver refuses these */
    mp_args_free(a);
    return 0;
  }
  walk(a, 0);
  size_t n = 0;
  const void *p = mp__args_data(a, &n);
  if (n != size || memcmp(p, data, size) != 0)
    abort(); /* decoded, but not what was sent */
  mp_args_free(a);
  return 0;
}
