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
    for point in run.point_ids:
        wide = run.final(metric, point)
        where = "" if len(run.points) <= 1 else f" at point {point}"
        for method in wide.columns:
            missing = run.expected_trials(method, point) - int(wide[method].notna().sum())
            if missing > 0:
                out.append(
                    f"{method}{where}: {missing} finished trial(s) without a finite "
                    f"{metric}; excluded from its mean"
                )
        div = run.final("diverged", point)
        for method in div.columns:
            k = int((div[method] > 0).sum())
            if k:
                out.append(f"{method}{where}: training diverged in {k} trial(s)")
    limits = {m: run.method_trial_limit(m) for m in run.method_names}
    limits = {m: t for m, t in limits.items() if t is not None}
    if limits:
        out.append(
            "per-method trial counts: "
            + ", ".join(f"{m}: {t}" for m, t in limits.items())
            + "; paired statistics use the trials both methods have"
        )
    return out
