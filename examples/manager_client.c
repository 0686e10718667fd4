/*
 * manager_client.c - a program using the manager another program serves
 * (manager_server.c) over TCP: it connects with the authkey, makes a
 * "greeter" (the server's own type) and a Queue there, uses them, and
 * finally shuts the server down.
 *
 * The Python original (after the multiprocessing documentation's
 * "Using a remote manager"):
 *
 *     import os, sys
 *     from multiprocessing.managers import BaseManager
 *
 *     class MyManager(BaseManager):
 *         pass
 *
 *     MyManager.register('greeter')          # made by the server
 *     MyManager.register('Queue')
 *
 *     if __name__ == '__main__':
 *         host, port = sys.argv[1].rsplit(':', 1)
 *         m = MyManager(address=(host, int(port)),
 *                       authkey=sys.argv[2].encode())
 *         m.connect()
 *         g = m.greeter()
 *         for name in ('alice', 'bob'):
 *             print(g.hello(name))   # hello, alice from server pid 4242
 *         print('greetings made:', g.greetings())
 *         q = m.Queue()
 *         for word in ('one', 'two', 'three'):
 *             q.put(word)
 *         print('queue:', q.qsize(), 'items:',
 *               *(q.get(timeout=10) for _ in range(3)))
 *         m.shutdown()  # (a server started with serve_forever has no
 *                       #  shutdown in Python; mproc's does)
 *
 * Usage: manager_client ADDRESS [AUTHKEY]      (default authkey: secret)
 *        manager_client --self-test [SERVER]
 *
 * The first form talks to a server already running:
 *     $ ./manager_server
 *     serving at 127.0.0.1:40823
 *     $ ./manager_client 127.0.0.1:40823 secret       (in another shell)
 *
 * --self-test does both itself, as the test suite runs it: it starts the
 * server program (SERVER, or manager_server next to this program) as an
 * ordinary OS process with its output on a pipe -- posix_spawn on POSIX,
 * CreateProcess on Windows, the only code here that depends on the
 * system -- reads the "serving at" line, runs the client, shuts the
 * server down, prints what the server printed and waits for it to exit.
 * The greetings name the pid of the process that made them: the server's,
 * not this program's.
 *
 * Objects cannot be looked up by name: each client makes its own (a
 * greeter made by another client would be a different one).  Proxies of
 * a remote manager may be passed to child processes like any other.
 */
#include "example.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

#ifdef _WIN32
#  include <fcntl.h>
#  include <io.h>
#else
#  include <signal.h>
#  include <spawn.h>
#  include <sys/types.h>
#  include <sys/wait.h>
#  include <unistd.h>
extern char **environ;
#endif

static int fail(const char *what) {
  fprintf(stderr, "error: %s: %s\n", what, mp_last_error_message());
  return 1;
}

/* ---- the client --------------------------------------------------------- */

/* Connect, use a greeter and a Queue, shut the server down.  0 when all
 * went well; *shut_down says whether the server was asked to stop, and
 * *server_pid is the pid the greetings came from (or -1). */
