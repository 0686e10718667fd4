/*
 * echo_server.c - an echo server on the loopback interface whose
 * connections are served by a thread pool, with five client threads.
 *
 * The Python original:
 *
 *     import socket, threading
 *     from multiprocessing.pool import ThreadPool
 *
 *     N = 5
 *
 *     def handle(conn):                      # in a thread of the pool
 *         echoed = 0
 *         with conn:
 *             while data := conn.recv(1024):
 *                 conn.sendall(data)
 *                 echoed += len(data)
 *         return echoed
 *
 *     def client(port, i):
 *         with socket.create_connection(('127.0.0.1', port)) as s:
 *             s.sendall(f'hello from client {i}\n'.encode())
 *             s.shutdown(socket.SHUT_WR)     # the server sees the end
 *             reply = b''.join(iter(lambda: s.recv(1024), b''))
 *             print(f'client {i} got {reply.decode().strip()!r}')
 *
 *     if __name__ == '__main__':
 *         with socket.create_server(('127.0.0.1', 0)) as server:
 *             port = server.getsockname()[1]
 *             clients = [threading.Thread(target=client, args=(port, i))
 *                        for i in range(N)]
 *             for t in clients:
 *                 t.start()
 *             with ThreadPool(3) as pool:
 *                 results = [pool.apply_async(handle, (server.accept()[0],))
 *                            for _ in range(N)]
 *                 echoed = sum(r.get() for r in results)
 *             for t in clients:
 *                 t.join()
 *         print(f'server: {N} connections, {echoed} bytes echoed')
 *
 * The server takes port 0, so the system chooses a free one.  A task gets
 * the socket as an integer (task arguments are plain values; threads of
 * one process share their sockets).  Three pool threads serve five
 * connections: the last ones wait for a free thread.  The lines the
 * clients print come in any order.  Nothing waits for ever: accept waits
 * at most 10 s for a client (select), and receives time out after 10 s
 * (SO_RCVTIMEO).  BSD sockets on POSIX, Winsock on Windows; the few
 * differences are the ex_ definitions below.
 */
#include "example.h"

#include <stdio.h>
#include <string.h>

#include "mproc.h"

#ifdef _WIN32
#  include <winsock2.h>
typedef SOCKET ex_socket;
typedef int ex_socklen;
#  define EX_BAD_SOCKET INVALID_SOCKET
#  define EX_SHUT_WR SD_SEND
#  define ex_closesocket closesocket
#else
#  include <netinet/in.h>
#  include <sys/select.h>
#  include <sys/socket.h>
#  include <sys/time.h>
#  include <unistd.h>
typedef int ex_socket;
typedef socklen_t ex_socklen;
#  define EX_BAD_SOCKET (-1)
#  define EX_SHUT_WR SHUT_WR
#  define ex_closesocket close
#endif

#ifdef MSG_NOSIGNAL
#  define EX_SEND_FLAGS MSG_NOSIGNAL /* a closed peer: an error, no SIGPIPE */
#else
#  define EX_SEND_FLAGS 0
#endif

#define N_CLIENTS 5
#define POOL_THREADS 3
#define TIMEOUT 10 /* seconds */

static void set_timeout(ex_socket s, int seconds) {
#ifdef _WIN32
  DWORD ms = (DWORD)seconds * 1000;
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, (const char *)&ms, sizeof ms);
#else
  struct timeval tv;
  tv.tv_sec = seconds;
  tv.tv_usec = 0;
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
#endif
}

static int send_all(ex_socket s, const char *p, int n) {
  while (n > 0) {
    int k = (int)send(s, p, n, EX_SEND_FLAGS);
    if (k <= 0)
      return -1;
    p += k;
    n -= k;
  }
  return 0;
}

/* handle(conn) -> bytes echoed; runs in a thread of the pool. */
static int handle(const mp_args *args, mp_args *result) {
  ex_socket conn = (ex_socket)mp_args_int(args, 0);
  int64_t echoed = 0;
  char buf[1024];
  int n;
  set_timeout(conn, TIMEOUT);
  while ((n = (int)recv(conn, buf, (int)sizeof buf, 0)) > 0) {
    if (send_all(conn, buf, n) != 0)
      break;
    echoed += n;
  }
  ex_closesocket(conn);
  if (n != 0)
    return mp_set_error(1, "connection lost after %lld bytes",
                        (long long)echoed);
  return mp_args_add_int(result, echoed);
}

