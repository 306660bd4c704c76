r"""Monte-Carlo NNGP and mean empirical NTK over random initializations of finite networks.

``n_samples`` networks of one :class:`ntklab.Architecture` are drawn from seeds derived from
one root seed (:func:`derive_seeds`), evaluated in stacked groups (:mod:`ntklab.stacked`), and
the elementwise mean and standard error of their kernels are returned
(:class:`MonteCarloEstimate`). As the width grows the covariance of the outputs converges to
the NNGP (Neal 1996; Lee et al. 2018) and the mean empirical NTK to the analytic NTK (Jacot et
al. 2018); :mod:`ntklab.verify` checks the analytic kernels against these estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._validation import check_int, check_pair
from .architecture import Architecture
from .networks import resolve_device
from .stacked import DEFAULT_MAX_BYTES, features, network_layers, stacked_layers, structured_gram

__all__ = [
    "monte_carlo_nngp",
    "monte_carlo_ntk",
    "monte_carlo_kernels",
    "derive_seeds",
    "MonteCarloEstimate",
]

_NNGP_ESTIMATORS = ("outputs", "last_hidden")


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
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str, MonteCarloEstimate]:
    r"""Monte-Carlo NNGP and/or mean empirical NTK from the same random networks.

    Draws ``n_samples`` independent networks ``arch.network(width, seed=s_k)``, with seeds
    :math:`s_k` from :func:`derive_seeds` (numpy ``SeedSequence(seed)``), stacks their
    weights in groups that fit in ``max_bytes``, and averages over them

    * ``"nngp"``: :math:`f(x) f(z)` (the outputs have mean zero, so this estimates
      :math:`\mathbb E[f(x)f(z)]`, the NNGP);
    * ``"ntk"``: the empirical NTK, by the exact structured formula of
      :func:`ntklab.empirical.empirical_ntk`.

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
        specs, activation = network_layers(arch.network(width, seed=0, in_features=d, device="cpu"))
        out_var = arch.layers(d, width)[-1].weight_var  # the output weights' variance
        for start in range(0, n_samples, group):
            draws = [
                arch.draw_parameters(width, seed=s, in_features=d, dtype=dtype)
                for s in seeds[start : start + group]
            ]
            params = {k: torch.stack([p[k] for p in draws]).to(dev) for k in draws[0]}
            stack = stacked_layers(params, specs)
            fx = features(stack, xt, activation)
            fz = fx if symmetric else features(stack, zt, activation)
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
                moments["ntk"].add(structured_gram(stack, fx, fz).cpu().numpy())
    return {kind: mom.estimate(n_samples, width, symmetric) for kind, mom in moments.items()}


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
    max_bytes: int = DEFAULT_MAX_BYTES,
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
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> MonteCarloEstimate:
    r"""Monte-Carlo mean of the empirical NTK over random initializations.

    Same sampling as :func:`monte_carlo_nngp`; each network's empirical NTK is computed by
    the exact structured formula of :func:`ntklab.empirical.empirical_ntk`. For depth 1 the
    mean equals the analytic NTK at every width (the output weights are independent of the
    exactly Gaussian first layer); for depth :math:`L \ge 2` it has an
    :math:`O(1/\text{width})` bias. The spread of one network's kernel around the mean is
    :math:`O(1/\sqrt{\text{width}})`.

    Returns
    -------
    MonteCarloEstimate
        ``mean, standard_error = monte_carlo_ntk(...)``; arrays (n, m), float64.
    """
    return monte_carlo_kernels(
        arch, X, Z, width=width, n_samples=n_samples, seed=seed, kinds=("ntk",),
        dtype=dtype, device=device, max_bytes=max_bytes,
    )["ntk"]  # fmt: skip
