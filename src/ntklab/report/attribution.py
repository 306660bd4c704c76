r"""The attribution of the seed's NTK → NN gap, one cause at a time, and each network
beside its own NTK prediction at the same training time.

* :func:`attribution_table` -- walks :data:`~ntklab.report.reference.ATTRIBUTION_CHAIN`
  from the seed's NTK row to its network row, one cause at a time, with the paired change
  at each step, its 95 % interval and its share of the whole gap.
* :func:`same_time_pairs` -- the (network, NTK at its training time) pairs a run has;
  :func:`same_time_table` -- those pairs per trial.

The verdicts on the seed's claims are in :mod:`ntklab.report.verdicts`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .reference import (
    SEED_DEPTHS,
    SEED_TABLE,
    attribution_chain,
    attribution_methods,
    same_time_pair,
)
from .runs import Run
from .stats import paired_t

__all__ = [
    "attribution_table",
    "attribution_missing",
    "common_columns",
    "has_attribution",
    "log_shares",
    "present_methods",
    "same_time_pairs",
    "same_time_reading",
    "same_time_table",
]


def present_methods(run: Run, point: int, metric: str = "rmse") -> set[str]:
    """Methods with at least one finite value of ``metric`` at ``point``."""
    wide = run.final(metric, point)
    return {m for m in wide.columns if wide[m].notna().any()}


def has_attribution(run: Run) -> bool:
    """True if the run has a method of the attribution chain beyond the seed's own rows."""
    extra = set(attribution_methods()) - set(SEED_TABLE)
    return bool(extra & set(run.method_names))


def attribution_missing(run: Run, point: int, metric: str = "rmse") -> dict[int, list[str]]:
    """{depth: chain methods without a finite value at ``point``}, for the depths that have
    at least one attribution method."""
    present = present_methods(run, point, metric)
    out = {}
    for k in SEED_DEPTHS:
        names = [s.method for s in attribution_chain(k)]
        if (set(names) - set(SEED_TABLE)) & present:
            out[k] = [m for m in names if m not in present]
    return out


def _pair(run: Run, a: str, b: str, metric: str, point: int) -> tuple[np.ndarray, np.ndarray]:
    both = common_columns(run, [a, b], metric, point)
    return both[:, 0], both[:, 1]


def attribution_table(run: Run, *, metric: str = "rmse") -> pd.DataFrame:
    r"""The walk from the seed's NTK row to its network row, one cause at a time (SPEC §7.2).

    For each depth k = 1, 2 and sweep point, the methods of
    :data:`~ntklab.report.reference.ATTRIBUTION_CHAIN` present in the run, in order. Each row:
    the method's mean and SE over its own finite trials; ``change`` = the paired mean
    difference from the previous method present, on the ``n_pairs`` trials both have, with
    its 95 % t interval; ``share_pct`` = 100 change / total, where the total is the paired
    mean difference ``NNk − NTKJk`` (the last row, ``total``). A missing method merges its
    cause into the next present step (``step`` lists the causes). With different trials per
    step the shares need not add up to 100 %.

    Returns
    -------
    DataFrame
        ``point, depth, step, method, n, mean, se, previous, n_pairs, change, ci_low,
        ci_high, share_pct``; empty unless the run has an attribution method
        (:func:`has_attribution`).
    """
    run.require_finished()
    cols = [
        "point",
        "depth",
        "step",
        "method",
        "n",
        "mean",
        "se",
        "previous",
        "n_pairs",
        "change",
        "ci_low",
        "ci_high",
        "share_pct",
    ]
    rows = []
    if not has_attribution(run):
        return pd.DataFrame(rows, columns=cols)
    for point in run.point_ids:
        wide = run.final(metric, point)
        missing = attribution_missing(run, point, metric)
        for k in SEED_DEPTHS:
            if k not in missing:
                continue
            chain = attribution_chain(k)
            start, end = chain[0].method, chain[-1].method
            total = paired_t(np.subtract(*_pair(run, end, start, metric, point)))
            gap = total["mean"]
            prev: str | None = None
            causes: list[str] = []
            for step in chain:
                causes.append(step.cause)
                if step.method in missing[k]:
                    continue
                values = wide[step.method].dropna()
                row: dict[str, Any] = {
                    "point": point,
                    "depth": k,
                    "step": " + ".join(causes) if prev is not None else step.cause,
                    "method": step.method,
                    "n": int(values.size),
                    "mean": float(values.mean()),
                    "se": float(values.std(ddof=1) / math.sqrt(values.size))
                    if values.size > 1
                    else math.nan,
                    "previous": prev,
                }
                if prev is not None:
                    d = paired_t(np.subtract(*_pair(run, step.method, prev, metric, point)))
                    row.update(
                        n_pairs=d["n"],
                        change=d["mean"],
                        ci_low=d["ci_low"],
                        ci_high=d["ci_high"],
                        share_pct=100 * d["mean"] / gap if np.isfinite(gap) and gap else math.nan,
                    )
                rows.append(row)
                prev, causes = step.method, []
            if np.isfinite(gap):
                rows.append(
                    {
                        "point": point,
                        "depth": k,
                        "step": "total: the seed's NTK row → its network row",
                        "method": end,
                        "previous": start,
                        "n_pairs": total["n"],
                        "change": gap,
                        "ci_low": total["ci_low"],
                        "ci_high": total["ci_high"],
                        "share_pct": 100.0 if gap else math.nan,
                    }
                )
    df = pd.DataFrame(rows, columns=cols)
    df["n_pairs"] = df["n_pairs"].astype(float)
    return df


