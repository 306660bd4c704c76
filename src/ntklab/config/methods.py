"""The method tables of a study config as pydantic models: :class:`KernelSpec` (a kernel or
network family), :class:`GeneratorSpec` (``[data.generator]``) and :class:`MethodConfig`
(one ``[[methods]]`` entry), with the field types they share."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .._validation import check_lr
from ..activations import canonical_activation, check_degree
from ..architecture import Architecture
from ..parameterizations import PARAMETERIZATIONS
from ..published import K1_AMPLITUDE, K1_LENGTH_SCALE, PUBLISHED_KERNELS
from ..regimes import parse_lr_multiple
from ..training import default_record_every
from .kinds import COMMON_FIELDS, FROM_NETWORK, KINDS, PUBLISHED_NAMES, TUNED_KINDS

__all__ = [
    "StrictModel",
    "KernelSpec",
    "GeneratorSpec",
    "MethodConfig",
    "Param",
    "PublishedName",
    "Fraction",
    "MethodName",
    "PosInt",
    "PosFloat",
    "NonNegFloat",
]

Param = Literal["jacot", "arora", "paper", "standard", "mup"]
PublishedName = Literal[PUBLISHED_KERNELS]
Fraction = Annotated[float, Field(ge=0, lt=1)]
MethodName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+$", min_length=1, max_length=40)]
PosInt = Annotated[int, Field(ge=1)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class KernelSpec(StrictModel):
    """A kernel (or network) family: an :class:`~ntklab.Architecture` or a Laplacian/RBF kernel.

    Used for ``[data.generator]`` (kinds ntk, nngp, laplacian, rbf) and as the base of
    :class:`MethodConfig`. Fields that do not apply to ``kind`` must not be set.
    """

    kind: Literal[
        "network", "ntk", "nngp", "ntk_time", "laplacian", "rbf", "published",
        "gp_ntk", "gp_nngp", "gp_rbf", "gp_matern", "ntk_cv", "nngp_cv", "rbf_cv",
        "laplacian_cv", "random_forest", "gradient_boosting", "network_cv",
    ] = "ntk"  # fmt: skip
    depth: PosInt | None = None
    parameterization: Param | None = None
    sigma_w: PosFloat | None = None
    sigma_b: NonNegFloat | None = None
    sigma_w1: PosFloat | None = None
    activation: str | None = None
    quadrature_degree: int | None = None
    kernel: PublishedName | None = None
    normalization: Literal["published", "corrected"] | None = None
    amplitude: PosFloat | None = None
    length_scale: PosFloat | None = None
    ridge: NonNegFloat | None = None

    def _allowed(self) -> tuple[str, ...]:
        return KINDS[self.kind]

    @field_validator("activation")
    @classmethod
    def _activation(cls, value):
        # "relu" (the default) or an activation of ntklab.activations, in canonical form
        return None if value is None else canonical_activation(value)

    @field_validator("quadrature_degree")
    @classmethod
    def _degree(cls, value):
        return None if value is None else check_degree(value)

    @model_validator(mode="after")
    def _check_applicable(self):
        allowed = set(self._allowed()) | set(COMMON_FIELDS)
        wrong = sorted(f for f in self.model_fields_set if f not in allowed)
        if wrong:
            raise ValueError(
                f"{', '.join(wrong)} does not apply to kind '{self.kind}' "
                f"(it accepts: {', '.join(self._allowed())})"
            )
        return self

    def architecture(self) -> Architecture:
        """The :class:`~ntklab.Architecture` of an ntk/nngp/network/ntk_time spec (for
        ``standard``, at the spec's ``width``: its NTK depends on it; an nngp spec, whose
        kernel does not, at width 1 when it has none)."""
        width = None
        if self.parameterization == "standard":
            width = getattr(self, "width", None)
            if width is None and self.kind == "nngp":
                width = 1
        return Architecture(
            depth=self.depth,
            parameterization=self.parameterization,
            sigma_w=self.sigma_w,
            sigma_b=self.sigma_b,
            sigma_w1=self.sigma_w1,
            activation="relu" if self.activation is None else self.activation,
            quadrature_degree=self.quadrature_degree,
            width=width,
        )

    def published(self):
        """The :class:`~ntklab.published.PublishedKernel` of a ``published`` spec."""
        from ..published import PublishedKernel

        extra = {}
        if self.kernel == "K1":
            extra = {"amplitude": self.amplitude, "length_scale": self.length_scale}
        return PublishedKernel(self.kernel, normalization=self.normalization, **extra)

    @property
    def layers(self) -> int | None:
        """Hidden layers of the method's network or kernel (a published formula's from its
        name: ``NTKB2`` -> 2); None for the Laplacian, RBF and K1 kernels."""
        if self.depth is not None:
            return self.depth
        if self.kind == "published" and self.kernel != "K1":
            return int(self.kernel[-1])
        return None

    def _fill_defaults(self, *, parameterization: str | None) -> None:
        if "depth" in self._allowed():
            if self.depth is None:
                raise ValueError(f"depth is required for kind '{self.kind}' (e.g. depth = 1)")
            if self.parameterization is None:
                if parameterization is None:
                    raise ValueError(
                        f"parameterization is required for kind '{self.kind}' "
                        "(one of 'jacot', 'arora', 'paper', 'standard', 'mup')"
                    )
                self.parameterization = parameterization
            self._check_kernel_limit()
            arch = self.architecture()
            self.sigma_w, self.sigma_b = arch.sigma_w, arch.sigma_b
            if arch.quadrature_degree is not None:  # the declared degree, in the resolved config
                self.quadrature_degree = arch.quadrature_degree
        if self.kind == "published":
            self._published_defaults()
        elif "length_scale" in self._allowed() and self.length_scale is None:
            self.length_scale = 1.0
        if "ridge" in self._allowed() and self.ridge is None:
            self.ridge = 0.0

    def _check_kernel_limit(self) -> None:
        """An analytic kernel of ``mup`` (none) or of ``standard`` without its width: one line."""
        if self.kind not in ("ntk", "nngp", "ntk_time"):
            return
        if self.parameterization == "mup":
            raise ValueError(
                f"parameterization 'mup' has no fixed NTK limit, so kind '{self.kind}' cannot "
                "use it; use kind = 'network' (its empirical NTK and its drift are measured)"
            )
        if (
            self.parameterization == "standard"
            and self.kind != "nngp"
            and getattr(self, "width", None) is None
        ):
            raise ValueError(
                f"parameterization 'standard' has an NTK that grows with the width: kind "
                f"'{self.kind}' needs width = n (or network = 'NAME', whose width it takes)"
            )

    def _published_defaults(self) -> None:
        if self.kernel is None:
            raise ValueError(
                f"kernel is required for kind 'published' (one of {', '.join(PUBLISHED_NAMES)})"
            )
        if self.normalization is None:
            self.normalization = "published"
        if self.kernel == "K1":  # the seed's K1 = 2 exp(-|x - x'| / 6), SPEC §6
            self.amplitude = K1_AMPLITUDE if self.amplitude is None else self.amplitude
            self.length_scale = K1_LENGTH_SCALE if self.length_scale is None else self.length_scale
        else:
            wrong = [k for k in ("amplitude", "length_scale") if getattr(self, k) is not None]
            if wrong:
                raise ValueError(
                    f"{' and '.join(wrong)} apply to kernel 'K1' only (got kernel '{self.kernel}')"
                )


class GeneratorSpec(KernelSpec):
    """``[data.generator]``: the kernel of the Gaussian process that generates ``y``.

    Default: NTKB1 (``kind = "ntk"``, ``depth = 1``, ``parameterization = "paper"``), SPEC §4.
    """

    kind: Literal["ntk", "nngp", "laplacian", "rbf", "published"] = "ntk"

    def _allowed(self) -> tuple[str, ...]:
        fitting = ("ridge", "holdout_fraction", "network")
        return tuple(f for f in KINDS[self.kind] if f not in fitting)

    @model_validator(mode="after")
    def _defaults(self):
        if self.kind in ("ntk", "nngp"):
            if self.depth is None:
                self.depth = 1
        try:
            self._fill_defaults(parameterization="paper")
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return self


class MethodConfig(KernelSpec):
    """One ``[[methods]]`` entry: a predictor fitted on the training split of every trial."""

    name: MethodName
    kind: Literal[
        "network", "ntk", "nngp", "ntk_time", "laplacian", "rbf", "published",
        "gp_ntk", "gp_nngp", "gp_rbf", "gp_matern", "ntk_cv", "nngp_cv", "rbf_cv",
        "laplacian_cv", "random_forest", "gradient_boosting", "network_cv",
    ]  # fmt: skip
    label: str | None = None
    family: str | None = None
    trials: PosInt | None = None
    holdout_fraction: Fraction | None = None
    network: MethodName | None = None
    f0: Literal["network", "zero"] | None = None
    width: PosInt | None = None
    lr: float | str | None = None
    epochs: PosInt | None = None
    batch_size: PosInt | None = None
    centered: bool | None = None
    record_every: PosInt | None = None
    equivalence: bool | None = None
    max_kernel_points: PosInt | None = None
    lazy_scale: PosFloat | None = None
    track_lambda: bool | None = None
    max_depth: Annotated[int, Field(ge=1, le=10)] | None = None
    grid_widths: Annotated[list[PosInt], Field(min_length=1)] | None = None
    grid_lr_scales: Annotated[list[PosFloat], Field(min_length=1)] | None = None
    validation_fraction: Annotated[float, Field(gt=0, lt=1)] | None = None

    @field_validator("lr", mode="before")
    @classmethod
    def _lr(cls, value):
        if value is None:
            return None
        multiple = parse_lr_multiple(value)
        if multiple is not None:
            return f"x{multiple!r}"
        if isinstance(value, str) and value != "auto":
            raise ValueError(
                f"lr must be a positive number or 'auto' (or 'xC', C times the critical rate "
                f"m / lambda_max of the network's NTK at init, e.g. 'x0.5'); got {value!r}"
            )
        return check_lr(value)

    @property
    def lr_multiple(self) -> float | None:
        """C of ``lr = "xC"`` (C times the critical rate), else ``None``."""
        return parse_lr_multiple(self.lr)

    def _allowed(self) -> tuple[str, ...]:
        out = KINDS[self.kind]
        if self.network is not None:  # e.g. ntk_time's width: that of its network (for f0)
            out += tuple(f for f in FROM_NETWORK.get(self.kind, ()) if f not in out)
        if self.parameterization == "standard" and self.kind in ("ntk", "ntk_time"):
            out += () if "width" in out else ("width",)  # its NTK depends on the width
        return out

    @model_validator(mode="after")
    def _defaults(self):
        if self.max_depth is not None and self.depth is None:
            self.depth = 1  # depth is chosen in depth..max_depth
        self._fill_defaults(parameterization=None)
        if self.lazy_scale is not None and self.centered is False:
            raise ValueError(
                "lazy_scale trains the centered model alpha (f - f0); drop centered = false"
            )
        if self.max_depth is not None and self.max_depth < self.depth:
            raise ValueError(
                f"max_depth = {self.max_depth} is below depth = {self.depth} (the depth is "
                "chosen in depth..max_depth)"
            )
        if self.kind == "network":
            for req in ("width", "epochs"):
                if getattr(self, req) is None:
                    raise ValueError(f"{req} is required for kind 'network'")
            self.centered = bool(self.centered) or self.lazy_scale is not None
            self.equivalence = True if self.equivalence is None else self.equivalence
            self.max_kernel_points = self.max_kernel_points or 200
            self.record_every = self.record_every or default_record_every(self.epochs)
        if self.kind == "ntk_time":
            if self.epochs is None:
                raise ValueError("epochs is required for kind 'ntk_time' (the training time T)")
            if self.f0 == "network" and (self.network is None or self.width is None):
                raise ValueError(
                    "f0 = 'network' needs network = 'NAME' (the network method whose initial "
                    "function f0 is)"
                )
        if self.kind == "network_cv" and self.epochs is None:
            raise ValueError("epochs is required for kind 'network_cv' (the most it trains)")
        if self.kind in ("network", "ntk_time") and self.lr is None:
            self.lr = "auto"
        self._check_regime()
        if self.family is None:
            self.family = self._default_family()
        if self.label is None:
            self.label = self._default_label()
        return self

    def _check_regime(self) -> None:
        """Learning rates and lazy scale that the parameterization cannot use: one line."""
        if self.kind not in ("network", "ntk_time"):
            return
        if self.parameterization == "standard" and not isinstance(self.lr, str):
            raise ValueError(
                f"lr = {self.lr!r}: for parameterization 'standard' give the learning rate "
                "relative to the critical rate ('x0.5') or 'auto', since its NTK grows with "
                "the width"
            )
        if self.parameterization == "mup" and self.lr == "auto":
            raise ValueError(
                "lr = 'auto' needs the analytic NTK, which parameterization 'mup' has not; "
                "give a multiple of the critical rate ('x0.5') or a number"
            )
        if self.kind == "ntk_time" and self.lr_multiple is not None and self.network is None:
            raise ValueError(
                f"lr = {self.lr!r} on kind 'ntk_time' needs network = 'NAME' (the network whose "
                "NTK at init sets the critical rate)"
            )

    @property
    def letter(self) -> str:
        """The seed's letter of the parameterization (``NTKJ``'s J), or "" without one."""
        param = PARAMETERIZATIONS.get(self.parameterization or "")
        return param.letter if param else ""

    def _default_family(self) -> str:
        if self.kind in TUNED_KINDS:
            return self.kind
        if self.kind == "published":
            return self.kernel.rstrip("12") if self.kernel != "K1" else "K1"
        return {
            "network": "NN",
            "nngp": "GP",
            "ntk": f"NTK{self.letter}",
            "ntk_time": f"NTK{self.letter}T",
            "laplacian": "K1",
            "rbf": "RBF",
        }[self.kind]

    def _default_label(self) -> str:
        if self.kind in TUNED_KINDS:
            return self.name
        if self.kind == "published":
            return f"{self.kernel} (seed formula, {self.normalization})"
        if self.depth is None:
            return {"laplacian": "Laplacian (K1)", "rbf": "RBF"}[self.kind]
        layers = f"{self.depth} layer{'s' if self.depth != 1 else ''}"
        if self.activation not in (None, "relu"):
            layers += f", {self.activation}"
        base = {"network": "NN", "nngp": "GP", "ntk": f"NTK{self.letter}"}.get(self.kind)
        if base is None:  # ntk_time
            return f"NTK{self.letter} after {self.epochs} epochs ({layers})"
        return f"{base} ({layers})"

    def spec(self) -> dict[str, Any]:
        """The resolved settings of this method (None fields dropped)."""
        return self.model_dump(exclude_none=True)
