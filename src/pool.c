/*
 * pool.c - process and thread pools (Python's Pool and ThreadPool).
 *
 * Shape.  Each worker has an inbox (an mp_queue only it reads); all
 * workers put their results on one results queue that a handler thread in
 * the pool's process reads.  The parent decides which worker runs what:
 * a chunk of calls goes to the worker with the fewest chunks outstanding,
 * and each worker has at most `prefetch` of them, adapted to how long
 * chunks take (one when they take long, so that a free worker always gets
 * the next task, as in Python; up to PREFETCH_MAX when they are short).
 *
 * Never a hang.  Because a worker reads its inbox in order and works on
 * one chunk at a time, the parent knows what each worker holds: the
 * chunks it has taken from its inbox (the queue counts them exactly, also
 * when the worker died halfway through taking one) and not yet answered.
 * A watcher thread waits on the workers' sentinels and posts a death
 * notice on the results queue, behind everything the worker had put
 * there; the handler then fails the chunk the worker held with
 * MP_EWORKERDIED and starts a replacement that reads the same inbox.
 *
 * Who reads the results.  The handler thread, except while a caller spins
 * in mp_async_wait: that caller reads them itself (one hop less; see
 * steal_one), and the handler parks, or naps after a round trip while
 * the pool is idle.  Either way a message is taken and handled under the
 * pool's lock, in the order it was put, and callbacks run in the handler.
 *
 * Threads of the pool's process: the handler (results, deaths, replacing
 * workers), the watcher (process kind) and the feeder, which puts chunks
 * too large to go in with one non-blocking put (everything else is put
 * by whichever thread submits or completes work, without blocking).  No
 * thread blocks on a put while holding the pool's lock, and the handler
 * never blocks on a put at all, so a full queue cannot deadlock.
 *
 * Task message: task_hdr, the function's module, then an encoded tuple
 * whose items are the calls' arguments (F_STAR: each item is a tuple of
 * one call's arguments; otherwise each item is one call's only argument).
 * Result message: res_hdr, the encoded tuple of the calls' values
 * (F_TUPLES: each call's result tuple; otherwise its value), then one
 * err_rec per failed call.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "process.h"
#include "shared.h"

#define INBOX_BUFFER (256u * 1024u)
#define RESULTS_BUFFER (1024u * 1024u)
#define DIRECT_MAX (INBOX_BUFFER / 4 - 64u) /* one record: never blocks */
#define PREFETCH_MAX 64
#define HANDLER_NAP 0.001 /* longest a lazy handler leaves results unread */
#define HANDLER_BATCH 16  /* messages the handler takes per lock */
#define LATENCY_TARGET 0.0005 /* queued work per worker, in seconds */
#define START_DEATHS_MAX 5    /* workers dying before any result: broken */
#define KERNELS_N 8           /* array kernels whose speed is kept */
#define ARRAY_SPIN 2e-3       /* a worker watches its inbox this long after
                                 an array chunk before it sleeps */
#define CHUNK_TIME_MIN 30e-6  /* an array chunk's least run time */
#define SPARE_N 8             /* task message buffers kept for reuse, */
#define SPARE_MAX (32u << 20) /* up to this many bytes in all */

enum { MSG_TASK = 1, MSG_STOP = 2 };
enum { RES_CHUNK = 1, RES_INIT_FAILED = 2, RES_DEATH = 3, RES_READY = 4 };
enum { F_STAR = 1, F_TUPLES = 2, F_ARRAY = 4 };
enum { P_RUN = 0, P_CLOSE = 1, P_TERMINATE = 2 };
enum { W_NONE = 0, W_RUNNING = 1, W_DEAD = 2, W_GONE = 3 };
enum { J_APPLY = 1, J_MAP = 2, J_IMAP = 3, J_ARRAY = 4 };

typedef struct task_hdr {
  uint32_t kind, flags;
  uint64_t seq, offset;
  uint32_t module_len, ncalls;
} task_hdr;

typedef struct res_hdr {
  uint32_t kind, worker;
  uint64_t seq;
  uint32_t gen, nerrors;
  int32_t status; /* RES_INIT_FAILED */
  uint32_t values_len;
  double elapsed;
} res_hdr;

typedef struct err_rec {
  uint32_t call;
  int32_t status;
  uint32_t len; /* message bytes that follow */
  uint32_t pad;
} err_rec;

/* ---- jobs, chunks and workers ------------------------------------------ */

typedef struct ientry {
  int ready, rc, status;
  int skip;             /* a call of a failed chunk: not yielded (Python) */
  size_t index;
  char *message;
  mp_args *result;
  struct ientry *next;
} ientry;

typedef struct part {
  unsigned char *bytes;
  size_t len, count, cap;
} part;

typedef struct mp__job {
  int type;
  mp_pool *pool;
  mp_async *async;      /* J_APPLY, J_MAP */
  mp_imap *it;          /* J_IMAP (NULL once the iterator is freed) */
  size_t ncalls, nchunks;
  size_t chunks_left;   /* not yet answered (or failed) */
  size_t chunks_out;    /* queued or held by a worker */
  part *parts;          /* J_MAP: chunks answered ahead of their turn */
  mp_args *all;         /* J_MAP: the results so far, in order */
  size_t next_part;     /* J_MAP: the chunk `all` needs next */
  size_t fail_part;     /* J_MAP: the first failed chunk (SIZE_MAX: none) */
  int fail_rc, fail_status;
  char *fail_msg;       /* its error, reported once the chunks before it
                           have answered (the first failure in input order) */
  int done;             /* J_APPLY/J_MAP/J_ARRAY: the async is completed */
  mp__arrjob *arr;      /* J_ARRAY (pool_array.c) */
  void (*kernel)(void); /* J_ARRAY */
  int counter;          /* J_ARRAY: the workers take chunks by a counter in
                           shared memory; a "chunk" here is one worker's
                           message, answered once it finds none left */
} job;

typedef struct chunk {
  job *job;
  size_t index;         /* within the job */
  size_t first, ncalls; /* calls [first, first + ncalls) */
  uint64_t seq;
  uint64_t sent;        /* position in the worker's inbox */
  unsigned char *msg;
  size_t len, cap;
  struct chunk *next;
} chunk;

typedef struct worker {
  int state;
  uint32_t gen;
  mp_queue *inbox;
  mp_process *proc;     /* process kind */
  mpi_thread *thread;   /* thread kind */
  int64_t pid;
  int death_posted;     /* the watcher has seen its sentinel */
  int feeding;          /* the feeder is putting a chunk in its inbox */
  uint64_t sent;        /* messages put in the inbox, ever */
  int assigned;         /* chunks given to this incarnation */
  int ready;            /* this incarnation came up (initializer done) */
  int outstanding;
  chunk *head, *tail;   /* given, not yet answered */
} worker;

struct mp_pool {
  int kind, nworkers, maxtasks;
  mp_context *ctx;
  mp_target_fn init;
  mp_args *initargs;
  int64_t owner_pid;
  int number;           /* for worker names: "PoolWorker-<number>-<i>" */

  mpi_mutex *mu;        /* everything below */
  mpi_cond *feeder_cv;
  int state;
  int broken;
  char *broken_msg;
  int stops_sent;
  int finished;         /* every worker is gone: join may return */
  int stopping;         /* the helper threads should end */
  int joined;
  int start_deaths;
  double chunk_time;    /* moving average of a chunk's run time */
  struct {              /* each kernel's run time per item, averaged */
    void (*fn)(void);
    double t;
  } item_time[KERNELS_N];
  int item_next;        /* the slot a new kernel takes */
  int prefetch;
  uint64_t next_seq;
  chunk *backlog, *backlog_tail;
  worker *w;
  mp_queue *results;
  mpi_thread *handler, *watcher, *feeder;
  mpi_cond *steal_cv;   /* the handler, parked while callers read */
  int parked;           /* the handler waits on steal_cv */
  volatile uint32_t stealers; /* callers reading results (changed under mu) */
  volatile uint32_t pins;     /* callers that may still touch the pool */
  volatile uint32_t has_deferred;
  volatile uint32_t lazy;     /* the handler may nap (see steal_end) */
  struct done_list *deferred; /* completions with callbacks, for the handler */
  mpi_fd wake_r, wake_w; /* wakes the watcher */
  volatile uint64_t handler_tid; /* callbacks run in this thread (atomics) */
  mpi_mutex *scratch_mu;
  mp__seg *scratch;     /* an array map's copies, kept for the next one
                           (under scratch_mu) */
  mp__seg *ctl;         /* array maps' counters, a slot each (scratch_mu) */
  uint32_t ctl_used[MP__CTL_SLOTS / 32];
  unsigned char *spare[SPARE_N]; /* task message buffers, for reuse */
  size_t spare_cap[SPARE_N], spare_total;
  void (*fn_cached)(void);
  char fn_module[1024];
  uint64_t fn_offset;
  mp_pool *next_pool;   /* every live pool of this process */
};

struct mp_imap {
  mp_pool *pool;
  job *job;
  int ordered;
  mp_task_fn fn;
  mp_input_fn next;
  void *ctx;
  size_t chunksize, window;
  int input_done, input_rc, input_rc_given;
  size_t submitted, yielded;
  ientry *ring;         /* ordered: window entries */
  ientry *fifo, *fifo_tail;
  mp_args *scratch;
};

static mp_pool *all_pools;
static int pool_counter;

/* ---- the async lock ------------------------------------------------------ */

static mpi_mutex *async_mu;
static mpi_cond *async_cv;

static void async_init(void) {
  mpi_lock();
  if (async_mu == NULL) {
    if (mpi_mutex_new(&async_mu) != 0 || mpi_cond_new(&async_cv) != 0)
      abort(); /* out of memory at the first pool: nothing sensible left */
  }
  mpi_unlock();
}

void mp__async_lock(void) {
  if (async_mu == NULL)
    async_init();
  mpi_mutex_lock(async_mu);
}

void mp__async_unlock(void) { mpi_mutex_unlock(async_mu); }

static void handler_wake(mp_pool *p);

int mp__async_sleep(double deadline) {
  /* Whatever this waits for may need a pool's handler to read it. */
  mpi_lock();
  for (mp_pool *p = all_pools; p != NULL; p = p->next_pool)
    handler_wake(p);
  mpi_unlock();
  double t = -1.0;
  if (deadline >= 0) {
    t = deadline - mpi_now();
    if (t <= 0)
      return MP_ETIMEDOUT;
  }
  return mpi_cond_wait(async_cv, async_mu, t);
}

static void async_broadcast(void) { mpi_cond_broadcast(async_cv); }

static mp_async *async_new(mp_result_cb cb, mp_error_cb ecb, void *arg) {
  mp_async *a = calloc(1, sizeof *a);
  if (a == NULL)
    return NULL;
  a->refs = 2;
  a->cb = cb;
  a->ecb = ecb;
  a->arg = arg;
  return a;
}

static void async_unref(mp_async *a) {
  mp__async_lock();
  int last = --a->refs == 0;
  mp__async_unlock();
  if (last) {
    mp_args_free(a->result);
    free(a->message);
    free(a);
  }
}

/* Complete an async (no pool lock held): callbacks first, as in Python,
 * then the waiters; the pool's reference goes. */
static void async_complete(mp_async *a, int rc, int status,
                           const char *message, mp_args *result) {
  if (rc == 0 && a->cb != NULL)
    a->cb(result, a->arg);
  else if (rc != 0 && a->ecb != NULL)
    a->ecb(rc == MP_ETASK ? status : rc, message ? message : mp_strerror(rc),
           a->arg);
  mp__async_lock();
  a->rc = rc;
  a->status = status;
  a->message = message ? mp__strdup(message) : NULL;
  a->result = result;
  a->state = MP__ASYNC_DONE;
  a->job = NULL;
  a->pool = NULL;
  mp__store32(&a->done_flag, 1);
  async_broadcast();
  mp__async_unlock();
  async_unref(a);
}

/* An async result that no pool completes (a managed Pool's call made
 * from a thread of the client, manager.c): the caller's reference and the
 * completer's, which mp__async_finish gives up. */
mp_async *mp__async_detached(mp_result_cb cb, mp_error_cb ecb, void *arg) {
  return async_new(cb, ecb, arg);
}

void mp__async_finish(mp_async *a, int rc, const char *message,
                      mp_args *result) {
  async_complete(a, rc, rc, rc != 0 ? message : NULL, rc == 0 ? result : NULL);
  if (rc != 0)
    mp_args_free(result);
}

/* A completion to run once the pool lock is released. */
typedef struct done_item {
  mp_async *a;
  int rc, status;
  char *message;
  mp_args *result;
  struct done_item *next;
} done_item;

typedef struct done_list {
  done_item *head, *tail;
} done_list;

static void done_add(done_list *l, mp_async *a, int rc, int status,
                     const char *message, mp_args *result) {
  done_item *d = calloc(1, sizeof *d);
  if (d == NULL) { /* out of memory: the async stays pending */
    mp_args_free(result);
    return;
  }
  d->a = a;
  d->rc = rc;
  d->status = status;
  d->message = message ? mp__strdup(message) : NULL;
  d->result = result;
  if (l->tail)
    l->tail->next = d;
  else
    l->head = d;
  l->tail = d;
}

static void done_run(done_list *l) {
  done_item *d = l->head;
  while (d != NULL) {
    done_item *next = d->next;
    async_complete(d->a, d->rc, d->status, d->message, d->result);
    free(d->message);
    free(d);
    d = next;
  }
  l->head = l->tail = NULL;
}

/* ---- messages ------------------------------------------------------------ */

/* The function as (module, offset), cached for the last one used. */
static int encode_fn(mp_pool *p, mp_task_fn fn) {
  void (*f)(void) = (void (*)(void))fn;
  if (p->fn_cached == f)
    return 0;
  int rc = mpi_fn_encode(f, p->fn_module, sizeof p->fn_module, &p->fn_offset);
  if (rc != 0)
    return rc;
  p->fn_cached = f;
  return 0;
}

