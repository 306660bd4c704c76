r"""The methods of a trial: each kind run on the trial's :class:`~.context.TrialContext` and
recorded on its :class:`~ntklab.store.TrialRecord` (:func:`run_method`).

A kernel method (``ntk``, ``nngp``, ``published``, ``laplacian``, ``rbf``) is kernel
regression on the trial's shared kernel; an ``ntk_time`` method predicts at
:math:`T = \text{epochs} \times \lceil m_\text{fit} / \text{batch\_size}\rceil` steps
(:func:`sgd_steps`; SPEC §6, time matching), from zero or, with ``f0 = "network"``, from its
network's initial function (:func:`initial_outputs`); a ``network`` method trains its network
(or takes it trained stacked with others) and records its RMSEs, curves, its regime
(λ_max and the rate relative to the critical one) and its equivalence metrics; a tuned kind
runs :func:`ntklab.tuned.run_tuned`. A method with ``holdout_fraction = h`` fits on the
first :math:`m - \lfloor h m\rfloor` training rows (:func:`ntklab.data.fit_rows`).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from ..config import MethodConfig
from ..config.schema import TUNED_KINDS
from ..metrics import rmse
from ..predict import kernel_regression
from ..store import TrialRecord
from .context import TrialContext, network_seed

__all__ = [
    "sgd_steps",
    "method_lr",
    "critical_lr",
    "initial_outputs",
    "schedule",
    "run_method",
    "record_curve",
    "DIVERGED_NAN",
]


def sgd_steps(epochs: int, batch_size: int | None, m_fit: int) -> int:
    r"""Gradient steps of ``epochs`` epochs: :math:`\text{epochs} \times \lceil m_\text{fit}
    / \text{batch\_size}\rceil` (one per epoch for full batches; SPEC §6 time matching)."""
    from ..training.results import steps_per_epoch

    return int(epochs) * steps_per_epoch(m_fit, batch_size)


def method_lr(
    method: MethodConfig, ctx: TrialContext, *, study_seed: int = 0, trial: int = 0, device=None
) -> float:
    """The method's learning rate; ``"auto"`` from the analytic NTK on the rows it fits,
    ``"xC"`` C times the critical rate of its network's empirical NTK at init there
    (:func:`critical_lr`)."""
    multiple = method.lr_multiple
    if multiple is not None:
        eta, _ = critical_lr(method, ctx, study_seed=study_seed, trial=trial, device=device)
        return multiple * eta
    if method.lr != "auto":
        return float(method.lr)
    return ctx.auto_lr(method, method.holdout_fraction)


def critical_lr(
    method: MethodConfig, ctx: TrialContext, *, study_seed: int, trial: int, device=None
) -> tuple[float, float]:
    """``(eta_crit, lambda_max_0)`` of the network that ``method`` trains (a network method)
    or takes its rate from (``network = "NAME"``) in this trial, on the rows it fits
    (:func:`ntklab.regimes.critical_lr`): the same seed, architecture, width and float32
    dtype as :func:`ntklab.train_ensemble` builds, so it is that very network at init.
    Computed once per trial and network."""
    from ..regimes import critical_lr as network_critical_lr

    name = method.name if method.kind == "network" else method.network
    key = ("critical_lr", name, method.holdout_fraction)
    if key not in ctx.spectra:
        net = method.architecture().network(
            method.width,
            seed=network_seed(study_seed, trial, name),
            in_features=ctx.data.X.shape[1],
            device=device,
        )
        ctx.spectra[key] = network_critical_lr(net, ctx.data.X[ctx.fit(method.holdout_fraction)])
    return ctx.spectra[key]


def initial_outputs(
    method: MethodConfig, ctx: TrialContext, *, study_seed: int, trial: int, device=None
) -> tuple[np.ndarray, np.ndarray]:
    """``f0`` on the fitted and the test rows of the network that ``method.network`` trains in
    this trial: the same seed (:func:`network_seed`), architecture, width and float32 dtype as
    :func:`ntklab.train_ensemble` builds it, so it is that very network at initialization."""
    net = method.architecture().network(
        method.width,
        seed=network_seed(study_seed, trial, method.network),
        in_features=ctx.data.X.shape[1],
        device=device,
    )
    from ..networks import predict_numpy

    X = ctx.data.X
    fit, test = X[ctx.fit(method.holdout_fraction)], X[ctx.data.test]
    return predict_numpy(net, fit, check_input=False), predict_numpy(net, test, check_input=False)


def _kernel_method(
    method: MethodConfig, ctx: TrialContext, record: TrialRecord, *, study_seed: int,
    trial: int, device=None,
) -> None:  # fmt: skip
    start = time.perf_counter()
    K = ctx.kernel(method)
    K_train, K_test = ctx.blocks(K, method.holdout_fraction)
    y_train, y_test = ctx.data.y[ctx.fit(method.holdout_fraction)], ctx.data.y_test
    if method.kind == "ntk_time":
        from ..predict import gradient_descent_mse

        lr = method_lr(method, ctx, study_seed=study_seed, trial=trial, device=device)
        steps = sgd_steps(method.epochs, method.batch_size, K_train.shape[0])
        f0_train = f0_test = None
        if method.f0 == "network":
            f0_train, f0_test = initial_outputs(
                method, ctx, study_seed=study_seed, trial=trial, device=device
            )
        f_train, f_test = gradient_descent_mse(
            K_train, K_test, y_train, lr=lr, steps=steps, f0_train=f0_train, f0_test=f0_test,
            eig=ctx.eigh(method, method.holdout_fraction), check_input=False,
        )  # fmt: skip
        record.add(method.name, "lr", lr)
        record.add(method.name, "steps", float(steps))
        record.add(method.name, "train_rmse", rmse(f_train, y_train))
        jitter = 0.0
    else:
        f_test, jitter = kernel_regression(K_train, K_test, y_train, method.ridge)
    seconds = time.perf_counter() - start  # includes the kernel if this method computed it
    record.add(method.name, "rmse", rmse(f_test, y_test))
    record.add(method.name, "jitter", jitter)
    record.add(method.name, "fit_seconds", seconds)


def schedule(method: MethodConfig) -> dict[str, Any]:
    """How a network method trains its network (:func:`ntklab.train_ensemble` keywords)."""
    return dict(epochs=method.epochs, batch_size=method.batch_size,
                record_every=method.record_every, centered=method.centered)  # fmt: skip


def _network_method(
    method: MethodConfig,
    ctx: TrialContext,
    record: TrialRecord,
    *,
    study_seed: int,
    trial: int,
    device,
    trained=None,
) -> None:
    """Record a network method; ``trained`` is its :class:`TrainResult` if
    :func:`train_networks` trained it already (stacked with others), else it trains here."""
    from ..training import train_ensemble

    # a network trained stacked counts its share of the stacked run's time
    start = time.perf_counter() - (0.0 if trained is None else trained.wall_time)
    arch = method.architecture()
    data = ctx.data
    fit = ctx.fit(method.holdout_fraction)
    X_train, y_train, X_test, y_test = data.X[fit], data.y[fit], data.X_test, data.y_test
    seed = network_seed(study_seed, trial, method.name)
    tracker = None
    if trained is not None:
        result = trained
    else:
        lr = method_lr(method, ctx, study_seed=study_seed, trial=trial, device=device)
        if method.track_lambda:
            from ..regimes import LambdaTracker

            tracker = LambdaTracker(X_train)
        (result,) = train_ensemble(
            arch,
            method.width,
            X_train,
            y_train,
            seeds=[seed],
            lr=[lr],
            X_test=X_test,
            y_test=y_test,
            device=device,
            lazy_scale=method.lazy_scale,
            on_record=tracker,
            **schedule(method),
            check_input=False,
        )
    name = method.name
    diverged = bool(result.diverged)
    record.add(name, "lr", float(result.lr))
    record.add(name, "diverged", float(diverged))
    if method.lazy_scale is not None:
        record.add(name, "lazy_scale", float(method.lazy_scale))
    if tracker is not None or method.lr_multiple is not None:
        _record_regime(method, ctx, record, result, tracker, study_seed=study_seed,
                       trial=trial, device=device)  # fmt: skip
    if diverged:
        record.add(name, "diverged_epoch", float(result.diverged_epoch))
    train_pred = result.predict(X_train, check_input=False)
    test_pred = result.predict(X_test, check_input=False)
    record.add(name, "rmse", rmse(test_pred, y_test))
    record.add(name, "train_rmse", rmse(train_pred, y_train))
    epochs = np.asarray(result.epochs)
    record_curve(record, name, "curve_train_loss", epochs, result.train_loss)
    if result.test_rmse is not None:
        record_curve(record, name, "curve_test_rmse", epochs, result.test_rmse)
    record.add(name, "fit_seconds", time.perf_counter() - start)
    if method.equivalence and diverged and method.track_lambda:
        for metric in DIVERGED_NAN:  # counted as diverged, never silently missing
            record.add(name, metric, float("nan"))
    if method.equivalence and not diverged:
        from ..equivalence import equivalence_metrics

        kernels = eig = None
        if not arch.has_kernel_limit:  # mup: its own linearization (empirical NTK)
            from ..regimes import EmpiricalKernel

            arch = EmpiricalKernel(result.initial_network)
        else:  # the trial's own kernels and eigendecomposition, computed once
            kernels = ctx.blocks(ctx.kernel(method), method.holdout_fraction)
            eig = ctx.eigh(method, method.holdout_fraction)
        with warnings.catch_warnings():
            if method.lr_multiple is not None:  # above the critical rate f_lin diverges: known
                warnings.filterwarnings("ignore", message=".*above the stability limit")
            eq = equivalence_metrics(
                result,
                arch,
                X_train,
                y_train,
                X_test,
                y_test,
                max_kernel_points=method.max_kernel_points,
                seed=seed,
                kernels=kernels,
                eig=eig,
                check_input=False,
            )
        for metric, value in eq.metrics.items():
            if metric in ("rmse", "train_rmse"):
                continue  # the network's own, recorded above
            record.add(name, metric, float(value))
        for metric, (steps, values) in eq.curves.items():
            if metric in ("curve_train_loss", "curve_test_rmse"):
                continue
            record_curve(record, name, metric, np.asarray(steps), np.asarray(values))


#: Metrics of a network method with ``track_lambda`` stored as NaN when it diverged.
DIVERGED_NAN = ("nn_lin_rms", "nn_lin_rel", "nn_elin_rms", "nn_elin_rel", "kernel_drift",
                "ntk_same_t_rmse")  # fmt: skip


def _record_regime(method, ctx, record, result, tracker, *, study_seed, trial, device) -> None:
    """λ_max(Θ̂_t) of the network on its fitted rows (``lambda_max_0``, ``lambda_max_T``,
    ``curve_lambda_max``) and the rate as a multiple of the critical one (``lr_multiple``)."""
    name = method.name
    lam0 = None
    if tracker is not None and tracker.epochs and tracker.epochs[0] == 0:
        lam0 = tracker.values[0]
    if lam0 is None or method.lr_multiple is not None:
        lam0 = critical_lr(method, ctx, study_seed=study_seed, trial=trial, device=device)[1]
    m = len(ctx.fit(method.holdout_fraction))
    record.add(name, "lambda_max_0", lam0)
    record.add(name, "lr_multiple", float(result.lr) * lam0 / m)
    if tracker is None:
        return
    done = not result.diverged and tracker.epochs and tracker.epochs[-1] == int(result.epochs[-1])
    record.add(name, "lambda_max_T", tracker.values[-1] if done else float("nan"))
    # after a divergence (checked every check_every epochs) the values are not a curve's
    last = result.diverged_epoch if result.diverged else np.inf
    keep = [i for i, e in enumerate(tracker.epochs) if e < last]
    record_curve(record, name, "curve_lambda_max", [tracker.epochs[i] for i in keep],
                 [tracker.values[i] for i in keep])  # fmt: skip


def record_curve(record: TrialRecord, method: str, metric: str, steps, values) -> None:
    """Add a training curve (one row per recorded epoch; non-finite values are skipped)."""
    steps = np.asarray(steps).tolist()
    values = np.asarray(values, dtype=float).tolist()
    for step, value in zip(steps, values, strict=True):
        if np.isfinite(value):
            record.add(method, metric, value, step=int(step))


def run_method(
    method: MethodConfig,
    ctx: TrialContext,
    record: TrialRecord,
    *,
    study_seed: int,
    trial: int,
    device=None,
    trained=None,
) -> None:
    """Run one method of trial ``trial`` and add its rows to ``record`` (raises on failure):
    a tuned kind tuned on the training rows (real data), a network method (``trained``: its
    :class:`TrainResult` if trained stacked already), else a kernel method."""
    if method.kind in TUNED_KINDS:  # tuned on the training rows (real data)
        from ..tuned import run_tuned

        run_tuned(method, ctx, record, device=device,
                  seed=network_seed(study_seed, trial, method.name))  # fmt: skip
    elif method.kind == "network":
        _network_method(
            method, ctx, record, study_seed=study_seed, trial=trial, device=device,
            trained=trained,
        )  # fmt: skip
    else:
        _kernel_method(method, ctx, record, study_seed=study_seed, trial=trial, device=device)
