"""bench_manager.py - Python's Manager().dict() used from a child process
(the Python side of bench_manager.c; see README.md).

    python manager dict  ops/s: m = multiprocessing.Manager() once at the
                         start (not timed); per sample a new dict
                         (m.dict()) and a new child (multiprocessing.Process,
                         default start method) that does W warm-up
                         iterations, then times N of
                             d[k] = i; d[k]        (checks the value)
                         with k = i % 100: each set and each get is one
                         operation (2N in all).

The child stores its rate in a shared double (multiprocessing.RawValue)
read by the parent after joining it.

Output like bench_manager.c, one line per label with the unit in the keys:

    python manager dict median_ops_s=... min_ops_s=... p10_ops_s=...
      p90_ops_s=... n=3

preceded by "info python-manager: start_method=fork keys=100".  With
--samples the line is followed by "samples <label>: v1,v2,...".

Flags: --reps R (default 3), --scale F (multiplies the default count),
--dict-n N (5000 iterations, 10000 operations), --samples.
"""
import argparse
import multiprocessing as mp
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_start import pct  # noqa: E402  (one percentile for all)

KEYS = 100
WARM = 1000


def set_get(d, i):
    k = i % KEYS
    d[k] = i
    if d[k] != i:
        sys.exit(6)


def dict_client(d, n, rate):
    for i in range(WARM):
        set_get(d, i)
    t0 = time.perf_counter()
    for i in range(n):
        set_get(d, i)
    rate.value = 2 * n / (time.perf_counter() - t0)


def run_dict(m, n):
    d = m.dict()
    rate = mp.RawValue("d", 0.0)
    p = mp.Process(target=dict_client, args=(d, n, rate))
    p.start()
    p.join()
    if p.exitcode != 0:
        sys.exit(f"bench_manager.py: child exit code {p.exitcode}")
    if len(d) != min(n + WARM, KEYS):
        sys.exit(f"bench_manager.py: the dict has {len(d)} keys")
    return rate.value


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--dict-n", type=int, default=0)
    ap.add_argument("--samples", action="store_true")
    a = ap.parse_args()
    if a.reps < 1 or a.scale <= 0 or a.dict_n < 0:
        ap.error("--reps, --scale and --dict-n must be positive")
    n = a.dict_n or max(1, round(5000 * a.scale))

    print(f"info python-manager: start_method={mp.get_start_method()} "
          f"keys={KEYS}", flush=True)
    with mp.Manager() as m:
        v = [run_dict(m, n) for _ in range(a.reps)]

    label = "python manager dict"
    if a.samples:
        print(f"samples {label}: " + ",".join(f"{x:.3f}" for x in v))
    v.sort()
    print(f"{label} median_ops_s={pct(v, 0.5):.2f} min_ops_s={v[0]:.2f} "
          f"p10_ops_s={pct(v, 0.1):.2f} p90_ops_s={pct(v, 0.9):.2f} "
          f"n={len(v)}")


if __name__ == "__main__":
    main()
