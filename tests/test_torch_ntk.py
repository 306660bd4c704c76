"""The empirical NTK of any nn.Module: against per-example Jacobians taken one output at a time,
against ntklab's structured path, chunking under a memory budget, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import unit_rows
from torch import nn

import ntklab
from ntklab.torch_ntk import generic_ntk


def naive_jacobian(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """(n, K, P): each example's gradient of each output, by plain autograd."""
    params = list(model.parameters())
    rows = []
    for x in X:
        f = model(x[None]).reshape(-1)
        grads = []
        for k in range(f.numel()):
            g = torch.autograd.grad(f[k], params, retain_graph=True, allow_unused=True)
            flat = [
                torch.zeros_like(p) if gi is None else gi for gi, p in zip(g, params, strict=True)
            ]
            grads.append(torch.cat([t.flatten() for t in flat]))
        rows.append(torch.stack(grads))
    return torch.stack(rows)


def naive_ntk(model, X, Z, output):
    A, B = naive_jacobian(model, X), naive_jacobian(model, Z)
    if output == "full":
        return torch.einsum("nap,mbp->nmab", A, B).numpy()
    out = torch.einsum("nap,map->nm", A, B).numpy()
    return out / A.shape[1] if output == "mean" else out


class ConvNet(nn.Module):
    """Convolutions (one strided), a LayerNorm, tanh, then a dense layer."""

    def __init__(self, k: int):
        super().__init__()
        self.c1 = nn.Conv2d(2, 3, 3, padding=1)
        self.norm = nn.LayerNorm([3, 5, 5])
        self.c2 = nn.Conv2d(3, 4, 3, stride=2, bias=False)
        self.fc = nn.Linear(16, k)

    def forward(self, x):
        h = torch.tanh(self.norm(self.c1(x)))
        return self.fc(torch.tanh(self.c2(h)).flatten(1))


class Shared(nn.Module):
    """A layer applied twice, and a weight also used outside its module."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 2)

    def forward(self, x):
        h = torch.relu(self.a(torch.tanh(self.a(x))))
        return self.b(h) + x[:, :2] @ self.b.weight[:, :2].T


def _models():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.LayerNorm(6), nn.Linear(6, 2))
    bn = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Tanh(), nn.Flatten(),
                       nn.Linear(27, 1)).eval()  # fmt: skip
    bn[1].running_mean.normal_()
    tokens = nn.Sequential(nn.Linear(4, 5), nn.ReLU(inplace=True), nn.Linear(5, 1))
    return {
        "conv": (ConvNet(2), (2, 5, 5)),
        "conv-scalar": (ConvNet(1), (2, 5, 5)),
        "layernorm-tanh": (seq, (4,)),
        "batchnorm-eval": (bn, (2, 5, 5)),
        "tokens": (tokens, (3, 4)),  # a dense layer on (n, 3, 4): 3 outputs
        "shared": (Shared(), (3,)),
    }


@pytest.mark.parametrize("name", list(_models()))
def test_equals_per_example_jacobians(name):
    model, shape = _models()[name]
    model = model.double()
    gen = torch.Generator().manual_seed(1)
    X = torch.randn((5, *shape), generator=gen, dtype=torch.float64)
    Z = torch.randn((3, *shape), generator=gen, dtype=torch.float64)
    for output in ("trace", "full"):
        for Zarg in (None, Z):
            ref = naive_ntk(model, X, X if Zarg is None else Zarg, output)
            got = ntklab.empirical_ntk(model, X, Zarg, output=output, batch_size=2)
            assert got.dtype == np.float64 and got.shape == ref.shape
            if Zarg is None:  # exactly symmetric, chunk by chunk
                assert np.array_equal(
                    got, got.T if output == "trace" else got.transpose(1, 0, 3, 2)
                )
            np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-12 * np.abs(ref).max())
    if name == "conv":  # each way of contracting, and the mean over outputs
        ref = naive_ntk(model, X, Z, "mean")
        for impl in ("structured", "materialized", "jacobian", "ntvp"):
            got = generic_ntk(model, X, Z, output="mean", implementation=impl)
            np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-12 * np.abs(ref).max())


def test_integer_inputs_of_an_embedding():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Embedding(7, 4), nn.Flatten(), nn.Linear(12, 2)).double()
    X = torch.randint(0, 7, (5, 3), generator=torch.Generator().manual_seed(4))
    ref = naive_ntk(model, X, X, "trace")
    np.testing.assert_allclose(ntklab.empirical_ntk(model, X.numpy()), ref, rtol=1e-12)


@pytest.mark.parametrize("depth", [1, 3])
def test_generic_equals_structured_on_ntklab_networks(depth):
    arch = ntklab.Architecture(depth, "jacot", sigma_b=0.5)
    net = arch.network(24, seed=depth, in_features=4, dtype=torch.float64, device="cpu")
    X, Z = unit_rows(7, 4, seed=3), unit_rows(4, 4, seed=4)
    full = ntklab.empirical_ntk(net, X, Z, output="full")
    assert full.shape == (7, 4, 1, 1)
    for args in [(X,), (X, Z)]:
        a = ntklab.empirical_ntk(net, *args, method="structured")
        for impl in ("auto", "materialized", "jacobian"):
            xt = torch.as_tensor(X)
            zt = None if len(args) == 1 else torch.as_tensor(Z)
            b = generic_ntk(net, xt, zt, implementation=impl, batch_size=3)
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12 * np.abs(a).max())


def test_memory_budget_sets_the_chunks():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 3))
    X = torch.randn(40, 6)
    whole = ntklab.empirical_ntk(model, X)
    # chunks of 5 rows, features recomputed; of 13 rows, every chunk's features kept
    for budget in (20_000, 60_000):
        small = ntklab.empirical_ntk(model, X, max_memory=budget)
        np.testing.assert_allclose(small, whole, rtol=1e-5, atol=1e-6 * np.abs(whole).max())
        assert np.array_equal(small, small.T)
        part = ntklab.empirical_ntk(model, X[:9], X[5:], max_memory=budget)
        np.testing.assert_allclose(part, whole[:9, 5:], rtol=1e-5, atol=1e-6 * np.abs(whole).max())
    with pytest.raises(ValueError, match="max_memory=1000 bytes is too small for one example"):
        ntklab.empirical_ntk(model, X, max_memory=1000)


class _Raw(nn.Module):
    """A weight used directly (no structured derivative), then a dense layer."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 300) / 3)
        self.out = nn.Linear(300, 4)

    def forward(self, x):
        return self.out(torch.tanh(x @ self.w))