/* A buffer of at least len bytes for a task message (pool lock held):
 * one kept from an earlier message if there is one, so that a big map's
 * chunks do not fault fresh memory in every time. */
static unsigned char *msg_alloc(mp_pool *p, size_t len, size_t *cap) {
  int best = -1;
  for (int k = 0; k < SPARE_N; k++)
    if (p->spare[k] != NULL && p->spare_cap[k] >= len &&
        (best < 0 || p->spare_cap[k] < p->spare_cap[best]))
      best = k;
  if (best >= 0) {
    unsigned char *m = p->spare[best];
    *cap = p->spare_cap[best];
    p->spare[best] = NULL;
    p->spare_total -= *cap;
    return m;
  }
  *cap = len;
  return malloc(len);
}

/* Done with a task message's buffer (pool lock held). */
static void msg_free(mp_pool *p, unsigned char *m, size_t cap) {
  int slot = -1;
  for (int k = 0; k < SPARE_N && m != NULL && cap <= SPARE_MAX; k++)
    if (p->spare[k] == NULL) {
      slot = k;
      break;
    } else if (p->spare_cap[k] < cap && (slot < 0 ||
                                         p->spare_cap[k] < p->spare_cap[slot])) {
      slot = k;
    }
  size_t out = slot >= 0 && p->spare[slot] ? p->spare_cap[slot] : 0;
  if (slot < 0 || p->spare_total - out + cap > SPARE_MAX) {
    free(m);
    return;
  }
  free(p->spare[slot]); /* a smaller one makes room */
  p->spare[slot] = m;
  p->spare_cap[slot] = cap;
  p->spare_total += cap - out;
}

/* A task message from an encoded tuple's items (`items`, n bytes). */
static int build_msg(mp_pool *p, mp_task_fn fn, uint32_t flags,
                     const void *items, size_t n, size_t ncalls, chunk *c) {
  int rc = encode_fn(p, fn);
  if (rc != 0)
    return rc;
  size_t mlen = strlen(p->fn_module);
  size_t len = sizeof(task_hdr) + mlen + 8 + n, cap = 0;
  unsigned char *m = msg_alloc(p, len, &cap);
  if (m == NULL)
    return mp__error(MP_ENOMEM, "no memory for a task of %zu bytes", len);
  task_hdr h;
  memset(&h, 0, sizeof h);
  h.kind = MSG_TASK;
  h.flags = flags;
  h.offset = p->fn_offset;
  h.module_len = (uint32_t)mlen;
  h.ncalls = (uint32_t)ncalls;
  memcpy(m, &h, sizeof h); /* seq is written when it is queued */
  memcpy(m + sizeof h, p->fn_module, mlen);
  unsigned char *t = m + sizeof h + mlen;
  memcpy(t, "MPA1", 4);
  t[4] = (unsigned char)ncalls;
  t[5] = (unsigned char)(ncalls >> 8);
  t[6] = (unsigned char)(ncalls >> 16);
  t[7] = (unsigned char)(ncalls >> 24);
  if (n)
    memcpy(t + 8, items, n);
  c->msg = m;
  c->len = len;
  c->cap = cap;
  c->ncalls = ncalls;
  return 0;
}

/* ---- the worker side ------------------------------------------------------ */

typedef struct wctx {
  mp_pool *pool; /* thread kind */
  mp_queue *inbox, *results;
  uint32_t index, gen;
  int maxtasks;
  mp_target_fn init;
  const mp_args *initargs;
} wctx;

static int put_raw(wctx *c, res_hdr *h, const void *vp, size_t vn,
                   const unsigned char *errs, size_t errs_n,
                   unsigned char **buf, size_t *cap) {
  size_t len = sizeof *h + vn + errs_n;
  if (len > *cap) {
    unsigned char *b = realloc(*buf, len);
    if (b == NULL)
      return MP_ENOMEM;
    *buf = b;
    *cap = len;
  }
  h->worker = c->index;
  h->gen = c->gen;
  h->values_len = (uint32_t)vn;
  memcpy(*buf, h, sizeof *h);
  if (vn)
    memcpy(*buf + sizeof *h, vp, vn);
  if (errs_n)
    memcpy(*buf + sizeof *h + vn, errs, errs_n);
  return mp_queue_put(c->results, *buf, len, MP_FOREVER);
}

static int put_result(wctx *c, res_hdr *h, const mp_args *values,
                      const unsigned char *errs, size_t errs_n,
                      unsigned char **buf, size_t *cap) {
  size_t vn = 0;
  const void *vp = values ? mp__args_data(values, &vn) : NULL;
  return put_raw(c, h, vp, vn, errs, errs_n, buf, cap);
}

/* Count the records in errs. */
static uint32_t count_errs(const unsigned char *errs, size_t errs_n) {
  uint32_t k = 0;
  for (size_t at = 0; at < errs_n; k++) {
    err_rec r;
    memcpy(&r, errs + at, sizeof r);
    at += sizeof r + r.len;
  }
  return k;
}

/* Append one failed call's record. */
static int add_err(unsigned char **errs, size_t *n, size_t *cap, size_t call,
                   int status, const char *msg) {
  size_t ml = strlen(msg);
  if (*n + sizeof(err_rec) + ml > *cap) {
    size_t nc = (*cap ? *cap * 2 : 256) + sizeof(err_rec) + ml;
    unsigned char *b = realloc(*errs, nc);
    if (b == NULL)
      return MP_ENOMEM;
    *errs = b;
    *cap = nc;
  }
  err_rec r = {(uint32_t)call, (int32_t)status, (uint32_t)ml, 0};
  memcpy(*errs + *n, &r, sizeof r);
  memcpy(*errs + *n + sizeof r, msg, ml);
  *n += sizeof r + ml;
  return 0;
}

/* One chunk of an array map or reduce (pool_array.c runs it): its
 * accumulator as the values, or its error. */
static int array_chunk(wctx *c, const task_hdr *th, mp_task_fn fn, int fn_rc,
                       const unsigned char *desc, size_t n,
                       mp__arrcache **cache, unsigned char **errs,
                       size_t *errs_cap, unsigned char **out,
                       size_t *out_cap) {
  double t0 = mpi_now();
  unsigned char *acc = NULL;
  size_t acc_n = 0, errs_n = 0;
  int st = 0, rc;
  uint32_t at = 0; /* the chunk that failed */
  mp__clear_error();
  if (fn == NULL)
    rc = mp__error(fn_rc ? fn_rc : MP_EINVAL,
                   "cannot find the kernel in the worker");
  else
    rc = mp__array_run(cache, c->pool != NULL, (void (*)(void))fn, desc, n,
                       &acc, &acc_n, &st, &at);
  if (rc != 0 || st != 0) {
    char text[64];
    const char *m = mp_last_error_message();
    if (m[0] == '\0') {
      snprintf(text, sizeof text, "kernel returned status %d", st);
      m = text;
    }
    if (add_err(errs, &errs_n, errs_cap, rc != 0 ? UINT32_MAX : at,
                rc != 0 ? rc : st, m) != 0) {
      free(acc);
      return MP_ENOMEM;
    }
    acc_n = 0;
  }
  res_hdr h;
  memset(&h, 0, sizeof h);
  h.kind = RES_CHUNK;
  h.seq = th->seq;
  h.elapsed = mpi_now() - t0;
  h.nerrors = count_errs(*errs, errs_n);
  rc = put_raw(c, &h, acc, acc_n, *errs, errs_n, out, out_cap);
  free(acc);
  return rc;
}

/* The worker's loop: 0 when told to stop or done with maxtasks. */
static int worker_loop(wctx *c) {
  unsigned char *in = NULL, *out = NULL, *errs = NULL;
  size_t in_cap = 0, out_cap = 0, errs_cap = 0;
  mp_args *payload = NULL, *call = NULL, *res = NULL, *values = NULL;
  char module[1024] = "";
  uint64_t offset = 0;
  mp_task_fn fn = NULL;
  int fn_rc = 0, rc = 0, tasks = 0;
  char text[160];
  mp__arrcache *cache = NULL; /* an array map's segments, mapped */
  double hot_until = 0;       /* after an array chunk: spin until then */
  if (c->init != NULL) {
    mp__clear_error();
    int st = c->init(c->initargs);
    if (st != 0) {
      res_hdr h;
      memset(&h, 0, sizeof h);
      h.kind = RES_INIT_FAILED;
      h.status = st;
      const char *m = mp_last_error_message();
      if (m[0] == '\0') {
        snprintf(text, sizeof text, "initializer returned status %d", st);
        m = text;
      }
      size_t en = 0;
      add_err(&errs, &en, &errs_cap, 0, st, m);
      put_result(c, &h, NULL, errs, en, &out, &out_cap);
      free(errs);
      free(out);
      return st;
    }
  }
  if (mp_args_new(&payload) || mp_args_new(&call) || mp_args_new(&res) ||
      mp_args_new(&values)) {
    rc = MP_ENOMEM;
    goto done;
  }
  {
    /* Up and running: from now on its death is not a start failure. */
    res_hdr h;
    memset(&h, 0, sizeof h);
    h.kind = RES_READY;
    if ((rc = put_result(c, &h, NULL, NULL, 0, &out, &out_cap)) != 0)
      goto done;
  }
  for (;;) {
    size_t n = 0;
    /* After an array chunk the next one often follows at once (a loop of
     * maps, as of OpenMP parallel loops, whose threads spin likewise):
     * watch for it a little before sleeping, which costs a wake-up. */
    rc = MP_EEMPTY;
    while (hot_until > 0 && rc == MP_EEMPTY && mpi_now() < hot_until) {
      rc = mp_queue_get_into(c->inbox, in, in_cap, &n, 0);
      if (rc == MP_EEMPTY)
        mpi_yield();
    }
    hot_until = 0;
    if (rc == MP_EEMPTY)
      rc = mp_queue_get_into(c->inbox, in, in_cap, &n,
                             cache != NULL ? MP__ARRAY_IDLE : MP_FOREVER);
    if (rc == MP_EEMPTY) { /* idle: let go of the arrays */
      mp__array_cache_drop(&cache);
      continue;
    }
    if (rc == MP_ERANGE) {
      unsigned char *b = realloc(in, n);
      if (b == NULL) {
        rc = MP_ENOMEM;
        break;
      }
      in = b;
      in_cap = n;
      continue;
    }
    if (rc != 0)
      break; /* closed: the pool is terminating */
    task_hdr th;
    if (n < sizeof th) {
      rc = MP_EPROTO;
      break;
    }
    memcpy(&th, in, sizeof th);
    if (th.kind != MSG_TASK)
      break; /* MSG_STOP */
    double t0 = mpi_now();
    size_t errs_n = 0;
    mp__args_reset(values);
    int bad = th.module_len >= sizeof module ||
              th.module_len > n - sizeof th;
    if (!bad) {
      const char *m = (const char *)in + sizeof th;
      if (fn == NULL || offset != th.offset ||
          strlen(module) != th.module_len ||
          memcmp(module, m, th.module_len) != 0) {
        memcpy(module, m, th.module_len);
        module[th.module_len] = '\0';
        offset = th.offset;
        void (*f)(void) = NULL;
        fn_rc = mpi_fn_decode(module, offset, &f);
        fn = fn_rc == 0 ? (mp_task_fn)f : NULL;
      }
      size_t at = sizeof th + th.module_len;
      if (th.flags & F_ARRAY) { /* after build_msg's 8-byte tuple head */
        size_t skip = n - at >= 8 ? 8 : n - at;
        if ((rc = array_chunk(c, &th, fn, fn_rc, in + at + skip,
                              n - at - skip, &cache,
                              &errs, &errs_cap, &out, &out_cap)) != 0)
          break;
        hot_until = mpi_now() + ARRAY_SPIN;
        if (c->maxtasks > 0 && ++tasks >= c->maxtasks)
          break;
        continue;
      }
      bad = mp__args_load(payload, in + at, n - at) != 0 ||
            mp_args_count(payload) != th.ncalls;
    }
    for (uint32_t i = 0; !bad && i < th.ncalls; i++) {
      int st;
      mp__args_reset(res);
      mp__clear_error();
      if (fn == NULL) {
        st = fn_rc ? fn_rc : MP_EINVAL;
        mp__error(st, "cannot find the task function in the worker");
      } else if (th.flags & F_STAR) {
        const mp_args *t = mp_args_tuple(payload, i);
        size_t tn = 0;
        const void *td = t ? mp__args_data(t, &tn) : NULL;
        st = t == NULL ? MP_ETYPE : mp__args_load(call, td, tn);
        if (st == 0)
          st = fn(call, res);
        else
          mp__error(MP_ETYPE, "starmap: item %u is not a tuple", i);
      } else {
        mp__args_reset(call);
        st = mp__args_add_item_of(call, payload, i);
        if (st == 0)
          st = fn(call, res);
      }
      if (st == 0)
        st = (th.flags & F_TUPLES) ? mp_args_add_tuple(values, res)
                                   : mp__args_add_value_of(values, res);
      if (st != 0) {
        const char *m = mp_last_error_message();
        if (m[0] == '\0') {
          snprintf(text, sizeof text, "task returned status %d", st);
          m = text;
        }
        if (add_err(&errs, &errs_n, &errs_cap, i, st, m) != 0) {
          rc = MP_ENOMEM;
          goto done;
        }
        /* As Python's mapstar: the chunk's later calls do not run. */
        for (uint32_t k = i; k < th.ncalls; k++)
          if (mp_args_add_none(values) != 0) {
            rc = MP_ENOMEM;
            goto done;
          }
        break;
      }
    }
    res_hdr h;
    memset(&h, 0, sizeof h);
    h.kind = RES_CHUNK;
    h.seq = th.seq;
    h.elapsed = mpi_now() - t0;
    if (bad) {
      mp__args_reset(values);
      errs_n = 0;
      add_err(&errs, &errs_n, &errs_cap, UINT32_MAX, MP_EPROTO,
              "malformed task message");
    }
    h.nerrors = count_errs(errs, errs_n);
    if ((rc = put_result(c, &h, values, errs, errs_n, &out, &out_cap)) != 0)
      break;
    if (c->maxtasks > 0 && ++tasks >= c->maxtasks)
      break;
  }
done:
  mp__array_cache_drop(&cache);
  mp_args_free(payload);
  mp_args_free(call);
  mp_args_free(res);
  mp_args_free(values);
  free(in);
  free(out);
  free(errs);
  return rc == MP_ECLOSED ? 0 : rc;
}

