"""KernelRegressor: equals scikit-learn's KernelRidge, interpolates, jitter, estimator checks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import unit_rows
from sklearn.kernel_ridge import KernelRidge
from sklearn.utils.estimator_checks import parametrize_with_checks

import ntklab
from ntklab.kernels import laplacian, rbf
from ntklab.predict import KernelRegressor, cho_solve_jitter
from ntklab.sklearn_kernels import NTKKernel


@pytest.fixture
def data():
    X = unit_rows(40, 5, seed=41)
    y = np.cos(2 * X[:, 0]) - X[:, 2] ** 2
    return X, y, unit_rows(9, 5, seed=42)


@pytest.mark.parametrize("ridge", [1e-3, 0.5])
@pytest.mark.parametrize("kernel", [ntklab.Architecture(2, "paper").ntk, laplacian])
def test_equals_sklearn_kernel_ridge(kernel, ridge, data):
    X, y, Xt = data
    ours = KernelRegressor(kernel, ridge=ridge).fit(X, y)
    ref = KernelRidge(kernel="precomputed", alpha=ridge).fit(kernel(X), y)
    np.testing.assert_allclose(ours.predict(Xt), ref.predict(kernel(Xt, X)), rtol=1e-9)
    np.testing.assert_allclose(ours.dual_coef_, ref.dual_coef_, rtol=1e-9)
    assert ours.jitter_ == 0.0


def test_interpolates_with_zero_ridge(data):
    X, y, _ = data
    model = KernelRegressor(ntklab.Architecture(1, "jacot").ntk).fit(X, y)
    np.testing.assert_allclose(model.predict(X), y, rtol=1e-8, atol=1e-8)
    assert model.jitter_ == 0.0
    # with a ridge it no longer interpolates
    smooth = KernelRegressor(ntklab.Architecture(1, "jacot").ntk, ridge=1.0).fit(X, y)
    assert np.abs(smooth.predict(X) - y).max() > 1e-3


def test_multi_output_matches_columns(data):
    X, y, Xt = data
    Y = np.column_stack([y, 2 * y + 1])
    both = KernelRegressor(rbf, ridge=1e-2).fit(X, Y).predict(Xt)
    one = KernelRegressor(rbf, ridge=1e-2).fit(X, Y[:, 1]).predict(Xt)
    assert both.shape == (9, 2)
    np.testing.assert_allclose(both[:, 1], one, rtol=1e-12)


def test_does_not_modify_inputs(data):
    X, y, Xt = data
    X0, y0, Xt0 = X.copy(), y.copy(), Xt.copy()
    model = KernelRegressor(laplacian, ridge=0.1).fit(X, y)
    model.predict(Xt)
    assert np.array_equal(X, X0) and np.array_equal(y, y0) and np.array_equal(Xt, Xt0)
    X[0, 0] += 1.0  # the fitted model holds its own copy
    assert np.array_equal(model.X_fit_, X0)


def test_jitter_on_duplicated_rows(data):
    X, y, _ = data
    Xd = np.vstack([X, X[:3]])
    yd = np.concatenate([y, y[:3]])
    with pytest.warns(RuntimeWarning, match="jitter"):
        model = KernelRegressor(ntklab.Architecture(1, "paper").ntk).fit(Xd, yd)
    assert model.jitter_ > 0
    assert model.jitter_ < 1e-4 * np.mean(np.diag(ntklab.Architecture(1, "paper").ntk(Xd)))
    np.testing.assert_allclose(model.predict(X), y, atol=1e-3)


def test_cho_solve_jitter_smallest():
    K = np.ones((3, 3))  # rank one
    A, jitter = cho_solve_jitter(K, np.ones(3))
    assert jitter > 0
    np.testing.assert_allclose((K + jitter * np.eye(3)) @ A, np.ones(3), rtol=1e-8)
    A, jitter = cho_solve_jitter(np.diag([1.0, 2.0, 3.0]), np.ones(3))
    assert jitter == 0.0 and np.allclose(A, [1, 0.5, 1 / 3])


def test_bad_input(data):
    X, y, _ = data
    with pytest.raises(ValueError, match="ridge"):
        KernelRegressor(rbf, ridge=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="kernel"):
        KernelRegressor("ntk").fit(X, y)
    with pytest.raises(ValueError, match="shape"):
        KernelRegressor(lambda A, B=None: np.ones((2, 2))).fit(X, y)
    bad = X.copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="X"):
        KernelRegressor(rbf).fit(bad, y)
    model = KernelRegressor(rbf).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :3])


# scikit-learn's estimator checks, all of them: none is skipped by us (the only skip is
# scikit-learn's own array-API check, which needs SCIPY_ARRAY_API=1). The kernel is an
# ntklab NTK as a scikit-learn Kernel object, whose repr (hence the test ids, which must be
# identical across pytest-xdist workers) contains no memory address.
@parametrize_with_checks([KernelRegressor(kernel=NTKKernel(depth=1), ridge=1e-3)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
