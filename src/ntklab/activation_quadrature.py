r"""Activations whose kernel map is a Gauss–Hermite quadrature (see :mod:`ntklab.activations`).

:class:`QuadratureActivation`: ``gelu``, ``tanh``, ``softplus``, ``silu`` (and ``erf``,
``relu``, to check the rule against their closed forms), the 2-D Gaussian integral in
Mehler's form at a declared degree, with its error estimate and check.

References
----------
Mehler, F. G. (1866). Ueber die Entwicklung einer Function von beliebig vielen Variablen
nach Laplaceschen Functionen höherer Ordnung. J. reine angew. Math. 66.
Daniely, A., Frostig, R. and Singer, Y. (2016). Toward deeper understanding of neural
networks: the power of initialization and a dual view on expressivity. NeurIPS 29.
Hendrycks, D. and Gimpel, K. (2016). Gaussian error linear units (GELUs). arXiv:1606.08415.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .activation_closed import ActivationModule, correlations

__all__ = ["QuadratureActivation", "DEFAULT_DEGREE", "MIN_DEGREE", "MAX_DEGREE", "check_degree"]

DEFAULT_DEGREE = 32
MIN_DEGREE = 4
MAX_DEGREE = 128  # its 2q-point rule: hermegauss loses its weights beyond ~350


def check_degree(degree) -> int:
    """A quadrature degree: an integer in [MIN_DEGREE, MAX_DEGREE], or one clear error."""
    if isinstance(degree, bool) or not isinstance(degree, int | np.integer):
        raise ValueError(f"quadrature_degree must be an integer >= {MIN_DEGREE}; got {degree!r}")
    if not MIN_DEGREE <= degree <= MAX_DEGREE:
        raise ValueError(
            f"quadrature_degree must be between {MIN_DEGREE} and {MAX_DEGREE} (a Gauss-Hermite "
            f"rule below degree {MIN_DEGREE} is too coarse for the kernel); got {degree}"
        )
    return int(degree)


# ---- the finite layer ------------------------------------------------------------------------
def _np_gelu(x):
    from scipy.special import ndtr

    return x * ndtr(x)


def _np_dgelu(x):
    from scipy.special import ndtr

    return ndtr(x) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _np_softplus(x):
    return np.logaddexp(0.0, x)


def _np_sigmoid(x):
    from scipy.special import expit

    return expit(x)


def _np_silu(x):
    return x * _np_sigmoid(x)


def _np_dsilu(x):
    s = _np_sigmoid(x)
    return s * (1 + x * (1 - s))


def _np_erf(x):
    from scipy.special import erf

    return erf(x)


def _np_derf(x):
    return 2 / math.sqrt(math.pi) * np.exp(-x * x)


def _t_dgelu(h):
    return 0.5 * (1 + torch.erf(h / math.sqrt(2))) + h * torch.exp(-0.5 * h * h) / math.sqrt(
        2 * math.pi
    )


def _t_dsilu(h):
    s = torch.sigmoid(h)
    return s * (1 + h * (1 - s))


#: name -> (numpy phi, numpy phi', torch phi, torch phi')
_FUNCTIONS = {
    "gelu": (_np_gelu, _np_dgelu, nn.functional.gelu, _t_dgelu),
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2, torch.tanh, lambda h: 1 - torch.tanh(h) ** 2),
    "softplus": (
        _np_softplus,
        _np_sigmoid,
        lambda h: torch.logaddexp(h, torch.zeros((), dtype=h.dtype, device=h.device)),
        torch.sigmoid,
    ),
    "silu": (_np_silu, _np_dsilu, nn.functional.silu, _t_dsilu),
    # closed forms through the same quadrature code, to check the rule against them
    "erf": (_np_erf, _np_derf, torch.erf, lambda h: torch.exp(-h * h) * (2 / math.sqrt(math.pi))),
    "relu": (
        lambda x: np.maximum(x, 0.0),
        lambda x: (x > 0).astype(float),
        torch.relu,
        lambda h: (h > 0).to(h.dtype),
    ),
}


@functools.lru_cache(maxsize=16)
def _hermite_rule(degree: int):
    """Gauss–Hermite nodes and weights for N(0, 1) (weights sum to 1) and the weighted
    orthonormal Hermite polynomials ``WH[l, k] = w_l He_k(x_l) / sqrt(k!)``, k < degree."""
    from numpy.polynomial.hermite_e import hermegauss

    x, w = hermegauss(degree)
    w = w / math.sqrt(2 * math.pi)
    x.setflags(write=False)
    w.setflags(write=False)
    H = np.empty((degree, degree))
    H[:, 0] = 1.0
    if degree > 1:
        H[:, 1] = x
    for k in range(1, degree - 1):  # h_{k+1} = (x h_k - sqrt(k) h_{k-1}) / sqrt(k + 1)
        H[:, k + 1] = (x * H[:, k] - math.sqrt(k) * H[:, k - 1]) / math.sqrt(k + 1)
    WH = w[:, None] * H
    WH.setflags(write=False)
    return x, w, WH


class _MehlerPlan:
    """Kernel map of a quadrature activation at one layer: the Hermite coefficients of
    every row's :math:`\\phi`, :math:`\\phi'`, and the terms worth summing."""

    # a term is dropped when max|a_k| max|b_k| <= this fraction (summed over all terms:
    # below one float64 ulp) of sqrt(max E[phi^2]_x max E[phi^2]_z)
    _DROP = 2.0**-53

    def __init__(self, layer, var_x, var_z):
        self.var_x, self.var_z = var_x, var_z
        self.ax, self.dax, *tails = layer.coefficients(var_x)
        if var_z is var_x:
            self.az, self.daz = self.ax, self.dax
        else:
            self.az, self.daz, *more = layer.coefficients(var_z)
            tails += more
        # terms first, rows contiguous: the series reads one term of many rows at a time
        self.ax, self.dax, self.az, self.daz = (
            np.ascontiguousarray(c.T) for c in (self.ax, self.dax, self.az, self.daz)
        )
        bound = max(float(np.max(t, initial=0.0)) for t in tails)
        if bound > layer.warn_above:
            warnings.warn(
                f"{layer.kind}: the Gauss-Hermite series of degree {layer.degree} leaves a "
                f"relative error up to {bound:.1e} at these variances (up to "
                f"{max(np.max(var_x, initial=0), np.max(var_z, initial=0)):.3g}); raise "
                "quadrature_degree",
                stacklevel=2,
            )
        self.keep = self._kept(self.ax, self.az), self._kept(self.dax, self.daz)
        # one variance for all rows (to 64 ulp: e.g. unit-norm inputs): the same polynomial
        # in rho for every pair, summed by Horner with scalar coefficients (2 passes a term
        # instead of 3); its coefficients from the rows' mean variance (a relative change
        # of at most ~1e-14 in the moments)
        self.uniform = None
        both = np.concatenate([np.ravel(var_x), np.ravel(var_z)])
        if both.size and np.ptp(both) <= 64 * np.finfo(np.float64).eps * np.max(np.abs(both)):
            a, da, _, _ = layer.coefficients(np.array([np.mean(both)]))
            self.uniform = (a[0] * a[0], da[0] * da[0])

    def second_moments(self, which: str):
        """The series at rho = 1, :math:`\\sum_{k<q} a_k^2` for :math:`\\phi` and
        :math:`\\phi'`, of every row of ``"x"`` or ``"z"`` (all terms, as
        :meth:`QuadratureActivation.second_moments`)."""
        a, da = (self.ax, self.dax) if which == "x" else (self.az, self.daz)
        return np.einsum("ki,ki->i", a, a), np.einsum("ki,ki->i", da, da)

    def _kept(self, a, b):
        q = a.shape[0]
        scale = math.sqrt(np.max(np.sum(a * a, axis=0)) * np.max(np.sum(b * b, axis=0)))
        bound = np.max(np.abs(a), axis=1) * np.max(np.abs(b), axis=1)
        return np.flatnonzero(bound > self._DROP / q * scale)

    def moments(self, cov, rows: slice, cols: slice):
        rho, _ = correlations(cov, self.var_x[rows], self.var_z[cols])
        powers = {1: rho}
        if self.uniform is not None:
            return tuple(
                _polynomial(c, keep, rho, powers)
                for c, keep in zip(self.uniform, self.keep, strict=True)
            )
        e_phi = _series(self.ax[:, rows], self.az[:, cols], self.keep[0], rho, powers)
        e_dphi = _series(self.dax[:, rows], self.daz[:, cols], self.keep[1], rho, powers)
        return e_phi, e_dphi


def _power(rho, powers, p):
    if p not in powers:
        powers[p] = rho**p
    return powers[p]


def _polynomial(c, keep, rho, powers):
    r""":math:`\sum_{k \in keep} c_k \rho_{ij}^k` by Horner's rule (scalar coefficients)."""
    out = np.zeros_like(rho)
    if keep.size == 0:
        return out
    top = keep[-1]
    out += c[top]
    for k in keep[-2::-1]:
        out *= _power(rho, powers, top - k)
        out += c[k]
        top = k
    if top > 0:
        out *= _power(rho, powers, top)
    return out


