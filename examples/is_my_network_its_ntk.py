"""Is my network its NTK? A user-defined CNN on scikit-learn's digits, tracked in its own loop.

Trains a small convolutional network (plain PyTorch layers and PyTorch's default
initialization) on 8x8 digit images (``sklearn.datasets.load_digits``, shipped with
scikit-learn) and follows it with :func:`ntklab.track`:

1. squared loss on one-hot targets, full-batch gradient descent, at a narrow and a wide
   width (channels): the network, its linearization trained in lockstep, and the NTK's
   closed form (:func:`ntklab.gradient_descent_mse` with the empirical NTK at
   initialization);
2. cross-entropy with Adam on mini-batches, the narrow network: no closed form, but the
   linearization is trained with the same optimizer on the same batches.

The learning rate of gradient descent is set from the empirical NTK, ``lr = c * m K /
lambda_max`` (stable for c < 2 with the mean squared loss over the m K outputs), so that both
widths train at the same speed in the kernel regime. Prints, at a few steps: the test
accuracy of the network, the linear model and the closed form, the relative gap
``|f - f_lin| / |f_lin - f_0|`` on the test inputs and the kernel drift. Run
``python examples/is_my_network_its_ntk.py -h`` for options (about a minute on one core).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

import ntklab


class SmallCNN(nn.Module):
    """conv 3x3 -> ReLU -> avg-pool -> conv 3x3 -> ReLU -> avg-pool -> dense, 10 outputs."""

    def __init__(self, channels: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        )  # fmt: skip
        self.head = nn.Linear(channels * 4, 10)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def digits(n_train: int, n_test: int, seed: int):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    X = torch.as_tensor(X[order] / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    X = (X - X[:n_train].mean()) / X[:n_train].std()
    y = torch.as_tensor(y[order])
    tr, te = slice(0, n_train), slice(n_train, n_train + n_test)
    return X[tr], y[tr], X[te], y[te]


def squared_loss_run(channels, data, steps, c, seed):
    X, y, Xt, yt = data
    torch.manual_seed(seed)
    net = SmallCNN(channels)
    Y, Yt = (nn.functional.one_hot(t, 10).float() for t in (y, yt))
    k = min(50, len(y))  # lambda_max of the full block on k points, grown to m (~ linear in m)
    lam = np.linalg.eigvalsh(ntklab.empirical_ntk(net, X[:k], output="full").reshape(10 * k, -1))
    lr = c * Y.numel() / (lam[-1] * len(y) / k)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    loss_fn = nn.MSELoss()
    record = [s for s in (1, 10, 30, 100, 300, 1000) if s < steps]
    with ntklab.track(net, X, Y, Xt, Yt, optimizer=opt, loss_fn=loss_fn, record=record) as tr:
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(net(X), Y).backward()
            opt.step()
            tr.step(X, Y)
    df = tr.dataframe()
    for name in ("network", "linearized", "ntk"):
        acc = [float((f.argmax(1) == yt.numpy()).mean()) for f in tr.outputs[name]]
        df[f"acc_{name}"] = acc
    return df, lr, tr


def cross_entropy_run(channels, data, steps, batch, seed):
    X, y, Xt, yt = data
    torch.manual_seed(seed)
    net = SmallCNN(channels)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    record = [s for s in (1, 10, 30, 100, 300, 1000) if s < steps]
    with ntklab.track(net, X, y, Xt, yt, optimizer=opt, loss_fn=loss_fn, record=record) as tr:
        for _ in range(steps):
            idx = torch.randint(len(y), (batch,), generator=gen)
            opt.zero_grad()
            loss_fn(net(X[idx]), y[idx]).backward()
            opt.step()
            tr.step(X[idx], y[idx])
    return tr.dataframe(), tr


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-train", type=int, default=100)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--widths", type=int, nargs=2, default=[4, 128], help="channels: narrow wide")
    ap.add_argument("--steps", type=int, default=300, help="gradient-descent steps")
    ap.add_argument("--c", type=float, default=0.5, help="lr = c m K / lambda_max")
    ap.add_argument("--ce-steps", type=int, default=300, help="Adam steps (cross-entropy)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--figure", default=None, help="save the wide network's figure here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = digits(args.n_train, args.n_test, args.seed)
    cols = ["step", "acc_network", "acc_linearized", "acc_ntk", "relative_gap", "kernel_drift"]
    for channels in args.widths:
        t0 = time.perf_counter()
        df, lr, tr = squared_loss_run(channels, data, args.steps, args.c, args.seed)
        n_params = sum(p.numel() for p in tr.model.parameters())
        print(f"\nsquared loss, full-batch GD, {channels} channels ({n_params} parameters), "
              f"lr {lr:.3g}, {time.perf_counter() - t0:.1f} s")  # fmt: skip
        print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if args.figure and channels == args.widths[-1]:
            tr.figure().savefig(args.figure, dpi=120)
    t0 = time.perf_counter()
    df, tr = cross_entropy_run(args.widths[0], data, args.ce_steps, args.batch, args.seed)
    print(f"\ncross-entropy, Adam lr 0.01, batch {args.batch}, {args.widths[0]} channels, "
          f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
    cols = ["step", "test_accuracy_network", "test_accuracy_linearized", "relative_gap",
            "kernel_drift"]  # fmt: skip
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
