"""Stacked dense networks, layer by layer: the exact forward and backward pass and the
layer-wise empirical-NTK Gram matrix.

A network of :meth:`ntklab.Architecture.network` (dense layers and one activation) is read
as its layers (:func:`network_layers`), and ``S`` networks of the same shape as one stack of
weights with a leading member axis (:func:`stacked_layers`). :func:`features` runs them
forward and back-propagates the deltas exactly; :func:`structured_gram` sums each layer's
contribution to the empirical NTK. Both :func:`ntklab.empirical.empirical_ntk`'s structured
path and the Monte-Carlo estimates of :mod:`ntklab.monte_carlo` use these.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .training import engine
from .training.engine import DenseSpec

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DenseLayer",
    "stacked_layers",
    "features",
    "structured_gram",
    "network_layers",
]

DEFAULT_MAX_BYTES = 256 * 2**20  # Jacobian / feature memory per chunk


@dataclass(frozen=True)
class DenseLayer:
    """One dense layer of ``S`` stacked networks: weight (S, out, in), bias (S, out) or None."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    scale: float
    beta: float


def stacked_layers(params: dict[str, torch.Tensor], specs: list[DenseSpec]) -> list[DenseLayer]:
    """The layers of stacked networks, from the engine's parameter dict (leading member axis)
    and layer description (:func:`ntklab.training.engine.dense_specs`)."""
    return [
        DenseLayer(
            params[sp.weight], None if sp.bias is None else params[sp.bias], sp.scale, sp.beta
        )
        for sp in specs
    ]


def features(stack: list[DenseLayer], x: torch.Tensor, activation=None):
    """Forward and exact backward of stacked networks on rows ``x`` (n, d).

    ``activation``: None for ReLU, else the network's activation module (an
    :class:`ntklab.activations.ActivationModule`, with its ``derivative``).
    Returns ``f`` (S, n), and per dense layer its inputs ``Z_l`` ((n, d) or (S, n, in)) and
    deltas ``Delta_l = df/dh_l`` (S, n, out).
    """
    inputs, pre = [], []
    z = x
    for k, layer in enumerate(stack):
        if k:
            z = torch.relu(pre[-1]) if activation is None else activation(pre[-1])
        inputs.append(z)
        h = torch.matmul(z, layer.weight.transpose(-1, -2))
        h *= layer.scale
        if layer.bias is not None:
            h += layer.beta * layer.bias.unsqueeze(-2)
        pre.append(h)
    f = pre[-1][..., 0]
    deltas = [None] * len(stack)
    delta = torch.ones_like(pre[-1])
    deltas[-1] = delta
    for k in range(len(stack) - 1, 0, -1):
        delta = torch.matmul(delta, stack[k].weight) * stack[k].scale
        if activation is None:
            delta *= pre[k - 1] > 0
        else:
            delta *= activation.derivative(pre[k - 1])
        deltas[k - 1] = delta
    return f, inputs, deltas


def structured_gram(stack, feats_x, feats_z) -> torch.Tensor:
    """Sum over layers of the empirical-NTK contributions, (S, n, m), accumulated in float64."""
    _, in_x, dl_x = feats_x
    _, in_z, dl_z = feats_z
    total = None
    for layer, zx, zz, dx, dz in zip(stack, in_x, in_z, dl_x, dl_z, strict=True):
        dd = torch.matmul(dx, dz.transpose(-1, -2))
        term = torch.matmul(zx, zz.transpose(-1, -2)) * dd
        term *= layer.scale**2
        if layer.bias is not None:
            term += layer.beta**2 * dd
        term = term.double()
        total = term if total is None else total + term
    return total


def network_layers(net) -> tuple[list[DenseSpec] | None, nn.Module | None]:
    """The dense layers of a network of :meth:`ntklab.Architecture.network` and its
    activation module (:func:`ntklab.training.engine.dense_stack`): (specs, None) for ReLU,
    (specs, module) for one activation of :mod:`ntklab.activations`, (None, None) for any
    other module."""
    from .activations import ActivationModule

    stack = engine.dense_stack(net)
    if stack is None:
        return None, None
    specs, act = stack
    if type(act) is nn.ReLU:
        return specs, None
    if isinstance(act, ActivationModule) and len(specs) >= 2:
        return specs, act
    return None, None
