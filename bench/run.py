#!/usr/bin/env python3
"""run.py - run the benchmarks for mproc (bench_start, bench_pipe),
Python's multiprocessing (bench_start.py, bench_pipe.py) and the OS floor
in one run, print a Markdown table with ratios, and check the project's
budgets.

    python3 bench/run.py --bin build/bench/bench_start [-n 100] [--rounds 4]
                         [--pipe-bin PATH] [--pipe-n 20000] [--check]

bench_pipe is looked for next to bench_start unless --pipe-bin is given.

The N iterations per method are split over ROUNDS rounds; each round runs
bench_start and then bench_start.py (the order alternates from round to
round) so that the noise of a shared machine hits both alike.  Medians,
p10 and p90 are taken over the pooled samples.  Exit status is 0 unless
--check is given and a budget fails.  Python standard library only.
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_start  # noqa: E402  (shares its percentile helper)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
METHODS = ("fork", "spawn", "forkserver")

# (description, numerator label, denominator label, op, bound)
#   "le": num/den <= bound;  "ge": num/den >= bound
BUDGETS = [
    ("fork start+join within 1.3x of raw fork+waitpid",
     "mproc fork", "os fork+waitpid", "le", 1.3),
    ("fork start+join at least 8x faster than Python's fork",
     "python fork", "mproc fork", "ge", 8.0),
    ("spawn start+join within 1.5x of raw posix_spawn of the same executable",
     "mproc spawn", "os posix_spawn", "le", 1.5),
    ("spawn start+join at least 30x faster than Python's spawn",
     "python spawn", "mproc spawn", "ge", 30.0),
]

# The pipe budget compares round trips with the same placement: both ends
# on one CPU ("@same-cpu", see bench_pipe.c), where the round trip is the
# cost of the IPC itself rather than of waking an idle CPU.  It falls back
# to "@cross-cpu" and then to all samples when a placement is missing.
PIPE_BUDGET = ("pipe round trip within 1.25x of a raw socketpair round trip",
               "mproc pipe", "os socketpair", "le", 1.25)
PLACEMENTS = (" @same-cpu", " @cross-cpu", "")


def find_bin(given):
    if given:
        if not os.path.isfile(given):
            sys.exit(f"run.py: {given}: no such file")
        return os.path.abspath(given)
    cands = []
    for base in (os.getcwd(), ROOT):
        try:
            names = sorted(os.listdir(base))
        except OSError:
            continue
        for d in names:
            if d.startswith("build") or d in ("out", "cmake-build-release"):
                cands.append(os.path.join(base, d, "bench", "bench_start"))
    cands = [c for c in cands if os.path.isfile(c) and os.access(c, os.X_OK)]
    if not cands:
        sys.exit("run.py: bench_start not found; build it "
                 "(cmake --build build) or pass --bin PATH")
    return max(cands, key=os.path.getmtime)  # the most recently built


def find_pipe_bin(given, start_exe):
    if given:
        if not os.path.isfile(given):
            sys.exit(f"run.py: {given}: no such file")
        return os.path.abspath(given)
    c = os.path.join(os.path.dirname(start_exe), "bench_pipe")
    return c if os.path.isfile(c) and os.access(c, os.X_OK) else None


def pct(v, q):
    """Percentile q of unsorted samples v (bench_start.pct on a sorted copy)."""
    return bench_start.pct(sorted(v), q)


def alternate(exe, pyscript, total, rounds, warm, python, pooled):
    """Run the C program and its Python twin in `rounds` rounds, in
    alternating order, `total` iterations in all; pool every sample and
    return the medians of each round."""
    per_round = []
    for r in range(rounds):
        n = total // rounds + (1 if r < total % rounds else 0)
        c_cmd = [exe, "-n", str(n), "-w", str(warm), "--samples"]
        p_cmd = [python, pyscript, "-n", str(n), "-w", str(warm),
                 "--samples"]
        got = {}
        for cmd in ((c_cmd, p_cmd) if r % 2 == 0 else (p_cmd, c_cmd)):
            got.update(run(cmd))
        for k, v in got.items():
            pooled.setdefault(k, []).extend(v)
        per_round.append({k: statistics.median(v) for k, v in got.items()})
        print(f"  {os.path.basename(exe)}: round {r + 1}/{rounds} done",
              file=sys.stderr)
    return per_round


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"run.py: {' '.join(cmd)} failed with status {r.returncode}")
    samples = {}
    for line in r.stdout.splitlines():
        if line.startswith("samples "):
            label, _, data = line[len("samples "):].partition(":")
            samples[label.strip()] = [float(x) for x in data.split(",") if x]
    return samples


def machine():
    try:
        avail = len(os.sched_getaffinity(0))
    except AttributeError:
        avail = os.cpu_count()
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "?"
    return (f"machine: nproc={avail} (cpus={os.cpu_count()}), "
            f"kernel={platform.system()} {platform.release()} "
            f"{platform.machine()}, python={platform.python_version()}, "
            f"loadavg={load}")


def fmt(x):
    return "n/a" if x is None else (f"{x:,.0f}" if x >= 1000 else f"{x:.1f}")


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", help="path to bench_start (default: look for "
                    "build*/bench/bench_start)")
    ap.add_argument("-n", type=int, default=100,
                    help="iterations per method in all (default 100)")
    ap.add_argument("--rounds", type=int, default=4,
                    help="alternate mproc and Python this many times "
                    "(default 4)")
    ap.add_argument("-w", type=int, default=3,
                    help="warm-up iterations per method and round")
    ap.add_argument("--python", default=sys.executable,
                    help="the Python to measure (default: this one)")
    ap.add_argument("--pipe-bin", help="path to bench_pipe (default: next "
                    "to bench_start)")
    ap.add_argument("--pipe-n", type=int, default=20000,
                    help="pipe round trips per method in all (default 20000)")
    ap.add_argument("--pipe-w", type=int, default=1000,
                    help="pipe warm-up round trips per method and round")
    ap.add_argument("--check", action="store_true",
                    help="exit non-zero when a budget fails")
    a = ap.parse_args()
    if a.n < 1 or a.rounds < 1 or a.pipe_n < 1:
        ap.error("-n, --pipe-n and --rounds must be positive")
    rounds = min(a.rounds, a.n)
    exe = find_bin(a.bin)
    pipe_exe = find_pipe_bin(a.pipe_bin, exe)

    print(machine())
    print(f"bench_start: {exe}")
    print(f"n={a.n} per method, in {rounds} alternating rounds, "
          f"warm-up {a.w} per method and round")
    if pipe_exe:
        print(f"bench_pipe: {pipe_exe}")
        print(f"pipe: n={a.pipe_n} round trips per method, in {a.rounds} "
              f"alternating rounds, warm-up {a.pipe_w} per method and round")
    else:
        print("bench_pipe: not found next to bench_start (--pipe-bin): "
              "pipe row skipped")

    pooled = {}
    per_round = alternate(exe, os.path.join(HERE, "bench_start.py"), a.n,
                          rounds, a.w, a.python, pooled)
    per_round_pipe = []
    if pipe_exe:
        per_round_pipe = alternate(pipe_exe,
                                   os.path.join(HERE, "bench_pipe.py"),
                                   a.pipe_n, min(a.rounds, a.pipe_n),
                                   a.pipe_w, a.python, pooled)

    med = {k: statistics.median(v) for k, v in pooled.items()}
    g = med.get

    print()
    print("| method | mproc (µs) | Python (µs) | OS floor (µs) "
          "| mproc vs OS floor | Python / mproc |")
    print("|---|---:|---:|---:|---:|---:|")
    floors = {"fork": ("os fork+waitpid", "fork+waitpid"),
              "spawn": ("os posix_spawn", "posix_spawn of bench_start"),
              "forkserver": ("os fork+waitpid", "fork+waitpid")}
    for m in METHODS:
        mp_, py = g(f"mproc {m}"), g(f"python {m}")
        fl_label, fl_name = floors[m]
        fl = g(fl_label)
        vs = ratio(mp_, fl)
        pm = ratio(py, mp_)
        print(f"| {m} | {fmt(mp_)} | {fmt(py)} | {fmt(fl)} ({fl_name}) "
              f"| {'n/a' if vs is None else f'{vs:.2f}x'} "
              f"| {'n/a' if pm is None else f'{pm:.1f}x'} |")
    if pipe_exe:
        for suffix, name in (("", "pipe round trip (8 B)"),
                             (" @same-cpu", "↳ both on one CPU"),
                             (" @cross-cpu", "↳ on two CPUs")):
            mp_, py = g("mproc pipe" + suffix), g("python pipe" + suffix)
            fl = g("os socketpair" + suffix)
            if suffix and mp_ is None and fl is None:
                continue
            vs, pm = ratio(mp_, fl), ratio(py, mp_)
            print(f"| {name} | {fmt(mp_)} | {fmt(py)} | {fmt(fl)} "
                  f"(socketpair) "
                  f"| {'n/a' if vs is None else f'{vs:.2f}x'} "
                  f"| {'n/a' if pm is None else f'{pm:.1f}x'} |")
    print()
    print("Medians over the pooled samples.  forkserver's floor is a raw "
          "fork+waitpid (the server's own start is excluded by warm-up).")
    if pipe_exe:
        print("Pipe: fork-context children; the ↳ rows split the samples by "
              "where the scheduler put parent and child (see README.md).")
    print()
    print("Spread (µs): min / p10 / median / p90")
    for k in sorted(pooled):
        v = pooled[k]
        print(f"  {k:<28} {min(v):9.1f} {pct(v, .1):9.1f} {pct(v, .5):9.1f} "
              f"{pct(v, .9):9.1f}   n={len(v)}")

    print()
    failed = 0
    for desc, num, den, op, bound in BUDGETS:
        x = ratio(g(num), g(den))
        rr = [ratio(pr.get(num), pr.get(den)) for pr in per_round]
        rr = " ".join("n/a" if y is None else f"{y:.2f}" for y in rr)
        if x is None:
            verdict, failed = "FAIL", failed + 1
            shown = "n/a"
        else:
            ok = x <= bound if op == "le" else x >= bound
            verdict = "PASS" if ok else "FAIL"
            failed += not ok
            shown = f"{x:.2f}x"
        rel = "<=" if op == "le" else ">="
        print(f"{verdict}: {desc}: {num} / {den} = {shown} "
              f"(budget {rel} {bound}x; per round: {rr})")
    if pipe_exe:
        desc, num, den, op, bound = PIPE_BUDGET
        for suffix in PLACEMENTS:  # the first placement both methods have
            if g(num + suffix) is not None and g(den + suffix) is not None:
                break
        nm, dn = num + suffix, den + suffix
        x = ratio(g(nm), g(dn))
        rr = [ratio(pr.get(nm), pr.get(dn)) for pr in per_round_pipe]
        rr = " ".join("n/a" if y is None else f"{y:.2f}" for y in rr)
        ok = x is not None and x <= bound
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}: {desc}: {nm} / {dn} = "
              f"{'n/a' if x is None else f'{x:.2f}x'} "
              f"(budget <= {bound}x; per round: {rr})")
    else:
        print(f"SKIP: {PIPE_BUDGET[0]}: bench_pipe not found")
    if a.check and failed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
