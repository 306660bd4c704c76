"""The phase diagram report on synthetic stores: grid detection from the sweep, cells with
divergence counted, drift exponents, crossovers, verdicts on the anchor claims, figures and
the report formats.

The runs are written with the store's own writer (``RunStore.create`` + ``write_trial``), as
``ntklab run`` writes them, from laws with known exponents and seeded log-normal noise.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ntklab.config.schema import ReportSection
from ntklab.report import ReportError, build_sections, load_run, make_figures, save_figures
from ntklab.report.document import render_html, render_latex, render_markdown, write_csv
from ntklab.report.phase import (
    crossover_exponents,
    crossovers,
    drift_exponents,
    has_phase_grid,
    panel_columns,
    phase_axis,
    phase_cells,
    phase_grid,
    phase_measure,
)
from ntklab.report.phase_claims import (
    PHASE_CLAIMS,
    exponent_table,
    phase_details,
    phase_verdicts,
)
from ntklab.report.phase_figures import phase_heatmap
from ntklab.store import RunStore, TrialRecord

WIDTHS = [64, 256, 1024, 4096]
ALPHAS = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
MULTIPLES = [0.3, 0.9, 1.5, 2.5]
PARAMS = ["jacot", "mup"]
DEPTHS = [1, 2]
N_TRIALS = 3
#: Theory the synthetic runs follow: drift and nn_lin_rel ∝ width^EXPONENT / alpha (× C).
EXPONENT = {"jacot": -0.5, "mup": 0.0}
NOISE = 0.05  # sd of the per-trial log noise
K_REL = 0.5  # nn_lin_rel = K_REL width^b / alpha: crossover alpha* = K_REL / (thr sqrt n)
K_ELIN = 0.05  # nn_elin_rel (when stored) = K_ELIN width^b / alpha: alpha* 10x smaller


def _name(prefix: str, value: float) -> str:
    return f"{prefix}{value:g}".replace(".", "_")


def _network(name: str, family: str, **fields) -> dict:
    spec = {"kind": "network", "family": family, "depth": 1, "parameterization": "jacot",
            "width": 256, "epochs": 10, **fields}  # fmt: skip
    return {"method": name, "kind": "network", "family": family, "depth": None,
            "parameterization": None, "label": name, "spec": spec}  # fmt: skip


def write_phase_run(
    path: Path,
    *,
    exponents: dict[str, float] = EXPONENT,
    seed: int = 0,
    report: dict | None = None,
    layout: str = "methods",
    small: bool = False,
    depths: tuple[int, ...] = tuple(DEPTHS),
    trials: int = N_TRIALS,
    inputs: tuple[str, ...] = (),
    elin: bool = False,
) -> Path:
    """A phase grid over parameterization x depth x width (the sweep) with, in every point,
    one network per lazy scale (family NN-alpha, lr "x0.5") and per lr multiple (family
    NN-lr), as the phase presets lay it out (``layout="methods"``); or one network ``NN``
    whose lr multiple is swept (``layout="swept-lr"``, parameterization x lr x width, depth 1).
    ``trials`` trials (``small``: only the first 2 widths, 1 trial). Divergence: lr 2.5 x
    critical diverges in trial 0 of every cell; mup at the smallest lazy scale and width 64 in
    trials 0 and 1 (``diverged = 1``, NaN measures). ``elin``: store nn_elin_rel too (else
    the run has none, as networks trained without their own linearization).
    """
    rng = np.random.default_rng(seed)
    kernel = {"method": "K1", "kind": "laplacian", "family": "K1", "depth": None,
              "parameterization": None, "label": "K1", "spec": {}}  # fmt: skip
    if layout == "methods":
        keys = ["methods.*.parameterization", "methods.*.depth", "methods.*.width"]
        grid = list(itertools.product(PARAMS, depths, WIDTHS))
        nets = {_name("alpha-", a): ("lazy_scale", a) for a in ALPHAS}
        nets |= {_name("lr-x", c): ("lr", c) for c in MULTIPLES}
        methods = [
            _network(m, "NN-alpha", lazy_scale=v, lr="x0.5")
            if f == "lazy_scale"
            else _network(m, "NN-lr", lr=f"x{v:g}")
            for m, (f, v) in nets.items()
        ]
    else:
        keys = ["methods.NN.parameterization", "methods.NN.lr", "methods.NN.width"]
        grid = list(itertools.product(PARAMS, [f"x{c:g}" for c in MULTIPLES], WIDTHS))
        methods = [_network("NN", "NN")]
    points = [dict(zip(keys, v, strict=True)) for v in grid]
    if inputs:  # a data field swept too: one more panel key
        points = [dict(p, **{"data.inputs": i}) for p in points for i in inputs]
    if small:
        points = [p for p in points if p[keys[2]] in WIDTHS[:2]]
    trials = 1 if small else trials
    meta = {"name": "phase-test", "n_trials": trials, "versions": {}, "assumed": {}}
    trial_noise = rng.normal(0.0, NOISE, size=(len(points), trials))  # shared along the axis
    with RunStore.create(
        path,
        config={"data": {"n": 200}, "report": report or {}},
        config_hash="h",
        meta=meta,
        points=points,
        methods=[*methods, kernel],
    ) as store:
        for p, params in enumerate(points):
            param, width = params[keys[0]], params[keys[2]]
            if layout == "methods":
                cells = list(nets.items())
            else:
                cells = [("NN", ("lr", float(params[keys[1]][1:])))]
            for t in range(trials):
                rec = TrialRecord(point=p, trial=t, seed=f"{p}-{t}")
                rec.add("K1", "rmse", 0.1)
                for method, (field, v) in cells:
                    law = width ** exponents[param] * (1 / v if field == "lazy_scale" else v)
                    diverged = (field == "lr" and v == MULTIPLES[-1] and t == 0) or (
                        param == "mup" and v == ALPHAS[0] and width == WIDTHS[0] and t < 2
                    )
                    eps = trial_noise[p, t]
                    drift = 2.0 * law * math.exp(eps + rng.normal(0.0, NOISE))
                    rel = K_REL * law * math.exp(eps)
                    rec.add(method, "rmse", math.nan if diverged else 0.2)
                    rec.add(method, "kernel_drift", math.nan if diverged else drift)
                    rec.add(method, "nn_lin_rel", math.nan if diverged else rel)
                    if elin:
                        rec.add(
                            method, "nn_elin_rel", math.nan if diverged else rel * K_ELIN / K_REL
                        )
                    rec.add(method, "diverged", float(diverged))
                    if field == "lr" and layout == "methods":  # a catapult above C = 1
                        for step in range(4):
                            spike = v > 1 and step == 1
                            rec.add(
                                method,
                                "curve_train_loss",
                                (10.0 if spike else 1.0) / (1 + step),
                                step,
                            )
                            lam = 1.0 if step == 0 or v <= 1 else 0.9 / v
                            rec.add(method, "curve_lambda_max", lam, step)
                store.write_trial(rec)
    return path


@pytest.fixture(scope="module")
def phase_dir(tmp_path_factory) -> Path:
    return write_phase_run(tmp_path_factory.mktemp("phase") / "run")


@pytest.fixture(scope="module")
def phase_run(phase_dir):
    return load_run(phase_dir)


def test_grid_found_from_the_sweep_and_the_methods(phase_run):
    assert phase_axis(phase_run) == ["lazy_scale", "lr_multiple"]
    grid = phase_grid(phase_run)
    n_points = len(PARAMS) * len(DEPTHS) * len(WIDTHS)
    assert len(grid) == n_points * (len(ALPHAS) + len(MULTIPLES)) * N_TRIALS  # K1 is no network
    assert set(grid["parameterization"]) == set(PARAMS) and set(grid["depth"]) == set(DEPTHS)
    by_axis = grid.groupby("axis")["x"].unique()
    assert sorted(by_axis["lazy_scale"]) == ALPHAS and sorted(by_axis["lr_multiple"]) == MULTIPLES
    assert set(grid.groupby("axis")["group"].unique().map(tuple)) == {("NN-alpha",), ("NN-lr",)}


@pytest.fixture(scope="module")
def wrong_run(tmp_path_factory):
    """Jacot's drift and discrepancy fall like width^-0.2, mup's like width^-0.5."""
    path = tmp_path_factory.mktemp("wrong") / "run"
    wrong = {"jacot": -0.2, "mup": -0.5}
    return load_run(write_phase_run(path, exponents=wrong, seed=1, depths=(1,)))


def test_cells_count_divergence_never_drop_it(phase_run):
    grid = phase_grid(phase_run)
    div = grid[grid["diverged"]]
    # every diverged trial is a row of the grid, with NaN measures
    n_lr = len(PARAMS) * len(DEPTHS) * len(WIDTHS)  # lr 2.5: trial 0 of every cell
    assert len(div) == n_lr + 2 * len(DEPTHS)  # + mup, alpha 0.01, width 64: trials 0, 1
    assert div[["nn_lin_rel", "kernel_drift"]].isna().all().all()
    cells = phase_cells(phase_run, grid)
    assert len(cells) == n_lr * (len(ALPHAS) + len(MULTIPLES))
    assert (cells["n"] == N_TRIALS).all()
    hot = cells[cells["diverged"] > 0]
    assert int(hot["diverged"].sum()) == len(div)
    corner = hot[hot["axis"] == "lazy_scale"]
    assert set(corner["x"]) == {ALPHAS[0]} and set(corner["width"]) == {WIDTHS[0]}
    assert set(corner["parameterization"]) == {"mup"} and set(corner["diverged"]) == {2}
    # the cell mean covers the converged trials only
    one = grid[(grid["axis"] == "lazy_scale") & (grid["x"] == ALPHAS[0])]
    one = one[(one["width"] == WIDTHS[0]) & (one["parameterization"] == "mup")]
    one = one[one["depth"] == 1]
    row = corner[corner["depth"] == 1].iloc[0]
    assert row["kernel_drift"] == pytest.approx(one["kernel_drift"].dropna().mean(), rel=1e-12)


def test_drift_exponents_recover_the_laws(phase_run, wrong_run):
    for run, truth in ((phase_run, EXPONENT), (wrong_run, {"jacot": -0.2, "mup": -0.5})):
        table = drift_exponents(run)
        n_depths = phase_grid(run)["depth"].nunique()
        assert len(table) == len(PARAMS) * n_depths * (len(ALPHAS) + len(MULTIPLES))
        assert (table["n_widths"] == len(WIDTHS)).all()
        for row in table.itertuples():
            b = truth[row.parameterization]
            # per-trial log noise sd ~ 0.07 over 4 widths spanning log 64: se ~ 0.01
            assert 0 < row.se < 0.03
            assert abs(row.exponent - b) < 5 * row.se
            assert row.ci_low < row.exponent < row.ci_high
        # the fit is least squares of log drift on log width over the finished trials
        first = table.iloc[0]
        grid = phase_grid(run)
        sel = grid[(grid["axis"] == first["axis"]) & (grid["x"] == first["x"])]
        sel = sel[(sel["parameterization"] == first["parameterization"])]
        sel = sel[(sel["depth"] == first["depth"])].dropna(subset=["kernel_drift"])
        slope = np.polyfit(np.log(sel["width"]), np.log(sel["kernel_drift"]), 1)[0]
        assert first["exponent"] == pytest.approx(slope, rel=1e-10)
        assert first["n"] == len(sel)


def test_crossover_scales_like_one_over_sqrt_width(phase_run):
    thr = 0.1
    cross = crossovers(phase_run)
    alpha = cross[(cross["axis"] == "lazy_scale") & (cross["parameterization"] == "jacot")]
    assert not alpha["censored"].any()
    for w, grp in alpha.groupby("width"):
        # nn_lin_rel = K w^-1/2 / alpha (times one noise factor per trial): alpha* = K / (thr √w)
        expected = K_REL / (thr * math.sqrt(w))
        assert float(np.exp(np.log(grp["crossover"]).mean())) == pytest.approx(expected, rel=0.1)
    # mup's discrepancy does not fall with width: above the threshold at the lazy end? no:
    # at alpha = 3 it is 0.17 > 0.1 at every width, so every mup curve is censored
    mup = cross[(cross["axis"] == "lazy_scale") & (cross["parameterization"] == "mup")]
    assert mup["censored"].all()
    fits = crossover_exponents(phase_run, cross)
    jac = fits[(fits["axis"] == "lazy_scale") & (fits["parameterization"] == "jacot")]
    for row in jac.itertuples():
        assert abs(row.exponent + 0.5) < 5 * row.se and row.se < 0.03
    # a higher threshold from the run's [report] table moves the crossover to smaller alpha
    assert (
        crossovers(phase_run, threshold=0.2)
        .loc[alpha.index, "crossover"]
        .lt(alpha["crossover"])
        .all()
    )


def _verdicts(run) -> dict[str, str]:
    table = phase_verdicts(run)
    return dict(zip(table["claim"], table["verdict"], strict=True))


def test_verdicts_reproduced_on_the_theory_laws(phase_run):
    verdicts = _verdicts(phase_run)
    assert list(verdicts) == list(PHASE_CLAIMS)
    assert set(verdicts.values()) == {"reproduced"}, verdicts
    details = phase_details(phase_run)
    decide = details[details["role"] == "decides"]
    claim1 = decide[decide["claim"] == list(PHASE_CLAIMS)[0]]
    # claim 1 is judged where jacot is lazy at every width: alpha >= 1 and lr x0.3, x0.9
    assert len(claim1) == len(DEPTHS) * 4
    assert (
        details.loc[details["comparison"].str.contains("lr_multiple 1.5"), "role"] != "decides"
    ).all()


def test_wrong_exponents_are_not_reproduced(wrong_run):
    verdicts = _verdicts(wrong_run)
    claim1, claim2, claim3 = PHASE_CLAIMS
    assert verdicts[claim1] == "not reproduced"  # -0.2, outside -0.5 ± 0.15
    assert verdicts[claim2] == "not reproduced"  # -0.5, outside 0 ± 0.15
    assert verdicts[claim3] == "not reproduced"  # alpha* ~ width^-0.2
    details = phase_details(wrong_run)
    decide = details[(details["role"] == "decides") & (details["claim"] == claim2)]
    assert (decide["p_against_holm"] <= 0.05).all()
    assert (decide["p_against_holm"] >= decide["p_against"]).all()  # Holm only raises p


def test_lr_only_grid_and_swept_layout(tmp_path):
    """One method with its lr multiple swept (no lazy scale): the same grid, found from the
    sweep; the crossover claim cannot be judged without an alpha axis."""
    run = load_run(write_phase_run(tmp_path / "run", layout="swept-lr", trials=2))
    assert phase_axis(run) == ["lr_multiple"]
    grid = phase_grid(run)
    assert set(grid["method"]) == {"NN"} and sorted(grid["x"].unique()) == MULTIPLES
    verdicts = _verdicts(run)
    claim1, claim2, claim3 = PHASE_CLAIMS
    assert verdicts[claim1] == verdicts[claim2] == "reproduced"
    assert verdicts[claim3] == "cannot tell"
    assert "lazy_scale" in phase_verdicts(run).set_index("claim").loc[claim3, "numbers"]


def test_no_phase_grid_without_an_axis(tmp_path):
    path = tmp_path / "run"
    keys = ["methods.*.width"]
    meta = {"name": "w", "n_trials": 1, "versions": {}, "assumed": {}}
    with RunStore.create(path, config={}, config_hash="h", meta=meta,
                         points=[{keys[0]: w} for w in WIDTHS],
                         methods=[_network("NN", "NN", lazy_scale=1.0)]) as store:  # fmt: skip
        for p, w in enumerate(WIDTHS):
            rec = TrialRecord(point=p, trial=0, seed="0")
            rec.add("NN", "rmse", 0.2)
            rec.add("NN", "kernel_drift", w**-0.5)
            store.write_trial(rec)
    run = load_run(path)
    assert not has_phase_grid(run)
    with pytest.raises(ReportError, match="no phase grid"):
        phase_grid(run)
    assert not [k for k in make_figures(run) if k.startswith("phase")]


def test_too_few_trials_cannot_tell(tmp_path):
    """Two widths and one trial: every fit has df = 0, no interval, so no verdict either way;
    a threshold no cell is below leaves claim 1 nothing to judge, and says why."""
    run = load_run(write_phase_run(tmp_path / "r", small=True, report={"phase_threshold": 1e-4}))
    table = phase_verdicts(run).set_index("claim")
    assert set(table["verdict"]) == {"cannot tell"}
    claim1, claim2, _ = PHASE_CLAIMS
    assert table.loc[claim1, "numbers"].startswith("no fit decides: not lazy at every width")
    assert table.loc[claim2, "numbers"].startswith("the intervals do not decide")
    assert phase_details(run)["ci_low"].isna().all()


def test_other_swept_fields_make_panels(tmp_path):
    run = load_run(write_phase_run(tmp_path / "r", small=True, inputs=("uniform", "normal")))
    grid = phase_grid(run)
    assert panel_columns(grid) == ["group", "axis", "parameterization", "depth", "data.inputs"]
    fig = phase_heatmap(run, "kernel_drift", "lazy_scale")
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(titles) == len(PARAMS) * len(DEPTHS) * 2
    assert "NN-alpha · mup · depth 2 · data.inputs = normal" in titles
    assert titles[0] == "NN-alpha · jacot · depth 1 · data.inputs = uniform"  # the run's order


def test_settings_from_the_report_table(tmp_path):
    with pytest.raises(ValueError, match="phase_threshold"):
        ReportSection(phase_threshold=1.5)
    assert ReportSection().phase_threshold == 0.10
    run = load_run(write_phase_run(tmp_path / "r", report={"phase_threshold": 2}, small=True))
    with pytest.raises(ReportError, match=r"report.phase_threshold: input should be less than 1"):
        phase_verdicts(run)
    assert ReportSection().phase_measure == "nn_elin_rel"
    run = load_run(write_phase_run(tmp_path / "m", report={"phase_measure": "rmse"}, small=True))
    for show in (phase_verdicts, crossovers, phase_heatmap):
        with pytest.raises(
            ReportError,
            match=r"report.phase_measure: input should be 'nn_elin_rel' or 'nn_lin_rel' \(got 'rmse'\)$",
        ) as info:
            show(run)
        assert "\n" not in str(info.value)


def test_crossover_and_lazy_cells_follow_the_phase_measure(tmp_path):
    """nn_elin_rel (K_ELIN w^b / alpha) and nn_lin_rel (K_REL w^b / alpha, the same noise)
    reach the threshold at alphas K_REL / K_ELIN = 10x apart: each report.phase_measure gives
    its own crossover, and its own lazy cells, where claim 1's fits decide."""
    thr, crossover = 0.1, {}
    for measure, k in (("nn_elin_rel", K_ELIN), ("nn_lin_rel", K_REL)):
        path = tmp_path / measure
        report = {"phase_measure": measure}
        run = load_run(write_phase_run(path, small=True, depths=(1,), elin=True, report=report))
        assert phase_measure(run) == (measure, "")  # stored: no fallback, no note
        cross = crossovers(run)
        jac = cross[(cross["axis"] == "lazy_scale") & (cross["parameterization"] == "jacot")]
        assert not jac["censored"].any()
        # measure = k w^-1/2 e^eps / alpha: alpha* = k e^eps / (thr sqrt w), eps sd 0.05
        assert np.allclose(jac["crossover"], k / (thr * np.sqrt(jac["width"])), rtol=0.25)
        crossover[measure] = jac["crossover"].to_numpy()
        table = exponent_table(run)
        sel = table[(table["axis"] == "lazy_scale") & (table["parameterization"] == "jacot")]
        # lazy at widths 64 and 256 where k 64^-1/2 / alpha < thr (no grid alpha near the edge)
        lazy = [a for a in ALPHAS if k / (8 * a) < thr]
        assert sorted(sel.loc[sel["role"] == "decides", "x"]) == lazy
    # log-log interpolation of a power law is exact: the ratio is K_ELIN / K_REL per trial
    ratio = crossover["nn_elin_rel"] / crossover["nn_lin_rel"]
    assert np.allclose(ratio, K_ELIN / K_REL, rtol=1e-9)


