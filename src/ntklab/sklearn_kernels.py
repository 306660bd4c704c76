r"""scikit-learn adapters for ntklab's NNGP and NTK.

:class:`NNGPKernel` and :class:`NTKKernel` subclass
:class:`sklearn.gaussian_process.kernels.Kernel`, so they work in

* ``GaussianProcessRegressor(kernel=NTKKernel(depth=2, parameterization="paper"))``
  (GP regression with the NTK as covariance; combine with ``WhiteKernel`` or ``alpha`` for
  noise, e.g. ``NTKKernel() + WhiteKernel()``),
* ``KernelRidge(kernel=NTKKernel(...))`` (scikit-learn evaluates Kernel objects on whole
  matrices), and, for a per-pair callable, ``KernelRidge(kernel=pairwise(arch.ntk))``.

The kernels have no tunable hyperparameters (the architecture is fixed by the user), so
``eval_gradient=True`` returns a gradient of shape (n, n, 0) and a GP fit does not optimize.

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
from sklearn.gaussian_process.kernels import Kernel

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
    ):
        self.depth = depth
        self.parameterization = parameterization
        self.sigma_w = sigma_w
        self.sigma_b = sigma_b

    @property
    def architecture(self) -> Architecture:
        """The :class:`ntklab.Architecture` (validated on every access)."""
        return Architecture(self.depth, self.parameterization, self.sigma_w, self.sigma_b)

    def __call__(self, X, Y=None, eval_gradient: bool = False):
        """Kernel matrix k(X, Y) (float64); with ``eval_gradient`` also a (n, n, 0) gradient.

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
        K = self.architecture.kernels(X, Y)[self._index]
        if eval_gradient:
            return K, np.empty((K.shape[0], K.shape[0], 0))
        return K

    def diag(self, X) -> np.ndarray:
        """k(x, x) for each row, in row blocks (O(n · block) work, not O(n²))."""
        X = check_matrix(X, "X")
        arch = self.architecture
        out = np.empty(X.shape[0])
        for start in range(0, X.shape[0], _DIAG_BLOCK):
            block = X[start : start + _DIAG_BLOCK]
            out[start : start + _DIAG_BLOCK] = np.diag(arch.kernels_unchecked(block)[self._index])
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
            f"sigma_b={self.sigma_b!r})"
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
