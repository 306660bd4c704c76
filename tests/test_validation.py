"""Bad input gives a ValueError (or a one-line CLI error) naming the argument; the verify CLI."""

from __future__ import annotations

import ast
import functools
import inspect
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tomllib
from click.testing import CliRunner
from conftest import unit_rows

import ntklab
import ntklab._validation as validation
import ntklab.data
import ntklab.empirical
import ntklab.equivalence
import ntklab.networks
import ntklab.predict
import ntklab.published
import ntklab.sklearn_kernels
import ntklab.study
import ntklab.training
import ntklab.verify
from ntklab.cli import main
from ntklab.kernels import laplacian, rbf

X = unit_rows(5, 3, seed=51)
ARCH = ntklab.Architecture(2, "paper")
KERNEL_FUNCS = [ARCH.nngp, ARCH.ntk, ARCH.kernels, laplacian, rbf]


@pytest.mark.parametrize("k", KERNEL_FUNCS)
def test_bad_arrays(k):
    for bad_value, pattern in ((np.nan, "NaN"), (np.inf, "infinite")):
        bad = X.copy()
        bad[2, 1] = bad_value
        with pytest.raises(ValueError, match=f"X contains .*{pattern}"):
            k(bad)
        with pytest.raises(ValueError, match=f"Z contains .*{pattern}"):
            k(X, bad)
    with pytest.raises(ValueError, match="X must be a 2-D array"):
        k(X[0])
    with pytest.raises(ValueError, match="X must be a 2-D array"):
        k(X[None])
    with pytest.raises(ValueError, match="Z has 2 features but 3"):
        k(X, X[:, :2])
    with pytest.raises(ValueError, match="X must be a numeric array"):
        k([["a", "b", "c"]])
    with pytest.raises(ValueError, match="at least one sample"):
        k(np.empty((0, 3)))


def test_bad_architecture():
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        ntklab.Architecture(0)
    with pytest.raises(ValueError, match="depth"):
        ntklab.Architecture(1.5)
    with pytest.raises(
        ValueError,
        match=r"parameterization must be one of \['arora', 'jacot', 'mup', 'paper', 'standard'\]",
    ):
        ntklab.Architecture(1, "ntk")
    with pytest.raises(ValueError, match="sigma_w must be > 0"):
        ntklab.Architecture(1, sigma_w=-1.0)
    with pytest.raises(ValueError, match="sigma_b must be >= 0"):
        ntklab.Architecture(1, sigma_b=-0.1)
    with pytest.raises(ValueError, match="sigma_w must be finite"):
        ntklab.Architecture(1, sigma_w=float("nan"))
    with pytest.raises(ValueError, match="width must be an integer >= 1"):
        ARCH.network(0, seed=0, in_features=3)
    with pytest.raises(ValueError, match="in_features"):
        ARCH.network(4, seed=0, in_features=0)
    with pytest.raises(ValueError, match="seed"):
        ARCH.network(4, seed=-1, in_features=3)
    with pytest.raises(ValueError, match="length_scale"):
        laplacian(X, length_scale=0.0)
    with pytest.raises(ValueError, match="X has 4 features"):
        ARCH.network(4, seed=0, in_features=3, device="cpu").predict(np.ones((2, 4)))


def test_verify_library_rows():
    rows = ntklab.verify.verify(width=64, n_samples=20, depths=[1], parameterizations=["paper"])
    assert [(r.parameterization, r.depth, r.kernel) for r in rows] == [
        ("paper", 1, "nngp"),
        ("paper", 1, "ntk"),
    ]
    assert all(r.passed and 0 < r.mc_error < r.threshold for r in rows)
    frame = ntklab.verify.to_frame(rows)
    assert list(frame["kernel"]) == ["nngp", "ntk"] and frame["passed"].all()
    with pytest.raises(ValueError, match="parameterizations"):
        ntklab.verify.verify(parameterizations=["bogus"])


@pytest.mark.slow
def test_verify_cli_passes():
    result = CliRunner().invoke(main, ["verify", "--width", "128", "--samples", "200"])
    assert result.exit_code == 0, result.output
    assert result.output.count("PASS") == 24 and "FAIL" not in result.output
    assert "24/24 rows pass" in result.output  # jacot, arora, paper, standard x depths 1-3


