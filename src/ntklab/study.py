r"""One trial of a study: its data, every method, one :class:`~ntklab.store.TrialRecord`.

Randomness (SPEC §4; paired comparisons). Trial ``t`` of a study with seed ``s`` uses

* data: ``numpy.random.SeedSequence(s, spawn_key=(t,))`` -> ``numpy.random.default_rng``, so
  every sweep point (and every method) sees the same X, y and split for trial ``t``;
* the network of method ``M``: the integer
  ``SeedSequence(s, spawn_key=(t, 1, crc32(M))).generate_state(1)[0]``, which depends only on
  the study seed, the trial and the method's name (not on the order of the methods).

So any single trial can be re-run alone (:func:`run_trial`) and gives the same numbers.

Kernels are computed once per trial on all n rows and shared by the methods that use them
(``arch.kernels`` returns the NNGP and NTK together, so GPk and NTKJk share one pass; the
seed's published formulas of one normalization are computed together; the generating kernel
is reused when a method has the same one).

A method with ``holdout_fraction = h`` fits on the first :math:`m - \lfloor h m\rfloor` rows
of the training split (:func:`ntklab.data.fit_rows`) and is tested on the test split, like
the seed's Keras networks (SPEC §6). An ``ntk_time`` method predicts at
:math:`T = \text{epochs} \times \lceil m_\text{fit} / \text{batch\_size}\rceil` steps
(SPEC §6, time matching); with ``f0 = "network"`` it starts from the initial function of the
network that its ``network`` method trains in the same trial (same seed, same dtype: one
forward pass), so one network is compared with its own linearization.
"""

from __future__ import annotations

import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import KernelSpec, MethodConfig, StudyConfig
from .config.schema import TUNED_KINDS
from .data import SEED_BOUNDS, Dataset, fit_rows, real, real_cv, simulate
from .kernels import laplacian_unchecked, rbf_unchecked
from .metrics import rmse
from .predict import kernel_regression
from .store import GENERATOR_METHOD, TrialRecord

__all__ = [
    "run_trial",
    "methods_due",
    "trial_seed",
    "network_seed",
    "initial_outputs",
    "sgd_steps",
    "TrialContext",
]


def trial_seed(study_seed: int, trial: int) -> np.random.SeedSequence:
    """The SeedSequence of trial ``trial``: ``SeedSequence(study_seed, spawn_key=(trial,))``."""
    return np.random.SeedSequence(int(study_seed), spawn_key=(int(trial),))


def network_seed(study_seed: int, trial: int, method: str) -> int:
    """Seed of method ``method``'s network in trial ``trial`` (an int in [0, 2**32))."""
    key = zlib.crc32(method.encode("utf-8"))
    ss = np.random.SeedSequence(int(study_seed), spawn_key=(int(trial), 1, key))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def _cache_key(spec: KernelSpec) -> tuple:
    """The kernel a spec (a method or the data generator) uses, as a cache key."""
    if spec.kind in ("ntk", "nngp", "ntk_time", "network"):
        return ("nngp" if spec.kind == "nngp" else "ntk", spec.architecture())
    if spec.kind == "published":
        return ("published", spec.published())
    return (spec.kind, float(spec.length_scale))


