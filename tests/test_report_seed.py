"""Reports of runs of the seed's released protocol (SPEC §6): the reproduction table, the
attribution of the NTK → NN gap, the verdicts on the seed's claims, the NN vs NTK-at-the-
same-T figure, and graceful degradation when methods are missing.

The runs are written with the store's own writer, as ``ntklab run seed`` would write them:
the seed's 11 rows (published kernels ``kind = "published"``, networks ``jacot``), the
attribution methods under the names of :data:`ntklab.report.reference.ATTRIBUTION_CHAIN`,
and a published NTKB1 data generator.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ntklab.report import (
    ATTRIBUTION_CHAIN,
    attribution_table,
    build_sections,
    compares_with_seed,
    is_seed_protocol,
    layer_change,
    load_run,
    main_table,
    make_figures,
    nn_ntk_ratios,
    nn_vs_ntk_same_t,
    resolve_generator,
    run_notes,
    seed_verdicts,
    ties_with_generator,
    tost_table,
    verdict_details,
    write_report,
)
from ntklab.report.reference import SEED_TABLE, attribution_chain, attribution_methods
from ntklab.report.verdicts import RATIO_TOLERANCE
from ntklab.store import RunStore, TrialRecord

SEED_ROWS = list(SEED_TABLE)
ATTRIBUTION = [m for m in attribution_methods() if m not in SEED_TABLE]
GEN_PUBLISHED = {"kind": "published", "kernel": "NTKB1", "normalization": "published"}
T975 = {2: 4.302652729911275, 4: 2.7764451051977987, 5: 2.5705818366147395}  # t quantiles


def _method_row(name: str, trials: int | None = None) -> dict:
    """The methods-table row of a seed-protocol method. The published kernels are stored
    without family or depth (the report must read them from the seed's names)."""
    spec: dict = {"name": name}
    if name in ("NN1", "NN2"):
        depth = int(name[-1])
        spec.update(
            kind="network",
            depth=depth,
            parameterization="jacot",
            sigma_w=1.0,
            sigma_b=1.0,
            width=10000,
            lr=0.002,
            batch_size=8,
            epochs=3000 * depth,
        )
        row = {"kind": "network", "family": "NN", "depth": depth, "parameterization": "jacot"}
    elif name.startswith("NTK-NN"):
        depth = int(name[6])
        kind = "ntk_time" if name.endswith(("-T", "-Tmean")) else "ntk"
        spec.update(kind=kind, depth=depth, parameterization="jacot", sigma_w=1.0, sigma_b=1.0)
        family = "NTKJT" if kind == "ntk_time" else "NTKJ"  # the config's default families
        row = {"kind": kind, "family": family, "depth": depth, "parameterization": "jacot"}
    else:
        kernel, _, corrected = name.partition("-")
        spec.update(
            kind="published",
            kernel=kernel,
            normalization="corrected" if corrected else "published",
        )
        row = {"kind": "published", "family": None, "depth": None, "parameterization": None}
    if trials is not None:
        spec["trials"] = trials
    return {"method": name, "label": name, "spec": spec, **row}


def write_seed_run(
    path: Path,
    values: Callable[[int], dict[str, float]],
    *,
    n_trials: int,
    methods: list[str] | None = None,
    trials: dict[str, int] | None = None,
    diverged: set[tuple[str, int]] = frozenset(),
    generator: dict | None = None,
    report: dict | None = None,
    reductions: list[str] | None = None,
    name: str = "seed",
) -> Path:
    """A seed-protocol run: ``values(t)`` gives each method's test RMSE in trial t (a method
    left out, or ``None``, writes no RMSE row); ``trials`` per-method trial counts;
    ``diverged`` (method, trial) pairs whose network diverged."""
    methods = methods if methods is not None else list(values(0))
    trials = trials or {}
    rows = [_method_row(m, trials.get(m)) for m in methods]
    config = {
        "study": {"name": name, "trials": n_trials, "seed": 1},
        "data": {"n": 1000, "d": 15, "n_train": 670, "generator": generator or GEN_PUBLISHED},
        "methods": [r["spec"] for r in rows],
    }
    if report is not None:
        config["report"] = report
    meta = {"name": name, "n_trials": n_trials, "versions": {"ntklab": "0.1.0"}, "assumed": {}}
    if reductions is not None:
        meta["reductions"] = reductions
    with RunStore.create(
        path, config=config, config_hash=f"hash-{name}", meta=meta, points=[{}], methods=rows
    ) as store:
        for t in range(n_trials):
            rec = TrialRecord(point=0, trial=t, seed=str(t))
            vals = values(t)
            for m in methods:
                if m in trials and t >= trials[m]:
                    continue
                if vals.get(m) is not None:
                    rec.add(m, "rmse", vals[m])
                if m in ("NN1", "NN2"):
                    rec.add(m, "diverged", float((m, t) in diverged))
                    rec.add(m, "lr", 0.002)
            store.write_trial(rec)
    return path


# ---- the data of the claims ----------------------------------------------------------------------
def _seed_like(rng: np.random.Generator, *, nn_factor: float = 1.0) -> dict[str, float]:
    """One trial near the seed's table: a shared per-trial level (paired structure) plus
    small independent noise; the networks' RMSE scaled by ``nn_factor``."""
    base = rng.normal(0.0, 0.003)
    out = {}
    for m in SEED_ROWS:
        noise = rng.normal(0.0, 0.0008 if m.startswith("NN") else 0.0001)
        scale = nn_factor if m.startswith("NN") else 1.0
        out[m] = SEED_TABLE[m].mean_rmse * scale + base + noise
    for k in (1, 2):
        out[f"NTKJ{k}-corrected"] = out[f"NTKJ{k}"] + 0.004 + rng.normal(0, 0.0005)
        out[f"NTK-NN{k}"] = out[f"NTKJ{k}-corrected"] + 0.02 + rng.normal(0, 0.001)
        out[f"NTK-NN{k}-469"] = out[f"NTK-NN{k}"] + 0.015 + rng.normal(0, 0.001)
        # at the training time: 0.005 below the network, f0 adds 0.03 on average
        nn = SEED_TABLE[f"NN{k}"].mean_rmse + base
        out[f"NTK-NN{k}-Tmean"] = nn - 0.035 + rng.normal(0, 0.002)
        out[f"NTK-NN{k}-T"] = out[f"NTK-NN{k}-Tmean"] + 0.03 + rng.normal(0, 0.0005)
    return out


def _holding_values(n: int, seed: int = 3) -> Callable[[int], dict[str, float]]:
    rng = np.random.default_rng(seed)
    table = [_seed_like(rng) for _ in range(n)]
    return lambda t: table[t]


def _failing_values(n: int, seed: int = 4) -> Callable[[int], dict[str, float]]:
    """Every claim fails: NN = 1.1 x NTK; GP 10 % above the NTKs; K1 far below everything;
    the network does not change from 1 to 2 layers (NN2 = NN1 within 0.2 %)."""
    rng = np.random.default_rng(seed)
    table = []
    for _ in range(n):
        base = rng.normal(0.0, 0.003)
        v = {m: 0.063 + base + rng.normal(0, 0.0001) for m in SEED_ROWS}
        v["NTKA1"] += 0.01
        v["NTKA2"] += 0.012
        v["GP1"], v["GP2"] = v["NTKB1"] * 1.10, v["NTKB2"] * 1.10
        v["NN1"] = 1.1 * v["NTKJ1"] + rng.normal(0, 0.0002)
        v["NN2"] = v["NN1"] * (1 + rng.normal(0, 0.001))
        v["K1"] = 0.01 + rng.normal(0, 0.0002)
        table.append(v)
    return lambda t: table[t]


@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory) -> Path:
    return write_seed_run(
        tmp_path_factory.mktemp("seed") / "run",
        _holding_values(20),
        n_trials=20,
        reductions=["methods.NN2.width: 10000 -> 256", "methods.NN1.epochs: 3000 -> 300"],
        report={"equivalence_margin": 0.02, "alpha": 0.05},
    )


