"""Tables and analyses of a stored run, computed from the raw rows of its store.

Every number a report prints comes from a function here, each returning a
:class:`pandas.DataFrame` with one row per sweep point (``point``) and method or pair:

* :func:`main_table` -- finished trials, mean test RMSE and its standard error per method,
  with the seed's numbers (:mod:`ntklab.report.reference`) alongside for ``paper`` runs.
* :func:`layer_change` -- percentage change of the mean RMSE from 1 to 2 hidden layers, per
  family (the seed's §4.2), ours and the seed's, with a paired test of the change.
* :func:`nn_ntk_ratios` -- mean RMSE of each network over each kernel of the same depth.
* :func:`paired_differences` -- per-trial paired differences of two methods: mean, 95 %
  t confidence interval, paired t-test and Wilcoxon signed-rank p-values.
* :func:`ties_with_generator` -- which methods are statistically tied with the kernel that
  generated the data.
* :func:`equivalence_table`, :func:`width_slopes` -- network-vs-NTK measures over a width sweep.

Only trials whose status is ``done`` enter any table; a run in progress or with failed
trials is reported on what is finished, and :meth:`Run.notes` says so.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..store import FINAL, RunStore, StoreError
from .reference import SEED_GENERATOR, SEED_TABLE

__all__ = [
    "ReportError",
    "Run",
    "load_run",
    "main_table",
    "layer_change",
    "nn_ntk_ratios",
    "paired_differences",
    "ties_with_generator",
    "resolve_generator",
    "equivalence_table",
    "width_slopes",
    "EQUIVALENCE_METRICS",
    "NETWORK_KINDS",
]

#: ``methods.kind`` values (lower case) that denote a trained finite network.
NETWORK_KINDS = frozenset({"network", "nn", "net", "mlp"})

#: Per-network measures of the NTK equivalence (see :data:`ntklab.store.METRICS`).
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


class ReportError(ValueError):
    """A run, or a request about it, that a report cannot serve (a one-line message)."""


# ---- the run ---------------------------------------------------------------------------------
@dataclass(eq=False)
class Run:
    """A stored run, read once into memory.

    Attributes
    ----------
    path : Path
        The run directory.
    meta : dict
        The ``meta`` table (``config``, ``config_hash``, ``assumed``, ``versions``, ...).
    points : DataFrame
        ``point, params`` (params: dict keyed by dotted config path; ``{}`` without a sweep).
    methods : DataFrame
        ``method, kind, label, family, depth, parameterization, spec``, in the run's order.
    trials : DataFrame
        Every trial row, whatever its status.
    results : DataFrame
        ``point, trial, method, metric, step, value`` of the *finished* (``done``) trials only.
    errors : DataFrame
        Methods that failed inside trials.
    """

    path: Path
    meta: dict[str, Any]
    points: pd.DataFrame
    methods: pd.DataFrame
    trials: pd.DataFrame
    results: pd.DataFrame
    errors: pd.DataFrame
    _final: pd.DataFrame = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._final = self.results[self.results["step"] == FINAL]

    # -- meta ----------------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return self.meta.get("config") or {}

    @property
    def assumed(self) -> dict[str, Any]:
        """Values SPEC marks *assumed*, as the run set them ({name: value})."""
        return self.meta.get("assumed") or {}

    @property
    def versions(self) -> dict[str, Any]:
        return self.meta.get("versions") or {}

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.path.name)

    @property
    def point_ids(self) -> list[int]:
        return [int(p) for p in self.points["point"]]

    @property
    def method_names(self) -> list[str]:
        """Methods in the run's order (those of the methods table, then any others in results)."""
        names = list(self.methods["method"])
        extra = sorted(set(self._final["method"]) - set(names))
        return names + extra

    def point_params(self, point: int) -> dict[str, Any]:
        row = self.points.loc[self.points["point"] == point, "params"]
        return dict(row.iloc[0]) if len(row) else {}

    def point_label(self, point: int) -> str:
        """``point 1 (methods.NN.width = 1024)``, or ``all trials`` without a sweep."""
        params = self.point_params(point)
        if not params:
            return "all trials" if len(self.points) <= 1 else f"point {point}"
        inner = ", ".join(f"{k} = {v}" for k, v in params.items())
        return f"point {point} ({inner})"

    def method_info(self, method: str) -> dict[str, Any]:
        row = self.methods.loc[self.methods["method"] == method]
        if not len(row):
            return {
                "method": method,
                "kind": "",
                "label": method,
                "family": None,
                "depth": None,
                "parameterization": None,
                "spec": {},
            }
        info = row.iloc[0].to_dict()
        info["depth"] = None if pd.isna(info.get("depth")) else int(info["depth"])
        for key in ("family", "parameterization", "label", "kind"):
            if isinstance(info.get(key), float) and math.isnan(info[key]):
                info[key] = None
        info["label"] = info.get("label") or method
        return info

    def is_network(self, method: str) -> bool:
        """True for a trained finite network (``kind`` in :data:`NETWORK_KINDS` or family NN)."""
        info = self.method_info(method)
        return str(info.get("kind") or "").lower() in NETWORK_KINDS or info.get("family") == "NN"

    @property
    def network_methods(self) -> list[str]:
        return [m for m in self.method_names if self.is_network(m)]

    # -- trial status --------------------------------------------------------------------------
    @property
    def n_expected(self) -> int | None:
        """Trials the run will have when complete (``n_trials`` x sweep points), if known."""
        n = self.meta.get("n_trials")
        return int(n) * max(len(self.points), 1) if n is not None else None

    @property
    def n_done(self) -> int:
        return int((self.trials["status"] == "done").sum())

    @property
    def n_failed(self) -> int:
        return int((self.trials["status"] == "failed").sum())

    def require_finished(self) -> None:
        """Raise :class:`ReportError` if no trial has finished yet."""
        if self.n_done == 0:
            of = f" of {self.n_expected}" if self.n_expected is not None else ""
            failed = f", {self.n_failed} failed" if self.n_failed else ""
            raise ReportError(
                f"run {self.path} has no finished trials yet (0{of}{failed}); wait for "
                "`ntklab run` to finish a trial (see `ntklab status RUN_DIR`)"
            )

    # -- values --------------------------------------------------------------------------------
    def final(self, metric: str = "rmse", point: int | None = None) -> pd.DataFrame:
        """Final values of ``metric``: index ``(point, trial)``, one column per method.

        Non-finite values (e.g. the RMSE of a diverged network) become NaN.
        """
        df = self._final[self._final["metric"] == metric]
        if point is not None:
            df = df[df["point"] == point]
        wide = df.pivot(index=["point", "trial"], columns="method", values="value")
        wide = wide.reindex(columns=[m for m in self.method_names if m in wide.columns])
        wide.columns.name = None
        return wide.where(np.isfinite(wide))

    def values(self, method: str, metric: str = "rmse", point: int = 0) -> pd.Series:
        """Finite final values of one method at one point, indexed by trial."""
        df = self._final
        sel = (df["method"] == method) & (df["metric"] == metric) & (df["point"] == point)
        s = df.loc[sel].set_index("trial")["value"].astype(float).sort_index()
        return s[np.isfinite(s)]

    def curves(self, metric: str, point: int | None = None) -> pd.DataFrame:
        """Rows of a training-curve metric (``step`` >= 0)."""
        df = self.results[(self.results["metric"] == metric) & (self.results["step"] != FINAL)]
        return df if point is None else df[df["point"] == point]

    def has_metric(self, metric: str) -> bool:
        return bool((self.results["metric"] == metric).any())

    def width(self, point: int, method: str) -> float:
        """Hidden-layer width of a network method at a sweep point (NaN if unknown).

        Taken from the point's params (``methods.<method>.width``, else the one key ending in
        ``width``), else from the method's spec.
        """
        params = self.point_params(point)
        for key, value in params.items():
            if key.endswith("width") and f".{method}." in f".{key}":
                return float(value)
        widths = {float(v) for k, v in params.items() if k.endswith("width")}
        if len(widths) == 1:
            return widths.pop()
        found = _find_key(self.method_info(method).get("spec") or {}, "width")
        return float(found) if isinstance(found, int | float) else math.nan

    # -- notes ---------------------------------------------------------------------------------
    def notes(self, metric: str = "rmse") -> list[str]:
        """One line each about anything incomplete: pending or failed trials, failed methods,
        diverged networks, missing values."""
        out = []
        exp = self.n_expected
        if self.n_failed:
            failed = self.trials[self.trials["status"] == "failed"]
            first = failed.iloc[0]
            msg = str(first["error"] or "no message").splitlines()[0][:200]
            out.append(
                f"{self.n_failed} trial(s) failed (first: point {first['point']} trial "
                f"{first['trial']}: {msg}); the tables use the {self.n_done} finished trial(s) only"
            )
        if exp is not None and self.n_done + self.n_failed < exp:
            out.append(
                f"run incomplete (in progress or interrupted): {self.n_done} of {exp} trials "
                f"finished; the tables use the finished ones"
            )
        if len(self.errors):
            done = set(
                zip(
                    self.trials.loc[self.trials["status"] == "done", "point"],
                    self.trials.loc[self.trials["status"] == "done", "trial"],
                    strict=True,
                )
            )
            errs = self.errors[
                [
                    (p, t) in done
                    for p, t in zip(self.errors["point"], self.errors["trial"], strict=True)
                ]
            ]
            for method, grp in errs.groupby("method", sort=False):
                msg = str(grp["message"].iloc[0]).splitlines()[0][:200]
                out.append(f"{method} failed in {len(grp)} finished trial(s) (first: {msg})")
        for point in self.point_ids:
            wide = self.final(metric, point)
            n_trials = int(
                (self.trials["point"].eq(point) & self.trials["status"].eq("done")).sum()
            )
            where = "" if len(self.points) <= 1 else f" at point {point}"
            for method in wide.columns:
                missing = n_trials - int(wide[method].notna().sum())
                if missing > 0:
                    out.append(
                        f"{method}{where}: {missing} finished trial(s) without a finite "
                        f"{metric}; excluded from its mean"
                    )
            div = self.final("diverged", point)
            for method in div.columns:
                k = int((div[method] > 0).sum())
                if k:
                    out.append(f"{method}{where}: training diverged in {k} trial(s)")
        return out


