"""Benchmark: each activation's NNGP + NTK time beside ReLU's (a script, not a test).

Times ``Architecture(depth, "jacot", activation=...).kernels(X)`` (NNGP and NTK in one pass,
float64, the symmetric kernel of X with itself) for n unit-norm points in R^15 (the seed's
data shape), with T threads (default: torch's count; ``--threads``). ReLU is the compiled
pass (:func:`ntklab.kernels.relu_network_kernels`); every other activation the numpy block
recursion (:func:`ntklab.activation_kernels.activation_network_kernels`). Each time is the
best of ``--repeats`` runs (the machine may be shared), and the ratios come from the same
run. Also prints each quadrature activation's error check at its degree
(:meth:`ntklab.activations.QuadratureActivation.quadrature_error`, variances 0.25, 1, 4) and
its truncation bound at the variances of this benchmark's layers.

Usage::

    python benchmarks/bench_activations.py                      # n = 4000, depth 2
    python benchmarks/bench_activations.py --n 2000 --depth 3 --degree 64
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

import ntklab
from ntklab.activations import QUADRATURE

SPECS = ("relu", "erf", "leaky_relu", "abrelu(-0.5, 1)", "gelu", "tanh", "softplus", "silu")


def best_of(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--parameterization", default="jacot")
    parser.add_argument("--degree", type=int, default=None, help="quadrature degree [32]")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    X = np.random.default_rng(0).standard_normal((args.n, 15))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    print(
        f"n = {args.n}, d = 15, depth {args.depth}, {args.parameterization}, NNGP + NTK, "
        f"{torch.get_num_threads()} threads, best of {args.repeats}"
    )
    print(f"{'activation':<18} {'method':<22} {'seconds':>8} {'x ReLU':>7}  quadrature check")
    relu = None
    for spec in SPECS:
        quad = spec in QUADRATURE
        arch = ntklab.Architecture(
            args.depth, args.parameterization, activation=spec,
            quadrature_degree=args.degree if quad else None,
        )  # fmt: skip
        arch.kernels(X[:64])  # compile (ReLU) / warm up
        seconds = best_of(lambda arch=arch: arch.kernels(X), args.repeats)
        relu = seconds if relu is None else relu
        method = "compiled (numba)" if spec == "relu" else "closed form (numpy)"
        check = ""
        if quad:
            layer = arch.layers(15)[1]
            method = f"quadrature q={layer.degree}"
            check = f"vs 2q: {layer.quadrature_error():.1e}"
        print(f"{arch.activation:<18} {method:<22} {seconds:>8.3f} {seconds / relu:>7.1f}  {check}")


if __name__ == "__main__":
    main()