def test_verify_cli_fails_on_failure(monkeypatch):
    monkeypatch.setattr(ntklab.verify, "threshold", lambda *a, **k: 0.0)
    args = ["verify", "--width", "16", "--samples", "4", "--depths", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "FAIL" in result.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--depths", "1,x"], "--depths must be comma-separated integers"),
        (["--depths", "0"], "--depths must be comma-separated integers >= 1"),
        (["--parameterizations", "jacot,foo"], "parameterizations must be among"),
        (["--width", "0"], "width must be an integer >= 1"),
        (["--samples", "1"], "n_samples must be an integer >= 2"),
    ],
)
def test_verify_cli_bad_options(args, message):
    result = CliRunner().invoke(main, ["verify", *args])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and message in result.output
    assert "Traceback" not in result.output


def test_verify_cli_defaults_are_the_functions_defaults():
    """The flags' defaults and help show the defaults of the functions they call."""
    plain = inspect.signature(ntklab.verify.verify).parameters
    published = inspect.signature(ntklab.verify.verify_published).parameters
    flags = {p.name: p.default for p in main.commands["verify"].params}
    assert flags["points"] == plain["n_points"].default == published["n_points"].default
    assert flags["seed"] == plain["seed"].default
    assert flags["depths"].split(",") == [str(d) for d in plain["depths"].default]
    assert flags["parameterizations"].split(",") == list(plain["parameterizations"].default)
    assert flags["activations"].split(",") == list(plain["activations"].default)
    assert flags["nngp_estimator"] == published["nngp_estimator"].default
    text = " ".join(CliRunner().invoke(main, ["verify", "--help"]).output.split())
    for name, flag in (("width", "width"), ("n_samples", "samples")):
        default, other = plain[name].default, published[name].default
        assert f"--{flag}" in text and f"[default: {default}; {other} with --published]" in text


# ---- validate once, at the boundary (_validation's module docstring) ----------------------

#: The modules a kernel method's trial goes through (study -> data -> architecture ->
#: kernels / published -> linalg -> predict): none of them re-checks the trial's arrays.
TRIAL_PATH = {
    f"ntklab.{m}"
    for m in "study data architecture kernels published linalg predict regressor".split()
} | {f"ntklab.study.{m}" for m in ("context", "methods", "stacking", "run")}

KERNEL_TRIAL = """
[study]
name = "checks"
trials = 1
seed = 3

[data]
n = 30
d = 3
n_train = 20

[data.generator]
kind = "published"
kernel = "NTKB1"
normalization = "corrected"

[[methods]]
name = "GP1"
kind = "nngp"
depth = 1
parameterization = "jacot"

[[methods]]
name = "NTKB1"
kind = "ntk"
depth = 1
parameterization = "paper"

[[methods]]
name = "NTKB1T"
kind = "ntk_time"
depth = 1
parameterization = "paper"
lr = 0.5
epochs = 20

[[methods]]
name = "K1"
kind = "published"
kernel = "K1"

[[methods]]
name = "GP2pub"
kind = "published"
kernel = "GP2"

[[methods]]
name = "L"
kind = "laplacian"

[[methods]]
name = "R"
kind = "rbf"
ridge = 1e-6
"""


