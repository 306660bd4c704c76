"""A trial's data and randomness: its seeds, its data set and the kernels its methods share.

Trial ``t`` of a study with seed ``s`` draws its data from
``numpy.random.SeedSequence(s, spawn_key=(t,))`` (:func:`trial_seed`) and the network of
method ``M`` from ``SeedSequence(s, spawn_key=(t, 1, crc32(M)))`` (:func:`network_seed`);
:func:`make_data` makes the trial's :class:`TrialContext`, which computes each kernel once
on all n rows (and its eigendecomposition and auto learning rate once per fitted rows) for
every method that uses it; :func:`methods_due` says which methods the trial runs.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from ..config import KernelSpec, MethodConfig, StudyConfig
from ..data import SEED_BOUNDS, Dataset, fit_rows, real, real_cv, simulate
from ..kernels import laplacian, rbf

__all__ = ["trial_seed", "network_seed", "TrialContext", "make_data", "methods_due"]


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
        from ..training import auto_lr

        key = ("auto_lr", _cache_key(spec), holdout_fraction)
        if key not in self.spectra:
            self.spectra[key] = auto_lr(
                self.blocks(self.kernel(spec), holdout_fraction)[0], check_input=False
            )
        return self.spectra[key]


def _compute(key: tuple, X: np.ndarray, published: tuple) -> dict:
    """The kernel matrices of ``key`` on all rows (and those computed in the same pass).

    ``X`` is the trial's own data (made by :mod:`ntklab.data`), so the kernels are computed
    with ``check_input=False`` (:mod:`ntklab._validation`: validate once, at the boundary)."""
    kind = key[0]
    if kind in ("ntk", "nngp"):
        nngp, ntk = key[1].kernels(X, check_input=False)
        return {("nngp", key[1]): nngp, ("ntk", key[1]): ntk}
    if kind == "published":
        from ..published import published_kernels

        wanted = key[1]
        group = [k for k in published if k.normalization == wanted.normalization] or [wanted]
        group = [k for k in group if k.name != "K1" or k == wanted]  # K1: own constants
        mats = published_kernels(
            X, normalization=wanted.normalization, names=[k.name for k in group], check_input=False,
            **({"amplitude": wanted.amplitude, "length_scale": wanted.length_scale}
               if wanted.name == "K1" else {}),
        )  # fmt: skip
        return {("published", k): mats[k.name] for k in group}
    fn = laplacian if kind == "laplacian" else rbf
    return {key: fn(X, length_scale=key[1], check_input=False)}


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
