"""Equivalence of trained networks with their NTK at the same training time."""

import numpy as np
import pytest

import ntklab
from ntklab.equivalence import EquivalenceResult, equivalence_metrics
from ntklab.predict import KernelRegressor, gradient_descent_mse
from ntklab.store import METRICS
from ntklab.training import train, train_ensemble

CPU = "cpu"
REQUIRED = ("nn_lin_rms", "nn_lin_rel", "nn_mean_rms", "nn_mean_rel", "kernel_drift",
            "finite_width_error", "ntk_same_t_rmse", "ntk_inf_rmse", "rmse", "train_rmse")  # fmt: skip


def sphere_data(seed, m=20, n_test=20, d=5):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m + n_test, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.sin(2.0 * X[:, 0]) + X[:, 1]
    return X[:m], y[:m], X[m:], y[m:]


def test_metrics_are_consistent():
    X, y, Xt, yt = sphere_data(0)
    arch = ntklab.Architecture(1, "paper")
    net = arch.network(256, seed=0, in_features=5, device=CPU)
    res = train(net, X, y, lr="auto", epochs=60, record_every=10, X_test=Xt, y_test=yt, device=CPU)
    eq = equivalence_metrics(res, arch, X, y, Xt, yt, max_kernel_points=12, elin=True)
    assert isinstance(eq, EquivalenceResult)
    assert set(REQUIRED) <= set(eq.metrics) and set(REQUIRED) <= set(METRICS)
    met = eq.metrics
    f_nn = res.predict(Xt)
    f0, f0t = net.predict(X), net.predict(Xt)
    K, Ks = arch.ntk(X), arch.ntk(Xt, X)
    _, f_lin = gradient_descent_mse(K, Ks, y, lr=res.lr, steps=60, f0_train=f0, f0_test=f0t)
    assert met["nn_lin_rms"] == pytest.approx(np.sqrt(np.mean((f_nn - f_lin) ** 2)), rel=1e-5)
    assert met["nn_lin_rel"] == pytest.approx(
        met["nn_lin_rms"] / np.sqrt(np.mean(f_lin**2)), rel=1e-5
    )
    assert met["ntk_same_t_rmse"] == pytest.approx(np.sqrt(np.mean((f_lin - yt) ** 2)), rel=1e-6)
    kr = KernelRegressor(arch.ntk).fit(X, y).predict(Xt)
    assert met["ntk_mean_inf_rmse"] == pytest.approx(np.sqrt(np.mean((kr - yt) ** 2)), rel=1e-8)
    assert met["rmse"] == pytest.approx(res.test_rmse[-1], rel=1e-6)
    assert met["train_rmse"] == pytest.approx(np.sqrt(res.train_loss[-1]), rel=1e-4)
    # at width 256 the network is close to, but not exactly, its linearization
    assert 1e-4 < met["nn_lin_rel"] < 0.3
    assert 0.0 < met["kernel_drift"] < 0.3 and 0.0 < met["finite_width_error"] < 0.5
    assert 0.0 < met["nn_elin_rel"] < 0.3
    ep, curve = eq.curves["curve_ntk_test_rmse"]
    np.testing.assert_array_equal(ep, res.epochs)
    assert curve[-1] == pytest.approx(met["ntk_same_t_rmse"], rel=1e-12)
    np.testing.assert_allclose(eq.curves["curve_test_rmse"][1], res.test_rmse)
    np.testing.assert_allclose(eq.curves["curve_train_loss"][1], res.train_loss)
    # the trial's own kernels and eigendecomposition give the same measures, computing none
    given = equivalence_metrics(
        res, arch, X, y, Xt, yt, max_kernel_points=12, kernels=(K, Ks), eig=np.linalg.eigh(K)
    )
    for key, value in met.items():
        assert given.metrics[key] == pytest.approx(value, rel=1e-12, nan_ok=True), key
    # ... and it is those that are used: a different kernel gives a different prediction
    other = equivalence_metrics(
        res,
        arch,
        X,
        y,
        Xt,
        yt,
        max_kernel_points=12,
        kernels=(2 * K, 2 * Ks),
        eig=np.linalg.eigh(2 * K),
    )
    assert other.metrics["ntk_same_t_rmse"] != pytest.approx(met["ntk_same_t_rmse"], rel=1e-6)


