"""Trial data: the unit sphere, GP targets, splits, the diabetes data set."""

from __future__ import annotations

import numpy as np
import pytest

import ntklab
from ntklab.data import gp_sample, load_dataset, real, simulate, sphere, split


def test_sphere_rows_have_unit_norm_and_follow_the_seed():
    X = sphere(50, 7, np.random.default_rng(3))
    assert X.shape == (50, 7)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(X, sphere(50, 7, np.random.default_rng(3)))
    assert not np.array_equal(X, sphere(50, 7, np.random.default_rng(4)))
    # uniform on the sphere: E[x x^T] = I / d; check the mean of x_1^2 against its standard error
    Y = sphere(20000, 5, np.random.default_rng(0))
    sq = Y[:, 0] ** 2
    assert abs(sq.mean() - 1 / 5) < 4 * sq.std() / np.sqrt(len(sq))


def test_gp_sample_has_the_kernels_covariance():
    K = np.array([[1.0, 0.6, -0.2], [0.6, 2.0, 0.3], [-0.2, 0.3, 0.5]])
    rng = np.random.default_rng(1)
    draws = np.array([gp_sample(K, rng)[0] for _ in range(20000)])
    cov = draws.T @ draws / len(draws)
    # standard error of an empirical covariance entry: sqrt((K_ii K_jj + K_ij^2) / N)
    se = np.sqrt((np.outer(np.diag(K), np.diag(K)) + K**2) / len(draws))
    assert np.all(np.abs(cov - K) < 4.5 * se)
    assert gp_sample(K, np.random.default_rng(1))[1] == 0.0


def test_gp_sample_adds_jitter_only_when_needed():
    v = np.array([1.0, 2.0, -1.0])
    K = np.outer(v, v)  # rank 1: Cholesky needs jitter, the first try: 1e-12 x mean diagonal 2
    with pytest.warns(RuntimeWarning, match=r"added jitter 2e-12 \(1e-12 × its mean diagonal 2\)"):
        y, jitter = gp_sample(K, np.random.default_rng(0))
    assert jitter == 2e-12
    # the draw lies (up to the jitter) on the span of v
    resid = y - v * (v @ y) / (v @ v)
    assert np.linalg.norm(resid) < 1e-2
    with pytest.raises(np.linalg.LinAlgError, match="not positive semi-definite"):
        gp_sample(-np.eye(3), np.random.default_rng(0))
    # an eigenvalue of -1e-5 on a mean diagonal of 1 needs more than the cap, 1e-6 x 1
    with pytest.raises(
        np.linalg.LinAlgError,
        match=r"^the generating kernel matrix is not positive semi-definite even with jitter "
        r"1e-06 \(1e-06 × its mean diagonal, the most it adds\); check data.generator",
    ):
        gp_sample(np.diag([1.5, 1.5 + 1e-5, -1e-5]), np.random.default_rng(0))


def test_split_is_a_partition():
    train, test = split(20, 15, np.random.default_rng(0))
    assert len(train) == 15 and len(test) == 5
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(20))
    with pytest.raises(ValueError, match="n_train = 20 must be smaller than n = 20"):
        split(20, 20, np.random.default_rng(0))


def test_simulate_uses_the_generating_kernel_and_the_rng():
    arch = ntklab.Architecture(1, "paper")
    data, K, jitter = simulate(
        n=30, d=4, n_train=20, kernel=arch.ntk, noise=0.0, rng=np.random.default_rng(5)
    )
    np.testing.assert_allclose(K, arch.ntk(data.X), rtol=1e-12, atol=0)
    assert data.X_train.shape == (20, 4) and data.y_test.shape == (10,)
    again, _, _ = simulate(
        n=30, d=4, n_train=20, kernel=arch.ntk, noise=0.0, rng=np.random.default_rng(5)
    )
    np.testing.assert_array_equal(data.y, again.y)
    np.testing.assert_array_equal(data.train, again.train)
    # y = L z with the same z: adding noise changes y by exactly noise * (next normals)
    noisy, _, _ = simulate(
        n=30, d=4, n_train=20, kernel=arch.ntk, noise=0.5, rng=np.random.default_rng(5)
    )
    rng = np.random.default_rng(5)
    rng.standard_normal((30, 4))
    rng.standard_normal(30)
    np.testing.assert_allclose(
        noisy.y - data.y, 0.5 * rng.standard_normal(30), rtol=1e-12, atol=1e-14
    )


def test_diabetes_is_standardized_on_the_sphere():
    X, y = load_dataset("diabetes")
    assert X.shape == (442, 10)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-12)
    assert abs(y.mean()) < 1e-12 and abs(y.std() - 1.0) < 1e-12
    sub = real("diabetes", n=100, n_train=80, rng=np.random.default_rng(0))
    assert sub.X.shape == (100, 10) and len(sub.train) == 80
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_dataset("mnist")


def test_project_to_sphere_unit_rows_and_zero_row_error():
    X = np.array([[3.0, 4.0], [0.0, -2.0]])
    P = ntklab.data.project_to_sphere(X)
    np.testing.assert_allclose(P, [[0.6, 0.8], [0.0, -1.0]], rtol=1e-15)
    assert X[0, 0] == 3.0  # input untouched
    with pytest.raises(ValueError, match="row 1 is zero"):
        ntklab.data.project_to_sphere([[1.0, 0.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="NaN"):
        ntklab.data.project_to_sphere([[np.nan, 1.0]])
