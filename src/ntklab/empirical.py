r"""Empirical kernels of finite networks: the empirical NTK and Monte-Carlo NNGP/NTK.

The empirical neural tangent kernel of a network :math:`f(\cdot;\theta)` with scalar output is

.. math::

    \hat\Theta(x, z) = \sum_{p} \frac{\partial f(x)}{\partial\theta_p}
                                   \frac{\partial f(z)}{\partial\theta_p},

summed over all its parameters (Jacot et al. 2018). As the width grows it converges to the
analytic NTK of :class:`ntklab.Architecture`, and the covariance of :math:`f(x), f(z)` over
random initializations converges to the NNGP (Neal 1996; Lee et al. 2018). SPEC §5 asks that
every analytic kernel be checked against these estimates; :mod:`ntklab.verify` does so.

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

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ._validation import check_int, check_pair
from .architecture import Architecture
from .networks import resolve_device
from .training import engine
from .training.engine import DenseSpec

__all__ = [
    "empirical_ntk",
    "empirical_ntk_unchecked",
    "monte_carlo_nngp",
    "monte_carlo_ntk",
    "monte_carlo_kernels",
    "derive_seeds",
    "MonteCarloEstimate",
]

_METHODS = ("auto", "structured", "generic")
_DEFAULT_MAX_BYTES = 256 * 2**20  # Jacobian / feature memory per chunk
_NNGP_ESTIMATORS = ("outputs", "last_hidden")


# ---- helpers --------------------------------------------------------------------------------
def derive_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent non-negative integer seeds derived from ``seed`` (numpy SeedSequence).

    Parameters
    ----------
    seed : int
        Root seed (>= 0).
    n : int
        Number of seeds.
    """
    seed = check_int(seed, "seed", minimum=0)
    n = check_int(n, "n", minimum=1)
    states = np.random.SeedSequence(seed).generate_state(n, dtype=np.uint64)
    return [int(s) & (2**63 - 1) for s in states]


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


