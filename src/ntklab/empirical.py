r"""Empirical kernels of finite networks: the empirical NTK and Monte-Carlo NNGP/NTK.

The empirical neural tangent kernel of a network :math:`f(\cdot;\theta)` with scalar output is

.. math::

    \hat\Theta(x, z) = \sum_{p} \frac{\partial f(x)}{\partial\theta_p}
                                   \frac{\partial f(z)}{\partial\theta_p},

summed over all its parameters (Jacot et al. 2018). As the width grows it converges to the
analytic NTK of :class:`ntklab.Architecture`, and the covariance of :math:`f(x), f(z)` over
random initializations converges to the NNGP (Neal 1996; Lee et al. 2018). SPEC §5 asks that
every analytic kernel be checked against these estimates; :mod:`ntklab.verify` does so. The
Monte-Carlo estimates live in :mod:`ntklab.monte_carlo` (re-exported here) and the layer-wise
machinery of the structured path in :mod:`ntklab.stacked`.

Two exact ways to compute :func:`empirical_ntk`:

* ``method="generic"`` works for any ``torch.nn.Module`` (scalar or vector outputs, any input
  shape): :func:`ntklab.torch_ntk.generic_ntk`, structured derivatives of the ``Linear`` and
  ``Conv2d`` layers and :mod:`torch.func` Jacobians of the other parameters (Novak et al.
  2022), in chunks that keep the working memory under ``max_memory``;
* ``method="structured"`` (used automatically for the networks that
  :func:`ntklab.training.engine.dense_specs` describes, those of
  :meth:`ntklab.Architecture.network`; 1.0-2.1x faster than the generic path from 1.5 ms
  of work up, 3-6x on tiny problems where the generic path's checks dominate) reads the same parameter dict and uses
  the layer structure: for a dense layer :math:`h_l = s_l W_l z_l + \beta_l b_l`,

  .. math::

      \hat\Theta \mathrel{+}= s_l^2\, (\Delta_l \Delta_l'^\top) \odot (Z_l Z_l'^\top)
                  + \beta_l^2\, \Delta_l \Delta_l'^\top,

  with :math:`Z_l` the layer's inputs and :math:`\Delta_l = \partial f/\partial h_l` the
  back-propagated deltas (computed exactly by the chain rule through the ReLUs, or through
  the activation's own derivative for the networks of :mod:`ntklab.activations`). This costs a
  few matrix products per layer instead of one Jacobian row per data point.

References
----------
Jacot, A., Gabriel, F. and Hongler, C. (2018). Neural tangent kernel. NeurIPS 31.
Lee, J. et al. (2018). Deep neural networks as Gaussian processes. ICLR.
Lee, J. et al. (2019). Wide neural networks of any depth evolve as linear models. NeurIPS 32.
Novak, R. et al. (2022). Fast finite width neural tangent kernel. ICML.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._validation import check_int, check_pair
from .monte_carlo import (
    MonteCarloEstimate,
    derive_seeds,
    monte_carlo_kernels,
    monte_carlo_nngp,
    monte_carlo_ntk,
)
from .stacked import DEFAULT_MAX_BYTES, features, network_layers, stacked_layers, structured_gram
from .training import engine

__all__ = [
    "empirical_ntk",
    "monte_carlo_nngp",
    "monte_carlo_ntk",
    "monte_carlo_kernels",
    "derive_seeds",
    "MonteCarloEstimate",
]

_METHODS = ("auto", "structured", "generic")


# ---- helpers --------------------------------------------------------------------------------
def _as_tensor(X: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(X, dtype=like.dtype, device=like.device)


def _model_inputs(model, X, Z):
    """Validate ``model``, ``X`` and ``Z``; return (first parameter, X, Z, symmetric)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    param = next(model.parameters(), None)
    if param is None:
        raise ValueError("model has no parameters, so its empirical NTK is zero/undefined")
    X, Z, symmetric = check_pair(X, Z)
    d = getattr(model, "in_features", None)
    if isinstance(d, int) and X.shape[1] != d:
        raise ValueError(f"X has {X.shape[1]} features but the model expects in_features={d}")
    return param, X, Z, symmetric


