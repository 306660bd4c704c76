"""Benchmark: analytic kernels and the empirical NTK (a script, not a test).

Times ``Architecture.kernels`` (NNGP and NTK in one pass, float64) for n points in R^15,
prints seconds, peak traced memory (numpy allocations, via tracemalloc; the process's peak
resident memory is printed at the end) and the speed-up over
a straightforward per-pair Python loop (the seed's approach), timed on a size where the loop
finishes and extrapolated per pair. Then times the empirical NTK of a width-4096, depth-2
network on 200 points with the structured path, and the generic torch.func path on a few
points (extrapolated per pair).

Usage::

    python benchmarks/bench_kernels.py                  # n = 1000, 2000, 4000, 8000
    python benchmarks/bench_kernels.py --large          # also n = 20000 (about 10 GB)
    python benchmarks/bench_kernels.py --sizes 500,1000 --skip-empirical
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
import tracemalloc

import numpy as np

import ntklab
from ntklab.empirical import empirical_ntk


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def loop_kernels(X: np.ndarray, arch: ntklab.Architecture) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair Python loop over SPEC §2's recursion (the seed's approach), for timing."""
    n, d = X.shape
    a1, v1 = arch._param.first_layer(d, arch.sigma_w)
    sw2, b2 = arch.sigma_w**2, arch.sigma_b**2
    nngp, ntk = np.empty((n, n)), np.empty((n, n))
    for i in range(n):
        for j in range(n):
            xx, xz, zz = X[i] @ X[i], X[i] @ X[j], X[j] @ X[j]
            s_xx, s_xz, s_zz = (a1**2 * v1 * v + b2 for v in (xx, xz, zz))
            t_xz = a1**2 * xz + b2
            for _ in range(arch.depth):
                rho = max(-1.0, min(1.0, s_xz / math.sqrt(s_xx * s_zz)))
                th = math.acos(rho)
                e_phi = (
                    math.sqrt(s_xx * s_zz) * (math.sin(th) + (math.pi - th) * rho) / (2 * math.pi)
                )
                s_xz = sw2 * e_phi + b2
                t_xz = t_xz * sw2 * (math.pi - th) / (2 * math.pi) + s_xz
                s_xx, s_zz = sw2 * s_xx / 2 + b2, sw2 * s_zz / 2 + b2
            nngp[i, j], ntk[i, j] = s_xz, t_xz
    return nngp, ntk


def bench_kernels(sizes, depths, loop_n: int) -> None:
    loop_per_pair = {}
    for depth in depths:
        arch = ntklab.Architecture(depth, "paper")
        X = unit_rows(loop_n, 15, seed=0)
        t0 = time.perf_counter()
        ref = loop_kernels(X, arch)
        loop_per_pair[depth] = (time.perf_counter() - t0) / loop_n**2
        fast = arch.kernels(X)
        err = max(np.abs(a - b).max() / np.abs(b).max() for a, b in zip(fast, ref, strict=True))
        print(
            f"# loop: depth {depth}, n={loop_n}: {loop_per_pair[depth] * 1e6:.1f} us per pair; "
            f"max relative difference to the vectorized kernels {err:.1e}"
        )
    print(f"{'n':>6} {'depth':>5} {'seconds':>9} {'peak MB':>9} {'output MB':>9} {'vs loop':>9}")
    for n in sizes:
        X = unit_rows(n, 15, seed=1)
        for depth in depths:
            arch = ntklab.Architecture(depth, "paper")
            tracemalloc.start()
            t0 = time.perf_counter()
            arch.kernels(X)
            seconds = time.perf_counter() - t0
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            ratio = loop_per_pair[depth] * n * n / seconds
            print(
                f"{n:>6} {depth:>5} {seconds:>9.3f} {peak / 2**20:>9.0f} "
                f"{2 * 8 * n * n / 2**20:>9.0f} {ratio:>8.0f}x"
            )


def bench_empirical(width: int, n_points: int, generic_points: int) -> None:
    arch = ntklab.Architecture(2, "paper")
    X = unit_rows(n_points, 15, seed=2)
    net = arch.network(width, seed=0, in_features=15, device="cpu")
    empirical_ntk(net, X[:4])  # warm-up
    t0 = time.perf_counter()
    K = empirical_ntk(net, X, method="structured")
    structured = time.perf_counter() - t0
    t0 = time.perf_counter()
    Kg = empirical_ntk(net, X[:generic_points], method="generic")
    generic = time.perf_counter() - t0
    generic_full = generic * (n_points / generic_points) ** 2
    diff = np.abs(Kg - K[:generic_points, :generic_points]).max() / np.abs(K).max()
    rel = np.linalg.norm(K - arch.ntk(X)) / np.linalg.norm(arch.ntk(X))
    print(
        f"empirical NTK, width {width}, depth 2, {n_points} points: structured {structured:.2f} s; "
        f"generic {generic:.2f} s on {generic_points} points (~{generic_full:.0f} s extrapolated "
        f"per pair to {n_points}, {generic_full / structured:.0f}x slower); "
        f"max |generic - structured| / max|K| = {diff:.1e}; "
        f"relative Frobenius distance to the analytic NTK {rel:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,4000,8000")
    parser.add_argument("--large", action="store_true", help="also n = 20000")
    parser.add_argument("--depths", default="1,2")
    parser.add_argument("--loop-n", type=int, default=200, help="size timed with the loop")
    parser.add_argument("--skip-empirical", action="store_true")
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--generic-points", type=int, default=10)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] + ([20000] if args.large else [])
    depths = [int(d) for d in args.depths.split(",")]
    bench_kernels(sizes, depths, args.loop_n)
    if not args.skip_empirical:
        bench_empirical(args.width, args.points, args.generic_points)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    peak_mb = peak / 2**20 if sys.platform == "darwin" else peak / 2**10
    print(f"peak resident memory of this process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
