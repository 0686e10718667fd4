/*
 * manager.h - what the Manager's client (manager.c), server (mgr_server.c)
 * and object types (mgr_types.c) share.  Not installed.
 *
 * Wire protocol, over an authenticated mp_conn (one message each way):
 *
 *   request:  u8 op | u8 0 | u16 0 | u32 name_len | i64 id | i64 tid |
 *             name_len bytes (method or typeid, no NUL) | mp_args tuple
 *   reply:    i64 status | (status == 0: an mp_args tuple of results;
 *                           else: the error message, no NUL)
 *
 * All integers little-endian.  op: MGR_HELLO (name = the 16-byte session
 * id; must come first on a connection), MGR_CREATE (name = typeid, args =
 * constructor arguments; result: the id), MGR_CALL (id, name = method,
 * tid = the calling thread, args), MGR_INCREF / MGR_DECREF (id; DECREF's
 * args: how many references), MGR_SHUTDOWN.
 *
 * A proxy travels as an MP_ARG_OBJECT item of kind MP__OBJ_PROXY whose
 * blob is an encoded tuple (typeid, id, address, authkey).  Between a
 * client and its server the address and key are left empty (the key
 * never crosses the network); a child process gets them whole through
 * its own bootstrap pipe.
 */
#ifndef MPROC_MANAGER_H
#define MPROC_MANAGER_H

#include <stdarg.h>

#include "internal.h"

enum { MGR_HELLO = 1, MGR_CREATE = 2, MGR_CALL = 3, MGR_INCREF = 4,
       MGR_DECREF = 5, MGR_SHUTDOWN = 6 };

#define MGR_HEADER 24
#define MGR_SID_LEN 16
#define MGR_NAME_MAX 256
#define MGR_TYPEID_MAX 64

/* Little-endian 64-bit helpers. */
void mp__put_i64(unsigned char *p, int64_t v);
int64_t mp__get_i64(const unsigned char *p);

/* The blob of a proxy item: encode / decode.  address and key may be
 * empty.  Decoded strings point into *holder (free it after use). */
int mp__proxy_blob(mp_args **out, const char *type_id, int64_t id,
                   const char *address, const void *key, size_t key_n);
int mp__proxy_blob_parse(const void *blob, size_t n, mp_args **holder,
                         const char **type_id, int64_t *id,
                         const char **address, const void **key,
                         size_t *key_n);

/* ---- the server (mgr_server.c) ------------------------------------ */

typedef struct mgr_server mgr_server;
typedef struct mgr_session mgr_session;

/* What a method handler sees. */
typedef struct mgr_call {
  mgr_server *srv;
  mgr_session *session;
  mp_conn *conn;        /* the caller's connection (NULL when fuzzing) */
  int64_t tid;          /* the calling thread in the client */
  const mp_args *args;
  mp_args *result;
} mgr_call;

/* A managed object; `data` belongs to its type. */
typedef struct mgr_obj mgr_obj;
typedef int (*mgr_method_fn)(mgr_call *call, mgr_obj *obj);

typedef struct mgr_method {
  const char *name;
  mgr_method_fn fn;
} mgr_method;

typedef struct mgr_type {
  const char *type_id;
  int (*create)(mgr_call *call, mgr_obj *obj);
  void (*destroy)(mgr_server *srv, mgr_obj *obj);
  const mgr_method *methods;
  size_t n_methods;
  /* Custom types: the user's table (create/destroy/methods through it). */
  const mp_manager_type *user;
  /* Locks: release what a dead session holds (may be NULL). */
  void (*owner_died)(mgr_server *srv, mgr_obj *obj, mgr_session *s);
} mgr_type;

struct mgr_obj {
  int64_t id;
  const mgr_type *type;
  int64_t refs; /* proxies' references + values that hold it */
  void *data;
};

/* The built-in types (mgr_types.c), NULL-terminated; the Pool
 * (mgr_pool.c) is one of them. */
extern const mgr_type *const mp__mgr_builtin_types[];
extern const mgr_type mp__mgr_pool_type;