def load_run(path: str | Path) -> Run:
    """Read a run directory written by ``ntklab run``.

    Raises
    ------
    ReportError
        If ``path`` is not a run directory or its store cannot be read.
    """
    try:
        with RunStore.open(path) as store:
            meta = store.meta()
            trials = store.trials()
            results = store.results()
            run = Run(
                path=Path(path),
                meta=meta,
                points=store.points(),
                methods=store.methods(),
                trials=trials,
                results=_done_rows(results, trials),
                errors=store.errors(),
            )
    except StoreError as exc:
        raise ReportError(str(exc)) from None
    except (json.JSONDecodeError, pd.errors.DatabaseError) as exc:
        raise ReportError(f"{path} holds an unreadable ntklab store ({exc})") from None
    if not len(run.points):
        run.points = pd.DataFrame({"point": [0], "params": [{}]})
    return run


def _done_rows(results: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    done = trials.loc[trials["status"] == "done", ["point", "trial"]]
    return results.merge(done, on=["point", "trial"], how="inner").reset_index(drop=True)


def _find_key(obj: Any, key: str) -> Any:
    """First value of ``key`` in a nested dict/list structure (depth first), else None."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        items = obj.values()
    elif isinstance(obj, list):
        items = obj
    else:
        return None
    for v in items:
        found = _find_key(v, key)
        if found is not None:
            return found
    return None


# ---- statistics -------------------------------------------------------------------------------
def mean_se(x: Any) -> tuple[int, float, float]:
    r"""Number, mean and standard error of the finite values in ``x``.

    .. math:: \mathrm{SE} = s / \sqrt{n}, \qquad s^2 = \frac{1}{n-1} \sum_i (x_i - \bar x)^2

    (NaN for the SE when n < 2).
    """
    a = np.asarray(x, dtype=np.float64)
    a = a[np.isfinite(a)]
    n = a.size
    if n == 0:
        return 0, math.nan, math.nan
    se = float(a.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return n, float(a.mean()), se


def paired_stats(x: Any, y: Any, *, confidence: float = 0.95) -> dict[str, float]:
    r"""Paired comparison of ``x`` and ``y`` (same trials, same order); differences ``x - y``.

    With :math:`d_i = x_i - y_i`, :math:`\bar d`, :math:`s_d` (ddof 1) and n pairs:

    .. math::
        t = \frac{\bar d}{s_d/\sqrt{n}}, \qquad
        \mathrm{CI} = \bar d \pm t_{n-1,\,(1+c)/2}\, s_d/\sqrt{n}

    p-values: two-sided paired t-test (:func:`scipy.stats.ttest_rel`) and Wilcoxon
    signed-rank test (:func:`scipy.stats.wilcoxon`, exact for small n, zero differences
    dropped). NaN where undefined (n < 2, all differences equal).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    d = x - y
    n = d.size
    out = {
        "n": n,
        "mean_a": math.nan,
        "mean_b": math.nan,
        "mean_diff": math.nan,
        "sd_diff": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "t": math.nan,
        "p_t": math.nan,
        "p_wilcoxon": math.nan,
    }
    if n == 0:
        return out
    out.update(mean_a=float(x.mean()), mean_b=float(y.mean()), mean_diff=float(d.mean()))
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    out.update(sd_diff=sd, ci_low=out["mean_diff"] - half, ci_high=out["mean_diff"] + half)
    if sd > 0:
        res = stats.ttest_rel(x, y)
        out.update(t=float(res.statistic), p_t=float(res.pvalue))
    if np.any(d != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out["p_wilcoxon"] = float(stats.wilcoxon(d).pvalue)
            except ValueError:
                pass
    return out


# ---- tables ------------------------------------------------------------------------------------
def compares_with_seed(run: Run) -> bool:
    """True for a run of the seed's experiment: its method names include all of the seed's,
    its data are simulated (not a real data set) and generated by the seed's NTKB1 (when the
    config says)."""
    if not set(SEED_TABLE) <= set(run.method_names):
        return False
    data = run.config.get("data") if isinstance(run.config, dict) else None
    if isinstance(data, dict):
        if data.get("dataset", "simulated") not in (None, "simulated"):
            return False
        if data.get("generator") is not None:
            return _generator_from_config(run) == SEED_GENERATOR
    return True


def main_table(run: Run, *, metric: str = "rmse", compare_seed: bool | None = None) -> pd.DataFrame:
    """Mean and standard error of ``metric`` per method and sweep point.

    Parameters
    ----------
    run : Run
    metric : str
        A final metric (default test RMSE).
    compare_seed : bool, optional
        Add the seed's mean and SE and the ratio ours/seed (default: when the run's method
        names include all of the seed's, see :func:`compares_with_seed`; only for ``rmse``).

    Returns
    -------
    DataFrame
        ``point, method, label, n, mean, se`` (+ ``seed_mean, seed_se, ratio``), where ``n``
        counts finished trials with a finite value and ``se`` = sample SD / sqrt(n).
    """
    run.require_finished()
    seed = _seed_flag(run, compare_seed) and metric == "rmse"
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
                "mean": mean,
                "se": se,
            }
            if seed:
                ref = SEED_TABLE.get(method)
                row["seed_mean"] = ref.mean_rmse if ref else math.nan
                row["seed_se"] = ref.se if ref else math.nan
                row["ratio"] = mean / ref.mean_rmse if ref else math.nan
            rows.append(row)
    cols = ["point", "method", "label", "n", "mean", "se"]
    if seed:
        cols += ["seed_mean", "seed_se", "ratio"]
    return pd.DataFrame(rows, columns=cols)


def _seed_flag(run: Run, compare_seed: bool | None) -> bool:
    return compares_with_seed(run) if compare_seed is None else bool(compare_seed)


def _families(run: Run, methods: list[str]) -> dict[str, dict[int, str]]:
    """{family: {depth: method}} for methods with both a family and a depth."""
    fam: dict[str, dict[int, str]] = {}
    for m in methods:
        info = run.method_info(m)
        if info["family"] and info["depth"] is not None:
            fam.setdefault(info["family"], {})[info["depth"]] = m
    return fam


def layer_change(
    run: Run, *, metric: str = "rmse", compare_seed: bool | None = None
) -> pd.DataFrame:
    r"""Percentage change of the mean ``metric`` when a hidden layer is added (seed §4.2).

    For each family (NN, GP, NTKA, ...) and each pair of consecutive depths
    :math:`L < L'` present in the run:

    .. math:: \Delta = 100\,\frac{\bar r_{L'} - \bar r_{L}}{\bar r_{L}}\ \%

    with :math:`\bar r` the mean over finished trials (as in :func:`main_table`). ``p_t`` is
    the paired t-test of the per-trial difference (same data in both methods of a trial).
    ``seed_change_pct`` is the same formula applied to the seed's table.

    Returns
    -------
    DataFrame
        ``point, family, method_from, method_to, mean_from, mean_to, change_pct, p_t``
        (+ ``seed_change_pct``).
    """
    table = main_table(run, metric=metric, compare_seed=False)
    seed = _seed_flag(run, compare_seed) and metric == "rmse"
    rows = []
    for point in run.point_ids:
        at = table[table["point"] == point].set_index("method")
        wide = run.final(metric, point)
        for family, by_depth in _families(run, list(at.index)).items():
            depths = sorted(by_depth)
            for da, db in zip(depths[:-1], depths[1:], strict=True):
                a, b = by_depth[da], by_depth[db]
                ma, mb = at.loc[a, "mean"], at.loc[b, "mean"]
                row = {
                    "point": point,
                    "family": family,
                    "method_from": a,
                    "method_to": b,
                    "mean_from": ma,
                    "mean_to": mb,
                    "change_pct": _pct(ma, mb),
                    "p_t": paired_stats(wide[b], wide[a])["p_t"],
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
        "mean_from",
        "mean_to",
        "change_pct",
        "p_t",
    ]
    return pd.DataFrame(rows, columns=cols + (["seed_change_pct"] if seed else []))


def _pct(a: float, b: float) -> float:
    return 100.0 * (b - a) / a if a else math.nan


def nn_ntk_ratios(
    run: Run, *, metric: str = "rmse", compare_seed: bool | None = None
) -> pd.DataFrame:
    """Mean ``metric`` of each network over that of each kernel method of the same depth.

    Kernel methods are the non-network methods with a depth (NTK and NNGP kernels; the
    Laplacian has none). ``same_parameterization`` marks the kernel of the network's own
    parameterization (its theoretical limit). ``seed_ratio`` is computed from the seed's table.

    Returns
    -------
    DataFrame
        ``point, depth, network, kernel, same_parameterization, nn_kernel_ratio`` (+ ``seed_ratio``).
    """
    table = main_table(run, metric=metric, compare_seed=False)
    seed = _seed_flag(run, compare_seed) and metric == "rmse"
    rows = []
    for point in run.point_ids:
        at = table[table["point"] == point].set_index("method")
        nets = [m for m in at.index if run.is_network(m)]
        kernels = [m for m in at.index if not run.is_network(m)]
        for net in nets:
            ni = run.method_info(net)
            for ker in kernels:
                ki = run.method_info(ker)
                if ni["depth"] is None or ki["depth"] != ni["depth"]:
                    continue
                row = {
                    "point": point,
                    "depth": ni["depth"],
                    "network": net,
                    "kernel": ker,
                    "same_parameterization": bool(
                        ni["parameterization"] and ni["parameterization"] == ki["parameterization"]
                    ),
                    "nn_kernel_ratio": at.loc[net, "mean"] / at.loc[ker, "mean"],
                }
                if seed:
                    rn, rk = SEED_TABLE.get(net), SEED_TABLE.get(ker)
                    row["seed_ratio"] = rn.mean_rmse / rk.mean_rmse if rn and rk else math.nan
                rows.append(row)
    cols = ["point", "depth", "network", "kernel", "same_parameterization", "nn_kernel_ratio"]
    return pd.DataFrame(rows, columns=cols + (["seed_ratio"] if seed else []))


def _check_method(run: Run, method: str, what: str) -> str:
    if method not in run.method_names:
        raise ReportError(
            f"{what} {method!r} is not a method of run {run.path}; choose one of "
            f"{', '.join(run.method_names)}"
        )
    return method


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
    _check_method(run, a, "method a")
    _check_method(run, b, "method b")
    if not 0 < confidence < 1:
        raise ReportError(f"confidence must be in (0, 1); got {confidence}")
    points = run.point_ids if point is None else [point]
    rows = []
    for p in points:
        if p not in run.point_ids:
            raise ReportError(
                f"point {p} is not a sweep point of the run; choose one of {run.point_ids}"
            )
        wide = run.final(metric, p)
        xa = wide[a] if a in wide else pd.Series(dtype=float)
        xb = wide[b] if b in wide else pd.Series(dtype=float)
        xa, xb = xa.align(xb, join="inner")
        rows.append({"point": p, "a": a, "b": b, **paired_stats(xa, xb, confidence=confidence)})
    return pd.DataFrame(rows)


def resolve_generator(run: Run, generator: str | None = None) -> str | None:
    """The method that equals the data's generating kernel.

    Order: the ``generator`` argument; the run config's ``data.generator`` (a method name, a
    dict naming one under ``name``/``method``, or a dict of ``kind``/``family``/``depth``/
    ``parameterization`` that matches exactly one kernel method); for a run with the seed's
    methods and no such config entry, the seed's generator NTKB1 (SPEC §4). None if unknown.
    """
    if generator is not None:
        return _check_method(run, generator, "generator")
    data = run.config.get("data") if isinstance(run.config, dict) else None
    if isinstance(data, dict) and data.get("generator") is not None:
        return _generator_from_config(run)
    if compares_with_seed(run):
        return SEED_GENERATOR
    return None


def _generator_from_config(run: Run) -> str | None:
    gen = run.config["data"]["generator"]
    names = run.method_names
    if isinstance(gen, str):
        return gen if gen in names else None
    if not isinstance(gen, dict):
        return None
    for key in ("name", "method"):
        if isinstance(gen.get(key), str) and gen[key] in names:
            return gen[key]
    found = [m for m in names if not run.is_network(m) and _matches(run.method_info(m), gen)]
    return found[0] if len(found) == 1 else None


def _matches(info: dict[str, Any], spec: dict[str, Any]) -> bool:
    """Does a method (its methods-table row and spec) match a generator description?"""
    if "kind" not in spec or str(spec["kind"]).lower() != str(info.get("kind") or "").lower():
        return False
    keys = [k for k in ("family", "depth", "parameterization") if k in spec]
    if not all(info.get(k) == spec[k] for k in keys):
        return False
    mspec = info.get("spec") or {}
    for k in ("sigma_w", "sigma_b", "length_scale"):
        if spec.get(k) is not None and mspec.get(k) is not None:
            if not math.isclose(float(spec[k]), float(mspec[k]), rel_tol=1e-12):
                return False
    return True


def ties_with_generator(
    run: Run, generator: str | None = None, *, metric: str = "rmse", alpha: float = 0.05
) -> pd.DataFrame:
    """Which methods are statistically tied with the generating kernel.

    For every other method m, the paired differences ``m - generator`` over the finished
    trials (:func:`paired_stats`). A method is *tied* when the two-sided paired t-test does
    not reject equal means at level ``alpha`` (p > alpha); the Wilcoxon p-value is reported
    alongside. No multiple-comparison correction is applied: with 10 methods, expect about
    one in two runs to show a spurious difference at the 5 % level somewhere.

    Parameters
    ----------
    generator : str, optional
        The generating method; default from :func:`resolve_generator`.

    Returns
    -------
    DataFrame
        ``point, method, generator, n, mean_diff, ci_low, ci_high, p_t, p_wilcoxon, tied``.

    Raises
    ------
    ReportError
        If the generator is unknown (pass ``generator=``).
    """
    run.require_finished()
    gen = resolve_generator(run, generator)
    if gen is None:
        raise ReportError(
            "the run's config names no data.generator that matches one of its methods; pass "
            "the generating method explicitly (generator='NTKB1' or --generator NTKB1)"
        )
    if not 0 < alpha < 1:
        raise ReportError(f"alpha must be in (0, 1); got {alpha}")
    rows = []
    for point in run.point_ids:
        wide = run.final(metric, point)
        if gen not in wide:
            continue
        for m in wide.columns:
            if m == gen:
                continue
            s = paired_stats(wide[m], wide[gen])
            rows.append(
                {
                    "point": point,
                    "method": m,
                    "generator": gen,
                    "n": s["n"],
                    "mean_diff": s["mean_diff"],
                    "ci_low": s["ci_low"],
                    "ci_high": s["ci_high"],
                    "p_t": s["p_t"],
                    "p_wilcoxon": s["p_wilcoxon"],
                    "tied": bool(s["p_t"] > alpha)
                    if np.isfinite(s["p_t"])
                    else bool(s["n"] >= 2 and s["mean_diff"] == 0),
                }
            )
    cols = [
        "point",
        "method",
        "generator",
        "n",
        "mean_diff",
        "ci_low",
        "ci_high",
        "p_t",
        "p_wilcoxon",
        "tied",
    ]
    return pd.DataFrame(rows, columns=cols)


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
