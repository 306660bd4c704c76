r"""The phase diagram of a stored run: where a trained network stops being its NTK.

A *phase grid* is a family of networks -- the same but for a laziness value -- at several
widths: the lazy-scale factor :math:`\alpha` (``lazy_scale``; Chizat, Oyallon & Bach 2019:
large :math:`\alpha` lazy, small rich) or the learning rate (``lr``; ``"xC"`` = C times the
critical rate, small C lazy), given either as one method per value or as a sweep of one
method; optionally also over parameterization, depth, data or anything else. It is found
from the run's stored sweep (:meth:`~ntklab.report.runs.Run.point_params`) and its methods'
configs (two networks are of one family when their specs agree but for name, label,
lazy_scale and lr), never from names. A run may have both axes (two families).

* :func:`phase_grid` -- one row per (sweep point, network method, trial): the method's
  parameterization, depth, width, axis value, any other swept field, and its measures
  ``nn_elin_rel`` (:math:`\|f_{NN} - f_{elin}\| / \|f_{elin}\|` on test points, f_elin the
  network's own linearization around its initialization), ``nn_lin_rel`` (the same against
  the analytic NTK's prediction f_lin) and ``kernel_drift``
  (:math:`\|\Theta_T - \Theta_0\|_F / \|\Theta_0\|_F`), ``diverged``.
* :func:`phase_measure` -- which of the two discrepancies the diagram reads
  (``[report] phase_measure``, default ``nn_elin_rel``: lazy training is f_NN ≈ its own
  linearization; ``nn_lin_rel`` also holds :math:`\Theta_0`'s finite-width error).
* :func:`phase_cells` -- per panel, axis value and width: means and SEs over the trials,
  with the count of diverged trials (never dropped).
* :func:`drift_exponents` -- the fitted exponent :math:`b` of :math:`\text{drift} \propto
  \text{width}^{b}` per panel and axis value: least squares of :math:`\log` drift on
  :math:`\log` width over the per-trial values (trials as replicates), with the regression's
  t interval (df = N − 2).
* :func:`crossovers` -- per trial and width, the axis value where the phase measure crosses
  the threshold (interpolated in log–log between the grid's values; a trial's curve over the
  axis is one network initialization), and the exponent of :math:`\alpha^*` against width.
"""

from __future__ import annotations

import json
import math
import weakref
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .runs import ReportError, Run, report_section, report_settings

__all__ = [
    "PHASE_METRICS",
    "CELL_METRICS",
    "AXES",
    "phase_settings",
    "phase_measure",
    "phase_axis",
    "has_phase_grid",
    "phase_grid",
    "panel_columns",
    "panel_label",
    "phase_cells",
    "drift_exponents",
    "crossovers",
    "crossover_exponents",
]

#: The per-network measures a phase grid maps (the first two: the phase measure's choices).
PHASE_METRICS = ("nn_elin_rel", "nn_lin_rel", "kernel_drift")
#: Further per-network measures the cells carry when the run stored them (test RMSE, the NTK
#: prediction's at the same training time, λ_max of the empirical NTK at the start and end).
CELL_METRICS = (*PHASE_METRICS, "rmse", "ntk_same_t_rmse", "lambda_max_0", "lambda_max_T")

#: Laziness axes: name -> True if large values are lazy (α: lazy when large; lr: when small).
AXES: dict[str, bool] = {"lazy_scale": True, "lr_multiple": False, "lr": False}

#: Fields resolved per (point, method); every other swept field becomes a panel key.
_FIELDS = ("parameterization", "depth", "width", "lazy_scale", "lr")
#: Spec fields that do not tell two networks' families apart.
_NOT_FAMILY = ("name", "label", "lazy_scale", "lr", "trials")


def phase_settings(run: Run) -> dict[str, Any]:
    """``phase_measure`` (the discrepancy the diagram reads, as set: see
    :func:`phase_measure`), ``phase_threshold`` (the measure above which the NTK no longer
    describes the network), ``phase_exponent_margin`` (the band around a theoretical
    exponent) and ``alpha``: the run config's ``[report]`` table
    (:class:`~ntklab.config.schema.ReportSection`, with its defaults).

    Raises
    ------
    ReportError
        If the table is invalid (one line naming the key).
    """
    section = report_section(run)
    return {
        "phase_measure": section.phase_measure,
        "phase_threshold": float(section.phase_threshold),
        "phase_exponent_margin": float(section.phase_exponent_margin),
        "alpha": report_settings(run)["alpha"],
    }