static int client(const char *address, const char *authkey, int *shut_down,
                  long long *server_pid) {
  mp_manager *m;
  mp_proxy *g = NULL, *q = NULL;
  mp_args *r = NULL;
  int failed = 0;
  *shut_down = 0;
  *server_pid = -1;

  if (mp_manager_connect(&m, address, authkey, strlen(authkey), 10.0) != 0)
    return fail("connect");
  printf("connected to %s\n", mp_manager_address(m));

  /* The server's own type: g = m.greeter() */
  if (mp_manager_create(m, "greeter", NULL, &g) != 0) {
    failed = fail("greeter");
  } else {
    static const char *const names[] = {"alice", "bob"};
    for (int i = 0; i < 2 && !failed; i++) {
      if (mp_proxy_callf(g, "hello", &r, "s", names[i]) != 0) {
        failed = fail("hello");
        break;
      }
      const char *text = mp_args_str(r, 0);
      const char *pid = text ? strstr(text, " pid ") : NULL;
      printf("%s\n", text ? text : "(not a string)");
      if (pid != NULL)
        *server_pid = atoll(pid + 5);
      mp_args_free(r);
    }
    if (!failed && mp_proxy_callf(g, "greetings", &r, "") == 0) {
      printf("greetings made: %lld\n", (long long)mp_args_int(r, 0));
      failed = mp_args_int(r, 0) != 2;
      mp_args_free(r);
    } else if (!failed) {
      failed = fail("greetings");
    }
  }

  /* A built-in type: q = m.Queue() */
  if (!failed && mp_manager_queue(m, 0, &q) == 0) {
    static const char *const words[] = {"one", "two", "three"};
    for (int i = 0; i < 3 && !failed; i++)
      if (mp_proxy_queue_put(q, MP_FOREVER, "s", words[i]) != 0)
        failed = fail("put");
    if (!failed)
      printf("queue: %lld items:", (long long)mp_proxy_queue_qsize(q));
    for (int i = 0; i < 3 && !failed; i++) {
      if (mp_proxy_queue_get(q, 10.0, &r) != 0) {
        failed = fail("get");
        break;
      }
      printf(" %s", mp_args_str(r, 0) ? mp_args_str(r, 0) : "?");
      mp_args_free(r);
    }
    if (!failed)
      printf("\n");
  } else if (!failed) {
    failed = fail("Queue");
  }

  mp_proxy_free(q);
  mp_proxy_free(g);
  if (mp_manager_shutdown(m) != 0) {
    failed = fail("shutdown");
  } else {
    *shut_down = 1;
    printf("the server was asked to shut down\n");
  }
  mp_manager_free(m);
  return failed;
}

/* ---- --self-test: the server program as an OS process ------------------- */

/* The server's address and authkey in the self-test: a free port on the
 * loopback interface. */
#define SELF_TEST_ADDRESS "127.0.0.1:0"
#define SELF_TEST_AUTHKEY "self-test-key"

#ifdef _WIN32

typedef struct server {
  HANDLE process;
  long long pid;
  FILE *out; /* the server's stdout */
} server;

/* manager_server.exe next to this program. */
static void default_server(const char *argv0, char *buf, size_t cap) {
  (void)argv0;
  DWORD n = GetModuleFileNameA(NULL, buf, (DWORD)cap);
  if (n == 0 || n >= cap)
    buf[0] = '\0';
  char *slash = strrchr(buf, '\\');
  size_t dir = slash ? (size_t)(slash - buf) + 1 : 0;
  snprintf(buf + dir, cap - dir, "manager_server.exe");
}

static int server_start(server *s, const char *path) {
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE}; /* inheritable */
  HANDLE rd, wr, err = NULL;
  if (!CreatePipe(&rd, &wr, &sa, 0))
    return -1;
  SetHandleInformation(rd, HANDLE_FLAG_INHERIT, 0); /* ours only */
  /* The server's stderr is ours (an inheritable copy of it). */
  DuplicateHandle(GetCurrentProcess(), GetStdHandle(STD_ERROR_HANDLE),
                  GetCurrentProcess(), &err, 0, TRUE, DUPLICATE_SAME_ACCESS);

  STARTUPINFOA si;
  PROCESS_INFORMATION pi;
  ZeroMemory(&si, sizeof si);
  si.cb = sizeof si;
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdOutput = wr;
  si.hStdError = err;
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "\"%s\" %s %s", path, SELF_TEST_ADDRESS,
           SELF_TEST_AUTHKEY);
  BOOL ok = CreateProcessA(path, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si,
                           &pi);
  CloseHandle(wr); /* the server has its own: end of file when it exits */
  if (err != NULL)
    CloseHandle(err);
  if (!ok) {
    CloseHandle(rd);
    return -1;
  }
  CloseHandle(pi.hThread);
  s->process = pi.hProcess;
  s->pid = (long long)pi.dwProcessId;
  s->out = _fdopen(_open_osfhandle((intptr_t)rd, _O_RDONLY | _O_TEXT), "r");
  return s->out != NULL ? 0 : -1;
}

static void server_kill(server *s) { TerminateProcess(s->process, 1); }

