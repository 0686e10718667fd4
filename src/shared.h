/*
 * shared.h - what the shared-memory objects have in common.  Not
 * installed.
 *
 * Parts:
 *   1. segments: a process-local, reference-counted mapping of an mpi_shm
 *   2. objects: the header every object keeps in shared memory, and the
 *      process-local base every object struct starts with
 *   3. wait queues: sleeping until a condition on shared state holds,
 *      with a short adaptive spin first
 *   4. the process lock (plock): a mutex in shared memory that knows its
 *      owner's pid, so a holder's death is noticed
 *   5. passing objects to a child in mp_args
 *
 * Every object (lock, semaphore, event, condition, barrier, queue, value,
 * array) lives in an anonymous segment: nothing has a name, so nothing
 * can leak, and a child receives the segment as a handle (but for
 * named_sync.c's named Lock and Semaphore, whose state is in a named
 * segment of mp_shm's kind).  All cross-process state is manipulated
 * with the atomics of atomic.h.
 */
#ifndef MPROC_SHARED_H
#define MPROC_SHARED_H

#include "atomic.h"
#include "internal.h"

/* ---- 1. Segments -------------------------------------------------------- */

typedef struct mp__seg {
  mpi_shm *shm;
  volatile uint32_t refs; /* in this process */
  uint64_t uid;           /* unique in this process (never reused) */
  struct mp__seg *next;   /* every mapped segment (mp__seg_find) */
} mp__seg;

int mp__seg_new(size_t size, mp__seg **out);
void mp__seg_ref(mp__seg *s);
void mp__seg_unref(mp__seg *s);
/* Make a segment built by hand (seg->shm set, refs 1) findable. */
void mp__seg_register(mp__seg *s);
/* The segment of this process that holds bytes [p, p + len), with a
 * reference (mp__seg_unref it) and p's offset from mpi_shm_addr; NULL
 * when they are not all in one shared segment. */
mp__seg *mp__seg_find(const void *p, size_t len, size_t *off);

/* ---- 2. Objects --------------------------------------------------------- */

enum {
  MP__T_LOCK = 1,
  MP__T_SEMAPHORE,
  MP__T_EVENT,
  MP__T_CONDITION,
  MP__T_BARRIER,
  MP__T_QUEUE,
  MP__T_VALUE,
  MP__T_ARRAY,
  MP__T_SHM,
  MP__T_COUNT
};

#define MP__OBJ_MAGIC 0x4a424f4du /* "MOBJ" */

/* At the start of every object's shared state (64-byte aligned). */
typedef struct mp__shobj {
  uint32_t magic;
  uint32_t type;
  uint64_t size; /* bytes of this object's shared state */
} mp__shobj;

/* The first member of every object struct in process memory. */
typedef struct mp__obj {
  uint32_t type;
  mp__seg *seg;
  size_t off; /* of the object's shared state in the segment */
} mp__obj;

static inline void *mp__obj_state(const mp__obj *o) {
  return (char *)mpi_shm_addr(o->seg->shm) + o->off;
}
static inline mpi_shm *mp__obj_shm(const mp__obj *o) { return o->seg->shm; }

/* Fill the header of a new object's state. */
void mp__obj_init(mp__obj *o, uint32_t type, mp__seg *seg, size_t off,
                  size_t size);

/* A zeroed object struct of `size` bytes (starting with mp__obj) for the
 * state at `off` in seg; takes over the caller's reference to seg. */
int mp__obj_alloc(size_t size, uint32_t type, mp__seg *seg, size_t off,
                  void **out);

/* A new object struct and a new segment of state_size bytes holding its
 * initialised header at offset 0. */
int mp__obj_create(size_t size, uint32_t type, size_t state_size,
                   void **out);

/* Release the struct and its reference to the segment (NULL and other
 * types are ignored). */
void mp__obj_free(void *obj, uint32_t type);

/* mp_args_X(a, i): the object of this type at item i, or NULL with the
 * error set. */
void *mp__args_shared(const mp_args *a, size_t i, uint32_t type);

/* mp_args_add_X: check the type, then mp__shared_add without extra. */
int mp__args_add_shared(mp_args *a, const void *obj, uint32_t type,
                        const char *what);

