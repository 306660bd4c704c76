"""Benchmark: seconds per trial of the ``paper`` preset, by method; ``paper-quick`` end to end.

Usage::

    python benchmarks/bench_study.py                 # one `paper` trial at width 1024, then paper-quick
    python benchmarks/bench_study.py --reduced       # width 256, epochs / 10, paper-quick with 2 trials
    python benchmarks/bench_study.py --skip-quick --threads 2 --device cuda

The trial runs as a local worker would: numpy BLAS with one thread, torch with ``--threads``
threads (default 1: with ``--workers = cores`` each worker gets one). Per method it prints the
whole time (including the equivalence measures of networks), the fit time alone
(``fit_seconds``: training / solving and predicting), and the share of the trial spent in
network training. Targets on a 2-core machine: a `paper` trial <= 8 minutes at width 1024,
kernel methods (data + all kernel methods) <= 5 s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ntklab.config import load_config
from ntklab.execution import limit_threads, run_study
from ntklab.study import run_trial


def bench_paper_trial(overrides: list[str], threads: int, device, trial: int) -> None:
    plan = load_config("paper", overrides=overrides)
    cfg = plan.points[0].config
    marks: list[tuple[str, float]] = []
    start = time.perf_counter()
    with limit_threads(threads):
        record = run_trial(
            cfg,
            trial=trial,
            device=device,
            on_method=lambda m: marks.append((m, time.perf_counter())),
        )
    end = time.perf_counter()
    if record.status != "done":
        raise SystemExit(f"trial failed: {record.error}")
    fit = {m: v for (m, k, s, v) in record.rows if k == "fit_seconds"}
    kinds = {m.name: m.kind for m in cfg.methods}
    nn = cfg.method("NN2")
    print(
        f"paper trial {trial}: width {nn.width}, epochs NN1/NN2 {cfg.method('NN1').epochs}/{nn.epochs}, "
        f"torch threads {threads}, device {device or 'auto'}"
    )
    data_seconds = marks[0][1] - start
    print(f"  {'data':<8} {data_seconds:8.2f} s  (X, generating kernel, Cholesky)")
    total_kernel = data_seconds
    total_train = 0.0
    for i, (name, t0) in enumerate(marks):
        t1 = marks[i + 1][1] if i + 1 < len(marks) else end
        extra = ""
        if kinds[name] == "network":
            total_train += fit.get(name, 0.0)
            extra = f"  (training {fit.get(name, float('nan')):.2f} s, equivalence {t1 - t0 - fit.get(name, 0.0):.2f} s)"
        else:
            total_kernel += t1 - t0
        print(f"  {name:<8} {t1 - t0:8.2f} s{extra}")
    wall = end - start
    print(
        f"  total    {wall:8.2f} s; network training {total_train:.1f} s = {100 * total_train / wall:.0f}% "
        f"of the trial; data + kernel methods {total_kernel:.2f} s"
    )
    for m, msg in record.errors:
        print(f"  error in {m}: {msg}")


def bench_quick(trials: int | None, workers: int | None) -> None:
    plan = load_config("paper-quick", trials=trials)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = run_study(plan, Path(tmp) / "run", workers=workers, echo=None)
        wall = time.perf_counter() - start
    print(
        f"paper-quick end to end: {summary.done} trials ({summary.failed} failed) in {wall:.1f} s "
        f"({wall / max(1, summary.done):.1f} s per trial with {workers or 'all'} workers)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reduced", action="store_true", help="width 256, epochs / 10, 2 paper-quick trials"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the paper trial")
    parser.add_argument(
        "--device", default=None, help="device for the networks (default: cuda if present)"
    )
    parser.add_argument("--trial", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="workers for paper-quick")
    parser.add_argument("--skip-quick", action="store_true")
    parser.add_argument("--skip-paper", action="store_true")
    args = parser.parse_args()
    overrides = (
        ["methods.*.width=256", "methods.NN1.epochs=300", "methods.NN2.epochs=600"]
        if args.reduced
        else []
    )
    if not args.skip_paper:
        bench_paper_trial(overrides, args.threads, args.device, args.trial)
    if not args.skip_quick:
        bench_quick(2 if args.reduced else None, args.workers)


if __name__ == "__main__":
    main()