def phase_measure(run: Run) -> tuple[str, str]:
    """The discrepancy the phase diagram reads, and a one-line note when it is not the
    ``phase_measure`` setting: the setting, or ``nn_lin_rel`` when the run stored no finite
    value of the setting's measure (e.g. networks trained without their own linearization)
    but stored ``nn_lin_rel`` -- never silently: the note says so ("" when no fallback)."""
    want, grid = phase_settings(run)["phase_measure"], phase_grid(run)
    stored = {m: bool(np.isfinite(grid[m].to_numpy(float)).any()) for m in PHASE_METRICS[:2]}
    if stored[want] or not stored["nn_lin_rel"]:
        return want, ""
    return "nn_lin_rel", (
        f"report.phase_measure is {want}, but the run stored no {want}: the phase diagram "
        "(threshold line, crossover, lazy cells) reads nn_lin_rel instead."
    )


def _fields(run: Run, method: str, point: int) -> dict[str, Any]:
    """The :data:`_FIELDS` of a network method at a sweep point, from its resolved
    :class:`~ntklab.config.schema.MethodConfig` there (:meth:`Run.method_config`)."""
    config = run.method_config(method, point)
    return {name: getattr(config, name) for name in _FIELDS}


def _extra_keys(all_params: list[dict[str, Any]], method: str) -> list[str]:
    """Swept keys (other than :data:`_FIELDS`) that apply to ``method``: data fields, and
    method fields of it or of every method."""
    keys: list[str] = []
    for params in all_params:
        for key in params:
            parts = key.split(".")
            mine = parts[0] == "methods" and len(parts) == 3 and parts[1] in (method, "*")
            if (parts[0] == "data" or (mine and parts[2] not in _FIELDS)) and key not in keys:
                keys.append(key)
    return keys


def _axis_value(name: str, value: Any) -> float:
    """A numeric axis value: ``"x0.5"`` -> 0.5 for lr multiples; NaN if not numeric."""
    if isinstance(value, str) and name == "lr" and value[:1].lower() == "x":
        value = value[1:]
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) and out > 0 else math.nan


#: Tables computed once per run (a run is read once and never changes).
_CACHE: weakref.WeakKeyDictionary[Run, dict[str, Any]] = weakref.WeakKeyDictionary()


def _cached(run: Run, name: str, make: Any) -> Any:
    store = _CACHE.setdefault(run, {})
    if name not in store:
        store[name] = make()
    return store[name]


def _family(info: dict[str, Any], params: dict[str, Any], has_scale: bool) -> str:
    """What a network is apart from its laziness value: its spec without the fields that the
    sweep sets, name, label, lazy_scale and lr (as canonical JSON), and whether it sets a
    lazy_scale at all."""
    spec = info.get("spec") if isinstance(info.get("spec"), dict) else {}
    swept = {k.split(".")[-1] for k in params if k.startswith("methods.")}
    rest = {k: v for k, v in spec.items() if k not in _NOT_FAMILY and k not in swept}
    return json.dumps([rest, has_scale], sort_keys=True, default=str)


def _raw_grid(run: Run) -> pd.DataFrame:
    """One row per (point, network method) with its fields, family, ``axis`` and ``x``
    (NaN / None for a network that is no cell of a phase grid)."""

    def make() -> pd.DataFrame:
        all_params = {p: run.point_params(p) for p in run.point_ids}
        rows = []
        for method in run.network_methods:
            info = run.method_info(method)
            extra = _extra_keys(list(all_params.values()), method)
            for point, params in all_params.items():
                row = {"point": point, "method": method}
                row.update(_fields(run, method, point))
                row.update({key: params.get(key) for key in extra})
                row["family"] = _family(info, params, row["lazy_scale"] is not None)
                row["group"] = info.get("family") or method
                rows.append(row)
        raw = pd.DataFrame(rows)
        raw["axis"], raw["x"] = None, math.nan
        if not len(raw):
            return raw
        for _, grp in raw.groupby("family", sort=False):
            scale = grp["lazy_scale"].map(lambda v: _axis_value("lazy_scale", v))
            lr = grp["lr"].map(lambda v: _axis_value("lr", v))
            if scale.nunique() >= 2:
                axis, x = "lazy_scale", scale
            elif lr.nunique() >= 2:
                xc = grp["lr"].map(lambda v: isinstance(v, str) and v[:1].lower() == "x")
                axis, x = ("lr_multiple" if xc[lr.notna()].all() else "lr"), lr
            else:
                continue
            raw.loc[grp.index, "axis"] = axis
            raw.loc[grp.index, "x"] = x
        return raw

    return _cached(run, "raw_grid", make).copy()


