"""One trial: data from the trial's seed, every method, error rows, shared kernels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from study_helpers import write_tiny

import ntklab
from ntklab import study
from ntklab.config import load_config, plan_study
from ntklab.data import sphere
from ntklab.predict import gradient_descent_mse
from ntklab.study import make_data, network_seed, run_trial, trial_seed


def _kernel_only(tmp_path, **kw):
    plan = load_config(str(write_tiny(tmp_path, **kw)))
    cfg = plan.points[0].config
    return cfg.model_copy(update={"methods": [m for m in cfg.methods if m.kind != "network"]})


def _rows(record):
    return {(m, k, s): v for (m, k, s, v) in record.rows if k != "fit_seconds"}


def test_trial_data_come_from_the_trials_seed_sequence(tmp_path):
    cfg = _kernel_only(tmp_path)
    ctx, jitter = make_data(cfg, 4)
    rng = np.random.default_rng(np.random.SeedSequence(7, spawn_key=(4,)))
    X = sphere(48, 4, rng)
    np.testing.assert_array_equal(ctx.data.X, X)
    K = ntklab.Architecture(1, "paper").ntk(X)
    L = scipy.linalg.cholesky(K, lower=True)
    y = L @ rng.standard_normal(48) + 0.05 * rng.standard_normal(48)
    np.testing.assert_allclose(ctx.data.y, y, rtol=1e-10, atol=1e-12)
    assert trial_seed(7, 4).spawn_key == (4,)
    other, _ = make_data(cfg, 5)
    assert not np.allclose(other.data.X, ctx.data.X)


def test_kernel_methods_match_direct_solves(tmp_path):
    cfg = _kernel_only(tmp_path)
    rec = run_trial(cfg, trial=2)
    assert rec.status == "done" and not rec.errors
    rows = _rows(rec)
    ctx, _ = make_data(cfg, 2)
    d = ctx.data

    def krr(K):
        Ktr, Kte = K[np.ix_(d.train, d.train)], K[np.ix_(d.test, d.train)]
        pred = Kte @ np.linalg.solve(Ktr, d.y_train)
        return np.sqrt(np.mean((pred - d.y_test) ** 2))

    nngp_j, ntk_j = ntklab.Architecture(1, "jacot").kernels(d.X)
    ntk_b = ntklab.Architecture(1, "paper").ntk(d.X)
    lap = ntklab.laplacian(d.X, length_scale=1.0)
    np.testing.assert_allclose(rows[("GP1", "rmse", -1)], krr(nngp_j), rtol=1e-8)
    np.testing.assert_allclose(rows[("NTKJ1", "rmse", -1)], krr(ntk_j), rtol=1e-8)
    np.testing.assert_allclose(rows[("NTKB1", "rmse", -1)], krr(ntk_b), rtol=1e-8)
    np.testing.assert_allclose(rows[("K1", "rmse", -1)], krr(lap), rtol=1e-8)
    # the methods really differ (a mixed-up kernel would make two of them equal)
    assert len({round(rows[(m, "rmse", -1)], 12) for m in ("GP1", "NTKJ1", "NTKB1", "K1")}) == 4
    # ntk_time: mean NTK prediction after 10 steps at lr = 0.5 m / lambda_max
    Ktr = ntk_b[np.ix_(d.train, d.train)]
    lr = 0.5 * len(d.train) / np.linalg.eigvalsh(Ktr)[-1]
    _, f_test = gradient_descent_mse(
        Ktr, ntk_b[np.ix_(d.test, d.train)], d.y_train, lr=lr, steps=10
    )
    np.testing.assert_allclose(rows[("NTKB1T", "lr", -1)], lr, rtol=1e-10)
    np.testing.assert_allclose(
        rows[("NTKB1T", "rmse", -1)], np.sqrt(np.mean((f_test - d.y_test) ** 2)), rtol=1e-8
    )
    assert (
        abs(rows[("NTKB1T", "rmse", -1)] - rows[("NTKB1", "rmse", -1)]) > 1e-3
    )  # T=10 is not T=inf
    for m in ("GP1", "NTKJ1", "NTKB1", "K1"):
        assert rows[(m, "jitter", -1)] == 0.0
    assert {r[0] for r in rec.rows if r[1] == "fit_seconds"} == {
        "GP1",
        "NTKJ1",
        "NTKB1",
        "NTKB1T",
        "K1",
    }


def test_a_single_trial_rerun_alone_gives_the_same_numbers(tmp_path):
    cfg = load_config(str(write_tiny(tmp_path, width=8, epochs=4))).points[0].config
    first = [run_trial(cfg, trial=t) for t in range(2)]
    alone = run_trial(cfg.model_dump(exclude_none=True), trial=1)
    assert _rows(alone) == _rows(first[1])
    assert alone.seed == first[1].seed == "SeedSequence(entropy=7, spawn_key=(1,))"
    assert _rows(first[0]) != _rows(first[1])


def test_network_rows_and_curves(tmp_path):
    cfg = load_config(str(write_tiny(tmp_path, width=16, epochs=10))).points[0].config
    rec = run_trial(cfg, trial=0, device="cpu")
    assert rec.status == "done" and not rec.errors, rec.errors
    rows = _rows(rec)
    for metric in ("rmse", "train_rmse", "lr", "diverged"):
        assert np.isfinite(rows[("NN1", metric, -1)]), metric
    assert rows[("NN1", "diverged", -1)] == 0.0
    # lr = "auto" is half the stability limit of the analytic NTK on the training rows
    ctx, _ = make_data(cfg, 0)
    Ktr = ntklab.Architecture(1, "paper").ntk(ctx.data.X_train)
    np.testing.assert_allclose(
        rows[("NN1", "lr", -1)], 0.5 * 36 / np.linalg.eigvalsh(Ktr)[-1], rtol=1e-6
    )
    # the network's test RMSE is that of the network trained with the method's seed
    from ntklab.training import train_ensemble

    seed = network_seed(7, 0, "NN1")
    (res,) = train_ensemble(
        ntklab.Architecture(1, "paper"), 16, ctx.data.X_train, ctx.data.y_train, seeds=[seed],
        lr=rows[("NN1", "lr", -1)], epochs=10, X_test=ctx.data.X_test, y_test=ctx.data.y_test, device="cpu",
    )  # fmt: skip
    pred = res.predict(ctx.data.X_test)
    np.testing.assert_allclose(
        rows[("NN1", "rmse", -1)], np.sqrt(np.mean((pred - ctx.data.y_test) ** 2)), rtol=1e-6
    )
    curve = sorted(
        (s, v) for (m, k, s), v in rows.items() if m == "NN1" and k == "curve_train_loss"
    )
    assert [s for s, _ in curve] == [0, 5, 10]
    assert curve[-1][1] < curve[0][1]
    for metric in ("kernel_drift", "ntk_same_t_rmse", "ntk_inf_rmse", "nn_lin_rms"):
        assert ("NN1", metric, -1) in rows, metric
    assert any(k == "curve_ntk_test_rmse" for (m, k, s) in rows)


def test_network_seed_depends_on_trial_and_name_only():
    assert network_seed(7, 0, "NN1") == network_seed(7, 0, "NN1")
    seeds = {network_seed(7, t, m) for t in range(3) for m in ("NN1", "NN2")}
    assert len(seeds) == 6
    assert network_seed(8, 0, "NN1") != network_seed(7, 0, "NN1")


def test_shared_kernels_are_computed_once(tmp_path, monkeypatch):
    cfg = _kernel_only(tmp_path)
    calls = []
    original = ntklab.Architecture.kernels

    def counting(self, X, Z=None, **kw):
        calls.append((self.depth, self.parameterization))
        return original(self, X, Z, **kw)

    monkeypatch.setattr(ntklab.Architecture, "kernels", counting)
    run_trial(cfg, trial=0)
    # generator NTKB1 (reused by NTKB1 and NTKB1T) and jacot depth 1 (GP1 and NTKJ1): one pass each
    assert sorted(calls) == [(1, "jacot"), (1, "paper")]


def test_data_are_identical_across_sweep_points(tmp_path):
    raw_path = write_tiny(tmp_path)
    plan = load_config(
        str(raw_path), overrides=["sweep.methods.NN1.width=[8, 12]", "sweep.data.noise=[0.0, 0.1]"]
    )
    assert len(plan.points) == 4
    same_noise = [p for p in plan.points if p.params["data.noise"] == 0.0]
    a, _ = make_data(same_noise[0].config, 3)
    b, _ = make_data(same_noise[1].config, 3)
    np.testing.assert_array_equal(a.data.y, b.data.y)
    np.testing.assert_array_equal(a.data.train, b.data.train)
    noisy, _ = make_data(plan.points[1].config, 3)
    np.testing.assert_array_equal(noisy.data.X, a.data.X)  # same draws, then the noise


def test_a_failing_method_records_an_error_and_the_trial_goes_on(tmp_path, monkeypatch):
    cfg = _kernel_only(tmp_path)

    def broken(*args, **kwargs):
        raise FloatingPointError("boom")

    monkeypatch.setattr(study.context, "laplacian", broken)
    rec = run_trial(cfg, trial=0)
    assert rec.status == "done"
    assert rec.errors == [("K1", "FloatingPointError: boom")]
    assert not any(r[0] == "K1" for r in rec.rows)
    assert any(r[0] == "NTKB1" and r[1] == "rmse" for r in rec.rows)


def test_a_trial_whose_data_fail_is_marked_failed(tmp_path, monkeypatch):
    cfg = _kernel_only(tmp_path)

    def broken(*args, **kwargs):
        raise MemoryError("no room")

    monkeypatch.setattr(study.context, "simulate", broken)
    rec = run_trial(cfg, trial=0)
    assert rec.status == "failed"
    assert rec.error.startswith("MemoryError: no room")
    assert rec.rows == []


@pytest.mark.slow
def test_real_data_trial(tmp_path):
    raw = {
        "study": {"name": "rd", "trials": 1, "seed": 3},
        "data": {"dataset": "diabetes", "n_train": 350},
        "methods": [
            {"name": "NTKJ1", "kind": "ntk", "depth": 1, "parameterization": "jacot"},
            {"name": "K1", "kind": "laplacian"},
        ],
    }
    cfg = plan_study(raw).config
    rec = run_trial(cfg, trial=0)
    assert rec.status == "done" and not rec.errors
    rows = _rows(rec)
    # standardized target: a useful predictor beats predicting 0 (RMSE ~ 1)
    assert 0.5 < rows[("NTKJ1", "rmse", -1)] < 1.0


JITTERY = """
[study]
name = "jittery"
trials = 2
seed = 3