@pytest.fixture(scope="module")
def seed_run(seed_dir):
    return load_run(seed_dir)


# ---- the run is recognised as the seed's ----------------------------------------------------------
def test_published_generator_is_the_seeds(seed_run, tmp_path):
    assert is_seed_protocol(seed_run) and compares_with_seed(seed_run)
    assert resolve_generator(seed_run) == "NTKB1"
    # the corrected protocol: its data kernel is the corrected NTKB1, matched to that method
    corrected = {**GEN_PUBLISHED, "normalization": "corrected"}
    both = ["NTKB1", "NTKB1-corrected", "NN1"]
    d = write_seed_run(
        tmp_path / "c",
        lambda t: {m: 0.1 + 0.01 * t for m in both},
        n_trials=3,
        generator=corrected,
    )
    run = load_run(d)
    assert is_seed_protocol(run) and resolve_generator(run) == "NTKB1-corrected"
    # a subset (--only) still compares with the seed; a published generator of another
    # kernel does not
    other = write_seed_run(
        tmp_path / "o",
        lambda t: {"NTKJ1": 0.1 + 0.01 * t},
        n_trials=3,
        generator={"kind": "published", "kernel": "NTKJ1"},
    )
    assert not compares_with_seed(load_run(other))
    assert "seed_mean" in main_table(run) and "seed_mean" not in main_table(load_run(other))


