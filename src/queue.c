/*
 * queue.c - Queue, SimpleQueue and JoinableQueue over a ring in shared
 * memory.
 *
 * Layout: the state (one cache line each for the constants, the producer
 * side, the consumer side and the waiting words), then a ring of `cap`
 * bytes (a power of two).  Producers serialise on the producer lock,
 * consumers on the consumer lock, so one producer and one consumer never
 * contend: each keeps a cached copy of the other side's position and
 * only reads the other's cache line when its copy says "no room" / "no
 * data".
 *
 * Records are 16-byte aligned: a 16-byte header (payload length, kind,
 * the whole message's length) and the payload, which may wrap around the
 * end of the ring.  A message up to a quarter of the ring is one WHOLE
 * record, published by one store of `tail`: a producer that dies before
 * that store leaves nothing.  A larger message streams: BEGIN, MORE...,
 * END, each published as written, so that it needs no buffer as large as
 * itself; a consumer takes the pieces as they come.
 *
 * Crash recovery is exact at every instruction boundary.  Each side's
 * counters (its position, its message count, the consumers' count of
 * lost messages) are written only under that side's lock, and every
 * step that changes more than one word is journalled first: the values
 * before it (j_pos, j_count, j_lost, j_kind) and then the phase, each one
 * store.  Whoever next takes the lock of a dead holder reads the phase
 * and sets every counter to its exact value from the journal and from
 * whether the one store that commits the step (the position) happened:
 *  - producer, TAKING (a record being put): the position moved, so the
 *    message is in the queue and counted; or it did not, so it is not.
 *    A streamed message whose BEGIN was published, STREAM, and ENDING
 *    whose END was not, are ended by an ABORT record (ring room for one
 *    is always kept free), written and counted once (ABORTING journals
 *    it): the producers' `lost` counts the messages that never were.
 *  - consumer, TAKING: the position moved, so the dead consumer took the
 *    message (it is gone with it), or not, so it stays for the next one.
 *    A streamed message it had begun is lost: LOSING counts it once, and
 *    SKIP drops its remaining pieces as they come.  Taking the ABORT
 *    record that ends a message a consumer had begun counts it in the
 *    consumers' `aborts` (ABORTSEEN journals that step).
 * So the queue holds (puts - producers' lost) - (gets - aborts)
 * messages: an aborted message counts on neither side, whether a
 * consumer had begun it or not.  A JoinableQueue's unfinished count is
 * not a counter of its own but (puts - producers' lost) - (consumers'
 * lost - aborts) - task_done calls: a message a consumer lost part way
 * counts as done unless it never was; the parts are exact by the above,
 * and task_done adds to the last with one compare-and-swap.
 * A consumer waiting for the next piece of a message checks that the
 * producer is still alive, and recovers the producer lock itself if not.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "shared.h"

enum { REC_WHOLE = 1, REC_BEGIN = 2, REC_MORE = 3, REC_END = 4,
       REC_ABORT = 5 };

#define REC_HEADER 16u
#define RESERVE REC_HEADER /* always free: room for an ABORT record */
#define QUEUE_DEFAULT_BUFFER (256u * 1024u)
#define QUEUE_MIN_BUFFER 4096u
#define QUEUE_MAX_BUFFER (1u << 30)

typedef struct rec_header {
  uint32_t len;   /* payload bytes in this record */
  uint32_t kind;  /* REC_* */
  uint64_t total; /* the whole message's length */
} rec_header;

/* One side (producers or consumers).  What the other side reads (pos,
 * count) has a cache line of its own, apart from what only this side
 * touches, so that polling the one does not slow down writing the other. */
typedef struct qside {
  mp__plock lock;
  uint64_t other_cache;     /* the other side's pos, as last read */
  volatile uint64_t j_pos, j_count, j_lost; /* the journal (see above) */
  volatile uint32_t phase;  /* PH_* */
  volatile uint32_t j_kind; /* the record kind a TAKING step is about */
  /* 64 bytes so far: what the other side reads starts a line */
  volatile uint64_t pos;    /* producer: tail; consumer: head */
  volatile uint64_t count;  /* messages begun: puts / gets */
  volatile uint64_t lost;   /* producer: streams aborted;
                               consumer: messages dropped part way */
  volatile uint64_t aborts; /* consumer: begun messages that an ABORT
                               record ended */
} qside;

/* Phases of a side's current step (see the comment at the top). */
enum { PH_IDLE = 0, PH_TAKING = 1, PH_STREAM = 2, PH_ENDING = 3,
       PH_ABORTING = 4, PH_LOSING = 5, PH_SKIP = 6, PH_ABORTSEEN = 7 };

