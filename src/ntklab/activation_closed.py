r"""The closed-form activations and the finite activation layer (see :mod:`ntklab.activations`).

:class:`ABReLU` (``leaky_relu``, ``abrelu``; Cho & Saul 2009) and :class:`Erf` (Williams
1997): layer objects whose kernel map is written out, and :class:`ActivationModule`, the
finite layer every activation of :mod:`ntklab.activations` builds.

References
----------
Williams, C. K. I. (1997). Computing with infinite networks. NeurIPS 9.
Cho, Y. and Saul, L. (2009). Kernel methods for deep learning. NeurIPS 22.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["ActivationModule", "ABReLU", "Erf", "correlations"]


def _number(x: float) -> str:
    """The shortest string that reads back as ``x`` (``1.0`` -> ``"1"``)."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


class ActivationModule(nn.Module):
    """Elementwise activation :math:`\\phi` of a layer object, with its derivative
    :math:`\\phi'` (for the hand-written back-propagation of :func:`ntklab.monte_carlo_kernels`
    and the structured :func:`ntklab.empirical_ntk`). Holds only the (picklable) layer
    object, whose ``torch_forward`` and ``torch_derivative`` it calls."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    @property
    def name(self) -> str:
        return self.layer.name

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.layer.torch_forward(h)

    def derivative(self, h: torch.Tensor) -> torch.Tensor:
        """:math:`\\phi'(h)`, elementwise."""
        return self.layer.torch_derivative(h)

    def extra_repr(self) -> str:
        return self.name


_SNAP = 1.0 - 8 * np.finfo(np.float64).eps


def correlations(cov, var_x, var_z):
    """Correlation and sqrt(var_x var_z). The correlation is 0 where a variance is 0, and
    ±1 where it is within 8 ulp of ±1 (or beyond): equal inputs, whose inner product and
    squared norms were summed in different orders, get exactly 1, where arccos would turn
    the rounding into an O(1e-8) error (the compiled ReLU pass does the same by summing in
    feature order)."""
    norm = np.sqrt(np.multiply.outer(var_x, var_z))
    rho = np.divide(cov, norm, out=np.zeros_like(cov), where=norm > 0)
    np.clip(rho, -1.0, 1.0, out=rho)
    np.copysign(1.0, rho, out=rho, where=np.abs(rho) > _SNAP)
    return rho, norm


class _ClosedPlan:
    """Kernel map of a closed-form activation on the rows of X and Z at one layer."""

    def __init__(self, layer, var_x, var_z):
        self.layer, self.var_x, self.var_z = layer, var_x, var_z

    def second_moments(self, which: str):
        """:math:`(\\mathbb E[\\phi(u)^2], \\mathbb E[\\phi'(u)^2])` of every row of
        ``"x"`` or ``"z"``."""
        return self.layer.second_moments(self.var_x if which == "x" else self.var_z)

    def moments(self, cov, rows: slice, cols: slice):
        return self.layer.moments(cov, self.var_x[rows], self.var_z[cols])


@dataclass(frozen=True)
class ABReLU:
    r"""Piecewise-linear :math:`\phi(u) = a u` for :math:`u < 0`, :math:`b u` for :math:`u \ge 0`.

    ``leaky_relu(s)`` is :math:`a = s, b = 1`; ReLU is :math:`a = 0, b = 1`. Closed form
    from the arc-cosine moments (Cho & Saul 2009): writing :math:`\phi(u) = b\,r(u) - a\,r(-u)`
    with :math:`r` the ReLU and :math:`(u, -v)` of correlation :math:`-\rho`, with
    :math:`\theta = \arccos\rho` and :math:`s = \sqrt{\Sigma_{xx}\Sigma_{zz}}`,

    .. math::

        \mathbb E[\phi(u)\phi(v)] = \frac{s}{2\pi}\Big[(a^2 + b^2)(\sin\theta + (\pi - \theta)
            \cos\theta) - 2ab(\sin\theta - \theta\cos\theta)\Big],

        \mathbb E[\phi'(u)\phi'(v)] = \frac{(a^2 + b^2)(\pi - \theta) + 2ab\,\theta}{2\pi}.
    """

    negative_slope: float
    positive_slope: float = 1.0
    leaky: bool = False

    @property
    def name(self) -> str:
        if self.leaky:
            return f"leaky_relu({_number(self.negative_slope)})"
        return f"abrelu({_number(self.negative_slope)}, {_number(self.positive_slope)})"

    def module(self, fan_in=None, fan_out=None, *, generator=None, dtype=None) -> ActivationModule:
        return ActivationModule(self)

    def torch_forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.where(h >= 0, h * self.positive_slope, h * self.negative_slope)

    def torch_derivative(self, h: torch.Tensor) -> torch.Tensor:
        return torch.full_like(h, self.negative_slope).masked_fill_(h > 0, self.positive_slope)

    def second_moments(self, var):
        r""":math:`\mathbb E[\phi(u)^2] = (a^2 + b^2)\Sigma/2`, :math:`\mathbb E[\phi'(u)^2] =
        (a^2 + b^2)/2`, per row."""
        c = self.negative_slope**2 + self.positive_slope**2
        return c * var / 2.0, np.full_like(var, c / 2.0)

    def moments(self, cov, var_x, var_z):
        """The two moments of every pair: ``cov`` (R, C), variances (R,) and (C,)."""
        a, b = self.negative_slope, self.positive_slope
        rho, s = correlations(cov, var_x, var_z)
        theta = np.arccos(rho)
        sin = np.sqrt(np.maximum(1.0 - rho * rho, 0.0))
        e_phi = (a * a + b * b) * (sin + (np.pi - theta) * rho)
        e_phi -= 2 * a * b * (sin - theta * rho)
        e_phi *= s / (2 * np.pi)
        e_dphi = ((a * a + b * b) * (np.pi - theta) + 2 * a * b * theta) / (2 * np.pi)
        return e_phi, e_dphi

    def kernel_plan(self, var_x, var_z) -> _ClosedPlan:
        return _ClosedPlan(self, var_x, var_z)


@dataclass(frozen=True)
class Erf:
    r"""The error function :math:`\phi(u) = \operatorname{erf}(u)` (Williams 1997).

    .. math::

        \mathbb E[\phi(u)\phi(v)] = \frac2\pi \arcsin
            \frac{2\Sigma_{xz}}{\sqrt{(1 + 2\Sigma_{xx})(1 + 2\Sigma_{zz})}},

        \mathbb E[\phi'(u)\phi'(v)] = \frac4\pi
            \big[(1 + 2\Sigma_{xx})(1 + 2\Sigma_{zz}) - 4\Sigma_{xz}^2\big]^{-1/2},

    the second from :math:`\phi'(u) = \tfrac{2}{\sqrt\pi} e^{-u^2}` and
    :math:`\mathbb E[e^{-u^2 - v^2}] = \det(I + 2\Sigma)^{-1/2}`.
    """

    name = "erf"

    def module(self, fan_in=None, fan_out=None, *, generator=None, dtype=None) -> ActivationModule:
        return ActivationModule(self)

    def torch_forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.erf(h)

    def torch_derivative(self, h: torch.Tensor) -> torch.Tensor:
        return torch.exp(-h * h) * (2.0 / math.sqrt(math.pi))

    def second_moments(self, var):
        r"""Per row: :math:`\frac2\pi\arcsin\frac{2\Sigma}{1 + 2\Sigma}` and
        :math:`\frac4\pi (1 + 4\Sigma)^{-1/2}`."""
        return 2 / np.pi * np.arcsin(2 * var / (1 + 2 * var)), 4 / np.pi / np.sqrt(1 + 4 * var)

    def moments(self, cov, var_x, var_z):
        """The two moments of every pair: ``cov`` (R, C), variances (R,) and (C,)."""
        prod = np.multiply.outer(1 + 2 * var_x, 1 + 2 * var_z)
        arg = 2 * cov / np.sqrt(prod)
        np.clip(arg, -1.0, 1.0, out=arg)
        det = prod - 4 * cov * cov
        np.maximum(det, 1.0, out=det)  # >= 1 + 2 var_x + 2 var_z when |cov|^2 <= var_x var_z
        return 2 / np.pi * np.arcsin(arg), 4 / np.pi / np.sqrt(det)

    def kernel_plan(self, var_x, var_z) -> _ClosedPlan:
        return _ClosedPlan(self, var_x, var_z)


# ---- quadrature -------------------------------------------------------------------------------
