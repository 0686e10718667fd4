/*
 * test_listener.c - listeners and clients (Python's Listener / Client):
 * local sockets or named pipes and TCP (IPv4, IPv6), with and without an
 * authkey; a wrong key, a silent client and a garbage client refused
 * without stopping the listener; nobody listening; accept timeouts;
 * closing a listener another thread waits on; addresses in use; bad
 * arguments; owner-only socket files; a client in a child process under
 * each start method; hostile peers (part of a frame then silence, a
 * frame a byte at a time) on both sides; a close that ends a handshake in
 * progress; a killed listener's socket directory removed all the same;
 * the last client's address (Python's last_accepted); Linux abstract
 * socket names ("@name"): no file, in use, other users kept out, and
 * MP_ENOTSUP elsewhere.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE /* setgroups */
#endif

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(_WIN32)
#  include <errno.h>
#  include <grp.h>
#  include <stddef.h>
#  include <sys/socket.h>
#  include <sys/stat.h>
#  include <sys/un.h>
#  include <unistd.h>
#endif

#include "methods.h"
#include "mproc.h"
#include "support.h"

TS_SUITE(listener);

static const char key[] = "listener test key";

/* ---- a client in a thread -------------------------------------------- */

typedef struct client_job {
  const char *address;
  int family;
  const char *key; /* NULL: no authkey */
  const void *raw; /* without a key: send this first (garbage), if set */
  size_t raw_n;
  int silent;      /* connect without a key and say nothing until told */
  int rc;          /* mp_client's result */
  int echo_ok;     /* sent "ping", got "pong" */
  mp_event *done;  /* set when the client may go (silent) */
} client_job;

static void client_main(void *arg) {
  client_job *j = arg;
  mp_conn *c = NULL;
  j->rc = mp_client(&c, j->address, j->family, j->key,
                    j->key ? strlen(j->key) : 0, 20.0);
  if (j->rc != 0)
    return;
  if (j->raw != NULL)
    mp_conn_send_bytes(c, j->raw, j->raw_n);
  if (j->silent) {
    mp_event_wait(j->done, 30.0);
  } else if (j->raw == NULL && mp_conn_send_bytes(c, "ping", 4) == 0) {
    char buf[8];
    size_t n = 0;
    j->echo_ok = mp_conn_recv_bytes_into(c, buf, sizeof buf, &n) == 0 &&
                 n == 4 && memcmp(buf, "pong", 4) == 0;
  }
  mp_conn_free(c);
}

/* Accept one client, answer its ping. */
static void serve_one(mp_listener *l) {
  mp_conn *c;
  cr_assert_eq(mp_listener_accept(l, 20.0, &c), 0, "%s",
               mp_last_error_message());
  char buf[8];
  size_t n = 0;
  cr_assert_eq(mp_conn_recv_bytes_into(c, buf, sizeof buf, &n), 0);
  cr_expect(n == 4 && memcmp(buf, "ping", 4) == 0);
  cr_assert_eq(mp_conn_send_bytes(c, "pong", 4), 0);
  mp_conn_free(c);
}

static void round_trip(const char *address, int family, int with_key,
                       int want_family) {
  mp_listener *l;
  int rc = mp_listener_new(&l, address, family, 0, with_key ? key : NULL,
                           with_key ? strlen(key) : 0);
  cr_assert_eq(rc, 0, "%s: %s", address ? address : "(generated)",
               mp_last_error_message());
  cr_expect_eq(mp_listener_family(l), want_family);
  const char *bound = mp_listener_address(l);
  cr_assert(bound != NULL && bound[0] != '\0');
  client_job j = {bound, MP_AF_DEFAULT, with_key ? key : NULL, NULL, 0, 0,
                  -1, 0, NULL};
  ts_thread *t = ts_thread_start(client_main, &j);
  serve_one(l);
  ts_thread_join(t);
  cr_expect_eq(j.rc, 0, "client: %s", mp_err_name(j.rc));
  cr_expect(j.echo_ok, "the client got its pong");
  mp_listener_free(l);
}

Test(listener, local_generated_with_key) {
  round_trip(NULL, MP_AF_DEFAULT, 1, MP_AF_LOCAL);
}
Test(listener, local_generated_without_key) {
  round_trip(NULL, MP_AF_LOCAL, 0, MP_AF_LOCAL);
}
Test(listener, tcp4_with_key) {
  round_trip("127.0.0.1:0", MP_AF_DEFAULT, 1, MP_AF_INET);
}
Test(listener, tcp4_empty_host_is_loopback) {
  round_trip(":0", MP_AF_INET, 1, MP_AF_INET);
}
Test(listener, tcp6_with_key) {
  round_trip("[::1]:0", MP_AF_DEFAULT, 1, MP_AF_INET6);
}

/* No address with a TCP family: a free loopback port (Python binds
 * ('localhost', 0)). */
static void no_address_is_loopback(int family, const char *prefix) {
  mp_listener *l;
  cr_assert_eq(mp_listener_new(&l, NULL, family, 0, NULL, 0), 0, "%s",
               mp_last_error_message());
  const char *a = mp_listener_address(l);
  size_t n = strlen(prefix);
  cr_assert(strncmp(a, prefix, n) == 0, "%s", a);
  cr_expect(atoi(a + n) > 0, "%s", a);
  cr_expect_eq(mp_listener_family(l), family);
  mp_listener_free(l);
  round_trip(NULL, family, 1, family);
}
Test(listener, tcp4_no_address_is_a_free_loopback_port) {
  no_address_is_loopback(MP_AF_INET, "127.0.0.1:");
}
Test(listener, tcp6_no_address_is_a_free_loopback_port) {
  no_address_is_loopback(MP_AF_INET6, "[::1]:");
}