/* client(port, i); runs in a thread of its own. */
static int client(const mp_args *args) {
  unsigned short port = (unsigned short)mp_args_int(args, 0);
  int i = (int)mp_args_int(args, 1);
  char line[64], reply[64];
  int len = 0, n;
  snprintf(line, sizeof line, "hello from client %d\n", i);

  ex_socket s = socket(AF_INET, SOCK_STREAM, 0);
  if (s == EX_BAD_SOCKET)
    return 1;
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  set_timeout(s, TIMEOUT);
  if (connect(s, (struct sockaddr *)&addr, sizeof addr) != 0 ||
      send_all(s, line, (int)strlen(line)) != 0 ||
      shutdown(s, EX_SHUT_WR) != 0) {
    ex_closesocket(s);
    return 1;
  }
  while (len < (int)sizeof reply - 1 &&
         (n = (int)recv(s, reply + len, (int)sizeof reply - 1 - len, 0)) > 0)
    len += n;
  ex_closesocket(s);
  reply[len] = '\0';
  if (strcmp(reply, line) != 0)
    return 1;
  reply[strcspn(reply, "\n")] = '\0';
  printf("client %d got '%s'\n", i, reply);
  return 0;
}

/* A listening socket on 127.0.0.1 and a port the system chose. */
static ex_socket listen_loopback(unsigned short *port) {
  ex_socket s = socket(AF_INET, SOCK_STREAM, 0);
  if (s == EX_BAD_SOCKET)
    return s;
  struct sockaddr_in addr;
  ex_socklen len = (ex_socklen)sizeof addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(s, (struct sockaddr *)&addr, sizeof addr) != 0 ||
      listen(s, N_CLIENTS) != 0 ||
      getsockname(s, (struct sockaddr *)&addr, &len) != 0) {
    ex_closesocket(s);
    return EX_BAD_SOCKET;
  }
  *port = ntohs(addr.sin_port);
  return s;
}

/* accept, waiting at most TIMEOUT seconds for a client. */
static ex_socket accept_within(ex_socket server) {
  fd_set ready;
  struct timeval tv;
  FD_ZERO(&ready);
  FD_SET(server, &ready);
  tv.tv_sec = TIMEOUT;
  tv.tv_usec = 0;
  if (select((int)server + 1, &ready, NULL, NULL, &tv) != 1)
    return EX_BAD_SOCKET;
  return accept(server, NULL, NULL);
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
#ifdef _WIN32
  WSADATA wsa;
  if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) {
    fprintf(stderr, "WSAStartup failed\n");
    return 1;
  }
#endif
  int failed = 0;
  unsigned short port = 0;
  ex_socket server = listen_loopback(&port);
  mp_pool *pool = NULL;
  if (server == EX_BAD_SOCKET ||
      mp_thread_pool_new(&pool, POOL_THREADS) != 0) {
    fprintf(stderr, "cannot start the server\n");
    return 1;
  }

  mp_thread *clients[N_CLIENTS];
  for (int i = 0; i < N_CLIENTS; i++) {
    if (mp_thread_startf(&clients[i], client, "ii", port, i) != 0) {
      fprintf(stderr, "client %d: %s\n", i, mp_last_error_message());
      failed = 1;
    }
  }

  /* One task per connection. */
  mp_async *results[N_CLIENTS] = {NULL};
  for (int i = 0; i < N_CLIENTS && !failed; i++) {
    ex_socket conn = accept_within(server);
    mp_args *a = NULL;
    if (conn == EX_BAD_SOCKET ||
        mp_args_pack(&a, "I", (int64_t)conn) != 0 ||
        mp_pool_apply_async(pool, handle, a, NULL, NULL, NULL,
                            &results[i]) != 0) {
      fprintf(stderr, "connection %d not served\n", i);
      failed = 1;
    }
    mp_args_free(a);
  }
  int64_t echoed = 0;
  for (int i = 0; i < N_CLIENTS; i++) {
    const mp_args *r;
    if (results[i] == NULL)
      continue;
    if (mp_async_get(results[i], 2 * TIMEOUT, &r) == 0)
      echoed += mp_args_int(r, 0);
    else {
      fprintf(stderr, "connection %d: %s\n", i, mp_last_error_message());
      failed = 1;
    }
    mp_async_free(results[i]);
  }
  mp_pool_close(pool);
  mp_pool_join(pool, MP_FOREVER);
  mp_pool_free(pool);

  for (int i = 0; i < N_CLIENTS; i++) {
    int code = 1;
    if (clients[i] != NULL && mp_thread_join(clients[i], 2 * TIMEOUT) == 0)
      mp_thread_exitcode(clients[i], &code);
    failed |= code != 0;
    mp_thread_free(clients[i]);
  }
  ex_closesocket(server);
#ifdef _WIN32
  WSACleanup();
#endif
  printf("server: %d connections, %lld bytes echoed\n", N_CLIENTS,
         (long long)echoed);
  return failed;
}
