"""Finite-time NTK predictor: ntklab.predict.gradient_descent_mse(_ensemble) (SPEC §3)."""

import numpy as np
import pytest

import ntklab
from ntklab.data import sphere
from ntklab.predict import (
    KernelRegressor,
    gradient_descent_mse,
    gradient_descent_mse_ensemble,
)


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(7)
    X, Xt = sphere(12, 4, rng), sphere(5, 4, rng)
    y = np.sin(2.0 * X[:, 0]) + X[:, 1]
    arch = ntklab.Architecture(2, "paper")
    nngp, ntk = arch.kernels(X)
    nngp_s, ntk_s = arch.kernels(Xt, X)
    nngp_ss = arch.nngp(Xt)
    lr = 0.5 * X.shape[0] / np.linalg.eigvalsh(ntk)[-1]
    f0, f0t = rng.standard_normal(12), rng.standard_normal(5)
    return dict(X=X, Xt=Xt, y=y, arch=arch, ntk=ntk, ntk_s=ntk_s, nngp=nngp, nngp_s=nngp_s,
                nngp_ss=nngp_ss, lr=lr, f0=f0, f0t=f0t)  # fmt: skip


def manual_gd(p, steps, f0=None, f0t=None):
    """Iterate f <- f - (2 lr/m) Theta (f - y) step by step (the definition, no eigenbasis)."""
    m = p["y"].shape[0]
    f = np.zeros(m) if f0 is None else f0.copy()
    g = np.zeros(p["Xt"].shape[0]) if f0t is None else f0t.copy()
    for _ in range(steps):
        r = f - p["y"]
        f, g = f - 2 * p["lr"] / m * p["ntk"] @ r, g - 2 * p["lr"] / m * p["ntk_s"] @ r
    return f, g


