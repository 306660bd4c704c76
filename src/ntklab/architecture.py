r"""One definition of a network family: its NNGP, its NTK and its finite networks.

SPEC §1: input :math:`x \in \mathbb R^d`, :math:`L \ge 1` hidden layers of width :math:`n`,
ReLU :math:`\phi` (or another activation of :mod:`ntklab.activations`), scalar output,

.. math::

    h^1(x) = a_1 W^1 x + \beta b^1, \quad W^1_{ij} \sim \mathcal N(0, v_1),\; b^1_i \sim \mathcal N(0, 1)

    h^{l+1}(x) = \frac{\sigma_w}{\sqrt n} W^{l+1} \phi(h^l(x)) + \beta b^{l+1},
    \quad W^{l+1}, b^{l+1} \sim \mathcal N(0, 1), \quad l = 1..L,

    f(x) = h^{L+1}(x).

The parameterizations (``jacot``, ``arora``, ``paper``, and ``standard``, ``mup``, which
leave the lazy regime) and their constants: :mod:`ntklab.parameterizations`.

σ_w1 is the first layer's weight scale; by default σ_w1 = σ_w, which is SPEC §1's table.
A separate σ_w1 lets the seed's published formulas be written as networks (SPEC §6; e.g.
NTKB1 is ``paper`` with σ_w1 = 1 and σ_w = √2, see :mod:`ntklab.published`).
Defaults σ_w = 1, β = 0.1 for ``jacot`` and ``paper`` are *assumed* (SPEC §1).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ._validation import check_float, check_int, check_pair
from .activations import activation_layer
from .kernels import relu_network_kernels
from .layers import Dense, ReLU
from .networks import FullyConnectedNetwork, resolve_device
from .parameterizations import PARAMETERIZATIONS, Parameterization

__all__ = ["Architecture", "Parameterization", "PARAMETERIZATIONS"]  # the last two: re-exported


@dataclass(frozen=True)
class Architecture:
    r"""A fully connected network family: depth, parameterization, activation and constants.

    From this one object come the analytic kernels (:meth:`nngp`, :meth:`ntk`,
    :meth:`kernels`) and the finite networks (:meth:`network`); both are built from the
    same :meth:`layers`, so they cannot disagree.

    Parameters
    ----------
    depth : int
        Number of hidden layers :math:`L \ge 1`.
    parameterization : {"jacot", "arora", "paper", "standard", "mup"}
        See :mod:`ntklab.parameterizations` and SPEC §1.
    sigma_w : float, optional
        Weight scale σ_w of layers l ≥ 2 (and, for ``jacot``/``paper``, of the first layer
        unless ``sigma_w1`` is given). ``None``: the parameterization's default (1, or √2
        for ``arora``).
    sigma_b : float, optional
        Bias scale β. ``None``: the parameterization's default (0.1, or 0 for ``arora``).
    sigma_w1 : float, optional
        σ_w of the first layer (``jacot``: :math:`a_1 = \sigma_{w1}/\sqrt d`; ``paper``:
        :math:`v_1 = \sigma_{w1}^2/d`). ``None``: ``sigma_w``, so the default network is
        SPEC §1's. ``arora`` has no such scale (:math:`a_1 = v_1 = 1`): it must stay ``None``
        there, and is ``None`` after construction; for ``jacot``/``paper`` it is a float.
    activation : str, default "relu"
        :math:`\phi`: ``relu`` (the compiled pass), or one of :mod:`ntklab.activations`:
        ``erf``, ``leaky_relu`` / ``leaky_relu(slope)``, ``abrelu(a, b)`` (closed forms),
        ``gelu``, ``tanh``, ``softplus``, ``silu`` (Gauss–Hermite quadrature). Stored in
        canonical form (e.g. ``leaky_relu(0.01)``).
    quadrature_degree : int, optional
        Degree of the Gauss–Hermite rule of a quadrature activation (4 to 128; ``None``:
        32, and ``None`` after construction for the closed forms, which take none).
    width : int, optional
        ``standard`` only: the hidden width whose NTK :meth:`ntk` and :meth:`kernels` give
        (SP's NTK grows ∝ width; its NNGP does not depend on it). The finite networks take
        their width from :meth:`network`'s argument. Other parameterizations' kernels are
        width-independent limits (or, for ``mup``, none), so it must stay ``None`` there.

    Notes
    -----
    Kernel recursion (SPEC §2; Jacot et al. 2018, Lee et al. 2019, Arora et al. 2019):

    .. math::

        \Sigma^1 = a_1^2 v_1\, x\cdot x' + \beta^2, \qquad \Theta^1 = a_1^2\, x\cdot x' + \beta^2,

        \Sigma^{l+1} = \sigma_w^2\, \mathbb E[\phi(u)\phi(v)] + \beta^2, \quad
        \dot\Sigma^{l+1} = \sigma_w^2\, \mathbb E[\phi'(u)\phi'(v)], \quad
        \Theta^{l+1} = \Theta^l \dot\Sigma^{l+1} + \Sigma^{l+1},

    with :math:`(u, v) \sim \mathcal N(0, \Sigma^l)`. The NNGP is :math:`\Sigma^{L+1}` and the
    NTK :math:`\Theta^{L+1}`.

    Examples
    --------
    >>> import numpy as np, ntklab
    >>> arch = ntklab.Architecture(depth=2, parameterization="paper")
    >>> X = np.eye(3)
    >>> arch.ntk(X).shape
    (3, 3)
    """

    depth: int
    parameterization: str = "jacot"
    sigma_w: float | None = None
    sigma_b: float | None = None
    sigma_w1: float | None = None
    activation: str = "relu"
    quadrature_degree: int | None = None
    width: int | None = None
    _param: Parameterization = field(init=False, repr=False, compare=False)
    _activation: object = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        check_int(self.depth, "depth", minimum=1)
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization must be one of {sorted(PARAMETERIZATIONS)}; got {self.parameterization!r}"
            )
        param = PARAMETERIZATIONS[self.parameterization]
        object.__setattr__(self, "_param", param)
        sw = (
            param.sigma_w
            if self.sigma_w is None
            else check_float(self.sigma_w, "sigma_w", strict=True)
        )
        sb = param.sigma_b if self.sigma_b is None else check_float(self.sigma_b, "sigma_b")
        if param.first_layer_scale == "unit":
            if self.sigma_w1 is not None:
                raise ValueError(
                    f"sigma_w1 must be None for parameterization={self.parameterization!r} "
                    f"(its first layer has a1 = v1 = 1); got sigma_w1={self.sigma_w1!r}"
                )
            sw1 = None
        elif self.sigma_w1 is None:
            sw1 = float(sw)
        else:
            sw1 = check_float(self.sigma_w1, "sigma_w1", strict=True)
        object.__setattr__(self, "sigma_w", float(sw))
        object.__setattr__(self, "sigma_b", float(sb))
        object.__setattr__(self, "sigma_w1", sw1)
        act = activation_layer(self.activation, self.quadrature_degree)
        object.__setattr__(self, "_activation", act)
        object.__setattr__(self, "activation", "relu" if isinstance(act, ReLU) else act.name)
        object.__setattr__(self, "quadrature_degree", getattr(act, "degree", None))
        if self.width is not None:
            if param.scaling != "standard":
                raise ValueError(
                    f"width applies to parameterization='standard' only (its NTK depends on "
                    f"the width); drop it for {self.parameterization!r}"
                )
            object.__setattr__(self, "width", check_int(self.width, "width"))
        if param.scaling == "mup" and sb != 0.0:
            raise ValueError(
                f"sigma_b must be 0 for parameterization='mup' (its biases would need a width "
                f"multiplier of their own); got sigma_b={self.sigma_b!r}"
            )

    # -- the one definition -------------------------------------------------------------
    def layers(self, in_features: int, width: int | None = None) -> tuple:
        """The layer sequence for input dimension ``d``: Dense, (activation, Dense) × depth
        (the activation: :class:`ReLU`, or a layer object of :mod:`ntklab.activations`).

        ``width``: the hidden width, needed by ``standard`` and ``mup``, whose layers depend
        on it (module docstring); default :attr:`width`. The 1/√n parameterizations ignore it.
        """
        d = check_int(in_features, "in_features")
        a1, v1 = self._param.first_layer(d, self.sigma_w1)
        scaling = self._param.scaling
        if scaling == "ntk":
            out = [Dense(gain=a1**2 * d, weight_var=v1, bias=self.sigma_b)]
            for _ in range(self.depth):
                out += [
                    self._activation,
                    Dense(gain=self.sigma_w**2, weight_var=1.0, bias=self.sigma_b),
                ]
            return tuple(out)
        n = self.width if width is None else width
        if n is None:
            raise ValueError(
                f"parameterization={self.parameterization!r} has width-dependent layers: give "
                "the hidden width (Architecture(..., width=n) or ntk(X, width=n))"
            )
        n = check_int(n, "width")
        sw2 = self.sigma_w**2
        first = d * n if scaling == "mup" else d  # mup: multiplier sqrt(n) on the first layer
        out = [Dense(gain=first, weight_var=v1 * d / first, bias=self.sigma_b)]
        for _ in range(self.depth - 1):
            out += [self._activation, Dense(gain=n, weight_var=sw2 / n, bias=self.sigma_b)]
        last = 1 if scaling == "mup" else n  # mup: multiplier 1/sqrt(n) on the output layer
        out += [self._activation, Dense(gain=last, weight_var=sw2 / n, bias=self.sigma_b)]
        return tuple(out)

    @property
    def has_kernel_limit(self) -> bool:
        """Whether the parameterization has an analytic NTK (every one but ``mup``)."""
        return self._param.has_kernel_limit

    @property
    def assumed(self) -> dict[str, float]:
        """The constants SPEC marks *assumed* (the seed's values were lost), with the values
        this architecture uses for them (the defaults unless overridden); print in reports."""
        out = {}
        for name in self._param.assumed:
            out[name] = getattr(self, name)
        return out

    @property
    def name(self) -> str:
        """Short label in the seed's naming, e.g. ``NTKB2`` for ``paper`` depth 2 (another
        activation than ReLU appended: ``NTKB2-tanh``)."""
        base = f"NTK{self._param.letter}{self.depth}"
        return base if self.activation == "relu" else f"{base}-{self.activation}"

    # -- kernels ----------------------------------------------------------------------------
    def kernels(
        self, X, Z=None, *, block_rows: int | None = None, check_input: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(nngp, ntk)``, float64 arrays of shape (len(X), len(Z)), in one pass.

        Other activations than ReLU: the numpy block recursion of
        :func:`ntklab.activation_kernels.activation_network_kernels` (same memory, outputs
        exactly symmetric too). ReLU: one compiled, multi-threaded pass
        (:func:`ntklab.kernels.relu_network_kernels`)
        takes each cache-sized tile of the output through all layers, so memory is the
        two outputs and nothing else of size n × m. With ``Z=None`` only the tiles on and
        above the diagonal are computed (half the work) and mirrored below it, so both
        outputs are exactly symmetric. Threads: torch's setting for the calling thread.

        Parameters
        ----------
        X : array_like (n, d)
        Z : array_like (m, d), optional
            Defaults to ``X`` (then both outputs are exactly symmetric).
        block_rows : int, optional
            Edge of the tiles (rows, and columns) taken through all layers at a time;
            default 128. The result does not depend on it.
        check_input : bool, default True
            ``False`` skips the checks of ``X`` and ``Z`` (:mod:`ntklab._validation`): they
            are then finite float64 matrices with the same number of columns.
        """
        if Z is X:  # e.g. scikit-learn passes Y=X: the same inputs, so the symmetric path
            Z = None
        if check_input:
            X, Z, symmetric = check_pair(X, Z)
            Z = None if symmetric else Z
        self.check_kernel_limit()
        layers = self.layers(X.shape[1])  # Dense, (activation, Dense) x depth
        dense = [layer.kernel_coefficients for layer in layers if isinstance(layer, Dense)]
        if isinstance(self._activation, ReLU):
            return relu_network_kernels(X, Z, dense, tile=block_rows)
        from .activation_kernels import activation_network_kernels

        return activation_network_kernels(X, Z, dense, self._activation, block_rows=block_rows)

    def check_kernel_limit(self) -> None:
        """Raise ``ValueError`` (one line) if this architecture has no analytic kernel to
        compute: ``mup`` (no fixed NTK limit) or ``standard`` without a ``width``."""
        if not self._param.has_kernel_limit:
            raise ValueError(
                "parameterization='mup' has no fixed NTK (or NNGP) limit: its features move "
                "during training at any width; measure the empirical NTK "
                "(ntklab.empirical_ntk) of its networks instead"
            )
        if self._param.scaling == "standard" and self.width is None:
            raise ValueError(
                "parameterization='standard' has an NTK that grows with the width: give the "
                "hidden width, ntk(X, width=n) or Architecture(..., width=n)"
            )

    def at_width(self, width: int | None) -> Architecture:
        """This architecture with :attr:`width` set (``standard``) or unchanged (others,
        whose kernels do not depend on the width)."""
        if self._param.scaling != "standard" or width is None:
            return self
        return replace(self, width=width)

    def nngp(self, X, Z=None, *, width: int | None = None) -> np.ndarray:
        """NNGP kernel :math:`\\Sigma^{L+1}(X, Z)` (float64, shape (len(X), len(Z))).

        ``width``: ``standard``'s hidden width (its NNGP does not depend on it; any width
        gives the same matrix, so without one width 1 is used)."""
        arch = self.at_width(width)
        if arch._param.scaling == "standard" and arch.width is None:
            arch = replace(arch, width=1)
        return arch.kernels(X, Z)[0]

    def ntk(self, X, Z=None, *, width: int | None = None) -> np.ndarray:
        """Neural tangent kernel :math:`\\Theta^{L+1}(X, Z)` (float64, shape (len(X), len(Z))).

        ``width``: the hidden width of ``standard``, whose NTK grows ∝ width (the kernel map
        of its layers at that width, :meth:`layers`); ignored by the 1/√n parameterizations."""
        return self.at_width(width).kernels(X, Z)[1]

    # -- finite networks --------------------------------------------------------------------
    def network(
        self,
        width: int,
        *,
        seed: int,
        in_features: int,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device | None = None,
    ) -> FullyConnectedNetwork:
        """The finite network of SPEC §1 at hidden width ``width``.

        Parameters are drawn on the CPU from ``torch.Generator().manual_seed(seed)`` (so the
        same seed gives the same network on any device), then moved to ``device``
        (``None``: CUDA when available, else CPU). Output shape is (n,).
        """
        width = check_int(width, "width")
        seed = check_int(seed, "seed", minimum=0)
        dev = resolve_device(device)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        layers = self.layers(in_features, width)
        fans = [in_features] + [width] * self.depth + [1]
        modules, i = [], 0
        for layer in layers:
            if isinstance(layer, Dense):
                modules.append(layer.module(fans[i], fans[i + 1], generator=gen, dtype=dtype))
                i += 1
            else:
                modules.append(layer.module(width, width))
        net = FullyConnectedNetwork(
            modules, architecture=self, width=width, in_features=in_features, seed=seed
        )
        return net.to(dev)

    def draw_parameters(
        self, width: int, *, seed: int, in_features: int, dtype: torch.dtype = torch.float32
    ) -> dict[str, torch.Tensor]:
        """The parameters of ``network(width, seed=seed, in_features=in_features,
        dtype=dtype)``, on the CPU, without building its modules: the same numbers under the
        names of its ``named_parameters()`` (``layers.<k>.weight``, ``layers.<k>.bias``).
        For Monte-Carlo estimates over many networks (:mod:`ntklab.empirical`), where
        building each network's modules would cost more than drawing its parameters."""
        width = check_int(width, "width")
        seed = check_int(seed, "seed", minimum=0)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        fans = [in_features] + [width] * self.depth + [1]
        out: dict[str, torch.Tensor] = {}
        i = 0
        for k, layer in enumerate(self.layers(in_features, width)):
            if isinstance(layer, Dense):
                weight, bias = layer.draw(fans[i], fans[i + 1], generator=gen, dtype=dtype)
                out[f"layers.{k}.weight"] = weight
                if bias is not None:
                    out[f"layers.{k}.bias"] = bias
                i += 1
        return out
