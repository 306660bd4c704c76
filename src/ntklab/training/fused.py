r"""Hand-written SGD for networks of dense layers and ReLUs (the fast paths of :func:`train`).

:class:`FusedSGD` computes exactly the step of :class:`ntklab.training.sgd.FunctionalSGD`
(the :mod:`torch.func` definition, up to float round-off: tested in float64 at 1e-12) with a
fixed handful of kernels into preallocated buffers and no autograd; its outputs and loss on
whole data sets take the one forward pass of :mod:`ntklab.dense_pass`.
:class:`StackedFusedSGD` trains ``k`` stacked networks by that module's forward and
backward pass. Both read the network through the same parameter dict and layer
description as the engine (:func:`engine.parameters`, :func:`engine.dense_specs`).

They are kept, and :func:`fused_specs` (the one rule, for both) selects them, only where
``benchmarks/bench_training.py`` measures them at 1.5x the :mod:`torch.func` path or more,
in one run on one CPU thread (float32; ratio torch.func time / hand-written time; columns
``func/fused`` and ``fused/func``, ``fused/vmap``):

* one network, batch 8: 10.9x at the seed's NN1 (width 10 000), 2.9x at NN2 width 1024,
  4.3x at NN2 width 10 000; one hidden layer, full batch (n = 800, width 512): 4.3x;
* two hidden layers, larger steps: 1.8x at 64 rows (width 1024), 1.9x, 1.55x and 1.57x at
  256 rows (width 512, 1024, 2048); full batch (n = 800): 1.69x at width 256 but 1.32x at
  512 and 1.19x at 1024. So networks with two or more hidden layers take the torch.func
  path for steps of more than :data:`DEEP_MAX_ROWS` = 256 rows whose rows x width^2 is
  also above :data:`DEEP_MAX_WORK` = 2^26 (full batch on 800 points from width 512 up);
* 8 stacked networks of width 512 against ``vmap`` of the torch.func step: 3.4x full batch
  (one hidden layer's gradients in their rank-one form, :data:`ntklab.dense_pass.
  RANK_ONE_MIN_ROWS`; 1.9x without it) and 6.0-6.7x at batch 8 at depth 1; 1.6x at batch 8 but 1.35x full batch at depth 2 (4 of
  width 256: 3.4x and 1.53x), the same rule.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..dense_pass import DenseLayer, dense_layers, forward, parameter_gradients
from . import engine
from .sgd import Members

__all__ = ["FusedSGD", "StackedFusedSGD", "fused_sgd", "fused_specs"]


class _BatchViews(NamedTuple):
    """Buffers of :class:`FusedSGD` for one batch size (views, made once)."""

    h: list[torch.Tensor]  # phi(h^l) of each hidden layer, (B, n)
    a_out: torch.Tensor  # the output layer's input: phi(h^L) [with a constant column]
    a_out_t: torch.Tensor
    g: list[torch.Tensor]  # backpropagated gradients (up to a factor), (B, n)
    g_t: list[torch.Tensor]
    ones: torch.Tensor  # (B,)
    w_out: torch.Tensor  # output weights as a row (1, n); (B, n) expanded for one hidden layer
    rx: torch.Tensor  # r * [s x, beta] (one hidden layer)
    rx_t: torch.Tensor
    alpha_out: float  # -lr x the factor of the output layer's gradient
    alpha_w: list[float]  # same for each hidden layer's weight (index 0: the first layer)
    alpha_b: list[float]  # and bias


class FusedSGD(Members):
    r"""Plain SGD for one network of dense layers and ReLUs, written out without autograd.

    Each step is the exact SGD step on the batch mean of :math:`(f - y)^2`,
    :math:`\theta \leftarrow \theta - \eta \nabla_\theta \frac1B \sum_{i \in \text{batch}}
    (f(x_i) - y_i)^2`, computed with a fixed handful of kernels writing into buffers
    allocated once (mini-batch SGD at batch size 8 is bound by per-operation overhead and
    thin matrix products, not by arithmetic; see ``benchmarks/bench_training.py --sgd``):

    * the first layer is kept as one matrix :math:`P_0 = [W^{1\top}; b^1]` (d[+1], width)
      and the inputs as :math:`[s_1 x, \beta_1]`, so one product gives :math:`h^1` and one
      in-place product (``addmm_``) applies the gradient of :math:`W^1` and :math:`b^1`
      together; the output layer likewise as :math:`P_o = [w^\top; b]` (width[+1], 1)
      against the last activations with a constant column :math:`\beta/s` appended;
      both are copies (small) written back by :meth:`finish`;
    * hidden (width × width) layers are trained in place in the network's own tensors
      (no copy of a 10 000 × 10 000 matrix): forward ``addmm`` with the bias, backward one
      product, update one in-place ``addmm_`` (and ``addmv_`` for the bias);
    * the ReLU is applied in place; its derivative is the sign of the stored output,
      :math:`1[\phi(h) > 0]` (PyTorch's convention at 0), taken in place once the
      output is not needed any more (public operations only); for one hidden layer the gradient reaching
      :math:`h^1` is rank one, :math:`\delta = 1[h > 0] \odot (g\, s_o w)^\top`, so
      :math:`\nabla P_0 = (g \odot x_a)^\top (1[h > 0] \odot s_o w)`;
    * a whole epoch's inputs and targets are gathered at once (one ``index_select``
      each, into preallocated buffers); each batch is then a fixed view, and its residuals
      :math:`f - y` are written into an (m, 1) buffer whose mean square is the epoch's loss.

    Nothing in a step reads a value back to the host, and all tensors live on the device
    of the network, so on a GPU the steps queue without synchronizing. The centered model
    :math:`f - f_0` is trained on the target :math:`y + f_0`.

    Parameters
    ----------
    params : dict of Tensor
        The network's parameters (:func:`engine.parameters`: views of its storage), trained
        in place.
    specs : list of DenseSpec
        Its dense layers (:func:`engine.dense_specs`), at least two.
    lr : float
    X, y : Tensor (m, d), (m,)
        Training data, in the network's dtype and on its device.
    f0 : Tensor (m,) or None
        Initial outputs on ``X`` for a centered network.
    batch_size : int or None
        ``None``: full-batch gradient descent.
    """

    k = 1

    def __init__(self, params, specs, lr: float, X, y, f0, batch_size: int | None):
        dense = dense_layers(params, specs)
        self.dense, self.lr, self.X = dense, float(lr), X
        m = X.shape[0]
        first, last = dense[0], dense[-1]
        self.L = L = len(dense) - 1  # hidden layers
        self.target = y if f0 is None else y + f0
        dt, dev = X.dtype, X.device
        with torch.no_grad():
            rows = [first.weight.detach().t()]
            if first.bias is not None:
                rows.append(first.bias.detach().unsqueeze(0))
            self.P0 = torch.cat(rows, 0)  # (d[+1], n)
            rows = [last.weight.detach().t()]
            if last.bias is not None:
                rows.append(last.bias.detach().unsqueeze(0))
            self.Po = torch.cat(rows, 0)  # (n[+1], 1)
            self.Xa = self._augment(X)
            self.NT = (-self.target).unsqueeze(1).contiguous()  # (m, 1): r = f - t = f + NT
        self.W = [mod.weight.detach() for mod in dense[1:-1]]  # share storage with the net
        self.b = [None if mod.bias is None else mod.bias.detach() for mod in dense[1:-1]]
        self.s = [float(mod.scale) for mod in dense]
        self.beta = [float(mod.beta) for mod in dense]
        widths = [mod.weight.shape[0] for mod in dense[:-1]]
        B = m if batch_size is None else min(batch_size, m)
        empty = lambda *shape: torch.empty(*shape, dtype=dt, device=dev)  # noqa: E731
        self.R = empty(m, 1)
        self.R_t = self.R.t()  # (1, m): the residuals of the epoch
        if batch_size is None:
            self.Xe, self.NTe = self.Xa, self.NT
        else:
            self.Xe, self.NTe = torch.empty_like(self.Xa), torch.empty_like(self.NT)
        acts = [empty(B, n) for n in widths]
        if last.bias is not None:  # [phi(h^L), beta_o / s_o]: the output bias in the product
            acts[-1] = empty(B, widths[-1] + 1)
            acts[-1][:, -1] = self.beta[-1] / self.s[-1]
        grads = [empty(B, n) for n in widths]
        ones = torch.ones(B, dtype=dt, device=dev)
        rx = empty(B, self.Xa.shape[1])
        w_out = self.Po[: widths[-1]].t()  # (1, n), a view: always the current weights
        views = {}
        for nb in {B, m % B} - {0}:  # the batch sizes: B, and a smaller last batch
            c = 2.0 / nb  # d(batch mean of r^2)/dr = c r
            coef = c * self.s[-1]  # d loss/d h^L = coef * g^L
            alpha_w, alpha_b = [0.0] * L, [0.0] * L
            for i in range(L - 1, 0, -1):
                alpha_w[i] = -self.lr * coef * self.s[i]
                alpha_b[i] = -self.lr * coef * self.beta[i]
                coef *= self.s[i]
            alpha_w[0] = -self.lr * coef
            views[nb] = _BatchViews(
                h=[a[:nb, : widths[i]] for i, a in enumerate(acts)],
                a_out=acts[-1][:nb],
                a_out_t=acts[-1][:nb].t(),
                g=[g[:nb] for g in grads],
                g_t=[g[:nb].t() for g in grads],
                ones=ones[:nb],
                w_out=w_out.expand(nb, widths[-1]) if L == 1 else w_out,
                rx=rx[:nb],
                rx_t=rx[:nb].t(),
                alpha_out=-self.lr * c * self.s[-1],
                alpha_w=alpha_w,
                alpha_b=alpha_b,
            )
        self.W_t = [w.t() for w in self.W]
        self._batches = []
        for b0 in range(0, m, B):
            b1 = min(m, b0 + B)
            xb = self.Xe[b0:b1]
            self._batches.append((xb, xb.t(), self.NTe[b0:b1], self.R[b0:b1], views[b1 - b0]))
        self._steps = self._steps_one_hidden if L == 1 else self._steps_deep

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """First-layer inputs ``[s_1 x, beta_1]`` (no column without a bias)."""
        first = self.dense[0]
        xs = x * first.scale
        if first.bias is None:
            return xs
        ones = torch.full((x.shape[0], 1), first.beta, dtype=x.dtype, device=x.device)
        return torch.cat([xs, ones], 1)

    def _steps_one_hidden(self) -> None:
        """The steps of one epoch for one hidden layer: 8 kernels a step."""
        mm, addmm, mul, sign = torch.mm, torch.addmm, torch.mul, torch.sign
        P0, Po, so = self.P0, self.Po, self.s[-1]
        for xb, _, ntb, rb, v in self._batches:
            h, g = v.h[0], v.g[0]
            mm(xb, P0, out=h)
            h.relu_()
            addmm(ntb, v.a_out, Po, alpha=so, out=rb)  # r = f - t
            mul(rb, xb, out=v.rx)
            sign(h, out=g)  # 1[h > 0] (h >= 0 after the ReLU)
            g.mul_(v.w_out)  # 1[h > 0] w: the rank-one gradient / (c s_o r)
            P0.addmm_(v.rx_t, g, alpha=v.alpha_w[0])
            Po.addmm_(v.a_out_t, rb, alpha=v.alpha_out)

    def _steps_deep(self) -> None:
        """The steps of one epoch for two or more hidden layers."""
        mm, addmm, mul = torch.mm, torch.addmm, torch.mul
        P0, Po, W, W_t, b, s, beta = self.P0, self.Po, self.W, self.W_t, self.b, self.s, self.beta
        L = self.L
        for xb, xb_t, ntb, rb, v in self._batches:
            h, g, g_t = v.h, v.g, v.g_t
            mm(xb, P0, out=h[0])
            h[0].relu_()
            for i in range(1, L):
                if b[i - 1] is None:
                    addmm(h[i], h[i - 1], W_t[i - 1], beta=0.0, alpha=s[i], out=h[i])
                else:
                    addmm(b[i - 1], h[i - 1], W_t[i - 1], beta=beta[i], alpha=s[i], out=h[i])
                h[i].relu_()
            addmm(ntb, v.a_out, Po, alpha=s[-1], out=rb)  # r = f - t
            mul(rb, v.w_out, out=g[-1])
            Po.addmm_(v.a_out_t, rb, alpha=v.alpha_out)
            g[-1].mul_(h[-1].sign_())  # g^L = 1[h^L > 0] r w (h^L >= 0 is not needed any more)
            for i in range(L - 1, 0, -1):  # g^i = 1[h^i > 0] (g^{i+1} W^{i+1})
                mm(g[i], W[i - 1], out=g[i - 1])
                W[i - 1].addmm_(g_t[i], h[i - 1], alpha=v.alpha_w[i])
                if b[i - 1] is not None:
                    b[i - 1].addmv_(g_t[i], v.ones, alpha=v.alpha_b[i])
                g[i - 1].mul_(h[i - 1].sign_())
            P0.addmm_(xb_t, g[0], alpha=v.alpha_w[0])

    def epoch(self, perms: torch.Tensor | None, out: torch.Tensor) -> None:
        """One epoch (batches in the order of ``perms[0]``, or one full batch); its mean
        squared residual (the mean of the batch losses weighted by batch size) into ``out``."""
        with torch.inference_mode():
            if perms is not None:
                torch.index_select(self.Xa, 0, perms[0], out=self.Xe)
                torch.index_select(self.NT, 0, perms[0], out=self.NTe)
            self._steps()
            engine.mean_square(self.R_t, out=out)

    def outputs(self, x: torch.Tensor, f0: torch.Tensor | None) -> torch.Tensor:
        """Outputs (1, n) on ``x`` (n, d) of the network being trained, minus ``f0``: the
        one forward pass (:func:`ntklab.dense_pass.forward`) on the current parameters."""
        with torch.no_grad():
            out = forward(self._layers(), x).outputs.reshape(1, -1)
        return out if f0 is None else out - f0

    def _layers(self) -> list[DenseLayer]:
        """The network's layers as trained now: the first and output layers are views of
        their copies ``P0``, ``Po``; the hidden ones are the network's own tensors."""
        first, last = self.dense[0], self.dense[-1]
        d, n = first.weight.shape[1], last.weight.shape[1]
        return [
            DenseLayer(self.P0[:d].t(), None if first.bias is None else self.P0[d],
                       first.scale, first.beta),
            *self.dense[1:-1],
            DenseLayer(self.Po[:n].t(), None if last.bias is None else self.Po[n],
                       last.scale, last.beta),
        ]  # fmt: skip

    def stop(self, member: int) -> None:
        """Nothing to do: the loop ends when its one member stops."""

    def finish(self) -> None:
        """Write the first and output layers (kept as copies) back into the network."""
        with torch.no_grad():
            for mod, P in ((self.dense[0], self.P0), (self.dense[-1], self.Po)):
                n_in = mod.weight.shape[1]
                mod.weight.copy_(P[:n_in].t())
                if mod.bias is not None:
                    mod.bias.copy_(P[n_in])


