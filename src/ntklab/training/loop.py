r"""The training loop: epochs, mini-batch orders, recording, divergence checks (SPEC §3).

The loss of a network :math:`f` on :math:`m` training points is

.. math:: \ell(\theta) = \frac1m \sum_{i=1}^m (f(x_i; \theta) - y_i)^2,

minimized by plain (stochastic) gradient descent, :math:`\theta \leftarrow \theta - \eta
\nabla_\theta \ell`. With full batches, one step of the linearized network is exactly
:math:`f \leftarrow f - \tfrac{2\eta}{m}\Theta (f - y)`, so a network trained for :math:`T`
steps is compared with :func:`ntklab.predict.gradient_descent_mse` at the same :math:`T`
(Lee et al. 2019).

* :func:`train` trains one network: a network of :meth:`Architecture.network` by the
  hand-written steps of :class:`~ntklab.training.fused.FusedSGD` (several times faster at the
  seed's batch size 8, see ``benchmarks/bench_training.py --sgd``), any other module by the
  :mod:`torch.func` definition (:class:`~ntklab.training.sgd.FunctionalSGD`); the two are
  equal up to float round-off (tested to 1e-12 in float64);
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
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._validation import check_float, check_int, check_lr, check_matrix, check_vector
from ..metrics import rmse
from ..networks import resolve_device
from . import engine
from .fused import StackedFusedSGD, fused_sgd, fused_specs
from .results import CenteredNetwork, TrainResult, lazy_scaled, steps_per_epoch
from .sgd import FunctionalSGD

__all__ = [
    "Curves",
    "auto_lr",
    "auto_lr_unchecked",
    "default_record_every",
    "run",
    "stacked_sgd",
    "train",
    "train_ensemble",
    "train_ensemble_unchecked",
]


# ---- learning rate ---------------------------------------------------------------------------
def auto_lr(ntk_train, *, c: float = 0.5) -> float:
    r"""A stable learning rate :math:`\eta = c\, m / \lambda_{\max}(\Theta)`.

    Full-batch gradient descent on :math:`\frac1m\sum_i (f(x_i) - y_i)^2` is stable for the
    linearized network while :math:`\eta < m / \lambda_{\max}(\Theta)` (SPEC §3); the
    default :math:`c = 0.5` is half of that limit, which leaves room for the finite-width
    kernel to exceed the analytic one, and makes the slowest-converging mode's factor per
    step :math:`1 - 2c\,\lambda_{\min}/\lambda_{\max}`.

    Parameters
    ----------
    ntk_train : array_like (m, m)
        The analytic NTK on the training inputs, e.g. ``arch.ntk(X_train)``.
    c : float, default 0.5
        Fraction of the stability limit, ``0 < c < 1`` for a stable linearized model.

    Returns
    -------
    float
    """
    K = check_matrix(ntk_train, "ntk_train")
    if K.shape[0] != K.shape[1]:
        raise ValueError(f"ntk_train must be a square (m, m) kernel matrix; got shape {K.shape}")
    c = check_float(c, "c", strict=True)
    return auto_lr_unchecked(K, c=c)


def auto_lr_unchecked(ntk_train: np.ndarray, *, c: float = 0.5) -> float:
    """:func:`auto_lr` of a kernel matrix that is already valid; checks nothing.

    For callers inside ntklab that made the kernel themselves (a trial of a study,
    :func:`train_ensemble` on its checked data): ``ntk_train`` a finite float64 (m, m)
    matrix, ``c > 0``. A kernel with no positive eigenvalue still raises ``ValueError``
    (a property of the computed spectrum, not an input check).
    """
    K = ntk_train
    m = K.shape[0]
    lam_max = float(np.linalg.eigvalsh(0.5 * (K + K.T))[-1])
    if not lam_max > 0:
        raise ValueError(
            f"ntk_train has no positive eigenvalue (largest {lam_max:.3g}); is it a kernel?"
        )
    return c * m / lam_max


def default_record_every(epochs: int) -> int:
    """Epochs between recorded curve points when none is given: ``max(1, epochs // 10)``
    (eleven points or so per curve; the one default of :func:`train` and of a study's
    network methods)."""
    return max(1, int(epochs) // 10)


@dataclass
class Curves:
    epochs: list[np.ndarray]
    train_loss: list[np.ndarray]
    test_predictions: list[np.ndarray | None]
    diverged_epoch: list[int | None]
    wall_time: float


def _record_epochs(epochs: int, record_every: int) -> np.ndarray:
    return np.union1d(np.arange(0, epochs + 1, record_every), [epochs]).astype(np.int64)


def _permutations(gens, m: int, n_epochs: int, device: torch.device) -> torch.Tensor:
    """Mini-batch orders of ``n_epochs`` epochs, (n_epochs, k, m), one ``torch.randperm`` per
    epoch and generator (CPU generators: the same order on every device), sent to ``device``
    in one copy (from pinned memory without blocking on a GPU)."""
    perms = torch.stack(
        [torch.stack([torch.randperm(m, generator=g) for g in gens]) for _ in range(n_epochs)]
    )
    if device.type == "cuda":
        perms = perms.pin_memory()
    return perms.to(device, non_blocking=True)


def run(model, X_test, f0_test, *, m, dtype, epochs, batch_size, gens, record_every, check_every,
         divergence_factor, device, on_record=None) -> Curves:  # fmt: skip
    """The loop shared by :func:`train` (k = 1) and :func:`train_ensemble`.

    ``buf[e]`` holds each member's loss at epoch ``e`` (full batch: the loss of the forward
    pass of step ``e + 1``, i.e. of the parameters after ``e`` steps; mini-batch: the mean
    batch loss of epoch ``e``, weighted by batch size); it is checked for divergence every
    ``check_every`` epochs, the only time the loop waits for the device. The mini-batch
    orders are drawn ``check_every`` epochs at a time.

    ``on_record(epoch)``, if given, is called at every recorded epoch with the parameters
    after ``epoch`` steps (before the step of that epoch; the last one after training),
    until training stops (one member only: :func:`_train_group` passes it for k = 1).
    """
    k = model.k
    full = batch_size is None or batch_size >= m
    rec = _record_epochs(epochs, record_every)
    rec_pos = {int(e): i for i, e in enumerate(rec)}
    buf = torch.full((epochs + 1, k), float("nan"), dtype=dtype, device=device)
    rec_loss = torch.full((len(rec), k), float("nan"), dtype=dtype, device=device)
    rec_test = None
    if X_test is not None:
        rec_test = torch.full(
            (len(rec), k, X_test.shape[-2]), float("nan"), dtype=dtype, device=device
        )
    diverged: list[int | None] = [None] * k
    stopped = np.zeros(k, dtype=bool)
    threshold = None
    checked = 0

    def check(upto: int) -> bool:
        """Check buf[checked:upto] for divergence; return True when every member stopped."""
        nonlocal checked, threshold
        window = buf[checked:upto].cpu().numpy()
        if threshold is None:
            threshold = divergence_factor * np.maximum(window[0], np.finfo(np.float32).tiny)
        bad = ~np.isfinite(window) | (window > threshold)
        for j in np.flatnonzero(bad.any(axis=0) & ~stopped):
            diverged[j] = checked + int(np.argmax(bad[:, j]))
            stopped[j] = True
            model.stop(j)
        checked = upto
        return bool(stopped.all())

    start = time.perf_counter()
    perms, first = None, 0  # a block of mini-batch orders, from epoch `first` on
    for epoch in range(epochs):
        pos = rec_pos.get(epoch)
        if pos is not None:
            if rec_test is not None:
                rec_test[pos] = model.outputs(X_test, f0_test)
            if not full:
                rec_loss[pos] = model.full_loss()
            if on_record is not None:
                on_record(epoch)
        if full:
            model.epoch(None, buf[epoch])
        else:
            if perms is None or epoch - first >= perms.shape[0]:
                n = min(check_every - epoch % check_every, epochs - epoch)
                perms, first = _permutations(gens, m, n, device), epoch
            model.epoch(perms[epoch - first], buf[epoch])
        if (epoch + 1) % check_every == 0 and check(epoch + 1):
            break
    else:
        buf[epochs] = model.full_loss()
        pos = rec_pos[epochs]
        rec_loss[pos] = buf[epochs]
        if rec_test is not None:
            rec_test[pos] = model.outputs(X_test, f0_test)
        check(epochs + 1)
        if on_record is not None and not stopped.all():
            on_record(epochs)
    model.finish()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start

    buf_np = buf.cpu().numpy().astype(np.float64)
    rec_loss_np = rec_loss.cpu().numpy().astype(np.float64)
    if full:
        rec_loss_np = buf_np[rec]
    test_np = None if rec_test is None else rec_test.cpu().numpy().astype(np.float64)
    out = Curves([], [], [], diverged, wall)
    for j in range(k):
        dep = diverged[j]
        keep = rec if dep is None else rec[rec < dep]
        loss = rec_loss_np[: len(keep), j]
        preds = None if test_np is None else test_np[: len(keep), j]
        if dep is not None:
            keep = np.append(keep, dep)
            loss = np.append(loss, buf_np[dep, j])
            if preds is not None:
                preds = np.vstack([preds, np.full((1, preds.shape[1]), np.nan)])
        out.epochs.append(keep)
        out.train_loss.append(loss)
        out.test_predictions.append(preds)
    return out


def stacked_sgd(net: nn.Module, params, lrs, X, target, batch_size, *, fast: bool = True):
    """The SGD model of ``len(lrs)`` members stacked in ``params`` (k, ...), of the
    architecture of ``net``: :class:`~ntklab.training.fused.StackedFusedSGD` when
    :func:`~ntklab.training.fused.fused_specs` selects it (and ``fast``), else the
    :mod:`torch.func` definition, :class:`FunctionalSGD` under ``vmap``."""
    specs = fused_specs(net) if fast else None
    if specs is not None:
        return StackedFusedSGD(params, specs, lrs, X, target, batch_size)
    return FunctionalSGD(net, params, lrs, X, target, batch_size, stacked=True)


def _functional_one(net: nn.Module, lr: float, X, y, f0, batch_size) -> FunctionalSGD:
    """:class:`FunctionalSGD` for one network: its trainable parameters (views of its
    storage, trained in place); frozen parameters and buffers are passed as they are."""
    trainable, frozen = {}, {}
    for name, p in net.named_parameters():
        (trainable if p.requires_grad else frozen)[name] = p.detach()
    frozen.update(dict(net.named_buffers()))
    target = y if f0 is None else y + f0
    return FunctionalSGD(net, trainable, [lr], X, target, batch_size, stacked=False,
                         frozen=frozen)  # fmt: skip


# ---- validation ------------------------------------------------------------------------------
def _check_lr(lr, n: int, auto) -> list[float]:
    """``lr``: a number > 0, ``"auto"`` (then ``auto()``, the rate) or one number per member;
    returns a list of floats."""
    if isinstance(lr, (Sequence, np.ndarray)) and not isinstance(lr, str):
        if len(lr) != n:
            raise ValueError(f"lr has {len(lr)} entries but there are {n} seeds (one lr per seed)")
        return [check_lr(v, auto=False) for v in lr]
    lr = check_lr(lr)
    return [auto() if lr == "auto" else lr] * n


def _auto_lr_of(arch, X: np.ndarray, width: int | None = None) -> float:
    """:func:`auto_lr` of ``arch``'s analytic NTK on the checked ``X`` (nothing rechecked);
    ``width``: the networks' width, for ``standard``'s width-dependent NTK."""
    return auto_lr_unchecked(arch.at_width(width).kernels_unchecked(X)[1])


def _check_common(X, y, X_test, y_test, *, in_features, epochs, batch_size, record_every, check_every,
                  divergence_factor):  # fmt: skip
    X = check_matrix(X, "X", n_features=in_features)
    y = check_vector(y, "y", length=X.shape[0])
    if (X_test is None) != (y_test is None):
        raise ValueError("X_test and y_test must be given together (or neither)")
    if X_test is not None:
        X_test = check_matrix(X_test, "X_test", n_features=X.shape[1])
        y_test = check_vector(y_test, "y_test", length=X_test.shape[0])
    epochs = check_int(epochs, "epochs", minimum=0)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size")
        if batch_size >= X.shape[0]:
            batch_size = None  # one batch per epoch is full-batch gradient descent
    if record_every is None:
        record_every = default_record_every(epochs)
    record_every = check_int(record_every, "record_every")
    check_every = check_int(check_every, "check_every")
    divergence_factor = check_float(divergence_factor, "divergence_factor", minimum=1.0)
    return X, y, X_test, y_test, epochs, batch_size, record_every, check_every, divergence_factor


# ---- public API ------------------------------------------------------------------------------
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
    (equal to autograd + ``torch.optim.SGD`` up to float round-off, several times faster at
    small batches); any other module is trained by autograd and ``torch.optim.SGD``.

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
    X, y, X_test, y_test, epochs, batch_size, record_every, check_every, divergence_factor = _check_common(
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
        return _auto_lr_of(arch, X, getattr(net, "width", None))

    (lr,) = _check_lr(lr, 1, auto)
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
        model = _functional_one(model_net, lr, Xt, yt, f0_train, batch_size)
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


def train_ensemble(
    arch,
    width: int,
    X,
    y,
    *,
    seeds,
    lr,
    epochs: int,
    batch_size: int | None = None,
    record_every: int | None = None,
    X_test=None,
    y_test=None,
    centered: bool = False,
    dtype: torch.dtype = torch.float32,
    device=None,
    check_every: int = 50,
    divergence_factor: float = 1e6,
    group_size: int | None = None,
    stacked: bool | None = None,
    lazy_scale: float | None = None,
    on_record=None,
) -> list[TrainResult]:
    r"""Train ``arch.network(width, seed=s)`` for every ``s`` in ``seeds``, all at once.

    The members' weights are stacked along a leading axis and each layer is one batched
    matrix product, so ``k`` networks cost about as much as one wide one. Member ``s`` is
    trained exactly as ``train(arch.network(width, seed=s, ...), X, y, seed=s, ...)`` would
    train it (same initialization, same mini-batch order, same update; equal up to float
    round-off). A member that diverges is stopped; the others are unaffected.

    Each member may have its own data (e.g. one trial each): ``X`` of shape (k, m, d) and
    ``y`` (k, m) with k = ``len(seeds)`` (and ``X_test`` (k, n, d), ``y_test`` (k, n)); member
    ``j`` is then trained as ``train(..., X[j], y[j], ...)`` would train it, all k in one
    stacked run (on a GPU; on a CPU with ``stacked=True``).

    Parameters
    ----------
    arch : Architecture
    width : int
    X, y : array_like (m, d), (m,); or (k, m, d), (k, m): one data set per seed
    seeds : sequence of int
        One network per seed (its initialization and its mini-batch order).
    lr : float, "auto" or sequence of float
        One rate for all members, :func:`auto_lr` of ``arch.ntk(X)`` (of each member's own
        ``X[j]`` when they differ), or one rate per seed.
    epochs, batch_size, record_every, X_test, y_test, centered, device, check_every, divergence_factor
        As in :func:`train` (``X_test``, ``y_test`` with a leading member axis when ``X``
        has one).
    dtype : torch.dtype, default torch.float32
    group_size : int, optional
        Members stacked per batched run (default: all of them when stacked, else 1).
    stacked : bool, optional
        Train the members stacked (weights on a leading member axis, one batched pass for
        all; a group of one member is then trained alone unless ``stacked=True``).
        Default: on CUDA (several members), or when ``group_size`` > 1; on a CPU one at a
        time by :func:`train`'s path, which reproduces :func:`train` bit for bit and is the
        faster there (stacked: 0.9× the speed of separate runs at full batch, 0.4-0.5× at
        batch 8, see ``benchmarks/bench_training.py``). ``True`` forces stacking on a CPU.
    lazy_scale : float, optional
        Chizat, Oyallon & Bach (2019)'s scale α > 0: train the model
        :math:`f_lpha = lpha (f(w) - f(w_0))` on the loss
        :math:`rac{1}{lpha^2 m}\sum_i (f_lpha(x_i) - y_i)^2` (large α: lazy, small α:
        rich). ``None`` (default): the plain (or ``centered``) network. See
        :func:`ntklab.training.results.lazy_scaled` for how it is trained.
    on_record : callable, optional
        ``on_record(member, epoch, network)`` at every recorded epoch of each member
        (``member`` its index in ``seeds``; ``network`` the plain network :math:`f` with its
        parameters after ``epoch`` steps); not with ``stacked`` training.

    Returns
    -------
    list of TrainResult
        In the order of ``seeds``; ``network`` is an ordinary
        :class:`~ntklab.FullyConnectedNetwork` (wrapped in :class:`CenteredNetwork` when
        ``centered``). ``wall_time`` is the batched run's time divided by its number of members.
    """
    if isinstance(seeds, (int, np.integer)) or not isinstance(seeds, (Sequence, np.ndarray)):
        raise ValueError(f"seeds must be a sequence of integers >= 0, e.g. range(8); got {seeds!r}")
    seeds = [check_int(s, "seeds", minimum=0) for s in seeds]
    if not seeds:
        raise ValueError("seeds must contain at least one seed")
    width = check_int(width, "width")
    k = len(seeds)
    per_member = np.ndim(X) == 3  # one data set per seed
    if per_member:
        if len(X) != k or np.ndim(y) != 2 or len(y) != k:
            raise ValueError(
                f"X of shape (k, m, d) needs k = len(seeds) = {k} data sets and y of shape "
                f"(k, m); got X {np.shape(X)}, y {np.shape(y)}"
            )
        if X_test is not None and (np.ndim(X_test) != 3 or len(X_test) != k):
            raise ValueError(f"X_test must be (k, n, d) like X; got shape {np.shape(X_test)}")
        if y_test is not None and (np.ndim(y_test) != 2 or len(y_test) != k):
            raise ValueError(f"y_test must be (k, n) like y; got shape {np.shape(y_test)}")
        d = np.shape(X)[-1]  # each X[j] is validated below
        sets = [
            _check_common(
                X[j],
                y[j],
                None if X_test is None else X_test[j],
                None if y_test is None else y_test[j],
                in_features=d,
                epochs=epochs,
                batch_size=batch_size,
                record_every=record_every,
                check_every=check_every,
                divergence_factor=divergence_factor,
            )
            for j in range(k)
        ]
        if len({s[0].shape for s in sets}) > 1:
            raise ValueError("every member's X must have the same shape (m, d)")
        if X_test is not None and len({s[2].shape for s in sets}) > 1:
            raise ValueError("every member's X_test must have the same shape (n, d)")
        epochs, batch_size, record_every, check_every, divergence_factor = sets[0][4:]
        X, y = np.stack([s[0] for s in sets]), np.stack([s[1] for s in sets])
        if X_test is not None:
            X_test, y_test = np.stack([s[2] for s in sets]), np.stack([s[3] for s in sets])
        if isinstance(lr, str) and lr == "auto":
            lrs = [_auto_lr_of(arch, Xj, width) for Xj in X]
        else:
            lrs = _check_lr(lr, k, None)
    else:
        X, y, X_test, y_test, epochs, batch_size, record_every, check_every, divergence_factor = _check_common(
            X, y, X_test, y_test, in_features=None, epochs=epochs, batch_size=batch_size,
            record_every=record_every, check_every=check_every, divergence_factor=divergence_factor,
        )  # fmt: skip
        lrs = _check_lr(lr, k, lambda: _auto_lr_of(arch, X, width))
    dev = resolve_device(device)
    if group_size is not None:
        group_size = check_int(group_size, "group_size")
    if stacked is not None and not isinstance(stacked, (bool, np.bool_)):
        raise ValueError(f"stacked must be True, False or None; got {stacked!r}")
    if stacked is not None and not stacked and group_size is not None and group_size > 1:
        raise ValueError(
            f"group_size={group_size} stacks networks, but stacked=False; drop one of them"
        )
    if lazy_scale is not None:
        lazy_scale = check_float(lazy_scale, "lazy_scale", strict=True)
    if on_record is not None and (stacked or (group_size or 1) > 1):
        raise ValueError("on_record needs networks trained one at a time (stacked=False)")
    return train_ensemble_unchecked(
        arch, width, X, y, seeds=seeds, lrs=lrs, epochs=epochs, batch_size=batch_size,
        record_every=record_every, X_test=X_test, y_test=y_test, centered=centered,
        dtype=dtype, device=dev, check_every=check_every, divergence_factor=divergence_factor,
        group_size=group_size, stacked=stacked, lazy_scale=lazy_scale, on_record=on_record,
    )  # fmt: skip


def train_ensemble_unchecked(
    arch,
    width: int,
    X: np.ndarray,
    y: np.ndarray,
    *,
    seeds: Sequence[int],
    lrs: Sequence[float],
    epochs: int,
    batch_size: int | None = None,
    record_every: int | None = None,
    X_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    centered: bool = False,
    dtype: torch.dtype = torch.float32,
    device=None,
    check_every: int = 50,
    divergence_factor: float = 1e6,
    group_size: int | None = None,
    stacked: bool | None = None,
    lazy_scale: float | None = None,
    on_record=None,
) -> list[TrainResult]:
    """:func:`train_ensemble` of arguments that are already valid; checks nothing.

    For callers inside ntklab that made or checked the data themselves (a trial of a
    study): ``X`` (m, d) and ``y`` (m,), or (k, m, d) and (k, m) with one data set per seed,
    finite float64 (``X_test``, ``y_test`` likewise, or both ``None``); ``seeds`` k integers
    >= 0; ``lrs`` one float > 0 per seed (no ``"auto"``: see :func:`auto_lr_unchecked`);
    ``epochs`` >= 0, ``check_every`` >= 1, ``divergence_factor`` >= 1 and ``width`` >= 1
    integers / floats; ``group_size`` ``None`` or >= 1, consistent with ``stacked``;
    ``lazy_scale`` ``None`` or > 0; ``on_record`` only with networks trained one at a time.

    It resolves the defaults as :func:`train_ensemble` does: ``record_every=None`` is
    :func:`default_record_every`, a ``batch_size`` of at least m is full-batch gradient
    descent (``None``), ``device=None`` is :func:`ntklab.networks.resolve_device`'s default,
    and ``stacked``/``group_size`` default as documented there. Returns what
    :func:`train_ensemble` returns.
    """
    seeds, lrs = list(seeds), [float(v) for v in lrs]
    k = len(seeds)
    per_member = np.ndim(X) == 3  # one data set per seed
    m = np.shape(X)[-2]
    if batch_size is not None and batch_size >= m:
        batch_size = None  # one batch per epoch is full-batch gradient descent
    if record_every is None:
        record_every = default_record_every(epochs)
    dev = resolve_device(device)
    force = stacked is True  # stack even groups of one member
    if stacked is None:  # the fastest path measured (benchmarks/bench_training.py)
        stacked = (dev.type == "cuda" and k > 1) or (group_size is not None and group_size > 1)
        stacked = stacked and on_record is None  # the hook reads one network at a time
    if lazy_scale is not None:  # f_alpha = alpha (f - f0): centered, on the targets y / alpha
        centered = True
        y = np.asarray(y) / lazy_scale
    if group_size is None:
        group_size = k if stacked else 1
    Xt = torch.as_tensor(X, dtype=dtype, device=dev)
    yt = torch.as_tensor(y, dtype=dtype, device=dev)
    Xtt = None if X_test is None else torch.as_tensor(X_test, dtype=dtype, device=dev)
    opts = dict(epochs=epochs, batch_size=batch_size, record_every=record_every,
                check_every=check_every, divergence_factor=divergence_factor, device=dev)  # fmt: skip
    results = []
    for g in range(0, k, group_size):
        sl = slice(g, g + group_size)
        stack = bool(stacked) and (force or len(seeds[sl]) > 1)
        hook = None
        if on_record is not None:
            hook = (lambda g0: lambda epoch, net: on_record(g0, epoch, net))(g)
        results += _train_group(
            arch, width, seeds[sl], lrs[sl], Xt[sl] if per_member else Xt,
            yt[sl] if per_member else yt,
            None if Xtt is None else (Xtt[sl] if per_member else Xtt),
            None if y_test is None else (y_test[sl] if per_member else y_test),
            centered=centered, dtype=dtype, stacked=stack, on_record=hook, **opts,
        )  # fmt: skip
    if lazy_scale is not None:
        targets = [y_test[j] if per_member and y_test is not None else y_test for j in range(k)]
        results = [lazy_scaled(r, lazy_scale, t) for r, t in zip(results, targets, strict=True)]
    return results


def _train_group(arch, width, seeds, lrs, Xt, yt, Xtt, y_test, *, centered, dtype, stacked,
                 on_record=None, **opts):  # fmt: skip
    """Train the networks of ``seeds``: stacked together (:func:`stacked_sgd`), or the first
    (and only) one alone by :func:`train`'s path. ``Xt``, ``yt``, ``Xtt`` and
    ``y_test`` have a leading member axis when the members' data differ."""
    dev, m, d = opts["device"], Xt.shape[-2], Xt.shape[-1]
    per_member = Xt.dim() == 3
    # the individual networks wait on the CPU while their stacked copy trains on the device
    nets = [arch.network(width, seed=s, in_features=d, dtype=dtype, device="cpu") for s in seeds]
    initials = [copy.deepcopy(n).to(dev) for n in nets]
    for net in initials:
        for p in net.parameters():
            p.requires_grad_(False)
    f0_train = f0_test = None
    params = None
    if not stacked:  # one network, trained in place as train would
        nets = [nets[0].to(dev)]
        if per_member:
            Xt, yt = Xt[0], yt[0]
            Xtt = None if Xtt is None else Xtt[0]
        if centered:
            with torch.no_grad():
                f0_train = initials[0](Xt)
                f0_test = None if Xtt is None else initials[0](Xtt)
        model = fused_sgd(nets[0], lrs[0], Xt, yt, f0_train, opts["batch_size"])
        if model is None:  # pragma: no cover - networks of Architecture take the fused path
            model = _functional_one(nets[0], lrs[0], Xt, yt, f0_train, opts["batch_size"])
    else:
        params = {name: p.to(dev) for name, p in engine.stack_parameters(nets).items()}
        model = stacked_sgd(nets[0], params, lrs, Xt, yt, opts["batch_size"])
        if centered:
            f0_train = model.outputs(Xt, None)
            f0_test = None if Xtt is None else model.outputs(Xtt, None)
            model.target = yt + f0_train
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    hook = None
    if on_record is not None and not stacked:

        def hook(epoch: int, trainer=model) -> None:
            trainer.finish()  # the fused steps keep the first and last layers as copies
            on_record(epoch, nets[0])

    curves = run(model, Xtt, f0_test, m=m, dtype=dtype, gens=gens, on_record=hook, **opts)
    if params is not None:
        engine.unstack_parameters(params, nets)
    del model
    results = []
    for j, net in enumerate(nets):
        net = net.to(dev)
        preds = curves.test_predictions[j]
        target = y_test[j] if per_member and y_test is not None else y_test
        network = CenteredNetwork(net, copy.deepcopy(initials[j])) if centered else net
        results.append(
            TrainResult(
                network=network,
                initial_network=initials[j],
                epochs=curves.epochs[j],
                train_loss=curves.train_loss[j],
                test_rmse=None if preds is None else rmse(preds, target),
                test_predictions=preds,
                wall_time=curves.wall_time / len(seeds),
                diverged=curves.diverged_epoch[j] is not None,
                diverged_epoch=curves.diverged_epoch[j],
                lr=lrs[j],
                centered=bool(centered),
                steps_per_epoch=steps_per_epoch(m, opts["batch_size"]),
                batch_size=opts["batch_size"],
            )
        )
    return results
