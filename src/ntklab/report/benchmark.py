r"""The real-data benchmark: mean ± SE per data set, average ranks, paired comparisons of the
NTK against each baseline, and every method's chosen hyperparameters.

A benchmark run is a study with repeated k-fold cross-validation (``data.folds``), usually
swept over ``data.dataset``; its methods record ``error`` (test RMSE on the target
standardized by the fold's training rows, or the misclassification rate) and their chosen hyperparameters as ``hp_<name>``
(:mod:`ntklab.tuned`).

* :func:`benchmark_table` -- mean ± SE of ``error`` per data set (rows) and method.
* :func:`average_ranks` -- per data set, methods ranked by mean error (1 = best, ties share
  the mean rank); the average over data sets (Demšar 2006).
* :func:`benchmark_comparisons` -- the reference (the first ``gp_ntk`` method) against every
  other method on each data set: mean paired difference of the per-fold errors with the
  corrected resampled t-test of Nadeau & Bengio (2003), whose variance
  :math:`(1/J + n_\text{test}/n_\text{train})\,s_d^2` accounts for the overlap of the
  training sets of the J = repeats × k folds (:math:`n_\text{test}/n_\text{train} = 1/(k-1)`),
  p-values Holm-adjusted across every comparison of the table.
* :func:`hyperparameter_table` -- median (and range) over folds of each chosen hyperparameter.

References
----------
Demšar, J. (2006). Statistical comparisons of classifiers over multiple data sets. JMLR 7.
Nadeau, C. and Bengio, Y. (2003). Inference for the generalization error. Mach. Learn. 52.
Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scand. J. Statist. 6.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .runs import Run
from .stats import holm, mean_se

__all__ = [
    "is_benchmark",
    "benchmark_reference",
    "benchmark_table",
    "average_ranks",
    "benchmark_comparisons",
    "hyperparameter_table",
    "comparison_summary",
    "benchmark_parts",
    "ERROR_METRIC",
]

#: The metric every benchmark method records (lower is better).
ERROR_METRIC = "error"


def is_benchmark(run: Run) -> bool:
    """A run of repeated k-fold cross-validation whose methods record ``error``."""
    return bool((run.config.get("data") or {}).get("folds")) and run.has_metric(ERROR_METRIC)


def _folds(run: Run) -> int:
    return int(run.config["data"]["folds"])


def dataset_name(run: Run, point: int) -> str:
    """The data set of a sweep point (``data.dataset``)."""
    return str(run.point_params(point).get("data.dataset", run.config["data"]["dataset"]))


def _task(run: Run, point: int) -> str:
    from ..data import TASKS

    return "error rate" if TASKS.get(dataset_name(run, point)) == "classification" else "RMSE"


def benchmark_reference(run: Run) -> str | None:
    """The method compared with every other: the first ``gp_ntk`` method (else None)."""
    kinds = dict(zip(run.methods["method"], run.methods["kind"], strict=True))
    for name in run.method_names:
        if kinds.get(name) == "gp_ntk":
            return name
    return None


def _errors(run: Run, point: int) -> pd.DataFrame:
    return run.final(ERROR_METRIC, point).droplevel("point")


def benchmark_table(run: Run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(numbers, display)``: per data set (rows) and method, the mean and SE of the test
    error over the finished folds (numbers: ``<method>`` and ``<method> SE`` columns;
    display: "mean ± SE", the best mean of each row in bold)."""
    rows, shown = [], []
    for point in run.point_ids:
        err = _errors(run, point)
        row = {"data set": dataset_name(run, point), "metric": _task(run, point), "n": len(err)}
        disp = dict(row)
        means = {}
        for method in err.columns:
            n, mean, se = mean_se(err[method])
            row[method], row[f"{method} SE"] = mean, se
            means[method] = mean
        best = min((v for v in means.values() if np.isfinite(v)), default=math.nan)
        for method in err.columns:
            mean, se = row[method], row[f"{method} SE"]
            text = f"{mean:.3f} ± {se:.3f}" if np.isfinite(se) else f"{mean:.3f}"
            disp[method] = f"**{text}**" if mean == best else text
        rows.append(row)
        shown.append(disp)
    return pd.DataFrame(rows), pd.DataFrame(shown)


