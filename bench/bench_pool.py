"""bench_pool.py - Python's multiprocessing.Pool and
concurrent.futures.ProcessPoolExecutor doing what bench_pool.c does (the
Python side of bench_pool.c; see README.md).

One pool (multiprocessing.Pool(): os.cpu_count() workers) and one
executor (ProcessPoolExecutor()) are created at the start with the default
start method (fork on Linux up to Python 3.13) and warmed up; their
creation is not measured.  The task everywhere is square(x) = x * x, a
module-level function.

    python map          tasks/s: pool.map(square, range(N)), N = 1,000,000,
                        default chunksize
    python map cs1      tasks/s: pool.map(square, range(N), chunksize=1),
                        N = 20,000
    python serial map   tasks/s: list(map(square, range(N))) in this
                        process, N = 1,000,000 (the floor, for context)
    python apply        µs per round trip: pool.apply_async(square, (i,))
                        .get(), one at a time; every round trip is a sample
    python executor     futures/s: fs = [ex.submit(square, i) for i in
                        range(N)]; concurrent.futures.wait(fs), N = 5000

Nothing is pinned, unless --pin one: then this process is pinned to the
first CPU it may use (os.sched_setaffinity) before the pool starts, its
workers inherit that, and every label ends in " @one-cpu".  (Pool() still
starts os.cpu_count() workers.)

A rate sample repeats its operation until it has run for at least
--min-time seconds (default 0.2) and is the number of tasks over the time
they took.  Every result is checked, outside the timing (exit 2 when one
is wrong).

Output like bench_pool.c, one line per label with the unit in the keys:

    python map median_tasks_s=... min_tasks_s=... p10_tasks_s=...
      p90_tasks_s=... n=3

(units: tasks_s, us, futures_s), preceded by
"info python: start_method=fork workers=2 executor_workers=2".  With
--samples each line is followed by "samples <label>: v1,v2,...".

Flags: --reps R (default 3), --scale F (multiplies every default count),
--map-n N (1000000), --cs1-n N (20000), --rt-n N (round trips per
repetition, 1000), --exec-n N (5000), --min-time S (0.2),
--only map|cs1|serial|apply|executor (repeatable), --pin one, --samples.
"""
import argparse
import concurrent.futures as cf
import multiprocessing as mp
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_start import pct  # noqa: E402  (one percentile for all)

TESTS = ("map", "cs1", "serial", "apply", "executor")


def square(x):
    return x * x


PLACE = ""  # " @one-cpu" with --pin one


class Series:
    def __init__(self, label, unit):
        self.label, self.unit, self.v = label + PLACE, unit, []

    def print(self, samples):
        if not self.v:
            return
        if samples:
            print(f"samples {self.label}: " +
                  ",".join(f"{x:.3f}" for x in self.v))
        v = sorted(self.v)
        u = self.unit
        print(f"{self.label} median_{u}={pct(v, 0.5):.2f} min_{u}={v[0]:.2f} "
              f"p10_{u}={pct(v, 0.1):.2f} p90_{u}={pct(v, 0.9):.2f} "
              f"n={len(v)}")


def check(label, res, n):
    if len(res) != n or any(r != i * i for i, r in enumerate(res)):
        print(f"bench_pool.py: {label}: wrong results", file=sys.stderr)
        sys.exit(2)


def run_rate(once, n, min_time, series):
    """Repeat once() (n tasks, returns its time) until min_time passed."""
    done, spent = 0, 0.0
    while spent < min_time:
        spent += once()
        done += n
    series.v.append(done / spent)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--map-n", type=int)
    ap.add_argument("--cs1-n", type=int)
    ap.add_argument("--rt-n", type=int)
    ap.add_argument("--exec-n", type=int)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--only", action="append", choices=TESTS)
    ap.add_argument("--pin", choices=("one",))
    ap.add_argument("--samples", action="store_true")
    a = ap.parse_args()
    if a.reps < 1 or a.scale <= 0 or a.min_time < 0:
        ap.error("--reps and --scale must be positive, --min-time not "
                 "negative")

    def scaled(given, default):
        return given if given else max(1, round(default * a.scale))

    map_n = scaled(a.map_n, 1000000)
    cs1_n = scaled(a.cs1_n, 20000)
    rt_n = scaled(a.rt_n, 1000)
    exec_n = scaled(a.exec_n, 5000)
    tests = [t for t in TESTS if not a.only or t in a.only]
    perf = time.perf_counter
    global PLACE
    if a.pin:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        PLACE = " @one-cpu"

    pool = mp.Pool() if {"map", "cs1", "apply"} & set(tests) else None
    ex = cf.ProcessPoolExecutor() if "executor" in tests else None
    if not a.pin:  # the configuration of the budgets
        print(f"info python: start_method={mp.get_start_method()} "
              f"workers={pool._processes if pool else os.cpu_count()} "
              f"executor_workers="
              f"{ex._max_workers if ex else os.cpu_count()}")

    # Warm-up: the workers' first tasks, caches, the CPU frequency; one
    # map of the measured size.
    if pool is not None:
        pool.map(square, range(10000))
        pool.map(square, range(2000), chunksize=1)
        if "map" in tests:  # one map of the measured size (as bench_pool.c)
            pool.map(square, range(map_n))
        for i in range(200):
            pool.apply_async(square, (i,)).get()
    if ex is not None:
        cf.wait([ex.submit(square, i) for i in range(min(exec_n, 1000))])

    s = {"map": Series("python map", "tasks_s"),
         "cs1": Series("python map cs1", "tasks_s"),
         "serial": Series("python serial map", "tasks_s"),
         "apply": Series("python apply", "us"),
         "executor": Series("python executor", "futures_s")}

    def map_once(n, chunksize, label):
        def once():
            t0 = perf()
            res = pool.map(square, range(n), chunksize)
            t = perf() - t0
            check(label, res, n)
            return t
        return once

    def serial_once():
        t0 = perf()
        res = list(map(square, range(map_n)))
        t = perf() - t0
        check("python serial map", res, map_n)
        return t

    def apply(n, series):
        ap_ = pool.apply_async
        for i in range(n):
            t0 = perf()
            r = ap_(square, (i,)).get()
            t = perf() - t0
            if r != i * i:
                sys.exit("bench_pool.py: python apply: wrong result")
            series.v.append(t * 1e6)

    def exec_once():
        submit = ex.submit
        t0 = perf()
        fs = [submit(square, i) for i in range(exec_n)]
        cf.wait(fs)
        t = perf() - t0
        if any(f.result() != i * i for i, f in enumerate(fs)):
            sys.exit("bench_pool.py: python executor: wrong result")
        return t

    for r in range(a.reps):
        for k in range(len(tests)):
            t = tests[(r + k) % len(tests)]
            if t == "map":
                run_rate(map_once(map_n, None, "python map"), map_n,
                         a.min_time, s[t])
            elif t == "cs1":
                run_rate(map_once(cs1_n, 1, "python map cs1"), cs1_n,
                         a.min_time, s[t])
            elif t == "serial":
                run_rate(serial_once, map_n, a.min_time, s[t])
            elif t == "apply":
                apply(rt_n, s[t])
            else:
                run_rate(exec_once, exec_n, a.min_time, s[t])

    for t in TESTS:
        s[t].print(a.samples)
    sys.stdout.flush()
    if pool is not None:
        pool.close()
        pool.join()
    if ex is not None:
        ex.shutdown()


if __name__ == "__main__":
    main()