def test_ntk_vector_products_when_jacobians_do_not_fit(monkeypatch):
    import ntklab.torch_ntk as torch_ntk

    calls = []
    real = torch_ntk.ntvp_block
    monkeypatch.setattr(torch_ntk, "ntvp_block", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(5)
    model = _Raw().double()
    X = torch.randn(6, 3, dtype=torch.float64)
    ref = naive_ntk(model, X, X[:4], "full")
    # one example's Jacobian of w is 4 * 900 * 8 = 29 kB: contracted under 10 MB, not 1 MB
    for budget, used in ((10_000_000, False), (1_000_000, True)):
        calls.clear()
        got = ntklab.empirical_ntk(model, X, X[:4], output="full", max_memory=budget)
        np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-12 * np.abs(ref).max())
        assert bool(calls) == used


class _Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 1)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return self.fc(x)


class _Centering(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 1)

    def forward(self, x):
        return self.fc(x - x.mean(0))


def test_bad_input():
    X = torch.randn(4, 3)
    with pytest.raises(ValueError, match="no parameters"):
        ntklab.empirical_ntk(nn.Sequential(nn.Tanh()), X)
    bn = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"'1' \(BatchNorm1d\).*put the model in eval mode"):
        ntklab.empirical_ntk(bn, X)
    drop = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"'1' \(Dropout\).*eval mode"):
        ntklab.empirical_ntk(drop, X)
    assert ntklab.empirical_ntk(drop.eval(), X).shape == (4, 4)
    with pytest.raises(ValueError, match="buffer 'calls' changes in forward.*eval mode"):
        ntklab.empirical_ntk(_Counting(), X)
    with pytest.raises(ValueError, match="depends on the other inputs"):
        ntklab.empirical_ntk(_Centering(), X)
    with pytest.raises(ValueError, match=r"could not be evaluated on inputs of shape \(2, 5\)"):
        ntklab.empirical_ntk(nn.Linear(3, 1), torch.randn(4, 5))
    with pytest.raises(ValueError, match=r"X must have shape \(n_samples, \*input_shape\)"):
        ntklab.empirical_ntk(nn.Linear(3, 1), torch.randn(3))
    with pytest.raises(ValueError, match=r"Z has input shape \(4,\) but X has \(3,\)"):
        ntklab.empirical_ntk(nn.Linear(3, 1), X, torch.randn(2, 4))
    with pytest.raises(ValueError, match="NaN"):
        ntklab.empirical_ntk(nn.Linear(3, 1), X * np.nan)
    with pytest.raises(ValueError, match="output must be one of"):
        ntklab.empirical_ntk(nn.Linear(3, 2), X, output="diag")
    with pytest.raises(ValueError, match="max_memory"):
        ntklab.empirical_ntk(nn.Linear(3, 2), X, max_memory=0)
