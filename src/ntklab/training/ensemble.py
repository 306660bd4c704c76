r"""Training networks of several seeds at once: :func:`train_ensemble`.

The members (their seeds, and optionally their learning rates and data sets) are trained
stacked (``vmap`` over the members, so a GPU stays busy) or one at a time by
:func:`~ntklab.training.train`'s path, in groups, by the loop of
:mod:`ntklab.training.epochs`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from .._validation import check_float, check_int
from ..metrics import rmse
from ..networks import resolve_device
from . import engine
from .arguments import auto_lr_of, check_common, check_lrs, default_record_every
from .epochs import functional_one, run, stacked_sgd
from .fused import fused_sgd
from .results import CenteredNetwork, TrainResult, lazy_scaled, steps_per_epoch

__all__ = ["train_ensemble"]


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
    check_input: bool = True,
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
    check_input : bool, default True
        ``False`` skips the checks (:mod:`ntklab._validation`): ``X`` (m, d) and ``y`` (m,),
        or (k, m, d) and (k, m), are then finite float64 (``X_test``, ``y_test`` likewise, or
        both ``None``); ``seeds`` k integers >= 0; ``lr`` a float > 0 or one per seed (no
        ``"auto"``); ``width``, ``epochs``, ``check_every``, ``divergence_factor``,
        ``group_size``, ``stacked``, ``lazy_scale`` and ``on_record`` valid as above. The
        defaults are resolved either way.

    Returns
    -------
    list of TrainResult
        In the order of ``seeds``; ``network`` is an ordinary
        :class:`~ntklab.FullyConnectedNetwork` (wrapped in :class:`CenteredNetwork` when
        ``centered``). ``wall_time`` is the batched run's time divided by its number of members.
    """
    if check_input:
        checked = _check_arguments(
            arch, width, X, y, X_test, y_test, seeds=seeds, lr=lr, epochs=epochs,
            batch_size=batch_size, record_every=record_every, check_every=check_every,
            divergence_factor=divergence_factor, group_size=group_size, stacked=stacked,
            lazy_scale=lazy_scale, on_record=on_record,
        )  # fmt: skip
        (seeds, width, X, y, X_test, y_test, lr, epochs, batch_size, record_every, check_every,
         divergence_factor, group_size, lazy_scale) = checked  # fmt: skip
    seeds = list(seeds)
    lrs = [float(v) for v in lr] if np.ndim(lr) else [float(lr)] * len(seeds)
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


def _check_arguments(arch, width, X, y, X_test, y_test, *, seeds, lr, epochs, batch_size,
                     record_every, check_every, divergence_factor, group_size, stacked,
                     lazy_scale, on_record):  # fmt: skip
    """The checks of :func:`train_ensemble`: its arguments checked (arrays float64, one
    learning rate per seed with ``"auto"`` resolved), or a one-line ``ValueError``."""
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
            check_common(
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
            lrs = [auto_lr_of(arch, Xj, width) for Xj in X]
        else:
            lrs = check_lrs(lr, k, None)
    else:
        X, y, X_test, y_test, epochs, batch_size, record_every, check_every, divergence_factor = check_common(
            X, y, X_test, y_test, in_features=None, epochs=epochs, batch_size=batch_size,
            record_every=record_every, check_every=check_every, divergence_factor=divergence_factor,
        )  # fmt: skip
        lrs = check_lrs(lr, k, lambda: auto_lr_of(arch, X, width))
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
    return (seeds, width, X, y, X_test, y_test, lrs, epochs, batch_size, record_every,
            check_every, divergence_factor, group_size, lazy_scale)  # fmt: skip


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
        if model is None:  # the torch.func path where the fused one is not faster
            model = functional_one(nets[0], lrs[0], Xt, yt, f0_train, opts["batch_size"])
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
