/*
 * fuzz_manager.c - libFuzzer target for the Manager server's request
 * decoder and every method behind it.
 *
 * The input is a series of requests, each a little-endian u16 length and
 * that many bytes, handed to a server without a listener for one client
 * session (which says hello first, as a real connection must).  Each
 * reply must be well formed: an 8-byte status, then, on success, a tuple
 * that decodes.  Blocking methods do not block here (they time out at
 * once).  At the end the session closes and the server is freed, so
 * LeakSanitizer also checks that every reference a request took is
 * released.  A crash, a sanitizer report, a leak or a malformed reply
 * (abort) is a finding.  Seeds in fuzz/corpus/manager are made by
 * fuzz/make_manager_seeds.py.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "manager.h"

static void check_reply(const unsigned char *r, size_t n) {
  if (r == NULL || n < 8)
    abort();
  if (mp__get_i64(r) != 0)
    return;
  mp_args *a = NULL;
  if (mp__args_from_bytes(&a, r + 8, n - 8) != 0)
    abort();
  mp_args_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mgr_server *srv = NULL;
  if (mp__mgr_server_bare(&srv) != 0)
    return 0;
  mgr_session *session = NULL;
  unsigned char hello[MGR_HEADER + MGR_SID_LEN];
  memset(hello, 0, sizeof hello);
  hello[0] = MGR_HELLO;
  hello[4] = MGR_SID_LEN;
  memset(hello + MGR_HEADER, 0x5a, MGR_SID_LEN);
  void *reply = NULL;
  size_t reply_n = 0;
  mp__mgr_handle(srv, &session, NULL, hello, sizeof hello, &reply, &reply_n);
  check_reply(reply, reply_n);
  free(reply);
  if (session == NULL)
    abort();
  size_t pos = 0;
  while (pos + 2 <= size) {
    size_t n = (size_t)data[pos] | (size_t)data[pos + 1] << 8;
    pos += 2;
    if (n > size - pos)
      n = size - pos;
    /* A copy of its own, so an over-read past n is caught. */
    unsigned char *req = malloc(n ? n : 1);
    if (req == NULL)
      break;
    memcpy(req, data + pos, n);
    pos += n;
    reply = NULL;
    mp__mgr_handle(srv, &session, NULL, req, n, &reply, &reply_n);
    free(req);
    check_reply(reply, reply_n);
    free(reply);
  }
  mp__mgr_session_close(srv, session);
  mp__mgr_server_bare_free(srv);
  return 0;
}
