r"""Plain SGD on the squared loss through the functional engine (:mod:`.engine`).

:class:`FunctionalSGD` trains one network, or ``k`` networks of one architecture stacked on
a leading member axis (``vmap`` over the members: one batched pass for all of them, each
with its own learning rate, mini-batch order and, optionally, its own data). It is the path
of every module that is not a network of dense layers and ReLUs, and of the networks and
stacked ensembles for which :func:`ntklab.training.fused.fused_specs` finds the hand-written
paths (:mod:`ntklab.training.fused`) not faster. :class:`Members` holds what all trainers
of ``k`` members share: the epoch's batches, the full-data loss (the one mean squared
residual, :func:`engine.mean_square`) and the update of stacked members.

Every model of the training loop (:func:`ntklab.training.epochs.run`) has the same small
interface: ``k`` (members), ``epoch(perms, out)``, ``outputs(x, f0)``, ``full_loss()``,
``stop(member)`` and ``finish()``.
"""

from __future__ import annotations

import torch
from torch import nn

from . import engine

__all__ = ["FunctionalSGD"]


class Members:
    """What every trainer of ``k`` members shares: the epoch's batches, the loss on all the
    training data and stopping a member.

    A trainer sets ``k``, ``X`` (m, d) or (k, m, d), ``target`` (m,) or (k, m),
    ``batch_size``, ``stacked`` (whether its members carry a leading axis), ``active`` and
    ``all_active``, and defines ``_step(xb, tb)`` (one SGD step on a batch, returning the
    members' batch losses (k,)) and ``outputs``.
    """

    def epoch(self, perms: torch.Tensor | None, out: torch.Tensor) -> None:
        """One epoch: batches in the order of ``perms`` (k, m) (one full batch if ``None``);
        the members' mean squared residuals over the epoch (weighted by batch size) into
        ``out`` (k,)."""
        if perms is None:
            out.copy_(self._step(self.X, self.target))
            return
        xe, te = self._ordered(perms)
        axis = 1 if self.stacked else 0  # the rows' axis
        m, bs = self.X.shape[-2], self.batch_size
        total = torch.zeros(self.k, dtype=out.dtype, device=out.device)
        for b0 in range(0, m, bs):
            n = min(bs, m - b0)
            total.add_(self._step(xe.narrow(axis, b0, n), te.narrow(axis, b0, n)), alpha=n)
        torch.div(total, m, out=out)

    def _ordered(self, perms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training inputs and targets in an epoch's orders, gathered at once."""
        X, t = self.X, self.target
        if not self.stacked:
            return X[perms[0]], t[perms[0]]
        if X.dim() == 3:  # one data set per member
            xe = torch.gather(X, 1, perms.unsqueeze(-1).expand(-1, -1, X.shape[-1]))
        else:
            xe = X[perms]
        return xe, (t[perms] if t.dim() == 1 else torch.gather(t, 1, perms))

    def full_loss(self) -> torch.Tensor:
        """Mean squared residual (k,) on all the training data."""
        return engine.mean_square(self.outputs(self.X, None) - self.target)

    def stop(self, member: int) -> None:
        """Stop updating ``member`` (it diverged)."""
        self.active[member] = False
        self.all_active = False

    def _update(self, grads) -> None:
        """``p -= lr_j * g`` for each stacked parameter ``p`` (k, ...) and gradient ``g``
        (pairs), skipping the members that stopped."""
        for p, g in grads:
            shape = (self.k,) + (1,) * (p.dim() - 1)
            if not self.all_active:
                g = g.masked_fill(~self.active.view(shape), 0.0)
            p.addcmul_(g, self.neg_lrs.view(shape))


class FunctionalSGD(Members):
    r"""SGD :math:`\theta_j \leftarrow \theta_j - \eta_j \nabla_{\theta_j} \frac1B \sum_{i}
    (f_j(x_i) - t_i)^2` of one or ``k`` stacked networks, gradients by :mod:`torch.func`.

    Parameters
    ----------
    net : torch.nn.Module
        The module whose ``forward`` defines the computation (for stacked members: any one
        of them; its own parameters are not used).
    params : dict of Tensor
        Trainable parameters, updated in place: :func:`engine.parameters` of ``net`` (views
        of its storage) for one network, :func:`engine.stack_parameters` (k, ...) stacked.
    lrs : sequence of float
        Learning rates, one per member.
    X : Tensor (m, d) or (k, m, d)
        Training inputs, shared or one set per member (stacked only).
    target : Tensor (m,) or (k, m)
        Targets :math:`t = y` (or :math:`y + f_0` for a centered network).
    batch_size : int or None
        ``None``: full-batch gradient descent.
    stacked : bool
        Whether ``params`` carry a leading member axis.
    frozen : dict of Tensor, optional
        Parameters not trained and buffers (one network only), passed to the forward as is.
    """

    def __init__(self, net: nn.Module, params, lrs, X, target, batch_size, *, stacked: bool,
                 frozen=None):  # fmt: skip
        self.net, self.params, self.stacked = net, params, stacked
        self.frozen = () if frozen is None else (frozen,)
        self.k = len(lrs)
        self.lr = float(lrs[0])  # one network: torch.optim.SGD's update with a Python float
        self.neg_lrs = -torch.tensor(lrs, dtype=X.dtype, device=X.device)
        self.X, self.target, self.batch_size = X, target, batch_size
        self.active = torch.ones(self.k, dtype=torch.bool, device=X.device)
        self.all_active = True

    def _step(self, xb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        """One SGD step on a batch; the members' batch losses (k,)."""
        if self.stacked:
            grads, losses = engine.stacked_loss_and_grad(self.net, self.params, xb, tb)
        else:
            grads, loss = engine.loss_and_grad(self.net, self.params, xb, tb, *self.frozen)
            losses = loss.reshape(1)
        with torch.no_grad():
            if self.stacked:
                self._update((p, grads[name]) for name, p in self.params.items())
            else:
                for name, p in self.params.items():
                    p.add_(grads[name], alpha=-self.lr)  # torch.optim.SGD's update
        return losses.detach()

    def outputs(self, x: torch.Tensor, f0: torch.Tensor | None) -> torch.Tensor:
        """Outputs (k, n) on ``x`` (n, d), or (k, n, d) one per member, minus ``f0``."""
        with torch.no_grad():
            if self.stacked:
                out = engine.stacked_forward(self.net, self.params, x)
            else:
                out = engine.forward(self.net, self.params, x, *self.frozen).unsqueeze(0)
        return out if f0 is None else out - f0

    def finish(self) -> None:
        """Nothing to write back: ``params`` are the trained tensors."""
