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
* :func:`tost_table`, :func:`ties_with_generator` -- equivalence by two one-sided paired
  tests at a declared margin, Holm-adjusted across the family of comparisons.
* :func:`equivalence_table`, :func:`width_slopes` -- network-vs-NTK measures over a width sweep.

Only trials whose status is ``done`` enter any table; a run in progress or with failed
trials is reported on what is finished, and :meth:`Run.notes` says so.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..store import FINAL, GENERATOR_METHOD, RunStore, StoreError
from .reference import SEED_GENERATOR, SEED_TABLE
from .stats import finite_rows, holm, paired_t, ratio_of_means, tost_paired

__all__ = [
    "ReportError",
    "Run",
    "load_run",
    "main_table",
    "layer_change",
    "nn_ntk_ratios",
    "paired_differences",
    "ties_with_generator",
    "tost_table",
    "resolve_generator",
    "report_settings",
    "compares_with_seed",
    "is_seed_protocol",
    "method_depth",
    "equivalence_table",
    "width_slopes",
    "REPORT_DEFAULTS",
    "TOST_COLUMNS",
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
        done = self.trials[self.trials["status"] == "done"]
        self._done: dict[int, set[int]] = {}
        for p, t in zip(done["point"], done["trial"], strict=True):
            self._done.setdefault(int(p), set()).add(int(t))
        keys = set(zip(done["point"].astype(int), done["trial"].astype(int), strict=True))
        errs = self.errors
        if len(errs):
            mask = [
                (int(p), int(t)) in keys for p, t in zip(errs["point"], errs["trial"], strict=True)
            ]
            errs = errs[mask]
        self._errors_done = errs
        self._attempted: dict[tuple[int, str], set[int]] = {}
        for df in (self.results, errs):
            for (p, m), grp in df.groupby(["point", "method"]):
                self._attempted.setdefault((int(p), str(m)), set()).update(
                    int(t) for t in grp["trial"]
                )

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
    def reductions(self) -> list[str]:
        """What a reduced preset changed against its full version (meta ``reductions``, e.g.
        ``"methods.NN2.width: 10000 -> 256"``); empty for a full run."""
        red = self.meta.get("reductions") or []
        if isinstance(red, str | dict):
            red = [red] if isinstance(red, str) else [f"{k}: {v}" for k, v in red.items()]
        return [str(r) for r in red]

    @property
    def settings(self) -> dict[str, float]:
        """The report's statistical settings: ``equivalence_margin`` (relative) and ``alpha``
        from the config's ``report`` table, else the defaults (:data:`REPORT_DEFAULTS`)."""
        return report_settings(self)

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.path.name)

    @property
    def point_ids(self) -> list[int]:
        return [int(p) for p in self.points["point"]]

    @property
    def method_names(self) -> list[str]:
        """Methods in the run's order (those of the methods table, then any others in results;
        never :data:`~ntklab.store.GENERATOR_METHOD`, whose rows are about the data)."""
        names = list(self.methods["method"])
        extra = sorted(set(self._final["method"]) - set(names) - {GENERATOR_METHOD})
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

    def method_trial_limit(self, method: str) -> int | None:
        """The method's own trial count (``trials`` in its resolved spec, or in the config's
        ``methods`` entry), when it runs in fewer trials than the study; else None."""
        spec = self.method_info(method).get("spec") or {}
        value = spec.get("trials") if isinstance(spec, dict) else None
        if value is None:
            entries = self.config.get("methods") if isinstance(self.config, dict) else None
            if isinstance(entries, dict):
                entries = [dict(v, name=k) for k, v in entries.items() if isinstance(v, dict)]
            for entry in entries or []:
                if isinstance(entry, dict) and entry.get("name") == method:
                    value = entry.get("trials")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return int(value)

    def expected_trials(self, method: str, point: int) -> int:
        """Finished trials at ``point`` that should have a value of ``method``: all of them,
        or with a per-method trial count the first ``trials`` of them (and any other in which
        the method wrote a row or failed)."""
        done = self._done.get(point, set())
        limit = self.method_trial_limit(method)
        if limit is None:
            return len(done)
        tried = self._attempted.get((point, method), set())
        return len({t for t in done if t < limit} | (tried & done))

    def n_diverged(self, method: str, point: int) -> int:
        """Finished trials at ``point`` in which the network ``method`` diverged."""
        div = self.final("diverged", point)
        return int((div[method] > 0).sum()) if method in div else 0

    def n_method_errors(self, method: str, point: int) -> int:
        """Finished trials at ``point`` in which ``method`` raised an error."""
        err = self._errors_done
        sel = (err["point"] == point) & (err["method"] == method)
        return int(err.loc[sel, "trial"].nunique())

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

    def jitter(self, point: int | None = None) -> pd.DataFrame:
        """The nonzero jitter of the finished trials: columns ``point, trial, method, value``,
        ``method`` :data:`~ntklab.store.GENERATOR_METHOD` for the data generator's Cholesky
        factor (metric ``generator_jitter``), else a method's Cholesky solve (``jitter``)."""
        df = self._final
        sel = df["metric"].isin(("jitter", "generator_jitter")) & (df["value"] != 0)
        if point is not None:
            sel &= df["point"] == point
        order = {m: i for i, m in enumerate([GENERATOR_METHOD, *self.method_names])}
        out = df.loc[sel, ["point", "trial", "method", "value"]]
        out = out.assign(_order=out["method"].map(order).fillna(len(order)))
        return (
            out.sort_values(["point", "_order", "trial"])
            .drop(columns="_order")
            .reset_index(drop=True)
        )

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
            where = "" if len(self.points) <= 1 else f" at point {point}"
            for method in wide.columns:
                missing = self.expected_trials(method, point) - int(wide[method].notna().sum())
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
        limits = {m: self.method_trial_limit(m) for m in self.method_names}
        limits = {m: t for m, t in limits.items() if t is not None}
        if limits:
            out.append(
                "per-method trial counts: "
                + ", ".join(f"{m}: {t}" for m, t in limits.items())
                + "; paired statistics use the trials both methods have"
            )
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
    x, y = finite_rows(x, y)
    d = x - y
    s = paired_t(d, confidence=confidence)
    out = {
        "n": s["n"],
        "mean_a": float(x.mean()) if x.size else math.nan,
        "mean_b": float(y.mean()) if y.size else math.nan,
        "mean_diff": s["mean"],
        "sd_diff": s["sd"],
        "ci_low": s["ci_low"],
        "ci_high": s["ci_high"],
        "t": math.nan,
        "p_t": math.nan,
        "p_wilcoxon": math.nan,
    }
    if s["n"] < 2:
        return out
    if s["sd"] > 0:
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