Test(listener, tcp_address_has_the_chosen_port) {
  mp_listener *l;
  cr_assert_eq(mp_listener_new(&l, "127.0.0.1:0", MP_AF_INET, 4, NULL, 0), 0);
  const char *a = mp_listener_address(l);
  cr_assert(strncmp(a, "127.0.0.1:", 10) == 0, "%s", a);
  cr_expect(atoi(a + 10) > 0, "%s", a);
  mp_listener_free(l);
}

/* A wrong key, a client that says nothing, a client that sends garbage:
 * each is refused with MP_EAUTH, and the listener goes on to serve the
 * next client. */
Test(listener, bad_clients_are_dropped_and_others_served,
     .timeout = TS_TIMEOUT) {
  mp_listener *l;
  cr_assert_eq(mp_listener_new(&l, "127.0.0.1:0", MP_AF_DEFAULT, 0, key,
                               strlen(key)), 0);
  cr_assert_eq(mp_listener_set_handshake_timeout(l, 0.3), 0);
  const char *a = mp_listener_address(l);
  mp_conn *c;
  /* Wrong key: both sides MP_EAUTH. */
  client_job wrong = {a, MP_AF_DEFAULT, "not the key", NULL, 0, 0, -1, 0,
                      NULL};
  ts_thread *t = ts_thread_start(client_main, &wrong);
  cr_expect_eq(mp_listener_accept(l, 20.0, &c), MP_EAUTH);
  cr_expect_null(c);
  ts_thread_join(t);
  cr_expect_eq(wrong.rc, MP_EAUTH, "%s", mp_err_name(wrong.rc));
  /* Silent: dropped after the handshake time. */
  client_job silent = {a, MP_AF_DEFAULT, NULL, NULL, 0, 1, -1, 0, NULL};
  cr_assert_eq(mp_event_new(&silent.done), 0);
  t = ts_thread_start(client_main, &silent);
  double t0 = ts_now();
  cr_expect_eq(mp_listener_accept(l, 20.0, &c), MP_EAUTH);
  double took = ts_now() - t0;
  cr_expect(took >= 0.25 && took < 10.0, "dropped after %.3f s", took);
  mp_event_set(silent.done);
  ts_thread_join(t);
  mp_event_free(silent.done);
  /* Garbage instead of a digest. */
  char junk[600];
  memset(junk, 'j', sizeof junk);
  client_job garbage = {a, MP_AF_DEFAULT, NULL, junk, sizeof junk, 0, -1, 0,
                        NULL};
  t = ts_thread_start(client_main, &garbage);
  cr_expect_eq(mp_listener_accept(l, 20.0, &c), MP_EAUTH);
  ts_thread_join(t);
  /* And a good client after all that. */
  client_job good = {a, MP_AF_DEFAULT, key, NULL, 0, 0, -1, 0, NULL};
  t = ts_thread_start(client_main, &good);
  serve_one(l);
  ts_thread_join(t);
  cr_expect_eq(good.rc, 0);
  cr_expect(good.echo_ok);
  mp_listener_free(l);
}

Test(listener, nobody_listening) {
  mp_conn *c;
  mp_listener *l;
  /* A local name that was listened on and closed, and a closed port. */
  cr_assert_eq(mp_listener_new(&l, NULL, MP_AF_LOCAL, 0, NULL, 0), 0);
  char local[512];
  snprintf(local, sizeof local, "%s", mp_listener_address(l));
  mp_listener_free(l);
  cr_expect_eq(mp_client(&c, local, MP_AF_LOCAL, NULL, 0, 5.0), MP_ENOENT,
               "%s", mp_last_error_message());
  cr_assert_eq(mp_listener_new(&l, "127.0.0.1:0", MP_AF_INET, 0, NULL, 0),
               0);
  char tcp[64];
  snprintf(tcp, sizeof tcp, "%s", mp_listener_address(l));
  mp_listener_free(l);
  cr_expect_eq(mp_client(&c, tcp, MP_AF_DEFAULT, key, strlen(key), 5.0),
               MP_ENOENT, "%s", mp_last_error_message());
  cr_expect_null(c);
}

Test(listener, accept_times_out) {
  mp_listener *l;
  cr_assert_eq(mp_listener_new(&l, NULL, MP_AF_DEFAULT, 0, key, strlen(key)),
               0);
  mp_conn *c;
  double t0 = ts_now();
  cr_expect_eq(mp_listener_accept(l, 0.2, &c), MP_ETIMEDOUT);
  double took = ts_now() - t0;
  cr_expect(took >= 0.15 && took < 5.0, "took %.3f s", took);
  cr_expect_eq(mp_listener_accept(l, 0, &c), MP_ETIMEDOUT);
  mp_listener_free(l);
}

typedef struct closer {
  mp_listener *l;
  mp_event *go;
} closer;

static void close_later(void *arg) {
  closer *c = arg;
  mp_event_wait(c->go, 30.0);
  mp_listener_close(c->l);
}

/* Close while another thread waits in accept.  The closing thread waits
 * for an event set just before accept: it may close before accept has
 * started waiting, which must end the same way. */
Test(listener, close_wakes_a_waiting_accept, .timeout = TS_TIMEOUT) {
  closer cl;
  cr_assert_eq(mp_listener_new(&cl.l, "127.0.0.1:0", MP_AF_INET, 0, NULL,
                               0), 0);
  cr_assert_eq(mp_event_new(&cl.go), 0);
  ts_thread *t = ts_thread_start(close_later, &cl);
  mp_conn *c;
  mp_event_set(cl.go);
  cr_expect_eq(mp_listener_accept(cl.l, 30.0, &c), MP_ECLOSED);
  ts_thread_join(t);
  cr_expect_eq(mp_listener_accept(cl.l, 1.0, &c), MP_ECLOSED);
  cr_expect_eq(mp_listener_close(cl.l), 0, "idempotent");
  mp_event_free(cl.go);
  mp_listener_free(cl.l);
}