def phase_axis(run: Run) -> list[str]:
    """The laziness axes of the run's grid (``lazy_scale``; ``lr_multiple``: lr given as
    ``"xC"``; ``lr``: as numbers): those along which a family of networks (the same but for
    lazy_scale or lr, one method swept over them or one method per value) takes at least 2
    values, at 2 or more widths. Empty if the run has no phase grid."""
    return _cached(run, "axis", lambda: _find_axes(run))


def _find_axes(run: Run) -> list[str]:
    if not run.network_methods or not any(run.has_metric(m) for m in PHASE_METRICS):
        return []
    raw = _raw_grid(run).dropna(subset=["x", "width"])
    out = []
    for axis in AXES:
        sel = raw[raw["axis"] == axis]
        per = sel.groupby("family").agg(nx=("x", "nunique"), nw=("width", "nunique"))
        if len(per) and ((per["nx"] >= 2) & (per["nw"] >= 2)).any():
            out.append(axis)
    return out


def has_phase_grid(run: Run) -> bool:
    """True if the run has networks over width and a laziness axis (:func:`phase_axis`)."""
    return bool(phase_axis(run))


def phase_grid(run: Run) -> pd.DataFrame:
    """One row per (sweep point, network method of the grid, finished trial).

    Columns: ``point, method``; the panel keys (:func:`panel_columns`): ``group`` (the
    networks' family), ``axis`` (``lazy_scale``, ``lr_multiple`` or ``lr``),
    ``parameterization, depth`` and any other swept field; then ``x`` (the axis value),
    ``width, trial``, the :data:`PHASE_METRICS`, the other :data:`CELL_METRICS`
    (NaN where not finite or not stored, e.g. when training diverged) and ``diverged`` (True when the trial stored ``diverged = 1``).

    Raises
    ------
    ReportError
        If the run has no phase grid (:func:`has_phase_grid`).
    """
    run.require_finished()
    if not has_phase_grid(run):
        raise ReportError(
            "the run has no phase grid: give networks that differ only in lazy_scale or lr "
            '(one method per value, or a sweep such as "methods.NN.lazy_scale" = [0.1, 1, 10]) '
            'at several widths (e.g. "methods.*.width" = [64, 256, 1024])'
        )
    return _cached(run, "grid", lambda: _make_grid(run)).copy()


def _make_grid(run: Run) -> pd.DataFrame:
    raw = _raw_grid(run)
    raw = raw[raw["axis"].isin(phase_axis(run))].dropna(subset=["x", "width"])
    labels: dict[str, str] = {}
    for fam, name in zip(raw["family"], raw["group"], strict=True):
        if fam not in labels:
            taken = set(labels.values())
            labels[fam] = name if name not in taken else f"{name} ({len(taken) + 1})"
    raw["group"] = raw["family"].map(labels)
    extra = [c for c in raw.columns if c not in (*_FIELDS, "point", "method", "family", "group",
                                                  "axis", "x")]  # fmt: skip
    raw = raw[
        ["point", "method", "group", "axis", "parameterization", "depth", *extra, "x", "width"]
    ]
    keys = ["point", "trial", "method"]
    long = pd.DataFrame(columns=keys)
    for metric in (*CELL_METRICS, "diverged"):
        part = run.final(metric).reset_index() if run.has_metric(metric) else None
        if part is None or not len(part):
            long[metric] = math.nan
            continue
        part = part.melt(id_vars=["point", "trial"], var_name="method", value_name=metric)
        long = part if not len(long) else long.merge(part, how="outer", on=keys)
    for metric in (*CELL_METRICS, "diverged"):
        if metric not in long:
            long[metric] = math.nan
    long = long.dropna(how="all", subset=[*PHASE_METRICS, "diverged"])
    out = raw.merge(long, how="inner", on=["point", "method"])
    out["diverged"] = out["diverged"].fillna(0.0) > 0
    out["trial"] = out["trial"].astype(int)
    out["width"] = out["width"].astype(float)
    out["x"] = out["x"].astype(float)
    out["depth"] = pd.to_numeric(out["depth"], errors="coerce")
    return out.reset_index(drop=True)