# ---- settings and the seed ---------------------------------------------------------------------
#: Defaults of the config's ``[report]`` table: the equivalence margin, *relative* to the mean
#: of the reference method of each comparison, and the level of every test.
REPORT_DEFAULTS: dict[str, float] = {"equivalence_margin": 0.02, "alpha": 0.05}


def report_settings(
    run: Run, *, margin: float | None = None, alpha: float | None = None
) -> dict[str, float]:
    """``{"equivalence_margin": ..., "alpha": ...}``: the arguments, else the run config's
    ``report`` table, else :data:`REPORT_DEFAULTS`.

    Raises
    ------
    ReportError
        If the margin is not a positive number or alpha is not in (0, 1).
    """
    cfg = run.config.get("report") if isinstance(run.config, dict) else None
    cfg = cfg if isinstance(cfg, dict) else {}
    out = {k: cfg.get(k, v) for k, v in REPORT_DEFAULTS.items()}
    if margin is not None:
        out["equivalence_margin"] = margin
    if alpha is not None:
        out["alpha"] = alpha
    m, a = out["equivalence_margin"], out["alpha"]
    if isinstance(m, bool) or not isinstance(m, int | float) or not (math.isfinite(m) and m > 0):
        raise ReportError(
            f"the equivalence margin must be a positive number (relative, e.g. 0.02); got {m!r}"
        )
    if isinstance(a, bool) or not isinstance(a, int | float) or not 0 < a < 1:
        raise ReportError(f"alpha must be in (0, 1); got {a!r}")
    return {"equivalence_margin": float(m), "alpha": float(a)}


def _data_config(run: Run) -> dict[str, Any]:
    data = run.config.get("data") if isinstance(run.config, dict) else None
    return data if isinstance(data, dict) else {}


def _published_kernel(spec: Any) -> tuple[str, str] | None:
    """``(kernel, normalization)`` of a ``kind = "published"`` spec, else None."""
    if not isinstance(spec, dict) or str(spec.get("kind") or "").lower() != "published":
        return None
    kernel = spec.get("kernel") or spec.get("name")
    if not isinstance(kernel, str):
        return None
    return kernel.upper(), str(spec.get("normalization") or "published").lower()


def is_seed_protocol(run: Run) -> bool:
    """True for a run of the seed's released protocol (SPEC §6): simulated data generated by
    the seed's published NTKB1 formula (either normalization)."""
    data = _data_config(run)
    if data.get("dataset", "simulated") not in (None, "simulated"):
        return False
    pub = _published_kernel(data.get("generator"))
    return pub is not None and pub[0] == SEED_GENERATOR


def compares_with_seed(run: Run) -> bool:
    """True for a run of the seed's experiment: a run of its released protocol
    (:func:`is_seed_protocol`) with at least one of its rows (an ``--only`` run has a subset);
    or a run whose method names include all of the seed's, on simulated data generated by
    the seed's NTKB1 (when the config says)."""
    if is_seed_protocol(run):
        return bool(set(SEED_TABLE) & set(run.method_names))
    if not set(SEED_TABLE) <= set(run.method_names):
        return False
    data = _data_config(run)
    if data:
        if data.get("dataset", "simulated") not in (None, "simulated"):
            return False
        if data.get("generator") is not None:
            return _generator_from_config(run) == SEED_GENERATOR
    return True


