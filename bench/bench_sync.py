"""bench_sync.py - Python's multiprocessing doing what bench_sync.c does
(the Python side of bench_sync.c; see README.md).  Fork context
throughout, one sample per repetition:

    python queue 64B     messages/s: q = ctx.Queue(); a child puts W + N
                         bytes objects of 64 bytes with q.put(msg); the
                         parent takes W (untimed), then times N q.get()
    python queue 1MiB    MB/s (10^6 bytes), the same with 1 MiB objects
    python lock          ns per lk.acquire() + lk.release(), lk =
                         ctx.Lock(), in a loop in one thread
    python rlock         the same with ctx.RLock()
    python threading lock  the same with threading.Lock() (for context)
    python value         increments/s in all: v = ctx.Value('q', 0); the
                         parent and one child each do K times
                         `with v.get_lock(): v.value += 1`, timed from
                         the start signal until both are done; the final
                         value must be exactly 2K (else exit 2)

Output like bench_sync.c, one line per label with the unit in the keys:

    python queue 64B median_msgs_s=... min_msgs_s=... p10_msgs_s=...
      p90_msgs_s=... n=3

(units: msgs_s, MB_s, ns, incs_s).  With --samples each line is followed
by "samples <label>: v1,v2,...".  Two-process samples are tagged by
placement like bench_sync.c and printed again as "<label> @same-cpu" /
"<label> @cross-cpu"; --pin same|cross pins them (os.sched_setaffinity;
then only the tagged lines are printed for them).

Flags: --reps R (default 3), --scale F (multiplies every default count),
--q64-n N (100000), --q1m-n N (200), --lock-n N (1000000), --value-n K
(100000 per process), --only queue64|queue1m|lock|value (repeatable),
--pin same|cross, --samples.
"""
import argparse
import multiprocessing as mp
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_start import pct  # noqa: E402  (one percentile for all)

TESTS = ("queue64", "queue1m", "lock", "value")
CHILD_CPU = None  # --pin cross: the child's CPU
PINNED = ""  # --pin: "same-cpu" or "cross-cpu"