Test(listener, address_in_use) {
  mp_listener *a, *b;
  cr_assert_eq(mp_listener_new(&a, "127.0.0.1:0", MP_AF_INET, 0, NULL, 0),
               0);
  cr_expect_eq(mp_listener_new(&b, mp_listener_address(a), MP_AF_INET, 0,
                               NULL, 0), MP_EEXIST, "%s",
               mp_last_error_message());
  mp_listener_free(a);
#if defined(_WIN32)
  const char *name = "\\\\.\\pipe\\mproc-test-in-use";
#else
  char name[256];
  snprintf(name, sizeof name, "%s/mproc-test-%lld.sock",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
           (long long)mp_getpid());
#endif
  cr_assert_eq(mp_listener_new(&a, name, MP_AF_LOCAL, 0, NULL, 0), 0, "%s",
               mp_last_error_message());
  cr_expect_eq(mp_listener_new(&b, name, MP_AF_LOCAL, 0, NULL, 0), MP_EEXIST,
               "%s", mp_last_error_message());
  mp_listener_free(a);
}

Test(listener, bad_arguments) {
  mp_listener *l;
  mp_conn *c;
  cr_expect_eq(mp_listener_new(NULL, NULL, 0, 0, NULL, 0), MP_EINVAL);
  cr_expect_eq(mp_listener_new(&l, NULL, 9, 0, NULL, 0), MP_EINVAL);
  cr_expect_eq(mp_listener_new(&l, NULL, 0, -1, NULL, 0), MP_EINVAL);
  cr_expect_eq(mp_listener_new(&l, NULL, 0, 0, NULL, 5), MP_EINVAL);
  cr_expect_eq(mp_listener_new(&l, "127.0.0.1", MP_AF_INET, 0, NULL, 0),
               MP_EINVAL);
  cr_expect_eq(mp_listener_new(&l, "x:99999", MP_AF_INET, 0, NULL, 0),
               MP_EINVAL);
  cr_expect_eq(mp_listener_new(&l, "::1:5", MP_AF_INET6, 0, NULL, 0),
               MP_EINVAL);
  cr_expect_eq(mp_listener_new(&l, "[::1]:0", MP_AF_INET, 0, NULL, 0),
               MP_EINVAL, "an IPv6 address for an IPv4 listener");
  cr_expect_eq(mp_client(&c, NULL, 0, NULL, 0, 1.0), MP_EINVAL);
  cr_expect_eq(mp_client(&c, "127.0.0.1:1", 0, NULL, 0, -3.0), MP_EINVAL);
  cr_expect_eq(mp_client(NULL, "127.0.0.1:1", 0, NULL, 0, 1.0), MP_EINVAL);
  cr_assert_eq(mp_listener_new(&l, NULL, 0, 0, NULL, 0), 0);
  cr_expect_eq(mp_listener_set_handshake_timeout(l, 0), MP_EINVAL);
  cr_expect_eq(mp_listener_accept(l, -2.0, &c), MP_EINVAL);
  cr_expect_eq(mp_listener_accept(l, 1.0, NULL), MP_EINVAL);
  mp_listener_free(l);
  mp_listener_free(NULL);
}

#if !defined(_WIN32)
/* Sockets only this user can reach, removed when the listener goes. */
Test(listener, local_sockets_are_owner_only) {
  mp_listener *l;
  cr_assert_eq(mp_listener_new(&l, NULL, MP_AF_LOCAL, 0, NULL, 0), 0);
  char path[512], dir[512];
  snprintf(path, sizeof path, "%s", mp_listener_address(l));
  snprintf(dir, sizeof dir, "%s", path);
  *strrchr(dir, '/') = '\0';
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  cr_expect_eq(st.st_mode & 0777, 0600, "socket mode %o", st.st_mode & 0777);
  cr_assert_eq(stat(dir, &st), 0);
  cr_expect_eq(st.st_mode & 0777, 0700, "dir mode %o", st.st_mode & 0777);
  mp_listener_free(l);
  cr_expect_neq(stat(path, &st), 0, "the socket is gone");
  cr_expect_neq(stat(dir, &st), 0, "its directory is gone");
  /* A given path: 0600 too, and removed at close. */
  snprintf(path, sizeof path, "/tmp/mproc-test-own-%lld.sock",
           (long long)mp_getpid());
  cr_assert_eq(mp_listener_new(&l, path, MP_AF_LOCAL, 0, NULL, 0), 0, "%s",
               mp_last_error_message());
  cr_assert_eq(stat(path, &st), 0);
  cr_expect_eq(st.st_mode & 0777, 0600, "socket mode %o", st.st_mode & 0777);
  mp_listener_free(l);
  cr_expect_neq(stat(path, &st), 0, "the socket is gone");
}
#endif

/* ---- a client in a child process ---------------------------------------- */

static int child_client(const mp_args *a) {
  mp_conn *c;
  const char *k = mp_args_str(a, 1);
  int rc = mp_client(&c, mp_args_str(a, 0), MP_AF_DEFAULT, k, strlen(k),
                     20.0);
  if (rc != 0)
    return 10 - rc;
  rc = mp_conn_send_bytes(c, "from the child", 14);
  mp_conn_free(c);
  return rc == 0 ? 0 : 30;
}