# ---- reproduction table -------------------------------------------------------------------------
def test_reproduction_table_z_scores(tmp_path):
    """Ours beside the seed's: z = (ours - seed) / sqrt(SE^2 + SE_seed^2), computed by hand on
    constructed values; one row is 2 combined SE off, one 4."""
    n = 5
    offsets = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])  # mean 0, sample SD sqrt(2.5)

    def values(t):
        return {
            "NTKB1": SEED_TABLE["NTKB1"].mean_rmse + 1e-4 * offsets[t],
            "K1": SEED_TABLE["K1"].mean_rmse + 0.004 + 1e-3 * offsets[t],
            "NTK-NN1": 0.2 + 1e-3 * offsets[t],
        }

    run = load_run(write_seed_run(tmp_path / "r", values, n_trials=n))
    table = main_table(run).set_index("method")
    se_k1 = 1e-3 * math.sqrt(2.5) / math.sqrt(n)
    z_k1 = 0.004 / math.hypot(se_k1, SEED_TABLE["K1"].se)
    assert table.loc["K1", "se"] == pytest.approx(se_k1, rel=1e-9)
    assert table.loc["K1", "z"] == pytest.approx(z_k1, rel=1e-9)
    assert z_k1 == pytest.approx(3.587, abs=1e-3)  # 0.004 / sqrt(0.000707^2 + 0.000862^2)
    assert table.loc["K1", "within_3se"] is not None and not table.loc["K1", "within_3se"]
    se_b = 1e-4 * math.sqrt(2.5) / math.sqrt(n)
    assert table.loc["NTKB1", "z"] == pytest.approx(0.0, abs=1e-9 / se_b)
    assert table.loc["NTKB1", "within_3se"]
    assert table.loc["NTKB1", "ratio"] == pytest.approx(1.0, rel=1e-9)
    # an attribution method has no seed row
    assert math.isnan(table.loc["NTK-NN1", "seed_mean"]) and math.isnan(table.loc["NTK-NN1", "z"])
    assert table.loc["NTK-NN1", "within_3se"] is None
    # the CSV on stdout keeps the columns a hook parses by name
    df = pd.read_csv(io.StringIO(write_report(run, "csv")))
    assert {"method", "mean", "z", "within_3se", "diverged", "missing"} <= set(df.columns)
    assert df.set_index("method").loc["K1", "mean"] == pytest.approx(table.loc["K1", "mean"])


def test_diverged_and_per_method_trials_counted(tmp_path):
    """NN1 runs in 6 of 10 trials (a per-method trial count) and diverges in 2 of them: once
    with a non-finite RMSE, once with no RMSE row at all. Both are counted, and the 4 trials
    NN1 never ran are not called missing."""

    def values(t):
        v = {"NN1": 0.2 + 0.001 * t, "NTKJ1": 0.06 + 0.001 * t, "K1": 0.1}
        if t == 1:
            v["NN1"] = math.inf
        if t == 3:
            v["NN1"] = None
        if t == 7:
            v["K1"] = math.nan  # a kernel missing its value in one trial
        return v

    d = write_seed_run(
        tmp_path / "r",
        values,
        n_trials=10,
        trials={"NN1": 6},
        diverged={("NN1", 1), ("NN1", 3)},
    )
    run = load_run(d)
    assert run.method_trial_limit("NN1") == 6 and run.method_trial_limit("K1") is None
    table = main_table(run).set_index("method")
    assert table.loc["NN1", "n"] == 4
    assert (table.loc["NN1", "diverged"], table.loc["NN1", "missing"]) == (2, 2)
    assert table.loc["NN1", "mean"] == pytest.approx(np.mean([0.2, 0.202, 0.204, 0.205]))
    assert (table.loc["K1", "n"], table.loc["K1", "missing"]) == (9, 1)
    assert math.isnan(table.loc["K1", "diverged"])
    notes = "\n".join(run_notes(run))
    assert "NN1: 2 finished trial(s) without a finite rmse" in notes  # not 6
    assert "NN1: training diverged in 2 trial(s)" in notes
    assert "per-method trial counts: NN1: 6" in notes
    main = build_sections(run)[0]
    assert "Diverged: NN1 in 2 trial(s)" in " ".join(main.notes)
    # paired statistics use the trials both have: NN1 / NTKJ1 on trials 0, 2, 4, 5
    r = nn_ntk_ratios(run).set_index("kernel").loc["NTKJ1"]
    trials = [0, 2, 4, 5]
    assert r["n"] == 4
    assert r["nn_kernel_ratio"] == pytest.approx(
        np.mean([0.2 + 0.001 * t for t in trials]) / np.mean([0.06 + 0.001 * t for t in trials]),
        rel=1e-12,
    )


