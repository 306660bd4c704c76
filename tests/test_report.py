"""Reports: tables recomputed from the raw rows, hand-computed analyses, figures, HTML, CLI.

The runs here are written with the store's own writer (``RunStore.create`` + ``write_trial``),
exactly as ``ntklab run`` writes them, with seeded random numbers.
"""

from __future__ import annotations

import base64
import math
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from ntklab.cli import main as cli
from ntklab.report import (
    ReportError,
    boxplot,
    equivalence_table,
    layer_change,
    load_run,
    main_table,
    make_figures,
    nn_ntk_ratios,
    paired_differences,
    resolve_generator,
    run_notes,
    save_figures,
    ties_with_generator,
    training_curves,
    width_slopes,
    write_report,
)
from ntklab.report.reference import SEED_TABLE
from ntklab.report.render import html_table, latex_table, markdown_table
from ntklab.report.stats import holm
from ntklab.store import FINAL, RunStore, TrialRecord

PAPER = list(SEED_TABLE)  # NN1, NN2, GP1, ..., K1
ASSUMED = {"n_train": 800, "sigma_w": 1.0, "sigma_b": 0.1, "width": 256, "lr": "auto"}
GEN_NTKB1 = {"kind": "ntk", "depth": 1, "parameterization": "paper", "sigma_w": 1.0, "sigma_b": 0.1}


def md_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown pipe-table row in ``text`` (padding stripped)."""
    return [
        [c.strip() for c in line.strip()[1:-1].split(" | ")]
        for line in text.splitlines()
        if line.startswith("|") and not set(line) <= set("|:- ")
    ]


def _method_row(name: str) -> dict:
    """The methods-table row the runner writes for a seed method name."""
    if name == "K1":
        return {
            "method": name,
            "kind": "laplacian",
            "label": "Laplacian (K1)",
            "family": "K1",
            "depth": None,
            "spec": {"length_scale": 1.0},
        }
    family, depth = name[:-1], int(name[-1])
    kind = {"NN": "network", "GP": "nngp"}.get(family, "ntk")
    param = {"NTKA": "arora", "NTKJ": "jacot", "GP": "jacot"}.get(family, "paper")
    spec = {"kind": kind, "depth": depth, "parameterization": param, "sigma_w": 1.0, "sigma_b": 0.1}
    if kind == "network":
        spec["width"] = 256
    return {
        "method": name,
        "kind": kind,
        "label": f"{family} ({depth} layer)",
        "family": family,
        "depth": depth,
        "parameterization": param,
        "spec": spec,
    }


def _create(
    path: Path, methods: list[dict], *, n_trials: int, points=None, config=None, name="paper-quick"
) -> RunStore:
    config = (
        config
        if config is not None
        else {"data": {"n": 1000, "n_train": 800, "generator": GEN_NTKB1}}
    )
    return RunStore.create(
        path,
        config=config,
        config_hash=f"hash-{name}",
        meta={
            "assumed": ASSUMED,
            "versions": {"ntklab": "0.1.0", "torch": "2.13.0"},
            "name": name,
            "n_trials": n_trials,
        },
        points=points or [{}],
        methods=methods,
    )


def write_paper_run(path: Path, *, n_done=6, n_failed=1, n_trials=8, seed=0) -> Path:
    """A paper-like run: 11 methods, ``n_done`` finished trials, ``n_failed`` failed ones,
    the rest pending; NN1 diverged (rmse = inf) in one trial, K1 errored in another."""
    rng = np.random.default_rng(seed)
    with _create(path, [_method_row(m) for m in PAPER], n_trials=n_trials) as store:
        for t in range(n_done + n_failed):
            rec = TrialRecord(point=0, trial=t, seed=f"{seed}-{t}", wall_time=1.0)
            base = rng.normal(0.0, 0.002)  # shared per-trial noise: paired structure
            values = {m: SEED_TABLE[m].mean_rmse * (1 + rng.normal(0, 0.03)) + base for m in PAPER}
            values["NTKB2"] = values["NTKB1"] + (1e-4 if t % 2 else -1e-4) * (1 + 0.1 * t)
            if t == 1:
                values["NN1"] = math.inf  # a diverged network
            for m in PAPER:
                if m == "K1" and t == 2:
                    rec.errors.append(("K1", "Cholesky failed: matrix not positive definite"))
                    continue
                rec.add(m, "rmse", values[m])
                if m.startswith("NN"):
                    rec.add(m, "diverged", float(not math.isfinite(values[m])))
            if t >= n_done:
                rec.status, rec.error = "failed", "worker lost (killed)"
            store.write_trial(rec)
    return path


def write_small_run(path: Path, values: dict[str, list[float]], *, config=None) -> Path:
    """Three finished trials with the given RMSE values per method."""
    methods = [_method_row(m) for m in values]
    with _create(path, methods, n_trials=3, config=config, name="small") as store:
        for t in range(3):
            rec = TrialRecord(point=0, trial=t, seed=str(t))
            for m, vals in values.items():
                rec.add(m, "rmse", vals[t])
            store.write_trial(rec)
    return path


WIDTHS = [64, 256, 1024]
EQ_NETS = {"NNJ1": "jacot", "NNA1": "arora", "NNB1": "paper"}


def write_equivalence_run(path: Path, *, n_trials=4, seed=1) -> Path:
    """A width sweep of three networks with equivalence measures and training curves."""
    rng = np.random.default_rng(seed)
    methods = []
    for net, param in EQ_NETS.items():
        letter = {"jacot": "J", "arora": "A", "paper": "B"}[param]
        methods.append(
            {
                "method": net,
                "kind": "network",
                "family": f"NN{letter}",
                "depth": 1,
                "parameterization": param,
                "label": f"NN {param} (1 layer)",
                "spec": {"width": 512},
            }
        )
        methods.append(
            {
                "method": f"NTK{letter}1",
                "kind": "ntk",
                "family": f"NTK{letter}",
                "depth": 1,
                "parameterization": param,
            }
        )
    points = [{"methods.*.width": w} for w in WIDTHS]
    config = {"data": {"n": 400, "n_train": 300, "generator": GEN_NTKB1}}
    with _create(
        path, methods, n_trials=n_trials, points=points, config=config, name="equivalence"
    ) as store:
        for p, w in enumerate(WIDTHS):
            for t in range(n_trials):
                rec = TrialRecord(point=p, trial=t, seed=f"{p}-{t}")
                for i, net in enumerate(EQ_NETS):
                    letter = net[2]
                    rec.add(f"NTK{letter}1", "rmse", 0.06 + rng.normal(0, 0.002))
                    rec.add(net, "rmse", 0.08 + 0.3 / math.sqrt(w) + rng.normal(0, 0.002))
                    rec.add(net, "ntk_same_t_rmse", 0.07 + rng.normal(0, 0.002))
                    rec.add(net, "ntk_inf_rmse", 0.06 + rng.normal(0, 0.002))
                    rec.add(net, "nn_lin_rms", (1 + i) * w**-0.5 * math.exp(rng.normal(0, 0.05)))
                    rec.add(
                        net,
                        "kernel_drift",
                        2 * w ** -(0.4 + 0.1 * i) * math.exp(rng.normal(0, 0.05)),
                    )
                    rec.add(net, "diverged", 0.0)
                    for step in (0, 100, 200):
                        rec.add(net, "curve_test_rmse", 1.0 / (1 + step) + 0.08, step)
                        rec.add(net, "curve_ntk_test_rmse", 1.0 / (1 + step) + 0.07, step)
                store.write_trial(rec)
    return path


@pytest.fixture(scope="module")
def paper_dir(tmp_path_factory) -> Path:
    return write_paper_run(tmp_path_factory.mktemp("paper") / "run")


@pytest.fixture(scope="module")
def eq_dir(tmp_path_factory) -> Path:
    return write_equivalence_run(tmp_path_factory.mktemp("eq") / "run")


def _raw_finals(run_dir: Path, metric="rmse") -> pd.DataFrame:
    """Final values of finished trials, recomputed straight from the store's tables."""
    with RunStore.open(run_dir) as store:
        res, trials = store.results(), store.trials()
    done = {
        (p, t)
        for p, t, s in zip(trials["point"], trials["trial"], trials["status"], strict=True)
        if s == "done"
    }
    keep = [
        (p, t) in done and m == metric and s == FINAL
        for p, t, m, s in zip(res["point"], res["trial"], res["metric"], res["step"], strict=True)
    ]
    return res[keep]