static void check_child_client(const char *method, const char *where) {
  mp_listener *l;
  cr_assert_eq(mp_listener_new(&l, where, MP_AF_DEFAULT, 0, key,
                               strlen(key)), 0);
  mp_args *a;
  mp_args_pack(&a, "ss", mp_listener_address(l), key);
  mp_process *p = ts_start(method, child_client, a);
  mp_args_free(a);
  mp_conn *c;
  cr_assert_eq(mp_listener_accept(l, 30.0, &c), 0, "%s",
               mp_last_error_message());
  char buf[32];
  size_t n = 0;
  cr_assert_eq(mp_conn_recv_bytes_into(c, buf, sizeof buf, &n), 0);
  cr_expect(n == 14 && memcmp(buf, "from the child", 14) == 0);
  cr_expect_eq(ts_join(p), 0, "child: %s", mp_process_error(p));
  mp_process_free(p);
  mp_conn_free(c);
  mp_listener_free(l);
}

static void check_child_client_local(const char *method) {
  check_child_client(method, NULL);
}
static void check_child_client_tcp(const char *method) {
  check_child_client(method, "127.0.0.1:0");
}
FOR_EACH_METHOD(check_child_client_local)
FOR_EACH_METHOD(check_child_client_tcp)

/* ---- hostile peers: part of a frame, then silence ---------------------- */

/* A peer without a key that sends `n` bytes of a frame and then nothing
 * (until told to go), or, slow != 0, sends them one byte every 0.1 s:
 * a frame that never ends in time.  Every byte of the handshake is under
 * its one deadline, so none of these may hold the other side. */
typedef struct half_peer {
  const char *address;
  const unsigned char *bytes;
  size_t n;
  int slow;
  mp_event *go;
} half_peer;

static void half_peer_main(void *arg) {
  half_peer *h = arg;
  mp_conn *c = NULL;
  if (mp_client(&c, h->address, MP_AF_DEFAULT, NULL, 0, 20.0) != 0)
    return;
  for (size_t i = 0; i < h->n; i += h->slow ? 1 : h->n) {
    if (ts_raw_try_write(mp_conn_fileno(c), h->bytes + i,
                         h->slow ? 1 : h->n) != 0)
      break; /* dropped */
    /* The slow sender's pace is what is under test, not a wait for an
     * event: the event below ends it early. */
    if (h->slow && mp_event_wait(h->go, 0.1) == 0)
      break;
  }
  mp_event_wait(h->go, 30.0);
  mp_conn_free(c);
}

/* A frame header announcing 40 bytes, and 10 of them. */
static const unsigned char partial_frame[] = {0, 0, 0, 40, '{', 's', 'h',
                                              'a', '2', '5', '6', '}', 0, 0};

static void check_partial_peers(const char *where) {
  mp_listener *l;
  cr_assert_eq(mp_listener_new(&l, where, MP_AF_DEFAULT, 0, key,
                               strlen(key)), 0);
  cr_assert_eq(mp_listener_set_handshake_timeout(l, 0.5), 0);
  const char *a = mp_listener_address(l);
  struct {
    const char *what;
    size_t n;
    int slow;
  } cases[] = {{"nothing at all", 0, 0},
               {"one byte of the length", 1, 0},
               {"a header and part of the body", sizeof partial_frame, 0},
               {"a byte every 0.1 s", sizeof partial_frame, 1}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    half_peer h = {a, partial_frame, cases[i].n, cases[i].slow, NULL};
    cr_assert_eq(mp_event_new(&h.go), 0);
    ts_thread *t = ts_thread_start(half_peer_main, &h);
    mp_conn *c = NULL;
    double t0 = ts_now();
    int rc = mp_listener_accept(l, 20.0, &c);
    double took = ts_now() - t0;
    cr_expect(rc == MP_EAUTH, "%s: accept gave %s", cases[i].what,
              mp_err_name(rc));
    cr_expect_null(c);
    cr_expect_lt(took, 3.0, "%s: dropped after %.2f s (handshake 0.5 s)",
                 cases[i].what, took);
    mp_event_set(h.go);
    ts_thread_join(t);
    mp_event_free(h.go);
  }
  /* And a good client still gets in. */
  client_job good = {a, MP_AF_DEFAULT, key, NULL, 0, 0, -1, 0, NULL};
  ts_thread *t = ts_thread_start(client_main, &good);
  serve_one(l);
  ts_thread_join(t);
  cr_expect_eq(good.rc, 0);
  cr_expect(good.echo_ok);
  mp_listener_free(l);
}

Test(listener, partial_frames_cannot_hold_accept_tcp, .timeout = 60) {
  check_partial_peers("127.0.0.1:0");
}
Test(listener, partial_frames_cannot_hold_accept_local, .timeout = 60) {
  check_partial_peers(NULL);
}

/* A server that accepts (without a key) and sends `n` bytes of a
 * challenge frame, then nothing until told; or, slow != 0, sends the
 * whole challenge one byte every 0.1 s (6.3 s in all). */
typedef struct half_server {
  mp_listener *l;
  size_t n;
  int slow;
  mp_event *go;
} half_server;

static void half_server_main(void *arg) {
  half_server *s = arg;
  mp_conn *c = NULL;
  if (mp_listener_accept(s->l, 20.0, &c) != 0)
    return;
  unsigned char challenge[4 + 19 + 40] = {0, 0, 0, 59};
  memcpy(challenge + 4, "#CHALLENGE#{sha256}", 19);
  memset(challenge + 23, 7, 40);
  size_t n = s->slow || s->n > sizeof challenge ? sizeof challenge : s->n;
  for (size_t i = 0; i < n; i += s->slow ? 1 : n) {
    if (ts_raw_try_write(mp_conn_fileno(c), challenge + i,
                         s->slow ? 1 : n) != 0)
      break; /* the client has gone */
    /* The slow sender's pace is what is under test, not a wait for an
     * event: the event ends it early. */
    if (s->slow && mp_event_wait(s->go, 0.1) == 0)
      break;
  }
  mp_event_wait(s->go, 30.0);
  mp_conn_free(c);
}

