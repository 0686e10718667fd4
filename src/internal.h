/*
 * internal.h - what the common code files share.  Not installed.
 *
 * Internal cross-file names start with mp__ (functions) or mpi_ (the
 * platform interface in platform.h).
 */
#ifndef MPROC_INTERNAL_H
#define MPROC_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc.h"
#include "platform.h"

/* Thread-local storage: C11 where the compiler has it. */
#if defined(_MSC_VER)
#  define MP_THREAD_LOCAL __declspec(thread)
#else
#  define MP_THREAD_LOCAL _Thread_local
#endif

/* Set this thread's last error (code and message) and return code. */
int mp__error(int code, const char *fmt, ...) MP_PRINTF(2, 3);
int mp__verror(int code, const char *fmt, va_list ap);

/* Bounded string copy that always terminates (cap > 0). */
void mp__strlcpy(char *dst, const char *src, size_t cap);
char *mp__strdup(const char *s);

/* Validate a timeout: MP_FOREVER or >= 0. */
int mp__check_timeout(double timeout);
/* Seconds left until an mpi_now() deadline, never negative; MP_FOREVER
 * for no deadline (negative). */
double mp__time_left(double deadline);

/* address.c: split a TCP address "host:port" or "[host]:port" (IPv6
 * literal) into host (cap bytes, brackets removed; may come out empty)
 * and port (0-65535).  0 or MP_EINVAL. */
int mp__split_host_port(const char *address, char *host, size_t cap,
                        unsigned *port);

/* ---- args.c --------------------------------------------------------- */

/* Object reference items: `kind` says which mproc type it is, `blob` is
 * that type's own encoding, which names the OS handles it needs by their
 * index in the tuple's handle table (mp__args_add_handle).  `obj` is the
 * object in this process (borrowed).  A child receives the handles
 * (mpi_start_info.handles) and mp__args_adopt opens every object from its
 * blob; the tuple then owns them. */
enum { MP__OBJ_CONN = 1, MP__OBJ_SHARED = 2, MP__OBJ_PROXY = 3 };
int mp__args_add_object(mp_args *a, uint32_t kind, const void *blob,
                        size_t n, void *obj);
int mp__args_get_object(const mp_args *a, size_t i, uint32_t *kind,
                        const void **blob, size_t *n);
void *mp__args_object(const mp_args *a, size_t i, uint32_t kind);
int mp__args_add_handle(mp_args *a, mpi_fd h, uint32_t *index);
const mpi_fd *mp__args_handles(const mp_args *a, size_t *n);
int mp__args_has_objects(const mp_args *a);
int mp__args_holds(const mp_args *a, const void *obj);
int mp__args_adopt(mp_args *a, mpi_fd *handles, size_t n);
/* A new tuple (borrowing) with each object added again as it is now: its
 * handle table names the handles the objects hold at this moment.  For a
 * received tuple (whose table went to its objects) and at a start, so a
 * closed object is MP_ECLOSED rather than a child without its handle. */
int mp__args_rebuild(mp_args **out, const mp_args *a);
/* Append items by format (mp_args_pack's letters, 'n' and 'P'); a new
 * tuple so built (NULL and the error on failure). */
int mp__args_vpack(mp_args *a, const char *fmt, va_list *ap);
int mp__args_vnew(mp_args **out, const char *fmt, va_list *ap);

/* Objects through a connection or a queue (handoff.c).  pack: the
 * message for a tuple with objects (malloc'd; *msg NULL when the tuple
 * has none: send its own bytes), and the id under which its handles wait
 * for the receiver (0: none); if the message then does not go, withdraw
 * the id.  unpack: the tuple a message holds, its objects opened from
 * handles fetched from their sender (MP_ENOENT when the sender has ended
 * or the message was received already). */
int mp__handoff_pack(const mp_args *a, void **msg, size_t *len, uint64_t *id);
void mp__handoff_withdraw(uint64_t id);
int mp__handoff_unpack(const void *p, size_t n, mp_args **out);
void mp__handoff_fork_child(void);
/* Raw handles for any number of receivers (an array map's segments,
 * pool.c): offer keeps copies under a ticket (malloc'd) that every claim
 * may use until the id is withdrawn; claim gets handles of its own
 * (*out malloc'd, *n of them). */
int mp__handoff_offer(const mpi_fd *h, size_t n, unsigned char **ticket,
                      size_t *tn, uint64_t *id);
int mp__handoff_claim(const unsigned char *t, size_t tn, mpi_fd **out,
                      size_t *n);

/* conn.c: a connection from its blob; takes its handle out of the table
 * (sets it to MPI_BAD_FD). */
int mp__conn_open(const void *blob, size_t n, mpi_fd *handles, size_t nh,
                  void **out);
/* conn.c: a duplex connection over a stream (taken: closed on failure). */
int mp__conn_wrap(mpi_fd h, mp_conn **out);
/* conn.c: receive one message of at most cap bytes (larger: MP_ERANGE,
 * left unread), every byte of it before `deadline` (mpi_now() scale; < 0:
 * none) -- a peer that sends part of a frame and falls silent cannot hold
 * the caller.  stop (may be NULL) is asked every 0.1 s: non-zero ends the
 * wait with MP_ECLOSED.  After a timeout or a stop inside a message the
 * connection is out of step: later receives fail with MP_EPROTO. */