def test_reductions_shown(seed_run):
    assert seed_run.reductions == [
        "methods.NN2.width: 10000 -> 256",
        "methods.NN1.epochs: 3000 -> 300",
    ]
    main = build_sections(seed_run)[0]
    assert main.title == "Test RMSE beside the seed's table"
    assert (
        "Reduced against the full preset: methods.NN2.width: 10000 -> 256; "
        "methods.NN1.epochs: 3000 -> 300." in main.notes
    )


# ---- attribution --------------------------------------------------------------------------------
def _attribution_values(t: int) -> dict[str, float]:
    """Per-trial values whose steps are known exactly. The trial level 0.05 t varies a lot
    between trials, the steps little: unpaired statistics, or pairs formed across trials,
    would give other numbers. NN1 diverged in trial 2."""
    v = {"NTKJ1": 0.06 + 0.05 * t}
    v["NTKJ1-corrected"] = v["NTKJ1"] + 0.010 + 0.001 * (-1) ** t
    v["NTK-NN1"] = v["NTKJ1-corrected"] + 0.020
    v["NTK-NN1-469"] = v["NTK-NN1"] + 0.005 + 0.002 * (t % 3 - 1)
    v["NTK-NN1-Tmean"] = v["NTK-NN1-469"] + 0.030
    v["NTK-NN1-T"] = v["NTK-NN1-Tmean"] - 0.004
    v["NN1"] = v["NTK-NN1-T"] + 0.002 * t if t != 2 else math.inf
    return v


def test_attribution_chain_is_one_constant():
    assert [s.method for s in attribution_chain(2)] == [
        "NTKJ2",
        "NTKJ2-corrected",
        "NTK-NN2",
        "NTK-NN2-469",
        "NTK-NN2-Tmean",
        "NTK-NN2-T",
        "NN2",
    ]
    assert len(ATTRIBUTION_CHAIN) == 7 and ATTRIBUTION_CHAIN[1].method == "NTKJ{k}-corrected"


def test_attribution_steps_paired_by_hand(tmp_path):
    n = 6
    run = load_run(write_seed_run(tmp_path / "r", _attribution_values, n_trials=n))
    att = attribution_table(run)
    assert list(att["depth"].unique()) == [1]  # no depth-2 methods: no depth-2 rows
    rows = att.set_index("method")
    chain = [s.method for s in attribution_chain(1)]
    assert list(att["method"]) == [*chain, "NN1"]  # the steps, then the total
    vals = pd.DataFrame([_attribution_values(t) for t in range(n)]).replace(math.inf, math.nan)
    steps = att.iloc[1:-1]
    for (_, row), prev, cur in zip(steps.iterrows(), chain[:-1], chain[1:], strict=True):
        d = (vals[cur] - vals[prev]).dropna().to_numpy()
        assert row["previous"] == prev and row["n_pairs"] == len(d)
        assert row["change"] == pytest.approx(d.mean(), rel=1e-9, abs=1e-15)
        if len(d) > 1 and d.std(ddof=1) > 0:
            half = T975[len(d) - 1] * d.std(ddof=1) / math.sqrt(len(d))
            assert row["ci_high"] - row["change"] == pytest.approx(half, rel=1e-6)
        else:  # a constant shift: the paired interval is the point itself
            assert row["ci_low"] == pytest.approx(row["change"], abs=1e-12)
    # the steps by construction: normalization +0.010 (the +-0.001 cancel over 6 trials),
    # kernel +0.020 exactly, 469 points +0.005, T +0.030, f0 -0.004, the network +0.002 t
    assert rows.loc["NTKJ1-corrected", "change"] == pytest.approx(0.010, rel=1e-9)
    assert rows.loc["NTK-NN1", "change"] == pytest.approx(0.020, rel=1e-9)
    assert rows.loc["NTK-NN1", "ci_high"] - rows.loc["NTK-NN1", "ci_low"] < 1e-12
    assert rows.loc["NTK-NN1-469", "change"] == pytest.approx(0.005, rel=1e-9)
    assert rows.loc["NTK-NN1-Tmean", "change"] == pytest.approx(0.030, rel=1e-9)
    assert rows.loc["NTK-NN1-T", "change"] == pytest.approx(-0.004, rel=1e-9)
    nn_step = att[(att["method"] == "NN1") & (att["previous"] == "NTK-NN1-T")].iloc[0]
    # paired on trials 0, 1, 3, 4, 5 (trial 2 diverged): mean 0.002 (0+1+3+4+5)/5 = 0.0052
    assert nn_step["n_pairs"] == 5
    assert nn_step["change"] == pytest.approx(0.0052, rel=1e-9)
    unpaired = (
        2 * T975[4] * math.sqrt(vals["NN1"].var() / 5 + vals["NTK-NN1-T"].var() / 6)
    )  # roughly what an unpaired interval would be
    assert nn_step["ci_high"] - nn_step["ci_low"] < unpaired / 10
    total = att.iloc[-1]
    assert total["step"].startswith("total") and total["previous"] == "NTKJ1"
    gap = (vals["NN1"] - vals["NTKJ1"]).dropna()
    assert total["n_pairs"] == 5 and total["change"] == pytest.approx(gap.mean(), rel=1e-9)
    assert total["share_pct"] == 100.0
    assert nn_step["share_pct"] == pytest.approx(100 * 0.0052 / gap.mean(), rel=1e-9)
    assert rows.loc["NTK-NN1", "share_pct"] == pytest.approx(100 * 0.020 / gap.mean(), rel=1e-9)
    # the first row is the seed's NTK row itself: its mean, no change
    assert rows.loc["NTKJ1", "mean"] == pytest.approx(vals["NTKJ1"].mean(), rel=1e-12)
    assert math.isnan(att.iloc[0]["change"])


