"""Bad input gives a ValueError (or a one-line CLI error) naming the argument; the verify CLI."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import unit_rows

import ntklab
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
        ValueError, match=r"parameterization must be one of \['arora', 'jacot', 'paper'\]"
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
    assert result.output.count("PASS") == 18 and "FAIL" not in result.output
    assert "18/18 rows pass" in result.output


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
