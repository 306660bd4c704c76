"""A study plan: a config loaded (:func:`load_config`), validated and expanded into its sweep
points (:class:`StudyPlan`), with its hash, the values SPEC marks *assumed* and what a
reduced preset changes against its full version."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .loading import (
    apply_override,
    load_raw,
    parse_override,
    preset_names,
    resolve_networks,
    select_methods,
)
from .schema import ConfigError, StudyConfig, flatten, resolved_dict, validate
from .sweeps import sweep_points

__all__ = ["Point", "StudyPlan", "plan_study", "load_config", "list_presets"]


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

        diff("data.", flatten(ref.data.model_dump(exclude_none=True)),
             flatten(ours.data.model_dump(exclude_none=True)))  # fmt: skip
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


def _show(value: Any) -> str:
    return "unset" if value is None else json.dumps(value)


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
    config = validate(resolved, source)
    if only is not None:
        config = validate(select_methods(resolved, only, source), source)
    sweep = config.sweep
    if not sweep:
        return StudyPlan(config, (Point(0, {}, config),), source, only)
    points = sweep_points(raw, sweep, source=source, only=only)
    return StudyPlan(
        config, tuple(Point(i, params, cfg) for i, (params, cfg) in enumerate(points)), source, only
    )


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
    if trials is not None and (
        isinstance(trials, bool) or not isinstance(trials, int) or trials < 1
    ):
        raise ConfigError(f"--trials must be a positive integer; got {trials!r}")
    base = copy.deepcopy(raw) if overrides else raw
    for text in overrides:
        key, value = parse_override(text)
        apply_override(raw, key, value)
    _set_trials(raw, trials)
    try:
        return plan_study(raw, source=where, only=only)
    except ConfigError as exc:
        if overrides:
            _blame_override(base, list(overrides), trials, where, only, str(exc))
        raise


def _set_trials(raw: dict, trials: int | None) -> None:
    """``--trials`` (after the ``--set`` options: it wins over ``--set study.trials``)."""
    if trials is not None:
        raw.setdefault("study", {})
        if isinstance(raw["study"], dict):
            raw["study"]["trials"] = trials


def _blame_override(
    base: dict, overrides: list[str], trials: int | None, where: str, only, message: str
) -> None:
    """Raise the error ``message`` (about the config ``where`` with the ``--set`` options)
    blaming the first ``--set`` after which the config fails this way, when the config
    without them is valid; return (the file is to blame) otherwise."""
    prefix = f"{where}: "
    what = message[len(prefix) :] if message.startswith(prefix) else message
    raw = copy.deepcopy(base)
    for text in [None, *overrides]:
        if text is not None:
            apply_override(raw, *parse_override(text))
        attempt = copy.deepcopy(raw)
        _set_trials(attempt, trials)
        try:
            plan_study(attempt, source=where, only=only)
        except ConfigError as exc:
            if text is None:
                return  # the config itself fails: its message names it
            got = str(exc)
            if (got[len(prefix) :] if got.startswith(prefix) else got) == what:
                raise ConfigError(f"--set {text}: {what}") from None
    raise ConfigError(f"{where} with --set {' '.join(overrides)}: {what}") from None


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
