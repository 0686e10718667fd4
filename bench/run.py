#!/usr/bin/env python3
"""run.py - run the benchmarks for mproc (bench_start, bench_pipe,
bench_sync, bench_pool, bench_array, bench_manager), Python's
multiprocessing (bench_start.py, bench_pipe.py, bench_sync.py,
bench_pool.py, bench_array.py, bench_manager.py), OpenMP and the OS floor
in one run, print Markdown tables with ratios, and check the project's
budgets.

    python3 bench/run.py --bin build/bench/bench_start [-n 100] [--rounds 4]
                         [--pipe-bin PATH] [--pipe-n 20000]
                         [--sync-bin PATH] [--sync-reps 2] [--sync-scale 1]
                         [--sync-pin both|none]
                         [--pool-bin PATH] [--pool-reps 2] [--pool-scale 1]
                         [--pool-extra yes|no]
                         [--array-bin PATH] [--array-reps 2]
                         [--array-scale 1] [--array-only]
                         [--manager-bin PATH] [--manager-reps 2]
                         [--manager-scale 1] [--manager-only] [--check]

bench_pipe, bench_sync, bench_pool, bench_array and bench_manager are
looked for next to bench_start unless --pipe-bin / --sync-bin /
--pool-bin / --array-bin / --manager-bin is given.  Each round runs
bench_sync with mproc's default adaptive spin and with MPROC_SPIN_US=0
(the "nospin" rows: the queues and the shared Value), and bench_sync.py;
the two-process measurements run once with parent and child pinned to two
CPUs and once pinned to one (--sync-pin both, the default), or unpinned
(--sync-pin none).  Each round also runs bench_pool and bench_pool.py
(default start method, as many pool workers as CPUs, unpinned), and
unless --pool-extra no, bench_pool with MPROC_SPIN_US=0 and the round
trips of both with everything pinned to one CPU.  Each round also runs
bench_array and bench_array.py (array maps on process and thread pools
against the serial loop, OpenMP and Pool.map; the first run's calibrated
work per item is kept for the later ones); bench_array's scaling (1, 2,
4, 8 workers) and memory (a map over 1,000,000 and 100,000,000 int64)
runs come once, after the rounds; --array-only runs just these.  Each
round also runs bench_manager and bench_manager.py (a managed dict used from a child:
set + get operations per second; default start method, unpinned);
--manager-only runs just these.

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

# bench_sync: queues, locks, shared values.  Rates (msgs_s, MB_s, incs_s)
# are better when higher, times (ns) when lower; each budget is still
# num / den against a bound.  The two-process measurements (TWO_PROC)
# are compared with parent and child on two CPUs ("@cross-cpu"), where
# they run in parallel, falling back to all samples when that placement
# is missing.
SYNC_BUDGETS = [
    ("64-byte queue throughput at least 30x Python's multiprocessing.Queue",
     "mproc queue 64B", "python queue 64B", "ge", 30.0),
    ("1 MiB queue throughput at least 50% of memcpy bandwidth",
     "mproc queue 1MiB", "os memcpy", "ge", 0.5),
    ("uncontended Lock acquire+release within 1.5x of a bare futex/CAS lock",
     "mproc lock", "os futex lock", "le", 1.5),
    ("two processes incrementing a shared Value under its lock at least 10x "
     "Python's rate", "mproc value", "python value", "ge", 10.0),
]

TWO_PROC = ("queue 64B", "queue 1MiB", "value")

# bench_pool: process pools and executors against Python's Pool and
# ProcessPoolExecutor (see bench_pool.c).  Rates are better when higher,
# the round trip (us) when lower.
POOL_BUDGETS = [
    ("map of x*x over 1,000,000 ints (default chunksize) at least 10x "
     "Python's Pool.map tasks/s", "mproc map", "python map", "ge", 10.0),
    ("map with chunksize 1 at least 20x Python's tasks/s",
     "mproc map cs1", "python map cs1", "ge", 20.0),
    ("apply_async+get round trip at least 20x faster than Python's",
     "python apply", "mproc apply", "ge", 20.0),
    ("executor submit+wait at least 20x ProcessPoolExecutor's futures/s",
     "mproc executor", "python executor", "ge", 20.0),
    ("generic mp_pool_map of a trivial function (default chunksize) at "
     "least the serial loop's items/s", "mproc map", "c serial map", "ge",
     1.0),
]

# The pool table: (row name, mproc label, Python label, floor label,
# floor name).  Each mproc row comes again for every variant with samples
# (POOL_VARIANTS: mproc's label suffix, the suffix of Python's and the
# floor's, the row name's): without spinning, and with everything pinned
# to one CPU.
POOL_ROWS = [
    ("map, 1,000,000 ints, default chunksize", "mproc map", "python map",
     "c serial map", "serial loop"),
    ("map, chunksize 1 (mproc 100,000 ints, Python 20,000)",
     "mproc map cs1", "python map cs1", "c serial map", "serial loop"),
    ("the same map without a pool, in one process", "c serial map",
     "python serial map", None, None),
    ("apply_async + get round trip", "mproc apply", "python apply",
     "os ping-pong", "socketpair ping-pong"),
    ("executor: submit (mproc 20,000, Python 5,000) + wait all",
     "mproc executor", "python executor", None, None),
]
POOL_VARIANTS = [("", "", ""), (" nospin", "", ", nospin"),
                 (" @one-cpu", " @one-cpu", ", all on one CPU"),
                 (" nospin @one-cpu", " @one-cpu", ", all on one CPU, nospin")]
# bench_array: array maps (mp_pool_map_array) against the serial loop,
# OpenMP's `parallel for` and Python's Pool.map (items/s, see
# bench_array.c).
ARRAY_BUDGETS = [
    ("array map of x*x over 1,000,000 ints on a process pool at least 10x "
     "Python's Pool.map items/s", "mproc array square", "python map square",
     "ge", 10.0),
    ("array map of x*x over 1,000,000 ints on a process pool at least 1.5x "
     "the serial loop", "mproc array square", "c serial square", "ge", 1.5),
    ("compute-bound array map (about 1 µs per item) on processes at least "
     "1.8x the serial loop", "mproc array compute", "c serial compute", "ge",
     1.8),
    ("compute-bound array map (about 1 µs per item) on threads at least "
     "1.8x the serial loop", "mproc thread array compute",
     "c serial compute", "ge", 1.8),
    ("compute-bound array map (about 1 µs per item) on processes at least "
     "0.95x OpenMP's speed", "mproc array compute", "omp compute", "ge",
     0.95),
    ("compute-bound array map (about 1 µs per item) on threads at least "
     "0.95x OpenMP's speed", "mproc thread array compute", "omp compute",
     "ge", 0.95),
]
# (description, label of the big map, label of the small one, bound MB):
# big - small <= bound.
ARRAY_MEMORY_BUDGET = (
    "a 100,000,000-item array map uses at most 64 MB of private memory "
    "more than a 1,000,000-item one", "mproc array memory 100M",
    "mproc array memory 1M", 64.0)

# The array table: (row name, mproc label, Python label, serial floor
# label, OpenMP label).  Rows without an mproc median are left out.
ARRAY_ROWS = [
    ("x*x over 1,000,000 int64, process pool, x and y in one mp_shm",
     "mproc array square", "python map square", "c serial square",
     "omp square"),
    ("the same, malloc'd x and y (copied in and out)",
     "mproc array square copy", "python map square", "c serial square",
     "omp square"),
    ("the same on a thread pool (malloc'd)", "mproc thread array square",
     "python map square", "c serial square", "omp square"),
    ("for comparison: generic mp_pool_map of x*x over 1,000,000 ints "
     "(bench_pool)", "mproc map", "python map", "c serial map", None),
    ("compute, about 1 µs per item, process pool, mp_shm",
     "mproc array compute", None, "c serial compute", "omp compute"),
    ("the same on a thread pool (malloc'd)", "mproc thread array compute",
     None, "c serial compute", "omp compute"),
]
ARRAY_SCALING = (1, 2, 4, 8)

# bench_handoff: a connection handed to a fork child through a pipe
# (Python: c.send(conn), served by its resource sharer), against the
# descriptor by SCM_RIGHTS straight down a Unix socket.
HANDOFF_BUDGET = ("a connection handed to another process through a pipe "
                  "at least 2x faster than Python's c.send(conn)",
                  "python handoff", "mproc handoff", "ge", 2.0)

# bench_manager: a managed dict used from a child process (each d[k] = v
# and each d[k] is one operation), against Python's Manager().dict(); the
# floor of one operation is a raw request + reply between two processes:
# a socketpair ping-pong whose ends poll for 50 us before they block, as
# mproc's calls do (round trips/s).
MANAGER_BUDGETS = [
    ("managed dict set+get from a child at least 5x Python's "
     "Manager().dict() operations/s", "mproc manager dict",
     "python manager dict", "ge", 5.0),
]

# The manager table: (row name, mproc label, Python label, floor label,
# floor name).
MANAGER_ROWS = [
    ("managed dict, d[k] = v and d[k] from a child", "mproc manager dict",
     "python manager dict", "os ping-pong 32B spin", "ping-pong"),
    ("for context: the ping-pong with both ends blocking at once",
     None, None, "os ping-pong 32B", "blocking ping-pong"),
]
INFO = {}  # "mproc" / "python" / "mproc-manager" ... -> "info" lines
SYNC_PLACEMENTS = (("", "unpinned"), (" @cross-cpu", "two CPUs"),
                   (" @same-cpu", "one CPU"))

# The sync table: (row name, mproc label, Python label, floor label,
# floor name).  The two-process rows come once per placement and spin
# setting that has samples.
SYNC_ROWS = [
    ("queue 64 B", "mproc queue 64B", "python queue 64B",
     None, None),
    ("queue 1 MiB", "mproc queue 1MiB", "python queue 1MiB",
     "os memcpy", "memcpy 256 MiB"),
    ("Lock acquire+release, uncontended", "mproc lock", "python lock",
     "os futex lock", "futex lock"),
    ("RLock acquire+release, uncontended", "mproc rlock", "python rlock",
     "os futex lock", "futex lock"),
    ("threading.Lock (Python only)", None, "python threading lock",
     None, None),
    ("Value += 1 under its lock", "mproc value", "python value",
     None, None),
]
UNIT_NAMES = {"us": "µs", "ns": "ns ↓", "msgs_s": "msg/s ↑", "MB_s": "MB/s ↑",
              "incs_s": "incr/s ↑", "tasks_s": "tasks/s ↑",
              "futures_s": "futures/s ↑", "ops_s": "ops/s ↑",
              "items_s": "items/s ↑", "MB": "MB ↓"}
UNITS = {}  # label -> unit, from the programs' summary lines


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


def find_sibling(given, start_exe, name):
    """--pipe-bin / --sync-bin / --pool-bin, or `name` next to
    bench_start, or None."""
    if given:
        if not os.path.isfile(given):
            sys.exit(f"run.py: {given}: no such file")
        return os.path.abspath(given)
    c = os.path.join(os.path.dirname(start_exe), name)
    return c if os.path.isfile(c) and os.access(c, os.X_OK) else None


def pct(v, q):
    """Percentile q of unsorted samples v (bench_start.pct on a sorted copy)."""
    return bench_start.pct(sorted(v), q)


def alternate(exe, pyscript, total, rounds, warm, python, pooled):
    """Run the C program and its Python twin in `rounds` rounds, in
    alternating order, `total` iterations in all; pool every sample and
    return the medians of each round."""
    def cmds(r):
        n = total // rounds + (1 if r < total % rounds else 0)
        return [([exe, "-n", str(n), "-w", str(warm), "--samples"], None),
                ([python, pyscript, "-n", str(n), "-w", str(warm),
                  "--samples"], None)]
    return alternate_cmds(os.path.basename(exe), cmds, rounds, pooled)


def alternate_cmds(name, cmds, rounds, pooled):
    """Run the commands cmds(r) -> [(argv, env or None), ...] in `rounds`
    rounds, in alternating order (reversed every other round); pool every
    sample and return the medians of each round."""
    per_round = []
    for r in range(rounds):
        todo = cmds(r)
        got = {}
        for cmd, env in (todo if r % 2 == 0 else todo[::-1]):
            got.update(run(cmd, env))
        for k, v in got.items():
            pooled.setdefault(k, []).extend(v)
        per_round.append({k: statistics.median(v) for k, v in got.items()})
        print(f"  {name}: round {r + 1}/{rounds} done", file=sys.stderr)
    return per_round


def run(cmd, env=None):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"run.py: {' '.join(cmd)} failed with status {r.returncode}")
    samples = {}
    for line in r.stdout.splitlines():
        if line.startswith("samples "):
            label, _, data = line[len("samples "):].partition(":")
            samples[label.strip()] = [float(x) for x in data.split(",") if x]
        elif line.startswith("info "):  # "info <who>: key=value ..."
            who, _, rest = line[len("info "):].partition(":")
            INFO[who.strip()] = rest.strip()
        elif " median_" in line:  # "<label> median_<unit>=..."
            label, _, rest = line.partition(" median_")
            UNITS[label] = rest.partition("=")[0]
    return samples


def sync_cmds(exe, python, reps, scale, pin):
    """The commands of one bench_sync round: mproc with its default spin,
    mproc with MPROC_SPIN_US=0 (two-process measurements only), and
    Python; with pin == "both", the two-process measurements once pinned
    to two CPUs (with the rest) and once to one."""
    common = ["--reps", str(reps), "--scale", str(scale), "--samples"]
    two = ["--only", "queue64", "--only", "queue1m", "--only", "value"]
    spin = {k: v for k, v in os.environ.items() if k != "MPROC_SPIN_US"}
    nospin = dict(spin, MPROC_SPIN_US="0")
    py = [python, os.path.join(HERE, "bench_sync.py")]
    if pin == "none":
        return lambda r: [([exe] + common, spin),
                          ([exe] + two + common, nospin),
                          (py + common, None)]
    cross, same = ["--pin", "cross"], ["--pin", "same"]
    return lambda r: [([exe] + cross + common, spin),
                      ([exe] + same + two + common, spin),
                      ([exe] + cross + two + common, nospin),
                      ([exe] + same + two + common, nospin),
                      (py + cross + common, None),
                      (py + same + two + common, None)]


def pool_cmds(exe, python, reps, scale, extra):
    """The commands of one bench_pool round: the C program with mproc's
    default spin, and its Python twin; with `extra`, also the C program
    with MPROC_SPIN_US=0 (no serial loop or ping-pong: they do not
    depend on it), and the round trips with everything pinned to one CPU
    (mproc with and without spin, the ping-pong, Python)."""
    common = ["--reps", str(reps), "--scale", str(scale), "--samples"]
    spin = {k: v for k, v in os.environ.items() if k != "MPROC_SPIN_US"}
    nospin = dict(spin, MPROC_SPIN_US="0")
    py = [python, os.path.join(HERE, "bench_pool.py")]
    todo = [([exe] + common, spin), (py + common, None)]
    if extra:
        one = ["--pin", "one", "--only", "apply"]
        todo[1:1] = [
            ([exe, "--only", "map", "--only", "cs1", "--only", "apply",
              "--only", "executor"] + common, nospin),
            ([exe] + one + ["--only", "os"] + common, spin),
            ([exe] + one + common, nospin)]
        todo.append((py + one + common, None))
    return lambda r: todo


def manager_cmds(exe, python, reps, scale):
    """The commands of one bench_manager round: the C program and its
    Python twin."""
    common = ["--reps", str(reps), "--scale", str(scale), "--samples"]
    todo = [([exe] + common, None),
            ([python, os.path.join(HERE, "bench_manager.py")] + common, None)]
    return lambda r: todo


def info_kv(who):
    """The key=value pairs of the last "info <who>:" line."""
    return dict(kv.split("=", 1) for kv in INFO.get(who, "").split()
                if "=" in kv)


def array_cmds(exe, python, reps, scale):
    """The commands of one bench_array round: the C program and its
    Python twin.  Once a run has calibrated the work per item of the
    compute kernel, the later runs reuse it (--iters), so that every
    sample does the same work."""
    common = ["--reps", str(reps), "--scale", str(scale), "--samples"]

    def cmds(r):
        k = info_kv("mproc-array").get("iters")
        it = ["--iters", k] if k and k != "0" else []
        return [([exe] + it + common, None),
                ([python, os.path.join(HERE, "bench_array.py")] + common,
                 None)]
    return cmds


def array_once(exe, reps, scale, pooled):
    """bench_array's scaling and memory runs (once, not every round)."""
    k = info_kv("mproc-array").get("iters")
    it = ["--iters", k] if k and k != "0" else []
    common = ["--reps", str(reps), "--scale", str(scale), "--samples"]
    for what in ("scaling", "memory"):
        got = run([exe, "--only", what] + it + common)
        for key, v in got.items():
            pooled.setdefault(key, []).extend(v)
        print(f"  bench_array: {what} done", file=sys.stderr)