/* Validate an argument: non-NULL and of this type (MP_EINVAL). */
int mp__obj_check(const void *obj, uint32_t type, const char *what);

/* ---- 3. Wait queues ----------------------------------------------------- */

/* Threads that sleep until some condition on shared state holds.  The
 * protocol (Dekker-style, all accesses sequentially consistent): a waiter
 * counts itself in `sleepers`, reads the generation, re-checks its
 * condition, then sleeps while the generation is unchanged; a waker
 * changes the state, then (only if sleepers > 0) bumps the generation and
 * wakes.  So an uncontended wake costs one load, no system call. */
typedef struct mp__wq {
  mpi_word gen;
  volatile uint32_t sleepers;
  volatile uint32_t armed; /* a sleeper registered since the last wake */
} mp__wq;

/* The condition: > 0 done (it may also take something, e.g. a
 * semaphore's unit), 0 not yet, < 0 an error to return. */
typedef int (*mp__try_fn)(void *arg);

/* Wait until try(arg) is done, or until `deadline` (mpi_now() based;
 * negative: none) passes: then MP_ETIMEDOUT.  When `slice` > 0, the
 * sleep is cut into slices of at most that many seconds so that try()
 * runs at least that often (it checks owners' liveness).  Without one,
 * the sleep is still cut, into slices that grow from MP__RESCUE_FIRST to
 * MP__RESCUE_MAX while nothing happens: a waker killed between changing
 * the state and waking, or between taking the arm and bumping the
 * generation (which would leave every later wake unsent until this
 * sleeper re-arms), cannot strand a sleeper.  Spins briefly before the
 * first sleep (see mp__spin_seconds). */
int mp__wq_wait(mpi_shm *s, mp__wq *q, mp__try_fn try_fn, void *arg,
                double deadline, double slice);

/* Wake one (MP__WAKE_ONE) or all sleepers, if there are any.
 * MP__WAKE_SINGLE is for queues that at most one thread sleeps on at a
 * time (e.g. the holder of a lock): it wakes it once, not again on every
 * change until it has run. */
enum { MP__WAKE_ONE = 0, MP__WAKE_ALL = 1, MP__WAKE_SINGLE = 2 };
void mp__wq_wake(mpi_shm *s, mp__wq *q, int how);

/* A timeout in seconds (MP_FOREVER or >= 0) as an mpi_now() deadline
 * (-1: none); MP_EINVAL for a bad timeout is the caller's check. */
double mp__deadline(double timeout);


/* This process's pid as stored in owner words, and a per-thread id. */
uint32_t mp__self_pid(void);
uint64_t mp__self_tid(void);

/* ---- 4. The process lock ------------------------------------------------ */

/* owner: 0 when free, else the holder's pid.  Any thread of any process
 * may release it (Python's Lock semantics). */
typedef struct mp__plock {
  volatile uint32_t owner;
  uint32_t reserved;
  mp__wq wq;
} mp__plock;

/* 0; MP_EOWNERDEAD (acquired, and the previous holder died holding it:
 * reported to this acquirer only); MP_ETIMEDOUT. */
int mp__plock_acquire(mpi_shm *s, mp__plock *l, double deadline);
int mp__plock_try(mp__plock *l); /* 1 taken, 0 not */
/* Take it from a holder that has died: MP_EOWNERDEAD, else MP_ETIMEDOUT
 * (free, held by a live process, or taken by another meanwhile). */
int mp__plock_take_dead(mp__plock *l);
void mp__plock_release(mpi_shm *s, mp__plock *l);

/* How often sleepers check whether an owner is still alive (seconds). */
#define MP__LIVENESS_SLICE 0.05

/* The first and the longest sleep of a waiter without a slice of its own
 * (seconds): what a wake lost with a killed waker costs at most. */
#define MP__RESCUE_FIRST 0.05
#define MP__RESCUE_MAX 1.0

/* The next sleep of such a waiter: `wait` (seconds, < 0: none) cut to
 * *rescue, which grows.  Start *rescue at MP__RESCUE_FIRST. */
double mp__rescue_slice(double wait, double *rescue);

