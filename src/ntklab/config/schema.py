"""The schema of a study config: one pydantic model per table (:class:`StudyConfig`,
:class:`DataConfig`, :class:`MethodConfig`, ...), the keys each method kind accepts
(:data:`KINDS`), and validation errors as one line naming the key and the fix
(:func:`validate`). The method tables live in :mod:`.methods` and the keys of each kind in
:mod:`.kinds`; this module re-exports them."""

from __future__ import annotations

import difflib
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from ..data import DATASETS as DATASET_SIZES
from ..data import SEED_BOUNDS, n_test_from_fraction
from ..data import TASKS as DATASET_TASKS
from .kinds import ARCH_FIELDS as ARCH_FIELDS
from .kinds import FROM_NETWORK, GENERATOR_KINDS, KINDS, PUBLISHED_NAMES, TUNED_KINDS
from .kinds import NETWORK_FIELDS as NETWORK_FIELDS
from .methods import Fraction as Fraction
from .methods import GeneratorSpec, KernelSpec, MethodConfig, PosInt, StrictModel
from .methods import MethodName as MethodName
from .methods import NonNegFloat as NonNegFloat
from .methods import Param as Param
from .methods import PosFloat as PosFloat
from .methods import PublishedName as PublishedName

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


class DataConfig(StrictModel):
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


class StudySection(StrictModel):
    """``[study]``: name, one-line description, trials per sweep point, study seed."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$", min_length=1)] = "study"
    description: str = ""
    trials: PosInt = 10
    seed: Annotated[int, Field(ge=0)] = 0
    reduced_from: str | None = None


class ReportSection(StrictModel):
    """``[report]``: how the report decides that two methods tie (not part of the config hash).

    Two methods are called *equivalent* only by an equivalence test (two one-sided paired
    t-tests, Holm-corrected across the comparisons of a table) with the region
    :math:`|\bar d| < \text{margin} \times` the reference method's mean RMSE.
    """

    equivalence_margin: Annotated[float, Field(gt=0, lt=1)] = 0.02
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.05
    #: Phase diagram: the measure of how far the trained network is from lazy training:
    #: ``nn_elin_rel`` = ||f_NN - f_elin|| / ||f_elin||, f_elin the network's own
    #: linearization around its initialization (lazy training, Chizat, Oyallon & Bach 2019),
    #: or ``nn_lin_rel`` = ||f_NN - f_lin|| / ||f_lin||, f_lin the analytic NTK's prediction
    #: (which also holds Theta_0's finite-width error, so it floors at large alpha).
    phase_measure: Literal["nn_elin_rel", "nn_lin_rel"] = "nn_elin_rel"
    #: Phase diagram: the phase_measure above which the NTK no longer describes the network
    #: (the heatmaps' contour, the lazy/rich crossover, the lazy cells of the anchor claims).
    phase_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.10
    #: Phase diagram: a fitted exponent reproduces theory's when |b - b_theory| < this.
    phase_exponent_margin: Annotated[float, Field(gt=0, lt=1)] = 0.15


class StudyConfig(StrictModel):
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
