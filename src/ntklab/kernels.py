r"""Analytic kernels: the layer-wise NNGP/NTK recursion state, and non-network kernels.

The network kernels themselves are produced by :class:`ntklab.Architecture`, which walks a
:class:`KernelState` through the same layer objects that build its finite network
(:mod:`ntklab.layers`). This module holds the state, the ReLU moments of Cho & Saul (2009)
that the recursion needs, and the kernels that come from no network (Laplacian, RBF).

References
----------
Cho, Y. and Saul, L. (2009). Kernel methods for deep learning. NeurIPS 22.
Jacot, A., Gabriel, F. and Hongler, C. (2018). Neural tangent kernel. NeurIPS 31.
Lee, J. et al. (2018). Deep neural networks as Gaussian processes. ICLR.
Arora, S. et al. (2019). On exact computation with an infinitely wide neural net. NeurIPS 32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import check_float, check_pair

__all__ = [
    "KernelState",
    "relu_moments",
    "arc_cosine",
    "laplacian",
    "laplacian_unchecked",
    "rbf",
    "rbf_unchecked",
]


@dataclass(frozen=True)
class KernelState:
    r"""Second moments of one layer's units over a block of input pairs (x in X, z in Z).

    Attributes
    ----------
    cov : ndarray, shape (n, m)
        :math:`\mathbb{E}[u(x) u(z)]` for one unit ``u`` of the current layer (the NNGP after a
        dense layer; for the raw input, the mean inner product :math:`x \cdot z / d`).
    diag_x, diag_z : ndarray, shapes (n,), (m,)
        :math:`\mathbb{E}[u(x)^2]` and :math:`\mathbb{E}[u(z)^2]`.
    ntk : ndarray, shape (n, m), or None
        :math:`\langle \partial u(x)/\partial\theta, \partial u(z)/\partial\theta\rangle`
        over all parameters below this layer (None before any parameter, i.e. zero).
    same : bool
        True when row ``i`` of X and row ``i`` of Z are the same input (a block on the
        diagonal of a symmetric kernel): those pairs then get exactly :math:`\rho = 1`
        instead of :math:`1 - O(\epsilon)`, where ``arccos`` would amplify round-off to
        :math:`O(\sqrt\epsilon)`.
    """

    cov: np.ndarray
    diag_x: np.ndarray
    diag_z: np.ndarray
    ntk: np.ndarray | None = None
    same: bool = False

    @classmethod
    def from_inputs(cls, X: np.ndarray, Z: np.ndarray, *, same: bool = False) -> KernelState:
        """State of the input layer: mean inner products ``x·z / d``, no parameters yet."""
        d = X.shape[1]
        return cls(
            cov=(X @ Z.T) / d,
            diag_x=np.einsum("ij,ij->i", X, X) / d,
            diag_z=np.einsum("ij,ij->i", Z, Z) / d,
            ntk=None,
            same=same,
        )


def relu_moments(cov: np.ndarray, diag_x: np.ndarray, diag_z: np.ndarray, *, same: bool = False):
    r"""ReLU moments of a centred Gaussian pair (Cho & Saul 2009, arc-cosine kernels).

    For :math:`(u, v) \sim \mathcal N(0, [[\Sigma_{xx}, \Sigma_{xz}], [\Sigma_{xz}, \Sigma_{zz}]])`,
    :math:`\rho = \Sigma_{xz}/\sqrt{\Sigma_{xx}\Sigma_{zz}}` clipped to [-1, 1] and
    :math:`\theta = \arccos\rho`,

    .. math::

        \mathbb E[\phi(u)\phi(v)] = \sqrt{\Sigma_{xx}\Sigma_{zz}}\,
            \frac{\sin\theta + (\pi-\theta)\cos\theta}{2\pi}, \qquad
        \mathbb E[\phi'(u)\phi'(v)] = \frac{\pi-\theta}{2\pi}.

    Computed on whole matrices with a few in-place passes and no (n, m, 2, 2) intermediates.
    Pairs with a zero variance (e.g. ``x = 0`` without biases) get ``rho = 0``.

    Returns
    -------
    e_phi : ndarray (n, m)
        :math:`\mathbb E[\phi(u)\phi(v)]`.
    e_dphi : ndarray (n, m)
        :math:`\mathbb E[\phi'(u)\phi'(v)]`.
    """
    norm = np.sqrt(np.outer(diag_x, diag_z))
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.divide(cov, norm, out=np.zeros_like(cov), where=norm > 0)
    np.clip(rho, -1.0, 1.0, out=rho)
    if same:  # pairs (i, i) are one input: exactly rho = 1 (where the variance is > 0)
        idx = np.arange(min(rho.shape))
        rho[idx, idx] = np.where(norm[idx, idx] > 0, 1.0, 0.0)
    return arc_cosine(rho, norm)


def arc_cosine(rho: np.ndarray, norm: np.ndarray):
    r"""The two ReLU arc-cosine functions at correlation ``rho`` (Cho & Saul 2009).

    With :math:`\theta = \arccos\rho` and :math:`s = \sqrt{\Sigma_{xx}\Sigma_{zz}}` (``norm``),

    .. math::

        s\,\frac{\sin\theta + (\pi-\theta)\cos\theta}{2\pi}, \qquad
        \frac{\pi-\theta}{2\pi}.

    :func:`relu_moments` calls it with the Gaussian correlation; :mod:`ntklab.published`
    with the seed's published normalization. ``rho`` must lie in [-1, 1] and is used as
    scratch space (overwritten).

    Returns
    -------
    e_phi, e_dphi : ndarray
        The two functions, shaped like ``rho``.
    """
    theta = np.arccos(rho)
    # e_dphi = (pi - theta) / (2 pi), built in place in `theta`'s buffer.
    np.subtract(np.pi, theta, out=theta)  # theta now holds (pi - theta)
    e_phi = theta * rho  # (pi - theta) cos(theta)
    np.multiply(rho, rho, out=rho)
    np.subtract(1.0, rho, out=rho)
    np.maximum(rho, 0.0, out=rho)
    np.sqrt(rho, out=rho)  # sin(theta)
    e_phi += rho
    e_phi *= norm
    e_phi /= 2 * np.pi
    theta /= 2 * np.pi
    return e_phi, theta


def _distances(X: np.ndarray, Z: np.ndarray, symmetric: bool) -> np.ndarray:
    """Euclidean distances, from the Gram expansion (clipped at 0; exact 0 on the diagonal)."""
    sq = np.einsum("ij,ij->i", X, X)[:, None] + np.einsum("ij,ij->i", Z, Z)[None, :]
    sq -= 2.0 * (X @ Z.T)
    np.maximum(sq, 0.0, out=sq)
    if symmetric:
        np.fill_diagonal(sq, 0.0)
    return np.sqrt(sq, out=sq)


def laplacian(X, Z=None, *, length_scale: float = 1.0) -> np.ndarray:
    r"""Laplacian (exponential) kernel, the seed's K1.

    .. math:: k(x, z) = \exp(-\lVert x - z\rVert / \ell)

    Not a network kernel: the seed uses it as a "non NN-related" baseline, with
    :math:`\ell = 1` (*assumed*, SPEC §2).

    Parameters
    ----------
    X : array_like (n, d)
    Z : array_like (m, d), optional
        Defaults to ``X``.
    length_scale : float
        :math:`\ell > 0`.

    Returns
    -------
    ndarray (n, m), float64
    """
    length_scale = check_float(length_scale, "length_scale", strict=True)
    X, Z, symmetric = check_pair(X, Z)
    return laplacian_unchecked(X, None if symmetric else Z, length_scale=length_scale)


def laplacian_unchecked(
    X: np.ndarray, Z: np.ndarray | None = None, *, length_scale: float = 1.0
) -> np.ndarray:
    """:func:`laplacian` of float64 matrices that are already valid; checks nothing.

    For callers inside ntklab that made or checked ``X`` and ``Z`` (same column count) and
    ``length_scale > 0`` themselves. ``Z=None``: ``X`` (exactly 0 distance on the diagonal).
    """
    dist = _distances(X, X if Z is None else Z, Z is None)
    dist /= -length_scale
    return np.exp(dist, out=dist)


def rbf(X, Z=None, *, length_scale: float = 1.0) -> np.ndarray:
    r"""Squared-exponential (RBF) kernel.

    .. math:: k(x, z) = \exp\!\left(-\frac{\lVert x - z\rVert^2}{2\ell^2}\right)

    Parameters
    ----------
    X : array_like (n, d)
    Z : array_like (m, d), optional
        Defaults to ``X``.
    length_scale : float
        :math:`\ell > 0`.
    """
    length_scale = check_float(length_scale, "length_scale", strict=True)
    X, Z, symmetric = check_pair(X, Z)
    return rbf_unchecked(X, None if symmetric else Z, length_scale=length_scale)


def rbf_unchecked(
    X: np.ndarray, Z: np.ndarray | None = None, *, length_scale: float = 1.0
) -> np.ndarray:
    """:func:`rbf` of float64 matrices that are already valid; checks nothing (as
    :func:`laplacian_unchecked`)."""
    dist = _distances(X, X if Z is None else Z, Z is None)
    np.multiply(dist, dist, out=dist)
    dist /= -2.0 * length_scale**2
    return np.exp(dist, out=dist)
