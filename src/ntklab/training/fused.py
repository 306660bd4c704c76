r"""Hand-written SGD for networks of dense layers and ReLUs (the fast path of :func:`train`).

:class:`FusedSGD` computes exactly the step of :class:`ntklab.training.sgd.FunctionalSGD`
(the :mod:`torch.func` definition, up to float round-off: tested in float64 at 1e-12) with a
fixed handful of kernels into preallocated buffers and no autograd. It is kept because
``benchmarks/bench_training.py --sgd`` measures it well above 1.5x the functional path at the
seed's batch size 8 (see the README's benchmark table). It reads the network through the
same parameter dict and layer description as the engine (:func:`engine.parameters`,
:func:`engine.dense_specs`), and :func:`fused_sgd` is the one rule that selects it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from . import engine

__all__ = ["FusedSGD", "fused_sgd"]

_THRESHOLD_BACKWARD = torch.ops.aten.threshold_backward.grad_input  # ReLU' on the output


class _Layer(NamedTuple):
    """One dense layer's tensors (views of the parameter dict) and constants."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    scale: float
    beta: float


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


class FusedSGD:
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
    * the ReLU is applied in place; its derivative is ``threshold_backward`` on the stored
      output (PyTorch's convention at 0); for one hidden layer the gradient reaching
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
        dense = [
            _Layer(params[sp.weight], None if sp.bias is None else params[sp.bias], sp.scale,
                   sp.beta)
            for sp in specs
        ]  # fmt: skip
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
        """The steps of one epoch for one hidden layer: 7 kernels a step."""
        mm, addmm, mul, thr = torch.mm, torch.addmm, torch.mul, _THRESHOLD_BACKWARD
        P0, Po, so = self.P0, self.Po, self.s[-1]
        for xb, _, ntb, rb, v in self._batches:
            h, g = v.h[0], v.g[0]
            mm(xb, P0, out=h)
            h.relu_()
            addmm(ntb, v.a_out, Po, alpha=so, out=rb)  # r = f - t
            mul(rb, xb, out=v.rx)
            thr(v.w_out, h, 0.0, grad_input=g)  # 1[h > 0] w: the rank-one gradient / (c s_o r)
            P0.addmm_(v.rx_t, g, alpha=v.alpha_w[0])
            Po.addmm_(v.a_out_t, rb, alpha=v.alpha_out)

    def _steps_deep(self) -> None:
        """The steps of one epoch for two or more hidden layers."""
        mm, addmm, mul, thr = torch.mm, torch.addmm, torch.mul, _THRESHOLD_BACKWARD
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
            thr(g[-1], h[-1], 0.0, grad_input=g[-1])  # g^L = 1[h^L > 0] r w
            Po.addmm_(v.a_out_t, rb, alpha=v.alpha_out)
            for i in range(L - 1, 0, -1):  # g^i = 1[h^i > 0] (g^{i+1} W^{i+1})
                mm(g[i], W[i - 1], out=g[i - 1])
                thr(g[i - 1], h[i - 1], 0.0, grad_input=g[i - 1])
                W[i - 1].addmm_(g_t[i], h[i - 1], alpha=v.alpha_w[i])
                if b[i - 1] is not None:
                    b[i - 1].addmv_(g_t[i], v.ones, alpha=v.alpha_b[i])
            P0.addmm_(xb_t, g[0], alpha=v.alpha_w[0])

    def epoch(self, perms: torch.Tensor | None, out: torch.Tensor) -> None:
        """One epoch (batches in the order of ``perms[0]``, or one full batch); its mean
        squared residual (the mean of the batch losses weighted by batch size) into ``out``."""
        with torch.inference_mode():
            if perms is not None:
                torch.index_select(self.Xa, 0, perms[0], out=self.Xe)
                torch.index_select(self.NT, 0, perms[0], out=self.NTe)
            self._steps()
            torch.mean(self.R.square(), 0, out=out)

    def outputs(self, x: torch.Tensor, f0: torch.Tensor | None) -> torch.Tensor:
        """Outputs (1, n) on ``x`` (n, d) of the network being trained, minus ``f0``."""
        with torch.no_grad():
            h = torch.mm(self._augment(x), self.P0).relu_()
            for i, (w, b) in enumerate(zip(self.W, self.b, strict=True), start=1):
                if b is None:
                    h = torch.mm(h, w.t()).mul_(self.s[i])
                else:
                    h = torch.addmm(b, h, w.t(), beta=self.beta[i], alpha=self.s[i])
                h.relu_()
            n = h.shape[1]
            if self.Po.shape[0] > n:
                out = torch.addmm(self.Po[n], h, self.Po[:n], beta=self.beta[-1], alpha=self.s[-1])
            else:
                out = torch.mm(h, self.Po).mul_(self.s[-1])
        out = out.reshape(1, -1)
        return out if f0 is None else out - f0

    def full_loss(self) -> torch.Tensor:
        return (self.outputs(self.X, None) - self.target).square().mean(dim=-1)

    def stop(self, member: int) -> None:  # the loop ends when every member has stopped
        pass

    def finish(self) -> None:
        """Write the first and output layers (kept as copies) back into the network."""
        with torch.no_grad():
            for mod, P in ((self.dense[0], self.P0), (self.dense[-1], self.Po)):
                n_in = mod.weight.shape[1]
                mod.weight.copy_(P[:n_in].t())
                if mod.bias is not None:
                    mod.bias.copy_(P[n_in])


def fused_sgd(net: nn.Module, lr: float, X, y, f0, batch_size) -> FusedSGD | None:
    """:class:`FusedSGD` for ``net`` if it is a network of dense layers and ReLUs
    (:func:`engine.dense_specs`) whose parameters all train; else ``None``.

    This is the one rule that selects the hand-written path over :mod:`torch.func`."""
    specs = engine.dense_specs(net)
    if specs is None or len(specs) < 2 or not all(p.requires_grad for p in net.parameters()):
        return None
    return FusedSGD(engine.parameters(net), specs, lr, X, y, f0, batch_size)


