r"""The parameterizations of :class:`ntklab.Architecture`: how each scales its layers, and
its default constants (SPEC §1; the network is written in :mod:`ntklab.architecture`).

========== ======================= =================== =================== ============ ==========
name       source                  :math:`a_1`         :math:`v_1`         σ_w (l ≥ 2)  β
========== ======================= =================== =================== ============ ==========
``jacot``  Jacot et al. 2018       σ_w1/√d             1                   σ_w (1)      β (0.1)
``arora``  Arora et al. 2019       1                   1                   √2           0
``paper``  the seed, §3.1 (NTKB)   1                   σ_w1²/d             σ_w (1)      β (0.1)
========== ======================= =================== =================== ============ ==========

Two parameterizations leave the lazy (NTK) regime as the width grows (defaults σ_w = √2,
β = 0, He et al. 2015's initialization; n the width, every layer written as
:math:`h = \sqrt{g/n_\text{in}}\, W z + \beta b`, :math:`W \sim \mathcal N(0, v)`):

============ =========================== ========================== ========================= ==========================
name         source                      first layer (g, v)         hidden layers (g, v)      output layer (g, v)
============ =========================== ========================== ========================= ==========================
``standard`` standard (SP)               (d, σ_w1²/d)               (n, σ_w²/n)               (n, σ_w²/n)
``mup``      Yang & Hu 2021, μP          (n d, σ_w1²/(n d))         (n, σ_w²/n)               (1, σ_w²/n)
============ =========================== ========================== ========================= ==========================

``standard`` has no width multipliers (:math:`g = n_\text{in}`: the multiplier is 1 and
:math:`W \sim \mathcal N(0, \sigma_w^2/n_\text{in})`); its NNGP is the usual limit, but its
NTK grows ∝ n: :meth:`ntklab.Architecture.ntk` gives it at the hidden width ``width`` (the
same kernel map with the width's coefficients), and refuses without one.
``mup`` is μP in Yang & Hu's abc form (Definition 3.1: :math:`W^l = n^{-a_l} w^l`,
:math:`w^l \sim \mathcal N(0, n^{-2b_l})`, one learning rate :math:`\eta n^{-c}`) with
:math:`a_1 = -\tfrac12`, :math:`a_l = 0` (hidden), :math:`a_{L+1} = \tfrac12`,
:math:`b_l = \tfrac12`, :math:`c = 0`; by their symmetry :math:`(a, b, c) \to (a + \theta,
b - \theta, c - 2\theta)` one plain SGD rate on these parameters is SP's initialization with the
per-layer rates η·n (first layer), η (hidden) and η/n (output layer), their Table 3. The output
is scaled by 1/n instead of 1/√n, so features move by O(1) however wide the network: there is no
fixed NTK limit, and :meth:`ntklab.Architecture.ntk` / :meth:`~ntklab.Architecture.nngp` refuse
it (measure the empirical NTK, e.g. its drift, instead). Its biases would need a width multiplier of
their own, so ``mup`` takes β = 0 only.

References: Yang, G. and Hu, E. J. (2021), Tensor Programs IV: feature learning in
infinite-width neural networks, ICML. He, K. et al. (2015), Delving deep into rectifiers, ICCV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Parameterization", "PARAMETERIZATIONS"]


@dataclass(frozen=True)
class Parameterization:
    r"""How a parameterization scales the first layer, and its default constants.

    Attributes
    ----------
    name, source : str
    sigma_w, sigma_b : float
        Defaults for σ_w (layers l ≥ 2) and β.
    first_layer_scale : str
        ``"sigma_w/sqrt(d)"`` (a₁ = σ_w1/√d, v₁ = 1: Jacot),
        ``"unit"`` (a₁ = 1, v₁ = 1: Arora; no σ_w1), or
        ``"init"`` (a₁ = 1, v₁ = σ_w1²/d: the seed's NTKB).
    assumed : tuple of str
        Which defaults SPEC marks *assumed*.
    letter : str
        The letter of the seed's kernel names (``NTKJ``, ``NTKA``, ``NTKB``).
    """

    name: str
    source: str
    sigma_w: float
    sigma_b: float
    first_layer_scale: str
    assumed: tuple[str, ...] = ()
    letter: str = ""
    #: ``"ntk"`` (the 1/√n layers above), ``"standard"`` or ``"mup"`` (width-dependent layers)
    scaling: str = "ntk"

    @property
    def has_kernel_limit(self) -> bool:
        """Whether the parameterization has a fixed (width-independent or given-width) NTK:
        every one but ``mup``."""
        return self.scaling != "mup"

    def first_layer(self, d: int, sigma_w1: float | None) -> tuple[float, float]:
        """Return ``(a1, v1)`` for input dimension ``d`` and first-layer weight scale σ_w1."""
        if self.first_layer_scale == "sigma_w/sqrt(d)":
            return sigma_w1 / math.sqrt(d), 1.0
        if self.first_layer_scale == "unit":
            return 1.0, 1.0
        if self.first_layer_scale == "init":
            return 1.0, sigma_w1**2 / d
        raise AssertionError(self.first_layer_scale)  # pragma: no cover


PARAMETERIZATIONS: dict[str, Parameterization] = {
    p.name: p
    for p in (
        Parameterization(
            "jacot", "Jacot et al. 2018", 1.0, 0.1, "sigma_w/sqrt(d)", ("sigma_w", "sigma_b"), "J"
        ),
        Parameterization("arora", "Arora et al. 2019", math.sqrt(2.0), 0.0, "unit", (), "A"),
        Parameterization(
            "paper", "the seed, section 3.1 (NTKB)", 1.0, 0.1, "init", ("sigma_w", "sigma_b"), "B"
        ),
        Parameterization(
            "standard", "standard (SP)", math.sqrt(2.0), 0.0, "init", (), "S", "standard"
        ),
        Parameterization(
            "mup", "Yang & Hu 2021 (muP)", math.sqrt(2.0), 0.0, "init", (), "M", "mup"
        ),
    )
}
