"""Benchmark: each activation's NNGP + NTK time beside ReLU's (a script, not a test).

Times ``Architecture(depth, "jacot", activation=...).kernels(X)`` (NNGP and NTK in one pass,
float64, the symmetric kernel of X with itself) for n unit-norm points in R^15 (the seed's
data shape), with T threads (default: torch's count; ``--threads``). ReLU is the compiled
pass (:func:`ntklab.kernels.relu_network_kernels`); every other activation the numpy block
recursion (:func:`ntklab.activation_kernels.activation_network_kernels`). Each time is the
best of ``--repeats`` runs (the machine may be shared), and the ratios come from the same
run; beside the wall clock, the CPU seconds of all threads in the best run, which a shared
machine inflates less. Also prints, for each quadrature activation at the variances its
layers see here, its error estimate
(:meth:`ntklab.activations.QuadratureActivation.error_estimate`) and its difference from the
rule of twice the degree (:meth:`~ntklab.activations.QuadratureActivation.quadrature_error`).

Usage::

    python benchmarks/bench_activations.py                      # n = 4000, depth 2
    python benchmarks/bench_activations.py --n 2000 --depth 3 --degree 64
    python benchmarks/bench_activations.py --varied-norms   # rows of norm 0.5-1.5: each row its
                                                           # own variance (the general series)
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from bench_kernels import (
    best_of_cpu as best_of,  # the same timing rule (run from benchmarks/ or by path)
)

import ntklab
from ntklab.activations import QUADRATURE

SPECS = ("relu", "erf", "leaky_relu", "abrelu(-0.5, 1)", "gelu", "tanh", "softplus", "silu")


def layer_variances(arch, d: int) -> np.ndarray:
    """Sigma^l(x, x), l = 1..L, of a unit-norm input (the same for every row here)."""
    layers = arch.layers(d)
    dense = [layer.kernel_coefficients for layer in layers[::2]]
    s, out = np.array([dense[0][0] / d + dense[0][2]]), []
    for layer, (gv, _, b2) in zip(layers[1::2], dense[1:], strict=True):
        out.append(s[0])
        s = gv * layer.second_moments(s)[0] + b2
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--parameterization", default="jacot")
    parser.add_argument("--degree", type=int, default=None, help="quadrature degree [32]")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--varied-norms", action="store_true", help="row norms in [0.5, 1.5]")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    X = np.random.default_rng(0).standard_normal((args.n, 15))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    if args.varied_norms:
        X *= np.random.default_rng(1).uniform(0.5, 1.5, (args.n, 1))
    print(
        f"n = {args.n}, d = 15, {'norms 0.5-1.5' if args.varied_norms else 'unit norms'}, "
        f"depth {args.depth}, {args.parameterization}, NNGP + NTK, "
        f"{torch.get_num_threads()} threads, best of {args.repeats}"
    )
    head = f"{'activation':<18} {'method':<22} {'seconds':>8} {'x ReLU':>7} {'CPU s':>7} "
    print(head + f"{'x ReLU':>7}  quadrature: variances, error estimate, vs 2q")
    relu = None
    for spec in SPECS:
        quad = spec in QUADRATURE
        arch = ntklab.Architecture(
            args.depth, args.parameterization, activation=spec,
            quadrature_degree=args.degree if quad else None,
        )  # fmt: skip
        arch.kernels(X[:64])  # compile (ReLU) / warm up
        seconds, cpu = best_of(lambda arch=arch: arch.kernels(X), args.repeats)
        relu = (seconds, cpu) if relu is None else relu
        method = "compiled (numba)" if spec == "relu" else "closed form (numpy)"
        check = ""
        if quad:
            layer = arch.layers(15)[1]
            method = f"quadrature q={layer.degree}"
            var = layer_variances(arch, 15)  # of a unit-norm row
            check = f"{', '.join(f'{v:.3g}' for v in var)}; {layer.error_estimate(var):.1e}; "
            check += f"{layer.quadrature_error(variances=var):.1e}"
        print(
            f"{arch.activation:<18} {method:<22} {seconds:>8.3f} {seconds / relu[0]:>7.1f} "
            f"{cpu:>7.3f} {cpu / relu[1]:>7.1f}  {check}"
        )


if __name__ == "__main__":
    main()