def array_header(exe, a):
    print(f"bench_array: {exe}")
    print(f"array: {a.array_reps} samples per measurement and program run "
          f"(each >= 0.2 s), {a.rounds} alternating rounds, scale "
          f"{a.array_scale:g}; default start method, workers = CPUs, "
          "unpinned; scaling and memory once")


def array_table(g):
    print("Array maps: mp_pool_map_array against the serial loop, OpenMP's "
          "parallel for and Python's Pool.map")
    print()
    print("| measurement | mproc (items/s ↑) | Python (items/s ↑) "
          "| serial floor | OpenMP | mproc / serial | mproc / OpenMP "
          "| mproc / Python |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, m, py, se, om in ARRAY_ROWS:
        mv, pv, sv, ov = (g(x) if x else None for x in (m, py, se, om))
        if mv is None:
            continue
        cells = [fmt(mv), fmt(pv), fmt(sv), fmt(ov)]
        for r in (ratio(mv, sv), ratio(mv, ov), ratio(mv, pv)):
            cells.append("n/a" if r is None else f"{r:.2f}x")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    who = "; ".join(f"{k}: {v}" for k, v in sorted(INFO.items())
                    if k in ("mproc-array", "python-array", "omp"))
    print(f"Medians over the pooled samples ({who}).  Pools are created "
          "and warmed up outside the timing, arrays allocated and "
          "pre-faulted outside it; every worker and OpenMP thread count is "
          "the CPU count.  A rate sample is the items over the time of as "
          "many repetitions as fill 0.2 s.  The serial floor is the same "
          "kernel called once in this process; OpenMP runs the same loop "
          "body (`#pragma omp parallel for`, default schedule).  The "
          "compute kernel is a chain of logistic-map steps of about 1 µs "
          "per item (iters, compute_ns_per_item above).")
    if any(g(f"{lab} w{w}") is not None for w in ARRAY_SCALING
           for lab in ("mproc array compute", "omp compute")):
        print()
        print("| workers | processes (items/s ↑) | threads (items/s ↑) "
              "| OpenMP (items/s ↑) | processes / OpenMP "
              "| threads / OpenMP |")
        print("|---:|---:|---:|---:|---:|---:|")
        labs = ("mproc array compute", "mproc thread array compute",
                "omp compute")
        for w in ARRAY_SCALING:
            v = [g(f"{lab} w{w}") for lab in labs]
            cells = []
            for lab, x in zip(labs, v):
                one = g(f"{lab} w1")
                up = ratio(x, one)
                cells.append(fmt(x) + ("" if up is None or w == 1
                                       else f" ({up:.2f}x w1)"))
            for x in v[:2]:
                r = ratio(x, v[2])
                cells.append("n/a" if r is None else f"{r:.2f}x")
            print(f"| {w} | " + " | ".join(cells) + " |")
        print()
        print("The compute map over a quarter of the items with 1, 2, 4 "
              "and 8 workers / threads (a new pool per count); the "
              "machine's CPUs bound the speed-up.")
    _, big, small, _ = ARRAY_MEMORY_BUDGET
    if g(big) is not None and g(small) is not None:
        print()
        print(f"Memory: private memory of the program and its pool's "
              f"workers after an array map over 1,000,000 int64: "
              f"{g(small):.1f} MB; over 100,000,000: {g(big):.1f} MB; "
              f"difference {g(big) - g(small):.1f} MB (MB = 10^6 bytes; "
              f"{INFO.get('mproc-array-memory', '')}).  The arrays live in "
              "shared memory and are not counted.")


def array_budgets(g, per_round, have):
    """Print the array budget lines (SKIP without bench_array); return the
    number that failed."""
    failed = 0
    for desc, num, den, op, bound in ARRAY_BUDGETS:
        if have:
            failed += check(desc, num, den, op, bound, g, per_round)
        else:
            print(f"SKIP: {desc}: bench_array not found")
    desc, big, small, bound = ARRAY_MEMORY_BUDGET
    if not have:
        print(f"SKIP: {desc}: bench_array not found")
    elif g(big) is None or g(small) is None:
        print(f"SKIP: {desc}: not measured (needs Linux's /proc)")
    else:
        d = g(big) - g(small)
        ok = d <= bound
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}: {desc}: {big} - {small} = "
              f"{d:.1f} MB (budget <= {bound:g} MB; {g(small):.1f} MB "
              f"and {g(big):.1f} MB)")
    return failed


