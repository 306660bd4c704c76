"""Trainer: ntklab.training.train / train_ensemble / auto_lr."""

import copy

import numpy as np
import pytest
import torch

import ntklab
from ntklab.data import sphere
from ntklab.empirical import empirical_ntk
from ntklab.training import CenteredNetwork, auto_lr, train, train_ensemble

CPU = "cpu"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X, Xt = sphere(16, 4, rng), sphere(6, 4, rng)
    f = lambda Z: np.sin(2.0 * Z[:, 0]) + Z[:, 1]  # noqa: E731
    return X, f(X), Xt, f(Xt)


ARCH = ntklab.Architecture(1, "paper")


def test_auto_lr_formula():
    K = np.diag([4.0, 1.0, 2.0])
    assert auto_lr(K) == pytest.approx(0.5 * 3 / 4.0, rel=1e-14)
    assert auto_lr(K, c=0.9) == pytest.approx(0.9 * 3 / 4.0, rel=1e-14)
    with pytest.raises(ValueError, match="square"):
        auto_lr(np.ones((2, 3)))
    with pytest.raises(ValueError, match="c must be >"):
        auto_lr(K, c=0.0)


def test_train_reduces_loss_and_records(data):
    X, y, Xt, yt = data
    net = ARCH.network(256, seed=1, in_features=4, device=CPU)
    before = [p.detach().clone() for p in net.parameters()]
    res = train(net, X, y, lr="auto", epochs=55, record_every=10, X_test=Xt, y_test=yt, device=CPU)
    assert res.lr == pytest.approx(auto_lr(ARCH.ntk(X)), rel=1e-12)
    np.testing.assert_array_equal(res.epochs, [0, 10, 20, 30, 40, 50, 55])
    assert res.train_loss.shape == (7,) and res.test_predictions.shape == (7, 6)
    assert res.train_loss[-1] < 0.2 * res.train_loss[0]
    assert not res.diverged and res.diverged_epoch is None
    # recorded values are those of the networks at those epochs
    np.testing.assert_allclose(res.test_predictions[0], res.initial_network.predict(Xt), rtol=1e-6)
    np.testing.assert_allclose(res.test_predictions[-1], res.predict(Xt), rtol=1e-6, atol=1e-7)
    assert res.train_loss[-1] == pytest.approx(np.mean((res.predict(X) - y) ** 2), rel=1e-5)
    assert res.train_loss[0] == pytest.approx(np.mean((net.predict(X) - y) ** 2), rel=1e-5)
    np.testing.assert_allclose(res.test_rmse, np.sqrt(np.mean((res.test_predictions - yt) ** 2, 1)))
    # the input network is not modified
    for p, q in zip(before, net.parameters(), strict=True):
        assert torch.equal(p, q)
    assert res.steps == 55


def test_one_step_is_the_linearized_step(data):
    """Loss (1/m) sum (f - y)^2: one small step moves f by -(2 lr/m) Theta_hat (f0 - y) + O(lr^2).

    A loss normalized as 1/(2m) (or a sum) would be off by a factor 2 (or m)."""
    X, y, _, _ = data
    m = X.shape[0]
    net = ARCH.network(512, seed=2, in_features=4, dtype=torch.float64, device=CPU)
    theta0 = empirical_ntk(net, X)
    f0 = net.predict(X)
    predicted = -2.0 * 1e-3 / m * theta0 @ (f0 - y)
    res = train(net, X, y, lr=1e-3, epochs=1, device=CPU)
    moved = res.predict(X) - f0
    np.testing.assert_allclose(moved, predicted, rtol=2e-3, atol=1e-3 * np.abs(predicted).max())


@pytest.mark.parametrize("batch_size", [None, 5])
def test_same_seed_same_curve_bit_for_bit(data, batch_size):
    X, y, Xt, yt = data
    net = ARCH.network(128, seed=4, in_features=4, device=CPU)
    kw = dict(lr=0.5, epochs=30, batch_size=batch_size, record_every=1, X_test=Xt, y_test=yt)
    a = train(net, X, y, seed=11, device=CPU, **kw)
    b = train(net, X, y, seed=11, device=CPU, **kw)
    assert np.array_equal(a.train_loss, b.train_loss)
    assert np.array_equal(a.test_predictions, b.test_predictions)
    if batch_size is not None:
        assert a.steps_per_epoch == 4
        c = train(net, X, y, seed=12, device=CPU, **kw)
        assert not np.array_equal(a.train_loss, c.train_loss)  # the seed drives the batch order


