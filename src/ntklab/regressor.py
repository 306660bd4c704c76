r"""``KernelRegressor``: kernel ridge regression as a scikit-learn estimator.

A module of its own so that ``import ntklab`` and :mod:`ntklab.predict` do not import
scikit-learn; ``ntklab.KernelRegressor`` and ``ntklab.predict.KernelRegressor`` import it on
first use.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from ._validation import check_float
from .linalg import kernel_ridge_coef

__all__ = ["KernelRegressor"]


class KernelRegressor(RegressorMixin, BaseEstimator):
    r"""Kernel ridge regression with any ntklab kernel or callable ``k(X, Z)``.

    .. math:: \hat f(x_*) = k(x_*, X)\,(K + \alpha I)^{-1} y

    The parameters follow scikit-learn's ``KernelRidge`` (``alpha`` is its ridge), but the
    default ``alpha`` is 0: kernel regression that interpolates the training data.

    Parameters
    ----------
    kernel : callable
        ``kernel(X, Z) -> ndarray (len(X), len(Z))``, e.g. ``Architecture(1).ntk`` or
        :func:`ntklab.kernels.laplacian`.
    alpha : float, default 0.0
        The ridge :math:`\alpha \ge 0` (the λ of SPEC §3 and of the config key ``ridge``).
        With 0 the predictor interpolates the training data (the NTK limit of gradient
        descent, SPEC §3).
    ridge : float, optional
        Deprecated alias of ``alpha`` (a ``FutureWarning`` when fitted). Passing it with an
        ``alpha`` other than the default 0 and a different value is an error.

    Attributes
    ----------
    X_fit_ : ndarray (m, d)
        A copy of the training inputs.
    dual_coef_ : ndarray (m,) or (m, k)
        :math:`(K + \alpha I)^{-1} y` (one column per column of ``y``).
    jitter_ : float
        Diagonal jitter that was needed for the Cholesky factorization (0.0 if none; at
        most 1e-6 × the mean diagonal, with a ``RuntimeWarning``; beyond it ``fit`` raises
        :class:`ntklab.linalg.SingularKernelError`, see
        :func:`ntklab.linalg.cholesky_jitter`).
    n_features_in_ : int

    References
    ----------
    Welling, M. (2013). Kernel ridge regression. Class notes.
    Arora, S. et al. (2019). On exact computation with an infinitely wide neural net.
    """

    def __init__(
        self, kernel: Callable | None = None, alpha: float = 0.0, ridge: float | str = "deprecated"
    ):
        self.kernel = kernel
        self.alpha = alpha
        self.ridge = ridge

    def _alpha(self) -> float:
        """The ridge to use: ``alpha``, or the deprecated ``ridge`` when it is given."""
        alpha = check_float(self.alpha, "alpha")
        if isinstance(self.ridge, str) and self.ridge == "deprecated":
            return alpha
        ridge = check_float(self.ridge, "ridge")
        if alpha != 0.0 and alpha != ridge:
            raise ValueError(
                f"KernelRegressor got alpha={alpha:g} and ridge={ridge:g}; ridge is a "
                "deprecated alias of alpha: pass alpha only"
            )
        warnings.warn(
            "KernelRegressor(ridge=...) is deprecated; use alpha=... (as scikit-learn's "
            "KernelRidge does)",
            FutureWarning,
            stacklevel=3,
        )
        return ridge

    def _kernel(self, X, Z=None) -> np.ndarray:
        if self.kernel is None or not callable(self.kernel):
            raise ValueError(
                "kernel must be a callable k(X, Z), e.g. ntklab.Architecture(1).ntk; "
                f"got {self.kernel!r}"
            )
        K = np.asarray(self.kernel(X, Z) if Z is not None else self.kernel(X), dtype=np.float64)
        shape = (X.shape[0], X.shape[0] if Z is None else Z.shape[0])
        if K.shape != shape:
            raise ValueError(f"kernel(X, Z) must return shape {shape}; got {K.shape}")
        if not np.all(np.isfinite(K)):
            raise ValueError("kernel returned NaN or infinite values; check the kernel and X")
        return K

    def fit(self, X, y):
        """Fit on training inputs ``X`` (m, d) and targets ``y`` (m,) or (m, k).

        The inputs are copied (never modified); ``y`` may have several columns (one
        regression per column, sharing one Cholesky factorization).

        Raises
        ------
        ntklab.linalg.SingularKernelError
            If ``K + alpha I`` is numerically singular (a ``LinAlgError``, hence a
            ``ValueError``): raise ``alpha``.
        """
        alpha = self._alpha()
        X, y = _validate_data(self, X, y, y_numeric=True, multi_output=True, dtype=np.float64)
        X = np.array(X, dtype=np.float64, copy=True)
        y = np.array(y, dtype=np.float64, copy=True)
        # the ridge goes on a copy (the kernel's output may be cached); warns on any jitter
        self.dual_coef_, self.jitter_ = kernel_ridge_coef(self._kernel(X), y, alpha)
        self.X_fit_ = X
        return self

    def predict(self, X) -> np.ndarray:
        """Predict at ``X`` (n, d): ``k(X, X_fit_) @ dual_coef_``."""
        check_is_fitted(self, "dual_coef_")
        X = _validate_data(self, X, reset=False, dtype=np.float64)
        return self._kernel(np.asarray(X, dtype=np.float64), self.X_fit_) @ self.dual_coef_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multioutput": True}


def _validate_data(estimator, *args, **kwargs):
    """scikit-learn's input validation (standard messages; sets ``n_features_in_``)."""
    try:
        from sklearn.utils.validation import validate_data
    except ImportError:  # scikit-learn < 1.6
        return estimator._validate_data(*args, **kwargs)
    return validate_data(estimator, *args, **kwargs)
