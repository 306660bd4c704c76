"""Benchmark: how fast a local pool's workers are ready, and what they cost (a script).

A worker of ``ntklab run`` imports torch and the trial code before its first trial. This
times N workers from the pool's creation until each has imported that code (what
:func:`ntklab.execution.pool` workers import), for

* ``spawn`` (the baseline: every worker imports it itself), and
* ``forkserver`` (ntklab's pool: the workers fork from a server that imported it once,
  :mod:`ntklab.execution.forkserver`), started when the pool is made, and started early,
  as ``ntklab run`` does, while this process imports the same code (as the main process
  reads its config);

and prints the wall time, the CPU seconds of all the processes (the whole machine's busy
time, from /proc/stat: the workers of a fork server are not this process's children), the
ratio to spawn measured in the same run, and each worker's unique memory (USS, from
/proc/PID/smaps_rollup: pages a worker does not share with the others).

Usage::

    python benchmarks/bench_pool_start.py                # 2 and 4 workers
    python benchmarks/bench_pool_start.py --workers 8 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

CODE = "ntklab.execution.pool"


def _ready(_):
    """In a worker: import what a pool worker imports; its pid and unique memory (kB)."""
    __import__(CODE)
    uss = 0
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                uss += int(line.split()[1])
    except OSError:
        pass
    time.sleep(0.2)  # keep this worker busy, so that each task lands on another worker
    return os.getpid(), uss


def _busy() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _trial(method: str, workers: int) -> tuple[float, float, float]:
    """One fresh interpreter per measurement (nothing imported or started before)."""
    code = f"""
import concurrent.futures as cf, multiprocessing, sys, time
sys.path.insert(0, {str(Path(__file__).parent)!r})
from bench_pool_start import _ready
t0 = time.perf_counter()
if {method!r} == "spawn":
    ctx = multiprocessing.get_context("spawn")
else:
    from ntklab.execution.forkserver import pool_context, start_pool_server
    if {method!r} == "forkserver-early":
        start_pool_server()
    ctx = pool_context()
__import__({CODE!r})  # the main process's own imports (its config)
with cf.ProcessPoolExecutor({workers}, mp_context=ctx) as pool:
    out = list(pool.map(_ready, range({workers})))
wall = time.perf_counter() - t0
assert len({{p for p, _ in out}}) == {workers}, out
print(wall, sum(u for _, u in out) / len(out))
"""
    before = _busy()
    line = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(line[0]), _busy() - before, float(line[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    methods = ["spawn", "forkserver", "forkserver-early"]
    print(f"{os.cpu_count()} cores; best of {args.repeats}, methods interleaved")
    print(
        f"{'workers':>7} {'method':>17} {'wall s':>7} {'CPU s':>6} {'USS MB':>7} {'wall/spawn':>10}"
    )
    for n in args.workers:
        best: dict[str, tuple[float, float, float]] = {}
        for _ in range(args.repeats):
            for m in methods:
                got = _trial(m, n)
                if m not in best or got[0] < best[m][0]:
                    best[m] = got
        for m in methods:
            wall, cpu, uss = best[m]
            print(
                f"{n:>7} {m:>17} {wall:7.2f} {cpu:6.1f} {uss:7.0f} {wall / best['spawn'][0]:10.2f}"
            )


if __name__ == "__main__":
    main()