def average_ranks(run: Run) -> pd.DataFrame:
    """Average rank of each method over the data sets (rank 1: the smallest mean error on a
    data set; ties share their mean rank), best first, with the number of data sets."""
    per = {}
    for point in run.point_ids:
        means = _errors(run, point).mean()
        per[dataset_name(run, point)] = means.rank(method="average")
    ranks = pd.DataFrame(per)
    out = pd.DataFrame(
        {
            "method": ranks.index,
            "average rank": ranks.mean(axis=1).to_numpy(),
            "data sets": ranks.notna().sum(axis=1).to_numpy(),
            "wins": (ranks == 1).sum(axis=1).to_numpy(),
        }
    )
    return out.sort_values("average rank", kind="stable").reset_index(drop=True)


def corrected_t(d: np.ndarray, test_over_train: float) -> tuple[float, float, float]:
    r"""Mean, corrected standard error and two-sided p of the corrected resampled t-test
    (Nadeau & Bengio 2003): :math:`t = \bar d / \sqrt{(1/J + r)\, s_d^2}`, J − 1 df."""
    d = d[np.isfinite(d)]
    J = d.size
    if J < 2:
        return (float(d.mean()) if J else math.nan), math.nan, math.nan
    var = float(d.var(ddof=1))
    se = math.sqrt((1.0 / J + test_over_train) * var)
    if se == 0:
        return float(d.mean()), 0.0, math.nan
    t = float(d.mean()) / se
    return float(d.mean()), se, float(2 * stats.t.sf(abs(t), J - 1))


def benchmark_comparisons(run: Run, reference: str | None = None) -> pd.DataFrame:
    """The reference against each other method, per data set: mean paired difference of the
    per-fold errors (reference − other; negative: the reference is better), its corrected
    standard error, the corrected resampled t-test p and its Holm adjustment across every
    row of the table."""
    reference = reference or benchmark_reference(run)
    if reference is None:
        return pd.DataFrame()
    ratio = 1.0 / (_folds(run) - 1)
    rows = []
    for point in run.point_ids:
        err = _errors(run, point)
        if reference not in err:
            continue
        for other in err.columns:
            if other == reference:
                continue
            both = err[[reference, other]].dropna()
            mean, se, p = corrected_t((both[reference] - both[other]).to_numpy(), ratio)
            rows.append(
                {
                    "data set": dataset_name(run, point),
                    "baseline": other,
                    "n": len(both),
                    "difference": mean,
                    "SE (corrected)": se,
                    "p": p,
                }
            )
    out = pd.DataFrame(rows)
    if len(out):
        out["p (Holm)"] = holm(out["p"].to_numpy())
        out["verdict"] = [
            "—" if not np.isfinite(p) or p > 0.05 else ("NTK better" if d < 0 else "NTK worse")
            for d, p in zip(out["difference"], out["p (Holm)"], strict=True)
        ]
    return out


def comparison_summary(run: Run, reference: str | None = None) -> pd.DataFrame:
    """The reference against each other method over the data sets: how many data sets it
    is better or worse on (mean error), the mean difference of ranks, and the Wilcoxon
    signed-rank p of the per-data-set mean errors, Holm-adjusted across the methods."""
    reference = reference or benchmark_reference(run)
    if reference is None:
        return pd.DataFrame()
    means = pd.DataFrame(
        {dataset_name(run, p): _errors(run, p).mean() for p in run.point_ids}
    ).T.dropna(how="all")
    means = means[[m for m in run.method_names if m in means.columns]]
    if reference not in means:
        return pd.DataFrame()
    ranks = means.rank(axis=1, method="average")
    rows = []
    for other in means.columns:
        if other == reference:
            continue
        both = means[[reference, other]].dropna()
        d = (both[reference] - both[other]).to_numpy()
        p = math.nan
        if np.any(d != 0):
            p = float(stats.wilcoxon(d[d != 0]).pvalue) if np.sum(d != 0) > 0 else math.nan
        rows.append(
            {
                "method": other,
                "data sets": len(both),
                "better": int(np.sum(d < 0)),
                "worse": int(np.sum(d > 0)),
                "mean rank difference": float((ranks[reference] - ranks[other]).mean()),
                "p (Wilcoxon)": p,
            }
        )
    out = pd.DataFrame(rows)
    if len(out):
        out["p (Holm)"] = holm(out["p (Wilcoxon)"].to_numpy())
    return out


