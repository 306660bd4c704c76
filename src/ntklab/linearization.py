r"""The linearization of any PyTorch model around its parameters, as a trainable module.

For a model :math:`f(x; w)` and its parameters :math:`w_0` when linearized,

.. math::

    f^{\text{lin}}(x; w) = f(x; w_0) + J(x)\,(w - w_0), \qquad
    J(x) = \frac{\partial f(x; w)}{\partial w}\Big|_{w = w_0},

computed by one forward-mode Jacobian-vector product (:func:`torch.func.jvp`), so that no
Jacobian is ever formed. Trained by gradient descent, a wide network stays close to this
model (Lee et al. 2019); under the squared loss its training is the kernel regression with
the empirical NTK at :math:`w_0` (:func:`ntklab.gradient_descent_mse`).

References
----------
Lee, J. et al. (2019). Wide neural networks of any depth evolve as linear models under
gradient descent. NeurIPS 32.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, jvp

from .model_checks import check_model

__all__ = ["LinearizedModel", "linearize"]


class LinearizedModel(nn.Module):
    r"""First-order Taylor model :math:`f(x; w_0) + J(x)(w - w_0)` of a module.

    Its parameters :math:`w` (``self.parameters()``, in the order and with the names of the
    original model's, under ``model.``) start at :math:`w_0` and train with any torch
    optimizer; :math:`w_0` is kept in buffers. The base model runs in eval mode whatever
    :meth:`train` says (the linearization of a batch-norm in training mode or of dropout is
    not defined). Build it with :func:`linearize`.

    Attributes
    ----------
    model : torch.nn.Module
        A copy of the original model; its parameters are :math:`w`.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        check_model(model)
        self.model = copy.deepcopy(model).eval()
        self._names = [name for name, _ in self.model.named_parameters()]
        for i, p in enumerate(self.model.parameters()):
            self.register_buffer(f"w0_{i}", p.detach().clone())

    def train(self, mode: bool = True) -> LinearizedModel:
        super().train(mode)
        self.model.eval()
        return self

    def initial_parameters(self) -> dict[str, torch.Tensor]:
        """:math:`w_0`, by parameter name."""
        return {name: getattr(self, f"w0_{i}") for i, name in enumerate(self._names)}

    def base(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`f(x; w_0)`, the model at the linearization point."""
        buffers = dict(self.model.named_buffers())
        return functional_call(self.model, (self.initial_parameters(), buffers), (x,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w0 = self.initial_parameters()
        w = dict(self.model.named_parameters())
        tangent = {name: w[name] - w0[name] for name in self._names}
        buffers = dict(self.model.named_buffers())

        def f(params):
            return functional_call(self.model, (params, buffers), (x,))

        value, change = jvp(f, (w0,), (tangent,))
        return value + change


def linearize(model: nn.Module) -> LinearizedModel:
    r"""The linearization of ``model`` around its current parameters (Lee et al. 2019).

    .. math::

        f^{\text{lin}}(x; w) = f(x; w_0) + J(x)\,(w - w_0)

    Parameters
    ----------
    model : torch.nn.Module
        Any module with parameters whose operations support forward-mode differentiation
        (all of torch's layers do); batch-norm and dropout must be in eval mode.

    Returns
    -------
    LinearizedModel
        An ``nn.Module`` on the model's device and in its dtype, equal to ``model`` at
        :math:`w_0` and affine in :math:`w - w_0`; train it with any torch optimizer, e.g.
        ``torch.optim.SGD(lin.parameters(), lr=0.1)``. ``model`` itself is not changed
        (the module holds a copy).

    Examples
    --------
    >>> import torch, ntklab
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    >>> lin = ntklab.linearize(net)
    >>> x = torch.randn(5, 3)
    >>> torch.allclose(lin(x), net(x))
    True
    """
    return LinearizedModel(model)
