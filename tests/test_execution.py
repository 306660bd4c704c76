"""Running studies: CLI end to end, status/presets, determinism across backends, bad input."""

from __future__ import annotations

import io
import json
import multiprocessing
import re
import sqlite3

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from study_helpers import result_table, write_tiny

from ntklab.cli import main
from ntklab.config import load_config
from ntklab.execution import Progress, run_status, run_study
from ntklab.store import RunStore, TrialRecord


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _assert_same_tables(a: pd.DataFrame, b: pd.DataFrame, rtol: float = 1e-6):
    keys = ["point", "trial", "method", "metric", "step"]
    assert a[keys].equals(b[keys])
    np.testing.assert_allclose(a.value.to_numpy(), b.value.to_numpy(), rtol=rtol, atol=1e-9)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished 3-trial run of the tiny config (one worker, in-process), via the CLI."""
    tmp = tmp_path_factory.mktemp("tiny")
    cfg = write_tiny(tmp, trials=3)
    out = tmp / "run"
    result = _cli("run", cfg, "--out", out, "--workers", 1, "--threads", 1)
    return cfg, out, result


def test_cli_run_end_to_end(tiny_run):
    cfg, out, result = tiny_run
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Assumed values (SPEC): n_train = 36 (data); " in text
    assert "trial 2 done" in text
    assert f"report:  ntklab report {out}" in text
    with RunStore.open(out) as store:
        meta = store.meta()
        trials = store.trials()
        methods = store.methods().set_index("method")
        points = store.points()
        final = store.results(final_only=True)
    assert list(trials.status) == ["done"] * 3
    assert meta["name"] == "tiny" and meta["n_trials"] == 3
    assert meta["config"] == load_config(str(cfg)).resolved
    assert meta["assumed"]["methods.NN1.width"] == 16
    assert {"python", "ntklab", "numpy", "torch"} <= set(meta["versions"])
    assert list(points.params) == [{}]
    assert methods.loc["NTKJ1", "family"] == "NTKJ" and methods.loc["NTKJ1", "depth"] == 1
    assert methods.loc["K1", "kind"] == "laplacian" and pd.isna(methods.loc["K1", "depth"])
    assert methods.loc["NN1", "spec"]["width"] == 16
    rmse = final[final.metric == "rmse"]
    assert len(rmse) == 3 * 6
    assert rmse.value.between(0.01, 5).all()
    assert trials.seed[1] == "SeedSequence(entropy=7, spawn_key=(1,))"


def test_rerun_of_a_finished_run_does_nothing_and_status_reports(tiny_run):
    cfg, out, _ = tiny_run
    before = result_table(out)
    again = _cli("run", cfg, "--out", out, "--workers", 1)
    assert again.exit_code == 0
    assert "nothing to do" in again.stdout
    pd.testing.assert_frame_equal(result_table(out), before)
    status = _cli("status", out)
    assert status.exit_code == 0
    assert "trials: 3 done, 0 failed, 3 total (0 to run)" in status.stdout
    assert "NTKB1T" in status.stdout
    st = run_status(out)
    assert st["done"] == 3 and [m["rmse_rows"] for m in st["methods"]] == [3] * 6


def test_presets_command():
    result = _cli("presets")
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == [
        "equivalence",
        "paper",
        "paper-quick",
        "phase",
        "phase-quick",
        "real-data",
        "real-data-full",
        "real-data-ridgeless",
        "seed",
        "seed-corrected",
        "seed-quick",
    ]
    assert "50 trials, 11 methods" in result.stdout
    assert "x 3 sweep points" in result.stdout


def test_trials_extend_a_run_and_failed_trials_are_retried(tmp_path):
    cfg = write_tiny(tmp_path, trials=2)
    out = tmp_path / "run"
    run_study(load_config(str(cfg)), out, workers=1, threads=1, echo=None)
    with RunStore.open(out, write=True) as store:
        store.write_trial(TrialRecord(point=0, trial=1, seed="x", status="failed", error="crash"))
    plan = load_config(str(cfg), trials=3)
    summary = run_study(
        plan, out, workers=1, threads=1, echo=None, progress=Progress(3, 1, stream=io.StringIO())
    )
    assert (summary.skipped, summary.done, summary.failed) == (1, 2, 0)
    with RunStore.open(out) as store:
        assert store.done() == {(0, 0), (0, 1), (0, 2)}
        assert store.meta()["n_trials"] == 3


@pytest.mark.slow
def test_same_rows_with_one_or_two_workers_and_on_dask(tmp_path, capfd):
    cfg = write_tiny(tmp_path, trials=3)
    plan = load_config(str(cfg), overrides=["sweep.methods.NN1.width=[8, 16]"])
    run_study(plan, tmp_path / "one", workers=1, threads=1, echo=None)
    # two workers, and (the GPU layout's code path, forced on a CPU) each task trains the NN1
    # of two trials in one stacked run: equal up to float32 round-off in the networks' rows
    run_study(plan, tmp_path / "two", workers=2, stack_trials=2, echo=print)
    # every worker has exited when the run returns: none can still be starting and open the
    # progress queue's semaphores after they are gone (SemLock FileNotFoundError)
    assert multiprocessing.active_children() == []
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err
    assert "2 worker(s) x " in captured.out and "networks of up to 2 trials stacked" in captured.out
    one, two = result_table(tmp_path / "one"), result_table(tmp_path / "two")
    assert len(one) > 6 * 6
    nets = one.method.str.startswith("NN")
    assert nets.any() and (~nets).any()
    _assert_same_tables(one[~nets], two[~nets])
    _assert_same_tables(one[nets], two[nets], rtol=1e-4)
    # paired comparisons: kernel methods see the same data at both sweep points
    k = one[(one.metric == "rmse") & (one.method == "NTKB1")]
    np.testing.assert_array_equal(
        k[k.point == 0].value.to_numpy(), k[k.point == 1].value.to_numpy()
    )
    nn = one[(one.metric == "rmse") & (one.method == "NN1")]
    assert not np.allclose(nn[nn.point == 0].value.to_numpy(), nn[nn.point == 1].value.to_numpy())

    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        with Client(cluster) as client:
            run_study(plan, tmp_path / "dask", client=client, echo=None)
    _assert_same_tables(one, result_table(tmp_path / "dask"))


def test_progress_bar_on_a_terminal():
    """On a terminal: a rich bar with trials done / total, the running methods, elapsed and
    ETA; a failed trial is printed above it."""
    from rich.console import Console

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160, color_system=None)
    progress = Progress(4, 1, console=console)
    assert progress.tty and screen.getvalue() == ""  # nothing drawn before the first event
    progress.method(0, 1, "NN2")
    progress.method(1, 2, "NTKB1")
    progress.finished(TrialRecord(point=0, trial=1, seed="s", wall_time=2.0))
    progress.finished(
        TrialRecord(point=1, trial=2, seed="s", status="failed", error="ValueError: boom")
    )
    progress.close()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())  # no cursor codes
    frames = [f.strip() for f in re.split(r"[\r\n]", text) if f.strip()]
    assert "trial 2 (point 1) failed: ValueError: boom" in frames
    last = frames[-1]
    assert last.startswith("trials") and "2/4" in last and " 50%" in last
    assert "failed 1" in last and re.search(r"elapsed \d+s ETA \d+s", last)
    assert "t2@p1 NTKB1" in text and "t1 NN2" in text  # the running methods, while running
    assert "t1 NN2" not in last  # ... and no longer once finished


def test_progress_lines_when_not_a_terminal():
    """Not a terminal: today's plain lines, one per stored trial, and nothing else."""
    plain = io.StringIO()
    progress = Progress(2, 0, stream=plain, tty=False, points=2)
    progress.method(0, 0, "NN1")
    progress.finished(
        TrialRecord(point=0, trial=0, seed="s", wall_time=1.5, errors=[("K1", "ValueError: x")])
    )
    progress.finished(TrialRecord(point=1, trial=0, seed="s", status="failed", error="boom"))
    progress.close()
    lines = plain.getvalue().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d trial 0 \(point 0\) done in 1\.5s; 1 method error\(s\): "
        r"K1: ValueError: x \[1/2, ETA \d+s\]",
        lines[0],
    ), lines[0]
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d trial 0 \(point 1\) FAILED: boom in 0\.0s \[1/2, ETA \d+s\]", lines[1]
    ), lines[1]


