"""bench_handoff.py - Python's side of bench_handoff.c: a Connection sent
through a Pipe to a fork child (pickled by multiprocessing's reduction:
the resource sharer serves its descriptor), which sends one byte through
it.  The parent, N times: a, b = Pipe(); c.send(b); b.close();
a.recv_bytes().  Output (microseconds per hand-off):

    python handoff median_us=... p10_us=... p90_us=... n=...

Flags: -n N (default 2000), -w WARMUP (200), --samples (also "samples
python handoff: t1,t2,..." in microseconds).
"""
import argparse
import multiprocessing as mp
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_start import pct  # noqa: E402


def taker(carrier, count):
    for _ in range(count):
        conn = carrier.recv()
        conn.send_bytes(b"x")
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("-w", type=int, default=200)
    ap.add_argument("--samples", action="store_true")
    a = ap.parse_args()
    ctx = mp.get_context("fork")
    c1, c2 = ctx.Pipe()
    p = ctx.Process(target=taker, args=(c2, a.n + a.w))
    p.start()
    times = []
    for i in range(a.n + a.w):
        t0 = time.perf_counter()
        x, y = ctx.Pipe()
        c1.send(y)
        y.close()
        x.recv_bytes()
        x.close()
        if i >= a.w:
            times.append(time.perf_counter() - t0)
    p.join()
    if a.samples:
        print("samples python handoff:" +
              ",".join(f"{t * 1e6:.3f}" for t in times))
    times.sort()
    print(f"python handoff median_us={pct(times, 0.5) * 1e6:.2f} "
          f"p10_us={pct(times, 0.1) * 1e6:.2f} "
          f"p90_us={pct(times, 0.9) * 1e6:.2f} n={len(times)}", flush=True)


if __name__ == "__main__":
    main()