# ---- structured path: stacked dense/ReLU networks (ntklab.stacked) ------------------------------
def _structured_ntk(model, specs, X, Z, symmetric, batch_size, activation=None) -> np.ndarray:
    params = {name: p.unsqueeze(0) for name, p in engine.parameters(model).items()}
    stack = stacked_layers(params, specs)
    param = stack[0].weight
    n, m = X.shape[0], Z.shape[0]
    if batch_size is None:
        width = sum(layer.weight.shape[-1] + layer.weight.shape[-2] for layer in stack)
        batch_size = max(1, DEFAULT_MAX_BYTES // (width * param.element_size() * 2))
    out = np.empty((n, m))
    with torch.no_grad():
        zt = _as_tensor(Z, param)
        feats_z = features(stack, zt, activation) if not symmetric or n > batch_size else None
        for start in range(0, n, batch_size):
            xb = _as_tensor(X[start : start + batch_size], param)
            feats_x = features(stack, xb, activation)
            fz = feats_x if feats_z is None else feats_z
            out[start : start + batch_size] = structured_gram(stack, feats_x, fz)[0].cpu().numpy()
    if symmetric:
        out += out.T
        out *= 0.5
    return out


# ---- generic path: any module (ntklab.torch_ntk) ----------------------------------------------
def _generic_ntk(model: nn.Module, X, Z, symmetric, batch_size) -> np.ndarray:
    from .torch_ntk import generic_ntk

    param = next(model.parameters())
    xt = _as_tensor(X, param)
    zt = None if symmetric else _as_tensor(Z, param)
    return generic_ntk(model, xt, zt, batch_size=batch_size)


def empirical_ntk(
    model: nn.Module,
    X,
    Z=None,
    *,
    batch_size: int | None = None,
    method: str = "auto",
    output: str = "trace",
    max_memory: int | None = None,
    check_input: bool = True,
) -> np.ndarray:
    r"""Empirical NTK :math:`\sum_p \partial_p f_a(x)\, \partial_p f_b(z)` of any model.

    Summed over all parameters of ``model`` (``requires_grad`` is ignored). Computed in the
    model's dtype and on its device; each layer's (or parameter's) contribution is
    accumulated in float64. For the networks of :meth:`ntklab.Architecture.network` the
    exact layer-wise formula of this module is used (``method="structured"``); any other
    module goes through :func:`ntklab.torch_ntk.generic_ntk` (structured derivatives of its
    ``Linear``/``Conv2d`` layers, :mod:`torch.func` Jacobians of the other parameters; Novak
    et al. 2022), in chunks of inputs that keep the working memory under ``max_memory``.

    Parameters
    ----------
    model : torch.nn.Module
        Any module mapping a batch (n, *input_shape) to (n,) or (n, *output_shape), whose
        outputs for one input do not depend on the other inputs of the batch: put models
        with batch-norm or dropout in eval mode (``model.eval()``) first.
    X : array_like or torch.Tensor (n, *input_shape)
    Z : array_like or torch.Tensor (m, *input_shape), optional
        Defaults to ``X`` (the result is then exactly symmetric).
    batch_size : int, optional
        Rows per chunk; default: as many as ``max_memory`` allows.
    method : {"auto", "structured", "generic"}
        ``"structured"``: exact layer-wise formula for :class:`ntklab.FullyConnectedNetwork`
        (see the module docstring); ``"generic"``: :func:`ntklab.torch_ntk.generic_ntk`, for
        any module; ``"auto"``: structured when possible.
    output : {"trace", "mean", "full"}
        For K outputs per example: the sum over outputs :math:`\sum_a \hat\Theta_{aa}`
        (n, m), that sum divided by K, or the full block (n, m, K, K).
    max_memory : int, optional
        Working memory in bytes (generic path; default 1 GiB), not counting the result
        itself; a ValueError says how much one example needs when it is too small.
    check_input : bool, default True
        ``False`` skips the checks of the model and the arguments (:mod:`ntklab._validation`):
        ``model`` is then a module with parameters and one scalar output per row, ``X``
        (n, d) and ``Z`` (m, d) finite float64 arrays with ``d`` its ``in_features``,
        ``batch_size`` ``None`` or >= 1 and ``method`` one of the three above.

    Returns
    -------
    ndarray (n, m) or (n, m, K, K), float64

    Examples
    --------
    >>> import numpy as np, ntklab
    >>> arch = ntklab.Architecture(2, "paper")
    >>> net = arch.network(512, seed=0, in_features=3, device="cpu")
    >>> ntklab.empirical_ntk(net, np.eye(3)).shape
    (3, 3)
    """
    if check_input:
        if method not in _METHODS:
            raise ValueError(f"method must be one of {list(_METHODS)}; got {method!r}")
        if batch_size is not None:
            batch_size = check_int(batch_size, "batch_size")
        if method == "generic" or (method == "auto" and engine.dense_specs(model) is None):
            from . import model_checks, torch_ntk

            param = model_checks.check_model(model)
            xt = model_checks.as_batch(X, "X", param)
            zt = None if Z is None else model_checks.as_batch(Z, "Z", param, tuple(xt.shape[1:]))
            budget = torch_ntk.DEFAULT_MAX_MEMORY if max_memory is None else max_memory
            budget = check_int(budget, "max_memory")
            return torch_ntk.generic_ntk(
                model, xt, zt, output=output, max_memory=budget, batch_size=batch_size
            )
        if output not in ("trace", "mean", "full"):
            raise ValueError(f"output must be one of ['trace', 'mean', 'full']; got {output!r}")
        _, X, Z, symmetric = _model_inputs(model, X, Z)
        Z = None if symmetric else Z
    out = _dense_or_generic(model, X, Z, batch_size, method)
    return out[:, :, None, None] if output == "full" else out  # one output: trace = mean = block


def _dense_or_generic(model, X, Z, batch_size, method) -> np.ndarray:
    """The (n, m) empirical NTK of checked inputs (``Z=None``: ``X``, exactly symmetric):
    the structured path for a dense stack, else the generic one."""
    symmetric = Z is None
    if symmetric:
        Z = X
    specs, activation = network_layers(model)  # the one rule for the hand-written paths
    if method == "structured" and specs is None:
        raise ValueError(
            "method='structured' needs an ntklab.FullyConnectedNetwork (Dense/ReLU layers); "
            "use method='generic' for other modules"
        )
    if specs is not None and method != "generic":
        return _structured_ntk(model, specs, X, Z, symmetric, batch_size, activation)
    return _generic_ntk(model, X, Z, symmetric, batch_size)
