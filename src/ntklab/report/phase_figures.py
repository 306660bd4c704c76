r"""Figures of the phase diagram (matplotlib object API, no pyplot state; saved as PNG and SVG
by :func:`~ntklab.report.figures.save_figures`).

* :func:`phase_heatmap` -- a measure (``nn_elin_rel``, ``nn_lin_rel`` or ``kernel_drift``)
  over the laziness axis × width, one panel per parameterization (and other swept fields:
  rows) and depth (columns), log colour scale shared by the panels, the contour where the
  phase measure (:func:`~ntklab.report.phase.phase_measure`) crosses the threshold, and
  every cell with diverged trials hatched and labelled with their count.
* :func:`crossover_plot` -- the crossover (axis value where the phase measure reaches the
  threshold) against width, log–log, with the :math:`\text{width}^{-1/2}` guide.
* :func:`training_curves_plot` -- training loss and :math:`\lambda_{max}(\Theta_t)` along the
  axis (the catapult of lr multiples between 1 and 2).
* :func:`phase_figures` -- every phase figure the run supports, by name (suffixed by the
  axis: ``phase_nn_elin_rel_lazy_scale``, ``phase_kernel_drift_lr_multiple``, ...).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import NullFormatter

from .phase import (
    PHASE_METRICS,
    crossover_exponents,
    crossovers,
    has_phase_grid,
    panel_columns,
    panel_label,
    phase_cells,
    phase_grid,
    phase_measure,
    phase_settings,
)
from .runs import ReportError, Run

__all__ = [
    "width_axes",
    "phase_heatmap",
    "crossover_plot",
    "training_curves_plot",
    "phase_figures",
    "PHASE_CAPTIONS",
]

_AXIS_LABEL = {"lazy_scale": "lazy scale α", "lr_multiple": "lr / critical lr", "lr": "lr"}

#: Captions of the figures :func:`phase_figures` makes (by name prefix).
_LINE = (
    "Line: where the phase measure (report.phase_measure, named in the title) crosses the "
    "threshold (report.phase_threshold; a cell where at least half the trials diverged counts "
    "as above it). Hatched: cells with diverged trials (count / trials); grey: every trial "
    "diverged."
)
PHASE_CAPTIONS = {
    "phase_nn_elin_rel": "Relative discrepancy ||f_NN − f_elin|| / ||f_elin|| of the trained "
    "network from its own linearization around its initialization, trained alongside it "
    "(lazy training: f_NN ≈ f_elin), over the laziness axis × width, mean over converged "
    "trials; one panel per parameterization and depth. " + _LINE,
    "phase_nn_lin_rel": "Relative discrepancy ||f_NN − f_lin|| / ||f_lin|| of the trained "
    "network from the analytic NTK's prediction at the same training time and "
    "initialization (which also holds Θ_0's finite-width error) over the laziness axis × "
    "width, mean over converged trials; one panel per parameterization and depth. " + _LINE,
    "phase_kernel_drift": "Relative change of the empirical NTK during training, "
    "||Θ_T − Θ_0||_F / ||Θ_0||_F, over the laziness axis × width, mean over converged trials; "
    "same panels, threshold line of the phase measure and divergence marks as the "
    "discrepancy heatmaps.",
    "phase_curves": "Training loss and λ_max of the empirical NTK relative to its initial "
    "value during training, median over trials, one line per axis value, at the widest "
    "width and smallest depth; dotted (lr multiples C): 1/C, below which gradient descent at "
    "that rate is stable for the linearized network. A catapult (Lewkowycz et al. 2020) is a "
    "loss spike with λ_max pushed below 1/C.",
    "phase_crossover": "Crossover: the axis value where the phase measure (report."
    "phase_measure) reaches the threshold, "
    "geometric mean over trials, against width (log–log), fitted exponent in the legend; "
    "dashed: width^−1/2 (Geiger et al. 2019).",
}


def width_axes(ax, df: pd.DataFrame, column: str, xlabel: str) -> None:
    """Log-log axes over the widths of ``df`` with a width^(-1/2) guide through the median
    of ``column`` at the smallest width (the NTK-parameterization scaling every width plot
    compares with)."""
    w = np.array(sorted(df["width"].unique()), dtype=float)
    y0 = float(df.loc[df["width"] == w[0], column].median())
    ax.plot(w, y0 * (w / w[0]) ** -0.5, "k--", lw=1, label="width$^{-1/2}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(w, [f"{x:g}" for x in w])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)


def _layout(cells: pd.DataFrame, panel: list[str]) -> tuple[list[tuple], list, list[dict]]:
    """Panel rows (every panel key but depth), columns (depths) and the panel keys."""
    keys = cells[panel].drop_duplicates().to_dict("records")
    for k in keys:  # an unknown depth (NaN) is one column, not one per NaN object
        k.update({c: None for c, v in k.items() if isinstance(v, float) and math.isnan(v)})
    row_keys = [c for c in panel if c != "depth"]
    rows = list(dict.fromkeys(tuple(k[c] for c in row_keys) for k in keys))
    cols = list(dict.fromkeys(k.get("depth") for k in keys)) if "depth" in panel else [None]
    return rows, cols, keys


def _matrix(grp: pd.DataFrame, xs: list, ws: list, col: str) -> np.ndarray:
    z = np.full((len(ws), len(xs)), math.nan)
    for r in grp.to_dict("records"):
        z[ws.index(r["width"]), xs.index(r["x"])] = r[col]
    return z


def phase_heatmap(run: Run, metric: str | None = None, axis: str | None = None) -> Figure:
    """Heatmap of the cell means of ``metric`` (default the phase measure,
    :func:`~ntklab.report.phase.phase_measure`) over (axis value, width), one panel per
    family, parameterization (× other swept fields) and depth (module docstring), with the
    phase measure's threshold line; ``axis`` (default the first of the run's,
    :func:`~ntklab.report.phase.phase_axis`)."""
    measure = phase_measure(run)[0]
    metric = metric or measure
    if metric not in PHASE_METRICS:
        raise ReportError(f"no phase heatmap of {metric!r}; choose one of {PHASE_METRICS}")
    grid = phase_grid(run)
    axis = axis or str(grid["axis"].iloc[0])
    grid = grid[grid["axis"] == axis]
    if not len(grid):
        raise ReportError(f"the run's phase grid has no {axis} axis")
    thr = phase_settings(run)["phase_threshold"]
    panel = panel_columns(grid)
    cells = phase_cells(run, grid)
    xs, ws = sorted(cells["x"].unique()), sorted(cells["width"].unique())
    vals = cells[metric].to_numpy(float)
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if not vals.size:
        raise ReportError(f"the phase grid has no finite {metric}")
    norm = LogNorm(vmin=float(vals.min()), vmax=float(max(vals.max(), vals.min() * 1.0001)))
    rows, cols, keys = _layout(cells, panel)
    fig = Figure(figsize=(2.2 + 0.55 * len(xs) * len(cols) + 1.0 * len(cols),
                          0.9 + (0.42 * len(ws) + 1.0) * len(rows)), layout="constrained")  # fmt: skip
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    row_keys = [c for c in panel if c != "depth"]
    used = np.zeros(axes.shape, dtype=bool)
    image = None
    annotate = len(xs) * len(ws) <= 80
    for key in keys:
        i = rows.index(tuple(key[c] for c in row_keys))
        j = cols.index(key.get("depth"))
        ax, used[i, j] = axes[i, j], True
        sel = np.ones(len(cells), dtype=bool)
        for c in panel:
            v = key[c]
            sel &= (cells[c] == v).to_numpy() | (cells[c].isna().to_numpy() & pd.isna(v))
        grp = cells[sel]
        z = _matrix(grp, xs, ws, metric)
        div = _matrix(grp, xs, ws, "diverged")
        n = _matrix(grp, xs, ws, "n")
        ax.set_facecolor("#d0d0d0")
        image = ax.imshow(np.ma.masked_invalid(np.where(z > 0, z, np.nan)), origin="lower",
                          aspect="auto", cmap="viridis", norm=norm)  # fmt: skip
        rel = _matrix(grp, xs, ws, measure)
        rel = np.where((div >= 0.5 * n) & (n > 0), 1e3 * thr, rel)
        if len(xs) >= 2 and len(ws) >= 2 and np.isfinite(rel).sum() >= 4:
            lr = np.ma.masked_invalid(np.log(np.where(rel > 0, rel, np.nan)))
            if lr.min() < math.log(thr) < lr.max():
                ax.contour(np.arange(len(xs)), np.arange(len(ws)), lr, levels=[math.log(thr)],
                           colors="white", linewidths=2.2)  # fmt: skip
                ax.contour(np.arange(len(xs)), np.arange(len(ws)), lr, levels=[math.log(thr)],
                           colors="black", linewidths=0.9, linestyles="--")  # fmt: skip
        for (a, b), d in np.ndenumerate(div):
            if np.isfinite(d) and d > 0:
                ax.add_patch(Rectangle((b - 0.5, a - 0.5), 1, 1, fill=False, hatch="///",
                                       edgecolor="#b2182b", lw=0.0))  # fmt: skip
                ax.text(b, a, f"÷{int(d)}/{int(n[a, b])}", ha="center", va="center",
                        fontsize="x-small", color="#b2182b", fontweight="bold",
                        bbox={"boxstyle": "round,pad=0.1", "fc": "white", "alpha": 0.7, "lw": 0})  # fmt: skip
            elif annotate and np.isfinite(z[a, b]):
                light = norm(z[a, b]) < 0.6
                ax.text(b, a, f"{z[a, b]:.2g}", ha="center", va="center", fontsize="x-small",
                        color="white" if light else "black")  # fmt: skip
        ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs], rotation=45, fontsize="small")
        ax.set_yticks(range(len(ws)), [f"{w:g}" for w in ws], fontsize="small")
        ax.set_xlabel(_AXIS_LABEL[axis])
        ax.set_ylabel("width")
        ax.set_title(panel_label(key), fontsize="small")
    for (i, j), u in np.ndenumerate(used):
        if not u:
            axes[i, j].set_visible(False)
    fig.colorbar(image, ax=axes.ravel().tolist(), label=f"{metric} (mean)", shrink=0.9)
    fig.suptitle(f"{run.name}: {metric}\nline: {measure} = {thr:g}; ÷k/n: k of n trials diverged",
                 fontsize="medium")  # fmt: skip
    return fig


def crossover_plot(run: Run, axis: str = "lazy_scale") -> Figure:
    """Geometric-mean crossover along ``axis`` against width per panel (log–log), exponent in
    the legend."""
    grid = phase_grid(run)
    measure = phase_measure(run)[0]
    cross = crossovers(run, grid[grid["axis"] == axis], measure=measure)
    ok = cross[~cross["censored"]]
    if not len(ok):
        raise ReportError(f"no trial's {measure} crosses the threshold along {axis} in the grid")
    panel = [c for c in cross.columns if c not in ("width", "trial", "crossover", "censored")]
    fits = crossover_exponents(run, cross)
    fig = Figure(figsize=(7.5, 4.4), layout="constrained")
    ax = fig.add_subplot()
    for key, grp in ok.groupby(panel, sort=False, dropna=False):
        key = dict(zip(panel, key if isinstance(key, tuple) else (key,), strict=True))
        by_w = grp.groupby("width")["crossover"].apply(lambda s: float(np.exp(np.log(s).mean())))
        sel = np.ones(len(fits), dtype=bool)
        for c in panel:
            sel &= (fits[c] == key[c]).to_numpy()
        b = fits.loc[sel, "exponent"].iloc[0] if sel.any() else math.nan
        ax.plot(by_w.index, by_w.to_numpy(), "o-", label=f"{panel_label(key)} (b = {b:+.2f})")
    width_axes(ax, ok, "crossover", "width")
    ax.set_ylabel(f"crossover {_AXIS_LABEL.get(axis, axis)}")
    ax.set_title(f"{run.name}: lazy/rich crossover ({measure} = threshold)")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _median_curve(rows: pd.DataFrame, normalize: bool) -> pd.Series:
    """Median over trials of a curve at each step; with ``normalize`` each trial's curve is
    divided by its value at its first step (non-finite values left out)."""
    rows = rows[np.isfinite(rows["value"].to_numpy(float))]
    if normalize and len(rows):
        first = rows.sort_values("step").groupby("trial")["value"].first()
        rows = rows.assign(value=rows["value"] / rows["trial"].map(first))
    return rows.groupby("step")["value"].median()


def training_curves_plot(run: Run, axis: str = "lr_multiple") -> Figure:
    r"""Training loss and :math:`\lambda_{max}(\Theta_t) / \lambda_{max}(\Theta_0)` during
    training (``curve_train_loss``, ``curve_lambda_max``; median over trials), one line per
    axis value, one row per parameterization, at the widest width, smallest depth and the
    first value of any other swept field. For lr multiples C the dotted lines mark
    :math:`1/C`: below it linearized GD at that rate is stable, so a catapult (Lewkowycz et
    al. 2020) shows as a loss spike with :math:`\lambda_{max}` pushed below :math:`1/C`."""
    grid = phase_grid(run)
    grid = grid[grid["axis"] == axis]
    metrics = [m for m in ("curve_train_loss", "curve_lambda_max") if len(run.curves(m))]
    if not len(grid) or not metrics:
        raise ReportError(f"the run stored no training curves of its {axis} networks")
    panel = panel_columns(grid)
    pick = grid[grid["width"] == grid["width"].max()]
    if pick["depth"].notna().any():
        pick = pick[pick["depth"] == pick["depth"].min()]
    for c in panel:
        if c not in ("group", "axis", "parameterization", "depth"):
            pick = pick[pick[c] == pick[c].iloc[0]]
    params = list(dict.fromkeys(pick["parameterization"]))
    fig = Figure(figsize=(4.6 * len(metrics) + 1.5, 3.3 * len(params)), layout="constrained")
    axes = fig.subplots(len(params), len(metrics), squeeze=False)
    xs = sorted(pick["x"].unique())
    colors = [f"C{i % 10}" for i in range(len(xs))]
    curves = {m: run.curves(m) for m in metrics}
    for i, param in enumerate(params):
        sel = pick[pick["parameterization"] == param]
        for x, color in zip(xs, colors, strict=True):
            cell = sel[sel["x"] == x][["point", "method"]].drop_duplicates()
            for j, m in enumerate(metrics):
                df = curves[m].merge(cell, on=["point", "method"])
                med = _median_curve(df, normalize=m == "curve_lambda_max")
                if len(med):
                    axes[i, j].plot(med.index, med.to_numpy(), color=color, label=f"{x:g}")
                if m == "curve_lambda_max" and axis == "lr_multiple":
                    axes[i, j].axhline(1 / x, color=color, ls=":", lw=1)
        key = sel.iloc[0].to_dict() if len(sel) else {}
        for j, m in enumerate(metrics):
            ax = axes[i, j]
            ax.set_yscale("log")
            ax.set_xlabel("epoch")
            ax.set_ylabel("train loss" if m == "curve_train_loss" else "λ_max(t) / λ_max(0)")
            ax.set_title(f"{panel_label({k: key.get(k) for k in panel})}, width {key.get('width', 0):g}",
                         fontsize="small")  # fmt: skip
            ax.grid(alpha=0.3)
        if axes[i, -1].get_legend_handles_labels()[0]:
            axes[i, -1].legend(title=_AXIS_LABEL.get(axis, axis), fontsize="x-small",
                               loc="upper left", bbox_to_anchor=(1.01, 1.0))  # fmt: skip
    fig.suptitle(f"{run.name}: training along the {_AXIS_LABEL.get(axis, axis)} axis")
    return fig


def phase_figures(run: Run) -> dict[str, Figure]:
    """``phase_nn_elin_rel``, ``phase_nn_lin_rel``, ``phase_kernel_drift`` (the measures the
    run stored) and ``phase_crossover`` (when a trial's phase measure crosses the threshold);
    empty without a phase grid."""
    if not has_phase_grid(run):
        return {}
    grid = phase_grid(run)
    measure = phase_measure(run)[0]
    figs = {}
    for metric in PHASE_METRICS:
        for axis in dict.fromkeys(grid["axis"]):
            if np.isfinite(grid.loc[grid["axis"] == axis, metric].to_numpy(float)).any():
                figs[f"phase_{metric}_{axis}"] = phase_heatmap(run, metric, axis)
    for axis in dict.fromkeys(grid["axis"]):
        if np.isfinite(grid.loc[grid["axis"] == axis, measure].to_numpy(float)).any():
            try:
                figs[f"phase_crossover_{axis}"] = crossover_plot(run, axis)
            except ReportError:  # no trial crosses the threshold inside the grid
                pass
    curves = pd.concat([run.curves(m) for m in ("curve_train_loss", "curve_lambda_max")])
    for axis in dict.fromkeys(grid["axis"]):
        if curves["method"].isin(set(grid.loc[grid["axis"] == axis, "method"])).any():
            figs[f"phase_curves_{axis}"] = training_curves_plot(run, axis)
    return figs
