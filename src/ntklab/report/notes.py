"""What a report says about an incomplete run: pending or failed trials, failed methods,
diverged networks and missing values, one line each (:func:`run_notes`)."""

from __future__ import annotations

from .runs import Run

__all__ = ["run_notes"]


def run_notes(run: Run, metric: str = "rmse") -> list[str]:
    """One line each about anything incomplete: pending or failed trials, failed methods,
    diverged networks, missing values."""
    out = []
    exp = run.n_expected
    if run.n_failed:
        failed = run.trials[run.trials["status"] == "failed"]
        first = failed.iloc[0]
        msg = str(first["error"] or "no message").splitlines()[0][:200]
        out.append(
            f"{run.n_failed} trial(s) failed (first: point {first['point']} trial "
            f"{first['trial']}: {msg}); the tables use the {run.n_done} finished trial(s) only"
        )
    if exp is not None and run.n_done + run.n_failed < exp:
        out.append(
            f"run incomplete (in progress or interrupted): {run.n_done} of {exp} trials "
            f"finished; the tables use the finished ones"
        )
    if len(run.errors):
        done = set(
            zip(
                run.trials.loc[run.trials["status"] == "done", "point"],
                run.trials.loc[run.trials["status"] == "done", "trial"],
                strict=True,
            )
        )
        errs = run.errors[
            [(p, t) in done for p, t in zip(run.errors["point"], run.errors["trial"], strict=True)]
        ]
        for method, grp in errs.groupby("method", sort=False):
            msg = str(grp["message"].iloc[0]).splitlines()[0][:200]
            out.append(f"{method} failed in {len(grp)} finished trial(s) (first: {msg})")
    missing: dict[str, dict[int, int]] = {}  # method -> {point: trials}, in run order
    diverged: dict[str, dict[int, int]] = {}
    for point in run.point_ids:
        wide = run.final(metric, point)
        for method in wide.columns:
            k = run.expected_trials(method, point) - int(wide[method].notna().sum())
            if k > 0:
                missing.setdefault(method, {})[point] = k
        div = run.final("diverged", point)
        for method in div.columns:
            k = int((div[method] > 0).sum())
            if k:
                diverged.setdefault(method, {})[point] = k
    for method, per_point in missing.items():
        out.append(
            f"{method}{_where(run, per_point)}: {sum(per_point.values())} finished trial(s) "
            f"without a finite {metric}; excluded from its mean"
        )
    for method, per_point in diverged.items():
        out.append(
            f"{method}{_where(run, per_point)}: training diverged in "
            f"{sum(per_point.values())} trial(s)"
        )
    limits = {m: run.method_trial_limit(m) for m in run.method_names}
    limits = {m: t for m, t in limits.items() if t is not None}
    if limits:
        out.append(
            "per-method trial counts: "
            + ", ".join(f"{m}: {t}" for m, t in limits.items())
            + "; paired statistics use the trials both methods have"
        )
    return out


def _where(run: Run, per_point: dict[int, int]) -> str:
    """Where a note applies: nothing for a run of one point, ``" at point 3"`` for one point
    of a sweep, and the points with their counts for several (one line per method, however
    large the grid: the per-cell counts are in the tables)."""
    if len(run.points) <= 1:
        return ""
    if len(per_point) == 1:
        return f" at point {next(iter(per_point))}"
    shown = [f"{p} ({k})" for p, k in list(per_point.items())[:8]]
    more = len(per_point) - len(shown)
    return f" at {len(per_point)} points ({', '.join(shown)}{f', +{more} more' if more else ''})"
