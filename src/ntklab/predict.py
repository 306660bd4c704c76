r"""Predictors: kernel (ridge) regression, and the NTK prediction at a finite training time.

Kernel ridge regression (the seed's eq. 5; SPEC §3):

.. math:: \hat f(x_*) = k(x_*, X)\,(K + \lambda I)^{-1} y,

solved by Cholesky factorization, never by an explicit inverse.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import scipy.linalg
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from ._validation import check_float, check_matrix, check_vector

__all__ = ["KernelRegressor", "cho_solve_jitter"]


def cho_solve_jitter(K: np.ndarray, B: np.ndarray, *, max_tries: int = 12) -> tuple[np.ndarray, float]:
    """Solve ``K A = B`` for symmetric PSD ``K`` by Cholesky, adding jitter only if needed.

    The jitter starts at ``1e-12 · mean(diag K)`` and grows by 10 until the factorization
    succeeds; the smallest successful value is returned (0.0 when none was needed).

    Returns
    -------
    A : ndarray
    jitter : float
        The value added to the diagonal.
    """
    K = np.asarray(K, dtype=np.float64)
    scale = float(np.mean(np.diag(K))) if K.size else 1.0
    scale = scale if np.isfinite(scale) and scale > 0 else 1.0
    jitter = 0.0
    for attempt in range(max_tries + 1):
        try:
            Kj = K if jitter == 0.0 else K + jitter * np.eye(K.shape[0])
            factor = scipy.linalg.cho_factor(Kj, lower=True, check_finite=False)
            # cho_factor does not always fail on numerically singular matrices: check pivots.
            diag = np.diag(factor[0])
            if np.all(diag > 0) and np.min(diag) ** 2 > 1e-14 * scale:
                return scipy.linalg.cho_solve(factor, B, check_finite=False), jitter
        except np.linalg.LinAlgError:
            pass
        jitter = scale * 10.0 ** (-12 + attempt)
    raise np.linalg.LinAlgError(
        f"the kernel matrix is not positive definite even with jitter {jitter:.3g}; "
        "check the kernel for NaN or a non-PSD construction"
    )


class KernelRegressor(RegressorMixin, BaseEstimator):
    r"""Kernel ridge regression with any ntklab kernel or callable ``k(X, Z)``.

    .. math:: \hat f(x_*) = k(x_*, X)\,(K + \lambda I)^{-1} y

    Parameters
    ----------
    kernel : callable
        ``kernel(X, Z) -> ndarray (len(X), len(Z))``, e.g. ``Architecture(1).ntk`` or
        :func:`ntklab.kernels.laplacian`.
    ridge : float, default 0.0
        :math:`\lambda \ge 0`. With 0 the predictor interpolates the training data (the NTK
        limit of gradient descent, SPEC §3).

    Attributes
    ----------
    X_fit_ : ndarray (m, d)
        A copy of the training inputs.
    dual_coef_ : ndarray (m,)
        :math:`(K + \lambda I)^{-1} y`.
    jitter_ : float
        Diagonal jitter that was needed for the Cholesky factorization (0.0 if none).
    n_features_in_ : int

    References
    ----------
    Welling, M. (2013). Kernel ridge regression. Class notes.
    Arora, S. et al. (2019). On exact computation with an infinitely wide neural net.
    """

    def __init__(self, kernel: Callable | None = None, ridge: float = 0.0):
        self.kernel = kernel
        self.ridge = ridge

    def _kernel(self, X, Z=None) -> np.ndarray:
        if self.kernel is None or not callable(self.kernel):
            raise ValueError(
                "kernel must be a callable k(X, Z), e.g. ntklab.Architecture(1).ntk; "
                f"got {self.kernel!r}"
            )
        return np.asarray(self.kernel(X, Z) if Z is not None else self.kernel(X), dtype=np.float64)

    def fit(self, X, y):
        """Fit on training inputs ``X`` (m, d) and targets ``y`` (m,)."""
        ridge = check_float(self.ridge, "ridge")
        X = check_matrix(X, "X").copy()
        y = check_vector(y, "y", length=X.shape[0])
        K = self._kernel(X)
        if ridge:
            K = K + ridge * np.eye(K.shape[0])
        self.dual_coef_, self.jitter_ = cho_solve_jitter(K, y)
        if self.jitter_:
            warnings.warn(
                f"kernel matrix was numerically singular; added jitter {self.jitter_:.3g} to its diagonal",
                RuntimeWarning,
                stacklevel=2,
            )
        self.X_fit_ = X
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X) -> np.ndarray:
        """Predict at ``X`` (n, d): ``k(X, X_fit_) @ dual_coef_``."""
        check_is_fitted(self, "dual_coef_")
        X = check_matrix(X, "X", n_features=self.n_features_in_)
        return self._kernel(X, self.X_fit_) @ self.dual_coef_