# ---- structured path: stacked dense/ReLU networks ---------------------------------------------
@dataclass(frozen=True)
class _DenseStack:
    """One dense layer of ``S`` stacked networks: weight (S, out, in), bias (S, out) or None."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    scale: float
    beta: float


def _dense_stack(params: dict[str, torch.Tensor], specs: list[DenseSpec]) -> list[_DenseStack]:
    """The layers of stacked networks, from the engine's parameter dict (leading member axis)
    and layer description (:func:`ntklab.training.engine.dense_specs`)."""
    return [
        _DenseStack(
            params[sp.weight], None if sp.bias is None else params[sp.bias], sp.scale, sp.beta
        )
        for sp in specs
    ]


def _features(stack: list[_DenseStack], x: torch.Tensor, activation=None):
    """Forward and exact backward of stacked networks on rows ``x`` (n, d).

    ``activation``: None for ReLU, else the network's activation module (an
    :class:`ntklab.activations.ActivationModule`, with its ``derivative``).
    Returns ``f`` (S, n), and per dense layer its inputs ``Z_l`` ((n, d) or (S, n, in)) and
    deltas ``Delta_l = df/dh_l`` (S, n, out).
    """
    inputs, pre = [], []
    z = x
    for k, layer in enumerate(stack):
        if k:
            z = torch.relu(pre[-1]) if activation is None else activation(pre[-1])
        inputs.append(z)
        h = torch.matmul(z, layer.weight.transpose(-1, -2))
        h *= layer.scale
        if layer.bias is not None:
            h += layer.beta * layer.bias.unsqueeze(-2)
        pre.append(h)
    f = pre[-1][..., 0]
    deltas = [None] * len(stack)
    delta = torch.ones_like(pre[-1])
    deltas[-1] = delta
    for k in range(len(stack) - 1, 0, -1):
        delta = torch.matmul(delta, stack[k].weight) * stack[k].scale
        if activation is None:
            delta *= pre[k - 1] > 0
        else:
            delta *= activation.derivative(pre[k - 1])
        deltas[k - 1] = delta
    return f, inputs, deltas


def _structured_gram(stack, feats_x, feats_z) -> torch.Tensor:
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


def _structured_ntk(model, specs, X, Z, symmetric, batch_size, activation=None) -> np.ndarray:
    params = {name: p.unsqueeze(0) for name, p in engine.parameters(model).items()}
    stack = _dense_stack(params, specs)
    param = stack[0].weight
    n, m = X.shape[0], Z.shape[0]
    if batch_size is None:
        width = sum(layer.weight.shape[-1] + layer.weight.shape[-2] for layer in stack)
        batch_size = max(1, _DEFAULT_MAX_BYTES // (width * param.element_size() * 2))
    out = np.empty((n, m))
    with torch.no_grad():
        zt = _as_tensor(Z, param)
        feats_z = _features(stack, zt, activation) if not symmetric or n > batch_size else None
        for start in range(0, n, batch_size):
            xb = _as_tensor(X[start : start + batch_size], param)
            feats_x = _features(stack, xb, activation)
            fz = feats_x if feats_z is None else feats_z
            out[start : start + batch_size] = _structured_gram(stack, feats_x, fz)[0].cpu().numpy()
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
    param, X, Z, symmetric = _model_inputs(model, X, Z)
    out = empirical_ntk_unchecked(
        model, X, None if symmetric else Z, batch_size=batch_size, method=method
    )
    return out[:, :, None, None] if output == "full" else out  # one output: trace = mean = block


def empirical_ntk_unchecked(
    model: nn.Module,
    X: np.ndarray,
    Z: np.ndarray | None = None,
    *,
    batch_size: int | None = None,
    method: str = "auto",
) -> np.ndarray:
    """:func:`empirical_ntk` of arrays that are already valid; checks nothing.

    For callers inside ntklab that made or checked the arrays and the model themselves
    (:func:`ntklab.equivalence_metrics`): ``model`` a module with parameters and one scalar
    output per row, ``X`` (n, d) and ``Z`` (m, d) finite float64 arrays with ``d`` the
    model's ``in_features`` (``Z=None``: ``X``, with an exactly symmetric result),
    ``batch_size`` ``None`` or an integer >= 1 and ``method`` one of ``"auto"``,
    ``"structured"``, ``"generic"``. Returns what :func:`empirical_ntk` returns.
    """
    symmetric = Z is None
    if symmetric:
        Z = X
    specs, activation = _mc_layers(model)  # the one rule for the hand-written paths
    if method == "structured" and specs is None:
        raise ValueError(
            "method='structured' needs an ntklab.FullyConnectedNetwork (Dense/ReLU layers); "
            "use method='generic' for other modules"
        )
    if specs is not None and method != "generic":
        return _structured_ntk(model, specs, X, Z, symmetric, batch_size, activation)
    return _generic_ntk(model, X, Z, symmetric, batch_size)


# ---- Monte Carlo over random initializations ---------------------------------------------------
@dataclass(frozen=True)
class MonteCarloEstimate:
    """Monte-Carlo mean of a kernel over random networks and its elementwise standard error.

    Unpacks as ``mean, standard_error = estimate``.

    Attributes
    ----------
    mean : ndarray (n, m)
    standard_error : ndarray (n, m)
        Sample standard deviation over networks / sqrt(n_samples).
    n_samples : int
    width : int
    """

    mean: np.ndarray
    standard_error: np.ndarray
    n_samples: int
    width: int

    def __iter__(self):
        return iter((self.mean, self.standard_error))


class _Moments:
    """Running elementwise sums of per-network kernel matrices (float64)."""

    def __init__(self, shape):
        self.total = np.zeros(shape)
        self.total_sq = np.zeros(shape)

    def add(self, vals: np.ndarray) -> None:
        self.total += vals.sum(axis=0)
        self.total_sq += np.einsum("sij,sij->ij", vals, vals)

    def estimate(self, n_samples: int, width: int, symmetric: bool) -> MonteCarloEstimate:
        mean = self.total / n_samples
        var = np.maximum(self.total_sq / n_samples - mean**2, 0.0) * (n_samples / (n_samples - 1))
        se = np.sqrt(var / n_samples)
        if symmetric:
            mean = 0.5 * (mean + mean.T)
            se = 0.5 * (se + se.T)
        return MonteCarloEstimate(mean, se, n_samples, width)


def monte_carlo_kernels(
    arch,
    X,
    Z=None,
    *,
    width: int,
    n_samples: int,
    seed: int,
    kinds: tuple[str, ...] = ("nngp", "ntk"),
    nngp_estimator: str = "outputs",
    dtype: torch.dtype = torch.float32,
    device=None,
    max_bytes: int = _DEFAULT_MAX_BYTES,
) -> dict[str, MonteCarloEstimate]:
    r"""Monte-Carlo NNGP and/or mean empirical NTK from the same random networks.

    Draws ``n_samples`` independent networks ``arch.network(width, seed=s_k)``, with seeds
    :math:`s_k` from :func:`derive_seeds` (numpy ``SeedSequence(seed)``), stacks their
    weights in groups that fit in ``max_bytes``, and averages over them

    * ``"nngp"``: :math:`f(x) f(z)` (the outputs have mean zero, so this estimates
      :math:`\mathbb E[f(x)f(z)]`, the NNGP);
    * ``"ntk"``: the empirical NTK, by the exact structured formula of :func:`empirical_ntk`.

    Finite-width bias: for depth 1 both estimates are unbiased at every width (the first
    layer is exactly Gaussian and independent of the output weights). For depth
    :math:`L \ge 2` the mean differs from the analytic kernel by :math:`O(1/\text{width})`
    (Yaida 2020; Hanin & Nica 2020). The spread of one network's NTK around its mean is
    :math:`O(1/\sqrt{\text{width}})`.

    Parameters
    ----------
    arch : Architecture
    X : array_like (n, d)
    Z : array_like (m, d), optional
        Defaults to ``X``.
    width : int
        Hidden width of the networks.
    n_samples : int
        Number of networks (>= 2).
    seed : int
        Root seed.
    kinds : tuple of {"nngp", "ntk"}
    nngp_estimator : {"outputs", "last_hidden"}
        ``"outputs"``: average :math:`f(x)f(z)` (the empirical covariance of the outputs,
        SPEC §5; its per-network spread is :math:`O(1)`). ``"last_hidden"``: average
        :math:`\mathbb E[f(x)f(z) \mid h^1..h^L] = \tfrac{\sigma_w^2}{n}\,
        \phi(h^L(x))\cdot\phi(h^L(z)) + \beta^2`, the same expectation with the output layer
        integrated exactly (Rao-Blackwellized: per-network spread :math:`O(1/\sqrt{n})`, so
        far fewer networks are needed).
    dtype : torch.dtype, default float32
        Dtype of the networks (weights are drawn in float64 and rounded, so a seed gives the
        same network in any dtype); moments are accumulated in float64.
    device : str or torch.device, optional
        ``None``: CUDA when available, else CPU.
    max_bytes : int
        Memory budget for one group of stacked networks.

    Returns
    -------
    dict
        ``{kind: MonteCarloEstimate}``, arrays of shape (len(X), len(Z)), float64.
    """
    X, Z, symmetric = check_pair(X, Z)
    width = check_int(width, "width")
    n_samples = check_int(n_samples, "n_samples", minimum=2)
    check_int(max_bytes, "max_bytes")
    if not isinstance(arch, Architecture):
        raise ValueError(f"arch must be an ntklab.Architecture; got {type(arch).__name__}")
    for kind in kinds:
        if kind not in ("nngp", "ntk"):
            raise ValueError(f"kinds must contain only 'nngp' and 'ntk'; got {kind!r}")
    if nngp_estimator not in _NNGP_ESTIMATORS:
        raise ValueError(
            f"nngp_estimator must be one of {list(_NNGP_ESTIMATORS)}; got {nngp_estimator!r}"
        )
    seeds = derive_seeds(seed, n_samples)
    dev = resolve_device(device)
    d, n, m = X.shape[1], X.shape[0], Z.shape[0]
    itemsize = torch.empty((), dtype=dtype).element_size()
    per_net = (d * width + (arch.depth - 1) * width * width + width) * (itemsize + 8)
    per_net += 3 * (n + m) * (width * arch.depth + d) * itemsize  # inputs, pre-acts, deltas
    per_net += 3 * n * m * 8  # Gram matrices
    group = max(1, min(n_samples, max_bytes // per_net))
    moments = {kind: _Moments((n, m)) for kind in kinds}
    with torch.no_grad():
        xt = torch.as_tensor(X, dtype=dtype, device=dev)
        zt = xt if symmetric else torch.as_tensor(Z, dtype=dtype, device=dev)
        specs, activation = _mc_layers(arch.network(width, seed=0, in_features=d, device="cpu"))
        out_var = arch.layers(d, width)[-1].weight_var  # the output weights' variance
        for start in range(0, n_samples, group):
            draws = [
                arch.draw_parameters(width, seed=s, in_features=d, dtype=dtype)
                for s in seeds[start : start + group]
            ]
            params = {k: torch.stack([p[k] for p in draws]).to(dev) for k in draws[0]}
            stack = _dense_stack(params, specs)
            fx = _features(stack, xt, activation)
            fz = fx if symmetric else _features(stack, zt, activation)
            if "nngp" in moments:
                if nngp_estimator == "outputs":
                    vals = fx[0].double().unsqueeze(-1) * fz[0].double().unsqueeze(-2)
                else:  # E[f(x) f(z) | hidden layers], integrating the output layer exactly
                    last = stack[-1]
                    vals = torch.matmul(fx[1][-1], fz[1][-1].transpose(-1, -2)).double()
                    vals *= last.scale**2
                    if out_var != 1.0:  # standard, mup: N(0, sigma_w^2 / n) output weights
                        vals *= out_var
                    if last.bias is not None:
                        vals += last.beta**2
                moments["nngp"].add(vals.cpu().numpy())
            if "ntk" in moments:
                moments["ntk"].add(_structured_gram(stack, fx, fz).cpu().numpy())
    return {kind: mom.estimate(n_samples, width, symmetric) for kind, mom in moments.items()}


def _mc_layers(net) -> tuple[list[DenseSpec] | None, nn.Module | None]:
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


def monte_carlo_nngp(
    arch,
    X,
    Z=None,
    *,
    width: int,
    n_samples: int,
    seed: int,
    nngp_estimator: str = "outputs",
    dtype: torch.dtype = torch.float32,
    device=None,
    max_bytes: int = _DEFAULT_MAX_BYTES,
) -> MonteCarloEstimate:
    r"""Monte-Carlo estimate of the NNGP: :math:`\mathbb E[f(x) f(z)]` over random networks.

    Draws ``n_samples`` independent networks ``arch.network(width, seed=s_k)`` with seeds
    :math:`s_k` from :func:`derive_seeds` (numpy ``SeedSequence(seed)``), evaluates them in
    stacked batches, and averages :math:`f(x)f(z)` (outputs have mean zero). For depth 1
    the estimate is unbiased at every width; for depth :math:`L \ge 2` the finite-width bias
    is :math:`O(1/\text{width})` (Yaida 2020).

    Parameters
    ----------
    arch : Architecture
    X : array_like (n, d)
    Z : array_like (m, d), optional
        Defaults to ``X``.
    width : int
        Hidden width of the networks.
    n_samples : int
        Number of networks (>= 2).
    seed : int
        Root seed.
    nngp_estimator, dtype, device, max_bytes
        See :func:`monte_carlo_kernels`.

    Returns
    -------
    MonteCarloEstimate
        ``mean, standard_error = monte_carlo_nngp(...)``; arrays (n, m), float64.
    """
    return monte_carlo_kernels(
        arch, X, Z, width=width, n_samples=n_samples, seed=seed, kinds=("nngp",),
        nngp_estimator=nngp_estimator, dtype=dtype, device=device, max_bytes=max_bytes,
    )["nngp"]  # fmt: skip


def monte_carlo_ntk(
    arch,
    X,
    Z=None,
    *,
    width: int,
    n_samples: int,
    seed: int,
    dtype: torch.dtype = torch.float32,
    device=None,
    max_bytes: int = _DEFAULT_MAX_BYTES,
) -> MonteCarloEstimate:
    r"""Monte-Carlo mean of the empirical NTK over random initializations.

    Same sampling as :func:`monte_carlo_nngp`; each network's empirical NTK is computed by
    the exact structured formula of :func:`empirical_ntk`. For depth 1 the mean equals the
    analytic NTK at every width (the output weights are independent of the exactly Gaussian
    first layer); for depth :math:`L \ge 2` it has an :math:`O(1/\text{width})` bias. The
    spread of one network's kernel around the mean is :math:`O(1/\sqrt{\text{width}})`.

    Returns
    -------
    MonteCarloEstimate
        ``mean, standard_error = monte_carlo_ntk(...)``; arrays (n, m), float64.
    """
    return monte_carlo_kernels(
        arch, X, Z, width=width, n_samples=n_samples, seed=seed, kinds=("ntk",),
        dtype=dtype, device=device, max_bytes=max_bytes,
    )["ntk"]  # fmt: skip
