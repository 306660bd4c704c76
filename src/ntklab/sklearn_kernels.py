r"""scikit-learn adapters for ntklab's NNGP and NTK.

:class:`NNGPKernel` and :class:`NTKKernel` subclass
:class:`sklearn.gaussian_process.kernels.Kernel`, so they work in

* ``GaussianProcessRegressor(kernel=NTKKernel(depth=2, parameterization="paper"))``
  (GP regression with the NTK as covariance; combine with ``WhiteKernel`` or ``alpha`` for
  noise, e.g. ``NTKKernel() + WhiteKernel()``),
* ``KernelRidge(kernel=NTKKernel(...))`` (scikit-learn evaluates Kernel objects on whole
  matrices), and, for a per-pair callable, ``KernelRidge(kernel=pairwise(arch.ntk))``.

σ_w, β (``sigma_b``) and, where the parameterization has it and it is given apart from σ_w,
σ_w1 are scikit-learn hyperparameters (bounds ``sigma_w_bounds`` etc., or ``"fixed"``), with
analytic gradients (:mod:`ntklab.kernel_gradients`), so
``GaussianProcessRegressor`` fits them by maximizing the marginal likelihood, e.g.
``ConstantKernel() * NTKKernel(depth=2) + WhiteKernel()``. β = 0 (``arora``'s default) stays
fixed, and ``sigma_w1=None`` ties σ_w1 to σ_w.

Examples
--------
>>> import numpy as np
>>> from sklearn.gaussian_process import GaussianProcessRegressor
>>> from ntklab.sklearn_kernels import NTKKernel
>>> X = np.random.default_rng(0).standard_normal((20, 3))
>>> gpr = GaussianProcessRegressor(kernel=NTKKernel(depth=2), alpha=1e-3).fit(X, X[:, 0])
>>> gpr.predict(X[:2]).shape
(2,)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.gaussian_process.kernels import Hyperparameter, Kernel

from ._validation import check_matrix
from .architecture import Architecture

__all__ = ["NNGPKernel", "NTKKernel", "pairwise"]

_DIAG_BLOCK = 256


class _ArchitectureKernel(Kernel):
    """Common part of :class:`NNGPKernel` and :class:`NTKKernel` (``_index``: 0 or 1)."""

    _index = 0

    def __init__(
        self,
        depth: int = 1,
        parameterization: str = "jacot",
        sigma_w: float | None = None,
        sigma_b: float | None = None,
        sigma_w1: float | None = None,
        sigma_w_bounds=(1e-2, 1e2),
        sigma_b_bounds=(1e-3, 1e2),
        sigma_w1_bounds=(1e-2, 1e2),
    ):
        self.depth = depth
        self.parameterization = parameterization
        self.sigma_w = sigma_w
        self.sigma_b = sigma_b
        self.sigma_w1 = sigma_w1
        self.sigma_w_bounds = sigma_w_bounds
        self.sigma_b_bounds = sigma_b_bounds
        self.sigma_w1_bounds = sigma_w1_bounds

    @property
    def architecture(self) -> Architecture:
        """The :class:`ntklab.Architecture` (validated on every access)."""
        return Architecture(
            self.depth, self.parameterization, self.sigma_w, self.sigma_b, self.sigma_w1
        )

    # -- hyperparameters (scikit-learn optimizes their logarithms) ------------------------
    @property
    def hyperparameter_sigma_w(self) -> Hyperparameter:
        return Hyperparameter("sigma_w", "numeric", self.sigma_w_bounds)

    @property
    def hyperparameter_sigma_b(self) -> Hyperparameter:
        # beta = 0 (arora's default: a network without biases) stays 0: log(0) has no value
        fixed = self.sigma_b_bounds == "fixed" or self.architecture.sigma_b == 0.0
        return Hyperparameter("sigma_b", "numeric", "fixed" if fixed else self.sigma_b_bounds)

    @property
    def hyperparameter_sigma_w1(self) -> Hyperparameter:
        # None: tied to sigma_w (the derivative goes to sigma_w); arora has no sigma_w1
        fixed = self.sigma_w1_bounds == "fixed" or self._tied_w1 or self.sigma_w1 is None
        return Hyperparameter("sigma_w1", "numeric", "fixed" if fixed else self.sigma_w1_bounds)

    @property
    def _tied_w1(self) -> bool:
        """σ_w1 follows σ_w (``sigma_w1=None`` for ``jacot``/``paper``)."""
        return self.sigma_w1 is None and self.architecture.sigma_w1 is not None

    @property
    def theta(self) -> np.ndarray:
        """Log of the free hyperparameters, ``None`` values read as the parameterization's
        defaults (σ_w = 1 or √2, β = 0.1)."""
        arch = self.architecture
        values = [getattr(arch, h.name) for h in self.hyperparameters if not h.fixed]
        return np.log(np.asarray(values, dtype=np.float64))

    @theta.setter
    def theta(self, theta) -> None:
        Kernel.theta.fset(self, theta)

    def __call__(self, X, Y=None, eval_gradient: bool = False):
        r"""Kernel matrix k(X, Y) (float64); with ``eval_gradient`` also its gradient.

        The gradient (n, n, p) is taken in the logarithms of the p free hyperparameters
        (scikit-learn's convention, :math:`\partial K/\partial\log\sigma = \sigma\,
        \partial K/\partial\sigma`), by differentiating the recursion
        (:func:`ntklab.kernel_gradients.kernels_and_gradients`, float64 numpy); without it,
        the compiled pass.

        Parameters
        ----------
        X : array_like (n, d)
        Y : array_like (m, d), optional
            Defaults to ``X``.
        eval_gradient : bool
            Only allowed when ``Y`` is None (scikit-learn's convention).
        """
        if eval_gradient and Y is not None:
            raise ValueError("eval_gradient can only be evaluated when Y is None")
        arch = self.architecture
        if not eval_gradient:
            return arch.kernels(X, Y)[self._index]
        from .kernel_gradients import HYPERPARAMETERS, kernels_and_gradients

        X = check_matrix(X, "X")
        out = kernels_and_gradients(arch, X)
        K, dK = out[self._index], out[2 + self._index]
        columns = []
        for h in self.hyperparameters:
            if h.fixed:
                continue
            i = HYPERPARAMETERS.index(h.name)
            grad = dK[..., i]
            if h.name == "sigma_w" and self._tied_w1:
                grad = grad + dK[..., HYPERPARAMETERS.index("sigma_w1")]
            columns.append(getattr(arch, h.name) * grad)
        if not columns:
            return K, np.empty((K.shape[0], K.shape[0], 0))
        return K, np.stack(columns, axis=-1)

    def diag(self, X) -> np.ndarray:
        """k(x, x) for each row, in row blocks (O(n · block) work, not O(n²))."""
        X = check_matrix(X, "X")
        arch = self.architecture
        out = np.empty(X.shape[0])
        for start in range(0, X.shape[0], _DIAG_BLOCK):
            block = X[start : start + _DIAG_BLOCK]
            out[start : start + _DIAG_BLOCK] = np.diag(
                arch.kernels(block, check_input=False)[self._index]
            )
        return out

    def is_stationary(self) -> bool:
        """False: the network kernels depend on the norms and angle of x, x', not x − x'."""
        return False

    @property
    def requires_vector_input(self) -> bool:
        return True

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(depth={self.depth!r}, "
            f"parameterization={self.parameterization!r}, sigma_w={self.sigma_w!r}, "
            f"sigma_b={self.sigma_b!r}, sigma_w1={self.sigma_w1!r})"
        )


class NNGPKernel(_ArchitectureKernel):
    r"""The NNGP kernel :math:`\Sigma^{L+1}` of an :class:`ntklab.Architecture`, for scikit-learn.

    Parameters
    ----------
    depth : int, default 1
        Hidden layers :math:`L`.
    parameterization : {"jacot", "arora", "paper"}, default "jacot"
    sigma_w, sigma_b : float, optional
        ``None``: the parameterization's defaults (SPEC §1).
    sigma_w1 : float, optional
        The first layer's σ_w (``jacot``, ``paper``); ``None``: tied to ``sigma_w``.
    sigma_w_bounds, sigma_b_bounds, sigma_w1_bounds : pair of float or "fixed"
        Bounds of the hyperparameters for scikit-learn's optimizer (defaults (1e-2, 1e2),
        (1e-3, 1e2), (1e-2, 1e2)); ``"fixed"`` keeps one at its value.

    References
    ----------
    Lee, J. et al. (2018). Deep neural networks as Gaussian processes. ICLR.
    """

    _index = 0


class NTKKernel(_ArchitectureKernel):
    r"""The neural tangent kernel :math:`\Theta^{L+1}` of an :class:`ntklab.Architecture`.

    Parameters are those of :class:`NNGPKernel`.

    References
    ----------
    Jacot, A., Gabriel, F. and Hongler, C. (2018). Neural tangent kernel. NeurIPS 31.
    """

    _index = 1


def pairwise(kernel: Callable) -> Callable:
    """Wrap a matrix kernel ``k(X, Z)`` as a per-pair callable ``k(x, z) -> float``.

    For APIs that call a kernel on one pair of 1-D rows at a time, such as
    ``sklearn.kernel_ridge.KernelRidge(kernel=callable)`` (slow: one call per pair; prefer
    passing :class:`NTKKernel` itself).

    Examples
    --------
    >>> from sklearn.kernel_ridge import KernelRidge
    >>> import ntklab
    >>> model = KernelRidge(kernel=pairwise(ntklab.Architecture(1).ntk), alpha=1e-3)
    """
    if not callable(kernel):
        raise ValueError(f"kernel must be a callable k(X, Z); got {kernel!r}")

    def k(x, z) -> float:
        return float(kernel(np.atleast_2d(x), np.atleast_2d(z))[0, 0])

    k.__name__ = f"pairwise_{getattr(kernel, '__name__', 'kernel')}"
    return k
