"""Bad input gives a ValueError (or a one-line CLI error) naming the argument; the verify CLI."""

from __future__ import annotations

import ast
import functools
import inspect
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import unit_rows

import ntklab
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


# ---- validate once, at the boundary: check_input (_validation's module docstring) ----------


@functools.cache
def _trained(centered: bool = False):
    """A small network of ``Architecture(1, "paper")`` trained on ``X`` (once per worker)."""
    arch = ntklab.Architecture(1, "paper")
    y = np.linspace(-1.0, 1.0, X.shape[0])
    (result,) = ntklab.train_ensemble(
        arch, 16, X, y, seeds=[3], lr=0.5, epochs=5, centered=centered, device="cpu"
    )
    return result


def _trusted_calls():
    """``{name: call(check_input)}`` for every public function that takes ``check_input``,
    each on valid float64 data (``Z=None`` for a symmetric kernel, as the trusted path
    requires)."""
    from ntklab.published import published_kernels
    from ntklab.regimes import EmpiricalKernel

    arch = ntklab.Architecture(1, "paper")
    X2 = unit_rows(4, 3, seed=53)
    y, y2 = np.linspace(-1.0, 1.0, X.shape[0]), np.cos(np.arange(X2.shape[0]))
    K, Ks = arch.ntk(X), arch.ntk(X2, X)
    f0 = np.cos(np.arange(X.shape[0])), np.sin(np.arange(X2.shape[0]))
    net = arch.network(16, seed=1, in_features=3, device="cpu")
    Xk, yk = np.stack([X, X[::-1]]), np.stack([y, -y])
    Xk2, yk2 = np.stack([X2, X2]), np.stack([y2, y2])
    lr_auto = ntklab.auto_lr(K)
    calls = {
        "auto_lr": lambda c: ntklab.auto_lr(K, c=0.4, check_input=c),
        "predict_numpy": lambda c: ntklab.networks.predict_numpy(net, X2, check_input=c),
        "EmpiricalKernel.kernels": lambda c: EmpiricalKernel(net).kernels(X2, X, check_input=c),
        # shared data, full batch (batch_size >= m), record_every=None resolved alike
        "train_ensemble": lambda c: ntklab.train_ensemble(
            arch, 8, X, y, seeds=[0, 1], lr="auto" if c else [lr_auto] * 2, batch_size=9,
            epochs=4, device="cpu", X_test=X2, y_test=y2, check_input=c,
        ),
        # one data set per member, stacked, mini-batches, centered
        "train_ensemble_stacked": lambda c: ntklab.train_ensemble(
            arch, 8, Xk, yk, seeds=[2, 3], lr=[0.3, 0.2], X_test=Xk2, y_test=yk2, batch_size=2,
            centered=True, stacked=True, epochs=3, device="cpu", check_input=c,
        ),
    }  # fmt: skip
    for Z, tag in ((None, ""), (X2, "_Z")):
        calls |= {
            "kernels" + tag: lambda c, Z=Z: ARCH.kernels(X, Z, check_input=c),
            "laplacian" + tag: lambda c, Z=Z: laplacian(X, Z, check_input=c),
            "rbf" + tag: lambda c, Z=Z: rbf(X, Z, length_scale=2.0, check_input=c),
            "published_kernels" + tag: lambda c, Z=Z: published_kernels(
                X, Z, normalization="corrected", check_input=c
            ),
            "empirical_ntk" + tag: lambda c, Z=Z: ntklab.empirical_ntk(net, X, Z, check_input=c),
        }
    for steps in (7, [0.0, 3.0, np.inf]):
        calls[f"gradient_descent_mse_{np.ndim(steps)}"] = lambda c, steps=steps: (
            ntklab.gradient_descent_mse(
                K, Ks, y, lr=0.2, steps=steps, f0_train=f0[0], f0_test=f0[1], check_input=c
            )
        )
    for centered in (False, True):
        tag = "_centered" if centered else ""
        calls |= {
            "TrainResult.predict" + tag: lambda c, r=centered: _trained(r).predict(
                X2, check_input=c
            ),
            "TrainResult.initial_predict" + tag: lambda c, r=centered: _trained(r).initial_predict(
                X2, check_input=c
            ),
            "equivalence_metrics" + tag: lambda c, r=centered: ntklab.equivalence_metrics(
                _trained(r), arch, X, y, X2, y2, max_kernel_points=4, seed=1, check_input=c
            ),
        }
    return calls


