r"""Data of one trial: inputs on the unit sphere and targets from a kernel's Gaussian process.

SPEC §4: :math:`X` has :math:`n` rows of :math:`d` standard normal entries, each rescaled to
unit norm (SPEC §6, the seed's released scripts: entries i.i.d. Uniform(−5, 7) instead, then
each row rescaled to unit norm; see :func:`sphere`); :math:`y \sim \mathcal N(0, K)` with :math:`K` the generating kernel on all rows
(plus optional i.i.d. noise :math:`\mathcal N(0, \sigma^2)`); a random split into train and
test. The real data set (scikit-learn's diabetes) is standardized column by column, each row
projected onto the unit sphere, and the target standardized.

All randomness comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._validation import check_float, check_int, check_matrix
from .linalg import MAX_RELATIVE_JITTER, SingularKernelError, cholesky_jitter

__all__ = [
    "Dataset",
    "DATASETS",
    "project_to_sphere",
    "sphere",
    "INPUTS",
    "SEED_BOUNDS",
    "gp_sample",
    "split",
    "load_dataset",
    "load_raw",
    "standardize",
    "n_test_from_fraction",
    "fit_rows",
    "TASKS",
    "cv_split",
    "real_cv",
    "check_target",
]

#: Real data sets accepted by ``data.dataset`` and their number of rows. All ship inside
#: scikit-learn (``sklearn.datasets.load_*``): nothing is downloaded.
DATASETS = {
    "diabetes": 442,
    "linnerud": 20,
    "digits": 1797,
    "breast_cancer": 569,
    "wine": 178,
    "iris": 150,
}
#: The task of each real data set: a real target, or class labels (``Dataset.classes``).
TASKS = {
    "diabetes": "regression",
    "linnerud": "regression",
    "digits": "classification",
    "breast_cancer": "classification",
    "wine": "classification",
    "iris": "classification",
}


@dataclass(frozen=True)
class Dataset:
    """One trial's data: all rows, and the train/test split as index arrays.

    Attributes
    ----------
    X : ndarray (n, d), float64
    y : ndarray (n,), float64
    train, test : ndarray of int
        Row indices of the training and test sets (disjoint, covering all rows).
    classes : int
        0 for a real-valued target; else the number of classes, and ``y`` holds the labels
        0, 1, ..., classes - 1 (as floats).
    X_features : ndarray (n, d) or None
        Real data: the rows standardized on the training rows but not projected onto the
        sphere, for methods that split on one feature at a time (trees); ``None``: ``X``.
    """

    X: np.ndarray
    y: np.ndarray
    train: np.ndarray
    test: np.ndarray
    classes: int = 0
    X_features: np.ndarray | None = None

    @property
    def X_train(self) -> np.ndarray:
        return self.X[self.train]

    @property
    def X_test(self) -> np.ndarray:
        return self.X[self.test]

    @property
    def y_train(self) -> np.ndarray:
        return self.y[self.train]

    @property
    def y_test(self) -> np.ndarray:
        return self.y[self.test]


def project_to_sphere(X) -> np.ndarray:
    """Rows of ``X`` rescaled to unit Euclidean norm (a new float64 array).

    Raises a ``ValueError`` naming the row if one is zero (it has no direction).
    """
    return _unit_rows(check_matrix(X, "X"))


def _unit_rows(X: np.ndarray) -> np.ndarray:
    """:func:`project_to_sphere` of a float64 matrix that is already valid (checks no more)."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        raise ValueError(f"X row {zero[0]} is zero and cannot be projected onto the unit sphere")
    return X / norms


#: Distributions of the raw input entries accepted by :func:`sphere` (``data.inputs``).
INPUTS = ("normal", "uniform")


#: The seed's input distribution: entries Uniform(-5, 7) (SPEC §6), for ``inputs="uniform"``.
SEED_BOUNDS: tuple[float, float] = (-5.0, 7.0)