/* Worker process target.  Arguments: the initializer's arguments, then
 * inbox, results, index, gen, maxtasks, init module, init offset, the
 * count of initializer arguments, the log level. */
#define WORKER_ITEMS 9

static int worker_process_main(const mp_args *a) {
  size_t n = mp_args_count(a);
  if (n < WORKER_ITEMS)
    return mp_set_error(MP_EPROTO, "pool worker: malformed arguments");
  size_t b = n - WORKER_ITEMS;
  wctx c;
  memset(&c, 0, sizeof c);
  c.inbox = mp_args_queue(a, b);
  c.results = mp_args_queue(a, b + 1);
  c.index = (uint32_t)mp_args_int(a, b + 2);
  c.gen = (uint32_t)mp_args_int(a, b + 3);
  c.maxtasks = (int)mp_args_int(a, b + 4);
  const char *module = mp_args_str(a, b + 5);
  int64_t offset = mp_args_int(a, b + 6);
  size_t ninit = (size_t)mp_args_int(a, b + 7);
  mp_log_to_stderr((int)mp_args_int(a, b + 8));
  if (c.inbox == NULL || c.results == NULL || module == NULL || ninit != b)
    return mp_set_error(MP_EPROTO, "pool worker: malformed arguments");
  /* Unlike Python's, a pool worker may have children of its own: they
   * die with it (the pools it makes start daemonic workers). */
  mp_current_process()->daemon = 0;
  mp_args *initargs = NULL;
  if (offset >= 0) {
    void (*f)(void) = NULL;
    if (mpi_fn_decode(module, (uint64_t)offset, &f) != 0)
      return mp_set_error(MP_EBOOTSTRAP, "pool worker: no initializer");
    c.init = (mp_target_fn)f;
    if (mp__args_slice(a, 0, ninit, &initargs) != 0)
      return mp_set_error(MP_ENOMEM, "pool worker: out of memory");
    c.initargs = initargs;
  }
  mp__log(MP_LOG_INFO, "child process calling self.run()");
  int rc = worker_loop(&c);
  mp_args_free(initargs);
  mp__log(MP_LOG_INFO, "process shutting down");
  return rc;
}

static void post_death(mp_queue *results, uint32_t index, uint32_t gen) {
  res_hdr h;
  memset(&h, 0, sizeof h);
  h.kind = RES_DEATH;
  h.worker = index;
  h.gen = gen;
  mp_queue_put(results, &h, sizeof h, MP_FOREVER);
}

static void worker_thread_main(void *arg) {
  wctx c = *(wctx *)arg;
  free(arg);
  worker_loop(&c);
  post_death(c.results, c.index, c.gen); /* tell the handler we are gone */
  handler_wake(c.pool);
}

/* ---- starting workers ---------------------------------------------------- */

static int start_worker(mp_pool *p, int i) {
  worker *w = &p->w[i];
  w->gen++;
  w->death_posted = 0;
  w->assigned = 0;
  w->ready = 0;
  w->pid = 0;
  int rc;
  if (p->kind == MP_POOL_THREAD) {
    wctx *ts = calloc(1, sizeof *ts);
    if (ts == NULL)
      return mp__error(MP_ENOMEM, "out of memory");
    ts->pool = p;
    ts->inbox = w->inbox;
    ts->results = p->results;
    ts->index = (uint32_t)i;
    ts->gen = w->gen;
    ts->init = p->init;
    ts->initargs = p->initargs;
    if ((rc = mpi_thread_start(worker_thread_main, ts, &w->thread)) != 0) {
      free(ts);
      return rc;
    }
    w->state = W_RUNNING;
    return 0;
  }
  mp_args *a = NULL;
  size_t ninit = p->initargs ? mp_args_count(p->initargs) : 0;
  char module[1024] = "";
  uint64_t offset = 0;
  int64_t off = -1;
  if (p->init != NULL) {
    if ((rc = mpi_fn_encode((void (*)(void))p->init, module, sizeof module,
                            &offset)) != 0)
      return rc;
    off = (int64_t)offset;
  }
  rc = p->initargs ? mp_args_copy(&a, p->initargs) : mp_args_new(&a);
  if (rc == 0) rc = mp_args_add_queue(a, w->inbox);
  if (rc == 0) rc = mp_args_add_queue(a, p->results);
  if (rc == 0) rc = mp_args_add_int(a, i);
  if (rc == 0) rc = mp_args_add_int(a, w->gen);
  if (rc == 0) rc = mp_args_add_int(a, p->maxtasks);
  if (rc == 0) rc = mp_args_add_str(a, module);
  if (rc == 0) rc = mp_args_add_int(a, off);
  if (rc == 0) rc = mp_args_add_int(a, (int64_t)ninit);
  if (rc == 0) rc = mp_args_add_int(a, mp_log_level());
  mp_process *proc = NULL;
  if (rc == 0) rc = mp_process_new(&proc, worker_process_main, a);
  mp_args_free(a);
  if (rc != 0)
    return rc;
  char name[64];
  snprintf(name, sizeof name, "PoolWorker-%d-%d", p->number, i + 1);
  mp_process_set_name(proc, name);
  mp_process_set_daemon(proc, 1);
  if (p->ctx)
    mp_process_set_context(proc, p->ctx);
  /* A worker may itself start a pool (its daemon flag is cleared inside
   * it), so do not let this process's own flag forbid it here. */
  mp_process *me = mp_current_process();
  int was_daemon = me->daemon;
  me->daemon = 0;
  rc = mp_process_start(proc);
  me->daemon = was_daemon;
  if (rc != 0) {
    mp_process_free(proc);
    return rc;
  }
  w->proc = proc;
  w->pid = mp_process_pid(proc);
  w->state = W_RUNNING;
  mp__log(MP_LOG_DEBUG, "added worker %s (pid %lld)", name,
          (long long)w->pid);
  return 0;
}

/* ---- dispatch ------------------------------------------------------------ */

/* The run time per item measured for an array kernel (0: not yet), and
 * the slot that keeps it. */
static double *kernel_time(mp_pool *p, void (*fn)(void)) {
  for (int k = 0; k < KERNELS_N; k++)
    if (p->item_time[k].fn == fn)
      return &p->item_time[k].t;
  return NULL;
}

static void kernel_timed(mp_pool *p, void (*fn)(void), double t) {
  double *slot = kernel_time(p, fn);
  if (slot == NULL) {
    int k = p->item_next++ % KERNELS_N;
    p->item_time[k].fn = fn;
    p->item_time[k].t = t;
  } else {
    *slot = 0.5 * *slot + 0.5 * t;
  }
}

/* How many chunks a worker may hold, chunk c next.  An array map's
 * chunks go one at a time when each takes longer than LATENCY_TARGET (or
 * nothing is known yet), so that the chunks at the end go to whichever
 * worker is free, as OpenMP's dynamic schedules do; short ones queue up
 * to hide the round trip, as other tasks' do. */
static int worker_limit(mp_pool *p, worker *w, const chunk *c) {
  int lim = p->prefetch;
  if (c != NULL && c->job->type == J_ARRAY && c->job->counter) {
    lim = PREFETCH_MAX; /* a message that says: take chunks */
  } else if (c != NULL && c->job->type == J_ARRAY) {
    double *t = kernel_time(p, c->job->kernel);
    double est = t != NULL ? *t * (double)c->ncalls : 0;
    lim = est <= 0 || est >= LATENCY_TARGET ? 1
          : LATENCY_TARGET / est > PREFETCH_MAX ? PREFETCH_MAX
          : (int)(LATENCY_TARGET / est);
  }
  if (p->maxtasks > 0 && p->maxtasks - w->assigned < lim)
    lim = p->maxtasks - w->assigned;
  return lim;
}

/* Whether worker w holds a message of job j (a map by a counter gives
 * each worker one: two to one worker would leave another idle). */
static int holds_job(const worker *w, const job *j) {
  for (const chunk *c = w->head; c != NULL; c = c->next)
    if (c->job == j)
      return 1;
  return 0;
}

/* The eligible worker with the fewest chunks outstanding, or -1.  skip:
 * workers whose inbox was found full in this round. */
static int pick_worker(mp_pool *p, const unsigned char *skip,
                       const chunk *c) {
  int best = -1;
  for (int i = 0; i < p->nworkers; i++) {
    worker *w = &p->w[i];
    if (w->state != W_RUNNING || w->feeding || (skip && skip[i]) ||
        w->outstanding >= worker_limit(p, w, c) ||
        (c != NULL && c->job->counter && holds_job(w, c->job)))
      continue;
    if (best < 0 || w->outstanding < p->w[best].outstanding)
      best = i;
  }
  return best;
}

/* Take the oldest chunk a worker holds off its list (it is answered, or
 * fails); the caller makes sure there is one. */
static chunk *unassign_head(worker *w) {
  chunk *c = w->head;
  w->head = c->next;
  if (w->head == NULL)
    w->tail = NULL;
  w->outstanding--;
  c->job->chunks_out--;
  return c;
}

static void assign(mp_pool *p, chunk *c, int i) {
  worker *w = &p->w[i];
  c->sent = w->sent++;
  c->next = NULL;
  if (w->tail)
    w->tail->next = c;
  else
    w->head = c;
  w->tail = c;
  w->outstanding++;
  w->assigned++;
  c->job->chunks_out++;
  mp_async *a = c->job->async;
  if (a == NULL || a->cb != NULL || a->ecb != NULL)
    handler_wake(p); /* nobody may wait for this result: it needs reading */
  if (c->job->async != NULL && c->job->async->state == MP__ASYNC_PENDING) {
    mp__async_lock();
    c->job->async->state = MP__ASYNC_RUNNING;
    mp__async_unlock();
  }
}

static chunk *backlog_pop(mp_pool *p) {
  chunk *c = p->backlog;
  if (c != NULL) {
    p->backlog = c->next;
    if (p->backlog == NULL)
      p->backlog_tail = NULL;
    c->next = NULL;
  }
  return c;
}

/* Give queued chunks to workers with room, without blocking (pool lock
 * held).  A chunk too large for one put is left to the feeder. */
static void dispatch(mp_pool *p) {
  unsigned char skip[256];
  unsigned char *sk = p->nworkers <= 256 ? skip : calloc((size_t)p->nworkers, 1);
  if (sk == skip)
    memset(skip, 0, sizeof skip);
  while (p->backlog != NULL && p->state != P_TERMINATE) {
    chunk *c = p->backlog;
    if (c->len > DIRECT_MAX) {
      mpi_cond_signal(p->feeder_cv);
      break;
    }
    int i = pick_worker(p, sk, c);
    if (i < 0)
      break;
    c->seq = p->next_seq;
    memcpy(c->msg + offsetof(task_hdr, seq), &c->seq, sizeof c->seq);
    int rc = mp_queue_put_nowait(p->w[i].inbox, c->msg, c->len);
    if (rc != 0) {
      if (sk == NULL)
        break;
      sk[i] = 1;
      continue;
    }
    p->next_seq++;
    backlog_pop(p);
    msg_free(p, c->msg, c->cap);
    c->msg = NULL;
    assign(p, c, i);
  }
  if (sk != skip)
    free(sk);
}

static void backlog_push(mp_pool *p, chunk *c) {
  c->next = NULL;
  if (p->backlog_tail)
    p->backlog_tail->next = c;
  else
    p->backlog = c;
  p->backlog_tail = c;
}

static void feeder_main(void *arg) {
  mp_pool *p = arg;
  mpi_mutex_lock(p->mu);
  for (;;) {
    int i = -1;
    while (!p->stopping &&
           !(p->backlog != NULL && p->backlog->len > DIRECT_MAX &&
             (i = pick_worker(p, NULL, p->backlog)) >= 0))
      mpi_cond_wait(p->feeder_cv, p->mu, -1);
    if (p->stopping)
      break;
    chunk *c = backlog_pop(p);
    c->seq = p->next_seq++;
    memcpy(c->msg + offsetof(task_hdr, seq), &c->seq, sizeof c->seq);
    worker *w = &p->w[i];
    w->feeding = 1;
    unsigned char *msg = c->msg;
    size_t len = c->len, cap = c->cap;
    mp_queue *inbox = w->inbox;
    c->msg = NULL;
    assign(p, c, i);
    dispatch(p); /* small chunks waiting behind this one */
    mpi_mutex_unlock(p->mu);
    mp_queue_put(inbox, msg, len, MP_FOREVER); /* closed: terminating */
    mpi_mutex_lock(p->mu);
    msg_free(p, msg, cap);
    w->feeding = 0;
    dispatch(p);
  }
  mpi_mutex_unlock(p->mu);
}

/* ---- results --------------------------------------------------------------- */

static void job_free_if_done(job *j) {
  if (j->chunks_out > 0 || j->chunks_left > 0 ||
      (j->type == J_IMAP && j->it != NULL) ||
      (j->type != J_IMAP && !j->done))
    return;
  if (j->parts) {
    for (size_t k = 0; k < j->nchunks; k++)
      free(j->parts[k].bytes);
    free(j->parts);
  }
  mp_args_free(j->all);
  free(j->fail_msg);
  mp__array_unref(j->arr);
  free(j);
}

static void backlog_drop_from(mp_pool *p, job *j, size_t from);
static void backlog_drop(mp_pool *p, job *j) { backlog_drop_from(p, j, 0); }

/* Complete a job's async (pool lock held; the completion runs once the
 * lock is released).  The pool's reference to the async goes with it:
 * once the caller has its result it may free the async, so nothing of the
 * job (chunks answered later, chunks still queued) may reach it again. */