@pytest.mark.parametrize(
    "centered, batch_size, dtype, rtol",
    [
        (False, None, torch.float64, 1e-10),
        (True, 6, torch.float64, 1e-10),
        (False, None, torch.float32, 1e-4),
    ],
)
def test_ensemble_equals_training_alone(data, centered, batch_size, dtype, rtol):
    X, y, Xt, yt = data
    seeds = [5, 0, 9]
    kw = dict(lr=0.8, epochs=40, batch_size=batch_size, record_every=7, X_test=Xt, y_test=yt,
              centered=centered, device=CPU)  # fmt: skip
    ens = train_ensemble(ARCH, 96, X, y, seeds=seeds, dtype=dtype, group_size=3, **kw)
    assert len(ens) == 3
    for s, r in zip(seeds, ens, strict=True):
        net = ARCH.network(96, seed=s, in_features=4, dtype=dtype, device=CPU)
        inner = r.network.network if centered else r.network
        assert type(inner) is ntklab.FullyConnectedNetwork and inner.seed == s
        for p, q in zip(net.parameters(), r.initial_network.parameters(), strict=True):
            assert torch.equal(p, q)  # member s starts as arch.network(width, seed=s)
        alone = train(net, X, y, seed=s, **kw)
        np.testing.assert_array_equal(r.epochs, alone.epochs)
        np.testing.assert_allclose(r.train_loss, alone.train_loss, rtol=rtol)
        np.testing.assert_allclose(r.test_predictions, alone.test_predictions, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(r.predict(X), alone.predict(X), rtol=rtol, atol=rtol)
        assert r.centered == centered and r.lr == 0.8
    if centered:
        assert ens[0].train_loss[0] == pytest.approx(np.mean(y**2), rel=1e-12)
        np.testing.assert_allclose(ens[0].test_predictions[0], 0.0, atol=1e-12)


def test_divergence_is_reported_and_other_members_unaffected(data):
    X, y, _, _ = data
    stable = auto_lr(ARCH.ntk(X))  # half the stability limit
    lrs = [stable, 6 * stable, stable]
    ens = train_ensemble(ARCH, 128, X, y, seeds=[1, 2, 3], lr=lrs, epochs=200, record_every=20,
                         device=CPU, group_size=3)  # fmt: skip
    assert [r.diverged for r in ens] == [False, True, False]
    bad = ens[1]
    assert isinstance(bad.diverged_epoch, int) and 0 < bad.diverged_epoch < 200
    assert bad.epochs[-1] == bad.diverged_epoch
    assert not (bad.train_loss[-1] <= 1e6 * bad.train_loss[0])  # non-finite or exploded
    for s, r in ((1, ens[0]), (3, ens[2])):
        alone = train(ARCH.network(128, seed=s, in_features=4, device=CPU), X, y, lr=stable,
                      epochs=200, record_every=20, device=CPU)  # fmt: skip
        np.testing.assert_array_equal(r.epochs, alone.epochs)
        # float32: a loss of 1e-6 has residuals of 1e-3 on outputs of size 1, so its round-off
        # floor is about 2 * 1e-3 * 100 * eps32 = 1e-8 absolute (1e-4 relative at the end)
        np.testing.assert_allclose(r.train_loss, alone.train_loss, rtol=1e-4, atol=1e-8)
        np.testing.assert_allclose(r.predict(X), alone.predict(X), rtol=1e-4, atol=1e-5)
    # alone, the unstable rate is reported the same way and never raises
    alone = train(ARCH.network(128, seed=2, in_features=4, device=CPU), X, y, lr=6 * stable,
                  epochs=200, device=CPU)  # fmt: skip
    assert alone.diverged and alone.diverged_epoch == bad.diverged_epoch


def test_group_size_does_not_change_results(data):
    X, y, _, _ = data
    kw = dict(seeds=[4, 2, 7], lr=0.8, epochs=25, dtype=torch.float64, device=CPU)
    together = train_ensemble(ARCH, 64, X, y, group_size=3, **kw)
    default = train_ensemble(ARCH, 64, X, y, **kw)  # one at a time on a CPU
    pairs = train_ensemble(ARCH, 64, X, y, group_size=2, **kw)
    forced = train_ensemble(ARCH, 64, X, y, stacked=True, group_size=1, **kw)  # stacks of one
    stacked = train_ensemble(ARCH, 64, X, y, stacked=True, **kw)  # CUDA's default, on a CPU
    for a, b, c, d, e in zip(together, default, pairs, forced, stacked, strict=True):
        for other in (b, c, d, e):
            np.testing.assert_allclose(a.train_loss, other.train_loss, rtol=1e-10)
            np.testing.assert_allclose(a.predict(X), other.predict(X), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="group_size must be an integer >= 1"):
        train_ensemble(ARCH, 64, X, y, group_size=0, **kw)
    with pytest.raises(ValueError, match="stacked=False"):
        train_ensemble(ARCH, 64, X, y, group_size=2, stacked=False, **kw)
    with pytest.raises(ValueError, match="stacked must be True, False or None"):
        train_ensemble(ARCH, 64, X, y, stacked="yes", **kw)


def test_centered_network(data):
    X, y, Xt, yt = data
    net = ARCH.network(64, seed=0, in_features=4, device=CPU)
    res = train(net, X, y, lr=0.5, epochs=0, centered=True, device=CPU)
    assert isinstance(res.network, CenteredNetwork)
    np.testing.assert_allclose(res.predict(Xt), 0.0, atol=1e-12)
    np.testing.assert_allclose(res.initial_predict(Xt), 0.0)
    assert res.train_loss[0] == pytest.approx(np.mean(y**2), rel=1e-6)
    # only the trainable network's parameters are parameters of the wrapper
    assert sum(p.numel() for p in res.network.parameters()) == sum(
        p.numel() for p in net.parameters()
    )
    wide = copy.deepcopy(res.network).double()
    assert wide.initial_network.layers[0].weight.dtype == torch.float64
    res = train(net, X, y, lr=0.5, epochs=20, centered=True, device=CPU)
    expected = net.predict(Xt)  # f0, since net itself is not trained
    np.testing.assert_allclose(
        res.predict(Xt), res.network.network.predict(Xt) - expected, rtol=1e-6, atol=1e-6
    )


def test_epochs_zero(data):
    X, y, _, _ = data
    net = ARCH.network(32, seed=0, in_features=4, device=CPU)
    res = train(net, X, y, lr=1.0, epochs=0, device=CPU)
    np.testing.assert_array_equal(res.epochs, [0])
    np.testing.assert_allclose(res.predict(X), net.predict(X))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lr=-1.0), "lr must be a positive number or .auto.; got -1.0"),
        (dict(lr="fast"), "lr must be a positive number or 'auto'"),
        (dict(epochs=-1), "epochs must be an integer >= 0"),
        (dict(epochs=2.5), "epochs must be an integer"),
        (dict(batch_size=0), "batch_size must be an integer >= 1"),
        (dict(record_every=0), "record_every must be an integer >= 1"),
        (dict(X_test=np.zeros((2, 4))), "X_test and y_test must be given together"),
        (dict(X_test=np.zeros((2, 3)), y_test=np.zeros(2)), "X_test has 3 features"),
    ],
)
def test_bad_input(data, kwargs, match):
    X, y, _, _ = data
    net = ARCH.network(16, seed=0, in_features=4, device=CPU)
    args = dict(lr=0.1, epochs=3, device=CPU)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        train(net, X, y, **args)


