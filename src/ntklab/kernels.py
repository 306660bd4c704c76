r"""Analytic kernels: the ReLU network NNGP/NTK recursion, and non-network kernels.

The network kernels are produced by :class:`ntklab.Architecture`, which reads the constants
of the recursion from the same layer objects that build its finite network
(:mod:`ntklab.layers`) and hands them to :func:`relu_network_kernels`: one compiled
(numba), multi-threaded pass that takes each cache-sized piece of the output through all
layers. This module also holds the ReLU moments of Cho & Saul (2009) on whole matrices
(numpy; :mod:`ntklab.published` uses them) and the kernels that come from no network
(Laplacian, RBF).

References
----------
Cho, Y. and Saul, L. (2009). Kernel methods for deep learning. NeurIPS 22.
Jacot, A., Gabriel, F. and Hongler, C. (2018). Neural tangent kernel. NeurIPS 31.
Lee, J. et al. (2018). Deep neural networks as Gaussian processes. ICLR.
Arora, S. et al. (2019). On exact computation with an infinitely wide neural net. NeurIPS 32.
"""

from __future__ import annotations

import getpass
import os
import tempfile
import threading
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ._validation import check_float, check_pair

__all__ = [
    "relu_network_kernels",
    "relu_moments",
    "arc_cosine",
    "laplacian",
    "rbf",
]


_INLINE_GRAM_MAX_FEATURES = 64  # up to this many features the compiled pass sums x.z itself
_TILE = 128  # default tile edge of the compiled pass (two 128 KB scratch tiles per thread)