def _series(a, b, keep, rho, powers):
    r""":math:`\sum_{k \in keep} a_{ki} b_{kj} \rho_{ij}^k` by Horner's rule over the kept terms
    (``a`` (q, R), ``b`` (q, C): terms first)."""
    out = np.zeros_like(rho)
    if keep.size == 0:
        return out
    tmp = np.empty_like(rho)
    top = keep[-1]
    np.multiply(a[top, :, None], b[top, None, :], out=out)
    for k in keep[-2::-1]:
        out *= _power(rho, powers, top - k)
        np.multiply(a[k, :, None], b[k, None, :], out=tmp)
        out += tmp
        top = k
    if top > 0:
        out *= _power(rho, powers, top)
    return out


@dataclass(frozen=True)
class QuadratureActivation:
    r"""A smooth activation whose moments come from Gauss–Hermite quadrature at degree :math:`q`.

    ``gelu`` (:math:`u\Phi(u)`, Hendrycks & Gimpel 2016), ``tanh``, ``softplus``
    (:math:`\log(1 + e^u)`) and ``silu`` (:math:`u/(1 + e^{-u})`); ``erf`` and ``relu``
    too, which have closed forms, to check the rule against them.

    The 2-D Gaussian integral is expanded by Mehler's formula: the bivariate normal density
    of correlation :math:`\rho` over the product of its marginals is
    :math:`\sum_k h_k(z_1) h_k(z_2) \rho^k`, with :math:`h_k = \mathrm{He}_k/\sqrt{k!}` the
    orthonormal Hermite polynomials (Daniely et al. 2016 call the result the dual
    activation). Kept to its first :math:`q` terms,

    .. math::

        \mathbb E[\phi(u)\phi(v)] \approx \sum_{k<q} a_k(\Sigma_{xx})\, a_k(\Sigma_{zz})\,
            \rho^k, \qquad \rho = \frac{\Sigma_{xz}}{\sqrt{\Sigma_{xx}\Sigma_{zz}}}, \qquad
        a_k(\Sigma) = \sum_{l=1}^{2q} w_l\, \phi(\sqrt\Sigma\, x_l)\, h_k(x_l),

    with :math:`x_l, w_l` the :math:`2q`-point Gauss–Hermite rule of :math:`\mathcal N(0, 1)`;
    likewise :math:`\mathbb E[\phi'(u)\phi'(v)]` with the coefficients of :math:`\phi'`.
    This is a quadrature of the 2-D integral on the :math:`2q \times 2q` Gauss–Hermite grid
    (weights :math:`w_l w_m \sum_{k<q} h_k(x_l) h_k(x_m) \rho^k`), exact when :math:`\phi` is
    a polynomial of degree :math:`< q`. It is separable: a pair costs :math:`q` multiply-adds
    (fewer: terms whose bound :math:`\max|a_k|\max|b_k|` is below one ulp in total are
    skipped, e.g. the even terms of an odd :math:`\phi`) instead of :math:`q^2` evaluations
    of :math:`\phi`; when all rows share one variance (unit-norm inputs), the series is one
    polynomial in :math:`\rho` with scalar coefficients :math:`a_k^2`, cheaper still.

    Its error is checked two ways. The truncation: :math:`\sum_k a_k^2 = \mathbb
    E[\phi^2]`, so by Cauchy–Schwarz the terms :math:`k \ge q` change either moment by at most
    :math:`\sqrt{t_x t_z}` relative to :math:`\sqrt{\mathbb E[\phi(u)^2]\mathbb
    E[\phi(v)^2]}`, with :math:`t = 1 - \sum_{k<q} a_k^2/\mathbb E[\phi^2]` the relative
    tail of each row; with the error of the coefficients themselves, which grows with the
    variance at the same pace, the error stays within a small multiple of
    :math:`\max(t_x, t_z)` (tested against a rule of 4× the degree): :meth:`error_estimate`,
    and a warning when it exceeds ``warn_above`` (1e-4 by default). The rule as a whole:
    :meth:`quadrature_error`, against the rule of twice the degree. On the diagonal the
    series at :math:`\rho = 1`, :math:`\sum_{k<q} a_k^2`, is used, so the kernel stays
    positive semi-definite and :math:`k(X) = k(X, X)`. At variance 1 and :math:`q = 32` the
    estimate is 7e-11 (gelu), 1e-11 (silu), 6e-14 (softplus) and 7e-6 (tanh); it grows with
    the variance (tanh at variance 4: 4e-3 at :math:`q = 32`, 2e-4 at :math:`q = 64`).
    """

    kind: str
    degree: int = DEFAULT_DEGREE
    warn_above: float = field(default=1e-4, repr=False, compare=False)

    def __post_init__(self):
        if self.kind not in _FUNCTIONS:
            raise ValueError(f"quadrature activation must be one of {list(_FUNCTIONS)}")
        object.__setattr__(self, "degree", check_degree(self.degree))

    @property
    def name(self) -> str:
        return self.kind

    def module(self, fan_in=None, fan_out=None, *, generator=None, dtype=None) -> ActivationModule:
        return ActivationModule(self)

    def torch_forward(self, h: torch.Tensor) -> torch.Tensor:
        return _FUNCTIONS[self.kind][2](h)

    def torch_derivative(self, h: torch.Tensor) -> torch.Tensor:
        return _FUNCTIONS[self.kind][3](h)

    def coefficients(self, var):
        """Hermite coefficients :math:`a_0..a_{q-1}` of :math:`\\phi` and of :math:`\\phi'`
        at each variance (two arrays (n, q)), and the relative truncation tails of both
        (two arrays (n,); see the class docstring)."""
        phi, dphi, _, _ = _FUNCTIONS[self.kind]
        x, w, WH = _hermite_rule(2 * self.degree)
        u = np.multiply.outer(np.sqrt(np.maximum(var, 0.0)), x)
        out = []
        for f in (phi, dphi):
            values = f(u)
            coef = values @ WH[:, : self.degree]
            full = values**2 @ w
            kept = np.sum(coef * coef, axis=1)
            tail = np.divide(full - kept, full, out=np.zeros_like(full), where=full > 0)
            out += [coef, np.maximum(tail, 0.0)]
        return out[0], out[2], out[1], out[3]

    def second_moments(self, var):
        r"""Per row: :math:`\mathbb E[\phi(u)^2]` and :math:`\mathbb E[\phi'(u)^2]` as the
        series gives them at :math:`\rho = 1` (:math:`\sum_{k<q} a_k^2`)."""
        a, da, _, _ = self.coefficients(var)
        a, da = np.ascontiguousarray(a.T), np.ascontiguousarray(da.T)
        return np.einsum("ki,ki->i", a, a), np.einsum("ki,ki->i", da, da)

    def error_estimate(self, var) -> float:
        r"""Largest relative truncation tail :math:`1 - \sum_{k<q} a_k^2 / \mathbb E[\phi^2]`
        (and the same for :math:`\phi'`) over the rows' variances ``var``: an estimate of the
        relative error of both moments at every correlation (see the class docstring)."""
        _, _, tail, dtail = self.coefficients(np.atleast_1d(np.asarray(var, dtype=np.float64)))
        return float(max(np.max(tail, initial=0.0), np.max(dtail, initial=0.0)))

    def kernel_plan(self, var_x, var_z) -> _MehlerPlan:
        return _MehlerPlan(self, var_x, var_z)

    def moments(self, cov, var_x, var_z):
        """The two moments of every pair: ``cov`` (R, C), variances (R,) and (C,)."""
        plan = self.kernel_plan(var_x, var_z)
        return plan.moments(cov, slice(None), slice(None))

    def quadrature_error(self, variances=(0.25, 1.0, 4.0), n_rho: int = 41) -> float:
        r"""Largest difference of both moments between this rule and the rule of degree
        :math:`\min(2q, 128)`, over the given variances (all pairs) and ``n_rho``
        correlations in [-1, 1], relative to :math:`\sqrt{\mathbb E[\phi^2]\mathbb
        E[\phi^2]}` (and the same for :math:`\phi'`) of the pair."""
        fine = QuadratureActivation(self.kind, min(2 * self.degree, MAX_DEGREE))
        var = np.asarray(variances, dtype=np.float64)
        rho = np.linspace(-1.0, 1.0, n_rho)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the check itself reports the error
            return self._quadrature_error(fine, var, rho)

    def _quadrature_error(self, fine, var, rho) -> float:
        worst = 0.0
        for vx in var:
            for vz in var:
                cov = np.sqrt(vx * vz) * rho[None, :]
                a, b = np.full(1, vx), np.full(rho.size, vz)
                ours, ref = self.moments(cov, a, b), fine.moments(cov, a, b)
                sx, sz = fine.second_moments(a), fine.second_moments(b)
                for k in range(2):
                    scale = np.sqrt(sx[k][:, None] * sz[k][None, :])
                    worst = max(worst, float(np.max(np.abs(ours[k] - ref[k]) / scale)))
        return worst