def _assert_identical(a, b, where="result"):
    """``a`` and ``b`` are equal bit for bit: arrays, numbers, and the fields of a
    :class:`TrainResult` or an :class:`EquivalenceResult`, in containers."""
    if isinstance(a, ntklab.TrainResult):
        for field in ("epochs", "train_loss", "test_rmse", "test_predictions", "lr", "diverged",
                      "diverged_epoch", "centered", "steps_per_epoch", "batch_size"):  # fmt: skip
            _assert_identical(getattr(a, field), getattr(b, field), f"{where}.{field}")
        _assert_identical(a.predict(X), b.predict(X), f"{where}.predict")
    elif isinstance(a, ntklab.EquivalenceResult):
        _assert_identical(a.metrics, b.metrics, f"{where}.metrics")
        _assert_identical(a.curves, b.curves, f"{where}.curves")
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            _assert_identical(u, v, f"{where}[{i}]")
    elif a is None or isinstance(a, (bool, int, str)):
        assert a == b, where
    else:
        assert np.shape(a) == np.shape(b), where
        np.testing.assert_array_equal(a, b, err_msg=where)


@pytest.mark.parametrize("name", list(_trusted_calls()))
def test_check_input_false_gives_the_checked_result(name):
    """On valid input, ``check_input=False`` (no checks) gives what the checked call gives."""
    call = _trusted_calls()[name]
    _assert_identical(call(True), call(False))


def _bad_input_calls():
    """``{name: (call with a NaN in one array, the argument it names)}``: the checked path."""
    arch = ntklab.Architecture(1, "paper")
    bad = X.copy()
    bad[1, 2] = np.nan
    y = np.linspace(-1.0, 1.0, X.shape[0])
    K = arch.ntk(X)
    K_bad = K.copy()
    K_bad[0, 1] = np.nan
    net = arch.network(8, seed=1, in_features=3, device="cpu")
    opts = dict(seeds=[0], lr=0.1, epochs=1, device="cpu")
    return {
        "auto_lr": (lambda: ntklab.auto_lr(K_bad), "ntk_train"),
        "predict_numpy": (lambda: ntklab.networks.predict_numpy(net, bad), "X"),
        "published_kernels": (lambda: ntklab.published_kernels(X, bad), "Z"),
        "empirical_ntk": (lambda: ntklab.empirical_ntk(net, bad), "X"),
        "gradient_descent_mse": (
            lambda: ntklab.gradient_descent_mse(K, K_bad, y, lr=0.1, steps=1),
            "ntk_test_train",
        ),
        "train_ensemble": (lambda: ntklab.train_ensemble(arch, 8, bad, y, **opts), "X"),
        "train_ensemble_y": (lambda: ntklab.train_ensemble(arch, 8, X, bad[:, 2], **opts), "y"),
        "TrainResult.predict": (lambda: _trained().predict(bad), "X"),
        "TrainResult.initial_predict": (lambda: _trained(True).initial_predict(bad), "X"),
        "equivalence_metrics": (
            lambda: ntklab.equivalence_metrics(_trained(), arch, X, y, bad, y),
            "X_test",
        ),
        "equivalence_metrics_kernels": (
            lambda: ntklab.equivalence_metrics(_trained(), arch, X, y, X, y, kernels=(K, K[:2])),
            "kernels",
        ),
    }


@pytest.mark.parametrize("name", list(_bad_input_calls()))
def test_a_checked_call_rejects_bad_input_in_one_line(name):
    call, argument = _bad_input_calls()[name]
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert message.startswith(argument) and "\n" not in message, message


#: This helper's modules; the report package has its own owner.
OWN_MODULES = (
    "_validation architecture data equivalence kernels linalg parameterizations predict "
    "published regressor "
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
