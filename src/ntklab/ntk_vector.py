r"""Empirical NTK blocks by NTK-vector products, never forming a Jacobian of the inputs ``x``.

For a cotangent :math:`v` on the outputs of the inputs :math:`z`,

.. math::

    \hat\Theta(x, z)\, v = J(x)\,\bigl(J(z)^\top v\bigr),

one vector-Jacobian product (:func:`torch.func.vjp`, on :math:`z`) followed by one
Jacobian-vector product (:func:`torch.func.jvp`, on :math:`x`). With :math:`v` running over
the :math:`mK` unit cotangents this gives the whole block, a chunk of columns at a time
(:func:`torch.func.vmap`), holding one parameter-sized vector per column instead of one per
example and output of ``x`` (Novak et al. 2022, "NTK-vector products").
:mod:`ntklab.torch_ntk` uses it for the parameters without a structured derivative when their
per-example Jacobians would not fit in its memory budget.

References
----------
Novak, R., Sohl-Dickstein, J. and Schoenholz, S. S. (2022). Fast finite width neural tangent
kernel. ICML.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import jvp, vjp, vmap

__all__ = ["ntvp_block"]


def ntvp_block(
    f: Callable, params: dict, x: torch.Tensor, z: torch.Tensor, K: int, output: str, columns: int
) -> torch.Tensor:
    """The block :math:`\\hat\\Theta(x, z)` w.r.t. ``params`` by NTK-vector products.

    Parameters
    ----------
    f : callable
        ``f(params, rows)`` -> outputs (rows, K).
    params : dict of tensors
    x, z : torch.Tensor
        Rows (b, ...) and (m, ...).
    K : int
        Outputs per example.
    output : {"trace", "full"}
    columns : int
        Unit cotangents processed at once (memory: about one parameter vector and one
        forward-mode pass over ``x`` each).

    Returns
    -------
    torch.Tensor
        (b, m) for ``"trace"``, (b, m, K, K) for ``"full"``, in the parameters' dtype.
    """
    b, m = x.shape[0], z.shape[0]
    _, pullback = vjp(lambda p: f(p, z), params)

    def column(v):
        (g,) = pullback(v)
        return jvp(lambda p: f(p, x), (params,), (g,))[1]

    first = next(iter(params.values()))
    eye = torch.eye(m * K, dtype=first.dtype, device=first.device).reshape(m * K, m, K)
    cols = torch.cat([vmap(column)(eye[i : i + columns]) for i in range(0, m * K, columns)])
    full = cols.reshape(m, K, b, K).permute(2, 0, 3, 1)  # [i, j, a, c] = Theta_ac(x_i, z_j)
    if output == "full":
        return full
    return full.diagonal(dim1=2, dim2=3).sum(-1)