static void job_done(job *j, int rc, int status, const char *msg,
                     mp_args *result, done_list *dl) {
  j->done = 1;
  /* The job may be freed before the completion runs: nothing may reach
   * it through the async any more (mp__pool_array_wait, cancel). */
  mp__async_lock();
  j->async->job = NULL;
  mp__async_unlock();
  done_add(dl, j->async, rc, status, msg, result);
  j->async = NULL;
}

/* Fail a whole job's async (pool lock held). */
static void job_fail(job *j, int rc, int status, const char *msg,
                     done_list *dl) {
  if (j->type == J_IMAP || j->done)
    return;
  job_done(j, rc, status, msg, NULL, dl);
  /* Its chunks not yet given to a worker will never be needed. */
  backlog_drop(j->pool, j);
}

/* Hand one call's outcome to an imap iterator (async lock held).
 * rc IMAP_SKIP: a call whose outcome is not yielded. */
enum { IMAP_SKIP = 1 };

static void imap_deliver(mp_imap *it, size_t index, int rc, int status,
                         const char *msg, mp_args *result) {
  ientry *e;
  if (it->ordered) {
    e = &it->ring[index % it->window];
  } else {
    e = calloc(1, sizeof *e);
    if (e == NULL) {
      mp_args_free(result);
      return;
    }
    if (it->fifo_tail)
      it->fifo_tail->next = e;
    else
      it->fifo = e;
    it->fifo_tail = e;
  }
  e->ready = 1;
  e->skip = rc == IMAP_SKIP;
  e->rc = e->skip ? 0 : rc;
  e->status = status;
  e->index = index;
  e->message = msg ? mp__strdup(msg) : NULL;
  e->result = result;
}

/* The map fails with the first failure in input order: once the chunks
 * before the failed one have all answered (pool lock held). */
static void map_settle(job *j, done_list *dl) {
  if (!j->done && j->fail_part != SIZE_MAX && j->next_part == j->fail_part)
    job_fail(j, j->fail_rc, j->fail_status, j->fail_msg, dl);
}

/* Chunk c of a map failed: kept if it is the first failed so far, and the
 * chunks after it still queued are dropped, never needed (pool lock held). */
static void fail_at(job *j, size_t at, int rc, int status, const char *msg,
                    done_list *dl) {
  if (j->done || at >= j->fail_part)
    return;
  char *m = msg ? mp__strdup(msg) : NULL;
  free(j->fail_msg);
  j->fail_msg = m;
  j->fail_part = at;
  j->fail_rc = rc;
  j->fail_status = status;
  if (!j->counter) /* (a counter's messages are not in input order) */
    backlog_drop_from(j->pool, j, at + 1);
  if (j->type == J_MAP)
    map_settle(j, dl);
}

static void map_fail(job *j, chunk *c, int rc, int status, const char *msg,
                     done_list *dl) {
  /* A counter's message failed whole (its worker died): first of all. */
  fail_at(j, j->counter ? 0 : c->index, rc, status, msg, dl);
}

/* An array job ends once none of its chunks is left, so that no worker
 * still writes to its arrays when the caller hears of it: then it fails
 * with the first failed chunk in input order, or succeeds (pool lock
 * held). */
static void array_settle(job *j, done_list *dl) {
  if (j->type != J_ARRAY || j->done)
    return;
  if (j->counter && j->chunks_left > 0) {
    /* Before every worker has answered: once every chunk is done (run,
     * or skipped after a failure), no worker writes any more; a failure
     * then waits for its report. */
    uint64_t at = 0;
    if (!mp__array_all_done(j->arr, &at))
      return;
    if (at != UINT64_MAX &&
        (j->fail_part == SIZE_MAX || (uint64_t)j->fail_part > at))
      return;
  } else if (j->chunks_left > 0) {
    return;
  }
  if (j->fail_part != SIZE_MAX) {
    mp__array_release(j->arr);
    job_fail(j, j->fail_rc, j->fail_status, j->fail_msg, dl);
  } else if (j->counter && !mp__array_all_done(j->arr, NULL)) {
    mp__array_release(j->arr);
    job_fail(j, MP_EPROTO, 0, "an array map's workers left chunks undone",
             dl);
  } else {
    mp_args *none = NULL;
    if (j->counter)
      mp__array_finish(j->arr); /* the output copied back, if it must be */
    mp__array_release(j->arr);
    if (mp_args_new(&none) != 0)
      job_fail(j, MP_ENOMEM, 0, "out of memory", dl);
    else
      job_done(j, 0, 0, NULL, none, dl);
  }
}

/* A chunk failed as a whole (its worker died, the pool ended ...). */
static void chunk_fail(chunk *c, int rc, const char *msg, done_list *dl) {
  job *j = c->job;
  if (j->type == J_IMAP) {
    if (j->it != NULL) {
      mp__async_lock();
      for (size_t k = 0; k < c->ncalls; k++)
        imap_deliver(j->it, c->first + k, rc, 0, msg, NULL);
      async_broadcast();
      mp__async_unlock();
    }
  } else if (j->type == J_MAP || j->type == J_ARRAY) {
    map_fail(j, c, rc, 0, msg, dl);
  } else {
    job_fail(j, rc, 0, msg, dl);
  }
  j->chunks_left--;
  array_settle(j, dl);
  free(c->msg);
  free(c);
  job_free_if_done(j);
}

/* A map chunk's values (an encoded tuple of c->ncalls items): appended
 * to the results when it is the next in order (with any later ones that
 * came early), kept until then otherwise.  0 or an error. */
static int map_part(job *j, chunk *c, const unsigned char *values,
                    size_t n) {
  size_t items_n = n >= 8 ? n - 8 : 0;
  if (n < 8 || memcmp(values, "MPA1", 4) != 0)
    return mp__error(MP_EPROTO, "malformed result");
  const unsigned char *items = values + 8;
  if (c->index > j->fail_part)
    return 0; /* after the first failure: never needed */
  if (j->all == NULL) { /* room for all of them, guessed from this chunk */
    size_t guess = c->ncalls ? items_n / c->ncalls + 1 : 16;
    if (mp_args_new(&j->all) != 0)
      return MP_ENOMEM;
    if (mp__args_reserve(j->all, guess * j->ncalls, j->ncalls) != 0)
      mp__clear_error(); /* a guess too large: grow as they come */
  }
  if (c->index != j->next_part) {
    part *pt = &j->parts[c->index];
    if ((pt->bytes = msg_alloc(j->pool, items_n ? items_n : 1, &pt->cap)) ==
        NULL)
      return mp__error(MP_ENOMEM, "no memory for results");
    memcpy(pt->bytes, items, items_n);
    pt->len = items_n;
    pt->count = c->ncalls;
    return 0;
  }
  int rc = mp__args_extend(j->all, items, items_n, c->ncalls);
  j->next_part++;
  while (rc == 0 && j->next_part < j->nchunks &&
         j->parts[j->next_part].bytes != NULL) {
    part *pt = &j->parts[j->next_part];
    rc = mp__args_extend(j->all, pt->bytes, pt->len, pt->count);
    msg_free(j->pool, pt->bytes, pt->cap);
    pt->bytes = NULL;
    j->next_part++;
  }
  return rc;
}

/* The answer to chunk c (pool lock held). */
static void chunk_answer(chunk *c, const res_hdr *h,
                         const unsigned char *values, const unsigned char *errs,
                         size_t errs_n, done_list *dl) {
  job *j = c->job;
  /* The first failure, if any. */
  err_rec first = {0, 0, 0, 0};
  const char *first_msg = NULL;
  char *first_copy = NULL;
  if (h->nerrors > 0 && errs_n >= sizeof first) {
    memcpy(&first, errs, sizeof first);
    if (first.len <= errs_n - sizeof first &&
        (first_copy = malloc(first.len + 1)) != NULL) {
      memcpy(first_copy, errs + sizeof first, first.len);
      first_copy[first.len] = '\0';
      first_msg = first_copy;
    }
  }
  mp_args *vals = NULL;
  int prc = 0;
  if (j->type != J_MAP && j->type != J_ARRAY) {
    prc = mp__args_from_bytes(&vals, values, h->values_len);
    if (prc == 0 && mp_args_count(vals) != c->ncalls)
      prc = MP_EPROTO;
  }
  if (j->type == J_APPLY && !j->done) {
    if (h->nerrors > 0)
      job_fail(j, MP_ETASK, first.status, first_msg, dl);
    else if (prc != 0)
      job_fail(j, MP_EPROTO, 0, "malformed result from a worker", dl);
    else {
      mp_args *r = NULL;
      const mp_args *t = mp_args_tuple(vals, 0);
      if (t != NULL && mp_args_copy(&r, t) == 0) {
        job_done(j, 0, 0, NULL, r, dl);
      } else {
        job_fail(j, MP_ENOMEM, 0, "no memory for a result", dl);
      }
    }
  } else if (j->type == J_MAP && !j->done) {
    if (h->nerrors > 0) {
      map_fail(j, c, MP_ETASK, first.status, first_msg, dl);
    } else if (map_part(j, c, values, h->values_len) != 0) {
      job_fail(j, mp_last_error_message()[0] ? MP_EPROTO : MP_ENOMEM, 0,
               "malformed result from a worker", dl);
    } else if (map_settle(j, dl), j->done) {
      /* failed: an earlier chunk's error, now first in input order */
    } else if (j->chunks_left == 1) { /* the last one: all in order */
      job_done(j, 0, 0, NULL, j->all, dl);
      j->all = NULL;
    }
  } else if (j->type == J_ARRAY && !j->done) {
    if (h->nerrors > 0 && j->counter) /* .call: the failed chunk */
      fail_at(j, first.call == UINT32_MAX ? 0 : first.call,
              first.call == UINT32_MAX ? first.status : MP_ETASK,
              first.status, first_msg, dl);
    else if (h->nerrors > 0)
      map_fail(j, c, first.call == UINT32_MAX ? first.status : MP_ETASK,
               first.status, first_msg, dl);
    else if (mp__array_answer(j->arr, c->index, c->first, c->ncalls, values,
                              h->values_len) != 0)
      map_fail(j, c, MP_EPROTO, 0, "malformed result from a worker", dl);
  } else if (j->type == J_IMAP && j->it != NULL) {
    /* As Python: a chunk with a failed call gives that one failure (its
     * worker ran none of the chunk's later calls) and the results of its
     * other calls are dropped. */
    size_t fail_k = first.call < c->ncalls ? first.call : 0;
    mp__async_lock();
    for (size_t k = 0; k < c->ncalls; k++) {
      if (h->nerrors > 0 && k == fail_k) {
        imap_deliver(j->it, c->first + k,
                     first.call < c->ncalls ? MP_ETASK : MP_EPROTO,
                     first.status, first_msg, NULL);
      } else if (h->nerrors > 0) {
        imap_deliver(j->it, c->first + k, IMAP_SKIP, 0, NULL, NULL);
      } else if (prc != 0) {
        imap_deliver(j->it, c->first + k, MP_EPROTO, 0,
                     "malformed result from a worker", NULL);
      } else {
        mp_args *r = NULL;
        const mp_args *t = mp_args_tuple(vals, k);
        if (t == NULL || mp_args_copy(&r, t) != 0)
          imap_deliver(j->it, c->first + k, MP_EPROTO, 0,
                       "malformed result from a worker", NULL);
        else
          imap_deliver(j->it, c->first + k, 0, 0, NULL, r);
      }
    }
    async_broadcast();
    mp__async_unlock();
  }
  mp_args_free(vals);
  free(first_copy);
  j->chunks_left--;
  array_settle(j, dl);
  free(c->msg);
  free(c);
  job_free_if_done(j);
}

/* Fail every chunk not yet answered: queued and held (pool lock held). */
static void fail_everything(mp_pool *p, int rc, const char *msg,
                            done_list *dl) {
  chunk *c;
  while ((c = backlog_pop(p)) != NULL)
    chunk_fail(c, rc, msg, dl);
  for (int i = 0; i < p->nworkers; i++) {
    worker *w = &p->w[i];
    while ((c = w->head) != NULL) {
      w->head = c->next;
      c->job->chunks_out--;
      chunk_fail(c, rc, msg, dl);
    }
    w->tail = NULL;
    w->outstanding = 0;
  }
}

/* Once closed and out of work, tell the workers to stop. */
static void maybe_finish(mp_pool *p) {
  if (p->state != P_CLOSE || p->stops_sent || p->backlog != NULL)
    return;
  for (int i = 0; i < p->nworkers; i++)
    if (p->w[i].outstanding > 0 || p->w[i].feeding)
      return;
  task_hdr h;
  memset(&h, 0, sizeof h);
  h.kind = MSG_STOP;
  for (int i = 0; i < p->nworkers; i++)
    mp_queue_put(p->w[i].inbox, &h, sizeof h, 1.0); /* inboxes are empty */
  p->stops_sent = 1;
}

static void describe_death(worker *w, int code, const char *err, char *buf,
                           size_t cap) {
  if (code < 0)
    snprintf(buf, cap, "worker process %lld died (killed by signal %d, %s)",
             (long long)w->pid, -code, mpi_signal_name(-code));
  else
    snprintf(buf, cap, "worker process %lld exited with status %d%s%s",
             (long long)w->pid, code, err ? ": " : "", err ? err : "");
}

