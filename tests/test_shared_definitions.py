"""Formulas and defaults that several modules use are defined once."""

from __future__ import annotations

import numpy as np
import pytest
from study_helpers import write_tiny

import ntklab
from ntklab import study, training
from ntklab._validation import check_lr
from ntklab.config import MethodConfig, load_config
from ntklab.metrics import rms, rmse
from ntklab.predict import (
    cho_solve_jitter,
    gradient_descent_mse,
    kernel_regression,
    kernel_ridge_coef,
)
from ntklab.store import assumed_line


def test_rmse_of_a_vector_and_of_a_curve():
    y = np.array([1.0, -2.0, 0.5])
    pred = np.array([1.5, -2.0, 0.0])
    assert rmse(pred, y) == pytest.approx(np.sqrt(0.5 / 3), rel=1e-15)
    assert isinstance(rmse(pred, y), float)
    curve = np.stack([pred, y, 2 * y])
    np.testing.assert_array_equal(rmse(curve, y), [rmse(pred, y), 0.0, rms(y)])
    assert rms(np.float32([3.0, 4.0])) == pytest.approx(np.sqrt(12.5))


def test_kernel_regression_is_the_ridge_formula():
    rng = np.random.default_rng(0)
    X = ntklab.data.project_to_sphere(rng.standard_normal((30, 3)))
    K = ntklab.Architecture(1, "jacot").ntk(X)
    y = rng.standard_normal(20)
    f, jitter = kernel_regression(K[:20, :20], K[20:, :20], y, ridge=0.1)
    expected = K[20:, :20] @ np.linalg.solve(K[:20, :20] + 0.1 * np.eye(20), y)
    np.testing.assert_allclose(f, expected, rtol=1e-10)
    assert jitter == 0.0
    before = K.copy()
    alpha, _ = kernel_ridge_coef(K[:20, :20], y)  # ridge 0: the Cholesky solve itself
    np.testing.assert_array_equal(alpha, cho_solve_jitter(K[:20, :20], y)[0])
    np.testing.assert_array_equal(K, before)  # the kernel is not modified
    fit = ntklab.KernelRegressor(ntklab.Architecture(1, "jacot").ntk, alpha=0.1)
    np.testing.assert_allclose(fit.fit(X[:20], y).predict(X[20:]), f, rtol=1e-10)


def test_gradient_descent_mse_with_a_shared_eigendecomposition():
    rng = np.random.default_rng(1)
    X = ntklab.data.project_to_sphere(rng.standard_normal((25, 4)))
    K = ntklab.Architecture(2, "paper").ntk(X)
    y = rng.standard_normal(15)
    args = (K[:15, :15], K[15:, :15], y)
    eig = np.linalg.eigh(K[:15, :15])
    for steps in (3.0, np.inf, [1.0, 10.0]):
        a = gradient_descent_mse(*args, lr=0.5, steps=steps)
        b = gradient_descent_mse(*args, lr=0.5, steps=steps, eig=eig)
        for u, v in zip(a, b, strict=True):
            np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match=r"eig must be np.linalg.eigh\(ntk_train\)"):
        gradient_descent_mse(*args, lr=0.5, steps=1.0, eig=(eig[0][:3], eig[1]))


def test_one_eigendecomposition_and_one_auto_lr_per_kernel_and_rows(tmp_path, monkeypatch):
    cfg = load_config(str(write_tiny(tmp_path))).points[0].config
    extra = [
        MethodConfig(name=name, kind="ntk_time", depth=1, parameterization="paper", epochs=e)
        for name, e in (("T5", 5), ("T20", 20))
    ]
    methods = [m for m in cfg.methods if m.kind != "network"] + extra
    cfg = cfg.model_copy(update={"methods": methods})
    calls = {"eigh": 0, "auto_lr": 0}
    eigh, auto_lr = np.linalg.eigh, training.auto_lr  # what a trial calls

    def counting_eigh(a, *args, **kw):
        calls["eigh"] += 1
        return eigh(a, *args, **kw)

    def counting_auto_lr(*args, **kw):
        calls["auto_lr"] += 1
        return auto_lr(*args, **kw)

    monkeypatch.setattr(np.linalg, "eigh", counting_eigh)
    monkeypatch.setattr(training, "auto_lr", counting_auto_lr)
    record = study.run_trial(cfg, trial=0)
    assert not record.errors
    assert {m for m, *_ in record.rows} >= {"NTKB1T", "T5", "T20"}
    assert calls == {"eigh": 1, "auto_lr": 1}  # three ntk_time methods, one kernel and rows
    lrs = {m: v for m, k, _, v in record.rows if k == "lr"}
    assert lrs["NTKB1T"] == lrs["T5"] == lrs["T20"]


