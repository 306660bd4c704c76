"""The schema of a study config: one pydantic model per table (:class:`StudyConfig`,
:class:`DataConfig`, :class:`MethodConfig`, ...), the keys each method kind accepts
(:data:`KINDS`), and validation errors as one line naming the key and the fix
(:func:`validate`)."""

from __future__ import annotations

import difflib
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .._validation import check_lr
from ..activations import canonical_activation, check_degree
from ..architecture import PARAMETERIZATIONS, Architecture
from ..data import DATASETS as DATASET_SIZES
from ..data import SEED_BOUNDS, n_test_from_fraction
from ..data import TASKS as DATASET_TASKS
from ..published import K1_AMPLITUDE, K1_LENGTH_SCALE, PUBLISHED_KERNELS
from ..regimes import parse_lr_multiple
from ..training import default_record_every

__all__ = [
    "ConfigError",
    "KernelSpec",
    "GeneratorSpec",
    "MethodConfig",
    "DataConfig",
    "StudySection",
    "ReportSection",
    "StudyConfig",
    "KINDS",
    "TUNED_KINDS",
    "GENERATOR_KINDS",
    "FROM_NETWORK",
    "PUBLISHED_NAMES",
    "flatten",
    "format_validation_error",
    "resolved_dict",
    "validate",
]


class ConfigError(ValueError):
    """A config that cannot be used; the message is one line naming the key and the fix."""


Param = Literal["jacot", "arora", "paper", "standard", "mup"]
PublishedName = Literal[PUBLISHED_KERNELS]
Fraction = Annotated[float, Field(ge=0, lt=1)]
MethodName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+$", min_length=1, max_length=40)]
PosInt = Annotated[int, Field(ge=1)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]

ARCH_FIELDS = (
    "depth", "parameterization", "sigma_w", "sigma_b", "sigma_w1", "activation",
    "quadrature_degree",
)  # fmt: skip
NETWORK_FIELDS = (
    "width",
    "lr",
    "epochs",
    "batch_size",
    "centered",
    "record_every",
    "equivalence",
    "max_kernel_points",
    "holdout_fraction",
    "lazy_scale",
    "track_lambda",
)
#: Keys each method kind accepts (besides name, kind, label, family, trials).
KINDS: dict[str, tuple[str, ...]] = {
    "network": ARCH_FIELDS + NETWORK_FIELDS,
    "ntk": ARCH_FIELDS + ("ridge", "holdout_fraction", "network"),
    "nngp": ARCH_FIELDS + ("ridge", "holdout_fraction", "network"),
    "ntk_time": ARCH_FIELDS + ("lr", "epochs", "batch_size", "holdout_fraction", "network", "f0"),
    "laplacian": ("length_scale", "ridge", "holdout_fraction"),
    "rbf": ("length_scale", "ridge", "holdout_fraction"),
    "published": (
        "kernel",
        "normalization",
        "amplitude",
        "length_scale",
        "ridge",
        "holdout_fraction",
    ),
    # tuned on the training rows (ntklab.tuned): real-data benchmarks
    "gp_ntk": ARCH_FIELDS + ("max_depth",),
    "gp_nngp": ARCH_FIELDS + ("max_depth",),
    "gp_rbf": ("length_scale",),
    "gp_matern": ("length_scale",),
    "ntk_cv": ARCH_FIELDS,
    "nngp_cv": ARCH_FIELDS,
    "rbf_cv": ("length_scale",),
    "laplacian_cv": ("length_scale",),
    "random_forest": (),
    "gradient_boosting": (),
    "network_cv": ARCH_FIELDS + ("epochs", "grid_widths", "grid_lr_scales", "validation_fraction"),
}
#: The kinds tuned on the training rows (:mod:`ntklab.tuned`); they also fit class labels.
TUNED_KINDS = (
    "gp_ntk", "gp_nngp", "gp_rbf", "gp_matern", "ntk_cv", "nngp_cv", "rbf_cv",
    "laplacian_cv", "random_forest", "gradient_boosting", "network_cv",
)  # fmt: skip
GENERATOR_KINDS = ("ntk", "nngp", "laplacian", "rbf", "published")
_COMMON = ("name", "kind", "label", "family", "trials")
#: Keys a kernel method with ``network = "NAME"`` takes from that network method.
FROM_NETWORK: dict[str, tuple[str, ...]] = {
    "ntk": ARCH_FIELDS,
    "nngp": ARCH_FIELDS,
    "ntk_time": ARCH_FIELDS + ("lr", "epochs", "batch_size", "holdout_fraction", "width"),
}
#: The seed's nine published kernel formulas (SPEC §6), by name.
PUBLISHED_NAMES = PUBLISHED_KERNELS


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class KernelSpec(_Base):
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
        allowed = set(self._allowed()) | set(_COMMON)
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