def test_steps_inf_equals_kernel_regression(problem):
    p = problem
    f_train, f_test = gradient_descent_mse(p["ntk"], p["ntk_s"], p["y"], lr=p["lr"], steps=np.inf)
    expected = KernelRegressor(p["arch"].ntk, alpha=0.0).fit(p["X"], p["y"]).predict(p["Xt"])
    np.testing.assert_allclose(f_test, expected, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(f_train, p["y"], atol=1e-10)
    # with f0 the limit is f0 + kernel regression on the residual y - f0
    _, f_test0 = gradient_descent_mse(
        p["ntk"], p["ntk_s"], p["y"], lr=p["lr"], steps=np.inf, f0_train=p["f0"], f0_test=p["f0t"]
    )
    resid = KernelRegressor(p["arch"].ntk).fit(p["X"], p["y"] - p["f0"]).predict(p["Xt"])
    np.testing.assert_allclose(f_test0, p["f0t"] + resid, rtol=1e-9, atol=1e-10)


def test_steps_zero_returns_f0(problem):
    p = problem
    f_train, f_test = gradient_descent_mse(
        p["ntk"], p["ntk_s"], p["y"], lr=p["lr"], steps=0, f0_train=p["f0"], f0_test=p["f0t"]
    )
    np.testing.assert_allclose(f_train, p["f0"], atol=1e-12)
    np.testing.assert_allclose(f_test, p["f0t"], atol=1e-12)
    f_train, f_test = gradient_descent_mse(p["ntk"], p["ntk_s"], p["y"], lr=p["lr"], steps=0)
    np.testing.assert_allclose(f_train, 0.0, atol=1e-12)
    np.testing.assert_allclose(f_test, 0.0, atol=1e-12)


def test_one_step_by_hand():
    K = np.array([[2.0, 1.0], [1.0, 3.0]])
    Ks = np.array([[1.0, 0.5]])
    y = np.array([1.0, -1.0])
    f0 = np.array([0.5, 0.0])
    f0t = np.array([0.25])
    lr = 0.1  # a = 2 lr / m = 0.1
    # residual f0 - y = (-0.5, 1); K r = (-1 + 1, -0.5 + 3) = (0, 2.5); Ks r = -0.5 + 0.5 = 0
    f_train, f_test = gradient_descent_mse(K, Ks, y, lr=lr, steps=1, f0_train=f0, f0_test=f0t)
    np.testing.assert_allclose(f_train, [0.5, -0.25], atol=1e-14)
    np.testing.assert_allclose(f_test, [0.25], atol=1e-14)
    # without f0: residual -y = (-1, 1); K r = (-1, 2); Ks r = -0.5
    f_train, f_test = gradient_descent_mse(K, Ks, y, lr=lr, steps=1)
    np.testing.assert_allclose(f_train, [0.1, -0.2], atol=1e-14)
    np.testing.assert_allclose(f_test, [0.05], atol=1e-14)


def test_matches_step_by_step_iteration(problem):
    p = problem
    for steps in (1, 3, 40):
        f, g = manual_gd(p, steps, p["f0"], p["f0t"])
        f_train, f_test = gradient_descent_mse(
            p["ntk"],
            p["ntk_s"],
            p["y"],
            lr=p["lr"],
            steps=steps,
            f0_train=p["f0"],
            f0_test=p["f0t"],
        )
        np.testing.assert_allclose(f_train, f, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(f_test, g, rtol=1e-9, atol=1e-11)


def test_array_steps_equal_scalar_loop(problem):
    p = problem
    steps = np.array([0, 1, 7, 100, np.inf])
    kw = dict(lr=p["lr"], f0_train=p["f0"], f0_test=p["f0t"])
    F_train, F_test = gradient_descent_mse(p["ntk"], p["ntk_s"], p["y"], steps=steps, **kw)
    assert F_train.shape == (5, 12) and F_test.shape == (5, 5)
    for s, ft, fs in zip(steps, F_train, F_test, strict=True):
        a, b = gradient_descent_mse(p["ntk"], p["ntk_s"], p["y"], steps=s, **kw)
        np.testing.assert_allclose(ft, a, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(fs, b, rtol=1e-12, atol=1e-13)


def test_singular_kernel_is_pseudo_inverse():
    """A duplicated training point: T = inf fits both copies and stays finite."""
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    arch = ntklab.Architecture(1, "paper")
    K, Ks = arch.ntk(X), arch.ntk(np.array([[0.6, 0.8]]), X)
    y = np.array([1.0, 2.0, 1.0])
    f_train, f_test = gradient_descent_mse(K, Ks, y, lr=0.1, steps=np.inf)
    np.testing.assert_allclose(f_train, y, atol=1e-9)
    expected = KernelRegressor(arch.ntk).fit(X[:2], y[:2]).predict(np.array([[0.6, 0.8]]))
    np.testing.assert_allclose(f_test, expected, rtol=1e-8)


def test_ensemble_mean_equals_gd_without_f0(problem):
    p = problem
    steps = np.array([0, 5, 50, np.inf])
    mean, var = gradient_descent_mse_ensemble(
        p["ntk"], p["ntk_s"], p["y"], lr=p["lr"], steps=steps, nngp_train=p["nngp"],
        nngp_test_train=p["nngp_s"],
    )  # fmt: skip
    assert var is None
    _, expected = gradient_descent_mse(p["ntk"], p["ntk_s"], p["y"], lr=p["lr"], steps=steps)
    np.testing.assert_allclose(mean, expected, rtol=1e-12, atol=1e-13)


def test_ensemble_variance_at_zero_is_nngp_prior(problem):
    p = problem
    diag = np.diag(p["nngp_ss"])
    _, var = gradient_descent_mse_ensemble(
        p["ntk"], p["ntk_s"], p["y"], lr=p["lr"], steps=0, nngp_train=p["nngp"],
        nngp_test_train=p["nngp_s"], nngp_test_diag=diag,
    )  # fmt: skip
    np.testing.assert_allclose(var, diag, rtol=1e-12)


def test_ensemble_variance_matches_covariance_of_linear_map(problem):
    """f_T(x*) = A_T y + f0(x*) - A_T f0(X); read A_T off gradient_descent_mse column by column
    and propagate the NNGP covariance of (f0(X), f0(X*)) through it."""
    p = problem
    m, n = 12, 5
    diag = np.diag(p["nngp_ss"])
    for steps in (3, 60, np.inf):
        A = np.empty((n, m))
        for j in range(m):
            e = np.zeros(m)
            e[j] = 1.0
            _, col = gradient_descent_mse(
                p["ntk"], p["ntk_s"], np.zeros(m), lr=p["lr"], steps=steps, f0_train=e,
                f0_test=np.zeros(n),
            )  # fmt: skip
            A[:, j] = -col
        M = np.hstack([-A, np.eye(n)])  # f_T - mean = M @ (f0(X), f0(X*))
        joint = np.block([[p["nngp"], p["nngp_s"].T], [p["nngp_s"], p["nngp_ss"]]])
        expected = np.diag(M @ joint @ M.T)
        _, var = gradient_descent_mse_ensemble(
            p["ntk"], p["ntk_s"], p["y"], lr=p["lr"], steps=steps, nngp_train=p["nngp"],
            nngp_test_train=p["nngp_s"], nngp_test_diag=diag,
        )  # fmt: skip
        np.testing.assert_allclose(var, expected, rtol=1e-8, atol=1e-12)
        assert np.all(var < diag)  # training on correlated points reduces the variance


def test_ensemble_variance_vanishes_on_training_points_at_infinity(problem):
    p = problem
    _, var = gradient_descent_mse_ensemble(
        p["ntk"], p["ntk"], p["y"], lr=p["lr"], steps=np.inf, nngp_train=p["nngp"],
        nngp_test_train=p["nngp"], nngp_test_diag=np.diag(p["nngp"]),
    )  # fmt: skip
    np.testing.assert_allclose(var, 0.0, atol=1e-8 * np.max(np.diag(p["nngp"])))


def test_unstable_lr_warns_and_diverges(problem):
    p = problem
    lam_max = np.linalg.eigvalsh(p["ntk"])[-1]
    with pytest.warns(RuntimeWarning, match="stability limit"):
        f_train, _ = gradient_descent_mse(
            p["ntk"], p["ntk_s"], p["y"], lr=1.5 * 12 / lam_max, steps=200
        )
    assert np.max(np.abs(f_train)) > 1e6


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=-1), "steps must be >= 0"),
        (dict(steps=np.nan), "steps must be >= 0"),
        (dict(steps=[[1, 2]]), "1-D"),
        (dict(steps="many"), "steps must be a number"),
        (dict(lr=0.0), "lr must be >"),
        (dict(lr=-1.0), "lr must be >"),
        (dict(f0_train=np.zeros(3)), "f0_train has 3 entries"),
        (dict(f0_test=np.full(5, np.nan)), "f0_test contains NaN"),
    ],
)
def test_bad_input(problem, kwargs, match):
    p = problem
    args = dict(lr=p["lr"], steps=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        gradient_descent_mse(p["ntk"], p["ntk_s"], p["y"], **args)


def test_bad_shapes(problem):
    p = problem
    with pytest.raises(ValueError, match="ntk_train has shape"):
        gradient_descent_mse(p["ntk"][:5, :5], p["ntk_s"], p["y"], lr=1.0, steps=1)
    with pytest.raises(ValueError, match="ntk_test_train has 11 features"):
        gradient_descent_mse(p["ntk"], p["ntk_s"][:, :11], p["y"], lr=1.0, steps=1)
    with pytest.raises(ValueError, match="nngp_test_train has 2 rows"):
        gradient_descent_mse_ensemble(
            p["ntk"], p["ntk_s"], p["y"], lr=1.0, steps=1, nngp_train=p["nngp"],
            nngp_test_train=p["nngp_s"][:2],
        )  # fmt: skip
