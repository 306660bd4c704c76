"""Independent cross-checks from the correctness review (SPEC §3).

The finite-time predictor is compared with gradient descent run *in parameter space* on an
explicit linear model :math:`f(x) = f_0(x) + \\phi(x)^\\top \\theta` whose kernel
:math:`\\Theta = \\Phi \\Phi^\\top` is rank-deficient and has one small but non-null
eigenvalue, at a learning rate between half the stability limit and the limit
(:math:`1 < 2\\eta\\lambda_{\\max}/m < 2`, the oscillating branch that ``lr = "auto"`` never
reaches), with a non-zero :math:`f_0`.
"""

import numpy as np
import pytest

from ntklab.predict import gradient_descent_mse, gradient_descent_mse_ensemble


@pytest.fixture(scope="module")
def linear_model():
    rng = np.random.default_rng(3)
    m, n, p = 12, 5, 4  # p < m: Theta(X, X) has rank 4
    Phi = rng.standard_normal((m + n, p))
    Phi[:, 0] *= 1e-3  # a small, non-null eigenvalue (~1e-5 of the largest)
    f0 = rng.standard_normal(m + n)
    y = rng.standard_normal(m)
    K = Phi[:m] @ Phi[:m].T
    lr = 0.9 * m / np.linalg.eigvalsh(K)[-1]  # 2 lr lambda_max / m = 1.8
    return dict(m=m, Phi=Phi, f0=f0, y=y, K=K, Ks=Phi[m:] @ Phi[:m].T, lr=lr)


def _parameter_gd(p, steps):
    """theta <- theta - lr * grad of (1/m) sum (f0 + Phi theta - y)^2, step by step."""
    m, Phi = p["m"], p["Phi"]
    theta = np.zeros(Phi.shape[1])
    for _ in range(steps):
        r = p["f0"][:m] + Phi[:m] @ theta - p["y"]
        theta -= p["lr"] * (2.0 / m) * Phi[:m].T @ r
    f = p["f0"] + Phi @ theta
    return f[:m], f[m:]


@pytest.mark.parametrize("steps", [1, 2, 7, 300])
def test_matches_parameter_space_gd_in_the_oscillating_regime(linear_model, steps):
    p = linear_model
    m = p["m"]
    f_train, f_test = gradient_descent_mse(
        p["K"], p["Ks"], p["y"], lr=p["lr"], steps=steps,
        f0_train=p["f0"][:m], f0_test=p["f0"][m:],
    )  # fmt: skip
    g_train, g_test = _parameter_gd(p, steps)
    np.testing.assert_allclose(f_train, g_train, rtol=0, atol=1e-10)
    np.testing.assert_allclose(f_test, g_test, rtol=0, atol=1e-10)


def test_steps_inf_is_the_minimum_norm_gradient_flow_limit(linear_model):
    """GD from theta = 0 converges to the minimum-norm least-squares theta (null space untouched)."""
    p = linear_model
    m, Phi = p["m"], p["Phi"]
    theta = np.linalg.lstsq(Phi[:m], p["y"] - p["f0"][:m], rcond=None)[0]
    f_train, f_test = gradient_descent_mse(
        p["K"], p["Ks"], p["y"], lr=p["lr"], steps=np.inf,
        f0_train=p["f0"][:m], f0_test=p["f0"][m:],
    )  # fmt: skip
    np.testing.assert_allclose(f_train, p["f0"][:m] + Phi[:m] @ theta, rtol=0, atol=1e-7)
    np.testing.assert_allclose(f_test, p["f0"][m:] + Phi[m:] @ theta, rtol=0, atol=1e-7)


@pytest.mark.parametrize("steps", [3, 40, np.inf])
def test_ensemble_mean_and_variance_in_the_oscillating_regime(linear_model, steps):
    """Mean A_T y and variance of A_T y + f0(x*) - A_T f0(X) for f0 ~ N(0, G), G a full matrix."""
    p = linear_model
    m = p["m"]
    rng = np.random.default_rng(5)
    B = rng.standard_normal((m + 5, m + 5))
    G = B @ B.T / (m + 5)  # a generic positive-definite prior covariance of f0
    A = np.stack(
        [gradient_descent_mse(p["K"], p["Ks"], e, lr=p["lr"], steps=steps)[1] for e in np.eye(m)],
        axis=1,
    )  # A_T column by column: the test outputs for y = e_j, f0 = 0
    Gxx, Gtx, Gtt = G[:m, :m], G[m:, :m], G[m:, m:]
    cov = Gtt + A @ Gxx @ A.T - A @ Gtx.T - Gtx @ A.T
    mean, var = gradient_descent_mse_ensemble(
        p["K"], p["Ks"], p["y"], lr=p["lr"], steps=steps, nngp_train=Gxx,
        nngp_test_train=Gtx, nngp_test_diag=np.diag(Gtt),
    )  # fmt: skip
    np.testing.assert_allclose(mean, A @ p["y"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(var, np.diag(cov), rtol=0, atol=1e-10)
