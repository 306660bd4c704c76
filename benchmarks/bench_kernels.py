"""Benchmark: analytic kernels and the empirical NTK (a script, not a test).

Times ``Architecture.kernels`` (NNGP and NTK in one pass, float64) for n points in R^15
with T threads (default: torch's count; ``--threads``), and prints beside it:

* the achieved bandwidth: the bytes the pass must move (the two n × n float64 outputs,
  written once; plus the Gram matrix written and read back when d > 64) over the time,
  next to this machine's bandwidth measured in the same run with the same T threads: a
  STREAM triad ``a = b + s c`` on preallocated arrays, and the time to produce two fresh
  n × n arrays (allocate and write: page faults included, as for the kernel's outputs);
* the ratio to the previous implementation (numpy, row blocks of ~1M entries, one
  whole-matrix operation per step of each layer), kept in this file as the baseline and
  timed in the same run;
* the ratio to neural-tangents' jitted ``kernel_fn`` (``stax`` Dense/Relu, NTK
  parameterization, float64), when it is installed (skipped otherwise);
* the CPU seconds (all threads) of the best run of each, which a shared machine inflates
  less than the wall clock;
* peak traced memory (numpy allocations, via tracemalloc) and the speed-up over a
  per-pair Python loop (the seed's approach), timed on a size where the loop finishes and
  extrapolated per pair.

Times are the best of ``--repeats`` runs (the machine may be shared). The first call's
JIT compile time is measured in a fresh interpreter with an empty numba cache, and the
first call of a fresh interpreter that finds numba's cache. Then times the empirical NTK
of a width-4096, depth-2 network on 200 points with the structured path, and the generic
torch.func path on a few points (extrapolated per pair).

Usage::

    python benchmarks/bench_kernels.py                  # n = 1000, 2000, 4000, 8000
    python benchmarks/bench_kernels.py --large          # also n = 20000 (about 6.4 GB)
    python benchmarks/bench_kernels.py --sizes 4000 --depths 2 --threads 2 --skip-empirical
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import ntklab
from ntklab.empirical import empirical_ntk
from ntklab.kernels import relu_moments
from ntklab.layers import Dense


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def best_of(fn, repeats: int) -> float:
    return best_of_cpu(fn, repeats)[0]


def best_of_cpu(fn, repeats: int) -> tuple[float, float]:
    """(best wall-clock seconds, CPU seconds of all threads in the best run). On a shared
    machine the CPU seconds, not the wall clock, show what a run costs."""
    best = (math.inf, math.inf)
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return best


# ---- the previous implementation (numpy), the baseline ------------------------------------
def numpy_kernels(arch: ntklab.Architecture, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The symmetric kernels as ntklab computed them before the compiled pass: row blocks of
    ~1M entries from the diagonal on, each taken through the layers with whole-block numpy
    operations (a few passes over the block per layer), mirrored below the diagonal."""
    n, d = X.shape
    layers = arch.layers(d)
    rows = max(1, (1 << 20) // n)
    nngp, ntk = np.empty((n, n)), np.empty((n, n))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        Xb, Z = X[start:stop], X[start:]
        cov = (Xb @ Z.T) / d
        dx, dz = np.einsum("ij,ij->i", Xb, Xb) / d, np.einsum("ij,ij->i", Z, Z) / d
        theta = None
        for layer in layers:
            if isinstance(layer, Dense):
                g, v, b2 = layer.gain, layer.weight_var, layer.bias**2
                new_theta = cov * g
                new_theta += b2
                if theta is not None:
                    new_theta += (g * v) * theta
                cov *= g * v
                cov += b2
                theta = new_theta
                dx, dz = g * v * dx + b2, g * v * dz + b2
            else:
                cov, e_dphi = relu_moments(cov, dx, dz, same=True)
                e_dphi *= theta
                theta = e_dphi
                dx, dz = dx / 2.0, dz / 2.0
        for out, block in ((nngp, cov), (ntk, theta)):
            out[start:stop, start:] = block
            diag = out[start:stop, start:stop]
            diag += diag.T
            diag *= 0.5
            out[stop:, start:stop] = block[:, stop - start :].T
    return nngp, ntk


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


def neural_tangents_fn(arch: ntklab.Architecture):
    """neural-tangents' jitted kernel function for ``arch``'s depth and constants (its NTK
    parameterization: ntklab's ``jacot``), or None when it is not installed."""
    try:
        import jax
        from neural_tangents import stax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    layers = [stax.Dense(1, W_std=arch.sigma_w, b_std=arch.sigma_b)]
    for _ in range(arch.depth):
        layers += [stax.Relu(), stax.Dense(1, W_std=arch.sigma_w, b_std=arch.sigma_b)]
    kernel_fn = jax.jit(stax.serial(*layers)[2], static_argnames="get")

    def run(X):
        k = kernel_fn(X, None, get=("nngp", "ntk"))
        return np.asarray(k.nngp.block_until_ready()), np.asarray(k.ntk)

    return run


# ---- memory bandwidth ---------------------------------------------------------------------
def bandwidth(threads: int, repeats: int) -> tuple[float, float, float]:
    """(triad GB/s, fresh-output GB/s, copy GB/s) with ``threads`` threads.

    Triad ``a = b + s c`` on three preallocated 128 MB arrays counts 24 bytes per element
    (two reads, one write; the write-allocate read is not counted, as in STREAM). Fresh
    output: two new 4000 × 4000 float64 arrays allocated and written (what the kernel must
    at least do), 16 bytes per element pair. Copy: numpy's single-threaded ``copyto``."""
    from numba import njit, prange

    @njit(parallel=True, cache=False)
    def triad(a, b, c, s):
        for i in prange(a.shape[0]):
            a[i] = b[i] + s * c[i]

    @njit(parallel=True, cache=False)
    def fill2(a, b):
        for i in prange(a.shape[0]):
            for j in range(a.shape[1]):
                a[i, j] = 1.0
                b[i, j] = 2.0

    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    n = 1 << 24
    a, b, c = np.empty(n), np.ones(n), np.ones(n)
    triad(a, b, c, 3.0)
    t_triad = best_of(lambda: triad(a, b, c, 3.0), repeats)
    t_copy = best_of(lambda: np.copyto(a, b), repeats)
    m = 4000

    def fresh():
        fill2(np.empty((m, m)), np.empty((m, m)))

    fresh()
    t_fresh = best_of(fresh, repeats)
    return 24 * n / t_triad / 1e9, 16 * m * m / t_fresh / 1e9, 16 * n / t_copy / 1e9


def compile_times() -> tuple[float, float]:
    """First call of ``Architecture.kernels`` in a fresh interpreter: with an empty numba
    cache (JIT compile) and then with the cache that call wrote."""
    code = (
        "import time, numpy as np, ntklab; arch = ntklab.Architecture(2, 'paper'); "
        "X = np.random.default_rng(0).standard_normal((50, 15)); import numba; "
        "t = time.perf_counter(); arch.kernels(X); print(time.perf_counter() - t)"
    )
    out = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for _ in range(2):
            res = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            out.append(float(res.stdout.strip().splitlines()[-1]))
    return out[0], out[1]


def bench_kernels(sizes, depths, loop_n: int, threads: int, repeats: int) -> None:
    cold, warm = compile_times()
    print(
        f"# first call, fresh interpreter: {cold:.2f} s with an empty numba cache (JIT "
        f"compile), {warm:.2f} s from the cache (numba's thread pool start included)"
    )
    triad, fresh, copy = bandwidth(threads, repeats)
    print(
        f"# memory bandwidth, {threads} threads: triad {triad:.1f} GB/s; two fresh 4000x4000 "
        f"outputs written {fresh:.1f} GB/s; numpy copy (1 thread) {copy:.1f} GB/s"
    )
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
            f"max relative difference to ntklab's kernels {err:.1e}"
        )
    print(
        f"{'n':>6} {'depth':>5} {'seconds':>8} {'cpu s':>6} {'GB/s':>6} {'triad':>6} "
        f"{'numpy s':>8} {'cpu s':>6} {'vs numpy':>8} {'nt s':>7} {'vs nt':>6} {'max rel':>8} "
        f"{'peak MB':>8} {'out MB':>7} {'vs loop':>8}"
    )
    for n in sizes:
        X = unit_rows(n, 15, seed=1)
        for depth in depths:
            arch = ntklab.Architecture(depth, "paper")
            ours = arch.kernels(X)  # warm
            old = numpy_kernels(arch, X)
            diff = max(
                np.abs(a - b).max() / np.abs(b).max() for a, b in zip(ours, old, strict=True)
            )
            del ours, old
            t_new, cpu_new = best_of_cpu(lambda arch=arch, X=X: arch.kernels(X), repeats)
            t_old, cpu_old = best_of_cpu(lambda arch=arch, X=X: numpy_kernels(arch, X), repeats)
            nt = neural_tangents_fn(arch)
            t_nt = best_of(lambda nt=nt, X=X: nt(X), repeats) if nt is not None else math.nan
            tracemalloc.start()
            arch.kernels(X)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            moved = 2 * 8 * n * n  # the two outputs, written once (d = 15: no Gram matrix)
            ratio_loop = loop_per_pair.get(depth, math.nan) * n * n / t_new
            print(
                f"{n:>6} {depth:>5} {t_new:>8.3f} {cpu_new:>6.3f} {moved / t_new / 1e9:>6.1f} "
                f"{triad:>6.1f} {t_old:>8.3f} {cpu_old:>6.3f} {t_old / t_new:>7.2f}x "
                f"{t_nt:>7.3f} {t_nt / t_new:>5.2f}x "
                f"{diff:>8.1e} {peak / 2**20:>8.0f} {moved / 2**20:>7.0f} {ratio_loop:>7.0f}x"
            )
    if neural_tangents_fn(ntklab.Architecture(1, "paper")) is None:
        print("# neural-tangents is not installed: its column is nan")


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
    parser.add_argument("--threads", type=int, default=None, help="default: torch's count")
    parser.add_argument("--repeats", type=int, default=5, help="best of this many runs")
    parser.add_argument("--loop-n", type=int, default=200, help="size timed with the loop")
    parser.add_argument("--skip-empirical", action="store_true")
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--generic-points", type=int, default=10)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] + ([20000] if args.large else [])
    depths = [int(d) for d in args.depths.split(",")]
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)  # the kernels follow torch's count; BLAS gets the same
    with threadpool_limits(limits=threads, user_api="blas"):
        print(f"# {threads} threads (torch, numba, BLAS)")
        bench_kernels(sizes, depths, args.loop_n, threads, args.repeats)
        if not args.skip_empirical:
            bench_empirical(args.width, args.points, args.generic_points)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    peak_mb = peak / 2**20 if sys.platform == "darwin" else peak / 2**10
    print(f"peak resident memory of this process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