def test_attribution_shares_add_up_on_common_trials(seed_run):
    att = attribution_table(seed_run)
    for k in (1, 2):
        part = att[att["depth"] == k]
        assert len(part) == 8  # 7 chain methods + the total
        steps = part.iloc[1:-1]
        assert (steps["n_pairs"] == 20).all()
        assert steps["share_pct"].sum() == pytest.approx(100.0, rel=1e-9)  # telescoping
        assert steps["change"].sum() == pytest.approx(part.iloc[-1]["change"], rel=1e-9)
        for _, row in steps.iterrows():
            assert row["ci_low"] < row["change"] < row["ci_high"]


def test_attribution_merges_missing_steps(tmp_path):
    methods = ["NTKJ1", "NTK-NN1", "NTK-NN1-T", "NN1"]
    run = load_run(write_seed_run(tmp_path / "r", _attribution_values, n_trials=4, methods=methods))
    att = attribution_table(run)
    assert list(att["method"]) == [*methods, "NN1"]
    second = att.iloc[1]
    assert second["step"] == (
        f"{ATTRIBUTION_CHAIN[1].cause} + {ATTRIBUTION_CHAIN[2].cause}"
    )  # normalization + kernel, since NTKJ1-corrected is missing
    vals = pd.DataFrame([_attribution_values(t) for t in range(4)])
    assert second["change"] == pytest.approx((vals["NTK-NN1"] - vals["NTKJ1"]).mean(), rel=1e-9)
    section = next(s for s in build_sections(run) if s.key == "attribution")
    assert any(
        "Depth 1: missing NTKJ1-corrected, NTK-NN1-469, NTK-NN1-Tmean" in n for n in section.notes
    )


# ---- verdicts ------------------------------------------------------------------------------------
def test_verdicts_reproduced(seed_run):
    v = seed_verdicts(seed_run).set_index("claim")
    assert list(v.index) == [
        "NN ≈ 3× NTK",
        "GP ≈ NTK",
        "K1 nearer to NN than any NTK",
        "1 → 2 layer changes do not match",
    ]
    assert set(v["verdict"]) == {"reproduced"}
    details = verdict_details(seed_run)
    ratio = details[details["comparison"] == "NN1 / NTKJ1"].iloc[0]
    seed_ratio = SEED_TABLE["NN1"].mean_rmse / SEED_TABLE["NTKJ1"].mean_rmse
    assert ratio["seed"] == pytest.approx(seed_ratio, rel=1e-12)
    assert ratio["ci_low"] < ratio["estimate"] < ratio["ci_high"]
    assert seed_ratio / (1 + RATIO_TOLERANCE) < ratio["ci_low"]
    text = v.loc["NN ≈ 3× NTK", "numbers"]
    assert f"(seed {seed_ratio:.3f}, n = 20)" in text
    assert "at the same training time NN1 / NTK-NN1-T = " in text
    # the networks here are 0.207 against NTK-NN1-T ~ 0.20: worse than their own NTK
    assert "worse than its own NTK prediction at the same training time" in text
    assert "seed -7.4 %" in v.loc["1 → 2 layer changes do not match", "numbers"]
    gp = details[details["claim"] == "GP ≈ NTK"]
    assert list(gp["comparison"]) == ["GP1 − NTKB1", "GP1 − NTKJ1", "GP2 − NTKB2", "GP2 − NTKJ2"]
    # the GP comparisons come from one TOST family (Holm across the four)
    fam = tost_table(seed_run, [(0, g, r) for g, r in (c.split(" − ") for c in gp["comparison"])])
    np.testing.assert_allclose(gp["p_claim"], fam["p_tost_holm"], rtol=1e-12)
    assert (fam["verdict"] == "equivalent").all()
    k1 = details[details["claim"] == "K1 nearer to NN than any NTK"]
    assert len(k1) == 12  # 2 networks x the seed's 6 NTK rows
    assert (k1["ci_high"] < 0).all()