def test_one_learning_rate_check():
    assert check_lr("auto") == "auto" and check_lr(np.float32(0.5)) == 0.5
    assert check_lr(2) == 2.0 and isinstance(check_lr(2), float)
    for bad in (-1.0, 0, float("nan"), float("inf"), True, "fast", None):
        with pytest.raises(ValueError, match="lr must be a positive number or 'auto'; got"):
            check_lr(bad)
    with pytest.raises(ValueError, match="lr must be a positive number; got 'auto'"):
        check_lr("auto", auto=False)
    with pytest.raises(ValueError, match="lr must be a positive number; got"):
        training.arguments.check_lrs([0.1, -0.1], 2, None)


def test_one_letter_per_parameterization():
    for name, param in ntklab.PARAMETERIZATIONS.items():
        method = MethodConfig(name="M", kind="network", depth=2, parameterization=name,
                              width=8, epochs=1, lr="x0.5")  # fmt: skip
        assert ntklab.Architecture(2, name).name == f"NTK{method.letter}2"
        assert method.letter == param.letter and len(param.letter) == 1
    letters = [p.letter for p in ntklab.PARAMETERIZATIONS.values()]
    assert letters == ["J", "A", "B", "S", "M"]
    assert MethodConfig(name="L", kind="laplacian").letter == ""
    # one table, whichever import path reads it
    assert ntklab.architecture.PARAMETERIZATIONS is ntklab.PARAMETERIZATIONS
    assert ntklab.architecture.Parameterization is ntklab.Parameterization


def test_one_learning_rate_formula():
    """The automatic rate is half the critical rate m / lambda_max, for the analytic kernel
    (auto_lr) and the network's own empirical one (regimes.critical_lr) alike."""
    from ntklab.regimes import critical_lr

    X = np.random.default_rng(5).standard_normal((7, 3))
    arch = ntklab.Architecture(1, "paper")
    K = arch.ntk(X)
    lam = np.linalg.eigvalsh(K)[-1]
    assert ntklab.auto_lr(K) == pytest.approx(0.5 * 7 / lam, rel=1e-12)
    assert ntklab.auto_lr(K, c=0.2) == pytest.approx(0.2 * 7 / lam, rel=1e-12)
    net = arch.network(32, seed=0, in_features=3, device="cpu")
    eta_crit, lam0 = critical_lr(net, X)
    assert eta_crit == pytest.approx(7 / lam0, rel=1e-15)
    assert ntklab.auto_lr(ntklab.empirical_ntk(net, X)) == pytest.approx(eta_crit / 2, rel=1e-9)


def test_one_record_every_default(tmp_path):
    assert training.default_record_every(3000) == 300
    assert training.default_record_every(5) == 1
    method = MethodConfig(name="NN", kind="network", depth=1, parameterization="jacot",
                          width=8, epochs=40)  # fmt: skip
    assert method.record_every == training.default_record_every(40) == 4
    X = ntklab.data.project_to_sphere(np.random.default_rng(2).standard_normal((6, 3)))
    net = ntklab.Architecture(1, "jacot").network(8, seed=0, in_features=3, device="cpu")
    res = ntklab.train(net, X, X[:, 0], lr=0.1, epochs=40, device="cpu")
    np.testing.assert_array_equal(res.epochs, np.arange(0, 41, 4))


def test_one_assumed_line_for_run_and_report():
    assumed = {
        "data.n_train": 36,
        "data.generator.sigma_w": 1.0,
        "methods.NN1.sigma_w": 1.0,
        "methods.NN2.sigma_w": 1.0,
        "methods.NN1.lr": "auto",
        "sweep.methods.*.width": [64, 128],
    }
    assert assumed_line(assumed) == (
        "Assumed values (SPEC): n_train = 36 (data); sigma_w = 1.0 (data.generator, NN1, "
        "NN2); lr = auto (NN1); methods.*.width = [64, 128] (sweep)."
    )
    assert assumed_line({}) == "Assumed values (SPEC): none (SPEC §6 states every value)."


def test_verify_draws_its_points_with_project_to_sphere():
    import inspect

    from ntklab import verify

    source = inspect.getsource(verify)
    assert "linalg.norm(X, axis=1" not in source and "project_to_sphere(" in source


