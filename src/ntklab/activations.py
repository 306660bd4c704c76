r"""Activations beyond ReLU: layer objects that yield their finite module and their kernel map.

Each activation :math:`\phi` is one layer object (as :class:`ntklab.layers.ReLU`) with two
faces from one definition:

* ``layer.module(...)``: the finite layer, an :class:`ActivationModule` (``forward`` is
  :math:`\phi`, ``derivative`` is :math:`\phi'`, both in torch);
* ``layer.kernel_plan(var_x, var_z)``: its kernel map, the two Gaussian moments

  .. math::

      \mathbb E[\phi(u)\phi(v)], \qquad \mathbb E[\phi'(u)\phi'(v)], \qquad
      (u, v) \sim \mathcal N\!\left(0, \begin{bmatrix}\Sigma_{xx} & \Sigma_{xz} \\
      \Sigma_{xz} & \Sigma_{zz}\end{bmatrix}\right),

  for every pair of rows, which :func:`ntklab.activation_kernels.activation_network_kernels`
  applies between the dense layers (SPEC §2's recursion with :math:`\phi` in place of ReLU).

Closed forms: ``erf`` (Williams 1997), ``leaky_relu`` and ``abrelu`` (from the arc-cosine
moments of Cho & Saul 2009). Quadrature: ``gelu``, ``tanh``, ``softplus``, ``silu``, by a
Gauss–Hermite rule of declared degree :math:`q` for the 2-D Gaussian integral
(:class:`QuadratureActivation`). ``relu`` itself stays :class:`ntklab.layers.ReLU`, computed
by the compiled pass of :func:`ntklab.kernels.relu_network_kernels`.

References
----------
Williams, C. K. I. (1997). Computing with infinite networks. NeurIPS 9.
Cho, Y. and Saul, L. (2009). Kernel methods for deep learning. NeurIPS 22.
Daniely, A., Frostig, R. and Singer, Y. (2016). Toward deeper understanding of neural
networks: the power of initialization and a dual view on expressivity. NeurIPS 29.
Hendrycks, D. and Gimpel, K. (2016). Gaussian error linear units (GELUs). arXiv:1606.08415.
Mehler, F. G. (1866). Ueber die Entwicklung einer Function von beliebig vielen Variablen
nach Laplaceschen Functionen höherer Ordnung. J. reine angew. Math. 66.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "CLOSED_FORM",
    "QUADRATURE",
    "DEFAULT_DEGREE",
    "MIN_DEGREE",
    "MAX_DEGREE",
    "ActivationModule",
    "ABReLU",
    "Erf",
    "QuadratureActivation",
    "activation_layer",
    "canonical_activation",
    "check_degree",
    "parse_activation",
]

CLOSED_FORM = ("relu", "erf", "leaky_relu", "abrelu")
QUADRATURE = ("gelu", "tanh", "softplus", "silu")
#: Every activation name; ``leaky_relu`` takes an optional slope, ``abrelu`` two slopes.
ACTIVATIONS = CLOSED_FORM + QUADRATURE
DEFAULT_DEGREE = 32
MIN_DEGREE = 4
MAX_DEGREE = 128  # its 2q-point rule: hermegauss loses its weights beyond ~350
LEAKY_SLOPE = 0.01  # torch.nn.LeakyReLU's default
_SPEC = re.compile(r"^\s*([a-z_]+)\s*(?:\(\s*([^()]*?)\s*\))?\s*$")
_HELP = "relu, erf, leaky_relu, leaky_relu(slope), abrelu(a, b), gelu, tanh, softplus, silu"


def parse_activation(spec: str) -> tuple[str, tuple[float, ...]]:
    """``"abrelu(-0.5, 1)"`` -> ``("abrelu", (-0.5, 1.0))``; one clear error otherwise."""
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    if match is None or match.group(1) not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {_HELP}; got {spec!r}")
    name, args = match.group(1), match.group(2)
    try:
        params = tuple(float(a) for a in args.split(",")) if args else ()
    except ValueError:
        raise ValueError(f"activation {spec!r}: its parameters must be numbers") from None
    wanted = {"leaky_relu": (0, 1), "abrelu": (2,)}.get(name, (0,))
    if len(params) not in wanted or not all(math.isfinite(p) for p in params):
        form = {"leaky_relu": "leaky_relu or leaky_relu(slope)", "abrelu": "abrelu(a, b)"}
        raise ValueError(
            f"activation {spec!r}: write {form.get(name, name)} (finite numbers); "
            f"valid activations: {_HELP}"
        )
    return name, params


def activation_layer(spec: str, quadrature_degree: int | None = None):
    """The layer object of an activation spec (``"relu"``: :class:`ntklab.layers.ReLU`).

    Parameters
    ----------
    spec : str
        One of :data:`ACTIVATIONS`, with parameters where it takes them:
        ``leaky_relu(slope)`` (default slope 0.01), ``abrelu(a, b)``.
    quadrature_degree : int, optional
        Degree :math:`q` of the Gauss–Hermite rule of the quadrature activations
        (:data:`QUADRATURE`; default :data:`DEFAULT_DEGREE`, between :data:`MIN_DEGREE` and
        :data:`MAX_DEGREE`). Must be None for the closed forms.
    """
    from .layers import ReLU

    name, params = parse_activation(spec)
    if quadrature_degree is not None:
        if name not in QUADRATURE:
            raise ValueError(
                f"quadrature_degree applies to the quadrature activations ({', '.join(QUADRATURE)})"
                f" only; {name} has a closed form: leave quadrature_degree unset"
            )
        check_degree(quadrature_degree)
    if name == "relu":
        return ReLU()
    if name == "erf":
        return Erf()
    if name == "leaky_relu":
        return ABReLU(params[0] if params else LEAKY_SLOPE, 1.0, leaky=True)
    if name == "abrelu":
        return ABReLU(params[0], params[1])
    return QuadratureActivation(
        name, DEFAULT_DEGREE if quadrature_degree is None else quadrature_degree
    )


def canonical_activation(spec: str) -> str:
    """The canonical form of an activation spec (``"leaky_relu"`` -> ``"leaky_relu(0.01)"``,
    ``"abrelu(-.5,1)"`` -> ``"abrelu(-0.5, 1)"``), or one clear error."""
    layer = activation_layer(spec)
    return getattr(layer, "name", "relu")


def _number(x: float) -> str:
    """The shortest string that reads back as ``x`` (``1.0`` -> ``"1"``)."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


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
class ActivationModule(nn.Module):
    """Elementwise activation :math:`\\phi` of a layer object, with its derivative
    :math:`\\phi'` (for the hand-written back-propagation of :func:`ntklab.monte_carlo_kernels`
    and the structured :func:`ntklab.empirical_ntk`). Holds only the (picklable) layer
    object, whose ``torch_forward`` and ``torch_derivative`` it calls."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    @property
    def name(self) -> str:
        return self.layer.name

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.layer.torch_forward(h)

    def derivative(self, h: torch.Tensor) -> torch.Tensor:
        """:math:`\\phi'(h)`, elementwise."""
        return self.layer.torch_derivative(h)

    def extra_repr(self) -> str:
        return self.name


_SNAP = 1.0 - 8 * np.finfo(np.float64).eps


def _pairs(cov, var_x, var_z):
    """Correlation and sqrt(var_x var_z). The correlation is 0 where a variance is 0, and
    ±1 where it is within 8 ulp of ±1 (or beyond): equal inputs, whose inner product and
    squared norms were summed in different orders, get exactly 1, where arccos would turn
    the rounding into an O(1e-8) error (the compiled ReLU pass does the same by summing in
    feature order)."""
    norm = np.sqrt(np.multiply.outer(var_x, var_z))
    rho = np.divide(cov, norm, out=np.zeros_like(cov), where=norm > 0)
    np.clip(rho, -1.0, 1.0, out=rho)
    np.copysign(1.0, rho, out=rho, where=np.abs(rho) > _SNAP)
    return rho, norm


class _ClosedPlan:
    """Kernel map of a closed-form activation on the rows of X and Z at one layer."""

    def __init__(self, layer, var_x, var_z):
        self.layer, self.var_x, self.var_z = layer, var_x, var_z

    def second_moments(self, which: str):
        """:math:`(\\mathbb E[\\phi(u)^2], \\mathbb E[\\phi'(u)^2])` of every row of
        ``"x"`` or ``"z"``."""
        return self.layer.second_moments(self.var_x if which == "x" else self.var_z)

    def moments(self, cov, rows: slice, cols: slice):
        return self.layer.moments(cov, self.var_x[rows], self.var_z[cols])


@dataclass(frozen=True)
class ABReLU:
    r"""Piecewise-linear :math:`\phi(u) = a u` for :math:`u < 0`, :math:`b u` for :math:`u \ge 0`.

    ``leaky_relu(s)`` is :math:`a = s, b = 1`; ReLU is :math:`a = 0, b = 1`. Closed form
    from the arc-cosine moments (Cho & Saul 2009): writing :math:`\phi(u) = b\,r(u) - a\,r(-u)`
    with :math:`r` the ReLU and :math:`(u, -v)` of correlation :math:`-\rho`, with
    :math:`\theta = \arccos\rho` and :math:`s = \sqrt{\Sigma_{xx}\Sigma_{zz}}`,

    .. math::

        \mathbb E[\phi(u)\phi(v)] = \frac{s}{2\pi}\Big[(a^2 + b^2)(\sin\theta + (\pi - \theta)
            \cos\theta) - 2ab(\sin\theta - \theta\cos\theta)\Big],

        \mathbb E[\phi'(u)\phi'(v)] = \frac{(a^2 + b^2)(\pi - \theta) + 2ab\,\theta}{2\pi}.
    """

    negative_slope: float
    positive_slope: float = 1.0
    leaky: bool = False

    @property
    def name(self) -> str:
        if self.leaky:
            return f"leaky_relu({_number(self.negative_slope)})"
        return f"abrelu({_number(self.negative_slope)}, {_number(self.positive_slope)})"

    def module(self, fan_in=None, fan_out=None, *, generator=None, dtype=None) -> ActivationModule:
        return ActivationModule(self)

    def torch_forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.where(h >= 0, h * self.positive_slope, h * self.negative_slope)

    def torch_derivative(self, h: torch.Tensor) -> torch.Tensor:
        return torch.full_like(h, self.negative_slope).masked_fill_(h > 0, self.positive_slope)

    def second_moments(self, var):
        r""":math:`\mathbb E[\phi(u)^2] = (a^2 + b^2)\Sigma/2`, :math:`\mathbb E[\phi'(u)^2] =
        (a^2 + b^2)/2`, per row."""
        c = self.negative_slope**2 + self.positive_slope**2
        return c * var / 2.0, np.full_like(var, c / 2.0)

    def moments(self, cov, var_x, var_z):
        """The two moments of every pair: ``cov`` (R, C), variances (R,) and (C,)."""
        a, b = self.negative_slope, self.positive_slope
        rho, s = _pairs(cov, var_x, var_z)
        theta = np.arccos(rho)
        sin = np.sqrt(np.maximum(1.0 - rho * rho, 0.0))
        e_phi = (a * a + b * b) * (sin + (np.pi - theta) * rho)
        e_phi -= 2 * a * b * (sin - theta * rho)
        e_phi *= s / (2 * np.pi)
        e_dphi = ((a * a + b * b) * (np.pi - theta) + 2 * a * b * theta) / (2 * np.pi)
        return e_phi, e_dphi

    def kernel_plan(self, var_x, var_z) -> _ClosedPlan:
        return _ClosedPlan(self, var_x, var_z)


@dataclass(frozen=True)
class Erf:
    r"""The error function :math:`\phi(u) = \operatorname{erf}(u)` (Williams 1997).

    .. math::

        \mathbb E[\phi(u)\phi(v)] = \frac2\pi \arcsin
            \frac{2\Sigma_{xz}}{\sqrt{(1 + 2\Sigma_{xx})(1 + 2\Sigma_{zz})}},

        \mathbb E[\phi'(u)\phi'(v)] = \frac4\pi
            \big[(1 + 2\Sigma_{xx})(1 + 2\Sigma_{zz}) - 4\Sigma_{xz}^2\big]^{-1/2},

    the second from :math:`\phi'(u) = \tfrac{2}{\sqrt\pi} e^{-u^2}` and
    :math:`\mathbb E[e^{-u^2 - v^2}] = \det(I + 2\Sigma)^{-1/2}`.
    """

    name = "erf"

    def module(self, fan_in=None, fan_out=None, *, generator=None, dtype=None) -> ActivationModule:
        return ActivationModule(self)

    def torch_forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.erf(h)

    def torch_derivative(self, h: torch.Tensor) -> torch.Tensor:
        return torch.exp(-h * h) * (2.0 / math.sqrt(math.pi))

    def second_moments(self, var):
        r"""Per row: :math:`\frac2\pi\arcsin\frac{2\Sigma}{1 + 2\Sigma}` and
        :math:`\frac4\pi (1 + 4\Sigma)^{-1/2}`."""
        return 2 / np.pi * np.arcsin(2 * var / (1 + 2 * var)), 4 / np.pi / np.sqrt(1 + 4 * var)

    def moments(self, cov, var_x, var_z):
        """The two moments of every pair: ``cov`` (R, C), variances (R,) and (C,)."""
        prod = np.multiply.outer(1 + 2 * var_x, 1 + 2 * var_z)
        arg = 2 * cov / np.sqrt(prod)
        np.clip(arg, -1.0, 1.0, out=arg)
        det = prod - 4 * cov * cov
        np.maximum(det, 1.0, out=det)  # >= 1 + 2 var_x + 2 var_z when |cov|^2 <= var_x var_z
        return 2 / np.pi * np.arcsin(arg), 4 / np.pi / np.sqrt(det)

    def kernel_plan(self, var_x, var_z) -> _ClosedPlan:
        return _ClosedPlan(self, var_x, var_z)


# ---- quadrature -------------------------------------------------------------------------------
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
        rho, _ = _pairs(cov, self.var_x[rows], self.var_z[cols])
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
    :meth:`quadrature_error`, against the rule of twice the degree. On the diagonal the series at :math:`\rho = 1`,
    :math:`\sum_{k<q} a_k^2`, is used, so the kernel stays positive semi-definite and
    :math:`k(X) = k(X, X)`. At variance 1 and :math:`q = 32` the bound is about 1e-11
    (gelu, silu, softplus) and 7e-6 (tanh); it grows with the variance (tanh at variance 4:
    about 7e-3; raise the degree there).
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