/* Server services for the types (the server's lock is held in every
 * create/method/destroy call). */
/* Wait for the server's condition up to the deadline (mpi_now() based;
 * negative: none): 0 to re-check, MP_ETIMEDOUT, or MP_ECLOSED when the
 * caller went away or the server is stopping. */
int mp__mgr_wait(mgr_call *call, double deadline);
/* 0, or MP_ECLOSED when the caller went away or the server is stopping
 * (the lock need not be held). */
int mp__mgr_check(mgr_call *call);
/* Release and take again the server's lock around a long step of a
 * method (a managed Pool's map): pin the object first (obj->refs++, and
 * mp__mgr_unref once relocked), since others may drop theirs meanwhile. */
void mp__mgr_unlock(mgr_call *call);
void mp__mgr_relock(mgr_call *call);
/* Wake every waiter (state changed). */
void mp__mgr_notify(mgr_server *srv);
/* Values that may hold proxies: check and hold (store) / drop (remove).
 * hold returns MP_ETYPE for an object item that is not a proxy of this
 * server, MP_ENOENT for one whose object is gone. */
int mp__mgr_hold(mgr_server *srv, const void *item, size_t n);
void mp__mgr_drop(mgr_server *srv, const void *item, size_t n);
/* An object by id (NULL if gone), and an extra reference to it. */
mgr_obj *mp__mgr_find(mgr_server *srv, int64_t id);
void mp__mgr_unref(mgr_server *srv, mgr_obj *obj);
/* Append a raw item to a result; for a proxy item this takes a
 * reference for the receiving session. */
int mp__mgr_result_item(mgr_call *call, const void *item, size_t n);
/* A session's identity for lock ownership. */
int mp__mgr_session_alive(const mgr_session *s);

/* Handle one request (the bytes of one message) for a session, filling
 * *reply (malloc'd) -- what a connection thread does; also the fuzz
 * target's entry.  Returns 1 when the request asked the server to stop. */
int mp__mgr_handle(mgr_server *srv, mgr_session **session, mp_conn *conn,
                   const void *req, size_t n, void **reply, size_t *reply_n);
/* A server without a listener (fuzzing): new / free; a session's end
 * (its last connection gone: what it held is released). */
int mp__mgr_server_bare(mgr_server **out);
void mp__mgr_server_bare_free(mgr_server *srv);
void mp__mgr_session_close(mgr_server *srv, mgr_session *s);

/* mp_manager_start's server process: its arguments (the options, the
 * registry, the pipe the address goes back through) and its target. */
int mp__mgr_encode_start(mp_args *a, const mp_manager_options *opt,
                         const void *key, size_t key_n, mp_conn *report);
int mp__mgr_server_main(const mp_args *a);

/* ---- the client (manager.c) --------------------------------------- */

int mp__proxy_open(const void *blob, size_t n, void **out);
void mp__proxy_retain(void *p);
void mp__proxy_release(void *p);

/* args.c: an item's raw bytes; append one raw item (objects allowed). */
void mp__args_item_raw(const mp_args *a, size_t i, const void **p,
                       size_t *n);
int mp__args_add_raw(mp_args *a, const void *p, size_t n);
/* The order of two raw items, as Python's '<' (list.sort): 0 and *out
 * negative, 0 or positive, or MP_ETYPE. */
int mp__args_item_order(const void *a, const void *b, int *out);
/* Set the object item i stands for (the tuple then holds it). */
void mp__args_set_object(mp_args *a, size_t i, void *obj);

/* value.c: the typecodes (size 0 when unknown) and element access. */
size_t mp__typecode_size(char code);
int mp__typecode_is_float(char code);
int mp__elem_get_int(char code, const void *p, int64_t *out);
int mp__elem_set_int(char code, void *p, int64_t x);
int mp__elem_get_double(char code, const void *p, double *out);
int mp__elem_set_double(char code, void *p, double x);

#endif /* MPROC_MANAGER_H */
