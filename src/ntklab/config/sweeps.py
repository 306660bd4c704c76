"""Sweeps: the cartesian product of a config's ``[sweep]`` lists, each point a raw config
with the swept values set (by the same dotted paths as ``--set``) and validated."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

from .loading import apply_override, resolve_networks, select_methods
from .schema import ConfigError, StudyConfig, validate

__all__ = ["sweep_points"]


def sweep_points(
    raw: dict, sweep: dict[str, list], *, source: str, only: tuple[str, ...] | None = None
) -> list[tuple[dict[str, Any], StudyConfig]]:
    """``(params, config)`` of every point of ``sweep`` (dotted key -> values) applied to the
    raw config ``raw``, in the order of :func:`itertools.product` over the keys as given.

    Raises
    ------
    ConfigError
        If a key is not under ``data.`` or ``methods.``, or a point's config is invalid.
    """
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
    for values in itertools.product(*(sweep[k] for k in keys)):
        params = dict(zip(keys, values, strict=True))
        point_raw = copy.deepcopy(base)
        for key, value in params.items():
            apply_override(point_raw, key, value, where=f"{source}: sweep")
        resolve_networks(point_raw, f"{source}: sweep point {json.dumps(params)}")
        if only is not None:
            point_raw = select_methods(point_raw, only, source)
        points.append((params, validate(point_raw, f"{source}: sweep point {json.dumps(params)}")))
    return points
