r"""Data of one trial: inputs on the unit sphere and targets from a kernel's Gaussian process.

SPEC §4: :math:`X` has :math:`n` rows of :math:`d` standard normal entries, each rescaled to
unit norm; :math:`y \sim \mathcal N(0, K)` with :math:`K` the generating kernel on all rows
(plus optional i.i.d. noise :math:`\mathcal N(0, \sigma^2)`); a random split into train and
test. The real data set (scikit-learn's diabetes) is standardized column by column, each row
projected onto the unit sphere, and the target standardized.

All randomness comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._validation import check_float, check_int, check_matrix
from .predict import cholesky_jitter

__all__ = [
    "Dataset",
    "DATASETS",
    "project_to_sphere",
    "sphere",
    "gp_sample",
    "split",
    "load_dataset",
]

#: Real data sets accepted by ``data.dataset`` and their number of rows.
DATASETS = {"diabetes": 442}


@dataclass(frozen=True)
class Dataset:
    """One trial's data: all rows, and the train/test split as index arrays.

    Attributes
    ----------
    X : ndarray (n, d), float64
    y : ndarray (n,), float64
    train, test : ndarray of int
        Row indices of the training and test sets (disjoint, covering all rows).
    """

    X: np.ndarray
    y: np.ndarray
    train: np.ndarray
    test: np.ndarray

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
    X = check_matrix(X, "X")
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        raise ValueError(f"X row {zero[0]} is zero and cannot be projected onto the unit sphere")
    return X / norms


def sphere(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    r"""``n`` points uniform on the unit sphere :math:`S^{d-1}`: normal rows rescaled to norm 1."""
    n = check_int(n, "n")
    d = check_int(d, "d")
    return project_to_sphere(rng.standard_normal((n, d)))


def gp_sample(K: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    r"""One draw :math:`y = L z \sim \mathcal N(0, K)` with :math:`K + \epsilon I = L L^\top`.

    The Cholesky factor is computed with the smallest jitter :math:`\epsilon` that makes it
    succeed (:func:`ntklab.predict.cholesky_jitter`). Returns ``(y, jitter)``.
    """
    z = rng.standard_normal(np.shape(K)[0])
    try:
        L, jitter = cholesky_jitter(K)
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError(
            "the generating kernel matrix is not positive semi-definite even with jitter; "
            "check data.generator"
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


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A real data set, standardized, rows projected onto the unit sphere, target standardized."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}; got {name!r}")
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X = project_to_sphere((X - X.mean(axis=0)) / X.std(axis=0))
    y = (y - y.mean()) / y.std()
    return X.astype(np.float64), y.astype(np.float64)


def simulate(
    *,
    n: int,
    d: int,
    n_train: int,
    kernel: Callable[[np.ndarray], np.ndarray],
    noise: float,
    rng: np.random.Generator,
) -> tuple[Dataset, np.ndarray, float]:
    """Simulate one trial (SPEC §4).

    Parameters
    ----------
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
    X = sphere(n, d, rng)
    K = np.asarray(kernel(X), dtype=np.float64)
    y, jitter = gp_sample(K, rng)
    if noise:
        y = y + noise * rng.standard_normal(n)
    train, test = split(n, n_train, rng)
    return Dataset(X, y, train, test), K, jitter


def real(name: str, *, n: int | None, n_train: int, rng: np.random.Generator) -> Dataset:
    """Rows of a real data set (a random subset of ``n`` rows if given) and a random split."""
    X, y = load_dataset(name)
    if n is not None and n < X.shape[0]:
        rows = np.sort(rng.choice(X.shape[0], size=n, replace=False))
        X, y = X[rows], y[rows]
    train, test = split(X.shape[0], n_train, rng)
    return Dataset(X, y, train, test)