class DataConfig(_Base):
    """``[data]``: simulated inputs on the unit sphere with GP targets, or a real data set."""

    dataset: Literal[
        "simulated", "diabetes", "linnerud", "digits", "breast_cancer", "wine", "iris"
    ] = "simulated"
    folds: Annotated[int, Field(ge=2)] | None = None
    max_rows: PosInt | None = None
    n: PosInt | None = None
    d: PosInt | None = None
    n_train: PosInt | None = None
    test_fraction: Annotated[float, Field(gt=0, lt=1)] | None = None
    noise: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    inputs: Literal["normal", "uniform"] | None = None
    bounds: list[float] | None = None
    generator: GeneratorSpec | None = None

    @field_validator("noise")
    @classmethod
    def _finite_noise(cls, value):
        if not math.isfinite(value):
            raise ValueError(f"noise must be a finite number >= 0; got {value!r}")
        return value

    @model_validator(mode="after")
    def _check(self):
        if self.bounds is not None:
            if self.inputs != "uniform":
                raise ValueError("bounds apply to inputs = 'uniform' only")
            if len(self.bounds) != 2 or not all(math.isfinite(b) for b in self.bounds):
                raise ValueError(
                    f"bounds must be two finite numbers [low, high]; got {self.bounds}"
                )
            if not self.bounds[0] < self.bounds[1]:
                raise ValueError(
                    f"bounds = {self.bounds}: the low bound must be below the high one "
                    f"(e.g. bounds = {list(SEED_BOUNDS)})"
                )
        elif self.inputs == "uniform":
            self.bounds = list(SEED_BOUNDS)  # the seed's Uniform(-5, 7), SPEC §6
        if self.dataset == "simulated":
            for req in ("n", "d"):
                if getattr(self, req) is None:
                    raise ValueError(f"{req} is required for simulated data (data.{req} = ...)")
            if self.generator is None:
                self.generator = GeneratorSpec()
        else:
            if self.d is not None or self.generator is not None:
                raise ValueError(
                    f"d and generator do not apply to dataset = '{self.dataset}' (they come from the data set)"
                )
            if self.noise:
                raise ValueError(f"noise does not apply to dataset = '{self.dataset}'")
            size = DATASET_SIZES[self.dataset]
            if self.n is not None and self.n > size:
                raise ValueError(
                    f"n = {self.n} but the {self.dataset} data set has only {size} rows"
                )
        total = self.n if self.n is not None else DATASET_SIZES[self.dataset]
        if self.max_rows is not None:
            if self.folds is None or self.n is not None:
                raise ValueError(
                    "max_rows applies with folds and without n (a random subset of at most "
                    "max_rows rows per repeat, so one value fits every data set of a sweep)"
                )
            total = min(total, self.max_rows)
        if self.folds is not None:  # repeated k-fold cross-validation: no fixed split
            if self.dataset == "simulated":
                raise ValueError("folds apply to a real data set (data.dataset = 'diabetes', ...)")
            if self.n_train is not None or self.test_fraction is not None:
                raise ValueError(
                    "n_train and test_fraction do not apply with folds (each fold is the test "
                    "set once); remove them"
                )
            if total < self.folds:
                raise ValueError(
                    f"folds = {self.folds} but the {self.dataset} data have only {total} rows; "
                    f"use at most {total} folds"
                )
            return self
        if self.test_fraction is not None:
            n_train = total - n_test_from_fraction(total, self.test_fraction)
            if self.n_train is not None and self.n_train != n_train:
                raise ValueError(
                    f"n_train = {self.n_train} and test_fraction = {self.test_fraction} disagree "
                    f"(the fraction leaves {n_train} training rows); give only one of them"
                )
            if n_train < 1:
                raise ValueError(
                    f"test_fraction = {self.test_fraction} leaves no training rows of n = {total}"
                )
            self.n_train = n_train
        if self.n_train is None:
            raise ValueError("n_train (or test_fraction) is required, e.g. n_train = 800")
        if self.n_train >= total:
            raise ValueError(
                f"n_train = {self.n_train} must be smaller than n = {total} (the rest is the test set)"
            )
        return self