@dataclass
class TrialContext:
    """One trial's data and its kernel cache (full n×n matrices on all rows).

    :meth:`kernel` returns the matrix a method's (or the generator's) spec uses, computing it
    on first use: for an architecture its NNGP and NTK in one pass; for a published formula
    every formula of that normalization that ``published`` lists, in one pass sharing their
    arc-cosine terms.
    """

    data: Dataset
    cache: dict = field(default_factory=dict)
    published: tuple = ()
    #: per (kernel, fitted rows): its eigendecomposition and its auto learning rate
    spectra: dict = field(default_factory=dict)

    def kernel(self, spec: KernelSpec) -> np.ndarray:
        key = _cache_key(spec)
        if key not in self.cache:
            self.cache.update(_compute(key, self.data.X, self.published))
        return self.cache[key]

    def blocks(
        self, K: np.ndarray, holdout_fraction: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(K[fit, fit], K[test, fit])``, ``fit`` = the training rows the method fits."""
        fit, te = self.fit(holdout_fraction), self.data.test
        return K[np.ix_(fit, fit)], K[np.ix_(te, fit)]

    def fit(self, holdout_fraction: float | None = None) -> np.ndarray:
        """The training rows a method with this ``holdout_fraction`` fits."""
        return fit_rows(self.data.train, holdout_fraction)

    def eigh(self, spec: KernelSpec, holdout_fraction: float | None = None):
        """``np.linalg.eigh`` of the kernel on the rows a method fits, computed once per trial
        and shared by every method with the same kernel and rows (e.g. NTK-NN1-T and
        NTK-NN1-Tmean)."""
        key = ("eigh", _cache_key(spec), holdout_fraction)
        if key not in self.spectra:
            K_fit = self.blocks(self.kernel(spec), holdout_fraction)[0]
            self.spectra[key] = np.linalg.eigh(K_fit)
        return self.spectra[key]

    def auto_lr(self, spec: KernelSpec, holdout_fraction: float | None = None) -> float:
        """:func:`ntklab.auto_lr` of the kernel on the rows a method fits, computed once per
        trial and shared by every method with the same kernel and rows (a network and the
        ntk_time method of the same architecture)."""
        from .training import auto_lr_unchecked

        key = ("auto_lr", _cache_key(spec), holdout_fraction)
        if key not in self.spectra:
            self.spectra[key] = auto_lr_unchecked(
                self.blocks(self.kernel(spec), holdout_fraction)[0]
            )
        return self.spectra[key]


def _compute(key: tuple, X: np.ndarray, published: tuple) -> dict:
    """The kernel matrices of ``key`` on all rows (and those computed in the same pass).

    ``X`` is the trial's own data (made by :mod:`ntklab.data`), so the kernels' unchecked
    versions are used (:mod:`ntklab._validation`: validate once, at the boundary)."""
    kind = key[0]
    if kind in ("ntk", "nngp"):
        nngp, ntk = key[1].kernels_unchecked(X)
        return {("nngp", key[1]): nngp, ("ntk", key[1]): ntk}
    if kind == "published":
        from .published import published_kernels_unchecked

        wanted = key[1]
        group = [k for k in published if k.normalization == wanted.normalization] or [wanted]
        group = [k for k in group if k.name != "K1" or k == wanted]  # K1: own constants
        mats = published_kernels_unchecked(
            X, normalization=wanted.normalization, names=[k.name for k in group],
            **({"amplitude": wanted.amplitude, "length_scale": wanted.length_scale}
               if wanted.name == "K1" else {}),
        )  # fmt: skip
        return {("published", k): mats[k.name] for k in group}
    fn = laplacian_unchecked if kind == "laplacian" else rbf_unchecked
    return {key: fn(X, length_scale=key[1])}


def make_data(config: StudyConfig, trial: int) -> tuple[TrialContext, float]:
    """Trial ``trial``'s data (and its kernel cache). Returns ``(context, generator jitter)``."""
    rng = np.random.default_rng(trial_seed(config.study.seed, trial))
    data_cfg = config.data
    published = tuple(
        dict.fromkeys(s.published() for s in [data_cfg.generator, *config.methods]
                      if s is not None and s.kind == "published")
    )  # fmt: skip
    if data_cfg.dataset == "simulated":
        cache: dict = {}
        gen = data_cfg.generator
        key = _cache_key(gen)

        def kernel(X: np.ndarray) -> np.ndarray:
            cache.update(_compute(key, X, published))
            return cache[key]

        data, _, jitter = simulate(
            n=data_cfg.n,
            d=data_cfg.d,
            n_train=data_cfg.n_train,
            kernel=kernel,
            noise=data_cfg.noise,
            rng=rng,
            inputs=data_cfg.inputs or "normal",
            bounds=tuple(data_cfg.bounds or SEED_BOUNDS),
        )
        return TrialContext(data, cache, published), jitter
    if data_cfg.folds:  # repeated k-fold: trial t is fold t % k of repeat t // k
        data = real_cv(data_cfg.dataset, n=data_cfg.n or data_cfg.max_rows, folds=data_cfg.folds, trial=trial,
                       seed=np.random.SeedSequence(config.study.seed))  # fmt: skip
        return TrialContext(data, published=published), 0.0
    data = real(data_cfg.dataset, n=data_cfg.n, n_train=data_cfg.n_train, rng=rng)
    return TrialContext(data, published=published), 0.0


def sgd_steps(epochs: int, batch_size: int | None, m_fit: int) -> int:
    r"""Gradient steps of ``epochs`` epochs: :math:`\text{epochs} \times \lceil m_\text{fit}
    / \text{batch\_size}\rceil` (one per epoch for full batches; SPEC §6 time matching)."""
    from .training.results import steps_per_epoch

    return int(epochs) * steps_per_epoch(m_fit, batch_size)


def _lr(method: MethodConfig, ctx: TrialContext, *, study_seed: int = 0, trial: int = 0,
        device=None) -> float:  # fmt: skip
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
    from .regimes import critical_lr as network_critical_lr

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
    from .networks import predict_numpy_unchecked

    X = ctx.data.X
    fit, test = X[ctx.fit(method.holdout_fraction)], X[ctx.data.test]
    return predict_numpy_unchecked(net, fit), predict_numpy_unchecked(net, test)


def _kernel_method(
    method: MethodConfig, ctx: TrialContext, record: TrialRecord, *, study_seed: int,
    trial: int, device=None,
) -> None:  # fmt: skip
    start = time.perf_counter()
    K = ctx.kernel(method)
    K_train, K_test = ctx.blocks(K, method.holdout_fraction)
    y_train, y_test = ctx.data.y[ctx.fit(method.holdout_fraction)], ctx.data.y_test
    if method.kind == "ntk_time":
        from .predict import gradient_descent_mse_unchecked

        lr = _lr(method, ctx, study_seed=study_seed, trial=trial, device=device)
        steps = sgd_steps(method.epochs, method.batch_size, K_train.shape[0])
        f0_train = f0_test = None
        if method.f0 == "network":
            f0_train, f0_test = initial_outputs(
                method, ctx, study_seed=study_seed, trial=trial, device=device
            )
        f_train, f_test = gradient_descent_mse_unchecked(
            K_train, K_test, y_train, lr=lr, steps=steps, f0_train=f0_train, f0_test=f0_test,
            eig=ctx.eigh(method, method.holdout_fraction),
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


def _schedule(method: MethodConfig) -> dict[str, Any]:
    """How a network method trains its network (:func:`ntklab.train_ensemble` keywords)."""
    return dict(epochs=method.epochs, batch_size=method.batch_size,
                record_every=method.record_every, centered=method.centered)  # fmt: skip


def _stack_key(method: MethodConfig) -> tuple:
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
    from .networks import resolve_device
    from .training import train_ensemble_unchecked

    if stacked is None:
        stacked = resolve_device(device).type == "cuda"
    if not stacked:
        return {}
    groups: dict[tuple, list[NetworkJob]] = {}
    for job in jobs:
        if job[2].kind == "network" and not _one_at_a_time(job[2]):
            groups.setdefault(_stack_key(job[2]), []).append(job)
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
            results = train_ensemble_unchecked(
                first.architecture(),
                first.width,
                X,
                y,
                seeds=[network_seed(study_seed, trial, m.name) for trial, _, m in group],
                lrs=[_lr(m, ctx) for _, ctx, m in group],
                X_test=X_test,
                y_test=y_test,
                device=device,
                stacked=True,
                **_schedule(first),
            )
        except Exception:  # noqa: BLE001 - each method retries alone and records its error
            continue
        out.update({(t, m.name): r for (t, _, m), r in zip(group, results, strict=True)})
    return out


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
    from .training import train_ensemble_unchecked

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
        lr = _lr(method, ctx, study_seed=study_seed, trial=trial, device=device)
        if method.track_lambda:
            from .regimes import LambdaTracker

            tracker = LambdaTracker(X_train)
        (result,) = train_ensemble_unchecked(
            arch,
            method.width,
            X_train,
            y_train,
            seeds=[seed],
            lrs=[lr],
            X_test=X_test,
            y_test=y_test,
            device=device,
            lazy_scale=method.lazy_scale,
            on_record=tracker,
            **_schedule(method),
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
    train_pred = result.predict_unchecked(X_train)
    test_pred = result.predict_unchecked(X_test)
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
        from .equivalence import equivalence_metrics_unchecked

        kernels = eig = None
        if not arch.has_kernel_limit:  # mup: its own linearization (empirical NTK)
            from .regimes import EmpiricalKernel

            arch = EmpiricalKernel(result.initial_network)
        else:  # the trial's own kernels and eigendecomposition, computed once
            kernels = ctx.blocks(ctx.kernel(method), method.holdout_fraction)
            eig = ctx.eigh(method, method.holdout_fraction)
        with warnings.catch_warnings():
            if method.lr_multiple is not None:  # above the critical rate f_lin diverges: known
                warnings.filterwarnings("ignore", message=".*above the stability limit")
            eq = equivalence_metrics_unchecked(
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


def methods_due(
    config: StudyConfig, trial: int, only: Collection[str] | None = None
) -> list[MethodConfig]:
    """The methods trial ``trial`` runs: those with no ``trials`` cap or a cap above ``trial``
    (a method with ``trials = 4`` runs in trials 0..3 only), restricted to ``only`` if given."""
    return [
        m
        for m in config.methods
        if (m.trials is None or trial < m.trials) and (only is None or m.name in only)
    ]


def run_trial(
    config: StudyConfig | dict[str, Any],
    *,
    point: int = 0,
    trial: int,
    device=None,
    on_method: Callable[[str], None] | None = None,
    methods: Collection[str] | None = None,
    stacked: bool | None = None,
) -> TrialRecord:
    """Run trial ``trial`` of one sweep point: data, then every method; never raises.

    Parameters
    ----------
    config : StudyConfig or dict
        The (resolved) config of the sweep point.
    point, trial : int
        Sweep point index (only stored) and trial index (selects the randomness).
    device : str or torch.device, optional
        For network methods; ``None``: CUDA when available (``ntklab.networks.resolve_device``).
    on_method : callable, optional
        Called with each method's name before it runs (progress display).
    methods : collection of str, optional
        Run only these methods (default: all). Either way a method whose ``trials`` cap is
        at most ``trial`` is not run (:func:`methods_due`).
    stacked : bool, optional
        Train the trial's networks of one architecture, width and schedule stacked
        (:func:`train_networks`); default: on CUDA only. ``True`` forces it on a CPU.

    Returns
    -------
    TrialRecord
        ``status="done"`` with one row per (method, metric[, step]) and, when the data
        generator needed jitter, a ``generator_jitter`` row of method
        :data:`~ntklab.store.GENERATOR_METHOD`; a method that raises
        adds an entry to ``errors`` and the trial goes on. If the data cannot be made the
        record has ``status="failed"`` and the error (retried on resume).
    """
    on_trial_method = None if on_method is None else (lambda _trial, name: on_method(name))
    (record,) = run_trials(
        config, point=point, trials=[trial], device=device, on_method=on_trial_method,
        methods=methods, stacked=stacked,
    )  # fmt: skip
    return record


def run_trials(
    config: StudyConfig | dict[str, Any],
    *,
    point: int = 0,
    trials: Sequence[int],
    device=None,
    on_method: Callable[[int, str], None] | None = None,
    methods: Collection[str] | None = None,
    stacked: bool | None = None,
) -> list[TrialRecord]:
    """Run several trials of one sweep point, their networks trained together; never raises.

    Each trial's record is the one :func:`run_trial` gives (equal up to float round-off
    where networks were trained stacked), but the network methods of all ``trials`` that
    share an architecture, width and schedule are trained in one stacked run, each member
    on its own trial's data (:func:`train_networks`; default on CUDA only, ``stacked=True``
    forces it on a CPU). This is how a GPU worker keeps its device busy with the seed's
    NN1 of several trials at once. ``on_method(trial, name)`` is called before each method.
    """
    if not isinstance(config, StudyConfig):
        config = StudyConfig.model_validate(config)
    study_seed = config.study.seed
    started = []  # per trial: its record, context (None if its data failed), due methods
    for trial in trials:
        ss = trial_seed(study_seed, trial)
        record = TrialRecord(
            point=point,
            trial=trial,
            seed=f"SeedSequence(entropy={ss.entropy}, spawn_key={tuple(ss.spawn_key)})",
        )
        start = time.perf_counter()
        try:
            ctx, jitter = make_data(config, trial)
            if jitter:  # 0 for every preset's data; stored only when not
                record.add(GENERATOR_METHOD, "generator_jitter", jitter)
            started.append((record, ctx, methods_due(config, trial, methods)))
        except Exception as exc:
            record.status = "failed"
            record.error = _one_line(exc) + " | " + _where(exc)
            started.append((record, None, []))
        record.wall_time = time.perf_counter() - start
    jobs = [(r.trial, ctx, m) for r, ctx, due in started if ctx is not None for m in due]
    start = time.perf_counter()
    trained = train_networks(jobs, study_seed=study_seed, device=device, stacked=stacked)
    together = time.perf_counter() - start  # charged to the trials by their networks' shares
    shares = sum(r.wall_time for r in trained.values()) or 1.0
    for record, ctx, due in started:
        if ctx is None:
            continue
        start = time.perf_counter()
        for method in due:
            if on_method is not None:
                on_method(record.trial, method.name)
            try:
                if method.kind in TUNED_KINDS:  # tuned on the training rows (real data)
                    from .tuned import run_tuned

                    run_tuned(method, ctx, record, device=device,
                              seed=network_seed(study_seed, record.trial, method.name))  # fmt: skip
                elif method.kind == "network":
                    result = trained.pop((record.trial, method.name), None)
                    if result is not None:
                        record.wall_time += together * result.wall_time / shares
                    _network_method(
                        method, ctx, record, study_seed=study_seed, trial=record.trial,
                        device=device, trained=result,
                    )  # fmt: skip
                else:
                    _kernel_method(
                        method, ctx, record, study_seed=study_seed, trial=record.trial,
                        device=device,
                    )  # fmt: skip
            except Exception as exc:  # a failing method must not lose the trial
                record.rows = [r for r in record.rows if r[0] != method.name]
                record.errors.append((method.name, _one_line(exc)))
        record.wall_time += time.perf_counter() - start
        ctx.cache.clear()  # this trial's n x n kernels: the batch's next trial needs room
        ctx.spectra.clear()
    return [record for record, _, _ in started]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500]


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"