def test_verdict_k1_contrast_by_hand(seed_run):
    """|K1 - NN1| - |NTKA2 - NN1| per trial, both kernels below the network on average:
    (NN1 - K1) - (NN1 - NTKA2) = NTKA2 - K1, its paired mean with its t interval."""
    wide = seed_run.final("rmse")
    d = (wide["NN1"] - wide["K1"]) - (wide["NN1"] - wide["NTKA2"])
    row = verdict_details(seed_run).set_index("comparison").loc["|K1 − NN1| − |NTKA2 − NN1|"]
    half = 2.093024054408263 * d.std(ddof=1) / math.sqrt(20)  # t 0.975, 19 df
    assert row["n"] == 20
    assert row["estimate"] == pytest.approx(d.mean(), rel=1e-9)
    assert row["ci_high"] == pytest.approx(d.mean() + half, rel=1e-9)


def test_verdicts_not_reproduced(tmp_path):
    run = load_run(write_seed_run(tmp_path / "r", _failing_values(20), n_trials=20))
    v = seed_verdicts(run).set_index("claim")["verdict"]
    assert set(v) == {"not reproduced"}, v
    details = verdict_details(run).set_index("comparison")
    wide = run.final("rmse")
    assert details.loc["NN1 / NTKJ1", "estimate"] == pytest.approx(
        wide["NN1"].mean() / wide["NTKJ1"].mean(), rel=1e-12
    )
    assert details.loc["NN1 / NTKJ1", "ci_high"] < details.loc["NN1 / NTKJ1", "seed"] / 1.25
    assert details.loc["NN1 / NTKJ1", "p_against_holm"] < 0.05
    assert details.loc["GP1 − NTKB1", "p_against_holm"] < 0.05


def test_verdicts_cannot_tell(tmp_path):
    # three trials with 30 % noise on every value: the intervals decide nothing
    rng = np.random.default_rng(5)
    noisy = [
        {m: v * (1 + rng.normal(0, 0.3)) for m, v in _seed_like(rng).items()} for _ in range(3)
    ]
    run = load_run(write_seed_run(tmp_path / "n", lambda t: noisy[t], n_trials=3))
    v = seed_verdicts(run).set_index("claim")
    assert set(v["verdict"]) == {"cannot tell (too few trials)"}
    assert v["numbers"].str.startswith("the intervals do not decide; ").all()
    # the kernel rows only (ntklab run seed --only <the 9 kernels>): no network, so three
    # claims cannot be told, and GP ~ NTK still can
    kernels = [m for m in SEED_ROWS if not m.startswith("NN")]
    run = load_run(
        write_seed_run(tmp_path / "k", _holding_values(20), n_trials=20, methods=kernels)
    )
    v = seed_verdicts(run).set_index("claim")
    assert v.loc["GP ≈ NTK", "verdict"] == "reproduced"
    for claim in ("NN ≈ 3× NTK", "K1 nearer to NN than any NTK"):
        assert v.loc[claim, "verdict"] == "cannot tell (missing methods)"
        assert "missing: NN1" in v.loc[claim, "numbers"]
    assert v.loc["1 → 2 layer changes do not match", "verdict"] == "cannot tell (missing methods)"


