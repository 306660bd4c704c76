r"""The linear algebra of ntklab: jittered Cholesky factorizations and solves.

One small module with no ntklab imports, so that every other module (data, architecture,
predict, regressor, study) can use it without importing each other.

* :func:`cholesky_jitter`: the lower Cholesky factor of a symmetric PSD kernel matrix with
  the smallest diagonal jitter that works (at most :data:`MAX_RELATIVE_JITTER` × its mean
  diagonal, else :class:`SingularKernelError`);
* :func:`cho_solve_jitter` and :func:`kernel_ridge_coef`: solves by that factor, never by an
  explicit inverse;
* :func:`symmetrize`: make a square block exactly symmetric in place.

Every function here trusts its input (float64 arrays of the right shapes, see
:mod:`ntklab._validation`): the public functions that call them have already checked it.
``ntklab.predict`` re-exports the names that were public there.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

__all__ = [
    "MAX_RELATIVE_JITTER",
    "FIRST_RELATIVE_JITTER",
    "SingularKernelError",
    "cholesky_jitter",
    "cho_solve_jitter",
    "kernel_ridge_coef",
    "symmetrize",
]

#: The most jitter :func:`cholesky_jitter` adds, relative to the mean diagonal of the matrix
#: (GPyTorch's ``psd_safe_cholesky`` stops at a comparable 1e-6; beyond it the solve would no
#: longer be the interpolating kernel regression it stands for).
MAX_RELATIVE_JITTER = 1e-6

#: The first nonzero jitter tried, relative to the mean diagonal; each next try is 10× larger.
FIRST_RELATIVE_JITTER = 1e-12


class SingularKernelError(np.linalg.LinAlgError):
    """A kernel matrix that cannot be Cholesky-factored with at most
    :data:`MAX_RELATIVE_JITTER` × its mean diagonal of jitter.

    A :class:`numpy.linalg.LinAlgError` (hence also a :class:`ValueError`).

    Attributes
    ----------
    jitter : float
        The last (largest) jitter tried.
    scale : float
        The mean diagonal of the matrix (1.0 if it is not a positive finite number).
    """

    def __init__(self, message: str, *, jitter: float = np.nan, scale: float = np.nan):
        super().__init__(message)
        self.jitter = jitter
        self.scale = scale


def cholesky_jitter(K: np.ndarray) -> tuple[np.ndarray, float]:
    """Lower Cholesky factor ``L`` of ``K + jitter·I`` with the smallest jitter that works.

    The jitter is 0, then ``1e-12 · mean(diag K)`` growing by 10 per try up to
    ``1e-6 · mean(diag K)`` (:data:`MAX_RELATIVE_JITTER`), as GPyTorch's
    ``psd_safe_cholesky`` does. A factorization counts as successful only if every pivot
    satisfies ``L_ii^2 > 1e-14 · mean(diag K)`` (LAPACK does not always fail on numerically
    singular matrices). Adding any jitter issues a :class:`RuntimeWarning` that states it.

    Parameters
    ----------
    K : ndarray (m, m)
        Symmetric positive semi-definite, float64 (not modified).

    Returns
    -------
    L : ndarray, lower triangular
    jitter : float
        The value added to the diagonal (0.0 when none was needed).

    Raises
    ------
    SingularKernelError
        If even ``1e-6 · mean(diag K)`` of jitter does not give a factorization: the matrix
        is numerically singular (or not positive semi-definite, or not finite); the message
        states the last jitter tried and suggests a ridge.
    """
    K = np.asarray(K, dtype=np.float64)
    mean_diag = float(np.mean(np.diag(K))) if K.size else 1.0
    scale = mean_diag if np.isfinite(mean_diag) and mean_diag > 0 else 1.0
    steps = round(np.log10(MAX_RELATIVE_JITTER / FIRST_RELATIVE_JITTER))
    tries = [0.0] + [scale * MAX_RELATIVE_JITTER / 10.0**k for k in range(steps, -1, -1)]
    for jitter in tries:
        try:
            Kj = K if jitter == 0.0 else K + jitter * np.eye(K.shape[0])
            L = scipy.linalg.cholesky(Kj, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            continue
        diag = np.diag(L)
        if np.all(np.isfinite(L)) and np.all(diag > 0) and np.min(diag) ** 2 > 1e-14 * scale:
            if jitter:
                warnings.warn(
                    f"kernel matrix is nearly singular: added jitter {jitter:.3g} "
                    f"({jitter / scale:.0e} × its mean diagonal {scale:.4g}) to its diagonal",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return L, jitter
    if not np.all(np.isfinite(K)):
        why = "has NaN or infinite entries; check the kernel and its inputs"
    elif mean_diag <= 0:
        why = f"is not positive semi-definite (its mean diagonal is {mean_diag:.4g})"
    else:
        ridge = f"{10 * jitter:.0e}".replace("e-0", "e-").replace("e+0", "e")
        why = (
            f"is numerically singular (or not positive semi-definite): its Cholesky "
            f"factorization failed even with jitter {jitter:.3g} on its diagonal "
            f"({MAX_RELATIVE_JITTER:g} × its mean diagonal {scale:.4g}, the most it adds); use "
            f"a ridge above that, e.g. KernelRegressor(alpha={ridge}) or ridge = {ridge} in "
            "the config"
        )
    raise SingularKernelError(f"kernel matrix {why}", jitter=jitter, scale=scale)


def cho_solve_jitter(K: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, float]:
    """Solve ``K A = B`` for symmetric PSD ``K`` by Cholesky, adding jitter only if needed.

    See :func:`cholesky_jitter` for the jitter rule, its warning and its error.

    Parameters
    ----------
    K : ndarray (m, m)
        Symmetric PSD, float64.
    B : ndarray (m,) or (m, k)

    Returns
    -------
    A : ndarray, shaped like ``B``
    jitter : float
        The value added to the diagonal.
    """
    L, jitter = cholesky_jitter(K)
    return scipy.linalg.cho_solve((L, True), B, check_finite=False), jitter


def kernel_ridge_coef(K_train, y, ridge: float = 0.0) -> tuple[np.ndarray, float]:
    r"""The dual coefficients :math:`\alpha = (K + \lambda I)^{-1} y`, by Cholesky.

    Parameters
    ----------
    K_train : ndarray (m, m)
        The kernel on the training inputs, symmetric PSD, float64 (not modified: the ridge
        is added to a copy).
    y : ndarray (m,) or (m, k)
    ridge : float, default 0.0
        :math:`\lambda \ge 0`.

    Returns
    -------
    alpha : ndarray (m,) or (m, k)
    jitter : float
        The diagonal jitter the factorization needed (:func:`cho_solve_jitter`).
    """
    A = K_train + ridge * np.eye(K_train.shape[0]) if ridge else K_train
    return cho_solve_jitter(A, y)


def symmetrize(K: np.ndarray) -> None:
    """Make the square block ``K`` exactly symmetric in place: ``K <- (K + K.T) / 2``.

    Two products that are equal in exact arithmetic (``x·z`` and ``z·x``) can round
    differently; kernels on ``(X, X)`` are symmetrized so that they are symmetric to the bit.

    Parameters
    ----------
    K : ndarray (m, m), float64
        Modified in place (a view into a larger matrix is fine).
    """
    K += K.T
    K *= 0.5