def panel_columns(grid: pd.DataFrame) -> list[str]:
    """The columns that identify a panel: ``group, axis, parameterization, depth`` and any
    other swept field (e.g. ``data.inputs``)."""
    fixed = {"point", "method", "x", "width", "trial", "diverged", "n", "crossover", "censored"}
    return [
        c for c in grid.columns
        if c not in fixed and c not in CELL_METRICS and not c.endswith("_se")
    ]  # fmt: skip


def panel_label(key: dict[str, Any]) -> str:
    """``NN-alpha · jacot · depth 2 · data.inputs = normal`` (the axis left out)."""
    parts = [str(key.get("group")), str(key.get("parameterization"))]
    depth = key.get("depth")
    if depth is not None and np.isfinite(depth):
        parts.append(f"depth {int(depth)}")
    skip = ("group", "axis", "parameterization", "depth")
    parts += [f"{k} = {v}" for k, v in key.items() if k not in skip]
    return " · ".join(parts)


def _groups(grid: pd.DataFrame, by: list[str]):
    for key, grp in grid.groupby(by, sort=False, dropna=False):
        yield dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)), grp


def phase_cells(run: Run, grid: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per panel, axis value and width: ``n`` trials, ``diverged`` (count), and for each
    metric of :data:`CELL_METRICS` the run stored the mean over its finite trials with its SE
    (``<metric>``, ``<metric>_se``)."""
    grid = phase_grid(run) if grid is None else grid
    panel = panel_columns(grid)
    rows = []
    for key, grp in _groups(grid, [*panel, "x", "width"]):
        row = dict(key, n=len(grp), diverged=int(grp["diverged"].sum()))
        for m in CELL_METRICS:
            v = grp[m].to_numpy(float)
            v = v[np.isfinite(v)]
            row[m] = float(v.mean()) if v.size else math.nan
            row[f"{m}_se"] = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    unstored = [m for m in CELL_METRICS if m not in PHASE_METRICS and out[m].isna().all()]
    out = out.drop(columns=[c for m in unstored for c in (m, f"{m}_se")])
    return _in_panel_order(out, panel, ["x", "width"])


def _in_panel_order(df: pd.DataFrame, panel: list[str], within: list[str]) -> pd.DataFrame:
    """Rows by panel (in the order they first appear: the run's), then by ``within``."""
    if not len(df):
        return df
    first = df.groupby(panel, sort=False, dropna=False).ngroup()
    return (
        df.assign(_panel=first)
        .sort_values(["_panel", *within], kind="stable")
        .drop(columns="_panel")
        .reset_index(drop=True)
    )


def _loglog_fit(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """OLS slope of log y on log x (positive finite pairs) with its t interval (df = N − 2)."""
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    lx, ly = np.log(x[ok]), np.log(y[ok])
    out = dict.fromkeys(("exponent", "se", "ci_low", "ci_high"), math.nan)
    out.update(n=int(ok.sum()), n_widths=int(np.unique(lx).size), df=max(int(ok.sum()) - 2, 0))
    if out["n_widths"] < 2:
        return out
    fit = stats.linregress(lx, ly)
    out["exponent"] = float(fit.slope)
    if out["df"] >= 1 and np.isfinite(fit.stderr):
        half = float(stats.t.ppf(0.975, out["df"])) * float(fit.stderr)
        out.update(se=float(fit.stderr), ci_low=fit.slope - half, ci_high=fit.slope + half)
    return out


def drift_exponents(
    run: Run, grid: pd.DataFrame | None = None, metric: str = "kernel_drift"
) -> pd.DataFrame:
    r"""Fitted exponent :math:`b` of :math:`\text{metric} \propto \text{width}^b` per panel
    and axis value.

    Least squares of :math:`\log m_{t}(n)` on :math:`\log n` over every finished trial
    :math:`t` at every width :math:`n` with a finite positive value (trials as replicates),
    with the 95 % t interval of the slope (df = N − 2; ``se`` the regression's standard
    error). Diverged trials have no value; they are counted in ``diverged``.

    Returns
    -------
    DataFrame
        panel columns, ``x`` (the axis value), ``n_widths, n, diverged, exponent, se, df, ci_low, ci_high``.
    """
    grid = phase_grid(run) if grid is None else grid
    panel = panel_columns(grid)
    rows = []
    for key, grp in _groups(grid, [*panel, "x"]):
        fit = _loglog_fit(grp["width"].to_numpy(float), grp[metric].to_numpy(float))
        rows.append(dict(key, diverged=int(grp["diverged"].sum()), **fit))
    cols = [*panel, "x", "n_widths", "n", "diverged", "exponent", "se", "df", "ci_low", "ci_high"]
    return _in_panel_order(pd.DataFrame(rows, columns=cols), panel, ["x"])


def _crossing(x: np.ndarray, v: np.ndarray, threshold: float, lazy_high: bool) -> float:
    """The axis value where ``v`` first reaches ``threshold`` coming from the lazy end of
    ``x``, interpolated linearly in (log x, log v); a diverged value (inf) crosses at the
    geometric midpoint. NaN (censored) if the lazy end is already above or it never crosses."""
    order = np.argsort(x)[::-1] if lazy_high else np.argsort(x)
    x, v = x[order], v[order]
    above = np.flatnonzero(~(v < threshold))  # NaN counts as not below (e.g. missing)
    if not above.size or above[0] == 0 or not np.isfinite(v[above[0] - 1]):
        return math.nan
    i = above[0]
    lx0, lx1 = math.log(x[i - 1]), math.log(x[i])
    if not np.isfinite(v[i]):
        return math.exp(0.5 * (lx0 + lx1))
    lv0, lv1 = math.log(max(v[i - 1], 1e-300)), math.log(max(v[i], 1e-300))
    frac = (math.log(threshold) - lv0) / (lv1 - lv0) if lv1 != lv0 else 0.0
    return math.exp(lx0 + frac * (lx1 - lx0))


def crossovers(
    run: Run,
    grid: pd.DataFrame | None = None,
    threshold: float | None = None,
    measure: str | None = None,
) -> pd.DataFrame:
    """Per panel, width and trial: the axis value ``crossover`` where that trial's
    ``measure`` (default :func:`phase_measure`) reaches ``threshold`` (default the
    ``phase_threshold`` setting), from the lazy end of the axis (:func:`_crossing`; diverged trials count as above the threshold).
    ``censored`` marks trials whose curve is above the threshold already at the lazy end or
    never reaches it (no crossover inside the grid)."""
    grid = phase_grid(run) if grid is None else grid
    thr = phase_settings(run)["phase_threshold"] if threshold is None else threshold
    measure = measure or phase_measure(run)[0]
    panel = panel_columns(grid)
    rows = []
    for key, grp in _groups(grid, [*panel, "width", "trial"]):
        v = np.where(grp["diverged"].to_numpy(bool), math.inf, grp[measure].to_numpy(float))
        c = _crossing(grp["x"].to_numpy(float), v, thr, AXES[key["axis"]])
        rows.append(dict(key, crossover=c, censored=not np.isfinite(c)))
    return pd.DataFrame(rows, columns=[*panel, "width", "trial", "crossover", "censored"])


def crossover_exponents(run: Run, cross: pd.DataFrame | None = None) -> pd.DataFrame:
    r"""Per panel: the exponent of the crossover against width,
    :math:`\alpha^* \propto \text{width}^{b}` (least squares of the per-trial
    :math:`\log \alpha^*` on :math:`\log n`, trials as replicates, 95 % t interval), the
    geometric mean crossover per width (``crossover_by_width``) and the censored count."""
    cross = crossovers(run) if cross is None else cross
    panel = [c for c in cross.columns if c not in ("width", "trial", "crossover", "censored")]
    rows = []
    for key, grp in _groups(cross, panel):
        fit = _loglog_fit(grp["width"].to_numpy(float), grp["crossover"].to_numpy(float))
        ok = grp[~grp["censored"]]
        by_w = ok.groupby("width")["crossover"].apply(lambda s: float(np.exp(np.log(s).mean())))
        text = ", ".join(f"{w:g}: {c:.3g}" for w, c in by_w.items())
        rows.append(dict(key, censored=int(grp["censored"].sum()), crossover_by_width=text, **fit))
    cols = [*panel, "n_widths", "n", "censored", "crossover_by_width", "exponent", "se", "df",
            "ci_low", "ci_high"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)
