"""Networks of a batch of trials trained stacked: the network methods of one architecture,
width and schedule (:func:`stack_key`), whether of one trial or of several, in one
:func:`ntklab.train_ensemble` run, each member on its own trial's data
(:func:`train_networks`). Whether to stack is decided here, once (:func:`stacking_on`: on
CUDA by default, where it keeps the GPU busy; on a CPU only when asked).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import MethodConfig
from .context import TrialContext, network_seed
from .methods import method_lr, schedule

__all__ = ["NetworkJob", "stack_key", "stacking_on", "train_networks"]


def stacking_on(stacked: bool | None, device=None) -> bool:
    """Whether networks train stacked: ``stacked`` if given, else on CUDA only (on a CPU
    each network trains alone, which ``benchmarks/bench_training.py`` measures fastest)."""
    if stacked is None:
        from ..networks import resolve_device

        return resolve_device(device).type == "cuda"
    return bool(stacked)


def stack_key(method: MethodConfig) -> tuple:
    """Network methods with equal keys train on the same rows with the same schedule, so
    their networks can be stacked in one run (their seeds and learning rates may differ)."""
    return (method.architecture(), method.width, method.epochs, method.batch_size,
            method.record_every, method.centered, method.holdout_fraction)  # fmt: skip


def _one_at_a_time(method: MethodConfig) -> bool:
    """Network methods that train alone: a lazy-scaled model, a rate relative to the
    network's own NTK, or λ_max recorded during training (which reads one network)."""
    return bool(method.lazy_scale is not None or method.lr_multiple is not None
                or method.track_lambda)  # fmt: skip


#: One network to train: (trial, the trial's context, the network method).
NetworkJob = tuple[int, TrialContext, MethodConfig]


def train_networks(
    jobs: Sequence[NetworkJob],
    *,
    study_seed: int,
    device=None,
    stacked: bool | None = None,
) -> dict[tuple[int, str], Any]:
    """Train the networks of ``jobs`` stacked: two or more network methods of one
    architecture, width and schedule in one :func:`ntklab.train_ensemble` run, whether they
    belong to one trial or to several (then each member has its own trial's data), when
    ``stacked`` (default: on CUDA, where stacking keeps the GPU busy; on a CPU each network
    trains alone, which ``benchmarks/bench_training.py`` measures fastest there).

    Returns ``{(trial, method name): TrainResult}`` for the networks trained stacked; each
    is the network its method would train alone (same seed, learning rate, data and batch
    orders). The other methods (and those of a group whose run fails, which then report
    their own errors) train alone in :func:`run_trials`."""
    from ..training import train_ensemble

    if not stacking_on(stacked, device):
        return {}
    groups: dict[tuple, list[NetworkJob]] = {}
    for job in jobs:
        if job[2].kind == "network" and not _one_at_a_time(job[2]):
            groups.setdefault(stack_key(job[2]), []).append(job)
    out = {}
    for group in groups.values():
        if len(group) < 2:  # one network trains fastest alone (the fused steps)
            continue
        first = group[0][2]
        fits = [ctx.fit(first.holdout_fraction) for _, ctx, _ in group]
        sets = [
            (ctx.data.X[fit], ctx.data.y[fit], ctx.data.X_test, ctx.data.y_test)
            for (_, ctx, _), fit in zip(group, fits, strict=True)
        ]
        if len({id(ctx) for _, ctx, _ in group}) == 1:
            X, y, X_test, y_test = sets[0]  # one trial: shared data
        else:
            if len({tuple(a.shape for a in data) for data in sets}) > 1:
                continue  # trials of different sizes cannot share one stacked run
            X, y, X_test, y_test = (np.stack(parts) for parts in zip(*sets, strict=True))
        try:
            results = train_ensemble(
                first.architecture(),
                first.width,
                X,
                y,
                seeds=[network_seed(study_seed, trial, m.name) for trial, _, m in group],
                lr=[method_lr(m, ctx) for _, ctx, m in group],
                X_test=X_test,
                y_test=y_test,
                device=device,
                stacked=True,
                **schedule(first),
                check_input=False,
            )
        except Exception:  # noqa: BLE001 - each method retries alone and records its error
            continue
        out.update({(t, m.name): r for (t, _, m), r in zip(group, results, strict=True)})
    return out
