"""linearize: equal to the model at w0 and affine in w - w0; track: the closed form equals the
linear model trained in lockstep under gradient descent with the squared loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import ntklab


def _convnet(k: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.LayerNorm(12), nn.Linear(12, k)
    ).double()


def _set(lin, w0, v, t):
    with torch.no_grad():
        for p, a, b in zip(lin.parameters(), w0, v, strict=True):
            p.copy_(a + t * b)


def test_linearize_equals_the_model_at_w0_and_is_affine():
    net = _convnet(2)
    X = torch.randn(4, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    lin = ntklab.linearize(net)
    with torch.no_grad():
        np.testing.assert_allclose(lin(X), net(X), rtol=1e-13, atol=1e-14)
    w0 = [p.detach().clone() for p in lin.parameters()]
    gen = torch.Generator().manual_seed(2)
    v = [torch.randn(p.shape, dtype=p.dtype, generator=gen) for p in w0]
    outs = {}
    for t in (0.0, 1.0, 2.0, -0.5):
        _set(lin, w0, v, t)
        with torch.no_grad():
            outs[t] = lin(X)
    step = outs[1.0] - outs[0.0]
    for t in (2.0, -0.5):
        np.testing.assert_allclose(outs[t] - outs[0.0], t * step, rtol=1e-11, atol=1e-12)
    # the change is J(x) v, J by per-example gradients
    params = list(net.parameters())
    for i in range(X.shape[0]):
        f = net(X[i : i + 1]).reshape(-1)
        for k in range(f.numel()):
            g = torch.autograd.grad(f[k], params, retain_graph=True)
            jv = sum(float((a * b).sum()) for a, b in zip(g, v, strict=True))
            assert abs(jv - float(step[i, k])) < 1e-10 * (1 + abs(jv))
    # trainable by a torch optimizer; the original model is left alone
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.Adam(lin.parameters(), lr=0.01)
    opt.zero_grad()
    lin(X).pow(2).sum().backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    with pytest.raises(ValueError, match="eval mode"):
        ntklab.linearize(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))


@pytest.mark.parametrize("k", [1, 2])
def test_track_closed_form_equals_the_lockstep_linear_model(k):
    torch.manual_seed(k)
    net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, k)).double()
    gen = torch.Generator().manual_seed(3)
    X, Xt = (torch.randn(n, 3, dtype=torch.float64, generator=gen) for n in (10, 4))
    y, yt = (torch.randn(n, k, dtype=torch.float64, generator=gen) for n in (10, 4))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss_fn = nn.MSELoss()
    with ntklab.track(net, X, y, Xt, yt, optimizer=opt, loss_fn=loss_fn, record=[3, 10]) as tr:
        for _ in range(25):
            opt.zero_grad()
            loss_fn(net(X), y).backward()
            opt.step()
            tr.step(X, y)
    df = tr.dataframe()
    assert list(df["step"]) == [0, 3, 10, 25] and tr.closed_form_note == ""
    scale = np.abs(tr.outputs["linearized"][-1]).max()
    for f_ntk, f_lin in zip(tr.outputs["ntk"], tr.outputs["linearized"], strict=True):
        np.testing.assert_allclose(f_ntk, f_lin, rtol=1e-10, atol=1e-12 * scale)
    np.testing.assert_allclose(df["test_loss_ntk"], df["test_loss_linearized"], rtol=1e-9)
    assert df["kernel_drift"].iloc[0] == 0 and df["kernel_drift"].iloc[-1] > 0
    assert (df["network_vs_linearized"].iloc[1:] > 0).all()
    if k == 1:  # a schedule: the closed form (one constant lr) stops where the lr changes
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        tr = ntklab.track(net, X, y, Xt, yt, optimizer=opt, loss_fn=loss_fn, record=1)
        for _ in range(3):
            opt.zero_grad()
            loss_fn(net(X), y).backward()
            opt.step()
            sched.step()
            tr.step(X, y)
        assert [f is None for f in tr.outputs["ntk"]] == [False, False, False, True]
        assert tr.closed_form_note == "the learning rate changed at step 3"


def test_track_cross_entropy_and_minibatches():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3))
    X, Xt = torch.randn(12, 3), torch.randn(5, 3)
    y, yt = torch.arange(12) % 3, torch.arange(5) % 3
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    loss_fn = nn.CrossEntropyLoss()
    tr = ntklab.track(net, X, y, Xt, yt, optimizer=opt, loss_fn=loss_fn, record=2)
    for step in range(4):
        idx = slice(3 * step, 3 * step + 3)
        used = opt.param_groups[0]["lr"]
        opt.zero_grad()
        loss_fn(net(X[idx]), y[idx]).backward()
        opt.step()
        sched.step()  # before tr.step: the linear model's step still uses the lr of the network's
        tr.step(X[idx], y[idx])
        assert tr.lin_optimizer.param_groups[0]["lr"] == used
    df = tr.dataframe()
    assert list(df["step"]) == [0, 2, 4] and "MSELoss" in tr.closed_form_note
    assert {"test_accuracy_network", "test_accuracy_linearized"} <= set(df.columns)
    assert df["ntk_vs_linearized"].isna().all()
    import matplotlib

    matplotlib.use("Agg")
    assert len(tr.figure().axes) == 2
    with pytest.raises(ValueError, match="optimizer must be"):
        ntklab.track(net, X, y, Xt, optimizer=None)
    with pytest.raises(ValueError, match="y_train must have one row per input"):
        ntklab.track(net, X, y[:3], Xt, optimizer=opt)
    with pytest.raises(ValueError, match="record must be"):
        ntklab.track(net, X, y, Xt, optimizer=opt, record=0)
    with pytest.raises(ValueError, match="eval mode"):
        ntklab.track(nn.Sequential(nn.Linear(3, 3), nn.Dropout()), X, y, Xt, optimizer=opt)
