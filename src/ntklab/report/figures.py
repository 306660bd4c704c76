"""Figures of a stored run (matplotlib, no pyplot state; saved as PNG and SVG).

Every function takes a :class:`~ntklab.report.runs.Run` and returns a
:class:`matplotlib.figure.Figure` built with the object-oriented API (no global pyplot
figures, no backend switch: ``Figure.savefig`` renders with Agg for PNG and the SVG
backend for SVG), so tests can inspect it and servers can draw without a display.

* :func:`boxplot` -- test RMSE per method over the trials (the seed's Figure 1).
* :func:`mean_se_plot` -- mean test RMSE with standard-error bars (the seed's Figure 2),
  with the seed's values beside ours for ``paper`` runs.
* :func:`discrepancy_vs_width`, :func:`kernel_drift_vs_width` -- log-log plots over a width
  sweep with the fitted slope in the legend (:func:`metric_vs_width`).
* :func:`training_curves` -- network test RMSE during training against the NTK prediction
  at the same training time (Lee et al. 2019).
* :func:`nn_vs_ntk_same_t` -- per trial, the network's test RMSE against that of its own
  NTK prediction at the same training time (``NNk`` vs ``NTK-NNk-T``), with the identity line.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .attribution import same_time_pairs
from .equivalence import equivalence_table, width_slopes
from .outputs import check_overwrite
from .phase import has_phase_grid
from .phase_figures import PHASE_CAPTIONS, phase_figures, width_axes
from .protocol import seed_comparison
from .runs import ReportError, Run
from .stats import mean_se, paired_t
from .tables import main_table

__all__ = [
    "boxplot",
    "mean_se_plot",
    "metric_vs_width",
    "discrepancy_vs_width",
    "kernel_drift_vs_width",
    "training_curves",
    "nn_vs_ntk_same_t",
    "make_figures",
    "save_figures",
    "caption",
    "FORMATS",
]

#: File formats every figure is saved in.
FORMATS = ("png", "svg")

_CAPTIONS = {
    "boxplot": "Test RMSE per method over the finished trials (box: quartiles; whiskers: "
    "1.5 IQR), as in the seed's Figure 1.",
    "mean_se": "Mean test RMSE with standard-error bars (the seed's Figure 2); for paper "
    "runs the seed's published values beside ours.",
    "nn_lin_rms_vs_width": "RMS difference between the trained network and its linearization "
    "(NTK prediction at the same training time, same initialization) against width; "
    "log-log, fitted slope in the legend (theory: -1/2).",
    "kernel_drift_vs_width": "Relative change of the empirical NTK during training, "
    "||Theta_T - Theta_0||_F / ||Theta_0||_F, against width; log-log, fitted slope in the "
    "legend (theory: -1/2).",
    "nn_vs_ntk_same_t": "Per trial: test RMSE of the network (NNk) against that of its own NTK "
    "prediction at the same training time with the network's f0 (NTK-NNk-T); on the dashed "
    "line they are equal. The legend gives the paired mean difference NN - NTK with its 95 % "
    "interval.",
    "curves": "Test RMSE during training: the network (solid) against the NTK prediction at "
    "the same training time and initialization (dashed); dotted: the NTK at T = infinity.",
}


def caption(name: str) -> str:
    """The caption of a figure produced by :func:`make_figures` (by its name)."""
    captions = {**_CAPTIONS, **PHASE_CAPTIONS}
    for key in sorted(captions, key=len, reverse=True):
        if name.startswith(key):
            return captions[key]
    return name


def _title(run: Run, point: int) -> str:
    return f"{run.name}: {run.point_label(point)}" if len(run.points) > 1 else run.name


def boxplot(run: Run, point: int | None = None, metric: str = "rmse") -> Figure:
    """Boxplot of ``metric`` per method at one sweep point: one box per method that has a
    finite value (the seed's Figure 1)."""
    run.require_finished()
    point = run.check_point(point)
    wide = run.final(metric, point)
    methods = [m for m in wide.columns if wide[m].notna().any()]
    if not methods:
        raise ReportError(f"no finished trial has a finite {metric} at {run.point_label(point)}")
    fig = Figure(figsize=(max(5.0, 0.65 * len(methods) + 1.5), 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.boxplot(
        [wide[m].dropna().to_numpy() for m in methods],
        patch_artist=True,
        boxprops={"facecolor": "#cfe0f3"},
        medianprops={"color": "#b2182b"},
    )
    ax.set_xticks(range(1, len(methods) + 1), methods, rotation=45 if len(methods) > 8 else 0)
    ax.set_ylabel(f"test {metric.upper()}" if metric == "rmse" else metric)
    ax.set_title(_title(run, point))
    ax.grid(axis="y", alpha=0.3)
    return fig


def mean_se_plot(
    run: Run, point: int | None = None, metric: str = "rmse", compare_seed: bool | None = None
) -> Figure:
    """Mean ``metric`` per method with standard-error bars (the seed's Figure 2)."""
    point = run.check_point(point)
    table = main_table(run, metric=metric, compare_seed=compare_seed)
    table = table[(table["point"] == point) & (table["n"] > 0)]
    if not len(table):
        raise ReportError(f"no finished trial has a finite {metric} at {run.point_label(point)}")
    x = np.arange(len(table))
    fig = Figure(figsize=(max(5.0, 0.65 * len(table) + 1.5), 4.0), layout="constrained")
    ax = fig.add_subplot()
    seed = seed_comparison(run, compare_seed) and "seed_mean" in table
    shift = 0.15 if seed else 0.0
    ax.errorbar(
        x - shift,
        table["mean"].to_numpy(float),
        yerr=table["se"].fillna(0.0).to_numpy(float),
        fmt="o",
        capsize=4,
        label=f"ntklab (n = {int(table['n'].max())})",
    )
    if seed:
        ax.errorbar(
            x + shift,
            table["seed_mean"],
            yerr=table["seed_se"],
            fmt="s",
            capsize=4,
            color="#7f7f7f",
            label="seed (n = 50)",
        )
    ax.set_xticks(x, list(table["method"]), rotation=45 if len(table) > 8 else 0)
    ax.set_ylabel(f"mean test {metric.upper()} ± SE" if metric == "rmse" else f"mean {metric}")
    ax.set_title(_title(run, point))
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return fig


def metric_vs_width(run: Run, metric: str) -> Figure:
    """Mean ``metric`` (± SE) of each network against its width, log-log, with the
    least-squares slope of log mean on log width in the legend (:func:`width_slopes`) and a
    dashed :math:`n^{-1/2}` guide."""
    eq = equivalence_table(run)
    if metric not in eq.columns:
        raise ReportError(f"the run stored no {metric} for its networks")
    eq = eq[np.isfinite(eq["width"]) & (eq[metric] > 0)]
    if eq["width"].nunique() < 2:
        raise ReportError(f"{metric} vs width needs a width sweep with at least 2 widths")
    slopes = width_slopes(run, metric).set_index("method")["slope"]
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for method, grp in eq.groupby("method", sort=False):
        grp = grp.sort_values("width")
        slope = slopes.get(method, math.nan)
        ax.errorbar(
            grp["width"],
            grp[metric],
            yerr=grp[f"{metric}_se"].fillna(0.0),
            fmt="o-",
            capsize=3,
            label=f"{method} (slope {slope:+.2f})",
        )
    width_axes(ax, eq, metric, "width (hidden units per layer)")
    ax.set_ylabel(metric)
    ax.set_title(f"{run.name}: {metric} vs width")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def discrepancy_vs_width(run: Run) -> Figure:
    """NN-NTK discrepancy ``nn_lin_rms`` against width (log-log, fitted slope)."""
    return metric_vs_width(run, "nn_lin_rms")


def kernel_drift_vs_width(run: Run) -> Figure:
    """Kernel drift ``kernel_drift`` against width (log-log, fitted slope)."""
    return metric_vs_width(run, "kernel_drift")


def training_curves(run: Run, point: int | None = None) -> Figure:
    """Test RMSE over training of each network (``curve_test_rmse``) against the NTK
    prediction at the same epoch (``curve_ntk_test_rmse``), means over trials; one panel per
    network method."""
    run.require_finished()
    point = run.check_point(point)
    net = run.curves("curve_test_rmse", point)
    ntk = run.curves("curve_ntk_test_rmse", point)
    methods = [m for m in run.method_names if m in set(net["method"])]
    if not methods:
        raise ReportError(f"the run stored no training curves at {run.point_label(point)}")
    ncols = min(3, len(methods))
    nrows = math.ceil(len(methods) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    inf = run.final("ntk_inf_rmse", point)
    for ax, method in zip(axes, methods, strict=False):
        for df, style, label in ((net, "-", "network"), (ntk, "--", "NTK, same time")):
            mean = df[df["method"] == method].groupby("step")["value"].mean()
            if len(mean):
                ax.plot(mean.index, mean.to_numpy(), style, marker=".", label=label)
        if method in inf:
            _, value, _ = mean_se(inf[method])
            if np.isfinite(value):
                ax.axhline(value, color="k", ls=":", lw=1, label="NTK, T = ∞")
        ax.set_title(method)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test RMSE")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(methods) :]:
        ax.set_visible(False)
    fig.suptitle(_title(run, point))
    return fig


def nn_vs_ntk_same_t(run: Run, point: int | None = None, metric: str = "rmse") -> Figure:
    """Scatter, one point per trial, of the network's ``metric`` (y) against its own NTK
    prediction at the same training time (x), one panel per depth that has both methods
    (:func:`~ntklab.report.attribution.same_time_pairs`), with the identity line."""
    run.require_finished()
    point = run.check_point(point)
    pairs = same_time_pairs(run, point, metric)
    if not pairs:
        raise ReportError(
            f"the run has no network with its NTK at the same training time (NNk and "
            f"NTK-NNk-T) at {run.point_label(point)}"
        )
    wide = run.final(metric, point)
    fig = Figure(figsize=(4.8 * len(pairs), 5.0), layout="constrained")
    axes = fig.subplots(1, len(pairs), squeeze=False).ravel()
    for ax, (_, nn, ntk) in zip(axes, pairs, strict=True):
        both = wide[[nn, ntk]].dropna()
        x, y = both[ntk].to_numpy(float), both[nn].to_numpy(float)
        d = paired_t(y - x)
        ci = (
            f"\n95 % CI [{d['ci_low']:.3g}, {d['ci_high']:.3g}]" if np.isfinite(d["ci_low"]) else ""
        )
        ax.scatter(x, y, s=18, alpha=0.8, label=f"trials (n = {len(x)})")
        ax.text(
            0.97,
            0.03,
            f"{nn} − {ntk}: {d['mean']:.3g}{ci}",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize="small",
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8},
        )
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        pad = 0.05 * (hi - lo) if hi > lo else 0.05 * abs(hi) or 0.01
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1, label="equal")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.set_xlabel(f"{ntk} test {metric.upper() if metric == 'rmse' else metric}")
        ax.set_ylabel(f"{nn} test {metric.upper() if metric == 'rmse' else metric}")
        ax.set_title(f"{nn} vs its NTK at the same T")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper left")
    fig.suptitle(_title(run, point))
    return fig


def make_figures(run: Run) -> dict[str, Figure]:
    """Every figure the run's data supports, by name.

    ``boxplot`` and ``mean_se`` (per sweep point, suffixed ``_point<k>`` when there is a
    sweep), ``nn_lin_rms_vs_width`` and ``kernel_drift_vs_width`` (width sweeps of networks),
    ``curves`` (runs with training curves, per point), ``nn_vs_ntk_same_t`` (runs with a
    network and its NTK at the same training time, per point). A phase grid (a sweep over width
    and lazy_scale or lr, :func:`~ntklab.report.phase.has_phase_grid`) gets its heatmaps and
    crossover instead (:func:`~ntklab.report.phase_figures.phase_figures`): per-cell figures
    would be thousands, and width plots would mix the axis values.
    """
    run.require_finished()
    many = len(run.points) > 1
    figs: dict[str, Figure] = {}
    if has_phase_grid(run):  # one figure per cell would be thousands: the heatmaps instead
        return phase_figures(run)
    for point in run.point_ids:
        suffix = f"_point{point}" if many else ""
        if run.final("rmse", point).notna().any().any():
            figs[f"boxplot{suffix}"] = boxplot(run, point)
            figs[f"mean_se{suffix}"] = mean_se_plot(run, point)
    if run.has_metric("nn_lin_rms") or run.has_metric("kernel_drift"):
        eq = equivalence_table(run)
        for metric in ("nn_lin_rms", "kernel_drift"):
            if metric not in eq:
                continue
            widths = eq[eq[metric] > 0].dropna(subset=["width"]).groupby("method")["width"]
            if len(widths) and widths.nunique().max() >= 2:  # one method over several widths
                figs[f"{metric}_vs_width"] = metric_vs_width(run, metric)
    for point in run.point_ids:
        if len(run.curves("curve_test_rmse", point)):
            figs["curves" + (f"_point{point}" if many else "")] = training_curves(run, point)
    for point in run.point_ids:
        if same_time_pairs(run, point):
            figs["nn_vs_ntk_same_t" + (f"_point{point}" if many else "")] = nn_vs_ntk_same_t(
                run, point
            )
    return figs


#: The file in a figures directory that lists the figures ntklab wrote there.
FIGURES_MARK = ".ntklab-figures"


def save_figures(
    figures: dict[str, Figure],
    directory: str | Path,
    *,
    dpi: int = 120,
    protect: bool = False,
) -> dict[str, dict[str, Path]]:
    """Save each figure as ``<directory>/<name>.png`` and ``.svg``; returns
    ``{name: {"png": path, "svg": path}}``.

    The names written are listed in ``<directory>/.ntklab-figures``. With ``protect`` (a
    directory the user chose), an existing file of the same name that is not listed there
    (the user's own) is never replaced: :class:`ReportError` before anything is written
    (:func:`~ntklab.report.outputs.check_overwrite`, the guard of every report file).
    """
    directory = Path(directory)
    mark = directory / FIGURES_MARK
    targets = [directory / f"{name}.{fmt}" for name in figures for fmt in FORMATS]
    try:
        ours = set(mark.read_text(encoding="utf-8").split()) if mark.is_file() else set()
    except OSError:
        ours = set()
    check_overwrite(
        targets,
        ours=lambda p: p.name in ours,
        force=not protect,
        other="pass another --figures directory",
    )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        mark.write_text("\n".join(sorted(ours | {p.name for p in targets})) + "\n", "utf-8")
        out: dict[str, dict[str, Path]] = {}
        for name, fig in figures.items():
            out[name] = {}
            engine = fig.get_layout_engine()
            try:
                for i, fmt in enumerate(FORMATS):
                    path = directory / f"{name}.{fmt}"
                    fig.savefig(path, format=fmt, dpi=dpi)
                    out[name][fmt] = path
                    if i == 0:  # laid out once: the other formats reuse its positions
                        fig.set_layout_engine("none")
            finally:
                fig.set_layout_engine(engine)
    except OSError as exc:
        raise ReportError(
            f"cannot write figures to {directory}: {exc.strerror or exc}; "
            "pass another --figures directory"
        ) from None
    return out