/* Wait for the server to exit: its exit status. */
static int server_wait(server *s) {
  DWORD code = 1;
  WaitForSingleObject(s->process, INFINITE);
  GetExitCodeProcess(s->process, &code);
  CloseHandle(s->process);
  return (int)code;
}

#else /* POSIX */

typedef struct server {
  pid_t os_pid;
  long long pid;
  FILE *out; /* the server's stdout */
} server;

/* manager_server in the directory of argv[0]. */
static void default_server(const char *argv0, char *buf, size_t cap) {
  const char *slash = strrchr(argv0, '/');
  if (slash == NULL)
    snprintf(buf, cap, "./manager_server");
  else
    snprintf(buf, cap, "%.*smanager_server", (int)(slash - argv0) + 1, argv0);
}

static int server_start(server *s, const char *path) {
  int fds[2];
  if (pipe(fds) != 0)
    return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1); /* stdout: the pipe */
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  posix_spawn_file_actions_addclose(&fa, fds[1]);
  char *argv[] = {(char *)path, SELF_TEST_ADDRESS, SELF_TEST_AUTHKEY, NULL};
  int rc = posix_spawn(&s->os_pid, path, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]); /* the server has its own: end of file when it exits */
  if (rc != 0) {
    close(fds[0]);
    errno = rc;
    return -1;
  }
  s->pid = (long long)s->os_pid;
  s->out = fdopen(fds[0], "r");
  return s->out != NULL ? 0 : -1;
}

static void server_kill(server *s) { kill(s->os_pid, SIGTERM); }

/* Wait for the server to exit: its exit status (128 + N if killed by
 * signal N). */
static int server_wait(server *s) {
  int st;
  while (waitpid(s->os_pid, &st, 0) < 0)
    if (errno != EINTR)
      return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#endif

static int self_test(const char *path) {
  server s;
  char line[256];
  printf("starting %s\n", path);
  if (server_start(&s, path) != 0) {
    fprintf(stderr, "error: cannot start %s\n", path);
    return 1;
  }
  /* The first line is "serving at ADDRESS"; nothing comes before it. */
  const char *prefix = "serving at ";
  size_t np = strlen(prefix);
  if (fgets(line, sizeof line, s.out) == NULL ||
      strncmp(line, prefix, np) != 0) {
    fprintf(stderr, "error: the server did not say where it serves\n");
    server_kill(&s);
    fclose(s.out);
    server_wait(&s);
    return 1;
  }
  line[strcspn(line, "\r\n")] = '\0';
  printf("server (pid %lld): %s\n", s.pid, line);
  fflush(stdout);

  int shut_down;
  long long greeter_pid;
  int failed = client(line + np, SELF_TEST_AUTHKEY, &shut_down, &greeter_pid);
  if (!shut_down)
    server_kill(&s); /* it would serve for ever */

  /* The rest of the server's output, until it exits (end of file). */
  while (fgets(line, sizeof line, s.out) != NULL) {
    line[strcspn(line, "\r\n")] = '\0';
    printf("server (pid %lld): %s\n", s.pid, line);
  }
  fclose(s.out);
  int status = server_wait(&s);
  printf("server (pid %lld) exited with status %d\n", s.pid, status);
  if (greeter_pid != s.pid) {
    fprintf(stderr, "error: the greetings came from pid %lld, not from the "
            "server (pid %lld)\n", greeter_pid, s.pid);
    failed = 1;
  }
  return failed || status != 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  if (argc > 1 && strcmp(argv[1], "--self-test") == 0) {
    char path[1024];
    if (argc > 2)
      snprintf(path, sizeof path, "%s", argv[2]);
    else
      default_server(argv[0], path, sizeof path);
    return self_test(path);
  }
  if (argc < 2 || argv[1][0] == '-') {
    fprintf(stderr, "usage: manager_client ADDRESS [AUTHKEY]\n"
                    "       manager_client --self-test [SERVER]\n");
    return 2;
  }
  int shut_down;
  long long server_pid;
  return client(argv[1], argc > 2 ? argv[2] : "secret", &shut_down,
                &server_pid);
}
