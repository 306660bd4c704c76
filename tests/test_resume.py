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