# ---- bad input: one line, non-zero exit, nothing stored lost ---------------------------------
BAD_SETS = [
    ("methods.NN1.widht=3", "unknown key 'widht' in methods[0] (NN1); did you mean 'width'?"),
    ("data.n=abc", "data.n: input should be a valid integer (got 'abc')"),
    ("data.n_train=48", "n_train = 48 must be smaller than n = 48"),
    ("methods.GP1.depth=0", "methods[1] (GP1).depth: input should be greater than or equal to 1"),
    ("methods.NN1.lr=-0.5", "lr must be a positive number or 'auto'; got -0.5"),
    ("methods.NN1.width=0", "methods[0] (NN1).width: input should be greater than or equal to 1"),
    ("methods.K1.kind=spline", "methods[5] (K1).kind: input should be 'network'"),
    ("methods.NN1", "--set 'methods.NN1' must look like key=value"),
    ("methods.NN9.width=8", "no method named 'NN9'; did you mean 'NN1'?"),
    ("sweep.methods.*.width=[8, -1]", 'sweep point {"methods.*.width": -1}'),
]


@pytest.mark.parametrize("setting, expected", BAD_SETS)
def test_bad_settings_are_one_line_errors(tmp_path, setting, expected):
    cfg = write_tiny(tmp_path)
    out = tmp_path / "run"
    result = _cli("run", cfg, "--out", out, "--set", setting)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert expected in result.stderr
    assert not out.exists()  # nothing created before the config is valid


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["papr"],
            "unknown preset 'papr'; did you mean 'paper'? available presets: equivalence, paper",
        ),
        (["missing.toml"], "config file not found: missing.toml"),
        (["TINY", "--workers", 0], "--workers must be a positive integer; got 0"),
        (["TINY", "--trials", 0], "--trials must be a positive integer; got 0"),
        (["TINY", "--scheduler", "localhost:1"], "--scheduler must look like tcp://HOST:PORT"),
        (
            ["TINY", "--scheduler", "tcp://127.0.0.1:9", "--dask-local", 1],
            "only one of --scheduler and --dask-local",
        ),
        (["TINY", "--device", "tpu"], "device must be 'cpu', 'cuda' or 'cuda:N'"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, args, expected):
    cfg = write_tiny(tmp_path)
    args = [cfg if a == "TINY" else a for a in args]
    result = _cli("run", *args, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert expected in result.stderr


def test_toml_syntax_error_names_the_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nname = "x"\n\n[data]\nn = 4O\n')
    result = _cli("run", bad)
    assert result.exit_code == 2
    assert (
        result.stderr.startswith(f"error: {bad}: TOML syntax error: ") and "line 5" in result.stderr
    )


def test_unwritable_output_directory(tmp_path):
    cfg = write_tiny(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = _cli("run", cfg, "--out", blocker / "run")
    assert result.exit_code == 2
    assert (
        result.stderr.startswith("error: cannot create run directory")
        and "choose another --out" in result.stderr
    )
    result = _cli("run", cfg, "--out", blocker)
    assert result.exit_code == 2 and "is not a directory" in result.stderr
    assert blocker.read_text() == "not a directory"


def test_unreachable_scheduler(tmp_path):
    cfg = write_tiny(tmp_path)
    result = _cli(
        "run", cfg, "--out", tmp_path / "run", "--scheduler", "tcp://127.0.0.1:9",
        "--scheduler-timeout", "0.5",
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: no Dask scheduler answered at tcp://127.0.0.1:9 within 0.5 s"
    )
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_scheduler_port_that_accepts_and_never_answers(tmp_path):
    """The handshake is bounded too: one line within --scheduler-timeout, no run directory."""
    import socket
    import time

    cfg = write_tiny(tmp_path)
    with socket.socket() as server:  # loopback only; accepts (backlog), never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        started = time.monotonic()
        result = _cli(
            "run", cfg, "--out", tmp_path / "run", "--scheduler", address,
            "--scheduler-timeout", "1",
        )  # fmt: skip
        elapsed = time.monotonic() - started
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"error: no Dask scheduler answered at {address} within 1 s; "
        + (result.stderr.split("; ", 1)[1])
    )
    assert result.stderr.count("\n") == 1 and "--scheduler-timeout" in result.stderr
    assert elapsed < 1 + 3  # the deadline, plus the thread's grace
    assert not (tmp_path / "run").exists()


def test_a_different_config_is_refused_and_nothing_is_lost(tiny_run, tmp_path):
    cfg, out, _ = tiny_run
    db = out / "results.sqlite"
    before = result_table(out)
    result = _cli("run", cfg, "--out", out, "--set", "methods.NN1.width=12")
    assert result.exit_code == 2
    assert "holds a run of a different config" in result.stderr and "start fresh" in result.stderr
    assert result.stderr.count("\n") == 1
    pd.testing.assert_frame_equal(result_table(out), before)
    assert db.is_file()


def test_a_corrupted_database_is_one_line_and_kept(tmp_path):
    cfg = write_tiny(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    junk = b"this is not sqlite" * 100
    (out / "results.sqlite").write_bytes(junk)
    for args in (["run", cfg, "--out", out], ["status", out]):
        result = _cli(*args)
        assert result.exit_code == 2
        assert result.stderr.startswith("error: ") and "corrupted" in result.stderr
        assert result.stderr.count("\n") == 1
    assert (out / "results.sqlite").read_bytes() == junk


def test_status_of_something_that_is_not_a_run(tmp_path):
    result = _cli("status", tmp_path)
    assert result.exit_code == 2 and "is not an ntklab run" in result.stderr


def test_store_rows_are_json_free_long_form(tiny_run):
    _, out, _ = tiny_run
    conn = sqlite3.connect(out / "results.sqlite")
    metrics = {r[0] for r in conn.execute("SELECT DISTINCT metric FROM results")}
    conn.close()
    from ntklab.store import METRICS

    # (equivalence_metrics may add metrics of its own; the study's own names are in METRICS)
    own = {"rmse", "jitter", "fit_seconds", "lr", "train_rmse", "diverged", "curve_train_loss"}
    assert own <= set(METRICS)
    assert {
        "rmse",
        "jitter",
        "fit_seconds",
        "lr",
        "train_rmse",
        "diverged",
        "curve_train_loss",
    } <= metrics
    assert json.loads(json.dumps(run_status(out)))["total"] == 3


def test_methods_table_does_not_store_a_swept_depth_as_the_base_one(tmp_path):
    """A depth sweep: the methods table must not claim depth 1 for the depth-2 points."""
    from ntklab.execution import open_store

    plan = load_config(
        str(write_tiny(tmp_path)),
        overrides=["sweep.methods.NTKJ1.depth=[1, 2]", "sweep.methods.NN1.width=[8, 16]"],
    )
    assert len(plan.points) == 4
    with open_store(plan, tmp_path / "run") as store:
        methods = store.methods().set_index("method")
    assert pd.isna(methods.loc["NTKJ1", "depth"]) and methods.loc["NTKJ1", "label"] == "NTKJ1"
    assert methods.loc["NTKJ1", "parameterization"] == "jacot"  # not swept: kept
    assert methods.loc["NN1", "depth"] == 1  # only its width is swept
    assert methods.loc["NN1", "label"] == "NN (1 layer)"


# ---- one worker process per GPU -----------------------------------------------------------


def test_local_layout_one_worker_per_gpu():
    from ntklab.execution.devices import local_layout

    lay = local_layout(device=None, workers=None, threads=None, n_tasks=50, cpus=16, gpus=2)
    assert (lay.workers, lay.threads, lay.devices) == (2, 8, ("cuda:0", "cuda:1"))
    assert "networks on cuda:0, cuda:1" in lay.describe()
    # "cuda" means every GPU; "cuda:N" that one only; never more workers than tasks
    lay = local_layout(device="cuda", workers=None, threads=None, n_tasks=1, cpus=16, gpus=4)
    assert (lay.workers, lay.threads, lay.devices) == (1, 16, ("cuda:0",))
    lay = local_layout(device="cuda:1", workers=None, threads=3, n_tasks=9, cpus=16, gpus=4)
    assert (lay.workers, lay.threads, lay.devices) == (1, 3, ("cuda:1",))
    # an explicit worker count takes the GPUs in turn
    lay = local_layout(device=None, workers=3, threads=None, n_tasks=9, cpus=12, gpus=2)
    assert (lay.workers, lay.threads, lay.devices) == (3, 4, ("cuda:0", "cuda:1", "cuda:0"))


def test_local_layout_without_cuda_is_one_worker_per_core():
    from ntklab.execution.devices import local_layout

    lay = local_layout(device=None, workers=None, threads=None, n_tasks=50, cpus=4, gpus=0)
    assert (lay.workers, lay.threads, lay.devices) == (4, 1, (None,) * 4)
    assert lay.describe() == "4 worker(s) x 1 thread(s)"
    lay = local_layout(device="cpu", workers=None, threads=None, n_tasks=3, cpus=4, gpus=2)
    assert (lay.workers, lay.threads, lay.devices) == (3, 1, ("cpu",) * 3)
    # a resume with fewer trials left keeps the whole plan's threads per trial
    lay = local_layout(
        device=None, workers=None, threads=None, n_tasks=1, planned=9, cpus=4, gpus=0
    )
    assert (lay.workers, lay.threads) == (1, 1)
    lay = local_layout(
        device=None, workers=None, threads=None, n_tasks=1, planned=2, cpus=4, gpus=0
    )
    assert (lay.workers, lay.threads) == (1, 2)
    lay = local_layout(
        device=None, workers=None, threads=None, n_tasks=1, planned=3, cpus=8, gpus=2
    )
    assert (lay.workers, lay.threads) == (1, 4)  # 2 GPU workers of the plan: 8 // 2


def test_each_pool_worker_takes_the_next_device():
    import multiprocessing

    from ntklab.execution.pool import take_device

    started = multiprocessing.get_context("spawn").Value("i", 0)
    devices = ("cuda:0", "cuda:1")
    assert [take_device(devices, started) for _ in range(3)] == ["cuda:0", "cuda:1", "cuda:0"]
    assert take_device(("cpu",)) == "cpu"


def test_batches_group_whole_trials_of_one_point():
    from ntklab.execution.trials import Task, batches

    c = {}
    tasks = [Task(c, 0, 0), Task(c, 0, 1), Task(c, 0, 2, ("NN1",)), Task(c, 0, 3),
             Task(c, 0, 4), Task(c, 0, 5), Task(c, 1, 0), Task(c, 1, 1)]  # fmt: skip
    got = [[(t.point, t.trial) for t in b] for b in batches(iter(tasks), 2)]
    # a retry of failed methods runs alone; a batch never mixes sweep points
    assert got == [[(0, 0), (0, 1)], [(0, 2)], [(0, 3), (0, 4)], [(0, 5)], [(1, 0), (1, 1)]]
    assert [len(b) for b in batches(iter(tasks), 1)] == [1] * 8
    assert list(batches(iter([]), 4)) == []
