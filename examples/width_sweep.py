"""Wide networks approach their NTK at the same training time (Lee et al. 2019).

Trains 1-hidden-layer ``paper`` networks (SPEC §1) on data from the seed's experiment
(points on the unit sphere, targets drawn from the NTKB1 Gaussian process, SPEC §4) at widths
256 ... 8192, and prints per width, averaged over the networks of several seeds:

* ``nn_rmse``: test RMSE of the trained network;
* ``ntk_T_rmse``: test RMSE of the NTK prediction at the same training time T with the same f0;
* ``ntk_inf_rmse``: test RMSE of the NTK prediction at T = infinity (same f0);
* ``nn_ntk_rel``: RMS(f_NN - f_lin) / RMS(f_lin) on the test points;
* ``drift``: the kernel drift ||Theta_T - Theta_0||_F / ||Theta_0||_F of the empirical NTK.

Both discrepancies shrink roughly like width^(-1/2). Run ``python examples/width_sweep.py -h``
for options; the defaults take about a minute on two CPU cores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import ntklab
from ntklab.data import gp_sample, sphere


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-train", type=int, default=100, help="training points (default 100)")
    parser.add_argument("--n-test", type=int, default=100, help="test points (default 100)")
    parser.add_argument("--d", type=int, default=15, help="input dimension (default 15)")
    parser.add_argument("--depth", type=int, default=1, help="hidden layers (default 1)")
    parser.add_argument(
        "--parameterization", default="paper", choices=sorted(ntklab.PARAMETERIZATIONS)
    )
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096, 8192])
    parser.add_argument("--seeds", type=int, default=2, help="networks per width (default 2)")
    parser.add_argument("--epochs", type=int, default=300, help="full-batch GD steps (default 300)")
    parser.add_argument("--c", type=float, default=0.5, help="lr = c * m / lambda_max(NTK)")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:N (default: CUDA if present)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(args.data_seed)
    arch = ntklab.Architecture(args.depth, args.parameterization)
    X = sphere(args.n_train + args.n_test, args.d, rng)
    y, _ = gp_sample(ntklab.Architecture(1, "paper").ntk(X), rng)
    Xtr, ytr, Xte, yte = X[: args.n_train], y[: args.n_train], X[args.n_train :], y[args.n_train :]
    lr = ntklab.auto_lr(arch.ntk(Xtr), c=args.c)
    kr = ntklab.KernelRegressor(arch.ntk).fit(Xtr, ytr).predict(Xte)
    print(
        f"{arch.name} ({args.parameterization}, depth {args.depth}); m={args.n_train}, "
        f"n_test={args.n_test}, d={args.d}; {args.epochs} epochs of full-batch GD at lr={lr:.4g}; "
        f"{args.seeds} networks per width"
    )
    print(
        f"kernel regression with the NTK (no f0), test RMSE {np.sqrt(np.mean((kr - yte) ** 2)):.4f}"
    )
    header = ("width", "nn_rmse", "ntk_T_rmse", "ntk_inf_rmse", "nn_ntk_rel", "drift", "seconds")
    print("".join(f"{h:>13}" for h in header))
    keys = ("rmse", "ntk_same_t_rmse", "ntk_inf_rmse", "nn_lin_rel", "kernel_drift")
    for width in args.widths:
        start = time.perf_counter()
        results = ntklab.train_ensemble(
            arch, width, Xtr, ytr, seeds=range(args.seeds), lr=lr, epochs=args.epochs,
            device=args.device,
        )  # fmt: skip
        metrics = [ntklab.equivalence_metrics(r, arch, Xtr, ytr, Xte, yte).metrics for r in results]
        means = [np.nanmean([m[k] for m in metrics]) for k in keys]
        row = [f"{width:>13d}"] + [f"{v:>13.4f}" for v in means]
        row.append(f"{time.perf_counter() - start:>13.1f}")
        print("".join(row) + ("  (some diverged)" if any(r.diverged for r in results) else ""))


if __name__ == "__main__":
    main()
