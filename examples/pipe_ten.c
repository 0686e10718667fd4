/*
 * pipe_ten.c - ten processes send on the same end of one Pipe; the parent
 * receives the ten messages at the other end.
 *
 * The Python original (after the multiprocessing documentation's Pipe
 * example, with ten senders):
 *
 *     from multiprocessing import Process, Pipe
 *
 *     def f(conn, i):
 *         conn.send([42, None, 'hello from %d' % i])
 *         conn.close()
 *
 *     if __name__ == '__main__':
 *         parent_conn, child_conn = Pipe()
 *         ps = [Process(target=f, args=(child_conn, i)) for i in range(10)]
 *         for p in ps:
 *             p.start()
 *         for _ in ps:
 *             print(parent_conn.recv())   # [42, None, 'hello from 3'] ...
 *         for p in ps:
 *             p.join()
 *
 * C has no pickled lists, so each child sends the text of its list as
 * bytes.  The messages arrive in whatever order the children run; each
 * is whole: a small message (header and bytes) goes out in a single
 * write, which the OS does not interleave with the other senders' writes.
 * Keep messages from several processes on one pipe small (at most 4 KiB
 * here, PIPE_BUF on POSIX) and sent with one mp_conn_send_bytes each.
 *
 * An optional argument chooses the start method: pipe_ten spawn.
 */
#include "example.h"

#include <stdio.h>
#include <string.h>

#include "mproc.h"

#define N 10

static int f(const mp_args *args) {
  mp_conn *conn = mp_args_conn(args, 0);
  char msg[64];
  snprintf(msg, sizeof msg, "[42, None, 'hello from %d']",
           (int)mp_args_int(args, 1));
  if (mp_conn_send_bytes(conn, msg, strlen(msg)) != 0)
    return mp_set_error(1, "send: %s", mp_last_error_message());
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  if (ex_start_method(argc, argv) != 0)
    return 2;

  mp_conn *parent_conn, *child_conn;
  if (mp_pipe(1, &parent_conn, &child_conn) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }
  mp_process *ps[N];
  for (int i = 0; i < N; i++)
    if (mp_process_startf(&ps[i], f, "Ci", child_conn, i) != 0) {
      fprintf(stderr, "error: %s\n", mp_last_error_message());
      return 1;
    }
  /* The children have their own copies: close ours, so that a receive
   * would end with MP_EEOF instead of hanging if a child died silently. */
  mp_conn_free(child_conn);

  int seen[N] = {0}, failed = 0;
  for (int k = 0; k < N; k++) {
    char buf[128];
    size_t n;
    int i = -1;
    if (mp_conn_recv_bytes_into(parent_conn, buf, sizeof buf - 1, &n) != 0) {
      fprintf(stderr, "recv: %s\n", mp_last_error_message());
      failed = 1;
      break;
    }
    buf[n] = '\0';
    printf("%s\n", buf);
    if (sscanf(buf, "[42, None, 'hello from %d']", &i) != 1 || i < 0 ||
        i >= N || seen[i]++) {
      fprintf(stderr, "unexpected message: %s\n", buf);
      failed = 1;
    }
  }
  for (int i = 0; i < N; i++) {
    int code = -1;
    mp_process_join(ps[i], MP_FOREVER);
    mp_process_exitcode(ps[i], &code);
    failed |= code != 0;
    mp_process_free(ps[i]);
  }
  mp_conn_free(parent_conn);
  return failed;
}
