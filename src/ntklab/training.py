r"""Training finite networks by gradient descent on the squared loss (SPEC §3).

The loss of a network :math:`f` on :math:`m` training points is

.. math:: \ell(\theta) = \frac1m \sum_{i=1}^m (f(x_i; \theta) - y_i)^2,

minimized by plain (stochastic) gradient descent, :math:`\theta \leftarrow \theta - \eta
\nabla_\theta \ell`. With full batches, one step of the linearized network is exactly
:math:`f \leftarrow f - \tfrac{2\eta}{m}\Theta (f - y)`, so a network trained for :math:`T`
steps is compared with :func:`ntklab.predict.gradient_descent_mse` at the same :math:`T`
(Lee et al. 2019).

* :func:`train` trains one network. For the networks of :meth:`Architecture.network` each
  SGD step is written out by hand (:class:`_FusedSGD`: no autograd, no optimizer object, a
  fixed handful of kernels into preallocated buffers, a whole epoch's batches gathered at
  once); it equals autograd + ``torch.optim.SGD`` up to float round-off (tested to 1e-12 in
  float64) and is 2–4× faster at the seed's batch size 8 (``benchmarks/bench_training.py
  --sgd``). Other modules are trained by autograd and ``torch.optim.SGD``;
* :func:`train_ensemble` trains networks of several seeds at once, with their weights stacked
  and every layer a single batched matrix product (``torch.bmm``), so a GPU stays busy;
  each member is trained exactly as :func:`train` would train it (up to float round-off;
  bit for bit with ``group_size=1``, which takes :func:`train`'s path);
* :func:`auto_lr` picks a stable learning rate :math:`\eta = c\, m / \lambda_{\max}(\Theta)`
  from the analytic NTK.

Divergence (a non-finite loss, or one above ``divergence_factor`` × the initial loss) stops
that network and marks it ``diverged``; it never raises. The loss is checked on the device
every ``check_every`` epochs, so training does not synchronize with the host every step:
between checks nothing is read back from the device (the mini-batch orders, drawn on the
CPU so that a seed gives the same order on every device, are sent ``check_every`` epochs at
a time), and on a GPU the steps queue without waiting.

References
----------
Lee, J. et al. (2019). Wide neural networks of any depth evolve as linear models under
gradient descent. NeurIPS 32.
Jacot, A., Gabriel, F. and Hongler, C. (2018). Neural tangent kernel. NeurIPS 31.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ._validation import check_float, check_int, check_lr, check_matrix, check_vector
from .layers import DenseModule
from .metrics import rmse
from .networks import FullyConnectedNetwork, predict_numpy, resolve_device

__all__ = [
    "TrainResult",
    "CenteredNetwork",
    "auto_lr",
    "train",
    "train_ensemble",
]


# ---- results ---------------------------------------------------------------------------------
class CenteredNetwork(nn.Module):
    r"""The centered network :math:`f(x) - f_0(x)` with :math:`f_0` a frozen initial copy.

    Only the trainable network's parameters are parameters of this module (so its empirical
    NTK is that of ``network``); the frozen copy follows ``.to()``/``.double()`` calls.

    Parameters
    ----------
    network : torch.nn.Module
        The trained (or trainable) network :math:`f`.
    initial : torch.nn.Module
        :math:`f_0`, a copy of ``network`` at initialization; its parameters are frozen.
    """

    def __init__(self, network: nn.Module, initial: nn.Module):
        super().__init__()
        self.network = network
        for p in initial.parameters():
            p.requires_grad_(False)
        self._initial = (initial,)  # a tuple: not registered, so not in .parameters()
        for name in ("architecture", "width", "in_features", "seed"):
            if hasattr(network, name):
                setattr(self, name, getattr(network, name))

    @property
    def initial_network(self) -> nn.Module:
        """The frozen network :math:`f_0`."""
        return self._initial[0]

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self._initial[0]._apply(fn, *args, **kwargs)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x) - self._initial[0](x)

    def predict(self, X, *, batch_size: int = 65536) -> np.ndarray:
        """Evaluate on a numpy array and return float64 numpy of shape (n,)."""
        return predict_numpy(self, X, batch_size=batch_size)


@dataclass
class TrainResult:
    r"""The outcome of training one network.

    Attributes
    ----------
    network : torch.nn.Module
        The final network; for ``centered=True`` a :class:`CenteredNetwork` computing
        :math:`f(x) - f_0(x)`.
    initial_network : torch.nn.Module
        A frozen copy of the network at initialization (:math:`f_0`, uncentered).
    epochs : ndarray of int
        Epochs at which the curves were recorded (0, every ``record_every``, and the last
        epoch; for a diverged network the last entry is the epoch it diverged).
    train_loss : ndarray
        :math:`\frac1m\sum_i (f(x_i) - y_i)^2` at those epochs (of the centered output when
        ``centered``).
    test_rmse : ndarray or None
        Test RMSE at those epochs when test data were given (NaN at the divergence epoch).
    test_predictions : ndarray (len(epochs), n_test) or None
        Predictions on ``X_test`` at those epochs, float64.
    wall_time : float
        Seconds of training; for an ensemble, the batched run's time divided by its size.
    diverged : bool
    diverged_epoch : int or None
        First epoch whose loss was non-finite or exploded.
    lr : float
        The learning rate actually used (after ``lr="auto"``).
    centered : bool
    steps_per_epoch : int
        Gradient steps per epoch (1 for full-batch gradient descent).
    batch_size : int or None
        Mini-batch size (``None``: full batch).
    """

    network: nn.Module
    initial_network: nn.Module
    epochs: np.ndarray
    train_loss: np.ndarray
    test_rmse: np.ndarray | None
    test_predictions: np.ndarray | None
    wall_time: float
    diverged: bool
    diverged_epoch: int | None
    lr: float
    centered: bool
    steps_per_epoch: int = 1
    batch_size: int | None = None

    @property
    def steps(self) -> int:
        """Gradient steps taken: last recorded epoch × ``steps_per_epoch``."""
        return int(self.epochs[-1]) * self.steps_per_epoch

    def predict(self, X) -> np.ndarray:
        """Predictions of the final network on ``X`` (n, d): float64 (n,), centered if trained so."""
        return predict_numpy(self.network, X)

    def initial_predict(self, X) -> np.ndarray:
        r"""Outputs at initialization of the model that was trained: :math:`f_0(X)`, or 0 if centered."""
        X = check_matrix(X, "X")
        if self.centered:
            return np.zeros(X.shape[0])
        return predict_numpy(self.initial_network, X)


# ---- learning rate ---------------------------------------------------------------------------
def auto_lr(ntk_train, *, c: float = 0.5) -> float:
    r"""A stable learning rate :math:`\eta = c\, m / \lambda_{\max}(\Theta)`.

    Full-batch gradient descent on :math:`\frac1m\sum_i (f(x_i) - y_i)^2` is stable for the
    linearized network while :math:`\eta < m / \lambda_{\max}(\Theta)` (SPEC §3); the
    default :math:`c = 0.5` is half of that limit, which leaves room for the finite-width
    kernel to exceed the analytic one, and makes the slowest-converging mode's factor per
    step :math:`1 - 2c\,\lambda_{\min}/\lambda_{\max}`.

    Parameters
    ----------
    ntk_train : array_like (m, m)
        The analytic NTK on the training inputs, e.g. ``arch.ntk(X_train)``.
    c : float, default 0.5
        Fraction of the stability limit, ``0 < c < 1`` for a stable linearized model.

    Returns
    -------
    float
    """
    K = check_matrix(ntk_train, "ntk_train")
    if K.shape[0] != K.shape[1]:
        raise ValueError(f"ntk_train must be a square (m, m) kernel matrix; got shape {K.shape}")
    c = check_float(c, "c", strict=True)
    m = K.shape[0]
    lam_max = float(np.linalg.eigvalsh(0.5 * (K + K.T))[-1])
    if not lam_max > 0:
        raise ValueError(
            f"ntk_train has no positive eigenvalue (largest {lam_max:.3g}); is it a kernel?"
        )
    return c * m / lam_max


def default_record_every(epochs: int) -> int:
    """Epochs between recorded curve points when none is given: ``max(1, epochs // 10)``
    (eleven points or so per curve; the one default of :func:`train` and of a study's
    network methods)."""
    return max(1, int(epochs) // 10)


# ---- the training loop (shared by train and train_ensemble) ------------------------------------
def _dense_layers(net: nn.Module) -> list[DenseModule] | None:
    """The dense layers of ``net`` if it is Dense, (ReLU, Dense)*, scalar output; else None."""
    mods = list(getattr(net, "layers", []))
    if not isinstance(net, FullyConnectedNetwork) or len(mods) % 2 == 0:
        return None
    for i, mod in enumerate(mods):
        if not isinstance(mod, DenseModule if i % 2 == 0 else nn.ReLU):
            return None
    if mods[-1].weight.shape[0] != 1:
        return None
    return mods[::2]


class _Engine:
    r"""Gradient descent on the squared loss of ``k`` stacked ReLU networks, by hand.

    Forward and backward passes of :math:`f(x) = h^{L+1}`, with dense layers
    :math:`h = s\, z W^\top + \beta b` and ReLUs between them, are written out with batched
    matrix products over the member axis, so that each pass over an (n, width) activation is
    one fused kernel (this is what limits the speed of thin networks, see
    ``benchmarks/bench_training.py``):

    * the first layer's bias is folded into its matrix product, :math:`h^1 = [x, 1]
      [s W^1, \beta b^1]^\top`, and so is its gradient (one product gives both);
    * the ReLU is applied in place, and its derivative is taken from the stored output
      (:math:`\phi'(h) = 1[\phi(h) > 0]`, PyTorch's convention at 0);
    * for one hidden layer the gradient reaching :math:`h^1` is rank one,
      :math:`\delta^1 = 1[h^1 > 0] \odot (g\, u^\top)` with :math:`g = \partial\ell/\partial f`
      and :math:`u = s W^2`, so :math:`\nabla[W^1, b^1] = \operatorname{diag}(u)\,
      1[h^1 > 0]^\top (g \odot [x, 1])` is computed without forming :math:`\delta^1`.

    The result is the gradient autograd would give, up to float round-off (relative
    differences near 1e-15 in float64 against :func:`torch.autograd.grad`, depths 1–3, all
    parameterizations). Only networks of dense layers and ReLUs with a scalar output (those
    of :meth:`Architecture.network`) take this path, in :func:`train_ensemble` with more than
    one member per group (one network alone takes :class:`_FusedSGD`).

    Parameters
    ----------
    weights : list of Tensor (k, out, in)
    biases : list of Tensor (k, out) or None
    scales, betas : list of float
        :attr:`DenseModule.scale` and :attr:`DenseModule.beta` of each dense layer.
    """

    def __init__(self, weights, biases, scales, betas):
        self.weights, self.biases = weights, biases
        self.scales, self.betas = [float(s) for s in scales], [float(b) for b in betas]
        self._aug_cache: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def params(self) -> list[torch.Tensor]:
        """Weights and biases in layer order (biases only where present)."""
        out = []
        for w, b in zip(self.weights, self.biases, strict=True):
            out += [w] if b is None else [w, b]
        return out

    def augmented(self, x: torch.Tensor) -> torch.Tensor:
        """``[x, 1]`` (a trailing column of ones) when the first layer has a bias, else ``x``."""
        if self.biases[0] is None:
            return x
        cache = self._aug_cache
        if cache is not None and cache[0] is x:
            return cache[1]
        xa = torch.cat([x, torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)], -1)
        self._aug_cache = (x, xa)
        return xa

    def _first_matrix(self) -> torch.Tensor:
        w, b = self.weights[0], self.biases[0]
        wa = w * self.scales[0]
        if b is not None:
            wa = torch.cat([wa, (self.betas[0] * b).unsqueeze(-1)], -1)
        return wa  # (k, width, d [+ 1])

    def forward(self, xa: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Outputs (k, n) on augmented inputs ``xa`` (k, n, d[+1]) and the hidden activations."""
        h = torch.matmul(xa, self._first_matrix().transpose(1, 2))
        acts = []
        for w, b, s, beta in zip(self.weights[1:], self.biases[1:], self.scales[1:],
                                 self.betas[1:], strict=True):  # fmt: skip
            a = h.relu_()
            acts.append(a)
            if b is None:
                h = torch.bmm(a, w.transpose(1, 2)).mul_(s)
            else:
                h = torch.baddbmm((beta * b).unsqueeze(1), a, w.transpose(1, 2), alpha=s)
        return h.squeeze(-1), acts

    def step(self, xa: torch.Tensor, yb: torch.Tensor, f0: torch.Tensor | None):
        """Per-member losses (k,) and the gradients of their sum, in :attr:`params` order."""
        out, acts = self.forward(xa)
        r = out - f0 if f0 is not None else out
        r = r - yb
        losses = r.square().mean(dim=1)
        g = (r * (2.0 / r.shape[1])).unsqueeze(-1)  # d loss / d f, (k, n, 1)
        grads = []  # in reverse layer order
        n_dense = len(self.weights)
        for i in range(n_dense - 1, 0, -1):
            w, b, s, beta = self.weights[i], self.biases[i], self.scales[i], self.betas[i]
            a = acts[i - 1]  # the layer's input, phi(h) of the layer below
            if b is not None:
                grads.append(g.sum(dim=1) * beta)
            grads.append(torch.baddbmm(w, g.transpose(1, 2), a, beta=0.0, alpha=s))
            if i == 1 and n_dense == 2:  # rank-one gradient into the single hidden layer
                u = (w * s).transpose(1, 2)  # (k, width, 1)
                mask = a.gt_(0.0)  # 1[h > 0] in place (a is not needed any more)
                ga = torch.bmm((g * xa).transpose(1, 2), mask).transpose(1, 2).mul_(u)
                return losses, self._first_grads(ga, grads)
            if w.shape[1] == 1:  # (k, n, 1) x (k, 1, width): an outer product
                g_in = torch.bmm(g, w).mul_(s)
            else:
                g_in = torch.baddbmm(a, g, w, beta=0.0, alpha=s)
            g = torch.ops.aten.threshold_backward.grad_input(g_in, a, 0.0, grad_input=g_in)
        ga = torch.bmm(xa.transpose(1, 2), g).transpose(1, 2)
        return losses, self._first_grads(ga, grads)

    def _first_grads(self, ga: torch.Tensor, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """Split the first layer's gradient ``ga`` (k, width, d[+1]) and order all gradients."""
        if self.biases[0] is not None:
            grads.append(ga[..., -1] * self.betas[0])
            grads.append(ga[..., :-1] * self.scales[0])
        else:
            grads.append(ga.mul_(self.scales[0]))
        return grads[::-1]


_THRESHOLD_BACKWARD = torch.ops.aten.threshold_backward.grad_input


class _BatchViews(NamedTuple):
    """Buffers of :class:`_FusedSGD` for one batch size (views, made once)."""

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


class _FusedSGD:
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
    dense : list of DenseModule
        The network's dense layers (:func:`_dense_layers`), at least two; trained in place.
    lr : float
    X, y : Tensor (m, d), (m,)
        Training data, in the network's dtype and on its device.
    f0 : Tensor (m,) or None
        Initial outputs on ``X`` for a centered network.
    batch_size : int or None
        ``None``: full-batch gradient descent.
    """

    k = 1

    def __init__(self, dense: list[DenseModule], lr: float, X, y, f0, batch_size: int | None):
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


def _fused(net: nn.Module, lr: float, X, y, f0, batch_size) -> _FusedSGD | None:
    """:class:`_FusedSGD` for ``net`` when it is a trainable network of dense layers and ReLUs."""
    dense = _dense_layers(net)
    if dense is None or len(dense) < 2 or not all(p.requires_grad for p in net.parameters()):
        return None
    return _FusedSGD(dense, lr, X, y, f0, batch_size)


class _Autograd:
    """Any other module, trained by autograd and ``torch.optim.SGD``; member axis of size 1."""

    k = 1

    def __init__(self, net: nn.Module, lr: float, X, y, f0, batch_size: int | None):
        self.net, self.X, self.y, self.f0, self.batch_size = net, X, y, f0, batch_size
        self.opt = torch.optim.SGD(net.parameters(), lr=lr)

    def outputs(self, x: torch.Tensor, f0: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            out = self.net(x).unsqueeze(0)
        return out if f0 is None else out - f0

    def full_loss(self) -> torch.Tensor:
        return (self.outputs(self.X, self.f0) - self.y).square().mean(dim=-1)

    def _step(self, x, y, f0) -> torch.Tensor:
        out = self.net(x)
        if f0 is not None:
            out = out - f0
        loss = (out - y).square().mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def epoch(self, perms: torch.Tensor | None, out: torch.Tensor) -> None:
        if perms is None:
            out.copy_(self._step(self.X, self.y, self.f0))
            return
        m, total = self.X.shape[0], torch.zeros((), dtype=out.dtype, device=out.device)
        for b0 in range(0, m, self.batch_size):
            i = perms[0, b0 : b0 + self.batch_size]
            f0 = None if self.f0 is None else self.f0[i]
            total += self._step(self.X[i], self.y[i], f0) * i.shape[0]
        out.copy_(total / m)

    def stop(self, member: int) -> None:
        pass

    def finish(self) -> None:
        pass


class _Stacked:
    r"""``k`` networks of identical structure with weights stacked along a leading axis.

    Forward and backward passes are :class:`_Engine`'s batched products; the update is the
    same as ``torch.optim.SGD``'s, :math:`\theta_k \leftarrow \theta_k - \eta_k
    \nabla_{\theta_k} \ell_k`, skipped for members that have stopped. The training data
    ``X`` (m, d), ``y`` (m,) are shared by the members, or (k, m, d), (k, m) one set each.
    """

    def __init__(self, nets: list[FullyConnectedNetwork], lrs: torch.Tensor, X, y,
                 batch_size: int | None):  # fmt: skip
        self.k = len(nets)
        per_net = [_dense_layers(n) for n in nets]
        if any(d is None for d in per_net):  # pragma: no cover - nets come from Architecture
            raise ValueError("can only stack networks from Architecture.network")
        dev = lrs.device
        weights, biases = [], []
        for i, mod in enumerate(per_net[0]):
            weights.append(torch.stack([d[i].weight.detach() for d in per_net]).to(dev))
            biases.append(
                None
                if mod.bias is None
                else torch.stack([d[i].bias.detach() for d in per_net]).to(dev)
            )
        self.engine = _Engine(
            weights, biases, [m.scale for m in per_net[0]], [m.beta for m in per_net[0]]
        )
        self.params = self.engine.params
        self.neg_lrs = -lrs
        self.active = torch.ones(self.k, dtype=torch.bool, device=dev)
        self.all_active = True
        self.X, self.y, self.batch_size = X, y, batch_size
        self.f0 = None

    def _members(self, xa: torch.Tensor) -> torch.Tensor:
        """``xa`` with a leading member axis: (k, n, d[+1]), shared inputs expanded (no copy)."""
        return xa if xa.dim() == 3 else xa.expand(self.k, *xa.shape)

    def outputs(self, x: torch.Tensor, f0: torch.Tensor | None) -> torch.Tensor:
        """Outputs (k, n) on ``x`` (n, d) shared by the members, or (k, n, d) one per member."""
        with torch.no_grad():
            out = self.engine.forward(self._members(self.engine.augmented(x)))[0]
        return out if f0 is None else out - f0

    def full_loss(self) -> torch.Tensor:
        return (self.outputs(self.X, self.f0) - self.y).square().mean(dim=-1)

    def _step(self, xa, yb, f0) -> torch.Tensor:
        losses, grads = self.engine.step(xa, yb, f0)
        for p, g in zip(self.params, grads, strict=True):
            shape = (self.k,) + (1,) * (p.dim() - 1)
            if not self.all_active:
                g = g.masked_fill(~self.active.view(shape), 0.0)
            p.addcmul_(g, self.neg_lrs.view(shape))
        return losses

    def epoch(self, perms: torch.Tensor | None, out: torch.Tensor) -> None:
        with torch.no_grad():
            xa = self.engine.augmented(self.X)
            if perms is None:
                out.copy_(self._step(self._members(xa), self.y, self.f0))
                return
            # the epoch's batches, gathered at once: (k, m, d[+1]), (k, m)
            if xa.dim() == 3:  # one data set per member
                xe = torch.gather(xa, 1, perms.unsqueeze(-1).expand(-1, -1, xa.shape[-1]))
                ye = torch.gather(self.y, 1, perms)
            else:
                xe, ye = xa[perms], self.y[perms]
            f0e = None if self.f0 is None else torch.gather(self.f0, 1, perms)
            m, bs = self.X.shape[-2], self.batch_size
            total = torch.zeros(self.k, dtype=out.dtype, device=out.device)
            for b0 in range(0, m, bs):
                sl = slice(b0, b0 + bs)
                f0b = None if f0e is None else f0e[:, sl]
                total.add_(self._step(xe[:, sl], ye[:, sl], f0b), alpha=min(bs, m - b0))
            torch.div(total, m, out=out)

    def stop(self, member: int) -> None:
        self.active[member] = False
        self.all_active = False

    def finish(self) -> None:
        pass

    def copy_into(self, nets: list[FullyConnectedNetwork]) -> None:
        """Write the stacked parameters back into the individual networks."""
        with torch.no_grad():
            for j, net in enumerate(nets):
                dense = _dense_layers(net)
                for mod, w, b in zip(dense, self.engine.weights, self.engine.biases, strict=True):
                    mod.weight.copy_(w[j])
                    if b is not None:
                        mod.bias.copy_(b[j])


@dataclass
class _Curves:
    epochs: list[np.ndarray]
    train_loss: list[np.ndarray]
    test_predictions: list[np.ndarray | None]
    diverged_epoch: list[int | None]
    wall_time: float


def _record_epochs(epochs: int, record_every: int) -> np.ndarray:
    return np.union1d(np.arange(0, epochs + 1, record_every), [epochs]).astype(np.int64)


def _permutations(gens, m: int, n_epochs: int, device: torch.device) -> torch.Tensor:
    """Mini-batch orders of ``n_epochs`` epochs, (n_epochs, k, m), one ``torch.randperm`` per
    epoch and generator (CPU generators: the same order on every device), sent to ``device``
    in one copy (from pinned memory without blocking on a GPU)."""
    perms = torch.stack(
        [torch.stack([torch.randperm(m, generator=g) for g in gens]) for _ in range(n_epochs)]
    )
    if device.type == "cuda":
        perms = perms.pin_memory()
    return perms.to(device, non_blocking=True)


def _run(model, X_test, f0_test, *, m, dtype, epochs, batch_size, gens, record_every, check_every,
         divergence_factor, device) -> _Curves:  # fmt: skip
    """The loop shared by :func:`train` (k = 1) and :func:`train_ensemble`.

    ``buf[e]`` holds each member's loss at epoch ``e`` (full batch: the loss of the forward
    pass of step ``e + 1``, i.e. of the parameters after ``e`` steps; mini-batch: the mean
    batch loss of epoch ``e``, weighted by batch size); it is checked for divergence every
    ``check_every`` epochs, the only time the loop waits for the device. The mini-batch
    orders are drawn ``check_every`` epochs at a time.
    """
    k = model.k
    full = batch_size is None or batch_size >= m
    rec = _record_epochs(epochs, record_every)
    rec_pos = {int(e): i for i, e in enumerate(rec)}
    buf = torch.full((epochs + 1, k), float("nan"), dtype=dtype, device=device)
    rec_loss = torch.full((len(rec), k), float("nan"), dtype=dtype, device=device)
    rec_test = None
    if X_test is not None:
        rec_test = torch.full(
            (len(rec), k, X_test.shape[-2]), float("nan"), dtype=dtype, device=device
        )
    diverged: list[int | None] = [None] * k
    stopped = np.zeros(k, dtype=bool)
    threshold = None
    checked = 0

    def check(upto: int) -> bool:
        """Check buf[checked:upto] for divergence; return True when every member stopped."""
        nonlocal checked, threshold
        window = buf[checked:upto].cpu().numpy()
        if threshold is None:
            threshold = divergence_factor * np.maximum(window[0], np.finfo(np.float32).tiny)
        bad = ~np.isfinite(window) | (window > threshold)
        for j in np.flatnonzero(bad.any(axis=0) & ~stopped):
            diverged[j] = checked + int(np.argmax(bad[:, j]))
            stopped[j] = True
            model.stop(j)
        checked = upto
        return bool(stopped.all())

    start = time.perf_counter()
    perms, first = None, 0  # a block of mini-batch orders, from epoch `first` on
    for epoch in range(epochs):
        pos = rec_pos.get(epoch)
        if pos is not None:
            if rec_test is not None:
                rec_test[pos] = model.outputs(X_test, f0_test)
            if not full:
                rec_loss[pos] = model.full_loss()
        if full:
            model.epoch(None, buf[epoch])
        else:
            if perms is None or epoch - first >= perms.shape[0]:
                n = min(check_every - epoch % check_every, epochs - epoch)
                perms, first = _permutations(gens, m, n, device), epoch
            model.epoch(perms[epoch - first], buf[epoch])
        if (epoch + 1) % check_every == 0 and check(epoch + 1):
            break
    else:
        buf[epochs] = model.full_loss()
        pos = rec_pos[epochs]
        rec_loss[pos] = buf[epochs]
        if rec_test is not None:
            rec_test[pos] = model.outputs(X_test, f0_test)
        check(epochs + 1)
    model.finish()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start

    buf_np = buf.cpu().numpy().astype(np.float64)
    rec_loss_np = rec_loss.cpu().numpy().astype(np.float64)
    if full:
        rec_loss_np = buf_np[rec]
    test_np = None if rec_test is None else rec_test.cpu().numpy().astype(np.float64)
    out = _Curves([], [], [], diverged, wall)
    for j in range(k):
        dep = diverged[j]
        keep = rec if dep is None else rec[rec < dep]
        loss = rec_loss_np[: len(keep), j]
        preds = None if test_np is None else test_np[: len(keep), j]
        if dep is not None:
            keep = np.append(keep, dep)
            loss = np.append(loss, buf_np[dep, j])
            if preds is not None:
                preds = np.vstack([preds, np.full((1, preds.shape[1]), np.nan)])
        out.epochs.append(keep)
        out.train_loss.append(loss)
        out.test_predictions.append(preds)
    return out


# ---- validation ------------------------------------------------------------------------------
def _check_lr(lr, n: int, ntk) -> list[float]:
    """``lr``: a number > 0, ``"auto"`` or one number per member; returns a list of floats."""
    if isinstance(lr, (Sequence, np.ndarray)) and not isinstance(lr, str):
        if len(lr) != n:
            raise ValueError(f"lr has {len(lr)} entries but there are {n} seeds (one lr per seed)")
        return [check_lr(v, auto=False) for v in lr]
    lr = check_lr(lr)
    return [auto_lr(ntk()) if lr == "auto" else lr] * n


def _check_common(X, y, X_test, y_test, *, in_features, epochs, batch_size, record_every, check_every,
                  divergence_factor):  # fmt: skip
    X = check_matrix(X, "X", n_features=in_features)
    y = check_vector(y, "y", length=X.shape[0])
    if (X_test is None) != (y_test is None):
        raise ValueError("X_test and y_test must be given together (or neither)")
    if X_test is not None:
        X_test = check_matrix(X_test, "X_test", n_features=X.shape[1])
        y_test = check_vector(y_test, "y_test", length=X_test.shape[0])
    epochs = check_int(epochs, "epochs", minimum=0)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size")
        if batch_size >= X.shape[0]:
            batch_size = None  # one batch per epoch is full-batch gradient descent
    if record_every is None:
        record_every = default_record_every(epochs)
    record_every = check_int(record_every, "record_every")
    check_every = check_int(check_every, "check_every")
    divergence_factor = check_float(divergence_factor, "divergence_factor", minimum=1.0)
    return X, y, X_test, y_test, epochs, batch_size, record_every, check_every, divergence_factor


def _steps_per_epoch(m: int, batch_size: int | None) -> int:
    return 1 if batch_size is None else math.ceil(m / batch_size)


# ---- public API ------------------------------------------------------------------------------
def train(
    net: nn.Module,
    X,
    y,
    *,
    lr,
    epochs: int,
    batch_size: int | None = None,
    seed: int = 0,
    record_every: int | None = None,
    X_test=None,
    y_test=None,
    centered: bool = False,
    device=None,
    check_every: int = 50,
    divergence_factor: float = 1e6,
) -> TrainResult:
    r"""Train a copy of ``net`` by gradient descent on :math:`\frac1m\sum_i (f(x_i) - y_i)^2`.

    ``net`` itself is not modified: a copy is moved to ``device`` and trained by plain SGD
    (no momentum, no weight decay) in the network's dtype: each step is
    :math:`\theta \leftarrow \theta - \eta \nabla_\theta \frac1B \sum_{i \in \text{batch}}
    (f(x_i) - y_i)^2` with :math:`B` the batch's size (the last batch of an epoch may be
    smaller). Networks from :meth:`Architecture.network` take hand-written fused steps
    (equal to autograd + ``torch.optim.SGD`` up to float round-off, several times faster at
    small batches); any other module is trained by autograd and ``torch.optim.SGD``.

    Parameters
    ----------
    net : torch.nn.Module
        Usually ``arch.network(width, seed=..., in_features=d)``; maps (n, d) to (n,).
    X : array_like (m, d)
    y : array_like (m,)
    lr : float or "auto"
        Learning rate :math:`\eta`; ``"auto"``: :func:`auto_lr` of ``net.architecture.ntk(X)``.
    epochs : int
        Passes over the data (>= 0). With ``batch_size=None`` one epoch is one step.
    batch_size : int, optional
        Mini-batch size for SGD (a new permutation every epoch, drawn from ``seed``);
        ``None`` (default) is full-batch gradient descent.
    seed : int, default 0
        Seed of the mini-batch order (the network's own seed fixed its initialization).
    record_every : int, optional
        Record the curves every this many epochs (default :func:`default_record_every`,
        ``max(1, epochs // 10)``); epoch 0 and the last epoch are always recorded.
    X_test, y_test : array_like, optional
        Test data for ``test_rmse`` and ``test_predictions`` curves.
    centered : bool, default False
        Train and predict :math:`f(x) - f_0(x)` with :math:`f_0` a frozen copy of the
        initial network, which removes the random initial function.
    device : str or torch.device, optional
        ``None``: CUDA when available, else CPU (:func:`ntklab.networks.resolve_device`).
    check_every : int, default 50
        Epochs between divergence checks (each check synchronizes with the device once).
    divergence_factor : float, default 1e6
        A loss above this factor times the initial loss counts as divergence.

    Returns
    -------
    TrainResult

    Examples
    --------
    >>> import numpy as np, ntklab
    >>> arch = ntklab.Architecture(1, "paper")
    >>> X = np.eye(4)[:, :3]; X[3] = [0.6, 0.8, 0.0]; y = np.array([1.0, -1.0, 0.5, 0.0])
    >>> net = arch.network(256, seed=0, in_features=3, device="cpu")
    >>> res = ntklab.train(net, X, y, lr="auto", epochs=200, device="cpu")
    >>> bool(res.train_loss[-1] < res.train_loss[0])
    True
    """
    if not isinstance(net, nn.Module):
        raise ValueError(
            f"net must be a torch.nn.Module (e.g. arch.network(...)); got {type(net).__name__}"
        )
    in_features = getattr(net, "in_features", None)
    X, y, X_test, y_test, epochs, batch_size, record_every, check_every, divergence_factor = _check_common(
        X, y, X_test, y_test, in_features=in_features, epochs=epochs, batch_size=batch_size,
        record_every=record_every, check_every=check_every, divergence_factor=divergence_factor,
    )  # fmt: skip
    seed = check_int(seed, "seed", minimum=0)

    def ntk():
        arch = getattr(net, "architecture", None)
        if arch is None:
            raise ValueError(
                "lr='auto' needs a network with an .architecture (from Architecture.network)"
            )
        return arch.ntk(X)

    (lr,) = _check_lr(lr, 1, ntk)
    dev = resolve_device(device)
    model_net = copy.deepcopy(net).to(dev)
    initial = copy.deepcopy(model_net)
    for p in initial.parameters():
        p.requires_grad_(False)
    dtype = next(model_net.parameters()).dtype
    Xt = torch.as_tensor(X, dtype=dtype, device=dev)
    yt = torch.as_tensor(y, dtype=dtype, device=dev)
    Xtt = None if X_test is None else torch.as_tensor(X_test, dtype=dtype, device=dev)
    f0_train = f0_test = None
    if centered:
        with torch.no_grad():
            f0_train = initial(Xt)
            f0_test = None if Xtt is None else initial(Xtt)
    model = _fused(model_net, lr, Xt, yt, f0_train, batch_size)
    if model is None:
        model = _Autograd(model_net, lr, Xt, yt, f0_train, batch_size)
    curves = _run(
        model, Xtt, f0_test, m=Xt.shape[0], dtype=dtype, epochs=epochs, batch_size=batch_size,
        gens=[torch.Generator().manual_seed(seed)], record_every=record_every,
        check_every=check_every, divergence_factor=divergence_factor, device=dev,
    )  # fmt: skip
    del model
    network = CenteredNetwork(model_net, copy.deepcopy(initial)) if centered else model_net
    preds = None if curves.test_predictions[0] is None else curves.test_predictions[0]
    return TrainResult(
        network=network,
        initial_network=initial,
        epochs=curves.epochs[0],
        train_loss=curves.train_loss[0],
        test_rmse=None if preds is None else rmse(preds, y_test),
        test_predictions=preds,
        wall_time=curves.wall_time,
        diverged=curves.diverged_epoch[0] is not None,
        diverged_epoch=curves.diverged_epoch[0],
        lr=lr,
        centered=bool(centered),
        steps_per_epoch=_steps_per_epoch(X.shape[0], batch_size),
        batch_size=batch_size,
    )


def train_ensemble(
    arch,
    width: int,
    X,
    y,
    *,
    seeds,
    lr,
    epochs: int,
    batch_size: int | None = None,
    record_every: int | None = None,
    X_test=None,
    y_test=None,
    centered: bool = False,
    dtype: torch.dtype = torch.float32,
    device=None,
    check_every: int = 50,
    divergence_factor: float = 1e6,
    group_size: int | None = None,
) -> list[TrainResult]:
    r"""Train ``arch.network(width, seed=s)`` for every ``s`` in ``seeds``, all at once.

    The members' weights are stacked along a leading axis and each layer is one batched
    matrix product, so ``k`` networks cost about as much as one wide one. Member ``s`` is
    trained exactly as ``train(arch.network(width, seed=s, ...), X, y, seed=s, ...)`` would
    train it (same initialization, same mini-batch order, same update; equal up to float
    round-off). A member that diverges is stopped; the others are unaffected.

    Each member may have its own data (e.g. one trial each): ``X`` of shape (k, m, d) and
    ``y`` (k, m) with k = ``len(seeds)`` (and ``X_test`` (k, n, d), ``y_test`` (k, n)); member
    ``j`` is then trained as ``train(..., X[j], y[j], ...)`` would train it, all k in one
    stacked run (on a GPU; on a CPU with ``group_size`` > 1).

    Parameters
    ----------
    arch : Architecture
    width : int
    X, y : array_like (m, d), (m,); or (k, m, d), (k, m): one data set per seed
    seeds : sequence of int
        One network per seed (its initialization and its mini-batch order).
    lr : float, "auto" or sequence of float
        One rate for all members, :func:`auto_lr` of ``arch.ntk(X)`` (of each member's own
        ``X[j]`` when they differ), or one rate per seed.
    epochs, batch_size, record_every, X_test, y_test, centered, device, check_every, divergence_factor
        As in :func:`train` (``X_test``, ``y_test`` with a leading member axis when ``X``
        has one).
    dtype : torch.dtype, default torch.float32
    group_size : int, optional
        Members stacked per batched run. Default: all of them on a GPU; one at a time on a
        CPU, where stacking brings no clear speed-up (measured 0.8–1.1× the speed of
        separate runs, see ``benchmarks/bench_training.py``) and one at a time reproduces
        :func:`train` bit for bit.

    Returns
    -------
    list of TrainResult
        In the order of ``seeds``; ``network`` is an ordinary
        :class:`~ntklab.FullyConnectedNetwork` (wrapped in :class:`CenteredNetwork` when
        ``centered``). ``wall_time`` is the batched run's time divided by its number of members.
    """
    if isinstance(seeds, (int, np.integer)) or not isinstance(seeds, (Sequence, np.ndarray)):
        raise ValueError(f"seeds must be a sequence of integers >= 0, e.g. range(8); got {seeds!r}")
    seeds = [check_int(s, "seeds", minimum=0) for s in seeds]
    if not seeds:
        raise ValueError("seeds must contain at least one seed")
    width = check_int(width, "width")
    k = len(seeds)
    per_member = np.ndim(X) == 3  # one data set per seed
    if per_member:
        if len(X) != k or np.ndim(y) != 2 or len(y) != k:
            raise ValueError(
                f"X of shape (k, m, d) needs k = len(seeds) = {k} data sets and y of shape "
                f"(k, m); got X {np.shape(X)}, y {np.shape(y)}"
            )
        if X_test is not None and (np.ndim(X_test) != 3 or len(X_test) != k):
            raise ValueError(f"X_test must be (k, n, d) like X; got shape {np.shape(X_test)}")
        if y_test is not None and (np.ndim(y_test) != 2 or len(y_test) != k):
            raise ValueError(f"y_test must be (k, n) like y; got shape {np.shape(y_test)}")
        d = check_matrix(X[0], "X[0]").shape[1]
        sets = [
            _check_common(
                X[j],
                y[j],
                None if X_test is None else X_test[j],
                None if y_test is None else y_test[j],
                in_features=d,
                epochs=epochs,
                batch_size=batch_size,
                record_every=record_every,
                check_every=check_every,
                divergence_factor=divergence_factor,
            )
            for j in range(k)
        ]
        if len({s[0].shape for s in sets}) > 1:
            raise ValueError("every member's X must have the same shape (m, d)")
        if X_test is not None and len({s[2].shape for s in sets}) > 1:
            raise ValueError("every member's X_test must have the same shape (n, d)")
        epochs, batch_size, record_every, check_every, divergence_factor = sets[0][4:]
        X, y = np.stack([s[0] for s in sets]), np.stack([s[1] for s in sets])
        if X_test is not None:
            X_test, y_test = np.stack([s[2] for s in sets]), np.stack([s[3] for s in sets])
        if isinstance(lr, str) and lr == "auto":
            lrs = [auto_lr(arch.ntk(Xj)) for Xj in X]
        else:
            lrs = _check_lr(lr, k, None)
    else:
        X = check_matrix(X, "X")
        d = X.shape[1]
        X, y, X_test, y_test, epochs, batch_size, record_every, check_every, divergence_factor = _check_common(
            X, y, X_test, y_test, in_features=d, epochs=epochs, batch_size=batch_size,
            record_every=record_every, check_every=check_every, divergence_factor=divergence_factor,
        )  # fmt: skip
        lrs = _check_lr(lr, k, lambda: arch.ntk(X))
    dev = resolve_device(device)
    if group_size is None:
        group_size = k if dev.type == "cuda" else 1
    group_size = check_int(group_size, "group_size")
    Xt = torch.as_tensor(X, dtype=dtype, device=dev)
    yt = torch.as_tensor(y, dtype=dtype, device=dev)
    Xtt = None if X_test is None else torch.as_tensor(X_test, dtype=dtype, device=dev)
    opts = dict(epochs=epochs, batch_size=batch_size, record_every=record_every,
                check_every=check_every, divergence_factor=divergence_factor, device=dev)  # fmt: skip
    results = []
    for g in range(0, k, group_size):
        sl = slice(g, g + group_size)
        results += _train_group(
            arch, width, seeds[sl], lrs[sl], Xt[sl] if per_member else Xt,
            yt[sl] if per_member else yt,
            None if Xtt is None else (Xtt[sl] if per_member else Xtt),
            None if y_test is None else (y_test[sl] if per_member else y_test),
            centered=centered, dtype=dtype, **opts,
        )  # fmt: skip
    return results


def _train_group(arch, width, seeds, lrs, Xt, yt, Xtt, y_test, *, centered, dtype, **opts):
    """Train the networks of ``seeds`` stacked together (see :func:`train_ensemble`); ``Xt``,
    ``yt``, ``Xtt`` and ``y_test`` have a leading member axis when the members' data differ."""
    dev, m, d = opts["device"], Xt.shape[-2], Xt.shape[-1]
    per_member = Xt.dim() == 3
    # the individual networks wait on the CPU while their stacked copy trains on the device
    nets = [arch.network(width, seed=s, in_features=d, dtype=dtype, device="cpu") for s in seeds]
    initials = [copy.deepcopy(n).to(dev) for n in nets]
    for net in initials:
        for p in net.parameters():
            p.requires_grad_(False)
    f0_train = f0_test = None
    if len(seeds) == 1:  # one network: trained in place by the fused SGD steps
        nets = [nets[0].to(dev)]
        if per_member:
            Xt, yt = Xt[0], yt[0]
            Xtt = None if Xtt is None else Xtt[0]
        if centered:
            with torch.no_grad():
                f0_train = initials[0](Xt)
                f0_test = None if Xtt is None else initials[0](Xtt)
        model = _fused(nets[0], lrs[0], Xt, yt, f0_train, opts["batch_size"])
    else:
        model = _Stacked(nets, torch.tensor(lrs, dtype=dtype, device=dev), Xt, yt,
                         opts["batch_size"])  # fmt: skip
        if centered:
            with torch.no_grad():
                model.f0 = model.outputs(Xt, None)
                f0_test = None if Xtt is None else model.outputs(Xtt, None)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    curves = _run(model, Xtt, f0_test, m=m, dtype=dtype, gens=gens, **opts)
    if len(seeds) > 1:
        model.copy_into(nets)
    del model
    results = []
    for j, net in enumerate(nets):
        net = net.to(dev)
        preds = curves.test_predictions[j]
        target = y_test[j] if per_member and y_test is not None else y_test
        network = CenteredNetwork(net, copy.deepcopy(initials[j])) if centered else net
        results.append(
            TrainResult(
                network=network,
                initial_network=initials[j],
                epochs=curves.epochs[j],
                train_loss=curves.train_loss[j],
                test_rmse=None if preds is None else rmse(preds, target),
                test_predictions=preds,
                wall_time=curves.wall_time / len(seeds),
                diverged=curves.diverged_epoch[j] is not None,
                diverged_epoch=curves.diverged_epoch[j],
                lr=lrs[j],
                centered=bool(centered),
                steps_per_epoch=_steps_per_epoch(m, opts["batch_size"]),
                batch_size=opts["batch_size"],
            )
        )
    return results
