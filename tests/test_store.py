"""The SQLite result store: one transaction per trial, resume, refusal to mix configs."""

import sqlite3

import pytest

from ntklab.store import FINAL, RunStore, StoreError, TrialRecord, is_run_dir

METHODS = [
    {"method": "NTKB1", "kind": "ntk", "family": "NTKB", "depth": 1, "parameterization": "paper"},
    {"method": "K1", "kind": "laplacian", "family": "K1", "spec": {"length_scale": 1.0}},
]


def _create(run_dir, config_hash="abc"):
    return RunStore.create(
        run_dir,
        config={"study": {"trials": 3}},
        config_hash=config_hash,
        meta={"assumed": {"data.n_train": 800}, "n_trials": 3, "name": "t"},
        points=[{}],
        methods=METHODS,
    )


def _record(trial, value):
    rec = TrialRecord(point=0, trial=trial, seed=f"seed-{trial}", wall_time=0.5)
    rec.add("NTKB1", "rmse", value)
    rec.add("K1", "rmse", 2 * value)
    rec.add("NTKB1", "curve_test_rmse", value + 1, step=10)
    return rec


def test_create_write_read_roundtrip(tmp_path):
    with _create(tmp_path / "run") as store:
        store.write_trial(_record(0, 0.25))
        store.write_trial(_record(1, 0.5))
    assert is_run_dir(tmp_path / "run")
    with RunStore.open(tmp_path / "run") as store:
        meta = store.meta()
        assert meta["assumed"] == {"data.n_train": 800}
        assert meta["config"] == {"study": {"trials": 3}}
        assert store.done() == {(0, 0), (0, 1)}
        res = store.results()
        assert len(res) == 6
        final = store.results(final_only=True)
        assert set(final["step"]) == {FINAL}
        k1 = final[(final.method == "K1") & (final.trial == 1)]["value"].item()
        assert k1 == pytest.approx(1.0)
        methods = store.methods().set_index("method")
        assert methods.loc["K1", "spec"] == {"length_scale": 1.0}
        assert methods.loc["NTKB1", "depth"] == 1


def test_resume_same_config_keeps_rows_and_rewrite_replaces(tmp_path):
    with _create(tmp_path) as store:
        store.write_trial(_record(0, 0.25))
    with _create(tmp_path) as store:  # resume: same hash
        assert store.done() == {(0, 0)}
        store.write_trial(_record(0, 0.75))  # rewriting a trial replaces its rows
        final = store.results(final_only=True)
        assert sorted(final["value"]) == [0.75, 1.5]


def test_different_config_is_refused(tmp_path):
    _create(tmp_path, "abc").close()
    with pytest.raises(StoreError, match="different config"):
        _create(tmp_path, "xyz")


def test_failed_trial_is_not_done(tmp_path):
    with _create(tmp_path) as store:
        rec = _record(2, 0.1)
        rec.status, rec.error = "failed", "boom"
        store.write_trial(rec)
        assert store.done() == set()
        assert store.trials()["error"].tolist() == ["boom"]


def test_not_a_run_and_corrupted(tmp_path):
    with pytest.raises(StoreError, match="not an ntklab run"):
        RunStore.open(tmp_path)
    with pytest.raises(StoreError, match="not a directory"):
        RunStore.open(tmp_path / "missing")
    (tmp_path / "results.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="corrupted"):
        RunStore.open(tmp_path)


def test_foreign_sqlite_is_refused(tmp_path):
    conn = sqlite3.connect(tmp_path / "results.sqlite")
    conn.execute("CREATE TABLE other(x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="missing tables"):
        RunStore.open(tmp_path)