def common_columns(run: Run, names: list[str], metric: str, point: int) -> np.ndarray:
    """Trials x methods, the trials that all ``names`` have (finite)."""
    return run.common_trials(names, metric, point).to_numpy(float)


def same_time_pairs(run: Run, point: int, metric: str = "rmse") -> list[tuple[int, str, str]]:
    """``(depth, network, NTK at its training time)`` for each depth whose two methods have
    at least one trial in common at ``point`` (e.g. ``(1, "NN1", "NTK-NN1-T")``)."""
    out = []
    for k in SEED_DEPTHS:
        nn, ntk = same_time_pair(k)
        if len(_pair(run, nn, ntk, metric, point)[0]):
            out.append((k, nn, ntk))
    return out


def same_time_table(run: Run, *, metric: str = "rmse") -> pd.DataFrame:
    """The network beside its own NTK prediction at the same training time, per trial.

    One row per trial that has both ``NNk`` and ``NTK-NNk-T`` (:func:`same_time_pair`), with
    their test RMSEs and the difference; the network's RMS distance to its linearization on
    the test points (``nn_lin_rms``, when the run stored it) and the empirical NTK's relative
    drift during training (``kernel_drift``). The paired mean difference with its 95 % t
    interval is in the attribution table's "its linearization → the trained network" step.

    Returns
    -------
    DataFrame
        ``point, depth, trial, network, ntk, nn_rmse, ntk_same_t_rmse, difference,
        nn_lin_rms, kernel_drift`` (empty when no pair is present).
    """
    rows = []
    for point in run.point_ids:
        extra = {
            m: run.final(m, point) for m in ("nn_lin_rms", "kernel_drift") if run.has_metric(m)
        }
        wide = run.final(metric, point)
        for k, nn, ntk in same_time_pairs(run, point, metric):
            both = wide[[nn, ntk]].dropna()
            for (_, trial), (a, b) in zip(both.index, both.to_numpy(float), strict=True):
                row = {"point": point, "depth": k, "trial": int(trial), "network": nn, "ntk": ntk,
                       "nn_rmse": a, "ntk_same_t_rmse": b, "difference": a - b}  # fmt: skip
                for name, table in extra.items():
                    value = table[nn].get((point, trial), math.nan) if nn in table else math.nan
                    row[name] = float(value)
                rows.append(row)
    cols = ["point", "depth", "trial", "network", "ntk", "nn_rmse", "ntk_same_t_rmse",
            "difference", "nn_lin_rms", "kernel_drift"]  # fmt: skip
    out = pd.DataFrame(rows, columns=cols)
    return out.dropna(axis=1, how="all") if len(out) else out


def log_shares(comps: list[dict[str, Any]]) -> str:
    """For each depth with NNk / NTKJk and NNk / NTK-NNk-T: the share of the factor (on the
    log scale) that lies between the seed's NTK row and the network's own NTK at its training
    time, i.e. ``1 − log(NN / NTK-NN-T) / log(NN / NTKJ)``."""
    est = {c["comparison"]: c["estimate"] for c in comps}  # ratios of means
    out = []
    for k in SEED_DEPTHS:
        nn, ntk = same_time_pair(k)
        total, rest = est.get(f"{nn} / NTKJ{k}"), est.get(f"{nn} / {ntk}")
        if total is None or rest is None or not (np.isfinite(total) and np.isfinite(rest)):
            continue
        if not (total > 1 and rest > 0):
            continue
        total, rest = math.log(total), math.log(rest)
        out.append(
            f"{100 * (1 - rest / total):.0f} % of log({nn} / NTKJ{k}) lies between NTKJ{k} and {ntk}"
        )
    return ("; " + "; ".join(out)) if out else ""


def same_time_reading(same_t: list[dict[str, Any]]) -> str:
    lo = np.array([c["ci_low"] for c in same_t], dtype=float)
    hi = np.array([c["ci_high"] for c in same_t], dtype=float)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return "too few trials to say how close the network is to its own NTK"
    if np.all((lo <= 1) & (hi >= 1)):
        return (
            "the network is indistinguishable from its own NTK prediction at the same "
            "training time, so a factor against the seed's NTK rows comes from the kernel and "
            "the training time compared, not from the network leaving the NTK regime"
        )
    if np.all(lo > 1):
        return (
            "the network is worse than its own NTK prediction at the same training time: "
            "part of any factor is the network leaving the NTK regime"
        )
    if np.all(hi < 1):
        return "the network is better than its own NTK prediction at the same training time"
    return "the depths disagree on whether the network matches its own NTK at the same time"