def test_partial_run_degrades_gracefully(tmp_path):
    """ntklab run seed --only NN1,NTK-NN1-T: the two side by side, per trial."""
    d = write_seed_run(tmp_path / "r", _holding_values(5), n_trials=5, methods=["NN1", "NTK-NN1-T"])
    run = load_run(d)
    sections = {s.key: s for s in build_sections(run)}
    assert list(sections) == [
        "main",
        "verdicts",
        "attribution",
        "same_time",
        "nn_kernel_ratios",
        "ties",
        "verdict_details",
    ]
    assert len(sections["same_time"].table) == 5
    assert sections["ties"].table is None and "Skipped" in sections["ties"].notes[0]
    verdicts = sections["verdicts"].table.set_index("claim")
    assert set(verdicts["verdict"]) == {"cannot tell (missing methods)"}
    assert "missing: NTKJ1, NTKB1, NN2" in verdicts.loc["NN ≈ 3× NTK", "numbers"]
    assert "NN1 / NTK-NN1-T = " in verdicts.loc["NN ≈ 3× NTK", "numbers"]
    att = sections["attribution"].table
    assert list(att["method"]) == ["NTK-NN1-T", "NN1"]  # no total without NTKJ1
    fig = nn_vs_ntk_same_t(run)
    assert len([a for a in fig.axes if a.get_visible()]) == 1
    text = write_report(run, "md", figures=False)
    assert "## Attribution" in text and "NTK-NN1-T" in text


def test_paper_runs_have_no_seed_only_sections(tmp_path):
    """A run without the attribution methods or a published generator: no attribution
    section, no same-T figure; the layer change keeps one row per family."""
    from test_report import write_paper_run

    run = load_run(write_paper_run(tmp_path / "p"))
    keys = [s.key for s in build_sections(run)]
    assert "attribution" not in keys and "main" in keys and "ties" in keys
    assert not any(k.startswith("nn_vs_ntk") for k in make_figures(run))


def test_layer_change_keeps_families_apart(seed_run):
    """NTKJ1 and NTK-NN1 are both jacot NTKs of depth 1: each keeps its own 1 → 2 row."""
    lc = layer_change(seed_run)
    pairs = dict(zip(lc["method_from"], lc["method_to"], strict=True))
    expected = {f"{m}1": f"{m}2" for m in ("NN", "GP", "NTKA", "NTKJ", "NTKB")}
    expected.update(
        {
            a.replace("{k}", "1"): a.replace("{k}", "2")
            for a in (
                "NTKJ{k}-corrected",
                "NTK-NN{k}",
                "NTK-NN{k}-469",
                "NTK-NN{k}-Tmean",
                "NTK-NN{k}-T",
            )
        }
    )
    assert pairs == expected  # every family once, none paired across kinds
    lc = lc.set_index("family")
    assert lc.loc["NTKJ", "method_from"] == "NTKJ1"  # the seed's row keeps the family
    assert lc.loc["NTK-NNk", "method_to"] == "NTK-NN2"  # the network's NTK: its own row
    assert lc.loc["NTK-NNk-T", "method_from"] == "NTK-NN1-T"
    assert lc.loc["NTKJk-corrected", "method_to"] == "NTKJ2-corrected"  # family NTKJ, crowded
    for _, row in lc.iterrows():
        assert row["change_ci_low"] < row["change_pct"] < row["change_ci_high"]


def test_ties_in_a_seed_run(seed_run):
    ties = ties_with_generator(seed_run).set_index("method")
    assert set(ties["reference"]) == {"NTKB1"}
    assert len(ties) == len(SEED_ROWS) + len(ATTRIBUTION) - 1
    assert ties.loc["NTKB2", "verdict"] == "equivalent"
    assert ties.loc["NTK-NN1-T", "verdict"] == "not shown equivalent"


# ---- figure and formats ---------------------------------------------------------------------------
def test_same_t_figure_data(seed_run):
    fig = nn_vs_ntk_same_t(seed_run)
    axes = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title() for a in axes] == [
        "NN1 vs its NTK at the same T",
        "NN2 vs its NTK at the same T",
    ]
    wide = seed_run.final("rmse")
    for ax, k in zip(axes, (1, 2), strict=True):
        xy = ax.collections[0].get_offsets()
        np.testing.assert_allclose(xy[:, 0], wide[f"NTK-NN{k}-T"], rtol=1e-15)
        np.testing.assert_allclose(xy[:, 1], wide[f"NN{k}"], rtol=1e-15)
        line = ax.lines[0]
        np.testing.assert_allclose(line.get_xdata(), line.get_ydata())  # the identity


class _Imgs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.ids, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        if "id" in a:
            self.ids.append(a["id"])

    def handle_data(self, data):
        self.text.append(data)