/* mp_client's timeout bounds its whole handshake: a server that sends
 * part of a challenge and falls silent, or sends it too slowly, cannot
 * hold it. */
Test(listener, client_bounded_by_half_a_challenge, .timeout = 60) {
  struct {
    const char *what;
    size_t n;
    int slow;
  } cases[] = {{"2 bytes", 2, 0},
               {"14 bytes", 14, 0},
               {"a byte every 0.1 s", 0, 1}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    half_server s = {NULL, cases[i].n, cases[i].slow, NULL};
    cr_assert_eq(mp_listener_new(&s.l, "127.0.0.1:0", MP_AF_DEFAULT, 0, NULL,
                                 0), 0);
    cr_assert_eq(mp_event_new(&s.go), 0);
    ts_thread *t = ts_thread_start(half_server_main, &s);
    mp_conn *c = NULL;
    double t0 = ts_now();
    int rc = mp_client(&c, mp_listener_address(s.l), MP_AF_DEFAULT, key,
                       strlen(key), 1.0);
    double took = ts_now() - t0;
    cr_expect_eq(rc, MP_ETIMEDOUT, "%s: mp_client gave %s (%s)",
                 cases[i].what, mp_err_name(rc), mp_last_error_message());
    cr_expect_null(c);
    cr_expect_lt(took, 3.0, "%s: returned after %.2f s (timeout 1 s)",
                 cases[i].what, took);
    mp_event_set(s.go);
    ts_thread_join(t);
    mp_event_free(s.go);
    mp_listener_free(s.l);
  }
}

/* ---- closing a listener whose accept is inside a handshake ------------ */

typedef struct accept_job {
  mp_listener *l;
  int rc;
  double ended; /* ts_now() when accept returned */
} accept_job;

static void accept_main(void *arg) {
  accept_job *j = arg;
  mp_conn *c = NULL;
  j->rc = mp_listener_accept(j->l, 20.0, &c);
  j->ended = ts_now();
  mp_conn_free(c);
}

/* A silent client holds accept in its handshake (30 s here); another
 * thread closes the listener: accept returns MP_ECLOSED at once, as it
 * does when it waits for a client, not when the handshake time is over. */
Test(listener, close_ends_a_handshake_in_progress, .timeout = 60) {
  accept_job j = {NULL, -1, 0};
  cr_assert_eq(mp_listener_new(&j.l, "127.0.0.1:0", MP_AF_DEFAULT, 0, key,
                               strlen(key)), 0);
  cr_assert_eq(mp_listener_set_handshake_timeout(j.l, 30.0), 0);
  ts_thread *t = ts_thread_start(accept_main, &j);
  mp_conn *silent = NULL;
  cr_assert_eq(mp_client(&silent, mp_listener_address(j.l), MP_AF_DEFAULT,
                         NULL, 0, 20.0), 0);
  /* The challenge has come: accept is in the handshake. */
  cr_assert_eq(mp_conn_poll(silent, 20.0), 1, "no challenge came");
  double t0 = ts_now();
  cr_expect_eq(mp_listener_close(j.l), 0);
  ts_thread_join(t);
  cr_expect_eq(j.rc, MP_ECLOSED, "accept gave %s", mp_err_name(j.rc));
  cr_expect_lt(j.ended - t0, 3.0, "accept returned %.2f s after the close",
               j.ended - t0);
  mp_conn_free(silent);
  mp_listener_free(j.l);
}

#if !defined(_WIN32)
/* ---- a killed process leaves no socket directory ---------------------- */

/* Listen at a generated local address, send it, and wait to be killed. */
static int listen_then_block(const mp_args *a) {
  mp_listener *l = NULL;
  if (mp_listener_new(&l, NULL, MP_AF_LOCAL, 0, key, strlen(key)) != 0)
    return 1;
  const char *addr = mp_listener_address(l);
  if (mp_queue_put(mp_args_queue(a, 0), addr, strlen(addr) + 1, 10.0) != 0)
    return 2;
  ts_block_forever();
  return 3;
}

static int path_gone(void *arg) {
  struct stat st;
  return stat((const char *)arg, &st) != 0;
}

/* SIGKILL of a process listening at a generated local address: the
 * socket's private directory (".mproc-XXXXXX" in the temporary
 * directory) goes all the same, removed by the listener's janitor. */
static void check_killed_listener_leaves_no_dir(const char *method) {
  mp_queue *q;
  cr_assert_eq(mp_queue_new(&q, 0), 0);
  mp_args *a;
  mp_args_new(&a);
  mp_args_add_queue(a, q);
  mp_process *p = ts_start(method, listen_then_block, a);
  char addr[1024], dir[1024];
  size_t n = 0;
  cr_assert_eq(mp_queue_get_into(q, addr, sizeof addr, &n, 30.0), 0,
               "the child's address: %s", mp_last_error_message());
  snprintf(dir, sizeof dir, "%s", addr);
  char *slash = strrchr(dir, '/');
  cr_assert(slash != NULL && strstr(dir, "/.mproc-") != NULL,
            "a socket in a private directory: %s", addr);
  *slash = '\0';
  cr_assert(!path_gone(dir), "%s is there while the child lives", dir);
  ts_kill_pid(mp_process_pid(p));
  cr_expect_eq(mp_process_join(p, 20.0), 0);
  int code = 0;
  cr_expect_eq(mp_process_exitcode(p, &code), 0);
  cr_expect_eq(code, -9, "the child was killed: %d", code);
  cr_expect(ts_poll_paced(path_gone, dir, 10.0, 0.02),
            "%s still there 10 s after its owner was killed", dir);
  mp_process_free(p);
  mp_args_free(a);
  mp_queue_free(q);
}
FOR_EACH_METHOD(check_killed_listener_leaves_no_dir)
#endif

