"""Study configuration: TOML files and presets, validated into a :class:`StudyPlan`.

A study config has four parts (see ``ntklab presets`` and ``src/ntklab/presets/*.toml``)::

    [study]                      # name, description, trials, seed
    [data]                       # n, d, n_train, noise, or dataset = "diabetes"
    [data.generator]             # the kernel whose Gaussian process generates y
    [[methods]]                  # name, kind and the kind's settings (one table per method)
    [sweep]                      # optional: dotted field -> list of values (cartesian product)

Method kinds and the keys each accepts (anything else is an error):

============ ==========================================================================
kind         keys (besides ``name``, ``kind``, ``label``, ``family``)
============ ==========================================================================
network      depth, parameterization, sigma_w, sigma_b, width, lr, epochs, batch_size,
             centered, record_every, equivalence, max_kernel_points
ntk, nngp    depth, parameterization, sigma_w, sigma_b, ridge
ntk_time     depth, parameterization, sigma_w, sigma_b, lr, epochs (NTK mean prediction
             after ``epochs`` full-batch gradient-descent steps, SPEC §3)
laplacian    length_scale, ridge
rbf          length_scale, ridge
============ ==========================================================================

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

from .architecture import Architecture
from .data import DATASETS as DATASET_SIZES

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
PosInt = Annotated[int, Field(ge=1)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]

ARCH_FIELDS = ("depth", "parameterization", "sigma_w", "sigma_b")
NETWORK_FIELDS = (
    "width",
    "lr",
    "epochs",
    "batch_size",
    "centered",
    "record_every",
    "equivalence",
    "max_kernel_points",
)
#: Keys each method kind accepts (besides name, kind, label, family).
KINDS: dict[str, tuple[str, ...]] = {
    "network": ARCH_FIELDS + NETWORK_FIELDS,
    "ntk": ARCH_FIELDS + ("ridge",),
    "nngp": ARCH_FIELDS + ("ridge",),
    "ntk_time": ARCH_FIELDS + ("lr", "epochs"),
    "laplacian": ("length_scale", "ridge"),
    "rbf": ("length_scale", "ridge"),
}
GENERATOR_KINDS = ("ntk", "nngp", "laplacian", "rbf")
_COMMON = ("name", "kind", "label", "family", "trials")


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _check_lr(value: Any) -> Any:
    if value is None or value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"lr must be a positive number or 'auto'; got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"lr must be a positive number or 'auto'; got {value!r}")
    return float(value)


class KernelSpec(_Base):
    """A kernel (or network) family: an :class:`~ntklab.Architecture` or a Laplacian/RBF kernel.

    Used for ``[data.generator]`` (kinds ntk, nngp, laplacian, rbf) and as the base of
    :class:`MethodConfig`. Fields that do not apply to ``kind`` must not be set.
    """

    kind: Literal["network", "ntk", "nngp", "ntk_time", "laplacian", "rbf"] = "ntk"
    depth: PosInt | None = None
    parameterization: Param | None = None
    sigma_w: PosFloat | None = None
    sigma_b: NonNegFloat | None = None
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
        )

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
        if "length_scale" in self._allowed() and self.length_scale is None:
            self.length_scale = 1.0
        if "ridge" in self._allowed() and self.ridge is None:
            self.ridge = 0.0


class GeneratorSpec(KernelSpec):
    """``[data.generator]``: the kernel of the Gaussian process that generates ``y``.

    Default: NTKB1 (``kind = "ntk"``, ``depth = 1``, ``parameterization = "paper"``), SPEC §4.
    """

    kind: Literal["ntk", "nngp", "laplacian", "rbf"] = "ntk"

    def _allowed(self) -> tuple[str, ...]:
        return tuple(f for f in KINDS[self.kind] if f != "ridge")

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

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+$", min_length=1, max_length=40)]
    kind: Literal["network", "ntk", "nngp", "ntk_time", "laplacian", "rbf"]
    label: str | None = None
    family: str | None = None
    trials: PosInt | None = None
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
        return _check_lr(value)

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
            self.record_every = self.record_every or max(1, self.epochs // 10)
        if self.kind == "ntk_time" and self.epochs is None:
            raise ValueError("epochs is required for kind 'ntk_time' (the training time T)")
        if self.kind in ("network", "ntk_time") and self.lr is None:
            self.lr = "auto"
        if self.family is None:
            self.family = self._default_family()
        if self.label is None:
            self.label = self._default_label()
        return self

    @property
    def letter(self) -> str:
        return {"jacot": "J", "arora": "A", "paper": "B"}.get(self.parameterization or "", "")

    def _default_family(self) -> str:
        return {
            "network": "NN",
            "nngp": "GP",
            "ntk": f"NTK{self.letter}",
            "ntk_time": f"NTK{self.letter}T",
            "laplacian": "K1",
            "rbf": "RBF",
        }[self.kind]

    def _default_label(self) -> str:
        if self.depth is None:
            return {"laplacian": "Laplacian (K1)", "rbf": "RBF"}[self.kind]
        layers = f"{self.depth} layer{'s' if self.depth != 1 else ''}"
        base = {"network": "NN", "nngp": "GP", "ntk": f"NTK{self.letter}"}.get(self.kind)
        if base is None:  # ntk_time
            return f"NTK{self.letter} at T={self.epochs} ({layers})"
        return f"{base} ({layers})"

    def spec(self) -> dict[str, Any]:
        """The resolved settings of this method (None fields dropped)."""
        return self.model_dump(exclude_none=True)


class DataConfig(_Base):
    """``[data]``: simulated inputs on the unit sphere with GP targets, or a real data set."""

    dataset: Literal["simulated", "diabetes"] = "simulated"
    n: PosInt | None = None
    d: PosInt | None = None
    n_train: PosInt
    noise: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    generator: GeneratorSpec | None = None

    @model_validator(mode="after")
    def _check(self):
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


class StudyConfig(_Base):
    """A whole study config (one sweep point, or the base config with its ``sweep``)."""

    study: StudySection = StudySection()
    data: DataConfig
    methods: Annotated[list[MethodConfig], Field(min_length=1)]
    sweep: dict[str, list[Any]] = {}

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


def load_raw(source: str | Path) -> tuple[dict, str]:
    """Read a preset name or a TOML file into a dict. Returns ``(raw, where)``."""
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

    @property
    def config_hash(self) -> str:
        """sha256 of the resolved config without ``study.trials`` and ``study.description``.

        Leaving out the number of trials lets ``--trials`` extend an existing run (trial i's
        data and seeds do not depend on the total).
        """
        body = copy.deepcopy(self.resolved)
        body["study"].pop("trials", None)
        body["study"].pop("description", None)
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    @property
    def assumed(self) -> dict[str, Any]:
        """{dotted name: value} of every value SPEC marks *assumed* that the run uses."""
        cfg = self.config
        out: dict[str, Any] = {}
        data = cfg.data
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


def resolved_dict(config: StudyConfig) -> dict[str, Any]:
    out = config.model_dump(exclude_none=True)
    out["methods"] = [m.spec() for m in config.methods]
    return out


def _validate(raw: dict, where: str) -> StudyConfig:
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {format_validation_error(exc, raw)}") from None


def plan_study(raw: dict, *, source: str = "config") -> StudyPlan:
    """Validate a raw config dict and expand its sweep into points."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the config must be a TOML table")
    config = _validate(raw, source)
    sweep = config.sweep
    if not sweep:
        return StudyPlan(config, (Point(0, {}, config),), source)
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
        point_cfg = _validate(point_raw, f"{source}: sweep point {json.dumps(params)}")
        points.append(Point(index, params, point_cfg))
    return StudyPlan(config, tuple(points), source)


def load_config(
    source: str | Path,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    trials: int | None = None,
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
    return plan_study(raw, source=where)


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
