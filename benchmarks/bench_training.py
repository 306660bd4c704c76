"""Training throughput of ntklab.train / train_ensemble against this machine's matmul limit.

For n = 800 points in d = 15 (the seed's training set), depth 1 and 2 and widths 256 ... 2048,
full-batch float32 gradient descent: prints epochs per second, the achieved GFLOP/s of the
dense layers (forward + backward matrix products), and the GFLOP/s of the very same matrix
products timed alone in this run, each in its faster memory layout (the physical limit here),
with their ratio. Then an ensemble of 8 networks trained together
(:func:`ntklab.train_ensemble` with ``group_size=8``) against the same 8 trained one at a time
(:func:`ntklab.train`).

FLOPs per epoch, per dense layer of shape (fan_in -> fan_out) on n rows: 2 n fan_in fan_out
for the forward product, as much for the weight gradient, and as much again for the input
gradient (not needed by the first layer). These are the useful products only: bias additions,
the bias column the trainer folds into the first product, the ReLU and the loss are not counted.

At depth 1 the products are thin and memory-bound (the script prints why after the table);
the ratio there compares training with the bare products of the same shapes, not with the
machine's peak for square products (the depth-2 rows show that).

Usage: ``python benchmarks/bench_training.py [--seconds 1] [--repeats 3] [--threads N]
[--widths 256 512 1024 2048] [--device cuda]``. Each timing is repeated with more epochs until
it lasts ``--seconds``, and the best of ``--repeats`` such timings is kept (other processes on a
shared machine only ever slow a run down).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

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


def choose_clock(device: torch.device) -> tuple[Callable[[], float], str]:
    """CPU time of this process for one CPU thread (robust to other processes on a shared
    machine, which only take turns on the cores), else wall time."""
    if device.type == "cpu" and torch.get_num_threads() == 1:
        return time.process_time, "process CPU time"
    return time.perf_counter, "wall time"


def best_layout(
    a: torch.Tensor, b: torch.Tensor, device, clock: Callable[[], float]
) -> Callable[[], torch.Tensor]:
    """The faster of ``a @ b`` and ``(b.T @ a.T).T`` (the same product, other memory layout).

    BLAS libraries are much faster on some layouts of thin products than on others (e.g.
    (width, n) @ (n, 15) runs at a quarter of the speed of (15, n) @ (n, width) here), so the
    limit is taken as the better of the two.
    """
    candidates = [lambda: a @ b, lambda: (b.T @ a.T).T]
    times = []
    for f in candidates:
        f()
        sync(device)
        best = math.inf
        for _ in range(3):
            start = clock()
            for _ in range(5):
                f()
            sync(device)
            best = min(best, clock() - start)
        times.append(best)
    return candidates[int(np.argmin(times))]


def matmul_gflops(
    n: int, d: int, width: int, depth: int, device, dtype, min_seconds: float, clock
) -> float:
    """GFLOP/s of exactly the matrix products of one training epoch, timed alone.

    Each product gets its faster memory layout (:func:`best_layout`); the products are
    forward ``z W^T``, weight gradient ``g^T z`` and input gradient ``g W`` (not for the
    first layer), on random data of the training shapes.
    """
    gen = torch.Generator().manual_seed(0)
    products = []
    for i, (fan_in, fan_out) in enumerate(layer_shapes(d, width, depth)):
        z = torch.randn(n, fan_in, generator=gen, dtype=dtype).to(device)
        w = torch.randn(fan_out, fan_in, generator=gen, dtype=dtype).to(device)
        g = torch.randn(n, fan_out, generator=gen, dtype=dtype).to(device)
        products += [best_layout(z, w.T, device, clock), best_layout(g.T, z, device, clock)]
        if i:
            products.append(best_layout(g, w, device, clock))

    def epoch():
        for product in products:
            product()

    epoch()
    sync(device)
    repeats, seconds = 1, 0.0
    while True:  # repeat until the timing is long enough to trust
        start = clock()
        for _ in range(repeats):
            epoch()
        sync(device)
        seconds = clock() - start
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
    parser.add_argument(
        "--repeats", type=int, default=3, help="best of this many timings (shared machines)"
    )
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
    clock, clock_name = choose_clock(device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
          f"n={args.n}, d={args.d}, float32, full batch; timed by {clock_name}, "
          f"best of {args.repeats}")  # fmt: skip

    def timed(fn) -> float:
        sync(device)
        start = clock()
        fn()
        sync(device)
        return clock() - start

    head = ("depth", "width", "epochs/s", "GFLOP/s", "matmul GFLOP/s", "ratio")
    print("".join(f"{h:>15}" for h in head))
    for depth in args.depths:
        arch = ntklab.Architecture(depth, "paper")
        for width in args.widths:
            net = arch.network(width, seed=0, in_features=args.d, dtype=dtype, device=device)

            def run(epochs, net=net):
                kw = dict(lr=1e-3, epochs=epochs, record_every=epochs, device=device)
                return timed(lambda: ntklab.train(net, X, y, **kw))

            eps = limit = 0.0
            for _ in range(args.repeats):  # interleaved, so that both see the same machine
                eps = max(eps, timed_epochs(run, args.seconds)[1])
                limit = max(limit, matmul_gflops(args.n, args.d, width, depth, device, dtype,
                                                 args.seconds, clock))  # fmt: skip
            achieved = eps * flops_per_epoch(args.n, args.d, width, depth) / 1e9
            print(f"{depth:>15d}{width:>15d}{eps:>15.1f}{achieved:>15.1f}{limit:>15.1f}"
                  f"{achieved / limit:>15.2f}")  # fmt: skip

    if 1 in args.depths:
        per_entry = flops_per_epoch(args.n, args.d, 1, 1) / args.n
        print(
            f"\nDepth 1 is memory-bound: its products are thin (inner size d = {args.d}, or output\n"
            f"size 1), so an epoch does only {per_entry:.0f} FLOPs per entry of the (n, width) hidden\n"
            "activations. The bare products are then limited by the memory traffic over those\n"
            "activations, not by arithmetic (hence their lower GFLOP/s than at depth 2), and so is\n"
            "training, which also applies the ReLU and its derivative (two more passes). The trainer\n"
            "never forms the output layer's (n, width) input gradient (it is rank one), which the\n"
            "count and the bare products include; this is what lets it come close to the products."
        )

    k, width = args.ensemble, args.ensemble_width
    print(f"\nensemble of {k} at width {width}: network-epochs per second")
    print("".join(f"{h:>15}" for h in ("depth", "one at a time", "together", "speed-up")))
    for depth in args.depths:
        arch = ntklab.Architecture(depth, "paper")

        def alone(epochs, arch=arch):
            kw = dict(lr=1e-3, epochs=epochs, record_every=epochs, device=device)

            def one_at_a_time():  # network construction timed too, as in train_ensemble
                for s in range(k):
                    net = arch.network(width, seed=s, in_features=args.d, device=device)
                    ntklab.train(net, X, y, **kw)

            return timed(one_at_a_time)

        def together(epochs, arch=arch):
            kw = dict(lr=1e-3, epochs=epochs, record_every=epochs, device=device)
            return timed(
                lambda: ntklab.train_ensemble(
                    arch, width, X, y, seeds=range(k), dtype=dtype, group_size=k, **kw
                )
            )

        a = max(timed_epochs(alone, args.seconds)[1] for _ in range(args.repeats))
        t = max(timed_epochs(together, args.seconds)[1] for _ in range(args.repeats))
        print(f"{depth:>15d}{k * a:>15.1f}{k * t:>15.1f}{t / a:>15.2f}")


if __name__ == "__main__":
    main()