# ---- main table ------------------------------------------------------------------------------
def test_main_table_equals_recomputation_from_raw_rows(paper_dir):
    run = load_run(paper_dir)
    table = main_table(run).set_index("method")
    raw = _raw_finals(paper_dir)
    assert list(table.index) == PAPER
    for m in PAPER:
        v = raw.loc[raw["method"] == m, "value"].to_numpy()
        v = v[np.isfinite(v)]
        assert table.loc[m, "n"] == len(v)
        assert table.loc[m, "mean"] == pytest.approx(sum(v) / len(v), rel=1e-12)
        sd = math.sqrt(sum((x - v.mean()) ** 2 for x in v) / (len(v) - 1))
        assert table.loc[m, "se"] == pytest.approx(sd / math.sqrt(len(v)), rel=1e-12)
        assert table.loc[m, "seed_mean"] == SEED_TABLE[m].mean_rmse
        assert table.loc[m, "seed_se"] == SEED_TABLE[m].se
        assert table.loc[m, "ratio"] == pytest.approx(
            table.loc[m, "mean"] / SEED_TABLE[m].mean_rmse, rel=1e-12
        )
    # only finished trials count: 6 done; NN1 lost one to divergence, K1 one to an error
    assert table.loc["NN2", "n"] == 6
    assert table.loc["NN1", "n"] == 5
    assert table.loc["K1", "n"] == 5
    # what is left out of the means is counted, never dropped silently
    assert (table.loc["NN1", "diverged"], table.loc["NN1", "missing"]) == (1, 1)
    assert (table.loc["K1", "failed"], table.loc["K1", "missing"]) == (1, 1)
    assert table.loc["NN2", "diverged"] == 0 and math.isnan(table.loc["K1", "diverged"])
    assert table[["failed", "missing"]].drop(["NN1", "K1"]).eq(0).all().all()
    # z-score of ours against the seed's row, and the 3-SE flag
    for m in PAPER:
        z = (table.loc[m, "mean"] - SEED_TABLE[m].mean_rmse) / math.sqrt(
            table.loc[m, "se"] ** 2 + SEED_TABLE[m].se ** 2
        )
        assert table.loc[m, "z"] == pytest.approx(z, rel=1e-12)
        assert table.loc[m, "within_3se"] == (abs(z) <= 3)


