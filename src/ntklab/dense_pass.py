r"""The forward and backward pass of a network of dense layers, written once.

A dense layer is :math:`h = s\, z W^\top + \beta b` (:func:`dense`; the scale factors of the
NTK parameterization are applied in the pass, not folded into the weights), and a network of
:meth:`ntklab.Architecture.network` is a list of them with one activation :math:`\phi`
between each pair. A :class:`DenseLayer` holds the tensors of one network (weight
(out, in)) or of ``S`` networks of one shape stacked on a leading member axis (weight
(S, out, in)); every function here takes either.

* :func:`forward`: the outputs :math:`f` and each layer's input :math:`Z_l` (and the
  pre-activations the activation's derivative needs);
* :func:`backward`: the deltas :math:`\Delta_l = \partial (c \cdot f) / \partial h_l` of
  every layer for an output cotangent :math:`c` (all ones: the per-row derivatives
  :math:`\partial f(x_i)/\partial h_l` of the empirical NTK; :math:`\partial\ell/\partial
  f` of a loss: its backward pass), by the chain rule through the activation,
  :math:`\Delta_{l-1} = \phi'(h_{l-1}) \odot s_l \Delta_l W_l`;
* :func:`parameter_gradients`: the same chain rule, and from each delta as it comes
  :math:`\partial (c\cdot f)/\partial W_l = s_l \Delta_l^\top Z_l` and
  :math:`\partial (c\cdot f)/\partial b_l = \beta_l \sum_i \Delta_{l,i}` (the gradient of
  a loss for :math:`c = \partial\ell/\partial f`).

:class:`ntklab.layers.DenseModule` computes its output by :func:`dense`; the stacked SGD
(:class:`ntklab.training.fused.StackedFusedSGD`), the outputs of the one-network fused SGD
and the structured empirical NTK and Monte-Carlo estimates (:mod:`ntklab.stacked`) use
the passes. All of them are tested against autograd on the module in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

__all__ = [
    "DenseLayer",
    "Forward",
    "backward",
    "dense",
    "dense_layers",
    "forward",
    "parameter_gradients",
]


@dataclass(frozen=True)
class DenseLayer:
    """One dense layer :math:`h = s\\, z W^\\top + \\beta b` of one network (weight
    (out, in), bias (out,)) or of ``S`` stacked networks (weight (S, out, in), bias
    (S, out)); ``bias`` is ``None`` for a layer without bias."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    scale: float
    beta: float


#: Rows from which one hidden ReLU layer's gradients take the rank-one form
#: (:func:`_one_hidden_relu_gradients`); measured on one CPU thread, 8 stacked networks of
#: width 512, d = 15 (one run, ms an epoch, rank-one vs general): 800 rows 5.8 vs 6.9-9.5,
#: 128 rows 6.9 vs 7.3, 32 rows 9.4 vs 8.8, 8 rows 20.2 vs 16.3.
RANK_ONE_MIN_ROWS = 128


def dense_layers(params, specs) -> list[DenseLayer]:
    """The layers of a network from its parameter dict (:func:`ntklab.training.engine.
    parameters`, or stacked with a leading member axis) and its layer description
    (:func:`ntklab.training.engine.dense_specs`): the tensors are the dict's, not copies."""
    return [
        DenseLayer(params[sp.weight], None if sp.bias is None else params[sp.bias],
                   float(sp.scale), float(sp.beta))
        for sp in specs
    ]  # fmt: skip


def dense(z: torch.Tensor, weight, bias, scale: float, beta: float) -> torch.Tensor:
    r"""One dense layer, :math:`s\, z W^\top + \beta b`: inputs ``z`` (..., in), weight
    (out, in) or (S, out, in), bias (out,), (S, out) or ``None``; the one formula of
    :class:`ntklab.layers.DenseModule` and of the passes here (under autograd too: the
    in-place scaling only touches the product, whose backward needs ``z`` and ``W``)."""
    w_t = weight.transpose(-1, -2)
    if bias is None:
        return (z @ w_t).mul_(scale)
    if z.dim() == 2 and w_t.dim() == 2:  # beta * b + scale * z W^T, one fused kernel
        return torch.addmm(bias, z, w_t, beta=beta, alpha=scale)
    if w_t.dim() == 3 and z.dim() <= 3:  # the same for stacked members (z shared or not)
        z = z.expand(w_t.shape[0], *z.shape[-2:])
        return torch.baddbmm(bias.unsqueeze(-2), z, w_t, beta=beta, alpha=scale)
    return (z @ w_t).mul_(scale).add_(bias.unsqueeze(-2), alpha=beta)


def _scaled_product(a: torch.Tensor, b: torch.Tensor, scale: float, like: torch.Tensor):
    """``scale * (a @ b)`` in one kernel where the shapes allow (``like``: any tensor of the
    product's shape and dtype, whose values are not read)."""
    if a.shape[-1] == 1:  # an outer product: broadcasting beats a matrix product
        return torch.mul(a, b).mul_(scale)
    if a.dim() == b.dim() == 3 and like.dim() == 3:
        return torch.baddbmm(like, a, b, beta=0.0, alpha=scale)
    if a.dim() == b.dim() == 2 and like.dim() == 2:
        return torch.addmm(like, a, b, beta=0.0, alpha=scale)
    return torch.matmul(a, b).mul_(scale)


class Forward(NamedTuple):
    """What :func:`forward` returns and :func:`backward` reads."""

    outputs: torch.Tensor  # f, (n,) or (S, n)
    inputs: list[torch.Tensor]  # Z_l: each layer's input, x then phi(h_l)
    pre: list[torch.Tensor | None]  # h_l of the hidden layers (None for ReLU: phi' from Z)


