"""The one dense forward/backward pass (ntklab.dense_pass) against autograd on the modules,
and the rule that picks the hand-written training paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ntklab
from ntklab import dense_pass
from ntklab.stacked import network_layers
from ntklab.training import engine
from ntklab.training.fused import DEEP_MAX_ROWS, DEEP_MAX_WORK, fused_sgd, fused_specs

CPU = "cpu"
F64 = torch.float64


def _nets(depth, parameterization, activation, k):
    arch = ntklab.Architecture(depth, parameterization, activation=activation)
    return [arch.network(6, seed=s, in_features=3, dtype=F64, device=CPU) for s in range(k)]


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize(
    "depth, parameterization", [(1, "jacot"), (1, "arora"), (2, "arora"), (3, "paper")]
)
@pytest.mark.parametrize("inputs", ["one network", "shared", "per member"])
def test_forward_and_gradients_equal_autograd(depth, parameterization, activation, inputs):
    """f and d(c . f)/d theta of one network (weights (out, in)) or of 3 stacked ones
    (weights (3, out, in), inputs shared or one set per member) equal autograd on each
    module, for ReLU and for an activation with its own derivative (arora: no biases)."""
    k = 1 if inputs == "one network" else 3
    nets = _nets(depth, parameterization, activation, k)
    specs, act = network_layers(nets[0])
    assert (act is None) == (activation == "relu")
    gen = torch.Generator().manual_seed(depth)
    X = torch.randn(k, 5, 3, dtype=F64, generator=gen)
    c = torch.randn(k, 5, dtype=F64, generator=gen)
    if inputs == "one network":
        params, x, cot = engine.parameters(nets[0]), X[0], c[0]
    else:
        params = engine.stack_parameters(nets)
        x, cot = (X[0] if inputs == "shared" else X), c
    layers = dense_pass.dense_layers(params, specs)
    with torch.no_grad():
        f = dense_pass.forward(layers, x, act).outputs
        grads = dense_pass.parameter_gradients(layers, dense_pass.forward(layers, x, act), cot, act)
    names = [n for n in params if n.endswith("weight") or n.endswith("bias")]
    assert len(grads) == len(names) == len(list(nets[0].parameters()))
    for j, net in enumerate(nets):
        xj = X[0] if inputs != "per member" else X[j]
        out = net(xj)
        ref = torch.autograd.grad((c[j] * out).sum(), list(net.parameters()))
        got_f = f if inputs == "one network" else f[j]
        torch.testing.assert_close(got_f, out.detach(), rtol=1e-13, atol=1e-14)
        for g, r in zip(grads, ref, strict=True):
            gj = g if inputs == "one network" else g[j]
            assert gj.shape == r.shape
            torch.testing.assert_close(gj, r, rtol=1e-12, atol=1e-13 * r.abs().max().item())


@pytest.mark.parametrize("parameterization", ["jacot", "arora"])
@pytest.mark.parametrize("inputs", ["one network", "shared", "per member"])
def test_rank_one_gradients_of_one_hidden_relu_layer(parameterization, inputs, monkeypatch):
    """The rank-one form of one hidden ReLU layer's gradients (taken from RANK_ONE_MIN_ROWS
    rows) equals the general chain rule and autograd, with and without biases."""
    k = 1 if inputs == "one network" else 3
    nets = _nets(1, parameterization, "relu", k)
    specs, _ = network_layers(nets[0])
    gen = torch.Generator().manual_seed(7)
    X = torch.randn(k, 9, 3, dtype=F64, generator=gen)
    c = torch.randn(k, 9, dtype=F64, generator=gen)
    params = engine.parameters(nets[0]) if k == 1 else engine.stack_parameters(nets)
    x = X[0] if inputs != "per member" else X
    cot = c[0] if k == 1 else c
    layers = dense_pass.dense_layers(params, specs)
    grads = {}
    for min_rows in (1, 10**9):
        monkeypatch.setattr(dense_pass, "RANK_ONE_MIN_ROWS", min_rows)
        with torch.no_grad():
            fwd = dense_pass.forward(layers, x)
            grads[min_rows] = dense_pass.parameter_gradients(layers, fwd, cot)
    for j, net in enumerate(nets):
        ref = torch.autograd.grad((c[j] * net(X[0] if inputs != "per member" else X[j])).sum(),
                                  list(net.parameters()))  # fmt: skip
        for rank_one, general, r in zip(grads[1], grads[10**9], ref, strict=True):
            got = rank_one if k == 1 else rank_one[j]
            assert got.shape == r.shape
            torch.testing.assert_close(got, r, rtol=1e-12, atol=1e-13 * r.abs().max().item())
            torch.testing.assert_close(rank_one, general, rtol=1e-12, atol=1e-14)


def test_dense_is_the_modules_formula():
    """One layer, s z W^T + beta b, for one weight, stacked weights and no bias."""
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(4, 3, dtype=F64, generator=gen)
    W = torch.randn(2, 5, 3, dtype=F64, generator=gen)
    b = torch.randn(2, 5, dtype=F64, generator=gen)
    for j in range(2):
        want = 0.7 * z @ W[j].T + 0.3 * b[j]
        torch.testing.assert_close(dense_pass.dense(z, W[j], b[j], 0.7, 0.3), want)
        torch.testing.assert_close(dense_pass.dense(z, W, b, 0.7, 0.3)[j], want)
        torch.testing.assert_close(dense_pass.dense(z, W[j], None, 0.7, 0.3), 0.7 * z @ W[j].T)


@pytest.mark.parametrize("depth", [1, 2])
def test_the_hand_written_paths_are_picked_where_they_are_faster(depth):
    """One hidden layer: always; two or more: not for steps of more than DEEP_MAX_ROWS rows
    whose rows x width^2 is above DEEP_MAX_WORK (full batch there goes to torch.func)."""
    arch = ntklab.Architecture(depth, "paper")
    wide, narrow = (arch.network(w, seed=0, in_features=3, device=CPU) for w in (512, 8))
    big = 2 * DEEP_MAX_ROWS
    assert big * 512**2 > DEEP_MAX_WORK >= big * 8**2
    X = torch.as_tensor(np.ones((big, 3)), dtype=torch.float32)
    y = torch.zeros(big)
    assert fused_specs(wide, big, 8) is not None
    assert fused_specs(wide, DEEP_MAX_ROWS, None) is not None
    assert fused_specs(narrow, big, None) is not None
    assert (fused_specs(wide, big, None) is None) == (depth > 1)
    assert (fused_specs(wide, big, big) is None) == (depth > 1)
    assert (fused_sgd(wide, 0.1, X, y, None, None) is None) == (depth > 1)
    assert fused_sgd(wide, 0.1, X, y, None, 8) is not None