def test_notes_say_what_is_unfinished(paper_dir):
    notes = "\n".join(run_notes(load_run(paper_dir)))
    assert "1 trial(s) failed" in notes and "worker lost" in notes
    assert "6 of 8 trials finished" in notes
    assert "K1 failed in 1 finished trial(s)" in notes
    assert "NN1: 1 finished trial(s) without a finite rmse" in notes
    assert "NN1: training diverged in 1 trial(s)" in notes


def test_no_seed_columns_for_other_runs(tmp_path):
    run = load_run(write_small_run(tmp_path / "r", {"NN1": [1, 2, 3], "NTKJ1": [1, 1, 2]}))
    assert "seed_mean" not in main_table(run)
    # all 11 names but real data: not the seed's experiment either
    d = write_paper_run(tmp_path / "real", n_done=3, n_failed=0, n_trials=3)
    with RunStore.open(d, write=True) as s:
        s._conn.execute(
            "UPDATE meta SET value=? WHERE key='config'",
            ('{"data": {"dataset": "diabetes", "generator": null}}',),
        )
        s._conn.commit()
    real = load_run(d)
    assert "seed_mean" not in main_table(real)
    assert resolve_generator(real) is None


# ---- analyses: hand computations on 3 trials --------------------------------------------------
T975_2 = 4.302652729911275  # t quantile 0.975 with 2 degrees of freedom (tables)


def _p_t_df2(t: float) -> float:
    """Two-sided p-value of Student's t with 2 df: CDF(t) = 1/2 + t / (2 sqrt(2 + t^2))."""
    return 1 - abs(t) / math.sqrt(2 + t * t)


#: RMSE values of the three trials of the ``small`` run.
SMALL = {
    "NN1": [0.2, 0.3, 0.4],
    "NN2": [0.1, 0.25, 0.31],
    "NTKJ1": [0.1, 0.1, 0.1],
    "NTKJ2": [0.12, 0.1, 0.11],
    "GP1": [0.2, 0.21, 0.22],
}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return load_run(write_small_run(tmp_path_factory.mktemp("small") / "r", SMALL))


def test_layer_change_by_hand(small):
    lc = layer_change(small).set_index("family")
    # NN: mean 0.3 -> 0.22: (0.22 - 0.3) / 0.3 = -26.666...%
    assert lc.loc["NN", "change_pct"] == pytest.approx(-80 / 3, rel=1e-12)
    # NTKJ: 0.1 -> 0.11: +10 %
    assert lc.loc["NTKJ", "change_pct"] == pytest.approx(10.0, rel=1e-12)
    # paired NN2 - NN1 = (-0.1, -0.05, -0.09): mean -0.08, sd sqrt(0.0007)
    t = -0.08 / (math.sqrt(0.0007) / math.sqrt(3))
    assert lc.loc["NN", "p_t"] == pytest.approx(_p_t_df2(t), rel=1e-9)
    assert "seed_change_pct" not in lc


def test_paired_differences_by_hand(small):
    row = paired_differences(small, "NN1", "NTKJ1").iloc[0]
    # differences (0.1, 0.2, 0.3): mean 0.2, sd 0.1, t = 0.2 / (0.1 / sqrt 3)
    assert row["n"] == 3
    assert row["mean_diff"] == pytest.approx(0.2, rel=1e-12)
    assert row["sd_diff"] == pytest.approx(0.1, rel=1e-12)
    half = T975_2 * 0.1 / math.sqrt(3)
    assert row["ci_low"] == pytest.approx(0.2 - half, rel=1e-9)
    assert row["ci_high"] == pytest.approx(0.2 + half, rel=1e-9)
    assert row["t"] == pytest.approx(2 * math.sqrt(3), rel=1e-9)
    assert row["p_t"] == pytest.approx(_p_t_df2(2 * math.sqrt(3)), rel=1e-9)
    # Wilcoxon, exact: all 3 differences positive, W+ = 6, P(W+ = 6) = 1/8, two-sided 1/4
    assert row["p_wilcoxon"] == pytest.approx(0.25, rel=1e-12)
    # the reverse pair flips the sign, not the p-values
    rev = paired_differences(small, "NTKJ1", "NN1").iloc[0]
    assert rev["mean_diff"] == pytest.approx(-0.2) and rev["p_t"] == pytest.approx(row["p_t"])


