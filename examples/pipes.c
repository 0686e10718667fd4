/*
 * pipes.c - Pipe: a message from a child, and ten processes each sending
 * on one pipe.
 *
 * The Python originals:
 *
 *     from multiprocessing import Process, Pipe
 *
 *     def f(conn):
 *         conn.send_bytes(b'[42, None, hello]')
 *         conn.close()
 *
 *     def g(conn, i):
 *         conn.send_bytes(f'hello from process {i}'.encode())
 *
 *     if __name__ == '__main__':
 *         parent_conn, child_conn = Pipe()
 *         p = Process(target=f, args=(child_conn,))
 *         p.start()
 *         print(parent_conn.recv_bytes().decode())   # [42, None, hello]
 *         p.join()
 *
 *         reader, writer = Pipe(duplex=False)
 *         ps = [Process(target=g, args=(writer, i)) for i in range(10)]
 *         for p in ps: p.start()
 *         writer.close()
 *         for _ in ps: print(reader.recv_bytes().decode())
 *         for p in ps: p.join()
 *
 * Connections travel to a child in its arguments (the format letter 'C');
 * the child gets its own copy of the handle, under fork and spawn alike.
 */
#include <stdio.h>
#include <string.h>

#include "mproc.h"

static int f(const mp_args *args) {
  mp_conn *conn = mp_args_conn(args, 0);
  const char *msg = "[42, None, hello]";
  return mp_conn_send_bytes(conn, msg, strlen(msg)) == 0 ? 0 : 1;
}

static int g(const mp_args *args) {
  mp_conn *conn = mp_args_conn(args, 0);
  char msg[64];
  snprintf(msg, sizeof msg, "hello from process %d",
           (int)mp_args_int(args, 1));
  return mp_conn_send_bytes(conn, msg, strlen(msg)) == 0 ? 0 : 1;
}

static int print_message(mp_conn *conn) {
  char buf[128];
  size_t n;
  if (mp_conn_recv_bytes_into(conn, buf, sizeof buf - 1, &n) != 0) {
    fprintf(stderr, "recv: %s\n", mp_last_error_message());
    return 1;
  }
  buf[n] = '\0';
  printf("%s\n", buf);
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);

  mp_conn *parent_conn, *child_conn;
  if (mp_pipe(1, &parent_conn, &child_conn) != 0)
    return 1;
  mp_process *p;
  if (mp_process_startf(&p, f, "C", child_conn) != 0 ||
      print_message(parent_conn) != 0)
    return 1;
  mp_process_join(p, MP_FOREVER);
  mp_process_free(p);
  mp_conn_free(parent_conn);
  mp_conn_free(child_conn);

  mp_conn *reader, *writer;
  if (mp_pipe(0, &reader, &writer) != 0)
    return 1;
  mp_process *ps[10];
  for (int i = 0; i < 10; i++)
    if (mp_process_startf(&ps[i], g, "Ci", writer, i) != 0)
      return 1;
  mp_conn_free(writer);
  int failed = 0;
  for (int i = 0; i < 10; i++)
    failed |= print_message(reader);
  for (int i = 0; i < 10; i++) {
    mp_process_join(ps[i], MP_FOREVER);
    mp_process_free(ps[i]);
  }
  mp_conn_free(reader);
  return failed;
}
