"""The progress ETA weighs trials by the estimated cost of their methods
(:mod:`ntklab.execution.cost`): a run whose networks run in its first trials only is not
estimated as if every trial trained them."""

from __future__ import annotations

import io
import re
import time

import pytest

from ntklab.config import load_raw, plan_study
from ntklab.execution.cost import method_cost, trial_cost
from ntklab.execution.progress import Progress
from ntklab.store import TrialRecord


def _eta_seconds(line: str) -> int:
    m = re.search(r"ETA (?:(\d+)m)?(\d+)s\]", line)
    return 60 * int(m.group(1) or 0) + int(m.group(2))


def _finish(progress: Progress, trial: int, elapsed: float, wall: float | None = None) -> str:
    progress.start = time.monotonic() - elapsed
    out = progress.stream
    out.seek(0)
    out.truncate()
    wall = elapsed if wall is None else wall
    progress.finished(TrialRecord(point=0, trial=trial, seed="s", wall_time=wall))
    return out.getvalue()


def test_eta_weighs_trials_by_their_cost():
    """Two trials of cost 10 and eight of cost 1. After the first (100 s): the other of cost
    10 takes as long (100 s), the eight of cost 1 take 10 s a unit as far as known (80 s):
    180 s (the per-trial mean would say 900 s). Once a trial of cost 1 has run (3 s), the
    other seven take that: 21 s."""
    costs = {(0, t): (10.0 if t < 2 else 1.0) for t in range(10)}
    progress = Progress(10, 0, stream=io.StringIO(), tty=False, costs=costs)
    assert _eta_seconds(_finish(progress, 0, 100.0)) == pytest.approx(180, abs=1)
    assert _eta_seconds(_finish(progress, 1, 200.0, wall=100.0)) == pytest.approx(80, abs=1)
    assert _eta_seconds(_finish(progress, 2, 203.0, wall=3.0)) == pytest.approx(21, abs=1)
    # without costs: the old per-trial mean (200 s / 2 trials x 8 left)
    plain = Progress(10, 0, stream=io.StringIO(), tty=False)
    _finish(plain, 0, 100.0)
    assert _eta_seconds(_finish(plain, 1, 200.0)) == pytest.approx(800, abs=1)


def test_eta_with_workers_in_parallel():
    """Two workers: 200 s of trials done in 100 s, so the 80 s of work left takes 40 s."""
    costs = {(0, t): (10.0 if t < 2 else 1.0) for t in range(10)}
    progress = Progress(10, 0, stream=io.StringIO(), tty=False, costs=costs)
    _finish(progress, 0, 100.0, wall=100.0)
    assert _eta_seconds(_finish(progress, 1, 100.0, wall=100.0)) == pytest.approx(40, abs=1)


def test_resumed_trials_are_not_counted():
    """On resume only this invocation's trials carry cost (done ones are not in ``costs``)."""
    costs = {(0, t): 1.0 for t in range(5, 10)}
    progress = Progress(10, 5, stream=io.StringIO(), tty=False, costs=costs)
    assert _eta_seconds(_finish(progress, 5, 10.0)) == pytest.approx(40, abs=1)
    from ntklab.execution.cost import TrialCosts

    raw, source = load_raw("paper-quick")
    config = plan_study(raw, source=source).points[0].config
    done = {(0, t) for t in range(5)}
    progress = Progress(
        10, 5, stream=io.StringIO(), tty=False, costs=TrialCosts([config], 10, done)
    )
    assert _eta_seconds(_finish(progress, 5, 10.0)) == pytest.approx(40, abs=1)


def test_seed_quick_costs_put_the_networks_first():
    """In seed-quick the networks run in trials 0-11 only: those trials cost several times
    a kernel-only trial; a network's cost grows with its epochs and width."""
    raw, source = load_raw("seed-quick")
    plan = plan_study(raw, source=source)
    config = plan.points[0].config
    net, kernels = trial_cost(config, 0), trial_cost(config, 12)
    assert net > 5 * kernels
    assert trial_cost(config, 11) == net and trial_cost(config, 49) == kernels
    nn1 = next(m for m in config.methods if m.name == "NN1").model_copy(
        update={"equivalence": False}  # its empirical NTKs cost the same at any epochs
    )
    one = method_cost(nn1, 1000, 670, 15)
    assert method_cost(nn1.model_copy(update={"epochs": 2 * nn1.epochs}), 1000, 670, 15) == (
        pytest.approx(2 * one)
    )
    assert method_cost(nn1.model_copy(update={"width": 2 * nn1.width}), 1000, 670, 15) > one
    # --only: the trial costs only the methods asked for
    assert trial_cost(config, 0, only=["GP1"]) < kernels


def test_trial_costs_of_a_plan_without_a_value_per_trial():
    """TrialCosts equals the per-trial sum on seed-quick, and a billion trials cost a few
    numbers (a cap splits a point into segments of equal cost)."""
    from ntklab.execution.cost import TrialCosts

    raw, source = load_raw("seed-quick")
    config = plan_study(raw, source=source).points[0].config
    done = {(0, 0), (0, 30)}
    costs = TrialCosts([config], 50, done)
    by_trial = [trial_cost(config, t) for t in range(50)]
    assert costs.total == pytest.approx(sum(by_trial) - by_trial[0] - by_trial[30], rel=1e-12)
    assert costs.remaining() == {by_trial[0]: 11, by_trial[12]: 37}
    assert [costs(0, t) for t in range(50)] == by_trial
    many = TrialCosts([config], 10**9)
    assert many.total == pytest.approx(12 * by_trial[0] + (10**9 - 12) * by_trial[12], rel=1e-12)
    progress = Progress(10**9, 0, stream=io.StringIO(), tty=False, costs=many)
    line = _finish(progress, 0, 10.0)
    assert "ETA" in line