def test_nn_ntk_ratios_by_hand(small):
    r = nn_ntk_ratios(small).set_index(["network", "kernel"])["nn_kernel_ratio"]
    assert r[("NN1", "NTKJ1")] == pytest.approx(0.3 / 0.1, rel=1e-12)
    assert r[("NN2", "NTKJ2")] == pytest.approx(0.22 / 0.11, rel=1e-12)
    assert ("NN1", "NTKJ2") not in r.index  # only equal depths


def test_seed_layer_change_computed_from_reference(paper_dir):
    """The seed's §4.2 percentages (NN -7.4 %, NTKJ -0.1 %, NTKB +0.01 %, NTKA +3.4 %) follow
    from the typed-in table: a check of the table, and of the formula."""
    lc = layer_change(load_run(paper_dir)).set_index("family")["seed_change_pct"]
    assert round(lc["NN"], 1) == -7.4
    assert round(lc["NTKJ"], 1) == -0.1
    assert round(lc["NTKB"], 2) == 0.01
    assert round(lc["NTKA"], 1) == 3.4
    r = nn_ntk_ratios(load_run(paper_dir)).set_index(["network", "kernel"])["seed_ratio"]
    assert r[("NN1", "NTKB1")] == pytest.approx(0.207151 / 0.0629396, rel=1e-12)


def _tost_p_by_hand(d: np.ndarray, margin: float) -> float:
    """max of the two one-sided paired t p-values, from scipy's t distribution."""
    n, mean, se = len(d), d.mean(), d.std(ddof=1) / math.sqrt(len(d))
    return max(stats.t.sf((mean + margin) / se, n - 1), stats.t.cdf((mean - margin) / se, n - 1))


def test_ties_with_generator(paper_dir):
    """Ties are equivalence by TOST at 2 % of the generator's mean, Holm across the table."""
    run = load_run(paper_dir)
    assert resolve_generator(run) == "NTKB1"  # from config data.generator
    ties = ties_with_generator(run).set_index("method")
    raw = _raw_finals(paper_dir).pivot(index="trial", columns="method", values="value")
    expected = {}
    for m in ties.index:
        ok = np.isfinite(raw[m]) & np.isfinite(raw["NTKB1"])
        d = (raw[m][ok] - raw["NTKB1"][ok]).to_numpy()
        margin = 0.02 * raw["NTKB1"][ok].mean()
        assert ties.loc[m, "n"] == ok.sum()
        assert ties.loc[m, "margin"] == pytest.approx(margin, rel=1e-12)
        assert ties.loc[m, "mean_diff"] == pytest.approx(d.mean(), rel=1e-9)
        assert ties.loc[m, "p_t"] == pytest.approx(
            stats.ttest_rel(raw[m][ok], raw["NTKB1"][ok]).pvalue, rel=1e-9
        )
        expected[m] = _tost_p_by_hand(d, margin)
        assert ties.loc[m, "p_tost"] == pytest.approx(expected[m], rel=1e-9)
    adjusted = holm(list(expected.values()))  # holm: tested on a textbook example
    np.testing.assert_allclose(ties["p_tost_holm"], adjusted, rtol=1e-9)
    for m, p in zip(expected, adjusted, strict=True):
        assert ties.loc[m, "verdict"] == ("equivalent" if p <= 0.05 else "not shown equivalent")
    assert ties.loc["NTKB2", "verdict"] == "equivalent"  # built as NTKB1 +- 1e-4
    assert ties.loc["NN1", "verdict"] == ties.loc["K1", "verdict"] == "not shown equivalent"
    assert ties.loc["NN1", "p_beyond_holm"] < 0.05  # NN1 is shown to differ beyond the margin
    assert "NTKB1" not in ties.index and set(ties["reference"]) == {"NTKB1"}