def cpu_of(pid):
    """The CPU a process last ran on (field 39 of /proc/PID/stat), or -1."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        return int(s[s.rindex(")") + 2:].split()[36])
    except (OSError, ValueError, IndexError):
        return -1


def placement(p0, c0, p1, c1):
    if PINNED:
        return PINNED
    if p0 >= 0 and c0 >= 0 and p0 == p1 and c0 == c1:
        return "same-cpu" if p0 == c0 else "cross-cpu"
    return ""


def child_pin():
    if CHILD_CPU is not None:
        os.sched_setaffinity(0, {CHILD_CPU})


class Series:
    def __init__(self, label, unit, two_proc):
        self.label, self.unit, self.v, self.tag = label, unit, [], []
        self.two_proc = two_proc

    def add(self, x, tag=""):
        self.v.append(x)
        self.tag.append(tag)

    def print(self, samples):
        for tag in (None, "same-cpu", "cross-cpu"):
            if tag is None and PINNED and self.two_proc:
                continue
            v = [x for x, g in zip(self.v, self.tag)
                 if tag is None or g == tag]
            if not v:
                continue
            label = self.label + ("" if tag is None else " @" + tag)
            if samples:
                print(f"samples {label}: " + ",".join(f"{x:.3f}" for x in v))
            v.sort()
            u = self.unit
            print(f"{label} median_{u}={pct(v, 0.5):.2f} min_{u}={v[0]:.2f} "
                  f"p10_{u}={pct(v, 0.1):.2f} p90_{u}={pct(v, 0.9):.2f} "
                  f"n={len(v)}")


# ---- queue -----------------------------------------------------------------

def producer(q, count, size):
    child_pin()
    msg = bytes(range(256)) * (size // 256) + bytes(size % 256)
    put = q.put
    for _ in range(count):
        put(msg)


def run_queue(ctx, size, n, warm, series):
    q = ctx.Queue()
    p = ctx.Process(target=producer, args=(q, warm + n, size))
    p.start()
    get = q.get
    for i in range(warm):
        if len(get()) != size:
            sys.exit(f"bench_sync.py: {series.label}: message {i} is wrong")
    me = os.getpid()
    p0, c0 = cpu_of(me), cpu_of(p.pid)
    t0 = time.perf_counter()
    for i in range(n):
        if len(get()) != size:
            sys.exit(f"bench_sync.py: {series.label}: message {i} is wrong")
    t = time.perf_counter() - t0
    p1, c1 = cpu_of(me), cpu_of(p.pid)
    p.join()
    if p.exitcode != 0:
        sys.exit(f"bench_sync.py: {series.label}: child exit code "
                 f"{p.exitcode}")
    q.close()
    q.join_thread()
    x = n / t if size <= 64 else n * size / t / 1e6
    series.add(x, placement(p0, c0, p1, c1))


# ---- locks -----------------------------------------------------------------

def time_lock(lk, n):
    acq, rel = lk.acquire, lk.release
    r = range(n)
    t0 = time.perf_counter()
    for _ in r:
        acq()
        rel()
    return time.perf_counter() - t0


LOCKS = {}


def run_locks(ctx, n, rep, s_lock, s_rlock, s_thr):
    if not LOCKS:
        LOCKS.update(lock=ctx.Lock(), rlock=ctx.RLock(),
                     thr=threading.Lock())
        for lk in LOCKS.values():  # warm-up
            time_lock(lk, n // 10 + 1)
    order = [("lock", s_lock), ("rlock", s_rlock), ("thr", s_thr)]
    for k in range(3):
        name, s = order[(rep + k) % 3]
        s.add(time_lock(LOCKS[name], n) / n * 1e9)


# ---- shared value ----------------------------------------------------------

def increment(v, k):
    for _ in range(k):
        with v.get_lock():
            v.value += 1


def incrementer(v, tend, ready, go, k):
    child_pin()
    ready.set()
    go.wait()
    increment(v, k)
    tend.value = time.monotonic()


def run_value(ctx, k, series):
    v = ctx.Value('q', 0)
    tend = ctx.RawValue('d', 0.0)
    ready, go = ctx.Event(), ctx.Event()
    p = ctx.Process(target=incrementer, args=(v, tend, ready, go, k))
    p.start()
    ready.wait()
    me = os.getpid()
    p0, c0 = cpu_of(me), cpu_of(p.pid)
    t0 = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes
    go.set()
    increment(v, k)
    tp = time.monotonic()
    p1, c1 = cpu_of(me), cpu_of(p.pid)
    p.join()
    if p.exitcode != 0:
        sys.exit(f"bench_sync.py: {series.label}: child exit code "
                 f"{p.exitcode}")
    if v.value != 2 * k:
        print(f"bench_sync.py: {series.label}: final value {v.value}, "
              f"expected {2 * k}", file=sys.stderr)
        sys.exit(2)
    series.add(2 * k / (max(tp, tend.value) - t0),
               placement(p0, c0, p1, c1))


# ---- main ------------------------------------------------------------------

def main():
    global CHILD_CPU, PINNED
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--q64-n", type=int)
    ap.add_argument("--q1m-n", type=int)
    ap.add_argument("--lock-n", type=int)
    ap.add_argument("--value-n", type=int)
    ap.add_argument("--only", action="append", choices=TESTS)
    ap.add_argument("--pin", choices=("same", "cross"))
    ap.add_argument("--samples", action="store_true")
    a = ap.parse_args()
    if a.reps < 1 or a.scale <= 0:
        ap.error("--reps and --scale must be positive")

    def scaled(given, default):
        return given if given else max(1, round(default * a.scale))

    q64_n = scaled(a.q64_n, 100000)
    q1m_n = scaled(a.q1m_n, 200)
    lock_n = scaled(a.lock_n, 1000000)
    value_n = scaled(a.value_n, 100000)
    if a.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < (2 if a.pin == "cross" else 1):
            sys.exit(f"bench_sync.py: --pin {a.pin}: not enough CPUs")
        os.sched_setaffinity(0, {cpus[0]})
        if a.pin == "cross":
            CHILD_CPU = cpus[1]
        PINNED = a.pin + "-cpu"

    ctx = mp.get_context("fork")
    tests = [t for t in TESTS if not a.only or t in a.only]
    s = {}
    if "queue64" in tests:
        s["q64"] = Series("python queue 64B", "msgs_s", True)
    if "queue1m" in tests:
        s["q1m"] = Series("python queue 1MiB", "MB_s", True)
    if "lock" in tests:
        s["lock"] = Series("python lock", "ns", False)
        s["rlock"] = Series("python rlock", "ns", False)
        s["thr"] = Series("python threading lock", "ns", False)
    if "value" in tests:
        s["value"] = Series("python value", "incs_s", True)
    out = list(s.values())

    for r in range(a.reps):
        for k in range(len(tests)):
            t = tests[(r + k) % len(tests)]
            if t == "queue64":
                run_queue(ctx, 64, q64_n, 1000, s["q64"])
            elif t == "queue1m":
                run_queue(ctx, 1 << 20, q1m_n, 5, s["q1m"])
            elif t == "lock":
                run_locks(ctx, lock_n, r, s["lock"], s["rlock"], s["thr"])
            else:
                run_value(ctx, value_n, s["value"])
    for x in out:
        x.print(a.samples)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
