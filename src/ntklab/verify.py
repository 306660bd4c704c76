r"""Check every analytic kernel against its own finite networks (SPEC §5).

For each parameterization and depth, the analytic NNGP and NTK of
:class:`ntklab.Architecture` are compared with Monte-Carlo estimates from random finite
networks of the same architecture (:func:`ntklab.empirical.monte_carlo_kernels`):

* NNGP: the mean of :math:`\mathbb E[f(x) f(z) \mid h^1..h^L]` over networks (the output
  covariance with the output layer integrated exactly; ``nngp_estimator="outputs"`` uses the
  raw products :math:`f(x)f(z)` instead, at the cost of many more networks);
* NTK: the mean empirical NTK over networks.

The statistic is the relative Frobenius error :math:`e = \lVert \hat K - K\rVert_F /
\lVert K\rVert_F`. Its Monte-Carlo scale is propagated from the elementwise standard errors
:math:`s_{ij}`: :math:`s_e = \sqrt{\sum_{ij} s_{ij}^2} / \lVert K\rVert_F`, the value
:math:`e` takes on average when the only error is Monte-Carlo noise. A row passes when

.. math::

    e \le n_\sigma\, s_e + c_\text{bias}\, \frac{L - 1}{\text{width}},

the second term allowing for the :math:`O(1/\text{width})` finite-width bias of the mean,
which is zero at depth 1 (Yaida 2020; Hanin & Nica 2020). Defaults :math:`n_\sigma = 4`,
:math:`c_\text{bias} = 2` (measured bias at width 64–256 is below :math:`1.5 (L-1)/\text{width}`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ._validation import check_float, check_int
from .architecture import PARAMETERIZATIONS, Architecture
from .empirical import MonteCarloEstimate, monte_carlo_kernels

__all__ = ["VerifyRow", "verify", "relative_error", "threshold", "format_table", "to_frame"]

N_SIGMA = 4.0
BIAS_CONSTANT = 2.0


@dataclass(frozen=True)
class VerifyRow:
    """One line of the verification table."""

    parameterization: str
    depth: int
    kernel: str
    width: int
    n_samples: int
    rel_error: float
    mc_error: float
    threshold: float
    passed: bool


def relative_error(estimate: MonteCarloEstimate, analytic: np.ndarray) -> tuple[float, float]:
    r"""Relative Frobenius error of a Monte-Carlo estimate and its propagated MC scale.

    Returns
    -------
    rel_error : float
        :math:`\lVert \hat K - K\rVert_F / \lVert K\rVert_F`.
    mc_error : float
        :math:`\sqrt{\sum s_{ij}^2} / \lVert K\rVert_F` with :math:`s_{ij}` the elementwise
        standard errors.
    """
    norm = float(np.linalg.norm(analytic))
    rel = float(np.linalg.norm(estimate.mean - analytic)) / norm
    mc = float(np.sqrt(np.sum(estimate.standard_error**2))) / norm
    return rel, mc


def threshold(
    mc_error: float,
    depth: int,
    width: int,
    *,
    n_sigma: float = N_SIGMA,
    bias_constant: float = BIAS_CONSTANT,
) -> float:
    r"""Pass threshold :math:`n_\sigma s_e + c_\text{bias} (L-1)/\text{width}` (module docs)."""
    return n_sigma * mc_error + bias_constant * (depth - 1) / width


def verify(
    *,
    width: int = 128,
    n_samples: int = 200,
    n_points: int = 8,
    seed: int = 0,
    depths=(1, 2, 3),
    parameterizations=("jacot", "arora", "paper"),
    in_features: int = 4,
    nngp_estimator: str = "last_hidden",
    n_sigma: float = N_SIGMA,
    bias_constant: float = BIAS_CONSTANT,
    device=None,
) -> list[VerifyRow]:
    """Compare analytic NNGP/NTK with Monte-Carlo estimates for each architecture.

    Parameters
    ----------
    width : int
        Hidden width of the random networks.
    n_samples : int
        Networks per architecture.
    n_points : int
        Number of unit-norm input points (drawn from ``seed``) in ``R^in_features``.
    seed : int
        Root seed for the points and the networks.
    depths : iterable of int
    parameterizations : iterable of str
    in_features : int
    nngp_estimator : {"last_hidden", "outputs"}
        See :func:`ntklab.empirical.monte_carlo_kernels`.
    n_sigma, bias_constant : float
        Threshold constants (module docstring).
    device : optional
        ``None``: CUDA when available, else CPU.

    Returns
    -------
    list of VerifyRow
        One row per (parameterization, depth, kernel); see :func:`to_frame`.
    """
    width = check_int(width, "width")
    n_samples = check_int(n_samples, "n_samples", minimum=2)
    n_points = check_int(n_points, "n_points", minimum=2)
    seed = check_int(seed, "seed", minimum=0)
    in_features = check_int(in_features, "in_features")
    n_sigma = check_float(n_sigma, "n_sigma", strict=True)
    bias_constant = check_float(bias_constant, "bias_constant")
    depths = [check_int(d, "depths") for d in depths]
    parameterizations = list(parameterizations)
    for p in parameterizations:
        if p not in PARAMETERIZATIONS:
            raise ValueError(
                f"parameterizations must be among {sorted(PARAMETERIZATIONS)}; got {p!r}"
            )
    if not depths or not parameterizations:
        raise ValueError("depths and parameterizations must not be empty")
    X = np.random.default_rng(seed).standard_normal((n_points, in_features))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    rows = []
    for p in parameterizations:
        for depth in depths:
            arch = Architecture(depth, p)
            analytic = dict(zip(("nngp", "ntk"), arch.kernels(X), strict=True))
            estimates = monte_carlo_kernels(
                arch, X, width=width, n_samples=n_samples, seed=seed,
                nngp_estimator=nngp_estimator, device=device,
            )  # fmt: skip
            for kind in ("nngp", "ntk"):
                rel, mc = relative_error(estimates[kind], analytic[kind])
                thr = threshold(mc, depth, width, n_sigma=n_sigma, bias_constant=bias_constant)
                rows.append(VerifyRow(p, depth, kind, width, n_samples, rel, mc, thr, rel <= thr))
    return rows


def to_frame(rows: list[VerifyRow]):
    """The rows as a :class:`pandas.DataFrame`."""
    import pandas as pd

    return pd.DataFrame([asdict(r) for r in rows])


def format_table(rows: list[VerifyRow]) -> str:
    """A plain-text table: parameterization, depth, kernel, errors, threshold, PASS/FAIL."""
    head = f"{'parameterization':<16} {'depth':>5} {'kernel':<6} {'rel_error':>10} "
    head += f"{'mc_error':>10} {'threshold':>10}  result"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.parameterization:<16} {r.depth:>5} {r.kernel:<6} {r.rel_error:>10.4f} "
            f"{r.mc_error:>10.4f} {r.threshold:>10.4f}  {'PASS' if r.passed else 'FAIL'}"
        )
    return "\n".join(lines)