def test_ties_by_hand(small, tmp_path):
    """Three trials: a non-significant difference is no longer a tie."""
    ties = ties_with_generator(small, "NTKJ1").set_index("method")
    assert list(ties.index) == ["NN1", "NN2", "NTKJ2", "GP1"]
    # NN1 - NTKJ1 = (0.1, 0.2, 0.3): paired t p = 0.074 > 0.05 (the old 'tied'), but at the
    # default margin 0.02 x 0.1 = 0.002 nothing is shown equivalent
    assert ties.loc["NN1", "p_t"] == pytest.approx(_p_t_df2(2 * math.sqrt(3)), rel=1e-9)
    assert ties.loc["NN1", "margin"] == pytest.approx(0.002, rel=1e-12)
    assert set(ties["verdict"]) == {"not shown equivalent"}
    # a margin declared in the config (read as its ReportSection): 0.9 x mean(NTKJ1) = 0.09
    values = SMALL
    cfg = {"data": {"n": 10, "n_train": 5}, "report": {"equivalence_margin": 0.9, "alpha": 0.05}}
    run = load_run(write_small_run(tmp_path / "r", values, config=cfg))
    ties = ties_with_generator(run, "NTKJ1").set_index("method")
    cdf = _p_t_df2  # two-sided p of t with 2 df; one-sided lower tail = p/2 for t < 0

    def one_sided_below(t):  # P(T <= t), 2 df
        return cdf(t) / 2 if t < 0 else 1 - cdf(t) / 2

    by_hand = {}
    for m in ties.index:
        d = np.array(values[m]) - 0.1
        se = d.std(ddof=1) / math.sqrt(3)
        p_up = one_sided_below((d.mean() - 0.09) / se)
        p_lo = 1 - one_sided_below((d.mean() + 0.09) / se)
        by_hand[m] = max(p_up, p_lo)
        assert ties.loc[m, "p_tost"] == pytest.approx(by_hand[m], rel=1e-9)
    # NTKJ2: d = (0.02, 0, 0.01), t = (0.01 - 0.09)/(0.01/sqrt 3) = -8 sqrt 3: the smallest
    # p of the four, Holm x 4; GP1: d = (0.1, 0.11, 0.12), mean 0.11 beyond the margin
    assert by_hand["NTKJ2"] == pytest.approx(one_sided_below(-8 * math.sqrt(3)), rel=1e-12)
    assert ties.loc["NTKJ2", "p_tost_holm"] == pytest.approx(4 * by_hand["NTKJ2"], rel=1e-9)
    np.testing.assert_allclose(ties["p_tost_holm"], holm(ties["p_tost"]), rtol=1e-12)
    assert ties.loc["NTKJ2", "verdict"] == "equivalent"
    assert set(ties.drop(index="NTKJ2")["verdict"]) == {"not shown equivalent"}
    text = write_report(run, "md", figures=False, generator="NTKJ1")
    assert "Equivalence margin 0.9 (relative: δ = 0.9 × mean RMSE of NTKJ1), α = 0.05." in text
    # a margin the schema does not accept: one line naming the key
    bad = {"data": {"n": 10, "n_train": 5}, "report": {"equivalence_margin": 1.5}}
    bad_run = load_run(write_small_run(tmp_path / "bad", values, config=bad))
    with pytest.raises(ReportError, match="report.equivalence_margin: input should be less than 1"):
        ties_with_generator(bad_run, "NTKJ1")
    assert "Holm's correction across the 4 comparison(s)" in text


def test_generator_unknown_and_bad_names(small):
    with pytest.raises(ReportError, match="generator"):
        ties_with_generator(small)  # config generator NTKB1 is not a method of this run
    with pytest.raises(ReportError, match="not a method.*choose one of NN1"):
        paired_differences(small, "NN1", "NTKX")
    with pytest.raises(ReportError, match="alpha"):
        ties_with_generator(small, "NTKJ1", alpha=1.5)
    with pytest.raises(ReportError, match="equivalence margin must be a positive number"):
        ties_with_generator(small, "NTKJ1", margin=-0.1)


# ---- equivalence -----------------------------------------------------------------------------
def test_equivalence_table_and_slopes(eq_dir):
    run = load_run(eq_dir)
    eq = equivalence_table(run)
    assert sorted(set(eq["width"])) == WIDTHS
    raw = _raw_finals(eq_dir, "nn_lin_rms")
    slopes = width_slopes(run).set_index("method")
    for net in EQ_NETS:
        means = [
            raw.loc[(raw["method"] == net) & (raw["point"] == p), "value"].mean()
            for p in range(len(WIDTHS))
        ]
        row = eq[(eq["method"] == net)].sort_values("width")
        np.testing.assert_allclose(row["nn_lin_rms"], means, rtol=1e-12)
        expected = np.polyfit(np.log(WIDTHS), np.log(means), 1)[0]
        assert slopes.loc[net, "slope"] == pytest.approx(expected, rel=1e-9)
        assert abs(expected + 0.5) < 0.1  # generated with exponent -1/2
    drift = width_slopes(run, "kernel_drift").set_index("method")["slope"]
    assert drift["NNB1"] == pytest.approx(-0.6, abs=0.1)


# ---- figures -----------------------------------------------------------------------------------
def test_boxplot_one_box_per_method(paper_dir):
    fig = boxplot(load_run(paper_dir))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == PAPER
    assert len(ax.patches) == len(PAPER)  # patch_artist boxes


@pytest.fixture(scope="module")
def html_reports(paper_dir, eq_dir, tmp_path_factory):
    """Both runs' HTML reports, written once: {name: (run, html path, figures dir)}."""
    base = tmp_path_factory.mktemp("html")
    out = {}
    for run_dir in (paper_dir, eq_dir):
        run = load_run(run_dir)
        path = base / f"{run.name}.html"
        assert write_report(run, "html", path, figures_dir=base / run.name) is None
        out[run.name] = (run, path, base / run.name)
    return out