typedef struct queue_state {
  mp__shobj hdr;
  uint64_t cap;
  int64_t maxsize;
  uint32_t joinable;
  uint32_t reserved;
  char pad0[64 - sizeof(mp__shobj) - 24];
  union { qside s; char pad[128]; } prod;
  union { qside s; char pad[128]; } cons;
  mp__wq data_wq;  /* consumers wait for records */
  mp__wq space_wq; /* producers wait for room */
  mp__wq join_wq;  /* join waits for unfinished == 0 */
  volatile uint32_t closed;
  uint32_t reserved2;
  volatile uint64_t tasks_done; /* task_done calls */
} queue_state;

/* The journal and the hot words each fill their own cache line. */
typedef char mp__qside_layout_check[offsetof(qside, pos) == 64 ? 1 : -1];

#define QUEUE_RING_OFFSET ((sizeof(queue_state) + 63) & ~(size_t)63)

struct mp_queue {
  mp__obj base;
  queue_state *st;
  unsigned char *ring;
  mpi_shm *shm;
};

/* ---- creation ----------------------------------------------------------- */

static void queue_bind(mp_queue *q) {
  q->st = mp__obj_state(&q->base);
  q->ring = (unsigned char *)q->st + QUEUE_RING_OFFSET;
  q->shm = mp__obj_shm(&q->base);
}

int mp_queue_new_ex(mp_queue **out, int64_t maxsize, size_t buffer_size,
                    int joinable) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_queue_new: NULL out");
  if (buffer_size == 0)
    buffer_size = QUEUE_DEFAULT_BUFFER;
  if (buffer_size > QUEUE_MAX_BUFFER)
    return mp__error(MP_EINVAL, "queue buffer of %zu bytes is above 1 GiB",
                     buffer_size);
  size_t cap = QUEUE_MIN_BUFFER;
  while (cap < buffer_size)
    cap *= 2;
  mp_queue *q = NULL;
  int rc = mp__obj_create(sizeof *q, MP__T_QUEUE, QUEUE_RING_OFFSET + cap,
                          (void **)&q);
  if (rc != 0)
    return rc;
  queue_bind(q);
  q->st->cap = cap;
  q->st->maxsize = maxsize > 0 ? maxsize : 0;
  q->st->joinable = (uint32_t)(joinable != 0);
  *out = q;
  return 0;
}

int mp_queue_new(mp_queue **out, int64_t maxsize) {
  return mp_queue_new_ex(out, maxsize, 0, 0);
}
int mp_simple_queue_new(mp_queue **out) {
  return mp_queue_new_ex(out, 0, 0, 0);
}
int mp_joinable_queue_new(mp_queue **out, int64_t maxsize) {
  return mp_queue_new_ex(out, maxsize, 0, 1);
}

MP__OPENER(mp__queue_open) {
  (void)extra;
  (void)handles;
  (void)nh;
  if (n != 0)
    return mp__error(MP_EPROTO, "malformed queue reference");
  const queue_state *st =
      (const queue_state *)((const char *)mpi_shm_addr(seg->shm) + off);
  uint64_t cap = st->cap;
  if (cap < QUEUE_MIN_BUFFER || cap > QUEUE_MAX_BUFFER ||
      (cap & (cap - 1)) != 0 ||
      st->hdr.size != QUEUE_RING_OFFSET + cap)
    return mp__error(MP_EPROTO, "damaged queue reference");
  mp_queue *q = NULL;
  int rc = mp__obj_alloc(sizeof *q, MP__T_QUEUE, seg, off, (void **)&q);
  if (rc != 0)
    return rc;
  queue_bind(q);
  *out = q;
  return 0;
}

void mp_queue_free(mp_queue *q) { mp__obj_free(q, MP__T_QUEUE); }

int mp_args_add_queue(mp_args *a, mp_queue *q) {
  return mp__args_add_shared(a, q, MP__T_QUEUE, "mp_args_add_queue");
}

mp_queue *mp_args_queue(const mp_args *a, size_t i) {
  return mp__args_shared(a, i, MP__T_QUEUE);
}

/* ---- the ring ----------------------------------------------------------- */

static size_t rec_size(size_t payload) {
  return (REC_HEADER + payload + 15u) & ~(size_t)15u;
}

static void ring_write(mp_queue *q, uint64_t pos, const void *src, size_t n) {
  size_t cap = (size_t)q->st->cap, at = (size_t)(pos & (cap - 1));
  size_t first = n < cap - at ? n : cap - at;
  memcpy(q->ring + at, src, first);
  if (n > first)
    memcpy(q->ring, (const unsigned char *)src + first, n - first);
}

