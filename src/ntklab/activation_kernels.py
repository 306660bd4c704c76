r"""NNGP and NTK of networks with any activation of :mod:`ntklab.activations` (numpy).

The recursion of SPEC §2 (Jacot et al. 2018; Lee et al. 2019) with the activation's kernel
map in place of ReLU's: one pass over row blocks of the output, each block taken through
all layers (so memory is the two outputs plus a few blocks), the blocks shared among
threads (numpy releases the GIL). ReLU networks keep the compiled pass of
:func:`ntklab.kernels.relu_network_kernels`.

References
----------
Jacot, A., Gabriel, F. and Hongler, C. (2018). Neural tangent kernel. NeurIPS 31.
Lee, J. et al. (2018). Deep neural networks as Gaussian processes. ICLR.
Lee, J. et al. (2019). Wide neural networks of any depth evolve as linear models. NeurIPS 32.
Arora, S. et al. (2019). On exact computation with an infinitely wide neural net. NeurIPS 32.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["activation_network_kernels"]

_BLOCK_ENTRIES = 1 << 15  # entries per block (256 KB per float64 array: in L2)


def activation_network_kernels(
    X: np.ndarray,
    Z: np.ndarray | None,
    dense: Sequence[tuple[float, float, float]],
    activation,
    *,
    block_rows: int | None = None,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""NNGP and NTK of the network dense, (activation, dense) × L.

    The input layer sees the mean inner product :math:`\bar\Sigma^0 = x\cdot z/d`; each
    dense layer with coefficients :math:`(gv, g, \beta^2)`
    (:attr:`ntklab.layers.Dense.kernel_coefficients`) maps

    .. math::

        \Sigma \mapsto gv\,\bar\Sigma + \beta^2, \qquad
        \Theta \mapsto g\,\bar\Sigma + \beta^2 + gv\,\bar\Theta,

    and each activation maps :math:`(\Sigma, \Theta)` to :math:`(\bar\Sigma, \bar\Theta) =
    (\mathbb E[\phi(u)\phi(v)],\ \mathbb E[\phi'(u)\phi'(v)]\,\Theta)`, :math:`(u, v) \sim
    \mathcal N(0, \Sigma)` (the activation's ``kernel_plan``; Jacot et al. 2018, Lee et al.
    2019, Arora et al. 2019). The variances :math:`\Sigma(x, x)` of every layer are mapped
    first (the plan's ``second_moments``); with ``Z`` None the pairs (i, i) use them,
    so the diagonal is each row's own variance, only the blocks on and above the diagonal
    are computed, and both outputs are exactly symmetric.

    Parameters
    ----------
    X : ndarray (n, d), float64
    Z : ndarray (m, d), float64, or None
        None for the symmetric kernel of ``X`` with itself.
    dense : sequence of (float, float, float)
        The L + 1 dense layers' coefficients, the input layer first.
    activation
        A layer object of :mod:`ntklab.activations` (``kernel_plan``, ``second_moments``).
    block_rows : int, optional
        Rows per block (default: about 32 768 entries a block). The result does not depend
        on it.
    threads : int, optional
        Default: torch's thread count for the calling thread.

    Returns
    -------
    nngp, ntk : ndarray (n, m), float64
    """
    coef = np.ascontiguousarray(dense, dtype=np.float64)
    if coef.ndim != 2 or coef.shape[0] < 1 or coef.shape[1] != 3:
        raise ValueError(
            f"dense must be one (g*v, g, beta^2) triple per dense layer; got shape {coef.shape}"
        )
    X = np.ascontiguousarray(X, dtype=np.float64)
    symmetric = Z is None
    Z = X if symmetric else np.ascontiguousarray(Z, dtype=np.float64)
    n, d = X.shape
    m = Z.shape[0]
    depth = coef.shape[0] - 1
    # the variances of every layer, and each layer's kernel map on them
    sx = _first_variances(X, coef)
    sz = sx if symmetric else _first_variances(Z, coef)
    plans, diag = [], []
    for layer in range(depth):
        plan = activation.kernel_plan(sx, sz)
        ex = plan.second_moments("x")
        plans.append(plan)
        diag.append(ex)
        gv, _, b2 = coef[layer + 1]
        sx = ex[0] * gv + b2
        sz = sx if symmetric else plan.second_moments("z")[0] * gv + b2
    rows = block_rows if block_rows is not None else max(1, _BLOCK_ENTRIES // max(m, 1))
    nngp, ntk = np.empty((n, m)), np.empty((n, m))
    np.matmul(X, Z.T, out=nngp)  # the inner products, by BLAS, before the blocks read them

    def block(r0: int) -> None:
        r1 = min(n, r0 + rows)
        c0 = r0 if symmetric else 0
        S = nngp[r0:r1, c0:] / d  # its own rows: no other block reads or writes them
        gv, g, b2 = coef[0]
        T = S * g + b2
        S *= gv
        S += b2
        for layer in range(depth):
            gv, g, b2 = coef[layer + 1]
            e_phi, e_dphi = plans[layer].moments(S, slice(r0, r1), slice(c0, m))
            if symmetric:  # the pairs (i, i): each row's own moments
                idx = np.arange(r1 - r0)
                e_phi[idx, idx] = diag[layer][0][r0:r1]
                e_dphi[idx, idx] = diag[layer][1][r0:r1]
            T *= e_dphi
            T *= gv
            T += e_phi * g + b2
            np.multiply(e_phi, gv, out=S)
            S += b2
        nngp[r0:r1, c0:] = S
        ntk[r0:r1, c0:] = T

    if threads is None:
        import torch

        threads = torch.get_num_threads()
    _run(block, range(0, n, rows), threads)
    if symmetric:  # the upper triangle, mirrored below in square tiles (one pass, in cache)
        _run(lambda i0: _mirror_tiles(nngp, ntk, i0), range(0, n, _MIRROR_TILE), threads)
    return nngp, ntk


_MIRROR_TILE = 256


def _run(fn, starts, threads: int) -> None:
    """``fn(start)`` for every start, on ``threads`` threads (tasks write disjoint parts)."""
    if threads <= 1 or len(starts) <= 1:
        for start in starts:
            fn(start)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(fn, starts))


def _mirror_tiles(nngp: np.ndarray, ntk: np.ndarray, i0: int) -> None:
    """Copy the upper triangle of the tile row starting at ``i0`` to the lower triangle:
    its diagonal tile's strict lower part, and the tiles below it in its tile column (a task
    writes only below the diagonal, in its own columns, and reads only above it)."""
    n = nngp.shape[0]
    i1 = min(n, i0 + _MIRROR_TILE)
    low = np.tril_indices(i1 - i0, -1)
    for out in (nngp, ntk):
        square = out[i0:i1, i0:i1]
        square[low] = square.T[low]
        for j0 in range(i1, n, _MIRROR_TILE):
            j1 = min(n, j0 + _MIRROR_TILE)
            out[j0:j1, i0:i1] = out[i0:i1, j0:j1].T


def _first_variances(X: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Sigma^1(x, x) of every row: the input layer's (g v) |x|^2 / d + beta^2."""
    return coef[0, 0] * (np.einsum("ij,ij->i", X, X) / X.shape[1]) + coef[0, 2]