class StudySection(_Base):
    """``[study]``: name, one-line description, trials per sweep point, study seed."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$", min_length=1)] = "study"
    description: str = ""
    trials: PosInt = 10
    seed: Annotated[int, Field(ge=0)] = 0
    reduced_from: str | None = None


class ReportSection(_Base):
    """``[report]``: how the report decides that two methods tie (not part of the config hash).

    Two methods are called *equivalent* only by an equivalence test (two one-sided paired
    t-tests, Holm-corrected across the comparisons of a table) with the region
    :math:`|\bar d| < \text{margin} \times` the reference method's mean RMSE.
    """

    equivalence_margin: Annotated[float, Field(gt=0, lt=1)] = 0.02
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.05
    #: Phase diagram: the nn_lin_rel (||f_NN - f_lin|| / ||f_lin||) above which the NTK no
    #: longer describes the network (the heatmaps' contour, the lazy/rich crossover).
    phase_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.10
    #: Phase diagram: a fitted exponent reproduces theory's when |b - b_theory| < this.
    phase_exponent_margin: Annotated[float, Field(gt=0, lt=1)] = 0.15


class StudyConfig(_Base):
    """A whole study config (one sweep point, or the base config with its ``sweep``)."""

    study: StudySection = StudySection()
    data: DataConfig
    methods: Annotated[list[MethodConfig], Field(min_length=1)]
    sweep: dict[str, list[Any]] = {}
    report: ReportSection = ReportSection()

    @field_validator("sweep", mode="before")
    @classmethod
    def _flatten_sweep(cls, value):
        if not isinstance(value, dict):
            return value
        return flatten(value)

    @model_validator(mode="after")
    def _check(self):
        names = [m.name for m in self.methods]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"method names must be unique; repeated: {', '.join(dupes)}")
        for key, values in self.sweep.items():
            if not values:
                raise ValueError(f"sweep.{key!r} is an empty list; give at least one value")
        if DATASET_TASKS.get(self.data.dataset) == "classification":
            plain = [m.name for m in self.methods if m.kind not in TUNED_KINDS]
            if plain:
                raise ValueError(
                    f"data.dataset = '{self.data.dataset}' has class labels, which methods "
                    f"{', '.join(plain)} would regress as numbers; use the tuned kinds "
                    f"({', '.join(TUNED_KINDS)}), which fit one-hot targets"
                )
        return self

    def method(self, name: str) -> MethodConfig:
        for m in self.methods:
            if m.name == name:
                return m
        raise KeyError(name)


def flatten(tree: dict, prefix: str = "") -> dict:
    """Nested dicts -> {dotted key: value} (lists kept as values)."""
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


# ---- errors -------------------------------------------------------------------------------
def _model_at(loc: tuple, raw: Any) -> tuple[type[BaseModel] | None, str]:
    """Walk ``loc`` from :class:`StudyConfig`; return (model at the parent, readable path)."""
    model: Any = StudyConfig
    node: Any = raw
    parts: list[str] = []
    for item in loc[:-1]:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node):
                node = node[item]
                if isinstance(node, dict) and isinstance(node.get("name"), str):
                    label += f" ({node['name']})"
            parts.append(label)
            continue
        parts.append(("." if parts else "") + str(item))
        node = node.get(item) if isinstance(node, dict) else None
        field = model.model_fields.get(item) if model is not None else None
        model = _field_model(field.annotation) if field is not None else None
    return model, "".join(parts)


def _field_model(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _field_model(arg)
        if found is not None:
            return found
    return None


def format_validation_error(exc: ValidationError, raw: Any) -> str:
    """One line for the first error of ``exc``: the key path, what is wrong, the fix."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    loc = tuple(err["loc"])
    model, parent = _model_at(loc, raw) if loc else (None, "")
    key = loc[-1] if loc else ""
    path = f"{parent}.{key}" if parent and isinstance(key, str) else f"{parent}{key}"
    if isinstance(key, int):
        path = f"{parent}[{key}]"
    if err["type"] == "extra_forbidden":
        valid = list(model.model_fields) if model is not None else []
        where = parent or "the top level"
        close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"
        return f"unknown key '{key}' in {where}{hint}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
        return f"{path}: {msg}" if path else msg
    if err["type"] == "missing":
        return f"{path} is required"
    got = err.get("input")
    shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
    return f"{path}: {msg[0].lower()}{msg[1:]} (got {shown})"


def resolved_dict(config: StudyConfig) -> dict[str, Any]:
    out = config.model_dump(exclude_none=True)
    out["methods"] = [m.spec() for m in config.methods]
    return out


def validate(raw: dict, where: str) -> StudyConfig:
    """``raw`` as a :class:`StudyConfig`, or :class:`ConfigError` (``where: key: what, fix``)."""
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {format_validation_error(exc, raw)}") from None