def forward(layers: list[DenseLayer], x: torch.Tensor, activation=None) -> Forward:
    """The pass of the network(s) ``layers`` on rows ``x``: (n, d) shared by the stacked
    members, or (S, n, d) one set per member.

    ``activation``: ``None`` for ReLU (applied in place; its derivative is read from its
    output, :math:`1[\\phi(h) > 0]`), else the network's activation module (an
    :class:`ntklab.activations.ActivationModule`, with ``derivative``). Not for autograd:
    run it under ``torch.no_grad()``.
    """
    inputs, pre = [x], []
    h = dense(x, layers[0].weight, layers[0].bias, layers[0].scale, layers[0].beta)
    for layer in layers[1:]:
        if activation is None:
            pre.append(None)
            z = h.relu_()
        else:
            pre.append(h)
            z = activation(h)
        inputs.append(z)
        h = dense(z, layer.weight, layer.bias, layer.scale, layer.beta)
    return Forward(h[..., 0], inputs, pre)


def _deltas(layers, fwd: Forward, cotangent: torch.Tensor, activation, consume: bool):
    """``(l, Delta_l)`` from the output layer down; Delta_{l-1} is computed only when the
    consumer asks for the next pair, so with ``consume`` the ReLU's derivative may be taken
    in place from ``fwd.inputs[l]`` once the consumer has used it."""
    delta = cotangent.unsqueeze(-1)
    for k in range(len(layers) - 1, -1, -1):
        yield k, delta
        if k == 0:
            return
        layer, z = layers[k], fwd.inputs[k]
        if consume and activation is None and delta.shape[-1] == 1:  # in z's own storage
            delta = z.sign_().mul_(delta).mul_(layer.weight * layer.scale)
            continue
        delta = _scaled_product(delta, layer.weight, layer.scale, z)
        if activation is None:  # ReLU: phi'(h) = 1[phi(h) > 0] = sign(phi(h))
            delta.mul_(z.sign_() if consume else torch.sign(z))
        else:
            delta.mul_(activation.derivative(fwd.pre[k - 1]))


def backward(layers: list[DenseLayer], fwd: Forward, cotangent: torch.Tensor, activation=None):
    r"""The deltas :math:`\Delta_l = \partial (c \cdot f)/\partial h_l` of every layer,
    (..., n, out_l), for the output cotangent :math:`c` = ``cotangent`` (shaped like
    ``fwd.outputs``), by the chain rule through the activation of :func:`forward`."""
    deltas = [None] * len(layers)
    for k, delta in _deltas(layers, fwd, cotangent, activation, consume=False):
        deltas[k] = delta
    return deltas


def parameter_gradients(
    layers: list[DenseLayer], fwd: Forward, cotangent: torch.Tensor, activation=None
) -> list[torch.Tensor]:
    r"""The gradients of :math:`c \cdot f` (summed over the rows) for the output cotangent
    :math:`c` = ``cotangent``, in the order of the layers: each layer's weight :math:`s_l
    \Delta_l^\top Z_l`, then its bias :math:`\beta_l \sum_i \Delta_{l,i}` (when it has
    one); stacked members keep their leading axis. Consumes ``fwd`` (for ReLU its hidden
    activations are overwritten by their derivative)."""
    if len(layers) == 2 and activation is None and cotangent.shape[-1] >= RANK_ONE_MIN_ROWS:
        return _one_hidden_relu_gradients(layers, fwd, cotangent)
    out = []
    for k, delta in _deltas(layers, fwd, cotangent, activation, consume=True):
        layer = layers[k]
        if layer.bias is not None:
            out.append(delta.sum(dim=-2).mul_(layer.beta))
        z = fwd.inputs[k]
        if z.dim() < delta.dim():  # inputs shared by the members: (Z^T Delta)^T, no copy
            like = layer.weight.transpose(-1, -2)
            gw = _scaled_product(z.transpose(-1, -2), delta, layer.scale, like).transpose(-1, -2)
        else:
            gw = _scaled_product(delta.transpose(-1, -2), z, layer.scale, layer.weight)
        out.append(gw)
    return out[::-1]


def _one_hidden_relu_gradients(layers, fwd: Forward, cotangent: torch.Tensor):
    r""":func:`parameter_gradients` of one hidden ReLU layer, where the delta of the hidden
    layer is rank one per row, :math:`\Delta_{1,ij} = 1[h_{ij} > 0]\, c_i\, s_2 w_j`: then
    :math:`\partial/\partial W^1 = s_1 \Delta_1^\top X = s_1 s_2\, w^\top \odot (M^\top (c
    \odot X))` and :math:`\partial/\partial b^1 = \beta_1 s_2\, w^\top \odot M^\top c`,
    :math:`M = 1[h > 0]`: one product over the (n, width) mask and no (n, width) delta (the
    same numbers as the general chain rule up to float round-off; faster from
    :data:`RANK_ONE_MIN_ROWS` rows on, slower below)."""
    first, last = layers
    c = cotangent.unsqueeze(-1)  # (..., n, 1)
    z = fwd.inputs[1]  # phi(h), (..., n, width)
    out = [_scaled_product(c.transpose(-1, -2), z, last.scale, last.weight)]
    if last.bias is not None:
        out.append(c.sum(dim=-2).mul_(last.beta))
    x = fwd.inputs[0]
    cx = c * x if first.bias is None else torch.cat([c * x, c], -1)  # (..., n, d[+1])
    grad = torch.matmul(z.sign_().transpose(-1, -2), cx)  # M^T [c x, c], (..., width, d[+1])
    grad.mul_((last.weight * last.scale).transpose(-1, -2))
    d = x.shape[-1]
    head = [grad[..., :d].mul_(first.scale)]
    if first.bias is not None:
        head.append(grad[..., d].mul_(first.beta))
    return head + out