def relu_network_kernels(
    X: np.ndarray,
    Z: np.ndarray | None,
    dense: Sequence[tuple[float, float, float]],
    *,
    tile: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""NNGP and NTK of a ReLU network: dense, (ReLU, dense) × L, in one compiled pass.

    The recursion of SPEC §2 in the form of :class:`ntklab.layers.Dense` and
    :class:`ntklab.layers.ReLU`. The input layer sees the mean inner product
    :math:`\bar\Sigma^0 = x\cdot z/d` (its "NTK" is zero), each dense layer with
    coefficients :math:`(gv, g, \beta^2)` maps

    .. math::

        \Sigma \mapsto gv\,\bar\Sigma + \beta^2, \qquad
        \Theta \mapsto g\,\bar\Sigma + \beta^2 + gv\,\bar\Theta,

    and each ReLU maps :math:`(\Sigma, \Theta)` to :math:`(\bar\Sigma, \bar\Theta) =
    (\mathbb E[\phi(u)\phi(v)], \mathbb E[\phi'(u)\phi'(v)]\,\Theta)` as in
    :func:`relu_moments` (correlation clipped to [-1, 1]; exactly 1 for the pairs (i, i)
    when ``Z`` is None; 0 where a variance is 0).

    One parallel pass (numba, over tiles; threads: torch's setting for the calling
    thread) takes each cache-sized tile of the output through all layers: no n × m
    temporary, the two outputs are written once. With ``Z`` None only the tiles on and
    above the diagonal are computed, and mirrored: both outputs are exactly symmetric.
    Inner products are summed in feature order inside the pass for d <= 64 (so equal or
    proportional inputs give a correlation of exactly ±1), by BLAS beyond.

    Parameters
    ----------
    X : ndarray (n, d), float64
        Validated inputs (:func:`ntklab._validation.check_pair`).
    Z : ndarray (m, d), float64, or None
        None for the symmetric kernel of ``X`` with itself.
    dense : sequence of (float, float, float)
        :attr:`ntklab.layers.Dense.kernel_coefficients` of the L + 1 dense layers, the
        input layer first.
    tile : int, optional
        Edge (rows and columns) of the tiles computed at a time, each in scratch space
        (two tile × tile arrays per thread); 1 to 4096, default 128. The result does not
        depend on it.

    Returns
    -------
    nngp, ntk : ndarray (n, m), float64
        :math:`\Sigma^{L+1}(X, Z)` and :math:`\Theta^{L+1}(X, Z)`.
    """
    from ._relu_jit import (
        tile_pass,
    )  # numba: imported (and compiled, or loaded from its cache) here

    coef = np.ascontiguousarray(dense, dtype=np.float64)
    if coef.ndim != 2 or coef.shape[0] < 1 or coef.shape[1] != 3:
        raise ValueError(
            f"dense must be one (g*v, g, beta^2) triple per dense layer; got shape {coef.shape}"
        )
    size = _TILE if tile is None else int(tile)
    if not 1 <= size <= 4096:
        raise ValueError(
            f"tile (block_rows) must be between 1 and 4096 rows (each thread holds two "
            f"tile x tile scratch arrays); got {tile!r}"
        )
    # float64, C order and writeable: a read-only array (a frozen data set's) would make
    # numba compile, and cache, a second signature of the pass (seconds, in every process
    # until the cache is written); the copy costs O(n d), the pass O(n m).
    X = np.require(X, np.float64, ["C", "W"])
    symmetric = Z is None
    Z = X if symmetric else np.ascontiguousarray(Z, dtype=np.float64)
    n, d = X.shape
    m = Z.shape[0]
    inline = d <= _INLINE_GRAM_MAX_FEATURES
    dx = _layer_variances(X, coef, inline)
    dz = dx if symmetric else _layer_variances(Z, coef, inline)
    nngp, ntk = np.empty((n, m)), np.empty((n, m))
    if not inline:
        np.matmul(X, Z.T, out=nngp)
    ZT = np.ascontiguousarray(Z.T) if inline else np.empty((0, 0))  # read only if inline
    row_blocks, col_blocks = -(-n // size), -(-m // size)
    if symmetric:  # the tiles on and above the diagonal, row by row
        tiles = np.stack(np.triu_indices(row_blocks), axis=1)
    else:
        tiles = np.indices((row_blocks, col_blocks)).reshape(2, -1).T
    tiles = np.ascontiguousarray(tiles, dtype=np.int64)
    args = (nngp, ntk, X, ZT, dx, dz, coef, float(d), inline, tiles, size, symmetric)
    with _numba_threads():  # compiling starts numba's thread pool too: inside, not before
        _load_compiled(tile_pass, args)
        tile_pass(*args)
    return nngp, ntk


#: How long a process waits for another one that is compiling the pass (then compiles it too).
_COMPILE_WAIT = 120.0


def _load_compiled(dispatcher, args) -> None:
    """Give this process the compiled pass for ``args``' types: from numba's disk cache, or
    compiled (seconds) and written there, by one process at a time.

    Processes that start together on a fresh install (a study's pool workers, the test
    suite's workers) would each compile the same pass at once; with a file lock the first
    compiles and writes the cache, and the others wait for it and then load it. The lock is
    a :class:`filelock.FileLock` (an advisory ``flock``) in the temporary directory, released
    when its holder exits however it ends; a holder stopped for longer than
    :data:`_COMPILE_WAIT` seconds is not waited for, and where no lock can be taken each
    process compiles for itself, as numba would.
    """
    if dispatcher.signatures:  # this process has it already (one signature: float64, C order)
        return
    import numba
    from filelock import FileLock, Timeout

    signature = tuple(numba.typeof(a) for a in args)
    user = getattr(os, "getuid", getpass.getuser)()  # the user's name where no uid (Windows)
    path = Path(tempfile.gettempdir()) / f"ntklab-numba-{user}.lock"
    lock = FileLock(path, timeout=_COMPILE_WAIT)
    try:
        lock.acquire()
    except (Timeout, OSError):  # a stopped holder, or no locking here: compile alone
        dispatcher.compile(signature)
        return
    try:
        dispatcher.compile(signature)  # loads numba's cache when another process wrote it
    finally:
        lock.release()


def _layer_variances(X: np.ndarray, coef: np.ndarray, inline: bool) -> np.ndarray:
    """Sigma^l(x, x) for l = 1..L, shape (L, n): the variances the L ReLUs see.

    The squared norms are summed like the inner products of :func:`relu_network_kernels`
    (in feature order, or by ``einsum`` when BLAS computes the inner products), then mapped
    with the same operations as the pairs: ``(g v) s + beta^2`` by a dense layer, ``s / 2``
    by a ReLU.
    """
    if inline:
        sq = np.zeros(X.shape[0])
        for k in range(X.shape[1]):
            sq += X[:, k] * X[:, k]
    else:
        sq = np.einsum("ij,ij->i", X, X)
    out = np.empty((coef.shape[0] - 1, X.shape[0]))
    s = sq / X.shape[1]  # the input layer's mean inner product
    for layer in range(out.shape[0]):
        if layer > 0:
            s = s / 2.0  # ReLU: E[phi(u)^2] = Sigma / 2
        s = coef[layer, 0] * s + coef[layer, 2]  # dense: (g v) Sigma + beta^2
        out[layer] = s
    return out


_WORKQUEUE = threading.Lock()


@contextmanager
def _numba_threads():
    """Give numba's next parallel call from this thread as many threads as torch has here
    (the study runner sets torch's count per worker process and per thread), within
    numba's pool. numba's "workqueue" threading layer (its fallback where neither OpenMP
    nor TBB loads) aborts the process on concurrent parallel calls, so there, and on the
    first call, before the layer is known, calls from several threads take turns."""
    import numba
    import torch

    torch_threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(torch_threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        serial = numba.threading_layer() == "workqueue"
    except ValueError:  # no parallel call yet in this process
        serial = True
    try:
        if serial:
            with _WORKQUEUE:
                yield
        else:
            yield
    finally:
        # numba's OpenMP layer starts its pool with omp_set_num_threads(all cores), which
        # is also torch's count in this thread (torch runs on the same libgomp): put it back,
        # or a worker limited to 1 thread trains its networks with all cores after its first
        # kernel, oversubscribing the machine (2 workers x 2 spinning OpenMP threads on 2
        # cores ran SGD about 20x slower).
        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)


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


def laplacian(X, Z=None, *, length_scale: float = 1.0, check_input: bool = True) -> np.ndarray:
    r"""Laplacian (exponential) kernel, the seed's K1.

    .. math:: k(x, z) = \exp(-\lVert x - z\rVert / \ell)

    Not a network kernel: the seed uses it as a "non NN-related" baseline, with
    :math:`\ell = 1` (*assumed*, SPEC §2).

    Parameters
    ----------
    X : array_like (n, d)
    Z : array_like (m, d), optional
        Defaults to ``X`` (exactly 0 distance on the diagonal).
    length_scale : float
        :math:`\ell > 0`.
    check_input : bool, default True
        ``False`` skips the checks (:mod:`ntklab._validation`): ``X``, ``Z`` are then finite
        float64 matrices with the same number of columns and ``length_scale > 0``.

    Returns
    -------
    ndarray (n, m), float64
    """
    if check_input:
        length_scale = check_float(length_scale, "length_scale", strict=True)
        X, Z, symmetric = check_pair(X, Z)
        Z = None if symmetric else Z
    dist = _distances(X, X if Z is None else Z, Z is None)
    dist /= -length_scale
    return np.exp(dist, out=dist)


def rbf(X, Z=None, *, length_scale: float = 1.0, check_input: bool = True) -> np.ndarray:
    r"""Squared-exponential (RBF) kernel.

    .. math:: k(x, z) = \exp\!\left(-\frac{\lVert x - z\rVert^2}{2\ell^2}\right)

    Parameters
    ----------
    X : array_like (n, d)
    Z : array_like (m, d), optional
        Defaults to ``X``.
    length_scale : float
        :math:`\ell > 0`.
    check_input : bool, default True
        As in :func:`laplacian`.
    """
    if check_input:
        length_scale = check_float(length_scale, "length_scale", strict=True)
        X, Z, symmetric = check_pair(X, Z)
        Z = None if symmetric else Z
    dist = _distances(X, X if Z is None else Z, Z is None)
    np.multiply(dist, dist, out=dist)
    dist /= -2.0 * length_scale**2
    return np.exp(dist, out=dist)