static void ring_read(mp_queue *q, uint64_t pos, void *dst, size_t n) {
  size_t cap = (size_t)q->st->cap, at = (size_t)(pos & (cap - 1));
  size_t first = n < cap - at ? n : cap - at;
  memcpy(dst, q->ring + at, first);
  if (n > first)
    memcpy((unsigned char *)dst + first, q->ring, n - first);
}

/* Write one record at the tail (room is checked) and publish it. */
static void put_record(mp_queue *q, uint32_t kind, const void *p,
                       size_t len, uint64_t total) {
  qside *pr = &q->st->prod.s;
  uint64_t tail = pr->pos;
  rec_header h = {(uint32_t)len, kind, total};
  memcpy(q->ring + (tail & (q->st->cap - 1)), &h, sizeof h);
  if (len > 0)
    ring_write(q, tail + REC_HEADER, p, len);
  mp__store64(&pr->pos, tail + rec_size(len));
  mp__wq_wake(q->shm, &q->st->data_wq, MP__WAKE_SINGLE);
}

static void read_header(mp_queue *q, uint64_t pos, rec_header *h) {
  memcpy(h, q->ring + (pos & (q->st->cap - 1)), sizeof *h);
}

/* ---- producer side ------------------------------------------------------ */

static void wake_join(mp_queue *q) {
  if (q->st->joinable)
    mp__wq_wake(q->shm, &q->st->join_wq, MP__WAKE_ALL);
}

/* Journal a step that takes or gives one message (either side): the
 * position and count before it, then the phase, then the count.  The
 * caller commits it by moving the position. */
static void side_begin(qside *sd, uint32_t kind) {
  mp__store64(&sd->j_pos, sd->pos);
  mp__store64(&sd->j_count, sd->count);
  mp__store32(&sd->j_kind, kind);
  mp__store32(&sd->phase, PH_TAKING);
  mp__store64(&sd->count, sd->j_count + 1);
}

/* The count a TAKING step leaves, once its commit is known to have
 * happened or not; 1 if it did. */
static int side_settle(qside *sd) {
  int moved = sd->pos != sd->j_pos;
  mp__store64(&sd->count, sd->j_count + (uint64_t)moved);
  return moved;
}

/* End the streamed message being put with an ABORT record, and count
 * it as never put, once. */
static void put_abort(mp_queue *q) {
  qside *pr = &q->st->prod.s;
  mp__store64(&pr->j_pos, pr->pos);
  mp__store64(&pr->j_lost, pr->lost);
  mp__store32(&pr->phase, PH_ABORTING);
  mp__store64(&pr->lost, pr->j_lost + 1);
  put_record(q, REC_ABORT, NULL, 0, 0);
  mp__store32(&pr->phase, PH_IDLE);
  wake_join(q);
}

/* After taking the producer lock from a dead holder (or from a dead
 * repairer: every case may be run again from the start). */
static void repair_producer(mp_queue *q) {
  qside *pr = &q->st->prod.s;
  switch (pr->phase) {
  case PH_TAKING:
    if (!side_settle(pr)) {
      mp__store32(&pr->phase, PH_IDLE); /* never published: never put */
      wake_join(q);
      return;
    }
    if (pr->j_kind != REC_BEGIN) {
      mp__store32(&pr->phase, PH_IDLE);
      return;
    }
    put_abort(q); /* a stream begun and cut short */
    return;
  case PH_STREAM:
    put_abort(q);
    return;
  case PH_ENDING:
    if (pr->pos == pr->j_pos)
      put_abort(q);
    else
      mp__store32(&pr->phase, PH_IDLE);
    return;
  case PH_ABORTING:
    mp__store64(&pr->lost, pr->j_lost + 1);
    if (pr->pos == pr->j_pos)
      put_record(q, REC_ABORT, NULL, 0, 0);
    mp__store32(&pr->phase, PH_IDLE);
    wake_join(q);
    return;
  default:
    mp__store32(&pr->phase, PH_IDLE);
    return;
  }
}

static int producer_lock(mp_queue *q, double deadline) {
  int rc = mp__plock_acquire(q->shm, &q->st->prod.s.lock, deadline);
  if (rc == MP_EOWNERDEAD) {
    repair_producer(q);
    rc = 0;
  }
  return rc;
}

static void producer_unlock(mp_queue *q) {
  mp__plock_release(q->shm, &q->st->prod.s.lock);
}

/* Messages in the queue (see the comment at the top); exact once no
 * dead holder's step is left unrepaired. */
static int64_t queue_size(queue_state *st) {
  qside *pr = &st->prod.s, *co = &st->cons.s;
  uint64_t in = mp__load64(&pr->count) - mp__load64(&pr->lost);
  uint64_t out = mp__load64(&co->count) - mp__load64(&co->aborts);
  return (int64_t)(in - out);
}

