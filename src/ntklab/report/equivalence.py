"""Equivalence tables of a stored run: the methods that tie with a reference by two
one-sided paired tests (TOST) at a declared margin (:func:`tost_table`,
:func:`ties_with_generator`), and network-vs-NTK measures over a width sweep
(:func:`equivalence_table`, :func:`width_slopes`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .protocol import resolve_generator
from .runs import ReportError, Run, report_settings
from .stats import holm, mean_se, tost_paired

__all__ = [
    "tost_table",
    "ties_with_generator",
    "equivalence_table",
    "width_slopes",
    "TOST_COLUMNS",
    "EQUIVALENCE_METRICS",
]

#: Per-network measures of the NTK equivalence (see :data:`ntklab.metrics.METRICS`).
EQUIVALENCE_METRICS = (
    "rmse",
    "ntk_same_t_rmse",
    "ntk_inf_rmse",
    "nn_lin_rms",
    "nn_lin_rel",
    "nn_mean_rms",
    "kernel_drift",
    "finite_width_error",
    "diverged",
)


#: Columns of :func:`tost_table`.
TOST_COLUMNS = [
    "point",
    "method",
    "reference",
    "n",
    "mean_method",
    "mean_reference",
    "mean_diff",
    "ci_low",
    "ci_high",
    "ci_tost_low",
    "ci_tost_high",
    "margin_rel",
    "margin",
    "p_tost",
    "p_tost_holm",
    "verdict",
    "p_t",
    "p_beyond",
    "p_beyond_holm",
]


def tost_table(
    run: Run,
    comparisons: list[tuple[int, str, str]],
    *,
    metric: str = "rmse",
    margin: float | None = None,
    alpha: float | None = None,
) -> pd.DataFrame:
    r"""Equivalence of paired methods by two one-sided tests (TOST), Holm-adjusted across the
    family of all the comparisons given.

    For each ``(point, method, reference)``, on the n trials both have, with
    :math:`d_i = r_i(\text{method}) - r_i(\text{reference})`: the margin is
    :math:`\delta = \text{margin\_rel} \times \bar r(\text{reference})` (the reference's mean
    over the same trials) and TOST tests :math:`|\mu_d| < \delta` by the paired t statistics
    :math:`(\bar d \pm \delta) / (s_d/\sqrt n)` (:func:`~ntklab.report.stats.tost`). The
    verdict is ``equivalent`` when the Holm-adjusted TOST p-value is at most ``alpha``, else
    ``not shown equivalent``: that is never evidence of a difference.

    Columns: ``mean_diff`` with its 95 % t interval ``ci_low, ci_high``; ``ci_tost_low,
    ci_tost_high`` the :math:`1 - 2\alpha` interval TOST implies (inside
    :math:`(-\delta, \delta)` exactly when the raw ``p_tost`` :math:`\le \alpha`); ``p_t``
    the ordinary two-sided paired t-test of no difference; ``p_beyond`` (and Holm-adjusted)
    the test that the difference exceeds the margin (the 95 % interval entirely outside
    :math:`(-\delta, \delta)`).

    Parameters
    ----------
    margin, alpha : float, optional
        Relative margin and level (default: :func:`report_settings`).
    """
    run.require_finished()
    settings = report_settings(run, margin=margin, alpha=alpha)
    rel, level = settings["equivalence_margin"], settings["alpha"]
    rows = []
    for point, method, ref in comparisons:
        both = run.common_trials([method, ref], metric, point)
        x, y = both[method], both[ref]
        ref_mean = float(y.mean()) if len(y) else math.nan
        delta = rel * abs(ref_mean)
        row: dict[str, Any] = {
            "point": point,
            "method": method,
            "reference": ref,
            "margin_rel": rel,
            "margin": delta,
        }
        if np.isfinite(delta) and delta > 0:
            t = tost_paired(x, y, delta, alpha=level)
            row.update(
                n=t["n"],
                mean_method=t["mean_x"],
                mean_reference=t["mean_y"],
                mean_diff=t["mean_diff"],
                ci_low=t["ci_low"],
                ci_high=t["ci_high"],
                ci_tost_low=t["ci_tost_low"],
                ci_tost_high=t["ci_tost_high"],
                p_tost=t["p_tost"],
                p_t=t["p_t"],
                p_beyond=t["p_beyond"],
            )
        else:
            row.update(n=len(x), p_tost=math.nan, p_beyond=math.nan)
        rows.append(row)
    df = pd.DataFrame(rows, columns=TOST_COLUMNS)
    if len(df):
        df["p_tost_holm"] = holm(df["p_tost"].to_numpy(float))
        df["p_beyond_holm"] = holm(df["p_beyond"].to_numpy(float))
        df["verdict"] = [
            "equivalent" if np.isfinite(p) and p <= level else "not shown equivalent"
            for p in df["p_tost_holm"]
        ]
        for col in ("n", "point"):
            df[col] = df[col].astype(int)
    return df


def ties_with_generator(
    run: Run,
    generator: str | None = None,
    *,
    metric: str = "rmse",
    alpha: float | None = None,
    margin: float | None = None,
) -> pd.DataFrame:
    """Which methods are *equivalent* to the generating kernel: TOST at the declared margin,
    Holm-adjusted across all the methods compared (:func:`tost_table`).

    A method ties with the generator (``verdict == "equivalent"``) only when the two one-sided
    paired tests show its mean RMSE within ``margin`` (relative to the generator's mean) of
    the generator's; a non-significant difference test is not a tie.

    Parameters
    ----------
    generator : str, optional
        The generating method; default from :func:`resolve_generator`.
    alpha, margin : float, optional
        Level and relative margin (default: the config's ``report`` table, else 0.05 and 0.02).

    Returns
    -------
    DataFrame
        :data:`TOST_COLUMNS`, ``reference`` = the generator, one row per other method and point.

    Raises
    ------
    ReportError
        If the generator is unknown (pass ``generator=``), or alpha / margin are invalid.
    """
    run.require_finished()
    gen = resolve_generator(run, generator)
    if gen is None:
        raise ReportError(
            "the run's config names no data.generator that matches one of its methods; pass "
            "the generating method explicitly (generator='NTKB1' or --generator NTKB1)"
        )
    report_settings(run, margin=margin, alpha=alpha)
    comparisons = []
    for point in run.point_ids:
        wide = run.final(metric, point)
        if gen in wide:
            comparisons += [(point, m, gen) for m in wide.columns if m != gen]
    return tost_table(run, comparisons, metric=metric, margin=margin, alpha=alpha)


def equivalence_table(run: Run) -> pd.DataFrame:
    """Network-vs-NTK measures per network method and sweep point (mean and SE over trials).

    Columns: ``point, method, width, n`` then, for each metric of
    :data:`EQUIVALENCE_METRICS` the run stored, ``<metric>`` (mean) and ``<metric>_se``
    (``diverged`` is the fraction of trials that diverged). Empty if the run has no
    network methods with these measures.
    """
    run.require_finished()
    present = [m for m in EQUIVALENCE_METRICS if m != "rmse" and run.has_metric(m)]
    if not set(present) - {"diverged"}:
        return pd.DataFrame(columns=["point", "method", "width", "n"])
    metrics = ["rmse", *present]
    rows = []
    for point in run.point_ids:
        finals = {k: run.final(k, point) for k in metrics}
        for method in run.network_methods:
            if not any(method in finals[k] for k in present):
                continue
            row: dict[str, Any] = {
                "point": point,
                "method": method,
                "width": run.width(point, method),
            }
            row["n"] = int(finals["rmse"][method].notna().sum()) if method in finals["rmse"] else 0
            for k in metrics:
                n, mean, se = (
                    mean_se(finals[k][method]) if method in finals[k] else (0, math.nan, math.nan)
                )
                row[k], row[f"{k}_se"] = mean, se
            rows.append(row)
    return pd.DataFrame(rows)


def width_slopes(run: Run, metric: str = "nn_lin_rms") -> pd.DataFrame:
    r"""Log-log slope of ``metric`` against width, per network method.

    Least squares of :math:`\log \bar m(n)` on :math:`\log n` over the sweep points
    (:math:`\bar m` the mean over trials at width n). Wide-network theory (Lee et al. 2019)
    predicts slope :math:`-1/2` for the NN-NTK discrepancy and the kernel drift.

    Returns
    -------
    DataFrame
        ``method, metric, n_widths, slope, slope_se`` (slope_se NaN with 2 widths).
    """
    eq = equivalence_table(run)
    rows = []
    if metric not in eq.columns:
        return pd.DataFrame(columns=["method", "metric", "n_widths", "slope", "slope_se"])
    for method, grp in eq.groupby("method", sort=False):
        g = grp[np.isfinite(grp["width"]) & (grp["width"] > 0) & (grp[metric] > 0)]
        widths = g.groupby("width")[metric].mean()
        if len(widths) < 2:
            continue
        lx, ly = np.log(widths.index.to_numpy(float)), np.log(widths.to_numpy(float))
        fit = stats.linregress(lx, ly)
        rows.append(
            {
                "method": method,
                "metric": metric,
                "n_widths": len(widths),
                "slope": float(fit.slope),
                "slope_se": float(fit.stderr) if len(widths) > 2 else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=["method", "metric", "n_widths", "slope", "slope_se"])