def test_html_has_the_new_sections_and_figure(seed_run, tmp_path):
    path = tmp_path / "report.html"
    write_report(seed_run, "html", path, figures_dir=tmp_path / "figs")
    parser = _Imgs()
    parser.feed(path.read_text(encoding="utf-8"))
    alts = {img["alt"] for img in parser.imgs}
    assert "nn_vs_ntk_same_t" in alts
    img = next(i for i in parser.imgs if i["alt"] == "nn_vs_ntk_same_t")
    png = base64.b64decode(img["src"].split(",", 1)[1])
    assert png == (tmp_path / "figs" / "nn_vs_ntk_same_t.png").read_bytes()
    assert {"main", "verdicts", "attribution", "ties", "verdict_details"} <= set(parser.ids)
    text = " ".join(parser.text)
    assert "methods.NN2.width: 10000 -> 256" in text  # the reductions
    assert "reproduced" in text and "Margin 0.02 (relative), α = 0.05." in text


def test_csv_latex_markdown(seed_run, tmp_path):
    write_report(seed_run, "csv", tmp_path / "csv")
    names = {p.stem for p in (tmp_path / "csv").iterdir()}
    assert {"main", "verdicts", "attribution", "verdict_details", "ties", "layer_change"} <= names
    verdicts = pd.read_csv(tmp_path / "csv" / "verdicts.csv")
    assert list(verdicts.columns) == ["claim", "verdict", "numbers", "seed_says"]
    pd.testing.assert_frame_equal(
        verdicts, seed_verdicts(seed_run).drop(columns="point"), check_dtype=False
    )
    att = pd.read_csv(tmp_path / "csv" / "attribution.csv")
    np.testing.assert_allclose(att["change"], attribution_table(seed_run)["change"], rtol=1e-12)
    tex = write_report(seed_run, "latex", figures=False)
    assert r"\subsection*{Attribution: from the seed's NTK row to its network" in tex
    assert r"NN $\approx$ 3$\times$ NTK" in tex and "→" not in tex and "≈" not in tex
    md = write_report(seed_run, "md", figures=False)
    assert "## The seed's claims (§4.2): verdicts" in md
    from test_report import md_rows

    assert ["NN ≈ 3× NTK", "reproduced"] in [r[:2] for r in md_rows(md)]


def test_same_time_table_pairs_each_network_with_its_own_ntk_per_trial(seed_run, tmp_path):
    from ntklab.report import same_time_table

    table = same_time_table(seed_run)
    wide = seed_run.final("rmse")
    assert list(table.depth.unique()) == [1, 2]
    for k in (1, 2):
        part = table[table.depth == k].set_index("trial")
        assert set(part.network) == {f"NN{k}"} and set(part.ntk) == {f"NTK-NN{k}-T"}
        np.testing.assert_array_equal(part.nn_rmse, wide[f"NN{k}"].to_numpy())
        np.testing.assert_array_equal(part.ntk_same_t_rmse, wide[f"NTK-NN{k}-T"].to_numpy())
        np.testing.assert_allclose(part.difference, part.nn_rmse - part.ntk_same_t_rmse, rtol=0)
    assert "same_time" in [s.key for s in build_sections(seed_run)]
    # a run with only NN1 and NTK-NN1-T (ntklab run seed --only NN1,NTK-NN1-T): one pair
    only = write_seed_run(
        tmp_path / "only", _holding_values(4), n_trials=4, methods=["NN1", "NTK-NN1-T"]
    )
    part = same_time_table(load_run(only))
    assert len(part) == 4 and set(part.network) == {"NN1"}
    # no pair, no table
    none = write_seed_run(tmp_path / "none", _holding_values(3), n_trials=3, methods=["GP1"])
    assert len(same_time_table(load_run(none))) == 0


def test_no_width_figures_without_a_width_sweep(tmp_path):
    """NN1 at one width and NN2 at another is no sweep: no '... vs width' figure."""
    d = write_seed_run(tmp_path / "r", _holding_values(3), n_trials=3, methods=["NN1", "NN2"])
    with RunStore.open(d, write=True) as store:
        store._conn.execute(
            "UPDATE methods SET spec = json_set(spec, '$.width', 256) WHERE method = 'NN2'"
        )
        for t in range(3):
            rec = TrialRecord(point=0, trial=t, seed=str(t))
            for m in ("NN1", "NN2"):
                rec.add(m, "kernel_drift", 0.1 * (1 + t))
            store._conn.execute("DELETE FROM trials WHERE trial = ?", (t,))
            store.write_trial(rec)
    figs = make_figures(load_run(d))
    assert not any(name.endswith("_vs_width") for name in figs)