def sphere(
    n: int,
    d: int,
    rng: np.random.Generator,
    *,
    inputs: str = "normal",
    bounds: tuple[float, float] = SEED_BOUNDS,
) -> np.ndarray:
    r"""``n`` rows of ``d`` i.i.d. entries, each row rescaled to unit Euclidean norm.

    Parameters
    ----------
    n, d : int
    rng : numpy.random.Generator
    inputs : {"normal", "uniform"}
        ``"normal"``: standard normal entries, so the rows are uniform on the unit sphere
        :math:`S^{d-1}` (SPEC §4). ``"uniform"``: entries :math:`\mathcal U(a, b)` with
        ``bounds = (a, b)``; the seed's released scripts use :math:`\mathcal U(-5, 7)`
        (SPEC §6), whose mean 1 concentrates the rows around the diagonal direction (mean
        pairwise cosine about 1/13 in d = 15) instead of spreading them over the sphere.
    bounds : (float, float)
        :math:`(a, b)` with :math:`a < b`, for ``inputs="uniform"`` only.
    """
    n = check_int(n, "n")
    d = check_int(d, "d")
    if inputs == "normal":
        return _unit_rows(rng.standard_normal((n, d)))
    if inputs != "uniform":
        raise ValueError(f"inputs must be one of {', '.join(INPUTS)}; got {inputs!r}")
    low, high = (check_float(b, "bounds", minimum=-np.inf) for b in bounds)
    if not low < high:
        raise ValueError(f"bounds = ({low:g}, {high:g}): the low bound must be below the high one")
    return _unit_rows(rng.uniform(low, high, size=(n, d)))