def test_figures_objects_and_files(html_reports):
    run, _, fig_dir = html_reports["paper-quick"]
    figs = make_figures(run)
    assert set(figs) == {"boxplot", "mean_se"}
    ax = figs["mean_se"].axes[0]
    assert len(ax.containers) == 2  # ours and the seed's error bars
    ours = np.asarray(ax.containers[0].lines[0].get_ydata(), dtype=float)
    np.testing.assert_allclose(ours, main_table(run)["mean"], rtol=1e-12)
    seed = np.asarray(ax.containers[1].lines[0].get_ydata(), dtype=float)
    np.testing.assert_allclose(seed, [SEED_TABLE[m].mean_rmse for m in PAPER], rtol=1e-12)
    eq, _, eq_dir = html_reports["equivalence"]
    eq_figs = make_figures(eq)
    assert set(eq_figs) == (
        {f"{k}_point{p}" for k in ("boxplot", "mean_se", "curves") for p in range(3)}
        | {"nn_lin_rms_vs_width", "kernel_drift_vs_width"}
    )
    for p in range(3):
        assert len(eq_figs[f"boxplot_point{p}"].axes[0].patches) == 6  # one box per method
    ax = eq_figs["nn_lin_rms_vs_width"].axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    slopes = width_slopes(eq).set_index("method")["slope"]
    for net in EQ_NETS:
        assert f"{net} (slope {slopes[net]:+.2f})" in labels
    for names, directory in ((figs, fig_dir), (eq_figs, eq_dir)):
        assert {p.stem for p in directory.iterdir() if p.name != ".ntklab-figures"} == set(names)
        listed = set((directory / ".ntklab-figures").read_text().split())
        assert listed == {f"{n}.{fmt}" for n in names for fmt in ("png", "svg")}
        for name in names:
            png = (directory / f"{name}.png").read_bytes()
            svg = (directory / f"{name}.svg").read_text()
            assert png.startswith(b"\x89PNG") and len(png) > 1000
            assert "<svg" in svg and len(svg) > 1000


def test_save_figures_unwritable(tmp_path):
    (tmp_path / "file").write_text("x")
    from matplotlib.figure import Figure

    with pytest.raises(ReportError, match="cannot write figures"):
        save_figures({"f": Figure()}, tmp_path / "file" / "sub")


def test_training_curves_panels(eq_dir):
    fig = training_curves(load_run(eq_dir), point=2)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == list(EQ_NETS)
    for ax in panels:
        solid, dashed = ax.lines[0], ax.lines[1]
        np.testing.assert_allclose(solid.get_ydata(), [1 + 0.08, 1 / 101 + 0.08, 1 / 201 + 0.08])
        np.testing.assert_allclose(dashed.get_ydata(), [1 + 0.07, 1 / 101 + 0.07, 1 / 201 + 0.07])


# ---- HTML --------------------------------------------------------------------------------------
class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self.imgs, self.text, self.external = [], [], [], []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("td", "th"):
            self._in_cell = True
        if tag == "img":
            self.imgs.append(a)
        for key in ("src", "href"):
            if key in a and not str(a[key]).startswith(("data:", "#")):
                self.external.append(a[key])
        if tag in ("script", "link"):
            self.external.append(tag)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_cell:
            self.cells.append(data.strip())


def test_html_report_is_self_contained(html_reports):
    for run, path, fig_dir in html_reports.values():
        parser = _Collect()
        parser.feed(path.read_text(encoding="utf-8"))
        assert not parser.external
        for m in run.method_names:
            assert m in parser.cells
        names = {p.stem for p in fig_dir.glob("*.png")}
        assert names and {img["alt"] for img in parser.imgs} == names
        for img in parser.imgs:
            data = base64.b64decode(img["src"].split(",", 1)[1])
            assert data == (fig_dir / f"{img['alt']}.png").read_bytes()
        text = " ".join(parser.text)
        for key, value in ASSUMED.items():
            assert f"{key} = {value}" in text
        assert run.meta["config_hash"][:16] in text and "torch" in text and "2.13.0" in text
        assert '"n_train": 800' in text or '"n_train": 300' in text  # the config


