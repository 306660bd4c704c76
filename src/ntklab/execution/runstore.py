"""The run directory's store as a run opens it: created with the resolved config, its hash,
the *assumed* values, package versions and the methods table, or reopened to resume."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from ..config import StudyPlan
from ..store import RunStore, StoreError

__all__ = ["open_store", "versions", "methods_table"]


def versions() -> dict[str, str]:
    """Versions of Python and the packages a run depends on."""
    out = {"python": platform.python_version()}
    for pkg in (
        "ntklab",
        "numpy",
        "scipy",
        "torch",
        "scikit-learn",
        "pandas",
        "pydantic",
        "dask",
        "distributed",
    ):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:  # pragma: no cover
            out[pkg] = "not installed"
    return out


def methods_table(plan: StudyPlan) -> list[dict[str, Any]]:
    """One row per method for the store's ``methods`` table.

    A sweep may change a method's depth, parameterization or (default) label from point to
    point; such a field is stored as NULL (and the label as the method's name), never as
    the base config's value, so a report cannot mistake a depth-2 point for depth 1.
    """
    rows = []
    for m in plan.config.methods:
        variants = [next(v for v in p.config.methods if v.name == m.name) for p in plan.points]

        def common(field: str, variants=variants):
            values = {getattr(v, field) for v in variants}
            return values.pop() if len(values) == 1 else None

        rows.append(
            {
                "method": m.name,
                "kind": m.kind,
                "label": common("label") or m.name,
                "family": common("family"),
                "depth": common("layers"),
                "parameterization": common("parameterization"),
                "spec": m.spec(),
            }
        )
    return rows


def open_store(plan: StudyPlan, out: str | Path) -> RunStore:
    """Create the run directory's store, or reopen it for a resume of the same config."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {out} exists and is not a directory; choose another --out")
    store = RunStore.create(
        out,
        config=plan.resolved,
        config_hash=plan.config_hash,
        meta={
            "assumed": plan.assumed,
            "versions": versions(),
            "name": plan.name,
            "n_trials": plan.trials,
            "source": plan.source,
            "only": list(plan.only) if plan.only else None,
            "reductions": plan.reductions,
        },
        points=[p.params for p in plan.points],
        methods=methods_table(plan),
    )
    try:
        if plan.trials != int(store.meta().get("n_trials") or 0):  # --trials changes the plan
            store.set_meta("n_trials", plan.trials)  # (stored trials beyond it are kept)
            store.set_meta("config", plan.resolved)
    except BaseException:
        store.close()
        raise
    return store
