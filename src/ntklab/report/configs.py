"""A stored run's config read back as the schema's models (:mod:`ntklab.config.schema`).

A store keeps the resolved config as JSON (``meta.config``, with its ``sweep``) and each
method's resolved settings (``methods.spec``). The report reads them as
:class:`~ntklab.config.schema.StudyConfig` and :class:`~ntklab.config.schema.MethodConfig`
instead of searching dicts for keys: the width of a network at a sweep point is that point's
``MethodConfig.width``, a published kernel's depth is its ``layers``, the report's margin and
level are the ``[report]`` table's :class:`~ntklab.config.schema.ReportSection`.

A store written by an older ntklab whose config the schema no longer accepts still loads:
its study config is then None, each method is read from its own spec (a spec the schema
rejects is taken as it is, unvalidated, :meth:`~pydantic.BaseModel.model_construct`), and
a sweep point's values are applied to those specs as ``ntklab run --set`` applies them
(:func:`~ntklab.config.apply_override`).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from ..config import (
    ConfigError,
    DataConfig,
    GeneratorSpec,
    MethodConfig,
    ReportSection,
    StudyConfig,
    apply_override,
    format_validation_error,
    sweep_points,
)

__all__ = [
    "parse_study",
    "parse_data",
    "parse_points",
    "parse_method",
    "parse_report",
    "point_methods",
]


def parse_study(config: Any) -> StudyConfig | None:
    """The stored config as a :class:`StudyConfig` (JSON types accepted), else None."""
    if not isinstance(config, dict) or not config:
        return None
    try:
        return StudyConfig.model_validate(config, strict=False)
    except ValidationError:
        return None


def parse_data(config: Any) -> DataConfig | None:
    """The config's ``[data]`` table as a :class:`DataConfig` (validated, else its known
    fields as they are); None without one."""
    table = config.get("data") if isinstance(config, dict) else None
    if not isinstance(table, dict):
        return None
    try:
        return DataConfig.model_validate(table, strict=False)
    except ValidationError:
        known = {k: v for k, v in table.items() if k in DataConfig.model_fields}
        if isinstance(known.get("generator"), dict):
            known["generator"] = _lenient(GeneratorSpec, known["generator"])
        return DataConfig.model_construct(**known)


def _lenient(model: Any, table: dict) -> Any:
    """``table`` as ``model``: validated, else its known fields taken as they are."""
    try:
        return model.model_validate(table, strict=False)
    except ValidationError:
        return model.model_construct(**{k: v for k, v in table.items() if k in model.model_fields})


def parse_points(config: Any, stored: dict[int, dict[str, Any]]) -> dict[int, StudyConfig]:
    """Each sweep point's resolved config, by point index: the stored ``sweep`` applied as
    ``ntklab run`` applied it, each point matched to the stored point of the same swept
    values (``stored``: index -> params; the stored sweep's key order need not be the
    run's). ``{}`` when the config has no sweep or cannot be replayed."""
    if not isinstance(config, dict) or not config.get("sweep"):
        return {}
    try:
        points = sweep_points(
            json.loads(json.dumps(config)), config["sweep"], source="stored config"
        )
    except (ConfigError, ValidationError, ValueError, TypeError, KeyError):
        return {}
    by_params = {_key(params): cfg for params, cfg in points}
    out = {i: by_params.get(_key(params)) for i, params in stored.items()}
    return {i: cfg for i, cfg in out.items() if cfg is not None}


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def parse_method(name: str, kind: Any, spec: Any) -> MethodConfig:
    """A method's stored spec (with its name and kind) as a :class:`MethodConfig`: validated,
    or where the schema rejects it (an older store), its known fields taken as they are."""
    full = dict(spec) if isinstance(spec, dict) else {}
    full.setdefault("name", name)
    if kind:
        full.setdefault("kind", kind)
    return _lenient(MethodConfig, full)


def point_methods(
    specs: dict[str, tuple[Any, Any]], params: dict[str, Any]
) -> dict[str, MethodConfig]:
    """The methods at one sweep point: ``params`` (``methods.NAME.x`` / ``methods.*.x``)
    applied to each method's stored ``(kind, spec)`` as ``--set`` would, then
    :func:`parse_method`. A value that cannot be applied is left out."""
    raw = {
        "methods": [
            dict(
                spec if isinstance(spec, dict) else {},
                name=name,
                **({"kind": kind} if kind else {}),
            )
            for name, (kind, spec) in specs.items()
        ]
    }
    for key, value in params.items():
        if key.startswith("methods."):
            try:
                apply_override(raw, key, value, where="sweep point")
            except ConfigError:
                continue
    return {m["name"]: parse_method(m["name"], m.get("kind"), m) for m in raw["methods"]}


def parse_report(config: Any) -> ReportSection:
    """The config's ``[report]`` table as a :class:`ReportSection` (its defaults where the
    config has none).

    Raises
    ------
    ValueError
        With one line naming the key when the table is invalid.
    """
    table = config.get("report") if isinstance(config, dict) else None
    if not isinstance(table, dict):
        return ReportSection()
    try:
        return ReportSection.model_validate(table, strict=False)
    except ValidationError as exc:
        raise ValueError(
            f"the run's config: report.{format_validation_error(exc, table)}"
        ) from None
