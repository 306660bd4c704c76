"""Learnable σ_w, β, σ_w1 of the scikit-learn NNGP/NTK kernels: analytic gradients against
finite differences (every hyperparameter, depths 1–3, every parameterization), the
hyperparameter plumbing, and a GP that learns them."""

from __future__ import annotations

import numpy as np
import pytest

import ntklab
from ntklab.kernel_gradients import kernels_and_gradients
from ntklab.sklearn_kernels import NNGPKernel, NTKKernel

RNG = np.random.default_rng(3)
X = RNG.standard_normal((6, 3))
Z = RNG.standard_normal((4, 3))

CASES = [
    (cls, depth, param, w1)
    for cls in (NTKKernel, NNGPKernel)
    for depth in (1, 2, 3)
    for param, w1 in (("jacot", 0.7), ("paper", 0.7), ("paper", None), ("arora", None))
]


@pytest.mark.parametrize("cls, depth, param, w1", CASES)
def test_gradient_matches_central_differences(cls, depth, param, w1):
    """dK/dlog θ for every free hyperparameter equals the central difference in log θ
    (step h = 1e-5: truncation O(h²) ~ 1e-10, round-off ~ 1e-16 / h ~ 1e-11, relative)."""
    kernel = cls(depth, param, sigma_w=1.3, sigma_b=0.4, sigma_w1=w1)
    names = [h.name for h in kernel.hyperparameters if not h.fixed]
    expected = {"sigma_w", "sigma_b"} | ({"sigma_w1"} if w1 is not None else set())
    assert set(names) == expected
    K, dK = kernel(X, eval_gradient=True)
    assert dK.shape == (6, 6, len(names))
    np.testing.assert_allclose(K, kernel(X), rtol=1e-12, atol=1e-14)  # = the compiled pass
    h = 1e-5
    for i in range(len(names)):
        step = np.zeros(len(names))
        step[i] = h
        plus = kernel.clone_with_theta(kernel.theta + step)(X)
        minus = kernel.clone_with_theta(kernel.theta - step)(X)
        fd = (plus - minus) / (2 * h)
        scale = np.abs(fd).max() + np.abs(K).max() * 1e-3
        assert np.abs(dK[..., i] - fd).max() < 1e-7 * scale, names[i]


def test_cross_gradients_match_differences_and_tie_sigma_w1():
    """The pass on (X, Z) differentiates K(X, Z) too; with σ_w1 tied (None), dK/dσ_w is the
    sum of the untied σ_w and σ_w1 derivatives."""
    arch = ntklab.Architecture(2, "paper", sigma_w=1.1, sigma_b=0.3, sigma_w1=1.1)
    S, T, dS, dT = kernels_and_gradients(arch, X, Z)
    h = 1e-6
    for i, name in enumerate(("sigma_w", "sigma_b", "sigma_w1")):
        up = ntklab.Architecture(
            2,
            "paper",
            **{"sigma_w": 1.1, "sigma_b": 0.3, "sigma_w1": 1.1, name: getattr(arch, name) + h},
        )
        dn = ntklab.Architecture(
            2,
            "paper",
            **{"sigma_w": 1.1, "sigma_b": 0.3, "sigma_w1": 1.1, name: getattr(arch, name) - h},
        )
        (sp, tp), (sm, tm) = up.kernels(X, Z), dn.kernels(X, Z)
        assert np.abs((tp - tm) / (2 * h) - dT[..., i]).max() < 1e-7 * np.abs(T).max()
        assert np.abs((sp - sm) / (2 * h) - dS[..., i]).max() < 1e-7 * np.abs(S).max()
    tied = NTKKernel(2, "paper", sigma_w=1.1, sigma_b=0.3)
    _, dK = tied(X, eval_gradient=True)
    _, _, _, dT_x = kernels_and_gradients(arch, X)
    np.testing.assert_allclose(dK[..., 1], 1.1 * (dT_x[..., 0] + dT_x[..., 2]), rtol=1e-12)


def test_hyperparameter_plumbing():
    k = NTKKernel(2, "arora")  # beta = 0: fixed (log 0 has no value), no sigma_w1
    assert [h.name for h in k.hyperparameters if not h.fixed] == ["sigma_w"]
    np.testing.assert_allclose(k.theta, [np.log(np.sqrt(2))])
    k2 = k.clone_with_theta(np.log([1.5]))
    assert k2.sigma_w == pytest.approx(1.5) and k2.architecture.sigma_b == 0.0
    fixed = NTKKernel(1, sigma_w_bounds="fixed", sigma_b_bounds="fixed")
    K, dK = fixed(X, eval_gradient=True)
    assert dK.shape == (6, 6, 0) and fixed.theta.size == 0
    assert NTKKernel(1).bounds.shape == (2, 2)
    with pytest.raises(ValueError, match="eval_gradient"):
        NTKKernel(1)(X, Z, eval_gradient=True)


def test_gp_learns_sigma_b_by_marginal_likelihood():
    """Data from a GP with σ_b = 1: the fit moves σ_b from its start 0.1 towards it, and
    the optimum has a zero gradient of the log marginal likelihood."""
    from sklearn.gaussian_process import GaussianProcessRegressor

    rng = np.random.default_rng(0)
    Xg = ntklab.data.sphere(60, 3, rng) * rng.uniform(0.5, 2.0, size=(60, 1))
    truth = ntklab.Architecture(1, "jacot", sigma_w=1.0, sigma_b=1.0).ntk(Xg)
    y = np.linalg.cholesky(truth + 1e-8 * np.eye(60)) @ rng.standard_normal(60)
    kernel = NTKKernel(1, "jacot", sigma_w=1.0, sigma_b=0.1)
    gp = GaussianProcessRegressor(kernel, alpha=1e-6, optimizer="fmin_l_bfgs_b").fit(Xg, y)
    learned = gp.kernel_
    assert learned.sigma_b > 0.3
    lml, grad = gp.log_marginal_likelihood(learned.theta, eval_gradient=True)
    at_bound = np.isclose(learned.theta, learned.bounds[:, 0]) | np.isclose(
        learned.theta, learned.bounds[:, 1]
    )
    assert np.all(np.abs(grad[~at_bound]) < 1e-2 * max(1.0, abs(lml)))
