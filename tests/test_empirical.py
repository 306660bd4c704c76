"""Empirical NTK: the structured and the generic (torch.func) paths agree, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import unit_rows

import ntklab
from ntklab.empirical import derive_seeds, empirical_ntk


@pytest.mark.parametrize("parameterization", ["jacot", "arora", "paper"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_structured_equals_generic(parameterization, depth):
    arch = ntklab.Architecture(depth, parameterization)
    net = arch.network(32, seed=depth, in_features=4, dtype=torch.float64, device="cpu")
    X, Z = unit_rows(6, 4, seed=1), unit_rows(5, 4, seed=2)
    for args in [(X,), (X, Z)]:
        a = empirical_ntk(net, *args, method="structured")
        b = empirical_ntk(net, *args, method="generic", batch_size=4)
        assert a.dtype == np.float64 and a.shape == (6, len(args[-1]))
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


def test_generic_equals_explicit_gradients():
    """The generic path is checked against gradients taken one point at a time."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 7), torch.nn.Tanh(), torch.nn.Linear(7, 1))
    model = model.double()
    X = unit_rows(4, 3, seed=3)
    grads = []
    for x in X:
        model.zero_grad()
        model(torch.as_tensor(x[None])).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]).numpy())
    G = np.array(grads)
    np.testing.assert_allclose(empirical_ntk(model, X), G @ G.T, rtol=1e-12)
    np.testing.assert_allclose(empirical_ntk(model, X[:2], X[1:]), G[:2] @ G[1:].T, rtol=1e-12)
    with pytest.raises(ValueError, match="structured"):
        empirical_ntk(model, X, method="structured")


def test_symmetric_and_batching_invariant():
    net = ntklab.Architecture(2, "paper").network(64, seed=0, in_features=4, device="cpu")
    X = unit_rows(9, 4, seed=4)
    full = empirical_ntk(net, X)
    assert np.array_equal(full, full.T)
    np.testing.assert_allclose(empirical_ntk(net, X, batch_size=2), full, rtol=1e-5)
    np.testing.assert_allclose(empirical_ntk(net, X, X), full, rtol=1e-5)
    np.testing.assert_allclose(empirical_ntk(net, torch.as_tensor(X)), full, rtol=1e-6)
    assert np.min(np.linalg.eigvalsh(full)) > -1e-6 * np.max(np.diag(full))


def test_frozen_parameters_still_counted():
    net = ntklab.Architecture(1, "jacot").network(16, seed=0, in_features=3, device="cpu")
    X = unit_rows(3, 3, seed=5)
    before = empirical_ntk(net, X)
    for p in net.parameters():
        p.requires_grad_(False)
    np.testing.assert_allclose(empirical_ntk(net, X), before)
    np.testing.assert_allclose(empirical_ntk(net, X, method="generic"), before, rtol=1e-5)


def test_bad_input():
    net = ntklab.Architecture(1).network(8, seed=0, in_features=3, device="cpu")
    X = unit_rows(3, 3, seed=0)
    with pytest.raises(ValueError, match="in_features"):
        empirical_ntk(net, unit_rows(3, 4, seed=0))
    with pytest.raises(ValueError, match="X"):
        empirical_ntk(net, X[0])
    bad = X.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        empirical_ntk(net, bad)
    with pytest.raises(ValueError, match="Z"):
        empirical_ntk(net, X, unit_rows(2, 2, seed=0))
    with pytest.raises(ValueError, match="method"):
        empirical_ntk(net, X, method="fast")
    with pytest.raises(ValueError, match="batch_size"):
        empirical_ntk(net, X, batch_size=0)
    with pytest.raises(ValueError, match="model"):
        empirical_ntk("not a model", X)
    with pytest.raises(ValueError, match="output"):
        empirical_ntk(net, X, output="all")


def test_derive_seeds():
    a = derive_seeds(7, 5)
    assert a == derive_seeds(7, 5) and len(set(a)) == 5 and a != derive_seeds(8, 5)
    assert all(0 <= s < 2**63 for s in a)