typedef struct room_try {
  mp_queue *q;
  size_t need;   /* bytes of ring */
  int check_max; /* also wait below maxsize */
  int check_closed;
} room_try;

static int room_try_fn(void *arg) {
  room_try *t = arg;
  queue_state *st = t->q->st;
  qside *pr = &st->prod.s;
  if (t->check_closed && mp__load32(&st->closed))
    return MP_ECLOSED;
  if (t->check_max && queue_size(st) >= st->maxsize)
    return 0;
  if (st->cap - (pr->pos - pr->other_cache) >= t->need)
    return 1;
  pr->other_cache = mp__load64(&st->cons.s.pos);
  return st->cap - (pr->pos - pr->other_cache) >= t->need;
}

static int wait_room(mp_queue *q, room_try *t, double deadline) {
  int rc = room_try_fn(t);
  if (rc != 0)
    return rc > 0 ? 0 : rc;
  if (deadline >= 0 && deadline <= mpi_now())
    return MP_ETIMEDOUT;
  return mp__wq_wait(q->shm, &q->st->space_wq, room_try_fn, t, deadline, 0);
}

/* The rest of a streamed message, after its BEGIN record (done bytes). */
static int put_stream_rest(mp_queue *q, const unsigned char *p, size_t n,
                           size_t done, double deadline) {
  queue_state *st = q->st;
  qside *pr = &st->prod.s;
  size_t chunk_max = (size_t)st->cap / 4 - REC_HEADER;
  mp__store32(&pr->phase, PH_STREAM);
  while (done < n) {
    size_t len = n - done < chunk_max ? n - done : chunk_max;
    int last = done + len == n;
    room_try t = {q, rec_size(len) + RESERVE, 0, 0};
    int rc = wait_room(q, &t, deadline);
    if (rc != 0) { /* cut short: the consumer drops what it has */
      put_abort(q);
      return rc;
    }
    if (last) {
      mp__store64(&pr->j_pos, pr->pos);
      mp__store32(&pr->phase, PH_ENDING);
    }
    put_record(q, last ? REC_END : REC_MORE, p + done, len, n);
    done += len;
  }
  mp__store32(&pr->phase, PH_IDLE);
  return 0;
}

int mp_queue_put(mp_queue *q, const void *p, size_t n, double timeout) {
  int rc = mp__obj_check(q, MP__T_QUEUE, "mp_queue_put");
  if (rc != 0 || (rc = mp__check_timeout(timeout)) != 0)
    return rc;
  if (p == NULL && n > 0)
    return mp__error(MP_EINVAL, "mp_queue_put: NULL message");
  if (n > (size_t)PTRDIFF_MAX)
    return mp__error(MP_ERANGE, "message of %zu bytes is over the maximum",
                     n);
#if SIZE_MAX > 0xFFFFFFFFu /* a 32-bit size_t is never over the maximum */
  if ((uint64_t)n > MP_QUEUE_MAX_MESSAGE)
    return mp__error(MP_ERANGE, "message of %zu bytes is over the maximum",
                     n);
#endif
  queue_state *st = q->st;
  if (mp__load32(&st->closed))
    return mp__error(MP_ECLOSED, "put on a closed queue");
  double deadline = mp__deadline(timeout);
  if ((rc = producer_lock(q, deadline)) != 0)
    return mp__error(MP_EFULL, "queue full: no room within %g s", timeout);
  qside *pr = &st->prod.s;
  size_t quarter = (size_t)st->cap / 4;
  /* A whole record, or the BEGIN piece of a streamed message. */
  int whole = n <= quarter - REC_HEADER;
  size_t first = whole ? n : quarter - REC_HEADER;
  room_try t = {q, rec_size(first) + RESERVE, st->maxsize > 0, 1};
  rc = wait_room(q, &t, deadline);
  if (rc == 0) {
    side_begin(pr, whole ? REC_WHOLE : REC_BEGIN);
    put_record(q, whole ? REC_WHOLE : REC_BEGIN, p, first, n);
    if (whole)
      mp__store32(&pr->phase, PH_IDLE);
    else
      rc = put_stream_rest(q, p, n, first, deadline);
  }
  producer_unlock(q);
  if (rc == MP_ECLOSED)
    return mp__error(rc, "put on a closed queue");
  if (rc == MP_ETIMEDOUT)
    return mp__error(MP_EFULL, "queue full: no room within %g s", timeout);
  return rc;
}

int mp_queue_put_nowait(mp_queue *q, const void *p, size_t n) {
  return mp_queue_put(q, p, n, 0);
}