def test_untrained_network_is_its_own_linearization():
    X, y, Xt, yt = sphere_data(1)
    arch = ntklab.Architecture(2, "jacot")
    net = arch.network(64, seed=3, in_features=5, device=CPU)
    res = train(net, X, y, lr=1.0, epochs=0, device=CPU)
    met = equivalence_metrics(res, arch, X, y, Xt, yt).metrics
    assert met["nn_lin_rms"] < 1e-6 and met["kernel_drift"] == 0.0
    assert met["nn_mean_rms"] == pytest.approx(np.sqrt(np.mean(net.predict(Xt) ** 2)), rel=1e-6)


def test_diverged_network_gives_nan_not_an_error():
    X, y, Xt, yt = sphere_data(2)
    arch = ntklab.Architecture(1, "paper")
    lr = 5 * ntklab.training.auto_lr(arch.ntk(X))
    res = train(arch.network(64, seed=0, in_features=5, device=CPU), X, y, lr=lr, epochs=300,
                device=CPU)  # fmt: skip
    assert res.diverged
    with pytest.warns(RuntimeWarning, match="stability limit"):
        met = equivalence_metrics(res, arch, X, y, Xt, yt).metrics
    assert np.isnan(met["nn_lin_rms"]) and np.isnan(met["kernel_drift"]) and np.isnan(met["rmse"])
    assert np.isfinite(met["finite_width_error"]) and np.isfinite(met["ntk_mean_inf_rmse"])


def test_bad_input():
    X, y, Xt, yt = sphere_data(0)
    arch = ntklab.Architecture(1, "paper")
    res = train(arch.network(16, seed=0, in_features=5, device=CPU), X, y, lr=1.0, epochs=1,
                device=CPU)  # fmt: skip
    with pytest.raises(ValueError, match="result must be a TrainResult"):
        equivalence_metrics("res", arch, X, y, Xt, yt)
    with pytest.raises(ValueError, match="X_test has 4 features"):
        equivalence_metrics(res, arch, X, y, Xt[:, :4], yt)
    with pytest.raises(ValueError, match="y_train has 3 entries"):
        equivalence_metrics(res, arch, X, y[:3], Xt, yt)
    with pytest.raises(ValueError, match="max_kernel_points must be an integer >= 2"):
        equivalence_metrics(res, arch, X, y, Xt, yt, max_kernel_points=1)


def _slope(widths, values) -> float:
    return float(np.polyfit(np.log(widths), np.log(values), 1)[0])


@pytest.mark.slow
def test_width_sweep_approaches_the_linearized_network():
    """Lee et al. 2019: |f_NN - f_lin| and the kernel drift shrink like width^(-1/2).

    m = 20 points on the sphere in d = 5, `paper` depth 1, 8 seeds per width averaged, trained
    200 epochs at lr = auto. Negative controls: linearizing with the `jacot` NTK (a wrong
    parameterization) or dropping the f0 term (the mean prediction) must not shrink.
    """
    X, y, Xt, yt = sphere_data(0)
    arch = ntklab.Architecture(1, "paper")
    wrong = ntklab.Architecture(1, "jacot")
    widths = [512, 1024, 2048, 4096, 8192]
    keys = ("nn_lin_rms", "kernel_drift", "nn_mean_rms", "nn_elin_rms")
    rows, wrong_rows = [], []
    for width in widths:
        ens = train_ensemble(arch, width, X, y, seeds=range(8), lr="auto", epochs=200, device=CPU)
        assert not any(r.diverged for r in ens)
        mets = [equivalence_metrics(r, arch, X, y, Xt, yt, elin=True).metrics for r in ens]
        rows.append([np.mean([m[k] for m in mets]) for k in keys])
        wrong_rows.append(np.mean([equivalence_metrics(r, wrong, X, y, Xt, yt).metrics["nn_lin_rms"]
                                   for r in ens]))  # fmt: skip
    rows = np.array(rows)
    lin, drift, mean, elin = (_slope(widths, rows[:, j]) for j in range(4))
    assert -0.75 <= lin <= -0.3, f"NN-linearized slope {lin:.3f}"
    assert -0.75 <= elin <= -0.3, f"NN-linearized (empirical Theta_0) slope {elin:.3f}"
    assert -0.75 <= drift <= -0.3, f"kernel drift slope {drift:.3f}"
    # negative controls
    assert _slope(widths, wrong_rows) > -0.25, "a wrong parameterization must not converge"
    assert mean > -0.25, "without f0 the discrepancy must not shrink"
    assert rows[-1, 0] < 0.5 * rows[0, 0]