def _seed_flag(run: Run, compare_seed: bool | None) -> bool:
    return compares_with_seed(run) if compare_seed is None else bool(compare_seed)


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


_SEED_NAME = re.compile(r"(NN|GP|NTKA|NTKJ|NTKB)([0-9]+)(-[A-Za-z0-9]+)?")
_CHAIN_DEPTH = re.compile(r"(?:NTK-NN|NN|GP|NTKA|NTKJ|NTKB)([0-9]+)(?:-.*)?")


def _family_depth(run: Run, method: str) -> tuple[str | None, int | None]:
    """Family and depth of a method: from the methods table, else (for the seed's names and
    the attribution methods, ``NTKJ1-corrected``, ``NTK-NN2-T``) from the name."""
    info = run.method_info(method)
    family, depth = info["family"], info["depth"]
    m = _SEED_NAME.fullmatch(method)
    if family is None and m:
        family = m.group(1) + (m.group(3) or "")  # NTKJ1-corrected: family NTKJ-corrected
    if depth is None:
        m = _CHAIN_DEPTH.fullmatch(method)
        if m:
            depth = int(m.group(1))
    return family, depth


def method_depth(run: Run, method: str) -> int | None:
    """Hidden layers of a method (methods table, else read from the seed's naming)."""
    return _family_depth(run, method)[1]


def _families(run: Run, methods: list[str]) -> dict[str, dict[int, str]]:
    """{family: {depth: method}} for methods with both a family and a depth.

    Where several methods share a family and a depth (the seed's ``NTKJ1`` and the network's
    own NTK ``NTK-NN1`` are both ``jacot`` NTKs), the one named ``<family><depth>`` keeps the
    family and each other one is grouped by its name with the depth written ``k``
    (``NTK-NNk``, ``NTK-NNk-T``), so that no method is lost and none is paired across kinds.
    """
    found = [(m, *_family_depth(run, m)) for m in methods]
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


def _pair(run: Run, a: str, b: str, metric: str, point: int) -> tuple[pd.Series, pd.Series]:
    """Final values of two methods on the trials both have (finite), aligned."""
    wide = run.final(metric, point)
    if a not in wide or b not in wide:
        empty = pd.Series(dtype=float)
        return empty, empty
    both = wide[[a, b]].dropna()
    return both[a], both[b]


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
    seed = _seed_flag(run, compare_seed) and metric == "rmse"
    rows = []
    for point in run.point_ids:
        present = [m for m in run.final(metric, point).columns]
        for family, by_depth in _families(run, present).items():
            depths = sorted(by_depth)
            for da, db in zip(depths[:-1], depths[1:], strict=True):
                a, b = by_depth[da], by_depth[db]
                xa, xb = _pair(run, a, b, metric, point)
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
    seed = _seed_flag(run, compare_seed) and metric == "rmse"
    rows = []
    for point in run.point_ids:
        present = list(run.final(metric, point).columns)
        nets = [m for m in present if run.is_network(m)]
        kernels = [m for m in present if not run.is_network(m)]
        for net in nets:
            ni = run.method_info(net)
            depth = method_depth(run, net)
            for ker in kernels:
                ki = run.method_info(ker)
                if depth is None or method_depth(run, ker) != depth:
                    continue
                xn, xk = _pair(run, net, ker, metric, point)
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
    dict naming one under ``name``/``method``, a ``kind = "published"`` formula matched to the
    published method with the same ``kernel`` and ``normalization``, or a dict of
    ``kind``/``family``/``depth``/``parameterization`` that matches exactly one kernel
    method); for a run with the seed's methods and no such config entry, the seed's
    generator NTKB1 (SPEC §4). None if unknown.
    """
    if generator is not None:
        return _check_method(run, generator, "generator")
    if _data_config(run).get("generator") is not None:
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
    pub = _published_kernel(gen)
    if pub is not None:
        found = [m for m in names if _published_kernel(_method_spec(run, m)) == pub]
        if len(found) > 1:  # several methods with the same formula: the one named after it
            found = [m for m in found if m.upper() == pub[0]] or found[:1]
        return found[0] if found else None
    found = [m for m in names if not run.is_network(m) and _matches(run.method_info(m), gen)]
    return found[0] if len(found) == 1 else None


def _method_spec(run: Run, method: str) -> dict[str, Any]:
    """The method's spec with its kind (the methods table keeps the kind in its own column)."""
    info = run.method_info(method)
    spec = dict(info.get("spec") or {})
    spec.setdefault("kind", info.get("kind"))
    return spec


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
        x, y = _pair(run, method, ref, metric, point)
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