/* ---- the last client's address (Python's last_accepted) --------------- */

static int port_of(const char *address) {
  const char *colon = strrchr(address, ':');
  return colon != NULL ? atoi(colon + 1) : -1;
}

/* Before any accept MP_ESTATE; then the client's address, in the
 * listener's form, with a port of its own; bad arguments. */
static void check_last_accepted_tcp(const char *where, const char *prefix) {
  mp_listener *l;
  cr_assert_eq(mp_listener_new(&l, where, MP_AF_DEFAULT, 0, key,
                               strlen(key)), 0, "%s",
               mp_last_error_message());
  char buf[300] = "x";
  cr_expect_eq(mp_listener_last_accepted(l, buf, sizeof buf), MP_ESTATE,
               "before any accept (Python: None)");
  cr_expect_str_eq(buf, "");
  mp_conn *c;
  cr_expect_eq(mp_listener_accept(l, 0, &c), MP_ETIMEDOUT);
  cr_expect_eq(mp_listener_last_accepted(l, buf, sizeof buf), MP_ESTATE,
               "a timed-out accept took nothing");
  const char *a = mp_listener_address(l);
  client_job good = {a, MP_AF_DEFAULT, key, NULL, 0, 0, -1, 0, NULL};
  ts_thread *t = ts_thread_start(client_main, &good);
  serve_one(l);
  ts_thread_join(t);
  cr_assert_eq(mp_listener_last_accepted(l, buf, sizeof buf), 0, "%s",
               mp_last_error_message());
  cr_expect(strncmp(buf, prefix, strlen(prefix)) == 0, "%s", buf);
  cr_expect(port_of(buf) > 0 && port_of(buf) != port_of(a),
            "the client's own port: %s (listener %s)", buf, a);
  char first[300];
  snprintf(first, sizeof first, "%s", buf);
  /* A refused client is the last one accepted too (as in Python, where
   * the handshake comes after). */
  client_job wrong = {a, MP_AF_DEFAULT, "not the key", NULL, 0, 0, -1, 0,
                      NULL};
  t = ts_thread_start(client_main, &wrong);
  cr_expect_eq(mp_listener_accept(l, 20.0, &c), MP_EAUTH);
  ts_thread_join(t);
  cr_assert_eq(mp_listener_last_accepted(l, buf, sizeof buf), 0);
  cr_expect(strncmp(buf, prefix, strlen(prefix)) == 0, "%s", buf);
  cr_expect_str_neq(buf, first, "the refused client, not the first one");
  /* Too small a buffer, bad arguments. */
  char tiny[4] = "x";
  cr_expect_eq(mp_listener_last_accepted(l, tiny, sizeof tiny), MP_ERANGE);
  cr_expect_str_eq(tiny, "");
  cr_expect_eq(mp_listener_last_accepted(NULL, buf, sizeof buf), MP_EINVAL);
  cr_expect_eq(mp_listener_last_accepted(l, NULL, sizeof buf), MP_EINVAL);
  cr_expect_eq(mp_listener_last_accepted(l, buf, 0), MP_EINVAL);
  /* Kept after close. */
  snprintf(first, sizeof first, "%s", buf);
  cr_assert_eq(mp_listener_last_accepted(l, first, sizeof first), 0);
  mp_listener_close(l);
  cr_expect_eq(mp_listener_last_accepted(l, buf, sizeof buf), 0);
  cr_expect_str_eq(buf, first);
  mp_listener_free(l);
}

Test(listener, last_accepted_tcp4, .timeout = TS_TIMEOUT) {
  check_last_accepted_tcp("127.0.0.1:0", "127.0.0.1:");
}
Test(listener, last_accepted_tcp6, .timeout = TS_TIMEOUT) {
  check_last_accepted_tcp("[::1]:0", "[::1]:");
}

/* A local client has no address of its own: "" (Python: '' for a Unix
 * socket; None, never set, for a Windows pipe). */
Test(listener, last_accepted_local_is_empty, .timeout = TS_TIMEOUT) {
  mp_listener *l;
  cr_assert_eq(mp_listener_new(&l, NULL, MP_AF_LOCAL, 0, NULL, 0), 0);
  char buf[300] = "x";
  cr_expect_eq(mp_listener_last_accepted(l, buf, sizeof buf), MP_ESTATE);
  client_job j = {mp_listener_address(l), MP_AF_DEFAULT, NULL, NULL, 0, 0,
                  -1, 0, NULL};
  ts_thread *t = ts_thread_start(client_main, &j);
  serve_one(l);
  ts_thread_join(t);
  strcpy(buf, "x");
  cr_expect_eq(mp_listener_last_accepted(l, buf, sizeof buf), 0, "%s",
               mp_last_error_message());
  cr_expect_str_eq(buf, "");
  mp_listener_free(l);
}

/* ---- Linux abstract socket names ("@name") ---------------------------- */

static void abstract_name(char *buf, size_t cap, const char *tag) {
  snprintf(buf, cap, "@mproc-test-%s-%lld", tag, (long long)mp_getpid());
}

#if defined(__linux__)
/* Is `name` ("@...") among the kernel's Unix sockets?  /proc/net/unix
 * shows an abstract name as "@name" at the end of its line. */
