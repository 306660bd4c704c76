"""The epochs of training: mini-batch orders, recording and divergence checks.

:func:`run` drives any SGD model (one network or ``k`` stacked) epoch by epoch, records
its loss and test predictions, and stops the members whose loss diverges; it is the loop
shared by :func:`~ntklab.training.train` and :func:`~ntklab.training.train_ensemble`.
:func:`stacked_sgd` and :func:`functional_one` make the models it drives.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .fused import StackedFusedSGD, fused_specs
from .sgd import FunctionalSGD

__all__ = ["Curves", "functional_one", "run", "stacked_sgd"]


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
    """The loop shared by :func:`~ntklab.training.train` (k = 1) and
    :func:`~ntklab.training.train_ensemble`.

    ``buf[e]`` holds each member's loss at epoch ``e`` (full batch: the loss of the forward
    pass of step ``e + 1``, i.e. of the parameters after ``e`` steps; mini-batch: the mean
    batch loss of epoch ``e``, weighted by batch size); it is checked for divergence every
    ``check_every`` epochs, the only time the loop waits for the device. The mini-batch
    orders are drawn ``check_every`` epochs at a time.

    ``on_record(epoch)``, if given, is called at every recorded epoch with the parameters
    after ``epoch`` steps (before the step of that epoch; the last one after training),
    until training stops (one member only: :func:`ntklab.training.ensemble._train_group` passes it for k = 1).
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
    specs = fused_specs(net, X.shape[-2], batch_size) if fast else None
    if specs is not None:
        return StackedFusedSGD(params, specs, lrs, X, target, batch_size)
    return FunctionalSGD(net, params, lrs, X, target, batch_size, stacked=True)


def functional_one(net: nn.Module, lr: float, X, y, f0, batch_size) -> FunctionalSGD:
    """:class:`FunctionalSGD` for one network: its trainable parameters (views of its
    storage, trained in place); frozen parameters and buffers are passed as they are."""
    trainable, frozen = {}, {}
    for name, p in net.named_parameters():
        (trainable if p.requires_grad else frozen)[name] = p.detach()
    frozen.update(dict(net.named_buffers()))
    target = y if f0 is None else y + f0
    return FunctionalSGD(net, trainable, [lr], X, target, batch_size, stacked=False,
                         frozen=frozen)  # fmt: skip
