/*
 * manager_server.c - a manager served by a program of its own, for other
 * programs to use over TCP (see manager_client.c); it offers a type of
 * its own, "greeter", beside the built-in dict, list, Queue, ...
 *
 * The Python original (after the multiprocessing documentation's
 * "Using a remote manager"):
 *
 *     import os, sys
 *     from multiprocessing.managers import BaseManager
 *
 *     class Greeter:
 *         def __init__(self):
 *             self.count = 0
 *         def hello(self, name):
 *             self.count += 1
 *             return f'hello, {name} from server pid {os.getpid()}'
 *         def greetings(self):
 *             return self.count
 *
 *     class MyManager(BaseManager):
 *         pass
 *
 *     MyManager.register('greeter', Greeter)
 *
 *     if __name__ == '__main__':
 *         host, port = '127.0.0.1', 0        # or from sys.argv
 *         m = MyManager(address=(host, port), authkey=b'secret')
 *         server = m.get_server()
 *         print('serving at %s:%d' % server.address, flush=True)
 *         server.serve_forever()             # until a client shuts it down
 *
 * Usage: manager_server [ADDRESS [AUTHKEY]]   (default 127.0.0.1:0 secret)
 *
 * Port 0 lets the system choose a free port: the first line of output
 * says which, for the clients.  Every client must know the authkey; a
 * wrong one gets MP_EAUTH.  ("0.0.0.0:PORT" would accept clients from
 * other computers; a key on the command line is visible to other users
 * of this one, so use this only as an example.)
 *
 * A registered type is a set of C functions: create and destroy the
 * object in the server, and methods that clients call by name with
 * mp_proxy_call / mp_proxy_callf.  The server runs one method at a time,
 * so the greeter's counter needs no lock of its own.
 */
#include "example.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

struct greeter {
  int64_t count; /* greetings made */
};

static int greeter_create(void **obj, const mp_args *args) {
  (void)args; /* Greeter() takes no arguments */
  struct greeter *g = calloc(1, sizeof *g);
  if (g == NULL)
    return mp_set_error(MP_ENOMEM, "out of memory");
  *obj = g;
  return 0;
}

static void greeter_destroy(void *obj) { free(obj); }

/* hello(name) -> "hello, NAME from server pid P" */
static int greeter_hello(void *obj, const mp_args *args, mp_args *result) {
  struct greeter *g = obj;
  const char *name;
  if (mp_args_unpack(args, "s", &name) != 0)
    return mp_set_error(MP_ETYPE, "hello() takes one string");
  char text[256];
  snprintf(text, sizeof text, "hello, %.200s from server pid %lld", name,
           (long long)mp_getpid());
  g->count++;
  return mp_args_add_str(result, text);
}

/* greetings() -> how many greetings this greeter has made */
static int greeter_greetings(void *obj, const mp_args *args,
                             mp_args *result) {
  (void)args;
  return mp_args_add_int(result, ((struct greeter *)obj)->count);
}

static const mp_manager_method greeter_methods[] = {
    {"hello", greeter_hello},
    {"greetings", greeter_greetings},
};

static const mp_manager_type greeter_type = {
    "greeter", greeter_create, greeter_destroy, greeter_methods,
    sizeof greeter_methods / sizeof greeter_methods[0]};

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  const char *address = argc > 1 ? argv[1] : "127.0.0.1:0";
  const char *authkey = argc > 2 ? argv[2] : "secret";

  /* MyManager.register('greeter', Greeter): before the server exists. */
  if (mp_manager_register(&greeter_type) != 0) {
    fprintf(stderr, "error: register: %s\n", mp_last_error_message());
    return 1;
  }

  mp_manager_options opt = MP_MANAGER_OPTIONS_INIT;
  opt.address = address;
  opt.authkey = authkey;
  opt.authkey_n = strlen(authkey);
  mp_manager_server *server;
  if (mp_manager_server_new(&server, &opt) != 0) {
    fprintf(stderr, "error: cannot serve at %s: %s\n", address,
            mp_last_error_message());
    return 1;
  }
  printf("serving at %s\n", mp_manager_server_address(server));
  fflush(stdout); /* whoever started us waits for this line */

  int rc = mp_manager_server_serve_forever(server);
  if (rc != 0)
    fprintf(stderr, "error: serve: %s\n", mp_last_error_message());
  else
    printf("shut down by a client\n");
  mp_manager_server_free(server);
  return rc != 0;
}