/* ---- 5. Passing objects to a child -------------------------------------- */

/* An object reference in a blob: u32 handle index | u32 type | u64 offset
 * (little-endian).  The handle is the segment's, added to the tuple. */
#define MP__REF_SIZE 16u

int mp__shared_ref(mp_args *a, const mp__obj *o,
                   unsigned char ref[MP__REF_SIZE]);
/* Open the object a ref names (in a child): adopts the handle (taking it
 * out of the table) and checks the state's header. */
int mp__shared_open_ref(const unsigned char *ref, mpi_fd *handles,
                        size_t nh, void **out);

/* Add object o to a tuple: its ref, then `extra` bytes of the type's own
 * (which may hold further refs, e.g. a condition's lock). */
int mp__shared_add(mp_args *a, const mp__obj *o, const void *extra,
                   size_t n);

/* args.c: open an object from its blob in the child (kind
 * MP__OBJ_SHARED); release it when the tuple goes. */
int mp__shared_open(const void *blob, size_t n, mpi_fd *handles, size_t nh,
                    void **out);
void mp__shared_release(void *obj);

/* Each type's opener, given its segment (the reference passes to the new
 * object on success), the offset of its verified state, the extra bytes
 * and the tuple's handle table (for nested refs).  Each type's
 * destructor is its public mp_X_free. */
typedef int (*mp__open_fn)(mp__seg *seg, size_t off, const void *extra,
                           size_t n, mpi_fd *handles, size_t nh,
                           void **out);
#define MP__OPENER(name)                                                     \
  int name(mp__seg *seg, size_t off, const void *extra, size_t n,           \
           mpi_fd *handles, size_t nh, void **out)
MP__OPENER(mp__lock_open);
MP__OPENER(mp__semaphore_open);
MP__OPENER(mp__event_open);
MP__OPENER(mp__condition_open);
MP__OPENER(mp__barrier_open);
MP__OPENER(mp__queue_open);
/* queue.c, for the pools: messages taken by consumers so far. */
int mp__queue_taken(mp_queue *q, uint64_t *count);
/* queue.c, for the pools: whether a get may find something (a message or
 * the queue closed), looked at without the consumer lock; and a wait for
 * that which does not hold the lock either, so that other consumers may
 * take what comes.  It also ends when stop(arg) returns non-zero, or at
 * the deadline (negative: none): 0 in every case, or an error. */
int mp__queue_readable(mp_queue *q);
/* A get that never waits, not even for the consumer lock, and says
 * MP_EEMPTY without setting an error message. */
int mp__queue_try_get_into(mp_queue *q, void *buf, size_t cap, size_t *n);
int mp__queue_wait_readable(mp_queue *q, double deadline,
                            int (*stop)(void *), void *arg);
MP__OPENER(mp__value_open);
MP__OPENER(mp__array_open);
MP__OPENER(mp__named_open);

/* ---- 6. What lock.c offers the other objects ---------------------------- */

/* A Lock/RLock whose state lies at `off` in seg (takes a new reference);
 * the state takes mp__lock_state_size() bytes, 64-byte aligned. */
int mp__lock_embed(mp__seg *seg, size_t off, int recursive, mp_lock **out);
size_t mp__lock_state_size(void);
/* The same for a (Bounded)Semaphore of this initial value (MP_EINVAL
 * above 2^31-1).  Both write the state's header last, so that another
 * process that sees the header sees the whole state (named_sync.c). */
int mp__semaphore_embed(mp__seg *seg, size_t off, unsigned value,
                        int bounded, mp_semaphore **out);
size_t mp__semaphore_state_size(void);
/* A new owner of the same handle (*out = l; mp_lock_free drops one). */
int mp__lock_dup(mp_lock *l, mp_lock **out);
/* The calling thread (RLock) or process (Lock) holds it. */
int mp__lock_held_by_me(mp_lock *l);
/* Release completely, returning the recursion depth; take it back at
 * that depth (0 or MP_EOWNERDEAD). */
uint32_t mp__lock_release_all(mp_lock *l);
int mp__lock_reacquire(mp_lock *l, uint32_t depth);

#endif /* MPROC_SHARED_H */
