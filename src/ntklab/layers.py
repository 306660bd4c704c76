r"""Layers that yield their finite PyTorch module and their kernel map side by side.

Each layer object has two faces that come from the same numbers:

* its kernel map, which takes the NNGP and NTK of the layer's input to those of its output
  in the infinite-width limit: :attr:`Dense.kernel_coefficients` are the constants of a
  dense layer's map, and :func:`ntklab.kernels.relu_network_kernels` applies them, with
  :class:`ReLU`'s arc-cosine map between them, in one compiled pass;
* ``layer.module(fan_in, fan_out, generator=..., dtype=...)`` builds the finite layer
  (a dense layer's parameters come from :meth:`Dense.draw`, which Monte-Carlo estimates
  also call, through :meth:`ntklab.Architecture.draw_parameters`, without the modules).

:class:`ntklab.Architecture` builds both the kernels and the network from one tuple of
these layers, so a kernel and its network cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .dense_pass import dense

__all__ = ["Dense", "ReLU", "DenseModule"]


class DenseModule(nn.Module):
    r"""Finite dense layer :math:`h = \sqrt{g/n_\text{in}}\, W z + \beta b`.

    ``weight`` is drawn :math:`\mathcal N(0, v)` and ``bias`` :math:`\mathcal N(0, 1)`; the
    scale factors are applied in :meth:`forward` (NTK parameterization), so that gradient
    descent sees the same gradient scales as the analytic NTK. With ``beta = 0`` the layer has
    no bias parameter.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, scale: float, beta: float):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias) if bias is not None else None
        self.scale = float(scale)
        self.beta = float(beta)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return dense(z, self.weight, self.bias, self.scale, self.beta)

    def extra_repr(self) -> str:
        out_f, in_f = self.weight.shape[-2:]
        return f"in={in_f}, out={out_f}, scale={self.scale:.4g}, beta={self.beta:.4g}"


@dataclass(frozen=True)
class Dense:
    r"""Dense layer with gain :math:`g`, weight variance :math:`v` and bias scale :math:`\beta`.

    Finite layer of width :math:`n_\text{out}` on an input of width :math:`n_\text{in}`:

    .. math::

        h_i = \sqrt{g / n_\text{in}} \sum_j W_{ij} z_j + \beta b_i,
        \qquad W_{ij} \sim \mathcal N(0, v),\; b_i \sim \mathcal N(0, 1).

    Kernel map (``cov``, ``ntk`` of the input units to those of :math:`h`; Jacot et al. 2018,
    Lee et al. 2019), with :math:`\bar\Sigma` the mean inner product of the inputs:

    .. math::

        \Sigma_h = g v \bar\Sigma + \beta^2, \qquad
        \Theta_h = \underbrace{g \bar\Sigma}_{\partial/\partial W}
                 + \underbrace{\beta^2}_{\partial/\partial b}
                 + g v\, \bar\Theta_\text{in}.

    For a hidden layer (:math:`g = \sigma_w^2`, :math:`v = 1`, input :math:`\phi(h^l)`) this
    is SPEC §2's :math:`\Sigma^{l+1} = \sigma_w^2 \mathbb E[\phi\phi] + \beta^2` and
    :math:`\Theta^{l+1} = \Theta^l \dot\Sigma^{l+1} + \Sigma^{l+1}`; for the first layer
    (:math:`g = a_1^2 d`, :math:`v = v_1`, :math:`\bar\Sigma = x\cdot x'/d`) it is
    :math:`\Sigma^1 = a_1^2 v_1\, x\cdot x' + \beta^2` and :math:`\Theta^1 = a_1^2\, x\cdot x' + \beta^2`.
    """

    gain: float
    weight_var: float
    bias: float

    @property
    def kernel_coefficients(self) -> tuple[float, float, float]:
        r"""The constants :math:`(g v, g, \beta^2)` of the kernel map above."""
        return self.gain * self.weight_var, self.gain, self.bias**2

    def draw(
        self, fan_in: int, fan_out: int, *, generator: torch.Generator, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        r"""The finite layer's parameters: ``weight`` (fan_out, fan_in) :math:`\sim \mathcal
        N(0, v)`, then ``bias`` (fan_out,) :math:`\sim \mathcal N(0, 1)` (None when
        :math:`\beta = 0`), drawn in float64 from ``generator`` and rounded to ``dtype``."""
        weight = torch.randn(fan_out, fan_in, generator=generator, dtype=torch.float64)
        if self.weight_var != 1.0:
            weight *= math.sqrt(self.weight_var)
        bias = None
        if self.bias != 0.0:
            bias = torch.randn(fan_out, generator=generator, dtype=torch.float64)
        return weight.to(dtype), None if bias is None else bias.to(dtype)

    def module(
        self, fan_in: int, fan_out: int, *, generator: torch.Generator, dtype: torch.dtype
    ) -> DenseModule:
        weight, bias = self.draw(fan_in, fan_out, generator=generator, dtype=dtype)
        return DenseModule(weight, bias, scale=math.sqrt(self.gain / fan_in), beta=self.bias)


@dataclass(frozen=True)
class ReLU:
    r"""ReLU :math:`\phi(u) = \max(u, 0)`.

    Kernel map (Cho & Saul 2009; applied by :func:`ntklab.kernels.relu_network_kernels`,
    and on whole matrices by :func:`ntklab.kernels.relu_moments`):

    .. math::

        \bar\Sigma_\text{out} = \mathbb E[\phi(u)\phi(v)], \qquad
        \bar\Theta_\text{out} = \mathbb E[\phi'(u)\phi'(v)]\; \Theta_\text{in},
        \qquad (u, v) \sim \mathcal N(0, \Sigma_\text{in}).
    """

    def module(self, fan_in: int, fan_out: int, *, generator=None, dtype=None) -> nn.Module:
        return nn.ReLU()
