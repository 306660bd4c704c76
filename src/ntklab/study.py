r"""One trial of a study: its data, every method, one :class:`~ntklab.store.TrialRecord`.

Randomness (SPEC §4; paired comparisons). Trial ``t`` of a study with seed ``s`` uses

* data: ``numpy.random.SeedSequence(s, spawn_key=(t,))`` -> ``numpy.random.default_rng``, so
  every sweep point (and every method) sees the same X, y and split for trial ``t``;
* the network of method ``M``: the integer
  ``SeedSequence(s, spawn_key=(t, 1, crc32(M))).generate_state(1)[0]``, which depends only on
  the study seed, the trial and the method's name (not on the order of the methods).

So any single trial can be re-run alone (:func:`run_trial`) and gives the same numbers.

Kernels are computed once per trial on all n rows and shared by the methods that use them
(``arch.kernels`` returns the NNGP and NTK together, so GPk and NTKJk share one pass, and
the generating kernel is reused when a method has the same one).
"""

from __future__ import annotations

import time
import traceback
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .architecture import Architecture
from .config import MethodConfig, StudyConfig
from .data import Dataset, real, simulate
from .kernels import laplacian, rbf
from .predict import cho_solve_jitter
from .store import TrialRecord

__all__ = ["run_trial", "methods_due", "trial_seed", "network_seed", "TrialContext"]


def trial_seed(study_seed: int, trial: int) -> np.random.SeedSequence:
    """The SeedSequence of trial ``trial``: ``SeedSequence(study_seed, spawn_key=(trial,))``."""
    return np.random.SeedSequence(int(study_seed), spawn_key=(int(trial),))


def network_seed(study_seed: int, trial: int, method: str) -> int:
    """Seed of method ``method``'s network in trial ``trial`` (an int in [0, 2**32))."""
    key = zlib.crc32(method.encode("utf-8"))
    ss = np.random.SeedSequence(int(study_seed), spawn_key=(int(trial), 1, key))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def _rmse(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, dtype=np.float64) - y) ** 2)))