static int listed(const char *name) {
  FILE *f = fopen("/proc/net/unix", "r");
  cr_assert_not_null(f);
  char line[512];
  size_t n = strlen(name);
  int found = 0;
  while (!found && fgets(line, sizeof line, f) != NULL) {
    size_t k = strcspn(line, "\n");
    line[k] = '\0';
    found = k > n && line[k - n - 1] == ' ' && strcmp(line + k - n, name) == 0;
  }
  fclose(f);
  return found;
}

/* A raw socket connected to `to` ("@name" or a path); bound first to
 * `as` (the same forms) unless NULL.  The descriptor, or -1. */
static int raw_local_socket(const char *to, const char *as) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  const char *names[2] = {as, to};
  for (int i = 0; i < 2 && fd >= 0; i++) {
    if (names[i] == NULL)
      continue;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(names[i]);
    if (n >= sizeof sa.sun_path) {
      close(fd);
      return -1;
    }
    memcpy(sa.sun_path, names[i], n);
    if (names[i][0] == '@')
      sa.sun_path[0] = '\0';
    else
      n++; /* a path: its NUL */
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    int r = i == 0 ? bind(fd, (struct sockaddr *)&sa, len)
                   : connect(fd, (struct sockaddr *)&sa, len);
    if (r != 0) {
      close(fd);
      fd = -1;
    }
  }
  return fd;
}

/* Listen, connect and exchange at "@name": the address is reported as
 * given, no file appears (the kernel lists the name as abstract), a
 * second listener on the name is MP_EEXIST, and when the listener goes
 * the name is free again with nothing to clean up. */
Test(listener, abstract_round_trip, .timeout = TS_TIMEOUT) {
  char name[96];
  abstract_name(name, sizeof name, "abs");
  mp_listener *l, *other;
  cr_assert_eq(mp_listener_new(&l, name, MP_AF_DEFAULT, 0, key, strlen(key)),
               0, "%s", mp_last_error_message());
  cr_expect_eq(mp_listener_family(l), MP_AF_LOCAL);
  cr_expect_str_eq(mp_listener_address(l), name);
  struct stat st;
  errno = 0;
  cr_expect_neq(stat(name, &st), 0, "no file \"%s\"", name);
  cr_expect_eq(errno, ENOENT);
  cr_expect(listed(name), "the kernel lists %s as abstract", name);
  client_job j = {name, MP_AF_DEFAULT, key, NULL, 0, 0, -1, 0, NULL};
  ts_thread *t = ts_thread_start(client_main, &j);
  serve_one(l);
  ts_thread_join(t);
  cr_expect_eq(j.rc, 0, "client: %s", mp_err_name(j.rc));
  cr_expect(j.echo_ok);
  cr_expect_eq(mp_listener_new(&other, name, MP_AF_LOCAL, 0, NULL, 0),
               MP_EEXIST, "%s", mp_last_error_message());
  mp_listener_free(l);
  cr_expect(!listed(name), "gone with its listener");
  mp_conn *c;
  cr_expect_eq(mp_client(&c, name, MP_AF_DEFAULT, NULL, 0, 5.0), MP_ENOENT,
               "%s", mp_last_error_message());
  cr_assert_eq(mp_listener_new(&l, name, MP_AF_LOCAL, 0, NULL, 0), 0,
               "free again: %s", mp_last_error_message());
  mp_listener_free(l);
  cr_expect_neq(stat(name, &st), 0, "still no file");
}

/* A colon does not make "@name" a TCP address; malformed names. */
Test(listener, abstract_names_checked) {
  char name[96];
  abstract_name(name, sizeof name, "colon:1");
  mp_listener *l;
  cr_assert_eq(mp_listener_new(&l, name, MP_AF_DEFAULT, 0, NULL, 0), 0, "%s",
               mp_last_error_message());
  cr_expect_eq(mp_listener_family(l), MP_AF_LOCAL);
  mp_listener_free(l);
  cr_expect_eq(mp_listener_new(&l, "@", MP_AF_DEFAULT, 0, NULL, 0),
               MP_EINVAL, "an empty name");
  char longest[110], too_long[111];
  memset(longest, 'n', sizeof longest - 1);
  longest[0] = '@';
  longest[sizeof longest - 1] = '\0';
  memcpy(too_long, longest, sizeof longest);
  strcat(too_long, "n");
  cr_expect_eq(mp_listener_new(&l, too_long, MP_AF_LOCAL, 0, NULL, 0),
               MP_EINVAL, "108 bytes after the '@'");
  longest[108] = '\0'; /* 107 bytes after the '@': the most there is */
  cr_assert_eq(mp_listener_new(&l, longest, MP_AF_LOCAL, 0, NULL, 0), 0,
               "%s", mp_last_error_message());
  cr_expect_str_eq(mp_listener_address(l), longest);
  mp_listener_free(l);
}

/* last_accepted names a client's own socket when it bound one: an
 * abstract name, or a path. */
Test(listener, last_accepted_names_a_bound_client, .timeout = TS_TIMEOUT) {
  char name[96], peer[96], path[256];
  abstract_name(name, sizeof name, "lastl");
  abstract_name(peer, sizeof peer, "lastp");
  snprintf(path, sizeof path, "/tmp/mproc-test-peer-%lld.sock",
           (long long)mp_getpid());
  unlink(path);
  mp_listener *l;
  cr_assert_eq(mp_listener_new(&l, name, MP_AF_LOCAL, 0, NULL, 0), 0);
  const char *as[3] = {peer, path, NULL};
  for (int i = 0; i < 3; i++) {
    int fd = raw_local_socket(name, as[i]);
    cr_assert_geq(fd, 0, "connect: %s", strerror(errno));
    mp_conn *c;
    cr_assert_eq(mp_listener_accept(l, 20.0, &c), 0, "%s",
                 mp_last_error_message());
    char buf[300];
    cr_assert_eq(mp_listener_last_accepted(l, buf, sizeof buf), 0);
    cr_expect_str_eq(buf, as[i] ? as[i] : "");
    mp_conn_free(c);
    close(fd);
  }
  unlink(path);
  mp_listener_free(l);
}

