r"""The compiled (numba) pass of the ReLU NNGP/NTK recursion; imported on first use only.

:func:`ntklab.kernels.relu_network_kernels` is the entry point: it computes the per-layer
variances (O(n)), then calls :func:`tile_pass`, which fills the NNGP and NTK outputs tile
by tile, tiles in parallel (``prange``). Each tile (128 × 128 by default) is computed in
scratch space, row by row: the inner products x·z (summed here for d <= 64, else read from
a BLAS Gram matrix left in the NNGP output), then every layer of the recursion while the
row is in the L1 cache; then it is written to its place and, for the kernel of X with
itself, to its mirror image (only tiles on and above the diagonal are computed, and both
outputs come out exactly symmetric). No n × m temporary; each output entry is written once.

The arithmetic is that of SPEC §2; ``tests/test_kernels.py`` keeps a numpy recursion with
the same operations in the same order as the reference (agreement to a few ulp; exactly
where the correlation is ±1, which arccos would amplify). The arc-cosine moment is written
as :math:`\cos\theta/2 + (\sin\theta - \theta\cos\theta)/(2\pi)`, exactly 1/2 at
:math:`\rho = 1`: equal inputs (and, without biases, inputs proportional by a power of
two) keep :math:`\rho = 1` exactly through all layers, in the rectangular kernel too,
where the numpy recursion before it let :math:`\rho = 1 - \epsilon` through (an
:math:`O(\sqrt\epsilon) \approx 10^{-8}` relative error in the NTK). ``arccos`` is fdlibm's
(:func:`acos`, < 1 ulp), written with selects instead of branches so that the compiler
vectorizes the loop: the C library's scalar ``acos`` is about 15 times slower than numpy's
vectorized one. :math:`\sin\theta = \sqrt{(1-\rho)(1+\rho)}`, whose factor
:math:`1 - \rho` is exact near :math:`\rho = 1` (Sterbenz): :math:`\sqrt{1-\rho^2}` would
round :math:`\rho^2` first and lose about :math:`10^{-16}/(1-\rho)` of its relative
accuracy where a layer's correlation is within ~1e-7 of 1 while the inputs are not parallel
(inputs of tiny norm with biases, deep networks); ``tests/test_relu_precision.py`` checks
the pass against a 50-digit recursion there.

:func:`tile_pass` takes float64 C-contiguous arrays, float64/int64/bool scalars only: one
compiled signature, cached on disk by numba (``cache=True``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_OPTS = dict(
    fastmath=False,
    error_model="numpy",
    cache=True,
    nogil=True,
)

# fdlibm e_acos.c: pi/2 split in two doubles, and the rational approximation of
# (asin(s) - s) / s^3 in z = s^2 on [0, 1/4].
_PIO2_HI = 1.57079632679489655800e00
_PIO2_LO = 6.12323399573676603587e-17
_PI = 3.14159265358979311600e00
_PS0 = 1.66666666666666657415e-01
_PS1 = -3.25565818622400915405e-01
_PS2 = 2.01212532134862925881e-01
_PS3 = -4.00555345006794114027e-02
_PS4 = 7.91534994289814532176e-04
_PS5 = 3.47933107596021167570e-05
_QS1 = -2.40339491173441421878e00
_QS2 = 2.02094576023350569471e00
_QS3 = -6.88283971605453293030e-01
_QS4 = 7.70381505559019352791e-02
_SPLIT = 134217729.0  # 2^27 + 1: Veltkamp's split of a double into two 26-bit halves
_TWO_PI = 2 * math.pi


@njit(inline="always", **_OPTS)
def acos(x):
    """``arccos(x)`` for ``x`` in [-1, 1], fdlibm's algorithm with selects instead of branches.

    |x| <= 1/2: pi/2 - asin(x); x > 1/2: 2 asin(sqrt((1 - x)/2)), with sqrt carried to about
    80 bits (fdlibm masks the low word of s; here Veltkamp's split, exact without FMA);
    x < -1/2: pi - 2 asin(sqrt((1 + x)/2)). Error < 1 ulp (tested against long double).
    """
    a = abs(x)
    big = a > 0.5
    z = (1.0 - a) * 0.5 if big else x * x
    s = math.sqrt(z)
    p = z * (_PS0 + z * (_PS1 + z * (_PS2 + z * (_PS3 + z * (_PS4 + z * _PS5)))))
    q = 1.0 + z * (_QS1 + z * (_QS2 + z * (_QS3 + z * _QS4)))
    r = p / q
    small = _PIO2_HI - (x - (_PIO2_LO - x * r))
    negative = _PI - 2.0 * (s + (r * s - _PIO2_LO))
    hi = s * _SPLIT
    df = hi - (hi - s)  # s rounded to 26 bits: df * df is exact
    c = (z - df * df) / ((s + df) if z > 0.0 else 1.0)  # sqrt(z) = df + c to ~80 bits
    positive = 2.0 * (df + (r * s + c))
    return small if not big else (positive if x > 0.0 else negative)


@njit(inline="always", **_OPTS)
def _hidden(s, t, norm, diag, gv, g, b2):
    """One ReLU + dense step at one pair: returns the new (Sigma, Theta).

    ``s``, ``t``: Sigma, Theta of the pre-activations; ``norm`` = sqrt(Sigma(x,x) Sigma(z,z));
    ``diag``: the pair is one input (rho = 1 exactly where norm > 0); ``gv``, ``g``, ``b2``:
    the dense layer's g v, g and beta^2 (see :class:`ntklab.layers.Dense`).
    """
    rho = s / norm if norm > 0.0 else 0.0
    rho = 1.0 if rho > 1.0 else (-1.0 if rho < -1.0 else rho)
    rho = 1.0 if (diag and norm > 0.0) else rho
    theta = acos(rho)
    sin = math.sqrt((1.0 - rho) * (1.0 + rho))  # exact 1 - rho: no cancellation near 1
    # (sin + (pi - theta) cos) / (2 pi) = cos / 2 + (sin - theta cos) / (2 pi): exactly 1/2
    # at rho = 1, so a pair of equal (or, without biases, proportional) inputs has exactly
    # the variance of its input at the next layer, hence rho = 1 exactly again.
    e_phi = rho * 0.5 + (sin - theta * rho) / _TWO_PI
    e_phi = e_phi * norm  # E[phi(u) phi(v)]
    e_dphi = (_PI - theta) / _TWO_PI  # E[phi'(u) phi'(v)]
    t_new = e_phi * g + b2 + gv * (e_dphi * t)
    return e_phi * gv + b2, t_new


@njit(parallel=True, **_OPTS)
def tile_pass(nngp, ntk, X, ZT, dx, dz, coef, d, inline_gram, tiles, size, symmetric):
    """Fill ``nngp`` and ``ntk`` (n, m) with the kernels, tile by tile, tiles in parallel.

    Parameters
    ----------
    nngp, ntk : float64 (n, m), C order
        Outputs; with ``inline_gram`` False, ``nngp`` holds X Z^T on entry.
    X, ZT : float64 (n, d), (d, m), C order
        The inputs (Z transposed); read only with ``inline_gram``.
    dx, dz : float64 (L, n), (L, m)
        Sigma^l(x, x) and Sigma^l(z, z) for l = 1..L (the inputs of the L ReLUs).
    coef : float64 (L + 1, 3)
        (g v, g, beta^2) of each dense layer, the input layer first.
    d : float64
        Input dimension (the input layer's mean inner product is x.z / d).
    inline_gram : bool
        Compute the inner products here (summed in feature order) rather than read them.
    tiles : int64 (T, 2)
        The tiles (row block, column block) to compute, of ``size`` rows and columns
        (fewer at the last row and column).
    size : int64
    symmetric : bool
        Z is X, and ``tiles`` lists only those on and above the diagonal (column block >=
        row block): each is also written, transposed, to its mirror image, so both outputs
        are exactly symmetric; on a diagonal tile the pairs (i, i) get rho = 1 exactly at
        every layer and the entries below the diagonal are copied from those above. Tiles
        are computed in scratch space and written after, and a tile reads only its own
        entries of the Gram matrix, which lie on or above the diagonal: no mirror image
        overwrites a Gram entry still to be read.
    """
    n, m = nngp.shape
    features, depth = ZT.shape[0], dx.shape[0]
    for k in prange(tiles.shape[0]):
        r0, c0 = tiles[k, 0] * size, tiles[k, 1] * size
        rows, cols = min(n, r0 + size) - r0, min(m, c0 + size) - c0
        on_diag = symmetric and r0 == c0
        # scratch: the tile's two kernels, and its columns' inputs and variances
        S = np.empty((rows, cols))
        T = np.empty((rows, cols))
        zt = np.empty((features, cols))
        dzt = np.empty((depth, cols))
        for layer in range(depth):
            for jj in range(cols):
                dzt[layer, jj] = dz[layer, c0 + jj]
        if inline_gram:
            for f in range(features):
                for jj in range(cols):
                    zt[f, jj] = ZT[f, c0 + jj]
        for ii in range(rows):  # row by row: each row stays in L1 through all layers
            if inline_gram:  # inner products, summed in feature order
                for jj in range(cols):
                    S[ii, jj] = 0.0
                for f in range(features):
                    xf = X[r0 + ii, f]
                    for jj in range(cols):
                        S[ii, jj] = S[ii, jj] + xf * zt[f, jj]
            else:
                for jj in range(cols):
                    S[ii, jj] = nngp[r0 + ii, c0 + jj]
            gv, g, b2 = coef[0, 0], coef[0, 1], coef[0, 2]
            for jj in range(cols):  # the input layer: mean inner product x.z / d
                c = S[ii, jj] / d
                S[ii, jj] = c * gv + b2
                T[ii, jj] = c * g + b2
            diag_col = ii if on_diag else -1
            for layer in range(depth):
                gv, g, b2 = coef[layer + 1, 0], coef[layer + 1, 1], coef[layer + 1, 2]
                dxi = dx[layer, r0 + ii]
                for jj in range(cols):
                    norm = math.sqrt(dxi * dzt[layer, jj])
                    S[ii, jj], T[ii, jj] = _hidden(
                        S[ii, jj], T[ii, jj], norm, jj == diag_col, gv, g, b2
                    )
        for ii in range(rows):
            j0 = ii if on_diag else 0
            nngp[r0 + ii, c0 + j0 : c0 + cols] = S[ii, j0:]
            ntk[r0 + ii, c0 + j0 : c0 + cols] = T[ii, j0:]
        if symmetric:  # the mirror image, in strips of 8 output rows (8 write streams)
            for j0 in range(0, cols, 8):
                j1 = min(cols, j0 + 8)
                for ii in range(rows):
                    for jj in range(max(j0, ii) if on_diag else j0, j1):
                        nngp[c0 + jj, r0 + ii] = S[ii, jj]
                        ntk[c0 + jj, r0 + ii] = T[ii, jj]
