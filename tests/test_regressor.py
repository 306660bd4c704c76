"""KernelRegressor: equals scikit-learn's KernelRidge, interpolates, alpha (and its deprecated
alias ridge), jitter (warning, cap, error), estimator checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import unit_rows
from sklearn.kernel_ridge import KernelRidge
from sklearn.utils.estimator_checks import parametrize_with_checks

import ntklab
from ntklab.kernels import laplacian, rbf
from ntklab.predict import (
    MAX_RELATIVE_JITTER,
    KernelRegressor,
    SingularKernelError,
    cho_solve_jitter,
    cholesky_jitter,
)
from ntklab.sklearn_kernels import NTKKernel


@pytest.fixture
def data():
    X = unit_rows(40, 5, seed=41)
    y = np.cos(2 * X[:, 0]) - X[:, 2] ** 2
    return X, y, unit_rows(9, 5, seed=42)


@pytest.mark.parametrize("alpha", [1e-3, 0.5])
@pytest.mark.parametrize("kernel", [ntklab.Architecture(2, "paper").ntk, laplacian])
def test_equals_sklearn_kernel_ridge(kernel, alpha, data):
    X, y, Xt = data
    ours = KernelRegressor(kernel, alpha=alpha).fit(X, y)
    ref = KernelRidge(kernel="precomputed", alpha=alpha).fit(kernel(X), y)
    np.testing.assert_allclose(ours.predict(Xt), ref.predict(kernel(Xt, X)), rtol=1e-9)
    np.testing.assert_allclose(ours.dual_coef_, ref.dual_coef_, rtol=1e-9)
    assert ours.jitter_ == 0.0


def test_interpolates_with_zero_ridge(data):
    X, y, _ = data
    model = KernelRegressor(ntklab.Architecture(1, "jacot").ntk).fit(X, y)
    np.testing.assert_allclose(model.predict(X), y, rtol=1e-8, atol=1e-8)
    assert model.jitter_ == 0.0
    # with a ridge it no longer interpolates
    smooth = KernelRegressor(ntklab.Architecture(1, "jacot").ntk, alpha=1.0).fit(X, y)
    assert np.abs(smooth.predict(X) - y).max() > 1e-3


def test_multi_output_matches_columns(data):
    X, y, Xt = data
    Y = np.column_stack([y, 2 * y + 1])
    both = KernelRegressor(rbf, alpha=1e-2).fit(X, Y).predict(Xt)
    one = KernelRegressor(rbf, alpha=1e-2).fit(X, Y[:, 1]).predict(Xt)
    assert both.shape == (9, 2)
    np.testing.assert_allclose(both[:, 1], one, rtol=1e-12)


def test_does_not_modify_inputs(data):
    X, y, Xt = data
    X0, y0, Xt0 = X.copy(), y.copy(), Xt.copy()
    model = KernelRegressor(laplacian, alpha=0.1).fit(X, y)
    model.predict(Xt)
    assert np.array_equal(X, X0) and np.array_equal(y, y0) and np.array_equal(Xt, Xt0)
    X[0, 0] += 1.0  # the fitted model holds its own copy
    assert np.array_equal(model.X_fit_, X0)


def test_jitter_on_duplicated_rows(data):
    X, y, _ = data
    Xd = np.vstack([X, X[:3]])
    yd = np.concatenate([y, y[:3]])
    with pytest.warns(RuntimeWarning, match=r"added jitter \S+ \(1e-\d\d × its mean diagonal"):
        model = KernelRegressor(ntklab.Architecture(1, "paper").ntk).fit(Xd, yd)
    scale = np.mean(np.diag(ntklab.Architecture(1, "paper").ntk(Xd)))
    assert 0 < model.jitter_ <= MAX_RELATIVE_JITTER * scale
    np.testing.assert_allclose(model.predict(X), y, atol=1e-3)


def test_no_warning_without_jitter(data):
    X, y, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = KernelRegressor(ntklab.Architecture(1, "jacot").ntk).fit(X, y)
        A, jitter = cho_solve_jitter(np.diag([1.0, 2.0, 3.0]), np.ones(3))
    assert model.jitter_ == 0.0 and jitter == 0.0


def test_cho_solve_jitter_smallest():
    K = np.ones((3, 3))  # rank one: the first try, 1e-12 x the mean diagonal, is enough
    with pytest.warns(RuntimeWarning, match=r"added jitter 1e-12 \(1e-12 × its mean diagonal 1\)"):
        A, jitter = cho_solve_jitter(K, np.ones(3))
    assert jitter == 1e-12
    np.testing.assert_allclose((K + jitter * np.eye(3)) @ A, np.ones(3), rtol=1e-8)
    A, jitter = cho_solve_jitter(np.diag([1.0, 2.0, 3.0]), np.ones(3))
    assert jitter == 0.0 and np.allclose(A, [1, 0.5, 1 / 3])


def test_jitter_grows_by_ten_up_to_the_cap():
    # eigenvalue -5e-8 on a mean diagonal of 2: 1e-12 ... 1e-8 x 2 fail, 1e-7 x 2 works
    K = np.diag([3.0, 3.0 + 1e-7, -5e-8])
    K = K * (6.0 / np.trace(K))  # mean diagonal exactly 2
    with pytest.warns(RuntimeWarning, match=r"added jitter 2e-07 \(1e-07 × its mean diagonal 2\)"):
        L, jitter = cholesky_jitter(K)
    assert jitter == pytest.approx(2e-7, rel=1e-12)
    np.testing.assert_allclose(L @ L.T, K + jitter * np.eye(3), rtol=1e-12, atol=1e-15)
    # an eigenvalue of -1e-5: the cap (1e-6 x 2) is not enough
    K[2, 2] = -1e-5 * 2
    with pytest.raises(SingularKernelError) as err:
        cholesky_jitter(K)
    assert isinstance(err.value, np.linalg.LinAlgError) and isinstance(err.value, ValueError)
    assert err.value.jitter == pytest.approx(MAX_RELATIVE_JITTER * np.mean(np.diag(K)), rel=1e-12)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"failed even with jitter {err.value.jitter:.3g} on its diagonal" in msg
    assert "numerically singular" in msg and "KernelRegressor(alpha=" in msg and "ridge = " in msg


def test_singular_kernel_raises_and_alpha_fixes_it(data):
    X, y, _ = data  # 40 rows in R^5

    def kernel(A, B=None):  # a linear kernel (rank 5) made indefinite on the training rows
        return A @ A.T - 1e-4 * np.eye(len(A)) if B is None else A @ B.T

    with pytest.raises(SingularKernelError, match=r"numerically singular.*alpha="):
        KernelRegressor(kernel).fit(X, y)
    with pytest.raises(ValueError, match="numerically singular"):  # a ValueError, too
        KernelRegressor(kernel, alpha=1e-5).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = KernelRegressor(kernel, alpha=1e-3).fit(X, y)
    assert model.jitter_ == 0.0


def test_not_psd_and_nan_messages():
    with pytest.raises(
        SingularKernelError, match=r"not positive semi-definite \(its mean diagonal is -1\)"
    ):
        cholesky_jitter(-np.eye(3))
    with pytest.raises(SingularKernelError, match="NaN or infinite"):
        cholesky_jitter(np.array([[1.0, np.nan], [np.nan, 1.0]]))


def test_alpha_and_its_deprecated_alias_ridge(data):
    X, y, Xt = data
    new = KernelRegressor(laplacian, alpha=0.5).fit(X, y)
    with pytest.warns(FutureWarning, match=r"ridge=\.\.\.\) is deprecated; use alpha"):
        old = KernelRegressor(laplacian, ridge=0.5).fit(X, y)
    np.testing.assert_array_equal(old.dual_coef_, new.dual_coef_)
    assert KernelRegressor(laplacian).get_params()["alpha"] == 0.0
    with pytest.warns(FutureWarning):  # the same value twice is allowed
        same = KernelRegressor(laplacian, alpha=0.5, ridge=0.5).fit(X, y)
    np.testing.assert_array_equal(same.dual_coef_, new.dual_coef_)
    with pytest.raises(ValueError, match=r"alpha=0.1 and ridge=0.5.*pass alpha only"):
        KernelRegressor(laplacian, alpha=0.1, ridge=0.5).fit(X, y)
    with pytest.raises(ValueError, match="ridge"):
        KernelRegressor(laplacian, ridge=-1.0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # alpha alone: no warning
        KernelRegressor(laplacian, alpha=0.5).fit(X, y).predict(Xt)


def test_bad_input(data):
    X, y, _ = data
    with pytest.raises(ValueError, match="alpha"):
        KernelRegressor(rbf, alpha=-1.0).fit(X, y)
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
@parametrize_with_checks([KernelRegressor(kernel=NTKKernel(depth=1), alpha=1e-3)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
