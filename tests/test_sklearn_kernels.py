"""scikit-learn adapters: GaussianProcessRegressor and KernelRidge accept ntklab kernels."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import unit_rows
from sklearn.base import clone
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import WhiteKernel
from sklearn.kernel_ridge import KernelRidge

import ntklab
from ntklab.sklearn_kernels import NNGPKernel, NTKKernel, pairwise


@pytest.fixture
def data():
    X = unit_rows(30, 3, seed=21)
    y = np.sin(3 * X[:, 0]) + X[:, 1]
    return X, y, unit_rows(7, 3, seed=22)


@pytest.mark.parametrize("cls,index", [(NNGPKernel, 0), (NTKKernel, 1)])
def test_kernel_object(cls, index, data):
    X, _, Xt = data
    kern = cls(depth=2, parameterization="paper")
    arch = ntklab.Architecture(2, "paper")
    np.testing.assert_array_equal(kern(X), arch.kernels(X)[index])
    np.testing.assert_array_equal(kern(Xt, X), arch.kernels(Xt, X)[index])
    np.testing.assert_allclose(kern.diag(X), np.diag(kern(X)), rtol=1e-12)
    K, grad = kern(X, eval_gradient=True)  # in log sigma_b, log sigma_w (the numpy pass)
    assert grad.shape == (30, 30, 2)
    np.testing.assert_allclose(K, kern(X), rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="eval_gradient"):
        kern(X, Xt, eval_gradient=True)
    assert not kern.is_stationary() and kern.n_dims == 2  # log sigma_b, log sigma_w
    assert kern.get_params() == {
        "depth": 2, "parameterization": "paper", "sigma_w": None, "sigma_b": None,
        "sigma_w1": None, "sigma_w_bounds": (1e-2, 1e2), "sigma_b_bounds": (1e-3, 1e2),
        "sigma_w1_bounds": (1e-2, 1e2),
    }  # fmt: skip
    assert clone(kern) == kern and cls(depth=3) != kern
    assert "paper" in repr(kern)


def test_gpr_mean_equals_kernel_regressor(data):
    X, y, Xt = data
    alpha = 1e-2
    kernel = NTKKernel(2, "jacot", sigma_w_bounds="fixed", sigma_b_bounds="fixed")  # not learned
    gpr = GaussianProcessRegressor(kernel=kernel, alpha=alpha)
    gpr.fit(X, y)
    reg = ntklab.KernelRegressor(ntklab.Architecture(2, "jacot").ntk, alpha=alpha).fit(X, y)
    np.testing.assert_allclose(gpr.predict(Xt), reg.predict(Xt), rtol=1e-8, atol=1e-10)
    mean, std = gpr.predict(Xt, return_std=True)
    assert std.shape == (7,) and np.all(std >= 0)
    # a sum with WhiteKernel (a tunable noise level) also fits
    GaussianProcessRegressor(kernel=NNGPKernel(depth=1) + WhiteKernel(1e-2)).fit(X, y)


def test_kernel_ridge_object_and_callable(data):
    X, y, Xt = data
    arch = ntklab.Architecture(1, "paper")
    ref = KernelRidge(kernel="precomputed", alpha=0.1).fit(arch.ntk(X), y).predict(arch.ntk(Xt, X))
    by_object = KernelRidge(kernel=NTKKernel(1, "paper"), alpha=0.1).fit(X, y).predict(Xt)
    by_callable = KernelRidge(kernel=pairwise(arch.ntk), alpha=0.1).fit(X, y).predict(Xt)
    np.testing.assert_allclose(by_object, ref, rtol=1e-10)
    np.testing.assert_allclose(by_callable, ref, rtol=1e-8)
    # and the NNGP differs (the test can fail)
    other = KernelRidge(kernel=NNGPKernel(1, "paper"), alpha=0.1).fit(X, y).predict(Xt)
    assert not np.allclose(other, ref)


def test_bad_parameters(data):
    X, _, _ = data
    with pytest.raises(ValueError, match="parameterization"):
        NTKKernel(parameterization="lecun")(X)
    with pytest.raises(ValueError, match="depth"):
        NNGPKernel(depth=0)(X)
    with pytest.raises(ValueError, match="kernel"):
        pairwise(3)
