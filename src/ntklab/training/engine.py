r"""The one functional definition of a finite network's computation, on :mod:`torch.func`.

A network's parameters are a dict ``{name: tensor}`` (:func:`parameters`), or, for ``k``
networks of one architecture, the same dict with a leading member axis of size ``k``
(:func:`stack_parameters`, :func:`torch.func.stack_module_state`). Everything that evaluates
or differentiates a network goes through :func:`forward`, which is
``torch.func.functional_call(net, params, x)``, i.e. the module's own ``forward``:

* :func:`stacked_forward`: ``vmap`` of :func:`forward` over the members (inputs shared,
  (n, d), or one set per member, (k, n, d));
* :func:`loss_and_grad` / :func:`stacked_loss_and_grad`: the mean squared residual
  :math:`\frac1B\sum_i (f(x_i) - t_i)^2` and its gradient, ``torch.func.grad_and_value``
  (under ``vmap`` for stacked members);
* :func:`jacobian`: per-row Jacobians :math:`\partial f(x_i)/\partial\theta`,
  ``vmap(jacrev(...))``, for the empirical NTK :math:`\hat\Theta = J J^\top`.

The hand-written fast paths (:mod:`ntklab.training.fused` for SGD,
:func:`ntklab.empirical.empirical_ntk`'s structured formula, both on the one dense
forward/backward pass of :mod:`ntklab.dense_pass`) read the same parameter dict,
through the layer description :func:`dense_specs`, the one rule that decides whether a
network is a stack of dense layers and ReLUs with a scalar output (the networks of
:meth:`ntklab.Architecture.network`). Each is tested against this module in float64.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, jacrev, stack_module_state, vmap

from ..layers import DenseModule
from ..networks import FullyConnectedNetwork

__all__ = [
    "DenseSpec",
    "dense_specs",
    "dense_stack",
    "parameters",
    "stack_parameters",
    "unstack_parameters",
    "forward",
    "stacked_forward",
    "mean_square",
    "squared_loss",
    "loss_and_grad",
    "stacked_loss_and_grad",
    "jacobian",
]

Params = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class DenseSpec:
    """One dense layer :math:`h = s\\, z W^\\top + \\beta b` of a network, by parameter name.

    Attributes
    ----------
    weight : str
        Key of the weight (out, in) in the parameter dict.
    bias : str or None
        Key of the bias (out,), or ``None`` for a layer without bias.
    scale, beta : float
        :attr:`DenseModule.scale` and :attr:`DenseModule.beta`.
    """

    weight: str
    bias: str | None
    scale: float
    beta: float


def dense_stack(net: nn.Module) -> tuple[list[DenseSpec], nn.Module] | None:
    """The dense layers of ``net`` and its one activation module, if ``net`` is Dense,
    (activation, Dense)* with the same activation between every pair and a scalar output;
    ``None`` for any other module.

    The one structural rule behind the hand-written paths: :func:`dense_specs` (training,
    ReLU only) and the structured empirical NTK and Monte Carlo (:mod:`ntklab.empirical`,
    any activation of :mod:`ntklab.activations`).
    """
    if not isinstance(net, FullyConnectedNetwork):
        return None
    mods = list(net.layers)
    if len(mods) % 2 == 0:
        return None
    act = mods[1] if len(mods) > 1 else nn.ReLU()
    for i, mod in enumerate(mods):
        if i % 2 == 0 and type(mod) is not DenseModule:
            return None
        if i % 2 and (
            type(mod) is not type(act) or getattr(mod, "name", None) != getattr(act, "name", None)
        ):
            return None
    if mods[-1].weight.shape[0] != 1:
        return None
    specs = [
        DenseSpec(
            weight=f"layers.{i}.weight",
            bias=None if mods[i].bias is None else f"layers.{i}.bias",
            scale=mods[i].scale,
            beta=mods[i].beta,
        )
        for i in range(0, len(mods), 2)
    ]
    return specs, act


def dense_specs(net: nn.Module) -> list[DenseSpec] | None:
    """The dense layers of ``net`` if it is Dense, (ReLU, Dense)* with a scalar output.

    The rule of :func:`dense_stack` with ReLU as the activation: every hand-written
    training path needs it; ``None`` for any other module (which then takes the
    :mod:`torch.func` path).

    Parameters
    ----------
    net : torch.nn.Module

    Returns
    -------
    list of DenseSpec or None
    """
    stack = dense_stack(net)
    if stack is None or type(stack[1]) is not nn.ReLU:
        return None
    return stack[0]


def parameters(net: nn.Module) -> dict[str, torch.Tensor]:
    """The network's parameters as a dict (detached views sharing the module's storage)."""
    return {name: p.detach() for name, p in net.named_parameters()}


def stack_parameters(nets: list[nn.Module]) -> dict[str, torch.Tensor]:
    """Parameters of networks of one architecture stacked on a leading member axis (copies)."""
    stacked, _ = stack_module_state(nets)
    return {name: p.detach() for name, p in stacked.items()}


def unstack_parameters(params: Params, nets: list[nn.Module]) -> None:
    """Copy stacked parameters (k, ...) back into the ``k`` networks ``nets``, in place."""
    with torch.no_grad():
        for j, net in enumerate(nets):
            for name, p in net.named_parameters():
                p.copy_(params[name][j])


def forward(net: nn.Module, params: Params, x: torch.Tensor, *frozen: Params) -> torch.Tensor:
    """``net``'s output on ``x`` (n, d) with parameters ``params`` (and the ``frozen`` dicts:
    parameters not trained, buffers): ``torch.func.functional_call``, shape (n,)."""
    out = functional_call(net, (dict(params), *frozen), (x,))
    return out.reshape(x.shape[0])


def stacked_forward(net: nn.Module, params: Params, x: torch.Tensor) -> torch.Tensor:
    """Outputs (k, n) of ``k`` stacked members on ``x`` (n, d) shared, or (k, n, d)."""

    def one(p, xi):
        return forward(net, p, xi)

    return vmap(one, in_dims=(0, 0 if x.dim() == 3 else None))(dict(params), x)


def mean_square(residuals: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    r"""The training loss of every path, the mean squared residual :math:`\frac1B \sum_i
    r_i^2` of residuals :math:`r_i = f(x_i) - t_i` over the last axis (into ``out``)."""
    return torch.mean(residuals.square(), -1, out=out)


def squared_loss(
    net: nn.Module, params: Params, x: torch.Tensor, t: torch.Tensor, *frozen: Params
) -> torch.Tensor:
    r"""The mean squared residual :math:`\frac1B \sum_i (f(x_i) - t_i)^2` (a scalar)."""
    return mean_square(forward(net, params, x, *frozen) - t)


def loss_and_grad(
    net: nn.Module, params: Params, x: torch.Tensor, t: torch.Tensor, *frozen: Params
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Gradient (a dict like ``params``) and value of :func:`squared_loss`, ``grad_and_value``."""

    def loss(p):
        return squared_loss(net, p, x, t, *frozen)

    return grad_and_value(loss)(dict(params))


def stacked_loss_and_grad(
    net: nn.Module, params: Params, x: torch.Tensor, t: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-member gradients (k, ...) and losses (k,) of stacked members: ``vmap`` of
    :func:`loss_and_grad`; ``x`` (B, d) shared or (k, B, d), targets ``t`` (B,) or (k, B)."""

    def one(p, xi, ti):
        return grad_and_value(lambda q: squared_loss(net, q, xi, ti))(p)

    dims = (0, 0 if x.dim() == 3 else None, 0 if t.dim() == 2 else None)
    return vmap(one, in_dims=dims)(dict(params), x, t)


def jacobian(
    net: nn.Module, params: Params, x: torch.Tensor, *frozen: Params
) -> list[torch.Tensor]:
    r"""Per-row Jacobians :math:`\partial f(x_i)/\partial\theta`, one (n, size) matrix per
    parameter in the order of ``params`` (``vmap`` of ``jacrev``)."""

    def f_single(p, xi):
        return forward(net, p, xi.unsqueeze(0), *frozen).reshape(())

    J = vmap(jacrev(f_single), in_dims=(None, 0))(dict(params), x)
    return [J[name].reshape(x.shape[0], -1) for name in params]
