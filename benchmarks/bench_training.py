"""Training throughput of ntklab.train / train_ensemble against this machine's matmul limit.

For n = 800 points in d = 15 (the seed's training set), depth 1 and 2 and widths 256 ... 2048,
full-batch float32 gradient descent: prints epochs per second, the achieved GFLOP/s of the
dense layers (forward + backward matrix products), and the GFLOP/s of the very same matrix
products timed alone in this run (the physical limit here), with their ratio. Then an
ensemble of 8 networks trained together (:func:`ntklab.train_ensemble` with ``group_size=8``)
against the same 8 trained one at a time (:func:`ntklab.train`).

FLOPs per epoch, per dense layer of shape (fan_in -> fan_out) on n rows: 2 n fan_in fan_out
for the forward product, as much for the weight gradient, and as much again for the input
gradient (not needed by the first layer).

Usage: ``python benchmarks/bench_training.py [--seconds 1] [--threads N] [--widths 256 512 1024 2048]
[--device cuda]``. Each timing is repeated with more epochs until it lasts ``--seconds``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import ntklab
from ntklab.data import sphere
from ntklab.networks import resolve_device


def layer_shapes(d: int, width: int, depth: int) -> list[tuple[int, int]]:
    return [(d, width)] + [(width, width)] * (depth - 1) + [(width, 1)]


def flops_per_epoch(n: int, d: int, width: int, depth: int) -> float:
    total = 0.0
    for i, (fan_in, fan_out) in enumerate(layer_shapes(d, width, depth)):
        total += (4.0 if i == 0 else 6.0) * n * fan_in * fan_out
    return total


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(
    n: int, d: int, width: int, depth: int, device, dtype, min_seconds: float
) -> float:
    """GFLOP/s of exactly the matrix products of one training epoch, timed alone."""
    gen = torch.Generator().manual_seed(0)
    mats = []
    for i, (fan_in, fan_out) in enumerate(layer_shapes(d, width, depth)):
        z = torch.randn(n, fan_in, generator=gen, dtype=dtype).to(device)
        w = torch.randn(fan_out, fan_in, generator=gen, dtype=dtype).to(device)
        g = torch.randn(n, fan_out, generator=gen, dtype=dtype).to(device)
        mats.append((i, z, w, g))

    def epoch():
        for i, z, w, g in mats:
            z @ w.T  # forward
            g.T @ z  # weight gradient
            if i:
                g @ w  # input gradient

    epoch()
    sync(device)
    repeats, seconds = 1, 0.0
    while True:  # repeat until the timing is long enough to trust
        start = time.perf_counter()
        for _ in range(repeats):
            epoch()
        sync(device)
        seconds = time.perf_counter() - start
        if seconds >= min_seconds:
            break
        repeats *= 4
    return flops_per_epoch(n, d, width, depth) * repeats / seconds / 1e9


def timed_epochs(run, min_seconds: float) -> tuple[int, float]:
    """Epochs per second of ``run(epochs)`` (returns wall time), with enough epochs to trust."""
    epochs = 2
    while True:
        seconds = run(epochs)
        if seconds >= min_seconds or epochs >= 100_000:
            return epochs, epochs / seconds
        epochs = int(epochs * min(16.0, max(2.0, 1.2 * min_seconds / max(seconds, 1e-6))))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=800)
    parser.add_argument("--d", type=int, default=15)
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum timed seconds per run")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--ensemble", type=int, default=8, help="networks in the ensemble")
    parser.add_argument("--ensemble-width", type=int, default=512)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    dtype = torch.float32
    rng = np.random.default_rng(0)
    X = sphere(args.n, args.d, rng)
    y = np.sin(3.0 * X[:, 0])
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
          f"n={args.n}, d={args.d}, float32, full batch")  # fmt: skip
    head = ("depth", "width", "epochs/s", "GFLOP/s", "matmul GFLOP/s", "ratio")
    print("".join(f"{h:>15}" for h in head))
    for depth in args.depths:
        arch = ntklab.Architecture(depth, "paper")
        for width in args.widths:
            net = arch.network(width, seed=0, in_features=args.d, dtype=dtype, device=device)

            def run(epochs, net=net):
                kw = dict(lr=1e-3, epochs=epochs, record_every=epochs, device=device)
                return ntklab.train(net, X, y, **kw).wall_time

            _, eps = timed_epochs(run, args.seconds)
            achieved = eps * flops_per_epoch(args.n, args.d, width, depth) / 1e9
            limit = matmul_gflops(args.n, args.d, width, depth, device, dtype, args.seconds)
            print(f"{depth:>15d}{width:>15d}{eps:>15.1f}{achieved:>15.1f}{limit:>15.1f}"
                  f"{achieved / limit:>15.2f}")  # fmt: skip

    k, width = args.ensemble, args.ensemble_width
    print(f"\nensemble of {k} at width {width}: network-epochs per second")
    print("".join(f"{h:>15}" for h in ("depth", "one at a time", "together", "speed-up")))
    for depth in args.depths:
        arch = ntklab.Architecture(depth, "paper")

        def alone(epochs, arch=arch):
            kw = dict(lr=1e-3, epochs=epochs, record_every=epochs, device=device)
            nets = [
                arch.network(width, seed=s, in_features=args.d, device=device) for s in range(k)
            ]
            return sum(ntklab.train(net, X, y, **kw).wall_time for net in nets)

        def together(epochs, arch=arch):
            kw = dict(lr=1e-3, epochs=epochs, record_every=epochs, device=device)
            res = ntklab.train_ensemble(
                arch, width, X, y, seeds=range(k), dtype=dtype, group_size=k, **kw
            )
            return sum(r.wall_time for r in res)

        _, a = timed_epochs(alone, args.seconds)
        _, t = timed_epochs(together, args.seconds)
        print(f"{depth:>15d}{k * a:>15.1f}{k * t:>15.1f}{t / a:>15.2f}")


if __name__ == "__main__":
    main()
