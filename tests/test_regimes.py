"""Parameterizations that leave the lazy regime (standard, mup), the lazy scale α, learning
rates relative to the critical rate, λ_max(Θ_t) recording and divergence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ntklab
from ntklab.config import MethodConfig
from ntklab.config.schema import ConfigError, validate
from ntklab.regimes import LambdaTracker, critical_lr, lambda_max, parse_lr_multiple


def _data(m=16, d=5, seed=1):
    X = ntklab.data.sphere(m, d, np.random.default_rng(seed))
    return X, np.sin(3 * X[:, 0]) + X[:, 1]


# ---- standard: its analytic NTK at width n against its finite networks ---------------------
@pytest.mark.parametrize("depth", [1, 2])
def test_standard_ntk_at_width_matches_its_networks(depth):
    """SP's NTK grows ∝ width; the kernel map with width-n coefficients is the mean empirical
    NTK of width-n SP networks (exact in expectation at depth 1; O(1/n) relative at depth 2)."""
    X, _ = _data(m=5)
    arch = ntklab.Architecture(depth, "standard", sigma_b=0.3)
    n = 128
    mean, se = ntklab.monte_carlo_ntk(arch, X, width=n, n_samples=60, seed=0, dtype=torch.float64,
                                      device="cpu")  # fmt: skip
    K = arch.ntk(X, width=n)
    bias = (depth - 1) * 4.0 / n * np.abs(K)  # finite-width correction of the deeper layers
    assert np.all(np.abs(mean - K) <= 4.5 * se + bias)
    # the NTK grows with the width: doubling n nearly doubles it (the weight terms dominate)
    ratio = np.diag(arch.ntk(X, width=2 * n)) / np.diag(K)
    assert np.all((ratio > 1.8) & (ratio <= 2.0))
    # negative control: the same kernel map at half the width fails the same tolerance
    # at every entry
    assert np.all(np.abs(mean - arch.ntk(X, width=n // 2)) > 4.5 * se + bias)


def test_standard_and_mup_kernel_errors():
    X, _ = _data(m=4)
    with pytest.raises(ValueError, match="grows with the width: give the hidden width"):
        ntklab.Architecture(1, "standard").ntk(X)
    with pytest.raises(ValueError, match="'mup' has no fixed NTK"):
        ntklab.Architecture(1, "mup").ntk(X)
    with pytest.raises(ValueError, match="width applies to parameterization='standard' only"):
        ntklab.Architecture(1, "jacot", width=8)
    with pytest.raises(ValueError, match="sigma_b must be 0 for parameterization='mup'"):
        ntklab.Architecture(1, "mup", sigma_b=0.1)
    # the NNGP of SP does not depend on the width
    np.testing.assert_allclose(
        ntklab.Architecture(2, "standard").nngp(X),
        ntklab.Architecture(2, "standard").nngp(X, width=7),
    )


def test_mup_scalings():
    """muP (abc form): the output is O(1/sqrt(n)) at init (scaled by 1/n, not 1/sqrt(n)), while
    the empirical NTK stays O(1) as the width grows."""
    X, _ = _data(m=6)
    arch = ntklab.Architecture(2, "mup")
    out, lam = {}, {}
    for n in (64, 1024):
        nets = [arch.network(n, seed=s, in_features=5, device="cpu", dtype=torch.float64)
                for s in range(8)]  # fmt: skip
        out[n] = np.mean([np.mean(ntklab.networks.predict_numpy(net, X) ** 2) for net in nets])
        lam[n] = np.mean([lambda_max(net, X) for net in nets])
    assert 8 < out[64] / out[1024] < 32  # variance ∝ 1/n: 16 expected
    assert 0.7 < lam[64] / lam[1024] < 1.4


# ---- lazy scale ----------------------------------------------------------------------------
def test_lazy_scaled_model_is_alpha_times_centered_and_lazier():
    X, y = _data(m=24)
    Xs, ys, Xt, yt = X[:16], y[:16], X[16:], y[16:]
    arch = ntklab.Architecture(1, "jacot", sigma_w=math.sqrt(2), sigma_b=0.0)
    net = arch.network(64, seed=0, in_features=5, device="cpu")
    eta, _ = critical_lr(net, Xs)
    rel, drift = {}, {}
    for alpha in (0.1, 20.0):
        (r,) = ntklab.train_ensemble(arch, 64, Xs, ys, seeds=[0], lr=0.5 * eta, epochs=200,
                                     X_test=Xt, y_test=yt, lazy_scale=alpha, device="cpu")  # fmt: skip
        f = ntklab.networks.predict_numpy(r.network.network, Xt)
        f0 = ntklab.networks.predict_numpy(r.initial_network, Xt)
        np.testing.assert_allclose(r.predict(Xt), alpha * (f - f0), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(r.test_rmse[-1], np.sqrt(np.mean((r.predict(Xt) - yt) ** 2)),
                                   rtol=1e-5)  # fmt: skip
        assert r.lazy_scale == alpha and r.centered
        eq = ntklab.equivalence_metrics(r, arch, Xs, ys, Xt, yt)
        rel[alpha], drift[alpha] = eq.metrics["nn_elin_rel"], eq.metrics["kernel_drift"]
    # large alpha follows its linearization far more closely (Chizat et al. 2019: O(1/alpha))
    # and its kernel barely moves; small alpha moves its kernel by more than its own size
    assert rel[20.0] < 0.2 * rel[0.1] and drift[20.0] < 0.05 < 1.0 < drift[0.1]
    with pytest.raises(ValueError, match="lazy_scale must be"):
        ntklab.train_ensemble(arch, 8, Xs, ys, seeds=[0], lr=0.1, epochs=1, lazy_scale=0.0)


# ---- learning rate relative to the kernel, λ_max curves, catapult, divergence --------------
def _train_at(C, *, seed=0):
    X, y = _data()
    arch = ntklab.Architecture(1, "jacot")
    eta, lam0 = critical_lr(arch.network(512, seed=seed, in_features=5, device="cpu"), X)
    tracker = LambdaTracker(X)
    (r,) = ntklab.train_ensemble(arch, 512, X, y, seeds=[seed], lr=C * eta, epochs=100,
                                 record_every=1, device="cpu", on_record=tracker)  # fmt: skip
    return r, tracker, lam0, X.shape[0] / eta


def test_catapult_at_one_and_a_half_times_the_critical_rate():
    """Lewkowycz et al. 2020: between eta_crit and ~2 eta_crit the loss rises, lambda_max falls
    below 2m/lr, and training converges; at half the critical rate lambda_max barely moves."""
    r, tr, lam0, lam_crit = _train_at(1.5)
    assert lam0 == tr.values[0] == lam_crit and tr.epochs == list(range(101))
    L = r.train_loss
    assert not r.diverged and L.max() > 3 * L[0] and L[-1] < 1e-2 * L[0]
    lam_T = tr.values[-1]
    assert lam_T < 0.6 * lam0 and lam_T < 2 * 16 / r.lr
    r, tr, lam0, _ = _train_at(0.5)
    assert r.train_loss.max() == r.train_loss[0]  # monotone: no spike
    assert abs(tr.values[-1] / lam0 - 1) < 0.05


def test_divergence_is_recorded_not_raised():
    r, tr, _, _ = _train_at(3.0)
    assert r.diverged and r.diverged_epoch < 20 and math.isfinite(r.train_loss[0])


def test_lr_multiple_parsing_and_config_errors():
    assert parse_lr_multiple("x1.5") == 1.5 and parse_lr_multiple(0.3) is None
    for bad in ("x0", "x-1", "xabc", "x"):
        with pytest.raises(ValueError, match="must be 'x' and a number > 0"):
            parse_lr_multiple(bad)
    base = dict(name="NN", kind="network", depth=1, width=8, epochs=10)
    assert MethodConfig(**base, parameterization="jacot", lr="x0.50").lr == "x0.5"
    cases = [
        (dict(base, parameterization="jacot", lr="x-2"), "multiple of the critical rate"),
        (dict(base, parameterization="jacot", lr="fast"), "lr must be a positive number or 'auto' .or 'xC'"),
        (dict(base, parameterization="standard", lr=0.1), "relative to the critical rate"),
        (dict(base, parameterization="mup"), "lr = 'auto' needs the analytic NTK"),
        (dict(name="K", kind="ntk", depth=1, parameterization="mup"), "'mup' has no fixed NTK limit"),
        (dict(name="K", kind="ntk_time", depth=1, epochs=5, parameterization="mup"), "no fixed NTK"),
        (dict(name="K", kind="ntk", depth=1, parameterization="standard"), "needs width = n"),
        (dict(base, parameterization="jacot", lazy_scale=2.0, centered=False), "drop centered"),
        (dict(base, parameterization="jacot", lazy_scale=-1.0), "lazy_scale"),
    ]  # fmt: skip
    for method, message in cases:
        raw = {"data": {"n": 20, "d": 3, "n_train": 10}, "methods": [method]}
        with pytest.raises(ConfigError, match=message) as info:
            validate(raw, "cfg")
        assert "\n" not in str(info.value)
    ok = MethodConfig(name="K", kind="ntk", depth=1, parameterization="standard", width=64)
    assert ok.architecture().width == 64


def test_study_records_regime_metrics_and_nan_on_divergence():
    from ntklab.config.loading import resolve_networks
    from ntklab.study import run_trial

    def net(name, **kw):
        return dict(name=name, kind="network", depth=1, parameterization="mup", width=64,
                    epochs=30, record_every=10, track_lambda=True, **kw)  # fmt: skip

    raw = {
        "study": {"seed": 3},
        "data": {"n": 40, "d": 4, "n_train": 24},
        "methods": [
            net("ok", lr="x0.5", lazy_scale=2.0),
            net("bad", lr="x6"),
            dict(net("sp", lr="x0.5"), parameterization="standard"),
            dict(name="spT", kind="ntk_time", network="sp", f0="network"),
        ],
    }
    resolve_networks(raw, "cfg")  # spT takes sp's architecture, width, lr and epochs
    rec = run_trial(validate(raw, "cfg"), trial=0, device="cpu")
    assert rec.errors == []
    final = {(m, k): v for m, k, step, v in rec.rows if step == -1}
    assert final["ok", "diverged"] == 0.0 and final["bad", "diverged"] == 1.0
    assert final["ok", "lr_multiple"] == pytest.approx(0.5) and final["ok", "lazy_scale"] == 2.0
    assert final["ok", "lambda_max_T"] > 0 and np.isfinite(final["ok", "nn_lin_rel"])
    assert final["ok", "nn_lin_rel"] == pytest.approx(final["ok", "nn_elin_rel"], rel=1e-6)
    for metric in ("lambda_max_T", "nn_lin_rel", "kernel_drift", "ntk_same_t_rmse"):
        assert math.isnan(final["bad", metric])
    # SP: nn_lin_rel from its analytic NTK at the network's width; the ntk_time method of
    # the same network takes the same rate, C times that network's critical rate
    assert final["sp", "nn_lin_rel"] < 0.5 and final["sp", "lr_multiple"] == pytest.approx(0.5)
    assert final["spT", "lr"] == final["sp", "lr"]
    curve = [step for m, k, step, _ in rec.rows if (m, k) == ("ok", "curve_lambda_max")]
    assert curve == [0, 10, 20, 30]


def test_verify_covers_standard_and_refuses_mup():
    rows = ntklab.verify.verify(width=64, n_samples=40, n_points=4, depths=[1],
                                parameterizations=["standard"])  # fmt: skip
    assert [r.kernel for r in rows] == ["nngp", "ntk"] and all(r.passed for r in rows)
    with pytest.raises(ValueError, match="'mup' has no fixed NTK limit to verify"):
        ntklab.verify.verify(parameterizations=["mup"])


@pytest.mark.parametrize("name", ["phase", "phase-quick"])
def test_phase_presets_are_grids_of_sweep_points(name):
    from ntklab.config.plan import load_config, plan_study

    plan = load_config(name)
    keys = {"data.inputs", "methods.*.parameterization", "methods.*.depth", "methods.*.width"}
    assert all(set(p.params) == keys for p in plan.points)
    assert {p.params["methods.*.parameterization"] for p in plan.points} == {
        "jacot",
        "standard",
        "mup",
    }
    assert {p.params["data.inputs"] for p in plan.points} == {"uniform", "normal"}
    for point in plan.points[:: max(1, len(plan.points) // 5)]:
        methods = point.config.methods
        assert all(m.track_lambda and m.kind == "network" for m in methods)
        assert {m.family for m in methods} == {"NN-lr", "NN-alpha"}
        assert all((m.lazy_scale is None) == (m.family == "NN-lr") for m in methods)
        again = plan_study(point.config.model_dump(exclude_none=True)).config
        assert again == point.config  # workers rebuild each point from its resolved dict


def test_standard_auto_lr_uses_its_ntk_at_the_network_width():
    X, y = _data(m=12)
    arch = ntklab.Architecture(1, "standard")
    (r,) = ntklab.train_ensemble(arch, 64, X, y, seeds=[0], lr="auto", epochs=2, device="cpu")
    assert r.lr == pytest.approx(ntklab.auto_lr(arch.ntk(X, width=64)), rel=1e-12)
    # four times the width: a quarter of the rate (the NTK grows ~ width)
    (r4,) = ntklab.train_ensemble(arch, 256, X, y, seeds=[0], lr="auto", epochs=2, device="cpu")
    assert 0.2 < r4.lr / r.lr < 0.3