def hyperparameter_table(run: Run) -> pd.DataFrame:
    """Per data set and method, each chosen hyperparameter (``hp_*`` metrics) as its median
    over the folds with its range, ``name = median [min, max]``, in one text column."""
    final = run.results[(run.results["step"] == -1) & run.results["metric"].str.startswith("hp_")]
    rows = []
    for point in run.point_ids:
        part = final[final["point"] == point]
        for method in run.method_names:
            sel = part[part["method"] == method]
            if not len(sel):
                continue
            items = []
            for metric, grp in sel.groupby("metric", sort=False):
                v = grp["value"].to_numpy(dtype=float)
                med = float(np.median(v))
                spread = "" if v.min() == v.max() else f" [{v.min():.3g}, {v.max():.3g}]"
                items.append(f"{metric[3:]} = {med:.3g}{spread}")
            rows.append(
                {"data set": dataset_name(run, point), "method": method, "chosen": "; ".join(items)}
            )
    return pd.DataFrame(rows)


def benchmark_parts(run: Run) -> list[dict]:
    """The benchmark report's sections as keyword dicts of
    :class:`ntklab.report.sections.Section`: the table, the average ranks, the paired
    comparisons and the chosen hyperparameters."""
    numbers, display = benchmark_table(run)
    folds = _folds(run)
    trials = (run.config.get("study") or {}).get("trials")
    repeats = -(-int(trials) // folds) if trials else None
    protocol = (
        f"{folds}-fold cross-validation"
        + (f" repeated {repeats} times" if repeats else "")
        + ", the same folds for every method (stratified for classes); each method tuned on "
        "its training rows only"
    )
    notes = [
        "Mean ± SE over the folds (SE = sample SD / √n, which ignores the overlap of "
        "cross-validation training sets and so understates the uncertainty); RMSE on the "
        "target standardized by each fold's training rows, or the misclassification rate; "
        "bold: the best mean of the row.",
        protocol + ".",
    ]
    max_rows = (run.config.get("data") or {}).get("max_rows")
    if max_rows:
        notes.append(
            f"Data sets with more than {max_rows} rows use a random {max_rows} of them per "
            "repeat (data.max_rows)."
        )
    if run.reductions:
        notes.append("Reduced against the full preset: " + "; ".join(run.reductions) + ".")
    parts = [
        dict(key="benchmark", title="Benchmark: test error per data set", table=numbers,
             notes=notes, display=display),
        dict(key="ranks", title="Average rank over the data sets", table=average_ranks(run),
             notes=["Rank 1: the smallest mean error on a data set (ties share their mean "
                    "rank; Demšar 2006); wins: data sets where the method ranks first."]),
    ]  # fmt: skip
    ref = benchmark_reference(run)
    comp = benchmark_comparisons(run, ref)
    if len(comp):
        parts.append(
            dict(key="ntk_vs_baselines", title=f"{ref} against each method, per data set",
                 table=comp,
                 notes=[f"difference = mean over folds of error({ref}) − error(baseline) "
                        "(negative: the NTK is better); SE and p from the corrected resampled "
                        "t-test (Nadeau & Bengio 2003: variance × (1/J + 1/(k − 1)), J folds in "
                        "all); p (Holm): adjusted across every row; verdict at 0.05."])
        )  # fmt: skip
    summary = comparison_summary(run, ref)
    if len(summary):
        parts.append(
            dict(key="ntk_vs_baselines_summary", title=f"{ref} against each method, over the data sets",
                 table=summary,
                 notes=["better / worse: data sets where the reference's mean error is lower / "
                        "higher; mean rank difference: the reference's rank minus the other's "
                        "(negative: the reference ranks better); p: Wilcoxon signed-rank test "
                        "of the per-data-set mean errors (exact; Demšar 2006), Holm-adjusted "
                        "across the methods. With few data sets it cannot reach 0.05."])
        )  # fmt: skip
    hp = hyperparameter_table(run)
    if len(hp):
        parts.append(
            dict(key="hyperparameters", title="Chosen hyperparameters (median [min, max] over folds)",
                 table=hp,
                 notes=["GPs: amplitude c and noise σ² of c·k + σ²I, σ_w, σ_b (and depth) by "
                        "marginal likelihood; ridge: λ by exact leave-one-out (ridge_relative: "
                        "λ / mean diag K); NN: width, lr (× lr_scale of 0.5 m/λ_max) and the "
                        "early-stopping epoch chosen on the validation split."])
        )  # fmt: skip
    return parts