[data]
n = 48
d = 4
n_train = 36

[data.generator]           # an RBF this wide is singular to round-off on 48 points
kind = "rbf"
length_scale = 50.0

[[methods]]
name = "RBF"
kind = "rbf"
length_scale = 50.0

[[methods]]
name = "RBF-ridge"
kind = "rbf"
length_scale = 50.0
ridge = 1e-6

[[methods]]
name = "NTKB1"
kind = "ntk"
depth = 1
parameterization = "paper"
"""


def test_generator_and_method_jitter_are_stored(tmp_path):
    from ntklab.store import GENERATOR_METHOD

    path = tmp_path / "jittery.toml"
    path.write_text(JITTERY)
    cfg = load_config(str(path)).points[0].config
    with pytest.warns(RuntimeWarning, match="added jitter"):
        _, jitter = make_data(cfg, 1)
    with pytest.warns(RuntimeWarning, match="added jitter"):
        rec = run_trial(cfg, trial=1)
    assert rec.status == "done" and not rec.errors
    rows = _rows(rec)
    # the generator's jitter: stored under the pseudo-method, 1e-12 x its mean diagonal (1)
    assert jitter == 1e-12
    assert rows[(GENERATOR_METHOD, "generator_jitter", -1)] == jitter
    assert 0 < rows[("RBF", "jitter", -1)] <= 1e-6
    assert rows[("RBF-ridge", "jitter", -1)] == 0.0 and rows[("NTKB1", "jitter", -1)] == 0.0
    # a trial whose generator needs no jitter stores no generator row
    tiny = run_trial(_kernel_only(tmp_path), trial=0)
    assert not [r for r in tiny.rows if r[0] == GENERATOR_METHOD]