def test_the_linear_algebra_is_defined_once_in_linalg():
    """ntklab.linalg defines the Cholesky helpers; predict and data use (and predict
    re-exports) those very objects."""
    import ntklab.data
    import ntklab.linalg
    import ntklab.predict
    import ntklab.regressor

    for name in ("MAX_RELATIVE_JITTER", "SingularKernelError", "cholesky_jitter",
                 "cho_solve_jitter", "kernel_ridge_coef"):  # fmt: skip
        assert getattr(ntklab.predict, name) is getattr(ntklab.linalg, name), name
        assert name in ntklab.predict.__all__
    assert ntklab.data.cholesky_jitter is ntklab.linalg.cholesky_jitter
    assert ntklab.regressor.kernel_ridge_coef is ntklab.linalg.kernel_ridge_coef
    assert ntklab.linalg is ntklab.__getattr__("linalg")
    # symmetrize: exactly symmetric, in place, equal to the mean of K and K.T
    K = np.random.default_rng(1).standard_normal((5, 5))
    expected = 0.5 * (K + K.T)
    out = K.copy()
    assert ntklab.linalg.symmetrize(out) is None
    np.testing.assert_array_equal(out, out.T)
    np.testing.assert_allclose(out, expected, rtol=0, atol=4 * np.finfo(float).eps)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("parameterization", ["jacot", "arora", "paper"])
@pytest.mark.parametrize("sigma_b", [None, 0.0])
def test_drawn_parameters_are_the_networks(depth, parameterization, sigma_b):
    """``draw_parameters`` (the Monte-Carlo estimates' networks) gives the very numbers of
    ``network`` with the same seed, under its parameter names, in float32 and float64."""
    import torch

    arch = ntklab.Architecture(depth, parameterization, sigma_b=sigma_b)
    for dtype in (torch.float32, torch.float64):
        net = arch.network(7, seed=3, in_features=4, dtype=dtype, device="cpu")
        drawn = arch.draw_parameters(7, seed=3, in_features=4, dtype=dtype)
        named = dict(net.named_parameters())
        assert list(drawn) == list(named)
        for name, p in named.items():
            assert drawn[name].dtype == dtype
            assert torch.equal(drawn[name], p.detach()), name
    other = arch.draw_parameters(7, seed=4, in_features=4)
    assert not torch.equal(other["layers.0.weight"], drawn["layers.0.weight"].float())


def test_the_seeds_constants_are_written_once():
    """The seed's input bounds Uniform(-5, 7), its K1 constants and its published names are
    literals in one module each; every other use reads them from there."""
    import re
    from pathlib import Path

    from ntklab.config import PUBLISHED_NAMES
    from ntklab.data import SEED_BOUNDS
    from ntklab.published import K1_AMPLITUDE, K1_LENGTH_SCALE, PUBLISHED_KERNELS

    src = Path(ntklab.__file__).parent
    patterns = {
        "bounds": re.compile(r"-5\.0,\s*7\.0"),
        "names": re.compile(r'"GP1",\s*"GP2",\s*"NTKA1"'),
        "k1": re.compile(r"2\.0,\s*6\.0|= 6\.0\b"),
    }
    found: dict[str, list[str]] = {k: [] for k in patterns}
    for path in sorted(src.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for key, pattern in patterns.items():
            found[key] += [path.name] * len(pattern.findall(text))
    assert found == {"bounds": ["data.py"], "names": ["published.py"], "k1": ["published.py"]}
    assert SEED_BOUNDS == (-5.0, 7.0) and PUBLISHED_NAMES is PUBLISHED_KERNELS
    k1 = MethodConfig.model_validate({"name": "K1", "kind": "published", "kernel": "K1"})
    assert (k1.amplitude, k1.length_scale) == (K1_AMPLITUDE, K1_LENGTH_SCALE)


def test_one_sgd_step_count():
    """The training loop and the NTK prediction at the same time count steps the same way
    (training.results.steps_per_epoch), so a TrainResult's steps equal study.sgd_steps."""
    from ntklab.training.results import steps_per_epoch

    for m, batch in ((469, 8), (469, None), (10, 10), (10, 64), (17, 5)):
        expected = 1 if batch is None or batch >= m else -(-m // batch)
        assert steps_per_epoch(m, batch) == expected
        assert study.sgd_steps(7, batch, m) == 7 * expected