@dataclass
class TrialContext:
    """One trial's data and its kernel cache (full n×n matrices on all rows).

    ``kernel(key)`` returns the cached matrix for ``("nngp"|"ntk", arch)`` or
    ``("laplacian"|"rbf", length_scale)``, computing it (and, for an architecture, both
    NNGP and NTK in one pass) on first use.
    """

    data: Dataset
    cache: dict = field(default_factory=dict)

    def kernel(self, kind: str, arch: Architecture | None = None, length_scale: float = 1.0):
        key = (kind, arch if arch is not None else float(length_scale))
        if key not in self.cache:
            X = self.data.X
            if kind in ("ntk", "nngp"):
                nngp, ntk = arch.kernels(X)
                self.cache[("nngp", arch)] = nngp
                self.cache[("ntk", arch)] = ntk
            elif kind == "laplacian":
                self.cache[key] = laplacian(X, length_scale=length_scale)
            elif kind == "rbf":
                self.cache[key] = rbf(X, length_scale=length_scale)
            else:  # pragma: no cover - config validation prevents it
                raise ValueError(f"unknown kernel kind {kind!r}")
        return self.cache[key]

    def blocks(self, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(K[train, train], K[test, train])``."""
        tr, te = self.data.train, self.data.test
        return K[np.ix_(tr, tr)], K[np.ix_(te, tr)]


def _generator_kernel(config: StudyConfig, ctx_cache: dict) -> Callable[[np.ndarray], np.ndarray]:
    gen = config.data.generator

    def kernel(X: np.ndarray) -> np.ndarray:
        if gen.kind in ("ntk", "nngp"):
            arch = gen.architecture()
            nngp, ntk = arch.kernels(X)
            ctx_cache[("nngp", arch)] = nngp
            ctx_cache[("ntk", arch)] = ntk
            return ntk if gen.kind == "ntk" else nngp
        fn = laplacian if gen.kind == "laplacian" else rbf
        K = fn(X, length_scale=gen.length_scale)
        ctx_cache[(gen.kind, float(gen.length_scale))] = K
        return K

    return kernel


def make_data(config: StudyConfig, trial: int) -> tuple[TrialContext, float]:
    """Trial ``trial``'s data (and its kernel cache). Returns ``(context, generator jitter)``."""
    rng = np.random.default_rng(trial_seed(config.study.seed, trial))
    data_cfg = config.data
    if data_cfg.dataset == "simulated":
        cache: dict = {}
        data, _, jitter = simulate(
            n=data_cfg.n,
            d=data_cfg.d,
            n_train=data_cfg.n_train,
            kernel=_generator_kernel(config, cache),
            noise=data_cfg.noise,
            rng=rng,
        )
        return TrialContext(data, cache), jitter
    data = real(data_cfg.dataset, n=data_cfg.n, n_train=data_cfg.n_train, rng=rng)
    return TrialContext(data), 0.0


def _kernel_method(method: MethodConfig, ctx: TrialContext, record: TrialRecord) -> None:
    start = time.perf_counter()
    arch = method.architecture() if method.depth is not None else None
    kind = "ntk" if method.kind == "ntk_time" else method.kind
    K = ctx.kernel(kind, arch, method.length_scale or 1.0)
    K_train, K_test = ctx.blocks(K)
    y_train, y_test = ctx.data.y_train, ctx.data.y_test
    if method.kind == "ntk_time":
        from .predict import gradient_descent_mse
        from .training import auto_lr

        lr = auto_lr(K_train) if method.lr == "auto" else float(method.lr)
        f_train, f_test = gradient_descent_mse(K_train, K_test, y_train, lr=lr, steps=method.epochs)
        record.add(method.name, "lr", lr)
        record.add(method.name, "train_rmse", _rmse(f_train, y_train))
        jitter = 0.0
    else:
        A = K_train + method.ridge * np.eye(K_train.shape[0]) if method.ridge else K_train
        alpha, jitter = cho_solve_jitter(A, y_train)
        f_test = K_test @ alpha
    seconds = time.perf_counter() - start  # includes the kernel if this method computed it
    record.add(method.name, "rmse", _rmse(f_test, y_test))
    record.add(method.name, "jitter", jitter)
    record.add(method.name, "fit_seconds", seconds)


def _network_method(
    method: MethodConfig,
    ctx: TrialContext,
    record: TrialRecord,
    *,
    study_seed: int,
    trial: int,
    device,
) -> None:
    from .training import auto_lr, train_ensemble

    start = time.perf_counter()
    arch = method.architecture()
    data = ctx.data
    X_train, y_train, X_test, y_test = data.X_train, data.y_train, data.X_test, data.y_test
    if method.lr == "auto":
        lr = auto_lr(ctx.blocks(ctx.kernel("ntk", arch))[0])
    else:
        lr = float(method.lr)
    seed = network_seed(study_seed, trial, method.name)
    (result,) = train_ensemble(
        arch,
        method.width,
        X_train,
        y_train,
        seeds=[seed],
        lr=lr,
        epochs=method.epochs,
        batch_size=method.batch_size,
        record_every=method.record_every,
        X_test=X_test,
        y_test=y_test,
        centered=method.centered,
        device=device,
    )
    name = method.name
    diverged = bool(result.diverged)
    record.add(name, "lr", float(result.lr))
    record.add(name, "diverged", float(diverged))
    if diverged:
        record.add(name, "diverged_epoch", float(result.diverged_epoch))
    train_pred = result.predict(X_train)
    test_pred = result.predict(X_test)
    record.add(name, "rmse", _rmse(test_pred, y_test))
    record.add(name, "train_rmse", _rmse(train_pred, y_train))
    epochs = np.asarray(result.epochs)
    record_curve(record, name, "curve_train_loss", epochs, result.train_loss)
    if result.test_rmse is not None:
        record_curve(record, name, "curve_test_rmse", epochs, result.test_rmse)
    record.add(name, "fit_seconds", time.perf_counter() - start)
    if method.equivalence and not diverged:
        from .equivalence import equivalence_metrics

        eq = equivalence_metrics(
            result,
            arch,
            X_train,
            y_train,
            X_test,
            y_test,
            max_kernel_points=method.max_kernel_points,
            seed=seed,
        )
        for metric, value in eq.metrics.items():
            if metric in ("rmse", "train_rmse"):
                continue  # the network's own, recorded above
            record.add(name, metric, float(value))
        for metric, (steps, values) in eq.curves.items():
            if metric in ("curve_train_loss", "curve_test_rmse"):
                continue
            record_curve(record, name, metric, np.asarray(steps), np.asarray(values))


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

    Returns
    -------
    TrialRecord
        ``status="done"`` with one row per (method, metric[, step]); a method that raises
        adds an entry to ``errors`` and the trial goes on. If the data cannot be made the
        record has ``status="failed"`` and the error (retried on resume).
    """
    if not isinstance(config, StudyConfig):
        config = StudyConfig.model_validate(config)
    study_seed = config.study.seed
    ss = trial_seed(study_seed, trial)
    record = TrialRecord(
        point=point,
        trial=trial,
        seed=f"SeedSequence(entropy={ss.entropy}, spawn_key={tuple(ss.spawn_key)})",
    )
    start = time.perf_counter()
    try:
        ctx, _ = make_data(config, trial)  # (generator jitter: 0 for every preset's data)
        for method in methods_due(config, trial, methods):
            if on_method is not None:
                on_method(method.name)
            try:
                if method.kind == "network":
                    _network_method(
                        method, ctx, record, study_seed=study_seed, trial=trial, device=device
                    )
                else:
                    _kernel_method(method, ctx, record)
            except Exception as exc:  # a failing method must not lose the trial
                record.rows = [r for r in record.rows if r[0] != method.name]
                record.errors.append((method.name, _one_line(exc)))
    except Exception as exc:
        record.status = "failed"
        record.error = _one_line(exc) + " | " + _where(exc)
    record.wall_time = time.perf_counter() - start
    return record


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500]


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"