/* ---- consumer side ------------------------------------------------------ */

static int consumer_skip(mp_queue *q);
static void take_record(mp_queue *q, const rec_header *h);

/* The message being taken is lost (cut short, or its taker died): count
 * it once, then drop what is left of it. */
static void consumer_lose(mp_queue *q) {
  qside *co = &q->st->cons.s;
  mp__store64(&co->j_lost, co->lost);
  mp__store32(&co->phase, PH_LOSING);
  mp__store64(&co->lost, co->j_lost + 1);
  mp__store32(&co->phase, PH_SKIP);
  wake_join(q);
}

/* After taking the consumer lock from a dead holder (or from a dead
 * repairer: every case may be run again from the start). */
static void repair_consumer(mp_queue *q) {
  qside *co = &q->st->cons.s;
  switch (co->phase) {
  case PH_TAKING:
    if (!side_settle(co) || co->j_kind != REC_BEGIN) {
      /* a whole message either stays or went with the dead consumer */
      mp__store32(&co->phase, PH_IDLE);
      return;
    }
    consumer_lose(q); /* it had begun a streamed message */
    return;
  case PH_STREAM:
    consumer_lose(q);
    return;
  case PH_ENDING:
    if (co->pos == co->j_pos)
      consumer_lose(q);
    else
      mp__store32(&co->phase, PH_IDLE); /* it had all of it */
    return;
  case PH_LOSING:
    mp__store64(&co->lost, co->j_lost + 1);
    mp__store32(&co->phase, PH_SKIP);
    wake_join(q);
    return;
  case PH_SKIP:
    return; /* the next take goes on skipping */
  case PH_ABORTSEEN:
    mp__store64(&co->aborts, co->j_count + 1);
    if (co->pos == co->j_pos) { /* the ABORT record is still at head */
      rec_header h;
      read_header(q, co->pos, &h);
      take_record(q, &h);
    }
    mp__store32(&co->phase, PH_IDLE);
    return;
  default:
    mp__store32(&co->phase, PH_IDLE);
    return;
  }
}

static int consumer_lock(mp_queue *q, double deadline) {
  int rc = mp__plock_acquire(q->shm, &q->st->cons.s.lock, deadline);
  if (rc == MP_EOWNERDEAD) {
    repair_consumer(q);
    rc = 0;
  }
  return rc;
}

static void consumer_unlock(mp_queue *q) {
  mp__plock_release(q->shm, &q->st->cons.s.lock);
}

typedef struct data_try {
  mp_queue *q;
  int watch_producer; /* in a message: the producer must stay alive */
  double next_check;
} data_try;

static int data_try_fn(void *arg) {
  data_try *t = arg;
  queue_state *st = t->q->st;
  qside *co = &st->cons.s;
  if (co->other_cache != co->pos)
    return 1;
  co->other_cache = mp__load64(&st->prod.s.pos);
  if (co->other_cache != co->pos)
    return 1;
  if (!t->watch_producer)
    return mp__load32(&st->closed) ? 1 : 0;
  double now = mpi_now();
  if (t->next_check == 0)
    t->next_check = now + MP__LIVENESS_SLICE;
  if (now >= t->next_check) {
    t->next_check = now + MP__LIVENESS_SLICE;
    uint32_t owner = mp__load32(&st->prod.s.lock.owner);
    if (owner != 0 && !mpi_pid_alive(owner)) {
      /* The producer died in the middle of this message: take its lock,
       * which writes the ABORT record we are waiting for. */
      if (producer_lock(t->q, mpi_now() + 1.0) == 0)
        producer_unlock(t->q);
    }
  }
  return 0;
}

/* Wait for a record at head.  0; MP_ETIMEDOUT; MP_ECLOSED (closed and
 * drained).  In a message (watch_producer) it waits without limit while
 * the producer lives. */
static int wait_data(mp_queue *q, double deadline, int watch_producer) {
  data_try t = {q, watch_producer, 0};
  int rc = data_try_fn(&t);
  if (rc == 0) {
    if (!watch_producer && deadline >= 0 && deadline <= mpi_now())
      return MP_ETIMEDOUT;
    rc = mp__wq_wait(q->shm, &q->st->data_wq, data_try_fn, &t,
                     watch_producer ? -1 : deadline,
                     watch_producer ? MP__LIVENESS_SLICE : 0);
    if (rc != 0)
      return rc;
  } else if (rc < 0) {
    return rc;
  }
  qside *co = &q->st->cons.s;
  return co->other_cache == co->pos ? MP_ECLOSED : 0;
}