#: Networks with two or more hidden layers take the hand-written paths for steps of at most
#: this many rows or of at most :data:`DEEP_MAX_WORK` rows x width^2, else the
#: :mod:`torch.func` ones: with many rows on wide layers the (width x width) products,
#: which both paths share, dominate a step (the module docstring's measurements).
DEEP_MAX_ROWS = 256
DEEP_MAX_WORK = 2**26


def fused_specs(net: nn.Module, m: int | None = None, batch_size: int | None = None):
    """The one rule that selects the hand-written SGD over :mod:`torch.func`.

    The layers of ``net`` (:func:`engine.dense_specs`) if it is a network of dense layers
    and ReLUs with at least one hidden layer whose parameters all train and, for two or more
    hidden layers, steps of at most :data:`DEEP_MAX_ROWS` rows or of at most
    :data:`DEEP_MAX_WORK` rows x width^2 (``batch_size`` rows of the ``m`` training points;
    ``None``: full batch; ``m=None`` leaves the step size out of the rule); else ``None``.
    """
    specs = engine.dense_specs(net)
    if specs is None or len(specs) < 2 or not all(p.requires_grad for p in net.parameters()):
        return None
    if m is not None and len(specs) > 2:
        rows = m if batch_size is None else min(batch_size, m)
        square = max(net.get_parameter(sp.weight).numel() for sp in specs[1:-1])
        if rows > DEEP_MAX_ROWS and rows * square > DEEP_MAX_WORK:
            return None
    return specs


