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

Every activation of :mod:`ntklab.activations` is checked the same way (``activations``), each
row with a negative control: the same Monte-Carlo estimate against the kernel of the same
architecture with another activation (:data:`CONTROLS`: the nearest one the test can tell
apart, e.g. ``tanh`` against ``erf``), which must be rejected (its error above the threshold).

:func:`verify_published` (``ntklab verify --published``) puts the seed's nine published
kernel formulas (:mod:`ntklab.published`, SPEC §6) to the same test: each formula, under
both normalizations, against the analytic kernel and the finite networks of the
architecture it would be the kernel of.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from . import verify_defaults as defaults
from ._validation import check_float, check_int
from .activations import parse_activation
from .architecture import Architecture
from .data import SEED_BOUNDS, project_to_sphere
from .empirical import MonteCarloEstimate, monte_carlo_kernels
from .parameterizations import PARAMETERIZATIONS
from .published import (
    NORMALIZATIONS,
    PUBLISHED_KERNELS,
    PublishedKernel,
    published_kernels,
)

__all__ = [
    "VerifyRow",
    "verify",
    "relative_error",
    "threshold",
    "format_table",
    "to_frame",
    "PublishedRow",
    "verify_published",
    "format_published_table",
    "describe",
]

N_SIGMA = 4.0
BIAS_CONSTANT = 2.0
#: Every activation, as :func:`verify` checks them with ``activations="all"``.
ALL_ACTIVATIONS = (
    "relu", "erf", "leaky_relu", "abrelu(-0.5, 1)", "gelu", "tanh", "softplus", "silu",
)  # fmt: skip
#: The negative control of each activation: the kernel of another activation, the nearest
#: one whose kernels differ from it by more than 14 % (relative Frobenius norm) at every
#: parameterization and depth 1-3 on verify's points (leaky_relu(0.01) and relu differ by
#: 0.6 %, gelu and silu by 7 %: too close for the Monte-Carlo test to tell apart).
CONTROLS = {
    "relu": "gelu",
    "erf": "tanh",
    "leaky_relu": "gelu",
    "abrelu": "relu",
    "gelu": "relu",
    "tanh": "erf",
    "softplus": "relu",
    "silu": "relu",
}


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
    activation: str = "relu"
    control: str = ""
    control_error: float = float("nan")
    control_rejected: bool = True


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
    width: int = defaults.WIDTH,
    n_samples: int = defaults.N_SAMPLES,
    n_points: int = defaults.N_POINTS,
    seed: int = defaults.SEED,
    depths: Iterable[int] = defaults.DEPTHS,
    parameterizations: Iterable[str] = defaults.PARAMETERIZATIONS,
    in_features: int = defaults.IN_FEATURES,
    nngp_estimator: str = defaults.NNGP_ESTIMATOR,
    n_sigma: float = N_SIGMA,
    bias_constant: float = BIAS_CONSTANT,
    device=None,
    activations=defaults.ACTIVATIONS,
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
    activations : iterable of str, or "all"
        Activation specs (:class:`ntklab.Architecture`'s ``activation``); ``"all"``:
        :data:`ALL_ACTIVATIONS`. Each row also checks its negative control (:data:`CONTROLS`).

    Returns
    -------
    list of VerifyRow
        One row per (activation, parameterization, depth, kernel); see :func:`to_frame`.
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
        if not PARAMETERIZATIONS[p].has_kernel_limit:
            raise ValueError(
                f"parameterization {p!r} has no fixed NTK limit to verify (its features move "
                "at any width); verify the others"
            )
    activations = list(ALL_ACTIVATIONS if activations == "all" else activations)
    for spec in activations:
        parse_activation(spec)  # one clear error for a bad name, before any work
    if not depths or not parameterizations or not activations:
        raise ValueError("depths, parameterizations and activations must not be empty")
    X = project_to_sphere(np.random.default_rng(seed).standard_normal((n_points, in_features)))
    rows = []
    for act in activations:
        control = CONTROLS[parse_activation(act)[0]]
        for p in parameterizations:
            for depth in depths:
                arch = Architecture(depth, p, activation=act).at_width(width)
                nngp, ntk = arch.kernels(X, check_input=False)
                analytic = {"nngp": nngp, "ntk": ntk}
                wrong = Architecture(depth, p, activation=control).at_width(width)
                wrong = wrong.kernels(X, check_input=False)
                estimates = monte_carlo_kernels(
                    arch, X, width=width, n_samples=n_samples, seed=seed,
                    nngp_estimator=nngp_estimator, device=device,
                )  # fmt: skip
                for kind, bad in zip(("nngp", "ntk"), wrong, strict=True):
                    rel, mc = relative_error(estimates[kind], analytic[kind])
                    thr = threshold(mc, depth, width, n_sigma=n_sigma, bias_constant=bias_constant)
                    rel_bad, _ = relative_error(estimates[kind], bad)
                    rows.append(VerifyRow(
                        p, depth, kind, width, n_samples, rel, mc, thr, rel <= thr,
                        arch.activation, control, rel_bad, rel_bad > thr,
                    ))  # fmt: skip
    return rows


def to_frame(rows: list[VerifyRow]):
    """The rows as a :class:`pandas.DataFrame`."""
    import pandas as pd

    return pd.DataFrame([asdict(r) for r in rows])


def format_table(rows: list[VerifyRow]) -> str:
    """A plain-text table: activation, parameterization, depth, kernel, errors, threshold,
    PASS/FAIL, and the negative control (the kernel of another activation): its error, and
    whether it is rejected, as it must be."""
    act_w = max(len("activation"), *(len(r.activation) for r in rows))
    head = f"{'activation':<{act_w}} {'parameterization':<16} {'depth':>5} {'kernel':<6} "
    head += f"{'rel_error':>10} {'mc_error':>10} {'threshold':>10}  result  control (error)"
    lines = [head, "-" * len(head)]
    for r in rows:
        control = ""
        if r.control:
            verdict = "rejected" if r.control_rejected else "NOT REJECTED"
            control = f"{r.control} ({r.control_error:.4f}) {verdict}"
        lines.append(
            f"{r.activation:<{act_w}} {r.parameterization:<16} {r.depth:>5} {r.kernel:<6} "
            f"{r.rel_error:>10.4f} {r.mc_error:>10.4f} {r.threshold:>10.4f}  "
            f"{'PASS' if r.passed else 'FAIL':<6}  {control}"
        )
    return "\n".join(lines)


# ---- the seed's published formulas (SPEC §6) ----------------------------------------------
SEED_IN_FEATURES = 15
# A formula "equals" its network analytically when their max relative difference is below
# this: far above float64 round-off, including the O(sqrt(eps)) ~ 1e-8 that arccos makes of
# the published normalization's rho = 1 +- ulp (NTKA on unit-norm rows), and far below the
# percent-level differences of the published GP/NTKB/NTKJ.
ANALYTIC_TOL = 1e-6


@dataclass(frozen=True)
class PublishedRow:
    r"""One line of the ``verify --published`` table.

    Attributes
    ----------
    kernel, normalization : str
        The published formula (:data:`ntklab.PUBLISHED_KERNELS`) and its normalization.
    network : str
        The network whose kernel the *corrected* formula is
        (:meth:`ntklab.PublishedKernel.network`, :func:`describe`), or ``"none"``.
    compared_with : str
        The network kernel this row compares the formula with: ``network``; for NTKJ2 the
        NTK of the network the seed trained at depth 2 (``jacot``, σ_w = 1, β = 1);
        ``""`` for K1.
    max_rel_diff : float
        :math:`\max|K - K_\text{net}| / \max|K_\text{net}|` of the formula and the analytic
        kernel of ``compared_with`` (NaN for K1).
    rel_error, mc_error, threshold : float
        Monte-Carlo check of the formula against finite networks of ``compared_with``
        (:func:`relative_error`, :func:`threshold`; NaN for K1).
    passed : bool
        ``rel_error <= threshold`` (False for K1).
    verdict : str
        ``"network kernel"`` (MC passes and the analytic difference is below
        :data:`ANALYTIC_TOL`), ``"not a network kernel"`` (MC fails, or no candidate
        network), or ``"MC cannot tell"`` (MC passes but the formula differs analytically:
        more samples or width needed).
    """

    kernel: str
    normalization: str
    network: str
    compared_with: str
    width: int
    n_samples: int
    max_rel_diff: float
    rel_error: float
    mc_error: float
    threshold: float
    passed: bool
    verdict: str

    @property
    def must_pass(self) -> bool:
        """A corrected formula that is a network kernel: its MC check must pass."""
        return self.normalization == "corrected" and self.network != "none"


def describe(arch: Architecture, kind: str) -> str:
    """A one-line label such as ``NNGP jacot L=1 sw1=1 sw=1.414 b=1``."""
    out = f"{kind.upper()} {arch.parameterization} L={arch.depth}"
    if arch.sigma_w1 is not None:
        out += f" sw1={arch.sigma_w1:.4g}"
    out += f" sw={arch.sigma_w:.4g}"
    if arch.sigma_b:
        out += f" b={arch.sigma_b:.4g}"
    return out


def _seed_network(name: str, kernel: PublishedKernel) -> tuple[Architecture, str] | None:
    """The network a row compares ``name`` with (see :class:`PublishedRow`)."""
    if name == "NTKJ2":  # SPEC §6: the seed's NN2 is jacot, sigma_w = 1, beta = 1
        return Architecture(2, "jacot", sigma_w=1.0, sigma_b=1.0), "ntk"
    return kernel.network()


def verify_published(
    *,
    width: int = defaults.PUBLISHED_WIDTH,
    n_samples: int = defaults.PUBLISHED_N_SAMPLES,
    n_points: int = defaults.N_POINTS,
    seed: int = defaults.SEED,
    nngp_estimator: str = defaults.NNGP_ESTIMATOR,
    n_sigma: float = N_SIGMA,
    bias_constant: float = BIAS_CONSTANT,
    device=None,
) -> list[PublishedRow]:
    r"""Which of the seed's published kernels are kernels of a finite network (SPEC §6)?

    On ``n_points`` rows of the seed's data (Uniform(−5, 7) entries in :math:`d = 15`, rows
    scaled to unit norm; drawn from ``seed``) and for each of the nine formulas under both
    normalizations (seed constants), compares the formula with

    * the analytic kernel of its candidate network (max relative difference), and
    * Monte-Carlo estimates from ``n_samples`` random networks of that architecture at
      ``width`` (relative Frobenius error against :func:`threshold`, as :func:`verify`).

    Candidates: :meth:`ntklab.PublishedKernel.network`; for NTKJ2 (no network) the network
    the seed trained at depth 2; none for K1. The two normalizations of a formula share one
    Monte-Carlo estimate. With the defaults the published GP, NTKB and NTKJ (which differ
    from their networks by 3–35 %) fail and the corrected ones pass, in about 3 s on a CPU.

    Parameters
    ----------
    width, n_samples, n_points, seed, nngp_estimator, n_sigma, bias_constant, device
        As in :func:`verify`.

    Returns
    -------
    list of PublishedRow
        Nine names × two normalizations, in :data:`ntklab.PUBLISHED_KERNELS` order.
    """
    width = check_int(width, "width")
    n_samples = check_int(n_samples, "n_samples", minimum=2)
    n_points = check_int(n_points, "n_points", minimum=2)
    seed = check_int(seed, "seed", minimum=0)
    n_sigma = check_float(n_sigma, "n_sigma", strict=True)
    bias_constant = check_float(bias_constant, "bias_constant")
    rng = np.random.default_rng(seed)
    X = project_to_sphere(rng.uniform(*SEED_BOUNDS, (n_points, SEED_IN_FEATURES)))
    estimates: dict[tuple[Architecture, str], MonteCarloEstimate] = {}
    rows = []
    for name in PUBLISHED_KERNELS:
        for normalization in NORMALIZATIONS:
            formula = PublishedKernel(name, normalization)
            network = formula.network()
            label = "none" if network is None else describe(*network)
            candidate = _seed_network(name, formula)
            if candidate is None:
                nan = float("nan")
                rows.append(PublishedRow(
                    name, normalization, label, "", width, n_samples, nan, nan, nan, nan,
                    False, "not a network kernel",
                ))  # fmt: skip
                continue
            arch, kind = candidate
            if (arch, kind) not in estimates:
                estimates[arch, kind] = monte_carlo_kernels(
                    arch, X, width=width, n_samples=n_samples, seed=seed, kinds=(kind,),
                    nngp_estimator=nngp_estimator, device=device,
                )[kind]  # fmt: skip
            K = published_kernels(X, names=name, normalization=normalization, check_input=False)
            K = K[name]
            analytic = arch.kernels(X, check_input=False)[0 if kind == "nngp" else 1]
            diff = float(np.max(np.abs(K - analytic)) / np.max(np.abs(analytic)))
            rel, mc = relative_error(estimates[arch, kind], K)
            thr = threshold(mc, arch.depth, width, n_sigma=n_sigma, bias_constant=bias_constant)
            passed = rel <= thr
            if not passed:
                verdict = "not a network kernel"
            elif diff <= ANALYTIC_TOL:
                verdict = "network kernel"
            else:
                verdict = "MC cannot tell"
            rows.append(PublishedRow(
                name, normalization, label, describe(arch, kind), width, n_samples, diff, rel,
                mc, thr, passed, verdict,
            ))  # fmt: skip
    return rows


def format_published_table(rows: list[PublishedRow]) -> str:
    """A plain-text table of :func:`verify_published`'s rows."""
    net_w = max(len("network"), *(len(r.network) for r in rows))
    head = f"{'kernel':<6} {'normalization':<13} {'network (corrected formula)':<{net_w}} "
    head += f"{'max_rel_diff':>12} {'rel_error':>9} {'mc_error':>8} {'threshold':>9}  MC    verdict"
    lines = [head, "-" * len(head)]
    for r in rows:
        if not r.compared_with:  # K1
            lines.append(
                f"{r.kernel:<6} {r.normalization:<13} {'not a network kernel':<{net_w}} "
                f"{'-':>12} {'-':>9} {'-':>8} {'-':>9}  -     {r.verdict}"
            )
            continue
        lines.append(
            f"{r.kernel:<6} {r.normalization:<13} {r.network:<{net_w}} {r.max_rel_diff:>12.2e} "
            f"{r.rel_error:>9.4f} {r.mc_error:>8.4f} {r.threshold:>9.4f}  "
            f"{'PASS' if r.passed else 'FAIL'}  {r.verdict}"
        )
    notes = sorted(
        {(r.kernel, r.compared_with) for r in rows if r.network == "none" and r.compared_with}
    )
    for kernel, other in notes:
        lines.append(f"{kernel}: compared with the network the seed trained, {other}")
    return "\n".join(lines)