def test_report_shows_heatmaps_verdicts_and_divergence(phase_run, tmp_path):
    figs = make_figures(phase_run)
    assert not [k for k in figs if k.startswith(("boxplot", "mean_se"))]  # no per-cell figures
    expected = {f"phase_{m}_{a}" for m in ("nn_lin_rel", "kernel_drift")
                for a in ("lazy_scale", "lr_multiple")}  # fmt: skip
    assert expected | {"phase_crossover_lazy_scale", "phase_curves_lr_multiple"} <= set(figs)
    fig = figs["phase_nn_lin_rel_lazy_scale"]
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(panels) == len(PARAMS) * len(DEPTHS)
    titles = {ax.get_title(): ax for ax in panels}
    assert titles["NN-alpha · jacot · depth 1"].collections  # the threshold contour
    mup = titles["NN-alpha · mup · depth 1"]
    assert "÷2/3" in [t.get_text() for t in mup.texts]  # the diverged corner, counted
    assert not mup.collections  # mup's discrepancy (0.5 / alpha >= 0.17) never crosses 0.1
    lr = figs["phase_kernel_drift_lr_multiple"]
    marks = [t.get_text() for ax in lr.axes for t in ax.texts if t.get_text().startswith("÷")]
    assert marks.count("÷1/3") == len(PARAMS) * len(DEPTHS) * len(WIDTHS)
    curves = figs["phase_curves_lr_multiple"]
    loss_ax = curves.axes[0]
    assert len(loss_ax.lines) == len(MULTIPLES)
    lam_ax = curves.axes[1]  # lambda_max / lambda_max(0), with 1/C marked for each C
    caught = [ln for ln in lam_ax.lines if len(ln.get_xdata()) == 4]
    assert {round(float(ln.get_ydata()[-1]), 6) for ln in caught} == {1.0, round(0.9 / 1.5, 6),
                                                                      round(0.9 / 2.5, 6)}  # fmt: skip
    # one figure saved as PNG and SVG and linked from the report (rendering all is slow)
    name = "phase_nn_lin_rel_lazy_scale"
    saved = save_figures({name: fig}, tmp_path / "figs")
    assert saved[name]["png"].stat().st_size > 0 and saved[name]["svg"].is_file()
    sections = build_sections(phase_run)
    keys = [s.key for s in sections]
    assert {"phase_verdicts", "phase_exponents", "phase_crossover", "phase_cells"} <= set(keys)
    assert "width_slopes" not in keys  # width slopes would mix the axis values
    text = render_markdown(phase_run, sections, saved, tmp_path)
    assert "figs/phase_nn_lin_rel_lazy_scale.png" in text
    # the run stored no nn_elin_rel (the default phase_measure): nn_lin_rel, said once
    measure, note = phase_measure(phase_run)
    assert measure == "nn_lin_rel" and "stored no nn_elin_rel" in note
    assert text.count(note) == 1 and "Threshold 0.1 on nn_lin_rel" in text
    assert "anchor claims" in text and text.count("| reproduced") >= 3
    assert "C = 2.5, width 64: 1/3" in text  # divergence listed per cell
    write_csv(sections, tmp_path / "csv")
    verdicts = pd.read_csv(tmp_path / "csv" / "phase_verdicts.csv")
    assert list(verdicts["verdict"]) == ["reproduced"] * 3
    cells = pd.read_csv(tmp_path / "csv" / "phase_cells.csv")
    assert int(cells["diverged"].sum()) == int(phase_grid(phase_run)["diverged"].sum())
    assert "anchor claims" in render_latex(phase_run, sections)
    assert "anchor claims" in render_html(phase_run, sections)