def fused_sgd(net: nn.Module, lr: float, X, y, f0, batch_size) -> FusedSGD | None:
    """:class:`FusedSGD` training ``net`` in place if :func:`fused_specs` selects it."""
    specs = fused_specs(net, X.shape[0], batch_size)
    if specs is None:
        return None
    return FusedSGD(engine.parameters(net), specs, lr, X, y, f0, batch_size)


class StackedFusedSGD(Members):
    r"""SGD of ``k`` stacked networks of dense layers and ReLUs, forward and backward by hand.

    The same steps as :class:`~ntklab.training.sgd.FunctionalSGD` with ``stacked=True``
    (tested equal in float64), :math:`\theta_j \leftarrow \theta_j - \eta_j
    \nabla_{\theta_j} \ell_j`, skipped for members that have stopped: the forward pass and
    the gradient of :mod:`ntklab.dense_pass` (:func:`~ntklab.dense_pass.forward`,
    :func:`~ntklab.dense_pass.parameter_gradients` with the output cotangent
    :math:`\partial\ell_j/\partial f_j = \tfrac2B (f_j - t)`), with batched matrix products
    over the member axis, so that each pass over an (n, width) activation is one kernel
    (kept where :func:`fused_specs` says: 1.6-6.0x the ``vmap`` path, module docstring).

    Parameters
    ----------
    params : dict of Tensor (k, ...)
        Stacked parameters (:func:`engine.stack_parameters`), updated in place.
    specs : list of DenseSpec
        The layers (:func:`engine.dense_specs` of any member).
    lrs : sequence of float
        One learning rate per member.
    X : Tensor (m, d) or (k, m, d)
        Training inputs, shared or one set per member.
    target : Tensor (m,) or (k, m)
        Targets (:math:`y + f_0` for centered networks).
    batch_size : int or None
        ``None``: full-batch gradient descent.
    """

    stacked = True

    def __init__(self, params, specs, lrs, X, target, batch_size: int | None):
        self.params, self.k = params, len(lrs)
        self.layers = dense_layers(params, specs)
        # the tensors of the gradients, in the order parameter_gradients returns them
        self.order = [p for lay in self.layers for p in (lay.weight, lay.bias) if p is not None]
        self.neg_lrs = -torch.tensor(lrs, dtype=X.dtype, device=X.device)
        self.active = torch.ones(self.k, dtype=torch.bool, device=X.device)
        self.all_active = True
        self.X, self.target, self.batch_size = X, target, batch_size

    def gradients(self, x: torch.Tensor, t: torch.Tensor):
        """Per-member losses (k,) on rows ``x`` ((B, d) shared or (k, B, d)) with targets
        ``t`` ((B,) or (k, B)), and the gradients of their sum, in :attr:`order`."""
        fwd = forward(self.layers, x)
        r = fwd.outputs - t
        losses = engine.mean_square(r)
        g = r.mul_(2.0 / r.shape[-1])  # d loss / d f
        return losses, parameter_gradients(self.layers, fwd, g)

    def _step(self, xb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            losses, grads = self.gradients(xb, tb)
            self._update(zip(self.order, grads, strict=True))
        return losses

    def outputs(self, x: torch.Tensor, f0: torch.Tensor | None) -> torch.Tensor:
        """Outputs (k, n) on ``x`` (n, d) shared by the members, or (k, n, d) one per member."""
        with torch.no_grad():
            out = forward(self.layers, x).outputs
        return out if f0 is None else out - f0

    def finish(self) -> None:
        """Nothing to write back: the stacked parameters were updated in place."""