def gp_sample(K: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    r"""One draw :math:`y = L z \sim \mathcal N(0, K)` with :math:`K + \epsilon I = L L^\top`.

    The Cholesky factor is computed with the smallest jitter :math:`\epsilon` that makes it
    succeed, at most :math:`10^{-6}` × the mean diagonal of ``K``, with a ``RuntimeWarning``
    when it is not 0 (:func:`ntklab.linalg.cholesky_jitter`). Returns ``(y, jitter)``.

    Raises
    ------
    ntklab.linalg.SingularKernelError
        If ``K`` needs more jitter than that (a ``numpy.linalg.LinAlgError``).
    """
    z = rng.standard_normal(np.shape(K)[0])
    try:
        L, jitter = cholesky_jitter(K)
    except SingularKernelError as exc:
        if not np.all(np.isfinite(K)):
            raise
        raise SingularKernelError(
            f"the generating kernel matrix is not positive semi-definite even with jitter "
            f"{exc.jitter:.3g} ({MAX_RELATIVE_JITTER:g} × its mean diagonal, the most it adds); "
            "check data.generator (duplicated input rows make it singular)",
            jitter=exc.jitter,
            scale=exc.scale,
        ) from None
    return L @ z, jitter


def split(n: int, n_train: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random permutation of ``range(n)`` cut into ``n_train`` training and the rest test rows."""
    n = check_int(n, "n")
    n_train = check_int(n_train, "n_train")
    if n_train >= n:
        raise ValueError(f"n_train = {n_train} must be smaller than n = {n}")
    perm = rng.permutation(n)
    return np.sort(perm[:n_train]), np.sort(perm[n_train:])


def load_raw(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A real data set as scikit-learn ships it: float64 features, and the target as float64
    values (regression) or class labels 0, 1, ... (floats).

    ``linnerud`` has three targets (weight, waist, pulse); its first, weight, is used.
    """
    if name not in DATASETS:
        raise ValueError(
            f"dataset must be one of {', '.join(DATASETS)} (data sets that ship inside "
            f"scikit-learn, nothing is downloaded); got {name!r}"
        )
    from sklearn import datasets

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    if y.ndim == 2:  # linnerud: weight, waist, pulse
        y = y[:, 0]
    y = np.asarray(y, dtype=np.float64)
    if TASKS[name] == "classification":
        y = np.unique(y, return_inverse=True)[1].astype(np.float64)
    return np.asarray(X, dtype=np.float64), check_target(y, name)


def standardize(
    X: np.ndarray, y: np.ndarray, train: np.ndarray, *, regression: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Preprocessing fitted on the rows ``train`` only and applied to every row.

    Feature columns constant on the training rows are dropped; the others are centred and
    scaled by the training rows' mean and standard deviation. A regression target is
    standardized the same way (class labels are left alone).

    Returns
    -------
    X : ndarray (n, d')
        The standardized rows projected onto the unit sphere (kernels, GPs, networks).
    features : ndarray (n, d')
        The standardized rows, not projected (trees).
    y : ndarray (n,)
    """
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    keep = std > 0
    features = (X[:, keep] - mean[keep]) / std[keep]
    if regression:
        y = (y - y[train].mean()) / y[train].std()
    return _unit_rows(features), features, y


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A real data set standardized on all its rows (:func:`standardize`), each row projected
    onto the unit sphere: for looking at a data set. A trial (:func:`real`, :func:`real_cv`)
    standardizes on its training rows only.
    """
    X, y = load_raw(name)
    X, _, y = standardize(X, y, np.arange(X.shape[0]), regression=TASKS[name] == "regression")
    return X, y


def check_target(y, name: str = "y") -> np.ndarray:
    """``y`` as a finite float64 vector, or a ``ValueError`` naming the first bad row."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"{name}: the target must be one value per row (1-D); got shape {y.shape}")
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise ValueError(
            f"{name}: the target has {bad.size} NaN or infinite value(s), the first at row "
            f"{bad[0]}; drop or impute those rows"
        )
    return y


def simulate(
    *,
    n: int,
    d: int,
    n_train: int,
    kernel: Callable[[np.ndarray], np.ndarray],
    noise: float,
    rng: np.random.Generator,
    inputs: str = "normal",
    bounds: tuple[float, float] = SEED_BOUNDS,
) -> tuple[Dataset, np.ndarray, float]:
    """Simulate one trial (SPEC §4; SPEC §6 with ``inputs="uniform"``).

    Parameters
    ----------
    inputs, bounds
        The distribution of the raw input entries (:func:`sphere`).
    kernel : callable
        ``kernel(X) -> K`` (n, n), the generating kernel on all rows.
    noise : float
        Standard deviation of i.i.d. Gaussian noise added to ``y`` (0: none).
    rng : numpy.random.Generator

    Returns
    -------
    data : Dataset
    K : ndarray (n, n)
        The generating kernel matrix (for reuse by a method with the same kernel).
    jitter : float
        Jitter needed by the Cholesky factor of ``K``.
    """
    noise = check_float(noise, "noise")
    X = sphere(n, d, rng, inputs=inputs, bounds=bounds)
    K = np.asarray(kernel(X), dtype=np.float64)
    y, jitter = gp_sample(K, rng)
    if noise:
        y = y + noise * rng.standard_normal(n)
    train, test = split(n, n_train, rng)
    return Dataset(X, y, train, test), K, jitter


def real(name: str, *, n: int | None, n_train: int, rng: np.random.Generator) -> Dataset:
    """Rows of a real data set (a random subset of ``n`` rows if given) and a random split,
    standardized on the training rows only (:func:`standardize`)."""
    X, y = load_raw(name)
    if n is not None and n < X.shape[0]:
        rows = np.sort(rng.choice(X.shape[0], size=n, replace=False))
        X, y = X[rows], y[rows]
    train, test = split(X.shape[0], n_train, rng)
    return _trial_data(name, X, y, train, test)


def _trial_data(name: str, X, y, train: np.ndarray, test: np.ndarray) -> Dataset:
    """The :class:`Dataset` of one split of raw rows, standardized on ``train`` only."""
    classes = int(y.max()) + 1 if TASKS[name] == "classification" else 0
    X, features, y = standardize(X, y, train, regression=not classes)
    return Dataset(X, y, train, test, classes, features)


def cv_split(
    n: int, folds: int, fold: int, seed: int, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``fold`` of a shuffled k-fold split of ``n`` rows: ``(train, test)`` row indices.

    The split depends only on ``seed`` (one per repeat), so every method and every fold of a
    repeat sees the same partition. With ``labels`` the folds are stratified (each keeps the
    class proportions; scikit-learn's ``StratifiedKFold``), else ``KFold``.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    folds = check_int(folds, "folds", minimum=2)
    if n < folds:
        raise ValueError(
            f"data.folds = {folds} but the data have only {n} rows; use at most {n} folds"
        )
    if labels is not None:
        counts = np.bincount(labels.astype(int))
        if counts.min() < folds:
            labels = None  # a class too small to stratify: plain k-fold
    splitter = (StratifiedKFold if labels is not None else KFold)(
        folds, shuffle=True, random_state=int(seed)
    )
    train, test = list(splitter.split(np.zeros(n), labels))[fold]
    return np.sort(train), np.sort(test)


def real_cv(
    name: str, *, n: int | None, folds: int, trial: int, seed: np.random.SeedSequence
) -> Dataset:
    """Trial ``trial`` of repeated k-fold cross-validation on a real data set.

    Trial ``t`` is fold ``t % folds`` of repeat ``t // folds``. The repeat's randomness
    (``SeedSequence(seed.entropy, spawn_key=(repeat, 2))``) picks the subset of ``n`` rows (if
    ``n`` is given and smaller than the data set) and the folds, so all folds of a repeat
    partition the same rows and every method sees the same folds. The rows are standardized
    on the fold's training rows only (:func:`standardize`).
    """
    X, y = load_raw(name)
    repeat, fold = divmod(int(trial), int(folds))
    ss = np.random.SeedSequence(seed.entropy, spawn_key=(repeat, 2))
    rng = np.random.default_rng(ss)
    if n is not None and n < X.shape[0]:
        rows = np.sort(rng.choice(X.shape[0], size=n, replace=False))
        X, y = X[rows], y[rows]
    classes = int(y.max()) + 1 if TASKS[name] == "classification" else 0
    fold_seed = int(rng.integers(2**31 - 1))
    train, test = cv_split(X.shape[0], folds, fold, fold_seed, y if classes else None)
    return _trial_data(name, X, y, train, test)


def n_test_from_fraction(n: int, test_fraction: float) -> int:
    r"""Test rows for a test fraction: :math:`\lceil f\,n \rceil` (scikit-learn's
    ``train_test_split`` rule; the seed's ``test_size=0.33`` on 1000 rows gives 330)."""
    return int(math.ceil(test_fraction * n - 1e-9))


def fit_rows(train: np.ndarray, holdout_fraction: float | None) -> np.ndarray:
    r"""The training rows a method fits when the last ``holdout_fraction`` are held out.

    Like Keras's ``validation_split`` (used by the seed's networks, SPEC §6), the *last*
    :math:`\lfloor h\,m \rfloor` rows of the training split are held out of fitting and the
    first :math:`m - \lfloor h\,m \rfloor` are fitted: 670 rows with :math:`h = 0.3` give the
    469 rows SPEC §6 states. (The floor is taken up to round-off, so ``0.3 * 670`` counts as
    201. Keras computes the split point as :math:`\lfloor m (1 - h) \rfloor` in floating
    point, which can give one row fewer, 468 here; SPEC §6 states 469, which this follows.)

    Parameters
    ----------
    train : ndarray of int
        The training rows, in the order a network would receive them.
    holdout_fraction : float or None
        :math:`h \in [0, 1)`; ``None`` or 0 fits every training row.
    """
    if not holdout_fraction:
        return train
    held = int(math.floor(holdout_fraction * train.shape[0] + 1e-9))
    return train[: train.shape[0] - held]
