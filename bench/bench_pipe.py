"""bench_pipe.py - round-trip latency of an 8-byte message over Python's
multiprocessing.Pipe() (the Python side of bench_pipe.c; see README.md).

For each context (fork, and spawn): a, b = ctx.Pipe(); a child gets b and
echoes every message with b.send_bytes(b.recv_bytes()) until it receives
an empty one.  The parent warms up, then N times

    t0 = perf_counter(); a.send_bytes(msg); a.recv_bytes()
    t = perf_counter() - t0

in blocks that alternate between the contexts like bench_pipe.c.  Output
(microseconds):

    python pipe median_us=... min_us=... p10_us=... p90_us=... n=20000

("python pipe spawn" for the spawn child.)  On Linux each block is also
tagged by placement like in bench_pipe.c (parent's and child's CPU from
/proc/PID/stat before and after it) and the tagged samples are printed
again as "<label> @same-cpu" / "<label> @cross-cpu".  Flags: -n N, -w WARMUP,
--blocks B, --only fork|spawn (repeatable), --samples (also print
"samples <label>: t1,t2,...").
"""
import argparse
import multiprocessing as mp
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_start import pct  # noqa: E402  (one percentile for all)

METHODS = ("fork", "spawn")
LABELS = {"fork": "python pipe", "spawn": "python pipe spawn"}
MSG = 8


def cpu_of(pid):
    """The CPU a process last ran on (field 39 of /proc/PID/stat), or -1."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        return int(s[s.rindex(")") + 2:].split()[36])
    except (OSError, ValueError, IndexError):
        return -1


def echo(conn):
    while True:
        m = conn.recv_bytes()
        if not m:
            return
        conn.send_bytes(m)


def start(ctx):
    a, b = ctx.Pipe()
    p = ctx.Process(target=echo, args=(b,))
    p.start()
    b.close()
    return a, p


def stop(a, p, m):
    a.send_bytes(b"")
    a.close()
    p.join()
    if p.exitcode != 0:
        sys.exit(f"bench_pipe.py: {m} child exit code {p.exitcode}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20000, help="round trips")
    ap.add_argument("-w", type=int, default=1000, help="warm-up round trips")
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--only", action="append", choices=METHODS)
    ap.add_argument("--samples", action="store_true")
    a = ap.parse_args()
    if a.n < 1 or a.w < 0 or a.blocks < 1:
        ap.error("-n and --blocks must be positive, -w not negative")
    methods = [m for m in METHODS if not a.only or m in a.only]
    peers = {m: start(mp.get_context(m)) for m in methods}
    msg = bytearray(b"python\0\0")
    perf = time.perf_counter

    def block(m, t, first, count):
        conn = peers[m][0]
        send, recv = conn.send_bytes, conn.recv_bytes
        for i in range(first, first + count):
            msg[MSG - 1] = i & 0xFF
            out = bytes(msg)
            t0 = perf()
            send(out)
            back = recv()
            t[i] = perf() - t0
            if back != out:
                sys.exit(f"bench_pipe.py: {m} echoed the wrong message")

    scratch = [0.0] * max(a.w, 1)
    for m in methods:
        block(m, scratch, 0, a.w)

    t = {m: [0.0] * a.n for m in methods}
    place = {m: [""] * a.n for m in methods}
    blocks = min(a.blocks, a.n)
    done = 0
    k = len(methods)
    me = os.getpid()
    for b in range(blocks):
        n = a.n // blocks + (1 if b < a.n % blocks else 0)
        for j in range(k):
            m = methods[(b + j) % k]
            kid = peers[m][1].pid
            p0, c0 = cpu_of(me), cpu_of(kid)
            block(m, t[m], done, n)
            p1, c1 = cpu_of(me), cpu_of(kid)
            tag = ""
            if p0 >= 0 and c0 >= 0 and p0 == p1 and c0 == c1:
                tag = "same-cpu" if p0 == c0 else "cross-cpu"
            place[m][done:done + n] = [tag] * n
        done += n
    for m in methods:
        stop(*peers[m], m)

    for m in methods:
        for tag in (None, "same-cpu", "cross-cpu"):
            v = [x for x, g in zip(t[m], place[m]) if tag is None or g == tag]
            if not v:
                continue
            label = LABELS[m] + ("" if tag is None else " @" + tag)
            if a.samples:
                print(f"samples {label}: " +
                      ",".join(f"{x * 1e6:.3f}" for x in v))
            v = sorted(v)
            print(f"{label} median_us={pct(v, 0.5) * 1e6:.2f} "
                  f"min_us={v[0] * 1e6:.2f} p10_us={pct(v, 0.1) * 1e6:.2f} "
                  f"p90_us={pct(v, 0.9) * 1e6:.2f} n={len(v)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
