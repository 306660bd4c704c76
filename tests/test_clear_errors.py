"""Unclear messages made one clear line each: what a user mistyped or what the machine cannot
do, named with the fix (``--set``, ``extends``, a network too wide to fit, a trial stored
only in the WAL, ``report --pair``/``--figures``, a kernel that is not PSD)."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner
from study_helpers import write_tiny

from ntklab.cli import main
from ntklab.config import ConfigError, load_config
from ntklab.execution import run_study
from ntklab.store import RunStore, StoreError, TrialRecord


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _line(result) -> str:
    assert result.exit_code == 2, result.output
    text = result.stderr
    assert text.count("\n") == 1 and text.startswith("error: "), text
    return text


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finished")
    cfg = write_tiny(tmp, trials=1)
    run_study(load_config(str(cfg)), tmp / "run", workers=1, threads=1, echo=None)
    return cfg, tmp / "run"


# ---- the config: --set and extends ---------------------------------------------------------
def test_a_bad_set_key_blames_set_not_the_file(tmp_path):
    cfg = write_tiny(tmp_path)
    for text, what in [
        ("foo.bar=1", "unknown key 'foo' in the top level"),
        ("study.foo=1", "unknown key 'foo' in study"),
        ("data.n_train=100", "n_train = 100 must be smaller than n = 48"),
    ]:
        line = _line(_cli("run", cfg, "--out", tmp_path / "run", "--set", text))
        assert line.startswith(f"error: --set {text}: ") and what in line, line
        assert str(cfg) not in line
    # several --set: the one that breaks the config is named
    with pytest.raises(ConfigError, match=r"^--set foo\.bar=1: unknown key 'foo'"):
        load_config(str(cfg), overrides=["data.noise=0.1", "foo.bar=1"])
    assert load_config(str(cfg), overrides=["study.trials=5"], trials=3).trials == 3
    # a bad file stays the file's fault, whatever --set says
    bad = tmp_path / "bad.toml"
    bad.write_text(cfg.read_text().replace("noise = 0.05", "noise = 0.05\nnosie = 1"))
    with pytest.raises(ConfigError, match=rf"^{bad}: unknown key 'nosie' in data"):
        load_config(str(bad), overrides=["data.noise=0.1"])
    assert not (tmp_path / "run").exists()


def test_extends_of_a_missing_base_names_the_file_that_extends_it(tmp_path):
    (tmp_path / "preset.toml").write_text('extends = "nope-preset"\n')
    (tmp_path / "file.toml").write_text('extends = "missing.toml"\n')
    (tmp_path / "outer.toml").write_text('extends = "file.toml"\n')
    with pytest.raises(ConfigError) as err:
        load_config(str(tmp_path / "preset.toml"))
    assert str(err.value).startswith(f"{tmp_path / 'preset.toml'}: extends = 'nope-preset': ")
    assert "unknown preset 'nope-preset'" in str(err.value)
    for top in ("file.toml", "outer.toml"):  # the file that names it, however deep
        with pytest.raises(ConfigError) as err:
            load_config(str(tmp_path / top))
        assert str(err.value).startswith(f"{tmp_path / 'file.toml'}: extends = 'missing.toml': ")
        assert "not found" in str(err.value)


# ---- a network far too wide ----------------------------------------------------------------
def test_a_network_too_wide_to_fit_is_refused_before_the_run(tmp_path):
    from ntklab.execution.memory import check_networks_fit, machine_memory, network_parameters

    cfg = write_tiny(tmp_path)
    width = 10**12
    need_tb = 2 * 4 * network_parameters(4, width, 1) / 1e12  # float32 weights + gradients
    line = _line(
        _cli("run", cfg, "--out", tmp_path / "run", "--workers", 1,
             "--set", f"methods.NN1.width={width}")
    )  # fmt: skip
    assert f"method NN1: width {width} cannot fit" in line
    assert f"need {need_tb:.3g} TB" in line and "rerun" not in line
    memory, _ = machine_memory(None)
    assert f"{memory / 1e9:.3g} GB" in line or memory >= 1e12
    assert not (tmp_path / "run").exists()
    # the bound: weights and gradients of the widest network, against the memory given
    plan = load_config(str(cfg), overrides=["methods.NN1.width=1000", "methods.NN1.depth=2"])
    need = 8 * network_parameters(4, 1000, 2)
    assert need == 8 * (5 * 1000 + 1001 * 1000 + 1001)
    check_networks_fit(plan, "cpu", memory=need)
    with pytest.raises(Exception, match="width 1000 cannot fit"):
        check_networks_fit(plan, "cpu", memory=need - 1)


def test_torch_allocation_failures_count_as_out_of_memory():
    from ntklab.execution.runner import _is_memory_error

    torch_cpu = (
        "RuntimeError: [enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
        "can't allocate memory: you tried to allocate 32000000000000 bytes."
    )
    assert _is_memory_error(torch_cpu) and _is_memory_error("MemoryError: x")
    assert not _is_memory_error("ValueError: width must be positive")


# ---- the store: exactly what is stored -------------------------------------------------------
def _store(tmp_path) -> RunStore:
    return RunStore.create(
        tmp_path,
        config={},
        config_hash="h",
        meta={"n_trials": 3},
        points=[{}],
        methods=[{"method": "A", "kind": "ntk"}],
    )


def _record(trial: int) -> TrialRecord:
    rec = TrialRecord(point=0, trial=trial, seed="s", wall_time=1.0)
    rec.add("A", "rmse", 0.5 + trial)
    return rec


def test_a_full_disk_says_whether_the_trial_is_stored(tmp_path, monkeypatch):
    store = _store(tmp_path)
    try:
        store.write_trial(_record(0))

        def full(self):
            raise sqlite3.OperationalError("database or disk is full")

        # committed, then the checkpoint into results.sqlite fails: stored, in the WAL
        monkeypatch.setattr(RunStore, "_checkpoint", full)
        with pytest.raises(StoreError) as err:
            store.write_trial(_record(1))
        message = str(err.value)
        assert message.startswith("disk full: cannot checkpoint trial 1 (copy it from ")
        assert "all 2 done trial(s), this one included, are stored" in message
        assert "results.sqlite-wal" in message and "not stored" not in message
        monkeypatch.undo()
        assert store.done() == {(0, 0), (0, 1)}
        # the transaction itself fails: not stored, the others intact
        store._conn.execute(
            "CREATE TEMP TRIGGER full BEFORE INSERT ON trials "
            "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
        )
        with pytest.raises(StoreError) as err:
            store.write_trial(_record(2))
        message = str(err.value)
        assert message.startswith("disk full: cannot store trial 2 in ")
        assert "it is not stored, and the 2 trial(s) already stored are intact" in message
        assert store.done() == {(0, 0), (0, 1)}
    finally:
        store.close()


# ---- report flags ----------------------------------------------------------------------------
def test_report_pair_and_figures_name_the_flag(finished, tmp_path):
    _, run = finished
    line = _line(_cli("report", run, "--no-figures", "--pair", "NOPE,NN1"))
    assert line.startswith("error: --pair NOPE,NN1: 'NOPE' is not a method of run")
    assert "NN1, GP1" in line
    afile = tmp_path / "figs"
    afile.write_text("a file")
    line = _line(_cli("report", run, "--figures", afile))
    assert f"--figures {afile} is a file, not a directory" in line and "File exists" not in line
    line = _line(_cli("report", run, "-f", "html", "--figures", afile / "sub"))
    assert f"{afile} is a file, not a directory" in line
    assert afile.read_text() == "a file"


# ---- gradient descent on a matrix that is not a kernel -----------------------------------------
def test_gradient_descent_refuses_a_kernel_that_is_not_psd():
    from ntklab.predict import gradient_descent_mse, gradient_descent_mse_ensemble

    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 6))
    K = A @ A.T + np.eye(6)
    y = rng.standard_normal(6)
    lam, V = np.linalg.eigh(K)
    indefinite = (V * np.r_[-0.05 * lam[-1], lam[1:]]) @ V.T  # one clearly negative eigenvalue
    for bad in (-K, 0.5 * (indefinite + indefinite.T)):
        with pytest.raises(ValueError, match="ntk_train must be positive semi-definite"):
            gradient_descent_mse(bad, K, y, lr=0.1, steps=10)
        with pytest.raises(ValueError, match="ntk_train must be positive semi-definite"):
            gradient_descent_mse_ensemble(bad, K, y, lr=0.1, steps=10, nngp_train=K,
                                          nngp_test_train=K)  # fmt: skip
    with pytest.raises(ValueError, match="nngp_train must be positive semi-definite"):
        gradient_descent_mse_ensemble(K, K, y, lr=0.1, steps=10, nngp_train=-K, nngp_test_train=K)
    # a singular kernel whose zero eigenvalues come out of eigh slightly negative is a kernel
    B = rng.standard_normal((6, 3))
    low_rank = B @ B.T
    assert np.linalg.eigvalsh(low_rank)[0] < 1e-12 * np.linalg.eigvalsh(low_rank)[-1]
    gradient_descent_mse(low_rank, low_rank, y, lr=0.01, steps=10)
    f32 = (B.astype(np.float32) @ B.T.astype(np.float32)).astype(np.float64)  # float32 round-off
    gradient_descent_mse(0.5 * (f32 + f32.T), f32, y, lr=0.01, steps=10)