def array_only(a):
    """--array-only: bench_array and bench_array.py, their tables, spread
    and budgets."""
    if a.array_bin:
        exe = find_sibling(a.array_bin, None, "bench_array")
    else:
        exe = find_sibling(None, find_bin(a.bin), "bench_array")
    if exe is None:
        sys.exit("run.py: bench_array not found next to bench_start; "
                 "build it or pass --array-bin PATH")
    print(machine())
    array_header(exe, a)
    pooled = {}
    per_round = alternate_cmds(
        "bench_array", array_cmds(exe, a.python, a.array_reps,
                                  a.array_scale), a.rounds, pooled)
    array_once(exe, a.array_reps, a.array_scale, pooled)
    g = {k: statistics.median(v) for k, v in pooled.items()}.get
    print()
    array_table(g)
    print()
    print("Spread (unit as labelled): min / p10 / median / p90")
    for k in sorted(pooled):
        v = pooled[k]
        print(f"  {k:<34} {fmt(min(v)):>12} {fmt(pct(v, .1)):>12} "
              f"{fmt(pct(v, .5)):>12} {fmt(pct(v, .9)):>12}   "
              f"{UNIT_NAMES.get(UNITS[k], UNITS[k]):<9} n={len(v)}")
    print()
    failed = array_budgets(g, per_round, True)
    return 1 if a.check and failed else 0


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


