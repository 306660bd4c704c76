"""Finite fully connected networks built from :mod:`ntklab.layers`.

Use :meth:`ntklab.Architecture.network` to build one; it uses the same layer objects as the
analytic kernels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._validation import check_matrix

__all__ = [
    "FullyConnectedNetwork",
    "default_device",
    "predict_numpy",
    "resolve_device",
]


def default_device() -> torch.device:
    """CUDA when available, else CPU (never hard-coded)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` means :func:`default_device`; a string such as ``"cuda:0"`` is parsed."""
    if device is None:
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device must be 'cpu', 'cuda' or 'cuda:N'; got {device!r} ({exc})"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was asked for but CUDA is not available; use device='cpu'"
        )
    return dev


def predict_numpy(
    model: nn.Module, X, *, batch_size: int = 65536, check_input: bool = True
) -> np.ndarray:
    """Evaluate a scalar-output ``model`` on a numpy array: float64 numpy of shape (n,).

    ``X`` is validated (finite, 2-D, ``model.in_features`` columns when the model has that
    attribute) and sent in batches in the dtype and device of the model's parameters.
    ``check_input=False`` skips that check (:mod:`ntklab._validation`): ``X`` is then a
    finite float64 array (n, d), ``d`` the model's ``in_features``.
    """
    if check_input:
        X = check_matrix(X, "X", n_features=getattr(model, "in_features", None))
    param = next(model.parameters())
    outs = []
    with torch.no_grad():
        for start in range(0, X.shape[0], batch_size):
            xb = torch.as_tensor(
                X[start : start + batch_size], dtype=param.dtype, device=param.device
            )
            outs.append(model(xb).reshape(-1).double().cpu())
    return torch.cat(outs).numpy()


class FullyConnectedNetwork(nn.Module):
    """A finite network of an :class:`~ntklab.Architecture` at a given width.

    ``forward(x)`` takes a tensor of shape (n, d) and returns shape (n,) (scalar output,
    the trailing output dimension squeezed).

    Attributes
    ----------
    architecture : Architecture
        The family this network belongs to (its analytic kernels are
        ``architecture.nngp`` and ``architecture.ntk``).
    width : int
        Hidden-layer width ``n``.
    in_features : int
        Input dimension ``d``.
    seed : int
        The seed its parameters were drawn from.
    """

    def __init__(
        self, layers: list[nn.Module], *, architecture, width: int, in_features: int, seed: int
    ):
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.architecture = architecture
        self.width = width
        self.in_features = in_features
        self.seed = seed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(-1)

    def predict(self, X, *, batch_size: int = 65536):
        """Evaluate on a numpy array (validated) and return float64 numpy of shape (n,)."""
        return predict_numpy(self, X, batch_size=batch_size)