/* A worker has ended (pool lock held). */
static void worker_ended(mp_pool *p, uint32_t i, uint32_t gen,
                         done_list *dl) {
  if (i >= (uint32_t)p->nworkers)
    return;
  worker *w = &p->w[i];
  if (w->gen != gen || w->state != W_RUNNING)
    return;
  int code = 0;
  char why[300] = "worker thread ended";
  if (p->kind == MP_POOL_PROCESS) {
    mp_process_join(w->proc, 5.0);
    if (mp_process_exitcode(w->proc, &code) != 0) {
      mp_process_kill(w->proc);
      mp_process_join(w->proc, MP_FOREVER);
      mp_process_exitcode(w->proc, &code);
    }
    describe_death(w, code, mp_process_error(w->proc), why, sizeof why);
    mp_process_free(w->proc);
    w->proc = NULL;
  } else {
    mpi_thread_join(w->thread);
    w->thread = NULL;
  }
  w->state = W_DEAD;
  /* The chunks it had taken out of its inbox and not answered. */
  uint64_t taken = 0;
  if (w->head != NULL && mp__queue_taken(w->inbox, &taken) != 0)
    taken = UINT64_MAX; /* cannot tell: count them all as held */
  int failed = 0;
  while (w->head != NULL && w->head->sent < taken) {
    chunk_fail(unassign_head(w), MP_EWORKERDIED, why, dl);
    failed++;
  }
  if (failed || code != 0)
    mp__log(MP_LOG_WARNING, "%s; %d task(s) failed", why, failed);
  /* Only a worker that could not come up by itself (its initializer
   * crashed or exited, its bootstrap failed) counts toward breaking the
   * pool.  A worker that was ready and then died idle, or one killed from
   * outside (SIGKILL or SIGTERM: an operator, the OOM killer) while it
   * was still starting, is simply replaced. */
  if (!w->ready && failed == 0 && code != 0 && code != -9 && code != -15)
    p->start_deaths++;
  if (p->start_deaths >= START_DEATHS_MAX && !p->broken) {
    p->broken = 1;
    p->broken_msg = mp__strdup("pool workers keep dying before they "
                               "answer a task");
    fail_everything(p, MP_EBROKEN, p->broken_msg, dl);
  }
  int more_work = p->state == P_RUN || (p->state == P_CLOSE && !p->stops_sent);
  if (more_work && !p->broken) {
    int rc = start_worker(p, (int)i);
    if (rc != 0) {
      mp__log(MP_LOG_ERROR, "cannot replace a pool worker: %s",
              mp_last_error_message());
      w->state = W_GONE;
    }
  } else {
    w->state = W_GONE;
  }
  dispatch(p);
  maybe_finish(p);
}

static int all_gone(mp_pool *p) {
  for (int i = 0; i < p->nworkers; i++)
    if (p->w[i].state == W_RUNNING)
      return 0;
  return 1;
}

static void wake_watcher(mp_pool *p) {
  if (p->wake_w != MPI_BAD_FD)
    mpi_stream_write(p->wake_w, "w", 1);
}

/* ---- reading results ------------------------------------------------------ */

/* Make a napping handler read the results again (any thread, pool lock
 * held or not: a wake lost to the race without the lock costs at most
 * one HANDLER_NAP). */
static void handler_wake(mp_pool *p) {
  if (p != NULL && mp__xchg32(&p->lazy, 0) != 0)
    mpi_cond_signal(p->steal_cv);
}

/* One message from the results queue (pool lock held; not terminated). */
static void handle_result(mp_pool *p, const unsigned char *buf, size_t n,
                          done_list *dl) {
  res_hdr h;
  if (n < sizeof h)
    return;
  memcpy(&h, buf, sizeof h);
  if (h.kind == RES_DEATH) {
    worker_ended(p, h.worker, h.gen, dl);
    wake_watcher(p);
    mp__async_lock(); /* mp_pool_join may be waiting for this */
    async_broadcast();
    mp__async_unlock();
  } else if (h.kind == RES_READY) {
    if (h.worker < (uint32_t)p->nworkers && p->w[h.worker].gen == h.gen &&
        p->w[h.worker].state == W_RUNNING) {
      p->w[h.worker].ready = 1;
      p->start_deaths = 0;
    }
  } else if (h.kind == RES_INIT_FAILED && !p->broken) {
    char msg[600];
    err_rec r;
    const char *m = "initializer failed";
    if (n >= sizeof h + sizeof r) {
      memcpy(&r, buf + sizeof h, sizeof r);
      size_t ml = r.len < n - sizeof h - sizeof r ? r.len
                                                  : n - sizeof h - sizeof r;
      snprintf(msg, sizeof msg, "pool initializer failed: %.*s", (int)ml,
               (const char *)buf + sizeof h + sizeof r);
      m = msg;
    }
    p->broken = 1;
    p->broken_msg = mp__strdup(m);
    mp__log(MP_LOG_ERROR, "%s", m);
    fail_everything(p, MP_EBROKEN, m, dl);
  } else if (h.kind == RES_CHUNK && h.worker < (uint32_t)p->nworkers &&
             p->w[h.worker].head != NULL &&
             p->w[h.worker].head->seq == h.seq &&
             h.values_len <= n - sizeof h) {
    chunk *c = unassign_head(&p->w[h.worker]);
    p->start_deaths = 0;
    /* Adapt the prefetch to the time a chunk takes. */
    if (c->job->type == J_ARRAY) { /* time per item: chunks vary in size */
      if (c->ncalls > 0 && h.nerrors == 0 && !c->job->counter)
        kernel_timed(p, c->job->kernel, h.elapsed / (double)c->ncalls);
    } else {
      p->chunk_time = p->chunk_time == 0
                          ? h.elapsed
                          : 0.8 * p->chunk_time + 0.2 * h.elapsed;
      int pf = (int)(LATENCY_TARGET / (p->chunk_time + 1e-9));
      p->prefetch = pf < 1 ? 1 : pf > PREFETCH_MAX ? PREFETCH_MAX : pf;
    }
    const unsigned char *values = buf + sizeof h;
    chunk_answer(c, &h, values, values + h.values_len,
                 n - sizeof h - h.values_len, dl);
    dispatch(p);
    maybe_finish(p);
  }
}

static int end_of_handler(mp_pool *p) {
  return p->state != P_RUN && all_gone(p);
}

/* Read the results, unless callers waiting for a result read them
 * themselves (see steal_one): then stay parked, running the callbacks
 * they hand over. */
static int handler_should_look(void *arg) {
  mp_pool *p = arg;
  return mp__load32(&p->stealers) != 0 || mp__load32(&p->has_deferred) != 0;
}

static void take_deferred(mp_pool *p, done_list *dl) {
  *dl = *p->deferred;
  p->deferred->head = p->deferred->tail = NULL;
  mp__store32(&p->has_deferred, 0);
}

static void handler_main(void *arg) {
  mp_pool *p = arg;
  mp__store64(&p->handler_tid, (uint64_t)mpi_thread_id());
  unsigned char *buf = NULL;
  size_t cap = 0;
  for (;;) {
    done_list dl;
    if (mp__load32(&p->stealers) != 0 || mp__load32(&p->lazy) != 0 ||
        mp__load32(&p->has_deferred) != 0) {
      mpi_mutex_lock(p->mu);
      while (p->deferred->head == NULL &&
             (mp__load32(&p->stealers) != 0 || mp__load32(&p->lazy) != 0)) {
        p->parked = 1;
        if (mpi_cond_wait(p->steal_cv, p->mu, HANDLER_NAP) != 0)
          mp__store32(&p->lazy, 0); /* napped enough: read again */
        p->parked = 0;
      }
      take_deferred(p, &dl);
      mpi_mutex_unlock(p->mu);
      done_run(&dl);
    }
    if (mp__queue_wait_readable(p->results, -1, handler_should_look, p) != 0)
      break;
    /* Taken and handled under the pool's lock, so that messages are
     * handled in the order they were put, whoever takes them; a few at a
     * time, as they come. */
    size_t n = 0;
    int rc = 0, end;
    dl.head = dl.tail = NULL;
    mpi_mutex_lock(p->mu);
    for (int k = 0; k < HANDLER_BATCH; k++) {
      if (k > 0 && !mp__queue_readable(p->results))
        break; /* (an empty get costs an error message) */
      rc = mp__queue_try_get_into(p->results, buf, cap, &n);
      if (rc != 0)
        break;
      if (p->state != P_TERMINATE)
        handle_result(p, buf, n, &dl);
    }
    end = end_of_handler(p);
    mpi_mutex_unlock(p->mu);
    done_run(&dl);
    if (end)
      break;
    if (rc == MP_ERANGE) {
      unsigned char *b = realloc(buf, n);
      if (b == NULL)
        break;
      buf = b;
      cap = n;
    } else if (rc != 0 && rc != MP_EEMPTY) {
      break; /* closed: terminate */
    }
  }
  free(buf);
  done_list dl;
  mpi_mutex_lock(p->mu);
  take_deferred(p, &dl);
  p->stopping = 1;
  mpi_cond_signal(p->feeder_cv);
  mpi_mutex_unlock(p->mu);
  done_run(&dl);
  wake_watcher(p);
}

/* A caller waiting for a result reads the results queue itself while it
 * spins: the result then needs no hop through the handler thread (on two
 * CPUs, a third runnable thread made a round trip two to three times
 * slower, depending on where the scheduler put it).  Whatever it reads
 * it handles as the handler would, under the pool's lock; completions
 * with callbacks go to the handler, where callbacks always run.
 *
 * steal_begin pins the pool (mp_pool_free waits for the pins to go) and
 * counts the caller as a reader; NULL when the async is done or is not
 * this process's, or the caller is the handler itself. */
static mp_pool *steal_begin(mp_async *a) {
  mp_pool *p = NULL;
  mp__async_lock();
  if (a->state != MP__ASYNC_DONE && a->pool != NULL &&
      a->pool->owner_pid == mpi_getpid() &&
      mp__load64(&a->pool->handler_tid) != (uint64_t)mpi_thread_id()) {
    p = a->pool;
    mp__add32(&p->pins, 1);
  }
  mp__async_unlock();
  if (p != NULL) {
    mpi_mutex_lock(p->mu);
    mp__add32(&p->stealers, 1);
    mpi_mutex_unlock(p->mu);
  }
  return p;
}

/* Nothing outstanding: no result can come but a death notice (which
 * wakes the handler).  Pool lock held. */
static int pool_idle(mp_pool *p) {
  if (p->backlog != NULL || p->deferred->head != NULL ||
      mp__queue_readable(p->results))
    return 0;
  for (int i = 0; i < p->nworkers; i++)
    if (p->w[i].outstanding > 0 || p->w[i].feeding)
      return 0;
  return 1;
}

/* The last reader leaves.  When it got its result and the pool is idle,
 * the handler may stay parked (`lazy`) until work comes that no caller
 * may wait for (assign), a worker ends (post_death), a caller is about to
 * sleep (mp__async_sleep), the pool stops, or HANDLER_NAP passes: waking
 * it after every round trip cost more than the round trip itself.
 * Otherwise the handler reads again at once. */
static void steal_end(mp_pool *p, int got_own) {
  mpi_mutex_lock(p->mu);
  if (mp__add32(&p->stealers, (uint32_t)-1) == 0) {
    if (got_own && pool_idle(p))
      mp__store32(&p->lazy, 1);
    else if (p->parked)
      mpi_cond_signal(p->steal_cv);
  }
  mpi_mutex_unlock(p->mu);
  mp__add32(&p->pins, (uint32_t)-1); /* the last touch of the pool */
}

#define STEAL_MAX 1024 /* larger results are left to the handler */

/* 1: handled a message; 0: none there; -1: leave the rest to the
 * handler (a message too large for this buffer, or the queue closed). */
static int steal_one(mp_pool *p) {
  if (!mp__queue_readable(p->results))
    return 0;
  unsigned char buf[STEAL_MAX];
  size_t n = 0;
  mpi_mutex_lock(p->mu); /* as in handler_main */
  int rc = mp__queue_try_get_into(p->results, buf, sizeof buf, &n);
  if (rc != 0) {
    mpi_mutex_unlock(p->mu);
    return rc == MP_EEMPTY ? 0 : -1;
  }
  done_list dl = {NULL, NULL}, here = {NULL, NULL};
  if (p->state != P_TERMINATE)
    handle_result(p, buf, n, &dl);
  for (done_item *d = dl.head, *next; d != NULL; d = next) {
    next = d->next;
    d->next = NULL;
    int cb = d->rc == 0 ? d->a->cb != NULL : d->a->ecb != NULL;
    done_list *to = cb ? p->deferred : &here;
    if (to->tail)
      to->tail->next = d;
    else
      to->head = d;
    to->tail = d;
  }
  if (p->deferred->head != NULL) {
    mp__store32(&p->has_deferred, 1);
    if (p->parked)
      mpi_cond_signal(p->steal_cv);
  }
  mpi_mutex_unlock(p->mu);
  done_run(&here);
  return 1;
}

/* Process kind: post a death notice when a worker's sentinel fires. */
static void watcher_main(void *arg) {
  mp_pool *p = arg;
  size_t cap = (size_t)p->nworkers + 1;
  mpi_fd *h = malloc(cap * sizeof *h);
  int *who = malloc(cap * sizeof *who);
  int *ready = malloc(cap * sizeof *ready);
  if (h == NULL || who == NULL || ready == NULL)
    goto out;
  for (;;) {
    size_t n = 0;
    mpi_mutex_lock(p->mu);
    if (p->stopping) {
      mpi_mutex_unlock(p->mu);
      break;
    }
    h[n++] = p->wake_r;
    for (int i = 0; i < p->nworkers; i++) {
      worker *w = &p->w[i];
      if (w->state == W_RUNNING && !w->death_posted && w->proc != NULL) {
        who[n] = i;
        h[n++] = (mpi_fd)mp_process_sentinel(w->proc);
      }
    }
    mpi_mutex_unlock(p->mu);
    if (mpi_wait(h, n, -1, ready) < 0)
      continue;
    if (ready[0]) {
      char junk[64];
      size_t got;
      mpi_stream_recv(p->wake_r, junk, sizeof junk, &got);
    }
    for (size_t k = 1; k < n; k++) {
      if (!ready[k])
        continue;
      uint32_t gen;
      mpi_mutex_lock(p->mu);
      worker *w = &p->w[who[k]];
      w->death_posted = 1;
      gen = w->gen;
      mpi_mutex_unlock(p->mu);
      post_death(p->results, (uint32_t)who[k], gen);
      handler_wake(p);
    }
  }
out:
  free(h);
  free(who);
  free(ready);
}

/* ---- creating and ending pools ------------------------------------------- */

