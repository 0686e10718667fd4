"""bench_start.py - latency of starting and joining a do-nothing child with
Python's multiprocessing, per start method (the Python side of
bench_start.c; see README.md).

For each of fork, spawn, forkserver: ctx = mp.get_context(m), warm up
(which also starts the fork server), then N times

    p = ctx.Process(target=noop)
    t0 = perf_counter(); p.start(); p.join(); t = perf_counter() - t0

The methods are interleaved like in bench_start.c.  Output (microseconds):

    python fork median_us=... min_us=... p10_us=... p90_us=... n=100

Flags: -n N, -w WARMUP, --only fork|spawn|forkserver (repeatable),
--samples (also print "samples python <m>: t1,t2,...").
"""
import argparse
import multiprocessing as mp
import sys
import time

METHODS = ("fork", "spawn", "forkserver")


def noop():
    pass


def pct(v, q):
    """Linear-interpolated percentile q in [0, 1] of sorted list v."""
    if len(v) == 1:
        return v[0]
    pos = q * (len(v) - 1)
    i = int(pos)
    if i >= len(v) - 1:
        return v[-1]
    return v[i] + (v[i + 1] - v[i]) * (pos - i)


def one(ctx):
    p = ctx.Process(target=noop)
    t0 = time.perf_counter()
    p.start()
    p.join()
    t = time.perf_counter() - t0
    if p.exitcode != 0:
        sys.exit(f"bench_start.py: child exit code {p.exitcode}")
    p.close()
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100, help="iterations")
    ap.add_argument("-w", type=int, default=5, help="warm-up iterations")
    ap.add_argument("--only", action="append", choices=METHODS)
    ap.add_argument("--samples", action="store_true")
    a = ap.parse_args()
    methods = [m for m in METHODS if not a.only or m in a.only]
    ctxs = {m: mp.get_context(m) for m in methods}

    for _ in range(a.w):
        for m in methods:
            one(ctxs[m])

    t = {m: [0.0] * a.n for m in methods}
    k = len(methods)
    for i in range(a.n):
        for j in range(k):
            m = methods[(i + j) % k]
            t[m][i] = one(ctxs[m])

    for m in methods:
        v = t[m]
        if a.samples:
            print(f"samples python {m}: " + ",".join(f"{x * 1e6:.3f}" for x in v))
        v = sorted(v)
        print(f"python {m} median_us={pct(v, 0.5) * 1e6:.1f} "
              f"min_us={v[0] * 1e6:.1f} p10_us={pct(v, 0.1) * 1e6:.1f} "
              f"p90_us={pct(v, 0.9) * 1e6:.1f} n={a.n}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