@pytest.fixture
def checks(monkeypatch):
    """Record every array check as ``(check, calling module, the array)``.

    The checks are patched in every loaded ``ntklab`` module (each imports them by name);
    the ``check_matrix`` calls that ``check_pair`` makes itself are not counted. The arrays
    are kept, so that ``id`` tells distinct arrays apart.
    """
    calls: list[tuple[str, str, object]] = []
    for fname in ("check_matrix", "check_pair", "check_vector"):
        original = getattr(validation, fname)

        def counting(*args, _fname=fname, _original=original, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller != validation.__name__:
                calls.append((_fname, caller, args[0] if args else kwargs.get("X")))
            return _original(*args, **kwargs)

        for name, module in list(sys.modules.items()):
            if name.startswith("ntklab") and getattr(module, fname, None) is original:
                monkeypatch.setattr(module, fname, counting)
    return calls


def _checked_twice(calls) -> list:
    """The arrays that were checked more than once (by id; the calls keep them alive)."""
    counts = Counter(id(a) for _, _, a in calls)
    return [(f, m) for f, m, a in calls if counts[id(a)] > 1]


def test_a_kernel_trial_does_not_recheck_its_arrays(checks):
    config = tomllib.loads(KERNEL_TRIAL)
    rec = ntklab.study.run_trial(config, trial=0)
    assert rec.status == "done" and not rec.errors, (rec.error, rec.errors)
    assert {m for m, k, _, _ in rec.rows if k == "rmse"} == {c["name"] for c in config["methods"]}
    # the trial makes its own data from a validated config: nothing on its path checks again
    # (the counting works: the public calls below are counted)
    assert [(f, m) for f, m, _ in checks if m in TRIAL_PATH] == []
    assert _checked_twice(checks) == []


def _network_trial_config() -> dict:
    """TINY with a second network whose batch size exceeds the training set (full batch,
    resolved by the unchecked training) and an ``ntk_time`` method that starts from NN1's
    initial function (``f0 = "network"``)."""
    from study_helpers import TINY

    config = tomllib.loads(TINY.format(trials=2, width=8, epochs=4))
    nn1 = next(m for m in config["methods"] if m["name"] == "NN1")
    config["methods"] += [
        {**nn1, "name": "NN1b", "batch_size": 100},  # >= n_train: full-batch descent
        {"name": "NTKB1F0", "kind": "ntk_time", "depth": 1, "parameterization": "paper",
         "epochs": 4, "network": "NN1", "width": 8, "f0": "network"},
    ]  # fmt: skip
    return config


@pytest.mark.parametrize("stacked", [False, True])
def test_a_network_trial_makes_no_array_checks(stacked, checks):
    config = _network_trial_config()
    records = ntklab.study.run_trials(config, trials=[0, 1], device="cpu", stacked=stacked)
    for rec in records:
        assert rec.status == "done" and not rec.errors, (rec.error, rec.errors)
        metrics = {(m, k) for m, k, _, _ in rec.rows}
        # the networks trained (auto lr), were compared with their NTK, and f0 was used
        assert {("NN1", "nn_lin_rms"), ("NN1b", "nn_lin_rms"), ("NTKB1F0", "rmse")} <= metrics
    # training, predictions, empirical kernels and the equivalence measures all run on the
    # trial's own data with the _unchecked versions: no array is checked anywhere (the
    # counting works: the public calls below are counted)
    assert [(f, m) for f, m, _ in checks] == []


def _public_calls():
    X2 = unit_rows(4, 3, seed=52)
    arch = ntklab.Architecture(1, "paper")
    K, Ks = arch.ntk(X), arch.ntk(X2, X)
    y = np.linspace(-1.0, 1.0, X.shape[0])
    return {
        "kernels": (lambda: arch.kernels(X), 1),
        "kernels_Z": (lambda: arch.kernels(X, X2), 1),
        "ntk": (lambda: arch.ntk(X), 1),
        "nngp": (lambda: arch.nngp(X2, X), 1),
        "laplacian": (lambda: laplacian(X), 1),
        "rbf": (lambda: rbf(X, X2), 1),
        "published_kernels": (lambda: ntklab.published_kernels(X), 1),
        "published_kernel_K1": (lambda: ntklab.published_kernel("K1", X, X2), 1),
        "PublishedKernel": (lambda: ntklab.PublishedKernel("NTKB2")(X), 1),
        "NTKKernel": (lambda: ntklab.NTKKernel(2)(X), 1),
        "NTKKernel.diag": (lambda: ntklab.NTKKernel(2).diag(X), 1),
        "project_to_sphere": (lambda: ntklab.data.project_to_sphere(X), 1),
        "gradient_descent_mse": (
            lambda: ntklab.gradient_descent_mse(K, Ks, y, lr=0.1, steps=[1.0, np.inf]),
            3,  # y_train, ntk_train, ntk_test_train
        ),
        **_network_calls(arch, X2, y),
    }


@functools.cache
def _trained(centered: bool = False):
    """A small network of ``Architecture(1, "paper")`` trained on ``X`` (once per worker)."""
    arch = ntklab.Architecture(1, "paper")
    y = np.linspace(-1.0, 1.0, X.shape[0])
    (result,) = ntklab.train_ensemble(
        arch, 16, X, y, seeds=[3], lr=0.5, epochs=5, centered=centered, device="cpu"
    )
    return result


def _network_calls(arch, X2, y):
    y2 = np.linspace(0.5, -0.5, X2.shape[0])
    net = arch.network(16, seed=1, in_features=3, device="cpu")
    opts = dict(seeds=[0, 1], epochs=3, device="cpu")
    result = _trained()
    return {
        # X, y, X_test, y_test once each; lr="auto" computes the NTK of the checked X
        "train_ensemble": (
            lambda: ntklab.train_ensemble(arch, 8, X, y, X_test=X2, y_test=y2, lr=0.3, **opts),
            4,
        ),
        "train_ensemble_auto_lr": (
            lambda: ntklab.train_ensemble(arch, 8, X, y, lr="auto", batch_size=2, **opts),
            2,
        ),
        "train_auto_lr": (
            lambda: ntklab.train(net, X, y, lr="auto", epochs=2, X_test=X2, y_test=y2),
            4,
        ),
        "auto_lr": (lambda: ntklab.auto_lr(arch.ntk(X)), 2),  # arch.ntk's X, then its kernel
        "predict_numpy": (lambda: ntklab.networks.predict_numpy(net, X), 1),
        "FullyConnectedNetwork.predict": (lambda: net.predict(X), 1),
        "TrainResult.predict": (lambda: result.predict(X), 1),
        "TrainResult.initial_predict": (lambda: result.initial_predict(X2), 1),
        "empirical_ntk": (lambda: ntklab.empirical_ntk(net, X), 1),
        "empirical_ntk_Z": (lambda: ntklab.empirical_ntk(net, X, X2), 1),  # one check_pair
        "equivalence_metrics": (
            lambda: ntklab.equivalence_metrics(result, arch, X, y, X2, y2, max_kernel_points=3),
            4,  # X_train, y_train, X_test, y_test
        ),
    }


@pytest.mark.parametrize("name", list(_public_calls()))
def test_a_public_call_checks_each_input_once(name, checks):
    call, expected = _public_calls()[name]
    checks.clear()
    call()
    assert len(checks) == expected, [(f, m) for f, m, _ in checks]
    assert _checked_twice(checks) == []


def test_unchecked_versions_equal_the_checked_ones():
    """The ``_unchecked`` implementations are the public functions minus their checks."""
    from ntklab.kernels import laplacian_unchecked, rbf_unchecked
    from ntklab.predict import gradient_descent_mse_unchecked
    from ntklab.published import published_kernels_unchecked

    X2 = unit_rows(4, 3, seed=53)
    for Z in (None, X2):
        for a, b in zip(ARCH.kernels(X, Z), ARCH.kernels_unchecked(X, Z), strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(laplacian(X, Z), laplacian_unchecked(X, Z))
        np.testing.assert_array_equal(
            rbf(X, Z, length_scale=2.0), rbf_unchecked(X, Z, length_scale=2.0)
        )
        pub = ntklab.published_kernels(X, Z, normalization="corrected")
        raw = published_kernels_unchecked(X, Z, normalization="corrected")
        assert list(pub) == list(raw)
        for name in pub:
            np.testing.assert_array_equal(pub[name], raw[name])
    K, Ks = ARCH.ntk(X), ARCH.ntk(X2, X)
    y = np.linspace(-1.0, 1.0, X.shape[0])
    f0 = np.cos(np.arange(X.shape[0])), np.sin(np.arange(X2.shape[0]))
    for steps in (7, [0.0, 3.0, np.inf]):
        a = ntklab.gradient_descent_mse(
            K, Ks, y, lr=0.2, steps=steps, f0_train=f0[0], f0_test=f0[1]
        )
        b = gradient_descent_mse_unchecked(
            K, Ks, y, lr=0.2, steps=steps, f0_train=f0[0], f0_test=f0[1]
        )
        for u, v in zip(a, b, strict=True):
            assert u.shape == v.shape
            np.testing.assert_array_equal(u, v)


def _assert_same_results(a, b):
    """Two lists of TrainResult are equal bit for bit (curves, rates, predictions)."""
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        for field in ("epochs", "train_loss", "test_rmse", "test_predictions"):
            x, z = getattr(u, field), getattr(v, field)
            assert (x is None) == (z is None), field
            if x is not None:
                np.testing.assert_array_equal(x, z)
        for field in ("lr", "diverged", "diverged_epoch", "centered", "steps_per_epoch",
                      "batch_size"):  # fmt: skip
            assert getattr(u, field) == getattr(v, field), field
        np.testing.assert_array_equal(u.predict(X), v.predict_unchecked(X))


def test_unchecked_network_versions_equal_the_checked_ones():
    """``train_ensemble``, ``auto_lr``, the predictions, ``empirical_ntk`` and
    ``equivalence_metrics`` minus their checks give the same results, bit for bit."""
    from ntklab.empirical import empirical_ntk_unchecked
    from ntklab.equivalence import equivalence_metrics_unchecked
    from ntklab.networks import predict_numpy_unchecked
    from ntklab.training import auto_lr_unchecked, train_ensemble_unchecked

    arch = ntklab.Architecture(1, "paper")
    X2 = unit_rows(4, 3, seed=54)
    y = np.linspace(-1.0, 1.0, X.shape[0])
    y2 = np.cos(np.arange(X2.shape[0]))
    K = arch.kernels_unchecked(X)[1]
    lr = auto_lr_unchecked(K, c=0.4)
    assert lr == ntklab.auto_lr(arch.ntk(X), c=0.4)
    opts = dict(epochs=4, device="cpu", X_test=X2, y_test=y2)
    # shared data; batch_size >= m and record_every=None resolved alike
    a = ntklab.train_ensemble(arch, 8, X, y, seeds=[0, 1], lr="auto", batch_size=9, **opts)
    b = train_ensemble_unchecked(
        arch, 8, X, y, seeds=[0, 1], lrs=[auto_lr_unchecked(K)] * 2, batch_size=9, **opts
    )
    assert a[0].batch_size is None and len(a[0].epochs) == 5  # full batch, every epoch
    _assert_same_results(a, b)
    # one data set per member, stacked, mini-batches, centered
    Xk, yk = np.stack([X, X[::-1]]), np.stack([y, -y])
    Xk2, yk2 = np.stack([X2, X2]), np.stack([y2, y2])
    kw = dict(batch_size=2, centered=True, stacked=True, epochs=3, device="cpu")
    a = ntklab.train_ensemble(arch, 8, Xk, yk, seeds=[2, 3], lr=[0.3, 0.2], X_test=Xk2,
                              y_test=yk2, **kw)  # fmt: skip
    b = train_ensemble_unchecked(arch, 8, Xk, yk, seeds=[2, 3], lrs=[0.3, 0.2], X_test=Xk2,
                                 y_test=yk2, **kw)  # fmt: skip
    _assert_same_results(a, b)
    for result in (a[0], _trained(), _trained(centered=True)):
        np.testing.assert_array_equal(
            result.initial_predict(X2), result.initial_predict_unchecked(X2)
        )
        net = result.initial_network
        np.testing.assert_array_equal(
            ntklab.networks.predict_numpy(net, X2), predict_numpy_unchecked(net, X2)
        )
        for Z in (None, X2):
            np.testing.assert_array_equal(
                ntklab.empirical_ntk(net, X, Z), empirical_ntk_unchecked(net, X, Z)
            )
        e = ntklab.equivalence_metrics(result, arch, X, y, X2, y2, max_kernel_points=4, seed=1)
        f = equivalence_metrics_unchecked(result, arch, X, y, X2, y2, max_kernel_points=4, seed=1)
        assert list(e.metrics) == list(f.metrics) and list(e.curves) == list(f.curves)
        np.testing.assert_array_equal(list(e.metrics.values()), list(f.metrics.values()))
        for name in e.curves:
            for u, v in zip(e.curves[name], f.curves[name], strict=True):
                np.testing.assert_array_equal(u, v)


#: This helper's modules; the report package has its own owner.
OWN_MODULES = (
    "_validation architecture data equivalence kernels linalg predict published regressor "
    "sklearn_kernels study verify"
).split()


@pytest.mark.parametrize("module", OWN_MODULES)
def test_no_private_names_imported_across_modules(module):
    path = Path(ntklab.__file__).parent / f"{module}.py"
    paths = [path] if path.exists() else sorted(path.with_suffix("").glob("*.py"))  # a package
    trees = [ast.parse(p.read_text(encoding="utf-8")) for p in paths]
    private = [
        (node.module, alias.name, node.lineno)
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level >= 1
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []


def test_data_is_upstream_of_predict_and_linalg_imports_no_ntklab_module():
    for module, banned in (("data", ("predict", "study", "regressor")), ("linalg", None)):
        tree = ast.parse((Path(ntklab.__file__).parent / f"{module}.py").read_text("utf-8"))
        imported = {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level >= 1
        }
        if banned is None:
            assert imported == set(), imported
        else:
            assert imported.isdisjoint(banned), imported