static int check_pool(mp_pool *p, const char *what) {
  if (p == NULL)
    return mp__error(MP_EINVAL, "%s: NULL pool", what);
  if (p->owner_pid != mpi_getpid())
    return mp__error(MP_ESTATE, "%s: the pool belongs to process %lld", what,
                     (long long)p->owner_pid);
  return 0;
}

static void pool_release(mp_pool *p) {
  if (p->w != NULL)
    for (int i = 0; i < p->nworkers; i++)
      mp_queue_free(p->w[i].inbox);
  free(p->w);
  mp_queue_free(p->results);
  if (p->wake_r != MPI_BAD_FD)
    mpi_stream_close(p->wake_r);
  if (p->wake_w != MPI_BAD_FD)
    mpi_stream_close(p->wake_w);
  if (p->feeder_cv)
    mpi_cond_free(p->feeder_cv);
  if (p->steal_cv)
    mpi_cond_free(p->steal_cv);
  free(p->deferred);
  if (p->mu)
    mpi_mutex_free(p->mu);
  mp_args_free(p->initargs);
  free(p->broken_msg);
  mp__seg_unref(p->scratch);
  mp__seg_unref(p->ctl);
  for (int k = 0; k < SPARE_N; k++)
    free(p->spare[k]);
  if (p->scratch_mu)
    mpi_mutex_free(p->scratch_mu);
  free(p);
}

static void unregister_pool(mp_pool *p) {
  mpi_lock();
  for (mp_pool **pp = &all_pools; *pp; pp = &(*pp)->next_pool)
    if (*pp == p) {
      *pp = p->next_pool;
      break;
    }
  mpi_unlock();
}

static void stop_everything(mp_pool *p);

int mp_pool_new_ex(mp_pool **out, const mp_pool_options *opt) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_pool_new: NULL out");
  *out = NULL;
  mp_pool_options def = MP_POOL_OPTIONS_INIT;
  if (opt == NULL)
    opt = &def;
  if (opt->kind != MP_POOL_PROCESS && opt->kind != MP_POOL_THREAD)
    return mp__error(MP_EINVAL, "mp_pool_new: unknown kind %d", opt->kind);
  if (opt->maxtasksperchild < 0)
    return mp__error(MP_EINVAL, "maxtasksperchild must be >= 0");
  if (opt->workers < 0)
    return mp__error(MP_EINVAL, "the number of workers must be at least 1");
  int rc;
  if (opt->kind == MP_POOL_PROCESS) {
    if (mp_current_process()->daemon)
      return mp__error(MP_EDAEMONIC,
                       "daemonic processes are not allowed to have children");
  }
  async_init();
  mp_pool *p = calloc(1, sizeof *p);
  if (p == NULL)
    return mp__error(MP_ENOMEM, "mp_pool_new: out of memory");
  p->wake_r = p->wake_w = MPI_BAD_FD;
  p->kind = opt->kind;
  p->nworkers = opt->workers > 0 ? opt->workers : mpi_process_cpu_count();
  p->maxtasks = opt->kind == MP_POOL_PROCESS ? opt->maxtasksperchild : 0;
  p->ctx = opt->context;
  p->init = opt->initializer;
  p->owner_pid = mpi_getpid();
  p->prefetch = 1;
  mpi_lock();
  p->number = ++pool_counter;
  mpi_unlock();
  if (opt->initargs != NULL &&
      (rc = mp_args_copy(&p->initargs, opt->initargs)) != 0)
    goto fail;
  if ((rc = mpi_mutex_new(&p->mu)) != 0 ||
      (rc = mpi_cond_new(&p->feeder_cv)) != 0 ||
      (rc = mpi_cond_new(&p->steal_cv)) != 0 ||
      (rc = mpi_mutex_new(&p->scratch_mu)) != 0)
    goto fail;
  if ((p->deferred = calloc(1, sizeof *p->deferred)) == NULL) {
    rc = mp__error(MP_ENOMEM, "mp_pool_new: out of memory");
    goto fail;
  }
  p->w = calloc((size_t)p->nworkers, sizeof *p->w);
  if (p->w == NULL) {
    rc = mp__error(MP_ENOMEM, "mp_pool_new: out of memory");
    goto fail;
  }
  if ((rc = mp_queue_new_ex(&p->results, 0, RESULTS_BUFFER, 0)) != 0)
    goto fail;
  for (int i = 0; i < p->nworkers; i++)
    if ((rc = mp_queue_new_ex(&p->w[i].inbox, 0, INBOX_BUFFER, 0)) != 0)
      goto fail;
  if (p->kind == MP_POOL_PROCESS &&
      (rc = mpi_stream_pair(1, &p->wake_r, &p->wake_w)) != 0)
    goto fail;
  for (int i = 0; i < p->nworkers; i++)
    if ((rc = start_worker(p, i)) != 0)
      goto fail_workers;
  if ((rc = mpi_thread_start(handler_main, p, &p->handler)) != 0 ||
      (rc = mpi_thread_start(feeder_main, p, &p->feeder)) != 0 ||
      (p->kind == MP_POOL_PROCESS &&
       (rc = mpi_thread_start(watcher_main, p, &p->watcher)) != 0))
    goto fail_workers;
  mpi_lock();
  p->next_pool = all_pools;
  all_pools = p;
  mpi_unlock();
  mp__at_exit_install();
  *out = p;
  return 0;
fail_workers:
  {
    char msg[512];
    mp__strlcpy(msg, mp_last_error_message(), sizeof msg);
    mpi_mutex_lock(p->mu);
    p->state = P_TERMINATE;
    mpi_mutex_unlock(p->mu);
    stop_everything(p);
    mp__error(rc, "%s", msg);
  }
fail:
  pool_release(p);
  return rc;
}

int mp_pool_new(mp_pool **out, int workers) {
  mp_pool_options o = MP_POOL_OPTIONS_INIT;
  o.workers = workers > 0 ? workers : 0;
  return mp_pool_new_ex(out, &o);
}

int mp_thread_pool_new(mp_pool **out, int workers) {
  mp_pool_options o = MP_POOL_OPTIONS_INIT;
  o.kind = MP_POOL_THREAD;
  o.workers = workers > 0 ? workers : 0;
  return mp_pool_new_ex(out, &o);
}

/* Stop the helper threads and the workers (state already P_TERMINATE or
 * finished).  Called once, by terminate or join. */
static void stop_everything(mp_pool *p) {
  handler_wake(p);
  mpi_mutex_lock(p->mu);
  p->stopping = 1;
  mpi_cond_signal(p->feeder_cv);
  mpi_mutex_unlock(p->mu);
  wake_watcher(p);
  if (p->watcher) {
    mpi_thread_join(p->watcher);
    p->watcher = NULL;
  }
  /* Inboxes closed: a worker waiting for work, and the feeder waiting for
   * room, give up. */
  for (int i = 0; i < p->nworkers; i++)
    mp_queue_close(p->w[i].inbox);
  if (p->feeder) {
    mpi_thread_join(p->feeder);
    p->feeder = NULL;
  }
  for (int i = 0; i < p->nworkers; i++) {
    worker *w = &p->w[i];
    if (w->proc != NULL) {
      mp_process_terminate(w->proc);
      if (mp_process_join(w->proc, 2.0) != 0) {
        mp_process_kill(w->proc);
        mp_process_join(w->proc, MP_FOREVER);
      }
      mp_process_free(w->proc);
      w->proc = NULL;
    }
  }
  mp_queue_close(p->results); /* thread workers stop putting; handler ends */
  if (p->handler) {
    mpi_thread_join(p->handler);
    p->handler = NULL;
  }
  for (int i = 0; i < p->nworkers; i++) {
    worker *w = &p->w[i];
    if (w->thread != NULL) {
      mpi_thread_join(w->thread);
      w->thread = NULL;
    }
    w->state = W_GONE;
  }
}

int mp_pool_close(mp_pool *p) {
  int rc = check_pool(p, "mp_pool_close");
  if (rc != 0)
    return rc;
  mpi_mutex_lock(p->mu);
  if (p->state == P_RUN) {
    p->state = P_CLOSE;
    maybe_finish(p);
  }
  mpi_mutex_unlock(p->mu);
  handler_wake(p);
  return 0;
}

/* The pool's own thread cannot wait for itself. */
static int in_callback(mp_pool *p, const char *what) {
  uint64_t tid = mp__load64(&p->handler_tid);
  if (tid != 0 && tid == (uint64_t)mpi_thread_id())
    return mp__error(MP_ESTATE, "%s: called from the pool's own callback "
                                "thread, which it would wait for", what);
  return 0;
}

int mp_pool_terminate(mp_pool *p) {
  int rc = check_pool(p, "mp_pool_terminate");
  if (rc != 0 || (rc = in_callback(p, "mp_pool_terminate")) != 0)
    return rc;
  done_list dl = {NULL, NULL};
  mpi_mutex_lock(p->mu);
  int first = p->state != P_TERMINATE && !p->joined;
  p->state = P_TERMINATE;
  if (first)
    fail_everything(p, MP_ECLOSED, "the pool was terminated", &dl);
  mpi_mutex_unlock(p->mu);
  if (first) {
    mp__log(MP_LOG_DEBUG, "terminating pool");
    stop_everything(p);
    mpi_mutex_lock(p->mu);
    p->joined = 1;
    mpi_mutex_unlock(p->mu);
    mp__async_lock();
    p->finished = 1;
    async_broadcast();
    mp__async_unlock();
  }
  done_run(&dl);
  return 0;
}

int mp_pool_join(mp_pool *p, double timeout) {
  int rc = check_pool(p, "mp_pool_join");
  if (rc != 0 || (rc = mp__check_timeout(timeout)) != 0 ||
      (rc = in_callback(p, "mp_pool_join")) != 0)
    return rc;
  mpi_mutex_lock(p->mu);
  int state = p->state, joined = p->joined;
  mpi_mutex_unlock(p->mu);
  if (state == P_RUN)
    return mp__error(MP_ESTATE, "join a pool after close or terminate");
  if (joined)
    return 0;
  /* The handler ends once every worker is gone. */
  double deadline = timeout < 0 ? -1 : mpi_now() + timeout;
  mpi_mutex_lock(p->mu);
  for (;;) {
    int gone = all_gone(p);
    if (gone || p->joined)
      break;
    mpi_mutex_unlock(p->mu);
    mp__async_lock();
    if (!p->finished)
      rc = mp__async_sleep(deadline < 0 ? mpi_now() + 0.05
                                        : (deadline < mpi_now() + 0.05
                                               ? deadline : mpi_now() + 0.05));
    mp__async_unlock();
    mpi_mutex_lock(p->mu);
    if (deadline >= 0 && mpi_now() >= deadline && !all_gone(p)) {
      mpi_mutex_unlock(p->mu);
      return mp__error(MP_ETIMEDOUT, "pool workers still running after %g s",
                       timeout);
    }
  }
  int do_stop = !p->joined;
  p->joined = 1;
  mpi_mutex_unlock(p->mu);
  if (do_stop)
    stop_everything(p);
  return 0;
}

void mp_pool_free(mp_pool *p) {
  if (p == NULL || p->owner_pid != mpi_getpid() ||
      in_callback(p, "mp_pool_free") != 0)
    return;
  mp_pool_terminate(p);
  unregister_pool(p);
  /* Callers still waiting in another thread were answered by terminate;
   * let them stop reading (see steal_begin). */
  while (mp__load32(&p->pins) != 0)
    mpi_yield();
  pool_release(p);
}

int mp_pool_workers(mp_pool *p) {
  return check_pool(p, "mp_pool_workers") ? MP_EINVAL : p->nworkers;
}

int mp_pool_worker_pids(mp_pool *p, int64_t *pids, size_t cap) {
  int rc = check_pool(p, "mp_pool_worker_pids");
  if (rc != 0)
    return rc;
  mpi_mutex_lock(p->mu);
  for (int i = 0; i < p->nworkers && (size_t)i < cap; i++)
    pids[i] = p->w[i].state == W_RUNNING ? p->w[i].pid : 0;
  mpi_mutex_unlock(p->mu);
  return p->nworkers;
}

/* At exit (and when a pool's process ends): terminate what is left, as
 * Python's finalizers do. */
void mp__pools_finish(void) {
  for (;;) {
    mpi_lock();
    mp_pool *p = all_pools;
    if (p != NULL)
      all_pools = p->next_pool;
    mpi_unlock();
    if (p == NULL)
      break;
    if (p->owner_pid == mpi_getpid())
      mp_pool_terminate(p);
  }
}

/* In a forked child: the parent's pools are not ours (their threads do
 * not exist here); forget them and make the async lock fresh. */
void mp__pools_fork_child(void) {
  all_pools = NULL;
  async_mu = NULL;
  async_cv = NULL;
}

/* ---- submitting work ------------------------------------------------------ */

static int check_open(mp_pool *p) {
  if (p->broken)
    return mp__error(MP_EBROKEN, "%s", p->broken_msg);
  if (p->state != P_RUN)
    return mp__error(MP_ESTATE, "the pool is not running (closed)");
  return 0;
}

static job *job_new(mp_pool *p, int type, size_t ncalls, size_t nchunks) {
  job *j = calloc(1, sizeof *j);
  if (j == NULL)
    return NULL;
  j->type = type;
  j->pool = p;
  j->ncalls = ncalls;
  j->nchunks = nchunks;
  j->chunks_left = nchunks;
  j->fail_part = SIZE_MAX;
  if (type == J_MAP && nchunks > 0 &&
      (j->parts = calloc(nchunks, sizeof *j->parts)) == NULL) {
    free(j);
    return NULL;
  }
  return j;
}

/* Queue a job's chunks (built, pool lock held) and dispatch. */
static void queue_chunks(mp_pool *p, chunk *list) {
  while (list != NULL) {
    chunk *next = list->next;
    backlog_push(p, list);
    list = next;
  }
  dispatch(p);
}

static void free_chunks(chunk *list) {
  while (list != NULL) {
    chunk *next = list->next;
    free(list->msg);
    free(list);
    list = next;
  }
}