def test_bad_data(data):
    X, y, _, _ = data
    net = ARCH.network(16, seed=0, in_features=4, device=CPU)
    Xn = X.copy()
    Xn[2, 1] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        train(net, Xn, y, lr=0.1, epochs=1, device=CPU)
    with pytest.raises(ValueError, match="y has 15 entries"):
        train(net, X, y[:-1], lr=0.1, epochs=1, device=CPU)
    with pytest.raises(ValueError, match="X has 3 features"):
        train(net, X[:, :3], y, lr=0.1, epochs=1, device=CPU)
    with pytest.raises(ValueError, match="net must be a torch.nn.Module"):
        train("net", X, y, lr=0.1, epochs=1, device=CPU)
    with pytest.raises(ValueError, match="lr has 2 entries"):
        train_ensemble(ARCH, 16, X, y, seeds=[0, 1, 2], lr=[0.1, 0.1], epochs=1, device=CPU)
    with pytest.raises(ValueError, match="seeds must be a sequence"):
        train_ensemble(ARCH, 16, X, y, seeds=3, lr=0.1, epochs=1, device=CPU)
    with pytest.raises(ValueError, match="seeds must be an integer >= 0"):
        train_ensemble(ARCH, 16, X, y, seeds=[-1], lr=0.1, epochs=1, device=CPU)