/* Release the record at head. */
static void take_record(mp_queue *q, const rec_header *h) {
  qside *co = &q->st->cons.s;
  mp__store64(&co->pos, co->pos + rec_size(h->len));
  mp__wq_wake(q->shm, &q->st->space_wq, MP__WAKE_SINGLE);
}

/* Take the ABORT record at head, which ends a message a consumer had
 * begun: counted in `aborts` (j_count holds the count before). */
static void take_abort(mp_queue *q, const rec_header *h) {
  qside *co = &q->st->cons.s;
  mp__store64(&co->j_pos, co->pos);
  mp__store64(&co->j_count, co->aborts);
  mp__store32(&co->phase, PH_ABORTSEEN);
  mp__store64(&co->aborts, co->j_count + 1);
  take_record(q, h);
  mp__store32(&co->phase, PH_IDLE);
}

/* Drop the rest of a lost streamed message (phase PH_SKIP): 0 once it
 * is gone, or MP_ECLOSED (closed with nothing more: still skipping). */
static int consumer_skip(mp_queue *q) {
  qside *co = &q->st->cons.s;
  while (co->phase == PH_SKIP) {
    int rc = wait_data(q, -1, 1);
    if (rc != 0)
      return rc;
    rec_header h;
    read_header(q, co->pos, &h);
    /* Its pieces up to its END or ABORT; a new message's first record
     * means they were all gone already. */
    if (h.kind == REC_ABORT)
      take_abort(q, &h);
    else if (h.kind == REC_MORE || h.kind == REC_END)
      take_record(q, &h);
    if (h.kind != REC_MORE)
      mp__store32(&co->phase, PH_IDLE);
  }
  return 0;
}

/* Take one message: into buf (cap bytes) when buf != NULL, else into a
 * new buffer at *out.  try_only: see mp__queue_try_get_into. */
static int queue_take(mp_queue *q, void *buf, size_t cap, void **out,
                      size_t *n, double timeout, int try_only,
                      const char *what) {
  int rc = mp__obj_check(q, MP__T_QUEUE, what);
  if (rc != 0 || (!try_only && (rc = mp__check_timeout(timeout)) != 0))
    return rc;
  if (n == NULL || (buf == NULL && out == NULL) || (buf == NULL && cap > 0))
    return mp__error(MP_EINVAL, "%s: NULL argument", what);
  queue_state *st = q->st;
  qside *co = &st->cons.s;
  double deadline = try_only ? 0 : mp__deadline(timeout);
  if (try_only ? !mp__plock_try(&co->lock) &&
                     consumer_lock(q, mpi_now()) != 0 /* a dead holder? */
               : consumer_lock(q, deadline) != 0)
    return try_only ? MP_EEMPTY
                    : mp__error(MP_EEMPTY, "queue empty for %g s", timeout);
  if (co->phase == PH_SKIP)
    consumer_skip(q);
  for (;;) {
    rc = wait_data(q, deadline, 0);
    if (rc != 0)
      break;
    rec_header h;
    read_header(q, co->pos, &h);
    if (h.kind != REC_WHOLE && h.kind != REC_BEGIN) {
      /* the stray end of a message cut short */
      if (h.kind == REC_ABORT)
        take_abort(q, &h);
      else
        take_record(q, &h);
      continue;
    }
    size_t total = (size_t)h.total;
    if (h.total > MP_QUEUE_MAX_MESSAGE || h.total > SIZE_MAX ||
        (h.kind == REC_WHOLE && h.total != h.len) || h.len > h.total) {
      rc = mp__error(MP_EPROTO, "damaged queue record");
      break;
    }
    unsigned char *dst = buf;
    if (buf != NULL && total > cap) {
      *n = total;
      rc = mp__error(MP_ERANGE, "message of %zu bytes does not fit in %zu",
                     total, cap);
      break;
    }
    if (buf == NULL && (dst = malloc(total ? total : 1)) == NULL) {
      rc = mp__error(MP_ENOMEM, "no memory for a message of %zu bytes",
                     total);
      break;
    }
    side_begin(co, h.kind);
    ring_read(q, co->pos + REC_HEADER, dst, h.len);
    take_record(q, &h); /* committed: the message is ours */
    if (h.kind == REC_WHOLE) {
      mp__store32(&co->phase, PH_IDLE);
      *n = total;
      if (buf == NULL)
        *out = dst;
      break;
    }
    mp__store32(&co->phase, PH_STREAM);
    size_t got = h.len;
    int complete = 0;
    while (!complete) {
      if (wait_data(q, -1, 1) != 0) /* closed: the producer is gone */
        break;
      read_header(q, co->pos, &h);
      if ((h.kind != REC_MORE && h.kind != REC_END) || h.len > total - got ||
          (h.kind == REC_END && got + h.len != total))
        break; /* ABORT (or damage): skipped below */
      if (h.kind == REC_END) {
        mp__store64(&co->j_pos, co->pos);
        mp__store32(&co->phase, PH_ENDING);
      }
      ring_read(q, co->pos + REC_HEADER, dst + got, h.len);
      got += h.len;
      take_record(q, &h);
      complete = h.kind == REC_END;
    }
    if (complete) {
      mp__store32(&co->phase, PH_IDLE);
      *n = total;
      if (buf == NULL)
        *out = dst;
      break;
    }
    /* That message never was: take the next one. */
    consumer_lose(q);
    consumer_skip(q);
    if (buf == NULL)
      free(dst);
  }
  consumer_unlock(q);
  if (rc == MP_ETIMEDOUT)
    return try_only ? MP_EEMPTY
                    : mp__error(MP_EEMPTY, "queue empty for %g s", timeout);
  if (rc == MP_ECLOSED)
    return mp__error(rc, "queue closed and empty");
  return rc;
}