/* Build the chunks of calls over `items` (each a call's only argument, or
 * with F_STAR a tuple of its arguments). */
static int build_chunks(mp_pool *p, mp_task_fn fn, uint32_t flags,
                        const mp_args *items, size_t cs, job *j,
                        chunk **out) {
  size_t n = mp_args_count(items);
  chunk *head = NULL, *tail = NULL;
  int rc = 0;
  for (size_t k = 0, first = 0; first < n; k++, first += cs) {
    size_t cnt = n - first < cs ? n - first : cs;
    const void *bytes;
    size_t len;
    chunk *c = calloc(1, sizeof *c);
    if (c == NULL) {
      rc = mp__error(MP_ENOMEM, "out of memory");
      break;
    }
    c->job = j;
    c->index = k;
    c->first = first;
    if ((rc = mp__args_range(items, first, cnt, &bytes, &len)) != 0 ||
        (rc = build_msg(p, fn, flags, bytes, len, cnt, c)) != 0) {
      free(c);
      break;
    }
    if (tail)
      tail->next = c;
    else
      head = c;
    tail = c;
  }
  if (rc != 0) {
    free_chunks(head);
    return rc;
  }
  *out = head;
  return 0;
}

static int submit(mp_pool *p, int type, mp_task_fn fn, uint32_t flags,
                  const mp_args *items, size_t chunksize, mp_result_cb cb,
                  mp_error_cb ecb, void *arg, mp_async **out,
                  const char *what) {
  if (out != NULL)
    *out = NULL;
  int rc = check_pool(p, what);
  if (rc != 0)
    return rc;
  if (fn == NULL || items == NULL)
    return mp__error(MP_EINVAL, "%s: NULL function or items", what);
  if (mp__args_has_objects(items))
    return mp__error(MP_ETYPE, "%s: objects cannot travel in task "
                               "arguments; give them to the initializer",
                     what);
  size_t n = mp_args_count(items);
  if (flags & F_STAR)
    for (size_t i = 0; i < n; i++)
      if (mp_args_type(items, i) != MP_ARG_TUPLE)
        return mp__error(MP_ETYPE, "%s: item %zu is not a tuple", what, i);
  if (chunksize == 0) {
    size_t d = 4 * (size_t)p->nworkers;
    chunksize = (n + d - 1) / d;
    if (chunksize == 0)
      chunksize = 1;
  }
  size_t nchunks = (n + chunksize - 1) / chunksize;
  mp_async *a = async_new(cb, ecb, arg);
  if (a == NULL)
    return mp__error(MP_ENOMEM, "out of memory");
  job *j = job_new(p, type, n, nchunks);
  if (j == NULL) {
    free(a);
    return mp__error(MP_ENOMEM, "out of memory");
  }
  j->async = a;
  a->job = j;
  a->pool = p;
  chunk *list = NULL;
  mpi_mutex_lock(p->mu);
  rc = check_open(p);
  if (rc == 0)
    rc = build_chunks(p, fn, flags, items, chunksize, j, &list);
  if (rc != 0) {
    mpi_mutex_unlock(p->mu);
    free(j->parts);
    free(j);
    free(a);
    return rc;
  }
  if (out != NULL)
    *out = a;
  else
    a->refs--; /* nobody will free a handle */
  if (nchunks == 0) { /* map over nothing: done now */
    j->done = 1;
    mpi_mutex_unlock(p->mu);
    mp_args *empty = NULL;
    mp_args_new(&empty);
    free(j->parts);
    free(j);
    async_complete(a, 0, 0, NULL, empty);
    return 0;
  }
  queue_chunks(p, list);
  mpi_mutex_unlock(p->mu);
  return 0;
}

int mp_pool_apply_async(mp_pool *p, mp_task_fn fn, const mp_args *args,
                        mp_result_cb cb, mp_error_cb ecb, void *arg,
                        mp_async **out) {
  mp_args *one = NULL, *none = NULL;
  int rc = 0;
  if (args == NULL && (rc = mp_args_new(&none)) != 0)
    return rc;
  if ((rc = mp_args_new(&one)) == 0 &&
      (rc = mp_args_add_tuple(one, args ? args : none)) == 0)
    rc = submit(p, J_APPLY, fn, F_STAR | F_TUPLES, one, 1, cb, ecb, arg, out,
                "mp_pool_apply_async");
  else if (rc == MP_ETYPE)
    rc = mp__error(MP_ETYPE, "mp_pool_apply_async: objects cannot travel in "
                             "task arguments; give them to the initializer");
  mp_args_free(one);
  mp_args_free(none);
  return rc;
}

int mp_pool_map_async(mp_pool *p, mp_task_fn fn, const mp_args *items,
                      size_t chunksize, mp_result_cb cb, mp_error_cb ecb,
                      void *arg, mp_async **out) {
  return submit(p, J_MAP, fn, 0, items, chunksize, cb, ecb, arg, out,
                "mp_pool_map_async");
}

int mp_pool_starmap_async(mp_pool *p, mp_task_fn fn, const mp_args *items,
                          size_t chunksize, mp_result_cb cb, mp_error_cb ecb,
                          void *arg, mp_async **out) {
  return submit(p, J_MAP, fn, F_STAR, items, chunksize, cb, ecb, arg, out,
                "mp_pool_starmap_async");
}

/* Wait for an async and hand its result over (no copy: the handle is
 * ours alone, freed here). */
static int get_owned(mp_async *a, mp_args **result) {
  int rc = mp_async_get(a, MP_FOREVER, NULL);
  if (rc == 0 && result != NULL) {
    mp__async_lock();
    *result = a->result;
    a->result = NULL;
    mp__async_unlock();
  }
  mp_async_free(a);
  return rc;
}

int mp_pool_apply(mp_pool *p, mp_task_fn fn, const mp_args *args,
                  mp_args **result) {
  mp_async *a;
  if (result != NULL)
    *result = NULL;
  int rc = mp_pool_apply_async(p, fn, args, NULL, NULL, NULL, &a);
  return rc != 0 ? rc : get_owned(a, result);
}

int mp_pool_map(mp_pool *p, mp_task_fn fn, const mp_args *items,
                size_t chunksize, mp_args **results) {
  mp_async *a;
  if (results != NULL)
    *results = NULL;
  int rc = mp_pool_map_async(p, fn, items, chunksize, NULL, NULL, NULL, &a);
  return rc != 0 ? rc : get_owned(a, results);
}

int mp_pool_starmap(mp_pool *p, mp_task_fn fn, const mp_args *items,
                    size_t chunksize, mp_args **results) {
  mp_async *a;
  if (results != NULL)
    *results = NULL;
  int rc =
      mp_pool_starmap_async(p, fn, items, chunksize, NULL, NULL, NULL, &a);
  return rc != 0 ? rc : get_owned(a, results);
}

/* ---- array maps (the arrays' side is pool_array.c) ----------------------- */

int mp__pool_local(mp_pool *p) { return p->kind == MP_POOL_THREAD; }

int mp__pool_check(mp_pool *p, const char *what) {
  int rc = check_pool(p, what);
  if (rc == 0) {
    mpi_mutex_lock(p->mu);
    rc = check_open(p);
    mpi_mutex_unlock(p->mu);
  }
  return rc;
}

mp__seg *mp__pool_scratch_take(mp_pool *p, size_t size) {
  mp__seg *s = NULL;
  mpi_mutex_lock(p->scratch_mu);
  if (p->scratch != NULL && mpi_shm_size(p->scratch->shm) >= size) {
    s = p->scratch;
    p->scratch = NULL;
  }
  mpi_mutex_unlock(p->scratch_mu);
  return s;
}

void mp__pool_scratch_give(mp_pool *p, mp__seg *s) {
  mpi_mutex_lock(p->scratch_mu);
  if (p->scratch == NULL ||
      mpi_shm_size(p->scratch->shm) < mpi_shm_size(s->shm)) {
    mp__seg *old = p->scratch;
    p->scratch = s;
    s = old;
  }
  mpi_mutex_unlock(p->scratch_mu);
  mp__seg_unref(s);
}

mp__seg *mp__pool_ctl_take(mp_pool *p, size_t *off) {
  mp__seg *s = NULL;
  mpi_mutex_lock(p->scratch_mu);
  if (p->ctl == NULL)
    mp__seg_new(MP__CTL_SLOTS * MP__CTL_SLOT, &p->ctl); /* else: none */
  for (int k = 0; p->ctl != NULL && k < MP__CTL_SLOTS; k++)
    if (!(p->ctl_used[k / 32] & (1u << (k % 32)))) {
      p->ctl_used[k / 32] |= 1u << (k % 32);
      *off = (size_t)k * MP__CTL_SLOT;
      mp__seg_ref(p->ctl);
      s = p->ctl;
      break;
    }
  mpi_mutex_unlock(p->scratch_mu);
  mp__clear_error();
  return s;
}

void mp__pool_ctl_give(mp_pool *p, size_t off) {
  size_t k = off / MP__CTL_SLOT;
  mpi_mutex_lock(p->scratch_mu);
  p->ctl_used[k / 32] &= ~(1u << (k % 32));
  mpi_mutex_unlock(p->scratch_mu);
}

/* The chunks of an array job: `chunksize` items each, or guided (as
 * OpenMP's schedule(guided)): a share of what is left, 1 / (2 * workers)
 * of it, so that the chunks shrink as the end nears, but not below
 * 1 / (32 * workers) of the whole, nor below CHUNK_TIME_MIN of work once
 * the kernel's speed is known (a kernel of nanoseconds gets few chunks:
 * each costs a message or two), nor above a worker's share. */
static size_t next_chunk(mp_pool *p, size_t count, size_t left,
                         size_t chunksize, double item_time) {
  if (chunksize > 0)
    return left < chunksize ? left : chunksize;
  size_t w = (size_t)p->nworkers;
  size_t least = count / (32 * w);
  if (item_time > 0 && CHUNK_TIME_MIN / item_time > (double)least) {
    double share = (double)((count + w - 1) / w);
    double want = CHUNK_TIME_MIN / item_time;
    least = (size_t)(want < share ? want : share);
  }
  size_t n = (left + 2 * w - 1) / (2 * w);
  if (n < least)
    n = least;
  if (n == 0)
    n = 1;
  return left < n ? left : n;
}

int mp__pool_run_array(mp_pool *p, void (*fn)(void), mp__arrjob *arr,
                       size_t count, size_t chunksize, mp_result_cb cb,
                       mp_error_cb ecb, void *arg, mp_async **out,
                       const char *what) {
  size_t nchunks = 0;
  mpi_mutex_lock(p->mu);
  double *kt = kernel_time(p, fn);
  double item_time = kt != NULL ? *kt : 0;
  mpi_mutex_unlock(p->mu);
  /* By a counter: one message per worker (fewer for fewer chunks). */
  size_t counted = mp__array_counted(arr);
  if (counted > 0)
    nchunks = counted < (size_t)p->nworkers ? counted : (size_t)p->nworkers;
  for (size_t left = count; counted == 0 && left > 0; nchunks++)
    left -= next_chunk(p, count, left, chunksize, item_time);
  mp_async *a = async_new(cb, ecb, arg);
  job *j = a != NULL ? job_new(p, J_ARRAY, count, nchunks) : NULL;
  if (j == NULL) {
    free(a);
    mp__array_unref(arr);
    return mp__error(MP_ENOMEM, "%s: out of memory", what);
  }
  j->async = a;
  j->arr = arr;
  j->kernel = fn;
  j->counter = counted > 0;
  a->job = j;
  a->pool = p;
  chunk *head = NULL, *tail = NULL;
  int rc = 0;
  unsigned char *desc = NULL;
  size_t k = 0;
  mpi_mutex_lock(p->mu);
  rc = check_open(p);
  for (size_t first = 0; rc == 0 && k < nchunks; k++) {
    size_t n = counted ? count
                       : next_chunk(p, count, count - first, chunksize,
                                    item_time);
    size_t dn = 0;
    chunk *c = calloc(1, sizeof *c);
    if (c == NULL || (rc = mp__array_desc(arr, first, n, &desc, &dn)) != 0 ||
        (rc = build_msg(p, (mp_task_fn)fn, F_ARRAY, desc, dn, 1, c)) != 0) {
      free(c);
      if (rc == 0)
        rc = mp__error(MP_ENOMEM, "%s: out of memory", what);
      break;
    }
    c->job = j;
    c->index = k;
    c->first = counted ? 0 : first;
    c->ncalls = counted ? 0 : n;
    if (tail)
      tail->next = c;
    else
      head = c;
    tail = c;
    first += counted ? 0 : n;
  }
  free(desc);
  if (rc != 0) {
    mpi_mutex_unlock(p->mu);
    free_chunks(head);
    j->done = 1;
    j->chunks_left = 0;
    job_free_if_done(j); /* and its arrays */
    free(a);
    return rc;
  }
  if (out != NULL)
    *out = a;
  else
    a->refs--; /* nobody will free a handle */
  if (nchunks == 0) { /* over nothing: done now */
    j->done = 1;
    j->chunks_left = 0;
    job_free_if_done(j);
    mpi_mutex_unlock(p->mu);
    mp_args *empty = NULL;
    mp_args_new(&empty);
    async_complete(a, 0, 0, NULL, empty);
    return 0;
  }
  queue_chunks(p, head);
  mpi_mutex_unlock(p->mu);
  return 0;
}

/* The caller of a sync map by a counter: it sleeps until the worker that
 * does the last chunk wakes it, and completes the job itself, rather than
 * waiting for the workers' answers to come through the results queue and
 * the pool's result thread (a second wake-up, tens of microseconds on
 * two CPUs: as long as a short map's work).  A failure completes the
 * job through the result thread as usual: the caller looks every
 * millisecond.  The caller holds a reference to arr. */