def test_html_renders_in_chromium(html_reports, tmp_path):
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("no /usr/bin/chromium: headless rendering not checked")
    _, path, _ = html_reports["equivalence"]
    cmd = [
        str(chromium),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--dump-dom",
        path.resolve().as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    assert "NNJ1" in dom and "data:image/png;base64" in dom and "nn_lin_rms_vs_width" in dom


# ---- CLI and bad input -------------------------------------------------------------------------
def _cli(*args):
    return CliRunner().invoke(cli, ["report", *map(str, args)])


def _one_line_error(result, *needles):
    assert result.exit_code != 0
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in result.output
    for n in needles:
        assert n in err


def test_cli_markdown(paper_dir, tmp_path):
    figs = tmp_path / "figs"
    res = _cli(paper_dir, "--figures", figs, "--pair", "NN1,NTKB1")
    assert res.exit_code == 0, res.output
    out = res.stdout
    rows = md_rows(out)
    assert [
        "method",
        "label",
        "n",
        "diverged",
        "failed",
        "missing",
        "mean RMSE ± SE",
        "seed mean ± SE",
        "ours/seed",
        "z",
        "within 3 SE",
    ] in rows
    nn1 = next(r for r in rows if r[0] == "NN1")
    assert nn1[:6] == ["NN1", "NN (1 layer)", "5", "1", "0", "1"]  # the diverged trial is counted
    assert "## Change from 1 to 2 hidden layers" in out and "## Ties with the generating" in out
    assert "## Paired differences NN1 − NTKB1" in out
    assert "Assumed values (SPEC): " in out and "n_train = 800" in out
    assert "**Notes**\n\n- 1 trial(s) failed" in out
    assert "note: run incomplete" in res.stderr
    for name in ("boxplot", "mean_se"):
        assert (figs / f"{name}.png").stat().st_size > 0 and (figs / f"{name}.svg").is_file()
        assert f"{figs / name}.png" in out


def test_cli_csv_latex_html(paper_dir, tmp_path):
    res = _cli(paper_dir, "--format", "csv")
    assert res.exit_code == 0
    csv = pd.read_csv(__import__("io").StringIO(res.stdout))
    pd.testing.assert_frame_equal(csv, main_table(load_run(paper_dir)), check_dtype=False)
    res = _cli(paper_dir, "-f", "csv", "--out", tmp_path / "csv")
    assert res.exit_code == 0
    assert {p.name for p in (tmp_path / "csv").iterdir()} >= {
        "main.csv",
        "layer_change.csv",
        "ties.csv",
        "nn_kernel_ratios.csv",
    }
    res = _cli(paper_dir, "-f", "latex", "--no-figures")
    assert res.exit_code == 0 and r"\toprule" in res.stdout and "NTKB1" in res.stdout
    res = _cli(paper_dir, "-f", "HTML", "-o", tmp_path / "r.html", "--figures", tmp_path / "f")
    assert res.exit_code == 0 and (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert res.stderr.startswith(f"wrote {tmp_path / 'r.html'}")
    # a Markdown file links the figures relative to itself
    res = _cli(paper_dir, "-o", tmp_path / "md" / "r.md", "--figures", tmp_path / "f")
    assert res.exit_code == 0 and res.stdout == ""
    assert "](../f/boxplot.png)" in (tmp_path / "md" / "r.md").read_text()


def test_cli_bad_input(tmp_path, paper_dir):
    _one_line_error(_cli(tmp_path / "nope"), "not a directory")
    (tmp_path / "plain").mkdir()
    _one_line_error(_cli(tmp_path / "plain"), "not an ntklab run")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.sqlite").write_text("not a database")
    _one_line_error(_cli(tmp_path / "broken"), "corrupted")
    _create(tmp_path / "empty", [_method_row("NN1")], n_trials=5).close()
    _one_line_error(_cli(tmp_path / "empty"), "no finished trials yet (0 of 5)")
    _one_line_error(_cli(paper_dir, "--format", "docx"), "unknown --format 'docx'", "md, csv")
    _one_line_error(_cli(paper_dir, "--pair", "NN1"), "--pair takes two method names")
    _one_line_error(_cli(paper_dir, "--pair", "NN1,XX"), "'XX' is not a method")
    _one_line_error(_cli(paper_dir, "--generator", "XX"), "generator 'XX' is not a method")
    with pytest.raises(ReportError, match="no finished trials"):
        main_table(load_run(tmp_path / "empty"))
    with pytest.raises(ReportError, match="unknown format"):
        write_report(load_run(paper_dir), "docx")


def test_only_failed_trials_is_an_error(tmp_path):
    d = write_paper_run(tmp_path / "r", n_done=0, n_failed=2, n_trials=4)
    _one_line_error(_cli(d), "no finished trials yet (0 of 4, 2 failed)")


def test_jitter_note_names_trials_and_amounts(tmp_path):
    from ntklab.report import build_sections
    from ntklab.store import GENERATOR_METHOD

    jitter = {  # (method, trial) -> amount; every other trial and method: 0
        (GENERATOR_METHOD, 1): 3e-12,
        ("NTKJ1", 0): 1e-10,
        ("NTKJ1", 2): 2.5e-9,
    }
    names = ["NN1", "NTKJ1", "K1"]
    with _create(tmp_path / "r", [_method_row(m) for m in names], n_trials=3, name="j") as store:
        for t in range(3):
            rec = TrialRecord(point=0, trial=t, seed=str(t))
            for m in names:
                rec.add(m, "rmse", 0.1 + 0.01 * t)
                if m != "NN1":
                    rec.add(m, "jitter", jitter.get((m, t), 0.0))
            if (GENERATOR_METHOD, t) in jitter:
                rec.add(GENERATOR_METHOD, "generator_jitter", jitter[(GENERATOR_METHOD, t)])
            store.write_trial(rec)
    run = load_run(tmp_path / "r")
    assert run.method_names == names  # the generator's rows are not a method
    assert list(main_table(run)["method"]) == names
    notes = [n for n in build_sections(run)[0].notes if n.startswith("Jitter")]
    assert notes == [
        "Jitter: a kernel matrix was nearly singular and its Cholesky factorization needed "
        "jitter on the diagonal (at most 1e-6 × its mean diagonal; none elsewhere): the data "
        "generator in trial 1 (3e-12); NTKJ1 in trials 0 (1e-10), 2 (2.5e-09)."
    ]
    # no jitter anywhere: no note
    quiet = load_run(write_small_run(tmp_path / "q", {"NTKJ1": [1, 2, 3], "K1": [1, 1, 2]}))
    assert not [n for n in build_sections(quiet)[0].notes if "itter" in n]


# ---- rendering: one set of cells, three formats ---------------------------------------------------
def test_markdown_latex_and_html_tables_show_the_same_cells():
    """Every format shows the cells of format_value under the display names, numbers right-
    aligned, with its own escaping ('|' in Markdown, '_' and '|' in LaTeX, '<' in HTML)."""
    df = pd.DataFrame(
        {
            "method": ["a|b", "<NTK_1>"],
            "n": np.array([3, 4], dtype=np.int64),
            "mean": [0.123456, math.nan],
            "p_t": [0.01234, 1.0],
            "within_3se": [True, False],
        }
    )
    header = ["method", "n", "mean RMSE", "p (paired t)", "within 3 SE"]
    cells = [["a|b", "3", "0.12346", "0.0123", "yes"], ["<NTK_1>", "4", "–", "1", "no"]]

    md = markdown_table(df).splitlines()
    rows = [[c.strip() for c in line.strip()[1:-1].split(" | ")] for line in md]
    assert rows[0] == header and len(md) == 4
    assert [c.replace("\\|", "|") for c in rows[2]] == cells[0] and rows[3] == cells[1]
    align = [c.strip() for c in md[1].strip("|").split("|")]
    assert [a.startswith(":") for a in align] == [True, False, False, False, True]
    assert all(a.endswith(":") for a in align[1:4])  # numbers right-aligned

    tex = latex_table(df).splitlines()
    assert tex[:2] == [r"\begin{tabular}{lrrrl}", r"\toprule"] and tex[-2:] == [
        r"\bottomrule",
        r"\end{tabular}",
    ]
    assert tex[2] == r"method & n & mean RMSE & p (paired t) & within 3 SE \\"
    assert tex[3] == r"\midrule"
    assert tex[4] == r"a$|$b & 3 & 0.12346 & 0.0123 & yes \\"
    assert tex[5] == r"$<$NTK\_1$>$ & 4 & -- & 1 & no \\"

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.classes, self.cell = [], [], None

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append([])
                self.classes.append([])
            if tag in ("td", "th"):
                self.cell = ""
                self.classes[-1].append(dict(attrs).get("class", "").split())

        def handle_endtag(self, tag):
            if tag in ("td", "th"):
                self.rows[-1].append(self.cell)
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data.strip()

    html = html_table(df, "key")
    assert html.startswith('<table id="T_key"') and "&lt;NTK_1&gt;" in html
    parsed = Cells()
    parsed.feed(html)
    assert parsed.rows == [header, *cells]
    assert [("num" in c) for c in parsed.classes[1]] == [False, True, True, True, False]


def test_figures_never_replace_a_users_own_files(paper_dir, tmp_path):
    from matplotlib.figure import Figure

    from ntklab.report.figures import FIGURES_MARK

    figs = tmp_path / "figs"
    figs.mkdir()
    own = figs / "boxplot.png"
    own.write_bytes(b"my own figure")
    with pytest.raises(ReportError, match="boxplot.png exists and was not written by ntklab"):
        write_report(load_run(paper_dir), "md", tmp_path / "r.md", figures_dir=figs)
    assert own.read_bytes() == b"my own figure" and not (figs / FIGURES_MARK).exists()
    one = {"boxplot": Figure()}
    with pytest.raises(ReportError, match="--force"):
        save_figures(one, figs, protect=True)
    save_figures(one, figs, protect=False)  # what --force does
    assert own.read_bytes().startswith(b"\x89PNG")
    # what ntklab wrote there it may write again
    save_figures(one, figs, protect=True)
    assert (figs / FIGURES_MARK).read_text().split() == ["boxplot.png", "boxplot.svg"]


def test_header_after_lowering_trials(tmp_path):
    from ntklab.report.sections import header_lines

    run_dir = write_paper_run(tmp_path / "run", n_done=3, n_failed=0, n_trials=2)
    lines = dict(header_lines(load_run(run_dir)))
    assert lines["trials"] == "3 finished (the last run asked for 2)"