def placed(label, suffix):
    """label + suffix for a two-process measurement, else label."""
    what = label.partition(" ")[2].replace(" nospin", "")
    return label + suffix if what in TWO_PROC else label


def check(desc, num, den, op, bound, g, per_round):
    """Print one budget line; return 1 when it fails."""
    if placed(num, "x") != num:  # two processes: on two CPUs if measured
        for suffix in (" @cross-cpu", ""):
            if g(placed(num, suffix)) is not None \
                    and g(placed(den, suffix)) is not None:
                break
        num, den = placed(num, suffix), placed(den, suffix)
    x = ratio(g(num), g(den))
    rr = [ratio(pr.get(num), pr.get(den)) for pr in per_round]
    rr = " ".join("n/a" if y is None else f"{y:.2f}" for y in rr)
    if x is None:
        verdict, failed, shown = "FAIL", 1, "n/a"
    else:
        ok = x <= bound if op == "le" else x >= bound
        verdict, failed, shown = ("PASS" if ok else "FAIL"), int(not ok), \
            f"{x:.2f}x"
    rel = "<=" if op == "le" else ">="
    print(f"{verdict}: {desc}: {num} / {den} = {shown} "
          f"(budget {rel} {bound}x; per round: {rr})")
    return failed


def higher_is_better(label):
    return UNITS.get(label, "us") not in ("us", "ns")


