r"""The seed's nine published kernel formulas (SPEC §6), as released in its scripts.

These are the formulas the seed's authors *published* (their module of per-pair kernel
functions, restated in SPEC §6), not kernels derived from a network: with the published
normalization of the arc-cosine functions, GP, NTKB and NTKJ are smooth kernels that no
network has (:meth:`PublishedKernel.network` and ``ntklab verify --published`` say which
network each one becomes once the normalization is corrected). The network kernels of
:class:`ntklab.Architecture` live in :mod:`ntklab.architecture` and :mod:`ntklab.layers`;
nothing here is used by them.

Notation (SPEC §6). Inputs :math:`x, x' \in \mathbb R^d` (the seed: :math:`d = 15`), plain
inner product :math:`x\cdot x'`; constants :math:`\sigma_b^2 = \sigma^2_{b0} = \sigma^2_{b1}
= \sigma^2_{b2}`, :math:`\sigma_w^2 = \sigma^2_{w0} = \sigma^2_{w1} = \sigma^2_{w2}`,
:math:`c = c_1 = c_2 = c_\sigma` (the seed: 1, 1, 2). For a kernel :math:`k` with
"variances" :math:`k(x)`:

.. math::

    k_0(x, x') = \sigma_b^2 + \frac{\sigma_w^2}{d}\, x\cdot x', \qquad
    k_0(x) = k_0(x, x),

    \rho_\text{pub}(k) = \frac{k(x, x')}{k(x)\, k(x')}, \qquad
    \rho_\text{cor}(k) = \frac{k(x, x')}{\sqrt{k(x)\, k(x')}},

    \delta = \arccos\rho \quad (\text{published: } \delta = 0 \text{ where } |\rho| > 1),

    H(k) = \sqrt{k(x) k(x')}\; \frac{\sin\delta + (\pi - \delta)\cos\delta}{2\pi}, \qquad
    H'(k) = \frac{\pi - \delta}{2\pi},

    H_1, H_1' = H(k_0), H'(k_0), \qquad
    k_1(x) = \sigma_b^2 + c\,\sigma_w^2\, \frac{k_0(x)}{2}, \quad
    k_1(x, x') = \sigma_b^2 + c\,\sigma_w^2 H_1, \qquad
    H_2, H_2' = H(k_1), H'(k_1).

Note that the variance one level up is :math:`k_1(x)` above, not :math:`k_1(x, x)` (they
agree only with :math:`\rho_\text{cor}`). The kernels:

.. math::

    \mathrm{GP1} = \sigma_b^2 + c\sigma_w^2 H_1, \qquad
    \mathrm{GP2} = \sigma_b^2 + c\sigma_w^2 H_2,

    \mathrm{NTKB1} = 1 + c H_1 + c\sigma_w^2 H_1' + c\sigma_w^2 H_1' (x\cdot x'),

    \mathrm{NTKB2} = 1 + c\sigma_w^2 H_2' + c^2\sigma_w^4 H_1' H_2' (1 + x\cdot x')
                     + c^2\sigma_w^2 H_1 H_2' + c H_2,

    \mathrm{NTKJ1} = k_0 H_1' + H_1 + 1, \qquad
    \mathrm{NTKJ2} = \mathrm{NTKJ1}\, H_2' + H_2 + 1,

and, without biases (:math:`k = x\cdot x'`, variances :math:`\lVert x\rVert^2`),
:math:`A_1, A_1' = H(x\cdot x'), H'(x\cdot x')`, :math:`a_1(x) = c\lVert x\rVert^2/2`,
:math:`a_1(x, x') = c A_1`, :math:`A_2, A_2' = H(a_1), H'(a_1)`:

.. math::

    \mathrm{NTKA1} = c\, (x\cdot x') A_1' + c A_1, \qquad
    \mathrm{NTKA2} = c^2 (x\cdot x') A_1' A_2' + c^2 A_1 A_2' + c A_2,

    \mathrm{K1} = a\, \exp(-\lVert x - x'\rVert / b) \qquad (a = 2,\ b = 6).

Normalizations. ``"published"`` uses :math:`\rho_\text{pub}` everywhere, as the seed's
scripts do: on unit-norm inputs :math:`k_0(x) = 16/15` and
:math:`\rho_\text{pub} = (15/16)\rho_\text{cor}` (one level up :math:`k_1(x) = 31/15`,
:math:`(15/31)`), so the arc-cosine functions never reach :math:`\rho = 1`; for NTKA,
:math:`k(x) = 1` there and the two agree. ``"corrected"`` uses :math:`\rho_\text{cor}`
clipped to :math:`[-1, 1]` (the Gaussian correlation of SPEC §2: the published rule
":math:`\delta = 0` where :math:`|\rho| > 1`" would send a round-off :math:`\rho < -1` to
:math:`\delta = 0` instead of :math:`\pi`), with :math:`\rho = 1` exactly for a point
paired with itself; with it the seven network formulas are network kernels
(:meth:`PublishedKernel.network`).

The published normalization is singular where :math:`\rho_\text{pub}` is within rounding of
1: for NTKA on unit-norm rows, :math:`\rho_\text{pub}(x, x) = 1/\lVert x\rVert^2 = 1 \pm`
a few ulp, so :math:`\delta` there is 0 or :math:`O(10^{-8})` depending on the last bit of
:math:`\lVert x\rVert^2`, as in the seed's scripts (an :math:`O(10^{-8})` relative effect).

References
----------
The seed: "Issues with Neural Tangent Kernel Approach to Neural Networks", its released
scripts (main script and module of per-pair kernel functions), restated in SPEC §6.
Cho, Y. and Saul, L. (2009). Kernel methods for deep learning. NeurIPS 22.
Jacot, A., Gabriel, F. and Hongler, C. (2018). Neural tangent kernel. NeurIPS 31.
Arora, S. et al. (2019). On exact computation with an infinitely wide neural net. NeurIPS 32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ._validation import check_float, check_pair
from .architecture import Architecture
from .kernels import arc_cosine, laplacian, relu_moments
from .linalg import symmetrize

__all__ = [
    "PUBLISHED_KERNELS",
    "K1_AMPLITUDE",
    "K1_LENGTH_SCALE",
    "NORMALIZATIONS",
    "PublishedKernel",
    "published_kernel",
    "published_kernels",
]

PUBLISHED_KERNELS = ("GP1", "GP2", "NTKA1", "NTKA2", "NTKB1", "NTKB2", "NTKJ1", "NTKJ2", "K1")
#: The seed's Laplacian K1 = 2 exp(-|x - x'| / 6) (SPEC §6): its amplitude and length scale.
K1_AMPLITUDE, K1_LENGTH_SCALE = 2.0, 6.0
NORMALIZATIONS = ("published", "corrected")
_CONSTANTS = ("sigma_b2", "sigma_w2", "c", "amplitude", "length_scale")


@dataclass(frozen=True)
class PublishedKernel:
    r"""One of the seed's published kernel formulas (module docstring; SPEC §6).

    Parameters
    ----------
    name : str
        One of :data:`PUBLISHED_KERNELS`.
    normalization : {"published", "corrected"}
        :math:`\rho_\text{pub}` (the seed's scripts) or :math:`\rho_\text{cor}`.
    sigma_b2 : float
        :math:`\sigma_b^2 = \sigma^2_{b0} = \sigma^2_{b1} = \sigma^2_{b2} \ge 0` (the seed: 1).
    sigma_w2 : float
        :math:`\sigma_w^2 = \sigma^2_{w0} = \sigma^2_{w1} = \sigma^2_{w2} > 0` (the seed: 1).
    c : float
        :math:`c = c_1 = c_2 = c_\sigma > 0` (the seed: 2).
    amplitude, length_scale : float
        K1 only: :math:`a\exp(-\lVert x - x'\rVert/b)`, :math:`a, b > 0` (the seed: 2, 6).

    Examples
    --------
    >>> import numpy as np, ntklab
    >>> X = np.eye(15)
    >>> ntklab.PublishedKernel("NTKB1")(X).shape
    (15, 15)
    >>> arch, kind = ntklab.PublishedKernel("NTKB1").network()
    >>> arch.parameterization, arch.sigma_w1, kind
    ('paper', 1.0, 'ntk')
    """

    name: str
    normalization: str = "published"
    sigma_b2: float = 1.0
    sigma_w2: float = 1.0
    c: float = 2.0
    amplitude: float = K1_AMPLITUDE
    length_scale: float = K1_LENGTH_SCALE

    def __post_init__(self):
        if self.name not in PUBLISHED_KERNELS:
            raise ValueError(
                f"name must be one of {', '.join(PUBLISHED_KERNELS)}; got {self.name!r}"
            )
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be 'published' or 'corrected'; got {self.normalization!r}"
            )
        for field, strict in (
            ("sigma_b2", False), ("sigma_w2", True), ("c", True),
            ("amplitude", True), ("length_scale", True),
        ):  # fmt: skip
            object.__setattr__(self, field, check_float(getattr(self, field), field, strict=strict))

    def __call__(self, X, Z=None) -> np.ndarray:
        r"""The kernel matrix, float64 (len(X), len(Z)); ``Z=None``: ``X``, exactly symmetric.

        With ``Z=None`` a point paired with itself gets :math:`\rho_\text{cor} = 1` exactly
        (``"corrected"``); a row of ``Z`` equal to one of ``X`` gets :math:`1 - O(\epsilon)`,
        which arccos turns into :math:`O(10^{-8})` relative differences.

        Parameters
        ----------
        X : array_like (n, d)
        Z : array_like (m, d), optional
        """
        return _Terms(*_check_inputs(X, Z), self).kernel(self.name)

    def network(self) -> tuple[Architecture, str] | None:
        r"""The network whose kernel this formula is under ``normalization="corrected"``.

        Derived from SPEC §2's recursion (:math:`\Sigma^1 = a_1^2 v_1 x\cdot x' + \beta^2`,
        :math:`\Theta^1 = a_1^2 x\cdot x' + \beta^2`, then :math:`\Sigma^{l+1} = \sigma^2 H(\Sigma^l)
        + \beta^2`, :math:`\Theta^{l+1} = \Theta^l \sigma^2 H'(\Sigma^l) + \Sigma^{l+1}`, with
        :math:`H(\lambda k) = \lambda H(k)`, :math:`H'(\lambda k) = H'(k)` under
        :math:`\rho_\text{cor}`), for any constants (:math:`B = \sigma_b^2`, :math:`W = \sigma_w^2`):

        ========= ============================================================= ===============
        formula   network (β is ``sigma_b``, σ_w1 the first layer, σ_w later)   exists when
        ========= ============================================================= ===============
        GP1/2     NNGP of ``jacot``, β = √B, σ_w1 = √W, σ_w = √(cW)             always
        NTKJ1     NTK of ``jacot``, β = 1, σ_w1 = √(W/B), σ_w = √B              B > 0
        NTKJ2     NTK of ``jacot`` depth 2, β = 1, σ_w1 = √W, σ_w = 1           B = 1, cW = 1
        NTKB1/2   NTK of ``paper``, β = 1, σ_w1 = 1, σ_w = √(cB)                B = W
        NTKA1/2   NTK of ``arora``, σ_w = √c                                    always
        K1        none (not a network kernel)                                   never
        ========= ============================================================= ===============

        With the seed's constants (B = W = 1, c = 2): GP = ``jacot`` with σ_w1 = 1, σ_w = √2,
        β = 1; NTKJ1 = ``jacot`` with σ_w = 1, β = 1; NTKB = ``paper`` with σ_w1 = 1
        (:math:`v_1 = 1/d`), σ_w = √2, β = 1; NTKA = ``arora``; NTKJ2 mixes σ_w² = 1 (its
        NTKJ1) with c σ_w² = 2 (its :math:`k_1`) and is no network's kernel. Outside
        "exists when", no network of SPEC §1 (one β for all layers) has the formula as its
        kernel (matching its constant, :math:`H` and :math:`H'` terms with the recursion's
        leaves no solution), and ``None`` is returned. The answer does not depend on
        ``self.normalization``.

        Returns
        -------
        (Architecture, {"ntk", "nngp"}) or None
        """
        B, W, c = self.sigma_b2, self.sigma_w2, self.c
        depth = 2 if self.name.endswith("2") else 1
        if self.name.startswith("GP"):
            sw, sb, sw1, kind = math.sqrt(c * W), math.sqrt(B), math.sqrt(W), "nngp"
            return Architecture(depth, "jacot", sw, sb, sigma_w1=sw1), kind
        if self.name == "NTKJ1" and B > 0:
            return Architecture(1, "jacot", math.sqrt(B), 1.0, sigma_w1=math.sqrt(W / B)), "ntk"
        if self.name == "NTKJ2" and B == 1.0 and c * W == 1.0:
            return Architecture(2, "jacot", 1.0, 1.0, sigma_w1=math.sqrt(W)), "ntk"
        if self.name.startswith("NTKB") and B == W:
            return Architecture(depth, "paper", math.sqrt(c * B), 1.0, sigma_w1=1.0), "ntk"
        if self.name.startswith("NTKA"):
            return Architecture(depth, "arora", sigma_w=math.sqrt(c)), "ntk"
        return None


def published_kernel(name, X, Z=None, *, normalization="published", **constants) -> np.ndarray:
    """One published kernel matrix: ``PublishedKernel(name, normalization, **constants)(X, Z)``.

    Parameters
    ----------
    name : str
        One of :data:`PUBLISHED_KERNELS`.
    X : array_like (n, d)
    Z : array_like (m, d), optional
        Defaults to ``X`` (the result is then exactly symmetric).
    normalization : {"published", "corrected"}
    **constants
        ``sigma_b2``, ``sigma_w2``, ``c``, ``amplitude``, ``length_scale``
        (:class:`PublishedKernel`).

    Returns
    -------
    ndarray (n, m), float64
    """
    return _kernel(name, normalization, constants)(X, Z)


def published_kernels(
    X, Z=None, *, normalization="published", names=None, check_input: bool = True, **constants
) -> dict[str, np.ndarray]:
    """Several published kernels at once, sharing their intermediates.

    :math:`H_1, H_2, A_1, A_2` (module docstring) are computed once for all the requested
    names, so all nine cost about as much as NTKB2 and NTKA2 together.

    Parameters
    ----------
    X : array_like (n, d)
    Z : array_like (m, d), optional
        Defaults to ``X`` (every result is then exactly symmetric).
    normalization : {"published", "corrected"}
    names : iterable of str, optional
        Default: all of :data:`PUBLISHED_KERNELS`.
    check_input : bool, default True
        ``False`` skips the checks of ``X`` and ``Z`` (:mod:`ntklab._validation`): they are
        then finite float64 matrices with the same number of columns. ``names``,
        ``normalization`` and the constants are checked either way.
    **constants
        As for :func:`published_kernel`.

    Returns
    -------
    dict
        ``{name: ndarray (n, m)}`` in the order of ``names``.
    """
    if check_input:
        X, Z, symmetric = _check_inputs(X, Z)
        Z = None if symmetric else Z
    names = PUBLISHED_KERNELS if names is None else names
    names = (names,) if isinstance(names, str) else tuple(dict.fromkeys(names))
    if not names:
        raise ValueError(f"names must not be empty; choose among {', '.join(PUBLISHED_KERNELS)}")
    specs = [_kernel(name, normalization, constants) for name in names]
    terms = _Terms(X, X if Z is None else Z, Z is None, specs[0])
    return {spec.name: terms.kernel(spec.name) for spec in specs}


def _check_inputs(X, Z) -> tuple[np.ndarray, np.ndarray, bool]:
    """``check_pair(X, Z)``, with ``Z is X`` taken as ``Z=None`` (the symmetric path)."""
    return check_pair(X, None if Z is X else Z)


def _kernel(name, normalization, constants: dict) -> PublishedKernel:
    unknown = sorted(set(constants) - set(_CONSTANTS))
    if unknown:
        raise ValueError(
            f"unknown constant(s) {', '.join(unknown)}; the constants are {', '.join(_CONSTANTS)}"
        )
    return PublishedKernel(name, normalization, **constants)


def _arc_cosine_terms(k, kx, kz, normalization: str, same: bool):
    r""":math:`H(k), H'(k)` for a kernel matrix ``k`` with variances ``kx``, ``kz``.

    ``"corrected"``: the Gaussian ReLU moments (:func:`ntklab.kernels.relu_moments`, which
    clips :math:`\rho_\text{cor}` to [-1, 1] and sets it to 1 for a point with itself when
    ``same``). ``"published"``: :math:`\rho_\text{pub} = k/(k(x)k(x'))`, with
    :math:`\delta = 0` (i.e. :math:`\rho = 1`) where :math:`|\rho| > 1`, and 0 where a
    variance is 0 (as in ``relu_moments``).
    """
    if normalization == "corrected":
        return relu_moments(k, kx, kz, same=same)
    denom = np.outer(kx, kz)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.divide(k, denom, out=np.zeros_like(k), where=denom > 0)
    rho[np.abs(rho) > 1.0] = 1.0
    return arc_cosine(rho, np.sqrt(denom, out=denom))


class _Terms:
    """The intermediates of the nine formulas on one (X, Z), each computed once, on demand."""

    def __init__(self, X: np.ndarray, Z: np.ndarray, symmetric: bool, spec: PublishedKernel):
        # valid float64 inputs (Z is X when symmetric), checked by the caller
        self.X, self.Z, self.symmetric = X, Z, symmetric
        self.spec = spec

    def _h(self, k, kx, kz):
        return _arc_cosine_terms(k, kx, kz, self.spec.normalization, self.symmetric)

    @cached_property
    def gram(self):
        """``x·x'`` (exactly symmetric, diagonal = the norms, when Z is None), ``‖x‖²``, ``‖z‖²``."""
        X, Z = self.X, self.Z
        nx = np.einsum("ij,ij->i", X, X)
        nz = nx if self.symmetric else np.einsum("ij,ij->i", Z, Z)
        G = X @ Z.T
        if self.symmetric:
            symmetrize(G)
            np.fill_diagonal(G, nx)
        return G, nx, nz

    @cached_property
    def k0(self):
        G, nx, nz = self.gram
        B, s = self.spec.sigma_b2, self.spec.sigma_w2 / self.X.shape[1]
        return G * s + B, nx * s + B, nz * s + B

    @cached_property
    def h1(self):
        return self._h(*self.k0)

    @cached_property
    def h2(self):
        _, k0x, k0z = self.k0
        B, cW = self.spec.sigma_b2, self.spec.c * self.spec.sigma_w2
        k1 = self.h1[0] * cW + B
        return self._h(k1, k0x * (cW / 2) + B, k0z * (cW / 2) + B)

    @cached_property
    def a1(self):
        return self._h(*self.gram)

    @cached_property
    def a2(self):
        _, nx, nz = self.gram
        c = self.spec.c
        return self._h(self.a1[0] * c, nx * (c / 2), nz * (c / 2))

    def kernel(self, name: str) -> np.ndarray:
        """The formula ``name`` (module docstring), a new array."""
        return getattr(self, f"_{name}")()

    # -- the formulas, literally (SPEC §6) -------------------------------------------------
    def _GP1(self):
        return self.h1[0] * (self.spec.c * self.spec.sigma_w2) + self.spec.sigma_b2

    def _GP2(self):
        return self.h2[0] * (self.spec.c * self.spec.sigma_w2) + self.spec.sigma_b2

    def _NTKB1(self):
        c, W = self.spec.c, self.spec.sigma_w2
        (H1, H1p), G = self.h1, self.gram[0]
        return 1.0 + c * H1 + (c * W) * H1p + (c * W) * H1p * G

    def _NTKB2(self):
        c, W = self.spec.c, self.spec.sigma_w2
        (H1, H1p), (H2, H2p), G = self.h1, self.h2, self.gram[0]
        return (
            1.0 + (c * W) * H2p + (c * c * W * W) * H1p * H2p * (1.0 + G)
            + (c * c * W) * H1 * H2p + c * H2
        )  # fmt: skip

    def _NTKJ1(self):
        (H1, H1p), k0 = self.h1, self.k0[0]
        return k0 * H1p + H1 + 1.0

    def _NTKJ2(self):
        H2, H2p = self.h2
        return self._NTKJ1() * H2p + H2 + 1.0  # NTKJ1 again: three elementwise passes

    def _NTKA1(self):
        c, (A1, A1p), G = self.spec.c, self.a1, self.gram[0]
        return c * G * A1p + c * A1

    def _NTKA2(self):
        c, (A1, A1p), (A2, A2p), G = self.spec.c, self.a1, self.a2, self.gram[0]
        return (c * c) * G * A1p * A2p + (c * c) * A1 * A2p + c * A2

    def _K1(self):
        Z = None if self.symmetric else self.Z
        K = laplacian(self.X, Z, length_scale=self.spec.length_scale, check_input=False)
        K *= self.spec.amplitude
        if self.symmetric:
            symmetrize(K)
        return K
