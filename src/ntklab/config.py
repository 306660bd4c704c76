r"""Study configuration: TOML files and presets, validated into a :class:`StudyPlan`.

A study config has four parts (see ``ntklab presets`` and ``src/ntklab/presets/*.toml``)::

    [study]                      # name, description, trials, seed
    [data]                       # n, d, n_train, noise, or dataset = "diabetes"
    [data.generator]             # the kernel whose Gaussian process generates y
    [[methods]]                  # name, kind and the kind's settings (one table per method)
    [sweep]                      # optional: dotted field -> list of values (cartesian product)

Method kinds and the keys each accepts (anything else is an error):

============ ==========================================================================
kind         keys (besides ``name``, ``kind``, ``label``, ``family``, ``trials``)
============ ==========================================================================
network      depth, parameterization, sigma_w, sigma_b, sigma_w1, width, lr, epochs,
             batch_size, centered, record_every, equivalence, max_kernel_points,
             holdout_fraction
ntk, nngp    depth, parameterization, sigma_w, sigma_b, sigma_w1, ridge, holdout_fraction,
             network (take depth, parameterization and sigmas from that network method)
ntk_time     depth, parameterization, sigma_w, sigma_b, sigma_w1, lr, epochs, batch_size,
             holdout_fraction, network, f0 (the NTK prediction after
             ``epochs × ⌈m_fit / batch_size⌉`` gradient steps, SPEC §3 and §6 "time
             matching"; with ``network = "NN1"`` everything but ``f0`` comes from NN1, and
             ``f0 = "network"`` starts from the initial function of the very network NN1
             trains in that trial; ``f0 = "zero"``, the default, is the mean over
             initializations)
laplacian    length_scale, ridge, holdout_fraction
rbf          length_scale, ridge, holdout_fraction
published    kernel (one of the seed's nine formulas, SPEC §6: GP1 GP2 NTKA1 NTKA2 NTKB1
             NTKB2 NTKJ1 NTKJ2 K1), normalization ("published" or "corrected"),
             amplitude and length_scale (K1 only), ridge, holdout_fraction
============ ==========================================================================

``ridge`` is the λ of kernel ridge regression, :math:`k(x_*, X)(K + \lambda I)^{-1} y`: the
same λ as ``alpha`` of :class:`~ntklab.KernelRegressor` (the config key keeps its name);
0, the default, interpolates the training data (a kernel matrix that then needs more than
1e-6 × its mean diagonal of jitter makes the method fail, asking for a ridge).

``trials`` caps the trials a method runs in (trials 0 .. trials−1), so that an expensive
method can run in fewer trials than the cheap ones; ``holdout_fraction = h`` fits a method on
the first :math:`m - \lfloor h m \rfloor` training rows only (Keras's ``validation_split``,
which the seed's networks used: SPEC §6). ``[data.generator]`` accepts the kinds ntk, nngp,
laplacian, rbf and published.

Sweep keys are dotted paths: ``"data.noise"``, ``"methods.NN1.width"`` (one method, by name)
or ``"methods.*.width"`` (every method whose kind accepts ``width``). Nested TOML tables
(``[sweep.methods.NN1]`` with ``width = [...]``) are the same thing. The sweep is the
cartesian product of all lists, in the order the keys appear.

``--set key=value`` overrides (:func:`apply_override`) use the same dotted paths
(``study.trials=5``, ``methods.NN2.epochs=100``, ``methods.*.width=256``,
``data.generator.depth=2``, ``sweep.methods.*.width=[64,128]``); the value is parsed as a
TOML value (``true``, ``0.5``, ``"auto"``, ``[1, 2]``); a bare word is a string.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import itertools
import json
import math
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._validation import check_lr
from .architecture import PARAMETERIZATIONS, Architecture
from .data import DATASETS as DATASET_SIZES
from .data import n_test_from_fraction
from .training import default_record_every

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ConfigError",
    "KernelSpec",
    "MethodConfig",
    "DataConfig",
    "StudySection",
    "StudyConfig",
    "Point",
    "StudyPlan",
    "KINDS",
    "load_config",
    "load_raw",
    "plan_study",
    "parse_override",
    "apply_override",
    "list_presets",
    "preset_names",
]


class ConfigError(ValueError):
    """A config that cannot be used; the message is one line naming the key and the fix."""


Param = Literal["jacot", "arora", "paper"]
PublishedName = Literal["GP1", "GP2", "NTKA1", "NTKA2", "NTKB1", "NTKB2", "NTKJ1", "NTKJ2", "K1"]
Fraction = Annotated[float, Field(ge=0, lt=1)]
MethodName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+$", min_length=1, max_length=40)]
PosInt = Annotated[int, Field(ge=1)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]

ARCH_FIELDS = ("depth", "parameterization", "sigma_w", "sigma_b", "sigma_w1")
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
}
GENERATOR_KINDS = ("ntk", "nngp", "laplacian", "rbf", "published")
_COMMON = ("name", "kind", "label", "family", "trials")
#: Keys a kernel method with ``network = "NAME"`` takes from that network method.
FROM_NETWORK: dict[str, tuple[str, ...]] = {
    "ntk": ARCH_FIELDS,
    "nngp": ARCH_FIELDS,
    "ntk_time": ARCH_FIELDS + ("lr", "epochs", "batch_size", "holdout_fraction", "width"),
}
#: The seed's nine published kernel formulas (SPEC §6), by name.
PUBLISHED_NAMES = ("GP1", "GP2", "NTKA1", "NTKA2", "NTKB1", "NTKB2", "NTKJ1", "NTKJ2", "K1")


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class KernelSpec(_Base):
    """A kernel (or network) family: an :class:`~ntklab.Architecture` or a Laplacian/RBF kernel.

    Used for ``[data.generator]`` (kinds ntk, nngp, laplacian, rbf) and as the base of
    :class:`MethodConfig`. Fields that do not apply to ``kind`` must not be set.
    """

    kind: Literal["network", "ntk", "nngp", "ntk_time", "laplacian", "rbf", "published"] = "ntk"
    depth: PosInt | None = None
    parameterization: Param | None = None
    sigma_w: PosFloat | None = None
    sigma_b: NonNegFloat | None = None
    sigma_w1: PosFloat | None = None
    kernel: PublishedName | None = None
    normalization: Literal["published", "corrected"] | None = None
    amplitude: PosFloat | None = None
    length_scale: PosFloat | None = None
    ridge: NonNegFloat | None = None

    def _allowed(self) -> tuple[str, ...]:
        return KINDS[self.kind]

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
        """The :class:`~ntklab.Architecture` of an ntk/nngp/network/ntk_time spec."""
        return Architecture(
            depth=self.depth,
            parameterization=self.parameterization,
            sigma_w=self.sigma_w,
            sigma_b=self.sigma_b,
            sigma_w1=self.sigma_w1,
        )

    def published(self):
        """The :class:`~ntklab.published.PublishedKernel` of a ``published`` spec."""
        from .published import PublishedKernel

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
                        "(one of 'jacot', 'arora', 'paper')"
                    )
                self.parameterization = parameterization
            arch = self.architecture()
            self.sigma_w, self.sigma_b = arch.sigma_w, arch.sigma_b
        if self.kind == "published":
            self._published_defaults()
        elif "length_scale" in self._allowed() and self.length_scale is None:
            self.length_scale = 1.0
        if "ridge" in self._allowed() and self.ridge is None:
            self.ridge = 0.0

    def _published_defaults(self) -> None:
        if self.kernel is None:
            raise ValueError(
                f"kernel is required for kind 'published' (one of {', '.join(PUBLISHED_NAMES)})"
            )
        if self.normalization is None:
            self.normalization = "published"
        if self.kernel == "K1":  # the seed's K1 = 2 exp(-|x - x'| / 6), SPEC §6
            self.amplitude = 2.0 if self.amplitude is None else self.amplitude
            self.length_scale = 6.0 if self.length_scale is None else self.length_scale
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
    kind: Literal["network", "ntk", "nngp", "ntk_time", "laplacian", "rbf", "published"]
    label: str | None = None
    family: str | None = None
    trials: PosInt | None = None
    holdout_fraction: Fraction | None = None
    network: MethodName | None = None
    f0: Literal["network", "zero"] | None = None
    width: PosInt | None = None
    lr: float | Literal["auto"] | None = None
    epochs: PosInt | None = None
    batch_size: PosInt | None = None
    centered: bool | None = None
    record_every: PosInt | None = None
    equivalence: bool | None = None
    max_kernel_points: PosInt | None = None

    @field_validator("lr", mode="before")
    @classmethod
    def _lr(cls, value):
        return None if value is None else check_lr(value)

    def _allowed(self) -> tuple[str, ...]:
        if self.network is not None:  # e.g. ntk_time's width: that of its network (for f0)
            extra = tuple(f for f in FROM_NETWORK.get(self.kind, ()) if f not in KINDS[self.kind])
            return KINDS[self.kind] + extra
        return KINDS[self.kind]

    @model_validator(mode="after")
    def _defaults(self):
        self._fill_defaults(parameterization=None)
        if self.kind == "network":
            for req in ("width", "epochs"):
                if getattr(self, req) is None:
                    raise ValueError(f"{req} is required for kind 'network'")
            self.centered = bool(self.centered)
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
        if self.kind in ("network", "ntk_time") and self.lr is None:
            self.lr = "auto"
        if self.family is None:
            self.family = self._default_family()
        if self.label is None:
            self.label = self._default_label()
        return self

    @property
    def letter(self) -> str:
        """The seed's letter of the parameterization (``NTKJ``'s J), or "" without one."""
        param = PARAMETERIZATIONS.get(self.parameterization or "")
        return param.letter if param else ""

    def _default_family(self) -> str:
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
        if self.kind == "published":
            return f"{self.kernel} (seed formula, {self.normalization})"
        if self.depth is None:
            return {"laplacian": "Laplacian (K1)", "rbf": "RBF"}[self.kind]
        layers = f"{self.depth} layer{'s' if self.depth != 1 else ''}"
        base = {"network": "NN", "nngp": "GP", "ntk": f"NTK{self.letter}"}.get(self.kind)
        if base is None:  # ntk_time
            return f"NTK{self.letter} after {self.epochs} epochs ({layers})"
        return f"{base} ({layers})"

    def spec(self) -> dict[str, Any]:
        """The resolved settings of this method (None fields dropped)."""
        return self.model_dump(exclude_none=True)


class DataConfig(_Base):
    """``[data]``: simulated inputs on the unit sphere with GP targets, or a real data set."""

    dataset: Literal["simulated", "diabetes"] = "simulated"
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
                    "(e.g. bounds = [-5.0, 7.0])"
                )
        elif self.inputs == "uniform":
            self.bounds = [-5.0, 7.0]  # the seed's Uniform(-5, 7), SPEC §6
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
        return _flatten(value)

    @model_validator(mode="after")
    def _check(self):
        names = [m.name for m in self.methods]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"method names must be unique; repeated: {', '.join(dupes)}")
        for key, values in self.sweep.items():
            if not values:
                raise ValueError(f"sweep.{key!r} is an empty list; give at least one value")
        return self

    def method(self, name: str) -> MethodConfig:
        for m in self.methods:
            if m.name == name:
                return m
        raise KeyError(name)


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, path + "."))
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


# ---- loading ------------------------------------------------------------------------------
def preset_names() -> list[str]:
    """Names of the presets shipped in ``ntklab/presets``."""
    folder = resources.files("ntklab") / "presets"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def _read_toml(text: str, where: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: TOML syntax error: {exc}") from None


def load_raw(source: str | Path, *, _chain: tuple[str, ...] = ()) -> tuple[dict, str]:
    """Read a preset name or a TOML file into a dict. Returns ``(raw, where)``.

    A config may start from another one: ``extends = "seed"`` (a preset name, or a path
    relative to the extending file) takes that config, merges this file's tables into it
    (tables key by key, ``[[methods]]`` appended, other values replaced) and then applies
    the dotted overrides of its ``[set]`` table, exactly as ``--set`` would
    (``"methods.*.normalization" = "corrected"``).
    """
    raw, where = _load_one(source)
    if "extends" not in raw:
        return raw, where
    base = raw.pop("extends")
    overrides = raw.pop("set", {})
    if not isinstance(base, str):
        raise ConfigError(f"{where}: extends must be a preset name or a file path; got {base!r}")
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}: [set] must be a table of dotted keys = values")
    if where in _chain or len(_chain) > 8:
        raise ConfigError(f"{where}: extends forms a cycle ({' -> '.join(_chain + (where,))})")
    if where != f"preset {source}" and not Path(base).is_absolute() and base not in preset_names():
        base = str(Path(where).parent / base)
    merged, _ = load_raw(base, _chain=_chain + (where,))
    _merge(merged, raw)
    for key, value in overrides.items():
        apply_override(merged, key, value, where=f"{where}: [set]")
    return merged, where


def _merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        old = into.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            _merge(old, value)
        elif key == "methods" and isinstance(old, list) and isinstance(value, list):
            old.extend(value)
        else:
            into[key] = value


def _load_one(source: str | Path) -> tuple[dict, str]:
    source = str(source)
    path = Path(source)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        return _read_toml(text, str(path)), str(path)
    names = preset_names()
    if source in names:
        text = (resources.files("ntklab") / "presets" / f"{source}.toml").read_text("utf-8")
        return _read_toml(text, f"preset {source}"), f"preset {source}"
    if path.suffix == ".toml" or "/" in source or path.exists():
        raise ConfigError(f"config file not found: {source}")
    close = difflib.get_close_matches(source, names, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(
        f"unknown preset '{source}'; {hint}available presets: {', '.join(names)} "
        "(or pass the path of a .toml file)"
    )


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` (value as a TOML value; a bare word is a string)."""
    if "=" not in text:
        raise ConfigError(
            f"--set {text!r} must look like key=value (e.g. --set methods.NN1.width=256)"
        )
    key, value = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: the key must be a dotted path such as data.n_train")
    value = value.strip()
    if not value:
        raise ConfigError(f"--set {text!r}: the value is empty")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        if any(c in value for c in "[]{}\"'=,"):
            raise ConfigError(f"--set {text!r}: cannot parse the value {value!r} as TOML") from None
        parsed = value
    return key, parsed