def sync_table(g):
    print("| measurement | unit | mproc | Python | floor "
          "| mproc vs floor | mproc speed-up vs Python |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, m, py, fl, fl_name in SYNC_ROWS:
        rows = [(name, m, py)]
        if m and placed(m, "x") != m:
            rows = [(f"{name}, {where}{sp}", placed(m + ns, suffix),
                     placed(py, suffix))
                    for suffix, where in SYNC_PLACEMENTS
                    for ns, sp in (("", ""), (" nospin", ", nospin"))]
            rows = [r for r in rows if g(r[1]) is not None] or rows[:1]
        for row, m_, py_ in rows:
            mv, pv, fv = (g(x) if x else None for x in (m_, py_, fl))
            lab = m_ or py_
            unit = UNIT_NAMES.get(UNITS.get(lab), UNITS.get(lab, "?"))
            vs = ratio(mv, fv)
            up = ratio(mv, pv) if higher_is_better(lab) else ratio(pv, mv)
            floor = "n/a" if fv is None else f"{fmt(fv)} ({fl_name})"
            print(f"| {row} | {unit} | {fmt(mv)} | {fmt(pv)} | {floor} "
                  f"| {'n/a' if vs is None else f'{vs:.2f}x'} "
                  f"| {'n/a' if up is None else f'{up:.1f}x'} |")


def pool_table(g):
    print("| measurement | unit | mproc | Python | floor "
          "| mproc vs floor | mproc speed-up vs Python |")
    print("|---|---|---:|---:|---:|---:|---:|")
    rows = []
    for name, m, py, fl, fl_name in POOL_ROWS:
        for msuf, suf, nsuf in POOL_VARIANTS:
            if msuf and (not m.startswith("mproc ") or g(m + msuf) is None):
                continue
            rows.append((name + nsuf, m + msuf, py and py + suf,
                         fl and fl + suf, fl_name))
    for name, m, py, fl, fl_name in rows:
        mv, pv, fv = (g(x) if x else None for x in (m, py, fl))
        lab = m or py
        u = UNITS.get(lab, "?")
        unit = "µs ↓" if u == "us" else UNIT_NAMES.get(u, u)
        vs = ratio(mv, fv)
        up = ratio(mv, pv) if higher_is_better(lab) else ratio(pv, mv)
        floor = "n/a" if fv is None else f"{fmt(fv)} ({fl_name})"
        print(f"| {name} | {unit} | {fmt(mv)} | {fmt(pv)} | {floor} "
              f"| {'n/a' if vs is None else f'{vs:.2f}x'} "
              f"| {'n/a' if up is None else f'{up:.1f}x'} |")


def manager_table(g):
    print("| measurement | unit | mproc | Python | floor "
          "| mproc vs floor | mproc speed-up vs Python |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, m, py, fl, fl_name in MANAGER_ROWS:
        mv, pv, fv = (g(x) if x else None for x in (m, py, fl))
        unit = UNIT_NAMES.get(UNITS.get(m or fl), "?")
        vs, up = ratio(mv, fv), ratio(mv, pv)
        floor = "n/a" if fv is None else f"{fmt(fv)} ({fl_name})"
        print(f"| {name} | {unit} | {fmt(mv)} | {fmt(pv)} | {floor} "
              f"| {'n/a' if vs is None else f'{vs:.2f}x'} "
              f"| {'n/a' if up is None else f'{up:.1f}x'} |")
    print()
    who = "; ".join(f"{k}: {v}" for k, v in sorted(INFO.items())
                    if k.endswith("-manager"))
    print(f"Medians over the pooled samples ({who}).  The manager's server "
          "is started outside the timing; each sample is a new dict and a "
          "new child doing N iterations of a set and a get (2N operations, "
          "each a round trip to the server).  The floor is one request + "
          "reply between two processes and nothing else: 32 bytes over a "
          "socketpair with a fork()ed child echoing them, both ends "
          "polling for 50 µs before they block, as mproc's calls do "
          "(\"mproc vs floor\": the share of that rate a managed operation "
          "reaches); the blocking ping-pong shows what waking a sleeping "
          "process for every message costs.  Unpinned.")


def manager_header(exe, a):
    print(f"bench_manager: {exe}")
    print(f"manager: {a.manager_reps} samples per measurement and program "
          f"run, {a.rounds} alternating rounds, scale {a.manager_scale:g}; "
          "default start method, unpinned")


def manager_only(a):
    """--manager-only: bench_manager and bench_manager.py, their table,
    spread and budget."""
    if a.manager_bin:
        exe = find_sibling(a.manager_bin, None, "bench_manager")
    else:
        exe = find_sibling(None, find_bin(a.bin), "bench_manager")
    if exe is None:
        sys.exit("run.py: bench_manager not found next to bench_start; "
                 "build it or pass --manager-bin PATH")
    print(machine())
    manager_header(exe, a)
    pooled = {}
    per_round = alternate_cmds(
        "bench_manager", manager_cmds(exe, a.python, a.manager_reps,
                                      a.manager_scale), a.rounds, pooled)
    g = {k: statistics.median(v) for k, v in pooled.items()}.get
    print()
    manager_table(g)
    print()
    print("Spread (unit as labelled): min / p10 / median / p90")
    for k in sorted(pooled):
        v = pooled[k]
        print(f"  {k:<34} {fmt(min(v)):>12} {fmt(pct(v, .1)):>12} "
              f"{fmt(pct(v, .5)):>12} {fmt(pct(v, .9)):>12}   "
              f"{UNIT_NAMES.get(UNITS[k], UNITS[k]):<9} n={len(v)}")
    print()
    failed = 0
    for desc, num, den, op, bound in MANAGER_BUDGETS:
        failed += check(desc, num, den, op, bound, g, per_round)
    return 1 if a.check and failed else 0


def per_item(g):
    """ "map ... ns per item" for the map rows (wall time / items)."""
    out = []
    for lab in ("mproc map", "mproc map cs1", "c serial map", "python map",
                "python map cs1", "python serial map"):
        if g(lab):
            out.append(f"{lab} {1e9 / g(lab):,.0f}")
    return ", ".join(out)


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
    ap.add_argument("--sync-bin", help="path to bench_sync (default: next "
                    "to bench_start)")
    ap.add_argument("--sync-pin", choices=("both", "none"), default="both",
                    help="run bench_sync's two-process measurements pinned "
                    "to two CPUs and to one (both, the default), or "
                    "unpinned (none)")
    ap.add_argument("--sync-reps", type=int, default=2,
                    help="samples per measurement and program run "
                    "(default 2; each bench_sync run happens once per "
                    "round)")
    ap.add_argument("--sync-scale", type=float, default=1.0,
                    help="multiply bench_sync's message and iteration "
                    "counts (default 1)")
    ap.add_argument("--pool-bin", help="path to bench_pool (default: next "
                    "to bench_start)")
    ap.add_argument("--pool-reps", type=int, default=2,
                    help="samples per rate measurement and program run "
                    "(default 2; bench_pool runs once per round)")
    ap.add_argument("--pool-scale", type=float, default=1.0,
                    help="multiply bench_pool's task and round-trip counts "
                    "(default 1)")
    ap.add_argument("--pool-extra", choices=("yes", "no"), default="yes",
                    help="also run bench_pool with MPROC_SPIN_US=0 and the "
                    "round trips pinned to one CPU (default yes)")
    ap.add_argument("--array-bin", help="path to bench_array (default: "
                    "next to bench_start)")
    ap.add_argument("--array-reps", type=int, default=2,
                    help="samples per measurement and program run "
                    "(default 2; bench_array runs once per round)")
    ap.add_argument("--array-scale", type=float, default=1.0,
                    help="multiply bench_array's item counts, not the "
                    "memory test's (default 1)")
    ap.add_argument("--array-only", action="store_true",
                    help="run only bench_array and bench_array.py")
    ap.add_argument("--handoff-bin", help="path to bench_handoff "
                    "(default: next to bench_start)")
    ap.add_argument("--handoff-n", type=int, default=4000,
                    help="hand-offs per program in all (default 4000)")
    ap.add_argument("--manager-bin", help="path to bench_manager (default: "
                    "next to bench_start)")
    ap.add_argument("--manager-reps", type=int, default=2,
                    help="samples per measurement and program run "
                    "(default 2; bench_manager runs once per round)")
    ap.add_argument("--manager-scale", type=float, default=1.0,
                    help="multiply bench_manager's iteration counts "
                    "(default 1)")
    ap.add_argument("--manager-only", action="store_true",
                    help="run only bench_manager and bench_manager.py")
    ap.add_argument("--check", action="store_true",
                    help="exit non-zero when a budget fails")
    a = ap.parse_args()
    if a.n < 1 or a.rounds < 1 or a.pipe_n < 1 or a.sync_reps < 1 \
            or a.sync_scale <= 0 or a.pool_reps < 1 or a.pool_scale <= 0 \
            or a.manager_reps < 1 or a.manager_scale <= 0 \
            or a.array_reps < 1 or a.array_scale <= 0:
        ap.error("-n, --pipe-n, --rounds, --sync-reps, --sync-scale, "
                 "--pool-reps, --pool-scale, --array-reps, --array-scale, "
                 "--manager-reps and --manager-scale must be positive")
    if a.manager_only and a.array_only:
        ap.error("--manager-only and --array-only exclude each other")
    if a.manager_only:
        return manager_only(a)
    if a.array_only:
        return array_only(a)
    rounds = min(a.rounds, a.n)
    exe = find_bin(a.bin)
    pipe_exe = find_sibling(a.pipe_bin, exe, "bench_pipe")
    sync_exe = find_sibling(a.sync_bin, exe, "bench_sync")
    pool_exe = find_sibling(a.pool_bin, exe, "bench_pool")
    array_exe = find_sibling(a.array_bin, exe, "bench_array")
    manager_exe = find_sibling(a.manager_bin, exe, "bench_manager")
    handoff_exe = find_sibling(a.handoff_bin, exe, "bench_handoff")

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
    if sync_exe:
        print(f"bench_sync: {sync_exe}")
        how = ("pinned to two CPUs and to one" if a.sync_pin == "both"
               else "unpinned")
        print(f"sync: {a.sync_reps} samples per measurement and program run, "
              f"{a.rounds} alternating rounds, scale {a.sync_scale:g}; "
              f"nospin rows with MPROC_SPIN_US=0; two-process runs {how}")
    else:
        print("bench_sync: not found next to bench_start (--sync-bin): "
              "queue, lock and Value rows skipped")
    if pool_exe:
        print(f"bench_pool: {pool_exe}")
        print(f"pool: {a.pool_reps} samples per rate measurement and program "
              f"run (each >= 0.2 s), {a.rounds} alternating rounds, scale "
              f"{a.pool_scale:g}; default start method, unpinned"
              + ("; nospin rows with MPROC_SPIN_US=0; round trips also "
                 "with everything pinned to one CPU"
                 if a.pool_extra == "yes" else ""))
    else:
        print("bench_pool: not found next to bench_start (--pool-bin): "
              "pool rows skipped")
    if array_exe:
        array_header(array_exe, a)
    else:
        print("bench_array: not found next to bench_start (--array-bin): "
              "array rows skipped")
    if manager_exe:
        manager_header(manager_exe, a)
    else:
        print("bench_manager: not found next to bench_start "
              "(--manager-bin): manager rows skipped")

    pooled = {}
    per_round = alternate(exe, os.path.join(HERE, "bench_start.py"), a.n,
                          rounds, a.w, a.python, pooled)
    per_round_pipe = []
    if pipe_exe:
        per_round_pipe = alternate(pipe_exe,
                                   os.path.join(HERE, "bench_pipe.py"),
                                   a.pipe_n, min(a.rounds, a.pipe_n),
                                   a.pipe_w, a.python, pooled)
    per_round_sync = []
    if sync_exe:
        per_round_sync = alternate_cmds(
            "bench_sync", sync_cmds(sync_exe, a.python, a.sync_reps,
                                    a.sync_scale, a.sync_pin),
            a.rounds, pooled)
    per_round_pool = []
    if pool_exe:
        per_round_pool = alternate_cmds(
            "bench_pool", pool_cmds(pool_exe, a.python, a.pool_reps,
                                    a.pool_scale, a.pool_extra == "yes"),
            a.rounds, pooled)
    per_round_array = []
    if array_exe:
        per_round_array = alternate_cmds(
            "bench_array", array_cmds(array_exe, a.python, a.array_reps,
                                      a.array_scale), a.rounds, pooled)
        array_once(array_exe, a.array_reps, a.array_scale, pooled)
    per_round_handoff = []
    if handoff_exe:
        per_round_handoff = alternate(
            handoff_exe, os.path.join(HERE, "bench_handoff.py"),
            max(a.handoff_n, 1), min(a.rounds, max(a.handoff_n, 1)), 100,
            a.python, pooled)
    per_round_manager = []
    if manager_exe:
        per_round_manager = alternate_cmds(
            "bench_manager", manager_cmds(manager_exe, a.python,
                                          a.manager_reps, a.manager_scale),
            a.rounds, pooled)

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
    if handoff_exe:
        mp_, py, fl = (g("mproc handoff"), g("python handoff"),
                       g("os handoff"))
        vs, pm = ratio(mp_, fl), ratio(py, mp_)
        print(f"| a connection through a pipe to a child | {fmt(mp_)} "
              f"| {fmt(py)} | {fmt(fl)} (SCM_RIGHTS) "
              f"| {'n/a' if vs is None else f'{vs:.2f}x'} "
              f"| {'n/a' if pm is None else f'{pm:.1f}x'} |")
    print()
    print("Medians over the pooled samples.  forkserver's floor is a raw "
          "fork+waitpid (the server's own start is excluded by warm-up).")
    if pipe_exe:
        print("Pipe: fork-context children; the ↳ rows split the samples by "
              "where the scheduler put parent and child (see README.md).")
    if sync_exe:
        print()
        sync_table(g)
        print()
        print("Medians over the pooled samples.  ↑: higher is better, "
              "↓: lower is better.  \"mproc vs floor\" is mproc / floor: "
              "for ns the overhead (1.00x: none), for MB/s the share of the "
              "floor's bandwidth.  The speed-up is mproc's rate / Python's, "
              "or Python's time / mproc's.  Two-process rows: parent and "
              "child on two CPUs / on one CPU (pinned, or as the scheduler "
              "placed them when unpinned); nospin: mproc with "
              "MPROC_SPIN_US=0, against the same Python.")
    if pool_exe:
        print()
        pool_table(g)
        print()
        who = "; ".join(f"{k}: {v}" for k, v in sorted(INFO.items())
                        if k in ("mproc", "python"))
        print(f"Medians over the pooled samples ({who}).  Pools and "
              "executors are created and warmed up outside the timing; "
              "every worker count is the CPU count.  A rate sample is the "
              "tasks over the time of as many repetitions as fill 0.2 s.  "
              "The floor of the maps is the same map in one process "
              "without a pool (\"mproc vs floor\" above 1.00x: the pool "
              "is faster than the serial loop); the floor of the round "
              "trip is a raw socketpair ping-pong with a fork()ed child "
              "(\"mproc vs floor\": mproc's time / the floor's).  nospin: "
              "mproc with MPROC_SPIN_US=0, against the same Python; one "
              "CPU: the program, its workers and the ping-pong child "
              "pinned to one CPU (the budgets use the default rows: "
              "spinning, unpinned).")
        print(f"Wall time per item (ns): {per_item(g)}.")
    if array_exe:
        print()
        array_table(g)
    if manager_exe:
        print()
        manager_table(g)
    print()
    print("Spread (µs): min / p10 / median / p90")
    for k in sorted(pooled):
        if UNITS.get(k, "us") != "us":
            continue
        v = pooled[k]
        print(f"  {k:<28} {min(v):9.1f} {pct(v, .1):9.1f} {pct(v, .5):9.1f} "
              f"{pct(v, .9):9.1f}   n={len(v)}")
    others = sorted(k for k in pooled if UNITS.get(k, "us") != "us")
    if others:
        print()
        print("Spread (unit as labelled): min / p10 / median / p90")
        for k in others:
            v = pooled[k]
            print(f"  {k:<34} {fmt(min(v)):>12} {fmt(pct(v, .1)):>12} "
                  f"{fmt(pct(v, .5)):>12} {fmt(pct(v, .9)):>12}   "
                  f"{UNIT_NAMES.get(UNITS[k], UNITS[k]):<9} n={len(v)}")

    print()
    failed = 0
    for desc, num, den, op, bound in BUDGETS:
        failed += check(desc, num, den, op, bound, g, per_round)
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
    if handoff_exe:
        failed += check(*HANDOFF_BUDGET, g, per_round_handoff)
    else:
        print(f"SKIP: {HANDOFF_BUDGET[0]}: bench_handoff not found")
    for desc, num, den, op, bound in SYNC_BUDGETS:
        if sync_exe:
            failed += check(desc, num, den, op, bound, g, per_round_sync)
        else:
            print(f"SKIP: {desc}: bench_sync not found")
    for desc, num, den, op, bound in POOL_BUDGETS:
        if pool_exe:
            failed += check(desc, num, den, op, bound, g, per_round_pool)
        else:
            print(f"SKIP: {desc}: bench_pool not found")
    failed += array_budgets(g, per_round_array, array_exe is not None)
    for desc, num, den, op, bound in MANAGER_BUDGETS:
        if manager_exe:
            failed += check(desc, num, den, op, bound, g, per_round_manager)
        else:
            print(f"SKIP: {desc}: bench_manager not found")
    if a.check and failed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
