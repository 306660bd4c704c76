r"""The training loop: epochs, mini-batch orders, recording, divergence checks (SPEC §3).

The loss of a network :math:`f` on :math:`m` training points is

.. math:: \ell(\theta) = \frac1m \sum_{i=1}^m (f(x_i; \theta) - y_i)^2,

minimized by plain (stochastic) gradient descent, :math:`\theta \leftarrow \theta - \eta
\nabla_\theta \ell`. With full batches, one step of the linearized network is exactly
:math:`f \leftarrow f - \tfrac{2\eta}{m}\Theta (f - y)`, so a network trained for :math:`T`
steps is compared with :func:`ntklab.predict.gradient_descent_mse` at the same :math:`T`
(Lee et al. 2019).

* :func:`train` trains one network: a network of :meth:`Architecture.network` by the
  hand-written steps of :class:`~ntklab.training.fused.FusedSGD` where
  :func:`~ntklab.training.fused.fused_specs` selects them (where they are at least 1.5x
  faster: 10.9x at the seed's NN1 with batch 8, see ``benchmarks/bench_training.py
  --sgd``), any other module, and networks with two or more hidden layers taking large
  steps on wide layers (full batch on 800 points from width 512 up), by the
  :mod:`torch.func` definition
  (:class:`~ntklab.training.sgd.FunctionalSGD`); the two are equal up to float round-off
  (tested to 1e-12 in float64);
* :func:`train_ensemble` trains networks of several seeds (and, optionally, learning rates
  and data sets): stacked (``vmap`` over the members, so a GPU stays busy; the default on
  CUDA, or with ``stacked=True``) or one at a time by :func:`train`'s path (the default on a
  CPU, where the benchmark finds it fastest);
* :func:`auto_lr` picks a stable learning rate :math:`\eta = c\, m / \lambda_{\max}(\Theta)`
  from the analytic NTK.

Divergence (a non-finite loss, or one above ``divergence_factor`` × the initial loss) stops
that network and marks it ``diverged``; it never raises. The loss is checked on the device
every ``check_every`` epochs, so training does not synchronize with the host every step:
between checks nothing is read back from the device (the mini-batch orders, drawn on the
CPU so that a seed gives the same order on every device, are sent ``check_every`` epochs at
a time), and on a GPU the steps queue without waiting.

References
----------
Lee, J. et al. (2019). Wide neural networks of any depth evolve as linear models under
gradient descent. NeurIPS 32.
Jacot, A., Gabriel, F. and Hongler, C. (2018). Neural tangent kernel. NeurIPS 31.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .._validation import check_int
from ..metrics import rmse
from ..networks import resolve_device
from .arguments import (
    auto_lr,
    auto_lr_of,
    check_common,
    check_lrs,
    default_record_every,
)
from .ensemble import train_ensemble
from .epochs import Curves, functional_one, run, stacked_sgd
from .fused import fused_sgd
from .results import CenteredNetwork, TrainResult, steps_per_epoch

__all__ = [
    "Curves",
    "auto_lr",
    "default_record_every",
    "run",
    "stacked_sgd",
    "train",
    "train_ensemble",
]


def train(
    net: nn.Module,
    X,
    y,
    *,
    lr,
    epochs: int,
    batch_size: int | None = None,
    seed: int = 0,
    record_every: int | None = None,
    X_test=None,
    y_test=None,
    centered: bool = False,
    device=None,
    check_every: int = 50,
    divergence_factor: float = 1e6,
) -> TrainResult:
    r"""Train a copy of ``net`` by gradient descent on :math:`\frac1m\sum_i (f(x_i) - y_i)^2`.

    ``net`` itself is not modified: a copy is moved to ``device`` and trained by plain SGD
    (no momentum, no weight decay) in the network's dtype: each step is
    :math:`\theta \leftarrow \theta - \eta \nabla_\theta \frac1B \sum_{i \in \text{batch}}
    (f(x_i) - y_i)^2` with :math:`B` the batch's size (the last batch of an epoch may be
    smaller). Networks from :meth:`Architecture.network` take hand-written fused steps
    where they are faster (:func:`~ntklab.training.fused.fused_specs`: equal to autograd +
    ``torch.optim.SGD`` up to float round-off, several times faster at small batches); any
    other module, and networks with two or more hidden layers taking large steps on wide
    layers, is trained by the :mod:`torch.func` definition of the same step
    (``torch.func.grad_and_value`` of the loss, then ``torch.optim.SGD``'s update
    :math:`\theta \leftarrow \theta - \eta g`).

    Parameters
    ----------
    net : torch.nn.Module
        Usually ``arch.network(width, seed=..., in_features=d)``; maps (n, d) to (n,).
    X : array_like (m, d)
    y : array_like (m,)
    lr : float or "auto"
        Learning rate :math:`\eta`; ``"auto"``: :func:`auto_lr` of ``net.architecture.ntk(X)``.
    epochs : int
        Passes over the data (>= 0). With ``batch_size=None`` one epoch is one step.
    batch_size : int, optional
        Mini-batch size for SGD (a new permutation every epoch, drawn from ``seed``);
        ``None`` (default) is full-batch gradient descent.
    seed : int, default 0
        Seed of the mini-batch order (the network's own seed fixed its initialization).
    record_every : int, optional
        Record the curves every this many epochs (default :func:`default_record_every`,
        ``max(1, epochs // 10)``); epoch 0 and the last epoch are always recorded.
    X_test, y_test : array_like, optional
        Test data for ``test_rmse`` and ``test_predictions`` curves.
    centered : bool, default False
        Train and predict :math:`f(x) - f_0(x)` with :math:`f_0` a frozen copy of the
        initial network, which removes the random initial function.
    device : str or torch.device, optional
        ``None``: CUDA when available, else CPU (:func:`ntklab.networks.resolve_device`).
    check_every : int, default 50
        Epochs between divergence checks (each check synchronizes with the device once).
    divergence_factor : float, default 1e6
        A loss above this factor times the initial loss counts as divergence.

    Returns
    -------
    TrainResult

    Examples
    --------
    >>> import numpy as np, ntklab
    >>> arch = ntklab.Architecture(1, "paper")
    >>> X = np.eye(4)[:, :3]; X[3] = [0.6, 0.8, 0.0]; y = np.array([1.0, -1.0, 0.5, 0.0])
    >>> net = arch.network(256, seed=0, in_features=3, device="cpu")
    >>> res = ntklab.train(net, X, y, lr="auto", epochs=200, device="cpu")
    >>> bool(res.train_loss[-1] < res.train_loss[0])
    True
    """
    if not isinstance(net, nn.Module):
        raise ValueError(
            f"net must be a torch.nn.Module (e.g. arch.network(...)); got {type(net).__name__}"
        )
    in_features = getattr(net, "in_features", None)
    X, y, X_test, y_test, epochs, batch_size, record_every, check_every, divergence_factor = check_common(
        X, y, X_test, y_test, in_features=in_features, epochs=epochs, batch_size=batch_size,
        record_every=record_every, check_every=check_every, divergence_factor=divergence_factor,
    )  # fmt: skip
    seed = check_int(seed, "seed", minimum=0)

    def auto():
        arch = getattr(net, "architecture", None)
        if arch is None:
            raise ValueError(
                "lr='auto' needs a network with an .architecture (from Architecture.network)"
            )
        return auto_lr_of(arch, X, getattr(net, "width", None))

    (lr,) = check_lrs(lr, 1, auto)
    dev = resolve_device(device)
    model_net = copy.deepcopy(net).to(dev)
    initial = copy.deepcopy(model_net)
    for p in initial.parameters():
        p.requires_grad_(False)
    dtype = next(model_net.parameters()).dtype
    Xt = torch.as_tensor(X, dtype=dtype, device=dev)
    yt = torch.as_tensor(y, dtype=dtype, device=dev)
    Xtt = None if X_test is None else torch.as_tensor(X_test, dtype=dtype, device=dev)
    f0_train = f0_test = None
    if centered:
        with torch.no_grad():
            f0_train = initial(Xt)
            f0_test = None if Xtt is None else initial(Xtt)
    model = fused_sgd(model_net, lr, Xt, yt, f0_train, batch_size)
    if model is None:
        model = functional_one(model_net, lr, Xt, yt, f0_train, batch_size)
    curves = run(
        model, Xtt, f0_test, m=Xt.shape[0], dtype=dtype, epochs=epochs, batch_size=batch_size,
        gens=[torch.Generator().manual_seed(seed)], record_every=record_every,
        check_every=check_every, divergence_factor=divergence_factor, device=dev,
    )  # fmt: skip
    del model
    network = CenteredNetwork(model_net, copy.deepcopy(initial)) if centered else model_net
    preds = None if curves.test_predictions[0] is None else curves.test_predictions[0]
    return TrainResult(
        network=network,
        initial_network=initial,
        epochs=curves.epochs[0],
        train_loss=curves.train_loss[0],
        test_rmse=None if preds is None else rmse(preds, y_test),
        test_predictions=preds,
        wall_time=curves.wall_time,
        diverged=curves.diverged_epoch[0] is not None,
        diverged_epoch=curves.diverged_epoch[0],
        lr=lr,
        centered=bool(centered),
        steps_per_epoch=steps_per_epoch(X.shape[0], batch_size),
        batch_size=batch_size,
    )
