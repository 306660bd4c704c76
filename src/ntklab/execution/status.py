"""The state of a run directory, read-only (``ntklab status``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..store import RunStore

__all__ = ["run_status"]


def run_status(run_dir: str | Path) -> dict[str, Any]:
    """Summary of a run directory: trials done/failed/total, per-method counts, wall time.

    ``done``, ``failed`` and ``total`` count the planned trials (``n_trials`` per point);
    ``beyond`` counts done trials stored past it (a later run asked for fewer trials), and
    ``failed_methods`` the failed (trial, method) pairs in done trials (rerun retries them).
    The store is opened read-only."""
    with RunStore.open(run_dir) as store:
        meta = store.meta()
        trials = store.trials()
        points = store.points()
        methods = store.methods()
        results = store.results(final_only=True)
        errors = store.errors()
        failed_methods = store.failed_methods()
    n_trials = int(meta.get("n_trials", 0))
    total = n_trials * len(points)
    all_done = trials[trials.status == "done"]
    done = all_done[all_done.trial < n_trials]
    rmse = results[results.metric == "rmse"]
    per_method = []
    for name in methods.method:
        per_method.append(
            {
                "method": name,
                "rmse_rows": int((rmse.method == name).sum()),
                "errors": int((errors.method == name).sum()) if len(errors) else 0,
            }
        )
    return {
        "name": meta.get("name"),
        "config_hash": meta.get("config_hash"),
        "points": len(points),
        "trials_per_point": n_trials,
        "total": total,
        "done": int(len(done)),
        "failed": int(((trials.status == "failed") & (trials.trial < n_trials)).sum()),
        "beyond": int(len(all_done) - len(done)),
        "failed_methods": sum(len(v) for v in failed_methods.values()),
        "wall_time_sum": float(done.wall_time.sum()) if len(done) else 0.0,
        "wall_time_mean": float(done.wall_time.mean()) if len(done) else 0.0,
        "methods": per_method,
        "assumed": meta.get("assumed", {}),
    }