void mp__pool_array_wait(mp_pool *p, mp_async *a, mp__arrjob *arr) {
  double spin = mpi_now() + mp__spin_seconds(); /* as any wait does */
  while (mp__load32(&a->done_flag) == 0) {
    if (mp__array_all_done(arr, NULL)) {
      done_list dl = {NULL, NULL};
      mpi_mutex_lock(p->mu); /* a job is freed under it, after job_done
                                has cleared a->job (under the async lock) */
      mp__async_lock();
      job *j = a->job;
      mp__async_unlock();
      if (j != NULL)
        array_settle(j, &dl);
      mpi_mutex_unlock(p->mu);
      done_run(&dl);
      return;
    }
    if (mpi_now() < spin)
      mpi_yield();
    else
      mp__array_sleep(arr, 0.001);
  }
}

/* ---- cancel ---------------------------------------------------------------- */

/* Drop a job's chunks not yet given to a worker (pool lock held). */
/* Drop the job's queued chunks from index `from` on (pool lock held). */
static void backlog_drop_from(mp_pool *p, job *j, size_t from) {
  chunk **pp = &p->backlog;
  chunk *prev = NULL;
  while (*pp != NULL) {
    chunk *c = *pp;
    if (c->job == j && c->index >= from) {
      *pp = c->next;
      if (p->backlog_tail == c)
        p->backlog_tail = prev;
      free(c->msg);
      free(c);
      j->chunks_left--;
    } else {
      prev = c;
      pp = &c->next;
    }
  }
}

/* Remove the job's chunks from the backlog if none has been given to a
 * worker yet (pool lock held): 1 if it was cancelled. */
static int cancel_job(mp_pool *p, job *j, done_list *dl) {
  if (j->done || j->chunks_out > 0 || j->chunks_left != j->nchunks)
    return 0;
  backlog_drop(p, j);
  job_done(j, MP_ECANCELLED, 0, "the task was cancelled", NULL, dl);
  job_free_if_done(j);
  return 1;
}

int mp__pool_cancel(mp_async *a) {
  mp__async_lock();
  mp_pool *p = a->pool;
  int state = a->state;
  mp__async_unlock();
  if (p == NULL || state != MP__ASYNC_PENDING)
    return 0;
  done_list dl = {NULL, NULL};
  mpi_mutex_lock(p->mu);
  int ok = 0;
  mp__async_lock();
  job *j = a->job;
  mp__async_unlock();
  if (j != NULL)
    ok = cancel_job(p, j, &dl);
  mpi_mutex_unlock(p->mu);
  if (ok) {
    mp__async_lock();
    a->cancelled = 1;
    mp__async_unlock();
  }
  done_run(&dl);
  return ok;
}

void mp__pool_cancel_pending(mp_pool *p) {
  done_list dl = {NULL, NULL};
  mpi_mutex_lock(p->mu);
  for (;;) {
    job *j = NULL;
    for (chunk *c = p->backlog; c != NULL; c = c->next)
      if (c->job->type != J_IMAP && !c->job->done &&
          c->job->chunks_out == 0 && c->job->chunks_left == c->job->nchunks) {
        j = c->job;
        break;
      }
    if (j == NULL)
      break;
    mp_async *a = j->async;
    if (cancel_job(p, j, &dl)) {
      mp__async_lock();
      a->cancelled = 1;
      mp__async_unlock();
    }
  }
  mpi_mutex_unlock(p->mu);
  done_run(&dl);
}

/* ---- mp_async ------------------------------------------------------------- */

int mp_async_wait(mp_async *a, double timeout) {
  if (a == NULL)
    return mp__error(MP_EINVAL, "mp_async_wait: NULL");
  int rc = mp__check_timeout(timeout);
  if (rc != 0)
    return rc;
  double deadline = timeout < 0 ? -1 : mpi_now() + timeout;
  /* Spin first, as the queues do: the result often comes within
   * microseconds, and a wake-up across CPUs costs tens of them. */
  double spin = mp__spin_seconds();
  if (spin > 0 && timeout != 0) {
    double until = mpi_now() + spin;
    if (deadline >= 0 && until > deadline)
      until = deadline;
    /* Yielding at every look: the threads this result waits for (a
     * worker, the pool's result thread) may need this very CPU.  While
     * it spins, the caller reads the pool's results itself. */
    mp_pool *p = steal_begin(a);
    for (unsigned looks = 1; mp__load32(&a->done_flag) == 0; looks++) {
      if (p != NULL) {
        int got = steal_one(p);
        if (got < 0) {
          steal_end(p, 0);
          p = NULL;
        }
        if (got == 0)
          mpi_yield();
      } else {
        mpi_yield();
      }
      if ((looks & 15) == 0 && mpi_now() >= until)
        break;
    }
    if (p != NULL)
      steal_end(p, mp__load32(&a->done_flag) != 0);
  }
  mp__async_lock();
  while (a->state != MP__ASYNC_DONE && rc == 0)
    rc = mp__async_sleep(deadline);
  int done = a->state == MP__ASYNC_DONE;
  mp__async_unlock();
  return done ? 0 : mp__error(MP_ETIMEDOUT, "no result within %g s", timeout);
}

int mp_async_get(mp_async *a, double timeout, const mp_args **result) {
  if (result != NULL)
    *result = NULL;
  int rc = mp_async_wait(a, timeout);
  if (rc != 0)
    return rc;
  if (a->rc != 0)
    return mp__error(a->rc, "%s", a->message ? a->message
                                             : mp_strerror(a->rc));
  if (result != NULL)
    *result = a->result;
  return 0;
}

int mp_async_ready(mp_async *a) {
  if (a == NULL)
    return 0;
  mp__async_lock();
  int r = a->state == MP__ASYNC_DONE;
  mp__async_unlock();
  return r;
}

/* 0 once the async is done; MP_EINVAL / MP_ESTATE otherwise. */
static int check_ready(mp_async *a, const char *what) {
  if (a == NULL)
    return mp__error(MP_EINVAL, "%s: NULL", what);
  if (!mp_async_ready(a))
    return mp__error(MP_ESTATE, "the result is not ready");
  return 0;
}

int mp_async_successful(mp_async *a) {
  int rc = check_ready(a, "mp_async_successful");
  return rc != 0 ? rc : a->rc == 0;
}

int mp_async_error(mp_async *a, int *status, const char **message) {
  int rc = check_ready(a, "mp_async_error");
  if (rc != 0)
    return rc;
  if (status != NULL)
    *status = a->rc == MP_ETASK ? a->status : a->rc;
  if (message != NULL)
    *message = a->message;
  return a->rc;
}

int mp_async_cancel(mp_async *a) {
  if (a == NULL)
    return mp__error(MP_EINVAL, "mp_async_cancel: NULL");
  mp__async_lock();
  int already = a->cancelled;
  mp__async_unlock();
  return already ? 1 : mp__pool_cancel(a);
}

int mp_async_cancelled(mp_async *a) {
  if (a == NULL)
    return 0;
  mp__async_lock();
  int c = a->cancelled;
  mp__async_unlock();
  return c;
}

int mp_async_running(mp_async *a) {
  if (a == NULL)
    return 0;
  mp__async_lock();
  int r = a->state == MP__ASYNC_RUNNING;
  mp__async_unlock();
  return r;
}

void mp_async_free(mp_async *a) {
  if (a != NULL)
    async_unref(a);
}

/* ---- imap ------------------------------------------------------------------ */

/* Read input and submit chunks until `window` calls are out (no locks
 * held: next() is the caller's code). */
static int imap_top_up(mp_imap *it) {
  mp_pool *p = it->pool;
  while (!it->input_done && it->submitted - it->yielded + it->chunksize <=
                                it->window) {
    mp_args *calls = NULL;
    int rc = mp_args_new(&calls);
    size_t got = 0;
    while (rc == 0 && got < it->chunksize) {
      mp__args_reset(it->scratch);
      int r = it->next(it->ctx, it->scratch);
      if (r <= 0) {
        it->input_done = 1;
        it->input_rc = r;
        break;
      }
      if ((rc = mp_args_add_tuple(calls, it->scratch)) != 0)
        break;
      got++;
    }
    if (rc != 0) {
      mp_args_free(calls);
      it->input_done = 1;
      it->input_rc = rc;
      return rc;
    }
    if (got > 0) {
      chunk *c = calloc(1, sizeof *c);
      size_t len;
      const void *bytes = mp__args_items(calls, &len);
      mpi_mutex_lock(p->mu);
      rc = c == NULL ? MP_ENOMEM : check_open(p);
      if (rc == 0) {
        c->job = it->job;
        c->first = it->submitted;
        c->index = it->job->nchunks;
        rc = build_msg(p, it->fn, F_STAR | F_TUPLES, bytes, len, got, c);
      }
      if (rc == 0) {
        it->job->nchunks++;
        it->job->chunks_left++;
        it->submitted += got;
        queue_chunks(p, c);
      } else {
        free(c);
      }
      mpi_mutex_unlock(p->mu);
    }
    mp_args_free(calls);
    if (rc != 0) {
      it->input_done = 1;
      it->input_rc = rc;
      return rc;
    }
  }
  return 0;
}

static int imap_new(mp_pool *p, mp_task_fn fn, mp_input_fn next, void *ctx,
                    size_t chunksize, size_t window, int ordered,
                    mp_imap **out, const char *what) {
  if (out != NULL)
    *out = NULL;
  int rc = check_pool(p, what);
  if (rc != 0)
    return rc;
  if (fn == NULL || next == NULL || out == NULL)
    return mp__error(MP_EINVAL, "%s: NULL argument", what);
  if (chunksize == 0)
    chunksize = 1;
  if (window == 0)
    window = 8 * (size_t)p->nworkers;
  if (window < 4 * chunksize)
    window = 4 * chunksize;
  mp_imap *it = calloc(1, sizeof *it);
  if (it == NULL)
    return mp__error(MP_ENOMEM, "out of memory");
  it->pool = p;
  it->ordered = ordered;
  it->fn = fn;
  it->next = next;
  it->ctx = ctx;
  it->chunksize = chunksize;
  it->window = window;
  if ((ordered && (it->ring = calloc(window, sizeof *it->ring)) == NULL) ||
      (it->job = job_new(p, J_IMAP, 0, 0)) == NULL ||
      mp_args_new(&it->scratch) != 0) {
    free(it->ring);
    free(it->job);
    free(it);
    return mp__error(MP_ENOMEM, "out of memory");
  }
  it->job->it = it;
  mpi_mutex_lock(p->mu);
  rc = check_open(p);
  mpi_mutex_unlock(p->mu);
  if (rc != 0) {
    mp_args_free(it->scratch);
    free(it->ring);
    free(it->job);
    free(it);
    return rc;
  }
  imap_top_up(it);
  *out = it;
  return 0;
}

int mp_pool_imap(mp_pool *p, mp_task_fn fn, mp_input_fn next, void *ctx,
                 size_t chunksize, size_t window, mp_imap **out) {
  return imap_new(p, fn, next, ctx, chunksize, window, 1, out,
                  "mp_pool_imap");
}

int mp_pool_imap_unordered(mp_pool *p, mp_task_fn fn, mp_input_fn next,
                           void *ctx, size_t chunksize, size_t window,
                           mp_imap **out) {
  return imap_new(p, fn, next, ctx, chunksize, window, 0, out,
                  "mp_pool_imap_unordered");
}

int mp_imap_next(mp_imap *it, mp_args **result, size_t *index,
                 double timeout) {
  if (result != NULL)
    *result = NULL;
  if (it == NULL)
    return mp__error(MP_EINVAL, "mp_imap_next: NULL iterator");
  int rc = mp__check_timeout(timeout);
  if (rc != 0)
    return rc;
  double deadline = timeout < 0 ? -1 : mpi_now() + timeout;
  for (;;) {
    imap_top_up(it);
    mp__async_lock();
    ientry taken;
    int have = 0;
    if (it->yielded < it->submitted) {
      if (it->ordered) {
        ientry *e = &it->ring[it->yielded % it->window];
        if (e->ready) {
          taken = *e;
          memset(e, 0, sizeof *e);
          have = 1;
        }
      } else if (it->fifo != NULL) {
        ientry *e = it->fifo;
        it->fifo = e->next;
        if (it->fifo == NULL)
          it->fifo_tail = NULL;
        taken = *e;
        free(e);
        have = 1;
      }
    }
    if (have && taken.skip) {
      it->yielded++;
      mp__async_unlock();
      free(taken.message);
      mp_args_free(taken.result);
      continue;
    }
    if (have) {
      it->yielded++;
      mp__async_unlock();
      if (index != NULL)
        *index = taken.index;
      if (taken.rc != 0) {
        rc = mp__error(taken.rc, "%s",
                       taken.message ? taken.message : mp_strerror(taken.rc));
        free(taken.message);
        mp_args_free(taken.result);
        return rc;
      }
      free(taken.message);
      if (result != NULL)
        *result = taken.result;
      else
        mp_args_free(taken.result);
      return 1;
    }
    if (it->input_done && it->yielded == it->submitted) {
      mp__async_unlock();
      if (it->input_rc < 0 && !it->input_rc_given) {
        it->input_rc_given = 1;
        return mp__error(it->input_rc, "the imap input failed");
      }
      return 0;
    }
    rc = mp__async_sleep(deadline);
    mp__async_unlock();
    if (rc == MP_ETIMEDOUT)
      return mp__error(MP_ETIMEDOUT, "no result within %g s", timeout);
  }
}

void mp_imap_free(mp_imap *it) {
  if (it == NULL)
    return;
  mp_pool *p = it->pool;
  job *j = it->job;
  mpi_mutex_lock(p->mu);
  backlog_drop(p, j);
  mp__async_lock();
  j->it = NULL;
  mp__async_unlock();
  job_free_if_done(j);
  mpi_mutex_unlock(p->mu);
  if (it->ring) {
    for (size_t i = 0; i < it->window; i++) {
      free(it->ring[i].message);
      mp_args_free(it->ring[i].result);
    }
    free(it->ring);
  }
  while (it->fifo != NULL) {
    ientry *e = it->fifo;
    it->fifo = e->next;
    free(e->message);
    mp_args_free(e->result);
    free(e);
  }
  mp_args_free(it->scratch);
  free(it);
}
