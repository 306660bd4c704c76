"""Resume after ``kill -9``: the finished table equals that of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from click.testing import CliRunner
from study_helpers import done_trials, result_table, write_tiny

from ntklab.cli import main
from ntklab.config import load_config
from ntklab.execution import run_study
from ntklab.store import RunStore


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_uninterrupted_table(tmp_path):
    trials = 6
    cfg = write_tiny(tmp_path, trials=trials, width=32, epochs=200)
    killed = tmp_path / "killed"
    db = killed / "results.sqlite"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ntklab.cli",
            "run",
            str(cfg),
            "--out",
            str(killed),
            "--workers",
            "1",
            "--threads",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while done_trials(db) < 1:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no trial finished within 120 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with RunStore.open(killed) as store:
        done_at_kill = store.done()
    assert 1 <= len(done_at_kill) < trials  # really killed in the middle of the run
    # the partial table holds only whole trials
    partial = result_table(killed)
    assert set(partial.trial) == {t for _, t in done_at_kill}

    result = CliRunner().invoke(
        main, ["run", str(cfg), "--out", str(killed), "--workers", "1", "--threads", "1"]
    )
    assert result.exit_code == 0, result.output
    assert f"{len(done_at_kill)} already done, {trials - len(done_at_kill)} to run" in result.stdout

    whole = tmp_path / "whole"
    run_study(load_config(str(cfg)), whole, workers=1, threads=1, echo=None)
    pd.testing.assert_frame_equal(
        result_table(killed), result_table(whole), check_exact=False, rtol=1e-9
    )
    with RunStore.open(killed) as store:
        assert store.done() == {(0, t) for t in range(trials)}
        assert (store.trials().status == "done").all()


def test_a_resume_or_retry_with_few_trials_left_keeps_the_uninterrupted_threads(
    tmp_path, monkeypatch, capsys
):
    """On 2 cores an uninterrupted run of 2 trials gives each trial 1 thread (2 workers x 1);
    a resume with 1 trial left, or a retry of 1 failed method, must too, not 1 worker x 2
    threads: float32 training at width 2048 gives other bits with 2 threads."""
    import ntklab.study.methods as study
    from ntklab.execution import devices

    monkeypatch.setattr(devices.os, "cpu_count", lambda: 2)
    two = write_tiny(tmp_path, trials=2, width=2048, epochs=20)
    one = write_tiny(tmp_path, trials=1, width=2048, epochs=20, name="one.toml")
    whole = tmp_path / "whole"  # each trial as the uninterrupted run computes it
    run_study(load_config(str(two)), whole, workers=1, threads=1, echo=None)

    resumed = tmp_path / "resumed"  # trial 0 done (1 thread), then the rest by default
    run_study(load_config(str(one)), resumed, workers=1, threads=1, echo=None)
    run_study(load_config(str(two)), resumed)
    assert (
        "executing locally: 1 worker(s) x 1 thread(s) (each trial's threads as in the "
        "uninterrupted run)" in capsys.readouterr().out
    )
    pd.testing.assert_frame_equal(result_table(resumed), result_table(whole), check_exact=True)

    retried = tmp_path / "retried"  # NN1 of trial 1 failed, then retried alone by default
    network_method = study._network_method

    def fails(method, ctx, record, *, trial, **kw):
        if trial == 1:
            raise MemoryError("out of memory")
        return network_method(method, ctx, record, trial=trial, **kw)

    monkeypatch.setattr(study, "_network_method", fails)
    run_study(load_config(str(two)), retried, workers=1, threads=1, echo=None)
    monkeypatch.setattr(study, "_network_method", network_method)
    summary = run_study(load_config(str(two)), retried)
    assert "1 worker(s) x 1 thread(s)" in capsys.readouterr().out and summary.failed == 0
    pd.testing.assert_frame_equal(result_table(retried), result_table(whole), check_exact=True)
