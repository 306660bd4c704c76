"""Tables and analyses of a stored run, computed from the raw rows of its store.

Every number a report prints comes from a function here, each returning a
:class:`pandas.DataFrame` with one row per sweep point (``point``) and method or pair:

* :func:`main_table` -- finished trials, mean test RMSE and its standard error per method,
  with the diverged, failed and missing trials counted, and the seed's numbers
  (:mod:`ntklab.report.reference`) alongside, with the z-score of the difference, for runs
  of the seed's experiment.
* :func:`layer_change` -- percentage change of the mean RMSE from 1 to 2 hidden layers, per
  family (the seed's §4.2), ours (paired, with a 95 % interval) and the seed's.
* :func:`nn_ntk_ratios` -- mean RMSE of each network over each kernel of the same depth,
  with intervals for the ratio and for the paired difference.
* :func:`paired_differences` -- per-trial paired differences of two methods: mean, 95 %
  t confidence interval, paired t-test and Wilcoxon signed-rank p-values.

Equivalence by TOST and the width-sweep measures are in :mod:`ntklab.report.equivalence`;
the run itself in :mod:`ntklab.report.runs`.

Only trials whose status is ``done`` enter any table; a run in progress or with failed
trials is reported on what is finished, and :func:`~ntklab.report.notes.run_notes`
says so.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .protocol import seed_comparison
from .reference import SEED_TABLE
from .runs import ReportError, Run
from .stats import mean_se, paired_stats, paired_t, ratio_of_means

__all__ = [
    "main_table",
    "layer_change",
    "nn_ntk_ratios",
    "paired_differences",
    "method_depth",
]


# ---- tables ------------------------------------------------------------------------------------
def main_table(run: Run, *, metric: str = "rmse", compare_seed: bool | None = None) -> pd.DataFrame:
    r"""Mean and standard error of ``metric`` per method and sweep point, with what is left out.

    Parameters
    ----------
    run : Run
    metric : str
        A final metric (default test RMSE).
    compare_seed : bool, optional
        Add the seed's row beside ours (default: :func:`compares_with_seed`; only for
        ``rmse``): ``seed_mean, seed_se``, ``ratio`` = ours / seed, the two-sample z-score
        :math:`z = (\bar r - \bar r_{seed}) / \sqrt{SE^2 + SE_{seed}^2}` and ``within_3se``
        (:math:`|z| \le 3`; None where the seed has no such row).

    Returns
    -------
    DataFrame
        ``point, method, label, n, diverged, failed, missing, mean, se`` (+ the seed's
        columns). ``n`` counts finished trials with a finite value and ``se`` = sample SD /
        sqrt(n); ``diverged`` (networks only, else NaN): trials whose training diverged;
        ``failed``: trials in which the method raised an error; ``missing``: finished trials
        that should have a value of the method (:meth:`Run.expected_trials`) but have no
        finite one, for any of these reasons or none -- they are not in the mean.
    """
    run.require_finished()
    seed = seed_comparison(run, compare_seed) and metric == "rmse"
    rows = []
    for point in run.point_ids:
        wide = run.final(metric, point)
        for method in wide.columns:
            n, mean, se = mean_se(wide[method])
            row = {
                "point": point,
                "method": method,
                "label": run.method_info(method)["label"],
                "n": n,
                "diverged": float(run.n_diverged(method, point))
                if run.is_network(method)
                else math.nan,
                "failed": run.n_method_errors(method, point),
                "missing": max(run.expected_trials(method, point) - n, 0),
                "mean": mean,
                "se": se,
            }
            if seed:
                ref = SEED_TABLE.get(method)
                row["seed_mean"] = ref.mean_rmse if ref else math.nan
                row["seed_se"] = ref.se if ref else math.nan
                row["ratio"] = mean / ref.mean_rmse if ref else math.nan
                z = (mean - ref.mean_rmse) / math.hypot(se, ref.se) if ref else math.nan
                row["z"] = z
                row["within_3se"] = bool(abs(z) <= 3) if np.isfinite(z) else None
            rows.append(row)
    cols = ["point", "method", "label", "n", "diverged", "failed", "missing", "mean", "se"]
    if seed:
        cols += ["seed_mean", "seed_se", "ratio", "z", "within_3se"]
    return pd.DataFrame(rows, columns=cols)


def _family_depth(run: Run, method: str, point: int | None = None) -> tuple[str | None, int | None]:
    """Family and depth of a method (at sweep point ``point``): from the methods table, else
    from its :class:`~ntklab.config.schema.MethodConfig` there (``family``; ``layers``, a
    published formula's from its kernel's name)."""
    info = run.method_info(method)
    family, depth = info["family"], info["depth"]
    if family is None or depth is None:
        config = run.method_config(method, point)
        family = family if family is not None else config.family
        depth = depth if depth is not None else config.layers
    return family, depth


def method_depth(run: Run, method: str, point: int | None = None) -> int | None:
    """Hidden layers of a method (at sweep point ``point``; :func:`_family_depth`)."""
    return _family_depth(run, method, point)[1]


def _families(run: Run, methods: list[str], point: int | None = None) -> dict[str, dict[int, str]]:
    """{family: {depth: method}} for methods with both a family and a depth.

    Where several methods share a family and a depth (the seed's ``NTKJ1`` and the network's
    own NTK ``NTK-NN1`` are both ``jacot`` NTKs), the one named ``<family><depth>`` keeps the
    family and each other one is grouped by its name with the depth written ``k``
    (``NTK-NNk``, ``NTK-NNk-T``), so that no method is lost and none is paired across kinds.
    """
    found = [(m, *_family_depth(run, m, point)) for m in methods]
    found = [(m, f, d) for m, f, d in found if f and d is not None]
    count: dict[tuple[str, int], int] = {}
    for _, f, d in found:
        count[(f, d)] = count.get((f, d), 0) + 1
    crowded = {f for (f, _), c in count.items() if c > 1}
    fam: dict[str, dict[int, str]] = {}
    for m, f, d in found:
        key = f
        if f in crowded and m != f"{f}{d}":
            key = m.replace(str(d), "k") if m.count(str(d)) == 1 else m
        fam.setdefault(key, {}).setdefault(d, m)
    return fam


def layer_change(
    run: Run, *, metric: str = "rmse", compare_seed: bool | None = None
) -> pd.DataFrame:
    r"""Percentage change of the mean ``metric`` when a hidden layer is added (seed §4.2).

    For each family (NN, GP, NTKA, ...) and each pair of consecutive depths
    :math:`L < L'` present in the run, on the n trials both methods have:

    .. math:: \Delta = 100\,\Bigl(\frac{\bar r_{L'}}{\bar r_{L}} - 1\Bigr)\ \%

    ``change_ci_low, change_ci_high``: its 95 % interval from the delta method on the log of
    the ratio of paired means (:func:`~ntklab.report.stats.ratio_of_means`); ``p_t``: the
    paired t-test of the per-trial difference. ``seed_change_pct`` is the same formula
    applied to the seed's table.

    Returns
    -------
    DataFrame
        ``point, family, method_from, method_to, n, mean_from, mean_to, change_pct,
        change_ci_low, change_ci_high, p_t`` (+ ``seed_change_pct``).
    """
    run.require_finished()
    seed = seed_comparison(run, compare_seed) and metric == "rmse"
    rows = []
    for point in run.point_ids:
        present = [m for m in run.final(metric, point).columns]
        for family, by_depth in _families(run, present, point).items():
            depths = sorted(by_depth)
            for da, db in zip(depths[:-1], depths[1:], strict=True):
                a, b = by_depth[da], by_depth[db]
                both = run.common_trials([a, b], metric, point)
                xa, xb = both[a], both[b]
                r = ratio_of_means(xb, xa)
                row = {
                    "point": point,
                    "family": family,
                    "method_from": a,
                    "method_to": b,
                    "n": r["n"],
                    "mean_from": r["mean_b"],
                    "mean_to": r["mean_a"],
                    "change_pct": 100 * (r["ratio"] - 1),
                    "change_ci_low": 100 * (r["ci_low"] - 1),
                    "change_ci_high": 100 * (r["ci_high"] - 1),
                    "p_t": paired_stats(xb, xa)["p_t"],
                }
                if seed:
                    ra, rb = SEED_TABLE.get(a), SEED_TABLE.get(b)
                    row["seed_change_pct"] = (
                        _pct(ra.mean_rmse, rb.mean_rmse) if ra and rb else math.nan
                    )
                rows.append(row)
    cols = [
        "point",
        "family",
        "method_from",
        "method_to",
        "n",
        "mean_from",
        "mean_to",
        "change_pct",
        "change_ci_low",
        "change_ci_high",
        "p_t",
    ]
    return pd.DataFrame(rows, columns=cols + (["seed_change_pct"] if seed else []))


def _pct(a: float, b: float) -> float:
    return 100.0 * (b - a) / a if a else math.nan


def nn_ntk_ratios(
    run: Run, *, metric: str = "rmse", compare_seed: bool | None = None
) -> pd.DataFrame:
    r"""Mean ``metric`` of each network over that of each kernel method of the same depth.

    Kernel methods are the non-network methods with a depth (NTK and NNGP kernels; the
    Laplacian has none). Everything is computed on the n trials both methods have:
    ``nn_kernel_ratio`` = :math:`\bar r_{NN} / \bar r_{kernel}` with its 95 % delta-method
    interval ``ratio_ci_low, ratio_ci_high`` (:func:`~ntklab.report.stats.ratio_of_means`),
    and the paired difference NN − kernel ``mean_diff`` with its 95 % t interval
    ``ci_low, ci_high``. ``same_parameterization`` marks the kernel of the network's own
    parameterization (its theoretical limit). ``seed_ratio`` is computed from the seed's table.

    Returns
    -------
    DataFrame
        ``point, depth, network, kernel, same_parameterization, n, nn_kernel_ratio,
        ratio_ci_low, ratio_ci_high, mean_diff, ci_low, ci_high`` (+ ``seed_ratio``).
    """
    run.require_finished()
    seed = seed_comparison(run, compare_seed) and metric == "rmse"
    rows = []
    for point in run.point_ids:
        present = list(run.final(metric, point).columns)
        nets = [m for m in present if run.is_network(m)]
        kernels = [m for m in present if not run.is_network(m)]
        for net in nets:
            ni = run.method_info(net)
            depth = method_depth(run, net, point)
            for ker in kernels:
                ki = run.method_info(ker)
                if depth is None or method_depth(run, ker, point) != depth:
                    continue
                both = run.common_trials([net, ker], metric, point)
                xn, xk = both[net], both[ker]
                r = ratio_of_means(xn, xk)
                d = paired_t(xn.to_numpy() - xk.to_numpy())
                row = {
                    "point": point,
                    "depth": depth,
                    "network": net,
                    "kernel": ker,
                    "same_parameterization": bool(
                        ni["parameterization"] and ni["parameterization"] == ki["parameterization"]
                    ),
                    "n": r["n"],
                    "nn_kernel_ratio": r["ratio"],
                    "ratio_ci_low": r["ci_low"],
                    "ratio_ci_high": r["ci_high"],
                    "mean_diff": d["mean"],
                    "ci_low": d["ci_low"],
                    "ci_high": d["ci_high"],
                }
                if seed:
                    rn, rk = SEED_TABLE.get(net), SEED_TABLE.get(ker)
                    row["seed_ratio"] = rn.mean_rmse / rk.mean_rmse if rn and rk else math.nan
                rows.append(row)
    cols = [
        "point",
        "depth",
        "network",
        "kernel",
        "same_parameterization",
        "n",
        "nn_kernel_ratio",
        "ratio_ci_low",
        "ratio_ci_high",
        "mean_diff",
        "ci_low",
        "ci_high",
    ]
    return pd.DataFrame(rows, columns=cols + (["seed_ratio"] if seed else []))


def paired_differences(
    run: Run,
    a: str,
    b: str,
    *,
    metric: str = "rmse",
    point: int | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Paired per-trial differences ``a - b`` of ``metric`` (same trial = same data).

    Only trials where both methods have a finite value are paired. See :func:`paired_stats`
    for the formulas (95 % t interval, paired t-test, Wilcoxon signed-rank).

    Returns
    -------
    DataFrame
        One row per sweep point (or the given ``point``): ``point, a, b, n, mean_a, mean_b,
        mean_diff, sd_diff, ci_low, ci_high, t, p_t, p_wilcoxon``.
    """
    run.require_finished()
    run.check_method(a, "method a")
    run.check_method(b, "method b")
    if not 0 < confidence < 1:
        raise ReportError(f"confidence must be in (0, 1); got {confidence}")
    points = run.point_ids if point is None else [point]
    rows = []
    for p in points:
        run.check_point(p)
        wide = run.final(metric, p)
        xa = wide[a] if a in wide else pd.Series(dtype=float)
        xb = wide[b] if b in wide else pd.Series(dtype=float)
        xa, xb = xa.align(xb, join="inner")
        rows.append({"point": p, "a": a, "b": b, **paired_stats(xa, xb, confidence=confidence)})
    return pd.DataFrame(rows)
