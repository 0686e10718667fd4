/*
 * fuzz_conn.c - libFuzzer target for what a peer can send down a
 * connection: the message framing (4-byte length, the long form, bodies
 * cut short) and, on the first message, the authkey handshake.
 *
 * The input is written raw into one end of a pipe (as a hostile peer
 * would), that end is closed, and the other end is read: first as the
 * answering side of a handshake, then message by message until the end.
 * Nothing may crash, hang or read out of bounds; a message can only be
 * as long as the bytes that were sent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define FUZZ_MAX 65536 /* fits in the pipe without a reader */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > FUZZ_MAX)
    return 0;
  mpi_fd a, b;
  if (mpi_stream_pair(1, &a, &b) != 0)
    abort();
  if (size > 0 && mpi_stream_write(b, data, size) != 0)
    abort();
  mpi_stream_close(b);
  mp_conn *c;
  if (mp__conn_wrap(a, &c) != 0)
    abort();
  static const char key[] = "fuzz";
  /* The peer's first message as a challenge (it is closed: no wait). */
  int rc = mp_conn_answer_challenge(c, key, sizeof key - 1, 1.0);
  if (rc == 0)
    abort(); /* nobody could have answered our digest */
  for (;;) {
    void *m = NULL;
    size_t n = 0;
    rc = mp_conn_recv_bytes(c, &m, &n);
    if (rc != 0)
      break;
    if (n > size)
      abort(); /* longer than everything that was sent */
    mp_free(m);
  }
  mp_conn_free(c);
  return 0;
}