static int queue_get(mp_queue *q, void *buf, size_t cap, void **out,
                     size_t *n, double timeout, const char *what) {
  return queue_take(q, buf, cap, out, n, timeout, 0, what);
}

int mp_queue_get(mp_queue *q, void **out, size_t *n, double timeout) {
  return queue_get(q, NULL, 0, out, n, timeout, "mp_queue_get");
}

int mp_queue_get_nowait(mp_queue *q, void **out, size_t *n) {
  return queue_get(q, NULL, 0, out, n, 0, "mp_queue_get_nowait");
}

int mp_queue_get_into(mp_queue *q, void *buf, size_t cap, size_t *n,
                      double timeout) {
  if (buf == NULL && cap == 0) {
    static unsigned char none;
    buf = &none; /* a buffer of 0 bytes still takes empty messages */
  }
  return queue_get(q, buf, cap, NULL, n, timeout, "mp_queue_get_into");
}

/* For the pools: how many messages consumers have taken, once the
 * message a dead consumer was taking has been put back (or counted as
 * taken: it had been copied, or a streamed one begun).  The caller makes
 * sure no live consumer is waiting (it would hold the lock). */
int mp__queue_taken(mp_queue *q, uint64_t *count) {
  int rc = consumer_lock(q, mpi_now() + 5.0);
  if (rc != 0)
    return mp__error(rc, "the queue's consumer lock stays held");
  *count = q->st->cons.s.count;
  consumer_unlock(q);
  return 0;
}

int mp__queue_try_get_into(mp_queue *q, void *buf, size_t cap, size_t *n) {
  static unsigned char none;
  if (buf == NULL && cap == 0)
    buf = &none; /* as in mp_queue_get_into */
  return queue_take(q, buf, cap, NULL, n, 0, 1, "mp_queue_get_into");
}

int mp__queue_readable(mp_queue *q) {
  queue_state *st = q->st;
  return mp__load64(&st->prod.s.pos) != mp__load64(&st->cons.s.pos) ||
         mp__load32(&st->closed) != 0;
}

typedef struct readable_try {
  mp_queue *q;
  int (*stop)(void *);
  void *arg;
} readable_try;

static int readable_try_fn(void *arg) {
  readable_try *t = arg;
  return mp__queue_readable(t->q) || (t->stop != NULL && t->stop(t->arg));
}

int mp__queue_wait_readable(mp_queue *q, double deadline,
                            int (*stop)(void *), void *arg) {
  readable_try t = {q, stop, arg};
  int rc = mp__wq_wait(q->shm, &q->st->data_wq, readable_try_fn, &t,
                       deadline, 0);
  return rc == MP_ETIMEDOUT ? 0 : rc;
}

/* ---- tuples, sizes, close, join ----------------------------------------- */

int mp_queue_put_args(mp_queue *q, const mp_args *a, double timeout) {
  if (a == NULL)
    return mp__error(MP_EINVAL, "mp_queue_put_args: NULL args");
  int rc = mp__obj_check(q, MP__T_QUEUE, "mp_queue_put_args");
  if (rc != 0)
    return rc;
  void *msg;
  size_t n;
  uint64_t id;
  if ((rc = mp__handoff_pack(a, &msg, &n, &id)) != 0)
    return rc;
  if (msg == NULL) {
    const void *p = mp__args_data(a, &n);
    return mp_queue_put(q, p, n, timeout);
  }
  if ((rc = mp_queue_put(q, msg, n, timeout)) != 0)
    mp__handoff_withdraw(id);
  free(msg);
  return rc;
}

