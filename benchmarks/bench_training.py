"""Training throughput of ntklab.train / train_ensemble against this machine's matmul limit,
and of the hand-written fast paths against the torch.func definition they must beat.

Every table puts side by side, in one run: ``ntklab`` (what :func:`ntklab.train` /
:func:`ntklab.train_ensemble` run: the hand-written steps of
:mod:`ntklab.training.fused` for networks of dense layers and ReLUs), ``torch.func`` (the
same loop with the one functional definition, :class:`ntklab.training.sgd.FunctionalSGD`:
``functional_call`` + ``grad_and_value``, ``vmap`` over stacked members) and a plain PyTorch
loop (autograd + ``torch.optim.SGD``). A hand-written path is kept only where it is at least
1.5x the torch.func path at the shapes that matter (the seed's NN1 and NN2 at batch 8).

Two modes.

**Full batch** (default). For n = 800 points in d = 15, depth 1 and 2 and widths 256 ... 2048,
full-batch float32 gradient descent: prints epochs per second, the achieved GFLOP/s of the
dense layers (forward + backward matrix products), and the GFLOP/s of the very same matrix
products timed alone in this run, each in its faster memory layout (the physical limit here),
with their ratio, then epochs per second of the torch.func path and of the plain loop and
ntklab's speed-up over each. Then an ensemble of 8 networks trained stacked
(:func:`ntklab.train_ensemble` with ``stacked=True``), stacked by ``vmap`` of the torch.func
definition, and the same 8 trained one at a time (:func:`ntklab.train`).

FLOPs per epoch, per dense layer of shape (fan_in -> fan_out) on n rows: 2 n fan_in fan_out
for the forward product, as much for the weight gradient, and as much again for the input
gradient (not needed by the first layer). These are the useful products only: bias additions,
the bias column the trainer folds into the first product, the ReLU and the loss are not counted.

At depth 1 the products are thin and memory-bound (the script prints why after the table);
the ratio there compares training with the bare products of the same shapes, not with the
machine's peak for square products (the depth-2 rows show that).

**Mini-batch SGD at the seed's settings** (``--sgd``; SPEC §6): m = 469 points in d = 15,
batch 8 (59 steps an epoch, the last of 5 points), lr 0.002, `jacot` with σ_w = β = 1,
float32, at the seed's shapes NN1 (depth 1, width 10 000) and NN2 (depth 2, width 1024, and
the seed's 10 000). Prints milliseconds per SGD step, measured side by side in this run
(interleaved, best of ``--repeats``):

* ``ntklab``: :func:`ntklab.train` end to end (copying the network, recording epoch 0 and the
  last), divided by its steps; at NN2 width 10 000 only ``--big-steps`` steps of the trainer's
  own epoch loop (``FusedSGD.epoch``, and ``FunctionalSGD.epoch``);
* ``plain loop``: the same network (an ``nn.Sequential`` of ntklab's dense layers) trained by
  the textbook loop: ``torch.randperm`` each epoch, ``X[idx]`` each step, loss,
  ``zero_grad``, ``backward``, ``torch.optim.SGD.step``;
* ``torch.func``: :func:`ntklab.train`'s loop with the torch.func step
  (:class:`~ntklab.training.sgd.FunctionalSGD`) in place of the hand-written one;
* ``products``: the matrix products such a step cannot avoid, timed alone: per layer the
  forward product, the in-place gradient step on the weights, and (but for the first layer)
  the input gradient, outputs preallocated;

with the ratios func/ntklab (the hand-written path over the torch.func one; kept while
≥ 1.5), plain/ntklab (the speed-up over the plain loop; targets ≥ 1.3 for NN1 and
≥ 1.15 for NN2 at width 1024), plain/func and products/ntklab (the fraction of the floor reached), then
the time the networks of one seed trial (177 000 steps NN1, 354 000 NN2) would take at
these speeds. At batch 8 a step is bound by per-kernel overhead and memory traffic over the
weights, not by arithmetic: NN1 width 10 000 is ≈ 6 MFLOP a step, NN2 width 10 000 reads
its 400 MB hidden matrix three times and writes it once.

Usage: ``python benchmarks/bench_training.py [--seconds 1] [--repeats 3] [--threads N]
[--widths 256 512 1024 2048] [--device cuda]``, or ``... --sgd --threads 1 [--sgd-shapes 1
10000 2 1024 2 10000] [--big-steps 4]``. Each timing is repeated with more epochs until it
lasts ``--seconds``, and the best of ``--repeats`` such timings is kept (other processes on a
shared machine only ever slow a run down); with one CPU thread the clock is the process's CPU
time. Compare ratios measured in one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import copy
import functools
import math
import time
from collections.abc import Callable

import numpy as np
import torch

import ntklab
from ntklab.data import sphere
from ntklab.networks import resolve_device
from ntklab.training import engine, loop
from ntklab.training.fused import FusedSGD, StackedFusedSGD
from ntklab.training.sgd import FunctionalSGD


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


# ---- --sgd: the seed's mini-batch SGD (SPEC §6) -----------------------------------------------
SEED_M, SEED_BATCH, SEED_LR = 469, 8, 0.002  # 59 steps an epoch, the last of 5 points
SEED_STEPS = {1: 177_000, 2: 354_000}  # 3000 epochs (NN1), 6000 (NN2), x 59


def plain_sgd(net, X, y, *, lr: float, epochs: int, batch_size: int, seed: int) -> None:
    """The plain PyTorch loop: the same ``nn.Sequential`` network, ``torch.optim.SGD``, a new
    ``torch.randperm`` order every epoch and per-step indexing, autograd for the gradient."""
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    m = X.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(m, generator=gen).to(X.device)
        for b0 in range(0, m, batch_size):
            i = perm[b0 : b0 + batch_size]
            loss = (net(X[i]) - y[i]).square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def functional_train(
    net, Xt, yt, *, lr: float, epochs: int, batch_size, seed: int, device, fused: bool = False
) -> None:
    """:func:`ntklab.train`'s loop with the :mod:`torch.func` definition of the step
    (:class:`~ntklab.training.sgd.FunctionalSGD`), or with ``fused`` the hand-written one
    (:class:`~ntklab.training.fused.FusedSGD`, whatever :func:`ntklab.train` would pick):
    the same copy of the network, the same batch orders, recording only epoch 0 and the
    last."""
    net = copy.deepcopy(net)
    if fused:
        model = FusedSGD(engine.parameters(net), engine.dense_specs(net), lr, Xt, yt, None,
                         batch_size)  # fmt: skip
    else:
        model = FunctionalSGD(net, engine.parameters(net), [lr], Xt, yt, batch_size,
                              stacked=False)  # fmt: skip
    gens = [torch.Generator().manual_seed(seed)]
    loop.run(model, None, None, m=Xt.shape[0], dtype=Xt.dtype, epochs=epochs,
             batch_size=batch_size, gens=gens, record_every=max(1, epochs), check_every=50,
             divergence_factor=1e6, device=device)  # fmt: skip


def plain_gd(net, X, y, *, lr: float, epochs: int) -> None:
    """The plain PyTorch loop for full-batch gradient descent: autograd, torch.optim.SGD."""
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    for _ in range(epochs):
        loss = (net(X) - y).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def step_products(d: int, width: int, depth: int, batch: int, device, dtype, clock):
    """The matrix products of one SGD step on ``batch`` rows, timed alone: per layer the
    forward product ``z W^T`` and the gradient step ``W += a g^T z`` (in place: a step must
    read and write every weight once), and, but for the first layer, the input gradient
    ``g W``; outputs preallocated, on random data. Thin layers (the first and the output
    layer) get the faster of their two memory layouts; square ones (equally fast either
    way) are kept in one copy."""
    gen = torch.Generator().manual_seed(0)
    products = []
    for i, (fan_in, fan_out) in enumerate(layer_shapes(d, width, depth)):
        z = torch.randn(batch, fan_in, generator=gen, dtype=dtype).to(device)
        g = torch.randn(batch, fan_out, generator=gen, dtype=dtype).to(device)
        h, gz = torch.empty_like(g), torch.empty_like(z)
        layouts = [False] if fan_in == fan_out else [False, True]
        candidates = []
        for transposed in layouts:  # weights stored (fan_out, fan_in), or (fan_in, fan_out)
            shape = (fan_in, fan_out) if transposed else (fan_out, fan_in)
            w = torch.randn(*shape, generator=gen, dtype=dtype).to(device)
            w_nat = w.T if transposed else w  # (fan_out, fan_in), a view
            fns = [
                lambda z=z, w=w_nat, h=h: torch.mm(z, w.T, out=h),
                lambda z=z, w=w_nat, g=g: w.addmm_(g.T, z, alpha=-1e-9),
            ]
            if i:
                fns.append(lambda g=g, w=w_nat, gz=gz: torch.mm(g, w, out=gz))
            candidates.append(fns)
        times = [seconds_per_call(lambda c=c: [f() for f in c], 3, device, clock)
                 for c in candidates]  # fmt: skip
        products += candidates[int(np.argmin(times))]

    def step():
        for product in products:
            product()

    return step


def seconds_per_call(fn, calls: int, device, clock) -> float:
    fn()  # warm up
    sync(device)
    start = clock()
    for _ in range(calls):
        fn()
    sync(device)
    return (clock() - start) / calls


def bench_sgd(args, device, clock) -> None:
    """ms per SGD step at the seed's shapes: ntklab.train, the plain loop, the bare products."""
    dtype, d, m, bs, lr = torch.float32, args.d, SEED_M, args.sgd_batch, SEED_LR
    steps_per_epoch = math.ceil(m / bs)
    rng = np.random.default_rng(0)
    X = sphere(m, d, rng)
    y = rng.standard_normal(m)
    Xt = torch.as_tensor(X, dtype=dtype, device=device)
    yt = torch.as_tensor(y, dtype=dtype, device=device)
    print(f"\nmini-batch SGD at the seed's settings (SPEC §6): m = {m}, d = {d}, batch {bs} "
          f"({steps_per_epoch} steps an epoch), lr {lr}, jacot sigma_w = beta = 1, float32; "
          f"ms per step, best of {args.repeats}")  # fmt: skip
    head = ("net", "width", "ntklab", "fused", "torch.func", "plain loop", "products",
            "func/fused", "func/ntklab", "plain/ntklab", "plain/func", "products/ntklab")  # fmt: skip
    print(f"{head[0]:>5}{head[1]:>7}" + "".join(f"{h:>16}" for h in head[2:]))
    per_step = {}
    for depth, width in args.sgd_shapes:
        arch = ntklab.Architecture(depth, "jacot", sigma_w=1.0, sigma_b=1.0)
        net = arch.network(width, seed=0, in_features=d, dtype=dtype, device=device)
        big = width * width * (depth - 1) > 4_000_000  # time a handful of steps only
        if big:  # one short epoch through the trainers' own epoch, no recording
            n_steps = max(1, min(args.big_steps, m // bs))  # whole batches of the m points
            sub = slice(0, n_steps * bs)
            model = FusedSGD(engine.parameters(net), engine.dense_specs(net), lr, Xt[sub],
                             yt[sub], None, bs)  # fmt: skip
            fnet = copy.deepcopy(net)
            fmodel = FunctionalSGD(fnet, engine.parameters(fnet), [lr], Xt[sub], yt[sub], bs,
                                   stacked=False)  # fmt: skip
            perms = torch.randperm(n_steps * bs).to(device)[None]
            out = torch.empty(1, dtype=dtype, device=device)
            repeats = 2  # the first a warm-up, in effect

            def ours(model=model, perms=perms, out=out, n_steps=n_steps):
                model.epoch(perms, out)
                return n_steps

            def func(model=fmodel, perms=perms, out=out, n_steps=n_steps):
                model.epoch(perms, out)
                return n_steps

            fused = ours  # ntklab.train's path here

            def plain(net=net, sub=sub, n_steps=n_steps):
                plain_sgd(net, Xt[sub], yt[sub], lr=lr, epochs=1, batch_size=bs, seed=0)
                return n_steps
        else:
            repeats = args.repeats

            def ours(net=net, epochs=2):
                ntklab.train(net, X, y, lr=lr, epochs=epochs, batch_size=bs, record_every=epochs,
                             seed=1, device=device)  # fmt: skip
                return epochs * steps_per_epoch

            def func(net=net, epochs=2, fused=False):
                functional_train(net, Xt, yt, lr=lr, epochs=epochs, batch_size=bs, seed=1,
                                 device=device, fused=fused)  # fmt: skip
                return epochs * steps_per_epoch

            def plain(net=net, epochs=2):  # on a copy, as ntklab.train
                plain_sgd(copy.deepcopy(net), Xt, yt, lr=lr, epochs=epochs, batch_size=bs, seed=1)
                return epochs * steps_per_epoch

            sync(device)
            start = clock()
            ours()  # calibration: enough epochs for each timing to last about --seconds
            sync(device)
            epochs = max(2, round(args.seconds / (clock() - start) * 2))
            ours = functools.partial(ours, epochs=epochs)
            fused = functools.partial(func, epochs=epochs, fused=True)
            func = functools.partial(func, epochs=max(1, epochs // 4))  # several times slower
            plain = functools.partial(plain, epochs=epochs)

        floor = step_products(d, width, depth, bs, device, dtype, clock)
        best = {"ours": math.inf, "fused": math.inf, "func": math.inf, "plain": math.inf}
        t_floor = math.inf
        for _ in range(repeats):  # interleaved, so that all see the same machine
            for name, fn in (("ours", ours), ("fused", fused), ("func", func), ("plain", plain)):
                sync(device)
                start = clock()
                n = fn()
                sync(device)
                best[name] = min(best[name], (clock() - start) / n)
            t_ours, t_func, t_plain = best["ours"], best["func"], best["plain"]
            calls = args.big_steps if big else max(10, int(0.3 * args.seconds / max(t_ours, 1e-5)))
            t_floor = min(t_floor, seconds_per_call(floor, calls, device, clock))
        t_fused = best["fused"]
        print(f"{'NN' + str(depth):>5}{width:>7}{1e3 * t_ours:>16.3f}{1e3 * t_fused:>16.3f}"
              f"{1e3 * t_func:>16.3f}{1e3 * t_plain:>16.3f}{1e3 * t_floor:>16.3f}"
              f"{t_func / t_fused:>16.2f}{t_func / t_ours:>16.2f}{t_plain / t_ours:>16.2f}"
              f"{t_plain / t_func:>16.2f}{t_floor / t_ours:>16.2f}")  # fmt: skip
        per_step[(depth, width)] = t_ours
        del net, floor
    if any(width * width * (depth - 1) > 4_000_000 for depth, width in per_step):
        print(f"(width-10 000 NN2: {args.big_steps} steps through the trainer's epoch loop, "
              "of the plain loop and of the products, best of 2)")  # fmt: skip
    print("\nnetwork training of one trial at these speeds, on this device "
          "(SPEC §6: NN1 177 000 steps, NN2 354 000):")  # fmt: skip
    for (depth, width), t in per_step.items():
        steps = SEED_STEPS.get(depth)
        if steps:
            print(f"  NN{depth} width {width:>5}: {steps * t:>9.0f} s = {steps * t / 3600:6.2f} h")
    t1, t2 = per_step.get((1, 10_000)), per_step.get((2, 10_000))
    if t1 and t2:
        total = SEED_STEPS[1] * t1 + SEED_STEPS[2] * t2
        print(f"  one seed trial (NN1 + NN2 at width 10 000): {total / 3600:.1f} h")


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
    parser.add_argument(
        "--sgd", action="store_true",
        help="only the seed's mini-batch SGD: ms per step of ntklab.train, the plain loop, "
             "the bare products",
    )  # fmt: skip
    parser.add_argument(
        "--sgd-shapes", type=int, nargs="+", default=[1, 10000, 2, 1024, 2, 10000],
        help="pairs depth width for --sgd",
    )  # fmt: skip
    parser.add_argument("--sgd-batch", type=int, default=SEED_BATCH, help="batch size for --sgd")
    parser.add_argument(
        "--big-steps", type=int, default=4, help="steps timed for the width-10 000 NN2"
    )
    args = parser.parse_args(argv)
    if len(args.sgd_shapes) % 2:
        parser.error("--sgd-shapes takes pairs: depth width")
    args.sgd_shapes = list(zip(args.sgd_shapes[::2], args.sgd_shapes[1::2], strict=True))
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    dtype = torch.float32
    rng = np.random.default_rng(0)
    X = sphere(args.n, args.d, rng)
    y = np.sin(3.0 * X[:, 0])
    clock, clock_name = choose_clock(device)
    if args.sgd:
        print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU "
              f"threads; timed by {clock_name}")  # fmt: skip
        bench_sgd(args, device, clock)
        return
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
          f"n={args.n}, d={args.d}, float32, full batch; timed by {clock_name}, "
          f"best of {args.repeats}")  # fmt: skip

    def timed(fn) -> float:
        sync(device)
        start = clock()
        fn()
        sync(device)
        return clock() - start

    head = ("depth", "width", "epochs/s", "GFLOP/s", "matmul GFLOP/s", "ratio", "fused ep/s",
            "func ep/s", "plain ep/s", "fused/func", "ntklab/func", "ntklab/plain")  # fmt: skip
    print("".join(f"{h:>15}" for h in head))
    Xt = torch.as_tensor(X, dtype=dtype, device=device)
    yt = torch.as_tensor(y, dtype=dtype, device=device)
    for depth in args.depths:
        arch = ntklab.Architecture(depth, "paper")
        for width in args.widths:
            net = arch.network(width, seed=0, in_features=args.d, dtype=dtype, device=device)

            def run(epochs, net=net):
                kw = dict(lr=1e-3, epochs=epochs, record_every=epochs, device=device)
                return timed(lambda: ntklab.train(net, X, y, **kw))

            def func(epochs, net=net, fused=False):
                kw = dict(lr=1e-3, epochs=epochs, batch_size=None, seed=0, device=device)
                return timed(lambda: functional_train(net, Xt, yt, fused=fused, **kw))

            def plain(epochs, net=net):  # on a copy, as ntklab.train
                return timed(lambda: plain_gd(copy.deepcopy(net), Xt, yt, lr=1e-3, epochs=epochs))

            eps = limit = eps_func = eps_plain = eps_fused = 0.0
            for _ in range(args.repeats):  # interleaved, so that all see the same machine
                eps = max(eps, timed_epochs(run, args.seconds)[1])
                fused = functools.partial(func, fused=True)
                eps_fused = max(eps_fused, timed_epochs(fused, args.seconds)[1])
                eps_func = max(eps_func, timed_epochs(func, args.seconds)[1])
                eps_plain = max(eps_plain, timed_epochs(plain, args.seconds)[1])
                limit = max(limit, matmul_gflops(args.n, args.d, width, depth, device, dtype,
                                                 args.seconds, clock))  # fmt: skip
            achieved = eps * flops_per_epoch(args.n, args.d, width, depth) / 1e9
            print(f"{depth:>15d}{width:>15d}{eps:>15.1f}{achieved:>15.1f}{limit:>15.1f}"
                  f"{achieved / limit:>15.2f}{eps_fused:>15.1f}{eps_func:>15.1f}"
                  f"{eps_plain:>15.1f}{eps_fused / eps_func:>15.2f}{eps / eps_func:>15.2f}"
                  f"{eps / eps_plain:>15.2f}")  # fmt: skip

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
    print(f"\nensemble of {k} at width {width}, full batch and batch 8: network-epochs per "
          "second; stacked by the "
          "hand-written batched steps (train_ensemble(stacked=True)) and by vmap of the "
          "torch.func definition")  # fmt: skip
    head = ("depth", "batch", "one at a time", "stacked", "stacked fused", "stacked vmap",
            "stacked/one", "fused/vmap")  # fmt: skip
    print("".join(f"{h:>15}" for h in head))
    for depth in args.depths:
        arch = ntklab.Architecture(depth, "paper")
        for bs in (None, 8):
            kw = dict(lr=1e-3, batch_size=bs, device=device)

            def alone(epochs, arch=arch, kw=kw):
                def one_at_a_time():  # network construction timed too, as in train_ensemble
                    for s in range(k):
                        net = arch.network(width, seed=s, in_features=args.d, device=device)
                        ntklab.train(net, X, y, epochs=epochs, record_every=epochs, **kw)

                return timed(one_at_a_time)

            def together(epochs, arch=arch, kw=kw):
                return timed(
                    lambda: ntklab.train_ensemble(
                        arch, width, X, y, seeds=range(k), dtype=dtype, stacked=True,
                        epochs=epochs, record_every=epochs, **kw,
                    )
                )  # fmt: skip

            def vmapped(epochs, arch=arch, bs=bs, fused=False):
                def go():
                    nets = [arch.network(width, seed=s, in_features=args.d, device="cpu")
                            for s in range(k)]  # fmt: skip
                    params = {n: p.to(device) for n, p in engine.stack_parameters(nets).items()}
                    if fused:  # the hand-written stacked steps, whatever train_ensemble picks
                        specs = engine.dense_specs(nets[0])
                        model = StackedFusedSGD(params, specs, [1e-3] * k, Xt, yt, bs)
                    else:
                        model = loop.stacked_sgd(nets[0], params, [1e-3] * k, Xt, yt, bs,
                                                 fast=False)  # fmt: skip
                    gens = [torch.Generator().manual_seed(s) for s in range(k)]
                    loop.run(model, None, None, m=Xt.shape[0], dtype=dtype, epochs=epochs,
                             batch_size=bs, gens=gens, record_every=epochs, check_every=50,
                             divergence_factor=1e6, device=device)  # fmt: skip

                return timed(go)

            a = max(timed_epochs(alone, args.seconds)[1] for _ in range(args.repeats))
            t = max(timed_epochs(together, args.seconds)[1] for _ in range(args.repeats))
            v = max(timed_epochs(vmapped, args.seconds)[1] for _ in range(args.repeats))
            fused = functools.partial(vmapped, fused=True)
            f = max(timed_epochs(fused, args.seconds)[1] for _ in range(args.repeats))
            print(f"{depth:>15d}{str(bs or 'full'):>15}{k * a:>15.1f}{k * t:>15.1f}"
                  f"{k * f:>15.1f}{k * v:>15.1f}{t / a:>15.2f}{f / v:>15.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
