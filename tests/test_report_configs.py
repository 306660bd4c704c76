"""The report reads a run's config as the schema's models (report/configs.py): a sweep
replayed point by point, and a store whose config the schema no longer accepts still
loads, each method read from its own spec."""

from __future__ import annotations

import pytest
import tomllib
from study_helpers import TINY

from ntklab.config import plan_study
from ntklab.execution.runstore import open_store
from ntklab.report import load_run, report_settings, resolve_generator, write_report
from ntklab.report.tables import method_depth
from ntklab.store import RunStore, TrialRecord


def _write(store: RunStore, points: int, methods: list[str]) -> None:
    for p in range(points):
        for t in range(2):
            rec = TrialRecord(point=p, trial=t, seed=f"{p}-{t}")
            for i, m in enumerate(methods):
                rec.add(m, "rmse", 0.1 + 0.01 * i + 0.001 * t + 0.0001 * p)
            store.write_trial(rec)


def test_a_sweep_is_read_point_by_point(tmp_path):
    """Width and depth of NN1 change over the sweep (the methods table stores the depth as
    NULL): each point's MethodConfig has its own."""
    raw = tomllib.loads(TINY.format(trials=2, width=8, epochs=5))
    raw["sweep"] = {"methods.NN1.width": [8, 16], "methods.NN1.depth": [1, 2]}
    plan = plan_study(raw, source="test")
    with open_store(plan, tmp_path / "run") as store:
        _write(store, len(plan.points), [m.name for m in plan.config.methods])
    run = load_run(tmp_path / "run")
    assert run.study_config is not None and run.method_info("NN1")["depth"] is None
    expected = [(p.params["methods.NN1.width"], p.params["methods.NN1.depth"]) for p in plan.points]
    got = [(run.width(p, "NN1"), method_depth(run, "NN1", p)) for p in run.point_ids]
    assert got == expected and len(set(got)) == 4
    assert method_depth(run, "NTKB1", 3) == 1  # not swept


def test_an_older_store_still_loads(tmp_path):
    """A config with keys the schema does not know and a generator given by name: the study
    config is None, the methods come from their specs, the generator by its name, the
    [report] table from its own model."""
    config = {
        "data": {"n": 10, "n_train": 5, "generator": "NTKJ1", "retired_key": 1},
        "methods": [{"name": "NN1", "kind": "network", "width": 64, "retired": True}],
        "report": {"equivalence_margin": 0.05},
    }
    methods = [
        {"method": "NN1", "kind": "network", "spec": {"width": 64, "epochs": 3, "retired": 1}},
        {"method": "NTKJ1", "kind": "ntk", "family": "NTKJ", "depth": 1, "spec": {}},
    ]
    with RunStore.create(
        tmp_path / "old", config=config, config_hash="h", meta={"n_trials": 2},
        points=[{}], methods=methods,
    ) as store:  # fmt: skip
        _write(store, 1, ["NN1", "NTKJ1"])
    run = load_run(tmp_path / "old")
    assert run.study_config is None
    assert run.width(0, "NN1") == 64 and run.is_network("NN1") and not run.is_network("NTKJ1")
    assert resolve_generator(run) == "NTKJ1"
    assert report_settings(run) == {"equivalence_margin": 0.05, "alpha": 0.05}
    text = write_report(run, "md", figures=False)
    assert "## Findings" in text and "NTKJ1" in text
    with pytest.raises(AttributeError):
        run.method_config("NN1").no_such_field  # noqa: B018 - a model, not a dict
