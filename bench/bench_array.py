"""bench_array.py - Python's multiprocessing.Pool.map over a range, the
Python side of bench_array.c's array maps (see README.md).

One pool (multiprocessing.Pool(): os.cpu_count() workers) is created at
the start with the default start method (fork on Linux up to Python
3.13) and warmed up; its creation is not measured.  The task is
square(x) = x * x, a module-level function.

    python map square   items/s: pool.map(square, range(N)),
                        N = 1,000,000, default chunksize

A rate sample repeats its operation until it has run for at least
--min-time seconds (default 0.2) and is the number of items over the time
they took.  Every result is checked, outside the timing (exit 2 when one
is wrong).

Output like bench_array.c, one line per label with the unit in the keys:

    python map square median_items_s=... min_items_s=... p10_items_s=...
      p90_items_s=... n=3

preceded by "info python-array: start_method=fork workers=2 n=1000000".
With --samples each line is followed by "samples <label>: v1,v2,...".

Flags: --reps R (default 3), --scale F (multiplies N), --n N (1000000),
--min-time S (0.2), --only square, --samples.
"""
import argparse
import multiprocessing as mp
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_start import pct  # noqa: E402  (one percentile for all)

TESTS = ("square",)


def square(x):
    return x * x


class Series:
    def __init__(self, label, unit):
        self.label, self.unit, self.v = label, unit, []

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
        print(f"bench_array.py: {label}: wrong results", file=sys.stderr)
        sys.exit(2)


def run_rate(once, n, min_time, series):
    """Repeat once() (n items, returns its time) until min_time passed."""
    done, spent = 0, 0.0
    while spent < min_time:
        spent += once()
        done += n
    series.v.append(done / spent)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--n", type=int)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--only", action="append", choices=TESTS)
    ap.add_argument("--samples", action="store_true")
    a = ap.parse_args()
    if a.reps < 1 or a.scale <= 0 or a.min_time < 0:
        ap.error("--reps and --scale must be positive, --min-time not "
                 "negative")
    n = a.n if a.n else max(1, round(1000000 * a.scale))
    tests = [t for t in TESTS if not a.only or t in a.only]
    perf = time.perf_counter

    pool = mp.Pool()
    print(f"info python-array: start_method={mp.get_start_method()} "
          f"workers={pool._processes} n={n}")

    # Warm-up: the workers' first tasks, caches, the CPU frequency.
    check("warm-up", pool.map(square, range(10000)), 10000)

    s = {"square": Series("python map square", "items_s")}

    def map_once():
        t0 = perf()
        res = pool.map(square, range(n))
        t = perf() - t0
        check("python map square", res, n)
        return t

    for r in range(a.reps):
        for k in range(len(tests)):
            t = tests[(r + k) % len(tests)]
            run_rate(map_once, n, a.min_time, s[t])

    for t in TESTS:
        s[t].print(a.samples)
    sys.stdout.flush()
    pool.close()
    pool.join()


if __name__ == "__main__":
    main()