@pytest.mark.parametrize("parameterization", ["jacot", "arora", "paper"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_stacked_engine_loss_and_gradients_equal_autograd(parameterization, depth):
    """The hand-written forward/backward of the stacked trainer equals torch.autograd on each
    network, and the torch.func definition (vmap of grad) equals both.

    `train` and `train_ensemble` share the parameter layout, so comparing them with each other
    cannot catch a wrong gradient: this compares with autograd on the finite network itself.
    """
    from ntklab.training import engine
    from ntklab.training.fused import StackedFusedSGD, fused_specs

    arch = ntklab.Architecture(depth, parameterization)
    nets = [
        arch.network(7, seed=s, in_features=4, dtype=torch.float64, device=CPU) for s in range(3)
    ]
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(10, 4, dtype=torch.float64, generator=gen)
    y = torch.randn(10, dtype=torch.float64, generator=gen)
    params = engine.stack_parameters(nets)
    model = StackedFusedSGD(params, fused_specs(nets[0]), [0.1] * 3, X, y, None)
    losses, grads = model.gradients(X.expand(3, *X.shape), y)
    names = [n for n, p in params.items() for q in model.order if p is q]
    assert sorted(names) == sorted(params) and len(names) == len(grads)
    f_grads, f_losses = engine.stacked_loss_and_grad(nets[0], params, X, y)
    for j, net in enumerate(nets):
        loss = (net(X) - y).square().mean()
        ref = dict(zip(params, torch.autograd.grad(loss, list(net.parameters())), strict=True))
        assert losses[j].item() == pytest.approx(loss.item(), rel=1e-12)
        assert f_losses[j].item() == pytest.approx(loss.item(), rel=1e-12)
        for name, g in zip(names, grads, strict=True):
            r = ref[name]
            assert g[j].shape == r.shape
            tol = dict(rtol=1e-11, atol=1e-13 * r.abs().max().item())
            torch.testing.assert_close(g[j], r, **tol)
            torch.testing.assert_close(f_grads[name][j], r, **tol)


@pytest.mark.parametrize("batch_size, centered", [(None, False), (5, True)])
@pytest.mark.parametrize("depth", [1, 2])
def test_fast_paths_equal_the_functional_definition(depth, batch_size, centered):
    """Every hand-written path (FusedSGD for one network, StackedFusedSGD for stacked ones)
    trains exactly as the torch.func definition (FunctionalSGD, vmap for stacked), float64."""
    from ntklab.training import engine
    from ntklab.training.fused import fused_sgd
    from ntklab.training.loop import stacked_sgd
    from ntklab.training.sgd import FunctionalSGD

    arch = ntklab.Architecture(depth, "paper")
    rng = np.random.default_rng(depth)
    X = torch.as_tensor(sphere(13, 4, rng))
    y = torch.as_tensor(rng.standard_normal(13))
    nets = [arch.network(11, seed=s, in_features=4, dtype=torch.float64, device=CPU)
            for s in (2, 5)]  # fmt: skip
    f0 = torch.stack([n(X) for n in nets]).detach() if centered else None
    gen = torch.Generator().manual_seed(0)
    perms = [torch.stack([torch.randperm(13, generator=gen) for _ in nets]) for _ in range(3)]
    out = torch.empty(2, dtype=torch.float64)

    def train3(model, k):
        for e in range(3):
            model.epoch(None if batch_size is None else perms[e][:k], out[:k])
        model.finish()
        return out[:k].clone()

    # one network: the fused steps against functional_call + grad
    a, b = copy.deepcopy(nets[0]), copy.deepcopy(nets[0])
    f0a = None if f0 is None else f0[0]
    loss_a = train3(fused_sgd(a, 0.3, X, y, f0a, batch_size), 1)
    t = y if f0a is None else y + f0a
    functional = FunctionalSGD(b, engine.parameters(b), [0.3], X, t, batch_size, stacked=False)
    loss_b = train3(functional, 1)
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-12, atol=0)
    for p, q, s in zip(a.parameters(), b.parameters(), nets[0].parameters(), strict=True):
        assert (q - s).norm() > 1e-3 * s.norm()  # trained
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
    # stacked: the batched hand-written steps against vmap of the same definition
    t = y if f0 is None else y + f0
    runs = []
    for fast in (True, False):
        params = engine.stack_parameters(nets)
        model = stacked_sgd(nets[0], params, [0.3, 0.2], X, t, batch_size, fast=fast)
        assert isinstance(model, FunctionalSGD) != fast
        runs.append((train3(model, 2), params))
    (loss_f, pf), (loss_v, pv) = runs
    torch.testing.assert_close(loss_f, loss_v, rtol=1e-12, atol=0)
    for name in pf:
        torch.testing.assert_close(pf[name], pv[name], rtol=1e-12, atol=1e-14)
    # and member 0 of the stack is the network trained alone (same orders)
    for name, p in a.named_parameters():
        torch.testing.assert_close(pf[name][0], p, rtol=1e-12, atol=1e-14)


# ---- the fused SGD steps against plain autograd SGD ---------------------------------------------
class _PlainDense(torch.nn.Module):
    """Reference layer ``s z W^T + beta b`` through autograd (``F.linear``), own parameters."""

    def __init__(self, mod):
        super().__init__()
        self.weight = torch.nn.Parameter(mod.weight.detach().clone())
        self.bias = None if mod.bias is None else torch.nn.Parameter(mod.bias.detach().clone())
        self.s, self.beta = mod.scale, mod.beta

    def forward(self, z):
        out = self.s * torch.nn.functional.linear(z, self.weight)
        return out if self.bias is None else out + self.beta * self.bias


def _reference_sgd(net, X, y, *, lr, epochs, batch_size, seed, centered):
    """nn.Sequential + torch.optim.SGD on the batch mean of (f - f0 - y)^2, same init and order."""
    from ntklab.layers import DenseModule

    seq = torch.nn.Sequential(
        *[_PlainDense(m) if isinstance(m, DenseModule) else torch.nn.ReLU() for m in net.layers]
    )
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    with torch.no_grad():
        f0 = seq(X).squeeze(-1) if centered else torch.zeros_like(y)
    opt = torch.optim.SGD(seq.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    m = len(y)
    bs = batch_size or m
    for _ in range(epochs):
        order = torch.randperm(m, generator=gen) if batch_size else torch.arange(m)
        for b0 in range(0, m, bs):
            i = order[b0 : b0 + bs]
            loss = (seq(X[i]).squeeze(-1) - f0[i] - y[i]).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return [p.detach() for p in seq.parameters()]


def _assert_params_close(got, want, start, rtol):
    got, want, start = list(got), list(want), list(start)
    assert len(got) == len(want) == len(start)
    for g, w, s in zip(got, want, start, strict=True):
        assert g.shape == w.shape
        assert (w - s).norm() > 1e-4 * s.norm()  # the parameters really moved
        assert (g - w).norm() <= rtol * w.norm(), ((g - w).norm() / w.norm()).item()


@pytest.mark.parametrize("batch_size", [5, None])
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("parameterization", ["jacot", "arora", "paper"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_fused_sgd_equals_autograd_sgd(depth, parameterization, centered, batch_size):
    """train (and train_ensemble with one seed) = plain autograd SGD, parameter by parameter.

    13 points in batches of 5 (last batch 3), reshuffled every epoch; float64. One hidden
    layer takes the rank-one path, two or more the general one; arora has no biases."""
    arch = ntklab.Architecture(depth, parameterization)
    rng = np.random.default_rng(depth)
    X, y = sphere(13, 4, rng), rng.standard_normal(13)
    net = arch.network(9, seed=7, in_features=4, dtype=torch.float64, device=CPU)
    kw = dict(lr=0.4, epochs=6, batch_size=batch_size, centered=centered, device=CPU,
              check_every=4)  # batch orders drawn 4 epochs at a time, then 2  # fmt: skip
    res = train(net, X, y, seed=3, **kw)
    ref = _reference_sgd(net, X, y, lr=0.4, epochs=6, batch_size=batch_size, seed=3,
                         centered=centered)  # fmt: skip
    trained = res.network.network if centered else res.network
    _assert_params_close(trained.parameters(), ref, net.parameters(), rtol=1e-12)
    assert not res.diverged
    (ens,) = train_ensemble(arch, 9, X, y, seeds=[7], dtype=torch.float64, **kw)
    if batch_size is None:  # same path as train: bit for bit
        inner = ens.network.network if centered else ens.network
        for p, q in zip(inner.parameters(), trained.parameters(), strict=True):
            assert torch.equal(p, q)
        np.testing.assert_array_equal(ens.train_loss, res.train_loss)
    # the recorded loss is that of the trained network
    assert res.train_loss[-1] == pytest.approx(np.mean((res.predict(X) - y) ** 2), rel=1e-12)


@pytest.mark.parametrize("depth", [1, 2])
def test_sgd_is_keras_sgd_at_the_seeds_settings(depth):
    """The seed's optimizer (SPEC §6): Keras SGD, lr 0.002, batch 8 (last batch smaller),
    reshuffled every epoch, on the batch mean of the squared error, for Keras Dense layers
    (kernel (in, out), input x/sqrt(d), hidden x/sqrt(width), every weight and bias N(0, 1):
    jacot with sigma_w = beta = 1). Each step is p <- p - lr * d(batch-mean (f - y)^2)/dp."""
    arch = ntklab.Architecture(depth, "jacot", sigma_w=1.0, sigma_b=1.0)
    rng = np.random.default_rng(11)
    m, d, width, lr, epochs, seed = 21, 15, 12, 0.002, 3, 5  # batches 8, 8, 5
    X, y = sphere(m, d, rng), rng.standard_normal(m)
    net = arch.network(width, seed=1, in_features=d, dtype=torch.float64, device=CPU)
    res = train(net, X, y, lr=lr, epochs=epochs, batch_size=8, seed=seed, device=CPU)
    assert res.steps_per_epoch == 3 and res.steps == 9

    # Keras layout: kernels (in, out), biases; forward as in the seed's script
    dense = [m_ for m_ in net.layers if hasattr(m_, "weight")]
    kernels = [m_.weight.detach().t().clone().requires_grad_() for m_ in dense]
    biases = [m_.bias.detach().clone().requires_grad_() for m_ in dense]
    assert all(m_.beta == 1.0 for m_ in dense)

    def model(x):
        z = x / np.sqrt(d)
        for i, (k, b) in enumerate(zip(kernels, biases, strict=True)):
            if i:
                z = torch.relu(z) / np.sqrt(width)
            z = z @ k + b
        return z[:, 0]

    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    gen = torch.Generator().manual_seed(seed)  # ntklab's epoch orders: randperm from the seed
    orders = []
    for _ in range(epochs):
        order = torch.randperm(m, generator=gen)
        orders.append(order)
        for b0 in range(0, m, 8):
            i = order[b0 : b0 + 8]
            loss = torch.mean((yt[i] - model(Xt[i])) ** 2)  # Keras "mse"
            grads = torch.autograd.grad(loss, kernels + biases)
            with torch.no_grad():
                for p, g in zip(kernels + biases, grads, strict=True):
                    p -= lr * g
    assert not torch.equal(orders[0], orders[1])  # reshuffled every epoch
    for mod, k, b in zip(_dense(res.network), kernels, biases, strict=True):
        torch.testing.assert_close(mod.weight.t(), k.detach(), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(mod.bias, b.detach(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.predict(X), model(Xt).detach().numpy(), rtol=1e-12)


def _dense(net):
    return [m for m in net.layers if hasattr(m, "weight")]


def test_train_ensemble_one_seed_is_train_bit_for_bit(data):
    X, y, Xt, yt = data
    arch = ntklab.Architecture(2, "jacot")
    kw = dict(lr=0.3, epochs=12, batch_size=5, record_every=4, X_test=Xt, y_test=yt,
              centered=True, device=CPU)  # fmt: skip
    (ens,) = train_ensemble(arch, 32, X, y, seeds=[6], **kw)
    alone = train(arch.network(32, seed=6, in_features=4, device=CPU), X, y, seed=6, **kw)
    np.testing.assert_array_equal(ens.train_loss, alone.train_loss)
    np.testing.assert_array_equal(ens.test_predictions, alone.test_predictions)
    for p, q in zip(ens.network.parameters(), alone.network.parameters(), strict=True):
        assert torch.equal(p, q)


def test_no_host_synchronization_in_an_epoch(data, monkeypatch):
    """The steps never read a device value back (so they queue on a GPU without waiting):
    within an epoch no tensor is turned into a Python number, bool, list or numpy array,
    nor copied to the CPU."""
    from ntklab.training import engine
    from ntklab.training.fused import fused_sgd
    from ntklab.training.loop import stacked_sgd

    X, y, _, _ = data
    Xt, yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    arch = ntklab.Architecture(2, "paper")
    nets = [arch.network(16, seed=s, in_features=4, device=CPU) for s in range(2)]
    models = [
        fused_sgd(copy.deepcopy(nets[0]), 0.1, Xt, yt, None, 5),
        fused_sgd(copy.deepcopy(nets[0]), 0.1, Xt, yt, None, None),
        stacked_sgd(nets[0], engine.stack_parameters(nets), [0.1, 0.2], Xt, yt, 5),
        stacked_sgd(nets[0], engine.stack_parameters(nets), [0.1, 0.2], Xt, yt, 5, fast=False),
    ]
    perms = torch.stack([torch.randperm(16), torch.randperm(16)])

    def forbidden(*args, **kwargs):
        raise AssertionError("host synchronization in the training loop")

    outs = [torch.empty(mod.k) for mod in models]
    for name in ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    for mod, out in zip(models, outs, strict=True):
        mod.epoch(perms[: mod.k] if mod is not models[1] else None, out)
    monkeypatch.undo()
    assert all(torch.isfinite(out).all() for out in outs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_no_host_synchronization_on_cuda(data):
    from ntklab.training import engine
    from ntklab.training.fused import fused_sgd
    from ntklab.training.loop import stacked_sgd

    X, y, _, _ = data
    dev = torch.device("cuda")
    Xt, yt = torch.as_tensor(X, device=dev).float(), torch.as_tensor(y, device=dev).float()
    for depth in (1, 2):
        arch = ntklab.Architecture(depth, "jacot")
        net = arch.network(64, seed=0, in_features=4, device=dev)
        nets = [arch.network(64, seed=s, in_features=4, device=dev) for s in range(2)]
        perms = torch.stack([torch.randperm(16), torch.randperm(16)]).to(dev)
        models = [fused_sgd(net, 0.1, Xt, yt, None, 5)] + [
            stacked_sgd(nets[0], engine.stack_parameters(nets), [0.1, 0.2], Xt, yt, 5, fast=f)
            for f in (True, False)
        ]
        for model in models:
            out = torch.empty(model.k, device=dev)
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                model.epoch(perms[: model.k], out)
            finally:
                torch.cuda.set_sync_debug_mode("default")
            assert torch.isfinite(out).all()


def test_float32_at_the_seeds_width():
    """NN1 at width 10 000 in float32 (the seed's Keras dtype) follows the float64 run."""
    arch = ntklab.Architecture(1, "jacot", sigma_w=1.0, sigma_b=1.0)
    rng = np.random.default_rng(2)
    X, y = sphere(21, 15, rng), rng.standard_normal(21)
    kw = dict(lr=0.002, epochs=4, batch_size=8, seed=1, device=CPU)
    runs = []
    for dtype in (torch.float32, torch.float64):
        net = arch.network(10_000, seed=0, in_features=15, dtype=dtype, device=CPU)
        runs.append(train(net, X, y, **kw))
    r32, r64 = runs
    assert next(r32.network.parameters()).dtype == torch.float32
    moved = r64.predict(X) - r64.initial_predict(X)
    assert np.abs(moved).max() > 1e-3
    np.testing.assert_allclose(r32.predict(X), r64.predict(X), rtol=0, atol=1e-5)
    np.testing.assert_allclose(r32.train_loss, r64.train_loss, rtol=1e-5)


@pytest.mark.parametrize("group_size", [3, 1])
@pytest.mark.parametrize("batch_size, centered", [(None, False), (5, True), (5, False)])
def test_ensemble_with_one_data_set_per_member(batch_size, centered, group_size):
    """X (k, m, d), y (k, m): member j is trained on its own data, as train would alone."""
    arch = ntklab.Architecture(2, "paper")
    rng = np.random.default_rng(8)
    seeds = [3, 1, 4]
    X = np.stack([sphere(13, 4, rng) for _ in seeds])
    y = rng.standard_normal((3, 13))
    Xt = np.stack([sphere(5, 4, rng) for _ in seeds])
    yt = rng.standard_normal((3, 5))
    kw = dict(epochs=9, batch_size=batch_size, record_every=3, centered=centered, device=CPU)
    ens = train_ensemble(arch, 24, X, y, seeds=seeds, lr="auto", X_test=Xt, y_test=yt,
                         dtype=torch.float64, group_size=group_size, **kw)  # fmt: skip
    for j, (s, r) in enumerate(zip(seeds, ens, strict=True)):
        net = arch.network(24, seed=s, in_features=4, dtype=torch.float64, device=CPU)
        alone = train(net, X[j], y[j], seed=s, lr="auto", X_test=Xt[j], y_test=yt[j], **kw)
        assert r.lr == alone.lr == pytest.approx(auto_lr(arch.ntk(X[j])), rel=1e-12)
        np.testing.assert_array_equal(r.epochs, alone.epochs)
        np.testing.assert_allclose(r.train_loss, alone.train_loss, rtol=1e-10)
        np.testing.assert_allclose(r.test_rmse, alone.test_rmse, rtol=1e-10)
        np.testing.assert_allclose(r.predict(Xt[j]), alone.predict(Xt[j]), rtol=1e-10, atol=1e-12)
    assert not np.allclose(ens[0].train_loss, ens[1].train_loss)


def test_ensemble_data_per_member_bad_shapes(data):
    X, y, _, _ = data
    arch = ntklab.Architecture(1, "paper")
    kw = dict(lr=0.1, epochs=1, device=CPU)
    with pytest.raises(ValueError, match="k = len\\(seeds\\) = 3"):
        train_ensemble(arch, 8, np.stack([X, X]), np.stack([y, y]), seeds=[0, 1, 2], **kw)
    with pytest.raises(ValueError, match="X_test must be \\(k, n, d\\)"):
        train_ensemble(arch, 8, np.stack([X, X]), np.stack([y, y]), seeds=[0, 1], X_test=X,
                       y_test=y, **kw)  # fmt: skip
    Xn = np.stack([X, X])
    Xn[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        train_ensemble(arch, 8, Xn, np.stack([y, y]), seeds=[0, 1], **kw)


class _Tanh(torch.nn.Module):
    """Not a network of ntklab's dense layers and ReLUs: trained by autograd."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.a = torch.nn.Linear(4, 6).double()
        self.b = torch.nn.Linear(6, 1).double()
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))

    def forward(self, x):
        return self.b(torch.tanh(self.a(x))).squeeze(-1)


def test_other_modules_and_frozen_parameters_take_autograd(data):
    X, y, _, _ = data
    net = _Tanh()
    res = train(net, X, y, lr=0.05, epochs=3, batch_size=5, seed=2, device=CPU)
    ref = copy.deepcopy(net)
    opt = torch.optim.SGD(ref.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(2)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    for _ in range(3):
        order = torch.randperm(16, generator=gen)
        for b0 in range(0, 16, 5):
            i = order[b0 : b0 + 5]
            opt.zero_grad()
            (ref(Xt[i]) - yt[i]).square().mean().backward()
            opt.step()
    for p, q in zip(res.network.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-14, atol=1e-14)
    # an ntklab network with a frozen layer: that layer stays, the others train
    frozen = ARCH.network(8, seed=0, in_features=4, dtype=torch.float64, device=CPU)
    frozen.layers[0].weight.requires_grad_(False)
    res = train(frozen, X, y, lr=0.5, epochs=3, batch_size=5, device=CPU)
    assert torch.equal(res.network.layers[0].weight, frozen.layers[0].weight)
    assert not torch.equal(res.network.layers[0].bias, frozen.layers[0].bias)


def test_a_trials_networks_stacked_equal_trained_alone(tmp_path):
    """run_trial(stacked=True) (CUDA's default, forced here on a CPU) trains the trial's two
    networks of one architecture in one stacked run, and records what training each alone
    records (float32: round-off tolerance)."""
    from study_helpers import write_tiny

    from ntklab import study
    from ntklab.config import load_config

    cfg = load_config(str(write_tiny(tmp_path, width=32, epochs=12))).points[0].config
    nn1 = next(m for m in cfg.methods if m.name == "NN1")
    other = nn1.model_copy(update={"name": "NN1b", "lr": 0.3})
    cfg = cfg.model_copy(update={"methods": [nn1, other]})
    ctx, _ = study.make_data(cfg, 1)
    jobs = [(1, ctx, m) for m in cfg.methods]
    trained = study.train_networks(jobs, study_seed=cfg.study.seed, device=CPU, stacked=True)
    assert sorted(trained) == [(1, "NN1"), (1, "NN1b")] and trained[(1, "NN1b")].lr == 0.3
    assert study.train_networks(jobs, study_seed=7, device=CPU) == {}
    rows = []
    for stacked in (True, False):
        rec = study.run_trial(cfg, trial=1, device=CPU, stacked=stacked)
        assert rec.status == "done" and not rec.errors
        rows.append({(m, k, s): v for (m, k, s, v) in rec.rows if k != "fit_seconds"})
    together, alone = rows
    assert together.keys() == alone.keys()
    assert {m for m, _, _ in together} == {"NN1", "NN1b"}
    for key, value in alone.items():
        assert together[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert together[("NN1", "rmse", -1)] != together[("NN1b", "rmse", -1)]


def test_engine_forward_is_the_modules_forward():
    """The functional definition (functional_call, vmap over stacked members) computes what
    each network's own forward computes; dense_specs is None for other modules."""
    from ntklab.training import engine

    arch = ntklab.Architecture(2, "paper")
    nets = [arch.network(6, seed=s, in_features=3, dtype=torch.float64, device=CPU)
            for s in range(3)]  # fmt: skip
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(5, 3, dtype=torch.float64, generator=gen)
    Xk = torch.randn(3, 5, 3, dtype=torch.float64, generator=gen)
    params = engine.stack_parameters(nets)
    shared, own = (
        engine.stacked_forward(nets[0], params, X),
        engine.stacked_forward(nets[0], params, Xk),
    )
    for j, net in enumerate(nets):
        with torch.no_grad():
            torch.testing.assert_close(engine.forward(net, engine.parameters(net), X), net(X))
            torch.testing.assert_close(shared[j], net(X), rtol=1e-14, atol=1e-15)
            torch.testing.assert_close(own[j], net(Xk[j]), rtol=1e-14, atol=1e-15)
    copies = [copy.deepcopy(n) for n in nets]
    for c in copies:
        with torch.no_grad():
            for p in c.parameters():
                p.zero_()
    engine.unstack_parameters(params, copies)
    for a, b in zip(copies, nets, strict=True):
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.equal(p, q)
    specs = engine.dense_specs(nets[0])
    assert [s.weight for s in specs] == ["layers.0.weight", "layers.2.weight", "layers.4.weight"]
    assert engine.dense_specs(_Tanh()) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_stacked_on_cuda_equals_alone_on_cpu(data):
    """CUDA's default (networks stacked) trains what train does on a CPU, float64."""
    X, y, Xt, yt = data
    kw = dict(lr=0.8, epochs=20, batch_size=5, record_every=5, X_test=Xt, y_test=yt)
    ens = train_ensemble(ARCH, 32, X, y, seeds=[1, 2, 3], dtype=torch.float64, device="cuda", **kw)
    for s, r in zip([1, 2, 3], ens, strict=True):
        assert next(r.network.parameters()).device.type == "cuda"
        net = ARCH.network(32, seed=s, in_features=4, dtype=torch.float64, device=CPU)
        alone = train(net, X, y, seed=s, device=CPU, **kw)
        np.testing.assert_allclose(r.train_loss, alone.train_loss, rtol=1e-10)
        np.testing.assert_allclose(r.predict(Xt), alone.predict(Xt), rtol=1e-10, atol=1e-12)


def test_several_trials_networks_stacked_equal_each_trial_alone(tmp_path):
    """run_trials(stacked=True) trains the networks of several trials in one stacked run,
    each member on its own trial's data, and records what run_trial records for each trial
    alone (float32: round-off tolerance)."""
    from study_helpers import write_tiny

    from ntklab import study
    from ntklab.config import load_config

    cfg = load_config(str(write_tiny(tmp_path, width=32, epochs=12))).points[0].config
    seen = []
    together = study.run_trials(
        cfg, trials=[0, 2, 1], device=CPU, stacked=True, on_method=lambda t, m: seen.append(t)
    )
    assert [r.trial for r in together] == [0, 2, 1] and seen[0] == 0 and set(seen) == {0, 1, 2}
    for rec in together:
        alone = study.run_trial(cfg, trial=rec.trial, device=CPU, stacked=False)
        assert rec.status == alone.status == "done" and not rec.errors and rec.seed == alone.seed
        a = {(m, k, s): v for (m, k, s, v) in alone.rows if k != "fit_seconds"}
        b = {(m, k, s): v for (m, k, s, v) in rec.rows if k != "fit_seconds"}
        assert a.keys() == b.keys() and any(m == "NN1" for m, _, _ in a)
        for key, value in a.items():
            assert b[key] == pytest.approx(value, rel=1e-4, abs=1e-6), (rec.trial, key)
        assert rec.wall_time > 0
    # the stacked run really stacked the three trials' NN1 (one train_ensemble call)
    ctxs = [study.make_data(cfg, t)[0] for t in (0, 1)]
    nn1 = next(m for m in cfg.methods if m.name == "NN1")
    trained = study.train_networks(
        [(0, ctxs[0], nn1), (1, ctxs[1], nn1)], study_seed=cfg.study.seed, device=CPU,
        stacked=True,
    )  # fmt: skip
    assert sorted(trained) == [(0, "NN1"), (1, "NN1")]
    assert trained[(0, "NN1")].test_rmse[-1] != trained[(1, "NN1")].test_rmse[-1]
