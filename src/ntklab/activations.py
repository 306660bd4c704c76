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

import math
import re

from .activation_closed import ABReLU, ActivationModule, Erf
from .activation_quadrature import (
    DEFAULT_DEGREE,
    MAX_DEGREE,
    MIN_DEGREE,
    QuadratureActivation,
    check_degree,
)

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