int mp__conn_recv_bounded(mp_conn *c, void *buf, size_t cap, size_t *n,
                          double deadline, int (*stop)(void *), void *arg);
/* conn.c: mp_conn_recv_bytes that stop (as above) can abandon. */
int mp__conn_recv_stoppable(mp_conn *c, void **out, size_t *n,
                            int (*stop)(void *), void *arg);
/* auth.c: the server's side of the mutual handshake (challenge, then
 * answer), bounded as a whole by `deadline`, abandoned when stop says so
 * (as for mp__conn_recv_bounded).  admit (may be NULL) is asked once the
 * peer has proved the key: non-zero refuses it (MP_EAUTH) before this
 * side answers, so the peer's own handshake fails at once. */
int mp__conn_handshake_server(mp_conn *c, const void *key, size_t key_n,
                              double deadline, int (*stop)(void *),
                              int (*admit)(void *), void *arg);
/* listener.c: mp_client, and *cause (may be NULL): what ended a failed
 * handshake (MP_EEOF when the server closed the connection in it, as a
 * stopping one does; MP_EAUTH when it refused our key; ...), 0 else. */
int mp__client(mp_conn **out, const char *address, int family,
               const void *authkey, size_t authkey_n, double timeout,
               int *cause);
/* conn.c: spin up to `seconds` until c is readable: 1, or 0 (see conn.c). */
int mp__conn_spin(mp_conn *c, double seconds);
/* shared.c: how long waits spin before sleeping: MPROC_SPIN_US in the
 * environment (microseconds; 0 disables), default 50 us, 0 on one CPU. */
double mp__spin_seconds(void);
/* In a forked child: close the connections not in `keep` (may be NULL). */
void mp__conn_fork_child(const mp_args *keep);
/* Mark ready[i] for each handle of a connection with bytes read ahead;
 * returns how many it marked. */
int mp__conn_buffered(const mp_handle *h, size_t n, int *ready);

/* The encoded bytes of a tuple, and a tuple decoded (validated) from
 * bytes: MP_EPROTO when malformed. */
const void *mp__args_data(const mp_args *a, size_t *n);
int mp__args_from_bytes(mp_args **out, const void *p, size_t n);
/* Reuse a tuple of plain values: empty it / refill it from bytes. */
void mp__args_reset(mp_args *a);
int mp__args_load(mp_args *a, const void *data, size_t n);
/* Append item i of src; append a call's value (its one value, None, or
 * the whole tuple when it has several). */
int mp__args_add_item_of(mp_args *a, const mp_args *src, size_t i);
int mp__args_add_value_of(mp_args *a, const mp_args *res);
/* Append n bytes of encoded items (validated); a slice borrowing the
 * objects; the encoded items after the header. */
int mp__args_extend(mp_args *a, const void *data, size_t n, size_t count);
int mp__args_reserve(mp_args *a, size_t bytes, size_t count);
int mp__args_slice(const mp_args *a, size_t start, size_t count,
                   mp_args **out);
const void *mp__args_items(const mp_args *a, size_t *n);
int mp__args_range(const mp_args *a, size_t first, size_t count,
                   const void **p, size_t *n);
/* Forget this thread's last error message. */
void mp__clear_error(void);

/* ---- process.c / boot.c --------------------------------------------- */
/* This process's authkey for a call that needs one when none was given:
 * 0, or MP_EAUTH when there is none (the random source failed; drawn
 * again here in case it works now).  *n: its length. */
int mp__default_authkey(unsigned char *key, size_t cap, size_t *n);

/* The exit work of a child (join/terminate its own children, flush
 * stdio, send the exit record); runs once. */
void mp__child_finish(void);

/* Set when this process is a child; the message mp_set_error last
 * recorded, sent to the parent in the exit record. */
void mp__remember_exit_message(const char *msg);

/* ---- thread.c -------------------------------------------------------- */

/* mp_main_guard: the calling thread is the program's main thread. */
void mp__thread_mark_main(void);
/* At exit (start of mp__child_finish): join the non-daemonic mp_threads
 * still running. */
void mp__threads_finish(void);
/* In a forked child: forget the parent's threads; the forking thread
 * becomes the main thread. */
void mp__threads_fork_child(void);
/* pool.c: at exit, terminate the pools still running; in a forked child,
 * forget the parent's pools. */
void mp__pools_finish(void);
void mp__pools_fork_child(void);

/* finalize.c: at exit, the finalizers with an exit priority >= min, then
 * all the rest; in a child before its target, a fresh registry and the
 * after-fork callbacks. */
void mp__finalizers_run(int min);
void mp__finalizers_run_all(void);
void mp__finalizers_forget(void);
void mp__child_hooks(void);

#endif /* MPROC_INTERNAL_H */
