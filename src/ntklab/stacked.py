"""Stacked dense networks, layer by layer: the exact forward and backward pass and the
layer-wise empirical-NTK Gram matrix.

A network of :meth:`ntklab.Architecture.network` (dense layers and one activation) is read
as its layers (:func:`network_layers`), and ``S`` networks of the same shape as one stack of
weights with a leading member axis (:func:`stacked_layers`). :func:`features` runs them
forward and back-propagates the deltas exactly (the one pass of :mod:`ntklab.dense_pass`,
which the stacked SGD also takes); :func:`structured_gram` sums each layer's
contribution to the empirical NTK. Both :func:`ntklab.empirical.empirical_ntk`'s structured
path and the Monte-Carlo estimates of :mod:`ntklab.monte_carlo` use these.
"""

from __future__ import annotations

import torch
from torch import nn

from .dense_pass import DenseLayer, backward, dense_layers, forward
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


def stacked_layers(params: dict[str, torch.Tensor], specs: list[DenseSpec]) -> list[DenseLayer]:
    """The layers of stacked networks, from the engine's parameter dict (leading member axis)
    and layer description (:func:`ntklab.training.engine.dense_specs`)."""
    return dense_layers(params, specs)


def features(stack: list[DenseLayer], x: torch.Tensor, activation=None):
    """Forward and exact backward of stacked networks on rows ``x`` (n, d).

    ``activation``: None for ReLU, else the network's activation module (an
    :class:`ntklab.activations.ActivationModule`, with its ``derivative``).
    Returns ``f`` (S, n), and per dense layer its inputs ``Z_l`` ((n, d) or (S, n, in)) and
    deltas ``Delta_l = df/dh_l`` (S, n, out): :func:`ntklab.dense_pass.forward` and
    :func:`ntklab.dense_pass.backward` with an output cotangent of ones.
    """
    fwd = forward(stack, x, activation)
    deltas = backward(stack, fwd, torch.ones_like(fwd.outputs), activation)
    return fwd.outputs, fwd.inputs, deltas


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
