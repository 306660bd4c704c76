r"""Predictors: kernel (ridge) regression, and the NTK prediction at a finite training time.

Kernel ridge regression (the seed's eq. 5; SPEC §3):

.. math:: \hat f(x_*) = k(x_*, X)\,(K + \lambda I)^{-1} y,

solved by Cholesky factorization, never by an explicit inverse, with diagonal jitter only
when needed and at most 1e-6 × the mean diagonal (:func:`cholesky_jitter`; the linear
algebra lives in :mod:`ntklab.linalg`, and its public names are re-exported here). The scikit-learn
estimator :class:`KernelRegressor` lives in :mod:`ntklab.regressor` (so that this module does
not import scikit-learn); ``ntklab.predict.KernelRegressor`` still finds it.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from ._validation import check_float, check_matrix, check_vector
from .linalg import (
    MAX_RELATIVE_JITTER,
    SingularKernelError,
    cho_solve_jitter,
    cholesky_jitter,
    kernel_ridge_coef,
)

if TYPE_CHECKING:
    from .regressor import KernelRegressor  # imported on first use (module __getattr__ below)

__all__ = [
    "KernelRegressor",
    "MAX_RELATIVE_JITTER",
    "SingularKernelError",
    "cholesky_jitter",
    "cho_solve_jitter",
    "kernel_regression",
    "kernel_ridge_coef",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
    "AUTO_LR_FRACTION",
    "spectral_lr",
]


def __getattr__(name: str):
    # KernelRegressor lives in ntklab.regressor (it needs scikit-learn, imported on first use).
    if name == "KernelRegressor":
        from .regressor import KernelRegressor

        return KernelRegressor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---- kernel (ridge) regression on precomputed kernel matrices ----------------------------------


def kernel_regression(K_train, K_test_train, y, ridge: float = 0.0) -> tuple[np.ndarray, float]:
    r"""Kernel ridge regression on precomputed kernels (the seed's eq. 5; SPEC §3).

    .. math:: \hat f(X_*) = K(X_*, X)\,(K(X, X) + \lambda I)^{-1} y

    The one formula behind the kernel methods of a study and :class:`KernelRegressor`;
    the inputs are trusted (validate them at the public boundary).

    Parameters
    ----------
    K_train : ndarray (m, m)
        :math:`K(X, X)`, symmetric PSD, float64.
    K_test_train : ndarray (n, m)
        :math:`K(X_*, X)`.
    y : ndarray (m,) or (m, k)
    ridge : float, default 0.0
        :math:`\lambda \ge 0`; 0 interpolates the training data.

    Returns
    -------
    f_test : ndarray (n,) or (n, k)
    jitter : float
        The diagonal jitter the Cholesky factorization needed (0.0 if none).
    """
    alpha, jitter = kernel_ridge_coef(K_train, y, ridge)
    return K_test_train @ alpha, jitter


# ---- finite-time NTK prediction --------------------------------------------------


def _check_steps(steps) -> tuple[np.ndarray, bool]:
    """Return ``steps`` as a float64 1-D array of values >= 0 (``inf`` allowed) and a scalar flag."""
    try:
        arr = np.asarray(steps, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"steps must be a number >= 0, numpy.inf or an array of them; got {steps!r}"
        ) from None
    if arr.ndim > 1:
        raise ValueError(f"steps must be a scalar or a 1-D array; got shape {arr.shape}")
    if np.any(np.isnan(arr)) or np.any(arr < 0):
        raise ValueError(f"steps must be >= 0 (numpy.inf for the end of training); got {steps!r}")
    return np.atleast_1d(arr), arr.ndim == 0


def _check_square(K, name: str, m: int | None = None) -> np.ndarray:
    K = check_matrix(K, name)
    if K.shape[0] != K.shape[1]:
        raise ValueError(f"{name} must be a square (m, m) kernel matrix; got shape {K.shape}")
    if m is not None and K.shape[0] != m:
        raise ValueError(f"{name} has shape {K.shape} but y_train has {m} entries")
    return K


def _check_symmetric(K: np.ndarray, name: str, rtol: float = 1e-10) -> None:
    """Raise unless ``K`` is symmetric to ``rtol`` relative to its largest entry (an
    eigendecomposition of a non-symmetric matrix silently uses only one triangle)."""
    scale = float(np.max(np.abs(K))) if K.size else 0.0
    asym = float(np.max(np.abs(K - K.T))) if K.size else 0.0
    if asym > rtol * scale:
        raise ValueError(
            f"{name} must be symmetric (a kernel matrix Theta(X, X)); max |K - K.T| = "
            f"{asym:.3g} is {asym / scale:.3g} of max |K|; pass Theta(X, X) itself, or "
            f"symmetrize it with 0.5 * (K + K.T)"
        )


def _check_psd(lam: np.ndarray, name: str) -> None:
    r"""Raise unless the eigenvalues ``lam`` of a symmetric ``name`` are those of a kernel
    matrix: none below :math:`-m\,\epsilon_{32}\,\max_i |\lambda_i|` (:math:`\epsilon_{32}`
    the float32 machine epsilon, so that the round-off of a kernel built in float32, e.g.
    :math:`J J^\top` of float32 Jacobians, passes, while :math:`-\Theta` or a matrix with a
    clearly negative eigenvalue does not: gradient descent along such a mode grows without
    bound instead of converging)."""
    if lam.size == 0:
        return
    scale = float(np.max(np.abs(lam)))
    low = float(lam[0])
    if low < -lam.size * np.finfo(np.float32).eps * scale:
        raise ValueError(
            f"{name} must be positive semi-definite (a kernel matrix); its smallest eigenvalue "
            f"is {low:.3g} ({abs(low) / scale:.3g} of max |eigenvalue|, beyond round-off); "
            "pass Theta(X, X) itself (not its negative or a difference of kernels)"
        )


#: The fraction :math:`c` of the stability limit that the automatic learning rate takes
#: (:func:`ntklab.auto_lr`).
AUTO_LR_FRACTION = 0.5


def spectral_lr(m: int, lambda_max: float, c: float = AUTO_LR_FRACTION) -> float:
    r"""The learning rate :math:`c\, m / \lambda_{\max}(\Theta)`, ntklab's one formula for it.

    Full-batch gradient descent on :math:`\frac1m\sum_i (f(x_i) - y_i)^2` is stable for the
    linearized network while :math:`\eta < m / \lambda_{\max}(\Theta)` (SPEC §3): ``c = 1``
    is that critical rate, the default ``c`` the automatic one (:func:`ntklab.auto_lr`).
    ``m`` is the number of fitted rows and ``lambda_max > 0`` the top eigenvalue of the
    kernel on them; nothing is checked.
    """
    return c * m / lambda_max


def _gd_modes(ntk_train: np.ndarray, lr: float, steps: np.ndarray, eig=None):
    r"""Eigen-decomposition of Θ and the spectral factors of gradient descent.

    With :math:`a = 2\eta/m` and :math:`\Theta = V \operatorname{diag}(\lambda) V^\top`,
    returns ``V``, ``decay[s, i]`` :math:`= (1 - a\lambda_i)^{T_s}` and
    ``gain[s, i]`` :math:`= (1 - (1 - a\lambda_i)^{T_s}) / \lambda_i` (its limit
    :math:`a T_s` as :math:`\lambda_i \to 0`). Eigenvalues below
    ``m · eps · λ_max`` are treated as the null space of Θ, which gradient descent never
    moves along: decay 1 and gain :math:`a T` (0 at :math:`T = \infty`, a pseudo-inverse).
    ``eig``: a precomputed ``np.linalg.eigh(ntk_train)``.
    """
    m = ntk_train.shape[0]
    a = 2.0 * lr / m
    lam, V = np.linalg.eigh(ntk_train) if eig is None else eig
    lam_max = max(float(lam[-1]), 0.0)
    if a * lam_max >= 2.0:
        warnings.warn(
            f"lr={lr:.4g} is above the stability limit m / lambda_max = "
            f"{spectral_lr(m, lam_max, 1.0):.4g}: "
            "gradient descent diverges and so does this prediction",
            RuntimeWarning,
            stacklevel=3,
        )
    null = lam <= m * np.finfo(np.float64).eps * max(lam_max, np.finfo(np.float64).tiny)
    x = a * np.where(null, 0.0, lam)  # (m,)
    T = steps[:, None]  # (S, 1)
    finite = np.isfinite(T)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # (1 - x)^T via exp(T log1p(-x)) where x < 1 (accurate for small x); plain power beyond.
        stable = x < 1.0
        log_base = np.log1p(-np.where(stable, x, 0.0))
        decay = np.where(stable, np.exp(np.where(finite, T, 1.0) * log_base), np.power(1.0 - x, T))
        one_minus = np.where(stable, -np.expm1(np.where(finite, T, 1.0) * log_base), 1.0 - decay)
        # T = inf: converged modes (0 < x < 2) have decay 0; the null space keeps decay 1.
        conv = (x > 0.0) & (x < 2.0)
        decay = np.where(finite, decay, np.where(conv, 0.0, np.where(null, 1.0, np.inf)))
        one_minus = np.where(finite, one_minus, np.where(conv, 1.0, np.where(null, 0.0, -np.inf)))
        safe_lam = np.where(null, 1.0, lam)
        gain = np.where(null, np.where(finite, a * T, 0.0), one_minus / safe_lam)
    return V, decay, gain


def gradient_descent_mse(
    ntk_train,
    ntk_test_train,
    y_train,
    *,
    lr: float,
    steps,
    f0_train=None,
    f0_test=None,
    eig=None,
    check_input: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Outputs of the linearized network after ``steps`` steps of gradient descent (SPEC §3).

    Full-batch gradient descent with learning rate :math:`\eta` on
    :math:`\ell = \frac1m \sum_i (f(x_i) - y_i)^2` moves the linearized network
    (Lee et al. 2019) as

    .. math::

        f_T(X) - y = (I - \tfrac{2\eta}{m}\Theta)^T (f_0(X) - y),

        f_T(x_*) = f_0(x_*) + \Theta(x_*, X)\,\Theta^{-1}
                   \bigl[I - (I - \tfrac{2\eta}{m}\Theta)^T\bigr] (y - f_0(X)),

    computed from one eigendecomposition :math:`\Theta = V \operatorname{diag}(\lambda) V^\top`.
    At :math:`T = \infty` (and :math:`\eta < m/\lambda_{\max}`) this is kernel regression with
    ridge 0; directions with numerically zero eigenvalue are never moved (pseudo-inverse).

    Parameters
    ----------
    ntk_train : array_like (m, m)
        :math:`\Theta(X, X)`, float64, symmetric PSD (symmetric to a relative 1e-10, and no
        eigenvalue below :math:`-m\,\epsilon_{32}\,|\lambda|_{\max}`, else ValueError).
    ntk_test_train : array_like (n, m)
        :math:`\Theta(X_*, X)`.
    y_train : array_like (m,)
    lr : float
        Learning rate :math:`\eta > 0` of the loss above (not :math:`2\eta/m`).
    steps : float, numpy.inf or array_like (S,)
        Number of gradient-descent steps :math:`T \ge 0`; an array gives a whole curve in one
        call.
    f0_train, f0_test : array_like (m,) and (n,), optional
        Outputs of the network at initialization; ``None`` means 0 (a centered network, or
        the mean over initializations).
    eig : (ndarray (m,), ndarray (m, m)), optional
        ``np.linalg.eigh(ntk_train)`` when the caller already has it (one eigendecomposition
        shared by several predictions with the same :math:`\Theta`); computed here if not
        given.
    check_input : bool, default True
        ``False`` skips the checks (:mod:`ntklab._validation`): the arrays are then float64
        of the shapes above (``ntk_train`` symmetric PSD), ``lr > 0``, ``steps >= 0`` (a
        number or a 1-D array) and ``eig`` of shapes (m,) and (m, m) or ``None``.

    Returns
    -------
    f_train : ndarray (m,) or (S, m)
    f_test : ndarray (n,) or (S, n)
        Shapes (S, ·) when ``steps`` is an array.

    References
    ----------
    Lee, J. et al. (2019). Wide neural networks of any depth evolve as linear models under
    gradient descent. NeurIPS.

    Examples
    --------
    >>> import numpy as np
    >>> K = np.array([[2.0, 0.5], [0.5, 1.0]]); y = np.array([1.0, -1.0])
    >>> f_train, f_test = gradient_descent_mse(K, K, y, lr=0.1, steps=np.inf)
    >>> np.allclose(f_train, y)
    True
    """
    if check_input:
        ntk_train, ntk_test_train, y_train, lr, steps, f0_train, f0_test, eig = _checked_gd(
            ntk_train, ntk_test_train, y_train, lr, steps, f0_train, f0_test, eig
        )
    steps_arr = np.asarray(steps, dtype=np.float64)
    m, n = ntk_train.shape[0], ntk_test_train.shape[0]
    f0_tr = np.zeros(m) if f0_train is None else np.asarray(f0_train, dtype=np.float64)
    f0_te = np.zeros(n) if f0_test is None else np.asarray(f0_test, dtype=np.float64)
    V, decay, gain = _gd_modes(ntk_train, float(lr), np.atleast_1d(steps_arr), eig)
    r0 = V.T @ (f0_tr - y_train)  # residual at initialization, in the eigenbasis
    KsV = ntk_test_train @ V
    with np.errstate(over="ignore", invalid="ignore"):
        f_train = y_train + (decay * r0) @ V.T  # (S, m)
        f_test = f0_te - (gain * r0) @ KsV.T  # (S, n)
    if steps_arr.ndim == 0:
        return f_train[0], f_test[0]
    return f_train, f_test


def _checked_gd(ntk_train, ntk_test_train, y_train, lr, steps, f0_train, f0_test, eig):
    """The arguments of :func:`gradient_descent_mse`, checked (float64; ``eig`` computed
    when not given, its eigenvalues checked PSD)."""
    y = check_vector(y_train, "y_train")
    m = y.shape[0]
    K = _check_square(ntk_train, "ntk_train", m)
    _check_symmetric(K, "ntk_train")
    Ks = check_matrix(ntk_test_train, "ntk_test_train", n_features=m)
    lr = check_float(lr, "lr", strict=True)
    steps_arr, scalar = _check_steps(steps)
    f0_tr = np.zeros(m) if f0_train is None else check_vector(f0_train, "f0_train", length=m)
    n = Ks.shape[0]
    f0_te = np.zeros(n) if f0_test is None else check_vector(f0_test, "f0_test", length=n)
    if eig is not None:
        lam, V = eig
        if np.shape(lam) != (m,) or np.shape(V) != (m, m):
            raise ValueError(
                f"eig must be np.linalg.eigh(ntk_train): eigenvalues ({m},) and eigenvectors "
                f"({m}, {m}); got shapes {np.shape(lam)} and {np.shape(V)}"
            )
    else:
        eig = np.linalg.eigh(K)
    _check_psd(np.asarray(eig[0], dtype=np.float64), "ntk_train")
    return K, Ks, y, lr, steps_arr[0] if scalar else steps_arr, f0_tr, f0_te, eig


def gradient_descent_mse_ensemble(
    ntk_train,
    ntk_test_train,
    y_train,
    *,
    lr: float,
    steps,
    nngp_train,
    nngp_test_train,
    nngp_test_diag=None,
) -> tuple[np.ndarray, np.ndarray | None]:
    r"""Mean and variance over initializations of the linearized network at step ``T``.

    With :math:`f_0 \sim \mathcal{GP}(0, \mathcal K)` (:math:`\mathcal K` the NNGP kernel) and
    :math:`A_T = \Theta(x_*, X)\,\Theta^{-1}[I - (I - \tfrac{2\eta}{m}\Theta)^T]`, the
    output :math:`f_T(x_*) = A_T y + f_0(x_*) - A_T f_0(X)` is Gaussian with (Lee et al. 2019,
    eqs. 15–16; neural-tangents' ``gradient_descent_mse_ensemble``)

    .. math::

        \mu_T(x_*) = A_T y, \qquad
        \sigma^2_T(x_*) = \mathcal K(x_*, x_*) + A_T \mathcal K(X, X) A_T^\top
                          - 2\, A_T \mathcal K(X, x_*).

    Parameters
    ----------
    ntk_train, ntk_test_train, y_train, lr, steps
        As in :func:`gradient_descent_mse`.
    nngp_train : array_like (m, m)
        :math:`\mathcal K(X, X)`.
    nngp_test_train : array_like (n, m)
        :math:`\mathcal K(X_*, X)`.
    nngp_test_diag : array_like (n,), optional
        Prior variances :math:`\mathcal K(x_*, x_*)`; without it the variance is not
        computed (``None`` is returned).

    Returns
    -------
    mean_test : ndarray (n,) or (S, n)
    var_test : ndarray (n,) or (S, n), or None
    """
    y = check_vector(y_train, "y_train")
    m = y.shape[0]
    K = _check_square(ntk_train, "ntk_train", m)
    _check_symmetric(K, "ntk_train")
    Ks = check_matrix(ntk_test_train, "ntk_test_train", n_features=m)
    n = Ks.shape[0]
    G = _check_square(nngp_train, "nngp_train", m)
    Gs = check_matrix(nngp_test_train, "nngp_test_train", n_features=m)
    if Gs.shape[0] != n:
        raise ValueError(
            f"nngp_test_train has {Gs.shape[0]} rows but ntk_test_train has {n} (one per test point)"
        )
    g_diag = (
        None if nngp_test_diag is None else check_vector(nngp_test_diag, "nngp_test_diag", length=n)
    )
    lr = check_float(lr, "lr", strict=True)
    steps_arr, scalar = _check_steps(steps)

    eig = np.linalg.eigh(K)
    _check_psd(eig[0], "ntk_train")
    _check_symmetric(G, "nngp_train")
    _check_psd(np.linalg.eigvalsh(G), "nngp_train")
    V, _, gain = _gd_modes(K, lr, steps_arr, eig)
    KsV = Ks @ V  # (n, m)
    yV = V.T @ y
    with np.errstate(over="ignore", invalid="ignore"):
        mean = (gain * yV) @ KsV.T  # (S, n)
        var = None
        if g_diag is not None:
            GV = V.T @ G @ V  # NNGP in the NTK eigenbasis
            GsV = Gs @ V  # (n, m)
            var = np.empty_like(mean)
            for s in range(steps_arr.shape[0]):
                A = KsV * gain[s]  # A_T in the eigenbasis: (n, m)
                var[s] = (
                    g_diag
                    + np.einsum("ij,jk,ik->i", A, GV, A)
                    - 2.0 * np.einsum("ij,ij->i", A, GsV)
                )
    if scalar:
        return mean[0], None if var is None else var[0]
    return mean, var
