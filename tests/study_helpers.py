"""Shared tiny study configs for the study/execution/resume tests (not a test module)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

TINY = """
[study]
name = "tiny"
trials = {trials}
seed = 7

[data]
n = 48
d = 4
n_train = 36
noise = 0.05

[data.generator]
kind = "ntk"
depth = 1
parameterization = "paper"

[[methods]]
name = "NN1"
kind = "network"
depth = 1
parameterization = "paper"
width = {width}
epochs = {epochs}
record_every = 5
max_kernel_points = 20

[[methods]]
name = "GP1"
kind = "nngp"
depth = 1
parameterization = "jacot"

[[methods]]
name = "NTKJ1"
kind = "ntk"
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
epochs = 10

[[methods]]
name = "K1"
kind = "laplacian"
"""

#: Metrics that measure time and therefore differ between runs.
TIMING = {"fit_seconds"}


def write_tiny(
    tmp_path: Path, *, trials: int = 3, width: int = 16, epochs: int = 10, name="tiny.toml"
) -> Path:
    path = tmp_path / name
    path.write_text(TINY.format(trials=trials, width=width, epochs=epochs))
    return path


def result_table(run_dir):
    """The results of a run without timing metrics, sorted, as a DataFrame."""
    from ntklab.store import RunStore

    with RunStore.open(run_dir) as store:
        df = store.results()
    df = df[~df.metric.isin(TIMING)]
    return df.sort_values(["point", "trial", "method", "metric", "step"]).reset_index(drop=True)


def done_trials(db: Path, *, immutable: bool = False) -> int:
    """Trials with status ``done`` in the SQLite file ``db`` (0 before its tables exist);
    ``immutable``: read the file alone, ignoring its WAL (what a copy of it would hold)."""
    if not db.is_file():
        return 0
    uri = f"file:{db}?immutable=1" if immutable else f"file:{db}"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=1.0)
        try:
            return conn.execute("SELECT COUNT(*) FROM trials WHERE status='done'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:  # tables not created yet
        return 0