def _method_targets(raw: dict, name: str, field: str, where: str) -> list[dict]:
    methods = raw.get("methods")
    if not isinstance(methods, list):
        raise ConfigError(f"{where}: the config has no [[methods]]")
    if name == "*":
        targets = [
            m for m in methods if isinstance(m, dict) and field in KINDS.get(m.get("kind"), ())
        ]
        if not targets:
            raise ConfigError(f"{where}: no method accepts '{field}'")
        return targets
    for m in methods:
        if isinstance(m, dict) and m.get("name") == name:
            return [m]
    names = [m.get("name") for m in methods if isinstance(m, dict)]
    close = difflib.get_close_matches(name, [n for n in names if isinstance(n, str)], n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(
        f"{where}: no method named '{name}'; {hint}methods: {', '.join(map(str, names))}"
    )


def apply_override(raw: dict, key: str, value: Any, *, where: str = "--set") -> None:
    """Set the dotted ``key`` in ``raw`` (in place); ``methods.NAME.x`` / ``methods.*.x`` too."""
    parts = key.split(".")
    where = f"{where} {key}"
    if parts[0] == "sweep" and len(parts) > 1:
        raw.setdefault("sweep", {})
        if not isinstance(raw["sweep"], dict):
            raise ConfigError(f"{where}: sweep must be a table")
        raw["sweep"] = _flatten(raw["sweep"])
        if not isinstance(value, list):
            value = [value]
        raw["sweep"][".".join(parts[1:])] = value
        return
    if parts[0] == "methods":
        if len(parts) != 3:
            raise ConfigError(
                f"{where}: method keys look like methods.NAME.FIELD or methods.*.FIELD"
            )
        for m in _method_targets(raw, parts[1], parts[2], where):
            m[parts[2]] = value
        return
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: {part} is not a table")
        node = child
    node[parts[-1]] = value


@dataclass(frozen=True)
class Point:
    """One sweep point: its index, the swept values and the resolved config."""

    index: int
    params: dict[str, Any]
    config: StudyConfig


@dataclass(frozen=True)
class StudyPlan:
    """A validated study: base config, sweep points, hash and the *assumed* values.

    Attributes
    ----------
    config : StudyConfig
        The resolved base config (with its ``sweep``).
    points : tuple of Point
        ``(Point(0, {}, config),)`` without a sweep.
    source : str
        Where the config came from (``preset paper`` or a file path).
    """

    config: StudyConfig
    points: tuple[Point, ...]
    source: str

    @property
    def name(self) -> str:
        return self.config.study.name

    @property
    def trials(self) -> int:
        return self.config.study.trials

    @property
    def resolved(self) -> dict[str, Any]:
        """The resolved config as a JSON-compatible dict (defaults filled in)."""
        return resolved_dict(self.config)

    only: tuple[str, ...] | None = None

    @property
    def default_dir(self) -> str:
        """``<name>``, or ``<name>-only-<names>`` for an ``--only`` plan (names joined by
        ``+``; a short hash of them when that would exceed 80 characters)."""
        if self.only is None:
            return self.name
        joined = "+".join(self.only)
        if len(joined) > 80:
            joined = f"{len(self.only)}methods-" + hashlib.sha256(joined.encode()).hexdigest()[:8]
        return f"{self.name}-only-{joined}"

    @property
    def config_hash(self) -> str:
        """sha256 of the resolved config without ``study.trials``, ``study.description`` and
        ``[report]``.

        Leaving out the number of trials lets ``--trials`` extend an existing run (trial i's
        data and seeds do not depend on the total); ``[report]`` only changes how stored
        results are read.
        """
        body = copy.deepcopy(self.resolved)
        body["study"].pop("trials", None)
        body["study"].pop("description", None)
        body.pop("report", None)
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    @property
    def assumed(self) -> dict[str, Any]:
        """{dotted name: value} of every value SPEC marks *assumed* that the run uses."""
        cfg = self.config
        out: dict[str, Any] = {}
        data = cfg.data
        if data.generator is not None and data.generator.kind == "published":
            return out  # the seed's released protocol: SPEC §6 states every value
        out["data.n_train"] = data.n_train
        gen = data.generator
        if gen is not None:
            if gen.kind in ("ntk", "nngp"):
                for k, v in gen.architecture().assumed.items():
                    out[f"data.generator.{k}"] = v
            else:
                out["data.generator.length_scale"] = gen.length_scale
        for m in cfg.methods:
            base = f"methods.{m.name}"
            if m.depth is not None:
                for k, v in m.architecture().assumed.items():
                    out[f"{base}.{k}"] = v
            if m.kind == "network":
                for k in ("width", "lr", "epochs", "parameterization"):
                    out[f"{base}.{k}"] = getattr(m, k)
            if m.kind == "ntk_time":
                out[f"{base}.lr"] = m.lr
                out[f"{base}.epochs"] = m.epochs
            if m.kind in ("laplacian", "rbf"):
                out[f"{base}.length_scale"] = m.length_scale
        for key, values in cfg.sweep.items():
            out[f"sweep.{key}"] = values
        return out

    @functools.cached_property
    def reductions(self) -> list[str]:
        """What this plan changes against the preset named in ``study.reduced_from``.

        One line per difference, ``"methods.NN2.width: 10000 -> 256"``, computed from the two
        resolved configs (so it cannot go stale), with a method's trials counted as its
        ``trials`` cap or else the study's. Empty without ``reduced_from``.
        """
        ref_name = self.config.study.reduced_from
        if ref_name is None:
            return []
        ref = load_config(ref_name).config
        ours = self.config
        lines = []

        def diff(prefix: str, a: dict, b: dict) -> None:
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    lines.append(f"{prefix}{key}: {_show(a.get(key))} -> {_show(b.get(key))}")

        diff("data.", _flat(ref.data.model_dump(exclude_none=True)),
             _flat(ours.data.model_dump(exclude_none=True)))  # fmt: skip
        mine = {m.name: m for m in ours.methods}
        skip = {"name", "label", "trials"}
        for m in ref.methods:
            if m.name not in mine:
                lines.append(f"methods.{m.name}: not run")
                continue
            o = mine[m.name]
            diff(f"methods.{m.name}.", {k: v for k, v in m.spec().items() if k not in skip},
                 {k: v for k, v in o.spec().items() if k not in skip})  # fmt: skip
            before, after = m.trials or ref.study.trials, o.trials or ours.study.trials
            if before != after:
                lines.append(f"methods.{m.name}.trials: {before} -> {after}")
        for name in mine:
            if name not in {m.name for m in ref.methods}:
                lines.append(f"methods.{name}: added")
        return lines


def _flat(tree: dict, prefix: str = "") -> dict:
    """Nested dicts -> {dotted key: value} (lists kept as values)."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _show(value: Any) -> str:
    return "unset" if value is None else json.dumps(value)


def resolved_dict(config: StudyConfig) -> dict[str, Any]:
    out = config.model_dump(exclude_none=True)
    out["methods"] = [m.spec() for m in config.methods]
    return out


def _validate(raw: dict, where: str) -> StudyConfig:
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {format_validation_error(exc, raw)}") from None


def resolve_networks(raw: dict, where: str) -> None:
    """Fill, in place, the keys a method with ``network = "NAME"`` takes from that network.

    A kernel method's ``network`` names a ``network`` method of the same config; its
    :data:`FROM_NETWORK` keys (the architecture; for ``ntk_time`` also lr, epochs,
    batch_size, holdout_fraction and width) are copied from it, so the kernel is the
    network's own and an override of the network (``--set methods.NN1.width=...``, a sweep)
    moves both. Setting such a key on the kernel method to another value is an error.
    """
    methods = raw.get("methods")
    if not isinstance(methods, list):
        return
    by_name = {m.get("name"): m for m in methods if isinstance(m, dict)}
    for i, m in enumerate(methods):
        if not isinstance(m, dict) or m.get("network") is None:
            continue
        here = f"{where}: methods[{i}] ({m.get('name')}).network"
        keys = FROM_NETWORK.get(m.get("kind"))
        if keys is None:
            raise ConfigError(f"{here}: network applies to kinds {', '.join(FROM_NETWORK)} only")
        ref = by_name.get(m["network"])
        if not isinstance(ref, dict) or ref.get("kind") != "network":
            nets = [
                str(n)
                for n, v in by_name.items()
                if isinstance(v, dict) and v.get("kind") == "network"
            ]
            raise ConfigError(
                f"{here} = {m['network']!r} names no network method; network methods: "
                f"{', '.join(nets) or 'none'}"
            )
        for key in keys:
            if key in ref:
                if key in m and m[key] != ref[key]:
                    raise ConfigError(
                        f"{here}: {key} = {m[key]!r} but network {m['network']!r} has "
                        f"{key} = {ref[key]!r}; set it on the network (methods.{m['network']}.{key}) "
                        "and drop it here"
                    )
                m[key] = copy.deepcopy(ref[key])


def _select(raw: dict, only: tuple[str, ...], source: str) -> dict:
    """Keep the methods named in ``only`` (after :func:`resolve_networks`). The sweep is kept
    whole: a sweep over a network that is not selected still moves the kernel methods that
    take their settings from it."""
    names = [m.get("name") for m in raw.get("methods", []) if isinstance(m, dict)]
    unknown = [n for n in only if n not in names]
    if unknown:
        close = difflib.get_close_matches(unknown[0], [str(n) for n in names], n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"--only: {source} has no method named '{unknown[0]}'; {hint}"
            f"its methods: {', '.join(map(str, names))}"
        )
    out = copy.deepcopy(raw)
    out["methods"] = [m for m in out["methods"] if m.get("name") in only]
    return out


def plan_study(
    raw: dict, *, source: str = "config", only: list[str] | tuple[str, ...] | None = None
) -> StudyPlan:
    """Validate a raw config dict and expand its sweep into points.

    ``only``: run just these methods (``ntklab run --only``). The whole config is validated
    first; a kernel method keeps what it takes from its ``network`` even when that network
    is not selected, so ``--only NTK-NN1-T`` computes exactly what the full run does.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the config must be a TOML table")
    if only is not None:
        only = tuple(dict.fromkeys(only))
        if not only:
            raise ConfigError("--only needs at least one method name, e.g. --only NN1,NTK-NN1-T")
    resolved = copy.deepcopy(raw)
    resolve_networks(resolved, source)
    config = _validate(resolved, source)
    if only is not None:
        config = _validate(_select(resolved, only, source), source)
    sweep = config.sweep
    if not sweep:
        return StudyPlan(config, (Point(0, {}, config),), source, only)
    base = copy.deepcopy(raw)
    base.pop("sweep", None)
    keys = list(sweep)
    for key in keys:
        head = key.split(".")[0]
        if head not in ("data", "methods"):
            raise ConfigError(
                f"{source}: sweep key {key!r} must start with 'data.' or 'methods.' "
                "(e.g. 'methods.NN1.width' or 'methods.*.width')"
            )
    points = []
    for index, values in enumerate(itertools.product(*(sweep[k] for k in keys))):
        params = dict(zip(keys, values, strict=True))
        point_raw = copy.deepcopy(base)
        for key, value in params.items():
            apply_override(point_raw, key, value, where=f"{source}: sweep")
        resolve_networks(point_raw, f"{source}: sweep point {json.dumps(params)}")
        if only is not None:
            point_raw = _select(point_raw, only, source)
        point_cfg = _validate(point_raw, f"{source}: sweep point {json.dumps(params)}")
        points.append(Point(index, params, point_cfg))
    return StudyPlan(config, tuple(points), source, only)


def load_config(
    source: str | Path,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    trials: int | None = None,
    only: list[str] | tuple[str, ...] | None = None,
) -> StudyPlan:
    """Load a preset or TOML file, apply ``--set`` overrides and ``--trials``, validate.

    Parameters
    ----------
    source : str or Path
        A preset name (see :func:`preset_names`) or the path of a TOML file.
    overrides : list of str
        ``key=value`` strings (see :func:`parse_override`).
    trials : int, optional
        Overrides ``study.trials``.
    only : list of str, optional
        Run only these methods (see :func:`plan_study`).

    Raises
    ------
    ConfigError
        With a one-line message naming the key path and the fix.
    """
    raw, where = load_raw(source)
    for text in overrides:
        key, value = parse_override(text)
        apply_override(raw, key, value)
    if trials is not None:
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise ConfigError(f"--trials must be a positive integer; got {trials!r}")
        raw.setdefault("study", {})
        if isinstance(raw["study"], dict):
            raw["study"]["trials"] = trials
    return plan_study(raw, source=where, only=only)


def list_presets() -> list[dict[str, Any]]:
    """Name, description, trials, methods and sweep points of every preset."""
    out = []
    for name in preset_names():
        plan = load_config(name)
        out.append(
            {
                "name": name,
                "description": plan.config.study.description,
                "trials": plan.trials,
                "methods": len(plan.config.methods),
                "points": len(plan.points),
            }
        )
    return out
