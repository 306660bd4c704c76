r"""Contractions of one layer's per-example features into empirical-NTK blocks.

A layer :math:`h_t = s\, W u_t + \beta b` applied at positions :math:`t` (one for a dense
layer, the patches of a convolution), with inputs :math:`u` (b, T, a) and deltas
:math:`\delta_{k} = \partial f_k / \partial h` (b, K, T, c), contributes to
:math:`\hat\Theta_{kl}(x, z)`

.. math::

    s^2 \sum_{t, t'} (\delta_{k,t}(x) \cdot \delta_{l,t'}(z))\, (u_t(x) \cdot u_{t'}(z))
    + \beta^2 \sum_{t, t'} \delta_{k,t}(x) \cdot \delta_{l,t'}(z),

computed either that way (:func:`structured_block`, Novak et al. 2022's structured
derivatives) or from the per-example gradients :math:`s \sum_t \delta_{k,t} u_t^\top`
(:func:`weight_grads`) by one matrix product (:func:`contract`); :func:`use_structured` picks
the cheaper. ``g`` is any object with ``scale``, ``beta`` and ``bias`` (None: no bias).

References
----------
Novak, R., Sohl-Dickstein, J. and Schoenholz, S. S. (2022). Fast finite width neural tangent
kernel. ICML.
"""

from __future__ import annotations

import torch

__all__ = ["contract", "structured_block", "use_structured", "weight_grads"]


def weight_grads(g, u: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Per-example gradients of the weight and bias, (b, K, c*a [+ c])."""
    b, K = d.shape[:2]
    G = torch.einsum("bktc,bta->bkca", d, u).reshape(b, K, -1) * g.scale
    if g.bias is not None:
        G = torch.cat([G, d.sum(2) * g.beta], 2)
    return G


def structured_block(g, fx: tuple, fz: tuple, output: str) -> torch.Tensor:
    """Contribution of one group from inputs and deltas (never forming weight gradients)."""
    (ux, dx), (uz, dz) = fx, fz
    b, K, T, c = dx.shape
    m, T2 = dz.shape[0], dz.shape[2]
    uu = (ux.reshape(b * T, -1) @ uz.reshape(m * T2, -1).T).reshape(b, T, m, T2)
    if output == "full":
        dd = (dx.reshape(b * K * T, c) @ dz.reshape(m * K * T2, c).T).reshape(b, K, T, m, K, T2)
        out = torch.einsum("bktmls,btms->bmkl", dd, uu) * g.scale**2
        if g.bias is not None:
            out = out + g.beta**2 * dd.sum((2, 5)).permute(0, 2, 1, 3)
        return out
    dd = dx.transpose(1, 2).reshape(b * T, K * c) @ dz.transpose(1, 2).reshape(m * T2, K * c).T
    dd = dd.reshape(b, T, m, T2)
    out = (dd * uu).sum((1, 3)) * g.scale**2
    if g.bias is not None:
        out = out + g.beta**2 * dd.sum((1, 3))
    return out


def contract(A: torch.Tensor, B: torch.Tensor, output: str) -> torch.Tensor:
    """sum_p A[i, a, p] B[j, b, p] as (n, m) (trace) or (n, m, K, K) (full)."""
    n, K, _ = A.shape
    m = B.shape[0]
    if output == "full":
        return (
            (A.reshape(n * K, -1) @ B.reshape(m * K, -1).T).reshape(n, K, m, K).permute(0, 2, 1, 3)
        )
    return A.reshape(n, -1) @ B.reshape(m, -1).T


def use_structured(T: int, a: int, c: int, K: int, n: int, implementation: str) -> bool:
    """Whether :func:`structured_block` costs fewer operations than :func:`weight_grads` then
    :func:`contract` for a layer of T positions, a inputs, c outputs, K network outputs and
    chunks of n rows (``implementation`` "structured" / "materialized" forces one)."""
    if implementation in ("structured", "materialized"):
        return implementation == "structured"
    structured = n * n * T * T * (a + K * c)
    materialized = n * K * T * a * c + n * n * K * a * c
    return structured < materialized