int mp_queue_get_args(mp_queue *q, mp_args **out, double timeout) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_queue_get_args: NULL out");
  *out = NULL;
  void *p;
  size_t n;
  int rc = mp_queue_get(q, &p, &n, timeout);
  if (rc != 0)
    return rc;
  rc = mp__handoff_unpack(p, n, out);
  free(p);
  return rc;
}

/* If a side's last holder died in the middle of a step, repair it now
 * (its counters are exact only once repaired); cheap when idle. */
static void recover_dead(mp_queue *q) {
  qside *pr = &q->st->prod.s, *co = &q->st->cons.s;
  uint32_t owner;
  if (mp__load32(&pr->phase) != PH_IDLE &&
      (owner = mp__load32(&pr->lock.owner)) != 0 && !mpi_pid_alive(owner) &&
      producer_lock(q, mpi_now()) == 0)
    producer_unlock(q);
  uint32_t ph = mp__load32(&co->phase);
  if (ph != PH_IDLE && ph != PH_SKIP &&
      (owner = mp__load32(&co->lock.owner)) != 0 && !mpi_pid_alive(owner) &&
      consumer_lock(q, mpi_now()) == 0)
    consumer_unlock(q);
}

int64_t mp_queue_qsize(mp_queue *q) {
  int rc = mp__obj_check(q, MP__T_QUEUE, "mp_queue_qsize");
  if (rc != 0)
    return rc;
  recover_dead(q);
  int64_t d = queue_size(q->st);
  return d > 0 ? d : 0;
}

int mp_queue_empty(mp_queue *q) { return mp_queue_qsize(q) == 0; }

int mp_queue_full(mp_queue *q) {
  int64_t n = mp_queue_qsize(q);
  return n >= 0 && q->st->maxsize > 0 && n >= q->st->maxsize;
}

int mp_queue_close(mp_queue *q) {
  int rc = mp__obj_check(q, MP__T_QUEUE, "mp_queue_close");
  if (rc != 0)
    return rc;
  mp__store32(&q->st->closed, 1);
  mp__wq_wake(q->shm, &q->st->data_wq, MP__WAKE_ALL);
  mp__wq_wake(q->shm, &q->st->space_wq, MP__WAKE_ALL);
  return 0;
}

int mp_queue_is_closed(mp_queue *q) {
  if (mp__obj_check(q, MP__T_QUEUE, "mp_queue_is_closed") != 0)
    return 0;
  return mp__load32(&q->st->closed) != 0;
}

/* A JoinableQueue's tasks not yet done, given the task_done count d:
 * messages put (less the aborted), less those a consumer lost part way
 * (less the aborted), less d (0 rather than below: a task_done racing
 * with a put that a kill then undid). */
static uint64_t unfinished(queue_state *st, uint64_t d) {
  int64_t put = (int64_t)(mp__load64(&st->prod.s.count) -
                          mp__load64(&st->prod.s.lost));
  int64_t gone = (int64_t)(mp__load64(&st->cons.s.lost) -
                           mp__load64(&st->cons.s.aborts) + d);
  return put > gone ? (uint64_t)(put - gone) : 0;
}

int mp_queue_task_done(mp_queue *q) {
  int rc = mp__obj_check(q, MP__T_QUEUE, "mp_queue_task_done");
  if (rc != 0)
    return rc;
  if (!q->st->joinable)
    return mp__error(MP_EINVAL, "task_done on a queue that is not joinable");
  recover_dead(q);
  queue_state *st = q->st;
  uint64_t d = mp__load64(&st->tasks_done), left;
  do {
    left = unfinished(st, d);
    if (left == 0)
      return mp__error(MP_EVALUE, "task_done() called too many times");
  } while (!mp__cas64(&st->tasks_done, &d, d + 1));
  if (left == 1)
    mp__wq_wake(q->shm, &st->join_wq, MP__WAKE_ALL);
  return 0;
}

static int join_try(void *arg) {
  mp_queue *q = arg;
  recover_dead(q);
  return unfinished(q->st, mp__load64(&q->st->tasks_done)) == 0;
}

int mp_queue_join(mp_queue *q, double timeout) {
  int rc = mp__obj_check(q, MP__T_QUEUE, "mp_queue_join");
  if (rc != 0 || (rc = mp__check_timeout(timeout)) != 0)
    return rc;
  if (!q->st->joinable)
    return mp__error(MP_EINVAL, "join on a queue that is not joinable");
  if (join_try(q))
    return 0;
  rc = timeout == 0 ? MP_ETIMEDOUT
                    : mp__wq_wait(q->shm, &q->st->join_wq, join_try, q,
                                  mp__deadline(timeout), 0);
  if (rc == MP_ETIMEDOUT)
    return mp__error(rc, "unfinished tasks remain after %g s", timeout);
  return rc;
}