static void check_child_client_abstract(const char *method) {
  char name[96];
  abstract_name(name, sizeof name, method);
  check_child_client(method, name);
}
FOR_EACH_METHOD(check_child_client_abstract)

/* Become nobody: 0, or -1. */
static int become_nobody(void) {
  return setgroups(0, NULL) == 0 && setgid(65534) == 0 &&
                 setuid(65534) == 0 && getuid() == 65534
             ? 0
             : -1;
}

/* As another user, connect to the abstract name (a raw socket, with no
 * check of its own): 0 once connected, so that the connection waits in
 * the listener's queue. */
static int intrude(const mp_args *a) {
  if (become_nobody() != 0)
    return 1;
  int fd = raw_local_socket(mp_args_str(a, 0), NULL);
  return fd >= 0 ? 0 : 2;
}

/* An abstract name has no permissions: accept drops another user's
 * client (Python takes it), and the next client of ours gets in. */
static void check_other_users_dropped(const char *method) {
  if (geteuid() != 0)
    cr_skip_test("needs root to become another user");
  char name[96];
  abstract_name(name, sizeof name, "drop");
  mp_listener *l;
  cr_assert_eq(mp_listener_new(&l, name, MP_AF_LOCAL, 0, NULL, 0), 0);
  mp_args *a;
  mp_args_pack(&a, "s", name);
  mp_process *p = ts_start(method, intrude, a);
  mp_args_free(a);
  cr_assert_eq(ts_join(p), 0, "the intruder connected");
  mp_process_free(p);
  mp_conn *c = NULL;
  cr_expect_eq(mp_listener_accept(l, 0.2, &c), MP_ETIMEDOUT,
               "another user's client was dropped");
  cr_expect_null(c);
  char buf[300];
  cr_expect_eq(mp_listener_last_accepted(l, buf, sizeof buf), MP_ESTATE);
  client_job j = {name, MP_AF_DEFAULT, NULL, NULL, 0, 0, -1, 0, NULL};
  ts_thread *t = ts_thread_start(client_main, &j);
  serve_one(l);
  ts_thread_join(t);
  cr_expect(j.echo_ok);
  mp_listener_free(l);
}
FOR_EACH_METHOD(check_other_users_dropped)

/* As another user, listen at the abstract name, say so, and hold it
 * until the pipe ends. */
static int squat(const mp_args *a) {
  mp_conn *c = mp_args_conn(a, 1);
  if (become_nobody() != 0)
    return 1;
  mp_listener *l;
  if (mp_listener_new(&l, mp_args_str(a, 0), MP_AF_LOCAL, 0, NULL, 0) != 0)
    return 2;
  if (mp_conn_send_bytes(c, "ready", 5) != 0)
    return 3;
  void *p;
  size_t n;
  int rc = mp_conn_recv_bytes(c, &p, &n);
  mp_listener_free(l);
  return rc == MP_EEOF ? 0 : 4;
}

/* A name another user took first: mp_client refuses it with MP_EPERM
 * rather than talk to a stranger. */
static void check_squatter_refused(const char *method) {
  if (geteuid() != 0)
    cr_skip_test("needs root to become another user");
  char name[96];
  abstract_name(name, sizeof name, "squat");
  mp_conn *mine, *theirs;
  cr_assert_eq(mp_pipe(1, &mine, &theirs), 0);
  mp_args *a;
  mp_args_pack(&a, "s", name);
  mp_args_add_conn(a, theirs);
  mp_process *p = ts_start(method, squat, a);
  mp_args_free(a);
  mp_conn_free(theirs);
  char buf[8];
  size_t n = 0;
  cr_assert_eq(mp_conn_recv_bytes_into(mine, buf, sizeof buf, &n), 0,
               "the squatter listens");
  mp_conn *c = NULL;
  cr_expect_eq(mp_client(&c, name, MP_AF_DEFAULT, NULL, 0, 5.0), MP_EPERM,
               "%s", mp_last_error_message());
  cr_expect_null(c);
  mp_conn_free(mine);
  cr_expect_eq(ts_join(p), 0, "%s", mp_process_error(p));
  mp_process_free(p);
}
FOR_EACH_METHOD(check_squatter_refused)

#else
/* No abstract namespace here (Windows, macOS, the BSDs): "@name" is
 * MP_ENOTSUP, with MP_AF_DEFAULT and MP_AF_LOCAL alike, and never turns
 * into a pipe name or a file. */
Test(listener, abstract_names_not_supported) {
  char name[96];
  abstract_name(name, sizeof name, "abs");
  mp_listener *l = NULL;
  cr_expect_eq(mp_listener_new(&l, name, MP_AF_DEFAULT, 0, NULL, 0),
               MP_ENOTSUP);
  cr_expect(strstr(mp_last_error_message(), "Linux") != NULL, "%s",
            mp_last_error_message());
  cr_expect_null(l);
  cr_expect_eq(mp_listener_new(&l, name, MP_AF_LOCAL, 0, NULL, 0),
               MP_ENOTSUP);
  mp_conn *c = NULL;
  cr_expect_eq(mp_client(&c, name, MP_AF_DEFAULT, NULL, 0, 1.0), MP_ENOTSUP);
  cr_expect_eq(mp_client(&c, name, MP_AF_LOCAL, NULL, 0, 1.0), MP_ENOTSUP);
  cr_expect_null(c);
}
#endif
