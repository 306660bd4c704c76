"""What training returns: :class:`TrainResult` and the centered network :math:`f - f_0`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._validation import check_matrix
from ..metrics import rmse
from ..networks import predict_numpy

__all__ = ["CenteredNetwork", "TrainResult", "lazy_scaled", "steps_per_epoch"]


def steps_per_epoch(m: int, batch_size: int | None) -> int:
    r"""Gradient steps per epoch on ``m`` rows: :math:`\lceil m / \text{batch\_size}\rceil`,
    one for full batches (``None`` or ``batch_size >= m``). The one definition of the
    training time that the NTK prediction at the same time uses (SPEC §6 time matching)."""
    if batch_size is None or batch_size >= m:
        return 1
    return -(-int(m) // int(batch_size))


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
    scale : float, default 1.0
        α: the module computes :math:`\alpha (f(x) - f_0(x))` (Chizat, Oyallon & Bach 2019's
        lazy-scaled model; 1: the centered network).
    """

    def __init__(self, network: nn.Module, initial: nn.Module, scale: float = 1.0):
        super().__init__()
        self.network = network
        self.scale = float(scale)
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
        out = self.network(x) - self._initial[0](x)
        return out if self.scale == 1.0 else out * self.scale

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
    lazy_scale : float or None
        α of a lazy-scaled model :math:`\alpha (f - f_0)` (then ``centered`` is True,
        ``network`` computes the scaled model and ``train_loss`` is the loss divided by
        α²); ``None`` otherwise.
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
    lazy_scale: float | None = None

    @property
    def steps(self) -> int:
        """Gradient steps taken: last recorded epoch × ``steps_per_epoch``."""
        return int(self.epochs[-1]) * self.steps_per_epoch

    def predict(self, X, *, check_input: bool = True) -> np.ndarray:
        """Predictions of the final network on ``X`` (n, d): float64 (n,), centered if trained
        so. ``check_input=False``: ``X`` is a finite float64 (n, d) array, ``d`` the network's
        ``in_features``, and is not checked (:mod:`ntklab._validation`)."""
        return predict_numpy(self.network, X, check_input=check_input)

    def initial_predict(self, X, *, check_input: bool = True) -> np.ndarray:
        r"""Outputs at initialization of the model that was trained: :math:`f_0(X)`, or 0 if
        centered. ``check_input``: as in :meth:`predict`."""
        if self.centered:
            if check_input:
                X = check_matrix(
                    X, "X", n_features=getattr(self.initial_network, "in_features", None)
                )
            return np.zeros(X.shape[0])
        return predict_numpy(self.initial_network, X, check_input=check_input)


def lazy_scaled(result: TrainResult, alpha: float, y_test) -> TrainResult:
    r"""The result of training the centered network on the targets :math:`y/\alpha`, read as
    Chizat, Oyallon & Bach (2019)'s lazy-scaled model :math:`f_\alpha = \alpha (f - f_0)`.

    Gradient descent on :math:`\frac{1}{\alpha^2 m}\sum_i (\alpha (f(x_i) - f_0(x_i)) -
    y_i)^2` is exactly gradient descent on :math:`\frac1m \sum_i (f(x_i) - f_0(x_i) -
    y_i/\alpha)^2` (the same function of the parameters), so the fast training paths train
    it unchanged; this multiplies the outputs by α (``network``, ``test_predictions``,
    ``test_rmse`` against ``y_test``). ``train_loss`` is the scaled model's loss divided by
    α², as defined. The linearized model of :math:`f_\alpha` under this loss moves with the
    kernel Θ of :math:`f` (:math:`\alpha^2\Theta / \alpha^2`), so its critical learning rate
    does not depend on α.
    """
    net = result.network
    inner = net.network if isinstance(net, CenteredNetwork) else net
    result.network = CenteredNetwork(inner, net.initial_network, scale=alpha)
    if result.test_predictions is not None:
        result.test_predictions = result.test_predictions * alpha
        result.test_rmse = rmse(result.test_predictions, y_test)
    result.lazy_scale = float(alpha)
    return result
